/*
 * jscan.c - a JSON validator that builds nothing: RFC 8259 grammar, UTF-8,
 * paired surrogates and a depth limit, over a buffer of known length (no
 * NUL needed). Callers walk the structure they care about and hand the rest
 * to jscan_value; strings can be decoded into a small buffer and written
 * back canonically escaped. Used for plugins' answers (findings.c) and the
 * transactions a host receives (host.c).
 */
#define _GNU_SOURCE /* asprintf */
#include "jscan.h"
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>

void jscan_init(jscan *s, const char *text, size_t len)
{
	*s = (jscan){.p = text, .end = text + len, .start = text};
}

void jstr_init(jstr *d)
{
	d->len = d->kept = 0;
	d->nul = false;
	d->buf[0] = '\0';
}

bool jscan_end(jscan *s)
{
	jscan_ws(s);
	return s->p == s->end || jscan_fail(s, "text after the JSON value");
}

bool jscan_fail(jscan *s, const char *what)
{
	if (!s->syntax) {
		s->syntax = what;
		s->at = (size_t)(s->p - s->start);
	}
	return false;
}

void jscan_ws(jscan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

bool jscan_at(const jscan *s, char c)
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
		return jscan_fail(s, "unterminated string");
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
		return jscan_fail(s, "invalid escape in a string");
	int cp = s->end - s->p >= 6 ? hex4(s->p + 2) : -1;
	if (cp < 0)
		return jscan_fail(s, "invalid \\u escape");
	s->p += 6;
	if (cp >= 0xDC00 && cp <= 0xDFFF)
		return jscan_fail(s, "invalid Unicode: a lone low surrogate");
	if (cp >= 0xD800 && cp <= 0xDBFF) {
		int lo = s->end - s->p >= 6 && s->p[0] == '\\' && s->p[1] == 'u' ? hex4(s->p + 2) : -1;
		if (lo < 0xDC00 || lo > 0xDFFF)
			return jscan_fail(s, "invalid Unicode: a lone high surrogate");
		s->p += 6;
		cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
	}
	*n = utf8_put(u, (uint32_t)cp);
	return true;
}

/* Bytes from p that a string holds as they are: printable ASCII other than
 * '"' and '\\'. Eight at a time: a word has none of the others unless a
 * byte has its top bit set (0x80 and up), is below 0x20, or equals '"' or
 * '\\' (each found exactly by the has-a-zero-byte test on the word XOR the
 * byte: any false positive sits above a true one). */
static size_t plain_run(const char *p, const char *end)
{
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
	const char *q = p;
	for (; end - q >= 8; q += 8) {
		uint64_t v, quote, bslash;
		memcpy(&v, q, 8);
		quote = v ^ (ones * '"');
		bslash = v ^ (ones * '\\');
		uint64_t special = v | ((v - ones * 0x20) & ~v) | ((quote - ones) & ~quote) |
		                   ((bslash - ones) & ~bslash);
		if (special & highs)
			break;
	}
	while (q < end && (unsigned char)*q >= 0x20 && (unsigned char)*q < 0x80 && *q != '"' && *q != '\\')
		q++;
	return (size_t)(q - p);
}

/* s->p at '"': one string. d (may be NULL) gets what it decodes to; out
 * (may be NULL) gets it as a canonical JSON literal. Bytes that need no
 * escape are copied in runs, straight from the input. */
