/*
 * test_host.c - manifests, fan-out and reports through the public host API.
 * Plugins are written into a temporary folder per test.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <time.h>

#include "host/plugin.h"
#include "txscan.h"

static char root[256];

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* root/<id>/{plugin.json,index.js}; extra is spliced into the manifest. */
static void add_plugin(const char *id, const char *extra, const char *code)
{
	char dir[512], manifest[1024];
	snprintf(dir, sizeof dir, "%s/%s", root, id);
	mkdir(dir, 0755);
	snprintf(manifest, sizeof manifest,
	         "{\"id\": \"%s\", \"version\": \"1.0.0\", \"main\": \"index.js\"%s%s}", id,
	         extra ? ", " : "", extra ? extra : "");
	write_file(dir, "plugin.json", manifest);
	write_file(dir, "index.js", code);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof root, "/tmp/txs-host-XXXXXX");
	return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static txs_host *host_of(const char *path)
{
	txs_host *h = NULL;
	txs_host_options o = {.console_quiet = true};
	assert_int_equal(txs_host_new(&h, &o), 0);
	if (txs_host_load(h, path))
		fail_msg("load %s: %s", path, txs_last_error());
	return h;
}

static json_t *scan_json(txs_host *h, const char *tx)
{
	txs_report *rep;
	assert_int_equal(txs_host_scan(h, tx, strlen(tx), 0, &rep), 0);
	json_t *j = json_loads(txs_report_json(rep, NULL), 0, NULL);
	assert_non_null(j);
	txs_report_free(rep);
	return j;
}

static json_t *plugin_entry(json_t *report, const char *id)
{
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(report, "plugins"), i, p)
	{
		if (!strcmp(json_string_value(json_object_get(p, "id")), id))
			return p;
	}
	fail_msg("no plugin %s in the report", id);
	return NULL;
}

static const char *status_of(json_t *report, const char *id)
{
	return json_string_value(json_object_get(plugin_entry(report, id), "status"));
}

/* ---- the plugin set changing under scans ---------------------------------- */

struct churn {
	txs_host *h;
	_Atomic bool stop;
	_Atomic uint64_t scans, incomplete, readings;
	char first_bad[512]; /* under the test: written once by a scanner */
	_Atomic bool bad_seen;
};

static void *churn_scanner(void *arg)
{
	struct churn *c = arg;
	const char *tx = "{\"hash\":\"0x1\"}";
	while (!atomic_load(&c->stop)) {
		txs_report *rep = NULL;
		if (txs_host_scan(c->h, tx, strlen(tx), 0, &rep) != 0)
			continue;
		if (!txs_report_complete(rep) && !atomic_exchange(&c->bad_seen, true))
			snprintf(c->first_bad, sizeof c->first_bad, "%s", txs_report_json(rep, NULL));
		atomic_fetch_add(&c->incomplete, !txs_report_complete(rep));
		atomic_fetch_add(&c->scans, 1);
		txs_report_free(rep);
	}
	return NULL;
}

/* Readers that hold plugins across a call: info, JSON, counts, ready. */
static void *churn_reader(void *arg)
{
	struct churn *c = arg;
	txs_finding_count rows[16];
	while (!atomic_load(&c->stop)) {
		txs_plugin_info info;
		for (size_t i = 0; i < txs_host_plugin_count(c->h); i++)
			txs_host_plugin_info(c->h, i, &info);
		char *json = NULL;
		if (txs_host_plugins_json(c->h, &json) == 0)
			free(json);
		txs_host_finding_counts(c->h, rows, 16);
		txs_host_ready(c->h);
		atomic_fetch_add(&c->readings, 1);
	}
	return NULL;
}

