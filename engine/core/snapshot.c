/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c - immutable, versioned tries that readers share.
 *
 * A snapshot is built from the master trie in breadth-first order, so that
 * every node's children are a contiguous, name-ordered index range:
 *
 *   index:   0      1  2  3      4  5      6 ...
 *   node:  root  | a  b  c  |  a/x a/y | b/z ...
 *   first_child[0] = 1, first_child[1] = 4, first_child[2] = 6 ...
 *   children of i = [first_child[i], first_child[i+1])   (first_child[n] = n)
 *   first_child is non-decreasing, so a node's parent is found by binary
 *   search instead of being stored.
 *
 * Counts: only total[n*nm] is stored.  self = total - the children's
 * totals, exact whenever the total did not saturate (then nothing under it
 * did); the few nodes whose total saturated keep their self in a side list
 * (sat_node/sat_self).  16 bytes per node for one metric instead of 24,
 * and a publish writes half the bytes; st_snap_self() costs one pass over
 * the node's children, and every exporter asks it once per node.
 *
 * Two allocations: the structure, frame[n] first_child[n+1], in a
 * refcounted shape block, and the counts in the snapshot itself.  A
 * profile's steady state changes counts, not shape: then the next snapshot
 * takes a reference on its predecessor's shape block instead of copying
 * it, so a publish writes 8 bytes per node (one metric), not 16, and reads
 * no structure but the child ranges for the totals.
 *
 * Both are regions (region.h) written in full before they are read, so a
 * big one comes from the region cache: the snapshot freed a publish or two
 * ago, already faulted in big pages, without a munmap (a TLB shootdown on
 * every writer's CPU) per publish.
 *
 * A partitioned master (merger.c) is built by st_snap_build_parts: the
 * same layout, from the union of the partitions' tries (equal-named
 * children merged), with a kept map from snapshot node to partition nodes
 * standing in for `order` on the same-shape path.
 *
 * Lifetime (rule S1 of docs/concurrency.md), in three steps:
 *   1. Published with rcu_assign_pointer() by the merge_lock holder; readers
 *      rcu_dereference() it inside a read-side section and take a reference
 *      (refs++), then leave the section: they hold the snapshot, not the
 *      section, so a slow exporter never delays a grace period.
 *   2. The engine holds one reference on the current snapshot.  When a newer
 *      one is published, the old one's engine reference is dropped in a
 *      call_rcu() callback: after the grace period no reader can still be
 *      between rcu_dereference() and refs++, so refs only goes down.
 *   3. Whoever drops refs to zero frees it.
 * A snapshot made by st_snap_new_like() (snapdelta.c: the difference of
 * two) is never published: it starts with its caller's reference, and only
 * step 3 applies.
 */
#include <errno.h>
#include <stdlib.h>

#include "intern.h"
#include "rcu.h"
#include "region.h"
#include "snapshot.h"

/* The structure of one or more snapshots of the same master shape.
 * Immutable once built; freed by whoever drops refs to zero. */
struct st_shape {
	atomic_long refs;
	uint64_t shape; /* master shape it was built from */
	size_t mem;     /* its region's bytes */
	uint32_t data[]; /* frame[n], first_child[n + 1]; st_snap_build_parts
			    puts first_child after an upper bound of n */
};

struct st_snap {
	struct rcu_head rcu;
	atomic_long refs;
	struct st_engine *e;          /* for st_snap_engine() only */
	const struct st_intern *in;   /* frame names */
	uint64_t version, generation;
	struct st_shape *shp;
	uint32_t n;
	unsigned nm;
	unsigned m0; /* metric k is the engine's metric m0 + k (st_snap_metric) */
	size_t mem;
	size_t bytes; /* this region's own bytes (header + totals) */
	const uint32_t *frame, *first_child; /* in shp */
	uint64_t *total;
	/* The nodes whose total saturated at some metric, in descending order
	 * (sum_totals goes from the last node back), with their self values:
	 * there self is not the total minus the children's totals.  Usually
	 * none (nsat 0, both NULL). */
	uint32_t nsat;
	uint32_t *sat_node;
	uint64_t *sat_self; /* nsat * nm */
	_Alignas(8) unsigned char data[];
};

