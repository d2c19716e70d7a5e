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
#include "webapi.h"

#include <pthread.h>
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

/* The label of console.count/time (String(label), "default" when absent)
 * and its slot; NULL when the table is full or the label cannot print. */
static struct console_label *console_label(engine *e, JSContextRef ctx, size_t argc,
                                           const JSValueRef argv[], JSValueRef *exc)
{
	char *name = argc && !JSValueIsUndefined(ctx, argv[0]) ? NULL : strdup("default");
	if (!name) { /* kept for the engine's life: its head only (labels alike in it are one) */
		size_t len, cut;
		name = jsv_text_head(ctx, e->string_fn, e->slice_fn, argv[0], CONSOLE_LABEL_MAX, &len,
		                     &cut, exc);
		e->console_cut += cut;
	}
	if (!name)
		return NULL;
	for (size_t i = 0; i < e->nlabels; i++)
		if (!strcmp(e->labels[i].name, name)) {
			free(name);
			return &e->labels[i];
		}
	if (e->nlabels == CONSOLE_LABELS_MAX) {
		free(name);
		return NULL;
	}
	e->labels[e->nlabels] = (struct console_label){.name = name};
	return &e->labels[e->nlabels++];
}

static int console_level(int op)
{
	switch (op) {
	case OP_CON_DEBUG: return ENGINE_LOG_DEBUG;
	case OP_CON_INFO: return ENGINE_LOG_INFO;
	case OP_CON_WARN: return ENGINE_LOG_WARN;
	case OP_CON_ERROR: case OP_CON_ASSERT: case OP_CON_TRACE: return ENGINE_LOG_ERROR;
	default: return ENGINE_LOG_LOG;
	}
}

/* "label: 1.234ms", "label: 3": count and time lines, with timeLog's
 * extra arguments after them. */
static bool console_labelled(engine *e, int op, JSContextRef ctx, size_t argc,
                             const JSValueRef argv[], sbuf *line, JSValueRef *exc)
{
	struct console_label *l = console_label(e, ctx, argc, argv, exc);
	if (!l)
		return false;
	char head[64];
	double ms = (double)(now_ns() - l->start_ns) / 1e6;
	switch (op) {
	case OP_CON_COUNT:
		sb_str(line, l->name);
		snprintf(head, sizeof head, ": %llu", (unsigned long long)++l->count);
		sb_str(line, head);
		return true;
	case OP_CON_COUNT_RESET:
		l->count = 0;
		return false;
	case OP_CON_TIME:
		l->timing = true;
		l->start_ns = now_ns();
		return false;
	default: /* timeLog, timeEnd */
		sb_str(line, l->name);
		if (!l->timing) {
			sb_str(line, ": no such timer");
			return true;
		}
		snprintf(head, sizeof head, ": %.3fms", ms);
		sb_str(line, head);
		l->timing = op != OP_CON_TIME_END;
		if (op == OP_CON_TIME_LOG && argc > 1) {
			sb_put(line, " ", 1);
			inspect_args(e, ctx, argc - 1, argv + 1, line, exc);
		}
		return true;
	}
}

/* The line a console method prints, in *line; false when it prints
 * nothing (or the watchdog stopped it: *exc). */
static bool console_line(engine *e, int op, JSContextRef ctx, size_t argc,
                         const JSValueRef argv[], sbuf *line, JSValueRef *exc)
{
	switch (op) {
	case OP_CON_ASSERT:
		if (argc && JSValueToBoolean(ctx, argv[0]))
			return false;
		sb_str(line, argc > 1 ? "Assertion failed: " : "Assertion failed");
		return argc < 2 || inspect_args(e, ctx, argc - 1, argv + 1, line, exc);
	case OP_CON_DIR:
		return inspect_value(e, ctx, argc ? argv[0] : JSValueMakeUndefined(ctx), false, line, exc);
	case OP_CON_TABLE:
		if (argc && JSValueIsObject(ctx, argv[0]))
			return inspect_table(e, ctx, argv[0], argc > 1 ? argv[1] : NULL, line, exc);
		return inspect_args(e, ctx, argc, argv, line, exc);
	case OP_CON_COUNT: case OP_CON_COUNT_RESET: case OP_CON_TIME: case OP_CON_TIME_LOG:
	case OP_CON_TIME_END:
		return console_labelled(e, op, ctx, argc, argv, line, exc);
	case OP_CON_GROUP_END:
		e->group_depth -= e->group_depth > 0;
		return false;
	case OP_CON_CLEAR:
		return false;
	case OP_CON_GROUP: case OP_CON_GROUP_COLLAPSED:
		if (!argc)
			return false;
		return inspect_args(e, ctx, argc, argv, line, exc);
	case OP_CON_TRACE: {
		sb_str(line, "Trace");
		if (argc)
			sb_str(line, ": ");
		if (argc && !inspect_args(e, ctx, argc, argv, line, exc))
			return false;
		inspect_stack_here(e, ctx, line);
		return true;
	}
	default:
		return inspect_args(e, ctx, argc, argv, line, exc);
	}
}

