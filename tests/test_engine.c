/* SPDX-License-Identifier: MIT */
/*
 * test_engine.c - the engine's single-threaded semantics, each checked
 * against an expectation computed here or by the reference trie.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"

static struct st_engine *mk(unsigned nm, uint64_t cap)
{
	struct st_options o;
	st_options_init(&o);
	o.merge_interval_ms = 0;
	o.nshards = 2;
	o.nmetrics = nm;
	o.node_cap = cap;
	static const char *names[] = { "count", "duration_ns", "bytes", "m3", "m4", "m5", "m6", "m7" };
	for (unsigned i = 0; i < nm; i++)
		o.metrics[i].name = names[i];
	struct st_engine *e = st_engine_create(&o);
	cr_assert_not_null(e, "st_engine_create: %s", strerror(errno));
	return e;
}

/* Ingest a ';'-separated stack into a writer and (optionally) a reference. */
static void add(struct st_writer *w, struct st_ref *r, const char *stack, const uint64_t *v)
{
	const char *fr[256];
	size_t ln[256], d = 0;
	const char *p = stack;
	while (*p) {
		const char *s = strchr(p, ';');
		size_t l = s ? (size_t)(s - p) : strlen(p);
		fr[d] = p;
		ln[d++] = l;
		p += l + (s ? 1 : 0);
	}
	cr_assert_eq(st_writer_ingest_strs(w, fr, ln, d, v), 0);
	if (r)
		cr_assert_eq(st_ref_add(r, fr, ln, d, v), 0);
}

static void close_writer_and_engine(struct st_writer *w, struct st_engine *e)
{
	st_writer_close(w);
	st_engine_destroy(e);
}

static uint32_t child_named(struct st_snap *s, uint32_t node, const char *name)
{
	uint32_t first, n = st_snap_children(s, node, &first);
	for (uint32_t i = first; i < first + n; i++) {
		size_t l;
		const char *nm = st_snap_name(s, i, &l);
		if (l == strlen(name) && memcmp(nm, name, l) == 0)
			return i;
	}
	return UINT32_MAX;
}

Test(engine, options_are_validated)
{
	struct st_options o;
	st_options_init(&o);
	o.nmetrics = 0;
	cr_expect_null(st_engine_create(&o));
	cr_expect_eq(errno, EINVAL);
	o.nmetrics = ST_MAX_METRICS + 1;
	cr_expect_null(st_engine_create(&o));
	o.nmetrics = 1;
	o.node_cap = 3; /* below 4 the root + K + [other] bound cannot hold */
	cr_expect_null(st_engine_create(&o));
	o.node_cap = 0;
	o.size = 8;
	cr_expect_null(st_engine_create(&o));
}

Test(engine, empty_engine_has_version_one_snapshot)
{
	struct st_engine *e = mk(1, 0);
	struct st_snap *s = st_snap_acquire(e);
	cr_expect_eq(st_snap_version(s), 1);
	cr_expect_eq(st_snap_node_count(s), 1);
	cr_expect_eq(st_snap_total(s, ST_NODE_ROOT, 0), 0);
	st_snap_release(s);
	st_engine_destroy(e);
}

Test(engine, golden_two_stacks)
{
	struct st_engine *e = mk(1, 0);
	struct st_writer *w = st_writer_open(e);
	add(w, NULL, "a;b", (uint64_t[]){ 1 });
	add(w, NULL, "a;c", (uint64_t[]){ 2 });
	add(w, NULL, "a", (uint64_t[]){ 4 });
	uint64_t v = st_flush(e);
	cr_assert_gt(v, 1);
	struct st_snap *s = st_snap_acquire(e);
	cr_expect_eq(st_snap_version(s), v);
	cr_expect_eq(st_snap_node_count(s), 4);
	cr_expect_eq(st_snap_total(s, ST_NODE_ROOT, 0), 7);
	uint32_t a = child_named(s, ST_NODE_ROOT, "a");
	cr_assert_neq(a, UINT32_MAX);
	cr_expect_eq(st_snap_self(s, a, 0), 4);
	cr_expect_eq(st_snap_total(s, a, 0), 7);
	uint32_t first, n = st_snap_children(s, a, &first);
	cr_assert_eq(n, 2);
	cr_expect_str_eq(st_snap_name(s, first, NULL), "b");
	cr_expect_str_eq(st_snap_name(s, first + 1, NULL), "c");
	cr_expect_eq(st_snap_total(s, first + 1, 0), 2);
	cr_expect_eq(st_snap_depth(s, first + 1), 2);
	cr_expect_eq(st_snap_parent(s, first + 1), a);
	int64_t cid = st_intern(e, "c", 1);
	cr_expect_eq(st_snap_child_find(s, a, (uint32_t)cid), first + 1);
	st_snap_release(s);
	close_writer_and_engine(w, e);
}

