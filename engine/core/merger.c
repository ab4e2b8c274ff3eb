/* SPDX-License-Identifier: MIT */
/*
 * merger.c - the merger: fold what every shard's table gained into the
 * master trie, publish a snapshot.
 *
 *   writer A --owns--> shard 0: active table  (empty spare)
 *   writer B --owns--> shard 1: active table  (empty spare)
 *                          |  fold each table in place (its flagged groups,
 *                          |  shard.c) while its writer goes on; a table too
 *                          |  big to keep is swapped for its spare instead,
 *                          |  ONE grace period for all such, folded, cleared
 *                          v  and made the next spare
 *                    master trie --st_snap_build--> snapshot --publish (RCU)
 *
 * The merge step (merge_locked) runs under merge_lock, taken by the merger
 * thread every merge_interval_ms, by st_flush(), st_reset(),
 * st_engine_take_stacks() and st_engine_stats().  Ingest never takes it.
 *
 * With merge_workers > 1 the master is partitioned by stack hash and a pool
 * of threads helps the merge_lock holder fold (section "partitions" below);
 * the publish merges the partitions by name (st_snap_build_parts).
 *
 * Rules (docs/concurrency.md): E1 every sample is folded exactly once
 * (cumulative values, record flags taken by exchange, `last` the merger's;
 * a swap + grace period hands a table to clear to the merger alone); E2 a flush
 * contains every sample whose ingest returned before it; E4 the merger reads
 * nshards with acquire, after the shards it counts are published; P1 during
 * a merge each table, then each partition, has exactly one worker.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine.h"
#include "rcu.h"
#include "region.h"
#include "snapshot.h"

/* ------------------------------------------------------------ merging */

#define FOLD_GROUP 8

struct fold_ctx {
	struct st_engine *e;
	uint64_t records;
	size_t n; /* linked records queued, their self slots prefetched */
	struct st_srec *q[FOLD_GROUP];
};

/* Add what the queued (linked) records gained to their leaves: of a record
 * only `last` is written (shard.c, "Who writes what"). */
static void fold_drain(struct fold_ctx *c)
{
	uint64_t d[ST_MAX_METRICS];
	const unsigned nm = c->e->opt.nmetrics;
	for (size_t k = 0; k < c->n; k++)
		if (st_srec_take(c->q[k], nm, d) && st_master_add_rec(c->e->part[0], c->q[k], d))
			c->e->merge_dropped++;
	c->n = 0;
}

/* Double the walk list: a region (merger.c's one big buffer), grown by
 * mremap once it is big; it is written before it is read.  0/-ENOMEM. */
static int walk_grow(struct st_engine *e)
{
	size_t nc = e->walk_cap ? e->walk_cap * 2 : 4096;
	struct st_srec **w = st_region_grow(e->walk, e->walk_cap * sizeof(*w), nc * sizeof(*w),
					    ST_REGION_UNINIT);
	if (!w)
		return -ENOMEM;
	e->walk = w;
	e->walk_cap = nc;
	return 0;
}

static void fold_cb(void *arg, struct st_stab *t, struct st_srec *r)
{
	struct fold_ctx *c = arg;
	struct st_engine *e = c->e;
	(void)t;
	c->records++; /* touched since its last fold (shard.c) */
	if (!st_master_rec_linked(e->part[0], r)) {
		/* New (or stale) stack: walked later, in sorted order; the
		 * walk takes what it gained. */
		if (e->nwalk == e->walk_cap && walk_grow(e)) {
			/* Walk it alone now rather than lose it. */
			if (st_master_fold_rec(e->part[0], r))
				e->merge_dropped++;
			return;
		}
		e->walk[e->nwalk++] = r;
		return;
	}
	st_master_prefetch_rec(e->part[0], r);
	c->q[c->n++] = r;
	if (c->n == FOLD_GROUP)
		fold_drain(c);
}

/* ------------------------------------------------------------ partitions */

