/*
 * scanner.h - scans the transactions of a block with a txs_host and writes
 * one report line each, in block order, each carrying the chain id and the
 * block; then flushes. Blocks may be pipelined: the scans of the next
 * blocks run while the reports of the first are written. Also writes the "removed" lines of a reorg.
 * One thread calls it; the host's threads deliver into it.
 */
#ifndef TXS_CHAIN_SCANNER_H
#define TXS_CHAIN_SCANNER_H

#include "chain/eth.h"
#include "txscan.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

enum { SCANNER_WINDOW = 512 }; /* scans in flight at most */

struct scan_totals {
	uint64_t reports, removed, incomplete, input_errors, failing;
};

struct scanner;

int scanner_new(struct scanner **out, txs_host *host, FILE *fp, uint64_t chain_id,
                txs_severity fail_on);
void scanner_free(struct scanner *s);

/* Submits every object of txs (as plugins see them) for scanning; h is
 * their block (NULL: pending, "block": null). Up to 128 blocks may be
 * submitted before their reports are written; while more than 512 scans
 * are in flight, the oldest reports are written first. -1 when 128 blocks
 * are pending. */
int scanner_submit(struct scanner *s, const json_t *txs, const struct eth_header *h);
/* Writes the reports of the oldest submitted block (waiting for them) and
 * flushes. -1 on a write error (errno). */
int scanner_write_next(struct scanner *s);
/* Waits for every report in flight and drops them unwritten (a stop, a
 * reorg): the blocks they belong to were not finished. */
void scanner_discard(struct scanner *s);
/* Scans submitted and not yet written. */
uint64_t scanner_in_flight(const struct scanner *s);

/* scanner_submit + scanner_write_next: one block, scanned and written.
 * Scans every object of txs (as plugins see them) and writes the reports
 * in order; h is their block (NULL: pending, "block": null). Returns 0
 * once every line is written and flushed; -1 on a write error (errno). */
int scanner_txs(struct scanner *s, const json_t *txs, const struct eth_header *h);

/* {"removed":true,"tx":HASH,"chainId":N,"block":{...}}, not flushed. */
int scanner_removed(struct scanner *s, const char *tx_hash, const struct eth_header *h);

/* A line of text as is (an error line, say), not flushed. */
int scanner_line(struct scanner *s, const char *json);

int scanner_flush(struct scanner *s);

const struct scan_totals *scanner_totals(const struct scanner *s);

#endif
