/*
 * bell.c - see bell.h. Linux futex on the sequence word.
 */
#define _GNU_SOURCE
#include "bell.h"

#include "util/clock.h"

#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

void txs_bell_init(txs_bell *b)
{
	atomic_init(&b->seq, 0);
	atomic_init(&b->sleepers, 0);
}

void txs_bell_ring(txs_bell *b)
{
	/* seq_cst on both sides: either this load sees the sleeper, or the
	 * sleeper's futex call sees the new sequence and does not sleep */
	atomic_fetch_add(&b->seq, 1);
	if (atomic_load(&b->sleepers))
		syscall(SYS_futex, &b->seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

uint32_t txs_bell_seq(txs_bell *b)
{
	return atomic_load(&b->seq);
}

void txs_bell_wait(txs_bell *b, uint32_t seq, uint64_t deadline_ns)
{
	struct timespec rel, *timeout = NULL;
	if (deadline_ns) {
		uint64_t now = txs_now_ns();
		if (now >= deadline_ns)
			return;
		rel = txs_timespec(deadline_ns - now);
		timeout = &rel;
	}
	atomic_fetch_add(&b->sleepers, 1);
	syscall(SYS_futex, &b->seq, FUTEX_WAIT_PRIVATE, seq, timeout, NULL, 0);
	atomic_fetch_sub(&b->sleepers, 1);
}