/*
 * With several merge workers the master is nparts tries (engine.c picks
 * nparts).  An unlinked record goes to the partition of part_key: the hash
 * of its first part_depth frames (all of them when it is shorter).  A
 * prefix, not the whole stack: stacks in different partitions duplicate
 * their shared nodes (each partition walks and creates them, the publish
 * merges them by name), so splitting by the whole stack's hash made 2.65x
 * the nodes of one trie on the cold bench workload.  Below depth
 * part_depth a subtree lives in one partition.  part_depth is the least
 * depth whose prefixes spread a sample of the records evenly over the
 * partitions (choose_depth), chosen while every partition is empty (no
 * record links to a node but a root, whose key no depth changes), so it
 * changes only after st_reset.  A linked record's epoch names its
 * partition (master.h): linked ones are not hashed again.  So a stack's
 * records always meet in one partition, and master.c invariant 3 holds
 * per partition.
 *
 * A merge still chooses its tables once (rule E1, choose_tables), and the
 * merge_lock holder hands them to the pool (worker 0 is itself, pool thread
 * i is worker i) for two phases, each started under pool_mu and ended when
 * pool_busy is 0 (mutex + condvar: what a phase wrote is visible to the
 * next):
 *   A. tables: workers take PIECES of the tables' groups (TABLE_GROUPS
 *      groups, TABLE_CHUNK records, each) from pool_next: a record is in
 *      one group, so only the taker of its piece writes its `last`.  A
 *      linked record's gain is added to its leaf right away, with an atomic
 *      add (st_master_add_linked_shared: two tables may hold the same
 *      stack; nothing else changes a trie in this phase); an unlinked one
 *      is listed in pwork[w * nparts + partition] for phase B, whose walk
 *      takes its gain.
 *   B. partitions: workers take PARTITIONS from pool_next; the taker of p
 *      alone touches part[p], the lists pwork[w * nparts + p] of every w and
 *      their records (a record is listed once): the unlinked ones of all
 *      lists in one st_master_link_sorted.
 * Between them, only in a merge that found every partition empty, S: the
 * merger picks part_depth from the lists (all under partition 0 in A) and
 * detaches them (e->ssrc); workers take CHUNKS of them and list each record
 * under its partition in their own row.
 * A publish (build_locked) runs one more, 3: workers take PARTITIONS and
 * put their dirty child lists in name order (st_master_sort), once for all
 * the folds since the last publish.  A phase with little work runs on the
 * merge_lock holder alone (pool_phase).
 * When merge_locked returns no worker runs, and the swapped tables go back
 * as spares.
 */
static int pwork_grow(void **p, size_t *cap, size_t esize)
{
	size_t nc = *cap ? *cap * 2 : 1024;
	void *q = st_region_grow(*p, *cap * esize, nc * esize, ST_REGION_UNINIT);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = nc;
	return 0;
}

/* Start the pool threads on the current phase (once per phase).  The mutex
 * orders everything before it (the flipped tables, the lists of earlier
 * phases) before the workers' reads.  Caller holds merge_lock. */
static void pool_wake(struct st_engine *e)
{
	e->pool_woken = true;
	pthread_mutex_lock(&e->pool_mu);
	e->pool_gen++;
	e->pool_busy = e->npool;
	pthread_cond_broadcast(&e->pool_cv);
	pthread_mutex_unlock(&e->pool_mu);
}

enum { PART_DEPTH_MAX = 64, PART_SAMPLE = 8192 };
/* Below these many records seen in the tables (phase A, ~30 ns each when
 * linked) or to walk (phases S and B, ~300 ns each) the caller works alone. */
enum { POOL_MIN_TABLE = 4096, POOL_MIN_WALK = 512 };
/* Phase S hands out the listed records in chunks of this many; phase A
 * hands out each table's groups in pieces of this many records (one busy
 * shard's groups are then visited by every worker, not by one). */
enum { SPLIT_CHUNK = 16384, TABLE_CHUNK = 4096, TABLE_GROUPS = TABLE_CHUNK / ST_STAB_GROUP };

static inline uint64_t key_step(uint64_t h, uint32_t f)
{
	return (h ^ f) * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
}

static inline unsigned key_part(const struct st_engine *e, uint64_t h)
{
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 32;
	return (unsigned)(h >> e->part_shift);
}

/* The partition of an unlinked record. */
static unsigned part_key(const struct st_engine *e, struct st_srec *r)
{
	const uint32_t *f = st_srec_frames(r, e->opt.nmetrics);
	const uint32_t k = r->depth < e->part_depth ? r->depth : e->part_depth;
	uint64_t h = 0;
	for (uint32_t d = 0; d < k; d++)
		h = key_step(h, f[d]);
	return key_part(e, h);
}

/* Pick part_depth from a sample of the unlinked records listed in phase A
 * (every partition empty: all are in the lists of partition 0): the least
 * depth at which no partition gets much over its share (binomial noise
 * allowed for), else the most even one; the deepest when the sample is too
 * small to tell. */
