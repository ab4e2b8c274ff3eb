/* SPDX-License-Identifier: MIT */
/*
 * snapcpu.c - what a running merger costs the writer, in the writer's own
 * CPU time (the SUMMARY's snap_impact), and what it costs in its own CPU
 * (merger_cpu_share); docs/benchmarking.md says why this way.
 *
 *   CPU 0: the writer (the calling thread, pinned), hot workload, batch API
 *   CPU 1: the merger thread ("st-merger", found by its comm under
 *          /proc/self/task, pinned with sched_setaffinity on its TID), and
 *          liburcu's call_rcu thread, which frees its snapshots (it bears
 *          the name of the merger that started it)
 *
 * A pair is two runs back to back on fresh engines: merger every 10 ms, and
 * merge_interval_ms = 0 (no merger thread at all); the order alternates from
 * pair to pair.  Each run ingests two untimed passes, each flushed, so the
 * timed passes meet the steady state (every stack known, both shard tables
 * and the master built), then times `passes` passes (hundreds of ms: short
 * runs gave noise larger than the effect).  Per run: the writer's thread CPU
 * clock per sample; with the merger, its CPU clock over the same wall span.
 * The figure is the median over pairs of (on / off - 1), with its IQR.
 *
 * Invariants: the writer and the merger never share a CPU (on one CPU the
 * merger cannot be pinned apart: the step says so and pins nothing); every
 * run's root total equals what it ingested (`lost`, runs.csv `snapcpu`).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "bench.h"
#include "support/threads.h"
#include "util.h"

enum { MAX_NAMED = 16 };

static bool tid_in(pid_t t, const pid_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == t)
			return true;
	return false;
}

/* The TID of a thread named `comm` that is not in old[0..nold), or 0.  Not
 * the first one found: a thread inherits its creator's name, so liburcu's
 * call_rcu thread, started by the first merger's first call_rcu(), is also
 * "st-merger" and outlives every engine.  The engine names its merger
 * before st_engine_create() returns; the bounded poll (1 s) is for a
 * thread not yet visible in /proc. */
