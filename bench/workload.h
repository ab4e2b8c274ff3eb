/* SPDX-License-Identifier: MIT */
/*
 * workload.h - the benchmark's sample sets, generated from fixed seeds.
 *
 * A workload is a set of DISTINCT stacks plus, per thread, a stream of draws
 * (indexes into the stack set).  Every variant (engine, mutex trie, floor)
 * reads the very same arrays, so they differ only in what they do per sample.
 *
 *   dict:    frame strings, local id i  (engine id = i + id_base)
 *   stacks:  stack k = frames[off[k] .. off[k] + depth[k])   (engine ids)
 *            names[off[k] ..], lens[off[k] ..]                (same frames
 *                                                              as strings)
 *   draws:   draws[t][0 .. samples) for thread t, seed = seed ^ t
 *
 * Every sample has the value 1 on its one metric, so the root total of a
 * snapshot must equal the number of draws ingested: that is the `lost=` check.
 */
#ifndef BENCH_WORKLOAD_H
#define BENCH_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#define WL_MAX_THREADS 256

struct wl_stack {
	const uint32_t *frames;     /* engine ids, root first */
	const char *const *names;   /* the same frames as strings */
	const size_t *lens;
	uint32_t depth;
};

struct workload {
	const char *name;
	const char *what;           /* one line: what it stands for */
	int by_strings;             /* engine ingests strings (interning timed) */
	uint64_t seed;
	/* Frame dictionary. */
	size_t ndict;
	char **dict;
	size_t *dict_len;
	uint32_t id_base;           /* engine id of dict[0] once pre-interned */
	/* Distinct stacks. */
	size_t nstacks;
	struct wl_stack *stacks;
	uint32_t *frames_store;
	const char **names_store;
	size_t *lens_store;
	size_t nframes_store;
	/* Draw streams. */
	size_t samples;             /* per thread */
	int draw_kind;              /* WL_DRAW_* */
	double *cdf;                /* zipf / weighted draws */
	uint32_t *draws[WL_MAX_THREADS];
	/* Expected shape (reported, not enforced). */
	uint64_t expect_nodes;
};

enum { WL_DRAW_CDF = 0, WL_DRAW_PERMUTATION = 1 };

/* splitmix64: tiny, seedable, good enough for workload shapes. */
static inline uint64_t wl_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Generators: 0 or -errno.  `samples` is per thread. */
int wl_hot(struct workload *w, unsigned depth, size_t nstacks, double zipf_s, size_t samples,
	   uint64_t seed);
int wl_cold(struct workload *w, size_t samples, uint64_t seed);
int wl_strings(struct workload *w, size_t npaths, double zipf_s, size_t samples, uint64_t seed);
/* Folded file ("a;b;c 12" lines): its stacks drawn in proportion to counts.
 * Prints FILE:LINE: reason for a malformed line and returns -EINVAL. */
int wl_replay(struct workload *w, const char *path, size_t samples, uint64_t seed);

/* A fresh engine (st_options_init's defaults, merger period merge_ms) with
 * the workload's frames interned so that its stacks' ids hold, except for a
 * workload given as strings, whose interning is part of what it times.
 * NULL after a message on stderr. */
struct st_engine;
struct st_options;
struct st_engine *wl_engine(const struct workload *w, unsigned merge_ms);
/* The same with the caller's options (from st_options_init()). */
struct st_engine *wl_engine_opts(const struct workload *w, const struct st_options *o);

/* Draw stream for thread t (made on first use, kept). */
const uint32_t *wl_draws(struct workload *w, unsigned t);
void wl_free(struct workload *w);

#endif
