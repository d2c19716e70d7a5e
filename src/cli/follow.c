/*
 * follow.c - `txscan follow` (follow a chain's head over Ethereum JSON-RPC
 * and scan every transaction of every canonical block) and `txscan scan
 * --rpc` (scan transactions or blocks fetched from a node). The chain side
 * is src/chain/; this file parses options, loads the plugins and turns
 * SIGTERM/SIGINT into a stop after the block in hand.
 */
#define _POSIX_C_SOURCE 200809L
#include "chain/follow.h"
#include "chain/scanner.h"
#include "util/log.h"
#include "cli.h"
#include "txscan.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DIRS = 64, MAX_TXS = 1024 };

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN); /* a closed stdout is a write error, not a death */
}

static const char follow_usage[] =
    "usage: txscan follow [--rpc URL] [-p DIR]... [options]\n\n"
    "Follows an Ethereum node's chain head over JSON-RPC and scans every\n"
    "transaction of every new block, in block order, with every plugin: one\n"
    "report per transaction on stdout (JSON Lines), each with \"chainId\" and\n"
    "\"block\". Plugins see the node's transaction plus \"receipt\" (status,\n"
    "gasUsed, contractAddress, logs) and \"block\" (docs/chains.md).\n"
    "A reorg is detected by parent hashes: each transaction reported from a block\n"
    "that left the canonical chain gets a line {\"removed\":true,\"tx\":HASH,...},\n"
    "then the new canonical blocks are reported. SIGTERM or SIGINT: finish the\n"
    "block in hand, write the checkpoint, exit 0.\n\n"
    "options:\n"
    "      --rpc URL           the node (http:// or https://; default $TXSCAN_RPC_URL,\n"
    "                          which keeps credentials out of ps; $TXSCAN_RPC_AUTH is\n"
    "                          sent as the Authorization header)\n"
    "  -p, --plugins DIR       plugin folder or folder of plugins (repeatable;\n"
    "                          default $TXSCAN_PLUGINS, ':'-separated, then ./plugins)\n"
    "      --from-block N|latest  first block to scan (default latest: the head,\n"
    "                          minus --confirmations); ignored when a checkpoint exists\n"
    "      --to-block N        stop after this block (exit 0)\n"
    "      --confirmations K   scan a block only once it is K blocks deep (default 0)\n"
    "      --checkpoint FILE   the last block fully reported (and the blocks before it,\n"
    "                          for reorgs), written atomically after its reports are\n"
    "                          flushed; on start, resume after it\n"
    "      --poll-ms N         head polling interval when caught up (default 1000)\n"
    "      --max-reorg N       deepest reorg undone; past it, exit 2 (default 64)\n"
    "      --batch N           blocks per request while catching up (1-64, default 8)\n"
    "      --no-receipts       do not fetch receipts (\"receipt\": null; faster)\n"
    "      --timeout-ms N      one request to the node (default 10000)\n"
    "      --retries N         retries of a failed request (default 4); past them a\n"
    "                          node that cannot be reached is waited for, one that\n"
    "                          answers nonsense 3 times in a row is an error\n"
    "      --max-response-mb N the largest answer read from the node (default 64)\n"
    "  -q, --quiet             only reports and problems: no plugin console output\n"
    "      --quiet-console     the same (kept for scripts that use it)\n"
    "      --isolation MODE    thread or process (default $TXSCAN_ISOLATION, else\n"
    "                          " CLI_DEFAULT_ISOLATION_NAME "; see txscan scan --help)\n"
    CLI_LOG_HELP24
    "      --allow-partial     start with the plugins that load (see txscan scan)\n\n"
    "exit status: 0 stopped by a signal or past --to-block; 2 a plugin failed to\n"
    "load, the node's answers are invalid, a reorg deeper than --max-reorg, or the\n"
    "output or checkpoint cannot be written; 64 usage error.\n";

struct rpc_args {
	const char *url;
	const char *dirs[MAX_DIRS];
	int ndirs;
	int quiet_console, allow_partial, no_receipts;
	uint32_t timeout_ms, retries, max_response_mb;
	txs_severity fail_on;
	/* scan --rpc */
	const char *txs[MAX_TXS];
	int ntxs;
	bool has_blocks, latest_block;
	uint64_t first, last;
	/* follow */
	struct follow_opts f;
};

