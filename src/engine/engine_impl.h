/*
 * engine_impl.h - what src/engine.c (life cycle, watchdog), src/calls.c
 * (loading, init and scans, called from C) and src/sandbox.c (the plugin's
 * globals and console) share: struct engine and the functions each offers
 * the others. Internal to the engine; src/engine.h is its interface.
 */
#ifndef TXS_ENGINE_IMPL_H
#define TXS_ENGINE_IMPL_H

#include "util/clock.h"
#include "engine.h"

#include <JavaScriptCore/JavaScript.h>
#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

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

/* A native function of the sandbox (console methods, web globals): its
 * engine and what it does (enum web_op, src/engine/webapi.h). */
struct web_fn {
	struct engine *e;
	int op;
};
#define WEB_FNS 48 /* >= WEB_OP_COUNT */
#define WEB_LAZY_MAX 24 /* >= the lazy globals of webapi.c */
#define WEB_TIMERS_MAX 10000
#define CONSOLE_LABELS_MAX 100
#define CONSOLE_LABEL_MAX 1024  /* bytes of a label kept (console.count, console.time) */

/* A pending setTimeout/setInterval (webapi.c): fn and args protected. */
struct web_timer {
	uint32_t id;
	uint64_t due_ns, interval_ns; /* interval_ns 0: a timeout */
	JSObjectRef fn, args;
};

/* console.count and console.time state of one label. */
struct console_label {
	char *name;
	uint64_t count, start_ns;
	bool timing;
};

/* What the engine keeps protected until it is freed. */
enum { KEPT_MAX = 10 };

/* What the realms of one VM share: which engine the VM's time limit calls
 * back now (the limit and its callback argument belong to the VM). On the
 * VM's thread only. */
struct vm_text {
	JSStringRef s;
	char *bytes; /* a copy of what s was made from, to tell it is the same */
	size_t len;
	bool proven; /* src: evaluated to the wrapper function once in this VM */
};
struct vm_share {
	unsigned refs;          /* engines in this VM */
	struct engine *armed_by;
	/* The wrapped module source and the config JSON, as the first realm
	 * of this VM made them: later realms of the same code skip the UTF-8
	 * check and JSC's conversion (~12 % of a realm's instructions). A VM
	 * that never has a realm keeps neither. */
	struct vm_text src, config;
	/* /proc/thread-self/schedstat of the VM's thread, or -1: every engine
	 * of a VM lives on the thread that made it, so its realms share the
	 * file rather than open and close one each (two system calls, a few
	 * us on this VM, per realm). */
	int sched_fd;
	/* The next realm, built ahead in idle time (engine_prepare_realm) for
	 * the config spare_cfg: loaded and init run, never scanned. It holds
	 * a ref. */
	struct engine *spare;
	engine_config spare_cfg;
	/* One of its realms was killed (engine_killed_result, a killed build):
	 * JSC may hold the termination for the VM, which a later entry of any
	 * of its realms meets (an abort in a new global object, a
	 * "terminated" scan). No realm of it is used again: every engine of
	 * the VM is dead (engine_dead), and none is built in it. */
	bool poisoned;
};

struct engine {
	JSContextGroupRef group;
	struct vm_share *vm;
	JSGlobalContextRef ctx;
	JSClassRef console_class, step_class, settle_class; /* the process's (made once) */
	JSObjectRef string_fn;   /* the pristine String(), to print symbols */
	JSObjectRef then_fn;     /* the pristine Promise.prototype.then */
	JSObjectRef freeze_fn;   /* the pristine Object.freeze */
	JSObjectRef slice_fn;    /* the pristine String.prototype.slice, to cut long texts */
	JSObjectRef mod, scan_fn, init_fn, pctx, batch_fn;
	JSStringRef then_name;   /* "then" (jsv_name, not released): looked up on every object result */
	JSValueRef kept[KEPT_MAX];
	size_t nkept;
	struct console_fn con[ENGINE_LOG_ERROR + 1];
	struct step_fn steps[STEP_BATCH + 1];
	pthread_t owner;
	const engine_config *cfg; /* during engine_new */
	JSStringRef load_src;     /* while loading: the module wrapped as a function expression */
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
	bool (*gate)(void *userdata, bool take); /* engine_config.gate */
	bool gated_out; /* the gate stopped the batch at bcur */

	/* the execution in progress: one VM entry (a batch, or load/init) */
	uint64_t budget_ns;      /* time one scan may take, less waits for a core */
	uint64_t entry_wall_ns;  /* when the entry began ... */
	uint64_t entry_wait_ns;  /* ... and the thread's run-queue wait until then */
	uint64_t entry_run_ns;   /* ... and its time on a CPU */
	uint64_t readings_ns;    /* when entry_wait_ns and entry_run_ns were read */
	uint64_t deadline_ns;    /* the current scan's wall-clock backstop */
	bool over_backstop;      /* the kill was the backstop's */
	double armed_s;          /* limit the watchdog is armed with */
	engine_status killed;    /* set by on_tick when it terminates */
	size_t rss_baseline;     /* process RSS when the entry began (at most 1 ms old) */
	bool dead;

