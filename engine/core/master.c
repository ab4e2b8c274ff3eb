/* SPDX-License-Identifier: MIT */
/*
 * master.c - the merger's private, mutable trie.
 *
 * Only the thread holding engine->merge_lock touches it, or one merge
 * worker it handed it to (docs/concurrency.md, rule P1), so nothing here is
 * atomic but st_master_add_linked_shared: the pool's table phase, where
 * several workers add to linked leaves of one trie that nothing else
 * changes meanwhile.  Shard records are folded in; snapshots are built from
 * it.  A big fold's sort may run partly on a helper thread (sort_split,
 * rule P2): it reads the records of the ranges it was given and writes only
 * the sort's own arrays at their positions, never the trie.
 *
 *   node i:  frame[i] parent[i] first_child[i] next_sibling[i] self[i*nm..]
 *            flags[i] (DIRTY: its child list needs sorting; NEW: not yet
 *                      placed in name order in its parent's list)
 *
 *   edges:   open-addressed table of node indexes, the child lookup of the
 *            walk.  The key is (parent, frame), but the slot comes from the
 *            hash of the node's whole path (ph, see ph_next), which a walk
 *            computes from the stack's frames alone: the slots of every
 *            level of a stack are known before any node is, so their cache
 *            misses are issued together instead of one level after the
 *            other.  Nodes do not store ph (memory per node is a target);
 *            a resize recomputes it parent-first (invariant 1).  Above the
 *            node index, whose bits the slot count bounds, a slot keeps a
 *            tag of ph, so a probe passes other nodes without reading
 *            their frame and parent (edge_tag).
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
 *      record's (leaf, epoch) is exact when epoch == m->epoch.  Epochs step
      by estep (a power of two) and are never 0, so epoch % estep is fixed:
      a record's epoch also names the partition it is linked into (merger.c).
 *   4. Node-cap folding conserves every metric: a dropped subtree's totals are
 *      added to its parent's [other] child.
 *   5. Memory (region.h): each node array, the edge table and the dirty
 *      list is a region of acap[i] (ecap, dcap) entries; node arrays grow
 *      by mremap, not by copy, and their fresh parts are written before
 *      they are read (node_add, the snapshot builder's order).  The edge
 *      table is probed as it is filled, so a new one is prefaulted.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "master.h"
#include "region.h"

#define NONE UINT32_MAX
#define F_DIRTY 1u
#define F_NEW 2u

/* The node arrays, in struct st_master order. */
enum { A_FRAME, A_PARENT, A_FIRST_CHILD, A_NEXT_SIBLING, A_SELF, A_FLAGS, A_ORDER, NARRAYS };

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
	uint32_t estep;       /* by this: a power of two, epoch % estep is fixed */
	uint64_t shape;       /* bumped by every structural change */
	uint64_t order_shape; /* shape `order` was filled for (0 = none) */
	uint32_t *order;      /* capn entries, snapshot builder scratch; NULL in
				 a partition (estep > 1): never used there */
	uint32_t acap[NARRAYS]; /* each node array's entries (>= capn; one may
				   be ahead after a failed growth) */
	uint64_t sort_splits;   /* folds sorted on two threads (sort_split) */
};

/* Node array i of m: where its pointer is, and its entry size. */
static void **node_array(struct st_master *m, unsigned i, size_t *esize)
{
	switch (i) {
	case A_FRAME: *esize = sizeof(uint32_t); return (void **)&m->frame;
	case A_PARENT: *esize = sizeof(uint32_t); return (void **)&m->parent;
	case A_FIRST_CHILD: *esize = sizeof(uint32_t); return (void **)&m->first_child;
	case A_NEXT_SIBLING: *esize = sizeof(uint32_t); return (void **)&m->next_sibling;
	case A_SELF: *esize = m->nm * sizeof(uint64_t); return (void **)&m->self;
	case A_FLAGS: *esize = 1; return (void **)&m->flags;
	default: *esize = sizeof(uint32_t); return (void **)&m->order;
	}
}

/* Path hash: ph(root) = PH_ROOT, ph(child) = ph_next(ph(parent), frame). */
#define PH_ROOT 0x243f6a8885a308d3ULL

