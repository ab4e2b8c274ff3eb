/* SPDX-License-Identifier: MIT */
/*
 * region_test.c - the big-region allocator (alloc.c, region.h) and the
 * engine on it.
 *
 * A big region is 2 MiB-aligned, zero, grown by mremap keeping its bytes,
 * served from the cache only when the caller does not need zeroes, and
 * prefaulted memory takes no fault at its first read or write (the zero
 * page is never mapped).  Failure injection reaches every path.  An engine
 * whose tables and arrays are big regions stays exact when allocations
 * fail in the middle of a fold.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "region.h"
#include "support/support.h"

#define MiB ((size_t)1 << 20)

static long minflt(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_minflt;
}

static bool aligned(const void *p)
{
	return ((uintptr_t)p & (ST_REGION_HUGE - 1)) == 0;
}

/* Every page's first byte (and the last byte) of [p, p + n) is zero. */
static bool zero_pages(const unsigned char *p, size_t n)
{
	for (size_t o = 0; o < n; o += 4096)
		if (p[o])
			return false;
	return !n || !p[n - 1];
}

Test(region, big_is_aligned_zero_and_counted)
{
	size_t m0 = st_region_mapped();
	unsigned char *p = st_region_alloc(3 * MiB, 0);
	cr_assert(p);
	cr_expect(aligned(p), "%p", (void *)p);
	cr_expect_eq(st_region_size(3 * MiB), 4 * MiB);
	cr_expect_eq(st_region_size(100), 100);
	cr_expect_eq(st_region_mapped(), m0 + 4 * MiB);
	cr_expect(zero_pages(p, 4 * MiB));
	unsigned char *s = st_region_alloc(1000, 0); /* small: a zeroed malloc block */
	cr_assert(s);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(s[i], 0);
	cr_expect_eq(st_region_mapped(), m0 + 4 * MiB);
	st_region_free(s, 1000);
	st_region_free(p, 3 * MiB);
	cr_expect_leq(st_region_mapped(), m0 + 4 * MiB); /* cached or unmapped */
}

Test(region, cache_serves_uninit_only)
{
	unsigned char *p = st_region_alloc(6 * MiB, ST_REGION_UNINIT);
	cr_assert(p);
	memset(p, 0xab, 6 * MiB);
	st_region_free(p, 6 * MiB);
	size_t m = st_region_mapped();
	/* Zero asked: never the dirty cached mapping. */
	unsigned char *z = st_region_alloc(6 * MiB, 0);
	cr_assert(z);
	cr_expect(zero_pages(z, 6 * MiB));
	cr_expect_eq(st_region_mapped(), m + 6 * MiB);
	/* Uninitialised asked: the cached one, no new mapping. */
	unsigned char *u = st_region_alloc(6 * MiB, ST_REGION_UNINIT);
	cr_assert(u);
	cr_expect_eq(u, p);
	cr_expect_eq(st_region_mapped(), m + 6 * MiB);
	/* Growing the cached one zeroes what it did not hold. */
	unsigned char *g = st_region_grow(u, 5 * MiB, 10 * MiB, 0);
	cr_assert(g);
	cr_expect_eq(g[5 * MiB - 1], 0xab);
	cr_expect(zero_pages(g + 5 * MiB, 5 * MiB));
	st_region_free(g, 10 * MiB);
	st_region_free(z, 6 * MiB);
}

Test(region, grow_keeps_bytes_and_alignment)
{
	/* small -> big -> bigger -> small */
	unsigned char *p = st_region_alloc(100000, 0);
	cr_assert(p);
	for (size_t i = 0; i < 100000; i++)
		p[i] = (unsigned char)(i * 7);
	p = st_region_grow(p, 100000, 5 * MiB, 0);
	cr_assert(p);
	cr_expect(aligned(p));
	for (size_t i = 0; i < 100000; i++)
		cr_assert_eq(p[i], (unsigned char)(i * 7), "at %zu", i);
	cr_expect(zero_pages(p + 100000, 5 * MiB - 100000));
	for (size_t i = 0; i < 5 * MiB; i += 4096)
		p[i] = (unsigned char)(i >> 12);
	/* Something mapped after it, so it may have to move. */
	void *block = st_region_alloc(2 * MiB, 0);
	unsigned char *q = st_region_grow(p, 5 * MiB, 64 * MiB, ST_REGION_PREFAULT);
	cr_assert(q);
	cr_expect(aligned(q));
	for (size_t i = 100000; i < 5 * MiB; i += 4096)
		if (i % 4096 == 0)
			cr_assert_eq(q[i], (unsigned char)(i >> 12), "at %zu", i);
	cr_expect(zero_pages(q + 6 * MiB, 58 * MiB));
	q = st_region_grow(q, 64 * MiB, 4096, 0);
	cr_assert(q);
	cr_expect_eq(q[0], 0);
	cr_expect_eq(q[4095], (unsigned char)(4095 * 7));
	st_region_free(q, 4096);
	st_region_free(block, 2 * MiB);
}

/* Read then write each page, as a hash probe would.  Not instrumented: a
 * sanitizer's shadow memory would fault too. */
__attribute__((no_sanitize_address, noinline)) static unsigned touch_pages(unsigned char *p,
									  size_t n)
{
	unsigned sum = 0;
	for (size_t o = 0; o < n; o += 4096) {
		sum += ((volatile unsigned char *)p)[o];
		((volatile unsigned char *)p)[o] = 1;
	}
	return sum;
}

/* The point of ST_REGION_PREFAULT: memory read before it is written takes
 * no fault then (without it: the zero page at the read, copy-on-write at
 * the write, per page). */
