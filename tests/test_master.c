/* SPDX-License-Identifier: MIT */
/*
 * test_master.c - the merger's cold link (master.c st_master_link_sorted)
 * where the small random tests do not reach: new children of parents that
 * already have tens of thousands (long probe runs in the edge table, whose
 * slots carry path-hash tags), stacks walked again to nodes that exist (a
 * shard table over 64 Ki records is cleared after its fold), equal stacks
 * and prefixes of each other in one fold (through both writers), and the
 * sort handing records to the walk range by range.  The reference trie is
 * the oracle; a snapshot must never hold two siblings of the same name.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"

#define TM_MAXD 12

static void tm_no_twin_siblings(struct st_engine *e)
{
	struct st_snap *s = st_snap_acquire(e);
	cr_assert_not_null(s);
	for (uint32_t i = 0; i < st_snap_node_count(s); i++) {
		uint32_t first, n = st_snap_children(s, i, &first);
		for (uint32_t c = first + 1; c < first + n; c++)
			cr_assert_neq(st_snap_frame(s, c), st_snap_frame(s, c - 1),
				      "node %u has two children named %u", i, st_snap_frame(s, c));
	}
	st_snap_release(s);
}

struct tm_ctx {
	struct st_engine *e;
	struct st_ref *ref;
	struct st_writer *w[2];
	char (*names)[12];
	uint32_t *ids;
	uint32_t nnames;
};

/* An engine (no merger, two writers), the reference, and nnames interned
 * names "<prefix>0", "<prefix>1", ... */
static struct tm_ctx tm_open(uint32_t nnames, char prefix)
{
	struct tm_ctx c = { .e = ts_engine_no_merger(2), .ref = st_ref_create(1, 0), .nnames = nnames };
	c.w[0] = st_writer_open(c.e);
	c.w[1] = st_writer_open(c.e);
	c.names = malloc((size_t)c.nnames * sizeof(*c.names));
	c.ids = malloc((size_t)c.nnames * sizeof(*c.ids));
	cr_assert(c.ref && c.w[0] && c.w[1] && c.names && c.ids);
	for (uint32_t i = 0; i < c.nnames; i++) {
		snprintf(c.names[i], sizeof(c.names[i]), "%c%u", prefix, i);
		int64_t id = st_intern(c.e, c.names[i], strlen(c.names[i]));
		cr_assert_geq(id, 0);
		c.ids[i] = (uint32_t)id;
	}
	return c;
}

static void tm_close(struct tm_ctx *c)
{
	st_writer_close(c->w[0]);
	st_writer_close(c->w[1]);
	st_ref_destroy(c->ref);
	st_engine_destroy(c->e);
	free(c->names);
	free(c->ids);
}

/* Ingest stack f[0..d) (name indexes) with value v through writer `which`,
 * and into the reference. */
static void tm_add(struct tm_ctx *c, const uint32_t *f, uint32_t d, uint64_t v, unsigned which)
{
	const char *fr[TM_MAXD];
	size_t fl[TM_MAXD];
	uint32_t fid[TM_MAXD];
	for (uint32_t x = 0; x < d; x++) {
		fr[x] = c->names[f[x]];
		fl[x] = strlen(fr[x]);
		fid[x] = c->ids[f[x]];
	}
	cr_assert_eq(st_writer_ingest(c->w[which], fid, d, &v), 0);
	cr_assert_eq(st_ref_add(c->ref, fr, fl, d, &v), 0);
}

/*
 * Stack k of the set: under one of two wide parents (0;1 and 0;2;3), leaf
 * name 10 + k % fan, sometimes one more level (a deeper tail shared by
 * several), sometimes the parent itself (a prefix of the others).
 */
static uint32_t tm_stack(uint32_t k, uint32_t fan, uint32_t *f)
{
	uint32_t d = 0;
	f[d++] = 0;
	if (k % 3 == 0) {
		f[d++] = 1;
	} else {
		f[d++] = 2;
		f[d++] = 3;
	}
	if (k % 97 == 5)
		return d; /* the wide parent itself */
	f[d++] = 10 + k % fan;
	if (k % 7 == 0)
		f[d++] = 4 + k % 5;
	return d;
}

