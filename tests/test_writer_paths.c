/* SPDX-License-Identifier: MIT */
/*
 * test_writer_paths.c - the writer's fast paths keep the engine's answers:
 * the name table across its growth under concurrent interning, the
 * writer's name cache (keyed by stack-key words, long names compared by
 * their leading bytes too) across its growth, and the frame check that a
 * sample by ids now gets only when its stack is new to the table.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardtrie.h"
#include "shardtrie_ref.h"
#include "support/support.h"

static uint64_t root_total(struct st_engine *e)
{
	cr_assert_gt(st_flush(e), 0);
	struct st_snap *s = st_snap_acquire(e);
	uint64_t t = st_snap_total(s, ST_NODE_ROOT, 0);
	st_snap_release(s);
	return t;
}

/* ------------------------------------------------ name table growth */

#define NNAMES 120000 /* past two growths of the name table */
#define NTHREADS 4
static struct st_engine *grow_e;
static uint32_t grow_ids[NTHREADS][NNAMES];

static void *grow_interner(void *arg)
{
	int t = (int)(intptr_t)arg;
	char name[48];
	for (int k = 0; k < NNAMES; k++) {
		/* Each thread its own order: every name raced for. */
		int i = (int)(((long)k * 7919 + t * 104729) % NNAMES);
		int n = snprintf(name, sizeof(name), "ns::name_%d_%s", i,
				 i % 3 ? "x" : "a_longer_suffix_than_sixteen");
		int64_t id = st_intern(grow_e, name, (size_t)n);
		if (id < 0)
			return (void *)1;
		grow_ids[t][i] = (uint32_t)id;
	}
	return NULL;
}

Test(writer_paths, name_table_growth_under_concurrent_interning, .timeout = 120)
{
	grow_e = ts_engine_no_merger(2);
	size_t before = st_frame_count(grow_e);
	pthread_t th[NTHREADS];
	for (intptr_t i = 0; i < NTHREADS; i++)
		pthread_create(&th[i], NULL, grow_interner, (void *)i);
	for (int i = 0; i < NTHREADS; i++) {
		void *rv;
		pthread_join(th[i], &rv);
		cr_assert_null(rv);
	}
	cr_assert_eq(st_frame_count(grow_e), before + NNAMES, "one id per name");
	char want[48];
	for (int i = 0; i < NNAMES; i++) {
		for (int k = 1; k < NTHREADS; k++)
			cr_assert_eq(grow_ids[k][i], grow_ids[0][i], "name %d", i);
		int n = snprintf(want, sizeof(want), "ns::name_%d_%s", i,
				 i % 3 ? "x" : "a_longer_suffix_than_sixteen");
		size_t len;
		const char *got = st_frame_name(grow_e, grow_ids[0][i], &len);
		cr_assert_eq(len, (size_t)n);
		cr_assert_eq(memcmp(got, want, len), 0);
		/* And found again (no insert) after the growth. */
		cr_assert_eq(st_intern(grow_e, want, (size_t)n), (int64_t)grow_ids[0][i]);
	}
	cr_assert_eq(st_frame_count(grow_e), before + NNAMES);
	st_engine_destroy(grow_e);
}

/* ------------------------------------------------ the writer's name cache */

/* Names of every length 0..40 that differ from one another in one byte,
 * at every position: long ones share their last 16 bytes, so only the
 * leading bytes tell them apart. */
