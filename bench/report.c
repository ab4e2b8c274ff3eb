/* SPDX-License-Identifier: MIT */
/*
 * report.c - the outputs (docs/benchmarking.md): results.csv, the hot plot,
 * results.json, the figures printed after the table, and as the last line
 * of stdout the SUMMARY.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "util.h"

/* The SUMMARY's figures and the rates printed beside them.  The SUMMARY
 * quotes the batch API, the engine's high-rate entry point (a BPF
 * ring-buffer or perf-pipe consumer drains in batches); the
 * one-call-per-sample rate is printed next to it. */
struct keys {
	double hot1, hotn;        /* engine_batch, 1 and N threads */
	double hotb1, hotbn;      /* engine (one call per sample) */
	double mutn, floor1;
	double cold1, coldb1;     /* end to end */
	double str1, strb1;
	double hot_ss1, str_ss1;  /* steady state: engine_batch, 1 thread, warmed */
	double scale, vs_mutex, floor_ratio;
	/* cold and strings against their own floors (one XXH3 read of each
	 * sample, same draws, same run): what the host's memory speed does
	 * not move, unlike the absolute rates. */
	double cold_floor_ratio, str_floor_ratio;
};

static void compute_keys(struct keys *k)
{
	unsigned n = cfg.nmax;
	k->hot1 = cell_med(W_HOT, V_BATCH, 1, RATE_WALL);
	k->hotn = cell_med(W_HOT, V_BATCH, n, RATE_WALL);
	k->hotb1 = cell_med(W_HOT, V_ENGINE, 1, RATE_WALL);
	k->hotbn = cell_med(W_HOT, V_ENGINE, n, RATE_WALL);
	k->mutn = cell_med(W_HOT, V_MUTEX, n, RATE_WALL);
	k->floor1 = cell_med(W_HOT, V_FLOOR, 1, RATE_WALL);
	k->cold1 = cell_med(W_COLD, V_BATCH, 1, RATE_E2E);
	k->coldb1 = cell_med(W_COLD, V_ENGINE, 1, RATE_E2E);
	k->str1 = cell_med(W_STRINGS, V_BATCH, 1, RATE_WALL);
	k->strb1 = cell_med(W_STRINGS, V_ENGINE, 1, RATE_WALL);
	k->hot_ss1 = ss_med(W_HOT, RATE_WALL);
	k->str_ss1 = ss_med(W_STRINGS, RATE_WALL);
	k->scale = k->hot1 > 0 ? k->hotn / k->hot1 : 0;
	k->vs_mutex = k->mutn > 0 ? k->hotn / k->mutn : 0;
	k->floor_ratio = k->hot1 > 0 ? k->floor1 / k->hot1 : 0;
	const double cfl = cell_med(W_COLD, V_FLOOR, 1, RATE_WALL);
	const double sfl = cell_med(W_STRINGS, V_FLOOR, 1, RATE_WALL);
	k->cold_floor_ratio = k->cold1 > 0 ? cfl / k->cold1 : 0;
	k->str_floor_ratio = k->str1 > 0 ? sfl / k->str1 : 0;
}

static FILE *out_file(const char *name, const char *mode)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", cfg.outdir, name);
	return fopen(path, mode);
}

/* The table on stdout with results.csv, and hot_threads.dat. */
static int write_tables(void)
{
	FILE *rc = out_file("results.csv", "w");
	FILE *dat = out_file("hot_threads.dat", "w");
	if (!rc || !dat) {
		fprintf(stderr, "bench: cannot write under %s\n", cfg.outdir);
		return 2;
	}
	fprintf(rc, "workload,variant,threads,reps,median_mps,median_mps_per_thread,"
		    "median_mps_e2e,median_mps_per_cpu_s,min_mps,max_mps\n");
	print_table(rc);
	fclose(rc);
	write_hot_dat(dat);
	fclose(dat);
	return 0;
}

