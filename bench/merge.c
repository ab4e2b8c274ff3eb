/* SPDX-License-Identifier: MIT */
/*
 * merge.c - merge scaling (merge_mrps_1w, merge_mrps_2w, merge_scale), the
 * per-record costs of the merge, and the scaling model computed from them
 * ("Merge scaling model" in docs/benchmarking.md).
 *
 * One engine per measurement: merge_interval_ms = 0 (no merger thread: only
 * st_flush() merges, timed by the engine's own merge_fold_ns / publish_ns),
 * st_options.merge_workers = 1 or 2, one writer in the calling thread
 * pinned to CPU 0, the cold workload's draws (1 M distinct stacks):
 *
 *   1. ingest the 1 M stacks, st_flush   new records, new nodes    (new)
 *   2. the same 1 M again, st_flush      new records (a table over 64 Ki
 *                                        records is cleared after its
 *                                        fold), nodes all known      (known)
 *   3. the first 50 K draws, flushed, 2 + MERGE_LINKED_ROUNDS times: the
 *      shard table keeps its records (folded in place), so from the
 *      second round on each record is added through its master link
 *                                                                  (linked)
 *   4. 3 empty flushes: the fixed cost of a fold (no grace period unless a
 *      table is swapped out to be cleared)
 *
 * merge_mrps: records / the engine's fold wall clock (merge_fold_ns) of
 * step 1: what a flush achieves, workers in parallel included.  The costs
 * per record are CPU: the process's CPU over each step's flushes, split
 * between fold and publish in the proportion of the engine's two wall
 * clocks, less the fixed fold's CPU, per record (publish: per node, from
 * step 1's first build and step 3's rebuilds of a known shape).  CPU is not
 * inflated by preemption on a shared host, and with several workers it is
 * their summed work, which the model divides among workers itself.  The
 * 1w and 2w engines alternate (pairs, the order swapped every pair); the
 * figures are medians, merge_scale the median of per-pair ratios.
 * Invariant: every engine's root total equals what it ingested (`lost`,
 * runs.csv `merge1w` / `merge2w`).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "util.h"

enum { MERGE_LINKED = 50000, MERGE_LINKED_ROUNDS = 8, MERGE_EMPTY = 3 };

struct fold_delta {
	uint64_t records, fold_ns, publish_ns; /* st_stats: the engine's wall clocks */
	double cpu_ns;                         /* the process's CPU meanwhile */
};

/* st_flush(e) and what it folded and published: st_stats deltas, and the
 * process's CPU time (every merge worker's; the writer is this thread). */
static void flush_delta(struct st_engine *e, struct fold_delta *d, uint64_t *errs)
{
	struct st_stats a = { .size = sizeof(a) }, b = { .size = sizeof(b) };
	st_engine_stats(e, &a);
	double c0 = bench_clock(CLOCK_PROCESS_CPUTIME_ID);
	*errs += !st_flush(e);
	double c1 = bench_clock(CLOCK_PROCESS_CPUTIME_ID);
	st_engine_stats(e, &b);
	d->records += b.merge_records - a.merge_records;
	d->fold_ns += b.merge_fold_ns - a.merge_fold_ns;
	d->publish_ns += b.publish_ns - a.publish_ns;
	d->cpu_ns += (c1 - c0) * 1e9;
}

/* The CPU of the fold (part = 0) or of the publish (1): the flushes' CPU
 * split in the proportion of the engine's fold and publish wall clocks. */
static double cpu_part(const struct fold_delta *d, int part)
{
	double all = (double)d->fold_ns + (double)d->publish_ns;
	return all > 0 ? d->cpu_ns * (double)(part ? d->publish_ns : d->fold_ns) / all : 0;
}

static double per(double ns, uint64_t n)
{
	return n ? ns / (double)n : 0;
}

/* Fold CPU (less the fixed CPU of each fold) per record. */
static double per_rec(const struct fold_delta *d, unsigned folds, double fixed)
{
	double ns = cpu_part(d, 0) - fixed * folds;
	return per(ns > 0 ? ns : 0, d->records);
}

