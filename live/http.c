/* SPDX-License-Identifier: MIT */
/*
 * http.c - the pieces every endpoint uses: the headers each answer carries,
 * one-line text/plain errors, blobs sent without a copy, query parameters
 * (unknown names are errors, so a typo is a 400, not a silent default), and
 * the waits that st_live_stop() ends at once.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "shardtrie_export.h"

uint64_t st_live_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void st_live_count(uint64_t *c, int d)
{
	__atomic_add_fetch(c, (uint64_t)(int64_t)d, __ATOMIC_RELAXED);
}

uint64_t st_live_load(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* Wait on `wake` until the monotonic time `until_ms` or a stop: true when
 * stopping. */
bool st_live_wait_until(struct st_live *l, uint64_t until_ms)
{
	struct timespec ts = { (time_t)(until_ms / 1000), (long)(until_ms % 1000) * 1000000 };
	pthread_mutex_lock(&l->mu);
	while (!l->stopping && st_live_now_ms() < until_ms)
		if (pthread_cond_timedwait(&l->wake, &l->mu, &ts) == ETIMEDOUT)
			break;
	bool stop = l->stopping;
	pthread_mutex_unlock(&l->mu);
	return stop;
}

bool st_live_stopping(struct st_live *l)
{
	pthread_mutex_lock(&l->mu);
	bool s = l->stopping;
	pthread_mutex_unlock(&l->mu);
	return s;
}

/* ------------------------------------------------------------ replies */

/* Headers of every answer; cache is its Cache-Control. */
void st_live_common_headers(struct MHD_Response *r, const char *cache)
{
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Cache-Control", cache);
}

enum MHD_Result st_live_queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r)
{
	if (!r)
		return MHD_NO;
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* A one-line text/plain answer. */
enum MHD_Result st_live_reply_text(struct MHD_Connection *c, unsigned status, const char *h1,
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
	st_live_common_headers(r, "no-store");
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	if (h1)
		MHD_add_response_header(r, h1, v1);
	return st_live_queue(c, status, r);
}

static void blob_free_cb(void *cls)
{
	st_live_blob_put(cls);
}

/* Answer with blob b (the reply takes the caller's reference). */
struct MHD_Response *st_live_blob_response(struct st_live_blob *b, const char *ctype,
					   const char *cache)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer_with_free_callback_cls(b->len, b->data, blob_free_cb, b);
	if (!r) {
		st_live_blob_put(b);
		return NULL;
	}
	st_live_common_headers(r, cache);
	MHD_add_response_header(r, "Content-Type", ctype);
	return r;
}

const char *st_live_content_type(int fmt)
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
void st_live_format_headers(struct MHD_Response *r, int fmt)
{
	if (fmt == ST_FMT_PPROF)
		MHD_add_response_header(r, "Content-Disposition", "attachment; filename=\"profile\"");
	if (fmt == ST_FMT_SVG || fmt == ST_FMT_HTML)
		MHD_add_response_header(r, "Content-Security-Policy", "sandbox allow-scripts");
}

/* ------------------------------------------------------- query strings */

bool st_live_whole_long(const char *v, long lo, long hi, long *out)
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
	struct st_live_params *p = cls;
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
		if (m < 0 && st_live_whole_long(val, 0, (long)st_engine_nmetrics(p->l->e) - 1, &x))
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
		if (!st_live_whole_long(val, -1, 1L << 40, &x))
			snprintf(p->err, sizeof(p->err), "max_nodes: wants an integer >= -1, got '%.64s'", val);
		else
			p->max_nodes = x;
	} else if (!strcmp(key, "window") && (p->allowed & P_WINDOW)) {
		st_live_window_parse(val, &p->window, p->err, sizeof(p->err));
	} else if (!strcmp(key, "seconds") && (p->allowed & P_SECONDS)) {
		if (!st_live_whole_long(val, 1, 3600, &x))
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
bool st_live_get_params(struct st_live *l, struct MHD_Connection *c, unsigned allowed, struct st_live_params *p)
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

