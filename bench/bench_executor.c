/*
 * bench_executor.c - one plugin instance (txs_executor_*): restart latency,
 * scan throughput with the watchdog and the recycling policy on, RSS per idle
 * instance and RSS across many restarts.
 *
 *   bench_executor restart  PLUGIN_DIR [TX.jsonl] [--n N] [--gap-ms G] [--isolation thread|process]
 *   bench_executor scan     PLUGIN_DIR TX.jsonl [--seconds S] [--sync] [--window W]
 *                           [--restart-every K] [--warmup N] [--isolation thread|process]
 *   bench_executor engine   PLUGIN_DIR TX.jsonl [--seconds S]
 *   bench_executor realm    PLUGIN_DIR [--n N] [--realms-per-vm K] [--prepared]
 *   bench_executor idle     PLUGIN_DIR TX.jsonl [--n N]
 *   bench_executor restarts PLUGIN_DIR TX.jsonl [--n N] [--no-scan]
 *   bench_executor handoff  [--n N]
 *   bench_executor cpus     [--reps R]
 *   bench_executor latency  PLUGIN_DIR TX.jsonl [--n N] [--gap-ms G] [--restart-every K]
 *   bench_executor stuck    [--n N] [--chars C] [--isolation thread|process]
 *
 * restart:  txs_executor_restart latency (build the new engine, load, init,
 *           destroy the old one, round trip to the executor thread). With a
 *           TX file, also the first scan after each restart (cold JIT).
 *           --gap-ms G: G ms of idle before each restart (untimed), as an
 *           operator's restart comes: the lane builds the next realm
 *           ahead meanwhile. --isolation process: txs_proc_restart, a round trip to the
 *           engine process (whose executor gives a fresh realm as above).
 * scan:     scans/s of one executor, limits from plugin.json over the library
 *           defaults (timeout 50 ms, heap limit 64 MB, restart_every 1000),
 *           transactions round-robin over the file. Pipelined by default: up
 *           to W scans queued with txs_executor_submit, as a batch job does;
 *           --sync: one txs_executor_scan at a time (round trip per scan).
 *           --isolation process: the same through an engine process
 *           (src/isolate/, txs_proc): pipelined only.
 * engine:   the engine alone (src/engine.h, internal) on the calling thread:
 *           calls into the VM + watchdog, no executor thread, no queue, no recycling.
 * idle:     RSS per instance: create N executors (engine built, init run),
 *           then after 10 scans each.
 * restarts: RSS after 1k, 10k, 100k ... restarts of one executor (one scan
 *           per engine generation unless --no-scan).
 * handoff:  round trip of a semaphore ping-pong between two threads: the
 *           floor under any synchronous call into an executor thread.
 * cpus:     the speed of each CPU this process may run on: a fixed integer
 *           loop pinned to each in turn (best of R), in ms and relative to
 *           the fastest. On a shared host one vCPU can run far slower than
 *           the other for minutes (a busy sibling thread on the host): this
 *           says which state a run's latencies were measured in.
 * latency:  a service's view: one txs_executor_scan at a time, --gap-ms of
 *           idle between scans, --n scans: round-trip p50/p99/max, and how
 *           many restarts happened. Run with --restart-every K and 0 to see
 *           whether recycling shows up in scan latency.
 */
#define _GNU_SOURCE
#include "common.h"
#include "engine/engine.h" /* internal: the `engine` mode only */
#include "isolate/isolate.h"
#include "txscan.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The recycles between two stats readings, as the executor timed them on
 * its serving thread (its recycle histogram): how many, their mean, how
 * many found their realm built ahead, and for the median and the 99th
 * percentile the smallest bucket bound at or above it ("p50 <= X"). */
static void json_recycles(const txs_executor_stats *s0, const txs_executor_stats *s1)
{
	uint64_t d[TXS_LATENCY_BUCKETS], n = 0;
	for (int i = 0; i < TXS_LATENCY_BUCKETS; i++)
		n += d[i] = s1->recycle_buckets[i] - s0->recycle_buckets[i];
	bench_json_int("recycles", (long long)n);
	bench_json_int("recycles_prepared", (long long)(s1->realm_prepared - s0->realm_prepared));
	if (!n)
		return;
	bench_json_num("recycle_mean_ms", (s1->recycle_sum_ms - s0->recycle_sum_ms) / (double)n);
	static const struct { const char *key; double q; } qs[] = {
	    {"recycle_p50_le_ms", 0.5}, {"recycle_p99_le_ms", 0.99}};
	for (size_t k = 0; k < 2; k++) {
		uint64_t acc = 0;
		int i = 0;
		while (i < TXS_LATENCY_BUCKETS - 1 && (double)(acc += d[i]) < qs[k].q * (double)n)
			i++;
		bench_json_num(qs[k].key, txs_latency_bounds_ms()[i]);
	}
}

