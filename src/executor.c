/*
 * executor.c - one plugin instance: one thread, one engine, one queue.
 *
 * The engine is created, used and destroyed only on the executor's thread;
 * commands arrive through a bounded ring guarded by `mu` and carry plain C
 * data (bytes in, JSON text and numbers out). The thread waits on `wake`
 * while the ring is empty, pops under the lock and runs the command unlocked.
 * Submitters signal only on empty -> non-empty: there is one consumer, which
 * drains the ring before it waits again.
 *
 * Recycling: a scan is answered first, then the policy runs (so a restart
 * is not part of that scan's latency): a dead engine (timeout, memory) is
 * always replaced; otherwise every restart_every scans, or when a sampled
 * heap passes heap_restart_mb. A replacement is built before the old engine
 * is destroyed; if it cannot be built, a live old engine keeps serving. With
 * no engine left, scans answer "unavailable"; after quarantine_after failed
 * starts in a row the executor is quarantined and retries with backoff.
 *
 * Stats are atomics written by the thread and read from anywhere.
 */
#define _GNU_SOURCE
#include "clock.h"
#include "engine.h"
#include "error.h"
#include "txscan.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONTROL_SLOTS 8
/* Queued scans run per VM entry. Only a backlog makes batches: an idle
 * executor runs each scan as it comes, so batching adds no latency then. */
#define BATCH_MAX 16 /* ring room kept for restart/reload */
/* Heap statistics cost ~1 ms per 20 k live objects: read at least every
 * STATS_GAP_MIN scans, and no more often than keeps their cost near
 * STATS_BUDGET of scan time (see heap_policy). */
#define STATS_GAP_MIN 1024u
#define STATS_GAP_MAX (1u << 20)
#define STATS_BUDGET 0.01
#define BACKOFF_MIN_NS (100 * 1000000ull)
#define BACKOFF_MAX_NS (30 * 1000000000ull)

enum cmd_kind { CMD_SCAN, CMD_RESTART, CMD_RELOAD };
enum reason { R_SCHEDULED, R_HEAP, R_KILLED, R_MANUAL, R_RELOAD, R_RECOVER };

typedef struct cmd {
	enum cmd_kind kind;
	txs_scan_fn cb;          /* SCAN */
	void *userdata;
	size_t len;
	char *tx;                /* SCAN: NUL-terminated copy, same allocation */
	txs_plugin_code *code;   /* RELOAD: owned copy */
	txs_limits lim;          /* RELOAD: limits for the new engine ... */
	bool has_lim;            /* ... if set */
	sem_t *done;             /* RESTART/RELOAD: posted with rc/err set */
	int rc;
	char *err;
} cmd;

struct stats {
	_Atomic uint64_t scans, ok, errors, timeouts, memory_stops, overloaded, unavailable;
	_Atomic uint64_t restarts[6], failed_starts, generation, heap_bytes, console_dropped;
	_Atomic uint64_t latency_sum_ns, latency[TXS_LATENCY_BUCKETS];
	_Atomic uint32_t pending, consecutive_failures;
	_Atomic bool quarantined, busy, running;
};

struct txs_executor {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake;
	/* set at creation, read by any thread */
	uint32_t queue_cap;
	size_t max_input;
	char id[65];

	/* guarded by mu */
	cmd **ring;
	uint32_t ring_cap, head, count;
	bool stopping, started;
	int start_rc;
	char *start_err;

	/* the executor's thread only (and the constructor before it starts) */
	engine *eng;
	engine *standby;  /* built while idle, for the next scheduled restart */
	engine *retired;  /* replaced, destroyed when next idle */
	txs_plugin_code *code;
	txs_limits lim;
	uint32_t scans_in_gen, since_sample, since_stats, stats_gap;
	size_t rss_at_sample;
	double scan_ns_avg; /* moving average of a scan's engine time */
	uint64_t retry_at_ns, backoff_ns;
	char *last_start_err;
	txs_console_fn console;
	void *console_ud;

	struct stats st;
};

static const double bounds_ms[TXS_LATENCY_BUCKETS] = {
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000, 1e300};

