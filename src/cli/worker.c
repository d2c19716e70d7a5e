/*
 * worker.c - `txscan worker` (scan a Redis stream as one consumer of a
 * group) and `txscan publish` (feed a JSON Lines file into a stream). The
 * Redis side is src/stream.c; this file parses options, loads the plugins,
 * turns SIGTERM/SIGINT into a clean stop and SIGHUP into a plugin reload.
 * The handlers only set flags; stream_worker_run acts on them on its own
 * thread.
 */
#define _POSIX_C_SOURCE 200809L

#include "cli.h"
#include "worker_http.h"
#include "http/listen.h"
#include "stream/stream.h"
#include "util/log.h"
#include "txscan.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MAX_DIRS = 64 };

/* Counts SIGTERM/SIGINT: the first asks for a clean stop, the second for
 * an immediate one. SIGHUP asks for a plugin reload. stream_worker_run
 * reads both. */
static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_requested = 1;
	else if (stop_requested < 2)
		stop_requested++;
}

/* No SA_RESTART: a blocked wait returns early and sees the flag. */
static void catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN); /* a dropped Redis socket is an error, not a death */
}

static const char worker_usage[] =
    "usage: txscan worker [-p DIR]... [options]\n\n"
    "Joins a Redis Streams consumer group: reads transactions (field 'tx') from\n"
    "the input stream, scans each with every plugin, adds one report per entry\n"
    "to the report stream (fields entry, tx, report) and acks it. Entries that\n"
    "cannot be scanned go to the dead-letter stream. SIGTERM or SIGINT: stop\n"
    "reading, finish what is in flight, exit 0; a second signal exits at once\n"
    "(unacked entries stay pending for another worker). SIGHUP reloads every\n"
    "plugin; one whose new version fails keeps its old one (a JSON log line).\n\n"
    "options:\n"
    "  -p, --plugins DIR       plugin folder or folder of plugins (repeatable;\n"
    "                          default $TXSCAN_PLUGINS, ':'-separated, then ./plugins)\n"
    "      --isolation MODE    thread or process (default $TXSCAN_ISOLATION, else\n"
    "                          " CLI_DEFAULT_ISOLATION_NAME "; see txscan scan --help)\n"
    CLI_LOG_HELP24
    "      --redis URL         redis://[[user]:password@]host[:port][/db] or\n"
    "                          unix:///path (default $TXSCAN_REDIS_URL, then\n"
    "                          redis://127.0.0.1:6379)\n"
    "      --stream NAME       input stream (default txs)\n"
    "      --group NAME        consumer group, created if missing (default scanners)\n"
    "      --consumer NAME     this worker's name in the group; keep it stable\n"
    "                          across restarts (default HOSTNAME-PID)\n"
    "      --out NAME          report stream (default reports)\n"
    "      --dead-letter NAME  dead-letter stream (default <stream>:dead)\n"
    "      --batch N           entries per read or claim (default 128)\n"
    "      --block-ms N        how long a read waits for new entries (default 1000)\n"
    "      --max-in-flight N   entries read and not yet acked, at most (default 1024,\n"
    "                          also the most: a plugin engine's queue holds 1024\n"
    "                          scans); fewer while the plugins scan slower\n"
    "      --claim-idle-ms N   take over entries pending this long on any consumer\n"
    "                          (default 30000)\n"
    "      --max-deliveries N  dead-letter an entry delivered more often (default 5)\n"
    "      --done-ttl-s N      lifetime of the once-only keys <out>:done:<stream>:\n"
    "                          <group>:<bucket>, from their last write (default 86400)\n"
    "      --metrics-listen ADDR  serve GET /metrics (Prometheus text: entries read,\n"
    "                          acked, claimed, dead-lettered, in flight, the group's\n"
    "                          pending and lag, reconnects, findings, verdicts,\n"
    "                          process figures), /healthz and /readyz (503 until\n"
    "                          connected to Redis with every plugin running) on\n"
    "                          HOST:PORT, [IPV6]:PORT or :PORT (port 0: a free one,\n"
    "                          printed at start); docs/operations.md lists the names\n"
    "  -q, --quiet             no plugin console output, no closing summary (the\n"
    "                          event log is not affected)\n"
    "      --allow-partial     start with the plugins that load: the others are\n"
    "                          \"unavailable\" in every report and retried in the\n"
    "                          background (default: list every failing plugin, exit 2)\n"
    "  -h, --help              this text\n\n"
    "environment:\n"
    "  TXSCAN_REDIS_URL        the URL when --redis is not given: keeps a\n"
    "                          password out of ps and /proc/PID/cmdline\n"
    "  TXSCAN_PLUGINS          the plugin folders when no -p is given, ':'-separated\n"
    "  TXSCAN_ISOLATION        the isolation when no --isolation is given\n";

