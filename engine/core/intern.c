/* SPDX-License-Identifier: MIT */
/*
 * intern.c - frame names <-> dense 32-bit ids.
 *
 *   name bytes --XXH3--> hash --cds_lfht (RCU, lock-free lookup)--> ent
 *   id ---------> chunks[id >> 16][id & 0xffff] ----------------------> ent
 *
 *   ent = { lfht node | hash | id | len | name bytes + NUL }   (never freed
 *                                                               before destroy)
 *
 * Entries are bump-allocated (under `lock`) from arena chunks that are
 * regions (region.h): 64 KiB first, doubling to one 2 MiB page each, freed
 * only at destroy.  A malloc per name took a 4 KiB page fault every ~70
 * new names, and a first sighting of a stack usually brings a new name.
 * Invariants
 *   1. An id is handed out only after its entry is fully written and stored
 *      in the id table; the id table slot and the chunk pointer are published
 *      with release stores, so any thread that got an id (from st_intern or
 *      from a snapshot built after it) can read the name with acquire loads.
 *   2. Ids are dense: 0 .. count-1, assigned under `lock` in insertion order.
 *   3. Entries are immutable after insertion and live until destroy, so the
 *      name pointers handed out need no read-side section.
 *   4. `added` counts completed insertions.  A lookup that missed after
 *      reading added == n (acquire) saw every name whose insertion bumped it
 *      to n or below; if added is still n under `lock`, no name was inserted
 *      since, so the miss stands and the insert needs no second lookup.
 * Progress
 *   Lookup of a known name: wait-free apart from the lfht bucket walk, inside
 *   an RCU read-side section; no lock.  Insert: a mutex (new names are rare
 *   compared to lookups), with a second lookup under it (unless invariant 4
 *   makes it moot) so two threads interning the same new name get the same
 *   id.
 */
#include <errno.h>
#include <xxhash.h>

#include <urcu/rculfhash.h>

#include "intern.h"
#include "rcu.h"
#include "region.h"

#define CHUNK_BITS 16
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define NCHUNKS (1u << 16) /* 2^32 ids in all; the last id is ST_FRAME_ROOT */
#define ARENA_MIN (64u * 1024)
#define ARENA_MAX ST_REGION_HUGE

/* A chunk of entries; `size` bytes in all, the header included. */
struct arena {
	struct arena *next;
	size_t size, used;
	_Alignas(8) unsigned char mem[];
};

struct ent {
	struct cds_lfht_node node;
	uint64_t hash;
	uint32_t id;
	uint32_t len;
	char name[];
};

struct st_intern {
	struct cds_lfht *ht;
	pthread_mutex_t lock;
	_Atomic uint32_t count;
	/* Names fully inserted (lfht node added); bumped under `lock` after
	 * cds_lfht_add_unique().  Lets an insert skip its second lookup when
	 * nothing was added since its lock-free one (invariant 4). */
	_Atomic uint64_t added;
	_Atomic size_t mem;
	struct ent *_Atomic *_Atomic *chunks; /* NCHUNKS chunk pointers */
	struct arena *arena;                  /* entries (under lock), current first */
	/* Some name holds a line break ('\n' or '\r'): line-based writers
	 * must escape (export_folded.c).  Set before the count that makes
	 * the name visible, so whoever sees the name sees the flag. */
	_Atomic bool eol;
};

uint64_t st_hash_bytes(const void *p, size_t len)
{
	return XXH3_64bits(p, len);
}

struct st_intern *st_intern_create(void)
{
	struct st_intern *in = st_calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	in->chunks = st_calloc(NCHUNKS, sizeof(*in->chunks));
	/* 16 Ki buckets up front (256 KiB): auto-resize runs from the call_rcu
	 * thread and lags a burst of new names, and lookups that miss walk
	 * the long chains meanwhile (the strings benchmark interns 60 k names
	 * in ~0.1 s; starting at 1 Ki doubled its lookup cost). */
	in->ht = cds_lfht_new_flavor(1u << 14, 1024, 0,
				     CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
				     &urcu_memb_flavor, NULL);
	if (!in->chunks || !in->ht) {
		if (in->ht)
			cds_lfht_destroy(in->ht, NULL);
		st_free(in->chunks);
		st_free(in);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&in->lock, NULL);
	return in;
}

