/* SPDX-License-Identifier: MIT */
/*
 * scache_test.c - the writer's string-stack cache (scache.c) and
 * the string ingest paths built on it (st_writer_ingest_strs and
 * st_writer_ingest_strs_batch).
 *
 * The cache must never answer from a hash: entries with equal hashes but
 * different bytes (or the same bytes split into frames differently) are
 * told apart, resets and growth keep answers exact, and the engine fed
 * through it agrees with the reference trie across flushes, resets and
 * table clears.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scache.h"
#include "support/support.h"

/* A stack spelt "a;b;c" split into frames (pointers into buf). */
struct stk {
	char buf[256];
	const char *fr[32];
	size_t ln[32];
	size_t d;
};

static void split(struct stk *s, const char *spec)
{
	snprintf(s->buf, sizeof(s->buf), "%s", spec);
	s->d = 0;
	char *p = s->buf;
	if (!*p)
		return;
	for (;;) {
		char *semi = strchr(p, ';');
		s->fr[s->d] = p;
		s->ln[s->d++] = semi ? (size_t)(semi - p) : strlen(p);
		if (!semi)
			break;
		p = semi + 1;
	}
}

/* The cache's own key pass (what the writer does) before each lookup. */
static uint64_t kw_buf[2 * 64];

static struct st_scent *find(struct st_scache *c, uint64_t h, const char *const *fr,
			     const size_t *ln, size_t d)
{
	uint64_t lng;
	cr_assert_leq(d, 64);
	cr_assert_neq(st_scache_key(fr, ln, d, kw_buf, &lng), 0);
	return st_scache_find(c, h, fr, ln, d, kw_buf, lng);
}

static struct st_scent *insert(struct st_scache *c, uint64_t h, const char *const *fr,
			       const size_t *ln, size_t d, const uint32_t *ids, uint64_t idh)
{
	uint64_t lng;
	cr_assert_leq(d, 64);
	cr_assert_neq(st_scache_key(fr, ln, d, kw_buf, &lng), 0);
	return st_scache_insert(c, h, fr, ln, d, kw_buf, ids, idh);
}

Test(scache, equal_hashes_are_told_apart_by_bytes)
{
	/* Same hash for all; they differ in a byte, in length, in where the
	 * bytes are split into frames, and in depth. */
	static const char *specs[] = { "ab;c", "a;bc", "abc", "ab;d", "ab;c;", "ab;c;x", "", "ab;", ";ab" };
	enum { N = sizeof(specs) / sizeof(specs[0]) };
	struct st_scache *c = st_scache_create();
	cr_assert_not_null(c);
	struct stk s;
	for (unsigned i = 0; i < N; i++) {
		split(&s, specs[i]);
		cr_assert_null(find(c, 42, s.fr, s.ln, s.d), "%s before insert", specs[i]);
		uint32_t ids[32];
		for (size_t k = 0; k < s.d; k++)
			ids[k] = 100 * i + (uint32_t)k;
		struct st_scent *e = insert(c, 42, s.fr, s.ln, s.d, ids, 1000 + i);
		cr_assert_not_null(e);
	}
	cr_expect_eq(st_scache_count(c), N);
	for (unsigned i = 0; i < N; i++) {
		split(&s, specs[i]);
		struct st_scent *e = find(c, 42, s.fr, s.ln, s.d);
		cr_assert_not_null(e, "%s", specs[i]);
		cr_expect_eq(e->id_hash, 1000 + i, "%s found another entry", specs[i]);
		cr_expect_eq(e->depth, s.d);
		for (size_t k = 0; k < s.d; k++)
			cr_expect_eq(st_scent_ids(e)[k], 100 * i + k);
		/* The right bytes under another hash are not found. */
		cr_expect_null(find(c, 43, s.fr, s.ln, s.d));
	}
	/* Never inserted, same hash. */
	split(&s, "ab;e");
	cr_expect_null(find(c, 42, s.fr, s.ln, s.d));
	st_scache_reset(c);
	cr_expect_eq(st_scache_count(c), 0);
	for (unsigned i = 0; i < N; i++) {
		split(&s, specs[i]);
		cr_expect_null(find(c, 42, s.fr, s.ln, s.d), "%s after reset", specs[i]);
	}
	st_scache_destroy(c);
}

