/* SPDX-License-Identifier: MIT */
/*
 * bench.c - shardtrie's benchmark harness (plain C, no framework); the
 * method, the outputs and what each SUMMARY key means are in
 * docs/benchmarking.md, the files' roles in bench.h.
 *
 * main runs the steps below in order; each builds its workload, runs its
 * scaling table (scaling.c) and what else it measures (costs.c).  --only
 * WORKLOAD stops after that workload's table, --only snap after the
 * snapshot-impact pairs, --only live after the live-load pairs.  Then
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

/* Snapshot impact (merger every 10 ms vs idle, 1 writer, back-to-back
 * pairs), then publish latency with a flusher every 10 ms. */
static enum step snapshot_step(void)
{
	if (only_is("live"))
		return STEP_NEXT;
	snapshot_impact(&F.hot, &F.snap);
	if (only_is("snap")) {
		impact_print(&F.snap.batch, "batch");
		impact_print(&F.snap.one_call, "one call per sample");
		printf("snap_impact %.3f\n", F.snap.batch.med);
		return STEP_STOP;
	}
	hot_latency(&F.hot, &F.snap);
	return STEP_NEXT;
}

/* Ingest with 0 clients vs 42 clients of the in-process live server
 * (live_load.c); --only live stops after it. */
static enum step live_step(void)
{
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
 * merge cost and the publish latency of a growing trie. */
static enum step cold_step(void)
{
	struct workload cold;
	if (wl_cold(&cold, cfg.cold_samples, cfg.seed))
		return build_failed("cold");
	/* Each cold run folds 1 M records in its final flush (seconds): the
	 * short mode measures one thread only. */
	scaling(W_COLD, &cold, cold_variants, 3, cfg.short_mode ? 1 : cfg.nmax);
	if (stop_if_only(W_COLD) == STEP_STOP)
		return STEP_STOP;
	memory_cost(&cold, &F.mem);
	cold_latency(&cold, &F.snap, &F.mem);
	wl_free(&cold);
	return STEP_NEXT;
}

static enum step strings_step(void)
{
	struct workload str;
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
	if (!cfg.replay)
		return STEP_NEXT;
	if (wl_replay(&replay_wl, cfg.replay, cfg.hot_samples, cfg.seed))
		return STEP_FAIL;
	have_replay = 1;
	scaling(W_REPLAY, &replay_wl, all_variants, 4, cfg.nmax);
	return STEP_NEXT;
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
