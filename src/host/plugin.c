/*
 * plugin.c - plugin.json: parse, validate, read the code.
 *
 * The manifest is strict: id, version and main are required, every other
 * key has a default, and an unknown key is an error that names it (a typo
 * in "timeout_ms" must not silently run a plugin with the default limit).
 */
#define _GNU_SOURCE
#include "plugin.h"

#include "bundle/bundle.h"
#include "pfile.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MANIFEST (256u << 10)
#define MAX_CODE (16u << 20)

static int fail(char **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) < 0)
		*err = NULL;
	va_end(ap);
	return TXS_EINVAL;
}

static const char *const KNOWN[] = {"id", "version", "main", "timeout_ms", "heap_limit_mb",
                                    "heap_restart_mb", "restart_every", "instances", "config",
                                    "description", "breaker_after", "breaker_cooldown_ms",
                                    "realms_per_vm"};

static bool known_key(const char *k)
{
	for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++)
		if (!strcmp(k, KNOWN[i]))
			return true;
	return false;
}

static bool valid_id(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return false;
	return true;
}

static int get_string(const char *path, json_t *root, const char *key, size_t max, char **out,
                      char **err)
{
	json_t *v = json_object_get(root, key);
	if (!v)
		return fail(err, "%s: missing required key \"%s\"", path, key);
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max)
		return fail(err, "%s: %s must be a non-empty string of at most %zu characters", path,
		            key, max);
	*out = strdup(json_string_value(v));
	return *out ? 0 : fail(err, "out of memory");
}

/* An optional integer key within [min, max]. */
static int get_uint(const char *path, json_t *root, const char *key, uint32_t min, uint32_t max,
                    uint32_t *out, char **err)
{
	json_t *v = json_object_get(root, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		char *got = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		int rc = min > 0 ? fail(err, "%s: %s must be a positive integer <= %u (got %s)", path,
		                        key, max, got ? got : "?")
		                 : fail(err, "%s: %s must be an integer from 0 to %u (got %s)", path,
		                        key, max, got ? got : "?");
		free(got);
		return rc;
	}
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

static int check_keys(const char *path, json_t *root, char **err)
{
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v)
	{
		(void)v;
		if (!known_key(key))
			return fail(err,
			            "%s: unknown key \"%s\" (known: id, version, main, timeout_ms, "
			            "heap_limit_mb, heap_restart_mb, restart_every, instances, config, "
			            "description, breaker_after, breaker_cooldown_ms, realms_per_vm)",
			            path, key);
	}
	return 0;
}

static int check_main(const char *path, const char *main, char **err)
{
	if (main[0] == '/' || strstr(main, ".."))
		return fail(err, "%s: main must be a path inside the plugin folder (got \"%s\")", path,
		            main);
	return 0;
}

static int get_limits(const char *path, json_t *root, plugin_manifest *m, char **err)
{
	txs_limits *l = &m->limits;
	int rc;
	if ((rc = get_uint(path, root, "timeout_ms", 1, 60000, &l->timeout_ms, err)) ||
	    (rc = get_uint(path, root, "heap_limit_mb", 1, 16384, &l->heap_limit_mb, err)) ||
	    (rc = get_uint(path, root, "heap_restart_mb", 1, 16384, &l->heap_restart_mb, err)) ||
	    (rc = get_uint(path, root, "restart_every", 0, 100000000, &l->restart_every, err)) ||
	    (rc = get_uint(path, root, "instances", 1, 64, &m->instances, err)) ||
	    (rc = get_uint(path, root, "breaker_after", 0, 1000000, &l->breaker_after, err)) ||
	    (rc = get_uint(path, root, "breaker_cooldown_ms", 1, 3600000, &l->breaker_cooldown_ms, err)) ||
	    (rc = get_uint(path, root, "realms_per_vm", 1, 1000000, &l->realms_per_vm, err)))
		return rc;
	if (l->heap_restart_mb > l->heap_limit_mb)
		return fail(err, "%s: heap_restart_mb (%u) must not exceed heap_limit_mb (%u)", path,
		            l->heap_restart_mb, l->heap_limit_mb);
	if (l->init_timeout_ms < l->timeout_ms)
		l->init_timeout_ms = l->timeout_ms;
	return 0;
}

