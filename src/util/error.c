/*
 * error.c - per-thread last error. Errors raised on an executor's thread
 * travel inside the reply and are recorded here on the caller's thread.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last[16384]; /* room for a list of load failures */

const char *txs_last_error(void)
{
	return last[0] ? last : "no error";
}

int txs_fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last, sizeof last, fmt, ap);
	va_end(ap);
	return code;
}

int txs_fail_msg(int code, const char *msg)
{
	snprintf(last, sizeof last, "%s", msg ? msg : "unknown error");
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
