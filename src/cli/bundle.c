/*
 * bundle.c - `txscan bundle PLUGIN_DIR -o FILE`: the bundle that loading
 * the plugin makes (ES module, TypeScript, imports), written ahead of time
 * for hosts without esbuild.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "txscan.h"

#include <string.h>

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: txscan bundle PLUGIN_DIR -o FILE [-q]\n\n"
	        "Bundles the plugin's main file and everything it imports (its own files and\n"
	        "its own node_modules) into one CommonJS FILE with esbuild, as loading the\n"
	        "plugin does, and writes its source map to FILE.map. On a host without esbuild,\n"
	        "put FILE and FILE.map in the plugin folder and set \"main\" to FILE: it loads\n"
	        "as is, and its stack traces still name the original files.\n\n"
	        "  -o, --output FILE   the bundle to write\n"
	        "  -q, --quiet         no \"wrote\" line\n"
	        CLI_LOG_HELP "\n"
	        "exit status: 0 written; 2 the plugin cannot be bundled (the error says why);\n"
	        "64 usage.\n");
}

static int usage_error(const char *fmt, const char *arg)
{
	char msg[512];
	snprintf(msg, sizeof msg, fmt, arg);
	cli_error("bundle: %s", msg);
	usage(stderr);
	return EXIT_USAGE;
}

int cmd_bundle(int argc, char **argv)
{
	const char *dir = NULL, *out = NULL;
	int quiet = 0;
	if (cli_wants_help(argc, argv)) {
		usage(stdout);
		return EXIT_CLEAN;
	}
	for (int i = 1; i < argc; i++) {
		if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc)
			out = argv[++i];
		else if (!strncmp(argv[i], "--output=", 9))
			out = argv[i] + 9;
		else if (cli_is_quiet(argv[i]))
			quiet = 1;
		else if (argv[i][0] != '-' && !dir)
			dir = argv[i];
		else
			return usage_error(argv[i][0] == '-' ? "unknown option '%s'"
			                                     : "unexpected argument '%s'", argv[i]);
	}
	if (!dir || !out)
		return usage_error("missing %s", !dir ? "PLUGIN_DIR" : "-o FILE");
	if (txs_plugin_bundle(dir, out) != 0) {
		cli_error("%s", txs_last_error());
		return EXIT_ERRORS;
	}
	if (!quiet)
		cli_info("bundle", "wrote %s and %s.map", out, out);
	return EXIT_CLEAN;
}
