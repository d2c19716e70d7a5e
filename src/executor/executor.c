/*
 * executor.c - one plugin instance: two lanes (OS threads), one queue.
 *
 * Every engine is created, used and destroyed on one lane's thread; no
 * engine pointer leaves it. Commands arrive through a bounded ring guarded
 * by `mu` and carry plain C data (bytes in, JSON text and numbers out).
 *
 * Lanes. Exactly one lane is ACTIVE (`active`): it pops the ring and runs
 * commands on its engine. It waits on `wake` while the ring is empty;
 * submitters signal only on empty -> non-empty (one consumer drains the
 * ring before it waits again). The other lane is the STANDBY: it waits on
 * `sb_wake` and, when asked, builds a fresh engine from the current code
 * and holds it. The standby lane's thread is started on the first request,
 * so an executor that never nears a restart runs one thread and one engine.
 *
 * Standby state `sb` (guarded by mu; "A" = active lane, "S" = standby lane):
 *
 *   IDLE --A asks--> WANTED --S starts--> BUILDING --S: built--> READY
 *     ^                                      |                    |
 *     +----- S: failed, or code changed -----+                    |
 *     +---- A: reload (S drops it) / A: swap (S becomes A) -------+
 *
 * A asks when its engine is near a scheduled restart (the last quarter of
 * restart_every, or sooner when the remaining scans at the current pace
 * would take less than two builds), when the heap passes 3/4 of
 * heap_restart_mb, and right after a kill.
 *
 * Swap: when A's engine must be replaced (scheduled, heap, killed, manual,
 * recovery) and sb == READY, A, under mu, puts the commands it popped but
 * did not run back at the head of the ring, starts the new generation's
 * stats, and sets `active` to S. S's engine was never used, so it is fresh.
 * A then, as the new standby, destroys its old engine on its own thread.
 * A kill leaves sb == WANTED so that the next engine is built at once.
 * With no READY standby, A builds the replacement inline, as a one-lane
 * executor would (correctness first); a reload always does (canary), and
 * bumps `code_epoch` so that an engine built from the old code is dropped.
 *
 * Recycling: a scan is answered first, then the policy runs (so a restart
 * is not part of that scan's latency): a dead engine (timeout, memory) is
 * always replaced; otherwise every restart_every scans, or when a sampled
 * heap passes heap_restart_mb. An inline replacement is built before the
 * old engine is destroyed; if it cannot be built, a live old engine keeps
 * serving. With no engine left, scans answer "unavailable"; after
 * quarantine_after failed starts in a row the executor is quarantined and
 * retries with backoff. Standby builds are speculative: their failures are
 * not counted (the inline build that follows reports them).
 *
 * State owned by "the active lane" (scans_in_gen ...) is touched only by
 * whichever lane is active; a swap hands it over under mu. Stats are
 * atomics written by the lanes and read from anywhere.
 */
#define _GNU_SOURCE
#include "bell.h"
#include "util/clock.h"
#include "engine/engine.h"
#include "util/error.h"
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
#define BATCH_MAX 16
/* Heap statistics cost ~1 ms per 20 k live objects: read at least every
 * STATS_GAP_MIN scans, and no more often than keeps their cost near
 * STATS_BUDGET of scan time (see heap_policy). */
#define STATS_GAP_MIN 1024u
#define STATS_GAP_MAX (1u << 20)
#define STATS_BUDGET 0.01
#define BACKOFF_MIN_NS (100 * 1000000ull)
#define BACKOFF_MAX_NS (30 * 1000000000ull)
/* Ask the standby this long before a scheduled restart: two builds plus. */
#define LEAD_BUILDS 2.0
#define LEAD_EXTRA_NS 1000000.0

