/*
 * snapshot.c - plugin state for the HTTP handlers, read off their threads
 * (see snapshot.h for why).
 *
 * Two threads:
 *  - the refresher waits for a request (or the period), borrows the host,
 *    reads every plugin's info (the calls that may wait on a plugin),
 *    publishes the result, then calls back every request that asked before
 *    that refresh began;
 *  - the timer calls back the requests whose wait has passed. It never
 *    touches the host, so a request gets its callback in time even while
 *    the refresher is stuck inside it.
 * A request is a ticket: refresh k serves every ticket <= k. `mu` guards
 * every field below it; callbacks run with it released. Views are reference
 * counted: a handler may hold one while the next is published.
 *
 * Out of memory aborts (daemon code, STYLE.md).
 */
#define _GNU_SOURCE
#include "snapshot.h"
#include "util/clock.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct holder {
	snap_view v;      /* first: a view's address is its holder's */
	unsigned refs;    /* guarded by snapshots.mu */
};

struct waiter {
	struct waiter *next;
	uint64_t ticket;
	uint64_t deadline_ns;
	void (*done)(void *);
	void *userdata;
};

struct snapshots {
	snap_host_get_fn get;
	snap_host_put_fn put;
	void *userdata;
	unsigned period_ms;
	pthread_t refresher, timer;
	bool refresher_started, timer_started;

	pthread_mutex_t mu;
	pthread_cond_t ask_cv;   /* refresher: a new ticket, or stop */
	pthread_cond_t timer_cv; /* timer: a new waiter, or stop */
	struct holder *cur;
	uint64_t asked;          /* last ticket handed out */
	uint64_t started;        /* ticket the running (or last) refresh serves */
	uint64_t running_since;  /* when the running refresh began; 0 = none runs */
	struct waiter *waiters;
	bool stop;

	/* refresher thread only: when each plugin last answered `overloaded` */
	size_t hist_n;
	uint64_t *last_overloaded;
	double *last_overload_ms;
	char (*hist_id)[65];  /* whose history slot i is: a reload may change the set */
};

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		abort();
	return p;
}

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size ? size : 1);
	if (!p)
		abort();
	return p;
}

json_t *snap_reasons_json(unsigned mask)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {{DEG_NOT_STARTED, "not started"},   {DEG_QUARANTINED, "quarantined"},
	             {DEG_NOT_RUNNING, "not running"},   {DEG_BREAKER, "breaker open"},
	             {DEG_STUCK, "lane stuck"},          {DEG_OVERLOADED, "overloaded recently"},
	             {DEG_QUEUE, "queue over half full"}};
	json_t *a = json_array();
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (mask & names[i].bit)
			json_array_append_new(a, json_string(names[i].name));
	return a;
}

bool snap_any_can_answer(const snap_view *v)
{
	for (size_t i = 0; i < v->n; i++)
		if (!(v->degraded[i] & DEG_CANNOT_ANSWER))
			return true;
	return false;
}

static void holder_free(struct holder *h)
{
	free(h->v.plugins);
	free(h->v.degraded);
	free(h->v.plugins_json);
	free(h->v.findings);
	free(h);
}

