/* SPDX-License-Identifier: MIT */
/*
 * server.c - the live view's HTTP server on libmicrohttpd (docs/live.md).
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
 *   3. Requests are checked before routing: Host must name this server when
 *      it listens on loopback (DNS rebinding), the bearer token when one is
 *      set, and a state-changing request with a foreign Origin (or
 *      Sec-Fetch-Site: cross-site) gets 403.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "assets.h"
#include "live.h"
#include "server.h"
#include "shardtrie_export.h"

#define NHOSTS 3

struct st_live {
	struct st_engine *e;
	struct st_live_opts o;
	char *token;
	struct MHD_Daemon *d;
	unsigned port;
	bool loopback;
	char hosts[NHOSTS][96];  /* Host values naming us (loopback only) */
	struct st_live_cache cache;
	pthread_mutex_t mu;      /* protects stopping; `wake` waits on it */
	pthread_cond_t wake;     /* broadcast by st_live_stop() */
	bool stopping;
	/* Figures for /api/status (atomic, relaxed: counters only). */
	uint64_t sse_clients, sse_dropped, win_started, win_active, win_done;
};

/* A request's state across the handler's calls: its body so far. */
struct req {
	char *body;
	size_t len;
	bool too_big;
};

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

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void count(uint64_t *c, int d)
{
	__atomic_add_fetch(c, (uint64_t)(int64_t)d, __ATOMIC_RELAXED);
}

static uint64_t load(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* Wait on `wake` until the monotonic time `until_ms` or a stop: true when
 * stopping. */
static bool wait_until(struct st_live *l, uint64_t until_ms)
{
	struct timespec ts = { (time_t)(until_ms / 1000), (long)(until_ms % 1000) * 1000000 };
	pthread_mutex_lock(&l->mu);
	while (!l->stopping && now_ms() < until_ms)
		if (pthread_cond_timedwait(&l->wake, &l->mu, &ts) == ETIMEDOUT)
			break;
	bool stop = l->stopping;
	pthread_mutex_unlock(&l->mu);
	return stop;
}

static bool stopping(struct st_live *l)
{
	pthread_mutex_lock(&l->mu);
	bool s = l->stopping;
	pthread_mutex_unlock(&l->mu);
	return s;
}

/* ------------------------------------------------------------ replies */

/* Headers of every answer; cache is its Cache-Control. */
static void common_headers(struct MHD_Response *r, const char *cache)
{
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Cache-Control", cache);
}

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r)
{
	if (!r)
		return MHD_NO;
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* A one-line text/plain answer; extra headers as name, value pairs, NULL
 * ended. */
static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *h1,
				  const char *v1, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *h1,
				  const char *v1, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(msg) - 2)
		n = sizeof(msg) - 2;
	msg[n++] = '\n';
	struct MHD_Response *r = MHD_create_response_from_buffer(n, msg, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	common_headers(r, "no-store");
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	if (h1)
		MHD_add_response_header(r, h1, v1);
	return queue(c, status, r);
}

static void blob_free_cb(void *cls)
{
	st_live_blob_put(cls);
}

/* Answer with blob b (the reply takes the caller's reference). */
static struct MHD_Response *blob_response(struct st_live_blob *b, const char *ctype,
					   const char *cache)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer_with_free_callback_cls(b->len, b->data, blob_free_cb, b);
	if (!r) {
		st_live_blob_put(b);
		return NULL;
	}
	common_headers(r, cache);
	MHD_add_response_header(r, "Content-Type", ctype);
	return r;
}

static const char *content_type(int fmt)
{
	switch (fmt) {
	case ST_FMT_FOLDED: return "text/plain; charset=utf-8";
	case ST_FMT_PPROF: return "application/octet-stream";
	case ST_FMT_SVG: return "image/svg+xml";
	case ST_FMT_HTML: return "text/html; charset=utf-8";
	default: return "application/json";
	}
}

/* Headers of an exported profile: downloads for binary, and SVG/HTML (which
 * carry scripts) sandboxed to an opaque origin, so that not even a bug in
 * their escaping could reach /reset with this origin's rights. */