/* Indents every line of a message by the console.group depth. */
static void console_indent(engine *e, sbuf *line)
{
	if (e->group_depth <= 0 || !line->p)
		return;
	sbuf out = {0};
	int pad = 2 * (e->group_depth < 32 ? e->group_depth : 32);
	for (const char *p = line->p, *end = line->p + line->len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		sb_put(&out, "                                                                ",
		       (size_t)pad);
		sb_put(&out, p, n);
		p += n;
	}
	free(line->p);
	*line = out;
}

/* A console method: its line goes to the host's sink when the rate limit
 * lets it through (a dropped line is not even formatted). */
static JSValueRef console_call(engine *e, int op, JSContextRef ctx, size_t argc,
                               const JSValueRef argv[], JSValueRef *exc)
{
	bool silent = op == OP_CON_TIME || op == OP_CON_COUNT_RESET || op == OP_CON_GROUP_END ||
	              op == OP_CON_CLEAR || (op == OP_CON_ASSERT && argc && JSValueToBoolean(ctx, argv[0]));
	if (!e->console || (!silent && !console_take_token(e))) {
		if (op == OP_CON_GROUP || op == OP_CON_GROUP_COLLAPSED)
			e->group_depth++;
		return JSValueMakeUndefined(ctx);
	}
	sbuf line = {0};
	JSValueRef x = NULL;
	e->console_cut = 0;
	bool print = console_line(e, op, ctx, argc, argv, &line, &x);
	if (e->killed != ENGINE_OK) {
		*exc = x;
		free(line.p);
		return JSValueMakeUndefined(ctx);
	}
	console_indent(e, &line);
	if (print && !line.oom)
		console_emit(e, console_level(op), &line, e->console_cut);
	free(line.p);
	if (op == OP_CON_GROUP || op == OP_CON_GROUP_COLLAPSED)
		e->group_depth++;
	return JSValueMakeUndefined(ctx);
}

/* Every native function of the sandbox: a console method, or a web global. */
static JSValueRef native_call(JSContextRef ctx, JSObjectRef fn, JSObjectRef self,
                              size_t argc, const JSValueRef argv[], JSValueRef *exc)
{
	const struct web_fn *wf = JSObjectGetPrivate(fn);
	if (!wf)
		return JSValueMakeUndefined(ctx);
	if (wf->op <= OP_CON_LAST)
		return console_call(wf->e, wf->op, ctx, argc, argv, exc);
	return webapi_call(wf->e, (enum web_op)wf->op, ctx, self, argc, argv, exc);
}

JSObjectRef engine_native_fn(engine *e, enum web_op op)
{
	struct web_fn *wf = &e->web_fns[op];
	*wf = (struct web_fn){e, op};
	JSObjectRef fn = JSObjectMake(e->ctx, e->console_class, wf);
	JSObjectSetPrototype(e->ctx, fn, e->function_proto);
	return fn;
}

/* A descriptor {writable: false, enumerable: false, configurable: false}
 * for js_pin, which sets its value; NULL if it cannot be made. */
static JSObjectRef pin_desc(JSContextRef ctx)
{
	static const char *const fixed[] = {"writable", "enumerable", "configurable"};
	JSObjectRef desc = JSObjectMake(ctx, NULL, NULL);
	for (size_t i = 0; desc && i < sizeof fixed / sizeof fixed[0]; i++)
		if (!jsv_set(ctx, desc, fixed[i], JSValueMakeBoolean(ctx, false), kJSPropertyAttributeNone))
			return NULL;
	return desc;
}

