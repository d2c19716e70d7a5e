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

#include "findings.h"
#include "util/sbuf.h"
#include "util/utf8.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- text building ------------------------------------------------------ */

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

/* Validates a result and serialises its findings into part; NULL, or the
 * error. */
static char *collect(report_part *part, const char *plugin, const char *json, size_t len)
{
	if ((len == 4 && !memcmp(json, "null", 4)) || (len == 2 && !memcmp(json, "[]", 2)))
		return NULL; /* the common answer: nothing found */
	sbuf b = {0};
	txs_severity top = TXS_SEVERITY_NONE;
	char *err = findings_collect(&b, plugin, json, len, &top);
	if (err || !b.len) {
		free(b.p);
		return err;
	}
	part->findings = b.p;
	part->findings_len = b.len;
	part->top = top;
	return NULL;
}

/* An error as a report carries it: valid UTF-8, at most REPORT_ERROR_MAX
 * bytes, the head kept and how much was cut said. The engine cuts a
 * plugin's text before it leaves the VM; this holds for every source. */
static void cap_error(char **err)
{
	if (!*err)
		return;
	size_t len = strlen(*err), valid = utf8_invalid_at(*err, len);
	(*err)[valid] = '\0';
	utf8_cap(err, valid, REPORT_ERROR_MAX, 0);
}

void report_part_set(report_part *part, const char *plugin, txs_scan_result *res)
{
	*part = (report_part){.status = res->status, .error = res->error, .ms = res->ms};
	res->error = NULL;
	cap_error(&part->error);
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