const double *txs_latency_bounds_ms(void)
{
	return bounds_ms;
}

static uint64_t now_ns(void)
{
	return txs_now_ns();
}

#define INC(field) atomic_fetch_add_explicit(&(field), 1, memory_order_relaxed)
#define GET(field) atomic_load_explicit(&(field), memory_order_relaxed)
#define SET(field, v) atomic_store_explicit(&(field), (v), memory_order_relaxed)

/* ---- limits and code --------------------------------------------------- */

void txs_limits_init(txs_limits *l)
{
	*l = (txs_limits){
	    .timeout_ms = 50,
	    .init_timeout_ms = 1000,
	    .heap_limit_mb = 64,
	    .heap_restart_mb = 32,
	    .restart_every = 10000,
	    .heap_sample_every = 64,
	    .queue_capacity = 1024,
	    .quarantine_after = 3,
	    .max_input_bytes = 1u << 20,
	    .max_result_bytes = 1u << 20,
	};
}

static void limits_normalize(txs_limits *l)
{
	txs_limits d;
	txs_limits_init(&d);
	if (!l->timeout_ms)
		l->timeout_ms = d.timeout_ms;
	if (!l->init_timeout_ms)
		l->init_timeout_ms = d.init_timeout_ms;
	if (!l->heap_sample_every)
		l->heap_sample_every = d.heap_sample_every;
	if (!l->queue_capacity)
		l->queue_capacity = d.queue_capacity;
	if (!l->quarantine_after)
		l->quarantine_after = d.quarantine_after;
	if (!l->max_input_bytes)
		l->max_input_bytes = d.max_input_bytes;
	if (!l->max_result_bytes)
		l->max_result_bytes = d.max_result_bytes;
}

static void code_free(txs_plugin_code *c)
{
	if (!c)
		return;
	free((char *)c->id);
	free((char *)c->version);
	free((char *)c->filename);
	free((char *)c->source);
	free((char *)c->config_json);
	free(c);
}

static char *dup_or(const char *s, const char *fallback)
{
	return strdup(s ? s : fallback);
}

static txs_plugin_code *code_copy(const txs_plugin_code *in)
{
	txs_plugin_code *c = calloc(1, sizeof *c);
	char *src = c ? malloc(in->source_len + 1) : NULL;
	if (!src) {
		free(c);
		return NULL;
	}
	memcpy(src, in->source, in->source_len);
	src[in->source_len] = '\0';
	c->source = src;
	c->source_len = in->source_len;
	c->id = dup_or(in->id, "");
	c->version = dup_or(in->version, "0.0.0");
	c->filename = dup_or(in->filename, "plugin.js");
	c->config_json = dup_or(in->config_json, "{}");
	if (!c->id || !c->version || !c->filename || !c->config_json) {
		code_free(c);
		return NULL;
	}
	return c;
}

static int code_check(const txs_plugin_code *c)
{
	if (!c || !c->id || !c->id[0] || !c->source)
		return txs_fail(TXS_EINVAL, "plugin code needs an id and a source");
	return 0;
}

/* ---- engine building (executor thread) ------------------------------- */

static void console_bridge(int level, const char *msg, size_t len, void *ud)
{
	static const char *const names[] = {"debug", "log", "info", "warn", "error"};
	txs_executor *ex = ud;
	if (ex->console)
		ex->console(ex->code->id, names[level], msg, len, ex->console_ud);
}

static int build(txs_executor *ex, const txs_plugin_code *code, engine **out, char **err)
{
	engine_config cfg = {
	    .plugin_id = code->id,
	    .plugin_version = code->version,
	    .filename = code->filename,
	    .source = code->source,
	    .source_len = code->source_len,
	    .config_json = code->config_json,
	    .timeout_ms = ex->lim.timeout_ms,
	    .init_timeout_ms = ex->lim.init_timeout_ms,
	    .heap_limit_mb = ex->lim.heap_limit_mb,
	    .max_result_bytes = ex->lim.max_result_bytes,
	    .console = console_bridge,
	    .console_userdata = ex,
	};
	return engine_new(out, &cfg, err);
}

