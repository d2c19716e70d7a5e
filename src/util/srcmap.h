/*
 * srcmap.h - source maps (v3) of bundled plugins, applied to error text.
 *
 * A bundled plugin runs as one generated file; its stack traces name that
 * file's lines. The bundler (src/bundle/) registers each bundle's map under
 * the URL the engine evaluates it with; when an error or a console stack
 * is formatted (never on a scan that does not fail), the engine rewrites
 * every "URL:line:column" in the text to the original file, line and
 * column. Any thread; the registry has its own lock.
 */
#ifndef TXS_SRCMAP_H
#define TXS_SRCMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct txs_srcmap txs_srcmap;

/* Bytes of a source's name kept (a longer one is cut). */
#define SRCMAP_SOURCE_MAX 1024

/* Parses a source map's JSON. Each of its "sources" is shown as
 * prefix + source (prefix may be NULL; at most SRCMAP_SOURCE_MAX bytes of
 * the source). NULL when it is not a source map. */
txs_srcmap *srcmap_parse(const char *json, size_t len, const char *prefix);
void srcmap_free(txs_srcmap *m);

/* The original position of generated line:col (both 1-based); false when
 * the map has none. *src points into the map. */
bool srcmap_lookup(const txs_srcmap *m, unsigned line, unsigned col, const char **src,
                   unsigned *oline, unsigned *ocol);

/* Registers m (owned from now on) for code evaluated with this URL; a
 * later map for the same URL replaces it (the old one is freed). */
void srcmap_register(const char *url, txs_srcmap *m);

/* text with every "URL:line:col" (and "URL:line") of a registered URL
 * replaced by its original position, until the text has max bytes (the
 * rest is kept as it is, for the caller to cut: a plugin's own map may
 * name its sources at length, and an error repeat a position thousands
 * of times); NULL when nothing was replaced or no memory (the caller
 * keeps text). The registry's lock is held meanwhile: the work is bounded
 * by max and the text's length. */
char *srcmap_rewrite(const char *text, size_t max);

#endif