static void shape_put(struct st_shape *sh)
{
	/* acq_rel: the last dropper must see every other user's reads done. */
	if (atomic_fetch_sub_explicit(&sh->refs, 1, memory_order_acq_rel) == 1)
		st_region_free(sh, sh->mem);
}

/*
 * A snapshot's own region (header + n * nm totals) with its header filled,
 * no saturated nodes and no shape yet: the caller attaches one with
 * snap_attach().  st_snap_build, st_snap_build_parts and st_snap_new_like
 * make every snapshot here.  NULL on ENOMEM.
 */
static struct st_snap *snap_alloc(struct st_engine *e, const struct st_intern *in,
				  uint64_t version, uint64_t generation, uint32_t n, unsigned nm,
				  unsigned m0)
{
	size_t bytes = sizeof(struct st_snap) + (size_t)n * nm * sizeof(uint64_t);
	struct st_snap *s = st_region_alloc(bytes, ST_REGION_UNINIT);
	if (!s)
		return NULL;
	s->bytes = bytes;
	atomic_init(&s->refs, 1);
	s->e = e;
	s->in = in;
	s->version = version;
	s->generation = generation;
	s->shp = NULL;
	s->n = n;
	s->nm = nm;
	s->m0 = m0;
	s->mem = bytes;
	s->frame = s->first_child = NULL;
	s->total = (uint64_t *)s->data;
	s->nsat = 0;
	s->sat_node = NULL;
	s->sat_self = NULL;
	return s;
}

/* Give s the shape block shp (s takes the caller's reference on it), whose
 * frame[] and first_child[] are at frame and first_child. */
static void snap_attach(struct st_snap *s, struct st_shape *shp, const uint32_t *frame,
			const uint32_t *first_child)
{
	s->shp = shp;
	s->mem = s->bytes + shp->mem;
	s->frame = frame;
	s->first_child = first_child;
}

static void snap_free(struct st_snap *s)
{
	shape_put(s->shp);
	st_free(s->sat_node);
	st_free(s->sat_self);
	st_region_free(s, s->bytes);
}

/* Remember node i's self values sv (its total saturated); 0 or -ENOMEM. */
static int __attribute__((noinline, cold))
sat_push(struct st_snap *s, uint32_t i, const uint64_t *sv, uint32_t *cap)
{
	if (s->nsat == *cap) {
		/* Both arrays or the capacity stays: one that grew alone is
		 * only reallocated again. */
		size_t cn = *cap, cs = *cap;
		if (st_grow(&s->sat_node, &cn, (size_t)s->nsat + 1, sizeof(*s->sat_node), 16) ||
		    st_grow(&s->sat_self, &cs, (size_t)s->nsat + 1, s->nm * sizeof(*s->sat_self), 16))
			return -ENOMEM;
		*cap = cn > UINT32_MAX ? UINT32_MAX : (uint32_t)cn;
	}
	s->sat_node[s->nsat] = i;
	memcpy(&s->sat_self[(size_t)s->nsat * s->nm], sv, s->nm * sizeof(*sv));
	s->nsat++;
	return 0;
}

/*
 * total = self + the children's totals.  Children come after their parent
 * in BFS order, so from the last node back each node's children are
 * complete when it is summed.  Self comes from the master's node old_of[i]
 * when mself is given (the same-shape publish: gathered in this pass,
 * prefetched a few nodes ahead since old_of is read in order), else the BFS
 * left it in total[i].  The snapshot stores no self: st_snap_self() derives
 * it, except where a total saturated (sat_push).  0 or -ENOMEM.
 */
