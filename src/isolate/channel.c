/*
 * channel.c - frames between the host and an engine process (channel.h).
 *
 * Integers travel in the host's byte order: both ends are the same build on
 * the same machine. Decoders never trust a length: each is checked against
 * what is left of the frame before anything is read or allocated.
 */
#define _GNU_SOURCE
#include "channel.h"

#include "util/jscan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void chan_header_put(unsigned char *dst, const chan_header *h)
{
	memcpy(dst, &h->len, 4);
	memcpy(dst + 4, &h->type, 2);
	memcpy(dst + 6, &h->flags, 2);
	memcpy(dst + 8, &h->id, 8);
}

void chan_header_get(const unsigned char *src, chan_header *h)
{
	memcpy(&h->len, src, 4);
	memcpy(&h->type, src + 4, 2);
	memcpy(&h->flags, src + 6, 2);
	memcpy(&h->id, src + 8, 8);
}

int chan_buf_reserve(chan_buf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	unsigned char *p = realloc(b->p, cap);
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

int chan_buf_put(chan_buf *b, const void *src, size_t n)
{
	if (chan_buf_reserve(b, n))
		return -1;
	if (n)
		memcpy(b->p + b->len, src, n);
	b->len += n;
	return 0;
}

static int put_u32(chan_buf *b, uint32_t v)
{
	return chan_buf_put(b, &v, 4);
}

/* A length and the bytes (len UINT32_MAX: absent). */
static int put_text(chan_buf *b, const char *s, size_t n)
{
	return put_u32(b, s ? (uint32_t)n : UINT32_MAX) || (s && chan_buf_put(b, s, n));
}

static int begin(chan_buf *b, uint16_t type, uint64_t id, size_t *at)
{
	unsigned char hdr[CHAN_HEADER] = {0};
	*at = b->len;
	chan_header h = {.type = type, .id = id};
	chan_header_put(hdr, &h);
	return chan_buf_put(b, hdr, sizeof hdr);
}

/* Writes the payload length into the header begun at at. */
static int finish(chan_buf *b, size_t at, int rc)
{
	if (rc) {
		b->len = at;
		return -1;
	}
	size_t n = b->len - at - CHAN_HEADER;
	if (n > UINT32_MAX) {
		b->len = at;
		return -1;
	}
	uint32_t n32 = (uint32_t)n;
	memcpy(b->p + at, &n32, 4);
	return 0;
}

int chan_frame(chan_buf *b, uint16_t type, uint64_t id, const void *payload, size_t len)
{
	size_t at;
	int rc = begin(b, type, id, &at) || chan_buf_put(b, payload, len);
	return finish(b, at, rc);
}

void chan_buf_compact(chan_buf *b)
{
	if (!b->off)
		return;
	memmove(b->p, b->p + b->off, b->len - b->off);
	b->len -= b->off;
	b->off = 0;
}

void chan_buf_free(chan_buf *b)
{
	free(b->p);
	*b = (chan_buf){0};
}

void chan_progress_put(chan_progress *pg, uint64_t id, uint64_t start_ns, uint32_t tid)
{
	uint64_t s = atomic_load_explicit(&pg->seq, memory_order_relaxed);
	atomic_store_explicit(&pg->seq, s + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&pg->id, id, memory_order_relaxed);
	atomic_store_explicit(&pg->start_ns, start_ns, memory_order_relaxed);
	atomic_store_explicit(&pg->tid, tid, memory_order_relaxed);
	atomic_store_explicit(&pg->seq, s + 2, memory_order_release);
}

bool chan_progress_get(chan_progress *pg, uint64_t *id, uint64_t *start_ns, uint32_t *tid)
{
	for (int i = 0; i < 64; i++) {
		uint64_t s1 = atomic_load_explicit(&pg->seq, memory_order_acquire);
		if (s1 & 1)
			continue;
		*id = atomic_load_explicit(&pg->id, memory_order_relaxed);
		*start_ns = atomic_load_explicit(&pg->start_ns, memory_order_relaxed);
		*tid = atomic_load_explicit(&pg->tid, memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&pg->seq, memory_order_relaxed) == s1)
			return true;
	}
	return false;
}

int chan_take(chan_buf *b, size_t max_payload, chan_header *h, const unsigned char **payload)
{
	if (b->len - b->off < CHAN_HEADER)
		return 0;
	chan_header_get(b->p + b->off, h);
	if (h->len > max_payload)
		return -1;
	if (b->len - b->off - CHAN_HEADER < h->len)
		return 0;
	*payload = b->p + b->off + CHAN_HEADER;
	b->off += CHAN_HEADER + h->len;
	return 1;
}

