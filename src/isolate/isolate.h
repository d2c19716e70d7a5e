/*
 * isolate.h - process isolation: a plugin instance whose engines run in a
 * sandboxed child process (DESIGN.md §2b, docs/engine.md "Isolation").
 *
 * txs_proc has the operations of txs_executor (include/txscan.h) and the
 * same contracts: new returns after the child built its engine and ran
 * init; submit never blocks and calls cb exactly once per accepted scan
 * (on the reader of every engine process's answers, answers.h: one thread
 * for all proxies, so callbacks must not block; or on the monitor or the
 * proxy's I/O thread when the child is killed or dies); restart and reload wait; stats and load are
 * cheap snapshots; free answers what is pending and reaps the child.
 * On top of them it holds the hard stops a thread cannot: a scan not
 * answered by its timeout plus a grace, or a child past its memory cap,
 * gets the child SIGKILLed; a child that dies is replaced at once and the
 * scans it had not started are sent again, once.
 */
#ifndef TXS_ISOLATE_H
#define TXS_ISOLATE_H

#include "txscan.h"

#include <sys/types.h>

typedef struct txs_proc txs_proc;

/* engine: path of the txscan-engine helper, or NULL to look it up
 * (txs_isolate_engine_path). */
int txs_proc_new(txs_proc **out, const txs_plugin_code *code, const txs_limits *limits,
                 txs_console_fn console, void *userdata, const char *engine);
/* new() in two halves, so that many children start at once: start returns
 * when the child is being started; wait_started returns 0 once it runs
 * init, or TXS_EPLUGIN (the caller then frees p). Scans submitted before
 * are held until the child is ready. */
int txs_proc_start(txs_proc **out, const txs_plugin_code *code, const txs_limits *limits,
                   txs_console_fn console, void *userdata, const char *engine);
int txs_proc_wait_started(txs_proc *p);
int txs_proc_submit(txs_proc *p, const char *tx, size_t len, txs_scan_fn cb, void *userdata);
/* txs_proc_submit, except that the frame may only be queued: *flush_due is
 * then set, and the caller calls txs_proc_flush once for all the scans it
 * queued (a batch of submissions: one write to the child instead of one
 * per scan, and the child's lane reads them all at once). */
int txs_proc_submit_quiet(txs_proc *p, const char *tx, size_t len, txs_scan_fn cb,
                          void *userdata, bool *flush_due);
void txs_proc_flush(txs_proc *p);
int txs_proc_restart(txs_proc *p);
int txs_proc_reload(txs_proc *p, const txs_plugin_code *code, const txs_limits *limits);
void txs_proc_stats_get(const txs_proc *p, txs_executor_stats *stats);
uint32_t txs_proc_load(const txs_proc *p);
/* Executor events of the child (txscan.h), on the I/O thread; before the
 * first submit. "lane_abandoned" also gets the child replaced. */
void txs_proc_on_event(txs_proc *p, txs_event_fn fn, void *userdata);
/* wanted(userdata of a scan): false once nobody waits for its answer. The
 * child then answers the oldest such scans without running them (timeout,
 * neither counted nor held against the plugin), as
 * txs_executor_skip_unwanted does in a thread. Called on the monitor's
 * thread; before the first submit. */
void txs_proc_skip_unwanted(txs_proc *p, bool (*wanted)(void *userdata));
void txs_proc_free(txs_proc *p);

/* The engine process now (0 while none runs): for tests. */
pid_t txs_proc_pid(const txs_proc *p);
/* Runs the sandbox probe inside the child (sandbox.h); *report gets what
 * it said (malloc'ed). 0 when every forbidden call was refused. */
int txs_proc_probe(txs_proc *p, char **report);

/* The helper to start: opt if given, else $TXSCAN_ENGINE, else
 * txscan-engine beside /proc/self/exe, else the build tree's (compiled in).
 * Writes into buf; 0, or TXS_ENOTFOUND. */
int txs_isolate_engine_path(const char *opt, char *buf, size_t cap);

/* Starts the zygote (child.c) of this process in the background, if it has
 * none: the host calls it when it is created in process isolation, so
 * that linking the helper overlaps reading the plugins. */
void txs_isolate_zygote_start(const char *engine);
/* The zygote's pid (0 while none runs): for tests. */
pid_t txs_isolate_zygote_pid(void);

/* main() of the helper (src/isolate/engine_main.c). */
int txs_isolate_child_main(int argc, char **argv);

/* The memory cap of an engine process (parent.c, rss_cap_locked) is its
 * RSS before any of the plugin's code ran, plus what an engine process
 * adds to that by itself (ENGINE: its VM, the library pages it faults in;
 * the example plugins' processes were 15-18 MB above it when ready: base
 * 2.4 MB forked by the zygote, 10.4 MB spawned), plus heap_limit_mb, plus
 * the slack (JIT code, malloc arenas, thread stacks, the standby's VM: the
 * same processes peaked 32-36 MB above their base over 60,000 scans). */
#define TXS_PROC_ENGINE_MB 24
#define TXS_PROC_RSS_SLACK_MB 64
/* How long past its timeout a scan may run before its child is killed. */
#define TXS_PROC_GRACE_MS 30

#endif
