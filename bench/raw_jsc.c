/*
 * raw_jsc.c - the ceiling: the same plugin driven by a bare JavaScriptCore
 * C-API loop on one thread, with nothing txscan adds (no executor thread, no
 * queue, no C-side calling code, no watchdog unless --watchdog, no eval ban, no
 * recycling). Per call: the transaction's JSON text goes in as a JS string,
 * JSON.parse, scanTransaction(tx, ctx), JSON.stringify, and the result is
 * copied out as UTF-8, which is the least any host has to do.
 *
 *   raw_jsc call    PLUGIN_DIR TX.jsonl [--seconds S] [--warmup N] [--watchdog] [--polling]
 *   raw_jsc cold    PLUGIN_DIR TX.jsonl [--contexts C] [--calls N]
 *   raw_jsc restart PLUGIN_DIR [--n N] [--polling] [--watchdog] [--loop] [--realm]
 *                   [--prepared] [--txscan-heap] [--nap-us U] [--scan TX.jsonl]
 *
 * call:    calls/s in steady state (transactions round-robin over the file).
 *          --watchdog arms JSC's execution time limit once (50 ms, as txscan's
 *          default timeout), which JSC then starts on every VM entry.
 * cold:    the first N calls on fresh contexts (what a recycled engine pays
 *          before the JIT has warmed up again).
 * restart: create a context group + global context, load the module, run
 *          init, destroy: the floor for txs_executor_restart. --watchdog
 *          arms the execution time limit on each context before loading;
 *          --loop gives the thread a GLib context of its own and runs what
 *          is pending there after each destroy, as txscan's engine threads
 *          do (without it JSC's deferred per-VM deletions pile up).
 *          --realm: every new context is a new global context in the first
 *          one's group (one VM for all): the floor for a fresh realm, with
 *          no VM ever rebuilt. --prepared (with --realm): each realm is
 *          built (module and init) before the timer starts, as txscan's
 *          idle lane builds the next one (engine_prepare_realm); what is
 *          timed is the old context's release. --nap-us sleeps U us after each (untimed),
 *          as a thread that builds on request waits between requests: on
 *          this machine the next build then runs ~30 % slower (section 38).
 *          --scan: one call on each new context after it is timed, the
 *          transactions in turn, as `bench_executor restart PLUGIN TX`
 *          scans once after each restart (the cold scan evicts what the
 *          next build would have found in the caches).
 * --polling sets JSC_usePollingTraps=1 (what txscan's engine sets) before
 * the first VM; --txscan-heap sets JSC's heap as txscan's engine does
 * (src/engine/engine.c, global_init: JSC's default heap growth, not its
 * "aggressive" mode, and one GC marker), so that a floor collects as
 * often as txscan's engines: without it a realm loop's young generation
 * grows to 8 MB on this machine, and it collects 8 times less often.
 */
#define _GNU_SOURCE
#include "common.h"

#include <JavaScriptCore/JavaScript.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exported-but-private (JSContextRefPrivate.h), as in src/jsc_private.h. */
typedef bool (*JSShouldTerminateCallback)(JSContextRef ctx, void *context);
JS_EXPORT void JSContextGroupSetExecutionTimeLimit(JSContextGroupRef group, double limit,
                                                   JSShouldTerminateCallback callback,
                                                   void *context);

typedef struct raw {
	JSContextGroupRef group;
	JSGlobalContextRef ctx;
	JSObjectRef run; /* function (text) -> JSON text of the result */
} raw;

static const char RUNNER[] =
    "(function (wrapper, g, ctxJson) {\n"
    "  var module = {exports: {}};\n"
    "  wrapper.call(g, module, module.exports);\n"
    "  var m = module.exports;\n"
    "  if (typeof m.scanTransaction !== 'function' && m.default) m = m.default;\n"
    "  var ctx = JSON.parse(ctxJson);\n"
    "  if (typeof m.init === 'function') m.init(ctx);\n"
    "  var scan = m.scanTransaction;\n"
    "  return function (text) {\n"
    "    var r = scan.call(m, JSON.parse(text), ctx);\n"
    "    return JSON.stringify(r === undefined ? null : r);\n"
    "  };\n"
    "})";

