/* SPDX-License-Identifier: MIT */
/* master.h - the merger's private trie (master.c has the design). */
#ifndef ST_MASTER_H
#define ST_MASTER_H

#include <sched.h>

#include "intern.h"
#include "shard.h"

struct st_master;
/* At most this many master partitions (merger.c splits the master by stack
 * hash when it has several merge workers). */
#define ST_PARTS_MAX 64
/* Its epochs are epoch0, epoch0 + estep, ... (estep a power of two, epoch0
 * nonzero): partition p of P uses epoch0 = P + p, estep = P, so a linked
 * record's epoch % P is its partition (invariant 3 in master.c). */
struct st_master *st_master_create(unsigned nmetrics, uint64_t node_cap, uint32_t other_id,
				   uint32_t epoch0, uint32_t estep);
void st_master_destroy(struct st_master *m);
/* Fold one shard record: add v (what it gained since its last fold) to its
 * leaf, walking (and creating) the path only when the record's (leaf, epoch)
 * link is stale; refreshes the link.  0 or -ENOMEM. */
int st_master_add_rec(struct st_master *m, struct st_srec *r, const uint64_t *v);
/* The same with what r gained since its last fold, taken now (st_srec_take:
 * dropped when the walk fails, which the caller counts). */
int st_master_fold_rec(struct st_master *m, struct st_srec *r);
/* The same for a linked r, with atomic read-modify-writes of its leaf's
 * values: several threads may add at once, while nothing else writes m. */
void st_master_add_linked_shared(struct st_master *m, const struct st_srec *r, const uint64_t *v);
/* True when r's (leaf, epoch) link is valid: folding it needs no walk. */
bool st_master_rec_linked(const struct st_master *m, const struct st_srec *r);
/* The partition (of estep) r's epoch names, linked or not. */
static inline unsigned st_master_epoch_part(const struct st_srec *r, unsigned estep)
{
	return r->epoch & (estep - 1);
}
/* Fold n unlinked records: sorts recs by frames, then walks each from where
 * it diverges from the previous one, links it and adds what it gained
 * (st_srec_take).  Returns how many failed with -ENOMEM: their gain is
 * dropped (st_srec_drop), counted by the caller.  A fold of many records
 * sorts on two threads (master.c, sort_split) when helper is not NULL and
 * *helper->want is not 0 when the sort is split: while some thread has
 * nothing else to run meanwhile (the caller of a flush, or one waiting for
 * it).  The helper thread runs on helper->cpus: the engine's creator's
 * CPUs, not those of a caller pinned to one. */
struct st_sort_helper {
	const atomic_uint *want; /* split once *want != 0 (read relaxed) */
	const cpu_set_t *cpus;   /* where the helper may run; NULL: inherit */
};
size_t st_master_link_sorted(struct st_master *m, struct st_srec **recs, size_t n,
			     const struct st_sort_helper *helper);
/* How many folds so far sorted on two threads (tests). */
uint64_t st_master_sort_splits(const struct st_master *m);
/* Cache hint: the self slot r will add to, when r is linked. */
void st_master_prefetch_rec(const struct st_master *m, const struct st_srec *r);
void st_master_clear(struct st_master *m);
/* Apply the node cap; returns nodes folded away (0 when under the cap). */
uint64_t st_master_apply_cap(struct st_master *m);
/* Put every dirty child list in name order (before a snapshot build). */
int st_master_sort(struct st_master *m, const struct st_intern *in);
/* Child lists st_master_sort has to sort. */
size_t st_master_dirty(const struct st_master *m);
uint32_t st_master_nodes(const struct st_master *m);
size_t st_master_memory(const struct st_master *m);

/* Read-only view of the master used by the snapshot builder. */
struct st_master_view {
	uint32_t n;
	unsigned nm;
	const uint32_t *frame, *first_child, *next_sibling;
	const uint64_t *self; /* n * nm, node-major */
	/* Shape: changes whenever a node is added, lists are re-sorted, the
	 * trie is cleared or compacted.  order[0..n) is master-owned scratch
	 * for the snapshot builder (snapshot index -> master node); it still
	 * holds the last build's mapping when order_valid. */
	uint64_t shape;
	uint32_t *order;
	bool order_valid;
};
void st_master_view(const struct st_master *m, struct st_master_view *v);
/* The snapshot just built from the view filled `order` for this shape. */
void st_master_order_done(struct st_master *m);

#endif /* ST_MASTER_H */
