/* SPDX-License-Identifier: MIT */
/*
 * writer.c - the writer hot path: a writer owns a shard and adds samples to
 * its active table with no lock and no shared read-modify-write.
 *
 *   st_writer_ingest(ids) ---------------------------+
 *   st_writer_ingest_batch(ids): groups of 8,        |   rcu_read_lock
 *     hash + prefetch slot, prefetch record, add     +-> t = active (E1)
 *   st_writer_ingest_strs(strings) --> stack cache --+   st_stab_add(t)
 *     hit: one pass over the strings (key, hash,         rcu_read_unlock
 *     length check), one probe comparing the key, one add to the cached
 *     record of t
 *     miss (first sighting): every name through the per-writer name cache
 *     (its slots prefetched together), the others interned at once (one
 *     lock for the new ones), the stack cached while its shard slot is
 *     prefetched
 *   st_writer_ingest_strs_batch: groups of 8, one section per group; with
 *     a large stack cache: key + prefetch slot, prefetch entry, find +
 *     prefetch record, add
 *
 * Invariants
 *   1. A writer is used by one thread at a time; it owns its shard from
 *      open (CAS acquire) to close (store release), rule E3.
 *   2. Every add happens inside one read-side section on the table
 *      rcu_dereference()d in it (rule E1): the merger's flip + grace period
 *      then owns the table alone.
 *   3. A sample with an unknown frame id, too deep, or with a frame name too
 *      long is refused before anything is added; a failed allocation drops
 *      the sample and counts it in the shard's `dropped`.
 *   4. Batches have the semantics of a loop of single calls: samples before
 *      the first failing one are in, nothing after it.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "engine.h"
#include "intern.h"
#include "rcu.h"
#include "region.h"
#include "scache.h"

/* Per-writer intern cache: starts small, doubles (up to ICACHE_MAX) when the
 * misses on names the engine already knew, since the last resize, exceed
 * its size, i.e. when the writer's working set of frame names is larger
 * than the cache.  (A name seen for the first time misses whatever the
 * size: counting those grew the cache on every burst of new names.)  A
 * region, prefaulted: it is probed before it is written. */
#define ICACHE_SLOTS 4096u
#define ICACHE_MAX (1u << 18)
/* Stack key room allocated at open (frames; grows on demand). */
#define KW_FRAMES 64u

/* A name by its stack-key words (scache.h, st_scache_key: with the length
 * they are all of a name of up to 16 bytes, else its last 16), its
 * interned copy (for the leading bytes of a longer one) and its id. */
struct icache_ent {
	uint64_t a, b;
	const char *name; /* NULL: empty */
	uint32_t len;
	uint32_t id;
};

/* Where a name of up to ST_SCACHE_LONG bytes goes in the intern cache:
 * from its key words, without reading its bytes again. */
static inline uint64_t icache_hash(uint64_t a, uint64_t b, size_t len)
{
	return st_scache_fold(a ^ ST_SCACHE_K1 ^ len, b ^ ST_SCACHE_K2);
}

struct st_writer {
	struct st_engine *e;
	struct st_shard *sh;
	unsigned nm;
	/* The miss path's scratch, ids_cap frames each: ids, name cache
	 * hashes; the names to intern and where they are in the stack. */
	uint32_t *ids;
	uint64_t *ih;
	struct st_intern_req *req;
	uint32_t *pos;
	size_t ids_cap;
	struct icache_ent *ic; /* per-writer intern cache, no sharing; made on
				* the first string sample */
	size_t ic_mask;
	size_t ic_misses;      /* since the last resize */
	uint64_t *kw;          /* stack keys (st_scache_key), 2 words a frame */
	size_t kw_cap;         /* frames */
	struct st_scache *sc;  /* whole string stacks (scache.c), made on first use */
	bool sc_failed;        /* st_scache_create() failed: do without */
	/* A lower bound of the intern count (ids only grow): a frame below
	 * it is valid without reading the shared count per sample. */
	uint32_t ids_known;
};

struct st_engine *st_writer_engine(const struct st_writer *w)
{
	return w->e;
}

static bool shard_claim(struct st_shard *sh)
{
	int zero = 0;
	/* Acquire: see the previous owner's table writes (rule E3). */
	return atomic_compare_exchange_strong_explicit(&sh->owner, &zero, 1,
						       memory_order_acquire,
						       memory_order_relaxed);
}

