/* SPDX-License-Identifier: MIT */
/*
 * push_cost.c - the bench key for pushing (issue 18, docs/push.md): ingest
 * throughput of an engine with a pusher sending every interval (1 s) to a
 * local Pyroscope receiver (tests/support/pyroscope_rx.c, libmicrohttpd on
 * 127.0.0.1) against the same ingest without it.
 *
 *   writer threads: st_writer_ingest_batch() of a fixed set of distinct
 *                   stacks for SECONDS, samples counted
 *   push on:        push/ with --push-interval 1s (pprof, the default)
 *
 * Runs alternate off/on REPS times; the medians give the drop (target
 * <= 2 %).  Every "on" run also checks exactness: the values the receiver
 * accepted (st_push_stats.sent_value) equal the samples ingested.
 *
 * usage: push_cost [SECONDS [REPS [WRITERS [STACKS]]]]   (defaults 3 5 1 20000)
 * prints one line: PUSH_COST off=... on=... drop=...% (wall clock), the same
 * per writer CPU second (what a busy machine's noise leaves measurable),
 * the CPU the rest of the process used per second, pushes, exact=yes|no
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "push/push.h"
#include "support/pyroscope_rx.h"

#define DEPTH 12
#define BATCH 256

static unsigned nstacks = 20000;
static uint32_t *frames; /* nstacks * DEPTH frame ids */

struct writer {
	struct st_engine *e;
	atomic_int *stop;
	uint64_t samples;
	double cpu;       /* the writer thread's CPU seconds */
	unsigned seed;
	pthread_t tid;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *writer(void *arg)
{
	struct writer *w = arg;
	struct st_writer *sw = st_writer_open(w->e);
	struct st_sample s[BATCH];
	uint64_t one = 1;
	if (!sw)
		return NULL;
	while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
		for (unsigned i = 0; i < BATCH; i++) {
			unsigned k = (unsigned)rand_r(&w->seed) % nstacks;
			s[i] = (struct st_sample){ frames + (size_t)k * DEPTH, DEPTH, &one };
		}
		long n = st_writer_ingest_batch(sw, s, BATCH);
		if (n > 0)
			w->samples += (uint64_t)n;
	}
	st_writer_close(sw);
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	w->cpu = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	return NULL;
}

static double process_cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

struct rates {
	double wall;    /* samples per second */
	double per_cpu; /* samples per writer CPU second (less noisy on a busy machine) */
	double other;   /* CPU seconds per second outside the writers (merger, pusher, receiver) */
};

/* One run; with push, *pushes and *exact set. */
static struct rates run(double secs, unsigned nw, struct prx *rx, uint64_t *pushes, int *exact)
{
	struct st_options so;
	st_options_init(&so);
	struct st_engine *e = st_engine_create(&so);
	if (!e)
		exit(70);
	for (unsigned i = 0; i < 4096; i++) { /* frame ids 0..4095 */
		char name[32];
		int n = snprintf(name, sizeof(name), "func_%u", i);
		st_intern(e, name, (size_t)n);
	}
	struct st_push *p = NULL;
	char url[64];
	if (rx) {
		struct st_push_opts o;
		st_push_opts_init(&o);
		snprintf(url, sizeof(url), "http://127.0.0.1:%u", prx_port(rx));
		o.url = url;
		o.interval_ms = 1000;
		o.hostname = "bench";
		p = st_push_start(e, &o);
		if (!p)
			exit(70);
	}
	atomic_int stop = 0;
	struct writer w[64];
	double t0 = now_s(), c0 = process_cpu();
	for (unsigned i = 0; i < nw; i++) {
		w[i] = (struct writer){ .e = e, .stop = &stop, .seed = 7 + i };
		pthread_create(&w[i].tid, NULL, writer, &w[i]);
	}
	struct timespec ts = { (time_t)secs, (long)((secs - (time_t)secs) * 1e9) };
	nanosleep(&ts, NULL); /* the measured span, not a synchronisation */
	atomic_store(&stop, 1);
	uint64_t total = 0;
	double wcpu = 0;
	for (unsigned i = 0; i < nw; i++) {
		pthread_join(w[i].tid, NULL);
		total += w[i].samples;
		wcpu += w[i].cpu;
	}
	double span = now_s() - t0;
	struct rates rate = { (double)total / span, (double)total / wcpu,
			      (process_cpu() - c0 - wcpu) / span };
	if (p) {
		st_push_stop(p);
		struct st_push_stats st;
		st_push_get_stats(p, &st);
		*pushes += st.sent;
		*exact &= st.sent_value == total && !st.dropped && !st.unsent && !st.rejected;
		st_push_free(p);
	}
	st_engine_destroy(e);
	return rate;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 3;
	unsigned reps = argc > 2 ? (unsigned)atoi(argv[2]) : 5;
	unsigned nw = argc > 3 ? (unsigned)atoi(argv[3]) : 1;
	if (argc > 4)
		nstacks = (unsigned)atoi(argv[4]);
	if (secs <= 0 || !reps || reps > 64 || !nw || nw > 64 || !nstacks) {
		fprintf(stderr, "usage: push_cost [SECONDS [REPS [WRITERS [STACKS]]]]\n");
		return 64;
	}
	frames = malloc((size_t)nstacks * DEPTH * sizeof(*frames));
	unsigned seed = 1;
	for (size_t i = 0; i < (size_t)nstacks * DEPTH; i++)
		frames[i] = (uint32_t)rand_r(&seed) % 4096;
	struct prx *rx = prx_start(0);
	if (!rx) {
		fprintf(stderr, "push_cost: cannot start the receiver\n");
		return 70;
	}
	double off[64], on[64], offc[64], onc[64], offo[64], ono[64];
	uint64_t pushes = 0;
	int exact = 1;
	for (unsigned r = 0; r < reps; r++) {
		struct rates a = run(secs, nw, NULL, NULL, NULL);
		struct rates b = run(secs, nw, rx, &pushes, &exact);
		off[r] = a.wall, offc[r] = a.per_cpu, offo[r] = a.other;
		on[r] = b.wall, onc[r] = b.per_cpu, ono[r] = b.other;
		fprintf(stderr, "push_cost: rep %u: off %.2f M/s (%.2f M/cpu-s), on %.2f M/s (%.2f M/cpu-s)\n",
			r, a.wall / 1e6, a.per_cpu / 1e6, b.wall / 1e6, b.per_cpu / 1e6);
	}
	double *all[] = { off, on, offc, onc, offo, ono };
	for (size_t i = 0; i < 6; i++)
		qsort(all[i], reps, sizeof(double), cmp_double);
	double mo = off[reps / 2], mn = on[reps / 2], co = offc[reps / 2], cn = onc[reps / 2];
	printf("PUSH_COST off=%.3fM/s on=%.3fM/s drop=%.2f%% per_writer_cpu: off=%.3fM on=%.3fM "
	       "drop=%.2f%% other_cpu: off=%.3f on=%.3f writers=%u stacks=%u secs=%.1f reps=%u "
	       "pushes=%llu accepted=%zu exact=%s\n",
	       mo / 1e6, mn / 1e6, 100.0 * (mo - mn) / mo, co / 1e6, cn / 1e6,
	       100.0 * (co - cn) / co, offo[reps / 2], ono[reps / 2], nw, nstacks, secs, reps,
	       (unsigned long long)pushes, prx_accepted(rx), exact ? "yes" : "no");
	prx_stop(rx);
	free(frames);
	return exact ? 0 : 1;
}