/* ---- reading a payload ---------------------------------------------------- */

typedef struct rd {
	const unsigned char *p;
	size_t left;
	bool bad;
} rd;

static void get(rd *r, void *dst, size_t n)
{
	if (r->bad || r->left < n) {
		r->bad = true;
		memset(dst, 0, n);
		return;
	}
	memcpy(dst, r->p, n);
	r->p += n;
	r->left -= n;
}

/* A length-prefixed text: points into the payload; absent: NULL. */
static const char *get_text(rd *r, size_t *n)
{
	uint32_t len;
	get(r, &len, 4);
	*n = 0;
	if (r->bad || len == UINT32_MAX)
		return NULL;
	if (len > r->left) {
		r->bad = true;
		return NULL;
	}
	const char *s = (const char *)r->p;
	r->p += len;
	r->left -= len;
	*n = len;
	return s;
}

bool chan_utf8_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end) {
		unsigned c = *p;
		size_t k;
		unsigned min;
		if (c == 0)
			return false;
		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3, min = 0x10000;
		else
			return false;
		if ((size_t)(end - p) <= k)
			return false;
		unsigned cp = c & (0x3f >> k);
		for (size_t i = 1; i <= k; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += k + 1;
	}
	return true;
}

/* A private, NUL-terminated copy of checked text. */
static char *copy_text(const char *s, size_t n)
{
	char *c = malloc(n + 1);
	if (!c)
		return NULL;
	memcpy(c, s, n);
	c[n] = '\0';
	return c;
}

/* ---- results -------------------------------------------------------------- */

int chan_lane_encode(chan_buf *b, const chan_lane *lane)
{
	size_t at;
	int rc = begin(b, CH_LANE, 0, &at) || chan_buf_put(b, &lane->tid, 4) ||
	         chan_buf_put(b, &lane->run_ns, 8) || chan_buf_put(b, &lane->wait_ns, 8);
	return finish(b, at, rc);
}

const char *chan_lane_decode(const unsigned char *p, size_t len, chan_lane *lane)
{
	rd r = {p, len, false};
	get(&r, &lane->tid, 4);
	get(&r, &lane->run_ns, 8);
	get(&r, &lane->wait_ns, 8);
	if (r.bad || r.left || lane->tid == 0 || lane->tid > (1u << 30))
		return "lane frame: bad contents";
	return NULL;
}

int chan_result_encode(chan_buf *b, uint64_t id, const txs_scan_result *r, const chan_lane *lane)
{
	size_t at;
	uint32_t st = (uint32_t)r->status;
	int rc = begin(b, CH_RESULT, id, &at) || chan_buf_put(b, &st, 4) ||
	         chan_buf_put(b, &lane->tid, 4) || chan_buf_put(b, &lane->run_ns, 8) ||
	         chan_buf_put(b, &lane->wait_ns, 8) ||
	         chan_buf_put(b, &r->ms, 8) || chan_buf_put(b, &r->generation, 8) ||
	         put_text(b, r->json, r->json ? r->json_len : 0) ||
	         put_text(b, r->error, r->error ? strlen(r->error) : 0);
	return finish(b, at, rc);
}

/* NULL when s[0..n) is one JSON value, else why not, in the words the
 * host uses for a result in a thread (host/findings.c); owned. */
static char *json_fault(const char *s, size_t n)
{
	jscan js;
	jscan_init(&js, s, n);
	if (jscan_value(&js, 1) && jscan_end(&js))
		return NULL;
	char *why = NULL;
	if (asprintf(&why, "result is not JSON: %s at byte %zu", js.syntax ? js.syntax : "?",
	             js.at) < 0)
		why = NULL;
	return why ? why : strdup("result is not JSON");
}

static bool status_ok(uint32_t st)
{
	return st <= TXS_STATUS_STOPPED;
}

