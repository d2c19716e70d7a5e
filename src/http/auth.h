/*
 * auth.h - bearer tokens of `txscan serve`: who may call which route.
 *
 * Three roles, disjoint: `scan` (POST /v1/scan, /v1/scan/batch), `admin`
 * (restarts, reloads, the detailed /v1/plugins) and `metrics` (/metrics).
 * A token opens its own role's routes only; to give one client two roles,
 * list its token in both roles' sources. Tokens come from files (one per
 * line) and from environment variables (comma-separated), never from the
 * command line, which `ps` shows. auth_reload rereads the files (SIGHUP).
 *
 * Only SHA-256 digests of the tokens are kept. A presented token is hashed
 * and compared with every valid digest of every role, each comparison in
 * constant time and none cut short, so the time taken says neither which
 * token nor how much of one matched.
 *
 * Thread safety: auth_check is called on any thread at once with one
 * auth_reload; the rest on one thread.
 */
#ifndef TXS_HTTP_AUTH_H
#define TXS_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

enum auth_role { ROLE_SCAN, ROLE_ADMIN, ROLE_METRICS, NROLES };

/* Why a request was refused (the reason label of
 * txscan_http_auth_failures_total). */
enum auth_reason {
	AUTH_OK,
	AUTH_MISSING,   /* no Authorization header: 401 */
	AUTH_MALFORMED, /* not "Bearer <token>": 401 */
	AUTH_INVALID,   /* a token of no role: 401 */
	AUTH_FORBIDDEN, /* a valid token of another role: 403 */
	AUTH_CLIENT_CERT, /* mutual TLS: no client certificate, or one not trusted */
	NAUTH_REASONS
};

/* "missing", "malformed", ...; "ok" for AUTH_OK. */
const char *auth_reason_name(enum auth_reason r);

/* "scan", "admin", "metrics". */
const char *auth_role_name(enum auth_role r);

typedef struct auth_sources {
	const char *file[NROLES]; /* token file per role, or NULL */
	const char *env[NROLES];  /* environment value per role (read once), or NULL */
} auth_sources;

/* The least length of a token, in bytes. */
#define AUTH_MIN_TOKEN 16

typedef struct auth auth;

/* Reads every source. A source that is given must hold at least one
 * token; a token is 16 to 4096 visible ASCII bytes (no space). In a file,
 * blank lines and lines starting with '#' are skipped and spaces around a
 * token trimmed. -1 with a message naming the file and line (never the
 * token) in err; *out is NULL then. The strings of src are copied. */
int auth_new(auth **out, const auth_sources *src, char *err, size_t errlen);
void auth_free(auth *a);

/* Rereads the files (the environment is read once, by auth_new). A file
 * may now be empty: its role then has only its environment's tokens, or
 * none, and is closed. On failure (unreadable file, bad token) the tokens
 * in use stay and -1 comes back with err. */
int auth_reload(auth *a, char *err, size_t errlen);

/* True when the role was given a source: its routes need a token. For
 * scan and admin one of the two suffices to close both (a server with
 * scan tokens only has its admin routes closed, not open). */
bool auth_required(const auth *a, enum auth_role role);

/* True when any source of scan or admin tokens was given. */
bool auth_enabled(const auth *a);

/* Valid tokens of a role now. */
size_t auth_count(auth *a, enum auth_role role);

/* Checks an Authorization header value (NULL when absent) for role.
 * AUTH_OK when the role needs no token (auth_required false) or the token
 * is one of the role's; otherwise why not. *roles (may be NULL) gets the
 * bit set (1 << role) of the roles the token belongs to. a may be NULL
 * (nothing required). */
enum auth_reason auth_check(auth *a, const char *authorization, enum auth_role role,
                            unsigned *roles);

#endif