static void merge_engine(struct workload *W, unsigned workers, unsigned rep, struct merge_one *o,
			 size_t *nodes)
{
	struct st_options opt;
	st_options_init(&opt);
	opt.merge_interval_ms = 0;
	opt.merge_workers = workers;
	struct st_engine *e = wl_engine_opts(W, &opt);
	if (!e)
		exit(2);
	cpu_set_t saved;
	pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved);
	bench_pin(0);
	const uint32_t *d = wl_draws(W, 0);
	struct st_writer *w = st_writer_open(e);
	if (!d || !w) {
		fprintf(stderr, "bench: merge: no draws or writer\n");
		exit(2);
	}
	size_t n = W->samples, nl = n < MERGE_LINKED ? n : MERGE_LINKED;
	uint64_t errs = 0;
	struct fold_delta fnew = { 0 }, fknown = { 0 }, flinked = { 0 }, fwarm = { 0 };
	struct st_stats st = { .size = sizeof(st) };

	double t0 = bench_now(), c0 = bench_cpu();
	errs += bench_ingest_pass(W, w, d, n, true);
	double c1 = bench_cpu(), t1 = bench_now(), p1 = bench_clock(CLOCK_PROCESS_CPUTIME_ID);
	flush_delta(e, &fnew, &errs);
	double t2 = bench_now(), p2 = bench_clock(CLOCK_PROCESS_CPUTIME_ID);
	st_engine_stats(e, &st);
	size_t nodes1 = st.nodes;

	errs += bench_ingest_pass(W, w, d, n, true);
	flush_delta(e, &fknown, &errs);

	for (unsigned r = 0; r < 2 + MERGE_LINKED_ROUNDS; r++) {
		errs += bench_ingest_pass(W, w, d, nl, true);
		flush_delta(e, r < 2 ? &fwarm : &flinked, &errs);
	}
	double fixed[MERGE_EMPTY], fixed_cpu[MERGE_EMPTY];
	for (unsigned r = 0; r < MERGE_EMPTY; r++) {
		struct fold_delta z = { 0 };
		flush_delta(e, &z, &errs);
		fixed[r] = (double)z.fold_ns;
		fixed_cpu[r] = cpu_part(&z, 0);
	}
	st_writer_close(w);
	pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);

	struct result res = { 0 };
	uint64_t expected = 2 * (uint64_t)n + (uint64_t)nl * (2 + MERGE_LINKED_ROUNDS);
	res.samples = n;
	res.secs = t1 - t0;
	res.e2e_secs = t2 - t0;
	res.flush_secs = t2 - t1;
	res.cpu_secs = c1 - c0;
	res.lost = errs + bench_engine_check(e, expected, &res.st);
	record(W_COLD, V_BATCH, 1, 0, rep, &res, workers == 1 ? "merge1w" : "merge2w");
	st_engine_destroy(e);

	o->fixed_ns = bench_median(fixed, MERGE_EMPTY);
	double fcpu = bench_median(fixed_cpu, MERGE_EMPTY);
	o->wc_ns = per(res.cpu_secs * 1e9, n);
	o->mrps = fnew.fold_ns ? (double)fnew.records * 1e3 / (double)fnew.fold_ns : 0;
	o->new_ns = per_rec(&fnew, 1, fcpu);
	o->known_ns = per_rec(&fknown, 1, fcpu);
	o->linked_ns = per_rec(&flinked, MERGE_LINKED_ROUNDS, fcpu);
	o->pub_first_ns = per(cpu_part(&fnew, 1), nodes1);
	o->pub_ns = per(cpu_part(&flinked, 1), (uint64_t)nodes1 * MERGE_LINKED_ROUNDS);
	o->flush1_s = res.flush_secs;
	o->flush1_cpu_s = p2 - p1;
	*nodes = nodes1;
	if (flinked.records != (uint64_t)nl * MERGE_LINKED_ROUNDS || fnew.records != n)
		fprintf(stderr, "bench: merge: folded %llu new / %llu linked records, expected "
				"%zu / %zu\n", (unsigned long long)fnew.records,
			(unsigned long long)flinked.records, n, nl * MERGE_LINKED_ROUNDS);
}

/* Field-by-field medians of v[0..n). */
static void merge_median(const struct merge_one *v, size_t n, struct merge_one *m)
{
	enum { NF = sizeof(struct merge_one) / sizeof(double) };
	_Static_assert(sizeof(struct merge_one) % sizeof(double) == 0, "doubles only");
	for (size_t f = 0; f < NF; f++) {
		double tmp[MERGE_MAX_PAIRS];
		for (size_t k = 0; k < n; k++)
			tmp[k] = ((const double *)&v[k])[f];
		((double *)m)[f] = bench_median(tmp, n);
	}
}