enum cmd_kind { CMD_SCAN, CMD_RESTART, CMD_RELOAD };
enum reason { R_SCHEDULED, R_HEAP, R_KILLED, R_MANUAL, R_RELOAD, R_RECOVER };
enum sb_state { SB_IDLE, SB_WANTED, SB_BUILDING, SB_READY };

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
	_Atomic uint64_t standby_swaps, build_ns, heap_readings;
	_Atomic uint64_t latency_sum_ns, latency[TXS_LATENCY_BUCKETS];
	_Atomic uint32_t pending, consecutive_failures;
	_Atomic bool quarantined, busy, running, standby_ready;
};

typedef struct lane {
	struct txs_executor *ex;
	pthread_t thread;
	int idx;
	bool started;     /* thread created; guarded by mu */
	/* this lane's thread only */
	engine *eng;      /* active: the serving engine; standby: READY or stale */
	engine *retired;  /* replaced inline, destroyed when next idle */
	bool swapped;     /* handed the ring to the other lane */
	cmd **rest;       /* popped, not yet run: given back on a swap */
	size_t nrest;
} lane;

struct txs_executor {
	pthread_mutex_t mu;
	pthread_cond_t wake;     /* the active lane waits here, unless ... */
	txs_bell *bell;          /* ... it shares its host's bell (mu) */
	pthread_cond_t sb_wake;  /* the standby lane waits here */
	lane lanes[2];
	/* set at creation, read by any thread */
	uint32_t queue_cap;
	size_t max_input;
	char id[65];
	txs_console_fn console;
	void *console_ud;

	/* guarded by mu */
	cmd **ring;
	uint32_t ring_cap, head, count;
	bool stopping, started;
	int start_rc;
	char *start_err;
	int active;              /* index of the active lane */
	enum sb_state sb;
	uint64_t code_epoch;     /* bumped by every successful reload */

	/* written by the active lane under mu; read by it freely, by others
	 * under mu */
	txs_plugin_code *code;
	txs_limits lim;

