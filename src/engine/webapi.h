/*
 * webapi.h - the web-standard globals a plugin sees (src/engine/webapi.c)
 * and the console's value formatting (src/engine/inspect.c). Internal to
 * the engine.
 *
 * Every web global is lazy: an accessor on the global object until its
 * first read builds the value and puts it in its place; and only a plugin
 * whose source names it gets the accessor.
 */
#ifndef TXS_WEBAPI_H
#define TXS_WEBAPI_H

#include "engine_impl.h"
#include "util/sbuf.h"

/* What one native function object does; its private data is a web_fn. */
enum web_op {
	/* console methods */
	OP_CON_DEBUG, OP_CON_LOG, OP_CON_INFO, OP_CON_WARN, OP_CON_ERROR, OP_CON_TRACE,
	OP_CON_DIR, OP_CON_DIRXML, OP_CON_TABLE, OP_CON_ASSERT, OP_CON_COUNT,
	OP_CON_COUNT_RESET, OP_CON_TIME, OP_CON_TIME_LOG, OP_CON_TIME_END, OP_CON_GROUP,
	OP_CON_GROUP_COLLAPSED, OP_CON_GROUP_END, OP_CON_CLEAR,
	OP_CON_LAST = OP_CON_CLEAR,
	/* web globals and their helpers */
	OP_ATOB, OP_BTOA, OP_QUEUE_MICROTASK, OP_SET_TIMEOUT, OP_CLEAR_TIMEOUT,
	OP_SET_INTERVAL, OP_CLEAR_INTERVAL, OP_GET_RANDOM_VALUES, OP_RANDOM_UUID, OP_DIGEST,
	OP_PERF_NOW, OP_UTF8_ENCODE, OP_UTF8_ENCODE_INTO, OP_UTF8_DECODE, OP_REPORT_MICROTASK,
	WEB_OP_COUNT
};

/* sandbox.c: a callable object of the engine's native class, with
 * Function.prototype as its prototype (apply, call and bind work). */
JSObjectRef engine_native_fn(engine *e, enum web_op op);
/* webapi.c: runs a web native (op > OP_CON_LAST). */
JSValueRef webapi_call(engine *e, enum web_op op, JSContextRef ctx, JSObjectRef self, size_t argc,
                       const JSValueRef argv[], JSValueRef *exc);

/* webapi.c: defines the lazy accessors with define (the pristine
 * Object.defineProperty), for the names the plugin's source src mentions
 * (every name when src is NULL); false if it could not. */
bool webapi_install(engine *e, JSObjectRef define, const char *src, size_t len);
/* Runs due timers in order until the call has settled or none is left,
 * sleeping until each is due, draining microtasks after each. A timer due
 * after the scan's budget kills the engine as a timeout (e->killed). The
 * first exception a timer threw, or NULL. */
JSValueRef webapi_run_timers(engine *e, JSContextRef ctx);
/* Drops every pending timer (the call settled). */
void webapi_drop_timers(engine *e);
/* Everything the web globals and the console keep; before the context goes. */
void webapi_free(engine *e);

/* inspect.c: v formatted as a developer console prints it (strings bare at
 * the top level, nested values depth-limited, cycles marked). false once
 * the watchdog stopped the entry, with *exc the termination. */
bool inspect_value(engine *e, JSContextRef ctx, JSValueRef v, bool top, sbuf *out,
                   JSValueRef *exc);
/* console.log's arguments with printf-style %s %d %i %f %o %O %c %%. */
bool inspect_args(engine *e, JSContextRef ctx, size_t argc, const JSValueRef argv[], sbuf *out,
                  JSValueRef *exc);
/* The JavaScript stack of the caller, as "\n    at fn (file:line:col)" lines. */
void inspect_stack_here(engine *e, JSContextRef ctx, sbuf *out);
/* console.table(data, columns) as lines of a box-drawn table. */
bool inspect_table(engine *e, JSContextRef ctx, JSValueRef data, JSValueRef columns, sbuf *out,
                   JSValueRef *exc);

#endif
