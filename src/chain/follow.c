/*
 * follow.c - the chain follower (see follow.h).
 *
 * State: a window of the last blocks passed (checkpoint.h), the tip being
 * the last block whose reports are all written and flushed; `next` is
 * tip + 1. Each round reads the head, and while blocks up to head -
 * confirmations (and --to-block) are missing, fetches up to `batch` of them
 * in one request (the next batch is fetched ahead, on a thread of its own,
 * while this one scans: prefetch.h) and takes them in order. A block is
 * taken only if its parentHash is the tip's hash; otherwise the chain under
 * us changed: the window is walked back, asking the node for its block at
 * each height, to the newest block both agree on; every transaction reported from the
 * blocks above it gets a "removed" line (newest block first), the window
 * and the checkpoint drop to the common block, and following resumes after
 * it. When caught up, the tip itself is checked each round, so a reorg
 * that does not lengthen the chain is seen too.
 *
 * Exactly once: the checkpoint names a block only after its reports (and
 * every earlier block's) are flushed. At the head it is written after each
 * block; while catching up, once a second (an fsync'ed write per block
 * cost 10x the throughput), and always when it stops: a stop request is
 * seen between blocks. A crash (kill -9) can repeat the reports written
 * since the last checkpoint on restart, about a second of them; nothing is
 * ever skipped.
 *
 * Failures: a node that cannot be reached is waited for (back-off from
 * poll_ms doubling to 10 s, one notice when it goes, one when it is back);
 * a node that answers nonsense 3 times in a row is a fatal error.
 */
#define _POSIX_C_SOURCE 200809L
#include "chain/follow.h"
#include "chain/checkpoint.h"
#include "chain/prefetch.h"
#include "util/clock.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { MAX_BATCH = 64, MAX_BACKOFF_MS = 10000, MAX_BAD_ANSWERS = 3 };
#define SAVE_EVERY_NS 1000000000ull /* while catching up, a checkpoint at least this often */

struct follower {
	struct eth_chain *c;
	struct scanner *s;
	const struct follow_opts *o;
	volatile sig_atomic_t *stop;
	struct window w;
	uint64_t next;
	uint32_t bad_answers, backoff_ms;
	bool down;
	bool unsaved;      /* the tip is newer than the checkpoint */
	struct prefetch *pf; /* NULL: fetch in line */
	uint64_t saved_ns; /* when the checkpoint was last written */
	char *err;
	size_t errlen;
};

/* What a round, or a node call, came to; 0 = went on. */
enum { STEP_DONE = 1, STEP_AGAIN = 2, STEP_FATAL = -1 };

