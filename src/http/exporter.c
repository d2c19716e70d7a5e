/*
 * exporter.c - GET /metrics, /healthz, /readyz on their own port (see
 * exporter.h). Answers are built in full by the callbacks before the
 * response is queued, so no request is suspended and there is nothing to
 * drain: stopping the daemon is enough.
 */
#include "exporter.h"
#include "listen.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct exporter {
	struct MHD_Daemon *mhd;
	int fd;
	exporter_callbacks cb;
	char address[300];
};

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *type,
                              void *text, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, text, mode);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	/* no idle keep-alive connection is left when the worker stops
	 * (libmicrohttpd 0.9.75 can crash answering one while it stops) */
	MHD_add_response_header(r, "Connection", "close");
	enum MHD_Result rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result json_line(struct MHD_Connection *c, unsigned status, const char *fmt,
                                 const char *arg)
{
	char buf[512];
	int n = snprintf(buf, sizeof buf, fmt, arg);
	return answer(c, status, "application/json", buf, n < 0 ? 0 : (size_t)n,
	              MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result get_metrics(exporter *e, struct MHD_Connection *c)
{
	char *text = NULL;
	size_t len = 0;
	if (e->cb.metrics(&text, &len, e->cb.userdata) != 0)
		return json_line(c, 500, "{\"error\":\"%s\",\"status\":500}\n", "metrics text too big");
	return answer(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len,
	              MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **state)
{
	exporter *e = cls;
	(void)version, (void)upload, (void)state;
	if (*upload_len) /* a body on a GET: ignore it */
		return *upload_len = 0, MHD_YES;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return json_line(c, 405, "{\"error\":\"%s only answers GET\",\"status\":405}\n", url);
	if (!strcmp(url, "/metrics"))
		return get_metrics(e, c);
	if (!strcmp(url, "/healthz"))
		return json_line(c, 200, "{\"status\":\"%s\"}\n", "ok");
	if (!strcmp(url, "/readyz")) {
		const char *why = "not ready";
		if (e->cb.ready(&why, e->cb.userdata))
			return json_line(c, 200, "{\"status\":\"%s\"}\n", "ready");
		return json_line(c, 503, "{\"status\":\"not ready\",\"reason\":\"%s\"}\n", why);
	}
	return json_line(c, 404, "{\"error\":\"no route %s (this port serves /metrics, /healthz, "
	                 "/readyz)\",\"status\":404}\n", url);
}

int exporter_start(exporter **out, const char *addr, const char *option,
                   const exporter_callbacks *cb, char *err, size_t errlen)
{
	*out = NULL;
	exporter *e = calloc(1, sizeof *e);
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	e->cb = *cb;
	if (listen_open(addr, option, &e->fd, e->address, sizeof e->address, err, errlen)) {
		free(e);
		return -1;
	}
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC;
	if (e->address[0] == '[')
		flags |= MHD_USE_IPv6;
	e->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, e,
	                          MHD_OPTION_LISTEN_SOCKET, e->fd,
	                          MHD_OPTION_CONNECTION_LIMIT, 64u,
	                          MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	if (!e->mhd) {
		snprintf(err, errlen, "%s: libmicrohttpd did not start on %s", option, e->address);
		close(e->fd);
		free(e);
		return -1;
	}
	*out = e;
	return 0;
}

const char *exporter_address(const exporter *e)
{
	return e->address;
}

void exporter_free(exporter *e)
{
	if (!e)
		return;
	MHD_stop_daemon(e->mhd);
	close(e->fd);
	free(e);
}
