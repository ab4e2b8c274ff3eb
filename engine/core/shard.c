/* SPDX-License-Identifier: MIT */
/*
 * shard.c - a shard's stack table: where a writer's samples land.
 *
 * The ingest path must not walk a trie (32 dependent lookups per sample for a
 * depth-32 stack); it hashes the whole stack once and adds the values to that
 * stack's record.  The merger later walks the trie once per DISTINCT stack
 * per merge period, not once per sample.
 *
 *   slots (open addressing, linear probe, power of two, load <= 1/2)
 *   +------------+------------+-----+
 *   | hash | rec | hash | rec | ... |      hash 0 = empty slot
 *   +------------+------------+-----+
 *                   |
 *                   v  arena chunk (bump allocated, never moved)
 *   [depth|idx|hash|leaf|epoch|v|last|dirty|frames[depth]] [...] ...
 *                                 |  |    |
 *   value slab, chunk k of VB << k records (never moved; record idx is in
 *   chunk k at offset idx - VB * (2^k - 1)):
 *     dirty[n]        one flag per record: touched since its last fold
 *     val[n]          values[nm], the writer's:     v points here
 *     rec[n]          record pointers, for the merger
 *     last[n]         values[nm] folded so far:     last points here
 *
 * Who writes what.  The writer keeps writing its one table while the merger
 * folds it: no flip, no grace period, no second table for most merges (a
 * writer that alternated between two tables, each bigger than L2, fetched
 * every touched record again after each merge: that was most of what a
 * running merger cost the writer).  So the merger must read values the
 * writer is adding to, and the lines they share must be few:
 *   - the writer adds to a record's values (relaxed atomic stores: only it
 *     stores them) and then sets the record's flag (release): touched
 *     since its last fold, even by a sample worth 0 (whose stack the
 *     reference makes, so the fold must walk it too);
 *   - the merger takes a set flag (exchange, acquire: it then sees the
 *     values that set it), reads the record's values (relaxed) and adds
 *     what it gained since its `last` (its own array), remembering the
 *     values read as folded (st_srec_take), or walks it when it is new.
 *     A value the writer adds after the exchange sets the flag again, so
 *     it is folded by the next merge, and never twice: values are
 *     cumulative and `last` says what was folded;
 *   - values and flags are dense (the slab, by creation order), so the
 *     lines the merger reads and the writer then writes again are few: 8
 *     records' values share a line, 64 records' flags (a group) do; record lines
 *     (keys) are written once and only read after that, except the link,
 *     written by the merger when it walks a stack (once per stack, or after
 *     the master moved its nodes).
 * A sample with several metrics may be seen half added by one merge (its
 * first metric but not yet its second); the next merge folds the rest.
 * A table that holds too many distinct stacks (st_stab_keep) is flipped
 * out instead, as a whole (merger.c): the writer moves to the shard's
 * empty spare, and after one grace period the merger alone owns the old
 * table, folds what it gained last and clears it (st_stab_clear), which
 * bounds shard memory on cold workloads.
 *
 * Memory (region.h): the slots and the arena and slab chunks are regions,
 * so the big ones are 2 MiB pages faulted once.  Slot tables are probed
 * before every slot is written, and flags and `last` are read first, so
 * their fresh memory is prefaulted by writing (never the zero page); arena
 * chunks grow from 64 KiB (a small table stays small) to one 2 MiB page
 * and are written record by record.  Slot tables and arena chunks take
 * their big page early (st_region_early: past 64 KiB): a fresh engine's
 * hot workload took ~1,300 4 KiB faults (~12 us each here) in its first
 * second of ingest.
 *
 * Invariants
 *   1. The table's key store (slots, arena, records' keys and value
 *      pointers, the slab's chunk list) has one writer: the shard's owner
 *      while the table is `active`, the merger after it flipped the table
 *      out and waited for a grace period (merger.c).  The merger reads a
 *      record only after taking a flag its writer set after making it, and
 *      reads the record count after that flag (count is stored before).
 *   2. A record's key never changes.  values - last is exactly what the
 *      record gained since its last fold: values only grow and never wrap;
 *      an add that would pass UINT64_MAX goes to a NEW record of the same
 *      stack, which the slot then names (rec_overflow), so a record does
 *      not saturate (but past OVERFLOW_RECORDS records) and sums saturate
 *      in the master, as in the reference.
 *   3. Records are never freed individually; st_stab_clear() recycles the
 *      arena and the slab wholesale, zeroes the slots, flags and `last`, and
 *      takes a new epoch, so a record pointer is valid exactly while the
 *      table's epoch is the one it was obtained under (st_stab_upsert; the
 *      writer caches such pairs).
 */