Test(engine, children_in_bytewise_name_order)
{
	static const char *names[] = { "b", "a", "ab", "\xff", "A", "a b", "", "\x01", "aa" };
	static const char *want[] = { "", "\x01", "A", "a", "a b", "aa", "ab", "b", "\xff" };
	struct st_engine *e = mk(1, 0);
	struct st_writer *w = st_writer_open(e);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *fr[1] = { names[i] };
		size_t ln[1] = { strlen(names[i]) };
		cr_assert_eq(st_writer_ingest_strs(w, fr, ln, 1, (uint64_t[]){ 1 }), 0);
	}
	st_flush(e);
	struct st_snap *s = st_snap_acquire(e);
	uint32_t first, n = st_snap_children(s, ST_NODE_ROOT, &first);
	cr_assert_eq(n, sizeof(want) / sizeof(want[0]));
	for (uint32_t i = 0; i < n; i++)
		cr_expect_str_eq(st_snap_name(s, first + i, NULL), want[i], "child %u", i);
	st_snap_release(s);
	close_writer_and_engine(w, e);
}

Test(engine, versions_strictly_increase_and_reset_starts_a_baseline)
{
	struct st_engine *e = mk(1, 0);
	struct st_writer *w = st_writer_open(e);
	add(w, NULL, "x;y", (uint64_t[]){ 5 });
	uint64_t v1 = st_flush(e);
	add(w, NULL, "x;z", (uint64_t[]){ 5 });
	uint64_t v2 = st_reset(e);
	cr_expect_gt(v2, v1);
	struct st_snap *s = st_snap_acquire(e);
	cr_expect_eq(st_snap_version(s), v2);
	cr_expect_eq(st_snap_generation(s), 1);
	cr_expect_eq(st_snap_total(s, ST_NODE_ROOT, 0), 0, "reset discards pending samples");
	st_snap_release(s);
	add(w, NULL, "x;q", (uint64_t[]){ 3 });
	uint64_t v3 = st_flush(e);
	cr_expect_gt(v3, v2);
	cr_expect_eq(ts_root_total(e, 0), 3);
	close_writer_and_engine(w, e);
}

Test(engine, old_snapshot_stays_unchanged_while_held)
{
	struct st_engine *e = mk(1, 0);
	struct st_writer *w = st_writer_open(e);
	add(w, NULL, "a;b", (uint64_t[]){ 1 });
	st_flush(e);
	struct st_snap *old = st_snap_acquire(e);
	char *before = ts_dump_snap(old);
	for (int i = 0; i < 100; i++) {
		add(w, NULL, "a;b;c", (uint64_t[]){ 1 });
		st_flush(e);
	}
	st_reset(e);
	char *after = ts_dump_snap(old);
	cr_expect_str_eq(after, before);
	cr_expect_eq(st_snap_total(old, ST_NODE_ROOT, 0), 1);
	free(before);
	free(after);
	st_snap_release(old);
	close_writer_and_engine(w, e);
}

/* Snapshots of one master shape share their structure (snapshot.c): a held
 * snapshot keeps it, and its counts, while later ones of that shape and of
 * new shapes come and go. */
Test(engine, snapshots_sharing_a_shape_keep_their_own_counts)
{
	struct st_engine *e = mk(1, 0);
	struct st_writer *w = st_writer_open(e);
	add(w, NULL, "a;b", (uint64_t[]){ 1 });
	add(w, NULL, "a;c", (uint64_t[]){ 2 });
	st_flush(e);
	st_flush(e); /* same shape: the order is valid now */
	struct st_snap *held[4];
	for (int i = 0; i < 4; i++) {
		add(w, NULL, "a;b", (uint64_t[]){ 10 });
		st_flush(e); /* counts change, shape does not */
		held[i] = st_snap_acquire(e);
	}
	add(w, NULL, "a;d", (uint64_t[]){ 5 }); /* a new shape */
	st_flush(e);
	st_reset(e);
	for (int i = 0; i < 4; i++) { /* released oldest first: the shape lives on */
		struct st_snap *s = held[i];
		uint32_t a = child_named(s, ST_NODE_ROOT, "a");
		cr_assert_neq(a, UINT32_MAX);
		cr_expect_eq(st_snap_node_count(s), 4);
		cr_expect_eq(st_snap_total(s, child_named(s, a, "b"), 0), 1 + 10 * (uint64_t)(i + 1));
		cr_expect_eq(st_snap_total(s, child_named(s, a, "c"), 0), 2);
		cr_expect_eq(st_snap_total(s, ST_NODE_ROOT, 0), 3 + 10 * (uint64_t)(i + 1));
		cr_expect_eq(child_named(s, a, "d"), UINT32_MAX);
		st_snap_release(s);
	}
	cr_expect_eq(ts_root_total(e, 0), 0);
	close_writer_and_engine(w, e);
}

