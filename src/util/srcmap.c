/*
 * srcmap.c - source map v3 decoding (the "mappings" Base64 VLQ) and the
 * registry of the maps of bundled plugins (srcmap.h). A map is decoded
 * once, when its bundle is registered, into one array of segments sorted
 * by generated line and column: a lookup is a binary search.
 */
#define _GNU_SOURCE
#include "srcmap.h"

#include "sbuf.h"

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct seg {
	uint32_t line, col;   /* generated, 0-based */
	uint32_t src, oline, ocol;
};

struct txs_srcmap {
	struct seg *segs;
	size_t n;
	char **sources;
	size_t nsources;
};

static int b64(char c)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(t, c) : NULL;
	return p ? (int)(p - t) : -1;
}

/* One VLQ value at *p; false at a malformed one. */
static bool vlq(const char **p, int64_t *out)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 60; shift += 5) {
		int d = b64(**p);
		if (d < 0)
			return false;
		(*p)++;
		v |= (uint64_t)(d & 31) << shift;
		if (!(d & 32)) {
			*out = v & 1 ? -(int64_t)(v >> 1) : (int64_t)(v >> 1);
			return true;
		}
	}
	return false;
}

static bool push(txs_srcmap *m, size_t *cap, struct seg s)
{
	if (m->n == *cap) {
		size_t c = *cap ? *cap * 2 : 1024;
		struct seg *p = realloc(m->segs, c * sizeof *p);
		if (!p)
			return false;
		m->segs = p;
		*cap = c;
	}
	m->segs[m->n++] = s;
	return true;
}

/* Decodes "mappings": segments of 4 or 5 fields (name index ignored); the
 * ones of 1 field (no source) are skipped. */
static bool decode(txs_srcmap *m, const char *p)
{
	size_t cap = 0;
	int64_t line = 0, col = 0, src = 0, oline = 0, ocol = 0, name = 0;
	while (*p) {
		if (*p == ';') {
			line++;
			col = 0;
			p++;
			continue;
		}
		if (*p == ',') {
			p++;
			continue;
		}
		int64_t d[5];
		int k = 0;
		while (k < 5 && *p && *p != ',' && *p != ';')
			if (!vlq(&p, &d[k++]))
				return false;
		col += d[0];
		if (k < 4)
			continue;
		src += d[1];
		oline += d[2];
		ocol += d[3];
		if (k == 5)
			name += d[4];
		if (col < 0 || src < 0 || oline < 0 || ocol < 0 || (size_t)src >= m->nsources)
			return false;
		if (!push(m, &cap, (struct seg){(uint32_t)line, (uint32_t)col, (uint32_t)src,
		                                 (uint32_t)oline, (uint32_t)ocol}))
			return false;
	}
	return true;
}

txs_srcmap *srcmap_parse(const char *json, size_t len, const char *prefix)
{
	json_t *root = json_loadb(json, len, 0, NULL);
	json_t *sources = root ? json_object_get(root, "sources") : NULL;
	const char *mappings = root ? json_string_value(json_object_get(root, "mappings")) : NULL;
	txs_srcmap *m = sources && json_is_array(sources) && mappings ? calloc(1, sizeof *m) : NULL;
	bool ok = m != NULL;
	if (ok)
		m->sources = calloc(json_array_size(sources) + 1, sizeof *m->sources);
	ok = ok && m->sources;
	for (size_t i = 0; ok && i < json_array_size(sources); i++) {
		const char *s = json_string_value(json_array_get(sources, i));
		/* a plugin ships its own map: a name is a path, not a megabyte
		 * that every position in an error would repeat */
		ok = asprintf(&m->sources[i], "%s%.*s", prefix ? prefix : "", SRCMAP_SOURCE_MAX,
		              s ? s : "?") >= 0;
		if (!ok)
			m->sources[i] = NULL;
		else
			m->nsources++;
	}
	ok = ok && decode(m, mappings);
	json_decref(root);
	if (!ok) {
		srcmap_free(m);
		return NULL;
	}
	return m;
}

void srcmap_free(txs_srcmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nsources; i++)
		free(m->sources[i]);
	free(m->sources);
	free(m->segs);
	free(m);
}

bool srcmap_lookup(const txs_srcmap *m, unsigned line, unsigned col, const char **src,
                   unsigned *oline, unsigned *ocol)
{
	if (!m || !line)
		return false;
	uint32_t l = line - 1, c = col ? col - 1 : 0;
	size_t lo = 0, hi = m->n; /* first segment after (l, c) */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct seg *s = &m->segs[mid];
		if (s->line < l || (s->line == l && s->col <= c))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || m->segs[lo - 1].line != l) {
		/* before the first segment of the line: its first one, if any */
		if (lo >= m->n || m->segs[lo].line != l)
			return false;
		lo++;
	}
	const struct seg *s = &m->segs[lo - 1];
	*src = m->sources[s->src];
	*oline = s->oline + 1;
	*ocol = s->ocol + 1;
	return true;
}

/* ---- registry ----------------------------------------------------------- */

struct entry {
	char *url;
	txs_srcmap *map;
	struct entry *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct entry *entries; /* guarded by mu */

void srcmap_register(const char *url, txs_srcmap *m)
{
	pthread_mutex_lock(&mu);
	struct entry *e = entries;
	while (e && strcmp(e->url, url))
		e = e->next;
	if (e) {
		srcmap_free(e->map);
		e->map = m;
	} else if ((e = malloc(sizeof *e)) && (e->url = strdup(url))) {
		e->map = m;
		e->next = entries;
		entries = e;
	} else {
		free(e);
		srcmap_free(m);
	}
	pthread_mutex_unlock(&mu);
}

/* Reads ":line[:col]" after a URL at p; the characters it took, or 0. */
static size_t position(const char *p, unsigned *line, unsigned *col)
{
	char *end;
	if (*p != ':' || p[1] < '0' || p[1] > '9')
		return 0;
	*line = (unsigned)strtoul(p + 1, &end, 10);
	*col = 0;
	if (*end == ':' && end[1] >= '0' && end[1] <= '9')
		*col = (unsigned)strtoul(end + 1, &end, 10);
	return (size_t)(end - p);
}

/* The rewrite of text for one URL into out, positions replaced until out
 * holds max bytes; true if any replaced. */
static bool rewrite_one(const struct entry *e, const char *text, size_t max, sbuf *out)
{
	size_t ulen = strlen(e->url);
	bool any = false;
	const char *p = text, *hit;
	while (out->len < max && (hit = strstr(p, e->url))) {
		unsigned line, col, ol, oc;
		const char *src;
		size_t n = position(hit + ulen, &line, &col);
		sb_put(out, p, (size_t)(hit - p));
		if (n && srcmap_lookup(e->map, line, col, &src, &ol, &oc)) {
			char pos[32];
			snprintf(pos, sizeof pos, ":%u:%u", ol, oc);
			sb_str(out, src);
			sb_str(out, pos);
			any = true;
		} else {
			sb_put(out, hit, ulen + n);
		}
		p = hit + ulen + n;
	}
	sb_str(out, p);
	return any;
}

char *srcmap_rewrite(const char *text, size_t max)
{
	if (!text)
		return NULL;
	char *cur = NULL;
	pthread_mutex_lock(&mu);
	for (const struct entry *e = entries; e; e = e->next) {
		if (!strstr(cur ? cur : text, e->url))
			continue;
		sbuf out = {0};
		if (rewrite_one(e, cur ? cur : text, max, &out) && !out.oom) {
			free(cur);
			cur = out.p;
		} else {
			free(out.p);
		}
	}
	pthread_mutex_unlock(&mu);
	return cur;
}