struct st_writer *st_writer_open(struct st_engine *e)
{
	struct st_writer *w = st_calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	/* Never NULL, so a key's place w->kw + 2 * off is always defined. */
	w->kw = st_malloc(KW_FRAMES * 2 * sizeof(*w->kw));
	w->kw_cap = KW_FRAMES;
	if (!w->kw) {
		st_free(w);
		return NULL;
	}
	w->e = e;
	w->nm = e->opt.nmetrics;
	st_rcu_thread_online();

	/* The per-CPU shard of the CPU we run on first, then any free one. */
	unsigned ncpu = e->ncpu_shards;
	int cpu = sched_getcpu();
	unsigned start = cpu < 0 ? 0 : (unsigned)cpu % ncpu;
	for (unsigned k = 0; k < ncpu && !w->sh; k++)
		if (shard_claim(e->shards[(start + k) % ncpu]))
			w->sh = e->shards[(start + k) % ncpu];
	unsigned n = atomic_load_explicit(&e->nshards, memory_order_acquire);
	for (unsigned i = ncpu; i < n && !w->sh; i++)
		if (shard_claim(e->shards[i]))
			w->sh = e->shards[i];
	if (!w->sh) {
		/* More writers than shards: add one (never wait for a shard). */
		pthread_mutex_lock(&e->shard_lock);
		n = atomic_load_explicit(&e->nshards, memory_order_relaxed);
		struct st_shard *sh = n < ST_SHARDS_MAX ? st_shard_new(e->opt.nmetrics, n) : NULL;
		if (sh) {
			atomic_store_explicit(&sh->owner, 1, memory_order_relaxed);
			e->shards[n] = sh;
			/* Release: the shard before the count (rule E4). */
			atomic_store_explicit(&e->nshards, n + 1, memory_order_release);
		}
		pthread_mutex_unlock(&e->shard_lock);
		if (!sh) {
			st_free(w->kw);
			st_free(w);
			errno = n < ST_SHARDS_MAX ? ENOMEM : EAGAIN;
			return NULL;
		}
		w->sh = sh;
	}
	return w;
}

void st_writer_close(struct st_writer *w)
{
	if (!w)
		return;
	/* Release: our table writes before the next owner's (rule E3). */
	atomic_store_explicit(&w->sh->owner, 0, memory_order_release);
	st_scache_destroy(w->sc);
	st_free(w->kw);
	st_free(w->ids);
	st_free(w->ih);
	st_free(w->req);
	st_free(w->pos);
	if (w->ic)
		st_region_free(w->ic, (w->ic_mask + 1) * sizeof(*w->ic));
	st_free(w);
}

/* Owner-only counters: a plain load+store, no read-modify-write. */
static inline void counter_bump(_Atomic uint64_t *c, uint64_t by)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
			      memory_order_relaxed);
}

/* The stack hash of ids (st_hash_bytes: XXH3), inline here: the hot path
 * called through st_hash_bytes into the shared library. */
static inline uint64_t ids_hash(const uint32_t *frames, size_t depth)
{
	return XXH3_64bits(frames, depth * sizeof(*frames));
}

/* Add a sample by ids to t (inside the caller's section).  The frames are
 * checked only when the stack is new to t (st_stab_add): every id must be
 * below the intern count, which the writer caches as ids_known and re-reads
 * only when a new stack passes it (the table only grows, so a bound once
 * read stays valid).  0, -EINVAL, or -ENOMEM counted as a drop. */
static inline int add_ids(struct st_writer *w, struct st_stab *t, const uint32_t *frames,
			  uint32_t depth, uint64_t h, const uint64_t *values)
{
	int r = st_stab_add(t, frames, depth, h, values, w->ids_known);
	if (ST_UNLIKELY(r == -EINVAL)) {
		uint32_t n = st_intern_count(w->e->intern);
		if (n != w->ids_known) {
			w->ids_known = n;
			r = st_stab_add(t, frames, depth, h, values, n);
		}
	}
	if (ST_UNLIKELY(r == -ENOMEM))
		counter_bump(&w->sh->dropped, 1);
	return r;
}

static inline int ingest_one(struct st_writer *w, struct st_stab *t, const uint32_t *frames,
			     size_t depth, const uint64_t *values)
{
	if (ST_UNLIKELY(depth > ST_MAX_DEPTH))
		return -E2BIG;
	return add_ids(w, t, frames, (uint32_t)depth, ids_hash(frames, depth), values);
}

