/*
 * prefetch.c - the next batch of blocks, fetched ahead (see prefetch.h).
 *
 * One request at a time: start waits for the fetch in flight before it
 * sets the next one, so the thread's block array is written only while
 * `busy` and read only once `ready` (both under mu).
 */
#define _POSIX_C_SOURCE 200809L
#include "chain/prefetch.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_AHEAD = 64 };

struct prefetch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	struct eth_chain c; /* its own connection */
	bool want, busy, ready, quit;
	uint64_t from;
	size_t n;
	/* the result, when ready */
	struct eth_block blocks[MAX_AHEAD];
	size_t got;
	int rc;
	char err[512];
};

static void *run(void *arg)
{
	struct prefetch *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->want && !p->quit)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->quit)
			break;
		p->want = false;
		p->busy = true;
		uint64_t from = p->from;
		size_t n = p->n, got = 0;
		pthread_mutex_unlock(&p->mu);
		int rc = eth_blocks_get(&p->c, from, n, p->blocks, &got);
		pthread_mutex_lock(&p->mu);
		p->rc = rc;
		p->got = rc ? 0 : got;
		snprintf(p->err, sizeof p->err, "%s", p->c.err);
		p->busy = false;
		p->ready = true;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int prefetch_new(struct prefetch **out, const struct eth_chain *proto, char *err, size_t errlen)
{
	struct prefetch *p = calloc(1, sizeof *p);
	*out = NULL;
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p->c.chain_id = proto->chain_id;
	p->c.receipts = proto->receipts;
	p->c.block_receipts_off = proto->block_receipts_off;
	if (rpc_dup(&p->c.rpc, proto->rpc, err, errlen)) {
		free(p);
		return -1;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (pthread_create(&p->thread, NULL, run, p)) {
		snprintf(err, errlen, "cannot start a thread");
		rpc_free(p->c.rpc);
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
		free(p);
		return -1;
	}
	*out = p;
	return 0;
}

/* Under mu: waits for the request in flight, if any. */
static void settle_locked(struct prefetch *p)
{
	while (p->busy || p->want)
		pthread_cond_wait(&p->cv, &p->mu);
}

static void drop_locked(struct prefetch *p)
{
	for (size_t i = 0; p->ready && i < p->got; i++)
		eth_block_clear(&p->blocks[i]);
	p->ready = false;
	p->got = 0;
}

void prefetch_free(struct prefetch *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->quit = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	drop_locked(p);
	rpc_free(p->c.rpc);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

void prefetch_start(struct prefetch *p, uint64_t from, size_t n)
{
	pthread_mutex_lock(&p->mu);
	settle_locked(p);
	drop_locked(p);
	p->from = from;
	p->n = n > MAX_AHEAD ? MAX_AHEAD : n;
	p->want = true;
	pthread_mutex_unlock(&p->mu);
	pthread_cond_broadcast(&p->cv);
}

int prefetch_take(struct prefetch *p, uint64_t from, size_t n, struct eth_block *out,
                  size_t *got, char *err, size_t errlen)
{
	int rc = 1;
	pthread_mutex_lock(&p->mu);
	settle_locked(p);
	if (p->ready && p->from == from && p->n <= n) {
		memcpy(out, p->blocks, p->got * sizeof *out);
		*got = p->got;
		rc = p->rc;
		if (rc)
			snprintf(err, errlen, "%s", p->err);
		p->got = 0;
		p->ready = false;
	} else {
		drop_locked(p);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}
