/*
 * util.c - helpers shared by the subcommands.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "txscan.h"
#include "util/log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A message as one log line: {"event": event, "message": ...}. */
static void vlog_message(txs_log_level level, const char *event, const char *fmt, va_list ap)
{
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	txs_logf(level, event, "%s", msg ? msg : "out of memory");
	free(msg);
}

void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog_message(TXS_LOG_ERROR, "error", fmt, ap);
	va_end(ap);
}

void cli_info(const char *event, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog_message(TXS_LOG_INFO, event, fmt, ap);
	va_end(ap);
}

/* One of --log-format/--log-level (value v), or the variable env. */
static int log_value(const char *name, const char *v, txs_log_format *fmt, txs_log_level *lv)
{
	bool format = strstr(name, "FORMAT") || strstr(name, "format");
	if (format ? txs_log_format_parse(v, fmt) == 0 : txs_log_level_parse(v, lv) == 0)
		return 0;
	txs_log_setup(*fmt, *lv); /* the complaint itself in the format asked so far */
	cli_error("%s: '%s' is not one of %s", name, v,
	          format ? "json, text" : "debug, info, warn, error");
	return -1;
}

/* --NAME VALUE or --NAME=VALUE at argv[*i]: its value (advancing *i), or
 * NULL when argv[*i] is another argument; *missing when VALUE is absent. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, bool *missing)
{
	size_t n = strlen(name);
	const char *a = argv[*i];
	if (!strncmp(a, name, n) && a[n] == '=')
		return a + n + 1;
	if (strcmp(a, name))
		return NULL;
	if (*i + 1 >= argc) {
		*missing = true;
		return NULL;
	}
	return argv[++*i];
}

int cli_log_opts(int *argc, char **argv)
{
	txs_log_format fmt = TXS_LOG_AUTO;
	txs_log_level lv = TXS_LOG_INFO;
	const char *ef = getenv("TXSCAN_LOG_FORMAT"), *el = getenv("TXSCAN_LOG_LEVEL");
	int bad = (ef && *ef && log_value("TXSCAN_LOG_FORMAT", ef, &fmt, &lv)) ||
	          (el && *el && log_value("TXSCAN_LOG_LEVEL", el, &fmt, &lv));
	int out = 1;
	for (int i = 1; i < *argc && !bad; i++) {
		bool missing = false;
		const char *name = NULL, *v = NULL;
		if (!strcmp(argv[i], "--")) {
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		for (int k = 0; k < 2 && !v && !missing; k++)
			v = opt_value(*argc, argv, &i, name = k ? "--log-level" : "--log-format", &missing);
		if (missing) {
			txs_log_setup(fmt, lv); /* the complaint itself in the format asked so far */
			cli_error("%s needs a value", name);
			return -1;
		}
		if (!v)
			argv[out++] = argv[i];
		else
			bad = log_value(name, v, &fmt, &lv);
	}
	txs_log_setup(fmt, lv);
	if (bad)
		return -1;
	argv[out] = NULL;
	*argc = out;
	return 0;
}

int cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return 0;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return 1;
	}
	return 0;
}

const char *cli_env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

int cli_is_quiet(const char *arg)
{
	return !strcmp(arg, "-q") || !strcmp(arg, "--quiet");
}

/* $TXSCAN_PLUGINS split at ':' into dirs (empty parts skipped), else
 * ./plugins when it is a folder. The strings stay valid until the next
 * call (the last copy is never freed). 0 folders: none. */
static int default_dirs(const char **dirs, int max)
{
	struct stat st;
	static char *copy;
	const char *env = cli_env(CLI_ENV_PLUGINS);
	int n = 0;
	if (!env)
		return stat("plugins", &st) == 0 && S_ISDIR(st.st_mode) ? (dirs[0] = "plugins", 1) : 0;
	free(copy);
	copy = strdup(env);
	for (char *save = NULL, *t = copy ? strtok_r(copy, ":", &save) : NULL; t && n < max;
	     t = strtok_r(NULL, ":", &save))
		dirs[n++] = t;
	return n;
}

struct txs_host *cli_load_host(const char *const *dirs, int ndirs, int quiet_console)
{
	txs_host_options opt = {.console_quiet = quiet_console != 0};
	return cli_load_host_opts(dirs, ndirs, &opt);
}

int cli_plugin_roots(const char *const *dirs, int ndirs, const char **out, int max)
{
	if (!ndirs)
		return default_dirs(out, max);
	int n = ndirs < max ? ndirs : max;
	memcpy(out, dirs, (size_t)n * sizeof *out);
	return n;
}

