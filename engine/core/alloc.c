/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - the one place the engine allocates.
 *
 * Every engine allocation goes through st_malloc/st_calloc/st_realloc or
 * the region calls (region.h) so that tests can make the N-th allocation
 * fail (st_alloc_fail_after) and check that failure is reported, counted
 * and leaves the engine consistent.  The hot path pays one relaxed load of
 * a process-wide counter that is -1 in production.
 *
 * Regions.  The engine's big structures (slot and edge tables, arenas, node
 * arrays, snapshots) used to take one 4 KiB page fault per page on first
 * touch (~8.5 us each on a virtualised host: half of a cold run's CPU), a
 * second one where a fresh calloc'd page was read before written (the
 * shared zero page, then copy-on-write with a TLB shootdown), and realloc
 * copies as they grew.  A big region instead is its own anonymous mapping:
 *
 *   mmap(size + 2 MiB) -> trim to a 2 MiB-aligned [base, base + size)
 *   madvise(MADV_HUGEPAGE)  -> one fault per 2 MiB (THP "madvise" or
 *                              "always"; where THP is off or missing the
 *                              advice fails or is ignored: 4 KiB pages)
 *   grow: mremap in place, else mremap(MAYMOVE|FIXED) onto a fresh
 *         aligned reservation: page tables move, bytes do not, and huge
 *         pages stay huge (both ends 2 MiB-aligned)
 *   free: into a small cache of mapped regions (below), else munmap
 *
 * Invariants
 *   1. A region of `bytes` >= ST_REGION_BIG is a mapping of exactly
 *      st_region_size(bytes) bytes (a multiple of ST_REGION_HUGE) at a
 *      ST_REGION_HUGE-aligned address; a smaller one is a malloc block.
 *      So the size the caller passes back tells which, and how much to
 *      unmap.
 *   2. Fresh mappings are zero (the kernel's): nothing memsets them.
 *      Memory the caller asks zeroed that is not fresh (a small block, the
 *      slack of a mapping the cache handed out) is memset: every such byte
 *      is written before it is read, so it never maps the zero page.
 *   3. The cache only serves ST_REGION_UNINIT requests, of exactly the
 *      cached mapping's size, and holds at most CACHE_SLOTS mappings and
 *      CACHE_BYTES bytes: per-publish snapshots and recycled arena chunks
 *      then reuse faulted memory without a fault or a munmap (whose TLB
 *      shootdown interrupts every CPU running a writer).
 *   4. Each region call takes one tick of the failure-injection counter,
 *      whatever path it takes; a failed call changes nothing.
 *   5. region_mapped counts the bytes of every live or cached mapping.
 *   6. Nothing here waits for a lock: the cache's lock is only tried (a
 *      writer may allocate an arena chunk here); when it is busy the
 *      request maps afresh, or the freed mapping is unmapped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "region.h"

static _Atomic long fail_after = -1;

void st_alloc_fail_after(long n)
{
	atomic_store_explicit(&fail_after, n, memory_order_relaxed);
}

/* True when this allocation must fail.  Relaxed: the counter orders nothing. */
static bool should_fail(void)
{
	long v = atomic_load_explicit(&fail_after, memory_order_relaxed);
	if (ST_LIKELY(v < 0))
		return false;
	while (v > 0) {
		if (atomic_compare_exchange_weak_explicit(&fail_after, &v, v - 1,
							  memory_order_relaxed,
							  memory_order_relaxed))
			return false;
		if (v < 0)
			return false;
	}
	return true;
}

void *st_malloc(size_t n)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return malloc(n ? n : 1);
}

void *st_calloc(size_t nmemb, size_t n)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return calloc(nmemb ? nmemb : 1, n ? n : 1);
}

void *st_realloc(void *p, size_t n)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, n ? n : 1);
}

void st_free(void *p)
{
	free(p);
}

char *st_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = st_malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

int st_grow(void *p, size_t *cap, size_t need, size_t size, size_t min_cap)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap : (min_cap ? min_cap : 1);
	while (nc < need) {
		if (nc > SIZE_MAX / 2)
			return -ENOMEM;
		nc *= 2;
	}
	if (size && nc > SIZE_MAX / size)
		return -ENOMEM;
	void **pp = p;
	void *q = st_realloc(*pp, nc * size);
	if (!q)
		return -ENOMEM;
	*pp = q;
	*cap = nc;
	return 0;
}

