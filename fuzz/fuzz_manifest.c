/*
 * fuzz_manifest.c - libFuzzer driver for plugin.json parsing:
 * plugin_manifest_parse() in src/plugin.c. Manifests come with untrusted
 * plugins, and `txscan serve --watch` re-reads them whenever they change.
 *
 * Checks the parser's promises besides "no crash, no leak": a failure
 * returns TXS_EINVAL with a message that names the file; a success has no
 * message, an id of 1-64 of [a-z0-9-], version and main set, main inside
 * the folder, heap_restart_mb <= heap_limit_mb, 1-64 instances, and config
 * as JSON text of an object. The text is copied to an allocation of exactly
 * its size (no NUL) so ASan catches reads past the end.
 */
#include "host/plugin.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PATH "fuzz/plugin.json"

static void verify_ok(const plugin_manifest *m)
{
	size_t n = m->id ? strlen(m->id) : 0;
	if (n < 1 || n > 64 || strspn(m->id, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
		abort();
	if (!m->version || !m->version[0] || !m->main || !m->main[0])
		abort();
	if (m->main[0] == '/' || strstr(m->main, ".."))
		abort();
	if (m->limits.heap_restart_mb > m->limits.heap_limit_mb)
		abort();
	if (m->instances < 1 || m->instances > 64 || m->limits.timeout_ms < 1)
		abort();
	json_t *config = m->config_json ? json_loads(m->config_json, 0, NULL) : NULL;
	if (!json_is_object(config))
		abort();
	json_decref(config);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	plugin_manifest m;
	char *err = NULL;
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	int rc = plugin_manifest_parse(PATH, text, size, &m, &err);
	if (rc == 0) {
		if (err)
			abort();
		verify_ok(&m);
		plugin_manifest_clear(&m);
	} else if (rc != TXS_EINVAL || !err || strncmp(err, PATH, strlen(PATH))) {
		abort();
	}
	free(err);
	free(text);
	return 0;
}
