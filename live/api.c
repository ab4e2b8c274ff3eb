/* SPDX-License-Identifier: MIT */
/*
 * api.c - the request/answer endpoints: /api/snapshot (any format, ETag and
 * 304, through the encode-once cache), /api/status, /debug/pprof/profile
 * (a window: the difference of two snapshots, delta.c), and ior's /reset
 * and /order through the source's hooks.
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

enum MHD_Result st_live_api_snapshot(struct st_live *l, struct MHD_Connection *c)
{
	struct st_live_params p;
	if (!st_live_get_params(l, c, P_FORMAT | P_METRIC | P_MIN_FRACTION | P_MAX_NODES, &p))
		return st_live_reply_text(c, MHD_HTTP_BAD_REQUEST, NULL, NULL, "bad request: %s", p.err);
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
		st_live_common_headers(r, "no-cache");
		MHD_add_response_header(r, "ETag", etag);
		return st_live_queue(c, MHD_HTTP_NOT_MODIFIED, r);
	}
	struct st_live_key k = { v, p.fmt, p.metric, p.min_fraction, p.max_nodes };
	struct st_live_blob *b;
	int err = st_live_cache_get(&l->cache, s, &k, &b);
	st_snap_release(s);
	if (err)
		return st_live_reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL,
				  "cannot encode the snapshot: %s", strerror(-err));
	struct MHD_Response *r = st_live_blob_response(b, st_live_content_type(p.fmt), "no-cache");
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "ETag", etag);
	st_live_format_headers(r, p.fmt);
	return st_live_queue(c, MHD_HTTP_OK, r);
}

enum MHD_Result st_live_api_status(struct st_live *l, struct MHD_Connection *c)
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
		(json_int_t)st_live_load(&l->sse_clients), "sse_dropped", (json_int_t)st_live_load(&l->sse_dropped),
		"windows_started", (json_int_t)st_live_load(&l->win_started), "windows_active",
		(json_int_t)st_live_load(&l->win_active), "windows_done", (json_int_t)st_live_load(&l->win_done),
		"encodes", (json_int_t)encodes, "memory", "snapshot", (json_int_t)st.mem_snapshot,
		"master", (json_int_t)st.mem_master, "shards", (json_int_t)st.mem_shards, "intern",
		(json_int_t)st.mem_intern, "cache", (json_int_t)cached);
	st_snap_release(s);
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
	struct st_live_key k = { st_snap_version(s), ST_FMT_JSON, l->o.metric,
				 l->o.events_min_fraction, -1 };
	struct st_live_blob *b;
	err = st_live_cache_get(&l->cache, s, &k, &b);
	st_snap_release(s);
	if (err)
		return st_live_reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL,
				  "cannot encode the snapshot: %s", strerror(-err));
	return st_live_queue(c, MHD_HTTP_OK, st_live_blob_response(b, "application/json", "no-store"));
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
	struct st_export_opts o;
	st_export_opts_init(&o);
	o.metric = p.metric;
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

