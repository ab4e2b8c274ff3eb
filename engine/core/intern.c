/* SPDX-License-Identifier: MIT */
/*
 * intern.c - frame names <-> dense 32-bit ids.
 *
 *   name bytes --XXH3--> hash --slot table (open addressing)--> ent
 *   id ---------> chunks[id >> 16][id & 0xffff] ----------------> ent
 *
 *   slot = { hash | ent }      ent = { hash | id | len | name bytes + NUL }
 *
 * The name table is open addressing with linear probing, load <= 1/2, and
 * grows by doubling under `lock`: the new slots are filled, then published
 * (release); the old ones are kept, unchanged, until destroy (together at
 * most as big as the current ones), so a lookup needs no lock and no RCU
 * read-side section and may finish on a table that has been replaced (it
 * then misses a name added since, which invariant 4 catches).  A lookup of
 * a known name is one probe (the slot's hash, then the entry), a miss one
 * probe to an empty slot; the lfht this replaces walked split-ordered
 * bucket chains (a miss per node) twice per new name, its lookup and its
 * add_unique, which was most of a first sighting's interning.
 *
 * Entries are bump-allocated (under `lock`) from arena chunks that are
 * regions (region.h): 64 KiB first, then 2 MiB pages (st_region_early), freed
 * only at destroy.  A malloc per name took a 4 KiB page fault every ~70
 * new names, and a first sighting of a stack usually brings a new name.
 *
 * Invariants
 *   1. An id is handed out only after its entry is fully written and stored
 *      in the id table; the id table slot and the chunk pointer are published
 *      with release stores, so any thread that got an id (from st_intern or
 *      from a snapshot built after it) can read the name with acquire loads.
 *   2. Ids are dense: 0 .. count-1, assigned under `lock` in insertion order.
 *   3. Entries, slot tables (current and replaced) and the arena are never
 *      freed before destroy, and an entry never changes once its slot names
 *      it: name pointers and lookups need no read-side section.  A slot is
 *      written once, under `lock`: its hash, then its entry pointer
 *      (release); a reader loads the pointer (acquire), then the hash.
 *   4. `added` counts completed insertions (bumped, release, after the slot
 *      is written).  A lookup that missed after reading added == n
 *      (acquire, before it loads the table pointer) saw every name whose
 *      insertion bumped it to n or below; if added is still n under `lock`,
 *      no name was inserted since, so the miss stands and the insert needs
 *      no second lookup.
 * Progress
 *   Lookup: lock-free and wait-free (a bounded probe of a table that only
 *   fills to 1/2).  Insert: a mutex taken only by interning callers (new
 *   names are rare compared to lookups; the merger and readers never take
 *   it), with a second lookup under it (unless invariant 4 makes it moot) so
 *   two threads interning the same new name get the same id.
 *   st_intern_get_many() (a writer's names of one stack) looks every name up
 *   first, their slots prefetched together, and takes the lock once for all
 *   the names it did not find; a known name never takes it.
 */
#include <errno.h>
#include <pthread.h>
#include <xxhash.h>

#include "intern.h"
#include "region.h"

#define CHUNK_BITS 16
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define NCHUNKS (1u << 16) /* 2^32 ids in all; the last id is ST_FRAME_ROOT */
#define ARENA_MIN (64u * 1024)
#define ARENA_MAX ST_REGION_HUGE
#define INITIAL_SLOTS 2048u

struct ent {
	uint64_t hash;
	uint32_t id;
	uint32_t len;
	char name[];
};

struct slot {
	_Atomic uint64_t hash;
	struct ent *_Atomic e; /* NULL: empty */
};

/* A slot table: mask + 1 slots (a region); prev is the one it replaced
 * (kept). */
struct table {
	size_t mask;
	struct table *prev;
	struct slot *s;
};

/* A chunk of entries; `size` bytes in all, the header included. */
struct arena {
	struct arena *next;
	size_t size, used;
	_Alignas(8) unsigned char mem[];
};