/* Degraded bits of each plugin; keeps the overload history. */
static void degrade(snapshots *s, snap_view *v)
{
	if (s->hist_n < v->n) { /* grows with the set; a slot is re-keyed below */
		s->last_overloaded = xrealloc(s->last_overloaded, v->n * sizeof *s->last_overloaded);
		s->last_overload_ms = xrealloc(s->last_overload_ms, v->n * sizeof *s->last_overload_ms);
		s->hist_id = xrealloc(s->hist_id, v->n * sizeof *s->hist_id);
		for (size_t i = s->hist_n; i < v->n; i++) {
			s->last_overloaded[i] = 0;
			s->last_overload_ms[i] = 0;
			s->hist_id[i][0] = '\0';
		}
		s->hist_n = v->n;
	}
	for (size_t i = 0; i < v->n; i++) {
		const txs_plugin_info *p = &v->plugins[i];
		uint64_t cap = (uint64_t)p->limits.queue_capacity * p->instances;
		unsigned m = 0;
		if (!p->started)
			m |= DEG_NOT_STARTED;
		else if (!p->stats.running)
			m |= DEG_NOT_RUNNING;
		if (p->stats.quarantined)
			m |= DEG_QUARANTINED;
		if (p->stats.breaker_state != TXS_BREAKER_CLOSED)
			m |= DEG_BREAKER;
		if (p->stats.lanes_stuck)
			m |= DEG_STUCK;
		if (cap && (uint64_t)p->stats.queue_depth * 2 >= cap)
			m |= DEG_QUEUE;
		if (strcmp(s->hist_id[i], p->id)) { /* another plugin at this index now */
			snprintf(s->hist_id[i], sizeof s->hist_id[i], "%s", p->id);
			s->last_overloaded[i] = p->stats.overloaded;
			s->last_overload_ms[i] = 0;
		}
		if (i < s->hist_n) {
			if (p->stats.overloaded > s->last_overloaded[i])
				s->last_overload_ms[i] = v->taken_ms;
			s->last_overloaded[i] = p->stats.overloaded;
			if (s->last_overload_ms[i] > 0 &&
			    v->taken_ms - s->last_overload_ms[i] < SNAP_OVERLOAD_WINDOW_S * 1000.0)
				m |= DEG_OVERLOADED;
		}
		v->degraded[i] = m;
	}
}

/* Findings and verdicts: lock free, so never a wait. The rows can grow
 * between two calls (a plugin's new code): ask again, with room to spare. */
static void take_counts(txs_host *host, snap_view *v)
{
	txs_host_report_counts(host, &v->reports);
	size_t cap = 0, n;
	while ((n = txs_host_finding_counts(host, v->findings, cap)) > cap) {
		free(v->findings);
		cap = n + 16;
		v->findings = xcalloc(cap, sizeof *v->findings);
	}
	v->nfindings = n;
}

/* One snapshot of the host (NULL when detached). May wait on a plugin. */
static struct holder *take(snapshots *s)
{
	struct holder *h = xcalloc(1, sizeof *h);
	h->refs = 1;
	txs_host *host = s->get(s->userdata);
	if (host) {
		h->v.attached = true;
		h->v.n = txs_host_plugin_count(host);
		h->v.plugins = xcalloc(h->v.n, sizeof *h->v.plugins);
		h->v.degraded = xcalloc(h->v.n, sizeof *h->v.degraded);
		size_t k = 0; /* a reload may shrink the set meanwhile: keep what answered */
		for (size_t i = 0; i < h->v.n; i++)
			k += txs_host_plugin_info(host, i, &h->v.plugins[k]) == 0;
		h->v.n = k;
		if (txs_host_plugins_json(host, &h->v.plugins_json) != 0)
			h->v.plugins_json = NULL;
		h->v.host_in_flight = txs_host_in_flight(host);
		h->v.console_dropped = txs_host_console_dropped(host);
		take_counts(host, &h->v);
		s->put(s->userdata);
	}
	h->v.taken_ms = txs_now_ms();
	degrade(s, &h->v);
	return h;
}

static void release_locked(struct holder *h)
{
	if (h && --h->refs == 0)
		holder_free(h);
}

/* Unlinks the waiters that pred selects; returns them as a list. */
static struct waiter *unlink_locked(snapshots *s, bool (*pred)(const struct waiter *, uint64_t),
                                    uint64_t arg)
{
	struct waiter *out = NULL, **pp = &s->waiters;
	while (*pp) {
		struct waiter *w = *pp;
		if (pred(w, arg)) {
			*pp = w->next;
			w->next = out;
			out = w;
		} else {
			pp = &w->next;
		}
	}
	return out;
}

static void call_all(struct waiter *w)
{
	while (w) {
		struct waiter *next = w->next;
		w->done(w->userdata);
		free(w);
		w = next;
	}
}

static bool served(const struct waiter *w, uint64_t ticket)
{
	return w->ticket <= ticket;
}

static bool expired(const struct waiter *w, uint64_t now)
{
	return w->deadline_ns <= now;
}

