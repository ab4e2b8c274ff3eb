/* SPDX-License-Identifier: MIT */
/*
 * scache.c - a writer's stack cache: a whole sample given as strings ->
 * its frame ids and its shard records.
 *
 * st_writer_ingest_strs() would otherwise intern every frame of every sample
 * (a hash and a lookup per frame, each a likely cache miss once the names
 * outgrow the L2).  Samples repeat far more than frames are new, so the
 * writer first looks the whole stack up here, by one hash over its frames;
 * a hit is checked name for name against the stored key (a hash is never
 * trusted) and hands back the ids, their shard-table hash, and the stack's
 * record in the writer's current table when it is still valid.
 *
 *   slots (open addressing, linear probe, power of two, load <= 1/2)
 *   +------------+------------+-----+
 *   | hash | ent | hash | ent | ... |        hash 0 = empty slot
 *   +------------+------------+-----+
 *                   |
 *                   v  arena chunk (bump allocated, recycled on reset)
 *   [st_scent | words[2 depth] | lens[depth] | ids[depth] | long names' heads]
 *
 * A stack is stored as its key (scache.h, st_scache_key): per frame its
 * length and two words that hold all the bytes of a name of up to 16
 * bytes, or the last 16 of a longer one, whose leading bytes are kept too.
 * The lookup (key + hash, probe, compare) is inline in scache.h: one pass
 * over the caller's strings; the compare reads only the key just built and
 * the entry, with no branch per frame.
 *
 * Invariants
 *   1. Private to one writer (one thread at a time): nothing is atomic.
 *   2. An entry's hash, key, ids and bytes never change; ids stay valid for
 *      the engine's life (interned ids are never freed or reused).
 *   3. rec[k] may be dereferenced only while epoch[k] equals the epoch of
 *      the table it is used with (shard.c: every table clear takes a new,
 *      process-unique epoch, and records live until their table is cleared).
 *   4. Memory is bounded: at SCACHE_MAX_SLOTS slots or SCACHE_MAX_BYTES of
 *      arena the whole cache is emptied (st_scache_reset) and refills with
 *      the working set; an entry bigger than SCACHE_MAX_ENT is not cached.
 *
 * Memory (region.h).  A fresh engine fills the cache at the rate of first
 * sightings, so its memory is regions, as the shard table's: the slots are
 * prefaulted as they grow (probes read before they write), the arena
 * chunks grow from 64 KiB to one 2 MiB page each and are written entry by
 * entry; both take their big page early (st_region_early).  4 KiB faults
 * on malloc'd chunks and slot tables were ~1/4 of a first sighting's cost.
 */
#include <errno.h>

#include "region.h"
#include "scache.h"

#define INITIAL_SLOTS 1024u
#define SCACHE_MAX_SLOTS (1u << 19)              /* 256 Ki entries at load 1/2 */
#define SCACHE_MAX_BYTES (32u * 1024 * 1024)     /* arena */
#define SCACHE_MAX_ENT (16u * 1024)              /* one entry's bytes */
#define ARENA_CHUNK_MIN (64u * 1024)    /* the first chunk: a malloc block */
#define ARENA_CHUNK_MAX ST_REGION_HUGE   /* later ones: one big page each */

struct st_scache_chunk {
	struct st_scache_chunk *next;
	size_t size, used; /* usable bytes after the header */
	_Alignas(8) unsigned char mem[];
};

struct st_scache *st_scache_create(void)
{
	struct st_scache *c = st_calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->slots = st_region_alloc(st_hslots_bytes(INITIAL_SLOTS - 1), ST_REGION_PREFAULT);
	if (!c->slots) {
		st_free(c);
		return NULL;
	}
	c->mask = INITIAL_SLOTS - 1;
	return c;
}

static void free_chunks(struct st_scache_chunk *k)
{
	while (k) {
		struct st_scache_chunk *n = k->next;
		st_region_free(k, sizeof(*k) + k->size);
		k = n;
	}
}