int st_writer_ingest(struct st_writer *w, const uint32_t *frames, size_t depth,
		     const uint64_t *values)
{
	st_rcu_read_lock();
	struct st_stab *t = rcu_dereference(w->sh->active);
	TSAN_ACQUIRE(t); /* the merger's last writes to t (E1) */
	int r = ingest_one(w, t, frames, depth, values);
	TSAN_RELEASE(t); /* our writes, for the merger after the grace period */
	st_rcu_read_unlock();
	if (ST_LIKELY(!r))
		counter_bump(&w->sh->ingested, 1);
	return r;
}

/*
 * Samples go in groups of BATCH_GROUP in three passes (after prefetching
 * the next group's frames): depth check, hash and prefetch the slot;
 * prefetch the record the slot names; add (the frames are checked there,
 * when the stack is new to the table).  The misses of
 * one group overlap instead of being paid one after the other.  Semantics
 * are those of a loop of ingest_one(): samples before the first failing one
 * are ingested, nothing after it.
 */
#define BATCH_GROUP 8

long st_writer_ingest_batch(struct st_writer *w, const struct st_sample *s, size_t n)
{
	size_t done;
	int r = st_writer_ingest_batch_done(w, s, n, &done);
	return r ? r : (long)done;
}

int st_writer_ingest_batch_done(struct st_writer *w, const struct st_sample *s, size_t n,
				size_t *done_out)
{
	long done = 0;
	int r = 0;
	uint64_t h[BATCH_GROUP];
	st_rcu_read_lock();
	struct st_stab *t = rcu_dereference(w->sh->active);
	TSAN_ACQUIRE(t);
	for (size_t base = 0; base < n && !r; base += BATCH_GROUP) {
		const struct st_sample *g = s + base;
		size_t k = n - base < BATCH_GROUP ? n - base : BATCH_GROUP, ok = k;
		/* The next group's frames: the caller's arrays miss too. */
		for (size_t x = base + BATCH_GROUP; x < n && x < base + 2 * BATCH_GROUP; x++) {
			const char *f = (const char *)s[x].frames;
			size_t bytes = (size_t)s[x].depth * sizeof(*s[x].frames);
			for (size_t o = 0; o < bytes && o < 4 * ST_CACHELINE; o += ST_CACHELINE)
				__builtin_prefetch(f + o);
		}
		for (size_t x = 0; x < k; x++) {
			if (ST_UNLIKELY(g[x].depth > ST_MAX_DEPTH)) {
				r = -E2BIG;
				ok = x;
				break;
			}
			h[x] = ids_hash(g[x].frames, g[x].depth);
			st_stab_prefetch_slot(t, h[x]);
		}
		for (size_t x = 0; x < ok; x++)
			st_stab_prefetch_rec(t, h[x], g[x].depth);
		for (size_t x = 0; x < ok; x++) {
			int rr = add_ids(w, t, g[x].frames, g[x].depth, h[x], g[x].values);
			if (ST_UNLIKELY(rr)) {
				r = rr;
				break;
			}
			done++;
		}
	}
	TSAN_RELEASE(t);
	st_rcu_read_unlock();
	counter_bump(&w->sh->ingested, (uint64_t)done);
	*done_out = (size_t)done;
	return r;
}

/*
 * A sample found in the writer's stack cache (scache.c) whose cached record
 * is not valid for t (t's epoch is ep): upsert by the cached ids and
 * remember the record for this epoch.  Inside the caller's read-side
 * section on t.  Ids came from interning: there is nothing to check.
 */
static int __attribute__((noinline))
cached_upsert(struct st_writer *w, struct st_stab *t, struct st_scent *c, uint64_t ep,
	      const uint64_t *values)
{
	struct st_srec *rec = st_stab_upsert(t, st_scent_ids(c), c->depth, c->id_hash, values);
	if (ST_UNLIKELY(!rec)) {
		counter_bump(&w->sh->dropped, 1);
		return -ENOMEM;
	}
	/* Replace the older pair: the other table's (if any) is the newer one
	 * and may still be valid. */
	int k = c->epoch[0] < c->epoch[1] ? 0 : 1;
	c->rec[k] = rec;
	c->epoch[k] = ep;
	return 0;
}

/* Add a cached sample to t (epoch ep) inside the caller's read-side section:
 * to the record the entry names for t when it is still valid (no hashing of
 * ids, no table probe), else through cached_upsert(). */
