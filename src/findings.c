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

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define MAX_DEPTH 2048

typedef struct jscan {
	const char *p, *end, *start;
	const char *syntax; /* the first syntax error (static text), or NULL */
	size_t at;          /* its byte offset */
} jscan;

/* A string's decoded length, whether it holds U+0000, and its first bytes. */
typedef struct jstr {
	size_t len, kept;
	bool nul;
	char buf[FINDINGS_MAX_CODE + 8];
} jstr;

typedef struct span {
	const char *p, *end; /* p NULL: absent */
} span;

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

static bool bad(jscan *s, const char *what)
{
	if (!s->syntax) {
		s->syntax = what;
		s->at = (size_t)(s->p - s->start);
	}
	return false;
}

static void ws(jscan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

static bool at(const jscan *s, char c)
{
	return s->p < s->end && *s->p == c;
}

static void keep(jstr *d, const char *bytes, size_t n)
{
	size_t room = sizeof d->buf - 1 - d->kept;
	size_t k = n < room ? n : room;
	memcpy(d->buf + d->kept, bytes, k);
	d->kept += k;
	d->buf[d->kept] = '\0';
	d->len += n;
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0];
	size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
	if (!n || (size_t)(end - p) < n)
		return 0;
	unsigned char lo = 0x80, hi = 0xBF; /* the second byte's range */
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F; /* no surrogates */
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return n;
}

