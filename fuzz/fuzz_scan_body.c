/*
 * fuzz_scan_body.c - libFuzzer driver for the body of POST /v1/scan and
 * POST /v1/scan/batch: server_parse_body() in src/server.c, the first code
 * that reads bytes from anyone who can reach the port.
 *
 * Beyond "no crash", it checks the parser's promises, against jansson: a
 * rejected body has a 400 or 413 and a message, and is refused as "invalid
 * JSON" exactly when jansson refuses it (apart from what jansson refuses
 * beyond the grammar); an accepted batch is split into exactly as
 * many spans as jansson counts elements, each span lies inside the body
 * and parses to the same value as that element (the server hands spans to
 * the plugins byte for byte, so a wrong split would scan the wrong thing).
 * The body is copied to an allocation of exactly its size, without a NUL,
 * so ASan catches any read past its end.
 */
#include "http/server.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 64

static const unsigned FLAGS = JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL;

/* What jansson refuses beyond the JSON grammar (a real that overflows a
 * double, U+0000 in a key, its depth limit), or the raw NUL byte it takes
 * for the end of the text: there the two may disagree. */
static bool beyond_grammar(const char *body, size_t len, const json_t *doc, const json_error_t *je)
{
	if (memchr(body, 0, len))
		return true;
	return !doc && (strstr(je->text, "overflow") || strstr(je->text, "NUL") ||
	                strstr(je->text, "depth"));
}

static void verify_batch(const char *body, size_t len, const body_span *spans, size_t n,
                         json_t *doc)
{
	if (!json_is_array(doc) || json_array_size(doc) != n)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (spans[i].off > len || spans[i].len > len - spans[i].off || spans[i].len == 0)
			abort();
		json_t *item = json_loadb(body + spans[i].off, spans[i].len, FLAGS, NULL);
		if (!item || !json_equal(item, json_array_get(doc, i)))
			abort();
		json_decref(item);
	}
}

static void check(const char *body, size_t len, enum body_kind kind)
{
	body_span *spans = NULL;
	size_t n = 0;
	body_error err;
	json_error_t je;
	json_t *doc = json_loadb(body, len, FLAGS, &je);
	bool odd = beyond_grammar(body, len, doc, &je);
	if (server_parse_body(body, len, kind, MAX_ITEMS, &spans, &n, &err) < 0) {
		if ((err.status != 400 && err.status != 413) || !err.msg[0] || spans || n)
			abort();
		/* refused as not JSON exactly when jansson refuses it */
		if (!odd && (doc != NULL) == (strncmp(err.msg, "invalid JSON", 12) == 0))
			abort();
		if (err.position > len)
			abort();
	} else {
		if (!doc && !odd)
			abort();
		if (kind == BODY_SCAN && (n != 1 || spans[0].off != 0 || spans[0].len != len ||
		                          (doc && !json_is_object(doc))))
			abort();
		if (kind == BODY_BATCH && doc && !odd)
			verify_batch(body, len, spans, n, doc);
	}
	json_decref(doc);
	free(spans);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = malloc(size ? size : 1);
	if (!body)
		return 0;
	memcpy(body, data, size);
	check(body, size, BODY_SCAN);
	check(body, size, BODY_BATCH);
	free(body);
	return 0;
}