static void limits_from(const bench_plugin *p, txs_limits *l, int argc, char **argv)
{
	txs_limits_init(l);
	if (p->timeout_ms)
		l->timeout_ms = p->timeout_ms;
	if (p->heap_limit_mb)
		l->heap_limit_mb = p->heap_limit_mb;
	if (p->heap_restart_mb)
		l->heap_restart_mb = p->heap_restart_mb;
	if (p->restart_every)
		l->restart_every = p->restart_every;
	l->init_timeout_ms = 10000; /* the heavy plugin under a profiler */
	/* ablations: --restart-every 0, --heap-restart-mb 0 (no heap sampling), ... */
	l->restart_every = (uint32_t)bench_opt_num(argc, argv, "--restart-every", l->restart_every);
	l->heap_restart_mb = (uint32_t)bench_opt_num(argc, argv, "--heap-restart-mb", l->heap_restart_mb);
	l->heap_sample_every =
	    (uint32_t)bench_opt_num(argc, argv, "--heap-sample-every", l->heap_sample_every);
	l->heap_limit_mb = (uint32_t)bench_opt_num(argc, argv, "--heap-limit-mb", l->heap_limit_mb);
	l->timeout_ms = (uint32_t)bench_opt_num(argc, argv, "--timeout-ms", l->timeout_ms);
	/* 1: every restart builds a new VM; the default gives fresh realms */
	l->realms_per_vm = (uint32_t)bench_opt_num(argc, argv, "--realms-per-vm", l->realms_per_vm);
}

static txs_executor *executor(const bench_plugin *p, const txs_limits *l)
{
	txs_plugin_code code = {
	    .id = p->id,
	    .version = p->version,
	    .filename = p->filename,
	    .source = p->source,
	    .source_len = p->source_len,
	    .config_json = p->config_json,
	};
	txs_executor *ex = NULL;
	if (txs_executor_new(&ex, &code, l, NULL, NULL) != 0)
		bench_die("%s: %s", p->dir, txs_last_error());
	return ex;
}

static txs_proc *engine_process(const bench_plugin *p, const txs_limits *l)
{
	txs_plugin_code code = {.id = p->id, .version = p->version, .filename = p->filename,
	                        .source = p->source, .source_len = p->source_len,
	                        .config_json = p->config_json};
	txs_proc *px = NULL;
	if (txs_proc_new(&px, &code, l, NULL, NULL, NULL) != 0)
		bench_die("%s: %s", p->dir, txs_last_error());
	return px;
}

/* CPU time of an engine process (utime + stime, clock ticks), for the
 * CPU per scan of both sides. */
static uint64_t child_cpu_ns(txs_proc *px)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)txs_proc_pid(px));
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	char *close_paren = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	if (!close_paren || sscanf(close_paren + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	                           &ut, &st) != 2)
		return 0;
	return (uint64_t)(ut + st) * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK));
}

static void scan_ok(txs_executor *ex, const char *tx, size_t len)
{
	txs_scan_result r;
	if (txs_executor_scan(ex, tx, len, &r) != 0 || r.status != TXS_STATUS_OK)
		bench_die("scan failed: %s: %s", txs_status_name(r.status), r.error ? r.error : "?");
	txs_scan_result_clear(&r);
}

static void sem_wait_all(sem_t *s)
{
	while (sem_wait(s) != 0 && errno == EINTR)
		;
}

/* One scan through an engine process, waited for: its status. */
struct one {
	sem_t sem;
	txs_status status;
};

static void one_cb(txs_scan_result *r, void *ud)
{
	struct one *o = ud;
	o->status = r->status;
	txs_scan_result_clear(r);
	sem_post(&o->sem);
}

static txs_status proc_scan(txs_proc *px, const char *tx)
{
	struct one o;
	sem_init(&o.sem, 0, 0);
	if (txs_proc_submit(px, tx, strlen(tx), one_cb, &o) != 0)
		bench_die("submit: %s", txs_last_error());
	sem_wait_all(&o.sem);
	sem_destroy(&o.sem);
	return o.status;
}

/* ---- restart --------------------------------------------------------- */