static void engine_drop(txs_executor *ex)
{
	if (!ex->eng)
		return;
	atomic_fetch_add_explicit(&ex->st.console_dropped, engine_console_dropped(ex->eng),
	                          memory_order_relaxed);
	engine_free(ex->eng);
	ex->eng = NULL;
	SET(ex->st.running, false);
}

static void quarantine_or_retry(txs_executor *ex)
{
	uint32_t fails = GET(ex->st.consecutive_failures);
	if (fails < ex->lim.quarantine_after)
		return;
	ex->backoff_ns = ex->backoff_ns ? ex->backoff_ns * 2 : BACKOFF_MIN_NS;
	if (ex->backoff_ns > BACKOFF_MAX_NS)
		ex->backoff_ns = BACKOFF_MAX_NS;
	ex->retry_at_ns = now_ns() + ex->backoff_ns;
	SET(ex->st.quarantined, true);
}

/* Builds a fresh engine from code, then destroys the old one. If the build
 * fails, a live old engine stays; a dead one is dropped. *err (may be NULL)
 * gets the failure. */
/* The old engine is retired (destroyed when the thread is next idle) unless
 * it is dead: a dead engine is never kept. */
static void retire(txs_executor *ex)
{
	if (!ex->eng)
		return;
	if (engine_dead(ex->eng) || ex->retired) {
		engine_drop(ex);
		return;
	}
	atomic_fetch_add_explicit(&ex->st.console_dropped, engine_console_dropped(ex->eng),
	                          memory_order_relaxed);
	ex->retired = ex->eng;
	ex->eng = NULL;
}

static int replace(txs_executor *ex, const txs_plugin_code *code, enum reason why, char **err)
{
	engine *fresh = NULL;
	char *msg = NULL;
	if (ex->standby && code == ex->code) {
		fresh = ex->standby; /* prebuilt from the same code while idle */
		ex->standby = NULL;
	}
	if (fresh || build(ex, code, &fresh, &msg) == 0) {
		retire(ex);
		ex->eng = fresh;
		SET(ex->st.running, true);
		ex->scans_in_gen = ex->since_sample = ex->since_stats = 0;
		ex->rss_at_sample = 0;
		ex->backoff_ns = 0;
		INC(ex->st.restarts[why]);
		INC(ex->st.generation);
		SET(ex->st.consecutive_failures, 0);
		SET(ex->st.quarantined, false);
		return 0;
	}
	INC(ex->st.failed_starts);
	INC(ex->st.consecutive_failures);
	free(ex->last_start_err);
	ex->last_start_err = strdup(msg ? msg : "engine start failed");
	if (ex->eng && engine_dead(ex->eng))
		engine_drop(ex);
	if (!ex->eng)
		quarantine_or_retry(ex);
	if (err)
		*err = msg;
	else
		free(msg);
	return TXS_EPLUGIN;
}

/* ---- scans (executor thread) --------------------------------------------- */

static void record_latency(txs_executor *ex, uint64_t ns);

static void record_latency(txs_executor *ex, uint64_t ns)
{
	double ms = (double)ns / 1e6;
	int b = 0;
	while (b < TXS_LATENCY_BUCKETS - 1 && ms > bounds_ms[b])
		b++;
	INC(ex->st.latency[b]);
	atomic_fetch_add_explicit(&ex->st.latency_sum_ns, ns, memory_order_relaxed);
	ex->scan_ns_avg += ((double)ns - ex->scan_ns_avg) / 64;
}

static txs_status map_status(engine_status s)
{
	switch (s) {
	case ENGINE_OK: return TXS_STATUS_OK;
	case ENGINE_TIMEOUT: return TXS_STATUS_TIMEOUT;
	case ENGINE_MEMORY: return TXS_STATUS_MEMORY;
	default: return TXS_STATUS_ERROR;
	}
}

static void count_status(txs_executor *ex, txs_status s)
{
	switch (s) {
	case TXS_STATUS_OK: INC(ex->st.ok); break;
	case TXS_STATUS_TIMEOUT: INC(ex->st.timeouts); break;
	case TXS_STATUS_MEMORY: INC(ex->st.memory_stops); break;
	default: INC(ex->st.errors); break;
	}
}

