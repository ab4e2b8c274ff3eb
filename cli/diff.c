/* SPDX-License-Identifier: MIT */
/*
 * diff.c - `shardtrie diff BEFORE AFTER`: two folded profiles, each through
 * its own engine, aligned by frame name and written as a differential:
 * flamebearer "double" JSON, folded "stack before after" lines (sorted, what
 * difffolded.pl feeds flamegraph.pl), or an SVG/HTML flamegraph coloured
 * red (grew) / blue (shrank), widths from AFTER.
 * --normalize scales BEFORE to AFTER's total per stack like difffolded.pl -n;
 * when either side has no samples there is nothing to scale by (0/T or T/0):
 * that is reported on stderr and the values are written unscaled (--strict:
 * exit 65, no output), rather than an all-zero BEFORE or a silent no-op.
 * Inputs are read by convert's block reader (input.c), with its rules; stdin
 * can be read once, so `diff - -` is a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "shardtrie_parse.h"

#define MAX_REPORTED 20

/* diff's own long options (below ST_OPT_EXPORT_FIRST). */
enum diff_opt {
	OPT_TO = 't',
	OPT_OUTPUT = 'o',
	OPT_NORMALIZE = 'n',
	OPT_HELP = 'h',
	OPT_STRICT = 1000,
};

struct diff_opts {
	const char *to, *out;
	bool strict;
	int fmt;
	struct st_export_opts eo;
};

/* Loading one input into one engine (one thread: diff inputs are
 * aggregated profiles). */
struct load {
	struct st_input *in;
	struct st_writer *w;
	const struct st_input_block *cur;
	struct st_parse_stats st;
	uint64_t reported;
};

static void on_bad_line(void *arg, uint64_t line, const char *msg)
{
	struct load *l = arg;
	st_input_report(&l->reported, MAX_REPORTED, l->cur->file, st_input_line(l->in, l->cur, line),
			msg);
}

/* The reader skipped a line longer than a block. */
static void on_long_line(void *arg, const char *file, uint64_t line, const char *msg)
{
	struct load *l = arg;
	l->st.malformed++;
	l->st.lines++;
	st_input_report(&l->reported, MAX_REPORTED, file, line, msg);
}

/* The reader's block callback: parse the block now. */
static int ingest(void *arg, const struct st_input_block *b)
{
	struct load *l = arg;
	l->cur = b;
	int r = st_folded_ingest(l->w, 1, 0, b->buf, b->len, on_bad_line, l, &l->st);
	st_input_release(l->in, b);
	return r ? EX_SOFTWARE_ : 0;
}

/* Folded file path -> engine e; *bad: lines ignored. */
static int load(struct st_engine *e, const char *path, uint64_t *bad)
{
	int fd = st_input_open(path);
	if (fd < 0) {
		fprintf(stderr, "%s diff: %s: %s\n", st_prog, path, strerror(errno));
		return EX_NOINPUT_;
	}
	struct load l = { .w = st_writer_open(e) };
	struct st_input_ops ops = { .block = ingest, .on_long_line = on_long_line, .arg = &l };
	int rc = EX_SOFTWARE_;
	if (l.w && (l.in = st_input_new(&ops)))
		rc = st_input_fd(l.in, fd, path);
	if (rc < 0) {
		fprintf(stderr, "%s diff: %s: read failed: %s\n", st_prog, path, st_input_strerror(rc));
		rc = EX_IOERR_;
	}
	if (!rc && l.in && (rc = st_input_finish(l.in, &path)) < 0) {
		fprintf(stderr, "%s diff: %s: read failed: %s\n", st_prog, path, st_input_strerror(rc));
		rc = EX_IOERR_;
	}
	*bad = l.st.malformed + l.st.dropped;
	if (l.w)
		st_writer_close(l.w);
	st_input_free(l.in);
	st_input_close(fd);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shardtrie diff [-t flamebearer|folded|svg|html] [--normalize] [--strict]\n"
		"                      [output options] [-o FILE] BEFORE AFTER\n"
		"BEFORE and AFTER are folded stack files.  -t folded writes 'stack before after'\n"
		"lines sorted byte-wise; --normalize scales BEFORE to AFTER's total per stack\n"
		"(difffolded.pl -n).  Default output: flamebearer (Pyroscope \"double\" format).\n"
		"Malformed lines are reported as FILE:LINE and skipped; --strict makes them,\n"
		"and any capped total, an error (exit 65, no output).\n" ST_CLI_EXPORT_HELP);
}

