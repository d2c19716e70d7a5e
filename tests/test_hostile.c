/*
 * test_hostile.c - plugins written to break the host (issue 15): native
 * calls the watchdog cannot stop, a circuit breaker for plugins that keep
 * getting killed, management calls that never wait on a stuck engine,
 * memory blamed on its owner, and an engine never kept past its policy.
 *
 * The stuck native call is JSC's regexp engine on a quadratic pattern:
 * /a*b/ over STUCK_CHARS 'a's runs for about two seconds on this machine
 * kind, whatever the deadline (it does not poll the watchdog). Each such
 * scan leaves a thread burning a core until its call ends, so the tests
 * that make them wait for those threads before they finish.
 * Assertions run only on the main thread.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "txscan.h"

#define STUCK_CHARS 60000

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double slack_ms(void)
{
	const char *s = getenv("TXS_TEST_SLACK_MS");
	return s ? atof(s) : 5.0;
}

static txs_limits limits(uint32_t timeout_ms)
{
	txs_limits l;
	txs_limits_init(&l);
	l.timeout_ms = timeout_ms;
	return l;
}

/* Events, collected for the main thread. */
static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static char ev_log[4096];

static void on_event(const char *id, const char *event, const char *detail, void *ud)
{
	(void)ud;
	(void)detail;
	pthread_mutex_lock(&ev_mu);
	size_t n = strlen(ev_log);
	snprintf(ev_log + n, sizeof ev_log - n, "%s:%s ", id, event);
	pthread_mutex_unlock(&ev_mu);
}

static txs_executor *make(const char *id, const char *src, const txs_limits *l)
{
	txs_plugin_code c = {.id = id, .version = "1.0.0", .filename = "index.js",
	                     .source = src, .source_len = strlen(src)};
	txs_executor *ex = NULL;
	if (txs_executor_new(&ex, &c, l, NULL, NULL))
		fail_msg("txs_executor_new(%s): %s", id, txs_last_error());
	txs_executor_on_event(ex, on_event, NULL);
	return ex;
}

static txs_scan_result scan(txs_executor *ex, const char *tx)
{
	txs_scan_result r;
	assert_int_equal(txs_executor_scan(ex, tx, strlen(tx), &r), 0);
	return r;
}

static const char *status(const txs_scan_result *r)
{
	return txs_status_name(r->status);
}

static void expect_status(txs_executor *ex, const char *tx, txs_status want, const char *needle)
{
	txs_scan_result r = scan(ex, tx);
	if (r.status != want || (needle && (!r.error || !strstr(r.error, needle))))
		fail_msg("%s: want %s, got %s: %s", tx, txs_status_name(want), status(&r),
		         r.error ? r.error : r.json);
	txs_scan_result_clear(&r);
}

/* Waits until no lane of ex is stuck any more (bounded). */
static void wait_unstuck(txs_executor *ex)
{
	txs_executor_stats st;
	for (int i = 0; i < 3000; i++) {
		txs_executor_stats_get(ex, &st);
		if (!st.lanes_stuck)
			return;
		usleep(10000);
	}
	fail_msg("stuck lanes never came back");
}

static const char STUCK_SRC[] =
    "let n = 0;\n"
    "module.exports = { scanTransaction(tx) {\n"
    "  n++;\n"
    "  if (tx.stuck) /a*b/.test('a'.repeat(tx.stuck));\n"
    "  return n;\n"
    "}};\n";

static char stuck_tx[64];

/* ---- 1. a stuck native call is answered at its backstop ------------------ */

static void test_stuck_scan_answered(void **state)
{
	(void)state;
	txs_limits l = limits(50);
	txs_executor *ex = make("stuck", STUCK_SRC, &l);
	double t0 = now_ms();
	txs_scan_result r = scan(ex, stuck_tx);
	double took = now_ms() - t0;
	if (r.status != TXS_STATUS_TIMEOUT || !strstr(r.error, "native call"))
		fail_msg("stuck scan: %s: %s", status(&r), r.error ? r.error : r.json);
	txs_scan_result_clear(&r);
	print_message("stuck scan at timeout 50 ms answered after %.1f ms\n", took);
	/* budget 50 + grace 25 of CPU, the watcher's 5 ms period, and room for
	 * a loaded machine (the lane's CPU, not wall time, is measured); the
	 * native call itself runs ~1.7 s */
	if (took > 250 + 20 * slack_ms())
		fail_msg("stuck scan answered after %.1f ms", took);
	/* a fresh engine on a fresh lane answers at once; its module state is new */
	t0 = now_ms();
	r = scan(ex, "{\"n\":1}");
	took = now_ms() - t0;
	if (r.status != TXS_STATUS_OK || strcmp(r.json, "1"))
		fail_msg("after the stuck scan: %s %s", status(&r), r.error ? r.error : r.json);
	txs_scan_result_clear(&r);
	if (took > 100 + 10 * slack_ms())
		fail_msg("the next scan took %.1f ms", took);
	txs_executor_stats st;
	txs_executor_stats_get(ex, &st);
	assert_int_equal(st.lanes_abandoned, 1);
	assert_int_equal(st.timeouts, 1);
	assert_true(st.running);
	pthread_mutex_lock(&ev_mu);
	assert_non_null(strstr(ev_log, "stuck:lane_abandoned"));
	pthread_mutex_unlock(&ev_mu);
	wait_unstuck(ex);
	txs_executor_free(ex);
}