static void scan_unavailable(txs_executor *ex, txs_scan_result *r)
{
	INC(ex->st.unavailable);
	r->status = TXS_STATUS_UNAVAILABLE;
	char buf[1024];
	snprintf(buf, sizeof buf, "plugin %s has no running engine%s%s", ex->code->id,
	         ex->last_start_err ? ": " : "", ex->last_start_err ? ex->last_start_err : "");
	r->error = strdup(buf);
}

static void answer(txs_executor *ex, cmd *c, txs_scan_result *r)
{
	atomic_fetch_sub_explicit(&ex->st.pending, 1, memory_order_relaxed);
	c->cb(r, c->userdata);
	free(c);
}

static void answer_run(txs_executor *ex, cmd *c, engine_result *er)
{
	txs_scan_result r = {.status = map_status(er->status), .json = er->json,
	                     .json_len = er->json_len, .error = er->error, .ms = er->ms,
	                     .generation = GET(ex->st.generation)};
	INC(ex->st.scans);
	count_status(ex, r.status);
	record_latency(ex, (uint64_t)(er->ms * 1e6));
	answer(ex, c, &r);
}

/* How many scans to leave between heap statistics that cost cost_ns, so
 * that they take about STATS_BUDGET of the scan time. */
static uint32_t stats_gap(const txs_executor *ex, uint64_t cost_ns)
{
	double scan = ex->scan_ns_avg > 1000 ? ex->scan_ns_avg : 1000;
	double gap = (double)cost_ns / (STATS_BUDGET * scan);
	return gap < STATS_GAP_MIN ? STATS_GAP_MIN : gap > STATS_GAP_MAX ? STATS_GAP_MAX : (uint32_t)gap;
}

/* heap_restart_mb. Every heap_sample_every scans, process RSS (one pread)
 * is read; JSC's heap statistics, which walk the heap, are read when RSS
 * passed its high-water mark by a MiB (growth: each MiB is paid for once,
 * however RSS swings below it), or once the gap has passed. The gap adapts
 * to what a reading costs. A new engine starts with a reading. */
static void heap_policy(txs_executor *ex, size_t n)
{
	ex->since_sample += (uint32_t)n;
	ex->since_stats += (uint32_t)n;
	if (!ex->lim.heap_restart_mb || ex->since_sample < ex->lim.heap_sample_every)
		return;
	ex->since_sample = 0;
	if (!ex->stats_gap)
		ex->stats_gap = STATS_GAP_MIN;
	size_t rss = engine_process_rss();
	bool grew = rss > ex->rss_at_sample + (1u << 20);
	if (ex->since_stats < ex->stats_gap && !grew)
		return;
	uint64_t t0 = now_ns();
	size_t heap = engine_heap_bytes(ex->eng);
	ex->stats_gap = stats_gap(ex, now_ns() - t0);
	ex->since_stats = 0;
	if (rss > ex->rss_at_sample)
		ex->rss_at_sample = rss;
	SET(ex->st.heap_bytes, heap);
	if (heap > ((size_t)ex->lim.heap_restart_mb << 20))
		replace(ex, ex->code, R_HEAP, NULL);
}

/* The recycling policy, after n scans were answered. */
static void after_scans(txs_executor *ex, size_t n)
{
	if (engine_dead(ex->eng)) {
		replace(ex, ex->code, R_KILLED, NULL);
		return;
	}
	ex->scans_in_gen += (uint32_t)n;
	if (ex->lim.restart_every && ex->scans_in_gen >= ex->lim.restart_every) {
		replace(ex, ex->code, R_SCHEDULED, NULL);
		return;
	}
	heap_policy(ex, n);
}

/* How many of n queued scans the engine may run before the policy must run
 * (restart_every). */
static size_t batch_size(const txs_executor *ex, size_t n)
{
	if (!ex->lim.restart_every)
		return n;
	size_t left = ex->lim.restart_every - ex->scans_in_gen;
	return left < n ? (left ? left : 1) : n;
}

/* Runs queued scans through the engine in batches, answering each; a scan
 * that kills the engine ends its batch, and the rest go to the fresh one. */
