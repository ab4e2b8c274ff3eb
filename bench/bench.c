/* SPDX-License-Identifier: MIT */
/*
 * bench.c - shardtrie's benchmark harness (plain C, no framework); the
 * method, the outputs and what each SUMMARY key means are in
 * docs/benchmarking.md, the files' roles in bench.h.
 *
 * main runs the steps below in order; each builds its workload, runs its
 * scaling table (scaling.c) and what else it measures (costs.c, snapcpu.c,
 * merge.c).  --only WORKLOAD runs just that workload's table, --only snap
 * just the snapshot-impact pairs, --only live just the live-load pairs,
 * --only merge just the merge scaling (and the CPU pairs the model needs),
 * each then printing its figures and stopping.  Then
 * report.c writes the outputs and, as the last line of stdout, the SUMMARY.
 */
#include <stdio.h>
#include <sys/stat.h>

#include "bench.h"
#include "util.h"

/* What a step tells main: go on, stop here (an --only run is complete), or
 * fail (exit 2). */
enum step { STEP_NEXT, STEP_STOP, STEP_FAIL };

static struct findings F;
static struct workload replay_wl;
static int have_replay;

static const enum variant all_variants[] = { V_ENGINE, V_BATCH, V_MUTEX, V_FLOOR };
static const enum variant cold_variants[] = { V_ENGINE, V_BATCH, V_FLOOR };

static enum step build_failed(const char *what)
{
	fprintf(stderr, "bench: cannot build the %s workload\n", what);
	return STEP_FAIL;
}

/* --only WORKLOAD: after its table, print it alone and stop. */
static enum step stop_if_only(enum wl_id wi)
{
	if (!only_is(wlname[wi]))
		return STEP_NEXT;
	print_table(NULL); /* profiling run: nothing else */
	return STEP_STOP;
}

/* hot: scaling of every variant. */
static enum step hot_step(void)
{
	if (wl_hot(&F.hot, cfg.depth, 10000, 1.0, cfg.hot_samples, cfg.seed))
		return build_failed("hot");
	if (!only_is("snap") && !only_is("live"))
		scaling(W_HOT, &F.hot, all_variants, 4, 2 * cfg.nmax);
	return stop_if_only(W_HOT);
}

/* --only WHAT names another step: skip this one. */
static bool skip_for_only(const char *mine, const char *also)
{
	return cfg.only && !only_is(mine) && !(also && only_is(also));
}

/* Snapshot impact (merger every 10 ms vs idle, 1 writer, back-to-back
 * pairs): the wall-clock rate drop, then the writer's CPU per sample with
 * the merger pinned apart (snapcpu.c); then publish latency with a flusher
 * every 10 ms.  --only merge takes just the CPU pairs (the model's hot
 * inputs). */
static enum step snapshot_step(void)
{
	if (skip_for_only("snap", "merge"))
		return STEP_NEXT;
	if (only_is("merge")) {
		snapshot_cpu(&F.hot, &F.snapcpu);
		return STEP_NEXT;
	}
	snapshot_impact(&F.hot, &F.snap);
	snapshot_cpu(&F.hot, &F.snapcpu);
	if (only_is("snap")) {
		impact_print(&F.snap.batch, "batch (snap_impact_wall)");
		impact_print(&F.snap.one_call, "one call per sample");
		snapshot_cpu_print(&F.snapcpu);
		printf("snap_impact %.3f snap_impact_wall %.3f merger_cpu_share %.3f lost %llu\n",
		       F.snapcpu.med, F.snap.batch.med, F.snapcpu.med_share,
		       (unsigned long long)lost_total());
		return STEP_STOP;
	}
	hot_latency(&F.hot, &F.snap);
	return STEP_NEXT;
}

/* Ingest with 0 clients vs 42 clients of the in-process live server
 * (live_load.c); --only live stops after it. */