Test(region, prefault_means_no_fault_later)
{
	const size_t n = 16 * MiB;
	for (int pre = 1; pre >= 0; pre--) {
		unsigned char *p = st_region_alloc(n, pre ? ST_REGION_PREFAULT : 0);
		cr_assert(p);
		long f0 = minflt();
		unsigned sum = touch_pages(p, n);
		long faults = minflt() - f0;
		cr_expect_eq(sum, 0);
		if (pre)
			cr_expect_eq(faults, 0, "prefaulted region took %ld faults", faults);
		else
			cr_expect_gt(faults, 0, "a fresh region must fault (the test can fail)");
		st_region_free(p, n);
	}
}

/* Where THP is available for madvised memory, a prefaulted big region is
 * (mostly) huge pages. */
Test(region, big_pages_where_thp_allows)
{
	char *en = ts_read_file("/sys/kernel/mm/transparent_hugepage/enabled", NULL);
	if (!en || (!strstr(en, "[always]") && !strstr(en, "[madvise]"))) {
		free(en);
		cr_skip_test("transparent huge pages are off here: regions use 4 KiB pages");
	}
	free(en);
	const size_t n = 8 * MiB;
	unsigned char *p = st_region_alloc(n, ST_REGION_PREFAULT);
	cr_assert(p);
	FILE *f = fopen("/proc/self/smaps", "r");
	cr_assert(f);
	char line[512];
	bool in = false;
	long huge_kb = -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;
		if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = a <= (uintptr_t)p && (uintptr_t)p < b;
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %ld kB", &huge_kb) == 1)
			break;
	}
	fclose(f);
	/* At least one 2 MiB page: compaction may fail for some under load. */
	cr_expect_geq(huge_kb, 2048, "AnonHugePages %ld kB for an 8 MiB region", huge_kb);
	st_region_free(p, n);
}

Test(region, failure_injection_reaches_every_path)
{
	unsigned char *big = st_region_alloc(4 * MiB, 0), *small = st_region_alloc(64, 0);
	cr_assert(big && small);
	big[0] = small[0] = 42;
	size_t m = st_region_mapped();
	st_alloc_fail_after(0);
	errno = 0;
	cr_expect_null(st_region_alloc(10, 0));
	cr_expect_eq(errno, ENOMEM);
	cr_expect_null(st_region_alloc(8 * MiB, ST_REGION_UNINIT));
	cr_expect_null(st_region_grow(big, 4 * MiB, 16 * MiB, 0));
	cr_expect_null(st_region_grow(small, 64, 4 * MiB, 0));
	cr_expect_null(st_region_grow(small, 64, 128, 0));
	cr_expect_null(st_region_grow(NULL, 0, 4 * MiB, 0));
	cr_expect_eq(st_region_mapped(), m, "a failed call maps nothing");
	cr_expect_eq(big[0], 42);
	cr_expect_eq(small[0], 42);
	st_alloc_fail_after(1); /* one more succeeds, then failures */
	big = st_region_grow(big, 4 * MiB, 16 * MiB, 0);
	cr_assert(big);
	cr_expect_eq(big[0], 42);
	cr_expect_null(st_region_alloc(10, 0));
	st_alloc_fail_after(-1);
	st_region_free(big, 16 * MiB);
	st_region_free(small, 64);
}

/* Distinct stacks i = [a b c d] over 64 names: ~600 K master nodes, so the
 * slot table, arena, node arrays and edge table are all big regions. */
static void ingest_many(struct st_engine *e, struct st_writer *w, uint32_t n, const uint32_t *ids)
{
	for (uint32_t i = 0; i < n; i++) {
		uint32_t f[4] = { ids[i % 64], ids[(i / 64) % 64], ids[(i / 4096) % 64],
				  ids[(i / 262144) % 64] };
		cr_assert_eq(st_writer_ingest(w, f, 4, (uint64_t[]){ 1 }), 0);
	}
}

/* Allocation failures while big tables grow and the fold walks: the root
 * total is what was accepted minus what was counted dropped, and a flush
 * after the failures stops folds every sample that was kept. */
Test(region, engine_on_big_regions_survives_allocation_failure, .timeout = 120)
{
	const uint32_t n = 300000;
	for (long k = 0; k < 40; k += 13) {
		struct st_engine *e = ts_engine_no_merger(1);
		struct st_writer *w = st_writer_open(e);
		cr_assert(w);
		uint32_t ids[64];
		char nm[16];
		for (uint32_t i = 0; i < 64; i++) {
			int l = snprintf(nm, sizeof(nm), "fn%u", i);
			ids[i] = (uint32_t)st_intern(e, nm, (size_t)l);
		}
		ingest_many(e, w, n, ids);
		st_alloc_fail_after(k);
		st_flush(e);
		st_alloc_fail_after(-1);
		cr_assert_neq(st_flush(e), 0);
		struct st_stats st = { .size = sizeof(st) };
		st_engine_stats(e, &st);
		cr_expect_eq(st.ingested, n);
		cr_expect_eq(ts_root_total(e, 0), st.ingested - st.dropped,
			     "k %ld: total %llu ingested %llu dropped %llu", k,
			     (unsigned long long)ts_root_total(e, 0), (unsigned long long)st.ingested,
			     (unsigned long long)st.dropped);
		cr_expect_gt(st.mem_regions, 0);
		if (k == 0)
			cr_expect_gt(st.dropped, 0, "every fold allocation failed");
		/* Again, without failures: the same stacks fold exactly. */
		ingest_many(e, w, n, ids);
		st_flush(e);
		st_engine_stats(e, &st);
		cr_expect_eq(ts_root_total(e, 0), st.ingested - st.dropped);
		st_writer_close(w);
		st_engine_destroy(e);
	}
}
