/*
 * test_webapi.c - the web-standard globals (src/engine/webapi.c) against
 * what their standards say, the timers' deadline, and the console's
 * formatting. The checks themselves are JavaScript (tests/webapi/
 * conformance.js): each group runs in a fresh executor and returns the
 * checks that failed.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "txscan.h"

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *p = malloc((size_t)n + 1);
	if (fread(p, 1, (size_t)n, f) != (size_t)n)
		fail_msg("cannot read %s", path);
	p[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return p;
}

struct console_log {
	pthread_mutex_t mu;
	int lines;
	char text[20][8192];
};

static void on_console(const char *id, const char *level, const char *msg, size_t len, void *ud)
{
	(void)id;
	(void)len;
	struct console_log *c = ud;
	pthread_mutex_lock(&c->mu);
	if (c->lines < 20)
		snprintf(c->text[c->lines], sizeof c->text[0], "%s/%s", level, msg);
	c->lines++;
	pthread_mutex_unlock(&c->mu);
}

static txs_executor *make(const char *src, size_t len, uint32_t timeout_ms, struct console_log *log)
{
	txs_limits l;
	txs_limits_init(&l);
	l.timeout_ms = timeout_ms;
	txs_plugin_code c = {.id = "webapi", .version = "1", .filename = "conformance.js",
	                     .source = src, .source_len = len};
	txs_executor *ex = NULL;
	if (txs_executor_new(&ex, &c, &l, log ? on_console : NULL, log) != 0)
		fail_msg("load: %s", txs_last_error());
	return ex;
}

static txs_scan_result scan(txs_executor *ex, const char *tx)
{
	txs_scan_result r;
	assert_int_equal(txs_executor_scan(ex, tx, strlen(tx), &r), 0);
	return r;
}

/* Runs one group of tests/webapi/conformance.js in a fresh executor. */
static void group(const char *name)
{
	size_t len;
	char *src = read_file(TXS_TEST_DIR "/webapi/conformance.js", &len);
	txs_executor *ex = make(src, len, 2000, NULL);
	char tx[64];
	snprintf(tx, sizeof tx, "{\"t\":\"%s\"}", name);
	txs_scan_result r = scan(ex, tx);
	txs_executor_free(ex);
	free(src);
	if (r.status != TXS_STATUS_OK)
		fail_msg("%s: %s: %s", name, txs_status_name(r.status), r.error);
	if (strcmp(r.json, "[]") != 0)
		fail_msg("%s: failed checks: %s", name, r.json);
	txs_scan_result_clear(&r);
}

static void test_utf8_decode(void **s) { (void)s; group("utf8_decode"); }
static void test_utf8_encode(void **s) { (void)s; group("utf8_encode"); }
static void test_base64(void **s) { (void)s; group("base64"); }
static void test_structured_clone(void **s) { (void)s; group("clone"); }
static void test_events(void **s) { (void)s; group("events"); }
static void test_abort(void **s) { (void)s; group("abort"); }
static void test_crypto(void **s) { (void)s; group("crypto"); }
static void test_views(void **s) { (void)s; group("views"); }
static void test_timer_reentry(void **s) { (void)s; group("timer_reentry"); }
static void test_big_strings(void **s) { (void)s; group("big_strings"); }
static void test_timers(void **s) { (void)s; group("timers"); }
static void test_globals(void **s) { (void)s; group("globals"); }
static void test_polyfill(void **s) { (void)s; group("polyfill"); }

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A timer due after the deadline is a timeout, at once (no waiting); a
 * timer still pending when the handler settled never runs; an interval
 * that never lets the promise settle is stopped by the deadline. */
static void test_timer_deadline(void **state)
{
	(void)state;
	static const char src[] =
	    "let late = 0;\n"
	    "module.exports = { async scanTransaction(tx) {\n"
	    "  if (tx.t === 'late') await new Promise((r) => setTimeout(r, 5000));\n"
	    "  if (tx.t === 'forever') await new Promise(() => setInterval(() => {}, 1));\n"
	    "  if (tx.t === 'dropped') { setTimeout(() => { late++; }, 0); return late; }\n"
	    "  if (tx.t === 'throws') await new Promise(() => setTimeout(() => { throw new Error('in timer'); }, 1));\n"
	    "  return late;\n"
	    "}};\n";
	txs_executor *ex = make(src, strlen(src), 50, NULL);
	double t0 = now_ms();
	txs_scan_result r = scan(ex, "{\"t\":\"late\"}");
	double took = now_ms() - t0;
	assert_int_equal(r.status, TXS_STATUS_TIMEOUT);
	assert_true(took < 1000); /* not the 5 s it asked for */
	txs_scan_result_clear(&r);
	r = scan(ex, "{\"t\":\"forever\"}");
	assert_int_equal(r.status, TXS_STATUS_TIMEOUT);
	txs_scan_result_clear(&r);
	r = scan(ex, "{\"t\":\"dropped\"}");
	assert_int_equal(r.status, TXS_STATUS_OK);
	txs_scan_result_clear(&r);
	r = scan(ex, "{\"t\":\"count\"}");
	assert_int_equal(r.status, TXS_STATUS_OK);
	assert_string_equal(r.json, "0");
	txs_scan_result_clear(&r);
	r = scan(ex, "{\"t\":\"throws\"}");
	assert_int_equal(r.status, TXS_STATUS_ERROR);
	assert_non_null(strstr(r.error, "in timer"));
	txs_scan_result_clear(&r);
	txs_executor_free(ex);
}

