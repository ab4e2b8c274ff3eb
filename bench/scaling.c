/* SPDX-License-Identifier: MIT */
/*
 * scaling.c - the scaling tables (the method's step 3): one untimed warm-up
 * run per (workload, variant), then `reps` repetitions interleaved across
 * thread counts and variants so that noise from other work on the machine
 * spreads evenly; the medians are quoted.  Every run also goes to runs.csv.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "bench.h"
#include "util.h"

/* One cell: the repetitions of (workload, variant, threads). */
struct cell {
	double rate[3][MAXT]; /* by enum cell_rate */
	size_t n;
};
static struct cell cells[NWL][NVARIANTS][MAXT + 1];
/* Steady state: engine_batch, 1 thread, two flushed warm passes first. */
static struct cell ss_cells[NWL];

static FILE *runs_csv;
static uint64_t lost;

int runs_open(void)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/runs.csv", cfg.outdir);
	runs_csv = fopen(path, "w");
	if (!runs_csv) {
		fprintf(stderr, "bench: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(runs_csv, "workload,variant,threads,merge_ms,rep,samples,seconds,e2e_seconds,"
			  "mps,mps_e2e,mps_per_cpu_s,lost\n");
	return 0;
}

void runs_close(void)
{
	fclose(runs_csv);
}

uint64_t lost_total(void)
{
	return lost;
}

static void cell_add(struct cell *c, const struct result *r)
{
	if (c->n < MAXT) {
		c->rate[RATE_E2E][c->n] = mps_e2e(r);
		c->rate[RATE_CPU][c->n] = mps_cpu(r);
		c->rate[RATE_WALL][c->n++] = mps(r);
	}
}

void record(enum wl_id wi, enum variant v, unsigned t, unsigned merge_ms, unsigned rep,
	    const struct result *r, const char *kind)
{
	lost += r->lost;
	fprintf(runs_csv, "%s,%s,%u,%u,%s%u,%" PRIu64 ",%.6f,%.6f,%.3f,%.3f,%.3f,%" PRIu64 "\n",
		wlname[wi], vname[v], t, merge_ms, kind ? kind : "", rep, r->samples, r->secs,
		r->e2e_secs, mps(r), mps_e2e(r), mps_cpu(r), r->lost);
	if (kind)
		return;
	cell_add(&cells[wi][v][t], r);
	if (r->lost)
		fprintf(stderr, "bench: LOST %" PRIu64 " samples in %s/%s/%ut\n", r->lost,
			wlname[wi], vname[v], t);
}

static double med_of_cell(const struct cell *c, enum cell_rate what)
{
	double tmp[MAXT];
	memcpy(tmp, c->rate[what], c->n * sizeof(double));
	return bench_median(tmp, c->n);
}

double cell_med(enum wl_id wi, enum variant v, unsigned t, enum cell_rate what)
{
	return med_of_cell(&cells[wi][v][t], what);
}

double ss_med(enum wl_id wi, enum cell_rate what)
{
	return med_of_cell(&ss_cells[wi], what);
}

/* The steady-state cell of hot and strings: the same runs as the table's
 * engine_batch 1-thread cell (merger every 10 ms, one timed pass) after
 * two untimed passes, each flushed, so that every stack is known (hot: the
 * trie and both shard tables exist; strings: every name interned, every
 * stack in the writer's cache).  One per repetition, after the table's. */
static void steady_rep(enum wl_id wi, struct workload *W, unsigned rep)
{
	struct result r;
	if ((wi != W_HOT && wi != W_STRINGS) || !variant_wanted(V_BATCH))
		return;
	run_warm(W, V_BATCH, 1, 10, 2, 1, NULL, &r);
	record(wi, V_BATCH, 1, 10, rep, &r, "ss");
	cell_add(&ss_cells[wi], &r);
}

/* One run of variant v on t threads (the mutex trie on 1/mutex_div of the
 * samples: it is 20-50x slower; rates are rates). */
static void run_cell(struct workload *W, enum variant v, unsigned t, struct result *r)
{
	size_t saved = W->samples;
	if (v == V_MUTEX)
		W->samples = saved / cfg.mutex_div;
	run_once(W, v, t, 10, 1, NULL, r);
	W->samples = saved;
}

