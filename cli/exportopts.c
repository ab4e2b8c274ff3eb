/* SPDX-License-Identifier: MIT */
/*
 * exportopts.c - the output-format options every exporting subcommand
 * takes (ST_CLI_EXPORT_LONGOPTS in cli.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *palettes[] = { "hot", "mem", "io", "java", "js", "perl", "red", "green",
				   "blue", "aqua", "yellow", "purple", "orange", NULL };

int st_cli_export_opt(int c, const char *arg, struct st_export_opts *eo, const char *cmd)
{
	char *end;
	errno = 0;
	switch (c) {
	case 2000: {
		long long v = strtoll(arg, &end, 10);
		if (*end || end == arg || errno || v < -1) {
			fprintf(stderr, "%s %s: --max-nodes wants -1 (all) or a count, got '%s'\n", st_prog,
				cmd, arg);
			return -1;
		}
		eo->max_nodes = v;
		return 0;
	}
	case 2001: eo->title = arg; return 0;
	case 2002: {
		long v = strtol(arg, &end, 10);
		if (*end || end == arg || v < 10 || v > 1000000) {
			fprintf(stderr, "%s %s: --width wants 10..1000000 pixels, got '%s'\n", st_prog, cmd, arg);
			return -1;
		}
		eo->width = (unsigned)v;
		return 0;
	}
	case 2003: {
		double v = strtod(arg, &end);
		if (*end || end == arg || !(v >= 0 && v <= 100)) {
			fprintf(stderr, "%s %s: --minwidth wants a percent in [0,100], got '%s'\n", st_prog,
				cmd, arg);
			return -1;
		}
		eo->minwidth = v;
		return 0;
	}
	case 2004: eo->inverted = 1; return 0;
	case 2005: eo->reverse = 1; return 0;
	case 2006:
		for (int i = 0; palettes[i]; i++)
			if (strcmp(arg, palettes[i]) == 0) {
				eo->colors = palettes[i];
				return 0;
			}
		fprintf(stderr, "%s %s: unknown palette '%s' (known:", st_prog, cmd, arg);
		for (int i = 0; palettes[i]; i++)
			fprintf(stderr, " %s", palettes[i]);
		fprintf(stderr, ")\n");
		return -1;
	case 2007: {
		long v = strtol(arg, &end, 10);
		if (*end || end == arg || v < 1 || v > 1000000000) {
			fprintf(stderr, "%s %s: --sample-rate wants a positive rate in Hz, got '%s'\n",
				st_prog, cmd, arg);
			return -1;
		}
		eo->sample_rate = (uint32_t)v;
		return 0;
	}
	case 2008: eo->units = arg; return 0;
	case 2009: eo->app_name = arg; return 0;
	default: return 1;
	}
}