#include <errno.h>
#include <stdlib.h>

#include "region.h"
#include "shard.h"

#define ARENA_CHUNK_MIN (64u * 1024)   /* the first chunk: a malloc block */
#define ARENA_CHUNK_MAX ST_REGION_HUGE /* later ones: one big page each */
#define INITIAL_SLOTS 1024u
/* Records a table keeps folding in place: 256 Ki, so a writer whose stacks
 * number in the 100 Ki (the bench's ior-like strings) keeps them all (at 64
 * Ki, the limit while two tables alternated, its table was cleared over and
 * over, every stack re-inserted and walked again); memory stays bounded by
 * KEEP_ARENA as before. */
#define KEEP_RECORDS (256u * 1024)
#define KEEP_ARENA (64u * 1024 * 1024) /* arena bytes of a table folded in place */
#define CLEAR_KEEP_ARENA (4u * 1024 * 1024) /* arena bytes a clear keeps for reuse */
#define KEEP_SLAB (4u * 1024 * 1024)   /* slab bytes kept by a clear */
#define VB 1024u                       /* records in slab chunk 0 */
#define VC_MAX 23 /* slab chunks: VB * (2^23 - 1) records, past the 2^32 - 1 of idx */

struct chunk {
	struct chunk *next;
	size_t size, used; /* usable bytes after the header (region: + header) */
	_Alignas(8) unsigned char mem[];
};

/* A slab chunk: one region, this header, then its flags, values, record
 * pointers and `last` (each 64-byte aligned).  Values alone in their
 * array: a line the writer dirties holds as many records' values as it
 * can, so the merger reads (and the writer then takes back) few lines. */
struct vchunk {
	_Atomic uint8_t *dirty; /* n flags, one per record */
	uint64_t *val;          /* n * nm */
	struct st_srec **rec;   /* n */
	uint64_t *last;         /* n * nm */
	size_t bytes;           /* the region's size */
	_Alignas(ST_CACHELINE) unsigned char mem[];
};

struct st_stab {
	unsigned nm;
	size_t mask;   /* slots - 1 */
	/* Records; stored (release) after each new record's entry, before
	 * its flag: the merger reads it after a flag (invariant 1). */
	_Atomic size_t count;
	struct st_hslot *slots;
	struct chunk *chunks; /* current chunk first */
	struct chunk *free_chunks;
	_Atomic size_t arena_bytes; /* read by the merger (st_stab_keep) */
	_Atomic size_t mem;         /* slots + slab bytes (st_stab_memory) */
	uint64_t epoch; /* new at create and at every clear (st_stab_epoch) */
	/* The slab: chunks [0, nvc) hold VB * (2^nvc - 1) records.  vc[k]
	 * is written before the count covers it (invariant 1); chunks past
	 * nvc may be kept from before a clear, zeroed, for reuse. */
	unsigned nvc;
	struct vchunk *vc[VC_MAX];
};

/* Epochs are unique in the process, so a writer's cached (record, epoch)
 * pair can never match another table, nor this one after a clear.  Relaxed:
 * uniqueness is all that is asked; the table's epoch field itself is
 * ordered like the rest of the table (invariant 1). */
static _Atomic uint64_t next_epoch = 1;

static uint64_t new_epoch(void)
{
	return atomic_fetch_add_explicit(&next_epoch, 1, memory_order_relaxed);
}