static const char publish_usage[] =
    "usage: txscan publish [--redis URL] [--stream NAME] [--from-line N] FILE.jsonl|-\n\n"
    "Adds every non-empty line of FILE (or standard input) to the stream as\n"
    "field 'tx', pipelined, and prints how many entries Redis confirmed.\n\n"
    "Lines are sent in batches of up to 1000 while input keeps coming, and at\n"
    "once when the input has nothing more ready, so a slow pipe is not held up.\n"
    "A lost connection is retried with back-off; lines sent without a reply are\n"
    "looked for in the stream and sent again only if missing. On failure it\n"
    "names the lines it is unsure of and the line to resume from (exit 2).\n\n"
    "options:\n"
    "      --redis URL     as for txscan worker (default $TXSCAN_REDIS_URL, then\n"
    "                      redis://127.0.0.1:6379)\n"
    "      --stream NAME   stream to add to (default txs)\n"
    "      --from-line N   skip the lines before line N (numbered from 1, empty\n"
    "                      lines included): resume after a failure\n"
    "  -q, --quiet         no \"published\" line when all went well\n"
    CLI_LOG_HELP
    "  -h, --help          this text\n\n"
    "environment:\n"
    "  TXSCAN_REDIS_URL    the URL when --redis is not given (keeps a password\n"
    "                      out of ps)\n";

/* ---- option parsing ------------------------------------------------------ */

struct worker_args {
	struct stream_options opt;
	const char *dirs[MAX_DIRS];
	int ndirs;
	int quiet;
	int allow_partial;
	const char *metrics_listen;
	char consumer[300];
	char dead[512];
};

/* "--name VALUE" or "--name=VALUE"; NULL (and *i unchanged) when argv[*i]
 * is not this option. *missing is set when the value is absent. */
static const char *value_of(int argc, char **argv, int *i, const char *name, const char *alias,
                            int *missing)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (!strncmp(a, name, n) && a[n] == '=')
		return a + n + 1;
	if (strcmp(a, name) && (!alias || strcmp(a, alias)))
		return NULL;
	if (*i + 1 >= argc) {
		*missing = 1;
		return NULL;
	}
	return argv[++*i];
}

