/* SPDX-License-Identifier: MIT */
/*
 * spin.c - the bundled CPU workload for `record cpu` tests and the demo:
 * built with frame pointers, it runs burn_a() and burn_b(), the same work,
 * picking one at random each time with odds 3 : 1, so their designed shares
 * of the on-CPU samples are 75% and 25% (work, not wall time: other load
 * does not skew them).  Random order, not a fixed a-a-a-b cycle: a cycle
 * whose period is near a multiple of the sampling period aliases with it
 * and biases the shares by several points, differently from run to run.
 * usage: spin [SECONDS] (default 3)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One unit of work; a macro so each function keeps its own frame. */
#define BURN(n)                                                       \
	do {                                                          \
		unsigned long h_ = sink;                              \
		for (unsigned long i_ = 0; i_ < (n); i_++)            \
			h_ = (h_ ^ i_) * 1099511628211UL;             \
		sink = h_;                                            \
	} while (0)

#define UNIT 50000UL

__attribute__((noinline)) void burn_a(void);
__attribute__((noinline)) void burn_a(void)
{
	BURN(UNIT);
}

__attribute__((noinline)) void burn_b(void);
__attribute__((noinline)) void burn_b(void)
{
	BURN(UNIT);
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 3.0;
	double end = now_ms() + secs * 1e3;
	unsigned long x = 0x9e3779b97f4a7c15UL; /* xorshift64, fixed seed */
	while (now_ms() < end) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (x & 3)
			burn_a();
		else
			burn_b();
	}
	return 0;
}