static int sum_totals(struct st_snap *s, const uint64_t *mself, const uint32_t *old_of)
{
	enum { AHEAD = 32 };
	const uint32_t *fc = s->first_child;
	const unsigned nm = s->nm;
	uint64_t *total = s->total;
	uint32_t cap = 0;
	if (nm == 1) { /* the common case, without the inner metric loops */
		for (uint32_t i = s->n; i-- > 0;) {
			uint64_t self;
			if (mself) {
				if (i >= AHEAD)
					__builtin_prefetch(&mself[old_of[i - AHEAD]]);
				self = mself[old_of[i]];
			} else {
				self = total[i];
			}
			uint64_t t = self;
			for (uint32_t c = fc[i]; c < fc[i + 1]; c++)
				t = st_sat_add(t, total[c]);
			total[i] = t;
			if (ST_UNLIKELY(t == UINT64_MAX) && sat_push(s, i, &self, &cap))
				return -ENOMEM;
		}
	} else {
		for (uint32_t i = s->n; i-- > 0;) {
			uint64_t *pt = &total[(size_t)i * nm], sv[ST_MAX_METRICS];
			memcpy(sv, mself ? &mself[(size_t)old_of[i] * nm] : pt, nm * sizeof(*sv));
			bool sat = false;
			for (unsigned k = 0; k < nm; k++) {
				uint64_t t = sv[k];
				for (uint32_t c = fc[i]; c < fc[i + 1]; c++)
					t = st_sat_add(t, total[(size_t)c * nm + k]);
				pt[k] = t;
				sat |= t == UINT64_MAX;
			}
			if (ST_UNLIKELY(sat) && sat_push(s, i, sv, &cap))
				return -ENOMEM;
		}
	}
	s->mem += (size_t)cap * (sizeof(uint32_t) + nm * sizeof(uint64_t));
	return 0;
}

struct st_snap *st_snap_build(const struct st_master_view *v, const struct st_snap *prev,
			      struct st_engine *e, const struct st_intern *in, uint64_t version,
			      uint64_t generation)
{
	const uint32_t n = v->n;
	const unsigned nm = v->nm;
	struct st_snap *s = snap_alloc(e, in, version, generation, n, nm, 0);
	if (!s)
		return NULL;
	uint32_t *old_of = v->order; /* new -> master, master-owned scratch */

	/* Same shape as the current snapshot (the steady state of a profile:
	 * only counts changed): share its structure, and old_of still maps
	 * it, so gather the counts instead of walking the master's sibling
	 * lists.  prev is the current snapshot, which the caller (the only
	 * publisher) keeps alive. */
	const bool same = v->order_valid && prev && prev->shp->shape == v->shape &&
			  prev->n == n && prev->nm == nm;
	struct st_shape *shp;
	if (same) {
		shp = prev->shp;
		/* Relaxed: prev's reference keeps it alive here (the builder
		 * owns the current snapshot's engine reference). */
		atomic_fetch_add_explicit(&shp->refs, 1, memory_order_relaxed);
	} else {
		size_t sbytes = sizeof(struct st_shape) + ((size_t)n * 2 + 1) * sizeof(uint32_t);
		shp = st_region_alloc(sbytes, ST_REGION_UNINIT);
		if (!shp) {
			st_region_free(s, s->bytes);
			return NULL;
		}
		atomic_init(&shp->refs, 1);
		shp->shape = v->shape;
		shp->mem = sbytes;
	}
	uint32_t *frame = shp->data, *first_child = shp->data + n;
	snap_attach(s, shp, frame, first_child);
	if (same)
		goto totals; /* old_of maps this shape already */

	/* BFS: the output order is the queue.  BFS order is not the master's
	 * order, so every node costs misses in the master's arrays: the queue
	 * is known ahead, so prefetch in two stages (a queued node's
	 * first_child and self, then, once that is cached, its first child's
	 * frame and sibling link).  Only later siblings are chased. */
	enum { AHEAD = 16 };
	uint32_t tail = 1;
	old_of[0] = 0;
	frame[0] = ST_FRAME_ROOT;
	for (uint32_t i = 0; i < n; i++) {
		if (i + 2 * AHEAD < tail) {
			uint32_t o2 = old_of[i + 2 * AHEAD];
			__builtin_prefetch(&v->first_child[o2]);
			__builtin_prefetch(&v->self[(size_t)o2 * nm]);
		}
		if (i + AHEAD < tail) {
			uint32_t c1 = v->first_child[old_of[i + AHEAD]];
			if (c1 != UINT32_MAX) {
				__builtin_prefetch(&v->frame[c1]);
				__builtin_prefetch(&v->next_sibling[c1]);
			}
		}
		uint32_t o = old_of[i];
		first_child[i] = tail;
		for (uint32_t c = v->first_child[o]; c != UINT32_MAX; c = v->next_sibling[c]) {
			old_of[tail] = c;
			frame[tail] = v->frame[c];
			tail++;
		}
		for (unsigned k = 0; k < nm; k++)
			s->total[(size_t)i * nm + k] = v->self[(size_t)o * nm + k];
	}
	first_child[n] = n;
totals:
	if (sum_totals(s, same ? v->self : NULL, old_of)) {
		snap_free(s);
		return NULL;
	}
	return s;
}

