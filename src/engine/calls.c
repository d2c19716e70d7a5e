/*
 * calls.c - the plugin called from C: loading the module, init(ctx) and
 * batches of scans. Each is one VM entry into a native function
 * (native_step) that calls the plugin through the C API and drains every
 * microtask the call caused from inside the entry (jsc_private.h), so the
 * watchdog covers them. A scan's answer (its JSON, its error, or what its
 * promise settled to) is in place as soon as it is known. No JavaScript of
 * txscan's runs in the VM: JSC would compile it again in every new VM.
 */
#define _GNU_SOURCE
#include "engine_impl.h"

#include "jsc_private.h"
#include "jsval.h"
#include "util/jscan.h"
#include "util/srcmap.h"
#include "util/stall.h"
#include "util/utf8.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOT_JSON "result cannot be serialised as JSON: "
#define NOT_SETTLED "promise did not settle: it waits on something that never comes " \
                    "(txscan has no I/O)"

/* String(v), at most max bytes (symbols through the pristine String, which
 * prints them); *cut += the characters left out. */
static char *string_of(engine *e, JSContextRef ctx, JSValueRef v, size_t max, size_t *cut,
                       JSValueRef *exc)
{
	size_t len, c = 0;
	char *p = jsv_text_head(ctx, e->string_fn, e->slice_fn, v, max, &len, &c, exc);
	*cut += c;
	return p;
}

/* A thrown value as text: "Name: message" and the plugin's stack lines, or
 * "uncaught <type>: <text>" for a value that is not an object; at most
 * max bytes, whose head is kept (a message of 50 MB is sliced
 * in the VM, never copied out whole), then how much was cut. The stack
 * of an error whose message was cut is left out. Getters and toString
 * run (under the watchdog); NULL once the watchdog has stopped the entry,
 * with *exc the termination for the caller to throw on (JavaScript's
 * catch sees a termination that a native function threw). */
static char *error_text(engine *e, JSContextRef ctx, JSValueRef v, size_t max, JSValueRef *exc)
{
	JSValueRef x = NULL;
	char *name = NULL, *msg = NULL, *st = NULL, *out = NULL;
	size_t cut = 0;
	if (JSValueIsObject(ctx, v)) {
		JSObjectRef o = (JSObjectRef)v;
		JSValueRef n = jsv_get(ctx, o, "name", &x);
		JSValueRef m = x ? NULL : jsv_get(ctx, o, "message", &x);
		JSValueRef s = x ? NULL : jsv_get(ctx, o, "stack", &x);
		name = x ? NULL : JSValueIsUndefined(ctx, n) ? strdup("Error")
		                                             : string_of(e, ctx, n, 256, &cut, &x);
		msg = x ? NULL : string_of(e, ctx, m, max, &cut, &x);
		st = !x && !cut && JSValueIsString(ctx, s) ? string_of(e, ctx, s, max, &cut, &x)
		                                           : NULL;
		if (st)
			jsv_strip_stack(st);
		if (name && msg)
			out = jsv_printf("%s: %s%s%s", name, msg, st && *st ? "\n" : "", st ? st : "");
	} else {
		char *t = string_of(e, ctx, v, max, &cut, &x);
		out = t ? jsv_printf("uncaught %s: %s", jsv_type_name(ctx, v), t) : NULL;
		free(t);
	}
	free(name);
	free(msg);
	free(st);
	if (e->killed != ENGINE_OK) { /* v may be the termination itself, caught */
		free(out);
		*exc = x ? x : v;
		return NULL;
	}
	char *mapped = srcmap_rewrite(out, max); /* a bundle's positions, as the original files' */
	if (mapped) {
		free(out);
		out = mapped;
	}
	if (out)
		utf8_cap(&out, strlen(out), max, cut);
	return out ? out : strdup("uncaught exception that cannot be printed");
}

/* Protects v until the engine is freed. */
void engine_keep(engine *e, JSValueRef v)
{
	assert(e->nkept < KEPT_MAX);
	JSValueProtect(e->ctx, v);
	e->kept[e->nkept++] = v;
}

void engine_drop_kept(engine *e)
{
	while (e->nkept)
		JSValueUnprotect(e->ctx, e->kept[--e->nkept]);
}

/* The intrinsics C calls, taken before any plugin code runs: a plugin
 * that replaces them changes nothing here. (JSON parsing and
 * serialising go through the C API, which uses JSC's own.) */