Test(writer_paths, names_differing_in_one_byte_stay_apart)
{
	struct st_engine *e = ts_engine_no_merger(2);
	struct st_writer *w = st_writer_open(e);
	cr_assert_not_null(w);
	static char buf[41][41][41];
	uint64_t v[1] = { 1 }, n = 0;
	size_t distinct = 0;
	for (size_t len = 0; len <= 40; len++) {
		for (size_t pos = 0; pos <= len; pos++) {
			memset(buf[len][pos], 'q', len);
			if (pos < len)
				buf[len][pos][pos] = 'z'; /* pos == len: the plain name */
			/* Two frames so that the stacks also differ from the
			 * other lengths' by their root. */
			const char *fr[2] = { "root", buf[len][pos] };
			size_t ln[2] = { 4, len };
			/* Twice: the second time through the caches. */
			for (int k = 0; k < 2; k++, n++)
				cr_assert_eq(st_writer_ingest_strs(w, fr, ln, 2, v), 0);
			distinct++;
		}
	}
	cr_assert_eq(root_total(e), n);
	struct st_snap *s = st_snap_acquire(e);
	uint32_t first, nc = st_snap_children(s, ST_NODE_ROOT, &first);
	cr_assert_eq(nc, 1);
	uint32_t kids = st_snap_children(s, first, &first);
	/* Length 0 has only the plain name: one stack per (len, pos < len)
	 * plus the plain one, each with 2 samples. */
	cr_assert_eq(kids, distinct);
	for (uint32_t i = first; i < first + kids; i++)
		cr_assert_eq(st_snap_total(s, i, 0), 2, "node %u", i);
	st_snap_release(s);
	st_writer_close(w);
	st_engine_destroy(e);
}

/* Two long names (same length, same last 16 bytes) whose hashes agree in
 * their low 20 bits land in the same slot of the writer's name cache (of
 * up to 2^20 slots): only their leading bytes tell them apart there. */
Test(writer_paths, long_names_sharing_a_cache_slot_stay_apart)
{
	enum { CAND = 1 << 14 };
	static int32_t seen[1 << 20];
	static char nm[CAND][40];
	memset(seen, 0xff, sizeof(seen));
	int a = -1, b = -1;
	for (int i = 0; i < CAND && a < 0; i++) {
		snprintf(nm[i], sizeof(nm[i]), "%06d_the_same_last_16_bytes", i);
		uint32_t k = (uint32_t)st_hash_bytes(nm[i], strlen(nm[i])) & ((1u << 20) - 1);
		if (seen[k] >= 0) {
			a = seen[k];
			b = i;
		}
		seen[k] = i;
	}
	cr_assert_geq(a, 0, "no pair found among %d names", CAND);
	struct st_engine *e = ts_engine_no_merger(2);
	struct st_writer *w = st_writer_open(e);
	cr_assert_not_null(w);
	uint64_t v[1] = { 1 };
	/* Different stacks (so the stack cache has nothing to say), the
	 * names in the same cache slot one after the other. */
	const char *fa[2] = { "x", nm[a] }, *fb[2] = { "y", nm[b] };
	size_t ln[2] = { 1, strlen(nm[a]) };
	cr_assert_eq(st_writer_ingest_strs(w, fa, ln, 2, v), 0);
	cr_assert_eq(st_writer_ingest_strs(w, fb, ln, 2, v), 0);
	cr_assert_eq(root_total(e), 2);
	struct st_snap *s = st_snap_acquire(e);
	uint32_t first, n = st_snap_children(s, ST_NODE_ROOT, &first);
	cr_assert_eq(n, 2);
	for (uint32_t i = first; i < first + 2; i++) {
		uint32_t c;
		cr_assert_eq(st_snap_children(s, i, &c), 1);
		size_t l;
		const char *got = st_snap_name(s, c, &l);
		const char *want = *st_snap_name(s, i, NULL) == 'x' ? nm[a] : nm[b];
		cr_assert_eq(l, strlen(want));
		cr_assert_eq(memcmp(got, want, l), 0, "%.*s != %s", (int)l, got, want);
	}
	st_snap_release(s);
	st_writer_close(w);
	st_engine_destroy(e);
}

/* More names than the writer's name cache holds, seen again: the cache
 * grows on misses of known names, and every answer stays exact. */