/* ------------------------------------------------------------ partitions */

/*
 * st_snap_build_parts: the partitions' tries merged by name, breadth-first
 * as above.  Node i of the output is a group of partition nodes (one per
 * partition at most: a partition has one node per path); its children are
 * the name-ordered merge of the group's child lists, equal frame ids (equal
 * names: frames are interned) making one group.  A group of one (below the
 * top levels, almost every node: each stack lives in one partition) copies
 * its list.  The mapping is kept in map, so a publish of the same shapes
 * only sums each group's self values.
 */
/* Room for node n + 1 (and its first fc/mstart entries) and for the members
 * up to nmem + ST_PARTS_MAX; grown rarely, checked once per node. */
static int grow_region(void *pp, size_t *cap, size_t need, size_t esize)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap : 4096;
	while (nc < need)
		nc *= 2;
	void **p = pp;
	/* Grown by mremap, not copied, once big; written before read. */
	void *q = st_region_grow(*p, *cap * esize, nc * esize, ST_REGION_UNINIT);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = nc;
	return 0;
}

static int __attribute__((noinline)) pmap_grow(struct st_pmap *m, size_t nmem)
{
	const size_t need = (size_t)m->n + 2;
	if (grow_region(&m->mstart, &m->mscap, need, 4) ||
	    grow_region(&m->mem, &m->mcap, nmem + ST_PARTS_MAX, 8))
		return -ENOMEM;
	return 0;
}

/* Append a node named frame (its members follow, from mem[nmem] on). */
static inline int pmap_push(struct st_pmap *m, uint32_t *frame, uint32_t nmax, uint32_t name,
			    size_t nmem)
{
	const size_t need = (size_t)m->n + 2;
	if (ST_UNLIKELY(m->n == nmax)) /* cannot be: each node has its own members */
		return -EINVAL;
	if (ST_UNLIKELY(need > m->mscap || nmem + ST_PARTS_MAX > m->mcap) && pmap_grow(m, nmem))
		return -ENOMEM;
	frame[m->n++] = name;
	return 0;
}

/* Fill m and the output's frame[] and fc[] (room for nmax nodes). */
static int pmap_fill(struct st_pmap *m, const struct st_master_view *v, unsigned np,
		     const struct st_intern *in, uint32_t *frame, uint32_t *fc, uint32_t nmax)
{
	uint32_t cur[ST_PARTS_MAX];
	unsigned cp[ST_PARTS_MAX];
	size_t k = 0; /* members so far */
	m->n = 0;
	if (pmap_push(m, frame, nmax, ST_FRAME_ROOT, 0))
		return -ENOMEM;
	m->mstart[0] = 0;
	for (unsigned p = 0; p < np; p++)
		m->mem[k++] = (uint64_t)p << 32;
	m->mstart[1] = (uint32_t)k;
	enum { AHEAD = 16 };
	for (uint32_t i = 0; i < m->n; i++) {
		const uint32_t a = m->mstart[i], b = m->mstart[i + 1];
		/* The queue is known ahead, as in st_snap_build: a queued
		 * node's child list head, then its first child's fields. */
		if (i + 2 * AHEAD < m->n) {
			const uint64_t x = m->mem[m->mstart[i + 2 * AHEAD]];
			__builtin_prefetch(&v[x >> 32].first_child[(uint32_t)x]);
		}
		if (i + AHEAD < m->n) {
			const uint64_t x = m->mem[m->mstart[i + AHEAD]];
			const struct st_master_view *pv = &v[x >> 32];
			uint32_t c1 = pv->first_child[(uint32_t)x];
			if (c1 != UINT32_MAX) {
				__builtin_prefetch(&pv->frame[c1]);
				__builtin_prefetch(&pv->next_sibling[c1]);
			}
		}
		fc[i] = m->n;
		if (b - a == 1) {
			const unsigned p = (unsigned)(m->mem[a] >> 32);
			const struct st_master_view *pv = &v[p];
			for (uint32_t c = pv->first_child[(uint32_t)m->mem[a]]; c != UINT32_MAX;
			     c = pv->next_sibling[c]) {
				if (pmap_push(m, frame, nmax, pv->frame[c], k))
					return -ENOMEM;
				m->mem[k++] = (uint64_t)p << 32 | c;
				m->mstart[m->n] = (uint32_t)k;
			}
			continue;
		}
		/* k-way merge of the group's sorted lists. */
		unsigned w = 0;
		for (uint32_t j = a; j < b; j++) {
			const unsigned p = (unsigned)(m->mem[j] >> 32);
			uint32_t c = v[p].first_child[(uint32_t)m->mem[j]];
			if (c != UINT32_MAX) {
				cp[w] = p;
				cur[w++] = c;
			}
		}
		while (w) {
			uint32_t best = v[cp[0]].frame[cur[0]];
			for (unsigned j = 1; j < w; j++) {
				uint32_t f = v[cp[j]].frame[cur[j]];
				if (f != best && st_intern_cmp(in, f, best) < 0)
					best = f;
			}
			if (pmap_push(m, frame, nmax, best, k))
				return -ENOMEM;
			unsigned keep = 0;
			for (unsigned j = 0; j < w; j++) {
				const struct st_master_view *pv = &v[cp[j]];
				uint32_t c = cur[j];
				if (pv->frame[c] == best) {
					m->mem[k++] = (uint64_t)cp[j] << 32 | c;
					c = pv->next_sibling[c];
				}
				if (c != UINT32_MAX) {
					cp[keep] = cp[j];
					cur[keep++] = c;
				}
			}
			w = keep;
			m->mstart[m->n] = (uint32_t)k;
		}
	}
	fc[m->n] = m->n;
	return 0;
}

