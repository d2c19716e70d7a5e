/*
 * engine.c - one JavaScriptCore VM running one plugin.
 *
 * Each engine has its own context group, because JSC's watchdog is per group.
 * No JavaScript of txscan's runs in it: loading, init and a batch of scans
 * are each one VM entry into a native function (native_step), which calls
 * the plugin through the C API, drains every microtask the call caused from
 * inside the entry (jsc_private.h), and serialises each scan's result into
 * its answer as soon as it is known. The
 * watchdog is armed once with a "tick" (min(timeout, 10 ms)); JSC starts it
 * on every VM entry and calls on_tick() after that much CPU time. on_tick
 * measures the running scan (its time less what its thread waited for a
 * core, see on_tick) against the timeout and re-arms itself with what is
 * left, so a scan that ends before a tick pays nothing but JSC's own
 * per-entry timer.
 *
 * Heap limit: on each tick, process RSS (one pread) is compared with the RSS
 * baseline read when the batch began (so memory other threads took before
 * does not count); growth past the limit is confirmed with JSC's heap
 * statistics (which walk the heap, so only then) or by growth past twice
 * the limit (JSC's heapSize lags for bombs of small objects). A terminated
 * engine is dead.
 */
#define _GNU_SOURCE
#include "engine.h"

#include "jsc_private.h"
#include "jsval.h"
#include "sbuf.h"

#include <assert.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <glib.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS (10 * 1000000ull)
#define SCAVENGE_MS 1000.0 /* libpas's period for handing memory back (see slow_scavenger) */
#define BACKSTOP_FACTOR 10                  /* x the budget, in wall-clock time */
#define BACKSTOP_MIN_NS (1000 * 1000000ull) /* and at least the budget + 1 s */
#define READINGS_AGE_NS 1000000ull           /* /proc readings re-read after 1 ms */
#define CONSOLE_BURST 100.0      /* lines */
#define CONSOLE_PER_SEC 100.0    /* refill rate */
#define CONSOLE_MAX_LINE 4096    /* bytes; longer lines are cut */

/* What a console method object points to: its engine and its level. */
struct console_fn {
	struct engine *e;
	int level;
};

/* The native functions an engine calls as VM entries: loading, init and a
 * batch of scans, each one entry that the watchdog covers with every
 * microtask it queues (microtasks drained as an API call returns would each
 * get a fresh entry, so a flood would never be stopped). */
enum step_kind { STEP_LOAD, STEP_INIT, STEP_BATCH };
struct step_fn {
	struct engine *e;
	enum step_kind kind;
};

/* A handler of the promise a call returned: which call it answers (one
 * that settles after its call ended answers nothing). Freed with its
 * function object. */
struct settle_fn {
	struct engine *e;
	uint64_t call;
	bool rejected;
};

/* What the engine keeps protected until it is freed. */
enum { KEPT_MAX = 8 };

struct engine {
	JSContextGroupRef group;
	JSGlobalContextRef ctx;
	JSClassRef console_class, step_class, settle_class;
	JSObjectRef string_fn;   /* the pristine String(), to print symbols */
	JSObjectRef then_fn;     /* the pristine Promise.prototype.then */
	JSObjectRef freeze_fn;   /* the pristine Object.freeze */
	JSObjectRef mod, scan_fn, init_fn, pctx, batch_fn;
	JSStringRef then_name;   /* "then", made once: looked up on every object result */
	JSValueRef kept[KEPT_MAX];
	size_t nkept;
	struct console_fn con[ENGINE_LOG_ERROR + 1];
	struct step_fn steps[STEP_BATCH + 1];
	pthread_t owner;
	const engine_config *cfg; /* during engine_new */
	char *step_err;           /* why loading or init failed, when not by an exception */

	/* the call in progress (init, or one scan) */
	uint64_t call;           /* counts calls, twice each: a late settlement is ignored */
	engine_result *ans;      /* where its answer goes */
	bool keep_value;         /* a scan answers its value; init only whether it failed */
	bool settled;            /* the promise it returned has settled */

	char *id, *version;
	uint64_t timeout_ns, tick_ns;
	size_t heap_limit, max_result;
	engine_console_fn console;
	void *console_ud;

	/* the execution in progress: one VM entry (a batch, or load/init) */
	uint64_t budget_ns;      /* time one scan may take, less waits for a core */
	uint64_t entry_wall_ns;  /* when the entry began ... */
	uint64_t entry_wait_ns;  /* ... and the thread's run-queue wait until then */
	uint64_t readings_ns;    /* when entry_wait_ns and rss_baseline were read */
	uint64_t deadline_ns;    /* the current scan's wall-clock backstop */
	bool over_backstop;      /* the kill was the backstop's */
	int sched_fd;            /* /proc/thread-self/schedstat of the owner, or -1 */
	double armed_s;          /* limit the watchdog is armed with */
	engine_status killed;    /* set by on_tick when it terminates */
	size_t rss_baseline;     /* process RSS when the entry began (at most 1 ms old) */
	bool dead;

