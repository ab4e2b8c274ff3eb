/* SPDX-License-Identifier: MIT */
/*
 * live.h - what the files of live/ share (not used outside live/).
 *
 *   blob    an encoded answer (a snapshot in some format, an SSE frame),
 *           immutable once built, shared by reference count between the
 *           cache and every connection sending it.
 *   cache   the last few blobs, keyed by (version, format, parameters): a
 *           snapshot is encoded once per version and parameters whatever
 *           the number of clients; a second asker waits for the first.
 *   delta   the difference of two snapshots of one engine, as a snapshot
 *           of its own (st_snap_delta(): exact, frame ids are stable within
 *           an engine), written by the ordinary exporters.
 *   window  the snapshots kept for window=Ns and window=mark (a bounded
 *           ring, coarser as they age, filled by its own thread) and the
 *           mark; policy and errors at the top of window.c.
 */
#ifndef ST_LIVE_LIVE_H
#define ST_LIVE_LIVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shardtrie.h"
#include "shardtrie_export.h"

struct st_live_blob {
	unsigned long refs; /* atomic (__atomic builtins) */
	uint64_t version;
	size_t len;
	char data[];
};
/* Encode fmt of snapshot s with o into a new blob (refs 1) named version
 * (its SSE id): 0 or -errno. */
int st_live_blob_export(const struct st_snap *s, uint64_t version, int fmt,
			const struct st_export_opts *o, struct st_live_blob **out);
struct st_live_blob *st_live_blob_get(struct st_live_blob *b);
void st_live_blob_put(struct st_live_blob *b);

/* Pseudo-format: the ior JSON of the snapshot framed as one SSE event
 * ("id: V\ndata: JSON\n\n"). */
#define ST_LIVE_FMT_SSE (-1)

struct st_live_key {
	uint64_t version;
	uint64_t base;      /* window base snapshot's version; 0 = none (all) */
	int fmt;
	unsigned metric;
	double min_fraction;
	int64_t max_nodes;
};

#define ST_LIVE_CACHE_SLOTS 16
struct st_live_cache {
	struct st_export_opts opts; /* base options of every encoding; set
				       before use, then read only */
	pthread_mutex_t mu;   /* protects everything below */
	pthread_cond_t built; /* a slot finished building (or failed) */
	uint64_t clock;       /* LRU clock */
	uint64_t encodes;     /* blobs encoded so far (tests, /api/status) */
	struct {
		struct st_live_key key;
		struct st_live_blob *blob; /* the cache's reference */
		int building;              /* an asker encodes it, unlocked */
		uint64_t used;
	} slot[ST_LIVE_CACHE_SLOTS];
};
/* opts: the base export options (NULL = defaults; copied, its strings
 * must outlive the cache; `clamped` is not kept). */
void st_live_cache_init(struct st_live_cache *c, const struct st_export_opts *opts);
void st_live_cache_fini(struct st_live_cache *c);
/* The blob for key k (k.version == st_snap_version(s)), encoded from s on a
 * miss; with k.base != 0 the window base..s (base's version is k.base,
 * through st_live_delta_export).  The caller owns one reference.  0 or
 * -errno. */
int st_live_cache_get(struct st_live_cache *c, const struct st_snap *base, const struct st_snap *s,
		      const struct st_live_key *k, struct st_live_blob **out);
/* The cache's base options with metric m (what every encoding starts from). */
struct st_export_opts st_live_cache_opts(const struct st_live_cache *c, unsigned m);

/*
 * What `later` holds beyond `earlier` (two snapshots of one engine, earlier
 * first), written as fmt (or ST_LIVE_FMT_SSE) with o into a blob named by
 * later's version: st_export_delta() with every metric kept (a reset
 * between them = all of later).  In cache.c.
 */
int st_live_delta_export(const struct st_snap *earlier, const struct st_snap *later, int fmt,
			 const struct st_export_opts *o, struct st_live_blob **out);

/* ---- window.c */
#define ST_LIVE_RING_PERIOD_MS 1000
#define ST_LIVE_RING_MAX 48

/* One snapshot reference kept for windows, shared by refcount between the
 * ring (or the mark) and the requests using it as a base. */
struct st_live_held {
	unsigned long refs;       /* atomic */
	struct st_snap *s;        /* the reference this holder owns */
	uint64_t t_first, t_last; /* monotonic ms: s was the profile throughout */
	bool first;               /* the ring's first entry (window.c) */
};
struct st_live_held *st_live_held_get(struct st_live_held *h);
void st_live_held_put(struct st_live_held *h); /* NULL is fine */

struct st_live_ring {
	struct st_engine *e;
	uint64_t start_ms;         /* when the ring started (set once) */
	pthread_t thr;
	pthread_mutex_t mu;        /* protects everything below */
	pthread_cond_t wake;       /* CLOCK_MONOTONIC; broadcast on stop */
	bool stop;
	unsigned n;
	uint64_t taken;            /* entries made so far */
	struct st_live_held *ent[ST_LIVE_RING_MAX]; /* oldest first */
	struct st_live_held *mark; /* the latest mark, or NULL */
	uint64_t marks;            /* marks set so far */
};

enum { ST_LIVE_WIN_ALL, ST_LIVE_WIN_SECONDS, ST_LIVE_WIN_MARK };
struct st_live_window {
	int kind;
	long seconds; /* ST_LIVE_WIN_SECONDS: 1..86400 */
};
/* "all", "mark" or "Ns": 0, or -EINVAL with a one-line reason in err. */
int st_live_window_parse(const char *v, struct st_live_window *w, char *err, size_t n);

/* Start the ring and its thread (a tick at once, then every period); stop
 * joins it and drops every reference.  0 or -errno. */
int st_live_ring_start(struct st_live_ring *r, struct st_engine *e);
void st_live_ring_stop(struct st_live_ring *r);
/* The parts without the thread (white-box tests drive the clock). */
void st_live_ring_init(struct st_live_ring *r, struct st_engine *e, uint64_t start_ms);
void st_live_ring_fini(struct st_live_ring *r);
/* One tick at time now with s (the ring takes the caller's reference). */
void st_live_ring_take(struct st_live_ring *r, struct st_snap *s, uint64_t now);
/* The base of window w at time now (a reference the caller puts), or NULL
 * for everything; *base_ms: the time the base stands for, so the window
 * spans now - *base_ms. */
struct st_live_held *st_live_ring_base(struct st_live_ring *r, const struct st_live_window *w,
				       uint64_t now, uint64_t *base_ms);
/* Set the mark at s (taking the caller's reference): its id (from 1), or 0
 * when out of memory. */
uint64_t st_live_ring_mark(struct st_live_ring *r, struct st_snap *s, uint64_t now);

struct st_live_ring_stats {
	uint64_t snapshots, bytes, max; /* distinct snapshots held (ring + mark) */
	uint64_t marks, mark_version;   /* mark_version 0: none */
};
void st_live_ring_stats(struct st_live_ring *r, struct st_live_ring_stats *st);

#endif