/* ---- 2. management calls never wait on a stuck engine -------------------- */

struct async_scan {
	sem_t done;
	txs_scan_result r;
	double at;
};

static void async_done(txs_scan_result *r, void *ud)
{
	struct async_scan *a = ud;
	a->r = *r;
	a->at = now_ms();
	sem_post(&a->done);
}

static void test_control_while_stuck(void **state)
{
	(void)state;
	txs_limits l = limits(50);
	txs_executor *ex = make("stuckctl", STUCK_SRC, &l);
	struct async_scan a;
	sem_init(&a.done, 0, 0);
	double t0 = now_ms();
	assert_int_equal(txs_executor_submit(ex, stuck_tx, strlen(stuck_tx), async_done, &a), 0);
	usleep(20000);
	/* stats answer at once while the lane is stuck */
	double s0 = now_ms();
	txs_executor_stats st;
	txs_executor_stats_get(ex, &st);
	assert_true(st.busy);
	assert_true(now_ms() - s0 < 5 + slack_ms());
	/* a restart is not queued behind the stuck scan for its whole call */
	assert_int_equal(txs_executor_restart(ex), 0);
	double took = now_ms() - t0;
	sem_wait(&a.done);
	assert_int_equal(a.r.status, TXS_STATUS_TIMEOUT);
	txs_scan_result_clear(&a.r);
	print_message("restart during a stuck scan returned after %.1f ms\n", took);
	if (took > 300 + 20 * slack_ms())
		fail_msg("restart returned after %.1f ms", took);
	expect_status(ex, "{}", TXS_STATUS_OK, NULL);
	sem_destroy(&a.done);
	wait_unstuck(ex);
	txs_executor_free(ex);
}

/* ---- 3. abandoned lanes are bounded --------------------------------------- */

static void test_stuck_lanes_bounded(void **state)
{
	(void)state;
	txs_limits l = limits(50);
	l.breaker_after = 0; /* this test is about lanes, not the breaker */
	txs_executor *ex = make("stuckmany", STUCK_SRC, &l);
	expect_status(ex, stuck_tx, TXS_STATUS_TIMEOUT, "native call");
	expect_status(ex, stuck_tx, TXS_STATUS_TIMEOUT, "native call");
	txs_executor_stats st;
	txs_executor_stats_get(ex, &st);
	assert_int_equal(st.lanes_stuck, 2);
	/* past the bound the plugin answers unavailable, at once */
	double t0 = now_ms();
	expect_status(ex, "{}", TXS_STATUS_UNAVAILABLE, "stuck in native calls");
	assert_true(now_ms() - t0 < 5 + slack_ms());
	/* ... until a stuck lane comes back */
	wait_unstuck(ex);
	txs_scan_result r = {0};
	for (int i = 0; i < 100; i++) {
		txs_scan_result_clear(&r);
		r = scan(ex, "{}");
		if (r.status == TXS_STATUS_OK)
			break;
		usleep(10000);
	}
	if (r.status != TXS_STATUS_OK)
		fail_msg("after the stuck lanes came back: %s: %s", status(&r), r.error);
	txs_scan_result_clear(&r);
	txs_executor_free(ex);
}

/* ---- 4. free and new are bounded too -------------------------------------- */

/* A lane abandoned in the middle of a batch (by txs_executor_free after its
 * grace here; by the watcher at the wall backstop when a loaded machine
 * starves a scan that then ends well): the scans after the running one are
 * answered and their commands freed by others. The abandoned thread, back
 * from its call, must not read their texts. It did: a use-after-free that
 * ASan reports (`make sanitize`) and that crashed txscan in JSC's
 * checkUTF8 under load. */
static const char SPIN_SRC[] =
    "module.exports = { scanTransaction(tx) {\n"
    "  if (tx.spin) { const e = Date.now() + tx.spin; while (Date.now() < e) {} }\n"
    "  return null;\n"
    "}};\n";

