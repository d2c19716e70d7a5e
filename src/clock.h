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
#include <stdint.h>
#include <time.h>

static inline uint64_t txs_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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

#endif
