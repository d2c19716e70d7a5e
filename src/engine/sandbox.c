/*
 * sandbox.c - what a plugin sees of the world: its globals, set up in C
 * before any of its code runs (JavaScript for them would be compiled again
 * by every new VM), and a console whose methods are native functions that
 * format in C and go through a per-engine rate limit to the host's sink.
 */
#define _GNU_SOURCE
#include "engine_impl.h"

#include "jsval.h"
#include "util/sbuf.h"
#include "util/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool console_take_token(engine *e)
{
	uint64_t now = now_ns();
	e->tokens += (double)(now - e->tokens_at_ns) / 1e9 * CONSOLE_PER_SEC;
	if (e->tokens > CONSOLE_BURST)
		e->tokens = CONSOLE_BURST;
	e->tokens_at_ns = now;
	if (e->tokens < 1.0) {
		e->console_dropped++;
		return false;
	}
	e->tokens -= 1.0;
	return true;
}

/* One line to the host's sink, at most CONSOLE_MAX_LINE bytes: a longer
 * one is cut on a character boundary and says how much was cut (cut: what
 * was left out before it got here). */
static void console_emit(engine *e, int level, sbuf *line, size_t cut)
{
	if (e->console_dropped != e->console_dropped_reported) {
		char note[96];
		int n = snprintf(note, sizeof note, "[%llu console lines dropped by the rate limit]",
		                 (unsigned long long)(e->console_dropped - e->console_dropped_reported));
		e->console_dropped_reported = e->console_dropped;
		e->console(ENGINE_LOG_WARN, note, (size_t)n, e->console_ud);
	}
	if (!line->p) {
		e->console(level, "", 0, e->console_ud);
		return;
	}
	line->len = utf8_cap(&line->p, line->len, CONSOLE_MAX_LINE, cut);
	e->console(level, line->p, line->len, e->console_ud);
}

/* One console argument as text, as a JavaScript console prints it: a
 * string as it is, an object as its JSON when it has one, anything else (or
 * an object whose JSON throws) as String(v) prints it. At most max bytes
 * are copied out of the VM (a long string is sliced there first); *cut
 * gets the characters left out.
 * NULL once the watchdog has stopped the entry: nothing more may run, and
 * *exc is the termination, for the caller to throw on. */
static char *console_arg(engine *e, JSContextRef ctx, JSValueRef v, size_t max, size_t *len,
                         size_t *cut, JSValueRef *exc)
{
	char *p = NULL;
	*cut = 0;
	if (JSValueIsObject(ctx, v)) {
		JSStringRef s = JSValueCreateJSONString(ctx, v, 0, exc);
		if (s) {
			p = e->killed == ENGINE_OK ? jsv_utf8_head(s, max, len, cut) : NULL;
			JSStringRelease(s);
		}
	}
	if (!p && e->killed == ENGINE_OK)
		p = jsv_text_head(ctx, e->string_fn, e->slice_fn, v, max, len, cut, exc);
	if (e->killed != ENGINE_OK) {
		free(p);
		return NULL;
	}
	if (!p) {
		*len = strlen("[unprintable]");
		return strdup("[unprintable]");
	}
	return p;
}

/* console.log and its siblings: the arguments, joined by spaces, go to the
 * host's sink when the rate limit lets the line through (a dropped line is
 * not even formatted, nor are arguments past the line's cap). */
static JSValueRef native_console(JSContextRef ctx, JSObjectRef fn, JSObjectRef self,
                                 size_t argc, const JSValueRef argv[], JSValueRef *exc)
{
	(void)self;
	const struct console_fn *cf = JSObjectGetPrivate(fn);
	engine *e = cf ? cf->e : NULL;
	if (!e || !e->console || !console_take_token(e))
		return JSValueMakeUndefined(ctx);
	sbuf line = {0};
	size_t cut = 0;
	for (size_t i = 0; i < argc && line.len <= CONSOLE_MAX_LINE; i++) {
		size_t len = 0, c = 0;
		JSValueRef x = NULL;
		char *t = console_arg(e, ctx, argv[i], CONSOLE_MAX_LINE + 1 - line.len, &len, &c, &x);
		if (!t) {
			*exc = x;
			free(line.p);
			return JSValueMakeUndefined(ctx);
		}
		if (i)
			sb_put(&line, " ", 1);
		sb_put(&line, t, len);
		cut += c;
		free(t);
	}
	if (!line.oom)
		console_emit(e, cf->level, &line, cut);
	free(line.p);
	return JSValueMakeUndefined(ctx);
}

/* Object.defineProperty(o, name, {value: v}): read-only, hidden, fixed.
 * Unlike a delete and a set, it keeps what the object does on a define
 * (Error.stackTraceLimit is also JSC's stack depth, and a delete unsets
 * it). */
