/* SPDX-License-Identifier: MIT */
/*
 * view.c - the terminal view: ncurses on /dev/tty (so that standard output
 * stays free for whatever the program writes there), the model of model.c,
 * the server through client.c.
 *
 *   one loop: poll(tty, wake pipe) -> keys / newest event / newest status
 *             / resize / quit -> draw
 *
 * Invariants:
 *   - The terminal is restored (endwin) on every way out: q, SIGINT,
 *     SIGTERM, SIGHUP, SIGQUIT (own_signals: the handlers only write to the
 *     wake pipe), tui_thread_stop, and errors; the previous signal
 *     dispositions come back too.
 *   - Paused, nothing on the screen changes but what the keys do: events
 *     and status stay in the client (only the newest is kept) until space.
 *   - Nothing is drawn outside COLS x LINES; below TUI_MIN_COLS x
 *     TUI_MIN_ROWS the screen says so and shows nothing else.
 */
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tui.h"

static const char *const windows[] = { "all", "10s", "60s", "mark" };
#define NWINDOWS (sizeof(windows) / sizeof(windows[0]))

struct view {
	const struct tui_opts *o;
	struct tui_client *cl;
	struct tui_model m;
	int wake[2];  /* client arrivals and signals */
	int stop_fd;  /* tui_thread_stop (or -1) */
	FILE *in, *out;
	SCREEN *scr;
	bool paused, colors;
	char window[16]; /* streamed: windows[] or --window's Ns */
	char metric[64]; /* the metric streamed ("" = default) */
	/* from the last /api/status taken */
	json_t *status;
	char state[256]; /* the stream's */
	char msg[256];   /* the last key's outcome */
	bool searching;
	char sbuf[sizeof(((struct tui_model *)0)->search)];
	size_t slen;
	struct tui_cell *cells;
	size_t ncells_max;
};

/* ---------------------------------------------------------------- signals */

static int sig_fd = -1;
static volatile sig_atomic_t sig_quit, sig_resize;

static void on_signal(int sig)
{
	int e = errno;
	if (sig == SIGWINCH)
		sig_resize = 1;
	else
		sig_quit = sig;
	if (sig_fd >= 0 && write(sig_fd, "", 1) < 0) {
	}
	errno = e;
}

static const int quit_sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define NQUIT (sizeof(quit_sigs) / sizeof(quit_sigs[0]))

struct saved_sigs {
	struct sigaction winch, quit[NQUIT];
};

static void signals_take(struct view *v, struct saved_sigs *s)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sig_quit = sig_resize = 0;
	sig_fd = v->wake[1];
	sigaction(SIGWINCH, &sa, &s->winch);
	if (v->o->own_signals)
		for (size_t i = 0; i < NQUIT; i++)
			sigaction(quit_sigs[i], &sa, &s->quit[i]);
}

static void signals_give_back(struct view *v, struct saved_sigs *s)
{
	sigaction(SIGWINCH, &s->winch, NULL);
	if (v->o->own_signals)
		for (size_t i = 0; i < NQUIT; i++)
			sigaction(quit_sigs[i], &s->quit[i], NULL);
	sig_fd = -1;
}

/* ----------------------------------------------------------------- status */

static const char *st_metric_name(const struct view *v, size_t i)
{
	json_t *names = json_object_get(v->status, "metrics");
	return json_string_value(json_array_get(names, i));
}

/* The index of the metric shown: the one asked (name or index) else 0. */
static size_t metric_index(const struct view *v)
{
	json_t *names = json_object_get(v->status, "metrics");
	if (!v->metric[0])
		return 0;
	for (size_t i = 0; i < json_array_size(names); i++)
		if (!strcmp(json_string_value(json_array_get(names, i)) ?: "", v->metric))
			return i;
	char *end;
	unsigned long x = strtoul(v->metric, &end, 10);
	return *end ? 0 : x;
}