static void remove_folder(const char *id)
{
	char dir[512];
	snprintf(dir, sizeof dir, "%s/%s", root, id);
	assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* Reloads of every plugin add and remove a plugin folder while two threads
 * scan and one reads: every scan is answered, complete (a removed plugin's
 * scans in flight finish ok, none is "stopped" or "unavailable"). */
static void test_rescan_under_scans(void **state)
{
	(void)state;
	const char *code = "module.exports = { scanTransaction() {"
	                   " return { code: 'SEEN', severity: 'low', message: 'm' }; } };";
	add_plugin("keep", NULL, code);
	add_plugin("flip", NULL, code);
	/* a deadline far off: each reload also rebuilds "keep" (in process
	 * isolation a new process), and a loaded machine may make scans wait
	 * behind that past the default 300 ms; what must not happen is a scan
	 * answered "stopped" or "unavailable" */
	txs_host_options o = {.console_quiet = true, .scan_timeout_ms = 30000};
	struct churn c = {0};
	assert_int_equal(txs_host_new(&c.h, &o), 0);
	assert_int_equal(txs_host_load(c.h, root), 0);
	pthread_t th[3];
	assert_int_equal(pthread_create(&th[0], NULL, churn_scanner, &c), 0);
	assert_int_equal(pthread_create(&th[1], NULL, churn_scanner, &c), 0);
	assert_int_equal(pthread_create(&th[2], NULL, churn_reader, &c), 0);
	int rc_out = 0, rc_in = 0;
	size_t n_out = 0, n_in = 0;
	for (int round = 0; round < 15; round++) {
		remove_folder("flip");
		rc_out |= txs_host_reload_all(c.h);
		n_out += txs_host_plugin_count(c.h) == 1;
		add_plugin("flip", NULL, code);
		rc_in |= txs_host_reload_all(c.h);
		n_in += txs_host_plugin_count(c.h) == 2;
	}
	atomic_store(&c.stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(rc_out, 0);
	assert_int_equal(rc_in, 0);
	assert_int_equal(n_out, 15);
	assert_int_equal(n_in, 15);
	if (atomic_load(&c.incomplete))
		fail_msg("%llu of %llu scans incomplete; the first: %s",
		         (unsigned long long)c.incomplete, (unsigned long long)c.scans, c.first_bad);
	assert_true(atomic_load(&c.scans) > 0);
	assert_true(atomic_load(&c.readings) > 0);
	txs_host_free(c.h);
}

/* ---- manifests ------------------------------------------------------------ */

static void expect_manifest_error(const char *text, const char *needle)
{
	plugin_manifest m;
	char *err = NULL;
	int rc = plugin_manifest_parse("p/plugin.json", text, strlen(text), &m, &err);
	if (rc == 0 || !err || !strstr(err, needle))
		fail_msg("%s: got rc %d, '%s', wanted '%s'", text, rc, err ? err : "", needle);
	free(err);
}

static void test_manifest_validation(void **state)
{
	(void)state;
	const char *ok = "{\"id\":\"a-1\",\"version\":\"1\",\"main\":\"index.js\"}";
	plugin_manifest m;
	char *err = NULL;
	assert_int_equal(plugin_manifest_parse("p/plugin.json", ok, strlen(ok), &m, &err), 0);
	assert_int_equal(m.limits.timeout_ms, 50);
	assert_int_equal(m.limits.heap_limit_mb, 64);
	assert_int_equal(m.limits.heap_restart_mb, 32);
	assert_int_equal(m.limits.restart_every, 100000);
	assert_int_equal(m.instances, 1);
	assert_string_equal(m.config_json, "{}");
	plugin_manifest_clear(&m);

	expect_manifest_error("{\"id\":", "p/plugin.json:1:");
	expect_manifest_error("[1]", "must be a JSON object");
	expect_manifest_error("{\"version\":\"1\",\"main\":\"i.js\"}", "missing required key \"id\"");
	expect_manifest_error("{\"id\":\"a\",\"main\":\"i.js\"}", "missing required key \"version\"");
	expect_manifest_error("{\"id\":\"a\",\"version\":\"1\"}", "missing required key \"main\"");
	expect_manifest_error("{\"id\":\"Bad_Id\",\"version\":\"1\",\"main\":\"i.js\"}", "id must be 1-64");
	expect_manifest_error("{\"id\":\"a\",\"version\":\"\",\"main\":\"i.js\"}", "version must be a non-empty");
	expect_manifest_error("{\"id\":\"a\",\"version\":\"1\",\"main\":\"../x.js\"}", "main must be a path inside");
	expect_manifest_error("{\"id\":\"a\",\"version\":\"1\",\"main\":\"i.js\",\"timeout_ms\":-5}",
	                      "timeout_ms must be a positive integer <= 60000 (got -5)");
	expect_manifest_error("{\"id\":\"a\",\"version\":\"1\",\"main\":\"i.js\",\"timeout_ms\":\"50\"}",
	                      "timeout_ms must be a positive integer");
	expect_manifest_error("{\"id\":\"a\",\"version\":\"1\",\"main\":\"i.js\",\"heap_limit_mb\":0}",
	                      "heap_limit_mb must be a positive integer");
	expect_manifest_error("{\"id\":\"a\",\"version\":\"1\",\"main\":\"i.js\",\"heap_limit_mb\":16,\"heap_restart_mb\":32}",
	                      "heap_restart_mb (32) must not exceed heap_limit_mb (16)");
	expect_manifest_error("{\"id\":\"a\",\"version\":\"1\",\"main\":\"i.js\",\"restart_every\":-1}",
	                      "restart_every must be an integer from 0");
	expect_manifest_error("{\"id\":\"a\",\"version\":\"1\",\"main\":\"i.js\",\"instances\":0}",
	                      "instances must be a positive integer");
	expect_manifest_error("{\"id\":\"a\",\"version\":\"1\",\"main\":\"i.js\",\"config\":[]}",
	                      "config must be an object");
	expect_manifest_error("{\"id\":\"a\",\"version\":\"1\",\"main\":\"i.js\",\"timeout\":5}",
	                      "unknown key \"timeout\"");
	expect_manifest_error("{\"id\":\"a\",\"id\":\"b\",\"version\":\"1\",\"main\":\"i.js\"}",
	                      "duplicate");
}

static void test_load_errors(void **state)
{
	(void)state;
	txs_host *h = NULL;
	txs_host_options o = {.console_quiet = true};
	assert_int_equal(txs_host_new(&h, &o), 0);
	char dir[512];
	snprintf(dir, sizeof dir, "%s/nomain", root);
	mkdir(dir, 0755);
	write_file(dir, "plugin.json", "{\"id\":\"nomain\",\"version\":\"1\",\"main\":\"gone.js\"}");
	assert_int_not_equal(txs_host_load(h, dir), 0);
	assert_non_null(strstr(txs_last_error(), "nomain/plugin.json: main file"));
	assert_non_null(strstr(txs_last_error(), "gone.js"));
	assert_int_equal(txs_host_plugin_count(h), 0);

	add_plugin("dup1", NULL, "module.exports={scanTransaction(){}}");
	snprintf(dir, sizeof dir, "%s/dup2", root);
	mkdir(dir, 0755);
	write_file(dir, "plugin.json", "{\"id\":\"dup1\",\"version\":\"1\",\"main\":\"index.js\"}");
	write_file(dir, "index.js", "module.exports={scanTransaction(){}}");
	char both[512];
	snprintf(both, sizeof both, "%s/dup1", root);
	assert_int_equal(txs_host_load(h, both), 0);
	assert_int_not_equal(txs_host_load(h, dir), 0);
	assert_non_null(strstr(txs_last_error(), "duplicate plugin id \"dup1\""));

	snprintf(dir, sizeof dir, "%s/does-not-exist", root);
	assert_int_not_equal(txs_host_load(h, dir), 0);
	assert_non_null(strstr(txs_last_error(), "does-not-exist"));
	txs_host_free(h);
}

/* ---- plugin folders: nothing outside is read ------------------------------ */

/* dir = root/<name>, with a plugin.json naming main. */
static void manifest_dir(const char *name, const char *main, char *dir, size_t n)
{
	char text[512];
	snprintf(dir, n, "%s/%s", root, name);
	mkdir(dir, 0755);
	snprintf(text, sizeof text, "{\"id\":\"%s\",\"version\":\"1\",\"main\":\"%s\"}", name, main);
	write_file(dir, "plugin.json", text);
}

static void link_in(const char *dir, const char *name, const char *target)
{
	char path[600];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	assert_int_equal(symlink(target, path), 0);
}

/* Loading dir fails naming the folder rule, and quotes nothing of the file. */
static void expect_refused(const char *dir, const char *needle)
{
	txs_host *h = NULL;
	txs_host_options o = {.console_quiet = true};
	assert_int_equal(txs_host_new(&h, &o), 0);
	int rc = txs_host_load(h, dir);
	const char *err = txs_last_error();
	if (!rc || !strstr(err, needle) || strstr(err, "TOPSECRET"))
		fail_msg("%s: rc %d, error '%s', wanted '%s' and no file text", dir, rc, err, needle);
	assert_int_equal(txs_host_plugin_count(h), 0);
	txs_host_free(h);
}

static void test_symlinks_out(void **state)
{
	(void)state;
	char outside[512], secret[600], dir[512];
	/* a file and a folder outside the plugin folders, which JS would quote:
	 * "ReferenceError: Can't find variable: TOPSECRET_TOKEN" */
	snprintf(outside, sizeof outside, "%s/outside", root);
	mkdir(outside, 0755);
	write_file(outside, "secret.js", "TOPSECRET_TOKEN\n");
	write_file(outside, "plugin.json", "{\"id\":\"evil\",\"version\":\"1\",\"main\":\"index.js\"}");
	snprintf(secret, sizeof secret, "%s/secret.js", outside);
	alarm(20); /* a FIFO read by fopen() once hung here */

	manifest_dir("linked-file", "index.js", dir, sizeof dir);
	link_in(dir, "index.js", secret);
	expect_refused(dir, "linked-file/index.js: leads outside the plugin folder");

	manifest_dir("linked-folder", "etc/secret.js", dir, sizeof dir);
	link_in(dir, "etc", outside);
	expect_refused(dir, "linked-folder/etc/secret.js: leads outside the plugin folder");

	manifest_dir("proc-self", "self/environ", dir, sizeof dir);
	link_in(dir, "self", "/proc/self");
	expect_refused(dir, "proc-self/self/environ: leads outside the plugin folder");

	manifest_dir("fifo", "pipe.js", dir, sizeof dir);
	char fifo[600];
	snprintf(fifo, sizeof fifo, "%s/pipe.js", dir);
	assert_int_equal(mkfifo(fifo, 0644), 0);
	expect_refused(dir, "fifo/pipe.js: not a regular file (a FIFO)");

	snprintf(dir, sizeof dir, "%s/linked-manifest", root);
	mkdir(dir, 0755);
	write_file(dir, "index.js", "module.exports = { scanTransaction() {} };");
	char target[600];
	snprintf(target, sizeof target, "%s/plugin.json", outside);
	link_in(dir, "plugin.json", target);
	expect_refused(dir, "linked-manifest/plugin.json: leads outside the plugin folder");

	manifest_dir("dir-main", "lib", dir, sizeof dir);
	snprintf(target, sizeof target, "%s/lib", dir);
	mkdir(target, 0755);
	expect_refused(dir, "dir-main/lib: not a regular file (a folder)");
	alarm(0);

	/* a symlink that stays inside the folder is fine */
	manifest_dir("inside", "lib/index.js", dir, sizeof dir);
	snprintf(target, sizeof target, "%s/dist", dir);
	mkdir(target, 0755);
	write_file(target, "index.js", "module.exports = { scanTransaction() { return null; } };");
	link_in(dir, "lib", "dist");
	txs_host *h = host_of(dir);
	assert_int_equal(txs_host_plugin_count(h), 1);
	txs_host_free(h);
}

/* plugin_read_file itself: bounds and paths. */
static void test_read_file_rules(void **state)
{
	(void)state;
	char *buf = NULL, *err = NULL;
	size_t len = 0;
	write_file(root, "ten.txt", "0123456789");
	assert_int_equal(plugin_read_file(root, "ten.txt", 10, &buf, &len, &err), 0);
	assert_int_equal(len, 10);
	assert_string_equal(buf, "0123456789");
	free(buf);
	assert_int_not_equal(plugin_read_file(root, "ten.txt", 9, &buf, &len, &err), 0);
	assert_null(buf);
	assert_non_null(strstr(err, "ten.txt: larger than 9 bytes"));
	free(err);
	assert_int_equal(plugin_read_file(root, "/etc/hostname", 100, &buf, &len, &err), TXS_EINVAL);
	assert_non_null(strstr(err, "not a relative path"));
	free(err);
	assert_int_equal(plugin_read_file(root, "../../etc/hostname", 100, &buf, &len, &err), TXS_EINVAL);
	assert_non_null(strstr(err, "leads outside the plugin folder"));
	free(err);
	assert_int_equal(plugin_read_file(root, "./", 100, &buf, &len, &err), TXS_EINVAL);
	assert_non_null(strstr(err, "the plugin folder itself"));
	free(err);
	assert_int_equal(plugin_read_file(root, "nope.js", 100, &buf, &len, &err), TXS_EIO);
	assert_non_null(strstr(err, "nope.js: cannot be read: No such file"));
	free(err);
}

/* The same folder rules on the path for kernels without openat2. */
static void test_symlinks_out_fallback(void **state)
{
	plugin_read_file_without_openat2 = true;
	test_symlinks_out(state);
	plugin_read_file_without_openat2 = false;
}

/* ---- broken plugins: all named; --allow-partial ------------------------- */

static const char OK_CODE[] = "module.exports = { scanTransaction() { return null; } };";

/* good, bad-init (init throws), bad-json (timeout_ms wrong), hang-init. */
static void broken_set(bool hang)
{
	add_plugin("good", NULL, OK_CODE);
	add_plugin("bad-init", NULL,
	           "module.exports = { init() { throw new Error('init boom'); }, scanTransaction() {} };");
	add_plugin("bad-json", "\"timeout_ms\": \"x\"", OK_CODE);
	for (int i = 1; hang && i <= 2; i++) {
		char id[32];
		snprintf(id, sizeof id, "hang-init-%d", i);
		add_plugin(id, NULL, "module.exports = { init() { for (;;) {} }, scanTransaction() {} };");
	}
}

struct notices {
	pthread_mutex_t mu;
	char text[8192];
};

static void on_notice(const char *level, const char *msg, void *ud)
{
	struct notices *n = ud;
	pthread_mutex_lock(&n->mu);
	size_t len = strlen(n->text);
	snprintf(n->text + len, sizeof n->text - len, "%s: %s\n", level, msg);
	pthread_mutex_unlock(&n->mu);
}

static bool noticed(struct notices *n, const char *needle)
{
	pthread_mutex_lock(&n->mu);
	bool found = strstr(n->text, needle) != NULL;
	pthread_mutex_unlock(&n->mu);
	return found;
}

static txs_host *partial_host(struct notices *n)
{
	txs_host *h = NULL;
	txs_host_options o = {.console_quiet = true, .allow_partial = true, .notice = on_notice,
	                      .notice_userdata = n};
	assert_int_equal(txs_host_new(&h, &o), 0);
	if (txs_host_load(h, root))
		fail_msg("allow_partial load failed: %s", txs_last_error());
	return h;
}

static void test_all_failures_listed(void **state)
{
	(void)state;
	broken_set(true);
	txs_host *h = NULL;
	txs_host_options o = {.console_quiet = true};
	assert_int_equal(txs_host_new(&h, &o), 0);
	assert_int_not_equal(txs_host_load(h, root), 0); /* the hanging inits run side by side */
	const char *err = txs_last_error();
	const char *want[] = {"bad-init/index.js: init(ctx) failed: Error: init boom",
	                      "bad-json/plugin.json: timeout_ms must be",
	                      "hang-init-1/index.js: init(ctx) failed",
	                      "hang-init-2/index.js: init(ctx) failed"};
	for (size_t i = 0; i < 4; i++)
		if (!strstr(err, want[i]))
			fail_msg("'%s' not in the error:\n%s", want[i], err);
	size_t lines = 1;
	for (const char *c = err; *c; c++)
		lines += *c == '\n';
	assert_int_equal(lines, 4); /* one line each, the stacks folded in */
	assert_int_equal(txs_host_plugin_count(h), 0);
	txs_host_free(h);
}

static void test_allow_partial(void **state)
{
	(void)state;
	struct notices n = {.mu = PTHREAD_MUTEX_INITIALIZER};
	broken_set(false);
	txs_host *h = partial_host(&n);
	assert_int_equal(txs_host_plugin_count(h), 3);
	assert_false(txs_host_ready(h));
	assert_true(noticed(&n, "warn: plugin bad-init not started"));
	for (int round = 0; round < 2; round++) {
		json_t *r = scan_json(h, "{\"hash\":\"0x1\"}");
		assert_false(json_is_true(json_object_get(r, "complete")));
		assert_string_equal(status_of(r, "good"), "ok");
		assert_string_equal(status_of(r, "bad-init"), "unavailable");
		assert_string_equal(status_of(r, "bad-json"), "unavailable");
		const char *e = json_string_value(json_object_get(plugin_entry(r, "bad-init"), "error"));
		assert_non_null(strstr(e, "init boom"));
		e = json_string_value(json_object_get(plugin_entry(r, "bad-json"), "error"));
		assert_non_null(strstr(e, "timeout_ms must be"));
		json_decref(r);
	}
	txs_plugin_info in;
	assert_int_equal(txs_host_plugin_info(h, (size_t)txs_host_plugin_find(h, "bad-init"), &in), 0);
	assert_false(in.started);
	assert_false(in.stats.running);
	assert_int_equal(in.instances, 0);
	assert_non_null(strstr(in.error, "init boom"));
	assert_int_equal(txs_host_plugin_info(h, (size_t)txs_host_plugin_find(h, "good"), &in), 0);
	assert_true(in.started);
	assert_int_equal(txs_host_restart(h, "bad-init"), TXS_EUNAVAILABLE);
	char *js = NULL;
	assert_int_equal(txs_host_plugins_json(h, &js), 0);
	json_t *list = json_loads(js, 0, NULL);
	free(js);
	size_t i;
	json_t *p;
	json_array_foreach(list, i, p)
	{
		bool good = !strcmp(json_string_value(json_object_get(p, "id")), "good");
		assert_int_equal(json_is_true(json_object_get(p, "started")), good);
		assert_int_equal(json_object_get(p, "error") != NULL, !good);
	}
	json_decref(list);
	txs_host_free(h);
}

static bool started_within(txs_host *h, const char *id, int ms)
{
	txs_plugin_info in;
	for (int t = 0; t < ms; t += 10) {
		if (txs_host_plugin_info(h, (size_t)txs_host_plugin_find(h, id), &in) == 0 && in.started)
			return true;
		usleep(10000);
	}
	return false;
}

/* A plugin whose init failed joins once its files are fixed: by the
 * background retry, or at once by a reload. */
static void test_retry_joins(void **state)
{
	(void)state;
	struct notices n = {.mu = PTHREAD_MUTEX_INITIALIZER};
	broken_set(false);
	txs_host *h = partial_host(&n);
	char dir[512];
	snprintf(dir, sizeof dir, "%s/bad-init", root);
	write_file(dir, "index.js",
	           "module.exports = { scanTransaction() { return {code: 'BACK', severity: 'low',"
	           " message: 'joined'}; } };");
	if (!started_within(h, "bad-init", 5000))
		fail_msg("bad-init did not start after its fix; notices:\n%s", n.text);
	assert_true(noticed(&n, "info: plugin bad-init started (attempt"));
	json_t *r = scan_json(h, "{}");
	assert_string_equal(status_of(r, "bad-init"), "ok");
	assert_string_equal(status_of(r, "bad-json"), "unavailable");
	assert_int_equal(json_array_size(json_object_get(r, "findings")), 1);
	json_decref(r);
	assert_false(txs_host_ready(h));

	snprintf(dir, sizeof dir, "%s/bad-json", root);
	write_file(dir, "plugin.json", "{\"id\":\"bad-json\",\"version\":\"2\",\"main\":\"index.js\"}");
	int rc = txs_host_reload(h, "bad-json"); /* may race the retry: then it has started */
	if (rc != 0 && !started_within(h, "bad-json", 5000))
		fail_msg("reload: %s", txs_last_error());
	r = scan_json(h, "{}");
	assert_true(json_is_true(json_object_get(r, "complete")));
	json_decref(r);
	assert_true(txs_host_ready(h));
	txs_host_free(h);
}

/* A plugin that starts late brings its own limits: the report deadline
 * (4 x the largest timeout_ms + 100 ms) follows them. */
static void test_late_start_limits(void **state)
{
	(void)state;
	struct notices n = {.mu = PTHREAD_MUTEX_INITIALIZER};
	add_plugin("good", NULL, OK_CODE);
	add_plugin("slow", "\"timeout_ms\": \"soon\"", OK_CODE);
	txs_host *h = NULL;
	txs_host_options o = {.console_quiet = true, .allow_partial = true, .notice = on_notice,
	                      .notice_userdata = &n};
	assert_int_equal(txs_host_new(&h, &o), 0);
	assert_int_equal(txs_host_load(h, root), 0);
	char dir[512];
	snprintf(dir, sizeof dir, "%s/slow", root);
	write_file(dir, "index.js",
	           "module.exports = { scanTransaction() {\n"
	           "  const t = Date.now(); while (Date.now() - t < 400) {} return null; } };\n");
	write_file(dir, "plugin.json",
	           "{\"id\":\"slow\",\"version\":\"2\",\"main\":\"index.js\",\"timeout_ms\":1000}");
	if (!started_within(h, "slow", 5000))
		fail_msg("slow did not start; notices:\n%s", n.text);
	json_t *r = scan_json(h, "{}"); /* 400 ms: past the 300 ms deadline of 50 ms plugins */
	if (strcmp(status_of(r, "slow"), "ok"))
		fail_msg("slow: %s", json_dumps(r, 0));
	json_decref(r);
	txs_host_free(h);
}

/* Subfolders without plugin.json are skipped with a notice (issue 18). */
static void test_skips_other_folders(void **state)
{
	(void)state;
	struct notices n = {.mu = PTHREAD_MUTEX_INITIALIZER};
	add_plugin("only", NULL, OK_CODE);
	char dir[512];
	const char *others[] = {"src", "node_modules", "notes"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(dir, sizeof dir, "%s/%s", root, others[i]);
		mkdir(dir, 0755);
		write_file(dir, "README", "not a plugin");
	}
	txs_host *h = NULL;
	txs_host_options o = {.console_quiet = true, .notice = on_notice, .notice_userdata = &n};
	assert_int_equal(txs_host_new(&h, &o), 0);
	if (txs_host_load(h, root))
		fail_msg("load: %s", txs_last_error());
	assert_int_equal(txs_host_plugin_count(h), 1);
	assert_true(noticed(&n, "/node_modules: skipped: no plugin.json in it"));
	assert_true(noticed(&n, "/notes: skipped"));
	assert_true(noticed(&n, "/src: skipped"));
	txs_host_free(h);
}

/* ---- fan-out ---------------------------------------------------------------- */

static void test_fanout_mix(void **state)
{
	(void)state;
	add_plugin("finder", NULL,
	           "module.exports = { scanTransaction(tx) { return {code: 'FOUND', severity: 'high',"
	           " message: 'saw ' + tx.hash, metadata: {n: 1}}; } };");
	add_plugin("quiet", NULL, "module.exports = { scanTransaction() { return null; } };");
	add_plugin("thrower", NULL,
	           "module.exports = { scanTransaction() { throw new Error('rule broke'); } };");
	add_plugin("sleeper", "\"timeout_ms\": 30",
	           "module.exports = { scanTransaction() { for (;;) {} } };");
	add_plugin("hog", "\"timeout_ms\": 10000, \"heap_limit_mb\": 48, \"heap_restart_mb\": 16",
	           "module.exports = { scanTransaction() { const a = []; for (let i = 0; ; i++)"
	           " a.push(new Array(1000).fill(i)); } };");
	add_plugin("sloppy", NULL,
	           "module.exports = { scanTransaction() { return [{code: 'X', severity: 'severe',"
	           " message: 'm'}]; } };");
	txs_host *h = host_of(root);
	assert_int_equal(txs_host_plugin_count(h), 6);
	for (int round = 0; round < 2; round++) { /* the run goes on after kills */
		json_t *r = scan_json(h, "{\"hash\":\"0xfeed\"}");
		assert_string_equal(json_string_value(json_object_get(r, "tx")), "0xfeed");
		assert_false(json_is_true(json_object_get(r, "complete")));
		assert_string_equal(json_string_value(json_object_get(r, "verdict")), "high");
		json_t *findings = json_object_get(r, "findings");
		assert_int_equal(json_array_size(findings), 1);
		json_t *f = json_array_get(findings, 0);
		assert_string_equal(json_string_value(json_object_get(f, "plugin")), "finder");
		assert_string_equal(json_string_value(json_object_get(f, "message")), "saw 0xfeed");
		assert_string_equal(status_of(r, "finder"), "ok");
		assert_string_equal(status_of(r, "quiet"), "ok");
		assert_string_equal(status_of(r, "thrower"), "error");
		assert_non_null(strstr(json_string_value(json_object_get(plugin_entry(r, "thrower"), "error")), "rule broke"));
		assert_string_equal(status_of(r, "sleeper"), "timeout");
		assert_string_equal(status_of(r, "hog"), "memory");
		assert_string_equal(status_of(r, "sloppy"), "error");
		assert_non_null(strstr(json_string_value(json_object_get(plugin_entry(r, "sloppy"), "error")),
		                       "finding 1 (X): severity must be one of"));
		json_decref(r);
	}
	txs_plugin_info in;
	long i = txs_host_plugin_find(h, "sleeper");
	assert_int_equal(txs_host_plugin_info(h, (size_t)i, &in), 0);
	assert_int_equal(in.stats.timeouts, 2);
	txs_host_free(h);
}

static void test_invalid_findings(void **state)
{
	(void)state;
	add_plugin("shapes", NULL,
	           "module.exports = { scanTransaction(tx) { return tx.r; } };");
	txs_host *h = host_of(root);
	struct { const char *tx, *needle; } cases[] = {
	    {"{\"r\": 5}", "returned a number; expected null, a finding or an array"},
	    {"{\"r\": [5]}", "finding 1: must be an object, got a number"},
	    {"{\"r\": [{\"code\":\"A\",\"severity\":\"low\",\"message\":\"m\"}, 5]}", "finding 2: must be an object"},
	    {"{\"r\": {\"severity\":\"low\",\"message\":\"m\"}}", "finding 1: code must be a string"},
	    {"{\"r\": {\"code\":5,\"severity\":\"low\",\"message\":\"m\"}}", "finding 1: code must be a string"},
	    {"{\"r\": {\"code\":\"C\",\"severity\":\"low\",\"message\":7}}", "finding 1 (C): message must be a string"},
	    {"{\"r\": {\"code\":\"C\",\"severity\":\"low\",\"message\":\"m\",\"metadata\":3}}", "metadata must be an object"},
	    {"{\"r\": {\"code\":\"C\",\"severity\":\"low\",\"message\":\"m\",\"extra\":1}}", "unknown field \"extra\""},
	    {"{\"r\": [{\"code\":\"A\",\"severity\":\"low\",\"message\":\"m\"}, {\"code\":\"B\",\"severity\":\"none\",\"message\":\"m\"}]}", "finding 2 (B): severity"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *r = scan_json(h, cases[i].tx);
		json_t *p = plugin_entry(r, "shapes");
		const char *err = json_string_value(json_object_get(p, "error"));
		if (strcmp(status_of(r, "shapes"), "error") || !err || !strstr(err, cases[i].needle))
			fail_msg("%s: %s", cases[i].tx, err ? err : "(no error)");
		assert_int_equal(json_array_size(json_object_get(r, "findings")), 0);
		json_decref(r);
	}
	/* codes follow the documented pattern: one with a newline and ANSI
	 * escapes forged rows in the table view, one with a NUL blanked it */
	struct { const char *code, *shown; } bad_codes[] = {
	    {"", "\"\""},
	    {"bad", "\"bad\""},
	    {"A\\n99  0xfake..beef  none", "\"A\\n99  0xfake..beef  none\""},
	    {"X\\u001b[31mRED", "\"X\\u001b[31mRED\""},
	    {"NUL\\u0000", "\"NUL\\u0000\""},
	    {"1ABC", "\"1ABC\""},
	    {"_A", "\"_A\""},
	    {"A-B", "\"A-B\""},
	    {"A B", "\"A B\""},
	    {"\\u00c9T\\u00c9", "\"\u00c9T\u00c9\""}, /* UTF-8 in the message */
	};
	for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
		char tx[256], want[160];
		snprintf(tx, sizeof tx,
		         "{\"r\": [{\"code\":\"OK_1\",\"severity\":\"low\",\"message\":\"m\"},"
		         " {\"code\":\"%s\",\"severity\":\"low\",\"message\":\"m\"}]}",
		         bad_codes[i].code);
		snprintf(want, sizeof want,
		         "finding 2: code must be UPPER_SNAKE_CASE ([A-Z][A-Z0-9_]*, 1-128 characters), got %s",
		         bad_codes[i].shown);
		json_t *r = scan_json(h, tx);
		const char *err = json_string_value(json_object_get(plugin_entry(r, "shapes"), "error"));
		if (strcmp(status_of(r, "shapes"), "error") || !err || strcmp(err, want))
			fail_msg("code %s: %s", bad_codes[i].code, err ? err : "(no error)");
		assert_int_equal(json_array_size(json_object_get(r, "findings")), 0);
		json_decref(r);
	}
	/* the longest code; one more is too long */
	char tx[512], code[130];
	memset(code, 'A', 129);
	code[129] = '\0';
	snprintf(tx, sizeof tx, "{\"r\": {\"code\":\"%s\",\"severity\":\"low\",\"message\":\"m\"}}", code);
	json_t *r = scan_json(h, tx);
	assert_string_equal(status_of(r, "shapes"), "error");
	assert_non_null(strstr(json_string_value(json_object_get(plugin_entry(r, "shapes"), "error")),
	                       "finding 1: code must be UPPER_SNAKE_CASE"));
	json_decref(r);
	code[128] = '\0';
	code[5] = '_';
	code[127] = '9';
	snprintf(tx, sizeof tx, "{\"r\": {\"code\":\"%s\",\"severity\":\"low\",\"message\":\"m\"}}", code);
	r = scan_json(h, tx);
	assert_string_equal(status_of(r, "shapes"), "ok");
	json_decref(r);

	r = scan_json(h, "{\"r\": [], \"id\": 7}");
	assert_true(json_is_true(json_object_get(r, "complete")));
	assert_string_equal(json_string_value(json_object_get(r, "verdict")), "none");
	assert_int_equal(json_integer_value(json_object_get(r, "tx")), 7);
	json_decref(r);
	txs_host_free(h);
}

static void test_invalid_input(void **state)
{
	(void)state;
	add_plugin("any", NULL, "module.exports = { scanTransaction() { return null; } };");
	txs_host *h = host_of(root);
	struct { const char *tx, *needle; } cases[] = {
	    {"{\"a\": ", "invalid JSON"}, {"[1,2]", "must be a JSON object, got an array"},
	    {"\"s\"", "got a string"}, {"", "invalid JSON"},
	    {"{\"a\": }", "invalid JSON: expected a value at column 7"},
	    {"{\"a\": 1}\n{", "invalid JSON: text after the JSON value at line 2, column 1"},
	    {"{\"a\": \"\\ud800\"}", "invalid JSON: invalid Unicode"},
	    {"{\"a\": \"\xff\"}", "invalid JSON: invalid UTF-8"},
	    {"{\"a\": 01}", "invalid JSON"}, {"  ", "invalid JSON: no JSON value"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		txs_report *rep;
		assert_int_equal(txs_host_scan(h, cases[i].tx, strlen(cases[i].tx), 7, &rep), 0);
		assert_true(txs_report_input_error(rep));
		assert_false(txs_report_complete(rep));
		json_t *j = json_loads(txs_report_json(rep, NULL), 0, NULL);
		assert_int_equal(json_integer_value(json_object_get(j, "line")), 7);
		assert_non_null(strstr(json_string_value(json_object_get(j, "error")), cases[i].needle));
		json_decref(j);
		txs_report_free(rep);
	}
	/* the report's "tx" is the input's hash or id, whatever its number */
	struct { const char *tx, *want; } ids[] = {
	    {"{\"id\": 1e300}", "1e300"}, {"{\"id\": 42}", "42"}, {"{\"id\": 2.5}", "2.5"},
	    {"{\"id\": -1e19}", "-1e19"}, {"{\"hash\": \"0xab\", \"id\": 3}", "\"0xab\""},
	    {"{\"id\": [1]}", "null"}, {"{\"hash\": 5, \"id\": \"x\"}", "\"x\""},
	    {"{\"hash\": \"a\", \"hash\": \"b\"}", "\"b\""}, {"{\"h\\u0061sh\": \"esc\"}", "\"esc\""},
	};
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		json_t *j = scan_json(h, ids[i].tx);
		char *tx = json_dumps(json_object_get(j, "tx"), JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
		assert_string_equal(tx, ids[i].want);
		free(tx);
		json_decref(j);
	}
	txs_host_free(h);
}

static void test_restart_reload(void **state)
{
	(void)state;
	add_plugin("ver", NULL, "let n = 0; module.exports = { scanTransaction() { return {code: 'N', severity: 'info', message: String(++n)}; } };");
	char dir[512];
	snprintf(dir, sizeof dir, "%s/ver", root);
	txs_host *h = host_of(root);
	json_t *r = scan_json(h, "{}");
	json_decref(r);
	assert_int_equal(txs_host_restart(h, "ver"), 0);
	r = scan_json(h, "{}");
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(r, "findings"), 0), "message")), "1");
	json_decref(r);
	assert_int_equal(txs_host_restart(h, "nope"), TXS_ENOTFOUND);

	write_file(dir, "plugin.json", "{\"id\":\"ver\",\"version\":\"2.0.0\",\"main\":\"index.js\"}");
	write_file(dir, "index.js", "module.exports = { scanTransaction() { return {code: 'V2', severity: 'low', message: 'two'}; } };");
	assert_int_equal(txs_host_reload(h, "ver"), 0);
	txs_plugin_info in;
	assert_int_equal(txs_host_plugin_info(h, 0, &in), 0);
	assert_string_equal(in.version, "2.0.0");
	write_file(dir, "index.js", "module.exports = { scanTransaction() { return }}} };");
	assert_int_equal(txs_host_reload(h, "ver"), TXS_EPLUGIN);
	assert_non_null(strstr(txs_last_error(), "SyntaxError"));
	r = scan_json(h, "{}");
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(r, "findings"), 0), "code")), "V2");
	json_decref(r);
	write_file(dir, "plugin.json", "{\"id\":\"ver\",\"version\":\"3\",\"main\":\"index.js\",\"bogus\":1}");
	assert_int_equal(txs_host_reload(h, "ver"), TXS_EINVAL);
	assert_non_null(strstr(txs_last_error(), "unknown key \"bogus\""));
	assert_true(txs_host_ready(h));
	char *js = NULL;
	assert_int_equal(txs_host_plugins_json(h, &js), 0);
	assert_non_null(strstr(js, "\"version\":\"2.0.0\""));
	free(js);
	txs_host_free(h);
}