static void test_abandoned_batch_reads_no_text(void **state)
{
	(void)state;
	txs_limits l = limits(5000); /* the spin is no timeout: free abandons it */
	txs_executor *ex = make("stuckbatch", SPIN_SRC, &l);
	enum { N = 8 };
	struct async_scan a[N];
	for (int i = 0; i < N; i++) {
		sem_init(&a[i].done, 0, 0);
		char tx[300];
		if (i == 0)
			snprintf(tx, sizeof tx, "{\"spin\":400}");
		else
			snprintf(tx, sizeof tx, "{\"n\":%d,\"pad\":\"%0200d\"}", i, i);
		assert_int_equal(txs_executor_submit(ex, tx, strlen(tx), async_done, &a[i]), 0);
	}
	usleep(50000); /* the batch runs its first scan */
	txs_executor_free(ex); /* answers all, frees their commands */
	for (int i = 0; i < N; i++) {
		sem_wait(&a[i].done);
		assert_int_equal(a[i].r.status, TXS_STATUS_STOPPED);
		txs_scan_result_clear(&a[i].r);
		sem_destroy(&a[i].done);
	}
	/* the abandoned thread ends its spin and would go on with the batch */
	usleep(1000000);
}

static void test_free_while_stuck(void **state)
{
	(void)state;
	txs_limits l = limits(5000); /* the watcher would wait long: free must not */
	txs_executor *ex = make("stuckfree", STUCK_SRC, &l);
	struct async_scan a;
	sem_init(&a.done, 0, 0);
	assert_int_equal(txs_executor_submit(ex, stuck_tx, strlen(stuck_tx), async_done, &a), 0);
	usleep(20000);
	double t0 = now_ms();
	txs_executor_free(ex);
	double took = now_ms() - t0;
	sem_wait(&a.done);
	print_message("free during a stuck scan returned after %.1f ms\n", took);
	assert_int_equal(a.r.status, TXS_STATUS_STOPPED);
	txs_scan_result_clear(&a.r);
	sem_destroy(&a.done);
	if (took > 200 + 20 * slack_ms())
		fail_msg("free took %.1f ms", took);
	/* the abandoned thread still ends its call and destroys its engine */
	sleep(3);
}

/* txs_executor_new of src (file id.js, init_timeout_ms 100) fails within
 * max_ms (plus slack), its error naming the file and saying `why`. */
static void expect_start_fails(const char *id, const char *src, const char *why, double max_ms)
{
	char file[64];
	snprintf(file, sizeof file, "%s.js", id);
	txs_limits l = limits(50);
	l.init_timeout_ms = 100;
	txs_plugin_code c = {.id = id, .version = "1", .filename = file,
	                     .source = src, .source_len = strlen(src)};
	txs_executor *ex = (txs_executor *)0x1;
	double t0 = now_ms();
	int rc = txs_executor_new(&ex, &c, &l, NULL, NULL);
	double took = now_ms() - t0;
	assert_int_equal(rc, TXS_EPLUGIN);
	assert_null(ex);
	if (!strstr(txs_last_error(), file) || !strstr(txs_last_error(), why))
		fail_msg("error: %s", txs_last_error());
	print_message("%s: the start failed after %.1f ms\n", id, took);
	if (took > max_ms + 20 * slack_ms())
		fail_msg("txs_executor_new took %.1f ms", took);
}

static void test_stuck_init(void **state)
{
	(void)state;
	char src[256];
	snprintf(src, sizeof src,
	         "module.exports = { init() { /a*b/.test('a'.repeat(%d)); },\n"
	         "  scanTransaction() { return null; } };\n", STUCK_CHARS);
	expect_start_fails("stuckinit", src, "native call", 600);
	sleep(3);
}

/* A counting plugin whose init runs `then` from 300 ms after now on. */
static void init_from_300_ms(char *src, size_t cap, const char *then)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double until = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6 + 300;
	snprintf(src, cap,
	         "let n = 0;\n"
	         "module.exports = {\n"
	         "  init() { if (Date.now() > %.0f) %s },\n"
	         "  scanTransaction() { return ++n; } };\n",
	         until, then);
}

/* A realm built ahead in idle time runs the plugin's init on the serving
 * lane: when that init gets stuck in a native call (a regexp), the lane is
 * abandoned as for a stuck inline build, and scans keep being answered by
 * the lane that takes over, none waiting the regexp's seconds. */
/* Scans ex every 5 ms for 1.5 s while its restarts build ahead: each must
 * answer ok or unavailable. Returns the slowest answer in ms. */
static double scan_for_1500_ms(txs_executor *ex, int *answered, int *ok)
{
	double end = now_ms() + 1500, worst = 0;
	*answered = *ok = 0;
	while (now_ms() < end) {
		double t0 = now_ms();
		txs_scan_result r = scan(ex, "{}");
		double took = now_ms() - t0;
		worst = took > worst ? took : worst;
		++*answered;
		*ok += r.status == TXS_STATUS_OK;
		if (r.status != TXS_STATUS_OK && r.status != TXS_STATUS_UNAVAILABLE)
			fail_msg("scan %d: %s: %s", *answered, status(&r), r.error);
		txs_scan_result_clear(&r);
		usleep(5000);
	}
	return worst;
}

