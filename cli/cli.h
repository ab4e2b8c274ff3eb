/* SPDX-License-Identifier: MIT */
/*
 * cli.h - what the `shardtrie` subcommands share.
 *
 * A subcommand is `int cmd_x(int argc, char **argv)` (argv[0] is its name)
 * returning the process exit code, listed in main.c's table.
 */
#ifndef ST_CLI_H
#define ST_CLI_H

#include <stdio.h>

#include "shardtrie.h"
#include "shardtrie_export.h"

/* sysexits-style codes the subcommands use. */
#define EX_OK_ 0
#define EX_USAGE_ 64
#define EX_DATAERR_ 65
#define EX_NOINPUT_ 66
#define EX_SOFTWARE_ 70
#define EX_CANTCREAT_ 73
#define EX_IOERR_ 74
#define EX_NOPERM_ 77

int cmd_convert(int argc, char **argv);
int cmd_record(int argc, char **argv); /* bpf/record.c (or bpf/record_stub.c) */
int cmd_diff(int argc, char **argv);

/*
 * Output written atomically: to a temporary file beside the target, renamed
 * over it on commit; removed on abort or when SIGINT/SIGTERM arrives first.
 * path NULL or "-" means stdout (nothing to rename).
 */
struct st_outfile {
	FILE *f;
	char *path;
	char *tmp;
};
int st_outfile_open(struct st_outfile *o, const char *path);
int st_outfile_commit(struct st_outfile *o); /* 0 or -errno; aborts on error */
void st_outfile_abort(struct st_outfile *o);

/* Write snapshot s as `format` to path through st_outfile.  Prints the
 * error and returns an exit code. */
int st_cli_export(const struct st_snap *s, int format, const struct st_export_opts *eo,
		  const char *path);

/* The same for folded output straight from engine e's shards
 * (st_export_folded_once): an exit code, or -1 (nothing written) when e has
 * merged stacks and the caller must flush and use st_cli_export. */
int st_cli_export_folded_once(struct st_engine *e, const struct st_export_opts *eo,
			      const char *path);

/* Parse a format name for -t; prints the error and returns -1 if unknown. */
int st_cli_format(const char *name);

/*
 * Output-format options shared by convert, diff and record (exportopts.c):
 * put ST_CLI_EXPORT_LONGOPTS in the getopt_long table and hand unknown
 * option codes to st_cli_export_opt(): 0 = taken, -1 = bad value (message
 * printed), 1 = not an export option.
 */
#define ST_CLI_EXPORT_LONGOPTS                                           \
	{ "max-nodes", required_argument, 0, 2000 },                      \
	{ "title", required_argument, 0, 2001 },                          \
	{ "width", required_argument, 0, 2002 },                          \
	{ "minwidth", required_argument, 0, 2003 },                       \
	{ "inverted", no_argument, 0, 2004 },                             \
	{ "reverse", no_argument, 0, 2005 },                              \
	{ "colors", required_argument, 0, 2006 },                         \
	{ "sample-rate", required_argument, 0, 2007 },                    \
	{ "units", required_argument, 0, 2008 },                          \
	{ "name", required_argument, 0, 2009 }
int st_cli_export_opt(int c, const char *arg, struct st_export_opts *eo, const char *cmd);

extern const char *st_prog;

#endif