void scaling(enum wl_id wi, struct workload *W, const enum variant *vs, size_t nv,
	     unsigned max_t)
{
	struct result r;
	if (cfg.only && !only_is(wlname[wi]))
		return;
	for (size_t k = 0; k < nv; k++) {
		if (!variant_wanted(vs[k]))
			continue;
		run_cell(W, vs[k], 1, &r); /* warm-up */
		record(wi, vs[k], 1, 10, 0, &r, "warmup");
	}
	for (unsigned rep = 1; rep <= cfg.reps; rep++) {
		for (unsigned ti = 0; ti < cfg.ntcounts; ti++) {
			unsigned t = cfg.tcounts[ti];
			if (t > max_t)
				continue;
			for (size_t k = 0; k < nv; k++) {
				if (!variant_wanted(vs[k]))
					continue;
				run_cell(W, vs[k], t, &r);
				record(wi, vs[k], t, 10, rep, &r, NULL);
			}
		}
		steady_rep(wi, W, rep);
		fprintf(stderr, "bench: %s rep %u/%u done\n", wlname[wi], rep, cfg.reps);
	}
}

/* One row of the table, and of results.csv when rc is not NULL. */
static void print_row(FILE *rc, enum wl_id wi, const char *vn, unsigned t, const struct cell *ce)
{
	double tmp[MAXT];
	memcpy(tmp, ce->rate[RATE_WALL], ce->n * sizeof(double));
	double med = bench_median(tmp, ce->n); /* tmp now sorted: min, max */
	double e2e = med_of_cell(ce, RATE_E2E), cpu = med_of_cell(ce, RATE_CPU);
	double spread = med > 0 ? (tmp[ce->n - 1] - tmp[0]) / med * 100 : 0;
	printf("%-8s %-16s %4u %10.2f %12.2f %10.2f %10.2f %9.1f\n", wlname[wi], vn, t, med,
	       med / t, e2e, cpu, spread);
	if (rc)
		fprintf(rc, "%s,%s,%u,%zu,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f\n", wlname[wi], vn, t,
			ce->n, med, med / t, e2e, cpu, tmp[0], tmp[ce->n - 1]);
}

static void print_cell(FILE *rc, enum wl_id wi, enum variant v, unsigned t)
{
	print_row(rc, wi, vname[v], t, &cells[wi][v][t]);
	if (v == V_BATCH && t == 1 && ss_cells[wi].n)
		print_row(rc, wi, "engine_batch_ss", 1, &ss_cells[wi]);
}

void print_table(FILE *rc)
{
	printf("\n%-8s %-16s %4s %10s %12s %10s %10s %9s\n", "workload", "variant", "thr",
	       "Msamples/s", "M/s/thread", "e2e M/s", "M/cpu-s", "spread%");
	for (int wi = 0; wi < NWL; wi++)
		for (int v = 0; v < NVARIANTS; v++)
			for (unsigned ti = 0; ti < cfg.ntcounts; ti++)
				if (cells[wi][v][cfg.tcounts[ti]].n)
					print_cell(rc, wi, v, cfg.tcounts[ti]);
}

void write_hot_dat(FILE *dat)
{
	fprintf(dat, "threads");
	for (int v = 0; v < NVARIANTS; v++)
		fprintf(dat, " %s", vname[v]);
	fprintf(dat, "\n");
	for (unsigned ti = 0; ti < cfg.ntcounts; ti++) {
		fprintf(dat, "%u", cfg.tcounts[ti]);
		for (int v = 0; v < NVARIANTS; v++)
			fprintf(dat, " %.3f", cell_med(W_HOT, v, cfg.tcounts[ti], RATE_WALL));
		fprintf(dat, "\n");
	}
}

void write_json_cells(FILE *js)
{
	fprintf(js, "  \"results\": [\n");
	const char *sep = "";
	for (int wi = 0; wi < NWL; wi++)
		for (int v = 0; v < NVARIANTS; v++)
			for (unsigned ti = 0; ti < cfg.ntcounts; ti++) {
				unsigned t = cfg.tcounts[ti];
				if (!cells[wi][v][t].n)
					continue;
				fprintf(js,
					"%s    {\"workload\": \"%s\", \"variant\": \"%s\", "
					"\"threads\": %u, \"median_mps\": %.3f, "
					"\"median_mps_e2e\": %.3f}",
					sep, wlname[wi], vname[v], t, cell_med(wi, v, t, RATE_WALL),
					cell_med(wi, v, t, RATE_E2E));
				sep = ",\n";
			}
	fprintf(js, "\n  ],\n");
}
