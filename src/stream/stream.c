/*
 * stream.c - txscan as a Redis Streams consumer: XREADGROUP in batches,
 * scan through txs_host_submit with many transactions in flight, write each
 * report once, XACK.
 *
 * Threads: every Redis call happens on the thread that runs
 * stream_worker_run, on one hiredis context (hiredis is not thread-safe).
 * Reports arrive on executor threads (txs_report_fn); the callback only
 * appends its job to `done` under `lock` and signals `cond` when the list
 * goes from empty to non-empty. The loop swaps the list out under the lock
 * and does the rest unlocked.
 *
 * Delivery: an entry is acked only by the script (WRITE_BATCH) that writes
 * its report - or its dead letter - in the same atomic step (one script
 * call for up to SCRIPT_BATCH entries), so a crash or a
 * lost connection leaves it pending and XAUTOCLAIM hands it to a live
 * consumer. The script writes only while the field <id> of the hash
 * <out>:done:<stream>:<group>:<bucket> (a bucket of IDs) lacks the entry's
 * digest (its fields), so a second delivery of one entry is acked without
 * a second report, while a new entry that reuses the ID is not; the key
 * names the stream and the group because entry IDs are only unique within
 * one stream, and each group owes every entry its own report.
 * A script whose reply was lost is simply sent again after reconnecting.
 *
 * Plugin reloads (SIGHUP) also run on the loop thread, between two Redis
 * calls: scans in flight go on meanwhile and are collected afterwards.
 */
#define _POSIX_C_SOURCE 200809L

#include "util/clock.h"
#include "util/log.h"
#include "util/sbuf.h"
#include "stream.h"
#include "txscan.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
	ID_MAX = 48,           /* "<ms>-<seq>": two 20-digit numbers and a dash */
	PIPELINE_MAX = 256,    /* entries written per round trip */
	SCRIPT_BATCH = 64,     /* entries per WRITE_BATCH call (Redis runs nothing
	                        * else meanwhile: ~1 ms at most) */
	PUBLISH_CHUNK = 1000,  /* XADDs per round trip, at most */
	PUBLISH_WAIT_MS = 100, /* a line waits this long at most for its chunk */
	PUBLISH_READ = 65536,  /* first size of publish's input buffer */
	PUBLISH_CHUNK_BYTES = 8 << 20, /* and at most this much text per round trip */
	PUBLISH_TRIES = 8,     /* connection attempts in a row before publish gives up */
	CONNECT_TIMEOUT_MS = 2000,
	IO_SLACK_MS = 5000,    /* socket timeout beyond the longest BLOCK */
	BACKOFF_FIRST_MS = 100,
	BACKOFF_MAX_MS = 5000,
	IDLE_POLL_MS = 5,      /* wait for reports while the stream is empty */
	ENTRY_ARGS = 16,       /* WRITE_BATCH arguments of one entry, at most */
	DIGEST_HEX = 32,       /* hex digits of an entry's digest kept (128 bits) */
	DONE_BUCKET_MS = 1000, /* entry IDs per once-only bucket, by their ms part
	                        * (a second): part of the key names, so every worker
	                        * of a group must use the same (not an option). Not
	                        * wider: Redis frees an expired key at once, ~0.2-0.6
	                        * us per field (a minute at 20k/s: 0.7 s blocked) */
};

/* One script for a batch of entries (up to SCRIPT_BATCH), so that Redis
 * pays the cost of a script call (~10 us of its CPU: argument copies, Lua
 * stack, reply) and of an XACK once per batch rather than once per entry.
 * KEYS: the input stream, the report stream, the dead-letter stream, then
 * the once-only buckets (below) the batch's entries fall in.
 * ARGV: group, key TTL (s), then the entries in runs: a run is its slot
 * (the KEYS index of its entries' bucket, negated for dead letters) and its
 * count k, then k entries. Each entry is its id and its digest
 * (entry_digest; "" when the entry is gone and its content unknown), then
 * for a report its "tx" and "report" values only (the script names the
 * fields entry, tx and report itself), for a dead letter the number n of
 * its field/value arguments and those n. Entries come in order, so a batch
 * of one second's reports is one run: the slot is not repeated per entry,
 * nor a count of fields per report. Every argument costs Redis a string
 * object and a Lua string (whose hash reads every byte), every tonumber a
 * strtod: this layout and the script's locals took its instructions per
 * entry from ~58,300 to ~47,400 (callgrind, bench/write_batch_ab.py's
 * entries; BENCHMARKS.md section 35).
 * Returns one integer per entry, in order: 1 written, 0 answered before.
 *
 * The once-only keys are buckets: one hash per DONE_BUCKET_MS of entry IDs,
 * whose field is an entry ID and whose value lists the digests of the
 * entries answered under that ID, separated by spaces. A redelivery (same
 * ID, same content) finds its digest and is only acked, while a new entry
 * that reuses an old ID (the stream was deleted and refilled with the same
 * IDs) does not. An entry whose content is unknown (deleted before it was
 * scanned) counts as answered when anything was answered under its ID, and
 * leaves "deleted". A bucket rather than a key per entry because each
 * redis.call costs Redis its own overhead besides the command: one HMGET,
 * HSET and EXPIRE per bucket and batch replace a TYPE (HEXISTS), HSET and
 * EXPIRE per entry, and the once-only work fell from ~2.5 us of Redis CPU
 * per entry to under 1 (bench/write_batch_ab.py, BENCHMARKS.md section
 * 31). The EXPIRE renews the whole bucket, so each field lives at least
 * the TTL after it was written. An ID is in one bucket only, so the
 * digests looked up are kept by ID alone (seen).
 * A batch that writes 16 entries or more into a bucket leads its HSET with
 * its first field set to 65 dashes (then to its value, later in the same
 * HSET): a value longer than hash-max-listpack-value (64 by default) makes
 * Redis turn a small hash into a hash table before it writes. Without it a
 * bucket stays a listpack until hash-max-listpack-entries (512) fields,
 * and every HMGET and HSET field scans it: ~3 % of the script's
 * instructions per entry at 20,000 entries a second (callgrind). The
 * bucket holds the same fields and values either way; a hash table costs
 * more memory per field, so buckets written by the few (low rates) keep
 * the listpack. Redis never turns a hash table back.
 * The entries are taken in order, so a second delivery of an entry in the
 * same batch is answered by the first. A script is not rolled back, and
 * the HSETs come after the XADDs: an XADD that fails still gets the
 * entries written before it marked (redis.pcall), or their retry would
 * write them again. The one XACK comes after every write: a script that
 * fails half-way acks nothing, and its retry acks the entries it had
 * written without writing them again. */
static const char WRITE_BATCH[] =
    "local group, ttl = ARGV[1], ARGV[2]\n"
    "local tonumber, unpack, find, rpcall = tonumber, unpack, string.find, redis.pcall\n"
    "local seen, ask, nask, add, nadd = {}, {}, {}, {}, {}\n"
    "local a = 3\n"
    "while a <= #ARGV do\n"
    "  local slot, k = tonumber(ARGV[a]), tonumber(ARGV[a + 1])\n"
    "  local b = slot < 0 and -slot or slot\n"
    "  local q, m = ask[b], nask[b]\n"
    "  if not q then q, m = {}, 0 ask[b] = q end\n"
    "  a = a + 2\n"
    "  for i = 1, k do\n"
    "    m = m + 1\n"
    "    q[m] = ARGV[a]\n"
    "    a = a + (slot > 0 and 4 or 3 + tonumber(ARGV[a + 2]))\n"
    "  end\n"
    "  nask[b] = m\n"
    "end\n"
    "for b, ids in pairs(ask) do\n"
    "  local v = redis.call('HMGET', KEYS[b], unpack(ids))\n"
    "  for i = 1, nask[b] do seen[ids[i]] = v[i] end\n"
    "end\n"
    "local function mark()\n"
    "  for b = 4, #KEYS do\n"
    "    local f = add[b]\n"
    "    if f and nadd[b] >= 32 then\n"
    "      redis.call('HSET', KEYS[b], f[1], string.rep('-', 65), unpack(f))\n"
    "    elseif f then\n"
    "      redis.call('HSET', KEYS[b], unpack(f))\n"
    "    end\n"
    "    if f then redis.call('EXPIRE', KEYS[b], ttl) end\n"
    "  end\n"
    "end\n"
    "local res, ids, m = {}, {}, 0\n"
    "a = 3\n"
    "while a <= #ARGV do\n"
    "  local slot, k = tonumber(ARGV[a]), tonumber(ARGV[a + 1])\n"
    "  local b, target = slot, KEYS[2]\n"
    "  if slot < 0 then b, target = -slot, KEYS[3] end\n"
    "  a = a + 2\n"
    "  for i = 1, k do\n"
    "    local id, digest = ARGV[a], ARGV[a + 1]\n"
    "    local n = slot > 0 and 2 or tonumber(ARGV[a + 2])\n"
    "    local v = seen[id]\n"
    "    local first = not v or (digest ~= '' and\n"
    "      not find(' ' .. v .. ' ', ' ' .. digest .. ' ', 1, true))\n"
    "    if first then\n"
    "      local r\n"
    "      if slot > 0 then\n"
    "        r = rpcall('XADD', target, '*', 'entry', id, 'tx', ARGV[a + 2], 'report', ARGV[a + 3])\n"
    "      else\n"
    "        r = rpcall('XADD', target, '*', unpack(ARGV, a + 3, a + 2 + n))\n"
    "      end\n"
    "      if type(r) == 'table' and r.err then\n"
    "        mark()\n"
    "        return r\n"
    "      end\n"
    "      local d = digest == '' and 'deleted' or digest\n"
    "      if v then v = v .. ' ' .. d else v = d end\n"
    "      seen[id] = v\n"
    "      local f, c = add[b], nadd[b]\n"
    "      if not f then f, c = {}, 0 add[b] = f end\n"
    "      f[c + 1], f[c + 2] = id, v\n"
    "      nadd[b] = c + 2\n"
    "    end\n"
    "    m = m + 1\n"
    "    res[m] = first and 1 or 0\n"
    "    ids[m] = id\n"
    "    a = a + (slot > 0 and 4 or 3 + n)\n"
    "  end\n"
    "end\n"
    "mark()\n"
    "redis.call('XACK', KEYS[1], group, unpack(ids))\n"
    "return res\n";

/* What the worker runs, with the keys it runs it on, checked at connect
 * time with redis.acl_check_cmd (Redis 7) so that a user short of a right
 * is named at start rather than at the first report or the first claim.
 * KEYS: stream, out, dead letter, a once-only bucket; ARGV: group, consumer.
 * Returns the 1-based index of the first command refused (ACL_NEEDS), 0
 * when all are allowed, -1 when the server cannot tell (before Redis 7).
 * SCRIPT LOAD and EVALSHA are proven by running this very script. */
static const char ACL_PROBE[] =
    "if not redis.acl_check_cmd then return -1 end\n"
    "local s, g, c = KEYS[1], ARGV[1], ARGV[2]\n"
    "local need = {\n"
    "  {'xgroup', 'CREATE', s, g, '0', 'MKSTREAM'},\n"
    "  {'xreadgroup', 'GROUP', g, c, 'COUNT', '1', 'STREAMS', s, '>'},\n"
    "  {'xpending', s, g, '-', '+', '1'},\n"
    "  {'xautoclaim', s, g, c, '1', '0-0', 'COUNT', '1'},\n"
    "  {'hmget', KEYS[4], 'f'},\n"
    "  {'xadd', KEYS[2], '*', 'f', 'v'}, {'xadd', KEYS[3], '*', 'f', 'v'},\n"
    "  {'hset', KEYS[4], 'f', 'v'}, {'expire', KEYS[4], '1'},\n"
    "  {'xack', s, g, '0-1'},\n"
    "}\n"
    "for i, cmd in ipairs(need) do\n"
    "  if not redis.acl_check_cmd(unpack(cmd)) then return i end\n"
    "end\n"
    "return 0\n";

