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
 *   [depth|hash|values[nm]|frames[depth]] [depth|hash|values|frames] ...
 *
 * Records outlive a merge period: the merger folds the touched ones (the
 * table lists them as they are first touched in a fold sequence, so a fold
 * does not scan the slots of a big kept table) and keeps them (with their
 * link to the master's leaf, see master.c), so a stack seen before is folded
 * with one add and no trie walk.  A table that holds too many distinct
 * stacks is cleared after its fold instead (st_stab_keep), which bounds
 * shard memory on cold workloads.
 *
 * Who writes what.  A kept table comes back to its writer one period after
 * its fold, and the writer's next add to a record must not find the
 * record's line taken away by the merger's core (a cross-core miss per
 * touched record per period, which the writer pays while the merger
 * publishes).  So a fold only READS the records it adds through their
 * master link:
 *   - values are cumulative; the merger keeps what it has folded of each
 *     record in its own array (last[idx], idx = creation order) and adds
 *     the difference (st_stab_delta);
 *   - "listed for this fold" is r->tseq == t->seq: the merger starts a new
 *     sequence (t->seq++, the table's own line) instead of clearing a flag
 *     in every record.
 * Only records walked into the master (new stacks, or stale links) are
 * written by the merger: their link, and their values rebased to what they
 * gained (st_stab_rebase).  The last[] array is grown by the writer (with
 * the touched list, so ingest never allocates it separately) and zeroed by
 * the merger when the table is cleared.
 *
 * Memory (region.h): the slots, the touched list, last[] and the arena
 * chunks are regions, so the big ones are 2 MiB pages faulted once.  Slot
 * tables and last[] are probed / read-modify-written before every byte is
 * written, so their fresh memory is prefaulted by writing (never the zero
 * page); arena chunks grow from 64 KiB (a small table stays small) to one
 * 2 MiB page and are written record by record.  Slot tables and chunks
 * take their big page early (st_region_early: past 64 KiB): a fresh
 * engine's hot workload took ~1,300 4 KiB faults (~12 us each here) in
 * its first second of ingest.
 *
 * Invariants
 *   1. Exactly one thread mutates a table at a time: the shard's owner while
 *      the table is `active`, the merger after it flipped the table out and
 *      waited for a grace period (engine.c).  So nothing here is atomic.
 *   2. A record's frames never change.  values - last[idx] is exactly
 *      what the record gained since its last fold, saturated as one sum
 *      (the engine's documented saturation): values only grow, and the
 *      writer rebases a record (values -= last, last = 0) before a sum
 *      would pass UINT64_MAX, so it saturates only when the gain does.
 *   3. Records are never freed individually; st_stab_clear() recycles the
 *      arena wholesale, zeroes the slots and takes a new epoch, so a record
 *      pointer is valid exactly while the table's epoch is the one it was
 *      obtained under (st_stab_upsert; the writer caches such pairs).
 */
#include <errno.h>
#include <stdlib.h>

#include "region.h"
#include "shard.h"

#define ARENA_CHUNK_MIN (64u * 1024)   /* the first chunk: a malloc block */
#define ARENA_CHUNK_MAX ST_REGION_HUGE /* later ones: one big page each */
#define INITIAL_SLOTS 1024u
#define KEEP_RECORDS (64u * 1024)       /* records kept across periods */
#define KEEP_ARENA (64u * 1024 * 1024) /* arena bytes kept across periods */

struct chunk {
	struct chunk *next;
	size_t size, used; /* usable bytes after the header (region: + header) */
	_Alignas(8) unsigned char mem[];
};

struct st_stab {
	unsigned nm;
	size_t mask;   /* slots - 1 */
	size_t count;  /* records */
	struct st_hslot *slots;
	struct chunk *chunks; /* current chunk first */
	struct chunk *free_chunks;
	size_t arena_bytes;
	uint64_t epoch; /* new at create and at every clear (st_stab_epoch) */
	/* Records touched since the last fold, each once: the fold visits
	 * these instead of every slot of a kept table.  Capacity >= count,
	 * so adding to the list never allocates on the hit path. */
	struct st_srec **touched;
	size_t ntouched, tcap, ttcap; /* ttcap >= tcap: touched's own capacity */
	uint32_t seq; /* fold sequence: r listed for the next fold iff r->tseq == seq */
	/* Merger-owned (see "Who writes what"): tcap * nm values folded so
	 * far, per record index; the writer only grows it. */
	uint64_t *last;
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
	t->seq = 1;
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
	st_region_free(t->touched, t->ttcap * sizeof(*t->touched));
	st_region_free(t->last, t->tcap * t->nm * sizeof(*t->last));
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
		size_t want = t->arena_bytes < ARENA_CHUNK_MIN ? ARENA_CHUNK_MIN : t->arena_bytes;
		if (want > ARENA_CHUNK_MAX)
			want = ARENA_CHUNK_MAX;
		if (want < sizeof(*c) + n)
			want = sizeof(*c) + n;
		want = st_region_early(want); /* all of a mapping */
		c = st_region_alloc(want, ST_REGION_UNINIT);
		if (!c)
			return NULL;
		c->size = want - sizeof(*c);
		t->arena_bytes += want;
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

/* List r (a record of t not listed in this sequence) for the next fold.  A
 * record is listed once per sequence, so the list holds at most count <=
 * tcap records. */
static inline void list(struct st_stab *t, struct st_srec *r)
{
	r->tseq = t->seq;
	t->touched[t->ntouched++] = r;
}

/* What the merger has folded of r: its nm entries of last[]. */
static inline uint64_t *last_of(const struct st_stab *t, const struct st_srec *r)
{
	return &t->last[(size_t)r->idx * t->nm];
}

/* A sum of r's would pass UINT64_MAX at metric m (metrics before m are
 * added already): rebase r to what it gained since its last fold, which
 * the owner of the table may do (the merger reads last[] only when it owns
 * the table), then add the rest saturating.  Rare: values are cumulative
 * only since the record was made or last rebased. */
static void __attribute__((noinline, cold))
rec_overflow(struct st_stab *t, struct st_srec *r, const uint64_t *values, unsigned m)
{
	uint64_t *v = st_srec_values(r);
	uint64_t *l = last_of(t, r);
	for (unsigned k = 0; k < t->nm; k++) {
		v[k] -= l[k];
		l[k] = 0;
	}
	for (unsigned k = m; k < t->nm; k++)
		v[k] = st_sat_add(v[k], values[k]);
}

/* Add one sample's values to r, a record of t (its writer). */
static inline void rec_add(struct st_stab *t, struct st_srec *r, const uint64_t *values)
{
	uint64_t *v = st_srec_values(r);
	for (unsigned m = 0; m < t->nm; m++) {
		uint64_t s;
		if (ST_UNLIKELY(__builtin_add_overflow(v[m], values[m], &s))) {
			rec_overflow(t, r, values, m);
			return;
		}
		v[m] = s;
	}
}

/* The writer's add to a record it holds: list it on its first add of the
 * fold sequence. */
static inline void touch_add(struct st_stab *t, struct st_srec *r, const uint64_t *values)
{
	if (ST_UNLIKELY(r->tseq != t->seq))
		list(t, r);
	rec_add(t, r, values);
}

/* Room for one more record in the touched list and last[] (the new last[]
 * entries zero, by the kernel or the region's memset).  On -ENOMEM tcap is
 * unchanged: the touched list may have grown alone (ttcap), and keeps it. */
static int grow_lists(struct st_stab *t)
{
	size_t nc = t->tcap ? t->tcap * 2 : INITIAL_SLOTS;
	const size_t lb = t->nm * sizeof(*t->last);
	/* Past 64 KiB of last[] (the bigger list: lb >= the touched list's 8
	 * bytes a record), both jump to what fills one big page of last[] (as
	 * st_region_early), a power of two: sized by the touched list, last[]
	 * would be nm big pages, prefaulted, for every table. */
	size_t big = 1;
	while (big * 2 * lb <= ST_REGION_BIG)
		big *= 2;
	if (nc * lb > ST_REGION_EARLY && nc < big)
		nc = big;
	if (nc > SIZE_MAX / 2 / lb)
		return -ENOMEM;
	/* touched is written before it is read; last[] is read first (the
	 * merger's delta), so its fresh part is prefaulted. */
	if (t->ttcap < nc) {
		void *p = st_region_grow(t->touched, t->ttcap * sizeof(*t->touched),
					 nc * sizeof(*t->touched), ST_REGION_UNINIT);
		if (!p)
			return -ENOMEM;
		t->touched = p;
		t->ttcap = nc;
	}
	void *p = st_region_grow(t->last, t->tcap * lb, nc * lb, ST_REGION_PREFAULT);
	if (!p)
		return -ENOMEM; /* touched may have grown alone: ttcap > tcap */
	t->last = p;
	t->tcap = nc;
	return 0;
}

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

/* The record of this stack in t, or NULL; *slot is where a new one goes. */
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
			if (ST_LIKELY(r->depth == depth &&
				      ids_equal(st_srec_frames(r, t->nm), frames, depth)))
				return r;
		}
		i = (i + 1) & t->mask;
	}
	*slot = i;
	return NULL;
}

/* A new record for a stack find() missed (its free slot i). */
static struct st_srec *__attribute__((noinline))
insert(struct st_stab *t, const uint32_t *frames, uint32_t depth, uint64_t hash,
       const uint64_t *values, size_t i)
{
	const unsigned nm = t->nm;
	/* New stack: keep load <= 1/2 so probes stay short. */
	if ((t->count + 1) * 2 > t->mask + 1) {
		if (st_hslots_grow(&t->slots, &t->mask))
			return NULL;
		i = hash & t->mask;
		while (t->slots[i].hash)
			i = (i + 1) & t->mask;
	}
	if (t->count == t->tcap && grow_lists(t))
		return NULL;
	struct st_srec *r = arena_alloc(t, sizeof(*r) + nm * sizeof(uint64_t) +
						   (size_t)depth * sizeof(uint32_t));
	if (!r)
		return NULL;
	r->depth = depth;
	list(t, r); /* room: tcap >= count + 1 */
	r->hash = hash;
	r->leaf = UINT32_MAX; /* not linked to the master yet */
	r->epoch = 0;
	r->idx = (uint32_t)t->count; /* last[idx] is 0: zeroed by growth or clear */
	r->pad_ = 0;
	memcpy(st_srec_values(r), values, nm * sizeof(uint64_t));
	if (depth) /* frames may be NULL for a root sample (memcpy: UB) */
		memcpy(st_srec_frames(r, nm), frames, (size_t)depth * sizeof(*frames));
	t->slots[i].hash = hash;
	t->slots[i].p = r;
	t->count++;
	return r;
}

struct st_srec *st_stab_upsert(struct st_stab *t, const uint32_t *frames, uint32_t depth,
			       uint64_t hash, const uint64_t *values)
{
	if (ST_UNLIKELY(!hash))
		hash = 1; /* 0 marks an empty slot */
	size_t i = 0; /* set by find() when it misses */
	struct st_srec *r = find(t, frames, depth, hash, &i);
	if (ST_LIKELY(r)) {
		touch_add(t, r, values);
		return r;
	}
	return insert(t, frames, depth, hash, values, i);
}

int st_stab_add(struct st_stab *t, const uint32_t *frames, uint32_t depth, uint64_t hash,
		const uint64_t *values, uint32_t bound)
{
	if (ST_UNLIKELY(!hash))
		hash = 1; /* 0 marks an empty slot */
	size_t i = 0; /* set by find() when it misses */
	struct st_srec *r = find(t, frames, depth, hash, &i);
	if (ST_LIKELY(r)) {
		/* Equal to a record's frames, which were checked when it was
		 * made: valid (ids are never withdrawn). */
		touch_add(t, r, values);
		return 0;
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
	size_t n = sizeof(struct st_srec) + t->nm * sizeof(uint64_t) + (size_t)depth * 4;
	for (size_t o = 0; o < n && o < 4 * ST_CACHELINE; o += ST_CACHELINE)
		__builtin_prefetch(p + o);
}

void st_stab_add_rec(struct st_stab *t, struct st_srec *r, const uint64_t *values)
{
	touch_add(t, r, values);
}

size_t st_stab_touched(const struct st_stab *t)
{
	return t->ntouched;
}

void st_stab_visit_touched(struct st_stab *t, size_t from, size_t to, st_srec_fn fn, void *arg)
{
	/* The records were last written by the writer's core: fetch a few
	 * ahead, their header and values (8-aligned: up to two lines). */
	enum { AHEAD = 8 };
	const size_t hv = sizeof(struct st_srec) + t->nm * sizeof(uint64_t) - 1;
	for (size_t i = from; i < to; i++) {
		if (i + AHEAD < to) {
			const char *p = (const char *)t->touched[i + AHEAD];
			__builtin_prefetch(p);
			__builtin_prefetch(p + hv);
		}
		fn(arg, t, t->touched[i]);
	}
}

void st_stab_touched_done(struct st_stab *t)
{
	t->ntouched = 0;
	/* Every record now has tseq != seq: unlisted, without a write to it.
	 * (A sequence never comes round again: st_stab_keep clears the table
	 * long before seq could wrap.) */
	t->seq++;
}

void st_stab_foreach_touched(struct st_stab *t, st_srec_fn fn, void *arg)
{
	st_stab_visit_touched(t, 0, t->ntouched, fn, arg);
	st_stab_touched_done(t);
}

void st_stab_delta(struct st_stab *t, const struct st_srec *r, uint64_t *d)
{
	const uint64_t *v = r->data;
	uint64_t *l = last_of(t, r);
	for (unsigned m = 0; m < t->nm; m++) {
		d[m] = v[m] - l[m];
		l[m] = v[m];
	}
}

void st_stab_rebase(struct st_stab *t, struct st_srec *r)
{
	uint64_t *v = st_srec_values(r);
	uint64_t *l = last_of(t, r);
	for (unsigned m = 0; m < t->nm; m++) {
		v[m] -= l[m];
		l[m] = v[m];
	}
}

bool st_stab_keep(const struct st_stab *t)
{
	return t->count <= KEEP_RECORDS && t->arena_bytes <= KEEP_ARENA &&
	       t->seq < UINT32_MAX / 2;
}

size_t st_stab_count(const struct st_stab *t)
{
	return t->count;
}

void st_stab_clear(struct st_stab *t)
{
	/* Records cached by the writer (scache.c) die here. */
	t->epoch = new_epoch();
	t->ntouched = 0;
	t->seq = 1;
	if (t->count) /* the next records start with nothing folded */
		memset(t->last, 0, t->count * t->nm * sizeof(*t->last));
	if (!t->count && !t->chunks)
		return;
	/* A table that grew for a burst shrinks back when the next period is
	 * quiet, so one spike does not pin memory for good. */
	size_t want = INITIAL_SLOTS;
	while (want < t->count * 4 && want <= t->mask)
		want *= 2;
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
	t->count = 0;
	if (t->tcap > want) {
		/* The lists shrink with the slots (capacity >= count still);
		 * both or neither, so the capacity holds for both. */
		const size_t lb = t->nm * sizeof(*t->last);
		struct st_srec **p = st_region_alloc(want * sizeof(*p), ST_REGION_UNINIT);
		uint64_t *l = st_region_alloc(want * lb, ST_REGION_PREFAULT);
		if (p && l) {
			st_region_free(t->touched, t->ttcap * sizeof(*t->touched));
			st_region_free(t->last, t->tcap * lb);
			t->touched = p;
			t->last = l;
			t->tcap = t->ttcap = want;
		} else {
			st_region_free(p, want * sizeof(*p));
			st_region_free(l, want * lb);
		}
	}
	/* Keep up to 4 MiB of arena for the next period, free the rest. */
	size_t kept = 0;
	struct chunk *c = t->chunks;
	t->chunks = NULL;
	while (c) {
		struct chunk *n = c->next;
		if (kept + c->size <= 4u * 1024 * 1024) {
			kept += c->size;
			c->next = t->free_chunks;
			t->free_chunks = c;
		} else {
			t->arena_bytes -= sizeof(*c) + c->size;
			st_region_free(c, sizeof(*c) + c->size);
		}
		c = n;
	}
}

size_t st_stab_memory(const struct st_stab *t)
{
	return sizeof(*t) + st_hslots_bytes(t->mask) + t->arena_bytes +
	       t->ttcap * sizeof(*t->touched) + t->tcap * t->nm * sizeof(*t->last);
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
