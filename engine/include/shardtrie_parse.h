/* SPDX-License-Identifier: MIT */
/*
 * shardtrie_parse.h - input parsers that feed an engine writer.
 *
 * Parsers work on byte ranges (a mapped file region or a block read from a
 * pipe) so several threads can each parse their own region into their own
 * writer.  Bad lines are reported through a callback with the line number
 * relative to the region and are skipped; nothing a line contains can make
 * a parser read outside its range.
 */
#ifndef SHARDTRIE_PARSE_H
#define SHARDTRIE_PARSE_H

#include <stdbool.h>

#include "shardtrie.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Lines longer than this are rejected (the reader never buffers more). */
#define ST_MAX_LINE (1u << 20)

/* Called for each rejected line: 1-based line number within the region and
 * a static message saying what was wrong. */
typedef void (*st_parse_err_fn)(void *arg, uint64_t line, const char *msg);

struct st_parse_stats {
	uint64_t lines;     /* lines seen (including skipped ones) */
	uint64_t samples;   /* lines ingested */
	uint64_t skipped;   /* blank lines, "# " comments, zero counts */
	uint64_t malformed; /* rejected lines */
	uint64_t dropped;   /* accepted lines the engine could not take */
	/* Added later (the fields above keep their meaning): */
	uint64_t sum;          /* saturating sum of the values ingested: below
				* UINT64_MAX, no sum in the engine saturated */
	uint64_t other_events; /* perf: samples of other events (also in skipped) */
	uint64_t truncated;    /* perf: samples no blank line ended, dropped at
				* the end of the buffer as stackcollapse-perf.pl
				* does; reported through err at their header */
};

/*
 * One folded line `stack count` (no newline; a trailing '\r' is ignored).
 * On success returns 1 and fills *count and the frames: frames[i] points into
 * `line`, lens[i] its length; *depth frames, at most max_depth.  Returns 0 for
 * a line to skip (blank, "# " comment), or -1 with *err set for a malformed
 * line.  Counts are decimal integers up to UINT64_MAX (larger: rejected).
 * Frames are bytes (any UTF-8 or not) except NUL; empty frames are kept so
 * that the output reproduces the input stack byte for byte.
 */
ST_API int st_folded_parse_line(const char *line, size_t len, const char **frames, size_t *lens,
			 size_t max_depth, size_t *depth, uint64_t *count, const char **err);

/*
 * Parse every folded line of buf[0..len) into writer w with the count as the
 * value of metric `metric` (other metrics 0).  A last line without '\n' is
 * parsed too.  Stats are added to *st.  Returns 0 or -ENOMEM.
 */
ST_API int st_folded_ingest(struct st_writer *w, unsigned nmetrics, unsigned metric,
		     const char *buf, size_t len, st_parse_err_fn err, void *arg,
		     struct st_parse_stats *st);

/* ------------------------------------------------------------ perf script */

/*
 * `perf script` text, collapsed the way stackcollapse-perf.pl does it (see
 * engine/formats/read/perf.c for the exact rules): the output of the folded exporter is
 * byte for byte the script's output for the same options.
 */
struct st_perf_opts {
	size_t size;      /* sizeof(struct st_perf_opts) */
	bool pid;         /* root frame comm-PID            (--pid) */
	bool tid;         /* root frame comm-PID/TID        (--tid) */
	bool kernel;      /* _[k] on kernel frames          (--kernel, --all) */
	bool jit;         /* _[j] on /tmp/perf-N.map frames (--jit, --all) */
	bool addrs;       /* "[module <addr>]" for unknown symbols (--addrs) */
	const char *event; /* collapse only this event; NULL/"" = the first seen */
	size_t event_len;  /* bytes of event: an event name may hold a NUL byte
			    * (st_perf_first_event() gives its length); 0 = strlen */
};
ST_API void st_perf_opts_init(struct st_perf_opts *o);

/*
 * The event of the first sample header in buf[0..len) (what the default
 * filter becomes).  Returns 1 with ev and evlen pointing into buf, 0 if there
 * is none.  Scanning blocks in order and taking the first hit is the same as
 * scanning the whole input.
 */
ST_API int st_perf_first_event(const char *buf, size_t len, const char **ev, size_t *evlen);

/*
 * Length of the longest prefix of buf[0..len) that ends just after a blank
 * line: the parser's state is empty there, so a block cut there parses the
 * same on its own.  0 when buf has no blank line.
 */
ST_API size_t st_perf_cut(const char *buf, size_t len);

/*
 * Parse perf script text buf[0..len) (starting at a line start, normally at a
 * sample boundary) into writer w, the sample period (1 when absent) as the
 * value of metric `metric`.  As in stackcollapse-perf.pl a sample not ended
 * by a blank line is dropped at the end of the buffer (counted as truncated
 * and reported through err).  Unrecognised lines are reported through err
 * and counted as malformed; samples of other events (also counted in
 * other_events) and comment/blank lines as skipped.  A period over
 * UINT64_MAX drops its sample (reported, counted as dropped).  Returns 0 or
 * -ENOMEM.
 */
ST_API int st_perf_ingest(struct st_writer *w, unsigned metric, const struct st_perf_opts *o,
		   const char *buf, size_t len, st_parse_err_fn err, void *arg,
		   struct st_parse_stats *st);

/*
 * The same with a cache that outlives the call: each distinct raw frame
 * (symbol, module) is cleaned and interned once, and a sample whose frame
 * lines are byte for byte those of an earlier sample reuses its frame ids.
 * One cache per thread (not shared); it follows one engine and one set of
 * options and starts over when either changes, and its memory is bounded
 * (it starts over past 64 MiB of keys).  st_perf_ingest() is this call with
 * a cache made and freed for the one buffer.
 */
struct st_perf_cache;
ST_API struct st_perf_cache *st_perf_cache_new(void);
ST_API void st_perf_cache_free(struct st_perf_cache *c);
ST_API int st_perf_ingest_cached(struct st_perf_cache *c, struct st_writer *w, unsigned metric,
			  const struct st_perf_opts *o, const char *buf, size_t len,
			  st_parse_err_fn err, void *arg, struct st_parse_stats *st);

/*
 * The samples per event that the ingests through cache c have seen (the
 * collapsed event's and the skipped ones'), in the order first seen: the
 * i-th event's name (len bytes, NUL-terminated, valid until
 * st_perf_cache_free) and count.  Returns 1, or 0 past the last one.  The
 * tally outlives the cache starting over; past 64 names the rest share one
 * entry named "(other events)".
 */
ST_API int st_perf_cache_event(const struct st_perf_cache *c, size_t i, const char **name,
			       size_t *len, uint64_t *samples);

#ifdef __cplusplus
}
#endif
#endif
