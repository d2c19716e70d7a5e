/*
 * txscan.h - run untrusted JavaScript plugins that scan transactions.
 *
 * Two layers:
 *   txs_executor  one plugin instance: one JavaScriptCore VM on one dedicated
 *                 thread, fed through a bounded queue, recycled by policy.
 *   txs_host      a registry of plugins (folders with plugin.json), fan-out
 *                 of one transaction to every plugin, one report per input.
 *
 * Conventions: functions return 0 or a negative txs_error_code; after a
 * failure txs_last_error() on the same thread says what went wrong. A failed
 * constructor leaves *out == NULL. Every _free accepts NULL. Functions are
 * safe to call from any thread unless stated otherwise; callbacks take
 * userdata last and run on the thread named next to them.
 */
#ifndef TXSCAN_H
#define TXSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TXS_BUILDING)
#define TXS_EXTERN __attribute__((visibility("default")))
#else
#define TXS_EXTERN
#endif

#define TXS_VERSION "0.1.0"

/* ---- errors ------------------------------------------------------------ */

typedef enum txs_error_code {
	TXS_OK = 0,
	TXS_EINVAL = -1,       /* invalid argument, manifest or input */
	TXS_ENOMEM = -2,       /* out of memory */
	TXS_EPLUGIN = -3,      /* plugin code failed: syntax, load or init */
	TXS_EOVERLOADED = -4,  /* the queue is full: retry later */
	TXS_EUNAVAILABLE = -5, /* quarantined after repeated failed starts */
	TXS_ESTOPPED = -6,     /* being freed */
	TXS_EIO = -7,          /* a file could not be read */
	TXS_ETOOBIG = -8,      /* input over its size cap */
	TXS_ENOTFOUND = -9,    /* no such plugin */
	TXS_EBUSY = -10,       /* another restart or reload of this plugin is running */
} txs_error_code;

/* The message of the last failure on the calling thread; never NULL. Valid
 * until the next txscan call on this thread. */
TXS_EXTERN const char *txs_last_error(void);

/* ---- one scan's outcome --------------------------------------------------- */

typedef enum txs_status {
	TXS_STATUS_OK = 0,
	TXS_STATUS_ERROR,       /* threw, rejected, did not settle, invalid result */
	TXS_STATUS_TIMEOUT,     /* deadline passed; the engine was replaced */
	TXS_STATUS_MEMORY,      /* heap limit passed; the engine was replaced */
	TXS_STATUS_OVERLOADED,  /* queue full */
	TXS_STATUS_UNAVAILABLE, /* quarantined or not started */
	TXS_STATUS_STOPPED,     /* the executor was freed before it ran */
} txs_status;

/* "ok", "error", "timeout", "memory", "overloaded", "unavailable", "stopped" */
TXS_EXTERN const char *txs_status_name(txs_status status);

typedef struct txs_scan_result {
	txs_status status;
	char *json;          /* OK: the handler's return value as JSON text */
	size_t json_len;
	char *error;         /* not OK: message and JS stack */
	double ms;           /* time on the engine */
	uint64_t generation; /* engine generation that ran it (0 if none) */
} txs_scan_result;

/* Frees json and error and zeroes the struct. */
TXS_EXTERN void txs_scan_result_clear(txs_scan_result *result);

/* ---- executor: one plugin instance -------------------------------------- */

