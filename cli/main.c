/* SPDX-License-Identifier: MIT */
/*
 * main.c - `shardtrie SUBCOMMAND ...`: dispatch to the subcommand table.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

const char *st_prog = "shardtrie";

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} cmds[] = {
	{ "convert", cmd_convert, "folded stacks or perf script -> any output format" },
	{ "diff", cmd_diff, "two folded profiles -> differential flamebearer/folded/svg/html" },
	{ "record", cmd_record, "record cpu|io: BPF tracers straight into the engine" },
	{ "serve", cmd_serve, "serve a profile (file or stream) live over HTTP" },
	{ "top", cmd_top, "the live flamegraph of a running server in this terminal" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: shardtrie COMMAND [OPTIONS] [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].help);
	fprintf(f, "\n'shardtrie COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EX_USAGE_;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "shardtrie: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EX_USAGE_;
}
