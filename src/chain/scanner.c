/*
 * scanner.c - a block's transactions through the host, reports in order
 * (see scanner.h).
 *
 * Up to WINDOW fan-outs are in flight: the calling thread submits, the
 * host's threads drop finished reports into a ring, and the calling thread
 * writes them strictly in order. Several blocks may be in flight at once
 * (a FIFO of pending blocks says where each one's reports end), so the
 * scans of the next blocks run while the first one's reports are written. A report is the host's line with
 * "chainId" and "block" appended before its closing brace.
 */
#include "chain/scanner.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW SCANNER_WINDOW
#define MAX_PENDING 128

struct ticket {
	struct scanner *s;
	uint64_t seq;
};

/* A block whose reports are not all written yet: its reports are the
 * sequence numbers up to `end`, and each line ends with `suffix`. */
struct pending {
	uint64_t end;
	char suffix[256]; /* ,"chainId":N,"block":{...}} */
};

struct scanner {
	txs_host *host;
	FILE *fp;
	uint64_t chain_id;
	txs_severity fail_on;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	txs_report *ring[WINDOW]; /* under mu */
	struct ticket tickets[WINDOW];
	uint64_t next_in, next_out;
	struct pending blocks[MAX_PENDING]; /* FIFO: [first, first + nblocks) */
	size_t first, nblocks;
	struct scan_totals t;
	int write_failed, discarding;
};

int scanner_new(struct scanner **out, txs_host *host, FILE *fp, uint64_t chain_id,
                txs_severity fail_on)
{
	struct scanner *s = calloc(1, sizeof *s);
	*out = s;
	if (!s)
		return -1;
	s->host = host;
	s->fp = fp;
	s->chain_id = chain_id;
	s->fail_on = fail_on;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	return 0;
}

