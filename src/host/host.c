/*
 * host.c - plugin registry, per-plugin executor pools, fan-out, deadlines,
 * restart and reload.
 *
 * The plugin set is an immutable registry replaced whole by a load or a
 * rescan (txs_host_reload_all): a scan reads it without a lock and counts
 * itself into it, and a plugin taken out of the set is freed only once no
 * registry that held it has a scan left (see "the plugin set" below).
 *
 * A scan is a "fan-out": the transaction is checked once here (size cap, a
 * JSON object), then submitted to one executor of every plugin (the least
 * busy instance). Each answer lands in its slot; the last one builds the
 * report and calls the user back. A slot is claimed exactly once, by its
 * answer or by the deadline thread (CAS on slot->state), so a late answer
 * after the deadline is dropped, never reported twice. The fan-out is freed
 * when its last reference goes: one per outstanding executor callback plus
 * one for delivery.
 *
 * Deadlines: every fan-out has the same scan timeout, so the pending list,
 * kept in submission order, is also in deadline order; the deadline thread
 * sleeps until the head's deadline. A stall of the process (seen as a late
 * wake-up) moves every deadline back instead of expiring them.
 *
 * Loading tries every plugin and lists every failure. With allow_partial a
 * plugin that does not start stays in the registry "not started": no
 * executors, its slot in every fan-out answered "unavailable" at once, and
 * the retry thread re-reads it from disk and tries again with the
 * executor's quarantine back-off (100 ms doubling to 30 s). A start is
 * built with no host lock held; only publishing it (ex and instances under
 * the plugin's mu, then `started` with release order) takes the plugin's
 * mu, briefly. Whoever reads ex or instances loads `started` (acquire)
 * first.
 */
#define _GNU_SOURCE
#include "executor/bell.h"
#include "util/clock.h"
#include "console.h"
#include "instance.h"
#include "folders.h"
#include "util/error.h"
#include "util/jscan.h"
#include "plugin.h"
#include "plugin_log.h"
#include "report.h"
#include "tally.h"
#include "txscan.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CONSOLE_BUFFER 4096
#define NO_DEADLINE UINT32_MAX
/* Retries of a plugin that did not start: the executor's quarantine
 * back-off (BACKOFF_MIN_NS and BACKOFF_MAX_NS in src/executor/executor.c). */
#define RETRY_MIN_NS (100 * 1000000ull)
#define RETRY_MAX_NS (30 * 1000000000ull)

typedef struct plugin {
	char id[65];
	char *dir;
	uint32_t instances;
	instance *ex;      /* thread executors or engine processes (instance.h) */
	pthread_mutex_t mu; /* guards version and limits; never held while an executor works */
	char version[65];
	txs_limits limits;
	_Atomic bool ctl_busy; /* a restart or reload runs (they take turns: TXS_EBUSY) */
	/* false: not started (allow_partial); ex NULL, instances 0 until a
	 * start is published (see the top of this file) */
	_Atomic bool started;
	pthread_mutex_t emu; /* guards error */
	char *error;         /* why it is not started: the last attempt */
	uint64_t retry_at_ns, backoff_ns; /* under the host's rmu */
	uint32_t attempts;                /* under the host's rmu */
	bool attempting;                  /* under the host's rmu: a start runs */
	plog log;                         /* its failed scans: log lines, last error, the last minute */
	tally findings;                   /* counted as answers come in (tally.h) */
} plugin;

/* The plugin set scans see: immutable once published. A rescan publishes a
 * new one (see "the plugin set" below); a retired one is kept until the
 * host is freed (a few pointers each), so a scan that loaded it may
 * always read it. Its `scans` counts the fan-outs submitted with it and
 * not yet delivered: a removed plugin is freed once no registry that
 * holds it has any. */
typedef struct registry {
	_Atomic uint64_t scans;
	struct registry *retired; /* next older retired registry, under the host's rmu */
	size_t n;
	plugin *p[];
} registry;

struct fanout;

typedef struct slot {
	struct fanout *f;
	_Atomic int state; /* SLOT_PENDING, then ANSWERED or EXPIRED */
	report_part part;  /* written once, by whoever claimed the slot */
} slot;

enum { SLOT_PENDING, SLOT_ANSWERED, SLOT_EXPIRED };

typedef struct fanout {
	txs_host *h;
	registry *reg; /* the plugin set it was submitted to: slot i is reg->p[i] */
	_Atomic int refs, remaining;
	uint64_t t0_ns, deadline_ns;
	txs_report_fn cb;
	void *userdata;
	json_t *txid;
	uint64_t line;
	struct fanout *prev, *next; /* pending list, under h->dmu */
	bool listed;
	size_t n;
	slot slots[];
} fanout;

struct txs_host {
	txs_host_options opt;
	console_sink *sink;
	/* The plugin set. reg is read by scans without a lock; it is replaced
	 * under rmu and setlk (write), and readers that keep a plugin pointer
	 * past one call (info, restart, reload) hold setlk (read), so a plugin
	 * a rescan removed can only still be in use by scans (drained). */
	_Atomic(registry *) reg;
	registry *retired;       /* under rmu */
	pthread_rwlock_t setlk;
	pthread_mutex_t syncmu;  /* one load or rescan at a time */
	char **roots;            /* every path given to txs_host_load (rescanned) */
	size_t nroots;
	_Atomic uint32_t scan_timeout_ms; /* atomic: a plugin that starts late */
	_Atomic size_t max_input;         /* (allow_partial) updates them */
	_Atomic uint32_t in_flight;
	/* reports delivered, by verdict; relaxed atomics (txs_host_report_counts) */
	_Atomic uint64_t verdicts[TALLY_SEVERITIES], incomplete, input_errors;
	txs_bell bell; /* every executor of the host sleeps on it: one ring per fan-out */
	txs_isolation isolation; /* THREAD or PROCESS, resolved at txs_host_new */

	pthread_t deadline_thread;
	bool deadline_started;
	pthread_mutex_t dmu;
	pthread_cond_t dcv;
	fanout *head, *tail; /* under dmu */
	uint64_t dsleep_ns;  /* under dmu: the deadline thread sleeps until then (0: awake) */
	bool stopping;       /* under dmu */

	/* The retry thread starts not-started plugins (started with the first
	 * one). rmu guards plugins and n against txs_host_load, and the retry
	 * fields of every plugin. Lock order: rmu, then a plugin's mu. */
	pthread_t retry_thread;
	bool retry_started;
	pthread_mutex_t rmu;
	pthread_cond_t rcv;
	bool rstop; /* under rmu */
};

static uint64_t now_ns(void)
{
	return txs_now_ns();
}

/* ---- pending list and deadline thread ------------------------------- */

static void list_remove_locked(txs_host *h, fanout *f)
{
	if (!f->listed)
		return;
	if (f->prev)
		f->prev->next = f->next;
	else
		h->head = f->next;
	if (f->next)
		f->next->prev = f->prev;
	else
		h->tail = f->prev;
	f->listed = false;
}

static void list_add(txs_host *h, fanout *f)
{
	pthread_mutex_lock(&h->dmu);
	f->prev = h->tail;
	f->next = NULL;
	if (h->tail)
		h->tail->next = f;
	else
		h->head = f;
	h->tail = f;
	f->listed = true;
	/* Deadlines come in order, so the sleeper is woken only from an
	 * untimed wait, not once per fan-out. */
	bool wake = f->deadline_ns < h->dsleep_ns;
	pthread_mutex_unlock(&h->dmu);
	if (wake)
		pthread_cond_signal(&h->dcv);
}

