/* SPDX-License-Identifier: MIT */
/*
 * engine.c - engine lifetime, writers and shards, the merger, flush, reset.
 *
 *   writer thread A --owns--> shard 0: active table  (spare table)
 *   writer thread B --owns--> shard 1: active table  (spare table)
 *                                 |  merge: flip active<->spare on every
 *                                 |  shard, ONE grace period, fold the
 *                                 v  flipped-out tables, clear, keep as spare
 *                           master trie --build--> snapshot --publish (RCU)
 *
 * The merge step (merge_locked) runs under merge_lock, taken by the merger
 * thread every merge_interval_ms, by st_flush() and by st_reset().  Ingest
 * never takes it.
 *
 * Ordering guarantees (numbered for docs/concurrency.md)
 *   1. A writer adds to the table it rcu_dereference()d inside one read-side
 *      section.  The merger's rcu_xchg_pointer() followed by
 *      synchronize_rcu() guarantees every section that could have seen the
 *      old table has ended, so the merger then owns it exclusively: every
 *      sample lands in exactly one fold (no loss, no double count).
 *   2. A sample whose ingest call returned before a flush began sits in a
 *      table that the flush's own flip takes out (or that an earlier merge
 *      already folded; that merge finished before the flush got
 *      merge_lock), so the version st_flush() returns contains it.
 *   3. A shard changes hands between threads only through owner: store
 *      release on close, CAS acquire on open, so the new owner sees the old
 *      owner's writes to the table.
 *   4. shards[i] is written before the release store that makes nshards > i;
 *      the merger reads nshards with acquire.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Per-writer intern cache: starts small, doubles (up to ICACHE_MAX) when the
 * misses since the last resize exceed 4x its size, i.e. when the writer's
 * working set of frame names is larger than the cache. */
/*
 * ThreadSanitizer cannot see liburcu's ordering (it is not instrumented):
 * under -fsanitize=thread the two hand-overs of a shard table (guarantee 1,
 * docs/concurrency.md E1) are told to it explicitly, so it still checks
 * everything else -- two writers on one table would be reported.
 */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define TSAN_ACQUIRE(p) __tsan_acquire(p)
#define TSAN_RELEASE(p) __tsan_release(p)
#else
#define TSAN_ACQUIRE(p) ((void)(p))
#define TSAN_RELEASE(p) ((void)(p))
#endif

#define ICACHE_SLOTS 4096u
#define ICACHE_MAX (1u << 18)

struct icache_ent {
	uint64_t hash;
	const char *name;
	uint32_t len;
	uint32_t id;
};

struct st_writer {
	struct st_engine *e;
	struct st_shard *sh;
	unsigned nm;
	uint32_t *ids;
	size_t ids_cap;
	struct icache_ent *ic; /* per-writer intern cache, no sharing */
	size_t ic_mask;
	size_t ic_misses;      /* since the last resize */
	uint64_t *fh;          /* per-frame name hashes, ids_cap of them */
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

const struct st_intern *st_engine_intern(const struct st_engine *e)
{
	return e->intern;
}

void st_options_init(struct st_options *o)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
	o->merge_interval_ms = 10;
	o->nmetrics = 1;
	o->metrics[0].name = "count";
	o->metrics[0].unit = "samples";
}

/* ------------------------------------------------------------ shards */

