/*
 * server.c - the HTTP API of `txscan serve` on libmicrohttpd.
 *
 * MHD runs `threads` poll() loops (a thread pool; see start_mhd). No MHD thread ever waits
 * on a plugin, nor on a lock a plugin can hold:
 *  - a scan request is validated, its transactions are handed to
 *    txs_host_submit (which only queues), and the connection is suspended;
 *    the last report's callback (an executor or host thread) resumes it,
 *    and MHD calls the handler again to send the answer. The host's
 *    per-report deadline means every submit is answered.
 *  - /readyz, /metrics and /v1/plugins answer from a snapshot read by a
 *    thread of its own (snapshot.c); the request is suspended until a fresh
 *    one is published or SNAP_WAIT_MS has passed, then answered with the
 *    newest there is.
 *  - restarts and reloads (HTTP, SIGHUP, --watch) run one at a time on a
 *    control thread; an HTTP one is suspended until it is done.
 *  - /healthz touches nothing but atomics.
 * Slow clients are cut by phase deadlines (guard.c) and per-IP and total
 * connection limits (MHD).
 * Access control comes before any body is read: each route's role is
 * checked against the bearer token (auth.c); with TLS (tls.c) MHD runs
 * GnuTLS and a client certificate, when required, is checked in the
 * handshake.
 *
 * Lifetime of a request (struct req): MHD holds one reference (dropped in
 * the completion notifier), every outstanding submit, control job or
 * snapshot wait holds one. `mu` guards pending/suspended/aborted, so "is
 * anything still out?" and "suspend" are one step against "last answer
 * arrived" and "resume".
 *
 * The host is borrowed by each host call through a counter (host_get/put),
 * never a lock a caller could queue behind: detaching (shutdown) stops new
 * borrows at once and waits, with a deadline, for the running ones.
 *
 * Shutdown (serve.c): quiesce (no new connections), wait for in-flight
 * requests; past the drain deadline answer every waiting request 503
 * (server_abort_waiting); detach the host; free it (it delivers what is
 * still pending), then close every connection and wait until MHD has
 * (server_close_connections: MHD 0.9.75 crashes on a request it must refuse
 * while stopping), then stop MHD.
 *
 * Out of memory aborts: this is the daemon's own code (STYLE.md).
 */
#define _GNU_SOURCE
#include "server.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/jscan.h"
#include "guard.h"
#include "listen.h"
#include "metrics.h"
#include "snapshot.h"

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
#define SNAP_WAIT_MS 40      /* longest wait for a fresh plugin snapshot */
#define SNAP_PERIOD_MS 1000  /* snapshots taken unasked (overload history) */
#define SNAP_STALE_MS 1000   /* older than this, /readyz says "stale" */
#define RETRY_AFTER_S "1"
#define ERROR_LOGS_PER_S 20
#define STOP_CLOSE_MS 400    /* server_free's own wait for MHD to close the connections
                              * (serve.c waited already, with its own deadline) */
#define STOP_POLL_MS 5

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

static const int codes[] = {200, 400, 401, 403, 404, 405, 409, 411, 413, 415, 422, 500, 503};
#define NCODES (sizeof codes / sizeof codes[0])

/* ---- state ----------------------------------------------------------------- */

struct ctl_job {
	struct ctl_job *next;
	enum route_id op;    /* RT_RESTART or RT_RELOAD */
	char id[65];         /* "" = every plugin */
	const char *source;  /* "http", "sighup", "watch" */
	struct req *r;       /* HTTP: answered when done; else NULL */
};

struct server {
	struct MHD_Daemon *mhd;
	int listen_fd;
	char address[128];
	server_options opts;
	double start_time;
	char *status_html;          /* GET /, joined from STATUS_HTML */
	size_t status_len;
	guard *guard;
	snapshots *snaps;

	pthread_mutex_t host_mu;    /* guards host and host_users */
	pthread_cond_t host_cv;     /* host_users reached 0 */
	txs_host *host;             /* NULL once detached */
	unsigned host_users;        /* host calls running now */

	pthread_t ctl_thread;       /* runs restarts and reloads */
	pthread_mutex_t ctl_mu;
	pthread_cond_t ctl_cv;
	struct ctl_job *ctl_head;   /* guarded by ctl_mu, as are the two flags */
	bool ctl_http, ctl_stop;    /* ctl_http: an HTTP job is queued or running */
	bool ctl_started;

	pthread_mutex_t reqs_mu;    /* guards the list of live requests and abort_msg */
	struct req *reqs;
	const char *abort_msg;      /* set by server_abort_waiting */

	_Atomic uint32_t in_flight, scans_in_flight;
	_Atomic bool draining;
	_Atomic uint64_t requests[NROUTES][NCODES];
	_Atomic uint64_t duration[NROUTES][TXS_LATENCY_BUCKETS];
	_Atomic uint64_t duration_sum_us[NROUTES];
	_Atomic uint64_t auth_failures[NAUTH_REASONS];
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
	guard_conn *gc;      /* the connection's phase clock; may be NULL */
	struct req *prev, *next; /* srv->reqs, guarded by srv->reqs_mu */
	enum route_id route;
	enum phase phase;
	char method[8];
	char path[160];      /* for log lines; truncated */
	char plugin[65];     /* restart/reload: the id in the path */
	char *body;
	size_t len, cap;
	bool too_big;        /* the body passed max_body; the rest is dropped */
	bool counted_scan;   /* holds one of scans_in_flight */
	bool close_after;    /* answer with Connection: close (framing was bad) */
	bool snap_waited;    /* a GET that waited for a fresh snapshot */
	bool redact;         /* GET /v1/plugins by a scan token: no folder paths */
	double t0;