typedef struct txs_limits {
	uint32_t timeout_ms;      /* per scan, microtasks and serialisation included; default 50 */
	uint32_t init_timeout_ms; /* loading the module, and init(ctx): each; default 1000 */
	uint32_t heap_limit_mb;   /* stop a scan past this; 0 = none; default 64 */
	uint32_t heap_restart_mb; /* recycle after a scan past this; 0 = never; default 32 */
	uint32_t restart_every;   /* recycle every N scans; 0 = never; default 100000 */
	uint32_t heap_sample_every; /* scans between heap samples; default 64 */
	uint32_t queue_capacity;  /* pending commands; default 1024 */
	uint32_t quarantine_after;/* consecutive failed starts; default 3 */
	size_t max_input_bytes;   /* transaction JSON; default 1 MiB */
	size_t max_result_bytes;  /* findings JSON; default 1 MiB */
	/* Circuit breaker: after this many consecutive kills (timeout, memory)
	 * the executor answers "unavailable" at once for a cool-down, then lets
	 * one trial scan through; 0 = never open. Default 5. */
	uint32_t breaker_after;
	uint32_t breaker_cooldown_ms; /* first cool-down; doubles while trials fail, to 60 s; default 1000 */
	/* A scheduled or manual restart gives the plugin a fresh realm (a new
	 * global context in the engine's VM, ~0.1 ms) instead of a new VM
	 * (~1.4 ms); the VM itself is rebuilt after this many realms, and after
	 * every kill, heap restart and reload. 1 = every restart rebuilds the
	 * VM. Default 256. */
	uint32_t realms_per_vm;
} txs_limits;

/* Fills in the defaults above. */
TXS_EXTERN void txs_limits_init(txs_limits *limits);

typedef struct txs_plugin_code {
	const char *id;          /* [a-z0-9-]{1,64} */
	const char *version;
	const char *filename;    /* shown in stack traces */
	const char *source;      /* CommonJS module, UTF-8 */
	size_t source_len;
	const char *config_json; /* ctx.config as JSON text; NULL means {} */
} txs_plugin_code;

/* A console line from the plugin, on one of the executor's threads (in process
 * isolation, on the host's one reader of every engine process's answers). Must
 * not block: a slow sink slows the plugin's scans, and in process isolation every
 * plugin's answers. */
typedef void (*txs_console_fn)(const char *plugin_id, const char *level, const char *msg,
                               size_t len, void *userdata);

typedef struct txs_executor txs_executor;

/* Starts the thread, builds the engine there, loads the code and runs
 * init(ctx); returns only when that is done. TXS_EPLUGIN when the code fails
 * (txs_last_error() says why). Everything in code and limits is copied.
 * console may be NULL (console output is then discarded). */
TXS_EXTERN int txs_executor_new(txs_executor **out, const txs_plugin_code *code,
                                const txs_limits *limits, txs_console_fn console,
                                void *userdata);

/* Runs one scan and waits for it. tx is the JSON text of one transaction
 * (len bytes, no NUL needed). Returns 0 with *result filled in whenever the
 * scan was answered, whatever its status; the caller clears *result.
 * TXS_EINVAL on bad arguments. */
TXS_EXTERN int txs_executor_scan(txs_executor *ex, const char *tx, size_t len,
                                 txs_scan_result *result);

/* Called exactly once per accepted submit, on one of the executor's two
 * threads (whichever serves the queue at the time: see docs/engine.md). The
 * callback owns result's strings (txs_scan_result_clear them or keep them). */
typedef void (*txs_scan_fn)(txs_scan_result *result, void *userdata);

/* Queues one scan and returns at once. 0: accepted, cb will be called.
 * TXS_EOVERLOADED (queue full), TXS_EUNAVAILABLE (quarantined), TXS_ETOOBIG,
 * TXS_ESTOPPED: refused, cb is not called. */
TXS_EXTERN int txs_executor_submit(txs_executor *ex, const char *tx, size_t len,
                                   txs_scan_fn cb, void *userdata);

/* Replaces the engine with a fresh one (same code), waiting for it. On
 * failure the old engine keeps serving and the error is returned. */
TXS_EXTERN int txs_executor_restart(txs_executor *ex);

/* Canary reload: builds an engine from new code (and new limits, unless
 * limits is NULL; queue_capacity cannot change) and runs init; only if that
 * works is the old engine dropped. On failure (TXS_EPLUGIN) the old code
 * keeps serving. */
TXS_EXTERN int txs_executor_reload(txs_executor *ex, const txs_plugin_code *code,
                                   const txs_limits *limits);

enum { TXS_LATENCY_BUCKETS = 16 };

