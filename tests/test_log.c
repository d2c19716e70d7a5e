/*
 * test_log.c - the logger's lines, its rate limit, and the host's plugin
 * failure bookkeeping (src/util/log.c, src/host/plugin_log.c).
 */
#define _GNU_SOURCE
#include "host/plugin_log.h"
#include "util/log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* Waits until a new second of CLOCK_MONOTONIC_COARSE begins: the limit
 * counts per second, so a test starting near the end of one would see two. */
static void fresh_second(void)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &a);
	do
		clock_gettime(CLOCK_MONOTONIC_COARSE, &b);
	while (b.tv_sec == a.tv_sec);
}

static void test_limit_counts_what_it_holds_back(void **state)
{
	(void)state;
	txs_log_limit l;
	txs_log_limit_init(&l);
	uint64_t s;
	int passed = 0;
	fresh_second();
	for (int i = 0; i < 25; i++)
		if (txs_log_limit_pass(&l, 10, &s)) {
			passed++;
			assert_int_equal(s, 0);
		}
	assert_int_equal(passed, 10);
	assert_int_equal(txs_log_limit_suppressed(&l), 15);
	fresh_second();
	assert_true(txs_log_limit_pass(&l, 10, &s));
	assert_int_equal(s, 15); /* said once, on the next line that passes */
	assert_true(txs_log_limit_pass(&l, 10, &s));
	assert_int_equal(s, 0);
	txs_log_limit_destroy(&l);
}

static void test_split_error(void **state)
{
	(void)state;
	char first[64], at[64];
	plog_split_error("Error: boom 0xbb\nscanTransaction@p/thr/index.js:4:32\nglobal code@x.js:1:1",
	                 first, sizeof first, at, sizeof at);
	assert_string_equal(first, "Error: boom 0xbb");
	assert_string_equal(at, "p/thr/index.js:4:32");
	plog_split_error("TypeError: x\n    at scan (/srv/p/index.ts:12:7)", first, sizeof first, at,
	                 sizeof at);
	assert_string_equal(first, "TypeError: x");
	assert_string_equal(at, "/srv/p/index.ts:12:7");
	plog_split_error("timed out after 20 ms", first, sizeof first, at, sizeof at);
	assert_string_equal(first, "timed out after 20 ms");
	assert_string_equal(at, "");
	plog_split_error(NULL, first, sizeof first, at, sizeof at);
	assert_string_equal(first, "");
	/* a cut never splits a character: "é" is two bytes */
	char small[4];
	plog_split_error("aéé", small, sizeof small, at, sizeof at);
	assert_string_equal(small, "a\xc3\xa9");
	plog_split_error("aaé", small, sizeof small, at, sizeof at);
	assert_string_equal(small, "aa");
}

static void test_failures_counted_and_remembered(void **state)
{
	(void)state;
	plog l;
	plog_init(&l);
	txs_log_setup(TXS_LOG_JSON, TXS_LOG_INFO);
	json_t *tx = json_string("0xfeed");
	plog_scan sc = {.plugin = "p", .version = "1.0.0", .generation = 3,
	                .status = TXS_STATUS_TIMEOUT, .tx = tx, .line = 9,
	                .error = "timed out after 20 ms", .ms = 20.4567};
	size_t len;
	fresh_second();
	char *line = plog_failure(&l, &sc, &len);
	assert_non_null(line);
	assert_int_equal(strlen(line), len);
	json_t *o = json_loads(line, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "event")), "plugin_failure");
	assert_string_equal(json_string_value(json_object_get(o, "status")), "timeout");
	assert_string_equal(json_string_value(json_object_get(o, "tx")), "0xfeed");
	assert_int_equal(json_integer_value(json_object_get(o, "line")), 9);
	assert_int_equal(json_integer_value(json_object_get(o, "generation")), 3);
	assert_true(json_real_value(json_object_get(o, "ms")) == 20.457);
	assert_null(json_object_get(o, "at"));
	json_decref(o);
	free(line);
	sc.status = TXS_STATUS_ERROR;
	sc.error = "Error: later\nf@a.js:1:2";
	for (int i = 0; i < 20; i++) /* 9 more lines pass this second */
		free(plog_failure(&l, &sc, &len));
	sc.status = TXS_STATUS_STOPPED; /* not a plugin's failure: ignored */
	assert_null(plog_failure(&l, &sc, &len));
	txs_plugin_info info;
	plog_read(&l, &info);
	assert_int_equal(info.failures_minute[0], 20); /* error */
	assert_int_equal(info.failures_minute[1], 1);  /* timeout */
	assert_int_equal(info.failures_minute[4], 0);
	assert_int_equal(info.last_error.status, TXS_STATUS_ERROR);
	assert_string_equal(info.last_error.tx, "0xfeed");
	assert_string_equal(info.last_error.message, "Error: later");
	assert_true(info.last_error.time_ms > 1700000000000LL);
	assert_int_equal(txs_log_limit_suppressed(&l.limit), 11);
	json_decref(tx);
	plog_destroy(&l);
}

static void test_text_and_level(void **state)
{
	(void)state;
	size_t len;
	txs_log_setup(TXS_LOG_TEXT, TXS_LOG_WARN);
	assert_null(txs_log_line(TXS_LOG_INFO, "x", json_pack("{s:s}", "message", "hidden"), &len));
	char *line = txs_log_line(TXS_LOG_WARN, "plugin_failure",
	                          json_pack("{s:s, s:s, s:i}", "plugin", "p", "error", "Error: a b",
	                                    "line", 3), &len);
	assert_string_equal(line, "txscan: warning: plugin_failure: plugin=p error=\"Error: a b\" line=3\n");
	free(line);
	line = txs_log_line(TXS_LOG_ERROR, "error", json_pack("{s:s}", "message", "no\nplugins"), &len);
	assert_string_equal(line, "txscan: error: no plugins\n");
	free(line);
	txs_log_setup(TXS_LOG_JSON, TXS_LOG_DEBUG);
	line = txs_log_line(TXS_LOG_DEBUG, "console", json_pack("{s:s}", "message", "q\"\n"), &len);
	json_t *o = json_loads(line, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "message")), "q\"\n");
	assert_string_equal(json_string_value(json_object_get(o, "level")), "debug");
	assert_int_equal(line[len - 1], '\n');
	assert_ptr_equal(strchr(line, '\n'), line + len - 1); /* one line: the \n is escaped */
	json_decref(o);
	free(line);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_limit_counts_what_it_holds_back),
	    cmocka_unit_test(test_split_error),
	    cmocka_unit_test(test_failures_counted_and_remembered),
	    cmocka_unit_test(test_text_and_level),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