/* The commands of ACL_PROBE, in order, and the key each needs (index in
 * the probe's KEYS, 0-based). */
static const struct {
	const char *cmd;
	int key;
} ACL_NEEDS[] = {
    {"XGROUP CREATE", 0}, {"XREADGROUP", 0}, {"XPENDING", 0}, {"XAUTOCLAIM", 0},
    {"HMGET", 3},         {"XADD", 1},       {"XADD", 2},     {"HSET", 3},
    {"EXPIRE", 3},        {"XACK", 0},
};

/* ---- replies built in an arena ------------------------------------------ */

/* hiredis builds a reply as one malloc'ed object per element, plus one per
 * string: an XREADGROUP reply of 64 entries is ~600 allocations, and
 * freeing them, ~12 % of the loop thread in perf. read_new has hiredis
 * build its reply in this arena instead (hiredis's reader lets a caller
 * supply the object constructors): blocks that are rewound, not freed,
 * before each read. The objects are ordinary redisReply structures, read
 * with the same code; they are never given to freeReplyObject. */
struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	max_align_t data[];
};

struct arena {
	struct arena_block *head, *cur;
};

enum { ARENA_BLOCK = 64 << 10 };

static void *arena_alloc(struct arena *a, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	struct arena_block *b = a->cur;
	while (b && b->used + n > b->cap) /* later blocks are free after a rewind */
		b = a->cur = b->next;
	if (!b) {
		size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
		b = malloc(sizeof *b + cap);
		if (!b)
			return NULL;
		*b = (struct arena_block){.next = a->head, .cap = cap};
		a->head = a->cur = b; /* in front: a rewind starts from it */
	}
	void *p = (char *)b->data + b->used;
	b->used += n;
	return p;
}

/* Before a read: every block is free again, and a block made for one
 * outsized string (a huge entry) goes back to malloc rather than stay. */
static void arena_rewind(struct arena *a)
{
	struct arena_block **link = &a->head;
	while (*link) {
		struct arena_block *b = *link;
		if (b->cap > ARENA_BLOCK) {
			*link = b->next;
			free(b);
			continue;
		}
		b->used = 0;
		link = &b->next;
	}
	a->cur = a->head;
}

static void arena_free(struct arena *a)
{
	struct arena_block *b = a->head;
	while (b) {
		struct arena_block *next = b->next;
		free(b);
		b = next;
	}
	*a = (struct arena){0};
}

/* The arena of the reply being read: the reader's privdata, which hiredis
 * hands to the task of the reply's root. */
static struct arena *task_arena(const redisReadTask *t)
{
	while (t->parent)
		t = t->parent;
	return t->privdata;
}

/* A reply object of the task's type, linked into its parent as hiredis's
 * own constructors do. */
static redisReply *arena_obj(const redisReadTask *t, size_t extra)
{
	redisReply *r = arena_alloc(task_arena(t), sizeof *r + extra);
	if (!r)
		return NULL;
	*r = (redisReply){.type = t->type};
	if (t->parent) {
		redisReply *parent = t->parent->obj;
		parent->element[t->idx] = r;
	}
	return r;
}

static void *arena_string(const redisReadTask *t, char *str, size_t len)
{
	redisReply *r = arena_obj(t, len + 1);
	if (r) {
		r->str = (char *)(r + 1);
		memcpy(r->str, str, len);
		r->str[len] = '\0';
		r->len = len;
	}
	return r;
}

static void *arena_array(const redisReadTask *t, int elements)
{
	size_t n = elements > 0 ? (size_t)elements : 0;
	redisReply *r = arena_obj(t, n * sizeof(redisReply *));
	if (r) {
		r->elements = n;
		r->element = n ? (redisReply **)(r + 1) : NULL;
		for (size_t i = 0; i < n; i++)
			r->element[i] = NULL;
	}
	return r;
}

static void *arena_integer(const redisReadTask *t, long long value)
{
	redisReply *r = arena_obj(t, 0);
	if (r)
		r->integer = value;
	return r;
}

static void *arena_nil(const redisReadTask *t)
{
	return arena_obj(t, 0);
}

static void arena_noop(void *obj)
{
	(void)obj;
}

static redisReplyObjectFunctions arena_functions = {
    arena_string, arena_array, arena_integer, arena_nil, arena_noop,
};

struct worker;

/* One stream entry from delivery to ack. */
struct job {
	struct job *next;
	struct worker *w;
	char id[ID_MAX];
	char digest[DIGEST_HEX + 1]; /* entry_digest; "" when the content is unknown */
	char *tx;             /* the entry's "tx" value, NUL-terminated, in the job's own
	                       * allocation (job_new); NULL if absent */
	size_t tx_len;
	long long deliveries; /* 0: unknown (the pending entry is gone) */
	txs_report *report;   /* set on an executor thread, then the loop's */
	const char *hash;     /* the report's "tx" (in report), "" when none */
	size_t hash_len;      /* up to its first NUL */
	char *reason;         /* non-NULL: dead letter instead of report */
	bool waited;          /* the report failed only by waiting (queued_only) */
	bool retried;         /* scanned a second time after such a report */
};

struct joblist {
	struct job *head, *tail;
	size_t n;
};

/* Entries read together are submitted together: one wake-up of the
 * plugins' threads for all of them (txs_host_submit_many). */
#define SUBMIT_CHUNK 64

struct worker {
	const struct stream_options *opt;
	volatile sig_atomic_t *stop;
	volatile sig_atomic_t *reload; /* NULL: never */
	struct stream_url url;
	struct txs_host *host;
	redisContext *rc;
	char sha[41];
	sbuf cmd;               /* append_batch's command, reused */
	struct arena replies;   /* read_new's and flush_writes's replies */
	redisReplyObjectFunctions *own_fn; /* the reader's own, while it uses the arena */
	void *own_data;
	gnutls_hash_hd_t sha256; /* entry_digest's, reset after each entry */
	char *key;              /* "<out>:done:<stream>:<group>:" (then a bucket) */
	size_t key_prefix;
	char ttl[16];
	bool connected_once;

	/* loop thread only */
	struct joblist writes;  /* scanned (or poison), waiting for WRITE_BATCH */
	struct joblist again;   /* expired queued, to be scanned once more (retry) */
	struct job *pend[SUBMIT_CHUNK]; /* taken, to be submitted together */
	size_t npend;
	size_t scanning;        /* submitted, report not collected yet */
	size_t window;          /* entries in flight at most, now (pace) */
	uint64_t pace_t0_ns;    /* start of pace's current measure */
	size_t pace_returned;   /* scans returned since then */
	bool pace_held;         /* the window held a read back since then */
	double rate;            /* scans returned per ns while held back; 0: unknown */
	char history[ID_MAX];   /* own pending entries read up to here; "" = done */
	char cursor[ID_MAX];    /* XAUTOCLAIM cursor; "0-0" = pass complete */
	uint64_t next_claim_ms;
	uint32_t backoff_ms;
	struct stream_stats stats;
	uint64_t next_info_ms;  /* next XINFO GROUPS (opt->live only) */

	/* shared with the report callbacks; under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct joblist done;
	size_t want_done;       /* the report that makes done this long wakes the loop */
};

/* ---- small helpers ---------------------------------------------------- */

static uint64_t now_ms(void)
{
	return txs_now_ns() / 1000000u;
}

