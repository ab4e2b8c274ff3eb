/* SPDX-License-Identifier: MIT */
/*
 * shardtrie.h - public API of libshardtrie.
 *
 * A stream of samples (a stack of frames, root first, plus one value per
 * metric) goes into per-thread shards without locks; a merger folds the
 * shards into a private master trie and publishes immutable, versioned
 * snapshots through RCU that any number of readers use while ingest goes on.
 *
 *   writer threads           merger (thread or st_flush caller)      readers
 *   --------------           ----------------------------------      -------
 *   st_writer_ingest() --> shard table --flip+grace--> master trie
 *                                                         | publish
 *                                                         v
 *                                          rcu_assign(engine->snap) --> st_snap_acquire()
 *
 * Conventions (see docs/concurrency.md for the full rules):
 *   - Functions that can fail return 0 (or a non-negative value) on success
 *     and -errno on failure.  Constructors return NULL and set errno.
 *   - The caller owns every handle it gets (engine, writer, snapshot) and
 *     gives it back with the matching destroy/close/release call.
 *   - Strings handed in are copied; pointers handed out (frame names) stay
 *     valid until st_engine_destroy(): interned names are never freed.
 *   - Values are unsigned 64-bit; every sum saturates at UINT64_MAX instead of
 *     wrapping, in the engine and in the reference alike.
 */
#ifndef SHARDTRIE_H
#define SHARDTRIE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the exported API.  The libraries are built with -fvisibility=hidden,
 * so a function without it is not visible outside the library that defines
 * it (tests/check_layout.sh checks that `nm -D` lists exactly these). */
#define ST_API __attribute__((visibility("default")))

#define ST_MAX_METRICS 8
/* Deepest stack accepted; deeper samples are rejected with -E2BIG. */
#define ST_MAX_DEPTH 65536
/* Longest frame name accepted by st_intern(); longer is -ENAMETOOLONG. */
#define ST_MAX_FRAME_LEN (1u << 20)
/* Frame id of the root node (its name is the empty string). */
#define ST_FRAME_ROOT UINT32_MAX
/* Node index of the root in every snapshot. */
#define ST_NODE_ROOT 0u
/* Name of the bucket that node-cap folding creates under a parent. */
#define ST_OTHER_NAME "[other]"

struct st_engine;
struct st_writer;
struct st_snap;

struct st_metric_desc {
	const char *name; /* e.g. "count", "duration_ns", "bytes"; copied */
	const char *unit; /* e.g. "samples", "nanoseconds", "bytes"; copied */
};

/*
 * Options.  Always start from st_options_init(); `size` lets the struct grow
 * without breaking binaries built against an older header.
 */
struct st_options {
	size_t size;                  /* sizeof(struct st_options) */
	unsigned nshards;             /* shards made up front; 0 = online CPUs */
	unsigned merge_interval_ms;   /* merger period, start to start (a merge
					 longer than it is followed at once);
					 0 = no merger thread, merges happen
					 only in st_flush() */
	unsigned nmetrics;            /* 1..ST_MAX_METRICS */
	struct st_metric_desc metrics[ST_MAX_METRICS];
	uint64_t node_cap;            /* 0 = unlimited; else fold into [other] */
	unsigned merge_workers;       /* threads folding shards into the master in
					 parallel (the master is split into
					 partitions; a flush's caller is one of
					 them); 0 = min(online CPUs / 8, 8), at
					 least 1; at most 16; 1 with a node_cap.
					 With one partition (0 below 16 CPUs, or
					 a node_cap) on 2+ CPUs, a big fold a
					 flush waits for also sorts on a helper
					 thread; 1 = never */
};

/* Fill *o with defaults: online-CPU shards, 10 ms merges, one metric
 * ("count", "samples"), no node cap. */
ST_API void st_options_init(struct st_options *o);

/*
 * Create an engine.  Starts the merger thread when merge_interval_ms > 0.
 * Returns NULL and sets errno (EINVAL for bad options, ENOMEM).
 */
ST_API struct st_engine *st_engine_create(const struct st_options *o);

/*
 * Destroy an engine: stops the merger, frees shards, snapshots and names.
 * Every writer must be closed and every snapshot released first; no other
 * thread may use the engine during or after the call.
 */
ST_API void st_engine_destroy(struct st_engine *e);

ST_API unsigned st_engine_nmetrics(const struct st_engine *e);
ST_API const struct st_metric_desc *st_engine_metric(const struct st_engine *e, unsigned i);
/* Index of the metric called `name`, or -ENOENT. */
ST_API int st_engine_metric_index(const struct st_engine *e, const char *name);

/* ---------------------------------------------------------------- frames */

