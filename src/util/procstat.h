/*
 * procstat.h - this process's resources, as the Prometheus "process
 * collector" names them (process_cpu_seconds_total, ...), read from
 * /proc/self. Linux only; a figure that cannot be read is left 0.
 */
#ifndef TXS_UTIL_PROCSTAT_H
#define TXS_UTIL_PROCSTAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct procstat {
	double cpu_seconds;   /* user + system */
	uint64_t rss_bytes;   /* resident memory */
	uint64_t vsize_bytes; /* virtual memory (large under JSC's Gigacage: DESIGN §1) */
	uint64_t open_fds;
	uint64_t max_fds;     /* RLIMIT_NOFILE, soft */
	double start_time;    /* Unix seconds */
} procstat;

/* Fills *out; 0, or -1 when /proc/self/stat could not be read (the other
 * figures are still filled in). A few system calls: once per scrape. */
int procstat_read(procstat *out);

/* A thread's time on a CPU and waiting for one (ns), the first two fields
 * of an open /proc/.../schedstat, read with one pread. False (the outputs
 * untouched) when it cannot be read. */
bool procstat_schedstat(int fd, uint64_t *run_ns, uint64_t *wait_ns);

/* Resident bytes from an open /proc/.../statm, one pread; 0 when it cannot
 * be read. */
size_t procstat_statm_rss(int fd);

#endif