Test(writer_paths, name_cache_growth_keeps_totals, .timeout = 120)
{
	struct st_engine *e = ts_engine_no_merger(2);
	struct st_writer *w = st_writer_open(e);
	cr_assert_not_null(w);
	enum { NAMES = 150000, STACKS = 300000 };
	static char names[NAMES][24];
	static size_t lens[NAMES];
	for (int i = 0; i < NAMES; i++)
		lens[i] = (size_t)snprintf(names[i], sizeof(names[i]), "f%d%s", i,
					   i % 2 ? "" : "_and_more_bytes");
	uint64_t v[1] = { 1 }, n = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (int k = 0; k < STACKS; k++) {
			/* Stacks of 3 names, each stack new in pass 0 and again
			 * in pass 1: the stack cache (256 Ki) cannot hold them
			 * all, so names are looked up again. */
			int a = k % NAMES, b = (k * 7 + 1) % NAMES, c = (k * 13 + 2) % NAMES;
			const char *fr[3] = { names[a], names[b], names[c] };
			size_t ln[3] = { lens[a], lens[b], lens[c] };
			cr_assert_eq(st_writer_ingest_strs(w, fr, ln, 3, v), 0);
			n++;
		}
	}
	cr_assert_eq(root_total(e), n);
	cr_assert_eq(st_frame_count(e), (size_t)NAMES + 1); /* + "[other]" */
	struct st_stats st = { .size = sizeof(st) };
	st_engine_stats(e, &st);
	cr_assert_eq(st.dropped, 0);
	st_writer_close(w);
	st_engine_destroy(e);
}

/* ------------------------------------------------ the frame check by ids */

/* A stack by ids is checked only when it is new to the table: an unknown
 * id is still refused (single and batch, nothing added), a known stack
 * still goes in, and an id interned after a refusal is accepted. */
Test(writer_paths, unknown_ids_refused_only_new_stacks_checked)
{
	struct st_engine *e = ts_engine_no_merger(2);
	struct st_writer *w = st_writer_open(e);
	cr_assert_not_null(w);
	uint32_t f[3];
	f[0] = (uint32_t)st_intern(e, "a", 1);
	f[1] = (uint32_t)st_intern(e, "b", 1);
	uint64_t v[1] = { 1 }, n = 0;
	cr_assert_eq(st_writer_ingest(w, f, 2, v), 0);
	n++;
	uint32_t next = (uint32_t)st_frame_count(e);
	f[2] = next; /* not interned yet */
	cr_assert_eq(st_writer_ingest(w, f, 3, v), -EINVAL);
	cr_assert_eq(st_writer_ingest(w, f, 2, v), 0); /* the known stack */
	n++;
	struct st_sample s[3] = {
		{ .frames = f, .depth = 2, .values = v },
		{ .frames = f, .depth = 3, .values = v },
		{ .frames = f, .depth = 2, .values = v },
	};
	size_t done = 99;
	cr_assert_eq(st_writer_ingest_batch_done(w, s, 3, &done), -EINVAL);
	cr_assert_eq(done, 1, "the sample before the refused one only");
	n++;
	cr_assert_eq(root_total(e), n);
	/* Now the id exists: the same stack is accepted, in both calls. */
	cr_assert_eq(st_intern(e, "c", 1), (int64_t)next);
	cr_assert_eq(st_writer_ingest(w, f, 3, v), 0);
	n++;
	cr_assert_eq(st_writer_ingest_batch(w, s, 3), 3);
	n += 3;
	cr_assert_eq(root_total(e), n);
	/* A much larger id is still refused after the bound moved. */
	f[2] = next + 1000;
	cr_assert_eq(st_writer_ingest(w, f, 3, v), -EINVAL);
	cr_assert_eq(st_writer_ingest_batch(w, s + 1, 1), -EINVAL);
	cr_assert_eq(root_total(e), n);
	struct st_stats st = { .size = sizeof(st) };
	st_engine_stats(e, &st);
	cr_assert_eq(st.dropped, 0);
	st_writer_close(w);
	st_engine_destroy(e);
}

