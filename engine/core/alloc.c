/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - the one place the engine allocates.
 *
 * Every engine allocation goes through st_malloc/st_calloc/st_realloc so that
 * tests can make the N-th allocation fail (st_alloc_fail_after) and check that
 * failure is reported, counted and leaves the engine consistent.  The hot path
 * pays one relaxed load of a process-wide counter that is -1 in production.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "core.h"

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