static void test_stuck_build_ahead(void **state)
{
	(void)state;
	char then[96], src[512];
	snprintf(then, sizeof then, "/a*b/.test('a'.repeat(%d));", STUCK_CHARS);
	init_from_300_ms(src, sizeof src, then);
	txs_limits l = limits(50);
	l.init_timeout_ms = 100;
	l.restart_every = 3;
	txs_executor *ex = make("stuckahead", src, &l);
	int answered, ok;
	double worst = scan_for_1500_ms(ex, &answered, &ok);
	txs_executor_stats st;
	txs_executor_stats_get(ex, &st);
	print_message("%d scans, the slowest answered in %.1f ms; %llu lanes abandoned\n", answered,
	              worst, (unsigned long long)st.lanes_abandoned);
	assert_true(st.lanes_abandoned >= 1);
	if (worst > 600 + 20 * slack_ms())
		fail_msg("a scan waited %.1f ms behind a stuck build", worst);
	txs_executor_free(ex);
	sleep(3); /* the stuck threads' regexps end */
}

/* The same with an init that fills the heap past its limit from a set time
 * on: the build ahead is stopped by the memory limit and dropped, the
 * serving realm is not blamed (its scans keep answering ok until the
 * restart that must build), and no scan waits behind it. */
static void test_memory_bomb_build_ahead(void **state)
{
	(void)state;
	char src[512];
	init_from_300_ms(src, sizeof src,
	                 "{ const a = []; for (;;) a.push(new Array(1e5).fill(1)); }");
	txs_limits l = limits(50);
	l.init_timeout_ms = 2000;
	l.heap_limit_mb = 64;
	l.restart_every = 3;
	txs_executor *ex = make("bombahead", src, &l);
	int answered, ok;
	double worst = scan_for_1500_ms(ex, &answered, &ok);
	print_message("%d scans (%d ok), the slowest answered in %.1f ms\n", answered, ok, worst);
	assert_true(ok > 0);
	if (worst > 2000 + 20 * slack_ms())
		fail_msg("a scan waited %.1f ms behind a build", worst);
	txs_executor_free(ex);
}

/* ---- 5. circuit breaker ----------------------------------------------------- */

static const char LOOP_SRC[] =
    "module.exports = { scanTransaction(tx) { if (tx.loop) for (;;) {} return 1; } };\n";

static void test_circuit_breaker(void **state)
{
	(void)state;
	txs_limits l = limits(20);
	l.breaker_after = 3;
	l.breaker_cooldown_ms = 200;
	pthread_mutex_lock(&ev_mu);
	ev_log[0] = '\0';
	pthread_mutex_unlock(&ev_mu);
	txs_executor *ex = make("breaker", LOOP_SRC, &l);
	const char *loop = "{\"loop\":1}";
	for (int i = 0; i < 3; i++)
		expect_status(ex, loop, TXS_STATUS_TIMEOUT, NULL);
	txs_executor_stats st;
	txs_executor_stats_get(ex, &st);
	assert_int_equal(st.breaker_state, TXS_BREAKER_OPEN);
	assert_int_equal(st.breaker_opens, 1);
	/* open: doomed work is refused at once, even a scan that would pass */
	double t0 = now_ms();
	expect_status(ex, "{}", TXS_STATUS_UNAVAILABLE, "circuit open");
	assert_true(now_ms() - t0 < 5 + slack_ms());
	/* half-open after the cool-down: one trial; a kill reopens it for longer */
	usleep(230000);
	expect_status(ex, loop, TXS_STATUS_TIMEOUT, NULL);
	txs_executor_stats_get(ex, &st);
	assert_int_equal(st.breaker_state, TXS_BREAKER_OPEN);
	assert_int_equal(st.breaker_opens, 2);
	usleep(230000); /* 200 ms is not enough now: 400 */
	expect_status(ex, "{}", TXS_STATUS_UNAVAILABLE, "circuit open");
	usleep(200000);
	/* a trial that runs closes it */
	expect_status(ex, "{}", TXS_STATUS_OK, NULL);
	txs_executor_stats_get(ex, &st);
	assert_int_equal(st.breaker_state, TXS_BREAKER_CLOSED);
	expect_status(ex, "{}", TXS_STATUS_OK, NULL);
	pthread_mutex_lock(&ev_mu);
	const char *want[] = {"breaker:breaker_open", "breaker:breaker_half_open",
	                      "breaker:breaker_closed"};
	for (size_t i = 0; i < 3; i++)
		if (!strstr(ev_log, want[i]))
			fail_msg("no %s in: %s", want[i], ev_log);
	pthread_mutex_unlock(&ev_mu);
	txs_executor_free(ex);
}