static void notice(struct follower *f, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void notice(struct follower *f, const char *level, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	int n = snprintf(msg, sizeof msg, "chain %" PRIu64 ": ", f->c->chain_id);
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
	va_end(ap);
	if (f->o->notice)
		f->o->notice(level, msg, f->o->notice_ud);
}

static int fatal(struct follower *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fatal(struct follower *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->err, f->errlen, fmt, ap);
	va_end(ap);
	return STEP_FATAL;
}

static void nap(struct follower *f, uint32_t ms)
{
	for (uint32_t slept = 0; slept < ms && !*f->stop; slept += 20) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/* After a node call: 0 = it worked; STEP_AGAIN = wait and retry the round;
 * STEP_FATAL = give up. */
static int settle(struct follower *f, int rc)
{
	if (rc == 0) {
		if (f->down)
			notice(f, "info", "%s answers again", rpc_display(f->c->rpc));
		f->down = false;
		f->bad_answers = 0;
		f->backoff_ms = f->o->poll_ms;
		return 0;
	}
	if (*f->stop)
		return STEP_AGAIN;
	if (rc != RPC_ENET && ++f->bad_answers >= MAX_BAD_ANSWERS)
		return fatal(f, "%s (%u times in a row)", f->c->err, f->bad_answers);
	if (!f->down || rc != RPC_ENET)
		notice(f, "warn", "%s; retrying every %u ms at most", f->c->err,
		       f->backoff_ms > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : f->backoff_ms);
	f->down = rc == RPC_ENET;
	nap(f, f->backoff_ms);
	f->backoff_ms = f->backoff_ms * 2 > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : f->backoff_ms * 2;
	return STEP_AGAIN;
}

static int save(struct follower *f)
{
	char why[512];
	f->unsaved = false;
	f->saved_ns = txs_now_ns();
	if (!f->o->checkpoint)
		return 0;
	if (checkpoint_save(&f->w, f->o->checkpoint, why, sizeof why))
		return fatal(f, "checkpoint: %s", why);
	return 0;
}

static int write_failed(struct follower *f)
{
	return fatal(f, "cannot write reports to the output: %s", strerror(errno));
}

/* The newest window index whose block is still canonical, or -1 (with
 * *again set when the node could not be asked). */
static long common_ancestor(struct follower *f, int *again)
{
	*again = 0;
	for (size_t i = f->w.n; i-- > 0;) {
		struct eth_header h;
		bool found;
		int rc = settle(f, eth_header_get(f->c, false, f->w.b[i].h.number, &h, &found));
		if (rc) {
			*again = rc;
			return -1;
		}
		if (found && !strcmp(h.hash, f->w.b[i].h.hash))
			return (long)i;
	}
	return -1;
}

/* The chain changed under the tip: withdraw what left it (see the top). */
static int unwind(struct follower *f)
{
	int again;
	struct wblock *tip = window_tip(&f->w);
	uint64_t was = tip->h.number;
	long keep = common_ancestor(f, &again);
	if (again)
		return again;
	if (keep < 0)
		return fatal(f, "reorg deeper than %u blocks (--max-reorg): block %" PRIu64 " (%s) and the %zu "
		             "blocks before it are no longer canonical; the checkpoint still names block %" PRIu64,
		             f->o->max_reorg, was, tip->h.hash, f->w.n - 1, was);
	size_t removed = 0;
	while (f->w.n > (size_t)keep + 1) {
		struct wblock *b = window_tip(&f->w);
		for (size_t i = 0; b->reported && i < b->ntx; i++)
			if (scanner_removed(f->s, b->txs[i], &b->h))
				return write_failed(f);
		removed++;
		window_pop(&f->w);
	}
	if (scanner_flush(f->s))
		return write_failed(f);
	tip = window_tip(&f->w);
	f->next = tip->h.number + 1;
	notice(f, "warn", "reorg: %zu block(s) after block %" PRIu64 " left the canonical chain "
	       "(was at %" PRIu64 "); their transactions are reported removed", removed,
	       tip->h.number, was);
	return save(f);
}

/* Writes the reports of block b (submitted earlier), then makes it the tip. */
static int take(struct follower *f, const struct eth_block *b)
{
	if (scanner_write_next(f->s))
		return write_failed(f);
	if (window_push(&f->w, &b->h, true, b->txs))
		return fatal(f, "out of memory");
	f->next = b->h.number + 1;
	f->unsaved = true;
	return 0;
}

/* The checkpoint after a run of blocks: keeps an earlier error's message. */
static int save_after(struct follower *f, int rc)
{
	char first[1024];
	if (!f->unsaved)
		return rc;
	snprintf(first, sizeof first, "%s", f->err);
	int saved = save(f);
	if (rc) {
		snprintf(f->err, f->errlen, "%s", first);
		return rc;
	}
	return saved;
}

/* How many of the fetched blocks extend the tip, each the parent of the next. */
static size_t linked(struct follower *f, const struct eth_block *b, size_t got)
{
	const struct wblock *tip = window_tip(&f->w);
	const char *parent = tip ? tip->h.hash : NULL;
	size_t n = 0;
	while (n < got && (!parent || !strcmp(b[n].h.parent, parent)))
		parent = b[n++].h.hash;
	return n;
}

/* Scans the blocks that extend the tip, pipelined: the next blocks are
 * submitted while the reports of the first are written (never more than
 * the scanner's window in flight); each block is finished and flushed in
 * order. The checkpoint follows at the end, unless more blocks are behind
 * (then once a second). A stop drops the blocks not yet finished. */
static int scan_linked(struct follower *f, const struct eth_block *b, size_t n, bool behind)
{
	size_t sub = 0, done = 0;
	int rc = 0;
	while (!rc && done < n && !*f->stop) {
		while (sub < n && (sub == done || scanner_in_flight(f->s) +
		                                  json_array_size(b[sub].txs) <= SCANNER_WINDOW))
			if (scanner_submit(f->s, b[sub].txs, &b[sub].h))
				break;
			else
				sub++;
		rc = take(f, &b[done++]);
		if (!rc && txs_now_ns() - f->saved_ns >= SAVE_EVERY_NS)
			rc = save(f);
	}
	if (rc || !behind || *f->stop)
		rc = save_after(f, rc);
	if (done < sub)
		scanner_discard(f->s);
	if (!rc && done && done < n && *f->stop)
		notice(f, "info", "stopping after block %" PRIu64, b[done - 1].h.number);
	return rc;
}

/* Caught up: is the tip still canonical? */
static int check_tip(struct follower *f, const struct eth_header *head)
{
	struct wblock *tip = window_tip(&f->w);
	if (!tip)
		return 0;
	if (head->number == tip->h.number)
		return strcmp(head->hash, tip->h.hash) ? unwind(f) : 0;
	if (head->number < tip->h.number)
		return unwind(f);
	struct eth_header h;
	bool found;
	int rc = settle(f, eth_header_get(f->c, false, tip->h.number, &h, &found));
	if (rc)
		return rc;
	return !found || strcmp(h.hash, tip->h.hash) ? unwind(f) : 0;
}

static size_t batch_size(const struct follower *f, uint64_t from, uint64_t target)
{
	return target - from + 1 < f->o->batch ? (size_t)(target - from + 1) : f->o->batch;
}

/* Blocks [next, next + n): from the prefetch thread when it has them. */
static int fetch(struct follower *f, size_t n, struct eth_block *blocks, size_t *got)
{
	int rc = f->pf ? prefetch_take(f->pf, f->next, n, blocks, got, f->c->err, sizeof f->c->err) : 1;
	return rc == 1 ? eth_blocks_get(f->c, f->next, n, blocks, got) : rc;
}

static int fetch_and_take(struct follower *f, uint64_t target)
{
	struct eth_block blocks[MAX_BATCH];
	size_t got = 0;
	int rc = settle(f, fetch(f, batch_size(f, f->next, target), blocks, &got));
	size_t ok = rc ? 0 : linked(f, blocks, got);
	uint64_t after = ok ? blocks[ok - 1].h.number + 1 : 0;
	if (f->pf && ok && ok == got && after <= target) /* the next batch, while these scan */
		prefetch_start(f->pf, after, batch_size(f, after, target));
	if (ok)
		rc = scan_linked(f, blocks, ok, ok == got && blocks[ok - 1].h.number < target);
	if (!rc && ok < got && !*f->stop)
		rc = unwind(f); /* block `ok` does not extend the chain we have */
	for (size_t i = 0; i < got; i++)
		eth_block_clear(&blocks[i]);
	return rc;
}

static int step(struct follower *f)
{
	struct eth_header head;
	bool found;
	int rc = settle(f, eth_header_get(f->c, true, 0, &head, &found));
	if (rc || !found)
		return rc;
	uint32_t k = f->o->confirmations;
	uint64_t target = head.number >= k ? head.number - k : 0;
	if (f->o->has_to && target > f->o->to)
		target = f->o->to;
	if (head.number < k || target < f->next) {
		/* nothing new: is the tip still canonical? Past --to-block too, so
		 * that a restart after a reorg still withdraws and re-reports. */
		if ((rc = save_after(f, 0)) || (rc = check_tip(f, &head)) || f->next <= target)
			return rc;
		if (f->o->has_to && f->next > f->o->to)
			return STEP_DONE;
		nap(f, f->o->poll_ms);
		return 0;
	}
	return fetch_and_take(f, target);
}

/* Where to begin without a checkpoint: the block before the start is
 * remembered (not reported) so that the first block's parent is checked. */
static int start(struct follower *f)
{
	struct eth_header h;
	bool found = false;
	uint64_t first = f->o->from;
	int rc;
	while (f->o->from_latest && !*f->stop) {
		if ((rc = settle(f, eth_header_get(f->c, true, 0, &h, &found))) == STEP_FATAL)
			return rc;
		if (!rc && found) {
			first = h.number >= f->o->confirmations ? h.number - f->o->confirmations : 0;
			break;
		}
		if (!rc)
			nap(f, f->o->poll_ms);
	}
	f->next = first;
	while (first > 0 && !*f->stop) {
		if ((rc = settle(f, eth_header_get(f->c, false, first - 1, &h, &found))) == STEP_FATAL)
			return rc;
		if (!rc) {
			if (found && window_push(&f->w, &h, false, NULL))
				return fatal(f, "out of memory");
			break;
		}
	}
	return 0;
}

static int resume(struct follower *f)
{
	char why[512];
	int rc = f->o->checkpoint ? checkpoint_load(&f->w, f->o->checkpoint, why, sizeof why) : 0;
	if (rc < 0)
		return fatal(f, "checkpoint: %s", why);
	if (rc == 0)
		return start(f);
	f->next = window_tip(&f->w)->h.number + 1;
	notice(f, "info", "resuming after block %" PRIu64 " (%s), from the checkpoint",
	       window_tip(&f->w)->h.number, window_tip(&f->w)->h.hash);
	return 0;
}

int follow_run(struct eth_chain *c, struct scanner *s, const struct follow_opts *o,
               volatile sig_atomic_t *stop, char *err, size_t errlen)
{
	struct follow_opts opt = *o;
	if (!opt.batch || opt.batch > MAX_BATCH)
		opt.batch = opt.batch ? MAX_BATCH : 8;
	if (!opt.poll_ms)
		opt.poll_ms = 1000;
	struct follower f = {.c = c, .s = s, .o = &opt, .stop = stop, .err = err, .errlen = errlen,
	                     .backoff_ms = opt.poll_ms};
	if (window_init(&f.w, c->chain_id, opt.max_reorg)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	char why[512];
	if (prefetch_new(&f.pf, c, why, sizeof why))
		notice(&f, "warn", "no fetching ahead: %s", why);
	int rc = resume(&f);
	while (rc != STEP_FATAL && rc != STEP_DONE && !*stop)
		rc = step(&f);
	prefetch_free(f.pf);
	rc = save_after(&f, rc == STEP_FATAL ? rc : 0); /* blocks flushed since the last one */
	window_free(&f.w);
	return rc == STEP_FATAL ? -1 : 0;
}
