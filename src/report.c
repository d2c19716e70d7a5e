/*
 * report.c - findings validation, verdict and the report JSON.
 *
 * A plugin's result is all-or-nothing: one invalid finding turns that
 * plugin's status into "error" with a message naming the finding and the
 * field, and none of its findings are reported (a half-valid answer from a
 * rule is not one the user can trust).
 */
#define _GNU_SOURCE
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CODE 128
#define MAX_MESSAGE 4096
#define MAX_FINDINGS 1000

struct txs_report {
	char *json;
	size_t len;
	txs_severity verdict;
	bool complete;
	bool input_error;
	bool is_static; /* report_oom's: never freed */
};

static const char *const SEVERITY[] = {"none", "info", "low", "medium", "high", "critical"};

const char *txs_severity_name(txs_severity s)
{
	return (unsigned)s < 6 ? SEVERITY[s] : "unknown";
}

int txs_severity_parse(const char *name, txs_severity *out)
{
	for (int i = 0; i < 6; i++)
		if (name && !strcmp(name, SEVERITY[i])) {
			*out = (txs_severity)i;
			return 0;
		}
	return TXS_EINVAL;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s;
	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* NULL when f is a valid finding, else what is wrong (malloc'ed). */
static char *check_finding(json_t *f, size_t i, txs_severity *sev)
{
	if (!json_is_object(f))
		return fmt("finding %zu: must be an object, got %s", i, json_kind(f));
	const char *key;
	json_t *v;
	json_object_foreach(f, key, v)
	{
		if (strcmp(key, "code") && strcmp(key, "severity") && strcmp(key, "message") &&
		    strcmp(key, "metadata"))
			return fmt("finding %zu: unknown field \"%s\" (allowed: code, severity, message, "
			           "metadata)", i, key);
	}
	json_t *code = json_object_get(f, "code"), *s = json_object_get(f, "severity");
	json_t *msg = json_object_get(f, "message"), *meta = json_object_get(f, "metadata");
	if (!json_is_string(code) || !json_string_length(code) || json_string_length(code) > MAX_CODE)
		return fmt("finding %zu: code must be a non-empty string of at most %d characters", i,
		           MAX_CODE);
	if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s) ||
	    txs_severity_parse(json_string_value(s), sev) ||
	    *sev == TXS_SEVERITY_NONE)
		return fmt("finding %zu (%s): severity must be one of info, low, medium, high, critical",
		           i, json_string_value(code));
	if (!json_is_string(msg) || json_string_length(msg) > MAX_MESSAGE)
		return fmt("finding %zu (%s): message must be a string of at most %d characters", i,
		           json_string_value(code), MAX_MESSAGE);
	if (meta && !json_is_object(meta))
		return fmt("finding %zu (%s): metadata must be an object, got %s", i,
		           json_string_value(code), json_kind(meta));
	return NULL;
}

/* ---- text building ------------------------------------------------------ */

typedef struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* Any JSON value, compact, keys in their order. */
static void sb_json(sbuf *b, const json_t *v)
{
	char *t = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	if (!t) {
		b->oom = true;
		return;
	}
	sb_str(b, t);
	free(t);
}

/* UTF-8 text already known to be valid (a jansson string, a plugin id) as a
 * JSON string literal: quotes, backslashes and control characters escaped,
 * everything else copied. No allocation per value on the hot path. */
static void sb_escaped(sbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	sb_put(b, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sb_put(b, s + run, i - run);
		run = i + 1;
		char esc[7] = {'\\', (char)c, 0};
		size_t len = 2;
		switch (c) {
		case '"': case '\\': break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			len = 6;
		}
		sb_put(b, esc, len);
	}
	sb_put(b, s + run, n - run);
	sb_put(b, "\"", 1);
}