/* One option of getopt_long into o: ST_CLI_GO_ON, or the exit code. */
static int take_opt(int c, const char *arg, void *ctx)
{
	struct diff_opts *o = ctx;
	switch (c) {
	case OPT_TO: o->to = arg; return ST_CLI_GO_ON;
	case OPT_OUTPUT: o->out = arg; return ST_CLI_GO_ON;
	case OPT_NORMALIZE: o->eo.normalize = 1; return ST_CLI_GO_ON;
	case OPT_STRICT: o->strict = true; return ST_CLI_GO_ON;
	case OPT_HELP: usage(stdout); return EX_OK_;
	default: return st_cli_other_opt(c, arg, &o->eo, "diff", usage) ? EX_USAGE_ : ST_CLI_GO_ON;
	}
}

/* Whether operands a and b are one stream that can be read only once: both
 * "-", or one pipe/FIFO/tty named twice (`diff /dev/stdin -`). */
static bool same_stream(const char *a, const char *b)
{
	if (!strcmp(a, "-") && !strcmp(b, "-"))
		return true;
	struct stat sa, sb;
	if ((strcmp(a, "-") ? stat(a, &sa) : fstat(STDIN_FILENO, &sa)) ||
	    (strcmp(b, "-") ? stat(b, &sb) : fstat(STDIN_FILENO, &sb)))
		return false;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino && !S_ISREG(sa.st_mode) &&
	       !S_ISBLK(sa.st_mode);
}

/* Options, then exactly BEFORE and AFTER, then a format with a
 * differential form: ST_CLI_GO_ON or the exit code. */
static int parse_args(int argc, char **argv, struct diff_opts *o)
{
	static const struct option lo[] = {
		{ "to", required_argument, 0, OPT_TO },
		{ "output", required_argument, 0, OPT_OUTPUT },
		{ "normalize", no_argument, 0, OPT_NORMALIZE },
		{ "strict", no_argument, 0, OPT_STRICT },
		ST_CLI_EXPORT_LONGOPTS,
		{ "help", no_argument, 0, OPT_HELP },
		{ 0, 0, 0, 0 },
	};
	*o = (struct diff_opts){ .to = "flamebearer" };
	st_export_opts_init(&o->eo);
	int rc = st_cli_getopt(argc, argv, "t:o:nh", lo, take_opt, o);
	if (rc != ST_CLI_GO_ON)
		return rc;
	if (argc - optind != 2) {
		usage(stderr);
		return EX_USAGE_;
	}
	if (same_stream(argv[optind], argv[optind + 1])) {
		fprintf(stderr, "%s diff: BEFORE and AFTER are the same stream (%s): it can be read "
				"only once; save one of them to a file\n",
			st_prog, argv[optind]);
		return EX_USAGE_;
	}
	if ((o->fmt = st_cli_format(o->to)) < 0)
		return EX_USAGE_;
	if (o->fmt != ST_FMT_FLAMEBEARER && o->fmt != ST_FMT_FOLDED && o->fmt != ST_FMT_SVG &&
	    o->fmt != ST_FMT_HTML) {
		fprintf(stderr, "%s diff: -t %s has no differential form (flamebearer, folded, svg, html)\n",
			st_prog, o->to);
		return EX_USAGE_;
	}
	return ST_CLI_GO_ON;
}

/* BEFORE and AFTER into e[0] and e[1], flushed. */
static int load_both(struct st_engine *e[2], char **paths, bool strict)
{
	uint64_t bad[2] = { 0, 0 };
	int rc = EX_OK_;
	for (int i = 0; rc == EX_OK_ && i < 2; i++)
		rc = load(e[i], paths[i], &bad[i]);
	if (rc == EX_OK_ && (bad[0] || bad[1])) {
		fprintf(stderr, "%s diff: %llu bad lines ignored%s\n", st_prog,
			(unsigned long long)(bad[0] + bad[1]), strict ? "; --strict: no output written" : "");
		if (strict)
			rc = EX_DATAERR_;
	}
	if (rc == EX_OK_ && (!st_flush(e[0]) || !st_flush(e[1]))) {
		fprintf(stderr, "%s diff: out of memory\n", st_prog);
		rc = EX_SOFTWARE_;
	}
	return rc;
}

/* --normalize with a side that has no samples: nothing to scale by.
 * Reported; the values go out unscaled (--strict: exit 65). */