static void do_scans(txs_executor *ex, cmd **c, size_t n)
{
	const char *tx[BATCH_MAX];
	engine_result er[BATCH_MAX];
	size_t i = 0;
	while (i < n) {
		if (!ex->eng && !GET(ex->st.quarantined))
			replace(ex, ex->code, R_RECOVER, NULL);
		if (!ex->eng)
			break;
		size_t k = batch_size(ex, n - i);
		for (size_t j = 0; j < k; j++)
			tx[j] = c[i + j]->tx;
		size_t ran = engine_scan_batch(ex->eng, tx, k, er);
		for (size_t j = 0; j < ran; j++)
			answer_run(ex, c[i + j], &er[j]);
		i += ran;
		after_scans(ex, ran);
	}
	for (; i < n; i++) {
		txs_scan_result r = {0};
		scan_unavailable(ex, &r);
		answer(ex, c[i], &r);
	}
}

static void do_control(txs_executor *ex, cmd *c)
{
	c->err = NULL;
	if (c->kind == CMD_RESTART) {
		c->rc = replace(ex, ex->code, R_MANUAL, &c->err);
	} else {
		txs_limits old_lim = ex->lim;
		engine_free(ex->standby); /* built from the old code */
		ex->standby = NULL;
		if (c->has_lim) {
			ex->lim = c->lim;
			ex->lim.queue_capacity = old_lim.queue_capacity;
			ex->lim.max_input_bytes = old_lim.max_input_bytes;
		}
		c->rc = replace(ex, c->code, R_RELOAD, &c->err);
		if (c->rc == 0) {
			txs_plugin_code *old = ex->code;
			ex->code = c->code;
			c->code = old; /* the caller frees what it gets back */
		} else {
			ex->lim = old_lim;
		}
	}
	atomic_fetch_sub_explicit(&ex->st.pending, 1, memory_order_relaxed);
	sem_post(c->done);
}

static void answer_stopped(txs_executor *ex, cmd *c)
{
	atomic_fetch_sub_explicit(&ex->st.pending, 1, memory_order_relaxed);
	if (c->kind != CMD_SCAN) {
		c->rc = TXS_ESTOPPED;
		c->err = strdup("executor is stopping");
		sem_post(c->done);
		return;
	}
	txs_scan_result r = {.status = TXS_STATUS_STOPPED, .error = strdup("executor stopped")};
	c->cb(&r, c->userdata);
	free(c);
}

/* ---- the thread ---------------------------------------------------------- */

static cmd *pop_locked(txs_executor *ex)
{
	cmd *c = ex->ring[ex->head];
	ex->head = (ex->head + 1) % ex->ring_cap;
	ex->count--;
	return c;
}

/* Waits for the next commands: one control command, or up to max scans in
 * a row. 0 when stopping. While quarantined, wakes at retry time and tries
 * to start an engine. */
/* A scheduled restart is near: the last eighth of restart_every. */
static bool standby_wanted(const txs_executor *ex)
{
	uint32_t every = ex->lim.restart_every;
	return ex->eng && !ex->standby && every && ex->scans_in_gen >= every - every / 8;
}

/* Work done only while no command waits: destroy a retired engine, build
 * the standby. Called with mu held; returns with it held. */
static bool idle_work_locked(txs_executor *ex)
{
	if (!ex->retired && !standby_wanted(ex))
		return false;
	pthread_mutex_unlock(&ex->mu);
	if (ex->retired) {
		engine_free(ex->retired);
		ex->retired = NULL;
	} else {
		char *err = NULL;
		if (build(ex, ex->code, &ex->standby, &err) != 0)
			ex->standby = NULL; /* the scheduled restart will build and report it */
		free(err);
	}
	pthread_mutex_lock(&ex->mu);
	return true;
}