static long long st_num(const struct view *v, const char *key)
{
	json_t *x = json_object_get(v->status, key);
	if (json_is_array(x))
		x = json_array_get(x, metric_index(v));
	return json_is_integer(x) ? (long long)json_integer_value(x) : -1;
}

/* ------------------------------------------------------------------- draw */

/* A line of free text (anything from the network goes through sanitize). */
static void put_line(int y, const char *s, attr_t a)
{
	char buf[4096];
	unsigned w = tui_sanitize(s, strlen(s), (unsigned)COLS, buf, sizeof(buf));
	attron(a);
	mvaddstr(y, 0, buf);
	for (int x = (int)w; x < COLS; x++)
		mvaddch(y, x, ' ');
	attroff(a);
}

static void draw_too_small(void)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "terminal too small: %dx%d, need at least %dx%d", COLS, LINES,
		 TUI_MIN_COLS, TUI_MIN_ROWS);
	/* Cut to the width, one line per row while it lasts. */
	size_t n = strlen(buf), at = 0;
	for (int y = 0; y < LINES && at < n; y++) {
		size_t k = n - at < (size_t)COLS ? n - at : (size_t)COLS;
		mvaddnstr(y, 0, buf + at, (int)k);
		at += k;
	}
}

static attr_t match_attr(const struct view *v)
{
	return A_BOLD | A_UNDERLINE | (v->colors ? COLOR_PAIR(1) : 0);
}

static void draw_tree(struct view *v, int y0, int rows)
{
	char *line = malloc((size_t)COLS * 8 + 1);
	struct tui_row *r = calloc((size_t)rows, sizeof(*r));
	if (!line || !r)
		goto out;
	tui_format_header((unsigned)COLS, line, (size_t)COLS * 8 + 1);
	put_line(y0, line, A_BOLD);
	rows--;
	tui_model_scroll(&v->m, (size_t)rows);
	size_t k = tui_model_rows(&v->m, v->m.top, r, (size_t)rows);
	for (size_t i = 0; i < k; i++) {
		unsigned bar = tui_format_row(&v->m, r[i].node, r[i].indent, (unsigned)COLS, line,
					      (size_t)COLS * 8 + 1);
		attr_t a = r[i].node == v->m.sel ? A_REVERSE : 0;
		if (tui_model_matches(&v->m, r[i].node))
			a |= match_attr(v);
		attron(a);
		mvaddstr(y0 + 1 + (int)i, 0, line);
		attroff(a);
		if (v->colors && !(a & A_REVERSE)) /* the bar in green */
			mvchgat(y0 + 1 + (int)i, (int)bar, COLS - (int)bar, a, 2, NULL);
	}
out:
	free(line);
	free(r);
}

static void draw_icicle(struct view *v, int y0, int rows)
{
	/* The selection's row on top, then the icicle. */
	char *line = malloc((size_t)COLS * 8 + 1);
	if (!line)
		return;
	if (v->m.sel) {
		tui_format_row(&v->m, v->m.sel, 0, (unsigned)COLS, line, (size_t)COLS * 8 + 1);
		put_line(y0, line, A_BOLD);
	}
	free(line);
	y0++;
	rows--;
	size_t need = (size_t)COLS * (size_t)rows;
	if (need > v->ncells_max) {
		free(v->cells);
		v->cells = calloc(need, sizeof(*v->cells));
		v->ncells_max = v->cells ? need : 0;
	}
	size_t k = tui_model_icicle(&v->m, (unsigned)COLS, (unsigned)rows, v->cells, v->ncells_max);
	char buf[1024];
	for (size_t i = 0; i < k; i++) {
		struct tui_cell *c = &v->cells[i];
		const char *name = c->node->depth ? c->node->name : "all";
		attr_t a = c->node == v->m.sel ? A_REVERSE | A_BOLD : 0;
		if (tui_model_matches(&v->m, c->node))
			a |= match_attr(v);
		unsigned w = c->w > 255 ? 255 : c->w;
		buf[0] = '|';
		unsigned used = w > 1 ? tui_sanitize(name, strlen(name), w - 1, buf + 1,
						    sizeof(buf) - 1) + 1
				      : 1;
		size_t o = strlen(buf);
		while (used < c->w && o + 1 < sizeof(buf)) {
			buf[o++] = ' ';
			used++;
		}
		buf[o] = '\0';
		attron(a);
		mvaddstr(y0 + (int)c->row, (int)c->x, buf);
		attroff(a);
	}
}

