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
 * Pairs: an "off" run and an "on" run back to back, the order alternating
 * pair by pair; a pair's drop is 1 - on/off, and the median over the pairs
 * is the figure (the same for the writers' samples per writer CPU-second).
 *
 * Placement.  "pinned" (the default on 2+ CPUs): the writers on CPU 0,
 * everything else -- the merger, the pusher's two threads, liburcu's
 * call_rcu thread, the receiver's threads -- on the last CPU (they inherit
 * the affinity of the main thread, which pins itself there first; each run
 * checks that no other thread may run on CPU 0).  The question is whether
 * pushing slows ingest through the engine or the process (a lock, shared
 * lines, IPIs, memory traffic), not whether two busy threads share one
 * core.  A pinned pair also carries a control run: no pusher, but a thread
 * on the last CPU that spins for the span touching no memory -- what any
 * busy neighbouring CPU costs the writer on this host (on a VM, vCPUs may
 * share a physical core).  "free": the scheduler places every thread (the
 * receiver then also takes CPU time a remote one would not).
 *
 * Per run: the writers' voluntary and involuntary context switches and the
 * IPIs CPU 0 took (/proc/interrupts CAL + TLB, column 0), per second.
 *
 * Invariants: every "on" run checks exactness: the values the receiver
 * accepted (st_push_stats.sent_value) equal the samples ingested, nothing
 * dropped, refused or unsent; else exact=no and exit 1.
 *
 * usage: push_cost [SECONDS [PAIRS [WRITERS [STACKS [pinned|free]]]]]
 *        (defaults 3 11 1 20000 pinned)
 *        push_cost encode [REPS [STACKS]]: one interval's encoding alone
 *        (see encode_cost())
 * prints PUSH_COST drop=...% (per writer CPU-second, median of pairs)
 * drop_wall=...% control_spin=...% ... exact=yes|no
 */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "push/push.h"
#include "shardtrie_export.h"
#include "support/pyroscope_rx.h"
#include "bench/util.h"

#define DEPTH 12
#define BATCH 256
#define MAXW 64
#define MAXPAIRS 64

static unsigned nstacks = 20000;
static uint32_t *frames; /* nstacks * DEPTH frame ids */
static bool pinned;
static unsigned ncpu;

struct writer {
	struct st_engine *e;
	atomic_int *stop;
	uint64_t samples;
	double cpu;       /* the writer thread's CPU seconds */
	long vcsw, ivcsw; /* its context switches */
	unsigned seed;
	pid_t tid;
	pthread_t thr;
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
	w->tid = (pid_t)syscall(SYS_gettid);
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
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	w->vcsw = ru.ru_nvcsw;
	w->ivcsw = ru.ru_nivcsw;
	return NULL;
}

/* The control: a busy thread on the last CPU that touches no memory. */
static void *spin(void *arg)
{
	atomic_int *stop = arg;
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	while (!atomic_load_explicit(stop, memory_order_relaxed))
		for (int i = 0; i < 100000; i++)
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	return (void *)(uintptr_t)(x & 1);
}

static double process_cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU set: only `cpu`, or every CPU when not pinned. */
static void cpus(cpu_set_t *set, int cpu)
{
	CPU_ZERO(set);
	for (unsigned i = 0; i < ncpu && i < CPU_SETSIZE; i++)
		if (!pinned || (int)i == cpu)
			CPU_SET(i, set);
}

static int start_on(pthread_t *t, int cpu, void *(*fn)(void *), void *arg)
{
	pthread_attr_t a;
	cpu_set_t set;
	cpus(&set, cpu);
	pthread_attr_init(&a);
	pthread_attr_setaffinity_np(&a, sizeof(set), &set);
	int rc = pthread_create(t, &a, fn, arg);
	pthread_attr_destroy(&a);
	return rc;
}