static inline uint64_t ph_next(uint64_t ph, uint32_t frame)
{
	uint64_t x = ph ^ ((uint64_t)frame * 0x9e3779b97f4a7c15ULL);
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static void add_root(struct st_master *m)
{
	m->n = 1;
	m->frame[0] = ST_FRAME_ROOT;
	m->parent[0] = NONE;
	m->first_child[0] = NONE;
	m->next_sibling[0] = NONE;
	memset(m->self, 0, m->nm * sizeof(uint64_t));
	m->flags[0] = 0;
}

static int alloc_nodes(struct st_master *m, uint32_t capn)
{
	for (unsigned i = 0; i < NARRAYS; i++) {
		size_t es;
		void **pp = node_array(m, i, &es);
		if (m->acap[i] >= capn)
			continue; /* grew already, before a failure */
		if (i == A_ORDER && m->estep > 1)
			continue; /* a partition: st_snap_build_parts keeps its own map */
		/* Every entry is written before it is read (invariant 5). */
		void *p = st_region_grow(*pp, (size_t)m->acap[i] * es, (size_t)capn * es,
					 ST_REGION_UNINIT);
		if (!p)
			return -ENOMEM;
		*pp = p;
		m->acap[i] = capn;
	}
	/* Only now are all arrays at least capn long. */
	m->capn = capn;
	return 0;
}

/*
 * An edge slot holds a node index c (1 <= c < n < slots) in its low bits,
 * as many as the slot index takes (emask), and above them the top bits of
 * the upper half of the child's path hash (the slot index uses the lower
 * half): a probe whose tag differs skips the node without reading its
 * frame and parent (for 2 Mi slots, 11 bits: 1 in 2,048 gets through).
 * Zero is an empty slot: c is never 0 (the root is not in the table).
 */
static inline uint32_t edge_tag(uint64_t ph, size_t emask)
{
	return (uint32_t)(ph >> 32) & ~(uint32_t)emask;
}

static inline void edge_put(uint32_t *e, size_t emask, uint64_t ph, uint32_t c)
{
	size_t j = ph & emask;
	while (e[j])
		j = (j + 1) & emask;
	e[j] = c | edge_tag(ph, emask);
}

static int edges_resize(struct st_master *m, size_t nslots)
{
	enum { AHEAD = 8 };
	const size_t emask = nslots - 1;
	/* Zero and prefaulted: edge_put reads a slot before writing it, and
	 * a read of a fresh page would map the zero page first. */
	uint32_t *e = st_region_alloc(nslots * sizeof(*e), ST_REGION_PREFAULT);
	const size_t phb = ((size_t)m->n + 1) * sizeof(uint64_t); /* n is 0 at create */
	uint64_t *ph = st_region_alloc(phb, ST_REGION_UNINIT);
	if (!e || !ph) {
		st_region_free(e, nslots * sizeof(*e));
		st_region_free(ph, phb);
		return -ENOMEM;
	}
	/* Parents come first (invariant 1), so each ph is one step from its
	 * parent's.  The slots are random in a table far larger than the
	 * caches: each is prefetched a few nodes ahead. */
	ph[0] = PH_ROOT;
	for (uint32_t i = 1; i < m->n; i++)
		ph[i] = ph_next(ph[m->parent[i]], m->frame[i]);
	for (uint32_t i = 1; i < m->n; i++) {
		if (i + AHEAD < m->n)
			__builtin_prefetch(&e[ph[i + AHEAD] & emask], 1);
		edge_put(e, emask, ph[i], i);
	}
	st_region_free(ph, phb);
	if (m->edges)
		st_region_free(m->edges, (m->emask + 1) * sizeof(*m->edges));
	m->edges = e;
	m->emask = emask;
	return 0;
}

/* The next epoch: same residue mod estep, never 0 (a record's initial epoch). */
static uint32_t epoch_next(uint32_t epoch, uint32_t estep)
{
	epoch += estep;
	return epoch ? epoch : estep;
}

struct st_master *st_master_create(unsigned nmetrics, uint64_t node_cap, uint32_t other_id,
				   uint32_t epoch0, uint32_t estep)
{
	struct st_master *m = st_calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->nm = nmetrics;
	m->cap = node_cap;
	m->other_id = other_id;
	m->epoch = epoch0;
	m->estep = estep;
	if (alloc_nodes(m, 1024) || edges_resize(m, 2048)) {
		st_master_destroy(m);
		errno = ENOMEM;
		return NULL;
	}
	add_root(m);
	m->shape = 1;
	return m;
}

void st_master_destroy(struct st_master *m)
{
	if (!m)
		return;
	for (unsigned i = 0; i < NARRAYS; i++) {
		size_t es;
		void **pp = node_array(m, i, &es);
		st_region_free(*pp, (size_t)m->acap[i] * es);
	}
	if (m->edges)
		st_region_free(m->edges, (m->emask + 1) * sizeof(*m->edges));
	st_region_free(m->dirty, m->dcap * sizeof(*m->dirty));
	st_free(m);
}

void st_master_clear(struct st_master *m)
{
	memset(m->edges, 0, (m->emask + 1) * sizeof(*m->edges));
	m->ndirty = 0;
	m->epoch = epoch_next(m->epoch, m->estep);
	add_root(m);
	m->shape++;
}

/* The child of `parent` named `frame`, whose path hash is ph; NONE if none. */
static uint32_t edge_find(const struct st_master *m, uint32_t parent, uint32_t frame, uint64_t ph)
{
	const uint32_t cmask = (uint32_t)m->emask, tag = edge_tag(ph, m->emask);
	size_t j = ph & m->emask;
	for (;;) {
		uint32_t s = m->edges[j];
		if (!s)
			return NONE;
		uint32_t c = s & cmask;
		if ((s & ~cmask) == tag && m->frame[c] == frame && m->parent[c] == parent)
			return c;
		j = (j + 1) & m->emask;
	}
}

/* Append a child of `parent` named `frame` whose path hash is ph; NONE on
 * allocation failure. */
static uint32_t node_add(struct st_master *m, uint32_t parent, uint32_t frame, uint64_t ph)
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
			uint32_t *d = st_region_grow(m->dirty, m->dcap * sizeof(*d),
						     nc * sizeof(*d), ST_REGION_UNINIT);
			if (!d)
				return NONE;
			m->dirty = d;
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
	for (unsigned i = 0; i < m->nm; i++)
		m->self[(size_t)c * m->nm + i] = 0;
	m->flags[c] = F_NEW;
	edge_put(m->edges, m->emask, ph, c);
	return c;
}

static uint32_t child_get(struct st_master *m, uint32_t parent, uint32_t frame, uint64_t ph)
{
	uint32_t c = edge_find(m, parent, frame, ph);
	return c != NONE ? c : node_add(m, parent, frame, ph);
}

int st_master_add_rec(struct st_master *m, struct st_srec *r, const uint64_t *v)
{
	const unsigned nm = m->nm;
	uint32_t node = 0;
	if (r->epoch == m->epoch && r->leaf < m->n) {
		node = r->leaf; /* invariant 3: no walk */
	} else {
		const uint32_t *frames = st_srec_frames(r, nm);
		uint64_t ph = PH_ROOT;
		for (uint32_t d = 0; d < r->depth; d++) {
			ph = ph_next(ph, frames[d]);
			node = child_get(m, node, frames[d], ph);
			if (node == NONE) {
				/* r stays unlinked: the caller took its gain,
				 * counted as dropped */
				return -ENOMEM;
			}
		}
		r->leaf = node;
		r->epoch = m->epoch;
	}
	uint64_t *s = &m->self[(size_t)node * nm];
	for (unsigned i = 0; i < nm; i++)
		s[i] = st_sat_add(s[i], v[i]);
	return 0;
}

