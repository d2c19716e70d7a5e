/*
 * utf8.h - UTF-8 checks and cuts for text that crosses a trust boundary: a
 * plugin's source before JavaScriptCore sees it (JSC turns invalid UTF-8
 * into an empty string without a word), and text cut to a cap (an error, a
 * console line), which must stay valid UTF-8 after the cut.
 */
#ifndef TXS_UTF8_H
#define TXS_UTF8_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at p (a lead byte >= 0x80) that ends
 * by end (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF),
 * or 0. */
size_t utf8_seq_len(const unsigned char *p, const unsigned char *end);

/* Offset of the first byte of s[0..n) that does not begin a valid UTF-8
 * sequence (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF),
 * or n when all of it is valid. */
size_t utf8_invalid_at(const char *s, size_t n);

/* The longest prefix of valid UTF-8 s[0..n) that is at most max bytes and
 * ends on a character boundary. */
size_t utf8_cut(const char *s, size_t n, size_t max);

/* Characters of valid UTF-8 s[0..n) as JavaScript counts them (UTF-16
 * code units: two for a character past U+FFFF). */
size_t utf8_units(const char *s, size_t n);

/* Cuts the NUL-terminated, malloc'ed, valid UTF-8 text *s (len bytes) to
 * at most max bytes: the head is kept and " … (N characters cut)" appended
 * (N counts what was cut plus more_units, characters already cut before
 * the text reached C). A text that already ends with such a note (cut
 * before, then prefixed) keeps one note whose count adds both cuts.
 * Returns the new length; *s may move. On out of memory the text is cut
 * without the note. */
size_t utf8_cap(char **s, size_t len, size_t max, size_t more_units);

#endif