Test(engine, metrics_are_independent)
{
	struct st_engine *e = mk(3, 0);
	struct st_writer *w = st_writer_open(e);
	add(w, NULL, "r;w", (uint64_t[]){ 1, 100, 4096 });
	add(w, NULL, "r;w", (uint64_t[]){ 1, 50, 0 });
	add(w, NULL, "r", (uint64_t[]){ 1, 7, 1 });
	st_flush(e);
	struct st_snap *s = st_snap_acquire(e);
	cr_expect_eq(st_snap_total(s, ST_NODE_ROOT, 0), 3);
	cr_expect_eq(st_snap_total(s, ST_NODE_ROOT, 1), 157);
	cr_expect_eq(st_snap_total(s, ST_NODE_ROOT, 2), 4097);
	uint32_t r = child_named(s, ST_NODE_ROOT, "r");
	cr_expect_eq(st_snap_self(s, r, 1), 7);
	cr_expect_eq(st_engine_metric_index(e, "bytes"), 2);
	cr_expect_eq(st_engine_metric_index(e, "nope"), -ENOENT);
	st_snap_release(s);
	close_writer_and_engine(w, e);
}

Test(engine, sums_saturate_instead_of_wrapping)
{
	struct st_engine *e = mk(1, 0);
	struct st_writer *w = st_writer_open(e);
	add(w, NULL, "a;b", (uint64_t[]){ UINT64_MAX - 1 });
	add(w, NULL, "a;b", (uint64_t[]){ 5 });
	st_flush(e);
	add(w, NULL, "a;c", (uint64_t[]){ 9 });
	st_flush(e);
	struct st_snap *s = st_snap_acquire(e);
	cr_expect_eq(st_snap_total(s, ST_NODE_ROOT, 0), UINT64_MAX);
	uint32_t a = child_named(s, ST_NODE_ROOT, "a");
	cr_expect_eq(st_snap_self(s, child_named(s, a, "b"), 0), UINT64_MAX);
	cr_expect_eq(st_snap_self(s, child_named(s, a, "c"), 0), 9);
	st_snap_release(s);
	close_writer_and_engine(w, e);
}

/*
 * A snapshot stores totals only and derives self from the children's
 * totals, which cannot give it back once a total saturated: those nodes
 * keep their self aside.  p's first metric saturates through its child q
 * while its second does not; p's own self must come back exact in both,
 * for one metric and for two (separate code paths), on a first publish
 * and on a same-shape one.
 */
Test(engine, self_is_exact_under_a_saturated_total)
{
	for (unsigned nm = 1; nm <= 2; nm++) {
		struct st_engine *e = mk(nm, 0);
		struct st_writer *w = st_writer_open(e);
		add(w, NULL, "p", (uint64_t[]){ 7, 3 });
		add(w, NULL, "p;q", (uint64_t[]){ UINT64_MAX - 2, 10 });
		add(w, NULL, "p;r", (uint64_t[]){ 5, 20 });
		add(w, NULL, "z", (uint64_t[]){ 1, 1 });
		for (int pass = 0; pass < 2; pass++) {
			cr_assert_neq(st_flush(e), 0);
			struct st_snap *s = st_snap_acquire(e);
			uint32_t p = child_named(s, ST_NODE_ROOT, "p");
			uint32_t q = child_named(s, p, "q"), r = child_named(s, p, "r");
			uint32_t z = child_named(s, ST_NODE_ROOT, "z");
			uint64_t k = (uint64_t)pass + 1; /* p and z get one more each pass */
			cr_expect_eq(st_snap_total(s, p, 0), UINT64_MAX, "nm %u", nm);
			cr_expect_eq(st_snap_self(s, p, 0), 7 * k, "nm %u pass %d", nm, pass);
			cr_expect_eq(st_snap_self(s, q, 0), UINT64_MAX - 2);
			cr_expect_eq(st_snap_self(s, r, 0), 5);
			cr_expect_eq(st_snap_self(s, z, 0), k);
			cr_expect_eq(st_snap_self(s, ST_NODE_ROOT, 0), 0);
			if (nm == 2) {
				cr_expect_eq(st_snap_self(s, p, 1), 3 * k, "pass %d", pass);
				cr_expect_eq(st_snap_total(s, p, 1), 3 * k + 30);
				cr_expect_eq(st_snap_self(s, z, 1), k);
				cr_expect_eq(st_snap_total(s, ST_NODE_ROOT, 1), 4 * k + 30);
			}
			st_snap_release(s);
			add(w, NULL, "p", (uint64_t[]){ 7, 3 });
			add(w, NULL, "z", (uint64_t[]){ 1, 1 });
		}
		close_writer_and_engine(w, e);
	}
}

