/* SPDX-License-Identifier: MIT */
/*
 * server.c - the live view's HTTP server on libmicrohttpd (docs/live.md):
 * its lifetime, the checks every request passes, routing and the page's
 * files.  The endpoints are in api.c and events.c, shared pieces in http.c.
 *
 * Threads: libmicrohttpd runs one thread per connection (bounded by
 * max_conns); a handler may block on its own connection's thread, which is
 * how /events waits for the next tick and /debug/pprof/profile for the end
 * of its window.  Every wait is on `wake` with a deadline, so st_live_stop()
 * ends them all at once.
 *
 *   connection thread                          engine
 *   -----------------                          ------
 *   st_snap_acquire() ----- reads only ------> published snapshot (RCU)
 *   cache: encode once per (version, params) -> shared blob (refcounted)
 *   send the blob to the client; a slow client holds one reference
 *
 * Rules:
 *   1. The server takes no lock that ingest takes: it reads acquired
 *      snapshots and st_engine_stats() (the merger's lock, never a writer's).
 *   2. What a client costs is bounded: one connection slot, one blob
 *      reference, a request body of at most max_body bytes (413 past it).
 *      An /events client still reading an event sse_slow_ms after a newer
 *      one exists is dropped; one that stops reading altogether is closed
 *      by the idle timeout (keep-alives keep healthy clients active).
 *   3. A request must arrive whole within request_timeout_s (deadline.c):
 *      a client trickling its headers or body cannot keep a slot; once
 *      received, long answers (/events, pprof windows) are not limited.
 *   4. Requests are checked before routing: Host must name this server when
 *      it listens on loopback (DNS rebinding), the bearer token when one is
 *      set, and a state-changing request with a foreign Origin (or
 *      Sec-Fetch-Site: cross-site) gets 403.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "assets.h"
#include "http.h"

void st_live_opts_init(struct st_live_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
	o->tick_ms = 200;
	o->max_conns = 64;
	o->timeout_s = 30;
	o->max_body = 64 << 10;
	o->sse_slow_ms = 5000;
	o->keepalive_ms = 15000;
	o->events_min_fraction = 0.001;
}


/* ------------------------------------------------------------ checks */

/* Constant-time comparison of the token (its length is not secret). */
static bool token_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;
	for (size_t i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return !d;
}

static bool host_ok(struct st_live *l, const char *host)
{
	if (!l->loopback)
		return true; /* a token guards it; names are the user's */
	if (!host)
		return false;
	for (int i = 0; i < NHOSTS; i++)
		if (l->hosts[i][0] && !strcasecmp(host, l->hosts[i]))
			return true;
	return false;
}

/* Origin of a state-changing request: absent (not a browser, or a
 * same-origin GET) or this server. */
static bool origin_ok(struct st_live *l, struct MHD_Connection *c)
{
	const char *sfs = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
	if (sfs && !strcasecmp(sfs, "cross-site"))
		return false;
	const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	if (!origin)
		return true;
	if (strncasecmp(origin, "http://", 7))
		return false;
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	return host && !strcasecmp(origin + 7, host) && host_ok(l, host);
}

/* 0 = go on, else the request was answered (a refusal). */
static int check_request(struct st_live *l, struct MHD_Connection *c, const char *method,
			 enum MHD_Result *ret)
{
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	if (!host_ok(l, host)) {
		*ret = st_live_reply_text(c, MHD_HTTP_FORBIDDEN, NULL, NULL,
				  "forbidden: Host header '%.64s' does not name this server",
				  host ? host : "");
		return 1;
	}
	if (l->token) {
		const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
		const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
		bool ok = (auth && !strncasecmp(auth, "Bearer ", 7) && token_eq(auth + 7, l->token)) ||
			  (q && token_eq(q, l->token));
		if (!ok) {
			*ret = st_live_reply_text(c, MHD_HTTP_UNAUTHORIZED, "WWW-Authenticate", "Bearer",
					  "unauthorized: send 'Authorization: Bearer TOKEN'");
			return 1;
		}
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD") && !origin_ok(l, c)) {
		*ret = st_live_reply_text(c, MHD_HTTP_FORBIDDEN, NULL, NULL,
				  "forbidden: cross-site request (Origin is not this server)");
		return 1;
	}
	return 0;
}

/* --------------------------------------------------------- the page */

