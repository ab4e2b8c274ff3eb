/* SPDX-License-Identifier: MIT */
/*
 * internal.h - what the engine's source files share and nobody else sees.
 *
 * One file per concept:
 *   alloc.c     the one allocator (failure injection for tests)
 *   rcu.c       liburcu flavour choice and implicit thread registration
 *   intern.c    frame strings <-> ids (RCU hash table, lock-free lookups)
 *   shard.c     a shard's stack table: the single-writer ingest structure
 *   scache.c    a writer's cache of string stacks (st_writer_ingest_strs)
 *   master.c    the merger's private mutable trie (+ node-cap folding)
 *   snapshot.c  immutable published tries, RCU publication, queries
 *   engine.c    create/destroy, writers, the merger thread, flush, reset
 *   export*.c   writers of output formats
 *   reference.c the mutex trie used as the oracle
 */
#ifndef ST_INTERNAL_H
#define ST_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#include "shardtrie.h"

#define ST_CACHELINE 64
#define ST_LIKELY(x) __builtin_expect(!!(x), 1)
#define ST_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- alloc.c: every engine allocation goes through here. */
void *st_malloc(size_t n);
void *st_calloc(size_t nmemb, size_t n);
void *st_realloc(void *p, size_t n);
void st_free(void *p);
char *st_strdup(const char *s);

