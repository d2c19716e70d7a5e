/*
 * serve.c - `txscan serve`: load plugins, run the HTTP API (src/server.c)
 * and handle signals and --watch on the main thread.
 *
 * SIGTERM, SIGINT and SIGHUP are blocked before any thread exists (the
 * executors inherit the mask) and read from a signalfd here, so no handler
 * runs on an arbitrary thread. The main thread then only waits: on the
 * signalfd, and with --watch on one inotify fd holding a watch per plugin
 * folder. File events are debounced (an editor's save is several events)
 * before the plugin is reloaded; a reload that fails leaves the old
 * version serving, and the next save tries again. Reloads are queued to the
 * server's control thread, so this thread never waits on a plugin.
 *
 * Shutdown is bounded: SIGTERM/SIGINT stop new connections and wait up to
 * --drain-timeout for requests in flight; then every request still waiting
 * is answered 503, the host is detached and freed on a helper thread, and
 * if that has not ended a second after the drain deadline (an engine stuck
 * in a native call cannot be joined) the process exits without it. A
 * second signal exits at once.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "util/clock.h"
#include "http/auth.h"
#include "http/listen.h"
#include "http/server.h"
#include "http/tls.h"
#include "txscan.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_DIRS 64
#define DEBOUNCE_MS 200
#define RESYNC_MS 10000     /* how long --watch follows the set after a reload of all */
#define RESYNC_POLL_MS 250
#define DRAIN_POLL_MS 20
#define FD_RESERVE 256      /* descriptors kept for plugins, logs and JSC */
#define ABORT_FLUSH_MS 200  /* time given to the 503s of a cut drain to be sent */
#define EXIT_GRACE_MS 600   /* past the drain deadline, then exit whatever runs */
#define CLOSE_MIN_MS 400    /* least time given to close the connections: with
                             * EXIT_GRACE_MS, the "plus one second" of docs/http-api.md */

struct args {
	const char *dirs[MAX_DIRS];
	int ndirs;
	server_options opts;
	unsigned drain_s;
	bool watch;
	bool quiet;
	bool allow_partial;
	auth_sources tokens;     /* files from options, values from the environment */
	tls_files tls;           /* cert NULL = plain HTTP */
};

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: txscan serve [-p DIR]... [--listen HOST:PORT] [options]\n\n"
	        "Serves the HTTP API (docs/http-api.md): POST /v1/scan, POST /v1/scan/batch,\n"
	        "GET /v1/plugins, POST /v1/plugins/ID/restart|reload, POST /v1/reload,\n"
	        "/healthz, /readyz, /metrics and a status page at /.\n\n"
	        "  -p, --plugins DIR       plugin folder, or folder of plugin folders (repeatable;\n"
	        "                          default $TXSCAN_PLUGINS, ':'-separated, then ./plugins)\n"
	        "  -l, --listen ADDR       HOST:PORT, [IPV6]:PORT or :PORT (default $TXSCAN_LISTEN,\n"
	        "                          then 127.0.0.1:8080; port 0 picks a free port, logged\n"
	        "                          in the start line)\n"
	        "      --max-body BYTES    request body cap, suffix k or m allowed (default 1m)\n"
	        "      --max-batch N       transactions per batch request (default 1000)\n"
	        "      --max-inflight N    scan requests at once; more get 503 (default 256)\n"
	        "      --threads N         HTTP event-loop threads (default: CPU count)\n"
	        "      --max-connections N open connections (default 10000; lowered to fit\n"
	        "                          RLIMIT_NOFILE, whose soft limit is raised to the hard one)\n"
	        "      --max-connections-per-ip N\n"
	        "                          open connections per client address; 0 = no limit\n"
	        "                          (default 128; behind a proxy, raise it or use 0)\n"
	        "      --header-timeout S  close a connection whose request headers are not all in\n"
	        "                          within S seconds; 0 = off (default 10)\n"
	        "      --body-timeout S    close a connection whose request body is not all in\n"
	        "                          within S seconds of its headers; 0 = off (default 30)\n"
	        "      --idle-timeout S    close a connection idle for S seconds (default 30)\n"
	        "      --drain-timeout S   on SIGTERM/SIGINT, wait this long for requests; then\n"
	        "                          answer the rest 503 and exit within a second (default 30)\n"
	        "      --watch             reload a plugin when a file in its folder changes;\n"
	        "                          reload every plugin (adding and removing plugins)\n"
	        "                          when a folder is created or removed in a -p folder\n"
	        "                          of plugin folders\n"
	        "      --allow-partial     start with the plugins that load; the others answer\n"
	        "                          \"unavailable\", show \"started\": false in /v1/plugins,\n"
	        "                          keep /readyz at 503 and are retried in the background\n"
	        "                          (default: list every failing plugin and exit 2)\n");
	fprintf(out,
	        "      --scan-token-file F bearer tokens for POST /v1/scan and /v1/scan/batch, one\n"
	        "                          a line (also $TXSCAN_SCAN_TOKEN, comma-separated)\n"
	        "      --admin-token-file F\n"
	        "                          tokens for restart, reload and the full /v1/plugins\n"
	        "                          (also $TXSCAN_ADMIN_TOKEN); roles are disjoint\n"
	        "      --metrics-token-file F\n"
	        "                          tokens for /metrics (also $TXSCAN_METRICS_TOKEN;\n"
	        "                          without any, /metrics is open)\n"
	        "      --tls-cert F        serve HTTPS only (TLS 1.2+) with this PEM chain...\n"
	        "      --tls-key F         ...and this PEM key\n"
	        "      --tls-client-ca F   require client certificates these PEM CAs signed\n"
	        "      --insecure-no-auth  allow an address other than loopback with neither\n"
	        "                          tokens nor client certificates (else refused)\n"
	        "                          (docs/http-api.md#access-control)\n"
	        "  -q, --quiet             discard the plugins' console output (serve prints no\n"
	        "                          progress or summary; the event log is not affected)\n"
	        "  --isolation MODE        thread or process (default $TXSCAN_ISOLATION, else\n"
	        "                          " CLI_DEFAULT_ISOLATION_NAME "; see txscan scan --help)\n"
	        CLI_LOG_HELP24
	        "  -h, --help              this text\n\n"
	        "Signals: SIGTERM/SIGINT drain and exit 0 (2 when the drain was cut; a second\n"
	        "signal exits at once); SIGHUP rereads the token and TLS files and reloads every\n"
	        "plugin, as POST /v1/reload does: plugin folders added to a -p folder are loaded\n"
	        "(each starts, init included, before it serves) and plugins whose folder is\n"
	        "gone are removed once their scans in flight finish. Logs are JSON lines on\n"
	        "stderr (text at a terminal; docs/logging.md).\n");
}

