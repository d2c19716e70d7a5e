/*
 * worker_http.h - `txscan worker --metrics-listen`: the worker's figures
 * (src/stream/stream.h, stream_live), the host's findings and verdicts and
 * the process collector on /metrics, plus /healthz and /readyz
 * (src/http/exporter.h serves them).
 */
#ifndef TXS_CLI_WORKER_HTTP_H
#define TXS_CLI_WORKER_HTTP_H

struct txs_host;
struct stream_live;
struct worker_http;

/* 0, or -1 after printing why (cli_error). host and live outlive it. */
int worker_http_start(struct worker_http **out, const char *addr, struct txs_host *host,
                      struct stream_live *live);
/* "HOST:PORT" bound. */
const char *worker_http_address(const struct worker_http *wh);
/* Stops serving; accepts NULL. */
void worker_http_stop(struct worker_http *wh);

#endif
