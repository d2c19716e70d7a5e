/*
 * engine.h - one JavaScriptCore VM running one plugin.
 *
 * An engine is a context group + global context with the plugin's CommonJS
 * module loaded and init(ctx) run. It knows nothing of threads except this:
 * every function below must be called on the thread that called engine_new()
 * (debug builds assert it). The executor owns that thread.
 *
 * One scan = scanTransaction(tx, ctx) plus every microtask it causes, until
 * its result settles, plus serialising the result: all of it under one
 * deadline. A scan stopped by the deadline or the heap limit kills the
 * engine: engine_dead() is then true and the engine must be freed, never run.
 */
#ifndef TXS_ENGINE_H
#define TXS_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct engine engine;

/* Console levels, in the order of console.debug/log/info/warn/error. */
enum { ENGINE_LOG_DEBUG, ENGINE_LOG_LOG, ENGINE_LOG_INFO, ENGINE_LOG_WARN, ENGINE_LOG_ERROR };

/* Called on the engine's thread for each console line that passed the rate
 * limit; msg is NUL-terminated and valid only during the call. */
typedef void (*engine_console_fn)(int level, const char *msg, size_t len, void *userdata);

/* What the engine is running now, for a watcher on another thread (plain
 * numbers, no engine pointer): written by the engine's thread as each
 * execution (load, init, one scan of a batch) starts and ends. */
typedef struct engine_progress {
	_Atomic uint64_t start_ns;  /* when the running execution began; 0: none */
	_Atomic uint64_t budget_ns; /* the time it may take */
	_Atomic uint32_t index;     /* which scan of the batch runs */
	/* NULL, or called on the engine's thread as each VM entry begins,
	 * after start_ns is set: a watcher may sleep while nothing runs */
	void (*began)(void);
} engine_progress;

typedef struct engine_config {
	const char *plugin_id;
	const char *plugin_version;
	const char *filename;    /* source URL for stack traces */
	const char *source;      /* CommonJS code, UTF-8 */
	size_t source_len;
	const char *config_json; /* plugin config as JSON text; NULL means {} */
	uint32_t timeout_ms;     /* per scan */
	uint32_t init_timeout_ms;/* module evaluation + init(ctx) */
	uint32_t heap_limit_mb;  /* 0 = no limit */
	size_t max_result_bytes;
	engine_console_fn console;
	void *console_userdata;
	engine_progress *progress; /* may be NULL; must outlive the engine */
	/* Called on the engine's thread with take true before it reads the text
	 * of each transaction of a batch: false stops the batch there, unread
	 * (the caller gave those transactions away: an executor that abandoned
	 * the lane stuck in this call). After true the text is copied into a
	 * JSC string and the gate called with take false; the caller keeps the
	 * texts valid between the two calls. userdata: console_userdata. May be
	 * NULL. */
	bool (*gate)(void *userdata, bool take);
} engine_config;

typedef enum engine_status {
	ENGINE_OK = 0,
	ENGINE_ERROR,   /* threw, rejected, did not settle, result invalid or too big */
	ENGINE_TIMEOUT, /* deadline passed: engine is dead */
	ENGINE_MEMORY,  /* heap limit passed: engine is dead */
} engine_status;

/* Result of one scan. json/error are malloc'ed, NUL-terminated, owned by the
 * caller (engine_result_clear frees them). */
typedef struct engine_result {
	engine_status status;
	char *json;   /* the handler's result as JSON text, when OK */
	size_t json_len;
	char *error;  /* message and JS stack, when not OK */
	double ms;    /* time this scan ran */
} engine_result;

#define ENGINE_BATCH_MAX 64

/* Builds the VM, loads the module and runs init(ctx). On failure returns -1,
 * *out is NULL and *err holds a malloc'ed message. */
int engine_new(engine **out, const engine_config *cfg, char **err);

/* A fresh realm: a new engine in base's VM (its context group), with its
 * own global context, the plugin loaded and init(ctx) run there. It shares
 * no JavaScript object with base, only the VM: its heap, JIT code, symbol
 * registry and caches (docs/engine.md, "Two levels of recycling"). About a
 * tenth of the cost of engine_new. On base's thread; base stays usable
 * and is freed by the caller, in either order. */
int engine_new_realm(engine *base, engine **out, const engine_config *cfg, char **err);

/* Builds base's next realm ahead, in base's VM, as engine_new_realm would:
 * its own global context, the module loaded and init(ctx) run (the
 * plugin's code runs, under init_timeout_ms); it then waits, unused. The
 * next engine_new_realm(base, ...) with an equal cfg (every field,
 * pointers by identity) returns it; one with another cfg frees it and
 * builds as usual. At most one waits per VM; it goes with the VM's last
 * engine. On base's thread. 0, or -1 with *err (malloc'ed) when the build
 * failed (nothing waits then). */
int engine_prepare_realm(engine *base, const engine_config *cfg, char **err);

/* Whether a realm prepared ahead waits in e's VM. */
bool engine_realm_prepared(const engine *e);

/* How many realms this engine's VM had before it (0: a fresh VM). */
uint32_t engine_realm_count(const engine *e);

/* Runs one scan over tx (JSON text of tx_len bytes, NUL-terminated; not
 * validated here). */
void engine_scan(engine *e, const char *tx, size_t tx_len, engine_result *res);

/* Runs up to ENGINE_BATCH_MAX scans in one VM entry, which pays JSC's
 * per-entry costs (watchdog timer, lock) once; each scan still has its own
 * deadline. Returns how many ran: all n, or k+1 when scan k killed the engine
 * (res[k] says timeout or memory; scans after k did not run and res[k+1..]
 * stay zeroed). */
size_t engine_scan_batch(engine *e, const char *const *tx, const size_t *len, size_t n,
                         engine_result *res);

/* True once a scan was terminated: free it and build a new one. */
bool engine_dead(const engine *e);

/* Samples heapSize + extraMemorySize. Walks the heap: costs ~1 ms per 20 k
 * live objects, so callers sample it, never call it per scan. */
size_t engine_heap_bytes(engine *e);

/* Number of console lines dropped by the rate limit so far. */
uint64_t engine_console_dropped(const engine *e);

void engine_free(engine *e);

void engine_result_clear(engine_result *r);

/* Wall-clock time an execution with this budget may take in all, waits for
 * a core included, before it counts as stuck (10x the budget, at least the
 * budget + 1 s). */
uint64_t engine_backstop_ns(uint64_t budget_ns);

/* Process RSS in bytes, from /proc/self/statm (microseconds to read). */
size_t engine_process_rss(void);
/* The same, read at most 1 ms before now (now_ns() clock) by any engine:
 * one pread per millisecond for the process. */
size_t engine_process_rss_recent(uint64_t now);

#endif
