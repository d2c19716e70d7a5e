/*
 * plugins.c - `txscan plugins`: the loaded plugins with versions and limits.
 */
#include "cli.h"
#include "txscan.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DIRS 32

static void usage(FILE *out)
{
	fprintf(out, "usage: txscan plugins [-p DIR]... [--json] [--allow-partial] [-q]\n\n"
	             "Loads the plugins (validating each, running init) and lists them with\n"
	             "their versions and limits. --json prints the same as GET /v1/plugins.\n"
	             "A plugin that fails to load makes it list every failure and exit 2;\n"
	             "with --allow-partial it is listed as not started, with why\n"
	             "(\"started\": false and \"error\" in --json), and the exit status is 2.\n"
	             "--json shows each plugin's last_error and failures_last_minute.\n\n"
	             CLI_PLUGINS_HELP
	             "  -q, --quiet         accepted as everywhere (the listing is all it prints)\n"
	             CLI_LOG_HELP);
}

int cmd_plugins(int argc, char **argv)
{
	const char *dirs[MAX_DIRS];
	int ndirs = 0, json = 0, partial = 0, rc = EXIT_CLEAN;
	if (cli_wants_help(argc, argv)) {
		usage(stdout);
		return EXIT_CLEAN;
	}
	for (int i = 1; i < argc; i++) {
		int r = cli_plugins_opt(argc, argv, &i, dirs, &ndirs, MAX_DIRS);
		if (r < 0)
			return EXIT_USAGE;
		if (r == 0 && cli_is_quiet(argv[i])) {
			continue; /* nothing to drop: the listing is the output */
		} else if (r == 0 && !strcmp(argv[i], "--json")) {
			json = 1;
		} else if (r == 0 && !strcmp(argv[i], "--allow-partial")) {
			partial = 1;
		} else if (r == 0) {
			cli_error("plugins: unknown argument '%s'", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	txs_host_options hopt = {.console_quiet = true, .allow_partial = partial != 0};
	txs_host *h = cli_load_host_opts(dirs, ndirs, &hopt);
	if (!h)
		return cli_load_exit();
	if (json) {
		char *s = NULL;
		if (txs_host_plugins_json(h, &s) == 0)
			printf("%s\n", s);
		free(s);
	} else {
		printf("%-24s %-10s %4s %8s %8s %9s %8s  %s\n", "ID", "VERSION", "INST", "TIMEOUT",
		       "HEAP", "RECYCLE", "EVERY", "DIR");
		txs_plugin_info in;
		for (size_t i = 0; txs_host_plugin_info(h, i, &in) == 0; i++)
			if (in.started)
				printf("%-24s %-10s %4u %6u ms %5u MB %6u MB %8u  %s\n", in.id, in.version,
				       in.instances, in.limits.timeout_ms, in.limits.heap_limit_mb,
				       in.limits.heap_restart_mb, in.limits.restart_every, in.dir);
			else
				printf("%-24s NOT STARTED: %s\n", in.id, in.error);
	}
	txs_plugin_info in;
	for (size_t i = 0; txs_host_plugin_info(h, i, &in) == 0; i++)
		if (!in.started)
			rc = EXIT_ERRORS;
	txs_host_free(h);
	return rc;
}