/* Queued scans are doomed work too: opening the circuit answers them at once. */
static void test_breaker_drains_queue(void **state)
{
	(void)state;
	txs_limits l = limits(20);
	l.breaker_after = 2;
	txs_executor *ex = make("breakerq", LOOP_SRC, &l);
	enum { N = 40 };
	struct async_scan a[N];
	const char *loop = "{\"loop\":1}";
	double t0 = now_ms();
	for (int i = 0; i < N; i++) {
		sem_init(&a[i].done, 0, 0);
		assert_int_equal(txs_executor_submit(ex, loop, strlen(loop), async_done, &a[i]), 0);
	}
	int timeouts = 0, unavailable = 0;
	double last = 0;
	for (int i = 0; i < N; i++) {
		sem_wait(&a[i].done);
		timeouts += a[i].r.status == TXS_STATUS_TIMEOUT;
		unavailable += a[i].r.status == TXS_STATUS_UNAVAILABLE;
		last = a[i].at > last ? a[i].at : last;
		txs_scan_result_clear(&a[i].r);
		sem_destroy(&a[i].done);
	}
	print_message("%d timeouts, %d unavailable, all answered after %.1f ms\n", timeouts,
	              unavailable, last - t0);
	/* two kills open the circuit: the other scans are not run (each would
	 * have burnt its 20 ms) */
	assert_int_equal(timeouts, 2);
	assert_int_equal(unavailable, N - 2);
	txs_executor_free(ex);
}

/* ---- 6. memory is blamed on its owner ------------------------------------- */

struct mem_round {
	txs_executor *ex;
	const char *tx;
	txs_scan_result r;
};

static void *mem_scan(void *arg)
{
	struct mem_round *m = arg;
	txs_executor_scan(m->ex, m->tx, strlen(m->tx), &m->r);
	return NULL;
}

static void test_memory_of_a_neighbour(void **state)
{
	(void)state;
	/* one plugin spins for 800 ms of CPU, allocating nothing ... */
	txs_limits lc = limits(2000);
	lc.heap_limit_mb = 64;
	txs_executor *cpu = make("cpu-only",
	                         "module.exports = { scanTransaction() {\n"
	                         "  const t = Date.now(); let x = 0;\n"
	                         "  while (Date.now() - t < 800) x++;\n"
	                         "  return x > 0 ? 1 : 0; } };\n",
	                         &lc);
	/* ... while its neighbour fills 300 MB in one native call (JSC fills
	 * ~250 MB/s: all of it lands inside the spinning scan) */
	txs_limits lb = limits(5000);
	lb.heap_limit_mb = 4096;
	lb.heap_restart_mb = 0;
	lb.restart_every = 1;
	txs_executor *big = make("big-alloc",
	                         "module.exports = { scanTransaction() {\n"
	                         "  const a = new Uint8Array(300 * 1024 * 1024); a.fill(7);\n"
	                         "  return a[12345]; } };\n",
	                         &lb);
	int stopped = 0;
	for (int round = 0; round < 3; round++) {
		struct mem_round c = {.ex = cpu, .tx = "{}"}, b = {.ex = big, .tx = "{}"};
		pthread_t tc, tb;
		pthread_create(&tc, NULL, mem_scan, &c);
		usleep(20000);
		pthread_create(&tb, NULL, mem_scan, &b);
		pthread_join(tc, NULL);
		pthread_join(tb, NULL);
		if (c.r.status != TXS_STATUS_OK) {
			print_message("round %d: cpu-only got %s: %s\n", round, status(&c.r), c.r.error);
			stopped++;
		}
		txs_scan_result_clear(&c.r);
		txs_scan_result_clear(&b.r);
	}
	assert_int_equal(stopped, 0);
	txs_executor_free(cpu);
	txs_executor_free(big);
}

/* ---- 7. a failed rebuild never keeps an engine past its policy ------------- */

static void test_restart_every_is_a_bound(void **state)
{
	(void)state;
	/* init works until a moment the test picks, then fails: every
	 * scheduled rebuild after it fails */
	char src[512];
	init_from_300_ms(src, sizeof src, "throw new Error('flaky init');");
	txs_limits l = limits(50);
	l.restart_every = 1;
	txs_executor *ex = make("flaky", src, &l);
	int unavailable = 0;
	double end = now_ms() + 10000; /* under TSan a build can take 100s of ms */
	while (now_ms() < end && !unavailable) {
		txs_scan_result r = scan(ex, "{}");
		if (r.status == TXS_STATUS_OK && strcmp(r.json, "1"))
			fail_msg("module state lived %s scans with restart_every 1", r.json);
		unavailable += r.status == TXS_STATUS_UNAVAILABLE;
		txs_scan_result_clear(&r);
		usleep(2000);
	}
	assert_true(unavailable > 0);
	txs_executor_free(ex);
}

/* ---- 8. a fresh realm is fresh ------------------------------------------- */

