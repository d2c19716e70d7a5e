/*
 * log.c - JSON or text log lines on stderr, one write(2) each (log.h).
 *
 * The line is built whole in memory (jansson for JSON, so every string is
 * escaped the same way) and written at once: a write(2) of a pipe under
 * PIPE_BUF bytes is atomic, and a longer one from this process is still
 * never cut by another line of ours, because every stderr writer of txscan
 * goes through here.
 */
#define _GNU_SOURCE
#include "log.h"

#include "clock.h"
#include "sbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static void sb_putc(sbuf *b, char c)
{
	sb_put(b, &c, 1);
}

_Thread_local void *txs_log_scan_userdata;

static _Atomic int cfg_format = TXS_LOG_AUTO;
static _Atomic int cfg_least = TXS_LOG_INFO;

static const char *const LEVELS[] = {"debug", "info", "warn", "error"};

void txs_log_setup(txs_log_format format, txs_log_level least)
{
	atomic_store(&cfg_format, format);
	atomic_store(&cfg_least, least);
}

txs_log_format txs_log_format_now(void)
{
	int f = atomic_load_explicit(&cfg_format, memory_order_relaxed);
	if (f == TXS_LOG_AUTO) { /* decided once: stderr does not change */
		f = isatty(STDERR_FILENO) ? TXS_LOG_TEXT : TXS_LOG_JSON;
		atomic_store(&cfg_format, f);
	}
	return (txs_log_format)f;
}

int txs_log_level_parse(const char *name, txs_log_level *out)
{
	for (int i = 0; i < 4; i++)
		if (name && !strcmp(name, LEVELS[i])) {
			*out = (txs_log_level)i;
			return 0;
		}
	if (name && !strcmp(name, "warning")) {
		*out = TXS_LOG_WARN;
		return 0;
	}
	return -1;
}

int txs_log_format_parse(const char *name, txs_log_format *out)
{
	if (name && !strcmp(name, "json"))
		*out = TXS_LOG_JSON;
	else if (name && !strcmp(name, "text"))
		*out = TXS_LOG_TEXT;
	else
		return -1;
	return 0;
}

const char *txs_log_level_name(txs_log_level level)
{
	return (unsigned)level < 4 ? LEVELS[level] : "error";
}

bool txs_log_enabled(txs_log_level level)
{
	return (int)level >= atomic_load_explicit(&cfg_least, memory_order_relaxed);
}

/* ---- text: "txscan: warning: EVENT: message key=value ..." ------------- */

/* A value as text: a plain word as is, other strings quoted, the rest as
 * compact JSON; control characters never reach the terminal raw. */
static void text_value(sbuf *b, const json_t *v, bool bare)
{
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		bool plain = bare || (*s && !strpbrk(s, " \"=\t\n\r"));
		if (!plain) {
			char *q = json_dumps(v, JSON_ENCODE_ANY);
			sb_str(b, q ? q : "\"?\"");
			free(q);
			return;
		}
		for (; *s; s++)
			sb_putc(b, (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
		return;
	}
	char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
	sb_str(b, t ? t : "?");
	free(t);
}

static const char *text_level(txs_log_level level)
{
	switch (level) {
	case TXS_LOG_DEBUG: return "debug: ";
	case TXS_LOG_WARN: return "warning: ";
	case TXS_LOG_ERROR: return "error: ";
	default: return "";
	}
}

/* The generic events of plain messages go without their name. */
static bool generic_event(const char *event)
{
	return !strcmp(event, "error") || !strcmp(event, "warning") || !strcmp(event, "notice");
}

static void text_line(sbuf *b, txs_log_level level, const char *event, json_t *o)
{
	sb_str(b, "txscan: ");
	sb_str(b, text_level(level));
	if (!generic_event(event)) {
		sb_str(b, event);
		sb_str(b, ":");
	}
	bool first = generic_event(event);
	json_t *msg = json_object_get(o, "message");
	if (msg) {
		sb_str(b, first ? "" : " ");
		text_value(b, msg, true);
		first = false;
	}
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		if (!strcmp(k, "ts") || !strcmp(k, "level") || !strcmp(k, "event") ||
		    !strcmp(k, "message"))
			continue;
		sb_str(b, first ? "" : " ");
		first = false;
		sb_str(b, k);
		sb_putc(b, '=');
		text_value(b, v, false);
	}
	sb_putc(b, '\n');
}

