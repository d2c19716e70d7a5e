/*
 * engine.c - one JavaScriptCore VM running one plugin.
 *
 * Each engine has its own context group, because JSC's watchdog is per group.
 * This file builds and destroys engines and keeps their time and memory:
 * the plugin itself is called from src/calls.c, and what it sees of the
 * world is set up by src/sandbox.c (struct engine: src/engine_impl.h). The
 * watchdog is armed once with a "tick" (min(timeout, 10 ms)); JSC starts it
 * on every VM entry and calls on_tick() after that much CPU time. on_tick
 * measures the running scan (its time less what its thread waited for a
 * core, see on_tick) against the timeout and re-arms itself with what is
 * left, so a scan that ends before a tick pays nothing but JSC's own
 * per-entry timer.
 *
 * Heap limit: on each tick, process RSS (one pread) is compared with the RSS
 * baseline read when the batch began (so memory other threads took before
 * does not count); growth past the limit is only a trigger: the verdict is
 * JSC's own count of this engine's heap (heap statistics, which walk the
 * heap, so only then), so that a neighbour's memory is never blamed on this
 * plugin (see heap_exceeded). A terminated engine is dead.
 */
#define _GNU_SOURCE
#include "engine_impl.h"

#include "jsc_private.h"
#include "jsval.h"
#include "util/procstat.h"
#include "util/stall.h"
#include "util/utf8.h"

#include <assert.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <glib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The engine thread's time on a CPU and waiting for one (schedstat); 0s
 * when unreadable. */