/* Object.defineProperty(o, name, {value: v}): read-only, hidden, fixed.
 * Unlike a delete and a set, it keeps what the object does on a define
 * (Error.stackTraceLimit is also JSC's stack depth, and a delete unsets
 * it). desc (pin_desc) serves every pin: defineProperty reads it and keeps
 * nothing of it. */
static bool js_pin(JSContextRef ctx, JSObjectRef define, JSObjectRef desc, JSObjectRef o,
                   const char *name, JSValueRef v)
{
	JSStringRef n = jsv_name(name);
	if (!desc || !n || !jsv_set(ctx, desc, "value", v, kJSPropertyAttributeNone))
		return false;
	JSValueRef exc = NULL;
	JSValueRef args[3] = {o, JSValueMakeString(ctx, n), desc};
	return JSObjectCallAsFunction(ctx, define, NULL, 3, args, &exc) && !exc;
}

static const char *const console_names[] = {
    [OP_CON_DEBUG] = "debug", [OP_CON_LOG] = "log", [OP_CON_INFO] = "info",
    [OP_CON_WARN] = "warn", [OP_CON_ERROR] = "error", [OP_CON_TRACE] = "trace",
    [OP_CON_DIR] = "dir", [OP_CON_DIRXML] = "dirxml", [OP_CON_TABLE] = "table",
    [OP_CON_ASSERT] = "assert", [OP_CON_COUNT] = "count", [OP_CON_COUNT_RESET] = "countReset",
    [OP_CON_TIME] = "time", [OP_CON_TIME_LOG] = "timeLog", [OP_CON_TIME_END] = "timeEnd",
    [OP_CON_GROUP] = "group", [OP_CON_GROUP_COLLAPSED] = "groupCollapsed",
    [OP_CON_GROUP_END] = "groupEnd", [OP_CON_CLEAR] = "clear"};

/* A read of a console method past trace (console.table ...), on console's
 * prototype: the function is made on its first read and kept (protected
 * until the engine is freed); any other name is not ours (NULL). */
static JSValueRef console_more_get(JSContextRef ctx, JSObjectRef o, JSStringRef name,
                                   JSValueRef *exc)
{
	(void)exc;
	engine *e = JSObjectGetPrivate(o);
	for (int op = OP_CON_TRACE + 1; e && op <= OP_CON_LAST; op++) {
		if (!JSStringIsEqualToUTF8CString(name, console_names[op]))
			continue;
		if (!e->console_more[op]) {
			e->console_more[op] = engine_native_fn(e, (enum web_op)op);
			JSValueProtect(ctx, e->console_more[op]);
		}
		return e->console_more[op];
	}
	return NULL;
}

static JSClassRef console_more_class;
static pthread_once_t console_more_once = PTHREAD_ONCE_INIT;

static void make_console_more_class(void)
{
	JSClassDefinition def = kJSClassDefinitionEmpty;
	def.className = "console";
	def.getProperty = console_more_get;
	console_more_class = JSClassCreate(&def);
}

/* A frozen console whose methods are native functions (console_call).
 * They are callable objects with Function.prototype as their prototype, so
 * that console.log.apply(console, args) and .bind work as on functions.
 * log, info, warn, error, debug and trace are its own; the other methods
 * of the Console standard come from its prototype, made on first use:
 * making all 19 in every engine cost a fresh realm ~10 % more (~35 us in
 * 350, in one process). */
