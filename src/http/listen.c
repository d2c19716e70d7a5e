/*
 * listen.c - the listening socket of serve and of the worker's metrics
 * endpoint (see listen.h). Names are resolved numerically for the port
 * (AI_NUMERICSERV); the first address that binds wins.
 */
#define _GNU_SOURCE
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Splits "HOST:PORT", "[V6]:PORT" or ":PORT" (host "" = every address). */
static int split_listen(const char *listen, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon = strrchr(listen, ':');
	if (!colon || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return -1;
	const char *h = listen;
	size_t hn = (size_t)(colon - listen);
	if (hn >= 2 && h[0] == '[' && h[hn - 1] == ']') {
		h++;
		hn -= 2;
	} else if (memchr(h, ':', hn)) {
		return -1; /* a bare IPv6 address needs brackets */
	}
	if (hn >= hcap || strlen(colon + 1) >= pcap)
		return -1;
	snprintf(host, hcap, "%.*s", (int)hn, h);
	snprintf(port, pcap, "%s", colon + 1);
	return 0;
}

int listen_check(const char *addr)
{
	char host[256], port[16];
	return split_listen(addr, host, sizeof host, port, sizeof port);
}

static int bind_one(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
	                ai->ai_protocol);
	int one = 1;
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 511) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void describe_bound(int fd, char *bound, size_t bcap)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
		port = ntohs(a->sin6_port);
		snprintf(bound, bcap, "[%s]:%u", ip, port);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
		port = ntohs(a->sin_port);
		snprintf(bound, bcap, "%s:%u", ip, port);
	}
}

int listen_open(const char *addr, const char *option, int *out, char *bound, size_t bcap,
                char *err, size_t errlen)
{
	char host[256], port[16];
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res = NULL;
	if (split_listen(addr, host, sizeof host, port, sizeof port) < 0) {
		snprintf(err, errlen, "%s '%s': expected HOST:PORT, [IPV6]:PORT or :PORT", option,
		         addr);
		return -1;
	}
	int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (gai) {
		snprintf(err, errlen, "%s '%s': %s", option, addr, gai_strerror(gai));
		return -1;
	}
	int fd = -1, e = 0;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
		if ((fd = bind_one(ai)) < 0)
			e = errno;
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot listen on %s: %s", option, addr, strerror(e));
		return -1;
	}
	*out = fd;
	describe_bound(fd, bound, bcap);
	return 0;
}
