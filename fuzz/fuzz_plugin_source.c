/*
 * fuzz_plugin_source.c - libFuzzer driver for a plugin's source: the bytes
 * are the plugin's index.js, and building an engine from them (engine_new in
 * src/engine/engine.c: check the text, wrap it, evaluate it, run the module
 * and init) must end in an engine or a clear error. Plugins are untrusted;
 * '}); (function(){ return 5; })(function(){' and the bytes ff fe once
 * crashed the process here.
 *
 * Checks besides "no crash, no leak, no hang" (libFuzzer's -timeout): a
 * failure leaves no engine and a message that names the file ("index.js:")
 * in valid UTF-8 of bounded size; a success leaves an engine that answers a
 * scan (any status, its text valid UTF-8 and bounded) and is freed. The
 * source is copied to an allocation of exactly its size (no NUL) so ASan
 * catches reads past its end. Limits are small (20 ms to load, 20 ms a
 * scan) to keep the executions per second up.
 *
 * An input of odd length is built as a realm of a long-lived base engine
 * (engine_new_realm: the executor's cheap recycling, a new global context
 * in the base's VM), and the base must still answer a scan afterwards:
 * nothing a plugin's source does in one realm may break its VM for the
 * next. A base killed by a scan is replaced.
 */
#include "engine/engine.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool valid_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end) {
		unsigned char c = *p;
		size_t k = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
		         : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
		if (!k || (size_t)(end - p) < k)
			return false;
		for (size_t i = 1; i < k; i++)
			if ((p[i] & 0xC0) != 0x80)
				return false;
		if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F) ||
		    (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))
			return false;
		p += k;
	}
	return true;
}

/* Error text: valid UTF-8, at most 16 KiB plus a short prefix. */
static void check_text(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (!s || n > 16384 + 256 || !valid_utf8(s, n))
		abort();
}

static void on_console(int level, const char *msg, size_t len, void *ud)
{
	(void)level;
	(void)ud;
	if (len > 4096 || strlen(msg) != len || !valid_utf8(msg, len))
		abort();
}

static const char BASE_SRC[] = "module.exports = { scanTransaction(tx) { return tx.hash; } };";

static engine_config config(const char *src, size_t len)
{
	return (engine_config){.plugin_id = "fuzz", .plugin_version = "1", .filename = "index.js",
	                       .source = src, .source_len = len, .timeout_ms = 20,
	                       .init_timeout_ms = 20, .heap_limit_mb = 256,
	                       .max_result_bytes = 1 << 20, .console = on_console};
}

/* The long-lived engine realms are made in; built again when killed. */
static engine *base_engine(void)
{
	static engine *base;
	static engine_config cfg;
	if (base && !engine_dead(base))
		return base;
	engine_free(base);
	cfg = config(BASE_SRC, sizeof BASE_SRC - 1);
	char *err = NULL;
	if (engine_new(&base, &cfg, &err))
		abort();
	return base;
}

/* The base still answers, whatever the last realm did. */
static void check_base(engine *base)
{
	engine_result res = {0};
	engine_scan(base, "{\"hash\":\"b\"}", 12, &res);
	if (res.status != ENGINE_OK || strcmp(res.json, "\"b\""))
		abort();
	engine_result_clear(&res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *src = malloc(size ? size : 1);
	if (!src)
		return 0;
	memcpy(src, data, size);
	engine_config cfg = config(src, size);
	engine *e = NULL, *base = size % 2 ? base_engine() : NULL;
	char *err = NULL;
	int rc = base ? engine_new_realm(base, &e, &cfg, &err) : engine_new(&e, &cfg, &err);
	if (rc == 0) {
		if (!e || err)
			abort();
		engine_result res = {0};
		engine_scan(e, "{\"hash\":\"0x1\"}", 14, &res);
		if (res.status == ENGINE_OK ? !res.json : (check_text(res.error), false))
			abort();
		engine_result_clear(&res);
		engine_free(e);
	} else {
		if (e || !err || strncmp(err, "index.js:", 9))
			abort();
		check_text(err);
	}
	if (base)
		check_base(base);
	free(err);
	free(src);
	return 0;
}
