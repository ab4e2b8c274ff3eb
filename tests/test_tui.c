/* SPDX-License-Identifier: MIT */
/*
 * test_tui.c - `shardtrie top URL` driven in a real terminal: a detached
 * tmux session of a fixed size (its own server socket per test), keys sent
 * with send-keys, the screen read with capture-pane.  The live server is
 * `shardtrie serve -` fed known stacks (tests/support/live_client.h).
 *
 * Every wait polls capture-pane (or /api/status) with a bound, never a bare
 * sleep.  The one "nothing changes" check (pause) polls the screen over a
 * bounded time after the server shows the new data, and then proves the
 * data was there to show by resuming.  Skipped, with the reason, without
 * tmux.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/live_client.h"

#define CLI ST_TEST_CLI

/* The tmux server of the session started last (a new one per session: a
 * server being killed is not one to start the next session on). */
static char sock[64];
static int nsessions;

static void tmux_kill(void)
{
	if (sock[0])
		ts_run("tmux -L %s kill-server >/dev/null 2>&1", sock);
	sock[0] = '\0';
}

static void tui_init(void)
{
	ts_dir_init();
}

static void tui_fini(void)
{
	tmux_kill();
	ts_dir_fini();
}

TestSuite(tui, .init = tui_init, .fini = tui_fini, .timeout = 90);

static void need_tmux(void)
{
	if (ts_run("command -v tmux >/dev/null 2>&1"))
		cr_skip_test("tmux is not installed (Debian: tmux; scripts/deps.sh test)");
}

/* `sh -c inner` in a WxH tmux session; after it exits the pane shows
 * TOP_EXIT=<status> and stays open (cat).  SIGINT reaches the command alone
 * (the shell around it traps it). */
static void pane_start(const char *inner, int w, int h)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "trap : INT; sh -c '%s' 2>%s; echo TOP_EXIT=$?; exec cat", inner,
		 ts_path("top.err"));
	tmux_kill();
	snprintf(sock, sizeof(sock), "st-tui-%d-%d", (int)getpid(), ++nsessions);
	FILE *f = fopen(ts_path("pane.sh"), "w");
	cr_assert(f);
	fprintf(f, "%s\n", cmd);
	fclose(f);
	cr_assert_eq(ts_run("tmux -L %s -f /dev/null new-session -d -s t -x %d -y %d 'sh %s'", sock, w,
			    h, ts_path("pane.sh")),
		     0, "tmux new-session failed");
}

/* `top ARGS URL` so; its pid goes to ts_path("top.pid"). */
static void top_start(const struct srv *s, const char *args, int w, int h)
{
	char inner[1024];
	snprintf(inner, sizeof(inner), "echo $$ > %s; exec %s top %s %s", ts_path("top.pid"), CLI, args,
		 s->url);
	pane_start(inner, w, h);
}

static char *screen(void)
{
	cr_assert_eq(ts_run("tmux -L %s capture-pane -p -t t > %s", sock, ts_path("screen")), 0);
	char *txt = ts_read_file(ts_path("screen"), NULL);
	cr_assert(txt);
	return txt;
}

static void keys(const char *k)
{
	cr_assert_eq(ts_run("tmux -L %s send-keys -t t %s", sock, k), 0);
}

/* Poll the screen until it holds `want` (bounded: about 10 s); returns it. */
static char *wait_screen(const char *want)
{
	char *txt = NULL;
	for (int i = 0; i < 500; i++) {
		free(txt);
		txt = screen();
		if (strstr(txt, want))
			return txt;
		pause_ms(20);
	}
	cr_assert_fail("the screen never showed '%s'; it shows:\n%s\nstderr: %s", want, txt,
		       ts_read_file(ts_path("top.err"), NULL));
	return NULL;
}

/* The screen line whose text starts (after the indentation) with `name `. */
/* q, and the view's shell line saying it exited. */
static void quit_view(void)
{
	keys("q");
	free(wait_screen("TOP_EXIT=0"));
}

