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

/* Where a plugin's id (no escapes: [a-z0-9-]) and a finding's code (no
 * escapes: [A-Z0-9_]) are in the report's JSON, for the accessors. */
struct rep_plugin {
	size_t id_at, id_len;
	txs_status status;
};

struct rep_finding {
	size_t plugin; /* index into plugins */
	size_t code_at, code_len;
	txs_severity severity;
};

/* One allocation: the struct, then its plugins, findings and tx text. */
struct txs_report {
	char *json;
	size_t len;
	txs_severity verdict;
	bool complete;
	bool input_error;
	bool is_static; /* report_oom's: never freed */
	uint64_t line;
	char *error;     /* an input error's message */
	const char *tx;  /* NULL for none */
	size_t tx_len;
	size_t nplugins, nfindings;
	struct rep_plugin *plugins;
	struct rep_finding *findings;
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
	if (ms >= 0 && ms < 1e6) {
		/* every report has one per plugin: integer digits, not printf's
		 * floating-point formatter; the same text for these values */
		unsigned long long us = (unsigned long long)llround(ms * 1000.0);
		unsigned frac = (unsigned)(us % 1000);
		int n = snprintf(t, sizeof t, "%llu.", us / 1000);
		if (!frac) {
			t[n++] = '0';
		} else {
			t[n++] = (char)('0' + frac / 100);
			if (frac % 100) {
				t[n++] = (char)('0' + frac / 10 % 10);
				if (frac % 10)
					t[n++] = (char)('0' + frac % 10);
			}
		}
		sb_put(b, t, (size_t)n);
		return;
	}
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
	sbuf b = {0}, refs = {0};
	txs_severity top = TXS_SEVERITY_NONE;
	char *err = findings_collect(&b, &refs, plugin, json, len, &top);
	if (err || !b.len) {
		free(b.p);
		free(refs.p);
		return err;
	}
	part->findings = b.p;
	part->findings_len = b.len;
	part->refs = (finding_ref *)(void *)refs.p;
	part->nrefs = refs.len / sizeof(finding_ref);
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
	*part = (report_part){.status = res->status, .error = res->error, .ms = res->ms,
	                      .generation = res->generation};
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
	free(part->refs);
	*part = (report_part){0};
}

/* ---- the report ---------------------------------------------------------------- */

/* The report, its plugins, findings and tx text in one allocation (a
 * report is made for every scan). */
static txs_report *report_alloc(size_t nplugins, size_t nfindings, const char *tx, size_t tx_len)
{
	size_t size = sizeof(txs_report) + nplugins * sizeof(struct rep_plugin) +
	              nfindings * sizeof(struct rep_finding) + (tx ? tx_len + 1 : 0);
	txs_report *rep = calloc(1, size);
	if (!rep)
		return NULL;
	rep->plugins = (struct rep_plugin *)(void *)(rep + 1);
	rep->findings = (struct rep_finding *)(void *)(rep->plugins + nplugins);
	rep->nplugins = nplugins;
	rep->nfindings = nfindings;
	if (tx) {
		char *t = (char *)(rep->findings + nfindings);
		memcpy(t, tx, tx_len);
		t[tx_len] = '\0';
		rep->tx = t;
		rep->tx_len = tx_len;
	}
	return rep;
}

static txs_report *finish(txs_report *rep, sbuf *b, txs_severity verdict, bool complete,
                          bool input_error)
{
	if (b->oom) {
		free(b->p);
		free(rep->error);
		free(rep);
		return NULL;
	}
	rep->json = b->p;
	rep->len = b->len;
	rep->verdict = verdict;
	rep->complete = complete;
	rep->input_error = input_error;
	return rep;
}

/* The tx as the accessors give it: a string's characters, or a number's
 * JSON text (in num). NULL for none. */
static const char *tx_text(const json_t *txid, char *num, size_t n, size_t *len)
{
	if (json_is_string(txid)) {
		*len = json_string_length(txid);
		return json_string_value(txid);
	}
	if (!json_is_number(txid))
		return NULL;
	char *t = json_dumps(txid, JSON_ENCODE_ANY);
	snprintf(num, n, "%s", t ? t : "?");
	free(t);
	*len = strlen(num);
	return num;
}

/* Findings of every part, in the report's order: the refs to fill in. */
static size_t count_findings(const report_part *parts, size_t n)
{
	size_t nf = 0;
	for (size_t i = 0; i < n; i++)
		nf += parts[i].findings ? parts[i].nrefs : 0;
	return nf;
}