static void release(fanout *f)
{
	if (atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	for (size_t i = 0; i < f->n; i++)
		report_part_clear(&f->slots[i].part);
	json_decref(f->txid);
	free(f);
}

/* Every plugin of the fan-out that did not answer ok, counted and logged
 * (plugin_log.h); a scan stopped by shutdown is not a plugin's failure. */
static void log_failures(fanout *f)
{
	txs_host *h = f->h;
	for (size_t i = 0; i < f->n; i++) {
		const report_part *part = &f->slots[i].part;
		if (part->status == TXS_STATUS_OK || part->status == TXS_STATUS_STOPPED)
			continue;
		plugin *p = f->reg->p[i];
		char version[65];
		pthread_mutex_lock(&p->mu);
		memcpy(version, p->version, sizeof version);
		pthread_mutex_unlock(&p->mu);
		plog_scan sc = {.plugin = p->id, .version = version, .generation = part->generation,
		                .status = part->status, .tx = f->txid, .line = f->line,
		                .error = part->error, .ms = part->ms};
		size_t len;
		char *line = plog_failure(&p->log, &sc, &len);
		if (line)
			console_sink_push(h->sink, line, len);
	}
}

static void count_report(txs_host *h, const txs_report *rep)
{
	txs_severity v = txs_report_verdict(rep);
	if ((unsigned)v < TALLY_SEVERITIES)
		atomic_fetch_add_explicit(&h->verdicts[v], 1, memory_order_relaxed);
	if (!txs_report_complete(rep))
		atomic_fetch_add_explicit(&h->incomplete, 1, memory_order_relaxed);
}

static void deliver(fanout *f)
{
	txs_host *h = f->h;
	pthread_mutex_lock(&h->dmu);
	list_remove_locked(h, f);
	pthread_mutex_unlock(&h->dmu);
	const char *ids[f->n];
	report_part parts[f->n];
	for (size_t i = 0; i < f->n; i++) {
		ids[i] = f->reg->p[i]->id;
		parts[i] = f->slots[i].part;
	}
	txs_report *rep =
	    report_build(f->txid, f->line, (double)(now_ns() - f->t0_ns) / 1e6, ids, parts, f->n);
	if (!rep)
		rep = report_oom();
	count_report(h, rep);
	atomic_fetch_sub(&h->in_flight, 1);
	f->cb(rep, f->userdata);
	log_failures(f); /* after the report: it is never late for this */
	/* the report holds copies and the failures are logged: the plugins
	 * may go once this is counted down */
	atomic_fetch_sub(&f->reg->scans, 1);
	release(f);
}

/* Claims slot i for its answer or for the deadline; the last claim delivers. */
static bool claim(fanout *f, size_t i, int how)
{
	int expect = SLOT_PENDING;
	return atomic_compare_exchange_strong(&f->slots[i].state, &expect, how);
}

/* A plugin's scan of slot s is still waited for (txs_executor_skip_unwanted):
 * the report deadline has not claimed it. */
static bool slot_wanted(void *s)
{
	return atomic_load(&((slot *)s)->state) == SLOT_PENDING;
}

static void settle_one(fanout *f)
{
	if (atomic_fetch_sub(&f->remaining, 1) == 1)
		deliver(f);
}

static void expire(fanout *f)
{
	double waited = (double)(now_ns() - f->t0_ns) / 1e6;
	for (size_t i = 0; i < f->n; i++) {
		if (!claim(f, i, SLOT_EXPIRED))
			continue;
		slot *s = &f->slots[i];
		s->part.status = TXS_STATUS_TIMEOUT;
		s->part.ms = waited;
		if (asprintf(&s->part.error, "no answer within the scan deadline of %u ms (queued behind "
		             "other scans)", f->h->scan_timeout_ms) < 0)
			s->part.error = NULL;
		settle_one(f);
	}
}

/* Called under dmu after a timed sleep until `until`. Waking up more than
 * STALL_NS late means the process did not run for a while (SIGSTOP, a VM
 * freeze, a swap storm, a debugger): time nobody ran is not the plugins'
 * fault, so every pending deadline moves back by the delay instead of
 * expiring (also those submitted since it ended: they get more time, never
 * less). Deadlines keep their order. A stall that ends before the head's
 * deadline is not seen (and costs the scans that much of it). */
static void forgive_stall_locked(txs_host *h, uint64_t until)
{
	enum { STALL_NS = 100 * 1000000 };
	uint64_t now = now_ns();
	if (now < until || now - until < STALL_NS)
		return;
	for (fanout *f = h->head; f; f = f->next)
		f->deadline_ns += now - until;
}

static void *deadline_main(void *arg)
{
	txs_host *h = arg;
	pthread_mutex_lock(&h->dmu);
	while (!h->stopping) {
		fanout *f = h->head;
		if (f && now_ns() >= f->deadline_ns) {
			list_remove_locked(h, f);
			atomic_fetch_add(&f->refs, 1);
			pthread_mutex_unlock(&h->dmu);
			expire(f);
			release(f);
			pthread_mutex_lock(&h->dmu);
			continue;
		}
		h->dsleep_ns = f ? f->deadline_ns : UINT64_MAX;
		if (f) {
			uint64_t until = f->deadline_ns; /* f may be gone when the wait ends */
			struct timespec ts = txs_timespec(until);
			pthread_cond_timedwait(&h->dcv, &h->dmu, &ts);
			forgive_stall_locked(h, until);
		} else {
			pthread_cond_wait(&h->dcv, &h->dmu);
		}
		h->dsleep_ns = 0;
	}
	pthread_mutex_unlock(&h->dmu);
	return NULL;
}

/* ---- fan-out ----------------------------------------------------------- */

static void on_answer(txs_scan_result *res, void *ud)
{
	slot *s = ud;
	fanout *f = s->f;
	size_t i = (size_t)(s - f->slots);
	if (claim(f, i, SLOT_ANSWERED)) {
		/* validated here, on the executor's thread: in parallel with the
		 * other plugins of the fan-out, not serially when the last answers */
		plugin *p = f->reg->p[i];
		report_part_set(&s->part, p->id, res);
		for (size_t k = 0; k < s->part.nrefs; k++)
			tally_add(&p->findings, s->part.findings + s->part.refs[k].code_at,
			          s->part.refs[k].code_len, s->part.refs[k].severity);
		settle_one(f);
	} else {
		txs_scan_result_clear(res);
	}
	release(f);
}

/* Least pending commands among the plugin's instances. */
static instance *pick(const plugin *p)
{
	instance *best = &p->ex[0];
	uint32_t load = p->instances > 1 ? instance_load(best) : 0;
	for (uint32_t i = 1; i < p->instances && load; i++) {
		uint32_t l = instance_load(&p->ex[i]);
		if (l < load) {
			load = l;
			best = &p->ex[i];
		}
	}
	return best;
}

/* The answer of a plugin that is not started (allow_partial): its load
 * error, through txs_last_error() like an executor's refusal. */
static int not_started(plugin *p)
{
	pthread_mutex_lock(&p->emu);
	int rc = txs_fail(TXS_EUNAVAILABLE, "plugin %s is not started (retried in the background): %s",
	                  p->id, p->error ? p->error : "no attempt yet");
	pthread_mutex_unlock(&p->emu);
	return rc;
}

static void refused(fanout *f, size_t i, int rc)
{
	slot *s = &f->slots[i];
	if (!claim(f, i, SLOT_ANSWERED))
		return;
	s->part.status = rc == TXS_EOVERLOADED    ? TXS_STATUS_OVERLOADED
	                : rc == TXS_EUNAVAILABLE ? TXS_STATUS_UNAVAILABLE
	                : rc == TXS_ESTOPPED     ? TXS_STATUS_STOPPED
	                                         : TXS_STATUS_ERROR;
	s->part.error = strdup(txs_last_error());
	settle_one(f);
}

typedef struct tx_ids {
	span hash, id; /* top-level members; a repeated key: the last wins */
} tx_ids;

static void tx_member(const jstr *key, span value, void *ud)
{
	tx_ids *t = ud;
	if (key->nul)
		return;
	if (key->len == 4 && !memcmp(key->buf, "hash", 4))
		t->hash = value;
	else if (key->len == 2 && !memcmp(key->buf, "id", 2))
		t->id = value;
}

/* The input's "hash" when it is a string, else its "id" when a string or a
 * number (integral ones within double's exact range as integers): a new
 * reference, or NULL. jansson reads just that value. */
static json_t *txid_of(const tx_ids *t)
{
	span v = t->hash.p && *t->hash.p == '"' ? t->hash : t->id;
	if (!v.p || !(*v.p == '"' || *v.p == '-' || (*v.p >= '0' && *v.p <= '9')))
		return NULL;
	size_t n = (size_t)(v.end - v.p);
	if (*v.p == '"' && n >= 2 && !memchr(v.p, '\\', n))
		return json_stringn(v.p + 1, n - 2); /* a hash has no escapes: no parser */
	json_t *j = json_loadb(v.p, (size_t)(v.end - v.p),
	                       JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
	double num = json_is_real(j) ? json_real_value(j) : 0.5;
	if (num >= -9007199254740992.0 && num <= 9007199254740992.0 && num == floor(num)) {
		json_decref(j);
		return json_integer((json_int_t)num);
	}
	return j;
}

/* The one C-side check before fan-out: size, JSON syntax (jscan.c: checked
 * in place, nothing built), a JSON object. On success *txid is the input's
 * id (see txid_of). */
static char *check_input(const txs_host *h, const char *tx, size_t len, json_t **txid)
{
	char *msg = NULL;
	if (len > h->max_input) {
		if (asprintf(&msg, "transaction is %zu bytes, the cap is %zu", len, h->max_input) < 0)
			msg = NULL;
		return msg ? msg : strdup("transaction too large");
	}
	jscan s;
	jscan_init(&s, tx, len);
	tx_ids ids = {{0}, {0}};
	jscan_ws(&s);
	const char *v0 = s.p;
	bool ok = jscan_at(&s, '{') ? jscan_object(&s, 1, tx_member, &ids)
	        : s.p < s.end       ? jscan_value(&s, 1)
	                            : jscan_fail(&s, "no JSON value");
	if (ok)
		jscan_end(&s);
	if (s.syntax) {
		msg = jscan_error_text(&s, "invalid JSON");
		return msg ? msg : strdup("invalid JSON");
	}
	if (*v0 != '{') {
		if (asprintf(&msg, "transaction must be a JSON object, got %s", jscan_kind(v0)) < 0)
			msg = NULL;
		return msg ? msg : strdup("invalid input");
	}
	*txid = txid_of(&ids);
	return NULL;
}

static fanout *fanout_new(txs_host *h, registry *reg, json_t *txid, uint64_t line,
                          txs_report_fn cb, void *ud)
{
	size_t n = reg->n;
	fanout *f = calloc(1, sizeof *f + n * sizeof(slot));
	if (!f)
		return NULL;
	*f = (fanout){.h = h, .reg = reg, .cb = cb, .userdata = ud, .txid = txid, .line = line,
	              .n = n, .t0_ns = now_ns()};
	atomic_init(&f->refs, (int)n + 1);
	atomic_init(&f->remaining, (int)n);
	f->deadline_ns = h->scan_timeout_ms == NO_DEADLINE
	                     ? UINT64_MAX
	                     : f->t0_ns + (uint64_t)h->scan_timeout_ms * 1000000ull;
	for (size_t i = 0; i < n; i++)
		f->slots[i].f = f;
	return f;
}

/* The current plugin set, counted as used by one more scan. The count
 * goes up before the set is read again (both sequentially consistent):
 * either this sees a newer set and moves on, or the rescan that published
 * it sees the count and waits (see drain_retired). */
static registry *enter(txs_host *h)
{
	for (;;) {
		registry *r = atomic_load(&h->reg);
		atomic_fetch_add(&r->scans, 1);
		if (atomic_load(&h->reg) == r)
			return r;
		atomic_fetch_sub(&r->scans, 1);
	}
}

/* What a batch of submissions owes the plugins once it is queued: the
 * bell, when an executor it queued on sleeps; a write to each engine
 * process whose frames were only queued (txs_proc_submit_quiet). Only
 * engine processes of reg, the plugin set the batch holds, are deferred:
 * they cannot be freed before the batch flushes them. */
#define KICK_PROCS 64

typedef struct kick {
	bool ring;
	registry *reg;
	txs_proc *procs[KICK_PROCS];
	size_t n;
} kick;

static void kick_add(kick *k, txs_proc *p)
{
	for (size_t i = 0; i < k->n; i++)
		if (k->procs[i] == p)
			return;
	if (k->n < KICK_PROCS)
		k->procs[k->n++] = p;
	else
		txs_proc_flush(p);
}

static void kick_done(txs_host *h, kick *k)
{
	if (k->ring)
		txs_bell_ring(&h->bell);
	for (size_t i = 0; i < k->n; i++)
		txs_proc_flush(k->procs[i]);
	k->n = 0;
	k->ring = false;
}

/* Starts one scan; k->ring is set when an executor it queued on sleeps and
 * the bell must be rung for it, and engine processes of k->reg may be
 * added to k->procs (see kick). */
static int submit_one(txs_host *h, const char *tx, size_t len, uint64_t line, txs_report_fn cb,
                      void *ud, kick *k)
{
	if (!tx || !cb)
		return txs_fail(TXS_EINVAL, "txs_host_submit: NULL argument");
	if (!atomic_load(&h->reg)->n)
		return txs_fail(TXS_EINVAL, "no plugins loaded");
	json_t *txid = NULL;
	char *bad = check_input(h, tx, len, &txid);
	if (bad) {
		txs_report *rep = report_input_error(line, bad);
		free(bad);
		atomic_fetch_add_explicit(&h->input_errors, 1, memory_order_relaxed);
		if (!rep)
			rep = report_oom();
		cb(rep, ud);
		return 0;
	}
	registry *reg = enter(h);
	fanout *f = reg->n ? fanout_new(h, reg, txid, line, cb, ud) : NULL;
	if (!f) {
		atomic_fetch_sub(&reg->scans, 1);
		json_decref(txid);
		return reg->n ? txs_fail(TXS_ENOMEM, "out of memory")
		              : txs_fail(TXS_EINVAL, "no plugins loaded");
	}
	atomic_fetch_add(&h->in_flight, 1);
	if (f->deadline_ns != UINT64_MAX)
		list_add(h, f);
	txs_shared_text *shared = NULL;
	for (size_t i = 0; i < reg->n; i++) {
		plugin *p = reg->p[i];
		instance *in = pick(p);
		bool deferred = false;
		int rc = atomic_load_explicit(&p->started, memory_order_acquire)
		             ? instance_submit(in, tx, len, &shared, on_answer, &f->slots[i], &k->ring,
		                               k->reg == reg && in->proc ? &deferred : NULL)
		             : not_started(p);
		if (deferred)
			kick_add(k, in->proc);
		if (rc) {
			refused(f, i, rc);
			release(f);
		}
	}
	txs_shared_text_release(shared);
	return 0;
}

int txs_host_submit(txs_host *h, const char *tx, size_t len, uint64_t line, txs_report_fn cb,
                    void *ud)
{
	if (!h)
		return txs_fail(TXS_EINVAL, "txs_host_submit: NULL argument");
	kick k = {0};
	int rc = submit_one(h, tx, len, line, cb, ud, &k);
	kick_done(h, &k);
	return rc;
}

size_t txs_host_submit_many(txs_host *h, const txs_submission *subs, size_t n, txs_report_fn cb)
{
	if (!h || (n && !subs)) {
		txs_fail(TXS_EINVAL, "txs_host_submit_many: NULL argument");
		return 0;
	}
	kick k = {.reg = enter(h)};
	size_t i = 0;
	for (; i < n; i++)
		if (submit_one(h, subs[i].tx, subs[i].len, subs[i].line, cb, subs[i].userdata, &k))
			break;
	kick_done(h, &k);
	atomic_fetch_sub(&k.reg->scans, 1);
	return i;
}

struct sync_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	txs_report *rep;
};

static void sync_done(txs_report *rep, void *ud)
{
	struct sync_wait *w = ud;
	pthread_mutex_lock(&w->mu);
	w->rep = rep;
	/* under the lock: w lives on the waiter's stack and dies once it sees rep */
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int txs_host_scan(txs_host *h, const char *tx, size_t len, uint64_t line, txs_report **out)
{
	struct sync_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	*out = NULL;
	int rc = txs_host_submit(h, tx, len, line, sync_done, &w);
	if (rc)
		return rc;
	pthread_mutex_lock(&w.mu);
	while (!w.rep)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	*out = w.rep;
	return 0;
}

/* ---- registry ------------------------------------------------------------ */

/* Stops the plugin's executors or engine processes: its queued scans are
 * answered, and no thread of its own runs any more. */
static void plugin_stop(plugin *p)
{
	for (uint32_t i = 0; p->ex && i < p->instances; i++)
		instance_free(&p->ex[i]);
	free(p->ex);
	p->ex = NULL;
}

static void plugin_free(plugin *p)
{
	if (!p)
		return;
	plugin_stop(p);
	free(p->dir);
	free(p->error);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->emu);
	plog_destroy(&p->log);
	tally_fini(&p->findings);
	free(p);
}

static txs_plugin_code code_of(const plugin_manifest *m)
{
	return (txs_plugin_code){.id = m->id, .version = m->version, .filename = m->main_path,
	                         .source = m->source, .source_len = m->source_len,
	                         .config_json = m->config_json};
}

/* A plugin with no executors yet (not started). */
static plugin *plugin_new(const char *dir, const char *id, const char *version,
                          const txs_limits *lim)
{
	plugin *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->emu, NULL);
	plog_init(&p->log);
	tally_init(&p->findings);
	snprintf(p->id, sizeof p->id, "%s", id);
	snprintf(p->version, sizeof p->version, "%s", version);
	p->limits = *lim;
	p->dir = strdup(dir);
	if (!p->dir) {
		plugin_free(p);
		return NULL;
	}
	return p;
}