void st_pmap_free(struct st_pmap *m)
{
	st_region_free(m->mstart, m->mscap * sizeof(*m->mstart));
	st_region_free(m->mem, m->mcap * sizeof(*m->mem));
	memset(m, 0, sizeof(*m));
}

struct st_snap *st_snap_build_parts(const struct st_master_view *v, unsigned np,
				    struct st_pmap *map, const struct st_snap *prev,
				    struct st_engine *e, const struct st_intern *in,
				    uint64_t version, uint64_t generation)
{
	const unsigned nm = v[0].nm;
	uint64_t shape = 0;
	for (unsigned p = 0; p < np; p++)
		shape += v[p].shape; /* each only grows: the sum changes when one does */
	const bool same = map->shape == shape && prev && prev->shp->shape == shape &&
			  prev->n == map->n && prev->nm == nm;
	struct st_shape *shp;
	const uint32_t *frame, *first_child;
	if (same) {
		shp = prev->shp;
		atomic_fetch_add_explicit(&shp->refs, 1, memory_order_relaxed); /* as above */
		frame = prev->frame;
		first_child = prev->first_child;
	} else {
		/* The BFS writes the shape block itself, so its size is known
		 * only after: room for every partition node (the roots are one
		 * node), first_child placed after that bound. */
		uint64_t nmax = 1;
		for (unsigned p = 0; p < np; p++)
			nmax += v[p].n - 1;
		if (nmax > UINT32_MAX - 1)
			return NULL;
		size_t sbytes = sizeof(struct st_shape) + ((size_t)nmax * 2 + 1) * sizeof(uint32_t);
		shp = st_region_alloc(sbytes, ST_REGION_UNINIT);
		if (!shp)
			return NULL;
		atomic_init(&shp->refs, 1);
		shp->shape = shape;
		shp->mem = sbytes;
		map->shape = 0;
		if (pmap_fill(map, v, np, in, shp->data, shp->data + nmax, (uint32_t)nmax)) {
			st_region_free(shp, sbytes);
			return NULL;
		}
		frame = shp->data;
		first_child = shp->data + nmax;
	}
	const uint32_t n = map->n;
	struct st_snap *s = snap_alloc(e, in, version, generation, n, nm, 0);
	if (!s) {
		shape_put(shp);
		return NULL;
	}
	snap_attach(s, shp, frame, first_child);
	/* Each node's self: its group's, summed (saturating, as one sum).
	 * Groups are consecutive in mem[], every one non-empty. */
	enum { AHEAD = 16 };
	const uint64_t *selfp[ST_PARTS_MAX];
	for (unsigned p = 0; p < np; p++)
		selfp[p] = v[p].self;
	const uint64_t *mem = map->mem;
	const uint32_t *ms = map->mstart;
	const uint32_t nmem = ms[n];
	uint64_t *total = s->total;
	for (uint32_t i = 0, a = 0; nm == 1 && i < n; i++) { /* the common case */
		const uint32_t b = ms[i + 1];
		if (a + AHEAD < nmem) {
			const uint64_t y = mem[a + AHEAD];
			__builtin_prefetch(selfp[y >> 32] + (uint32_t)y);
		}
		uint64_t t = selfp[mem[a] >> 32][(uint32_t)mem[a]];
		for (uint32_t j = a + 1; j < b; j++) /* the top levels' groups */
			t = st_sat_add(t, selfp[mem[j] >> 32][(uint32_t)mem[j]]);
		total[i] = t;
		a = b;
	}
	for (uint32_t i = 0, a = 0; nm > 1 && i < n; i++) {
		const uint32_t b = ms[i + 1];
		uint64_t *t = &total[(size_t)i * nm];
		for (uint32_t j = a; j < b; j++) {
			if (j + AHEAD < nmem) {
				const uint64_t y = mem[j + AHEAD];
				__builtin_prefetch(selfp[y >> 32] + (size_t)(uint32_t)y * nm);
			}
			const uint64_t x = mem[j];
			const uint64_t *sv = selfp[x >> 32] + (size_t)(uint32_t)x * nm;
			for (unsigned k = 0; k < nm; k++)
				t[k] = j == a ? sv[k] : st_sat_add(t[k], sv[k]);
		}
		a = b;
	}
	if (sum_totals(s, NULL, NULL)) {
		snap_free(s);
		return NULL;
	}
	map->shape = shape;
	return s;
}