/*
 * Shard records are kept across merges with cumulative values, the merger
 * folding only what each gained (shard.c, "Who writes what").  Random adds
 * of small, huge and saturating values to a few stacks, with flushes and
 * resets in between, must give exactly the saturated sums computed here
 * since the last reset, in every metric.
 */
Test(engine, kept_records_fold_what_they_gained_across_flushes_and_resets)
{
	static const char *const stacks[] = { "a;b", "a;c", "a;b;d", "x" };
	enum { NS = 4, NM = 2 };
	struct st_engine *e = mk(NM, 0);
	struct st_writer *w = st_writer_open(e);
	uint64_t want[NS][NM] = { { 0 } };
	uint64_t rng = 0x9e3779b97f4a7c15u;
	for (int step = 0; step < 4000; step++) {
		rng = rng * 6364136223846793005u + 1442695040888963407u;
		unsigned op = (unsigned)(rng >> 59) & 31, k = (unsigned)(rng >> 40) % NS;
		if (op == 0) {
			cr_assert_neq(st_reset(e), 0);
			memset(want, 0, sizeof(want));
			continue;
		}
		if (op < 5) {
			cr_assert_neq(st_flush(e), 0);
			struct st_snap *s = st_snap_acquire(e);
			for (unsigned i = 0; i < NS; i++) {
				uint32_t n = ST_NODE_ROOT;
				char buf[16];
				strcpy(buf, stacks[i]);
				for (char *tok = strtok(buf, ";"); tok; tok = strtok(NULL, ";"))
					n = n == UINT32_MAX ? n : child_named(s, n, tok);
				for (unsigned m = 0; m < NM; m++) {
					uint64_t got = n == UINT32_MAX ? 0 : st_snap_self(s, n, m);
					cr_assert_eq(got, want[i][m], "step %d stack %s metric %u: %llu, want %llu",
						     step, stacks[i], m, (unsigned long long)got,
						     (unsigned long long)want[i][m]);
				}
			}
			st_snap_release(s);
			continue;
		}
		uint64_t v[NM];
		for (unsigned m = 0; m < NM; m++) {
			rng = rng * 6364136223846793005u + 1442695040888963407u;
			unsigned kind = (unsigned)(rng >> 61);
			uint64_t r = rng >> 33;
			v[m] = kind == 0 ? UINT64_MAX : kind == 1 ? UINT64_MAX - r % 1000 :
			       kind == 2 ? UINT64_MAX / 2 + r % 1000 : r % 1000;
			uint64_t sum;
			want[k][m] = __builtin_add_overflow(want[k][m], v[m], &sum) ? UINT64_MAX : sum;
		}
		add(w, NULL, stacks[k], v);
	}
	close_writer_and_engine(w, e);
}

Test(engine, bad_samples_are_rejected)
{
	struct st_engine *e = mk(1, 0);
	struct st_writer *w = st_writer_open(e);
	uint32_t bogus = 1000000;
	cr_expect_eq(st_writer_ingest(w, &bogus, 1, (uint64_t[]){ 1 }), -EINVAL);
	cr_expect_eq(st_writer_ingest(w, &bogus, ST_MAX_DEPTH + 1, (uint64_t[]){ 1 }), -E2BIG);
	char *big = malloc(ST_MAX_FRAME_LEN + 1);
	memset(big, 'x', ST_MAX_FRAME_LEN + 1);
	cr_expect_eq(st_intern(e, big, ST_MAX_FRAME_LEN + 1), -ENAMETOOLONG);
	free(big);
	st_flush(e);
	struct st_snap *s = st_snap_acquire(e);
	cr_expect_eq(st_snap_node_count(s), 1);
	st_snap_release(s);
	close_writer_and_engine(w, e);
}

Test(engine, ten_thousand_frame_stack)
{
	enum { D = 10000 };
	struct st_engine *e = mk(1, 0);
	struct st_writer *w = st_writer_open(e);
	uint32_t *ids = malloc(D * sizeof(*ids));
	char name[32];
	for (int i = 0; i < D; i++) {
		snprintf(name, sizeof(name), "f%d", i % 97);
		ids[i] = (uint32_t)st_intern(e, name, strlen(name));
	}
	cr_assert_eq(st_writer_ingest(w, ids, D, (uint64_t[]){ 3 }), 0);
	cr_assert_eq(st_writer_ingest(w, ids, D, (uint64_t[]){ 4 }), 0);
	st_flush(e);
	struct st_snap *s = st_snap_acquire(e);
	cr_expect_eq(st_snap_node_count(s), D + 1);
	cr_expect_eq(st_snap_self(s, D, 0), 7);
	cr_expect_eq(st_snap_depth(s, D), D);
	cr_expect_eq(st_snap_total(s, 1, 0), 7);
	st_snap_release(s);
	free(ids);
	close_writer_and_engine(w, e);
}

