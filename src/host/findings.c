/*
 * findings.c - a plugin's answer, checked and rewritten in one pass.
 *
 * The answer is JSON text from the VM's own JSON.stringify. It is still
 * validated as untrusted input (RFC 8259 syntax, UTF-8, paired surrogates,
 * nesting depth), because a report must never carry text a JSON parser
 * refuses. Nothing is allocated but the output: a finding's fields are
 * located as spans, then written in a fixed order (code, severity, message,
 * metadata) with the plugin id first. Strings are re-escaped canonically
 * (quotes, backslashes and control characters; the rest as UTF-8); metadata
 * is copied as written, so numbers keep their exact text.
 */
#define _GNU_SOURCE
#include "findings.h"

#include "util/jscan.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const FIELD[] = {"code", "severity", "message", "metadata"};
enum { F_CODE, F_SEVERITY, F_MESSAGE, F_METADATA, F_COUNT };

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s;
	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s ? s : strdup("out of memory");
}

typedef struct fields {
	span f[F_COUNT]; /* a repeated key: the last wins */
	jstr unknown;    /* the first key that is not a field */
	bool has_unknown;
} fields;

static void field_member(const jstr *key, span value, void *ud)
{
	fields *fs = ud;
	for (int k = 0; k < F_COUNT; k++)
		if (!key->nul && key->len == strlen(FIELD[k]) && !memcmp(key->buf, FIELD[k], key->len)) {
			fs->f[k] = value;
			return;
		}
	if (!fs->has_unknown) {
		fs->unknown = *key;
		fs->has_unknown = true;
	}
}

/* Writes field sp (known to be a valid JSON string) to out as a literal
 * and decodes it into d. False when sp is absent or not a string. */
static bool put_string(sbuf *out, const char *name, span sp, jstr *d)
{
	if (!sp.p || *sp.p != '"')
		return false;
	jscan sub;
	jscan_init(&sub, sp.p, (size_t)(sp.end - sp.p));
	sb_str(out, name);
	return jscan_string(&sub, d, out);
}

/* The documented pattern (docs/plugins.md): [A-Z][A-Z0-9_]*, at most
 * FINDINGS_MAX_CODE characters. Codes end up in tables and logs, where a
 * newline or an escape sequence would forge lines. */