Test(scache, hash_zero_and_null_empty_frames)
{
	struct st_scache *c = st_scache_create();
	const char *fr[2] = { NULL, "x" };
	size_t ln[2] = { 0, 1 };
	uint32_t ids[2] = { 7, 8 };
	cr_assert_not_null(insert(c, 0, fr, ln, 2, ids, 5));
	struct st_scent *e = find(c, 0, fr, ln, 2);
	cr_assert_not_null(e);
	cr_expect_eq(st_scent_ids(e)[1], 8);
	const char *fr2[2] = { "", "x" };
	cr_expect_not_null(find(c, 0, fr2, ln, 2));
	/* The root sample: depth 0. */
	cr_assert_not_null(insert(c, 9, NULL, NULL, 0, NULL, 6));
	cr_expect_not_null(find(c, 9, NULL, NULL, 0));
	st_scache_destroy(c);
}

/*
 * The key holds every byte: for each name length 0..80 (the load patterns
 * of 1-3, 4-7, 8-16 bytes, and long names' heads and tails) and each byte
 * position, a name differing from a cached one in that byte alone -- under
 * the same forced hash, so only the compare can tell -- is not found, and
 * the cached one is.  The same name in a second frame and behind a long
 * frame too, so the compare is checked at every offset of the key.
 */
Test(scache, every_byte_of_every_name_length_is_compared)
{
	static char base[96], other[96], lead[40];
	memset(lead, 'L', sizeof(lead));
	for (size_t len = 0; len <= 80; len++) {
		for (size_t i = 0; i < len; i++)
			base[i] = (char)('a' + (i * 7 + len) % 26);
		for (int shape = 0; shape < 3; shape++) {
			/* shape 0: the name alone; 1: after a short frame;
			 * 2: after a long frame (its head is in the entry). */
			struct st_scache *c = st_scache_create();
			cr_assert_not_null(c);
			const char *fr[2];
			size_t ln[2], d = shape ? 2 : 1;
			fr[0] = shape == 1 ? "ab" : lead;
			ln[0] = shape == 1 ? 2 : sizeof(lead);
			fr[d - 1] = base;
			ln[d - 1] = len;
			uint32_t ids[2] = { 1, 2 };
			cr_assert_not_null(insert(c, 7, fr, ln, d, ids, 3));
			for (size_t pos = 0; pos < len; pos++) {
				memcpy(other, base, len);
				other[pos] ^= 0x20;
				fr[d - 1] = other;
				cr_assert_null(find(c, 7, fr, ln, d),
					       "len %zu shape %d: byte %zu differs, still found", len,
					       shape, pos);
			}
			/* A copy at another address is found. */
			memcpy(other, base, len);
			fr[d - 1] = other;
			cr_assert_not_null(find(c, 7, fr, ln, d), "len %zu shape %d: copy not found",
					   len, shape);
			if (shape == 2) {
				/* The long frame's head differs: not found. */
				char lead2[sizeof(lead)];
				memcpy(lead2, lead, sizeof(lead));
				lead2[3] = 'M';
				fr[0] = lead2;
				cr_assert_null(find(c, 7, fr, ln, d), "len %zu: long head differs", len);
			}
			st_scache_destroy(c);
		}
	}
}

/* A name longer than ST_MAX_FRAME_LEN makes the key pass answer 0 (the
 * writer refuses the sample with -ENAMETOOLONG) whatever frame it is. */
Test(scache, key_refuses_names_too_long)
{
	const char *fr[3] = { "a", "b", "c" };
	size_t ln[3] = { 1, 1, 1 };
	uint64_t lng;
	cr_expect_neq(st_scache_key(fr, ln, 3, kw_buf, &lng), 0);
	cr_expect_eq(lng, 0);
	for (int i = 0; i < 3; i++) {
		ln[0] = ln[1] = ln[2] = 1;
		ln[i] = ST_MAX_FRAME_LEN + 1;
		cr_expect_eq(st_scache_key(fr, ln, 3, kw_buf, &lng), 0, "frame %d", i);
	}
}

/* Many distinct stacks, most hashes colliding in a few groups: growth and
 * the reset at the size bound keep every answer exact. */