	pthread_mutex_t mu;  /* guards pending, suspended, aborted, slots[].report */
	size_t pending;      /* submits, control job or snapshot wait not yet answered */
	bool suspended;
	const char *aborted; /* why the answer cannot wait any longer (503) */
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

/* Request errors can come at the request rate (a client hammering a full
 * server); past ERROR_LOGS_PER_S per second they are counted, not logged. */
static txs_log_limit error_limit = TXS_LOG_LIMIT_INIT;

void server_log(const char *level, const char *event, json_t *fields)
{
	txs_log_level lv = TXS_LOG_INFO;
	txs_log_level_parse(level, &lv);
	txs_log(lv, event, fields);
}

static bool log_error_allowed(uint64_t *suppressed_before)
{
	return txs_log_limit_pass(&error_limit, ERROR_LOGS_PER_S, suppressed_before);
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
	/* While draining, keep-alive clients are let go after this answer;
	 * after a framing error the rest of the stream cannot be trusted. */
	if (atomic_load(&r->srv->draining) || r->close_after)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	r->phase = PH_ANSWERED;
	guard_phase(r->srv->guard, r->gc, GUARD_BUSY);
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

static const char *header(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* ---- request lifetime ------------------------------------------------------ */

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

/* Everything is answered, or the server cannot wait any longer. */
static bool req_ready_locked(const struct req *r)
{
	return r->pending == 0 || r->aborted;
}

/* One submit, control job or snapshot wait is answered (report may be
 * NULL); the one that makes the request ready resumes MHD. */
static void req_done_one(struct req *r, struct slot *s, txs_report *report)
{
	pthread_mutex_lock(&r->mu);
	if (s)
		s->report = report;
	r->pending--;
	if (req_ready_locked(r) && r->suspended) {
		r->suspended = false;
		MHD_resume_connection(r->conn);
	}
	pthread_mutex_unlock(&r->mu);
	req_unref(r);
}

/* Marks the request aborted (msg: why) and resumes it if it waits. */
static void req_abort(struct req *r, const char *msg)
{
	pthread_mutex_lock(&r->mu);
	if (!r->aborted)
		r->aborted = msg;
	if (r->suspended) {
		r->suspended = false;
		MHD_resume_connection(r->conn);
	}
	pthread_mutex_unlock(&r->mu);
}

static const char *req_aborted(struct req *r)
{
	pthread_mutex_lock(&r->mu);
	const char *msg = r->aborted;
	pthread_mutex_unlock(&r->mu);
	return msg;
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

/* ---- borrowing the host ----------------------------------------------------- */

/* The host for one call, or NULL once detached; never waits. */
static txs_host *host_get(server *srv)
{
	pthread_mutex_lock(&srv->host_mu);
	txs_host *h = srv->host;
	if (h)
		srv->host_users++;
	pthread_mutex_unlock(&srv->host_mu);
	return h;
}

static void host_put(server *srv)
{
	pthread_mutex_lock(&srv->host_mu);
	if (--srv->host_users == 0)
		pthread_cond_broadcast(&srv->host_cv);
	pthread_mutex_unlock(&srv->host_mu);
}

static txs_host *snap_get(void *ud)
{
	return host_get(ud);
}

static void snap_put(void *ud)
{
	host_put(ud);
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
	if (!strcmp(url, "/v1/reload"))
		return RT_RELOAD; /* every plugin, and folders added or removed: r->plugin "" */
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
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	r->gc = ci ? ci->socket_context : NULL;
	atomic_fetch_add(&srv->in_flight, 1);
	pthread_mutex_lock(&srv->reqs_mu);
	r->aborted = srv->abort_msg;
	r->next = srv->reqs;
	if (srv->reqs)
		srv->reqs->prev = r;
	srv->reqs = r;
	pthread_mutex_unlock(&srv->reqs_mu);
	return r;
}

static void req_unlist(struct req *r)
{
	server *srv = r->srv;
	pthread_mutex_lock(&srv->reqs_mu);
	if (r->prev)
		r->prev->next = r->next;
	else
		srv->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	pthread_mutex_unlock(&srv->reqs_mu);
}

/* ---- access control -------------------------------------------------------- */

/* The role a route needs; NROLES = open to all. /v1/plugins asks for
 * admin, and takes a scan token too (redacted: see refuse_unauthorized). */
static enum auth_role route_role(enum route_id rt)
{
	switch (rt) {
	case RT_SCAN:
	case RT_BATCH: return ROLE_SCAN;
	case RT_PLUGINS:
	case RT_RESTART:
	case RT_RELOAD: return ROLE_ADMIN;
	case RT_METRICS: return ROLE_METRICS;
	default: return NROLES;
	}
}

static void client_address(struct MHD_Connection *conn, char *out, size_t cap)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	snprintf(out, cap, "?");
	if (!ci || !ci->client_addr)
		return;
	socklen_t sl = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                                      : sizeof(struct sockaddr_in);
	getnameinfo(ci->client_addr, sl, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST);
}

/* One refused attempt: counted always, logged within the error rate limit.
 * Neither the token nor the Authorization header is ever logged. */
static void auth_failed(server *srv, const char *client, const char *method, const char *path,
                        enum auth_reason why, const char *detail)
{
	uint64_t suppressed;
	atomic_fetch_add(&srv->auth_failures[why], 1);
	if (!log_error_allowed(&suppressed))
		return;
	json_t *f = json_pack("{s:s, s:s, s:s, s:s}", "client", client, "method", method, "path",
	                      path, "reason", auth_reason_name(why));
	if (f && detail)
		json_object_set_new(f, "detail", json_string(detail));
	if (f && suppressed)
		json_object_set_new(f, "suppressed_before", json_integer((json_int_t)suppressed));
	server_log("warn", "auth_failed", f);
}

/* A client certificate refused in the TLS handshake (tls.c, MHD thread). */
static void on_tls_reject(const char *client, const char *why, void *ud)
{
	auth_failed(ud, client, "-", "-", AUTH_CLIENT_CERT, why);
}

static const char *auth_message(enum auth_reason why, enum auth_role need)
{
	switch (why) {
	case AUTH_MISSING: return "this route needs a token: Authorization: Bearer <token>";
	case AUTH_MALFORMED: return "the Authorization header must be: Bearer <token>";
	case AUTH_INVALID: return "the token is not valid";
	case AUTH_CLIENT_CERT: return "a client certificate is required";
	default:
		return need == ROLE_SCAN    ? "the token is not a scan token"
		       : need == ROLE_ADMIN ? "the token is not an admin token"
		                            : "the token is not a metrics token";
	}
}

/* 401 with WWW-Authenticate (RFC 6750) or 403 for a token of another role. */
static enum MHD_Result respond_unauthorized(struct req *r, enum auth_reason why,
                                            enum auth_role need)
{
	int status = why == AUTH_FORBIDDEN || why == AUTH_CLIENT_CERT ? 403 : 401;
	const char *challenge = why == AUTH_MISSING ? "Bearer realm=\"txscan\""
	                        : why == AUTH_FORBIDDEN
	                            ? "Bearer realm=\"txscan\", error=\"insufficient_scope\""
	                            : "Bearer realm=\"txscan\", error=\"invalid_token\"";
	json_t *j = json_pack("{s:s, s:i}", "error", auth_message(why, need), "status", status);
	return respond_json(r, status, j, why == AUTH_CLIENT_CERT ? NULL : "WWW-Authenticate",
	                    challenge);
}

/* Checks the route's role (and, with mutual TLS, that the connection has
 * a client certificate); true when the request was refused (*rc set). */
static bool refuse_unauthorized(struct req *r, enum MHD_Result *rc)
{
	server *srv = r->srv;
	enum auth_role need = route_role(r->route);
	enum auth_reason why = AUTH_OK;
	unsigned roles = 0;
	char client[64];
	if (srv->opts.tls) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
		if (!tls_session_ok(srv->opts.tls, ci ? ci->tls_session : NULL))
			why = AUTH_CLIENT_CERT;
	}
	if (why == AUTH_OK && need != NROLES)
		why = auth_check(srv->opts.auth, header(r, MHD_HTTP_HEADER_AUTHORIZATION), need,
		                 &roles);
	/* A scan token may list the plugins, without their folders. */
	if (why == AUTH_FORBIDDEN && r->route == RT_PLUGINS && (roles & (1u << ROLE_SCAN))) {
		r->redact = true;
		why = AUTH_OK;
	}
	if (why == AUTH_OK)
		return false;
	client_address(r->conn, client, sizeof client);
	auth_failed(srv, client, r->method, r->path, why, NULL);
	*rc = respond_unauthorized(r, why, need);
	return true;
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

/* [{"id", "reasons": [...]}] for every degraded plugin of the snapshot. */
static json_t *degraded_json(const snap_view *v)
{
	json_t *list = json_array();
	for (size_t i = 0; i < v->n; i++)
		if (v->degraded[i])
			json_array_append_new(list, json_pack("{s:s, s:o}", "id", v->plugins[i].id,
			                                      "reasons", snap_reasons_json(v->degraded[i])));
	return list;
}

/* Ids of the plugins that make the server not ready: the never-started
 * ones, or when none can answer, all of them. */
static json_t *not_ready_ids(const snap_view *v, bool any_answers)
{
	json_t *ids = json_array();
	for (size_t i = 0; i < v->n; i++)
		if (v->degraded[i] & (any_answers ? DEG_NOT_STARTED : DEG_CANNOT_ANSWER))
			json_array_append_new(ids, json_string(v->plugins[i].id));
	return ids;
}

static bool any_unstarted(const snap_view *v)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->degraded[i] & DEG_NOT_STARTED)
			return true;
	return false;
}

/* /readyz's verdict (and txscan_ready's). */
static bool view_ready(const snap_view *v)
{
	return v->attached && snap_any_can_answer(v) && !any_unstarted(v);
}

/* 200 while some plugin can answer and every plugin has started (degraded
 * ones listed); 503 otherwise, while draining and once detached. A plugin
 * that never started is a broken deployment (a rollout should stop there);
 * trouble at run time (breaker, overload, quarantine) is one plugin's,
 * shown in every report, and does not take the others out of rotation. */
static enum MHD_Result get_readyz(struct req *r)
{
	server *srv = r->srv;
	if (atomic_load(&srv->draining))
		return respond_json(r, 503, json_pack("{s:b, s:s}", "ready", 0, "reason", "draining"),
		                    MHD_HTTP_HEADER_RETRY_AFTER, RETRY_AFTER_S);
	const snap_view *v = snapshots_hold(srv->snaps);
	double age = txs_now_ms() - v->taken_ms;
	bool answers = snap_any_can_answer(v), unstarted = any_unstarted(v);
	bool ready = view_ready(v);
	json_t *j = json_pack("{s:b}", "ready", ready);
	if (!v->attached)
		json_object_set_new(j, "reason", json_string("shutting down"));
	else if (!answers)
		json_object_set_new(j, "reason", json_string("no plugin can answer (not started, "
		                                             "quarantined, no engine or breaker open)"));
	else if (unstarted)
		json_object_set_new(j, "reason", json_string("a plugin is not started (--allow-partial)"));
	if (v->attached && !ready)
		json_object_set_new(j, "plugins", not_ready_ids(v, answers));
	json_object_set_new(j, "degraded", degraded_json(v));
	json_object_set_new(j, "snapshot_age_ms", json_real(round(age * 10.0) / 10.0));
	if (age > SNAP_STALE_MS)
		json_object_set_new(j, "stale", json_true());
	snapshots_release(srv->snaps, v);
	return respond_json(r, ready ? 200 : 503, j, ready ? NULL : MHD_HTTP_HEADER_RETRY_AFTER,
	                    RETRY_AFTER_S);
}

static void http_snapshot(server *srv, metrics_http *h, uint64_t *req, uint64_t *dur,
                          double *sum_ms, const char **names, const char **auth_names,
                          uint64_t *auth_fail)
{
	guard_stats g;
	guard_stats_get(srv->guard, &g);
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
	    .log_suppressed = txs_log_limit_suppressed(&error_limit),
	    .start_time = srv->start_time, .draining = atomic_load(&srv->draining),
	    .connections = g.open, .max_connections = srv->opts.max_connections,
	    .closed_header = g.closed_header, .closed_body = g.closed_body,
	    .closed_idle = g.closed_idle,
	};
	for (size_t i = 0; i < NAUTH_REASONS; i++) {
		auth_names[i] = auth_reason_name((enum auth_reason)i);
		auth_fail[i] = atomic_load(&srv->auth_failures[i]);
	}
	h->nauth = NAUTH_REASONS;
	h->auth_reasons = auth_names;
	h->auth_failures = auth_fail;
}

