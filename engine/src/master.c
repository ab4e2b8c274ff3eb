/* SPDX-License-Identifier: MIT */
/*
 * master.c - the merger's private, mutable trie.
 *
 * Only the thread holding engine->merge_lock touches it, so nothing here is
 * atomic.  Shard records are folded in; snapshots are built from it.
 *
 *   node i:  frame[i] parent[i] first_child[i] next_sibling[i] self[i*nm..]
 *            flags[i] (DIRTY: its child list needs sorting; NEW: not yet
 *                      placed in name order in its parent's list)
 *
 *   edges:   open-addressed table of node indexes keyed by (parent, frame),
 *            the child lookup of the walk.
 *   epoch:   node indexes are stable until the trie is cleared or compacted;
 *            each of those bumps the epoch.  A shard record remembers the
 *            leaf it was folded into and the epoch of that fold, so a stack
 *            seen in an earlier period costs one add, no walk (shard.c).
 *
 * Invariants
 *   1. Node 0 is the root (frame ST_FRAME_ROOT).  parent[i] < i for i > 0:
 *      nodes are appended after their parents, and compaction keeps that.
 *   2. A child list is: the NEW children (any order) first, then the others
 *      in name order.  st_master_sort() restores full order on DIRTY parents.
 *   3. Within one epoch a node index always names the same path, so a
 *      record's (leaf, epoch) is exact when epoch == m->epoch.
 *   4. Node-cap folding conserves every metric: a dropped subtree's totals are
 *      added to its parent's [other] child.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

#define NONE UINT32_MAX
#define F_DIRTY 1u
#define F_NEW 2u

struct st_master {
	unsigned nm;
	uint64_t cap;
	uint32_t other_id;
	uint32_t n, capn;
	uint32_t *frame, *parent, *first_child, *next_sibling;
	uint64_t *self;
	uint8_t *flags;
	uint32_t *edges;
	size_t emask;
	uint32_t *dirty;
	size_t ndirty, dcap;
	uint32_t epoch;       /* bumped when node indexes stop meaning paths */
	uint64_t shape;       /* bumped by every structural change */
	uint64_t order_shape; /* shape `order` was filled for (0 = none) */
	uint32_t *order;      /* capn entries, snapshot builder scratch */
};

