/*
 * check.c - `txscan check PLUGIN_DIR [TX_FILE]`: validate the manifest, load
 * the code, run init, optionally scan sample transactions (or fixtures), and
 * say plainly what is wrong or that it is fine.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "txscan.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: txscan check [--isolation thread|process] [-q] PLUGIN_DIR [TX_FILE]\n"
	        "                    [--config JSON]\n\n"
	        "Validates plugin.json, loads the code (bundling it when it is an ES module,\n"
	        "TypeScript or has imports) and runs init(ctx) for the plugin in PLUGIN_DIR\n"
	        "(or every plugin in a folder of plugins). Then it scans each line of TX_FILE\n"
	        "or, without one, each plugin's own fixtures.jsonl, and prints what each\n"
	        "answered and how long its scan took.\n\n"
	        "A line may be a transaction, or a fixture:\n"
	        "  {\"name\": \"...\", \"tx\": {...}, \"expect\": [\"CODE\", ...]}\n"
	        "whose findings' codes must equal \"expect\", in order: the findings of all\n"
	        "plugins for a TX_FILE, of the fixture's own plugin for its fixtures.jsonl.\n\n"
	        "  --config JSON       ctx.config of every plugin, instead of plugin.json's config\n"
	        CLI_QUIET_HELP
	        CLI_ISOLATION_HELP CLI_LOG_HELP "\n"
	        "exit status: 0 fine; 2 something is wrong (the output says what); 64 usage.\n");
}

static void describe(txs_host *h)
{
	txs_plugin_info in;
	for (size_t i = 0; txs_host_plugin_info(h, i, &in) == 0; i++)
		printf("ok    %s %s (%s): loaded, init ran; timeout %u ms, heap limit %u MB, "
		       "recycle at %u MB or every %u scans, %u instance%s\n",
		       in.id, in.version, in.dir, in.limits.timeout_ms, in.limits.heap_limit_mb,
		       in.limits.heap_restart_mb, in.limits.restart_every, in.instances,
		       in.instances == 1 ? "" : "s");
}

/* Codes of the report's findings (of plugin `only`, when not NULL) as a
 * JSON array, for fixture comparison. */
static json_t *codes(json_t *report, const char *only)
{
	json_t *out = json_array(), *f;
	size_t i;
	json_array_foreach(json_object_get(report, "findings"), i, f)
	{
		const char *who = json_string_value(json_object_get(f, "plugin"));
		if (!only || (who && !strcmp(who, only)))
			json_array_append(out, json_object_get(f, "code"));
	}
	return out;
}

/* How long the scan took: plugin `only`'s time, or the report's. */
static double scan_ms(json_t *report, const char *only)
{
	json_t *p;
	size_t i;
	json_array_foreach(json_object_get(report, "plugins"), i, p)
	{
		const char *id = json_string_value(json_object_get(p, "id"));
		if (only && id && !strcmp(id, only))
			return json_number_value(json_object_get(p, "ms"));
	}
	return json_number_value(json_object_get(report, "ms"));
}

static int problems_in(json_t *report, unsigned long line)
{
	int bad = 0;
	json_t *p, *err = json_object_get(report, "error");
	size_t i;
	if (err) {
		printf("FAIL  line %lu: %s\n", line, json_string_value(err));
		return 1;
	}
	json_array_foreach(json_object_get(report, "plugins"), i, p)
	{
		const char *st = json_string_value(json_object_get(p, "status"));
		if (strcmp(st, "ok")) {
			printf("FAIL  line %lu: %s: %s: %s\n", line,
			       json_string_value(json_object_get(p, "id")), st,
			       json_string_value(json_object_get(p, "error")));
			bad = 1;
		}
	}
	return bad;
}

