/* SPDX-License-Identifier: MIT */
/*
 * api.c - the request/answer endpoints: /api/snapshot (any format, ETag and
 * 304, through the encode-once cache), /api/status, /debug/pprof/profile
 * (a window: the difference of two snapshots, st_export_delta()), POST /mark, and
 * ior's /reset and /order through the source's hooks; /api/status adds the
 * source's figures (hooks.status_get: members it does not set itself).  window= on
 * /api/snapshot differences the current snapshot against a base kept by
 * window.c; the answer is cached under (version, base version, ...).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "shardtrie_export.h"

/* 200 with the JSON text txt (malloc'd; freed by MHD after sending, or
 * here when the response cannot be made).  NULL txt: MHD_NO (no memory). */
static enum MHD_Result reply_json_owned(struct MHD_Connection *c, char *txt)
{
	if (!txt)
		return MHD_NO;
	struct MHD_Response *r =
		MHD_create_response_from_buffer_with_free_callback(strlen(txt), txt, free);
	if (!r) {
		free(txt);
		return MHD_NO;
	}
	st_live_common_headers(r, "no-store");
	MHD_add_response_header(r, "Content-Type", "application/json");
	return st_live_queue(c, MHD_HTTP_OK, r);
}

/* The window's base for this request (NULL: everything) and its span in
 * ms, for now. */
static struct st_live_held *window_base(struct st_live *l, const struct st_live_window *w,
					uint64_t *span_ms)
{
	uint64_t now = st_live_now_ms(), base_ms;
	struct st_live_held *h = st_live_ring_base(&l->ring, w, now, &base_ms);
	*span_ms = now > base_ms ? now - base_ms : 0;
	return h;
}

enum MHD_Result st_live_api_snapshot(struct st_live *l, struct MHD_Connection *c)
{
	struct st_live_params p;
	if (!st_live_get_params(l, c, P_FORMAT | P_METRIC | P_MIN_FRACTION | P_MAX_NODES | P_WINDOW,
				&p))
		return st_live_reply_text(c, MHD_HTTP_BAD_REQUEST, NULL, NULL, "bad request: %s", p.err);
	/* The base first: the current snapshot is then at least as new. */
	bool win = p.window.kind != ST_LIVE_WIN_ALL;
	uint64_t span_ms = 0;
	struct st_live_held *h = win ? window_base(l, &p.window, &span_ms) : NULL;
	uint64_t base = h ? st_snap_version(h->s) : 0;
	struct st_snap *s = st_snap_acquire(l->e);
	uint64_t v = st_snap_version(s);
	char etag[48], from[24], secs[32];
	if (win)
		snprintf(etag, sizeof(etag), "\"v%llu-%llu\"", (unsigned long long)v,
			 (unsigned long long)base);
	else
		snprintf(etag, sizeof(etag), "\"v%llu\"", (unsigned long long)v);
	snprintf(from, sizeof(from), "%llu", (unsigned long long)base);
	snprintf(secs, sizeof(secs), "%llu.%03u", (unsigned long long)(span_ms / 1000),
		 (unsigned)(span_ms % 1000));
	const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
	struct MHD_Response *r;
	unsigned status;
	if (inm && (strstr(inm, etag) || !strcmp(inm, "*"))) {
		r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (r)
			st_live_common_headers(r, "no-cache");
		status = MHD_HTTP_NOT_MODIFIED;
	} else {
		struct st_live_key k = { v, base, p.fmt, p.metric, p.min_fraction, p.max_nodes };
		struct st_live_blob *b;
		int err = st_live_cache_get(&l->cache, h ? h->s : NULL, s, &k, &b);
		if (err) {
			st_snap_release(s);
			st_live_held_put(h);
			return st_live_reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL,
					  "cannot encode the snapshot: %s", strerror(-err));
		}
		r = st_live_blob_response(b, st_live_content_type(p.fmt), "no-cache");
		if (r)
			st_live_format_headers(r, p.fmt);
		status = MHD_HTTP_OK;
	}
	st_snap_release(s);
	st_live_held_put(h);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "ETag", etag);
	if (win) {
		MHD_add_response_header(r, "X-Window-From-Version", from);
		MHD_add_response_header(r, "X-Window-Seconds", secs);
	}
	return st_live_queue(c, status, r);
}