static int parse_u32(const char *name, const char *s, uint32_t min, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > UINT32_MAX) {
		cli_error("%s: '%s' is not a number >= %u", name, s, min);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

struct num_opt {
	const char *name;
	uint32_t min, max;
	size_t offset; /* into struct stream_options */
	const char *why_max;
};

/* Every entry in flight is a queued scan for each plugin's engine. */
#define MAX_IN_FLIGHT 1024

static const struct num_opt num_opts[] = {
    {"--batch", 1, UINT32_MAX, offsetof(struct stream_options, batch), NULL},
    {"--block-ms", 1, UINT32_MAX, offsetof(struct stream_options, block_ms), NULL},
    {"--claim-idle-ms", 1, UINT32_MAX, offsetof(struct stream_options, claim_idle_ms), NULL},
    {"--max-deliveries", 1, UINT32_MAX, offsetof(struct stream_options, max_deliveries), NULL},
    {"--max-in-flight", 1, MAX_IN_FLIGHT, offsetof(struct stream_options, max_in_flight),
     "a plugin engine's queue holds 1024 scans, and every entry in flight is one"},
    {"--done-ttl-s", 1, UINT32_MAX, offsetof(struct stream_options, done_ttl_s), NULL},
};

struct str_opt {
	const char *name;
	size_t offset; /* into struct stream_options */
};

static const struct str_opt str_opts[] = {
    {"--redis", offsetof(struct stream_options, redis_url)},
    {"--stream", offsetof(struct stream_options, stream)},
    {"--group", offsetof(struct stream_options, group)},
    {"--consumer", offsetof(struct stream_options, consumer)},
    {"--out", offsetof(struct stream_options, out)},
    {"--dead-letter", offsetof(struct stream_options, dead)},
};

/* 1 consumed, 0 not this kind of option, -1 bad value. */
static int stream_option(int argc, char **argv, int *i, struct stream_options *o, int *missing)
{
	for (size_t k = 0; k < sizeof str_opts / sizeof str_opts[0]; k++) {
		const char *v = value_of(argc, argv, i, str_opts[k].name, NULL, missing);
		if (*missing)
			return -1;
		if (v && !*v) {
			cli_error("%s: empty name", str_opts[k].name);
			return -1;
		}
		if (v) {
			*(const char **)((char *)o + str_opts[k].offset) = v;
			return 1;
		}
	}
	for (size_t k = 0; k < sizeof num_opts / sizeof num_opts[0]; k++) {
		const char *v = value_of(argc, argv, i, num_opts[k].name, NULL, missing);
		if (*missing)
			return -1;
		if (!v)
			continue;
		const struct num_opt *n = &num_opts[k];
		uint32_t *out = (uint32_t *)((char *)o + n->offset);
		if (parse_u32(n->name, v, n->min, out))
			return -1;
		if (*out > n->max) {
			cli_error("%s: %u is more than %u (%s)", n->name, *out, n->max, n->why_max);
			return -1;
		}
		return 1;
	}
	return 0;
}

static int worker_option(int argc, char **argv, int *i, struct worker_args *a)
{
	int missing = 0;
	const char *dir = value_of(argc, argv, i, "--plugins", "-p", &missing);
	if (dir && a->ndirs == MAX_DIRS) {
		cli_error("--plugins: at most %d folders", MAX_DIRS);
		return -1;
	}
	if (dir) {
		a->dirs[a->ndirs++] = dir;
		return 0;
	}
	const char *ml = missing ? NULL : value_of(argc, argv, i, "--metrics-listen", NULL, &missing);
	if (ml && listen_check(ml)) {
		cli_error("worker: --metrics-listen '%s': expected HOST:PORT, [IPV6]:PORT or :PORT", ml);
		return -1;
	}
	if (ml) {
		a->metrics_listen = ml;
		return 0;
	}
	if (!missing && cli_is_quiet(argv[*i])) {
		a->quiet = 1;
		return 0;
	}
	if (!missing && !strcmp(argv[*i], "--allow-partial")) {
		a->allow_partial = 1;
		return 0;
	}
	int rc = missing ? -1 : stream_option(argc, argv, i, &a->opt, &missing);
	if (missing)
		cli_error("%s needs a value", argv[*i]);
	else if (rc == 0)
		cli_error("worker: unknown option '%s'", argv[*i]);
	return rc == 1 ? 0 : -1;
}

/* Names every worker needs and nobody gave. */
static void worker_defaults(struct worker_args *a)
{
	if (!a->opt.consumer) {
		char host[256] = "worker";
		if (gethostname(host, sizeof host) != 0)
			snprintf(host, sizeof host, "worker");
		host[sizeof host - 1] = '\0';
		snprintf(a->consumer, sizeof a->consumer, "%s-%ld", host, (long)getpid());
		a->opt.consumer = a->consumer;
	}
	if (!a->opt.dead) {
		snprintf(a->dead, sizeof a->dead, "%s:dead", a->opt.stream);
		a->opt.dead = a->dead;
	}
}

/* *url: --redis if given, else $TXSCAN_REDIS_URL if set and not empty,
 * else the default. 0, or -1 after printing why it is bad and where it
 * came from. */
static int resolve_url(const char *cmd, const char **url)
{
	const char *from = "--redis";
	if (!*url) {
		const char *env = getenv(STREAM_REDIS_URL_ENV);
		bool set = env && *env;
		from = set ? "$" STREAM_REDIS_URL_ENV : "the default";
		*url = set ? env : STREAM_REDIS_URL_DEFAULT;
	}
	struct stream_url parsed;
	char err[1024];
	if (stream_url_parse(*url, &parsed, err, sizeof err) == 0)
		return 0;
	cli_error("%s: %s (from %s)", cmd, err, from);
	return -1;
}

static int parse_worker(int argc, char **argv, struct worker_args *a)
{
	stream_options_init(&a->opt);
	a->opt.redis_url = NULL; /* resolve_url fills it in */
	for (int i = 1; i < argc; i++)
		if (worker_option(argc, argv, &i, a))
			return -1;
	worker_defaults(a);
	if (resolve_url("worker", &a->opt.redis_url))
		return -1;
	if (!strcmp(a->opt.stream, a->opt.out) || !strcmp(a->opt.stream, a->opt.dead) ||
	    !strcmp(a->opt.out, a->opt.dead)) {
		cli_error("worker: --stream, --out and --dead-letter must be three different streams");
		return -1;
	}
	return 0;
}

/* ---- commands ------------------------------------------------------------- */

/* The "worker_stopped" log line with the run's counters. */
static void print_stats(const struct stream_options *o, const struct stream_stats *s)
{
	txs_log(TXS_LOG_INFO, "worker_stopped",
	        json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "consumer", o->consumer, "read",
	                  (json_int_t)s->read, "claimed", (json_int_t)s->claimed, "written",
	                  (json_int_t)s->written, "duplicates", (json_int_t)s->duplicates, "dead",
	                  (json_int_t)s->dead, "retried", (json_int_t)s->retried, "reconnects",
	                  (json_int_t)s->reconnects));
}