static void sleep_ms(uint32_t ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* A "worker" log line at level lv: {"consumer": ..., "message": ...}. */
static void wlogv(const struct worker *w, txs_log_level lv, const char *fmt, va_list ap)
{
	char msg[2048];
	if (!txs_log_enabled(lv))
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	txs_log(lv, "worker", json_pack("{s:s, s:s}", "consumer", w->opt->consumer, "message", msg));
}

/* Something went wrong (a warning: the worker goes on). */
static void wlog(const struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wlog(const struct worker *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	wlogv(w, TXS_LOG_WARN, fmt, ap);
	va_end(ap);
}

/* Information: the worker resumed or took over entries. */
static void winfo(const struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void winfo(const struct worker *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	wlogv(w, TXS_LOG_INFO, fmt, ap);
	va_end(ap);
}

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *p = n < 0 ? NULL : malloc((size_t)n + 1);
	if (p) {
		va_start(ap, fmt);
		vsnprintf(p, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	return p;
}

/* Daemon code may abort on out-of-memory (STYLE.md); the library never does. */
static void *need(void *p)
{
	if (!p) {
		fputs("txscan worker: out of memory\n", stderr);
		abort();
	}
	return p;
}

static void list_push(struct joblist *l, struct job *j)
{
	j->next = NULL;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
	l->n++;
}

static struct job *list_pop(struct joblist *l)
{
	struct job *j = l->head;
	if (j) {
		l->head = j->next;
		if (!l->head)
			l->tail = NULL;
		l->n--;
		j->next = NULL;
	}
	return j;
}

/* Puts `front` (in order) before everything in l. */
static void list_prepend(struct joblist *l, struct joblist *front)
{
	if (!front->head)
		return;
	front->tail->next = l->head;
	if (!l->tail)
		l->tail = front->tail;
	l->head = front->head;
	l->n += front->n;
	*front = (struct joblist){0};
}

/* A job and its copy of the entry's "tx" (tx_len bytes, or none when tx is
 * NULL) in one allocation: one malloc and one free per entry fewer. */
static struct job *job_new(struct worker *w, const char *id, long long deliveries,
                           const char *tx, size_t tx_len)
{
	struct job *j = need(malloc(sizeof *j + (tx ? tx_len + 1 : 0)));
	*j = (struct job){.w = w, .deliveries = deliveries};
	snprintf(j->id, sizeof j->id, "%s", id);
	if (tx) {
		j->tx = (char *)(j + 1);
		memcpy(j->tx, tx, tx_len);
		j->tx[tx_len] = '\0';
		j->tx_len = tx_len;
	}
	return j;
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	txs_report_free(j->report);
	free(j->reason);
	free(j);
}

static void list_free(struct joblist *l)
{
	struct job *j;
	while ((j = list_pop(l)))
		job_free(j);
}

/* ---- plugin reload (SIGHUP) -------------------------------------------- */

/* {"plugin id": "version", ...}: what serves now. */
static json_t *plugin_versions(struct txs_host *host)
{
	json_t *v = need(json_object());
	txs_plugin_info info;
	for (size_t i = 0; i < txs_host_plugin_count(host); i++)
		if (txs_host_plugin_info(host, i, &info) == 0)
			json_object_set_new(v, info.id, json_string(info.version));
	return v;
}

/* Canary reload of every plugin (txs_host_reload_all): a plugin whose new
 * code or plugin.json fails keeps its old version, the others move on. The
 * outcome is one JSON line, like `txscan serve`'s "reload" event. */
static void reload_plugins(struct worker *w)
{
	uint64_t t0 = txs_now_ns();
	int rc = txs_host_reload_all(w->host);
	char *err = rc ? need(format("%s", txs_last_error())) : NULL;
	double ms = (double)((txs_now_ns() - t0 + 500) / 1000) / 1000.0; /* 3 decimals */
	json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:f, s:o}", "consumer", w->opt->consumer,
	                      "plugin", "*", "source", "sighup", "ok", rc == 0, "ms", ms,
	                      "versions", plugin_versions(w->host));
	need(o);
	if (err)
		json_object_set_new(o, "error", json_string(err));
	txs_log(rc ? TXS_LOG_ERROR : TXS_LOG_INFO, "reload", o);
	free(err);
}

/* Runs a reload that SIGHUP asked for since the last call. */
static void maybe_reload(struct worker *w)
{
	if (!w->reload || !*w->reload)
		return;
	*w->reload = 0; /* first: a SIGHUP during the reload asks for another */
	reload_plugins(w);
}

/* ---- URL and connection ---------------------------------------------- */

/* The URL as messages may show it: the password (the part that parse_auth
 * takes for one) becomes "***". */
static void redact(char *dst, size_t cap, const char *url)
{
	const char *s = strstr(url, "://");
	s = s ? s + 3 : url;
	const char *at = strchr(s, '@');
	const char *slash = strchr(s, '/');
	if (!at || (slash && slash < at)) {
		snprintf(dst, cap, "%s", url);
		return;
	}
	const char *colon = memchr(s, ':', (size_t)(at - s));
	const char *keep = colon ? colon + 1 : s;
	snprintf(dst, cap, "%.*s***%s", (int)(keep - url), url, at);
}

static int url_fail(char *err, size_t errlen, const char *url, const char *why)
{
	char shown[1024];
	redact(shown, sizeof shown, url);
	snprintf(err, errlen, "invalid Redis URL '%s': %s", shown, why);
	return -1;
}

static int copy_part(char *dst, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

/* "[[user]:password@]" at the start of s; returns where the host begins. */
static const char *parse_auth(const char *s, struct stream_url *u, int *bad)
{
	const char *at = strchr(s, '@');
	const char *slash = strchr(s, '/');
	if (!at || (slash && slash < at))
		return s;
	const char *colon = memchr(s, ':', (size_t)(at - s));
	if (!colon) {
		*bad = copy_part(u->password, sizeof u->password, s, (size_t)(at - s));
		return at + 1;
	}
	*bad = copy_part(u->user, sizeof u->user, s, (size_t)(colon - s)) ||
	       copy_part(u->password, sizeof u->password, colon + 1, (size_t)(at - colon - 1));
	return at + 1;
}

static int parse_int(const char *s, const char *end, int lo, int hi, int *out)
{
	long v = 0;
	if (s == end)
		return -1;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9' || v > hi)
			return -1;
		v = v * 10 + (*s - '0');
	}
	if (v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int parse_tcp(const char *url, const char *s, struct stream_url *u, char *err, size_t errlen)
{
	int bad = 0;
	s = parse_auth(s, u, &bad);
	if (bad)
		return url_fail(err, errlen, url, "user or password too long");
	const char *slash = strchr(s, '/');
	const char *end = slash ? slash : s + strlen(s);
	const char *colon = memchr(s, ':', (size_t)(end - s));
	const char *host_end = colon ? colon : end;
	if (host_end > s && copy_part(u->host, sizeof u->host, s, (size_t)(host_end - s)))
		return url_fail(err, errlen, url, "host name too long");
	if (colon && parse_int(colon + 1, end, 1, 65535, &u->port))
		return url_fail(err, errlen, url, "port is not a number in 1..65535");
	if (slash && slash[1] && parse_int(slash + 1, slash + strlen(slash), 0, 1 << 20, &u->db))
		return url_fail(err, errlen, url, "database is not a number");
	return 0;
}

static int parse_unix(const char *url, const char *s, struct stream_url *u, char *err, size_t errlen)
{
	const char *q = strchr(s, '?');
	size_t n = q ? (size_t)(q - s) : strlen(s);
	if (n == 0 || copy_part(u->unix_path, sizeof u->unix_path, s, n))
		return url_fail(err, errlen, url, "socket path missing or too long");
	if (q && (strncmp(q, "?db=", 4) || parse_int(q + 4, q + strlen(q), 0, 1 << 20, &u->db)))
		return url_fail(err, errlen, url, "only ?db=N may follow the socket path");
	return 0;
}

int stream_url_parse(const char *url, struct stream_url *out, char *err, size_t errlen)
{
	*out = (struct stream_url){.port = 6379};
	snprintf(out->host, sizeof out->host, "127.0.0.1");
	if (!strncmp(url, "redis://", 8))
		return parse_tcp(url, url + 8, out, err, errlen);
	if (!strncmp(url, "unix://", 7))
		return parse_unix(url, url + 7, out, err, errlen);
	if (strstr(url, "://"))
		return url_fail(err, errlen, url, "scheme must be redis:// or unix://");
	return parse_tcp(url, url, out, err, errlen); /* plain host:port */
}

static struct timeval tv_ms(uint32_t ms)
{
	return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* A command whose reply must not be an error; -1 with the reason in err. */
static int simple(redisContext *rc, char *err, size_t errlen, int argc, const char **argv)
{
	redisReply *r = redisCommandArgv(rc, argc, argv, NULL);
	int ret = 0;
	if (!r) {
		snprintf(err, errlen, "%s: %s", argv[0], rc->errstr);
		ret = -1;
	} else if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "%s: %s", argv[0], r->str);
		ret = -1;
	}
	freeReplyObject(r);
	return ret;
}

static int handshake(redisContext *rc, const struct stream_url *u, char *err, size_t errlen)
{
	char db[16];
	snprintf(db, sizeof db, "%d", u->db);
	if (u->password[0] && u->user[0] &&
	    simple(rc, err, errlen, 3, (const char *[]){"AUTH", u->user, u->password}))
		return -1;
	if (u->password[0] && !u->user[0] &&
	    simple(rc, err, errlen, 2, (const char *[]){"AUTH", u->password}))
		return -1;
	if (u->db && simple(rc, err, errlen, 2, (const char *[]){"SELECT", db}))
		return -1;
	return 0;
}

/* A connected, authenticated context, or NULL with the reason in err.
 * *io is set when the failure is the network's rather than Redis's answer. */
static redisContext *connect_url(const struct stream_url *u, uint32_t io_ms, char *err,
                                 size_t errlen, bool *io)
{
	struct timeval ctv = tv_ms(CONNECT_TIMEOUT_MS);
	redisContext *rc = u->unix_path[0] ? redisConnectUnixWithTimeout(u->unix_path, ctv)
	                                   : redisConnectWithTimeout(u->host, u->port, ctv);
	*io = true;
	if (!rc || rc->err) {
		const char *why = rc ? rc->errstr : "out of memory";
		if (u->unix_path[0])
			snprintf(err, errlen, "cannot connect to %.256s: %.128s", u->unix_path, why);
		else
			snprintf(err, errlen, "cannot connect to %.256s:%d: %.128s", u->host, u->port, why);
		goto fail;
	}
	redisSetTimeout(rc, tv_ms(io_ms));
	redisEnableKeepAlive(rc);
	/* hiredis frees its read buffer whenever it empties past 16 KiB; a batch
	 * of entries is larger, so the buffer would be allocated (and its pages
	 * faulted in) again for every reply. Keep it. */
	rc->reader->maxbuf = 0;
	if (handshake(rc, u, err, errlen)) {
		*io = rc->err != 0;
		goto fail;
	}
	return rc;
fail:
	redisFree(rc);
	return NULL;
}

/* ---- the worker's connection ------------------------------------------- */

static void disconnect(struct worker *w)
{
	redisFree(w->rc);
	w->rc = NULL;
}

static int ensure_group(struct worker *w, char *err, size_t errlen)
{
	const char *argv[] = {"XGROUP", "CREATE", w->opt->stream, w->opt->group, "0", "MKSTREAM"};
	redisReply *r = redisCommandArgv(w->rc, 6, argv, NULL);
	int ret = 0;
	if (!r) {
		snprintf(err, errlen, "XGROUP CREATE %s %s: %s", w->opt->stream, w->opt->group,
		         w->rc->errstr);
		ret = -1;
	} else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9)) {
		snprintf(err, errlen, "XGROUP CREATE %s %s: %s", w->opt->stream, w->opt->group, r->str);
		ret = -1;
	}
	freeReplyObject(r);
	return ret;
}

static int load_script(struct worker *w, char *err, size_t errlen)
{
	const char *argv[] = {"SCRIPT", "LOAD", WRITE_BATCH};
	redisReply *r = redisCommandArgv(w->rc, 3, argv, NULL);
	int ret = -1;
	if (!r)
		snprintf(err, errlen, "SCRIPT LOAD: %s", w->rc->errstr);
	else if (r->type != REDIS_REPLY_STRING || r->len != 40)
		snprintf(err, errlen, "SCRIPT LOAD: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	else {
		memcpy(w->sha, r->str, 40);
		w->sha[40] = '\0';
		ret = 0;
	}
	freeReplyObject(r);
	return ret;
}

/* Runs ACL_PROBE; -1 with the first command the Redis user may not run
 * (and the rule that would allow it) in err. */
static int check_acl(struct worker *w, char *err, size_t errlen)
{
	const struct stream_options *o = w->opt;
	char done_key[512];
	snprintf(done_key, sizeof done_key, "%s:done:%s:%s:0", o->out, o->stream, o->group);
	const char *keys[] = {o->stream, o->out, o->dead, done_key};
	redisReply *r = redisCommandArgv(w->rc, 3, (const char *[]){"SCRIPT", "LOAD", ACL_PROBE}, NULL);
	if (!r || r->type != REDIS_REPLY_STRING) {
		snprintf(err, errlen, "SCRIPT LOAD: %s (the worker needs +script|load and +evalsha: "
		         "docs/scale-out.md#a-redis-user-for-the-worker)",
		         !r ? w->rc->errstr : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		freeReplyObject(r);
		return -1;
	}
	char sha[41];
	snprintf(sha, sizeof sha, "%s", r->str);
	freeReplyObject(r);
	const char *argv[] = {"EVALSHA", sha, "4", keys[0], keys[1], keys[2], keys[3],
	                      o->group, o->consumer};
	r = redisCommandArgv(w->rc, 9, argv, NULL);
	long long i = r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
	int ret = 0;
	if (!r || r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "EVALSHA: %s (the worker needs +evalsha and the keys '%s', '%s', "
		         "'%s' and '%s:done:%s:%s:*': docs/scale-out.md#a-redis-user-for-the-worker)",
		         !r ? w->rc->errstr : r->str, o->stream, o->out, o->dead, o->out, o->stream,
		         o->group);
		ret = -1;
	} else if (i > 0 && i <= (long long)(sizeof ACL_NEEDS / sizeof ACL_NEEDS[0])) {
		const char *cmd = ACL_NEEDS[i - 1].cmd, *key = keys[ACL_NEEDS[i - 1].key];
		char rule[32];
		snprintf(rule, sizeof rule, "%s", cmd);
		for (char *p = rule; *p; p++)
			*p = *p == ' ' ? '|' : (char)(*p | 0x20);
		snprintf(err, errlen, "the Redis user may not run %s on key '%s' (ACL rules +%s and a "
		         "key pattern matching it); every command the worker needs is in "
		         "docs/scale-out.md#a-redis-user-for-the-worker", cmd, key, rule);
		ret = -1;
	}
	freeReplyObject(r);
	return ret;
}

/* Waits out the backoff, in slices so a second signal is noticed. */
static void backoff(struct worker *w)
{
	uint64_t until = now_ms() + w->backoff_ms;
	while (*w->stop < 2 && now_ms() < until) {
		maybe_reload(w);
		sleep_ms(50);
	}
	w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : BACKOFF_FIRST_MS;
	if (w->backoff_ms > BACKOFF_MAX_MS)
		w->backoff_ms = BACKOFF_MAX_MS;
}

/* 0 connected; -1 try again later; -2 give up (Redis refused us at start:
 * bad password, wrong key type, ... - retrying would not help). */
static int reconnect(struct worker *w)
{
	char err[1024] = "";
	bool io = true;
	if (w->backoff_ms)
		backoff(w);
	else
		w->backoff_ms = BACKOFF_FIRST_MS;
	if (*w->stop >= 2)
		return -1;
	w->rc = connect_url(&w->url, w->opt->block_ms + IO_SLACK_MS, err, sizeof err, &io);
	if (w->rc && (check_acl(w, err, sizeof err) || ensure_group(w, err, sizeof err) ||
	              load_script(w, err, sizeof err))) {
		io = w->rc->err != 0;
		disconnect(w);
	}
	if (!w->rc) {
		wlog(w, "%s%s", err, io || w->connected_once ? "; retrying" : "");
		return io || w->connected_once ? -1 : -2;
	}
	if (w->connected_once)
		w->stats.reconnects++;
	w->connected_once = true;
	w->next_claim_ms = 0; /* entries delivered while we were away may be stuck */
	return 0;
}

/* ---- reports coming back from the executors ---------------------------- */

/* On an executor thread (or inside txs_host_submit for invalid input). */
static void on_report(txs_report *report, void *userdata)
{
	struct job *j = userdata;
	struct worker *w = j->w;
	j->report = report;
	pthread_mutex_lock(&w->lock);
	list_push(&w->done, j);
	bool wake = w->done.n == w->want_done;
	pthread_mutex_unlock(&w->lock);
	if (wake)
		pthread_cond_signal(&w->cond);
}

/* Reports are written by the batch (WRITE_BATCH): the loop sleeps until
 * DONE_WAKE of them are back (or all in flight, if fewer), or at most
 * DONE_LINGER_NS once any is, rather than waking for each. */
#define DONE_WAKE 32
#define DONE_LINGER_NS 2000000ull

/* Sleeps on cond until done holds want reports or deadline_ns. mu held. */
static void wait_reports(struct worker *w, size_t want, uint64_t deadline_ns)
{
	struct timespec ts = txs_timespec(deadline_ns);
	w->want_done = want;
	while (w->done.n < want)
		if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT)
			break;
}