struct st_snap *st_snap_new_like(const struct st_snap *like, uint32_t n, unsigned nm, unsigned m0,
				 uint32_t **frame, uint32_t **first_child, uint64_t **self)
{
	size_t sbytes = sizeof(struct st_shape) + ((size_t)n * 2 + 1) * sizeof(uint32_t);
	/* The same allocations as st_snap_build's (snap_free frees both). */
	struct st_snap *s = snap_alloc(like->e, like->in, like->version, like->generation, n, nm,
				       like->m0 + m0);
	struct st_shape *shp = s ? st_region_alloc(sbytes, ST_REGION_UNINIT) : NULL;
	if (!shp) {
		if (s)
			st_region_free(s, s->bytes);
		return NULL;
	}
	atomic_init(&shp->refs, 1);
	shp->shape = 0; /* never a prev of st_snap_build: its shape is shared by none */
	shp->mem = sbytes;
	*frame = shp->data;
	*first_child = shp->data + n;
	snap_attach(s, shp, *frame, *first_child);
	*self = s->total;
	return s;
}

void st_snap_arrays(const struct st_snap *s, const uint32_t **frame, const uint32_t **first_child,
		    const uint64_t **total)
{
	*frame = s->frame;
	*first_child = s->first_child;
	*total = s->total;
}

struct st_snap *st_snap_seal(struct st_snap *s)
{
	if (sum_totals(s, NULL, NULL)) {
		snap_free(s);
		return NULL;
	}
	return s;
}

void st_snap_free_now(struct st_snap *s)
{
	snap_free(s);
}

static void snap_put(struct st_snap *s)
{
	/* acq_rel: the last dropper must see every reader's accesses done. */
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		snap_free(s);
}

static void retire_cb(struct rcu_head *head)
{
	snap_put(caa_container_of(head, struct st_snap, rcu));
}

void st_snap_publish(struct st_snap **slot, struct st_snap *s)
{
	/* rcu_xchg_pointer: full barrier, so the snapshot's contents are
	 * visible before the pointer (pairs with rcu_dereference). */
	struct st_snap *old = rcu_xchg_pointer(slot, s);
	if (old)
		st_call_rcu(&old->rcu, retire_cb);
}