static bool js_pin(JSContextRef ctx, JSObjectRef define, JSObjectRef o, const char *name,
                   JSValueRef v)
{
	static const char *const fixed[] = {"writable", "enumerable", "configurable"};
	JSObjectRef desc = JSObjectMake(ctx, NULL, NULL);
	bool ok = jsv_set(ctx, desc, "value", v, kJSPropertyAttributeNone);
	for (size_t i = 0; ok && i < sizeof fixed / sizeof fixed[0]; i++)
		ok = jsv_set(ctx, desc, fixed[i], JSValueMakeBoolean(ctx, false), kJSPropertyAttributeNone);
	JSValueRef exc = NULL;
	JSValueRef args[3] = {o, jsv_string(ctx, name), desc};
	return ok && JSObjectCallAsFunction(ctx, define, NULL, 3, args, &exc) && !exc;
}

/* A frozen console whose methods print through native_console. They are
 * callable objects with Function.prototype as their prototype, so that
 * console.log.apply(console, args) and .bind work as on functions. */
static JSObjectRef make_console(engine *e, JSObjectRef object_ctor, JSObjectRef function_proto)
{
	static const struct { const char *name; int level; } methods[] = {
	    {"debug", ENGINE_LOG_DEBUG}, {"log", ENGINE_LOG_LOG},    {"info", ENGINE_LOG_INFO},
	    {"warn", ENGINE_LOG_WARN},   {"error", ENGINE_LOG_ERROR}, {"trace", ENGINE_LOG_DEBUG}};
	JSContextRef ctx = e->ctx;
	JSObjectRef con = JSObjectMake(ctx, NULL, NULL);
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		struct console_fn *cf = &e->con[methods[i].level];
		*cf = (struct console_fn){e, methods[i].level};
		JSObjectRef fn = JSObjectMake(ctx, e->console_class, cf);
		JSObjectSetPrototype(ctx, fn, function_proto);
		if (!jsv_set(ctx, con, methods[i].name, fn, kJSPropertyAttributeNone))
			return NULL;
	}
	JSObjectRef freeze = object_ctor ? jsv_object_prop(ctx, object_ctor, "freeze") : NULL;
	JSValueRef exc = NULL;
	if (!freeze || !JSObjectCallAsFunction(ctx, freeze, NULL, 1, (JSValueRef[]){con}, &exc) || exc)
		return NULL;
	return con;
}

/* The globals a plugin sees, set before any of its code runs: self and
 * global; no WebAssembly (JSC cannot stop a wasm loop), no shared memory
 * (nothing to block on with Atomics.wait; Atomics itself stays, deleting it
 * would build it first: ~90 KiB per engine), no FinalizationRegistry (its
 * callbacks would run from the run loop, outside any scan); the Error hooks
 * that run plugin code while a stack is built (they make V8-style hosts
 * unkillable) pinned to undefined, and the stack depth pinned; console.
 * NULL, or the name of what could not be set up. */
static const char *install_globals(engine *e)
{
	static const char *const removed[] = {"WebAssembly", "FinalizationRegistry",
	                                      "SharedArrayBuffer"};
	JSContextRef ctx = e->ctx;
	JSObjectRef g = JSContextGetGlobalObject(ctx);
	if (!jsv_set(ctx, g, "self", g, kJSPropertyAttributeNone) ||
	    !jsv_set(ctx, g, "global", g, kJSPropertyAttributeNone))
		return "self, global";
	for (size_t i = 0; i < sizeof removed / sizeof removed[0]; i++) {
		JSStringRef n = JSStringCreateWithUTF8CString(removed[i]);
		bool gone = JSObjectDeleteProperty(ctx, g, n, NULL);
		JSStringRelease(n);
		if (!gone)
			return removed[i];
	}
	JSObjectRef object = jsv_object_prop(ctx, g, "Object");
	JSObjectRef define = object ? jsv_object_prop(ctx, object, "defineProperty") : NULL;
	JSObjectRef err = jsv_object_prop(ctx, g, "Error");
	JSValueRef depth = err ? jsv_prop(ctx, err, "stackTraceLimit") : NULL;
	if (!define || !depth ||
	    !js_pin(ctx, define, err, "prepareStackTrace", JSValueMakeUndefined(ctx)) ||
	    !js_pin(ctx, define, err, "captureStackTrace", JSValueMakeUndefined(ctx)) ||
	    !js_pin(ctx, define, err, "stackTraceLimit", depth))
		return "Error.prepareStackTrace, captureStackTrace, stackTraceLimit";
	JSObjectRef function = jsv_object_prop(ctx, g, "Function");
	JSObjectRef function_proto = function ? jsv_object_prop(ctx, function, "prototype") : NULL;
	JSObjectRef con = function_proto ? make_console(e, object, function_proto) : NULL;
	if (!con || !jsv_set(ctx, g, "console", con, kJSPropertyAttributeDontEnum))
		return "console";
	return NULL;
}

const char *engine_sandbox_install(engine *e)
{
	JSClassDefinition def = kJSClassDefinitionEmpty;
	def.className = "Function"; /* what Object.prototype.toString reports, as for functions */
	def.callAsFunction = native_console;
	e->console_class = JSClassCreate(&def);
	return install_globals(e);
}