/* Waits until reports are back (see DONE_WAKE) or ms passed. */
static void wait_done(struct worker *w, uint32_t ms)
{
	uint64_t now = txs_now_ns(), end = now + (uint64_t)ms * 1000000u;
	size_t want = w->scanning < DONE_WAKE ? w->scanning : DONE_WAKE;
	pthread_mutex_lock(&w->lock);
	if (want > 1 && w->done.n < want)
		wait_reports(w, want, now + DONE_LINGER_NS < end ? now + DONE_LINGER_NS : end);
	if (!w->done.n)
		wait_reports(w, 1, end);
	w->want_done = 1;
	pthread_mutex_unlock(&w->lock);
}

/* True when every plugin that did not answer "ok" is a host deadline
 * expiry of a scan still queued ("no answer within the scan deadline ...
 * (queued behind other scans)"), and at least one did not: the scan failed
 * only by waiting (a stall of the process, a burst), not by a plugin. */
static bool queued_only(json_t *root)
{
	json_t *plugins = json_object_get(root, "plugins"), *p;
	size_t i, failed = 0;
	json_array_foreach(plugins, i, p) {
		const char *status = json_string_value(json_object_get(p, "status"));
		const char *error = json_string_value(json_object_get(p, "error"));
		if (status && !strcmp(status, "ok"))
			continue;
		if (!status || strcmp(status, "timeout") || !error ||
		    !strstr(error, "(queued behind other scans)"))
			return false;
		failed++;
	}
	return failed > 0;
}

/* Takes the report's "tx" (for the report entry) and, for rejected input,
 * its error (for the dead letter) through the report's accessors: a parse
 * of its JSON refused valid reports (a NUL in a hash, metadata holding
 * 1e20) and left the entry without its key. */
static void finish_job(struct job *j)
{
	size_t len = 0;
	const char *tx = txs_report_tx(j->report, &len);
	j->hash = tx ? tx : "";
	j->hash_len = strlen(j->hash);
	if (txs_report_input_error(j->report)) {
		const char *e = txs_report_error(j->report);
		j->reason = need(format("entry %s of stream %s is not a valid transaction: %s", j->id,
		                        j->w->opt->stream, e ? e : "rejected by the host"));
	}
	if (!j->reason && !txs_report_complete(j->report)) {
		/* the plugins' statuses and errors, for queued_only (a report that
		 * jansson cannot read is simply not retried); a complete report
		 * has none to read and is not parsed (jansson took ~4.5 % of a
		 * worker's CPU, perf, 7 plugins) */
		size_t n = 0;
		const char *js = txs_report_json(j->report, &n);
		json_t *root = json_loadb(js, n, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
		j->waited = root && queued_only(root);
		json_decref(root);
	}
}

static void submit(struct worker *w, struct job *j);
static void submit_pending(struct worker *w);

/* Queues j to be scanned once more, with a fresh deadline, instead of
 * writing a report that failed only by waiting; the second report is
 * final whatever it says. It goes out within the window (resubmit), which
 * the expiry has just halved: sent at once, a burst of them queued behind
 * each other expired again. */
static void retry(struct worker *w, struct job *j)
{
	txs_report_free(j->report);
	j->report = NULL;
	j->hash = NULL;
	j->retried = true;
	w->stats.retried++;
	list_push(&w->again, j);
}

/* Entries in flight: scanning, waiting to be scanned again, or written. */
static size_t busy(const struct worker *w)
{
	return w->scanning + w->again.n + w->writes.n;
}

/* Submits the entries to scan again, as far as the window has room. */
static void resubmit(struct worker *w)
{
	size_t held = w->scanning + w->writes.n;
	size_t room = held < w->window ? w->window - held : 0;
	struct job *j;
	while (room-- && (j = list_pop(&w->again)))
		submit(w, j);
	submit_pending(w);
}

/* The in-flight window. --max-in-flight bounds the entries a worker holds,
 * but plugins scan at their own pace: entries read faster than the
 * slowest plugin scans them wait in its queue, and the host's scan
 * deadline counts that wait. A plugin taking 2 ms a scan (well inside its
 * 50 ms timeout) behind 256 entries in flight saw 95 % of its scans time
 * out, queued, or be refused by a full queue. So the window follows what
 * the plugins return: at most as many entries as they scan in a quarter of
 * the scan deadline (claim_idle_ms / 10 when there is none), at least
 * WINDOW_MIN, at most --max-in-flight.
 *
 * The rate is measured while the window holds reads back (otherwise it
 * measures the input, and the window stays as it is), over a window's
 * worth of reports or PACE_PERIOD_NS, and smoothed with a weight that
 * grows with the measure's length: the loop takes reports in bursts, and
 * a short measure that caught one reads high. No measure more than
 * doubles the window. Reports that expired queued are no measure of the
 * plugins' pace (the deadline thread returns them in bursts, their scans
 * still queued): they halve the window and the rate at once, as a loss
 * does in TCP. The window starts at WINDOW_START: a plugin that takes most
 * of its timeout_ms may see the last of the first scans expire, and scan
 * them again within the window it has halved (see retry). */
#define WINDOW_MIN 2
#define WINDOW_START 8
#define PACE_MIN_NS (1000000ull)
#define PACE_PERIOD_NS (25 * 1000000ull)
#define PACE_TAU_NS 25e6 /* a measure of this length weighs half */

static double window_ns(const struct worker *w)
{
	uint32_t d = txs_host_scan_deadline_ms(w->host);
	uint64_t claim = w->opt->claim_idle_ms / 10;
	uint64_t ms = d == UINT32_MAX || d / 4 > claim ? claim : d / 4;
	return (double)(ms ? ms : 1) * 1e6;
}

static void pace_restart(struct worker *w, uint64_t now)
{
	w->pace_t0_ns = now;
	w->pace_returned = 0;
	w->pace_held = false;
}

static void set_window(struct worker *w, double want)
{
	size_t max = w->opt->max_in_flight;
	size_t win = want >= (double)max ? max : want <= WINDOW_MIN ? WINDOW_MIN : (size_t)want;
	if (win > 2 * w->window)
		win = 2 * w->window;
	w->window = win > max ? max : win; /* max < WINDOW_MIN: --max-in-flight 1 */
}

/* returned: reports the plugins answered; expired: reports that failed
 * only by waiting in a queue (queued_only). */
static void pace(struct worker *w, size_t returned, size_t expired)
{
	uint64_t now = txs_now_ns();
	if (expired) {
		set_window(w, (double)(w->window / 2));
		w->rate = (double)w->window / window_ns(w);
		pace_restart(w, now);
		return;
	}
	w->pace_returned += returned;
	uint64_t dt = now - w->pace_t0_ns;
	if (dt < PACE_MIN_NS || (dt < PACE_PERIOD_NS && w->pace_returned < w->window))
		return;
	if (w->pace_held) {
		double rate = (double)w->pace_returned / (double)dt;
		double a = w->rate > 0 ? (double)dt / ((double)dt + PACE_TAU_NS) : 1;
		w->rate += a * (rate - w->rate);
		set_window(w, w->rate * window_ns(w));
	}
	pace_restart(w, now);
}

/* Moves every returned report to the write queue, or back to the plugins
 * once when it failed only by waiting (retry). */
static void collect(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	struct joblist got = w->done;
	w->done = (struct joblist){0};
	pthread_mutex_unlock(&w->lock);
	struct job *j;
	size_t again = 0, returned = got.n, expired = 0;
	while ((j = list_pop(&got))) {
		w->scanning--;
		finish_job(j);
		expired += j->waited;
		if (j->waited && !j->retried) {
			retry(w, j);
			again++;
		} else
			list_push(&w->writes, j);
	}
	pace(w, returned - expired, expired);
	submit_pending(w);
	if (again)
		wlog(w, "scanning %zu entries again: no plugin answered them before the scan "
		     "deadline (they waited in the queue)", again);
}

/* ---- taking entries ----------------------------------------------------- */

static void dead_letter(struct worker *w, struct job *j, char *reason)
{
	j->reason = need(reason);
	list_push(&w->writes, j);
}

/* Submits the entries taken since the last call. */
static void submit_pending(struct worker *w)
{
	struct txs_submission subs[SUBMIT_CHUNK];
	size_t n = w->npend, done = 0;
	w->npend = 0;
	if (n && !w->scanning) /* idle until now: pace measures from here */
		pace_restart(w, txs_now_ns());
	for (size_t i = 0; i < n; i++)
		subs[i] = (struct txs_submission){.tx = w->pend[i]->tx, .len = w->pend[i]->tx_len,
		                                  .userdata = w->pend[i]};
	while (done < n) {
		size_t k = txs_host_submit_many(w->host, subs + done, n - done, on_report);
		w->scanning += k;
		done += k;
		if (done == n)
			break;
		/* Not acked: it stays pending, is claimed again later and, if this
		 * persists, ends in the dead letters after --max-deliveries. */
		struct job *j = w->pend[done++];
		wlog(w, "cannot scan entry %s of stream %s: %s; left pending", j->id, w->opt->stream,
		     txs_last_error());
		job_free(j);
	}
}

/* Takes j to be scanned; submitted by the chunk (submit_pending), and
 * always before the loop waits. */
static void submit(struct worker *w, struct job *j)
{
	w->pend[w->npend++] = j;
	if (w->npend == SUBMIT_CHUNK)
		submit_pending(w);
}

/* The value of the first field called name (an entry may carry a field
 * twice: XADD does not refuse it). Names are compared with their lengths:
 * a field "tx\0zz" is not "tx". */
static const redisReply *field(const redisReply *fields, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *k = fields->element[i];
		if (k->type == REDIS_REPLY_STRING && k->len == n && !memcmp(k->str, name, n))
			return fields->element[i + 1];
	}
	return NULL;
}

/* n in decimal at p; returns the digits' count (at most 20). */
static size_t put_decimal(char *p, unsigned long long n)
{
	char tmp[24];
	size_t k = 0;
	do
		tmp[k++] = (char)('0' + n % 10);
	while ((n /= 10) > 0);
	for (size_t i = 0; i < k; i++)
		p[i] = tmp[k - 1 - i];
	return k;
}

/* What tells one entry from another under the same ID: SHA-256 over its
 * field/value pairs in order, each written as "<length>:<bytes>," (so no two
 * lists of fields encode alike), as lowercase hex cut to DIGEST_HEX digits.
 * A redelivery of an entry has the same fields, byte for byte. GnuTLS
 * rather than GLib: its SHA-256 uses the CPU's SHA instructions (~0.3 us
 * an entry against ~1.2 us for GLib's portable C, which was 15 % of the
 * worker's main thread in perf); the digest is the same. */