/* A plugin's console line, tagged with the scan that printed it (the
 * submit userdata is the fan-out's slot), into the log sink; on the
 * executor's thread, inside the scan, so the slot is alive. */
static void host_console(const char *id, const char *level, const char *msg, size_t len,
                         void *ud)
{
	txs_host *h = ud;
	const slot *s = txs_log_scan_userdata;
	size_t n;
	char *line = plog_console_line(id, level, msg, len, s ? s->f->txid : NULL,
	                               s ? s->f->line : 0, &n);
	if (line)
		console_sink_push(h->sink, line, n);
}

/* Executor events (circuit breaker, stuck lanes): the embedder's callback,
 * else a log line of their own name (docs/logging.md). */
static void host_event(const char *id, const char *event, const char *detail, void *ud)
{
	txs_host *h = ud;
	if (h->opt.event) {
		h->opt.event(id, event, detail, h->opt.event_userdata);
		return;
	}
	bool good = strstr(event, "closed") || strstr(event, "returned");
	txs_log(good ? TXS_LOG_INFO : TXS_LOG_WARN, event,
	        json_pack("{s:s, s:s}", "plugin", id, "detail", detail ? detail : ""));
}

/* Every instance's executor, or none (the first failure's error). */
static int start_executors(txs_host *h, const plugin_manifest *m, instance **out)
{
	instance *ex = calloc(m->instances, sizeof *ex);
	if (!ex)
		return txs_fail(TXS_ENOMEM, "out of memory");
	txs_plugin_code code = code_of(m);
	txs_console_fn con = h->opt.console ? h->opt.console : h->opt.console_quiet ? NULL
	                                                                             : host_console;
	void *ud = h->opt.console ? h->opt.console_userdata : h;
	int rc = 0;
	for (uint32_t i = 0; !rc && i < m->instances; i++) {
		rc = instance_new(&ex[i], h->isolation, h->opt.engine_path, &code, &m->limits, con, ud,
		                  &h->bell, slot_wanted);
		if (!rc)
			instance_on_event(&ex[i], host_event, h);
	}
	for (uint32_t i = 0; !rc && i < m->instances; i++) /* engine processes start side by side */
		rc = instance_wait_started(&ex[i]);
	if (rc) {
		char *why = strdup(txs_last_error());
		for (uint32_t i = 0; i < m->instances; i++)
			instance_free(&ex[i]);
		free(ex);
		txs_fail_msg(rc, why ? why : "out of memory");
		free(why);
		return rc;
	}
	*out = ex;
	return 0;
}