static void test_instances(void **state)
{
	(void)state;
	add_plugin("pair", "\"instances\": 2", "module.exports = { scanTransaction() { return null; } };");
	txs_host *h = host_of(root);
	for (int i = 0; i < 200; i++)
		json_decref(scan_json(h, "{}"));
	txs_plugin_info in;
	assert_int_equal(txs_host_plugin_info(h, 0, &in), 0);
	assert_int_equal(in.instances, 2);
	assert_int_equal(in.stats.scans, 200);
	txs_host_free(h);
}

static double cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* While a fan-out waits on one busy plugin, only that plugin's thread
 * works: the deadline thread sleeps until the deadline (it once waited on a
 * realtime condvar with a monotonic deadline, and spun). */
static void test_waiting_is_idle(void **state)
{
	(void)state;
	add_plugin("busy", "\"timeout_ms\": 2000",
	           "module.exports = { scanTransaction() {\n"
	           "  const t = Date.now(); while (Date.now() - t < 300) {} return null; } };\n");
	txs_host *h = host_of(root);
	struct timespec w0, w1;
	clock_gettime(CLOCK_MONOTONIC, &w0);
	double c0 = cpu_ms();
	json_t *rep = scan_json(h, "{\"hash\":\"0x1\"}");
	double used = cpu_ms() - c0;
	clock_gettime(CLOCK_MONOTONIC, &w1);
	double wall = (double)(w1.tv_sec - w0.tv_sec) * 1e3 + (double)(w1.tv_nsec - w0.tv_nsec) / 1e6;
	assert_string_equal(json_string_value(json_object_get(plugin_entry(rep, "busy"), "status")), "ok");
	json_decref(rep);
	txs_host_free(h);
	if (used > 1.5 * wall)
		fail_msg("one busy plugin, %.0f ms wall, but %.0f ms of CPU", wall, used);
}

