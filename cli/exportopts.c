/* SPDX-License-Identifier: MIT */
/*
 * exportopts.c - the output-format options every exporting subcommand
 * takes (ST_CLI_EXPORT_LONGOPTS in cli.h), the perf script input options
 * convert and serve take (ST_CLI_PERF_LONGOPTS), and the option loop and
 * value checks the subcommands share.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "shardtrie_parse.h"

static const char *const palettes[] = { "hot", "mem", "io", "java", "js", "perl", "red",
					"green", "blue", "aqua", "yellow", "purple", "orange", NULL };

/*
 * What --units takes: what the values are, in words every writer can carry
 * to its readers (docs/readers.md).  Pyroscope knows the list from
 * "samples" to "exceptions" and nothing else (anything else fails in its
 * UI); the four time units are written to it as "samples" at the matching
 * sampleRate, to speedscope as its own units, the counts there as "none".
 * Keep in step with ST_CLI_UNITS_HELP (cli.h) and the writers' mappings.
 */
static const char *const units[] = { "samples", "objects", "goroutines", "bytes",
				     "lock_samples", "lock_nanoseconds", "trace_samples",
				     "exceptions", "nanoseconds", "microseconds", "milliseconds",
				     "seconds", NULL };

bool st_cli_long_in(const char *arg, long long lo, long long hi, long long *v)
{
	char *end;
	errno = 0;
	*v = strtoll(arg, &end, 10);
	return !*end && end != arg && !errno && *v >= lo && *v <= hi;
}

bool st_cli_double_in(const char *arg, double lo, double hi, double *v)
{
	char *end;
	*v = strtod(arg, &end);
	return !*end && end != arg && *v >= lo && *v <= hi;
}

int st_cli_bad_value(const char *cmd, const char *opt, const char *want, const char *arg)
{
	/* opt is a long option's name ("units") or the option as typed ("-f"). */
	fprintf(stderr, "%s %s: %s%s wants %s, got '%s'\n", st_prog, cmd, opt[0] == '-' ? "" : "--",
		opt, want, arg);
	return -1;
}

/* *out = the entry of list (NULL-terminated) equal to arg, else -1 after
 * "unknown WHAT 'ARG' (known: ...)". */
static int set_from_list(const char *const *list, const char *what, const char *arg,
			 const char **out, const char *cmd)
{
	for (int i = 0; list[i]; i++)
		if (strcmp(arg, list[i]) == 0) {
			*out = list[i];
			return 0;
		}
	fprintf(stderr, "%s %s: unknown %s '%s' (known:", st_prog, cmd, what, arg);
	for (int i = 0; list[i]; i++)
		fprintf(stderr, " %s", list[i]);
	fprintf(stderr, ")\n");
	return -1;
}

/* The export options with a whole number for a value. */
static const struct whole_opt {
	int code;
	const char *name, *want;
	long long lo, hi;
} wholes[] = {
	{ ST_OPT_MAX_NODES, "max-nodes", "-1 (all) or a count", -1, LLONG_MAX },
	{ ST_OPT_WIDTH, "width", "10..1000000 pixels", 10, 1000000 },
	{ ST_OPT_SAMPLE_RATE, "sample-rate", "a positive rate in Hz", 1, 1000000000 },
};

static void store_whole(int c, long long v, struct st_export_opts *eo)
{
	switch (c) {
	case ST_OPT_MAX_NODES: eo->max_nodes = v; break;
	case ST_OPT_WIDTH: eo->width = (unsigned)v; break;
	case ST_OPT_SAMPLE_RATE: eo->sample_rate = (uint32_t)v; break;
	}
}

/* 0 = taken, -1 = bad value (message printed), 1 = not one of wholes[]. */
static int set_whole(int c, const char *arg, struct st_export_opts *eo, const char *cmd)
{
	for (size_t i = 0; i < sizeof(wholes) / sizeof(wholes[0]); i++) {
		const struct whole_opt *w = &wholes[i];
		long long v;
		if (w->code != c)
			continue;
		if (!st_cli_long_in(arg, w->lo, w->hi, &v))
			return st_cli_bad_value(cmd, w->name, w->want, arg);
		store_whole(c, v, eo);
		return 0;
	}
	return 1;
}

int st_cli_export_opt(int c, const char *arg, struct st_export_opts *eo, const char *cmd)
{
	double d;
	switch (c) {
	case ST_OPT_TITLE: eo->title = arg; return 0;
	case ST_OPT_MINWIDTH:
		if (!st_cli_double_in(arg, 0, 100, &d))
			return st_cli_bad_value(cmd, "minwidth", "a percent in [0,100]", arg);
		eo->minwidth = d;
		return 0;
	case ST_OPT_INVERTED: eo->inverted = 1; return 0;
	case ST_OPT_REVERSE: eo->reverse = 1; return 0;
	case ST_OPT_COLORS: return set_from_list(palettes, "palette", arg, &eo->colors, cmd);
	case ST_OPT_UNITS: return set_from_list(units, "unit", arg, &eo->units, cmd);
	case ST_OPT_NAME: eo->app_name = arg; return 0;
	case ST_OPT_MIN_FRACTION:
		if (!st_cli_double_in(arg, 0, 1, &d))
			return st_cli_bad_value(cmd, "min-fraction", "a number in [0,1]", arg);
		eo->min_fraction = d;
		return 0;
	default: return set_whole(c, arg, eo, cmd);
	}
}

int st_cli_perf_opt(int c, const char *arg, struct st_perf_opts *po, const char **first)
{
	static const char *const names[] = { "--pid", "--tid", "--kernel", "--jit", "--all",
					     "--addrs", "--event-filter" };
	switch (c) {
	case ST_OPT_PERF_PID: po->pid = true; break;
	case ST_OPT_PERF_TID: po->tid = true; break;
	case ST_OPT_PERF_KERNEL: po->kernel = true; break;
	case ST_OPT_PERF_JIT: po->jit = true; break;
	case ST_OPT_PERF_ALL: po->kernel = po->jit = true; break;
	case ST_OPT_PERF_ADDRS: po->addrs = true; break;
	case ST_OPT_PERF_EVENT_FILTER: po->event = arg && *arg ? arg : NULL; break;
	default: return 1;
	}
	if (first && !*first)
		*first = names[c - ST_OPT_PERF_FIRST];
	return 0;
}

int st_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *lo,
		  int (*take)(int c, const char *arg, void *ctx), void *ctx)
{
	int c, rc = ST_CLI_GO_ON;
	optind = 1;
	while (rc == ST_CLI_GO_ON && (c = getopt_long(argc, argv, shortopts, lo, NULL)) != -1)
		rc = take(c, optarg, ctx);
	return rc;
}

int st_cli_other_opt(int c, const char *arg, struct st_export_opts *eo, const char *cmd,
		     void (*usage)(FILE *))
{
	int r = st_cli_export_opt(c, arg, eo, cmd);
	if (r == 0)
		return 0;
	if (r > 0)
		usage(stderr);
	return EX_USAGE_;
}
