/* SPDX-License-Identifier: MIT */
/* intern.h - frame strings <-> ids (intern.c has the design). */
#ifndef ST_INTERN_H
#define ST_INTERN_H

#include "core.h"

struct st_intern;
struct st_intern *st_intern_create(void);
void st_intern_destroy(struct st_intern *in);
/* Lookup-or-insert; hash must be st_hash_bytes(s, len). */
int64_t st_intern_get(struct st_intern *in, const char *s, size_t len, uint64_t hash);
/* The same, also giving the name's interned copy (valid until destroy): a
 * caller caching it needs no st_intern_name() lookup through the id table;
 * *added (when not NULL) is set true when this call inserted the name and
 * left alone otherwise. */
int64_t st_intern_get_name(struct st_intern *in, const char *s, size_t len, uint64_t hash,
			   const char **name, bool *added);
/* Lookup-or-insert of n names at once (the writer's miss path): every
 * lookup first, lock-free, then the names not found, in order, under one
 * lock.  In: s, len, hash (st_hash_bytes); out: id, name (the interned
 * copy), added (this call inserted it).  0, or -ENAMETOOLONG (nothing
 * done), -ENOSPC or -ENOMEM: the names before the failing insertion have
 * their ids (name not NULL), the others may not. */
struct st_intern_req {
	const char *s;
	size_t len;
	uint64_t hash;
	const char *name;
	uint32_t id;
	bool added;
};
int st_intern_get_many(struct st_intern *in, struct st_intern_req *r, size_t n);
const char *st_intern_name(const struct st_intern *in, uint32_t id, size_t *len);
uint32_t st_intern_count(const struct st_intern *in);
/* True once some interned name holds '\n' or '\r'. */
bool st_intern_has_eol(const struct st_intern *in);
size_t st_intern_memory(const struct st_intern *in);
/* Byte-wise name order of two frame ids (shorter first on a common prefix). */
int st_intern_cmp(const struct st_intern *in, uint32_t a, uint32_t b);

#endif /* ST_INTERN_H */