/* From now on p serves with ex: written under mu, announced by started. */
static void publish(plugin *p, const plugin_manifest *m, instance *ex)
{
	pthread_mutex_lock(&p->mu);
	p->ex = ex;
	p->instances = m->instances;
	snprintf(p->version, sizeof p->version, "%s", m->version);
	p->limits = m->limits;
	pthread_mutex_unlock(&p->mu);
	pthread_mutex_lock(&p->emu);
	free(p->error);
	p->error = NULL;
	pthread_mutex_unlock(&p->emu);
	atomic_store_explicit(&p->started, true, memory_order_release);
}

static void set_error(plugin *p, const char *msg)
{
	char *copy = strdup(msg);
	pthread_mutex_lock(&p->emu);
	free(p->error);
	p->error = copy;
	pthread_mutex_unlock(&p->emu);
}

static int plugin_start(txs_host *h, const plugin_manifest *m, plugin **out)
{
	instance *ex = NULL;
	plugin *p = plugin_new(m->dir, m->id, m->version, &m->limits);
	if (!p)
		return txs_fail(TXS_ENOMEM, "out of memory");
	int rc = start_executors(h, m, &ex);
	if (rc) {
		plugin_free(p);
		return rc;
	}
	publish(p, m, ex);
	*out = p;
	return 0;
}

static void notify(const txs_host *h, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void notify(const txs_host *h, const char *level, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	if (!h->opt.notice)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	for (char *c = msg; *c; c++) /* one line: a JS stack has several */
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
	h->opt.notice(level, msg, h->opt.notice_userdata);
}

/* A failed plugin kept as not started, listed under id. */
static void keep_unstarted(txs_host *h, const char *dir, const char *id,
                           const plugin_manifest *m, plugin **out, failures *fl)
{
	txs_limits lim;
	txs_limits_init(&lim);
	*out = plugin_new(dir, id, m ? m->version : "", m ? &m->limits : &lim);
	if (!*out) {
		failures_add(fl, TXS_ENOMEM, "out of memory");
		fl->fatal = true;
		return;
	}
	set_error(*out, txs_last_error());
	notify(h, "warn", "plugin %s not started (retried in the background): %s", id,
	       txs_last_error());
}

/* One plugin folder being loaded: read (in order), started (in parallel),
 * then settled (in order). */
typedef struct load_job {
	const char *dir;
	plugin_manifest m;
	bool named;     /* m holds the parsed manifest */
	bool duplicate; /* id taken by a loaded plugin or an earlier folder */
	char idbuf[65];
	const char *id; /* m.id, else the folder's name if valid, else NULL */
	int rc;
	char *msg;      /* rc != 0: why */
	plugin *p;      /* rc == 0: started */
} load_job;

static void job_fail(load_job *j, int rc, const char *msg)
{
	j->rc = rc;
	free(j->msg);
	j->msg = strdup(msg ? msg : "unknown error");
}

/* The id's earlier holder: a loaded plugin's folder, or an earlier job's. */
static const char *holder_of(const txs_host *h, const load_job *jobs, size_t k, const char *id)
{
	const registry *r = atomic_load(&((txs_host *)h)->reg); /* syncmu held: stable */
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->p[i]->id, id))
			return r->p[i]->dir;
	for (size_t i = 0; i < k; i++)
		if (jobs[i].id && !jobs[i].duplicate && !strcmp(jobs[i].id, id))
			return jobs[i].dir;
	return NULL;
}

/* Reads jobs[k]'s manifest and code, and checks its id. */
static void read_job(const txs_host *h, load_job *jobs, size_t k)
{
	load_job *j = &jobs[k];
	char *err = NULL;
	int rc = plugin_manifest_read(j->dir, &j->m, &err);
	j->named = rc == 0;
	if (j->named)
		rc = plugin_manifest_read_code(&j->m, &err);
	if (!rc && j->named) /* txscan check --config */
		rc = plugin_manifest_set_config(&j->m, h->opt.config_json, &err);
	if (rc)
		job_fail(j, rc, err);
	free(err);
	j->id = j->named ? j->m.id : folders_id(j->dir, j->idbuf);
	const char *other = j->id ? holder_of(h, jobs, k, j->id) : NULL;
	if (other) {
		char msg[2048];
		snprintf(msg, sizeof msg, "%s/plugin.json: duplicate plugin id \"%s\" (also in %s)",
		         j->dir, j->id, other);
		job_fail(j, TXS_EINVAL, msg);
		j->duplicate = true;
	}
}

/* Start threads share the jobs: a hanging init costs its init timeout
 * once, not once per plugin in a row. */
#define START_THREADS 8

struct starter {
	txs_host *h;
	load_job *jobs;
	size_t n;
	_Atomic size_t next;
};

static void *starter_main(void *arg)
{
	struct starter *s = arg;
	for (size_t i; (i = atomic_fetch_add(&s->next, 1)) < s->n;) {
		load_job *j = &s->jobs[i];
		int rc = j->rc ? 0 : plugin_start(s->h, &j->m, &j->p);
		if (rc)
			job_fail(j, rc, txs_last_error());
	}
	return NULL;
}

static void start_all(txs_host *h, load_job *jobs, size_t n)
{
	struct starter s = {.h = h, .jobs = jobs, .n = n};
	pthread_t t[START_THREADS];
	size_t k = 0;
	for (; k + 1 < START_THREADS && k + 1 < n; k++)
		if (pthread_create(&t[k], NULL, starter_main, &s) != 0)
			break;
	starter_main(&s); /* this thread starts plugins too */
	for (size_t i = 0; i < k; i++)
		pthread_join(t[i], NULL);
}