static int mode_restart(int argc, char **argv)
{
	bench_plugin p;
	bench_lines tx = {0};
	bench_plugin_load(&p, argv[2]);
	bool with_tx = argc > 3 && argv[3][0] != '-';
	if (with_tx)
		bench_lines_load(&tx, argv[3]);
	long n = (long)bench_opt_num(argc, argv, "--n", 1000);
	bool proc = !strcmp(bench_opt(argc, argv, "--isolation", "thread"), "process");
	double gap_ms = bench_opt_num(argc, argv, "--gap-ms", 0);
	struct timespec gap = {.tv_sec = (time_t)(gap_ms / 1e3),
	                       .tv_nsec = (long)(fmod(gap_ms, 1e3) * 1e6)};
	txs_limits l;
	limits_from(&p, &l, argc, argv);
	uint64_t t0 = bench_now_ns();
	txs_executor *ex = proc ? NULL : executor(&p, &l);
	txs_proc *px = proc ? engine_process(&p, &l) : NULL;
	double new_ms = (double)(bench_now_ns() - t0) / 1e6;
	double *ms = malloc((size_t)n * sizeof *ms), *scan_us = malloc((size_t)n * sizeof *scan_us);
	for (long i = 0; i < 20 && i < n; i++) /* warm the allocator and JSC's shared state */
		if ((proc ? txs_proc_restart(px) : txs_executor_restart(ex)) != 0)
			bench_die("restart: %s", txs_last_error());
	for (long i = 0; i < n; i++) {
		if (gap_ms > 0)
			nanosleep(&gap, NULL); /* untimed: an operator's restart comes after idle time */
		t0 = bench_now_ns();
		if ((proc ? txs_proc_restart(px) : txs_executor_restart(ex)) != 0)
			bench_die("restart: %s", txs_last_error());
		uint64_t t1 = bench_now_ns();
		ms[i] = (double)(t1 - t0) / 1e6;
		if (with_tx) {
			size_t k = (size_t)i % tx.n;
			if (proc) {
				if (proc_scan(px, tx.line[k]) != TXS_STATUS_OK)
					bench_die("scan after a restart failed");
			} else {
				scan_ok(ex, tx.line[k], tx.len[k]);
			}
			scan_us[i] = (double)(bench_now_ns() - t1) / 1e3;
		}
	}
	txs_executor_stats st;
	if (proc) {
		txs_proc_stats_get(px, &st);
		txs_proc_free(px);
	} else {
		txs_executor_stats_get(ex, &st);
		txs_executor_free(ex);
	}
	double sum = 0;
	for (long i = 0; i < n; i++)
		sum += ms[i];
	bench_json_begin("bench_executor", "restart");
	bench_json_str("plugin", p.id);
	bench_json_str("isolation", proc ? "process" : "thread");
	bench_json_int("realm_restarts", (long long)st.realm_restarts);
	bench_json_int("realm_prepared", (long long)st.realm_prepared);
	bench_json_int("standby_swaps", (long long)st.standby_swaps);
	bench_json_int("source_bytes", (long long)p.source_len);
	bench_json_int("n", n);
	bench_json_num("gap_ms", gap_ms);
	bench_json_num("first_new_ms", new_ms);
	bench_json_num("mean_ms", sum / (double)n);
	bench_json_num("p50_ms", bench_percentile(ms, (size_t)n, 50));
	bench_json_num("p90_ms", bench_percentile(ms, (size_t)n, 90));
	bench_json_num("p99_ms", bench_percentile(ms, (size_t)n, 99));
	bench_json_num("max_ms", ms[n - 1]);
	if (with_tx) {
		bench_json_num("cold_scan_p50_us", bench_percentile(scan_us, (size_t)n, 50));
		bench_json_num("cold_scan_p99_us", bench_percentile(scan_us, (size_t)n, 99));
		bench_lines_free(&tx);
	}
	bench_json_end();
	free(ms);
	free(scan_us);
	bench_plugin_free(&p);
	return 0;
}

/* ---- scan ------------------------------------------------------------- */

struct pipe {
	atomic_long done, wake_at, failed;
	sem_t sem;
	char first_error[512];
};

static void pipe_cb(txs_scan_result *r, void *ud)
{
	struct pipe *p = ud;
	if (r->status != TXS_STATUS_OK && atomic_fetch_add(&p->failed, 1) == 0)
		snprintf(p->first_error, sizeof p->first_error, "%s: %s", txs_status_name(r->status),
		         r->error ? r->error : "?");
	txs_scan_result_clear(r);
	long d = atomic_fetch_add(&p->done, 1) + 1;
	if (d == atomic_load(&p->wake_at))
		sem_post(&p->sem);
}

/* Waits until at least target scans have been answered. */
static void pipe_wait(struct pipe *p, long target)
{
	atomic_store(&p->wake_at, target);
	while (atomic_load(&p->done) < target)
		sem_wait_all(&p->sem);
}

/* Runs scans for `seconds` (or `count` scans when count > 0); returns scans. */
typedef int (*submit_fn)(void *unit, const char *tx, size_t len, txs_scan_fn cb, void *ud);

static int submit_executor(void *u, const char *tx, size_t len, txs_scan_fn cb, void *ud)
{
	return txs_executor_submit(u, tx, len, cb, ud);
}

static int submit_proc(void *u, const char *tx, size_t len, txs_scan_fn cb, void *ud)
{
	return txs_proc_submit(u, tx, len, cb, ud);
}

static long run_pipelined(submit_fn submit, void *ex, const bench_lines *tx, size_t *k,
                          long window, double seconds, long count, uint64_t *elapsed)
{
	struct pipe p;
	atomic_init(&p.done, 0);
	atomic_init(&p.wake_at, -1);
	atomic_init(&p.failed, 0);
	sem_init(&p.sem, 0, 0);
	uint64_t limit = (uint64_t)(seconds * 1e9), t0 = bench_now_ns();
	long submitted = 0;
	for (;;) {
		if (count > 0 ? submitted >= count : bench_now_ns() - t0 >= limit)
			break;
		long room = window - (submitted - atomic_load(&p.done));
		for (long j = 0; j < room && (count <= 0 || submitted < count); j++) {
			int rc = submit(ex, tx->line[*k], tx->len[*k], pipe_cb, &p);
			if (rc != 0)
				bench_die("submit: %s", txs_last_error());
			submitted++;
			*k = *k + 1 == tx->n ? 0 : *k + 1;
		}
		pipe_wait(&p, submitted - window / 2);
	}
	pipe_wait(&p, submitted);
	*elapsed = bench_now_ns() - t0;
	if (atomic_load(&p.failed))
		bench_die("%ld scans failed; the first: %s", atomic_load(&p.failed), p.first_error);
	sem_destroy(&p.sem);
	return submitted;
}

