/*
 * test_http.c - the pieces of `txscan serve` that keep its HTTP threads
 * free (src/http/snapshot.c, src/http/guard.c), without a server.
 *
 * The snapshot tests stand in for the host with a getter that can block,
 * as a host call does while a plugin holds its lock: a request must still
 * be called back within its wait, from the timer thread.
 */
#define _GNU_SOURCE
#include "http/guard.h"
#include "http/snapshot.h"
#include "util/clock.h"
#include "util/procstat.h"

#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- snapshots ------------------------------------------------------------ */

struct fake_host {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool block;     /* the next get waits until block is false */
	bool blocked;   /* a get is waiting now */
	unsigned gets;
};

static txs_host *fake_get(void *ud)
{
	struct fake_host *h = ud;
	pthread_mutex_lock(&h->mu);
	h->gets++;
	while (h->block) {
		h->blocked = true;
		pthread_cond_broadcast(&h->cv);
		pthread_cond_wait(&h->cv, &h->mu);
	}
	h->blocked = false;
	pthread_mutex_unlock(&h->mu);
	return NULL; /* detached: take() reads nothing more */
}

static void fake_put(void *ud)
{
	(void)ud;
}

struct callback {
	_Atomic uint64_t at_ns;
};

static void on_done(void *ud)
{
	struct callback *c = ud;
	atomic_store(&c->at_ns, txs_now_ns());
}

static uint64_t wait_callback(struct callback *c, uint64_t limit_ns)
{
	uint64_t t0 = txs_now_ns();
	while (!atomic_load(&c->at_ns) && txs_now_ns() - t0 < limit_ns)
		usleep(1000);
	return atomic_load(&c->at_ns);
}

static void fake_init(struct fake_host *h)
{
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	h->block = false;
	h->blocked = false;
	h->gets = 0;
}

static void test_request_answered_fresh(void **state)
{
	(void)state;
	struct fake_host h;
	snapshots *s = NULL;
	fake_init(&h);
	assert_int_equal(snapshots_new(&s, 60000, fake_get, fake_put, &h), 0);
	const snap_view *before = snapshots_hold(s);
	double t_before = before->taken_ms;
	snapshots_release(s, before);
	struct callback c = {0};
	uint64_t t0 = txs_now_ns();
	snapshots_request(s, 5000, on_done, &c);
	uint64_t at = wait_callback(&c, 5000000000ull);
	assert_true(at != 0);
	assert_true(at - t0 < 2000000000ull); /* answered by the refresh, not the 5 s wait */
	const snap_view *v = snapshots_hold(s);
	assert_true(v->taken_ms > t_before);  /* a snapshot taken after the request */
	assert_false(v->attached);
	snapshots_release(s, v);
	snapshots_free(s);
}

static void test_request_answered_while_host_is_stuck(void **state)
{
	(void)state;
	struct fake_host h;
	snapshots *s = NULL;
	fake_init(&h);
	assert_int_equal(snapshots_new(&s, 60000, fake_get, fake_put, &h), 0);
	pthread_mutex_lock(&h.mu);
	h.block = true;
	pthread_mutex_unlock(&h.mu);
	struct callback first = {0}, second = {0};
	snapshots_request(s, 40, on_done, &first);
	pthread_mutex_lock(&h.mu); /* the refresher is now inside the "host" */
	while (!h.blocked)
		pthread_cond_wait(&h.cv, &h.mu);
	pthread_mutex_unlock(&h.mu);
	uint64_t t0 = txs_now_ns();
	snapshots_request(s, 40, on_done, &second);
	uint64_t at = wait_callback(&second, 5000000000ull);
	assert_true(wait_callback(&first, 5000000000ull) != 0);
	assert_true(at != 0);
	assert_true(at - t0 < 1000000000ull); /* within its wait (and slack), host stuck or not */
	/* Once the refresh has been stuck for longer than a wait, a request is
	 * answered at once, from the old snapshot: waiting could not help. */
	usleep(100000);
	struct callback third = {0};
	t0 = txs_now_ns();
	snapshots_request(s, 40, on_done, &third);
	at = atomic_load(&third.at_ns);
	assert_true(at != 0 && at - t0 < 40000000ull);
	const snap_view *v = snapshots_hold(s); /* the old snapshot, still there */
	assert_non_null(v);
	snapshots_release(s, v);
	pthread_mutex_lock(&h.mu);
	h.block = false;
	pthread_cond_broadcast(&h.cv);
	pthread_mutex_unlock(&h.mu);
	snapshots_free(s);
}