bool jscan_string(jscan *s, jstr *d, sbuf *out)
{
	s->p++;
	if (out)
		sb_put(out, "\"", 1);
	const char *run = s->p;
	for (;;) {
		if (s->p >= s->end)
			return jscan_fail(s, "unterminated string");
		size_t run_len = plain_run(s->p, s->end);
		if (run_len) {
			if (d)
				keep(d, s->p, run_len);
			s->p += run_len;
			continue;
		}
		unsigned char c = (unsigned char)*s->p;
		if (c == '"')
			break;
		if (c < 0x20)
			return jscan_fail(s, "control character in a string");
		if (c != '\\') {
			size_t n = c < 0x80 ? 1
			                    : utf8_seq_len((const unsigned char *)s->p, (const unsigned char *)s->end);
			if (!n)
				return jscan_fail(s, "invalid UTF-8 in a string");
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
	return s->p > p0 || jscan_fail(s, "invalid number");
}

static bool jnumber(jscan *s)
{
	if (jscan_at(s, '-'))
		s->p++;
	if (jscan_at(s, '0'))
		s->p++;
	else if (!(s->p < s->end && *s->p >= '1' && *s->p <= '9') || !digits(s))
		return jscan_fail(s, "invalid number");
	if (jscan_at(s, '.')) {
		s->p++;
		if (!digits(s))
			return false;
	}
	if (jscan_at(s, 'e') || jscan_at(s, 'E')) {
		s->p++;
		if (jscan_at(s, '+') || jscan_at(s, '-'))
			s->p++;
		if (!digits(s))
			return false;
	}
	return true;
}

bool jscan_literal(jscan *s, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return jscan_fail(s, "invalid literal");
	s->p += n;
	return true;
}

/* After an element of an object or array: ',' (true, *more) or close. */
bool jscan_next_or_close(jscan *s, char close, bool *more)
{
	jscan_ws(s);
	if (jscan_at(s, ',')) {
		s->p++;
		*more = true;
		return true;
	}
	*more = false;
	if (jscan_at(s, close)) {
		s->p++;
		return true;
	}
	return jscan_fail(s, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
}

/* s->p at '{'. With member, each key is decoded for it; the generic walk
 * (member NULL) keeps no decoded key, so deep nesting stays cheap on the
 * stack. */
static bool object(jscan *s, int depth, jscan_member_fn member, void *ud, jstr *key)
{
	if (depth > JSCAN_MAX_DEPTH)
		return jscan_fail(s, "nested too deeply");
	s->p++;
	jscan_ws(s);
	if (jscan_at(s, '}')) {
		s->p++;
		return true;
	}
	for (bool more = true; more;) {
		jscan_ws(s);
		if (!jscan_at(s, '"'))
			return jscan_fail(s, "expected a string key");
		if (key)
			jstr_init(key);
		if (!jscan_string(s, key, NULL))
			return false;
		jscan_ws(s);
		if (!jscan_at(s, ':'))
			return jscan_fail(s, "expected ':'");
		s->p++;
		jscan_ws(s);
		const char *v0 = s->p;
		if (!jscan_value(s, depth + 1))
			return false;
		if (member)
			member(key, (span){v0, s->p}, ud);
		if (!jscan_next_or_close(s, '}', &more))
			return false;
	}
	return true;
}

bool jscan_object(jscan *s, int depth, jscan_member_fn member, void *ud)
{
	jstr key;
	return object(s, depth, member, ud, member ? &key : NULL);
}

bool jscan_array(jscan *s, int depth, jscan_element_fn element, void *ud)
{
	if (depth > JSCAN_MAX_DEPTH)
		return jscan_fail(s, "nested too deeply");
	s->p++;
	jscan_ws(s);
	if (jscan_at(s, ']')) {
		s->p++;
		return true;
	}
	for (bool more = true; more;) {
		jscan_ws(s);
		if (!(element ? element(s, depth + 1, ud) : jscan_value(s, depth + 1)) ||
		    !jscan_next_or_close(s, ']', &more))
			return false;
	}
	return true;
}

void jscan_position(const jscan *s, size_t *line, size_t *column)
{
	*line = *column = 1;
	for (const char *c = s->start; c < s->start + s->at; c++, ++*column)
		if (*c == '\n') {
			++*line;
			*column = 0;
		}
}

char *jscan_error_text(const jscan *s, const char *prefix)
{
	size_t line, col;
	char *msg;
	jscan_position(s, &line, &col);
	int rc = line > 1 ? asprintf(&msg, "%s: %s at line %zu, column %zu", prefix, s->syntax, line, col)
	                  : asprintf(&msg, "%s: %s at column %zu", prefix, s->syntax, col);
	return rc < 0 ? NULL : msg;
}

bool jscan_value(jscan *s, int depth)
{
	jscan_ws(s);
	if (s->p >= s->end)
		return jscan_fail(s, "unexpected end of text");
	switch (*s->p) {
	case '{': return object(s, depth, NULL, NULL, NULL);
	case '[': return jscan_array(s, depth, NULL, NULL);
	case '"': return jscan_string(s, NULL, NULL);
	case 't': return jscan_literal(s, "true");
	case 'f': return jscan_literal(s, "false");
	case 'n': return jscan_literal(s, "null");
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			return jnumber(s);
		return jscan_fail(s, "expected a value");
	}
}

const char *jscan_kind(const char *p)
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

