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

/* What the server last read from its host (src/http/snapshot.h). */
typedef struct metrics_host {
	size_t n;
	const txs_plugin_info *plugins;
	const unsigned *degraded;      /* per plugin: nonzero = degraded */
	uint32_t in_flight;
	uint64_t console_dropped;
	double age_s;                  /* how old this reading is */
} metrics_host;

/* Renders every plugin of host (stats, latency histograms, restarts by
 * reason, queue depth) and http. 0 and *out (malloc'ed, NUL-terminated,
 * *len bytes) or -1 when the output would pass max_bytes. Pure: reads only
 * its arguments. */
int metrics_render(const metrics_host *host, const metrics_http *http, size_t max_bytes,
                   char **out, size_t *len);

/* Writes s as a Prometheus label value (escapes \, " and newline) into
 * dst (cap bytes, always NUL-terminated); returns dst. */
char *metrics_label(char *dst, size_t cap, const char *s);

#endif
