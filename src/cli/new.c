/*
 * new.c - `txscan new NAME [--ts]`: a plugin folder that passes
 * `txscan check NAME` at once: plugin.json, index.js (or index.ts and a
 * tsconfig.json), fixtures.jsonl, and the plugin types in types/.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "types_dts.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: txscan new NAME [--ts] [-q]\n\n"
	        "Creates the plugin folder NAME (its id: a-z, 0-9 and '-'): plugin.json,\n"
	        "index.js (with --ts: index.ts and tsconfig.json), fixtures.jsonl and the\n"
	        "plugin types in types/. It passes `txscan check NAME` as it is; edit the rule\n"
	        "and its fixtures from there (docs/plugins.md).\n\n"
	        "  -q, --quiet         no \"created\" line\n"
	        CLI_LOG_HELP "\n"
	        "exit status: 0 created; 2 the folder exists or cannot be written; 64 usage.\n");
}

static const char JS[] =
    "// %s: flags transactions sent to an address in config.watchlist.\n"
    "// Replace the rule with yours; keep fixtures.jsonl in step (txscan check .).\n"
    "'use strict';\n\n"
    "/** @type {import('./types/txscan').Plugin<{watchlist: string[]}>} */\n"
    "module.exports = {\n"
    "  scanTransaction(tx, ctx) {\n"
    "    const to = typeof tx.to === 'string' ? tx.to.toLowerCase() : '';\n"
    "    if (!to || !ctx.config.watchlist.includes(to)) return null;\n"
    "    return {\n"
    "      code: 'WATCHED_ADDRESS',\n"
    "      severity: 'medium',\n"
    "      message: `transaction to watched address ${to}`,\n"
    "      metadata: { to },\n"
    "    };\n"
    "  },\n"
    "};\n";

static const char TS[] =
    "// %s: flags transactions sent to an address in config.watchlist.\n"
    "// Replace the rule with yours; keep fixtures.jsonl in step (txscan check .).\n"
    "// txscan bundles this file and its imports at load (esbuild).\n"
    "import type { Finding, Plugin, Transaction, Ctx } from './types/txscan';\n\n"
    "interface Config {\n"
    "  watchlist: string[];\n"
    "}\n\n"
    "function scanTransaction(tx: Transaction, ctx: Ctx<Config>): Finding | null {\n"
    "  const to = typeof tx.to === 'string' ? tx.to.toLowerCase() : '';\n"
    "  if (!to || !ctx.config.watchlist.includes(to)) return null;\n"
    "  return {\n"
    "    code: 'WATCHED_ADDRESS',\n"
    "    severity: 'medium',\n"
    "    message: `transaction to watched address ${to}`,\n"
    "    metadata: { to },\n"
    "  };\n"
    "}\n\n"
    "const plugin: Plugin<Config> = { scanTransaction };\n"
    "export default plugin;\n";

static const char TSCONFIG[] =
    "{\n"
    "  \"compilerOptions\": {\n"
    "    \"target\": \"es2022\",\n"
    "    \"lib\": [\"es2022\"],\n"
    "    \"types\": [],\n"
    "    \"module\": \"esnext\",\n"
    "    \"moduleResolution\": \"bundler\",\n"
    "    \"strict\": true,\n"
    "    \"noEmit\": true,\n"
    "    \"skipLibCheck\": true\n"
    "  },\n"
    "  \"include\": [\"*.ts\", \"types/*.d.ts\"]\n"
    "}\n";

static const char MANIFEST[] =
    "{\n"
    "  \"id\": \"%s\",\n"
    "  \"version\": \"0.1.0\",\n"
    "  \"description\": \"Transactions to a watched address\",\n"
    "  \"main\": \"%s\",\n"
    "  \"timeout_ms\": 50,\n"
    "  \"config\": {\n"
    "    \"watchlist\": [\"0x000000000000000000000000000000000000dead\"]\n"
    "  }\n"
    "}\n";

static const char FIXTURES[] =
    "{\"name\":\"a transfer to the watched address\",\"tx\":{\"hash\":\"0x01\","
    "\"from\":\"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266\",\"to\":"
    "\"0x000000000000000000000000000000000000dEaD\",\"value\":\"0x1\",\"input\":\"0x\"},"
    "\"expect\":[\"WATCHED_ADDRESS\"]}\n"
    "{\"name\":\"a transfer elsewhere\",\"tx\":{\"hash\":\"0x02\","
    "\"from\":\"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266\",\"to\":"
    "\"0x70997970c51812dc3a010c7d01b50e0d17dc79c8\",\"value\":\"0x1\",\"input\":\"0x\"},"
    "\"expect\":[]}\n"
    "{\"name\":\"a contract creation (no to)\",\"tx\":{\"hash\":\"0x03\","
    "\"from\":\"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266\",\"to\":null,"
    "\"value\":\"0x0\",\"input\":\"0x6080\"},\"expect\":[]}\n";

static bool valid_id(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return false;
	return true;
}

/* Writes dir/name with fmt (one %s: arg); false after printing why. */
static bool put(const char *dir, const char *name, const char *fmt, const char *arg,
                const char *arg2)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wx");
	if (!f) {
		cli_error("%s: %s", path, strerror(errno));
		return false;
	}
	bool ok = (arg ? fprintf(f, fmt, arg, arg2) : fputs(fmt, f)) >= 0;
	ok = fclose(f) == 0 && ok;
	if (!ok)
		cli_error("%s: cannot write: %s", path, strerror(errno));
	return ok;
}

int cmd_new(int argc, char **argv)
{
	const char *dir = NULL;
	bool ts = false, quiet = false;
	if (cli_wants_help(argc, argv)) {
		usage(stdout);
		return EXIT_CLEAN;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--ts"))
			ts = true;
		else if (cli_is_quiet(argv[i]))
			quiet = true;
		else if (argv[i][0] != '-' && !dir)
			dir = argv[i];
		else {
			cli_error("new: %s '%s'", argv[i][0] == '-' ? "unknown option" : "unexpected argument",
			          argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	const char *id = dir ? strrchr(dir, '/') : NULL;
	id = id ? id + 1 : dir;
	if (!dir || !valid_id(id)) {
		if (dir)
			cli_error("%s: a plugin's name is 1-64 characters of a-z, 0-9 and '-'", dir);
		else
			cli_error("new: missing NAME");
		usage(stderr);
		return EXIT_USAGE;
	}
	char types[4096];
	snprintf(types, sizeof types, "%s/types", dir);
	if (mkdir(dir, 0777) != 0 || mkdir(types, 0777) != 0) {
		cli_error("%s: %s", dir, strerror(errno));
		return EXIT_ERRORS;
	}
	const char *main = ts ? "index.ts" : "index.js";
	bool ok = put(dir, "plugin.json", MANIFEST, id, main) &&
	          put(dir, main, ts ? TS : JS, id, NULL) &&
	          put(dir, "fixtures.jsonl", FIXTURES, NULL, NULL) &&
	          put(types, "txscan.d.ts", TXSCAN_D_TS, NULL, NULL) &&
	          put(types, "txscan-globals.d.ts", TXSCAN_GLOBALS_D_TS, NULL, NULL) &&
	          (!ts || put(dir, "tsconfig.json", TSCONFIG, NULL, NULL));
	if (!ok)
		return EXIT_ERRORS;
	if (!quiet)
		cli_info("new", "created %s (%s); try: txscan check %s", dir, main, dir);
	return EXIT_CLEAN;
}
