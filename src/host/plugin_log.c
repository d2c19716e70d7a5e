/*
 * plugin_log.c - plugin failure events, last errors and per-minute counts
 * (plugin_log.h).
 *
 * One mutex per plugin guards the ring and the last error; only failed
 * scans take it, so a plugin that answers ok never touches it, and one
 * that fails pays a lock, a few copies and, ten times a second at most,
 * one formatted line.
 */
#define _GNU_SOURCE
#include "plugin_log.h"

#include "util/utf8.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const STATUS[TXS_FAILURE_STATUSES] = {"error", "timeout", "memory",
                                                         "overloaded", "unavailable"};

const char *plog_status_name(int i)
{
	return i >= 0 && i < TXS_FAILURE_STATUSES ? STATUS[i] : "error";
}

void plog_init(plog *l)
{
	memset(l, 0, sizeof *l);
	pthread_mutex_init(&l->mu, NULL);
	txs_log_limit_init(&l->limit);
}

void plog_destroy(plog *l)
{
	pthread_mutex_destroy(&l->mu);
	txs_log_limit_destroy(&l->limit);
}

static int64_t mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* s[0..n) into dst (cap bytes), cut on a UTF-8 boundary, NUL-terminated. */
static void copy_cut(char *dst, size_t cap, const char *s, size_t n)
{
	size_t valid = utf8_invalid_at(s, n);
	size_t k = utf8_cut(s, valid, cap - 1);
	memcpy(dst, s, k);
	dst[k] = '\0';
}

/* "file:12:5" or "file:12": a location as JSC's stack frames end. */
static bool is_location(const char *s, size_t n)
{
	size_t digits = 0, colons = 0;
	while (n && (isdigit((unsigned char)s[n - 1]) || s[n - 1] == ':')) {
		if (s[n - 1] == ':') {
			if (!digits)
				return false;
			colons++;
			digits = 0;
		} else {
			digits++;
		}
		n--;
	}
	return colons >= 1 && n > 0 && !digits;
}

void plog_split_error(const char *err, char *first, size_t fcap, char *at, size_t acap)
{
	err = err ? err : "";
	const char *nl = strchr(err, '\n');
	copy_cut(first, fcap, err, nl ? (size_t)(nl - err) : strlen(err));
	*at = '\0';
	while (nl) { /* frames: "fn@file:1:2", "file:1:2", "    at fn (file:1:2)" */
		const char *line = nl + 1;
		nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		while (n && (line[n - 1] == ')' || line[n - 1] == ' ' || line[n - 1] == '\r'))
			n--;
		if (!is_location(line, n))
			continue;
		size_t from = n;
		while (from && line[from - 1] != '@' && line[from - 1] != '(' && line[from - 1] != ' ')
			from--;
		copy_cut(at, acap, line + from, n - from);
		return;
	}
}

/* The ring's bucket for this second, reset if it held an older one. */
static struct plog_bucket *bucket_now(plog *l, int64_t sec)
{
	struct plog_bucket *b = &l->ring[(uint64_t)sec % PLOG_SECONDS];
	if (b->sec != sec) {
		memset(b->n, 0, sizeof b->n);
		b->sec = sec;
	}
	return b;
}

static void tx_text(char *dst, size_t cap, json_t *tx)
{
	*dst = '\0';
	if (json_is_string(tx)) {
		copy_cut(dst, cap, json_string_value(tx), strlen(json_string_value(tx)));
	} else if (tx && !json_is_null(tx)) {
		char *t = json_dumps(tx, JSON_ENCODE_ANY);
		if (t)
			copy_cut(dst, cap, t, strlen(t));
		free(t);
	}
}

static void remember(plog *l, const plog_scan *s, int idx)
{
	txs_plugin_failure f = {.time_ms = wall_ms(), .status = s->status};
	tx_text(f.tx, sizeof f.tx, s->tx);
	char at[8];
	plog_split_error(s->error, f.message, sizeof f.message, at, sizeof at);
	int64_t sec = mono_s();
	pthread_mutex_lock(&l->mu);
	bucket_now(l, sec)->n[idx]++;
	l->last = f;
	pthread_mutex_unlock(&l->mu);
}

static json_t *str_or_lossy(const char *s)
{
	json_t *v = json_string(s);
	return v ? v : json_stringn_nocheck(s, strlen(s));
}

char *plog_failure(plog *l, const plog_scan *s, size_t *len)
{
	int idx = (int)s->status - TXS_STATUS_ERROR;
	uint64_t suppressed;
	if (idx < 0 || idx >= TXS_FAILURE_STATUSES)
		return NULL;
	remember(l, s, idx);
	if (!txs_log_enabled(TXS_LOG_WARN) || !txs_log_limit_pass(&l->limit, PLOG_PER_S, &suppressed))
		return NULL;
	char first[1024], at[512];
	plog_split_error(s->error, first, sizeof first, at, sizeof at);
	json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "plugin", s->plugin, "version", s->version,
	                      "generation", (json_int_t)s->generation, "status", STATUS[idx]);
	if (!o)
		return NULL;
	if (s->tx)
		json_object_set(o, "tx", s->tx);
	if (s->line)
		json_object_set_new(o, "line", json_integer((json_int_t)s->line));
	json_object_set_new(o, "error", str_or_lossy(first));
	if (*at)
		json_object_set_new(o, "at", str_or_lossy(at));
	json_object_set_new(o, "ms", json_real(round(s->ms * 1000.0) / 1000.0));
	if (suppressed)
		json_object_set_new(o, "suppressed_before", json_integer((json_int_t)suppressed));
	return txs_log_line(TXS_LOG_WARN, "plugin_failure", o, len);
}

void plog_read(plog *l, txs_plugin_info *info)
{
	int64_t now = mono_s();
	memset(info->failures_minute, 0, sizeof info->failures_minute);
	pthread_mutex_lock(&l->mu);
	info->last_error = l->last;
	for (int i = 0; i < PLOG_SECONDS; i++) {
		const struct plog_bucket *b = &l->ring[i];
		if (b->sec > now - PLOG_SECONDS && b->sec <= now)
			for (int k = 0; k < TXS_FAILURE_STATUSES; k++)
				info->failures_minute[k] += b->n[k];
	}
	pthread_mutex_unlock(&l->mu);
}

/* A console method's log level: log and info are info. */
static txs_log_level console_level(const char *method)
{
	txs_log_level lv;
	if (!strcmp(method, "log"))
		return TXS_LOG_INFO;
	return txs_log_level_parse(method, &lv) == 0 ? lv : TXS_LOG_INFO;
}

char *plog_console_line(const char *plugin, const char *method, const char *msg, size_t len,
                        json_t *tx, uint64_t line, size_t *out_len)
{
	txs_log_level lv = console_level(method);
	if (!txs_log_enabled(lv))
		return NULL;
	json_t *o = json_pack("{s:s, s:s}", "plugin", plugin, "method", method);
	if (!o)
		return NULL;
	if (tx)
		json_object_set(o, "tx", tx);
	if (line)
		json_object_set_new(o, "line", json_integer((json_int_t)line));
	json_t *text = json_stringn(msg, len);
	json_object_set_new(o, "message", text ? text : json_string("[console line is not valid UTF-8]"));
	return txs_log_line(lv, "console", o, out_len);
}
