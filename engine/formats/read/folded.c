/* SPDX-License-Identifier: MIT */
/*
 * folded.c - folded ("collapsed") stack lines into an engine writer.
 *
 *   "root;frame;...;leaf<ws>count"      count = text after the LAST space/tab
 *
 * Choices (docs/formats.md in this repo):
 *   1. The stack is everything before the last whitespace character, as
 *      flamegraph.pl's /^(.*)\s+?(\d+)$/ takes it; frames are split on ';'
 *      and kept even when empty, so writing them back gives the same bytes.
 *   2. Counts are decimal integers 0..UINT64_MAX.  Larger: rejected (not
 *      saturated: a wrong total is worse than a reported line).  Decimals,
 *      signs, empty counts: rejected.  Zero counts: skipped (no node).
 *   3. Blank lines and lines starting with "# " are skipped, as inferno does.
 *   4. A NUL byte, an empty stack or more than ST_MAX_DEPTH frames: rejected.
 * The parser reads only inside [line, line+len).
 */
#include <errno.h>

#include "formats.h"
#include "shardtrie_parse.h"

int st_folded_parse_line(const char *line, size_t len, const char **frames, size_t *lens,
			 size_t max_depth, size_t *depth, uint64_t *count, const char **err)
{
	if (len && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return 0;
	if (len >= 2 && line[0] == '#' && line[1] == ' ')
		return 0;
	if (memchr(line, '\0', len)) {
		*err = "NUL byte in line";
		return -1;
	}
	size_t lead = 0;
	while (lead < len && (line[lead] == ' ' || line[lead] == '\t'))
		lead++;
	if (lead == len)
		return 0; /* only blanks: a blank line */
	size_t ws = len;
	while (ws > 0 && line[ws - 1] != ' ' && line[ws - 1] != '\t')
		ws--;
	if (ws == 0) {
		*err = "expected 'stack count': no whitespace before a count";
		return -1;
	}
	const char *c = line + ws, *end = line + len;
	if (c == end) {
		*err = "expected a count after the last space";
		return -1;
	}
	uint64_t v = 0;
	for (; c < end; c++) {
		if (*c < '0' || *c > '9') {
			*err = "count is not a non-negative integer";
			return -1;
		}
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(*c - '0'), &v)) {
			*err = "count overflows 64 bits";
			return -1;
		}
	}
	size_t slen = ws - 1; /* stack = line[0..slen) */
	if (slen == 0) {
		*err = "empty stack";
		return -1;
	}
	size_t d = 0;
	const char *p = line, *send = line + slen;
	for (;;) {
		const char *semi = memchr(p, ';', (size_t)(send - p));
		const char *fend = semi ? semi : send;
		if (d == max_depth) {
			*err = "stack deeper than the frame limit";
			return -1;
		}
		frames[d] = p;
		lens[d] = (size_t)(fend - p);
		d++;
		if (!semi)
			break;
		p = semi + 1;
	}
	*depth = d;
	*count = v;
	return v ? 1 : 0;
}

int st_folded_ingest(struct st_writer *w, unsigned nmetrics, unsigned metric, const char *buf,
		     size_t len, st_parse_err_fn errfn, void *arg, struct st_parse_stats *st)
{
	size_t cap = 256;
	const char **frames = st_malloc(cap * sizeof(*frames));
	size_t *lens = st_malloc(cap * sizeof(*lens));
	uint64_t values[ST_MAX_METRICS] = { 0 };
	uint64_t lineno = 0;
	int rc = 0;

	if (!frames || !lens) {
		rc = -ENOMEM;
		goto out;
	}
	const char *p = buf, *end = buf + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *lend = nl ? nl : end;
		size_t llen = (size_t)(lend - p);
		lineno++;
		st->lines++;
		const char *err = NULL;
		size_t depth = 0;
		uint64_t count = 0;
		int r;
		if (llen > ST_MAX_LINE) {
			r = -1;
			err = "line longer than 1 MiB";
		} else {
			/* A line of n bytes has at most n-1 frames (";;; 1" has
			 * 4): n/2+1 rejected long runs of empty frames. */
			size_t need = llen + 1;
			if (need > ST_MAX_DEPTH + 1)
				need = ST_MAX_DEPTH + 1;
			if (need > cap) {
				const char **nf = st_realloc(frames, need * sizeof(*frames));
				if (nf)
					frames = nf;
				size_t *nlens = nf ? st_realloc(lens, need * sizeof(*lens)) : NULL;
				if (!nf || !nlens) {
					rc = -ENOMEM;
					goto out;
				}
				lens = nlens;
				cap = need;
			}
			r = st_folded_parse_line(p, llen, frames, lens,
						 cap < ST_MAX_DEPTH ? cap : ST_MAX_DEPTH, &depth,
						 &count, &err);
		}
		if (r < 0) {
			st->malformed++;
			if (errfn)
				errfn(arg, lineno, err);
		} else if (r == 0) {
			st->skipped++;
		} else {
			values[metric] = count;
			int ir = st_writer_ingest_strs(w, frames, lens, depth, values);
			if (ir == 0) {
				st->samples++;
				st->sum = st_sat_add(st->sum, count);
			} else {
				st->dropped++;
				if (errfn)
					errfn(arg, lineno, ir == -ENAMETOOLONG ? "frame longer than 1 MiB"
										: "sample dropped (out of memory)");
			}
		}
		p = nl ? nl + 1 : end;
	}
	(void)nmetrics;
out:
	st_free(frames);
	st_free(lens);
	return rc;
}
