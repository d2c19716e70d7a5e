/*
 * follow.h - follows an Ethereum chain's head and scans every transaction
 * of every canonical block, in block order, exactly once across restarts
 * (with a checkpoint), undoing reorgs with "removed" lines.
 */
#ifndef TXS_CHAIN_FOLLOW_H
#define TXS_CHAIN_FOLLOW_H

#include "chain/eth.h"
#include "chain/scanner.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct follow_opts {
	bool from_latest;        /* start at the head (minus confirmations) */
	uint64_t from;           /* else start at this block */
	bool has_to;
	uint64_t to;             /* stop after this block */
	uint32_t confirmations;  /* scan a block once it is this many blocks deep */
	const char *checkpoint;  /* NULL: none */
	uint32_t poll_ms;        /* between head polls when caught up */
	uint32_t max_reorg;      /* deepest reorg undone; past it: an error */
	uint32_t batch;          /* blocks per request while catching up (1-64) */
	/* Notices ("node unreachable", "reorg"), one line; may be NULL. */
	void (*notice)(const char *level, const char *msg, void *ud);
	void *notice_ud;
};

/* Runs until *stop is set (the block in hand is finished first), the
 * --to-block is passed (0), or a fatal error (-1, err says why). */
int follow_run(struct eth_chain *c, struct scanner *s, const struct follow_opts *o,
               volatile sig_atomic_t *stop, char *err, size_t errlen);

#endif
