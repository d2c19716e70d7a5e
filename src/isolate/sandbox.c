/*
 * sandbox.c - seccomp filter and limits of an engine process.
 *
 * An allow-list: the system calls JavaScriptCore, glibc and the executor
 * make, each allowed with the arguments that keep it harmless; everything
 * else answers EPERM. Measured (strace -f of `txscan scan --isolation
 * process` with the 7 example plugins and a plugin using Intl.NumberFormat,
 * DateTimeFormat with a time zone, Collator, PluralRules, Segmenter,
 * toLocaleString, normalize and a unicode RegExp), after the filter the
 * children called: clone, futex, madvise, mmap, mprotect, munmap, openat
 * (read-only), poll, pread64, read, write, close, getdents64, newfstatat,
 * statfs, sysinfo, sched_getaffinity, sched_setscheduler, rt_sigaction,
 * rt_sigprocmask, prctl, gettid, getpid, rseq, set_robust_list, getrandom,
 * eventfd2, clock_gettime, brk; and clone3, answered ENOSYS. No call was
 * refused. The list below adds what DESIGN.md §1 saw JSC make elsewhere
 * (mremap, sched_yield, ioctl ...) and what GC and JIT paths under memory
 * pressure or crash reporting may make; not sockets, send/recvmsg, exec,
 * fork, ptrace, or anything that writes to files. The
 * filter is installed after the plugin's code was read from the channel
 * and before the engine evaluates it (child.c).
 *
 * Opens are allowed read-only: JavaScriptCore and glibc open files lazily
 * (ICU data for Intl, /proc/self/statm, /proc/thread-self/schedstat for
 * each new lane, /sys/devices/system/cpu for sysconf), and seccomp cannot
 * read a path. A compromised child can therefore read what the host's user
 * can read, and send it back in results: run the host as a user with no
 * secrets readable (docs/engine.md, "Isolation").
 */
#define _GNU_SOURCE
#include "sandbox.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <sched.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int txs_sandbox_limits(void)
{
	struct rlimit core = {0, 0}, files = {64, 64};
	if (setrlimit(RLIMIT_CORE, &core) != 0 || setrlimit(RLIMIT_NOFILE, &files) != 0)
		return -errno;
	return 0;
}

/* Plain calls: no argument makes them reach outside the process. */
static const int allowed[] = {
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64),
    SCMP_SYS(close), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(statx), SCMP_SYS(lseek),
    SCMP_SYS(getdents64), SCMP_SYS(statfs), SCMP_SYS(fstatfs), SCMP_SYS(access),
    SCMP_SYS(faccessat), SCMP_SYS(faccessat2), SCMP_SYS(readlink), SCMP_SYS(readlinkat),
    SCMP_SYS(getcwd), SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap),
    SCMP_SYS(mprotect), SCMP_SYS(madvise), SCMP_SYS(mincore), SCMP_SYS(brk), SCMP_SYS(msync),
    SCMP_SYS(membarrier),
    SCMP_SYS(futex), SCMP_SYS(futex_waitv), SCMP_SYS(set_robust_list), SCMP_SYS(get_robust_list),
    SCMP_SYS(rseq), SCMP_SYS(set_tid_address), SCMP_SYS(gettid), SCMP_SYS(getpid),
    SCMP_SYS(getppid), SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
    SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity), SCMP_SYS(sched_getparam), SCMP_SYS(sched_getscheduler), SCMP_SYS(sched_setscheduler),
    SCMP_SYS(sched_get_priority_max), SCMP_SYS(sched_get_priority_min), SCMP_SYS(getpriority), SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),
    SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep), SCMP_SYS(gettimeofday), SCMP_SYS(time),
    SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
    SCMP_SYS(rt_sigtimedwait), SCMP_SYS(sigaltstack), SCMP_SYS(restart_syscall),
    /* JSC's GC suspends a mutator thread to scan its stack: the thread waits
     * in rt_sigsuspend inside its SIGUSR1 handler. Refused, it ran on while
     * being scanned and a collector thread crashed (memmove from NULL) in
     * about one engine process in three under a scan stream. */
    SCMP_SYS(rt_sigsuspend), SCMP_SYS(rt_sigpending),
    SCMP_SYS(getrusage), SCMP_SYS(getrlimit), SCMP_SYS(prlimit64), SCMP_SYS(sysinfo),
    SCMP_SYS(uname), SCMP_SYS(getrandom), SCMP_SYS(eventfd2), SCMP_SYS(pipe2), SCMP_SYS(dup),
    SCMP_SYS(dup3), SCMP_SYS(fcntl), SCMP_SYS(ioctl), SCMP_SYS(epoll_create1),
    SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(timerfd_create),
    SCMP_SYS(timerfd_settime), SCMP_SYS(exit), SCMP_SYS(exit_group),
};