static void draw(struct view *v)
{
	erase();
	if (COLS < TUI_MIN_COLS || LINES < TUI_MIN_ROWS) {
		draw_too_small();
		refresh();
		return;
	}
	char top[1024], cnt[24];
	size_t mi = metric_index(v);
	const char *mname = st_metric_name(v, mi);
	int k = snprintf(top, sizeof(top), "%s%s | window %s | metric %s", v->paused ? "PAUSED | " : "",
			 v->o->title, v->window, mname ? mname : v->metric[0] ? v->metric : "default");
	if (v->m.tree) {
		tui_fmt_count(v->m.tree->root->total, cnt, sizeof(cnt));
		k += snprintf(top + k, sizeof(top) - (size_t)k, " | total %s", cnt);
	}
	if (v->status) {
		long long ing = st_num(v, "ingested"), dr = st_num(v, "dropped"), mk = st_num(v, "marks");
		if (ing >= 0)
			k += snprintf(top + k, sizeof(top) - (size_t)k, " | ingested %lld", ing);
		if (dr > 0)
			k += snprintf(top + k, sizeof(top) - (size_t)k, " dropped %lld", dr);
		if (mk >= 0)
			k += snprintf(top + k, sizeof(top) - (size_t)k, " | marks %lld", mk);
	}
	put_line(0, top, A_REVERSE);

	char zpath[1024], spath[1024], l1[2100];
	tui_model_path_text(v->m.zoom, zpath, sizeof(zpath));
	tui_model_path_text(v->m.sel, spath, sizeof(spath));
	snprintf(l1, sizeof(l1), "zoom: %s | selected: %s", v->m.zoom ? zpath : "-",
		 v->m.sel ? spath : "-");
	put_line(1, l1, 0);

	int body = LINES - 4;
	if (!v->m.tree)
		put_line(3, "waiting for the first snapshot...", 0);
	else if (v->m.layout == TUI_LAYOUT_TREE)
		draw_tree(v, 2, body);
	else
		draw_icicle(v, 2, body);

	if (v->searching) {
		char s[600];
		snprintf(s, sizeof(s), "/%.*s", (int)v->slen, v->sbuf);
		put_line(LINES - 2, s, 0);
	} else {
		char s[800];
		int n = snprintf(s, sizeof(s), "[%s]", v->state);
		if (v->m.search[0])
			n += snprintf(s + n, sizeof(s) - (size_t)n, " search '%s': %zu matches",
				      v->m.search, tui_model_count_matches(&v->m));
		if (v->msg[0])
			snprintf(s + n, sizeof(s) - (size_t)n, " | %s", v->msg);
		put_line(LINES - 2, s, 0);
	}
	put_line(LINES - 1,
		 "q quit  hjkl move  enter zoom  u out  / search  n next  space pause  r mark  "
		 "w window  m metric  o order  t layout",
		 A_REVERSE);
	refresh();
}

/* ------------------------------------------------------------------ input */

static void restream(struct view *v)
{
	tui_client_stream(v->cl, v->window, v->metric[0] ? v->metric : NULL);
}

/* w: the next of windows[] (from --window's own Ns: all). */
static void next_window(struct view *v)
{
	size_t next = 0;
	for (size_t i = 0; i < NWINDOWS; i++)
		if (!strcmp(v->window, windows[i]))
			next = (i + 1) % NWINDOWS;
	snprintf(v->window, sizeof(v->window), "%s", windows[next]);
}

