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
	unsigned merge_interval_ms;   /* merger period; 0 = no merger thread,
					 merges happen only in st_flush() */
	unsigned nmetrics;            /* 1..ST_MAX_METRICS */
	struct st_metric_desc metrics[ST_MAX_METRICS];
	uint64_t node_cap;            /* 0 = unlimited; else fold into [other] */
};

/* Fill *o with defaults: online-CPU shards, 10 ms merges, one metric
 * ("count", "samples"), no node cap. */
void st_options_init(struct st_options *o);

/*
 * Create an engine.  Starts the merger thread when merge_interval_ms > 0.
 * Returns NULL and sets errno (EINVAL for bad options, ENOMEM).
 */
struct st_engine *st_engine_create(const struct st_options *o);

/*
 * Destroy an engine: stops the merger, frees shards, snapshots and names.
 * Every writer must be closed and every snapshot released first; no other
 * thread may use the engine during or after the call.
 */
void st_engine_destroy(struct st_engine *e);

unsigned st_engine_nmetrics(const struct st_engine *e);
const struct st_metric_desc *st_engine_metric(const struct st_engine *e, unsigned i);
/* Index of the metric called `name`, or -ENOENT. */
int st_engine_metric_index(const struct st_engine *e, const char *name);

/* ---------------------------------------------------------------- frames */

/*
 * Intern the bytes s[0..len) (any bytes, NUL included) and return its frame
 * id (>= 0), the same id for the same bytes for the engine's lifetime.
 * Lookups of known frames take no lock; a new frame takes a short mutex.
 * Callable from any thread.  Returns -ENAMETOOLONG past ST_MAX_FRAME_LEN,
 * -ENOSPC when ids are exhausted, -ENOMEM.
 */
int64_t st_intern(struct st_engine *e, const char *s, size_t len);

/*
 * Name of frame `id`: a pointer owned by the engine, valid until
 * st_engine_destroy(), NUL-terminated, with its length in *len (may be NULL).
 * Returns NULL for an unknown id.  ST_FRAME_ROOT names "".
 */
const char *st_frame_name(const struct st_engine *e, uint32_t id, size_t *len);

/* Number of distinct frames interned so far. */
size_t st_frame_count(const struct st_engine *e);

/* ---------------------------------------------------------------- ingest */

/*
 * A writer is one thread's way into the engine: it owns a shard (one of the
 * per-CPU shards made at create time while free, an extra one otherwise), so
 * its ingest calls take no lock and do no shared read-modify-write.
 * Open and use a writer on one thread; it must not be shared between threads
 * at the same time.  Returns NULL and sets errno.
 */
struct st_writer *st_writer_open(struct st_engine *e);
/* Close a writer; what it ingested is still merged.  Same thread as open. */
void st_writer_close(struct st_writer *w);

/*
 * Ingest one sample: frames[0..depth) root first, as frame ids, and
 * values[0..nmetrics).  depth may be 0 (counts at the root).
 * Returns 0, -EINVAL (unknown frame id), -E2BIG (depth > ST_MAX_DEPTH),
 * -ENOMEM (the sample is counted in st_engine_stats().dropped).
 */
int st_writer_ingest(struct st_writer *w, const uint32_t *frames, size_t depth,
		     const uint64_t *values);

/* The same with frames as byte strings (interned on the way).  The writer
 * remembers the stacks it has seen (compared byte for byte, never by hash
 * alone), so a repeated stack interns nothing; that cache is private to the
 * writer, bounded (at most 256 Ki stacks, 32 MiB of copies plus 8 MiB of
 * slots) and freed by st_writer_close(). */
int st_writer_ingest_strs(struct st_writer *w, const char *const *frames,
			  const size_t *lens, size_t depth, const uint64_t *values);

struct st_sample {
	const uint32_t *frames; /* root first */
	uint32_t depth;
	const uint64_t *values; /* nmetrics values */
};

/* Ingest n samples in one call (one RCU read-side section for the lot).
 * Returns the number ingested, or -errno of the first failure. */
long st_writer_ingest_batch(struct st_writer *w, const struct st_sample *s, size_t n);

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
long st_writer_ingest_strs_batch(struct st_writer *w, const struct st_str_sample *s, size_t n);

