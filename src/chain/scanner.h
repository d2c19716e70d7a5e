/*
 * scanner.h - scans the transactions of a block with a txs_host and writes
 * one report line each, in block order, each carrying the chain id and the
 * block; then flushes. Also writes the "removed" lines of a reorg.
 * One thread calls it; the host's threads deliver into it.
 */
#ifndef TXS_CHAIN_SCANNER_H
#define TXS_CHAIN_SCANNER_H

#include "chain/eth.h"
#include "txscan.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

struct scan_totals {
	uint64_t reports, removed, incomplete, input_errors, failing;
};

struct scanner;

int scanner_new(struct scanner **out, txs_host *host, FILE *fp, uint64_t chain_id,
                txs_severity fail_on);
void scanner_free(struct scanner *s);

/* Scans every object of txs (as plugins see them) and writes the reports
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