/* Values printed as a developer console prints them. */
static void test_console_format(void **state)
{
	(void)state;
	static const char src[] =
	    "module.exports = { scanTransaction(tx) {\n"
	    "  const cyc = {n: 1}; cyc.self = cyc;\n"
	    "  console.log('s', 1, -0, 1n, null, undefined, Symbol('q'), [1, 'x'], {a: {b: {c: {d: 1}}}});\n"
	    "  console.log(cyc, new Map([['k', 1]]), new Set([2]), new Uint8Array([1, 2]), function f() {});\n"
	    "  console.error(new TypeError('boom'));\n"
	    "  console.log('%s=%d%% %o', 'n', 42.5, {k: 'v'}, 'rest');\n"
	    "  console.group('g'); console.warn('inner'); console.groupEnd(); console.log('outer');\n"
	    "  console.count(); console.count('x'); console.count(); console.countReset(); console.count();\n"
	    "  console.assert(1 === 1, 'silent'); console.assert(false, 'loud', {n: 1});\n"
	    "  console.table([{a: 1}, {a: 2, b: 'y'}]);\n"
	    "  console.dir({s: 'str'}); console.debug('dbg'); console.trace('here');\n"
	    "  console.time('t'); console.timeEnd('t');\n"
	    "  return 0;\n"
	    "}};\n";
	struct console_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
	txs_executor *ex = make(src, strlen(src), 1000, &log);
	txs_scan_result r = scan(ex, "{}");
	assert_int_equal(r.status, TXS_STATUS_OK);
	txs_scan_result_clear(&r);
	txs_executor_free(ex);
	assert_int_equal(log.lines, 17);
	assert_string_equal(log.text[0], "log/s 1 -0 1n null undefined Symbol(q) [ 1, 'x' ] "
	                                 "{ a: { b: { c: [Object] } } }");
	assert_string_equal(log.text[1], "log/{ n: 1, self: [Circular] } Map(1) { 'k' => 1 } "
	                                 "Set(1) { 2 } Uint8Array(2) [ 1, 2 ] [Function: f]");
	assert_non_null(strstr(log.text[2], "error/TypeError: boom\n    at scanTransaction ("));
	assert_non_null(strstr(log.text[2], "conformance.js:5:"));
	assert_string_equal(log.text[3], "log/n=42% { k: 'v' } rest");
	assert_string_equal(log.text[4], "log/g");
	assert_string_equal(log.text[5], "warn/  inner");
	assert_string_equal(log.text[6], "log/outer");
	assert_string_equal(log.text[7], "log/default: 1");
	assert_string_equal(log.text[8], "log/x: 1");
	assert_string_equal(log.text[9], "log/default: 2");
	assert_string_equal(log.text[10], "log/default: 1");
	assert_string_equal(log.text[11], "error/Assertion failed: loud { n: 1 }");
	assert_string_equal(log.text[12], "log/\u250c\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u252c\u2500\u2500\u2500\u252c\u2500\u2500\u2500\u2500\u2500\u2510\n"
	                                  "\u2502 (index) \u2502 a \u2502 b   \u2502\n"
	                                  "\u251c\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u253c\u2500\u2500\u2500\u253c\u2500\u2500\u2500\u2500\u2500\u2524\n"
	                                  "\u2502 0       \u2502 1 \u2502     \u2502\n"
	                                  "\u2502 1       \u2502 2 \u2502 'y' \u2502\n"
	                                  "\u2514\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2534\u2500\u2500\u2500\u2534\u2500\u2500\u2500\u2500\u2500\u2518");
	assert_string_equal(log.text[13], "log/{ s: 'str' }");
	assert_string_equal(log.text[14], "debug/dbg");
	assert_non_null(strstr(log.text[15], "error/Trace: here\n"));
	assert_non_null(strstr(log.text[16], "log/t: 0."));
}

/* A queueMicrotask callback that throws is reported on the console (it
 * does not fail the scan, as it would not fail a page); console.table's
 * columns pick and order the columns. */
