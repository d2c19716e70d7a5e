/*
 * common.h - helpers shared by the benchmark programs (bench/ programs): clocks,
 * RSS, files, plugin folders, percentiles and the one-line JSON summary every
 * program prints last on stdout (bench/run parses it).
 *
 * Independent of libtxscan, so raw_jsc.c stays a program that uses nothing
 * but JavaScriptCore.
 */
#ifndef TXS_BENCH_COMMON_H
#define TXS_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint64_t bench_now_ns(void);
/* CPU time of the whole process (every thread), ns. */
uint64_t bench_cpu_ns(void);
/* Resident set size of this process in KiB, from /proc/self/statm. */
long bench_rss_kb(void);

/* Whole file, NUL-terminated; exits with a message on failure. */
char *bench_read_file(const char *path, size_t *len);

/* A plugin folder as plugin.json describes it (only what benchmarks need). */
typedef struct bench_plugin {
	char *dir, *id, *version, *main, *filename;
	char *source;        /* the main file */
	size_t source_len;
	char *config_json;   /* "config" as JSON text, "{}" when absent */
	uint32_t timeout_ms, heap_limit_mb, heap_restart_mb, restart_every, instances;
} bench_plugin;

/* Exits with a message on failure. Numeric keys absent from plugin.json are 0. */
void bench_plugin_load(bench_plugin *p, const char *dir);
void bench_plugin_free(bench_plugin *p);

/* Lines of a JSON Lines file (empty lines skipped); one allocation behind. */
typedef struct bench_lines {
	char *buf;
	const char **line;
	size_t *len;
	size_t n;
} bench_lines;

void bench_lines_load(bench_lines *l, const char *path);
void bench_lines_free(bench_lines *l);

/* Percentile p (0..100) of v[0..n): sorts v in place. */
double bench_percentile(double *v, size_t n, double p);
void bench_sort(double *v, size_t n);

/* The summary: {"bench": NAME, key: value, ...} on one line of stdout. */
void bench_json_begin(const char *bench, const char *mode);
void bench_json_num(const char *key, double v);
void bench_json_int(const char *key, long long v);
void bench_json_str(const char *key, const char *v);
void bench_json_end(void);

/* Command-line options of the form --name VALUE after the positionals. */
const char *bench_opt(int argc, char **argv, const char *name, const char *fallback);
double bench_opt_num(int argc, char **argv, const char *name, double fallback);
bool bench_flag(int argc, char **argv, const char *name);

void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