static void format_headers(struct MHD_Response *r, int fmt)
{
	if (fmt == ST_FMT_PPROF)
		MHD_add_response_header(r, "Content-Disposition", "attachment; filename=\"profile\"");
	if (fmt == ST_FMT_SVG || fmt == ST_FMT_HTML)
		MHD_add_response_header(r, "Content-Security-Policy", "sandbox allow-scripts");
}

/* ------------------------------------------------------- query strings */

enum {
	P_FORMAT = 1 << 0,
	P_METRIC = 1 << 1,
	P_MIN_FRACTION = 1 << 2,
	P_MAX_NODES = 1 << 3,
	P_SECONDS = 1 << 4,
};

struct params {
	struct st_live *l;
	unsigned allowed; /* P_* this endpoint takes */
	int fmt;
	unsigned metric;
	double min_fraction;
	int64_t max_nodes;
	long seconds;
	char err[256];    /* the first bad parameter, or "" */
};

static bool whole_long(const char *v, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (!*v || *end || errno || x < lo || x > hi)
		return false;
	*out = x;
	return true;
}

static enum MHD_Result take_param(void *cls, enum MHD_ValueKind kind, const char *key,
				  const char *val)
{
	struct params *p = cls;
	long x;
	if (p->err[0])
		return MHD_NO;
	if (!val)
		val = "";
	if (!strcmp(key, "token"))
		return MHD_YES; /* checked before routing */
	if (!strcmp(key, "format") && (p->allowed & P_FORMAT)) {
		p->fmt = st_format_from_name(val);
		if (p->fmt < 0)
			snprintf(p->err, sizeof(p->err), "format: unknown format '%.64s'", val);
	} else if (!strcmp(key, "metric") && (p->allowed & P_METRIC)) {
		int m = st_engine_metric_index(p->l->e, val);
		if (m < 0 && whole_long(val, 0, (long)st_engine_nmetrics(p->l->e) - 1, &x))
			m = (int)x;
		if (m < 0)
			snprintf(p->err, sizeof(p->err), "metric: no metric '%.64s'", val);
		else
			p->metric = (unsigned)m;
	} else if (!strcmp(key, "min_fraction") && (p->allowed & P_MIN_FRACTION)) {
		char *end;
		double d = strtod(val, &end);
		if (!*val || *end || !(d >= 0 && d <= 1))
			snprintf(p->err, sizeof(p->err), "min_fraction: wants a number in [0,1], got '%.64s'",
				 val);
		else
			p->min_fraction = d;
	} else if (!strcmp(key, "max_nodes") && (p->allowed & P_MAX_NODES)) {
		if (!whole_long(val, -1, 1L << 40, &x))
			snprintf(p->err, sizeof(p->err), "max_nodes: wants an integer >= -1, got '%.64s'", val);
		else
			p->max_nodes = x;
	} else if (!strcmp(key, "seconds") && (p->allowed & P_SECONDS)) {
		if (!whole_long(val, 1, 3600, &x))
			snprintf(p->err, sizeof(p->err), "seconds: wants an integer in [1,3600], got '%.64s'",
				 val);
		else
			p->seconds = x;
	} else {
		snprintf(p->err, sizeof(p->err), "unknown parameter '%.64s'", key);
	}
	return p->err[0] ? MHD_NO : MHD_YES;
}

/* Parse the query into *p; false (p->err set) on a bad one. */
static bool get_params(struct st_live *l, struct MHD_Connection *c, unsigned allowed, struct params *p)
{
	memset(p, 0, sizeof(*p));
	p->l = l;
	p->allowed = allowed;
	p->fmt = ST_FMT_JSON;
	p->metric = l->o.metric;
	p->max_nodes = -1;
	p->seconds = 30;
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, take_param, p);
	return !p->err[0];
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
		*ret = reply_text(c, MHD_HTTP_FORBIDDEN, NULL, NULL,
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
			*ret = reply_text(c, MHD_HTTP_UNAUTHORIZED, "WWW-Authenticate", "Bearer",
					  "unauthorized: send 'Authorization: Bearer TOKEN'");
			return 1;
		}
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD") && !origin_ok(l, c)) {
		*ret = reply_text(c, MHD_HTTP_FORBIDDEN, NULL, NULL,
				  "forbidden: cross-site request (Origin is not this server)");
		return 1;
	}
	return 0;
}

