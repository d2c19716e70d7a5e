/*
 * rpc.c - JSON-RPC 2.0 over HTTP with libcurl (see rpc.h).
 *
 * One easy handle per client keeps the connection alive between calls.
 * The response body goes into a buffer that refuses to grow past
 * max_response (the write callback fails the transfer), then jansson
 * parses it (UTF-8 checked, duplicate keys refused, depth bounded by
 * jansson itself) and every reply is matched to a request id we sent.
 * Transport failures are retried with back-off; a protocol violation is
 * not (the same node will answer the same garbage).
 */
#define _POSIX_C_SOURCE 200809L
#include "chain/rpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rpc_client {
	CURL *curl;
	struct curl_slist *headers;
	struct rpc_options opt;
	uint64_t next_id;
	long err_code;
	long status; /* HTTP status of the last answer */
	const volatile sig_atomic_t *abort;
	char *url;
	char display[256];
	char err[512];
	/* the response body being received */
	char *buf;
	size_t len, cap;
	int overflow;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int fail(rpc_client *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(rpc_client *c, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
	return rc;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	rpc_client *c = ud;
	size_t n = size * nmemb;
	if (n > c->opt.max_response - c->len) {
		c->overflow = 1;
		return 0; /* fails the transfer with CURLE_WRITE_ERROR */
	}
	if (c->len + n + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 1 << 16;
		while (cap < c->len + n + 1)
			cap *= 2;
		char *grown = realloc(c->buf, cap);
		if (!grown)
			return 0;
		c->buf = grown;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, data, n);
	c->len += n;
	c->buf[c->len] = '\0';
	return n;
}

/* "scheme://host[:port]" without user, password, path or query. */
static void set_display(rpc_client *c, const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	snprintf(c->display, sizeof c->display, "the node");
	if (u && !curl_url_set(u, CURLUPART_URL, url, 0) &&
	    !curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) &&
	    !curl_url_get(u, CURLUPART_HOST, &host, 0)) {
		curl_url_get(u, CURLUPART_PORT, &port, 0);
		snprintf(c->display, sizeof c->display, "%s://%s%s%s", scheme, host, port ? ":" : "",
		         port ? port : "");
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
}

static void defaults(struct rpc_options *o, const struct rpc_options *given)
{
	*o = given ? *given : (struct rpc_options){0};
	if (!o->timeout_ms)
		o->timeout_ms = 10000;
	if (!given)
		o->retries = 4;
	if (!o->backoff_ms)
		o->backoff_ms = 100;
	if (!o->max_response)
		o->max_response = (size_t)64 << 20;
}

static int setup(rpc_client *c, const char *url)
{
	CURL *h = c->curl;
	c->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (c->opt.auth) {
		size_t n = strlen(c->opt.auth) + 32;
		char *line = malloc(n);
		if (!line)
			return -1;
		snprintf(line, n, "Authorization: %s", c->opt.auth);
		struct curl_slist *l = curl_slist_append(c->headers, line);
		free(line);
		if (!l)
			return -1;
		c->headers = l;
	}
	if (!c->headers)
		return -1;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->opt.timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->opt.timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* gzip etc., capped after decoding */
	curl_easy_setopt(h, CURLOPT_USERAGENT, "txscan");
	return 0;
}

int rpc_new(rpc_client **out, const char *url, const struct rpc_options *opt, char *err,
            size_t errlen)
{
	*out = NULL;
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(global_rc));
		return RPC_ENET;
	}
	if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
		snprintf(err, errlen, "the RPC URL must start with http:// or https://");
		return RPC_EPROTO;
	}
	rpc_client *c = calloc(1, sizeof *c);
	if (!c || !(c->curl = curl_easy_init())) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return RPC_ENOMEM;
	}
	defaults(&c->opt, opt);
	c->next_id = 1;
	set_display(c, url);
	if (!(c->url = strdup(url)) || setup(c, url)) {
		rpc_free(c);
		snprintf(err, errlen, "out of memory");
		return RPC_ENOMEM;
	}
	*out = c;
	return RPC_OK;
}

