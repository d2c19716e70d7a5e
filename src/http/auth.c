/*
 * auth.c - the token store of `txscan serve` (auth.h).
 *
 * A token set is immutable once built: a reload builds a new one from the
 * files and swaps it in under the write lock; auth_check holds the read
 * lock for one hash and a few constant-time comparisons. Digests only:
 * the tokens themselves are wiped as soon as they are hashed, and no
 * message ever quotes one (a bad one is named by file and line).
 *
 * SHA-256 and the constant-time comparison are GnuTLS's (gnutls_hash_fast,
 * gnutls_memcmp), the library the TLS side already links.
 */
#define _GNU_SOURCE
#include "auth.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DIGEST 32
#define MAX_TOKEN 4096
#define MAX_FILE (1u << 20) /* a token file larger than this is a mistake */

typedef struct digest {
	uint8_t b[DIGEST];
} digest;

/* The digests of one role. */
struct role_set {
	digest *d;
	size_t n, cap;
};

struct auth {
	pthread_rwlock_t lock;             /* guards set[] (the pointers' contents) */
	struct role_set set[NROLES];       /* file tokens + env tokens, per role */
	struct role_set env[NROLES];       /* env tokens, read once */
	char *file[NROLES];
	bool given[NROLES];
};

static const char *const reason_names[NAUTH_REASONS] = {
    "ok", "missing", "malformed", "invalid", "forbidden", "client_cert",
};

static const char *const role_names[NROLES] = {"scan", "admin", "metrics"};

const char *auth_reason_name(enum auth_reason r)
{
	return r < NAUTH_REASONS ? reason_names[r] : "?";
}

const char *auth_role_name(enum auth_role r)
{
	return r < NROLES ? role_names[r] : "?";
}

static void sha256(const char *s, size_t n, digest *out)
{
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, s, n, out->b) < 0)
		abort(); /* SHA-256 is always there: a failure is a broken library */
}

static int set_add(struct role_set *s, const char *tok, size_t n)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4;
		digest *d = realloc(s->d, cap * sizeof *d);
		if (!d)
			return -1;
		s->d = d;
		s->cap = cap;
	}
	sha256(tok, n, &s->d[s->n++]);
	return 0;
}

static int set_copy(struct role_set *dst, const struct role_set *src)
{
	if (!src->n)
		return 0;
	dst->d = malloc(src->n * sizeof *dst->d);
	if (!dst->d)
		return -1;
	memcpy(dst->d, src->d, src->n * sizeof *dst->d);
	dst->n = dst->cap = src->n;
	return 0;
}

static void set_clear(struct role_set *s)
{
	free(s->d);
	memset(s, 0, sizeof *s);
}