static inline int add_cached(struct st_writer *w, struct st_stab *t, uint64_t ep,
			     struct st_scent *c, const uint64_t *values)
{
	/* Which of the two is t's varies from entry to entry: a select, not
	 * a branch that mispredicts. */
	int k = c->epoch[1] == ep;
	if (ST_LIKELY(c->epoch[k] == ep)) {
		if (ST_UNLIKELY(st_stab_add_rec(t, c->rec[k], values))) {
			counter_bump(&w->sh->dropped, 1); /* a sum past 2^64, no memory */
			return -ENOMEM;
		}
		return 0;
	}
	return cached_upsert(w, t, c, ep, values);
}

/* One cached sample in its own read-side section. */
static inline int ingest_cached(struct st_writer *w, struct st_scent *c, const uint64_t *values)
{
	st_rcu_read_lock();
	struct st_stab *t = rcu_dereference(w->sh->active);
	TSAN_ACQUIRE(t); /* the merger's last writes to t (E1) */
	/* The epoch is read like the rest of t: the merger wrote it while it
	 * owned t, before the flip that made t active again (rule E1). */
	int r = add_cached(w, t, st_stab_epoch(t), c, values);
	TSAN_RELEASE(t); /* our writes, for the merger after the grace period */
	st_rcu_read_unlock();
	if (ST_LIKELY(!r))
		counter_bump(&w->sh->ingested, 1);
	return r;
}

/* The miss path's scratch arrays sized for depth, the name cache and the
 * stack cache made on first use.  0 or -ENOMEM (counted as a drop). */
static int strs_prepare(struct st_writer *w, size_t depth)
{
	if (ST_UNLIKELY(!w->ic)) {
		/* All of what st_region_early gives: 64 Ki names in one big
		 * page, faulted at once rather than 4 KiB by 4 KiB. */
		size_t n = st_region_early(ICACHE_SLOTS * sizeof(*w->ic)) / sizeof(*w->ic);
		w->ic = st_region_alloc(n * sizeof(*w->ic), ST_REGION_PREFAULT);
		if (!w->ic) {
			counter_bump(&w->sh->dropped, 1);
			return -ENOMEM;
		}
		w->ic_mask = n - 1;
	}
	if (depth > w->ids_cap) {
		/* All four to the same capacity; one that failed keeps its old
		 * (bigger than ids_cap, or equal) one. */
		size_t ci = w->ids_cap, ch = w->ids_cap, cr = w->ids_cap, cp = w->ids_cap;
		if (st_grow(&w->ids, &ci, depth, sizeof(*w->ids), 64) ||
		    st_grow(&w->ih, &ch, depth, sizeof(*w->ih), 64) ||
		    st_grow(&w->req, &cr, depth, sizeof(*w->req), 64) ||
		    st_grow(&w->pos, &cp, depth, sizeof(*w->pos), 64)) {
			counter_bump(&w->sh->dropped, 1);
			return -ENOMEM;
		}
		w->ids_cap = ci;
	}
	if (ST_UNLIKELY(!w->sc) && !w->sc_failed) {
		w->sc = st_scache_create();
		w->sc_failed = !w->sc; /* then every sample interns frame by frame */
	}
	return 0;
}

/* Where name i of a stack (key words kw, st_scache_key) goes in the name
 * cache: from its key words for a name of up to ST_SCACHE_LONG bytes (its
 * bytes are not read again), else its XXH3 (the name table's hash too). */
static inline uint64_t icache_slot_hash(const char *name, size_t len, const uint64_t *kw)
{
	if (ST_LIKELY(len <= ST_SCACHE_LONG))
		return icache_hash(kw[0], kw[1], len);
	return XXH3_64bits(name, len);
}

/* The name cache slots of a stack's names of up to ST_SCACHE_LONG bytes
 * (key words kw): a hint, for a stack about to take the miss path. */
static inline void icache_prefetch(const struct st_writer *w, const size_t *lens, size_t depth,
				   const uint64_t *kw)
{
	if (ST_UNLIKELY(!w->ic))
		return;
	for (size_t i = 0; i < depth; i++)
		if (ST_LIKELY(lens[i] <= ST_SCACHE_LONG))
			__builtin_prefetch(&w->ic[icache_hash(kw[2 * i], kw[2 * i + 1], lens[i]) &
						  w->ic_mask]);
}

/* Double the name cache (empty); a failed allocation keeps the old one. */
static void __attribute__((noinline)) icache_grow(struct st_writer *w)
{
	size_t nb = (w->ic_mask + 1) * 2 * sizeof(*w->ic);
	struct icache_ent *nc = st_region_alloc(nb, ST_REGION_PREFAULT);
	if (nc) {
		st_region_free(w->ic, (w->ic_mask + 1) * sizeof(*w->ic));
		w->ic = nc;
		w->ic_mask = w->ic_mask * 2 + 1;
	}
	w->ic_misses = 0;
}