static enum MHD_Result get_metrics(struct req *r)
{
	server *srv = r->srv;
	uint64_t req[NROUTES * NCODES], dur[NROUTES * TXS_LATENCY_BUCKETS];
	double sum_ms[NROUTES];
	const char *names[NROUTES], *auth_names[NAUTH_REASONS];
	uint64_t auth_fail[NAUTH_REASONS];
	metrics_http h;
	char *text;
	size_t len;
	http_snapshot(srv, &h, req, dur, sum_ms, names, auth_names, auth_fail);
	const snap_view *v = snapshots_hold(srv->snaps);
	h.ready = !h.draining && view_ready(v);
	metrics_host mh = {.n = v->n, .plugins = v->plugins, .degraded = v->degraded,
	                   .in_flight = v->host_in_flight, .console_dropped = v->console_dropped,
	                   .age_s = (txs_now_ms() - v->taken_ms) / 1000.0,
	                   .counts = {.reports = v->reports, .findings = v->findings,
	                              .nfindings = v->nfindings}};
	int rc = metrics_render(&mh, &h, METRICS_MAX_BYTES, &text, &len);
	snapshots_release(srv->snaps, v);
	if (rc < 0)
		return respond_error(r, 500, "metrics text over %u bytes", METRICS_MAX_BYTES);
	return respond(r, 200, text, len, "text/plain; version=0.0.4; charset=utf-8", NULL, NULL);
}