static long run_sync(txs_executor *ex, const bench_lines *tx, size_t *k, double seconds,
                     uint64_t *elapsed)
{
	uint64_t limit = (uint64_t)(seconds * 1e9), t0 = bench_now_ns();
	long n = 0;
	while (bench_now_ns() - t0 < limit) {
		for (int j = 0; j < 64; j++) {
			scan_ok(ex, tx->line[*k], tx->len[*k]);
			*k = *k + 1 == tx->n ? 0 : *k + 1;
		}
		n += 64;
	}
	*elapsed = bench_now_ns() - t0;
	return n;
}

static int mode_scan(int argc, char **argv)
{
	bench_plugin p;
	bench_lines tx;
	bench_plugin_load(&p, argv[2]);
	bench_lines_load(&tx, argv[3]);
	double seconds = bench_opt_num(argc, argv, "--seconds", 3);
	long window = (long)bench_opt_num(argc, argv, "--window", 256);
	long warmup = (long)bench_opt_num(argc, argv, "--warmup", 20000);
	bool sync = bench_flag(argc, argv, "--sync");
	const char *iso = bench_opt(argc, argv, "--isolation", "thread");
	bool proc = !strcmp(iso, "process");
	if (proc && sync)
		bench_die("--sync is for thread isolation");
	txs_limits l;
	limits_from(&p, &l, argc, argv);
	txs_executor *ex = proc ? NULL : executor(&p, &l);
	txs_proc *px = proc ? engine_process(&p, &l) : NULL;
	submit_fn submit = proc ? submit_proc : submit_executor;
	void *unit = proc ? (void *)px : (void *)ex;
	size_t k = 0;
	uint64_t elapsed;
	run_pipelined(submit, unit, &tx, &k, window, 0, warmup, &elapsed);
	txs_executor_stats s0, s1;
	if (proc)
		txs_proc_stats_get(px, &s0);
	else
		txs_executor_stats_get(ex, &s0);
	uint64_t c0 = bench_cpu_ns(), cc0 = proc ? child_cpu_ns(px) : 0;
	long n = sync ? run_sync(ex, &tx, &k, seconds, &elapsed)
	              : run_pipelined(submit, unit, &tx, &k, window, seconds, 0, &elapsed);
	uint64_t cpu = bench_cpu_ns() - c0 + (proc ? child_cpu_ns(px) - cc0 : 0);
	if (proc) {
		txs_proc_stats_get(px, &s1);
		txs_proc_free(px);
	} else {
		txs_executor_stats_get(ex, &s1);
		txs_executor_free(ex);
	}
	uint64_t restarts = (s1.restarts_scheduled + s1.restarts_heap + s1.restarts_killed) -
	                    (s0.restarts_scheduled + s0.restarts_heap + s0.restarts_killed);
	bench_json_begin("bench_executor", sync ? "scan_sync" : "scan");
	bench_json_str("plugin", p.id);
	bench_json_str("isolation", proc ? "process" : "thread");
	bench_json_int("txs", (long long)tx.n);
	bench_json_int("restart_every", l.restart_every);
	bench_json_int("timeout_ms", l.timeout_ms);
	bench_json_int("heap_restart_mb", l.heap_restart_mb);
	bench_json_int("heap_sample_every", l.heap_sample_every);
	bench_json_int("scans", n);
	bench_json_num("seconds", (double)elapsed / 1e9);
	bench_json_num("per_s", (double)n / ((double)elapsed / 1e9));
	bench_json_num("us_per_scan", (double)elapsed / 1e3 / (double)n);
	bench_json_num("cpu_us_per_scan", (double)cpu / 1e3 / (double)n);
	bench_json_num("engine_us_per_scan",
	               (s1.latency_sum_ms - s0.latency_sum_ms) * 1e3 / (double)(s1.scans - s0.scans));
	bench_json_int("restarts", (long long)restarts);
	bench_json_int("heap_readings", (long long)(s1.heap_readings - s0.heap_readings));
	json_recycles(&s0, &s1);
	bench_json_end();
	bench_plugin_free(&p);
	bench_lines_free(&tx);
	return 0;
}

/* ---- engine (internal API, calling thread) ---------------------------- */

/* stuck: a scan stuck in JSC's regexp engine (quadratic /a*b/, which does
 * not poll the watchdog), timeout 50 ms: how long until it is answered, and
 * the CPU the abandoned thread burns after that, until its call returns.
 * One stuck scan at a time: the next starts when the last lane is back.
 * --isolation process: the same through an engine process, which the host
 * kills; the next stuck scan starts once a plain scan was answered by the
 * replacement (no CPU figure: the killed process's is gone with it). */