int rpc_dup(rpc_client **out, const rpc_client *c, char *err, size_t errlen)
{
	int rc = rpc_new(out, c->url, &c->opt, err, errlen);
	if (!rc && c->abort)
		rpc_set_abort(*out, c->abort);
	return rc;
}

void rpc_free(rpc_client *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->headers);
	free(c->url);
	free(c->buf);
	free(c);
}

const char *rpc_error(const rpc_client *c)
{
	return c->err;
}

long rpc_error_code(const rpc_client *c)
{
	return c->err_code;
}

const char *rpc_display(const rpc_client *c)
{
	return c->display;
}

static int retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return 1;
	default:
		return 0;
	}
}

static int aborted(const rpc_client *c)
{
	return c->abort && *c->abort;
}

/* Sleeps in slices so that a stop request (set by a signal delivered to any
 * thread) ends the wait within 20 ms. */
static void nap_ms(const rpc_client *c, uint32_t ms)
{
	for (uint32_t slept = 0; slept < ms && !aborted(c); slept += 20) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	return aborted(ud);
}

void rpc_set_abort(rpc_client *c, const volatile sig_atomic_t *flag)
{
	c->abort = flag;
	curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, c);
	curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
}

/* One POST; *status = the HTTP status, 0 when there was no answer. */
static CURLcode post_once(rpc_client *c, const char *body, long *status)
{
	c->len = 0;
	c->overflow = 0;
	*status = 0;
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	CURLcode rc = curl_easy_perform(c->curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	return rc;
}

/* POSTs body, retrying transport failures; on 0 the body is in c->buf. */
static int post(rpc_client *c, const char *body)
{
	uint32_t wait = c->opt.backoff_ms;
	for (uint32_t attempt = 0;; attempt++) {
		long status;
		CURLcode rc = post_once(c, body, &status);
		if (rc == CURLE_WRITE_ERROR && c->overflow)
			return fail(c, RPC_EPROTO, "%s: response over %zu bytes", c->display,
			            c->opt.max_response);
		int again = rc != CURLE_OK ? retryable(rc) : status == 429 || status >= 500;
		c->status = status;
		if (rc == CURLE_OK && !again) {
			if (status == 200 || (c->len && c->buf[0] == '{'))
				return RPC_OK; /* some nodes send JSON-RPC errors with 4xx */
			return fail(c, RPC_EPROTO, "%s: HTTP %ld", c->display, status);
		}
		if (rc != CURLE_OK && !again && !aborted(c)) /* TLS, a bad URL...: waiting will not help */
			return fail(c, RPC_EPROTO, "%s: %s", c->display, curl_easy_strerror(rc));
		if (rc != CURLE_OK)
			fail(c, RPC_ENET, "%s: %s", c->display, curl_easy_strerror(rc));
		else
			fail(c, RPC_ENET, "%s: HTTP %ld", c->display, status);
		if (aborted(c))
			return fail(c, RPC_ENET, "%s: interrupted", c->display);
		if (!again || attempt >= c->opt.retries)
			return RPC_ENET;
		nap_ms(c, wait);
		wait = wait * 2 > 5000 ? 5000 : wait * 2;
	}
}

static json_t *request(rpc_client *c, const char *method, json_t *params, uint64_t *id)
{
	*id = c->next_id++;
	return json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", (json_int_t)*id, "method",
	                 method, "params", params ? params : json_array());
}

/* The node's text made safe for a log line: control bytes (a newline, a
 * terminal escape) become '?', cut to n - 1 bytes. */
static void printable(const char *in, char *out, size_t n)
{
	size_t i = 0;
	for (; in[i] && i + 1 < n; i++)
		out[i] = (unsigned char)in[i] < 0x20 || in[i] == 0x7f ? '?' : in[i];
	out[i] = '\0';
}

/* The reply's result (new reference), or NULL with the error set. */
static json_t *take_result(rpc_client *c, json_t *reply, const char *method)
{
	json_t *res = json_object_get(reply, "result"), *err = json_object_get(reply, "error");
	if (err) {
		json_t *code = json_object_get(err, "code"), *msg = json_object_get(err, "message");
		char text[201];
		c->err_code = json_is_integer(code) ? (long)json_integer_value(code) : 0;
		printable(json_is_string(msg) ? json_string_value(msg) : "(no message)", text,
		          sizeof text);
		fail(c, RPC_EREMOTE, "%s: %s: error %ld: %s", c->display, method, c->err_code, text);
		return NULL;
	}
	if (!res) {
		fail(c, RPC_EPROTO, "%s: %s: reply has neither result nor error", c->display, method);
		return NULL;
	}
	return json_incref(res);
}