	/* the batch in progress (engine_scan_batch) */
	const char *const *btx;
	size_t bn;
	engine_result *bres;
	size_t bcur;       /* scan running now */
	uint64_t bstart_ns;

	double tokens;           /* console rate limit */
	uint64_t tokens_at_ns;
	uint64_t console_dropped, console_dropped_reported;
};

#ifdef NDEBUG
#define ASSERT_OWNER(e) ((void)(e))
#else
#define ASSERT_OWNER(e) assert(pthread_equal((e)->owner, pthread_self()))
#endif

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* How long the owner thread has waited on a run queue for a core, in all
 * (the second field of schedstat; one pread). 0 without schedstat. */
static uint64_t runqueue_wait_ns(const engine *e)
{
	char buf[96];
	ssize_t n = e->sched_fd >= 0 ? pread(e->sched_fd, buf, sizeof buf - 1, 0) : -1;
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	unsigned long long run = 0, wait = 0;
	return sscanf(buf, "%llu %llu", &run, &wait) == 2 ? (uint64_t)wait : 0;
}

/* Wall-clock time a scan may take in all, waits for a core included. */
static uint64_t backstop_ns(uint64_t budget_ns)
{
	uint64_t ten = budget_ns * BACKSTOP_FACTOR;
	return ten > budget_ns + BACKSTOP_MIN_NS ? ten : budget_ns + BACKSTOP_MIN_NS;
}

/* ---- process-wide set-up -------------------------------------------- */

static int statm_fd = -1;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* JSC's allocator (libpas) hands free memory back to the kernel every
 * 100 ms. Engines are recycled all the time, so the memory goes back and
 * is faulted in again at once, and each hand-back flushes TLBs on every
 * core: `txscan scan` with the 7 example plugins spent a tenth of its CPU
 * in madvise. Every second keeps the peak RSS within ~8 % and scans
 * 100 000 transactions 30-45 % faster (BENCHMARKS.md). The variable is
 * libpas's own, looked up at run time: without it nothing changes.
 * TXS_SCAVENGE_MS overrides the period. */
static void slow_scavenger(void)
{
	double *period = dlsym(RTLD_DEFAULT, "pas_scavenger_period_in_milliseconds");
	const char *env = getenv("TXS_SCAVENGE_MS");
	double ms = env && atof(env) > 0 ? atof(env) : SCAVENGE_MS;
	if (period)
		*period = ms;
}

/* JSC makes one run loop per thread, on the GLib context that is the
 * thread's default when its first VM is made (a new hidden one otherwise),
 * and destroying a VM hands the deletion of that VM's run-loop timer to
 * this loop (JSRunLoopTimer::Manager::PerVMData). A thread that never runs
 * its loop kept every VM's timer, GSource and dispatched task: ~0.7 KiB of
 * RSS per restart, for ever (BENCHMARKS.md section 12). So each thread that
 * builds engines gets a context of
 * its own, and engine_free runs what is pending there. A thread that
 * already has a default context is left alone (its owner runs it). */
static pthread_key_t loop_key;
static _Thread_local GMainContext *thread_loop;

static void loop_exit(void *ctx)
{
	g_main_context_pop_thread_default(ctx);
	g_main_context_unref(ctx);
}

static void own_loop(void)
{
	if (thread_loop || g_main_context_get_thread_default())
		return;
	thread_loop = g_main_context_new();
	g_main_context_push_thread_default(thread_loop);
	pthread_setspecific(loop_key, thread_loop);
}

/* Runs what is due on this thread's loop: deferred deletions, and JSC's
 * timers (GC, sweeping) of the engine that lives here. */
static void run_loop_work(void)
{
	for (int i = 0; thread_loop && i < 16; i++)
		if (!g_main_context_iteration(thread_loop, FALSE))
			break;
}

