/*
 * worker_http.c - the worker's metrics endpoint (see worker_http.h).
 *
 * Everything is read on the exporter's thread when a scrape comes: the
 * stream's figures from the copy the worker loop publishes (a mutex held
 * for a memcpy), the findings and verdicts from the host's lock-free
 * counters. /readyz asks txs_host_ready, which reads every instance's
 * stats: a scrape during a plugin restart may wait for it.
 */
#include "worker_http.h"
#include "cli.h"
#include "http/exporter.h"
#include "http/metrics.h"
#include "stream/stream.h"
#include "txscan.h"

#include <stdlib.h>

#define WORKER_METRICS_MAX_BYTES (16u << 20)

struct worker_http {
	exporter *ex;
	struct txs_host *host;
	struct stream_live *live;
};

static int counts_take(struct txs_host *host, metrics_counts *c, txs_finding_count **rows)
{
	size_t cap = 0, n;
	*rows = NULL;
	txs_host_report_counts(host, &c->reports);
	while ((n = txs_host_finding_counts(host, *rows, cap)) > cap) {
		free(*rows);
		cap = n + 16;
		*rows = calloc(cap, sizeof **rows);
		if (!*rows)
			return -1;
	}
	c->findings = *rows;
	c->nfindings = n;
	return 0;
}

static bool is_ready(const char **why, void *ud)
{
	struct worker_http *wh = ud;
	struct stream_stats s;
	stream_live_get(wh->live, &s);
	if (!s.connected) {
		*why = "not connected to Redis";
		return false;
	}
	if (!txs_host_ready(wh->host)) {
		*why = "a plugin is not running (txscan plugins, or the worker's log, says which)";
		return false;
	}
	return true;
}

static int render(char **text, size_t *len, void *ud)
{
	struct worker_http *wh = ud;
	struct stream_stats s;
	stream_live_get(wh->live, &s);
	const char *why;
	metrics_worker w = {
	    .read = s.read, .claimed = s.claimed, .acked = s.acked, .written = s.written,
	    .duplicates = s.duplicates, .dead = s.dead, .retried = s.retried,
	    .reconnects = s.reconnects, .in_flight = s.in_flight, .window = s.window, .pending = s.pending,
	    .lag = s.lag, .connected = s.connected, .ready = is_ready(&why, wh),
	};
	metrics_counts c;
	txs_finding_count *rows;
	int rc = counts_take(wh->host, &c, &rows);
	if (!rc)
		rc = metrics_render_worker(&w, &c, WORKER_METRICS_MAX_BYTES, text, len);
	free(rows);
	return rc;
}

int worker_http_start(struct worker_http **out, const char *addr, struct txs_host *host,
                      struct stream_live *live)
{
	char err[1024];
	struct worker_http *wh = calloc(1, sizeof *wh);
	*out = NULL;
	if (!wh) {
		cli_error("worker: out of memory");
		return -1;
	}
	*wh = (struct worker_http){.host = host, .live = live};
	exporter_callbacks cb = {.metrics = render, .ready = is_ready, .userdata = wh};
	if (exporter_start(&wh->ex, addr, "--metrics-listen", &cb, err, sizeof err)) {
		cli_error("worker: %s", err);
		free(wh);
		return -1;
	}
	*out = wh;
	return 0;
}

const char *worker_http_address(const struct worker_http *wh)
{
	return exporter_address(wh->ex);
}

void worker_http_stop(struct worker_http *wh)
{
	if (!wh)
		return;
	exporter_free(wh->ex);
	free(wh);
}