/* Findings are re-serialised by hand (report.c): every string must come
 * back exactly as the plugin wrote it, escapes and all. */
static void test_finding_strings_round_trip(void **state)
{
	(void)state;
	add_plugin("strings", NULL,
	           "module.exports = { scanTransaction(tx) {\n"
	           "  const m = 'q\"b\\\\s/\\n\\r\\t\\b\\f\\u0001\\u001f\\u007f\\u0000 \\u00e9\\u2028\\ud83d\\ude00';\n"
	           "  return {code: 'C_1', severity: 'low', message: m, metadata: {k: m, n: [1.5, null, true]}};\n"
	           "}};\n");
	txs_host *h = host_of(root);
	txs_report *raw;
	assert_int_equal(txs_host_scan(h, "{}", 2, 0, &raw), 0);
	json_error_t je;
	json_t *rep = json_loads(txs_report_json(raw, NULL), JSON_ALLOW_NUL, &je);
	if (!rep)
		fail_msg("report is not JSON (%s): %s", je.text, txs_report_json(raw, NULL));
	txs_report_free(raw);
	json_t *f = json_array_get(json_object_get(rep, "findings"), 0);
	if (!f)
		fail_msg("no finding: %s", json_dumps(rep, 0));
	const char want[] = "q\"b\\s/\n\r\t\b\f\x01\x1f\x7f\0 \xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80";
	json_t *msg = json_object_get(f, "message");
	assert_int_equal(json_string_length(msg), sizeof want - 1);
	assert_memory_equal(json_string_value(msg), want, sizeof want - 1);
	assert_string_equal(json_string_value(json_object_get(f, "code")), "C_1");
	assert_true(json_equal(json_object_get(json_object_get(f, "metadata"), "k"), msg));
	assert_string_equal(json_string_value(json_object_get(f, "plugin")), "strings");
	json_decref(rep);
	txs_host_free(h);
}

