/*
 * test_jscan.c - the JSON scanner's strings, byte by byte: every byte value
 * at every offset around the eight-byte steps of its fast path, against
 * what RFC 8259 says of that byte; multi-byte UTF-8 and escapes at every
 * offset; the decoded copy (jstr) and the canonical literal (sbuf).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jscan.h"

#define LEN_MAX 40

typedef struct scanned {
	bool ok;
	const char *syntax;
	size_t consumed; /* bytes of the literal scanned, quotes included */
	jstr d;
	sbuf out;
} scanned;

static scanned scan(const char *lit, size_t len)
{
	scanned r = {0};
	jscan s;
	jscan_init(&s, lit, len);
	jstr_init(&r.d);
	r.ok = jscan_string(&s, &r.d, &r.out);
	r.syntax = s.syntax;
	r.consumed = (size_t)(s.p - lit);
	return r;
}

/* '"' + n bytes of 'a' with byte b at offset i + '"'. */
static size_t literal(char *lit, size_t n, size_t i, unsigned char b)
{
	lit[0] = '"';
	memset(lit + 1, 'a', n);
	lit[1 + i] = (char)b;
	lit[1 + n] = '"';
	return n + 2;
}

static void one_byte_everywhere(void **state)
{
	(void)state;
	char lit[LEN_MAX + 2], want[LEN_MAX + 1];
	for (size_t n = 1; n <= 24; n++)
		for (size_t i = 0; i < n; i++)
			for (unsigned b = 0; b < 256; b++) {
				size_t len = literal(lit, n, i, (unsigned char)b);
				scanned r = scan(lit, len);
				if (b < 0x20) {
					assert_false(r.ok);
					assert_string_equal(r.syntax, "control character in a string");
					assert_int_equal(r.consumed, 1 + i);
				} else if (b >= 0x80) {
					assert_false(r.ok);
					assert_string_equal(r.syntax, "invalid UTF-8 in a string");
					assert_int_equal(r.consumed, 1 + i);
				} else if (b == '\\') {
					assert_false(r.ok); /* "\a", or "\"" that leaves it open */
					assert_string_equal(r.syntax, i + 1 < n ? "invalid escape in a string"
					                                        : "unterminated string");
				} else if (b == '"') {
					assert_true(r.ok); /* the string ends there */
					assert_int_equal(r.consumed, 2 + i);
					assert_int_equal(r.d.len, i);
				} else {
					assert_true(r.ok);
					assert_null(r.syntax);
					assert_int_equal(r.consumed, len);
					memcpy(want, lit + 1, n);
					want[n] = '\0';
					assert_int_equal(r.d.len, n);
					assert_string_equal(r.d.buf, want);
					assert_int_equal(r.out.len, len);
					assert_memory_equal(r.out.p, lit, len);
				}
				free(r.out.p);
			}
}

/* A multi-byte sequence or an escape at every offset of a 20-byte string:
 * what it decodes to and how it is written back. */