void merge_scaling(struct workload *cold, struct merge_cost *mc)
{
	memset(mc, 0, sizeof(*mc));
	unsigned npairs = cfg.short_mode ? 3 : cfg.reps;
	npairs = npairs > MERGE_MAX_PAIRS ? MERGE_MAX_PAIRS : npairs;
	for (unsigned k = 0; k < npairs; k++) {
		struct merge_one *a = &mc->w1[k], *b = &mc->w2[k];
		if (k % 2 == 0) {
			merge_engine(cold, 1, k + 1, a, &mc->nodes);
			merge_engine(cold, 2, k + 1, b, &mc->nodes);
		} else {
			merge_engine(cold, 2, k + 1, b, &mc->nodes);
			merge_engine(cold, 1, k + 1, a, &mc->nodes);
		}
		mc->scale[k] = a->mrps > 0 ? b->mrps / a->mrps : 0;
		mc->n++;
		fprintf(stderr, "bench: merge pair %u/%u done\n", k + 1, npairs);
	}
	merge_median(mc->w1, mc->n, &mc->m1);
	merge_median(mc->w2, mc->n, &mc->m2);
	double tmp[MERGE_MAX_PAIRS];
	memcpy(tmp, mc->scale, mc->n * sizeof(double));
	mc->med_scale = bench_median(tmp, mc->n);
	mc->q1 = bench_pct(tmp, mc->n, 0.25);
	mc->q3 = bench_pct(tmp, mc->n, 0.75);
	mc->records = cold->samples;
	mc->linked_stacks = cold->samples < MERGE_LINKED ? cold->samples : MERGE_LINKED;
}

static void merge_one_print(const struct merge_one *m, const char *what)
{
	printf("  %s: %.2f M records/s folded (new); fold CPU ns/record: new %.0f, known "
	       "%.0f, linked %.1f; fixed %.0f us per fold (wall); publish CPU ns/node: first "
	       "build %.1f, rebuild %.1f; writer %.0f ns/sample (cold); first flush %.0f ms wall, %.0f ms CPU (all "
	       "threads)\n",
	       what, m->mrps, m->new_ns, m->known_ns, m->linked_ns, m->fixed_ns * 1e-3,
	       m->pub_first_ns, m->pub_ns, m->wc_ns, m->flush1_s * 1e3, m->flush1_cpu_s * 1e3);
}

void merge_print(const struct merge_cost *mc)
{
	if (!mc->n)
		return;
	printf("\nmerge scaling (cold, %zu records, 1 pinned writer, merger idle, medians of %zu "
	       "interleaved pairs; %zu nodes; linked: %zu stacks x %d rounds):\n",
	       mc->records, mc->n, mc->nodes, mc->linked_stacks, MERGE_LINKED_ROUNDS);
	merge_one_print(&mc->m1, "1 merge worker ");
	merge_one_print(&mc->m2, "2 merge workers");
	printf("  merge_scale (2w / 1w, median of per-pair ratios) %.3f, IQR %.3f..%.3f\n",
	       mc->med_scale, mc->q1, mc->q3);
}

/* ------------------------------------------------------------ the model */

/*
 * What the engine does with k merge workers (merge_layout in
 * engine/core/engine.c): k is at most 16 (st_options.merge_workers), and
 * the master is split into P = 4k partitions rounded up to a power of two
 * (1 with one worker), so P reaches its most, 64, at 16 workers.  P >= k
 * always: the partitions never leave a worker idle, the workers' cap is
 * what limits the speed-up.
 */
enum { MODEL_T_MS = 10, MODEL_K_MAX = 16, MODEL_PARTS_PER_WORKER = 4 };
static const unsigned model_writers[] = { 8, 16, 32, 64, 128 };

static unsigned model_parts(unsigned k)
{
	unsigned p = 1;
	while (k > 1 && p < MODEL_PARTS_PER_WORKER * k)
		p *= 2;
	return p;
}

/* Speed-up of k merge workers (each with at least one partition of its
 * own), Amdahl's law with the serial fraction f that makes 2 workers give
 * s2. */
static double speedup(unsigned k, double f)
{
	return 1.0 / (f + (1.0 - f) / k);
}

static double serial_fraction(double s2)
{
	double f = s2 > 0 ? 2.0 / s2 - 1.0 : 1.0;
	return f < 0 ? 0 : f > 1 ? 1 : f;
}

/* The fewest workers that give `load` cores of merge work: k/P (workers,
 * the partitions the engine makes for them); ">16" when more workers than
 * the engine runs would; "never" when none would (Amdahl's limit 1/f is
 * below the load). */
static void print_need(double load, double f)
{
	char buf[16];
	unsigned k = 1;
	while (k <= MODEL_K_MAX && speedup(k, f) < load)
		k++;
	if (k <= MODEL_K_MAX)
		snprintf(buf, sizeof(buf), "%u/%u", k, model_parts(k));
	else if (f * load < 1.0)
		snprintf(buf, sizeof(buf), ">%u", MODEL_K_MAX);
	else
		snprintf(buf, sizeof(buf), "never");
	printf(" %9s", buf);
}