static void choose_depth(struct st_engine *e, size_t unlinked)
{
	uint32_t(*hist)[ST_PARTS_MAX] = st_calloc(PART_DEPTH_MAX, sizeof(*hist));
	if (!hist) {
		e->part_depth = PART_DEPTH_MAX; /* still exact, only less shared */
		return;
	}
	const size_t stride = unlinked / PART_SAMPLE + 1;
	size_t total = 0;
	for (unsigned wk = 0; wk < e->nworkers; wk++) {
		const struct st_pwork *w = &e->pwork[wk * e->nparts];
		for (size_t i = 0; i < w->nunl; i += stride) {
			const struct st_srec *r = w->unl[i];
			const uint32_t *f = st_srec_frames((struct st_srec *)r, e->opt.nmetrics);
			uint64_t h = 0;
			for (uint32_t d = 0; d < PART_DEPTH_MAX; d++) {
				if (d < r->depth)
					h = key_step(h, f[d]);
				hist[d][key_part(e, h)]++;
			}
			total++;
		}
	}
	if (total < 4 * (size_t)e->nparts) {
		/* Too few to judge a prefix by: split by (nearly) the whole
		 * stack, evenly, until a reset (shared nodes are repeated). */
		e->part_depth = PART_DEPTH_MAX;
		st_free(hist);
		return;
	}
	const double mean = (double)total / e->nparts;
	const double ok = mean * 1.15 + 3 * sqrt(mean) + 1;
	unsigned best = PART_DEPTH_MAX;
	uint32_t bestmax = UINT32_MAX;
	for (unsigned d = 0; d < PART_DEPTH_MAX; d++) {
		uint32_t mx = 0;
		for (unsigned p = 0; p < e->nparts; p++)
			mx = hist[d][p] > mx ? hist[d][p] : mx;
		if (mx < bestmax) {
			bestmax = mx;
			best = d + 1;
		}
		if (mx <= ok)
			break;
	}
	e->part_depth = best;
	st_free(hist);
}

/* Phase S, chunk i of the records listed in A (detached into e->ssrc[] by
 * split_begin): worker wk moves them to its own row's lists of their
 * partitions.  Returns records dropped. */
static uint64_t split_chunk(struct st_engine *e, unsigned wk, unsigned i)
{
	unsigned w = 0;
	size_t off = (size_t)i * SPLIT_CHUNK;
	while (off >= e->ssrc[w].nunl) { /* rows with records: each has a chunk */
		off -= (e->ssrc[w].nunl + SPLIT_CHUNK - 1) / SPLIT_CHUNK * SPLIT_CHUNK;
		w++;
	}
	const struct st_pwork *src = &e->ssrc[w];
	const size_t end = off + SPLIT_CHUNK < src->nunl ? off + SPLIT_CHUNK : src->nunl;
	struct st_pwork *row = &e->pwork[wk * e->nparts];
	uint64_t dropped = 0;
	for (size_t j = off; j < end; j++) {
		struct st_srec *r = src->unl[j];
		struct st_pwork *l = &row[part_key(e, r)];
		if (l->nunl == l->unlcap &&
		    pwork_grow((void **)&l->unl, &l->unlcap, sizeof(*l->unl))) {
			st_srec_drop(r, e->opt.nmetrics); /* as in dist_cb */
			dropped++;
			continue;
		}
		l->unl[l->nunl++] = r;
	}
	return dropped;
}

/* Before phase S: detach every row's partition-0 list (where A listed all)
 * into e->ssrc[]; returns the number of chunks. */
static unsigned split_begin(struct st_engine *e)
{
	unsigned chunks = 0;
	for (unsigned w = 0; w < e->nworkers; w++) {
		struct st_pwork *l = &e->pwork[w * e->nparts];
		e->ssrc[w] = *l;
		*l = (struct st_pwork){ 0 };
		chunks += (unsigned)((e->ssrc[w].nunl + SPLIT_CHUNK - 1) / SPLIT_CHUNK);
	}
	return chunks;
}

static void split_end(struct st_engine *e)
{
	for (unsigned w = 0; w < e->nworkers; w++) {
		st_region_free(e->ssrc[w].unl, e->ssrc[w].unlcap * sizeof(*e->ssrc[w].unl));
		e->ssrc[w] = (struct st_pwork){ 0 };
	}
}

struct dist_ctx {
	struct st_engine *e;
	struct st_pwork *pw; /* this worker's row: nparts lists */
	unsigned wk;
	uint64_t records, dropped;
	size_t n;            /* linked records queued, their leaves prefetched */
	struct st_srec *q[FOLD_GROUP];
	unsigned qp[FOLD_GROUP];
};

/* Add what the queued linked records gained to their leaves, at once with
 * the other workers (atomically: two tables may hold one stack). */
static void dist_drain(struct dist_ctx *c)
{
	uint64_t d[ST_MAX_METRICS];
	const unsigned nm = c->e->opt.nmetrics;
	for (size_t k = 0; k < c->n; k++)
		if (st_srec_take(c->q[k], nm, d))
			st_master_add_linked_shared(c->e->part[c->qp[k]], c->q[k], d);
	c->n = 0;
}