static int parse_u64(const char *opt, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *end || errno || s[0] == '-') {
		cli_error("%s: not a number: '%s'", opt, s);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_u32(const char *opt, const char *s, uint32_t *out, uint32_t min)
{
	uint64_t v;
	if (parse_u64(opt, s, &v))
		return -1;
	if (v < min || v > UINT32_MAX) {
		cli_error("%s: out of range: '%s'", opt, s);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

/* 0 when v <= max, else -1 after saying so. */
static int below(const char *opt, uint32_t v, uint32_t max)
{
	if (v <= max)
		return 0;
	cli_error("%s: at most %u (got %u)", opt, max, v);
	return -1;
}

/* A block number, or "latest" when latest is not NULL. */
static int parse_block(const char *opt, const char *s, uint64_t *n, bool *latest)
{
	if (latest && !strcmp(s, "latest")) {
		*latest = true;
		return 0;
	}
	return parse_u64(opt, s, n);
}

static int parse_range(const char *s, uint64_t *a, uint64_t *b)
{
	const char *dots = strstr(s, "..");
	char first[32];
	if (!dots || (size_t)(dots - s) >= sizeof first) {
		cli_error("--blocks: expected A..B, got '%s'", s);
		return -1;
	}
	memcpy(first, s, (size_t)(dots - s));
	first[dots - s] = '\0';
	if (parse_u64("--blocks", first, a) || parse_u64("--blocks", dots + 2, b))
		return -1;
	if (*b < *a) {
		cli_error("--blocks: %" PRIu64 "..%" PRIu64 " is empty", *a, *b);
		return -1;
	}
	return 0;
}

static bool is_hash(const char *s)
{
	json_t *v = json_string(s);
	bool ok = v && eth_fixed_hex(v, 32);
	json_decref(v);
	return ok;
}

/* Options both commands take; 1 consumed, 0 not ours, -1 error. */
static int common_opt(int argc, char **argv, int *i, struct rpc_args *a)
{
	const char *o = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
	int r = cli_plugins_opt(argc, argv, i, a->dirs, &a->ndirs, MAX_DIRS);
	if (r)
		return r;
	if (!strcmp(o, "--quiet-console") || cli_is_quiet(o))
		return a->quiet_console = 1;
	if (!strcmp(o, "--allow-partial"))
		return a->allow_partial = 1;
	if (!strcmp(o, "--no-receipts"))
		return a->no_receipts = 1;
	if (strcmp(o, "--rpc") && strcmp(o, "--timeout-ms") && strcmp(o, "--retries") &&
	    strcmp(o, "--max-response-mb"))
		return 0;
	if (!v) {
		cli_error("%s needs a value", o);
		return -1;
	}
	++*i;
	if (!strcmp(o, "--rpc"))
		a->url = v;
	else if (!strcmp(o, "--timeout-ms"))
		return parse_u32(o, v, &a->timeout_ms, 1) ? -1 : 1;
	else if (!strcmp(o, "--max-response-mb"))
		return parse_u32(o, v, &a->max_response_mb, 1) || below(o, a->max_response_mb, 4096) ? -1 : 1;
	else
		return parse_u32(o, v, &a->retries, 0) ? -1 : 1;
	return 1;
}

static int follow_opt(const char *o, const char *v, struct rpc_args *a)
{
	struct follow_opts *f = &a->f;
	if (!strcmp(o, "--from-block"))
		return parse_block(o, v, &f->from, &f->from_latest);
	if (!strcmp(o, "--to-block")) {
		f->has_to = true;
		return parse_u64(o, v, &f->to);
	}
	if (!strcmp(o, "--confirmations"))
		return parse_u32(o, v, &f->confirmations, 0);
	if (!strcmp(o, "--checkpoint")) {
		f->checkpoint = v;
		return 0;
	}
	if (!strcmp(o, "--poll-ms"))
		return parse_u32(o, v, &f->poll_ms, 1);
	if (!strcmp(o, "--max-reorg"))
		return parse_u32(o, v, &f->max_reorg, 1);
	if (!strcmp(o, "--batch"))
		return parse_u32(o, v, &f->batch, 1) || below(o, f->batch, 64);
	cli_error("follow: unknown option '%s' (see txscan follow --help)", o);
	return -1;
}

static int scan_opt(const char *o, const char *v, struct rpc_args *a)
{
	if (!strcmp(o, "--tx")) {
		if (!is_hash(v)) {
			cli_error("--tx: not a transaction hash (0x + 64 hex digits): '%s'", v);
			return -1;
		}
		if (a->ntxs >= MAX_TXS) {
			cli_error("--tx: at most %d", MAX_TXS);
			return -1;
		}
		a->txs[a->ntxs++] = v;
		return 0;
	}
	if (!strcmp(o, "--block")) {
		a->has_blocks = true;
		if (parse_block(o, v, &a->first, &a->latest_block))
			return -1;
		a->last = a->first;
		return 0;
	}
	if (!strcmp(o, "--blocks")) {
		a->has_blocks = true;
		a->latest_block = false;
		return parse_range(v, &a->first, &a->last);
	}
	if (!strcmp(o, "--fail-on")) {
		if (txs_severity_parse(v, &a->fail_on) || a->fail_on == TXS_SEVERITY_NONE) {
			cli_error("--fail-on: unknown severity '%s'", v);
			return -1;
		}
		return 0;
	}
	cli_error("scan --rpc: unknown option '%s' (see txscan scan --help)", o);
	return -1;
}

static int parse(int argc, char **argv, struct rpc_args *a, bool follow)
{
	*a = (struct rpc_args){.fail_on = TXS_SEVERITY_HIGH, .retries = 4,
	                       .f = {.from_latest = true, .max_reorg = 64, .poll_ms = 1000, .batch = 8}};
	for (int i = 1; i < argc; i++) {
		int r = common_opt(argc, argv, &i, a);
		if (r < 0)
			return -1;
		if (r > 0)
			continue;
		if (i + 1 >= argc || argv[i][0] != '-') {
			cli_error("%s: unexpected '%s' (see txscan %s --help)", argv[0], argv[i], argv[0]);
			return -1;
		}
		if (!strcmp(argv[i], "--from-block"))
			a->f.from_latest = false; /* unless it says latest */
		if ((follow ? follow_opt : scan_opt)(argv[i], argv[i + 1], a))
			return -1;
		i++;
	}
	if (!a->url)
		a->url = getenv("TXSCAN_RPC_URL");
	if (!a->url || !*a->url) {
		cli_error("no node: pass --rpc URL or set TXSCAN_RPC_URL");
		return -1;
	}
	if (!follow && !a->ntxs && !a->has_blocks) {
		cli_error("scan --rpc: say what to scan: --tx HASH, --block N or --blocks A..B");
		return -1;
	}
	return 0;
}

/* ---- shared set-up ----------------------------------------------------------- */

struct session {
	txs_host *host;
	struct eth_chain chain;
	struct scanner *scanner;
};

static void session_free(struct session *s)
{
	scanner_free(s->scanner);
	rpc_free(s->chain.rpc);
	txs_host_free(s->host);
}

/* Connects (eth_chainId), then loads the plugins. EXIT_CLEAN or an exit code.
 * No report deadline: each scan is bounded by its plugin's timeout_ms, and a
 * transaction waiting behind the rest of its block in a plugin's queue is
 * not a timeout (with the host's default, 4 x timeout_ms + 100 ms, a plugin
 * of 4 ms a scan had 55 of a block's 120 scans expire queued). */
static int session_open(struct session *s, const struct rpc_args *a)
{
	char err[512];
	struct rpc_options ro = {.timeout_ms = a->timeout_ms, .retries = a->retries,
	                         .max_response = (size_t)a->max_response_mb << 20,
	                         .auth = getenv("TXSCAN_RPC_AUTH")};
	memset(s, 0, sizeof *s);
	if (ro.auth && !*ro.auth)
		ro.auth = NULL;
	if (rpc_new(&s->chain.rpc, a->url, &ro, err, sizeof err)) {
		cli_error("%s", err);
		return EXIT_USAGE;
	}
	rpc_set_abort(s->chain.rpc, &stop_requested);
	s->chain.receipts = !a->no_receipts;
	if (eth_chain_id(&s->chain)) {
		cli_error("%s", s->chain.err);
		return EXIT_ERRORS;
	}
	txs_host_options hopt = {.scan_timeout_ms = UINT32_MAX,
	                         .console_quiet = a->quiet_console != 0,
	                         .allow_partial = a->allow_partial != 0};
	if (!(s->host = cli_load_host_opts(a->dirs, a->ndirs, &hopt)))
		return cli_load_exit();
	if (scanner_new(&s->scanner, s->host, stdout, s->chain.chain_id, a->fail_on)) {
		cli_error("out of memory");
		return EXIT_ERRORS;
	}
	return EXIT_CLEAN;
}

static int exit_code(const struct scan_totals *t, int failed)
{
	if (failed || t->input_errors || t->incomplete)
		return EXIT_ERRORS;
	return t->failing ? EXIT_FINDING : EXIT_CLEAN;
}

/* ---- txscan follow --------------------------------------------------------------- */

/* The follower's notices (the node gone and back, a reorg, resuming from
 * the checkpoint) as "chain" log lines. */
static void chain_notice(const char *level, const char *msg, void *userdata)
{
	txs_log_level lv = TXS_LOG_WARN;
	(void)userdata;
	txs_log_level_parse(level, &lv);
	txs_logf(lv, "chain", "%s", msg);
}

int cmd_follow(int argc, char **argv)
{
	struct rpc_args a;
	struct session s;
	char err[1024];
	if (cli_wants_help(argc, argv)) {
		fputs(follow_usage, stdout);
		return EXIT_CLEAN;
	}
	if (parse(argc, argv, &a, true))
		return EXIT_USAGE;
	catch_signals();
	int rc = session_open(&s, &a);
	if (rc == EXIT_CLEAN) {
		a.f.notice = chain_notice;
		if (follow_run(&s.chain, s.scanner, &a.f, &stop_requested, err, sizeof err)) {
			cli_error("%s", err);
			rc = EXIT_ERRORS;
		}
	}
	session_free(&s);
	return rc;
}

/* ---- txscan scan --rpc ------------------------------------------------------------ */

static int scan_one_tx(struct session *s, const char *hash)
{
	json_t *tx = NULL;
	struct eth_header h;
	bool pending;
	int rc = eth_tx_get(&s->chain, hash, &tx, &h, &pending);
	if (rc) {
		cli_error("%s: %s", hash, s->chain.err);
		return -1;
	}
	if (!tx) {
		char line[256];
		snprintf(line, sizeof line,
		         "{\"tx\":\"%s\",\"error\":\"no such transaction on the node\",\"chainId\":%" PRIu64
		         ",\"block\":null}",
		         hash, s->chain.chain_id);
		scanner_line(s->scanner, line);
		return -1;
	}
	json_t *one = json_array();
	json_array_append_new(one, tx);
	rc = scanner_txs(s->scanner, one, pending ? NULL : &h);
	json_decref(one);
	return rc;
}

static int scan_blocks(struct session *s, uint64_t first, uint64_t last)
{
	struct eth_block b[8];
	for (uint64_t at = first; at <= last && !stop_requested;) {
		size_t got = 0, n = last - at + 1 < 8 ? (size_t)(last - at + 1) : 8;
		if (eth_blocks_get(&s->chain, at, n, b, &got)) {
			cli_error("%s", s->chain.err);
			return -1;
		}
		int rc = got ? 0 : -1;
		for (size_t i = 0; i < got; i++) {
			if (!rc && scanner_txs(s->scanner, b[i].txs, &b[i].h))
				rc = -1;
			eth_block_clear(&b[i]);
		}
		if (!got)
			cli_error("block %" PRIu64 ": the node does not have it", at);
		if (rc)
			return -1;
		at += got;
	}
	return 0;
}

static int latest(struct session *s, uint64_t *n)
{
	struct eth_header h;
	bool found;
	if (eth_header_get(&s->chain, true, 0, &h, &found) || !found) {
		cli_error("latest block: %s", found ? s->chain.err : "the node has none");
		return -1;
	}
	*n = h.number;
	return 0;
}

int cmd_scan_rpc(int argc, char **argv)
{
	struct rpc_args a;
	struct session s;
	if (parse(argc, argv, &a, false))
		return EXIT_USAGE;
	catch_signals();
	int rc = session_open(&s, &a), failed = 0;
	if (rc == EXIT_CLEAN) {
		for (int i = 0; i < a.ntxs && !stop_requested; i++)
			failed |= scan_one_tx(&s, a.txs[i]) != 0;
		if (a.has_blocks && a.latest_block && latest(&s, &a.first))
			failed = 1;
		else if (a.has_blocks)
			failed |= scan_blocks(&s, a.first, a.latest_block ? a.first : a.last) != 0;
		if (scanner_flush(s.scanner)) {
			cli_error("cannot write reports: %s", strerror(errno));
			failed = 1;
		}
		rc = exit_code(scanner_totals(s.scanner), failed);
	}
	session_free(&s);
	return rc;
}

int cli_scan_wants_rpc(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return 0;
		if (!strcmp(argv[i], "--rpc") || !strcmp(argv[i], "--tx") ||
		    !strcmp(argv[i], "--block") || !strcmp(argv[i], "--blocks"))
			return 1;
	}
	return 0;
}