/* Upper bounds (ms) of the latency histogram buckets; the last is +Inf. */
TXS_EXTERN const double *txs_latency_bounds_ms(void);

typedef struct txs_executor_stats {
	uint64_t scans, ok, errors, timeouts, memory_stops, overloaded, unavailable;
	uint64_t restarts_scheduled; /* every restart_every scans */
	uint64_t restarts_heap;      /* heap passed heap_restart_mb */
	uint64_t restarts_killed;    /* after a timeout or memory stop */
	uint64_t restarts_manual;    /* txs_executor_restart */
	uint64_t reloads;            /* successful txs_executor_reload */
	uint64_t failed_starts;      /* engine builds that failed */
	uint64_t generation;         /* current engine's generation; 0 = none */
	uint64_t heap_bytes;         /* last sampled heap */
	uint64_t heap_readings;      /* heap statistics read (each walks the heap) */
	uint64_t console_dropped;    /* console lines over the rate limit */
	uint32_t queue_depth;
	uint32_t consecutive_failures;
	bool quarantined;
	bool running;                /* an engine is up and serving */
	bool busy;                   /* a command is running now */
	uint64_t standby_swaps;      /* restarts served by an engine the standby lane built */
	bool standby_ready;          /* the standby lane holds a fresh engine now */
	double latency_sum_ms;
	uint64_t latency_buckets[TXS_LATENCY_BUCKETS]; /* not cumulative */
	uint64_t lanes_abandoned;    /* threads given up on, stuck in a native call past the backstop */
	uint32_t lanes_stuck;        /* of those, still in their call now */
	uint32_t breaker_state;      /* txs_breaker_state */
	uint64_t breaker_opens;      /* times the circuit opened */
	uint64_t realm_restarts;     /* restarts served by a fresh realm in the same VM */
	uint64_t realm_prepared;     /* of those, realms the idle serving thread had built ahead */
	uint64_t skipped;            /* queued scans answered timeout without running: their
	                              * caller no longer waited (the host's report deadline had
	                              * passed); not in scans */
	/* Time the serving thread spent replacing its engine (a fresh realm, a
	 * VM built inline, a swap to the standby's, or a build that failed),
	 * by what: any restart or reload; same buckets as latency. */
	double recycle_sum_ms;
	uint64_t recycle_buckets[TXS_LATENCY_BUCKETS]; /* not cumulative */
	/* process isolation only (0 in thread isolation): */
	uint64_t process_starts;  /* engine processes that became ready */
	uint64_t process_crashes; /* engine processes that died on their own (a signal, an exit) */
	uint64_t process_kills;   /* engine processes the host killed: deadline, memory cap,
	                           * protocol */
	uint64_t process_rss_bytes; /* resident memory of the engine process now */
} txs_executor_stats;

typedef enum txs_breaker_state {
	TXS_BREAKER_CLOSED = 0,    /* scans run */
	TXS_BREAKER_OPEN,          /* cooling down: scans answer "unavailable" at once */
	TXS_BREAKER_HALF_OPEN,     /* one trial scan runs; the others answer "unavailable" */
} txs_breaker_state;

/* "closed", "open", "half-open" */
TXS_EXTERN const char *txs_breaker_state_name(uint32_t state);

/* Something an operator should know happened to a plugin instance: event is
 * one of "breaker_open", "breaker_half_open", "breaker_closed" (the circuit
 * breaker), "lane_abandoned" (a thread stuck in a native call was given up
 * on), "lanes_exhausted" (too many stuck threads: the plugin answers
 * "unavailable" until one comes back), "lane_returned"; detail is one line
 * of text. Called on any thread the executor uses, never under its locks;
 * must not block. */
typedef void (*txs_event_fn)(const char *plugin_id, const char *event, const char *detail,
                             void *userdata);

/* Sets the event callback; call before the first submit. */
TXS_EXTERN void txs_executor_on_event(txs_executor *ex, txs_event_fn fn, void *userdata);

/* A snapshot read without stopping scans (each counter is exact, the set is
 * not one instant). */