/*
 * Intern the bytes s[0..len) (any bytes, NUL included) and return its frame
 * id (>= 0), the same id for the same bytes for the engine's lifetime.
 * Lookups of known frames take no lock; a new frame takes a short mutex.
 * Callable from any thread.  Returns -ENAMETOOLONG past ST_MAX_FRAME_LEN,
 * -ENOSPC when ids are exhausted, -ENOMEM.
 */
ST_API int64_t st_intern(struct st_engine *e, const char *s, size_t len);

/*
 * Name of frame `id`: a pointer owned by the engine, valid until
 * st_engine_destroy(), NUL-terminated, with its length in *len (may be NULL).
 * Returns NULL for an unknown id.  ST_FRAME_ROOT names "".
 */
ST_API const char *st_frame_name(const struct st_engine *e, uint32_t id, size_t *len);

/* Number of distinct frames interned so far.  Ids are 0..count-1. */
ST_API size_t st_frame_count(const struct st_engine *e);

/* True once some interned frame name holds '\n' or '\r' (a line-based
 * output must then escape names). */
ST_API int st_frame_names_have_eol(const struct st_engine *e);

/* The hash the engine uses for frame names and stacks (XXH3-64); a parser
 * keying its own caches with it hashes nothing twice. */
ST_API uint64_t st_hash_bytes(const void *p, size_t len);

/* ---------------------------------------------------------------- ingest */

/*
 * A writer is one thread's way into the engine: it owns a shard (one of the
 * per-CPU shards made at create time while free, an extra one otherwise), so
 * its ingest calls take no lock and do no shared read-modify-write.
 * Open and use a writer on one thread; it must not be shared between threads
 * at the same time.  Returns NULL and sets errno.
 */
ST_API struct st_writer *st_writer_open(struct st_engine *e);
/* Close a writer; what it ingested is still merged.  Same thread as open. */
ST_API void st_writer_close(struct st_writer *w);

/*
 * Ingest one sample: frames[0..depth) root first, as frame ids, and
 * values[0..nmetrics).  depth may be 0 (counts at the root).
 * Returns 0, -EINVAL (unknown frame id), -E2BIG (depth > ST_MAX_DEPTH),
 * -ENOMEM (the sample is counted in st_engine_stats().dropped).
 */
ST_API int st_writer_ingest(struct st_writer *w, const uint32_t *frames, size_t depth,
		     const uint64_t *values);

/* The same with frames as byte strings (interned on the way).  The writer
 * remembers the stacks it has seen (compared byte for byte, never by hash
 * alone), so a repeated stack interns nothing; that cache is private to the
 * writer, bounded (at most 256 Ki stacks, 32 MiB of copies plus 8 MiB of
 * slots) and freed by st_writer_close(). */
ST_API int st_writer_ingest_strs(struct st_writer *w, const char *const *frames,
			  const size_t *lens, size_t depth, const uint64_t *values);

struct st_sample {
	const uint32_t *frames; /* root first */
	uint32_t depth;
	const uint64_t *values; /* nmetrics values */
};

/* Ingest n samples in one call (one RCU read-side section for the lot).
 * Returns the number ingested, or -errno of the first failure. */
ST_API long st_writer_ingest_batch(struct st_writer *w, const struct st_sample *s, size_t n);

/* st_writer_ingest_batch() that also says how far it got: *done samples
 * went in, and when the return is -errno, s[*done] is the one that failed
 * (what a parser needs to report the failing line).  Returns 0 or -errno. */
ST_API int st_writer_ingest_batch_done(struct st_writer *w, const struct st_sample *s, size_t n,
				       size_t *done);

/* The engine a writer feeds (a parser interns its frames through it). */
ST_API struct st_engine *st_writer_engine(const struct st_writer *w);

/* A sample with frames as byte strings, for st_writer_ingest_strs_batch(). */
struct st_str_sample {
	const char *const *frames; /* root first */
	const size_t *lens;
	uint32_t depth;
	const uint64_t *values;    /* nmetrics values */
};

/* st_writer_ingest_strs() for n samples in one call: the writer overlaps the
 * cache misses of several lookups.  Returns the number ingested (samples
 * before the first failing one), or -errno of the first failure. */
ST_API long st_writer_ingest_strs_batch(struct st_writer *w, const struct st_str_sample *s, size_t n);

/* Convenience: ingest through the calling thread's implicit writer (opened on
 * first use, closed when the thread exits). */
ST_API int st_ingest(struct st_engine *e, const uint32_t *frames, size_t depth,
	      const uint64_t *values);

/* ----------------------------------------------------------- merge/reset */