/* --------------------------------------------------------- endpoints */

static enum MHD_Result asset(struct MHD_Connection *c, const unsigned char *data, size_t len,
			     const char *ctype)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	common_headers(r, "no-cache");
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Content-Security-Policy",
				"default-src 'none'; script-src 'self'; style-src 'self'; "
				"connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
				"form-action 'none'; frame-ancestors 'none'");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	return queue(c, MHD_HTTP_OK, r);
}

static enum MHD_Result api_snapshot(struct st_live *l, struct MHD_Connection *c)
{
	struct params p;
	if (!get_params(l, c, P_FORMAT | P_METRIC | P_MIN_FRACTION | P_MAX_NODES, &p))
		return reply_text(c, MHD_HTTP_BAD_REQUEST, NULL, NULL, "bad request: %s", p.err);
	struct st_snap *s = st_snap_acquire(l->e);
	uint64_t v = st_snap_version(s);
	char etag[40];
	snprintf(etag, sizeof(etag), "\"v%llu\"", (unsigned long long)v);
	const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
	if (inm && (strstr(inm, etag) || !strcmp(inm, "*"))) {
		st_snap_release(s);
		struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (!r)
			return MHD_NO;
		common_headers(r, "no-cache");
		MHD_add_response_header(r, "ETag", etag);
		return queue(c, MHD_HTTP_NOT_MODIFIED, r);
	}
	struct st_live_key k = { v, p.fmt, p.metric, p.min_fraction, p.max_nodes };
	struct st_live_blob *b;
	int err = st_live_cache_get(&l->cache, s, &k, &b);
	st_snap_release(s);
	if (err)
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL,
				  "cannot encode the snapshot: %s", strerror(-err));
	struct MHD_Response *r = blob_response(b, content_type(p.fmt), "no-cache");
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "ETag", etag);
	format_headers(r, p.fmt);
	return queue(c, MHD_HTTP_OK, r);
}

static enum MHD_Result api_status(struct st_live *l, struct MHD_Connection *c)
{
	struct st_stats st;
	st_engine_stats(l->e, &st);
	struct st_snap *s = st_snap_acquire(l->e);
	json_t *tot = json_array(), *names = json_array();
	for (unsigned m = 0; m < st_snap_nmetrics(s); m++) {
		json_array_append_new(tot, json_integer((json_int_t)st_snap_total(s, ST_NODE_ROOT, m)));
		json_array_append_new(names, json_string(st_engine_metric(l->e, m)->name));
	}
	pthread_mutex_lock(&l->cache.mu);
	uint64_t encodes = l->cache.encodes, cached = 0;
	for (unsigned i = 0; i < ST_LIVE_CACHE_SLOTS; i++)
		cached += l->cache.slot[i].blob ? l->cache.slot[i].blob->len : 0;
	pthread_mutex_unlock(&l->cache.mu);
	json_t *j = json_pack(
		"{s:I,s:I,s:I,s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I,s:I}}",
		"version", (json_int_t)st_snap_version(s), "generation",
		(json_int_t)st_snap_generation(s), "nodes", (json_int_t)st_snap_node_count(s),
		"total", tot, "metrics", names, "ingested", (json_int_t)st.ingested, "dropped",
		(json_int_t)st.dropped, "frames", (json_int_t)st.frames, "sse_clients",
		(json_int_t)load(&l->sse_clients), "sse_dropped", (json_int_t)load(&l->sse_dropped),
		"windows_started", (json_int_t)load(&l->win_started), "windows_active",
		(json_int_t)load(&l->win_active), "windows_done", (json_int_t)load(&l->win_done),
		"encodes", (json_int_t)encodes, "memory", "snapshot", (json_int_t)st.mem_snapshot,
		"master", (json_int_t)st.mem_master, "shards", (json_int_t)st.mem_shards, "intern",
		(json_int_t)st.mem_intern, "cache", (json_int_t)cached);
	st_snap_release(s);
	char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!txt)
		return MHD_NO;
	size_t n = strlen(txt);
	struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(n, txt, free);
	if (!r) {
		free(txt);
		return MHD_NO;
	}
	common_headers(r, "no-store");
	MHD_add_response_header(r, "Content-Type", "application/json");
	return queue(c, MHD_HTTP_OK, r);
}