static char *exc_text(JSContextRef ctx, JSValueRef exc)
{
	static char buf[2048];
	JSStringRef s = exc ? JSValueToStringCopy(ctx, exc, NULL) : NULL;
	if (!s)
		return "unknown exception";
	JSStringGetUTF8CString(s, buf, sizeof buf);
	JSStringRelease(s);
	return buf;
}

static JSValueRef eval_string(JSContextRef ctx, JSStringRef src, const char *url)
{
	JSStringRef u = JSStringCreateWithUTF8CString(url);
	JSValueRef exc = NULL;
	JSValueRef v = JSEvaluateScript(ctx, src, NULL, u, 1, &exc);
	JSStringRelease(u);
	if (!v || exc)
		bench_die("%s: %s", url, exc_text(ctx, exc));
	return v;
}

/* Realms (--realm) take the texts made for the first context: a host
 * keeps them for the realms of a VM, as txscan's engine does (JSC's
 * UTF-8 decoding of the source is not part of a realm's floor). */
static struct {
	JSStringRef code, runner, ctx_json;
} kept;

static bool never_terminate(JSContextRef ctx, void *ud)
{
	(void)ctx;
	(void)ud;
	return false;
}

/* A new global context: in a new group, or in group (a realm) when not
 * NULL. */
static void raw_context_in(raw *r, JSContextGroupRef group)
{
	r->group = group ? JSContextGroupRetain(group) : JSContextGroupCreate();
	r->ctx = JSGlobalContextCreateInGroup(r->group, NULL);
}

/* The plugin loaded and init run in r's context. */
static void raw_load(raw *r, const bench_plugin *p, bool watchdog, JSContextGroupRef group)
{
	static const char head[] = "(function (module, exports) {";
	static const char tail[] = "\n})";
	if (watchdog)
		JSContextGroupSetExecutionTimeLimit(r->group, 0.05, never_terminate, NULL);
	if (!group || !kept.code) {
		size_t n = sizeof head - 1 + p->source_len + sizeof tail;
		char *code = malloc(n);
		memcpy(code, head, sizeof head - 1);
		memcpy(code + sizeof head - 1, p->source, p->source_len);
		memcpy(code + sizeof head - 1 + p->source_len, tail, sizeof tail);
		char *ctx_json = NULL;
		if (asprintf(&ctx_json, "{\"plugin\":{\"id\":\"%s\",\"version\":\"%s\"},\"config\":%s}",
		             p->id, p->version, p->config_json) < 0)
			bench_die("out of memory");
		if (kept.code) {
			JSStringRelease(kept.code);
			JSStringRelease(kept.runner);
			JSStringRelease(kept.ctx_json);
		}
		kept.code = JSStringCreateWithUTF8CString(code);
		kept.runner = JSStringCreateWithUTF8CString(RUNNER);
		kept.ctx_json = JSStringCreateWithUTF8CString(ctx_json);
		free(code);
		free(ctx_json);
	}
	JSValueRef wrapper = eval_string(r->ctx, kept.code, p->filename);
	JSObjectRef runner = (JSObjectRef)eval_string(r->ctx, kept.runner, "raw:runner");
	JSValueRef args[3] = {wrapper, JSContextGetGlobalObject(r->ctx),
	                      JSValueMakeString(r->ctx, kept.ctx_json)};
	JSValueRef exc = NULL;
	JSValueRef run = JSObjectCallAsFunction(r->ctx, runner, NULL, 3, args, &exc);
	if (!run || exc || !JSValueIsObject(r->ctx, run))
		bench_die("%s: load/init: %s", p->filename, exc_text(r->ctx, exc));
	r->run = (JSObjectRef)run;
	JSValueProtect(r->ctx, r->run);
}

/* A new context (see raw_context_in) with the plugin loaded and init run. */
static void raw_new_in(raw *r, const bench_plugin *p, bool watchdog, JSContextGroupRef group)
{
	raw_context_in(r, group);
	raw_load(r, p, watchdog, group);
}

static void raw_new(raw *r, const bench_plugin *p, bool watchdog)
{
	raw_new_in(r, p, watchdog, NULL);
}

static void raw_free(raw *r)
{
	JSValueUnprotect(r->ctx, r->run);
	JSGlobalContextRelease(r->ctx);
	JSContextGroupRelease(r->group);
}