/* A C string as a JSON string literal. */
static void sb_quoted(sbuf *b, const char *s)
{
	json_t *v = json_string(s);
	if (!v) /* not UTF-8: keep what can be kept */
		v = json_stringn_nocheck(s, strlen(s));
	sb_json(b, v);
	json_decref(v);
}

/* Milliseconds to the microsecond, as jansson prints a real. */
static void sb_ms(sbuf *b, double ms)
{
	char t[48];
	int n = snprintf(t, sizeof t, "%.10g", round(ms * 1000.0) / 1000.0);
	if (n > 0 && (size_t)n < sizeof t - 2 && !strpbrk(t, ".eE")) {
		t[n++] = '.';
		t[n++] = '0';
		t[n] = '\0';
	}
	sb_str(b, t);
}

/* ---- one plugin's part ------------------------------------------------------ */

/* Appends finding f (already checked) to b, tagged with the plugin id. */
static void put_finding(sbuf *b, const char *plugin, json_t *f)
{
	static const char *const keys[] = {"code", "severity", "message", "metadata"};
	sb_str(b, "{\"plugin\":");
	sb_escaped(b, plugin, strlen(plugin));
	for (size_t k = 0; k < 4; k++) {
		json_t *v = json_object_get(f, keys[k]);
		if (!v)
			continue;
		sb_str(b, ",\"");
		sb_str(b, keys[k]);
		sb_str(b, "\":");
		if (json_is_string(v))
			sb_escaped(b, json_string_value(v), json_string_length(v));
		else
			sb_json(b, v);
	}
	sb_put(b, "}", 1);
}

/* Validates a result and serialises its findings into part; NULL, or the
 * error. */
static char *collect(report_part *part, const char *plugin, const char *json, size_t len)
{
	if ((len == 4 && !memcmp(json, "null", 4)) || (len == 2 && !memcmp(json, "[]", 2)))
		return NULL; /* the common answer: nothing found */
	json_error_t je;
	json_t *r = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	if (!r)
		return fmt("result is not JSON: %s", je.text);
	json_t *list = r;
	if (json_is_object(r)) {
		list = json_array();
		json_array_append(list, r);
	} else if (!json_is_array(r) && !json_is_null(r)) {
		char *e = fmt("scanTransaction returned %s; expected null, a finding or an array of "
		              "findings", json_kind(r));
		json_decref(r);
		return e;
	}
	char *err = NULL;
	size_t n = json_is_array(list) ? json_array_size(list) : 0;
	if (n > MAX_FINDINGS)
		err = fmt("%zu findings; at most %d per scan", n, MAX_FINDINGS);
	txs_severity sev = TXS_SEVERITY_NONE, top = TXS_SEVERITY_NONE;
	for (size_t i = 0; !err && i < n; i++) {
		err = check_finding(json_array_get(list, i), i, &sev);
		top = sev > top ? sev : top;
	}
	sbuf b = {0};
	for (size_t i = 0; !err && i < n; i++) {
		if (i)
			sb_put(&b, ",", 1);
		put_finding(&b, plugin, json_array_get(list, i));
	}
	if (!err && b.oom)
		err = strdup("out of memory serialising the findings");
	if (err) {
		free(b.p);
	} else {
		part->findings = b.p;
		part->findings_len = b.len;
		part->top = top;
	}
	if (list != r)
		json_decref(list);
	json_decref(r);
	return err;
}

void report_part_set(report_part *part, const char *plugin, txs_scan_result *res)
{
	*part = (report_part){.status = res->status, .error = res->error, .ms = res->ms};
	res->error = NULL;
	if (res->status == TXS_STATUS_OK) {
		char *err = collect(part, plugin, res->json, res->json_len);
		if (err) {
			part->status = TXS_STATUS_ERROR;
			free(part->error);
			part->error = err;
		}
	}
	txs_scan_result_clear(res);
}

void report_part_clear(report_part *part)
{
	free(part->error);
	free(part->findings);
	*part = (report_part){0};
}

/* ---- the report ---------------------------------------------------------------- */