static int mode_stuck(int argc, char **argv)
{
	long n = (long)bench_opt_num(argc, argv, "--n", 20);
	long chars = (long)bench_opt_num(argc, argv, "--chars", 40000);
	bool proc = !strcmp(bench_opt(argc, argv, "--isolation", "thread"), "process");
	static const char src[] =
	    "module.exports = { scanTransaction(tx) {\n"
	    "  if (tx.stuck) /a*b/.test('a'.repeat(tx.stuck)); return null; } };\n";
	txs_plugin_code code = {.id = "stuck", .version = "1", .filename = "stuck.js", .source = src,
	                        .source_len = sizeof src - 1};
	txs_limits l;
	txs_limits_init(&l);
	l.timeout_ms = 50;
	l.breaker_after = 0;
	txs_executor *ex = NULL;
	txs_proc *px = NULL;
	if (proc ? txs_proc_new(&px, &code, &l, NULL, NULL, NULL)
	         : txs_executor_new(&ex, &code, &l, NULL, NULL))
		bench_die("%s", txs_last_error());
	char tx[64];
	snprintf(tx, sizeof tx, "{\"stuck\":%ld}", chars);
	double *answer = malloc((size_t)n * sizeof *answer), *burn = malloc((size_t)n * sizeof *burn);
	for (long i = 0; i < n; i++) {
		struct timespec c0, c1;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
		uint64_t t0 = bench_now_ns();
		txs_scan_result r = {0};
		if (proc)
			r.status = proc_scan(px, tx);
		else
			txs_executor_scan(ex, tx, strlen(tx), &r);
		if (r.status != TXS_STATUS_TIMEOUT)
			bench_die("stuck scan answered %s", txs_status_name(r.status));
		txs_scan_result_clear(&r);
		answer[i] = (double)(bench_now_ns() - t0) / 1e6;
		burn[i] = 0;
		if (proc) {
			if (proc_scan(px, "{}") != TXS_STATUS_OK)
				bench_die("the replacement did not answer ok");
			continue;
		}
		txs_executor_stats st;
		do {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
			txs_executor_stats_get(ex, &st);
		} while (st.lanes_stuck);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
		double cpu = (double)(c1.tv_sec - c0.tv_sec) * 1e3 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e6;
		burn[i] = cpu - answer[i];
	}
	if (proc)
		txs_proc_free(px);
	else
		txs_executor_free(ex);
	bench_json_begin("bench_executor", "stuck");
	bench_json_str("isolation", proc ? "process" : "thread");
	bench_json_int("n", n);
	bench_json_int("chars", chars);
	bench_json_num("answer_p50_ms", bench_percentile(answer, (size_t)n, 50));
	bench_json_num("answer_p99_ms", bench_percentile(answer, (size_t)n, 99));
	bench_json_num("answer_max_ms", bench_percentile(answer, (size_t)n, 100));
	if (!proc)
		bench_json_num("abandoned_cpu_p50_ms", bench_percentile(burn, (size_t)n, 50));
	bench_json_end();
	free(answer);
	free(burn);
	return 0;
}

/* realm: the engine alone, on this thread, as an executor recycles it: a
 * fresh realm in the same VM (engine_new_realm) until the VM has hosted
 * --realms-per-vm engines (default 256, the executor's default; 2 gives a
 * new VM and a realm in turn), then a new VM (engine_new); each followed
 * by freeing the engine it replaces. --n realms are timed. --prepared:
 * before each realm (untimed) it is built ahead (engine_prepare_realm),
 * as an idle executor lane does; what is timed is taking it and freeing
 * the old one. */
static int mode_realm(int argc, char **argv)
{
	bench_plugin p;
	bench_plugin_load(&p, argv[2]);
	long n = (long)bench_opt_num(argc, argv, "--n", 2000);
	long per_vm = (long)bench_opt_num(argc, argv, "--realms-per-vm", 256);
	bool prepared = bench_flag(argc, argv, "--prepared");
	txs_limits l;
	limits_from(&p, &l, argc, argv);
	engine_config cfg = {.plugin_id = p.id, .plugin_version = p.version, .filename = p.filename,
	                     .source = p.source, .source_len = p.source_len,
	                     .config_json = p.config_json, .timeout_ms = l.timeout_ms,
	                     .init_timeout_ms = l.init_timeout_ms, .heap_limit_mb = l.heap_limit_mb,
	                     .max_result_bytes = l.max_result_bytes};
	double *vm = malloc((size_t)n * sizeof *vm), *realm = malloc((size_t)n * sizeof *realm);
	long nvm = 0, nrealm = 0;
	engine *e, *fresh;
	char *err;
	if (per_vm < 2)
		bench_die("--realms-per-vm must be at least 2");
	if (engine_new(&e, &cfg, &err) != 0)
		bench_die("engine_new: %s", err);
	uint64_t cpu0 = bench_cpu_ns();
	for (long in_vm = 1; nrealm < n; in_vm++) {
		bool new_vm = in_vm == per_vm;
		if (prepared && !new_vm && engine_prepare_realm(e, &cfg, &err) != 0) /* untimed */
			bench_die("engine_prepare_realm: %s", err);
		uint64_t t0 = bench_now_ns();
		int rc = new_vm ? engine_new(&fresh, &cfg, &err) : engine_new_realm(e, &fresh, &cfg, &err);
		if (rc != 0)
			bench_die("%s: %s", new_vm ? "engine_new" : "engine_new_realm", err);
		engine_free(e);
		e = fresh;
		double ms = (double)(bench_now_ns() - t0) / 1e6;
		if (new_vm) {
			vm[nvm++ % n] = ms;
			in_vm = 0;
		} else {
			realm[nrealm++] = ms;
		}
	}
	/* the process's CPU per engine built (GC threads included): steadier
	 * than wall time on a shared machine */
	double cpu_us = (double)(bench_cpu_ns() - cpu0) / 1e3 / (double)(n + nvm);
	engine_free(e);
	bench_json_begin("bench_executor", "realm");
	bench_json_str("plugin", p.id);
	bench_json_int("n", n);
	bench_json_int("realms_per_vm", per_vm);
	bench_json_int("prepared", prepared);
	bench_json_num("cpu_us_per_engine", cpu_us);
	if (nvm) {
		nvm = nvm < n ? nvm : n;
		bench_json_int("vms", nvm);
		bench_json_num("vm_p50_ms", bench_percentile(vm, (size_t)nvm, 50));
		bench_json_num("vm_p99_ms", bench_percentile(vm, (size_t)nvm, 99));
	}
	bench_json_num("realm_p50_ms", bench_percentile(realm, (size_t)n, 50));
	bench_json_num("realm_p99_ms", bench_percentile(realm, (size_t)n, 99));
	bench_json_end();
	free(vm);
	free(realm);
	bench_plugin_free(&p);
	return 0;
}