/* The plugin list without what only admins see: each plugin's folder
 * (`dir`) and its load error (which quotes file paths). n excludes the
 * trailing newline; NULL when the text does not parse. */
static char *redacted_plugins(const char *text, size_t *n)
{
	json_t *list = json_loads(text, 0, NULL), *p;
	size_t i;
	if (!list)
		return NULL;
	json_array_foreach(list, i, p) {
		json_object_del(p, "dir");
		json_object_del(p, "error");
	}
	char *body = dump_line(list, n);
	json_decref(list);
	(*n)--;
	return body;
}

static enum MHD_Result get_plugins(struct req *r)
{
	server *srv = r->srv;
	const snap_view *v = snapshots_hold(srv->snaps);
	bool attached = v->attached;
	char *body = NULL;
	size_t n = 0;
	if (v->plugins_json && r->redact) {
		body = redacted_plugins(v->plugins_json, &n);
	} else if (v->plugins_json) {
		n = strlen(v->plugins_json);
		body = xmalloc(n + 2);
		memcpy(body, v->plugins_json, n);
		memcpy(body + n, "\n", 2);
	}
	char age[32];
	snprintf(age, sizeof age, "%.0f", txs_now_ms() - v->taken_ms);
	snapshots_release(srv->snaps, v);
	if (!attached)
		return respond_error(r, 503, "shutting down");
	if (!body)
		return respond_error(r, 500, "listing plugins failed");
	return respond(r, 200, body, n + 1, "application/json", "X-Snapshot-Age-Ms", age);
}

static void snap_done(void *ud)
{
	req_done_one(ud, NULL, NULL);
}