static void dist_cb(void *arg, struct st_stab *t, struct st_srec *r)
{
	struct dist_ctx *c = arg;
	struct st_engine *e = c->e;
	(void)t;
	unsigned p = st_master_epoch_part(r, e->nparts);
	struct st_master *m = e->part[p];
	/* Reads part[p]'s epoch and size, which no one writes in phase A. */
	const bool linked = st_master_rec_linked(m, r);
	/* pool_lazy is worker 0's own (pool_phase): no other worker reads it. */
	if (++c->records == POOL_MIN_TABLE && c->wk == 0 && e->pool_lazy)
		pool_wake(e); /* enough work for the pool (pool_phase) */
	if (linked) {
		st_master_prefetch_rec(m, r);
		c->q[c->n] = r;
		c->qp[c->n++] = p;
		if (c->n == FOLD_GROUP)
			dist_drain(c);
		return;
	}
	/* part_depth 0: every partition is empty, this merge chooses it after
	 * phase A from what came; listed in partition 0 meanwhile. */
	p = e->part_depth ? part_key(e, r) : 0;
	struct st_pwork *w = &c->pw[p];
	if (w->nunl == w->unlcap && pwork_grow((void **)&w->unl, &w->unlcap, sizeof(*w->unl))) {
		st_srec_drop(r, e->opt.nmetrics); /* part[p] cannot be walked here */
		c->dropped++;                     /* counted, not folded */
		return;
	}
	w->unl[w->nunl++] = r;
}

/* Phase B for partition p (its taker only).  Returns records dropped. */
static uint64_t fold_part(struct st_engine *e, unsigned p)
{
	const unsigned np = e->nparts;
	struct st_master *m = e->part[p];
	struct st_pwork *own = &e->pwork[p]; /* row 0's: holds the joined list */
	uint64_t dropped = 0;
	size_t nunl = 0;
	for (unsigned wk = 0; wk < e->nworkers; wk++)
		nunl += e->pwork[wk * np + p].nunl;
	/* One sorted walk over every worker's unlinked records of p: row 0's
	 * list gets the others appended (or, short of memory, each walks its
	 * own list: the same result, more walking). */
	while (own->unlcap < nunl &&
	       !pwork_grow((void **)&own->unl, &own->unlcap, sizeof(*own->unl)))
		;
	for (unsigned wk = 1; wk < e->nworkers; wk++) {
		struct st_pwork *w = &e->pwork[wk * np + p];
		if (!w->nunl)
			continue;
		if (own->unlcap >= nunl) {
			memcpy(own->unl + own->nunl, w->unl, w->nunl * sizeof(*w->unl));
			own->nunl += w->nunl;
		} else {
			dropped += st_master_link_sorted(m, w->unl, w->nunl, NULL);
		}
		w->nunl = 0;
	}
	dropped += st_master_link_sorted(m, own->unl, own->nunl, NULL);
	own->nunl = 0;
	/* Child lists are sorted by the publish (build_locked, phase 3), once
	 * for all the folds since the last one, as with one partition. */
	return dropped;
}

/* Worker wk's share of the current phase (pool_phase). */
static void pool_work(struct st_engine *e, unsigned wk)
{
	const unsigned phase = e->pool_phase;
	const unsigned n = phase == 0 ? e->pool_nachunks : phase == 2 ? e->pool_nchunks : e->nparts;
	struct dist_ctx c = { .e = e, .pw = &e->pwork[wk * e->nparts], .wk = wk };
	unsigned i;
	while ((i = atomic_fetch_add_explicit(&e->pool_next, 1, memory_order_relaxed)) < n) {
		if (phase == 0) {
			/* Piece i: the table whose first piece is the last <= i. */
			unsigned lo = 0, hi = e->pool_ntables - 1;
			while (lo < hi) {
				unsigned mid = (lo + hi + 1) / 2;
				if (e->pool_tchunk[mid] <= i)
					lo = mid;
				else
					hi = mid - 1;
			}
			size_t from = (size_t)(i - e->pool_tchunk[lo]) * TABLE_GROUPS;
			size_t to = e->pool_tgroups[lo];
			if (to > from + TABLE_GROUPS)
				to = from + TABLE_GROUPS;
			st_stab_visit(e->flipped[lo], from, to, dist_cb, &c);
			dist_drain(&c);
		} else if (phase == 1) {
			c.dropped += fold_part(e, e->pool_order[i]);
		} else if (phase == 2) {
			c.dropped += split_chunk(e, wk, i);
		} else {
			/* Failure leaves the lists valid: build_locked retries. */
			(void)st_master_sort(e->part[i], e->intern);
		}
	}
	e->pool_records[wk] += c.records;
	e->pool_dropped[wk] += c.dropped;
}

/* Run one phase; returns when no pool thread works.  The pool is woken at
 * once unless lazy; when lazy, worker 0 (the caller) wakes it once it has
 * seen POOL_MIN_TABLE records in phase A (dist_cb): waking costs ~50-100 us
 * on a busy host, more than a small fold.  Caller holds merge_lock. */