void merge_model_print(const struct merge_cost *mc, const struct snap_cpu *sc)
{
	if (!mc->n)
		return;
	const double T = MODEL_T_MS * 1e6; /* ns */
	const struct merge_one *m = &mc->m1;
	const bool hot = sc && sc->n;
	/* Hot: per writer, the records its shard lists per period, each one
	 * linked add; per period, one fixed fold and one rebuild of the trie
	 * (publishing throttles itself to a quarter of the merger). */
	double rh = hot ? sc->med_recs_per_merge : 0;
	double dh = rh * m->linked_ns / T;
	double gh = m->fixed_ns / T;
	double build = hot ? m->pub_ns * (double)sc->nodes : 0; /* ns per publish */
	double ph = fmin(build / T, 0.25);
	/* Cold: every sample a new record making new nodes; a growing trie's
	 * rebuilds take their throttled quarter. */
	double dc = m->wc_ns > 0 ? m->new_ns / m->wc_ns : 0;
	double pc = 0.25;
	double f_meas = serial_fraction(mc->med_scale), f_goal = serial_fraction(1.6);

	printf("\nmerge model (T = %d ms; k merge workers, at most %d, over P = %dk partitions "
	       "rounded up to a power of two; docs/benchmarking.md, \"Merge scaling model\"):\n",
	       MODEL_T_MS, MODEL_K_MAX, MODEL_PARTS_PER_WORKER);
	if (hot)
		printf("  hot:  writer %.1f ns/sample (merger idle); %.0f records per writer per "
		       "period x %.1f ns (linked) -> d_h = %.4f cores per writer; "
		       "fixed g/T = %.4f; "
		       "publish p_h = min(%.1f ns x %zu nodes / T, 0.25) = %.3f\n",
		       sc->med_off_ns, rh, m->linked_ns, dh, gh, m->pub_ns, sc->nodes, ph);
	else
		printf("  hot:  not measured (the snap_impact pairs did not run)\n");
	printf("  cold: writer %.0f ns/sample, merger %.0f ns per new record -> d_c = %.3f cores "
	       "per writer; publish p_c = 0.25 (throttled)\n", m->wc_ns, m->new_ns, dc);
	if (hot)
		printf("  check: 1 writer predicts a merger share of %.3f, measured "
		       "merger_cpu_share "
		       "%.3f\n", dh + gh + ph, sc->med_share);
	printf("  merge workers: Amdahl serial fraction f = 2/s2 - 1 = %.2f from the measured "
	       "merge_scale s2 = %.2f (%.2f at the target s2 = 1.6); one merger saturates at "
	       "W_h = %.0f, W_c = %.1f writers\n",
	       f_meas, mc->med_scale, f_goal, dh > 0 ? (1 - gh - ph) / dh : 0,
	       dc > 0 ? (1 - pc) / dc : 0);
	printf("  %7s %9s %9s %9s %9s %9s %9s %9s %9s\n", "writers", "hot_load", "hot_T_ms",
	       "hot_k", "hot_k1.6", "cold_load", "cold_cap", "cold_k", "cold_k1.6");
	for (size_t i = 0; i < sizeof(model_writers) / sizeof(model_writers[0]); i++) {
		double W = model_writers[i];
		double lh = W * dh + gh + ph, lc = W * dc + pc;
		/* One merger on hot: once a period's fold and publish outgrow T
		 * they run back to back, the period stretches to their sum (the
		 * records per period stay about the hot set). */
		double th = hot ? fmax(T, W * rh * m->linked_ns + m->fixed_ns + build) * 1e-6 : 0;
		printf("  %7.0f %9.2f %9.1f", W, hot ? lh : 0, th);
		if (hot) {
			print_need(lh, f_meas);
			print_need(lh, f_goal);
		} else {
			printf(" %9s %9s", "-", "-");
		}
		printf(" %9.2f %8.0f%%", lc, 100 * fmin(1, 1 / lc));
		print_need(lc, f_meas);
		print_need(lc, f_goal);
		printf("\n");
	}
	printf("  hot_load, cold_load: cores of merge work (1 = one merger busy); hot_T_ms: one "
	       "merger's period; cold_cap: the share of the writers' new stacks one merger "
	       "folds; *_k: k/P, the merge workers needed and the partitions the engine makes "
	       "for them, at the measured s2 and at s2 = 1.6 (>%d: more workers than the engine "
	       "runs; never: Amdahl's limit 1/f is below the load)\n", MODEL_K_MAX);
}
