/*
 * sbuf.h - a growable text buffer for building JSON by hand (reports,
 * findings). Appends never fail loudly: running out of memory sets oom and
 * later appends do nothing, so a builder checks once at the end.
 */
#ifndef TXS_SBUF_H
#define TXS_SBUF_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
} sbuf;

static inline void sb_put(sbuf *b, const char *s, size_t n)
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

static inline void sb_str(sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* One decoded byte of a string's content, escaped as in a JSON string
 * literal: quotes, backslashes and control characters; the rest as is. */
static inline void sb_escaped_byte(sbuf *b, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char esc[6] = {'\\', (char)c};
	size_t len = 2;
	switch (c) {
	case '"': case '\\': break;
	case '\n': esc[1] = 'n'; break;
	case '\r': esc[1] = 'r'; break;
	case '\t': esc[1] = 't'; break;
	case '\b': esc[1] = 'b'; break;
	case '\f': esc[1] = 'f'; break;
	default:
		if (c >= 0x20) {
			esc[0] = (char)c;
			len = 1;
			break;
		}
		memcpy(esc + 1, "u00", 3);
		esc[4] = hex[c >> 4];
		esc[5] = hex[c & 15];
		len = 6;
	}
	sb_put(b, esc, len);
}

/* UTF-8 text already known to be valid (a decoded string, a plugin id) as
 * a JSON string literal. No allocation beyond the buffer's own. */
static inline void sb_escaped(sbuf *b, const char *s, size_t n)
{
	sb_put(b, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sb_put(b, s + run, i - run);
		run = i + 1;
		sb_escaped_byte(b, c);
	}
	sb_put(b, s + run, n - run);
	sb_put(b, "\"", 1);
}

#endif