static void key_mark(struct view *v)
{
	char *ans = NULL, err[256] = "";
	long code = tui_client_request(v->cl, "POST", "mark", NULL, &ans, err, sizeof(err));
	json_t *j = code == 200 && ans ? json_loads(ans, 0, NULL) : NULL;
	if (j)
		snprintf(v->msg, sizeof(v->msg), "mark %lld set",
			 (long long)json_integer_value(json_object_get(j, "mark")));
	else if (code)
		snprintf(v->msg, sizeof(v->msg), "mark: HTTP %ld %.*s", code,
			 ans ? (int)strcspn(ans, "\r\n") : 0, ans ? ans : "");
	else
		snprintf(v->msg, sizeof(v->msg), "mark: %s", err);
	json_decref(j);
	free(ans);
}

/* o: the next field order, the current one rotated by one (each field comes
 * first in turn: the presets of any source).  The server resets the data. */
static void key_order(struct view *v)
{
	char *ans = NULL, err[256] = "";
	long code = tui_client_request(v->cl, "GET", "order", NULL, &ans, err, sizeof(err));
	json_t *j = code == 200 && ans ? json_loads(ans, 0, NULL) : NULL;
	json_t *f = json_object_get(j, "fields");
	free(ans);
	ans = NULL;
	if (!json_is_array(f) || json_array_size(f) < 2) {
		if (code == 404)
			snprintf(v->msg, sizeof(v->msg), "this source has no field order");
		else if (json_is_array(f))
			snprintf(v->msg, sizeof(v->msg), "one field: nothing to reorder");
		else
			snprintf(v->msg, sizeof(v->msg), "order: %s", code ? "bad answer" : err);
		json_decref(j);
		return;
	}
	json_t *first = json_incref(json_array_get(f, 0));
	json_array_remove(f, 0);
	json_array_append_new(f, first);
	char *body = json_dumps(j, JSON_COMPACT);
	code = body ? tui_client_request(v->cl, "POST", "order", body, &ans, err, sizeof(err)) : 0;
	if (code == 200) {
		char list[200] = "";
		size_t i, n = 0;
		json_t *x;
		json_array_foreach(f, i, x)
			n += (size_t)snprintf(list + n, n < sizeof(list) ? sizeof(list) - n : 0, "%s%s",
					      i ? "," : "", json_string_value(x) ?: "?");
		snprintf(v->msg, sizeof(v->msg), "order %s (data reset)", list);
	} else {
		snprintf(v->msg, sizeof(v->msg), "order: %s%.*s", code ? "refused: " : err,
			 ans ? (int)strcspn(ans, "\r\n") : 0, ans ? ans : "");
	}
	free(body);
	free(ans);
	json_decref(j);
}

static void key_metric(struct view *v)
{
	json_t *names = json_object_get(v->status, "metrics");
	size_t n = json_array_size(names);
	if (n < 2) {
		snprintf(v->msg, sizeof(v->msg), "%s", n ? "one metric only" : "no metric list yet");
		return;
	}
	size_t next = (metric_index(v) + 1) % n;
	snprintf(v->metric, sizeof(v->metric), "%zu", next);
	restream(v);
	snprintf(v->msg, sizeof(v->msg), "metric %s", st_metric_name(v, next) ?: "?");
}

/* The search prompt's keys: true while it stays open. */
static void key_search(struct view *v, int ch)
{
	if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
		v->sbuf[v->slen] = '\0';
		tui_model_set_search(&v->m, v->sbuf);
		v->searching = false;
		if (v->slen && !tui_model_next_match(&v->m))
			snprintf(v->msg, sizeof(v->msg), "no match");
	} else if (ch == 27) {
		v->searching = false;
	} else if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
		if (v->slen)
			v->slen--;
	} else if (ch >= 0x20 && ch < 0x100 && ch != 0x7f && v->slen + 1 < sizeof(v->sbuf)) {
		v->sbuf[v->slen++] = (char)ch;
	}
}

