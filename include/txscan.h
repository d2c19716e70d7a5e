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
	uint32_t init_timeout_ms; /* module load + init(ctx); default 1000 */
	uint32_t heap_limit_mb;   /* stop a scan past this; 0 = none; default 64 */
	uint32_t heap_restart_mb; /* recycle after a scan past this; 0 = never; default 32 */
	uint32_t restart_every;   /* recycle every N scans; 0 = never; default 1000 */
	uint32_t heap_sample_every; /* scans between heap samples; default 64 */
	uint32_t queue_capacity;  /* pending commands; default 1024 */
	uint32_t quarantine_after;/* consecutive failed starts; default 3 */
	size_t max_input_bytes;   /* transaction JSON; default 1 MiB */
	size_t max_result_bytes;  /* findings JSON; default 1 MiB */
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

/* A console line from the plugin, on the executor's thread. Must not block:
 * a slow sink slows the plugin's scans. */
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

/* Called exactly once per accepted submit, on the executor's thread. The
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

/* Canary reload: builds an engine from new code and runs init; only if that
 * works is the old engine dropped. On failure (TXS_EPLUGIN) the old code
 * keeps serving. */
TXS_EXTERN int txs_executor_reload(txs_executor *ex, const txs_plugin_code *code);

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
	uint64_t console_dropped;    /* console lines over the rate limit */
	uint32_t queue_depth;
	uint32_t consecutive_failures;
	bool quarantined;
	bool busy;                   /* a command is running now */
	double latency_sum_ms;
	uint64_t latency_buckets[TXS_LATENCY_BUCKETS]; /* not cumulative */
} txs_executor_stats;

/* A snapshot read without stopping scans (each counter is exact, the set is
 * not one instant). */
TXS_EXTERN void txs_executor_stats_get(const txs_executor *ex, txs_executor_stats *stats);

/* Pending commands now (cheap; for least-busy dispatch). */
TXS_EXTERN uint32_t txs_executor_load(const txs_executor *ex);

/* Stops the thread and joins it; queued scans are answered
 * TXS_STATUS_STOPPED; the engine is destroyed on its own thread. Any thread
 * but the executor's own (not from a txs_scan_fn callback). */
TXS_EXTERN void txs_executor_free(txs_executor *ex);

#ifdef __cplusplus
}
#endif

#endif
