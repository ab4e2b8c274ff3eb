/* SPDX-License-Identifier: MIT */
/*
 * tui.h - the terminal live view (`shardtrie top URL`, `record ... --tui`),
 * issue 19, docs/tui.md.  Three parts, each in its own file:
 *
 *   model.c   the tree of the last snapshot, zoom, selection, search and the
 *             layouts (indented tree, icicle), as pure C: no terminal, no
 *             network, unit-tested alone (tests/test_tui_model.c).
 *   client.c  the live server's client (libcurl): the /events stream and
 *             /api/status on a thread of their own, requests (POST /mark,
 *             GET|POST /order) on demand.  It keeps only the newest event.
 *   view.c    ncurses: draws the model, reads keys, restores the terminal.
 *
 * The view is only a reader of the server: whatever it does, the server's
 * ingest never waits for it (the server encodes each snapshot once for all
 * clients; a slow client is dropped, docs/live.md).  tui/ includes no cli/
 * header (arrows: cli -> tui -> public engine headers).
 */
#ifndef ST_TUI_H
#define ST_TUI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ----------------------------------------------------------------- model */

/* One frame of the snapshot: self and total of the metric shown.  kid[] is
 * sorted by total (largest first), then by name. */
struct tui_node {
	char *name; /* as received (any bytes): sanitized only when drawn */
	uint64_t self, total;
	struct tui_node *parent;
	struct tui_node **kid;
	size_t nkid;
	unsigned depth; /* 0 = the root */
};

struct tui_tree {
	struct tui_node *root;
	size_t nodes;
	uint64_t version; /* from the SSE id, 0 when unknown */
};

/* Parse ior's {n,v,t,c} JSON (len bytes): 0 and *out, or -1 with a reason
 * in err.  At most TUI_MAX_NODES nodes and TUI_MAX_DEPTH levels (deeper or
 * more: an error, not a crash). */
#define TUI_MAX_NODES (1u << 22)
#define TUI_MAX_DEPTH 4096
int tui_tree_parse(const char *json, size_t len, struct tui_tree **out, char *err, size_t errlen);
void tui_tree_free(struct tui_tree *t);

enum tui_layout { TUI_LAYOUT_TREE, TUI_LAYOUT_ICICLE };
enum tui_move { TUI_UP, TUI_DOWN, TUI_LEFT, TUI_RIGHT, TUI_HOME, TUI_END, TUI_PGUP, TUI_PGDN };

/* A node's place as the names from the root down (the root not included):
 * what survives a new snapshot. */
struct tui_path {
	char **name;
	size_t n;
};

/*
 * Invariants: tree is the newest tree applied (or NULL); zoom and sel point
 * into it, sel is zoom or below it; zoom_path and sel_path are their paths,
 * updated whenever they move, so that a new tree puts them back where they
 * were (or on the nearest ancestor still there).  top is the first row the
 * tree layout shows (scrolling), kept so that sel is visible.
 */
struct tui_model {
	struct tui_tree *tree;
	struct tui_node *zoom, *sel;
	struct tui_path zoom_path, sel_path;
	char search[256]; /* "" = none; a substring of the name, ASCII case folded */
	enum tui_layout layout;
	size_t top;
};

void tui_model_init(struct tui_model *m);
void tui_model_fini(struct tui_model *m);
/* Take tree t (owned from now on; the old one is freed) and put zoom and
 * selection back on their paths. */
void tui_model_set_tree(struct tui_model *m, struct tui_tree *t);
void tui_model_move(struct tui_model *m, enum tui_move d, unsigned page);
void tui_model_zoom_in(struct tui_model *m);  /* zoom on the selection */
void tui_model_zoom_out(struct tui_model *m); /* zoom on the zoomed node's parent */
void tui_model_set_search(struct tui_model *m, const char *s);
bool tui_model_matches(const struct tui_model *m, const struct tui_node *n);
/* Select the next match after the selection (depth first below the zoom,
 * wrapping): false when there is none. */
bool tui_model_next_match(struct tui_model *m);
size_t tui_model_count_matches(const struct tui_model *m);
/* ';'-joined path of n (sanitized, at most n bytes), for the status line. */
void tui_model_path_text(const struct tui_node *n, char *buf, size_t size);

/* Share of n in its window (the root) and in its parent, in [0, 1]. */
double tui_share_window(const struct tui_model *m, const struct tui_node *n);
double tui_share_parent(const struct tui_node *n);