/* A positive integer with an optional k/m (KiB/MiB) suffix. */
static int parse_size(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	unsigned long long mul = 1;
	if (*end == 'k' || *end == 'K')
		mul = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mul = 1024 * 1024, end++;
	if (*end || v == 0 || v > SIZE_MAX / mul)
		return -1;
	*out = (size_t)(v * mul);
	return 0;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	size_t v;
	if (min == 0 && !strcmp(s, "0")) {
		*out = 0;
		return 0;
	}
	if (strpbrk(s, "kKmM") || parse_size(s, &v) < 0 || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

enum {
	OPT_MAX_BODY = 256, OPT_MAX_BATCH, OPT_MAX_INFLIGHT, OPT_THREADS, OPT_DRAIN, OPT_WATCH,
	OPT_ALLOW_PARTIAL, OPT_MAX_CONN, OPT_PER_IP, OPT_HEADER_TIMEOUT, OPT_BODY_TIMEOUT,
	OPT_IDLE_TIMEOUT, OPT_SCAN_TOKENS, OPT_ADMIN_TOKENS, OPT_METRICS_TOKENS, OPT_TLS_CERT,
	OPT_TLS_KEY, OPT_TLS_CA, OPT_INSECURE
};

static const struct option long_opts[] = {
    {"plugins", required_argument, NULL, 'p'},
    {"listen", required_argument, NULL, 'l'},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"max-batch", required_argument, NULL, OPT_MAX_BATCH},
    {"max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN},
    {"max-connections", required_argument, NULL, OPT_MAX_CONN},
    {"max-connections-per-ip", required_argument, NULL, OPT_PER_IP},
    {"header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT},
    {"body-timeout", required_argument, NULL, OPT_BODY_TIMEOUT},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"watch", no_argument, NULL, OPT_WATCH},
    {"allow-partial", no_argument, NULL, OPT_ALLOW_PARTIAL},
    {"scan-token-file", required_argument, NULL, OPT_SCAN_TOKENS},
    {"admin-token-file", required_argument, NULL, OPT_ADMIN_TOKENS},
    {"metrics-token-file", required_argument, NULL, OPT_METRICS_TOKENS},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-client-ca", required_argument, NULL, OPT_TLS_CA},
    {"insecure-no-auth", no_argument, NULL, OPT_INSECURE},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* One option; -1 after printing what is wrong with it. */
static int apply_opt(struct args *a, int c, const char *v)
{
	switch (c) {
	case 'p':
		if (a->ndirs == MAX_DIRS) {
			cli_error("serve: at most %d -p folders", MAX_DIRS);
			return -1;
		}
		a->dirs[a->ndirs++] = v;
		return 0;
	case 'l':
		if (listen_check(v) == 0) {
			a->opts.listen = v;
			return 0;
		}
		cli_error("serve: --listen '%s': expected HOST:PORT, [IPV6]:PORT or :PORT", v);
		return -1;
	case 'q': a->quiet = true; return 0;
	case OPT_WATCH: a->watch = true; return 0;
	case OPT_ALLOW_PARTIAL: a->allow_partial = true; return 0;
	case OPT_SCAN_TOKENS: a->tokens.file[ROLE_SCAN] = v; return 0;
	case OPT_ADMIN_TOKENS: a->tokens.file[ROLE_ADMIN] = v; return 0;
	case OPT_METRICS_TOKENS: a->tokens.file[ROLE_METRICS] = v; return 0;
	case OPT_TLS_CERT: a->tls.cert = v; return 0;
	case OPT_TLS_KEY: a->tls.key = v; return 0;
	case OPT_TLS_CA: a->tls.client_ca = v; return 0;
	case OPT_INSECURE: a->opts.insecure_no_auth = true; return 0;
	case OPT_MAX_BODY:
		if (parse_size(v, &a->opts.max_body) == 0)
			return 0;
		break;
	case OPT_MAX_BATCH:
		if (parse_uint(v, 1, 1000000, &a->opts.max_batch) == 0)
			return 0;
		break;
	case OPT_MAX_INFLIGHT:
		if (parse_uint(v, 1, 1000000, &a->opts.max_inflight) == 0)
			return 0;
		break;
	case OPT_THREADS:
		if (parse_uint(v, 1, 256, &a->opts.threads) == 0)
			return 0;
		break;
	case OPT_DRAIN:
		if (parse_uint(v, 1, 86400, &a->drain_s) == 0)
			return 0;
		break;
	case OPT_MAX_CONN:
		if (parse_uint(v, 1, 1000000, &a->opts.max_connections) == 0)
			return 0;
		break;
	case OPT_PER_IP:
		if (parse_uint(v, 0, 1000000, &a->opts.per_ip_connections) == 0)
			return 0;
		break;
	case OPT_HEADER_TIMEOUT:
		if (parse_uint(v, 0, 86400, &a->opts.header_timeout_s) == 0)
			return 0;
		break;
	case OPT_BODY_TIMEOUT:
		if (parse_uint(v, 0, 86400, &a->opts.body_timeout_s) == 0)
			return 0;
		break;
	case OPT_IDLE_TIMEOUT:
		if (parse_uint(v, 1, 86400, &a->opts.conn_timeout_s) == 0)
			return 0;
		break;
	default: return -1;
	}
	for (const struct option *o = long_opts; o->name; o++)
		if (o->val == c)
			cli_error("serve: invalid value '%s' for --%s", v, o->name);
	return -1;
}

/* 0 to run, 1 after --help, -1 on a usage error (already reported). */
static int parse_args(int argc, char **argv, struct args *a)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	memset(a, 0, sizeof *a);
	server_options_init(&a->opts);
	a->opts.threads = cpus > 0 && cpus < 64 ? (unsigned)cpus : 2;
	a->drain_s = 30;
	const char *env = cli_env(CLI_ENV_LISTEN);
	if (env && listen_check(env)) {
		cli_error("serve: invalid value '%s' in $%s: expected HOST:PORT, [IPV6]:PORT or :PORT",
		          env, CLI_ENV_LISTEN);
		return -1;
	}
	if (env)
		a->opts.listen = env;
	optind = 1;
	opterr = 0;
	for (;;) {
		int idx = 0, c = getopt_long(argc, argv, ":p:l:qh", long_opts, &idx);
		if (c == -1)
			break;
		if (c == 'h') {
			usage(stdout);
			return 1;
		}
		if (c == '?' || c == ':') {
			cli_error("serve: %s option '%s'", c == ':' ? "missing value for" : "unknown",
			          argv[optind - 1]);
			return -1;
		}
		if (apply_opt(a, c, optarg) < 0)
			return -1;
	}
	if (optind < argc) {
		cli_error("serve: unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if (!a->tls.cert != !a->tls.key || (a->tls.client_ca && !a->tls.cert)) {
		cli_error("serve: --tls-cert and --tls-key go together%s",
		          a->tls.client_ca ? ", and --tls-client-ca needs them" : "");
		return -1;
	}
	return 0;
}

/* ---- tokens and TLS ------------------------------------------------------ */

/* Token files and the TLS key are secrets: say so when others may read them. */
static void warn_open_files(const struct args *a)
{
	const char *files[] = {a->tokens.file[ROLE_SCAN], a->tokens.file[ROLE_ADMIN],
	                       a->tokens.file[ROLE_METRICS], a->tls.key};
	struct stat st;
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		if (files[i] && stat(files[i], &st) == 0 && (st.st_mode & 077))
			server_log("warn", "secret_file_mode",
			           json_pack("{s:s, s:s}", "file", files[i], "reason",
			                     "readable by group or others: chmod 600 it"));
}

/* The token variables are read once and removed from the environment, so
 * no process started later (an engine process, say) inherits them and
 * /proc/PID/environ does not show them. Before any thread exists: unsetenv
 * is not thread-safe. */
static int open_access(struct args *a, auth **au, tls **t)
{
	static const char *const vars[NROLES] = {"TXSCAN_SCAN_TOKEN", "TXSCAN_ADMIN_TOKEN",
	                                         "TXSCAN_METRICS_TOKEN"};
	char err[512], *vals[NROLES] = {0};
	int rc = -1;
	for (int r = 0; r < NROLES; r++) {
		char *v = getenv(vars[r]);
		if (v && !(vals[r] = strdup(v)))
			goto out;
		a->tokens.env[r] = vals[r];
		/* The value is also wiped where it lies: /proc/PID/environ shows the
		 * process's first environment block, which unsetenv leaves as is. */
		if (v)
			explicit_bzero(v, strlen(v));
		unsetenv(vars[r]);
	}
	if (auth_new(au, &a->tokens, err, sizeof err) < 0) {
		cli_error("serve: tokens: %s", err);
		goto out;
	}
	if (a->tls.cert && tls_new(t, &a->tls, err, sizeof err) < 0) {
		cli_error("serve: TLS: %s", err);
		goto out;
	}
	a->opts.auth = *au;
	a->opts.tls = *t;
	warn_open_files(a);
	rc = 0;
out:
	for (int r = 0; r < NROLES; r++) {
		if (vals[r])
			explicit_bzero(vals[r], strlen(vals[r]));
		free(vals[r]);
		a->tokens.env[r] = NULL;
	}
	return rc;
}

/* SIGHUP: reread the token files and the TLS files. A failure keeps what
 * is in use, and says so. */
static void reload_access(auth *au, tls *t)
{
	char err[512];
	bool changed = false;
	if (auth_reload(au, err, sizeof err) < 0)
		server_log("error", "tokens_reload", json_pack("{s:b, s:s}", "ok", 0, "error", err));
	else if (auth_enabled(au) || auth_required(au, ROLE_METRICS))
		server_log("info", "tokens_reload",
		           json_pack("{s:b, s:i, s:i, s:i}", "ok", 1, "scan", (int)auth_count(au, ROLE_SCAN),
		                     "admin", (int)auth_count(au, ROLE_ADMIN), "metrics",
		                     (int)auth_count(au, ROLE_METRICS)));
	if (!t)
		return;
	if (tls_reload(t, &changed, err, sizeof err) < 0) {
		server_log("error", "tls_reload", json_pack("{s:b, s:s}", "ok", 0, "error", err));
		return;
	}
	char fp[80];
	tls_fingerprint(t, fp, sizeof fp);
	server_log("info", "tls_reload",
	           json_pack("{s:b, s:b, s:s}", "ok", 1, "changed", changed, "sha256", fp));
}

/* ---- --watch ------------------------------------------------------------- */

struct watch {
	int fd;       /* inotify, or -1 */
	size_t n;
	int *wd;      /* per plugin */
	char (*id)[65];
	double *due;  /* monotonic ms when the debounced reload runs; 0 = none */
	/* The folders of plugin folders: a subfolder created, deleted or moved
	 * there reloads every plugin (which adds and removes plugins), after
	 * which the per-plugin watches follow the new set. */
	size_t nroots;
	int *rwd;
	double root_due;      /* debounced reload of every plugin; 0 = none */
	double resync_until;  /* until then, compare the watched set with the host's */
	double next_resync;
	txs_host *host;       /* borrowed: alive while run() runs */
};

static void watch_close(struct watch *w)
{
	if (w->fd >= 0)
		close(w->fd);
	free(w->wd);
	free(w->id);
	free(w->due);
	free(w->rwd);
	memset(w, 0, sizeof *w);
	w->fd = -1;
}

/* One inotify watch on each plugin's folder (txs_plugin_info.dir); the
 * previous ones (a set that changed) are dropped first. */
static int watch_plugins(struct watch *w)
{
	const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE;
	size_t old_n = w->n;
	char (*old_id)[65] = w->id;
	for (size_t i = 0; i < w->n; i++)
		if (w->wd[i] >= 0)
			inotify_rm_watch(w->fd, w->wd[i]);
	free(w->wd);
	free(w->due);
	w->n = txs_host_plugin_count(w->host);
	w->wd = calloc(w->n + 1, sizeof *w->wd);
	w->id = calloc(w->n + 1, sizeof *w->id);
	w->due = calloc(w->n + 1, sizeof *w->due);
	if (!w->wd || !w->id || !w->due) {
		cli_error("serve: --watch: out of memory");
		free(old_id);
		return -1;
	}
	for (size_t i = 0; i < w->n; i++) {
		txs_plugin_info info;
		w->wd[i] = -1;
		if (txs_host_plugin_info(w->host, i, &info))
			continue;
		memcpy(w->id[i], info.id, sizeof w->id[i]);
		w->wd[i] = inotify_add_watch(w->fd, info.dir, mask);
		if (w->wd[i] < 0) {
			cli_error("serve: --watch %s: %s", info.dir, strerror(errno));
			free(old_id);
			return -1;
		}
		/* a plugin added since the last set: its files may have changed
		 * before this watch existed, so it is reloaded once */
		bool known = !old_id;
		for (size_t k = 0; k < old_n && !known; k++)
			known = !strcmp(old_id[k], info.id);
		w->due[i] = known ? 0 : txs_now_ms() + DEBOUNCE_MS;
	}
	free(old_id);
	return 0;
}

/* Watches on the plugin folders, and on each root that is a folder of
 * plugin folders (a root that is itself a plugin folder is one of those). */
static int watch_open(struct watch *w, txs_host *host, const char *const *roots, int nroots)
{
	const uint32_t rmask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR;
	w->host = host;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	w->rwd = calloc((size_t)nroots + 1, sizeof *w->rwd);
	if (w->fd < 0 || !w->rwd) {
		cli_error("serve: --watch: inotify: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < nroots; i++) {
		char probe[4096];
		snprintf(probe, sizeof probe, "%s/plugin.json", roots[i]);
		w->rwd[w->nroots] = access(probe, F_OK) ? inotify_add_watch(w->fd, roots[i], rmask) : -1;
		w->nroots += w->rwd[w->nroots] >= 0;
	}
	return watch_plugins(w);
}

/* Editor droppings (.swp, backup~, hidden files) never trigger a reload. */
static bool ignored_name(const struct inotify_event *ev)
{
	size_t n = ev->len ? strlen(ev->name) : 0;
	if (!n)
		return false;
	return ev->name[0] == '.' || ev->name[n - 1] == '~' ||
	       (n > 4 && (!strcmp(ev->name + n - 4, ".swp") || !strcmp(ev->name + n - 4, ".swx")));
}

static void watch_event(struct watch *w, const struct inotify_event *ev)
{
	if (ignored_name(ev))
		return;
	for (size_t i = 0; i < w->nroots; i++)
		if (w->rwd[i] == ev->wd && (ev->mask & IN_ISDIR))
			w->root_due = txs_now_ms() + DEBOUNCE_MS;
	for (size_t i = 0; i < w->n; i++)
		if (w->wd[i] == ev->wd)
			w->due[i] = txs_now_ms() + DEBOUNCE_MS;
}

static void watch_read(struct watch *w)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t len;
	while ((len = read(w->fd, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof *ev + ev->len;
			watch_event(w, ev);
		}
	}
}

/* Milliseconds until the next debounced reload or set comparison; -1 when
 * none is due. */
static int watch_timeout(const struct watch *w)
{
	double next = w->root_due, now = txs_now_ms();
	for (size_t i = 0; i < w->n; i++)
		if (w->due[i] && (!next || w->due[i] < next))
			next = w->due[i];
	if (w->resync_until > now && (!next || w->next_resync < next))
		next = w->next_resync;
	if (!next)
		return -1;
	return next <= now ? 0 : (int)(next - now) + 1;
}

/* After a reload of every plugin (a root changed, or SIGHUP) the set may
 * change on the control thread: for a while, compare it with the watched
 * one and follow it. */
static void watch_follow(struct watch *w)
{
	if (w->fd < 0)
		return;
	w->resync_until = txs_now_ms() + RESYNC_MS;
	w->next_resync = txs_now_ms() + RESYNC_POLL_MS;
}

static bool set_changed(const struct watch *w)
{
	if (txs_host_plugin_count(w->host) != w->n)
		return true;
	for (size_t i = 0; i < w->n; i++)
		if (txs_host_plugin_find(w->host, w->id[i]) != (long)i)
			return true;
	return false;
}

static void watch_fire(struct watch *w, server *srv)
{
	double now = txs_now_ms();
	if (w->root_due && w->root_due <= now) {
		w->root_due = 0;
		server_reload(srv, NULL, "watch");
		watch_follow(w);
	}
	for (size_t i = 0; i < w->n; i++)
		if (w->due[i] && w->due[i] <= now) {
			w->due[i] = 0;
			server_reload(srv, w->id[i], "watch");
		}
	if (w->resync_until > now && w->next_resync <= now) {
		w->next_resync = now + RESYNC_POLL_MS;
		if (set_changed(w))
			watch_plugins(w);
	}
}

/* ---- main loop ----------------------------------------------------------- */

static int signal_fd(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	signal(SIGPIPE, SIG_IGN);
	if (pthread_sigmask(SIG_BLOCK, set, NULL))
		return -1;
	return signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* The next signal number from the signalfd, or 0. */
static int next_signal(int sfd)
{
	struct signalfd_siginfo si;
	return read(sfd, &si, sizeof si) == (ssize_t)sizeof si ? (int)si.ssi_signo : 0;
}

/* Runs until SIGTERM/SIGINT; returns that signal. */
static int run(server *srv, int sfd, struct watch *w, auth *au, tls *t)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = w->fd, .events = POLLIN}};
		int n = poll(p, w->fd >= 0 ? 2 : 1, w->fd >= 0 ? watch_timeout(w) : -1);
		if (n < 0 && errno != EINTR)
			return SIGTERM;
		for (int sig; (sig = next_signal(sfd));) {
			if (sig != SIGHUP)
				return sig;
			reload_access(au, t);
			server_log("info", "sighup", json_pack("{s:s}", "action", "reload all plugins"));
			server_reload(srv, NULL, "sighup");
			watch_follow(w);
		}
		if (w->fd >= 0) {
			watch_read(w);
			watch_fire(w, srv);
		}
	}
}

enum drain_end { DRAINED, DRAIN_TIMEOUT, DRAIN_SIGNAL };

/* Waits until no request is in flight, deadline_ms passes, or a second
 * SIGTERM/SIGINT comes. */
static enum drain_end drain(server *srv, int sfd, double deadline_ms)
{
	while (server_in_flight(srv) > 0) {
		if (txs_now_ms() >= deadline_ms)
			return DRAIN_TIMEOUT;
		struct pollfd p = {.fd = sfd, .events = POLLIN};
		int sig = poll(&p, 1, DRAIN_POLL_MS) > 0 ? next_signal(sfd) : 0;
		if (sig && sig != SIGHUP)
			return DRAIN_SIGNAL;
	}
	return DRAINED;
}

/* Until nothing is in flight or until_ms; false on a signal meanwhile. */
static bool wait_answered(server *srv, int sfd, double until_ms)
{
	while (server_in_flight(srv) > 0 && txs_now_ms() < until_ms) {
		struct pollfd p = {.fd = sfd, .events = POLLIN};
		int sig = poll(&p, 1, 10) > 0 ? next_signal(sfd) : 0;
		if (sig && sig != SIGHUP)
			return false;
	}
	return true;
}

struct host_free_job {
	txs_host *host;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
};

static void *host_free_main(void *arg)
{
	struct host_free_job *j = arg;
	txs_host_free(j->host);
	pthread_mutex_lock(&j->mu);
	j->done = true;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

/* txs_host_free on a helper thread (it joins every executor, and one stuck
 * in a native call cannot be joined); true when it ended by until_ms. On
 * false the job is left running and must not be freed: the caller exits. */
static bool free_host_bounded(struct host_free_job *j, double until_ms)
{
	pthread_t t;
	pthread_mutex_init(&j->mu, NULL);
	txs_cond_init(&j->cv);
	if (pthread_create(&t, NULL, host_free_main, j))
		return false;
	pthread_mutex_lock(&j->mu);
	struct timespec ts = txs_timespec((uint64_t)(until_ms * 1e6));
	while (!j->done && pthread_cond_timedwait(&j->cv, &j->mu, &ts) != ETIMEDOUT)
		;
	bool done = j->done;
	pthread_mutex_unlock(&j->mu);
	if (done)
		pthread_join(t, NULL);
	else
		pthread_detach(t);
	return done;
}

/* The exit past the deadline: the host's threads may still run, so no
 * atexit handlers, no destructors; log lines are written with write(2)
 * and need no flush, stdio does. */
static void exit_now(const char *why, bool drained, double t0, uint32_t left)
{
	server_log("warn", "stopped",
	           json_pack("{s:b, s:i, s:f, s:b, s:s}", "drained", drained, "abandoned", (int)left,
	                     "ms", round(txs_now_ms() - t0), "forced", 1, "reason", why));
	fflush(NULL);
	_exit(EXIT_ERRORS);
}

/* Drain, then stop; exits the process itself when the host cannot be freed
 * in time. Returns true when every request was answered in the drain. */
static bool shut_down(server *srv, txs_host *host, int sfd, int sig, unsigned drain_s)
{
	double t0 = txs_now_ms(), deadline = t0 + drain_s * 1000.0;
	double hard = deadline + EXIT_GRACE_MS;
	char name[32];
	snprintf(name, sizeof name, "SIG%s", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
	server_log("info", "shutdown",
	           json_pack("{s:s, s:i, s:i}", "signal", name, "in_flight",
	                     (int)server_in_flight(srv), "drain_timeout_s", (int)drain_s));
	server_quiesce(srv);
	enum drain_end end = drain(srv, sfd, deadline);
	if (end != DRAINED) {
		double now = txs_now_ms();
		server_abort_waiting(srv, end == DRAIN_SIGNAL ? "shutting down: second signal"
		                                              : "shutting down: drain timeout passed");
		hard = end == DRAIN_SIGNAL ? now + 100 : hard;
		if (!wait_answered(srv, sfd, fmin(now + ABORT_FLUSH_MS, hard)))
			exit_now("second signal", false, t0, server_in_flight(srv));
	}
	uint32_t left = server_in_flight(srv);
	/* After a clean drain a reload still running (SIGHUP, --watch) may
	 * finish within the budget; after a cut one, a host call still running
	 * is a stuck plugin's. */
	double detach_by = end == DRAINED ? hard : fmin(txs_now_ms() + ABORT_FLUSH_MS, hard);
	if (!server_detach_host(srv, detach_by))
		exit_now("a host call did not return (a plugin is stuck)", end == DRAINED, t0, left);
	static struct host_free_job job; /* may outlive this frame: see exit_now */
	job.host = host;
	if (!free_host_bounded(&job, hard))
		exit_now("the plugins did not stop in time (an engine is stuck)", end == DRAINED, t0,
		         left);
	/* MHD must not stop with a connection open (server_close_connections);
	 * past the budget, exiting beats the crash MHD_stop_daemon risks. */
	if (!server_close_connections(srv, fmax(hard, txs_now_ms() + CLOSE_MIN_MS)))
		exit_now("client connections were not closed in time", end == DRAINED, t0, left);
	server_free(srv);
	server_log(end == DRAINED ? "info" : "warn", "stopped",
	           json_pack("{s:b, s:i, s:f}", "drained", end == DRAINED, "abandoned", (int)left,
	                     "ms", round(txs_now_ms() - t0)));
	return end == DRAINED;
}

/* Thousands of idle client sockets need as many descriptors: the soft
 * limit goes up to the hard one, and the connection limit down to fit. */
static void fit_nofile(server_options *opts)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max;
		struct rlimit up = {.rlim_cur = want, .rlim_max = rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = want;
	}
	rlim_t room = rl.rlim_cur > 2 * FD_RESERVE ? rl.rlim_cur - FD_RESERVE : rl.rlim_cur / 2;
	if (opts->max_connections > room) {
		server_log("warn", "connection_limit",
		           json_pack("{s:i, s:I, s:s}", "max_connections", (int)room, "nofile",
		                     (json_int_t)rl.rlim_cur, "reason",
		                     "--max-connections lowered to fit RLIMIT_NOFILE"));
		opts->max_connections = (unsigned)room;
	}
}

static json_t *plugin_list(txs_host *host)
{
	json_t *list = json_array();
	txs_plugin_info info;
	for (size_t i = 0; i < txs_host_plugin_count(host); i++)
		if (txs_host_plugin_info(host, i, &info) == 0)
			json_array_append_new(list, json_pack("{s:s, s:s, s:i, s:b}", "id", info.id,
			                                      "version", info.version, "instances",
			                                      info.instances, "started", info.started));
	return list;
}

static void log_start(server *srv, txs_host *host, const struct args *a)
{
	const server_options *o = &a->opts;
	json_t *j = json_pack("{s:s, s:s, s:i, s:o, s:i, s:I, s:i, s:i, s:b}", "listen",
	                      server_address(srv), "version", TXS_VERSION, "pid", (int)getpid(),
	                      "plugins", plugin_list(host), "threads", o->threads, "max_body",
	                      (json_int_t)o->max_body, "max_inflight", o->max_inflight, "max_batch",
	                      o->max_batch, "watch", a->watch);
	json_object_update_new(
	    j, json_pack("{s:i, s:i, s:i, s:i, s:i, s:i}", "max_connections", (int)o->max_connections,
	                 "max_connections_per_ip", (int)o->per_ip_connections, "header_timeout_s",
	                 (int)o->header_timeout_s, "body_timeout_s", (int)o->body_timeout_s,
	                 "idle_timeout_s", (int)o->conn_timeout_s, "drain_timeout_s",
	                 (int)a->drain_s));
	json_object_update_new(
	    j, json_pack("{s:b, s:b, s:{s:i, s:i, s:i}}", "tls", o->tls != NULL, "mutual_tls",
	                 tls_mutual(o->tls), "tokens", "scan", (int)auth_count(o->auth, ROLE_SCAN),
	                 "admin", (int)auth_count(o->auth, ROLE_ADMIN), "metrics",
	                 (int)auth_count(o->auth, ROLE_METRICS)));
	if (o->insecure_no_auth)
		json_object_set_new(j, "insecure_no_auth", json_true());
	server_log("info", "start", j);
}

int cmd_serve(int argc, char **argv)
{
	struct args a;
	struct watch w = {.fd = -1};
	sigset_t set;
	char err[512];
	server *srv = NULL;
	txs_host *host = NULL;
	auth *au = NULL;
	tls *t = NULL;
	int rc = parse_args(argc, argv, &a), sfd = -1;
	if (rc)
		return rc > 0 ? EXIT_CLEAN : EXIT_USAGE;
	if (open_access(&a, &au, &t) < 0) {
		rc = EXIT_USAGE;
		goto out;
	}
	/* Before any thread starts, so every thread inherits the mask. */
	if ((sfd = signal_fd(&set)) < 0) {
		cli_error("serve: signalfd: %s", strerror(errno));
		rc = EXIT_ERRORS;
		goto out;
	}
	txs_host_options hopt = {.console_quiet = a.quiet, .allow_partial = a.allow_partial};
	host = cli_load_host_opts(a.dirs, a.ndirs, &hopt);
	rc = host ? EXIT_ERRORS : cli_load_exit();
	if (!host)
		goto out;
	const char *roots[MAX_DIRS];
	int nroots = cli_plugin_roots(a.dirs, a.ndirs, roots, MAX_DIRS);
	if (a.watch && watch_open(&w, host, roots, nroots) < 0)
		goto out;
	fit_nofile(&a.opts);
	if (server_start(&srv, host, &a.opts, err, sizeof err) < 0) {
		cli_error("serve: %s", err);
		goto out;
	}
	log_start(srv, host, &a);
	int sig = run(srv, sfd, &w, au, t);
	rc = shut_down(srv, host, sfd, sig, a.drain_s) ? EXIT_CLEAN : EXIT_ERRORS;
	host = NULL;
out:
	txs_host_free(host);
	watch_close(&w);
	if (sfd >= 0)
		close(sfd);
	tls_free(t);
	auth_free(au);
	return rc;
}
