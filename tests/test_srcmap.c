/*
 * test_srcmap.c - source map decoding (src/util/srcmap.c): Base64 VLQ,
 * lookups at and between segments, malformed maps refused, and the
 * registry's rewrite of "URL:line:col" in error text.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/srcmap.h"

/* What esbuild 0.17 wrote for index.ts importing lib/util.ts. */
static const char MAP[] =
    "{\"version\":3,\"sources\":[\"index.ts\",\"lib/util.ts\"],\"mappings\":"
    "\";;;;;;;;;;;;;;;;;;;AAAA;AAAA;AAAA;AAAA;AAAA;;;ACAO,IAAM,SAAS,CAAC,MAAsB,IAAI;;;"
    "ADC1C,SAAS,gBAAgB,IAA6B;AAC3D,MAAI,GAAG,UAAU;AAAQ,UAAM,IAAI,MAAM,UAAU,"
    "OAAO,CAAC,CAAC;AAC5D,SAAO,CAAC;AACV;\",\"names\":[]}";

static void expect_at(const txs_srcmap *m, unsigned line, unsigned col, const char *src,
                      unsigned oline, unsigned ocol)
{
	const char *s = NULL;
	unsigned l = 0, c = 0;
	assert_true(srcmap_lookup(m, line, col, &s, &l, &c));
	assert_string_equal(s, src);
	assert_int_equal(l, oline);
	assert_int_equal(c, ocol);
}

static void test_lookup(void **state)
{
	(void)state;
	txs_srcmap *m = srcmap_parse(MAP, strlen(MAP), "p/");
	assert_non_null(m);
	expect_at(m, 20, 1, "p/index.ts", 1, 1);
	expect_at(m, 27, 1, "p/lib/util.ts", 1, 8);   /* before the first segment: it */
	expect_at(m, 27, 5, "p/lib/util.ts", 1, 14);  /* "IAAM": column 4 -> 14 */
	expect_at(m, 27, 6, "p/lib/util.ts", 1, 14);  /* between segments: the one before */
	expect_at(m, 30, 1, "p/index.ts", 2, 8);      /* "ADC1C": back to source 0 */
	const char *s;
	unsigned l, c;
	assert_false(srcmap_lookup(m, 1, 1, &s, &l, &c));   /* a line with no segment */
	assert_false(srcmap_lookup(m, 999, 1, &s, &l, &c));
	assert_false(srcmap_lookup(m, 0, 1, &s, &l, &c));
	srcmap_free(m);
}

static void test_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "", "[]", "{\"sources\":[\"a\"]}", "{\"sources\":[\"a\"],\"mappings\":\"AAAA!\"}",
	    "{\"sources\":[\"a\"],\"mappings\":\"ggggggggggggggggA\"}", /* VLQ too long */
	    "{\"sources\":[\"a\"],\"mappings\":\"ACAA\"}",              /* source 1 of 1 */
	    "{\"sources\":[\"a\"],\"mappings\":\"AAAD\"}",              /* column -1 */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_null(srcmap_parse(bad[i], strlen(bad[i]), NULL));
	srcmap_free(NULL);
}

static void test_rewrite(void **state)
{
	(void)state;
	srcmap_register("/x/index.ts (bundled)", srcmap_parse(MAP, strlen(MAP), "/x/"));
	char *t = srcmap_rewrite("Error: boom\nf@/x/index.ts (bundled):27:5\n"
	                         "g@/x/index.ts (bundled):1:1\nh@/other.js:27:5\n"
	                         "/x/index.ts (bundled):30", 1 << 20);
	assert_non_null(t);
	assert_string_equal(t, "Error: boom\nf@/x/lib/util.ts:1:14\n"
	                       "g@/x/index.ts (bundled):1:1\nh@/other.js:27:5\n"
	                       "/x/index.ts:2:8");
	free(t);
	assert_null(srcmap_rewrite("nothing to map: /x/index.ts (bundled) alone", 1 << 20));
	assert_null(srcmap_rewrite(NULL, 1 << 20));
	/* a new map for the same URL replaces the old one */
	srcmap_register("/x/index.ts (bundled)", srcmap_parse(MAP, strlen(MAP), "/y/"));
	t = srcmap_rewrite("f@/x/index.ts (bundled):27:5", 1 << 20);
	assert_string_equal(t, "f@/y/lib/util.ts:1:14");
	free(t);
}

/* A plugin ships its own map: a source named with a megabyte, and an
 * error that repeats a position a thousand times, made the host build
 * ~1 GB under the registry's lock (every plugin's errors wait on it).
 * The name is cut to SRCMAP_SOURCE_MAX, positions are replaced until the
 * text has max bytes, and the rest is left as it was. */
static void test_rewrite_is_bounded(void **state)
{
	(void)state;
	size_t big = 1 << 20;
	char *map = malloc(big + 64), *text = malloc(1000 * 16 + 1);
	int n = snprintf(map, big + 64, "{\"sources\":[\"");
	memset(map + n, 'n', big);
	strcpy(map + n + big, "\"],\"mappings\":\"AAAA\"}");
	txs_srcmap *m = srcmap_parse(map, strlen(map), NULL);
	assert_non_null(m);
	const char *src;
	unsigned ol, oc;
	assert_true(srcmap_lookup(m, 1, 1, &src, &ol, &oc));
	assert_int_equal(strlen(src), SRCMAP_SOURCE_MAX);
	srcmap_register("/b/big.js", m);
	text[0] = '\0';
	for (int i = 0; i < 1000; i++)
		strcat(text, "/b/big.js:1:1, ");
	char *t = srcmap_rewrite(text, 16384);
	assert_non_null(t);
	if (strlen(t) > 16384 + SRCMAP_SOURCE_MAX + 32 + strlen(text))
		fail_msg("%zu bytes out of %zu", strlen(t), strlen(text));
	assert_int_equal(strncmp(t, "nnnn", 4), 0);
	free(t);
	free(text);
	free(map);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lookup),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_rewrite),
	    cmocka_unit_test(test_rewrite_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