/* jobs[k] into fresh[k], or its failure into fl; with allow_partial a
 * failed plugin stays, not started, unless its id is unknown or taken
 * (then the failure is fatal). */
static void settle_job(txs_host *h, load_job *j, plugin **out, failures *fl)
{
	if (!j->rc) {
		*out = j->p;
		return;
	}
	char msg[2048];
	bool keep = h->opt.allow_partial && j->id && !j->duplicate;
	snprintf(msg, sizeof msg, "%s%s", j->msg ? j->msg : "out of memory",
	         h->opt.allow_partial && !j->id ? " (and it cannot be kept as not started: the "
	         "manifest gives no id, and the folder's name is not a valid id)" : "");
	failures_add(fl, j->rc, msg);
	fl->fatal |= h->opt.allow_partial && !keep;
	if (keep) {
		txs_fail_msg(j->rc, msg);
		keep_unstarted(h, j->dir, j->id, j->named ? &j->m : NULL, out, fl);
	}
}

static void update_limits(txs_host *h)
{
	uint32_t max_timeout = 0;
	size_t max_input = 0;
	const registry *r = atomic_load(&h->reg); /* rmu held: stable */
	for (size_t i = 0; i < r->n; i++) {
		plugin *p = r->p[i];
		pthread_mutex_lock(&p->mu); /* a retry may publish limits meanwhile */
		txs_limits l = p->limits;
		pthread_mutex_unlock(&p->mu);
		max_timeout = l.timeout_ms > max_timeout ? l.timeout_ms : max_timeout;
		max_input = l.max_input_bytes > max_input ? l.max_input_bytes : max_input;
	}
	/* each stored once: scans read them meanwhile */
	h->max_input = max_input;
	h->scan_timeout_ms = h->opt.scan_timeout_ms ? h->opt.scan_timeout_ms : max_timeout * 4 + 100;
}

/* ---- not-started plugins: retries ---------------------------------------- */

/* rmu held: the next try in the back-off (100 ms doubling to 30 s). */
static void schedule_retry(plugin *p)
{
	p->backoff_ns = p->backoff_ns ? p->backoff_ns * 2 : RETRY_MIN_NS;
	if (p->backoff_ns > RETRY_MAX_NS)
		p->backoff_ns = RETRY_MAX_NS;
	p->retry_at_ns = now_ns() + p->backoff_ns;
}

/* One start of a not-started plugin, from disk (its files may have been
 * fixed), with no host lock held; the caller set p->attempting. */
static int attempt(txs_host *h, plugin *p)
{
	plugin_manifest m;
	instance *ex = NULL;
	char *err = NULL;
	int rc = plugin_manifest_load(p->dir, &m, &err);
	if (rc)
		txs_fail_msg(rc, err);
	else if (strcmp(m.id, p->id))
		rc = txs_fail(TXS_EINVAL, "%s/plugin.json: id \"%s\" is not \"%s\", the id this plugin is "
		              "listed under; restart the host to load it", p->dir, m.id, p->id);
	free(err);
	if (!rc)
		rc = start_executors(h, &m, &ex);
	if (!rc)
		publish(p, &m, ex);
	else
		set_error(p, txs_last_error());
	plugin_manifest_clear(&m);
	return rc;
}

/* rmu held: a not-started plugin due for a try, else NULL and *next the
 * earliest try (UINT64_MAX: none). */
static plugin *next_due(txs_host *h, uint64_t *next)
{
	uint64_t now = now_ns();
	*next = UINT64_MAX;
	const registry *r = atomic_load(&h->reg); /* rmu held: stable */
	for (size_t i = 0; i < r->n; i++) {
		plugin *p = r->p[i];
		if (p->attempting || atomic_load_explicit(&p->started, memory_order_acquire))
			continue;
		if (p->retry_at_ns <= now)
			return p;
		*next = p->retry_at_ns < *next ? p->retry_at_ns : *next;
	}
	return NULL;
}

/* Tries p now (rmu held on entry and on return; released meanwhile). */
static int attempt_locked(txs_host *h, plugin *p)
{
	p->attempting = true;
	uint32_t n = ++p->attempts;
	pthread_mutex_unlock(&h->rmu);
	int rc = attempt(h, p);
	if (rc)
		notify(h, "warn", "plugin %s: start attempt %u failed: %s", p->id, n, txs_last_error());
	else
		notify(h, "info", "plugin %s started (attempt %u)", p->id, n);
	pthread_mutex_lock(&h->rmu);
	p->attempting = false;
	if (rc)
		schedule_retry(p);
	else
		update_limits(h); /* its limits may differ from those it was listed with */
	return rc;
}

static void *retry_main(void *arg)
{
	txs_host *h = arg;
	pthread_mutex_lock(&h->rmu);
	while (!h->rstop) {
		uint64_t next;
		plugin *p = next_due(h, &next);
		if (p) {
			attempt_locked(h, p);
		} else if (next == UINT64_MAX) {
			pthread_cond_wait(&h->rcv, &h->rmu);
		} else {
			struct timespec ts = txs_timespec(next);
			pthread_cond_timedwait(&h->rcv, &h->rmu, &ts);
		}
	}
	pthread_mutex_unlock(&h->rmu);
	return NULL;
}

/* A reload of a not-started plugin: one try now, on the caller's thread. */
static int start_now(txs_host *h, plugin *p)
{
	pthread_mutex_lock(&h->rmu);
	bool busy = p->attempting;
	int rc = busy ? txs_fail(TXS_EUNAVAILABLE, "plugin %s is not started; a start attempt is "
	                         "under way", p->id)
	        : atomic_load(&p->started) ? 0 : attempt_locked(h, p);
	pthread_mutex_unlock(&h->rmu);
	return rc;
}

/* ---- loading ------------------------------------------------------------- */

/* ---- the plugin set ------------------------------------------------------- */

static registry *registry_new(size_t n)
{
	registry *r = calloc(1, sizeof *r + n * sizeof r->p[0]);
	if (r)
		r->n = n;
	return r;
}

/* Publishes r as the plugin set; the old one is retired. setlk (write)
 * and rmu held. */
static void swap_locked(txs_host *h, registry *r)
{
	registry *old = atomic_load(&h->reg);
	old->retired = h->retired;
	h->retired = old;
	atomic_store(&h->reg, r);
	update_limits(h);
}

/* Appends the fresh plugins to the registry and schedules the not-started
 * ones (starting the retry thread for the first). */
static int add_plugins(txs_host *h, plugin **fresh, size_t nd)
{
	int rc = 0;
	pthread_rwlock_wrlock(&h->setlk);
	pthread_mutex_lock(&h->rmu);
	bool unstarted = false;
	for (size_t i = 0; i < nd; i++)
		unstarted |= !atomic_load(&fresh[i]->started);
	if (unstarted && !h->retry_started)
		h->retry_started = pthread_create(&h->retry_thread, NULL, retry_main, h) == 0;
	const registry *old = atomic_load(&h->reg);
	registry *r = unstarted && !h->retry_started ? NULL : registry_new(old->n + nd);
	if (!r) {
		rc = txs_fail(TXS_ENOMEM, "out of memory, or no thread to retry plugins");
	} else {
		memcpy(r->p, old->p, old->n * sizeof r->p[0]);
		for (size_t i = 0; i < nd; i++) {
			if (!atomic_load(&fresh[i]->started))
				schedule_retry(fresh[i]);
			r->p[old->n + i] = fresh[i];
		}
		swap_locked(h, r);
	}
	pthread_mutex_unlock(&h->rmu);
	pthread_rwlock_unlock(&h->setlk);
	if (unstarted)
		pthread_cond_signal(&h->rcv);
	return rc;
}

/* Waits until no scan uses a retired registry: then no scan can reach a
 * plugin that is in none of the current one. Scans end by their deadline. */
static void drain_retired(txs_host *h)
{
	pthread_mutex_lock(&h->rmu);
	registry *list = h->retired; /* only ever prepended: this part stays */
	pthread_mutex_unlock(&h->rmu);
	for (registry *r = list; r; r = r->retired)
		while (atomic_load(&r->scans))
			usleep(1000);
}

/* Takes the plugins whose folder is gone (gone[i]) out of the set, lets
 * the scans that reached them finish, then frees them. */