static int check_line(txs_host *h, const char *text, size_t len, unsigned long line,
                      const char *only)
{
	/* "\u0000" and integers past 64 bits are valid JSON: jansson refuses
	 * them without these flags (a refused report read as "ok") */
	const size_t flags = JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL;
	json_t *in = json_loadb(text, len, flags, NULL), *tx = json_object_get(in, "tx");
	json_t *expect = json_object_get(in, "expect");
	bool fixture = json_is_object(tx) && json_is_array(expect);
	char *body = fixture ? json_dumps(tx, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
	txs_report *rep = NULL;
	int bad = 0;
	if (txs_host_scan(h, body ? body : text, body ? strlen(body) : len, line, &rep) != 0) {
		printf("FAIL  line %lu: %s\n", line, txs_last_error());
		bad = 1;
		goto out;
	}
	json_t *r = json_loads(txs_report_json(rep, NULL), flags, NULL), *got = codes(r, only);
	bad = problems_in(r, line);
	char *g = json_dumps(got, JSON_COMPACT);
	const char *name = json_string_value(json_object_get(in, "name"));
	if (!bad && fixture && !json_equal(got, expect)) {
		char *e = json_dumps(expect, JSON_COMPACT);
		printf("FAIL  line %lu (%s): findings %s, expected %s\n", line, name ? name : "?", g, e);
		free(e);
		bad = 1;
	} else if (!bad) {
		printf("ok    line %lu%s%s%s: verdict %s, findings %s, %.3f ms\n", line,
		       name ? " (" : "", name ? name : "", name ? ")" : "",
		       json_string_value(json_object_get(r, "verdict")), g, scan_ms(r, only));
	}
	free(g);
	json_decref(got);
	json_decref(r);
out:
	txs_report_free(rep);
	free(body);
	json_decref(in);
	return bad;
}

static int check_file(txs_host *h, const char *path, int *lines, const char *only)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		printf("FAIL  %s: %s\n", path, strerror(errno));
		return 1;
	}
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long line = 0;
	int bad = 0;
	while ((n = getline(&buf, &cap, f)) > 0) {
		line++;
		while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			buf[--n] = '\0';
		if (!n)
			continue;
		bad += check_line(h, buf, (size_t)n, line, only);
		(*lines)++;
	}
	free(buf);
	fclose(f);
	return bad;
}

/* Each plugin's own fixtures.jsonl, its findings against each "expect". */
static int check_own_fixtures(txs_host *h, int *lines)
{
	txs_plugin_info in;
	int bad = 0, found = 0;
	for (size_t i = 0; txs_host_plugin_info(h, i, &in) == 0; i++) {
		char path[1100];
		snprintf(path, sizeof path, "%s/fixtures.jsonl", in.dir);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		fclose(f);
		found++;
		printf("      %s: %s\n", in.id, path);
		bad += check_file(h, path, lines, in.id);
	}
	if (!found)
		printf("      no fixtures.jsonl beside plugin.json: nothing scanned (give a TX_FILE)\n");
	return bad;
}

static int parse_args(int argc, char **argv, const char **dir, const char **file,
                      const char **config, int *quiet)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			*config = argv[++i];
		else if (!strncmp(argv[i], "--config=", 9))
			*config = argv[i] + 9;
		else if (cli_is_quiet(argv[i]))
			*quiet = 1;
		else if (!strcmp(argv[i], "--config"))
			return cli_error("check: --config needs a JSON object"), -1;
		else if (argv[i][0] == '-' && argv[i][1])
			return cli_error("check: unknown option '%s'", argv[i]), -1;
		else if (!*dir)
			*dir = argv[i];
		else if (!*file)
			*file = argv[i];
		else
			return cli_error("check: unexpected argument '%s'", argv[i]), -1;
	}
	if (!*dir)
		return cli_error("check: missing PLUGIN_DIR"), -1;
	json_t *c = *config ? json_loads(*config, 0, NULL) : NULL;
	bool ok = !*config || json_is_object(c);
	json_decref(c);
	if (!ok)
		cli_error("--config must be a JSON object, such as '{\"threshold\": 5}'");
	return ok ? 0 : -1;
}

int cmd_check(int argc, char **argv)
{
	const char *dir = NULL, *file = NULL, *config = NULL;
	int quiet = 0;
	if (cli_wants_help(argc, argv)) {
		usage(stdout);
		return EXIT_CLEAN;
	}
	if (parse_args(argc, argv, &dir, &file, &config, &quiet) != 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	txs_host_options opt = {.config_json = config, .console_quiet = quiet != 0};
	txs_host *h = cli_load_host_opts(&dir, 1, &opt);
	if (!h) {
		printf("FAIL  %s: the plugin does not load (see above)\n", dir);
		return EXIT_ERRORS;
	}
	describe(h);
	int bad = 0, lines = 0;
	bad = file ? check_file(h, file, &lines, NULL) : check_own_fixtures(h, &lines);
	txs_host_free(h);
	if (lines || file)
		printf("%s  %d transaction%s, %d problem%s\n", bad ? "FAIL" : "ok  ", lines,
		       lines == 1 ? "" : "s", bad, bad == 1 ? "" : "s");
	return bad ? EXIT_ERRORS : EXIT_CLEAN;
}
