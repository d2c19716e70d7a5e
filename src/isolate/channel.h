/*
 * channel.h - the framing between the host (parent) and an engine process
 * (child): a SOCK_STREAM socketpair carrying length-prefixed frames to the child
 * and a pipe carrying them back (a pipe's write and wake-up cost less than
 * a socket's; the socket stays for its two-way end-of-channel).
 *
 * Why a stream socket: a scan's transaction and a result may each be up to
 * 1 MiB, above what one SOCK_SEQPACKET datagram carries (net.core.wmem_default),
 * and a stream lets one read(2) take every frame the child wrote since the
 * last one (a batch for free). Shared-memory rings were measured against it
 * (docs/engine.md, "Isolation"): the wake-up, not the copy, is the cost.
 *
 * Every frame is a 16-byte header (payload length, type, flags, id) and its
 * payload. The parent treats each byte from the child as hostile: the frame
 * parser (chan_take) bounds lengths before it buffers anything, and the
 * decoders (chan_result_decode ...) check every length against the frame,
 * the JSON of a result (util/jscan.c) and the UTF-8 of every text. A frame
 * that fails any check is a protocol violation: the parent kills the child;
 * but a result whose JSON util/jscan.c refuses is its scan's error, as in a
 * thread (a plugin's JSON.stringify writes such text).
 */
#ifndef TXS_CHANNEL_H
#define TXS_CHANNEL_H

#include "txscan.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum chan_type {
	/* parent -> child */
	CH_INIT = 1,  /* limits + code: build the executor (answered CH_READY) */
	CH_SCAN,      /* id, transaction bytes (answered CH_RESULT, same id) */
	CH_RESTART,   /* id (answered CH_DONE) */
	CH_RELOAD,    /* id, limits flag + limits + code (answered CH_DONE) */
	CH_PROBE,     /* id: try what the sandbox forbids (answered CH_DONE) */
	/* child -> parent */
	CH_READY = 16, /* i32 rc, error text */
	CH_RESULT,     /* id, status, ms, generation, json, error */
	CH_DONE,       /* id, i32 rc, error text */
	CH_STATS,      /* the child's executor counters */
	CH_CONSOLE,    /* level, message */
	CH_LANE,       /* the serving lane's thread and its run-queue wait (after CH_READY) */
	CH_EVENT,      /* an executor event (txs_event_fn): name, detail */
	CH_LOADING,    /* u64: the child's RSS before any of the plugin's code ran (once,
	                * before CH_READY): the base of the parent's memory cap */
	CH_SKIPPED,    /* id: the scan was not run, as the parent no longer waited for
	                * it (chan_progress.skip_below); answered in its place */
};

#define CHAN_HEADER 16
/* Text a child may send beside a result (an error, a console line, a
 * start failure): longer text is a protocol violation. */
#define CHAN_MAX_TEXT (1u << 20)
/* Fixed part of a CH_RESULT payload. */
#define CHAN_RESULT_FIXED 48

typedef struct chan_header {
	uint32_t len;
	uint16_t type, flags;
	uint64_t id;
} chan_header;

void chan_header_put(unsigned char *dst, const chan_header *h);
void chan_header_get(const unsigned char *src, chan_header *h);

/* A growable byte buffer for frames going out or coming in. */
typedef struct chan_buf {
	unsigned char *p;
	size_t len, cap, off; /* off: bytes already consumed (in) or sent (out) */
} chan_buf;

/* 0, or -1 out of memory. */
int chan_buf_reserve(chan_buf *b, size_t more);
int chan_buf_put(chan_buf *b, const void *src, size_t n);
/* Appends a header and payload as one frame. */
int chan_frame(chan_buf *b, uint16_t type, uint64_t id, const void *payload, size_t len);
void chan_buf_compact(chan_buf *b);
void chan_buf_free(chan_buf *b);

/* The next whole frame in b (from b->off): 1 and *h, *payload set (pointing
 * into b; valid until b changes), and b->off moved past it; 0 when more
 * bytes are needed; -1 when the header is impossible (type unknown for a
 * child's frame, payload over max_payload). */
int chan_take(chan_buf *b, size_t max_payload, chan_header *h, const unsigned char **payload);

/* ---- the progress page ----------------------------------------------------
 * One shared page per engine process (a memfd the parent creates, fd 4 in
 * the child): the scan the child's executor runs now and since when, as
 * each scan of a batch starts. The child may then run scans in batches (one
 * VM entry for many: about half the engine's CPU per scan of the minimal
 * plugin) while the parent still holds each scan to its own deadline and
 * knows which one to blame. Written by one thread at a time (the serving
 * lane) under a sequence count, read by the parent's monitor; the parent
 * trusts none of it beyond choosing which of its own scans to time: an id
 * it did not send, or a start in the future, is ignored. */