static void remove_plugins(txs_host *h, const bool *gone, size_t ngone)
{
	pthread_rwlock_wrlock(&h->setlk); /* readers holding a plugin are done */
	pthread_mutex_lock(&h->rmu);
	const registry *old = atomic_load(&h->reg);
	registry *r = registry_new(old->n - ngone);
	plugin *out[ngone ? ngone : 1];
	size_t k = 0, o = 0;
	for (size_t i = 0; r && i < old->n; i++) {
		if (gone[i])
			out[o++] = old->p[i];
		else
			r->p[k++] = old->p[i];
	}
	if (r)
		swap_locked(h, r);
	pthread_mutex_unlock(&h->rmu);
	pthread_rwlock_unlock(&h->setlk);
	if (!r)
		return; /* out of memory: nothing removed, the next rescan tries again */
	drain_retired(h);
	for (size_t i = 0; i < o; i++) {
		for (bool busy = true; busy; usleep(busy ? 1000 : 0)) { /* a start attempt ends */
			pthread_mutex_lock(&h->rmu);
			busy = out[i]->attempting;
			pthread_mutex_unlock(&h->rmu);
		}
		notify(h, "info", "plugin %s removed (its folder %s has no plugin.json any more); its "
		       "scans in flight finished", out[i]->id, out[i]->dir);
		plugin_free(out[i]);
	}
}

/* Loads the plugin folders dirs (read in order, started in parallel). A
 * first load (rescan false) adds all or nothing, as txs_host_load says; a
 * rescan adds each plugin that started (each went through its init, as a
 * reload's canary does) and reports the others. syncmu held. */
static int load_dirs(txs_host *h, char **dirs, size_t nd, bool rescan)
{
	failures fl = {0};
	plugin **fresh = calloc(nd ? nd : 1, sizeof *fresh);
	load_job *jobs = calloc(nd ? nd : 1, sizeof *jobs);
	if (!fresh || !jobs) {
		free(fresh);
		free(jobs);
		return txs_fail(TXS_ENOMEM, "out of memory");
	}
	for (size_t k = 0; k < nd; k++) {
		jobs[k].dir = dirs[k];
		read_job(h, jobs, k);
	}
	start_all(h, jobs, nd);
	size_t nf = 0;
	for (size_t k = 0; k < nd; k++) {
		settle_job(h, &jobs[k], &fresh[nf], &fl);
		if (fresh[nf] && rescan)
			notify(h, "info", "plugin %s added (%s)", fresh[nf]->id, fresh[nf]->dir);
		nf += fresh[nf] != NULL;
		plugin_manifest_clear(&jobs[k].m);
		free(jobs[k].msg);
	}
	bool failed = fl.count && (!h->opt.allow_partial || fl.fatal);
	int rc = failed && !rescan ? fl.first_rc : add_plugins(h, fresh, nf);
	if (rc && !(failed && rescan))
		for (size_t i = 0; i < nf; i++)
			plugin_free(fresh[i]);
	if (failed)
		rc = failures_raise(&fl); /* last: freeing executors must not overwrite it */
	failures_clear(&fl);
	free(jobs);
	free(fresh);
	return rc;
}

/* path joins the roots a rescan lists again (once). */
static int remember_root(txs_host *h, const char *path)
{
	for (size_t i = 0; i < h->nroots; i++)
		if (!strcmp(h->roots[i], path))
			return 0;
	char **grown = realloc(h->roots, (h->nroots + 1) * sizeof *grown);
	if (!grown || !(grown[h->nroots] = strdup(path))) {
		h->roots = grown ? grown : h->roots;
		return txs_fail(TXS_ENOMEM, "out of memory");
	}
	h->roots = grown;
	h->nroots++;
	return 0;
}

int txs_host_load(txs_host *h, const char *path)
{
	char **dirs;
	size_t nd;
	pthread_mutex_lock(&h->syncmu);
	int rc = folders_list(path, &dirs, &nd, h->opt.notice, h->opt.notice_userdata);
	if (!rc) {
		rc = load_dirs(h, dirs, nd, false);
		folders_free(dirs, nd);
	}
	if (!rc)
		rc = remember_root(h, path);
	pthread_mutex_unlock(&h->syncmu);
	return rc;
}

/* Every plugin folder under the roots now, into *all (n of them). */
static int list_roots(txs_host *h, char ***all, size_t *n)
{
	*all = NULL;
	*n = 0;
	for (size_t i = 0; i < h->nroots; i++) {
		char **dirs;
		size_t nd;
		int rc = folders_list(h->roots[i], &dirs, &nd, h->opt.notice, h->opt.notice_userdata);
		char **grown = rc ? NULL : realloc(*all, (*n + nd + 1) * sizeof *grown);
		if (!rc && !grown)
			rc = txs_fail(TXS_ENOMEM, "out of memory");
		if (rc) {
			folders_free(dirs, rc ? 0 : nd);
			folders_free(*all, *n);
			*all = NULL;
			*n = 0;
			return rc;
		}
		*all = grown;
		memcpy(*all + *n, dirs, nd * sizeof *dirs);
		*n += nd;
		free(dirs); /* the strings now belong to *all */
	}
	return 0;
}

static bool listed(char *const *dirs, size_t n, const char *dir)
{
	for (size_t i = 0; i < n; i++)
		if (dirs[i] && !strcmp(dirs[i], dir))
			return true;
	return false;
}

/* Brings the plugin set in line with the folders under the roots: plugins
 * whose folder went (or lost its plugin.json) are removed first (their
 * scans in flight finish), then new folders are loaded. A root that cannot
 * be listed (or holds no plugin any more) changes nothing. syncmu held. */
static int rescan(txs_host *h)
{
	char **all;
	size_t n;
	int rc = list_roots(h, &all, &n);
	if (rc)
		return rc;
	const registry *r = atomic_load(&h->reg); /* syncmu: only we replace it */
	bool gone[r->n ? r->n : 1];
	size_t ngone = 0;
	for (size_t i = 0; i < r->n; i++)
		ngone += gone[i] = !listed(all, n, r->p[i]->dir);
	if (ngone)
		remove_plugins(h, gone, ngone);
	r = atomic_load(&h->reg);
	size_t nadd = 0;
	for (size_t i = 0; i < n; i++) {
		bool known = false;
		for (size_t k = 0; k < r->n && !known; k++)
			known = !strcmp(r->p[k]->dir, all[i]);
		if (!known)
			all[nadd++] = all[i];
		else
			free(all[i]);
	}
	rc = nadd ? load_dirs(h, all, nadd, true) : 0;
	folders_free(all, nadd);
	return rc;
}

int txs_host_new(txs_host **out, const txs_host_options *opts)
{
	*out = NULL;
	txs_host *h = calloc(1, sizeof *h);
	if (!h)
		return txs_fail(TXS_ENOMEM, "out of memory");
	if (opts)
		h->opt = *opts;
	h->isolation = instance_mode(h->opt.isolation);
	if (h->isolation == TXS_ISOLATION_PROCESS) /* linked while the plugins are read */
		txs_isolate_zygote_start(h->opt.engine_path);
	pthread_mutex_init(&h->dmu, NULL);
	txs_cond_init(&h->dcv);
	pthread_mutex_init(&h->rmu, NULL);
	txs_cond_init(&h->rcv);
	pthread_rwlock_init(&h->setlk, NULL);
	pthread_mutex_init(&h->syncmu, NULL);
	atomic_init(&h->reg, registry_new(0));
	txs_bell_init(&h->bell);
	h->sink = console_sink_new(CONSOLE_BUFFER); /* console lines and failure events */
	h->deadline_started = pthread_create(&h->deadline_thread, NULL, deadline_main, h) == 0;
	if (!h->deadline_started || !h->sink) {
		txs_host_free(h);
		return txs_fail(TXS_ENOMEM, "cannot start the host's threads");
	}
	*out = h;
	return 0;
}