static enum MHD_Result asset(struct MHD_Connection *c, const unsigned char *data, size_t len,
			     const char *ctype)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	st_live_common_headers(r, "no-cache");
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Content-Security-Policy",
				"default-src 'none'; script-src 'self'; style-src 'self'; "
				"connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
				"form-action 'none'; frame-ancestors 'none'");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	return st_live_queue(c, MHD_HTTP_OK, r);
}

/* ------------------------------------------------------------- routing */

struct route {
	const char *path;
	const char *allow; /* methods, as the Allow header lists them */
};

static const struct route routes[] = {
	{ "/", "GET, HEAD" },
	{ "/app.js", "GET, HEAD" },
	{ "/app.css", "GET, HEAD" },
	{ "/events", "GET" },
	{ "/api/snapshot", "GET, HEAD" },
	{ "/api/status", "GET, HEAD" },
	{ "/debug/pprof/profile", "GET" },
	{ "/reset", "POST" },
	{ "/mark", "POST" },
	{ "/order", "GET, POST" },
};

static bool method_in(const char *method, const char *allow)
{
	size_t n = strlen(method);
	for (const char *p = allow; (p = strstr(p, method)); p += n)
		if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

static enum MHD_Result route(struct st_live *l, struct MHD_Connection *c, const char *url,
			     const char *method, struct st_live_req *q)
{
	enum MHD_Result ret;
	if (check_request(l, c, method, &ret))
		return ret;
	const struct route *rt = NULL;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (!strcmp(url, routes[i].path))
			rt = &routes[i];
	if (!rt)
		return st_live_reply_text(c, MHD_HTTP_NOT_FOUND, NULL, NULL, "not found: no endpoint %.128s", url);
	if (!method_in(method, rt->allow))
		return st_live_reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "Allow", rt->allow,
				  "method not allowed: %.16s %s (allowed: %s)", method, rt->path,
				  rt->allow);
	if (q->too_big)
		return st_live_reply_text(c, MHD_HTTP_CONTENT_TOO_LARGE, "Connection", "close",
				  "request body too large (limit %zu bytes)", l->o.max_body);
	if (!strcmp(rt->path, "/"))
		return asset(c, st_live_index_html, st_live_index_html_len, "text/html; charset=utf-8");
	if (!strcmp(rt->path, "/app.js"))
		return asset(c, st_live_app_js, st_live_app_js_len, "text/javascript; charset=utf-8");
	if (!strcmp(rt->path, "/app.css"))
		return asset(c, st_live_app_css, st_live_app_css_len, "text/css; charset=utf-8");
	if (!strcmp(rt->path, "/events"))
		return st_live_events(l, c);
	if (!strcmp(rt->path, "/api/snapshot"))
		return st_live_api_snapshot(l, c);
	if (!strcmp(rt->path, "/api/status"))
		return st_live_api_status(l, c);
	if (!strcmp(rt->path, "/debug/pprof/profile"))
		return st_live_pprof_profile(l, c);
	if (!strcmp(rt->path, "/reset"))
		return st_live_reset(l, c);
	if (!strcmp(rt->path, "/mark"))
		return st_live_mark(l, c);
	return st_live_order(l, c, method, q);
}

/* The request arrived whole: its deadline no longer applies (answering may
 * take long: /events, /debug/pprof windows). */
static struct st_live_conn *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

static enum MHD_Result received(struct st_live *l, struct MHD_Connection *c, const char *url,
				const char *method, struct st_live_req *q)
{
	st_live_conn_arm(&l->dl, conn_of(c), false);
	return route(l, c, url, method, q);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct st_live *l = cls;
	struct st_live_req *q = *con_cls;
	if (!q) {
		if (!(q = calloc(1, sizeof(*q))))
			return MHD_NO;
		*con_cls = q;
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		long len;
		if (cl && !st_live_whole_long(cl, 0, (long)l->o.max_body, &len)) {
			/* Announced too large (or unreadable): 413 now, before
			 * any of the body is read. */
			q->too_big = true;
			return received(l, c, url, method, q);
		}
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (q->too_big || q->len + n > l->o.max_body) {
			q->too_big = true;
			free(q->body);
			q->body = NULL;
			q->len = 0;
			return MHD_YES;
		}
		char *b = realloc(q->body, q->len + n + 1);
		if (!b)
			return MHD_NO;
		memcpy(b + q->len, upload, n);
		q->body = b;
		q->len += n;
		b[q->len] = '\0';
		return MHD_YES;
	}
	return received(l, c, url, method, q);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct st_live *l = cls;
	struct st_live_req *q = *con_cls;
	if (q) {
		free(q->body);
		free(q);
		*con_cls = NULL;
	}
	/* The next request on this connection has its own deadline. */
	st_live_conn_arm(&l->dl, conn_of(c), true);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct st_live *l = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		*socket_context = ci ? st_live_conn_open(&l->dl, ci->connect_fd) : NULL;
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		st_live_conn_close(&l->dl, *socket_context);
		*socket_context = NULL;
	}
}

