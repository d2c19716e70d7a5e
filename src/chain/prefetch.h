/*
 * prefetch.h - one thread, with its own connection to the node, that
 * fetches the next batch of blocks while the follower scans the current
 * one. At most one batch is fetched ahead; what it fetched is checked by
 * the follower like any other block (parent hashes), so a reorg in
 * between costs a wasted fetch, never a wrong report.
 * prefetch_* are called from one thread (the follower's).
 */
#ifndef TXS_CHAIN_PREFETCH_H
#define TXS_CHAIN_PREFETCH_H

#include "chain/eth.h"

struct prefetch;

/* A thread and a connection like proto's (options, receipts, abort flag). */
int prefetch_new(struct prefetch **out, const struct eth_chain *proto, char *err, size_t errlen);
/* Stops and joins the thread (a fetch in flight ends at the abort flag or
 * its timeout); drops what it fetched. NULL is fine. */
void prefetch_free(struct prefetch *p);
/* Starts fetching blocks [from, from + n) (n <= 64), dropping any earlier
 * result. */
void prefetch_start(struct prefetch *p, uint64_t from, size_t n);
/* Waits for the fetch in flight. When it was of blocks from `from`, at
 * most n of them: moves them into out (*got), copies its message into err
 * and returns its eth_blocks_get result. Otherwise drops it and returns 1
 * (fetch them yourself). */
int prefetch_take(struct prefetch *p, uint64_t from, size_t n, struct eth_block *out,
                  size_t *got, char *err, size_t errlen);

#endif