static pid_t new_thread_named(const char *comm, const pid_t *old, size_t nold)
{
	for (int tries = 0; tries < 1000; tries++) {
		pid_t t[MAX_NAMED];
		size_t n = ts_threads_named(comm, false, t, MAX_NAMED);
		for (size_t i = 0; i < n; i++)
			if (!tid_in(t[i], old, nold))
				return t[i];
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* Pin thread tid to CPU cpu: 0, or -1 (errno). */
static int pin_tid(pid_t tid, unsigned cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(tid, sizeof(set), &set))
		return -1;
	cpu_set_t got;
	if (sched_getaffinity(tid, sizeof(got), &got) || !CPU_EQUAL(&set, &got)) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* Another thread's CPU clock: the id glibc's pthread_getcpuclockid() makes
 * from a TID (the kernel's MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)); the
 * kernel accepts it for a thread of the caller's own process.  We have no
 * pthread_t of the engine's merger, only its TID. */
static clockid_t tid_clock(pid_t tid)
{
	return (clockid_t)((~(unsigned)tid << 3) | 4 | 2);
}

/* utime + stime of /proc/self/task/TID/stat, seconds (tick resolution). */
static double tid_cpu_proc(pid_t tid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* comm may hold spaces */
	unsigned long ut, st;
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
			 &st) != 2)
		return -1;
	long hz = sysconf(_SC_CLK_TCK);
	return (double)(ut + st) / (double)(hz > 0 ? hz : 100);
}

static const char *merger_clock = "none";

/* Thread tid's CPU time, seconds: its CPU clock, else /proc (coarse). */
static double tid_cpu(pid_t tid)
{
	struct timespec ts;
	if (!clock_gettime(tid_clock(tid), &ts)) {
		merger_clock = "thread CPU clock";
		return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
	}
	merger_clock = "/proc/self/task/TID/stat (clock ticks)";
	return tid_cpu_proc(tid);
}

struct cpu_run {
	double ns;            /* writer CPU ns/sample */
	double wall, share;   /* timed span; merger CPU / wall */
	double helper_share;  /* its call_rcu helper's CPU / wall */
	double ipis_ps;       /* IPIs CPU 0 (the writer's) took per second */
	double fold_share, pub_share, recs_per_merge, pubs_ps;
	size_t nodes;
	int pinned;
};

static double ratio_of(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0;
}

/* One run in the calling thread (pinned to CPU 0 for it). */
static void cpu_run(struct workload *W, unsigned merge_ms, unsigned passes, unsigned rep,
		    struct cpu_run *out)
{
	cpu_set_t saved;
	pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved);
	memset(out, 0, sizeof(*out));
	pid_t old[MAX_NAMED], helpers[MAX_NAMED];
	size_t nold = ts_threads_named("st-merger", false, old, MAX_NAMED), nhelp = 0;
	struct st_engine *e = bench_engine(W, merge_ms);
	pid_t mtid = merge_ms ? new_thread_named("st-merger", old, nold) : 0;
	if (merge_ms && !mtid)
		fprintf(stderr, "bench: snapcpu: no new \"st-merger\" thread: its CPU is not "
				"measured, nor is it pinned\n");
	if (mtid && cfg.ncpu > 1)
		out->pinned = pin_tid(mtid, 1) == 0;
	bench_pin(0);
	const uint32_t *d = wl_draws(W, 0);
	struct st_writer *w = st_writer_open(e);
	if (!d || !w) {
		fprintf(stderr, "bench: snapcpu: no draws or writer\n");
		exit(2);
	}
	uint64_t errs = 0;
	for (unsigned p = 0; p < 2; p++) {
		errs += bench_ingest_pass(W, w, d, W->samples, true);
		errs += !st_flush(e);
	}
	/* The merger's helpers (the call_rcu thread freeing its snapshots,
	 * named after it): off the writer's CPU too, their CPU reported; they
	 * outlive the engine, so their placement is given back afterwards. */
	cpu_set_t help_aff[MAX_NAMED];
	if (mtid) {
		pid_t t[MAX_NAMED];
		size_t n = ts_threads_named("st-merger", false, t, MAX_NAMED);
		for (size_t i = 0; i < n; i++) {
			if (t[i] == mtid ||
			    sched_getaffinity(t[i], sizeof(cpu_set_t), &help_aff[nhelp]))
				continue;
			if (cfg.ncpu < 2 || pin_tid(t[i], 1) == 0)
				helpers[nhelp++] = t[i];
		}
	}
	double h0 = 0, h1 = 0;
	for (size_t i = 0; i < nhelp; i++)
		h0 += tid_cpu(helpers[i]);
	struct st_stats s0 = { .size = sizeof(s0) }, s1 = { .size = sizeof(s1) };
	st_engine_stats(e, &s0);
	double m0 = mtid ? tid_cpu(mtid) : 0;
	unsigned long long i0 = cpu0_ipis();
	double t0 = bench_now(), c0 = bench_cpu();
	for (unsigned p = 0; p < passes; p++)
		errs += bench_ingest_pass(W, w, d, W->samples, true);
	double c1 = bench_cpu(), t1 = bench_now();
	unsigned long long i1 = cpu0_ipis();
	double m1 = mtid ? tid_cpu(mtid) : 0;
	for (size_t i = 0; i < nhelp; i++) {
		h1 += tid_cpu(helpers[i]);
		sched_setaffinity(helpers[i], sizeof(cpu_set_t), &help_aff[i]);
	}
	st_engine_stats(e, &s1);
	st_writer_close(w);
	pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);

	struct result r = { 0 };
	r.samples = (uint64_t)W->samples * passes;
	r.secs = r.e2e_secs = t1 - t0;
	r.cpu_secs = c1 - c0;
	r.lost = errs + bench_engine_check(e, (uint64_t)W->samples * (passes + 2), &r.st);
	record(W_HOT, V_BATCH, 1, merge_ms, rep, &r, "snapcpu");
	st_engine_destroy(e);

	out->ns = r.samples ? r.cpu_secs * 1e9 / (double)r.samples : 0;
	out->wall = r.secs;
	out->nodes = r.st.nodes;
	out->ipis_ps = r.secs > 0 ? (double)(i1 - i0) / r.secs : 0;
	if (merge_ms && r.secs > 0) {
		out->share = (m1 - m0) / r.secs;
		out->helper_share = (h1 - h0) / r.secs;
		out->fold_share = (double)(s1.merge_fold_ns - s0.merge_fold_ns) * 1e-9 / r.secs;
		out->pub_share = (double)(s1.publish_ns - s0.publish_ns) * 1e-9 / r.secs;
		out->recs_per_merge = ratio_of(s1.merge_records - s0.merge_records,
					       s1.merges - s0.merges);
		out->pubs_ps = (double)(s1.version - s0.version) / r.secs;
	}
}

static double med_of(const double *v, size_t n)
{
	double tmp[SNAPCPU_MAX];
	memcpy(tmp, v, n * sizeof(*v));
	return bench_median(tmp, n);
}