static JSObjectRef make_console(engine *e, JSObjectRef object_ctor)
{
	JSContextRef ctx = e->ctx;
	pthread_once(&console_more_once, make_console_more_class);
	JSObjectRef con = JSObjectMake(ctx, NULL, NULL);
	JSObjectSetPrototype(ctx, con, JSObjectMake(ctx, console_more_class, e));
	for (int op = 0; op <= OP_CON_TRACE; op++)
		if (!jsv_set(ctx, con, console_names[op], engine_native_fn(e, (enum web_op)op),
		             kJSPropertyAttributeNone))
			return NULL;
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
		JSStringRef n = jsv_name(removed[i]);
		if (!n || !JSObjectDeleteProperty(ctx, g, n, NULL))
			return removed[i];
	}
	JSObjectRef object = jsv_object_prop(ctx, g, "Object");
	JSObjectRef define = object ? jsv_object_prop(ctx, object, "defineProperty") : NULL;
	JSObjectRef err = jsv_object_prop(ctx, g, "Error");
	JSValueRef depth = err ? jsv_prop(ctx, err, "stackTraceLimit") : NULL;
	JSObjectRef desc = define && depth ? pin_desc(ctx) : NULL;
	if (!desc || !js_pin(ctx, define, desc, err, "prepareStackTrace", JSValueMakeUndefined(ctx)) ||
	    !js_pin(ctx, define, desc, err, "captureStackTrace", JSValueMakeUndefined(ctx)) ||
	    !js_pin(ctx, define, desc, err, "stackTraceLimit", depth))
		return "Error.prepareStackTrace, captureStackTrace, stackTraceLimit";
	JSObjectRef function = jsv_object_prop(ctx, g, "Function");
	e->function_proto = function ? jsv_object_prop(ctx, function, "prototype") : NULL;
	/* A plain put over JSC's own lazy console property, which keeps its
	 * attributes (writable, configurable, not enumerable): a set with
	 * attributes first asks whether the property exists, which builds
	 * JSC's console object with its 25 methods (~30 us, a tenth of a
	 * fresh realm) only to replace it. */
	JSObjectRef con = e->function_proto ? make_console(e, object) : NULL;
	if (!con || !jsv_set(ctx, g, "console", con, kJSPropertyAttributeNone))
		return "console";
	const char *src = e->cfg ? e->cfg->source : NULL;
	if (!webapi_install(e, define, src, e->cfg ? e->cfg->source_len : 0))
		return "web globals";
	return NULL;
}

/* The enumerable own names of o (and of o.default), up to 12, joined. */
static void export_names(JSContextRef ctx, JSObjectRef o, const char *prefix, sbuf *out, int *n)
{
	JSPropertyNameArrayRef names = JSObjectCopyPropertyNames(ctx, o);
	for (size_t i = 0; i < JSPropertyNameArrayGetCount(names) && *n < 12; i++) {
		size_t len, cut;
		char *k = jsv_utf8_head(JSPropertyNameArrayGetNameAtIndex(names, i), 256, &len, &cut);
		if (k && strcmp(k, "__esModule")) {
			sb_str(out, (*n)++ ? ", " : "");
			sb_str(out, prefix);
			sb_str(out, k);
		}
		free(k);
	}
	JSPropertyNameArrayRelease(names);
}

void engine_exports_hint(engine *e, JSContextRef ctx, JSValueRef m)
{
	if (!e->step_err || !JSValueIsObject(ctx, m))
		return;
	sbuf b = {0};
	int n = 0;
	sb_str(&b, e->step_err);
	JSObjectRef o = (JSObjectRef)m;
	JSValueRef def = jsv_prop(ctx, o, "default");
	JSValueRef forta = jsv_prop(ctx, o, "handleTransaction");
	if ((!forta || JSValueIsUndefined(ctx, forta)) && def && JSValueIsObject(ctx, def))
		forta = jsv_prop(ctx, (JSObjectRef)def, "handleTransaction");
	if (jsv_is_function(ctx, forta)) {
		sb_str(&b, ": the module exports handleTransaction, a Forta bot's handler; txscan "
		           "calls scanTransaction(tx, ctx) with the transaction's JSON and takes "
		           "findings {code, severity, message} back (docs/plugins.md)");
	} else {
		sb_str(&b, " (the module exports: ");
		export_names(ctx, o, "", &b, &n);
		if (def && JSValueIsObject(ctx, def) && !jsv_is_function(ctx, def))
			export_names(ctx, (JSObjectRef)def, "default.", &b, &n);
		sb_str(&b, n ? ")" : "nothing)");
	}
	if (!b.oom) {
		free(e->step_err);
		e->step_err = b.p;
	} else {
		free(b.p);
	}
}

static JSClassRef native_class;
static pthread_once_t native_once = PTHREAD_ONCE_INIT;

/* One class for the process, without the prototype object JSC would make
 * for it in each realm: its objects take Function.prototype. */
static void make_native_class(void)
{
	JSClassDefinition def = kJSClassDefinitionEmpty;
	def.attributes = kJSClassAttributeNoAutomaticPrototype;
	def.className = "Function"; /* what Object.prototype.toString reports, as for functions */
	def.callAsFunction = native_call;
	native_class = JSClassCreate(&def);
}

const char *engine_sandbox_install(engine *e)
{
	pthread_once(&native_once, make_native_class);
	e->console_class = native_class;
	return install_globals(e);
}