static int get_config(const char *path, json_t *root, plugin_manifest *m, char **err)
{
	json_t *c = json_object_get(root, "config");
	if (c && !json_is_object(c))
		return fail(err, "%s: config must be an object", path);
	json_t *d = json_object_get(root, "description");
	if (d && !json_is_string(d))
		return fail(err, "%s: description must be a string", path);
	m->config_json = c ? json_dumps(c, JSON_COMPACT) : strdup("{}");
	return m->config_json ? 0 : fail(err, "out of memory");
}

int plugin_manifest_parse(const char *path, const char *text, size_t len, plugin_manifest *m,
                          char **err)
{
	json_error_t je;
	memset(m, 0, sizeof *m);
	*err = NULL;
	txs_limits_init(&m->limits);
	m->instances = 1;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	int rc;
	if (!root)
		return fail(err, "%s:%d:%d: invalid JSON: %s", path, je.line, je.column, je.text);
	if (!json_is_object(root))
		rc = fail(err, "%s: must be a JSON object", path);
	else if (!(rc = check_keys(path, root, err)) &&
	         !(rc = get_string(path, root, "id", 64, &m->id, err)) &&
	         !(rc = get_string(path, root, "version", 64, &m->version, err)) &&
	         !(rc = get_string(path, root, "main", 255, &m->main, err)) &&
	         !(rc = check_main(path, m->main, err)) && !(rc = get_limits(path, root, m, err)))
		rc = get_config(path, root, m, err);
	if (!rc && !valid_id(m->id))
		rc = fail(err, "%s: id must be 1-64 characters of a-z, 0-9 and '-' (got \"%s\")", path,
		          m->id);
	json_decref(root);
	if (rc)
		plugin_manifest_clear(m);
	return rc;
}

int plugin_manifest_read(const char *dir, plugin_manifest *m, char **err)
{
	char *path = NULL, *text = NULL;
	size_t len;
	memset(m, 0, sizeof *m);
	*err = NULL;
	if (asprintf(&path, "%s/plugin.json", dir) < 0)
		return fail(err, "out of memory");
	int rc = plugin_read_file(dir, "plugin.json", MAX_MANIFEST, &text, &len, err);
	if (!rc && !(rc = plugin_manifest_parse(path, text, len, m, err))) {
		m->dir = strdup(dir);
		rc = m->dir ? 0 : fail(err, "out of memory");
	}
	if (rc)
		plugin_manifest_clear(m);
	free(text);
	free(path);
	return rc;
}

int plugin_manifest_read_code(plugin_manifest *m, char **err)
{
	char *why = NULL;
	*err = NULL;
	free(m->main_path);
	if (asprintf(&m->main_path, "%s/%s", m->dir, m->main) < 0) {
		m->main_path = NULL;
		return fail(err, "out of memory");
	}
	int rc = plugin_read_file(m->dir, m->main, MAX_CODE, &m->source, &m->source_len, &why);
	if (rc)
		fail(err, "%s/plugin.json: main file %s", m->dir, why ? why : "cannot be read");
	free(why);
	/* ES modules, TypeScript, imports: one CommonJS bundle (src/bundle/) */
	if (!rc && bundle_plugin_source(m->dir, m->main, &m->source, &m->source_len, &m->main_path,
	                                err))
		rc = TXS_EINVAL;
	return rc;
}

int plugin_manifest_load(const char *dir, plugin_manifest *m, char **err)
{
	int rc = plugin_manifest_read(dir, m, err);
	if (!rc && (rc = plugin_manifest_read_code(m, err)))
		plugin_manifest_clear(m);
	return rc;
}

int plugin_manifest_set_config(plugin_manifest *m, const char *config_json, char **err)
{
	if (!config_json)
		return 0;
	json_t *c = json_loads(config_json, 0, NULL);
	char *text = json_is_object(c) ? json_dumps(c, JSON_COMPACT) : NULL;
	json_decref(c);
	if (!text)
		return fail(err, "the config given for %s is not a JSON object", m->id);
	free(m->config_json);
	m->config_json = text;
	return 0;
}

void plugin_manifest_clear(plugin_manifest *m)
{
	free(m->dir);
	free(m->id);
	free(m->version);
	free(m->main);
	free(m->main_path);
	free(m->config_json);
	free(m->source);
	memset(m, 0, sizeof *m);
}
