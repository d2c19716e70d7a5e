/*
 * test_tally.c - the findings counters (src/host/tally.c): exact counts
 * when threads report the same new codes at once, the per-plugin cap on
 * distinct codes and the overflow by severity.
 */
#include "host/tally.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define THREADS 4
#define CODES 100 /* more than TXS_MAX_CODES_PER_PLUGIN */
#define ROUNDS 2000

static tally t;

static void *adder(void *arg)
{
	(void)arg;
	char code[32];
	for (int r = 0; r < ROUNDS; r++)
		for (int c = 0; c < CODES; c++) {
			int n = snprintf(code, sizeof code, "CODE_%d", c);
			tally_add(&t, code, (size_t)n, c % 2 ? TXS_SEVERITY_HIGH : TXS_SEVERITY_LOW);
		}
	return NULL;
}

static void test_concurrent_counts(void **state)
{
	(void)state;
	tally_init(&t);
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, adder, NULL), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	txs_finding_count rows[2 * CODES];
	size_t n = tally_rows(&t, "p", rows, 2 * CODES, 0);
	uint64_t named = 0, over = 0;
	size_t codes = 0;
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(rows[i].plugin, "p");
		if (rows[i].code[0]) {
			codes++;
			named += rows[i].count;
			assert_int_equal(rows[i].count, THREADS * ROUNDS); /* one severity per code */
		} else {
			over += rows[i].count;
		}
	}
	assert_int_equal(codes, TXS_MAX_CODES_PER_PLUGIN);
	assert_int_equal(named + over, (uint64_t)THREADS * ROUNDS * CODES);
	assert_int_equal(over, (uint64_t)THREADS * ROUNDS * (CODES - TXS_MAX_CODES_PER_PLUGIN));
	tally_fini(&t);
}

static void test_rows_past_cap(void **state)
{
	(void)state;
	tally x;
	tally_init(&x);
	tally_add(&x, "A_LONGER", 1, TXS_SEVERITY_INFO); /* counted as "A" */
	tally_add(&x, "A", 1, TXS_SEVERITY_INFO);
	tally_add(&x, "B", 1, TXS_SEVERITY_CRITICAL);
	txs_finding_count one[1];
	assert_int_equal(tally_rows(&x, "q", one, 1, 0), 2); /* tells how many there are */
	assert_string_equal(one[0].code, "A");
	assert_int_equal(one[0].count, 2);
	assert_int_equal(tally_rows(&x, "q", NULL, 0, 5), 7);
	tally_fini(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_concurrent_counts),
	    cmocka_unit_test(test_rows_past_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