void txs_host_free(txs_host *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->rmu);
	h->rstop = true; /* a start attempt under way ends first (its init is bounded) */
	pthread_mutex_unlock(&h->rmu);
	pthread_cond_broadcast(&h->rcv);
	if (h->retry_started)
		pthread_join(h->retry_thread, NULL);
	/* Every thread that can deliver a report stops before any plugin goes:
	 * the last answer of a fan-out, on any plugin's thread, logs the
	 * failures of all its plugins (log_failures). */
	registry *cur = atomic_load(&h->reg);
	for (size_t i = 0; cur && i < cur->n; i++)
		plugin_stop(cur->p[i]); /* answers queued scans: every report is delivered */
	pthread_mutex_lock(&h->dmu);
	h->stopping = true;
	pthread_mutex_unlock(&h->dmu);
	pthread_cond_signal(&h->dcv);
	if (h->deadline_started)
		pthread_join(h->deadline_thread, NULL);
	for (size_t i = 0; cur && i < cur->n; i++)
		plugin_free(cur->p[i]);
	console_sink_free(h->sink);
	pthread_mutex_destroy(&h->dmu);
	pthread_cond_destroy(&h->dcv);
	pthread_mutex_destroy(&h->rmu);
	pthread_cond_destroy(&h->rcv);
	for (registry *r = h->retired, *next; r; r = next) {
		next = r->retired;
		free(r);
	}
	free(cur);
	for (size_t i = 0; i < h->nroots; i++)
		free(h->roots[i]);
	free(h->roots);
	pthread_rwlock_destroy(&h->setlk);
	pthread_mutex_destroy(&h->syncmu);
	free(h);
}

/* ---- control and introspection ------------------------------------------ */

size_t txs_host_plugin_count(const txs_host *h)
{
	return atomic_load(&((txs_host *)h)->reg)->n;
}

long txs_host_plugin_find(const txs_host *h, const char *id)
{
	const registry *r = atomic_load(&((txs_host *)h)->reg);
	for (size_t i = 0; id && i < r->n; i++)
		if (!strcmp(r->p[i]->id, id))
			return (long)i;
	return -1;
}

/* setlk held (read) while the caller uses the plugin. */
static plugin *find(txs_host *h, const char *id)
{
	const registry *r = atomic_load(&h->reg);
	long i = txs_host_plugin_find(h, id);
	if (i < 0)
		txs_fail(TXS_ENOTFOUND, "no plugin \"%s\"", id ? id : "(null)");
	return i < 0 ? NULL : r->p[i];
}

/* Restarts and reloads of one plugin take turns; none waits under a lock,
 * so info, stats and scans go on while executors rebuild. */
static int ctl_begin(plugin *p)
{
	bool idle = false;
	if (!atomic_compare_exchange_strong(&p->ctl_busy, &idle, true))
		return txs_fail(TXS_EBUSY, "plugin %s: a restart or reload is already running", p->id);
	return 0;
}

static void ctl_end(plugin *p)
{
	atomic_store(&p->ctl_busy, false);
}

static int restart_locked(txs_host *h, const char *id)
{
	plugin *p = find(h, id);
	if (!p)
		return TXS_ENOTFOUND;
	if (!atomic_load_explicit(&p->started, memory_order_acquire))
		return not_started(p);
	int rc = ctl_begin(p);
	if (rc)
		return rc;
	for (uint32_t i = 0; !rc && i < p->instances; i++)
		rc = instance_restart(&p->ex[i]);
	ctl_end(p);
	return rc;
}

static int reload_instances(plugin *p, const plugin_manifest *m)
{
	if (strcmp(m->id, p->id))
		return txs_fail(TXS_EINVAL, "%s/plugin.json: id changed from \"%s\" to \"%s\"; restart "
		                "the host to rename a plugin", p->dir, p->id, m->id);
	if (m->instances != p->instances)
		return txs_fail(TXS_EINVAL, "%s/plugin.json: instances changed from %u to %u; restart "
		                "the host to change it", p->dir, p->instances, m->instances);
	txs_plugin_code code = code_of(m);
	int rc = 0;
	for (uint32_t i = 0; !rc && i < p->instances; i++)
		rc = instance_reload(&p->ex[i], &code, &m->limits);
	if (!rc) {
		pthread_mutex_lock(&p->mu);
		snprintf(p->version, sizeof p->version, "%s", m->version);
		p->limits = m->limits;
		pthread_mutex_unlock(&p->mu);
	}
	return rc;
}

int txs_host_restart(txs_host *h, const char *id)
{
	pthread_rwlock_rdlock(&h->setlk);
	int rc = restart_locked(h, id);
	pthread_rwlock_unlock(&h->setlk);
	return rc;
}

static int reload_locked(txs_host *h, const char *id)
{
	plugin *p = find(h, id);
	if (!p)
		return TXS_ENOTFOUND;
	if (!atomic_load_explicit(&p->started, memory_order_acquire))
		return start_now(h, p);
	int rc = ctl_begin(p);
	if (rc)
		return rc;
	plugin_manifest m;
	char *err = NULL;
	rc = plugin_manifest_load(p->dir, &m, &err);
	if (rc) {
		txs_fail_msg(rc, err);
		free(err);
	} else {
		rc = reload_instances(p, &m);
		plugin_manifest_clear(&m);
	}
	ctl_end(p);
	return rc;
}

int txs_host_reload(txs_host *h, const char *id)
{
	pthread_rwlock_rdlock(&h->setlk);
	int rc = reload_locked(h, id);
	pthread_rwlock_unlock(&h->setlk);
	return rc;
}

int txs_host_reload_all(txs_host *h)
{
	int first = 0;
	char msg[2048] = "";
	pthread_mutex_lock(&h->syncmu);
	int rc = rescan(h);
	if (rc) {
		first = rc;
		snprintf(msg, sizeof msg, "%s", txs_last_error());
	}
	pthread_rwlock_rdlock(&h->setlk);
	registry *r = atomic_load(&h->reg);
	for (size_t i = 0; i < r->n; i++) {
		rc = reload_locked(h, r->p[i]->id);
		if (rc && !first) {
			first = rc;
			snprintf(msg, sizeof msg, "%s", txs_last_error());
		}
	}
	pthread_rwlock_unlock(&h->setlk);
	pthread_mutex_unlock(&h->syncmu);
	return first ? txs_fail_msg(first, msg) : 0;
}

static void add_stats(txs_executor_stats *sum, const txs_executor_stats *s)
{
	uint64_t gen = sum->generation > s->generation ? sum->generation : s->generation;
	sum->scans += s->scans;
	sum->ok += s->ok;
	sum->errors += s->errors;
	sum->timeouts += s->timeouts;
	sum->memory_stops += s->memory_stops;
	sum->overloaded += s->overloaded;
	sum->unavailable += s->unavailable;
	sum->restarts_scheduled += s->restarts_scheduled;
	sum->restarts_heap += s->restarts_heap;
	sum->restarts_killed += s->restarts_killed;
	sum->restarts_manual += s->restarts_manual;
	sum->reloads += s->reloads;
	sum->standby_swaps += s->standby_swaps;
	sum->heap_readings += s->heap_readings;
	sum->failed_starts += s->failed_starts;
	sum->heap_bytes += s->heap_bytes;
	sum->console_dropped += s->console_dropped;
	sum->queue_depth += s->queue_depth;
	sum->consecutive_failures += s->consecutive_failures;
	sum->quarantined = sum->quarantined || s->quarantined;
	sum->running = sum->running && s->running;
	sum->busy = sum->busy || s->busy;
	sum->latency_sum_ms += s->latency_sum_ms;
	sum->lanes_abandoned += s->lanes_abandoned;
	sum->lanes_stuck += s->lanes_stuck;
	sum->breaker_opens += s->breaker_opens;
	sum->realm_restarts += s->realm_restarts;
	sum->realm_prepared += s->realm_prepared;
	sum->skipped += s->skipped;
	sum->process_starts += s->process_starts;
	sum->process_crashes += s->process_crashes;
	sum->process_kills += s->process_kills;
	sum->process_rss_bytes += s->process_rss_bytes;
	if (s->breaker_state == TXS_BREAKER_OPEN || sum->breaker_state == TXS_BREAKER_CLOSED)
		sum->breaker_state = s->breaker_state;
	sum->recycle_sum_ms += s->recycle_sum_ms;
	for (int i = 0; i < TXS_LATENCY_BUCKETS; i++) {
		sum->latency_buckets[i] += s->latency_buckets[i];
		sum->recycle_buckets[i] += s->recycle_buckets[i];
	}
	sum->generation = gen;
}

/* Version, limits and why it is not started; no engine, nothing running. */
static int unstarted_info(plugin *p, txs_plugin_info *info)
{
	pthread_mutex_lock(&p->mu);
	snprintf(info->version, sizeof info->version, "%s", p->version);
	info->limits = p->limits;
	pthread_mutex_unlock(&p->mu);
	pthread_mutex_lock(&p->emu);
	snprintf(info->error, sizeof info->error, "%s", p->error ? p->error : "no attempt yet");
	pthread_mutex_unlock(&p->emu);
	return 0;
}