/* --metrics-listen: the loop publishes its stats for the endpoint. */
static int start_metrics(struct worker_args *a, struct txs_host *host, struct worker_http **wh)
{
	a->opt.live = stream_live_new();
	if (!a->opt.live || worker_http_start(wh, a->metrics_listen, host, a->opt.live)) {
		stream_live_free(a->opt.live);
		a->opt.live = NULL;
		return -1;
	}
	char url[300];
	snprintf(url, sizeof url, "http://%s/metrics", worker_http_address(*wh));
	txs_log(TXS_LOG_INFO, "metrics_listen",
	        json_pack("{s:s, s:s}", "consumer", a->opt.consumer, "url", url));
	return 0;
}

int cmd_worker(int argc, char **argv)
{
	static struct worker_args a; /* static: big, and one per process */
	if (cli_wants_help(argc, argv)) {
		fputs(worker_usage, stdout);
		return EXIT_CLEAN;
	}
	memset(&a, 0, sizeof a);
	if (parse_worker(argc, argv, &a)) {
		fputs(worker_usage, stderr);
		return EXIT_USAGE;
	}
	catch_signals(); /* first: a SIGHUP while the plugins load must not kill us */
	txs_host_options hopt = {.console_quiet = a.quiet != 0, .allow_partial = a.allow_partial != 0};
	struct txs_host *host = cli_load_host_opts(a.dirs, a.ndirs, &hopt);
	if (!host)
		return cli_load_exit();
	txs_log(TXS_LOG_INFO, "worker_start",
	        json_pack("{s:s, s:s, s:i, s:I, s:s, s:s, s:s, s:s}", "consumer", a.opt.consumer,
	                  "version", TXS_VERSION, "pid", (int)getpid(), "plugins",
	                  (json_int_t)txs_host_plugin_count(host), "stream", a.opt.stream, "group",
	                  a.opt.group, "out", a.opt.out, "dead_letter", a.opt.dead));
	struct worker_http *wh = NULL;
	if (a.metrics_listen && start_metrics(&a, host, &wh)) {
		txs_host_free(host);
		return EXIT_ERRORS;
	}
	struct stream_stats stats = {0};
	int rc = stream_worker_run(host, &a.opt, &stop_requested, &reload_requested, &stats);
	worker_http_stop(wh);
	stream_live_free(a.opt.live);
	txs_host_free(host);
	if (!a.quiet)
		print_stats(&a.opt, &stats);
	return rc == 0 ? EXIT_CLEAN : EXIT_ERRORS;
}