void st_intern_destroy(struct st_intern *in)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *n;

	if (!in)
		return;
	/* No other thread uses the table now: unlink every node, then free
	 * the id table and the arena (lfht nodes need no grace period here
	 * because there are no readers left). */
	st_rcu_thread_online();
	st_rcu_read_lock();
	cds_lfht_for_each(in->ht, &it, n)
		cds_lfht_del(in->ht, n);
	st_rcu_read_unlock();
	cds_lfht_destroy(in->ht, NULL);
	uint32_t count = atomic_load(&in->count);
	for (uint32_t c = 0; c < NCHUNKS && (uint64_t)c * CHUNK_SIZE < count; c++) {
		struct ent *_Atomic *chunk = atomic_load(&in->chunks[c]);
		st_free(chunk);
	}
	while (in->arena) {
		struct arena *a = in->arena;
		in->arena = a->next;
		st_region_free(a, a->size);
	}
	st_free(in->chunks);
	pthread_mutex_destroy(&in->lock);
	st_free(in);
}

struct key {
	const char *s;
	size_t len;
};

static int match(struct cds_lfht_node *node, const void *arg)
{
	const struct ent *e = caa_container_of(node, struct ent, node);
	const struct key *k = arg;
	return e->len == k->len && memcmp(e->name, k->s, k->len) == 0;
}