static int info_locked(txs_host *h, size_t index, txs_plugin_info *info);

int txs_host_plugin_info(txs_host *h, size_t index, txs_plugin_info *info)
{
	pthread_rwlock_rdlock(&h->setlk);
	int rc = info_locked(h, index, info);
	pthread_rwlock_unlock(&h->setlk);
	return rc;
}

static int info_locked(txs_host *h, size_t index, txs_plugin_info *info)
{
	const registry *r = atomic_load(&h->reg);
	if (index >= r->n)
		return txs_fail(TXS_ENOTFOUND, "no plugin at index %zu", index);
	plugin *p = r->p[index];
	memset(info, 0, sizeof *info);
	snprintf(info->id, sizeof info->id, "%s", p->id);
	snprintf(info->dir, sizeof info->dir, "%s", p->dir);
	plog_read(&p->log, info);
	if (!atomic_load_explicit(&p->started, memory_order_acquire))
		return unstarted_info(p, info);
	info->started = true;
	info->instances = p->instances;
	pthread_mutex_lock(&p->mu);
	snprintf(info->version, sizeof info->version, "%s", p->version);
	info->limits = p->limits;
	pthread_mutex_unlock(&p->mu);
	info->stats.running = true;
	for (uint32_t i = 0; i < p->instances; i++) {
		txs_executor_stats s;
		instance_stats(&p->ex[i], &s);
		add_stats(&info->stats, &s);
	}
	return 0;
}

/* {"time": RFC 3339, "status", "tx", "message"}, or null before the first. */
static json_t *last_error_json(const txs_plugin_failure *e)
{
	if (!e->time_ms)
		return json_null();
	char ts[40];
	struct tm tm;
	time_t sec = (time_t)(e->time_ms / 1000);
	gmtime_r(&sec, &tm);
	size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof ts - n, ".%03dZ", (int)(e->time_ms % 1000));
	json_t *o = json_pack("{s:s, s:s}", "time", ts, "status", txs_status_name(e->status));
	json_object_set_new(o, "tx", *e->tx ? json_string(e->tx) : json_null());
	json_object_set_new(o, "message", json_string(e->message));
	return o;
}

static json_t *info_json(const txs_plugin_info *in)
{
	const txs_executor_stats *s = &in->stats;
	json_t *limits = json_pack("{s:I,s:I,s:I,s:I}", "timeout_ms", (json_int_t)in->limits.timeout_ms,
	                           "heap_limit_mb", (json_int_t)in->limits.heap_limit_mb,
	                           "heap_restart_mb", (json_int_t)in->limits.heap_restart_mb,
	                           "restart_every", (json_int_t)in->limits.restart_every);
	json_t *restarts = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "scheduled", (json_int_t)s->restarts_scheduled,
	                             "heap", (json_int_t)s->restarts_heap, "killed",
	                             (json_int_t)s->restarts_killed, "manual",
	                             (json_int_t)s->restarts_manual, "reload", (json_int_t)s->reloads,
	                             "from_standby", (json_int_t)s->standby_swaps);
	json_t *stats = json_pack(
	    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:b,s:b,s:f}", "scans", (json_int_t)s->scans,
	    "ok", (json_int_t)s->ok, "errors", (json_int_t)s->errors, "timeouts",
	    (json_int_t)s->timeouts, "memory_stops", (json_int_t)s->memory_stops, "overloaded",
	    (json_int_t)s->overloaded, "unavailable", (json_int_t)s->unavailable, "restarts", restarts,
	    "failed_starts", (json_int_t)s->failed_starts, "generation", (json_int_t)s->generation,
	    "heap_bytes", (json_int_t)s->heap_bytes, "queue_depth", (json_int_t)s->queue_depth,
	    "quarantined", s->quarantined, "running", s->running, "latency_avg_ms",
	    s->scans ? s->latency_sum_ms / (double)s->scans : 0.0);
	json_object_set_new(stats, "breaker", json_string(txs_breaker_state_name(s->breaker_state)));
	json_object_set_new(stats, "breaker_opens", json_integer((json_int_t)s->breaker_opens));
	json_object_set_new(stats, "lanes_abandoned", json_integer((json_int_t)s->lanes_abandoned));
	json_object_set_new(stats, "lanes_stuck", json_integer((json_int_t)s->lanes_stuck));
	json_object_set_new(stats, "skipped", json_integer((json_int_t)s->skipped));
	json_object_set_new(stats, "process", json_pack("{s:I,s:I,s:I,s:I}", "starts",
	                    (json_int_t)s->process_starts, "crashes", (json_int_t)s->process_crashes,
	                    "kills", (json_int_t)s->process_kills, "rss_bytes",
	                    (json_int_t)s->process_rss_bytes));
	json_object_set_new(restarts, "realm", json_integer((json_int_t)s->realm_restarts));
	json_object_set_new(restarts, "realm_prepared", json_integer((json_int_t)s->realm_prepared));
	json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:o,s:o}", "id", in->id, "version", in->version, "dir",
	                      in->dir, "instances", (json_int_t)in->instances, "limits", limits, "stats",
	                      stats);
	json_object_set_new(o, "started", json_boolean(in->started));
	json_object_set_new(o, "last_error", last_error_json(&in->last_error));
	json_t *minute = json_object();
	for (int i = 0; i < TXS_FAILURE_STATUSES; i++)
		json_object_set_new(minute, plog_status_name(i),
		                    json_integer((json_int_t)in->failures_minute[i]));
	json_object_set_new(o, "failures_last_minute", minute);
	if (!in->started) {
		json_t *e = json_string(in->error);
		json_object_set_new(o, "error", e ? e : json_string("(not valid UTF-8)"));
	}
	return o;
}

int txs_host_plugins_json(txs_host *h, char **out)
{
	json_t *arr = json_array();
	txs_plugin_info info;
	for (size_t i = 0; i < txs_host_plugin_count(h); i++)
		if (txs_host_plugin_info(h, i, &info) == 0)
			json_array_append_new(arr, info_json(&info));
	*out = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	json_decref(arr);
	return *out ? 0 : txs_fail(TXS_ENOMEM, "out of memory");
}

static bool ready_locked(txs_host *h)
{
	const registry *r = atomic_load(&h->reg);
	for (size_t i = 0; i < r->n; i++) {
		plugin *p = r->p[i];
		if (!atomic_load_explicit(&p->started, memory_order_acquire))
			return false;
		for (uint32_t k = 0; k < p->instances; k++) {
			txs_executor_stats s;
			instance_stats(&p->ex[k], &s);
			if (s.quarantined || !s.running)
				return false;
		}
	}
	return r->n > 0;
}

bool txs_host_ready(txs_host *h)
{
	pthread_rwlock_rdlock(&h->setlk);
	bool ok = ready_locked(h);
	pthread_rwlock_unlock(&h->setlk);
	return ok;
}

uint32_t txs_host_in_flight(const txs_host *h)
{
	return atomic_load(&((txs_host *)h)->in_flight);
}

uint32_t txs_host_scan_deadline_ms(const txs_host *h)
{
	return atomic_load(&((txs_host *)h)->scan_timeout_ms);
}

uint64_t txs_host_console_dropped(const txs_host *h)
{
	return h->sink ? console_sink_dropped(h->sink) : 0;
}

size_t txs_host_finding_counts(txs_host *h, txs_finding_count *out, size_t cap)
{
	size_t at = 0;
	pthread_rwlock_rdlock(&h->setlk);
	const registry *r = atomic_load(&h->reg);
	for (size_t i = 0; i < r->n; i++)
		at = tally_rows(&r->p[i]->findings, r->p[i]->id, out, cap, at);
	pthread_rwlock_unlock(&h->setlk);
	return at;
}

void txs_host_report_counts(const txs_host *ch, txs_report_counts *out)
{
	txs_host *h = (txs_host *)ch;
	memset(out, 0, sizeof *out);
	for (int i = 0; i < TALLY_SEVERITIES; i++)
		out->verdict[i] = atomic_load_explicit(&h->verdicts[i], memory_order_relaxed);
	out->incomplete = atomic_load_explicit(&h->incomplete, memory_order_relaxed);
	out->input_errors = atomic_load_explicit(&h->input_errors, memory_order_relaxed);
}