/*
 * A stack the stack cache does not hold (lengths already checked), under
 * its hash sh and key kw (st_scache_key), in passes over its frames:
 *   1. each name's cache slot, prefetched (the misses overlap: this was a
 *      dependent miss per frame, most of the pass's time);
 *   2. names found in the cache give their ids; the others, hashed for the
 *      name table (XXH3, once: a long name's was pass 1's), go in a list;
 *   3. the list interned at once (st_intern_get_many: lock-free lookups,
 *      one lock for the names new to the engine) and put in the cache;
 * then, inside one read-side section, the shard slot of the new stack is
 * prefetched while the stack cache takes it, and the sample is added.
 */
static int __attribute__((noinline))
strs_miss(struct st_writer *w, const char *const *frames, const size_t *lens, size_t depth,
	  uint64_t sh, const uint64_t *kw, const uint64_t *values)
{
	int r = strs_prepare(w, depth);
	if (ST_UNLIKELY(r))
		return r;
	uint64_t *ih = w->ih;
	uint32_t *ids = w->ids;
	for (size_t i = 0; i < depth; i++) {
		ih[i] = icache_slot_hash(frames[i], lens[i], kw + 2 * i);
		__builtin_prefetch(&w->ic[ih[i] & w->ic_mask]);
	}
	struct st_intern *in = w->e->intern;
	size_t np = 0;
	for (size_t i = 0; i < depth; i++) {
		size_t len = lens[i];
		bool lng = len > ST_SCACHE_LONG;
		const struct icache_ent *ic = &w->ic[ih[i] & w->ic_mask];
		if (ic->name && ic->len == len && ic->a == kw[2 * i] && ic->b == kw[2 * i + 1] &&
		    (!lng || st_bytes_equal(ic->name, frames[i], len - ST_SCACHE_LONG))) {
			ids[i] = ic->id;
			continue;
		}
		struct st_intern_req *q = &w->req[np];
		q->s = frames[i];
		q->len = len;
		q->hash = lng ? ih[i] : XXH3_64bits(frames[i], len);
		w->pos[np++] = (uint32_t)i;
	}
	if (np) {
		r = st_intern_get_many(in, w->req, np);
		if (ST_UNLIKELY(r)) {
			if (r == -ENOMEM)
				counter_bump(&w->sh->dropped, 1);
			return r;
		}
		for (size_t k = 0; k < np; k++) {
			const struct st_intern_req *q = &w->req[k];
			size_t i = w->pos[k];
			ids[i] = q->id;
			/* Only names the engine knew count toward growing: a
			 * new name misses whatever the size. */
			if (ST_UNLIKELY(!q->added && ++w->ic_misses > w->ic_mask + 1) &&
			    w->ic_mask + 1 < ICACHE_MAX)
				icache_grow(w);
			struct icache_ent *ic = &w->ic[ih[i] & w->ic_mask];
			ic->a = kw[2 * i];
			ic->b = kw[2 * i + 1];
			ic->len = (uint32_t)q->len;
			ic->id = q->id;
			ic->name = q->name;
		}
	}
	uint64_t idh = ids_hash(ids, depth);
	st_rcu_read_lock();
	struct st_stab *t = rcu_dereference(w->sh->active);
	TSAN_ACQUIRE(t); /* the merger's last writes to t (E1) */
	/* A new stack's slot is in no cache: its miss overlaps the stack
	 * cache's insertion, which only touches the writer's memory. */
	st_stab_prefetch_slot(t, idh);
	struct st_scent *c =
		w->sc ? st_scache_insert(w->sc, sh, frames, lens, depth, kw, ids, idh) : NULL;
	if (ST_LIKELY(c))
		r = add_cached(w, t, st_stab_epoch(t), c, values);
	else
		r = add_ids(w, t, ids, (uint32_t)depth, idh, values);
	TSAN_RELEASE(t); /* our writes, for the merger after the grace period */
	st_rcu_read_unlock();
	if (ST_LIKELY(!r))
		counter_bump(&w->sh->ingested, 1);
	return r;
}

/*
 * Room for `frames` frames of stack keys (w->kw), for a sample of depth
 * frames with these lengths.  A failed allocation still refuses a sample
 * with a name that is too long (the check the key pass would have made,
 * and a refusal is not a drop); otherwise it drops it.
 */