/* The plugin routes first wait (suspended) for a fresh snapshot. */
static bool wait_for_snapshot(struct req *r)
{
	if (r->snap_waited)
		return false;
	r->snap_waited = true;
	r->phase = PH_WAIT;
	pthread_mutex_lock(&r->mu);
	r->pending = 1;
	pthread_mutex_unlock(&r->mu);
	atomic_fetch_add(&r->refs, 1);
	snapshots_request(r->srv->snaps, SNAP_WAIT_MS, snap_done, r);
	return !req_wait(r);
}

static enum MHD_Result handle_get(struct req *r)
{
	switch (r->route) {
	case RT_STATUS: return get_status_page(r);
	case RT_HEALTHZ: return get_healthz(r);
	default: break;
	}
	if (r->route == RT_READYZ && atomic_load(&r->srv->draining))
		return get_readyz(r); /* no need to ask the plugins */
	if (wait_for_snapshot(r))
		return MHD_YES; /* answered when resumed */
	switch (r->route) {
	case RT_READYZ: return get_readyz(r);
	case RT_METRICS: return get_metrics(r);
	case RT_PLUGINS: return get_plugins(r);
	default: return respond_error(r, 500, "no GET handler for %s", r->path);
	}
}

/* ---- POST: headers --------------------------------------------------------- */

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
	txs_host *host = host_get(srv);
	long idx = host ? txs_host_plugin_find(host, r->plugin) : -1;
	if (host)
		host_put(srv);
	if (!host)
		return respond_error(r, 503, "shutting down");
	if (idx < 0 && r->plugin[0]) /* "": POST /v1/reload, every plugin */
		return respond_error(r, 404, "no plugin '%s'", r->plugin);
	r->phase = PH_BODY;
	return MHD_YES;
}

struct framing {
	unsigned lengths;     /* Content-Length headers */
	bool conflict;        /* two of them with different values */
	const char *first;
	bool chunked;         /* a Transfer-Encoding header */
};

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
	struct framing *f = cls;
	(void)kind;
	if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING))
		f->chunked = true;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
		return MHD_YES;
	if (f->lengths++ == 0)
		f->first = value ? value : "";
	else if (strcmp(f->first, value ? value : ""))
		f->conflict = true;
	return MHD_YES;
}

/* Request smuggling and path tricks, refused before anything else: two
 * different Content-Length headers (MHD would take the first), both
 * Content-Length and Transfer-Encoding, a control byte in the path (MHD
 * decodes %00 into a C string, so "/healthz%00.json" would be "/healthz").
 * The connection is closed after the answer: its framing is unknown. */
static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool refuse_bad_request(struct req *r, const char *url, enum MHD_Result *rc)
{
	struct framing f = {0};
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, framing_header, &f);
	const char *why = guard_bad_path(r->gc) || has_control(url)
	                      ? "the path holds a control character (%00-%1F or %7F)"
	                  : f.conflict ? "conflicting Content-Length headers"
	                  : f.lengths && f.chunked
	                      ? "both Content-Length and Transfer-Encoding: send one of them"
	                      : NULL;
	if (!why)
		return false;
	r->close_after = true;
	*rc = respond_error(r, 400, "%s", why);
	return true;
}

