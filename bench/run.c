/* SPDX-License-Identifier: MIT */
/*
 * run.c - one run of one variant over one workload (the method's steps 1-2,
 * docs/benchmarking.md).
 *
 *   variant        per sample, over the workload's arrays
 *   engine         st_writer_ingest[_strs]
 *   engine_batch   st_writer_ingest[_strs]_batch (64 per call)
 *   mutex          st_ref_add (one mutex trie)
 *   floor          one XXH3 pass
 *
 * Threads are pinned (thread t on CPU t mod N), start on a barrier and time
 * only their ingest loop; a run's rate is all samples over the span from the
 * first start to the last end.  Afterwards st_flush() publishes a snapshot
 * whose root total must equal the samples generated, and st_engine_stats()
 * must report nothing dropped: any difference is `lost`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "bench.h"
#include "shardtrie_ref.h"
#include "util.h"

struct job {
	struct workload *w;
	enum variant v;
	unsigned nthreads;
	unsigned passes;            /* times each thread walks its draws */
	unsigned warm;              /* untimed passes first, each then flushed */
	struct st_engine *e;
	struct st_ref *ref;
	pthread_barrier_t bar;
	atomic_int *stop_flag;      /* set by the last writer to finish */
	_Atomic unsigned running;
};

struct thr {
	struct job *j;
	unsigned t;
	pthread_t tid;
	double t0, t1;
	double c0, c1;              /* thread CPU time: robust to preemption */
	uint64_t errors;
	uint64_t sink;
};

/* ------------------------------------------------------------ the variants */

static uint64_t loop_engine(struct workload *W, struct st_writer *w, const uint32_t *d, size_t n)
{
	uint64_t errs = 0;
	if (W->by_strings) {
		for (size_t i = 0; i < n; i++) {
			const struct wl_stack *s = &W->stacks[d[i]];
			errs += st_writer_ingest_strs(w, s->names, s->lens, s->depth, bench_one) != 0;
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			const struct wl_stack *s = &W->stacks[d[i]];
			errs += st_writer_ingest(w, s->frames, s->depth, bench_one) != 0;
		}
	}
	return errs;
}

/* Samples of a batch of k that a batch call returning r did not take. */
static uint64_t batch_short(long r, size_t k)
{
	return r == (long)k ? 0 : k - (r > 0 ? (size_t)r : 0);
}

static uint64_t loop_batch(struct workload *W, struct st_writer *w, const uint32_t *d, size_t n)
{
	struct st_sample buf[BENCH_BATCH];
	struct st_str_sample sb[BENCH_BATCH];
	uint64_t errs = 0;
	for (size_t i = 0; i < n; i += BENCH_BATCH) {
		size_t k = n - i < BENCH_BATCH ? n - i : BENCH_BATCH;
		long r;
		if (W->by_strings) {
			bench_fill_str_batch(W, d + i, k, sb);
			r = st_writer_ingest_strs_batch(w, sb, k);
		} else {
			bench_fill_batch(W, d + i, k, buf);
			r = st_writer_ingest_batch(w, buf, k);
		}
		errs += batch_short(r, k);
	}
	return errs;
}

static uint64_t loop_mutex(struct workload *W, struct st_ref *r, const uint32_t *d, size_t n)
{
	uint64_t errs = 0;
	for (size_t i = 0; i < n; i++) {
		const struct wl_stack *s = &W->stacks[d[i]];
		errs += st_ref_add(r, s->names, s->lens, s->depth, bench_one) != 0;
	}
	return errs;
}

/* The floor: read every sample once, as the engine must (its frames are
 * hashed with the same XXH3 the engine uses). */
static uint64_t loop_floor(struct workload *W, const uint32_t *d, size_t n)
{
	uint64_t h = 0;
	if (W->by_strings) {
		for (size_t i = 0; i < n; i++) {
			const struct wl_stack *s = &W->stacks[d[i]];
			for (uint32_t k = 0; k < s->depth; k++)
				h += XXH3_64bits(s->names[k], s->lens[k]);
			h += bench_one[0];
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			const struct wl_stack *s = &W->stacks[d[i]];
			h += XXH3_64bits(s->frames, s->depth * sizeof(uint32_t)) + bench_one[0];
		}
	}
	return h;
}

