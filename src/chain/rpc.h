/*
 * rpc.h - a JSON-RPC 2.0 client over HTTP(S) (libcurl), for Ethereum nodes.
 *
 * One client = one connection (kept alive) used by one thread at a time.
 * Every byte from the node is untrusted: a response is read up to a cap,
 * must be JSON, must carry the id we sent (each id once in a batch), and
 * exactly one of result / error. Transport failures (no connection, a
 * timeout, HTTP 429 or 5xx) are retried with doubling back-off; anything
 * else is answered at once. Error messages never carry the URL's
 * credentials or the Authorization header.
 */
#ifndef TXS_CHAIN_RPC_H
#define TXS_CHAIN_RPC_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rpc_client rpc_client;

enum rpc_rc {
	RPC_OK = 0,
	RPC_ENET = -1,    /* the node could not be reached (after the retries) */
	RPC_EPROTO = -2,  /* the answer broke the protocol (not JSON, wrong id, too big, ...),
	                     or a failure that waiting will not cure (TLS, a bad URL) */
	RPC_EREMOTE = -3, /* the node answered a JSON-RPC error (rpc_error_code says which) */
	RPC_ENOMEM = -4,
};

struct rpc_options {
	uint32_t timeout_ms;  /* one HTTP request, connect included; default 10000 */
	uint32_t retries;     /* transport retries after the first try; default 4 */
	uint32_t backoff_ms;  /* first back-off, doubling to 5 s; default 100 */
	size_t max_response;  /* bytes of one response body; default 64 MiB */
	const char *auth;     /* Authorization header value, or NULL */
};

/* url: http:// or https://. opt may be NULL. On failure *out is NULL and
 * err holds why. */
int rpc_new(rpc_client **out, const char *url, const struct rpc_options *opt, char *err,
            size_t errlen);
void rpc_free(rpc_client *c);
/* A second client to the same node with the same options (and abort flag),
 * for another thread. */
int rpc_dup(rpc_client **out, const rpc_client *c, char *err, size_t errlen);

/* One call. params is stolen (an array; NULL = []). On 0, *result is the
 * result (never NULL: JSON null is json_null()); the caller decrefs it. */
int rpc_call(rpc_client *c, const char *method, json_t *params, json_t **result);

/* n calls in one HTTP request (a JSON-RPC batch). params[i] are stolen.
 * On 0 every results[i] is set (the caller decrefs each). When any element
 * is an error, the batch fails with RPC_EREMOTE naming its method and no
 * result is kept. */
int rpc_batch(rpc_client *c, size_t n, const char *const *methods, json_t **params,
              json_t **results);

/* The last failure's message (never NULL) and, for RPC_EREMOTE, the
 * node's error code. */
const char *rpc_error(const rpc_client *c);
long rpc_error_code(const rpc_client *c);

/* While *flag is non-zero, transfers and back-off waits stop at once
 * (RPC_ENET, "interrupted"): a stop request never waits for a dead node. */
void rpc_set_abort(rpc_client *c, const volatile sig_atomic_t *flag);

/* The node's address without credentials or path ("http://host:port"),
 * for messages. */
const char *rpc_display(const rpc_client *c);

#endif