/* Not on the list, so refused with EPERM by the default action (libseccomp
 * refuses a rule whose action is the default's): socket, socketpair,
 * connect, bind, listen, accept, execve, execveat, fork, vfork, ptrace,
 * process_vm_readv/writev, personality, keyctl, add_key, bpf, mount,
 * unshare, setns, userfaultfd, perf_event_open, io_uring_setup, kcmp,
 * pidfd_open, pidfd_getfd, memfd_create, chmod, unlink, rename, ... */

static int add_rules(scmp_filter_ctx f)
{
	int rc = 0;
	pid_t self = getpid();
	for (size_t i = 0; !rc && i < sizeof allowed / sizeof *allowed; i++)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, allowed[i], 0);
	/* threads only: clone with CLONE_THREAD; clone3 hides its flags */
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
		                      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* opens without write, create or truncate */
	const scmp_datum_t wr = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND;
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
		                      SCMP_A2(SCMP_CMP_MASKED_EQ, wr, 0));
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(open), 1,
		                      SCMP_A1(SCMP_CMP_MASKED_EQ, wr, 0));
	/* signals to this process's own threads only (JSC's traps, glibc) */
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
		                      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self));
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
		                      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self));
	/* prctl: names of threads and harmless reads; not PR_SET_DUMPABLE etc. */
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
		                      SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
		                      SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME));
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
		                      SCMP_A0(SCMP_CMP_EQ, PR_SET_VMA));
	return rc;
}

/* ---- Landlock: what the engine may read ----------------------------------- */

#ifndef LANDLOCK_ACCESS_FS_TRUNCATE /* ABI 3; Debian 12's headers stop at 2 */
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

static int landlock_abi;

static bool ll_rule(int ruleset, const char *path, uint64_t access)
{
	int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT; /* a path this system lacks is not a failure */
	struct landlock_path_beneath_attr pb = {.allowed_access = access, .parent_fd = fd};
	struct stat st;
	if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
		pb.allowed_access &= LANDLOCK_ACCESS_FS_READ_FILE;
	long rc = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
	close(fd);
	return rc == 0;
}

/* Reads only beneath the system's libraries and data (/usr, /lib, the
 * time zone), this process's own /proc/<pid>, the CPU list in /sys, and
 * /dev/urandom; no write, create, remove or execute anywhere. Closes what
 * seccomp cannot: a compromised engine reading the host user's files, or
 * the host's /proc/<pid>/environ. Best effort: a kernel without Landlock
 * (before 5.13, or not enabled) keeps the read-only opens of seccomp alone
 * (txs_sandbox_landlock_abi() says which). */