static int check_normalize(struct st_snap *s[2], struct diff_opts *o, char **paths)
{
	if (!o->eo.normalize)
		return EX_OK_;
	for (int i = 0; i < 2; i++) {
		if (st_snap_total(s[i], ST_NODE_ROOT, 0))
			continue;
		fprintf(stderr, "%s diff: --normalize: %s (%s) has no samples, nothing to scale by; %s\n",
			st_prog, i ? "AFTER" : "BEFORE", paths[i],
			o->strict ? "--strict: no output written" : "values written unscaled");
		o->eo.normalize = 0;
		return o->strict ? EX_DATAERR_ : EX_OK_;
	}
	return EX_OK_;
}

/* Totals that saturated on either side, and a flamebearer numTicks
 * (BEFORE's total + AFTER's) past UINT64_MAX, said on stderr; with
 * --strict an error (no output). */
static int check_saturation(struct st_engine *e[2], const struct diff_opts *o)
{
	struct st_snap *s[2] = { st_snap_acquire(e[0]), st_snap_acquire(e[1]) };
	int rc = EX_OK_;
	for (int i = 0; i < 2; i++)
		if (st_cli_report_saturation(i ? "diff (AFTER)" : "diff (BEFORE)", s[i], o->strict) != EX_OK_)
			rc = EX_DATAERR_;
	uint64_t t0 = st_snap_total(s[0], ST_NODE_ROOT, 0), t1 = st_snap_total(s[1], ST_NODE_ROOT, 0);
	if (o->eo.normalize && t0)
		t0 = t1; /* BEFORE scaled to AFTER's total (at most) */
	if (o->fmt == ST_FMT_FLAMEBEARER && st_sat_add(t0, t1) == UINT64_MAX) {
		fprintf(stderr, "%s diff: numTicks, BEFORE's total + AFTER's, reaches %llu: written "
			"capped there%s\n", st_prog, (unsigned long long)UINT64_MAX,
			o->strict ? "; --strict: no output written" : "");
		if (o->strict)
			rc = EX_DATAERR_;
	}
	st_snap_release(s[0]);
	st_snap_release(s[1]);
	return rc;
}

/* The differential of e[0] -> e[1], written atomically to o->out. */
static int write_diff(struct st_engine *e[2], struct diff_opts *o, char **paths)
{
	struct st_snap *s[2] = { st_snap_acquire(e[0]), st_snap_acquire(e[1]) };
	struct st_outfile of;
	const char *out = o->out ? o->out : "stdout";
	int rc = check_normalize(s, o, paths), r = 0;
	if (rc == EX_OK_ && (r = st_outfile_open(&of, o->out))) {
		fprintf(stderr, "%s diff: %s: cannot create: %s\n", st_prog, out, strerror(-r));
		rc = EX_CANTCREAT_;
	} else if (rc == EX_OK_) {
		r = st_outfile_stream_error(&of, st_export_diff(s[0], s[1], o->fmt, &o->eo, of.f));
		if (r)
			st_outfile_abort(&of);
		else
			r = st_outfile_commit(&of);
		if (r) {
			fprintf(stderr, "%s diff: %s: write failed: %s\n", st_prog, out, strerror(-r));
			rc = EX_IOERR_;
		}
	}
	st_snap_release(s[0]);
	st_snap_release(s[1]);
	return rc;
}

int cmd_diff(int argc, char **argv)
{
	struct diff_opts o;
	int rc = parse_args(argc, argv, &o);
	if (rc != ST_CLI_GO_ON)
		return rc;
	if ((rc = st_cli_output_check("diff", o.out)))
		return rc;
	struct st_options so;
	st_options_init(&so);
	so.merge_interval_ms = 0;
	so.nshards = 1;
	struct st_engine *e[2] = { st_engine_create(&so), st_engine_create(&so) };
	if (!e[0] || !e[1]) {
		fprintf(stderr, "%s diff: cannot create engine: %s\n", st_prog, strerror(errno));
		rc = EX_SOFTWARE_;
	} else {
		rc = load_both(e, argv + optind, o.strict);
	}
	if (rc == EX_OK_)
		rc = check_saturation(e, &o);
	if (rc == EX_OK_)
		rc = write_diff(e, &o, argv + optind);
	for (int i = 0; i < 2; i++)
		if (e[i])
			st_engine_destroy(e[i]);
	return rc;
}
