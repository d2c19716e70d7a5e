/*
 * console.c - bounded console buffer drained to stderr by one thread, so a
 * plugin's console.log costs the scan a copy and a lock, never a write(2)
 * that could block on a full pipe.
 */
#define _GNU_SOURCE
#include "console.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct console_sink {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char **ring; /* guarded by mu */
	size_t cap, head, count;
	bool stop;
	_Atomic uint64_t dropped;
};

static char *format_line(const char *plugin, const char *level, const char *msg, size_t len)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	json_t *o = json_object();
	json_object_set_new(o, "ts", json_real((double)ts.tv_sec + (double)ts.tv_nsec / 1e9));
	json_object_set_new(o, "event", json_string("console"));
	json_object_set_new(o, "plugin", json_string(plugin));
	json_object_set_new(o, "level", json_string(level));
	json_t *text = json_stringn(msg, len);
	json_object_set_new(o, "msg", text ? text : json_string("[console line is not valid UTF-8]"));
	char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(16));
	json_decref(o);
	return line;
}

void console_sink_push(const char *plugin, const char *level, const char *msg, size_t len,
                       void *ud)
{
	console_sink *s = ud;
	char *line = format_line(plugin, level, msg, len);
	if (!line)
		return;
	pthread_mutex_lock(&s->mu);
	bool full = s->count == s->cap;
	if (!full)
		s->ring[(s->head + s->count++) % s->cap] = line;
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
		char *line = s->ring[s->head];
		s->head = (s->head + 1) % s->cap;
		s->count--;
		pthread_mutex_unlock(&s->mu);
		fprintf(stderr, "%s\n", line);
		free(line);
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