static bool take_pristine(engine *e)
{
	JSContextRef ctx = e->ctx;
	JSObjectRef g = JSContextGetGlobalObject(ctx);
	JSObjectRef promise = jsv_object_prop(ctx, g, "Promise");
	JSObjectRef proto = promise ? jsv_object_prop(ctx, promise, "prototype") : NULL;
	JSObjectRef object = jsv_object_prop(ctx, g, "Object");
	e->then_fn = proto ? jsv_object_prop(ctx, proto, "then") : NULL;
	e->freeze_fn = object ? jsv_object_prop(ctx, object, "freeze") : NULL;
	e->string_fn = jsv_object_prop(ctx, g, "String");
	JSObjectRef string_proto = e->string_fn ? jsv_object_prop(ctx, e->string_fn, "prototype") : NULL;
	e->slice_fn = string_proto ? jsv_object_prop(ctx, string_proto, "slice") : NULL;
	if (!e->then_fn || !e->freeze_fn || !e->string_fn || !e->slice_fn)
		return false;
	engine_keep(e, e->then_fn);
	engine_keep(e, e->freeze_fn);
	engine_keep(e, e->string_fn);
	engine_keep(e, e->slice_fn);
	return true;
}

static char *describe(JSContextRef ctx, const char *what, JSValueRef v)
{
	if (JSValueIsUndefined(ctx, v))
		return jsv_printf("%s is missing", what);
	return jsv_printf("%s is not a function (it is %s)", what, jsv_type_name(ctx, v));
}

/* Checks module.exports (or its default export) and keeps its functions. */
static void take_exports(engine *e, JSContextRef ctx, JSValueRef m, JSValueRef *exc)
{
	if (!JSValueIsObject(ctx, m)) {
		e->step_err = jsv_printf("module.exports must be an object, it is %s",
		                         jsv_type_name(ctx, m));
		return;
	}
	JSValueRef scan = jsv_get(ctx, (JSObjectRef)m, "scanTransaction", exc);
	JSValueRef def = scan && JSValueIsUndefined(ctx, scan)
	                     ? jsv_get(ctx, (JSObjectRef)m, "default", exc)
	                     : NULL;
	if (def && JSValueIsObject(ctx, def)) {
		JSValueRef s = jsv_get(ctx, (JSObjectRef)def, "scanTransaction", exc);
		if (jsv_is_function(ctx, s)) {
			m = def;
			scan = s;
		}
	}
	if (*exc)
		return;
	if (!jsv_is_function(ctx, scan)) {
		e->step_err = describe(ctx, "module.exports.scanTransaction", scan);
		engine_exports_hint(e, ctx, m); /* what it does export (sandbox.c) */
		return;
	}
	JSValueRef init = jsv_get(ctx, (JSObjectRef)m, "init", exc);
	if (*exc)
		return;
	if (!JSValueIsUndefined(ctx, init) && !jsv_is_function(ctx, init)) {
		e->step_err = describe(ctx, "module.exports.init", init);
		return;
	}
	e->mod = (JSObjectRef)m;
	e->scan_fn = (JSObjectRef)scan;
	e->init_fn = JSValueIsUndefined(ctx, init) ? NULL : (JSObjectRef)init;
	engine_keep(e, e->mod);
	engine_keep(e, e->scan_fn);
	if (e->init_fn)
		engine_keep(e, e->init_fn);
}

static void set_error(engine_result *res, engine_status st, char *msg)
{
	res->status = st;
	res->error = msg ? msg : strdup("out of memory");
}

void engine_killed_result(engine *e, engine_result *res)
{
	e->dead = true;
	if (e->vm)
		e->vm->poisoned = true;
	if (e->killed == ENGINE_TIMEOUT && e->over_backstop)
		set_error(res, ENGINE_TIMEOUT,
		          jsv_printf("timed out: no answer after %llu ms of wall-clock time, most "
		                     "of it waiting for a core (the machine is overloaded)",
		                     (unsigned long long)(backstop_ns(e->budget_ns) / 1000000)));
	else if (e->killed == ENGINE_TIMEOUT)
		set_error(res, ENGINE_TIMEOUT,
		          jsv_printf("timed out after %llu ms",
		                     (unsigned long long)(e->budget_ns / 1000000)));
	else
		set_error(res, ENGINE_MEMORY,
		          jsv_printf("heap limit of %zu MB exceeded", e->heap_limit >> 20));
}