static enum step live_step(void)
{
	if (skip_for_only("live", NULL))
		return STEP_NEXT;
	if (live_load(&F.hot, &F.live))
		return STEP_FAIL;
	if (!only_is("live"))
		return STEP_NEXT;
	live_print(&F.live);
	printf("live_drop %.3f live_drop_wall %.3f live_drop_unpinned %.3f live_snap_p99_ms %.2f "
	       "lost %llu live_errors %llu\n",
	       F.live.pinned.med_drop_cpu, F.live.pinned.med_drop, F.live.unpinned.med_drop,
	       F.live.pinned.p99_ms,
	       (unsigned long long)lost_total(), (unsigned long long)live_errors(&F.live));
	return STEP_STOP;
}

/* cold: node creation, end to end (ingest + final flush); then memory,
 * merge cost, the publish latency of a growing trie and merge scaling
 * (merge.c); --only merge runs just the last and prints the model. */
static enum step cold_step(void)
{
	struct workload cold;
	if (skip_for_only("cold", "merge"))
		return STEP_NEXT;
	if (wl_cold(&cold, cfg.cold_samples, cfg.seed))
		return build_failed("cold");
	if (!only_is("merge")) {
		/* Each cold run folds 1 M records in its final flush (seconds):
		 * the short mode measures one thread only. */
		scaling(W_COLD, &cold, cold_variants, 3, cfg.short_mode ? 1 : cfg.nmax);
		if (stop_if_only(W_COLD) == STEP_STOP)
			return STEP_STOP;
		memory_cost(&cold, &F.mem);
		cold_latency(&cold, &F.snap, &F.mem);
	}
	merge_scaling(&cold, &F.merge);
	wl_free(&cold);
	if (!only_is("merge"))
		return STEP_NEXT;
	snapshot_cpu_print(&F.snapcpu);
	merge_print(&F.merge);
	merge_model_print(&F.merge, &F.snapcpu);
	printf("merge_mrps_1w %.3f merge_mrps_2w %.3f merge_scale %.3f lost %llu\n",
	       F.merge.m1.mrps, F.merge.m2.mrps, F.merge.med_scale,
	       (unsigned long long)lost_total());
	return STEP_STOP;
}

static enum step strings_step(void)
{
	struct workload str;
	if (skip_for_only("strings", NULL))
		return STEP_NEXT;
	if (wl_strings(&str, 100000, 1.0, cfg.str_samples, cfg.seed))
		return build_failed("strings");
	scaling(W_STRINGS, &str, all_variants, 4, cfg.nmax);
	if (stop_if_only(W_STRINGS) == STEP_STOP)
		return STEP_STOP;
	F.str_frames = str.ndict;
	wl_free(&str);
	return STEP_NEXT;
}

/* replay (--replay FILE): wl_replay says what is wrong with the file. */
static enum step replay_step(void)
{
	if (!cfg.replay || skip_for_only("replay", NULL))
		return STEP_NEXT;
	if (wl_replay(&replay_wl, cfg.replay, cfg.hot_samples, cfg.seed))
		return STEP_FAIL;
	have_replay = 1;
	scaling(W_REPLAY, &replay_wl, all_variants, 4, cfg.nmax);
	return stop_if_only(W_REPLAY);
}

static int exit_status(void)
{
	return lost_total() || live_errors(&F.live) ? 1 : 0;
}

/* The output directory and runs.csv: 0, or -1 after a message. */
static int open_outputs(void)
{
	mkdir("build", 0777);
	mkdir(cfg.outdir, 0777);
	return runs_open();
}

int main(int argc, char **argv)
{
	static enum step (*const steps[])(void) = { hot_step, snapshot_step, live_step,
						     cold_step, strings_step, replay_step };
	int rc = options_parse(argc, argv);
	if (rc != OPTIONS_RUN)
		return rc;
	if (open_outputs())
		return 2;
	F.t_start = bench_now();
	fprintf(stderr, "bench: %s mode, %u CPUs, %u reps, depth %u\n",
		cfg.short_mode ? "short" : "full", cfg.ncpu, cfg.reps, cfg.depth);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		enum step s = steps[i]();
		if (s == STEP_FAIL)
			return 2;
		if (s == STEP_STOP)
			return exit_status();
	}
	if (report(&F))
		return 2;
	if (have_replay)
		wl_free(&replay_wl);
	wl_free(&F.hot);
	return exit_status();
}
