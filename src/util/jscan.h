/*
 * jscan.h - validate JSON text in place, without building a tree.
 */
#ifndef TXS_JSCAN_H
#define TXS_JSCAN_H

#include "sbuf.h"

#include <stdbool.h>
#include <stddef.h>

#define JSCAN_MAX_DEPTH 2048
#define JSTR_KEEP 136

typedef struct jscan {
	const char *p, *end, *start;
	const char *syntax; /* the first syntax error (static text), or NULL */
	size_t at;          /* its byte offset */
} jscan;

/* What a string decodes to: its length in bytes, whether it holds U+0000,
 * and its first JSTR_KEEP - 1 bytes (NUL-terminated). */
typedef struct jstr {
	size_t len, kept;
	bool nul;
	char buf[JSTR_KEEP];
} jstr;

typedef struct span {
	const char *p, *end; /* p NULL: absent */
} span;

/* Called for each member of an object walked with a member function. */
typedef void (*jscan_member_fn)(const jstr *key, span value, void *ud);
/* Called with s->p at each element of an array (whitespace skipped); must
 * consume one value at the given depth. False stops the walk. */
typedef bool (*jscan_element_fn)(jscan *s, int depth, void *ud);

void jscan_init(jscan *s, const char *text, size_t len);
void jstr_init(jstr *d);

/* Records the first syntax error at s->p; always false. */
bool jscan_fail(jscan *s, const char *what);
void jscan_ws(jscan *s);
bool jscan_at(const jscan *s, char c);
/* After the value: only whitespace may follow. */
bool jscan_end(jscan *s);

/* One value (any kind) at s->p, after whitespace. */
bool jscan_value(jscan *s, int depth);
/* s->p at '"'. d (may be NULL) gets what it decodes to; out (may be NULL)
 * gets it as a canonical JSON literal (sb_escaped of the decoded bytes). */
bool jscan_string(jscan *s, jstr *d, sbuf *out);
/* s->p at '{'. member (may be NULL) sees each key, decoded, and its value. */
bool jscan_object(jscan *s, int depth, jscan_member_fn member, void *ud);
/* s->p at '['. element (may be NULL: any value) consumes each element. */
bool jscan_array(jscan *s, int depth, jscan_element_fn element, void *ud);
bool jscan_literal(jscan *s, const char *word);
/* After an element: ',' (true, *more) or the closing character. */
bool jscan_next_or_close(jscan *s, char close, bool *more);
/* "an object", "an array", "a string", "a number", "a boolean", "null" for
 * the value starting at p. */
const char *jscan_kind(const char *p);
/* Where the first syntax error is: 1-based line and column. */
void jscan_position(const jscan *s, size_t *line, size_t *column);
/* "<prefix>: <the error> at column C" ("at line L, column C" past the
 * first line), malloc'ed; NULL when out of memory. */
char *jscan_error_text(const jscan *s, const char *prefix);

#endif
