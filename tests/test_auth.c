/*
 * test_auth.c - the token store of `txscan serve` (src/http/auth.c): file
 * and environment formats, roles, what a reload keeps, and checks running
 * on other threads while tokens are reloaded.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http/auth.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCAN1 "scan-token-one-0123456789"
#define SCAN2 "scan-token-two-0123456789"
#define SCAN3 "scan-token-three-0123456789"
#define ADMIN "admin-token-0123456789"
#define BOTH "shared-token-0123456789"

static char dir[64];

static const char *file_with(const char *name, const char *text)
{
	static char paths[8][128];
	static int next;
	char *p = paths[next++ % 8];
	snprintf(p, 128, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/txs-auth-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	static const char *const names[] = {"scan", "admin", "bad", "space", "empty", "rot", "race"};
	char p[128];
	(void)state;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		unlink(p);
	}
	return rmdir(dir);
}

static enum auth_reason check(auth *a, const char *token, enum auth_role role)
{
	char h[256];
	snprintf(h, sizeof h, "Bearer %s", token);
	return auth_check(a, h, role, NULL);
}

static auth *load(const char *scan, const char *admin, const char *scan_env)
{
	auth_sources src = {.file = {[ROLE_SCAN] = scan, [ROLE_ADMIN] = admin},
	                    .env = {[ROLE_SCAN] = scan_env}};
	char err[256];
	auth *a = NULL;
	int rc = auth_new(&a, &src, err, sizeof err);
	if (rc < 0)
		print_message("auth_new: %s\n", err);
	assert_int_equal(rc, 0);
	return a;
}

static void file_format_and_roles(void **state)
{
	(void)state;
	const char *scan = file_with("scan", "# scan\n\n  " SCAN1 "\t\r\n" SCAN2 "\n" BOTH "\n");
	const char *admin = file_with("admin", ADMIN "\n" BOTH);
	auth *a = load(scan, admin, NULL);
	assert_true(auth_enabled(a));
	assert_false(auth_required(a, ROLE_METRICS));
	assert_int_equal(auth_count(a, ROLE_SCAN), 3);
	assert_int_equal(auth_count(a, ROLE_ADMIN), 2);
	assert_int_equal(check(a, SCAN1, ROLE_SCAN), AUTH_OK);
	assert_int_equal(check(a, SCAN2, ROLE_SCAN), AUTH_OK);
	assert_int_equal(check(a, SCAN1, ROLE_ADMIN), AUTH_FORBIDDEN);
	assert_int_equal(check(a, ADMIN, ROLE_SCAN), AUTH_FORBIDDEN); /* admin is not scan */
	assert_int_equal(check(a, BOTH, ROLE_SCAN), AUTH_OK);         /* listed twice: both */
	assert_int_equal(check(a, BOTH, ROLE_ADMIN), AUTH_OK);
	unsigned roles = 0;
	assert_int_equal(auth_check(a, "Bearer " BOTH, ROLE_METRICS, &roles), AUTH_OK);
	assert_int_equal(auth_check(a, "bearer  " SCAN1 " ", ROLE_ADMIN, &roles), AUTH_FORBIDDEN);
	assert_int_equal(roles, 1u << ROLE_SCAN);
	/* Near misses are not tokens. */
	assert_int_equal(check(a, "scan-token-one-012345678", ROLE_SCAN), AUTH_INVALID);
	assert_int_equal(check(a, SCAN1 "0", ROLE_SCAN), AUTH_INVALID);
	assert_int_equal(check(a, "# scan", ROLE_SCAN), AUTH_INVALID);
	assert_int_equal(auth_check(a, NULL, ROLE_SCAN, NULL), AUTH_MISSING);
	assert_int_equal(auth_check(a, "Basic " SCAN1, ROLE_SCAN, NULL), AUTH_MALFORMED);
	assert_int_equal(auth_check(a, "Bearer", ROLE_SCAN, NULL), AUTH_MALFORMED);
	assert_int_equal(auth_check(a, "Bearer ", ROLE_SCAN, NULL), AUTH_MALFORMED);
	assert_int_equal(auth_check(a, "Bearer" SCAN1, ROLE_SCAN, NULL), AUTH_MALFORMED);
	auth_free(a);
}

static void environment_and_open_roles(void **state)
{
	(void)state;
	auth *a = load(NULL, NULL, " " SCAN1 "," SCAN2 " ,");
	assert_int_equal(auth_count(a, ROLE_SCAN), 2);
	assert_int_equal(check(a, SCAN2, ROLE_SCAN), AUTH_OK);
	/* Scan tokens alone close the admin routes; metrics stays open. */
	assert_int_equal(check(a, SCAN2, ROLE_ADMIN), AUTH_FORBIDDEN);
	assert_int_equal(auth_check(a, NULL, ROLE_ADMIN, NULL), AUTH_MISSING);
	assert_int_equal(auth_check(a, NULL, ROLE_METRICS, NULL), AUTH_OK);
	auth_free(a);
	/* No source: everything open, NULL included. */
	a = load(NULL, NULL, NULL);
	assert_false(auth_enabled(a));
	assert_int_equal(auth_check(a, NULL, ROLE_ADMIN, NULL), AUTH_OK);
	assert_int_equal(auth_check(NULL, NULL, ROLE_SCAN, NULL), AUTH_OK);
	auth_free(a);
}