static void entry_digest(struct worker *w, const redisReply *fields, char out[DIGEST_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	char len[24];
	for (size_t i = 0; i < fields->elements; i++) {
		const redisReply *f = fields->element[i];
		const char *s = f->type == REDIS_REPLY_STRING ? f->str : "";
		size_t n = f->type == REDIS_REPLY_STRING ? f->len : 0;
		size_t k = put_decimal(len, n);
		len[k++] = ':';
		gnutls_hash(w->sha256, len, k);
		gnutls_hash(w->sha256, s, n);
		gnutls_hash(w->sha256, ",", 1);
	}
	gnutls_hash_output(w->sha256, md); /* and resets it for the next entry */
	for (size_t i = 0; i < DIGEST_HEX / 2; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[DIGEST_HEX] = '\0';
}

/* e = [id, [field, value, ...]] (fields nil when the entry was deleted). */
static void take_entry(struct worker *w, const redisReply *e, long long deliveries)
{
	const struct stream_options *o = w->opt;
	if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= ID_MAX) {
		wlog(w, "stream %s: skipping a malformed entry in a reply", o->stream);
		return;
	}
	const redisReply *fields = e->element[1];
	const redisReply *tx = fields->type == REDIS_REPLY_ARRAY ? field(fields, "tx") : NULL;
	if (tx && tx->type != REDIS_REPLY_STRING)
		tx = NULL;
	struct job *j = job_new(w, e->element[0]->str, deliveries, tx ? tx->str : NULL,
	                        tx ? tx->len : 0);
	if (fields->type == REDIS_REPLY_ARRAY)
		entry_digest(w, fields, j->digest);
	if (fields->type != REDIS_REPLY_ARRAY)
		dead_letter(w, j, format("entry %s was deleted from stream %s before it was scanned",
		                         j->id, o->stream));
	else if (!j->tx)
		dead_letter(w, j, format("entry %s of stream %s has no field 'tx'", j->id, o->stream));
	else if (deliveries > (long long)o->max_deliveries)
		dead_letter(w, j, format("entry %s of stream %s was delivered %lld times (max %u)",
		                         j->id, o->stream, deliveries, o->max_deliveries));
	else if (j->tx_len == 0)
		dead_letter(w, j, format("entry %s of stream %s: field 'tx' is empty", j->id, o->stream));
	else
		submit(w, j);
}

/* The entries of an XREADGROUP reply: nil, or [[stream, [entry, ...]]]. */
static const redisReply *read_entries(const redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
		return NULL;
	const redisReply *s = r->element[0];
	if (s->type != REDIS_REPLY_ARRAY || s->elements < 2 || s->element[1]->type != REDIS_REPLY_ARRAY)
		return NULL;
	return s->element[1];
}

/* Takes the entries of an XREADGROUP reply (fresh deliveries); how many. */
static size_t take_read(struct worker *w, const redisReply *r)
{
	const redisReply *entries = read_entries(r);
	size_t n = entries ? entries->elements : 0;
	for (size_t i = 0; i < n; i++)
		take_entry(w, entries->element[i], 1);
	w->stats.read += n;
	return n;
}

/* Errors are fatal to the connection: the caller reconnects with backoff. */
static redisReply *command(struct worker *w, int argc, const char **argv)
{
	redisReply *r = redisCommandArgv(w->rc, argc, argv, NULL);
	if (!r) {
		wlog(w, "%s on stream %s: %s", argv[0], w->opt->stream, w->rc->errstr);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		wlog(w, "%s on stream %s: %s", argv[0], w->opt->stream, r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* Delivery counts of recovered entries (one pipelined XPENDING each), then
 * takes them. An entry no longer pending was acked meanwhile: skipped. */
static int take_recovered(struct worker *w, const redisReply *entries)
{
	const struct stream_options *o = w->opt;
	size_t n = entries->elements;
	for (size_t i = 0; i < n; i++) {
		const redisReply *e = entries->element[i];
		const char *id = "0-0"; /* malformed: XPENDING finds nothing, skipped */
		if (e->type == REDIS_REPLY_ARRAY && e->elements && e->element[0]->type == REDIS_REPLY_STRING)
			id = e->element[0]->str;
		const char *argv[] = {"XPENDING", o->stream, o->group, id, id, "1"};
		if (redisAppendCommandArgv(w->rc, 6, argv, NULL) != REDIS_OK)
			return -1;
	}
	int ret = 0;
	for (size_t i = 0; i < n; i++) {
		redisReply *p = NULL;
		if (ret == 0 && redisGetReply(w->rc, (void **)&p) != REDIS_OK) {
			wlog(w, "XPENDING on stream %s: %s", o->stream, w->rc->errstr);
			ret = -1;
		}
		if (ret == 0 && p->type == REDIS_REPLY_ARRAY && p->elements == 1 &&
		    p->element[0]->type == REDIS_REPLY_ARRAY && p->element[0]->elements == 4 &&
		    p->element[0]->element[3]->type == REDIS_REPLY_INTEGER)
			take_entry(w, entries->element[i], p->element[0]->element[3]->integer);
		freeReplyObject(p);
	}
	return ret;
}

/* From here on, hiredis builds the replies it reads in w->replies (rewound
 * first: earlier replies built there are gone). reader_own() gives the
 * reader back its own constructors; it must not be called after a failed
 * read: the reader's half-built reply must not reach freeReplyObject, and
 * the connection is dropped anyway. */
static void reader_arena(struct worker *w)
{
	redisReader *rd = w->rc->reader;
	if (rd->fn != &arena_functions) {
		w->own_fn = rd->fn;
		w->own_data = rd->privdata;
	}
	arena_rewind(&w->replies);
	rd->fn = &arena_functions;
	rd->privdata = &w->replies;
}

static void reader_own(struct worker *w)
{
	w->rc->reader->fn = w->own_fn;
	w->rc->reader->privdata = w->own_data;
}

/* argv's reply, built in w->replies (valid until the next call); NULL
 * (logged) on an error reply or a broken connection. */
static redisReply *command_in_arena(struct worker *w, int argc, const char **argv)
{
	reader_arena(w);
	redisReply *r = redisCommandArgv(w->rc, argc, argv, NULL);
	if (!r) {
		wlog(w, "%s on stream %s: %s", argv[0], w->opt->stream, w->rc->errstr);
		return NULL;
	}
	reader_own(w);
	if (r->type == REDIS_REPLY_ERROR) {
		wlog(w, "%s on stream %s: %s", argv[0], w->opt->stream, r->str);
		return NULL;
	}
	return r;
}

/* New entries; blocks up to block_ms when asked to. Returns how many, or -1. */
static int read_new(struct worker *w, size_t count, uint32_t block_ms)
{
	const struct stream_options *o = w->opt;
	char cnt[24], blk[24];
	snprintf(cnt, sizeof cnt, "%zu", count);
	snprintf(blk, sizeof blk, "%u", block_ms);
	const char *argv[] = {"XREADGROUP", "GROUP", o->group, o->consumer, "COUNT", cnt,
	                      "BLOCK", blk, "STREAMS", o->stream, ">"};
	int argc = 11;
	if (!block_ms) { /* drop BLOCK: a plain poll */
		argv[6] = "STREAMS", argv[7] = o->stream, argv[8] = ">";
		argc = 9;
	}
	redisReply *r = command_in_arena(w, argc, argv);
	if (!r)
		return -1;
	return (int)take_read(w, r);
}

/* Our own pending entries from an earlier run under the same name: they
 * were delivered to us and will never come again through ">". */
static int read_history(struct worker *w, size_t count)
{
	const struct stream_options *o = w->opt;
	char cnt[24];
	snprintf(cnt, sizeof cnt, "%zu", count);
	const char *argv[] = {"XREADGROUP", "GROUP", o->group, o->consumer, "COUNT", cnt,
	                      "STREAMS", o->stream, w->history};
	redisReply *r = command(w, 9, argv);
	if (!r)
		return -1;
	const redisReply *entries = read_entries(r);
	size_t n = entries ? entries->elements : 0;
	if (n == 0)
		w->history[0] = '\0';
	else {
		const redisReply *last = entries->element[n - 1];
		if (last->type == REDIS_REPLY_ARRAY && last->elements && last->element[0]->len < ID_MAX)
			snprintf(w->history, sizeof w->history, "%s", last->element[0]->str);
		winfo(w, "resuming %zu entries left pending by an earlier run of %s", n, o->consumer);
	}
	int ret = n ? take_recovered(w, entries) : 0;
	w->stats.read += n;
	freeReplyObject(r);
	return ret < 0 ? -1 : (int)n;
}

static uint32_t claim_period_ms(const struct stream_options *o)
{
	uint32_t p = o->claim_idle_ms / 2;
	return p < 100 ? 100 : p > 10000 ? 10000 : p;
}

/* Redis 7 drops pending entries that were deleted from the stream from the
 * pending list while it claims, and names them only in this reply: they get
 * their dead letter now, or nothing would ever show they were lost. The
 * deliveries are unknown by now (the pending entry is gone). Returns how
 * many. */
static size_t take_deleted(struct worker *w, const redisReply *ids)
{
	const struct stream_options *o = w->opt;
	size_t n = 0;
	for (size_t i = 0; i < ids->elements; i++) {
		const redisReply *id = ids->element[i];
		if (id->type != REDIS_REPLY_STRING || id->len >= ID_MAX)
			continue;
		struct job *j = job_new(w, id->str, 0, NULL, 0);
		dead_letter(w, j, format("entry %s was deleted from stream %s before it was scanned",
		                         j->id, o->stream));
		n++;
	}
	if (n)
		wlog(w, "XAUTOCLAIM: %zu pending entries of stream %s were deleted from the stream "
		     "before they were scanned; writing their dead letters", n, o->stream);
	return n;
}

/* One XAUTOCLAIM step: entries idle past --claim-idle-ms, whoever holds
 * them (a dead worker's, or ours whose reply was lost with a connection).
 * Reply: [next cursor, [entry, ...]] and, from Redis 7 on, [deleted id, ...]. */
static int claim(struct worker *w, size_t count)
{
	const struct stream_options *o = w->opt;
	char idle[24], cnt[24];
	snprintf(idle, sizeof idle, "%u", o->claim_idle_ms);
	snprintf(cnt, sizeof cnt, "%zu", count);
	const char *argv[] = {"XAUTOCLAIM", o->stream, o->group, o->consumer, idle, w->cursor,
	                      "COUNT", cnt};
	redisReply *r = command(w, 8, argv);
	if (!r)
		return -1;
	int ret = -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[0]->len >= ID_MAX || r->element[1]->type != REDIS_REPLY_ARRAY) {
		wlog(w, "XAUTOCLAIM on stream %s: unexpected reply", o->stream);
		goto out;
	}
	snprintf(w->cursor, sizeof w->cursor, "%s", r->element[0]->str);
	if (!strcmp(w->cursor, "0-0"))
		w->next_claim_ms = now_ms() + claim_period_ms(o);
	size_t n = r->element[1]->elements;
	if (n)
		winfo(w, "claimed %zu entries of stream %s idle for over %u ms", n, o->stream,
		     o->claim_idle_ms);
	w->stats.claimed += n;
	size_t gone = 0;
	if (r->elements >= 3 && r->element[2]->type == REDIS_REPLY_ARRAY)
		gone = take_deleted(w, r->element[2]);
	ret = n && take_recovered(w, r->element[1]) ? -1 : (int)(n + gone);
out:
	freeReplyObject(r);
	return ret;
}

/* ---- writing reports ---------------------------------------------------- */

/* WRITE_BATCH's call is written in Redis's protocol (RESP) straight into
 * one buffer that lives as long as the worker, and handed to hiredis as a
 * formatted command: no argument vectors, no key strings allocated per
 * entry, and one copy of each report instead of hiredis's two (its
 * formatting, then its output buffer). */
static void resp_len(sbuf *b, char type, size_t n)
{
	char head[32];
	size_t k = 1;
	head[0] = type;
	k += put_decimal(head + 1, n);
	head[k++] = '\r';
	head[k++] = '\n';
	sb_put(b, head, k);
}

/* One bulk-string argument made of a and b (b may be empty). */
static void resp_arg2(sbuf *b, const char *s1, size_t n1, const char *s2, size_t n2)
{
	resp_len(b, '$', n1 + n2);
	sb_put(b, s1, n1);
	sb_put(b, s2, n2);
	sb_put(b, "\r\n", 2);
}

static void resp_arg(sbuf *b, const char *s, size_t n)
{
	resp_arg2(b, s, n, "", 0);
}

static void resp_str(sbuf *b, const char *s)
{
	resp_arg(b, s, strlen(s));
}

static void resp_num(sbuf *b, unsigned long long n)
{
	char d[24];
	resp_arg(b, d, put_decimal(d, n));
}

static void resp_pair(sbuf *b, const char *name, const char *value, size_t len)
{
	resp_str(b, name);
	resp_arg(b, value, len);
}

/* The field/value arguments (field count times two) of j's dead letter
 * that fields() appends. */
static size_t field_args(const struct job *j)
{
	return 2 /* entry */ + 4 /* reason, consumer */ + (j->deliveries > 0 ? 2 : 0) +
	       (j->tx ? 2 : 0) + (j->report ? 2 : 0);
}

/* j's arguments after its id and digest: for a report its tx and report
 * values (the script adds the field names and the entry id); for a dead
 * letter their count and its fields (reason, delivery count, who gave up,
 * and the input and report if any) as field_args(j) name/value arguments.
 * A job without a reason always has its report (collect: every scan ends
 * in one). */
static void fields(struct worker *w, const struct job *j, sbuf *b)
{
	const struct stream_options *o = w->opt;
	size_t len = 0;
	const char *json = j->report ? txs_report_json(j->report, &len) : NULL;
	if (!j->reason) {
		resp_arg(b, j->hash ? j->hash : "", j->hash ? j->hash_len : 0);
		resp_arg(b, json ? json : "", len);
		return;
	}
	resp_num(b, field_args(j));
	resp_pair(b, "entry", j->id, strlen(j->id));
	resp_pair(b, "reason", j->reason, strlen(j->reason));
	if (j->deliveries > 0) {
		char d[24];
		resp_pair(b, "deliveries", d, put_decimal(d, (unsigned long long)j->deliveries));
	}
	resp_pair(b, "consumer", o->consumer, strlen(o->consumer));
	if (j->tx) /* the input travels with its dead letter */
		resp_pair(b, "tx", j->tx, j->tx_len);
	if (json)
		resp_pair(b, "report", json, len);
}

/* The once-only bucket of an entry ID "<ms>-<seq>": its ms part divided by
 * DONE_BUCKET_MS (Redis checks IDs, so the ms part is a number). */
static unsigned long long done_bucket(const char *id)
{
	return strtoull(id, NULL, 10) / DONE_BUCKET_MS;
}

/* One argument that is a signed decimal number. */
static void resp_int(sbuf *b, long long n)
{
	char d[24];
	size_t k = 0;
	if (n < 0)
		d[k++] = '-';
	k += put_decimal(d + k, n < 0 ? (unsigned long long)-n : (unsigned long long)n);
	resp_arg(b, d, k);
}

/* EVALSHA WRITE_BATCH for jobs[0..k-1] (k <= SCRIPT_BATCH), appended to
 * w->cmd: its keys (the stream, the report and dead-letter streams, then
 * the batch's distinct buckets: mostly one, as entries come in ID order),
 * then its arguments (group, TTL, then the entries in runs of one slot:
 * the slot, the run's length, and each entry's id, digest and fields). */
static void append_batch(struct worker *w, struct job **jobs, size_t k)
{
	const struct stream_options *o = w->opt;
	sbuf *b = &w->cmd;
	unsigned long long bucket[SCRIPT_BATCH];
	long long slot[SCRIPT_BATCH];
	size_t nb = 0, argc = 3 + 3 + 2;
	for (size_t i = 0; i < k; i++) {
		unsigned long long x = done_bucket(jobs[i]->id);
		size_t s = nb; /* bucket[s - 1] is x; from the last: it is mostly that one */
		while (s > 0 && bucket[s - 1] != x)
			s--;
		if (s == 0) {
			bucket[nb] = x;
			s = ++nb;
		}
		slot[i] = (long long)(3 + s) * (jobs[i]->reason ? -1 : 1); /* KEYS[4] is bucket[0] */
		if (i == 0 || slot[i] != slot[i - 1])
			argc += 2; /* a new run: its slot and length */
		argc += 2 + (jobs[i]->reason ? 1 + field_args(jobs[i]) : 2);
	}
	argc += nb;
	resp_len(b, '*', argc);
	resp_arg(b, "EVALSHA", 7);
	resp_arg(b, w->sha, 40);
	resp_num(b, 3 + nb);
	resp_str(b, o->stream);
	resp_str(b, o->out);
	resp_str(b, o->dead);
	for (size_t i = 0; i < nb; i++) {
		char d[24];
		resp_arg2(b, w->key, w->key_prefix, d, put_decimal(d, bucket[i]));
	}
	resp_str(b, o->group);
	resp_str(b, w->ttl);
	for (size_t i = 0; i < k;) {
		size_t end = i + 1;
		while (end < k && slot[end] == slot[i])
			end++;
		resp_int(b, slot[i]);
		resp_num(b, end - i);
		for (; i < end; i++) {
			struct job *j = jobs[i];
			resp_arg(b, j->id, strlen(j->id));
			resp_arg(b, j->digest, strlen(j->digest));
			fields(w, j, b);
		}
	}
}

/* Sends w->cmd. Written to the socket here rather than through hiredis's
 * output buffer, which hiredis would grow by copies and free after every
 * write (fresh pages each time: ~7 % of the loop thread in perf). Its
 * buffer is empty at this point (every earlier command was answered);
 * if not, the command goes behind it the ordinary way. -1: the connection
 * failed (logged). */
static int send_cmd(struct worker *w)
{
	need(w->cmd.oom ? NULL : w->cmd.p);
	const char *p = w->cmd.p;
	size_t left = w->cmd.len;
	if (sdslen(w->rc->obuf) != 0) {
		if (redisAppendFormattedCommand(w->rc, p, left) == REDIS_OK)
			return 0;
		wlog(w, "writing to stream %s: %s", w->opt->out, w->rc->errstr);
		return -1;
	}
	while (left > 0) {
		ssize_t n = send(w->rc->fd, p, left, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) { /* EAGAIN: the send timeout (redisSetTimeout) expired */
			wlog(w, "writing to stream %s: %s", w->opt->out,
			     n < 0 ? strerror(errno) : "connection closed");
			return -1;
		}
		p += n;
		left -= (size_t)n;
	}
	return 0;
}

static void written(struct worker *w, struct job *j, long long first)
{
	if (first == 0)
		w->stats.duplicates++;
	else if (j->reason) {
		w->stats.dead++;
		wlog(w, "dead letter %s -> %s: %s", j->id, w->opt->dead, j->reason);
	} else
		w->stats.written++;
	job_free(j);
}

/* True when r is WRITE_BATCH's answer for k entries. */
static bool batch_reply(const redisReply *r, size_t k)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != k)
		return false;
	for (size_t i = 0; i < k; i++)
		if (r->element[i]->type != REDIS_REPLY_INTEGER)
			return false;
	return true;
}

/* How many new entries to ask for behind the scripts of a flush of
 * `flushing` entries, in the same round trip; 0: none. Only what step()
 * would read next without blocking (reports are still to come, no history
 * or claim pass due), and only when there is room for a full read while
 * the entries being written still count as in flight: Redis acks them
 * before it reads, but a script that fails acks nothing, and the bound
 * holds then too. */
static size_t read_behind(struct worker *w, size_t flushing)
{
	const struct stream_options *o = w->opt;
	if (*w->stop || !w->scanning || w->again.n || w->history[0] || strcmp(w->cursor, "0-0") ||
	    now_ms() >= w->next_claim_ms)
		return 0;
	size_t held = busy(w) + flushing;
	size_t room = held < w->window ? w->window - held : 0;
	size_t want = o->batch < w->window / 2 ? o->batch : w->window / 2;
	if (room < (want ? want : 1))
		return 0;
	return room < o->batch ? room : o->batch;
}

/* XREADGROUP of up to count new entries, without BLOCK, appended to w->cmd. */
static void append_read(struct worker *w, size_t count)
{
	const struct stream_options *o = w->opt;
	resp_len(&w->cmd, '*', 9);
	resp_arg(&w->cmd, "XREADGROUP", 10);
	resp_arg(&w->cmd, "GROUP", 5);
	resp_str(&w->cmd, o->group);
	resp_str(&w->cmd, o->consumer);
	resp_arg(&w->cmd, "COUNT", 5);
	resp_num(&w->cmd, count);
	resp_arg(&w->cmd, "STREAMS", 7);
	resp_str(&w->cmd, o->stream);
	resp_arg(&w->cmd, ">", 1);
}

/* The reply of the XREADGROUP that flush_writes sent behind its scripts,
 * read even when a script failed: Redis ran it all the same, and entries
 * delivered but not taken would wait for a claim pass (--claim-idle-ms).
 * -1 when it cannot be read or is an error. */
static int read_behind_reply(struct worker *w)
{
	redisReply *r = NULL;
	if (redisGetReply(w->rc, (void **)&r) != REDIS_OK) {
		wlog(w, "XREADGROUP on stream %s: %s", w->opt->stream, w->rc->errstr);
		return -1;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		wlog(w, "XREADGROUP on stream %s: %s", w->opt->stream, r->str);
		return -1;
	}
	if (take_read(w, r))
		w->backoff_ms = 0;
	submit_pending(w);
	return 0;
}

/* Writes up to PIPELINE_MAX entries in one round trip, SCRIPT_BATCH per
 * script, with the next read behind them when there is room for it
 * (read_behind): one write and one wake-up for both, on either side. The
 * jobs of a script whose reply is not a success stay queued (in order,
 * with every job after them) for the next connection. */
static int flush_writes(struct worker *w)
{
	struct job *batch[PIPELINE_MAX];
	size_t n = 0;
	while (n < PIPELINE_MAX && w->writes.head)
		batch[n++] = list_pop(&w->writes);
	w->cmd.len = 0;
	for (size_t i = 0; i < n; i += SCRIPT_BATCH)
		append_batch(w, batch + i, n - i < SCRIPT_BATCH ? n - i : SCRIPT_BATCH);
	size_t more = n ? read_behind(w, n) : 0;
	if (more)
		append_read(w, more);
	if (n) /* the replies, an array of integers per script: no malloc each */
		reader_arena(w);
	int ret = n ? send_cmd(w) : 0;
	bool broken = ret != 0; /* no more replies can be read */
	struct joblist keep = {0};
	for (size_t i = 0; i < n; i += SCRIPT_BATCH) {
		size_t k = n - i < SCRIPT_BATCH ? n - i : SCRIPT_BATCH;
		const char *to = k > 1 ? "their targets" : batch[i]->reason ? w->opt->dead : w->opt->out;
		redisReply *r = NULL;
		if (!broken && redisGetReply(w->rc, (void **)&r) != REDIS_OK) {
			wlog(w, "writing entries %s..%s to %s: %s", batch[i]->id, batch[i + k - 1]->id, to,
			     w->rc->errstr);
			ret = -1;
			broken = true;
		} else if (ret == 0 && !batch_reply(r, k)) {
			wlog(w, "writing entries %s..%s to %s: %s", batch[i]->id, batch[i + k - 1]->id, to,
			     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
			ret = -1; /* NOSCRIPT after a Redis restart, OOM, ...: reconnect */
		}
		for (size_t x = 0; x < k; x++)
			if (ret == 0)
				written(w, batch[i + x], r->element[x]->integer);
			else
				list_push(&keep, batch[i + x]);
	}
	list_prepend(&w->writes, &keep);
	if (more && !broken && read_behind_reply(w))
		ret = -1;
	if (n && ret == 0)
		reader_own(w);
	return ret;
}

/* ---- the loop ----------------------------------------------------------- */

/* Reads, recovers or waits, within the in-flight bound. -1: reconnect. */
static int step(struct worker *w)
{
	const struct stream_options *o = w->opt;
	size_t held = busy(w);
	size_t room = held < w->window ? w->window - held : 0;
	size_t want = o->batch < w->window / 2 ? o->batch : w->window / 2;
	if (want == 0)
		want = 1;
	if ((room < want || w->again.n) && w->scanning) { /* full enough: let reports come back */
		w->pace_held = true;
		wait_done(w, o->block_ms);
		return 0;
	}
	if (!room) /* retries or writes go first (the loop's next round) */
		return 0;
	if (room > o->batch)
		room = o->batch;
	int n;
	if (w->history[0])
		n = read_history(w, room);
	else if (strcmp(w->cursor, "0-0") || now_ms() >= w->next_claim_ms)
		n = claim(w, room);
	else
		n = read_new(w, room, w->scanning ? 0 : o->block_ms);
	submit_pending(w);
	if (n > 0)
		w->backoff_ms = 0;
	if (n == 0 && w->scanning)
		wait_done(w, IDLE_POLL_MS < o->block_ms ? IDLE_POLL_MS : o->block_ms);
	return n < 0 ? -1 : 0;
}

/* ---- stats for other threads (opt->live) --------------------------------- */

struct stream_live {
	pthread_mutex_t mu;
	struct stream_stats s; /* under mu */
};

struct stream_live *stream_live_new(void)
{
	struct stream_live *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	pthread_mutex_init(&l->mu, NULL);
	l->s.pending = l->s.lag = -1;
	return l;
}

void stream_live_free(struct stream_live *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->mu);
	free(l);
}

void stream_live_get(struct stream_live *l, struct stream_stats *out)
{
	pthread_mutex_lock(&l->mu);
	*out = l->s;
	pthread_mutex_unlock(&l->mu);
}

/* "pending" and "lag" of our group in an XINFO GROUPS reply (a list of
 * flat name/value maps; lag is nil when Redis cannot tell, and absent
 * before Redis 7). */
static void group_figures(struct worker *w, const redisReply *r)
{
	for (size_t g = 0; r->type == REDIS_REPLY_ARRAY && g < r->elements; g++) {
		const redisReply *m = r->element[g];
		long long pending = -1, lag = -1;
		bool ours = false;
		for (size_t k = 0; m->type == REDIS_REPLY_ARRAY && k + 1 < m->elements; k += 2) {
			const redisReply *key = m->element[k], *v = m->element[k + 1];
			if (key->type != REDIS_REPLY_STRING && key->type != REDIS_REPLY_STATUS)
				continue;
			if (!strcmp(key->str, "name"))
				ours = v->type == REDIS_REPLY_STRING && !strcmp(v->str, w->opt->group);
			else if (!strcmp(key->str, "pending") && v->type == REDIS_REPLY_INTEGER)
				pending = v->integer;
			else if (!strcmp(key->str, "lag") && v->type == REDIS_REPLY_INTEGER)
				lag = v->integer;
		}
		if (ours) {
			w->stats.pending = pending;
			w->stats.lag = lag;
		}
	}
}

/* One XINFO GROUPS every STREAM_GROUP_INFO_MS. -1: the connection broke. */
static int group_info(struct worker *w)
{
	if (!w->opt->live || !w->rc || now_ms() < w->next_info_ms)
		return 0;
	w->next_info_ms = now_ms() + STREAM_GROUP_INFO_MS;
	const char *argv[] = {"XINFO", "GROUPS", w->opt->stream};
	redisReply *r = redisCommandArgv(w->rc, 3, argv, NULL);
	if (r)
		group_figures(w, r);
	freeReplyObject(r);
	return r ? 0 : -1;
}

static void publish_stats(struct worker *w)
{
	w->stats.acked = w->stats.written + w->stats.duplicates + w->stats.dead;
	w->stats.in_flight = busy(w);
	w->stats.window = w->window;
	w->stats.connected = w->rc != NULL;
	if (!w->opt->live)
		return;
	pthread_mutex_lock(&w->opt->live->mu);
	w->opt->live->s = w->stats;
	pthread_mutex_unlock(&w->opt->live->mu);
}

/* 0 after a clean stop, -1 when it gave up. */
static int loop(struct worker *w)
{
	while (*w->stop < 2) {
		publish_stats(w);
		if (group_info(w))
			disconnect(w);
		maybe_reload(w);
		collect(w);
		resubmit(w);
		if (*w->stop && !w->scanning && !w->again.n && !w->writes.head)
			return 0;
		if (!w->rc) {
			int rc = reconnect(w);
			if (rc == -2)
				return -1;
			continue;
		}
		if (w->writes.head) {
			if (flush_writes(w))
				disconnect(w);
			else
				w->backoff_ms = 0;
			continue;
		}
		if (*w->stop) {
			wait_done(w, 100);
			continue;
		}
		if (step(w))
			disconnect(w);
	}
	return -1;
}

/* After giving up: every submitted job still belongs to a callback that
 * will come (the host's deadline bounds it); wait for them, then free all.
 * Their entries were not acked and stay pending. */
static void drain(struct worker *w)
{
	while (w->scanning) {
		wait_done(w, 100);
		collect(w);
	}
	if (w->writes.n + w->again.n)
		winfo(w, "%zu entries left pending (not acked) for another worker",
		      w->writes.n + w->again.n);
	list_free(&w->writes);
	list_free(&w->again); /* not acked: they stay pending */
}

static int worker_init(struct worker *w, struct txs_host *host, const struct stream_options *o,
                       volatile sig_atomic_t *stop, volatile sig_atomic_t *reload)
{
	char err[1024];
	*w = (struct worker){.opt = o, .stop = stop, .reload = reload, .host = host};
	if (stream_url_parse(o->redis_url, &w->url, err, sizeof err)) {
		txs_logf(TXS_LOG_ERROR, "error", "worker: %s", err);
		return -1;
	}
	w->key_prefix = strlen(o->out) + strlen(o->stream) + strlen(o->group) + strlen(":done:::");
	w->key = need(malloc(w->key_prefix + ID_MAX));
	snprintf(w->key, w->key_prefix + 1, "%s:done:%s:%s:", o->out, o->stream, o->group);
	snprintf(w->ttl, sizeof w->ttl, "%u", o->done_ttl_s);
	snprintf(w->history, sizeof w->history, "0");
	snprintf(w->cursor, sizeof w->cursor, "0-0");
	w->stats.pending = w->stats.lag = -1;
	if (gnutls_hash_init(&w->sha256, GNUTLS_DIG_SHA256) < 0) {
		txs_logf(TXS_LOG_ERROR, "error", "worker: no SHA-256 (gnutls_hash_init)");
		free(w->key);
		return -1;
	}
	txs_cond_init(&w->cond); /* wait_done gives it monotonic deadlines */
	pthread_mutex_init(&w->lock, NULL);
	w->want_done = 1;
	w->window = WINDOW_START < o->max_in_flight ? WINDOW_START : o->max_in_flight;
	w->pace_t0_ns = txs_now_ns();
	return 0;
}

static void worker_fini(struct worker *w)
{
	disconnect(w);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	gnutls_hash_deinit(w->sha256, NULL);
	free(w->cmd.p);
	arena_free(&w->replies); /* after disconnect: the reader may point into it */
	free(w->key);
}

void stream_options_init(struct stream_options *o)
{
	*o = (struct stream_options){
	    .redis_url = STREAM_REDIS_URL_DEFAULT,
	    .stream = "txs",
	    .group = "scanners",
	    .out = "reports",
	    .batch = 128,
	    .block_ms = 1000,
	    .claim_idle_ms = 30000,
	    .max_deliveries = 5,
	    .max_in_flight = 1024,
	    .done_ttl_s = 86400,
	};
}

int stream_worker_run(struct txs_host *host, const struct stream_options *opts,
                      volatile sig_atomic_t *stop, volatile sig_atomic_t *reload,
                      struct stream_stats *stats)
{
	struct worker w;
	if (worker_init(&w, host, opts, stop, reload))
		return -1;
	int ret = loop(&w);
	if (ret)
		drain(&w);
	publish_stats(&w);
	if (stats)
		*stats = w.stats;
	worker_fini(&w);
	return ret;
}

/* ---- publish ------------------------------------------------------------ */

/* publish's input, read with read(2) rather than stdio so that poll(2) can
 * tell whether more is ready: stdio would hide what it has buffered. */
struct input {
	int fd;
	char *buf;
	size_t cap, start, end; /* unread bytes: buf[start, end) */
	bool eof;
};

/* One XADD appended whose reply is not read yet: its input line number and
 * a copy of its text (in the publisher's arena), kept until Redis confirms
 * it, so that it can be checked for, and sent again, after a lost
 * connection. */
struct sent {
	uint64_t line;
	size_t off, len;
};

/* XADDs in a pipeline; their replies are read a chunk at a time. */
struct publisher {
	const struct stream_url *url;
	redisContext *rc;
	long long client_id;   /* this connection's CLIENT ID; 0: unknown */
	const char *stream;
	struct sent sent[PUBLISH_CHUNK];
	size_t pending;        /* XADDs appended whose replies are not read yet */
	size_t unread;         /* sent[unread, pending): no reply (connection lost) */
	char *text;            /* arena of the pending lines' text */
	size_t text_len, text_cap;
	uint64_t since_ms;     /* when the first of them was appended */
	char last_id[ID_MAX];  /* the last entry Redis confirmed (or the stream's
	                        * last entry at start, "0-0" when none) */
	uint64_t *count;       /* entries added, as Redis confirmed them */
	uint64_t failed_line;  /* first line Redis refused; 0: none */
	uint64_t added_after;  /* lines confirmed after failed_line */
	uint32_t backoff_ms;
	bool warned_id;        /* CLIENT ID refused, said once */
};

/* The next line without its line end (the last one may lack its \n);
 * false when no whole line is buffered. */
static bool next_line(struct input *in, const char **line, size_t *len)
{
	char *s = in->buf + in->start;
	size_t avail = in->end - in->start;
	char *nl = memchr(s, '\n', avail);
	if (!nl && !(in->eof && avail))
		return false;
	size_t n = nl ? (size_t)(nl - s) : avail;
	in->start += n + (nl != NULL);
	while (n > 0 && s[n - 1] == '\r')
		n--;
	*line = s;
	*len = n;
	return true;
}

/* Reads more, blocking until there is some: 0, or -1 on a read error. The
 * buffer grows to hold the longest line. */
static int fill(struct input *in)
{
	size_t kept = in->end - in->start;
	memmove(in->buf, in->buf + in->start, kept);
	in->start = 0;
	in->end = kept;
	if (in->end == in->cap) {
		in->cap *= 2;
		in->buf = need(realloc(in->buf, in->cap));
	}
	ssize_t n;
	do
		n = read(in->fd, in->buf + in->end, in->cap - in->end);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	in->eof = n == 0;
	in->end += (size_t)n;
	return 0;
}

/* True when a read would not block (data, end of input, or an error). */
static bool input_ready(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) > 0;
}

