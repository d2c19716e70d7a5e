/*
 * metrics.c - Prometheus text for GET /metrics.
 *
 * The text format wants every sample of one metric family in one group, so
 * each family walks the plugin snapshots the server took (off the HTTP
 * threads: src/http/snapshot.h). Latencies come from the
 * executors' own histogram (txs_latency_bounds_ms), made cumulative here and
 * converted to seconds, Prometheus' base unit. The output has a cap: a
 * metrics page that could grow without bound is a memory leak on a timer.
 */
#include "metrics.h"
#include "util/procstat.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sbuf {
	char *p;
	size_t len, cap, max;
	bool failed; /* over max or out of memory: the text is incomplete */
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool sb_reserve(sbuf *b, size_t more)
{
	if (b->failed)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	char *p = b->len + more + 1 <= cap ? realloc(b->p, cap) : NULL;
	if (!p) {
		b->failed = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void sb_printf(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !sb_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *metrics_label(char *dst, size_t cap, const char *s)
{
	size_t o = 0;
	for (; *s && o + 3 < cap; s++) {
		char c = *s;
		if (c == '\\' || c == '"' || c == '\n') {
			dst[o++] = '\\';
			c = c == '\n' ? 'n' : c;
		}
		dst[o++] = c;
	}
	dst[o] = '\0';
	return dst;
}

static void family(sbuf *b, const char *name, const char *type, const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* le="..." of bucket i, in seconds. */
static const char *le_text(char *dst, size_t cap, size_t i)
{
	double ms = txs_latency_bounds_ms()[i];
	if (i == TXS_LATENCY_BUCKETS - 1 || isinf(ms))
		snprintf(dst, cap, "+Inf");
	else
		snprintf(dst, cap, "%.6g", ms / 1000.0);
	return dst;
}

/* One histogram's samples; labels is `plugin="x"` or `handler="/v1/scan"`. */
static void histogram(sbuf *b, const char *name, const char *labels, const uint64_t *buckets,
                      double sum_ms)
{
	uint64_t acc = 0;
	char le[32];
	for (size_t i = 0; i < TXS_LATENCY_BUCKETS; i++) {
		acc += buckets[i];
		sb_printf(b, "%s_bucket{%s,le=\"%s\"} %llu\n", name, labels,
		          le_text(le, sizeof le, i), (unsigned long long)acc);
	}
	sb_printf(b, "%s_sum{%s} %.9g\n", name, labels, sum_ms / 1000.0);
	sb_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)acc);
}

/* ---- plugins --------------------------------------------------------------- */

typedef metrics_host snap;

#define EACH_PLUGIN(s, v) \
	for (const txs_plugin_info *v = (s)->plugins; v < (s)->plugins + (s)->n; v++)

static void u64_family(sbuf *b, const snap *s, const char *name, const char *type,
                       const char *help, size_t offset)
{
	family(b, name, type, help);
	EACH_PLUGIN(s, p) {
		uint64_t v;
		memcpy(&v, (const char *)&p->stats + offset, sizeof v);
		sb_printf(b, "%s{plugin=\"%s\"} %llu\n", name, p->id, (unsigned long long)v);
	}
}

static void plugin_info_family(sbuf *b, const snap *s)
{
	char ver[200];
	family(b, "txscan_plugin_info", "gauge", "Loaded plugins (value 1) with their version.");
	EACH_PLUGIN(s, p)
		sb_printf(b, "txscan_plugin_info{plugin=\"%s\",version=\"%s\"} 1\n", p->id,
		          metrics_label(ver, sizeof ver, p->version));
	family(b, "txscan_plugin_instances", "gauge", "Engines (threads) running the plugin.");
	EACH_PLUGIN(s, p)
		sb_printf(b, "txscan_plugin_instances{plugin=\"%s\"} %u\n", p->id, p->instances);
}

static void results_family(sbuf *b, const snap *s)
{
	family(b, "txscan_plugin_results_total", "counter",
	       "Scans answered by the plugin, by status (see DESIGN 5).");
	EACH_PLUGIN(s, p) {
		const txs_executor_stats *t = &p->stats;
		const struct { const char *status; uint64_t v; } rows[] = {
		    {"ok", t->ok},
		    {"error", t->errors},
		    {"timeout", t->timeouts},
		    {"memory", t->memory_stops},
		    {"overloaded", t->overloaded},
		    {"unavailable", t->unavailable},
		};
		for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
			sb_printf(b, "txscan_plugin_results_total{plugin=\"%s\",status=\"%s\"} %llu\n",
			          p->id, rows[i].status, (unsigned long long)rows[i].v);
	}
}

static void restarts_family(sbuf *b, const snap *s)
{
	family(b, "txscan_plugin_restarts_total", "counter",
	       "Engine replacements, by reason (scheduled = every restart_every scans, heap = "
	       "heap_restart_mb passed, killed = after a timeout or memory stop, manual = "
	       "restart request, reload = new code).");
	EACH_PLUGIN(s, p) {
		const txs_executor_stats *t = &p->stats;
		const struct { const char *reason; uint64_t v; } rows[] = {
		    {"scheduled", t->restarts_scheduled},
		    {"heap", t->restarts_heap},
		    {"killed", t->restarts_killed},
		    {"manual", t->restarts_manual},
		    {"reload", t->reloads},
		};
		for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
			sb_printf(b, "txscan_plugin_restarts_total{plugin=\"%s\",reason=\"%s\"} %llu\n",
			          p->id, rows[i].reason, (unsigned long long)rows[i].v);
	}
}

static void gauges_family(sbuf *b, const snap *s)
{
	family(b, "txscan_plugin_queue_depth", "gauge", "Commands waiting in the plugin's queues.");
	EACH_PLUGIN(s, p)
		sb_printf(b, "txscan_plugin_queue_depth{plugin=\"%s\"} %u\n", p->id,
		          p->stats.queue_depth);
	family(b, "txscan_plugin_queue_capacity", "gauge", "Capacity of each instance's queue.");
	EACH_PLUGIN(s, p)
		sb_printf(b, "txscan_plugin_queue_capacity{plugin=\"%s\"} %u\n", p->id,
		          p->limits.queue_capacity);
	family(b, "txscan_plugin_quarantined", "gauge",
	       "1 when an instance is quarantined after repeated failed starts.");
	EACH_PLUGIN(s, p)
		sb_printf(b, "txscan_plugin_quarantined{plugin=\"%s\"} %d\n", p->id,
		          p->stats.quarantined ? 1 : 0);
	family(b, "txscan_plugin_busy", "gauge", "1 when an instance is running a command now.");
	EACH_PLUGIN(s, p)
		sb_printf(b, "txscan_plugin_busy{plugin=\"%s\"} %d\n", p->id, p->stats.busy ? 1 : 0);
	family(b, "txscan_plugin_started", "gauge",
	       "0 for a plugin that did not load (--allow-partial; retried in the background).");
	EACH_PLUGIN(s, p)
		sb_printf(b, "txscan_plugin_started{plugin=\"%s\"} %d\n", p->id, p->started ? 1 : 0);
	family(b, "txscan_plugin_breaker_state", "gauge",
	       "Circuit breaker: 0 closed, 1 open (answers unavailable), 2 half-open (one trial).");
	EACH_PLUGIN(s, p)
		sb_printf(b, "txscan_plugin_breaker_state{plugin=\"%s\"} %u\n", p->id,
		          p->stats.breaker_state);
	family(b, "txscan_plugin_lanes_stuck", "gauge",
	       "Threads given up on that are still stuck in a native call.");
	EACH_PLUGIN(s, p)
		sb_printf(b, "txscan_plugin_lanes_stuck{plugin=\"%s\"} %u\n", p->id, p->stats.lanes_stuck);
	family(b, "txscan_plugin_degraded", "gauge",
	       "1 when the plugin is degraded (GET /readyz says why).");
	EACH_PLUGIN(s, p)
		sb_printf(b, "txscan_plugin_degraded{plugin=\"%s\"} %d\n", p->id,
		          s->degraded && s->degraded[p - s->plugins] ? 1 : 0);
}

/* A histogram per plugin from its stats: buckets (TXS_LATENCY_BUCKETS,
 * not cumulative) and their sum in ms, at these offsets. */
static void histogram_family(sbuf *b, const snap *s, const char *name, const char *help,
                             size_t buckets_offset, size_t sum_offset)
{
	char labels[96];
	family(b, name, "histogram", help);
	EACH_PLUGIN(s, p) {
		uint64_t buckets[TXS_LATENCY_BUCKETS];
		double sum_ms;
		memcpy(buckets, (const char *)&p->stats + buckets_offset, sizeof buckets);
		memcpy(&sum_ms, (const char *)&p->stats + sum_offset, sizeof sum_ms);
		snprintf(labels, sizeof labels, "plugin=\"%s\"", p->id);
		histogram(b, name, labels, buckets, sum_ms);
	}
}

static void latency_family(sbuf *b, const snap *s)
{
	histogram_family(b, s, "txscan_plugin_scan_duration_seconds",
	                 "Time one scan spent on the plugin's engine.",
	                 offsetof(txs_executor_stats, latency_buckets),
	                 offsetof(txs_executor_stats, latency_sum_ms));
	histogram_family(b, s, "txscan_plugin_recycle_duration_seconds",
	                 "Time the serving thread spent replacing the plugin's engine (restart, reload).",
	                 offsetof(txs_executor_stats, recycle_buckets),
	                 offsetof(txs_executor_stats, recycle_sum_ms));
}

static void plugin_families(sbuf *b, const snap *s)
{
	plugin_info_family(b, s);
	u64_family(b, s, "txscan_plugin_scans_total", "counter", "Scans run by the plugin.",
	           offsetof(txs_executor_stats, scans));
	results_family(b, s);
	latency_family(b, s);
	restarts_family(b, s);
	u64_family(b, s, "txscan_plugin_failed_starts_total", "counter",
	           "Engine builds that failed (code or init threw, or timed out).",
	           offsetof(txs_executor_stats, failed_starts));
	u64_family(b, s, "txscan_plugin_process_crashes_total", "counter",
	           "Engine processes that died on their own (process isolation).",
	           offsetof(txs_executor_stats, process_crashes));
	u64_family(b, s, "txscan_plugin_process_kills_total", "counter",
	           "Engine processes killed by the host: deadline, memory cap, protocol (process isolation).",
	           offsetof(txs_executor_stats, process_kills));
	u64_family(b, s, "txscan_plugin_process_resident_memory_bytes", "gauge",
	           "Resident memory of the plugin's engine processes now, summed over instances "
	           "(process isolation; 0 in thread isolation).",
	           offsetof(txs_executor_stats, process_rss_bytes));
	u64_family(b, s, "txscan_plugin_standby_swaps_total", "counter",
	           "Restarts served by an engine the standby lane had built in advance.",
	           offsetof(txs_executor_stats, standby_swaps));
	u64_family(b, s, "txscan_plugin_heap_readings_total", "counter",
	           "JavaScript heap statistics read for heap_restart_mb (each walks the heap).",
	           offsetof(txs_executor_stats, heap_readings));
	u64_family(b, s, "txscan_plugin_console_dropped_total", "counter",
	           "Console lines dropped by the per-plugin rate limit.",
	           offsetof(txs_executor_stats, console_dropped));
	u64_family(b, s, "txscan_plugin_breaker_opens_total", "counter",
	           "Times the plugin's circuit breaker opened (consecutive kills).",
	           offsetof(txs_executor_stats, breaker_opens));
	u64_family(b, s, "txscan_plugin_lanes_abandoned_total", "counter",
	           "Threads given up on, stuck in a native call past the backstop.",
	           offsetof(txs_executor_stats, lanes_abandoned));
	u64_family(b, s, "txscan_plugin_realm_restarts_total", "counter",
	           "Restarts served by a fresh realm in the engine's VM (no new VM).",
	           offsetof(txs_executor_stats, realm_restarts));
	u64_family(b, s, "txscan_plugin_realm_prepared_total", "counter",
	           "Of those, realms the idle serving thread had built ahead.",
	           offsetof(txs_executor_stats, realm_prepared));
	u64_family(b, s, "txscan_plugin_skipped_total", "counter",
	           "Queued scans answered timeout without running: their report deadline had passed.",
	           offsetof(txs_executor_stats, skipped));
	u64_family(b, s, "txscan_plugin_generation", "gauge",
	           "Generation of the newest engine (grows with every restart).",
	           offsetof(txs_executor_stats, generation));
	u64_family(b, s, "txscan_plugin_heap_bytes", "gauge", "Last sampled JavaScript heap size.",
	           offsetof(txs_executor_stats, heap_bytes));
	gauges_family(b, s);
}

/* ---- findings, verdicts, process ------------------------------------------ */

static void findings_family(sbuf *b, const metrics_counts *c)
{
	char code[300];
	family(b, "txscan_findings_total", "counter",
	       "Findings reported, by plugin, code and severity (a plugin's first "
	       "64 distinct codes; the rest in txscan_findings_overflow_total).");
	for (size_t i = 0; i < c->nfindings; i++) {
		const txs_finding_count *f = &c->findings[i];
		if (f->code[0])
			sb_printf(b, "txscan_findings_total{plugin=\"%s\",code=\"%s\",severity=\"%s\"} %llu\n",
			          f->plugin, metrics_label(code, sizeof code, f->code),
			          txs_severity_name(f->severity), (unsigned long long)f->count);
	}
	family(b, "txscan_findings_overflow_total", "counter",
	       "Findings whose code has no series of its own (the plugin already has 64 codes), "
	       "by plugin and severity.");
	for (size_t i = 0; i < c->nfindings; i++) {
		const txs_finding_count *f = &c->findings[i];
		if (!f->code[0])
			sb_printf(b, "txscan_findings_overflow_total{plugin=\"%s\",severity=\"%s\"} %llu\n",
			          f->plugin, txs_severity_name(f->severity), (unsigned long long)f->count);
	}
}

static void reports_family(sbuf *b, const metrics_counts *c)
{
	family(b, "txscan_reports_total", "counter",
	       "Reports delivered, by verdict (the highest severity found, or none).");
	for (int v = TXS_SEVERITY_NONE; v <= TXS_SEVERITY_CRITICAL; v++)
		sb_printf(b, "txscan_reports_total{verdict=\"%s\"} %llu\n", txs_severity_name(v),
		          (unsigned long long)c->reports.verdict[v]);
	family(b, "txscan_reports_incomplete_total", "counter",
	       "Reports with complete: false (a plugin did not answer ok).");
	sb_printf(b, "txscan_reports_incomplete_total %llu\n",
	          (unsigned long long)c->reports.incomplete);
	family(b, "txscan_reports_invalid_input_total", "counter",
	       "Inputs answered with an error instead of a report (not a JSON object).");
	sb_printf(b, "txscan_reports_invalid_input_total %llu\n",
	          (unsigned long long)c->reports.input_errors);
	findings_family(b, c);
}

/* The standard process collector's names (client libraries' "process_"). */
static void process_families(sbuf *b)
{
	procstat p;
	procstat_read(&p);
	family(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
	sb_printf(b, "process_cpu_seconds_total %.6f\n", p.cpu_seconds);
	family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	sb_printf(b, "process_resident_memory_bytes %llu\n", (unsigned long long)p.rss_bytes);
	family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
	sb_printf(b, "process_virtual_memory_bytes %llu\n", (unsigned long long)p.vsize_bytes);
	family(b, "process_open_fds", "gauge", "Number of open file descriptors.");
	sb_printf(b, "process_open_fds %llu\n", (unsigned long long)p.open_fds);
	family(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
	sb_printf(b, "process_max_fds %llu\n", (unsigned long long)p.max_fds);
	family(b, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
	sb_printf(b, "process_start_time_seconds %.2f\n", p.start_time);
}

/* ---- host and HTTP --------------------------------------------------------- */

static void host_families(sbuf *b, const metrics_host *host, const metrics_http *h)
{
	family(b, "txscan_build_info", "gauge", "txscan version (value 1).");
	sb_printf(b, "txscan_build_info{version=\"%s\"} 1\n", TXS_VERSION);
	family(b, "txscan_ready", "gauge", "1 when every plugin has a running engine (GET /readyz).");
	sb_printf(b, "txscan_ready %d\n", h->ready ? 1 : 0);
	family(b, "txscan_draining", "gauge", "1 while shutting down (no new connections).");
	sb_printf(b, "txscan_draining %d\n", h->draining ? 1 : 0);
	family(b, "txscan_host_in_flight", "gauge", "Transactions submitted and not yet reported.");
	sb_printf(b, "txscan_host_in_flight %u\n", host->in_flight);
	family(b, "txscan_host_console_dropped_total", "counter",
	       "Console and plugin_failure lines the host's stderr sink dropped (buffer full).");
	sb_printf(b, "txscan_host_console_dropped_total %llu\n",
	          (unsigned long long)host->console_dropped);
	family(b, "txscan_plugin_snapshot_age_seconds", "gauge",
	       "Age of the plugin figures on this page (read off the HTTP threads).");
	sb_printf(b, "txscan_plugin_snapshot_age_seconds %.3f\n", host->age_s);
}

static void connection_families(sbuf *b, const metrics_http *h)
{
	family(b, "txscan_http_connections", "gauge", "Open HTTP connections.");
	sb_printf(b, "txscan_http_connections %llu\n", (unsigned long long)h->connections);
	family(b, "txscan_http_connections_limit", "gauge", "Open connections allowed (--max-connections).");
	sb_printf(b, "txscan_http_connections_limit %u\n", h->max_connections);
	family(b, "txscan_http_connections_timed_out_total", "counter",
	       "Connections closed for being too slow, by phase (headers, body, idle).");
	sb_printf(b, "txscan_http_connections_timed_out_total{phase=\"headers\"} %llu\n",
	          (unsigned long long)h->closed_header);
	sb_printf(b, "txscan_http_connections_timed_out_total{phase=\"body\"} %llu\n",
	          (unsigned long long)h->closed_body);
	sb_printf(b, "txscan_http_connections_timed_out_total{phase=\"idle\"} %llu\n",
	          (unsigned long long)h->closed_idle);
}

/* Every reason always, 0 included: an alert on a rate needs the series. */
static void auth_family(sbuf *b, const metrics_http *h)
{
	family(b, "txscan_http_auth_failures_total", "counter",
	       "Requests and TLS handshakes refused by access control, by reason.");
	for (size_t i = 1; i < h->nauth; i++)
		sb_printf(b, "txscan_http_auth_failures_total{reason=\"%s\"} %llu\n", h->auth_reasons[i],
		          (unsigned long long)h->auth_failures[i]);
}

static void http_counts(sbuf *b, const metrics_http *h)
{
	family(b, "txscan_http_requests_total", "counter", "HTTP requests answered, by handler and status code.");
	for (size_t r = 0; r < h->nroutes; r++)
		for (size_t c = 0; c < h->ncodes; c++) {
			uint64_t v = h->requests[r * h->ncodes + c];
			if (v)
				sb_printf(b, "txscan_http_requests_total{handler=\"%s\",code=\"%d\"} %llu\n",
				          h->routes[r], h->codes[c], (unsigned long long)v);
		}
}

static void http_families(sbuf *b, const metrics_http *h)
{
	family(b, "txscan_http_requests_in_flight", "gauge", "HTTP requests being handled now.");
	sb_printf(b, "txscan_http_requests_in_flight %u\n", h->in_flight);
	family(b, "txscan_http_scans_in_flight", "gauge", "Scan and batch requests being handled now.");
	sb_printf(b, "txscan_http_scans_in_flight %u\n", h->scans_in_flight);
	family(b, "txscan_http_scans_in_flight_limit", "gauge",
	       "Scan requests allowed at once (--max-inflight); more get 503.");
	sb_printf(b, "txscan_http_scans_in_flight_limit %u\n", h->max_inflight);
	family(b, "txscan_log_suppressed_total", "counter", "Error log lines dropped by the rate limit.");
	sb_printf(b, "txscan_log_suppressed_total %llu\n", (unsigned long long)h->log_suppressed);
	http_counts(b, h);

	char labels[96];
	family(b, "txscan_http_request_duration_seconds", "histogram",
	       "Time from a request's headers to its answer, by handler.");
	for (size_t r = 0; r < h->nroutes; r++) {
		const uint64_t *buckets = h->duration + r * TXS_LATENCY_BUCKETS;
		uint64_t n = 0;
		for (size_t i = 0; i < TXS_LATENCY_BUCKETS; i++)
			n += buckets[i];
		if (!n)
			continue;
		snprintf(labels, sizeof labels, "handler=\"%s\"", h->routes[r]);
		histogram(b, "txscan_http_request_duration_seconds", labels, buckets,
		          h->duration_sum_ms[r]);
	}
}

/* The text in *out, or -1 (and nothing) when it is incomplete. */
static int take(sbuf *b, char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (b->failed || !sb_reserve(b, 0)) {
		free(b->p);
		return -1;
	}
	b->p[b->len] = '\0';
	*out = b->p;
	*len = b->len;
	return 0;
}

int metrics_render(const metrics_host *host, const metrics_http *http, size_t max_bytes,
                   char **out, size_t *len)
{
	sbuf b = {.max = max_bytes};
	host_families(&b, host, http);
	http_families(&b, http);
	connection_families(&b, http);
	auth_family(&b, http);
	plugin_families(&b, host);
	reports_family(&b, &host->counts);
	process_families(&b);
	return take(&b, out, len);
}

/* ---- txscan worker ------------------------------------------------------- */

static void counter(sbuf *b, const char *name, const char *help, uint64_t v)
{
	family(b, name, "counter", help);
	sb_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(sbuf *b, const char *name, const char *help, double v)
{
	family(b, name, "gauge", help);
	sb_printf(b, "%s %.17g\n", name, v);
}

static void worker_families(sbuf *b, const metrics_worker *w)
{
	family(b, "txscan_build_info", "gauge", "txscan version (value 1).");
	sb_printf(b, "txscan_build_info{version=\"%s\"} 1\n", TXS_VERSION);
	gauge(b, "txscan_worker_ready", "1 when connected to Redis with every plugin running (GET /readyz).",
	      w->ready);
	gauge(b, "txscan_worker_connected", "1 while the worker holds a Redis connection.", w->connected);
	counter(b, "txscan_worker_entries_read_total",
	        "Stream entries delivered by XREADGROUP (new and this consumer's history).", w->read);
	counter(b, "txscan_worker_entries_claimed_total",
	        "Entries taken over from other consumers by XAUTOCLAIM.", w->claimed);
	counter(b, "txscan_worker_entries_acked_total",
	        "Entries acked: report written, duplicate delivery or dead letter.", w->acked);
	counter(b, "txscan_worker_reports_written_total", "Reports written to the report stream.",
	        w->written);
	counter(b, "txscan_worker_duplicates_total",
	        "Deliveries whose report was already written (acked only).", w->duplicates);
	counter(b, "txscan_worker_dead_letters_total", "Entries written to the dead-letter stream.",
	        w->dead);
	counter(b, "txscan_worker_retries_total",
	        "Scans repeated because they failed only by waiting in a queue.", w->retried);
	counter(b, "txscan_worker_reconnects_total", "Redis connections made after the first.",
	        w->reconnects);
	gauge(b, "txscan_worker_in_flight", "Entries this worker read and has not acked yet.",
	      (double)w->in_flight);
	gauge(b, "txscan_worker_window",
	      "Entries this worker may hold in flight now: --max-in-flight, or fewer while the "
	      "plugins scan slower.",
	      (double)w->window);
	if (w->pending >= 0)
		gauge(b, "txscan_worker_group_pending",
		      "Entries delivered to the consumer group and not acked (any consumer).",
		      (double)w->pending);
	if (w->lag >= 0)
		gauge(b, "txscan_worker_group_lag",
		      "Entries in the stream not yet delivered to the consumer group.", (double)w->lag);
}

int metrics_render_worker(const metrics_worker *w, const metrics_counts *counts,
                          size_t max_bytes, char **out, size_t *len)
{
	sbuf b = {.max = max_bytes};
	worker_families(&b, w);
	reports_family(&b, counts);
	process_families(&b);
	return take(&b, out, len);
}
