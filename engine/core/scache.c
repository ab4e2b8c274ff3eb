/* SPDX-License-Identifier: MIT */
/*
 * scache.c - a writer's stack cache: a whole sample given as strings ->
 * its frame ids and its shard records.
 *
 * st_writer_ingest_strs() would otherwise intern every frame of every sample
 * (a hash and a lookup per frame, each a likely cache miss once the names
 * outgrow the L2).  Samples repeat far more than frames are new, so the
 * writer first looks the whole stack up here, by one hash over its frames;
 * a hit is checked byte for byte against the stored copy (a hash is never
 * trusted) and hands back the ids, their shard-table hash, and the stack's
 * record in the writer's current table when it is still valid.
 *
 *   slots (open addressing, linear probe, power of two, load <= 1/2)
 *   +------------+------------+-----+
 *   | hash | ent | hash | ent | ... |        hash 0 = empty slot
 *   +------------+------------+-----+
 *                   |
 *                   v  arena chunk (bump allocated, recycled on reset)
 *   [st_scent | ids[depth] | lens[depth] | name bytes ...] [st_scent ...]
 *
 * Invariants
 *   1. Private to one writer (one thread at a time): nothing is atomic.
 *   2. An entry's hash, ids, lens and bytes never change; ids stay valid for
 *      the engine's life (interned ids are never freed or reused).
 *   3. rec[k] may be dereferenced only while epoch[k] equals the epoch of
 *      the table it is used with (shard.c: every table clear takes a new,
 *      process-unique epoch, and records live until their table is cleared).
 *   4. Memory is bounded: at SCACHE_MAX_SLOTS slots or SCACHE_MAX_BYTES of
 *      arena the whole cache is emptied (st_scache_reset) and refills with
 *      the working set; an entry bigger than SCACHE_MAX_ENT is not cached.
 */
#include <errno.h>

#include "scache.h"

#define INITIAL_SLOTS 1024u
#define SCACHE_MAX_SLOTS (1u << 19)              /* 256 Ki entries at load 1/2 */
#define SCACHE_MAX_BYTES (32u * 1024 * 1024)     /* arena */
#define SCACHE_MAX_ENT (16u * 1024)              /* one entry's bytes */
#define ARENA_CHUNK (256u * 1024)

struct chunk {
	struct chunk *next;
	size_t used;
	_Alignas(8) unsigned char mem[ARENA_CHUNK];
};

struct st_scache {
	size_t mask;  /* slots - 1 */
	size_t count; /* entries */
	struct st_hslot *slots;
	struct chunk *chunks; /* in use, current first */
	struct chunk *free_chunks;
	size_t arena_bytes;   /* all chunks, in use or free */
};

struct st_scache *st_scache_create(void)
{
	struct st_scache *c = st_calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->slots = st_calloc(INITIAL_SLOTS, sizeof(*c->slots));
	if (!c->slots) {
		st_free(c);
		return NULL;
	}
	c->mask = INITIAL_SLOTS - 1;
	return c;
}

static void free_chunks(struct chunk *k)
{
	while (k) {
		struct chunk *n = k->next;
		st_free(k);
		k = n;
	}
}

void st_scache_destroy(struct st_scache *c)
{
	if (!c)
		return;
	free_chunks(c->chunks);
	free_chunks(c->free_chunks);
	st_free(c->slots);
	st_free(c);
}

void st_scache_reset(struct st_scache *c)
{
	memset(c->slots, 0, (c->mask + 1) * sizeof(*c->slots));
	c->count = 0;
	/* Keep the chunks (bounded by SCACHE_MAX_BYTES) for the refill. */
	while (c->chunks) {
		struct chunk *k = c->chunks;
		c->chunks = k->next;
		k->next = c->free_chunks;
		c->free_chunks = k;
	}
}

size_t st_scache_count(const struct st_scache *c)
{
	return c->count;
}

size_t st_scache_memory(const struct st_scache *c)
{
	return sizeof(*c) + (c->mask + 1) * sizeof(struct st_hslot) + c->arena_bytes;
}

/*
 * The stack hash.  Only its spread matters (a collision costs a compare,
 * never a wrong answer), and it runs on every sample, so it is a short
 * multiply-fold over each frame's bytes read as at most three overlapping
 * word loads per 16 bytes -- no call per frame.
 */
static inline uint64_t fold(uint64_t a, uint64_t b)
{
	__uint128_t m = (__uint128_t)a * b;
	return (uint64_t)m ^ (uint64_t)(m >> 64);
}

static inline uint64_t load64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t load32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

#define K0 0xa0761d6478bd642fULL
#define K1 0xe7037ed1a0b428dbULL
#define K2 0x8ebc6af09c88c6e3ULL

static inline uint64_t frame_hash(uint64_t h, const unsigned char *p, size_t len)
{
	uint64_t a, b;
	if (len <= 16) {
		if (len >= 8) {
			a = load64(p);
			b = load64(p + len - 8);
		} else if (len >= 4) {
			a = load32(p);
			b = load32(p + len - 4);
		} else if (len) {
			a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len / 2] << 8) | p[len - 1];
			b = 0;
		} else {
			a = b = 0;
		}
	} else {
		size_t i = 0;
		for (; i + 16 < len; i += 16)
			h = fold(load64(p + i) ^ K1, load64(p + i + 8) ^ h);
		a = load64(p + len - 16);
		b = load64(p + len - 8);
	}
	/* The length goes in too: "ab","c" and "a","bc" must differ. */
	return fold(a ^ K1 ^ len, b ^ h ^ K2);
}