/* res = the JSON text (owned), unless it is over the cap in bytes. */
static void answer_json(engine *e, char *text, size_t len, engine_result *res)
{
	if (e->max_result && len > e->max_result) {
		set_error(res, ENGINE_ERROR,
		          jsv_printf("result too large: %zu bytes, the cap is %zu", len, e->max_result));
		free(text);
		return;
	}
	res->status = ENGINE_OK;
	res->json = text;
	res->json_len = len;
}

/* res = a thrown value, as text. Nothing once the engine is killed. */
static void answer_error(engine *e, JSContextRef ctx, JSValueRef v, engine_result *res)
{
	JSValueRef x = NULL;
	char *t = error_text(e, ctx, v, JSV_ERROR_MAX, &x);
	if (t)
		set_error(res, ENGINE_ERROR, t);
}

/* res = v's JSON ("null" where JSON.stringify gives undefined), refused
 * when larger than the cap before it is copied out; for init, just OK. */
static void answer_value(engine *e, JSContextRef ctx, JSValueRef v, engine_result *res)
{
	if (!e->keep_value) {
		res->status = ENGINE_OK;
		return;
	}
	JSValueRef x = NULL;
	JSStringRef s = JSValueCreateJSONString(ctx, v, 0, &x);
	if (x) {
		char *t = error_text(e, ctx, x, JSV_ERROR_MAX - sizeof NOT_JSON, &x);
		if (t)
			set_error(res, ENGINE_ERROR, jsv_printf(NOT_JSON "%s", t));
		free(t);
		return;
	}
	size_t chars = s ? JSStringGetLength(s) : 4;
	if (e->max_result && chars > e->max_result) {
		set_error(res, ENGINE_ERROR,
		          jsv_printf("result too large: %zu characters, the cap is %zu bytes", chars,
		                     e->max_result));
		JSStringRelease(s);
		return;
	}
	size_t len = 4;
	char *text = s ? jsv_utf8(s, &len) : strdup("null");
	if (s)
		JSStringRelease(s);
	if (text)
		answer_json(e, text, len, res);
	else
		set_error(res, ENGINE_ERROR, NULL);
}

/* A handler of the pristine promise that follows a thenable. */
static JSValueRef native_settle(JSContextRef ctx, JSObjectRef fn, JSObjectRef self, size_t argc,
                                const JSValueRef argv[], JSValueRef *exc)
{
	(void)self;
	(void)exc;
	const struct settle_fn *sf = JSObjectGetPrivate(fn);
	engine *e = sf->e;
	if (sf->call == e->call && !e->settled) {
		e->settled = true;
		JSValueRef v = argc ? argv[0] : JSValueMakeUndefined(ctx);
		if (sf->rejected)
			answer_error(e, ctx, v, e->ans);
		else
			answer_value(e, ctx, v, e->ans);
	}
	return JSValueMakeUndefined(ctx);
}

static void settle_finalize(JSObjectRef fn)
{
	free(JSObjectGetPrivate(fn));
}

static JSObjectRef settle_handler(engine *e, bool rejected)
{
	struct settle_fn *sf = malloc(sizeof *sf);
	if (!sf)
		return NULL;
	*sf = (struct settle_fn){e, e->call, rejected};
	return JSObjectMake(e->ctx, e->settle_class, sf);
}

/* Follows the thenable r as a pristine promise resolved with it would (its
 * then runs in a microtask); the handlers answer. */
static void await_thenable(engine *e, JSContextRef ctx, JSValueRef r, JSValueRef *exc)
{
	JSObjectRef resolve, reject;
	JSObjectRef p = JSObjectMakeDeferredPromise(ctx, &resolve, &reject, exc);
	if (!p)
		return;
	JSObjectCallAsFunction(ctx, resolve, NULL, 1, &r, exc);
	JSValueRef handlers[2] = {settle_handler(e, false), settle_handler(e, true)};
	if (!*exc && handlers[0] && handlers[1])
		JSObjectCallAsFunction(ctx, e->then_fn, p, 2, handlers, exc);
}

/* true when r is a thenable whose outcome the microtasks will deliver;
 * else res is answered. */