struct st_intern {
	struct table *_Atomic tab; /* current; replaced (release) under lock */
	pthread_mutex_t lock;
	/* Names (ids handed out, all of them in tab): written under `lock`
	 * only, so an inserter reads it relaxed. */
	_Atomic uint32_t count;
	/* Names fully inserted; bumped under `lock` after the slot is written.
	 * Lets an insert skip its second lookup when nothing was added since
	 * its lock-free one (invariant 4). */
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

static size_t table_bytes(size_t nslots)
{
	return sizeof(struct table) + nslots * sizeof(struct slot);
}

static void table_free(struct table *t)
{
	if (t) {
		st_region_free(t->s, (t->mask + 1) * sizeof(*t->s));
		st_free(t);
	}
}

/* An empty table of at least nslots slots: past 64 KiB a whole big page
 * (st_region_early), prefaulted (probes read it first). */
static struct table *table_new(size_t nslots)
{
	struct table *t = st_malloc(sizeof(*t));
	if (!t)
		return NULL;
	nslots = st_region_early(nslots * sizeof(*t->s)) / sizeof(*t->s);
	t->s = st_region_alloc(nslots * sizeof(*t->s), ST_REGION_PREFAULT);
	if (!t->s) {
		st_free(t);
		return NULL;
	}
	t->mask = nslots - 1;
	t->prev = NULL;
	return t;
}

struct st_intern *st_intern_create(void)
{
	struct st_intern *in = st_calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	in->chunks = st_calloc(NCHUNKS, sizeof(*in->chunks));
	struct table *t = table_new(INITIAL_SLOTS);
	if (!in->chunks || !t) {
		table_free(t);
		st_free(in->chunks);
		st_free(in);
		errno = ENOMEM;
		return NULL;
	}
	atomic_init(&in->tab, t);
	in->mem = table_bytes(t->mask + 1);
	pthread_mutex_init(&in->lock, NULL);
	return in;
}

void st_intern_destroy(struct st_intern *in)
{
	if (!in)
		return;
	/* No other thread uses the table now (invariant 3: nothing to wait
	 * for). */
	struct table *t = atomic_load_explicit(&in->tab, memory_order_relaxed);
	while (t) {
		struct table *p = t->prev;
		table_free(t);
		t = p;
	}
	uint32_t count = atomic_load(&in->count);
	for (uint32_t c = 0; c < NCHUNKS && (uint64_t)c * CHUNK_SIZE < count; c++)
		st_free(atomic_load(&in->chunks[c]));
	while (in->arena) {
		struct arena *a = in->arena;
		in->arena = a->next;
		st_region_free(a, a->size);
	}
	st_free(in->chunks);
	pthread_mutex_destroy(&in->lock);
	st_free(in);
}

/* The entry of name s in table t, or NULL (invariant 3's reader side). */
static struct ent *lookup(const struct table *t, const char *s, size_t len, uint64_t hash)
{
	for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
		const struct slot *sl = &t->s[i];
		struct ent *e = atomic_load_explicit(&sl->e, memory_order_acquire);
		if (!e)
			return NULL;
		if (atomic_load_explicit(&sl->hash, memory_order_relaxed) == hash &&
		    e->len == len && st_bytes_equal(e->name, s, len))
			return e;
	}
}

/* Put e (its hash: hash) into t's first free slot of its probe sequence
 * (under lock). */
static void slot_put_hash(struct table *t, struct ent *e, uint64_t hash)
{
	size_t i = hash & t->mask;
	while (atomic_load_explicit(&t->s[i].e, memory_order_relaxed))
		i = (i + 1) & t->mask;
	atomic_store_explicit(&t->s[i].hash, hash, memory_order_relaxed);
	atomic_store_explicit(&t->s[i].e, e, memory_order_release);
}

static void slot_put(struct table *t, struct ent *e)
{
	slot_put_hash(t, e, e->hash);
}

/* Room for one more name in the current table (under lock): double it
 * when the load would pass 1/2.  0 or -ENOMEM (nothing changed). */