static double pct_of(const double *v, size_t n, double p)
{
	double tmp[SNAPCPU_MAX];
	memcpy(tmp, v, n * sizeof(*v));
	return bench_pct(tmp, n, p);
}

void snapshot_cpu(struct workload *hot, struct snap_cpu *sc)
{
	memset(sc, 0, sizeof(*sc));
	/* Short: 12 x 1 Mi samples (~0.3-0.6 s per run); full: 4 x 4 Mi. */
	sc->passes = cfg.short_mode ? 12 : 4;
	unsigned npairs = cfg.short_mode ? 8 : 3 * cfg.reps;
	npairs = npairs > SNAPCPU_MAX ? SNAPCPU_MAX : npairs;
	if (cfg.ncpu < 2)
		printf("snap_impact: one CPU: the merger cannot be kept off the writer's CPU\n");
	sc->pinned = 1;
	for (unsigned k = 0; k < npairs; k++) {
		struct cpu_run on, off;
		if (k % 2 == 0) {
			cpu_run(hot, 10, sc->passes, k + 1, &on);
			cpu_run(hot, 0, sc->passes, k + 1, &off);
		} else {
			cpu_run(hot, 0, sc->passes, k + 1, &off);
			cpu_run(hot, 10, sc->passes, k + 1, &on);
		}
		sc->pinned &= on.pinned;
		sc->on_ns[k] = on.ns;
		sc->off_ns[k] = off.ns;
		sc->ratio[k] = off.ns > 0 ? on.ns / off.ns - 1 : 0;
		sc->ipis_on[k] = on.ipis_ps;
		sc->ipis_off[k] = off.ipis_ps;
		sc->share[k] = on.share;
		sc->helper_share[k] = on.helper_share;
		sc->fold_share[k] = on.fold_share;
		sc->pub_share[k] = on.pub_share;
		sc->recs_per_merge[k] = on.recs_per_merge;
		sc->pubs_ps[k] = on.pubs_ps;
		sc->wall_s[k] = on.wall;
		sc->nodes = on.nodes;
		sc->n++;
	}
	sc->clock = merger_clock;
	sc->med = med_of(sc->ratio, sc->n);
	sc->q1 = pct_of(sc->ratio, sc->n, 0.25);
	sc->q3 = pct_of(sc->ratio, sc->n, 0.75);
	sc->med_on_ns = med_of(sc->on_ns, sc->n);
	sc->med_off_ns = med_of(sc->off_ns, sc->n);
	sc->med_share = med_of(sc->share, sc->n);
	sc->med_ipis_on = med_of(sc->ipis_on, sc->n);
	sc->med_ipis_off = med_of(sc->ipis_off, sc->n);
	sc->med_helper_share = med_of(sc->helper_share, sc->n);
	sc->share_q1 = pct_of(sc->share, sc->n, 0.25);
	sc->share_q3 = pct_of(sc->share, sc->n, 0.75);
	sc->med_fold_share = med_of(sc->fold_share, sc->n);
	sc->med_pub_share = med_of(sc->pub_share, sc->n);
	sc->med_recs_per_merge = med_of(sc->recs_per_merge, sc->n);
	sc->med_pubs_ps = med_of(sc->pubs_ps, sc->n);
	sc->med_wall_s = med_of(sc->wall_s, sc->n);
}

void snapshot_cpu_print(const struct snap_cpu *sc)
{
	if (!sc->n)
		return;
	printf("  writer CPU (snap_impact; writer on CPU 0, merger %s, %u timed passes per run, "
	       "%zu "
	       "pairs, ~%.2f s timed each): %.1f ns/sample with the merger every 10 ms, %.1f "
	       "idle; per-pair increase median %.3f, IQR %.3f..%.3f; IPIs to CPU 0 %.0f/s vs "
	       "%.0f/s\n",
	       sc->pinned ? "pinned to CPU 1" : "NOT pinned", sc->passes, sc->n, sc->med_wall_s,
	       sc->med_on_ns, sc->med_off_ns, sc->med, sc->q1, sc->q3, sc->med_ipis_on,
	       sc->med_ipis_off);
	printf("  merger (merger_cpu_share; %s): %.3f of one core (IQR %.3f..%.3f), its call_rcu "
	       "helper %.3f; wall shares: folding %.3f, publishing %.3f; %.0f records per merge, "
	       "%.1f publishes/s of %zu nodes\n",
	       sc->clock, sc->med_share, sc->share_q1, sc->share_q3, sc->med_helper_share,
	       sc->med_fold_share,
	       sc->med_pub_share, sc->med_recs_per_merge, sc->med_pubs_ps, sc->nodes);
}
