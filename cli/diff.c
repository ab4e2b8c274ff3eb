/* SPDX-License-Identifier: MIT */
/*
 * diff.c - `shardtrie diff BEFORE AFTER`: two folded profiles, each through
 * its own engine, aligned by frame name and written as a differential:
 * flamebearer "double" JSON, folded "stack before after" lines (sorted, what
 * difffolded.pl feeds flamegraph.pl), or an SVG/HTML flamegraph coloured
 * red (grew) / blue (shrank), widths from AFTER.
 * --normalize scales BEFORE to AFTER's total per stack like difffolded.pl -n.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "shardtrie_parse.h"

#define CHUNK (4u << 20)

struct ctx {
	const char *file;
	uint64_t base; /* line number of the chunk's first line */
	uint64_t bad;
};

static void on_bad(void *arg, uint64_t line, const char *msg)
{
	struct ctx *c = arg;
	if (c->bad++ < 20)
		fprintf(stderr, "%s:%llu: %s\n", c->file, (unsigned long long)(c->base + line - 1), msg);
}

/* Folded file -> engine (one thread: diff inputs are aggregated profiles). */
static int load(struct st_engine *e, const char *path, uint64_t *bad)
{
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	if (fd < 0) {
		fprintf(stderr, "%s diff: %s: %s\n", st_prog, path, strerror(errno));
		return EX_NOINPUT_;
	}
	struct st_writer *w = st_writer_open(e);
	char *buf = malloc(CHUNK + 1);
	struct ctx c = { path, 1, 0 };
	struct st_parse_stats st = { 0 };
	size_t have = 0;
	int rc = EX_OK_;
	if (!w || !buf) {
		rc = EX_SOFTWARE_;
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + have, CHUNK - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "%s diff: %s: %s\n", st_prog, path, strerror(errno));
			rc = EX_IOERR_;
			goto out;
		}
		have += (size_t)r;
		bool eof = r == 0;
		size_t cut = have;
		if (!eof) {
			if (have < CHUNK)
				continue;
			char *nl = memrchr(buf, '\n', have);
			if (!nl) {
				fprintf(stderr, "%s diff: %s: line longer than %u bytes\n", st_prog, path, CHUNK);
				rc = EX_DATAERR_;
				goto out;
			}
			cut = (size_t)(nl + 1 - buf);
		}
		uint64_t before = st.lines;
		if (st_folded_ingest(w, 1, 0, buf, cut, on_bad, &c, &st)) {
			rc = EX_SOFTWARE_;
			goto out;
		}
		c.base += st.lines - before;
		memmove(buf, buf + cut, have - cut);
		have -= cut;
		if (eof)
			break;
	}
	*bad = st.malformed + st.dropped;
out:
	if (w)
		st_writer_close(w);
	free(buf);
	if (fd != STDIN_FILENO)
		close(fd);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shardtrie diff [-t flamebearer|folded|svg|html] [--normalize]\n"
		"                      [--max-nodes N] [--title T] [--width PX] [--minwidth PCT]\n"
		"                      [--inverted] [--colors P] [-o FILE] BEFORE AFTER\n"
		"BEFORE and AFTER are folded stack files.  -t folded writes 'stack before after'\n"
		"lines sorted byte-wise; --normalize scales BEFORE to AFTER's total per stack\n"
		"(difffolded.pl -n).  Default output: flamebearer (Pyroscope \"double\" format).\n");
}

int cmd_diff(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "to", required_argument, 0, 't' },
		{ "output", required_argument, 0, 'o' },
		{ "normalize", no_argument, 0, 'n' },
		{ "strict", no_argument, 0, 'S' },
		ST_CLI_EXPORT_LONGOPTS,
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *to = "flamebearer", *out = NULL;
	bool strict = false;
	struct st_export_opts eo;
	st_export_opts_init(&eo);
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:o:nh", lo, NULL)) != -1) {
		switch (c) {
		case 't': to = optarg; break;
		case 'o': out = optarg; break;
		case 'n': eo.normalize = 1; break;
		case 'S': strict = true; break;
		case 'h': usage(stdout); return EX_OK_;
		default: {
			int r = st_cli_export_opt(c, optarg, &eo, "diff");
			if (r == 0)
				break;
			if (r > 0)
				usage(stderr);
			return EX_USAGE_;
		}
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return EX_USAGE_;
	}
	int fmt = st_cli_format(to);
	if (fmt < 0)
		return EX_USAGE_;
	if (fmt != ST_FMT_FLAMEBEARER && fmt != ST_FMT_FOLDED && fmt != ST_FMT_SVG && fmt != ST_FMT_HTML) {
		fprintf(stderr, "%s diff: -t %s has no differential form (flamebearer, folded, svg, html)\n",
			st_prog, to);
		return EX_USAGE_;
	}
	struct st_options so;
	st_options_init(&so);
	so.merge_interval_ms = 0;
	so.nshards = 1;
	struct st_engine *e[2] = { st_engine_create(&so), st_engine_create(&so) };
	int rc = EX_OK_;
	uint64_t bad[2] = { 0, 0 };
	if (!e[0] || !e[1]) {
		fprintf(stderr, "%s diff: cannot create engine: %s\n", st_prog, strerror(errno));
		rc = EX_SOFTWARE_;
	}
	for (int i = 0; rc == EX_OK_ && i < 2; i++)
		rc = load(e[i], argv[optind + i], &bad[i]);
	if (rc == EX_OK_ && (bad[0] || bad[1])) {
		fprintf(stderr, "%s diff: %llu bad lines ignored%s\n", st_prog,
			(unsigned long long)(bad[0] + bad[1]), strict ? "; --strict: no output written" : "");
		if (strict)
			rc = EX_DATAERR_;
	}
	if (rc == EX_OK_) {
		if (!st_flush(e[0]) || !st_flush(e[1])) {
			fprintf(stderr, "%s diff: out of memory\n", st_prog);
			rc = EX_SOFTWARE_;
		}
	}
	if (rc == EX_OK_) {
		struct st_snap *s0 = st_snap_acquire(e[0]), *s1 = st_snap_acquire(e[1]);
		struct st_outfile of;
		int r = st_outfile_open(&of, out);
		if (r) {
			fprintf(stderr, "%s diff: %s: cannot create: %s\n", st_prog, out, strerror(-r));
			rc = EX_CANTCREAT_;
		} else {
			r = st_export_diff(s0, s1, fmt, &eo, of.f);
			if (r) {
				st_outfile_abort(&of);
				fprintf(stderr, "%s diff: write failed: %s\n", st_prog, strerror(-r));
				rc = EX_IOERR_;
			} else if ((r = st_outfile_commit(&of))) {
				fprintf(stderr, "%s diff: write failed: %s\n", st_prog, strerror(-r));
				rc = EX_IOERR_;
			}
		}
		st_snap_release(s0);
		st_snap_release(s1);
	}
	for (int i = 0; i < 2; i++)
		if (e[i])
			st_engine_destroy(e[i]);
	return rc;
}