static void schedstat(const engine *e, uint64_t *run_ns, uint64_t *wait_ns)
{
	if (!procstat_schedstat(e->vm->sched_fd, run_ns, wait_ns))
		*run_ns = *wait_ns = 0;
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

/* libpas gives each thread, for each size class of JSC's main malloc heap
 * ("intrinsic"), a cache of up to 1.6 MB of pages that thread emptied (its
 * "view cache"). Pages in it stay committed and marked in use for
 * allocation, so no other thread and no scavenge can take them back, and
 * an engine's restart frees small objects in patterns that keep adding
 * pages to it: RSS grew ~1.2-1.9 MB over 19,000 restarts, all of it pages
 * of 32- and 64-byte objects with nothing allocated in them, held by the
 * caches (libpas's own status report). Without the cache, an emptied page
 * goes back to the heap's shared directory, where any thread reuses it and
 * the scavenger returns it (BENCHMARKS.md section 18). A directory's
 * capacity is read when libpas makes it, on the heap's first allocation of
 * that size, so this runs before main (JSC allocates nothing when it is
 * loaded). Looked up at run time: without the symbols nothing changes.
 * TXS_PAS_VIEW_CACHE=1 keeps libpas's default. */
__attribute__((constructor)) static void no_view_caches(void)
{
	if (getenv("TXS_PAS_VIEW_CACHE"))
		return;
	void *aggressive = dlsym(RTLD_DEFAULT, "pas_heap_runtime_config_aggressive_view_cache_capacity");
	void *zero = dlsym(RTLD_DEFAULT, "pas_heap_runtime_config_zero_view_cache_capacity");
	void **config = dlsym(RTLD_DEFAULT, "bmalloc_intrinsic_runtime_config");
	if (!aggressive || !zero || !config)
		return;
	/* pas_basic_heap_runtime_config: the capacity callback is one of its
	 * first five words; found by its value rather than a guessed offset. */
	for (int i = 0; i < 5; i++)
		if (config[i] == aggressive) {
			config[i] = zero;
			return;
		}
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

/* JSC's full-collection timer asks WTF's MemoryPressureHandler, whose
 * first use builds a timer on WTF's main run loop; only WebKit's own
 * start-up makes that loop, so in txscan the first such timer to fire (in
 * a VM that outlives one of its realms, engine_new_realm) read a null
 * pointer and crashed the process (fuzz_plugin_source found it). The first
 * thread that builds an engine, its own GLib context already pushed,
 * becomes WTF's main run loop (unless the host process made one), and the
 * handler is built at once: its timer (never started) holds that run loop,
 * and the run loop its context, after the thread ends. Looked up at run
 * time, like the libpas tweaks: without the symbols nothing changes. */
static pthread_once_t main_loop_once = PTHREAD_ONCE_INIT;

static void main_run_loop(void)
{
	void *(*main_loop)(void), (*init_main)(void), *(*pressure)(void);
	*(void **)&main_loop = dlsym(RTLD_DEFAULT, "_ZN3WTF7RunLoop13mainSingletonEv");
	*(void **)&init_main = dlsym(RTLD_DEFAULT, "_ZN3WTF7RunLoop14initializeMainEv");
	*(void **)&pressure = dlsym(RTLD_DEFAULT, "_ZN3WTF21MemoryPressureHandler9singletonEv");
	if (!main_loop || !init_main || !pressure || main_loop())
		return;
	init_main();
	pressure();
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
	/* On a machine with 16 GB of RAM or more JSC sizes each heap
	 * "aggressively": it lets a heap grow about 4x between collections and
	 * its young generation to 8 MB, as fits one browser tab per machine.
	 * txscan runs many small heaps at once, one per plugin: eight engines
	 * cycling 8 MB each outgrow the caches and keep faulting in fresh
	 * pages. JSC's default growth (2x, collections from ~1.6 MB) cut the
	 * CPU of a fan-out to 8 plugins by a fifth and `txscan scan` with the
	 * 7 example plugins by 17 % (peak RSS -38 %), for ~5 % fewer scans/s
	 * with a single plugin, which now collects more often
	 * (BENCHMARKS.md section 20). The environment overrides it. */
	setenv("JSC_aggressiveHeapThresholdInMB", "4294967295", 0);
	/* JSC marks with as many threads as the machine has cores (up to 8):
	 * each collection wakes helper threads, which compete with the other
	 * plugins' threads, to mark heaps of a few hundred KB. Marking on the
	 * collecting thread alone: p99 of back-to-back fresh realms of the small
	 * plugin -4 to -14 %, p50 -4 % (the eden collection that one realm in
	 * ~8 pays: 310 -> 200 us), `txscan scan` with the 7 example plugins, the fan-out to 8
	 * and the heavy plugin's scans the same within noise (8 and 6
	 * interleaved rounds; BENCHMARKS.md section 38). The environment
	 * overrides it. */
	setenv("JSC_numberOfGCMarkers", "1", 0);
	statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	slow_scavenger();
}

size_t engine_process_rss(void)
{
	pthread_once(&once, global_init);
	return procstat_statm_rss(statm_fd);
}

/* Process RSS read at most READINGS_AGE_NS before now: one pread per
 * millisecond for the process, whichever engine asks, rather than one per
 * engine (eight engines in a fan-out read the same number eight times). A
 * reader racing a refresh may see the older value: it is still that fresh. */
size_t engine_process_rss_recent(uint64_t now)
{
	static _Atomic uint64_t read_ns;
	static _Atomic size_t rss;
	uint64_t at = atomic_load_explicit(&read_ns, memory_order_acquire);
	if (at && now >= at && now - at < READINGS_AGE_NS)
		return atomic_load_explicit(&rss, memory_order_relaxed);
	size_t r = engine_process_rss();
	atomic_store_explicit(&rss, r, memory_order_relaxed);
	atomic_store_explicit(&read_ns, now, memory_order_release);
	return r;
}

/* ---- watchdog ---------------------------------------------------------- */

/* Process RSS is shared by every engine of the process: growth past the
 * limit only triggers a look at this engine's own heap (heapSize plus
 * extraMemorySize, where JSC counts array buffers), which alone decides.
 * When the growth was not this engine's, the baseline moves up so that the
 * next look comes only after as much growth again as this engine has room
 * left (a neighbour's 600 MB costs one heap walk here, not one per tick). */
static bool heap_exceeded(engine *e)
{
	size_t rss = engine_process_rss();
	if (rss < e->rss_baseline + e->heap_limit)
		return false;
	size_t own = engine_heap_bytes(e);
	if (own >= e->heap_limit)
		return true;
	e->rss_baseline = rss - own;
	return false;
}

static bool on_tick(JSContextRef ctx, void *ud);

/* Arms the VM's time limit for e. armed_s caches what e armed, valid
 * while e is the engine the VM calls back (vm->armed_by): a realm built
 * in the same VM arms it for itself. */
static void arm(engine *e, double seconds)
{
	if (seconds == e->armed_s && e->vm->armed_by == e)
		return;
	JSContextGroupSetExecutionTimeLimit(e->group, seconds, on_tick, e);
	e->armed_s = seconds;
	e->vm->armed_by = e;
}

void engine_arm(engine *e, double seconds)
{
	arm(e, seconds);
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
	if (e->killed != ENGINE_OK) /* stopped already: what runs after the kill stops at once */
		return true;
	uint64_t now = now_ns();
	uint64_t run, wait;
	schedstat(e, &run, &wait);
	uint64_t waited = wait > e->entry_wait_ns ? wait - e->entry_wait_ns : 0;
	uint64_t grace = e->budget_ns / 4, forgiven = waited > grace ? waited - grace : 0;
	/* time the whole process was stopped (util/stall.h) is not the scan's */
	uint64_t stalled = txs_stall_total_ns() - e->stall_at_ns;
	forgiven += stalled;
	uint64_t took = now - e->bstart_ns;
	uint64_t used = took > forgiven ? took - forgiven : 0;
	if (used >= e->budget_ns || now >= e->deadline_ns + stalled) {
		/* The whole process may have been stopped, and this thread be
		 * the first to run again, before the watcher that reports it
		 * (util/stall.h): since the entry began, this thread was neither
		 * on a CPU nor waiting for one for over TXS_STALL_MIN_NS. Wait
		 * for the report once, a tick of CPU time (CI killed a 150 ms
		 * scan across a 1.5 s SIGSTOP, one run in a few). */
		uint64_t ran = run > e->entry_run_ns ? run - e->entry_run_ns : 0;
		uint64_t away = now - e->entry_wall_ns;
		if (!e->stall_deferred && run && away > ran + waited + TXS_STALL_MIN_NS) {
			e->stall_deferred = true;
			double next = (double)e->tick_ns / 1e9;
			JSContextGroupSetExecutionTimeLimit(e->group, next, on_tick, e);
			e->armed_s = next;
			return false;
		}
		e->killed = ENGINE_TIMEOUT;
		e->over_backstop = used < e->budget_ns;
		return true;
	}
	if (e->heap_limit && heap_exceeded(e)) {
		e->killed = ENGINE_MEMORY;
		return true;
	}
	uint64_t left = e->budget_ns - used, wall_left = e->deadline_ns + stalled - now;
	left = left < wall_left ? left : wall_left;
	double next = (double)(left < e->tick_ns ? left : e->tick_ns) / 1e9;
	JSContextGroupSetExecutionTimeLimit(e->group, next, on_tick, e);
	e->armed_s = next;
	return false;
}

/* A VM entry begins: each scan in it (or the one execution) has budget_ns;
 * the watchdog fires no later than that. */
void engine_begin(engine *e, uint64_t budget_ns)
{
	uint64_t now = now_ns();
	e->budget_ns = budget_ns;
	e->entry_wall_ns = e->bstart_ns = now;
	/* Readings from /proc, up to 1 ms old (a pread each, not per entry):
	 * the RSS baseline, so memory other threads took before does not count
	 * against this entry (the process's, shared by every engine), and this
	 * thread's run-queue wait so far (an older one can only count up to
	 * 1 ms more of waiting in the scan's favour). */
	if (e->heap_limit)
		e->rss_baseline = engine_process_rss_recent(now);
	if (!e->readings_ns || now - e->readings_ns >= READINGS_AGE_NS) {
		schedstat(e, &e->entry_run_ns, &e->entry_wait_ns);
		e->readings_ns = now;
	}
	e->stall_deferred = false;
	e->deadline_ns = now + backstop_ns(budget_ns);
	e->stall_at_ns = txs_stall_total_ns();
	if (e->progress)
		atomic_store_explicit(&e->progress->budget_ns, budget_ns, memory_order_relaxed);
	engine_progress_mark(e, now, 0);
	if (e->progress && e->progress->began)
		e->progress->began();
	e->killed = ENGINE_OK;
	e->over_backstop = false;
	/* The time limit and its callback's engine belong to the VM: arm()
	 * re-arms only when another engine of the VM (a realm) armed it since,
	 * not on every entry (~3 us a batch). */
	arm(e, (double)(budget_ns < e->tick_ns ? budget_ns : e->tick_ns) / 1e9);
}

/* ---- life cycle ---------------------------------------------------------- */

/* The classes of the native functions, and the globals, before any
 * JavaScript runs. */
static int prepare(engine *e, char **err)
{
	const char *failed = engine_calls_prepare(e)
	                         ? engine_sandbox_install(e)
	                         : "String, String.prototype.slice, Promise.prototype.then, Object.freeze";
	if (failed) {
		*err = jsv_printf("%s: internal: cannot set up the plugin's globals: %s",
		                  e->cfg->filename, failed);
		return -1;
	}
	return 0;
}

/* JavaScriptCore reads source as UTF-8 up to the first NUL, and turns
 * text that is not valid UTF-8 into an empty string without a word: both
 * are refused here, saying where. A byte order mark is dropped (as Node
 * does). *src and *len are moved past it. */
static int check_source(const engine_config *cfg, const char **src, size_t *len, char **err)
{
	if (*len >= 3 && !memcmp(*src, "\xef\xbb\xbf", 3)) {
		*src += 3;
		*len -= 3;
	}
	size_t skipped = (size_t)(*src - cfg->source);
	size_t bad = utf8_invalid_at(*src, *len);
	const char *nul = memchr(*src, '\0', bad);
	if (nul)
		*err = jsv_printf("%s: a NUL byte at offset %zu: the source must be UTF-8 text",
		                  cfg->filename, skipped + (size_t)(nul - *src));
	else if (bad < *len)
		*err = jsv_printf("%s: invalid UTF-8 at byte offset %zu (byte 0x%02x)", cfg->filename,
		                  skipped + bad, (unsigned char)(*src)[bad]);
	else
		return 0;
	return -1;
}

/* The source wrapped as a CommonJS function expression, on the source's
 * first line so that line numbers in stack traces match the file. */
static JSStringRef wrap_source(const char *src, size_t len)
{
	static const char head[] = "(function (module, exports) {";
	static const char tail[] = "\n})";
	size_t n = sizeof head - 1 + len + sizeof tail;
	char *code = malloc(n);
	if (!code)
		return NULL;
	memcpy(code, head, sizeof head - 1);
	memcpy(code + sizeof head - 1, src, len);
	memcpy(code + sizeof head - 1 + len, tail, sizeof tail);
	JSStringRef s = JSStringCreateWithUTF8CString(code);
	free(code);
	return s;
}

JSStringRef engine_vm_text(const struct vm_text *t, const char *text, size_t len)
{
	if (!t->s || t->len != len || memcmp(t->bytes, text, len))
		return NULL;
	return JSStringRetain(t->s);
}

bool engine_vm_text_keep(struct vm_text *t, JSStringRef s, const char *text, size_t len)
{
	char *copy = malloc(len ? len : 1);
	if (!copy)
		return false;
	memcpy(copy, text, len);
	if (t->s)
		JSStringRelease(t->s);
	free(t->bytes);
	*t = (struct vm_text){JSStringRetain(s), copy, len, false};
	return true;
}

static void vm_text_clear(struct vm_text *t)
{
	if (t->s)
		JSStringRelease(t->s);
	free(t->bytes);
}

/* The module source, checked and wrapped (e->load_src). A realm takes the
 * one its VM keeps when it is the same; the first realm of a VM keeps its
 * own (check_source is a function of the bytes: the same bytes pass). */
static int wrapped_source(engine *e, const engine_config *cfg, char **err)
{
	if (e->realms && (e->load_src = engine_vm_text(&e->vm->src, cfg->source, cfg->source_len)))
		return 0;
	const char *src = cfg->source;
	size_t len = cfg->source_len;
	if (check_source(cfg, &src, &len, err) < 0)
		return -1;
	e->load_src = wrap_source(src, len);
	if (e->load_src &&
	    (!e->realms || engine_vm_text_keep(&e->vm->src, e->load_src, cfg->source, cfg->source_len)))
		return 0;
	if (e->load_src)
		JSStringRelease(e->load_src);
	e->load_src = NULL;
	*err = jsv_printf("%s: out of memory loading the module", cfg->filename);
	return -1;
}

/* Evaluates the wrapped source and runs it, as one VM entry (calls.c's
 * step_load, which also refuses a source that closes the wrapper). Every
 * failure names the file. */
static int load_module(engine *e, const engine_config *cfg, char **err)
{
	if (wrapped_source(e, cfg, err) < 0)
		return -1;
	engine_begin(e, (uint64_t)cfg->init_timeout_ms * 1000000ull);
	char *why = NULL;
	int rc = engine_run_step(e, STEP_LOAD, &why);
	JSStringRelease(e->load_src);
	e->load_src = NULL;
	if (rc == 0)
		return 0;
	if (e->killed == ENGINE_MEMORY) {
		*err = jsv_printf("%s: loading the module passed the heap limit of %u MB", cfg->filename,
		                  cfg->heap_limit_mb);
		return -1;
	}
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
	engine_begin(e, (uint64_t)cfg->init_timeout_ms * 1000000ull);
	char *why = NULL;
	int rc = engine_run_step(e, STEP_INIT, &why);
	engine_arm(e, (double)e->tick_ns / 1e9);
	if (rc == 0)
		return 0;
	if (e->killed != ENGINE_OK) {
		engine_result res = {0};
		engine_killed_result(e, &res);
		why = res.error;
	}
	*err = jsv_printf("%s: init(ctx) failed: %s", cfg->filename, why ? why : "out of memory");
	free(why);
	return -1;
}

/* The EvalError's message, made once for the process (a JSC string of
 * its 55 characters cost ~10 K instructions per engine, 0.5 % of a fresh
 * realm). */
static JSStringRef eval_msg;
static pthread_once_t eval_msg_once = PTHREAD_ONCE_INIT;

static void make_eval_msg(void)
{
	eval_msg = JSStringCreateWithUTF8CString("eval and new Function are disabled in txscan plugins");
}

static int setup_context(engine *e, const engine_config *cfg, engine *base)
{
	e->owner = pthread_self();
	e->id = strdup(cfg->plugin_id);
	e->version = strdup(cfg->plugin_version);
	e->timeout_ns = (uint64_t)cfg->timeout_ms * 1000000ull;
	e->tick_ns = e->timeout_ns < TICK_NS ? e->timeout_ns : TICK_NS;
	e->heap_limit = (size_t)cfg->heap_limit_mb << 20;
	e->max_result = cfg->max_result_bytes;
	e->console = cfg->console;
	e->console_ud = cfg->console_userdata;
	e->gate = cfg->gate;
	e->progress = cfg->progress;
	e->tokens = CONSOLE_BURST;
	e->tokens_at_ns = now_ns();
	e->group = base ? JSContextGroupRetain(base->group) : JSContextGroupCreate();
	e->vm = base ? base->vm : calloc(1, sizeof *e->vm);
	if (!e->vm)
		return -1;
	if (!base)
		e->vm->sched_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	e->vm->refs++;
	if (base) { /* the same thread's run-queue wait, read under 1 ms ago or not */
		e->entry_wait_ns = base->entry_wait_ns;
		e->entry_run_ns = base->entry_run_ns;
		e->readings_ns = base->readings_ns;
	}
	e->realms = base ? base->realms + 1 : 0;
	e->ctx = e->group ? JSGlobalContextCreateInGroup(e->group, NULL) : NULL;
	if (!e->id || !e->version || !e->ctx)
		return -1;
	pthread_once(&eval_msg_once, make_eval_msg);
	if (!eval_msg)
		return -1;
	JSGlobalContextSetEvalEnabled(e->ctx, false, eval_msg);
	return 0;
}

static bool same_config(const engine_config *a, const engine_config *b)
{
	return a->plugin_id == b->plugin_id && a->plugin_version == b->plugin_version &&
	       a->filename == b->filename && a->source == b->source &&
	       a->source_len == b->source_len && a->config_json == b->config_json &&
	       a->timeout_ms == b->timeout_ms && a->init_timeout_ms == b->init_timeout_ms &&
	       a->heap_limit_mb == b->heap_limit_mb && a->max_result_bytes == b->max_result_bytes &&
	       a->console == b->console && a->console_userdata == b->console_userdata &&
	       a->progress == b->progress && a->gate == b->gate;
}

/* The realm built ahead in base's VM, if it was built for cfg, as base's
 * next realm; else NULL (one built for another config is freed). */
static engine *take_spare(engine *base, const engine_config *cfg)
{
	struct vm_share *vm = base->vm;
	engine *e = vm->spare;
	if (!e)
		return NULL;
	vm->spare = NULL;
	if (!same_config(&vm->spare_cfg, cfg)) {
		engine_free(e);
		return NULL;
	}
	e->realms = base->realms + 1;
	e->tokens = CONSOLE_BURST; /* its init's console lines do not count against its scans */
	e->tokens_at_ns = now_ns();
	return e;
}

/* A new engine: in a new VM, or a new realm (global context) in base's. */
static int engine_build(engine **out, const engine_config *cfg, engine *base, char **err)
{
	*out = NULL;
	*err = NULL;
	pthread_once(&once, global_init);
	own_loop();
	pthread_once(&main_loop_once, main_run_loop);
	engine *e = calloc(1, sizeof *e);
	if (!e || setup_context(e, cfg, base) < 0) {
		*err = jsv_printf("%s: cannot create a JavaScriptCore context", cfg->filename);
		goto fail;
	}
	e->cfg = cfg;
	int rc = prepare(e, err) < 0 || load_module(e, cfg, err) < 0 || run_init(e, cfg, err) < 0;
	engine_progress_mark(e, 0, 0);
	if (rc)
		goto fail;
	e->cfg = NULL;
	e->batch_fn = JSObjectMake(e->ctx, e->step_class, &e->steps[STEP_BATCH]);
	engine_keep(e, e->batch_fn);
	*out = e;
	return 0;
fail:
	if (e && e->killed != ENGINE_OK && e->vm)
		e->vm->poisoned = true; /* a kill in a realm built in base's VM ends base too */
	engine_free(e);
	if (!*err)
		*err = jsv_printf("%s: out of memory", cfg->filename);
	return -1;
}

/* base's VM was stopped (vm_share.poisoned): no realm is built in it;
 * true with *err saying so. */
static bool vm_stopped(const engine *base, const engine_config *cfg, char **err)
{
	if (!base->vm->poisoned)
		return false;
	*err = jsv_printf("%s: no realm is built in a VM that was stopped", cfg->filename);
	return true;
}

int engine_prepare_realm(engine *base, const engine_config *cfg, char **err)
{
	ASSERT_OWNER(base);
	*err = NULL;
	if (base->vm->spare)
		return 0;
	if (vm_stopped(base, cfg, err))
		return -1;
	engine *e;
	if (engine_build(&e, cfg, base, err) != 0)
		return -1;
	base->vm->spare = e;
	base->vm->spare_cfg = *cfg;
	return 0;
}

bool engine_realm_prepared(const engine *e)
{
	return e->vm && e->vm->spare;
}

int engine_new(engine **out, const engine_config *cfg, char **err)
{
	return engine_build(out, cfg, NULL, err);
}

int engine_new_realm(engine *base, engine **out, const engine_config *cfg, char **err)
{
	ASSERT_OWNER(base);
	*out = NULL;
	if (vm_stopped(base, cfg, err)) /* the executor never asks: a dead engine is no base */
		return -1;
	engine *e = take_spare(base, cfg);
	if (e) {
		*out = e;
		*err = NULL;
		return 0;
	}
	return engine_build(out, cfg, base, err);
}

uint32_t engine_realm_count(const engine *e)
{
	return e->realms;
}

bool engine_dead(const engine *e)
{
	return e->dead || (e->vm && e->vm->poisoned);
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
	struct vm_share *vm = e->vm;
	if (vm && vm->spare && vm->spare != e && vm->refs == 2) { /* the VM goes with e */
		engine *spare = vm->spare;
		vm->spare = NULL;
		engine_free(spare);
	}
	webapi_free(e);
	if (e->vm && e->vm->armed_by == e) {
		/* the VM lives on in another realm: it must not call back e */
		if (e->vm->refs > 1)
			JSContextGroupClearExecutionTimeLimit(e->group);
		e->vm->armed_by = NULL;
	}
	if (e->ctx) {
		engine_drop_kept(e);
		JSGlobalContextRelease(e->ctx);
	}
	if (e->group)
		JSContextGroupRelease(e->group);
	if (e->vm && --e->vm->refs == 0) {
		if (e->vm->sched_fd >= 0)
			close(e->vm->sched_fd);
		vm_text_clear(&e->vm->src);
		vm_text_clear(&e->vm->config);
		free(e->vm);
	}
	free(e->id);
	free(e->version);
	free(e);
	run_loop_work();
}

uint64_t engine_backstop_ns(uint64_t budget_ns)
{
	return backstop_ns(budget_ns);
}

void engine_result_clear(engine_result *r)
{
	free(r->json);
	free(r->error);
	memset(r, 0, sizeof *r);
}
