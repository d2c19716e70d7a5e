/*
 * fuzz_scan_body.c - libFuzzer driver for the body of POST /v1/scan and
 * POST /v1/scan/batch: server_parse_body() in src/server.c, the first code
 * that reads bytes from anyone who can reach the port.
 *
 * Beyond "no crash", it checks the parser's promises: a rejected body has
 * a 400 or 413 and a message; an accepted batch is split into exactly as
 * many spans as jansson counts elements, each span lies inside the body
 * and parses to the same value as that element (the server hands spans to
 * the plugins byte for byte, so a wrong split would scan the wrong thing).
 * The body is copied to an allocation of exactly its size, without a NUL,
 * so ASan catches any read past its end.
 */
#include "server.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 64

static void verify_batch(const char *body, size_t len, const body_span *spans, size_t n)
{
	json_t *doc = json_loadb(body, len, JSON_DECODE_INT_AS_REAL, NULL);
	if (!doc || json_array_size(doc) != n)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (spans[i].off > len || spans[i].len > len - spans[i].off || spans[i].len == 0)
			abort();
		json_t *item = json_loadb(body + spans[i].off, spans[i].len,
		                          JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
		if (!item || !json_equal(item, json_array_get(doc, i)))
			abort();
		json_decref(item);
	}
	json_decref(doc);
}

static void check(const char *body, size_t len, enum body_kind kind)
{
	body_span *spans = NULL;
	size_t n = 0;
	body_error err;
	if (server_parse_body(body, len, kind, MAX_ITEMS, &spans, &n, &err) < 0) {
		if ((err.status != 400 && err.status != 413) || !err.msg[0] || spans || n)
			abort();
		return;
	}
	if (kind == BODY_SCAN && (n != 1 || spans[0].off != 0 || spans[0].len != len))
		abort();
	if (kind == BODY_BATCH)
		verify_batch(body, len, spans, n);
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