static int __attribute__((noinline))
kw_reserve(struct st_writer *w, size_t frames, const size_t *lens, size_t depth)
{
	size_t cap = w->kw_cap * 2;
	if (st_grow(&w->kw, &cap, frames * 2, sizeof(*w->kw), 128) == 0) {
		w->kw_cap = cap / 2;
		return 0;
	}
	for (size_t i = 0; i < depth; i++)
		if (lens[i] > ST_MAX_FRAME_LEN)
			return -ENAMETOOLONG;
	counter_bump(&w->sh->dropped, 1);
	return -ENOMEM;
}

/*
 * The hit path: one pass over the strings (key, hash and length check), one
 * probe of the stack cache comparing the key just built, one add to the
 * record the entry names.  Errors in the order of the checks: -E2BIG,
 * -ENAMETOOLONG, then what the miss path finds.
 */
int st_writer_ingest_strs(struct st_writer *w, const char *const *frames, const size_t *lens,
			  size_t depth, const uint64_t *values)
{
	if (ST_UNLIKELY(depth > ST_MAX_DEPTH))
		return -E2BIG;
	if (ST_UNLIKELY(depth > w->kw_cap)) {
		int r = kw_reserve(w, depth, lens, depth);
		if (r)
			return r;
	}
	uint64_t lng;
	uint64_t sh = st_scache_key(frames, lens, depth, w->kw, &lng);
	if (ST_UNLIKELY(!sh))
		return -ENAMETOOLONG;
	struct st_scent *c =
		ST_LIKELY(w->sc) ? st_scache_find(w->sc, sh, frames, lens, depth, w->kw, lng)
				 : NULL;
	if (ST_UNLIKELY(!c))
		return strs_miss(w, frames, lens, depth, sh, w->kw, values);
	return ingest_cached(w, c, values);
}

/*
 * String batches go in groups of STR_GROUP, each one of two ways, chosen
 * by the size of the writer's stack cache:
 *
 *   small (fewer than PREFETCH_MIN entries: the entries and the records
 *   they name stay in the caches): one pass, the single call's steps for
 *   each sample, under one read-side section for the group.  Prefetch
 *   passes would only add instructions there (measured: ~9% slower than
 *   single calls on the seed comparison's 2,000 stacks).
 *
 *   large: four passes: key and hash, prefetching the stack cache slot;
 *   prefetch the entry it names (the lines its compare reads, placed by
 *   the sample's depth); then, inside one read-side section, find the
 *   entries and prefetch the shard records they name for the current
 *   table (the table's slot for a stack new to it; the name cache slots of
 *   a stack not cached, for its miss path); add.  The misses of a group
 *   overlap instead of being paid one after the other (measured: ~25% less
 *   writer CPU than single calls with 200,000 stacks).  The next group's
 *   pointer and length arrays are prefetched before each group.
 *
 * A miss (a stack not cached) leaves the section and takes the one-sample
 * path, which may reset the cache: the group's later entries are then
 * looked up again.  Either way the semantics are those of a loop of
 * st_writer_ingest_strs(): samples before the first failing one are
 * ingested, nothing after it; *done counts them.
 */
#define PREFETCH_MIN 4096
#define STR_GROUP 8

/* Sample g's checks and key (at w->kw + 2 * off): its hash, or 0 with *r
 * set. */
static inline __attribute__((always_inline)) uint64_t
group_key(struct st_writer *w, const struct st_str_sample *g, size_t off, uint64_t *lng, int *r)
{
	size_t d = g->depth;
	if (ST_UNLIKELY(d > ST_MAX_DEPTH)) {
		*r = -E2BIG;
		return 0;
	}
	if (ST_UNLIKELY(off + d > w->kw_cap) && (*r = kw_reserve(w, off + d, g->lens, d)))
		return 0;
	uint64_t h = st_scache_key(g->frames, g->lens, d, w->kw + 2 * off, lng);
	if (ST_UNLIKELY(!h))
		*r = -ENAMETOOLONG;
	return h;
}

/*
 * A group's sample g missed the stack cache (its hash h, its key kw): leave
 * the group's read-side section on *t (counting the *added samples it
 * took), take the miss path, which has its own sections, and enter a new
 * section on the then active table (*t, its epoch *ep).  What strs_miss()
 * returns.
 */
