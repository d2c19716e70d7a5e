/*
 * clock.h - the one clock txscan measures and waits with: CLOCK_MONOTONIC.
 *
 * Every deadline is a monotonic nanosecond count, so every condition
 * variable that waits for one must be created with txs_cond_init(): a
 * default (CLOCK_REALTIME) condvar given a monotonic deadline returns at
 * once, and its waiter spins.
 */
#ifndef TXS_CLOCK_H
#define TXS_CLOCK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static inline uint64_t txs_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline double txs_now_ms(void)
{
	return (double)txs_now_ns() / 1e6;
}

static inline struct timespec txs_timespec(uint64_t ns)
{
	return (struct timespec){.tv_sec = (time_t)(ns / 1000000000ull),
	                         .tv_nsec = (long)(ns % 1000000000ull)};
}

/* A condition variable whose timed waits take txs_now_ns() deadlines. */
static inline int txs_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	int rc = pthread_condattr_init(&ca);
	if (rc)
		return rc;
	rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!rc)
		rc = pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
	return rc;
}

/* Wall-clock now as the JSON log lines print it, UTC with milliseconds:
 * 2026-12-02T02:34:10.123Z. cap: at least 25. */
static inline void txs_utc_timestamp(char *dst, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(dst, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(dst + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

#endif
