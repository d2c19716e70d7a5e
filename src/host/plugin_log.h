/*
 * plugin_log.h - what the host tells operators about a plugin's failed
 * scans (docs/logging.md): one "plugin_failure" log line per scan it did
 * not answer "ok", rate-limited per plugin (the count held back is said on
 * the next line that passes); its last error; and its failures in the last
 * minute by status, in a ring of per-second buckets. Only failed scans
 * come here: an ok scan costs nothing. Console lines are tagged with their
 * scan's tx and line here too.
 */
#ifndef TXS_PLUGIN_LOG_H
#define TXS_PLUGIN_LOG_H

#include "txscan.h"
#include "util/log.h"

#include <jansson.h>
#include <pthread.h>

#define PLOG_PER_S 10   /* failure lines per plugin per second */
#define PLOG_SECONDS 60 /* the window of failures_minute */

typedef struct plog {
	pthread_mutex_t mu; /* guards ring and last */
	txs_log_limit limit;
	struct plog_bucket {
		int64_t sec; /* which second it counts (monotonic) */
		uint32_t n[TXS_FAILURE_STATUSES];
	} ring[PLOG_SECONDS];
	txs_plugin_failure last;
} plog;

/* One scan as the report has it. */
typedef struct plog_scan {
	const char *plugin, *version;
	uint64_t generation;
	txs_status status;
	json_t *tx;    /* the report's tx (borrowed); NULL: none */
	uint64_t line; /* the input's line; 0: none */
	const char *error;
	double ms;
} plog_scan;

void plog_init(plog *l);
void plog_destroy(plog *l);

/* Counts and remembers one failed scan (status not OK, not STOPPED); returns
 * its log line (malloc'ed, *len bytes) unless the rate limit or the log
 * level holds it back (NULL). Any thread. */
char *plog_failure(plog *l, const plog_scan *s, size_t *len);

/* Fills info's last_error and failures_minute. Any thread. */
void plog_read(plog *l, txs_plugin_info *info);

/* The first line of an error (a plugin's message and stack) into first,
 * and the first stack frame's location (file:line:column) into at ("" if
 * none); each cut to its cap. */
void plog_split_error(const char *err, char *first, size_t fcap, char *at, size_t acap);

/* A console line of plugin as a log line, tagged with tx and line (the scan
 * that printed it) when given; NULL when the level holds it back. */
char *plog_console_line(const char *plugin, const char *level, const char *msg, size_t len,
                        json_t *tx, uint64_t line, size_t *out_len);

/* The name of index i of failures_minute ("error", ...). */
const char *plog_status_name(int i);

#endif
