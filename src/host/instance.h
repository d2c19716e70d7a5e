/*
 * instance.h - one plugin instance as the host sees it: a thread executor
 * (src/executor/) or an engine process (src/isolate/), chosen per plugin
 * by the host's isolation mode. The operations are txs_executor's.
 */
#ifndef TXS_INSTANCE_H
#define TXS_INSTANCE_H

#include "executor/bell.h"
#include "isolate/isolate.h"
#include "txscan.h"

typedef struct instance {
	txs_executor *ex; /* thread isolation */
	txs_proc *proc;   /* process isolation */
} instance;

/* The mode in effect for opt (TXS_ISOLATION_DEFAULT: $TXSCAN_ISOLATION, else thread). */
txs_isolation instance_mode(txs_isolation opt);

/* wanted (may be NULL): see txs_executor_skip_unwanted (an engine process:
 * txs_proc_skip_unwanted). */
int instance_new(instance *in, txs_isolation mode, const char *engine, const txs_plugin_code *code,
                 const txs_limits *limits, txs_console_fn console, void *userdata, txs_bell *bell,
                 bool (*wanted)(void *scan_userdata));
/* Executor events (txscan.h); an engine process forwards its executor's. */
void instance_on_event(instance *in, txs_event_fn fn, void *userdata);
/* instance_new starts an engine process and returns: many start at once.
 * This waits until it ran init: 0, or TXS_EPLUGIN (the caller frees in).
 * A thread executor is ready when instance_new returns: 0 at once. */
int instance_wait_started(instance *in);
/* Queues a scan of tx. Thread executors of one fan-out share one copy of
 * the text: *shared starts NULL, is made by the first that needs it, and
 * the caller releases it (txs_shared_text_release) after the fan-out.
 * ring_due: see txs_executor_submit_quiet. flush_due (may be NULL): an
 * engine process may only queue the frame, set it, and wait for
 * txs_proc_flush (txs_proc_submit_quiet). */
int instance_submit(instance *in, const char *tx, size_t len, txs_shared_text **shared,
                    txs_scan_fn cb, void *userdata, bool *ring_due, bool *flush_due);
int instance_restart(instance *in);
int instance_reload(instance *in, const txs_plugin_code *code, const txs_limits *limits);
void instance_stats(const instance *in, txs_executor_stats *stats);
uint32_t instance_load(const instance *in);
void instance_free(instance *in);

#endif