static void bad_sources(void **state)
{
	(void)state;
	char err[256];
	auth *a = (auth *)1;
	auth_sources src = {.file = {[ROLE_SCAN] = file_with("bad", "# c\n" SCAN1 "\nshort\n")}};
	assert_int_equal(auth_new(&a, &src, err, sizeof err), -1);
	assert_null(a);
	assert_non_null(strstr(err, ":3: a token must be at least 16"));
	assert_null(strstr(err, "short\n"));
	src.file[ROLE_SCAN] = file_with("space", "token with spaces inside\n");
	assert_int_equal(auth_new(&a, &src, err, sizeof err), -1);
	assert_non_null(strstr(err, "visible ASCII"));
	src.file[ROLE_SCAN] = file_with("empty", "# none yet\n\n");
	assert_int_equal(auth_new(&a, &src, err, sizeof err), -1);
	assert_non_null(strstr(err, "no token"));
	src.file[ROLE_SCAN] = NULL;
	src.env[ROLE_ADMIN] = ",,";
	assert_int_equal(auth_new(&a, &src, err, sizeof err), -1);
	assert_non_null(strstr(err, "TXSCAN_ADMIN_TOKEN"));
}

static void reload_keeps_or_replaces(void **state)
{
	(void)state;
	char err[256];
	const char *scan = file_with("rot", SCAN1 "\n" SCAN2 "\n");
	auth *a = load(scan, NULL, SCAN3);
	file_with("rot", SCAN2 "\n");
	assert_int_equal(auth_reload(a, err, sizeof err), 0);
	assert_int_equal(check(a, SCAN1, ROLE_SCAN), AUTH_INVALID);
	assert_int_equal(check(a, SCAN2, ROLE_SCAN), AUTH_OK);
	assert_int_equal(check(a, SCAN3, ROLE_SCAN), AUTH_OK); /* the environment's stays */
	/* A bad file keeps the tokens in use. */
	file_with("rot", SCAN1 "\nshort\n");
	assert_int_equal(auth_reload(a, err, sizeof err), -1);
	assert_int_equal(check(a, SCAN1, ROLE_SCAN), AUTH_INVALID);
	assert_int_equal(check(a, SCAN2, ROLE_SCAN), AUTH_OK);
	/* An empty one leaves the role with the environment's token only: closed, not open. */
	file_with("rot", "\n");
	assert_int_equal(auth_reload(a, err, sizeof err), 0);
	assert_int_equal(check(a, SCAN2, ROLE_SCAN), AUTH_INVALID);
	assert_int_equal(auth_check(a, NULL, ROLE_SCAN, NULL), AUTH_MISSING);
	assert_int_equal(check(a, SCAN3, ROLE_SCAN), AUTH_OK);
	auth_free(a);
}

struct checker {
	auth *a;
	atomic_bool *stop;
	unsigned wrong, done;
};

static void *checker_main(void *arg)
{
	struct checker *c = arg;
	while (!atomic_load(c->stop)) {
		if (check(c->a, SCAN2, ROLE_SCAN) != AUTH_OK) /* in every version of the file */
			c->wrong++;
		c->done++;
	}
	return NULL;
}

static void checks_during_reloads(void **state)
{
	(void)state;
	char err[256];
	const char *scan = file_with("race", SCAN1 "\n" SCAN2 "\n");
	auth *a = load(scan, NULL, NULL);
	atomic_bool stop = false;
	struct checker c[2] = {{a, &stop, 0, 0}, {a, &stop, 0, 0}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, checker_main, &c[i]), 0);
	int failed_reloads = 0;
	for (int i = 0; i < 300; i++) {
		file_with("race", i % 2 ? SCAN1 "\n" SCAN2 "\n" : SCAN2 "\n" SCAN3 "\n");
		failed_reloads += auth_reload(a, err, sizeof err) != 0;
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(failed_reloads, 0);
	assert_int_equal(c[0].wrong + c[1].wrong, 0);
	assert_true(c[0].done + c[1].done > 0);
	auth_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(file_format_and_roles),
	    cmocka_unit_test(environment_and_open_roles),
	    cmocka_unit_test(bad_sources),
	    cmocka_unit_test(reload_keeps_or_replaces),
	    cmocka_unit_test(checks_during_reloads),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