static void *refresher_main(void *arg)
{
	snapshots *s = arg;
	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		uint64_t until = txs_now_ns() + (uint64_t)s->period_ms * 1000000u;
		struct timespec ts = txs_timespec(until);
		while (!s->stop && s->asked == s->started && txs_now_ns() < until)
			pthread_cond_timedwait(&s->ask_cv, &s->mu, &ts);
		if (s->stop)
			break;
		uint64_t ticket = s->started = s->asked;
		s->running_since = txs_now_ns();
		pthread_mutex_unlock(&s->mu);
		struct holder *h = take(s);
		pthread_mutex_lock(&s->mu);
		s->running_since = 0;
		release_locked(s->cur);
		s->cur = h;
		struct waiter *done = unlink_locked(s, served, ticket);
		pthread_mutex_unlock(&s->mu);
		call_all(done);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void *timer_main(void *arg)
{
	snapshots *s = arg;
	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		uint64_t next = UINT64_MAX;
		for (const struct waiter *w = s->waiters; w; w = w->next)
			if (w->deadline_ns < next)
				next = w->deadline_ns;
		if (next == UINT64_MAX) {
			pthread_cond_wait(&s->timer_cv, &s->mu);
		} else if (next > txs_now_ns()) {
			struct timespec ts = txs_timespec(next);
			pthread_cond_timedwait(&s->timer_cv, &s->mu, &ts);
		}
		struct waiter *done = unlink_locked(s, expired, txs_now_ns());
		pthread_mutex_unlock(&s->mu);
		call_all(done);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int snapshots_new(snapshots **out, unsigned period_ms, snap_host_get_fn get, snap_host_put_fn put,
                  void *userdata)
{
	snapshots *s = xcalloc(1, sizeof *s);
	*out = NULL;
	s->get = get;
	s->put = put;
	s->userdata = userdata;
	s->period_ms = period_ms ? period_ms : 1000;
	pthread_mutex_init(&s->mu, NULL);
	txs_cond_init(&s->ask_cv);
	txs_cond_init(&s->timer_cv);
	s->cur = take(s); /* on the caller's thread: the host is idle at start */
	if (pthread_create(&s->refresher, NULL, refresher_main, s) == 0)
		s->refresher_started = true;
	if (s->refresher_started && pthread_create(&s->timer, NULL, timer_main, s) == 0)
		s->timer_started = true;
	if (!s->timer_started) {
		snapshots_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

void snapshots_free(snapshots *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_broadcast(&s->ask_cv);
	pthread_cond_broadcast(&s->timer_cv);
	pthread_mutex_unlock(&s->mu);
	if (s->refresher_started)
		pthread_join(s->refresher, NULL);
	if (s->timer_started)
		pthread_join(s->timer, NULL);
	call_all(s->waiters); /* no thread is left to: answer from what is there */
	s->waiters = NULL;
	release_locked(s->cur);
	free(s->last_overloaded);
	free(s->last_overload_ms);
	free(s->hist_id);
	pthread_cond_destroy(&s->ask_cv);
	pthread_cond_destroy(&s->timer_cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

const snap_view *snapshots_hold(snapshots *s)
{
	pthread_mutex_lock(&s->mu);
	struct holder *h = s->cur;
	h->refs++;
	pthread_mutex_unlock(&s->mu);
	return &h->v;
}

void snapshots_release(snapshots *s, const snap_view *v)
{
	if (!v)
		return;
	pthread_mutex_lock(&s->mu);
	release_locked((struct holder *)(void *)v);
	pthread_mutex_unlock(&s->mu);
}

void snapshots_request(snapshots *s, unsigned wait_ms, void (*done)(void *), void *userdata)
{
	struct waiter *w = xcalloc(1, sizeof *w);
	w->done = done;
	w->userdata = userdata;
	pthread_mutex_lock(&s->mu);
	/* A refresh running longer than this wait is stuck in the host: the
	 * refresh that would serve this ticket cannot even start in time. */
	uint64_t now = txs_now_ns(), wait_ns = (uint64_t)wait_ms * 1000000u;
	bool hopeless = s->running_since && now - s->running_since >= wait_ns;
	w->deadline_ns = now + wait_ns;
	if (s->stop || hopeless) {
		pthread_mutex_unlock(&s->mu);
		free(w);
		done(userdata);
		return;
	}
	w->ticket = ++s->asked;
	w->next = s->waiters;
	s->waiters = w;
	pthread_cond_signal(&s->ask_cv);
	pthread_cond_signal(&s->timer_cv);
	pthread_mutex_unlock(&s->mu);
}