static bool answer_or_await(engine *e, JSContextRef ctx, JSValueRef r, engine_result *res)
{
	JSValueRef x = NULL;
	JSValueRef then = JSValueIsObject(ctx, r)
	                      ? JSObjectGetProperty(ctx, (JSObjectRef)r, e->then_name, &x)
	                      : NULL;
	bool thenable = !x && jsv_is_function(ctx, then);
	if (thenable)
		await_thenable(e, ctx, r, &x);
	if (x)
		answer_error(e, ctx, x, res);
	else if (!thenable)
		answer_value(e, ctx, r, res);
	return !x && thenable;
}

/* res = fn.call(self, ...argv) and every microtask it queued: its value,
 * its error, or what the promise it returned settled to ("promise did not
 * settle" when it cannot: nothing is left to run it). Runs inside a VM
 * entry. false when the engine was killed (res is left alone). */
static bool invoke(engine *e, JSContextRef ctx, JSObjectRef fn, JSObjectRef self, size_t argc,
                   const JSValueRef argv[], engine_result *res)
{
	e->call++;
	e->ans = res;
	e->settled = false;
	webapi_drop_timers(e); /* any the module's top level set */
	JSValueRef x = NULL;
	JSValueRef r = JSObjectCallAsFunction(ctx, fn, self, argc, argv, &x);
	bool pending = false;
	if (e->killed == ENGINE_OK && x)
		answer_error(e, ctx, x, res);
	else if (e->killed == ENGINE_OK)
		pending = answer_or_await(e, ctx, r, res);
	if (e->killed == ENGINE_OK)
		txs_jsc_drain_microtasks_now(ctx);
	if (e->killed == ENGINE_OK && pending && !e->settled && e->ntimers) {
		JSValueRef tx = webapi_run_timers(e, ctx); /* setTimeout and friends */
		if (tx && e->killed == ENGINE_OK && !e->settled) {
			e->settled = true;
			answer_error(e, ctx, tx, res);
			/* The error's getters (name, message, stack) may have queued
			 * microtasks: they run now, in this scan's time. Left in the
			 * queue, JSC would run them as the VM entry ends, each as an
			 * entry of its own, where the watchdog never stops a flood and
			 * a kill is nobody's. (What answering read before the drain
			 * above, that drain ran; each timer is followed by one.) */
			if (e->killed == ENGINE_OK)
				txs_jsc_drain_microtasks_now(ctx);
		}
	}
	webapi_drop_timers(e);
	e->call++;
	if (e->killed != ENGINE_OK)
		return false;
	if (pending && !e->settled)
		set_error(res, ENGINE_ERROR, strdup(NOT_SETTLED));
	return true;
}

#define WRAPPER_HEAD "function (module, exports) {"
#define ESCAPED "the source closes the module's function early (a stray '})'?): " \
                "a plugin is the body of a CommonJS module"

/* Whether w is the function expression engine.c wrapped the source in:
 * a function whose text (through the pristine toString) starts with the
 * wrapper's head and spans the whole program but its two parentheses.
 * Only the function at offset 1 can: a source that closed the wrapper and
 * left another value (or another function) behind fails. Only the text's
 * length and head are read (its length on a String object, its head
 * sliced in the VM): a bundle's source is never copied for this. */
static bool is_wrapper(engine *e, JSContextRef ctx, JSObjectRef to_string, JSValueRef w)
{
	if (!to_string || !jsv_is_function(ctx, w))
		return false;
	JSValueRef x = NULL;
	JSValueRef t = JSObjectCallAsFunction(ctx, to_string, (JSObjectRef)w, 0, NULL, &x);
	if (x || !t || !JSValueIsString(ctx, t))
		return false;
	JSObjectRef text = JSValueToObject(ctx, t, &x);
	JSValueRef n = text ? jsv_get(ctx, text, "length", &x) : NULL;
	if (!n || (size_t)JSValueToNumber(ctx, n, NULL) + 2 != JSStringGetLength(e->load_src))
		return false;
	size_t len, cut;
	char *head = jsv_text_head(ctx, e->string_fn, e->slice_fn, t, sizeof WRAPPER_HEAD - 1, &len,
	                           &cut, &x);
	bool ok = head && !strcmp(head, WRAPPER_HEAD);
	free(head);
	return ok;
}

/* The wrapped source evaluated inside the step's VM entry, so whatever it
 * runs is under the watchdog, microtasks included; the wrapper function,
 * or NULL with e->step_err (or a kill) saying why. */
