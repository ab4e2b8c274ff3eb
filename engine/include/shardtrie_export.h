/* SPDX-License-Identifier: MIT */
/*
 * shardtrie_export.h - output formats of libshardtrie-formats: a snapshot
 * (or two, for a diff) written as folded stacks, ior JSON, Pyroscope
 * flamebearer, pprof, speedscope, d3, SVG or a one-file HTML viewer.
 *
 * Every writer works from a snapshot through the public API of shardtrie.h
 * and allocates through st_malloc() (failure injection reaches it).  Frame
 * names are untrusted bytes: each format escapes them its own way.
 */
#ifndef SHARDTRIE_EXPORT_H
#define SHARDTRIE_EXPORT_H

#include <stdio.h>

#include "shardtrie.h"

#ifdef __cplusplus
extern "C" {
#endif

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
	/* --- readers issue (pprof units and clamping): appended only. */
	const char *event;     /* perf input: the event whose periods are the
				  values ("cpu-clock:ppp"); NULL = not perf */
	uint64_t period;       /* perf input: the first sample's period, 0 =
				  none given (each sample counted 1) */
	uint64_t duration_ns;  /* pprof duration_nanos: time the input spans,
				  0 = unknown */
	uint64_t *clamped;     /* pprof, out: += the number of values above
				  INT64_MAX written as INT64_MAX; may be NULL */
};
ST_API void st_export_opts_init(struct st_export_opts *o);

/* Format named `name` ("folded", "json", ...) or -ENOENT. */
ST_API int st_format_from_name(const char *name);
ST_API const char *st_format_name(int fmt);

/* Write snapshot `s` in format `fmt` to `out`.  Returns 0 or -errno (EIO
 * when the stream failed). */
ST_API int st_export(const struct st_snap *s, int fmt, const struct st_export_opts *o, FILE *out);

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
ST_API int st_export_folded_once(struct st_engine *e, const struct st_export_opts *o, FILE *out);

/*
 * Write the difference BEFORE -> AFTER (same metric index in both) in
 * format fmt: ST_FMT_FLAMEBEARER (the "double" format), ST_FMT_FOLDED
 * ("stack before after" lines, sorted), ST_FMT_SVG and ST_FMT_HTML (red =
 * grew, blue = shrank).  Returns 0, -EINVAL for other formats, -errno.
 */
ST_API int st_export_diff(const struct st_snap *before, const struct st_snap *after, int fmt,
		   const struct st_export_opts *o, FILE *out);

/*
 * Write what was ingested between two snapshots of ONE engine (`earlier`
 * acquired first; NULL = nothing before) in format fmt to out: a profile
 * whose every stack's self value is later's minus earlier's, exactly (frame
 * ids are stable within an engine, so nodes are matched by id, no name
 * compare); a stack earlier lacks counts whole.  When a st_reset() came
 * between them (st_snap_generation() differs) the whole of `later` is
 * written: what came after the reset.  Sums saturate in the engine, so a
 * difference is never wrapped: later <= earlier (a value stuck at
 * UINT64_MAX) gives 0.
 *
 * metric >= 0: that metric alone is written (o->metric is ignored);
 * metric -1: every metric is kept and o->metric chooses the one written
 * (formats with several sample types see them all).  o may be NULL.
 * *total (may be NULL) = the saturated sum of the written metric's
 * differences: 0 means nothing new (an empty profile was still written).
 * Returns 0, -EINVAL (bad metric, NULL later/out, snapshots of two
 * engines), -ENOMEM, or st_export()'s error.  Writes st_snap_delta() (no
 * engine, no lock): cost O(nodes of later) plus st_export()'s.
 */
ST_API int st_export_delta(const struct st_snap *earlier, const struct st_snap *later, int metric,
			   int fmt, const struct st_export_opts *o, FILE *out, uint64_t *total);

#ifdef __cplusplus
}
#endif
#endif /* SHARDTRIE_EXPORT_H */