static size_t next_cmds(txs_executor *ex, cmd **out, size_t max)
{
	pthread_mutex_lock(&ex->mu);
	while (ex->count == 0 && !ex->stopping) {
		if (idle_work_locked(ex))
			continue;
		if (!GET(ex->st.quarantined)) {
			pthread_cond_wait(&ex->wake, &ex->mu);
			continue;
		}
		struct timespec ts = txs_timespec(ex->retry_at_ns);
		if (pthread_cond_timedwait(&ex->wake, &ex->mu, &ts) == ETIMEDOUT) {
			pthread_mutex_unlock(&ex->mu);
			replace(ex, ex->code, R_RECOVER, NULL);
			pthread_mutex_lock(&ex->mu);
		}
	}
	size_t n = 0;
	if (!ex->stopping) {
		out[n++] = pop_locked(ex);
		while (out[0]->kind == CMD_SCAN && n < max && ex->count &&
		       ex->ring[ex->head]->kind == CMD_SCAN)
			out[n++] = pop_locked(ex);
	}
	pthread_mutex_unlock(&ex->mu);
	return n;
}

static void drain_stopped(txs_executor *ex)
{
	for (;;) {
		pthread_mutex_lock(&ex->mu);
		cmd *c = ex->count ? pop_locked(ex) : NULL;
		pthread_mutex_unlock(&ex->mu);
		if (!c)
			return;
		answer_stopped(ex, c);
	}
}

static void handshake(txs_executor *ex, int rc, char *err)
{
	pthread_mutex_lock(&ex->mu);
	ex->started = true;
	ex->start_rc = rc;
	ex->start_err = err;
	pthread_mutex_unlock(&ex->mu);
	pthread_cond_broadcast(&ex->wake);
}

static void *thread_main(void *arg)
{
	txs_executor *ex = arg;
	char name[16];
	snprintf(name, sizeof name, "txs:%s", ex->code->id);
	pthread_setname_np(pthread_self(), name);

	char *err = NULL;
	int rc = build(ex, ex->code, &ex->eng, &err);
	if (rc == 0) {
		INC(ex->st.generation);
		SET(ex->st.running, true);
	}
	handshake(ex, rc, err);
	if (rc != 0)
		return NULL;
	cmd *c[BATCH_MAX];
	size_t n;
	while ((n = next_cmds(ex, c, BATCH_MAX))) {
		SET(ex->st.busy, true);
		if (c[0]->kind == CMD_SCAN)
			do_scans(ex, c, n);
		else
			do_control(ex, c[0]);
		SET(ex->st.busy, false);
	}
	drain_stopped(ex);
	engine_drop(ex);
	engine_free(ex->standby);
	engine_free(ex->retired);
	return NULL;
}

/* ---- public entry points (any thread) ---------------------------------- */

static void executor_destroy(txs_executor *ex)
{
	pthread_mutex_destroy(&ex->mu);
	pthread_cond_destroy(&ex->wake);
	free(ex->ring);
	free(ex->start_err);
	free(ex->last_start_err);
	code_free(ex->code);
	free(ex);
}

static int executor_alloc(txs_executor **out, const txs_plugin_code *code, const txs_limits *limits)
{
	txs_executor *ex = calloc(1, sizeof *ex);
	if (!ex)
		return txs_fail(TXS_ENOMEM, "out of memory");
	if (limits)
		ex->lim = *limits;
	else
		txs_limits_init(&ex->lim);
	limits_normalize(&ex->lim);
	snprintf(ex->id, sizeof ex->id, "%s", code->id);
	ex->queue_cap = ex->lim.queue_capacity;
	ex->max_input = ex->lim.max_input_bytes;
	ex->ring_cap = ex->queue_cap + CONTROL_SLOTS;
	ex->ring = calloc(ex->ring_cap, sizeof *ex->ring);
	ex->code = code_copy(code);
	pthread_mutex_init(&ex->mu, NULL);
	txs_cond_init(&ex->wake);
	*out = ex;
	if (!ex->ring || !ex->code)
		return txs_fail(TXS_ENOMEM, "out of memory");
	return 0;
}

