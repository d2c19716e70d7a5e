/*
 * bench_host.c - the host (txs_host_*): fan-out latency of one transaction to
 * N plugins, and batch throughput with 1 or more instances per plugin.
 *
 *   bench_host fanout     PLUGIN_DIR COPIES TX.jsonl [--n N] [--warmup W]
 *   bench_host throughput SRC TX.jsonl [--copies C] [--instances K] [--window W]
 *                         [--limit N] [--rounds R]
 *   bench_host startup    PLUGINS_DIR [--n N]
 *   either: [--set KEY=JSON]...   override plugin.json keys (restart_every=0 ...)
 *           [--isolation thread|process]  where the engines run (default thread)
 *
 * Plugins are staged in a temporary folder (removed at exit): COPIES copies
 * of PLUGIN_DIR with ids <id>-1 ... <id>-N, or, for throughput, SRC (one
 * plugin folder, or a folder of plugin folders) with "instances" set to K.
 *
 * fanout:     txs_host_scan, one at a time (a request/response service):
 *             latency p50/p99/p99.9/max in microseconds, with the host's
 *             default deadline.
 * throughput: txs_host_submit keeping W fan-outs in flight over every line of
 *             TX.jsonl (R times), as `txscan scan` does, without a
 *             deadline: reports/s and scans/s (reports x plugins).
 * startup:    txs_host_new + txs_host_load of PLUGINS_DIR as it is (every
 *             plugin started, init run), N times: ms p50/min/max, the first
 *             run apart (cold caches), the CPU of the host and its engine
 *             processes per start, and the time txs_host_free took.
 */
#define _GNU_SOURCE
#include "common.h"
#include "txscan.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- staging plugin folders --------------------------------------------- */

#define MAX_STAGED 256

static char stage_root[64];
static json_t *overrides; /* --set key=JSON, applied to every staged plugin.json */
static char *staged[MAX_STAGED * 3]; /* files then folders, removed in reverse */
static int nstaged;

static void stage_cleanup(void)
{
	for (int i = nstaged - 1; i >= 0; i--) {
		if (remove(staged[i]) != 0)
			fprintf(stderr, "bench_host: cannot remove %s: %s\n", staged[i], strerror(errno));
		free(staged[i]);
	}
	nstaged = 0;
	if (stage_root[0])
		rmdir(stage_root);
}

static void remember(char *path)
{
	if (nstaged == (int)(sizeof staged / sizeof staged[0]))
		bench_die("too many staged files");
	staged[nstaged++] = path;
}

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		bench_die("cannot write %s", path);
}

/* Copies the plugin in src_dir as <root>/<id>, rewriting id and instances. */
static void stage_plugin(const char *src_dir, const char *id, long instances)
{
	char *path = NULL, *dir = NULL, *main_out = NULL;
	if (asprintf(&path, "%s/plugin.json", src_dir) < 0 ||
	    asprintf(&dir, "%s/%s", stage_root, id) < 0)
		bench_die("out of memory");
	json_error_t je;
	json_t *m = json_load_file(path, 0, &je);
	if (!json_is_object(m))
		bench_die("%s: %s", path, je.text);
	const char *main_name = json_string_value(json_object_get(m, "main"));
	if (!main_name || strchr(main_name, '/'))
		bench_die("%s: \"main\" must be a file name in the folder", path);
	json_object_set_new(m, "id", json_string(id));
	if (instances > 0)
		json_object_set_new(m, "instances", json_integer(instances));
	if (overrides)
		json_object_update(m, overrides);
	if (mkdir(dir, 0700) != 0)
		bench_die("mkdir %s: %s", dir, strerror(errno));
	remember(dir);
	char *manifest = json_dumps(m, JSON_INDENT(2));
	char *out = NULL;
	if (asprintf(&out, "%s/plugin.json", dir) < 0 || asprintf(&main_out, "%s/%s", dir, main_name) < 0)
		bench_die("out of memory");
	write_file(out, manifest, strlen(manifest));
	remember(out);
	char *src_main = NULL;
	if (asprintf(&src_main, "%s/%s", src_dir, main_name) < 0)
		bench_die("out of memory");
	size_t len;
	char *code = bench_read_file(src_main, &len);
	write_file(main_out, code, len);
	remember(main_out);
	free(code);
	free(src_main);
	free(manifest);
	json_decref(m);
	free(path);
}