Test(scache, many_stacks_stay_exact_through_growth_and_resets)
{
	struct st_scache *c = st_scache_create();
	enum { N = 300000 };
	char name[32];
	size_t resets = 0, last = 0;
	for (uint32_t i = 0; i < N; i++) {
		int l = snprintf(name, sizeof(name), "frame%u", i);
		const char *fr[2] = { "root", name };
		size_t ln[2] = { 4, (size_t)l };
		/* Every 997th stack shares one of 8 hashes with ~40 others. */
		uint64_t h = i % 997 ? (uint64_t)i * 0x9e3779b97f4a7c15ULL : (i / 997) % 8;
		cr_assert_null(find(c, h, fr, ln, 2));
		uint32_t ids[2] = { 1, i };
		cr_assert_not_null(insert(c, h, fr, ln, 2, ids, i));
		if (st_scache_count(c) < last)
			resets++;
		last = st_scache_count(c);
		/* An earlier stack is either still cached, exactly, or gone. */
		uint32_t j = (uint32_t)(((uint64_t)i * 7919) % (i + 1));
		l = snprintf(name, sizeof(name), "frame%u", j);
		ln[1] = (size_t)l;
		uint64_t hj = j % 997 ? (uint64_t)j * 0x9e3779b97f4a7c15ULL : (j / 997) % 8;
		struct st_scent *e = find(c, hj, fr, ln, 2);
		if (e)
			cr_assert_eq(st_scent_ids(e)[1], j);
	}
	cr_expect_gt(resets, 0, "the size bound was never reached");
	cr_expect_leq(st_scache_count(c), 256u * 1024);
	cr_expect_leq(st_scache_memory(c), 48u * 1024 * 1024);
	st_scache_destroy(c);
}

/* ---- the engine through the cache, against the reference */

static struct st_engine *mk(unsigned nshards)
{
	struct st_options o;
	st_options_init(&o);
	o.merge_interval_ms = 0;
	o.nshards = nshards;
	o.nmetrics = 2;
	struct st_engine *e = st_engine_create(&o);
	cr_assert_not_null(e, "st_engine_create: %s", strerror(errno));
	return e;
}

/*
 * Stacks drawn skewed from a set of `nstacks` (so most repeat and hit the
 * cache) over `nnames` names, frames passed from fresh buffers each time
 * (the cache must copy, not keep pointers), through one-call and batch
 * ingest on two writers; flushes, resets and enough distinct stacks to
 * clear kept shard tables.
 */
static void differential(uint64_t seed, unsigned nstacks, unsigned nnames, int samples,
			 unsigned flush_every)
{
	struct st_engine *e = mk(2);
	struct st_ref *r = st_ref_create(2, 0);
	struct st_writer *w[2] = { st_writer_open(e), st_writer_open(e) };
	enum { B = 16 };
	static char bufs[B][512];
	static const char *fr[B][16];
	static size_t ln[B][16];
	static uint64_t vals[B][2];
	struct st_str_sample batch[B];
	int nb = 0;
	for (int i = 0; i < samples; i++) {
		uint64_t x = ts_rand(&seed);
		/* Skewed: low stack numbers far more often. */
		unsigned k = (unsigned)((x % nstacks) * ((x >> 32) % nstacks) / nstacks);
		uint64_t ks = k * 0x9e3779b97f4a7c15ULL + 1;
		size_t d = 1 + ts_rand(&ks) % 12, p = 0;
		char *b = bufs[nb];
		for (size_t f = 0; f < d; f++) {
			int l = snprintf(b + p, 512 - p, "n%u", (unsigned)(ts_rand(&ks) % nnames));
			/* Some frames end in a byte that only the length tells. */
			if (ts_rand(&ks) % 5 == 0)
				l -= 1;
			fr[nb][f] = b + p;
			ln[nb][f] = (size_t)l;
			p += (size_t)l + 1;
		}
		vals[nb][0] = 1 + x % 3;
		vals[nb][1] = x % 1000;
		cr_assert_eq(st_ref_add(r, fr[nb], ln[nb], d, vals[nb]), 0);
		struct st_writer *ww = w[(x >> 13) & 1];
		if ((x >> 20) % 3 == 0) {
			/* One call. */
			cr_assert_eq(st_writer_ingest_strs(ww, fr[nb], ln[nb], d, vals[nb]), 0);
		} else {
			batch[nb] = (struct st_str_sample){ fr[nb], ln[nb], (uint32_t)d, vals[nb] };
			if (++nb == B || i == samples - 1) {
				cr_assert_eq(st_writer_ingest_strs_batch(w[0], batch, (size_t)nb), nb);
				/* Fresh buffers next time: overwrite these. */
				memset(bufs, '#', sizeof(bufs));
				nb = 0;
			}
		}
		if (nb == 0 && ts_rand(&seed) % flush_every == 0)
			ts_assert_matches_ref(e, r, "flush at sample %d", i);
		if (nb == 0 && ts_rand(&seed) % (4 * flush_every) == 0) {
			st_reset(e);
			st_ref_reset(r);
		}
	}
	if (nb)
		cr_assert_eq(st_writer_ingest_strs_batch(w[0], batch, (size_t)nb), nb);
	ts_assert_matches_ref(e, r, "end at sample %d", samples);
	struct st_stats st = { .size = sizeof(st) };
	st_engine_stats(e, &st);
	cr_expect_eq(st.dropped, 0);
	st_writer_close(w[0]);
	st_writer_close(w[1]);
	st_ref_destroy(r);
	st_engine_destroy(e);
}