static inline int group_miss(struct st_writer *w, const struct st_str_sample *g, uint64_t h,
			     const uint64_t *kw, struct st_stab **t, uint64_t *ep,
			     uint64_t *added)
{
	TSAN_RELEASE(*t); /* our writes, for the merger after the grace period */
	st_rcu_read_unlock();
	counter_bump(&w->sh->ingested, *added);
	*added = 0;
	int r = strs_miss(w, g->frames, g->lens, g->depth, h, kw, g->values);
	st_rcu_read_lock();
	*t = rcu_dereference(w->sh->active);
	TSAN_ACQUIRE(*t); /* the merger's last writes to t (E1) */
	*ep = st_stab_epoch(*t);
	return r;
}

static int group_direct(struct st_writer *w, const struct st_str_sample *g, size_t k,
			long *done)
{
	int r = 0;
	uint64_t added = 0; /* in the current section, for `ingested` */
	st_rcu_read_lock();
	struct st_stab *t = rcu_dereference(w->sh->active);
	TSAN_ACQUIRE(t); /* the merger's last writes to t (E1) */
	uint64_t ep = st_stab_epoch(t);
	for (size_t x = 0; x < k; x++) {
		uint64_t lng;
		uint64_t h = group_key(w, &g[x], 0, &lng, &r);
		if (ST_UNLIKELY(r))
			break;
		struct st_scent *e = ST_LIKELY(w->sc) ? st_scache_find(w->sc, h, g[x].frames,
								       g[x].lens, g[x].depth,
								       w->kw, lng)
						      : NULL;
		if (ST_LIKELY(e)) {
			r = add_cached(w, t, ep, e, g[x].values);
			added += !r;
		} else {
			r = group_miss(w, &g[x], h, w->kw, &t, &ep, &added);
		}
		if (ST_UNLIKELY(r))
			break;
		(*done)++;
	}
	TSAN_RELEASE(t); /* our writes, for the merger after the grace period */
	st_rcu_read_unlock();
	counter_bump(&w->sh->ingested, added);
	return r;
}

static int group_prefetched(struct st_writer *w, const struct st_str_sample *g, size_t k,
			    long *done)
{
	int r = 0;
	uint64_t h[STR_GROUP];
	struct st_scent *c[STR_GROUP];
	size_t ko[STR_GROUP]; /* sample x's key: w->kw + 2 * ko[x] */
	uint64_t lng[STR_GROUP]; /* long names (st_scache_key) */
	size_t ok = k, off = 0;
	for (size_t x = 0; x < k; x++) {
		h[x] = group_key(w, &g[x], off, &lng[x], &r);
		if (ST_UNLIKELY(r)) {
			ok = x;
			break;
		}
		ko[x] = off;
		off += g[x].depth;
		st_scache_prefetch_slot(w->sc, h[x]);
	}
	for (size_t x = 0; x < ok; x++)
		st_scache_prefetch_ent(w->sc, h[x], g[x].depth);
	st_rcu_read_lock();
	struct st_stab *t = rcu_dereference(w->sh->active);
	TSAN_ACQUIRE(t); /* the merger's last writes to t (E1) */
	uint64_t ep = st_stab_epoch(t);
	for (size_t x = 0; x < ok; x++) {
		c[x] = st_scache_find(w->sc, h[x], g[x].frames, g[x].lens, g[x].depth,
				      w->kw + 2 * ko[x], lng[x]);
		if (ST_LIKELY(c[x])) {
			int kk = c[x]->epoch[1] == ep;
			if (ST_LIKELY(c[x]->epoch[kk] == ep))
				__builtin_prefetch(c[x]->rec[kk]);
			else /* new to t: cached_upsert() will probe t for it */
				st_stab_prefetch_slot(t, c[x]->id_hash);
		} else {
			/* A first sighting: strs_miss() will probe the name
			 * cache for each of its names (it is then behind the
			 * samples before it, not in front of them). */
			icache_prefetch(w, g[x].lens, g[x].depth, w->kw + 2 * ko[x]);
		}
	}
	uint64_t added = 0;   /* in the current section, for `ingested` */
	bool missed = false;  /* the cache took a stack since c[] was filled */
	const uint64_t resets = w->sc->resets;
	for (size_t x = 0; x < ok; x++) {
		struct st_scent *e = c[x];
		/* After a miss: entries found stay valid unless the cache was
		 * reset; one not found may be the stack just added. */
		if (ST_UNLIKELY(missed) && (!e || w->sc->resets != resets))
			e = st_scache_find(w->sc, h[x], g[x].frames, g[x].lens, g[x].depth,
					   w->kw + 2 * ko[x], lng[x]);
		int rr;
		if (ST_LIKELY(e)) {
			rr = add_cached(w, t, ep, e, g[x].values);
			added += !rr;
		} else {
			rr = group_miss(w, &g[x], h[x], w->kw + 2 * ko[x], &t, &ep, &added);
			missed = true;
		}
		if (ST_UNLIKELY(rr)) {
			r = rr;
			break;
		}
		(*done)++;
	}
	TSAN_RELEASE(t); /* our writes, for the merger after the grace period */
	st_rcu_read_unlock();
	counter_bump(&w->sh->ingested, added);
	return r;
}