static void tm_run(uint32_t fan, uint32_t nstacks, unsigned rounds, uint64_t seed)
{
	struct tm_ctx c = tm_open(fan + 10, 'f');
	uint32_t *order = malloc((size_t)nstacks * sizeof(*order));
	cr_assert(order);
	for (uint32_t i = 0; i < nstacks; i++)
		order[i] = i;
	for (uint32_t i = nstacks; i > 1; i--) { /* a random order of arrival */
		uint32_t j = (uint32_t)(ts_rand(&seed) % i), t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	/* Round r brings stacks [0, (r + 1) * nstacks / rounds) of the order:
	 * the ones of earlier rounds again (walked again when their table was
	 * cleared, else linked) and new ones, children of old parents. */
	uint32_t f[TM_MAXD];
	for (unsigned r = 0; r < rounds; r++) {
		uint32_t upto = (uint32_t)((uint64_t)(r + 1) * nstacks / rounds);
		for (uint32_t i = 0; i < upto; i++) {
			uint32_t d = tm_stack(order[i], fan, f);
			uint64_t v = 1 + ts_rand(&seed) % 50;
			tm_add(&c, f, d, v, (unsigned)(ts_rand(&seed) & 1));
			if (ts_rand(&seed) % 8 == 0) /* the same stack in both tables */
				tm_add(&c, f, d, v, (unsigned)(ts_rand(&seed) & 1));
		}
		ts_assert_matches_ref(c.e, c.ref, "fan %u round %u", fan, r);
		tm_no_twin_siblings(c.e);
	}
	tm_close(&c);
	free(order);
}

Test(master, new_children_of_wide_parents_match_reference)
{
	tm_run(30000, 60000, 4, 31);
}

Test(master, stacks_walked_again_after_table_clear_match_reference)
{
	/* Over 64 Ki records per shard table: cleared after each fold, so
	 * every round walks all of its stacks again to nodes that exist. */
	tm_run(100000, 200000, 3, 32);
}

/*
 * A digit tree like the benchmark's cold workload, small: stack i spells
 * i's digits (fans 3, 40 and 17) with chains of frames between them that
 * depend on the digits so far, so the sort's ranges come in every size
 * class it treats apart: over SORT_NEAR (256) records, between SORT_SMALL
 * (24) and SORT_NEAR (their headers are prefetched at the split), and
 * small ones (insertion sort, their slab values prefetched).  Some stacks
 * stop early (depth 1, or at a branch: a prefix of others); some arrive
 * twice, through both writers.  Each round folds new stacks and, for the
 * old ones, what they gained since.
 */
enum { TD_F1 = 3, TD_F2 = 40, TD_F3 = 17, TD_N = TD_F1 * TD_F2 * TD_F3 };

static uint32_t td_chain(uint32_t prefix, uint32_t d)
{
	uint64_t s = (uint64_t)prefix * 1000 + d;
	return 100 + (uint32_t)(ts_rand(&s) % 100);
}

static uint32_t td_stack(uint32_t i, uint32_t *f)
{
	const uint32_t a = i / (TD_F2 * TD_F3), b = i / TD_F3 % TD_F2, c = i % TD_F3;
	uint32_t d = 0;
	f[d++] = td_chain(0, 0);
	if (i % 331 == 7)
		return d; /* depth 1 */
	f[d++] = td_chain(0, 1);
	f[d++] = 10 + a;
	f[d++] = td_chain(a + 1, 3);
	f[d++] = td_chain(a + 1, 4);
	f[d++] = 20 + b;
	if (i % 53 == 0)
		return d; /* a prefix of the stacks below it */
	f[d++] = td_chain(1000 + a * TD_F2 + b, 6);
	f[d++] = 60 + c;
	if (i % 5 == 0)
		f[d++] = td_chain(i, 8); /* one more level, its own */
	return d;
}

Test(master, digit_tree_ranges_of_every_size_match_reference)
{
	struct tm_ctx c = tm_open(200, 'g');
	uint64_t seed = 77;
	uint32_t f[TM_MAXD];
	for (unsigned r = 0; r < 3; r++) {
		/* Round r: every third stack from r on is new; the older ones
		 * gain again (linked, one add each). */
		for (uint32_t i = 0; i < TD_N; i++) {
			if (i % 3 > r)
				continue;
			uint32_t d = td_stack(i, f);
			uint64_t v = 1 + ts_rand(&seed) % 50;
			tm_add(&c, f, d, v, (unsigned)(ts_rand(&seed) & 1));
			if (ts_rand(&seed) % 6 == 0)
				tm_add(&c, f, d, v, (unsigned)(ts_rand(&seed) & 1));
		}
		ts_assert_matches_ref(c.e, c.ref, "digit tree round %u", r);
		tm_no_twin_siblings(c.e);
	}
	tm_close(&c);
}