static int mode_engine(int argc, char **argv)
{
	bench_plugin p;
	bench_lines tx;
	bench_plugin_load(&p, argv[2]);
	bench_lines_load(&tx, argv[3]);
	double seconds = bench_opt_num(argc, argv, "--seconds", 3);
	long warmup = (long)bench_opt_num(argc, argv, "--warmup", 20000);
	txs_limits l;
	limits_from(&p, &l, argc, argv);
	engine_config cfg = {
	    .plugin_id = p.id,
	    .plugin_version = p.version,
	    .filename = p.filename,
	    .source = p.source,
	    .source_len = p.source_len,
	    .config_json = p.config_json,
	    .timeout_ms = l.timeout_ms,
	    .init_timeout_ms = l.init_timeout_ms,
	    .heap_limit_mb = l.heap_limit_mb,
	    .max_result_bytes = l.max_result_bytes,
	};
	engine *e;
	char *err;
	if (engine_new(&e, &cfg, &err) != 0)
		bench_die("engine_new: %s", err);
	size_t k = 0;
	engine_result r;
	for (long i = 0; i < warmup; i++, k = k + 1 == tx.n ? 0 : k + 1) {
		engine_scan(e, tx.line[k], tx.len[k], &r);
		if (r.status != ENGINE_OK)
			bench_die("engine_scan: %s", r.error);
		engine_result_clear(&r);
	}
	uint64_t limit = (uint64_t)(seconds * 1e9), t0 = bench_now_ns(), t = 0, worst = 0;
	long n = 0, failed = 0;
	while (t < limit) {
		for (int j = 0; j < 256; j++, k = k + 1 == tx.n ? 0 : k + 1) {
			uint64_t s0 = bench_now_ns();
			engine_scan(e, tx.line[k], tx.len[k], &r);
			uint64_t d = bench_now_ns() - s0;
			worst = d > worst ? d : worst;
			failed += r.status != ENGINE_OK;
			engine_result_clear(&r);
			if (engine_dead(e))
				bench_die("engine_scan: the engine was terminated after %.1f ms", (double)d / 1e6);
		}
		n += 256;
		t = bench_now_ns() - t0;
	}
	engine_free(e);
	bench_json_begin("bench_executor", "engine");
	bench_json_str("plugin", p.id);
	bench_json_int("scans", n);
	bench_json_num("per_s", (double)n / ((double)t / 1e9));
	bench_json_num("us_per_scan", (double)t / 1e3 / (double)n);
	bench_json_num("max_scan_ms", (double)worst / 1e6);
	bench_json_int("failed", failed);
	bench_json_end();
	bench_plugin_free(&p);
	bench_lines_free(&tx);
	return 0;
}

/* ---- RSS ---------------------------------------------------------------- */