/* Convenience: ingest through the calling thread's implicit writer (opened on
 * first use, closed when the thread exits). */
int st_ingest(struct st_engine *e, const uint32_t *frames, size_t depth,
	      const uint64_t *values);

/* ----------------------------------------------------------- merge/reset */

/*
 * Merge every shard now and publish a snapshot.  Returns its version (> 0):
 * that snapshot and every later one contain every sample whose ingest call
 * returned before st_flush() was called.  Never blocks ingest; may wait for a
 * merge in progress.  Returns 0 only on allocation failure (errno set).
 */
uint64_t st_flush(struct st_engine *e);

/*
 * Start a new baseline: samples ingested before the call are discarded,
 * samples ingested after it returns are counted, samples racing with it are
 * counted exactly once or not at all.  Publishes an empty snapshot whose
 * version is higher than every earlier one and returns that version.
 */
uint64_t st_reset(struct st_engine *e);

struct st_stats {
	uint64_t ingested;    /* samples accepted (sum over shards, approximate
				 while writers run) */
	uint64_t dropped;     /* samples dropped (allocation failure) */
	uint64_t merges;      /* merge passes done */
	uint64_t folded;      /* nodes folded into [other] by the node cap */
	uint64_t version;     /* latest published version */
	size_t nodes;         /* nodes in the master trie */
	size_t shards;        /* shards in use (per-CPU + extra) */
	size_t frames;        /* interned frames */
	size_t mem_master;    /* bytes held by the master trie */
	size_t mem_shards;    /* bytes held by shard tables */
	size_t mem_snapshot;  /* bytes held by the current snapshot */
	size_t mem_intern;    /* bytes held by the frame table */
};
void st_engine_stats(struct st_engine *e, struct st_stats *out);

/* ------------------------------------------------------------- snapshots */

/*
 * Take a reference on the current snapshot (never NULL: an engine always has
 * one, version 1 being empty).  Does not block ingest or the merger.  The
 * snapshot stays valid, unchanged, until st_snap_release(); release it on any
 * thread.  Nodes are numbered 0..node_count-1, ST_NODE_ROOT first, children
 * of a node contiguous and in name order (byte-wise, shorter first on a tie).
 */
struct st_snap *st_snap_acquire(struct st_engine *e);
void st_snap_release(struct st_snap *s);

uint64_t st_snap_version(const struct st_snap *s);
/* Number of st_reset() calls before this snapshot was built. */
uint64_t st_snap_generation(const struct st_snap *s);
size_t st_snap_node_count(const struct st_snap *s);
size_t st_snap_memory(const struct st_snap *s);
unsigned st_snap_nmetrics(const struct st_snap *s);
struct st_engine *st_snap_engine(const struct st_snap *s);

uint32_t st_snap_frame(const struct st_snap *s, uint32_t node);
const char *st_snap_name(const struct st_snap *s, uint32_t node, size_t *len);
uint32_t st_snap_parent(const struct st_snap *s, uint32_t node); /* root: UINT32_MAX */
uint32_t st_snap_depth(const struct st_snap *s, uint32_t node);  /* root: 0 */
/* Children of `node` are nodes [*first, *first + return) in name order. */
uint32_t st_snap_children(const struct st_snap *s, uint32_t node, uint32_t *first);
/* Child of `node` named by frame id, or UINT32_MAX. */
uint32_t st_snap_child_find(const struct st_snap *s, uint32_t node, uint32_t frame);
/* A node's own value and its subtree's (saturating sums).  total is one
 * load; self is derived from the totals, so it costs one pass over the
 * node's children (asking it of every node is O(nodes) in all). */
uint64_t st_snap_self(const struct st_snap *s, uint32_t node, unsigned metric);
uint64_t st_snap_total(const struct st_snap *s, uint32_t node, unsigned metric);

/* ------------------------------------------------------------- exporting */

