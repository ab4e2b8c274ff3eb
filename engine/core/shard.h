/* SPDX-License-Identifier: MIT */
/*
 * shard.h - a shard (one writer's way in) and its stack table (shard.c has
 * the design and "Who writes what").
 */
#ifndef ST_SHARD_H
#define ST_SHARD_H

#include "core.h"

/* One writer's stack table (stacks -> accumulated values).
 *
 * A record is its key (frames, depth, hash) and a link to the master,
 * written once; its values live in the table's value slab (shard.c), where
 * the writer adds to them and the merger reads them while the writer goes
 * on (relaxed atomics: only the writer stores).  Values are cumulative for
 * as long as the table keeps the record; what the merger has folded of
 * them is in `last`, which only the merger touches. */
struct st_srec {
	uint32_t depth;
	uint32_t idx; /* creation order in the table */
	uint64_t hash;
	/* The merger's link to the master (master.c invariant 3): the leaf this
	 * stack was folded into, valid while epoch equals the master's; epoch
	 * 0: never folded.  Written only when the stack is walked. */
	uint32_t leaf;
	uint32_t epoch;
	uint64_t *v;            /* nm values in the slab: the writer's */
	uint64_t *last;         /* nm values folded so far: the merger's */
	_Atomic uint8_t *dirty; /* its flag in the slab: set by every add */
	uint32_t frames[];
};
static inline uint32_t *st_srec_frames(struct st_srec *r, unsigned nm)
{
	(void)nm;
	return r->frames;
}
/* Merger: what r gained since it was last folded, into d[nm], remembered
 * as folded; true when some metric gained.  A record is folded by one
 * merge worker at a time (rule P1). */
static inline bool st_srec_take(struct st_srec *r, unsigned nm, uint64_t *d)
{
	uint64_t any = 0;
	for (unsigned m = 0; m < nm; m++) {
		uint64_t x = __atomic_load_n(&r->v[m], __ATOMIC_RELAXED);
		d[m] = x - r->last[m];
		r->last[m] = x;
		any |= d[m];
	}
	return any != 0;
}
/* Merger: drop what r gained (out of memory; the caller counts it). */
static inline void st_srec_drop(struct st_srec *r, unsigned nm)
{
	uint64_t d[ST_MAX_METRICS];
	(void)st_srec_take(r, nm, d);
}

/* An open-addressing slot (hash 0 = empty, linear probe, power-of-two
 * table) of the shard stack table and of the writer's string-stack cache. */
struct st_hslot {
	uint64_t hash;
	void *p; /* struct st_srec * (shard.c) or struct st_scent * (scache.c) */
};
/* Double a slot table (a region of (mask + 1) slots, region.h) and rehash
 * it; on -ENOMEM the table is unchanged. */
int st_hslots_grow(struct st_hslot **slots, size_t *mask);
/* Bytes of a slot table of mask + 1 slots (its region's size). */
static inline size_t st_hslots_bytes(size_t mask)
{
	return (mask + 1) * sizeof(struct st_hslot);
}

struct st_stab;
struct st_stab *st_stab_create(unsigned nmetrics);
void st_stab_destroy(struct st_stab *t);
/* Add values to the stack's record, creating it.  Single writer.  The
 * frames are checked only when the stack is new (a record's frames were
 * checked when it was made): -EINVAL, nothing added, when some frame is
 * >= bound.  0, -EINVAL or -ENOMEM. */
int st_stab_add(struct st_stab *t, const uint32_t *frames, uint32_t depth,
		uint64_t hash, const uint64_t *values, uint32_t bound);
/* The same, returning the record the values went to (valid until the
 * table's epoch changes), or NULL when out of memory. */
struct st_srec *st_stab_upsert(struct st_stab *t, const uint32_t *frames, uint32_t depth,
			       uint64_t hash, const uint64_t *values);
/* Process-unique and never 0; changes whenever the table drops its records
 * (st_stab_clear), so (record pointer, epoch) pairs can be cached. */
uint64_t st_stab_epoch(const struct st_stab *t);
/* Cache hints for batched ingest: the slot, then the record, of `hash`. */
void st_stab_prefetch_slot(const struct st_stab *t, uint64_t hash);
void st_stab_prefetch_rec(const struct st_stab *t, uint64_t hash, uint32_t depth);
/* Add values to r, a record of t (the writer's path for a record it
 * already holds, e.g. through its stack cache).  0, or -ENOMEM when a sum
 * would pass UINT64_MAX and no record could be made to take it (nothing
 * added). */
int st_stab_add_rec(struct st_stab *t, struct st_srec *r, const uint64_t *values);
/*
 * The merger's view: each record has a flag every add sets (touched since
 * its last fold); records come in groups of ST_STAB_GROUP by creation
 * order, whose flags share a cache line.  st_stab_groups() is the number
 * of groups now; st_stab_visit() takes the set flags of groups [g0, g1)
 * and calls fn on each of those records.  Safe while the writer adds
 * (shard.c "Who writes what"); distinct group ranges may be visited at
 * once by different threads (fn touches only its record's link and
 * `last`).
 */
#define ST_STAB_GROUP 64u
typedef void (*st_srec_fn)(void *arg, struct st_stab *t, struct st_srec *r);
size_t st_stab_groups(const struct st_stab *t);
void st_stab_visit(struct st_stab *t, size_t g0, size_t g1, st_srec_fn fn, void *arg);
/* Merger, on a table it owns (flipped out, after the grace period): make
 * r's values what it gained since its last fold and remember those as
 * folded, so they can be read as they are (the one-shot drain). */
void st_stab_rebase(struct st_stab *t, struct st_srec *r);
size_t st_stab_count(const struct st_stab *t);
/* Merger, at any time: true when the table is small enough to keep its
 * records (linked to the master) and be folded in place; false when it is
 * to be flipped out and cleared. */
bool st_stab_keep(const struct st_stab *t);
void st_stab_clear(struct st_stab *t);
size_t st_stab_memory(const struct st_stab *t);

struct st_shard {
	/* The table the owner writes into.  Owner: rcu_dereference inside a
	 * read-side section; merger: rcu_xchg_pointer then grace period. */
	struct st_stab *active;
	/* Owned by the merger (under merge_lock): the empty table swapped in
	 * at the next flip. */
	struct st_stab *spare;
	/* 0 free, 1 claimed by a writer; CAS acquire on open, store release
	 * on close (hands the table over between threads). */
	atomic_int owner;
	unsigned index;
	/* Written by the owner only (relaxed), read by stats. */
	_Atomic uint64_t ingested;
	_Atomic uint64_t dropped;
} __attribute__((aligned(ST_CACHELINE)));


/* A shard with two empty tables (active, spare) for nmetrics values; NULL
 * on allocation failure. */
struct st_shard *st_shard_new(unsigned nmetrics, unsigned index);
void st_shard_free(struct st_shard *sh);

#endif /* ST_SHARD_H */
