/*
 * sandbox.h - what an engine process gives up before plugin code runs.
 */
#ifndef TXS_ISOLATE_SANDBOX_H
#define TXS_ISOLATE_SANDBOX_H

#include <stdbool.h>

/* The process-wide limits set at the child's start: no core files, a
 * small descriptor table. 0, or -errno. */
int txs_sandbox_limits(void);

/* no_new_privs, Landlock where the kernel has it (see sandbox.c), then the
 * seccomp filter (libseccomp), on every thread of
 * the process (TSYNC). Allowed: what JavaScriptCore, glibc's threads and
 * the executor use (the list is in sandbox.c, measured with strace).
 * Refused with EPERM: sockets, exec, fork (clone without CLONE_THREAD),
 * ptrace, opens for writing, signals to other processes, and every call not
 * on the list. clone3 answers ENOSYS so that glibc falls back to clone,
 * whose flags the filter can read. 0, or -errno. Irreversible. */
int txs_sandbox_enter(void);

/* The Landlock ABI txs_sandbox_enter applied (reads confined to system
 * files and the process's own /proc), or 0 when the kernel has none. */
int txs_sandbox_landlock_abi(void);

/* Inside a sandboxed child: tries socket(), an open for writing, fork,
 * kill of pid 1 and (with Landlock) reads outside the allowed paths, and
 * what the engine needs (a read-only open, rt_sigsuspend woken by a
 * signal, as JSC's collector suspends a thread); writes what each did into
 * buf ("socket=EPERM ..."). True when every forbidden call was refused and
 * every needed one worked. For the tests (CH_PROBE). */
bool txs_sandbox_probe(char *buf, unsigned cap);

#endif