/* The tree layout: the zoomed subtree depth first, one row per node. */
struct tui_row {
	struct tui_node *node;
	unsigned indent; /* levels below the zoom */
};
/* Rows [top, top + max) of the layout into rows: how many were written.
 * tui_model_scroll first makes top show the selection in `height` rows. */
size_t tui_model_rows(const struct tui_model *m, size_t top, struct tui_row *rows, size_t max);
void tui_model_scroll(struct tui_model *m, size_t height);

/* The icicle layout: row r is the depth zoom+r, a node spans [x, x + w)
 * of width columns in proportion to its total (nodes narrower than one
 * column are not placed). */
struct tui_cell {
	struct tui_node *node;
	unsigned row, x, w;
};
size_t tui_model_icicle(const struct tui_model *m, unsigned width, unsigned height,
			struct tui_cell *cells, size_t max);

/*
 * Text.  Every name goes through tui_sanitize before it reaches the
 * terminal: control characters and bytes that are not UTF-8 become \xNN,
 * characters the locale cannot show at a width of one or more become
 * \u{XXXX}, and the result is cut to `cols` columns (a cut ends in '~').
 * Writes a NUL-terminated string (size > 0) and returns the columns used.
 */
unsigned tui_sanitize(const char *s, size_t len, unsigned cols, char *out, size_t size);
/* 12345678 or 1.2G: at most 8 columns. */
void tui_fmt_count(uint64_t v, char *out, size_t size);
/* The tree layout's row of n (indent levels) in exactly `cols` columns:
 * name, % of window, % of parent, self, total, bar.  out must hold
 * 8 * cols + 1 bytes.  Returns the column where the bar starts. */
unsigned tui_format_row(const struct tui_model *m, const struct tui_node *n, unsigned indent,
			unsigned cols, char *out, size_t size);
/* The header line above the rows, same columns. */
void tui_format_header(unsigned cols, char *out, size_t size);
#define TUI_MIN_COLS 50
#define TUI_MIN_ROWS 8

/* ---------------------------------------------------------------- client */

struct tui_client;
/* base: http://HOST:PORT/ (a trailing path is kept as the prefix); token may
 * be NULL.  wake_fd gets a byte when an event or a status arrives (or the
 * connection state changes).  NULL with a reason in err. */
struct tui_client *tui_client_start(const char *base, const char *token, int wake_fd, char *err,
				    size_t errlen);
void tui_client_stop(struct tui_client *c);
/* (Re)open /events with these parameters (window: "all", "10s", "mark";
 * metric: a name or an index, NULL = the server's default; both sent
 * URL-safe as given: the caller checks them).  The newest event of the old
 * stream is dropped. */
void tui_client_stream(struct tui_client *c, const char *window, const char *metric);
/* The newest event's JSON (malloc'd) not taken yet, or NULL. */
char *tui_client_take_event(struct tui_client *c);
/* The newest /api/status JSON (malloc'd) not taken yet, or NULL. */
char *tui_client_take_status(struct tui_client *c);
/* The stream's state for the status line ("connected", "401 ..."). */
void tui_client_state(struct tui_client *c, char *out, size_t size);
/* A request now (bounded by a few seconds): the HTTP status (0 when none
 * came, the reason in err) and the body (malloc'd, may be NULL). */
long tui_client_request(struct tui_client *c, const char *method, const char *path,
			const char *body, char **answer, char *err, size_t errlen);

/* ------------------------------------------------------------------ view */

struct tui_opts {
	const char *url;    /* the server's base URL */
	const char *token;  /* or NULL */
	const char *window; /* "all" (default), "Ns", "mark" */
	const char *metric; /* name or index, NULL = the server's default */
	const char *title;  /* shown on the top line */
	const char *who;    /* prefix of an error line ("shardtrie top"), or NULL */
	enum tui_layout layout; /* the first one (t switches) */
	/* The standalone viewer (top) takes SIGINT and SIGTERM to quit;
	 * inside another program (record --tui) it leaves them to it and
	 * calls on_quit when the user presses q. */
	bool own_signals;
	void (*on_quit)(void *arg);
	void *arg;
};

/* Run the view on the controlling terminal (/dev/tty) until q, a signal
 * (own_signals) or tui_stop: 0, or -1 with the reason printed on stderr
 * after the terminal is restored. */
int tui_run(const struct tui_opts *o);

/* The view on a thread of its own (record --tui). */
struct tui_thread;
struct tui_thread *tui_thread_start(const struct tui_opts *o);
void tui_thread_stop(struct tui_thread *t); /* restores the terminal, joins */

#endif