static struct st_shard *shard_new(struct st_engine *e, unsigned index)
{
	struct st_shard *sh = aligned_alloc(ST_CACHELINE, sizeof(*sh));
	if (!sh)
		return NULL;
	memset(sh, 0, sizeof(*sh));
	sh->active = st_stab_create(e->opt.nmetrics);
	sh->spare = st_stab_create(e->opt.nmetrics);
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

static void shard_free(struct st_shard *sh)
{
	st_stab_destroy(sh->active);
	st_stab_destroy(sh->spare);
	free(sh);
}

static bool shard_claim(struct st_shard *sh)
{
	int zero = 0;
	/* Acquire: see the previous owner's table writes (guarantee 3). */
	return atomic_compare_exchange_strong_explicit(&sh->owner, &zero, 1,
						       memory_order_acquire,
						       memory_order_relaxed);
}

struct st_writer *st_writer_open(struct st_engine *e)
{
	struct st_writer *w = st_calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->ic = st_calloc(ICACHE_SLOTS, sizeof(*w->ic));
	w->ic_mask = ICACHE_SLOTS - 1;
	if (!w->ic) {
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
		struct st_shard *sh = n < ST_SHARDS_MAX ? shard_new(e, n) : NULL;
		if (sh) {
			atomic_store_explicit(&sh->owner, 1, memory_order_relaxed);
			e->shards[n] = sh;
			/* Release: the shard before the count (guarantee 4). */
			atomic_store_explicit(&e->nshards, n + 1, memory_order_release);
		}
		pthread_mutex_unlock(&e->shard_lock);
		if (!sh) {
			st_free(w->ic);
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
	/* Release: our table writes before the next owner's (guarantee 3). */
	atomic_store_explicit(&w->sh->owner, 0, memory_order_release);
	st_scache_destroy(w->sc);
	st_free(w->fh);
	st_free(w->ids);
	st_free(w->ic);
	st_free(w);
}

/* Owner-only counters: a plain load+store, no read-modify-write. */
static inline void counter_bump(_Atomic uint64_t *c, uint64_t by)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
			      memory_order_relaxed);
}

/* Every id must be below the intern count: the same as testing the largest
 * id, which four independent max chains compute without a per-element
 * branch or a loop-carried dependency on one register.  The count is the
 * writer's cached bound, re-read from the intern table only when an id
 * passes it (the table only grows, so a bound once read stays valid). */
static inline int check_frames(struct st_writer *w, const uint32_t *frames, size_t depth)
{
	uint32_t m0 = 0, m1 = 0, m2 = 0, m3 = 0;
	size_t i = 0;
	for (; i + 4 <= depth; i += 4) {
		m0 = frames[i] > m0 ? frames[i] : m0;
		m1 = frames[i + 1] > m1 ? frames[i + 1] : m1;
		m2 = frames[i + 2] > m2 ? frames[i + 2] : m2;
		m3 = frames[i + 3] > m3 ? frames[i + 3] : m3;
	}
	for (; i < depth; i++)
		m0 = frames[i] > m0 ? frames[i] : m0;
	m0 = m0 > m1 ? m0 : m1;
	m2 = m2 > m3 ? m2 : m3;
	m0 = m0 > m2 ? m0 : m2;
	if (ST_LIKELY(m0 < w->ids_known || !depth))
		return 0;
	w->ids_known = st_intern_count(w->e->intern);
	return m0 < w->ids_known ? 0 : -EINVAL;
}

static inline int ingest_one(struct st_writer *w, struct st_stab *t, const uint32_t *frames,
			     size_t depth, const uint64_t *values)
{
	if (ST_UNLIKELY(depth > ST_MAX_DEPTH))
		return -E2BIG;
	int r = check_frames(w, frames, depth);
	if (ST_UNLIKELY(r))
		return r;
	uint64_t h = st_hash_bytes(frames, depth * sizeof(*frames));
	r = st_stab_add(t, frames, (uint32_t)depth, h, values);
	if (ST_UNLIKELY(r))
		counter_bump(&w->sh->dropped, 1);
	return r;
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
 * the next group's frames): validate, hash and prefetch the slot; prefetch
 * the record the slot names; add.  The misses of
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
			if (ST_UNLIKELY(g[x].depth > ST_MAX_DEPTH))
				r = -E2BIG;
			else
				r = check_frames(w, g[x].frames, g[x].depth);
			if (ST_UNLIKELY(r)) {
				ok = x;
				break;
			}
			h[x] = st_hash_bytes(g[x].frames, g[x].depth * sizeof(*g[x].frames));
			st_stab_prefetch_slot(t, h[x]);
		}
		for (size_t x = 0; x < ok; x++)
			st_stab_prefetch_rec(t, h[x], g[x].depth);
		for (size_t x = 0; x < ok; x++) {
			int rr = st_stab_add(t, g[x].frames, g[x].depth, h[x], g[x].values);
			if (ST_UNLIKELY(rr)) {
				counter_bump(&w->sh->dropped, 1);
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
 * A sample found in the writer's stack cache (scache.c): add to the record
 * it names in the current table when that is still valid (one store, no
 * hashing of ids, no table probe), else upsert by the cached ids and
 * remember the record for this table's epoch.  Ids came from interning, so
 * check_frames() has nothing to find.
 */
static int ingest_cached(struct st_writer *w, struct st_scent *c, const uint64_t *values)
{
	int r = 0;
	st_rcu_read_lock();
	struct st_stab *t = rcu_dereference(w->sh->active);
	TSAN_ACQUIRE(t); /* the merger's last writes to t (E1) */
	/* The epoch is read like the rest of t: the merger wrote it while it
	 * owned t, before the flip that made t active again (guarantee 1). */
	uint64_t ep = st_stab_epoch(t);
	if (ST_LIKELY(c->epoch[0] == ep || c->epoch[1] == ep)) {
		st_stab_add_rec(t, c->rec[c->epoch[0] == ep ? 0 : 1], values);
	} else {
		struct st_srec *rec = st_stab_upsert(t, st_scent_ids(c), c->depth, c->id_hash, values);
		if (ST_LIKELY(rec)) {
			/* Replace the older pair: the other table's (if any) is
			 * the newer one and may still be valid. */
			int k = c->epoch[0] < c->epoch[1] ? 0 : 1;
			c->rec[k] = rec;
			c->epoch[k] = ep;
		} else {
			counter_bump(&w->sh->dropped, 1);
			r = -ENOMEM;
		}
	}
	TSAN_RELEASE(t); /* our writes, for the merger after the grace period */
	st_rcu_read_unlock();
	if (ST_LIKELY(!r))
		counter_bump(&w->sh->ingested, 1);
	return r;
}

/* Checks a string sample and sizes the writer's scratch arrays for it. */
static int strs_prepare(struct st_writer *w, const size_t *lens, size_t depth)
{
	if (depth > ST_MAX_DEPTH)
		return -E2BIG;
	for (size_t i = 0; i < depth; i++)
		if (ST_UNLIKELY(lens[i] > ST_MAX_FRAME_LEN))
			return -ENAMETOOLONG;
	if (depth > w->ids_cap) {
		size_t nc = depth < 64 ? 64 : depth;
		uint32_t *p = st_realloc(w->ids, nc * sizeof(*p));
		if (p)
			w->ids = p;
		uint64_t *q = p ? st_realloc(w->fh, nc * sizeof(*q)) : NULL;
		if (!q) {
			counter_bump(&w->sh->dropped, 1);
			return -ENOMEM;
		}
		w->fh = q;
		w->ids_cap = nc;
	}
	if (ST_UNLIKELY(!w->sc) && !w->sc_failed) {
		w->sc = st_scache_create();
		w->sc_failed = !w->sc; /* then every sample interns frame by frame */
	}
	return 0;
}

/* A stack the stack cache does not hold: intern frame by frame (through
 * the per-name cache), then cache the stack under its hash sh. */
static int strs_miss(struct st_writer *w, const char *const *frames, const size_t *lens,
		     size_t depth, uint64_t sh, const uint64_t *values)
{
	/* All hashes first: independent calls, their misses overlap. */
	for (size_t i = 0; i < depth; i++)
		w->fh[i] = st_hash_bytes(frames[i], lens[i]);
	for (size_t i = 0; i < depth; i++) {
		size_t len = lens[i];
		uint64_t h = w->fh[i];
		struct icache_ent *ic = &w->ic[h & w->ic_mask];
		if (ic->name && ic->hash == h && ic->len == len &&
		    (!len || memcmp(ic->name, frames[i], len) == 0)) {
			w->ids[i] = ic->id;
			continue;
		}
		if (ST_UNLIKELY(++w->ic_misses > w->ic_mask + 1) && w->ic_mask + 1 < ICACHE_MAX) {
			/* Grow; a failed allocation just keeps the old cache. */
			struct icache_ent *nc = st_calloc((w->ic_mask + 1) * 2, sizeof(*nc));
			if (nc) {
				st_free(w->ic);
				w->ic = nc;
				w->ic_mask = w->ic_mask * 2 + 1;
			}
			w->ic_misses = 0;
			ic = &w->ic[h & w->ic_mask];
		}
		int64_t id = st_intern_get(w->e->intern, frames[i], len, h);
		if (id < 0) {
			if (id == -ENOMEM)
				counter_bump(&w->sh->dropped, 1);
			return (int)id;
		}
		w->ids[i] = (uint32_t)id;
		ic->hash = h;
		ic->len = (uint32_t)len;
		ic->id = (uint32_t)id;
		ic->name = st_intern_name(w->e->intern, (uint32_t)id, NULL);
	}
	if (w->sc) {
		uint64_t idh = st_hash_bytes(w->ids, depth * sizeof(*w->ids));
		struct st_scent *c = st_scache_insert(w->sc, sh, frames, lens, depth, w->ids, idh);
		if (c)
			return ingest_cached(w, c, values);
	}
	return st_writer_ingest(w, w->ids, depth, values);
}

int st_writer_ingest_strs(struct st_writer *w, const char *const *frames, const size_t *lens,
			  size_t depth, const uint64_t *values)
{
	int r = strs_prepare(w, lens, depth);
	if (ST_UNLIKELY(r))
		return r;
	/* Whole stack first: a repeated sample interns nothing. */
	uint64_t sh = st_scache_hash(frames, lens, depth);
	struct st_scent *c = w->sc ? st_scache_find(w->sc, sh, frames, lens, depth) : NULL;
	if (c)
		return ingest_cached(w, c, values);
	return strs_miss(w, frames, lens, depth, sh, values);
}

/*
 * String samples go in groups of BATCH_GROUP, four passes each: check and
 * hash, prefetching the stack cache slot; prefetch the entry it names; find
 * the entries (byte compare) and prefetch the shard records they name for
 * the current table; add.  A miss (a stack not cached) takes the one-sample
 * path, which may reset the cache: entries found earlier in the group are
 * then looked up again.  Semantics are those of a loop of
 * st_writer_ingest_strs(): samples before the first failing one are
 * ingested, nothing after it.
 */
long st_writer_ingest_strs_batch(struct st_writer *w, const struct st_str_sample *s, size_t n)
{
	long done = 0;
	int r = 0;
	uint64_t h[BATCH_GROUP];
	struct st_scent *c[BATCH_GROUP];
	for (size_t base = 0; base < n && !r; base += BATCH_GROUP) {
		const struct st_str_sample *g = s + base;
		size_t k = n - base < BATCH_GROUP ? n - base : BATCH_GROUP, ok = k;
		/* The caller's memory misses too: the pointer and length arrays
		 * two groups ahead, the strings (their first line) of the next
		 * group, whose arrays the previous group prefetched. */
		for (size_t x = base + 2 * BATCH_GROUP; x < n && x < base + 3 * BATCH_GROUP; x++) {
			__builtin_prefetch(s[x].frames);
			__builtin_prefetch(s[x].lens);
		}
		for (size_t x = base + BATCH_GROUP; x < n && x < base + 2 * BATCH_GROUP; x++)
			for (size_t i = 0; i < s[x].depth && i < 16; i++)
				__builtin_prefetch(s[x].frames[i]);
		for (size_t x = 0; x < k; x++) {
			r = strs_prepare(w, g[x].lens, g[x].depth);
			if (ST_UNLIKELY(r)) {
				ok = x;
				break;
			}
			h[x] = st_scache_hash(g[x].frames, g[x].lens, g[x].depth);
			if (w->sc)
				st_scache_prefetch_slot(w->sc, h[x]);
		}
		if (w->sc) {
			for (size_t x = 0; x < ok; x++)
				st_scache_prefetch_ent(w->sc, h[x]);
			st_rcu_read_lock();
			struct st_stab *t = rcu_dereference(w->sh->active);
			TSAN_ACQUIRE(t); /* the epoch is the merger's write (E1) */
			/* Only for the hint: ingest_cached() reads it again. */
			uint64_t ep = st_stab_epoch(t);
			for (size_t x = 0; x < ok; x++) {
				c[x] = st_scache_find(w->sc, h[x], g[x].frames, g[x].lens, g[x].depth);
				if (c[x] && (c[x]->epoch[0] == ep || c[x]->epoch[1] == ep))
					__builtin_prefetch(c[x]->rec[c[x]->epoch[0] == ep ? 0 : 1]);
			}
			st_rcu_read_unlock();
		} else {
			memset(c, 0, sizeof(c));
		}
		bool stale = false; /* the cache changed since c[] was filled */
		for (size_t x = 0; x < ok; x++) {
			struct st_scent *e = c[x];
			if (stale && w->sc)
				e = st_scache_find(w->sc, h[x], g[x].frames, g[x].lens, g[x].depth);
			int rr;
			if (e) {
				rr = ingest_cached(w, e, g[x].values);
			} else {
				rr = strs_miss(w, g[x].frames, g[x].lens, g[x].depth, h[x], g[x].values);
				stale = true;
			}
			if (ST_UNLIKELY(rr)) {
				r = rr;
				break;
			}
			done++;
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

/* ------------------------------------------------------------ merging */

#define FOLD_GROUP 8

struct fold_ctx {
	struct st_engine *e;
	struct st_stab *t; /* the table being folded */
	uint64_t records;
	size_t n; /* linked records queued, their self slots prefetched */
	struct st_srec *q[FOLD_GROUP];
};

/* Add what the queued (linked) records gained to their leaves: the records
 * are only read (shard.c, "Who writes what"). */
static void fold_drain(struct fold_ctx *c)
{
	uint64_t d[ST_MAX_METRICS];
	for (size_t k = 0; k < c->n; k++) {
		st_stab_delta(c->t, c->q[k], d);
		if (st_master_add_rec(c->e->master, c->q[k], d))
			c->e->merge_dropped++;
	}
	c->n = 0;
}

static void fold_cb(void *arg, struct st_stab *t, struct st_srec *r)
{
	struct fold_ctx *c = arg;
	struct st_engine *e = c->e;
	c->records++;
	if (!st_master_rec_linked(e->master, r)) {
		/* New (or stale) stack: walked later, in sorted order, with
		 * its values made what it gained (the walk writes it anyway). */
		st_stab_rebase(t, r);
		if (e->nwalk == e->walk_cap) {
			size_t nc = e->walk_cap ? e->walk_cap * 2 : 4096;
			struct st_srec **p = st_realloc(e->walk, nc * sizeof(*p));
			if (!p) {
				/* Walk it alone now rather than lose it. */
				if (st_master_add_rec(e->master, r, st_srec_values(r)))
					e->merge_dropped++;
				return;
			}
			e->walk = p;
			e->walk_cap = nc;
		}
		e->walk[e->nwalk++] = r;
		return;
	}
	st_master_prefetch_rec(e->master, r);
	c->q[c->n++] = r;
	if (c->n == FOLD_GROUP)
		fold_drain(c);
}

/*
 * Swap every shard's active table for its spare and wait one grace period:
 * afterwards the caller (holding merge_lock) owns e->flipped[0..n) (rule E1,
 * guarantee 1).  Returns n.
 */
static unsigned flip_all(struct st_engine *e)
{
	struct st_stab **old = e->flipped;
	unsigned n = atomic_load_explicit(&e->nshards, memory_order_acquire);
	for (unsigned i = 0; i < n; i++) {
		struct st_shard *sh = e->shards[i];
		/* Full barrier inside; pairs with the writers' rcu_dereference. */
		old[i] = rcu_xchg_pointer(&sh->active, sh->spare);
		sh->spare = NULL;
	}
	st_rcu_synchronize(); /* guarantee 1: now we own every old[i] */
	for (unsigned i = 0; i < n; i++)
		TSAN_ACQUIRE(old[i]);
	return n;
}

/*
 * Flip every shard's table, wait one grace period, fold (or discard) what
 * was flipped out.  Caller holds merge_lock.  Returns records folded.
 *
 * Linked records (seen in an earlier period) are added as they come.  The
 * unlinked ones are collected from every shard, sorted by frames and walked
 * in that order, so each walk starts where it diverges from the previous
 * stack instead of at the root (st_master_link_sorted).  Tables are cleared
 * only after that, since the walk reads their records.
 */
static uint64_t merge_locked(struct st_engine *e, bool discard)
{
	struct st_stab **old = e->flipped;
	unsigned n = flip_all(e);
	struct fold_ctx c = { .e = e };
	e->nwalk = 0;
	if (!discard) {
		for (unsigned i = 0; i < n; i++) {
			c.t = old[i];
			st_stab_foreach_touched(old[i], fold_cb, &c);
			fold_drain(&c); /* the queue holds records of c.t only */
		}
		e->merge_dropped += st_master_link_sorted(e->master, e->walk, e->nwalk);
		e->nwalk = 0;
	}
	for (unsigned i = 0; i < n; i++) {
		/* A reset discards everything; otherwise keep the records (and
		 * their master links) unless the table grew too big. */
		if (discard || !st_stab_keep(old[i]))
			st_stab_clear(old[i]);
		TSAN_RELEASE(old[i]); /* for the writer after the next flip */
		e->shards[i]->spare = old[i];
	}
	e->merges++;
	return c.records;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Build and publish a snapshot of the master.  Caller holds merge_lock. */
static uint64_t publish_locked(struct st_engine *e)
{
	e->folded += st_master_apply_cap(e->master);
	if (st_master_sort(e->master, e->intern))
		return 0;
	struct st_master_view v;
	st_master_view(e->master, &v);
	struct st_snap *s = st_snap_build(e, &v, e->version + 1, e->generation);
	if (!s)
		return 0;
	st_master_order_done(e->master);
	e->version++;
	st_snap_publish(e, s);
	e->unpublished = false;
	return e->version;
}

uint64_t st_flush(struct st_engine *e)
{
	st_rcu_thread_online();
	pthread_mutex_lock(&e->merge_lock);
	merge_locked(e, false);
	uint64_t v = publish_locked(e);
	pthread_mutex_unlock(&e->merge_lock);
	if (!v)
		errno = ENOMEM;
	return v;
}

uint64_t st_reset(struct st_engine *e)
{
	st_rcu_thread_online();
	pthread_mutex_lock(&e->merge_lock);
	merge_locked(e, true);
	st_master_clear(e->master);
	e->generation++;
	uint64_t v = publish_locked(e);
	pthread_mutex_unlock(&e->merge_lock);
	if (!v)
		errno = ENOMEM;
	return v;
}

/* st_engine_drain's collector: records that hold values (the array is
 * sized for every record of the flipped tables). */
struct drain_ctx {
	struct st_srec **recs;
	size_t n;
};

static void drain_cb(void *arg, struct st_stab *t, struct st_srec *r)
{
	struct drain_ctx *c = arg;
	st_stab_rebase(t, r); /* values: what it gained since its last fold */
	c->recs[c->n++] = r;  /* listed: touched since the last fold */
}

/*
 * The one-shot path: the shards are flipped and owned after one grace
 * period exactly as in merge_locked() (rule E1), but their records go to fn
 * instead of into the master, and are discarded afterwards.  When the
 * record array cannot be allocated they are folded as a merge would, so
 * no sample is lost and rule E2 still holds.
 */
int st_engine_drain(struct st_engine *e, st_drain_fn fn, void *arg)
{
	st_rcu_thread_online();
	pthread_mutex_lock(&e->merge_lock);
	if (st_master_nodes(e->master) > 1) {
		/* Some stacks are in the master already: the shards alone do
		 * not hold the whole profile. */
		pthread_mutex_unlock(&e->merge_lock);
		return -EBUSY;
	}
	struct st_stab **old = e->flipped;
	unsigned n = flip_all(e);
	size_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += st_stab_count(old[i]);
	struct st_srec **recs = st_malloc((total ? total : 1) * sizeof(*recs));
	if (!recs) {
		/* Keep every sample: the full tables go back as spares, the
		 * first merge makes them active again (folding what came in
		 * meanwhile), the second folds them. */
		for (unsigned i = 0; i < n; i++) {
			TSAN_RELEASE(old[i]);
			e->shards[i]->spare = old[i];
		}
		merge_locked(e, false);
		merge_locked(e, false);
		e->unpublished = true;
		pthread_mutex_unlock(&e->merge_lock);
		return -ENOMEM;
	}
	struct drain_ctx c = { recs, 0 };
	for (unsigned i = 0; i < n; i++)
		st_stab_foreach_touched(old[i], drain_cb, &c); /* cleared below */
	int rc = fn(arg, recs, c.n, e->opt.nmetrics);
	for (unsigned i = 0; i < n; i++) {
		st_stab_clear(old[i]);
		TSAN_RELEASE(old[i]); /* for the writer after the next flip */
		e->shards[i]->spare = old[i];
	}
	e->merges++;
	pthread_mutex_unlock(&e->merge_lock);
	st_free(recs);
	return rc;
}

static void *merger_main(void *arg)
{
	struct st_engine *e = arg;
	st_rcu_thread_online();
	pthread_mutex_lock(&e->merger_mu);
	for (;;) {
		struct timespec dl;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		uint64_t ns = (uint64_t)dl.tv_nsec + (uint64_t)e->opt.merge_interval_ms * 1000000u;
		dl.tv_sec += (time_t)(ns / 1000000000u);
		dl.tv_nsec = (long)(ns % 1000000000u);
		while (!e->merger_stop &&
		       pthread_cond_timedwait(&e->merger_cv, &e->merger_mu, &dl) != ETIMEDOUT)
			;
		if (e->merger_stop)
			break;
		pthread_mutex_unlock(&e->merger_mu);
		pthread_mutex_lock(&e->merge_lock);
		/* Publish only when something arrived (idle engines stay idle),
		 * and not more often than every 4x the last build took: a
		 * build is O(nodes), so on a huge trie publishing every period
		 * would leave the merger no time to fold.  Folding still runs
		 * every period, so shard tables stay small. */
		if (merge_locked(e, false))
			e->unpublished = true;
		uint64_t now = now_ns();
		if (e->unpublished && now >= e->next_publish_ns) {
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

/* ------------------------------------------------------------ lifetime */

static void engine_free(struct st_engine *e)
{
	unsigned n = atomic_load(&e->nshards);
	for (unsigned i = 0; i < n; i++)
		shard_free(e->shards[i]);
	st_master_destroy(e->master);
	st_free(e->walk);
	if (e->snap) {
		/* Wait for pending retire callbacks, then drop our reference. */
		st_rcu_barrier();
		st_snap_free_now(e->snap);
	}
	st_intern_destroy(e->intern);
	for (unsigned i = 0; i < ST_MAX_METRICS; i++) {
		st_free(e->metric_names[i]);
		st_free(e->metric_units[i]);
	}
	pthread_mutex_destroy(&e->shard_lock);
	pthread_mutex_destroy(&e->merge_lock);
	pthread_mutex_destroy(&e->merger_mu);
	pthread_cond_destroy(&e->merger_cv);
	st_free(e);
}

struct st_engine *st_engine_create(const struct st_options *o)
{
	struct st_options def;
	if (!o) {
		st_options_init(&def);
		o = &def;
	}
	if (o->size < offsetof(struct st_options, node_cap) + sizeof(o->node_cap) ||
	    o->nmetrics < 1 || o->nmetrics > ST_MAX_METRICS ||
	    (o->node_cap && o->node_cap < 4)) {
		errno = EINVAL;
		return NULL;
	}
	struct st_engine *e = st_calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	memcpy(&e->opt, o, sizeof(e->opt));
	e->opt.size = sizeof(e->opt);
	pthread_mutex_init(&e->shard_lock, NULL);
	pthread_mutex_init(&e->merge_lock, NULL);
	pthread_mutex_init(&e->merger_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e->merger_cv, &ca);
	pthread_condattr_destroy(&ca);

	for (unsigned i = 0; i < o->nmetrics; i++) {
		char buf[32];
		const char *name = o->metrics[i].name, *unit = o->metrics[i].unit;
		if (!name) {
			snprintf(buf, sizeof(buf), i ? "metric%u" : "count", i);
			name = buf;
		}
		e->metric_names[i] = st_strdup(name);
		e->metric_units[i] = st_strdup(unit ? unit : (i ? "" : "samples"));
		if (!e->metric_names[i] || !e->metric_units[i])
			goto fail;
		e->opt.metrics[i].name = e->metric_names[i];
		e->opt.metrics[i].unit = e->metric_units[i];
	}
	st_rcu_thread_online();
	e->intern = st_intern_create();
	if (!e->intern)
		goto fail;
	int64_t other = st_intern_get(e->intern, ST_OTHER_NAME, strlen(ST_OTHER_NAME),
				      st_hash_bytes(ST_OTHER_NAME, strlen(ST_OTHER_NAME)));
	if (other < 0)
		goto fail;
	e->other_id = (uint32_t)other;
	e->master = st_master_create(o->nmetrics, o->node_cap, e->other_id);
	if (!e->master)
		goto fail;

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned ns = o->nshards ? o->nshards : (unsigned)(ncpu > 0 ? ncpu : 1);
	if (ns > ST_SHARDS_MAX / 2)
		ns = ST_SHARDS_MAX / 2;
	for (unsigned i = 0; i < ns; i++) {
		e->shards[i] = shard_new(e, i);
		if (!e->shards[i])
			goto fail;
		atomic_store_explicit(&e->nshards, i + 1, memory_order_release);
	}
	e->ncpu_shards = ns;

	/* Version 1: the empty trie, so st_snap_acquire() never sees NULL. */
	struct st_master_view v;
	st_master_view(e->master, &v);
	e->snap = st_snap_build(e, &v, 1, 0);
	if (!e->snap)
		goto fail;
	st_master_order_done(e->master);
	e->version = 1;

	if (o->merge_interval_ms) {
		/* A library thread takes none of the application's signals: it
		 * starts with all blocked (it inherits the creator's mask). */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		int err = pthread_create(&e->merger, NULL, merger_main, e);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (err) {
			errno = err;
			goto fail;
		}
		/* Named for top -H / perf: a busy merger is worth spotting. */
		pthread_setname_np(e->merger, "st-merger");
		e->merger_running = true;
	}
	return e;
fail:;
	int saved = errno ? errno : ENOMEM;
	engine_free(e);
	errno = saved;
	return NULL;
}

void st_engine_destroy(struct st_engine *e)
{
	if (!e)
		return;
	if (e->merger_running) {
		pthread_mutex_lock(&e->merger_mu);
		e->merger_stop = true;
		pthread_cond_signal(&e->merger_cv);
		pthread_mutex_unlock(&e->merger_mu);
		pthread_join(e->merger, NULL);
	}
	pthread_mutex_lock(&implicit_mu);
	for (struct st_implicit *it = e->implicit_head; it; it = it->next_engine) {
		st_writer_close(it->w);
		it->e = NULL; /* the thread frees the item when it exits */
	}
	e->implicit_head = NULL;
	pthread_mutex_unlock(&implicit_mu);
	engine_free(e);
}

unsigned st_engine_nmetrics(const struct st_engine *e)
{
	return e->opt.nmetrics;
}

const struct st_metric_desc *st_engine_metric(const struct st_engine *e, unsigned i)
{
	return i < e->opt.nmetrics ? &e->opt.metrics[i] : NULL;
}

int st_engine_metric_index(const struct st_engine *e, const char *name)
{
	for (unsigned i = 0; i < e->opt.nmetrics; i++)
		if (strcmp(e->opt.metrics[i].name, name) == 0)
			return (int)i;
	return -ENOENT;
}

int64_t st_intern(struct st_engine *e, const char *s, size_t len)
{
	return st_intern_get(e->intern, s, len, st_hash_bytes(s, len));
}

const char *st_frame_name(const struct st_engine *e, uint32_t id, size_t *len)
{
	return st_intern_name(e->intern, id, len);
}

size_t st_frame_count(const struct st_engine *e)
{
	return st_intern_count(e->intern);
}

void st_engine_stats(struct st_engine *e, struct st_stats *out)
{
	memset(out, 0, sizeof(*out));
	unsigned n = atomic_load_explicit(&e->nshards, memory_order_acquire);
	for (unsigned i = 0; i < n; i++) {
		out->ingested += atomic_load_explicit(&e->shards[i]->ingested, memory_order_relaxed);
		out->dropped += atomic_load_explicit(&e->shards[i]->dropped, memory_order_relaxed);
	}
	out->shards = n;
	out->frames = st_intern_count(e->intern);
	out->mem_intern = st_intern_memory(e->intern);
	pthread_mutex_lock(&e->merge_lock);
	/* Spare tables belong to the merger; the active ones are being written,
	 * so count each shard as two tables the size of its spare (the spare
	 * is the table folded last, i.e. one period's worth). */
	for (unsigned i = 0; i < n; i++)
		out->mem_shards += 2 * st_stab_memory(e->shards[i]->spare);
	out->dropped += e->merge_dropped;
	out->merges = e->merges;
	out->folded = e->folded;
	out->version = e->version;
	out->nodes = st_master_nodes(e->master);
	out->mem_master = st_master_memory(e->master);
	out->mem_snapshot = st_snap_memory(e->snap);
	pthread_mutex_unlock(&e->merge_lock);
}
