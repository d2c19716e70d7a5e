/*
 * main.c - `txscan SUBCOMMAND ...`: dispatch, --help and --version.
 */
#include "cli.h"
#include "txscan.h"

#include <string.h>

/* Weak until every subcommand's file is in the tree. */
#pragma weak cmd_serve
#pragma weak cmd_worker
#pragma weak cmd_publish

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
    {"scan", cmd_scan, "scan transactions (JSON Lines, JSON, array) with every plugin"},
    {"check", cmd_check, "validate a plugin folder and optionally scan sample transactions"},
    {"plugins", cmd_plugins, "list loaded plugins with versions and limits"},
    {"new", cmd_new, "create a plugin folder (JavaScript, or TypeScript with --ts)"},
    {"bundle", cmd_bundle, "bundle a plugin (ES module, TypeScript, imports) ahead of time"},
    {"serve", cmd_serve, "run the HTTP service"},
    {"worker", cmd_worker, "scan a Redis stream as part of a consumer group"},
    {"publish", cmd_publish, "feed a JSON Lines file into a Redis stream"},
    {"follow", cmd_follow, "follow a chain over Ethereum JSON-RPC and scan every new block"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
	fprintf(out, "usage: txscan [--version] [--help] COMMAND [ARGS]\n\n"
	             "Runs untrusted JavaScript plugins against transactions, each plugin\n"
	             "in its own JavaScriptCore VM on its own thread; with --isolation process\n"
	             "(scan, check, serve, worker) each plugin instance's VMs run in a\n"
	             "sandboxed child process.\n\ncommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'txscan COMMAND --help' describes one command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("txscan %s\n", TXS_VERSION);
		return EXIT_CLEAN;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_CLEAN;
	}
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		if (!commands[i].run) {
			cli_error("'%s' is not built into this binary", argv[1]);
			return EXIT_USAGE;
		}
		if (cli_log_opts(&argc, argv) != 0 || cli_isolation_opts(&argc, argv) != 0)
			return EXIT_USAGE;
		return commands[i].run(argc - 1, argv + 1);
	}
	cli_error("unknown command '%s'", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