static int landlock_enter(void)
{
	int abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1)
		return 0;
	uint64_t fs = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
	              LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
	              LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
	              LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
	              LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
	              LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
	              LANDLOCK_ACCESS_FS_MAKE_SYM;
	if (abi >= 2)
		fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	struct landlock_ruleset_attr attr = {.handled_access_fs = fs};
	int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
	if (rs < 0)
		return -errno;
	const uint64_t rd = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
	const char *paths[] = {"/usr", "/lib", "/lib64", "/etc/localtime", "/proc/self",
	                       "/sys/devices/system/cpu", "/dev/urandom"};
	bool ok = true;
	for (size_t i = 0; ok && i < sizeof paths / sizeof *paths; i++)
		ok = ll_rule(rs, paths[i], rd);
	long rc = ok ? syscall(SYS_landlock_restrict_self, rs, 0) : -1;
	int err = errno;
	close(rs);
	if (rc != 0)
		return -err;
	landlock_abi = abi;
	return 0;
}

int txs_sandbox_landlock_abi(void)
{
	return landlock_abi;
}

int txs_sandbox_enter(void)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -errno;
	int ll = landlock_enter();
	if (ll)
		return ll;
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!f)
		return -ENOMEM;
	int rc = seccomp_attr_set(f, SCMP_FLTATR_CTL_TSYNC, 1);
	if (!rc)
		rc = add_rules(f);
	if (!rc)
		rc = seccomp_load(f);
	seccomp_release(f);
	return rc;
}

static const char *outcome(long rc, int err)
{
	return rc >= 0 ? "ALLOWED" : err == EPERM ? "EPERM" : strerror(err);
}

static void probe_signal(int sig)
{
	(void)sig;
}

/* What JSC's collector does to suspend a thread: a signal that waits in
 * rt_sigsuspend. "EINTR": allowed and woken by the signal. */
static const char *suspend_outcome(void)
{
	struct sigaction sa = {.sa_handler = probe_signal}, old;
	sigset_t block, prev;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigaction(SIGUSR2, &sa, &old);
	pthread_sigmask(SIG_BLOCK, &block, &prev);
	pthread_kill(pthread_self(), SIGUSR2);
	sigset_t wait = prev;
	sigdelset(&wait, SIGUSR2);
	int rc = sigsuspend(&wait);
	int err = errno;
	pthread_sigmask(SIG_SETMASK, &prev, NULL);
	sigaction(SIGUSR2, &old, NULL);
	return rc == -1 && err == EINTR ? "EINTR" : outcome(rc, err);
}

bool txs_sandbox_probe(char *buf, unsigned cap)
{
	const char *suspend = suspend_outcome();
	errno = 0;
	long s = socket(AF_INET, SOCK_STREAM, 0);
	int es = errno;
	long o = open("/tmp/txscan-sandbox-probe", O_WRONLY | O_CREAT, 0600);
	int eo = errno;
	long r = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	int er = errno;
	long k = kill(1, 0);
	int ek = errno;
	long pw = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	int epw = errno;
	char host_env[64];
	snprintf(host_env, sizeof host_env, "/proc/%ld/environ", (long)getppid());
	long he = open(host_env, O_RDONLY | O_CLOEXEC);
	int ehe = errno;
	/* a raw fork: clone without CLONE_THREAD */
	long c = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	int ec = errno;
	if (c == 0)
		_exit(0);
	if (c > 0)
		waitpid((pid_t)c, NULL, 0);
	snprintf(buf, cap, "socket=%s open_write=%s open_read=%s kill_other=%s fork=%s landlock=%d "
	         "read_etc_passwd=%s read_host_environ=%s sigsuspend=%s", outcome(s, es),
	         outcome(o, eo), outcome(r, er), outcome(k, ek), outcome(c, ec), landlock_abi,
	         outcome(pw, epw), outcome(he, ehe), suspend);
	if (o >= 0)
		unlink("/tmp/txscan-sandbox-probe");
	long fds[] = {s, o, r, pw, he};
	for (int i = 0; i < 5; i++)
		if (fds[i] >= 0)
			close((int)fds[i]);
	bool files = !landlock_abi || (pw < 0 && he < 0);
	return s < 0 && es == EPERM && o < 0 && eo == EPERM && r >= 0 && k < 0 && ek == EPERM &&
	       c < 0 && ec == EPERM && files && !strcmp(suspend, "EINTR");
}
