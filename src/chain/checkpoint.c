/*
 * checkpoint.c - the follower's window of recent blocks and its file (see
 * checkpoint.h).
 *
 * The file is written only after the reports of its tip block are flushed
 * to stdout, so on restart the follower resumes right after the last block
 * whose every report is out. It holds the recent blocks too (hashes and
 * reported transaction hashes), so a reorg that happens while the follower
 * is down is still detected and its "removed" lines still written. The
 * file is read like any outside input: every field is checked.
 */
#define _POSIX_C_SOURCE 200809L
#include "chain/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { MAX_FILE = 64 << 20 };

int window_init(struct window *w, uint64_t chain_id, size_t max_reorg)
{
	memset(w, 0, sizeof *w);
	w->chain_id = chain_id;
	w->cap = max_reorg + 1;
	w->b = calloc(w->cap, sizeof *w->b);
	return w->b ? 0 : -1;
}

static void wblock_clear(struct wblock *b)
{
	free(b->txs);
	memset(b, 0, sizeof *b);
}

void window_free(struct window *w)
{
	for (size_t i = 0; i < w->n; i++)
		wblock_clear(&w->b[i]);
	free(w->b);
	memset(w, 0, sizeof *w);
}

struct wblock *window_tip(struct window *w)
{
	return w->n ? &w->b[w->n - 1] : NULL;
}

void window_pop(struct window *w)
{
	if (w->n)
		wblock_clear(&w->b[--w->n]);
}

int window_push(struct window *w, const struct eth_header *h, bool reported, const json_t *txs)
{
	if (w->n == w->cap) {
		wblock_clear(&w->b[0]);
		memmove(&w->b[0], &w->b[1], (w->cap - 1) * sizeof *w->b);
		memset(&w->b[--w->n], 0, sizeof *w->b);
	}
	struct wblock *b = &w->b[w->n];
	size_t n = json_array_size(txs);
	b->h = *h;
	b->reported = reported;
	b->txs = n ? calloc(n, sizeof *b->txs) : NULL;
	if (n && !b->txs)
		return -1;
	for (size_t i = 0; i < n; i++)
		snprintf(b->txs[i], sizeof b->txs[i], "%s",
		         json_string_value(json_object_get(json_array_get(txs, i), "hash")));
	b->ntx = n;
	w->n++;
	return 0;
}

/* ---- the file ---------------------------------------------------------------- */

static json_t *wblock_json(const struct wblock *b)
{
	json_t *txs = json_array();
	for (size_t i = 0; i < b->ntx; i++)
		json_array_append_new(txs, json_string(b->txs[i]));
	return json_pack("{s:I, s:s, s:s, s:I, s:b, s:o}", "number", (json_int_t)b->h.number, "hash",
	                 b->h.hash, "parentHash", b->h.parent, "timestamp",
	                 (json_int_t)b->h.timestamp, "reported", b->reported, "txs", txs);
}

static json_t *window_json(const struct window *w)
{
	json_t *blocks = json_array();
	for (size_t i = 0; i < w->n; i++)
		json_array_append_new(blocks, wblock_json(&w->b[i]));
	const struct wblock *tip = w->n ? &w->b[w->n - 1] : NULL;
	return json_pack("{s:i, s:I, s:I, s:s, s:o}", "txscan_checkpoint", 1, "chainId",
	                 (json_int_t)w->chain_id, "number", (json_int_t)(tip ? tip->h.number : 0),
	                 "hash", tip ? tip->h.hash : "", "blocks", blocks);
}

static int write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t k = write(fd, s, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

static int sync_dir(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -1;
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int checkpoint_save(const struct window *w, const char *path, char *err, size_t errlen)
{
	char tmp[4096];
	json_t *doc = window_json(w);
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	int fd = -1, rc = -1;
	json_decref(doc);
	if (!text || snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
		snprintf(err, errlen, "%s: cannot write the checkpoint (out of memory or path too long)", path);
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, text, strlen(text)) || write_all(fd, "\n", 1) || fsync(fd)) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) || sync_dir(path)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(text);
	return rc;
}

