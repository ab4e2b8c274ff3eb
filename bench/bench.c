/* SPDX-License-Identifier: MIT */
/*
 * bench.c - shardtrie's benchmark harness (plain C, no framework).
 *
 *   workloads (workload.c)        variants, same sample arrays
 *   ---------------------         ----------------------------------------
 *   hot, cold, strings, replay -> engine        st_writer_ingest[_strs]
 *                                 engine_batch  st_writer_ingest[_strs]_batch (64)
 *                                 mutex         st_ref_add (one mutex trie)
 *                                 floor         one XXH3 pass per sample
 *
 * Method
 *   1. Threads are pinned (thread t on CPU t mod N), start on a barrier, and
 *      time only their ingest loop; a run's rate is all samples over the
 *      span from the first start to the last end.
 *   2. Each engine run gets a fresh engine (frames pre-interned except for
 *      the strings workload); afterwards st_flush() publishes a snapshot whose
 *      root total must equal the samples generated, and st_engine_stats()
 *      must report nothing dropped: any difference is `lost` (exit 1).
 *   3. One untimed warm-up run per (workload, variant), then `reps`
 *      repetitions interleaved across thread counts and variants so that
 *      noise from other work on the machine spreads evenly; medians quoted.
 *   4. Snapshot impact: back-to-back pairs (merger every 10 ms, merger
 *      idle), each run warmed by two flushed passes so that it times the
 *      steady state; the median of the pairs' drops is quoted, with its IQR.
 *
 * Output: a table on stdout, build/bench/{runs.csv,results.csv,results.json,
 * hot_threads.svg}, and as the last line the SUMMARY (docs/benchmarking.md).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "shardtrie.h"
#include "shardtrie_ref.h"
#include "workload.h"

enum variant { V_ENGINE, V_BATCH, V_MUTEX, V_FLOOR, NVARIANTS };
static const char *const vname[NVARIANTS] = { "engine", "engine_batch", "mutex", "floor" };

static const uint64_t one_value[1] = { 1 };

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned ncpu;

static void pin_to(unsigned cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu % ncpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* ------------------------------------------------------------ one run */

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

static uint64_t loop_engine(struct workload *W, struct st_writer *w, const uint32_t *d, size_t n)
{
	uint64_t errs = 0;
	if (W->by_strings) {
		for (size_t i = 0; i < n; i++) {
			const struct wl_stack *s = &W->stacks[d[i]];
			errs += st_writer_ingest_strs(w, s->names, s->lens, s->depth, one_value) != 0;
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			const struct wl_stack *s = &W->stacks[d[i]];
			errs += st_writer_ingest(w, s->frames, s->depth, one_value) != 0;
		}
	}
	return errs;
}

static uint64_t loop_batch(struct workload *W, struct st_writer *w, const uint32_t *d, size_t n)
{
	enum { BATCH = 64 };
	struct st_sample buf[BATCH];
	uint64_t errs = 0;
	if (W->by_strings) {
		struct st_str_sample sb[BATCH];
		for (size_t i = 0; i < n; i += BATCH) {
			size_t k = n - i < BATCH ? n - i : BATCH;
			for (size_t x = 0; x < k; x++) {
				const struct wl_stack *s = &W->stacks[d[i + x]];
				sb[x].frames = s->names;
				sb[x].lens = s->lens;
				sb[x].depth = s->depth;
				sb[x].values = one_value;
			}
			long r = st_writer_ingest_strs_batch(w, sb, k);
			if (r != (long)k)
				errs += k - (r > 0 ? (size_t)r : 0);
		}
		return errs;
	}
	for (size_t i = 0; i < n; i += BATCH) {
		size_t k = n - i < BATCH ? n - i : BATCH;
		for (size_t x = 0; x < k; x++) {
			const struct wl_stack *s = &W->stacks[d[i + x]];
			buf[x].frames = s->frames;
			buf[x].depth = s->depth;
			buf[x].values = one_value;
		}
		long r = st_writer_ingest_batch(w, buf, k);
		if (r != (long)k)
			errs += k - (r > 0 ? (size_t)r : 0);
	}
	return errs;
}

