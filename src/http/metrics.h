/*
 * metrics.h - Prometheus text exposition (format 0.0.4) of a txscan host
 * and of the HTTP server's own counters, for GET /metrics.
 */
#ifndef TXS_METRICS_H
#define TXS_METRICS_H

#include "txscan.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The server's counters, as plain numbers (a snapshot the server takes). */
typedef struct metrics_http {
	size_t nroutes;
	const char *const *routes;     /* handler label of each route */
	size_t ncodes;
	const int *codes;              /* status codes counted */
	const uint64_t *requests;      /* [route * ncodes + code] */
	const uint64_t *duration;      /* [route * TXS_LATENCY_BUCKETS + bucket], not cumulative */
	const double *duration_sum_ms; /* [route] */
	uint32_t in_flight;            /* HTTP requests being handled */
	uint32_t scans_in_flight;      /* of which scan/batch requests */
	uint32_t max_inflight;
	uint64_t log_suppressed;       /* error log lines dropped by the rate limit */
	double start_time;             /* Unix seconds */
	bool ready;
	bool draining;
	uint64_t connections;          /* open now */
	uint32_t max_connections;
	uint64_t closed_header, closed_body, closed_idle; /* closed by a phase deadline */
	size_t nauth;                  /* refused attempts by reason (auth.h); [0] is "ok" */
	const char *const *auth_reasons;
	const uint64_t *auth_failures;
} metrics_http;

/* Findings and verdicts counted by the host (txs_host_finding_counts,
 * txs_host_report_counts). */
typedef struct metrics_counts {
	txs_report_counts reports;
	const txs_finding_count *findings;
	size_t nfindings;
} metrics_counts;

/* What the server last read from its host (src/http/snapshot.h). */
typedef struct metrics_host {
	size_t n;
	const txs_plugin_info *plugins;
	const unsigned *degraded;      /* per plugin: nonzero = degraded */
	uint32_t in_flight;
	uint64_t console_dropped;
	double age_s;                  /* how old this reading is */
	metrics_counts counts;
} metrics_host;

/* Renders every plugin of host (stats, latency histograms, restarts by
 * reason, queue depth) and http. 0 and *out (malloc'ed, NUL-terminated,
 * *len bytes) or -1 when the output would pass max_bytes. Pure: reads only
 * its arguments. */
int metrics_render(const metrics_host *host, const metrics_http *http, size_t max_bytes,
                   char **out, size_t *len);

/* A `txscan worker`'s own figures (src/stream/stream.h, stream_stats). */
typedef struct metrics_worker {
	uint64_t read, claimed, acked, written, duplicates, dead, retried, reconnects;
	uint64_t in_flight;     /* entries read and not yet acked by this worker */
	uint64_t window;        /* in_flight's bound now (the paced window) */
	int64_t pending;        /* the group's pending entries (XINFO GROUPS); -1 unknown */
	int64_t lag;            /* entries not yet delivered to the group; -1 unknown */
	bool connected;
	bool ready;             /* connected and every plugin running */
} metrics_worker;

/* The worker's page: its figures, the host's counts and the process
 * collector. As metrics_render. */
int metrics_render_worker(const metrics_worker *w, const metrics_counts *counts,
                          size_t max_bytes, char **out, size_t *len);

/* Writes s as a Prometheus label value (escapes \, " and newline) into
 * dst (cap bytes, always NUL-terminated); returns dst. */
char *metrics_label(char *dst, size_t cap, const char *s);

#endif
