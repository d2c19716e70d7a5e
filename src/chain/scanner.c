/*
 * scanner.c - a block's transactions through the host, reports in order
 * (see scanner.h).
 *
 * Up to WINDOW fan-outs are in flight: the calling thread submits, the
 * host's threads drop finished reports into a ring, and the calling thread
 * writes them strictly in order. A report is the host's line with
 * "chainId" and "block" appended before its closing brace.
 */
#include "chain/scanner.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 512

struct ticket {
	struct scanner *s;
	uint64_t seq;
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
	char suffix[256]; /* ,"chainId":N,"block":{...}} of the block being written */
	struct scan_totals t;
	int write_failed;
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

static void block_suffix(struct scanner *s, const struct eth_header *h)
{
	if (!h)
		snprintf(s->suffix, sizeof s->suffix, ",\"chainId\":%" PRIu64 ",\"block\":null}",
		         s->chain_id);
	else
		snprintf(s->suffix, sizeof s->suffix,
		         ",\"chainId\":%" PRIu64 ",\"block\":{\"number\":%" PRIu64
		         ",\"hash\":\"%s\",\"timestamp\":%" PRIu64 "}}",
		         s->chain_id, h->number, h->hash, h->timestamp);
}

static void put(struct scanner *s, const char *text, size_t len)
{
	if (fwrite(text, 1, len, s->fp) != len)
		s->write_failed = 1;
}

static void emit(struct scanner *s, txs_report *rep)
{
	size_t len;
	const char *json = txs_report_json(rep, &len);
	txs_severity v = txs_report_verdict(rep);
	s->t.reports++;
	s->t.input_errors += txs_report_input_error(rep);
	s->t.incomplete += !txs_report_input_error(rep) && !txs_report_complete(rep);
	s->t.failing += v != TXS_SEVERITY_NONE && v >= s->fail_on;
	if (len && json[len - 1] == '}') {
		put(s, json, len - 1);
		put(s, s->suffix, strlen(s->suffix));
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
		s->next_out++;
		emit(s, rep);
	}
}

static void submit(struct scanner *s, const json_t *tx)
{
	char *text = json_dumps(tx, JSON_COMPACT);
	drain(s, WINDOW - 1);
	struct ticket *t = &s->tickets[s->next_in % WINDOW];
	*t = (struct ticket){.s = s, .seq = s->next_in++};
	if (!text || txs_host_submit(s->host, text, strlen(text), 0, on_report, t) != 0) {
		/* only out of memory gets here: no report will come, so say so in its place */
		s->next_in--;
		drain(s, 0);
		put(s, "{\"tx\":null,\"error\":\"not scanned: out of memory\"", 47);
		put(s, s->suffix, strlen(s->suffix));
		put(s, "\n", 1);
		s->t.input_errors++;
	}
	free(text);
}

int scanner_txs(struct scanner *s, const json_t *txs, const struct eth_header *h)
{
	size_t i;
	json_t *tx;
	block_suffix(s, h);
	json_array_foreach(txs, i, tx) submit(s, tx);
	drain(s, 0);
	return scanner_flush(s);
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