static uint64_t loop_mutex(struct workload *W, struct st_ref *r, const uint32_t *d, size_t n)
{
	uint64_t errs = 0;
	for (size_t i = 0; i < n; i++) {
		const struct wl_stack *s = &W->stacks[d[i]];
		errs += st_ref_add(r, s->names, s->lens, s->depth, one_value) != 0;
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
			h += one_value[0];
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			const struct wl_stack *s = &W->stacks[d[i]];
			h += XXH3_64bits(s->frames, s->depth * sizeof(uint32_t)) + one_value[0];
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

static void *worker(void *arg)
{
	struct thr *th = arg;
	struct job *j = th->j;
	struct workload *W = j->w;
	pin_to(th->t);
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
	th->c0 = cpu_s();
	th->t0 = now_s();
	for (unsigned p = 0; p < j->passes; p++)
		one_pass(th, w);
	th->t1 = now_s();
	th->c1 = cpu_s();
	if (w)
		st_writer_close(w);
	if (atomic_fetch_sub(&j->running, 1) == 1 && j->stop_flag)
		atomic_store(j->stop_flag, 1);
	return NULL;
}

struct result {
	double secs;      /* ingest span */
	double e2e_secs;  /* ingest span + the final flush (engine) */
	double flush_secs;
	double cpu_secs;  /* summed over the ingest threads */
	uint64_t samples;
	uint64_t lost;
	struct st_stats st;
};

static double mps(const struct result *r)
{
	return r->secs > 0 ? (double)r->samples / r->secs / 1e6 : 0;
}

/* Per CPU-second of the ingest threads: what one core does when it is not
 * preempted (the machine is shared; wall-clock rates are the quoted ones). */
static double mps_cpu(const struct result *r)
{
	return r->cpu_secs > 0 ? (double)r->samples / r->cpu_secs / 1e6 : 0;
}

static double mps_e2e(const struct result *r)
{
	return r->e2e_secs > 0 ? (double)r->samples / r->e2e_secs / 1e6 : 0;
}

static uint64_t ref_root_total(struct st_ref *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return 0;
	st_ref_dump(r, f);
	fclose(f);
	/* First line is the root: "0 <hex name> <self> / <total>". */
	uint64_t tot = 0;
	char *nl = buf ? strchr(buf, '\n') : NULL;
	if (nl)
		*nl = 0;
	char *slash = buf ? strstr(buf, " / ") : NULL;
	if (slash)
		tot = strtoull(slash + 3, NULL, 10);
	free(buf);
	return tot;
}

static struct st_engine *engine_new(struct workload *W, unsigned merge_ms)
{
	struct st_engine *e = wl_engine(W, merge_ms);
	if (!e)
		exit(2);
	return e;
}

/* flusher: calls st_flush() every period_ms while writers run and records
 * each call's latency (merge + snapshot build + publish). */
struct flusher {
	struct st_engine *e;
	unsigned period_ms;
	atomic_int *stop;
	double *lat;
	size_t n, cap;
	pthread_t tid;
};

static void *flusher_main(void *arg)
{
	struct flusher *f = arg;
	pin_to(1);
	double next = now_s();
	while (!atomic_load(f->stop)) {
		next += f->period_ms * 1e-3;
		double t = now_s();
		if (next > t) {
			struct timespec ts = { 0, (long)((next - t) * 1e9) };
			nanosleep(&ts, NULL);
		}
		if (atomic_load(f->stop))
			break;
		double a = now_s();
		st_flush(f->e);
		double b = now_s();
		if (f->n < f->cap)
			f->lat[f->n++] = b - a;
	}
	return NULL;
}

/* Run workload W with variant v on nthreads threads.  merge_ms is the
 * engine's merger period; with flush_period_ms > 0 a pinned flusher thread
 * publishes on that period instead and records latencies into *fl. */
/* A run with `warm` untimed passes first (each followed by st_flush()):
 * the result's samples and times are the timed passes', its `lost` covers
 * everything ingested. */
static void run_warm(struct workload *W, enum variant v, unsigned nthreads, unsigned merge_ms,
		     unsigned warm, unsigned passes, struct flusher *fl, struct result *res)
{
	struct job j;
	memset(&j, 0, sizeof(j));
	memset(res, 0, sizeof(*res));
	j.w = W;
	j.v = v;
	j.nthreads = nthreads;
	j.passes = passes;
	j.warm = warm;
	atomic_int stop = 0;
	j.stop_flag = &stop;
	atomic_store(&j.running, nthreads);
	for (unsigned t = 0; t < nthreads; t++)
		if (!wl_draws(W, t)) {
			fprintf(stderr, "bench: out of memory for draws\n");
			exit(2);
		}
	if (v == V_ENGINE || v == V_BATCH)
		j.e = engine_new(W, merge_ms);
	if (v == V_MUTEX) {
		j.ref = st_ref_create(1, 0);
		if (!j.ref) {
			fprintf(stderr, "bench: st_ref_create failed\n");
			exit(2);
		}
	}
	pthread_barrier_init(&j.bar, NULL, nthreads);
	struct thr *th = calloc(nthreads, sizeof(*th));
	if (!th)
		exit(2);
	if (fl) {
		fl->e = j.e;
		fl->stop = &stop;
		if (pthread_create(&fl->tid, NULL, flusher_main, fl)) {
			fprintf(stderr, "bench: pthread_create failed\n");
			exit(2);
		}
	}
	for (unsigned t = 0; t < nthreads; t++) {
		th[t].j = &j;
		th[t].t = t;
		if (pthread_create(&th[t].tid, NULL, worker, &th[t])) {
			fprintf(stderr, "bench: pthread_create failed\n");
			exit(2);
		}
	}
	double t0 = 1e300, t1 = 0;
	uint64_t errors = 0;
	for (unsigned t = 0; t < nthreads; t++) {
		pthread_join(th[t].tid, NULL);
		t0 = th[t].t0 < t0 ? th[t].t0 : t0;
		t1 = th[t].t1 > t1 ? th[t].t1 : t1;
		errors += th[t].errors;
		res->cpu_secs += th[t].c1 - th[t].c0;
	}
	if (fl)
		pthread_join(fl->tid, NULL);
	uint64_t expected = (uint64_t)nthreads * W->samples * (passes + warm);
	res->samples = (uint64_t)nthreads * W->samples * passes;
	res->secs = t1 - t0;
	res->e2e_secs = res->secs;
	uint64_t got = expected;
	if (j.e) {
		double a = now_s();
		if (!st_flush(j.e))
			fprintf(stderr, "bench: st_flush failed\n");
		double b = now_s();
		res->flush_secs = b - a;
		res->e2e_secs = b - t0;
		struct st_snap *s = st_snap_acquire(j.e);
		got = st_snap_total(s, ST_NODE_ROOT, 0);
		st_snap_release(s);
		st_engine_stats(j.e, &res->st);
		errors += res->st.dropped;
		if (res->st.ingested != expected - errors)
			errors += res->st.ingested > expected ? res->st.ingested - expected
							     : expected - res->st.ingested;
		st_engine_destroy(j.e);
	} else if (j.ref) {
		st_ref_flush(j.ref);
		got = ref_root_total(j.ref);
		st_ref_destroy(j.ref);
	}
	res->lost = errors + (got > expected ? got - expected : expected - got);
	pthread_barrier_destroy(&j.bar);
	free(th);
}

static void run_once(struct workload *W, enum variant v, unsigned nthreads, unsigned merge_ms,
		     unsigned passes, struct flusher *fl, struct result *res)
{
	run_warm(W, v, nthreads, merge_ms, 0, passes, fl, res);
}

/* ------------------------------------------------------------ stats */

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_dbl);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double pct(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_dbl);
	size_t k = (size_t)ceil(p * (double)n) - 1;
	return v[k < n ? k : n - 1];
}

