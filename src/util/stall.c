/* stall.c - see stall.h. */
#include "stall.h"

#include <stdatomic.h>

static _Atomic uint64_t total;

uint64_t txs_stall_total_ns(void)
{
	return atomic_load_explicit(&total, memory_order_relaxed);
}

void txs_stall_observe(uint64_t asked_ns, uint64_t woke_ns)
{
	if (woke_ns > asked_ns && woke_ns - asked_ns >= TXS_STALL_MIN_NS)
		atomic_fetch_add_explicit(&total, woke_ns - asked_ns, memory_order_relaxed);
}