/* ------------------------------------------------------------ lifetime */

static int parse_addr(const char *addr, unsigned port, struct sockaddr_storage *ss, bool *loopback)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*loopback = (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
		return AF_INET;
	}
	if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
		return AF_INET6;
	}
	return -1;
}

int st_live_addr_kind(const char *addr)
{
	struct sockaddr_storage ss;
	bool loopback;
	if (!addr || parse_addr(addr, 0, &ss, &loopback) < 0)
		return -EINVAL;
	return loopback;
}

struct st_live *st_live_start(struct st_engine *e, const struct st_live_opts *o)
{
	struct st_live_opts def;
	st_live_opts_init(&def);
	if (!o)
		o = &def;
	if (o->size < sizeof(*o) || o->metric >= st_engine_nmetrics(e) || o->port > 65535 ||
	    !o->tick_ms || !o->max_conns) {
		errno = EINVAL;
		return NULL;
	}
	struct st_live *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->e = e;
	l->o = *o;
	if (!l->o.addr)
		l->o.addr = "127.0.0.1";
	struct sockaddr_storage ss;
	int af = parse_addr(l->o.addr, o->port, &ss, &l->loopback);
	if (af < 0 || (o->token && !(l->token = strdup(o->token)))) {
		free(l);
		errno = af < 0 ? EINVAL : ENOMEM;
		return NULL;
	}
	/* A healthy /events client must not look idle: keep-alives come at
	 * least twice per idle timeout. */
	if (l->o.timeout_s && l->o.keepalive_ms > l->o.timeout_s * 500u)
		l->o.keepalive_ms = l->o.timeout_s * 500u;
	l->o.addr = NULL; /* not kept: the caller's string */
	l->o.token = NULL;
	st_live_cache_init(&l->cache, o->export);
	l->o.export = NULL; /* copied into the cache */
	int err = st_live_ring_start(&l->ring, e);
	if (err) {
		st_live_cache_fini(&l->cache);
		free(l->token);
		free(l);
		errno = -err;
		return NULL;
	}
	err = st_live_deadlines_start(&l->dl, o->request_timeout_s ? o->request_timeout_s
								  : o->timeout_s);
	if (err) {
		st_live_ring_stop(&l->ring);
		st_live_cache_fini(&l->cache);
		free(l->token);
		free(l);
		errno = -err;
		return NULL;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&l->mu, NULL);
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 (af == AF_INET6 ? MHD_USE_IPv6 : 0);
	l->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, l,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_conns,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->timeout_s,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 << 10),
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, l, MHD_OPTION_END);
	if (!l->d) {
		err = errno ? errno : EADDRINUSE;
		st_live_deadlines_stop(&l->dl);
		st_live_ring_stop(&l->ring);
		pthread_cond_destroy(&l->wake);
		pthread_mutex_destroy(&l->mu);
		st_live_cache_fini(&l->cache);
		free(l->token);
		free(l);
		errno = err;
		return NULL;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_BIND_PORT);
	l->port = di ? di->port : o->port;
	char a6[64];
	snprintf(l->hosts[0], sizeof(l->hosts[0]), "localhost:%u", l->port);
	if (af == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, a6, sizeof(a6));
		snprintf(l->hosts[1], sizeof(l->hosts[1]), "[%s]:%u", a6, l->port);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, a6, sizeof(a6));
		snprintf(l->hosts[1], sizeof(l->hosts[1]), "%s:%u", a6, l->port);
	}
	return l;
}

unsigned st_live_port(const struct st_live *l)
{
	return l->port;
}

void st_live_stop(struct st_live *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->stopping = true;
	pthread_cond_broadcast(&l->wake);
	pthread_mutex_unlock(&l->mu);
	MHD_stop_daemon(l->d);
	st_live_deadlines_stop(&l->dl);
	st_live_ring_stop(&l->ring);
	st_live_cache_fini(&l->cache);
	pthread_cond_destroy(&l->wake);
	pthread_mutex_destroy(&l->mu);
	free(l->token);
	free(l);
}