static void print_costs(const struct findings *f, const struct rusage *ru)
{
	const struct snap_cost *sc = &f->snap;
	const struct mem_cost *mc = &f->mem;
	printf("\nsnapshot cost (hot, 1 writer, %u x %zu samples per run):\n", sc->passes,
	       f->hot.samples);
	impact_print(&sc->batch, "batch (snap_impact_wall)");
	impact_print(&sc->one_call, "one call per sample");
	snapshot_cpu_print(&f->snapcpu);
	printf("  publish latency (st_flush every 10 ms): hot %zu nodes p50 %.3f ms p99 %.3f ms "
	       "(%zu publishes, ingest %.2f M/s); cold growing to %zu nodes p50 %.3f ms "
	       "p99 %.3f ms (%zu publishes)\n",
	       sc->hot_nodes, sc->hot.p50_ms, sc->hot.p99_ms, sc->hot.n, sc->hot_ingest_mps,
	       mc->st.nodes, mc->cold.p50_ms, mc->cold.p99_ms, mc->cold.n);
	printf("memory (cold, %zu nodes, expected %" PRIu64 "): master %.1f B/node, snapshot "
	       "%.1f B/node, total %.1f B/node; shard tables %.1f MiB after the fold; peak RSS of the run "
	       "%.1f MiB over a %.1f MiB base; process peak RSS %.1f MiB\n",
	       mc->st.nodes, mc->expect_nodes, mc->bpn_master, mc->bpn_snap, mc->bytes_per_node,
	       mc->shard_mib, (double)(mc->rss_hwm - mc->rss_base) / 1024,
	       (double)mc->rss_base / 1024, (double)ru->ru_maxrss / 1024);
	printf("merge cost (cold, one st_flush of %zu records): %.1f ms, %.1f ns/node\n",
	       mc->records, mc->flush_s * 1e3, mc->merge_ns_per_node);
	printf("strings: %zu distinct frame strings; hot: %zu stacks, depth %u\n", f->str_frames,
	       f->hot.nstacks, cfg.depth);
	merge_print(&f->merge);
	merge_model_print(&f->merge, &f->snapcpu);
}

/* ------------------------------------------------------------ results.json */

static void json_snapshot(FILE *js, const struct snap_cost *sc, const struct mem_cost *mc)
{
	const struct impact *b = &sc->batch, *e = &sc->one_call;
	fprintf(js,
		"  \"snapshot\": {\"mps_merger_10ms\": %.3f, \"mps_merger_idle\": %.3f, "
		"\"pairs\": %zu, \"snap_impact\": %.4f, \"snap_impact_q1\": %.4f, "
		"\"snap_impact_q3\": %.4f, \"one_call_mps_merger_10ms\": %.3f, "
		"\"one_call_mps_merger_idle\": %.3f, \"one_call_impact\": %.4f, "
		"\"one_call_impact_q1\": %.4f, \"one_call_impact_q3\": %.4f, "
		"\"hot_publish_p50_ms\": %.4f, "
		"\"hot_publish_p99_ms\": %.4f, \"cold_publish_p50_ms\": %.4f, "
		"\"cold_publish_p99_ms\": %.4f},\n",
		b->mwith, b->mwithout, b->n, b->med, b->q1, b->q3, e->mwith, e->mwithout, e->med,
		e->q1, e->q3, sc->hot.p50_ms, sc->hot.p99_ms, mc->cold.p50_ms, mc->cold.p99_ms);
}

static void json_snapcpu(FILE *js, const struct snap_cpu *sc)
{
	fprintf(js,
		"  \"snapshot_cpu\": {\"pairs\": %zu, \"passes\": %u, \"merger_pinned\": %d, "
		"\"writer_ns_merger_10ms\": %.3f, \"writer_ns_merger_idle\": %.3f, "
		"\"snap_impact\": %.4f, \"snap_impact_q1\": %.4f, \"snap_impact_q3\": %.4f, "
		"\"merger_cpu_share\": %.4f, \"merger_cpu_share_q1\": %.4f, "
		"\"merger_cpu_share_q3\": %.4f, \"merger_fold_wall_share\": %.4f, "
		"\"merger_publish_wall_share\": %.4f, \"records_per_merge\": %.1f, "
		"\"publishes_per_s\": %.2f, \"nodes\": %zu, \"cpu0_ipis_ps_merger_10ms\": %.1f, "
		"\"cpu0_ipis_ps_merger_idle\": %.1f},\n",
		sc->n, sc->passes, sc->pinned, sc->med_on_ns, sc->med_off_ns, sc->med, sc->q1,
		sc->q3,
		sc->med_share, sc->share_q1, sc->share_q3, sc->med_fold_share, sc->med_pub_share,
		sc->med_recs_per_merge, sc->med_pubs_ps, sc->nodes, sc->med_ipis_on,
		sc->med_ipis_off);
}

