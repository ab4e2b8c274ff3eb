/* SPDX-License-Identifier: MIT */
/*
 * test_tui_model.c - the terminal view's model (tui/model.c) without a
 * terminal: parsing ior's JSON, zoom/selection/search surviving new
 * snapshots (nearest ancestor when a node goes), moves in both layouts, the
 * icicle's geometry, the row text, and hostile names (control characters,
 * invalid UTF-8, very long) always sanitized and cut to the width.
 */
#include <criterion/criterion.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tui/tui.h"
#include "support/support.h"

TestSuite(tui_model, .timeout = 30);

/* main;a;b 3, main;a;c 2, main;x 1 (children deliberately unsorted). */
static const char known[] =
	"{\"n\":\"\",\"v\":0,\"t\":6,\"c\":[{\"n\":\"main\",\"v\":0,\"t\":6,\"c\":["
	"{\"n\":\"x\",\"v\":1,\"t\":1},"
	"{\"n\":\"a\",\"v\":0,\"t\":5,\"c\":[{\"n\":\"c\",\"v\":2,\"t\":2},{\"n\":\"b\",\"v\":3,\"t\":3}]}"
	"]}]}";

static struct tui_tree *parse(const char *json)
{
	struct tui_tree *t = NULL;
	char err[256] = "";
	cr_assert_eq(tui_tree_parse(json, strlen(json), &t, err, sizeof(err)), 0, "%s", err);
	return t;
}

static struct tui_node *kid(struct tui_node *n, const char *name)
{
	for (size_t i = 0; i < n->nkid; i++)
		if (!strcmp(n->kid[i]->name, name))
			return n->kid[i];
	cr_assert_fail("no child %s under %s", name, n->name);
	return NULL;
}

static const char *path(const struct tui_node *n)
{
	static char buf[512];
	tui_model_path_text(n, buf, sizeof(buf));
	return buf;
}

Test(tui_model, parse_sorts_children_by_total)
{
	struct tui_tree *t = parse(known);
	cr_expect_eq(t->nodes, 6);
	cr_expect_eq(t->root->total, 6);
	struct tui_node *m = t->root->kid[0];
	cr_expect_str_eq(m->name, "main");
	cr_expect_str_eq(m->kid[0]->name, "a");
	cr_expect_str_eq(m->kid[1]->name, "x");
	cr_expect_str_eq(m->kid[0]->kid[0]->name, "b");
	cr_expect_eq(m->kid[0]->kid[0]->self, 3);
	cr_expect_eq(m->kid[0]->kid[0]->depth, 3);
	cr_expect_eq(m->kid[0]->kid[0]->parent, m->kid[0]);
	tui_tree_free(t);
}

Test(tui_model, parse_rejects_bad_input_with_a_reason)
{
	static const char *const bad[] = {
		"", "{", "[]", "{\"n\":1}", "{\"t\":-1}", "{\"t\":\"6\"}", "{\"c\":{}}", "{\"c\":[1]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tui_tree *t = NULL;
		char err[256] = "";
		cr_expect_eq(tui_tree_parse(bad[i], strlen(bad[i]), &t, err, sizeof(err)), -1, "%s", bad[i]);
		cr_expect(err[0], "no reason for %s", bad[i]);
		cr_expect_null(t);
	}
	/* Deeper than any parser limit: an error, not a crash. */
	size_t depth = 5000;
	char *deep = malloc(depth * 8 + 16), *p = deep;
	for (size_t i = 0; i < depth; i++)
		p += sprintf(p, "{\"c\":[");
	for (size_t i = 0; i < depth; i++)
		p += sprintf(p, "]}");
	struct tui_tree *t = NULL;
	char err[256];
	cr_expect_eq(tui_tree_parse(deep, strlen(deep), &t, err, sizeof(err)), -1);
	free(deep);
}