static JSObjectRef evaluate_wrapped(engine *e, JSContextRef ctx, JSValueRef *exc)
{
	/* Whether the program is the wrapper alone is a property of its text
	 * (only the function at offset 1 spans it all): once shown in this VM
	 * for the text its realms share, it holds for each of them. */
	bool shared = e->load_src == e->vm->src.s, proven = shared && e->vm->src.proven;
	JSObjectRef g = JSContextGetGlobalObject(ctx);
	JSObjectRef function = proven ? NULL : jsv_object_prop(ctx, g, "Function");
	JSObjectRef proto = function ? jsv_object_prop(ctx, function, "prototype") : NULL;
	JSObjectRef to_string = proto ? jsv_object_prop(ctx, proto, "toString") : NULL;
	JSStringRef url = JSStringCreateWithUTF8CString(e->cfg->filename);
	JSValueRef wrapper = JSEvaluateScript(ctx, e->load_src, NULL, url, 1, exc);
	JSStringRelease(url);
	/* What it queued runs now, under the watchdog, also when it threw:
	 * left in the queue, JSC would drain it as the entry ends, with no
	 * watchdog (a flood would never end). */
	if (e->killed == ENGINE_OK)
		txs_jsc_drain_microtasks_now(ctx);
	if (e->killed != ENGINE_OK)
		return NULL;
	if (*exc) { /* a SyntaxError: say the line */
		e->step_err = jsv_exception_text(ctx, e->string_fn, e->slice_fn, *exc);
		*exc = NULL;
		if (!e->step_err)
			e->step_err = strdup("out of memory");
		return NULL;
	}
	if (proven && jsv_is_function(ctx, wrapper))
		return (JSObjectRef)wrapper;
	if (is_wrapper(e, ctx, to_string, wrapper)) {
		e->vm->src.proven |= shared;
		return (JSObjectRef)wrapper;
	}
	if (e->killed == ENGINE_OK)
		e->step_err = strdup(ESCAPED);
	return NULL;
}

/* wrapper.call(globalThis, module, module.exports) with its microtasks,
 * then the exports. */
static void step_load(engine *e, JSContextRef ctx, JSValueRef *exc)
{
	JSObjectRef wrapper = evaluate_wrapped(e, ctx, exc);
	if (!wrapper)
		return;
	JSObjectRef module = JSObjectMake(ctx, NULL, NULL);
	JSObjectRef exports = JSObjectMake(ctx, NULL, NULL);
	jsv_set(ctx, module, "exports", exports, kJSPropertyAttributeNone);
	JSValueRef args[2] = {module, exports};
	JSObjectCallAsFunction(ctx, wrapper, JSContextGetGlobalObject(ctx), 2, args, exc);
	if (e->killed == ENGINE_OK)
		txs_jsc_drain_microtasks_now(ctx); /* also when it threw, as above */
	if (*exc || e->killed != ENGINE_OK)
		return;
	JSValueRef m = jsv_get(ctx, module, "exports", exc);
	if (m)
		take_exports(e, ctx, m, exc);
}

/* The config's JSON text as a JSC string: the one the VM keeps for its
 * realms when it is the same (struct vm_share). NULL: out of memory. */
static JSStringRef config_text(engine *e)
{
	const char *json = e->cfg->config_json ? e->cfg->config_json : "{}";
	size_t len = strlen(json);
	JSStringRef s = e->realms ? engine_vm_text(&e->vm->config, json, len) : NULL;
	if (s)
		return s;
	s = JSStringCreateWithUTF8CString(json);
	if (s && e->realms && !engine_vm_text_keep(&e->vm->config, s, json, len)) {
		JSStringRelease(s);
		return NULL;
	}
	return s;
}

/* ctx = {plugin: frozen {id, version}, config}. */
static JSObjectRef make_pctx(engine *e, JSContextRef ctx, JSValueRef *exc)
{
	JSObjectRef plugin = JSObjectMake(ctx, NULL, NULL);
	jsv_set(ctx, plugin, "id", jsv_string(ctx, e->cfg->plugin_id), kJSPropertyAttributeNone);
	jsv_set(ctx, plugin, "version", jsv_string(ctx, e->cfg->plugin_version), kJSPropertyAttributeNone);
	JSObjectCallAsFunction(ctx, e->freeze_fn, NULL, 1, (JSValueRef[]){plugin}, exc);
	JSStringRef cs = config_text(e);
	JSValueRef config = cs ? JSValueMakeFromJSONString(ctx, cs) : NULL;
	if (cs)
		JSStringRelease(cs);
	if (*exc)
		return NULL;
	if (!config) {
		e->step_err = strdup("ctx.config: the plugin's config is not valid JSON");
		return NULL;
	}
	JSObjectRef pctx = JSObjectMake(ctx, NULL, NULL);
	jsv_set(ctx, pctx, "plugin", plugin, kJSPropertyAttributeNone);
	jsv_set(ctx, pctx, "config", config, kJSPropertyAttributeNone);
	engine_keep(e, pctx);
	e->pctx = pctx;
	return pctx;
}