/* Threads other than the writers allowed on CPU 0 (pinned runs: 0). */
static unsigned others_on_cpu0(const struct writer *w, unsigned nw)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	unsigned n = 0;
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);
		bool mine = tid <= 0;
		for (unsigned i = 0; i < nw && !mine; i++)
			mine = w[i].tid == tid;
		cpu_set_t set;
		if (!mine && !sched_getaffinity(tid, sizeof(set), &set) && CPU_ISSET(0, &set))
			n++;
	}
	closedir(d);
	return n;
}

struct rates {
	double wall;    /* samples per second */
	double per_cpu; /* samples per writer CPU second */
	double other;   /* CPU seconds per second outside the writers */
	double vcsw, ivcsw, ipis; /* per second: the writers' switches, CPU 0's IPIs */
};

enum kind { OFF, ON, SPIN };

/* One run; with push, *pushes and *exact updated. */
static struct rates run(double secs, unsigned nw, enum kind k, struct prx *rx, uint64_t *pushes,
			int *exact, unsigned *misplaced)
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
	if (k == ON) {
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
	atomic_int stop = 0, spin_stop = 0;
	pthread_t spinner;
	if (k == SPIN && start_on(&spinner, (int)ncpu - 1, spin, &spin_stop))
		exit(70);
	struct writer w[MAXW];
	unsigned long long ipi0 = cpu0_ipis();
	double t0 = now_s(), c0 = process_cpu();
	for (unsigned i = 0; i < nw; i++) {
		w[i] = (struct writer){ .e = e, .stop = &stop, .seed = 7 + i };
		if (start_on(&w[i].thr, 0, writer, &w[i]))
			exit(70);
	}
	struct timespec ts = { (time_t)secs, (long)((secs - (time_t)secs) * 1e9) };
	nanosleep(&ts, NULL); /* the measured span, not a synchronisation */
	if (pinned)
		*misplaced += others_on_cpu0(w, nw);
	atomic_store(&stop, 1);
	uint64_t total = 0;
	double wcpu = 0;
	long vcsw = 0, ivcsw = 0;
	for (unsigned i = 0; i < nw; i++) {
		pthread_join(w[i].thr, NULL);
		total += w[i].samples;
		wcpu += w[i].cpu;
		vcsw += w[i].vcsw;
		ivcsw += w[i].ivcsw;
	}
	double span = now_s() - t0;
	struct rates rate = { (double)total / span, (double)total / wcpu,
			      (process_cpu() - c0 - wcpu) / span, vcsw / span, ivcsw / span,
			      (double)(cpu0_ipis() - ipi0) / span };
	if (k == SPIN) {
		atomic_store(&spin_stop, 1);
		pthread_join(spinner, NULL);
	}
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

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(const double *v, unsigned n)
{
	double s[MAXPAIRS];
	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(double), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* ------------------------------------------------- what one interval costs */

static double thread_cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long minflt(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_minflt;
}

/* A FILE that counts and drops what is written (encoding cost alone). */
static ssize_t null_write(void *c, const char *buf, size_t n)
{
	*(size_t *)c += n;
	return (ssize_t)n;
}

/*
 * `push_cost encode REPS`: the pusher's work for one interval of the bench
 * (every stack grown, as after 1 s of ingest), without threads: the CPU
 * time and minor page faults per call of st_export_delta() (what push.c
 * calls: st_snap_delta() of the two snapshots, then written) against
 * st_export() of the later snapshot alone in the same format (the writer
 * and gzip without the private engine).
 */
static int encode_cost(unsigned reps)
{
	struct st_options so;
	st_options_init(&so);
	so.merge_interval_ms = 0;
	struct st_engine *e = st_engine_create(&so);
	if (!e)
		return 70;
	for (unsigned i = 0; i < 4096; i++) {
		char name[32];
		int n = snprintf(name, sizeof(name), "func_%u", i);
		st_intern(e, name, (size_t)n);
	}
	uint64_t one = 1;
	struct st_snap *a = NULL, *b;
	struct st_writer *w = st_writer_open(e);
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned k = 0; k < nstacks; k++) {
			struct st_sample s = { frames + (size_t)k * DEPTH, DEPTH, &one };
			st_writer_ingest_batch(w, &s, 1);
		}
		st_flush(e);
		if (pass == 0)
			a = st_snap_acquire(e);
	}
	st_writer_close(w);
	b = st_snap_acquire(e);
	struct st_export_opts eo;
	st_export_opts_init(&eo);
	/* A thread of this process busy on CPU 0 (a writer's stand-in, touching
	 * no memory) while this one encodes on the last CPU: the IPIs CPU 0
	 * takes are what the encoding makes a writer's CPU take. */
	atomic_int stop = 0;
	pthread_t spinner;
	bool spinning = false;
	if (ncpu >= 2) {
		pinned = true;
		cpu_set_t set;
		cpus(&set, (int)ncpu - 1);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
		spinning = !start_on(&spinner, 0, spin, &stop);
	}
	static const struct {
		const char *name;
		int fmt;
		bool delta;
	} k[] = { { "delta_pprof", ST_FMT_PPROF, true },
		  { "export_pprof", ST_FMT_PPROF, false },
		  { "delta_folded", ST_FMT_FOLDED, true },
		  { "export_folded", ST_FMT_FOLDED, false } };
	for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
		double cpu[MAXPAIRS];
		long flt = 0;
		size_t bytes = 0;
		uint64_t total = 0;
		unsigned long long ipi0 = cpu0_ipis();
		for (unsigned r = 0; r < reps; r++) {
			cookie_io_functions_t io = { .write = null_write };
			size_t n = 0;
			FILE *f = fopencookie(&n, "w", io);
			long f0 = minflt();
			double c0 = thread_cpu();
			int rc = k[i].delta ? st_export_delta(a, b, 0, k[i].fmt, &eo, f, &total)
					    : st_export(b, k[i].fmt, &eo, f);
			fclose(f);
			cpu[r] = thread_cpu() - c0;
			flt += minflt() - f0;
			bytes = n;
			if (rc)
				return 70;
		}
		printf("PUSH_ENCODE %s: %.2f ms CPU (median of %u), %ld minor faults, %.0f IPIs to "
		       "CPU 0%s, %zu bytes, nodes %zu, interval total %llu\n",
		       k[i].name, 1e3 * median(cpu, reps), reps, flt / (long)reps,
		       (double)(cpu0_ipis() - ipi0) / reps, spinning ? "" : " (no spinner)", bytes,
		       st_snap_node_count(b), (unsigned long long)total);
	}
	if (spinning) {
		atomic_store(&stop, 1);
		pthread_join(spinner, NULL);
	}
	st_snap_release(a);
	st_snap_release(b);
	st_engine_destroy(e);
	return 0;
}

