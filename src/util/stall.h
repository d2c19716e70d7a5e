/*
 * stall.h - time the whole process was not running: SIGSTOP, a VM freeze, a
 * swap storm, a debugger pause. Such time is not a plugin's fault, so
 * deadlines that measure wall-clock time subtract it.
 *
 * One observer (the executor's watcher thread, which wakes every few
 * milliseconds) reports each wake-up that came far later than it asked
 * for; the total only grows. A thread merely starved of a core for that
 * long on an overloaded machine is counted too: deadlines then get longer,
 * never shorter. Any thread may read the total.
 */
#ifndef TXS_STALL_H
#define TXS_STALL_H

#include <stdint.h>

/* A wake-up later than asked by at least this much counts as a stall. */
#define TXS_STALL_MIN_NS (100 * 1000000ull)

/* Total stall time so far (txs_now_ns() units). */
uint64_t txs_stall_total_ns(void);

/* The observer asked to wake at asked_ns and woke at woke_ns. */
void txs_stall_observe(uint64_t asked_ns, uint64_t woke_ns);

#endif
