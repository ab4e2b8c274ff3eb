/* SPDX-License-Identifier: MIT */
/*
 * snapdelta.c - st_snap_delta(): what was ingested between two snapshots of
 * one engine, as a snapshot of its own, built straight from the two (no
 * engine, no interning, no RCU, no publish).  The live server's windows,
 * its /debug/pprof/profile and every push interval are written from it
 * (st_export_delta).
 *
 * Invariants
 *   1. The result has every node of `later` whose subtree gained something
 *      in a kept metric, and the root; nothing else.  A node's self is its
 *      later self minus its earlier self (0 when earlier has no such node),
 *      clamped at 0 (a sum that stuck at UINT64_MAX gains nothing); totals
 *      are the saturating sums of the subtree (st_snap_seal).
 *   2. Layout as snapshot.c's: `later` is in BFS order with contiguous,
 *      name-ordered children, and the kept nodes are closed under parents,
 *      so keeping them in later's order is again such a layout: kept node i
 *      becomes pre[i] (how many kept nodes come before it) and its children
 *      start at pre[first child of i].  Frame ids and names are later's.
 *   3. The node of `later` in `earlier` is found from the root down: frame
 *      ids are stable within one engine and children are in name order in
 *      both, so a node's children are matched by one merge walk over the
 *      two child ranges.  Earlier's children are later's, except those the
 *      node cap folded away since (master.c): equal frame ids match without
 *      a name compare; on a mismatch the names decide which side has a
 *      child the other lacks, as st_snap_child_find() would.
 *   4. Snapshots of different generations (an st_reset() came between):
 *      earlier counts as empty.  No recursion: BFS order is walked by index,
 *      parents before children, and backwards for the subtrees.
 *
 * Passes over later's n nodes, on the two snapshots' arrays (st_snap_arrays)
 * and two scratch arrays (ix: n + 1 indexes, ds: n * nm gains): top-down,
 * match (ix) and gains (ds); bottom-up, which subtrees gained (ix); prefix
 * sums (ix = pre); the copy of the kept nodes; st_snap_seal's totals.
 */
#include <errno.h>
#include <stdlib.h>

#include "snapshot.h"

#define NONE UINT32_MAX

/* One snapshot's arrays (st_snap_arrays). */
struct side {
	const struct st_snap *s;
	const uint32_t *frame, *fc;
	const uint64_t *total;
	unsigned nm;
};

static void side_init(struct side *d, const struct st_snap *s)
{
	d->s = s;
	d->nm = st_snap_nmetrics(s);
	st_snap_arrays(s, &d->frame, &d->fc, &d->total);
}

/* Node i's self at metric m: its total minus the children's, unless it
 * saturated (then snapshot.c's side list has it). */
static inline uint64_t self_of(const struct side *d, uint32_t i, unsigned m)
{
	uint64_t t = d->total[(size_t)i * d->nm + m];
	if (ST_UNLIKELY(t == UINT64_MAX))
		return st_snap_self(d->s, i, m);
	for (uint32_t c = d->fc[i]; c < d->fc[i + 1]; c++)
		t -= d->total[(size_t)c * d->nm + m];
	return t;
}

/* Byte-wise name order, shorter first on a tie (the children's order). */
static int __attribute__((noinline, cold))
name_cmp(const struct side *a, uint32_t na, const struct side *b, uint32_t nb)
{
	size_t la, lb;
	const char *x = st_snap_name(a->s, na, &la), *y = st_snap_name(b->s, nb, &lb);
	int c = memcmp(x, y, la < lb ? la : lb);
	return c ? c : (la > lb) - (la < lb);
}