int main(int argc, char **argv)
{
	ncpu = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	if (argc > 1 && !strcmp(argv[1], "encode")) {
		unsigned reps = argc > 2 ? (unsigned)atoi(argv[2]) : 9;
		if (argc > 3)
			nstacks = (unsigned)atoi(argv[3]);
		if (!reps || reps > MAXPAIRS || !nstacks)
			return 64;
		frames = malloc((size_t)nstacks * DEPTH * sizeof(*frames));
		unsigned seed = 1;
		for (size_t i = 0; i < (size_t)nstacks * DEPTH; i++)
			frames[i] = (uint32_t)rand_r(&seed) % 4096;
		int rc = encode_cost(reps);
		free(frames);
		return rc;
	}
	double secs = argc > 1 ? atof(argv[1]) : 3;
	unsigned pairs = argc > 2 ? (unsigned)atoi(argv[2]) : 11;
	unsigned nw = argc > 3 ? (unsigned)atoi(argv[3]) : 1;
	if (argc > 4)
		nstacks = (unsigned)atoi(argv[4]);
	const char *place = argc > 5 ? argv[5] : "pinned";
	if (secs <= 0 || !pairs || pairs > MAXPAIRS || !nw || nw > MAXW || !nstacks ||
	    (strcmp(place, "pinned") && strcmp(place, "free"))) {
		fprintf(stderr, "usage: push_cost [SECONDS [PAIRS [WRITERS [STACKS [pinned|free]]]]]\n");
		return 64;
	}
	pinned = !strcmp(place, "pinned") && ncpu >= 2;
	if (pinned) { /* everything made from here on: the last CPU */
		cpu_set_t set;
		cpus(&set, (int)ncpu - 1);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
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
	double dw[MAXPAIRS], dc[MAXPAIRS], sw[MAXPAIRS], sc[MAXPAIRS];
	double offw[MAXPAIRS], onw[MAXPAIRS], offo[MAXPAIRS], ono[MAXPAIRS];
	double offipi[MAXPAIRS], onipi[MAXPAIRS], offiv[MAXPAIRS], oniv[MAXPAIRS];
	uint64_t pushes = 0;
	int exact = 1;
	unsigned misplaced = 0;
	for (unsigned r = 0; r < pairs; r++) {
		struct rates a, b, c = { 0 };
		if (r % 2 == 0) {
			a = run(secs, nw, OFF, rx, &pushes, &exact, &misplaced);
			b = run(secs, nw, ON, rx, &pushes, &exact, &misplaced);
		} else {
			b = run(secs, nw, ON, rx, &pushes, &exact, &misplaced);
			a = run(secs, nw, OFF, rx, &pushes, &exact, &misplaced);
		}
		if (pinned)
			c = run(secs, nw, SPIN, rx, &pushes, &exact, &misplaced);
		dw[r] = 100.0 * (1 - b.wall / a.wall);
		dc[r] = 100.0 * (1 - b.per_cpu / a.per_cpu);
		sw[r] = pinned ? 100.0 * (1 - c.wall / a.wall) : 0;
		sc[r] = pinned ? 100.0 * (1 - c.per_cpu / a.per_cpu) : 0;
		offw[r] = a.wall, onw[r] = b.wall, offo[r] = a.other, ono[r] = b.other;
		offipi[r] = a.ipis, onipi[r] = b.ipis, offiv[r] = a.ivcsw, oniv[r] = b.ivcsw;
		fprintf(stderr,
			"push_cost: pair %u (%s first): off %.2f M/s %.2f M/cpu-s, on %.2f M/s %.2f "
			"M/cpu-s: drop %.2f %% (cpu %.2f %%); vcsw off/on %.0f/%.0f/s, ivcsw "
			"%.0f/%.0f/s, CPU0 IPIs %.0f/%.0f/s, other CPU %.3f/%.3f\n",
			r, r % 2 ? "on" : "off", a.wall / 1e6, a.per_cpu / 1e6, b.wall / 1e6,
			b.per_cpu / 1e6, dw[r], dc[r], a.vcsw, b.vcsw, a.ivcsw, b.ivcsw, a.ipis,
			b.ipis, a.other, b.other);
		if (pinned)
			fprintf(stderr, "push_cost: pair %u control spin: %.2f M/s %.2f M/cpu-s: drop "
					"%.2f %% (cpu %.2f %%)\n",
				r, c.wall / 1e6, c.per_cpu / 1e6, sw[r], sc[r]);
	}
	printf("PUSH_COST drop=%.2f%% drop_wall=%.2f%% control_spin=%.2f%% control_spin_wall=%.2f%% "
	       "off=%.3fM/s on=%.3fM/s other_cpu: off=%.3f on=%.3f ivcsw/s: off=%.0f on=%.0f "
	       "cpu0_ipis/s: off=%.0f on=%.0f placement=%s misplaced=%u writers=%u stacks=%u "
	       "secs=%.1f pairs=%u pushes=%llu accepted=%zu exact=%s\n",
	       median(dc, pairs), median(dw, pairs), median(sc, pairs), median(sw, pairs),
	       median(offw, pairs) / 1e6, median(onw, pairs) / 1e6, median(offo, pairs),
	       median(ono, pairs), median(offiv, pairs), median(oniv, pairs),
	       median(offipi, pairs), median(onipi, pairs), pinned ? "pinned" : "free", misplaced,
	       nw, nstacks, secs, pairs, (unsigned long long)pushes, prx_accepted(rx),
	       exact ? "yes" : "no");
	prx_stop(rx);
	free(frames);
	return exact && !misplaced ? 0 : 1;
}