static enum MHD_Result on_headers(struct req *r, const char *url, const char *method)
{
	const struct route *rt = &routes[r->route];
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	enum MHD_Result rc;
	if (refuse_bad_request(r, url, &rc))
		return rc;
	if (r->route == RT_OTHER)
		return respond_error(r, 404, "no such resource: %s", r->path);
	if (refuse_unauthorized(r, &rc))
		return rc;
	if (rt->post ? strcmp(method, "POST") : !get)
		return respond_error(r, 405, "%s is not allowed on %s (allowed: %s)", method, rt->name,
		                     rt->allow);
	if (!rt->post) {
		/* Answered from the next call: libmicrohttpd 0.9.75 closes the
		 * connection after an answer queued from this first one (a
		 * keep-alive client, a Prometheus scrape over TLS, would pay a new
		 * connection, and a handshake, for every GET). */
		r->phase = PH_BODY;
		return MHD_YES;
	}
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

/* The server stopped waiting (drain deadline, second signal). */
static enum MHD_Result answer_aborted(struct req *r, const char *msg)
{
	r->close_after = true;
	return respond_error(r, 503, "%s", msg);
}

/* A plugin whose queue is full answers `overloaded` in the report (complete:
 * false) and the answer is still 200: one plugin's overload is that
 * plugin's status, not the request's. */
static enum MHD_Result answer_scan(struct req *r)
{
	struct slot *s = &r->slots[0];
	const char *aborted = req_aborted(r);
	if (aborted)
		return answer_aborted(r, aborted);
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

/* Called once every report is in (or the server stopped waiting). */
static enum MHD_Result answer_batch(struct req *r)
{
	size_t len;
	const char *aborted = req_aborted(r);
	if (aborted)
		return answer_aborted(r, aborted);
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
	txs_host *host = host_get(srv);
	for (size_t i = 0; i < r->nslots; i++) {
		struct slot *s = &r->slots[i];
		s->rc = host ? txs_host_submit(host, r->body + spans[i].off, spans[i].len, 0, on_report, s)
		             : TXS_ESTOPPED;
		if (s->rc) {
			s->err = xstrdup(host ? txs_last_error() : "shutting down");
			req_done_one(r, NULL, NULL);
		}
	}
	if (host)
		host_put(srv);
	return host != NULL;
}

static enum MHD_Result start_scan(struct req *r)
{
	body_error e;
	body_span *spans = NULL;
	size_t n = 0;
	enum body_kind kind = r->route == RT_BATCH ? BODY_BATCH : BODY_SCAN;
	const char *aborted = req_aborted(r);
	if (aborted)
		return answer_aborted(r, aborted);
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

/* Runs one restart or reload (id NULL: reload all) with the host borrowed;
 * fills *status and *body (JSON) and logs the outcome. On the control
 * thread only: it may wait as long as the plugin makes it. */
static int control_run(server *srv, enum route_id op, const char *id, const char *source,
                       int *status, json_t **body)
{
	txs_plugin_info info = {0};
	char err[1024] = "";
	double t0 = txs_now_ms();
	txs_host *host = host_get(srv);
	int rc = !host ? TXS_ESTOPPED
	         : op == RT_RESTART ? txs_host_restart(host, id)
	         : id ? txs_host_reload(host, id)
	              : txs_host_reload_all(host);
	if (rc)
		snprintf(err, sizeof err, "%s", host ? txs_last_error() : "shutting down");
	long idx = host && id ? txs_host_plugin_find(host, id) : -1;
	if (idx >= 0)
		txs_host_plugin_info(host, (size_t)idx, &info);
	if (host)
		host_put(srv);

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

static bool same_job(const struct ctl_job *a, const struct ctl_job *b)
{
	return a->op == b->op && !strcmp(a->id, b->id) && !a->r && !b->r;
}

/* Queues a job for the control thread. An HTTP job (j->r) is refused while
 * another HTTP job runs or waits (409: the client retries); jobs from a
 * signal or --watch wait their turn, and one already queued for the same
 * plugin absorbs another. Returns false when refused (j is the caller's). */
static bool ctl_enqueue(server *srv, struct ctl_job *j)
{
	pthread_mutex_lock(&srv->ctl_mu);
	bool refuse = srv->ctl_stop || (j->r && srv->ctl_http);
	struct ctl_job **pp = &srv->ctl_head;
	while (!refuse && *pp) {
		if (same_job(*pp, j))
			refuse = true;
		pp = &(*pp)->next;
	}
	if (!refuse) {
		*pp = j;
		srv->ctl_http = srv->ctl_http || j->r;
		pthread_cond_signal(&srv->ctl_cv);
	}
	pthread_mutex_unlock(&srv->ctl_mu);
	return !refuse;
}

int server_reload(server *srv, const char *id, const char *source)
{
	struct ctl_job *j = xcalloc(1, sizeof *j);
	j->op = RT_RELOAD;
	snprintf(j->id, sizeof j->id, "%s", id ? id : "");
	j->source = source;
	if (!ctl_enqueue(srv, j))
		free(j);
	return 0;
}

static void control_one(server *srv, struct ctl_job *j)
{
	json_t *body = NULL;
	int status;
	control_run(srv, j->op, j->id[0] ? j->id : NULL, j->source, &status, &body);
	struct req *r = j->r;
	if (r) {
		size_t len;
		char *text = dump_line(body, &len);
		pthread_mutex_lock(&r->mu); /* the request may be answered (aborted) meanwhile */
		r->ctl_status = status;
		r->ctl_body = text;
		pthread_mutex_unlock(&r->mu);
	}
	json_decref(body);
	if (r) {
		pthread_mutex_lock(&srv->ctl_mu);
		srv->ctl_http = false; /* before answering: the client may send the next at once */
		pthread_mutex_unlock(&srv->ctl_mu);
		req_done_one(r, NULL, NULL);
	}
	free(j);
}

static void *control_main(void *arg)
{
	server *srv = arg;
	pthread_mutex_lock(&srv->ctl_mu);
	for (;;) {
		while (!srv->ctl_head && !srv->ctl_stop)
			pthread_cond_wait(&srv->ctl_cv, &srv->ctl_mu);
		if (srv->ctl_stop)
			break;
		struct ctl_job *j = srv->ctl_head;
		srv->ctl_head = j->next;
		pthread_mutex_unlock(&srv->ctl_mu);
		control_one(srv, j);
		pthread_mutex_lock(&srv->ctl_mu);
	}
	struct ctl_job *left = srv->ctl_head; /* stopping: HTTP jobs left get 503 */
	srv->ctl_head = NULL;
	pthread_mutex_unlock(&srv->ctl_mu);
	while (left) {
		struct ctl_job *next = left->next;
		if (left->r) {
			pthread_mutex_lock(&left->r->mu);
			left->r->ctl_status = 503;
			left->r->ctl_body = xstrdup("{\"error\":\"shutting down\",\"status\":503}\n");
			pthread_mutex_unlock(&left->r->mu);
			req_done_one(left->r, NULL, NULL);
		}
		free(left);
		left = next;
	}
	return NULL;
}

static enum MHD_Result answer_control(struct req *r);

static enum MHD_Result start_control(struct req *r)
{
	server *srv = r->srv;
	struct ctl_job *j = xcalloc(1, sizeof *j);
	j->op = r->route;
	snprintf(j->id, sizeof j->id, "%s", r->plugin);
	j->source = "http";
	j->r = r;
	pthread_mutex_lock(&r->mu);
	r->pending = 1;
	pthread_mutex_unlock(&r->mu);
	atomic_fetch_add(&r->refs, 1);
	r->phase = PH_WAIT;
	if (!ctl_enqueue(srv, j)) {
		free(j);
		r->pending = 0;
		atomic_fetch_sub(&r->refs, 1);
		return respond_error(r, 409, "another restart or reload is in progress; retry");
	}
	if (!req_wait(r))
		return MHD_YES; /* answered when resumed */
	return answer_control(r);
}

static enum MHD_Result answer_control(struct req *r)
{
	pthread_mutex_lock(&r->mu);
	const char *aborted = r->aborted;
	char *body = r->ctl_body;
	r->ctl_body = NULL;
	pthread_mutex_unlock(&r->mu);
	if (!body)
		return answer_aborted(r, aborted ? aborted : "shutting down");
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
		guard_phase(r->srv->guard, r->gc, GUARD_BUSY);
		if (!routes[r->route].post)
			return handle_get(r);
		if (r->route == RT_SCAN || r->route == RT_BATCH)
			return start_scan(r);
		return start_control(r);
	}
	if (r->phase != PH_WAIT || !req_wait(r))
		return MHD_YES;
	switch (r->route) {
	case RT_SCAN: return answer_scan(r);
	case RT_BATCH: return answer_batch(r);
	case RT_RESTART:
	case RT_RELOAD: return answer_control(r);
	default: return handle_get(r);
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
		guard_phase(r->srv->guard, r->gc, GUARD_BODY);
		return on_headers(r, url, method);
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
	uint64_t suppressed;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && r->phase != PH_ANSWERED &&
	    log_error_allowed(&suppressed)) { /* slow clients cut by the guard come in floods */
		json_t *f = json_pack("{s:s, s:s, s:i}", "method", r->method, "path", r->path, "code",
		                      (int)toe);
		if (f && suppressed)
			json_object_set_new(f, "suppressed_before", json_integer((json_int_t)suppressed));
		server_log("warn", "request_aborted", f);
	}
	if (r->counted_scan)
		atomic_fetch_sub(&srv->scans_in_flight, 1);
	guard_phase(srv->guard, r->gc, GUARD_IDLE);
	req_unlist(r);
	atomic_fetch_sub(&srv->in_flight, 1);
	req_unref(r);
}

/* A TCP connection opens or closes (its socket context is the guard's). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
	server *srv = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		*socket_context = ci ? guard_open(srv->guard, ci->connect_fd) : NULL;
	} else {
		guard_close(srv->guard, *socket_context);
		*socket_context = NULL;
	}
}

/* MHD's URI log callback: the request line, raw (before %XX decoding). */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
	server *srv = cls;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci && ci->socket_context)
		guard_request_line(srv->guard, ci->socket_context, uri);
	return NULL; /* con_cls stays NULL: on_request makes the request */
}

static void on_guard_log(unsigned header, unsigned body, unsigned idle, void *ud)
{
	uint64_t suppressed;
	(void)ud;
	if (!log_error_allowed(&suppressed))
		return;
	server_log("warn", "connections_timed_out",
	           json_pack("{s:i, s:i, s:i}", "headers", (int)header, "body", (int)body, "idle",
	                     (int)idle));
}

/* MHD's own messages; rate-limited like request errors, since a flood of
 * connections turned away by a limit makes one each. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	uint64_t suppressed;
	(void)cls;
	if (!log_error_allowed(&suppressed))
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	json_t *f = json_pack("{s:s}", "message", msg);
	if (f && suppressed)
		json_object_set_new(f, "suppressed_before", json_integer((json_int_t)suppressed));
	server_log("warn", "mhd", f);
}

/* ---- listening ------------------------------------------------------------- */

static int open_listen(server *srv, char *err, size_t errlen)
{
	return listen_open(srv->opts.listen, "--listen", &srv->listen_fd, srv->address,
	                   sizeof srv->address, err, errlen);
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family != AF_INET6)
		return false;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(a))
		return a->s6_addr[12] == 127;
	return IN6_IS_ADDR_LOOPBACK(a);
}

