/*
 * server.c - the HTTP API of `txscan serve` on libmicrohttpd.
 *
 * MHD runs `threads` epoll loops (a thread pool). No MHD thread ever waits
 * on a plugin: a scan request is validated, its transactions are handed to
 * txs_host_submit, and the connection is suspended; the last report's
 * callback (an executor or host thread) resumes it, and MHD calls the
 * handler again to send the answer. The host's per-report deadline means
 * every submit is answered, so a suspended connection always comes back.
 * Restarts and reloads, which wait for engines to be built, run on one
 * control thread for the same reason.
 *
 * Lifetime of a request (struct req): MHD holds one reference (dropped in
 * the completion notifier), every outstanding submit or control job holds
 * one. `mu` guards pending/suspended, so "is anything still out?" and
 * "suspend" are one step against "last report arrived" and "resume".
 *
 * Shutdown (serve.c): quiesce (no new connections), wait for in-flight
 * requests, detach the host (host_lock as writer: no host call is running
 * or starts later), free the host (it delivers what is still pending, which
 * resumes those connections), then stop MHD.
 *
 * Out of memory aborts: this is the daemon's own code (STYLE.md).
 */
#define _GNU_SOURCE
#include "server.h"
#include "util/clock.h"
#include "util/jscan.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "status_html.h"

#define METRICS_MAX_BYTES (16u << 20)
#define RETRY_AFTER_S "1"
#define ERROR_LOGS_PER_S 20

/* ---- routes ---------------------------------------------------------------- */

enum route_id {
	RT_STATUS, RT_HEALTHZ, RT_READYZ, RT_METRICS, RT_PLUGINS,
	RT_SCAN, RT_BATCH, RT_RESTART, RT_RELOAD, RT_OTHER, NROUTES
};

struct route {
	const char *name;  /* path, and the `handler` label in /metrics */
	const char *allow; /* methods, for 405's Allow header */
	bool post;         /* POST (else GET and HEAD) */
	bool json_body;    /* needs a JSON body: 411, 413, 415 apply */
};

static const struct route routes[NROUTES] = {
    [RT_STATUS] = {"/", "GET, HEAD", false, false},
    [RT_HEALTHZ] = {"/healthz", "GET, HEAD", false, false},
    [RT_READYZ] = {"/readyz", "GET, HEAD", false, false},
    [RT_METRICS] = {"/metrics", "GET, HEAD", false, false},
    [RT_PLUGINS] = {"/v1/plugins", "GET, HEAD", false, false},
    [RT_SCAN] = {"/v1/scan", "POST", true, true},
    [RT_BATCH] = {"/v1/scan/batch", "POST", true, true},
    [RT_RESTART] = {"/v1/plugins/{id}/restart", "POST", true, false},
    [RT_RELOAD] = {"/v1/plugins/{id}/reload", "POST", true, false},
    [RT_OTHER] = {"other", NULL, false, false},
};

static const int codes[] = {200, 400, 404, 405, 409, 411, 413, 415, 422, 500, 503};
#define NCODES (sizeof codes / sizeof codes[0])

/* ---- state ----------------------------------------------------------------- */

struct server {
	struct MHD_Daemon *mhd;
	int listen_fd;
	char address[128];
	server_options opts;
	double start_time;
	char *status_html;          /* GET /, joined from STATUS_HTML */
	size_t status_len;

	pthread_rwlock_t host_lock; /* readers: each host call; writer: detach */
	txs_host *host;             /* guarded by host_lock; NULL once detached */
	pthread_mutex_t reload_mu;  /* one restart or reload at a time */

	pthread_t ctl_thread;       /* runs HTTP restarts and reloads */
	pthread_mutex_t ctl_mu;
	pthread_cond_t ctl_cv;
	struct req *ctl_job;        /* guarded by ctl_mu, as are the two flags */
	bool ctl_busy, ctl_stop;
	bool ctl_started;

	_Atomic uint32_t in_flight, scans_in_flight;
	_Atomic bool draining;
	_Atomic uint64_t requests[NROUTES][NCODES];
	_Atomic uint64_t duration[NROUTES][TXS_LATENCY_BUCKETS];
	_Atomic uint64_t duration_sum_us[NROUTES];
};

enum phase { PH_HEADERS, PH_BODY, PH_WAIT, PH_ANSWERED };

struct slot {
	struct req *r;
	txs_report *report; /* NULL when the submit was refused (rc, err) */
	int rc;
	char *err;
};

struct req {
	server *srv;
	struct MHD_Connection *conn;
	enum route_id route;
	enum phase phase;
	char method[8];
	char path[160];      /* for log lines; truncated */
	char plugin[65];     /* restart/reload: the id in the path */
	char *body;
	size_t len, cap;
	bool too_big;        /* the body passed max_body; the rest is dropped */
	bool counted_scan;   /* holds one of scans_in_flight */
	double t0;

	pthread_mutex_t mu;  /* guards pending, overloaded, suspended, slots[].report */
	size_t pending;      /* submits or control job not yet answered */
	size_t overloaded;   /* reports that met a full plugin queue */
	bool suspended;
	_Atomic unsigned refs;
	size_t nslots;
	struct slot *slots;
	int ctl_status;      /* control job's answer */
	char *ctl_body;
};

/* ---- small helpers --------------------------------------------------------- */

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		abort();
	return p;
}

static void *xrealloc(void *q, size_t size)
{
	void *p = realloc(q, size ? size : 1);
	if (!p)
		abort();
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		abort();
	return p;
}

static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Milliseconds (or seconds) kept to 3 decimals for JSON. */
static double ms3(double v)
{
	return round(v * 1000.0) / 1000.0;
}

