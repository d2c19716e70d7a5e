/*
 * plugin.h - plugin folders: plugin.json parsed and validated, code read.
 * Errors name the file and the field: "plugins/x/plugin.json: timeout_ms
 * must be a positive integer (got -5)".
 */
#ifndef TXS_PLUGIN_H
#define TXS_PLUGIN_H

#include "txscan.h"

typedef struct plugin_manifest {
	char *dir;           /* the plugin folder */
	char *id, *version, *main;
	char *main_path;     /* dir/main */
	char *config_json;   /* "config" as compact JSON text; "{}" by default */
	txs_limits limits;   /* defaults with the manifest's keys applied */
	uint32_t instances;
	char *source;        /* contents of main, NUL-terminated */
	size_t source_len;
} plugin_manifest;

/* Parses and validates manifest text (no file access). path is used in
 * messages only. On failure returns TXS_EINVAL and *err (malloc'ed). */
int plugin_manifest_parse(const char *path, const char *text, size_t len, plugin_manifest *out,
                          char **err);

/* Reads dir/plugin.json and the main file it names. */
int plugin_manifest_load(const char *dir, plugin_manifest *out, char **err);

void plugin_manifest_clear(plugin_manifest *m);

/* Replaces the manifest's config with config_json (NULL: keeps it). 0, or
 * TXS_EINVAL (with txs_last_error) when it is not a JSON object. */
int plugin_manifest_set_config(plugin_manifest *m, const char *config_json);

/* Reads a whole file (NUL-terminated); NULL with errno set on failure.
 * Files over cap bytes fail with EFBIG. */
char *plugin_read_file(const char *path, size_t cap, size_t *len);

#endif
