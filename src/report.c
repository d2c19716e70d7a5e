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
	if (!json_is_string(s) || txs_severity_parse(json_string_value(s), sev) ||
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

static json_t *tagged(const char *plugin, json_t *f)
{
	json_t *o = json_object();
	json_object_set_new(o, "plugin", json_string(plugin));
	json_object_set(o, "code", json_object_get(f, "code"));
	json_object_set(o, "severity", json_object_get(f, "severity"));
	json_object_set(o, "message", json_object_get(f, "message"));
	json_t *meta = json_object_get(f, "metadata");
	if (meta)
		json_object_set(o, "metadata", meta);
	return o;
}

/* Appends o's findings to out and raises *verdict; NULL, or the error. */
static char *collect(const report_outcome *o, json_t *out, txs_severity *verdict)
{
	json_error_t je;
	json_t *r = json_loadb(o->json, o->json_len, JSON_DECODE_ANY, &je);
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
	size_t base = json_array_size(out);
	for (size_t i = 0; !err && i < n; i++)
		json_array_append_new(out, tagged(o->plugin, json_array_get(list, i)));
	if (err)
		while (json_array_size(out) > base)
			json_array_remove(out, base);
	else if (top > *verdict)
		*verdict = top;
	if (list != r)
		json_decref(list);
	json_decref(r);
	return err;
}

static double round_ms(double ms)
{
	return round(ms * 1000.0) / 1000.0;
}

static txs_report *finish(json_t *root, txs_severity verdict, bool complete, bool input_error)
{
	txs_report *rep = calloc(1, sizeof *rep);
	if (rep)
		rep->json = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
	json_decref(root);
	if (!rep || !rep->json) {
		free(rep);
		return NULL;
	}
	rep->len = strlen(rep->json);
	rep->verdict = verdict;
	rep->complete = complete;
	rep->input_error = input_error;
	return rep;
}

static json_t *plugin_entry(const report_outcome *o, txs_status st, const char *error)
{
	json_t *p = json_object();
	json_object_set_new(p, "id", json_string(o->plugin));
	json_object_set_new(p, "status", json_string(txs_status_name(st)));
	json_object_set_new(p, "ms", json_real(round_ms(o->ms)));
	if (error)
		json_object_set_new(p, "error", json_string(error));
	return p;
}

txs_report *report_build(json_t *txid, uint64_t line, double ms, const report_outcome *o, size_t n)
{
	json_t *root = json_object(), *findings = json_array(), *plugins = json_array();
	txs_severity verdict = TXS_SEVERITY_NONE;
	bool complete = true;
	for (size_t i = 0; i < n; i++) {
		txs_status st = o[i].status;
		char *err = st == TXS_STATUS_OK ? collect(&o[i], findings, &verdict) : NULL;
		if (err)
			st = TXS_STATUS_ERROR;
		complete = complete && st == TXS_STATUS_OK;
		json_array_append_new(plugins, plugin_entry(&o[i], st, err ? err : o[i].error));
		free(err);
	}
	json_object_set(root, "tx", txid ? txid : json_null());
	if (line)
		json_object_set_new(root, "line", json_integer((json_int_t)line));
	json_object_set_new(root, "verdict", json_string(txs_severity_name(verdict)));
	json_object_set_new(root, "complete", json_boolean(complete));
	json_object_set_new(root, "ms", json_real(round_ms(ms)));
	json_object_set_new(root, "findings", findings);
	json_object_set_new(root, "plugins", plugins);
	return finish(root, verdict, complete, false);
}

txs_report *report_input_error(uint64_t line, const char *message)
{
	json_t *root = json_object();
	if (line)
		json_object_set_new(root, "line", json_integer((json_int_t)line));
	json_object_set_new(root, "error", json_string(message ? message : "invalid input"));
	return finish(root, TXS_SEVERITY_NONE, false, true);
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
	if (!r)
		return;
	free(r->json);
	free(r);
}