/* ------------------------------------------------------------ config */

static struct {
	int short_mode;
	unsigned reps;
	unsigned depth;
	size_t hot_samples, cold_samples, str_samples, mutex_div;
	const char *replay;
	const char *outdir;
	uint64_t seed;
	unsigned max_threads;
	const char *only;           /* profiling: run just this workload */
	const char *variant;        /* profiling: and just this variant */
} cfg = {
	.reps = 7,
	.depth = 32,
	.hot_samples = 4u << 20,
	.cold_samples = 1000000,
	.str_samples = 2u << 20,
	.mutex_div = 8,
	.outdir = "build/bench",
	.seed = 0x5eedf00dULL,
};

static FILE *runs_csv;
static uint64_t lost_total;

#define MAXT 64
struct cell {
	double v[64];
	size_t n;
	double e2e[64];
	double cpu[64];
};
/* cells[workload][variant][threads] */
enum { W_HOT, W_COLD, W_STRINGS, W_REPLAY, NWL };
static struct cell cells[NWL][NVARIANTS][MAXT + 1];
static const char *const wlname[NWL] = { "hot", "cold", "strings", "replay" };

/* One run into runs.csv, and into the scaling cells unless `kind` names
 * another purpose (warmup, snap, latency, memory: the rep column then
 * reads e.g. "snap3"). */
static void record(int wi, enum variant v, unsigned t, unsigned merge_ms, unsigned rep,
		   const struct result *r, const char *kind)
{
	lost_total += r->lost;
	fprintf(runs_csv, "%s,%s,%u,%u,%s%u,%" PRIu64 ",%.6f,%.6f,%.3f,%.3f,%.3f,%" PRIu64 "\n",
		wlname[wi], vname[v], t, merge_ms, kind ? kind : "", rep, r->samples, r->secs,
		r->e2e_secs, mps(r), mps_e2e(r), mps_cpu(r), r->lost);
	if (kind)
		return;
	struct cell *c = &cells[wi][v][t];
	if (c->n < 64) {
		c->e2e[c->n] = mps_e2e(r);
		c->cpu[c->n] = mps_cpu(r);
		c->v[c->n++] = mps(r);
	}
	if (r->lost)
		fprintf(stderr, "bench: LOST %" PRIu64 " samples in %s/%s/%ut\n", r->lost,
			wlname[wi], vname[v], t);
}

static double cell_med(int wi, enum variant v, unsigned t)
{
	struct cell *c = &cells[wi][v][t];
	double tmp[64];
	memcpy(tmp, c->v, c->n * sizeof(double));
	return median(tmp, c->n);
}

static double cell_med_cpu(int wi, enum variant v, unsigned t)
{
	struct cell *c = &cells[wi][v][t];
	double tmp[64];
	memcpy(tmp, c->cpu, c->n * sizeof(double));
	return median(tmp, c->n);
}

static double cell_med_e2e(int wi, enum variant v, unsigned t)
{
	struct cell *c = &cells[wi][v][t];
	double tmp[64];
	memcpy(tmp, c->e2e, c->n * sizeof(double));
	return median(tmp, c->n);
}

/* Thread counts: 1..N and 2N. */
static unsigned tcounts[MAXT];
static unsigned ntcounts;

/* --variant: run only that variant's cells (profiling). */
static bool variant_wanted(enum variant v)
{
	return !cfg.variant || strcmp(cfg.variant, vname[v]) == 0;
}

