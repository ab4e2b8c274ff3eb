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
 *   delta   the difference of two snapshots of one engine, written through
 *           a private engine (exact: frame ids are stable within an engine).
 */
#ifndef ST_LIVE_LIVE_H
#define ST_LIVE_LIVE_H

#include <pthread.h>
#include <stdint.h>

#include "shardtrie.h"
#include "shardtrie_export.h"

struct st_live_blob {
	unsigned long refs; /* atomic (__atomic builtins) */
	uint64_t version;
	size_t len;
	char data[];
};
/* Encode fmt of snapshot s with o into a new blob (refs 1): 0 or -errno. */
int st_live_blob_export(const struct st_snap *s, int fmt, const struct st_export_opts *o,
			struct st_live_blob **out);
struct st_live_blob *st_live_blob_get(struct st_live_blob *b);
void st_live_blob_put(struct st_live_blob *b);

/* Pseudo-format: the ior JSON of the snapshot framed as one SSE event
 * ("id: V\ndata: JSON\n\n"). */
#define ST_LIVE_FMT_SSE (-1)

struct st_live_key {
	uint64_t version;
	int fmt;
	unsigned metric;
	double min_fraction;
	int64_t max_nodes;
};

#define ST_LIVE_CACHE_SLOTS 16
struct st_live_cache {
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
void st_live_cache_init(struct st_live_cache *c);
void st_live_cache_fini(struct st_live_cache *c);
/* The blob for key k (k.version == st_snap_version(s)), encoded from s on a
 * miss; the caller owns one reference.  0 or -errno. */
int st_live_cache_get(struct st_live_cache *c, const struct st_snap *s, const struct st_live_key *k,
		      struct st_live_blob **out);

/*
 * What `later` holds beyond `earlier` (two snapshots of one engine, earlier
 * first), written as fmt with o.  Each node's self value is later's minus
 * earlier's (a node earlier lacks counts whole); when a reset came between
 * them (generations differ) all of later counts.  The stacks go through a
 * private engine (no merger), so the writer is the ordinary exporter.
 */
int st_live_delta_export(const struct st_snap *earlier, const struct st_snap *later, int fmt,
			 const struct st_export_opts *o, struct st_live_blob **out);

#endif