/* One key: false to quit. */
static bool key(struct view *v, int ch)
{
	if (v->searching) {
		key_search(v, ch);
		return true;
	}
	unsigned page = LINES > 6 ? (unsigned)LINES - 6 : 1;
	v->msg[0] = '\0';
	switch (ch) {
	case 'q': case 'Q': return false;
	case KEY_UP: case 'k': tui_model_move(&v->m, TUI_UP, page); break;
	case KEY_DOWN: case 'j': tui_model_move(&v->m, TUI_DOWN, page); break;
	case KEY_LEFT: case 'h': tui_model_move(&v->m, TUI_LEFT, page); break;
	case KEY_RIGHT: case 'l': tui_model_move(&v->m, TUI_RIGHT, page); break;
	case KEY_HOME: case 'g': tui_model_move(&v->m, TUI_HOME, page); break;
	case KEY_END: case 'G': tui_model_move(&v->m, TUI_END, page); break;
	case KEY_PPAGE: tui_model_move(&v->m, TUI_PGUP, page); break;
	case KEY_NPAGE: tui_model_move(&v->m, TUI_PGDN, page); break;
	case '\n': case '\r': case KEY_ENTER: tui_model_zoom_in(&v->m); break;
	case 'u': case KEY_BACKSPACE: case 127: case 8: tui_model_zoom_out(&v->m); break;
	case '/': v->searching = true; v->slen = 0; break;
	case 'n':
		if (!v->m.search[0])
			snprintf(v->msg, sizeof(v->msg), "no search: / first");
		else if (!tui_model_next_match(&v->m))
			snprintf(v->msg, sizeof(v->msg), "no match");
		break;
	case ' ': v->paused = !v->paused; break;
	case 'r': key_mark(v); break;
	case 'w':
		next_window(v);
		restream(v);
		snprintf(v->msg, sizeof(v->msg), "window %s", v->window);
		break;
	case 'm': key_metric(v); break;
	case 'o': key_order(v); break;
	case 't':
		v->m.layout = v->m.layout == TUI_LAYOUT_TREE ? TUI_LAYOUT_ICICLE : TUI_LAYOUT_TREE;
		break;
	default: break;
	}
	return true;
}

/* --------------------------------------------------------------- the loop */

/* What the client has for us, unless paused. */
static void take_news(struct view *v)
{
	tui_client_state(v->cl, v->state, sizeof(v->state));
	if (v->paused)
		return;
	char *ev = tui_client_take_event(v->cl);
	if (ev) {
		struct tui_tree *t;
		char err[256];
		if (tui_tree_parse(ev, strlen(ev), &t, err, sizeof(err)) == 0)
			tui_model_set_tree(&v->m, t);
		else
			snprintf(v->msg, sizeof(v->msg), "%s", err);
		free(ev);
	}
	char *st = tui_client_take_status(v->cl);
	if (st) {
		json_t *j = json_loads(st, 0, NULL);
		if (json_is_object(j)) {
			json_decref(v->status);
			v->status = j;
		} else {
			json_decref(j);
		}
		free(st);
	}
}

static void drain(int fd)
{
	char b[256];
	while (read(fd, b, sizeof(b)) > 0) {
	}
}

