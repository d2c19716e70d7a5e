/*
 * procstat.h - this process's resources, as the Prometheus "process
 * collector" names them (process_cpu_seconds_total, ...), read from
 * /proc/self. Linux only; a figure that cannot be read is left 0.
 */
#ifndef TXS_UTIL_PROCSTAT_H
#define TXS_UTIL_PROCSTAT_H

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

#endif
