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
	                         "/x/index.ts (bundled):30");
	assert_non_null(t);
	assert_string_equal(t, "Error: boom\nf@/x/lib/util.ts:1:14\n"
	                       "g@/x/index.ts (bundled):1:1\nh@/other.js:27:5\n"
	                       "/x/index.ts:2:8");
	free(t);
	assert_null(srcmap_rewrite("nothing to map: /x/index.ts (bundled) alone"));
	assert_null(srcmap_rewrite(NULL));
	/* a new map for the same URL replaces the old one */
	srcmap_register("/x/index.ts (bundled)", srcmap_parse(MAP, strlen(MAP), "/y/"));
	t = srcmap_rewrite("f@/x/index.ts (bundled):27:5");
	assert_string_equal(t, "f@/y/lib/util.ts:1:14");
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lookup),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_rewrite),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
