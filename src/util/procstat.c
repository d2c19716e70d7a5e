/*
 * procstat.c - the process collector's figures from /proc/self/stat
 * (proc(5): utime, stime, starttime in clock ticks; vsize in bytes; rss in
 * pages), /proc/stat's btime, /proc/self/fd and RLIMIT_NOFILE.
 */
#define _GNU_SOURCE
#include "procstat.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

bool procstat_schedstat(int fd, uint64_t *run_ns, uint64_t *wait_ns)
{
	char buf[96];
	unsigned long long run, wait;
	ssize_t n = fd < 0 ? -1 : pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &run, &wait) != 2)
		return false;
	*run_ns = run;
	*wait_ns = wait;
	return true;
}

size_t procstat_statm_rss(int fd)
{
	char buf[128];
	unsigned long size, resident;
	ssize_t n = fd < 0 ? -1 : pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
		return 0;
	return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static double boot_time(void)
{
	char line[256];
	double bt = 0;
	FILE *f = fopen("/proc/stat", "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "btime %lf", &bt) == 1)
			break;
	fclose(f);
	return bt;
}

static uint64_t count_fds(void)
{
	uint64_t n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n ? n - 1 : 0; /* the directory's own descriptor */
}

/* Fields after the command name, which may hold spaces and parentheses:
 * parsing starts after its last ')'. */
static int read_stat(procstat *out)
{
	char buf[2048];
	FILE *f = fopen("/proc/self/stat", "re");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long utime, stime;
	unsigned long long start, vsize;
	long rss;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
	 * utime stime cutime cstime priority nice threads itrealvalue starttime
	 * vsize rss */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d "
	                        "%*d %*d %*d %llu %llu %ld", &utime, &stime, &start, &vsize, &rss) != 5)
		return -1;
	double hz = (double)sysconf(_SC_CLK_TCK);
	if (!out->cpu_seconds) /* no process CPU clock (procstat_read) */
		out->cpu_seconds = (double)(utime + stime) / hz;
	out->vsize_bytes = vsize;
	out->rss_bytes = rss > 0 ? (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
	out->start_time = boot_time() + (double)start / hz;
	return 0;
}

int procstat_read(procstat *out)
{
	struct rlimit rl;
	memset(out, 0, sizeof *out);
	out->open_fds = count_fds();
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		out->max_fds = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	/* /proc/self/stat counts CPU in the kernel's ticks (10 ms): a process
	 * whose work runs in other processes (engine processes) read 0 for
	 * long. The process CPU clock counts nanoseconds, every thread
	 * included, and needs no /proc. */
	struct timespec cpu;
	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu) == 0)
		out->cpu_seconds = (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9;
	return read_stat(out);
}