Test(scache, engine_matches_reference_few_stacks)
{
	differential(1, 50, 20, 20000, 2000);
}

Test(scache, engine_matches_reference_many_stacks, .timeout = 120)
{
	/* More distinct stacks than a kept shard table holds: tables are
	 * cleared after folds, so cached records go stale by epoch. */
	differential(2, 400000, 5000, 200000, 100000);
}

Test(scache, batch_stops_at_first_failure)
{
	struct st_engine *e = mk(1);
	struct st_writer *w = st_writer_open(e);
	const char *a[1] = { "a" }, *b[2] = { "b", "c" };
	size_t la[1] = { 1 }, lb[2] = { 1, ST_MAX_FRAME_LEN + 1 };
	uint64_t v[2] = { 1, 0 };
	struct st_str_sample s[3] = { { a, la, 1, v }, { b, lb, 2, v }, { a, la, 1, v } };
	cr_expect_eq(st_writer_ingest_strs_batch(w, s, 3), -ENAMETOOLONG);
	s[1].depth = ST_MAX_DEPTH + 1;
	cr_expect_eq(st_writer_ingest_strs_batch(w, s, 3), -E2BIG);
	cr_expect_eq(st_writer_ingest_strs_batch(w, s, 0), 0);
	st_flush(e);
	/* Only the first sample of each call went in. */
	cr_expect_eq(ts_root_total(e, 0), 2);
	st_writer_close(w);
	st_engine_destroy(e);
}

/* Allocation failures anywhere on the string path: every call either
 * ingests or reports an error, and what was ingested is what the engine
 * shows (no sample counted twice or half-added). */
Test(scache, allocation_failures_lose_nothing_silently)
{
	for (long fail = 0; fail < 60; fail++) {
		struct st_engine *e = mk(1);
		struct st_writer *w = st_writer_open(e);
		uint64_t ok = 0, seed = 7;
		st_alloc_fail_after(fail);
		for (int i = 0; i < 400; i++) {
			char name[16];
			int l = snprintf(name, sizeof(name), "f%u", (unsigned)(ts_rand(&seed) % 50));
			const char *fr[2] = { "root", name };
			size_t ln[2] = { 4, (size_t)l };
			uint64_t v[2] = { 1, 0 };
			if (i & 1) {
				struct st_str_sample s = { fr, ln, 2, v };
				ok += st_writer_ingest_strs_batch(w, &s, 1) == 1;
			} else {
				ok += st_writer_ingest_strs(w, fr, ln, 2, v) == 0;
			}
		}
		st_alloc_fail_after(-1);
		st_flush(e);
		cr_expect_eq(ts_root_total(e, 0), ok, "fail after %ld", fail);
		struct st_stats st = { .size = sizeof(st) };
		st_engine_stats(e, &st);
		cr_expect_leq(st.dropped, 400 - ok);
		st_writer_close(w);
		st_engine_destroy(e);
	}
}

/* Big stacks fill the cache's 32 MiB bound within a few thousand distinct
 * stacks, so it resets many times, also in the middle of a batch group
 * whose entries were already looked up.  The names share all but the
 * leaf, so the tries (and their dumps) stay small.  len: each name's
 * length; with 1900 (~15 KiB entries) the cache resets below the batch's
 * prefetching size (PREFETCH_MIN entries in writer.c), with 700 above it,
 * so both ways of a batch group meet resets. */
