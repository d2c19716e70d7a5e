/*
 * bench_log.c - what one failed scan costs the host's failure bookkeeping
 * (src/host/plugin_log.c): the per-second ring, the last error, the rate
 * limit, and the formatted line when one passes. CPU time of the calling
 * thread, so other load on the machine inflates it little.
 *
 *   bench_log [N]     N failures (default 2,000,000), two ways:
 *     held back   the rate limit already spent: what a flood costs per scan
 *     logged      every one formatted (the limit's 10 lines a second each)
 */
#define _GNU_SOURCE
#include "host/plugin_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static const char ERR[] = "TypeError: undefined is not an object (evaluating 'tx.input.slice')\n"
                          "scanTransaction@/srv/txscan/plugins/permit/index.js:12:19\n"
                          "global code@/srv/txscan/plugins/permit/index.js:30:1";

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 2000000;
	plog l;
	plog_init(&l);
	txs_log_setup(TXS_LOG_JSON, TXS_LOG_INFO);
	json_t *tx = json_string("0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060");
	plog_scan sc = {.plugin = "permit", .version = "1.1.0", .generation = 3,
	                .status = TXS_STATUS_ERROR, .tx = tx, .line = 17, .error = ERR, .ms = 0.4};
	size_t len, lines = 0;
	double t0 = cpu_ns();
	for (long i = 0; i < n; i++) {
		char *line = plog_failure(&l, &sc, &len);
		lines += line != NULL;
		free(line);
	}
	double held = (cpu_ns() - t0) / (double)n;
	long m = n / 20;
	t0 = cpu_ns();
	for (long i = 0; i < m; i++) { /* formatted as if the limit let each through */
		json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "plugin", sc.plugin, "version", sc.version,
		                      "generation", (json_int_t)3, "status", "error");
		char first[1024], at[512];
		plog_split_error(ERR, first, sizeof first, at, sizeof at);
		json_object_set(o, "tx", tx);
		json_object_set_new(o, "error", json_string(first));
		json_object_set_new(o, "at", json_string(at));
		free(txs_log_line(TXS_LOG_WARN, "plugin_failure", o, &len));
	}
	double logged = (cpu_ns() - t0) / (double)m;
	printf("{\"failures\": %ld, \"lines_passed\": %zu, \"held_back_ns\": %.0f, "
	       "\"logged_line_ns\": %.0f}\n", n, lines, held, logged);
	json_decref(tx);
	plog_destroy(&l);
	return 0;
}