/* init(ctx), awaited when it returns a thenable, with every microtask. */
static void step_init(engine *e, JSContextRef ctx)
{
	JSValueRef x = NULL;
	JSObjectRef pctx = make_pctx(e, ctx, &x);
	if (x && e->killed == ENGINE_OK && !e->step_err)
		e->step_err = error_text(e, ctx, x, JSV_ERROR_MAX, &x);
	if (!pctx || !e->init_fn)
		return;
	engine_result res = {0};
	e->keep_value = false;
	if (invoke(e, ctx, e->init_fn, e->mod, 1, (JSValueRef[]){pctx}, &res) && res.error) {
		e->step_err = res.error;
		res.error = NULL;
	}
	engine_result_clear(&res);
	e->keep_value = true;
}

/* Scan i of the batch starts now, with its own deadline. */
static void batch_mark_start(engine *e, size_t i, uint64_t now)
{
	e->bcur = i;
	e->bstart_ns = now;
	e->deadline_ns = now + backstop_ns(e->budget_ns);
	e->stall_at_ns = txs_stall_total_ns();
	e->stall_deferred = false;
	engine_progress_mark(e, now, (uint32_t)i);
}

/* True when the n bytes at s are all ASCII (a word at a time). */
static bool all_ascii(const char *s, size_t n)
{
	uint64_t any = 0, w;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		any |= w;
	}
	for (; i < n; i++)
		any |= (unsigned char)s[i];
	return !(any & 0x8080808080808080ull);
}

/* JSON text parsed where it lies (jsc_private.h); NULL if it is not JSON.
 * It takes the VM's lock as a C API call would: JSC drops it around the
 * native function this runs in, and takes it back for each call, so GC
 * sees the thread between calls as it always did. */
static JSValueRef parse_in_place(JSContextRef ctx, const char *text, size_t len)
{
	txs_wtf_string_view view = {.chars = text, .length = (unsigned)len, .is8bit = true};
	txs_jsc_lock_holder lock;
	txs_jsc_lock_holder_init(&lock, JSContextGetGroup(ctx));
	uint64_t v = txs_jsc_json_parse(ctx, view);
	txs_jsc_lock_holder_destroy(&lock);
	return v ? (JSValueRef)(uintptr_t)v : NULL;
}

/* Whether parse_in_place gives what the C API gives, checked once per
 * process on a sample: a JavaScriptCore whose StringView or JSONParse
 * differs from the declaration is then never called that way. */
static bool in_place_works(JSContextRef ctx)
{
	static _Atomic int state; /* 0 unknown, 1 yes, -1 no; a race checks twice */
	int s = atomic_load_explicit(&state, memory_order_relaxed);
	if (s)
		return s > 0;
	static const char sample[] = "{\"a\":[1,\"b\",null],\"c\":{\"d\":true}}";
	bool ok = false;
	JSValueRef v = parse_in_place(ctx, sample, sizeof sample - 1);
	JSStringRef back = v ? JSValueCreateJSONString(ctx, v, 0, NULL) : NULL;
	if (back) {
		char out[sizeof sample + 8];
		ok = JSStringGetUTF8CString(back, out, sizeof out) == sizeof sample &&
		     !memcmp(out, sample, sizeof sample);
		JSStringRelease(back);
	}
	atomic_store_explicit(&state, ok ? 1 : -1, memory_order_relaxed);
	return ok;
}

/* A transaction's JSON text as a JavaScript value. ASCII text (nearly all
 * of it) is parsed in place by JSC's own JSON.parse (jsc_private.h): the C
 * API would first copy it into a JSC string (JSStringCreateWithUTF8CString
 * decodes every byte as UTF-8) and copy that again (JSValueMakeFromJSONString
 * takes an isolated copy), two allocations in the heap every engine thread
 * shares. Other text goes through the C API. NULL: not JSON, or out of
 * memory. */