static void sequences_everywhere(void **state)
{
	(void)state;
	static const struct {
		const char *in, *decoded, *canonical;
		bool ok;
	} seq[] = {
	    {"\xc3\xa9", "\xc3\xa9", "\xc3\xa9", true},
	    {"\xe2\x82\xac", "\xe2\x82\xac", "\xe2\x82\xac", true},
	    {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80", true},
	    {"\\u00e9", "\xc3\xa9", "\xc3\xa9", true},
	    {"\\ud83d\\ude00", "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80", true},
	    {"\\n", "\n", "\\n", true},
	    {"\\/", "/", "/", true},
	    {"\\u0000", "", "\\u0000", true},
	    {"\xc3", NULL, NULL, false},          /* truncated */
	    {"\xed\xa0\x80", NULL, NULL, false},  /* an encoded surrogate */
	    {"\xc0\xaf", NULL, NULL, false},      /* overlong */
	    {"\\ud83d", NULL, NULL, false},       /* a lone high surrogate */
	};
	for (size_t k = 0; k < sizeof seq / sizeof seq[0]; k++)
		for (size_t i = 0; i <= 20; i++) {
			char lit[64], dec[64], canon[64];
			size_t sl = strlen(seq[k].in);
			int len = snprintf(lit, sizeof lit, "\"%.*s%s%.*s\"", (int)i, "aaaaaaaaaaaaaaaaaaaa",
			                   seq[k].in, (int)(20 - i), "bbbbbbbbbbbbbbbbbbbb");
			scanned r = scan(lit, (size_t)len);
			assert_int_equal(r.ok, seq[k].ok);
			if (!seq[k].ok) {
				assert_non_null(r.syntax);
				assert_true(r.consumed >= 1 + i && r.consumed <= 1 + i + sl);
				free(r.out.p);
				continue;
			}
			size_t dl = strlen(seq[k].decoded) + (strcmp(seq[k].in, "\\u0000") == 0);
			snprintf(dec, sizeof dec, "%.*s%s%.*s", (int)i, "aaaaaaaaaaaaaaaaaaaa", seq[k].decoded,
			         (int)(20 - i), "bbbbbbbbbbbbbbbbbbbb");
			int cl = snprintf(canon, sizeof canon, "\"%.*s%s%.*s\"", (int)i, "aaaaaaaaaaaaaaaaaaaa",
			                  seq[k].canonical, (int)(20 - i), "bbbbbbbbbbbbbbbbbbbb");
			assert_int_equal(r.consumed, (size_t)len);
			assert_int_equal(r.d.len, 20 + dl);
			if (dl == strlen(seq[k].decoded)) /* no U+0000 to stop strcmp early */
				assert_string_equal(r.d.buf, dec);
			else
				assert_true(r.d.nul);
			assert_int_equal(r.out.len, (size_t)cl);
			assert_memory_equal(r.out.p, canon, (size_t)cl);
			free(r.out.p);
		}
}

/* Unterminated at every length (the fast path must not read past end),
 * and a long string keeps only its first JSTR_KEEP - 1 bytes. */
static void ends_and_long_strings(void **state)
{
	(void)state;
	char *lit = malloc(4096);
	assert_non_null(lit);
	for (size_t n = 0; n < 40; n++) {
		lit[0] = '"';
		memset(lit + 1, 'x', n);
		scanned r = scan(lit, n + 1); /* no closing quote inside the buffer */
		assert_false(r.ok);
		assert_string_equal(r.syntax, "unterminated string");
		assert_int_equal(r.consumed, n + 1);
		free(r.out.p);
	}
	size_t n = 4000;
	lit[0] = '"';
	for (size_t i = 0; i < n; i++)
		lit[1 + i] = (char)('a' + i % 26);
	lit[n + 1] = '"';
	scanned r = scan(lit, n + 2);
	assert_true(r.ok);
	assert_int_equal(r.d.len, n);
	assert_int_equal(r.d.kept, JSTR_KEEP - 1);
	assert_memory_equal(r.d.buf, lit + 1, JSTR_KEEP - 1);
	assert_int_equal(r.out.len, n + 2);
	assert_memory_equal(r.out.p, lit, n + 2);
	free(r.out.p);
	free(lit);
}

/* Whole values: a transaction-like object with strings of every kind. */
static void whole_values(void **state)
{
	(void)state;
	static const struct {
		const char *text, *syntax;
	} cases[] = {
	    {"{\"to\":\"0xdAC17F958D2ee523a2206206994597C13D831ec7\",\"data\":\"0x095ea7b3\"}", NULL},
	    {"{\"memo\":\"caf\xc3\xa9 \\\"quoted\\\" \\u20ac\",\"n\":[1,2.5e3,-0]}", NULL},
	    {"{\"a\":\"tab\there\"}", "control character in a string"},
	    {"{\"a\":\"0123456789abcdef\xff\"}", "invalid UTF-8 in a string"},
	    {"{\"0123456789abcdef0123\":1,\"b\":\"x\"", "expected ',' or '}'"},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		jscan s;
		jscan_init(&s, cases[k].text, strlen(cases[k].text));
		bool ok = jscan_value(&s, 0) && jscan_end(&s);
		if (!cases[k].syntax) {
			assert_true(ok);
			assert_null(s.syntax);
		} else {
			assert_false(ok);
			assert_non_null(s.syntax);
			assert_string_equal(s.syntax, cases[k].syntax);
		}
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(one_byte_everywhere),
	    cmocka_unit_test(sequences_everywhere),
	    cmocka_unit_test(ends_and_long_strings),
	    cmocka_unit_test(whole_values),
	};
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