Test(engine, intern_is_stable_and_byte_exact)
{
	struct st_engine *e = mk(1, 0);
	int64_t a = st_intern(e, "a\0b", 3), b = st_intern(e, "a\0c", 3), a2 = st_intern(e, "a\0b", 3);
	cr_expect_geq(a, 0);
	cr_expect_neq(a, b);
	cr_expect_eq(a, a2);
	size_t len;
	const char *n = st_frame_name(e, (uint32_t)a, &len);
	cr_expect_eq(len, 3);
	cr_expect_eq(memcmp(n, "a\0b", 3), 0);
	cr_expect_null(st_frame_name(e, 999999, NULL));
	cr_expect_str_eq(st_frame_name(e, ST_FRAME_ROOT, NULL), "");
	st_engine_destroy(e);
}

/* Random stacks over a small alphabet, through two writers, against the
 * reference, flushing at random points. */
static void random_differential(uint64_t seed, uint64_t cap, unsigned nm, int samples)
{
	struct st_engine *e = mk(nm, cap);
	struct st_ref *r = st_ref_create(nm, cap);
	struct st_writer *w[2] = { st_writer_open(e), st_writer_open(e) };
	char stack[256];
	for (int i = 0; i < samples; i++) {
		int depth = 1 + (int)(ts_rand(&seed) % 8);
		size_t p = 0;
		for (int d = 0; d < depth; d++)
			p += (size_t)snprintf(stack + p, sizeof(stack) - p, "%s%c%u", d ? ";" : "",
					      'a' + (int)(ts_rand(&seed) % 3), (unsigned)(ts_rand(&seed) % 4));
		uint64_t v[ST_MAX_METRICS];
		for (unsigned m = 0; m < nm; m++)
			v[m] = ts_rand(&seed) % 1000;
		add(w[ts_rand(&seed) & 1], r, stack, v);
		if (ts_rand(&seed) % 97 == 0)
			ts_assert_matches_ref(e, r, "seed %llu sample %d", (unsigned long long)seed, i);
	}
	ts_assert_matches_ref(e, r, "end");
	if (cap) {
		struct st_snap *s = st_snap_acquire(e);
		cr_expect_leq(st_snap_node_count(s), cap);
		st_snap_release(s);
	}
	st_writer_close(w[0]);
	st_writer_close(w[1]);
	st_ref_destroy(r);
	st_engine_destroy(e);
}

Test(engine, matches_reference_on_random_stacks)
{
	for (uint64_t seed = 1; seed <= 5; seed++)
		random_differential(seed, 0, 2, 3000);
}