/* The accessors give a report's parts from its own data, whatever its
 * strings hold (the CLI's table once re-parsed the JSON, and a NUL blanked
 * the row). */
/* ---- many transactions with one wake-up ------------------------------------ */

#define MANY 300

struct many {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t got;
};

struct many_one {
	struct many *m;
	char *json; /* the report's JSON */
};

static void many_done(txs_report *rep, void *ud)
{
	struct many_one *one = ud;
	one->json = strdup(txs_report_json(rep, NULL));
	txs_report_free(rep);
	pthread_mutex_lock(&one->m->mu);
	one->m->got++;
	pthread_cond_signal(&one->m->cv);
	pthread_mutex_unlock(&one->m->mu);
}

/* A plugin of 30 ms a scan behind a burst of 40: the report deadline
 * (4 x 50 + 100 = 300 ms) expires the scans at the back of its queue. The
 * first ones are answered as each ends, not held to the end of a batch
 * (a batch of 16 took 480 ms: every one expired), and the executor skips
 * the expired ones instead of running scans nobody reads (all 40 ran,
 * 1.2 s of them). */
static void test_expired_scans_are_skipped(void **state)
{
	(void)state;
	add_plugin("thirty", "\"timeout_ms\": 50",
	           "module.exports = { scanTransaction() {\n"
	           "  const t = Date.now(); while (Date.now() - t < 30) {} return null; } };\n");
	txs_host *h = host_of(root);
	enum { N = 40 };
	struct many m = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	static struct many_one ud[N];
	txs_submission subs[N];
	for (size_t i = 0; i < N; i++) {
		ud[i] = (struct many_one){.m = &m};
		subs[i] = (txs_submission){.tx = "{}", .len = 2, .line = i + 1, .userdata = &ud[i]};
	}
	assert_int_equal(txs_host_submit_many(h, subs, N, many_done), N);
	pthread_mutex_lock(&m.mu);
	while (m.got < N)
		pthread_cond_wait(&m.cv, &m.mu);
	pthread_mutex_unlock(&m.mu);
	size_t ok = 0;
	for (size_t i = 0; i < N; i++) {
		json_t *r = json_loads(ud[i].json, 0, NULL);
		assert_non_null(r);
		ok += !strcmp(status_of(r, "thirty"), "ok");
		json_decref(r);
		free(ud[i].json);
	}
	txs_plugin_info in;
	for (int k = 0; k < 300; k++) { /* the queue empties: what runs, runs */
		assert_int_equal(txs_host_plugin_info(h, 0, &in), 0);
		if (!in.stats.queue_depth && !in.stats.busy)
			break;
		struct timespec ms10 = {0, 10000000};
		nanosleep(&ms10, NULL);
	}
	txs_host_free(h);
	if (ok < 4)
		fail_msg("%zu of %d scans answered ok before the deadline", ok, N);
	if (in.stats.scans >= N / 2) /* an engine process too (txs_proc_skip_unwanted) */
		fail_msg("the plugin ran %llu scans of %d, most of them expired in the queue",
		         (unsigned long long)in.stats.scans, N);
	if (in.stats.scans + in.stats.skipped != N) /* each one counted, once */
		fail_msg("%llu scans ran and %llu were skipped, of %d",
		         (unsigned long long)in.stats.scans, (unsigned long long)in.stats.skipped, N);
}