/* One scan; returns the result's length (and checks it is not an error). */
static size_t raw_call(raw *r, const char *tx)
{
	JSStringRef s = JSStringCreateWithUTF8CString(tx);
	JSValueRef arg = JSValueMakeString(r->ctx, s);
	JSStringRelease(s);
	JSValueRef exc = NULL;
	JSValueRef v = JSObjectCallAsFunction(r->ctx, r->run, NULL, 1, &arg, &exc);
	if (!v || exc)
		bench_die("scanTransaction threw: %s", exc_text(r->ctx, exc));
	JSStringRef out = JSValueToStringCopy(r->ctx, v, NULL);
	size_t cap = JSStringGetMaximumUTF8CStringSize(out);
	char *text = malloc(cap);
	size_t n = JSStringGetUTF8CString(out, text, cap);
	JSStringRelease(out);
	free(text);
	return n;
}

static int mode_call(int argc, char **argv)
{
	bench_plugin p;
	bench_lines tx;
	bench_plugin_load(&p, argv[2]);
	bench_lines_load(&tx, argv[3]);
	double seconds = bench_opt_num(argc, argv, "--seconds", 3);
	long warmup = (long)bench_opt_num(argc, argv, "--warmup", 20000);
	bool watchdog = bench_flag(argc, argv, "--watchdog");
	raw r;
	raw_new(&r, &p, watchdog);
	size_t k = 0, out_bytes = 0;
	for (long i = 0; i < warmup; i++, k = k + 1 == tx.n ? 0 : k + 1)
		out_bytes = raw_call(&r, tx.line[k]);
	uint64_t limit = (uint64_t)(seconds * 1e9);
	uint64_t t0 = bench_now_ns(), c0 = bench_cpu_ns(), t = 0;
	long calls = 0;
	while (t < limit) {
		for (int j = 0; j < 256; j++, k = k + 1 == tx.n ? 0 : k + 1)
			out_bytes = raw_call(&r, tx.line[k]);
		calls += 256;
		t = bench_now_ns() - t0;
	}
	uint64_t cpu = bench_cpu_ns() - c0;
	raw_free(&r);
	bench_json_begin("raw_jsc", watchdog ? "call_watchdog" : "call");
	bench_json_str("plugin", p.id);
	bench_json_int("txs", (long long)tx.n);
	bench_json_int("calls", calls);
	bench_json_num("seconds", (double)t / 1e9);
	bench_json_num("per_s", (double)calls / ((double)t / 1e9));
	bench_json_num("us_per_call", (double)t / 1e3 / (double)calls);
	bench_json_num("cpu_us_per_call", (double)cpu / 1e3 / (double)calls);
	bench_json_int("polling_traps", getenv("JSC_usePollingTraps") != NULL);
	bench_json_int("result_bytes", (long long)out_bytes);
	bench_json_end();
	bench_plugin_free(&p);
	bench_lines_free(&tx);
	return 0;
}

static int mode_cold(int argc, char **argv)
{
	bench_plugin p;
	bench_lines tx;
	bench_plugin_load(&p, argv[2]);
	bench_lines_load(&tx, argv[3]);
	int contexts = (int)bench_opt_num(argc, argv, "--contexts", 20);
	long calls = (long)bench_opt_num(argc, argv, "--calls", 1000);
	double first = 0, all = 0;
	for (int c = 0; c < contexts; c++) {
		raw r;
		raw_new(&r, &p, false);
		uint64_t t0 = bench_now_ns();
		raw_call(&r, tx.line[0]);
		uint64_t t1 = bench_now_ns();
		for (long i = 1; i < calls; i++)
			raw_call(&r, tx.line[(size_t)i % tx.n]);
		uint64_t t2 = bench_now_ns();
		first += (double)(t1 - t0) / 1e3;
		all += (double)(t2 - t0) / 1e3;
		raw_free(&r);
	}
	bench_json_begin("raw_jsc", "cold");
	bench_json_str("plugin", p.id);
	bench_json_int("contexts", contexts);
	bench_json_int("calls", calls);
	bench_json_num("first_call_us", first / contexts);
	bench_json_num("us_per_call", all / contexts / (double)calls);
	bench_json_end();
	bench_plugin_free(&p);
	bench_lines_free(&tx);
	return 0;
}