/* POST /reset: a new baseline; answers the (empty) snapshot as ior does. */
static enum MHD_Result do_reset(struct st_live *l, struct MHD_Connection *c)
{
	int err = l->o.hooks.reset ? l->o.hooks.reset(l->o.hooks.arg) : 0;
	if (!l->o.hooks.reset)
		st_reset(l->e);
	if (err)
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, "reset failed: %s",
				  strerror(-err));
	struct st_snap *s = st_snap_acquire(l->e);
	struct st_live_key k = { st_snap_version(s), ST_FMT_JSON, l->o.metric,
				 l->o.events_min_fraction, -1 };
	struct st_live_blob *b;
	err = st_live_cache_get(&l->cache, s, &k, &b);
	st_snap_release(s);
	if (err)
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL,
				  "cannot encode the snapshot: %s", strerror(-err));
	return queue(c, MHD_HTTP_OK, blob_response(b, "application/json", "no-store"));
}

static enum MHD_Result do_order(struct st_live *l, struct MHD_Connection *c, const char *method,
				const struct req *q)
{
	if (!l->o.hooks.order_get)
		return reply_text(c, MHD_HTTP_NOT_FOUND, NULL, NULL, "no field order for this source");
	if (!strcmp(method, "POST")) {
		json_error_t je;
		json_t *j = json_loadb(q->body ? q->body : "", q->len, JSON_REJECT_DUPLICATES, &je);
		json_t *f = j ? json_object_get(j, "fields") : NULL;
		if (!j || !json_is_object(j) || !json_is_array(f) || json_object_size(j) != 1) {
			json_decref(j);
			return reply_text(c, MHD_HTTP_BAD_REQUEST, NULL, NULL,
					  "bad request: want {\"fields\":[\"name\",...]}");
		}
		size_t n = json_array_size(f);
		const char **names = calloc(n ? n : 1, sizeof(*names));
		const char *why = NULL;
		int err = names ? 0 : -ENOMEM;
		for (size_t i = 0; !err && i < n; i++)
			if (!(names[i] = json_string_value(json_array_get(f, i)))) {
				err = -EINVAL;
				why = "fields must be strings";
			}
		if (!err)
			err = l->o.hooks.order_set ? l->o.hooks.order_set(l->o.hooks.arg, names, n, &why)
						   : -EINVAL;
		free(names);
		json_decref(j);
		if (err == -EINVAL)
			return reply_text(c, MHD_HTTP_BAD_REQUEST, NULL, NULL, "bad request: %s",
					  why ? why : "this source's field order cannot change");
		if (err)
			return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL,
					  "order failed: %s", strerror(-err));
	}
	char *txt = l->o.hooks.order_get(l->o.hooks.arg);
	if (!txt)
		return MHD_NO;
	struct MHD_Response *r =
		MHD_create_response_from_buffer_with_free_callback(strlen(txt), txt, free);
	if (!r) {
		free(txt);
		return MHD_NO;
	}
	common_headers(r, "no-store");
	MHD_add_response_header(r, "Content-Type", "application/json");
	return queue(c, MHD_HTTP_OK, r);
}

/*
 * GET /debug/pprof/profile: the profile of the next `seconds`, the
 * difference of the snapshot published now and the one published when the
 * window ends.  Blocks this connection's thread (and only it) meanwhile.
 * The window starts when win_started counts it and ends before win_done
 * does (tests wait on those through /api/status).
 */