/* ---- lines -------------------------------------------------------------- */

static char *json_line(json_t *o, size_t *len)
{
	/* reals (ms) are rounded by their producers; 10 digits print them without noise */
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}

char *txs_log_line(txs_log_level level, const char *event, json_t *fields, size_t *len)
{
	char ts[40];
	char *line = NULL;
	if (!txs_log_enabled(level)) {
		json_decref(fields);
		return NULL;
	}
	txs_utc_timestamp(ts, sizeof ts);
	json_t *o = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", txs_log_level_name(level),
	                      "event", event);
	if (o && fields)
		json_object_update(o, fields);
	json_decref(fields);
	if (!o)
		return NULL;
	if (txs_log_format_now() == TXS_LOG_TEXT) {
		sbuf b = {0};
		text_line(&b, level, event, o);
		if (!b.oom) { /* sb_put keeps it NUL-terminated */
			line = b.p;
			*len = b.len;
		} else {
			free(b.p);
		}
	} else {
		line = json_line(o, len);
	}
	json_decref(o);
	return line;
}

static _Atomic bool erase_line;

void txs_log_erase_line(bool on)
{
	atomic_store(&erase_line, on);
}

void txs_log_write(const char *line, size_t len)
{
	if (atomic_load_explicit(&erase_line, memory_order_relaxed)) {
		static const char ERASE[] = "\r\033[K";
		struct iovec v[2] = {{(void *)ERASE, sizeof ERASE - 1}, {(void *)line, len}};
		ssize_t w = writev(STDERR_FILENO, v, 2); /* one call: the line stays whole */
		if (w == (ssize_t)(sizeof ERASE - 1 + len))
			return;
		if (w < (ssize_t)(sizeof ERASE - 1))
			return; /* a terminal that takes nothing: nowhere to report it */
		line += (size_t)w - (sizeof ERASE - 1);
		len -= (size_t)w - (sizeof ERASE - 1);
	}
	while (len) {
		ssize_t w = write(STDERR_FILENO, line, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere to report it */
		line += w;
		len -= (size_t)w;
	}
}

void txs_log(txs_log_level level, const char *event, json_t *fields)
{
	size_t len;
	char *line = txs_log_line(level, event, fields, &len);
	if (line)
		txs_log_write(line, len);
	free(line);
}

void txs_logf(txs_log_level level, const char *event, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;
	if (!txs_log_enabled(level))
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	json_t *m = msg ? json_string(msg) : NULL;
	if (msg && !m) /* not UTF-8: keep what can be kept */
		m = json_stringn_nocheck(msg, strlen(msg));
	free(msg);
	json_t *f = json_object();
	if (f && m)
		json_object_set_new(f, "message", m);
	else
		json_decref(m);
	txs_log(level, event, f);
}

/* ---- rate limits ----------------------------------------------------------- */

void txs_log_limit_init(txs_log_limit *l)
{
	*l = (txs_log_limit){.window = 0};
	pthread_mutex_init(&l->mu, NULL);
}

void txs_log_limit_destroy(txs_log_limit *l)
{
	pthread_mutex_destroy(&l->mu);
}

bool txs_log_limit_pass(txs_log_limit *l, uint32_t per_s, uint64_t *suppressed)
{
	/* CLOCK_MONOTONIC_COARSE: ~20 ns, and a second's resolution is all we need */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	pthread_mutex_lock(&l->mu);
	if ((int64_t)ts.tv_sec != l->window) {
		l->window = (int64_t)ts.tv_sec;
		l->count = 0;
	}
	bool ok = l->count < per_s;
	*suppressed = 0;
	if (ok) {
		l->count++;
		*suppressed = l->suppressed;
		l->suppressed = 0;
	} else {
		l->suppressed++;
		l->suppressed_total++;
	}
	pthread_mutex_unlock(&l->mu);
	return ok;
}

uint64_t txs_log_limit_suppressed(txs_log_limit *l)
{
	pthread_mutex_lock(&l->mu);
	uint64_t n = l->suppressed_total;
	pthread_mutex_unlock(&l->mu);
	return n;
}