uint64_t st_scache_hash(const char *const *frames, const size_t *lens, size_t depth)
{
	uint64_t h = K0 ^ depth;
	for (size_t i = 0; i < depth; i++)
		h = frame_hash(h, (const unsigned char *)frames[i], lens[i]);
	h = fold(h ^ K0, h ^ K1);
	return h ? h : 1; /* 0 marks an empty slot */
}

/*
 * Batched ingest (engine.c) overlaps the dependent misses of a group of
 * lookups: every slot first, then every entry the first probed slot names.
 * Pure hints, like st_stab_prefetch_*.
 */
void st_scache_prefetch_slot(const struct st_scache *c, uint64_t hash)
{
	__builtin_prefetch(&c->slots[(hash ? hash : 1) & c->mask]);
}

void st_scache_prefetch_ent(const struct st_scache *c, uint64_t hash)
{
	if (!hash)
		hash = 1;
	const struct st_hslot *s = &c->slots[hash & c->mask];
	if (s->hash != hash)
		return;
	/* Its size is in the entry itself: reading it would wait for the very
	 * miss being hidden, so take the first lines blindly (most entries are
	 * 100-200 bytes; a prefetch past the end does no harm). */
	const char *p = (const char *)s->p;
	__builtin_prefetch(p);
	__builtin_prefetch(p + ST_CACHELINE);
	__builtin_prefetch(p + 2 * ST_CACHELINE);
}

static inline const uint32_t *ent_lens(const struct st_scent *e)
{
	return st_scent_ids(e) + e->depth;
}

static inline const char *ent_bytes(const struct st_scent *e)
{
	return (const char *)(ent_lens(e) + e->depth);
}

static bool ent_matches(const struct st_scent *e, const char *const *frames, const size_t *lens,
			size_t depth)
{
	if (e->depth != depth)
		return false;
	const uint32_t *el = ent_lens(e);
	const char *p = ent_bytes(e);
	for (size_t i = 0; i < depth; i++) {
		size_t l = lens[i];
		/* l == 0 may come with frames[i] == NULL: memcmp must not see it. */
		if (el[i] != l || (l && memcmp(p, frames[i], l) != 0))
			return false;
		p += l;
	}
	return true;
}

struct st_scent *st_scache_find(struct st_scache *c, uint64_t hash, const char *const *frames,
				const size_t *lens, size_t depth)
{
	if (ST_UNLIKELY(!hash))
		hash = 1; /* as st_scache_hash() would: 0 marks an empty slot */
	size_t i = hash & c->mask;
	for (;;) {
		const struct st_hslot *s = &c->slots[i];
		if (!s->hash)
			return NULL;
		if (s->hash == hash && ent_matches(s->p, frames, lens, depth))
			return s->p;
		i = (i + 1) & c->mask;
	}
}

static void *arena_alloc(struct st_scache *c, size_t n)
{
	struct chunk *k = c->chunks;
	n = (n + 7) & ~(size_t)7;
	if (ST_LIKELY(k && ARENA_CHUNK - k->used >= n)) {
		void *p = k->mem + k->used;
		k->used += n;
		return p;
	}
	if (c->free_chunks) {
		k = c->free_chunks;
		c->free_chunks = k->next;
	} else {
		if (c->arena_bytes + sizeof(*k) > SCACHE_MAX_BYTES)
			return NULL; /* full: the caller resets */
		k = st_malloc(sizeof(*k));
		if (!k)
			return NULL;
		c->arena_bytes += sizeof(*k);
	}
	k->used = n;
	k->next = c->chunks;
	c->chunks = k;
	return k->mem;
}

struct st_scent *st_scache_insert(struct st_scache *c, uint64_t hash, const char *const *frames,
				  const size_t *lens, size_t depth, const uint32_t *ids,
				  uint64_t id_hash)
{
	if (ST_UNLIKELY(!hash))
		hash = 1;
	size_t nbytes = 0;
	for (size_t i = 0; i < depth && nbytes <= SCACHE_MAX_ENT; i++)
		nbytes += lens[i];
	size_t size = sizeof(struct st_scent) + depth * 2 * sizeof(uint32_t) + nbytes;
	if (nbytes > SCACHE_MAX_ENT || size > SCACHE_MAX_ENT)
		return NULL;
	if ((c->count + 1) * 2 > c->mask + 1) {
		/* Full at the largest size, or no memory to grow: start over
		 * (the working set refills it; nothing cached is load-bearing). */
		if (c->mask + 1 >= SCACHE_MAX_SLOTS || st_hslots_grow(&c->slots, &c->mask))
			st_scache_reset(c);
	}
	struct st_scent *e = arena_alloc(c, size);
	if (!e) {
		st_scache_reset(c);
		e = arena_alloc(c, size);
		if (!e)
			return NULL;
	}
	e->hash = hash;
	e->id_hash = id_hash;
	e->rec[0] = e->rec[1] = NULL;
	e->epoch[0] = e->epoch[1] = 0; /* no table has epoch 0 */
	e->depth = (uint32_t)depth;
	e->nbytes = (uint32_t)nbytes;
	uint32_t *p = e->data;
	if (depth)
		memcpy(p, ids, depth * sizeof(*ids));
	char *b = (char *)(p + 2 * depth);
	for (size_t i = 0; i < depth; i++) {
		p[depth + i] = (uint32_t)lens[i];
		if (lens[i])
			memcpy(b, frames[i], lens[i]);
		b += lens[i];
	}
	size_t i = hash & c->mask;
	while (c->slots[i].hash)
		i = (i + 1) & c->mask;
	c->slots[i].hash = hash;
	c->slots[i].p = e;
	c->count++;
	return e;
}