static struct ent *lookup(struct st_intern *in, const char *s, size_t len, uint64_t hash)
{
	struct cds_lfht_iter it;
	struct key k = { s, len };
	cds_lfht_lookup(in->ht, (unsigned long)hash, match, &k, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	return n ? caa_container_of(n, struct ent, node) : NULL;
}

/* Room for an entry of n bytes (8-aligned), under `lock`; NULL when out of
 * memory. */
static struct ent *ent_alloc(struct st_intern *in, size_t n)
{
	struct arena *a = in->arena;
	n = (n + 7) & ~(size_t)7;
	if (!a || a->size - sizeof(*a) - a->used < n) {
		size_t want = a ? a->size * 2 : ARENA_MIN;
		if (want > ARENA_MAX)
			want = ARENA_MAX;
		if (want < sizeof(*a) + n)
			want = sizeof(*a) + n;
		want = st_region_size(want);
		a = st_region_alloc(want, ST_REGION_UNINIT);
		if (!a)
			return NULL;
		a->size = want;
		a->used = 0;
		a->next = in->arena;
		in->arena = a;
		atomic_fetch_add_explicit(&in->mem, want, memory_order_relaxed);
	}
	struct ent *e = (struct ent *)(a->mem + a->used);
	a->used += n;
	return e;
}

int64_t st_intern_get(struct st_intern *in, const char *s, size_t len, uint64_t hash)
{
	return st_intern_get_name(in, s, len, hash, NULL, NULL);
}

int64_t st_intern_get_name(struct st_intern *in, const char *s, size_t len, uint64_t hash,
			   const char **name, bool *added)
{
	struct ent *e;
	int64_t id;

	if (len > ST_MAX_FRAME_LEN)
		return -ENAMETOOLONG;
	st_rcu_thread_online();
	/* Acquire: pairs with the release bump after an insertion, so the
	 * lookup below sees every node counted here (invariant 4). */
	uint64_t seen = atomic_load_explicit(&in->added, memory_order_acquire);
	st_rcu_read_lock();
	e = lookup(in, s, len, hash);
	id = e ? (int64_t)e->id : -1;
	st_rcu_read_unlock();
	if (id >= 0) {
		/* The entry outlives the section (invariant 3). */
		if (name)
			*name = e->name;
		return id;
	}

	pthread_mutex_lock(&in->lock);
	if (atomic_load_explicit(&in->added, memory_order_relaxed) != seen) {
		/* Someone inserted since our lookup: maybe this very name. */
		st_rcu_read_lock();
		e = lookup(in, s, len, hash);
		st_rcu_read_unlock();
		if (e) {
			id = e->id;
			goto out;
		}
	}
	uint32_t n = atomic_load_explicit(&in->count, memory_order_relaxed);
	if (n >= ST_FRAME_ROOT) {
		id = -ENOSPC;
		goto out;
	}
	uint32_t c = n >> CHUNK_BITS;
	struct ent *_Atomic *chunk = atomic_load_explicit(&in->chunks[c], memory_order_relaxed);
	if (!chunk) {
		chunk = st_calloc(CHUNK_SIZE, sizeof(*chunk));
		if (!chunk) {
			id = -ENOMEM;
			goto out;
		}
		/* Pairs with the acquire load in st_intern_name(). */
		atomic_store_explicit(&in->chunks[c], chunk, memory_order_release);
		atomic_fetch_add_explicit(&in->mem, CHUNK_SIZE * sizeof(*chunk),
					  memory_order_relaxed);
	}
	e = ent_alloc(in, sizeof(*e) + len + 1);
	if (!e) {
		id = -ENOMEM;
		goto out;
	}
	cds_lfht_node_init(&e->node);
	e->hash = hash;
	e->id = n;
	e->len = (uint32_t)len;
	memcpy(e->name, s, len);
	e->name[len] = '\0';
	if (memchr(s, '\n', len) || memchr(s, '\r', len))
		atomic_store_explicit(&in->eol, true, memory_order_relaxed);
	/* Release: the entry's bytes before the slot (invariant 1). */
	atomic_store_explicit(&chunk[n & (CHUNK_SIZE - 1)], e, memory_order_release);
	/* Release: ids below count are readable; pairs with st_intern_count(). */
	atomic_store_explicit(&in->count, n + 1, memory_order_release);
	st_rcu_read_lock();
	/* Under `lock` nobody else inserts, so add_unique cannot lose. */
	cds_lfht_add_unique(in->ht, (unsigned long)hash, match,
			    &(struct key){ e->name, len }, &e->node);
	st_rcu_read_unlock();
	/* Release: the node before the count of added names (invariant 4). */
	atomic_store_explicit(&in->added, atomic_load_explicit(&in->added, memory_order_relaxed) + 1,
			      memory_order_release);
	id = n;
	if (added)
		*added = true;
out:
	pthread_mutex_unlock(&in->lock);
	if (id >= 0 && name)
		*name = e->name;
	return id;
}

const char *st_intern_name(const struct st_intern *in, uint32_t id, size_t *len)
{
	if (id == ST_FRAME_ROOT) {
		if (len)
			*len = 0;
		return "";
	}
	if (id >= atomic_load_explicit(&in->count, memory_order_acquire))
		return NULL;
	struct ent *_Atomic *chunk =
		atomic_load_explicit(&in->chunks[id >> CHUNK_BITS], memory_order_acquire);
	struct ent *e = atomic_load_explicit(&chunk[id & (CHUNK_SIZE - 1)], memory_order_acquire);
	if (len)
		*len = e->len;
	return e->name;
}

bool st_intern_has_eol(const struct st_intern *in)
{
	/* Ordered by the count's release/acquire pair, like the names. */
	return atomic_load_explicit(&in->eol, memory_order_relaxed);
}

uint32_t st_intern_count(const struct st_intern *in)
{
	return atomic_load_explicit(&in->count, memory_order_acquire);
}

size_t st_intern_memory(const struct st_intern *in)
{
	return atomic_load_explicit(&in->mem, memory_order_relaxed) +
	       NCHUNKS * sizeof(*in->chunks);
}

int st_intern_cmp(const struct st_intern *in, uint32_t a, uint32_t b)
{
	size_t la, lb;
	const char *na = st_intern_name(in, a, &la);
	const char *nb = st_intern_name(in, b, &lb);
	int c = memcmp(na, nb, la < lb ? la : lb);
	if (c)
		return c;
	return la < lb ? -1 : la > lb;
}