/* txs_host_submit_many: every transaction gets its own report, also those
 * in the middle that are invalid, and the text reaches the plugin exactly,
 * whether ASCII (parsed in place) or not (the C API's UTF-8 path); the
 * executors share one copy of each text. */
static void test_submit_many(void **state)
{
	(void)state;
	add_plugin("echo", NULL,
	           "module.exports = { scanTransaction(tx) { return {code: 'ECHO', severity: 'info',"
	           " message: JSON.stringify(tx)}; } };");
	add_plugin("quiet", NULL, "module.exports = { scanTransaction() { return null; } };");
	add_plugin("memo", NULL,
	           "module.exports = { scanTransaction(tx) { return tx.memo ? {code: 'MEMO',"
	           " severity: 'low', message: tx.memo + ':' + tx.memo.length} : null; } };");
	txs_host *h = host_of(root);
	struct many m = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	static char text[MANY][128];
	static struct many_one ud[MANY];
	txs_submission subs[MANY];
	for (size_t i = 0; i < MANY; i++) {
		if (i % 50 == 7)
			snprintf(text[i], sizeof text[i], "{\"hash\": \"0x%zx\", oops}", i);
		else if (i % 10 == 3)
			snprintf(text[i], sizeof text[i], "{\"hash\":\"0x%zx\",\"memo\":\"h\u00e9llo \u2713 %zu\"}", i, i);
		else
			snprintf(text[i], sizeof text[i], "{\"hash\":\"0x%zx\",\"n\":%zu}", i, i);
		ud[i].m = &m;
		subs[i] = (txs_submission){.tx = text[i], .len = strlen(text[i]), .line = i + 1,
		                           .userdata = &ud[i]};
	}
	assert_int_equal(txs_host_submit_many(h, subs, MANY, many_done), MANY);
	pthread_mutex_lock(&m.mu);
	while (m.got < MANY)
		pthread_cond_wait(&m.cv, &m.mu);
	pthread_mutex_unlock(&m.mu);
	for (size_t i = 0; i < MANY; i++) {
		json_t *r = json_loads(ud[i].json, 0, NULL);
		assert_non_null(r);
		assert_int_equal(json_integer_value(json_object_get(r, "line")), (json_int_t)i + 1);
		if (i % 50 == 7) {
			assert_non_null(strstr(json_string_value(json_object_get(r, "error")), "invalid JSON"));
		} else {
			char hash[32];
			snprintf(hash, sizeof hash, "0x%zx", i);
			assert_string_equal(json_string_value(json_object_get(r, "tx")), hash);
			assert_true(json_is_true(json_object_get(r, "complete")));
			json_t *f = json_array_get(json_object_get(r, "findings"), 0);
			json_t *sent = json_loads(text[i], 0, NULL), *seen =
			    json_loads(json_string_value(json_object_get(f, "message")), 0, NULL);
			assert_true(json_equal(sent, seen));
			if (i % 10 == 3) {
				/* 8 UTF-16 units before the number, as JavaScript counts them */
				char want[64];
				snprintf(want, sizeof want, "h\xc3\xa9llo \xe2\x9c\x93 %zu:%d", i,
				         8 + (i > 99 ? 3 : i > 9 ? 2 : 1));
				json_t *memo = json_array_get(json_object_get(r, "findings"), 1);
				assert_string_equal(json_string_value(json_object_get(memo, "message")), want);
			}
			json_decref(sent);
			json_decref(seen);
		}
		json_decref(r);
		free(ud[i].json);
	}
	assert_int_equal(txs_host_submit_many(h, subs, 0, many_done), 0);
	assert_int_equal(txs_host_submit_many(h, NULL, 3, many_done), 0);
	assert_string_equal(txs_last_error(), "txs_host_submit_many: NULL argument");
	txs_host_free(h);
}

