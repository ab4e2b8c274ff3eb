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
int st_folded_parse_line(const char *line, size_t len, const char **frames, size_t *lens,
			 size_t max_depth, size_t *depth, uint64_t *count, const char **err);

/*
 * Parse every folded line of buf[0..len) into writer w with the count as the
 * value of metric `metric` (other metrics 0).  A last line without '\n' is
 * parsed too.  Stats are added to *st.  Returns 0 or -ENOMEM.
 */
int st_folded_ingest(struct st_writer *w, unsigned nmetrics, unsigned metric,
		     const char *buf, size_t len, st_parse_err_fn err, void *arg,
		     struct st_parse_stats *st);

#ifdef __cplusplus
}
#endif
#endif
