/*
 * checkpoint.h - the follower's memory of the canonical chain: the last
 * blocks it has passed (number, hash, parent, timestamp, and the hashes of
 * the transactions it reported from each), newest last, bounded by the
 * deepest reorg it can undo. Saved as a JSON file, atomically.
 */
#ifndef TXS_CHAIN_CHECKPOINT_H
#define TXS_CHAIN_CHECKPOINT_H

#include "chain/eth.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wblock {
	struct eth_header h;
	bool reported;  /* false: a block before the start, only known for its hash */
	size_t ntx;
	char (*txs)[ETH_HASH_LEN + 1];
};

struct window {
	uint64_t chain_id;
	size_t n, cap;        /* cap = the reorg depth kept + 1 */
	struct wblock *b;     /* b[n-1] is the tip */
};

int window_init(struct window *w, uint64_t chain_id, size_t max_reorg);
void window_free(struct window *w);
/* The newest block, or NULL. */
struct wblock *window_tip(struct window *w);
/* Appends a block (the oldest falls off past cap). txs: the objects the
 * block's reports came from (their "hash"), or NULL. */
int window_push(struct window *w, const struct eth_header *h, bool reported, const json_t *txs);
void window_pop(struct window *w);

/* Writes the window to path: path.tmp, fsync, rename, fsync of the folder.
 * Returns 0 or -1 with err set. */
int checkpoint_save(const struct window *w, const char *path, char *err, size_t errlen);
/* Reads path into w (window_init'ed): 1 loaded, 0 no such file, -1 a bad
 * file or another chain (err says which). */
int checkpoint_load(struct window *w, const char *path, char *err, size_t errlen);

#endif