static void test_reasons(void **state)
{
	(void)state;
	json_t *a = snap_reasons_json(DEG_QUARANTINED | DEG_QUEUE);
	assert_int_equal(json_array_size(a), 2);
	assert_string_equal(json_string_value(json_array_get(a, 0)), "quarantined");
	assert_string_equal(json_string_value(json_array_get(a, 1)), "queue over half full");
	json_decref(a);
}

/* ---- guard ------------------------------------------------------------------- */

static void test_bad_path(void **state)
{
	(void)state;
	guard *g = NULL;
	guard_limits lim = {0, 0, 0};
	assert_int_equal(guard_new(&g, &lim, NULL, NULL), 0);
	guard_conn *c = guard_open(g, -1);
	static const struct {
		const char *uri;
		bool bad;
	} cases[] = {
	    {"/healthz", false},      {"/healthz%00.json", true}, {"/a%0A", true},
	    {"/a%7f", true},          {"/a%1B[31m", true},        {"/a\x01", true},
	    {"/a?x=%00", false},      {"/a#%00", false},          {"/a%2", false},
	    {"/a%zz%00", true},       {"/caf%C3%A9", false},      {"/a%20b", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		guard_request_line(g, c, cases[i].uri);
		if (guard_bad_path(c) != cases[i].bad)
			fail_msg("%s: bad_path %d", cases[i].uri, !cases[i].bad);
	}
	guard_close(g, c);
	guard_free(g);
}

/* True when the peer sees the end of the stream within ms. */
static bool peer_closed_within(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char b;
	return poll(&p, 1, ms) == 1 && read(fd, &b, 1) == 0;
}

static void test_header_deadline(void **state)
{
	(void)state;
	int sv[2];
	guard *g = NULL;
	guard_limits lim = {.header_s = 1, .body_s = 1, .idle_s = 1};
	guard_stats st;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(guard_new(&g, &lim, NULL, NULL), 0);
	guard_conn *c = guard_open(g, sv[0]);
	assert_false(peer_closed_within(sv[1], 500)); /* not before its second */
	assert_true(peer_closed_within(sv[1], 3000));
	guard_stats_get(g, &st);
	assert_int_equal(st.closed_header, 1);
	assert_int_equal(st.open, 1); /* closing is MHD's: guard_close */
	guard_close(g, c);
	guard_stats_get(g, &st);
	assert_int_equal(st.open, 0);
	guard_free(g);
	close(sv[0]);
	close(sv[1]);
}

static void test_busy_has_no_deadline(void **state)
{
	(void)state;
	int sv[2];
	guard *g = NULL;
	guard_limits lim = {.header_s = 1, .body_s = 1, .idle_s = 1};
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(guard_new(&g, &lim, NULL, NULL), 0);
	guard_conn *c = guard_open(g, sv[0]);
	guard_phase(g, c, GUARD_BUSY);
	assert_false(peer_closed_within(sv[1], 1800));
	guard_phase(g, c, GUARD_IDLE); /* an answer sent: the idle clock runs */
	assert_true(peer_closed_within(sv[1], 3000));
	guard_close(g, c);
	guard_free(g);
	close(sv[0]);
	close(sv[1]);
}

/* process_cpu_seconds_total counts CPU in nanoseconds, not in the
 * kernel's 10 ms ticks of /proc/self/stat: a worker whose plugins run in
 * engine processes uses a few ms itself, and ops_process's check that
 * its counter is above 0 read 0.00 (a CI failure, 2026-12-07). Two
 * readings around 3 ms of CPU differ by about 3 ms; in ticks, by 0 or 10. */
static void test_process_cpu_is_precise(void **state)
{
	(void)state;
	procstat a, b;
	assert_int_equal(procstat_read(&a), 0);
	struct timespec t0, t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	volatile uint64_t x = 0;
	do {
		for (int i = 0; i < 1000; i++)
			x += (uint64_t)i;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 3000000L);
	assert_int_equal(procstat_read(&b), 0);
	double d = b.cpu_seconds - a.cpu_seconds;
	print_message("      3 ms of CPU read as %.6f s\n", d);
	assert_true(d >= 0.0029 && d < 0.008);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_answered_fresh),
	    cmocka_unit_test(test_process_cpu_is_precise),
	    cmocka_unit_test(test_request_answered_while_host_is_stuck),
	    cmocka_unit_test(test_reasons),
	    cmocka_unit_test(test_bad_path),
	    cmocka_unit_test(test_header_deadline),
	    cmocka_unit_test(test_busy_has_no_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
