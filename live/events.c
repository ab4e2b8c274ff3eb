/* SPDX-License-Identifier: MIT */
/*
 * events.c - GET /events, Server-Sent Events of the live snapshot.
 *
 * One callback per connection (libmicrohttpd asks it for bytes when the
 * socket can take them; it may block, on its own thread): first `retry:`,
 * then the current snapshot at once, then at most one event per tick and
 * only when the version changed, a comment keep-alive when quiet.  An event
 * is a blob of the cache (encoded once per version and parameters, shared by
 * every client), so a client holds at most one reference: a slow reader
 * costs no memory of its own.  One still reading an event sse_slow_ms after
 * a newer version exists is dropped (sse_dropped); one that stops reading
 * altogether never gets the callback again and the idle timeout closes it.
 * With window=Ns|mark each event is the window's tree, sent again when the
 * version or the window's base changed (a moving window repeats its frame
 * each tick it moved, even with no new version).
 */
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "shardtrie_export.h"

struct sse {
	struct st_live *l;
	struct st_live_key key;   /* version, base = the last ones sent */
	struct st_live_window win;
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
			    st_live_now_ms() - s->event_ms > l->o.sse_slow_ms) {
				/* Too slow: drop it if a newer event is waiting. */
				struct st_snap *snap = st_snap_acquire(l->e);
				bool newer = st_snap_version(snap) != s->key.version;
				st_snap_release(snap);
				if (newer) {
					st_live_count(&l->sse_dropped, 1);
					return MHD_CONTENT_READER_END_WITH_ERROR;
				}
			}
			size_t k = s->n < max ? s->n : max;
			memcpy(buf, s->p, k);
			s->p += k;
			s->n -= k;
			s->last_ms = st_live_now_ms();
			if (!s->n && s->blob) {
				st_live_blob_put(s->blob);
				s->blob = NULL;
			}
			return (ssize_t)k;
		}
		if (st_live_stopping(l))
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (!s->started) {
			s->started = true;
			s->p = sse_retry;
			s->n = sizeof(sse_retry) - 1;
			continue;
		}
		/* The window's base first: the snapshot is then as new. */
		uint64_t base_ms;
		struct st_live_held *h = s->win.kind == ST_LIVE_WIN_ALL
			? NULL : st_live_ring_base(&l->ring, &s->win, st_live_now_ms(), &base_ms);
		struct st_snap *snap = st_snap_acquire(l->e);
		uint64_t v = st_snap_version(snap), base = h ? st_snap_version(h->s) : 0;
		if (v != s->key.version || base != s->key.base) {
			struct st_live_key k = s->key;
			k.version = v;
			k.base = base;
			int err = st_live_cache_get(&l->cache, h ? h->s : NULL, snap, &k, &s->blob);
			st_snap_release(snap);
			st_live_held_put(h);
			if (err)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			s->key.version = v;
			s->key.base = base;
			s->p = s->blob->data;
			s->n = s->blob->len;
			s->event_ms = st_live_now_ms();
			continue;
		}
		st_snap_release(snap);
		st_live_held_put(h);
		uint64_t now = st_live_now_ms();
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
		st_live_wait_until(l, next);
	}
}

static void sse_free(void *cls)
{
	struct sse *s = cls;
	st_live_blob_put(s->blob);
	st_live_count(&s->l->sse_clients, -1);
	free(s);
}

enum MHD_Result st_live_events(struct st_live *l, struct MHD_Connection *c)
{
	struct st_live_params p;
	if (!st_live_get_params(l, c, P_METRIC | P_MIN_FRACTION | P_WINDOW, &p))
		return st_live_reply_text(c, MHD_HTTP_BAD_REQUEST, NULL, NULL, "bad request: %s", p.err);
	if (!MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "min_fraction"))
		p.min_fraction = l->o.events_min_fraction;
	struct sse *s = calloc(1, sizeof(*s));
	if (!s)
		return MHD_NO;
	/* Version 0 is never published: the first look always sends the
	 * current snapshot, also to a client reconnecting with Last-Event-ID. */
	*s = (struct sse){ .l = l, .key = { 0, 0, ST_LIVE_FMT_SSE, p.metric, p.min_fraction, -1 },
			   .win = p.window, .last_ms = st_live_now_ms() };
	st_live_count(&l->sse_clients, 1);
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 << 10,
								   sse_read, s, sse_free);
	if (!r) {
		sse_free(s);
		return MHD_NO;
	}
	st_live_common_headers(r, "no-store");
	MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	return st_live_queue(c, MHD_HTTP_OK, r);
}

