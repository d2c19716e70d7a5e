/*
 * guard.c - phase deadlines of HTTP connections (see guard.h).
 *
 * `mu` guards the list and every guard_conn field: MHD threads move
 * connections between phases (a few lock/unlock pairs per request), the
 * sweep thread reads them every SWEEP_MS. A connection is shut down at
 * most once, under `mu`, and only while it is listed: guard_close unlists
 * it (under `mu`) before MHD closes its socket, so the descriptor the
 * sweep shuts down is never one the process has reused. guard_shutdown_all
 * (stopping) follows the same rules.
 */
#define _GNU_SOURCE
#include "guard.h"
#include "util/clock.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define SWEEP_MS 250

struct guard_conn {
	struct guard_conn *prev, *next;
	int fd;
	enum guard_phase phase;
	uint64_t since_ns;
	bool bad_path;
	bool shut;
};

struct guard {
	guard_limits lim;
	guard_log_fn log;
	void *userdata;
	pthread_t sweeper;
	bool started;

	pthread_mutex_t mu;
	pthread_cond_t cv; /* stop */
	bool stop;
	struct guard_conn *head;
	guard_stats stats;
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* The path of a raw request target (up to '?' or '#'), decoded on the fly. */
static bool path_has_control(const char *uri)
{
	for (const char *p = uri; *p && *p != '?' && *p != '#'; p++) {
		if (is_control((unsigned char)*p))
			return true;
		if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
			if (is_control((unsigned char)(hexval(p[1]) * 16 + hexval(p[2]))))
				return true;
			p += 2;
		}
	}
	return false;
}

static unsigned limit_s(const guard *g, enum guard_phase ph)
{
	switch (ph) {
	case GUARD_HEADERS: return g->lim.header_s;
	case GUARD_BODY: return g->lim.body_s;
	case GUARD_IDLE: return g->lim.idle_s;
	default: return 0;
	}
}

/* Shuts the connections past their phase's limit; counts them by phase. */
static void sweep_locked(guard *g, unsigned closed[3])
{
	uint64_t now = txs_now_ns();
	for (struct guard_conn *c = g->head; c; c = c->next) {
		unsigned lim = limit_s(g, c->phase);
		if (c->shut || !lim || now - c->since_ns < (uint64_t)lim * 1000000000u)
			continue;
		shutdown(c->fd, SHUT_RDWR);
		c->shut = true;
		unsigned k = c->phase == GUARD_HEADERS ? 0 : c->phase == GUARD_BODY ? 1 : 2;
		closed[k]++;
	}
	g->stats.closed_header += closed[0];
	g->stats.closed_body += closed[1];
	g->stats.closed_idle += closed[2];
}

static void *sweep_main(void *arg)
{
	guard *g = arg;
	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		struct timespec ts = txs_timespec(txs_now_ns() + SWEEP_MS * 1000000ull);
		pthread_cond_timedwait(&g->cv, &g->mu, &ts);
		unsigned closed[3] = {0, 0, 0};
		sweep_locked(g, closed);
		if (g->log && closed[0] + closed[1] + closed[2]) {
			pthread_mutex_unlock(&g->mu);
			g->log(closed[0], closed[1], closed[2], g->userdata);
			pthread_mutex_lock(&g->mu);
		}
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

int guard_new(guard **out, const guard_limits *limits, guard_log_fn log, void *userdata)
{
	guard *g = calloc(1, sizeof *g);
	*out = NULL;
	if (!g)
		return -1;
	g->lim = *limits;
	g->log = log;
	g->userdata = userdata;
	pthread_mutex_init(&g->mu, NULL);
	txs_cond_init(&g->cv);
	if (pthread_create(&g->sweeper, NULL, sweep_main, g)) {
		guard_free(g);
		return -1;
	}
	g->started = true;
	*out = g;
	return 0;
}

void guard_free(guard *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->mu);
	g->stop = true;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
	if (g->started)
		pthread_join(g->sweeper, NULL);
	while (g->head) { /* MHD stopped: these were closed without a notice */
		struct guard_conn *c = g->head;
		g->head = c->next;
		free(c);
	}
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

guard_conn *guard_open(guard *g, int fd)
{
	struct guard_conn *c = calloc(1, sizeof *c);
	if (!c)
		abort();
	c->fd = fd;
	c->phase = GUARD_HEADERS;
	c->since_ns = txs_now_ns();
	pthread_mutex_lock(&g->mu);
	c->next = g->head;
	if (g->head)
		g->head->prev = c;
	g->head = c;
	g->stats.open++;
	pthread_mutex_unlock(&g->mu);
	return c;
}

void guard_close(guard *g, guard_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&g->mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		g->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	g->stats.open--;
	pthread_mutex_unlock(&g->mu);
	free(c);
}

void guard_request_line(guard *g, guard_conn *c, const char *raw_uri)
{
	bool bad = path_has_control(raw_uri);
	pthread_mutex_lock(&g->mu);
	c->bad_path = bad;
	/* The first request's headers are timed from accept; a keep-alive
	 * request's from its request line (its idle time was limited apart). */
	if (c->phase == GUARD_IDLE) {
		c->phase = GUARD_HEADERS;
		c->since_ns = txs_now_ns();
	}
	pthread_mutex_unlock(&g->mu);
}

bool guard_bad_path(const guard_conn *c)
{
	return c && c->bad_path; /* written and read on the connection's own thread */
}

void guard_phase(guard *g, guard_conn *c, enum guard_phase phase)
{
	if (!c)
		return;
	pthread_mutex_lock(&g->mu);
	c->phase = phase;
	c->since_ns = txs_now_ns();
	pthread_mutex_unlock(&g->mu);
}

unsigned guard_shutdown_all(guard *g)
{
	unsigned listed = 0;
	pthread_mutex_lock(&g->mu);
	for (struct guard_conn *c = g->head; c; c = c->next, listed++) {
		if (c->shut)
			continue;
		shutdown(c->fd, SHUT_RDWR);
		c->shut = true;
	}
	pthread_mutex_unlock(&g->mu);
	return listed;
}

void guard_stats_get(guard *g, guard_stats *out)
{
	pthread_mutex_lock(&g->mu);
	*out = g->stats;
	pthread_mutex_unlock(&g->mu);
}
