/* SPDX-License-Identifier: MIT */
/*
 * scache.h - a writer's cache of whole string stacks (scache.c has the
 * design).  The hit path -- st_scache_key() then st_scache_find() -- is
 * inline here: it runs once per string sample, and a call per frame (or a
 * libc memcmp per frame, or a branch on each name's length class) was most
 * of its cost.
 */
#ifndef ST_SCACHE_H
#define ST_SCACHE_H

#include "shard.h"

/*
 * One writer's cache of whole string stacks (a sample given as strings ->
 * its ids and shard records; see scache.c).  A stack is kept as its key:
 * per frame the length and two words that hold every byte of a name of up
 * to 16 bytes (st_scache_key()), plus the bytes before the last 16 of
 * longer names.  The fields the hit path reads come first, then the key
 * it compares; the ids, needed only to (re)create a shard record, after.
 */
struct st_scent {
	uint32_t depth;
	uint32_t nbytes; /* long names' leading bytes (all but their last 16) */
	/* The stack's record in up to two shard tables, each valid while that
	 * table's st_stab_epoch() equals epoch[k] (scache.c invariant 3). */
	uint64_t epoch[2];
	struct st_srec *rec[2];
	uint64_t id_hash; /* st_hash_bytes(ids): the stack's shard-table hash */
	/* uint64_t words[2 * depth]; uint32_t lens[depth]; uint32_t ids[depth];
	 * char bytes[nbytes]; */
	uint64_t data[];
};

static inline const uint64_t *st_scent_words(const struct st_scent *e)
{
	return e->data;
}

static inline const uint32_t *st_scent_lens(const struct st_scent *e)
{
	return (const uint32_t *)(e->data + 2 * (size_t)e->depth);
}

static inline const uint32_t *st_scent_ids(const struct st_scent *e)
{
	return st_scent_lens(e) + e->depth;
}

static inline const char *st_scent_bytes(const struct st_scent *e)
{
	return (const char *)(st_scent_ids(e) + e->depth);
}

struct st_scache_chunk;
struct st_scache {
	size_t mask;  /* slots - 1 */
	size_t count; /* entries */
	struct st_hslot *slots;
	struct st_scache_chunk *chunks; /* in use, current first */
	struct st_scache_chunk *free_chunks;
	size_t arena_bytes;             /* all chunks, in use or free */
	uint64_t resets;                /* st_scache_reset() calls: entries
					   found before one are gone */
};

struct st_scache *st_scache_create(void);
void st_scache_destroy(struct st_scache *c);
/* Add a stack that st_scache_find() just missed (hash and kw from
 * st_scache_key()); NULL when it is not cached (too big, or no memory: the
 * caller takes the uncached path). */
struct st_scent *st_scache_insert(struct st_scache *c, uint64_t hash, const char *const *frames,
				  const size_t *lens, size_t depth, const uint64_t *kw,
				  const uint32_t *ids, uint64_t id_hash);
void st_scache_reset(struct st_scache *c);
size_t st_scache_count(const struct st_scache *c);
size_t st_scache_memory(const struct st_scache *c);

/* ------------------------------------------------------------- hit path */

static inline uint64_t st_scache_fold(uint64_t a, uint64_t b)
{
	__uint128_t m = (__uint128_t)a * b;
	return (uint64_t)m ^ (uint64_t)(m >> 64);
}


#define ST_SCACHE_K0 0xa0761d6478bd642fULL
#define ST_SCACHE_K1 0xe7037ed1a0b428dbULL
#define ST_SCACHE_K2 0x8ebc6af09c88c6e3ULL
#define ST_SCACHE_LONG 16 /* longer names keep their leading bytes apart */