static txs_isolation isolation; /* from --isolation; DEFAULT: not given */

int cli_isolation_opts(int *argc, char **argv)
{
	int out = 1;
	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i], *v = NULL;
		if (!strcmp(a, "--")) {
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		if (!strcmp(a, "--isolation")) {
			if (i + 1 >= *argc) {
				cli_error("--isolation needs thread or process");
				return -1;
			}
			v = argv[++i];
		} else if (!strncmp(a, "--isolation=", 12)) {
			v = a + 12;
		} else {
			argv[out++] = argv[i];
			continue;
		}
		if (txs_isolation_parse(v, &isolation) != 0) {
			cli_error("--isolation: %s", txs_last_error());
			return -1;
		}
	}
	argv[out] = NULL;
	*argc = out;
	return 0;
}

/* --isolation, else $TXSCAN_ISOLATION, else the CLI's default. */
static txs_isolation cli_isolation(void)
{
	txs_isolation m;
	const char *env = cli_env(CLI_ENV_ISOLATION);
	if (isolation != TXS_ISOLATION_DEFAULT)
		return isolation;
	if (env && txs_isolation_parse(env, &m) == 0)
		return m;
	return CLI_DEFAULT_ISOLATION;
}

void cli_notice(const char *level, const char *msg, void *userdata)
{
	txs_log_level lv = TXS_LOG_WARN;
	(void)userdata;
	txs_log_level_parse(level, &lv);
	txs_logf(lv, "plugin_load", "%s", msg);
}

/* Each line of a list of load failures, as its own "txscan: " line. */
static void error_lines(const char *text)
{
	for (const char *nl; *text; text = nl ? nl + 1 : text + strlen(text)) {
		nl = strchr(text, '\n');
		cli_error("%.*s", (int)(nl ? (size_t)(nl - text) : strlen(text)), text);
	}
}

static int load_exit = EXIT_ERRORS; /* main thread: cli_load_exit */

/* $TXSCAN_ISOLATION, when it decides (no --isolation), must be valid. */
static bool env_isolation_ok(void)
{
	txs_isolation m;
	const char *env = cli_env(CLI_ENV_ISOLATION);
	if (!env || isolation != TXS_ISOLATION_DEFAULT || txs_isolation_parse(env, &m) == 0)
		return true;
	cli_error("$%s: %s", CLI_ENV_ISOLATION, txs_last_error());
	return false;
}

int cli_load_exit(void)
{
	return load_exit;
}

struct txs_host *cli_load_host_opts(const char *const *dirs, int ndirs,
                                    const struct txs_host_options *given)
{
	txs_host *h = NULL;
	txs_host_options o = *given;
	const char *env_dirs[64];
	load_exit = EXIT_USAGE;
	if (!env_isolation_ok())
		return NULL;
	if (o.isolation == TXS_ISOLATION_DEFAULT)
		o.isolation = cli_isolation();
	if (!ndirs) {
		ndirs = default_dirs(env_dirs, 64);
		dirs = env_dirs;
	}
	if (!ndirs) {
		cli_error("no plugins: pass -p DIR (or set %s, or create ./plugins)", CLI_ENV_PLUGINS);
		return NULL;
	}
	load_exit = EXIT_ERRORS;
	if (!o.notice)
		o.notice = cli_notice;
	if (txs_host_new(&h, &o)) {
		cli_error("%s", txs_last_error());
		return NULL;
	}
	int failed = 0; /* every folder is tried: all failures are listed at once */
	for (int i = 0; i < ndirs; i++) {
		if (txs_host_load(h, dirs[i])) {
			error_lines(txs_last_error());
			failed = 1;
		}
	}
	if (failed) {
		txs_host_free(h);
		return NULL;
	}
	return h;
}

int cli_plugins_opt(int argc, char **argv, int *i, const char **dirs, int *ndirs, int max)
{
	const char *a = argv[*i], *v = NULL;
	if (!strcmp(a, "-p") || !strcmp(a, "--plugins")) {
		if (*i + 1 >= argc) {
			cli_error("%s needs a folder", a);
			return -1;
		}
		v = argv[++*i];
	} else if (!strncmp(a, "--plugins=", 10)) {
		v = a + 10;
	} else if (!strncmp(a, "-p", 2) && a[2]) {
		v = a + 2;
	} else {
		return 0;
	}
	if (*ndirs >= max) {
		cli_error("too many plugin folders (at most %d)", max);
		return -1;
	}
	dirs[(*ndirs)++] = v;
	return 1;
}
