/*
 * console.c - the host's bounded log buffer drained to stderr by one
 * thread, so a plugin's console.log or a failure event costs the scan a
 * copy and a lock, never a write(2) that could block on a full pipe. Lines
 * come formatted (util/log.c), one write(2) each.
 */
#define _GNU_SOURCE
#include "console.h"

#include "util/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct console_sink {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct line {
		char *text;
		size_t len;
	} *ring; /* guarded by mu */
	size_t cap, head, count;
	bool stop;
	_Atomic uint64_t dropped;
};

void console_sink_push(console_sink *s, char *line, size_t len)
{
	pthread_mutex_lock(&s->mu);
	bool full = s->count == s->cap;
	if (!full) {
		struct line *l = &s->ring[(s->head + s->count++) % s->cap];
		l->text = line;
		l->len = len;
	}
	bool wake = !full && s->count == 1;
	pthread_mutex_unlock(&s->mu);
	if (full) {
		atomic_fetch_add(&s->dropped, 1);
		free(line);
	}
	if (wake)
		pthread_cond_signal(&s->cv);
}

static void *drain(void *arg)
{
	console_sink *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (s->count == 0 && !s->stop)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->count == 0)
			break;
		struct line l = s->ring[s->head];
		s->head = (s->head + 1) % s->cap;
		s->count--;
		pthread_mutex_unlock(&s->mu);
		txs_log_write(l.text, l.len);
		free(l.text);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

console_sink *console_sink_new(size_t capacity)
{
	console_sink *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->cap = capacity;
	s->ring = calloc(capacity, sizeof *s->ring);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (!s->ring || pthread_create(&s->thread, NULL, drain, s) != 0) {
		free(s->ring);
		free(s);
		return NULL;
	}
	return s;
}

uint64_t console_sink_dropped(const console_sink *s)
{
	return atomic_load(&((console_sink *)s)->dropped);
}

void console_sink_free(console_sink *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_mutex_unlock(&s->mu);
	pthread_cond_signal(&s->cv);
	pthread_join(s->thread, NULL);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->ring);
	free(s);
}