Test(engine, node_cap_folds_into_other_and_conserves_totals)
{
	for (uint64_t seed = 11; seed <= 15; seed++)
		random_differential(seed, 40, 3, 3000);
	/* A hand-checked case: cap 5 keeps K=(5-2)/2=1 subtree. */
	struct st_engine *e = mk(1, 5);
	struct st_writer *w = st_writer_open(e);
	add(w, NULL, "big", (uint64_t[]){ 100 });
	add(w, NULL, "mid", (uint64_t[]){ 50 });
	add(w, NULL, "s1", (uint64_t[]){ 1 });
	add(w, NULL, "s2", (uint64_t[]){ 2 });
	add(w, NULL, "s3;deep", (uint64_t[]){ 3 });
	st_flush(e);
	struct st_snap *s = st_snap_acquire(e);
	cr_expect_eq(st_snap_total(s, ST_NODE_ROOT, 0), 156);
	cr_expect_eq(st_snap_node_count(s), 3); /* root, [other], big */
	uint32_t o = child_named(s, ST_NODE_ROOT, ST_OTHER_NAME);
	cr_assert_neq(o, UINT32_MAX);
	cr_expect_eq(st_snap_self(s, o, 0), 56); /* mid 50 + s1 1 + s2 2 + s3 3 */
	st_snap_release(s);
	struct st_stats stats = { .size = sizeof(stats) };
	st_engine_stats(e, &stats);
	cr_expect_eq(stats.folded, 4); /* 7 nodes in, 3 out */
	close_writer_and_engine(w, e);
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/*
 * Many new stacks in one flush: the fold's radix sort by frame ids and its
 * walk (st_master_link_sorted) at sizes the small random tests never reach.
 * Stacks grow as a random tree (each keeps a random prefix of an earlier
 * one: long shared prefixes, stacks that are prefixes of others, the same
 * stack through both writers), some hundreds of frames deep, over 70,000
 * names so that ids differ in three bytes, mixed with a 3-name alphabet for
 * long runs of equal ids.  Each round adds the set again and new stacks.
 */
#define SF_NAMES 70000
#define SF_MAXD 300

struct sf_stacks {
	int n;
	uint32_t (*f)[SF_MAXD]; /* name indexes */
	uint32_t *depth;
};

static void sf_grow(struct sf_stacks *s, int upto, uint64_t *seed)
{
	for (int i = s->n; i < upto; i++) {
		uint32_t keep = 0;
		if (i && ts_rand(seed) % 8) {
			int from = (int)(ts_rand(seed) % (uint64_t)i);
			keep = (uint32_t)(ts_rand(seed) % (s->depth[from] + 1));
			memcpy(s->f[i], s->f[from], keep * sizeof(uint32_t));
		}
		uint32_t d = keep + (uint32_t)(ts_rand(seed) % 6);
		if (ts_rand(seed) % 16 == 0)
			d = keep + (uint32_t)(ts_rand(seed) % 200); /* deep */
		d = d > SF_MAXD ? SF_MAXD : d;
		for (uint32_t k = keep; k < d; k++) {
			bool small = ts_rand(seed) % 2;
			s->f[i][k] = (uint32_t)(ts_rand(seed) % (small ? 3 : SF_NAMES));
		}
		s->depth[i] = d;
	}
	s->n = upto;
}

static void sorted_fold_differential(uint64_t seed, uint64_t cap, int per_round, int rounds)
{
	struct st_engine *e = mk(1, cap);
	struct st_ref *r = st_ref_create(1, cap);
	struct st_writer *w[2] = { st_writer_open(e), st_writer_open(e) };
	static char names[SF_NAMES][8];
	static size_t lens[SF_NAMES];
	uint32_t *ids = malloc(SF_NAMES * sizeof(*ids));
	struct sf_stacks s = { 0, malloc((size_t)per_round * rounds * sizeof(*s.f)),
			       malloc((size_t)per_round * rounds * sizeof(uint32_t)) };
	cr_assert(ids && s.f && s.depth);
	for (uint32_t i = 0; i < SF_NAMES; i++) {
		lens[i] = (size_t)snprintf(names[i], sizeof(names[i]), "n%u", i);
		int64_t id = st_intern(e, names[i], lens[i]);
		cr_assert_geq(id, 0);
		ids[i] = (uint32_t)id;
	}
	const char *fr[SF_MAXD];
	size_t fl[SF_MAXD];
	uint32_t fid[SF_MAXD];
	for (int round = 0; round < rounds; round++) {
		sf_grow(&s, (round + 1) * per_round, &seed);
		for (int i = 0; i < s.n; i++) {
			int reps = 1 + (ts_rand(&seed) % 4 == 0); /* some through both */
			for (int k = 0; k < reps; k++) {
				for (uint32_t x = 0; x < s.depth[i]; x++) {
					fr[x] = names[s.f[i][x]];
					fl[x] = lens[s.f[i][x]];
					fid[x] = ids[s.f[i][x]];
				}
				uint64_t v = 1 + ts_rand(&seed) % 100;
				cr_assert_eq(st_writer_ingest(w[ts_rand(&seed) & 1], fid, s.depth[i], &v),
					     0);
				cr_assert_eq(st_ref_add(r, fr, fl, s.depth[i], &v), 0);
			}
		}
		ts_assert_matches_ref(e, r, "seed %llu round %d", (unsigned long long)seed, round);
	}
	free(s.f);
	free(s.depth);
	free(ids);
	st_writer_close(w[0]);
	st_writer_close(w[1]);
	st_ref_destroy(r);
	st_engine_destroy(e);
}

Test(engine, sorted_fold_matches_reference_on_deep_shared_prefixes)
{
	sorted_fold_differential(21, 0, 3000, 3);
	sorted_fold_differential(22, 0, 6000, 2);
}

Test(engine, sorted_fold_matches_reference_under_node_cap)
{
	sorted_fold_differential(23, 2000, 3000, 2);
}

/* Snapshot invariant that a fold asking for the same (parent, frame) child
 * twice would break: no two siblings carry the same frame. */
static void expect_no_twin_siblings(struct st_snap *s)
{
	for (uint32_t i = 0; i < st_snap_node_count(s); i++) {
		uint32_t first, n = st_snap_children(s, i, &first);
		for (uint32_t c = first + 1; c < first + n; c++)
			cr_assert_neq(st_snap_frame(s, c), st_snap_frame(s, c - 1),
				      "node %u has two children named %u", i, st_snap_frame(s, c));
	}
}

static int sf_cmp(const void *a, const void *b, void *arg)
{
	const struct sf_stacks *s = arg;
	int x = *(const int *)a, y = *(const int *)b;
	if (s->depth[x] != s->depth[y])
		return s->depth[x] < s->depth[y] ? -1 : 1;
	return memcmp(s->f[x], s->f[y], s->depth[x] * sizeof(uint32_t));
}

/* Keep one of each stack (a dropped record then holds exactly one sample). */
static void sf_dedup(struct sf_stacks *s)
{
	int *ix = malloc((size_t)s->n * sizeof(*ix));
	cr_assert_not_null(ix);
	for (int i = 0; i < s->n; i++)
		ix[i] = i;
	qsort_r(ix, (size_t)s->n, sizeof(*ix), sf_cmp, s);
	int m = 0;
	for (int i = 0; i < s->n; i++)
		if (i == 0 || sf_cmp(&ix[i - 1], &ix[i], s))
			ix[m++] = ix[i];
	/* Move the kept ones to the front, in their original order. */
	qsort(ix, (size_t)m, sizeof(*ix), cmp_int);
	for (int i = 0; i < m; i++) {
		memmove(s->f[i], s->f[ix[i]], sizeof(*s->f));
		s->depth[i] = s->depth[ix[i]];
	}
	s->n = m;
	free(ix);
}

/* Allocation failures inside the fold (sort scratch, path, node arrays, edge
 * table): every allocation from the k-th on fails during one flush.  The
 * records that fail are dropped and counted (one sample each: the stacks are
 * distinct), the others folded exactly once, the trie stays a trie, and the
 * next fold of the same stacks finds the nodes that were made. */
Test(engine, sorted_fold_survives_allocation_failure)
{
	for (long k = 0; k < 64; k += k < 16 ? 1 : 6) {
		uint64_t seed = 31 + (uint64_t)k;
		struct st_engine *e = mk(1, 0);
		struct st_writer *w = st_writer_open(e);
		struct sf_stacks s = { 0, malloc(4000 * sizeof(*s.f)), malloc(4000 * sizeof(uint32_t)) };
		cr_assert(s.f && s.depth);
		uint32_t ids[SF_NAMES / 100];
		char nm[16];
		for (uint32_t i = 0; i < SF_NAMES / 100; i++) {
			int l = snprintf(nm, sizeof(nm), "n%u", i);
			ids[i] = (uint32_t)st_intern(e, nm, (size_t)l);
		}
		sf_grow(&s, 4000, &seed);
		for (int i = 0; i < s.n; i++) /* 700 names here, then distinct stacks */
			for (uint32_t x = 0; x < s.depth[i]; x++)
				s.f[i][x] %= SF_NAMES / 100;
		sf_dedup(&s);
		uint32_t fid[SF_MAXD];
		for (int round = 0; round < 2; round++) {
			for (int i = 0; i < s.n; i++) {
				for (uint32_t x = 0; x < s.depth[i]; x++)
					fid[x] = ids[s.f[i][x]];
				cr_assert_eq(st_writer_ingest(w, fid, s.depth[i], (uint64_t[]){ 1 }), 0);
			}
			if (round == 0)
				st_alloc_fail_after(k);
			uint64_t v = st_flush(e);
			st_alloc_fail_after(-1);
			if (!v)
				cr_assert_neq(st_flush(e), 0); /* publish again */
			struct st_stats stats = { .size = sizeof(stats) };
			st_engine_stats(e, &stats);
			struct st_snap *sn = st_snap_acquire(e);
			cr_expect_eq(st_snap_total(sn, ST_NODE_ROOT, 0), stats.ingested - stats.dropped,
				     "k %ld round %d: total %llu ingested %llu dropped %llu", k, round,
				     (unsigned long long)st_snap_total(sn, ST_NODE_ROOT, 0),
				     (unsigned long long)stats.ingested, (unsigned long long)stats.dropped);
			expect_no_twin_siblings(sn);
			st_snap_release(sn);
		}
		free(s.f);
		free(s.depth);
		close_writer_and_engine(w, e);
	}
}

Test(engine, allocation_failure_is_reported_and_counted)
{
	struct st_engine *e = mk(1, 0);
	struct st_writer *w = st_writer_open(e);
	uint64_t accepted = 0, refused = 0;
	char name[32];
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "frame%d", i);
		const char *fr[1] = { name };
		size_t ln[1] = { strlen(name) };
		if (i == 1000)
			st_alloc_fail_after(3);
		int r = st_writer_ingest_strs(w, fr, ln, 1, (uint64_t[]){ 1 });
		if (r == 0)
			accepted++;
		else {
			cr_expect_eq(r, -ENOMEM);
			refused++;
		}
	}
	st_alloc_fail_after(-1);
	cr_expect_gt(refused, 0);
	st_flush(e);
	cr_expect_eq(ts_root_total(e, 0), accepted, "no silent loss: total = accepted");
	struct st_stats stats = { .size = sizeof(stats) };
	st_engine_stats(e, &stats);
	cr_expect_eq(stats.ingested, accepted);
	cr_expect_geq(stats.dropped, 1);
	close_writer_and_engine(w, e);
}

