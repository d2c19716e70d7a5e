/*
 * tally.h - findings and verdicts counted as reports are built, for the
 * operators' metrics (txs_host_report_counts, txs_host_finding_counts).
 *
 * Counting sits on the scan path, so it takes no lock: every counter is a
 * relaxed atomic, a plugin's codes are looked up without a lock in a table
 * that only grows, and the mutex is taken only to add a code the plugin
 * never reported before. A plugin that invents codes cannot grow the table
 * (or the metrics page) without bound: past TXS_MAX_CODES_PER_PLUGIN
 * distinct codes, its findings are counted by severity only, as overflow.
 */
#ifndef TXS_HOST_TALLY_H
#define TXS_HOST_TALLY_H

#include "findings.h"
#include "txscan.h"

#include <pthread.h>
#include <stdatomic.h>

#define TALLY_SEVERITIES (TXS_SEVERITY_CRITICAL + 1)

typedef struct tally_code {
	char code[FINDINGS_MAX_CODE + 1];
	_Atomic uint64_t n[TALLY_SEVERITIES];
} tally_code;

/* One plugin's findings by code and severity. */
typedef struct tally {
	pthread_mutex_t mu;        /* serialises adding a code */
	_Atomic uint32_t ncodes;   /* codes[0..ncodes) are published (release) */
	tally_code *codes;         /* TXS_MAX_CODES_PER_PLUGIN, allocated on first use */
	_Atomic uint64_t overflow[TALLY_SEVERITIES];
} tally;

void tally_init(tally *t);
void tally_fini(tally *t);

/* Counts one finding; any thread. */
void tally_add(tally *t, const char *code, size_t code_len, txs_severity severity);

/* Appends t's nonzero counts for plugin to out (at most cap rows kept);
 * returns the rows there are (which may pass cap). */
size_t tally_rows(const tally *t, const char *plugin, txs_finding_count *out, size_t cap,
                  size_t at);

#endif