static void pool_phase(struct st_engine *e, unsigned phase, bool lazy)
{
	e->pool_phase = phase;
	e->pool_woken = false;
	e->pool_lazy = e->npool && lazy;
	atomic_store_explicit(&e->pool_next, 0, memory_order_relaxed);
	if (e->npool && !lazy)
		pool_wake(e);
	pool_work(e, 0);
	e->pool_lazy = false;
	if (e->pool_woken) {
		pthread_mutex_lock(&e->pool_mu);
		while (e->pool_busy)
			pthread_cond_wait(&e->pool_done, &e->pool_mu);
		pthread_mutex_unlock(&e->pool_mu);
	}
}

/* Distribute and fold the n flipped tables; returns records folded. */
static uint64_t pool_merge(struct st_engine *e, unsigned n)
{
	e->pool_ntables = n;
	bool empty = true;
	for (unsigned p = 0; p < e->nparts && empty; p++)
		empty = st_master_nodes(e->part[p]) == 1;
	if (empty) /* no record links below a root: the depth may change */
		e->part_depth = 0;
	unsigned pieces = 0;
	for (unsigned i = 0; i < n; i++) {
		/* The groups there are now: later ones wait for the next merge
		 * (their flags stay set). */
		e->pool_tgroups[i] = st_stab_groups(e->flipped[i]);
		e->pool_tchunk[i] = pieces;
		pieces += (unsigned)((e->pool_tgroups[i] + TABLE_GROUPS - 1) / TABLE_GROUPS);
	}
	e->pool_tchunk[n] = pieces;
	e->pool_nachunks = pieces;
	pool_phase(e, 0, true);
	size_t unlinked = 0;
	for (size_t i = 0; i < (size_t)e->nworkers * e->nparts; i++)
		unlinked += e->pwork[i].nunl;
	if (!e->part_depth && unlinked) {
		choose_depth(e, unlinked);
		e->pool_nchunks = split_begin(e);
		pool_phase(e, 2, unlinked < POOL_MIN_WALK);
		split_end(e);
	}
	if (unlinked) { /* else only known stacks came: nothing to walk */
		/* The biggest partitions first, so no worker is left with a big
		 * one at the end while the others wait (list length ~ work). */
		size_t len[ST_PARTS_MAX] = { 0 };
		for (unsigned p = 0; p < e->nparts; p++) {
			for (unsigned wk = 0; wk < e->nworkers; wk++)
				len[p] += e->pwork[wk * e->nparts + p].nunl;
			unsigned j = p;
			for (; j > 0 && len[e->pool_order[j - 1]] < len[p]; j--)
				e->pool_order[j] = e->pool_order[j - 1];
			e->pool_order[j] = (uint8_t)p;
		}
		pool_phase(e, 1, unlinked < POOL_MIN_WALK);
	}
	uint64_t records = 0;
	for (unsigned wk = 0; wk < e->nworkers; wk++) {
		records += e->pool_records[wk];
		e->merge_dropped += e->pool_dropped[wk];
		e->pool_records[wk] = e->pool_dropped[wk] = 0;
	}
	return records;
}

struct pool_arg {
	struct st_engine *e;
	unsigned wk;
};

static void *pool_main(void *arg)
{
	struct st_engine *e = ((struct pool_arg *)arg)->e;
	const unsigned wk = ((struct pool_arg *)arg)->wk;
	st_free(arg);
	uint64_t seen = 0; /* pool_gen at start: no run before the pool is up */
	pthread_mutex_lock(&e->pool_mu);
	for (;;) {
		while (!e->pool_stop && e->pool_gen == seen)
			pthread_cond_wait(&e->pool_cv, &e->pool_mu);
		if (e->pool_stop)
			break;
		seen = e->pool_gen;
		pthread_mutex_unlock(&e->pool_mu);
		pool_work(e, wk);
		pthread_mutex_lock(&e->pool_mu);
		if (--e->pool_busy == 0)
			pthread_cond_signal(&e->pool_done);
	}
	pthread_mutex_unlock(&e->pool_mu);
	return NULL;
}

static void pool_stop(struct st_engine *e)
{
	if (!e->npool)
		return;
	pthread_mutex_lock(&e->pool_mu);
	e->pool_stop = true;
	pthread_cond_broadcast(&e->pool_cv);
	pthread_mutex_unlock(&e->pool_mu);
	for (unsigned i = 0; i < e->npool; i++)
		pthread_join(e->pool[i], NULL);
	e->npool = 0;
}

