/*
 * eth.h - Ethereum JSON-RPC shapes: strict checks of the node's hex fields,
 * and fetching blocks (with their receipts) and transactions as the objects
 * plugins see: the node's transaction plus "receipt" and "block".
 *
 * Everything from the node is checked before it is used: block numbers,
 * hashes, parent hashes and timestamps are parsed strictly; every
 * transaction must belong to its block (blockHash, blockNumber) and have a
 * 32-byte hash; receipts must match their transactions one for one.
 * Not thread-safe: one thread per rpc_client.
 */
#ifndef TXS_CHAIN_ETH_H
#define TXS_CHAIN_ETH_H

#include "chain/rpc.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

enum { ETH_HASH_LEN = 66 }; /* "0x" + 64 hex digits */

/* A quantity: "0x" then 1 to 16 hex digits (a uint64). */
bool eth_quantity(const json_t *v, uint64_t *out);
/* "0x" + exactly 2*bytes hex digits. */
bool eth_fixed_hex(const json_t *v, size_t bytes);
/* "0x" + an even number of hex digits. */
bool eth_data(const json_t *v);

struct eth_header {
	uint64_t number, timestamp;
	char hash[ETH_HASH_LEN + 1], parent[ETH_HASH_LEN + 1];
};

struct eth_block {
	struct eth_header h;
	json_t *txs; /* array of transaction objects for plugins (owned) */
};

void eth_block_clear(struct eth_block *b);

/* What one chain connection knows about its node. */
struct eth_chain {
	rpc_client *rpc;
	uint64_t chain_id;
	bool receipts;           /* attach receipts (--no-receipts: false) */
	bool block_receipts_off; /* the node lacks eth_getBlockReceipts: one call per tx */
	char err[512];
};

/* eth_chainId into c->chain_id. */
int eth_chain_id(struct eth_chain *c);

/* The header of block `number`, or of "latest" when latest is true.
 * *found is false when the node has no such block yet. */
int eth_header_get(struct eth_chain *c, bool latest, uint64_t number, struct eth_header *h,
                   bool *found);

/* Up to n consecutive blocks from `first` in one batch (and their receipts
 * in a second), in order; *got stops short at the first block the node
 * does not have yet. out[0..*got) are filled in (eth_block_clear each). */
int eth_blocks_get(struct eth_chain *c, uint64_t first, size_t n, struct eth_block *out,
                   size_t *got);

/* One transaction by hash, as plugins see it; *block_out gets its block's
 * header (zeroed, with *pending true, for a transaction not mined yet).
 * *tx NULL with 0 returned: the node does not know it. */
int eth_tx_get(struct eth_chain *c, const char *hash, json_t **tx, struct eth_header *block_out,
               bool *pending);

#endif