/*
 * A stack's key and hash in one pass over its strings, every frame's length
 * checked in it.  Per frame two words go to kw[2i], kw[2i+1]:
 *   4..16 bytes: four 4-byte loads at 0, q, len-4, len-4-q (q = 4 when
 *                len >= 8, else 0) -- together every byte, no branch on
 *                the length class (a random mix of classes mispredicted);
 *   1..3 bytes:  bytes 0, len/2 and len-1, which are all of them;
 *   0 bytes:     zeros (the pointer may be NULL);
 *   longer:      the last 16 bytes; the leading ones are compared apart
 *                (st_scache_find) and folded into the hash 16 at a time.
 * With the length the two words name the frame's bytes exactly, so equal
 * lengths and words are equal names (for up to 16 bytes).
 *
 * The hash: only its spread matters (a collision costs a compare, never a
 * wrong answer).  Each frame's words and length are folded by one multiply
 * -- independent of the other frames', so they overlap -- and combined by
 * rotate and xor (the rotation keeps the order: "a;b" and "b;a" differ).
 *
 * *lmask gets bit i % 64 for each frame i longer than ST_SCACHE_LONG (0:
 * no long name), so that the compare of the long names' leading bytes
 * visits only those frames.  Returns 0 when some frame is longer than
 * ST_MAX_FRAME_LEN (never for a valid stack: a hash of 0 is made 1, for the
 * slots' "0 = empty").
 */
static inline __attribute__((always_inline)) uint64_t
st_scache_key(const char *const *frames, const size_t *lens, size_t depth, uint64_t *kw,
	      uint64_t *lmask)
{
	uint64_t h = ST_SCACHE_K0 ^ depth;
	uint64_t lm = 0;
	for (size_t i = 0; i < depth; i++) {
		const unsigned char *p = (const unsigned char *)frames[i];
		size_t len = lens[i];
		uint64_t a, b, m = ST_SCACHE_K2;
		if (ST_LIKELY(len - 4 <= 12)) {
			size_t q = (len >> 3) << 2;
			a = st_load32(p) | st_load32(p + q) << 32;
			b = st_load32(p + len - 4) | st_load32(p + len - 4 - q) << 32;
		} else if (len < 4) {
			a = len ? (uint64_t)p[0] | (uint64_t)p[len / 2] << 8 |
					  (uint64_t)p[len - 1] << 16
				: 0;
			b = 0;
		} else {
			if (ST_UNLIKELY(len > ST_MAX_FRAME_LEN))
				return 0;
			lm |= (uint64_t)1 << (i & 63);
			for (size_t o = 0; o + 16 < len; o += 16)
				m = st_scache_fold(st_load64(p + o) ^ ST_SCACHE_K1,
						   st_load64(p + o + 8) ^ m);
			a = st_load64(p + len - 16);
			b = st_load64(p + len - 8);
		}
		kw[2 * i] = a;
		kw[2 * i + 1] = b;
		/* The length goes in too: "ab","c" and "a","bc" must differ. */
		uint64_t x = st_scache_fold(a ^ ST_SCACHE_K1 ^ len, b ^ m);
		h = ((h << 23) | (h >> 41)) ^ x;
	}
	*lmask = lm;
	h = st_scache_fold(h ^ ST_SCACHE_K0, h ^ ST_SCACHE_K1);
	return h ? h : 1;
}

/* A frame's leading bytes against the entry's next ones at *b (a frame of
 * up to ST_SCACHE_LONG bytes has none stored: equal); *b moves past them. */
static inline __attribute__((always_inline)) bool st_scent_long_eq(const char **b,
								   const char *frame, size_t len)
{
	if (len <= ST_SCACHE_LONG)
		return true;
	const size_t n = len - ST_SCACHE_LONG;
	if (!st_bytes_equal(*b, frame, n))
		return false;
	*b += n;
	return true;
}

/* The stack whose key (st_scache_key: kw, lmask) is that of e, name
 * for name: lengths, words, and the leading bytes of long names.  No branch
 * per frame; the leading bytes are compared for the frames lmask names
 * (any superset of the long ones will do: a frame of up to ST_SCACHE_LONG
 * bytes is skipped), every frame past the 64th looked at. */