static json_t *parse_body(rpc_client *c)
{
	json_error_t je;
	json_t *v = json_loadb(c->buf ? c->buf : "", c->len, JSON_REJECT_DUPLICATES, &je);
	char text[sizeof je.text];
	if (!v) { /* jansson quotes the bad token: the node's bytes */
		printable(je.text, text, sizeof text);
		fail(c, RPC_EPROTO, "%s: the answer is not JSON (%s at byte %d)", c->display, text,
		     je.position);
	}
	return v;
}

static int reply_id(const json_t *reply, uint64_t *id)
{
	json_t *v = json_object_get(reply, "id");
	if (!json_is_object(reply) || !json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*id = (uint64_t)json_integer_value(v);
	return 0;
}

int rpc_call(rpc_client *c, const char *method, json_t *params, json_t **result)
{
	const char *m[1] = {method};
	json_t *p[1] = {params};
	return rpc_batch(c, 1, m, p, result);
}

static int send_body(rpc_client *c, json_t *req, json_t **body)
{
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text)
		return fail(c, RPC_ENOMEM, "out of memory");
	c->err_code = 0;
	int rc = post(c, text);
	free(text);
	if (rc)
		return rc;
	*body = parse_body(c);
	return *body ? RPC_OK : RPC_EPROTO;
}

/* Puts each reply of a batch into slot (id - first); every slot once. */
static int match(rpc_client *c, json_t *body, size_t n, uint64_t first, json_t **slot)
{
	json_t *single[1] = {body};
	size_t got = json_is_array(body) ? json_array_size(body) : 1;
	if (got != n || (n > 1 && !json_is_array(body)))
		return fail(c, RPC_EPROTO, "%s: %zu replies to a batch of %zu", c->display,
		            json_is_array(body) ? got : 1, n);
	for (size_t i = 0; i < n; i++) {
		json_t *r = json_is_array(body) ? json_array_get(body, i) : single[0];
		uint64_t id;
		if (reply_id(r, &id) || id < first || id - first >= n || slot[id - first])
			return fail(c, RPC_EPROTO, "%s: a reply with an id that was not asked for",
			            c->display);
		slot[id - first] = r;
	}
	return RPC_OK;
}

int rpc_batch(rpc_client *c, size_t n, const char *const *methods, json_t **params,
              json_t **results)
{
	json_t *req = n > 1 ? json_array() : NULL, *body = NULL;
	json_t **slot = calloc(n ? n : 1, sizeof *slot);
	uint64_t first = c->next_id, id;
	int rc = RPC_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_t *one = request(c, methods[i], params[i], &id);
		results[i] = NULL;
		if (n == 1)
			req = one;
		else if (json_array_append_new(req, one))
			req = NULL;
	}
	if (!req || !slot) {
		json_decref(req);
		fail(c, RPC_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = send_body(c, req, &body)))
		goto out;
	if (n == 1 && json_is_array(body)) /* a single call answered as a batch of one */
		rc = match(c, json_array_size(body) == 1 ? json_array_get(body, 0) : body, 1, first, slot);
	else
		rc = match(c, body, n, first, slot);
	if (rc && c->status != 200) /* a gateway's own JSON error page */
		rc = fail(c, RPC_EPROTO, "%s: HTTP %ld", c->display, c->status);
	for (size_t i = 0; rc == RPC_OK && i < n; i++)
		if (!(results[i] = take_result(c, slot[i], methods[i])))
			rc = json_object_get(slot[i], "error") ? RPC_EREMOTE : RPC_EPROTO;
	if (rc)
		for (size_t i = 0; i < n; i++) {
			json_decref(results[i]);
			results[i] = NULL;
		}
out:
	json_decref(body);
	free(slot);
	return rc;
}
