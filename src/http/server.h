/*
 * server.h - the HTTP API of `txscan serve` (libmicrohttpd), on the public
 * txscan API only. docs/http-api.md describes the endpoints.
 *
 * Threads: MHD runs a pool of `threads` event loops; nothing a plugin does
 * can block them (a scan is submitted to the host and the connection is
 * suspended until the report arrives; plugin state is read by a snapshot
 * thread; restarts and reloads run on one control thread of the server).
 * A sweep thread closes connections too slow to send their headers or
 * body. Everything here is any-thread unless said.
 */
#ifndef TXS_SERVER_H
#define TXS_SERVER_H

#include "txscan.h"
#include "auth.h"
#include "tls.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct server_options {
	const char *listen;      /* "HOST:PORT", "[V6]:PORT" or ":PORT"; port 0 = any free */
	size_t max_body;         /* request body cap in bytes; default 1 MiB */
	unsigned threads;        /* MHD event loops; default 2 */
	unsigned max_inflight;   /* scan requests at once, more get 503; default 256 */
	unsigned max_batch;      /* transactions in one batch; default 1000 */
	unsigned max_connections;/* open connections; default 10000 */
	unsigned per_ip_connections; /* open connections per client address; 0 = no limit; default 128 */
	unsigned conn_timeout_s; /* idle connection timeout; default 30 */
	unsigned header_timeout_s; /* a request's headers must arrive within; 0 = off; default 10 */
	unsigned body_timeout_s; /* a request's body must arrive within; 0 = off; default 30 */
	auth *auth;              /* bearer tokens (borrowed; NULL = none): auth.h */
	tls *tls;                /* TLS (borrowed; NULL = plain HTTP): tls.h */
	bool insecure_no_auth;   /* allow an address other than loopback without auth */
} server_options;

/* Fills in the defaults above (listen = "127.0.0.1:8080"). */
void server_options_init(server_options *opts);

typedef struct server server;

/* Binds, starts the MHD threads and the control thread. The host, auth
 * and tls are borrowed: the host must outlive the server or be detached
 * first, auth and tls must outlive it. Refuses an address other than
 * loopback when neither tokens (auth_enabled) nor client certificates
 * (tls_mutual) are required, unless insecure_no_auth. On failure returns
 * -1 with a message naming what failed (and what to set) in err. */
int server_start(server **out, txs_host *host, const server_options *opts, char *err,
                 size_t errlen);

/* The address actually bound, e.g. "127.0.0.1:41877". */
const char *server_address(const server *srv);

/* Requests being handled now (read, scanned, or being answered). */
uint32_t server_in_flight(const server *srv);

/* Stops accepting connections; /readyz answers 503 from now on. Requests
 * already accepted (and keep-alive connections) are still served. */
void server_quiesce(server *srv);

/* Answers every scan, restart and reload request still waiting (and every
 * later one) 503 {"error": msg}; msg must be a string literal. Returns how
 * many were waiting. Their host work goes on; its answers are dropped. */
unsigned server_abort_waiting(server *srv, const char *msg);

/* No host call starts after this returns; later requests get 503. Waits
 * until deadline_ms (txs_now_ms) for the host calls still running (a
 * restart waiting on a stuck plugin, say). True when none is: only then may
 * the host be freed (txs_host_free delivers the reports still pending, so
 * their connections get an answer). */
bool server_detach_host(server *srv, double deadline_ms);

/* Stops accepting, shuts down every client connection and waits until MHD
 * has closed them all or deadline_ms (txs_now_ms) has passed; true when
 * none is left. Call before server_free: libmicrohttpd 0.9.75 crashes when
 * MHD_stop_daemon meets a connection it must answer with an error of its
 * own, so MHD must not be stopped while one is open (server_free tries
 * again, briefly, and stops MHD regardless). */
bool server_close_connections(server *srv, double deadline_ms);

/* Stops the control thread, the snapshot threads and MHD (closing every
 * connection), then frees. Accepts NULL. Call after a server_detach_host
 * that returned true and txs_host_free, or with the host still attached
 * and no scans pending. */
void server_free(server *srv);

/* Queues a reload of one plugin (id) or all (id == NULL) from another
 * thread than MHD's (SIGHUP, --watch); returns at once. Reloads run one at
 * a time with HTTP restarts/reloads on the control thread, which logs the
 * outcome with `source` (a string literal). Returns 0. */
int server_reload(server *srv, const char *id, const char *source);

/* ---- request bodies (shared with fuzz/fuzz_scan_body.c) ---------------- */

enum body_kind { BODY_SCAN, BODY_BATCH };

typedef struct body_error {
	int status;     /* HTTP status: 400 or 413 */
	char msg[256];  /* what is wrong, with the position for JSON errors */
	int line, column;
	size_t position;/* byte offset from jansson; 0 when not a JSON error */
} body_error;

/* One transaction's bytes inside the body. */
typedef struct body_span {
	size_t off, len;
} body_span;

/* Validates a scan body: one JSON object (BODY_SCAN) or an array of at
 * most max_items values (BODY_BATCH; elements that are not objects are
 * passed on and get an error report each). 0 with *spans (malloc'ed, the
 * caller frees it) holding the raw text of each transaction, or -1 with
 * *err filled in. Thread-safe; body need not be NUL-terminated. */
int server_parse_body(const char *body, size_t len, enum body_kind kind, size_t max_items,
                      body_span **spans, size_t *nspans, body_error *err);

/* ---- logging ----------------------------------------------------------- */

/* Writes one JSON line to stderr: {"ts", "level", "event", ...fields}.
 * Steals fields (may be NULL). One write(2) per line, so lines from
 * different threads never interleave. */
void server_log(const char *level, const char *event, json_t *fields);

#endif
