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
 * A record's values are cumulative for as long as its table keeps it: the
 * writer only ever adds, and the merger never writes a record it folds
 * through its master link (shard.c "Who writes what"), so the writer's
 * cache keeps the record's lines across a fold. */
struct st_srec {
	uint32_t depth;
	uint32_t tseq; /* the table's fold sequence when last listed (writer) */
	uint64_t hash;
	/* The merger's link to the master (master.c invariant 3): the leaf this
	 * stack was folded into, valid while epoch equals the master's.
	 * Written only when the stack is walked, not on every fold. */
	uint32_t leaf;
	uint32_t epoch;
	uint32_t idx; /* creation order in the table: its slot in t->last */
	uint32_t pad_;
	/* uint64_t values[nmetrics]; uint32_t frames[depth]; follow */
	uint64_t data[];
};
static inline uint64_t *st_srec_values(struct st_srec *r) { return r->data; }
static inline uint32_t *st_srec_frames(struct st_srec *r, unsigned nm)
{
	return (uint32_t *)(r->data + nm);
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
/* The same, returning the record (valid until the table's epoch changes),
 * or NULL when out of memory. */
struct st_srec *st_stab_upsert(struct st_stab *t, const uint32_t *frames, uint32_t depth,
			       uint64_t hash, const uint64_t *values);
/* Process-unique and never 0; changes whenever the table drops its records
 * (st_stab_clear), so (record pointer, epoch) pairs can be cached. */
uint64_t st_stab_epoch(const struct st_stab *t);
/* Cache hints for batched ingest: the slot, then the record, of `hash`. */
void st_stab_prefetch_slot(const struct st_stab *t, uint64_t hash);
void st_stab_prefetch_rec(const struct st_stab *t, uint64_t hash, uint32_t depth);
/* Add values to r, a record of t (the writer's path for a record it
 * already holds, e.g. through its stack cache): lists r for the next fold
 * when it is its first add since the last one. */
void st_stab_add_rec(struct st_stab *t, struct st_srec *r, const uint64_t *values);
/* Visit every record touched since the last call, then empty the list and
 * start a new fold sequence.  Merger, after a grace period.  fn gets the
 * table for st_stab_delta / st_stab_rebase. */
typedef void (*st_srec_fn)(void *arg, struct st_stab *t, struct st_srec *r);
void st_stab_foreach_touched(struct st_stab *t, st_srec_fn fn, void *arg);
/* The same in pieces, for several merge workers on one table: the number
 * of records listed; visit listed records [from, to) (distinct pieces may
 * be visited at once by different threads: fn touches only its record and
 * that record's folded values); then, once every piece is visited and by
 * one thread, empty the list and start a new fold sequence. */
size_t st_stab_touched(const struct st_stab *t);
void st_stab_visit_touched(struct st_stab *t, size_t from, size_t to, st_srec_fn fn, void *arg);
void st_stab_touched_done(struct st_stab *t);
/* Merger: what r gained since it was last folded, into d[nmetrics], and
 * remember r's values as folded.  Reads r, writes only merger memory. */
void st_stab_delta(struct st_stab *t, const struct st_srec *r, uint64_t *d);
/* Merger: make r's values what it gained since it was last folded and
 * remember those as folded, so r's values can be added as they are (the
 * walk and the one-shot drain).  Writes r: for records off the hot path. */
void st_stab_rebase(struct st_stab *t, struct st_srec *r);
size_t st_stab_count(const struct st_stab *t);
/* After a fold: true when the table is small enough to keep its records
 * (linked to the master) for the next period, false to clear it. */
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
