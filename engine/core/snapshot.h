/* SPDX-License-Identifier: MIT */
/*
 * snapshot.h - building and publishing snapshots (snapshot.c has the
 * layout and the lifetime rules).  The builder is handed everything it
 * reads: a view of the master, the current snapshot and the intern table.
 * It never calls back into the engine.
 */
#ifndef ST_SNAPSHOT_H
#define ST_SNAPSHOT_H

#include "master.h"

/*
 * A snapshot of the master as v shows it.  prev is the snapshot currently
 * published (or NULL): when the shape did not change, the new one shares
 * its structure.  e is only remembered for st_snap_engine(); in names the
 * frames.  The caller is the only publisher (it holds merge_lock) and keeps
 * prev alive.  NULL on allocation failure.
 */
struct st_snap *st_snap_build(const struct st_master_view *v, const struct st_snap *prev,
			      struct st_engine *e, const struct st_intern *in, uint64_t version,
			      uint64_t generation);
/*
 * The partitioned master's builder (merger.c splits the master by stack
 * hash): one snapshot of the union of np partitions' tries, equal-named
 * children merged recursively.  Every child list must be in name order
 * (st_master_sort).  map is the builder's scratch, owned by the caller:
 * snapshot node i is the union of the partition nodes
 * mem[mstart[i] .. mstart[i + 1]), each (partition << 32 | node), in
 * partition order; when no partition's shape changed since it was filled
 * (map->shape) and prev was built from it, only the counts are gathered.
 */
struct st_pmap {
	uint32_t *mstart; /* n + 1 entries */
	uint64_t *mem;
	size_t mscap, mcap; /* each array's entries (regions) */
	uint32_t n;
	uint64_t shape; /* the partitions' summed shapes it maps; 0 = none */
};
struct st_snap *st_snap_build_parts(const struct st_master_view *v, unsigned np,
				    struct st_pmap *map, const struct st_snap *prev,
				    struct st_engine *e, const struct st_intern *in,
				    uint64_t version, uint64_t generation);
void st_pmap_free(struct st_pmap *map);
/* Publish s in *slot; the old one's reference is dropped after a grace
 * period.  Caller is the only publisher of *slot. */
void st_snap_publish(struct st_snap **slot, struct st_snap *s);
/* Take a reference on the snapshot *slot holds (st_snap_acquire). */
struct st_snap *st_snap_acquire_slot(struct st_snap **slot);
/*
 * An unpublished snapshot of n >= 1 nodes and nm metrics from another
 * builder (snapdelta.c), naming frames and metrics as `like` does: its
 * metric k is like's metric m0 + k.  The caller fills *frame (n) and
 * *first_child (n + 1) in the layout of snapshot.c and every node's self
 * values in *self (n * nm, node-major), then calls st_snap_seal().  NULL
 * on allocation failure.
 */
struct st_snap *st_snap_new_like(const struct st_snap *like, uint32_t n, unsigned nm, unsigned m0,
				 uint32_t **frame, uint32_t **first_child, uint64_t **self);
/* Turn st_snap_new_like()'s self values into totals (with the saturated
 * nodes' side list): s, refcounted (st_snap_release), or NULL after
 * freeing s when memory ran out. */
struct st_snap *st_snap_seal(struct st_snap *s);
/* s's arrays, read-only, for builders in engine/core (snapdelta.c):
 * frame[n], first_child[n + 1] and total[n * nm] (node-major). */
void st_snap_arrays(const struct st_snap *s, const uint32_t **frame, const uint32_t **first_child,
		    const uint64_t **total);
/* Free the current snapshot at destroy time (after rcu_barrier). */
void st_snap_free_now(struct st_snap *s);

#endif /* ST_SNAPSHOT_H */