static enum MHD_Result pprof_profile(struct st_live *l, struct MHD_Connection *c)
{
	struct params p;
	if (!get_params(l, c, P_SECONDS | P_FORMAT | P_METRIC, &p))
		return reply_text(c, MHD_HTTP_BAD_REQUEST, "X-Go-Pprof", "1", "bad request: %s", p.err);
	if (!MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format"))
		p.fmt = ST_FMT_PPROF;
	struct st_snap *a = st_snap_acquire(l->e);
	count(&l->win_active, 1);
	count(&l->win_started, 1);
	bool stop = wait_until(l, now_ms() + (uint64_t)p.seconds * 1000);
	struct st_snap *b = st_snap_acquire(l->e);
	count(&l->win_active, -1);
	if (stop) {
		st_snap_release(a);
		st_snap_release(b);
		count(&l->win_done, 1);
		return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "X-Go-Pprof", "1",
				  "server stopping: the window did not end");
	}
	struct st_export_opts o;
	st_export_opts_init(&o);
	o.metric = p.metric;
	o.duration_ns = (uint64_t)p.seconds * 1000000000u;
	struct st_live_blob *blob = NULL;
	int err = st_live_delta_export(a, b, p.fmt, &o, &blob);
	st_snap_release(a);
	st_snap_release(b);
	count(&l->win_done, 1);
	if (err)
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "X-Go-Pprof", "1",
				  "cannot write the profile: %s", strerror(-err));
	struct MHD_Response *r = blob_response(blob, content_type(p.fmt), "no-store");
	if (!r)
		return MHD_NO;
	format_headers(r, p.fmt);
	return queue(c, MHD_HTTP_OK, r);
}

/* ------------------------------------------------------------ /events */

struct sse {
	struct st_live *l;
	struct st_live_key key;   /* version = the last one sent */
	bool started;
	struct st_live_blob *blob; /* the event being sent, or NULL */
	const char *p;             /* its unsent bytes (or a static string's) */
	size_t n;
	uint64_t event_ms;        /* when the current event was taken */
	uint64_t last_ms;         /* when the last bytes were handed over */
};

static const char sse_retry[] = "retry: 2000\n\n";
static const char sse_keepalive[] = ": keep-alive\n\n";

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *s = cls;
	struct st_live *l = s->l;
	for (;;) {
		if (s->n) {
			if (s->blob && s->p != s->blob->data && l->o.sse_slow_ms &&
			    now_ms() - s->event_ms > l->o.sse_slow_ms) {
				/* Too slow: drop it if a newer event is waiting. */
				struct st_snap *snap = st_snap_acquire(l->e);
				bool newer = st_snap_version(snap) != s->key.version;
				st_snap_release(snap);
				if (newer) {
					count(&l->sse_dropped, 1);
					return MHD_CONTENT_READER_END_WITH_ERROR;
				}
			}
			size_t k = s->n < max ? s->n : max;
			memcpy(buf, s->p, k);
			s->p += k;
			s->n -= k;
			s->last_ms = now_ms();
			if (!s->n && s->blob) {
				st_live_blob_put(s->blob);
				s->blob = NULL;
			}
			return (ssize_t)k;
		}
		if (stopping(l))
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (!s->started) {
			s->started = true;
			s->p = sse_retry;
			s->n = sizeof(sse_retry) - 1;
			continue;
		}
		struct st_snap *snap = st_snap_acquire(l->e);
		uint64_t v = st_snap_version(snap);
		if (v != s->key.version) {
			struct st_live_key k = s->key;
			k.version = v;
			int err = st_live_cache_get(&l->cache, snap, &k, &s->blob);
			st_snap_release(snap);
			if (err)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			s->key.version = v;
			s->p = s->blob->data;
			s->n = s->blob->len;
			s->event_ms = now_ms();
			continue;
		}
		st_snap_release(snap);
		uint64_t now = now_ms();
		if (l->o.keepalive_ms && now - s->last_ms >= l->o.keepalive_ms) {
			s->p = sse_keepalive;
			s->n = sizeof(sse_keepalive) - 1;
			continue;
		}
		/* At most one event per tick: the next look is a tick after this
		 * event was taken. */
		uint64_t next = s->event_ms + l->o.tick_ms;
		if (next <= now)
			next = now + l->o.tick_ms;
		wait_until(l, next);
	}
}