/* A token is 16..4096 bytes of visible ASCII; NULL when valid, else why. */
static const char *token_problem(const char *t, size_t n)
{
	if (n < AUTH_MIN_TOKEN)
		return "a token must be at least 16 characters";
	if (n > MAX_TOKEN)
		return "a token must be at most 4096 characters";
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
			return "a token holds only visible ASCII characters (no spaces)";
	return NULL;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Adds every token of text (lines; or comma-separated when env). */
static int parse_tokens(char *text, bool env, const char *where, struct role_set *s, char *err,
                        size_t errlen)
{
	unsigned line = 0;
	for (char *p = text, *next; p; p = next) {
		next = strchr(p, env ? ',' : '\n');
		if (next)
			*next++ = '\0';
		line++;
		while (is_blank(*p))
			p++;
		size_t n = strlen(p);
		while (n && is_blank(p[n - 1]))
			n--;
		if (n == 0 || (!env && p[0] == '#'))
			continue;
		const char *why = token_problem(p, n);
		if (why) {
			snprintf(err, errlen, env ? "%s: token %u: %s" : "%s:%u: %s", where, line, why);
			return -1;
		}
		if (set_add(s, p, n) < 0) {
			snprintf(err, errlen, "%s: out of memory", where);
			return -1;
		}
	}
	return 0;
}

/* Reads a whole (small) file into a NUL-terminated buffer. */
static char *read_small(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n = 0;
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(MAX_FILE + 1);
	if (buf)
		n = fread(buf, 1, MAX_FILE + 1, f);
	if (!buf || ferror(f) || n > MAX_FILE) {
		snprintf(err, errlen, "%s: %s", path, !buf ? "out of memory"
		                                    : n > MAX_FILE ? "larger than 1 MiB"
		                                                   : strerror(errno));
		free(buf);
		buf = NULL;
	} else {
		buf[n] = '\0';
		*len = n;
	}
	fclose(f);
	return buf;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* The file's tokens into s; -1 with err when unreadable or invalid. */
static int load_file(const char *path, struct role_set *s, char *err, size_t errlen)
{
	size_t n = 0;
	char *text = read_small(path, &n, err, errlen);
	if (!text)
		return -1;
	int rc = parse_tokens(text, false, path, s, err, errlen);
	explicit_bzero(text, n);
	free(text);
	return rc;
}

/* Builds every role's set from its file and env tokens into out[]. */
static int load_all(const auth *a, struct role_set out[NROLES], bool at_start, char *err,
                    size_t errlen)
{
	memset(out, 0, NROLES * sizeof *out);
	for (int r = 0; r < NROLES; r++) {
		if (set_copy(&out[r], &a->env[r]) < 0)
			goto fail;
		if (a->file[r] && load_file(a->file[r], &out[r], err, errlen) < 0)
			goto fail_quiet;
		if (at_start && a->file[r] && out[r].n == a->env[r].n) {
			snprintf(err, errlen, "%s: no token in the file (--%s-token-file)", a->file[r],
			         role_names[r]);
			goto fail_quiet;
		}
	}
	return 0;
fail:
	snprintf(err, errlen, "out of memory");
fail_quiet:
	for (int r = 0; r < NROLES; r++)
		set_clear(&out[r]);
	return -1;
}

static int load_env(auth *a, const auth_sources *src, char *err, size_t errlen)
{
	static const char *const names[NROLES] = {"TXSCAN_SCAN_TOKEN", "TXSCAN_ADMIN_TOKEN",
	                                           "TXSCAN_METRICS_TOKEN"};
	for (int r = 0; r < NROLES; r++) {
		if (!src->env[r] || !*src->env[r])
			continue;
		char *copy = strdup(src->env[r]);
		if (!copy) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		int rc = parse_tokens(copy, true, names[r], &a->env[r], err, errlen);
		wipe_free(copy);
		if (rc < 0)
			return -1;
		if (a->env[r].n == 0) {
			snprintf(err, errlen, "%s is set but holds no token", names[r]);
			return -1;
		}
		a->given[r] = true;
	}
	return 0;
}

int auth_new(auth **out, const auth_sources *src, char *err, size_t errlen)
{
	auth *a = calloc(1, sizeof *a);
	*out = NULL;
	if (!a || pthread_rwlock_init(&a->lock, NULL)) {
		free(a);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int r = 0; r < NROLES; r++) {
		if (src->file[r] && !(a->file[r] = strdup(src->file[r])))
			goto fail;
		a->given[r] = a->file[r] != NULL;
	}
	if (load_env(a, src, err, errlen) < 0 || load_all(a, a->set, true, err, errlen) < 0)
		goto fail_quiet;
	*out = a;
	return 0;
fail:
	snprintf(err, errlen, "out of memory");
fail_quiet:
	auth_free(a);
	return -1;
}

void auth_free(auth *a)
{
	if (!a)
		return;
	for (int r = 0; r < NROLES; r++) {
		if (a->set[r].d)
			explicit_bzero(a->set[r].d, a->set[r].n * sizeof *a->set[r].d);
		set_clear(&a->set[r]);
		set_clear(&a->env[r]);
		free(a->file[r]);
	}
	pthread_rwlock_destroy(&a->lock);
	free(a);
}

int auth_reload(auth *a, char *err, size_t errlen)
{
	struct role_set fresh[NROLES], old[NROLES];
	if (load_all(a, fresh, false, err, errlen) < 0)
		return -1;
	pthread_rwlock_wrlock(&a->lock);
	memcpy(old, a->set, sizeof old);
	memcpy(a->set, fresh, sizeof fresh);
	pthread_rwlock_unlock(&a->lock);
	for (int r = 0; r < NROLES; r++)
		set_clear(&old[r]);
	return 0;
}

bool auth_required(const auth *a, enum auth_role role)
{
	if (!a)
		return false;
	if (role == ROLE_METRICS)
		return a->given[ROLE_METRICS];
	return a->given[ROLE_SCAN] || a->given[ROLE_ADMIN];
}

bool auth_enabled(const auth *a)
{
	return auth_required(a, ROLE_SCAN);
}

size_t auth_count(auth *a, enum auth_role role)
{
	pthread_rwlock_rdlock(&a->lock);
	size_t n = a->set[role].n;
	pthread_rwlock_unlock(&a->lock);
	return n;
}

/* The roles whose sets hold d: every digest of every role is compared,
 * none skipped, each comparison constant-time. */
static unsigned match_roles(auth *a, const digest *d)
{
	unsigned roles = 0;
	pthread_rwlock_rdlock(&a->lock);
	for (unsigned r = 0; r < NROLES; r++) {
		unsigned hit = 0;
		for (size_t i = 0; i < a->set[r].n; i++)
			hit |= gnutls_memcmp(a->set[r].d[i].b, d->b, DIGEST) == 0;
		roles |= hit << r;
	}
	pthread_rwlock_unlock(&a->lock);
	return roles;
}

/* The token of "Bearer <token>" (scheme case-insensitive, RFC 6750), or
 * NULL; *n its length. */
static const char *bearer(const char *h, size_t *n)
{
	while (*h == ' ' || *h == '\t')
		h++;
	if (strncasecmp(h, "Bearer", 6) || (h[6] != ' ' && h[6] != '\t'))
		return NULL;
	h += 6;
	while (*h == ' ' || *h == '\t')
		h++;
	size_t len = strlen(h);
	while (len && (h[len - 1] == ' ' || h[len - 1] == '\t'))
		len--;
	*n = len;
	return len ? h : NULL;
}

enum auth_reason auth_check(auth *a, const char *authorization, enum auth_role role,
                            unsigned *roles)
{
	size_t n = 0;
	digest d;
	if (roles)
		*roles = 0;
	if (!auth_required(a, role))
		return AUTH_OK;
	if (!authorization)
		return AUTH_MISSING;
	const char *tok = bearer(authorization, &n);
	if (!tok)
		return AUTH_MALFORMED;
	sha256(tok, n, &d);
	unsigned got = match_roles(a, &d);
	if (roles)
		*roles = got;
	if (got & (1u << role))
		return AUTH_OK;
	return got ? AUTH_FORBIDDEN : AUTH_INVALID;
}