static void json_merge_one(FILE *js, const char *name, const struct merge_one *m)
{
	fprintf(js,
		"\"%s\": {\"mrps\": %.4f, \"fold_cpu_ns_new\": %.2f, \"fold_cpu_ns_known\": %.2f, "
		"\"fold_cpu_ns_linked\": %.3f, \"fixed_wall_ns\": %.0f, "
		"\"publish_cpu_ns_per_node_first\": %.3f, "
		"\"publish_cpu_ns_per_node\": %.3f, \"writer_ns_cold\": %.2f, \"flush1_s\": %.4f, "
		"\"flush1_cpu_s\": %.4f}",
		name, m->mrps, m->new_ns, m->known_ns, m->linked_ns, m->fixed_ns, m->pub_first_ns,
		m->pub_ns, m->wc_ns, m->flush1_s, m->flush1_cpu_s);
}

static void json_merge(FILE *js, const struct merge_cost *mc)
{
	fprintf(js, "  \"merge\": {\"pairs\": %zu, \"records\": %zu, \"nodes\": %zu, ", mc->n,
		mc->records, mc->nodes);
	json_merge_one(js, "w1", &mc->m1);
	fprintf(js, ", ");
	json_merge_one(js, "w2", &mc->m2);
	fprintf(js, ", \"merge_scale\": %.4f, \"merge_scale_q1\": %.4f, "
		    "\"merge_scale_q3\": %.4f},\n", mc->med_scale, mc->q1, mc->q3);
}

static void json_memory(FILE *js, const struct mem_cost *mc, const struct rusage *ru)
{
	fprintf(js,
		"  \"memory\": {\"nodes\": %zu, \"mem_master\": %zu, \"mem_snapshot\": %zu, "
		"\"bytes_per_node_master\": %.2f, \"bytes_per_node_snapshot\": %.2f, "
		"\"bytes_per_node\": %.2f, \"run_peak_rss_kib\": %ld, "
		"\"process_peak_rss_kib\": %ld, \"merge_ns_per_node\": %.2f},\n",
		mc->st.nodes, mc->st.mem_master, mc->st.mem_snapshot, mc->bpn_master, mc->bpn_snap,
		mc->bytes_per_node, mc->rss_hwm - mc->rss_base, ru->ru_maxrss,
		mc->merge_ns_per_node);
}

static void json_summary(FILE *js, const struct keys *k, const struct findings *f)
{
	fprintf(js,
		"  \"summary\": {\"hot_mps_1t\": %.3f, \"hot_ss_mps_1t\": %.3f, "
		"\"hot_single_call_mps_1t\": %.3f, "
		"\"hot_mps_nt\": %.3f, \"scale_nt\": %.3f, \"vs_mutex_nt\": %.3f, "
		"\"floor_ratio\": %.3f, \"cold_mps_1t\": %.3f, \"strings_mps_1t\": %.3f, "
		"\"strings_ss_mps_1t\": %.3f, \"snap_impact\": %.4f, \"snap_impact_wall\": %.4f, "
		"\"merger_cpu_share\": %.4f, \"merge_mrps_1w\": %.4f, \"merge_mrps_2w\": %.4f, "
		"\"merge_scale\": %.4f, "
		"\"bytes_per_node\": %.2f, \"live_drop\": %.4f, "
		"\"live_drop_wall\": %.4f, \"live_drop_unpinned\": %.4f, "
		"\"live_snap_p99_ms\": %.3f, \"cold_floor_ratio\": %.3f, "
		"\"strings_floor_ratio\": %.3f, \"lost\": %" PRIu64 "}\n}\n",
		k->hot1, k->hot_ss1, k->hotb1, k->hotn, k->scale, k->vs_mutex, k->floor_ratio,
		k->cold1, k->str1, k->str_ss1, f->snapcpu.med, f->snap.batch.med,
		f->snapcpu.med_share, f->merge.m1.mrps, f->merge.m2.mrps, f->merge.med_scale,
		f->mem.bytes_per_node, f->live.pinned.med_drop_cpu,
		f->live.pinned.med_drop, f->live.unpinned.med_drop, f->live.pinned.p99_ms,
		k->cold_floor_ratio, k->str_floor_ratio, lost_total());
}