static void scaling(int wi, struct workload *W, const enum variant *vs, size_t nv,
		    unsigned max_t_for_wl)
{
	struct result r;
	if (cfg.only && strcmp(cfg.only, wlname[wi]) != 0)
		return;
	for (size_t k = 0; k < nv; k++) {
		if (!variant_wanted(vs[k]))
			continue;
		struct workload *ww = W;
		size_t saved = ww->samples;
		if (vs[k] == V_MUTEX)
			ww->samples = saved / cfg.mutex_div;
		run_once(ww, vs[k], 1, 10, 1, NULL, &r); /* warm-up */
		record(wi, vs[k], 1, 10, 0, &r, "warmup");
		ww->samples = saved;
	}
	for (unsigned rep = 1; rep <= cfg.reps; rep++) {
		for (unsigned ti = 0; ti < ntcounts; ti++) {
			unsigned t = tcounts[ti];
			if (t > max_t_for_wl)
				continue;
			for (size_t k = 0; k < nv; k++) {
				if (!variant_wanted(vs[k]))
					continue;
				size_t saved = W->samples;
				if (vs[k] == V_MUTEX)
					W->samples = saved / cfg.mutex_div;
				run_once(W, vs[k], t, 10, 1, NULL, &r);
				W->samples = saved;
				record(wi, vs[k], t, 10, rep, &r, NULL);
			}
		}
		fprintf(stderr, "bench: %s rep %u/%u done\n", wlname[wi], rep, cfg.reps);
	}
}

/* The table on stdout, and the medians as CSV when rc is not NULL. */
static void print_table(FILE *rc)
{
	printf("\n%-8s %-13s %7s %10s %12s %10s %10s %9s\n", "workload", "variant", "threads",
	       "Msamples/s", "M/s/thread", "e2e M/s", "M/cpu-s", "spread%");
	for (int wi = 0; wi < NWL; wi++)
		for (int v = 0; v < NVARIANTS; v++)
			for (unsigned ti = 0; ti < ntcounts; ti++) {
				unsigned t = tcounts[ti];
				struct cell *ce = &cells[wi][v][t];
				if (!ce->n)
					continue;
				double tmp[64];
				memcpy(tmp, ce->v, ce->n * sizeof(double));
				qsort(tmp, ce->n, sizeof(double), cmp_dbl);
				double med = cell_med(wi, v, t), e2e = cell_med_e2e(wi, v, t);
				double spread = med > 0 ? (tmp[ce->n - 1] - tmp[0]) / med * 100 : 0;
				printf("%-8s %-13s %7u %10.2f %12.2f %10.2f %10.2f %9.1f\n",
				       wlname[wi], vname[v], t, med, med / t, e2e,
				       cell_med_cpu(wi, v, t), spread);
				if (rc)
					fprintf(rc, "%s,%s,%u,%zu,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f\n",
						wlname[wi], vname[v], t, ce->n, med, med / t, e2e,
						cell_med_cpu(wi, v, t), tmp[0], tmp[ce->n - 1]);
			}
}

/* ------------------------------------------------------------ memory */

static long proc_status_kb(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	size_t kl = strlen(key);
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static void reset_peak_rss(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");
	if (f) {
		fputs("5", f); /* resets VmHWM to the current RSS */
		fclose(f);
	}
}

/* ------------------------------------------------------------ main */

/* True when s is one of names[0..n). */
static bool one_of(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return true;
	return false;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bench [--short] [--reps N] [--depth D] [--replay FILE.folded]\n"
		"             [--out DIR] [--seed S] [--max-threads T] [--only WORKLOAD]\n"
		"             [--variant engine|engine_batch|mutex|floor]\n"
		"--only runs just that workload's scaling table (for profiling), or with\n"
		"`snap` just the snapshot-impact runs; the SUMMARY then has zeros for\n"
		"what did not run.  --variant limits the scaling tables to one variant.\n");
}

/* Snapshot impact: pairs of runs (merger every 10 ms, then idle). */
struct impact {
	double with[64], without[64], drop[64];
	size_t n;
	double med, q1, q3;     /* of the per-pair drops */
	double mwith, mwithout; /* medians of the rates */
};

static void impact_pair(struct workload *W, enum variant v, unsigned passes, struct impact *im)
{
	struct result r;
	if (im->n >= 64)
		return;
	run_warm(W, v, 1, 10, 2, passes, NULL, &r);
	record(W_HOT, v, 1, 10, (unsigned)im->n + 1, &r, "snap");
	im->with[im->n] = mps(&r);
	run_warm(W, v, 1, 0, 2, passes, NULL, &r);
	record(W_HOT, v, 1, 0, (unsigned)im->n + 1, &r, "snap");
	im->without[im->n] = mps(&r);
	im->drop[im->n] = im->without[im->n] > 0 ? 1.0 - im->with[im->n] / im->without[im->n] : 0;
	im->n++;
}

static void impact_done(struct impact *im)
{
	im->med = median(im->drop, im->n);
	im->q1 = pct(im->drop, im->n, 0.25);
	im->q3 = pct(im->drop, im->n, 0.75);
	im->mwith = median(im->with, im->n);
	im->mwithout = median(im->without, im->n);
}