static void test_report_accessors(void **state)
{
	(void)state;
	add_plugin("b-finder", NULL,
	           "module.exports = { scanTransaction(tx) { if (tx.boom) throw new Error('x');\n"
	           "  return [{code: 'ONE', severity: 'low', message: 'm'},\n"
	           "          {code: 'TWO_2', severity: 'critical', message: 'm', metadata: {n: 1e20}}]; } };");
	add_plugin("a-quiet", NULL, "module.exports = { scanTransaction() { return null; } };");
	txs_host *h = host_of(root);
	const char tx[] = "{\"hash\": \"0x\\u0000\\n\\u001b\"}";
	txs_report *rep;
	assert_int_equal(txs_host_scan(h, tx, strlen(tx), 9, &rep), 0);
	assert_int_equal(txs_report_line(rep), 9);
	size_t len;
	const char *t = txs_report_tx(rep, &len);
	assert_int_equal(len, 5);
	assert_memory_equal(t, "0x\0\n\x1b", 5);
	assert_null(txs_report_error(rep));
	assert_int_equal(txs_report_plugin_count(rep), 2);
	txs_report_plugin p;
	assert_int_equal(txs_report_plugin_get(rep, 0, &p), 0);
	assert_string_equal(p.id, "a-quiet");
	assert_int_equal(p.status, TXS_STATUS_OK);
	assert_int_equal(txs_report_plugin_get(rep, 1, &p), 0);
	assert_string_equal(p.id, "b-finder");
	assert_int_equal(txs_report_plugin_get(rep, 2, &p), TXS_ENOTFOUND);
	assert_int_equal(txs_report_finding_count(rep), 2);
	txs_report_finding f;
	assert_int_equal(txs_report_finding_get(rep, 1, &f), 0);
	assert_string_equal(f.plugin, "b-finder");
	assert_string_equal(f.code, "TWO_2");
	assert_int_equal(f.severity, TXS_SEVERITY_CRITICAL);
	assert_int_equal(txs_report_finding_get(rep, 0, &f), 0);
	assert_string_equal(f.code, "ONE");
	assert_int_equal(f.severity, TXS_SEVERITY_LOW);
	assert_int_equal(txs_report_finding_get(rep, 2, &f), TXS_ENOTFOUND);
	txs_report_free(rep);
	/* a plugin that failed: its status, no findings; a numeric id */
	assert_int_equal(txs_host_scan(h, "{\"id\": 42, \"boom\": 1}", 21, 0, &rep), 0);
	assert_string_equal(txs_report_tx(rep, &len), "42");
	assert_int_equal(txs_report_finding_count(rep), 0);
	assert_int_equal(txs_report_plugin_get(rep, 1, &p), 0);
	assert_int_equal(p.status, TXS_STATUS_ERROR);
	txs_report_free(rep);
	/* an input error: its message, no tx, no plugins */
	assert_int_equal(txs_host_scan(h, "{oops", 5, 3, &rep), 0);
	assert_true(txs_report_input_error(rep));
	assert_non_null(strstr(txs_report_error(rep), "invalid JSON"));
	assert_null(txs_report_tx(rep, &len));
	assert_int_equal(txs_report_line(rep), 3);
	assert_int_equal(txs_report_plugin_count(rep), 0);
	txs_report_free(rep);
	txs_host_free(h);
}

/* argv[1], if given, runs only the tests it matches (cmocka's pattern: * and ?). */
int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_manifest_validation),
	    cmocka_unit_test_setup_teardown(test_load_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_symlinks_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_file_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_symlinks_out_fallback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_all_failures_listed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_allow_partial, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retry_joins, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_late_start_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_skips_other_folders, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fanout_mix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_findings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restart_reload, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_instances, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_waiting_is_idle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_finding_strings_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_report_accessors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rescan_under_scans, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_submit_many, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expired_scans_are_skipped, setup, teardown),
	};
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