static inline size_t relaxed(const _Atomic size_t *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

static inline void mem_add(struct st_stab *t, ptrdiff_t d)
{
	atomic_store_explicit(&t->mem, relaxed(&t->mem) + (size_t)d, memory_order_relaxed);
}

struct st_stab *st_stab_create(unsigned nmetrics)
{
	struct st_stab *t = st_calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->nm = nmetrics;
	t->slots = st_region_alloc(INITIAL_SLOTS * sizeof(*t->slots), ST_REGION_PREFAULT);
	if (!t->slots) {
		st_free(t);
		return NULL;
	}
	t->mask = INITIAL_SLOTS - 1;
	t->epoch = new_epoch();
	atomic_init(&t->mem, sizeof(*t) + st_hslots_bytes(t->mask));
	return t;
}

static void free_chunks(struct chunk *c)
{
	while (c) {
		struct chunk *n = c->next;
		st_region_free(c, sizeof(*c) + c->size);
		c = n;
	}
}

void st_stab_destroy(struct st_stab *t)
{
	if (!t)
		return;
	free_chunks(t->chunks);
	free_chunks(t->free_chunks);
	for (unsigned k = 0; k < VC_MAX && t->vc[k]; k++)
		st_region_free(t->vc[k], t->vc[k]->bytes);
	st_region_free(t->slots, st_hslots_bytes(t->mask));
	st_free(t);
}

static void *arena_alloc(struct st_stab *t, size_t n)
{
	struct chunk *c = t->chunks;
	n = (n + 7) & ~(size_t)7;
	if (ST_LIKELY(c && c->size - c->used >= n)) {
		void *p = c->mem + c->used;
		c->used += n;
		return p;
	}
	/* Reuse a recycled chunk when it is big enough, else allocate. */
	struct chunk **pp = &t->free_chunks;
	while (*pp && (*pp)->size < n)
		pp = &(*pp)->next;
	if (*pp) {
		c = *pp;
		*pp = c->next;
	} else {
		/* As big as the arena so far, from 64 KiB: a table that stays
		 * small does not pin (nor fault) 2 MiB; the next chunk is a big
		 * page (st_region_early), then as big as the arena up to one. */
		size_t ab = relaxed(&t->arena_bytes);
		size_t want = ab < ARENA_CHUNK_MIN ? ARENA_CHUNK_MIN : ab;
		if (want > ARENA_CHUNK_MAX)
			want = ARENA_CHUNK_MAX;
		if (want < sizeof(*c) + n)
			want = sizeof(*c) + n;
		want = st_region_early(want); /* all of a mapping */
		c = st_region_alloc(want, ST_REGION_UNINIT);
		if (!c)
			return NULL;
		c->size = want - sizeof(*c);
		atomic_store_explicit(&t->arena_bytes, relaxed(&t->arena_bytes) + want,
				      memory_order_relaxed);
	}
	c->used = n;
	c->next = t->chunks;
	t->chunks = c;
	return c->mem;
}

/* Put the used slots of old[0..mask] into the zeroed table ns of nslots
 * (a power of two) by linear probing: both slot tables grow through it. */
static void hslots_rehash(const struct st_hslot *old, size_t mask, struct st_hslot *ns,
			  size_t nslots)
{
	for (size_t i = 0; i <= mask; i++) {
		struct st_hslot s = old[i];
		if (!s.hash)
			continue;
		size_t j = s.hash & (nslots - 1);
		while (ns[j].hash)
			j = (j + 1) & (nslots - 1);
		ns[j] = s;
	}
}

int st_hslots_grow(struct st_hslot **slots, size_t *mask)
{
	/* A region, prefaulted by writing: the rehash probes it before every
	 * slot is written (read first, fresh pages would map the zero page,
	 * then take a copy-on-write fault with a TLB shootdown).  From 64 KiB
	 * on it is a whole big page (st_region_early), all of it slots: a
	 * power of two either way. */
	size_t nslots = st_region_early((*mask + 1) * 2 * sizeof(**slots)) / sizeof(**slots);
	struct st_hslot *ns = st_region_alloc(nslots * sizeof(*ns), ST_REGION_PREFAULT);
	if (!ns)
		return -ENOMEM;
	hslots_rehash(*slots, *mask, ns, nslots);
	st_region_free(*slots, st_hslots_bytes(*mask));
	*slots = ns;
	*mask = nslots - 1;
	return 0;
}

/* ------------------------------------------------------------ the slab */

/* Records in slab chunk k, and the first record index it holds. */
static inline size_t vc_n(unsigned k)
{
	return (size_t)VB << k;
}

static inline size_t vc_first(unsigned k)
{
	return (size_t)VB * (((size_t)1 << k) - 1);
}

/* The chunk holding record idx, and idx's offset in it. */
static inline unsigned vc_of(size_t idx, size_t *off)
{
	const size_t q = idx / VB + 1;
	const unsigned k = (unsigned)(63 - __builtin_clzll(q));
	*off = idx - vc_first(k);
	return k;
}

/* Chunk k for a table of nm metrics: flags and `last` zero. */
static struct vchunk *vc_new(unsigned nm, unsigned k)
{
	const size_t n = vc_n(k);
	const size_t fb = (n + ST_CACHELINE - 1) / ST_CACHELINE * ST_CACHELINE;
	const size_t vb = n * nm * sizeof(uint64_t);
	const size_t rb = n * sizeof(struct st_srec *);
	const size_t bytes = st_region_size(sizeof(struct vchunk) + fb + 2 * vb + rb);
	/* Prefaulted by writing: flags and `last` are read first. */
	struct vchunk *c = st_region_alloc(bytes, ST_REGION_PREFAULT);
	if (!c)
		return NULL;
	c->dirty = (_Atomic uint8_t *)c->mem;
	c->val = (uint64_t *)(c->mem + fb);
	c->rec = (struct st_srec **)(c->mem + fb + vb);
	c->last = (uint64_t *)(c->mem + fb + vb + rb);
	c->bytes = bytes;
	return c;
}

/* Room in the slab for record count (the writer, before storing it). */
static int vc_room(struct st_stab *t, size_t count)
{
	if (ST_LIKELY(count < vc_first(t->nvc)))
		return 0;
	if (t->nvc == VC_MAX)
		return -ENOMEM;
	if (!t->vc[t->nvc]) {
		struct vchunk *c = vc_new(t->nm, t->nvc);
		if (!c)
			return -ENOMEM;
		t->vc[t->nvc] = c;
		mem_add(t, (ptrdiff_t)c->bytes);
	}
	t->nvc++;
	return 0;
}

/* ------------------------------------------------------------ records */

/* a[0..n) == b[0..n) for frame ids, inline (a libc memcmp of the 128-byte
 * key was a visible part of the hot path): 16 bytes at a time, or-ed into
 * one accumulator, no branch until the end. */
static inline bool ids_equal(const uint32_t *a, const uint32_t *b, uint32_t n)
{
	typedef uint64_t v2u64 __attribute__((vector_size(16)));
	v2u64 d = { 0, 0 };
	uint32_t i = 0, r = 0;
	for (; i + 4 <= n; i += 4) {
		v2u64 x, y;
		memcpy(&x, a + i, sizeof(x));
		memcpy(&y, b + i, sizeof(y));
		d |= x ^ y;
	}
	for (; i < n; i++)
		r |= a[i] ^ b[i];
	return !(r | d[0] | d[1]);
}

/* The record of this stack in t, or NULL; *slot is its slot, or where a
 * new one goes. */
static inline struct st_srec *find(const struct st_stab *t, const uint32_t *frames,
				   uint32_t depth, uint64_t hash, size_t *slot)
{
	size_t i = hash & t->mask;
	for (;;) {
		const struct st_hslot *s = &t->slots[i];
		if (!s->hash)
			break;
		if (s->hash == hash) {
			struct st_srec *r = s->p;
			if (ST_LIKELY(r->depth == depth && ids_equal(r->frames, frames, depth))) {
				*slot = i;
				return r;
			}
		}
		i = (i + 1) & t->mask;
	}
	*slot = i;
	return NULL;
}

/* A new record of this stack holding values, with its slab entry, counted
 * and flagged for the merger; the caller puts it in a slot.  NULL when out
 * of memory (nothing changed but maybe a new slab chunk). */
static struct st_srec *new_rec(struct st_stab *t, const uint32_t *frames, uint32_t depth,
			       uint64_t hash, const uint64_t *values)
{
	const unsigned nm = t->nm;
	const size_t idx = relaxed(&t->count);
	if (idx >= UINT32_MAX || vc_room(t, idx))
		return NULL;
	struct st_srec *r = arena_alloc(t, sizeof(*r) + (size_t)depth * sizeof(uint32_t));
	if (!r)
		return NULL;
	size_t off;
	const unsigned k = vc_of(idx, &off);
	struct vchunk *c = t->vc[k];
	c->rec[off] = r;
	memcpy(c->val + off * nm, values, nm * sizeof(uint64_t));
	r->depth = depth;
	r->idx = (uint32_t)idx;
	r->hash = hash;
	r->leaf = UINT32_MAX; /* not linked to the master yet */
	r->epoch = 0;         /* never folded (master epochs are never 0) */
	r->v = c->val + off * nm;
	r->last = c->last + off * nm; /* zero: fresh, or zeroed by a clear */
	r->dirty = &c->dirty[off];
	if (depth) /* frames may be NULL for a root sample (memcpy: UB) */
		memcpy(r->frames, frames, (size_t)depth * sizeof(*frames));
	/* Invariant 1: the entry and record before the count, the count
	 * before the flag. */
	atomic_store_explicit(&t->count, idx + 1, memory_order_release);
	atomic_store_explicit(r->dirty, 1, memory_order_release);
	return r;
}

/* A new record for a stack find() missed (its free slot i). */
static struct st_srec *__attribute__((noinline))
insert(struct st_stab *t, const uint32_t *frames, uint32_t depth, uint64_t hash,
       const uint64_t *values, size_t i)
{
	/* New stack: keep load <= 1/2 so probes stay short. */
	if ((relaxed(&t->count) + 1) * 2 > t->mask + 1) {
		size_t old = st_hslots_bytes(t->mask);
		if (st_hslots_grow(&t->slots, &t->mask))
			return NULL;
		mem_add(t, (ptrdiff_t)(st_hslots_bytes(t->mask) - old));
		i = hash & t->mask;
		while (t->slots[i].hash)
			i = (i + 1) & t->mask;
	}
	struct st_srec *r = new_rec(t, frames, depth, hash, values);
	if (!r)
		return NULL;
	t->slots[i].hash = hash;
	t->slots[i].p = r;
	return r;
}

/* s = r's values + values, false when a sum would pass UINT64_MAX. */
static inline bool rec_sum(const struct st_srec *r, unsigned nm, const uint64_t *values,
			   uint64_t *s)
{
	bool ovf = false;
	for (unsigned m = 0; m < nm; m++)
		ovf |= __builtin_add_overflow(__atomic_load_n(&r->v[m], __ATOMIC_RELAXED),
					      values[m], &s[m]);
	return !ovf;
}

static inline void rec_store(struct st_srec *r, unsigned nm, const uint64_t *s)
{
	for (unsigned m = 0; m < nm; m++)
		__atomic_store_n(&r->v[m], s[m], __ATOMIC_RELAXED);
	/* Release: the merger that takes the flag sees these values. */
	atomic_store_explicit(r->dirty, 1, memory_order_release);
}

/* An add to r would pass UINT64_MAX (invariant 2): add to the stack's
 * current record if it has room, else to a new record of the stack, which
 * its slot then names (r, and any record a writer's cache still holds,
 * stays foldable).  Rare: a record's values are cumulative since it was
 * made.  Past OVERFLOW_RECORDS records (samples each near UINT64_MAX
 * would make one a sample until the next merge clears the table) the
 * current record saturates instead: its leaf's sum saturates anyway.
 * Returns the record the values went to, NULL when out of memory. */
#define OVERFLOW_RECORDS (2 * KEEP_RECORDS)
static struct st_srec *__attribute__((noinline, cold))
rec_overflow(struct st_stab *t, struct st_srec *r, const uint64_t *values)
{
	uint64_t s[ST_MAX_METRICS];
	size_t i;
	struct st_srec *cur = find(t, r->frames, r->depth, r->hash, &i);
	if (!cur)
		return NULL; /* cannot be: r's stack has a slot */
	if (cur != r && rec_sum(cur, t->nm, values, s)) {
		rec_store(cur, t->nm, s);
		return cur;
	}
	if (relaxed(&t->count) >= OVERFLOW_RECORDS) {
		for (unsigned m = 0; m < t->nm; m++)
			s[m] = st_sat_add(__atomic_load_n(&cur->v[m], __ATOMIC_RELAXED), values[m]);
		rec_store(cur, t->nm, s);
		return cur;
	}
	struct st_srec *nr = new_rec(t, r->frames, r->depth, r->hash, values);
	if (nr)
		t->slots[i].p = nr;
	return nr;
}

/* Add one sample's values to r, a record of t (its writer).  Returns the
 * record they went to (r unless a sum would pass UINT64_MAX), NULL when out
 * of memory. */
static inline struct st_srec *rec_add(struct st_stab *t, struct st_srec *r,
				      const uint64_t *values)
{
	uint64_t s[ST_MAX_METRICS];
	if (ST_UNLIKELY(!rec_sum(r, t->nm, values, s)))
		return rec_overflow(t, r, values);
	rec_store(r, t->nm, s);
	return r;
}

struct st_srec *st_stab_upsert(struct st_stab *t, const uint32_t *frames, uint32_t depth,
			       uint64_t hash, const uint64_t *values)
{
	if (ST_UNLIKELY(!hash))
		hash = 1; /* 0 marks an empty slot */
	size_t i = 0;
	struct st_srec *r = find(t, frames, depth, hash, &i);
	if (ST_LIKELY(r))
		return rec_add(t, r, values);
	return insert(t, frames, depth, hash, values, i);
}

int st_stab_add(struct st_stab *t, const uint32_t *frames, uint32_t depth, uint64_t hash,
		const uint64_t *values, uint32_t bound)
{
	if (ST_UNLIKELY(!hash))
		hash = 1; /* 0 marks an empty slot */
	size_t i = 0;
	struct st_srec *r = find(t, frames, depth, hash, &i);
	if (ST_LIKELY(r)) {
		/* Equal to a record's frames, which were checked when it was
		 * made: valid (ids are never withdrawn). */
		return rec_add(t, r, values) ? 0 : -ENOMEM;
	}
	uint32_t m = 0;
	for (uint32_t k = 0; k < depth; k++)
		m = frames[k] > m ? frames[k] : m;
	if (depth && m >= bound)
		return -EINVAL;
	return insert(t, frames, depth, hash, values, i) ? 0 : -ENOMEM;
}

uint64_t st_stab_epoch(const struct st_stab *t)
{
	return t->epoch;
}

/*
 * Batched ingest (engine.c) hides the two dependent cache misses of a lookup
 * (slot, then record) by touching the slots of a group of samples first and
 * their records second, before adding any.  Both are pure hints: they change
 * nothing and may name memory that a growing table has already moved.
 */
void st_stab_prefetch_slot(const struct st_stab *t, uint64_t hash)
{
	__builtin_prefetch(&t->slots[(hash ? hash : 1) & t->mask]);
}

void st_stab_prefetch_rec(const struct st_stab *t, uint64_t hash, uint32_t depth)
{
	if (!hash)
		hash = 1;
	const struct st_hslot *s = &t->slots[hash & t->mask];
	if (s->hash != hash)
		return;
	const char *p = (const char *)s->p;
	size_t n = sizeof(struct st_srec) + (size_t)depth * 4;
	for (size_t o = 0; o < n && o < 4 * ST_CACHELINE; o += ST_CACHELINE)
		__builtin_prefetch(p + o);
}

int st_stab_add_rec(struct st_stab *t, struct st_srec *r, const uint64_t *values)
{
	return rec_add(t, r, values) ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------ the merger */

size_t st_stab_groups(const struct st_stab *t)
{
	return (atomic_load_explicit(&t->count, memory_order_acquire) + ST_STAB_GROUP - 1) /
	       ST_STAB_GROUP;
}

void st_stab_visit(struct st_stab *t, size_t g0, size_t g1, st_srec_fn fn, void *arg)
{
	for (size_t g = g0; g < g1; g++) {
		size_t off;
		const unsigned k = vc_of(g * ST_STAB_GROUP, &off);
		struct vchunk *c = t->vc[k];
		_Atomic uint8_t *f = &c->dirty[off];
		/* The group's flags share a line: take the set ones (a clear
		 * flag is not stored to: the writer will write its line
		 * again), then visit their records, headers fetched first.
		 * A flag past the count is 0 until its record is made: a set
		 * one names a record whose entry and header were stored
		 * before it (invariant 1). */
		uint8_t set[ST_STAB_GROUP];
		unsigned ns = 0;
		for (unsigned j = 0; j < ST_STAB_GROUP; j++) {
			if (!atomic_load_explicit(&f[j], memory_order_relaxed))
				continue;
			atomic_exchange_explicit(&f[j], 0, memory_order_acquire);
			set[ns++] = (uint8_t)j;
			__builtin_prefetch(c->rec[off + j]);
		}
		for (unsigned x = 0; x < ns; x++)
			fn(arg, t, c->rec[off + set[x]]);
	}
}

void st_stab_rebase(struct st_stab *t, struct st_srec *r)
{
	for (unsigned m = 0; m < t->nm; m++) {
		uint64_t g = r->v[m] - r->last[m];
		r->v[m] = g;
		r->last[m] = g;
	}
}

bool st_stab_keep(const struct st_stab *t)
{
	return atomic_load_explicit(&t->count, memory_order_relaxed) <= KEEP_RECORDS &&
	       relaxed(&t->arena_bytes) <= KEEP_ARENA;
}

size_t st_stab_count(const struct st_stab *t)
{
	return atomic_load_explicit(&t->count, memory_order_relaxed);
}

void st_stab_clear(struct st_stab *t)
{
	/* Records cached by the writer (scache.c) die here. */
	t->epoch = new_epoch();
	const size_t count = relaxed(&t->count);
	/* The slab: the used flags and `last` zeroed in the chunks kept (the
	 * first ones, up to KEEP_SLAB bytes), the others freed. */
	size_t kept = 0;
	for (unsigned k = 0; k < VC_MAX && t->vc[k]; k++) {
		struct vchunk *c = t->vc[k];
		if (kept + c->bytes > KEEP_SLAB) {
			mem_add(t, -(ptrdiff_t)c->bytes);
			st_region_free(c, c->bytes);
			t->vc[k] = NULL;
			continue;
		}
		kept += c->bytes;
		if (count > vc_first(k)) {
			size_t used = count - vc_first(k) < vc_n(k) ? count - vc_first(k) : vc_n(k);
			/* Plain stores to the flags: the table is the
			 * merger's alone now (swapped out, grace period). */
			memset((void *)c->dirty, 0, used);
			memset(c->last, 0, used * t->nm * sizeof(uint64_t));
		}
	}
	t->nvc = 0;
	if (!count && !t->chunks)
		return;
	/* A table that grew for a burst shrinks back when the next period is
	 * quiet, so one spike does not pin memory for good. */
	size_t want = INITIAL_SLOTS;
	while (want < count * 4 && want <= t->mask)
		want *= 2;
	const size_t old = st_hslots_bytes(t->mask);
	if (want < t->mask + 1) {
		struct st_hslot *ns = st_region_alloc(want * sizeof(*ns), ST_REGION_PREFAULT);
		if (ns) {
			st_region_free(t->slots, st_hslots_bytes(t->mask));
			t->slots = ns;
			t->mask = want - 1;
		} else {
			memset(t->slots, 0, st_hslots_bytes(t->mask));
		}
	} else {
		memset(t->slots, 0, st_hslots_bytes(t->mask));
	}
	mem_add(t, (ptrdiff_t)st_hslots_bytes(t->mask) - (ptrdiff_t)old);
	atomic_store_explicit(&t->count, 0, memory_order_relaxed);
	/* Keep some arena for the next period, free the rest. */
	size_t akept = 0;
	struct chunk *c = t->chunks;
	t->chunks = NULL;
	while (c) {
		struct chunk *n = c->next;
		if (akept + c->size <= CLEAR_KEEP_ARENA) {
			akept += c->size;
			c->next = t->free_chunks;
			t->free_chunks = c;
		} else {
			atomic_store_explicit(&t->arena_bytes,
					      relaxed(&t->arena_bytes) - (sizeof(*c) + c->size),
					      memory_order_relaxed);
			st_region_free(c, sizeof(*c) + c->size);
		}
		c = n;
	}
}

size_t st_stab_memory(const struct st_stab *t)
{
	return relaxed(&t->mem) + relaxed(&t->arena_bytes);
}

struct st_shard *st_shard_new(unsigned nmetrics, unsigned index)
{
	struct st_shard *sh = aligned_alloc(ST_CACHELINE, sizeof(*sh));
	if (!sh)
		return NULL;
	memset(sh, 0, sizeof(*sh));
	sh->active = st_stab_create(nmetrics);
	sh->spare = st_stab_create(nmetrics);
	if (!sh->active || !sh->spare) {
		st_stab_destroy(sh->active);
		st_stab_destroy(sh->spare);
		free(sh);
		return NULL;
	}
	sh->index = index;
	atomic_init(&sh->owner, 0);
	return sh;
}

void st_shard_free(struct st_shard *sh)
{
	st_stab_destroy(sh->active);
	st_stab_destroy(sh->spare);
	free(sh);
}