/* The safe default: an address others can reach needs tokens or client
 * certificates, or --insecure-no-auth to say that it is meant. */
static int refuse_open_exposure(server *srv, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (srv->opts.insecure_no_auth || auth_enabled(srv->opts.auth) || tls_mutual(srv->opts.tls))
		return 0;
	if (getsockname(srv->listen_fd, (struct sockaddr *)&ss, &sl) == 0 && is_loopback(&ss))
		return 0;
	snprintf(err, errlen,
	         "refusing to listen on %s without access control: set --scan-token-file and "
	         "--admin-token-file (or TXSCAN_SCAN_TOKEN and TXSCAN_ADMIN_TOKEN), or "
	         "--tls-client-ca; or listen on 127.0.0.1; or pass --insecure-no-auth to allow "
	         "anyone who reaches the port",
	         srv->address);
	return -1;
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
	    .max_connections = 10000,
	    .per_ip_connections = 128,
	    .conn_timeout_s = 30,
	    .header_timeout_s = 10,
	    .body_timeout_s = 30,
	};
}

/* poll(), not epoll: libmicrohttpd 0.9.75's MHD_quiesce_daemon (server_quiesce)
 * takes the listen socket out of each worker's epoll set while the workers,
 * seeing the daemon quiesced, take it out themselves; the loser's epoll_ctl
 * fails with ENOENT and MHD_PANIC aborts the process (`txscan serve` on a
 * SIGTERM in CI: "Failed to remove listen FD from epoll set"). With poll()
 * the quiesce only signals each worker, which leaves the socket out of its
 * next poll set. */
