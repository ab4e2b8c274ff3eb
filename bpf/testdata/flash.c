/* SPDX-License-Identifier: MIT */
/*
 * flash.c - a short-lived CPU workload for the `record cpu` tests: burns
 * MS milliseconds of CPU time (not wall time: a loaded machine still gets
 * the same number of samples out of it) in flash_outer() -> flash_inner(),
 * then exits.  Built like spin.c, with a frame pointer in every function, so
 * every sample's user stack unwinds to main.
 * usage: flash [MS] (default 30)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;

static double cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

__attribute__((noinline)) void flash_inner(void);
__attribute__((noinline)) void flash_inner(void)
{
	unsigned long h = sink;
	for (unsigned long i = 0; i < 20000UL; i++)
		h = (h ^ i) * 1099511628211UL;
	sink = h;
}

__attribute__((noinline)) void flash_outer(double end);
__attribute__((noinline)) void flash_outer(double end)
{
	while (cpu_ms() < end)
		flash_inner();
}

int main(int argc, char **argv)
{
	double ms = argc > 1 ? atof(argv[1]) : 30.0;
	flash_outer(cpu_ms() + ms);
	return 0;
}