const char *chan_result_decode(const unsigned char *p, size_t len, size_t max_json,
                               txs_scan_result *out, chan_lane *lane)
{
	rd r = {p, len, false};
	uint32_t st;
	double ms;
	uint64_t gen;
	size_t jn, en;
	memset(out, 0, sizeof *out);
	get(&r, &st, 4);
	get(&r, &lane->tid, 4);
	get(&r, &lane->run_ns, 8);
	get(&r, &lane->wait_ns, 8);
	get(&r, &ms, 8);
	get(&r, &gen, 8);
	const char *json = get_text(&r, &jn);
	const char *err = get_text(&r, &en);
	if (r.bad || r.left)
		return "result frame: lengths do not add up";
	if (!status_ok(st))
		return "result frame: unknown status";
	if (lane->tid == 0 || lane->tid > (1u << 30))
		return "result frame: bad thread id";
	if (!(ms >= 0 && ms < 1e9))
		return "result frame: time out of range";
	if (jn > max_json || en > CHAN_MAX_TEXT)
		return "result frame: text over its cap";
	if ((st == TXS_STATUS_OK) != (json != NULL) || (st != TXS_STATUS_OK && !err))
		return "result frame: status and contents disagree";
	/* copied out once; every check below reads the private copy */
	out->json = json ? copy_text(json, jn) : NULL;
	out->error = err ? copy_text(err, en) : NULL;
	if ((json && !out->json) || (err && !out->error)) {
		txs_scan_result_clear(out);
		return "out of memory";
	}
	if (out->error && !chan_utf8_ok(out->error, en)) {
		txs_scan_result_clear(out);
		return "result frame: invalid UTF-8";
	}
	out->status = (txs_status)st;
	/* JSON the host refuses (JSON.stringify escapes a lone surrogate, and
	 * nesting may pass JSCAN_MAX_DEPTH) is the scan's error, as in a
	 * thread: not the channel's fault. It killed the process, and the
	 * innocent scans behind it with it. */
	char *fault = out->json ? json_fault(out->json, jn) : NULL;
	if (fault) {
		free(out->json);
		out->json = NULL;
		jn = 0;
		out->status = TXS_STATUS_ERROR;
		out->error = fault;
	}
	out->json_len = jn;
	out->ms = ms;
	out->generation = gen;
	return NULL;
}

/* ---- rc + text -------------------------------------------------------------- */

int chan_rc_encode(chan_buf *b, uint16_t type, uint64_t id, int rc, const char *text)
{
	size_t at;
	int32_t v = rc;
	int e = begin(b, type, id, &at) || chan_buf_put(b, &v, 4) ||
	        put_text(b, text ? text : "", text ? strlen(text) : 0);
	return finish(b, at, e);
}

const char *chan_rc_decode(const unsigned char *p, size_t len, int *rc, char **text)
{
	rd r = {p, len, false};
	int32_t v;
	size_t n;
	*text = NULL;
	get(&r, &v, 4);
	const char *s = get_text(&r, &n);
	if (r.bad || r.left || !s || n > CHAN_MAX_TEXT)
		return "control frame: bad lengths";
	if (v > 0 || v < TXS_ENOTFOUND)
		return "control frame: unknown code";
	*text = copy_text(s, n);
	if (!*text)
		return "out of memory";
	if (!chan_utf8_ok(*text, n)) {
		free(*text);
		*text = NULL;
		return "control frame: invalid UTF-8";
	}
	*rc = v;
	return NULL;
}

/* ---- console -------------------------------------------------------------- */

int chan_console_encode(chan_buf *b, uint64_t scan, const char *level, const char *msg, size_t len)
{
	size_t at;
	int rc = begin(b, CH_CONSOLE, scan, &at) || put_text(b, level, strlen(level)) ||
	         put_text(b, msg, len);
	return finish(b, at, rc);
}

const char *chan_console_decode(const unsigned char *p, size_t len, char *level, size_t level_cap,
                                char **msg, size_t *msg_len)
{
	rd r = {p, len, false};
	size_t ln, mn;
	*msg = NULL;
	const char *l = get_text(&r, &ln);
	const char *m = get_text(&r, &mn);
	if (r.bad || r.left || !l || !m || ln >= level_cap || mn > CHAN_MAX_TEXT)
		return "console frame: bad lengths";
	for (size_t i = 0; i < ln; i++)
		if (l[i] < 'a' || l[i] > 'z')
			return "console frame: bad level";
	memcpy(level, l, ln);
	level[ln] = '\0';
	*msg = copy_text(m, mn);
	if (!*msg)
		return "out of memory";
	if (!chan_utf8_ok(*msg, mn)) {
		free(*msg);
		*msg = NULL;
		return "console frame: invalid UTF-8";
	}
	*msg_len = mn;
	return NULL;
}

/* ---- events ------------------------------------------------------------- */

int chan_event_encode(chan_buf *b, const char *event, const char *detail)
{
	size_t at;
	size_t dn = strlen(detail);
	int rc = begin(b, CH_EVENT, 0, &at) || put_text(b, event, strlen(event)) ||
	         put_text(b, detail, dn < CHAN_MAX_TEXT ? dn : CHAN_MAX_TEXT);
	return finish(b, at, rc);
}