void scanner_free(struct scanner *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

const struct scan_totals *scanner_totals(const struct scanner *s)
{
	return &s->t;
}

static void block_suffix(struct scanner *s, const struct eth_header *h, char *out, size_t n)
{
	if (!h)
		snprintf(out, n, ",\"chainId\":%" PRIu64 ",\"block\":null}", s->chain_id);
	else
		snprintf(out, n,
		         ",\"chainId\":%" PRIu64 ",\"block\":{\"number\":%" PRIu64
		         ",\"hash\":\"%s\",\"timestamp\":%" PRIu64 "}}",
		         s->chain_id, h->number, h->hash, h->timestamp);
}

/* The block the report numbered seq belongs to (written in order). */
static const char *suffix_of(struct scanner *s, uint64_t seq)
{
	for (size_t i = 0; i < s->nblocks; i++) {
		struct pending *p = &s->blocks[(s->first + i) % MAX_PENDING];
		if (seq < p->end)
			return p->suffix;
	}
	return "}";
}

static void put(struct scanner *s, const char *text, size_t len)
{
	if (fwrite(text, 1, len, s->fp) != len)
		s->write_failed = 1;
}

static void emit(struct scanner *s, txs_report *rep, uint64_t seq)
{
	size_t len;
	const char *json = txs_report_json(rep, &len), *suffix = suffix_of(s, seq);
	txs_severity v = txs_report_verdict(rep);
	if (s->discarding) {
		txs_report_free(rep);
		return;
	}
	s->t.reports++;
	s->t.input_errors += txs_report_input_error(rep);
	s->t.incomplete += !txs_report_input_error(rep) && !txs_report_complete(rep);
	s->t.failing += v != TXS_SEVERITY_NONE && v >= s->fail_on;
	if (len && json[len - 1] == '}') {
		put(s, json, len - 1);
		put(s, suffix, strlen(suffix));
	} else {
		put(s, json, len);
	}
	put(s, "\n", 1);
	txs_report_free(rep);
}

static void on_report(txs_report *rep, void *ud)
{
	struct ticket *t = ud;
	struct scanner *s = t->s;
	pthread_mutex_lock(&s->mu);
	s->ring[t->seq % WINDOW] = rep;
	int wake = t->seq == s->next_out;
	pthread_mutex_unlock(&s->mu);
	if (wake)
		pthread_cond_signal(&s->cv);
}

/* Writes reports in order until at most `keep` are in flight. */
static void drain(struct scanner *s, uint64_t keep)
{
	while (s->next_in - s->next_out > keep) {
		pthread_mutex_lock(&s->mu);
		txs_report **slot = &s->ring[s->next_out % WINDOW];
		while (!*slot)
			pthread_cond_wait(&s->cv, &s->mu);
		txs_report *rep = *slot;
		*slot = NULL;
		pthread_mutex_unlock(&s->mu);
		emit(s, rep, s->next_out++);
	}
}

static void submit(struct scanner *s, const json_t *tx, const char *suffix)
{
	char *text = json_dumps(tx, JSON_COMPACT);
	drain(s, WINDOW - 1);
	struct ticket *t = &s->tickets[s->next_in % WINDOW];
	*t = (struct ticket){.s = s, .seq = s->next_in++};
	if (!text || txs_host_submit(s->host, text, strlen(text), 0, on_report, t) != 0) {
		/* only out of memory gets here: no report will come, so say so in its place */
		static const char line[] = "{\"tx\":null,\"error\":\"not scanned: out of memory\"";
		s->next_in--;
		drain(s, 0);
		put(s, line, sizeof line - 1);
		put(s, suffix, strlen(suffix));
		put(s, "\n", 1);
		s->t.input_errors++;
	}
	free(text);
}

uint64_t scanner_in_flight(const struct scanner *s)
{
	return s->next_in - s->next_out;
}

int scanner_submit(struct scanner *s, const json_t *txs, const struct eth_header *h)
{
	size_t i;
	json_t *tx;
	if (s->nblocks == MAX_PENDING)
		return -1;
	struct pending *p = &s->blocks[(s->first + s->nblocks++) % MAX_PENDING];
	block_suffix(s, h, p->suffix, sizeof p->suffix);
	p->end = s->next_in + json_array_size(txs);
	json_array_foreach(txs, i, tx) submit(s, tx, p->suffix);
	p->end = s->next_in; /* one fewer for each that could not be submitted */
	return 0;
}

int scanner_write_next(struct scanner *s)
{
	if (!s->nblocks)
		return 0;
	struct pending *p = &s->blocks[s->first];
	drain(s, s->next_in - p->end);
	s->first = (s->first + 1) % MAX_PENDING;
	s->nblocks--;
	return scanner_flush(s);
}

void scanner_discard(struct scanner *s)
{
	s->discarding = 1;
	drain(s, 0);
	s->discarding = 0;
	s->first = s->nblocks = 0;
}

int scanner_txs(struct scanner *s, const json_t *txs, const struct eth_header *h)
{
	if (scanner_submit(s, txs, h))
		return -1;
	return scanner_write_next(s);
}

int scanner_removed(struct scanner *s, const char *tx_hash, const struct eth_header *h)
{
	char line[512];
	int n = snprintf(line, sizeof line,
	                 "{\"removed\":true,\"tx\":\"%s\",\"chainId\":%" PRIu64
	                 ",\"block\":{\"number\":%" PRIu64 ",\"hash\":\"%s\",\"timestamp\":%" PRIu64
	                 "}}\n",
	                 tx_hash, s->chain_id, h->number, h->hash, h->timestamp);
	put(s, line, (size_t)n);
	s->t.removed++;
	return s->write_failed ? -1 : 0;
}

int scanner_line(struct scanner *s, const char *json)
{
	put(s, json, strlen(json));
	put(s, "\n", 1);
	return s->write_failed ? -1 : 0;
}

int scanner_flush(struct scanner *s)
{
	if (fflush(s->fp) || ferror(s->fp))
		s->write_failed = 1;
	return s->write_failed ? -1 : 0;
}