TXS_EXTERN void txs_executor_stats_get(const txs_executor *ex, txs_executor_stats *stats);

/* Pending commands now (cheap; for least-busy dispatch). */
TXS_EXTERN uint32_t txs_executor_load(const txs_executor *ex);

/* Stops the thread and joins it; queued scans are answered
 * TXS_STATUS_STOPPED; the engine is destroyed on its own thread. Any thread
 * but the executor's own (not from a txs_scan_fn callback). */
TXS_EXTERN void txs_executor_free(txs_executor *ex);

/* ---- host: plugins, fan-out, reports ------------------------------------ */

typedef enum txs_severity {
	TXS_SEVERITY_NONE = 0, /* verdict when nothing was found */
	TXS_SEVERITY_INFO,
	TXS_SEVERITY_LOW,
	TXS_SEVERITY_MEDIUM,
	TXS_SEVERITY_HIGH,
	TXS_SEVERITY_CRITICAL,
} txs_severity;

/* "none", "info", "low", "medium", "high", "critical" */
TXS_EXTERN const char *txs_severity_name(txs_severity severity);
/* 0 and *out set, or TXS_EINVAL for an unknown name. */
TXS_EXTERN int txs_severity_parse(const char *name, txs_severity *out);

typedef struct txs_host txs_host;
typedef struct txs_report txs_report;

/* Where plugins' engines run (docs/engine.md, "Isolation"). */
typedef enum txs_isolation {
	TXS_ISOLATION_DEFAULT = 0, /* $TXSCAN_ISOLATION ("thread" or "process"), else thread */
	TXS_ISOLATION_THREAD,      /* engines on threads of this process */
	TXS_ISOLATION_PROCESS,     /* each instance's engines in a sandboxed child process,
	                            * killed at its deadline + a grace or past its memory cap */
} txs_isolation;

/* "thread" / "process" -> 0 and *out; TXS_EINVAL otherwise. */
TXS_EXTERN int txs_isolation_parse(const char *name, txs_isolation *out);

typedef struct txs_host_options {
	/* Deadline for a whole report: a plugin that has not answered by then is
	 * reported "timeout" (its scan may still be queued). 0 = the largest
	 * plugin timeout_ms x 4 + 100 ms; UINT32_MAX = no deadline (batch jobs:
	 * every queued scan still ends, each within its own plugin's timeout). */
	uint32_t scan_timeout_ms;
	/* Console lines of every plugin. NULL: log lines on stderr (event
	 * "console", with the tx and line of the scan that printed them; see
	 * docs/logging.md), written by a host thread from a bounded buffer (a
	 * full buffer drops and counts). Every scan a plugin does not answer ok
	 * is also logged there ("plugin_failure", at most 10 a second per
	 * plugin) and kept for txs_plugin_info's last_error and
	 * failures_minute, whatever the options. A sink given here must not
	 * block (see txs_console_fn). */
	txs_console_fn console;
	void *console_userdata;
	bool console_quiet; /* with console == NULL: discard console lines */
	/* Executor events of every plugin (see txs_event_fn); NULL: log lines
	 * on stderr named after the event (docs/logging.md). */
	txs_event_fn event;
	void *event_userdata;
	/* false (default): txs_host_load fails when any plugin fails, listing
	 * every failure. true: it starts the plugins that load and keeps each
	 * one that does not (a bad manifest or code, an init that throws or
	 * hangs) as "not started": every report answers it "unavailable" with
	 * the load error (complete: false), txs_plugin_info says started ==
	 * false and why, txs_host_ready is false, and a host thread retries it
	 * from disk with the executor's quarantine back-off (100 ms, doubling
	 * to 30 s) until it starts. Its id is the manifest's, or the folder's
	 * name when the manifest could not be read. txs_host_reload of a
	 * not-started plugin tries to start it at once. */
	bool allow_partial;
	/* Loading notices, one line each: a subfolder skipped because it has no
	 * plugin.json ("warn"), a not-started plugin that failed again ("warn")
	 * or started ("info"), a plugin added or removed by
	 * txs_host_reload_all ("info"). level is "info" or "warn". Called on the
	 * thread of txs_host_load or txs_host_reload_all, or on the host's
	 * retry thread; must not call back into the host. NULL: notices are
	 * dropped. */
	void (*notice)(const char *level, const char *message, void *userdata);
	void *notice_userdata;
	txs_isolation isolation;
	/* Process isolation: the txscan-engine helper; NULL: $TXSCAN_ENGINE, else
	 * beside the running program, else the build tree's. */
	const char *engine_path;
	/* ctx.config of every plugin this host loads, as JSON text (an object);
	 * NULL: each plugin.json's "config". */
	const char *config_json;
} txs_host_options;

