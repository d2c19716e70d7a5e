/*
 * listen.h - a listening TCP socket from an operator's address, for
 * `txscan serve --listen` and `txscan worker --metrics-listen`.
 */
#ifndef TXS_HTTP_LISTEN_H
#define TXS_HTTP_LISTEN_H

#include <stddef.h>

/* addr is "HOST:PORT", "[IPV6]:PORT" or ":PORT" (every address; port 0
 * picks a free one). On success: 0, *fd a non-blocking, close-on-exec
 * listening socket, and bound the address it got ("127.0.0.1:41234",
 * "[::1]:80"). On failure -1 and err says why, naming option (e.g.
 * "--listen"). */
int listen_open(const char *addr, const char *option, int *fd, char *bound, size_t bcap,
                char *err, size_t errlen);

/* 0 when addr has one of those forms (nothing resolved or bound), else -1:
 * for option parsers, so a malformed address is a usage error. */
int listen_check(const char *addr);

#endif
