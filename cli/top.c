/* SPDX-License-Identifier: MIT */
/*
 * top.c - `shardtrie top URL`: the terminal live view (tui/tui.h) of any
 * running live server (`serve`, `record --serve`), attached through its
 * /events stream with the bearer token when it needs one.  Several
 * terminals can watch one server; each is only a reader of it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "tui/tui.h"
#include "cli.h"

enum { OPT_TOKEN_FILE = 1200, OPT_WINDOW, OPT_LAYOUT };

struct top_opts {
	struct tui_opts t;
	const char *token_file;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s top [--token-file F] [--window all|Ns|mark] [--metric M]\n"
		"              [--layout tree|icicle] URL\n"
		"  The live flamegraph of a running `%s serve` or `record --serve` in this\n"
		"  terminal (URL as it printed: http://127.0.0.1:PORT/).\n"
		"  --token-file F   the server's bearer token, read from F's first line\n"
		"                   (or set SHARDTRIE_LIVE_TOKEN)\n"
		"  --window W       all (default: since start), Ns (the last N seconds), mark\n"
		"                   (since the last mark); the key w cycles all/10s/60s/mark\n"
		"  --metric M       metric name or index (default: the server's)\n"
		"  --layout L       tree (indented, default) or icicle; the key t switches\n"
		"keys: arrows or j/k/h/l move, enter zoom, u or backspace zoom out, / search,\n"
		"n next match, space pause, r mark, w window, m metric, o field order, q quit\n"
		"(docs/tui.md).\n",
		st_prog, st_prog);
}

/* A value safe in a query string as it is. */
static bool plain_word(const char *s)
{
	if (!*s || strlen(s) > 60)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '-' || *s == '.'))
			return false;
	return true;
}

static bool window_ok(const char *w)
{
	if (!strcmp(w, "all") || !strcmp(w, "mark"))
		return true;
	size_t n = strlen(w);
	if (n < 2 || n > 6 || w[n - 1] != 's')
		return false;
	char num[8];
	long long v;
	memcpy(num, w, n - 1);
	num[n - 1] = '\0';
	return num[0] >= '1' && num[0] <= '9' && st_cli_long_in(num, 1, 86400, &v);
}

static int take(int c, const char *arg, void *ctx)
{
	struct top_opts *o = ctx;
	switch (c) {
	case OPT_TOKEN_FILE: o->token_file = arg; return ST_CLI_GO_ON;
	case OPT_WINDOW:
		if (!window_ok(arg))
			return st_cli_bad_value("top", "--window", "all, mark or Ns (N in 1..86400)",
						arg),
			       EX_USAGE_;
		o->t.window = arg;
		return ST_CLI_GO_ON;
	case 'm':
		if (!plain_word(arg))
			return st_cli_bad_value("top", "--metric", "a metric name or index", arg),
			       EX_USAGE_;
		o->t.metric = arg;
		return ST_CLI_GO_ON;
	case OPT_LAYOUT:
		if (strcmp(arg, "tree") && strcmp(arg, "icicle"))
			return st_cli_bad_value("top", "--layout", "tree or icicle", arg), EX_USAGE_;
		o->t.layout = strcmp(arg, "tree") ? TUI_LAYOUT_ICICLE : TUI_LAYOUT_TREE;
		return ST_CLI_GO_ON;
	case 'h': usage(stdout); return EX_OK_;
	default: usage(stderr); return EX_USAGE_;
	}
}

/* The token from --token-file's first line or SHARDTRIE_LIVE_TOKEN (never
 * argv, which every user of the machine can read), as serve reads it. */
static int read_token(const char *path, char **token)
{
	*token = NULL;
	if (!path) {
		const char *env = getenv("SHARDTRIE_LIVE_TOKEN");
		if (env && *env && !(*token = strdup(env)))
			return EX_SOFTWARE_;
		return EX_OK_;
	}
	FILE *f = fopen(path, "r");
	char line[1024];
	if (!f || !fgets(line, sizeof(line), f)) {
		fprintf(stderr, "%s top: %s: cannot read a token: %s\n", st_prog, path,
			f ? "empty file" : strerror(errno));
		if (f)
			fclose(f);
		return EX_NOINPUT_;
	}
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	if (!line[0]) {
		fprintf(stderr, "%s top: %s: the token's line is empty\n", st_prog, path);
		return EX_DATAERR_;
	}
	return (*token = strdup(line)) ? EX_OK_ : EX_SOFTWARE_;
}

int cmd_top(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "token-file", required_argument, 0, OPT_TOKEN_FILE },
		{ "window", required_argument, 0, OPT_WINDOW },
		{ "metric", required_argument, 0, 'm' },
		{ "layout", required_argument, 0, OPT_LAYOUT },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct top_opts o = { .t = { .window = "all", .own_signals = true } };
	int rc = st_cli_getopt(argc, argv, "m:h", lo, take, &o);
	if (rc != ST_CLI_GO_ON)
		return rc;
	if (optind + 1 != argc) {
		fprintf(stderr, "%s top: want one URL (http://HOST:PORT/)\n", st_prog);
		usage(stderr);
		return EX_USAGE_;
	}
	o.t.url = argv[optind];
	if (strncmp(o.t.url, "http://", 7) && strncmp(o.t.url, "https://", 8))
		return st_cli_bad_value("top", "URL", "http://HOST:PORT/", o.t.url), EX_USAGE_;
	char *token;
	rc = read_token(o.token_file, &token);
	if (rc != EX_OK_)
		return rc;
	o.t.token = token;
	char title[300];
	snprintf(title, sizeof(title), "%s top %.256s", st_prog, o.t.url);
	o.t.title = title;
	char who[64];
	snprintf(who, sizeof(who), "%s top", st_prog);
	o.t.who = who;
	rc = tui_run(&o.t) ? EX_SOFTWARE_ : EX_OK_;
	free(token);
	return rc;
}