int txs_executor_new(txs_executor **out, const txs_plugin_code *code, const txs_limits *limits,
                     txs_console_fn console, void *userdata)
{
	txs_executor *ex = NULL;
	*out = NULL;
	int rc = code_check(code);
	if (rc || (rc = executor_alloc(&ex, code, limits)))
		goto fail;
	ex->console = console;
	ex->console_ud = userdata;
	if (pthread_create(&ex->thread, NULL, thread_main, ex) != 0) {
		rc = txs_fail(TXS_ENOMEM, "cannot start a thread for plugin %s", code->id);
		goto fail;
	}
	pthread_mutex_lock(&ex->mu);
	while (!ex->started)
		pthread_cond_wait(&ex->wake, &ex->mu);
	pthread_mutex_unlock(&ex->mu);
	if (ex->start_rc != 0) {
		pthread_join(ex->thread, NULL);
		rc = txs_fail_msg(TXS_EPLUGIN, ex->start_err);
		goto fail;
	}
	*out = ex;
	return 0;
fail:
	if (ex)
		executor_destroy(ex);
	return rc;
}

/* Pushes c; control commands may use the reserved slots. */
static int push(txs_executor *ex, cmd *c)
{
	uint32_t limit = c->kind == CMD_SCAN ? ex->queue_cap : ex->ring_cap;
	pthread_mutex_lock(&ex->mu);
	if (ex->stopping) {
		pthread_mutex_unlock(&ex->mu);
		return TXS_ESTOPPED;
	}
	if (ex->count >= limit) {
		pthread_mutex_unlock(&ex->mu);
		INC(ex->st.overloaded);
		return TXS_EOVERLOADED;
	}
	ex->ring[(ex->head + ex->count) % ex->ring_cap] = c;
	bool was_empty = ex->count++ == 0;
	atomic_fetch_add_explicit(&ex->st.pending, 1, memory_order_relaxed);
	pthread_mutex_unlock(&ex->mu);
	if (was_empty)
		pthread_cond_signal(&ex->wake);
	return 0;
}

int txs_executor_submit(txs_executor *ex, const char *tx, size_t len, txs_scan_fn cb, void *userdata)
{
	if (!ex || !tx || !cb)
		return txs_fail(TXS_EINVAL, "txs_executor_submit: NULL argument");
	if (len > ex->max_input)
		return txs_fail(TXS_ETOOBIG, "transaction is %zu bytes, the cap is %zu", len,
		                ex->max_input);
	if (GET(ex->st.quarantined)) {
		INC(ex->st.unavailable);
		return txs_fail(TXS_EUNAVAILABLE, "plugin %s is quarantined after repeated failed starts",
		                ex->id);
	}
	cmd *c = malloc(sizeof *c + len + 1);
	if (!c)
		return txs_fail(TXS_ENOMEM, "out of memory");
	*c = (cmd){.kind = CMD_SCAN, .cb = cb, .userdata = userdata, .len = len, .tx = (char *)(c + 1)};
	memcpy(c->tx, tx, len);
	c->tx[len] = '\0';
	int rc = push(ex, c);
	if (rc) {
		free(c);
		return rc == TXS_ESTOPPED ? txs_fail(rc, "executor is stopping")
		                          : txs_fail(rc, "plugin %s: queue full", ex->id);
	}
	return 0;
}

struct sync_wait {
	sem_t sem;
	txs_scan_result *out;
};

static void sync_done(txs_scan_result *r, void *ud)
{
	struct sync_wait *w = ud;
	*w->out = *r;
	sem_post(&w->sem);
}

static void sem_wait_all(sem_t *s)
{
	while (sem_wait(s) != 0 && errno == EINTR)
		;
}

static txs_status refused_status(int rc)
{
	switch (rc) {
	case TXS_EOVERLOADED: return TXS_STATUS_OVERLOADED;
	case TXS_EUNAVAILABLE: return TXS_STATUS_UNAVAILABLE;
	case TXS_ESTOPPED: return TXS_STATUS_STOPPED;
	default: return TXS_STATUS_ERROR;
	}
}

int txs_executor_scan(txs_executor *ex, const char *tx, size_t len, txs_scan_result *result)
{
	if (!result)
		return txs_fail(TXS_EINVAL, "txs_executor_scan: NULL result");
	memset(result, 0, sizeof *result);
	struct sync_wait w = {.out = result};
	sem_init(&w.sem, 0, 0);
	int rc = txs_executor_submit(ex, tx, len, sync_done, &w);
	if (rc == 0)
		sem_wait_all(&w.sem);
	sem_destroy(&w.sem);
	if (rc == TXS_EINVAL)
		return rc;
	if (rc) {
		result->status = refused_status(rc);
		result->error = strdup(txs_last_error());
	}
	return 0;
}