enum MHD_Result st_live_api_status(struct st_live *l, struct MHD_Connection *c)
{
	struct st_stats st = { .size = sizeof(st) };
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
		(json_int_t)st_live_load(&l->sse_clients), "sse_dropped", (json_int_t)st_live_load(&l->sse_dropped),
		"windows_started", (json_int_t)st_live_load(&l->win_started), "windows_active",
		(json_int_t)st_live_load(&l->win_active), "windows_done", (json_int_t)st_live_load(&l->win_done),
		"encodes", (json_int_t)encodes, "memory", "snapshot", (json_int_t)st.mem_snapshot,
		"master", (json_int_t)st.mem_master, "shards", (json_int_t)st.mem_shards, "intern",
		(json_int_t)st.mem_intern, "cache", (json_int_t)cached);
	st_snap_release(s);
	struct st_live_ring_stats rs;
	st_live_ring_stats(&l->ring, &rs);
	if (j) {
		json_object_set_new(j, "marks", json_integer((json_int_t)rs.marks));
		json_object_set_new(j, "mark_version", json_integer((json_int_t)rs.mark_version));
		json_object_set_new(j, "window_ring",
				    json_pack("{s:I,s:I,s:I}", "snapshots", (json_int_t)rs.snapshots,
					      "bytes", (json_int_t)rs.bytes, "max", (json_int_t)rs.max));
		json_object_set_new(j, "request_timeouts",
				    json_integer((json_int_t)st_live_deadlines_closed(&l->dl)));
	}
	/* The source's own figures (e.g. the pusher's), never replacing ours. */
	char *extra = j && l->o.hooks.status_get ? l->o.hooks.status_get(l->o.hooks.arg) : NULL;
	if (extra) {
		json_t *x = json_loads(extra, JSON_REJECT_DUPLICATES, NULL);
		if (json_is_object(x))
			json_object_update_missing(j, x);
		json_decref(x);
		free(extra);
	}
	char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return reply_json_owned(c, txt);
}

/* POST /reset: a new baseline; answers the (empty) snapshot as ior does. */
enum MHD_Result st_live_reset(struct st_live *l, struct MHD_Connection *c)
{
	int err = l->o.hooks.reset ? l->o.hooks.reset(l->o.hooks.arg) : 0;
	if (!l->o.hooks.reset)
		st_reset(l->e);
	if (err)
		return st_live_reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, "reset failed: %s",
				  strerror(-err));
	struct st_snap *s = st_snap_acquire(l->e);
	struct st_live_key k = { st_snap_version(s), 0, ST_FMT_JSON, l->o.metric,
				 l->o.events_min_fraction, -1 };
	struct st_live_blob *b;
	err = st_live_cache_get(&l->cache, NULL, s, &k, &b);
	st_snap_release(s);
	if (err)
		return st_live_reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL,
				  "cannot encode the snapshot: %s", strerror(-err));
	return st_live_queue(c, MHD_HTTP_OK, st_live_blob_response(b, "application/json", "no-store"));
}

/* POST /mark: a mark at the current snapshot, for window=mark; nothing is
 * cleared.  Answers {"mark":ID,"version":V,"t":TOTAL} (metric= chooses
 * which total; default the server's). */
