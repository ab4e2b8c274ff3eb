/* SPDX-License-Identifier: MIT */
/*
 * core.h - what every file of libshardtrie's core shares: the public API,
 * branch hints and the cache line size.  Each concept has its own header
 * beside its .c file (intern.h, shard.h, scache.h, master.h, snapshot.h,
 * rcu.h, engine.h, region.h); nothing outside engine/core/ includes any of them
 * (tests/check_layout.sh enforces it).
 *
 *   engine.c    the engine's lifetime: create/destroy, options, stats
 *   writer.c    the writer hot path: ingest by ids or strings, batches,
 *               implicit per-thread writers
 *   merger.c    flip + grace period, fold, flush, reset, publish, the
 *               merger thread, the one-shot stack take
 *   shard.c     a shard's stack table: the single-writer ingest structure
 *   scache.c    a writer's cache of string stacks
 *   intern.c    frame strings <-> ids (RCU hash table, lock-free lookups)
 *   master.c    the merger's private mutable trie (+ node-cap folding)
 *   snapshot.c  immutable published tries, RCU publication, queries
 *   alloc.c     the one allocator (failure injection for tests), and the
 *               big regions (region.h): 2 MiB-aligned huge-page mappings
 *               grown by mremap, for every big table and array
 *   rcu.c       liburcu flavour choice and implicit thread registration
 *
 * Arrows run one way: engine -> merger -> snapshot/master -> shard/intern;
 * writer -> scache/shard/intern.  A snapshot is built from what the merger
 * hands it and never calls back into the engine.
 */
#ifndef ST_CORE_H
#define ST_CORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "shardtrie.h"

#define ST_CACHELINE 64
#define ST_LIKELY(x) __builtin_expect(!!(x), 1)
#define ST_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Unaligned loads and an inline byte compare (the writer's string caches
 * and the name table: no libc call on their hit paths). */
static inline uint64_t st_load64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t st_load32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* a[0..n) == b[0..n), inline: 8 bytes at a time, the tail by one
 * overlapping load (no libc call, no loop over single bytes). */
static inline bool st_bytes_equal(const void *a, const void *b, size_t n)
{
	const unsigned char *p = a, *q = b;
	if (n >= 8) {
		uint64_t d = 0;
		size_t i = 0;
		for (; i + 8 < n; i += 8)
			d |= st_load64(p + i) ^ st_load64(q + i);
		d |= st_load64(p + n - 8) ^ st_load64(q + n - 8);
		return !d;
	}
	if (n >= 4)
		return !((st_load32(p) ^ st_load32(q)) |
			 (st_load32(p + n - 4) ^ st_load32(q + n - 4)));
	uint64_t d = 0;
	for (size_t i = 0; i < n; i++)
		d |= (uint64_t)(p[i] ^ q[i]);
	return !d;
}

#endif /* ST_CORE_H */