long st_writer_ingest_strs_batch(struct st_writer *w, const struct st_str_sample *s, size_t n)
{
	long done = 0;
	int r = 0;
	for (size_t base = 0; base < n && !r; base += STR_GROUP) {
		size_t k = n - base < STR_GROUP ? n - base : STR_GROUP;
		if (w->sc && w->sc->count >= PREFETCH_MIN) {
			/* The caller's pointer and length arrays of the next
			 * group, their first and last lines (a stack of 8
			 * frames or more spans two: only the first was
			 * taken).  (Not its strings: loading each pointer to
			 * prefetch its name cost more than the misses it hid,
			 * and the key pass's loads of 8 independent samples
			 * already overlap.) */
			size_t end = base + 2 * STR_GROUP < n ? base + 2 * STR_GROUP : n;
			for (size_t x = base + STR_GROUP; x < end; x++) {
				size_t d = s[x].depth ? s[x].depth : 1;
				st_prefetch_ends(s[x].frames, d * sizeof(*s[x].frames));
				st_prefetch_ends(s[x].lens, d * sizeof(*s[x].lens));
			}
			r = group_prefetched(w, s + base, k, &done);
		} else {
			r = group_direct(w, s + base, k, &done);
		}
	}
	return r ? r : done;
}

/* ------------------------------------------------------------ implicit */

/*
 * st_ingest()'s per-thread writers.  An item is on its thread's list (TLS)
 * and on its engine's list; implicit_mu (process-wide, so it outlives any
 * engine) serialises thread exit against engine destroy.
 */
struct st_implicit {
	struct st_engine *e; /* NULL once the engine is gone */
	struct st_writer *w;
	struct st_implicit *next_thread, *next_engine;
};

static pthread_mutex_t implicit_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t implicit_key;
static pthread_once_t implicit_once = PTHREAD_ONCE_INIT;
static _Thread_local struct st_implicit *tls_implicit;

static void implicit_thread_exit(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&implicit_mu);
	struct st_implicit *it = tls_implicit;
	tls_implicit = NULL;
	while (it) {
		struct st_implicit *next = it->next_thread;
		if (it->e) {
			struct st_implicit **pp = &it->e->implicit_head;
			while (*pp != it)
				pp = &(*pp)->next_engine;
			*pp = it->next_engine;
			st_writer_close(it->w);
		}
		st_free(it);
		it = next;
	}
	pthread_mutex_unlock(&implicit_mu);
}

static void implicit_make_key(void)
{
	pthread_key_create(&implicit_key, implicit_thread_exit);
}

void st_writer_close_implicit(struct st_engine *e)
{
	pthread_mutex_lock(&implicit_mu);
	for (struct st_implicit *it = e->implicit_head; it; it = it->next_engine) {
		st_writer_close(it->w);
		it->e = NULL; /* the thread frees the item when it exits */
	}
	e->implicit_head = NULL;
	pthread_mutex_unlock(&implicit_mu);
}

int st_ingest(struct st_engine *e, const uint32_t *frames, size_t depth, const uint64_t *values)
{
	struct st_implicit *it = tls_implicit;
	while (it && it->e != e)
		it = it->next_thread;
	if (ST_UNLIKELY(!it)) {
		pthread_once(&implicit_once, implicit_make_key);
		it = st_calloc(1, sizeof(*it));
		if (!it)
			return -ENOMEM;
		it->w = st_writer_open(e);
		if (!it->w) {
			st_free(it);
			return -ENOMEM;
		}
		it->e = e;
		pthread_mutex_lock(&implicit_mu);
		it->next_thread = tls_implicit;
		tls_implicit = it;
		it->next_engine = e->implicit_head;
		e->implicit_head = it;
		pthread_mutex_unlock(&implicit_mu);
		pthread_setspecific(implicit_key, (void *)1);
	}
	return st_writer_ingest(it->w, frames, depth, values);
}

