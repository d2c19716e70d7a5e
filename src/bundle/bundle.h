/*
 * bundle.h - plugins written as ES modules, in TypeScript, or with
 * imports of their own files and packages: bundled at load into the one
 * CommonJS file the engine runs, by esbuild (Debian package `esbuild`) run
 * as a subprocess (src/bundle/bundle.c).
 *
 * Host layer; any thread (no shared state but the source-map registry,
 * which has its own lock).
 */
#ifndef TXS_BUNDLE_H
#define TXS_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>

/* Whether dir/main needs bundling: TypeScript (.ts .mts .cts .tsx), an ES
 * module (.mjs, or .js in a folder whose package.json says "type":
 * "module", or with import/export statements), or CommonJS that requires
 * the plugin's own files or packages (source is main's text). */
bool bundle_needed(const char *dir, const char *main, const char *source, size_t len);

typedef struct bundle_out {
	char *code;       /* CommonJS, NUL-terminated */
	size_t len;
	char *map;        /* its source map (JSON), sources named as dir/... */
	size_t map_len;
} bundle_out;

/* Bundles dir/main with esbuild (browser platform, so packages' browser
 * builds and "exports" conditions are taken), with a clean environment and
 * a time limit (TXS_BUNDLE_TIMEOUT_MS, default 20000). Every file esbuild
 * read must be inside dir (after realpath); a Node built-in import is an
 * error naming the importing file. 0, or -1 with *err (malloc'ed). */
int bundle_build(const char *dir, const char *main, bundle_out *out, char **err);
void bundle_out_clear(bundle_out *b);

/* The URL a bundle of dir/main is evaluated with (malloc'ed):
 * "dir/main (bundled)"; its positions are mapped back by the source map
 * registered under it (util/srcmap.h). */
char *bundle_url(const char *dir, const char *main);

/* For plugin.c's manifest load: when dir/main needs bundling, *source and
 * *len become the bundle and *url its URL (both previous values freed),
 * and its source map is registered under that URL. 0 (done, or nothing to
 * do), or -1 with *err (malloc'ed). */
int bundle_plugin_source(const char *dir, const char *main, char **source, size_t *len,
                         char **url, char **err);

#endif
