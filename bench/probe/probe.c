/* SPDX-License-Identifier: MIT */
/*
 * probe.c - narrow measurements behind the figures in docs/benchmarking.md
 * that the harness's end-to-end runs are too noisy to resolve.
 *
 *   shardtrie_probe flush
 *       hot workload, merger off: 60 rounds of (1/8 of the draws through one
 *       writer, then st_flush()), the mean st_flush() time of the last 50 --
 *       one fold of ~10 K known stacks plus one same-shape publish of the
 *       165 K-node trie.
 *   shardtrie_probe ingest [-t THREADS] [-m MERGE_MS] [-1] [-f]
 *       hot workload, THREADS pinned writers (default 1), each walking its
 *       draws 15 times with the batch API (-1: one call per sample); per
 *       pass the thread's CPU time per sample, median and minimum printed.
 *       The engine is warmed first (two passes, each flushed), so every
 *       timed pass is the steady state.  -m 10 runs the merger thread every
 *       10 ms (default 0: idle).  -f also times an XXH3 pass over the same
 *       draws (the harness's floor) after each pass, in the same thread.
 *
 * Thread CPU time, not wall time: on a shared guest it leaves out the time
 * the thread was not running, though not what others do to its caches.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "shardtrie.h"
#include "../util.h"
#include "../workload.h"

enum { PASSES = 15, MAXT = 64 };
static volatile uint64_t sink; /* keeps the floor's hashing */

static void ingest_range(const struct workload *w, struct st_writer *wr, const uint32_t *d,
			 size_t n, int one_call)
{
	struct st_sample buf[BENCH_BATCH];
	for (size_t i = 0; i < n; i += (one_call ? 1 : BENCH_BATCH)) {
		if (one_call) {
			const struct wl_stack *s = &w->stacks[d[i]];
			if (st_writer_ingest(wr, s->frames, s->depth, bench_one) == 0)
				continue;
		} else {
			size_t k = n - i < BENCH_BATCH ? n - i : BENCH_BATCH;
			bench_fill_batch(w, d + i, k, buf);
			if (st_writer_ingest_batch(wr, buf, k) == (long)k)
				continue;
		}
		fprintf(stderr, "probe: ingest failed\n");
		exit(1);
	}
}

static int probe_flush(void)
{
	struct workload w;
	if (wl_hot(&w, 32, 10000, 1.0, 1u << 20, 0x5eedf00dULL) || !wl_draws(&w, 0))
		return 2;
	struct st_engine *e = bench_engine(&w, 0);
	struct st_writer *wr = st_writer_open(e);
	if (!wr)
		return 2;
	size_t part = w.samples / 8;
	double sum = 0;
	int timed = 0;
	for (int round = 0; round < 60; round++) {
		ingest_range(&w, wr, w.draws[0] + (size_t)(round % 8) * part, part, 1);
		double a = bench_now();
		if (!st_flush(e))
			return 1;
		double b = bench_now();
		if (round >= 10) {
			sum += b - a;
			timed++;
		}
	}
	struct st_stats st = { .size = sizeof(st) };
	st_engine_stats(e, &st);
	printf("flush: mean %.3f ms over %d flushes; %zu nodes, snapshot %.1f B/node, "
	       "master %.1f B/node\n",
	       sum / timed * 1e3, timed, st.nodes, (double)st.mem_snapshot / (double)st.nodes,
	       (double)st.mem_master / (double)st.nodes);
	st_writer_close(wr);
	st_engine_destroy(e);
	return 0;
}

struct ingest_job {
	const struct workload *w;
	struct st_engine *e;
	pthread_barrier_t *bar;
	unsigned t;
	int one_call, with_floor;
	double eng[PASSES], flo[PASSES];
	uint64_t h;
};

