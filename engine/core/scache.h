/* SPDX-License-Identifier: MIT */
/*
 * scache.h - a writer's cache of whole string stacks (scache.c has the
 * design).  The hit path -- st_scache_hash() then st_scache_find() -- is
 * inline here: it runs once per string sample, and a call per frame (or a
 * libc memcmp per frame) was most of its cost.
 */
#ifndef ST_SCACHE_H
#define ST_SCACHE_H

#include "shard.h"

/* One writer's cache of whole string stacks (a sample given
 * as strings -> its ids and shard records; see scache.c).  The fields the
 * hit path reads come first, then the lengths and bytes it compares; the
 * ids, needed only to (re)create a shard record, come last. */
struct st_scent {
	uint32_t depth;
	uint32_t nbytes;
	/* The stack's record in up to two shard tables, each valid while that
	 * table's st_stab_epoch() equals epoch[k] (scache.c invariant 3). */
	uint64_t epoch[2];
	struct st_srec *rec[2];
	uint64_t id_hash; /* st_hash_bytes(ids): the stack's shard-table hash */
	/* uint32_t lens[depth]; char bytes[nbytes]; pad to 4;
	 * uint32_t ids[depth]; */
	uint32_t data[];
};

static inline const uint32_t *st_scent_lens(const struct st_scent *e)
{
	return e->data;
}

static inline const char *st_scent_bytes(const struct st_scent *e)
{
	return (const char *)(e->data + e->depth);
}

static inline const uint32_t *st_scent_ids(const struct st_scent *e)
{
	return e->data + e->depth + (e->nbytes + 3) / 4;
}

struct st_scache_chunk;
struct st_scache {
	size_t mask;  /* slots - 1 */
	size_t count; /* entries */
	struct st_hslot *slots;
	struct st_scache_chunk *chunks; /* in use, current first */
	struct st_scache_chunk *free_chunks;
	size_t arena_bytes;             /* all chunks, in use or free */
};

struct st_scache *st_scache_create(void);
void st_scache_destroy(struct st_scache *c);
/* Add a stack that st_scache_find() just missed; NULL when it is not cached
 * (too big, or no memory: the caller takes the uncached path). */
struct st_scent *st_scache_insert(struct st_scache *c, uint64_t hash, const char *const *frames,
				  const size_t *lens, size_t depth, const uint32_t *ids,
				  uint64_t id_hash);
void st_scache_reset(struct st_scache *c);
size_t st_scache_count(const struct st_scache *c);
size_t st_scache_memory(const struct st_scache *c);

/* ------------------------------------------------------------- hit path */

static inline uint64_t st_scache_fold(uint64_t a, uint64_t b)
{
	__uint128_t m = (__uint128_t)a * b;
	return (uint64_t)m ^ (uint64_t)(m >> 64);
}

static inline uint64_t st_scache_load64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t st_scache_load32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

#define ST_SCACHE_K0 0xa0761d6478bd642fULL
#define ST_SCACHE_K1 0xe7037ed1a0b428dbULL
#define ST_SCACHE_K2 0x8ebc6af09c88c6e3ULL

/*
 * The stack hash, and the length check of every frame in the same pass.
 * Only its spread matters (a collision costs a compare, never a wrong
 * answer), and it runs on every sample: per frame at most two (possibly
 * overlapping) word loads cover a name of up to 16 bytes, one multiply-fold
 * mixes them with the length, and the frames' folds -- independent of each
 * other, so they overlap -- are combined by rotate and xor (the rotation
 * keeps the order: "a;b" and "b;a" differ).  Longer names fold 16 bytes a
 * step.
 *
 * Returns 0 when some frame is longer than ST_MAX_FRAME_LEN (never for a
 * valid stack: a hash of 0 is made 1, which st_scache_find() and the slots'
 * "0 = empty" expect).
 */
