/* SPDX-License-Identifier: MIT */
/*
 * options.c - the harness's command line and configuration.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

const char *const vname[NVARIANTS] = { "engine", "engine_batch", "mutex", "floor" };
const char *const wlname[NWL] = { "hot", "cold", "strings", "replay" };

struct config cfg = {
	.reps = 7,
	.depth = 32,
	.hot_samples = 4u << 20,
	.cold_samples = 1000000,
	.str_samples = 2u << 20,
	.mutex_div = 8,
	.outdir = "build/bench",
	.seed = 0x5eedf00dULL,
};

/* Option codes: each long option's short letter. */
enum opt {
	OPT_SHORT = 's',
	OPT_REPS = 'r',
	OPT_DEPTH = 'd',
	OPT_REPLAY = 'f',
	OPT_OUT = 'o',
	OPT_SEED = 'S',
	OPT_MAX_THREADS = 't',
	OPT_HELP = 'h',
	OPT_ONLY = 'O',
	OPT_VARIANT = 'V',
	OPT_SEED_LINE = 256,
	OPT_PUSH_LINE,
};

static const char short_opts[] = "sr:d:f:o:S:t:hO:V:";
static const struct option long_opts[] = {
	{ "short", no_argument, 0, OPT_SHORT },
	{ "reps", required_argument, 0, OPT_REPS },
	{ "depth", required_argument, 0, OPT_DEPTH },
	{ "replay", required_argument, 0, OPT_REPLAY },
	{ "out", required_argument, 0, OPT_OUT },
	{ "seed", required_argument, 0, OPT_SEED },
	{ "max-threads", required_argument, 0, OPT_MAX_THREADS },
	{ "help", no_argument, 0, OPT_HELP },
	{ "only", required_argument, 0, OPT_ONLY },
	{ "variant", required_argument, 0, OPT_VARIANT },
	{ "seed-line", required_argument, 0, OPT_SEED_LINE },
	{ "push-line", required_argument, 0, OPT_PUSH_LINE },
	{ 0, 0, 0, 0 }
};

static void usage(void)
{
	fprintf(stderr,
		"usage: bench [--short] [--reps N] [--depth D] [--replay FILE.folded]\n"
		"             [--out DIR] [--seed S] [--max-threads T] [--only WORKLOAD]\n"
		"             [--variant engine|engine_batch|mutex|floor] [--seed-line FILE]\n"
		"             [--push-line FILE]\n"
		"--only runs just that workload's scaling table (for profiling), or with\n"
		"`snap` just the snapshot-impact runs, with `live` just the live-load\n"
		"pairs, with `merge` just the merge scaling and its model (after the\n"
		"writer-CPU pairs it needs); each prints its figures, no SUMMARY.  --variant\n"
		"limits the scaling tables to one variant.  --seed-line FILE: the SEED\n"
		"line of bench/seed (shardtrie_seed) whose keys the SUMMARY carries;\n"
		"--push-line FILE: the PUSH_COST line of bench/push (push_cost).\n");
}

/* True when s is one of names[0..n). */
static bool one_of(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return true;
	return false;
}

bool only_is(const char *name)
{
	return cfg.only && strcmp(cfg.only, name) == 0;
}

bool variant_wanted(enum variant v)
{
	return !cfg.variant || strcmp(cfg.variant, vname[v]) == 0;
}

/* One option into cfg: false for --help and anything unknown. */
static bool take_option(int c, const char *arg, bool *reps_set)
{
	switch ((enum opt)c) {
	case OPT_SHORT:
		cfg.short_mode = 1;
		return true;
	case OPT_REPS:
		cfg.reps = (unsigned)strtoul(arg, NULL, 10);
		*reps_set = true;
		return true;
	case OPT_DEPTH:
		cfg.depth = (unsigned)strtoul(arg, NULL, 10);
		return true;
	case OPT_REPLAY:
		cfg.replay = arg;
		return true;
	case OPT_OUT:
		cfg.outdir = arg;
		return true;
	case OPT_SEED:
		cfg.seed = strtoull(arg, NULL, 0);
		return true;
	case OPT_ONLY:
		cfg.only = arg;
		return true;
	case OPT_VARIANT:
		cfg.variant = arg;
		return true;
	case OPT_SEED_LINE:
		cfg.seed_line = arg;
		return true;
	case OPT_PUSH_LINE:
		cfg.push_line = arg;
		return true;
	case OPT_MAX_THREADS:
		cfg.max_threads = (unsigned)strtoul(arg, NULL, 10);
		return true;
	case OPT_HELP:
		break;
	}
	return false;
}

/* Ranges, and names: a misspelt --only or --variant would run nothing and
 * print zeros.  0 when valid, else the exit status. */
static int check_options(void)
{
	if (cfg.reps < 1 || cfg.reps > 63 || cfg.depth < 1 || cfg.depth > 4096) {
		usage();
		return 2;
	}
	if (cfg.only && !only_is("snap") && !only_is("live") && !only_is("merge") &&
	    !one_of(cfg.only, wlname, NWL)) {
		fprintf(stderr, "bench: --only %s: not a workload (hot cold strings replay), snap, "
				"live nor merge\n",
			cfg.only);
		return 2;
	}
	if (cfg.variant && !one_of(cfg.variant, vname, NVARIANTS)) {
		fprintf(stderr, "bench: --variant %s: not one of engine engine_batch mutex floor\n",
			cfg.variant);
		return 2;
	}
	return 0;
}

/* --short: the same measurements on shorter streams. */
static void apply_short_mode(bool reps_set)
{
	if (!cfg.short_mode)
		return;
	if (!reps_set)
		cfg.reps = 3;
	cfg.hot_samples = 1u << 20;
	cfg.str_samples = 1u << 19;
	cfg.cold_samples = 1000000;
	cfg.mutex_div = 16;
}

/* Thread counts: 1..N and 2N (N = online CPUs or --max-threads). */
static void set_thread_counts(void)
{
	long nc = sysconf(_SC_NPROCESSORS_ONLN);
	cfg.ncpu = nc > 0 ? (unsigned)nc : 1;
	unsigned n = cfg.max_threads ? cfg.max_threads : cfg.ncpu;
	if (2 * n > MAXT)
		n = MAXT / 2;
	cfg.nmax = n;
	for (unsigned t = 1; t <= n; t++)
		cfg.tcounts[cfg.ntcounts++] = t;
	cfg.tcounts[cfg.ntcounts++] = 2 * n;
}

int options_parse(int argc, char **argv)
{
	bool reps_set = false;
	int c;
	while ((c = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1) {
		if (!take_option(c, optarg, &reps_set)) {
			usage();
			return c == OPT_HELP ? 0 : 2;
		}
	}
	int rc = check_options();
	if (rc)
		return rc;
	apply_short_mode(reps_set);
	set_thread_counts();
	return OPTIONS_RUN;
}
