/* SPDX-License-Identifier: MIT */
/*
 * mappings.h - the executable mappings of every process over time, for
 * `record cpu`: captured while the processes live (perf mapping records and
 * /proc snapshots), so that a sample of a process that has since exited still
 * resolves.  One store per run, shared by the consumer threads (mutex
 * inside); see mappings.c for the theory of operation.
 */
#ifndef ST_BPF_MAPPINGS_H
#define ST_BPF_MAPPINGS_H

#include <stdint.h>
#include <sys/types.h>

struct st_maps;

/* Where a user address was at a time: path (interned, valid until
 * st_maps_close()) and the file offset; or no file: module is "[vdso]" &
 * co. or "[unknown]" for an anonymous mapping (interned too); both NULL
 * when no executable mapping covered the address. */
struct st_uloc {
	const char *path;
	const char *module;
	uint64_t off;
};

/* Start tracking: one dummy perf event per online CPU (mmap2, comm, task
 * records, CLOCK_MONOTONIC time stamps).  nconsumers: the threads that will
 * call st_maps_resolve()/st_maps_tick() with an index below it.  NULL and
 * errno set on failure. */
struct st_maps *st_maps_open(unsigned nconsumers);
/* Read /proc/PID/maps now, as what pid had mapped before tracking began
 * (pid 0: every process).  Call after st_maps_open(), before the samples. */
void st_maps_snapshot(struct st_maps *m, pid_t pid);
/* Resolve n user addresses of process pid sampled at time_ns into out[].
 * Applies every mapping record written before time_ns first. */
void st_maps_resolve(struct st_maps *m, uint32_t pid, uint64_t time_ns, const uint64_t *addr,
		     unsigned n, struct st_uloc *out);
/* Consumer `cons` has finished one pass over its ring: lets the store free
 * what no pending sample can need, and drains the mapping records when
 * nobody has for a while.  Cheap; call after every pass. */
void st_maps_tick(struct st_maps *m, unsigned cons);

struct st_maps_stats {
	uint64_t records;  /* mapping records applied */
	uint64_t lost;     /* mapping records the kernel dropped (ring full) */
	uint64_t procfs;   /* processes read from /proc (snapshot or first sight) */
	uint64_t live;     /* processes held at the end (alive or pending) */
};
struct st_maps_stats st_maps_stats(struct st_maps *m);
/* After every consumer has stopped. */
void st_maps_close(struct st_maps *m);

#endif