static void *ingest_thread(void *arg)
{
	struct ingest_job *j = arg;
	bench_pin(j->t);
	struct st_writer *wr = st_writer_open(j->e);
	if (!wr)
		exit(2);
	const uint32_t *d = j->w->draws[j->t];
	size_t n = j->w->samples;
	for (int p = 0; p < 2; p++) { /* warm: trie and both tables exist */
		ingest_range(j->w, wr, d, n, j->one_call);
		pthread_barrier_wait(j->bar);
		if (j->t == 0 && !st_flush(j->e))
			exit(1);
		pthread_barrier_wait(j->bar);
	}
	for (int p = 0; p < PASSES; p++) {
		double a = bench_cpu();
		ingest_range(j->w, wr, d, n, j->one_call);
		double b = bench_cpu();
		j->eng[p] = (b - a) / (double)n * 1e9;
		if (j->with_floor) {
			for (size_t i = 0; i < n; i++) {
				const struct wl_stack *s = &j->w->stacks[d[i]];
				j->h += XXH3_64bits(s->frames, s->depth * sizeof(uint32_t)) + bench_one[0];
			}
			j->flo[p] = (bench_cpu() - b) / (double)n * 1e9;
		}
	}
	st_writer_close(wr);
	return NULL;
}

static int probe_ingest(unsigned nt, unsigned merge_ms, int one_call, int with_floor)
{
	static struct workload w;
	if (wl_hot(&w, 32, 10000, 1.0, 1u << 20, 0x5eedf00dULL))
		return 2;
	for (unsigned t = 0; t < nt; t++)
		if (!wl_draws(&w, t))
			return 2;
	struct st_engine *e = bench_engine(&w, merge_ms);
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, nt);
	static struct ingest_job jobs[MAXT];
	pthread_t tid[MAXT];
	for (unsigned t = 0; t < nt; t++) {
		jobs[t] = (struct ingest_job){ .w = &w, .e = e, .bar = &bar, .t = t,
					       .one_call = one_call, .with_floor = with_floor };
		if (pthread_create(&tid[t], NULL, ingest_thread, &jobs[t]))
			return 2;
	}
	for (unsigned t = 0; t < nt; t++)
		pthread_join(tid[t], NULL);
	/* Every sample must be in the profile: 2 warm + PASSES per thread. */
	if (!st_flush(e))
		return 1;
	struct st_snap *s = st_snap_acquire(e);
	uint64_t got = st_snap_total(s, ST_NODE_ROOT, 0);
	uint64_t want = (uint64_t)nt * w.samples * (2 + PASSES);
	st_snap_release(s);
	st_engine_destroy(e);
	printf("ingest: %u writer(s), %s, merger %s (period %u ms)\n", nt,
	       one_call ? "one call per sample" : "batch API (64 per call)",
	       merge_ms ? "on" : "idle", merge_ms);
	for (unsigned t = 0; t < nt; t++) {
		double eng = bench_median(jobs[t].eng, PASSES); /* sorts: [0] is the min */
		printf("  thread %u: %.1f ns/sample CPU (median of %d passes, min %.1f)", t, eng,
		       PASSES, jobs[t].eng[0]);
		if (with_floor) {
			double flo = bench_median(jobs[t].flo, PASSES);
			printf("; floor %.1f ns (min %.1f); ratio %.2f", flo, jobs[t].flo[0],
			       eng / flo);
		}
		printf("\n");
		sink += jobs[t].h;
	}
	if (got != want) {
		printf("LOST: root total %llu, want %llu\n", (unsigned long long)got,
		       (unsigned long long)want);
		return 1;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: shardtrie_probe flush\n"
			"       shardtrie_probe ingest [-t THREADS] [-m MERGE_MS] [-1] [-f]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "flush") == 0 && argc == 2)
		return probe_flush();
	if (strcmp(argv[1], "ingest") != 0)
		usage();
	unsigned nt = 1, merge_ms = 0;
	int one_call = 0, with_floor = 0;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
			nt = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "-m") == 0 && i + 1 < argc)
			merge_ms = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "-1") == 0)
			one_call = 1;
		else if (strcmp(argv[i], "-f") == 0)
			with_floor = 1;
		else
			usage();
	}
	if (nt < 1 || nt > MAXT)
		usage();
	return probe_ingest(nt, merge_ms, one_call, with_floor);
}