/* opts may be NULL (defaults). */
TXS_EXTERN int txs_host_new(txs_host **out, const txs_host_options *opts);

/* Loads one plugin folder (it holds plugin.json) or a folder of plugin
 * folders (subfolders without plugin.json are skipped with a notice),
 * validates every manifest and starts every plugin's executors. Every
 * plugin is tried: on failure nothing is loaded and txs_last_error() lists
 * every plugin that failed, one line each, naming the file and the field
 * (the return code is the first failure's). With allow_partial, a plugin
 * that fails to start does not fail the load (see txs_host_options); a
 * duplicate id still does. The path is remembered for txs_host_reload_all.
 * Safe while other threads scan (the plugin set is replaced whole). */
TXS_EXTERN int txs_host_load(txs_host *host, const char *path);

/* Scans one transaction (JSON text) with every plugin and waits for the
 * report; *out is always set on 0 (the caller frees it). line > 0 is echoed
 * in the report as "line" (the CLI's input line). */
TXS_EXTERN int txs_host_scan(txs_host *host, const char *tx, size_t len, uint64_t line,
                             txs_report **out);

/* Called exactly once per submit with the report, which the callback owns.
 * Runs on an executor thread, the host's deadline thread, or the caller's
 * own thread when the report is ready at once (invalid input). */
typedef void (*txs_report_fn)(txs_report *report, void *userdata);

/* Starts one scan; returns at once. 0, or TXS_EINVAL / TXS_ENOMEM /
 * TXS_ESTOPPED (cb not called). Invalid input is not an error here: it gets
 * a report with "error". */
TXS_EXTERN int txs_host_submit(txs_host *host, const char *tx, size_t len, uint64_t line,
                               txs_report_fn cb, void *userdata);

/* One transaction of txs_host_submit_many. */
typedef struct txs_submission {
	const char *tx;
	size_t len;
	uint64_t line;
	void *userdata; /* given to the callback with this transaction's report */
} txs_submission;

/* Starts n scans as txs_host_submit does, one after another, but wakes the
 * executors once for all of them: a caller with many transactions at hand
 * (a file, a batch read from a stream) saves a wake-up of every sleeping
 * executor thread per transaction, and the executors run the scans in
 * batches. The texts are copied before it returns. Returns how many were
 * started: n, or at the first that could not be (txs_last_error() says
 * why) the number before it; the callback is called once for each started
 * one only. */
TXS_EXTERN size_t txs_host_submit_many(txs_host *host, const txs_submission *subs, size_t n,
                                       txs_report_fn cb);

/* The report as one line of JSON (no newline), valid until the report is
 * freed. */
TXS_EXTERN const char *txs_report_json(const txs_report *report, size_t *len);
/* Highest severity found; TXS_SEVERITY_NONE when nothing was. */
TXS_EXTERN txs_severity txs_report_verdict(const txs_report *report);
/* False when any plugin's status is not ok, or the input was invalid. */
TXS_EXTERN bool txs_report_complete(const txs_report *report);
/* True when the input itself was rejected (not JSON, not an object, too big). */
TXS_EXTERN bool txs_report_input_error(const txs_report *report);
TXS_EXTERN void txs_report_free(txs_report *report);