static inline __attribute__((always_inline)) uint64_t
st_scache_hash(const char *const *frames, const size_t *lens, size_t depth)
{
	uint64_t h = ST_SCACHE_K0 ^ depth;
	for (size_t i = 0; i < depth; i++) {
		const unsigned char *p = (const unsigned char *)frames[i];
		size_t len = lens[i];
		uint64_t a, b;
		if (ST_LIKELY(len <= 16)) {
			if (len >= 8) {
				a = st_scache_load64(p);
				b = st_scache_load64(p + len - 8);
			} else if (len >= 4) {
				a = st_scache_load32(p);
				b = st_scache_load32(p + len - 4);
			} else if (len) {
				/* 1..3 bytes: these three are all of them. */
				a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len / 2] << 8) | p[len - 1];
				b = 0;
			} else {
				a = b = 0;
			}
		} else {
			if (ST_UNLIKELY(len > ST_MAX_FRAME_LEN))
				return 0;
			uint64_t m = ST_SCACHE_K2;
			for (size_t o = 0; o + 16 < len; o += 16)
				m = st_scache_fold(st_scache_load64(p + o) ^ ST_SCACHE_K1,
						   st_scache_load64(p + o + 8) ^ m);
			a = st_scache_load64(p + len - 16) ^ m;
			b = st_scache_load64(p + len - 8);
		}
		/* The length goes in too: "ab","c" and "a","bc" must differ. */
		uint64_t x = st_scache_fold(a ^ ST_SCACHE_K1 ^ len, b ^ ST_SCACHE_K2);
		h = ((h << 23) | (h >> 41)) ^ x;
	}
	h = st_scache_fold(h ^ ST_SCACHE_K0, h ^ ST_SCACHE_K1);
	return h ? h : 1;
}

/* len bytes at e and at p are equal: the hash's loads, compared. */
static inline bool st_scache_bytes_eq(const unsigned char *e, const unsigned char *p, size_t len)
{
	if (ST_LIKELY(len <= 16)) {
		if (len >= 8)
			return ((st_scache_load64(e) ^ st_scache_load64(p)) |
				(st_scache_load64(e + len - 8) ^ st_scache_load64(p + len - 8))) == 0;
		if (len >= 4)
			return ((st_scache_load32(e) ^ st_scache_load32(p)) |
				(st_scache_load32(e + len - 4) ^ st_scache_load32(p + len - 4))) == 0;
		/* l == 0 may come with p == NULL: no load then. */
		return !len || (e[0] == p[0] && e[len / 2] == p[len / 2] && e[len - 1] == p[len - 1]);
	}
	if (len > 64)
		return memcmp(e, p, len) == 0;
	uint64_t d = st_scache_load64(e + len - 8) ^ st_scache_load64(p + len - 8);
	for (size_t o = 0; o + 8 < len; o += 8)
		d |= st_scache_load64(e + o) ^ st_scache_load64(p + o);
	return d == 0;
}

static inline __attribute__((always_inline)) bool
st_scache_matches(const struct st_scent *e, const char *const *frames, const size_t *lens,
		  size_t depth)
{
	if (e->depth != depth)
		return false;
	const uint32_t *el = st_scent_lens(e);
	const unsigned char *p = (const unsigned char *)st_scent_bytes(e);
	for (size_t i = 0; i < depth; i++) {
		size_t l = lens[i];
		if (el[i] != l || !st_scache_bytes_eq(p, (const unsigned char *)frames[i], l))
			return false;
		p += l;
	}
	return true;
}

/* The entry whose bytes equal the stack (checked byte for byte), or NULL.
 * hash is st_scache_hash() of the stack (0 is taken as 1). */
static inline __attribute__((always_inline)) struct st_scent *
st_scache_find(const struct st_scache *c, uint64_t hash, const char *const *frames,
	       const size_t *lens, size_t depth)
{
	if (ST_UNLIKELY(!hash))
		hash = 1; /* as st_scache_hash() would: 0 marks an empty slot */
	size_t i = hash & c->mask;
	for (;;) {
		const struct st_hslot *s = &c->slots[i];
		if (ST_LIKELY(s->hash == hash) && ST_LIKELY(st_scache_matches(s->p, frames, lens, depth)))
			return s->p;
		if (!s->hash)
			return NULL;
		i = (i + 1) & c->mask;
	}
}

/*
 * Batched ingest (writer.c) overlaps the dependent misses of a group of
 * lookups: every slot first, then every entry the first probed slot names.
 * Pure hints, like st_stab_prefetch_*.
 */
static inline void st_scache_prefetch_slot(const struct st_scache *c, uint64_t hash)
{
	__builtin_prefetch(&c->slots[(hash ? hash : 1) & c->mask]);
}

static inline void st_scache_prefetch_ent(const struct st_scache *c, uint64_t hash)
{
	hash = hash ? hash : 1;
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

#endif /* ST_SCACHE_H */
