/*
 * tally.c - lock-free counting of findings by code (see tally.h).
 *
 * Readers load ncodes with acquire and read only the entries below it;
 * a writer fills an entry completely under mu, then publishes it by storing
 * ncodes with release. Entries never move or go away while the plugin
 * lives, so a reader that raced an append simply misses the newest code
 * for one reading.
 */
#include "tally.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tally_init(tally *t)
{
	memset(t, 0, sizeof *t);
	pthread_mutex_init(&t->mu, NULL);
}

void tally_fini(tally *t)
{
	free(t->codes);
	pthread_mutex_destroy(&t->mu);
}

static tally_code *lookup(tally_code *codes, uint32_t n, const char *code, size_t len)
{
	for (uint32_t i = 0; i < n; i++)
		if (!strncmp(codes[i].code, code, len) && codes[i].code[len] == '\0')
			return &codes[i];
	return NULL;
}

/* Slow path: a code not seen yet (or the table is full). */
static tally_code *append(tally *t, const char *code, size_t len)
{
	tally_code *c = NULL;
	pthread_mutex_lock(&t->mu);
	uint32_t n = atomic_load_explicit(&t->ncodes, memory_order_relaxed);
	if (!t->codes)
		t->codes = calloc(TXS_MAX_CODES_PER_PLUGIN, sizeof *t->codes);
	c = t->codes ? lookup(t->codes, n, code, len) : NULL; /* another thread won */
	if (!c && t->codes && n < TXS_MAX_CODES_PER_PLUGIN) {
		c = &t->codes[n];
		memcpy(c->code, code, len);
		c->code[len] = '\0';
		atomic_store_explicit(&t->ncodes, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&t->mu);
	return c;
}

void tally_add(tally *t, const char *code, size_t len, txs_severity sev)
{
	if ((unsigned)sev >= TALLY_SEVERITIES)
		return;
	len = len > FINDINGS_MAX_CODE ? FINDINGS_MAX_CODE : len;
	uint32_t n = atomic_load_explicit(&t->ncodes, memory_order_acquire);
	tally_code *c = n ? lookup(t->codes, n, code, len) : NULL;
	if (!c)
		c = append(t, code, len);
	_Atomic uint64_t *slot = c ? &c->n[sev] : &t->overflow[sev];
	atomic_fetch_add_explicit(slot, 1, memory_order_relaxed);
}

static size_t row(txs_finding_count *out, size_t cap, size_t at, const char *plugin,
                  const char *code, txs_severity sev, uint64_t v)
{
	if (at < cap) {
		txs_finding_count *r = &out[at];
		snprintf(r->plugin, sizeof r->plugin, "%s", plugin);
		snprintf(r->code, sizeof r->code, "%s", code);
		r->severity = sev;
		r->count = v;
	}
	return at + 1;
}

size_t tally_rows(const tally *tc, const char *plugin, txs_finding_count *out, size_t cap,
                  size_t at)
{
	tally *t = (tally *)tc;
	uint32_t n = atomic_load_explicit(&t->ncodes, memory_order_acquire);
	for (uint32_t i = 0; i < n; i++)
		for (int s = 0; s < TALLY_SEVERITIES; s++) {
			uint64_t v = atomic_load_explicit(&t->codes[i].n[s], memory_order_relaxed);
			if (v)
				at = row(out, cap, at, plugin, t->codes[i].code, (txs_severity)s, v);
		}
	for (int s = 0; s < TALLY_SEVERITIES; s++) {
		uint64_t v = atomic_load_explicit(&t->overflow[s], memory_order_relaxed);
		if (v)
			at = row(out, cap, at, plugin, "", (txs_severity)s, v);
	}
	return at;
}
