/*
 * stream.h - txscan as a member of a Redis Streams consumer group
 * (`txscan worker`) and the feeder for such a stream (`txscan publish`).
 *
 * Part of the txscan binary, not of libtxscan: it uses only the public API
 * (txscan.h) plus hiredis. Not thread-safe: call each function from one
 * thread; the worker does all its Redis I/O on the thread that runs it.
 */
#ifndef TXS_STREAM_H
#define TXS_STREAM_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

struct txs_host;

/* The URL when --redis is not given: this environment variable (which keeps
 * a password out of ps), else the default. */
#define STREAM_REDIS_URL_ENV "TXSCAN_REDIS_URL"
#define STREAM_REDIS_URL_DEFAULT "redis://127.0.0.1:6379"

/* Where Redis is: redis://[[user]:password@]host[:port][/db] or
 * unix:///path/to/socket[?db=N]. */
struct stream_url {
	char host[256];
	char unix_path[256]; /* non-empty: connect through this socket */
	int port;
	char user[128];      /* empty: AUTH with the password only */
	char password[256];  /* empty: no AUTH */
	int db;
};

/* 0, or -1 with a message naming the bad part written to err (errlen bytes;
 * the message shows the URL with its password replaced by ***). */
int stream_url_parse(const char *url, struct stream_url *out, char *err, size_t errlen);

struct stream_options {
	const char *redis_url;     /* as for stream_url_parse */
	const char *stream;        /* input stream; entries carry field "tx" */
	const char *group;         /* consumer group, created when missing */
	const char *consumer;      /* this worker's name in the group */
	const char *out;           /* report stream; once-only keys (hashes of entry
	                            * ID -> digests) <out>:done:<stream>:<group>:<bucket> */
	const char *dead;          /* dead-letter stream */
	uint32_t batch;            /* entries per XREADGROUP / XAUTOCLAIM */
	uint32_t block_ms;         /* XREADGROUP BLOCK when nothing is in flight */
	uint32_t claim_idle_ms;    /* XAUTOCLAIM entries pending at least this long */
	uint32_t max_deliveries;   /* an entry delivered more often is dead-lettered */
	uint32_t max_in_flight;    /* entries read and not yet acked, at most */
	uint32_t done_ttl_s;       /* lifetime of an idempotence key */
	struct stream_live *live;  /* NULL, or where the loop publishes its stats */
};

/* Fills in the defaults (the names stay NULL except the ones with a
 * default: stream "txs", group "scanners", out "reports"). */
void stream_options_init(struct stream_options *opts);

struct stream_stats {
	uint64_t read;       /* entries delivered by XREADGROUP (new and history) */
	uint64_t claimed;    /* entries taken over by XAUTOCLAIM */
	uint64_t written;    /* reports written to the report stream */
	uint64_t duplicates; /* deliveries whose report was already written: acked only */
	uint64_t dead;       /* entries written to the dead-letter stream */
	uint64_t retried;    /* scans repeated because they failed only by waiting */
	uint64_t reconnects; /* connections made after the first */
	/* filled in for stream_live readers (and on return): */
	uint64_t acked;      /* written + duplicates + dead */
	uint64_t in_flight;  /* entries read and not acked yet (scanning or being written) */
	uint64_t window;     /* in_flight's bound now: --max-in-flight, or fewer while the
	                      * plugins scan slower (the paced window) */
	int64_t pending;     /* the group's pending entries (XINFO GROUPS); -1 unknown */
	int64_t lag;         /* entries the group has not been delivered yet; -1 unknown */
	bool connected;      /* holds a Redis connection now */
};

/* A running worker's stats for other threads (a metrics endpoint): the
 * loop copies them in under a mutex once per round, and every
 * STREAM_GROUP_INFO_MS asks Redis for the group's pending count and lag
 * (one XINFO GROUPS; only when opts->live is set). */
#define STREAM_GROUP_INFO_MS 2000
struct stream_live;
struct stream_live *stream_live_new(void); /* NULL when out of memory */
void stream_live_free(struct stream_live *live);
/* The latest stats; any thread. */
void stream_live_get(struct stream_live *live, struct stream_stats *out);

/* Runs the worker until *stop becomes non-zero, scanning with host (loaded,
 * owned by the caller, and not freed before this returns).
 *
 * *stop == 1 (first SIGTERM/SIGINT): stop reading, finish the transactions
 * in flight, write and ack their reports (waiting for Redis if it is down),
 * return 0. *stop >= 2: give up at once; entries not acked stay pending in
 * the group and another worker claims them. Returns -1 after printing why
 * when it gave up or could not start. stats (may be NULL) is filled in on
 * return.
 *
 * reload (may be NULL): when a signal handler makes it non-zero, the loop
 * sets it back to 0 and canary-reloads every plugin (txs_host_reload_all)
 * on this thread, logging the outcome as one JSON line on stderr. */
int stream_worker_run(struct txs_host *host, const struct stream_options *opts,
                      volatile sig_atomic_t *stop, volatile sig_atomic_t *reload,
                      struct stream_stats *stats);

/* XADDs every non-empty line read from fd (named name in messages; not
 * closed) to stream as field "tx", pipelined: up to 1000 per round trip
 * while input keeps coming, and at once whenever the input has nothing more
 * ready (at the latest 100 ms after a line was read). Lines are numbered
 * from 1 (empty ones included); those before from_line are skipped.
 *
 * A lost connection is retried with back-off (8 attempts in a row); the
 * lines sent without a reply are then looked for in the stream (after
 * ending the old connection with CLIENT KILL ID) and the missing ones sent
 * again. *count = entries Redis confirmed (also on failure). 0, or -1 after
 * printing why and where to resume: a line Redis refused, or lines whose
 * fate is unknown (named by their line numbers). */
int stream_publish(const char *redis_url, const char *stream, int fd, const char *name,
                   uint64_t from_line, uint64_t *count);

#endif
