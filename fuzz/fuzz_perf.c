/* SPDX-License-Identifier: MIT */
/*
 * fuzz_perf.c - the perf script parser on arbitrary bytes.
 *
 * PROPERTY: st_perf_ingest never reads outside its buffer, never crashes,
 * and parsing the input as one buffer gives the same folded output as
 * parsing it cut at st_perf_cut() into two blocks with the filter from
 * st_perf_first_event() fixed up front (what `convert -f perf` does with
 * threads); the two blocks go through st_perf_ingest_cached() with one
 * cache, so frames and samples cached by the first are reused by the
 * second.  The whole side is written from a flushed snapshot, the split
 * side by the one-shot st_export_folded_once() (no trie): the same bytes.
 * The counts agree too (samples, dropped, other events, samples cut off,
 * the value sum), and the split side's event tally holds every skipped
 * sample.  The first input byte picks the options.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "shardtrie_parse.h"
#include "support/fz.h"

/* One engine per side (whole, split), reused between inputs. */
static struct st_engine *engines[2];
static unsigned engine_uses[2];

static bool names_have_eol(const struct st_engine *e)
{
	size_t n = st_frame_count(e);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const char *nm = st_frame_name(e, (uint32_t)i, &len);
		if (nm && (memchr(nm, '\n', len) || memchr(nm, '\r', len)))
			return true;
	}
	return false;
}

/* Every sample of another event is in the tally (the filter's own entry
 * aside), and nothing more. */
static void check_tally(const struct st_perf_cache *c, const struct st_perf_opts *po,
			const struct st_parse_stats *st)
{
	const char *name;
	size_t len;
	uint64_t n, others = 0;
	for (size_t i = 0; st_perf_cache_event(c, i, &name, &len, &n); i++)
		if (!po->event || len != po->event_len || memcmp(name, po->event, len) != 0)
			others += n; /* (an event name may hold a NUL byte) */
	if (others != st->other_events)
		fz_fail("tally: %llu samples of other events, stats %llu", (unsigned long long)others,
			(unsigned long long)st->other_events);
}

static char *collapse(const struct st_perf_opts *po, const char *a, size_t alen, const char *b,
		      size_t blen, struct st_parse_stats *stp)
{
	struct st_engine *e = fz_engine_reuse(&engines[b != NULL], &engine_uses[b != NULL], 1, NULL);
	struct st_writer *w = st_writer_open(e);
	struct st_parse_stats st = { 0 };
	if (!b) {
		if (st_perf_ingest(w, 0, po, a, alen, NULL, NULL, &st))
			fz_fail("ingest a");
	} else {
		struct st_perf_cache *c = st_perf_cache_new();
		if (!c)
			fz_fail("cache");
		if (st_perf_ingest_cached(c, w, 0, po, a, alen, NULL, NULL, &st))
			fz_fail("ingest a");
		if (st_perf_ingest_cached(c, w, 0, po, b, blen, NULL, NULL, &st))
			fz_fail("ingest b");
		check_tally(c, po, &st);
		st_perf_cache_free(c);
	}
	*stp = st;
	st_writer_close(w);
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	int once = b ? st_export_folded_once(e, NULL, f) : 0;
	if (b && once == -EBUSY) {
		/* Only when a frame name of the engine (reused: earlier inputs
		 * count) holds a line break, which the snapshot walk escapes:
		 * then the caller falls back to the walk, as the CLI does. */
		if (!names_have_eol(e))
			fz_fail("one-shot export: -EBUSY without a line break in a name");
	} else if (b && once) {
		fz_fail("one-shot export: %d", once);
	}
	if (!b || once == -EBUSY) {
		st_flush(e);
		struct st_snap *s = st_snap_acquire(e);
		if (st_export(s, ST_FMT_FOLDED, NULL, f))
			fz_fail("export");
		st_snap_release(s);
	}
	fclose(f);
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct st_perf_opts po;
	st_perf_opts_init(&po);
	uint8_t flags = data[0];
	po.pid = flags & 1;
	po.tid = flags & 2;
	po.kernel = flags & 4;
	po.jit = flags & 8;
	po.addrs = flags & 16;
	/* A private copy so reads past the end are caught by ASan. */
	size_t n = size - 1;
	char *text = malloc(n ? n : 1);
	memcpy(text, data + 1, n);
	const char *ev;
	size_t evlen;
	char *evs = NULL;
	if (st_perf_first_event(text, n, &ev, &evlen)) {
		/* As bytes: the name may hold a NUL byte (event_len says where
		 * it ends), as the CLI passes it. */
		evs = malloc(evlen + 1);
		memcpy(evs, ev, evlen);
		evs[evlen] = '\0';
		po.event = evs;
		po.event_len = evlen;
	}
	struct st_parse_stats sw, ss;
	char *whole = collapse(&po, text, n, NULL, 0, &sw);
	size_t cut = st_perf_cut(text, n);
	char *split = collapse(&po, text, cut, text + cut, n - cut, &ss);
	if (strcmp(whole, split) != 0)
		fz_fail("split at %zu differs:\n%s\n---\n%s", cut, whole, split);
	if (sw.samples != ss.samples || sw.dropped != ss.dropped || sw.other_events != ss.other_events ||
	    sw.truncated != ss.truncated || sw.sum != ss.sum)
		fz_fail("split at %zu: counts differ (samples %llu/%llu dropped %llu/%llu other events "
			"%llu/%llu cut off %llu/%llu)", cut, (unsigned long long)sw.samples,
			(unsigned long long)ss.samples, (unsigned long long)sw.dropped,
			(unsigned long long)ss.dropped, (unsigned long long)sw.other_events,
			(unsigned long long)ss.other_events, (unsigned long long)sw.truncated,
			(unsigned long long)ss.truncated);
	free(whole);
	free(split);
	free(evs);
	free(text);
	return 0;
}