enum MHD_Result st_live_mark(struct st_live *l, struct MHD_Connection *c)
{
	struct st_live_params p;
	if (!st_live_get_params(l, c, P_METRIC, &p))
		return st_live_reply_text(c, MHD_HTTP_BAD_REQUEST, NULL, NULL, "bad request: %s", p.err);
	struct st_snap *s = st_snap_acquire(l->e);
	uint64_t v = st_snap_version(s), t = st_snap_total(s, ST_NODE_ROOT, p.metric);
	uint64_t id = st_live_ring_mark(&l->ring, s, st_live_now_ms()); /* takes s */
	if (!id)
		return st_live_reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL,
				  "mark failed: %s", strerror(ENOMEM));
	json_t *j = json_pack("{s:I,s:I,s:I}", "mark", (json_int_t)id, "version", (json_int_t)v, "t",
			      (json_int_t)t);
	char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return reply_json_owned(c, txt);
}

enum MHD_Result st_live_order(struct st_live *l, struct MHD_Connection *c, const char *method,
				const struct st_live_req *q)
{
	if (!l->o.hooks.order_get)
		return st_live_reply_text(c, MHD_HTTP_NOT_FOUND, NULL, NULL, "no field order for this source");
	if (!strcmp(method, "POST")) {
		json_error_t je;
		json_t *j = json_loadb(q->body ? q->body : "", q->len, JSON_REJECT_DUPLICATES, &je);
		json_t *f = j ? json_object_get(j, "fields") : NULL;
		if (!j || !json_is_object(j) || !json_is_array(f) || json_object_size(j) != 1) {
			json_decref(j);
			return st_live_reply_text(c, MHD_HTTP_BAD_REQUEST, NULL, NULL,
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
			return st_live_reply_text(c, MHD_HTTP_BAD_REQUEST, NULL, NULL, "bad request: %s",
					  why ? why : "this source's field order cannot change");
		if (err)
			return st_live_reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL,
					  "order failed: %s", strerror(-err));
	}
	return reply_json_owned(c, l->o.hooks.order_get(l->o.hooks.arg));
}

/*
 * GET /debug/pprof/profile: the profile of the next `seconds`, the
 * difference of the snapshot published now and the one published when the
 * window ends.  Blocks this connection's thread (and only it) meanwhile.
 * The window starts when win_started counts it and ends before win_done
 * does (tests wait on those through /api/status).
 */
enum MHD_Result st_live_pprof_profile(struct st_live *l, struct MHD_Connection *c)
{
	struct st_live_params p;
	if (!st_live_get_params(l, c, P_SECONDS | P_FORMAT | P_METRIC, &p))
		return st_live_reply_text(c, MHD_HTTP_BAD_REQUEST, "X-Go-Pprof", "1", "bad request: %s", p.err);
	if (!MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format"))
		p.fmt = ST_FMT_PPROF;
	struct st_snap *a = st_snap_acquire(l->e);
	st_live_count(&l->win_active, 1);
	st_live_count(&l->win_started, 1);
	bool stop = st_live_wait_until(l, st_live_now_ms() + (uint64_t)p.seconds * 1000);
	struct st_snap *b = st_snap_acquire(l->e);
	st_live_count(&l->win_active, -1);
	if (stop) {
		st_snap_release(a);
		st_snap_release(b);
		st_live_count(&l->win_done, 1);
		return st_live_reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "X-Go-Pprof", "1",
				  "server stopping: the window did not end");
	}
	struct st_export_opts o = st_live_cache_opts(&l->cache, p.metric);
	o.duration_ns = (uint64_t)p.seconds * 1000000000u;
	struct st_live_blob *blob = NULL;
	int err = st_live_delta_export(a, b, p.fmt, &o, &blob);
	st_snap_release(a);
	st_snap_release(b);
	st_live_count(&l->win_done, 1);
	if (err)
		return st_live_reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "X-Go-Pprof", "1",
				  "cannot write the profile: %s", strerror(-err));
	struct MHD_Response *r = st_live_blob_response(blob, st_live_content_type(p.fmt), "no-store");
	if (!r)
		return MHD_NO;
	st_live_format_headers(r, p.fmt);
	return st_live_queue(c, MHD_HTTP_OK, r);
}

