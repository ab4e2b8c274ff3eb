/* SPDX-License-Identifier: MIT */
/*
 * util.h - small helpers shared by the harness (the files of bench/) and the probe
 * (bench/probe/probe.c): clocks, pinning, medians, the batch fill and an
 * engine for a workload.  Header-only, so that the probe needs no other
 * object than workload.o.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "shardtrie.h"
#include "workload.h"

/* Samples per call of the batch API, in the harness and the probe. */
enum { BENCH_BATCH = 64 };

/* Every sample carries the value 1 on its one metric (workload.h). */
static const uint64_t bench_one[1] = { 1 };

static inline double bench_clock(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Wall clock (monotonic), in seconds. */
static inline double bench_now(void)
{
	return bench_clock(CLOCK_MONOTONIC);
}

/* The calling thread's CPU time: robust to preemption. */
static inline double bench_cpu(void)
{
	return bench_clock(CLOCK_THREAD_CPUTIME_ID);
}

/* Pin the calling thread to CPU t mod (online CPUs). */
static inline void bench_pin(unsigned t)
{
	long nc = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(t % (unsigned)(nc > 0 ? nc : 1), &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static inline int bench_cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v in place; 0 when empty). */
static inline double bench_median(double *v, size_t n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), bench_cmp_dbl);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The p-quantile of v[0..n), nearest rank (sorts v in place; 0 when empty). */
static inline double bench_pct(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), bench_cmp_dbl);
	size_t k = (size_t)ceil(p * (double)n) - 1;
	return v[k < n ? k : n - 1];
}

/* The draws d[0..k) of W as one batch of id samples (k <= BENCH_BATCH). */
static inline void bench_fill_batch(const struct workload *W, const uint32_t *d, size_t k,
				    struct st_sample *buf)
{
	for (size_t x = 0; x < k; x++) {
		const struct wl_stack *s = &W->stacks[d[x]];
		buf[x].frames = s->frames;
		buf[x].depth = s->depth;
		buf[x].values = bench_one;
	}
}

/* The same as string samples (the frames' names). */
static inline void bench_fill_str_batch(const struct workload *W, const uint32_t *d, size_t k,
					struct st_str_sample *buf)
{
	for (size_t x = 0; x < k; x++) {
		const struct wl_stack *s = &W->stacks[d[x]];
		buf[x].frames = s->names;
		buf[x].lens = s->lens;
		buf[x].depth = s->depth;
		buf[x].values = bench_one;
	}
}

/* wl_engine(), or exit 2 (its message is on stderr). */
static inline struct st_engine *bench_engine(const struct workload *W, unsigned merge_ms)
{
	struct st_engine *e = wl_engine(W, merge_ms);
	if (!e)
		exit(2);
	return e;
}

/* Function-call and TLB-shootdown interrupts CPU 0 has taken (the first
 * column of /proc/interrupts' CAL and TLB lines): what another thread of
 * the process (munmap, madvise, mprotect) makes the writer's CPU do. */
static inline unsigned long long cpu0_ipis(void)
{
	FILE *f = fopen("/proc/interrupts", "r");
	char line[512];
	unsigned long long n = 0, v;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		const char *p = line + strspn(line, " ");
		if ((!strncmp(p, "CAL:", 4) || !strncmp(p, "TLB:", 4)) &&
		    sscanf(p + 4, "%llu", &v) == 1)
			n += v;
	}
	fclose(f);
	return n;
}

#endif
