/*
 * cli.h - the txscan subcommands. Each takes the arguments after its own
 * name (argv[0] is the subcommand) and returns the process exit code. They
 * use only the public API (include/txscan.h).
 */
#ifndef TXS_CLI_H
#define TXS_CLI_H

#include <stdio.h>

int cmd_scan(int argc, char **argv);    /* src/cli/scan.c */
int cmd_check(int argc, char **argv);   /* src/cli/check.c */
int cmd_plugins(int argc, char **argv); /* src/cli/plugins.c */
int cmd_bundle(int argc, char **argv);  /* src/cli/bundle.c */
int cmd_new(int argc, char **argv);     /* src/cli/new.c */
int cmd_serve(int argc, char **argv);   /* src/cli/serve.c + src/server.c */
int cmd_worker(int argc, char **argv);  /* src/cli/worker.c + src/stream.c */
int cmd_publish(int argc, char **argv); /* src/cli/worker.c */
int cmd_follow(int argc, char **argv);  /* src/cli/follow.c + src/chain/ */
/* `txscan scan --rpc ...` (src/cli/follow.c); cli_scan_wants_rpc: argv
 * asks for it (--rpc, --tx, --block or --blocks). */
int cmd_scan_rpc(int argc, char **argv);
int cli_scan_wants_rpc(int argc, char **argv);

/* Exit codes shared by every subcommand (each --help documents its own). */
/* The CLI's isolation when neither --isolation nor $TXSCAN_ISOLATION says.
 * Thread until process isolation meets its cost targets (docs/engine.md,
 * "Isolation": fan-out latency and start-up missed them). */
#define CLI_DEFAULT_ISOLATION TXS_ISOLATION_THREAD
#define CLI_DEFAULT_ISOLATION_NAME "thread"

enum { EXIT_CLEAN = 0, EXIT_FINDING = 1, EXIT_ERRORS = 2, EXIT_USAGE = 64 };

/* A message as a log line on stderr (src/util/log.h: JSON, or "txscan: "
 * text at a terminal): an error (event "error"), or information under its
 * own event name. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_info(const char *event, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Takes --log-format json|text and --log-level debug|info|warn|error (also
 * --NAME=VALUE) out of argv (any position after the subcommand) and sets up
 * the logger; without them $TXSCAN_LOG_FORMAT and $TXSCAN_LOG_LEVEL, else
 * text when stderr is a terminal (JSON otherwise) and info. -1 after
 * printing the error. */
int cli_log_opts(int *argc, char **argv);
#define CLI_LOG_HELP24 \
	"      --log-format F      json or text: stderr's log lines (default\n" \
	"                          $TXSCAN_LOG_FORMAT, else text when stderr is a\n" \
	"                          terminal, JSON otherwise; docs/logging.md)\n" \
	"      --log-level L       debug, info, warn or error: the least level logged\n" \
	"                          (default $TXSCAN_LOG_LEVEL, else info)\n"
#define CLI_LOG_HELP \
	"  --log-format F      json or text: stderr's log lines (default $TXSCAN_LOG_FORMAT,\n" \
	"                      else text when stderr is a terminal, JSON otherwise)\n" \
	"  --log-level L       debug, info, warn or error: the least level logged\n" \
	"                      (default $TXSCAN_LOG_LEVEL, else info)\n"

/* True when argv[i] is -h or --help. */
int cli_wants_help(int argc, char **argv);

/* Environment variables for what operators set in unit files. Each is the
 * default of an option (the option wins) and each --help that has the
 * option names it. An empty value counts as unset. */
#define CLI_ENV_PLUGINS "TXSCAN_PLUGINS"     /* -p: folders, ':'-separated */
#define CLI_ENV_ISOLATION "TXSCAN_ISOLATION" /* --isolation */
#define CLI_ENV_LISTEN "TXSCAN_LISTEN"       /* serve --listen */
/* getenv, with "" as NULL. */
const char *cli_env(const char *name);

/* -q/--quiet means the same in every subcommand: print only what the
 * command is for (reports, results, listings) and problems (errors,
 * warnings). It drops the progress display, closing summaries, other
 * informational lines and the plugins' console output. The JSON event log
 * of serve and worker is not affected (--log-level filters that). True
 * when arg is -q or --quiet. */
int cli_is_quiet(const char *arg);

/* A host loaded from every -p/--plugins directory given, else from
 * $TXSCAN_PLUGINS (':'-separated), else ./plugins; NULL after printing the
 * error (then cli_load_exit() is the exit status: EXIT_USAGE when no
 * plugin folder was named at all, else EXIT_ERRORS). */
struct txs_host;
struct txs_host *cli_load_host(const char *const *dirs, int ndirs, int quiet_console);
/* The same with host options. Every folder is tried and every failure is
 * printed, one "txscan: " line each. opt->notice NULL: cli_notice. */
struct txs_host_options;
struct txs_host *cli_load_host_opts(const char *const *dirs, int ndirs,
                                    const struct txs_host_options *opt);

int cli_load_exit(void);
/* The plugin folders a command loads: dirs when ndirs > 0, else
 * $TXSCAN_PLUGINS's, else ./plugins (at most max, into out). */
int cli_plugin_roots(const char *const *dirs, int ndirs, const char **out, int max);

/* A host notice (txs_host_options.notice) as a "plugin_load" log line. */
void cli_notice(const char *level, const char *msg, void *userdata);

/* Takes --isolation thread|process (or --isolation=MODE) out of argv (any
 * position after the subcommand) and remembers it for cli_load_host*.
 * Without it: $TXSCAN_ISOLATION, else CLI_DEFAULT_ISOLATION. -1 after
 * printing the error. */
int cli_isolation_opts(int *argc, char **argv);
#define CLI_ISOLATION_HELP \
	"  --isolation MODE    thread: plugins' engines on threads of this process;\n" \
	"                      process: each instance's engines in a sandboxed child\n" \
	"                      process, killed at its deadline or memory cap (default\n" \
	"                      $TXSCAN_ISOLATION, else " CLI_DEFAULT_ISOLATION_NAME ")\n"
/* The -p line of every --help (two lines, aligned as CLI_ISOLATION_HELP). */
#define CLI_PLUGINS_HELP \
	"  -p, --plugins DIR   a plugin folder or a folder of plugin folders (repeatable;\n" \
	"                      default $TXSCAN_PLUGINS, ':'-separated, then ./plugins)\n"
#define CLI_QUIET_HELP \
	"  -q, --quiet         only reports and problems: no progress, no summary, no\n" \
	"                      plugin console output\n"

/* Collects -p/--plugins DIR (and -pDIR, --plugins=DIR) into dirs (at most
 * max); returns 1 if argv[*i] was such an option (and advances *i), 0 if
 * not, -1 on a missing value (after printing the error). */
int cli_plugins_opt(int argc, char **argv, int *i, const char **dirs, int *ndirs, int max);

#endif