	/* the batch in progress (engine_scan_batch) */
	const char *const *btx;
	const size_t *blen;
	size_t bn;
	engine_result *bres;
	size_t bcur;       /* scan running now */
	uint64_t bstart_ns;

	double tokens;           /* console rate limit */
	uint64_t tokens_at_ns;
	uint64_t console_dropped, console_dropped_reported;
	size_t console_cut;      /* UTF-16 units the line being formatted left out (inspect.c) */
	engine_progress *progress; /* may be NULL */
	uint32_t realms;           /* realms this VM had before this one */
	uint64_t stall_at_ns;      /* process stall total when the scan began (util/stall.h) */
	bool stall_deferred;       /* this scan's kill waited once for the stall's report */

	/* web globals and console state (webapi.c, sandbox.c, inspect.c) */
	struct web_fn web_fns[WEB_FNS];
	JSClassRef lazy_class;
	struct web_fn lazy_fns[WEB_LAZY_MAX]; /* op: index of the lazy global's name */
	JSObjectRef function_proto;   /* Function.prototype, for native functions made late */
	JSObjectRef web_js;           /* the JS part's exports once built (protected), or NULL */
	struct web_timer *timers;     /* pending timers of the call in progress */
	size_t ntimers, timers_cap;
	uint32_t timer_seq;
	uint64_t perf_origin_ns;      /* performance's time origin (monotonic), 0 until built */
	double perf_origin_ms;        /* the same, as Unix time in ms */
	struct console_label labels[CONSOLE_LABELS_MAX];
	size_t nlabels;
	int group_depth;
	bool web_building;            /* the JS part is being evaluated */
	JSObjectRef console_more[WEB_FNS]; /* console methods past trace, once read (protected) */
};

#ifdef NDEBUG
#define ASSERT_OWNER(e) ((void)(e))
#else
#define ASSERT_OWNER(e) assert(pthread_equal((e)->owner, pthread_self()))
#endif

static inline uint64_t now_ns(void)
{
	return txs_now_ns();
}

/* Wall-clock time a scan may take in all, waits for a core included. */
static inline uint64_t backstop_ns(uint64_t budget_ns)
{
	uint64_t ten = budget_ns * BACKSTOP_FACTOR;
	return ten > budget_ns + BACKSTOP_MIN_NS ? ten : budget_ns + BACKSTOP_MIN_NS;
}

/* The watcher's view (engine_progress): execution started at now, or none. */
static inline void engine_progress_mark(engine *e, uint64_t start_ns, uint32_t index)
{
	if (!e->progress)
		return;
	atomic_store_explicit(&e->progress->index, index, memory_order_relaxed);
	atomic_store_explicit(&e->progress->start_ns, start_ns, memory_order_release);
}

/* engine.c: a VM entry begins (each scan in it, or the one execution, has
 * budget_ns); the watchdog armed with a tick of that many seconds. */
void engine_begin(engine *e, uint64_t budget_ns);
void engine_arm(engine *e, double seconds);

/* calls.c */
/* Classes, the pristine intrinsics C calls; false if one is missing. */
bool engine_calls_prepare(engine *e);
/* Loading (e->load_src evaluated, checked, called) or init as one VM
 * entry: 0, or -1 with *why (owned) set; a kill leaves *why NULL and
 * e->killed set. */
int engine_run_step(engine *e, enum step_kind kind, char **why);
/* The result of a killed execution (timeout or heap limit); e is dead. */
void engine_killed_result(engine *e, engine_result *res);
/* Protects v until engine_drop_kept (when the engine is freed). */
void engine_keep(engine *e, JSValueRef v);
void engine_drop_kept(engine *e);

/* engine.c: the string t keeps when it was made from text[0..len)
 * (retained: the caller releases it), else NULL; and s kept in t for the
 * next realms, made from text[0..len) (false when out of memory). */
JSStringRef engine_vm_text(const struct vm_text *t, const char *text, size_t len);
bool engine_vm_text_keep(struct vm_text *t, JSStringRef s, const char *text, size_t len);

/* sandbox.c: the console class and the globals a plugin sees; NULL, or
 * the name of what could not be set up. */
const char *engine_sandbox_install(engine *e);
/* Appends to e->step_err what a module without scanTransaction exports
 * (and names a Forta-style handleTransaction as such). */
void engine_exports_hint(engine *e, JSContextRef ctx, JSValueRef m);
/* webapi.c: what the web globals and the console keep, released before the
 * context; and the timers a settled call leaves, dropped. */
void webapi_free(engine *e);
JSValueRef webapi_run_timers(engine *e, JSContextRef ctx);
void webapi_drop_timers(engine *e);

#endif