	/* the active lane only */
	uint32_t scans_in_gen, since_sample, since_stats, stats_gap;
	uint64_t gen_start_ns, asked_gen;
	size_t rss_at_walk, heap_at_walk; /* at the last heap statistics reading */
	double scan_ns_avg; /* moving average of a scan's engine time */
	uint64_t retry_at_ns, backoff_ns;
	char *last_start_err;

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

/* Code is shared, read-only, between the active lane and a standby build
 * (a reload may replace it mid-build): counted references. */
typedef struct shared_code {
	txs_plugin_code c; /* first: a txs_plugin_code * is a shared_code * */
	_Atomic unsigned refs;
} shared_code;

static txs_plugin_code *code_hold(txs_plugin_code *c)
{
	atomic_fetch_add_explicit(&((shared_code *)c)->refs, 1, memory_order_relaxed);
	return c;
}

static void code_free(txs_plugin_code *c)
{
	if (!c || atomic_fetch_sub_explicit(&((shared_code *)c)->refs, 1, memory_order_acq_rel) != 1)
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
	shared_code *sc = calloc(1, sizeof *sc);
	char *src = sc ? malloc(in->source_len + 1) : NULL;
	if (!src) {
		free(sc);
		return NULL;
	}
	atomic_init(&sc->refs, 1);
	txs_plugin_code *c = &sc->c;
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

/* ---- engine building (any lane, on its own thread) ----------------------- */

static void console_bridge(int level, const char *msg, size_t len, void *ud)
{
	static const char *const names[] = {"debug", "log", "info", "warn", "error"};
	txs_executor *ex = ud;
	if (ex->console)
		ex->console(ex->id, names[level], msg, len, ex->console_ud);
}

static int build(txs_executor *ex, const txs_plugin_code *code, const txs_limits *lim,
                 engine **out, char **err)
{
	engine_config cfg = {
	    .plugin_id = code->id,
	    .plugin_version = code->version,
	    .filename = code->filename,
	    .source = code->source,
	    .source_len = code->source_len,
	    .config_json = code->config_json,
	    .timeout_ms = lim->timeout_ms,
	    .init_timeout_ms = lim->init_timeout_ms,
	    .heap_limit_mb = lim->heap_limit_mb,
	    .max_result_bytes = lim->max_result_bytes,
	    .console = console_bridge,
	    .console_userdata = ex,
	};
	uint64_t t0 = now_ns();
	int rc = engine_new(out, &cfg, err);
	if (rc == 0)
		SET(ex->st.build_ns, now_ns() - t0);
	return rc;
}

static void engine_release(txs_executor *ex, engine **e)
{
	if (!*e)
		return;
	atomic_fetch_add_explicit(&ex->st.console_dropped, engine_console_dropped(*e),
	                          memory_order_relaxed);
	engine_free(*e);
	*e = NULL;
}

/* The active lane drops its engine: no engine serves any more. */
static void engine_drop(lane *ln)
{
	if (!ln->eng)
		return;
	engine_release(ln->ex, &ln->eng);
	SET(ln->ex->st.running, false);
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

/* ---- the standby lane, seen from the active lane ------------------------- */

static void *lane_main(void *arg);

/* The standby lane's thread starts on the first request. mu held. */
static bool standby_thread_locked(txs_executor *ex)
{
	lane *sb = &ex->lanes[1 - ex->active];
	if (sb->started)
		return true;
	if (ex->stopping || pthread_create(&sb->thread, NULL, lane_main, sb) != 0)
		return false;
	sb->started = true;
	return true;
}

/* Asks the standby lane to build an engine (once per generation). */
static void request_standby(txs_executor *ex)
{
	ex->asked_gen = GET(ex->st.generation);
	pthread_mutex_lock(&ex->mu);
	bool ask = ex->sb == SB_IDLE && standby_thread_locked(ex);
	if (ask)
		ex->sb = SB_WANTED;
	pthread_mutex_unlock(&ex->mu);
	if (ask)
		pthread_cond_signal(&ex->sb_wake);
}

/* A scheduled restart is near: the last quarter of restart_every, or less
 * scan time left, at this generation's pace, than LEAD_BUILDS builds. */
static bool restart_near(const txs_executor *ex)
{
	uint32_t every = ex->lim.restart_every, done = ex->scans_in_gen;
	if (!every || !done || done >= every)
		return false;
	uint32_t left = every - done;
	if (left <= every / 4)
		return true;
	double per_scan = (double)(now_ns() - ex->gen_start_ns) / done;
	return left * per_scan < LEAD_BUILDS * (double)GET(ex->st.build_ns) + LEAD_EXTRA_NS;
}

static void maybe_request_standby(txs_executor *ex)
{
	if (ex->asked_gen != GET(ex->st.generation) && restart_near(ex))
		request_standby(ex);
}

/* Puts n popped commands back at the head of the ring, in order. The ring
 * has BATCH_MAX slots beyond what push() fills, so they always fit. */
static void unpop_locked(txs_executor *ex, cmd **c, size_t n)
{
	while (n--) {
		ex->head = (ex->head + ex->ring_cap - 1) % ex->ring_cap;
		ex->ring[ex->head] = c[n];
		ex->count++;
	}
}

/* A new engine serves from now on: stats and per-generation state. */
static void new_generation(txs_executor *ex, enum reason why)
{
	ex->scans_in_gen = ex->since_sample = ex->since_stats = 0;
	ex->rss_at_walk = ex->heap_at_walk = 0;
	ex->backoff_ns = 0;
	ex->gen_start_ns = now_ns();
	INC(ex->st.restarts[why]);
	INC(ex->st.generation);
	SET(ex->st.running, true);
	SET(ex->st.consecutive_failures, 0);
	SET(ex->st.quarantined, false);
}

/* Hands the ring to the standby lane's READY engine, with the commands this
 * lane popped but did not run. This lane becomes the standby; its engine is
 * destroyed by standby_step. */
static bool try_swap(lane *ln, enum reason why)
{
	txs_executor *ex = ln->ex;
	pthread_mutex_lock(&ex->mu);
	bool ok = ex->sb == SB_READY;
	if (ok) {
		unpop_locked(ex, ln->rest, ln->nrest);
		ln->nrest = 0;
		new_generation(ex, why);
		INC(ex->st.standby_swaps);
		SET(ex->st.standby_ready, false);
		SET(ex->st.busy, false);
		ex->sb = why == R_KILLED ? SB_WANTED : SB_IDLE;
		ex->active = 1 - ln->idx;
		ln->swapped = true;
	}
	pthread_mutex_unlock(&ex->mu);
	if (ok)
		pthread_cond_broadcast(&ex->sb_wake);
	return ok;
}

/* ---- replacing the active engine (active lane) --------------------------- */

/* The old engine is retired (destroyed when the thread is next idle) unless
 * it is dead: a dead engine is never kept. */
static void retire(lane *ln)
{
	if (!ln->eng)
		return;
	if (engine_dead(ln->eng) || ln->retired) {
		engine_drop(ln);
		return;
	}
	atomic_fetch_add_explicit(&ln->ex->st.console_dropped, engine_console_dropped(ln->eng),
	                          memory_order_relaxed);
	ln->retired = ln->eng;
	ln->eng = NULL;
}

static void start_failed(lane *ln, char *msg, char **err)
{
	txs_executor *ex = ln->ex;
	INC(ex->st.failed_starts);
	INC(ex->st.consecutive_failures);
	free(ex->last_start_err);
	ex->last_start_err = strdup(msg ? msg : "engine start failed");
	if (ln->eng && engine_dead(ln->eng))
		engine_drop(ln);
	if (!ln->eng)
		quarantine_or_retry(ex);
	if (err)
		*err = msg;
	else
		free(msg);
}

/* Replaces the active engine: by a swap to a READY standby when the code is
 * the current one, else by building one here from code and lim, then
 * retiring the old. If the build fails, a live old engine stays; a dead one
 * is dropped. *err (may be NULL) gets the failure. */
static int replace(lane *ln, const txs_plugin_code *code, const txs_limits *lim,
                   enum reason why, char **err)
{
	txs_executor *ex = ln->ex;
	if (code == ex->code && try_swap(ln, why))
		return 0;
	engine *fresh = NULL;
	char *msg = NULL;
	if (build(ex, code, lim, &fresh, &msg) != 0) {
		start_failed(ln, msg, err);
		return TXS_EPLUGIN;
	}
	retire(ln);
	ln->eng = fresh;
	new_generation(ex, why);
	if (why == R_KILLED)
		request_standby(ex); /* one kill may follow another */
	return 0;
}

static int restart(lane *ln, enum reason why)
{
	return replace(ln, ln->ex->code, &ln->ex->lim, why, NULL);
}

/* ---- scans (active lane) ------------------------------------------------- */

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
	snprintf(buf, sizeof buf, "plugin %s has no running engine%s%s", ex->id,
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

/* heap_restart_mb. Every heap_sample_every scans, process RSS is read (at
 * most 1 ms old, shared by every engine); JSC's heap statistics, which
 * walk the heap, are read once the gap has passed (it adapts to what a
 * reading costs), or sooner when RSS passed its high-water mark (RSS
 * swings as GCs free memory) by half the room this engine had left below
 * the threshold at the last reading, at least a MiB.
 * RSS is the whole process's, shared by every executor: with a fixed step
 * every executor walked its heap whenever any engine grew (a fifth of the
 * CPU of a fan-out to 8 plugins), while this engine's own growth shows in
 * RSS, so it is found by the step, or by the gap at the latest. A new engine
 * starts with a reading. Past 3/4 of the threshold the standby is asked
 * for an engine. */
static void heap_policy(lane *ln, size_t n)
{
	txs_executor *ex = ln->ex;
	ex->since_sample += (uint32_t)n;
	ex->since_stats += (uint32_t)n;
	if (!ex->lim.heap_restart_mb || ex->since_sample < ex->lim.heap_sample_every)
		return;
	ex->since_sample = 0;
	if (!ex->stats_gap)
		ex->stats_gap = STATS_GAP_MIN;
	size_t rss = engine_process_rss_recent(now_ns());
	size_t limit = (size_t)ex->lim.heap_restart_mb << 20;
	size_t room = limit > ex->heap_at_walk ? limit - ex->heap_at_walk : 0;
	size_t step = room / 2 > (1u << 20) ? room / 2 : (1u << 20);
	bool grew = !ex->rss_at_walk || rss >= ex->rss_at_walk + step;
	if (ex->since_stats < ex->stats_gap && !grew)
		return;
	uint64_t t0 = now_ns();
	size_t heap = engine_heap_bytes(ln->eng);
	ex->stats_gap = stats_gap(ex, now_ns() - t0);
	ex->since_stats = 0;
	if (rss > ex->rss_at_walk)
		ex->rss_at_walk = rss; /* a high-water mark: RSS swings as GCs free memory */
	ex->heap_at_walk = heap;
	SET(ex->st.heap_bytes, heap);
	INC(ex->st.heap_readings);
	if (heap > limit)
		restart(ln, R_HEAP);
	else if (heap > limit / 4 * 3 && ex->asked_gen != GET(ex->st.generation))
		request_standby(ex);
}

/* The recycling policy, after n scans were answered. */
static void after_scans(lane *ln, size_t n)
{
	txs_executor *ex = ln->ex;
	if (engine_dead(ln->eng)) {
		restart(ln, R_KILLED);
		return;
	}
	ex->scans_in_gen += (uint32_t)n;
	if (ex->lim.restart_every && ex->scans_in_gen >= ex->lim.restart_every) {
		restart(ln, R_SCHEDULED);
		return;
	}
	maybe_request_standby(ex);
	heap_policy(ln, n);
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
 * that kills the engine ends its batch, and the rest go to the fresh one:
 * on this lane, or, after a swap, back to the ring for the other lane. */
static void do_scans(lane *ln, cmd **c, size_t n)
{
	txs_executor *ex = ln->ex;
	const char *tx[BATCH_MAX];
	engine_result er[BATCH_MAX];
	size_t i = 0;
	while (i < n) {
		ln->rest = c + i;
		ln->nrest = n - i;
		if (!ln->eng && !GET(ex->st.quarantined))
			restart(ln, R_RECOVER);
		if (ln->swapped || !ln->eng)
			break;
		size_t k = batch_size(ex, n - i);
		for (size_t j = 0; j < k; j++)
			tx[j] = c[i + j]->tx;
		size_t ran = engine_scan_batch(ln->eng, tx, k, er);
		for (size_t j = 0; j < ran; j++)
			answer_run(ex, c[i + j], &er[j]);
		i += ran;
		ln->rest = c + i;
		ln->nrest = n - i;
		after_scans(ln, ran);
		if (ln->swapped)
			break;
	}
	ln->nrest = 0;
	for (; !ln->swapped && i < n; i++) {
		txs_scan_result r = {0};
		scan_unavailable(ex, &r);
		answer(ex, c[i], &r);
	}
}

/* A reload: canary build here, with the new code and limits; only if it
 * works does the code change, and a standby engine of the old code goes. */
static int reload(lane *ln, cmd *c)
{
	txs_executor *ex = ln->ex;
	txs_limits lim = ex->lim;
	if (c->has_lim) {
		lim = c->lim;
		lim.queue_capacity = ex->lim.queue_capacity;
		lim.max_input_bytes = ex->lim.max_input_bytes;
	}
	int rc = replace(ln, c->code, &lim, R_RELOAD, &c->err);
	if (rc)
		return rc;
	pthread_mutex_lock(&ex->mu);
	txs_plugin_code *old = ex->code;
	ex->code = c->code;
	c->code = old; /* the caller frees what it gets back */
	ex->lim = lim;
	ex->code_epoch++;
	if (ex->sb == SB_READY)
		ex->sb = SB_IDLE; /* the standby lane drops it */
	SET(ex->st.standby_ready, false);
	pthread_mutex_unlock(&ex->mu);
	pthread_cond_broadcast(&ex->sb_wake);
	return 0;
}

static void do_control(lane *ln, cmd *c)
{
	c->err = NULL;
	ln->nrest = 0;
	if (c->kind == CMD_RESTART)
		c->rc = replace(ln, ln->ex->code, &ln->ex->lim, R_MANUAL, &c->err);
	else
		c->rc = reload(ln, c);
	atomic_fetch_sub_explicit(&ln->ex->st.pending, 1, memory_order_relaxed);
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

/* ---- the active lane's loop ---------------------------------------------- */

static cmd *pop_locked(txs_executor *ex)
{
	cmd *c = ex->ring[ex->head];
	ex->head = (ex->head + 1) % ex->ring_cap;
	ex->count--;
	return c;
}

/* Destroys an engine replaced inline, once no command waits. mu held. */
static bool idle_work_locked(lane *ln)
{
	if (!ln->retired)
		return false;
	pthread_mutex_unlock(&ln->ex->mu);
	engine_release(ln->ex, &ln->retired);
	pthread_mutex_lock(&ln->ex->mu);
	return true;
}

/* While quarantined: waits until the retry time, then tries to start. */
static void quarantine_wait_locked(lane *ln)
{
	txs_executor *ex = ln->ex;
	if (ex->bell) {
		uint32_t seq = txs_bell_seq(ex->bell);
		pthread_mutex_unlock(&ex->mu);
		txs_bell_wait(ex->bell, seq, ex->retry_at_ns);
		pthread_mutex_lock(&ex->mu);
		if (txs_now_ns() < ex->retry_at_ns)
			return;
	} else {
		struct timespec ts = txs_timespec(ex->retry_at_ns);
		if (pthread_cond_timedwait(&ex->wake, &ex->mu, &ts) != ETIMEDOUT)
			return;
	}
	pthread_mutex_unlock(&ex->mu);
	restart(ln, R_RECOVER);
	pthread_mutex_lock(&ex->mu);
}

/* Sleeps on the bell until it rings. mu held (the queue was found empty
 * under it, and the sequence is read before it is let go). */
static void bell_wait_locked(txs_executor *ex)
{
	txs_bell *b = ex->bell;
	uint32_t seq = txs_bell_seq(b);
	pthread_mutex_unlock(&ex->mu);
	txs_bell_wait(b, seq, 0);
	pthread_mutex_lock(&ex->mu);
}

/* Waits for the next commands: one control command, or up to max scans in
 * a row. 0 when stopping, or when this lane swapped (it is standby now). */
static size_t next_cmds(lane *ln, cmd **out, size_t max)
{
	txs_executor *ex = ln->ex;
	pthread_mutex_lock(&ex->mu);
	while (ex->count == 0 && !ex->stopping && !ln->swapped) {
		if (idle_work_locked(ln))
			continue;
		if (GET(ex->st.quarantined))
			quarantine_wait_locked(ln);
		else if (ex->bell)
			bell_wait_locked(ex);
		else
			pthread_cond_wait(&ex->wake, &ex->mu);
	}
	size_t n = 0;
	if (!ex->stopping && !ln->swapped) {
		out[n++] = pop_locked(ex);
		while (out[0]->kind == CMD_SCAN && n < max && ex->count &&
		       ex->ring[ex->head]->kind == CMD_SCAN)
			out[n++] = pop_locked(ex);
	}
	pthread_mutex_unlock(&ex->mu);
	return n;
}

/* Serves the ring until stopping or a swap made this lane the standby. */
static void serve(lane *ln)
{
	txs_executor *ex = ln->ex;
	cmd *c[BATCH_MAX];
	size_t n;
	ln->swapped = false;
	while ((n = next_cmds(ln, c, BATCH_MAX))) {
		SET(ex->st.busy, true);
		if (c[0]->kind == CMD_SCAN)
			do_scans(ln, c, n);
		else
			do_control(ln, c[0]);
		if (!ln->swapped)
			SET(ex->st.busy, false);
	}
}

/* ---- the standby lane's loop --------------------------------------------- */

/* Builds an engine from the current code, unlocked; keeps it READY unless
 * the code changed meanwhile or the executor is stopping. mu held. */
static void build_standby_locked(lane *ln)
{
	txs_executor *ex = ln->ex;
	ex->sb = SB_BUILDING;
	uint64_t epoch = ex->code_epoch;
	txs_plugin_code *code = code_hold(ex->code);
	txs_limits lim = ex->lim;
	pthread_mutex_unlock(&ex->mu);
	engine *e = NULL;
	char *err = NULL;
	int rc = build(ex, code, &lim, &e, &err);
	free(err); /* speculative: the inline build that follows reports it */
	code_free(code);
	pthread_mutex_lock(&ex->mu);
	if (rc == 0 && epoch == ex->code_epoch && !ex->stopping) {
		ln->eng = e;
		ex->sb = SB_READY;
		SET(ex->st.standby_ready, true);
		return;
	}
	ex->sb = SB_IDLE;
	pthread_mutex_unlock(&ex->mu);
	engine_release(ex, &e);
	pthread_mutex_lock(&ex->mu);
}

/* One step of the standby lane: drop an engine that is not READY (the one
 * it served with before a swap, or one of old code), build when asked, or
 * wait. mu held. */
static void standby_step_locked(lane *ln)
{
	txs_executor *ex = ln->ex;
	if ((ln->eng && ex->sb != SB_READY) || ln->retired) {
		pthread_mutex_unlock(&ex->mu);
		engine_release(ex, &ln->eng);
		engine_release(ex, &ln->retired);
		pthread_mutex_lock(&ex->mu);
	} else if (ex->sb == SB_WANTED) {
		build_standby_locked(ln);
	} else {
		pthread_cond_wait(&ex->sb_wake, &ex->mu);
	}
}

/* ---- lanes ----------------------------------------------------------------- */

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

/* Lane 0 builds the first engine and answers the constructor. */
static bool startup(lane *ln)
{
	txs_executor *ex = ln->ex;
	char *err = NULL;
	int rc = build(ex, ex->code, &ex->lim, &ln->eng, &err);
	if (rc == 0) {
		ex->gen_start_ns = now_ns();
		INC(ex->st.generation);
		SET(ex->st.running, true);
	}
	handshake(ex, rc, err);
	return rc == 0;
}

static void *lane_main(void *arg)
{
	lane *ln = arg;
	txs_executor *ex = ln->ex;
	char name[16];
	snprintf(name, sizeof name, "txs:%.11s", ex->id);
	pthread_setname_np(pthread_self(), name);
	if (ln->idx == 0 && !startup(ln))
		return NULL;
	pthread_mutex_lock(&ex->mu);
	while (!ex->stopping) {
		if (ex->active != ln->idx) {
			standby_step_locked(ln);
			continue;
		}
		pthread_mutex_unlock(&ex->mu);
		serve(ln);
		pthread_mutex_lock(&ex->mu);
	}
	bool was_active = ex->active == ln->idx;
	pthread_mutex_unlock(&ex->mu);
	drain_stopped(ex);
	if (was_active)
		engine_drop(ln);
	engine_release(ex, &ln->eng);
	engine_release(ex, &ln->retired);
	return NULL;
}

/* ---- public entry points (any thread) ---------------------------------- */

static void executor_destroy(txs_executor *ex)
{
	pthread_mutex_destroy(&ex->mu);
	pthread_cond_destroy(&ex->wake);
	pthread_cond_destroy(&ex->sb_wake);
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
	ex->ring_cap = ex->queue_cap + CONTROL_SLOTS + BATCH_MAX; /* see unpop_locked */
	ex->ring = calloc(ex->ring_cap, sizeof *ex->ring);
	ex->code = code_copy(code);
	pthread_mutex_init(&ex->mu, NULL);
	txs_cond_init(&ex->wake);
	txs_cond_init(&ex->sb_wake);
	for (int i = 0; i < 2; i++)
		ex->lanes[i] = (lane){.ex = ex, .idx = i};
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
	ex->lanes[0].started = true;
	if (pthread_create(&ex->lanes[0].thread, NULL, lane_main, &ex->lanes[0]) != 0) {
		rc = txs_fail(TXS_ENOMEM, "cannot start a thread for plugin %s", code->id);
		goto fail;
	}
	pthread_mutex_lock(&ex->mu);
	while (!ex->started)
		pthread_cond_wait(&ex->wake, &ex->mu);
	pthread_mutex_unlock(&ex->mu);
	if (ex->start_rc != 0) {
		pthread_join(ex->lanes[0].thread, NULL);
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

/* Pushes c; control commands may use the reserved slots. A serving
 * thread that slept on an empty queue is woken, or, when ring_due is not
 * NULL and it sleeps on a bell, *ring_due is set for the caller to ring. */
static int push(txs_executor *ex, cmd *c, bool *ring_due)
{
	uint32_t limit = ex->queue_cap + (c->kind == CMD_SCAN ? 0 : CONTROL_SLOTS);
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
	txs_bell *bell = ex->bell;
	atomic_fetch_add_explicit(&ex->st.pending, 1, memory_order_relaxed);
	pthread_mutex_unlock(&ex->mu);
	if (!was_empty)
		return 0;
	if (!bell)
		pthread_cond_signal(&ex->wake);
	else if (ring_due)
		*ring_due = true;
	else
		txs_bell_ring(bell);
	return 0;
}

int txs_executor_submit(txs_executor *ex, const char *tx, size_t len, txs_scan_fn cb, void *userdata)
{
	return txs_executor_submit_quiet(ex, tx, len, cb, userdata, NULL);
}

int txs_executor_submit_quiet(txs_executor *ex, const char *tx, size_t len, txs_scan_fn cb,
                              void *userdata, bool *ring_due)
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
	int rc = push(ex, c, ring_due);
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
	int rc = push(ex, &c, NULL);
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
	s->standby_swaps = GET(st->standby_swaps);
	s->heap_readings = GET(st->heap_readings);
	s->standby_ready = GET(st->standby_ready);
	s->latency_sum_ms = (double)GET(st->latency_sum_ns) / 1e6;
	for (int i = 0; i < TXS_LATENCY_BUCKETS; i++)
		s->latency_buckets[i] = GET(st->latency[i]);
}

void txs_executor_use_bell(txs_executor *ex, txs_bell *b)
{
	pthread_mutex_lock(&ex->mu);
	ex->bell = b;
	pthread_mutex_unlock(&ex->mu);
	pthread_cond_broadcast(&ex->wake); /* a thread asleep on the condvar moves to the bell */
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
	bool two = ex->lanes[1].started;
	txs_bell *bell = ex->bell;
	pthread_mutex_unlock(&ex->mu);
	pthread_cond_broadcast(&ex->wake);
	pthread_cond_broadcast(&ex->sb_wake);
	if (bell)
		txs_bell_ring(bell);
	pthread_join(ex->lanes[0].thread, NULL);
	if (two)
		pthread_join(ex->lanes[1].thread, NULL);
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