/* A "publish" warning log line (fmt may end in a newline: it is dropped). */
static void publish_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void publish_log(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	size_t n = strlen(msg);
	if (n && msg[n - 1] == '\n')
		msg[n - 1] = '\0';
	txs_logf(TXS_LOG_WARN, "publish", "%s", msg);
}

/* Prints "lines A-B" (or "line A") for sent[from, to), which are in input
 * order; lines skipped in between were empty. */
static void print_lines(const struct publisher *p, size_t from, size_t to, const char *what)
{
	uint64_t a = p->sent[from].line, b = p->sent[to - 1].line;
	if (a == b)
		publish_log("line %llu %s\n", (unsigned long long)a, what);
	else
		publish_log("lines %llu-%llu (%zu lines) %s\n", (unsigned long long)a,
		        (unsigned long long)b, to - from, what);
}

static void confirmed(struct publisher *p, const char *id, size_t len)
{
	(*p->count)++;
	if (len < ID_MAX)
		snprintf(p->last_id, sizeof p->last_id, "%.*s", (int)len, id);
	if (p->failed_line)
		p->added_after++;
}

/* Reads the replies of every pipelined XADD (sending them first). 0; -1
 * when Redis refused one (failed_line; the replies after it are still
 * read: a line confirmed after it counts in added_after); -2 when the
 * connection broke: sent[unread, pending) got no reply. */