enum st_format {
	ST_FMT_FOLDED = 0, /* "stack count" lines, sorted by stack byte-wise */
	ST_FMT_JSON,       /* ior LiveTrie {n,v,t,c} */
	ST_FMT_FLAMEBEARER,/* Pyroscope v0.35 flamebearer JSON ("single") */
	ST_FMT_PPROF,      /* gzip-compressed perftools.profiles.Profile */
	ST_FMT_SPEEDSCOPE, /* speedscope "sampled" profile JSON */
	ST_FMT_D3,         /* d3-flame-graph {name,value,children}, value inclusive */
	ST_FMT_SVG,        /* interactive flamegraph.pl-style SVG */
	ST_FMT_HTML,       /* one-file viewer: flamegraph, table, sandwich */
	ST_FMT_COUNT_
};

struct st_export_opts {
	size_t size;           /* sizeof(struct st_export_opts) */
	unsigned metric;       /* which metric to write */
	double min_fraction;   /* json: prune t/root.t < min_fraction; 0 = keep all */
	const char *title;     /* formats with a title; may be NULL */
	/* --- formats issue: fields below are appended only. */
	int64_t max_nodes;     /* flamebearer: keep the max_nodes largest, the
				  rest of a parent's children -> "other";
				  <= 0 = keep all (default -1) */
	unsigned width;        /* svg: image width in px (default 1200) */
	double minwidth;       /* svg/html: omit frames narrower than this
				  percent of the total (default 0) */
	int inverted;          /* svg/html: icicle, root at the top */
	int reverse;           /* svg/html/folded-like: merge stacks from the leaf */
	const char *colors;    /* svg/html palette: hot (default), mem, io, java,
				  js, perl, red, green, blue, aqua, yellow,
				  purple, orange */
	const char *units;     /* flamebearer/pprof: NULL = from the metric */
	uint32_t sample_rate;  /* flamebearer: sampleRate (default 100) */
	const char *spy_name;  /* flamebearer: spyName (default "shardtrie") */
	const char *app_name;  /* flamebearer metadata.name, speedscope name */
	int normalize;         /* diff: scale BEFORE to AFTER's total */
};
void st_export_opts_init(struct st_export_opts *o);

/* Format named `name` ("folded", "json", ...) or -ENOENT. */
int st_format_from_name(const char *name);
const char *st_format_name(int fmt);

/* Write snapshot `s` in format `fmt` to `out`.  Returns 0 or -errno (EIO
 * when the stream failed). */
int st_export(const struct st_snap *s, int fmt, const struct st_export_opts *o, FILE *out);

/*
 * One-shot folded output for a caller that has ingested everything and wants
 * one file (`shardtrie convert`): writes the bytes st_export(ST_FMT_FOLDED)
 * would write for a snapshot flushed now, but straight from the shard tables
 * (the distinct stacks, sorted), building no master trie and no snapshot.
 * The samples are taken out of the engine: later snapshots do not hold them.
 * Call it when no ingest call is still expected to count; ingest may go on
 * meanwhile (into fresh tables), merges and flushes wait until it returns.  Returns 0, -EIO,
 * -ENOMEM (nothing lost: the samples were merged instead), -EINVAL (bad
 * metric), or -EBUSY when stacks were merged already (an st_flush() or the
 * merger thread ran) or a frame name holds a line break (which the snapshot
 * export escapes as "\n"): flush and export the snapshot instead.
 */
int st_export_folded_once(struct st_engine *e, const struct st_export_opts *o, FILE *out);

/*
 * Write the difference BEFORE -> AFTER (same metric index in both) in
 * format fmt: ST_FMT_FLAMEBEARER (the "double" format), ST_FMT_FOLDED
 * ("stack before after" lines, sorted), ST_FMT_SVG and ST_FMT_HTML (red =
 * grew, blue = shrank).  Returns 0, -EINVAL for other formats, -errno.
 */
int st_export_diff(const struct st_snap *before, const struct st_snap *after, int fmt,
		   const struct st_export_opts *o, FILE *out);

/* ------------------------------------------------------------- testing */

/*
 * Allocation failure injection for tests: after `n` more successful
 * allocations through the engine's allocator, every allocation fails until
 * reset with n = -1 (the default, never fail).  Process-wide.
 */
void st_alloc_fail_after(long n);

#ifdef __cplusplus
}
#endif
#endif /* SHARDTRIE_H */