static bool code_ok(const jstr *code)
{
	if (!code->len || code->len > FINDINGS_MAX_CODE || code->nul || code->kept != code->len ||
	    code->buf[0] < 'A' || code->buf[0] > 'Z')
		return false;
	for (size_t i = 1; i < code->len; i++) {
		char c = code->buf[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

/* What a bad code was, as a JSON literal (control characters escaped),
 * at most 40 bytes of it. */
static char *code_shown(const jstr *code)
{
	sbuf b = {0};
	size_t n = code->kept < 40 ? code->kept : 40;
	while (n > 0 && n < code->kept && ((unsigned char)code->buf[n] & 0xC0) == 0x80)
		n--; /* not inside a UTF-8 sequence */
	sb_escaped(&b, code->buf, n);
	if (n < code->len)
		sb_str(&b, "...");
	return b.p ? b.p : strdup("?");
}

/* Checks finding i (fields located) in check order and writes it to out.
 * Findings are numbered from 1 in messages. */
static char *put_finding(sbuf *out, const char *plugin, const fields *fs, size_t i,
                         finding_ref *ref)
{
	txs_severity *sev = &ref->severity;
	const span *f = fs->f;
	i++;
	if (fs->has_unknown)
		return fmt("finding %zu: unknown field \"%s\" (allowed: code, severity, message, metadata)",
		           i, fs->unknown.buf);
	jstr code = {0}, sv = {0}, msg = {0};
	sb_str(out, "{\"plugin\":");
	sb_escaped(out, plugin, strlen(plugin));
	ref->code_at = out->len + sizeof ",\"code\":\"" - 1; /* a valid code needs no escapes */
	if (!put_string(out, ",\"code\":", f[F_CODE], &code))
		return fmt("finding %zu: code must be a string (UPPER_SNAKE_CASE)", i);
	if (!code_ok(&code)) {
		char *shown = code_shown(&code);
		char *err = fmt("finding %zu: code must be UPPER_SNAKE_CASE ([A-Z][A-Z0-9_]*, 1-%d "
		                "characters), got %s",
		                i, FINDINGS_MAX_CODE, shown);
		free(shown);
		return err;
	}
	ref->code_len = code.len;
	if (!put_string(out, ",\"severity\":", f[F_SEVERITY], &sv) || sv.nul || sv.len != sv.kept ||
	    txs_severity_parse(sv.buf, sev) || *sev == TXS_SEVERITY_NONE)
		return fmt("finding %zu (%s): severity must be one of info, low, medium, high, critical",
		           i, code.buf);
	if (!put_string(out, ",\"message\":", f[F_MESSAGE], &msg) || msg.len > FINDINGS_MAX_MESSAGE)
		return fmt("finding %zu (%s): message must be a string of at most %d characters", i,
		           code.buf, FINDINGS_MAX_MESSAGE);
	if (f[F_METADATA].p) {
		if (*f[F_METADATA].p != '{')
			return fmt("finding %zu (%s): metadata must be an object, got %s", i, code.buf,
			           jscan_kind(f[F_METADATA].p));
		sb_str(out, ",\"metadata\":");
		sb_put(out, f[F_METADATA].p, (size_t)(f[F_METADATA].end - f[F_METADATA].p));
	}
	sb_put(out, "}", 1);
	return NULL;
}

typedef struct collect {
	sbuf *out;
	sbuf *refs;     /* finding_ref of each finding written, or NULL */
	const char *plugin;
	size_t n;       /* findings seen */
	char *err;      /* the first invalid finding */
	txs_severity top;
} collect;

/* s->p at '{': finding c->n. Syntax is always checked to the end; once a
 * finding failed (or there are too many) the rest are not written. */
static void finding(jscan *s, collect *c)
{
	fields fs = {.has_unknown = false};
	size_t i = c->n++;
	if (!jscan_object(s, 3, field_member, &fs) || c->err || i >= FINDINGS_MAX)
		return;
	if (i)
		sb_put(c->out, ",", 1);
	finding_ref ref = {.severity = TXS_SEVERITY_NONE};
	c->err = put_finding(c->out, c->plugin, &fs, i, &ref);
	if (!c->err && ref.severity > c->top)
		c->top = ref.severity;
	if (!c->err && c->refs)
		sb_put(c->refs, (const char *)&ref, sizeof ref);
}

/* One element of the answer's array: a finding, or an error for it. */
static bool element(jscan *s, int depth, void *ud)
{
	collect *c = ud;
	if (jscan_at(s, '{')) {
		finding(s, c);
		return !s->syntax;
	}
	if (s->p < s->end && !c->err)
		c->err = fmt("finding %zu: must be an object, got %s", c->n + 1, jscan_kind(s->p));
	c->n++;
	return jscan_value(s, depth);
}

char *findings_collect(sbuf *out, sbuf *refs, const char *plugin, const char *json, size_t len,
                       txs_severity *top)
{
	jscan s;
	jscan_init(&s, json, len);
	collect c = {.out = out, .refs = refs, .plugin = plugin};
	jscan_ws(&s);
	const char *v0 = s.p;
	/* Depths count as in the report, one level deeper than the answer
	 * (report, findings, finding, metadata): a report never nests past
	 * JSCAN_MAX_DEPTH, which is also jansson's limit (the CLI's table
	 * reads reports with it). */
	if (jscan_at(&s, '['))
		jscan_array(&s, 2, element, &c);
	else if (jscan_at(&s, '{'))
		finding(&s, &c);
	else if (jscan_at(&s, 'n'))
		jscan_literal(&s, "null");
	else if (s.p == s.end)
		jscan_fail(&s, "no JSON value");
	else if (jscan_value(&s, 1))
		c.err = fmt("scanTransaction returned %s; expected null, a finding or an array of findings",
		            jscan_kind(v0));
	if (!s.syntax)
		jscan_end(&s);
	if (s.syntax) {
		free(c.err);
		return fmt("result is not JSON: %s at byte %zu", s.syntax, s.at);
	}
	if (c.n > FINDINGS_MAX) {
		free(c.err);
		return fmt("%zu findings; at most %d per scan", c.n, FINDINGS_MAX);
	}
	if (!c.err && (out->oom || (refs && refs->oom)))
		return strdup("out of memory serialising the findings");
	*top = c.top;
	return c.err;
}