static txs_report *finish(sbuf *b, txs_severity verdict, bool complete, bool input_error)
{
	txs_report *rep = b->oom ? NULL : calloc(1, sizeof *rep);
	if (!rep) {
		free(b->p);
		return NULL;
	}
	rep->json = b->p;
	rep->len = b->len;
	rep->verdict = verdict;
	rep->complete = complete;
	rep->input_error = input_error;
	return rep;
}

txs_report *report_build(json_t *txid, uint64_t line, double ms, const char *const *ids,
                         const report_part *parts, size_t n)
{
	txs_severity verdict = TXS_SEVERITY_NONE;
	bool complete = true;
	for (size_t i = 0; i < n; i++) {
		complete = complete && parts[i].status == TXS_STATUS_OK;
		if (parts[i].findings && parts[i].top > verdict)
			verdict = parts[i].top;
	}
	sbuf b = {0};
	char num[32];
	sb_str(&b, "{\"tx\":");
	if (txid)
		sb_json(&b, txid);
	else
		sb_str(&b, "null");
	if (line) {
		snprintf(num, sizeof num, ",\"line\":%llu", (unsigned long long)line);
		sb_str(&b, num);
	}
	sb_str(&b, ",\"verdict\":\"");
	sb_str(&b, txs_severity_name(verdict));
	sb_str(&b, complete ? "\",\"complete\":true,\"ms\":" : "\",\"complete\":false,\"ms\":");
	sb_ms(&b, ms);
	sb_str(&b, ",\"findings\":[");
	bool first = true;
	for (size_t i = 0; i < n; i++) {
		if (!parts[i].findings)
			continue;
		if (!first)
			sb_put(&b, ",", 1);
		sb_put(&b, parts[i].findings, parts[i].findings_len);
		first = false;
	}
	sb_str(&b, "],\"plugins\":[");
	for (size_t i = 0; i < n; i++) {
		sb_str(&b, i ? ",{\"id\":" : "{\"id\":");
		sb_escaped(&b, ids[i], strlen(ids[i]));
		sb_str(&b, ",\"status\":\"");
		sb_str(&b, txs_status_name(parts[i].status));
		sb_str(&b, "\",\"ms\":");
		sb_ms(&b, parts[i].ms);
		if (parts[i].error) {
			sb_str(&b, ",\"error\":");
			sb_quoted(&b, parts[i].error);
		}
		sb_put(&b, "}", 1);
	}
	sb_str(&b, "]}");
	return finish(&b, verdict, complete, false);
}

txs_report *report_input_error(uint64_t line, const char *message)
{
	sbuf b = {0};
	char num[32];
	sb_put(&b, "{", 1);
	if (line) {
		snprintf(num, sizeof num, "\"line\":%llu,", (unsigned long long)line);
		sb_str(&b, num);
	}
	sb_str(&b, "\"error\":");
	sb_quoted(&b, message ? message : "invalid input");
	sb_put(&b, "}", 1);
	return finish(&b, TXS_SEVERITY_NONE, false, true);
}

static char oom_json[] = "{\"tx\":null,\"verdict\":\"none\",\"complete\":false,"
                         "\"error\":\"out of memory building the report\"}";
static txs_report oom_report = {.json = oom_json, .len = sizeof oom_json - 1,
                                .complete = false, .is_static = true};

txs_report *report_oom(void)
{
	return &oom_report;
}

const char *txs_report_json(const txs_report *r, size_t *len)
{
	if (len)
		*len = r->len;
	return r->json;
}

txs_severity txs_report_verdict(const txs_report *r)
{
	return r->verdict;
}

bool txs_report_complete(const txs_report *r)
{
	return r->complete;
}

bool txs_report_input_error(const txs_report *r)
{
	return r->input_error;
}

void txs_report_free(txs_report *r)
{
	if (!r || r->is_static)
		return;
	free(r->json);
	free(r);
}