static int mode_restart(int argc, char **argv)
{
	bench_plugin p;
	bench_plugin_load(&p, argv[2]);
	long n = (long)bench_opt_num(argc, argv, "--n", 500);
	bool watchdog = bench_flag(argc, argv, "--watchdog");
	bool realm = bench_flag(argc, argv, "--realm");
	bool prepared = realm && bench_flag(argc, argv, "--prepared");
	long nap_us = (long)bench_opt_num(argc, argv, "--nap-us", 0);
	const char *scan_path = bench_opt(argc, argv, "--scan", NULL);
	bench_lines tx = {0};
	if (scan_path)
		bench_lines_load(&tx, scan_path);
	struct timespec nap = {.tv_sec = nap_us / 1000000, .tv_nsec = (nap_us % 1000000) * 1000};
	GMainContext *loop = bench_flag(argc, argv, "--loop") ? g_main_context_new() : NULL;
	if (loop)
		g_main_context_push_thread_default(loop);
	double *ms = malloc((size_t)n * sizeof *ms);
	raw first;
	uint64_t t0 = bench_now_ns();
	raw_new(&first, &p, watchdog);
	double first_ms = (double)(bench_now_ns() - t0) / 1e6;
	raw cur = first;
	long rss0 = bench_rss_kb(), rss_1k = -1;
	for (long i = 0; i < n; i++) {
		if (i == 1000)
			rss_1k = bench_rss_kb();
		/* as txscan does it: build the new engine, then destroy the old one */
		raw next;
		if (prepared) /* untimed: built ahead, as txscan's idle lane does */
			raw_new_in(&next, &p, false, cur.group);
		t0 = bench_now_ns();
		if (!prepared)
			raw_new_in(&next, &p, watchdog && !realm, realm ? cur.group : NULL);
		raw_free(&cur);
		for (int k = 0; loop && k < 16 && g_main_context_iteration(loop, FALSE); k++)
			;
		cur = next;
		ms[i] = (double)(bench_now_ns() - t0) / 1e6;
		if (nap.tv_nsec)
			nanosleep(&nap, NULL);
		if (scan_path)
			raw_call(&cur, tx.line[(size_t)i % tx.n]);
	}
	raw_free(&cur);
	if (scan_path)
		bench_lines_free(&tx);
	long rss1 = bench_rss_kb();
	double sum = 0;
	for (long i = 0; i < n; i++)
		sum += ms[i];
	bench_json_begin("raw_jsc", "restart");
	bench_json_str("plugin", p.id);
	bench_json_int("watchdog", watchdog);
	bench_json_int("loop", loop != NULL);
	bench_json_int("realm", realm);
	bench_json_int("prepared", prepared);
	bench_json_int("nap_us", nap_us);
	bench_json_int("scan", scan_path != NULL);
	bench_json_int("n", n);
	bench_json_num("first_ms", first_ms);
	bench_json_num("mean_ms", sum / (double)n);
	bench_json_num("p50_ms", bench_percentile(ms, (size_t)n, 50));
	bench_json_num("p99_ms", bench_percentile(ms, (size_t)n, 99));
	bench_json_num("max_ms", ms[n - 1]);
	bench_json_int("rss_start_kb", rss0);
	bench_json_int("rss_end_kb", rss1);
	if (rss_1k >= 0)
		bench_json_int("rss_growth_after_1k_kb", rss1 - rss_1k);
	bench_json_end();
	free(ms);
	bench_plugin_free(&p);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		bench_die("usage: raw_jsc call|cold|restart PLUGIN_DIR [TX.jsonl] [options]");
	if (bench_flag(argc, argv, "--polling"))
		setenv("JSC_usePollingTraps", "1", 1);
	if (bench_flag(argc, argv, "--txscan-heap")) {
		setenv("JSC_aggressiveHeapThresholdInMB", "4294967295", 0);
		setenv("JSC_numberOfGCMarkers", "1", 0);
	}
	if (!strcmp(argv[1], "call") && argc >= 4)
		return mode_call(argc, argv);
	if (!strcmp(argv[1], "cold") && argc >= 4)
		return mode_cold(argc, argv);
	if (!strcmp(argv[1], "restart"))
		return mode_restart(argc, argv);
	bench_die("unknown mode or missing arguments: %s", argv[1]);
}