static void stage_begin(void)
{
	snprintf(stage_root, sizeof stage_root, "/tmp/txs-bench-XXXXXX");
	if (!mkdtemp(stage_root))
		bench_die("mkdtemp: %s", strerror(errno));
	atexit(stage_cleanup);
}

static bool has_manifest(const char *dir)
{
	char *p = NULL;
	if (asprintf(&p, "%s/plugin.json", dir) < 0)
		bench_die("out of memory");
	bool ok = access(p, R_OK) == 0;
	free(p);
	return ok;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Stages SRC (a plugin, copied `copies` times, or a folder of plugins) with
 * `instances` each; returns the number of plugins. */
static int stage(const char *src, long copies, long instances)
{
	stage_begin();
	if (has_manifest(src)) {
		bench_plugin p;
		bench_plugin_load(&p, src);
		for (long i = 1; i <= copies; i++) {
			char id[96];
			if (copies == 1)
				snprintf(id, sizeof id, "%s", p.id);
			else
				snprintf(id, sizeof id, "%.60s-%ld", p.id, i);
			stage_plugin(src, id, instances);
		}
		bench_plugin_free(&p);
		return (int)copies;
	}
	DIR *d = opendir(src);
	if (!d)
		bench_die("%s: %s", src, strerror(errno));
	char *dirs[MAX_STAGED];
	int n = 0;
	for (struct dirent *e; (e = readdir(d));) {
		char *sub = NULL;
		if (e->d_name[0] == '.' || asprintf(&sub, "%s/%s", src, e->d_name) < 0)
			continue;
		if (n < MAX_STAGED && has_manifest(sub))
			dirs[n++] = sub;
		else
			free(sub);
	}
	closedir(d);
	qsort(dirs, (size_t)n, sizeof *dirs, cmp_str);
	for (int i = 0; i < n; i++) {
		bench_plugin p;
		bench_plugin_load(&p, dirs[i]);
		stage_plugin(dirs[i], p.id, instances);
		bench_plugin_free(&p);
		free(dirs[i]);
	}
	if (n == 0)
		bench_die("%s: no plugin folders", src);
	return n;
}

static txs_isolation isolation = TXS_ISOLATION_THREAD; /* --isolation */

static txs_host *host_for(uint32_t scan_timeout_ms)
{
	txs_host_options o = {.scan_timeout_ms = scan_timeout_ms, .console_quiet = true,
	                      .isolation = isolation};
	txs_host *h = NULL;
	if (txs_host_new(&h, &o) != 0)
		bench_die("txs_host_new: %s", txs_last_error());
	if (txs_host_load(h, stage_root) != 0)
		bench_die("txs_host_load: %s", txs_last_error());
	return h;
}

/* ---- fan-out latency ---------------------------------------------------- */

static int mode_fanout(int argc, char **argv)
{
	const char *src = argv[2];
	long copies = strtol(argv[3], NULL, 10);
	bench_lines tx;
	bench_lines_load(&tx, argv[4]);
	long n = (long)bench_opt_num(argc, argv, "--n", 20000);
	long warmup = (long)bench_opt_num(argc, argv, "--warmup", 5000);
	if (copies < 1)
		bench_die("COPIES must be at least 1");
	stage(src, copies, 0);
	txs_host *h = host_for(0);
	double *us = malloc((size_t)n * sizeof *us);
	long incomplete = 0;
	char first_bad[1024] = "";
	uint64_t c0 = 0;
	for (long i = -warmup; i < n; i++) {
		size_t k = (size_t)(i + warmup) % tx.n;
		if (i == 0)
			c0 = bench_cpu_ns();
		txs_report *rep = NULL;
		uint64_t t0 = bench_now_ns();
		if (txs_host_scan(h, tx.line[k], tx.len[k], 0, &rep) != 0)
			bench_die("txs_host_scan: %s", txs_last_error());
		uint64_t t = bench_now_ns() - t0;
		if (i >= 0) {
			us[i] = (double)t / 1e3;
			if (!txs_report_complete(rep) && incomplete++ == 0)
				snprintf(first_bad, sizeof first_bad, "%s", txs_report_json(rep, NULL));
		}
		txs_report_free(rep);
	}
	uint64_t cpu = bench_cpu_ns() - c0;
	txs_host_free(h);
	double sum = 0;
	for (long i = 0; i < n; i++)
		sum += us[i];
	if (incomplete)
		fprintf(stderr, "bench_host: %ld incomplete reports; the first: %s\n", incomplete, first_bad);
	bench_json_begin("bench_host", "fanout");
	bench_json_int("plugins", copies);
	bench_json_int("n", n);
	bench_json_num("mean_us", sum / (double)n);
	bench_json_num("cpu_us_per_fanout", (double)cpu / 1e3 / (double)n);
	bench_json_num("p50_us", bench_percentile(us, (size_t)n, 50));
	bench_json_num("p90_us", bench_percentile(us, (size_t)n, 90));
	bench_json_num("p99_us", bench_percentile(us, (size_t)n, 99));
	bench_json_num("p999_us", bench_percentile(us, (size_t)n, 99.9));
	bench_json_num("max_us", us[n - 1]);
	bench_json_int("incomplete", incomplete);
	bench_json_end();
	free(us);
	bench_lines_free(&tx);
	return 0;
}

/* ---- throughput ---------------------------------------------------------- */

struct flow {
	atomic_long done, wake_at, incomplete, findings;
	sem_t sem;
};

static void on_report(txs_report *rep, void *ud)
{
	struct flow *f = ud;
	if (!txs_report_complete(rep))
		atomic_fetch_add(&f->incomplete, 1);
	if (txs_report_verdict(rep) != TXS_SEVERITY_NONE)
		atomic_fetch_add(&f->findings, 1);
	txs_report_free(rep);
	long d = atomic_fetch_add(&f->done, 1) + 1;
	if (d == atomic_load(&f->wake_at))
		sem_post(&f->sem);
}

static void flow_wait(struct flow *f, long target)
{
	atomic_store(&f->wake_at, target);
	while (atomic_load(&f->done) < target)
		while (sem_wait(&f->sem) != 0 && errno == EINTR)
			;
}

static int mode_throughput(int argc, char **argv)
{
	const char *src = argv[2];
	bench_lines tx;
	bench_lines_load(&tx, argv[3]);
	long copies = (long)bench_opt_num(argc, argv, "--copies", 1);
	long instances = (long)bench_opt_num(argc, argv, "--instances", 1);
	long window = (long)bench_opt_num(argc, argv, "--window", 512);
	long limit = (long)bench_opt_num(argc, argv, "--limit", 0);
	long rounds = (long)bench_opt_num(argc, argv, "--rounds", 1);
	int nplugins = stage(src, copies, instances);
	txs_host *h = host_for(UINT32_MAX);
	long total = (limit > 0 && (size_t)limit < tx.n ? limit : (long)tx.n) * rounds;

	struct flow f;
	atomic_init(&f.done, 0);
	atomic_init(&f.wake_at, -1);
	atomic_init(&f.incomplete, 0);
	atomic_init(&f.findings, 0);
	sem_init(&f.sem, 0, 0);
	/* warm-up: one pass over the first 2000 lines, not timed */
	long warm = tx.n < 2000 ? (long)tx.n : 2000;
	for (long i = 0; i < warm; i++)
		if (txs_host_submit(h, tx.line[i], tx.len[i], 0, on_report, &f) != 0)
			bench_die("txs_host_submit: %s", txs_last_error());
	flow_wait(&f, warm);
	atomic_store(&f.done, 0);
	atomic_store(&f.incomplete, 0);
	atomic_store(&f.findings, 0);
	atomic_store(&f.wake_at, -1);
	while (sem_trywait(&f.sem) == 0)
		;

	uint64_t t0 = bench_now_ns(), c0 = bench_cpu_ns();
	long submitted = 0;
	size_t k = 0, per_round = (size_t)(total / rounds);
	while (submitted < total) {
		long room = window - (submitted - atomic_load(&f.done));
		for (long j = 0; j < room && submitted < total; j++) {
			if (txs_host_submit(h, tx.line[k], tx.len[k], (uint64_t)k + 1, on_report, &f) != 0)
				bench_die("txs_host_submit: %s", txs_last_error());
			submitted++;
			k = k + 1 == per_round ? 0 : k + 1;
		}
		flow_wait(&f, submitted - window / 2);
	}
	flow_wait(&f, submitted);
	double secs = (double)(bench_now_ns() - t0) / 1e9;
	uint64_t cpu = bench_cpu_ns() - c0;
	txs_host_free(h);
	sem_destroy(&f.sem);
	bench_json_begin("bench_host", "throughput");
	bench_json_int("plugins", nplugins);
	bench_json_int("instances", instances);
	bench_json_int("reports", submitted);
	bench_json_num("seconds", secs);
	bench_json_num("reports_per_s", (double)submitted / secs);
	bench_json_num("scans_per_s", (double)submitted * nplugins / secs);
	bench_json_num("cpu_us_per_report", (double)cpu / 1e3 / (double)submitted);
	bench_json_int("incomplete", atomic_load(&f.incomplete));
	bench_json_int("with_findings", atomic_load(&f.findings));
	bench_json_end();
	bench_lines_free(&tx);
	return 0;
}

/* ---- start-up -------------------------------------------------------------- */

static double cpu_children_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static int mode_startup(int argc, char **argv)
{
	long n = (long)bench_opt_num(argc, argv, "--n", 10);
	if (n < 1)
		bench_die("--n must be at least 1");
	double *ms = malloc((size_t)n * sizeof *ms), first = 0, free_ms = 0, cpu_ms = 0;
	int plugins = 0;
	for (long i = -1; i < n; i++) {
		txs_host_options o = {.console_quiet = true, .isolation = isolation};
		txs_host *h = NULL;
		uint64_t c0 = bench_cpu_ns();
		double cc0 = cpu_children_ms();
		uint64_t t0 = bench_now_ns();
		if (txs_host_new(&h, &o) != 0 || txs_host_load(h, argv[2]) != 0)
			bench_die("start-up: %s", txs_last_error());
		double t = (double)(bench_now_ns() - t0) / 1e6;
		uint64_t t1 = bench_now_ns();
		plugins = (int)txs_host_plugin_count(h);
		txs_host_free(h);
		double tf = (double)(bench_now_ns() - t1) / 1e6;
		if (i < 0) {
			first = t;
			continue;
		}
		ms[i] = t;
		free_ms += tf;
		/* children are reaped by txs_host_free: their CPU includes their life */
		cpu_ms += (double)(bench_cpu_ns() - c0) / 1e6 + cpu_children_ms() - cc0;
	}
	bench_json_begin("bench_host", "startup");
	bench_json_str("isolation", isolation == TXS_ISOLATION_PROCESS ? "process" : "thread");
	bench_json_int("plugins", plugins);
	bench_json_int("n", n);
	bench_json_num("first_ms", first);
	bench_json_num("p50_ms", bench_percentile(ms, (size_t)n, 50));
	bench_json_num("min_ms", bench_percentile(ms, (size_t)n, 0));
	bench_json_num("max_ms", bench_percentile(ms, (size_t)n, 100));
	bench_json_num("cpu_ms_per_start", cpu_ms / (double)n);
	bench_json_num("free_ms", free_ms / (double)n);
	bench_json_end();
	free(ms);
	return 0;
}

/* --set key=JSON (repeatable), e.g. --set restart_every=0 */
static void parse_overrides(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i++) {
		if (strcmp(argv[i], "--set"))
			continue;
		char *eq = strchr(argv[i + 1], '=');
		if (!eq)
			bench_die("--set wants key=JSON, got '%s'", argv[i + 1]);
		json_error_t je;
		json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, &je);
		if (!v)
			bench_die("--set %s: %s", argv[i + 1], je.text);
		if (!overrides)
			overrides = json_object();
		char key[64];
		snprintf(key, sizeof key, "%.*s", (int)(eq - argv[i + 1]), argv[i + 1]);
		json_object_set_new(overrides, key, v);
	}
}

int main(int argc, char **argv)
{
	parse_overrides(argc, argv);
	const char *iso = bench_opt(argc, argv, "--isolation", NULL);
	if (iso && txs_isolation_parse(iso, &isolation) != 0)
		bench_die("%s", txs_last_error());
	if (argc >= 5 && !strcmp(argv[1], "fanout"))
		return mode_fanout(argc, argv);
	if (argc >= 4 && !strcmp(argv[1], "throughput"))
		return mode_throughput(argc, argv);
	if (argc >= 3 && !strcmp(argv[1], "startup"))
		return mode_startup(argc, argv);
	bench_die("usage: bench_host fanout PLUGIN_DIR COPIES TX.jsonl [--n N] | "
	          "bench_host throughput SRC TX.jsonl [--copies C] [--instances K] | "
	          "bench_host startup PLUGINS_DIR [--n N]");
}