static void test_fresh_realms(void **state)
{
	(void)state;
	txs_limits l = limits(50);
	l.restart_every = 3;
	l.realms_per_vm = 4;
	/* module state, globals and shared prototypes, ctx.config (whose JSON
	 * text the realms of a VM share) and the objects up console's
	 * prototype chain (made by a class every realm shares): all fresh in a
	 * new realm */
	txs_executor *ex = make("realms",
	                        "let n = 0;\n"
	                        "module.exports = { scanTransaction(tx, ctx) {\n"
	                        "  globalThis.g = (globalThis.g || 0) + 1;\n"
	                        "  Object.prototype.p = (Object.prototype.p || 0) + 1;\n"
	                        "  Symbol.for('txs').description;\n"
	                        "  ctx.config.c = (ctx.config.c || 0) + 1;\n"
	                        "  let up = Object.getPrototypeOf(Object.getPrototypeOf(console));\n"
	                        "  up.q = (up.q || 0) + 1;\n"
	                        "  n++; return [n, globalThis.g, ({}).p, ctx.config.c, up.q]; } };\n",
	                        &l);
	for (int i = 0; i < 12; i++) {
		txs_scan_result r = scan(ex, "{}");
		char want[32];
		int k = i % 3 + 1;
		snprintf(want, sizeof want, "[%d,%d,%d,%d,%d]", k, k, k, k, k);
		if (r.status != TXS_STATUS_OK || strcmp(r.json, want))
			fail_msg("scan %d: %s %s, want %s", i, status(&r), r.error ? r.error : r.json, want);
		txs_scan_result_clear(&r);
	}
	txs_executor_stats st;
	for (int i = 0; i < 100; i++) { /* the restart after scan 12 follows its answer */
		txs_executor_stats_get(ex, &st);
		if (st.restarts_scheduled == 4)
			break;
		usleep(2000);
	}
	/* restarts after scans 3, 6, 9 are realms in the first VM; 12 is a new VM
	 * (realms_per_vm 4). Two realms slower than REALM_INLINE_NS send the
	 * policy to new VMs early: so it goes in a slow build (ASan, seen in
	 * CI), where the third restart is a VM too. */
	assert_int_equal(st.restarts_scheduled, 4);
	assert_in_range(st.realm_restarts, 2, 3);
	txs_executor_free(ex);
}

/* ---- 10. plugin code after the engine's last drain -------------------------
 * C reads plugin values after a scan's code and its microtasks ran: a
 * thrown object's name, message and stack (getters), module.exports'
 * functions (getters). What those getters queue must run under the
 * watchdog, in the scan's (or the load's) time: JSC would otherwise run
 * it as the VM entry ends, each microtask an entry of its own, where a
 * flood never ends and a kill is noticed by nobody (the VM then aborts
 * the process at its next realm, or fails an innocent scan). */

/* A plugin whose scan `k` throws, from a timer, an object whose message
 * getter queues `task`. */
static void thrower_src(char *src, size_t cap, int k, const char *task)
{
	snprintf(src, cap,
	         "let n = 0;\n"
	         "function busy() { const t = Date.now(); while (Date.now() - t < 80) {} }\n"
	         "function flood() { Promise.resolve().then(flood); }\n"
	         "module.exports = { scanTransaction() {\n"
	         "  if (++n !== %d) return n;\n"
	         "  return new Promise(() => setTimeout(() => { throw { name: 'E',\n"
	         "    get message() { Promise.resolve().then(%s); return 'left behind'; } }; }, 1));\n"
	         "} };\n",
	         k, task);
}

static void expect_json(txs_executor *ex, const char *want)
{
	txs_scan_result r = scan(ex, "{}");
	if (r.status != TXS_STATUS_OK || strcmp(r.json, want))
		fail_msg("want %s, got %s: %s", want, status(&r), r.error ? r.error : r.json);
	txs_scan_result_clear(&r);
}

/* The last scan before a scheduled recycle leaves 80 ms of microtask
 * behind its answer: it is that scan's timeout, and the next realm is in
 * a new VM (before: the process aborted at the fresh realm). */
static void test_microtask_after_answer_is_the_scans(void **state)
{
	(void)state;
	char src[640];
	thrower_src(src, sizeof src, 3, "busy");
	txs_limits l = limits(50);
	l.restart_every = 3;
	txs_executor *ex = make("leftover", src, &l);
	expect_json(ex, "1");
	expect_json(ex, "2");
	expect_status(ex, "{}", TXS_STATUS_TIMEOUT, "timed out");
	expect_json(ex, "1"); /* a fresh engine */
	expect_json(ex, "2");
	txs_executor_stats st;
	txs_executor_stats_get(ex, &st);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.lanes_abandoned, 0);
	txs_executor_free(ex);
}

/* A microtask that queues itself, left behind the answer: stopped by the
 * watchdog at the scan's timeout (before: the lane spun for ever,
 * abandoned as stuck in a native call). */