/*
 * Merge every shard now and publish a snapshot.  Returns its version (> 0):
 * that snapshot and every later one contain every sample whose ingest call
 * returned before st_flush() was called.  Never blocks ingest; may wait for a
 * merge in progress.  Returns 0 only on allocation failure (errno set).
 */
ST_API uint64_t st_flush(struct st_engine *e);

/*
 * Start a new baseline: samples ingested before the call are discarded,
 * samples ingested after it returns are counted, samples racing with it are
 * counted exactly once or not at all.  Publishes an empty snapshot whose
 * version is higher than every earlier one and returns that version.
 */
ST_API uint64_t st_reset(struct st_engine *e);

/*
 * Engine statistics.  `size` lets the struct grow without breaking binaries
 * built against an older header: the caller sets it to sizeof its struct
 * (`struct st_stats st = { .size = sizeof(st) };`) and st_engine_stats()
 * writes only that many bytes.  Fields are only ever added at the end.
 */
struct st_stats {
	size_t size;          /* in: sizeof(struct st_stats) as the caller was
				 built; out: bytes the library filled (its own
				 sizeof when the caller's struct is bigger:
				 the fields past it are left as they were) */
	uint64_t ingested;    /* samples accepted (sum over shards, approximate
				 while writers run) */
	uint64_t dropped;     /* samples dropped (allocation failure) */
	uint64_t merges;      /* merge passes done */
	uint64_t folded;      /* nodes folded into [other] by the node cap */
	uint64_t version;     /* latest published version */
	size_t nodes;         /* nodes in the profile: the master trie's (with
				 several merge workers, the last published
				 snapshot's: partitions repeat upper nodes) */
	size_t shards;        /* shards in use (per-CPU + extra) */
	size_t frames;        /* interned frames */
	size_t mem_master;    /* bytes held by the master trie */
	size_t mem_shards;    /* bytes held by shard tables */
	size_t mem_snapshot;  /* bytes held by the current snapshot */
	size_t mem_intern;    /* bytes held by the frame table */
	size_t mem_regions;   /* bytes mapped as big-page regions (the big
				 tables and arrays above, and freed ones kept
				 for reuse): process-wide, every engine */
	uint64_t merge_records; /* shard records folded into the master */
	uint64_t merge_fold_ns; /* wall time spent folding them (flip and grace
				   period included, snapshot builds not) */
	uint64_t publish_ns;  /* wall time spent building snapshots */
};
/*
 * Fill the first out->size bytes of *out (see struct st_stats); bytes past
 * them are never touched.  0, or -EINVAL (nothing written) when out->size
 * does not even cover the size field, or is over 4096 (not set).
 */
ST_API int st_engine_stats(struct st_engine *e, struct st_stats *out);

/* ------------------------------------------------------------- snapshots */

/*
 * Take a reference on the current snapshot (never NULL: an engine always has
 * one, version 1 being empty).  Does not block ingest or the merger.  The
 * snapshot stays valid, unchanged, until st_snap_release(); release it on any
 * thread.  Nodes are numbered 0..node_count-1, ST_NODE_ROOT first, children
 * of a node contiguous and in name order (byte-wise, shorter first on a tie).
 */
ST_API struct st_snap *st_snap_acquire(struct st_engine *e);
ST_API void st_snap_release(struct st_snap *s);

ST_API uint64_t st_snap_version(const struct st_snap *s);
/* Number of st_reset() calls before this snapshot was built. */
ST_API uint64_t st_snap_generation(const struct st_snap *s);
ST_API size_t st_snap_node_count(const struct st_snap *s);
ST_API size_t st_snap_memory(const struct st_snap *s);
ST_API unsigned st_snap_nmetrics(const struct st_snap *s);
ST_API struct st_engine *st_snap_engine(const struct st_snap *s);
/* What metric i of s counts (name, unit), NULL past st_snap_nmetrics(s).
 * An engine's snapshot has the engine's metrics; one from st_snap_delta()
 * of a single metric has that one as its metric 0. */
ST_API const struct st_metric_desc *st_snap_metric(const struct st_snap *s, unsigned i);
/*
 * What was ingested between two snapshots of one engine, as a snapshot of
 * its own (never published, not the engine's; st_snap_release() it): every
 * node of `later` with self = later's self - earlier's self (0 where that
 * would go below 0, e.g. a sum that saturated), totals the saturating sums
 * of the subtrees, and only the nodes whose subtree gained something in a
 * kept metric (the root always).  metric -1 keeps every metric, metric
 * m >= 0 that one alone (the result's metric 0).  earlier NULL, or of
 * another generation (an st_reset() came between): the whole of `later`.
 * O(nodes of later); it takes no engine lock.  NULL with errno EINVAL (bad
 * metric, snapshots of different engines or metrics) or ENOMEM.
 */