static int hash_field(const json_t *o, const char *key, char *out)
{
	json_t *v = json_object_get(o, key);
	if (!eth_fixed_hex(v, 32))
		return -1;
	snprintf(out, ETH_HASH_LEN + 1, "%s", json_string_value(v));
	return 0;
}

static int wblock_parse(const json_t *o, struct wblock *b)
{
	json_t *num = json_object_get(o, "number"), *ts = json_object_get(o, "timestamp");
	json_t *txs = json_object_get(o, "txs"), *t;
	size_t i;
	if (!json_is_integer(num) || json_integer_value(num) < 0 || !json_is_integer(ts) ||
	    json_integer_value(ts) < 0 || !json_is_boolean(json_object_get(o, "reported")) ||
	    hash_field(o, "hash", b->h.hash) || hash_field(o, "parentHash", b->h.parent) ||
	    !json_is_array(txs))
		return -1;
	b->h.number = (uint64_t)json_integer_value(num);
	b->h.timestamp = (uint64_t)json_integer_value(ts);
	b->reported = json_is_true(json_object_get(o, "reported"));
	json_array_foreach(txs, i, t) if (!eth_fixed_hex(t, 32)) return -1;
	b->ntx = json_array_size(txs);
	b->txs = b->ntx ? calloc(b->ntx, sizeof *b->txs) : NULL;
	if (b->ntx && !b->txs)
		return -1;
	json_array_foreach(txs, i, t) snprintf(b->txs[i], sizeof b->txs[i], "%s", json_string_value(t));
	return 0;
}

static int load_doc(struct window *w, const json_t *doc, char *err, size_t errlen)
{
	json_t *cid = json_object_get(doc, "chainId"), *blocks = json_object_get(doc, "blocks"), *o;
	size_t i;
	if (!json_is_integer(json_object_get(doc, "txscan_checkpoint")) || !json_is_integer(cid) ||
	    !json_is_array(blocks) || !json_array_size(blocks)) {
		snprintf(err, errlen, "not a txscan checkpoint");
		return -1;
	}
	if ((uint64_t)json_integer_value(cid) != w->chain_id) {
		snprintf(err, errlen, "written for chain %" PRId64 ", the node is chain %" PRIu64,
		         (int64_t)json_integer_value(cid), w->chain_id);
		return -1;
	}
	size_t skip = json_array_size(blocks) > w->cap ? json_array_size(blocks) - w->cap : 0;
	json_array_foreach(blocks, i, o)
	{
		if (i < skip)
			continue;
		struct wblock *b = &w->b[w->n];
		if (wblock_parse(o, b) || (w->n && b->h.number != w->b[w->n - 1].h.number + 1)) {
			wblock_clear(b);
			snprintf(err, errlen, "block %zu of the checkpoint is malformed", i);
			return -1;
		}
		w->n++;
	}
	return 0;
}

int checkpoint_load(struct window *w, const char *path, char *err, size_t errlen)
{
	json_error_t je;
	FILE *f = fopen(path, "rb");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	char why[256] = "";
	json_t *doc = NULL;
	if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE)
		snprintf(why, sizeof why, "not a regular file of at most %d bytes", MAX_FILE);
	else if (!(doc = json_loadf(f, JSON_REJECT_DUPLICATES, &je)))
		snprintf(why, sizeof why, "not JSON: %s", je.text);
	fclose(f);
	int rc = doc ? load_doc(w, doc, why, sizeof why) : -1;
	json_decref(doc);
	if (rc) {
		for (size_t i = 0; i < w->n; i++)
			wblock_clear(&w->b[i]);
		w->n = 0;
		snprintf(err, errlen, "%s: %s", path, why);
		return -1;
	}
	return 1;
}
