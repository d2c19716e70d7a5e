/*
 * tally_cost.c - what counting findings costs on the scan path
 * (src/host/tally.c): ns per tally_add of a code already in the table,
 * with 1 or 8 codes in it, on one thread and on 2 threads sharing one
 * plugin's table (the worst case: the same cache lines). A report adds
 * one relaxed atomic for its verdict, measured the same way.
 *
 *   cmake --build build --target tally_cost && build/bench/tally_cost
 */
#define _GNU_SOURCE
#include "host/tally.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define N 20000000

static tally t;
static _Atomic uint64_t verdicts[6];
static int ncodes;
static const char *codes[8] = {"UNLIMITED_APPROVAL", "KNOWN_BAD_ADDRESS", "PERMIT_LONG_EXPIRY",
                               "CONTRACT_CREATION", "POISONED_ADDRESS", "LARGE_NATIVE_VALUE",
                               "NFT_APPROVAL_FOR_ALL", "APPROVAL_TO_BLOCKLISTED_SPENDER"};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *adds(void *arg)
{
	(void)arg;
	for (int i = 0; i < N; i++) {
		const char *c = codes[i % ncodes];
		tally_add(&t, c, strlen(c), TXS_SEVERITY_HIGH);
	}
	return NULL;
}

static void *verdict_adds(void *arg)
{
	(void)arg;
	for (int i = 0; i < N; i++)
		atomic_fetch_add_explicit(&verdicts[i % 6], 1, memory_order_relaxed);
	return NULL;
}

static double run(void *(*fn)(void *), int threads)
{
	pthread_t th[2];
	double t0 = now();
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, fn, NULL);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	return (now() - t0) / N * 1e9; /* per call on each thread */
}

int main(void)
{
	tally_init(&t);
	for (ncodes = 1; ncodes <= 8; ncodes += 7)
		for (int threads = 1; threads <= 2; threads++)
			printf("tally_add, %d code%s in the table, %d thread%s: %.1f ns per finding\n", ncodes,
			       ncodes == 1 ? "" : "s", threads, threads == 1 ? "" : "s", run(adds, threads));
	for (int threads = 1; threads <= 2; threads++)
		printf("verdict count, %d thread%s: %.1f ns per report\n", threads, threads == 1 ? "" : "s",
		       run(verdict_adds, threads));
	tally_fini(&t);
	return 0;
}