static int control(txs_executor *ex, enum cmd_kind kind, txs_plugin_code *code,
                   const txs_limits *lim)
{
	sem_t done;
	sem_init(&done, 0, 0);
	cmd c = {.kind = kind, .code = code, .done = &done, .has_lim = lim != NULL};
	if (lim) {
		c.lim = *lim;
		limits_normalize(&c.lim);
	}
	int rc = push(ex, &c);
	if (rc == 0) {
		sem_wait_all(&done);
		rc = c.rc;
	}
	sem_destroy(&done);
	code_free(c.code); /* after a reload: the old code, or the rejected new one */
	if (rc == TXS_EOVERLOADED)
		return txs_fail(rc, "plugin %s: command queue full", ex->id);
	if (rc == TXS_ESTOPPED && !c.err)
		return txs_fail(rc, "executor is stopping");
	if (rc)
		txs_fail_msg(rc, c.err);
	free(c.err);
	return rc;
}

int txs_executor_restart(txs_executor *ex)
{
	if (!ex)
		return txs_fail(TXS_EINVAL, "txs_executor_restart: NULL executor");
	return control(ex, CMD_RESTART, NULL, NULL);
}

int txs_executor_reload(txs_executor *ex, const txs_plugin_code *code, const txs_limits *limits)
{
	if (!ex)
		return txs_fail(TXS_EINVAL, "txs_executor_reload: NULL executor");
	int rc = code_check(code);
	if (rc)
		return rc;
	txs_plugin_code *copy = code_copy(code);
	if (!copy)
		return txs_fail(TXS_ENOMEM, "out of memory");
	return control(ex, CMD_RELOAD, copy, limits);
}

void txs_executor_stats_get(const txs_executor *ex, txs_executor_stats *s)
{
	const struct stats *st = &ex->st;
	memset(s, 0, sizeof *s);
	s->scans = GET(st->scans);
	s->ok = GET(st->ok);
	s->errors = GET(st->errors);
	s->timeouts = GET(st->timeouts);
	s->memory_stops = GET(st->memory_stops);
	s->overloaded = GET(st->overloaded);
	s->unavailable = GET(st->unavailable);
	s->restarts_scheduled = GET(st->restarts[R_SCHEDULED]);
	s->restarts_heap = GET(st->restarts[R_HEAP]);
	s->restarts_killed = GET(st->restarts[R_KILLED]) + GET(st->restarts[R_RECOVER]);
	s->restarts_manual = GET(st->restarts[R_MANUAL]);
	s->reloads = GET(st->restarts[R_RELOAD]);
	s->failed_starts = GET(st->failed_starts);
	s->generation = GET(st->generation);
	s->heap_bytes = GET(st->heap_bytes);
	s->console_dropped = GET(st->console_dropped);
	s->queue_depth = GET(st->pending);
	s->consecutive_failures = GET(st->consecutive_failures);
	s->quarantined = GET(st->quarantined);
	s->running = GET(st->running);
	s->busy = GET(st->busy);
	s->latency_sum_ms = (double)GET(st->latency_sum_ns) / 1e6;
	for (int i = 0; i < TXS_LATENCY_BUCKETS; i++)
		s->latency_buckets[i] = GET(st->latency[i]);
}

uint32_t txs_executor_load(const txs_executor *ex)
{
	return GET(ex->st.pending);
}

void txs_executor_free(txs_executor *ex)
{
	if (!ex)
		return;
	pthread_mutex_lock(&ex->mu);
	ex->stopping = true;
	pthread_mutex_unlock(&ex->mu);
	pthread_cond_broadcast(&ex->wake);
	pthread_join(ex->thread, NULL);
	executor_destroy(ex);
}

void txs_scan_result_clear(txs_scan_result *r)
{
	if (!r)
		return;
	free(r->json);
	free(r->error);
	memset(r, 0, sizeof *r);
}