static void test_microtask_flood_after_answer(void **state)
{
	(void)state;
	char src[640];
	thrower_src(src, sizeof src, 2, "flood");
	txs_limits l = limits(50);
	txs_executor *ex = make("flood", src, &l);
	expect_json(ex, "1");
	double t0 = now_ms();
	expect_status(ex, "{}", TXS_STATUS_TIMEOUT, "timed out");
	double took = now_ms() - t0;
	expect_json(ex, "1");
	txs_executor_stats st;
	txs_executor_stats_get(ex, &st);
	assert_int_equal(st.lanes_abandoned, 0);
	if (took > 100 + 20 * slack_ms())
		fail_msg("the flood was stopped after %.1f ms", took);
	txs_executor_free(ex);
}

/* A scan that queues a microtask flood, then loops: the loop's kill left
 * the flood queued, and JSC ran it as the entry ended, each microtask an
 * entry of its own: the lane spun for ever, abandoned as stuck in a
 * native call (two such scans: the plugin unavailable for good). The
 * kill now stops the flood too. */
static void test_flood_queued_before_a_killed_loop(void **state)
{
	(void)state;
	txs_limits l = limits(50);
	txs_executor *ex = make("floodloop",
	                        "let n = 0;\n"
	                        "function f() { Promise.resolve().then(f); }\n"
	                        "module.exports = { scanTransaction() {\n"
	                        "  if (++n === 2) { f(); for (;;) {} }\n"
	                        "  return n; } };\n",
	                        &l);
	expect_json(ex, "1");
	expect_status(ex, "{}", TXS_STATUS_TIMEOUT, "timed out after 50 ms");
	expect_json(ex, "1"); /* a fresh engine */
	txs_executor_stats st;
	txs_executor_stats_get(ex, &st);
	assert_int_equal(st.lanes_abandoned, 0);
	txs_executor_free(ex);
}

/* module.exports.scanTransaction is a getter that floods: the load times
 * out at init_timeout_ms (before: the build spun for ever). */
static void test_exports_getter_flood(void **state)
{
	(void)state;
	static const char src[] =
	    "function flood() { Promise.resolve().then(flood); }\n"
	    "const m = {};\n"
	    "Object.defineProperty(m, 'scanTransaction', { get() {\n"
	    "  Promise.resolve().then(flood); return () => null; } });\n"
	    "module.exports = m;\n";
	expect_start_fails("getflood", src, "timed out", 300);
}

/* From 300 ms on, each new realm's exports getter leaves 400 ms of
 * microtask: a realm built ahead then is killed (init_timeout_ms 100).
 * Its VM is the serving realm's, and it is not used again: the serving
 * realm's scans never fail with the kill's "terminated" (before: the next
 * scan did), and each scan is ok or unavailable. */
static void test_killed_build_ahead_ends_its_vm(void **state)
{
	(void)state;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double until = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6 + 300;
	char src[640];
	snprintf(src, sizeof src,
	         "let n = 0;\n"
	         "function busy() { const t = Date.now(); while (Date.now() - t < 400) {} }\n"
	         "const m = {};\n"
	         "Object.defineProperty(m, 'scanTransaction', { get() {\n"
	         "  if (Date.now() > %.0f) Promise.resolve().then(busy);\n"
	         "  return () => ++n; } });\n"
	         "module.exports = m;\n",
	         until);
	txs_limits l = limits(50);
	l.init_timeout_ms = 100;
	l.restart_every = 3;
	txs_executor *ex = make("killedahead", src, &l);
	int answered, ok;
	double worst = scan_for_1500_ms(ex, &answered, &ok);
	print_message("%d scans (%d ok), the slowest answered in %.1f ms\n", answered, ok, worst);
	assert_true(ok > 0);
	txs_executor_free(ex);
}

/* A realm built ahead after a manual restart is killed (its exports
 * getter, from a set time on, leaves 400 ms of microtask; init_timeout_ms
 * 100): the operator is told (event realm_killed, with the build's
 * error), and the next scan is not "terminated" but finds the engine
 * replaced. Where realms are slow (a sanitizer build) nothing is built
 * ahead after the set time: then only the answer is checked. */