static void sse_free(void *cls)
{
	struct sse *s = cls;
	st_live_blob_put(s->blob);
	count(&s->l->sse_clients, -1);
	free(s);
}

static enum MHD_Result events(struct st_live *l, struct MHD_Connection *c)
{
	struct params p;
	if (!get_params(l, c, P_METRIC | P_MIN_FRACTION, &p))
		return reply_text(c, MHD_HTTP_BAD_REQUEST, NULL, NULL, "bad request: %s", p.err);
	if (!MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "min_fraction"))
		p.min_fraction = l->o.events_min_fraction;
	struct sse *s = calloc(1, sizeof(*s));
	if (!s)
		return MHD_NO;
	/* Version 0 is never published: the first look always sends the
	 * current snapshot, also to a client reconnecting with Last-Event-ID. */
	*s = (struct sse){ .l = l, .key = { 0, ST_LIVE_FMT_SSE, p.metric, p.min_fraction, -1 },
			   .last_ms = now_ms() };
	count(&l->sse_clients, 1);
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 << 10,
								   sse_read, s, sse_free);
	if (!r) {
		sse_free(s);
		return MHD_NO;
	}
	common_headers(r, "no-store");
	MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	return queue(c, MHD_HTTP_OK, r);
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
			     const char *method, struct req *q)
{
	enum MHD_Result ret;
	if (check_request(l, c, method, &ret))
		return ret;
	const struct route *rt = NULL;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (!strcmp(url, routes[i].path))
			rt = &routes[i];
	if (!rt)
		return reply_text(c, MHD_HTTP_NOT_FOUND, NULL, NULL, "not found: no endpoint %.128s", url);
	if (!method_in(method, rt->allow))
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "Allow", rt->allow,
				  "method not allowed: %.16s %s (allowed: %s)", method, rt->path,
				  rt->allow);
	if (q->too_big)
		return reply_text(c, MHD_HTTP_CONTENT_TOO_LARGE, "Connection", "close",
				  "request body too large (limit %zu bytes)", l->o.max_body);
	if (!strcmp(rt->path, "/"))
		return asset(c, st_live_index_html, st_live_index_html_len, "text/html; charset=utf-8");
	if (!strcmp(rt->path, "/app.js"))
		return asset(c, st_live_app_js, st_live_app_js_len, "text/javascript; charset=utf-8");
	if (!strcmp(rt->path, "/app.css"))
		return asset(c, st_live_app_css, st_live_app_css_len, "text/css; charset=utf-8");
	if (!strcmp(rt->path, "/events"))
		return events(l, c);
	if (!strcmp(rt->path, "/api/snapshot"))
		return api_snapshot(l, c);
	if (!strcmp(rt->path, "/api/status"))
		return api_status(l, c);
	if (!strcmp(rt->path, "/debug/pprof/profile"))
		return pprof_profile(l, c);
	if (!strcmp(rt->path, "/reset"))
		return do_reset(l, c);
	return do_order(l, c, method, q);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct st_live *l = cls;
	struct req *q = *con_cls;
	if (!q) {
		if (!(q = calloc(1, sizeof(*q))))
			return MHD_NO;
		*con_cls = q;
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		long len;
		if (cl && !whole_long(cl, 0, (long)l->o.max_body, &len)) {
			/* Announced too large (or unreadable): 413 now, before
			 * any of the body is read. */
			q->too_big = true;
			return route(l, c, url, method, q);
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
	return route(l, c, url, method, q);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct req *q = *con_cls;
	if (q) {
		free(q->body);
		free(q);
		*con_cls = NULL;
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
	st_live_cache_init(&l->cache);
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
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, l, MHD_OPTION_END);
	if (!l->d) {
		int err = errno ? errno : EADDRINUSE;
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
	st_live_cache_fini(&l->cache);
	pthread_cond_destroy(&l->wake);
	pthread_mutex_destroy(&l->mu);
	free(l->token);
	free(l);
}