/* ------------------------------------------------ batch across a reset */

/* The stack cache empties itself when full (256 Ki stacks at its largest
 * slot table) and reuses its oldest memory first.  In a prefetched batch
 * group, a stack found before another sample's miss reset the cache must
 * be looked up again: its entry's memory may hold the stack just added. */
Test(writer_paths, batch_group_refinds_entries_after_a_cache_reset, .timeout = 120)
{
	enum { FULL = 1 << 18 }; /* entries that fill the largest table */
	struct st_engine *e = ts_engine_no_merger(2);
	struct st_writer *w = st_writer_open(e);
	cr_assert_not_null(w);
	uint64_t v[1] = { 1 };
	char buf[32];
	const char *fr[1] = { buf };
	size_t ln[1];
	/* s0 first: the oldest entry, at the start of the oldest chunk. */
	for (int k = 0; k < FULL; k++) {
		ln[0] = (size_t)snprintf(buf, sizeof(buf), "s%d", k);
		cr_assert_eq(st_writer_ingest_strs(w, fr, ln, 1, v), 0);
	}
	/* A group of 8: a new stack (its insert resets the cache), then s0,
	 * found when the group was keyed. */
	const char *fn[1] = { "new" }, *f0[1] = { "s0" };
	size_t lnew[1] = { 3 }, l0[1] = { 2 };
	struct st_str_sample g[8];
	for (int x = 0; x < 8; x++)
		g[x] = (struct st_str_sample){ .frames = f0, .lens = l0, .depth = 1, .values = v };
	g[0].frames = fn;
	g[0].lens = lnew;
	cr_assert_eq(st_writer_ingest_strs_batch(w, g, 8), 8);
	cr_assert_gt(st_flush(e), 0);
	struct st_snap *s = st_snap_acquire(e);
	cr_assert_eq(st_snap_total(s, ST_NODE_ROOT, 0), (uint64_t)FULL + 8);
	uint32_t first, n = st_snap_children(s, ST_NODE_ROOT, &first);
	cr_assert_eq(n, (uint32_t)FULL + 1);
	int checked = 0;
	for (uint32_t i = first; i < first + n; i++) {
		size_t l;
		const char *nm = st_snap_name(s, i, &l);
		if (l == 3 && memcmp(nm, "new", 3) == 0) {
			cr_assert_eq(st_snap_total(s, i, 0), 1, "new");
			checked++;
		} else if (l == 2 && memcmp(nm, "s0", 2) == 0) {
			cr_assert_eq(st_snap_total(s, i, 0), 8, "s0");
			checked++;
		}
	}
	cr_assert_eq(checked, 2);
	st_snap_release(s);
	st_writer_close(w);
	st_engine_destroy(e);
}

/* ------------------------------------------------ misses in batch groups */

/*
 * Stack-cache misses inside prefetched batch groups (more than PREFETCH_MIN
 * stacks cached first, writer.c), as the miss path now takes them: the
 * names of a stack interned together, some new to the engine, the same new
 * name twice in one stack, in two misses of one group, long ones (past the
 * 16 bytes of the stack key), a stack missed twice in a group, names
 * interned meanwhile by another writer.  The engine matches the reference
 * trie, and each distinct name has one id (the frame count is the number of
 * distinct names passed).
 */
/* Warm a writer with n distinct stacks "warm;wK" through single calls, into
 * the reference too; each leaf name goes to all[*nall++] when all is set. */