/* json_dumps that aborts on failure, with a trailing newline. */
static char *dump_line(json_t *j, size_t *len)
{
	/* Reals are rounded by ms3(); 10 digits prints them without noise. */
	char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY |
	                            JSON_REAL_PRECISION(10));
	if (!s)
		abort();
	size_t n = strlen(s);
	char *out = xmalloc(n + 2);
	memcpy(out, s, n);
	out[n] = '\n';
	out[n + 1] = '\0';
	free(s);
	*len = n + 1;
	return out;
}

/* ---- logging --------------------------------------------------------------- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static time_t log_window;
static unsigned log_count;
static _Atomic uint64_t log_suppressed;
static uint64_t log_suppressed_reported; /* guarded by log_mu */

void server_log(const char *level, const char *event, json_t *fields)
{
	char ts[40];
	txs_utc_timestamp(ts, sizeof ts);
	json_t *o = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level, "event", event);
	if (!o)
		abort();
	if (fields)
		json_object_update(o, fields);
	json_decref(fields);
	size_t len;
	char *line = dump_line(o, &len);
	json_decref(o);
	/* One write: lines from several threads stay whole. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
	free(line);
}

/* Request errors can come at the request rate (a client hammering a full
 * server); past ERROR_LOGS_PER_S per second they are counted, not logged. */
static bool log_error_allowed(uint64_t *suppressed_before)
{
	time_t now = time(NULL);
	pthread_mutex_lock(&log_mu);
	if (now != log_window) {
		log_window = now;
		log_count = 0;
	}
	bool ok = log_count++ < ERROR_LOGS_PER_S;
	uint64_t total = atomic_load(&log_suppressed);
	*suppressed_before = 0;
	if (ok) {
		*suppressed_before = total - log_suppressed_reported;
		log_suppressed_reported = total;
	} else {
		atomic_fetch_add(&log_suppressed, 1);
	}
	pthread_mutex_unlock(&log_mu);
	return ok;
}

static void log_request_error(const struct req *r, int status, const char *msg)
{
	uint64_t suppressed;
	if (!log_error_allowed(&suppressed))
		return;
	json_t *f = json_pack("{s:s, s:s, s:i, s:s}", "method", r->method, "path", r->path,
	                      "status", status, "error", msg);
	if (f && suppressed)
		json_object_set_new(f, "suppressed_before", json_integer((json_int_t)suppressed));
	server_log(status >= 500 ? "error" : "warn", "request_error", f);
}

/* ---- request bodies -------------------------------------------------------- */

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int body_fail(body_error *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int body_fail(body_error *err, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	err->status = status;
	return -1;
}

/* The spans of a batch's elements: the first max_items + 1 are kept (one
 * more tells the caller it is over the limit), all are counted. */
typedef struct batch {
	body_span *spans;
	size_t n, cap, max_items;
} batch;

static bool batch_element(jscan *s, int depth, void *ud)
{
	batch *b = ud;
	const char *v0 = s->p;
	if (!jscan_value(s, depth))
		return false;
	if (b->n <= b->max_items) {
		if (b->n == b->cap) {
			b->cap = b->cap ? b->cap * 2 : 16;
			b->spans = xrealloc(b->spans, b->cap * sizeof *b->spans);
		}
		b->spans[b->n] = (body_span){(size_t)(v0 - s->start), (size_t)(s->p - v0)};
	}
	b->n++;
	return true;
}

int server_parse_body(const char *body, size_t len, enum body_kind kind, size_t max_items,
                      body_span **spans, size_t *nspans, body_error *err)
{
	*spans = NULL;
	*nspans = 0;
	memset(err, 0, sizeof *err);
	/* validated in place (src/jscan.c): big numbers stay valid JSON, only
	 * the plugins read them, and each item reaches them byte for byte */
	jscan s;
	jscan_init(&s, body, len);
	jscan_ws(&s);
	const char *v0 = s.p;
	batch b = {.max_items = max_items};
	bool is_batch = kind == BODY_BATCH && jscan_at(&s, '[');
	if (is_batch)
		jscan_array(&s, 1, batch_element, &b);
	else if (s.p < s.end)
		jscan_value(&s, 1);
	else
		jscan_fail(&s, "no JSON value");
	if (!s.syntax)
		jscan_end(&s);
	size_t n = b.n;
	if (s.syntax) {
		size_t line, col;
		jscan_position(&s, &line, &col);
		err->line = (int)line;
		err->column = (int)col;
		err->position = s.at;
		body_fail(err, 400, "invalid JSON at line %d, column %d (byte %zu): %s", err->line,
		          err->column, s.at, s.syntax);
	} else if (kind == BODY_SCAN && *v0 != '{') {
		body_fail(err, 400, "the body must be one JSON object (a transaction); "
		                    "send arrays to /v1/scan/batch");
	} else if (kind == BODY_BATCH && !is_batch) {
		body_fail(err, 400, "the body must be a JSON array of transactions");
	} else if (n > max_items) {
		body_fail(err, 413, "the batch has %zu transactions; the limit is %zu (--max-batch)", n,
		          max_items);
	} else {
		if (kind == BODY_SCAN) {
			b.spans = xcalloc(1, sizeof *b.spans);
			b.spans[0] = (body_span){0, len};
			n = 1;
		}
		*spans = b.spans;
		*nspans = n;
		return 0;
	}
	free(b.spans);
	return -1;
}

/* ---- responses ------------------------------------------------------------- */

/* Index in codes[]; a code not listed is counted as 500. */
static size_t code_index(int status)
{
	size_t fallback = 0;
	for (size_t i = 0; i < NCODES; i++) {
		if (codes[i] == status)
			return i;
		if (codes[i] == 500)
			fallback = i;
	}
	return fallback;
}

static size_t bucket_of(double ms)
{
	const double *bounds = txs_latency_bounds_ms();
	for (size_t i = 0; i < TXS_LATENCY_BUCKETS - 1; i++)
		if (ms <= bounds[i])
			return i;
	return TXS_LATENCY_BUCKETS - 1;
}

static void count_answer(struct req *r, int status)
{
	server *srv = r->srv;
	double ms = txs_now_ms() - r->t0;
	atomic_fetch_add(&srv->requests[r->route][code_index(status)], 1);
	atomic_fetch_add(&srv->duration[r->route][bucket_of(ms)], 1);
	atomic_fetch_add(&srv->duration_sum_us[r->route], (uint64_t)(ms * 1000.0));
}

/* Queues body (malloc'ed; MHD frees it) with one optional extra header. */
static enum MHD_Result respond(struct req *r, int status, char *body, size_t len,
                               const char *ctype, const char *hname, const char *hval)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (hname)
		MHD_add_response_header(resp, hname, hval);
	/* While draining, keep-alive clients are let go after this answer. */
	if (atomic_load(&r->srv->draining))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	r->phase = PH_ANSWERED;
	count_answer(r, status);
	return rc;
}