static int mode_idle(int argc, char **argv)
{
	bench_plugin p;
	bench_lines tx;
	bench_plugin_load(&p, argv[2]);
	bench_lines_load(&tx, argv[3]);
	long n = (long)bench_opt_num(argc, argv, "--n", 50);
	txs_limits l;
	limits_from(&p, &l, argc, argv);
	/* the first VM of a process sets up JSC's shared state: not per instance */
	txs_executor *warm = executor(&p, &l);
	scan_ok(warm, tx.line[0], tx.len[0]);
	txs_executor_free(warm);
	long rss0 = bench_rss_kb();
	txs_executor **ex = calloc((size_t)n, sizeof *ex);
	for (long i = 0; i < n; i++)
		ex[i] = executor(&p, &l);
	long rss1 = bench_rss_kb();
	for (long i = 0; i < n; i++)
		for (int j = 0; j < 10; j++)
			scan_ok(ex[i], tx.line[(size_t)j % tx.n], tx.len[(size_t)j % tx.n]);
	long rss2 = bench_rss_kb();
	for (long i = 0; i < n; i++)
		txs_executor_free(ex[i]);
	long rss3 = bench_rss_kb();
	free(ex);
	bench_json_begin("bench_executor", "idle");
	bench_json_str("plugin", p.id);
	bench_json_int("n", n);
	bench_json_int("rss_base_kb", rss0);
	bench_json_num("rss_per_instance_kb", (double)(rss1 - rss0) / (double)n);
	bench_json_num("rss_per_instance_used_kb", (double)(rss2 - rss0) / (double)n);
	bench_json_num("rss_after_free_kb", (double)rss3);
	bench_json_end();
	bench_plugin_free(&p);
	bench_lines_free(&tx);
	return 0;
}

/* 1k, 10k, 100k, ... */
static bool is_checkpoint(long i)
{
	if (i < 1000)
		return false;
	while (i % 10 == 0)
		i /= 10;
	return i == 1;
}

static int mode_restarts(int argc, char **argv)
{
	bench_plugin p;
	bench_lines tx;
	bench_plugin_load(&p, argv[2]);
	bench_lines_load(&tx, argv[3]);
	long n = (long)bench_opt_num(argc, argv, "--n", 100000);
	bool scan_each = !bench_flag(argc, argv, "--no-scan");
	txs_limits l;
	limits_from(&p, &l, argc, argv);
	txs_executor *ex = executor(&p, &l);
	scan_ok(ex, tx.line[0], tx.len[0]);
	long rss0 = bench_rss_kb();
	long rss_1k = -1, rss_last = -1, peak = rss0;
	bench_json_begin("bench_executor", "restarts");
	bench_json_str("plugin", p.id);
	bench_json_int("rss_start_kb", rss0);
	uint64_t t0 = bench_now_ns();
	for (long i = 1; i <= n; i++) {
		if (txs_executor_restart(ex) != 0)
			bench_die("restart: %s", txs_last_error());
		size_t k = (size_t)i % tx.n;
		if (scan_each)
			scan_ok(ex, tx.line[k], tx.len[k]);
		if (i % 1000 == 0) {
			long rss = bench_rss_kb();
			if (rss > peak)
				peak = rss;
			if (i == 1000)
				rss_1k = rss;
			rss_last = rss;
		}
		if (is_checkpoint(i)) {
			char key[48];
			snprintf(key, sizeof key, "rss_after_%ld_kb", i);
			bench_json_int(key, bench_rss_kb());
			fprintf(stderr, "bench_executor: %ld restarts, RSS %ld kB\n", i, bench_rss_kb());
		}
	}
	double secs = (double)(bench_now_ns() - t0) / 1e9;
	txs_executor_free(ex);
	bench_json_int("n", n);
	bench_json_int("scan_each", scan_each);
	bench_json_num("restarts_per_s", (double)n / secs);
	bench_json_int("rss_end_kb", rss_last);
	bench_json_int("rss_peak_kb", peak);
	bench_json_int("rss_growth_after_1k_kb", rss_1k >= 0 ? rss_last - rss_1k : 0);
	bench_json_int("rss_growth_total_kb", rss_last - rss0);
	bench_json_end();
	bench_plugin_free(&p);
	bench_lines_free(&tx);
	return 0;
}

/* ---- thread hand-off floor ------------------------------------------- */

struct pingpong {
	sem_t ping, pong;
	long n;
};

static void *pong_main(void *arg)
{
	struct pingpong *pp = arg;
	for (long i = 0; i < pp->n; i++) {
		sem_wait_all(&pp->ping);
		sem_post(&pp->pong);
	}
	return NULL;
}

/* Round trip of a semaphore ping-pong between two threads: the least a
 * synchronous call into another thread costs on this machine. */
static int mode_handoff(int argc, char **argv)
{
	long n = (long)bench_opt_num(argc, argv, "--n", 20000);
	struct pingpong pp = {.n = n};
	sem_init(&pp.ping, 0, 0);
	sem_init(&pp.pong, 0, 0);
	pthread_t t;
	pthread_create(&t, NULL, pong_main, &pp);
	double *us = malloc((size_t)n * sizeof *us);
	for (long i = 0; i < n; i++) {
		uint64_t t0 = bench_now_ns();
		sem_post(&pp.ping);
		sem_wait_all(&pp.pong);
		us[i] = (double)(bench_now_ns() - t0) / 1e3;
	}
	pthread_join(t, NULL);
	bench_json_begin("bench_executor", "handoff");
	bench_json_int("n", n);
	bench_json_num("p50_us", bench_percentile(us, (size_t)n, 50));
	bench_json_num("p99_us", bench_percentile(us, (size_t)n, 99));
	bench_json_end();
	free(us);
	return 0;
}

/* ---- cpus: the speed of each CPU ---------------------------------------- */