static inline __attribute__((always_inline)) bool
st_scache_matches(const struct st_scent *e, const char *const *frames, const size_t *lens,
		  size_t depth, const uint64_t *kw, uint64_t lmask)
{
	if (e->depth != depth)
		return false;
	const uint64_t *ew = st_scent_words(e);
	const uint32_t *el = st_scent_lens(e);
	/* A frame's two words at once (a 16-byte vector op where the target
	 * has one), or-ed into one accumulator: no branch until the end. */
	typedef uint64_t v2u64 __attribute__((vector_size(16)));
	v2u64 dw = { 0, 0 };
	uint64_t dl = 0;
	for (size_t i = 0; i < depth; i++) {
		v2u64 a, b;
		memcpy(&a, ew + 2 * i, sizeof(a));
		memcpy(&b, kw + 2 * i, sizeof(b));
		dw |= a ^ b;
		dl |= el[i] ^ lens[i];
	}
	if (dl | dw[0] | dw[1])
		return false;
	if (ST_LIKELY(!lmask))
		return true;
	const char *b = st_scent_bytes(e);
	if (depth <= 64) {
		/* The long frames in order, by their bits (those past the
		 * depth cleared: a caller's mask may be all ones). */
		uint64_t m = depth == 64 ? lmask : lmask & (((uint64_t)1 << depth) - 1);
		while (m) {
			size_t i = (size_t)__builtin_ctzll(m);
			m &= m - 1;
			if (!st_scent_long_eq(&b, frames[i], lens[i]))
				return false;
		}
		return true;
	}
	for (size_t i = 0; i < depth; i++)
		if (!st_scent_long_eq(&b, frames[i], lens[i]))
			return false;
	return true;
}

/* The entry of the stack with this key (checked name for name, never by
 * hash alone), or NULL.  hash and lmask are st_scache_key()'s (a hash
 * of 0 is taken as 1). */
static inline __attribute__((always_inline)) struct st_scent *
st_scache_find(const struct st_scache *c, uint64_t hash, const char *const *frames,
	       const size_t *lens, size_t depth, const uint64_t *kw, uint64_t lmask)
{
	if (ST_UNLIKELY(!hash))
		hash = 1; /* as st_scache_key() would: 0 marks an empty slot */
	size_t i = hash & c->mask;
	for (;;) {
		const struct st_hslot *s = &c->slots[i];
		if (ST_LIKELY(s->hash == hash) &&
		    ST_LIKELY(st_scache_matches(s->p, frames, lens, depth, kw, lmask)))
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

/* The first and the last line of p[0 .. bytes) (bytes > 0): all of it
 * when it spans at most two lines.  No loop: a loop per span cost more
 * instructions than the misses it hid. */
static inline void st_prefetch_ends(const void *p, size_t bytes)
{
	__builtin_prefetch(p);
	__builtin_prefetch((const void *)((uintptr_t)p + bytes - 1));
}

/* The bytes of an entry of this depth that st_scache_matches() reads: the
 * header, the words and the lengths (not the ids, nor long names' heads). */
static inline size_t st_scent_key_bytes(size_t depth)
{
	return sizeof(struct st_scent) + depth * (2 * sizeof(uint64_t) + sizeof(uint32_t));
}

/*
 * The entry the first probed slot names, for a lookup of a stack of this
 * depth: the lines the compare will read.  The entry's own depth would
 * wait for the very miss being hidden, but an entry of another depth fails
 * on its first field anyway, so the query's depth places the last line
 * (entries are 8-aligned, not line-aligned: the fixed first three lines
 * missed the fourth of most entries of depth 6 to 10).  No loop: four
 * prefetches, the last one past the compare's bytes for a deeper stack.
 */
static inline void st_scache_prefetch_ent(const struct st_scache *c, uint64_t hash, size_t depth)
{
	hash = hash ? hash : 1;
	const struct st_hslot *s = &c->slots[hash & c->mask];
	if (s->hash != hash)
		return;
	const char *p = (const char *)s->p;
	__builtin_prefetch(p);
	__builtin_prefetch(p + ST_CACHELINE);
	__builtin_prefetch(p + 2 * ST_CACHELINE);
	__builtin_prefetch((const void *)((uintptr_t)p + st_scent_key_bytes(depth) - 1));
}

#endif /* ST_SCACHE_H */
