/* SPDX-License-Identifier: MIT */
/*
 * record_tui.c - `record cpu|io --tui`: the recording's live server, started
 * as for --serve but (without --serve) on 127.0.0.1, a free port and a
 * random bearer token, neither printed; the terminal view (tui/tui.h) of
 * `shardtrie top` attached to it on a thread of its own.  One code path:
 * the view only reads the server over HTTP, as `top` does, so it never
 * slows the recording's ingest.  q in the view ends the recording as SIGINT
 * does; the recording's end closes the view (terminal restored) before the
 * server stops and the output is written.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "tui/tui.h"
#include "cli.h"

int st_cli_tui_prepare(const char *cmd, struct st_cli_live *o)
{
	if (o->token)
		return ST_CLI_GO_ON; /* --serve's own token: the view sends it too */
	unsigned char b[16];
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		fprintf(stderr, "%s %s: --tui: no random token: %s\n", st_prog, cmd, strerror(errno));
		return EX_SOFTWARE_;
	}
	if (!(o->token = malloc(2 * sizeof(b) + 1)))
		return EX_SOFTWARE_;
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(o->token + 2 * i, 3, "%02x", b[i]);
	return ST_CLI_GO_ON;
}

static void quit_recording(void *arg)
{
	kill(getpid(), SIGINT); /* what ^C would do: the tracer ends the run */
}

struct tui_thread *st_cli_tui_start(const char *cmd, const struct st_cli_live *o, unsigned port)
{
	static char url[128], title[96];
	bool v6 = strchr(o->addr, ':') != NULL;
	bool any = !strcmp(o->addr, "0.0.0.0") || !strcmp(o->addr, "::");
	snprintf(url, sizeof(url), "http://%s%s%s:%u/", v6 ? "[" : "",
		 any ? (v6 ? "::1" : "127.0.0.1") : o->addr, v6 ? "]" : "", port);
	snprintf(title, sizeof(title), "%s %s", st_prog, cmd);
	struct tui_opts t = { .url = url, .token = o->token, .window = "all", .title = title,
			      .who = title, .on_quit = quit_recording };
	struct tui_thread *th = tui_thread_start(&t);
	if (!th)
		fprintf(stderr, "%s %s: --tui: cannot start the view: %s\n", st_prog, cmd,
			strerror(errno));
	return th;
}

void st_cli_tui_stop(struct tui_thread *t)
{
	tui_thread_stop(t);
}