static void *implicit_thread(void *arg)
{
	struct st_engine *e = arg;
	uint32_t id = (uint32_t)st_intern(e, "t", 1);
	for (int i = 0; i < 1000; i++)
		if (st_ingest(e, &id, 1, (uint64_t[]){ 1 }))
			return (void *)1;
	return NULL;
}

Test(engine, implicit_writers_from_exiting_threads, .timeout = 60)
{
	struct st_engine *e = mk(1, 0);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, implicit_thread, e);
	for (int i = 0; i < 4; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		cr_expect_null(rv);
	}
	st_flush(e);
	cr_expect_eq(ts_root_total(e, 0), 4000);
	struct st_stats stats = { .size = sizeof(stats) };
	st_engine_stats(e, &stats);
	cr_expect_leq(stats.shards, 4, "exited threads hand their shards back");
	st_engine_destroy(e);
}

Test(engine, more_writers_than_shards_get_their_own)
{
	struct st_engine *e = mk(1, 0); /* 2 per-CPU shards */
	struct st_writer *w[5];
	for (int i = 0; i < 5; i++)
		cr_assert_not_null(w[i] = st_writer_open(e));
	for (int i = 0; i < 5; i++)
		add(w[i], NULL, "s", (uint64_t[]){ (uint64_t)i + 1 });
	struct st_stats stats = { .size = sizeof(stats) };
	st_engine_stats(e, &stats);
	cr_expect_eq(stats.shards, 5);
	st_flush(e);
	cr_expect_eq(ts_root_total(e, 0), 15);
	for (int i = 0; i < 5; i++)
		st_writer_close(w[i]);
	st_engine_destroy(e);
}