static void test_console_more(void **state)
{
	(void)state;
	static const char src[] =
	    "module.exports = { async scanTransaction(tx) {\n"
	    "  queueMicrotask(() => { throw new RangeError('in microtask'); });\n"
	    "  await null;\n"
	    "  console.table([{a: 1, b: 2, c: 3}], ['c', 'a']);\n"
	    "  return 1;\n"
	    "}};\n";
	struct console_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
	txs_executor *ex = make(src, strlen(src), 1000, &log);
	txs_scan_result r = scan(ex, "{}");
	assert_int_equal(r.status, TXS_STATUS_OK);
	txs_scan_result_clear(&r);
	txs_executor_free(ex);
	assert_int_equal(log.lines, 2);
	/* the report comes two microtask turns later than the callback: after the table */
	assert_non_null(strstr(log.text[1], "error/Uncaught (in queueMicrotask) RangeError: in microtask\n"
	                                    "    at "));
	assert_non_null(strstr(log.text[0], "\u2502 (index) \u2502 c \u2502 a \u2502\n"));
	assert_non_null(strstr(log.text[0], "\u2502 0       \u2502 3 \u2502 1 \u2502\n"));
}

/* What the console takes from a plugin is bounded by what a line shows:
 * a string of 2^27 characters nested in an object, as a label, or as a
 * key is sliced in the VM (each was copied out whole, in native code the
 * watchdog cannot stop: ~1 GB for 2^28 characters); and console.table
 * with every key column taken keeps its Values column (its cells were
 * lost, and leaked). */
static void test_console_hostile_sizes(void **state)
{
	(void)state;
	static const char src[] =
	    "let big = 'x'.repeat(1 << 15); for (let i = 0; i < 12; i++) big = big + big;\n"
	    "const row = {}; for (let i = 0; i < 20; i++) row['k' + i] = i;\n"
	    "module.exports = { scanTransaction(tx) {\n"
	    "  console.log({ a: big });\n"
	    "  console.count(big);\n"
	    "  console.log({ [big.slice(0, 1 << 20)]: 1 });\n"
	    "  console.table([row, 'PRIM']);\n"
	    "  return big.length;\n"
	    "}};\n";
	struct console_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
	txs_executor *ex = make(src, strlen(src), 200, &log);
	txs_scan_result r = scan(ex, "{}");
	if (r.status != TXS_STATUS_OK)
		fail_msg("%s: %s", txs_status_name(r.status), r.error);
	assert_string_equal(r.json, "134217728");
	txs_scan_result_clear(&r);
	txs_executor_free(ex);
	assert_int_equal(log.lines, 4);
	assert_non_null(strstr(log.text[0], "log/{ a: 'xxxx"));
	assert_non_null(strstr(log.text[1], "log/xxxx"));
	if (!strstr(log.text[2], "log/{ xxxx"))
		fail_msg("line 3: %.80s", log.text[2]);
	assert_non_null(strstr(log.text[3], "Values"));
	assert_non_null(strstr(log.text[3], "'PRIM'"));
}

/* Only the names a plugin's source mentions are installed: a rule that
 * uses none of them pays nothing for them; one that names them gets them,
 * through a string too. */
static void test_installed_by_name(void **state)
{
	(void)state;
	static const char none[] =
	    "const name = String.fromCharCode(97, 116, 111, 98);\n" /* the 4-letter decoder */
	    "module.exports = { scanTransaction() {\n"
	    "  return [typeof globalThis[name], Object.getOwnPropertyNames(globalThis).includes(name)];\n"
	    "}};\n";
	static const char named[] =
	    "module.exports = { scanTransaction() {\n"
	    "  return [typeof globalThis['atob'], typeof globalThis['crypto']];\n"
	    "}};\n";
	txs_executor *ex = make(none, strlen(none), 1000, NULL);
	txs_scan_result r = scan(ex, "{}");
	assert_int_equal(r.status, TXS_STATUS_OK);
	assert_string_equal(r.json, "[\"undefined\",false]");
	txs_scan_result_clear(&r);
	txs_executor_free(ex);
	ex = make(named, strlen(named), 1000, NULL);
	r = scan(ex, "{}");
	assert_int_equal(r.status, TXS_STATUS_OK);
	assert_string_equal(r.json, "[\"function\",\"object\"]");
	txs_scan_result_clear(&r);
	txs_executor_free(ex);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_utf8_decode),     cmocka_unit_test(test_utf8_encode),
	    cmocka_unit_test(test_base64),          cmocka_unit_test(test_structured_clone),
	    cmocka_unit_test(test_events),          cmocka_unit_test(test_abort),
	    cmocka_unit_test(test_crypto),          cmocka_unit_test(test_views),
	    cmocka_unit_test(test_timer_reentry),
	    cmocka_unit_test(test_big_strings),
	    cmocka_unit_test(test_timers),
	    cmocka_unit_test(test_globals),         cmocka_unit_test(test_polyfill),
	    cmocka_unit_test(test_timer_deadline),  cmocka_unit_test(test_console_format),
	    cmocka_unit_test(test_console_more),
	    cmocka_unit_test(test_console_hostile_sizes),    cmocka_unit_test(test_installed_by_name),
	};
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