static int hex4(const char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
		      : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

static size_t utf8_put(char *u, uint32_t cp)
{
	if (cp < 0x80) {
		u[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		u[0] = (char)(0xC0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		u[0] = (char)(0xE0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	u[0] = (char)(0xF0 | cp >> 18);
	u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	u[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* s->p at a backslash: decodes one escape into u (UTF-8, *n bytes). */
static bool unescape(jscan *s, char *u, size_t *n)
{
	if (s->end - s->p < 2)
		return bad(s, "unterminated string");
	char e = s->p[1];
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *k = e ? strchr(from, e) : NULL;
	if (k) {
		u[0] = to[k - from];
		*n = 1;
		s->p += 2;
		return true;
	}
	if (e != 'u')
		return bad(s, "invalid escape in a string");
	int cp = s->end - s->p >= 6 ? hex4(s->p + 2) : -1;
	if (cp < 0)
		return bad(s, "invalid \\u escape");
	s->p += 6;
	if (cp >= 0xDC00 && cp <= 0xDFFF)
		return bad(s, "invalid Unicode: a lone low surrogate");
	if (cp >= 0xD800 && cp <= 0xDBFF) {
		int lo = s->end - s->p >= 6 && s->p[0] == '\\' && s->p[1] == 'u' ? hex4(s->p + 2) : -1;
		if (lo < 0xDC00 || lo > 0xDFFF)
			return bad(s, "invalid Unicode: a lone high surrogate");
		s->p += 6;
		cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
	}
	*n = utf8_put(u, (uint32_t)cp);
	return true;
}

/* s->p at '"': one string. d (may be NULL) gets what it decodes to; out
 * (may be NULL) gets it as a canonical JSON literal. Bytes that need no
 * escape are copied in runs, straight from the input. */
static bool jstring(jscan *s, jstr *d, sbuf *out)
{
	s->p++;
	if (out)
		sb_put(out, "\"", 1);
	const char *run = s->p;
	for (;;) {
		if (s->p >= s->end)
			return bad(s, "unterminated string");
		unsigned char c = (unsigned char)*s->p;
		if (c == '"')
			break;
		if (c < 0x20)
			return bad(s, "control character in a string");
		if (c != '\\') {
			size_t n = c < 0x80 ? 1
			                    : utf8_len((const unsigned char *)s->p, (const unsigned char *)s->end);
			if (!n)
				return bad(s, "invalid UTF-8 in a string");
			if (d)
				keep(d, s->p, n);
			s->p += n;
			continue;
		}
		if (out)
			sb_put(out, run, (size_t)(s->p - run));
		char u[4];
		size_t n;
		if (!unescape(s, u, &n))
			return false;
		if (d) {
			keep(d, u, n);
			d->nul = d->nul || (n == 1 && u[0] == '\0');
		}
		if (out && n == 1)
			sb_escaped_byte(out, (unsigned char)u[0]);
		else if (out)
			sb_put(out, u, n);
		run = s->p;
	}
	if (out) {
		sb_put(out, run, (size_t)(s->p - run));
		sb_put(out, "\"", 1);
	}
	s->p++;
	return true;
}

static bool digits(jscan *s)
{
	const char *p0 = s->p;
	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > p0 || bad(s, "invalid number");
}

static bool jnumber(jscan *s)
{
	if (at(s, '-'))
		s->p++;
	if (at(s, '0'))
		s->p++;
	else if (!(s->p < s->end && *s->p >= '1' && *s->p <= '9') || !digits(s))
		return bad(s, "invalid number");
	if (at(s, '.')) {
		s->p++;
		if (!digits(s))
			return false;
	}
	if (at(s, 'e') || at(s, 'E')) {
		s->p++;
		if (at(s, '+') || at(s, '-'))
			s->p++;
		if (!digits(s))
			return false;
	}
	return true;
}

static bool jliteral(jscan *s, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n))
		return bad(s, "invalid literal");
	s->p += n;
	return true;
}

static bool jvalue(jscan *s, int depth);

/* After an element of an object or array: ',' (true, *more) or close. */
static bool next_or_close(jscan *s, char close, bool *more)
{
	ws(s);
	if (at(s, ',')) {
		s->p++;
		*more = true;
		return true;
	}
	*more = false;
	if (at(s, close)) {
		s->p++;
		return true;
	}
	return bad(s, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
}

/* s->p at '{': any object. */
static bool jobject(jscan *s, int depth)
{
	if (depth > MAX_DEPTH)
		return bad(s, "nested too deeply");
	s->p++;
	ws(s);
	if (at(s, '}')) {
		s->p++;
		return true;
	}
	for (bool more = true; more;) {
		ws(s);
		if (!at(s, '"'))
			return bad(s, "expected a string key");
		if (!jstring(s, NULL, NULL))
			return false;
		ws(s);
		if (!at(s, ':'))
			return bad(s, "expected ':'");
		s->p++;
		if (!jvalue(s, depth + 1) || !next_or_close(s, '}', &more))
			return false;
	}
	return true;
}

/* s->p at '{': a finding. Records the spans of its fields (a repeated key:
 * the last wins) and the first key that is not one (*unknown, decoded). */
static bool jfinding(jscan *s, span *fields, jstr *unknown, bool *has_unknown)
{
	s->p++;
	ws(s);
	if (at(s, '}')) {
		s->p++;
		return true;
	}
	for (bool more = true; more;) {
		ws(s);
		if (!at(s, '"'))
			return bad(s, "expected a string key");
		jstr key = {.len = 0};
		if (!jstring(s, &key, NULL))
			return false;
		int which = -1;
		for (int k = 0; k < F_COUNT && which < 0; k++)
			if (!key.nul && key.len == strlen(FIELD[k]) && !memcmp(key.buf, FIELD[k], key.len))
				which = k;
		if (which < 0 && !*has_unknown) {
			*unknown = key;
			*has_unknown = true;
		}
		ws(s);
		if (!at(s, ':'))
			return bad(s, "expected ':'");
		s->p++;
		ws(s);
		const char *v0 = s->p;
		if (!jvalue(s, 3))
			return false;
		if (which >= 0)
			fields[which] = (span){v0, s->p};
		if (!next_or_close(s, '}', &more))
			return false;
	}
	return true;
}

static bool jarray(jscan *s, int depth)
{
	if (depth > MAX_DEPTH)
		return bad(s, "nested too deeply");
	s->p++;
	ws(s);
	if (at(s, ']')) {
		s->p++;
		return true;
	}
	for (bool more = true; more;)
		if (!jvalue(s, depth + 1) || !next_or_close(s, ']', &more))
			return false;
	return true;
}

static bool jvalue(jscan *s, int depth)
{
	ws(s);
	if (s->p >= s->end)
		return bad(s, "unexpected end of text");
	switch (*s->p) {
	case '{': return jobject(s, depth);
	case '[': return jarray(s, depth);
	case '"': return jstring(s, NULL, NULL);
	case 't': return jliteral(s, "true");
	case 'f': return jliteral(s, "false");
	case 'n': return jliteral(s, "null");
	default: return jnumber(s);
	}
}

static const char *kind_at(const char *p)
{
	switch (*p) {
	case '{': return "an object";
	case '[': return "an array";
	case '"': return "a string";
	case 't':
	case 'f': return "a boolean";
	case 'n': return "null";
	default: return "a number";
	}
}

/* Writes field sp (known to be a valid JSON string) to out as a literal
 * and decodes it into d. False when sp is absent or not a string. */
static bool put_string(sbuf *out, const char *name, span sp, jstr *d)
{
	if (!sp.p || *sp.p != '"')
		return false;
	jscan sub = {.p = sp.p, .end = sp.end, .start = sp.p};
	sb_str(out, name);
	return jstring(&sub, d, out);
}

/* Checks finding i (fields located) in check order and writes it to out. */
static char *put_finding(sbuf *out, const char *plugin, const span *f, size_t i,
                         const jstr *unknown, bool has_unknown, txs_severity *sev)
{
	if (has_unknown)
		return fmt("finding %zu: unknown field \"%s\" (allowed: code, severity, message, metadata)",
		           i, unknown->buf);
	jstr code = {0}, sv = {0}, msg = {0};
	sb_str(out, "{\"plugin\":");
	sb_escaped(out, plugin, strlen(plugin));
	if (!put_string(out, ",\"code\":", f[F_CODE], &code) || !code.len ||
	    code.len > FINDINGS_MAX_CODE)
		return fmt("finding %zu: code must be a non-empty string of at most %d characters", i,
		           FINDINGS_MAX_CODE);
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
			           kind_at(f[F_METADATA].p));
		sb_str(out, ",\"metadata\":");
		sb_put(out, f[F_METADATA].p, (size_t)(f[F_METADATA].end - f[F_METADATA].p));
	}
	sb_put(out, "}", 1);
	return NULL;
}

typedef struct collect {
	sbuf *out;
	const char *plugin;
	size_t n;       /* findings seen */
	char *err;      /* the first invalid finding */
	txs_severity top;
} collect;

/* s->p at '{': finding c->n. Syntax is always checked to the end; once a
 * finding failed (or there are too many) the rest are not written. */
static void finding(jscan *s, collect *c)
{
	span f[F_COUNT] = {{0}};
	jstr unknown;
	bool has_unknown = false;
	size_t i = c->n++;
	if (!jfinding(s, f, &unknown, &has_unknown) || c->err || i >= FINDINGS_MAX)
		return;
	if (i)
		sb_put(c->out, ",", 1);
	txs_severity sev = TXS_SEVERITY_NONE;
	c->err = put_finding(c->out, c->plugin, f, i, &unknown, has_unknown, &sev);
	if (!c->err && sev > c->top)
		c->top = sev;
}

static void element(jscan *s, collect *c)
{
	ws(s);
	if (at(s, '{')) {
		finding(s, c);
		return;
	}
	if (s->p < s->end && !c->err)
		c->err = fmt("finding %zu: must be an object, got %s", c->n, kind_at(s->p));
	c->n++;
	jvalue(s, 2);
}

static void findings_array(jscan *s, collect *c)
{
	s->p++;
	ws(s);
	if (at(s, ']')) {
		s->p++;
		return;
	}
	for (bool more = true; more;) {
		element(s, c);
		if (s->syntax || !next_or_close(s, ']', &more))
			return;
	}
}

char *findings_collect(sbuf *out, const char *plugin, const char *json, size_t len,
                       txs_severity *top)
{
	jscan s = {.p = json, .end = json + len, .start = json};
	collect c = {.out = out, .plugin = plugin};
	ws(&s);
	const char *v0 = s.p;
	if (at(&s, '['))
		findings_array(&s, &c);
	else if (at(&s, '{'))
		finding(&s, &c);
	else if (at(&s, 'n'))
		jliteral(&s, "null");
	else if (s.p == s.end)
		bad(&s, "no JSON value");
	else if (jvalue(&s, 1))
		c.err = fmt("scanTransaction returned %s; expected null, a finding or an array of findings",
		            kind_at(v0));
	ws(&s);
	if (!s.syntax && s.p != s.end)
		bad(&s, "text after the JSON value");
	if (s.syntax) {
		free(c.err);
		return fmt("result is not JSON: %s at byte %zu", s.syntax, s.at);
	}
	if (c.n > FINDINGS_MAX) {
		free(c.err);
		return fmt("%zu findings; at most %d per scan", c.n, FINDINGS_MAX);
	}
	if (!c.err && out->oom)
		return strdup("out of memory serialising the findings");
	*top = c.top;
	return c.err;
}
