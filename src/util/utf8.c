/*
 * utf8.c - UTF-8 checks and cuts (see utf8.h).
 */
#define _GNU_SOURCE
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t utf8_seq_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0];
	size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
	if (!n || (size_t)(end - p) < n)
		return 0;
	unsigned char lo = 0x80, hi = 0xBF; /* the second byte's range */
	if (c == 0xE0)
		lo = 0xA0; /* no overlongs */
	else if (c == 0xED)
		hi = 0x9F; /* no surrogates */
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F; /* nothing past U+10FFFF */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return n;
}

size_t utf8_invalid_at(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end) {
		uint64_t w;
		if (end - p >= 8 && (memcpy(&w, p, 8), !(w & 0x8080808080808080ull))) {
			p += 8; /* ASCII, eight at a time: sources are mostly ASCII */
			continue;
		}
		if (*p < 0x80) {
			p++;
			continue;
		}
		size_t k = utf8_seq_len(p, end);
		if (!k)
			return (size_t)(p - (const unsigned char *)s);
		p += k;
	}
	return n;
}

size_t utf8_cut(const char *s, size_t n, size_t max)
{
	if (n <= max)
		return n;
	size_t k = max;
	while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
		k--; /* s[k] continues the character before: cut before its lead */
	return k;
}

size_t utf8_units(const char *s, size_t n)
{
	size_t units = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		units += (c & 0xC0) != 0x80;
		units += c >= 0xF0; /* a surrogate pair in UTF-16 */
	}
	return units;
}

/* " … (18446744073709551615 characters cut)" fits */
#define NOTE_MAX 48

/* A text cut before ends with its note: cut again, it carries that count
 * forward rather than counting the old note as text. Returns the count and
 * shortens *len to the text before the note; 0 when there is none. */
static size_t strip_note(const char *s, size_t *len)
{
	static const char head[] = " \xe2\x80\xa6 (", tail[] = " characters cut)";
	size_t n = *len, t = sizeof tail - 1, h = sizeof head - 1;
	if (n < t + h || memcmp(s + n - t, tail, t))
		return 0;
	size_t d = n - t, end = d;
	while (d > 0 && s[d - 1] >= '0' && s[d - 1] <= '9' && end - d < 20)
		d--;
	if (d == end || d < h || memcmp(s + d - h, head, h))
		return 0;
	*len = d - h;
	return (size_t)strtoull(s + d, NULL, 10);
}

size_t utf8_cap(char **s, size_t len, size_t max, size_t more_units)
{
	if (len <= max && !more_units)
		return len;
	if (len > max)
		more_units += strip_note(*s, &len);
	size_t room = max > NOTE_MAX ? max - NOTE_MAX : 0;
	size_t keep = utf8_cut(*s, len, room);
	size_t cut = utf8_units(*s + keep, len - keep) + more_units;
	char note[NOTE_MAX + 1];
	int nn = snprintf(note, sizeof note, " \xe2\x80\xa6 (%zu characters cut)", cut);
	char *p = nn > 0 ? realloc(*s, keep + (size_t)nn + 1) : NULL;
	if (!p) {
		(*s)[keep] = '\0';
		return keep;
	}
	memcpy(p + keep, note, (size_t)nn + 1);
	*s = p;
	return keep + (size_t)nn;
}
