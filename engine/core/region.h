/* SPDX-License-Identifier: MIT */
/*
 * region.h - the engine's big memory regions (alloc.c has the design):
 * shard slot tables and arenas, the master's node arrays and edge table,
 * snapshots, merge scratch.  A region of ST_REGION_BIG bytes or more is
 * its own 2 MiB-aligned anonymous mapping advised MADV_HUGEPAGE, grown
 * with mremap; a smaller one is an st_malloc block.  Either way it comes
 * from the same failure-injection counter as st_malloc.
 *
 * The caller remembers a region's size: grow and free take the size it was
 * allocated (or last grown) with.
 */
#ifndef ST_REGION_H
#define ST_REGION_H

#include <stddef.h>

#include "core.h"

#define ST_REGION_HUGE ((size_t)2 << 20) /* the big-page size and alignment */
#define ST_REGION_BIG ST_REGION_HUGE     /* from here on a region is a mapping */

enum {
	/* The memory may hold anything: the caller writes every byte before
	 * reading it.  Lets a big region come from the cache of freed ones
	 * (no fault, no munmap) and spares a small one its memset. */
	ST_REGION_UNINIT = 1u << 0,
	/* Fault the (fresh part of the) region in now, by writing: for
	 * memory whose first access may be a read (hash tables probed while
	 * filled, counters read-modify-written), which would otherwise map
	 * the shared zero page first and copy-on-write it at the first store
	 * (a second fault, a TLB shootdown, and 4 KiB pages). */
	ST_REGION_PREFAULT = 1u << 1,
};

/* `bytes` of memory, zero unless ST_REGION_UNINIT; NULL (errno ENOMEM) on
 * failure or injected failure. */
void *st_region_alloc(size_t bytes, unsigned flags);
/*
 * Grow (or shrink) region p of old_bytes to new_bytes, keeping its first
 * min(old, new) bytes; the bytes past old_bytes are zero (flags as for
 * st_region_alloc, except UNINIT, which only spares a small region's
 * memset).  A mapping is moved with mremap (page tables, not bytes).  p may
 * be NULL (old_bytes 0).  NULL on failure, p then unchanged and still
 * old_bytes.
 */
void *st_region_grow(void *p, size_t old_bytes, size_t new_bytes, unsigned flags);
void st_region_free(void *p, size_t bytes);
/* The bytes a region of `bytes` really holds (what it maps: a big region
 * is rounded up to the big-page size); callers may use all of them. */
size_t st_region_size(size_t bytes);
/*
 * The size to allocate for a region that grows (slot tables, arenas): bytes
 * itself while small, but a whole big region (at least ST_REGION_BIG) once
 * past ST_REGION_EARLY.  On the virtualised host measured, one 2 MiB
 * fault (~150 us) costs what ~13 4 KiB ones do (~12 us each, malloc'd
 * memory is faulted page by page), so memory that keeps growing takes its
 * big page early; the price is up to 2 MiB resident for a table that stops
 * growing just past 64 KiB.  Callers use all of what they get.
 */
#define ST_REGION_EARLY ((size_t)64 << 10)
static inline size_t st_region_early(size_t bytes)
{
	if (bytes <= ST_REGION_EARLY)
		return bytes;
	return st_region_size(bytes < ST_REGION_BIG ? ST_REGION_BIG : bytes);
}

/* Bytes mapped as big regions now, process-wide (the cache included). */
size_t st_region_mapped(void);

#endif /* ST_REGION_H */