const char *chan_event_decode(const unsigned char *p, size_t len, char *event, size_t event_cap,
                              char **detail)
{
	rd r = {p, len, false};
	size_t en, dn;
	*detail = NULL;
	const char *e = get_text(&r, &en);
	const char *d = get_text(&r, &dn);
	if (r.bad || r.left || !e || !d || !en || en >= event_cap || dn > CHAN_MAX_TEXT)
		return "event frame: bad lengths";
	for (size_t i = 0; i < en; i++)
		if ((e[i] < 'a' || e[i] > 'z') && e[i] != '_')
			return "event frame: bad name";
	memcpy(event, e, en);
	event[en] = '\0';
	*detail = copy_text(d, dn);
	if (!*detail)
		return "out of memory";
	if (!chan_utf8_ok(*detail, dn)) {
		free(*detail);
		*detail = NULL;
		return "event frame: invalid UTF-8";
	}
	return NULL;
}

/* ---- stats -------------------------------------------------------------- */

int chan_stats_encode(chan_buf *b, const txs_executor_stats *s)
{
	return chan_frame(b, CH_STATS, 0, s, sizeof *s);
}

const char *chan_stats_decode(const unsigned char *p, size_t len, txs_executor_stats *s)
{
	if (len != sizeof *s)
		return "stats frame: wrong size";
	/* bools are read as bytes: a byte other than 0/1 in a bool is undefined */
	txs_executor_stats in;
	memcpy(&in, p, sizeof in);
	unsigned char raw[sizeof in];
	memcpy(raw, p, sizeof raw);
	size_t offs[] = {offsetof(txs_executor_stats, quarantined), offsetof(txs_executor_stats, running),
	                 offsetof(txs_executor_stats, busy), offsetof(txs_executor_stats, standby_ready)};
	for (size_t i = 0; i < sizeof offs / sizeof *offs; i++)
		if (raw[offs[i]] > 1)
			return "stats frame: bad flag";
	if (!(in.latency_sum_ms >= 0 && in.latency_sum_ms < 1e18))
		return "stats frame: bad latency";
	if (in.breaker_state > TXS_BREAKER_HALF_OPEN)
		return "stats frame: bad breaker state";
	*s = in;
	return NULL;
}

/* ---- code and limits ------------------------------------------------------ */

int chan_code_encode(chan_buf *b, uint16_t type, uint64_t id, const txs_plugin_code *code,
                     const txs_limits *lim)
{
	size_t at;
	txs_limits l = {0};
	uint32_t has = lim != NULL;
	if (lim)
		l = *lim;
	int rc = begin(b, type, id, &at) || chan_buf_put(b, &has, 4) || chan_buf_put(b, &l, sizeof l) ||
	         put_text(b, code->id, strlen(code->id)) ||
	         put_text(b, code->version, code->version ? strlen(code->version) : 0) ||
	         put_text(b, code->filename, code->filename ? strlen(code->filename) : 0) ||
	         put_text(b, code->source, code->source_len) ||
	         put_text(b, code->config_json, code->config_json ? strlen(code->config_json) : 0);
	return finish(b, at, rc);
}

/* Texts other than the source must be NUL-free: they travel as C strings. */
static char *cstr(rd *r, bool *bad)
{
	size_t n;
	const char *s = get_text(r, &n);
	if (!s)
		return NULL;
	char *c = copy_text(s, n);
	if (!c || strlen(c) != n)
		*bad = true;
	return c;
}

const char *chan_code_decode(const unsigned char *p, size_t len, txs_plugin_code *code,
                             txs_limits *lim, bool *has_lim)
{
	rd r = {p, len, false};
	uint32_t has;
	bool bad = false;
	memset(code, 0, sizeof *code);
	get(&r, &has, 4);
	get(&r, lim, sizeof *lim);
	code->id = cstr(&r, &bad);
	code->version = cstr(&r, &bad);
	code->filename = cstr(&r, &bad);
	size_t sn;
	const char *src = get_text(&r, &sn);
	code->source = src ? copy_text(src, sn) : NULL;
	code->source_len = sn;
	code->config_json = cstr(&r, &bad);
	*has_lim = has == 1;
	if (r.bad || r.left || bad || !code->id || !code->source)
		return "code frame: bad lengths";
	return NULL;
}

void chan_code_clear(txs_plugin_code *code)
{
	free((char *)code->id);
	free((char *)code->version);
	free((char *)code->filename);
	free((char *)code->source);
	free((char *)code->config_json);
	memset(code, 0, sizeof *code);
}