static JSValueRef tx_value(JSContextRef ctx, const char *text, size_t len)
{
	if (len && len <= UINT32_MAX && all_ascii(text, len) && in_place_works(ctx))
		return parse_in_place(ctx, text, len);
	JSStringRef s = JSStringCreateWithUTF8CString(text);
	if (!s)
		return NULL;
	JSValueRef v = JSValueMakeFromJSONString(ctx, s);
	JSStringRelease(s);
	return v;
}

/* Why text is not a transaction JSC can parse, with where when the JSON
 * validator (util/jscan.c) finds the fault; the error path only. */
static char *not_json_text(const char *text, size_t len)
{
	jscan s;
	jscan_init(&s, text, len);
	jscan_ws(&s);
	char *why = NULL;
	if (!(s.p < s.end ? jscan_value(&s, 1) && jscan_end(&s) : jscan_fail(&s, "no JSON value")))
		why = jscan_error_text(&s, "transaction is not valid JSON");
	return why ? why : strdup("transaction is not valid JSON");
}

/* Scans the batch's transactions in turn; each answer is in place as soon
 * as it is known, so a kill loses nothing that finished before it. */
static void step_batch(engine *e, JSContextRef ctx)
{
	JSValueRef args[2] = {NULL, e->pctx};
	for (size_t i = 0; i < e->bn; i++) {
		engine_result *res = &e->bres[i];
		if (e->gate && !e->gate(e->console_ud, true)) {
			e->gated_out = true; /* the texts from i on are not ours any more */
			return;
		}
		args[0] = tx_value(ctx, e->btx[i], e->blen[i]);
		if (e->gate)
			e->gate(e->console_ud, false);
		if (!args[0])
			set_error(res, ENGINE_ERROR, not_json_text(e->btx[i], e->blen[i]));
		else if (!invoke(e, ctx, e->scan_fn, e->mod, 2, args, res))
			return;
		uint64_t now = now_ns();
		res->ms = (double)(now - e->bstart_ns) / 1e6;
		batch_mark_start(e, i + 1, now);
	}
}


/* A kill can leave microtasks queued (a flood the plugin queued before the
 * loop that was stopped). JSC would run them as the entry returns, each an
 * entry of its own that no tick reaches: a thread spinning for ever. They
 * start here instead, with the watchdog armed for a moment, which stops
 * them at once (on_tick: killed already); a termination inside the drain
 * ends it, and JSC runs nothing more of the queue. */
static void drain_after_kill(engine *e, JSContextRef ctx)
{
	engine_arm(e, 0.001);
	txs_jsc_drain_microtasks_now(ctx);
}

/* The native function a step runs in (one VM entry). An exception the
 * plugin threw while loading becomes step_err; a kill is thrown on. */
static JSValueRef native_step(JSContextRef ctx, JSObjectRef fn, JSObjectRef self, size_t argc,
                              const JSValueRef argv[], JSValueRef *exc)
{
	(void)self;
	(void)argc;
	(void)argv;
	const struct step_fn *sf = JSObjectGetPrivate(fn);
	engine *e = sf->e;
	JSValueRef x = NULL;
	switch (sf->kind) {
	case STEP_LOAD:
		step_load(e, ctx, &x);
		break;
	case STEP_INIT:
		step_init(e, ctx);
		break;
	case STEP_BATCH:
		step_batch(e, ctx);
		break;
	}
	if (x && e->killed == ENGINE_OK && !e->step_err)
		e->step_err = error_text(e, ctx, x, JSV_ERROR_MAX, &x);
	/* what C's reads since the last drain ran (the exports' getters, an
	 * error's) queued runs here, under the watchdog, as in invoke (which
	 * drains after each scan of a batch itself) */
	if (e->killed == ENGINE_OK && sf->kind != STEP_BATCH)
		txs_jsc_drain_microtasks_now(ctx);
	if (e->killed != ENGINE_OK) {
		drain_after_kill(e, ctx);
		*exc = x;
	}
	return JSValueMakeUndefined(ctx);
}

/* Runs loading or init as one VM entry. 0, or -1 with *why (owned) set; a
 * kill leaves *why NULL and e->killed set. */
