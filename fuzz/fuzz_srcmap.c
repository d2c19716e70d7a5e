/*
 * fuzz_srcmap.c - libFuzzer driver for source maps: srcmap_parse(),
 * srcmap_lookup() and the registry's srcmap_rewrite() in
 * src/util/srcmap.c. A map comes from the plugin folder when a plugin
 * ships a bundle made ahead of time (main ending in a sourceMappingURL),
 * so it is untrusted input to the host.
 *
 * Checks besides "no crash, no leak": a lookup answers a source of the
 * map and 1-based positions; a rewrite of text without the URL changes
 * nothing. The input is copied to an allocation of exactly its size.
 */
#include "util/srcmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define URL "/fuzz/index.ts (bundled)"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	txs_srcmap *m = srcmap_parse(text, size, "/p/");
	free(text);
	if (!m)
		return 0;
	for (unsigned line = 0; line < 40; line++)
		for (unsigned col = 0; col < 40; col += 3) {
			const char *src = NULL;
			unsigned l = 0, c = 0;
			if (srcmap_lookup(m, line, col, &src, &l, &c) &&
			    (!src || strncmp(src, "/p/", 3) || l == 0 || c == 0))
				abort();
		}
	srcmap_register(URL, m);
	char *t = srcmap_rewrite("Error: x\nf@" URL ":1:1\ng@" URL ":7:30\nh@" URL ":2\n" URL ":", 1 << 16);
	free(t);
	if (srcmap_rewrite("no url here: 1:1:1", 1 << 16))
		abort();
	return 0;
}