static char *row(const char *txt, const char *name)
{
	static char line[512];
	for (const char *p = txt; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		size_t sp = strspn(p, " ");
		if (sp < n && !strncmp(p + sp, name, strlen(name)) && p[sp + strlen(name)] == ' ') {
			snprintf(line, sizeof(line), "%.*s", (int)n, p);
			return line;
		}
		p = e ? e + 1 : NULL;
	}
	cr_assert_fail("no row '%s' on the screen:\n%s", name, txt);
	return NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

static int alternate_on(void)
{
	cr_assert_eq(ts_run("tmux -L %s display -p -t t '#{alternate_on}' > %s", sock, ts_path("alt")),
		     0);
	char *a = ts_read_file(ts_path("alt"), NULL);
	int v = a ? atoi(a) : -1;
	free(a);
	return v;
}

static const char known[] = "main;a;b 3\nmain;a;c 2\nmain;x 1\nmain;evil\x1b[2J\x07 1\n";

static void start_known(struct srv *s, int w, int h)
{
	srv_start(s, "", true);
	feed(s, known);
	wait_status(s, "total", 7);
	top_start(s, "", w, h);
	free(wait_screen("total 7"));
}

Test(tui, known_input_frames_and_shares)
{
	need_tmux();
	struct srv s;
	start_known(&s, 100, 24);
	char *txt = wait_screen("selected: all");
	cr_expect(strstr(txt, "window all"), "%s", txt);
	/* name, % of window, % of parent, self, total, bar */
	cr_expect(strstr(row(txt, "all"), " 100.0% 100.0%        0        7 "));
	cr_expect(strstr(row(txt, "main"), " 100.0% 100.0%        0        7 "));
	cr_expect(strstr(row(txt, "a"), "  71.4%  71.4%        0        5 "));
	cr_expect(strstr(row(txt, "b"), "  42.9%  60.0%        3        3 "));
	cr_expect(strstr(row(txt, "c"), "  28.6%  40.0%        2        2 "));
	cr_expect(strstr(row(txt, "x"), "  14.3%  14.3%        1        1 "));
	/* the hostile name shows escaped, on its own row */
	cr_expect(strstr(row(txt, "evil\\x1b[2J\\x07"), "  14.3%  14.3%        1        1 "), "%s", txt);
	/* bars scale with the terminal: main's fills them (100 columns: 16) */
	cr_expect(strstr(row(txt, "main"), " ################"));
	cr_expect(strstr(txt, "q quit"), "the help line");
	/* serve has one metric and no field order: said, nothing breaks.  The
	 * metric list comes with /api/status, which the header shows ("marks"
	 * is there only once it arrived): wait for it before pressing m. */
	free(txt);
	free(wait_screen("| marks 0"));
	keys("m");
	txt = wait_screen("one metric only");
	keys("o");
	free(txt);
	txt = wait_screen("this source has no field order");
	cr_expect(strstr(row(txt, "b"), "  42.9%  60.0%        3        3 "), "%s", txt);
	/* the icicle */
	keys("t");
	free(txt);
	txt = wait_screen("|x");
	cr_expect(strstr(txt, "|b "), "%s", txt);
	cr_expect(strstr(txt, "|c"), "%s", txt);
	cr_expect(strstr(txt, "\n|main"), "%s", txt);
	free(txt);
	quit_view();
	srv_stop(&s);
}

Test(tui, zoom_and_search_survive_an_update)
{
	need_tmux();
	struct srv s;
	start_known(&s, 100, 24);
	keys("j j Enter");
	free(wait_screen("zoom: main;a | selected: main;a"));
	keys("/ c Enter");
	char *txt = wait_screen("selected: main;a;c");
	cr_expect(strstr(txt, "search 'c': 1 matches"), "%s", txt);
	/* shares stay of the window; the bars scale to the zoomed node */
	cr_expect(ends_with(row(txt, "a"), "  71.4%  71.4%        0        5 ################"),
		  "zoomed: a's bar is full:\n%s", txt);
	free(txt);
	feed(&s, "main;a;c 10\nmain;y 1\n");
	wait_status(&s, "total", 18);
	txt = wait_screen("total 18");
	cr_expect(strstr(txt, "zoom: main;a | selected: main;a;c"), "%s", txt);
	cr_expect(strstr(txt, "search 'c': 1 matches"), "%s", txt);
	cr_expect(strstr(row(txt, "c"), "  66.7%  80.0%       12       12 "), "%s", txt);
	cr_expect(!strstr(txt, "\n    y "), "y is not below the zoom");
	free(txt);
	/* u zooms out, the selection stays */
	keys("u");
	free(wait_screen("zoom: main | selected: main;a;c"));
	quit_view();
	srv_stop(&s);
}

Test(tui, pause_freezes_the_screen)
{
	need_tmux();
	struct srv s;
	start_known(&s, 100, 24);
	keys("Space");
	free(wait_screen("PAUSED"));
	feed(&s, "main;a;b 5\n");
	wait_status(&s, "total", 12);
	/* The server has it (and a 20 ms tick sends it); the screen stays. */
	for (int i = 0; i < 50; i++) {
		char *txt = screen();
		/* "total 7" ends the header when pause came before the first
		 * /api/status (no figures after it), else " | ingested ..." follows */
		cr_assert((strstr(txt, "total 7 ") || strstr(txt, "total 7\n")) && !strstr(txt, "total 12"),
			  "paused, yet:\n%s", txt);
		cr_assert(strstr(row(txt, "b"), "        3        3 "), "%s", txt);
		free(txt);
		pause_ms(20);
	}
	keys("Space");
	char *txt = wait_screen("total 12");
	cr_expect(strstr(row(txt, "b"), "        8        8 "), "%s", txt);
	cr_expect(!strstr(txt, "PAUSED"));
	free(txt);
	quit_view();
	srv_stop(&s);
}

Test(tui, resize_redraws)
{
	need_tmux();
	struct srv s;
	start_known(&s, 100, 24);
	cr_assert_eq(ts_run("tmux -L %s resize-window -t t -x 60 -y 14", sock), 0);
	/* at 60 columns the bar is 10 wide: main's row ends in 10 '#' */
	char *txt = wait_screen("0        7 ##########\n");
	cr_expect(ends_with(row(txt, "b"), "  42.9%  60.0%        3        3 ####"), "%s", txt);
	free(txt);
	cr_assert_eq(ts_run("tmux -L %s resize-window -t t -x 30 -y 5", sock), 0);
	free(wait_screen("terminal too small"));
	cr_assert_eq(ts_run("tmux -L %s resize-window -t t -x 100 -y 24", sock), 0);
	txt = wait_screen("0        7 ################\n");
	cr_expect(!strstr(txt, "too small"));
	free(txt);
	quit_view();
	srv_stop(&s);
}

Test(tui, q_and_signals_restore_the_terminal)
{
	need_tmux();
	struct srv s;
	start_known(&s, 100, 24);
	cr_expect_eq(alternate_on(), 1, "the view uses the alternate screen");
	keys("q");
	char *txt = wait_screen("TOP_EXIT=0");
	cr_expect_eq(alternate_on(), 0, "q left the alternate screen");
	cr_expect(!strstr(txt, "q quit"), "the view's screen is gone:\n%s", txt);
	free(txt);
	tmux_kill();

	/* SIGINT (the terminal's ^C) */
	top_start(&s, "", 100, 24);
	free(wait_screen("total 7"));
	keys("C-c");
	free(wait_screen("TOP_EXIT=0"));
	cr_expect_eq(alternate_on(), 0, "SIGINT left the alternate screen");
	tmux_kill();

	/* SIGTERM */
	top_start(&s, "", 100, 24);
	free(wait_screen("total 7"));
	char *pid = ts_read_file(ts_path("top.pid"), NULL);
	cr_assert(pid && atoi(pid) > 1);
	cr_assert_eq(kill(atoi(pid), SIGTERM), 0);
	free(pid);
	free(wait_screen("TOP_EXIT=0"));
	cr_expect_eq(alternate_on(), 0, "SIGTERM left the alternate screen");
	srv_stop(&s);
}

Test(tui, token_from_a_file)
{
	need_tmux();
	cr_assert_eq(ts_write_file(ts_path("tok"), "s3cret\n", 7), 0);
	struct srv s;
	char args[512];
	snprintf(args, sizeof(args), "--token-file '%s'", ts_path("tok"));
	srv_start(&s, args, true);
	feed(&s, known);
	/* without the token: the reason is on the screen */
	top_start(&s, "", 100, 24);
	free(wait_screen("HTTP 401"));
	quit_view();
	tmux_kill();
	snprintf(args, sizeof(args), "--token-file '%s'", ts_path("tok"));
	top_start(&s, args, 100, 24);
	free(wait_screen("total 7"));
	quit_view();
	srv_stop(&s);
}

Test(tui, r_sets_a_mark)
{
	need_tmux();
	struct srv s;
	start_known(&s, 100, 24);
	json_t *st = status_json(&s);
	bool has_marks = json_object_get(st, "marks") != NULL;
	json_decref(st);
	if (!has_marks) {
		quit_view();
		srv_stop(&s);
		cr_skip_test("the server has no marks yet (the window API, docs: windows-api)");
	}
	cr_expect_eq(status_u(&s, "marks"), 0);
	keys("r");
	free(wait_screen("mark 1 set"));
	cr_expect_eq(status_u(&s, "marks"), 1);
	/* w cycles to "mark": the window since it, empty until more comes */
	keys("w w w");
	free(wait_screen("window mark"));
	feed(&s, "main;z 2\n");
	char *txt = wait_screen("total 2 ");
	cr_expect(strstr(row(txt, "z"), " 100.0% 100.0%        2        2 "), "%s", txt);
	free(txt);
	quit_view();
	srv_stop(&s);
}

/* record cpu --tui (root + BPF, skipped otherwise): the view of the run in
 * the terminal, q ends the run as SIGINT does, the output is written after
 * the terminal is restored. */
Test(tui, record_tui_shows_the_run_and_q_ends_it)
{
	need_tmux();
	ts_need_bpf("record --tui");
	char spin[600];
	snprintf(spin, sizeof(spin), "%s", CLI);
	char *slash = strrchr(spin, '/');
	snprintf(slash + 1, sizeof(spin) - (size_t)(slash + 1 - spin), "bpf/spin");
	if (access(spin, X_OK) != 0)
		cr_skip_test("bundled workload %s not built", spin);
	char inner[1400];
	snprintf(inner, sizeof(inner), "exec %s record cpu -F 199 --tui -o %s -- %s 60", CLI,
		 ts_path("rec.folded"), spin);
	pane_start(inner, 100, 24);
	char *txt = wait_screen("burn_a");
	cr_expect(strstr(txt, "shardtrie record cpu | window all"), "%s", txt);
	cr_expect(!strstr(txt, "Live flamegraph at"), "--tui alone prints no URL");
	free(txt);
	quit_view();
	cr_expect_eq(alternate_on(), 0);
	char *out = ts_read_file(ts_path("rec.folded"), NULL);
	cr_assert(out && strstr(out, "burn_a"), "the recording's output: %s", out ? out : "(none)");
	free(out);
}

/* record io --tui: o reorders the fields through /order (the first field
 * goes last); the view says so, the output has the new order. */
Test(tui, record_io_tui_o_reorders_the_fields)
{
	need_tmux();
	ts_need_bpf("record --tui");
	char inner[1400];
	snprintf(inner, sizeof(inner),
		 "exec %s record io --fields comm,tracepoint --tui -o %s -- sh -c "
		 "\"while :; do cat /etc/hostname >/dev/null; done\"",
		 CLI, ts_path("io.folded"));
	pane_start(inner, 120, 24);
	free(wait_screen("enter_openat"));
	keys("o");
	char *txt = wait_screen("order tracepoint,comm (data reset)");
	cr_expect(!strstr(txt, "/order: fields now"), "record's stderr line over the view: %s", txt);
	/* Quit only once the view's total has moved since the reset was
	 * said: samples came after it (under a sanitizer the tracer is slow,
	 * and a q right away could end a run with nothing after the reset). */
	const char *tp = strstr(txt, "total ");
	unsigned long long t0 = tp ? strtoull(tp + 6, NULL, 10) : 0, t = t0;
	free(txt);
	for (int i = 0; i < 500 && (!t || t == t0); i++) { /* ~10 s at most */
		pause_ms(20);
		txt = screen();
		tp = strstr(txt, "total ");
		t = tp ? strtoull(tp + 6, NULL, 10) : 0;
		free(txt);
	}
	cr_assert(t && t != t0, "the view's total never moved after the reset (%llu)", t);
	quit_view();
	cr_expect_eq(alternate_on(), 0);
	char *out = ts_read_file(ts_path("io.folded"), NULL);
	cr_assert(out && out[0], "no output");
	/* Every stack is tracepoint first now: no line starts with the comm. */
	for (char *l = out; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
		cr_expect(!strncmp(l, "sys_enter_", 10), "old order in the output: %.60s", l);
	free(out);
}

/* --window Ns: the last N seconds (all the known input is that recent);
 * w goes on from there (all, 10s, 60s, mark); a bad value is a usage error before any terminal. */
Test(tui, window_option_and_w)
{
	need_tmux();
	struct srv s;
	srv_start(&s, "", true);
	feed(&s, known);
	wait_status(&s, "total", 7);
	top_start(&s, "--window 30s", 100, 24);
	char *txt = wait_screen("total 7");
	cr_expect(strstr(txt, "| window 30s |"), "%s", txt);
	free(txt);
	keys("w"); /* from a window not in w's cycle: all, then 10s */
	free(wait_screen("| window all |"));
	keys("w");
	txt = wait_screen("| window 10s |");
	cr_expect(strstr(row(txt, "b"), "  42.9%  60.0%        3        3 "), "%s", txt);
	free(txt);
	quit_view();
	cr_expect_eq(ts_run("%s top --window 0s %s 2>/dev/null", CLI, s.url), 64);
	cr_expect_eq(ts_run("%s top --window 86401s %s 2>/dev/null", CLI, s.url), 64);
	cr_expect_eq(ts_run("%s top --metric 'a&b' %s 2>/dev/null", CLI, s.url), 64);
	cr_expect_eq(ts_run("%s top 2>/dev/null", CLI), 64);
	srv_stop(&s);
}

/* ------------------------------------------- a hostile /events stream */

/* A fake live server on 127.0.0.1 (this test's side only): /events gets a
 * canned stream, each part written when the test says so (a byte on
 * go[0]); anything else a 404.  Not an HTTP parser: it reads a request up
 * to its blank line and looks at the first line. */
struct fake {
	int lfd, go[2];
	unsigned short port;
	const char *const *parts;
	pthread_t thr;
};

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	for (;;) {
		int c = accept(f->lfd, NULL, NULL);
		if (c < 0)
			return NULL;
		char req[4096];
		size_t n = 0;
		while (n + 1 < sizeof(req) && (n < 4 || memcmp(req + n - 4, "\r\n\r\n", 4))) {
			ssize_t r = read(c, req + n, 1);
			if (r <= 0)
				break;
			n += (size_t)r;
		}
		req[n] = '\0';
		if (strncmp(req, "GET /events ", 12)) {
			static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
						 "Connection: close\r\n\r\n";
			if (write(c, nf, sizeof(nf) - 1) < 0) {
			}
			close(c);
			continue;
		}
		static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
					 "Connection: close\r\n\r\n";
		if (write(c, ok, sizeof(ok) - 1) < 0) {
		}
		for (size_t i = 0; f->parts[i]; i++) {
			char b;
			if (read(f->go[0], &b, 1) != 1)
				break;
			if (write(c, f->parts[i], strlen(f->parts[i])) < 0)
				break;
		}
		char b;
		while (read(c, &b, 1) > 0) { /* until the client goes */
		}
		close(c);
	}
}

static void fake_start(struct fake *f, const char *const *parts)
{
	f->parts = parts;
	cr_assert_eq(pipe(f->go), 0);
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(f->lfd, 8), 0);
	cr_assert_eq(getsockname(f->lfd, (struct sockaddr *)&a, &len), 0);
	f->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&f->thr, NULL, fake_main, f), 0);
}