Test(tui_model, zoom_and_selection_survive_updates)
{
	struct tui_model m;
	tui_model_init(&m);
	tui_model_set_tree(&m, parse(known));
	cr_assert_eq(m.zoom, m.tree->root);
	/* tree layout: down twice = main, a; zoom there; down = b */
	tui_model_move(&m, TUI_DOWN, 1);
	tui_model_move(&m, TUI_DOWN, 1);
	cr_assert_str_eq(path(m.sel), "main;a");
	tui_model_zoom_in(&m);
	tui_model_move(&m, TUI_DOWN, 1);
	cr_assert_str_eq(path(m.sel), "main;a;b");

	/* A new snapshot with more in it: same places, new nodes. */
	tui_model_set_tree(&m, parse("{\"t\":16,\"c\":[{\"n\":\"main\",\"t\":16,\"c\":["
				     "{\"n\":\"a\",\"t\":15,\"c\":[{\"n\":\"c\",\"v\":12,\"t\":12},"
				     "{\"n\":\"b\",\"v\":3,\"t\":3}]},{\"n\":\"x\",\"v\":1,\"t\":1}]}]}"));
	cr_expect_str_eq(path(m.zoom), "main;a");
	cr_expect_str_eq(path(m.sel), "main;a;b");
	cr_expect_eq(m.sel->total, 3);

	/* a is gone: both fall back to its nearest ancestor (main) ... */
	tui_model_set_tree(&m, parse("{\"t\":1,\"c\":[{\"n\":\"main\",\"t\":1,\"c\":["
				     "{\"n\":\"x\",\"v\":1,\"t\":1}]}]}"));
	cr_expect_str_eq(path(m.zoom), "main");
	cr_expect_str_eq(path(m.sel), "main");
	/* ... and come back to it when it returns. */
	tui_model_set_tree(&m, parse(known));
	cr_expect_str_eq(path(m.zoom), "main;a");
	cr_expect_str_eq(path(m.sel), "main;a;b");

	tui_model_zoom_out(&m);
	cr_expect_str_eq(path(m.zoom), "main");
	tui_model_zoom_out(&m);
	tui_model_zoom_out(&m); /* at the root: stays */
	cr_expect_eq(m.zoom, m.tree->root);
	tui_model_set_tree(&m, NULL);
	cr_expect_null(m.sel);
	tui_model_fini(&m);
}

Test(tui_model, search_highlights_and_next_wraps)
{
	struct tui_model m;
	tui_model_init(&m);
	tui_model_set_tree(&m, parse(known));
	tui_model_set_search(&m, "A");
	/* case folded: main and a match (the root never does) */
	cr_expect_eq(tui_model_count_matches(&m), 2);
	cr_expect(tui_model_matches(&m, m.tree->root->kid[0]));
	cr_expect(!tui_model_matches(&m, kid(m.tree->root->kid[0], "x")));
	cr_assert(tui_model_next_match(&m));
	cr_expect_str_eq(path(m.sel), "main");
	cr_assert(tui_model_next_match(&m));
	cr_expect_str_eq(path(m.sel), "main;a");
	cr_assert(tui_model_next_match(&m));
	cr_expect_str_eq(path(m.sel), "main", "n wraps around");
	/* the search survives an update (it is a string, not nodes) */
	tui_model_set_tree(&m, parse(known));
	cr_expect_eq(tui_model_count_matches(&m), 2);
	cr_expect_str_eq(path(m.sel), "main");
	tui_model_set_search(&m, "nothing");
	cr_expect(!tui_model_next_match(&m));
	cr_expect_str_eq(path(m.sel), "main");
	tui_model_fini(&m);
}

Test(tui_model, tree_rows_depth_first_and_scroll)
{
	struct tui_model m;
	tui_model_init(&m);
	tui_model_set_tree(&m, parse(known));
	struct tui_row r[10];
	size_t k = tui_model_rows(&m, 0, r, 10);
	cr_assert_eq(k, 6);
	static const char *const want[] = { "", "main", "a", "b", "c", "x" };
	static const unsigned indent[] = { 0, 1, 2, 3, 3, 2 };
	for (size_t i = 0; i < k; i++) {
		cr_expect_str_eq(r[i].node->name, want[i], "row %zu", i);
		cr_expect_eq(r[i].indent, indent[i], "row %zu", i);
	}
	tui_model_move(&m, TUI_END, 1);
	cr_expect_str_eq(path(m.sel), "main;x");
	tui_model_scroll(&m, 3);
	cr_expect_eq(m.top, 3, "the last row shows in 3 rows");
	tui_model_move(&m, TUI_HOME, 1);
	tui_model_scroll(&m, 3);
	cr_expect_eq(m.top, 0);
	tui_model_move(&m, TUI_PGDN, 4);
	cr_expect_str_eq(path(m.sel), "main;a;c");
	tui_model_move(&m, TUI_LEFT, 1);
	cr_expect_str_eq(path(m.sel), "main;a", "h goes to the parent");
	tui_model_move(&m, TUI_RIGHT, 1);
	cr_expect_str_eq(path(m.sel), "main;a;b", "l goes to the largest child");
	tui_model_fini(&m);
}