int engine_run_step(engine *e, enum step_kind kind, char **why)
{
	JSObjectRef fn = JSObjectMake(e->ctx, e->step_class, &e->steps[kind]);
	JSValueRef exc = NULL;
	e->step_err = NULL;
	JSObjectCallAsFunction(e->ctx, fn, NULL, 0, NULL, &exc);
	*why = e->step_err;
	e->step_err = NULL;
	if (e->killed != ENGINE_OK) {
		free(*why);
		*why = NULL;
		return -1;
	}
	if (!*why && exc)
		*why = jsv_exception_text(e->ctx, e->string_fn, e->slice_fn, exc);
	return *why ? -1 : 0;
}

/* The scan that was running when the batch ended without finishing: the
 * engine was killed, or (never expected) an exception escaped. */
static size_t batch_cut(engine *e, size_t n, JSValueRef exc)
{
	if (e->bcur >= n && e->killed != ENGINE_OK) {
		/* killed after the last answer: what ran then was the last scan's
		 * (its microtasks), and the VM is not used again */
		engine_result_clear(&e->bres[n - 1]);
		engine_killed_result(e, &e->bres[n - 1]);
		return n;
	}
	if (e->bcur >= n)
		return n;
	if (e->gated_out)
		return e->bcur; /* the rest is left unread and unanswered */
	engine_result *res = &e->bres[e->bcur];
	engine_result_clear(res);
	if (e->killed != ENGINE_OK) {
		engine_killed_result(e, res);
		res->ms = (double)(now_ns() - e->bstart_ns) / 1e6;
		return e->bcur + 1;
	}
	char *t = jsv_exception_text(e->ctx, e->string_fn, e->slice_fn, exc);
	for (size_t i = e->bcur; i < n; i++)
		set_error(&e->bres[i], ENGINE_ERROR,
		          jsv_printf("internal: the batch failed: %s", t ? t : "?"));
	free(t);
	return n;
}

size_t engine_scan_batch(engine *e, const char *const *tx, const size_t *len, size_t n,
                         engine_result *res)
{
	ASSERT_OWNER(e);
	memset(res, 0, n * sizeof *res);
	if (e->dead || n == 0 || n > ENGINE_BATCH_MAX) {
		for (size_t i = 0; i < n; i++)
			set_error(&res[i], ENGINE_ERROR, strdup("internal: bad batch or terminated engine"));
		return n;
	}
	e->btx = tx;
	e->blen = len;
	e->bn = n;
	e->bres = res;
	engine_begin(e, e->timeout_ns); /* scan 0 starts with the entry */
	e->bcur = 0;
	e->gated_out = false;
	JSValueRef exc = NULL;
	JSObjectCallAsFunction(e->ctx, e->batch_fn, NULL, 0, NULL, &exc);
	size_t ran = batch_cut(e, n, exc);
	engine_progress_mark(e, 0, 0);
	e->btx = NULL;
	e->blen = NULL;
	e->bres = NULL;
	engine_arm(e, (double)e->tick_ns / 1e9);
	return ran;
}

void engine_scan(engine *e, const char *tx, size_t tx_len, engine_result *res)
{
	engine_scan_batch(e, &tx, &tx_len, 1, res);
}

/* The classes of the native functions: made once for the process (every
 * object points to its own engine through its private data), without the
 * prototype object JSC would otherwise make for each class in each realm
 * (their objects take Object.prototype of their realm). */
static JSClassRef step_class, settle_class;
static pthread_once_t classes_once = PTHREAD_ONCE_INIT;

static void make_classes(void)
{
	JSClassDefinition def = kJSClassDefinitionEmpty;
	def.attributes = kJSClassAttributeNoAutomaticPrototype;
	def.className = "TxscanStep";
	def.callAsFunction = native_step;
	step_class = JSClassCreate(&def);
	def.className = "TxscanSettle";
	def.callAsFunction = native_settle;
	def.finalize = settle_finalize;
	settle_class = JSClassCreate(&def);
}

bool engine_calls_prepare(engine *e)
{
	pthread_once(&classes_once, make_classes);
	e->step_class = step_class;
	e->settle_class = settle_class;
	for (int k = STEP_LOAD; k <= STEP_BATCH; k++)
		e->steps[k] = (struct step_fn){e, (enum step_kind)k};
	e->keep_value = true;
	e->then_name = jsv_name("then");
	return e->then_name && take_pristine(e);
}