Test(tui, hostile_stream_is_reported_not_shown)
{
	need_tmux();
	static const char *const parts[] = {
		": a comment\n\ndata: {not json\n\n",
		"data: {\"t\":2,\"c\":[{\"n\":\"ok\",\"t\":2,\"c\":[{\"n\":\"neg\",\"t\":-5}]}]}\n\n",
		/* CRLF lines, an id, data over two lines joined by '\n' */
		"id: 7\r\ndata: {\"t\":3,\r\ndata: \"c\":[{\"n\":\"good\",\"v\":3,\"t\":3}]}\r\n\r\n",
		NULL,
	};
	struct fake f;
	fake_start(&f, parts);
	struct srv s = { .in = -1 };
	snprintf(s.url, sizeof(s.url), "http://127.0.0.1:%u/", f.port);
	top_start(&s, "", 100, 24);
	free(wait_screen("[connected]"));
	cr_assert_eq(write(f.go[1], "x", 1), 1);
	free(wait_screen("bad JSON"));
	cr_assert_eq(write(f.go[1], "x", 1), 1);
	char *txt = wait_screen("bad snapshot: a value (v, t) is not a non-negative integer");
	cr_expect(strstr(txt, "waiting for the first snapshot"), "nothing shown from bad data:\n%s", txt);
	free(txt);
	cr_assert_eq(write(f.go[1], "x", 1), 1);
	txt = wait_screen("total 3");
	cr_expect(strstr(row(txt, "good"), " 100.0% 100.0%        3        3 "), "%s", txt);
	free(txt);
	quit_view();
}

/* Without a terminal (no controlling tty: setsid, stdin not a tty) top
 * says so on one line that names the command, and fails. */
Test(tui, no_terminal_is_one_named_error)
{
	if (ts_run("command -v setsid >/dev/null 2>&1"))
		cr_skip_test("setsid (util-linux) is not installed");
	int rc = ts_run("setsid -w %s top http://127.0.0.1:9/ </dev/null >/dev/null 2>'%s'", CLI,
			ts_path("err"));
	cr_expect_neq(rc, 0, "top without a terminal must fail");
	size_t len;
	char *err = ts_read_file(ts_path("err"), &len);
	cr_assert(err);
	cr_expect(!strncmp(err, "shardtrie top: no terminal (/dev/tty): ", 39), "stderr: %s", err);
	cr_expect_eq(strchr(err, '\n') - err + 1, (long)len, "one line: %s", err);
	free(err);
}