void st_scache_destroy(struct st_scache *c)
{
	if (!c)
		return;
	free_chunks(c->chunks);
	free_chunks(c->free_chunks);
	st_region_free(c->slots, st_hslots_bytes(c->mask));
	st_free(c);
}

void st_scache_reset(struct st_scache *c)
{
	memset(c->slots, 0, st_hslots_bytes(c->mask));
	c->count = 0;
	c->resets++;
	/* Keep the chunks (bounded by SCACHE_MAX_BYTES) for the refill. */
	while (c->chunks) {
		struct st_scache_chunk *k = c->chunks;
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
	return sizeof(*c) + st_hslots_bytes(c->mask) + c->arena_bytes;
}

static void *arena_alloc(struct st_scache *c, size_t n)
{
	struct st_scache_chunk *k = c->chunks;
	n = (n + 7) & ~(size_t)7;
	if (ST_LIKELY(k && k->size - k->used >= n)) {
		void *p = k->mem + k->used;
		k->used += n;
		return p;
	}
	/* A recycled chunk big enough (entries are <= SCACHE_MAX_ENT, every
	 * chunk holds one), else a new one. */
	struct st_scache_chunk **pp = &c->free_chunks;
	while (*pp && (*pp)->size < n)
		pp = &(*pp)->next;
	if (*pp) {
		k = *pp;
		*pp = k->next;
	} else {
		/* As big as the arena so far, from 64 KiB to one big page
		 * (taken early: st_region_early). */
		size_t want = c->arena_bytes < ARENA_CHUNK_MIN ? ARENA_CHUNK_MIN : c->arena_bytes;
		if (want > ARENA_CHUNK_MAX)
			want = ARENA_CHUNK_MAX;
		want = st_region_early(want); /* all of a mapping */
		if (c->arena_bytes + want > SCACHE_MAX_BYTES)
			return NULL; /* full: the caller resets */
		k = st_region_alloc(want, ST_REGION_UNINIT);
		if (!k)
			return NULL;
		k->size = want - sizeof(*k);
		c->arena_bytes += want;
	}
	k->used = n;
	k->next = c->chunks;
	c->chunks = k;
	return k->mem;
}

struct st_scent *st_scache_insert(struct st_scache *c, uint64_t hash, const char *const *frames,
				  const size_t *lens, size_t depth, const uint64_t *kw,
				  const uint32_t *ids, uint64_t id_hash)
{
	if (ST_UNLIKELY(!hash))
		hash = 1;
	size_t nbytes = 0;
	for (size_t i = 0; i < depth && nbytes <= SCACHE_MAX_ENT; i++)
		if (lens[i] > ST_SCACHE_LONG)
			nbytes += lens[i] - ST_SCACHE_LONG;
	if (depth > SCACHE_MAX_ENT || nbytes > SCACHE_MAX_ENT)
		return NULL;
	size_t size = sizeof(struct st_scent) +
		      depth * (2 * sizeof(uint64_t) + 2 * sizeof(uint32_t)) + nbytes;
	if (size > SCACHE_MAX_ENT)
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
	e->id_hash = id_hash;
	e->rec[0] = e->rec[1] = NULL;
	e->epoch[0] = e->epoch[1] = 0; /* no table has epoch 0 */
	e->depth = (uint32_t)depth;
	e->nbytes = (uint32_t)nbytes;
	if (depth) {
		memcpy(e->data, kw, 2 * depth * sizeof(*kw));
		memcpy((uint32_t *)st_scent_ids(e), ids, depth * sizeof(*ids));
	}
	uint32_t *el = (uint32_t *)st_scent_lens(e);
	char *b = (char *)st_scent_bytes(e);
	for (size_t i = 0; i < depth; i++) {
		el[i] = (uint32_t)lens[i];
		if (lens[i] > ST_SCACHE_LONG) {
			memcpy(b, frames[i], lens[i] - ST_SCACHE_LONG);
			b += lens[i] - ST_SCACHE_LONG;
		}
	}
	size_t i = hash & c->mask;
	while (c->slots[i].hash)
		i = (i + 1) & c->mask;
	c->slots[i].hash = hash;
	c->slots[i].p = e;
	c->count++;
	return e;
}