static int start_mhd(server *srv, char *err, size_t errlen)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
	                 MHD_USE_ITC | MHD_USE_ERROR_LOG;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(srv->listen_fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (srv->opts.tls)
		flags |= MHD_USE_TLS;
	srv->mhd = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, srv,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, /* first, or MHD logs before it */
	    MHD_OPTION_LISTEN_SOCKET, srv->listen_fd,
	    MHD_OPTION_THREAD_POOL_SIZE, srv->opts.threads,
	    MHD_OPTION_CONNECTION_LIMIT, srv->opts.max_connections,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, srv->opts.per_ip_connections,
	    MHD_OPTION_CONNECTION_TIMEOUT, srv->opts.conn_timeout_s,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
	    MHD_OPTION_URI_LOG_CALLBACK, on_request_line, srv,
	    /* Last: without TLS the list ends here. */
	    srv->opts.tls ? MHD_OPTION_HTTPS_PRIORITIES : MHD_OPTION_END, tls_priorities(),
	    MHD_OPTION_HTTPS_CERT_CALLBACK, tls_cert_callback(),
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
	pthread_mutex_init(&srv->host_mu, NULL);
	txs_cond_init(&srv->host_cv);
	pthread_mutex_init(&srv->ctl_mu, NULL);
	pthread_cond_init(&srv->ctl_cv, NULL);
	pthread_mutex_init(&srv->reqs_mu, NULL);
}

/* The guard, the snapshot threads and the control thread. */
static int start_threads(server *srv, char *err, size_t errlen)
{
	guard_limits gl = {.header_s = srv->opts.header_timeout_s,
	                   .body_s = srv->opts.body_timeout_s,
	                   .idle_s = srv->opts.conn_timeout_s};
	if (guard_new(&srv->guard, &gl, on_guard_log, srv) < 0 ||
	    snapshots_new(&srv->snaps, SNAP_PERIOD_MS, snap_get, snap_put, srv) < 0) {
		snprintf(err, errlen, "cannot start the server's threads");
		return -1;
	}
	if (pthread_create(&srv->ctl_thread, NULL, control_main, srv)) {
		snprintf(err, errlen, "cannot start the control thread");
		return -1;
	}
	srv->ctl_started = true;
	return 0;
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
	if (srv->opts.tls)
		tls_set_reject_hook(srv->opts.tls, on_tls_reject, srv);
	if (open_listen(srv, err, errlen) < 0 || refuse_open_exposure(srv, err, errlen) < 0 ||
	    start_threads(srv, err, errlen) < 0 || start_mhd(srv, err, errlen) < 0)
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

unsigned server_abort_waiting(server *srv, const char *msg)
{
	unsigned n = 0;
	pthread_mutex_lock(&srv->reqs_mu);
	if (!srv->abort_msg)
		srv->abort_msg = msg;
	for (struct req *r = srv->reqs; r; r = r->next) {
		if (r->route == RT_SCAN || r->route == RT_BATCH || r->route == RT_RESTART ||
		    r->route == RT_RELOAD) {
			req_abort(r, srv->abort_msg);
			n++;
		}
	}
	pthread_mutex_unlock(&srv->reqs_mu);
	return n;
}

bool server_detach_host(server *srv, double deadline_ms)
{
	pthread_mutex_lock(&srv->host_mu);
	srv->host = NULL;
	while (srv->host_users && txs_now_ms() < deadline_ms) {
		struct timespec ts = txs_timespec((uint64_t)(deadline_ms * 1e6));
		pthread_cond_timedwait(&srv->host_cv, &srv->host_mu, &ts);
	}
	bool idle = srv->host_users == 0;
	pthread_mutex_unlock(&srv->host_mu);
	return idle;
}

/* Closes every client connection, through MHD, before MHD stops.
 * libmicrohttpd 0.9.75 (Debian 12) crashes when it has to answer a request
 * with an error of its own (400 malformed, 431 too big, ...) after
 * MHD_stop_daemon has set its shutdown flag and before the worker has left
 * its loop: MHD_queue_response then returns MHD_YES without queueing, and
 * the error path builds a header from a NULL response (SIGSEGV at
 * response->flags; fixed upstream in 1.0.1, commit 09fa10e9). So no
 * connection may be left for that window: the guard shuts down every socket,
 * MHD sees the end of the stream and closes the connection on its own
 * thread, and we wait until the last one is closed. No new connection is
 * accepted meanwhile (server_quiesce; a no-op when done). */
bool server_close_connections(server *srv, double deadline_ms)
{
	if (!srv->guard || !srv->mhd)
		return true;
	server_quiesce(srv);
	unsigned left;
	while ((left = guard_shutdown_all(srv->guard)) > 0 && txs_now_ms() < deadline_ms) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = STOP_POLL_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (left)
		server_log("warn", "connections_left_open", json_pack("{s:i}", "connections", (int)left));
	return left == 0;
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
	snapshots_free(srv->snaps); /* answers what waits for one: before MHD stops */
	if (srv->mhd) {
		server_close_connections(srv, txs_now_ms() + STOP_CLOSE_MS);
		MHD_stop_daemon(srv->mhd);
	}
	guard_free(srv->guard);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	pthread_cond_destroy(&srv->ctl_cv);
	pthread_mutex_destroy(&srv->ctl_mu);
	pthread_cond_destroy(&srv->host_cv);
	pthread_mutex_destroy(&srv->host_mu);
	pthread_mutex_destroy(&srv->reqs_mu);
	free(srv->status_html);
	free(srv);
}