/* A report's parts, for a view other than its JSON (the CLI's table): read
 * from the report's own data, never by parsing its text. Strings that come
 * from the input may hold any character, NUL included: escape them before
 * showing them. */

/* The input's line (the line given to txs_host_scan/submit), 0 for none. */
TXS_EXTERN uint64_t txs_report_line(const txs_report *report);
/* The input's "hash" or "id" as the report's "tx" holds it: a string's
 * characters (*len bytes, maybe with NULs; NUL-terminated), or a number's
 * JSON text; NULL when there is none. Valid until the report is freed. */
TXS_EXTERN const char *txs_report_tx(const txs_report *report, size_t *len);
/* Why the report holds no scan: the input was rejected (see
 * txs_report_input_error) or memory ran out building it; else NULL. */
TXS_EXTERN const char *txs_report_error(const txs_report *report);

typedef struct txs_report_plugin {
	char id[65];
	txs_status status;
} txs_report_plugin;

/* Plugins in the report, in its order (0 for an input error). */
TXS_EXTERN size_t txs_report_plugin_count(const txs_report *report);
/* Plugin i's id and status; TXS_ENOTFOUND when i is out of range. */
TXS_EXTERN int txs_report_plugin_get(const txs_report *report, size_t i, txs_report_plugin *out);

typedef struct txs_report_finding {
	char plugin[65];
	char code[129]; /* UPPER_SNAKE_CASE: checked when the plugin answered */
	txs_severity severity;
} txs_report_finding;

/* Findings in the report, in its order. */
TXS_EXTERN size_t txs_report_finding_count(const txs_report *report);
/* Finding i; TXS_ENOTFOUND when i is out of range. */
TXS_EXTERN int txs_report_finding_get(const txs_report *report, size_t i,
                                      txs_report_finding *out);

enum { TXS_FAILURE_STATUSES = 5 }; /* error, timeout, memory, overloaded, unavailable */

/* A scan a plugin did not answer "ok" (see docs/logging.md). */
typedef struct txs_plugin_failure {
	int64_t time_ms;   /* wall clock, ms since 1970-01-01 UTC; 0: no failure yet */
	txs_status status;
	char tx[132];      /* the report's tx as text (a string's characters, a number's
	                    * JSON; cut to fit); "" when the input has none */
	char message[512]; /* the error's first line (cut to fit) */
} txs_plugin_failure;

/* One plugin, as seen now. Strings are copied. */
typedef struct txs_plugin_info {
	char id[65];
	char version[65];
	char dir[1024];
	txs_limits limits;
	uint32_t instances;
	txs_executor_stats stats; /* summed over instances; generation = the max */
	/* false: not started (allow_partial): no executor yet, instances 0,
	 * every scan answers "unavailable"; error says why (the last attempt). */
	bool started;
	char error[1024];
	txs_plugin_failure last_error; /* its latest failed scan */
	/* Failed scans in the last 60 s by status: [status - TXS_STATUS_ERROR]
	 * for error, timeout, memory, overloaded, unavailable. */
	uint32_t failures_minute[TXS_FAILURE_STATUSES];
} txs_plugin_info;

TXS_EXTERN size_t txs_host_plugin_count(const txs_host *host);
/* TXS_ENOTFOUND when index is out of range. */
TXS_EXTERN int txs_host_plugin_info(txs_host *host, size_t index, txs_plugin_info *info);
/* Index of the plugin with this id, or -1. */
TXS_EXTERN long txs_host_plugin_find(const txs_host *host, const char *id);

/* Every plugin with versions, limits and stats as a JSON array; *json is
 * malloc'ed (free() it). */
TXS_EXTERN int txs_host_plugins_json(txs_host *host, char **json);

/* Replaces every instance's engine. TXS_ENOTFOUND for an unknown id;
 * TXS_EUNAVAILABLE for a plugin that is not started (allow_partial);
 * TXS_EBUSY while another restart or reload of the plugin runs. No lock is
 * held while the executors work: info, stats and scans go on meanwhile. */