static void exact_across_cache_resets(size_t len, unsigned distinct, int samples)
{
	struct st_engine *e = mk(1);
	struct st_ref *r = st_ref_create(2, 0);
	struct st_writer *w = st_writer_open(e);
	enum { D = 8, L = 1900, B = 8 };
	static char names[B][D][L];
	static const char *fr[B][D];
	static size_t ln[B][D];
	uint64_t v[2] = { 1, 5 }, seed = 3;
	struct st_str_sample batch[B];
	cr_assert_leq(len, L);
	for (int i = 0; i < samples; i += B) {
		for (int b = 0; b < B; b++) {
			/* Every other sample repeats a recent stack (a cache hit
			 * unless a reset came in between). */
			unsigned k = (unsigned)(ts_rand(&seed) % distinct);
			if (b & 1)
				k = (unsigned)(i / 2 % distinct);
			for (int f = 0; f < D; f++) {
				memset(names[b][f], 'a' + f, len);
				if (f == D - 1)
					snprintf(names[b][f], len, "leaf%u.", k);
				names[b][f][len - 1] = 'z';
				fr[b][f] = names[b][f];
				/* The leaf's length also varies with k. */
				ln[b][f] = f == D - 1 ? len - k % 3 : len - (size_t)f;
			}
			batch[b] = (struct st_str_sample){ fr[b], ln[b], D, v };
			cr_assert_eq(st_ref_add(r, fr[b], ln[b], D, v), 0);
		}
		cr_assert_eq(st_writer_ingest_strs_batch(w, batch, B), B);
		if (i % 4000 == 0)
			ts_assert_matches_ref(e, r, "flush at sample %d", i);
	}
	ts_assert_matches_ref(e, r, "end at sample %d", samples);
	st_writer_close(w);
	st_ref_destroy(r);
	st_engine_destroy(e);
}

Test(scache, engine_exact_across_cache_resets, .timeout = 120)
{
	exact_across_cache_resets(1900, 4000, 16000);
}

Test(scache, engine_exact_across_cache_resets_prefetched_groups, .timeout = 120)
{
	exact_across_cache_resets(700, 12000, 40000);
}

/* Root samples (depth 0, no arrays) through both string calls, first thing
 * on a fresh writer (under UBSan its key place w->kw + 0 was NULL + 0). */
Test(scache, root_samples_through_both_calls)
{
	struct st_engine *e = mk(1);
	struct st_writer *w = st_writer_open(e);
	uint64_t v[2] = { 3, 0 };
	struct st_str_sample s[2] = { { NULL, NULL, 0, v }, { NULL, NULL, 0, v } };
	cr_expect_eq(st_writer_ingest_strs_batch(w, s, 2), 2);
	cr_expect_eq(st_writer_ingest_strs(w, NULL, NULL, 0, v), 0);
	st_flush(e);
	cr_expect_eq(ts_root_total(e, 0), 9);
	st_writer_close(w);
	st_engine_destroy(e);
}

/*
 * The compare of long names' leading bytes visits the frames the key pass
 * marked long (st_scache_key: a bit per frame up to the 64th, every
 * frame looked at past that).  Under one forced hash, stacks that differ
 * from the cached one only in the leading bytes of one long name -- the
 * first, the second of two in a row, the 65th and the 70th frame -- are
 * not it.
 */
Test(scache, long_names_compared_at_the_marked_frames)
{
	enum { D = 70 };
	static uint64_t kw[2 * D];
	static char nm[D][32];
	static const char *fr[D];
	static size_t ln[D];
	struct st_scache *c = st_scache_create();
	cr_assert_not_null(c);
	const uint64_t H = 0x5eed;
	static uint32_t ids[D];
	/* Long names (same last 16 bytes, same length), each its own first
	 * byte (a compare against another's leading bytes fails); short ones
	 * between. */
	static const int longs[] = { 0, 1, 2, 40, 64, 69 };
	enum { NL = sizeof(longs) / sizeof(longs[0]) };
	for (int depth = 3; depth <= D; depth += D - 3) {
		for (int i = 0; i < D; i++) {
			snprintf(nm[i], sizeof(nm[i]), "s%d", i);
			for (int k = 0; k < NL; k++)
				if (longs[k] == i)
					snprintf(nm[i], sizeof(nm[i]), "%c0123456789abcdefXYZ",
						 'A' + k);
			fr[i] = nm[i];
			ln[i] = strlen(nm[i]);
		}
		uint64_t lm;
		cr_assert_neq(st_scache_key(fr, ln, (size_t)depth, kw, &lm), 0);
		struct st_scent *e = st_scache_insert(c, H, fr, ln, (size_t)depth, kw, ids, 1);
		cr_assert_not_null(e);
		cr_assert_eq(st_scache_find(c, H, fr, ln, (size_t)depth, kw, lm), e);
		for (int k = 0; k < NL; k++) {
			int i = longs[k];
			if (i >= depth)
				continue;
			nm[i][0] = (char)('a' + k); /* only this name's leading bytes */
			cr_assert_neq(st_scache_key(fr, ln, (size_t)depth, kw, &lm), 0);
			cr_assert_null(st_scache_find(c, H, fr, ln, (size_t)depth, kw, lm),
				       "depth %d: frame %d", depth, i);
			nm[i][0] = (char)('A' + k);
		}
		st_scache_reset(c);
	}
	st_scache_destroy(c);
}
