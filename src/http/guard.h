/*
 * guard.h - deadlines on the phases of an HTTP connection, which
 * libmicrohttpd does not have: it closes a connection after N seconds of
 * no traffic (MHD_OPTION_CONNECTION_TIMEOUT) only, so a client that sends
 * one header byte every few seconds holds its socket for ever.
 *
 * Each connection (MHD's socket context) is in one phase: reading headers,
 * reading the body, busy (a plugin or the answer is being worked on: no
 * deadline), or idle between two keep-alive requests. A sweep thread
 * closes the connections that stayed in one phase past its limit with
 * shutdown(2) on their socket: MHD sees the end of the stream on its own
 * thread and closes the connection the usual way (the socket itself is
 * closed by MHD only, after guard_close).
 *
 * The guard also keeps what MHD's URI log callback sees of the request
 * line: the raw path, before MHD decodes %XX escapes into a C string in
 * which a %00 would end the path early.
 */
#ifndef TXS_HTTP_GUARD_H
#define TXS_HTTP_GUARD_H

#include <stdbool.h>
#include <stdint.h>

enum guard_phase { GUARD_HEADERS, GUARD_BODY, GUARD_BUSY, GUARD_IDLE };

typedef struct guard_limits {
	unsigned header_s; /* from the first byte (or accept) to the end of the headers */
	unsigned body_s;   /* from the end of the headers to the end of the body */
	unsigned idle_s;   /* from an answer to the next request line on keep-alive */
} guard_limits;

typedef struct guard_stats {
	uint64_t open;                       /* connections now */
	uint64_t closed_header, closed_body, closed_idle; /* closed by a deadline */
} guard_stats;

typedef struct guard guard;
typedef struct guard_conn guard_conn;

/* Called by the sweep thread after a sweep that closed connections, with
 * how many it closed for each reason. Must not block. */
typedef void (*guard_log_fn)(unsigned header, unsigned body, unsigned idle, void *userdata);

/* Starts the sweep thread. 0, or -1 (no thread). A limit of 0 is off. */
int guard_new(guard **out, const guard_limits *limits, guard_log_fn log, void *userdata);
/* Stops the sweep thread. Call after MHD has stopped. Accepts NULL. */
void guard_free(guard *g);

/* MHD_CONNECTION_NOTIFY_STARTED / _CLOSED, on the connection's thread. */
guard_conn *guard_open(guard *g, int fd);
void guard_close(guard *g, guard_conn *c);

/* The URI log callback: a new request line was read (raw, undecoded). */
void guard_request_line(guard *g, guard_conn *c, const char *raw_uri);
/* True when the path of the current request line holds a control byte
 * (0x00-0x1f or 0x7f), raw or %-escaped. */
bool guard_bad_path(const guard_conn *c);

/* Moves the connection to phase (its clock restarts). c may be NULL. */
void guard_phase(guard *g, guard_conn *c, enum guard_phase phase);

void guard_stats_get(guard *g, guard_stats *out);

/* Shuts down every listed connection's socket not yet shut (not counted as
 * a timeout); returns how many connections are still listed, i.e. not yet
 * closed by MHD. For stopping: see server_free. */
unsigned guard_shutdown_all(guard *g);

#endif
