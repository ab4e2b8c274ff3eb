/* SPDX-License-Identifier: MIT */
/* scache.h - a writer's cache of whole string stacks (scache.c). */
#ifndef ST_SCACHE_H
#define ST_SCACHE_H

#include "shard.h"

/* One writer's cache of whole string stacks (a sample given
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

#endif /* ST_SCACHE_H */