Test(tui_model, icicle_geometry_and_moves)
{
	struct tui_model m;
	tui_model_init(&m);
	tui_model_set_tree(&m, parse(known));
	m.layout = TUI_LAYOUT_ICICLE;
	struct tui_cell c[32];
	size_t k = tui_model_icicle(&m, 60, 10, c, 32);
	cr_assert_eq(k, 6);
	/* root and main span all; a 50 columns (5/6), x 10; b 30, c 20 */
	struct {
		const char *name;
		unsigned row, x, w;
	} want[] = { { "", 0, 0, 60 }, { "main", 1, 0, 60 }, { "a", 2, 0, 50 },
		     { "b", 3, 0, 30 }, { "c", 3, 30, 20 }, { "x", 2, 50, 10 } };
	for (size_t i = 0; i < k; i++) {
		cr_expect_str_eq(c[i].node->name, want[i].name);
		cr_expect_eq(c[i].row, want[i].row, "%s row", want[i].name);
		cr_expect_eq(c[i].x, want[i].x, "%s x", want[i].name);
		cr_expect_eq(c[i].w, want[i].w, "%s w", want[i].name);
	}
	cr_expect_eq(tui_model_icicle(&m, 60, 3, c, 32), 4, "rows past the height are not placed");
	cr_expect_eq(tui_model_icicle(&m, 3, 10, c, 32), 5, "x (1/6 of 3 columns) is too narrow");
	/* moves: down = largest child, right = next at the same depth */
	tui_model_move(&m, TUI_DOWN, 1);
	tui_model_move(&m, TUI_DOWN, 1);
	tui_model_move(&m, TUI_DOWN, 1);
	cr_expect_str_eq(path(m.sel), "main;a;b");
	tui_model_move(&m, TUI_RIGHT, 1);
	cr_expect_str_eq(path(m.sel), "main;a;c");
	tui_model_move(&m, TUI_RIGHT, 1);
	cr_expect_str_eq(path(m.sel), "main;a;c", "nothing further right at that depth");
	tui_model_move(&m, TUI_UP, 1);
	tui_model_move(&m, TUI_RIGHT, 1);
	cr_expect_str_eq(path(m.sel), "main;x");
	tui_model_move(&m, TUI_LEFT, 1);
	cr_expect_str_eq(path(m.sel), "main;a");
	/* zoomed on a: a spans the width */
	tui_model_zoom_in(&m);
	k = tui_model_icicle(&m, 60, 10, c, 32);
	cr_expect_eq(k, 3);
	cr_expect_eq(c[0].w, 60);
	cr_expect_eq(c[1].w, 36);
	tui_model_move(&m, TUI_UP, 1);
	cr_expect_str_eq(path(m.sel), "main;a", "up stops at the zoom");
	tui_model_fini(&m);
}