TXS_EXTERN int txs_host_restart(txs_host *host, const char *id);
/* Re-reads plugin.json and the code from disk and canary-reloads every
 * instance; on failure the old version keeps serving and the error is
 * returned. `instances` cannot change on reload. A plugin that is not
 * started (allow_partial): one start attempt now, on the calling thread
 * (TXS_EUNAVAILABLE if the retry thread is trying it at this moment). */
TXS_EXTERN int txs_host_reload(txs_host *host, const char *id);
/* Lists the paths given to txs_host_load again and follows them: a plugin
 * whose folder is gone (or has no plugin.json) is taken out of new scans
 * and freed once the scans that reached it are delivered (this waits for
 * them); a new plugin folder is loaded (its engines start and init runs
 * before it takes scans; one that fails is not added). A path that cannot
 * be listed or holds no plugin any more changes nothing. Then reloads
 * every plugin. Returns the first failure, after trying them all. Plugin
 * indexes (txs_host_plugin_info) may change across this call. Not from a
 * txs_report_fn callback (it may wait for that very report). */
TXS_EXTERN int txs_host_reload_all(txs_host *host);

/* True when every plugin is started and has a running engine and none is
 * quarantined (txs_plugin_info says which is not). */
TXS_EXTERN bool txs_host_ready(txs_host *host);
/* Reports submitted and not yet delivered. */
TXS_EXTERN uint32_t txs_host_in_flight(const txs_host *host);
/* The deadline for a whole report in ms, as txs_host_options.scan_timeout_ms
 * resolved (it grows when a plugin with a longer timeout_ms starts late);
 * UINT32_MAX = none. */
TXS_EXTERN uint32_t txs_host_scan_deadline_ms(const txs_host *host);
/* Log lines (console lines of the default sink, plugin_failure lines) the
 * host's log buffer dropped because it was full. */
TXS_EXTERN uint64_t txs_host_console_dropped(const txs_host *host);

/* Findings counted by plugin, code and severity since the plugin was
 * loaded (for metrics). A plugin's first TXS_MAX_CODES_PER_PLUGIN distinct
 * codes are counted by code; its findings with any other code are counted
 * by severity only, in rows whose code is "" (the overflow), so a plugin
 * that invents codes cannot grow this list without bound. */
#define TXS_MAX_CODES_PER_PLUGIN 64
typedef struct txs_finding_count {
	char plugin[65];
	char code[129]; /* "" = overflow */
	txs_severity severity;
	uint64_t count;
} txs_finding_count;
/* Writes up to cap rows (nonzero counts only) to out and returns how many
 * there are: call again with a bigger out when that is more than cap. Any
 * thread; the counting itself takes no lock. */
TXS_EXTERN size_t txs_host_finding_counts(txs_host *host, txs_finding_count *out, size_t cap);

/* Reports delivered since the host was created (for metrics). */
typedef struct txs_report_counts {
	uint64_t verdict[TXS_SEVERITY_CRITICAL + 1]; /* by verdict, indexed by txs_severity */
	uint64_t incomplete;   /* of those, with "complete": false */
	uint64_t input_errors; /* inputs that were not a JSON object: no verdict, not counted above */
} txs_report_counts;
/* Any thread; relaxed reads (each figure is exact, the set is not one instant). */
TXS_EXTERN void txs_host_report_counts(const txs_host *host, txs_report_counts *out);

/* Stops every executor (queued scans are reported "stopped"), delivers
 * every pending report, then frees. Not from a txs_report_fn callback. */
TXS_EXTERN void txs_host_free(txs_host *host);

/* Bundles the plugin in dir as loading it would (ES module, TypeScript,
 * imports of its own files and node_modules: one CommonJS file, by
 * esbuild) and writes the bundle to out_path and its source map to
 * out_path.map, for hosts without esbuild: set main to the bundle. 0, or
 * a negative code with txs_last_error(). */
TXS_EXTERN int txs_plugin_bundle(const char *dir, const char *out_path);

#ifdef __cplusplus
}
#endif

#endif