static double spin_ms(void)
{
	/* a store and a load per step, as the interpreter and the GC do: a pure
	 * register chain does not see a busy sibling thread on the host */
	volatile uint64_t x = 0;
	uint64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < 30 * 1000 * 1000; i++)
		x += i * i;
	return (double)(bench_now_ns() - t0) / 1e6;
}

static int mode_cpus(int argc, char **argv)
{
	long reps = (long)bench_opt_num(argc, argv, "--reps", 3);
	cpu_set_t all, one;
	if (sched_getaffinity(0, sizeof all, &all) != 0)
		bench_die("sched_getaffinity: %s", strerror(errno));
	double ms[CPU_SETSIZE], best = 0;
	int cpus[CPU_SETSIZE], n = 0;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &all))
			continue;
		CPU_ZERO(&one);
		CPU_SET(c, &one);
		if (sched_setaffinity(0, sizeof one, &one) != 0)
			bench_die("sched_setaffinity %d: %s", c, strerror(errno));
		double m = 1e300;
		for (long r = 0; r < reps; r++) {
			double t = spin_ms();
			m = t < m ? t : m;
		}
		cpus[n] = c;
		ms[n++] = m;
		best = !best || m < best ? m : best;
	}
	sched_setaffinity(0, sizeof all, &all);
	bench_json_begin("bench_executor", "cpus");
	char key[32];
	double slowest = 0;
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof key, "cpu%d_ms", cpus[i]);
		bench_json_num(key, ms[i]);
		slowest = ms[i] > slowest ? ms[i] : slowest;
	}
	bench_json_num("slowest_vs_fastest", slowest / best);
	bench_json_end();
	return 0;
}

/* ---- latency: one scan at a time, with idle gaps ------------------------ */

static int mode_latency(int argc, char **argv)
{
	bench_plugin p;
	bench_lines tx;
	bench_plugin_load(&p, argv[2]);
	bench_lines_load(&tx, argv[3]);
	long n = (long)bench_opt_num(argc, argv, "--n", 2000);
	double gap_ms = bench_opt_num(argc, argv, "--gap-ms", 1);
	long warmup = (long)bench_opt_num(argc, argv, "--warmup", 200);
	txs_limits l;
	limits_from(&p, &l, argc, argv);
	txs_executor *ex = executor(&p, &l);
	double *us = malloc((size_t)n * sizeof *us);
	if (!us)
		bench_die("out of memory");
	struct timespec gap = {.tv_sec = (time_t)(gap_ms / 1e3),
	                       .tv_nsec = (long)(fmod(gap_ms, 1e3) * 1e6)};
	for (long i = 0; i < warmup; i++)
		scan_ok(ex, tx.line[(size_t)i % tx.n], tx.len[(size_t)i % tx.n]);
	txs_executor_stats s0, s1;
	txs_executor_stats_get(ex, &s0);
	for (long i = 0; i < n; i++) {
		nanosleep(&gap, NULL);
		size_t k = (size_t)i % tx.n;
		uint64_t t0 = bench_now_ns();
		scan_ok(ex, tx.line[k], tx.len[k]);
		us[i] = (double)(bench_now_ns() - t0) / 1e3;
	}
	txs_executor_stats_get(ex, &s1);
	txs_executor_free(ex);
	bench_json_begin("bench_executor", "latency");
	bench_json_str("plugin", p.id);
	bench_json_int("n", n);
	bench_json_num("gap_ms", gap_ms);
	bench_json_int("restart_every", l.restart_every);
	bench_json_int("restarts", (long long)(s1.restarts_scheduled - s0.restarts_scheduled));
	bench_json_num("p50_us", bench_percentile(us, (size_t)n, 50));
	bench_json_num("p99_us", bench_percentile(us, (size_t)n, 99));
	bench_json_num("p999_us", bench_percentile(us, (size_t)n, 99.9));
	bench_json_num("max_us", us[n - 1]);
	json_recycles(&s0, &s1);
	bench_json_end();
	free(us);
	bench_plugin_free(&p);
	bench_lines_free(&tx);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "handoff"))
		return mode_handoff(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "cpus"))
		return mode_cpus(argc, argv);
	if (argc < 3)
		bench_die("usage: bench_executor restart|scan|engine|idle|restarts|latency PLUGIN_DIR [TX.jsonl] "
		          "[options] | handoff | cpus");
	const char *m = argv[1];
	if (!strcmp(m, "restart"))
		return mode_restart(argc, argv);
	if (argc < 4)
		bench_die("%s needs PLUGIN_DIR TX.jsonl", m);
	if (!strcmp(m, "scan"))
		return mode_scan(argc, argv);
	if (!strcmp(m, "engine"))
		return mode_engine(argc, argv);
	if (!strcmp(m, "realm"))
		return mode_realm(argc, argv);
	if (!strcmp(m, "stuck"))
		return mode_stuck(argc, argv);
	if (!strcmp(m, "idle"))
		return mode_idle(argc, argv);
	if (!strcmp(m, "restarts"))
		return mode_restarts(argc, argv);
	if (!strcmp(m, "latency"))
		return mode_latency(argc, argv);
	bench_die("unknown mode %s", m);
}