static enum MHD_Result respond_json(struct req *r, int status, json_t *j, const char *hname,
                                    const char *hval)
{
	size_t len;
	char *s = dump_line(j, &len);
	json_decref(j);
	return respond(r, status, s, len, "application/json", hname, hval);
}

static enum MHD_Result respond_error(struct req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* {"error": "...", "status": N}; 503 carries Retry-After, 405 Allow. */
static enum MHD_Result respond_error(struct req *r, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_request_error(r, status, msg);
	json_t *j = json_pack("{s:s, s:i}", "error", msg, "status", status);
	if (status == 503)
		return respond_json(r, status, j, MHD_HTTP_HEADER_RETRY_AFTER, RETRY_AFTER_S);
	if (status == 405)
		return respond_json(r, status, j, MHD_HTTP_HEADER_ALLOW, routes[r->route].allow);
	return respond_json(r, status, j, NULL, NULL);
}

/* ---- request lifetime ------------------------------------------------------ */

/* True when a plugin's status in this report is "overloaded". The cheap
 * substring test keeps the parse off the common path. */
static bool report_overloaded(const txs_report *rep)
{
	size_t len;
	const char *js = txs_report_json(rep, &len);
	if (!memmem(js, len, "\"overloaded\"", 12))
		return false;
	json_t *doc = json_loadb(js, len, 0, NULL);
	json_t *plugins = json_object_get(doc, "plugins"), *p;
	size_t i;
	bool hit = false;
	json_array_foreach(plugins, i, p) {
		const char *st = json_string_value(json_object_get(p, "status"));
		hit = hit || (st && !strcmp(st, "overloaded"));
	}
	json_decref(doc);
	return hit;
}

static void req_unref(struct req *r)
{
	if (atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	for (size_t i = 0; i < r->nslots; i++) {
		txs_report_free(r->slots[i].report);
		free(r->slots[i].err);
	}
	free(r->slots);
	free(r->body);
	free(r->ctl_body);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* Everything is answered, or a full queue already decided the answer (a
 * full server answers 503 at once, not after the rest of its batch). */
static bool req_ready_locked(const struct req *r)
{
	return r->pending == 0 || r->overloaded > 0;
}

/* One submit or control job is answered (report may be NULL); the one that
 * makes the request ready resumes MHD. */
static void req_done_one(struct req *r, struct slot *s, txs_report *report)
{
	bool full = report && report_overloaded(report);
	pthread_mutex_lock(&r->mu);
	if (s)
		s->report = report;
	r->overloaded += full;
	r->pending--;
	if (req_ready_locked(r) && r->suspended) {
		r->suspended = false;
		MHD_resume_connection(r->conn);
	}
	pthread_mutex_unlock(&r->mu);
	req_unref(r);
}

/* Answer now when ready, else suspend until req_done_one. */
static bool req_wait(struct req *r)
{
	pthread_mutex_lock(&r->mu);
	bool ready = req_ready_locked(r);
	if (!ready && !r->suspended) {
		r->suspended = true;
		MHD_suspend_connection(r->conn);
	}
	pthread_mutex_unlock(&r->mu);
	return ready;
}

static void on_report(txs_report *report, void *userdata)
{
	struct slot *s = userdata;
	req_done_one(s->r, s, report);
}

/* ---- route matching -------------------------------------------------------- */

static bool valid_id(const char *s, size_t n)
{
	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/* /v1/plugins/{id}/restart and /reload; the id is copied to r->plugin. */
static enum route_id match_plugin_route(struct req *r, const char *url)
{
	const char *prefix = "/v1/plugins/";
	if (strncmp(url, prefix, strlen(prefix)))
		return RT_OTHER;
	const char *id = url + strlen(prefix), *slash = strchr(id, '/');
	if (!slash || !valid_id(id, (size_t)(slash - id)))
		return RT_OTHER;
	enum route_id rt = !strcmp(slash, "/restart") ? RT_RESTART
	                   : !strcmp(slash, "/reload") ? RT_RELOAD
	                                                : RT_OTHER;
	if (rt != RT_OTHER)
		snprintf(r->plugin, sizeof r->plugin, "%.*s", (int)(slash - id), id);
	return rt;
}

static enum route_id match_route(struct req *r, const char *url)
{
	for (int i = RT_STATUS; i <= RT_BATCH; i++)
		if (!strcmp(url, routes[i].name))
			return (enum route_id)i;
	return match_plugin_route(r, url);
}

static struct req *req_new(server *srv, struct MHD_Connection *conn, const char *url,
                           const char *method)
{
	struct req *r = xcalloc(1, sizeof *r);
	r->srv = srv;
	r->conn = conn;
	r->t0 = txs_now_ms();
	atomic_init(&r->refs, 1);
	pthread_mutex_init(&r->mu, NULL);
	snprintf(r->method, sizeof r->method, "%s", method);
	snprintf(r->path, sizeof r->path, "%s", url);
	r->route = match_route(r, url);
	atomic_fetch_add(&srv->in_flight, 1);
	return r;
}

/* ---- GET handlers ---------------------------------------------------------- */

static enum MHD_Result get_status_page(struct req *r)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    r->srv->status_len, r->srv->status_html, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
	MHD_add_response_header(resp, "Content-Security-Policy",
	                        "default-src 'self'; script-src 'unsafe-inline'; "
	                        "style-src 'unsafe-inline'");
	enum MHD_Result rc = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	r->phase = PH_ANSWERED;
	count_answer(r, 200);
	return rc;
}

static enum MHD_Result get_healthz(struct req *r)
{
	server *srv = r->srv;
	return respond_json(r, 200,
	                    json_pack("{s:s, s:s, s:f, s:b}", "status", "ok", "version", TXS_VERSION,
	                              "uptime_s", ms3(wall_s() - srv->start_time), "draining",
	                              atomic_load(&srv->draining)),
	                    NULL, NULL);
}

/* Ids of plugins with no running engine or a quarantined instance. */
static json_t *not_ready_plugins(txs_host *host)
{
	json_t *ids = json_array();
	txs_plugin_info info;
	for (size_t i = 0; i < txs_host_plugin_count(host); i++)
		if (txs_host_plugin_info(host, i, &info) == 0 &&
		    (info.stats.quarantined || !info.stats.running))
			json_array_append_new(ids, json_string(info.id));
	return ids;
}

static enum MHD_Result get_readyz(struct req *r)
{
	server *srv = r->srv;
	if (atomic_load(&srv->draining))
		return respond_json(r, 503, json_pack("{s:b, s:s}", "ready", 0, "reason", "draining"),
		                    MHD_HTTP_HEADER_RETRY_AFTER, RETRY_AFTER_S);
	pthread_rwlock_rdlock(&srv->host_lock);
	json_t *j;
	bool ready = srv->host && txs_host_ready(srv->host);
	if (ready)
		j = json_pack("{s:b}", "ready", 1);
	else if (!srv->host)
		j = json_pack("{s:b, s:s}", "ready", 0, "reason", "shutting down");
	else
		j = json_pack("{s:b, s:s, s:o}", "ready", 0, "reason",
		              "a plugin has no running engine or is quarantined", "plugins",
		              not_ready_plugins(srv->host));
	pthread_rwlock_unlock(&srv->host_lock);
	return respond_json(r, ready ? 200 : 503, j, ready ? NULL : MHD_HTTP_HEADER_RETRY_AFTER,
	                    RETRY_AFTER_S);
}

static void http_snapshot(server *srv, metrics_http *h, uint64_t *req, uint64_t *dur,
                          double *sum_ms, const char **names)
{
	for (size_t r = 0; r < NROUTES; r++) {
		names[r] = routes[r].name;
		for (size_t c = 0; c < NCODES; c++)
			req[r * NCODES + c] = atomic_load(&srv->requests[r][c]);
		for (size_t b = 0; b < TXS_LATENCY_BUCKETS; b++)
			dur[r * TXS_LATENCY_BUCKETS + b] = atomic_load(&srv->duration[r][b]);
		sum_ms[r] = (double)atomic_load(&srv->duration_sum_us[r]) / 1000.0;
	}
	*h = (metrics_http){
	    .nroutes = NROUTES, .routes = names, .ncodes = NCODES, .codes = codes,
	    .requests = req, .duration = dur, .duration_sum_ms = sum_ms,
	    .in_flight = atomic_load(&srv->in_flight),
	    .scans_in_flight = atomic_load(&srv->scans_in_flight),
	    .max_inflight = srv->opts.max_inflight,
	    .log_suppressed = atomic_load(&log_suppressed),
	    .start_time = srv->start_time, .draining = atomic_load(&srv->draining),
	};
}

static enum MHD_Result get_metrics(struct req *r)
{
	server *srv = r->srv;
	uint64_t req[NROUTES * NCODES], dur[NROUTES * TXS_LATENCY_BUCKETS];
	double sum_ms[NROUTES];
	const char *names[NROUTES];
	metrics_http h;
	char *text;
	size_t len;
	http_snapshot(srv, &h, req, dur, sum_ms, names);
	pthread_rwlock_rdlock(&srv->host_lock);
	h.ready = srv->host && !h.draining && txs_host_ready(srv->host);
	int rc = metrics_render(srv->host, &h, METRICS_MAX_BYTES, &text, &len);
	pthread_rwlock_unlock(&srv->host_lock);
	if (rc < 0)
		return respond_error(r, 500, "metrics text over %u bytes", METRICS_MAX_BYTES);
	return respond(r, 200, text, len, "text/plain; version=0.0.4; charset=utf-8", NULL, NULL);
}

static enum MHD_Result get_plugins(struct req *r)
{
	server *srv = r->srv;
	char *json = NULL;
	pthread_rwlock_rdlock(&srv->host_lock);
	int rc = srv->host ? txs_host_plugins_json(srv->host, &json) : TXS_ESTOPPED;
	char err[256];
	snprintf(err, sizeof err, "%s", rc ? txs_last_error() : "");
	pthread_rwlock_unlock(&srv->host_lock);
	if (rc == TXS_ESTOPPED)
		return respond_error(r, 503, "shutting down");
	if (rc)
		return respond_error(r, 500, "listing plugins failed: %s", err);
	size_t n = strlen(json);
	char *body = xmalloc(n + 2);
	memcpy(body, json, n);
	memcpy(body + n, "\n", 2);
	free(json);
	return respond(r, 200, body, n + 1, "application/json", NULL, NULL);
}

static enum MHD_Result handle_get(struct req *r)
{
	switch (r->route) {
	case RT_STATUS: return get_status_page(r);
	case RT_HEALTHZ: return get_healthz(r);
	case RT_READYZ: return get_readyz(r);
	case RT_METRICS: return get_metrics(r);
	case RT_PLUGINS: return get_plugins(r);
	default: return respond_error(r, 500, "no GET handler for %s", r->path);
	}
}

/* ---- POST: headers --------------------------------------------------------- */

static const char *header(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* application/json, with or without parameters such as charset. */
static bool is_json_type(const char *ct)
{
	const char *want = "application/json";
	if (!ct)
		return false;
	while (is_ws(*ct))
		ct++;
	if (strncasecmp(ct, want, strlen(want)))
		return false;
	ct += strlen(want);
	while (is_ws(*ct))
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* 415, 411, 413 and the in-flight cap, before any of the body is read. */
static enum MHD_Result check_scan_headers(struct req *r)
{
	server *srv = r->srv;
	if (!is_json_type(header(r, MHD_HTTP_HEADER_CONTENT_TYPE)))
		return respond_error(r, 415, "POST %s needs Content-Type: application/json",
		                     routes[r->route].name);
	const char *cl = header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	if (!cl && !(te && strcasestr(te, "chunked")))
		return respond_error(r, 411, "a request body needs Content-Length (or chunked encoding)");
	if (cl && strtoull(cl, NULL, 10) > srv->opts.max_body)
		return respond_error(r, 413, "request body of %s bytes; the limit is %zu (--max-body)",
		                     cl, srv->opts.max_body);
	if (atomic_fetch_add(&srv->scans_in_flight, 1) >= srv->opts.max_inflight) {
		atomic_fetch_sub(&srv->scans_in_flight, 1);
		return respond_error(r, 503, "%u scan requests in flight (--max-inflight); retry later",
		                     srv->opts.max_inflight);
	}
	r->counted_scan = true;
	r->phase = PH_BODY;
	return MHD_YES;
}

static enum MHD_Result check_plugin_exists(struct req *r)
{
	server *srv = r->srv;
	pthread_rwlock_rdlock(&srv->host_lock);
	long idx = srv->host ? txs_host_plugin_find(srv->host, r->plugin) : -1;
	bool detached = !srv->host;
	pthread_rwlock_unlock(&srv->host_lock);
	if (detached)
		return respond_error(r, 503, "shutting down");
	if (idx < 0)
		return respond_error(r, 404, "no plugin '%s'", r->plugin);
	r->phase = PH_BODY;
	return MHD_YES;
}

static enum MHD_Result on_headers(struct req *r, const char *method)
{
	const struct route *rt = &routes[r->route];
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	if (r->route == RT_OTHER)
		return respond_error(r, 404, "no such resource: %s", r->path);
	if (rt->post ? strcmp(method, "POST") : !get)
		return respond_error(r, 405, "%s is not allowed on %s (allowed: %s)", method, rt->name,
		                     rt->allow);
	if (!rt->post)
		return handle_get(r);
	return rt->json_body ? check_scan_headers(r) : check_plugin_exists(r);
}

/* Keeps at most max_body bytes; past that the request is marked and the
 * rest dropped, to answer 413 once the client has finished sending. */
static void body_append(struct req *r, const char *data, size_t n)
{
	size_t max = r->srv->opts.max_body;
	if (r->too_big || !routes[r->route].json_body)
		return;
	if (n > max - r->len) {
		r->too_big = true;
		free(r->body);
		r->body = NULL;
		r->len = r->cap = 0;
		return;
	}
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + n)
			cap *= 2;
		r->body = realloc(r->body, cap < max ? cap : max);
		if (!r->body)
			abort();
		r->cap = cap < max ? cap : max;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
}

/* ---- POST: scans ----------------------------------------------------------- */

static enum MHD_Result refused_submit(struct req *r, const struct slot *s)
{
	if (s->rc == TXS_ESTOPPED)
		return respond_error(r, 503, "shutting down");
	return respond_error(r, 500, "the scan could not be started: %s",
	                     s->err ? s->err : "unknown error");
}

static enum MHD_Result answer_scan(struct req *r)
{
	struct slot *s = &r->slots[0];
	if (!s->report)
		return refused_submit(r, s);
	size_t len;
	const char *js = txs_report_json(s->report, &len);
	char *body = xmalloc(len + 2);
	memcpy(body, js, len);
	memcpy(body + len, "\n", 2);
	if (txs_report_input_error(s->report)) {
		log_request_error(r, 400, "the transaction was rejected by the host");
		return respond(r, 400, body, len + 1, "application/json", NULL, NULL);
	}
	if (r->overloaded) {
		log_request_error(r, 503, "a plugin queue is full");
		return respond(r, 503, body, len + 1, "application/json", MHD_HTTP_HEADER_RETRY_AFTER,
		               RETRY_AFTER_S);
	}
	return respond(r, 200, body, len + 1, "application/json", NULL, NULL);
}

/* "[r1,r2,...]\n" from every slot's report. */
static char *join_reports(struct req *r, size_t *out_len)
{
	size_t total = 3 + r->nslots, len;
	for (size_t i = 0; i < r->nslots; i++) {
		txs_report_json(r->slots[i].report, &len);
		total += len;
	}
	char *body = xmalloc(total), *p = body;
	*p++ = '[';
	for (size_t i = 0; i < r->nslots; i++) {
		const char *js = txs_report_json(r->slots[i].report, &len);
		if (i)
			*p++ = ',';
		memcpy(p, js, len);
		p += len;
	}
	memcpy(p, "]\n", 2);
	*out_len = (size_t)(p + 2 - body);
	return body;
}

/* Called once ready: all reports are in, or some met a full queue, in
 * which case the rest may still be running and the answer is 503. */
static enum MHD_Result answer_batch(struct req *r)
{
	size_t len;
	pthread_mutex_lock(&r->mu); /* late reports may still be landing */
	size_t overloaded = r->overloaded;
	pthread_mutex_unlock(&r->mu);
	if (overloaded)
		return respond_error(r, 503,
		                     "overloaded: %zu of %zu transactions met a full plugin queue; "
		                     "retry the batch later",
		                     overloaded, r->nslots);
	for (size_t i = 0; i < r->nslots; i++)
		if (!r->slots[i].report)
			return refused_submit(r, &r->slots[i]);
	char *body = join_reports(r, &len);
	return respond(r, 200, body, len, "application/json", NULL, NULL);
}

static enum MHD_Result answer_body_error(struct req *r, const body_error *e)
{
	log_request_error(r, e->status, e->msg);
	json_t *j = json_pack("{s:s, s:i}", "error", e->msg, "status", e->status);
	if (e->status == 400 && e->line > 0) {
		json_object_set_new(j, "line", json_integer(e->line));
		json_object_set_new(j, "column", json_integer(e->column));
		json_object_set_new(j, "position", json_integer((json_int_t)e->position));
	}
	return respond_json(r, e->status, j, NULL, NULL);
}

/* Submits every span; a refused submit is answered in place (cb not called). */
static bool submit_all(struct req *r, const body_span *spans)
{
	server *srv = r->srv;
	pthread_rwlock_rdlock(&srv->host_lock);
	bool attached = srv->host != NULL;
	for (size_t i = 0; i < r->nslots; i++) {
		struct slot *s = &r->slots[i];
		s->rc = attached ? txs_host_submit(srv->host, r->body + spans[i].off, spans[i].len, 0,
		                                   on_report, s)
		                 : TXS_ESTOPPED;
		if (s->rc) {
			s->err = xstrdup(attached ? txs_last_error() : "shutting down");
			req_done_one(r, NULL, NULL);
		}
	}
	pthread_rwlock_unlock(&srv->host_lock);
	return attached;
}

static enum MHD_Result start_scan(struct req *r)
{
	body_error e;
	body_span *spans = NULL;
	size_t n = 0;
	enum body_kind kind = r->route == RT_BATCH ? BODY_BATCH : BODY_SCAN;
	if (r->too_big)
		return respond_error(r, 413, "request body over %zu bytes (--max-body)",
		                     r->srv->opts.max_body);
	if (server_parse_body(r->body ? r->body : "", r->len, kind, r->srv->opts.max_batch, &spans,
	                      &n, &e) < 0)
		return answer_body_error(r, &e);
	if (n == 0) {
		free(spans);
		return respond(r, 200, xstrdup("[]\n"), 3, "application/json", NULL, NULL);
	}
	r->slots = xcalloc(n, sizeof *r->slots);
	r->nslots = n;
	pthread_mutex_lock(&r->mu);
	r->pending = n;
	pthread_mutex_unlock(&r->mu);
	for (size_t i = 0; i < n; i++)
		r->slots[i].r = r;
	atomic_fetch_add(&r->refs, (unsigned)n);
	submit_all(r, spans);
	free(spans);
	r->phase = PH_WAIT;
	if (!req_wait(r))
		return MHD_YES;
	return kind == BODY_BATCH ? answer_batch(r) : answer_scan(r);
}

/* ---- POST: restart and reload ---------------------------------------------- */

static const char *op_name(enum route_id rt)
{
	return rt == RT_RESTART ? "restart" : "reload";
}

/* Reload: 422 when the new version is bad (the old one keeps serving),
 * 409 when the plugin's state does not allow it now. A restart reuses the
 * code that is running, so its failures are all 409. */
static int control_status(enum route_id op, int rc)
{
	if (rc == 0)
		return 200;
	if (rc == TXS_ESTOPPED)
		return 503;
	if (rc == TXS_ENOTFOUND)
		return 404;
	if (rc == TXS_ENOMEM)
		return 500;
	switch (op == RT_RESTART ? 0 : rc) {
	case TXS_EPLUGIN:
	case TXS_EINVAL:
	case TXS_EIO:
	case TXS_ETOOBIG: return 422;
	default: return 409;
	}
}

/* Runs one restart or reload (id NULL: reload all) with the host held as a
 * reader; fills *status and *body (JSON) and logs the outcome. */
static int control_run(server *srv, enum route_id op, const char *id, const char *source,
                       int *status, json_t **body)
{
	txs_plugin_info info = {0};
	char err[1024] = "";
	double t0 = txs_now_ms();
	pthread_mutex_lock(&srv->reload_mu);
	pthread_rwlock_rdlock(&srv->host_lock);
	txs_host *host = srv->host;
	int rc = !host ? TXS_ESTOPPED
	         : op == RT_RESTART ? txs_host_restart(host, id)
	         : id ? txs_host_reload(host, id)
	              : txs_host_reload_all(host);
	if (rc)
		snprintf(err, sizeof err, "%s", txs_last_error());
	long idx = host && id ? txs_host_plugin_find(host, id) : -1;
	if (idx >= 0)
		txs_host_plugin_info(host, (size_t)idx, &info);
	pthread_rwlock_unlock(&srv->host_lock);
	pthread_mutex_unlock(&srv->reload_mu);

	double ms = txs_now_ms() - t0;
	const char *what = op_name(op);
	json_t *log = json_pack("{s:s, s:s, s:b, s:f}", "plugin", id ? id : "*", "source", source,
	                        "ok", rc == 0, "ms", ms3(ms));
	if (idx >= 0)
		json_object_set_new(log, "version", json_string(info.version));
	if (rc)
		json_object_set_new(log, "error", json_string(err));
	server_log(rc ? "error" : "info", what, log);

	*status = control_status(op, rc);
	if (rc == 0) {
		*body = json_pack("{s:s, s:b, s:s, s:I, s:f}", "plugin", id ? id : "*",
		                  op == RT_RESTART ? "restarted" : "reloaded", 1, "version", info.version,
		                  "generation", (json_int_t)info.stats.generation, "ms", ms3(ms));
	} else {
		char msg[1400];
		snprintf(msg, sizeof msg, "%s of plugin '%s' failed%s%s%s: %s", what, id ? id : "*",
		         idx >= 0 ? "; version " : "", idx >= 0 ? info.version : "",
		         idx >= 0 ? " keeps serving" : "", err);
		*body = json_pack("{s:s, s:i, s:s, s:s}", "error", msg, "status", *status, "plugin",
		                  id ? id : "*", "detail", err);
		if (idx >= 0)
			json_object_set_new(*body, "serving_version", json_string(info.version));
	}
	return rc;
}

int server_reload(server *srv, const char *id, const char *source)
{
	int status;
	json_t *body = NULL;
	int rc = control_run(srv, RT_RELOAD, id, source, &status, &body);
	json_decref(body);
	return rc;
}

static void *control_main(void *arg)
{
	server *srv = arg;
	pthread_mutex_lock(&srv->ctl_mu);
	for (;;) {
		while (!srv->ctl_job && !srv->ctl_stop)
			pthread_cond_wait(&srv->ctl_cv, &srv->ctl_mu);
		struct req *r = srv->ctl_job;
		if (!r)
			break;
		srv->ctl_job = NULL;
		pthread_mutex_unlock(&srv->ctl_mu);

		json_t *body = NULL;
		control_run(srv, r->route, r->plugin, "http", &r->ctl_status, &body);
		size_t len;
		r->ctl_body = dump_line(body, &len);
		json_decref(body);

		pthread_mutex_lock(&srv->ctl_mu);
		srv->ctl_busy = false; /* before answering: the client may send the next at once */
		pthread_mutex_unlock(&srv->ctl_mu);
		req_done_one(r, NULL, NULL);
		pthread_mutex_lock(&srv->ctl_mu);
	}
	pthread_mutex_unlock(&srv->ctl_mu);
	return NULL;
}

static enum MHD_Result answer_control(struct req *r);

static enum MHD_Result start_control(struct req *r)
{
	server *srv = r->srv;
	pthread_mutex_lock(&srv->ctl_mu);
	bool busy = srv->ctl_busy || srv->ctl_stop;
	if (!busy) {
		srv->ctl_busy = true;
		srv->ctl_job = r;
		r->pending = 1;
		atomic_fetch_add(&r->refs, 1);
		pthread_cond_signal(&srv->ctl_cv);
	}
	pthread_mutex_unlock(&srv->ctl_mu);
	if (busy)
		return respond_error(r, 409, "another restart or reload is in progress; retry");
	r->phase = PH_WAIT;
	if (!req_wait(r))
		return MHD_YES; /* answered when resumed */
	return answer_control(r);
}

static enum MHD_Result answer_control(struct req *r)
{
	char *body = r->ctl_body;
	r->ctl_body = NULL;
	if (r->ctl_status != 200) {
		json_t *j = json_loads(body, 0, NULL);
		log_request_error(r, r->ctl_status, json_string_value(json_object_get(j, "error")));
		json_decref(j);
	}
	return respond(r, r->ctl_status, body, strlen(body), "application/json",
	               r->ctl_status == 503 || r->ctl_status == 409 ? MHD_HTTP_HEADER_RETRY_AFTER
	                                                            : NULL,
	               RETRY_AFTER_S);
}

/* ---- MHD callbacks --------------------------------------------------------- */

/* The final call (body complete) or a call after resume. */
static enum MHD_Result on_body_done(struct req *r)
{
	if (r->phase == PH_BODY) {
		if (r->route == RT_SCAN || r->route == RT_BATCH)
			return start_scan(r);
		return start_control(r);
	}
	if (r->phase != PH_WAIT || !req_wait(r))
		return MHD_YES;
	switch (r->route) {
	case RT_SCAN: return answer_scan(r);
	case RT_BATCH: return answer_batch(r);
	default: return answer_control(r);
	}
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
	(void)version;
	struct req *r = *con_cls;
	if (!r) {
		r = req_new(cls, conn, url, method);
		*con_cls = r;
		return on_headers(r, method);
	}
	if (*upload_size) {
		body_append(r, upload_data, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	return on_body_done(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	server *srv = cls;
	struct req *r = *con_cls;
	(void)conn;
	if (!r)
		return;
	*con_cls = NULL;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && r->phase != PH_ANSWERED) {
		json_t *f = json_pack("{s:s, s:s, s:i}", "method", r->method, "path", r->path, "code",
		                      (int)toe);
		server_log("warn", "request_aborted", f);
	}
	if (r->counted_scan)
		atomic_fetch_sub(&srv->scans_in_flight, 1);
	atomic_fetch_sub(&srv->in_flight, 1);
	req_unref(r);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	server_log("warn", "mhd", json_pack("{s:s}", "message", msg));
}

/* ---- listening ------------------------------------------------------------- */

/* Splits "HOST:PORT", "[V6]:PORT" or ":PORT" (host "" = every address). */
static int split_listen(const char *listen, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon = strrchr(listen, ':');
	if (!colon || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return -1;
	const char *h = listen;
	size_t hn = (size_t)(colon - listen);
	if (hn >= 2 && h[0] == '[' && h[hn - 1] == ']') {
		h++;
		hn -= 2;
	} else if (memchr(h, ':', hn)) {
		return -1; /* a bare IPv6 address needs brackets */
	}
	if (hn >= hcap || strlen(colon + 1) >= pcap)
		return -1;
	snprintf(host, hcap, "%.*s", (int)hn, h);
	snprintf(port, pcap, "%s", colon + 1);
	return 0;
}

static int bind_one(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
	                ai->ai_protocol);
	int one = 1;
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 511) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void describe_bound(server *srv, int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
		port = ntohs(a->sin6_port);
		snprintf(srv->address, sizeof srv->address, "[%s]:%u", ip, port);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
		port = ntohs(a->sin_port);
		snprintf(srv->address, sizeof srv->address, "%s:%u", ip, port);
	}
}

static int open_listen(server *srv, char *err, size_t errlen)
{
	char host[256], port[16];
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res = NULL;
	if (split_listen(srv->opts.listen, host, sizeof host, port, sizeof port) < 0) {
		snprintf(err, errlen, "--listen '%s': expected HOST:PORT, [IPV6]:PORT or :PORT",
		         srv->opts.listen);
		return -1;
	}
	int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (gai) {
		snprintf(err, errlen, "--listen '%s': %s", srv->opts.listen, gai_strerror(gai));
		return -1;
	}
	int fd = -1, e = 0;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
		if ((fd = bind_one(ai)) < 0)
			e = errno;
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", srv->opts.listen, strerror(e));
		return -1;
	}
	srv->listen_fd = fd;
	describe_bound(srv, fd);
	return 0;
}

/* ---- lifecycle ------------------------------------------------------------- */

void server_options_init(server_options *opts)
{
	*opts = (server_options){
	    .listen = "127.0.0.1:8080",
	    .max_body = 1u << 20,
	    .threads = 2,
	    .max_inflight = 256,
	    .max_batch = 1000,
	    .max_connections = 1024,
	    .conn_timeout_s = 30,
	};
}

static int start_mhd(server *srv, char *err, size_t errlen)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
	                 MHD_USE_ITC | MHD_USE_ERROR_LOG;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(srv->listen_fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	srv->mhd = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, srv,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, /* first, or MHD logs before it */
	    MHD_OPTION_LISTEN_SOCKET, srv->listen_fd,
	    MHD_OPTION_THREAD_POOL_SIZE, srv->opts.threads,
	    MHD_OPTION_CONNECTION_LIMIT, srv->opts.max_connections,
	    MHD_OPTION_CONNECTION_TIMEOUT, srv->opts.conn_timeout_s,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
	    MHD_OPTION_END);
	if (!srv->mhd) {
		snprintf(err, errlen, "libmicrohttpd did not start on %s", srv->address);
		return -1;
	}
	return 0;
}

static void join_status_page(server *srv)
{
	size_t n = sizeof STATUS_HTML / sizeof STATUS_HTML[0], len = 0;
	for (size_t i = 0; i < n; i++)
		len += strlen(STATUS_HTML[i]);
	srv->status_html = xmalloc(len + 1);
	srv->status_len = 0;
	for (size_t i = 0; i < n; i++) {
		memcpy(srv->status_html + srv->status_len, STATUS_HTML[i], strlen(STATUS_HTML[i]));
		srv->status_len += strlen(STATUS_HTML[i]);
	}
	srv->status_html[len] = '\0';
}

static void server_init_locks(server *srv)
{
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	/* A steady stream of scans must not starve detach (shutdown). */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&srv->host_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&srv->reload_mu, NULL);
	pthread_mutex_init(&srv->ctl_mu, NULL);
	pthread_cond_init(&srv->ctl_cv, NULL);
}

int server_start(server **out, txs_host *host, const server_options *opts, char *err,
                 size_t errlen)
{
	server *srv = xcalloc(1, sizeof *srv);
	*out = NULL;
	srv->opts = *opts;
	srv->host = host;
	srv->listen_fd = -1;
	srv->start_time = wall_s();
	if (!srv->opts.threads)
		srv->opts.threads = 1;
	server_init_locks(srv);
	join_status_page(srv);
	if (open_listen(srv, err, errlen) < 0)
		goto fail;
	if (pthread_create(&srv->ctl_thread, NULL, control_main, srv)) {
		snprintf(err, errlen, "cannot start the control thread");
		goto fail;
	}
	srv->ctl_started = true;
	if (start_mhd(srv, err, errlen) < 0)
		goto fail;
	*out = srv;
	return 0;
fail:
	server_free(srv);
	return -1;
}

const char *server_address(const server *srv)
{
	return srv->address;
}

uint32_t server_in_flight(const server *srv)
{
	return atomic_load(&((server *)srv)->in_flight);
}

void server_quiesce(server *srv)
{
	if (atomic_exchange(&srv->draining, true))
		return;
	if (srv->mhd)
		MHD_quiesce_daemon(srv->mhd);
	/* MHD keeps the socket open until stop; shut it so new clients are
	 * refused at once instead of waiting in the backlog. */
	if (srv->listen_fd >= 0)
		shutdown(srv->listen_fd, SHUT_RDWR);
}

void server_detach_host(server *srv)
{
	pthread_rwlock_wrlock(&srv->host_lock);
	srv->host = NULL;
	pthread_rwlock_unlock(&srv->host_lock);
}

void server_free(server *srv)
{
	if (!srv)
		return;
	if (srv->ctl_started) {
		pthread_mutex_lock(&srv->ctl_mu);
		srv->ctl_stop = true;
		pthread_cond_signal(&srv->ctl_cv);
		pthread_mutex_unlock(&srv->ctl_mu);
		pthread_join(srv->ctl_thread, NULL);
	}
	if (srv->mhd)
		MHD_stop_daemon(srv->mhd);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	pthread_cond_destroy(&srv->ctl_cv);
	pthread_mutex_destroy(&srv->ctl_mu);
	pthread_mutex_destroy(&srv->reload_mu);
	pthread_rwlock_destroy(&srv->host_lock);
	free(srv->status_html);
	free(srv);
}