struct publish_args {
	const char *url, *stream, *file;
	uint64_t from_line;
	int quiet;
};

/* 1 consumed (a value option), 0 not one, -1 bad. */
static int publish_option(int argc, char **argv, int *i, struct publish_args *a)
{
	int missing = 0;
	const char *v = value_of(argc, argv, i, "--redis", NULL, &missing);
	if (v)
		a->url = v;
	if (!v && !missing && (v = value_of(argc, argv, i, "--stream", NULL, &missing)) && *v)
		a->stream = v;
	if (!v && !missing && (v = value_of(argc, argv, i, "--from-line", NULL, &missing))) {
		char *end;
		errno = 0;
		unsigned long long n = strtoull(v, &end, 10);
		if (errno || end == v || *end || v[0] == '-' || n < 1) {
			cli_error("--from-line: '%s' is not a number >= 1", v);
			return -1;
		}
		a->from_line = n;
	}
	if (missing || (v && !*v)) {
		cli_error("%s needs a value", argv[*i]);
		return -1;
	}
	return v ? 1 : 0;
}

static int parse_publish(int argc, char **argv, struct publish_args *a)
{
	for (int i = 1; i < argc; i++) {
		int rc = publish_option(argc, argv, &i, a);
		if (rc < 0)
			return -1;
		if (rc)
			continue;
		if (cli_is_quiet(argv[i])) {
			a->quiet = 1;
			continue;
		}
		if (argv[i][0] == '-' && argv[i][1]) {
			cli_error("publish: unknown option '%s'", argv[i]);
			return -1;
		}
		if (a->file) {
			cli_error("publish: one input file only ('%s' and '%s')", a->file, argv[i]);
			return -1;
		}
		a->file = argv[i];
	}
	if (!a->file)
		cli_error("publish: no input file (use - for standard input)");
	return a->file ? 0 : -1;
}

int cmd_publish(int argc, char **argv)
{
	struct publish_args a = {.stream = "txs", .from_line = 1};
	if (cli_wants_help(argc, argv)) {
		fputs(publish_usage, stdout);
		return EXIT_CLEAN;
	}
	if (parse_publish(argc, argv, &a) || resolve_url("publish", &a.url)) {
		fputs(publish_usage, stderr);
		return EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	int fd = strcmp(a.file, "-") ? open(a.file, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	if (fd < 0) {
		cli_error("cannot open %s: %s", a.file, strerror(errno));
		return EXIT_ERRORS;
	}
	uint64_t count = 0;
	int rc = stream_publish(a.url, a.stream, fd, a.file, a.from_line, &count);
	if (fd != STDIN_FILENO)
		close(fd);
	if (!a.quiet || rc)
		printf("published %llu entr%s to %s\n", (unsigned long long)count,
		       count == 1 ? "y" : "ies", a.stream);
	return rc == 0 ? EXIT_CLEAN : EXIT_ERRORS;
}
