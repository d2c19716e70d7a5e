/*
 * instance.c - dispatch of a plugin instance's operations to its thread
 * executor or its engine process (instance.h).
 */
#include "instance.h"

#include <stdlib.h>
#include <string.h>

txs_isolation instance_mode(txs_isolation opt)
{
	txs_isolation m = TXS_ISOLATION_THREAD;
	if (opt != TXS_ISOLATION_DEFAULT)
		return opt;
	const char *env = getenv("TXSCAN_ISOLATION");
	if (env && *env && txs_isolation_parse(env, &m) != 0)
		m = TXS_ISOLATION_THREAD;
	return m;
}

int instance_new(instance *in, txs_isolation mode, const char *engine, const txs_plugin_code *code,
                 const txs_limits *limits, txs_console_fn console, void *userdata, txs_bell *bell,
                 bool (*wanted)(void *scan_userdata))
{
	memset(in, 0, sizeof *in);
	if (mode == TXS_ISOLATION_PROCESS) {
		int rc = txs_proc_start(&in->proc, code, limits, console, userdata, engine);
		if (!rc && wanted)
			txs_proc_skip_unwanted(in->proc, wanted);
		return rc;
	}
	int rc = txs_executor_new(&in->ex, code, limits, console, userdata);
	if (!rc && bell)
		txs_executor_use_bell(in->ex, bell);
	if (!rc && wanted)
		txs_executor_skip_unwanted(in->ex, wanted);
	return rc;
}

void instance_on_event(instance *in, txs_event_fn fn, void *userdata)
{
	if (in->ex)
		txs_executor_on_event(in->ex, fn, userdata);
	else
		txs_proc_on_event(in->proc, fn, userdata);
}

int instance_wait_started(instance *in)
{
	return in->proc ? txs_proc_wait_started(in->proc) : 0;
}

int instance_submit(instance *in, const char *tx, size_t len, txs_shared_text **shared,
                    txs_scan_fn cb, void *userdata, bool *ring_due, bool *flush_due)
{
	if (in->proc)
		return txs_proc_submit_quiet(in->proc, tx, len, cb, userdata, flush_due);
	if (!*shared)
		*shared = txs_shared_text_new(tx, len);
	if (*shared)
		return txs_executor_submit_shared(in->ex, *shared, cb, userdata, ring_due);
	return txs_executor_submit_quiet(in->ex, tx, len, cb, userdata, ring_due);
}

int instance_restart(instance *in)
{
	return in->proc ? txs_proc_restart(in->proc) : txs_executor_restart(in->ex);
}

int instance_reload(instance *in, const txs_plugin_code *code, const txs_limits *limits)
{
	return in->proc ? txs_proc_reload(in->proc, code, limits)
	                : txs_executor_reload(in->ex, code, limits);
}

void instance_stats(const instance *in, txs_executor_stats *stats)
{
	if (in->proc)
		txs_proc_stats_get(in->proc, stats);
	else
		txs_executor_stats_get(in->ex, stats);
}

uint32_t instance_load(const instance *in)
{
	return in->proc ? txs_proc_load(in->proc) : txs_executor_load(in->ex);
}

void instance_free(instance *in)
{
	txs_proc_free(in->proc);
	txs_executor_free(in->ex);
	memset(in, 0, sizeof *in);
}
