/*
 * log.h - the one log format of every txscan command: one line per event
 * on stderr, written with one write(2) so lines from several threads never
 * interleave. JSON lines (for machines: the default when stderr is not a
 * terminal):
 *
 *   {"ts":"2026-12-06T19:44:59.937Z","level":"warn","event":"plugin_failure",...}
 *
 * or text for a human at a terminal ("txscan: warning: EVENT: message k=v").
 * Events and their fields are listed in docs/logging.md.
 *
 * The format and the least level are process-wide, set once at start-up
 * (txs_log_setup) before threads start; every function here is safe on
 * any thread.
 */
#ifndef TXS_LOG_H
#define TXS_LOG_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum txs_log_level {
	TXS_LOG_DEBUG = 0,
	TXS_LOG_INFO,
	TXS_LOG_WARN,
	TXS_LOG_ERROR,
} txs_log_level;

typedef enum txs_log_format {
	TXS_LOG_AUTO = 0, /* text when stderr is a terminal, else JSON */
	TXS_LOG_JSON,
	TXS_LOG_TEXT,
} txs_log_format;

/* Sets the format and the least level logged (default AUTO, INFO). */
void txs_log_setup(txs_log_format format, txs_log_level least);
/* The format in effect (AUTO resolved). */
txs_log_format txs_log_format_now(void);

/* "debug" "info" "warn" "error"; "json" "text". 0, or -1 for another name. */
int txs_log_level_parse(const char *name, txs_log_level *out);
int txs_log_format_parse(const char *name, txs_log_format *out);
const char *txs_log_level_name(txs_log_level level);

/* True when a line at this level would be written: check it before
 * building fields that cost something. */
bool txs_log_enabled(txs_log_level level);

/* Logs one event; fields (an object or NULL) are added after ts, level and
 * event, in their order, and the reference is stolen. */
void txs_log(txs_log_level level, const char *event, json_t *fields);
/* The same with a printf-style "message" field. */
void txs_logf(txs_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The line txs_log would write (newline included; malloc'ed, *len its
 * length), for a sink that writes it later from its own thread; NULL when
 * the level is below the least level or memory ran out. Steals fields. */
char *txs_log_line(txs_log_level level, const char *event, json_t *fields, size_t *len);
/* Writes a line from txs_log_line with one write(2). */
void txs_log_write(const char *line, size_t len);

/* on: every line starts by erasing the terminal line it lands on ("\r",
 * erase to its end), for a command that draws a progress line on stderr:
 * a log line never shares a line with it (the progress is drawn again
 * under it). Set before threads start. */
void txs_log_erase_line(bool on);

/* A rate limit for a stream of log lines: at most per_s lines in each
 * wall-clock second; the lines over it are counted, and the count is
 * handed to the next line that passes (so it can say "suppressed": N).
 * Initialise with TXS_LOG_LIMIT_INIT or txs_log_limit_init. */
typedef struct txs_log_limit {
	pthread_mutex_t mu;
	int64_t window; /* the second counted now */
	uint32_t count; /* lines passed in it */
	uint64_t suppressed, suppressed_total;
} txs_log_limit;

#define TXS_LOG_LIMIT_INIT {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0}
void txs_log_limit_init(txs_log_limit *l);
void txs_log_limit_destroy(txs_log_limit *l);
/* True when this line may be written; then *suppressed is the number of
 * lines held back since the last one that passed (0 if none). */
bool txs_log_limit_pass(txs_log_limit *l, uint32_t per_s, uint64_t *suppressed);
/* Lines held back so far, in all. */
uint64_t txs_log_limit_suppressed(txs_log_limit *l);

/* The submit userdata of the scan whose console line is being delivered
 * on this thread (set by the executor and the engine-process proxy around
 * their console callbacks), else NULL: lets the host tag a console line
 * with the scan's tx and line. */
extern _Thread_local void *txs_log_scan_userdata;

#endif