static int run(const struct tui_opts *o, int stop_fd)
{
	struct view v = { .o = o, .stop_fd = stop_fd, .wake = { -1, -1 } };
	char err[512] = "";
	int rc = -1;
	tui_model_init(&v.m);
	v.m.layout = o->layout;
	if (o->metric)
		snprintf(v.metric, sizeof(v.metric), "%s", o->metric);
	snprintf(v.window, sizeof(v.window), "%s", o->window ? o->window : "all");
	if (pipe2(v.wake, O_CLOEXEC | O_NONBLOCK)) {
		snprintf(err, sizeof(err), "pipe: %s", strerror(errno));
		goto out;
	}
	if (!(v.in = fopen("/dev/tty", "re")) || !(v.out = fopen("/dev/tty", "we"))) {
		snprintf(err, sizeof(err), "no terminal (/dev/tty): %s", strerror(errno));
		goto out;
	}
	if (!(v.cl = tui_client_start(o->url, o->token, v.wake[1], err, sizeof(err))))
		goto out;
	if (strcmp(v.window, "all") || v.metric[0])
		restream(&v);
	setlocale(LC_CTYPE, "");
	struct saved_sigs saved;
	signals_take(&v, &saved);
	if (!(v.scr = newterm(NULL, v.out, v.in))) {
		signals_give_back(&v, &saved);
		snprintf(err, sizeof(err), "cannot start the terminal (TERM=%s)",
			 getenv("TERM") ? getenv("TERM") : "");
		goto out;
	}
	set_term(v.scr);
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	set_escdelay(25);
	curs_set(0);
	if (has_colors() && start_color() == OK) {
		use_default_colors();
		init_pair(1, COLOR_BLACK, COLOR_YELLOW);
		init_pair(2, COLOR_GREEN, -1);
		v.colors = true;
	}
	snprintf(v.state, sizeof(v.state), "connecting");
	draw(&v);
	int ttyfd = fileno(v.in);
	for (bool go = true; go;) {
		struct pollfd p[3] = { { ttyfd, POLLIN, 0 }, { v.wake[0], POLLIN, 0 },
				       { stop_fd, POLLIN, 0 } };
		if (poll(p, stop_fd >= 0 ? 3 : 2, -1) < 0 && errno != EINTR)
			break;
		if (sig_quit || (stop_fd >= 0 && p[2].revents))
			break;
		if (p[1].revents)
			drain(v.wake[0]);
		if (sig_resize) {
			sig_resize = 0;
			struct winsize ws;
			if (!ioctl(ttyfd, TIOCGWINSZ, &ws) && ws.ws_row && ws.ws_col)
				resize_term(ws.ws_row, ws.ws_col);
			clearok(curscr, TRUE);
		}
		if (p[0].revents & (POLLHUP | POLLERR))
			break;
		int ch;
		while (go && (ch = getch()) != ERR)
			if (ch != KEY_RESIZE)
				go = key(&v, ch);
		if (!go && o->on_quit)
			o->on_quit(o->arg);
		take_news(&v);
		if (go)
			draw(&v);
	}
	rc = 0;
	endwin();
	delscreen(v.scr);
	signals_give_back(&v, &saved);
out:
	tui_client_stop(v.cl);
	if (v.in)
		fclose(v.in);
	if (v.out)
		fclose(v.out);
	if (v.wake[0] >= 0) {
		close(v.wake[0]);
		close(v.wake[1]);
	}
	json_decref(v.status);
	free(v.cells);
	tui_model_fini(&v.m);
	if (rc)
		fprintf(stderr, "%s%s%s\n", o->who ? o->who : "", o->who ? ": " : "", err);
	return rc;
}

int tui_run(const struct tui_opts *o)
{
	return run(o, -1);
}

struct tui_thread {
	struct tui_opts o;
	int stop[2];
	pthread_t thr;
};

static void *thread_main(void *arg)
{
	struct tui_thread *t = arg;
	run(&t->o, t->stop[0]);
	return NULL;
}

struct tui_thread *tui_thread_start(const struct tui_opts *o)
{
	struct tui_thread *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->o = *o;
	t->o.own_signals = false;
	if (pipe2(t->stop, O_CLOEXEC)) {
		free(t);
		return NULL;
	}
	/* The view's thread takes no process signal: they stay the program's. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int err = pthread_create(&t->thr, NULL, thread_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		close(t->stop[0]);
		close(t->stop[1]);
		free(t);
		errno = err;
		return NULL;
	}
	return t;
}

void tui_thread_stop(struct tui_thread *t)
{
	if (!t)
		return;
	if (write(t->stop[1], "", 1) < 0) {
	}
	pthread_join(t->thr, NULL);
	close(t->stop[0]);
	close(t->stop[1]);
	free(t);
}