static int table_reserve(struct st_intern *in)
{
	struct table *t = atomic_load_explicit(&in->tab, memory_order_relaxed);
	size_t n = atomic_load_explicit(&in->count, memory_order_relaxed);
	if ((n + 1) * 2 <= t->mask + 1)
		return 0;
	struct table *nt = table_new((t->mask + 1) * 2);
	if (!nt)
		return -ENOMEM;
	/* By the slots' own hashes: the entries (scattered through the
	 * arena, a miss each in a big table) are not read. */
	for (size_t i = 0; i <= t->mask; i++) {
		struct ent *e = atomic_load_explicit(&t->s[i].e, memory_order_relaxed);
		if (e)
			slot_put_hash(nt, e, atomic_load_explicit(&t->s[i].hash,
								 memory_order_relaxed));
	}
	nt->prev = t;
	/* Release: the filled slots before the table (invariant 3). */
	atomic_store_explicit(&in->tab, nt, memory_order_release);
	atomic_fetch_add_explicit(&in->mem, table_bytes(nt->mask + 1), memory_order_relaxed);
	return 0;
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
		want = st_region_early(want);
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

/*
 * Insert the name (under `lock`; not in the table: the caller looked).  Its
 * entry, or NULL with *err set (-ENOSPC, -ENOMEM; nothing changed).
 */
static struct ent *insert_locked(struct st_intern *in, const char *s, size_t len, uint64_t hash,
				 int *err)
{
	uint32_t n = atomic_load_explicit(&in->count, memory_order_relaxed);
	if (n >= ST_FRAME_ROOT) {
		*err = -ENOSPC;
		return NULL;
	}
	if (table_reserve(in)) {
		*err = -ENOMEM;
		return NULL;
	}
	uint32_t c = n >> CHUNK_BITS;
	struct ent *_Atomic *chunk = atomic_load_explicit(&in->chunks[c], memory_order_relaxed);
	if (!chunk) {
		chunk = st_calloc(CHUNK_SIZE, sizeof(*chunk));
		if (!chunk) {
			*err = -ENOMEM;
			return NULL;
		}
		/* Pairs with the acquire load in st_intern_name(). */
		atomic_store_explicit(&in->chunks[c], chunk, memory_order_release);
		atomic_fetch_add_explicit(&in->mem, CHUNK_SIZE * sizeof(*chunk),
					  memory_order_relaxed);
	}
	struct ent *e = ent_alloc(in, sizeof(*e) + len + 1);
	if (!e) {
		*err = -ENOMEM;
		return NULL;
	}
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
	/* Room reserved above: cannot fail now. */
	slot_put(atomic_load_explicit(&in->tab, memory_order_relaxed), e);
	/* Release: the slot before the count of added names (invariant 4). */
	atomic_store_explicit(&in->added, atomic_load_explicit(&in->added, memory_order_relaxed) + 1,
			      memory_order_release);
	return e;
}

int64_t st_intern_get(struct st_intern *in, const char *s, size_t len, uint64_t hash)
{
	return st_intern_get_name(in, s, len, hash, NULL, NULL);
}

int64_t st_intern_get_name(struct st_intern *in, const char *s, size_t len, uint64_t hash,
			   const char **name, bool *added)
{
	struct st_intern_req r = { .s = s, .len = len, .hash = hash };
	int err = st_intern_get_many(in, &r, 1);
	if (err)
		return err;
	if (name)
		*name = r.name;
	if (added && r.added)
		*added = true;
	return r.id;
}

int st_intern_get_many(struct st_intern *in, struct st_intern_req *r, size_t n)
{
	/* Acquire, before the table: pairs with the release bump after an
	 * insertion, so the lookups below see every name counted here, in
	 * this table or the one that replaced it (invariant 4). */
	uint64_t seen = atomic_load_explicit(&in->added, memory_order_acquire);
	const struct table *t = atomic_load_explicit(&in->tab, memory_order_acquire);
	/* Every slot first, then the lookups: their misses overlap. */
	if (n > 1)
		for (size_t k = 0; k < n; k++)
			__builtin_prefetch(&t->s[r[k].hash & t->mask]);
	size_t missing = 0;
	for (size_t k = 0; k < n; k++) {
		/* Refused before anything is inserted. */
		if (ST_UNLIKELY(r[k].len > ST_MAX_FRAME_LEN))
			return -ENAMETOOLONG;
		struct ent *e = lookup(t, r[k].s, r[k].len, r[k].hash);
		r[k].added = false;
		r[k].name = e ? e->name : NULL;
		if (e)
			r[k].id = e->id;
		else
			missing++;
	}
	if (!missing)
		return 0;

	/* The names not found, in order, under one lock. */
	int err = 0;
	pthread_mutex_lock(&in->lock);
	for (size_t k = 0; k < n && missing; k++) {
		if (r[k].name)
			continue;
		missing--;
		struct ent *e = NULL;
		/* Someone (or this call: the same name twice) inserted since
		 * the lookup: maybe this very name. */
		if (atomic_load_explicit(&in->added, memory_order_relaxed) != seen)
			e = lookup(atomic_load_explicit(&in->tab, memory_order_relaxed), r[k].s,
				   r[k].len, r[k].hash);
		if (!e) {
			e = insert_locked(in, r[k].s, r[k].len, r[k].hash, &err);
			if (!e)
				break;
			r[k].added = true;
		}
		r[k].id = e->id;
		r[k].name = e->name;
	}
	pthread_mutex_unlock(&in->lock);
	return err;
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