/* Match later's children of p with earlier's children of q (ix[] of each). */
static void match_children(const struct side *E, const struct side *L, uint32_t p, uint32_t q,
			   uint32_t *ix)
{
	uint32_t a = L->fc[p], aend = L->fc[p + 1];
	if (q == NONE) {
		for (uint32_t x = a; x < aend; x++)
			ix[x] = NONE;
		return;
	}
	uint32_t c = E->fc[q], cend = E->fc[q + 1];
	for (uint32_t x = a; x < aend; x++) {
		uint32_t f = L->frame[x], m = NONE;
		while (c < cend) {
			if (E->frame[c] == f) {
				m = c++;
				break;
			}
			/* Earlier's child c is not x: c is gone from later (it
			 * sorts before x) or x is new (it sorts before c). */
			if (name_cmp(E, c, L, x) >= 0)
				break;
			c++;
		}
		ix[x] = m;
	}
}

struct st_snap *st_snap_delta(const struct st_snap *earlier, const struct st_snap *later,
			      int metric)
{
	if (!later) {
		errno = EINVAL;
		return NULL;
	}
	const unsigned nsrc = st_snap_nmetrics(later);
	if (metric < -1 || (metric >= 0 && (unsigned)metric >= nsrc)) {
		errno = EINVAL;
		return NULL;
	}
	if (earlier && (st_snap_engine(earlier) != st_snap_engine(later) ||
			st_snap_nmetrics(earlier) != nsrc ||
			st_snap_metric(earlier, 0) != st_snap_metric(later, 0))) {
		errno = EINVAL;
		return NULL;
	}
	if (earlier && st_snap_generation(earlier) != st_snap_generation(later))
		earlier = NULL;
	const unsigned m0 = metric < 0 ? 0 : (unsigned)metric, nm = metric < 0 ? nsrc : 1;
	const uint32_t n = (uint32_t)st_snap_node_count(later);
	uint32_t *ix = st_malloc(((size_t)n + 1) * sizeof(*ix));
	uint64_t *ds = st_malloc((size_t)n * nm * sizeof(*ds));
	struct st_snap *s = NULL;
	if (!ix || !ds) {
		errno = ENOMEM;
		goto out;
	}

	struct side L, E = { 0 };
	side_init(&L, later);
	if (earlier)
		side_init(&E, earlier);
	/* Top-down: each node's match in earlier (ix) and gains (ds). */
	ix[ST_NODE_ROOT] = earlier ? ST_NODE_ROOT : NONE;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t q = ix[i];
		for (unsigned k = 0; k < nm; k++) {
			uint64_t b = self_of(&L, i, m0 + k);
			uint64_t a = q == NONE ? 0 : self_of(&E, q, m0 + k);
			ds[(size_t)i * nm + k] = b > a ? b - a : 0;
		}
		match_children(&E, &L, i, q, ix);
	}
	/* Bottom-up: did the subtree gain (children come after parents). */
	for (uint32_t i = n; i-- > 0;) {
		bool g = i == ST_NODE_ROOT;
		for (unsigned k = 0; k < nm && !g; k++)
			g = ds[(size_t)i * nm + k] != 0;
		for (uint32_t c = L.fc[i]; c < L.fc[i + 1] && !g; c++)
			g = ix[c] != 0;
		ix[i] = g;
	}
	/* pre[i]: kept nodes before i; kept iff pre[i + 1] > pre[i]. */
	uint32_t nk = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t g = ix[i];
		ix[i] = nk;
		nk += g;
	}
	ix[n] = nk;

	uint32_t *frame, *fc;
	uint64_t *self;
	s = st_snap_new_like(later, nk, nm, m0, &frame, &fc, &self);
	if (!s) {
		errno = ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t j = ix[i];
		if (ix[i + 1] == j)
			continue;
		frame[j] = L.frame[i];
		fc[j] = ix[L.fc[i]];
		for (unsigned k = 0; k < nm; k++)
			self[(size_t)j * nm + k] = ds[(size_t)i * nm + k];
	}
	fc[nk] = nk;
	s = st_snap_seal(s);
	if (!s)
		errno = ENOMEM;
out:
	st_free(ix);
	st_free(ds);
	return s;
}
