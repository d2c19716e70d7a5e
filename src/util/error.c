/*
 * error.c - per-thread last error. Errors raised on an executor's thread
 * travel inside the reply and are recorded here on the caller's thread.
 * A message longer than the buffer is cut on a UTF-8 character boundary
 * and says how much was cut (it may carry a plugin's text into JSON).
 */
#define _GNU_SOURCE
#include "error.h"

#include "utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last[16384]; /* room for a list of load failures */

const char *txs_last_error(void)
{
	return last[0] ? last : "no error";
}

static void set_last(const char *msg, size_t len)
{
	if (len < sizeof last) {
		memcpy(last, msg, len + 1);
		return;
	}
	char *copy = strndup(msg, len);
	size_t n = copy ? utf8_cap(&copy, len, sizeof last - 1, 0) : 0;
	if (!copy)
		n = utf8_cut(msg, len, sizeof last - 1);
	memcpy(last, copy ? copy : msg, n);
	last[n] = '\0';
	free(copy);
}

int txs_fail(int code, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		set_last("out of memory", 13);
	else
		set_last(s, (size_t)n);
	free(s);
	return code;
}

int txs_fail_msg(int code, const char *msg)
{
	msg = msg ? msg : "unknown error";
	set_last(msg, strlen(msg));
	return code;
}

const char *txs_status_name(txs_status status)
{
	static const char *const names[] = {"ok", "error", "timeout", "memory",
	                                    "overloaded", "unavailable", "stopped"};
	if ((unsigned)status < sizeof names / sizeof names[0])
		return names[status];
	return "unknown";
}