/* Columns of an ASCII/UTF-8 string in the C.UTF-8 locale. */
static unsigned cols_of(const char *s)
{
	unsigned w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

Test(tui_model, hostile_names_are_escaped_and_cut)
{
	char out[512];
	cr_expect_eq(tui_sanitize("a\x1b[31mb\n", 8, 80, out, sizeof(out)), 14);
	cr_expect_str_eq(out, "a\\x1b[31mb\\x0a");
	/* invalid UTF-8: lone continuation, overlong, surrogate, truncated */
	static const char bad[] = "\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82";
	tui_sanitize(bad, sizeof(bad) - 1, 200, out, sizeof(out));
	cr_expect_str_eq(out, "\\x80|\\xc0\\xaf|\\xed\\xa0\\x80|\\xe2\\x82");
	/* too long: cut to the width, ending in '~' */
	char longname[3000];
	memset(longname, 'z', sizeof(longname));
	cr_expect_eq(tui_sanitize(longname, sizeof(longname), 10, out, sizeof(out)), 10);
	cr_expect_str_eq(out, "zzzzzzzzz~");
	cr_expect_eq(tui_sanitize("abc", 3, 3, out, sizeof(out)), 3);
	cr_expect_str_eq(out, "abc", "exactly the width is not cut");
	/* an escape is never cut in half */
	cr_expect_eq(tui_sanitize("ab\x01", 3, 5, out, sizeof(out)), 3);
	cr_expect_str_eq(out, "ab~");

	setlocale(LC_CTYPE, "C.UTF-8");
	/* printable UTF-8 stays (é one column, 漢 two); C1 controls and the
	 * bidi override (no width) are escaped */
	cr_expect_eq(tui_sanitize("é漢", strlen("é漢"), 10, out, sizeof(out)), 3);
	cr_expect_str_eq(out, "é漢");
	tui_sanitize("\xc2\x9b|\xe2\x80\xae", 6, 40, out, sizeof(out));
	cr_expect_str_eq(out, "\\u{9b}|\\u{202e}");
	cr_expect_eq(tui_sanitize("漢漢漢", strlen("漢漢漢"), 4, out, sizeof(out)), 3);
	cr_expect_str_eq(out, "漢~", "a wide character that does not fit is left out");
	/* random bytes: never wider than asked, never a control byte out */
	uint64_t seed = 19;
	for (int round = 0; round < 2000; round++) {
		char in[64];
		size_t n = ts_rand(&seed) % sizeof(in);
		for (size_t i = 0; i < n; i++)
			in[i] = (char)ts_rand(&seed);
		unsigned cols = (unsigned)(ts_rand(&seed) % 30);
		unsigned w = tui_sanitize(in, n, cols, out, sizeof(out));
		cr_assert_leq(w, cols);
		for (const char *p = out; *p; p++)
			cr_assert((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte out");
	}
	setlocale(LC_CTYPE, "C");
	/* not a UTF-8 locale: every non-ASCII character is escaped */
	tui_sanitize("é", 2, 40, out, sizeof(out));
	cr_expect_str_eq(out, "\\u{e9}");
}

Test(tui_model, row_text_fills_the_width)
{
	struct tui_model m;
	tui_model_init(&m);
	char json[4200];
	char name[3000];
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	snprintf(json, sizeof(json),
		 "{\"t\":4,\"c\":[{\"n\":\"%s\",\"v\":1,\"t\":1},{\"n\":\"a\\u001b[2Jb\",\"v\":3,\"t\":3}]}",
		 name);
	tui_model_set_tree(&m, parse(json));
	char out[8 * 200 + 1];
	for (unsigned cols = TUI_MIN_COLS; cols <= 200; cols += 7) {
		for (size_t i = 0; i < 2; i++) {
			unsigned bar = tui_format_row(&m, m.tree->root->kid[i], 30, cols, out, sizeof(out));
			cr_expect_eq(cols_of(out), cols, "row %zu at %u columns: '%s'", i, cols, out);
			cr_expect(!strchr(out, '\x1b'));
			cr_expect_lt(bar, cols);
		}
		tui_format_header(cols, out, sizeof(out));
		cr_expect_eq(cols_of(out), cols);
	}
	unsigned bar = tui_format_row(&m, m.tree->root->kid[0], 0, 80, out, sizeof(out));
	cr_expect(strstr(out, "a\\x1b[2Jb"), "%s", out);
	cr_expect(strstr(out, "  75.0%  75.0%        3        3 "), "%s", out);
	/* the bar: 3/4 of the zoom's total, of 13 columns */
	cr_expect(!strncmp(out + bar, "##########   ", 13), "%s", out + bar);
	tui_format_row(&m, m.tree->root->kid[1], 0, 80, out, sizeof(out));
	cr_expect(strstr(out, "nnn~ "), "a long name is cut: %s", out);
	tui_model_fini(&m);
}

Test(tui_model, counts_fit_eight_columns)
{
	char b[32];
	tui_fmt_count(0, b, sizeof(b));
	cr_expect_str_eq(b, "0");
	tui_fmt_count(99999999, b, sizeof(b));
	cr_expect_str_eq(b, "99999999");
	tui_fmt_count(100000000, b, sizeof(b));
	cr_expect_str_eq(b, "100.0M");
	tui_fmt_count(UINT64_MAX, b, sizeof(b));
	cr_expect_str_eq(b, "18.4E");
}