static void warm_stacks(struct st_writer *w, struct st_ref *r, int n, char **all, size_t *nall)
{
	uint64_t v[1] = { 1 };
	for (int k = 0; k < n; k++) {
		char nm[16];
		const char *f2[2] = { "warm", nm };
		size_t l2[2] = { 4, (size_t)snprintf(nm, sizeof(nm), "w%d", k) };
		cr_assert_eq(st_writer_ingest_strs(w, f2, l2, 2, v), 0);
		cr_assert_eq(st_ref_add(r, f2, l2, 2, v), 0);
		if (all)
			all[(*nall)++] = strdup(nm);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

Test(writer_paths, misses_in_batch_groups_match_the_reference, .timeout = 120)
{
	enum { WARM = 6000, B = 64, ROUNDS = 300 };
	struct st_engine *e = ts_engine_no_merger(2);
	struct st_ref *r = st_ref_create(1, 0);
	cr_assert_not_null(r);
	struct st_writer *w = st_writer_open(e), *w2 = st_writer_open(e);
	cr_assert_not_null(w);
	cr_assert_not_null(w2);
	uint64_t v[1] = { 1 };
	static char buf[B][6][48];
	static const char *fr[B][6];
	static size_t ln[B][6];
	struct st_str_sample s[B];
	/* Every name passed, for the count of distinct ones. */
	size_t nall = 0;
	static char *all[WARM + 2 + ROUNDS * (B * 6 + 1)];
	all[nall++] = strdup("warm");
	/* Warm: WARM distinct stacks "warm;wN" through single calls. */
	warm_stacks(w, r, WARM, all, &nall);
	uint64_t seed = 42;
	for (int round = 0; round < ROUNDS; round++) {
		for (int x = 0; x < B; x++) {
			uint64_t q = ts_rand(&seed);
			int kind = (int)(q % 8);
			size_t d = 0;
			/* Mostly known stacks (hits), the rest new ones. */
			if (kind < 5) {
				snprintf(buf[x][0], 48, "warm");
				snprintf(buf[x][1], 48, "w%d", (int)((q >> 8) % WARM));
				d = 2;
			} else {
				/* New: "n<round>" twice, a long new name, and a
				 * name shared by the group's misses. */
				snprintf(buf[x][0], 48, "root");
				snprintf(buf[x][1], 48, "n%d_%d", round, x);
				snprintf(buf[x][2], 48, "n%d_%d", round, x);
				snprintf(buf[x][3], 48, "a_long_new_name_of_round_%d_%d", round,
					 kind == 7 ? 0 : x);
				snprintf(buf[x][4], 48, "shared%d", round);
				d = 5;
			}
			for (size_t i = 0; i < d; i++) {
				fr[x][i] = buf[x][i];
				ln[x][i] = strlen(buf[x][i]);
			}
			s[x] = (struct st_str_sample){ fr[x], ln[x], (uint32_t)d, v };
		}
		/* The same stack twice in the group: when it is new, the
		 * second finds what the first's miss cached. */
		s[B - 1] = s[B - 2];
		for (int x = 0; x < B; x++) {
			cr_assert_eq(st_ref_add(r, s[x].frames, s[x].lens, s[x].depth, v), 0);
			for (size_t i = 0; i < s[x].depth; i++)
				all[nall++] = strdup(s[x].frames[i]);
		}
		/* Another writer interns this round's shared name first, now
		 * and then: a name the miss path finds in the table, not in its
		 * cache. */
		if (round % 3 == 0) {
			char nm[16];
			snprintf(nm, sizeof(nm), "shared%d", round);
			const char *f1[1] = { nm };
			size_t l1[1] = { strlen(nm) };
			cr_assert_eq(st_writer_ingest_strs(w2, f1, l1, 1, v), 0);
			cr_assert_eq(st_ref_add(r, f1, l1, 1, v), 0);
		}
		cr_assert_eq(st_writer_ingest_strs_batch(w, s, B), B);
		if (round % 50 == 49)
			ts_assert_matches_ref(e, r, "round %d", round);
	}
	ts_assert_matches_ref(e, r, "end");
	qsort(all, nall, sizeof(*all), cmp_str);
	size_t distinct = 0;
	for (size_t i = 0; i < nall; i++) {
		distinct += i == 0 || strcmp(all[i], all[i - 1]) != 0;
		if (i)
			free(all[i - 1]);
	}
	free(all[nall - 1]);
	cr_assert_eq(st_frame_count(e), distinct + 1, "one id per name (+ \"[other]\"): %zu, %zu",
		     st_frame_count(e), distinct);
	struct st_stats st = { .size = sizeof(st) };
	st_engine_stats(e, &st);
	cr_assert_eq(st.dropped, 0);
	st_writer_close(w);
	st_writer_close(w2);
	st_ref_destroy(r);
	st_engine_destroy(e);
}

/* ------------------------------------------------ prefetched groups: spans */

/*
 * A batch group on a large stack cache prefetches the caller's arrays of
 * the next group by their first and last lines, the cache entry of each
 * sample by the sample's depth, and the name cache slots of each first
 * sighting before the group's misses are taken.  Every sample's pointer
 * and length arrays here are heap blocks of exactly its depth (so the
 * sanitizer build catches a read past a sample's frames), with depths from
 * 0 to 40 (arrays and entries over several lines), short, 16-byte and long
 * names, hits and first sightings mixed: the engine matches the reference.
 */
Test(writer_paths, prefetched_groups_read_only_their_samples, .timeout = 120)
{
	enum { WARM = 5000, B = 64, ROUNDS = 60, MAXD = 40 };
	struct st_engine *e = ts_engine_no_merger(1);
	struct st_ref *r = st_ref_create(1, 0);
	cr_assert_not_null(r);
	struct st_writer *w = st_writer_open(e);
	cr_assert_not_null(w);
	uint64_t v[1] = { 1 };
	/* Warm: past the size where groups take the prefetched way. */
	warm_stacks(w, r, WARM, NULL, NULL);
	static const char *const pool[] = { "a", "bc", "def", "ghij", "sixteen_bytes_xx",
					     "seventeen_bytes_x",
					     "a_long_name_well_past_sixteen_bytes" };
	enum { NP = sizeof(pool) / sizeof(pool[0]) };
	static char names[B][MAXD][48];
	struct st_str_sample s[B];
	const char **fr[B];
	size_t *ln[B];
	uint64_t seed = 7;
	for (int round = 0; round < ROUNDS; round++) {
		for (int x = 0; x < B; x++) {
			uint64_t q = ts_rand(&seed);
			size_t d = (size_t)(q % (MAXD + 1));
			int known = (q >> 8) % 4 == 0; /* a warm stack: a hit */
			if (known)
				d = 2;
			fr[x] = d ? malloc(d * sizeof(*fr[x])) : NULL;
			ln[x] = d ? malloc(d * sizeof(*ln[x])) : NULL;
			cr_assert(!d || (fr[x] && ln[x]));
			for (size_t i = 0; i < d; i++) {
				uint64_t u = ts_rand(&seed);
				if (known)
					snprintf(names[x][i], 48, i ? "w%d" : "warm",
						 (int)(u % WARM));
				else if (i == d - 1) /* makes the stack new */
					snprintf(names[x][i], 48, "leaf%d_%d", round, x);
				else
					snprintf(names[x][i], 48, "%s", pool[u % NP]);
				fr[x][i] = names[x][i];
				ln[x][i] = strlen(names[x][i]);
			}
			s[x] = (struct st_str_sample){ fr[x], ln[x], (uint32_t)d, v };
			cr_assert_eq(st_ref_add(r, s[x].frames, s[x].lens, s[x].depth, v), 0);
		}
		cr_assert_eq(st_writer_ingest_strs_batch(w, s, B), B, "round %d", round);
		for (int x = 0; x < B; x++) {
			free(fr[x]);
			free(ln[x]);
		}
	}
	ts_assert_matches_ref(e, r, "end");
	struct st_stats st = { .size = sizeof(st) };
	st_engine_stats(e, &st);
	cr_assert_eq(st.dropped, 0);
	st_writer_close(w);
	st_ref_destroy(r);
	st_engine_destroy(e);
}