/* ------------------------------------------------------------ regions */

#define CACHE_SLOTS 8
#define CACHE_BYTES ((size_t)64 << 20)

static _Atomic size_t region_mapped;

/* Freed mappings kept for reuse (invariant 3), oldest first. */
static struct {
	pthread_mutex_t lock;
	size_t n, bytes;
	struct {
		void *p;
		size_t size;
	} e[CACHE_SLOTS];
} cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

size_t st_region_size(size_t bytes)
{
	if (bytes < ST_REGION_BIG)
		return bytes;
	if (bytes > SIZE_MAX - ST_REGION_HUGE)
		return SIZE_MAX; /* cannot be mapped: alloc fails */
	return (bytes + ST_REGION_HUGE - 1) & ~(ST_REGION_HUGE - 1);
}

size_t st_region_mapped(void)
{
	return atomic_load_explicit(&region_mapped, memory_order_relaxed);
}

static void unmap(void *p, size_t size)
{
	munmap(p, size);
	atomic_fetch_sub_explicit(&region_mapped, size, memory_order_relaxed);
}

/* A fresh, zero, ST_REGION_HUGE-aligned mapping of size bytes (a multiple
 * of ST_REGION_HUGE), advised to use huge pages; NULL on failure. */
static void *map_aligned(size_t size)
{
	if (size == SIZE_MAX)
		return NULL;
	size_t span = size + ST_REGION_HUGE;
	char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	char *p = (char *)(((uintptr_t)raw + ST_REGION_HUGE - 1) & ~(uintptr_t)(ST_REGION_HUGE - 1));
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	if (raw + span > p + size)
		munmap(p + size, (size_t)(raw + span - (p + size)));
	/* EINVAL without THP in the kernel: 4 KiB pages, still correct. */
	madvise(p, size, MADV_HUGEPAGE);
	atomic_fetch_add_explicit(&region_mapped, size, memory_order_relaxed);
	return p;
}

/* Fault [p, p + n) of fresh (zero) memory in by writing it. */
static void prefault(char *p, size_t n)
{
	if (!n)
		return;
#ifdef MADV_POPULATE_WRITE
	if (madvise(p, n, MADV_POPULATE_WRITE) == 0)
		return;
#endif
	/* Older kernels: store a zero into every page (the memory is zero). */
	for (size_t o = 0; o < n; o += 4096)
		((volatile char *)p)[o] = 0;
}

static void *cache_take(size_t size)
{
	void *p = NULL;
	/* Never wait for it: a writer growing its arena may be here while the
	 * merger frees a snapshot (invariant 6).  Busy: map afresh. */
	if (pthread_mutex_trylock(&cache.lock))
		return NULL;
	for (size_t i = cache.n; i-- > 0;) { /* newest first: warmest */
		if (cache.e[i].size != size)
			continue;
		p = cache.e[i].p;
		cache.bytes -= size;
		memmove(&cache.e[i], &cache.e[i + 1], (cache.n - i - 1) * sizeof(cache.e[0]));
		cache.n--;
		break;
	}
	pthread_mutex_unlock(&cache.lock);
	return p;
}

/* Keep mapping p of size bytes for reuse, unmapping the oldest entries
 * when over the bounds (outside the lock). */
static void cache_put(void *p, size_t size)
{
	void *drop[CACHE_SLOTS + 1];
	size_t dsize[CACHE_SLOTS + 1], nd = 0;
	if (pthread_mutex_trylock(&cache.lock)) { /* busy: not kept (invariant 6) */
		unmap(p, size);
		return;
	}
	if (size > CACHE_BYTES) {
		drop[nd] = p;
		dsize[nd++] = size;
	} else {
		while (cache.n == CACHE_SLOTS || cache.bytes + size > CACHE_BYTES) {
			drop[nd] = cache.e[0].p;
			dsize[nd++] = cache.e[0].size;
			cache.bytes -= cache.e[0].size;
			memmove(&cache.e[0], &cache.e[1], (cache.n - 1) * sizeof(cache.e[0]));
			cache.n--;
		}
		cache.e[cache.n].p = p;
		cache.e[cache.n++].size = size;
		cache.bytes += size;
	}
	pthread_mutex_unlock(&cache.lock);
	for (size_t i = 0; i < nd; i++)
		unmap(drop[i], dsize[i]);
}