static inline uint64_t mix(uint32_t parent, uint32_t frame)
{
	uint64_t x = ((uint64_t)parent << 32) | frame;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static int add_root(struct st_master *m)
{
	m->n = 1;
	m->frame[0] = ST_FRAME_ROOT;
	m->parent[0] = NONE;
	m->first_child[0] = NONE;
	m->next_sibling[0] = NONE;
	memset(m->self, 0, m->nm * sizeof(uint64_t));
	m->flags[0] = 0;
	return 0;
}

static int alloc_nodes(struct st_master *m, uint32_t capn)
{
	uint32_t **u32s[] = { &m->frame, &m->parent, &m->first_child, &m->next_sibling };
	for (size_t i = 0; i < sizeof(u32s) / sizeof(u32s[0]); i++) {
		void *p = st_realloc(*u32s[i], (size_t)capn * sizeof(uint32_t));
		if (!p)
			return -ENOMEM;
		*u32s[i] = p;
	}
	void *p = st_realloc(m->self, (size_t)capn * m->nm * sizeof(uint64_t));
	if (!p)
		return -ENOMEM;
	m->self = p;
	p = st_realloc(m->flags, capn);
	if (!p)
		return -ENOMEM;
	m->flags = p;
	p = st_realloc(m->order, (size_t)capn * sizeof(uint32_t));
	if (!p)
		return -ENOMEM;
	m->order = p;
	/* Only now are all arrays at least capn long. */
	m->capn = capn;
	return 0;
}

static int edges_resize(struct st_master *m, size_t nslots)
{
	uint32_t *e = st_calloc(nslots, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (uint32_t i = 1; i < m->n; i++) {
		size_t j = mix(m->parent[i], m->frame[i]) & (nslots - 1);
		while (e[j])
			j = (j + 1) & (nslots - 1);
		e[j] = i;
	}
	st_free(m->edges);
	m->edges = e;
	m->emask = nslots - 1;
	return 0;
}

struct st_master *st_master_create(unsigned nmetrics, uint64_t node_cap, uint32_t other_id)
{
	struct st_master *m = st_calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->nm = nmetrics;
	m->cap = node_cap;
	m->other_id = other_id;
	if (alloc_nodes(m, 1024) || edges_resize(m, 2048)) {
		st_master_destroy(m);
		errno = ENOMEM;
		return NULL;
	}
	add_root(m);
	m->shape = 1;
	m->epoch = 1;
	return m;
}

void st_master_destroy(struct st_master *m)
{
	if (!m)
		return;
	st_free(m->frame);
	st_free(m->parent);
	st_free(m->first_child);
	st_free(m->next_sibling);
	st_free(m->self);
	st_free(m->flags);
	st_free(m->edges);
	st_free(m->dirty);
	st_free(m->order);
	st_free(m);
}

void st_master_clear(struct st_master *m)
{
	memset(m->edges, 0, (m->emask + 1) * sizeof(*m->edges));
	m->ndirty = 0;
	m->epoch++;
	add_root(m);
	m->shape++;
}

static uint32_t edge_find(const struct st_master *m, uint32_t parent, uint32_t frame)
{
	size_t j = mix(parent, frame) & m->emask;
	for (;;) {
		uint32_t c = m->edges[j];
		if (!c)
			return NONE;
		if (m->frame[c] == frame && m->parent[c] == parent)
			return c;
		j = (j + 1) & m->emask;
	}
}

/* Append a child of `parent` named `frame`; NONE on allocation failure. */
static uint32_t node_add(struct st_master *m, uint32_t parent, uint32_t frame)
{
	if (m->n == UINT32_MAX - 1)
		return NONE;
	/* Grow by 1.5x and keep the edge table at most 3/4 full: memory per
	 * node is a benchmark target (docs/benchmarking.md). */
	if (m->n == m->capn && alloc_nodes(m, m->capn + m->capn / 2))
		return NONE;
	if ((size_t)(m->n + 1) * 4 > (m->emask + 1) * 3 && edges_resize(m, (m->emask + 1) * 2))
		return NONE;
	if (!(m->flags[parent] & F_DIRTY)) {
		if (m->ndirty == m->dcap) {
			size_t nc = m->dcap ? m->dcap * 2 : 256;
			void *p = st_realloc(m->dirty, nc * sizeof(*m->dirty));
			if (!p)
				return NONE;
			m->dirty = p;
			m->dcap = nc;
		}
		m->dirty[m->ndirty++] = parent;
		m->flags[parent] |= F_DIRTY;
	}
	uint32_t c = m->n++;
	m->shape++;
	m->frame[c] = frame;
	m->parent[c] = parent;
	m->first_child[c] = NONE;
	m->next_sibling[c] = m->first_child[parent];
	m->first_child[parent] = c;
	memset(&m->self[(size_t)c * m->nm], 0, m->nm * sizeof(uint64_t));
	m->flags[c] = F_NEW;
	size_t j = mix(parent, frame) & m->emask;
	while (m->edges[j])
		j = (j + 1) & m->emask;
	m->edges[j] = c;
	return c;
}

static uint32_t child_get(struct st_master *m, uint32_t parent, uint32_t frame)
{
	uint32_t c = edge_find(m, parent, frame);
	return c != NONE ? c : node_add(m, parent, frame);
}

int st_master_add_rec(struct st_master *m, struct st_srec *r)
{
	const unsigned nm = m->nm;
	uint32_t node = 0;
	if (r->epoch == m->epoch && r->leaf < m->n) {
		node = r->leaf; /* invariant 3: no walk */
	} else {
		const uint32_t *frames = st_srec_frames(r, nm);
		for (uint32_t d = 0; d < r->depth; d++) {
			node = child_get(m, node, frames[d]);
			if (node == NONE)
				return -ENOMEM; /* r stays unlinked; retried next time */
		}
		r->leaf = node;
		r->epoch = m->epoch;
	}
#if defined(ST_PLANTED_BUG) && ST_PLANTED_BUG == 1
	/* fuzz-selftest only (fuzz/module.mk): lose one stack in 16. */
	if (r->depth >= 2 && (r->hash & 15) == 0)
		return 0;
#endif
	uint64_t *s = &m->self[(size_t)node * nm];
	const uint64_t *v = st_srec_values(r);
	for (unsigned i = 0; i < nm; i++)
		s[i] = st_sat_add(s[i], v[i]);
	return 0;
}

bool st_master_rec_linked(const struct st_master *m, const struct st_srec *r)
{
	return r->epoch == m->epoch && r->leaf < m->n;
}

static int cmp_rec_frames(const void *a, const void *b, void *arg)
{
	const unsigned nm = *(const unsigned *)arg;
	struct st_srec *x = *(struct st_srec *const *)a, *y = *(struct st_srec *const *)b;
	const uint32_t *fx = st_srec_frames(x, nm), *fy = st_srec_frames(y, nm);
	uint32_t d = x->depth < y->depth ? x->depth : y->depth;
	/* Byte order of the id arrays: not numeric order, but any total order
	 * that keeps equal prefixes together serves, and memcmp is fast. */
	int c = memcmp(fx, fy, (size_t)d * sizeof(*fx));
	return c ? c : (x->depth > y->depth) - (x->depth < y->depth);
}

size_t st_master_link_sorted(struct st_master *m, struct st_srec **recs, size_t n)
{
	const unsigned nm = m->nm;
	size_t failed = 0;
	if (!n)
		return 0;
	/* Any order that puts shared prefixes next to each other will do: frame
	 * ids, not names. */
	qsort_r(recs, n, sizeof(*recs), cmp_rec_frames, (void *)&nm);
	uint32_t maxd = 0;
	for (size_t k = 0; k < n; k++)
		maxd = recs[k]->depth > maxd ? recs[k]->depth : maxd;
	uint32_t *path = st_malloc(((size_t)maxd + 1) * sizeof(*path));
	if (!path) {
		/* No room for the path: walk each from the root. */
		for (size_t k = 0; k < n; k++)
			failed += st_master_add_rec(m, recs[k]) != 0;
		return failed;
	}
	const uint32_t *prev = NULL;
	uint32_t prev_depth = 0; /* path[0..prev_depth) = prev's nodes */
	for (size_t k = 0; k < n; k++) {
		struct st_srec *r = recs[k];
		const uint32_t *f = st_srec_frames(r, nm);
		uint32_t common = 0, lim = r->depth < prev_depth ? r->depth : prev_depth;
		while (common < lim && f[common] == prev[common])
			common++;
		uint32_t node = common ? path[common - 1] : 0;
		uint32_t d = common;
		for (; d < r->depth; d++) {
			node = child_get(m, node, f[d]);
			if (node == NONE)
				break;
			path[d] = node;
		}
		if (node == NONE) {
			failed++;
			prev = NULL;
			prev_depth = 0;
			continue;
		}
		r->leaf = node;
		r->epoch = m->epoch;
		prev = f;
		prev_depth = r->depth;
		/* Linked now: the common path adds the values. */
		if (st_master_add_rec(m, r))
			failed++;
	}
	st_free(path);
	return failed;
}

void st_master_prefetch_rec(const struct st_master *m, const struct st_srec *r)
{
	if (r->epoch == m->epoch && r->leaf < m->n)
		__builtin_prefetch(&m->self[(size_t)r->leaf * m->nm], 1);
}

uint32_t st_master_nodes(const struct st_master *m)
{
	return m->n;
}

size_t st_master_memory(const struct st_master *m)
{
	return sizeof(*m) + (size_t)m->capn * (5 * sizeof(uint32_t) + m->nm * sizeof(uint64_t) + 1) +
	       (m->emask + 1) * sizeof(uint32_t) + m->dcap * sizeof(uint32_t);
}

void st_master_view(const struct st_master *m, struct st_master_view *v)
{
	v->n = m->n;
	v->nm = m->nm;
	v->frame = m->frame;
	v->first_child = m->first_child;
	v->next_sibling = m->next_sibling;
	v->self = m->self;
	v->shape = m->shape;
	v->order = m->order;
	v->order_valid = m->order_shape == m->shape;
}

void st_master_order_done(struct st_master *m)
{
	m->order_shape = m->shape;
}

/* ------------------------------------------------------------ sorting */

struct sort_ctx {
	const struct st_intern *in;
	const uint32_t *frame;
};

static int cmp_nodes(const void *a, const void *b, void *arg)
{
	const struct sort_ctx *c = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return st_intern_cmp(c->in, c->frame[x], c->frame[y]);
}

int st_master_sort(struct st_master *m, const struct st_intern *in)
{
	uint32_t *tmp = NULL;
	size_t tcap = 0;

	struct sort_ctx ctx = { in, m->frame };
	for (size_t d = 0; d < m->ndirty; d++) {
		uint32_t p = m->dirty[d];
		/* Split the list: NEW prefix into tmp, sorted rest stays. */
		size_t k = 0;
		uint32_t c = m->first_child[p];
		while (c != NONE && (m->flags[c] & F_NEW)) {
			if (k == tcap) {
				size_t nc = tcap ? tcap * 2 : 1024;
				uint32_t *t = st_realloc(tmp, nc * sizeof(*t));
				if (!t) {
					st_free(tmp);
					return -ENOMEM; /* lists stay valid, just unsorted */
				}
				tmp = t;
				tcap = nc;
			}
			tmp[k++] = c;
			m->flags[c] &= (uint8_t)~F_NEW;
			c = m->next_sibling[c];
		}
		qsort_r(tmp, k, sizeof(*tmp), cmp_nodes, &ctx);
#if defined(ST_PLANTED_BUG) && ST_PLANTED_BUG == 2
		/* fuzz-selftest only (fuzz/module.mk): mis-order two new siblings. */
		if (k == 2) {
			uint32_t x = tmp[0];
			tmp[0] = tmp[1];
			tmp[1] = x;
		}
#endif
		/* Merge tmp[0..k) with the sorted list starting at c. */
		uint32_t head = NONE, *tail = &head;
		size_t i = 0;
		while (i < k || c != NONE) {
			uint32_t pick;
			if (c == NONE ||
			    (i < k && st_intern_cmp(in, m->frame[tmp[i]], m->frame[c]) < 0)) {
				pick = tmp[i++];
			} else {
				pick = c;
				c = m->next_sibling[c];
			}
			*tail = pick;
			tail = &m->next_sibling[pick];
		}
		*tail = NONE;
		m->first_child[p] = head;
		m->flags[p] &= (uint8_t)~F_DIRTY;
	}
	if (m->ndirty)
		m->shape++;
	m->ndirty = 0;
	st_free(tmp);
	return 0;
}

/* ------------------------------------------------------------ node cap */

static int cmp_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

uint64_t st_master_apply_cap(struct st_master *m)
{
	if (!m->cap || m->n <= m->cap)
		return 0;
	const unsigned nm = m->nm;
	const uint32_t n = m->n;
	uint64_t *tot = st_malloc((size_t)n * nm * sizeof(uint64_t));
	uint64_t *sorted = st_malloc((size_t)n * sizeof(uint64_t));
	uint32_t *map = st_malloc((size_t)n * sizeof(uint32_t));
	struct st_master *nw = st_master_create(nm, m->cap, m->other_id);
	uint64_t folded = 0;
	if (!tot || !sorted || !map || !nw)
		goto out; /* over the cap until memory allows; totals unaffected */

	/* Subtree totals, children after parents (invariant 1). */
	memcpy(tot, m->self, (size_t)n * nm * sizeof(uint64_t));
	for (uint32_t i = n - 1; i > 0; i--)
		for (unsigned k = 0; k < nm; k++)
			tot[(size_t)m->parent[i] * nm + k] =
				st_sat_add(tot[(size_t)m->parent[i] * nm + k], tot[(size_t)i * nm + k]);

	/* Keep the K largest non-root subtrees by metric 0 (docs/design.md,
	 * "node cap"): threshold T = K-th largest; keep t >= T unless the ties
	 * would exceed K, then keep t > T.  Ancestors total at least as much as
	 * descendants, so the kept set is a connected subtree. */
	uint64_t K = (m->cap - 2) / 2; /* K kept + root + <= K+1 [other] <= cap */
	if (K < 1)
		K = 1;
	for (uint32_t i = 1; i < n; i++)
		sorted[i - 1] = tot[(size_t)i * nm];
	qsort(sorted, n - 1, sizeof(*sorted), cmp_desc);
	uint64_t T = sorted[K - 1];
	uint64_t ge = 0;
	for (uint32_t i = 0; i < n - 1 && sorted[i] >= T; i++)
		ge++;
	bool strict = ge > K;

	memcpy(nw->self, m->self, nm * sizeof(uint64_t)); /* root self */
	map[0] = 0;
	for (uint32_t i = 1; i < n; i++) {
		uint32_t p = map[m->parent[i]];
		map[i] = NONE;
		if (p == NONE)
			continue; /* inside a dropped subtree: counted at its top */
		uint64_t t0 = tot[(size_t)i * nm];
		bool keep = strict ? t0 > T : t0 >= T;
		const uint64_t *add = keep ? &m->self[(size_t)i * nm] : &tot[(size_t)i * nm];
		uint32_t c = child_get(nw, p, keep ? m->frame[i] : m->other_id);
		if (c == NONE)
			goto out_free_new;
		for (unsigned k = 0; k < nm; k++)
			nw->self[(size_t)c * nm + k] = st_sat_add(nw->self[(size_t)c * nm + k], add[k]);
		if (keep)
			map[i] = c;
	}
	folded = n - nw->n;
	/* Swap the compacted trie in; it is a new shape. */
	struct st_master tmpm = *m;
	*m = *nw;
	*nw = tmpm;
	m->shape = tmpm.shape + 1;
	m->order_shape = 0;
	m->epoch = tmpm.epoch + 1; /* indexes moved: records must walk again */
out_free_new:
	st_master_destroy(nw);
	nw = NULL;
out:
	st_master_destroy(nw);
	st_free(tot);
	st_free(sorted);
	st_free(map);
	return folded;
}