static void write_json(const struct findings *f, const struct keys *k, const struct rusage *ru)
{
	FILE *js = out_file("results.json", "w");
	if (!js)
		return;
	fprintf(js, "{\n  \"mode\": \"%s\", \"cpus\": %u, \"reps\": %u, \"depth\": %u,\n",
		cfg.short_mode ? "short" : "full", cfg.ncpu, cfg.reps, cfg.depth);
	write_json_cells(js);
	json_snapshot(js, &f->snap, &f->mem);
	json_snapcpu(js, &f->snapcpu);
	json_merge(js, &f->merge);
	json_memory(js, &f->mem, ru);
	live_json(js, &f->live);
	json_summary(js, k, f);
	fclose(js);
}

/* ------------------------------------------------------------ plot */

/* gnuplot: throughput against threads, one line per variant. */
static void plot_hot_threads(void)
{
	FILE *gp = out_file("hot_threads.gp", "w");
	if (!gp)
		return;
	fprintf(gp,
		"set terminal svg size 800,500 dynamic\n"
		"set output '%s/hot_threads.svg'\n"
		"set title 'hot workload (depth %u, 10k stacks, Zipf): throughput vs threads "
		"(%u CPUs, %u threads = oversubscribed)'\n"
		"set xlabel 'threads'\nset ylabel 'M samples/s (all threads)'\n"
		"set logscale y\nset key outside right\nset grid\nset xtics 1\n"
		"plot for [i=2:%d] '%s/hot_threads.dat' using 1:i with linespoints "
		"title columnhead(i)\n",
		cfg.outdir, cfg.depth, cfg.ncpu, 2 * cfg.nmax, NVARIANTS + 1, cfg.outdir);
	fclose(gp);
	char cmd[8192];
	snprintf(cmd, sizeof(cmd), "gnuplot '%s/hot_threads.gp' 2>&1", cfg.outdir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: gnuplot failed (apt-get install gnuplot-nox); "
				"data in %s/hot_threads.dat\n", cfg.outdir);
}

/* ------------------------------------------------------------ stdout's end */

/* The keys of bench/seed's SEED line (--seed-line FILE), zeros (and a line
 * saying why) when it was not given or holds no SEED line. */
struct seed_keys {
	double vs_1t, vs_nt, seed_stalls, st_stalls;
};

static void seed_keys_read(struct seed_keys *sk)
{
	*sk = (struct seed_keys){ 0 };
	if (!cfg.seed_line) {
		printf("vs_seed_*: not measured (no --seed-line; `make bench-short` runs bench/seed "
		       "first when go is installed)\n");
		return;
	}
	FILE *f = fopen(cfg.seed_line, "r");
	char line[1024];
	bool found = false;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "SEED ", 5) &&
		    sscanf(line, "SEED vs_seed_1t=%lf vs_seed_nt=%lf seed_nt=%*u seed_stalls_ps=%lf "
				 "st_stalls_ps=%lf", &sk->vs_1t, &sk->vs_nt, &sk->seed_stalls,
			   &sk->st_stalls) == 4)
			found = true;
	if (f)
		fclose(f);
	if (!found) {
		*sk = (struct seed_keys){ 0 };
		printf("vs_seed_*: %s holds no SEED line\n", cfg.seed_line);
	} else {
		printf("vs_seed_*: from %s (bench/seed/compare.c, the seed's LiveTrie in Go, same "
		       "events, reader every 10 ms)\n", cfg.seed_line);
	}
}

/* push_drop, push_drop_wall from bench/push's PUSH_COST line (--push-line),
 * in fractions like live_drop; zeros (and a line saying why) without it. */
static void push_keys_read(double *drop, double *drop_wall)
{
	*drop = *drop_wall = 0;
	FILE *f = cfg.push_line ? fopen(cfg.push_line, "r") : NULL;
	char line[1024];
	bool found = false;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "PUSH_COST drop=%lf%% drop_wall=%lf%%", drop, drop_wall) == 2)
			found = true;
	if (f)
		fclose(f);
	if (!found) {
		*drop = *drop_wall = 0;
		printf("push_drop: not measured (%s)\n",
		       cfg.push_line ? "no PUSH_COST line in --push-line" : "no --push-line");
		return;
	}
	*drop /= 100;
	*drop_wall /= 100;
	printf("push_drop: from %s (bench/push/push_cost.c: --push every 1 s vs none, pinned "
	       "pairs)\n", cfg.push_line);
}

