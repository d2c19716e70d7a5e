/*
 * exporter.h - a small HTTP endpoint for a process that is not `txscan
 * serve` (the worker): GET /metrics, /healthz and /readyz, nothing else.
 * libmicrohttpd, one internal thread: scrapes are rare and cheap.
 */
#ifndef TXS_HTTP_EXPORTER_H
#define TXS_HTTP_EXPORTER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct exporter exporter;

/* Called on the exporter's thread, never at once with itself. metrics:
 * the page as malloc'ed text (0) or -1. ready: true when the process can do
 * its work; *why (a static string) says what is missing when not. */
typedef struct exporter_callbacks {
	int (*metrics)(char **text, size_t *len, void *userdata);
	bool (*ready)(const char **why, void *userdata);
	void *userdata;
} exporter_callbacks;

/* Listens on addr (as listen_open; option names it in errors). 0, or -1
 * with err filled in. */
int exporter_start(exporter **out, const char *addr, const char *option,
                   const exporter_callbacks *cb, char *err, size_t errlen);

/* "HOST:PORT" actually bound. */
const char *exporter_address(const exporter *e);

/* Stops the thread and closes the socket; accepts NULL. */
void exporter_free(exporter *e);

#endif
