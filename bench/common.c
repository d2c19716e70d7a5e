/*
 * common.c - see common.h.
 */
#define _GNU_SOURCE
#include "common.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void bench_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bench_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

long bench_rss_kb(void)
{
	long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = -1;
	fclose(f);
	return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

char *bench_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		bench_die("cannot open %s", path);
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (!buf)
			bench_die("out of memory reading %s", path);
		n += fread(buf + n, 1, cap - n - 1, f);
		if (n < cap - 1)
			break;
		cap *= 2;
		buf = realloc(buf, cap);
	}
	if (ferror(f))
		bench_die("cannot read %s", path);
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

static char *join_path(const char *dir, const char *name)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		bench_die("out of memory");
	return p;
}

static uint32_t num_key(json_t *root, const char *key)
{
	json_t *v = json_object_get(root, key);
	return json_is_integer(v) ? (uint32_t)json_integer_value(v) : 0;
}

static char *str_key(json_t *root, const char *key, const char *path)
{
	json_t *v = json_object_get(root, key);
	if (!json_is_string(v))
		bench_die("%s: \"%s\" must be a string", path, key);
	return strdup(json_string_value(v));
}

void bench_plugin_load(bench_plugin *p, const char *dir)
{
	memset(p, 0, sizeof *p);
	char *path = join_path(dir, "plugin.json");
	json_error_t jerr;
	json_t *root = json_load_file(path, 0, &jerr);
	if (!json_is_object(root))
		bench_die("%s: %s", path, jerr.text);
	p->dir = strdup(dir);
	p->id = str_key(root, "id", path);
	p->version = str_key(root, "version", path);
	p->main = str_key(root, "main", path);
	json_t *config = json_object_get(root, "config");
	p->config_json = config ? json_dumps(config, JSON_COMPACT) : strdup("{}");
	p->timeout_ms = num_key(root, "timeout_ms");
	p->heap_limit_mb = num_key(root, "heap_limit_mb");
	p->heap_restart_mb = num_key(root, "heap_restart_mb");
	p->restart_every = num_key(root, "restart_every");
	p->instances = num_key(root, "instances");
	p->filename = join_path(dir, p->main);
	p->source = bench_read_file(p->filename, &p->source_len);
	json_decref(root);
	free(path);
}

void bench_plugin_free(bench_plugin *p)
{
	free(p->dir);
	free(p->id);
	free(p->version);
	free(p->main);
	free(p->filename);
	free(p->source);
	free(p->config_json);
	memset(p, 0, sizeof *p);
}

void bench_lines_load(bench_lines *l, const char *path)
{
	size_t len;
	memset(l, 0, sizeof *l);
	l->buf = bench_read_file(path, &len);
	size_t cap = 1024;
	l->line = malloc(cap * sizeof *l->line);
	l->len = malloc(cap * sizeof *l->len);
	for (char *s = l->buf; s < l->buf + len;) {
		char *nl = memchr(s, '\n', (size_t)(l->buf + len - s));
		char *end = nl ? nl : l->buf + len;
		char *stop = end > s && end[-1] == '\r' ? end - 1 : end;
		*stop = '\0';
		size_t n = (size_t)(stop - s);
		if (n > 0) {
			if (l->n == cap) {
				cap *= 2;
				l->line = realloc(l->line, cap * sizeof *l->line);
				l->len = realloc(l->len, cap * sizeof *l->len);
			}
			if (!l->line || !l->len)
				bench_die("out of memory");
			l->line[l->n] = s;
			l->len[l->n] = n;
			l->n++;
		}
		s = end + 1;
	}
	if (l->n == 0)
		bench_die("%s: no lines", path);
}

void bench_lines_free(bench_lines *l)
{
	free(l->buf);
	free(l->line);
	free(l->len);
	memset(l, 0, sizeof *l);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void bench_sort(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_double);
}

/* Nearest rank on sorted data. */
double bench_percentile(double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	bench_sort(v, n);
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

void bench_json_begin(const char *bench, const char *mode)
{
	printf("{\"bench\":\"%s\"", bench);
	if (mode)
		printf(",\"mode\":\"%s\"", mode);
}

void bench_json_num(const char *key, double v)
{
	printf(",\"%s\":%.6g", key, v);
}

void bench_json_int(const char *key, long long v)
{
	printf(",\"%s\":%lld", key, v);
}

void bench_json_str(const char *key, const char *v)
{
	json_t *s = json_string(v);
	char *t = json_dumps(s, JSON_ENCODE_ANY);
	printf(",\"%s\":%s", key, t ? t : "null");
	free(t);
	json_decref(s);
}

void bench_json_end(void)
{
	printf("}\n");
	fflush(stdout);
}

const char *bench_opt(int argc, char **argv, const char *name, const char *fallback)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return argv[i + 1];
	return fallback;
}

double bench_opt_num(int argc, char **argv, const char *name, double fallback)
{
	const char *v = bench_opt(argc, argv, name, NULL);
	if (!v)
		return fallback;
	char *end;
	double d = strtod(v, &end);
	if (*end)
		bench_die("%s wants a number, got '%s'", name, v);
	return d;
}

bool bench_flag(int argc, char **argv, const char *name)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], name))
			return true;
	return false;
}