static void test_realm_killed_ahead_is_told(void **state)
{
	(void)state;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double start = now_ms(), until = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6 + 400;
	char src[640];
	snprintf(src, sizeof src,
	         "function busy() { const t = Date.now(); while (Date.now() - t < 400) {} }\n"
	         "const m = {};\n"
	         "Object.defineProperty(m, 'scanTransaction', { get() {\n"
	         "  if (Date.now() > %.0f) Promise.resolve().then(busy);\n"
	         "  return () => 1; } });\n"
	         "module.exports = m;\n",
	         until);
	txs_limits l = limits(50);
	l.init_timeout_ms = 100;
	l.restart_every = 0;
	txs_executor *ex = make("toldahead", src, &l);
	expect_json(ex, "1");
	assert_int_equal(txs_executor_restart(ex), 0); /* then the next realm is built ahead */
	double wait = start + 450 - now_ms();
	if (wait > 0)
		usleep((useconds_t)(wait * 1000));
	assert_int_equal(txs_executor_restart(ex), 0); /* takes it, and builds the next: killed */
	txs_executor_stats st;
	txs_executor_stats_get(ex, &st);
	usleep(400000);
	/* a standby VM built before the set time serves (ok), or the new VM's
	 * load is killed too (unavailable); never the kill's "terminated" */
	txs_scan_result r = scan(ex, "{}");
	if (r.status != TXS_STATUS_OK && r.status != TXS_STATUS_UNAVAILABLE)
		fail_msg("after the kill: %s: %s", status(&r), r.error);
	txs_scan_result_clear(&r);
	txs_executor_free(ex);
	pthread_mutex_lock(&ev_mu);
	bool told = strstr(ev_log, "toldahead:realm_killed") != NULL;
	pthread_mutex_unlock(&ev_mu);
	print_message("%llu realms taken prepared; realm_killed %s\n",
	              (unsigned long long)st.realm_prepared, told ? "told" : "not told");
	/* a sanitizer's build (more slack) makes realms slower than the
	 * executor's 1 ms for building ahead: there, the restart took the
	 * realm built before the set time, and none was built after it */
	if (st.realm_prepared == 1 && slack_ms() <= 5 && !told)
		fail_msg("a realm built ahead was killed, and nobody was told");
}

/* ---- 9. time the process was stopped is nobody's fault -------------------- */

static void test_process_stall_is_not_a_timeout(void **state)
{
	(void)state;
	txs_limits l = limits(300);
	txs_executor *ex = make("stall",
	                        "module.exports = { scanTransaction(tx) {\n"
	                        "  let x = 0; for (let i = 0; i < tx.n; i++) x += i & 1;\n"
	                        "  return x > 0 ? 1 : 0; } };\n",
	                        &l);
	/* a loop of fixed work (not of the clock, which jumps with the stall)
	 * sized to take ~150 ms */
	txs_scan_result r = scan(ex, "{\"n\":2000000}");
	assert_int_equal(r.status, TXS_STATUS_OK);
	char tx[64];
	snprintf(tx, sizeof tx, "{\"n\":%.0f}", 2000000 * 150 / (r.ms > 1 ? r.ms : 1));
	txs_scan_result_clear(&r);
	/* a child stops this process for 1.5 s in the middle of the scan
	 * (SIGSTOP, as a debugger, a VM freeze or a swap storm would) */
	pid_t parent = getpid(), child = fork();
	if (child == 0) {
		usleep(30000);
		kill(parent, SIGSTOP);
		usleep(1500000);
		kill(parent, SIGCONT);
		_exit(0);
	}
	/* the wall clock sees 1.6 s of a 300 ms deadline, the backstop 1.3 s */
	r = scan(ex, tx);
	waitpid(child, NULL, 0);
	if (r.status != TXS_STATUS_OK)
		fail_msg("scan across a process stall: %s: %s", status(&r), r.error);
	txs_scan_result_clear(&r);
	txs_executor_stats st;
	txs_executor_stats_get(ex, &st);
	assert_int_equal(st.lanes_abandoned, 0);
	txs_executor_free(ex);
}

int main(void)
{
	snprintf(stuck_tx, sizeof stuck_tx, "{\"stuck\":%d}", STUCK_CHARS);
	if (getenv("TXS_TEST_FILTER"))
		cmocka_set_test_filter(getenv("TXS_TEST_FILTER"));
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stuck_scan_answered),
	    cmocka_unit_test(test_control_while_stuck),
	    cmocka_unit_test(test_stuck_lanes_bounded),
	    cmocka_unit_test(test_abandoned_batch_reads_no_text),
	    cmocka_unit_test(test_free_while_stuck),
	    cmocka_unit_test(test_stuck_init),
	    cmocka_unit_test(test_stuck_build_ahead),
	    cmocka_unit_test(test_memory_bomb_build_ahead),
	    cmocka_unit_test(test_circuit_breaker),
	    cmocka_unit_test(test_breaker_drains_queue),
	    cmocka_unit_test(test_memory_of_a_neighbour),
	    cmocka_unit_test(test_restart_every_is_a_bound),
	    cmocka_unit_test(test_fresh_realms),
	    cmocka_unit_test(test_process_stall_is_not_a_timeout),
	    cmocka_unit_test(test_microtask_after_answer_is_the_scans),
	    cmocka_unit_test(test_microtask_flood_after_answer),
	    cmocka_unit_test(test_exports_getter_flood),
	    cmocka_unit_test(test_flood_queued_before_a_killed_loop),
	    cmocka_unit_test(test_killed_build_ahead_ends_its_vm),
	    cmocka_unit_test(test_realm_killed_ahead_is_told),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