/* ---- saturating arithmetic: sums never wrap (documented in shardtrie.h). */
static inline uint64_t st_sat_add(uint64_t a, uint64_t b)
{
	uint64_t r;
	return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* ---- rcu.c */
/* Register the calling thread with urcu-memb once; unregistered at exit. */
void st_rcu_thread_online(void);
#define st_rcu_read_lock() urcu_memb_read_lock()
#define st_rcu_read_unlock() urcu_memb_read_unlock()
#define st_rcu_synchronize() urcu_memb_synchronize_rcu()
#define st_rcu_barrier() urcu_memb_barrier()
#define st_call_rcu(head, fn) urcu_memb_call_rcu((head), (fn))

/* ---- intern.c */
struct st_intern;
struct st_intern *st_intern_create(void);
void st_intern_destroy(struct st_intern *in);
/* Lookup-or-insert; hash must be st_hash_bytes(s, len). */
int64_t st_intern_get(struct st_intern *in, const char *s, size_t len, uint64_t hash);
const char *st_intern_name(const struct st_intern *in, uint32_t id, size_t *len);
uint32_t st_intern_count(const struct st_intern *in);
/* True once some interned name holds '\n' or '\r'. */
bool st_intern_has_eol(const struct st_intern *in);
size_t st_intern_memory(const struct st_intern *in);
uint64_t st_hash_bytes(const void *p, size_t len);
/* Byte-wise name order of two frame ids (shorter first on a common prefix). */
int st_intern_cmp(const struct st_intern *in, uint32_t a, uint32_t b);

/* ---- shard.c: one writer's stack table (stacks -> accumulated values).
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
/* Double a slot table and rehash it; on -ENOMEM the table is unchanged. */
int st_hslots_grow(struct st_hslot **slots, size_t *mask);

struct st_stab;
struct st_stab *st_stab_create(unsigned nmetrics);
void st_stab_destroy(struct st_stab *t);
/* Add values to the stack's record, creating it.  Single writer.  0/-ENOMEM */
int st_stab_add(struct st_stab *t, const uint32_t *frames, uint32_t depth,
		uint64_t hash, const uint64_t *values);
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

/* ---- scache.c: one writer's cache of whole string stacks (a sample given
 * as strings -> its ids and shard records; see scache.c). */
struct st_scent {
	uint64_t hash;    /* st_scache_hash() of the stack */
	uint64_t id_hash; /* st_hash_bytes(ids): the stack's shard-table hash */
	/* The stack's record in up to two shard tables, each valid while that
	 * table's st_stab_epoch() equals epoch[k] (scache.c invariant 3). */
	struct st_srec *rec[2];
	uint64_t epoch[2];
	uint32_t depth;
	uint32_t nbytes;
	/* uint32_t ids[depth]; uint32_t lens[depth]; char bytes[nbytes]; */
	uint32_t data[];
};
static inline const uint32_t *st_scent_ids(const struct st_scent *e) { return e->data; }

struct st_scache;
struct st_scache *st_scache_create(void);
void st_scache_destroy(struct st_scache *c);
/* The stack's hash (not st_hash_bytes: a cheaper one, see scache.c). */
uint64_t st_scache_hash(const char *const *frames, const size_t *lens, size_t depth);
/* The entry whose bytes equal the stack (checked byte for byte), or NULL. */
struct st_scent *st_scache_find(struct st_scache *c, uint64_t hash, const char *const *frames,
				const size_t *lens, size_t depth);
/* Add a stack that st_scache_find() just missed; NULL when it is not cached
 * (too big, or no memory: the caller takes the uncached path). */
struct st_scent *st_scache_insert(struct st_scache *c, uint64_t hash, const char *const *frames,
				  const size_t *lens, size_t depth, const uint32_t *ids,
				  uint64_t id_hash);
/* Cache hints for batched ingest: the slot, then the entry, of `hash`. */
void st_scache_prefetch_slot(const struct st_scache *c, uint64_t hash);
void st_scache_prefetch_ent(const struct st_scache *c, uint64_t hash);
void st_scache_reset(struct st_scache *c);
size_t st_scache_count(const struct st_scache *c);
size_t st_scache_memory(const struct st_scache *c);

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

/* ---- master.c: the merger's private trie. */
struct st_master;
struct st_master *st_master_create(unsigned nmetrics, uint64_t node_cap, uint32_t other_id);
void st_master_destroy(struct st_master *m);
/* Fold one shard record: add v (what it gained since its last fold) to its
 * leaf, walking (and creating) the path only when the record's (leaf, epoch)
 * link is stale; refreshes the link.  0 or -ENOMEM. */
int st_master_add_rec(struct st_master *m, struct st_srec *r, const uint64_t *v);
/* True when r's (leaf, epoch) link is valid: folding it needs no walk. */
bool st_master_rec_linked(const struct st_master *m, const struct st_srec *r);
/* Fold n unlinked records, rebased (st_stab_rebase: their values are what
 * they gained): sorts recs by frames, then walks each from where it
 * diverges from the previous one, links it and adds its values.  Returns how many
 * failed with -ENOMEM (counted as dropped by the caller). */
size_t st_master_link_sorted(struct st_master *m, struct st_srec **recs, size_t n);
/* Cache hint: the self slot r will add to, when r is linked. */
void st_master_prefetch_rec(const struct st_master *m, const struct st_srec *r);
void st_master_clear(struct st_master *m);
/* Apply the node cap; returns nodes folded away (0 when under the cap). */
uint64_t st_master_apply_cap(struct st_master *m);
/* Put every dirty child list in name order (before a snapshot build). */
int st_master_sort(struct st_master *m, const struct st_intern *in);
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

/* ---- snapshot.c */
struct st_snap *st_snap_build(struct st_engine *e, const struct st_master_view *v,
			      uint64_t version, uint64_t generation);
/* Publish s as the engine's current snapshot; the old one is released
 * after a grace period.  Caller holds merge_lock. */
void st_snap_publish(struct st_engine *e, struct st_snap *s);
/* Free the current snapshot at destroy time (after rcu_barrier). */
void st_snap_free_now(struct st_snap *s);

/* ---- engine.c */
#define ST_SHARDS_MAX 4096

/* The engine a writer feeds (parsers intern through it). */
struct st_engine *st_writer_engine(const struct st_writer *w);
/* st_writer_ingest_batch() that also says how many samples went in before
 * the first failure (s[*done] is the one that failed): 0 or -errno. */
int st_writer_ingest_batch_done(struct st_writer *w, const struct st_sample *s, size_t n,
				size_t *done);

struct st_engine {
	struct st_options opt;
	char *metric_names[ST_MAX_METRICS];
	char *metric_units[ST_MAX_METRICS];
	struct st_intern *intern;
	uint32_t other_id;

	/* Shard registry: slots [0, nshards) are published with a release
	 * store of nshards after the shard is initialised; read with acquire. */
	struct st_shard *shards[ST_SHARDS_MAX];
	atomic_uint nshards;
	unsigned ncpu_shards;
	pthread_mutex_t shard_lock; /* serialises adding shards */

	/* Everything below is protected by merge_lock. */
	pthread_mutex_t merge_lock;
	struct st_master *master;
	uint64_t version;
	uint64_t generation;
	uint64_t merges;
	uint64_t folded;
	uint64_t merge_dropped;
	struct st_srec **walk;    /* merge_locked(): unlinked records */
	size_t nwalk, walk_cap;
	bool unpublished;         /* folded since the last publish */
	uint64_t next_publish_ns; /* merger thread: earliest next publish */
	struct st_stab *flipped[ST_SHARDS_MAX]; /* merge_locked() scratch */

	/* Current snapshot: rcu_assign_pointer under merge_lock,
	 * rcu_dereference by readers. */
	struct st_snap *snap;

	/* Merger thread. */
	pthread_t merger;
	bool merger_running;
	pthread_mutex_t merger_mu;
	pthread_cond_t merger_cv;
	bool merger_stop;

	/* Implicit writers made by st_ingest (see engine.c). */
	struct st_implicit *implicit_head;
};

const struct st_intern *st_engine_intern(const struct st_engine *e);
/* True once a frame name of the snapshot's engine holds a line break. */
bool st_snap_names_have_eol(const struct st_snap *s);

/*
 * One-shot export (export_folded.c): flip every shard, wait one grace period
 * and call fn once with every record that holds values (any order, a stack
 * may appear once per shard; records stay valid during the call), then
 * discard them all: they never reach the master.  -EBUSY (fn not called,
 * nothing taken) when the master already holds a stack below the root, so
 * the shards are not the whole profile.  Returns fn's result or -ENOMEM.
 */
typedef int (*st_drain_fn)(void *arg, struct st_srec *const *recs, size_t n, unsigned nm);
int st_engine_drain(struct st_engine *e, st_drain_fn fn, void *arg);

#endif /* ST_INTERNAL_H */
