/*
 * fuzz_findings.c - libFuzzer driver for findings_collect() (src/findings.c),
 * which reads every plugin's answer and writes it into reports.
 *
 * Differential against jansson: the text is "not JSON" for findings_collect
 * exactly when jansson refuses it (apart from what jansson refuses beyond
 * the grammar: reals that overflow a double, U+0000 in an object key,
 * its depth limit; it also takes a raw NUL byte for the end of the text,
 * which findings_collect refuses). When findings are accepted, the written findings must
 * parse, one per finding of the input, each tagged with the plugin id and
 * holding the same code, severity, message and metadata as jansson reads
 * from the input, and every code follows the documented pattern. The input is copied to an allocation of exactly its size,
 * without a NUL, so ASan catches any read past its end.
 */
#include "host/findings.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const unsigned FLAGS = JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL;

static void same_field(json_t *want, json_t *got, const char *key)
{
	json_t *w = json_object_get(want, key), *g = json_object_get(got, key);
	if ((w == NULL) != (g == NULL) || (w && !json_equal(w, g)))
		abort();
}

/* Accepted codes follow docs/plugins.md: [A-Z][A-Z0-9_]*, 1-128 bytes. */
static bool code_ok(json_t *code)
{
	const char *s = json_string_value(code);
	size_t n = json_string_length(code);
	if (!s || n < 1 || n > FINDINGS_MAX_CODE || s[0] < 'A' || s[0] > 'Z')
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == n;
}

static void verify(json_t *in, const sbuf *out, const sbuf *refs)
{
	json_t *list = json_is_array(in)  ? json_incref(in)
	             : json_is_null(in) ? json_array()
	                                : json_pack("[O]", in);
	char *text = malloc(out->len + 2);
	if (!list || !text)
		abort();
	text[0] = '[';
	memcpy(text + 1, out->p ? out->p : "", out->len);
	text[out->len + 1] = ']';
	json_error_t je;
	json_t *got = json_loadb(text, out->len + 2, FLAGS, &je);
	if (!got || json_array_size(got) != json_array_size(list) ||
	    refs->len != json_array_size(list) * sizeof(finding_ref))
		abort();
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *w = json_array_get(list, i), *g = json_array_get(got, i);
		if (!json_is_object(w) || !json_is_object(g) ||
		    strcmp(json_string_value(json_object_get(g, "plugin")), "p"))
			abort();
		same_field(w, g, "code");
		if (!code_ok(json_object_get(g, "code")))
			abort();
		/* the refs the report's accessors read point at the same code */
		finding_ref ref;
		memcpy(&ref, refs->p + i * sizeof ref, sizeof ref);
		json_t *code = json_object_get(g, "code");
		if (ref.code_len != json_string_length(code) || ref.code_at + ref.code_len > out->len ||
		    memcmp(out->p + ref.code_at, json_string_value(code), ref.code_len) ||
		    strcmp(txs_severity_name(ref.severity), json_string_value(json_object_get(g, "severity"))))
			abort();
		same_field(w, g, "severity");
		same_field(w, g, "message");
		same_field(w, g, "metadata");
	}
	json_decref(got);
	json_decref(list);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	sbuf out = {0};
	txs_severity top = TXS_SEVERITY_NONE;
	sbuf refs = {0};
	char *err = findings_collect(&out, &refs, "p", buf, size, &top);
	json_error_t je;
	json_t *in = json_loadb(buf, size, FLAGS, &je);
	bool not_json = err && !strncmp(err, "result is not JSON", 18);
	/* jansson also ends the text at a raw NUL byte; findings_collect refuses it */
	bool beyond_grammar = (!in && (strstr(je.text, "overflow") || strstr(je.text, "NUL") ||
	                               strstr(je.text, "depth"))) ||
	                      (in && memchr(buf, 0, size));
	if (not_json != !in && !beyond_grammar)
		abort();
	if (!err && in && !memchr(buf, 0, size))
		verify(in, &out, &refs);
	if (!err && (top < TXS_SEVERITY_NONE || top > TXS_SEVERITY_CRITICAL))
		abort();
	json_decref(in);
	free(err);
	free(out.p);
	free(refs.p);
	free(buf);
	return 0;
}
