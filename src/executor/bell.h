/*
 * bell.h - one wake-up word shared by the executors of a host.
 *
 * A fan-out queues a scan on every plugin's executor. Waking eight sleeping
 * executor threads one condition variable at a time costs the submitting
 * thread eight futex calls in a row, each a trip through the hypervisor on
 * a paravirtualised guest. Executors that share a bell sleep on one futex
 * word instead, and the host rings it once after queueing all the scans:
 * one call wakes them all (BENCHMARKS.md section 15). A ring wakes every
 * sleeper; one with nothing queued looks at its queue and sleeps again.
 *
 * The waiter reads the sequence (txs_bell_seq) while it still holds the
 * lock under which it found its queue empty, then sleeps unless the
 * sequence moved: a ring after that read is never lost.
 */
#ifndef TXS_BELL_H
#define TXS_BELL_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct txs_bell {
	atomic_uint seq;      /* bumped by every ring */
	atomic_int sleepers;  /* threads in txs_bell_wait: a ring with none makes no call */
} txs_bell;

void txs_bell_init(txs_bell *b);

/* Wakes every thread asleep on b. */
void txs_bell_ring(txs_bell *b);

uint32_t txs_bell_seq(txs_bell *b);

/* Sleeps until b rings after seq was read, or until deadline_ns
 * (txs_now_ns() clock; 0 for none). It may return early. */
void txs_bell_wait(txs_bell *b, uint32_t seq, uint64_t deadline_ns);

/* ---- executors on a bell (src/executor.c; for the host) ---------------- */

#include <stdbool.h>
#include <stddef.h>

typedef struct txs_executor txs_executor;
typedef struct txs_scan_result txs_scan_result;

/* From now on ex's serving thread sleeps on b (which must outlive ex). */
void txs_executor_use_bell(txs_executor *ex, txs_bell *b);

/* txs_executor_submit, except that when ex sleeps on a bell it is not
 * woken: *ring_due is set, and the caller rings the bell once for all the
 * scans it queued. */
int txs_executor_submit_quiet(txs_executor *ex, const char *tx, size_t len,
                              void (*cb)(txs_scan_result *, void *), void *userdata,
                              bool *ring_due);

/* A transaction's text that the executors of one fan-out share: one copy
 * instead of one per plugin, freed by whichever lets go of it last. */
typedef struct txs_shared_text txs_shared_text;

/* A copy of tx with one count (the caller's); NULL when out of memory. */
txs_shared_text *txs_shared_text_new(const char *tx, size_t len);
void txs_shared_text_release(txs_shared_text *text);

/* txs_executor_submit_quiet of text's transaction: the queued scan holds
 * a count of text instead of a copy. */
int txs_executor_submit_shared(txs_executor *ex, txs_shared_text *text,
                               void (*cb)(txs_scan_result *, void *), void *userdata,
                               bool *ring_due);

/* ---- an executor whose serving thread feeds itself ------------------- *
 * An engine process (src/isolate/child.c) has one source of scans, its
 * channel to the host. Rather than a reader thread that wakes the serving
 * thread for each frame (two wake-ups per scan, the second a hand-off
 * between threads), the serving thread reads the channel itself whenever
 * its queue is empty: wait(ud, deadline_ns) may block until input comes,
 * and submits what it reads with a non-NULL ring_due (the thread is
 * awake: nothing to wake). Every other submission, and the executor's
 * stop, call kick(ud), which must make a blocked or later wait return at
 * once (an eventfd the wait polls). deadline_ns is 0, or when the executor
 * needs its thread back (a quarantine's retry). wait runs with no lock of
 * the executor held, on whichever lane serves at the time: one at a time.
 * started (may be NULL) is called on that lane as each scan starts, before
 * its text is read, with the scan's userdata and its start (txs_now_ns()
 * clock): scans queued together run as one batch, and a host that feeds
 * an engine process can still tell which scan runs (isolate/channel.h,
 * the progress page). building (may be NULL) is called on the serving
 * thread as it begins (on) and ends (!on) building an engine while scans
 * may wait for it: a rebuild or fresh realm inline, a realm built ahead in
 * idle time (not the standby's builds, which another thread makes). */
typedef struct txs_source {
	void (*wait)(void *ud, uint64_t deadline_ns);
	void (*kick)(void *ud);
	void (*started)(void *scan_ud, uint64_t start_ns, void *ud);
	void (*building)(bool on, void *ud);
	void *ud;
} txs_source;

/* From now on ex's serving thread waits in src->wait (copied; src's ud must
 * outlive ex). Not with a bell. */
void txs_executor_use_source(txs_executor *ex, const txs_source *src);

/* From now on a queued scan for which wanted(its userdata) is false when
 * its turn comes is answered TXS_STATUS_TIMEOUT without running: its
 * caller stopped waiting (the host's report deadline passed while it was
 * queued). Set before any scan is submitted. */
void txs_executor_skip_unwanted(txs_executor *ex, bool (*wanted)(void *userdata));

#endif
