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

/* Reads and parses dir/plugin.json only (source stays NULL): the id of a
 * plugin whose code cannot be read is still known. */
int plugin_manifest_read(const char *dir, plugin_manifest *out, char **err);

/* Reads the main file of a manifest from plugin_manifest_read into
 * source. On failure *err names the manifest and the main file; the
 * manifest is left as it was (clear it). */
int plugin_manifest_read_code(plugin_manifest *m, char **err);

/* Both of the above: dir/plugin.json and the main file it names, through
 * plugin_read_file (pfile.h): inside dir, regular, bounded. The error names
 * the file and the field; it never quotes a file from outside dir. */
int plugin_manifest_load(const char *dir, plugin_manifest *out, char **err);

void plugin_manifest_clear(plugin_manifest *m);

/* Replaces the manifest's config with config_json (NULL: keeps it). 0, or
 * TXS_EINVAL and *err (malloc'ed) when it is not a JSON object. */
int plugin_manifest_set_config(plugin_manifest *m, const char *config_json, char **err);

/* Files of a plugin folder are read with plugin_read_file (pfile.h). */
#include "pfile.h"

#endif