static void impact_print(const struct impact *im, const char *what)
{
	printf("  %s: merger every 10 ms %.2f M/s, merger idle %.2f M/s (medians of %zu pairs); "
	       "per-pair drop median %.3f, IQR %.3f..%.3f\n",
	       what, im->mwith, im->mwithout, im->n, im->med, im->q1, im->q3);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "short", no_argument, 0, 's' },    { "reps", required_argument, 0, 'r' },
		{ "depth", required_argument, 0, 'd' }, { "replay", required_argument, 0, 'f' },
		{ "out", required_argument, 0, 'o' },  { "seed", required_argument, 0, 'S' },
		{ "max-threads", required_argument, 0, 't' }, { "help", no_argument, 0, 'h' },
		{ "only", required_argument, 0, 'O' },
		{ "variant", required_argument, 0, 'V' },
		{ 0, 0, 0, 0 }
	};
	int c, reps_set = 0;
	while ((c = getopt_long(argc, argv, "sr:d:f:o:S:t:hO:V:", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			cfg.short_mode = 1;
			break;
		case 'r':
			cfg.reps = (unsigned)strtoul(optarg, NULL, 10);
			reps_set = 1;
			break;
		case 'd':
			cfg.depth = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'f':
			cfg.replay = optarg;
			break;
		case 'o':
			cfg.outdir = optarg;
			break;
		case 'S':
			cfg.seed = strtoull(optarg, NULL, 0);
			break;
		case 'O':
			cfg.only = optarg;
			break;
		case 'V':
			cfg.variant = optarg;
			break;
		case 't':
			cfg.max_threads = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			usage();
			return c == 'h' ? 0 : 2;
		}
	}
	if (cfg.reps < 1 || cfg.reps > 63 || cfg.depth < 1 || cfg.depth > 4096) {
		usage();
		return 2;
	}
	/* A misspelt --only or --variant would run nothing and print zeros. */
	if (cfg.only && strcmp(cfg.only, "snap") != 0 && !one_of(cfg.only, wlname, NWL)) {
		fprintf(stderr, "bench: --only %s: not a workload (hot cold strings replay) nor snap\n",
			cfg.only);
		return 2;
	}
	if (cfg.variant && !one_of(cfg.variant, vname, NVARIANTS)) {
		fprintf(stderr, "bench: --variant %s: not one of engine engine_batch mutex floor\n",
			cfg.variant);
		return 2;
	}
	if (cfg.short_mode) {
		if (!reps_set)
			cfg.reps = 3;
		cfg.hot_samples = 1u << 20;
		cfg.str_samples = 1u << 19;
		cfg.cold_samples = 1000000;
		cfg.mutex_div = 16;
	}
	long nc = sysconf(_SC_NPROCESSORS_ONLN);
	ncpu = nc > 0 ? (unsigned)nc : 1;
	unsigned N = cfg.max_threads ? cfg.max_threads : ncpu;
	if (2 * N > MAXT)
		N = MAXT / 2;
	for (unsigned t = 1; t <= N; t++)
		tcounts[ntcounts++] = t;
	tcounts[ntcounts++] = 2 * N;

	mkdir("build", 0777);
	mkdir(cfg.outdir, 0777);
	char path[4096];
	snprintf(path, sizeof(path), "%s/runs.csv", cfg.outdir);
	runs_csv = fopen(path, "w");
	if (!runs_csv) {
		fprintf(stderr, "bench: %s: %s\n", path, strerror(errno));
		return 2;
	}
	fprintf(runs_csv, "workload,variant,threads,merge_ms,rep,samples,seconds,e2e_seconds,"
			  "mps,mps_e2e,mps_per_cpu_s,lost\n");
	double t_start = now_s();
	fprintf(stderr, "bench: %s mode, %u CPUs, %u reps, depth %u\n",
		cfg.short_mode ? "short" : "full", ncpu, cfg.reps, cfg.depth);

	/* ---- hot: scaling of every variant */
	struct workload hot, cold, str, rep;
	if (wl_hot(&hot, cfg.depth, 10000, 1.0, cfg.hot_samples, cfg.seed)) {
		fprintf(stderr, "bench: cannot build the hot workload\n");
		return 2;
	}
	static const enum variant all[] = { V_ENGINE, V_BATCH, V_MUTEX, V_FLOOR };
	const int only_snap = cfg.only && strcmp(cfg.only, "snap") == 0;
	if (!only_snap)
		scaling(W_HOT, &hot, all, 4, 2 * N);
	if (cfg.only && strcmp(cfg.only, "hot") == 0) {
		print_table(NULL); /* profiling run: nothing else */
		return lost_total ? 1 : 0;
	}

	/* ---- snapshot impact: merger every 10 ms vs idle, 1 writer, in
	 * back-to-back pairs; and publish latency with a flusher every 10 ms.
	 * The host's speed drifts by more than the effect measured, and a pair
	 * shares the host's state of the moment, so the figure is the median
	 * over pairs of each pair's drop (with its interquartile range), not
	 * a ratio of two medians taken over different moments.  Measured for
	 * the batch API (the SUMMARY's figure, like every hot key) and for one
	 * call per sample, which cannot overlap its cache misses and so feels
	 * the merger's traffic more; the two kinds of pair alternate. */
	unsigned imp_passes = cfg.short_mode ? 2 : 8;
	unsigned npairs = cfg.reps * (cfg.short_mode ? 2 : 3);
	npairs = npairs > 63 ? 63 : npairs;
	struct impact imb = { 0 }, ime = { 0 };
	struct result r;
	for (unsigned k = 0; k < npairs; k++) {
		impact_pair(&hot, V_BATCH, imp_passes, &imb);
		if (!cfg.short_mode || k % 2 == 0) /* short: half as many */
			impact_pair(&hot, V_ENGINE, imp_passes, &ime);
	}
	impact_done(&imb);
	impact_done(&ime);
	double snap_impact = imb.med;
	if (only_snap) {
		impact_print(&imb, "batch");
		impact_print(&ime, "one call per sample");
		printf("snap_impact %.3f\n", snap_impact);
		return lost_total ? 1 : 0;
	}

	struct flusher fl = { 0 };
	fl.period_ms = 10;
	fl.cap = 100000;
	fl.lat = calloc(fl.cap, sizeof(double));
	run_once(&hot, V_ENGINE, 1, 0, imp_passes, &fl, &r);
	record(W_HOT, V_ENGINE, 1, 0, 1, &r, "latency");
	double hot_flush_mps = mps(&r);
	size_t hot_nflush = fl.n;
	double hot_p50 = pct(fl.lat, fl.n, 0.50) * 1e3, hot_p99 = pct(fl.lat, fl.n, 0.99) * 1e3;
	size_t hot_nodes = r.st.nodes;

	/* ---- cold: node creation, end to end (ingest + final flush). */
	if (wl_cold(&cold, cfg.cold_samples, cfg.seed)) {
		fprintf(stderr, "bench: cannot build the cold workload\n");
		return 2;
	}
	static const enum variant cold_vs[] = { V_ENGINE, V_BATCH, V_FLOOR };
	/* Each cold run folds 1 M records in its final flush (seconds): the
	 * short mode measures one thread only. */
	scaling(W_COLD, &cold, cold_vs, 3, cfg.short_mode ? 1 : N);
	if (cfg.only && strcmp(cfg.only, "cold") == 0) {
		print_table(NULL);
		return lost_total ? 1 : 0;
	}

	/* Memory and merge cost: cold, one writer, merger idle, so the single
	 * final st_flush() folds all 1 M records and builds the snapshot. */
	for (unsigned t = 0; t < 1; t++)
		wl_draws(&cold, t);
	long rss_base = proc_status_kb("VmRSS");
	reset_peak_rss();
	run_once(&cold, V_ENGINE, 1, 0, 1, NULL, &r);
	record(W_COLD, V_ENGINE, 1, 0, 1, &r, "memory");
	long rss_hwm = proc_status_kb("VmHWM");
	struct st_stats cst = r.st;
	double merge_ns_per_node = cst.nodes ? r.flush_secs * 1e9 / (double)cst.nodes : 0;
	double bpn_master = cst.nodes ? (double)cst.mem_master / (double)cst.nodes : 0;
	double bpn_snap = cst.nodes ? (double)cst.mem_snapshot / (double)cst.nodes : 0;
	double bytes_per_node = bpn_master + bpn_snap;
	double shard_mib = (double)cst.mem_shards / 1048576.0;
	double cold_flush_s = r.flush_secs;

	/* Cold publish latency (a growing trie) with a flusher every 10 ms;
	 * full mode only (the short mode reports zeros). */
	fl.n = 0;
	if (!cfg.short_mode) {
		run_once(&cold, V_ENGINE, 1, 0, 1, &fl, &r);
		record(W_COLD, V_ENGINE, 1, 0, 2, &r, "latency");
	}
	double cold_p50 = pct(fl.lat, fl.n, 0.50) * 1e3, cold_p99 = pct(fl.lat, fl.n, 0.99) * 1e3;
	size_t cold_nflush = fl.n;
	uint64_t cold_expect_nodes = cold.expect_nodes;
	size_t cold_records = cold.samples;
	wl_free(&cold);

	/* ---- strings */
	if (wl_strings(&str, 100000, 1.0, cfg.str_samples, cfg.seed)) {
		fprintf(stderr, "bench: cannot build the strings workload\n");
		return 2;
	}
	static const enum variant str_vs[] = { V_ENGINE, V_BATCH, V_MUTEX, V_FLOOR };
	scaling(W_STRINGS, &str, str_vs, 4, N);
	if (cfg.only && strcmp(cfg.only, "strings") == 0) {
		print_table(NULL);
		return lost_total ? 1 : 0;
	}
	size_t str_frames = str.ndict;
	wl_free(&str);

	/* ---- replay */
	int have_replay = 0;
	if (cfg.replay) {
		if (wl_replay(&rep, cfg.replay, cfg.hot_samples, cfg.seed))
			return 2;
		scaling(W_REPLAY, &rep, all, 4, N);
		have_replay = 1;
	}

	/* ------------------------------------------------------------ report */
	/* The SUMMARY quotes the batch API, the engine's high-rate entry point
	 * (a BPF ring-buffer or perf-pipe consumer drains in batches); the
	 * one-call-per-sample rate is printed next to it. */
	double hot1 = cell_med(W_HOT, V_BATCH, 1), hotn = cell_med(W_HOT, V_BATCH, N);
	double hotb1 = cell_med(W_HOT, V_ENGINE, 1), hotbn = cell_med(W_HOT, V_ENGINE, N);
	double mutn = cell_med(W_HOT, V_MUTEX, N), floor1 = cell_med(W_HOT, V_FLOOR, 1);
	double cold1 = cell_med_e2e(W_COLD, V_BATCH, 1), coldb1 = cell_med_e2e(W_COLD, V_ENGINE, 1);
	double str1 = cell_med(W_STRINGS, V_BATCH, 1), strb1 = cell_med(W_STRINGS, V_ENGINE, 1);
	double scale = hot1 > 0 ? hotn / hot1 : 0;
	double vs_mutex = mutn > 0 ? hotn / mutn : 0;
	double floor_ratio = hot1 > 0 ? floor1 / hot1 : 0;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);

	snprintf(path, sizeof(path), "%s/results.csv", cfg.outdir);
	FILE *rc = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/hot_threads.dat", cfg.outdir);
	FILE *dat = fopen(path, "w");
	if (!rc || !dat) {
		fprintf(stderr, "bench: cannot write under %s\n", cfg.outdir);
		return 2;
	}
	fprintf(rc, "workload,variant,threads,reps,median_mps,median_mps_per_thread,"
		    "median_mps_e2e,median_mps_per_cpu_s,min_mps,max_mps\n");
	print_table(rc);
	fclose(rc);
	fprintf(dat, "threads");
	for (int v = 0; v < NVARIANTS; v++)
		fprintf(dat, " %s", vname[v]);
	fprintf(dat, "\n");
	for (unsigned ti = 0; ti < ntcounts; ti++) {
		fprintf(dat, "%u", tcounts[ti]);
		for (int v = 0; v < NVARIANTS; v++)
			fprintf(dat, " %.3f", cell_med(W_HOT, v, tcounts[ti]));
		fprintf(dat, "\n");
	}
	fclose(dat);

	printf("\nsnapshot cost (hot, 1 writer, %u x %zu samples per run):\n", imp_passes,
	       hot.samples);
	impact_print(&imb, "batch (snap_impact)");
	impact_print(&ime, "one call per sample");
	printf("  publish latency (st_flush every 10 ms): hot %zu nodes p50 %.3f ms p99 %.3f ms "
	       "(%zu publishes, ingest %.2f M/s); cold growing to %zu nodes p50 %.3f ms "
	       "p99 %.3f ms (%zu publishes)\n",
	       hot_nodes, hot_p50, hot_p99, hot_nflush, hot_flush_mps, cst.nodes, cold_p50,
	       cold_p99, cold_nflush);
	printf("memory (cold, %zu nodes, expected %" PRIu64 "): master %.1f B/node, snapshot "
	       "%.1f B/node, total %.1f B/node; shard tables %.1f MiB after the fold; peak RSS of the run "
	       "%.1f MiB over a %.1f MiB base; process peak RSS %.1f MiB\n",
	       cst.nodes, cold_expect_nodes, bpn_master, bpn_snap, bytes_per_node,
	       shard_mib, (double)(rss_hwm - rss_base) / 1024, (double)rss_base / 1024,
	       (double)ru.ru_maxrss / 1024);
	printf("merge cost (cold, one st_flush of %zu records): %.1f ms, %.1f ns/node\n",
	       cold_records, cold_flush_s * 1e3, merge_ns_per_node);
	printf("strings: %zu distinct frame strings; hot: %zu stacks, depth %u\n", str_frames,
	       hot.nstacks, cfg.depth);

	snprintf(path, sizeof(path), "%s/results.json", cfg.outdir);
	FILE *js = fopen(path, "w");
	if (js) {
		fprintf(js, "{\n  \"mode\": \"%s\", \"cpus\": %u, \"reps\": %u, \"depth\": %u,\n",
			cfg.short_mode ? "short" : "full", ncpu, cfg.reps, cfg.depth);
		fprintf(js, "  \"results\": [\n");
		int first = 1;
		for (int wi = 0; wi < NWL; wi++)
			for (int v = 0; v < NVARIANTS; v++)
				for (unsigned ti = 0; ti < ntcounts; ti++) {
					unsigned t = tcounts[ti];
					if (!cells[wi][v][t].n)
						continue;
					fprintf(js,
						"%s    {\"workload\": \"%s\", \"variant\": \"%s\", "
						"\"threads\": %u, \"median_mps\": %.3f, "
						"\"median_mps_e2e\": %.3f}",
						first ? "" : ",\n", wlname[wi], vname[v], t,
						cell_med(wi, v, t), cell_med_e2e(wi, v, t));
					first = 0;
				}
		fprintf(js, "\n  ],\n");
		fprintf(js,
			"  \"snapshot\": {\"mps_merger_10ms\": %.3f, \"mps_merger_idle\": %.3f, "
			"\"pairs\": %zu, \"snap_impact\": %.4f, \"snap_impact_q1\": %.4f, "
			"\"snap_impact_q3\": %.4f, \"one_call_mps_merger_10ms\": %.3f, "
			"\"one_call_mps_merger_idle\": %.3f, \"one_call_impact\": %.4f, "
			"\"one_call_impact_q1\": %.4f, \"one_call_impact_q3\": %.4f, "
			"\"hot_publish_p50_ms\": %.4f, "
			"\"hot_publish_p99_ms\": %.4f, \"cold_publish_p50_ms\": %.4f, "
			"\"cold_publish_p99_ms\": %.4f},\n",
			imb.mwith, imb.mwithout, imb.n, imb.med, imb.q1, imb.q3, ime.mwith,
			ime.mwithout, ime.med, ime.q1, ime.q3, hot_p50, hot_p99, cold_p50, cold_p99);
		fprintf(js,
			"  \"memory\": {\"nodes\": %zu, \"mem_master\": %zu, \"mem_snapshot\": %zu, "
			"\"bytes_per_node_master\": %.2f, \"bytes_per_node_snapshot\": %.2f, "
			"\"bytes_per_node\": %.2f, \"run_peak_rss_kib\": %ld, "
			"\"process_peak_rss_kib\": %ld, \"merge_ns_per_node\": %.2f},\n",
			cst.nodes, cst.mem_master, cst.mem_snapshot, bpn_master, bpn_snap,
			bytes_per_node, rss_hwm - rss_base, ru.ru_maxrss, merge_ns_per_node);
		fprintf(js,
			"  \"summary\": {\"hot_mps_1t\": %.3f, \"hot_single_call_mps_1t\": %.3f, "
			"\"hot_mps_nt\": %.3f, \"scale_nt\": %.3f, \"vs_mutex_nt\": %.3f, "
			"\"floor_ratio\": %.3f, \"cold_mps_1t\": %.3f, \"strings_mps_1t\": %.3f, "
			"\"snap_impact\": %.4f, \"bytes_per_node\": %.2f, \"lost\": %" PRIu64 "}\n}\n",
			hot1, hotb1, hotn, scale, vs_mutex, floor_ratio, cold1, str1, snap_impact,
			bytes_per_node, lost_total);
		fclose(js);
	}
	fclose(runs_csv);

	/* gnuplot: throughput against threads, one line per variant. */
	snprintf(path, sizeof(path), "%s/hot_threads.gp", cfg.outdir);
	FILE *gp = fopen(path, "w");
	if (gp) {
		fprintf(gp,
			"set terminal svg size 800,500 dynamic\n"
			"set output '%s/hot_threads.svg'\n"
			"set title 'hot workload (depth %u, 10k stacks, Zipf): throughput vs threads "
			"(%u CPUs, %u threads = oversubscribed)'\n"
			"set xlabel 'threads'\nset ylabel 'M samples/s (all threads)'\n"
			"set logscale y\nset key outside right\nset grid\nset xtics 1\n"
			"plot for [i=2:%d] '%s/hot_threads.dat' using 1:i with linespoints "
			"title columnhead(i)\n",
			cfg.outdir, cfg.depth, ncpu, 2 * N, NVARIANTS + 1, cfg.outdir);
		fclose(gp);
		char cmd[8192];
		snprintf(cmd, sizeof(cmd), "gnuplot '%s/hot_threads.gp' 2>&1", cfg.outdir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench: gnuplot failed (apt-get install gnuplot-nox); "
					"data in %s/hot_threads.dat\n", cfg.outdir);
	}
	if (have_replay)
		wl_free(&rep);
	printf("outputs: %s/{runs.csv,results.csv,results.json,hot_threads.svg}; %.1f s\n",
	       cfg.outdir, now_s() - t_start);
	wl_free(&hot);
	if (lost_total)
		fprintf(stderr, "bench: FAILED: %" PRIu64 " samples lost\n", lost_total);
	printf("hot_mps_* / scale / vs_mutex / floor_ratio use engine_batch "
	       "(st_writer_ingest_batch, 64 per call); one call per sample: 1t %.2f, %ut %.2f M/s; "
	       "per CPU-second (preemption-proof): batch 1t %.2f, floor 1t %.2f\n",
	       hotb1, N, hotbn, cell_med_cpu(W_HOT, V_BATCH, 1), cell_med_cpu(W_HOT, V_FLOOR, 1));
	printf("cold_mps_1t uses engine_batch too (end to end: ingest + the final flush); one call "
	       "per sample: %.2f M/s end to end\n", coldb1);
	printf("strings_mps_1t uses engine_batch too (st_writer_ingest_strs_batch, 64 per call); "
	       "one call per sample (st_writer_ingest_strs): 1t %.2f M/s, %.2f M/cpu-s\n",
	       strb1, cell_med_cpu(W_STRINGS, V_ENGINE, 1));
	printf("SUMMARY hot_mps_1t=%.2f hot_mps_nt=%.2f scale_nt=%.2f vs_mutex_nt=%.2f "
	       "floor_ratio=%.2f cold_mps_1t=%.2f strings_mps_1t=%.2f snap_impact=%.3f "
	       "bytes_per_node=%.1f lost=%" PRIu64 "\n",
	       hot1, hotn, scale, vs_mutex, floor_ratio, cold1, str1, snap_impact,
	       bytes_per_node, lost_total);
	fflush(stdout);
	return lost_total ? 1 : 0;
}