/*
 * A record whose gain a fold dropped (out of memory, counted) is not walked
 * again when a neighbour in its group of 64 gains: that would make its path
 * with nothing in it, a node the reference does not have (every sample here
 * is worth 1, so no node may total 0).  Allocations fail from the k-th on
 * during one flush of N new stacks (walked in creation order: the records
 * after the failure are dropped); then the last stack that made it is added
 * to again and flushed.
 */
Test(engine, dropped_records_are_not_walked_again_for_a_neighbour)
{
	enum { N = 3000 };
	int tried = 0;
	for (long k = 0; k < 60; k++) {
		struct st_engine *e = mk(1, 0);
		struct st_writer *w = st_writer_open(e);
		static uint32_t ids[N + 1];
		char nm[16];
		for (int i = 0; i <= N; i++) {
			int l = snprintf(nm, sizeof(nm), "f%05d", i);
			ids[i] = (uint32_t)st_intern(e, nm, (size_t)l);
		}
		for (int i = 0; i < N; i++)
			cr_assert_eq(st_writer_ingest(w, (uint32_t[]){ ids[N], ids[i] }, 2,
						      (uint64_t[]){ 1 }), 0);
		st_alloc_fail_after(k);
		uint64_t v = st_flush(e);
		st_alloc_fail_after(-1);
		if (!v)
			cr_assert_neq(st_flush(e), 0);
		struct st_stats st = { .size = sizeof(st) };
		st_engine_stats(e, &st);
		struct st_snap *s = st_snap_acquire(e);
		uint32_t first, n = 0;
		int last = -1; /* the highest stack that made it */
		if (st_snap_children(s, ST_NODE_ROOT, &first))
			n = st_snap_children(s, first, &first);
		for (uint32_t c = first; c < first + n; c++) {
			size_t l;
			int i = atoi(st_snap_name(s, c, &l) + 1);
			last = i > last ? i : last;
		}
		st_snap_release(s);
		/* Dropped ones share last's group: walked again without the fix. */
		if (st.dropped && last >= 0 && last + 1 < N && (last + 1) % 64) {
			tried++;
			cr_assert_eq(st_writer_ingest(w, (uint32_t[]){ ids[N], ids[last] }, 2,
						      (uint64_t[]){ 1 }), 0);
			cr_assert_neq(st_flush(e), 0);
			s = st_snap_acquire(e);
			for (uint32_t i = 0; i < st_snap_node_count(s); i++) {
				size_t l;
				const char *name = st_snap_name(s, i, &l);
				cr_expect_neq(st_snap_total(s, i, 0), 0, "k %ld: node %u (%.*s) holds 0",
					      k, i, (int)l, name);
			}
			cr_expect_eq(st_snap_total(s, ST_NODE_ROOT, 0), N + 1 - st.dropped, "k %ld", k);
			st_snap_release(s);
		}
		st_writer_close(w);
		st_engine_destroy(e);
	}
	cr_expect_gt(tried, 0, "no k dropped some records and kept others");
}
