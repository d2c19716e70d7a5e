/*
 * snapshot.h - what the server knows about its plugins, taken off the HTTP
 * threads.
 *
 * /readyz, /metrics and /v1/plugins must answer within 100 ms whatever the
 * plugins do, but every host call that reads plugin state may wait on a
 * plugin (a lock held by a restart that waits for a stuck engine, say). So
 * no HTTP thread makes those calls: one refresher thread does, and
 * publishes an immutable snapshot. A request asks for a fresh one and is
 * called back when it is published or when its wait has passed, whichever
 * comes first (a timer thread that never calls the host keeps that
 * promise); it then answers from the newest snapshot, stale or not, and
 * says how old it is. Requests that ask at the same time share one refresh.
 */
#ifndef TXS_HTTP_SNAPSHOT_H
#define TXS_HTTP_SNAPSHOT_H

#include "txscan.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a plugin is degraded (bits of snap_view.degraded[i]). */
enum {
	DEG_QUARANTINED = 1 << 0, /* an instance is quarantined */
	DEG_NOT_RUNNING = 1 << 1, /* an instance has no engine */
	DEG_OVERLOADED = 1 << 2,  /* answered `overloaded` within the last SNAP_OVERLOAD_WINDOW_S */
	DEG_QUEUE = 1 << 3,       /* its queue is at least half full */
	DEG_NOT_STARTED = 1 << 4, /* never loaded (allow_partial): retried in the background */
	DEG_BREAKER = 1 << 5,     /* its circuit breaker is open or half-open */
	DEG_STUCK = 1 << 6,       /* a thread of it is stuck in a native call */
};

/* Plugins with one of these bits cannot answer scans now. */
#define DEG_CANNOT_ANSWER (DEG_QUARANTINED | DEG_NOT_RUNNING | DEG_NOT_STARTED | DEG_BREAKER)

#define SNAP_OVERLOAD_WINDOW_S 10

/* One published snapshot; immutable. */
typedef struct snap_view {
	double taken_ms;          /* txs_now_ms() when taken; 0 = none yet */
	bool attached;            /* false: the host is gone (shutting down) */
	size_t n;
	txs_plugin_info *plugins; /* n */
	unsigned *degraded;       /* n; DEG_* bits */
	char *plugins_json;       /* txs_host_plugins_json, or NULL */
	uint32_t host_in_flight;
	uint64_t console_dropped;
	txs_report_counts reports;    /* txs_host_report_counts */
	txs_finding_count *findings;  /* nfindings; txs_host_finding_counts */
	size_t nfindings;
} snap_view;

/* The names of the DEG_* bits in mask, as a new JSON array of strings. */
json_t *snap_reasons_json(unsigned mask);

/* True when at least one plugin can answer scans (no DEG_CANNOT_ANSWER bit). */
bool snap_any_can_answer(const snap_view *v);

typedef struct snapshots snapshots;

/* Borrows a host for one refresh (NULL: detached) and gives it back. */
typedef struct txs_host *(*snap_host_get_fn)(void *userdata);
typedef void (*snap_host_put_fn)(void *userdata);

/* Starts the refresher (every period_ms, and on request) and the timer. */
int snapshots_new(snapshots **out, unsigned period_ms, snap_host_get_fn get, snap_host_put_fn put,
                  void *userdata);

/* Stops and joins both threads; the refresher must not be inside the host
 * (detach the host first). Accepts NULL. */
void snapshots_free(snapshots *s);

/* The newest snapshot, held until snapshots_release. Never NULL. */
const snap_view *snapshots_hold(snapshots *s);
void snapshots_release(snapshots *s, const snap_view *v);

/* Asks for a snapshot taken after this call; done(userdata) runs exactly
 * once, on the refresher or the timer thread, when one is published or
 * wait_ms has passed; or at once, on the caller's thread, when a refresh
 * has been running for wait_ms already (stuck in the host: the one that
 * would serve this request cannot start in time) or the threads stopped.
 * done must not block. */
void snapshots_request(snapshots *s, unsigned wait_ms, void (*done)(void *), void *userdata);

#endif
