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
 *
 * Stuck lanes. JSC's regexp engine and typed-array fills do not poll the
 * watchdog: a lane can sit in one call for seconds, and a thread cannot be
 * stopped from outside. One process-wide watcher thread looks at every busy
 * lane every WATCH_PERIOD_NS (engine_progress: plain numbers the engine
 * publishes). A lane whose call has used its budget plus STUCK_GRACE_NS
 * of CPU (the watchdog would have stopped JavaScript by then), or has run
 * for
 * its wall-clock backstop, is abandoned, under mu: the watcher takes what it
 * held (`held`), answers the stuck scan "timeout" (a stuck build fails its
 * restart, reload or startup), puts the other scans back at the head of the
 * ring, and hands the ring to the standby lane (or starts a fresh one in
 * the slot). The abandoned thread touches nothing of the executor's but mu
 * and its own lane struct when its call returns: it reads no further text
 * of its batch (text_gate), destroys its engine there, on its own thread,
 * and ends. At most MAX_STUCK lanes of an executor
 * may be stuck at once; the one that reaches it gets no replacement: the
 * executor answers "unavailable" until a stuck lane comes back. Each stuck
 * lane burns a core until its call ends (docs/engine.md, "Stuck native
 * calls"). An executor's memory lives while any of its lanes runs
 * (`refs`), so a late thread never touches freed memory.
 *
 * Circuit breaker (`br_*`, guarded by mu; the state also an atomic read by
 * submit): after breaker_after consecutive kills the circuit opens: queued
 * scans and new submits answer "unavailable" for a cool-down, then one
 * submit runs as the trial (half-open): a kill reopens it for twice as long,
 * anything else closes it.
 */
#define _GNU_SOURCE
#include "bell.h"
#include "util/clock.h"
#include "engine/engine.h"
#include "util/error.h"
#include "util/log.h"
#include "util/stall.h"
#include "txscan.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <assert.h>

#define CONTROL_SLOTS 8
/* Queued scans run per VM entry. Only a backlog makes batches: an idle
 * executor runs each scan as it comes, so batching adds no latency then.
 * A batch's scans are answered when it ends, so a batch spans at most
 * BATCH_SPAN_NS at the plugin's recent pace: batching saves ~1 us of VM
 * entry a scan, which only short scans notice, and a plugin of 38 ms a
 * scan had every answer of a batch of 8 held to 304 ms, past a 300 ms
 * report deadline (see batch_size). */
#define BATCH_MAX 16
#define BATCH_SPAN_NS 500000.0
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
/* A fresh realm is built inline while it takes less than this; a plugin
 * whose module and init take longer gets its VMs from the standby. */
#define REALM_INLINE_NS (1000 * 1000ull)
/* ... and is measured again after this many VMs instead (one slow
 * measure, a busy moment, is not for ever) */
#define REALM_RETRY_AFTER 16
/* Manual restarts come without warning: the standby is asked for the VM
 * that follows this one this many realms before it is due (see
 * manual_lead). */
#define MANUAL_LEAD_REALMS 8
/* An idle lane prepares its engine's next realm (engine_prepare_realm)
 * once a scheduled restart is this many scans away, or a quarter of
 * restart_every, whichever is more. */
#define SPARE_LEAD_SCANS 4
/* Stuck lanes (see the top of this file). */
#define MAX_STUCK 2
#define STUCK_GRACE_NS (25 * 1000000ull)
#define WATCH_PERIOD_NS (5 * 1000000ull)
#define BREAKER_MAX_NS (60 * 1000000000ull)
/* txs_executor_free: how long lanes may take to end before any still in a
 * call is abandoned. */
#define STOP_GRACE_NS (100 * 1000000ull)

enum cmd_kind { CMD_SCAN, CMD_RESTART, CMD_RELOAD };
enum reason { R_SCHEDULED, R_HEAP, R_KILLED, R_MANUAL, R_RELOAD, R_RECOVER };
enum sb_state { SB_IDLE, SB_WANTED, SB_BUILDING, SB_READY };

typedef struct cmd {
	enum cmd_kind kind;
	txs_scan_fn cb;          /* SCAN */
	void *userdata;
	size_t len;
	char *tx;                /* SCAN: NUL-terminated copy, same allocation, or shared's */
	txs_shared_text *shared; /* SCAN: the fan-out's one copy, counted */
	txs_plugin_code *code;   /* RELOAD: owned copy */
	txs_limits lim;          /* RELOAD: limits for the new engine ... */
	bool has_lim;            /* ... if set */
	sem_t *done;             /* RESTART/RELOAD: posted with rc/err set */
	int rc;
	char *err;
	bool trial;              /* SCAN: the half-open breaker's trial */
	uint64_t queued_ns;      /* SCAN: when it was submitted */
} cmd;

struct stats {
	_Atomic uint64_t scans, ok, errors, timeouts, memory_stops, overloaded, unavailable;
	_Atomic uint64_t restarts[6], failed_starts, generation, heap_bytes, console_dropped;
	_Atomic uint64_t standby_swaps, build_ns, heap_readings;
	_Atomic uint64_t latency_sum_ns, latency[TXS_LATENCY_BUCKETS];
	_Atomic uint64_t recycle_sum_ns, recycle[TXS_LATENCY_BUCKETS];
	_Atomic uint64_t lanes_abandoned, breaker_opens, realm_restarts, realm_prepared, skipped;
	_Atomic uint32_t pending, consecutive_failures, lanes_stuck, breaker_state, kills_in_row;
	_Atomic uint32_t breaker_after; /* lim.breaker_after, for any thread */
	_Atomic bool quarantined, busy, running, standby_ready;
};

typedef struct lane {
	struct txs_executor *ex;
	pthread_t thread;
	int idx;          /* its slot in ex->lanes */
	bool in_use;      /* a pool entry taken (mu) */
	bool started;     /* thread created; guarded by mu */
	_Atomic bool abandoned; /* set by the watcher or free, under mu and con_mu */
	pthread_mutex_t con_mu; /* held around console callbacks: see console_bridge */
	engine_progress prog;   /* what its engine runs now (the watcher reads it) */
	clockid_t cpu_clock;    /* this thread's CPU clock, set before its first call */
	_Atomic bool building;  /* prog belongs to an engine build, not to scans */
	bool fresh;       /* standby: eng built from the current code, never served (mu) */
	/* guarded by mu: the commands this lane popped; held[hdone..nheld) are
	 * not answered yet (given back on a swap, taken by the watcher) */
	cmd **held;
	size_t nheld, hdone;
	bool held_control; /* held is one restart or reload (do_control) */
	/* the batch the engine runs: er[k] answers held[hdone + k]; er[0..taken)
	 * were taken by the watcher when it abandoned the lane (mu) */
	engine_result er[BATCH_MAX];
	size_t taken;
	/* the watcher thread only */
	uint64_t w_start, w_seen, w_cpu, w_stall;
	/* this lane's thread only */
	engine *eng;      /* active: the serving engine; standby: READY or stale */
	engine *retired;  /* replaced inline, destroyed when next idle */
	uint64_t spare_gen; /* the generation whose next realm was prepared ahead */
	bool swapped;     /* handed the ring to the other lane */
	/* ex->src.started, copied when the lane pops commands */
	void (*started_fn)(void *scan_ud, uint64_t start_ns, void *ud);
	void *started_ud;
} lane;

enum { PROMOTE_NONE, PROMOTE_BUILD, PROMOTE_READY };

struct txs_executor {
	pthread_mutex_t mu;
	pthread_cond_t wake;     /* the active lane waits here, unless ... */
	txs_bell *bell;          /* ... it shares its host's bell (mu), ... */
	txs_source src;          /* ... or it feeds itself (mu; src.wait NULL: no) */
	bool (*wanted)(void *); /* txs_executor_skip_unwanted; set before any scan */
	pthread_cond_t sb_wake;  /* the standby lane waits here */
	pthread_cond_t gone;     /* a lane stopped serving (live dropped) */
	lane *lanes[2];          /* the slots: active and standby (mu) */
	lane pool[3 + MAX_STUCK]; /* two slots, the stuck lanes (see slot_fresh_locked) */
	_Atomic int refs;        /* the owner + every lane thread still running */
	/* set at creation, read by any thread */
	uint32_t queue_cap;
	size_t max_input;
	char id[65];
	txs_console_fn console;
	void *console_ud;
	txs_event_fn event;
	void *event_ud;

	/* guarded by mu */
	cmd **ring;
	uint32_t ring_cap, head, count;
	bool stopping, started;
	int start_rc;
	char *start_err;
	int active;              /* index of the active lane */
	enum sb_state sb;
	uint64_t code_epoch;     /* bumped by every successful reload */
	uint32_t live;           /* lane threads not yet ended, abandoned ones aside */
	uint32_t stuck;          /* abandoned lanes still in their call */
	bool exhausted;          /* MAX_STUCK reached: no lane serves */
	int promoted;            /* PROMOTE_*: the active lane takes over from a stuck one */
	uint64_t br_until_ns, br_cooldown_ns;
	/* the watcher's list, under the watcher's lock */
	struct txs_executor *w_next, *w_prev;
	bool w_busy, watched;

	/* written by the active lane under mu; read by it freely, by others
	 * under mu */
	txs_plugin_code *code;
	txs_limits lim;

	/* the active lane only */
	uint32_t scans_in_gen, since_sample, since_stats, stats_gap;
	uint64_t gen_start_ns, asked_gen;
	uint64_t realm_ns;  /* the shorter of the last two fresh realms' builds ... */
	uint64_t realm_last_ns; /* ... and the last one's */
	uint32_t vm_instead; /* VMs built since, because the realm was slow */
	enum reason gen_why; /* what made this generation */
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
	    .restart_every = 100000,
	    .heap_sample_every = 64,
	    .queue_capacity = 1024,
	    .quarantine_after = 3,
	    .max_input_bytes = 1u << 20,
	    .max_result_bytes = 1u << 20,
	    .breaker_after = 5,
	    .breaker_cooldown_ms = 1000,
	    .realms_per_vm = 256,
	};
}