struct st_snap *st_snap_acquire_slot(struct st_snap **slot)
{
	st_rcu_thread_online();
	st_rcu_read_lock();
	struct st_snap *s = rcu_dereference(*slot);
	/* Relaxed is enough: the engine's reference keeps refs >= 1 until a
	 * grace period after unpublishing, which cannot end while we are in
	 * the read-side section (rule S1, step 2). */
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	st_rcu_read_unlock();
	return s;
}

void st_snap_release(struct st_snap *s)
{
	if (s)
		snap_put(s);
}

uint64_t st_snap_version(const struct st_snap *s) { return s->version; }
uint64_t st_snap_generation(const struct st_snap *s) { return s->generation; }
size_t st_snap_node_count(const struct st_snap *s) { return s->n; }
size_t st_snap_memory(const struct st_snap *s) { return s->mem; }
unsigned st_snap_nmetrics(const struct st_snap *s) { return s->nm; }
struct st_engine *st_snap_engine(const struct st_snap *s) { return s->e; }

const struct st_metric_desc *st_snap_metric(const struct st_snap *s, unsigned metric)
{
	return metric < s->nm ? st_engine_metric(s->e, s->m0 + metric) : NULL;
}

uint32_t st_snap_frame(const struct st_snap *s, uint32_t node)
{
	return node < s->n ? s->frame[node] : ST_FRAME_ROOT;
}

const char *st_snap_name(const struct st_snap *s, uint32_t node, size_t *len)
{
	if (node >= s->n)
		return NULL;
	return st_intern_name(s->in, s->frame[node], len);
}

uint32_t st_snap_parent(const struct st_snap *s, uint32_t node)
{
	if (node == 0 || node >= s->n)
		return UINT32_MAX;
	/* The last p with first_child[p] <= node owns it. */
	uint32_t lo = 0, hi = node; /* a parent's index is below its child's */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;
		if (s->first_child[mid] <= node)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

uint32_t st_snap_depth(const struct st_snap *s, uint32_t node)
{
	uint32_t d = 0;
	if (node >= s->n)
		return 0;
	while (node != 0) {
		node = st_snap_parent(s, node);
		d++;
	}
	return d;
}

uint32_t st_snap_children(const struct st_snap *s, uint32_t node, uint32_t *first)
{
	if (node >= s->n) {
		*first = 0;
		return 0;
	}
	*first = s->first_child[node];
	return s->first_child[node + 1] - s->first_child[node];
}

uint32_t st_snap_child_find(const struct st_snap *s, uint32_t node, uint32_t frame)
{
	if (node >= s->n || !st_intern_name(s->in, frame, NULL))
		return UINT32_MAX;
	uint32_t lo = s->first_child[node], hi = s->first_child[node + 1];
	/* Children are in name order, so binary search on the name. */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = st_intern_cmp(s->in, s->frame[mid], frame);
		if (c == 0)
			return s->frame[mid] == frame ? mid : UINT32_MAX;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return UINT32_MAX;
}

uint64_t st_snap_self(const struct st_snap *s, uint32_t node, unsigned metric)
{
	if (node >= s->n || metric >= s->nm)
		return 0;
	const unsigned nm = s->nm;
	uint64_t t = s->total[(size_t)node * nm + metric];
	if (ST_UNLIKELY(t == UINT64_MAX)) {
		/* Saturated: the children's totals do not give it back. */
		uint32_t lo = 0, hi = s->nsat;
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			if (s->sat_node[mid] > node) /* descending */
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < s->nsat && s->sat_node[lo] == node) /* sum_totals listed it */
			return s->sat_self[(size_t)lo * nm + metric];
		return t;
	}
	/* Unsaturated, so t is exactly self plus the children's totals. */
	for (uint32_t c = s->first_child[node]; c < s->first_child[node + 1]; c++)
		t -= s->total[(size_t)c * nm + metric];
	return t;
}

uint64_t st_snap_total(const struct st_snap *s, uint32_t node, unsigned metric)
{
	return node < s->n && metric < s->nm ? s->total[(size_t)node * s->nm + metric] : 0;
}

size_t st_snap_saturated(const struct st_snap *s, uint32_t *deepest)
{
	/* sum_totals listed them from the last node back: the first is the
	 * highest index, so at the deepest level (BFS order). */
	if (deepest)
		*deepest = s->nsat ? s->sat_node[0] : UINT32_MAX;
	return s->nsat;
}