static void print_summary(const struct keys *k, const struct findings *f)
{
	printf("outputs: %s/{runs.csv,results.csv,results.json,hot_threads.svg}; %.1f s\n",
	       cfg.outdir, bench_now() - f->t_start);
	if (lost_total())
		fprintf(stderr, "bench: FAILED: %" PRIu64 " samples lost\n", lost_total());
	if (live_errors(&f->live))
		fprintf(stderr, "bench: FAILED: %" PRIu64 " live client errors\n",
			live_errors(&f->live));
	printf("hot_mps_* / scale / vs_mutex / floor_ratio use engine_batch "
	       "(st_writer_ingest_batch, 64 per call); one call per sample: 1t %.2f, %ut %.2f M/s; "
	       "per CPU-second (preemption-proof): batch 1t %.2f, floor 1t %.2f\n",
	       k->hotb1, cfg.nmax, k->hotbn, cell_med(W_HOT, V_BATCH, 1, RATE_CPU),
	       cell_med(W_HOT, V_FLOOR, 1, RATE_CPU));
	printf("cold_mps_1t uses engine_batch too (end to end: ingest + the final flush); one call "
	       "per sample: %.2f M/s end to end\n", k->coldb1);
	printf("strings_mps_1t uses engine_batch too (st_writer_ingest_strs_batch, 64 per call); "
	       "one call per sample (st_writer_ingest_strs): 1t %.2f M/s, %.2f M/cpu-s\n",
	       k->strb1, cell_med(W_STRINGS, V_ENGINE, 1, RATE_CPU));
	struct seed_keys sk;
	seed_keys_read(&sk);
	double push_drop, push_drop_wall;
	push_keys_read(&push_drop, &push_drop_wall);
	printf("hot_ss_mps_1t / strings_ss_mps_1t: the same engine_batch 1-thread runs after two "
	       "flushed warm passes (every stack known); snap_impact: writer CPU per sample, "
	       "merger pinned apart; snap_impact_wall: the older wall-clock rate drop\n");
	printf("SUMMARY hot_mps_1t=%.2f hot_ss_mps_1t=%.2f hot_mps_nt=%.2f scale_nt=%.2f "
	       "vs_mutex_nt=%.2f floor_ratio=%.2f cold_mps_1t=%.2f strings_mps_1t=%.2f "
	       "strings_ss_mps_1t=%.2f snap_impact=%.3f snap_impact_wall=%.3f "
	       "merger_cpu_share=%.3f merge_mrps_1w=%.3f merge_mrps_2w=%.3f merge_scale=%.2f "
	       "bytes_per_node=%.1f live_drop=%.3f live_drop_wall=%.3f live_drop_unpinned=%.3f "
	       "live_snap_p99_ms=%.1f vs_seed_1t=%.2f vs_seed_nt=%.2f seed_stalls_ps=%.2f "
	       "st_stalls_ps=%.2f push_drop=%.3f push_drop_wall=%.3f cold_floor_ratio=%.2f "
	       "strings_floor_ratio=%.2f lost=%" PRIu64 "\n",
	       k->hot1, k->hot_ss1, k->hotn, k->scale, k->vs_mutex, k->floor_ratio, k->cold1,
	       k->str1, k->str_ss1, f->snapcpu.med, f->snap.batch.med, f->snapcpu.med_share,
	       f->merge.m1.mrps, f->merge.m2.mrps, f->merge.med_scale,
	       f->mem.bytes_per_node, f->live.pinned.med_drop_cpu,
	       f->live.pinned.med_drop, f->live.unpinned.med_drop, f->live.pinned.p99_ms,
	       sk.vs_1t, sk.vs_nt, sk.seed_stalls, sk.st_stalls, push_drop, push_drop_wall,
	       k->cold_floor_ratio, k->str_floor_ratio, lost_total());
	fflush(stdout);
}

int report(const struct findings *f)
{
	struct keys k;
	struct rusage ru;
	compute_keys(&k);
	getrusage(RUSAGE_SELF, &ru);
	if (write_tables())
		return 2;
	print_costs(f, &ru);
	live_print(&f->live);
	write_json(f, &k, &ru);
	runs_close();
	plot_hot_threads();
	print_summary(&k, f);
	return 0;
}