const char *txs_breaker_state_name(uint32_t state)
{
	static const char *const names[] = {"closed", "open", "half-open"};
	return state < 3 ? names[state] : "unknown";
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
	if (!l->breaker_cooldown_ms)
		l->breaker_cooldown_ms = d.breaker_cooldown_ms;
	if (!l->realms_per_vm)
		l->realms_per_vm = d.realms_per_vm;
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

/* The submit userdata of the scan ln's engine runs now, for a console line
 * it prints; NULL while an engine is built (init). On ln's own thread with
 * con_mu held: held changes only there, or under con_mu by the watcher. */
static void *scan_running(lane *ln)
{
	if (atomic_load_explicit(&ln->building, memory_order_relaxed))
		return NULL;
	size_t k = ln->hdone + atomic_load_explicit(&ln->prog.index, memory_order_relaxed);
	return k < ln->nheld && ln->held[k]->kind == CMD_SCAN ? ln->held[k]->userdata : NULL;
}

/* A console line from a lane's engine. con_mu is held around the call so
 * that a lane is never abandoned in the middle of one: after abandonment
 * the executor's owner may free what the callback writes to. */
static void console_bridge(int level, const char *msg, size_t len, void *ud)
{
	static const char *const names[] = {"debug", "log", "info", "warn", "error"};
	lane *ln = ud;
	txs_executor *ex = ln->ex;
	if (!ex->console)
		return;
	pthread_mutex_lock(&ln->con_mu);
	if (!atomic_load_explicit(&ln->abandoned, memory_order_relaxed)) {
		txs_log_scan_userdata = scan_running(ln);
		ex->console(ex->id, names[level], msg, len, ex->console_ud);
		txs_log_scan_userdata = NULL;
	}
	pthread_mutex_unlock(&ln->con_mu);
}

/* The engine reads a transaction's text only inside this gate, under
 * con_mu. The watcher abandons a lane under con_mu and gives the commands
 * of its batch, texts included, to another lane, which may answer and free
 * them while the abandoned thread is still in its stuck call: back from
 * it, that thread must not read the next text of its batch. */
static bool text_gate(void *ud, bool take)
{
	lane *ln = ud;
	if (!take) {
		pthread_mutex_unlock(&ln->con_mu);
		return true;
	}
	pthread_mutex_lock(&ln->con_mu);
	if (!atomic_load_explicit(&ln->abandoned, memory_order_relaxed)) {
		if (ln->started_fn) { /* held cannot change under con_mu (see abandon) */
			uint32_t k = atomic_load_explicit(&ln->prog.index, memory_order_relaxed);
			ln->started_fn(ln->held[ln->hdone + k]->userdata,
			               atomic_load_explicit(&ln->prog.start_ns, memory_order_relaxed),
			               ln->started_ud);
		}
		return true;
	}
	pthread_mutex_unlock(&ln->con_mu);
	return false;
}

static bool lost(lane *ln)
{
	return atomic_load_explicit(&ln->abandoned, memory_order_acquire);
}

static void emit(txs_executor *ex, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void emit(txs_executor *ex, const char *event, const char *fmt, ...)
{
	if (!ex->event)
		return;
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	ex->event(ex->id, event, detail, ex->event_ud);
}

/* The engine configuration for code and lim on ln: what build() and the
 * realm prepared ahead (idle_work_locked) are made with, field for field. */
static engine_config lane_config(lane *ln, const txs_plugin_code *code, const txs_limits *lim)
{
	return (engine_config){
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
	    .console_userdata = ln,
	    .progress = &ln->prog,
	    .gate = text_gate,
	};
}

/* The serving thread begins or ends building an engine (txs_source). */
static void serving_builds(txs_executor *ex, bool on)
{
	if (ex->src.building)
		ex->src.building(on, ex->src.ud);
}

/* Builds an engine on ln's thread. The code is held for the whole build:
 * if the lane is abandoned meanwhile, a reload may free the caller's. */
static int build(lane *ln, txs_plugin_code *code, const txs_limits *lim, engine *base,
                 engine **out, char **err)
{
	txs_executor *ex = ln->ex;
	code_hold(code);
	engine_config cfg = lane_config(ln, code, lim);
	uint64_t t0 = now_ns();
	atomic_store_explicit(&ln->building, true, memory_order_relaxed);
	int rc = base ? engine_new_realm(base, out, &cfg, err) : engine_new(out, &cfg, err);
	atomic_store_explicit(&ln->building, false, memory_order_relaxed);
	if (rc == 0 && !base)
		SET(ex->st.build_ns, now_ns() - t0); /* the pace of a VM build, for the standby */
	code_free(code);
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

/* Starts ln's thread, detached: it holds a reference to the executor and
 * counts as live until it ends. mu held. */
static bool lane_start_locked(lane *ln)
{
	txs_executor *ex = ln->ex;
	if (ex->stuck >= MAX_STUCK)
		return false;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	atomic_fetch_add(&ex->refs, 1);
	int rc = pthread_create(&ln->thread, &attr, lane_main, ln);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		atomic_fetch_sub(&ex->refs, 1);
		return false;
	}
	ln->started = true;
	ex->live++;
	return true;
}

/* The standby lane's thread starts on the first request. mu held. */
static bool standby_thread_locked(txs_executor *ex)
{
	lane *sb = ex->lanes[1 - ex->active];
	if (sb->started)
		return true;
	if (ex->stopping || ex->stuck >= MAX_STUCK)
		return false;
	return lane_start_locked(sb);
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

/* A fresh realm takes too long to be built inline: the last two took more
 * than REALM_INLINE_NS (a slow module or init, which the standby lane hides
 * in a VM build, while nothing hides a realm's; two, so that one busy
 * moment does not decide). Its restarts then take the standby's VM when
 * one is READY; with none READY they still build a realm here, as a VM
 * costs more than a realm of the same plugin (see replace). */
static bool realm_slow(const txs_executor *ex)
{
	return ex->realm_ns > REALM_INLINE_NS && ex->vm_instead < REALM_RETRY_AFTER;
}

/* The engine's VM has served realms_per_vm realms: the next restart gets
 * a new VM. */
static bool vm_full(const txs_executor *ex, const engine *e)
{
	return engine_realm_count(e) + 1 >= ex->lim.realms_per_vm;
}

/* The engine's next restart should get a new VM: its VM is full, or a
 * realm is slow (then the standby's VM is taken if READY). */
static bool vm_due(const txs_executor *ex, const engine *e)
{
	return vm_full(ex, e) || realm_slow(ex);
}

/* A manual restart gave the engine a fresh realm, and its VM is due within
 * MANUAL_LEAD_REALMS realms: the standby builds the next VM from now on, so
 * that the restart that needs it swaps instead of building a VM inline
 * (~1.4 ms against ~0.3 ms for a realm: one manual restart in
 * realms_per_vm, which set their p99). At most one VM waits,
 * for the next manual restarts (the standby keeps it until one is due);
 * with realms_per_vm 1 (a new VM every time) nothing is asked ahead. */
static void manual_lead(lane *ln)
{
	txs_executor *ex = ln->ex;
	uint32_t per_vm = ex->lim.realms_per_vm;
	if (per_vm > 1 && (engine_realm_count(ln->eng) + 1 + MANUAL_LEAD_REALMS >= per_vm ||
	                   realm_slow(ex)))
		request_standby(ex);
}

/* A scheduled restart that will build a new VM is near: the standby
 * builds it meanwhile (a fresh realm is built inline: it costs less than
 * handing the ring over). */
static void maybe_request_standby(lane *ln)
{
	txs_executor *ex = ln->ex;
	if (ex->asked_gen != GET(ex->st.generation) && vm_due(ex, ln->eng) && restart_near(ex))
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
	ex->gen_why = why;
	INC(ex->st.restarts[why]);
	INC(ex->st.generation);
	SET(ex->st.running, true);
	SET(ex->st.consecutive_failures, 0);
	SET(ex->st.quarantined, false);
}

/* Hands the ring to the standby lane's READY engine, with the scans this
 * lane popped but did not run. This lane becomes the standby; its engine is
 * destroyed by standby_step. A restart that swaps is done by the swap:
 * this lane answers it (do_control), so it is not handed on (the lane
 * taking over ran it a second time, from a caller's stack long gone). */
static bool try_swap(lane *ln, enum reason why)
{
	txs_executor *ex = ln->ex;
	pthread_mutex_lock(&ex->mu);
	bool ok = ex->sb == SB_READY;
	if (ok && !ln->held_control) {
		unpop_locked(ex, ln->held + ln->hdone, ln->nheld - ln->hdone);
		ln->nheld = ln->hdone = 0;
	}
	if (ok) {
		ex->lanes[1 - ln->idx]->fresh = false;
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

/* A build failed. The old engine keeps serving only when it may: a dead
 * one never, and one whose age or heap passed its policy (scheduled, heap)
 * neither: restart_every bounds an engine's age, so with no engine the
 * plugin answers "unavailable" until a build works. */
static void start_failed(lane *ln, enum reason why, char *msg, char **err)
{
	txs_executor *ex = ln->ex;
	INC(ex->st.failed_starts);
	INC(ex->st.consecutive_failures);
	free(ex->last_start_err);
	ex->last_start_err = strdup(msg ? msg : "engine start failed");
	if (ln->eng && (engine_dead(ln->eng) || why == R_SCHEDULED || why == R_HEAP))
		engine_drop(ln);
	if (!ln->eng)
		quarantine_or_retry(ex);
	if (err)
		*err = msg;
	else
		free(msg);
}

/* A fresh realm took ns to build (inline, or ahead: build_ahead_locked):
 * what realm_slow decides on. */
static void realm_took(txs_executor *ex, uint64_t ns)
{
	ex->realm_ns = ns < ex->realm_last_ns ? ns : ex->realm_last_ns;
	ex->realm_last_ns = ns;
	ex->vm_instead = 0;
}

/* A scheduled or manual restart of a live engine, same code, in a VM with
 * realms to spare, gets a fresh realm in that VM: the engine to build it
 * on. Anything else (a kill, the heap, a reload, recovery) gets a new VM. */
static engine *realm_base(lane *ln, const txs_plugin_code *code, const txs_limits *lim,
                          enum reason why)
{
	engine *e = ln->eng;
	if ((why != R_SCHEDULED && why != R_MANUAL) || !e || engine_dead(e) ||
	    code != ln->ex->code || lim != &ln->ex->lim || vm_full(ln->ex, e))
		return NULL;
	return e;
}

/* Replaces the active engine: by a swap to a READY standby when the code is
 * the current one and a realm will not do (or is slow), else by building
 * one here from code and lim (a realm when it may be one), then retiring
 * the old. If the build fails, see start_failed. *err (may be NULL) gets
 * the failure. A lane abandoned during the build returns TXS_ESTOPPED and
 * touches nothing more. */
static int replace_engine(lane *ln, txs_plugin_code *code, const txs_limits *lim,
                          enum reason why, char **err)
{
	txs_executor *ex = ln->ex;
	engine *base = realm_base(ln, code, lim, why);
	bool slow = base && realm_slow(ex);
	if (slow)
		ex->vm_instead++; /* before the swap: then ex is the other lane's */
	if (code == ex->code && (!base || slow) && try_swap(ln, why))
		return 0;
	engine *fresh = NULL;
	char *msg = NULL;
	bool prepared = base && engine_realm_prepared(base);
	uint64_t t0 = now_ns();
	serving_builds(ex, true);
	int rc = build(ln, code, lim, base, &fresh, &msg);
	serving_builds(ex, false);
	if (base && !prepared)
		realm_took(ex, now_ns() - t0);
	if (lost(ln)) {
		engine_free(fresh);
		free(msg);
		return TXS_ESTOPPED;
	}
	if (rc != 0) {
		start_failed(ln, why, msg, err);
		return TXS_EPLUGIN;
	}
	retire(ln);
	ln->eng = fresh;
	new_generation(ex, why);
	if (base)
		INC(ex->st.realm_restarts);
	if (prepared)
		INC(ex->st.realm_prepared);
	if (base && why == R_MANUAL)
		manual_lead(ln);
	if (why == R_KILLED)
		request_standby(ex); /* one kill may follow another */
	return 0;
}

static int bucket_of(uint64_t ns)
{
	double ms = (double)ns / 1e6;
	int b = 0;
	while (b < TXS_LATENCY_BUCKETS - 1 && ms > bounds_ms[b])
		b++;
	return b;
}

/* replace_engine, timed: the time the serving lane does not serve (the
 * recycle histogram). A lane abandoned meanwhile counts nothing. */
static int replace(lane *ln, txs_plugin_code *code, const txs_limits *lim, enum reason why,
                   char **err)
{
	txs_executor *ex = ln->ex;
	uint64_t t0 = now_ns();
	int rc = replace_engine(ln, code, lim, why, err);
	if (rc == TXS_ESTOPPED)
		return rc;
	uint64_t ns = now_ns() - t0;
	INC(ex->st.recycle[bucket_of(ns)]);
	atomic_fetch_add_explicit(&ex->st.recycle_sum_ns, ns, memory_order_relaxed);
	return rc;
}

static int restart(lane *ln, enum reason why)
{
	return replace(ln, ln->ex->code, &ln->ex->lim, why, NULL);
}

/* ---- scans (active lane) ------------------------------------------------- */

static void count_latency(txs_executor *ex, uint64_t ns)
{
	INC(ex->st.latency[bucket_of(ns)]);
	atomic_fetch_add_explicit(&ex->st.latency_sum_ns, ns, memory_order_relaxed);
}

/* The active lane's answers also feed the pace that heap sampling uses. */
static void record_latency(txs_executor *ex, uint64_t ns)
{
	count_latency(ex, ns);
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

static void unavailable_text(txs_executor *ex, txs_scan_result *r, const char *why)
{
	INC(ex->st.unavailable);
	r->status = TXS_STATUS_UNAVAILABLE;
	r->error = strdup(why);
}

static void scan_unavailable(txs_executor *ex, txs_scan_result *r)
{
	char buf[1024];
	snprintf(buf, sizeof buf, "plugin %s has no running engine%s%s", ex->id,
	         ex->last_start_err ? ": " : "", ex->last_start_err ? ex->last_start_err : "");
	unavailable_text(ex, r, buf);
}

struct txs_shared_text {
	atomic_int refs;
	size_t len;
	char text[]; /* NUL-terminated */
};

txs_shared_text *txs_shared_text_new(const char *tx, size_t len)
{
	txs_shared_text *t = malloc(sizeof *t + len + 1);
	if (!t)
		return NULL;
	atomic_init(&t->refs, 1);
	t->len = len;
	memcpy(t->text, tx, len);
	t->text[len] = '\0';
	return t;
}

void txs_shared_text_release(txs_shared_text *t)
{
	if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
		free(t);
}

static void cmd_free(cmd *c)
{
	txs_shared_text_release(c->shared);
	free(c);
}

static void answer(txs_executor *ex, cmd *c, txs_scan_result *r)
{
	atomic_fetch_sub_explicit(&ex->st.pending, 1, memory_order_relaxed);
	c->cb(r, c->userdata);
	cmd_free(c);
}

/* Answers queued scans "unavailable" with why (a list the lanes no longer
 * see: taken from the ring under mu). */
typedef struct cmd_list {
	cmd **v;
	size_t n;
} cmd_list;

static void take_ring_locked(txs_executor *ex, cmd_list *out, bool scans_only);
static void answer_list(txs_executor *ex, cmd_list *l, txs_status st, const char *why);

/* ---- circuit breaker ------------------------------------------------------ */

static uint64_t breaker_cooldown(const txs_executor *ex)
{
	return ex->br_cooldown_ns ? ex->br_cooldown_ns
	                          : (uint64_t)ex->lim.breaker_cooldown_ms * 1000000ull;
}

/* Opens the circuit: queued scans are doomed work too. mu held. */
static void breaker_open_locked(txs_executor *ex, uint64_t cool, cmd_list *doomed)
{
	ex->br_cooldown_ns = cool > BREAKER_MAX_NS ? BREAKER_MAX_NS : cool;
	ex->br_until_ns = now_ns() + ex->br_cooldown_ns;
	SET(ex->st.breaker_state, TXS_BREAKER_OPEN);
	INC(ex->st.breaker_opens);
	take_ring_locked(ex, doomed, true);
}

/* Records how a scan ended, for the breaker: kills in a row open it; a
 * trial's outcome closes or reopens it. Any thread; takes mu only when
 * the state may change. */
static void breaker_record(txs_executor *ex, txs_status st, bool trial)
{
	bool kill = st == TXS_STATUS_TIMEOUT || st == TXS_STATUS_MEMORY;
	bool ran = kill || st == TXS_STATUS_OK || st == TXS_STATUS_ERROR;
	if (!kill && !trial) {
		if (ran && GET(ex->st.kills_in_row))
			SET(ex->st.kills_in_row, 0);
		return;
	}
	uint32_t row = kill ? atomic_fetch_add(&ex->st.kills_in_row, 1) + 1 : 0;
	if (!kill)
		SET(ex->st.kills_in_row, 0);
	uint32_t after = GET(ex->st.breaker_after);
	if (!trial && (!after || row < after))
		return;
	cmd_list doomed = {0};
	const char *event = NULL;
	uint64_t cool = 0;
	pthread_mutex_lock(&ex->mu);
	uint32_t state = GET(ex->st.breaker_state);
	if (trial && state == TXS_BREAKER_HALF_OPEN) {
		if (kill) {
			cool = breaker_cooldown(ex) * 2;
			breaker_open_locked(ex, cool, &doomed);
			event = "breaker_open";
		} else if (ran) {
			ex->br_cooldown_ns = 0;
			SET(ex->st.breaker_state, TXS_BREAKER_CLOSED);
			event = "breaker_closed";
		} else { /* the trial never ran: the next submit is one */
			SET(ex->st.breaker_state, TXS_BREAKER_OPEN);
			ex->br_until_ns = 0;
		}
	} else if (kill && state == TXS_BREAKER_CLOSED && after && row >= after) {
		cool = breaker_cooldown(ex);
		breaker_open_locked(ex, cool, &doomed);
		event = "breaker_open";
	}
	pthread_mutex_unlock(&ex->mu);
	if (event && !strcmp(event, "breaker_open"))
		emit(ex, event, "%u consecutive timeouts or memory stops; unavailable for %llu ms, "
		     "then one trial scan", row, (unsigned long long)(cool / 1000000));
	else if (event)
		emit(ex, event, "the trial scan ran: scans run again");
	if (doomed.n) {
		char why[256];
		snprintf(why, sizeof why, "plugin %s: circuit open after %u consecutive timeouts or "
		         "memory stops", ex->id, row);
		answer_list(ex, &doomed, TXS_STATUS_UNAVAILABLE, why);
	}
}

/* Submit's gate while the circuit is not closed: 0 (a trial when *trial),
 * or TXS_EUNAVAILABLE with the error set. */
static int breaker_gate(txs_executor *ex, bool *trial)
{
	uint64_t now = now_ns(), left = 0;
	bool half = false;
	pthread_mutex_lock(&ex->mu);
	uint32_t state = GET(ex->st.breaker_state);
	if (state == TXS_BREAKER_OPEN && now >= ex->br_until_ns) {
		SET(ex->st.breaker_state, TXS_BREAKER_HALF_OPEN);
		*trial = half = true;
	} else if (state == TXS_BREAKER_OPEN) {
		left = ex->br_until_ns - now;
	}
	pthread_mutex_unlock(&ex->mu);
	if (half)
		emit(ex, "breaker_half_open", "cool-down over: one trial scan");
	if (half || state == TXS_BREAKER_CLOSED)
		return 0;
	INC(ex->st.unavailable);
	if (state == TXS_BREAKER_HALF_OPEN)
		return txs_fail(TXS_EUNAVAILABLE, "plugin %s: circuit half-open, a trial scan is "
		                "running", ex->id);
	return txs_fail(TXS_EUNAVAILABLE, "plugin %s: circuit open after repeated timeouts or "
	                "memory stops; next trial in %llu ms", ex->id,
	                (unsigned long long)(left / 1000000 + 1));
}

/* Answers c with what the engine said. by_lane: on the active lane, whose
 * pace statistics it feeds; else on the watcher. */
static void answer_result(txs_executor *ex, cmd *c, engine_result *er, bool by_lane)
{
	txs_scan_result r = {.status = map_status(er->status), .json = er->json,
	                     .json_len = er->json_len, .error = er->error, .ms = er->ms,
	                     .generation = GET(ex->st.generation)};
	bool trial = c->trial;
	INC(ex->st.scans);
	count_status(ex, r.status);
	if (by_lane)
		record_latency(ex, (uint64_t)(er->ms * 1e6));
	else
		count_latency(ex, (uint64_t)(er->ms * 1e6));
	breaker_record(ex, r.status, trial); /* first: the next submit sees the new state */
	answer(ex, c, &r);
}

static void answer_run(txs_executor *ex, cmd *c, engine_result *er)
{
	answer_result(ex, c, er, true);
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
	maybe_request_standby(ln);
	heap_policy(ln, n);
}

/* How many of n queued scans the engine runs in one batch: as many as fit
 * in BATCH_SPAN_NS at the plugin's pace (one while it has none), and no
 * more than may run before the policy must (restart_every). */
static size_t batch_size(const txs_executor *ex, size_t n)
{
	if (ex->scan_ns_avg * (double)n > BATCH_SPAN_NS || ex->scan_ns_avg <= 0) {
		size_t fit = ex->scan_ns_avg > 0 ? (size_t)(BATCH_SPAN_NS / ex->scan_ns_avg) : 1;
		n = fit ? fit : 1; /* no pace yet: one at a time until there is */
	}
	if (!ex->lim.restart_every)
		return n;
	size_t left = ex->lim.restart_every - ex->scans_in_gen;
	return left < n ? (left ? left : 1) : n;
}

/* The lane will answer held commands up to `to` itself: false when it was
 * abandoned, and the watcher took them. */
static bool claim(lane *ln, size_t to)
{
	pthread_mutex_lock(&ln->ex->mu);
	bool mine = !lost(ln);
	if (mine)
		ln->hdone = to;
	pthread_mutex_unlock(&ln->ex->mu);
	return mine;
}

/* Answers c[*i], c[*i + 1], ... without running them while their callers
 * no longer wait for them (txs_executor_skip_unwanted): after a burst the
 * host gave up on, a plugin's queue would otherwise run scans nobody
 * reads, and the scans behind them would wait, and expire, too. The
 * oldest are first in the queue, so only the head is looked at; the
 * breaker's trial scan always runs (its outcome closes or reopens the
 * circuit). False when the lane was abandoned meanwhile. */
static bool skip_unwanted(lane *ln, cmd **c, size_t *i, size_t n)
{
	txs_executor *ex = ln->ex;
	while (ex->wanted && *i < n && !c[*i]->trial && !ex->wanted(c[*i]->userdata)) {
		if (!claim(ln, *i + 1))
			return false;
		txs_scan_result r = {.status = TXS_STATUS_TIMEOUT};
		INC(ex->st.skipped);
		answer(ex, c[(*i)++], &r);
	}
	return true;
}

/* Runs queued scans through the engine in batches, answering each; a scan
 * that kills the engine ends its batch, and the rest go to the fresh one:
 * on this lane, or, after a swap, back to the ring for the other lane. */
static void do_scans(lane *ln, cmd **c, size_t n)
{
	txs_executor *ex = ln->ex;
	const char *tx[BATCH_MAX];
	size_t len[BATCH_MAX];
	engine_result *er = ln->er;
	size_t i = 0;
	while (i < n) {
		if (GET(ex->st.breaker_state) == TXS_BREAKER_OPEN)
			break; /* doomed: answered below */
		if (!ln->eng && !GET(ex->st.quarantined))
			restart(ln, R_RECOVER);
		else if (ln->eng && engine_dead(ln->eng)) /* its VM was stopped: a realm built */
			restart(ln, R_KILLED);                /* ahead in it was killed */
		if (lost(ln) || ln->swapped || !ln->eng || engine_dead(ln->eng))
			break;
		if (!skip_unwanted(ln, c, &i, n))
			return;
		if (i == n)
			break;
		size_t k = batch_size(ex, n - i);
		for (size_t j = 0; j < k; j++) {
			tx[j] = c[i + j]->tx;
			len[j] = c[i + j]->len;
		}
		size_t ran = engine_scan_batch(ln->eng, tx, len, k, er);
		if (!claim(ln, i + ran)) {
			for (size_t j = ln->taken; j < k; j++) /* the watcher took the rest */
				engine_result_clear(&er[j]);
			return;
		}
		for (size_t j = 0; j < ran; j++)
			answer_run(ex, c[i + j], &er[j]);
		i += ran;
		after_scans(ln, ran);
		if (ln->swapped || lost(ln))
			break;
	}
	if (ln->swapped || !claim(ln, n))
		return;
	bool open = GET(ex->st.breaker_state) == TXS_BREAKER_OPEN;
	for (; i < n; i++) {
		txs_scan_result r = {0};
		bool trial = c[i]->trial;
		if (open) {
			char why[160];
			snprintf(why, sizeof why, "plugin %s: circuit open after repeated timeouts or memory "
			         "stops", ex->id);
			unavailable_text(ex, &r, why);
		} else {
			scan_unavailable(ex, &r);
		}
		breaker_record(ex, TXS_STATUS_UNAVAILABLE, trial);
		answer(ex, c[i], &r);
	}
}

/* A reload: canary build here, with the new code and limits; only if it
 * works does the code change, and a standby engine of the old code goes.
 * *code is the new code in, the code to free out. */
static int reload(lane *ln, txs_plugin_code **code, const cmd *c, char **err)
{
	txs_executor *ex = ln->ex;
	txs_limits lim = ex->lim;
	if (c->has_lim) {
		lim = c->lim;
		lim.queue_capacity = ex->lim.queue_capacity;
		lim.max_input_bytes = ex->lim.max_input_bytes;
	}
	int rc = replace(ln, *code, &lim, R_RELOAD, err);
	if (rc)
		return rc;
	pthread_mutex_lock(&ex->mu);
	txs_plugin_code *old = ex->code;
	ex->code = *code;
	*code = old; /* the caller frees what it gets back */
	ex->lim = lim;
	ex->realm_ns = 0; /* new code: measured again */
	ex->realm_last_ns = 0; /* one measure alone never decides */
	ex->vm_instead = 0;
	SET(ex->st.breaker_after, lim.breaker_after);
	ex->code_epoch++;
	if (ex->sb == SB_READY)
		ex->sb = SB_IDLE; /* the standby lane drops it */
	ex->lanes[1 - ln->idx]->fresh = false;
	SET(ex->st.standby_ready, false);
	pthread_mutex_unlock(&ex->mu);
	pthread_cond_broadcast(&ex->sb_wake);
	return 0;
}

/* A restart or reload. Its answer is written into c only once the lane
 * claimed it: an abandoned lane's caller may be gone. The lane holds its
 * own reference to the new code meanwhile. */
static void do_control(lane *ln, cmd *c)
{
	char *err = NULL;
	int rc;
	txs_plugin_code *code = NULL;
	if (c->kind == CMD_RESTART) {
		rc = replace(ln, ln->ex->code, &ln->ex->lim, R_MANUAL, &err);
	} else {
		code = code_hold(c->code);
		rc = reload(ln, &code, c, &err);
	}
	if (!claim(ln, 1)) {
		free(err);
		code_free(code);
		return;
	}
	if (c->kind == CMD_RELOAD && rc == 0) {
		code_free(c->code); /* the lane's hold of the new code moved into ex */
		c->code = code;     /* the old code, for the caller to free */
	} else {
		code_free(code);
	}
	c->rc = rc;
	c->err = err;
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
	cmd_free(c);
}

/* Answers commands nobody will run: scans with st and why, control
 * commands with a failure (TXS_ESTOPPED when stopping). */
static void answer_list(txs_executor *ex, cmd_list *l, txs_status st, const char *why)
{
	for (size_t i = 0; i < l->n; i++) {
		cmd *c = l->v[i];
		if (st == TXS_STATUS_STOPPED) {
			answer_stopped(ex, c);
			continue;
		}
		if (c->kind != CMD_SCAN) {
			atomic_fetch_sub_explicit(&ex->st.pending, 1, memory_order_relaxed);
			c->rc = TXS_EUNAVAILABLE;
			c->err = strdup(why);
			sem_post(c->done);
			continue;
		}
		txs_scan_result r = {0};
		bool trial = c->trial;
		unavailable_text(ex, &r, why);
		breaker_record(ex, TXS_STATUS_UNAVAILABLE, trial);
		answer(ex, c, &r);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* ---- the active lane's loop ---------------------------------------------- */

static cmd *pop_locked(txs_executor *ex)
{
	cmd *c = ex->ring[ex->head];
	ex->head = (ex->head + 1) % ex->ring_cap;
	ex->count--;
	return c;
}

/* Empties the ring into out (its scans only, when scans_only: control
 * commands stay queued, in order). mu held. */
static void take_ring_locked(txs_executor *ex, cmd_list *out, bool scans_only)
{
	size_t n = ex->count, keep = 0;
	cmd **v = n ? malloc((n + out->n) * sizeof *v) : NULL;
	if (!v) /* out of memory: they stay queued, and are run */
		return;
	if (out->n)
		memcpy(v, out->v, out->n * sizeof *v);
	free(out->v);
	out->v = v;
	for (size_t i = 0; i < n; i++) {
		cmd *c = pop_locked(ex);
		if (scans_only && c->kind != CMD_SCAN)
			ex->ring[(ex->head + ex->count + keep++) % ex->ring_cap] = c;
		else
			out->v[out->n++] = c;
	}
	ex->count += (uint32_t)keep;
}

/* The engine's next restart will be a fresh realm, and it is near: a
 * scheduled one within a quarter of restart_every or SPARE_LEAD_SCANS
 * scans, or any time after a manual restart (they tend to come in runs).
 * The active lane; mu held. */
static bool spare_wanted(const lane *ln)
{
	const txs_executor *ex = ln->ex;
	const engine *e = ln->eng;
	if (!e || engine_dead(e) || ex->lim.realms_per_vm < 2 || vm_full(ex, e) || realm_slow(ex) ||
	    ln->spare_gen == GET(ex->st.generation) || engine_realm_prepared(e))
		return false;
	uint32_t every = ex->lim.restart_every, done = ex->scans_in_gen;
	uint32_t lead = every / 4 > SPARE_LEAD_SCANS ? every / 4 : SPARE_LEAD_SCANS;
	return (every && (done >= every || every - done <= lead)) || ex->gen_why == R_MANUAL;
}

/* Builds the engine's next fresh realm ahead (module loaded, init run,
 * never scanned), as build() would at the restart: a restart then takes
 * it (replace). Its time is a realm's for realm_slow; a failed build is
 * dropped, and the restart builds again and reports. mu held, let go
 * meanwhile. */
static void build_ahead_locked(lane *ln)
{
	txs_executor *ex = ln->ex;
	ln->spare_gen = GET(ex->st.generation);
	txs_plugin_code *code = code_hold(ex->code);
	engine_config cfg = lane_config(ln, code, &ex->lim);
	pthread_mutex_unlock(&ex->mu);
	char *err = NULL;
	uint64_t t0 = now_ns();
	serving_builds(ex, true);
	atomic_store_explicit(&ln->building, true, memory_order_relaxed);
	engine_prepare_realm(ln->eng, &cfg, &err);
	atomic_store_explicit(&ln->building, false, memory_order_relaxed);
	serving_builds(ex, false);
	uint64_t took = now_ns() - t0;
	if (engine_dead(ln->eng)) /* its kill ended the VM: the serving realm goes too */
		emit(ex, "realm_killed", "the realm built ahead was stopped (%s); the engine is "
		     "replaced before the next scan", err ? err : "killed");
	free(err);
	code_free(code);
	pthread_mutex_lock(&ex->mu);
	if (!lost(ln))
		realm_took(ex, took);
}

/* Work for a lane with no command waiting, one piece per call: destroys
 * an engine replaced inline, or builds the next fresh realm ahead when a
 * restart is near. mu held. */
static bool idle_work_locked(lane *ln)
{
	txs_executor *ex = ln->ex;
	if (ln->retired) { /* first: no more than two realms live while one is built */
		pthread_mutex_unlock(&ex->mu);
		engine_release(ex, &ln->retired);
		pthread_mutex_lock(&ex->mu);
		return true;
	}
	if (!spare_wanted(ln))
		return false;
	build_ahead_locked(ln);
	return true;
}

/* Sleeps until woken (or deadline_ns, txs_now_ns() clock, when not 0):
 * on the source, which may feed the queue meanwhile (txs_source), on the
 * host's bell, or on the condition variable. mu held (the queue was found
 * empty under it: the bell's sequence is read before it is let go). */
static void idle_wait_locked(txs_executor *ex, uint64_t deadline_ns)
{
	if (ex->src.wait) {
		txs_source src = ex->src;
		pthread_mutex_unlock(&ex->mu);
		src.wait(src.ud, deadline_ns);
		pthread_mutex_lock(&ex->mu);
	} else if (ex->bell) {
		txs_bell *b = ex->bell;
		uint32_t seq = txs_bell_seq(b);
		pthread_mutex_unlock(&ex->mu);
		txs_bell_wait(b, seq, deadline_ns);
		pthread_mutex_lock(&ex->mu);
	} else if (deadline_ns) {
		struct timespec ts = txs_timespec(deadline_ns);
		pthread_cond_timedwait(&ex->wake, &ex->mu, &ts);
	} else {
		pthread_cond_wait(&ex->wake, &ex->mu);
	}
}

/* While quarantined: waits until the retry time, then tries to start. */
static void quarantine_wait_locked(lane *ln)
{
	txs_executor *ex = ln->ex;
	idle_wait_locked(ex, ex->retry_at_ns);
	if (txs_now_ns() < ex->retry_at_ns)
		return; /* woken: the caller looks at the queue again */
	pthread_mutex_unlock(&ex->mu);
	restart(ln, R_RECOVER);
	pthread_mutex_lock(&ex->mu);
}

/* Waits for the next commands: one control command, or up to max scans in
 * a row, held by this lane from now on. 0 when stopping, when this lane
 * swapped (it is standby now) or was abandoned. */
static size_t next_cmds(lane *ln, cmd **out, size_t max)
{
	txs_executor *ex = ln->ex;
	pthread_mutex_lock(&ex->mu);
	while (ex->count == 0 && !ex->stopping && !ln->swapped && !lost(ln)) {
		if (idle_work_locked(ln))
			continue;
		if (GET(ex->st.quarantined))
			quarantine_wait_locked(ln);
		else
			idle_wait_locked(ex, 0);
	}
	size_t n = 0;
	if (!ex->stopping && !ln->swapped && !lost(ln)) {
		out[n++] = pop_locked(ex);
		while (out[0]->kind == CMD_SCAN && n < max && ex->count &&
		       ex->ring[ex->head]->kind == CMD_SCAN)
			out[n++] = pop_locked(ex);
	}
	ln->held = out;
	ln->nheld = n;
	ln->hdone = 0;
	ln->started_fn = ex->src.started;
	ln->started_ud = ex->src.ud;
	ln->held_control = n && out[0]->kind != CMD_SCAN;
	pthread_mutex_unlock(&ex->mu);
	return n;
}

/* This lane serves in place of one the watcher abandoned: with the engine
 * it built as the standby, or with one it builds now. */
static void take_over(lane *ln)
{
	txs_executor *ex = ln->ex;
	pthread_mutex_lock(&ex->mu);
	int how = ex->promoted;
	ex->promoted = PROMOTE_NONE;
	bool ready = how == PROMOTE_READY && ln->eng && ln->fresh;
	ln->fresh = false;
	pthread_mutex_unlock(&ex->mu);
	if (how == PROMOTE_NONE)
		return;
	if (ready) {
		new_generation(ex, R_KILLED);
	} else {
		engine_release(ex, &ln->eng);
		SET(ex->st.running, false);
		restart(ln, R_KILLED);
	}
	if (!lost(ln))
		request_standby(ex);
}

/* Serves the ring until stopping, a swap made this lane the standby, or
 * the lane was abandoned. */
static void serve(lane *ln)
{
	txs_executor *ex = ln->ex;
	cmd *c[BATCH_MAX];
	size_t n;
	ln->swapped = false;
	take_over(ln);
	while (!lost(ln) && (n = next_cmds(ln, c, BATCH_MAX))) {
		SET(ex->st.busy, true);
		if (c[0]->kind == CMD_SCAN)
			do_scans(ln, c, n);
		else
			do_control(ln, c[0]);
		if (!ln->swapped && !lost(ln))
			SET(ex->st.busy, false);
	}
}

/* ---- the standby lane's loop --------------------------------------------- */

/* Builds an engine from the current code, unlocked; keeps it READY unless
 * the code changed meanwhile or the executor is stopping. A lane promoted
 * to active while it built keeps the engine to serve with. mu held. */
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
	int rc = build(ln, code, &lim, NULL, &e, &err);
	free(err); /* speculative: the inline build that follows reports it */
	code_free(code);
	pthread_mutex_lock(&ex->mu);
	if (lost(ln)) {
		ln->eng = e; /* destroyed by the abandoned lane's exit */
		return;
	}
	bool promoted = ex->active == ln->idx;
	if (rc == 0 && epoch == ex->code_epoch && !ex->stopping) {
		ln->eng = e;
		ln->fresh = true;
		if (promoted) {
			ex->promoted = PROMOTE_READY;
			return;
		}
		ex->sb = SB_READY;
		SET(ex->st.standby_ready, true);
		return;
	}
	if (!promoted)
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
		ln->fresh = false;
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

/* Answers the constructor. mu held. */
static void handshake_locked(txs_executor *ex, int rc, char *err)
{
	ex->started = true;
	ex->start_rc = rc;
	ex->start_err = err;
	pthread_cond_broadcast(&ex->wake);
}

/* Lane 0 builds the first engine and answers the constructor, unless it
 * was abandoned meanwhile (the watcher answered). */
static bool startup(lane *ln)
{
	txs_executor *ex = ln->ex;
	char *err = NULL;
	int rc = build(ln, ex->code, &ex->lim, NULL, &ln->eng, &err);
	pthread_mutex_lock(&ex->mu);
	if (lost(ln)) {
		pthread_mutex_unlock(&ex->mu);
		free(err);
		return false;
	}
	if (rc == 0) {
		ex->gen_start_ns = now_ns();
		INC(ex->st.generation);
		SET(ex->st.running, true);
	}
	handshake_locked(ex, rc, err);
	pthread_mutex_unlock(&ex->mu);
	return rc == 0;
}

static void executor_unref(txs_executor *ex);

/* An abandoned lane, back from its call: its engines die here, on their
 * own thread; the lane frees its pool entry and, when the executor ran out
 * of lanes, starts the one that serves again. */
static void lane_end_abandoned(lane *ln)
{
	txs_executor *ex = ln->ex;
	engine_free(ln->eng);
	engine_free(ln->retired);
	ln->eng = ln->retired = NULL;
	pthread_mutex_lock(&ex->mu);
	ex->stuck--;
	SET(ex->st.lanes_stuck, ex->stuck);
	ln->in_use = false;
	if (ex->exhausted && !ex->stopping) {
		lane *a = ex->lanes[ex->active];
		ex->exhausted = !lane_start_locked(a);
	}
	pthread_mutex_unlock(&ex->mu);
	executor_unref(ex);
}

/* A lane that served until stopping, or until its start failed. */
static void lane_end(lane *ln, bool was_active)
{
	txs_executor *ex = ln->ex;
	if (was_active)
		engine_drop(ln);
	engine_release(ex, &ln->eng);
	engine_release(ex, &ln->retired);
	pthread_mutex_lock(&ex->mu);
	if (!lost(ln)) {
		ex->live--;
		pthread_cond_broadcast(&ex->gone);
	}
	pthread_mutex_unlock(&ex->mu);
	if (lost(ln))
		lane_end_abandoned(ln);
	else
		executor_unref(ex);
}

static void *lane_main(void *arg)
{
	lane *ln = arg;
	txs_executor *ex = ln->ex;
	char name[16];
	snprintf(name, sizeof name, "txs:%.11s", ex->id);
	pthread_setname_np(pthread_self(), name);
	pthread_getcpuclockid(pthread_self(), &ln->cpu_clock);
	bool first = !ex->started; /* lane 0 of a new executor: read before any lock is needed */
	if (first && !startup(ln)) {
		lane_end(ln, false);
		return NULL;
	}
	pthread_mutex_lock(&ex->mu);
	while (!ex->stopping && !lost(ln)) {
		if (ex->active != ln->idx) {
			standby_step_locked(ln);
			continue;
		}
		pthread_mutex_unlock(&ex->mu);
		serve(ln);
		pthread_mutex_lock(&ex->mu);
	}
	bool was_active = ex->active == ln->idx && !lost(ln);
	pthread_mutex_unlock(&ex->mu);
	if (!lost(ln) && was_active)
		drain_stopped(ex);
	lane_end(ln, was_active);
	return NULL;
}

/* ---- the watcher: lanes stuck in a native call ---------------------------- */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;   /* an executor was added, one's w_busy was cleared, a lane began */
	txs_executor *head;
	bool started;
	atomic_bool idle;    /* asleep until a lane begins to run something */
} W = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, false, false};

/* A lane's engine began a VM entry (engine_progress.began, the lane's
 * thread): the watcher, asleep while no lane ran anything, looks again.
 * The fence pairs with watch_idle's: either this sees it asleep, or it
 * sees this lane's start. */
static void watch_began(void)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(&W.idle, memory_order_relaxed))
		return;
	pthread_mutex_lock(&W.mu);
	pthread_cond_broadcast(&W.cv);
	pthread_mutex_unlock(&W.mu);
}

/* True when one of ex's lanes runs an execution. ex->mu held. */
static bool running_locked(const txs_executor *ex)
{
	for (int i = 0; i < 2; i++)
		if (ex->lanes[i]->started && atomic_load(&ex->lanes[i]->prog.start_ns) != 0)
			return true;
	return false;
}

/* True when a lane of a watched executor runs an execution. W.mu held. */
static bool any_running_locked(void)
{
	for (txs_executor *ex = W.head; ex; ex = ex->w_next) {
		pthread_mutex_lock(&ex->mu);
		bool run = running_locked(ex);
		pthread_mutex_unlock(&ex->mu);
		if (run)
			return true;
	}
	return false;
}

/* With nothing running, sleeps until a lane begins (watch_began) or the
 * list changes: an idle host's watcher woke 200 times a second, and in
 * process isolation each engine process's did. W.mu held. */
static void watch_idle(void)
{
	atomic_store_explicit(&W.idle, true, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (!any_running_locked())
		pthread_cond_wait(&W.cv, &W.mu);
	atomic_store_explicit(&W.idle, false, memory_order_relaxed);
}

static uint64_t lane_cpu_ns(const lane *ln)
{
	struct timespec ts;
	if (clock_gettime(ln->cpu_clock, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* True when ln's call has used its budget plus the grace in CPU (the
 * watchdog stops JavaScript well before that: only a native call gets
 * there), or has run past its wall-clock backstop. Its CPU is measured
 * from when the watcher first saw the call, plus the time before that. */
static bool lane_stuck(lane *ln, uint64_t now)
{
	uint64_t start = atomic_load_explicit(&ln->prog.start_ns, memory_order_acquire);
	if (!start || start != ln->w_start) {
		ln->w_start = start;
		ln->w_seen = now;
		ln->w_cpu = start ? lane_cpu_ns(ln) : 0;
		ln->w_stall = txs_stall_total_ns();
		return false;
	}
	uint64_t budget = atomic_load_explicit(&ln->prog.budget_ns, memory_order_relaxed);
	uint64_t stalled = txs_stall_total_ns() - ln->w_stall; /* the process was stopped */
	uint64_t wall = now > start + stalled ? now - start - stalled : 0;
	if (wall >= engine_backstop_ns(budget))
		return true;
	/* The watchdog stops JavaScript within ~1.3 ms of the budget; its own
	 * timer thread can be later than the grace on a machine with several
	 * runnable threads per core, and a loop about to be stopped is then
	 * taken for a native call (its lane is abandoned and rebuilt: the scan
	 * still answers timeout). A longer grace would delay every stuck
	 * answer, and process isolation's answer with it (the child's watcher
	 * answers before the host's kill there). */
	uint64_t limit = budget + STUCK_GRACE_NS;
	if (wall < limit)
		return false;
	uint64_t cpu = lane_cpu_ns(ln) - ln->w_cpu + (ln->w_seen - start);
	return cpu >= limit;
}

/* What the watcher (or free) took from an abandoned lane, answered once
 * the locks are let go. */
typedef struct takeback {
	cmd *done[BATCH_MAX];           /* scans of its batch that had finished ... */
	engine_result dres[BATCH_MAX];  /* ... and their answers */
	size_t ndone;
	cmd *stuck;          /* the scan it was stuck in: answered "timeout" */
	uint64_t stuck_ms;
	cmd_list orphans;    /* answered with orphan_status */
	txs_status orphan_status;
	const char *event;
	bool exhausted;
	char msg[256];
} takeback;

/* Puts a fresh, unstarted lane in slot i. mu held. */
static lane *slot_fresh_locked(txs_executor *ex, int i)
{
	/* No thread starts once MAX_STUCK lanes are stuck, so at most one
	 * more (the other slot's) can get stuck: one entry is always free. */
	size_t k = 0, n = sizeof ex->pool / sizeof ex->pool[0];
	while (k + 1 < n && ex->pool[k].in_use)
		k++;
	lane *ln = &ex->pool[k];
	assert(!ln->in_use);
	pthread_mutex_destroy(&ln->con_mu);
	memset(ln, 0, sizeof *ln);
	ln->ex = ex;
	ln->idx = i;
	ln->prog.began = watch_began;
	ln->in_use = true;
	pthread_mutex_init(&ln->con_mu, NULL);
	ex->lanes[i] = ln;
	return ln;
}

/* The stuck lane was the active one: the standby lane takes over, or a
 * fresh thread in the slot, unless MAX_STUCK is reached. mu held. */
static void hand_over_locked(txs_executor *ex, int slot, bool was_ready, takeback *tb)
{
	lane *other = ex->lanes[1 - slot];
	SET(ex->st.running, false);
	SET(ex->st.busy, false);
	if (ex->stuck >= MAX_STUCK || ex->stopping) {
		ex->exhausted = !ex->stopping;
		take_ring_locked(ex, &tb->orphans, false);
		tb->orphan_status = ex->stopping ? TXS_STATUS_STOPPED : TXS_STATUS_UNAVAILABLE;
		tb->exhausted = ex->exhausted;
		return;
	}
	unpop_locked(ex, tb->orphans.v, tb->orphans.n);
	free(tb->orphans.v);
	tb->orphans.v = NULL;
	tb->orphans.n = 0;
	if (other->started) {
		ex->active = other->idx;
		ex->promoted = was_ready ? PROMOTE_READY : PROMOTE_BUILD;
		ex->sb = SB_IDLE;
		SET(ex->st.standby_ready, false);
		pthread_cond_broadcast(&ex->sb_wake);
	} else {
		ex->active = slot;
		ex->promoted = PROMOTE_BUILD;
		if (!lane_start_locked(ex->lanes[slot])) {
			ex->exhausted = true;
			tb->exhausted = true;
		}
	}
}

/* Gives up on ln, stuck in one call: takes what it held, puts a fresh
 * lane in its slot and, if it served, hands the ring over. mu and ln's
 * con_mu held (con_mu is let go here). */
static void abandon_locked(txs_executor *ex, lane *ln, uint64_t now, takeback *tb)
{
	int slot = ln->idx;
	bool was_active = ex->active == slot && ex->started;
	bool was_ready = ex->sb == SB_READY;
	bool building = atomic_load(&ln->building);
	atomic_store_explicit(&ln->abandoned, true, memory_order_release);
	pthread_mutex_unlock(&ln->con_mu);
	size_t from = ln->hdone, to = ln->nheld;
	uint32_t j = atomic_load(&ln->prog.index);
	uint64_t start = atomic_load(&ln->prog.start_ns);
	tb->orphans.v = to > from ? malloc((to - from) * sizeof(cmd *)) : NULL;
	bool scans = !building && from < to && ln->held[from]->kind == CMD_SCAN;
	for (size_t i = from; i < to; i++) {
		cmd *c = ln->held[i];
		if (scans && i < from + j && i - from < BATCH_MAX) { /* finished: its answer is in er */
			tb->dres[tb->ndone] = ln->er[i - from];
			tb->done[tb->ndone++] = c;
		} else if (scans && i == from + j) {
			tb->stuck = c;
		} else if (tb->orphans.v) {
			tb->orphans.v[tb->orphans.n++] = c;
		}
	}
	ln->taken = tb->ndone;
	tb->stuck_ms = start && now > start ? (now - start) / 1000000 : 0;
	ln->nheld = ln->hdone = 0;
	ex->live--; /* it no longer serves: free does not wait for it */
	ex->stuck++;
	SET(ex->st.lanes_stuck, ex->stuck);
	INC(ex->st.lanes_abandoned);
	slot_fresh_locked(ex, slot);
	tb->event = "lane_abandoned";
	snprintf(tb->msg, sizeof tb->msg, "a %s stuck in a native call for %llu ms was abandoned "
	         "(%u stuck now)", building ? "engine build" : "scan",
	         (unsigned long long)tb->stuck_ms, ex->stuck);
	if (!ex->started) {
		char *err = NULL;
		if (asprintf(&err, "%s: loading the module or init(ctx) was stuck in a native call "
		             "for %llu ms (JavaScriptCore's regexp engine and typed-array fills do not "
		             "stop at the deadline)", ex->code->filename,
		             (unsigned long long)tb->stuck_ms) < 0)
			err = NULL;
		handshake_locked(ex, TXS_EPLUGIN, err);
		return;
	}
	if (was_active)
		hand_over_locked(ex, slot, was_ready, tb);
	else if (ex->sb != SB_READY)
		ex->sb = SB_IDLE;
	if (ex->stopping) {
		tb->orphan_status = TXS_STATUS_STOPPED;
		pthread_cond_broadcast(&ex->gone);
	}
}

/* Answers what was taken from an abandoned lane. No lock held. */
static void answer_takeback(txs_executor *ex, takeback *tb)
{
	for (size_t i = 0; i < tb->ndone; i++)
		answer_result(ex, tb->done[i], &tb->dres[i], false);
	if (tb->stuck && tb->orphan_status == TXS_STATUS_STOPPED) {
		answer_stopped(ex, tb->stuck);
	} else if (tb->stuck) {
		cmd *c = tb->stuck;
		bool trial = c->trial;
		txs_scan_result r = {.status = TXS_STATUS_TIMEOUT, .ms = (double)tb->stuck_ms};
		if (asprintf(&r.error, "timed out: no answer after %llu ms; the scan was stuck in a "
		             "native call that does not stop at the deadline (e.g. a regular "
		             "expression with catastrophic backtracking), and its thread was abandoned",
		             (unsigned long long)tb->stuck_ms) < 0)
			r.error = NULL;
		INC(ex->st.scans);
		INC(ex->st.timeouts);
		count_latency(ex, tb->stuck_ms * 1000000ull);
		breaker_record(ex, TXS_STATUS_TIMEOUT, trial);
		answer(ex, c, &r);
	}
	if (tb->orphans.n) {
		char why[256];
		snprintf(why, sizeof why, "plugin %s: %u threads are stuck in native calls; it answers "
		         "again when one comes back", ex->id, (unsigned)MAX_STUCK);
		answer_list(ex, &tb->orphans, tb->orphan_status, why);
	}
	free(tb->orphans.v);
	if (tb->event)
		emit(ex, tb->event, "%s", tb->msg);
	if (tb->exhausted)
		emit(ex, "lanes_exhausted", "%u threads stuck in native calls: the plugin answers "
		     "unavailable until one comes back", (unsigned)MAX_STUCK);
}

/* Looks at ex's lanes; abandons one that is stuck. True while one of
 * them runs something (it needs watching). W.mu held. */
static bool watch_one(txs_executor *ex, uint64_t now)
{
	takeback tb = {.orphan_status = TXS_STATUS_UNAVAILABLE};
	bool hit = false;
	pthread_mutex_lock(&ex->mu);
	bool running = running_locked(ex);
	for (int i = 0; i < 2 && running && !hit; i++) {
		lane *ln = ex->lanes[i];
		if (!ln->started || !lane_stuck(ln, now))
			continue;
		if (pthread_mutex_trylock(&ln->con_mu) != 0)
			continue; /* in a console call: next round */
		abandon_locked(ex, ln, now, &tb);
		hit = true;
	}
	pthread_mutex_unlock(&ex->mu);
	if (!hit)
		return running;
	ex->w_busy = true;
	pthread_mutex_unlock(&W.mu);
	answer_takeback(ex, &tb);
	pthread_mutex_lock(&W.mu);
	ex->w_busy = false;
	pthread_cond_broadcast(&W.cv);
	return true; /* its replacement lane may start at once: look again */
}

static void *watch_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "txs:watch");
	pthread_mutex_lock(&W.mu);
	bool running = true; /* as the last round found; idle rounds end in watch_idle */
	for (;;) {
		if (!W.head) {
			pthread_cond_wait(&W.cv, &W.mu);
			continue;
		}
		if (!running) {
			watch_idle();
			running = true; /* woken: one tick, then look */
		}
		pthread_mutex_unlock(&W.mu);
		struct timespec ts = {0, (long)WATCH_PERIOD_NS};
		uint64_t asked = now_ns() + WATCH_PERIOD_NS;
		nanosleep(&ts, NULL);
		uint64_t now = now_ns();
		txs_stall_observe(asked, now);
		pthread_mutex_lock(&W.mu);
		running = false;
		for (txs_executor *ex = W.head; ex; ex = ex->w_next)
			running = watch_one(ex, now) || running;
	}
	return NULL;
}

static int watch_add(txs_executor *ex)
{
	pthread_mutex_lock(&W.mu);
	if (!W.started) {
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		W.started = pthread_create(&t, &attr, watch_main, NULL) == 0;
		pthread_attr_destroy(&attr);
	}
	if (W.started) {
		ex->w_next = W.head;
		ex->w_prev = NULL;
		if (W.head)
			W.head->w_prev = ex;
		W.head = ex;
		ex->watched = true;
		pthread_cond_broadcast(&W.cv);
	}
	pthread_mutex_unlock(&W.mu);
	return W.started ? 0 : txs_fail(TXS_ENOMEM, "cannot start the watcher thread");
}

/* After this the watcher never touches ex again. */
static void watch_remove(txs_executor *ex)
{
	pthread_mutex_lock(&W.mu);
	while (ex->w_busy)
		pthread_cond_wait(&W.cv, &W.mu);
	if (ex->watched) {
		if (ex->w_prev)
			ex->w_prev->w_next = ex->w_next;
		else
			W.head = ex->w_next;
		if (ex->w_next)
			ex->w_next->w_prev = ex->w_prev;
		ex->watched = false;
	}
	pthread_mutex_unlock(&W.mu);
}

/* ---- public entry points (any thread) ---------------------------------- */

static void executor_destroy(txs_executor *ex)
{
	pthread_mutex_destroy(&ex->mu);
	pthread_cond_destroy(&ex->wake);
	pthread_cond_destroy(&ex->sb_wake);
	pthread_cond_destroy(&ex->gone);
	for (size_t k = 0; k < sizeof ex->pool / sizeof ex->pool[0]; k++)
		pthread_mutex_destroy(&ex->pool[k].con_mu);
	free(ex->ring);
	free(ex->start_err);
	free(ex->last_start_err);
	code_free(ex->code);
	free(ex);
}

static void executor_unref(txs_executor *ex)
{
	if (atomic_fetch_sub(&ex->refs, 1) == 1)
		executor_destroy(ex);
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
	atomic_init(&ex->refs, 1);
	ex->realm_last_ns = 0; /* one measure alone never decides */
	SET(ex->st.breaker_after, ex->lim.breaker_after);
	snprintf(ex->id, sizeof ex->id, "%s", code->id);
	ex->queue_cap = ex->lim.queue_capacity;
	ex->max_input = ex->lim.max_input_bytes;
	ex->ring_cap = ex->queue_cap + CONTROL_SLOTS + BATCH_MAX; /* see unpop_locked */
	ex->ring = calloc(ex->ring_cap, sizeof *ex->ring);
	ex->code = code_copy(code);
	pthread_mutex_init(&ex->mu, NULL);
	txs_cond_init(&ex->wake);
	txs_cond_init(&ex->sb_wake);
	txs_cond_init(&ex->gone);
	for (size_t k = 0; k < sizeof ex->pool / sizeof ex->pool[0]; k++)
		pthread_mutex_init(&ex->pool[k].con_mu, NULL);
	slot_fresh_locked(ex, 0);
	slot_fresh_locked(ex, 1);
	*out = ex;
	if (!ex->ring || !ex->code)
		return txs_fail(TXS_ENOMEM, "out of memory");
	return 0;
}

/* Lanes still serving get until deadline to end; any still in a call then
 * is abandoned (what it holds is answered "stopped"). mu held. */
static void stop_lanes_locked(txs_executor *ex, uint64_t deadline)
{
	while (ex->live) {
		struct timespec ts = txs_timespec(deadline);
		if (pthread_cond_timedwait(&ex->gone, &ex->mu, &ts) != ETIMEDOUT || !ex->live)
			continue;
		for (int i = 0; i < 2; i++) {
			lane *ln = ex->lanes[i];
			if (!ln->started || lost(ln) ||
			    !atomic_load(&ln->prog.start_ns) || pthread_mutex_trylock(&ln->con_mu) != 0)
				continue;
			takeback tb = {.orphan_status = TXS_STATUS_STOPPED};
			abandon_locked(ex, ln, now_ns(), &tb);
			tb.event = NULL;
			pthread_mutex_unlock(&ex->mu);
			answer_takeback(ex, &tb);
			pthread_mutex_lock(&ex->mu);
		}
		deadline = now_ns() + 1000000ull; /* a lane between calls ends by itself */
	}
}

/* Stops every lane (bounded: see stop_lanes_locked), then lets go of the
 * owner's reference; abandoned lanes still in their call hold theirs. */
static void executor_release(txs_executor *ex, uint64_t grace_ns)
{
	pthread_mutex_lock(&ex->mu);
	ex->stopping = true;
	txs_bell *bell = ex->bell;
	txs_source src = ex->src;
	pthread_cond_broadcast(&ex->wake);
	pthread_cond_broadcast(&ex->sb_wake);
	pthread_mutex_unlock(&ex->mu);
	if (bell)
		txs_bell_ring(bell);
	if (src.kick)
		src.kick(src.ud);
	pthread_mutex_lock(&ex->mu);
	stop_lanes_locked(ex, now_ns() + grace_ns);
	pthread_mutex_unlock(&ex->mu);
	drain_stopped(ex);
	watch_remove(ex);
	executor_unref(ex);
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
	if ((rc = watch_add(ex)))
		goto fail;
	pthread_mutex_lock(&ex->mu);
	if (!lane_start_locked(ex->lanes[0])) {
		pthread_mutex_unlock(&ex->mu);
		rc = txs_fail(TXS_ENOMEM, "cannot start a thread for plugin %s", code->id);
		goto fail;
	}
	while (!ex->started)
		pthread_cond_wait(&ex->wake, &ex->mu);
	pthread_mutex_unlock(&ex->mu);
	if (ex->start_rc != 0) {
		rc = txs_fail_msg(TXS_EPLUGIN, ex->start_err);
		executor_release(ex, STOP_GRACE_NS);
		return rc;
	}
	*out = ex;
	return 0;
fail:
	if (ex) {
		watch_remove(ex);
		executor_unref(ex);
	}
	return rc;
}

/* Pushes c: scans at the tail; control commands (restart, reload) at the
 * head, in the reserved slots, so that one is not queued behind a backlog
 * of scans. A serving thread that slept on an empty queue is woken, or,
 * when ring_due is not NULL and it sleeps on a bell, *ring_due is set for
 * the caller to ring. */
static int push(txs_executor *ex, cmd *c, bool *ring_due)
{
	uint32_t limit = ex->queue_cap + (c->kind == CMD_SCAN ? 0 : CONTROL_SLOTS);
	pthread_mutex_lock(&ex->mu);
	if (ex->stopping) {
		pthread_mutex_unlock(&ex->mu);
		return TXS_ESTOPPED;
	}
	if (ex->exhausted) {
		pthread_mutex_unlock(&ex->mu);
		INC(ex->st.unavailable);
		return TXS_EUNAVAILABLE;
	}
	if (ex->count >= limit) {
		pthread_mutex_unlock(&ex->mu);
		INC(ex->st.overloaded);
		return TXS_EOVERLOADED;
	}
	if (c->kind == CMD_SCAN) {
		ex->ring[(ex->head + ex->count) % ex->ring_cap] = c;
	} else {
		ex->head = (ex->head + ex->ring_cap - 1) % ex->ring_cap;
		ex->ring[ex->head] = c;
	}
	bool was_empty = ex->count++ == 0;
	txs_bell *bell = ex->bell;
	txs_source src = ex->src;
	atomic_fetch_add_explicit(&ex->st.pending, 1, memory_order_relaxed);
	pthread_mutex_unlock(&ex->mu);
	if (!was_empty)
		return 0;
	if (src.kick) {
		if (!ring_due) /* a submitter other than the source itself */
			src.kick(src.ud);
	} else if (!bell)
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

static int refuse(txs_executor *ex, int rc)
{
	if (rc == TXS_ESTOPPED)
		return txs_fail(rc, "executor is stopping");
	if (rc == TXS_EUNAVAILABLE)
		return txs_fail(rc, "plugin %s: %u threads are stuck in native calls; it answers again "
		                "when one comes back", ex->id, (unsigned)MAX_STUCK);
	return txs_fail(rc, "plugin %s: queue full", ex->id);
}

/* Queues one scan of tx, copied into the command, or of shared's text
 * (tx is then shared->text), which the command holds a count of. */
static int submit_scan(txs_executor *ex, const char *tx, size_t len, txs_shared_text *shared,
                       txs_scan_fn cb, void *userdata, bool *ring_due)
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
	bool trial = false;
	int rc = GET(ex->st.breaker_state) == TXS_BREAKER_CLOSED ? 0 : breaker_gate(ex, &trial);
	if (rc)
		return rc;
	cmd *c = malloc(sizeof *c + (shared ? 0 : len + 1));
	if (!c) {
		if (trial)
			breaker_record(ex, TXS_STATUS_STOPPED, true);
		return txs_fail(TXS_ENOMEM, "out of memory");
	}
	*c = (cmd){.kind = CMD_SCAN, .cb = cb, .userdata = userdata, .len = len, .trial = trial};
	if (shared) {
		atomic_fetch_add_explicit(&shared->refs, 1, memory_order_relaxed);
		c->shared = shared;
		c->tx = shared->text;
	} else {
		c->tx = (char *)(c + 1);
		memcpy(c->tx, tx, len);
		c->tx[len] = '\0';
	}
	rc = push(ex, c, ring_due);
	if (rc) {
		cmd_free(c);
		if (trial)
			breaker_record(ex, TXS_STATUS_STOPPED, true);
		return refuse(ex, rc);
	}
	return 0;
}

int txs_executor_submit_quiet(txs_executor *ex, const char *tx, size_t len, txs_scan_fn cb,
                              void *userdata, bool *ring_due)
{
	return submit_scan(ex, tx, len, NULL, cb, userdata, ring_due);
}

int txs_executor_submit_shared(txs_executor *ex, txs_shared_text *text, txs_scan_fn cb,
                               void *userdata, bool *ring_due)
{
	if (!text)
		return txs_fail(TXS_EINVAL, "txs_executor_submit_shared: NULL text");
	return submit_scan(ex, text->text, text->len, text, cb, userdata, ring_due);
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
	if (rc && !c.err)
		return refuse(ex, rc);
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
	s->lanes_abandoned = GET(st->lanes_abandoned);
	s->lanes_stuck = GET(st->lanes_stuck);
	s->breaker_state = GET(st->breaker_state);
	s->breaker_opens = GET(st->breaker_opens);
	s->realm_restarts = GET(st->realm_restarts);
	s->realm_prepared = GET(st->realm_prepared);
	s->skipped = GET(st->skipped);
	s->latency_sum_ms = (double)GET(st->latency_sum_ns) / 1e6;
	for (int i = 0; i < TXS_LATENCY_BUCKETS; i++)
		s->latency_buckets[i] = GET(st->latency[i]);
	s->recycle_sum_ms = (double)GET(st->recycle_sum_ns) / 1e6;
	for (int i = 0; i < TXS_LATENCY_BUCKETS; i++)
		s->recycle_buckets[i] = GET(st->recycle[i]);
}

void txs_executor_use_bell(txs_executor *ex, txs_bell *b)
{
	pthread_mutex_lock(&ex->mu);
	ex->bell = b;
	pthread_mutex_unlock(&ex->mu);
	pthread_cond_broadcast(&ex->wake); /* a thread asleep on the condvar moves to the bell */
}

void txs_executor_skip_unwanted(txs_executor *ex, bool (*wanted)(void *userdata))
{
	pthread_mutex_lock(&ex->mu);
	ex->wanted = wanted;
	pthread_mutex_unlock(&ex->mu);
}

void txs_executor_use_source(txs_executor *ex, const txs_source *src)
{
	pthread_mutex_lock(&ex->mu);
	ex->src = *src;
	pthread_mutex_unlock(&ex->mu);
	pthread_cond_broadcast(&ex->wake); /* a thread asleep on the condvar moves to the source */
}

uint32_t txs_executor_load(const txs_executor *ex)
{
	return GET(ex->st.pending);
}

/* Bounded: a lane stuck in a call is abandoned after STOP_GRACE_NS, its
 * scans answered "stopped"; its engine still dies on its own thread. */
void txs_executor_free(txs_executor *ex)
{
	if (!ex)
		return;
	executor_release(ex, STOP_GRACE_NS);
}

void txs_executor_on_event(txs_executor *ex, txs_event_fn fn, void *userdata)
{
	pthread_mutex_lock(&ex->mu);
	ex->event = fn;
	ex->event_ud = userdata;
	pthread_mutex_unlock(&ex->mu);
}

void txs_scan_result_clear(txs_scan_result *r)
{
	if (!r)
		return;
	free(r->json);
	free(r->error);
	memset(r, 0, sizeof *r);
}