int st_master_fold_rec(struct st_master *m, struct st_srec *r)
{
	uint64_t d[ST_MAX_METRICS];
	st_srec_take(r, m->nm, d);
	return st_master_add_rec(m, r, d);
}

void st_master_add_linked_shared(struct st_master *m, const struct st_srec *r, const uint64_t *v)
{
	uint64_t *s = &m->self[(size_t)r->leaf * m->nm];
	for (unsigned i = 0; i < m->nm; i++) {
		if (!v[i])
			continue;
		/* Saturating, so a CAS loop; relaxed: the phase's end orders it. */
		uint64_t old = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
		while (!__atomic_compare_exchange_n(&s[i], &old, st_sat_add(old, v[i]), true,
						    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
	}
}

bool st_master_rec_linked(const struct st_master *m, const struct st_srec *r)
{
	return r->epoch == m->epoch && r->leaf < m->n;
}

/* ------------------------------------------------------------ record order */

/*
 * st_master_link_sorted folds new stacks in an order that puts every group of
 * stacks sharing a prefix next to each other: lexicographic on the frame ids
 * (compared as numbers), a stack before its extensions.  Which order among
 * the many such does not matter for the result (child lists are sorted by
 * name before a snapshot), only that it groups prefixes.
 *
 * A comparison sort pays for that with ~log2(n) comparisons per record, each
 * a memcmp over the long shared prefix of two records far apart in memory.
 * sort_recs is an MSD radix sort instead: a range of records that agree on
 * frames [0, d) first skips the frames they all share (one pass), then splits
 * on frame d by an LSD radix sort of the ids (only the bytes that differ),
 * and each run of equal ids is a new range one level deeper.
 *
 * What it sorts is a dense array of entries (record, depth, key), built by
 * the first range's pass, which reads the records in the caller's order
 * (mostly their order in memory); from then on a record is only read at the
 * frames its range compares, never its header.  The ranges below the first
 * splits fit in the caches.  It also leaves, for each position k > 0, how
 * many frames record k shares with record k - 1 (lcp[k]): the level of the
 * split that separated them.  So the walk reads of a record only its header,
 * its frames from where it diverges and its values in the slab (in creation
 * order, so a miss each wherever the sort put it: prefetched when a small
 * range is sorted, its headers when a split makes ranges that small, and
 * both again in the walk's own look-ahead).  Scratch: 36 bytes per record (the
 * entries, the radix sort's second copy of them, lcp), freed at the end.
 */
enum { SORT_SMALL = 24, SORT_NEAR = 256, SORT_AHEAD = 8, SORT_PROBES = 8 };

struct sort_ent {
	struct st_srec *r;
	uint32_t key;   /* frame `l` of the range being split */
	uint32_t depth; /* r->depth */
};

/* The sorted records: ent[0..n) in order, lcp[k] frames shared by records
 * k - 1 and k (lcp[0] = 0), maxd the largest depth. */
struct sorted {
	struct sort_ent *ent;
	uint32_t *lcp;
	size_t n;
	uint32_t maxd;
};

static void sorted_free(struct sorted *s)
{
	st_region_free(s->ent, s->n * sizeof(*s->ent));
	st_region_free(s->lcp, s->n * sizeof(*s->lcp));
	s->ent = NULL;
	s->lcp = NULL;
}

/* How far f agrees with f0 from frame d on, at most up to lim. */
static inline uint32_t lcp_from(const uint32_t *f, const uint32_t *f0, uint32_t d, uint32_t lim)
{
	for (uint64_t a, b; d + 2 <= lim; d += 2) {
		memcpy(&a, f + d, sizeof(a));
		memcpy(&b, f0 + d, sizeof(b));
		if (a != b)
			break;
	}
	while (d < lim && f[d] == f0[d])
		d++;
	return d;
}

static inline const uint32_t *ent_frames(const struct sort_ent *x, unsigned nm)
{
	return st_srec_frames(x->r, nm);
}

static int cmp_ent_from(const struct sort_ent *x, const struct sort_ent *y, unsigned nm,
			uint32_t d)
{
	const uint32_t *fx = ent_frames(x, nm), *fy = ent_frames(y, nm);
	uint32_t lim = x->depth < y->depth ? x->depth : y->depth;
	for (; d < lim; d++)
		if (fx[d] != fy[d])
			return fx[d] < fy[d] ? -1 : 1;
	return (x->depth > y->depth) - (x->depth < y->depth);
}

static int cmp_ent(const void *a, const void *b, void *arg)
{
	return cmp_ent_from(a, b, *(const unsigned *)arg, 0);
}

/* e[0..n) are in order and agree on frames [0, d): lcp[1..n) from theirs. */
static void run_lcp(const struct sort_ent *e, uint32_t *lcp, size_t n, unsigned nm, uint32_t d)
{
	for (size_t i = 1; i < n; i++) {
		uint32_t lim = e[i].depth < e[i - 1].depth ? e[i].depth : e[i - 1].depth;
		lcp[i] = lcp_from(ent_frames(&e[i], nm), ent_frames(&e[i - 1], nm), d, lim);
	}
}

/* Entries that agree on frames [0, d): insertion sort from frame d. */
static void sort_small(struct sort_ent *e, uint32_t *lcp, size_t n, unsigned nm, uint32_t d)
{
	for (size_t i = 1; i < n; i++) {
		struct sort_ent x = e[i];
		size_t j = i;
		while (j > 0 && cmp_ent_from(&e[j - 1], &x, nm, d) > 0) {
			e[j] = e[j - 1];
			j--;
		}
		e[j] = x;
	}
	run_lcp(e, lcp, n, nm, d);
}

/* Stable LSD radix sort of e[0..n) by key, one pass per byte set in diff
 * (the bits in which the keys differ); t is scratch of n entries. */
static void sort_by_key(struct sort_ent *e, struct sort_ent *t, size_t n, uint32_t diff)
{
	uint32_t cnt[4][256];
	unsigned bytes[4], nb = 0;
	for (unsigned b = 0; b < 4; b++)
		if ((diff >> (8 * b)) & 255)
			bytes[nb++] = b;
	memset(cnt, 0, nb * sizeof(cnt[0]));
	for (size_t i = 0; i < n; i++)
		for (unsigned j = 0; j < nb; j++)
			cnt[j][(e[i].key >> (8 * bytes[j])) & 255]++;
	struct sort_ent *s = e, *dst = t;
	for (unsigned j = 0; j < nb; j++) {
		const unsigned sh = 8 * bytes[j];
		uint32_t *c = cnt[j], sum = 0;
		for (unsigned v = 0; v < 256; v++) {
			uint32_t x = c[v];
			c[v] = sum;
			sum += x;
		}
		for (size_t i = 0; i < n; i++)
			dst[c[(s[i].key >> sh) & 255]++] = s[i];
		struct sort_ent *x = s;
		s = dst;
		dst = x;
	}
	if (s != e)
		memcpy(e, s, n * sizeof(*e));
}

struct sort_range {
	size_t lo, n;
	uint32_t d; /* every record in the range has the same frames [0, d) */
};

/*
 * One pass over a range of n records that agree on frames [0, d), checking
 * that they agree up to l (a guess): into t, the records that end at l
 * (t[n - 1], t[n - 2], ...) and the others keyed by frame l (t[0], ...),
 * *ended and *m of each.  The records are ent[0..n), or for the first
 * range recs[0..n) (then their headers are read, the only time); *diff the
 * bits in which the keys differ.  Returns the range's true common prefix
 * when it is shorter than l (t is then garbage), else l.
 */
static inline uint32_t range_pass(const struct sort_ent *ent, struct st_srec *const *recs,
				  struct sort_ent *t, size_t n, unsigned nm, uint32_t d, uint32_t l,
				  const uint32_t *f0, size_t *ended, size_t *m, uint32_t *diff)
{
	uint32_t true_l = l, any = 0, all = UINT32_MAX;
	size_t ne = 0, nk = 0;
	for (size_t i = 0; i < n; i++) {
		if (i + SORT_AHEAD < n) {
			const struct st_srec *y = recs ? recs[i + SORT_AHEAD] : ent[i + SORT_AHEAD].r;
			const uint32_t *fy = st_srec_frames((struct st_srec *)y, nm);
			if (recs)
				__builtin_prefetch(y);
			__builtin_prefetch(fy + d);
			__builtin_prefetch(fy + l);
		}
		struct st_srec *x = recs ? recs[i] : ent[i].r;
		const uint32_t depth = recs ? x->depth : ent[i].depth;
		const uint32_t *f = st_srec_frames(x, nm);
		uint32_t xl = lcp_from(f, f0, d, depth < l ? depth : l);
		if (xl < l) {
			true_l = xl < true_l ? xl : true_l;
		} else if (true_l == l) {
			/* Ended records (a stack before its extensions, all
			 * the same stack) at the back, the others at the
			 * front with their keys. */
			if (depth == l) {
				t[n - 1 - ne++] = (struct sort_ent){ x, 0, depth };
			} else {
				t[nk++] = (struct sort_ent){ x, f[l], depth };
				any |= f[l];
				all &= f[l];
			}
		}
	}
	*ended = ne;
	*m = nk;
	*diff = any ^ all;
	return true_l;
}

/*
 * The walk of record k needs the edge slots of its levels below the part it
 * shares with record k - 1 (lcp[k]), then the nodes those slots name.  Both
 * are misses, and neither depends on the trie's state, only on the frames
 * (path hashes) and on what the slots hold: so they are fetched ahead, in a
 * pipeline over the sorted records:
 *   stage 1, record k + LINK_S1: its path hashes, prefetch its slots;
 *   stage 2, record k + LINK_S2: read its slots (cached by now), prefetch
 *            the frame/parent of the nodes whose tags match;
 *   walk     record k.
 * Stage 1 keeps the latest record's path hashes in cur[] (a record shares
 * [0, lcp) with the one before it, so only [lcp, depth) change) and copies
 * [lcp, depth) into one of LINK_RING rotating arrays, which stage 2 and the
 * walk read at those levels only.  All of it is hints: a walk that grows the
 * edge table only makes later prefetches miss their target.
 *
 * The sort hands records to the walk as soon as their place is final (the
 * ranges are sorted in ascending order, depth first), so a record is walked
 * while the lines the sort just read are still cached: its frames from the
 * divergence point on, which the last split compared.  The walk stays
 * LINK_LAG records behind what is final, so the stages run ahead across
 * the sort's small ranges too.
 */
enum { LINK_S1 = 4, LINK_S2 = 2, LINK_RING = LINK_S1 + 1, LINK_LAG = 8 };

struct walker {
	struct st_master *m;
	struct st_srec **recs;
	const struct sorted *s;
	uint32_t *path; /* path[d]: the node of the previous record's frame d */
	uint64_t *phs;  /* LINK_RING arrays of w, then cur[w] */
	size_t w;
	size_t k, s1, s2; /* the next record to walk, to run stage 1, 2 on */
	uint32_t fresh; /* nodes from here on were made by this pass */
	bool chained;   /* path[0..lcp[k]) is valid for record k */
	bool nomem;     /* no room for path/phs: the rest walk from the root */
	size_t failed;
};

static void link_stage1(const struct st_master *m, const struct sort_ent *x, uint32_t lcp,
			uint64_t *cur, uint64_t *ph)
{
	const uint32_t *f = ent_frames(x, m->nm);
	uint64_t h = lcp ? cur[lcp - 1] : PH_ROOT;
	for (uint32_t d = lcp; d < x->depth; d++) {
		h = ph_next(h, f[d]);
		cur[d] = h;
		ph[d] = h;
		__builtin_prefetch(&m->edges[h & m->emask], 1);
	}
}

static void link_stage2(const struct st_master *m, uint32_t lcp, uint32_t depth,
			const uint64_t *ph)
{
	enum { PROBES = 4 };
	const uint32_t cmask = (uint32_t)m->emask;
	for (uint32_t d = lcp; d < depth; d++) {
		const uint32_t tag = edge_tag(ph[d], m->emask);
		size_t j = ph[d] & m->emask;
		for (unsigned p = 0; p < PROBES; p++, j = (j + 1) & m->emask) {
			uint32_t s = m->edges[j];
			if (!s)
				break;
			if ((s & ~cmask) == tag) {
				__builtin_prefetch(&m->frame[s & cmask]);
				__builtin_prefetch(&m->parent[s & cmask]);
				break;
			}
		}
	}
}

/* Records [0, avail) are in their final places: walk them, all of them
 * when `all`, else up to LINK_LAG before avail. */
static void walk_to(struct walker *wk, size_t avail, bool all)
{
	enum { AHEAD = 16 };
	struct st_master *m = wk->m;
	const unsigned nm = m->nm;
	const struct sort_ent *ent = wk->s->ent;
	const uint32_t *lcp = wk->s->lcp;
	const size_t limit = all ? avail : avail > LINK_LAG ? avail - LINK_LAG : 0;
	if (wk->nomem || wk->k >= limit)
		return;
	if (!wk->path) {
		/* The sort knows the largest depth by now (its first pass). */
		wk->w = (size_t)wk->s->maxd + 1;
		wk->path = st_malloc(wk->w * sizeof(*wk->path));
		wk->phs = st_malloc((LINK_RING + 1) * wk->w * sizeof(*wk->phs));
		if (!wk->path || !wk->phs) {
			wk->nomem = true;
			return;
		}
	}
	const size_t w = wk->w;
	uint32_t *path = wk->path;
	uint64_t *phs = wk->phs, *cur = phs + LINK_RING * w;
	for (size_t k = wk->k; k < limit; k++) {
		if (k + AHEAD < avail) {
			/* What the walk and stage 1 read of a record: its
			 * header (written) and its frames from lcp on (cached
			 * when the sort just compared them). */
			const struct sort_ent *y = &ent[k + AHEAD];
			const uint32_t *fy = ent_frames(y, nm);
			const uint32_t l = lcp[k + AHEAD];
			__builtin_prefetch(y->r, 1);
			if (l < y->depth) {
				__builtin_prefetch(fy + l);
				__builtin_prefetch(fy + y->depth - 1);
			}
		}
		if (k + AHEAD / 2 < avail) {
			/* Its fold (st_srec_take) reads and writes the record's
			 * values in the slab, in creation order, not this one: a
			 * miss each.  The header is cached by now (above). */
			const struct st_srec *y = ent[k + AHEAD / 2].r;
			__builtin_prefetch(y->v, 1);
			__builtin_prefetch(y->last, 1);
		}
		for (; wk->s1 < avail && wk->s1 <= k + LINK_S1; wk->s1++)
			link_stage1(m, &ent[wk->s1], lcp[wk->s1], cur,
				    phs + (wk->s1 % LINK_RING) * w);
		for (; wk->s2 < wk->s1 && wk->s2 <= k + LINK_S2; wk->s2++)
			link_stage2(m, lcp[wk->s2], ent[wk->s2].depth,
				    phs + (wk->s2 % LINK_RING) * w);
		struct st_srec *r = ent[k].r;
		const uint32_t depth = ent[k].depth;
		uint64_t *ph = phs + (k % LINK_RING) * w;
		const uint32_t *f = st_srec_frames(r, nm);
		wk->recs[k] = r; /* recs ends up sorted */
		uint32_t common = lcp[k];
		if (!wk->chained) {
			/* From the root: stage 1 left only [common, depth). */
			uint64_t h = PH_ROOT;
			for (uint32_t d = 0; d < common; d++)
				ph[d] = h = ph_next(h, f[d]);
			common = 0;
		}
		uint32_t node = common ? path[common - 1] : 0;
		for (uint32_t d = common; d < depth; d++) {
			uint32_t c = node >= wk->fresh ? NONE : edge_find(m, node, f[d], ph[d]);
			node = c != NONE ? c : node_add(m, node, f[d], ph[d]);
			if (node == NONE)
				break;
			path[d] = node;
		}
		if (node == NONE) {
			st_srec_drop(r, nm); /* counted by the caller */
			wk->failed++;
			wk->chained = false;
			wk->fresh = m->n;
			continue;
		}
		r->leaf = node;
		r->epoch = m->epoch;
		wk->chained = true;
		/* Linked now: the common path adds what it gained. */
		if (st_master_fold_rec(m, r))
			wk->failed++;
	}
	wk->k = limit;
}

enum split { SPLIT_NONE, SPLIT_THREAD, SPLIT_INLINE };

/* One thread's share of the sort: a stack of ranges, taken from the top
 * (lowest first), each sorted in place.  tmp is the radix sort's scratch,
 * used at the range's own positions, so two jobs of disjoint ranges never
 * share it. */
struct sort_job {
	struct sort_ent *ent, *tmp;
	uint32_t *lcp;
	unsigned nm;
	struct sort_range *st;
	size_t ns, scap;
	struct walker *wk; /* the walk follows this job's sort; NULL: none */
	size_t end;        /* where that walk may go once the stack is empty */
	/* The caller's job only (sort_split): */
	const atomic_uint *want; /* hand ranges to a helper once *want != 0;
				    NULL: never (again) */
	const cpu_set_t *cpus;   /* the helper's CPUs (NULL: this thread's) */
	struct sort_job *h;      /* the helper's job */
	pthread_t tid;
	enum split split;
};

/* Sort range g: a small one by insertion, a large one split on its first
 * differing frame into ranges one level deeper (pushed on j's stack).  The
 * top range (recs non-NULL) is still in recs; *maxd gets the largest depth
 * it sees. */
static void sort_range(struct sort_job *j, struct sort_range g, struct st_srec **recs,
		       uint32_t *maxd)
{
	const unsigned nm = j->nm;
	const bool first = recs != NULL;
	struct sort_ent *e = j->ent + g.lo, *tmp = j->tmp + g.lo;
	uint32_t *lcp = j->lcp;
	uint32_t d = g.d;
	if (g.n <= SORT_SMALL) {
		/* The walk folds them soon: it writes their headers
		 * and their values in the slab (st_srec_take), which
		 * are in creation order, not this one.  The headers
		 * were prefetched by the split that made this range
		 * (when there was one). */
		for (size_t i = 0; i < g.n; i++) {
			__builtin_prefetch(e[i].r->v, 1);
			__builtin_prefetch(e[i].r->last, 1);
		}
		sort_small(e, lcp + g.lo, g.n, nm, d);
		return;
	}
	/* Skip what the whole range shares, l = its common prefix, and
	 * key each record by frame l, in ONE pass over the records (a
	 * range larger than the caches costs a miss per record per
	 * pass): l is guessed from a few records spread over the range,
	 * the pass checks the guess and, when a record disagrees
	 * earlier, finds the true l and is run again. */
	struct st_srec *r0 = first ? recs[0] : e[0].r;
	const uint32_t *f0 = st_srec_frames(r0, nm);
	uint32_t l = r0->depth;
	for (size_t p = 1; p <= SORT_PROBES; p++) {
		size_t i = p * (g.n - 1) / SORT_PROBES;
		struct st_srec *x = first ? recs[i] : e[i].r;
		uint32_t xd = first ? x->depth : e[i].depth;
		l = lcp_from(st_srec_frames(x, nm), f0, d, xd < l ? xd : l);
	}
	size_t ended, m;
	uint32_t diff;
	for (;;) {
		uint32_t true_l = range_pass(first ? NULL : e, recs, tmp, g.n, nm, d, l, f0,
					     &ended, &m, &diff);
		if (true_l == l)
			break;
		l = true_l; /* exact now: the next pass agrees */
	}
	if (first) {
		if (ended)
			*maxd = l > *maxd ? l : *maxd;
		for (size_t i = 0; i < m; i++)
			*maxd = tmp[i].depth > *maxd ? tmp[i].depth : *maxd;
	}
	d = l;
	/* Every neighbour in the range shares d frames, until a deeper
	 * split says more. */
	for (size_t i = 1; i < g.n; i++)
		lcp[g.lo + i] = d;
	for (size_t i = 0; i < ended; i++)
		e[i] = tmp[g.n - 1 - i];
	if (m) {
		memcpy(e + ended, tmp, m * sizeof(*e));
		if (m > 1)
			sort_by_key(e + ended, tmp, m, diff);
	}
	if (g.n <= SORT_NEAR) {
		/* Walked soon: the headers for sort_small (above). */
		for (size_t i = 0; i < g.n; i++)
			__builtin_prefetch(e[i].r, 1);
	}
	/* Each run of equal frame-d ids is a range one level deeper,
	 * pushed highest first. */
	for (size_t b = g.n, a; b > ended; b = a) {
		for (a = b - 1; a > ended && e[a - 1].key == e[b - 1].key; a--)
			;
		if (b - a < 2)
			continue;
		if (j->ns == j->scap && st_grow(&j->st, &j->scap, j->ns + 1, sizeof(*j->st), 64)) {
			/* Finish this run here instead. */
			qsort_r(e + a, b - a, sizeof(*e), cmp_ent, &j->nm);
			run_lcp(e + a, lcp + g.lo + a, b - a, nm, d + 1);
			continue;
		}
		j->st[j->ns++] = (struct sort_range){ g.lo + a, b - a, d + 1 };
	}
}

static void sort_split(struct sort_job *j);

/* Sort every range on j's stack, walking (j->wk) behind the sort: the
 * ranges are taken lowest first, so every place below the top range's is
 * final. */
static void sort_ranges(struct sort_job *j)
{
	while (j->ns) {
		/* Relaxed: a stale read only costs or spares the helper. */
		if (j->want && atomic_load_explicit(j->want, memory_order_relaxed))
			sort_split(j);
		sort_range(j, j->st[--j->ns], NULL, NULL);
		if (j->wk)
			walk_to(j->wk, j->ns ? j->st[j->ns - 1].lo : j->end, false);
	}
}

static void *sort_helper_main(void *arg)
{
	sort_ranges(arg);
	return NULL;
}

/*
 * A fold of many records sorts on two threads while some thread has nothing
 * else to run: a flush's caller, or one waiting for the merger's fold
 * (st_master_link_sorted's `helper`; checked before each range).  The
 * ranges still to sort are in position order on the stack, so the upper
 * half of the positions left is a run of them at its bottom: a helper
 * thread takes those and sorts them with its own stack, while this one
 * sorts the rest and walks behind itself up to where the helper's part
 * begins (j->end); once both are sorted the walk goes on to the end.  On
 * the cold workload the sort is about half of a fold's CPU (the walk into
 * the one trie cannot be shared).  The ranges are disjoint, tmp is used at
 * their own positions, and the walk stops short of the helper's part until
 * the join: until then each thread touches only its own ranges' entries
 * and records (rule P2, docs/concurrency.md).  At most one helper per
 * fold; none for fewer than SORT_SPLIT_MIN records left (starting a thread
 * costs ~50 us).  Sets j->split: SPLIT_THREAD when the helper runs (the
 * caller joins j->tid), SPLIT_INLINE when j->h holds the upper ranges but
 * no thread could be started (the caller sorts them itself).
 */
enum { SORT_SPLIT_MIN = 32768 };

/* Start the helper on h: with every signal blocked, as any library thread
 * (set in its attributes: the caller's own mask is never touched), on
 * `cpus` when given (the engine's: a flush's caller may be pinned to one
 * CPU, where a helper would only take turns with it). */
static int helper_start(pthread_t *tid, struct sort_job *h, const cpu_set_t *cpus)
{
	sigset_t all;
	sigfillset(&all);
	pthread_attr_t attr;
	int err = pthread_attr_init(&attr);
	if (err)
		return err;
	err = pthread_attr_setsigmask_np(&attr, &all);
	if (!err && cpus)
		err = pthread_attr_setaffinity_np(&attr, sizeof(*cpus), cpus);
	if (!err)
		err = pthread_create(tid, &attr, sort_helper_main, h);
	pthread_attr_destroy(&attr);
	return err;
}

static void sort_split(struct sort_job *j)
{
	const size_t lo = j->st[j->ns - 1].lo, mid = lo + (j->end - lo) / 2;
	if (j->end - lo < SORT_SPLIT_MIN) {
		j->want = NULL; /* and less is left at every later check */
		return;
	}
	size_t k = 0; /* the helper's ranges: st[0..k), the highest ones */
	while (k < j->ns && j->st[k].lo >= mid)
		k++;
	if (!k)
		return; /* one range spans the middle: try again after it */
	struct sort_job *h = j->h;
	*h = (struct sort_job){ .ent = j->ent, .tmp = j->tmp, .lcp = j->lcp, .nm = j->nm,
				.st = st_malloc(k * sizeof(*h->st)), .ns = k, .scap = k };
	j->want = NULL;
	if (!h->st)
		return;
	memcpy(h->st, j->st, k * sizeof(*h->st));
	j->end = j->st[k - 1].lo; /* the helper's lowest range */
	j->ns -= k;
	memmove(j->st, j->st + k, j->ns * sizeof(*j->st));
	int err = helper_start(&j->tid, h, j->cpus);
	if (err && j->cpus) /* none of those CPUs any more: this thread's */
		err = helper_start(&j->tid, h, NULL);
	j->split = err ? SPLIT_INLINE : SPLIT_THREAD;
}

/* Sort recs as described above into *out, handing each record to the walk
 * (wk) once its place is final, with a helper thread once *helper->want is
 * not 0 while many are left to sort (sort_split); -ENOMEM when the scratch
 * is not there (recs unchanged, nothing walked). */
static int sort_recs(struct st_srec **recs, size_t n, unsigned nm, struct sorted *out,
		     struct walker *wk, const struct st_sort_helper *helper, uint64_t *splits)
{
	if (n > UINT32_MAX)
		return -ENOMEM; /* the radix counts are 32-bit */
	/* Scratch written before read: big ones come back from the region
	 * cache merge after merge, already faulted. */
	const size_t entb = n * sizeof(struct sort_ent);
	struct sorted *s = out;
	*s = (struct sorted){ st_region_alloc(entb, ST_REGION_UNINIT),
			      st_region_alloc(n * sizeof(uint32_t), ST_REGION_UNINIT), n, 0 };
	struct sort_job h = { 0 };
	struct sort_job j = { .ent = s->ent,
			      .tmp = st_region_alloc(entb, ST_REGION_UNINIT),
			      .lcp = s->lcp,
			      .nm = nm,
			      .st = st_malloc(64 * sizeof(struct sort_range)),
			      .scap = 64,
			      .wk = wk,
			      .end = n,
			      .want = helper ? helper->want : NULL,
			      .cpus = helper ? helper->cpus : NULL,
			      .h = &h,
			      .split = SPLIT_NONE };
	if (!s->ent || !s->lcp || !j.tmp || !j.st) {
		sorted_free(s);
		st_region_free(j.tmp, entb);
		st_free(j.st);
		return -ENOMEM;
	}
	s->lcp[0] = 0;
	if (n <= SORT_SMALL) {
		for (size_t k = 0; k < n; k++) {
			s->ent[k] = (struct sort_ent){ recs[k], 0, recs[k]->depth };
			s->maxd = s->ent[k].depth > s->maxd ? s->ent[k].depth : s->maxd;
		}
		j.st[j.ns++] = (struct sort_range){ 0, n, 0 };
	} else {
		/* The top range, still in recs: its pass reads the headers
		 * (the only time) and finds the largest depth. */
		sort_range(&j, (struct sort_range){ 0, n, 0 }, recs, &s->maxd);
	}
	walk_to(wk, j.ns ? j.st[j.ns - 1].lo : j.end, false);
	sort_ranges(&j);
	if (j.split == SPLIT_THREAD) {
		pthread_join(j.tid, NULL);
		(*splits)++;
	} else if (j.split == SPLIT_INLINE) {
		sort_ranges(&h); /* above j.end: the caller walks them next */
	}
	st_free(h.st);
	st_region_free(j.tmp, entb);
	st_free(j.st);
	return 0;
}

size_t st_master_link_sorted(struct st_master *m, struct st_srec **recs, size_t n,
			     const struct st_sort_helper *helper)
{
	/*
	 * In sorted order the records through a node are contiguous, so the
	 * walk asks for a given (parent, frame) child at most once: every later
	 * record through it shares that much of its predecessor's path and
	 * starts below it.  So a parent made by this pass (>= fresh) has only
	 * children this pass made, none of them asked for yet: append without
	 * a lookup.  A failed walk breaks the chain (the next record starts at
	 * the root), so a new "pass" starts there.
	 */
	struct sorted srt = { 0 };
	struct walker wk = { .m = m, .recs = recs, .s = &srt, .fresh = m->n };
	if (!n)
		return 0;
	size_t from = 0;
	if (sort_recs(recs, n, m->nm, &srt, &wk, helper, &m->sort_splits) == 0) {
		walk_to(&wk, n, true);
		/* The rest (none unless path/phs failed) in sorted order. */
		for (size_t k = wk.k; k < n; k++)
			recs[k] = srt.ent[k].r;
		from = wk.k;
	}
	sorted_free(&srt);
	st_free(wk.path);
	st_free(wk.phs);
	size_t failed = wk.failed;
	if (from < n) {
		/* No room for the path: walk each from the root. */
		for (size_t k = from; k < n; k++)
			failed += st_master_fold_rec(m, recs[k]) != 0;
	}
	return failed;
}

void st_master_prefetch_rec(const struct st_master *m, const struct st_srec *r)
{
	if (r->epoch == m->epoch && r->leaf < m->n)
		__builtin_prefetch(&m->self[(size_t)r->leaf * m->nm], 1);
}

uint64_t st_master_sort_splits(const struct st_master *m)
{
	return m->sort_splits;
}

uint32_t st_master_nodes(const struct st_master *m)
{
	return m->n;
}

size_t st_master_memory(const struct st_master *m)
{
	const size_t order = m->estep > 1 ? 0 : sizeof(uint32_t);
	return sizeof(*m) + (size_t)m->capn * (4 * sizeof(uint32_t) + order + m->nm * sizeof(uint64_t) + 1) +
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

size_t st_master_dirty(const struct st_master *m)
{
	return m->ndirty;
}

int st_master_sort(struct st_master *m, const struct st_intern *in)
{
	uint32_t *tmp = NULL;
	size_t tcap = 0;

	struct sort_ctx ctx = { in, m->frame };
	enum { AHEAD = 8 };
	for (size_t d = 0; d < m->ndirty; d++) {
		/* Dirty parents are scattered over the arrays: prefetch a
		 * parent's head, then (once cached) its first child. */
		if (d + 2 * AHEAD < m->ndirty) {
			__builtin_prefetch(&m->first_child[m->dirty[d + 2 * AHEAD]]);
			__builtin_prefetch(&m->flags[m->dirty[d + 2 * AHEAD]], 1);
		}
		if (d + AHEAD < m->ndirty) {
			uint32_t c1 = m->first_child[m->dirty[d + AHEAD]];
			if (c1 != NONE) {
				__builtin_prefetch(&m->flags[c1], 1);
				__builtin_prefetch(&m->next_sibling[c1], 1);
				__builtin_prefetch(&m->frame[c1]);
			}
		}
		uint32_t p = m->dirty[d];
		/* Split the list: NEW prefix into tmp, sorted rest stays. */
		size_t k = 0;
		uint32_t c = m->first_child[p];
		while (c != NONE && (m->flags[c] & F_NEW)) {
			if (k == tcap && st_grow(&tmp, &tcap, k + 1, sizeof(*tmp), 1024)) {
				st_free(tmp);
				return -ENOMEM; /* lists stay valid, just unsorted */
			}
			tmp[k++] = c;
			m->flags[c] &= (uint8_t)~F_NEW;
			c = m->next_sibling[c];
		}
		if (k > 1)
			qsort_r(tmp, k, sizeof(*tmp), cmp_nodes, &ctx);
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
	uint64_t *nph = st_malloc((size_t)n * sizeof(uint64_t));
	struct st_master *nw = st_master_create(nm, m->cap, m->other_id, m->epoch, m->estep);
	uint64_t folded = 0;
	if (!tot || !sorted || !map || !nph || !nw)
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
	nph[0] = PH_ROOT; /* path hashes of nw's nodes */
	for (uint32_t i = 1; i < n; i++) {
		uint32_t p = map[m->parent[i]];
		map[i] = NONE;
		if (p == NONE)
			continue; /* inside a dropped subtree: counted at its top */
		uint64_t t0 = tot[(size_t)i * nm];
		bool keep = strict ? t0 > T : t0 >= T;
		const uint64_t *add = keep ? &m->self[(size_t)i * nm] : &tot[(size_t)i * nm];
		uint32_t f = keep ? m->frame[i] : m->other_id;
		uint64_t h = ph_next(nph[p], f);
		uint32_t c = child_get(nw, p, f, h);
		if (c == NONE)
			goto out_free_new;
		nph[c] = h; /* nw has at most n nodes: each [other] replaces one */
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
	m->estep = tmpm.estep;
	m->epoch = epoch_next(tmpm.epoch, tmpm.estep); /* indexes moved: records must walk again */
out_free_new:
	st_master_destroy(nw);
	nw = NULL;
out:
	st_master_destroy(nw);
	st_free(tot);
	st_free(sorted);
	st_free(map);
	st_free(nph);
	return folded;
}