ST_API struct st_snap *st_snap_delta(const struct st_snap *earlier, const struct st_snap *later,
				     int metric);

ST_API uint32_t st_snap_frame(const struct st_snap *s, uint32_t node);
ST_API const char *st_snap_name(const struct st_snap *s, uint32_t node, size_t *len);
ST_API uint32_t st_snap_parent(const struct st_snap *s, uint32_t node); /* root: UINT32_MAX */
ST_API uint32_t st_snap_depth(const struct st_snap *s, uint32_t node);  /* root: 0 */
/* Children of `node` are nodes [*first, *first + return) in name order. */
ST_API uint32_t st_snap_children(const struct st_snap *s, uint32_t node, uint32_t *first);
/* Child of `node` named by frame id, or UINT32_MAX. */
ST_API uint32_t st_snap_child_find(const struct st_snap *s, uint32_t node, uint32_t frame);
/* A node's own value and its subtree's (saturating sums).  total is one
 * load; self is derived from the totals, so it costs one pass over the
 * node's children (asking it of every node is O(nodes) in all). */
ST_API uint64_t st_snap_self(const struct st_snap *s, uint32_t node, unsigned metric);
ST_API uint64_t st_snap_total(const struct st_snap *s, uint32_t node, unsigned metric);
/* How many nodes' totals reached UINT64_MAX at some metric: sums saturate
 * there instead of wrapping, so these totals (a node's and its ancestors')
 * are capped, and a child may show as much as its parent.  *deepest, when
 * not NULL: the deepest such node (UINT32_MAX when none).  A total that is
 * exactly UINT64_MAX counts too: it cannot be told from a capped one. */
ST_API size_t st_snap_saturated(const struct st_snap *s, uint32_t *deepest);

/* ------------------------------------------------------ taking stacks */

/* One aggregated stack as st_engine_take_stacks() hands it out: pointers
 * into the engine's shard tables, valid during the callback only. */
struct st_stack_view {
	const uint32_t *frames; /* root first, frame ids */
	const uint64_t *values; /* nmetrics values */
	uint32_t depth;
};
typedef int (*st_stacks_fn)(void *arg, const struct st_stack_view *stacks, size_t n,
			    unsigned nmetrics);

/*
 * The one-shot path for a caller that has ingested everything and wants the
 * distinct stacks once (the one-shot folded export): flip every shard, wait
 * one grace period and call fn once with every stack that holds values (any
 * order; a stack may appear once per shard and may hold zeros), then
 * discard them: they never reach the master trie, and later snapshots do
 * not hold them.  Ingest may go on meanwhile (into fresh tables); merges and
 * flushes wait until it returns.  Returns fn's result, -ENOMEM (nothing
 * lost: the samples were merged instead, fn not called), or -EBUSY (fn not
 * called, nothing taken) when the master already holds stacks below the
 * root, so the shards are not the whole profile.
 */
ST_API int st_engine_take_stacks(struct st_engine *e, st_stacks_fn fn, void *arg);

/* ------------------------------------------------------------- memory */

/*
 * The one allocator of the engine and of its formats library: every
 * allocation goes through it so that st_alloc_fail_after() reaches all of
 * them.  Same contracts as malloc/calloc/realloc/free/strdup.
 */
ST_API void *st_malloc(size_t n);
ST_API void *st_calloc(size_t nmemb, size_t n);
ST_API void *st_realloc(void *p, size_t n);
ST_API void st_free(void *p);
ST_API char *st_strdup(const char *s);

/*
 * Make room for `need` elements of `size` bytes in the array *p of *cap
 * elements: grows it (at least doubling, starting at `min_cap`) through
 * st_realloc when need > *cap.  0, or -ENOMEM (also on size overflow) with
 * *p and *cap unchanged.
 */
ST_API int st_grow(void *p, size_t *cap, size_t need, size_t size, size_t min_cap);

/* Saturating sum: every sum of values in the engine, the reference and the
 * formats saturates at UINT64_MAX instead of wrapping. */
static inline uint64_t st_sat_add(uint64_t a, uint64_t b)
{
	uint64_t r;
	return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* ------------------------------------------------------------- testing */

/*
 * Allocation failure injection for tests: after `n` more successful
 * allocations through the engine's allocator, every allocation fails until
 * reset with n = -1 (the default, never fail).  Process-wide.
 */
ST_API void st_alloc_fail_after(long n);

#ifdef __cplusplus
}
#endif
#endif /* SHARDTRIE_H */