/* One walk of the thread's draws through its variant. */
static void one_pass(struct thr *th, struct st_writer *w)
{
	struct job *j = th->j;
	struct workload *W = j->w;
	const uint32_t *d = W->draws[th->t];
	switch (j->v) {
	case V_ENGINE:
		if (w)
			th->errors += loop_engine(W, w, d, W->samples);
		break;
	case V_BATCH:
		if (w)
			th->errors += loop_batch(W, w, d, W->samples);
		break;
	case V_MUTEX:
		th->errors += loop_mutex(W, j->ref, d, W->samples);
		break;
	case V_FLOOR:
		th->sink += loop_floor(W, d, W->samples);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------ threads */

static void *worker(void *arg)
{
	struct thr *th = arg;
	struct job *j = th->j;
	struct workload *W = j->w;
	bench_pin(th->t);
	struct st_writer *w = NULL;
	if (j->v == V_ENGINE || j->v == V_BATCH) {
		w = st_writer_open(j->e);
		if (!w)
			th->errors = W->samples * (j->passes + j->warm);
	}
	/* Warm-up (snapshot impact): the trie and both shard tables exist
	 * before the timed passes, so they time the steady state. */
	for (unsigned p = 0; p < j->warm; p++) {
		one_pass(th, w);
		pthread_barrier_wait(&j->bar);
		if (th->t == 0 && j->e && !st_flush(j->e))
			th->errors++;
		pthread_barrier_wait(&j->bar);
	}
	pthread_barrier_wait(&j->bar);
	th->c0 = bench_cpu();
	th->t0 = bench_now();
	for (unsigned p = 0; p < j->passes; p++)
		one_pass(th, w);
	th->t1 = bench_now();
	th->c1 = bench_cpu();
	if (w)
		st_writer_close(w);
	if (atomic_fetch_sub(&j->running, 1) == 1 && j->stop_flag)
		atomic_store(j->stop_flag, 1);
	return NULL;
}

static void *flusher_main(void *arg)
{
	struct flusher *f = arg;
	bench_pin(1);
	double next = bench_now();
	while (!atomic_load(f->stop)) {
		next += f->period_ms * 1e-3;
		double t = bench_now();
		if (next > t) {
			struct timespec ts = { 0, (long)((next - t) * 1e9) };
			nanosleep(&ts, NULL);
		}
		if (atomic_load(f->stop))
			break;
		double a = bench_now();
		st_flush(f->e);
		double b = bench_now();
		if (f->n < f->cap)
			f->lat[f->n++] = b - a;
	}
	return NULL;
}

static void die(const char *what)
{
	fprintf(stderr, "bench: %s\n", what);
	exit(2);
}

/* The job's draws, its engine or mutex trie, and its barrier. */
static void job_init(struct job *j, struct workload *W, enum variant v, unsigned nthreads,
		     unsigned merge_ms, unsigned warm, unsigned passes, atomic_int *stop)
{
	memset(j, 0, sizeof(*j));
	j->w = W;
	j->v = v;
	j->nthreads = nthreads;
	j->passes = passes;
	j->warm = warm;
	j->stop_flag = stop;
	atomic_store(&j->running, nthreads);
	for (unsigned t = 0; t < nthreads; t++)
		if (!wl_draws(W, t))
			die("out of memory for draws");
	if (v == V_ENGINE || v == V_BATCH)
		j->e = bench_engine(W, merge_ms);
	if (v == V_MUTEX) {
		j->ref = st_ref_create(1, 0);
		if (!j->ref)
			die("st_ref_create failed");
	}
	pthread_barrier_init(&j->bar, NULL, nthreads);
}

/* The flusher (when asked for), then the writers. */
static struct thr *start_threads(struct job *j, struct flusher *fl)
{
	struct thr *th = calloc(j->nthreads, sizeof(*th));
	if (!th)
		exit(2);
	if (fl) {
		fl->e = j->e;
		fl->stop = j->stop_flag;
		if (pthread_create(&fl->tid, NULL, flusher_main, fl))
			die("pthread_create failed");
	}
	for (unsigned t = 0; t < j->nthreads; t++) {
		th[t].j = j;
		th[t].t = t;
		if (pthread_create(&th[t].tid, NULL, worker, &th[t]))
			die("pthread_create failed");
	}
	return th;
}

/* Join every thread; res gets the span and the CPU time, *t0 the first
 * start.  Returns the ingest errors the writers counted. */
static uint64_t join_threads(struct job *j, struct thr *th, struct flusher *fl,
			     struct result *res, double *t0)
{
	double t1 = 0;
	uint64_t errors = 0;
	*t0 = 1e300;
	for (unsigned t = 0; t < j->nthreads; t++) {
		pthread_join(th[t].tid, NULL);
		*t0 = th[t].t0 < *t0 ? th[t].t0 : *t0;
		t1 = th[t].t1 > t1 ? th[t].t1 : t1;
		errors += th[t].errors;
		res->cpu_secs += th[t].c1 - th[t].c0;
	}
	if (fl)
		pthread_join(fl->tid, NULL);
	res->secs = t1 - *t0;
	return errors;
}

static uint64_t absdiff(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

uint64_t bench_ingest_pass(struct workload *W, struct st_writer *w, const uint32_t *d, size_t n,
			   bool batch)
{
	return batch ? loop_batch(W, w, d, n) : loop_engine(W, w, d, n);
}

uint64_t bench_engine_check(struct st_engine *e, uint64_t expected, struct st_stats *st)
{
	uint64_t bad = 0;
	if (!st_flush(e)) {
		fprintf(stderr, "bench: st_flush failed\n");
		bad++;
	}
	struct st_snap *s = st_snap_acquire(e);
	uint64_t got = st_snap_total(s, ST_NODE_ROOT, 0);
	st_snap_release(s);
	st->size = sizeof(*st);
	st_engine_stats(e, st);
	return bad + st->dropped + absdiff(got, expected) + absdiff(st->ingested, expected);
}

/* The engine's final flush (timed: the end-to-end rate) and its root
 * total; stats that disagree with `expected` add to *errors. */
static uint64_t engine_total(struct st_engine *e, double t0, uint64_t expected,
			     struct result *res, uint64_t *errors)
{
	double a = bench_now();
	if (!st_flush(e))
		fprintf(stderr, "bench: st_flush failed\n");
	double b = bench_now();
	res->flush_secs = b - a;
	res->e2e_secs = b - t0;
	struct st_snap *s = st_snap_acquire(e);
	uint64_t got = st_snap_total(s, ST_NODE_ROOT, 0);
	st_snap_release(s);
	res->st.size = sizeof(res->st);
	st_engine_stats(e, &res->st);
	*errors += res->st.dropped;
	if (res->st.ingested != expected - *errors)
		*errors += absdiff(res->st.ingested, expected);
	st_engine_destroy(e);
	return got;
}

/* The mutex trie's root total, read from its dump. */
static uint64_t ref_total(struct st_ref *r)
{
	st_ref_flush(r);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	uint64_t tot = 0;
	if (f) {
		st_ref_dump(r, f);
		fclose(f);
		/* First line is the root: "0 <hex name> <self> / <total>". */
		char *nl = buf ? strchr(buf, '\n') : NULL;
		if (nl)
			*nl = 0;
		char *slash = buf ? strstr(buf, " / ") : NULL;
		if (slash)
			tot = strtoull(slash + 3, NULL, 10);
		free(buf);
	}
	st_ref_destroy(r);
	return tot;
}

void run_warm(struct workload *W, enum variant v, unsigned nthreads, unsigned merge_ms,
	      unsigned warm, unsigned passes, struct flusher *fl, struct result *res)
{
	struct job j;
	atomic_int stop = 0;
	memset(res, 0, sizeof(*res));
	job_init(&j, W, v, nthreads, merge_ms, warm, passes, &stop);
	struct thr *th = start_threads(&j, fl);
	double t0;
	uint64_t errors = join_threads(&j, th, fl, res, &t0);
	uint64_t expected = (uint64_t)nthreads * W->samples * (passes + warm);
	res->samples = (uint64_t)nthreads * W->samples * passes;
	res->e2e_secs = res->secs;
	uint64_t got = expected;
	if (j.e)
		got = engine_total(j.e, t0, expected, res, &errors);
	else if (j.ref)
		got = ref_total(j.ref);
	res->lost = errors + absdiff(got, expected);
	pthread_barrier_destroy(&j.bar);
	free(th);
}

void run_once(struct workload *W, enum variant v, unsigned nthreads, unsigned merge_ms,
	      unsigned passes, struct flusher *fl, struct result *res)
{
	run_warm(W, v, nthreads, merge_ms, 0, passes, fl, res);
}

/* ------------------------------------------------------------ rates */

double mps(const struct result *r)
{
	return r->secs > 0 ? (double)r->samples / r->secs / 1e6 : 0;
}

/* Per CPU-second of the ingest threads: what one core does when it is not
 * preempted (the machine is shared; wall-clock rates are the quoted ones). */
double mps_cpu(const struct result *r)
{
	return r->cpu_secs > 0 ? (double)r->samples / r->cpu_secs / 1e6 : 0;
}

double mps_e2e(const struct result *r)
{
	return r->e2e_secs > 0 ? (double)r->samples / r->e2e_secs / 1e6 : 0;
}