/* Part i's findings, copied into b; their codes located for the accessors. */
static void put_findings(sbuf *b, txs_report *rep, size_t *k, const report_part *part, size_t i)
{
	size_t base = b->len;
	sb_put(b, part->findings, part->findings_len);
	for (size_t j = 0; j < part->nrefs && *k < rep->nfindings; j++, (*k)++)
		rep->findings[*k] = (struct rep_finding){.plugin = i,
		                                         .code_at = base + part->refs[j].code_at,
		                                         .code_len = part->refs[j].code_len,
		                                         .severity = part->refs[j].severity};
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
	char num[64];
	size_t tx_len = 0;
	const char *tx = tx_text(txid, num, sizeof num, &tx_len);
	txs_report *rep = report_alloc(n, count_findings(parts, n), tx, tx_len);
	if (!rep)
		return NULL;
	rep->line = line;
	sbuf b = {0};
	sb_str(&b, "{\"tx\":");
	if (json_is_string(txid))
		sb_escaped(&b, json_string_value(txid), json_string_length(txid));
	else if (txid)
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
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!parts[i].findings)
			continue;
		if (!first)
			sb_put(&b, ",", 1);
		put_findings(&b, rep, &k, &parts[i], i);
		first = false;
	}
	sb_str(&b, "],\"plugins\":[");
	for (size_t i = 0; i < n; i++) {
		sb_str(&b, i ? ",{\"id\":" : "{\"id\":");
		rep->plugins[i] = (struct rep_plugin){.id_at = b.len + 1, .id_len = strlen(ids[i]),
		                                      .status = parts[i].status};
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
	return finish(rep, &b, verdict, complete, false);
}

txs_report *report_input_error(uint64_t line, const char *message)
{
	txs_report *rep = report_alloc(0, 0, NULL, 0);
	message = message ? message : "invalid input";
	if (!rep || !(rep->error = strdup(message))) {
		free(rep);
		return NULL;
	}
	rep->line = line;
	sbuf b = {0};
	char num[32];
	sb_put(&b, "{", 1);
	if (line) {
		snprintf(num, sizeof num, "\"line\":%llu,", (unsigned long long)line);
		sb_str(&b, num);
	}
	sb_str(&b, "\"error\":");
	sb_quoted(&b, message);
	sb_put(&b, "}", 1);
	return finish(rep, &b, TXS_SEVERITY_NONE, false, true);
}

static char oom_json[] = "{\"tx\":null,\"verdict\":\"none\",\"complete\":false,"
                         "\"error\":\"out of memory building the report\"}";
static char oom_error[] = "out of memory building the report";
static txs_report oom_report = {.json = oom_json, .len = sizeof oom_json - 1, .error = oom_error,
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
	free(r->error);
	free(r);
}

uint64_t txs_report_line(const txs_report *r)
{
	return r->line;
}

const char *txs_report_tx(const txs_report *r, size_t *len)
{
	if (len)
		*len = r->tx ? r->tx_len : 0;
	return r->tx;
}

const char *txs_report_error(const txs_report *r)
{
	return r->error;
}

size_t txs_report_plugin_count(const txs_report *r)
{
	return r->nplugins;
}

/* The n bytes at r->json + at into a NUL-terminated buffer of size cap. */
static void copy_out(char *dst, size_t cap, const txs_report *r, size_t at, size_t n)
{
	n = at <= r->len && n <= r->len - at ? n : 0;
	n = n < cap ? n : cap - 1;
	memcpy(dst, r->json + at, n);
	dst[n] = '\0';
}

int txs_report_plugin_get(const txs_report *r, size_t i, txs_report_plugin *out)
{
	if (i >= r->nplugins)
		return TXS_ENOTFOUND;
	const struct rep_plugin *p = &r->plugins[i];
	copy_out(out->id, sizeof out->id, r, p->id_at, p->id_len);
	out->status = p->status;
	return 0;
}

size_t txs_report_finding_count(const txs_report *r)
{
	return r->nfindings;
}

int txs_report_finding_get(const txs_report *r, size_t i, txs_report_finding *out)
{
	if (i >= r->nfindings)
		return TXS_ENOTFOUND;
	const struct rep_finding *f = &r->findings[i];
	const struct rep_plugin *p = &r->plugins[f->plugin];
	copy_out(out->plugin, sizeof out->plugin, r, p->id_at, p->id_len);
	copy_out(out->code, sizeof out->code, r, f->code_at, f->code_len);
	out->severity = f->severity;
	return 0;
}
