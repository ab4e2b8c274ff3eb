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

#endif /* ST_CORE_H */