/*
 * Choose the tables of this merge: every shard's active table, folded in
 * place while its writer goes on (shard.c, "Who writes what"), except those
 * to clear (too big to keep, or all of them when `all`): those are swapped
 * for their (empty) spares, and after one grace period the caller (holding
 * merge_lock) owns them (rule E1).  e->flipped[i] is shard i's table to
 * fold, e->flipped_out[i] says it was swapped out.  Returns the number of
 * shards.  With nothing to swap there is no grace period at all.
 */
static unsigned choose_tables(struct st_engine *e, bool all)
{
	unsigned n = atomic_load_explicit(&e->nshards, memory_order_acquire);
	bool any = false;
	for (unsigned i = 0; i < n; i++) {
		struct st_shard *sh = e->shards[i];
		/* Only merge_lock holders store sh->active. */
		struct st_stab *t = sh->active;
		e->flipped_out[i] = all || !st_stab_keep(t);
		if (e->flipped_out[i]) {
			/* Full barrier inside; pairs with the writers'
			 * rcu_dereference. */
			t = rcu_xchg_pointer(&sh->active, sh->spare);
			sh->spare = NULL;
			any = true;
		}
		e->flipped[i] = t;
	}
	if (any) {
		st_rcu_synchronize(); /* rule E1: now we own every swapped table */
		for (unsigned i = 0; i < n; i++)
			if (e->flipped_out[i])
				TSAN_ACQUIRE(e->flipped[i]);
	}
	return n;
}

/* Tables swapped out go back as spares, cleared. */
static void return_tables(struct st_engine *e, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (!e->flipped_out[i])
			continue;
		st_stab_clear(e->flipped[i]);
		TSAN_RELEASE(e->flipped[i]); /* for the writer after the next swap */
		e->shards[i]->spare = e->flipped[i];
	}
}

/*
 * Fold what the n tables e->flipped[] gained into the master.  Caller
 * holds merge_lock.  Returns records folded.
 *
 * Linked records (seen in an earlier period) are added as they come.  The
 * unlinked ones are collected from every shard, sorted by frames and walked
 * in that order, so each walk starts where it diverges from the previous
 * stack instead of at the root (st_master_link_sorted).  A big fold may
 * sort on a second thread where a thread has nothing else to run: in a
 * flush (`flush`: its caller waits for it), or in the merger's fold once a
 * flush or reset waits for merge_lock.
 */
static uint64_t fold_tables(struct st_engine *e, unsigned n, bool flush)
{
	e->nwalk = 0;
	if (e->nparts > 1)
		return pool_merge(e, n);
	struct fold_ctx c = { .e = e };
	for (unsigned i = 0; i < n; i++) {
		st_stab_visit(e->flipped[i], 0, st_stab_groups(e->flipped[i]), fold_cb, &c);
		fold_drain(&c);
	}
	/* A flush's caller waits for its fold; the merger's fold may have
	 * a flush waiting for it by the time it sorts (publish_waiting). */
	static const atomic_uint always = 1;
	const struct st_sort_helper help = { flush ? &always : &e->publish_waiting,
					     e->cpus_known ? &e->cpus : NULL };
	e->merge_dropped += st_master_link_sorted(e->part[0], e->walk, e->nwalk,
						  e->flush_helper ? &help : NULL);
	e->nwalk = 0;
	return c.records;
}

static uint64_t now_ns(void);

/* Fold every shard's table (or, on a reset, discard them all); `flush`:
 * for st_flush (fold_tables).  Caller holds merge_lock.  Returns records
 * folded. */