static int read_replies(struct publisher *p)
{
	int ret = 0;
	for (p->unread = 0; p->unread < p->pending; p->unread++) {
		size_t i = p->unread;
		redisReply *r = NULL;
		if (redisGetReply(p->rc, (void **)&r) != REDIS_OK) {
			publish_log("XADD %s: %s\n", p->stream, p->rc->errstr);
			return -2;
		}
		if (r->type == REDIS_REPLY_STRING)
			confirmed(p, r->str, r->len);
		else if (!p->failed_line) {
			publish_log("line %llu: XADD %s: %s\n",
			        (unsigned long long)p->sent[i].line, p->stream,
			        r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
			p->failed_line = p->sent[i].line;
			ret = -1;
		}
		freeReplyObject(r);
	}
	return ret;
}

static int append_xadd(struct publisher *p, const char *line, size_t n)
{
	const char *argv[] = {"XADD", p->stream, "*", "tx", line};
	size_t len[] = {4, strlen(p->stream), 1, 2, n};
	return redisAppendCommandArgv(p->rc, 5, argv, len) == REDIS_OK ? 0 : -1;
}

/* A command's reply; NULL (after printing why) on an error reply or a
 * lost connection. */
static redisReply *ask(redisContext *rc, int argc, const char **argv)
{
	redisReply *r = redisCommandArgv(rc, argc, argv, NULL);
	if (r && r->type == REDIS_REPLY_ERROR) {
		publish_log("%s: %s\n", argv[0], r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* Connects, with back-off after a failure: 0, or -1 when it gives up
 * (PUBLISH_TRIES failures in a row, or Redis refused us). Learns the
 * connection's CLIENT ID (0 when not allowed). */
static int publish_connect(struct publisher *p)
{
	char err[1024];
	bool io = true;
	for (int tries = 0; tries < PUBLISH_TRIES; tries++) {
		if (p->backoff_ms) {
			sleep_ms(p->backoff_ms);
			p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
		}
		p->rc = connect_url(p->url, 30000, err, sizeof err, &io);
		if (p->rc)
			break;
		bool again = io && tries + 1 < PUBLISH_TRIES;
		publish_log("%s%s\n", err, again ? "; retrying" : "");
		if (!io)
			return -1;
		if (!p->backoff_ms)
			p->backoff_ms = BACKOFF_FIRST_MS;
	}
	if (!p->rc)
		return -1;
	redisReply *r = redisCommandArgv(p->rc, 2, (const char *[]){"CLIENT", "ID"}, NULL);
	p->client_id = r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
	if (!p->client_id && !p->warned_id)
		publish_log("CLIENT ID: %s: after a lost connection the lines in "
		        "flight cannot be checked\n", r && r->type == REDIS_REPLY_ERROR ? r->str
		        : p->rc->errstr[0] ? p->rc->errstr : "unexpected reply");
	p->warned_id |= !p->client_id;
	freeReplyObject(r);
	return 0;
}

/* The stream's last entry ID before anything is added ("0-0" when none). */
static int publish_start(struct publisher *p)
{
	snprintf(p->last_id, sizeof p->last_id, "0-0");
	redisReply *r = ask(p->rc, 6, (const char *[]){"XREVRANGE", p->stream, "+", "-", "COUNT", "1"});
	if (!r)
		return -1;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->elements >= 1 &&
	    r->element[0]->element[0]->len < ID_MAX)
		snprintf(p->last_id, sizeof p->last_id, "%s", r->element[0]->element[0]->str);
	freeReplyObject(r);
	return 0;
}

/* After a lost connection, on the new one: ends the old connection if Redis
 * still has it (CLIENT KILL ID: what it had not run yet never runs), then
 * reads the entries added since the last confirmed one and matches the
 * unconfirmed lines against them in order (entries of other producers are
 * skipped). Matched lines are confirmed; since Redis runs one connection's
 * commands in order, the ones after the last match were never added.
 * Returns how many matched, or -1 when that cannot be known. */
static long resolve(struct publisher *p, long long old_id)
{
	char id[24], after[ID_MAX + 1], cnt[24];
	size_t n = p->pending - p->unread;
	if (!old_id)
		return -1;
	snprintf(id, sizeof id, "%lld", old_id);
	redisReply *r = redisCommandArgv(p->rc, 4, (const char *[]){"CLIENT", "KILL", "ID", id}, NULL);
	bool gone = r && r->type == REDIS_REPLY_INTEGER; /* how many it killed: 0 or 1 */
	freeReplyObject(r);
	if (!gone)
		return -1;
	snprintf(after, sizeof after, "(%s", p->last_id);
	snprintf(cnt, sizeof cnt, "%zu", n + PUBLISH_CHUNK);
	r = ask(p->rc, 6, (const char *[]){"XRANGE", p->stream, after, "+", "COUNT", cnt});
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		return -1;
	}
	size_t m = 0;
	for (size_t k = 0; k < r->elements && m < n; k++) {
		const redisReply *e = r->element[k];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[1]->type != REDIS_REPLY_ARRAY)
			continue;
		const redisReply *tx = field(e->element[1], "tx");
		const struct sent *s = &p->sent[p->unread + m];
		if (tx && tx->type == REDIS_REPLY_STRING && tx->len == s->len &&
		    !memcmp(tx->str, p->text + s->off, s->len)) {
			confirmed(p, e->element[0]->str, e->element[0]->len);
			m++;
		}
	}
	long ret = m < n && r->elements == n + PUBLISH_CHUNK ? -1 : (long)m; /* window too small */
	freeReplyObject(r);
	return ret;
}

/* sent[unread, pending) goes out again on the new connection, at the head
 * of the table. */
static int resend(struct publisher *p, size_t from)
{
	size_t k = 0;
	for (size_t i = from; i < p->pending; i++, k++)
		p->sent[k] = p->sent[i];
	p->pending = k;
	for (size_t i = 0; i < k; i++)
		if (append_xadd(p, p->text + p->sent[i].off, p->sent[i].len))
			return -1;
	return 0;
}

/* Gets every pending XADD confirmed, reconnecting as often as needed.
 * 0; -1 when Redis refused a line or when it gave up (what is uncertain
 * printed). The table is empty afterwards either way. */
static int flush_xadds(struct publisher *p)
{
	int ret;
	while ((ret = read_replies(p)) == -2) {
		long long old_id = p->client_id;
		size_t uncertain = p->unread;
		redisFree(p->rc);
		p->rc = NULL;
		long m = -1;
		if (publish_connect(p) == 0) {
			m = resolve(p, old_id);
			if (m >= 0) {
				if (m)
					print_lines(p, uncertain, uncertain + (size_t)m,
					            "had been added before the connection was lost");
				if (uncertain + (size_t)m < p->pending)
					print_lines(p, uncertain + (size_t)m, p->pending, "sent again");
				if (resend(p, uncertain + (size_t)m) == 0)
					continue;
				uncertain = 0; /* the table holds the lines not sent yet */
			}
		}
		print_lines(p, uncertain, p->pending,
		            "may or may not be in the stream (sent, no reply; check them)");
		publish_log("giving up: resume with --from-line %llu once the "
		        "uncertain lines are checked\n",
		        (unsigned long long)p->sent[p->pending - 1].line + 1);
		p->pending = 0;
		p->text_len = 0;
		return -1;
	}
	if (ret == 0 && p->pending)
		p->backoff_ms = 0;
	p->pending = 0;
	p->text_len = 0;
	if (p->failed_line) { /* maybe refused before a reconnect: still the end */
		ret = -1;
		publish_log("lines from %llu on were not added: resume with "
		        "--from-line %llu\n", (unsigned long long)p->failed_line,
		        (unsigned long long)p->failed_line);
		if (p->added_after)
			publish_log("but %llu lines after line %llu were added: "
			        "remove them from the input first (or accept them twice)\n",
			        (unsigned long long)p->added_after, (unsigned long long)p->failed_line);
	}
	return ret;
}

static int add_line(struct publisher *p, uint64_t lineno, const char *line, size_t n)
{
	if (n == 0)
		return 0;
	if (p->text_len + n > p->text_cap) {
		p->text_cap = (p->text_len + n) * 2;
		p->text = need(realloc(p->text, p->text_cap));
	}
	memcpy(p->text + p->text_len, line, n);
	p->sent[p->pending] = (struct sent){.line = lineno, .off = p->text_len, .len = n};
	p->text_len += n;
	if (append_xadd(p, line, n)) {
		publish_log("XADD %s: %s\n", p->stream, p->rc->errstr);
		return -1;
	}
	if (p->pending++ == 0)
		p->since_ms = now_ms();
	bool full = p->pending == PUBLISH_CHUNK || p->text_len >= PUBLISH_CHUNK_BYTES;
	return full ? flush_xadds(p) : 0;
}

/* Before blocking for more input: whether what is pending goes out now. */
static bool send_now(const struct publisher *p, const struct input *in)
{
	if (!p->pending)
		return false;
	return !input_ready(in->fd) || now_ms() - p->since_ms >= PUBLISH_WAIT_MS;
}

/* Batches while the input keeps coming; sends what it has as soon as the
 * input has nothing more ready (a slow pipe must not hold lines back), and
 * at the latest PUBLISH_WAIT_MS after the oldest line it holds. Lines are
 * numbered from 1, empty ones included; those before from_line are
 * skipped. */
static int publish_lines(struct publisher *p, struct input *in, const char *name,
                         uint64_t from_line)
{
	const char *line;
	size_t n;
	uint64_t lineno = 0;
	int ret = 0;
	while (ret == 0) {
		if (next_line(in, &line, &n)) {
			lineno++;
			ret = lineno < from_line ? 0 : add_line(p, lineno, line, n);
			continue;
		}
		if (in->eof)
			break;
		if (send_now(p, in))
			ret = flush_xadds(p);
		if (ret == 0 && fill(in)) {
			publish_log("reading %s: %s\n", name, strerror(errno));
			ret = -1;
		}
	}
	int sent = p->pending ? flush_xadds(p) : 0; /* also after a read error */
	return ret ? ret : sent;
}

int stream_publish(const char *redis_url, const char *stream, int fd, const char *name,
                   uint64_t from_line, uint64_t *count)
{
	struct stream_url u;
	char err[1024];
	*count = 0;
	if (stream_url_parse(redis_url, &u, err, sizeof err)) {
		publish_log("%s\n", err);
		return -1;
	}
	static struct publisher p; /* big; one per process */
	p = (struct publisher){.url = &u, .stream = stream, .count = count};
	if (publish_connect(&p) || publish_start(&p)) {
		redisFree(p.rc);
		return -1;
	}
	struct input in = {.fd = fd, .cap = PUBLISH_READ};
	in.buf = need(malloc(in.cap));
	int ret = publish_lines(&p, &in, name, from_line);
	free(in.buf);
	free(p.text);
	redisFree(p.rc);
	return ret;
}