/* A big region of mapped size `size` for `bytes` (no failure tick). */
static void *big_alloc(size_t bytes, size_t size, unsigned flags)
{
	char *p;
	if ((flags & ST_REGION_UNINIT) && (p = cache_take(size)))
		return p;
	p = map_aligned(size);
	if (p && (flags & ST_REGION_PREFAULT))
		prefault(p, bytes);
	return p;
}

void *st_region_alloc(size_t bytes, unsigned flags)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	void *p;
	if (bytes < ST_REGION_BIG) {
		/* A malloc block may be recycled memory: zero it by writing
		 * (never calloc, which may hand out untouched pages that the
		 * first probe would read: the zero page, see invariant 2). */
		p = malloc(bytes ? bytes : 1);
		if (p && !(flags & ST_REGION_UNINIT))
			memset(p, 0, bytes);
	} else {
		p = big_alloc(bytes, st_region_size(bytes), flags);
	}
	if (!p)
		errno = ENOMEM;
	return p;
}

void st_region_free(void *p, size_t bytes)
{
	if (!p)
		return;
	if (bytes < ST_REGION_BIG)
		free(p);
	else
		cache_put(p, st_region_size(bytes));
}

/* Grow a big mapping of osize bytes to nsize (both big): in place when the
 * address space after it is free, else moved onto a fresh aligned
 * reservation.  The new part is fresh (zero).  NULL on failure. */
static void *big_grow(char *p, size_t osize, size_t nsize)
{
	char *q = mremap(p, osize, nsize, 0);
	if (q == MAP_FAILED) {
		char *dst = map_aligned(nsize);
		if (!dst)
			return NULL;
		/* Replaces the reservation: it is not counted twice. */
		q = mremap(p, osize, nsize, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
		if (q == MAP_FAILED) {
			unmap(dst, nsize);
			return NULL;
		}
		atomic_fetch_sub_explicit(&region_mapped, nsize, memory_order_relaxed);
	}
	madvise(q, nsize, MADV_HUGEPAGE);
	atomic_fetch_add_explicit(&region_mapped, nsize - osize, memory_order_relaxed);
	return q;
}

void *st_region_grow(void *p, size_t old_bytes, size_t new_bytes, unsigned flags)
{
	if (!p)
		return st_region_alloc(new_bytes, flags);
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	const size_t osize = st_region_size(old_bytes), nsize = st_region_size(new_bytes);
	const bool zero = !(flags & ST_REGION_UNINIT);
	char *q;
	if (old_bytes < ST_REGION_BIG && new_bytes < ST_REGION_BIG) {
		q = realloc(p, new_bytes ? new_bytes : 1);
		if (q && zero && new_bytes > old_bytes)
			memset(q + old_bytes, 0, new_bytes - old_bytes);
	} else if (old_bytes >= ST_REGION_BIG && new_bytes >= ST_REGION_BIG) {
		/* Bytes past old_bytes inside the old mapping may have been
		 * written (a cached mapping's slack): zero them by writing. */
		size_t keep = new_bytes < osize ? new_bytes : osize;
		if (zero && keep > old_bytes)
			memset((char *)p + old_bytes, 0, keep - old_bytes);
		if (nsize == osize) {
			q = p;
		} else if (nsize < osize) {
			munmap((char *)p + nsize, osize - nsize);
			atomic_fetch_sub_explicit(&region_mapped, osize - nsize,
						  memory_order_relaxed);
			q = p;
		} else {
			q = big_grow(p, osize, nsize);
			if (q && (flags & ST_REGION_PREFAULT))
				prefault(q + osize, new_bytes - osize);
		}
	} else {
		/* Across the threshold: a new region and one copy. */
		q = new_bytes < ST_REGION_BIG ? malloc(new_bytes ? new_bytes : 1)
					      : big_alloc(new_bytes, nsize, flags);
		if (q) {
			size_t keep = old_bytes < new_bytes ? old_bytes : new_bytes;
			memcpy(q, p, keep);
			if (zero && new_bytes < ST_REGION_BIG && new_bytes > keep)
				memset(q + keep, 0, new_bytes - keep);
			st_region_free(p, old_bytes);
		}
	}
	if (!q)
		errno = ENOMEM;
	return q;
}