static uint64_t merge_locked(struct st_engine *e, bool discard, bool flush)
{
	uint64_t t0 = now_ns();
	unsigned n = choose_tables(e, discard);
	uint64_t records = discard ? 0 : fold_tables(e, n, flush);
	return_tables(e, n);
	e->merges++;
	e->merge_records += records;
	e->merge_fold_ns += now_ns() - t0;
	return records;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A snapshot of the master (every partition); NULL when out of memory. */
static struct st_snap *build_locked(struct st_engine *e)
{
	if (e->nparts == 1) {
		e->folded += st_master_apply_cap(e->part[0]);
		if (st_master_sort(e->part[0], e->intern))
			return NULL;
		struct st_master_view v;
		st_master_view(e->part[0], &v);
		struct st_snap *s = st_snap_build(&v, e->snap, e, e->intern, e->version + 1,
						  e->generation);
		if (s)
			st_master_order_done(e->part[0]);
		return s;
	}
	struct st_master_view v[ST_PARTS_MAX];
	size_t dirty = 0;
	for (unsigned p = 0; p < e->nparts; p++)
		dirty += st_master_dirty(e->part[p]);
	if (dirty) /* each partition's lists in name order, by the pool */
		pool_phase(e, 3, dirty < POOL_MIN_WALK);
	for (unsigned p = 0; p < e->nparts; p++) {
		if (st_master_sort(e->part[p], e->intern))
			return NULL;
		st_master_view(e->part[p], &v[p]);
	}
	return st_snap_build_parts(v, e->nparts, &e->pmap, e->snap, e, e->intern,
				   e->version + 1, e->generation);
}

/* Build and publish a snapshot of the master.  Caller holds merge_lock. */
static uint64_t publish_locked(struct st_engine *e)
{
	const uint64_t t0 = now_ns();
	struct st_snap *s = build_locked(e);
	if (!s)
		return 0;
	e->merged_nodes = (uint32_t)st_snap_node_count(s);
	e->version++;
	st_snap_publish(&e->snap, s);
	e->unpublished = false;
	e->publish_ns += now_ns() - t0;
	return e->version;
}

/* Engine creation: the first (empty) snapshot, version 1.  0/-ENOMEM. */
int st_merger_first_snapshot(struct st_engine *e)
{
	struct st_snap *s = build_locked(e);
	if (!s)
		return -ENOMEM;
	e->merged_nodes = (uint32_t)st_snap_node_count(s);
	e->snap = s;
	e->version = 1;
	return 0;
}

/* Nodes of the master's merged view (st_stats.nodes); merge_lock held. */
uint64_t st_merger_nodes(const struct st_engine *e)
{
	return e->nparts == 1 ? st_master_nodes(e->part[0]) : e->merged_nodes;
}

/* Take merge_lock for a flush or reset, which publishes itself: while it
 * waits the merger thread skips its own publish (one the caller's would
 * supersede at once), so the caller waits for a fold at most, not a build. */
static void lock_to_publish(struct st_engine *e)
{
	atomic_fetch_add_explicit(&e->publish_waiting, 1, memory_order_relaxed);
	pthread_mutex_lock(&e->merge_lock);
	atomic_fetch_sub_explicit(&e->publish_waiting, 1, memory_order_relaxed);
}

uint64_t st_flush(struct st_engine *e)
{
	st_rcu_thread_online();
	lock_to_publish(e);
	merge_locked(e, false, true);
	uint64_t v = publish_locked(e);
	pthread_mutex_unlock(&e->merge_lock);
	if (!v)
		errno = ENOMEM;
	return v;
}

uint64_t st_reset(struct st_engine *e)
{
	st_rcu_thread_online();
	lock_to_publish(e);
	merge_locked(e, true, false);
	for (unsigned p = 0; p < e->nparts; p++)
		st_master_clear(e->part[p]);
	e->generation++;
	uint64_t v = publish_locked(e);
	pthread_mutex_unlock(&e->merge_lock);
	if (!v)
		errno = ENOMEM;
	return v;
}

/* st_engine_take_stacks' collector: records that hold values (the array
 * is sized for every record of the flipped tables). */
struct take_ctx {
	struct st_stack_view *v;
	unsigned nm;
	size_t n;
};

static void take_cb(void *arg, struct st_stab *t, struct st_srec *r)
{
	struct take_ctx *c = arg;
	st_stab_rebase(t, r); /* values: what it gained since its last fold */
	c->v[c->n++] = (struct st_stack_view){ .frames = st_srec_frames(r, c->nm),
					       .values = r->v,
					       .depth = r->depth };
}

/*
 * The one-shot path: every shard's table is swapped out and owned after one
 * grace period exactly as in merge_locked(discard) (rule E1), but their
 * records go to fn instead of into the master, and are discarded
 * afterwards.  When the record array cannot be allocated they are folded
 * as a merge would, so no sample is lost and rule E2 still holds.
 */
int st_engine_take_stacks(struct st_engine *e, st_stacks_fn fn, void *arg)
{
	st_rcu_thread_online();
	pthread_mutex_lock(&e->merge_lock);
	uint64_t nodes = 0;
	for (unsigned p = 0; p < e->nparts; p++) {
		struct st_master_view v;
		st_master_view(e->part[p], &v);
		nodes += v.n - 1;
		for (unsigned m = 0; m < v.nm; m++)
			nodes += v.self[m] != 0; /* root samples (depth 0) */
	}
	if (nodes) {
		/* Some stacks (or root samples) are in the master already:
		 * the shards alone do not hold the whole profile. */
		pthread_mutex_unlock(&e->merge_lock);
		return -EBUSY;
	}
	unsigned n = choose_tables(e, true);
	size_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += st_stab_count(e->flipped[i]);
	const size_t vbytes = (total ? total : 1) * sizeof(struct st_stack_view);
	struct st_stack_view *views = st_region_alloc(vbytes, ST_REGION_UNINIT);
	if (!views) {
		/* Keep every sample: fold the tables as a merge would. */
		e->merge_records += fold_tables(e, n, false);
		return_tables(e, n);
		e->merges++;
		e->unpublished = true;
		pthread_mutex_unlock(&e->merge_lock);
		return -ENOMEM;
	}
	struct take_ctx c = { views, e->opt.nmetrics, 0 };
	for (unsigned i = 0; i < n; i++)
		st_stab_visit(e->flipped[i], 0, st_stab_groups(e->flipped[i]), take_cb, &c);
	int rc = fn(arg, views, c.n, e->opt.nmetrics);
	return_tables(e, n); /* cleared */
	e->merges++;
	pthread_mutex_unlock(&e->merge_lock);
	st_region_free(views, vbytes);
	return rc;
}

static void *merger_main(void *arg)
{
	struct st_engine *e = arg;
	st_rcu_thread_online();
	/* The period runs from the start of one merge to the start of the
	 * next: a merge that takes longer than the interval (a burst of new
	 * stacks) is followed by the next one at once, so the merger keeps up
	 * with the writers instead of idling a whole interval after each
	 * long fold while their tables fill. */
	const uint64_t period = (uint64_t)e->opt.merge_interval_ms * 1000000u;
	uint64_t next = now_ns() + period;
	pthread_mutex_lock(&e->merger_mu);
	for (;;) {
		const struct timespec dl = { (time_t)(next / 1000000000u),
					     (long)(next % 1000000000u) };
		while (!e->merger_stop && now_ns() < next &&
		       pthread_cond_timedwait(&e->merger_cv, &e->merger_mu, &dl) != ETIMEDOUT)
			;
		if (e->merger_stop)
			break;
		pthread_mutex_unlock(&e->merger_mu);
		next = now_ns() + period;
		/* A flush or reset waiting for merge_lock folds everything
		 * itself (with a sort helper when big): leave the lock to it
		 * rather than take it back first for a fold of our own, which
		 * it would then wait for (the mutex is not fair).  Relaxed: a
		 * stale read costs one fold the caller waits behind. */
		if (atomic_load_explicit(&e->publish_waiting, memory_order_relaxed)) {
			pthread_mutex_lock(&e->merger_mu);
			continue;
		}
		pthread_mutex_lock(&e->merge_lock);
		/* Publish only when something arrived (idle engines stay idle),
		 * and not more often than every 4x the last build took: a
		 * build is O(nodes), so on a huge trie publishing every period
		 * would leave the merger no time to fold.  Folding still runs
		 * every period, so shard tables stay small. */
		if (merge_locked(e, false, false))
			e->unpublished = true;
		uint64_t now = now_ns();
		/* A flush or reset waiting for the lock publishes right after
		 * (relaxed: a stale read only costs or spares one publish). */
		if (e->unpublished && now >= e->next_publish_ns &&
		    !atomic_load_explicit(&e->publish_waiting, memory_order_relaxed)) {
			publish_locked(e);
			uint64_t took = now_ns() - now;
			e->next_publish_ns = now + 4 * took;
		}
		pthread_mutex_unlock(&e->merge_lock);
		pthread_mutex_lock(&e->merger_mu);
	}
	pthread_mutex_unlock(&e->merger_mu);
	return NULL;
}

int st_merger_start(struct st_engine *e)
{
	/* A library thread takes none of the application's signals: it starts
	 * with all blocked (it inherits the creator's mask). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int err = 0;
	const unsigned npool = e->nparts > 1 ? e->nworkers - 1 : 0;
	while (!err && e->npool < npool) {
		struct pool_arg *a = st_malloc(sizeof(*a));
		if (!a) {
			err = ENOMEM;
			break;
		}
		*a = (struct pool_arg){ e, e->npool + 1 };
		err = pthread_create(&e->pool[e->npool], NULL, pool_main, a);
		if (err) {
			st_free(a);
		} else {
			char name[16];
			snprintf(name, sizeof(name), "st-merge-%u", e->npool + 1);
			pthread_setname_np(e->pool[e->npool], name);
			e->npool++;
		}
	}
	if (!err && e->opt.merge_interval_ms)
		err = pthread_create(&e->merger, NULL, merger_main, e);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		pool_stop(e);
		return -err;
	}
	if (e->opt.merge_interval_ms) {
		/* Named for top -H / perf: a busy merger is worth spotting. */
		pthread_setname_np(e->merger, "st-merger");
		e->merger_running = true;
	}
	return 0;
}

void st_merger_stop(struct st_engine *e)
{
	if (e->merger_running) {
		pthread_mutex_lock(&e->merger_mu);
		e->merger_stop = true;
		pthread_cond_signal(&e->merger_cv);
		pthread_mutex_unlock(&e->merger_mu);
		pthread_join(e->merger, NULL);
		e->merger_running = false;
	}
	pool_stop(e); /* after the merger: no merge runs any more */
}