static void global_init(void)
{
	pthread_key_create(&loop_key, loop_exit);
	/* Polling traps: termination without signals. Signal-based traps make the
	 * watchdog never fire under TSan and send signals into the host's own
	 * threads; polling measured no slower on this workload. Must be set
	 * before the first VM of the process. */
	setenv("JSC_usePollingTraps", "1", 0);
	/* JSC's top tier (FTL) compiles a function once it has run ~100 000
	 * counts in the tier below; an engine recycled every few thousand scans
	 * pays that compile in every generation and rarely earns it back (JIT
	 * threads took 16 % of the CPU of a busy executor). Ten times later,
	 * only code that stays hot in a long-lived engine gets there: CPU per
	 * scan -7 % (small plugin), -34 % (ethers), -2.5 % throughput for
	 * ethers in an engine never recycled (BENCHMARKS.md section 11). The
	 * environment overrides it. */
	setenv("JSC_thresholdForFTLOptimizeAfterWarmUp", "1000000", 0);
	statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	slow_scavenger();
}

size_t engine_process_rss(void)
{
	char buf[128];
	unsigned long size, resident;
	pthread_once(&once, global_init);
	ssize_t n = statm_fd < 0 ? -1 : pread(statm_fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
		return 0;
	return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* ---- watchdog ---------------------------------------------------------- */

static bool heap_exceeded(engine *e)
{
	size_t rss = engine_process_rss();
	if (rss < e->rss_baseline + e->heap_limit)
		return false;
	if (rss >= e->rss_baseline + 2 * e->heap_limit)
		return true;
	return engine_heap_bytes(e) >= e->heap_limit;
}

static bool on_tick(JSContextRef ctx, void *ud);

static void arm(engine *e, double seconds)
{
	if (seconds == e->armed_s)
		return;
	JSContextGroupSetExecutionTimeLimit(e->group, seconds, on_tick, e);
	e->armed_s = seconds;
}

/* JSC calls this once the thread used the armed CPU time in this VM entry.
 * The scan running now is stopped when the time it took reached its
 * budget, or when its wall-clock backstop passed. Time its thread spent
 * waiting on a run queue for a core beyond a quarter of the budget is not
 * counted: an overloaded machine does not make an innocent scan time out,
 * while the plugin's own GC and JIT threads, which also keep it waiting
 * briefly, do not buy it more time. The entry's whole wait is used (some
 * may predate this scan: the error is in the scan's favour, and the
 * backstop bounds it). */
static bool on_tick(JSContextRef ctx, void *ud)
{
	(void)ctx;
	engine *e = ud;
	uint64_t now = now_ns();
	uint64_t wait = runqueue_wait_ns(e);
	uint64_t waited = wait > e->entry_wait_ns ? wait - e->entry_wait_ns : 0;
	uint64_t grace = e->budget_ns / 4, forgiven = waited > grace ? waited - grace : 0;
	uint64_t took = now - e->bstart_ns;
	uint64_t used = took > forgiven ? took - forgiven : 0;
	if (used >= e->budget_ns || now >= e->deadline_ns) {
		e->killed = ENGINE_TIMEOUT;
		e->over_backstop = used < e->budget_ns;
		return true;
	}
	if (e->heap_limit && heap_exceeded(e)) {
		e->killed = ENGINE_MEMORY;
		return true;
	}
	uint64_t left = e->budget_ns - used, wall_left = e->deadline_ns - now;
	left = left < wall_left ? left : wall_left;
	double next = (double)(left < e->tick_ns ? left : e->tick_ns) / 1e9;
	JSContextGroupSetExecutionTimeLimit(e->group, next, on_tick, e);
	e->armed_s = next;
	return false;
}

/* A VM entry begins: each scan in it (or the one execution) has budget_ns;
 * the watchdog fires no later than that. */
static void begin(engine *e, uint64_t budget_ns)
{
	uint64_t now = now_ns();
	e->budget_ns = budget_ns;
	e->entry_wall_ns = e->bstart_ns = now;
	/* Readings from /proc, up to 1 ms old (a pread each, not per entry):
	 * the RSS baseline, so memory other threads took before does not count
	 * against this entry, and the run-queue wait so far (an older one can
	 * only count up to 1 ms more of waiting in the scan's favour). */
	if (!e->readings_ns || now - e->readings_ns >= READINGS_AGE_NS) {
		if (e->heap_limit)
			e->rss_baseline = engine_process_rss();
		e->entry_wait_ns = runqueue_wait_ns(e);
		e->readings_ns = now;
	}
	e->deadline_ns = now + backstop_ns(budget_ns);
	e->killed = ENGINE_OK;
	e->over_backstop = false;
	double s = (double)(budget_ns < e->tick_ns ? budget_ns : e->tick_ns) / 1e9;
	if (s != e->armed_s) {
		JSContextGroupSetExecutionTimeLimit(e->group, s, on_tick, e);
		e->armed_s = s;
	}
}

/* ---- console ------------------------------------------------------------ */

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

static void console_emit(engine *e, int level, char *msg, size_t len)
{
	if (e->console_dropped != e->console_dropped_reported) {
		char note[96];
		int n = snprintf(note, sizeof note, "[%llu console lines dropped by the rate limit]",
		                 (unsigned long long)(e->console_dropped - e->console_dropped_reported));
		e->console_dropped_reported = e->console_dropped;
		e->console(ENGINE_LOG_WARN, note, (size_t)n, e->console_ud);
	}
	if (len > CONSOLE_MAX_LINE) {
		len = CONSOLE_MAX_LINE;
		memcpy(msg + len - 3, "...", 3);
		msg[len] = '\0';
	}
	e->console(level, msg, len, e->console_ud);
}

/* One console argument as text, as a JavaScript console prints it: a
 * string as it is, an object as its JSON when it has one, anything else (or
 * an object whose JSON throws) as String(v) prints it.
 * NULL once the watchdog has stopped the entry: nothing more may run, and
 * *exc is the termination, for the caller to throw on. */
static char *console_arg(engine *e, JSContextRef ctx, JSValueRef v, size_t *len,
                         JSValueRef *exc)
{
	JSStringRef s = NULL;
	if (JSValueIsObject(ctx, v))
		s = JSValueCreateJSONString(ctx, v, 0, exc);
	if (!s && e->killed == ENGINE_OK && JSValueIsSymbol(ctx, v) && e->string_fn) {
		JSValueRef t = JSObjectCallAsFunction(ctx, e->string_fn, NULL, 1, &v, exc);
		v = t ? t : v;
	}
	if (!s && e->killed == ENGINE_OK)
		s = JSValueToStringCopy(ctx, v, exc);
	if (e->killed != ENGINE_OK) {
		if (s)
			JSStringRelease(s);
		return NULL;
	}
	if (!s) {
		*len = strlen("[unprintable]");
		return strdup("[unprintable]");
	}
	char *p = jsv_utf8(s, len);
	JSStringRelease(s);
	return p;
}

/* console.log and its siblings: the arguments, joined by spaces, go to the
 * host's sink when the rate limit lets the line through (a dropped line is
 * not even formatted). */
static JSValueRef native_console(JSContextRef ctx, JSObjectRef fn, JSObjectRef self,
                                 size_t argc, const JSValueRef argv[], JSValueRef *exc)
{
	(void)self;
	const struct console_fn *cf = JSObjectGetPrivate(fn);
	engine *e = cf ? cf->e : NULL;
	if (!e || !e->console || !console_take_token(e))
		return JSValueMakeUndefined(ctx);
	sbuf line = {0};
	for (size_t i = 0; i < argc && line.len <= CONSOLE_MAX_LINE; i++) {
		size_t len = 0;
		JSValueRef x = NULL;
		char *t = console_arg(e, ctx, argv[i], &len, &x);
		if (!t) {
			*exc = x;
			free(line.p);
			return JSValueMakeUndefined(ctx);
		}
		if (i)
			sb_put(&line, " ", 1);
		sb_put(&line, t, len);
		free(t);
	}
	if (!line.oom)
		console_emit(e, cf->level, line.p ? line.p : (char[]){""}, line.len);
	free(line.p);
	return JSValueMakeUndefined(ctx);
}

/* Runs every queued microtask now, inside the VM entry that is running. */
static void drain_microtasks(JSContextRef ctx)
{
	JSContextGroupRef vm = JSContextGetGroup(ctx);
	txs_jsc_lock_holder lock;
	txs_jsc_lock_holder_init(&lock, vm);
	txs_jsc_drain_microtasks(vm);
	txs_jsc_lock_holder_destroy(&lock);
}

/* ---- errors as the plugin's author reads them --------------------------- */

/* String(v): symbols through the pristine String, which prints them. */
static char *string_of(engine *e, JSContextRef ctx, JSValueRef v, JSValueRef *exc)
{
	if (JSValueIsSymbol(ctx, v) && e->string_fn) {
		JSValueRef t = JSObjectCallAsFunction(ctx, e->string_fn, NULL, 1, &v, exc);
		if (!t || *exc)
			return NULL;
		v = t;
	}
	JSStringRef s = JSValueToStringCopy(ctx, v, exc);
	if (!s)
		return NULL;
	char *p = jsv_utf8(s, NULL);
	JSStringRelease(s);
	return p;
}

/* A thrown value as text: "Name: message" and the plugin's stack lines, or
 * "uncaught <type>: <text>" for a value that is not an object. Getters and
 * toString run (under the watchdog); NULL once the watchdog has stopped the
 * entry, with *exc the termination for the caller to throw on (JavaScript's
 * catch sees a termination that a native function threw). */
static char *error_text(engine *e, JSContextRef ctx, JSValueRef v, JSValueRef *exc)
{
	JSValueRef x = NULL;
	char *name = NULL, *msg = NULL, *st = NULL, *out = NULL;
	if (JSValueIsObject(ctx, v)) {
		JSObjectRef o = (JSObjectRef)v;
		JSValueRef n = jsv_get(ctx, o, "name", &x);
		JSValueRef m = x ? NULL : jsv_get(ctx, o, "message", &x);
		JSValueRef s = x ? NULL : jsv_get(ctx, o, "stack", &x);
		name = x ? NULL : JSValueIsUndefined(ctx, n) ? strdup("Error") : string_of(e, ctx, n, &x);
		msg = x ? NULL : string_of(e, ctx, m, &x);
		st = !x && JSValueIsString(ctx, s) ? string_of(e, ctx, s, &x) : NULL;
		if (st)
			jsv_strip_stack(st);
		if (name && msg)
			out = jsv_printf("%s: %s%s%s", name, msg, st && *st ? "\n" : "", st ? st : "");
	} else {
		char *t = string_of(e, ctx, v, &x);
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
	return out ? out : strdup("uncaught exception that cannot be printed");
}

/* ---- loading, init and scans, in C -------------------------------------- */

/* Protects v until the engine is freed. */
static void keep(engine *e, JSValueRef v)
{
	assert(e->nkept < KEPT_MAX);
	JSValueProtect(e->ctx, v);
	e->kept[e->nkept++] = v;
}

static void drop_kept(engine *e)
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
	if (!e->then_fn || !e->freeze_fn || !e->string_fn)
		return false;
	keep(e, e->then_fn);
	keep(e, e->freeze_fn);
	keep(e, e->string_fn);
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
	keep(e, e->mod);
	keep(e, e->scan_fn);
	if (e->init_fn)
		keep(e, e->init_fn);
}

/* ---- answers ------------------------------------------------------------ */

static void set_error(engine_result *res, engine_status st, char *msg)
{
	res->status = st;
	res->error = msg ? msg : strdup("out of memory");
}

static void killed_result(engine *e, engine_result *res)
{
	e->dead = true;
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

#define NOT_SETTLED "promise did not settle: it waits on something that never comes " \
                    "(txscan has no timers or I/O)"

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
	char *t = error_text(e, ctx, v, &x);
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
		char *t = error_text(e, ctx, x, &x);
		if (t)
			set_error(res, ENGINE_ERROR,
			          jsv_printf("result cannot be serialised as JSON: %s", t));
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
	if (!x && jsv_is_function(ctx, then))
		await_thenable(e, ctx, r, &x);
	if (x)
		answer_error(e, ctx, x, res);
	else if (!jsv_is_function(ctx, then))
		answer_value(e, ctx, r, res);
	return !x && jsv_is_function(ctx, then);
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
	JSValueRef x = NULL;
	JSValueRef r = JSObjectCallAsFunction(ctx, fn, self, argc, argv, &x);
	bool pending = false;
	if (e->killed == ENGINE_OK && x)
		answer_error(e, ctx, x, res);
	else if (e->killed == ENGINE_OK)
		pending = answer_or_await(e, ctx, r, res);
	if (e->killed == ENGINE_OK)
		drain_microtasks(ctx);
	e->call++;
	if (e->killed != ENGINE_OK)
		return false;
	if (pending && !e->settled)
		set_error(res, ENGINE_ERROR, strdup(NOT_SETTLED));
	return true;
}

/* ---- the steps: load, init, a batch of scans ------------------------------ */

/* wrapper.call(globalThis, module, module.exports), its microtasks, then
 * the exports. */
static void step_load(engine *e, JSContextRef ctx, JSValueRef wrapper, JSValueRef *exc)
{
	JSObjectRef module = JSObjectMake(ctx, NULL, NULL);
	JSObjectRef exports = JSObjectMake(ctx, NULL, NULL);
	jsv_set(ctx, module, "exports", exports, kJSPropertyAttributeNone);
	JSValueRef args[2] = {module, exports};
	JSObjectCallAsFunction(ctx, (JSObjectRef)wrapper, JSContextGetGlobalObject(ctx), 2, args, exc);
	if (*exc)
		return;
	drain_microtasks(ctx);
	if (e->killed != ENGINE_OK)
		return;
	JSValueRef m = jsv_get(ctx, module, "exports", exc);
	if (m)
		take_exports(e, ctx, m, exc);
}

/* ctx = {plugin: frozen {id, version}, config}. */
static JSObjectRef make_pctx(engine *e, JSContextRef ctx, JSValueRef *exc)
{
	JSObjectRef plugin = JSObjectMake(ctx, NULL, NULL);
	jsv_set(ctx, plugin, "id", jsv_string(ctx, e->cfg->plugin_id), kJSPropertyAttributeNone);
	jsv_set(ctx, plugin, "version", jsv_string(ctx, e->cfg->plugin_version), kJSPropertyAttributeNone);
	JSObjectCallAsFunction(ctx, e->freeze_fn, NULL, 1, (JSValueRef[]){plugin}, exc);
	JSStringRef cs = JSStringCreateWithUTF8CString(e->cfg->config_json ? e->cfg->config_json : "{}");
	JSValueRef config = JSValueMakeFromJSONString(ctx, cs);
	JSStringRelease(cs);
	if (*exc)
		return NULL;
	if (!config) {
		e->step_err = strdup("config is not valid JSON");
		return NULL;
	}
	JSObjectRef pctx = JSObjectMake(ctx, NULL, NULL);
	jsv_set(ctx, pctx, "plugin", plugin, kJSPropertyAttributeNone);
	jsv_set(ctx, pctx, "config", config, kJSPropertyAttributeNone);
	keep(e, pctx);
	e->pctx = pctx;
	return pctx;
}

/* init(ctx), awaited when it returns a thenable, with every microtask. */
static void step_init(engine *e, JSContextRef ctx)
{
	JSValueRef x = NULL;
	JSObjectRef pctx = make_pctx(e, ctx, &x);
	if (x && e->killed == ENGINE_OK && !e->step_err)
		e->step_err = error_text(e, ctx, x, &x);
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
}

/* Scans the batch's transactions in turn; each answer is in place as soon
 * as it is known, so a kill loses nothing that finished before it. */
static void step_batch(engine *e, JSContextRef ctx)
{
	JSValueRef args[2] = {NULL, e->pctx};
	for (size_t i = 0; i < e->bn; i++) {
		engine_result *res = &e->bres[i];
		JSStringRef s = JSStringCreateWithUTF8CString(e->btx[i]);
		args[0] = JSValueMakeFromJSONString(ctx, s);
		JSStringRelease(s);
		if (!args[0])
			set_error(res, ENGINE_ERROR, strdup("transaction is not valid JSON"));
		else if (!invoke(e, ctx, e->scan_fn, e->mod, 2, args, res))
			return;
		uint64_t now = now_ns();
		res->ms = (double)(now - e->bstart_ns) / 1e6;
		batch_mark_start(e, i + 1, now);
	}
}

/* The native function a step runs in (one VM entry). An exception the
 * plugin threw while loading becomes step_err; a kill is thrown on. */
static JSValueRef native_step(JSContextRef ctx, JSObjectRef fn, JSObjectRef self, size_t argc,
                              const JSValueRef argv[], JSValueRef *exc)
{
	(void)self;
	(void)argc;
	const struct step_fn *sf = JSObjectGetPrivate(fn);
	engine *e = sf->e;
	JSValueRef x = NULL;
	switch (sf->kind) {
	case STEP_LOAD:
		step_load(e, ctx, argv[0], &x);
		break;
	case STEP_INIT:
		step_init(e, ctx);
		break;
	case STEP_BATCH:
		step_batch(e, ctx);
		break;
	}
	if (x && e->killed == ENGINE_OK && !e->step_err)
		e->step_err = error_text(e, ctx, x, &x);
	if (e->killed != ENGINE_OK)
		*exc = x;
	return JSValueMakeUndefined(ctx);
}

/* Runs loading or init as one VM entry. 0, or -1 with *why (owned) set; a
 * kill leaves *why NULL and e->killed set. */
static int run_step(engine *e, enum step_kind kind, JSValueRef arg, char **why)
{
	JSObjectRef fn = JSObjectMake(e->ctx, e->step_class, &e->steps[kind]);
	JSValueRef exc = NULL;
	e->step_err = NULL;
	JSObjectCallAsFunction(e->ctx, fn, NULL, arg ? 1 : 0, &arg, &exc);
	*why = e->step_err;
	e->step_err = NULL;
	if (e->killed != ENGINE_OK) {
		free(*why);
		*why = NULL;
		return -1;
	}
	if (!*why && exc)
		*why = jsv_exception_text(e->ctx, exc);
	return *why ? -1 : 0;
}

/* ---- life cycle ---------------------------------------------------------- */

static JSValueRef evaluate(engine *e, const char *code, const char *url, JSValueRef *exc)
{
	JSStringRef src = JSStringCreateWithUTF8CString(code);
	JSStringRef u = JSStringCreateWithUTF8CString(url);
	JSValueRef v = JSEvaluateScript(e->ctx, src, NULL, u, 1, exc);
	JSStringRelease(src);
	JSStringRelease(u);
	return v;
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

/* The classes of the native functions, and the globals, before any
 * JavaScript runs. */
static int prepare(engine *e, char **err)
{
	JSClassDefinition def = kJSClassDefinitionEmpty;
	def.className = "Function"; /* what Object.prototype.toString reports, as for functions */
	def.callAsFunction = native_console;
	e->console_class = JSClassCreate(&def);
	def.className = "TxscanStep";
	def.callAsFunction = native_step;
	e->step_class = JSClassCreate(&def);
	def.className = "TxscanSettle";
	def.callAsFunction = native_settle;
	def.finalize = settle_finalize;
	e->settle_class = JSClassCreate(&def);
	for (int k = STEP_LOAD; k <= STEP_BATCH; k++)
		e->steps[k] = (struct step_fn){e, (enum step_kind)k};
	e->keep_value = true;
	e->then_name = JSStringCreateWithUTF8CString("then");
	const char *failed = take_pristine(e) ? install_globals(e)
	                                      : "String, Promise.prototype.then, Object.freeze";
	if (failed) {
		*err = jsv_printf("internal: cannot set up the plugin's globals: %s", failed);
		return -1;
	}
	return 0;
}

/* Wraps the source as CommonJS on its own first line, so line numbers in
 * stack traces match the file, and runs it. */
static int load_module(engine *e, const engine_config *cfg, char **err)
{
	static const char head[] = "(function (module, exports) {";
	static const char tail[] = "\n})";
	size_t n = sizeof head - 1 + cfg->source_len + sizeof tail;
	char *code = malloc(n);
	if (!code) {
		*err = strdup("out of memory");
		return -1;
	}
	memcpy(code, head, sizeof head - 1);
	memcpy(code + sizeof head - 1, cfg->source, cfg->source_len);
	memcpy(code + sizeof head - 1 + cfg->source_len, tail, sizeof tail);
	JSValueRef exc = NULL;
	begin(e, (uint64_t)cfg->init_timeout_ms * 1000000ull);
	JSValueRef wrapper = evaluate(e, code, cfg->filename, &exc);
	free(code);
	char *why = NULL;
	if (!wrapper || exc)
		why = jsv_exception_text(e->ctx, exc);
	else if (run_step(e, STEP_LOAD, wrapper, &why) == 0)
		return 0;
	if (e->killed != ENGINE_OK) {
		*err = jsv_printf("%s: loading the module timed out after %u ms", cfg->filename,
		                  cfg->init_timeout_ms);
		return -1;
	}
	bool located = why && strncmp(why, cfg->filename, strlen(cfg->filename)) == 0;
	*err = jsv_printf("%s%s%s", located ? "" : cfg->filename, located ? "" : ": ",
	                  why ? why : "failed to load");
	free(why);
	return -1;
}

static int run_init(engine *e, const engine_config *cfg, char **err)
{
	begin(e, (uint64_t)cfg->init_timeout_ms * 1000000ull);
	char *why = NULL;
	int rc = run_step(e, STEP_INIT, NULL, &why);
	arm(e, (double)e->tick_ns / 1e9);
	if (rc == 0)
		return 0;
	if (e->killed != ENGINE_OK) {
		engine_result res = {0};
		killed_result(e, &res);
		why = res.error;
	}
	*err = jsv_printf("%s: init(ctx) failed: %s", cfg->filename, why ? why : "out of memory");
	free(why);
	return -1;
}

static int setup_context(engine *e, const engine_config *cfg)
{
	e->owner = pthread_self();
	e->sched_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	e->id = strdup(cfg->plugin_id);
	e->version = strdup(cfg->plugin_version);
	e->timeout_ns = (uint64_t)cfg->timeout_ms * 1000000ull;
	e->tick_ns = e->timeout_ns < TICK_NS ? e->timeout_ns : TICK_NS;
	e->heap_limit = (size_t)cfg->heap_limit_mb << 20;
	e->max_result = cfg->max_result_bytes;
	e->console = cfg->console;
	e->console_ud = cfg->console_userdata;
	e->tokens = CONSOLE_BURST;
	e->tokens_at_ns = now_ns();
	e->group = JSContextGroupCreate();
	e->ctx = e->group ? JSGlobalContextCreateInGroup(e->group, NULL) : NULL;
	if (!e->id || !e->version || !e->ctx)
		return -1;
	JSStringRef msg = JSStringCreateWithUTF8CString(
	    "eval and new Function are disabled in txscan plugins");
	JSGlobalContextSetEvalEnabled(e->ctx, false, msg);
	JSStringRelease(msg);
	return 0;
}

int engine_new(engine **out, const engine_config *cfg, char **err)
{
	*out = NULL;
	*err = NULL;
	pthread_once(&once, global_init);
	own_loop();
	engine *e = calloc(1, sizeof *e);
	if (!e || setup_context(e, cfg) < 0) {
		*err = strdup("cannot create a JavaScriptCore context");
		goto fail;
	}
	e->cfg = cfg;
	if (prepare(e, err) < 0 || load_module(e, cfg, err) < 0 || run_init(e, cfg, err) < 0)
		goto fail;
	e->cfg = NULL;
	e->batch_fn = JSObjectMake(e->ctx, e->step_class, &e->steps[STEP_BATCH]);
	keep(e, e->batch_fn);
	*out = e;
	return 0;
fail:
	engine_free(e);
	if (!*err)
		*err = strdup("out of memory");
	return -1;
}

/* The scan that was running when the batch ended without finishing: the
 * engine was killed, or (never expected) an exception escaped. */
static size_t batch_cut(engine *e, size_t n, JSValueRef exc)
{
	if (e->bcur >= n)
		return n;
	engine_result *res = &e->bres[e->bcur];
	engine_result_clear(res);
	if (e->killed != ENGINE_OK) {
		killed_result(e, res);
		res->ms = (double)(now_ns() - e->bstart_ns) / 1e6;
		return e->bcur + 1;
	}
	char *t = jsv_exception_text(e->ctx, exc);
	for (size_t i = e->bcur; i < n; i++)
		set_error(&e->bres[i], ENGINE_ERROR,
		          jsv_printf("internal: the batch failed: %s", t ? t : "?"));
	free(t);
	return n;
}

size_t engine_scan_batch(engine *e, const char *const *tx, size_t n, engine_result *res)
{
	ASSERT_OWNER(e);
	memset(res, 0, n * sizeof *res);
	if (e->dead || n == 0 || n > ENGINE_BATCH_MAX) {
		for (size_t i = 0; i < n; i++)
			set_error(&res[i], ENGINE_ERROR, strdup("internal: bad batch or terminated engine"));
		return n;
	}
	e->btx = tx;
	e->bn = n;
	e->bres = res;
	begin(e, e->timeout_ns); /* scan 0 starts with the entry */
	e->bcur = 0;
	JSValueRef exc = NULL;
	JSObjectCallAsFunction(e->ctx, e->batch_fn, NULL, 0, NULL, &exc);
	size_t ran = batch_cut(e, n, exc);
	e->btx = NULL;
	e->bres = NULL;
	arm(e, (double)e->tick_ns / 1e9);
	return ran;
}

void engine_scan(engine *e, const char *tx, size_t tx_len, engine_result *res)
{
	(void)tx_len;
	engine_scan_batch(e, &tx, 1, res);
}

bool engine_dead(const engine *e)
{
	return e->dead;
}

size_t engine_heap_bytes(engine *e)
{
	ASSERT_OWNER(e);
	JSObjectRef st = JSGetMemoryUsageStatistics(e->ctx);
	if (!st)
		return 0;
	JSValueRef heap = jsv_prop(e->ctx, st, "heapSize");
	JSValueRef extra = jsv_prop(e->ctx, st, "extraMemorySize");
	double h = heap ? JSValueToNumber(e->ctx, heap, NULL) : 0;
	double x = extra ? JSValueToNumber(e->ctx, extra, NULL) : 0;
	return (size_t)((h > 0 ? h : 0) + (x > 0 ? x : 0));
}

uint64_t engine_console_dropped(const engine *e)
{
	return e->console_dropped;
}

void engine_free(engine *e)
{
	if (!e)
		return;
	ASSERT_OWNER(e);
	if (e->ctx) {
		drop_kept(e);
		JSGlobalContextRelease(e->ctx);
	}
	if (e->group)
		JSContextGroupRelease(e->group);
	if (e->then_name)
		JSStringRelease(e->then_name);
	if (e->console_class)
		JSClassRelease(e->console_class);

	if (e->step_class)
		JSClassRelease(e->step_class);
	if (e->settle_class)
		JSClassRelease(e->settle_class);
	if (e->sched_fd >= 0)
		close(e->sched_fd);
	free(e->id);
	free(e->version);
	free(e);
	run_loop_work();
}

void engine_result_clear(engine_result *r)
{
	free(r->json);
	free(r->error);
	memset(r, 0, sizeof *r);
}