typedef struct chan_progress {
	_Atomic uint64_t seq;      /* odd while a write is under way */
	_Atomic uint64_t id;       /* the scan running (its frame id); 0: none yet */
	_Atomic uint64_t start_ns; /* when it started, CLOCK_MONOTONIC (system-wide) */
	_Atomic uint32_t tid;      /* the thread running it */
	/* When the serving thread began building an engine (a realm ahead in
	 * idle time, a rebuild), CLOCK_MONOTONIC; 0: not building. Outside
	 * seq: the parent grants a waiting scan the time of one build for
	 * it, once (parent.c, build_allowance_locked). */
	_Atomic uint64_t build_ns;
	/* The other way, written by the parent only (outside seq): scans with
	 * a lower id are no longer waited for (their reports expired), and the
	 * child answers those it has not started CH_SKIPPED instead of running
	 * them, as a thread executor skips them (txs_executor_skip_unwanted).
	 * The parent accepts a CH_SKIPPED only below the horizon it set. */
	_Atomic uint64_t skip_below;
} chan_progress;

#define CHAN_PROGRESS_BYTES 4096

void chan_progress_put(chan_progress *pg, uint64_t id, uint64_t start_ns, uint32_t tid);
/* A consistent reading; false when none was had in a few tries (a writer
 * that stopped half-way: killed, or hostile). */
bool chan_progress_get(chan_progress *pg, uint64_t *id, uint64_t *start_ns, uint32_t *tid);

/* Which thread of the child serves scans, and its schedstat when it sent
 * the frame: time on a CPU and time waiting on a run queue. The parent
 * charges a scan the CPU its thread used (plus a quarter of the timeout of
 * waiting), as the executor forgives the wait for a core. */
typedef struct chan_lane {
	uint32_t tid;
	uint64_t run_ns, wait_ns;
} chan_lane;

int chan_lane_encode(chan_buf *b, const chan_lane *lane);
const char *chan_lane_decode(const unsigned char *p, size_t len, chan_lane *lane);

/* A result as the child sends it. The decode copies json and error out of
 * the frame into private memory (the payload is never read twice) and
 * checks them: json is one valid JSON value (else the result becomes the
 * scan's error "result is not JSON: ..."), error valid UTF-8 without NUL.
 * NULL on success, else a static description of the violation. */
int chan_result_encode(chan_buf *b, uint64_t id, const txs_scan_result *r, const chan_lane *lane);
const char *chan_result_decode(const unsigned char *p, size_t len, size_t max_json,
                               txs_scan_result *out, chan_lane *lane);

/* rc + text frames (CH_READY, CH_DONE). decode: *text malloc'ed (may be
 * empty), checked as UTF-8. */
int chan_rc_encode(chan_buf *b, uint16_t type, uint64_t id, int rc, const char *text);
const char *chan_rc_decode(const unsigned char *p, size_t len, int *rc, char **text);

/* Console: level (<= 15 bytes) and message. */
/* scan: the id of the scan that printed it (the header's id), 0 for none */
int chan_console_encode(chan_buf *b, uint64_t scan, const char *level, const char *msg, size_t len);
const char *chan_console_decode(const unsigned char *p, size_t len, char *level, size_t level_cap,
                                char **msg, size_t *msg_len);

/* Executor events: name ([a-z_], < 32 bytes) and detail (UTF-8). */
int chan_event_encode(chan_buf *b, const char *event, const char *detail);
const char *chan_event_decode(const unsigned char *p, size_t len, char *event, size_t event_cap,
                              char **detail);

/* Stats: the child's counters; decode sanitises the booleans. */
int chan_stats_encode(chan_buf *b, const txs_executor_stats *s);
const char *chan_stats_decode(const unsigned char *p, size_t len, txs_executor_stats *s);

/* Code and limits (INIT, RELOAD): from the parent, so the child trusts the
 * layout, but still checks every length. decode: strings point into p. */
int chan_code_encode(chan_buf *b, uint16_t type, uint64_t id, const txs_plugin_code *code,
                     const txs_limits *lim);
const char *chan_code_decode(const unsigned char *p, size_t len, txs_plugin_code *code,
                             txs_limits *lim, bool *has_lim);
/* Frees the strings chan_code_decode allocated. */
void chan_code_clear(txs_plugin_code *code);

/* True when s[0..n) is valid UTF-8 (no overlongs, no surrogates) without NUL. */
bool chan_utf8_ok(const char *s, size_t n);

#endif
