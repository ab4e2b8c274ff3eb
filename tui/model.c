/* SPDX-License-Identifier: MIT */
/*
 * model.c - what the terminal view shows, without a terminal: the tree of
 * the newest snapshot, zoom, selection, search, the two layouts and the
 * text of a row.  Pure C (jansson to parse), unit-tested by
 * tests/test_tui_model.c.
 *
 * Invariants:
 *   - zoom and sel point into tree (both NULL only while there is no tree);
 *     sel is zoom or one of its descendants.
 *   - zoom_path and sel_path hold what the user chose (names from the root);
 *     a new tree puts zoom and sel on them, or on the nearest ancestor that
 *     is still there (and back on them when the node returns).  A move
 *     rewrites them from the node moved to.
 *   - Names are kept as received; only tui_sanitize'd text reaches the
 *     terminal, and no text is wider than the columns it was given.
 */
#include <ctype.h>
#include <jansson.h>
#include <langinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "tui.h"

/* ------------------------------------------------------------------ tree */

static void node_free(struct tui_node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nkid; i++)
		node_free(n->kid[i]);
	free(n->kid);
	free(n->name);
	free(n);
}

void tui_tree_free(struct tui_tree *t)
{
	if (!t)
		return;
	node_free(t->root);
	free(t);
}

static int kid_cmp(const void *a, const void *b)
{
	const struct tui_node *x = *(struct tui_node *const *)a, *y = *(struct tui_node *const *)b;
	if (x->total != y->total)
		return x->total > y->total ? -1 : 1;
	return strcmp(x->name, y->name);
}

static bool get_u64(json_t *o, const char *key, uint64_t *v)
{
	json_t *x = json_object_get(o, key);
	if (!x) {
		*v = 0;
		return true;
	}
	if (!json_is_integer(x) || json_integer_value(x) < 0)
		return false;
	*v = (uint64_t)json_integer_value(x);
	return true;
}

static struct tui_node *node_from(json_t *j, struct tui_node *parent, unsigned depth, size_t *count,
				  const char **why)
{
	if (!json_is_object(j))
		return *why = "a node is not an object", NULL;
	if (depth > TUI_MAX_DEPTH)
		return *why = "the tree is too deep", NULL;
	if (++*count > TUI_MAX_NODES)
		return *why = "too many nodes", NULL;
	struct tui_node *n = calloc(1, sizeof(*n));
	if (!n)
		return *why = "out of memory", NULL;
	n->parent = parent;
	n->depth = depth;
	json_t *name = json_object_get(j, "n");
	if (name && !json_is_string(name)) {
		*why = "a name (n) is not a string";
		goto fail;
	}
	n->name = name ? strndup(json_string_value(name), json_string_length(name)) : strdup("");
	if (!n->name) {
		*why = "out of memory";
		goto fail;
	}
	if (!get_u64(j, "v", &n->self) || !get_u64(j, "t", &n->total)) {
		*why = "a value (v, t) is not a non-negative integer";
		goto fail;
	}
	json_t *c = json_object_get(j, "c");
	if (c && !json_is_array(c) && !json_is_null(c)) {
		*why = "children (c) are not an array";
		goto fail;
	}
	size_t k = json_is_array(c) ? json_array_size(c) : 0;
	if (k && !(n->kid = calloc(k, sizeof(*n->kid)))) {
		*why = "out of memory";
		goto fail;
	}
	for (size_t i = 0; i < k; i++) {
		if (!(n->kid[i] = node_from(json_array_get(c, i), n, depth + 1, count, why)))
			goto fail;
		n->nkid++;
	}
	if (n->nkid > 1)
		qsort(n->kid, n->nkid, sizeof(*n->kid), kid_cmp);
	return n;
fail:
	node_free(n);
	return NULL;
}

int tui_tree_parse(const char *json, size_t len, struct tui_tree **out, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_loadb(json, len, 0, &je);
	if (!j) {
		snprintf(err, errlen, "bad JSON: %s", je.text);
		return -1;
	}
	struct tui_tree *t = calloc(1, sizeof(*t));
	const char *why = "out of memory";
	if (t)
		t->root = node_from(j, NULL, 0, &t->nodes, &why);
	json_decref(j);
	if (!t || !t->root) {
		snprintf(err, errlen, "bad snapshot: %s", why);
		free(t);
		return -1;
	}
	*out = t;
	return 0;
}

/* ----------------------------------------------------------------- paths */

static void path_clear(struct tui_path *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->name[i]);
	free(p->name);
	p->name = NULL;
	p->n = 0;
}

/* p := the path of n (on no memory: the path of the deepest ancestor that
 * fit, still a valid place). */
static void path_set(struct tui_path *p, const struct tui_node *n)
{
	path_clear(p);
	if (!n || !n->depth)
		return;
	char **v = calloc(n->depth, sizeof(*v));
	if (!v)
		return;
	for (const struct tui_node *x = n; x->parent; x = x->parent)
		v[x->depth - 1] = strdup(x->name);
	size_t k = 0;
	while (k < n->depth && v[k])
		k++;
	for (size_t i = k; i < n->depth; i++)
		free(v[i]);
	p->name = v;
	p->n = k;
}

/* The node at p, or its nearest ancestor in t. */
static struct tui_node *path_find(const struct tui_tree *t, const struct tui_path *p)
{
	struct tui_node *n = t->root;
	for (size_t i = 0; i < p->n; i++) {
		struct tui_node *next = NULL;
		for (size_t k = 0; k < n->nkid && !next; k++)
			if (!strcmp(n->kid[k]->name, p->name[i]))
				next = n->kid[k];
		if (!next)
			break;
		n = next;
	}
	return n;
}

/* ----------------------------------------------------------------- model */

void tui_model_init(struct tui_model *m)
{
	memset(m, 0, sizeof(*m));
}

void tui_model_fini(struct tui_model *m)
{
	tui_tree_free(m->tree);
	path_clear(&m->zoom_path);
	path_clear(&m->sel_path);
	memset(m, 0, sizeof(*m));
}

static bool is_under(const struct tui_node *n, const struct tui_node *anc)
{
	for (; n; n = n->parent)
		if (n == anc)
			return true;
	return false;
}

void tui_model_set_tree(struct tui_model *m, struct tui_tree *t)
{
	tui_tree_free(m->tree);
	m->tree = t;
	if (!t) {
		m->zoom = m->sel = NULL;
		return;
	}
	m->zoom = path_find(t, &m->zoom_path);
	m->sel = path_find(t, &m->sel_path);
	if (!is_under(m->sel, m->zoom))
		m->sel = m->zoom;
}

static void select_node(struct tui_model *m, struct tui_node *n)
{
	m->sel = n;
	path_set(&m->sel_path, n);
}

/* The zoomed subtree depth first (malloc'd, *k nodes), NULL when empty or
 * out of memory. */
static struct tui_node **flatten(const struct tui_model *m, size_t *k)
{
	*k = 0;
	if (!m->zoom)
		return NULL;
	size_t cap = 64, n = 0, sp = 0, scap = 64;
	struct tui_node **v = malloc(cap * sizeof(*v)), **stack = malloc(scap * sizeof(*stack));
	if (!v || !stack)
		goto oom;
	stack[sp++] = m->zoom;
	while (sp) {
		struct tui_node *x = stack[--sp];
		if (n == cap) {
			struct tui_node **nv = realloc(v, (cap *= 2) * sizeof(*v));
			if (!nv)
				goto oom;
			v = nv;
		}
		v[n++] = x;
		if (sp + x->nkid > scap) {
			while (sp + x->nkid > scap)
				scap *= 2;
			struct tui_node **ns = realloc(stack, scap * sizeof(*stack));
			if (!ns)
				goto oom;
			stack = ns;
		}
		for (size_t i = x->nkid; i-- > 0;) /* the largest child comes out first */
			stack[sp++] = x->kid[i];
	}
	free(stack);
	*k = n;
	return v;
oom:
	free(v);
	free(stack);
	return NULL;
}

static size_t index_of(struct tui_node **v, size_t k, const struct tui_node *n)
{
	for (size_t i = 0; i < k; i++)
		if (v[i] == n)
			return i;
	return 0;
}

void tui_model_move(struct tui_model *m, enum tui_move d, unsigned page)
{
	if (!m->sel)
		return;
	size_t k;
	struct tui_node **v = flatten(m, &k);
	if (!v)
		return;
	size_t i = index_of(v, k, m->sel), j = i;
	struct tui_node *to = NULL;
	bool icicle = m->layout == TUI_LAYOUT_ICICLE;
	if (!page)
		page = 1;
	switch (d) {
	case TUI_UP:
		if (!icicle)
			j = i ? i - 1 : 0;
		else if (m->sel != m->zoom)
			to = m->sel->parent;
		break;
	case TUI_DOWN:
		if (!icicle)
			j = i + 1 < k ? i + 1 : i;
		else if (m->sel->nkid)
			to = m->sel->kid[0];
		break;
	case TUI_LEFT:
		if (!icicle) {
			if (m->sel != m->zoom)
				to = m->sel->parent;
		} else {
			for (size_t x = i; x-- > 0 && !to;)
				if (v[x]->depth == m->sel->depth)
					to = v[x];
		}
		break;
	case TUI_RIGHT:
		if (!icicle) {
			if (m->sel->nkid)
				to = m->sel->kid[0];
		} else {
			for (size_t x = i + 1; x < k && !to; x++)
				if (v[x]->depth == m->sel->depth)
					to = v[x];
		}
		break;
	case TUI_HOME: j = 0; break;
	case TUI_END: j = k - 1; break;
	case TUI_PGUP: j = i > page ? i - page : 0; break;
	case TUI_PGDN: j = i + page < k ? i + page : k - 1; break;
	}
	if (!to)
		to = v[j];
	free(v);
	select_node(m, to);
}

void tui_model_zoom_in(struct tui_model *m)
{
	if (!m->sel)
		return;
	m->zoom = m->sel;
	path_set(&m->zoom_path, m->zoom);
	m->top = 0;
}

void tui_model_zoom_out(struct tui_model *m)
{
	if (!m->zoom || !m->zoom->parent)
		return;
	m->zoom = m->zoom->parent;
	path_set(&m->zoom_path, m->zoom);
	m->top = 0;
}

/* --------------------------------------------------------------- search */

void tui_model_set_search(struct tui_model *m, const char *s)
{
	snprintf(m->search, sizeof(m->search), "%s", s ? s : "");
}

static bool contains_fold(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay; hay++) {
		size_t i = 0;
		while (i < n && hay[i] &&
		       tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
			i++;
		if (i == n)
			return true;
	}
	return false;
}

bool tui_model_matches(const struct tui_model *m, const struct tui_node *n)
{
	return m->search[0] && n && n->depth && contains_fold(n->name, m->search);
}

bool tui_model_next_match(struct tui_model *m)
{
	size_t k;
	struct tui_node **v = flatten(m, &k);
	if (!v)
		return false;
	size_t i = index_of(v, k, m->sel);
	struct tui_node *to = NULL;
	for (size_t s = 1; s <= k && !to; s++)
		if (tui_model_matches(m, v[(i + s) % k]))
			to = v[(i + s) % k];
	free(v);
	if (to)
		select_node(m, to);
	return to != NULL;
}

size_t tui_model_count_matches(const struct tui_model *m)
{
	size_t k, c = 0;
	struct tui_node **v = flatten(m, &k);
	for (size_t i = 0; i < k; i++)
		c += tui_model_matches(m, v[i]);
	free(v);
	return c;
}

/* -------------------------------------------------------------- layouts */

double tui_share_window(const struct tui_model *m, const struct tui_node *n)
{
	uint64_t t = m->tree ? m->tree->root->total : 0;
	if (!t)
		return 0;
	double s = (double)n->total / (double)t;
	return s > 1 ? 1 : s;
}

double tui_share_parent(const struct tui_node *n)
{
	if (!n->parent)
		return 1;
	if (!n->parent->total)
		return 0;
	double s = (double)n->total / (double)n->parent->total;
	return s > 1 ? 1 : s;
}

size_t tui_model_rows(const struct tui_model *m, size_t top, struct tui_row *rows, size_t max)
{
	size_t k, w = 0;
	struct tui_node **v = flatten(m, &k);
	for (size_t i = top; i < k && w < max; i++)
		rows[w++] = (struct tui_row){ v[i], v[i]->depth - m->zoom->depth };
	free(v);
	return w;
}

void tui_model_scroll(struct tui_model *m, size_t height)
{
	size_t k;
	struct tui_node **v = flatten(m, &k);
	if (!v || !height) {
		m->top = 0;
		free(v);
		return;
	}
	size_t i = index_of(v, k, m->sel);
	free(v);
	if (m->top + height > k)
		m->top = k > height ? k - height : 0;
	if (i < m->top)
		m->top = i;
	else if (i >= m->top + height)
		m->top = i - height + 1;
}

struct icicle {
	unsigned width, height;
	struct tui_cell *cells;
	size_t max, n;
};

static void icicle_place(struct icicle *c, struct tui_node *n, unsigned row, double x0, double w)
{
	if (row >= c->height || c->n == c->max)
		return;
	unsigned a = (unsigned)(x0 + 0.5), b = (unsigned)(x0 + w + 0.5);
	if (b > c->width)
		b = c->width;
	if (b <= a)
		return;
	c->cells[c->n++] = (struct tui_cell){ n, row, a, b - a };
	if (!n->total)
		return;
	double x = x0, end = x0 + w;
	for (size_t i = 0; i < n->nkid && x < end; i++) {
		double kw = w * (double)n->kid[i]->total / (double)n->total;
		if (x + kw > end) /* children larger than their parent: clamp */
			kw = end - x;
		icicle_place(c, n->kid[i], row + 1, x, kw);
		x += kw;
	}
}

size_t tui_model_icicle(const struct tui_model *m, unsigned width, unsigned height,
			struct tui_cell *cells, size_t max)
{
	struct icicle c = { width, height, cells, max, 0 };
	if (m->zoom)
		icicle_place(&c, m->zoom, 0, 0, width);
	return c.n;
}

/* ----------------------------------------------------------------- text */

static bool utf8_locale(void)
{
	const char *cs = nl_langinfo(CODESET);
	return cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8"));
}

/* One piece of s from *i: its text in p (NUL-terminated), its columns in
 * *w.  Advances *i. */
static void next_piece(const unsigned char *s, size_t len, size_t *i, bool utf8, char p[16],
		       unsigned *w)
{
	unsigned char b = s[*i];
	if (b < 0x80) {
		(*i)++;
		if (b < 0x20 || b == 0x7f) {
			snprintf(p, 16, "\\x%02x", b);
			*w = 4;
		} else {
			p[0] = (char)b;
			p[1] = '\0';
			*w = 1;
		}
		return;
	}
	size_t n = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
	bool ok = n && *i + n <= len;
	for (size_t k = 1; ok && k < n; k++)
		ok = (s[*i + k] & 0xc0) == 0x80;
	if (ok && n >= 3) { /* overlong, surrogates, past U+10FFFF */
		unsigned char c = s[*i + 1];
		ok = !((b == 0xe0 && c < 0xa0) || (b == 0xed && c >= 0xa0) || (b == 0xf0 && c < 0x90) ||
		       (b == 0xf4 && c >= 0x90));
	}
	if (!ok) {
		snprintf(p, 16, "\\x%02x", b);
		*w = 4;
		(*i)++;
		return;
	}
	unsigned cp = n == 2 ? b & 0x1fu : n == 3 ? b & 0x0fu : b & 0x07u;
	for (size_t k = 1; k < n; k++)
		cp = cp << 6 | (s[*i + k] & 0x3fu);
	int cw = utf8 ? wcwidth((wchar_t)cp) : -1;
	if (cw >= 1) {
		memcpy(p, s + *i, n);
		p[n] = '\0';
		*w = (unsigned)cw;
	} else {
		snprintf(p, 16, "\\u{%x}", cp);
		*w = (unsigned)strlen(p);
	}
	*i += n;
}

unsigned tui_sanitize(const char *str, size_t len, unsigned cols, char *out, size_t size)
{
	const unsigned char *s = (const unsigned char *)str;
	bool utf8 = utf8_locale();
	char p[16];
	unsigned w, total = 0;
	size_t i = 0;
	while (i < len && total <= cols) { /* does all of it fit? */
		next_piece(s, len, &i, utf8, p, &w);
		total += w;
	}
	bool cut = total > cols;
	unsigned room = cut ? (cols ? cols - 1 : 0) : cols, used = 0;
	size_t o = 0;
	i = 0;
	while (i < len) {
		next_piece(s, len, &i, utf8, p, &w);
		size_t pl = strlen(p);
		if (used + w > room || o + pl + 2 > size)
			break;
		memcpy(out + o, p, pl);
		o += pl;
		used += w;
	}
	if (cut && cols && o + 2 <= size) {
		out[o++] = '~';
		used++;
	}
	if (size)
		out[o < size ? o : size - 1] = '\0';
	return used;
}

void tui_fmt_count(uint64_t v, char *out, size_t size)
{
	if (v < 100000000u) {
		snprintf(out, size, "%llu", (unsigned long long)v);
		return;
	}
	static const char unit[] = "kMGTPE";
	double x = (double)v;
	int u = -1;
	while (x >= 9999.95 && u < 5) {
		x /= 1000;
		u++;
	}
	snprintf(out, size, "%.1f%c", x, unit[u]);
}

/* Columns of the numbers: " 100.0% 100.0% 12345678 12345678 ". */
#define NUM_COLS 33

static unsigned bar_cols(unsigned cols)
{
	unsigned b = cols / 6;
	return b < 4 ? 4 : b > 40 ? 40 : b;
}

static unsigned name_cols(unsigned cols)
{
	unsigned fixed = NUM_COLS + bar_cols(cols);
	return cols > fixed ? cols - fixed : 0;
}

/* Append c n times (bounded by size). */
static size_t put_n(char *out, size_t o, size_t size, char c, unsigned n)
{
	while (n-- && o + 1 < size)
		out[o++] = c;
	out[o < size ? o : size - 1] = '\0';
	return o;
}

unsigned tui_format_row(const struct tui_model *m, const struct tui_node *n, unsigned indent,
			unsigned cols, char *out, size_t size)
{
	unsigned nc = name_cols(cols), bc = bar_cols(cols);
	unsigned ind = indent * 2 > nc / 2 ? nc / 2 : indent * 2;
	size_t o = put_n(out, 0, size, ' ', ind);
	unsigned used = ind;
	if (o + 1 < size) {
		const char *name = n->depth ? n->name : "all";
		used += tui_sanitize(name, strlen(name), nc - ind, out + o, size - o);
		o += strlen(out + o);
	}
	o = put_n(out, o, size, ' ', nc - used);
	char self[24], total[24];
	tui_fmt_count(n->self, self, sizeof(self));
	tui_fmt_count(n->total, total, sizeof(total));
	if (o + NUM_COLS + 1 < size)
		o += (size_t)snprintf(out + o, size - o, " %5.1f%% %5.1f%% %8s %8s ",
				      100 * tui_share_window(m, n), 100 * tui_share_parent(n), self,
				      total);
	unsigned bar_at = nc + NUM_COLS;
	double z = m->zoom && m->zoom->total ? (double)m->zoom->total : 0;
	unsigned fill = z > 0 ? (unsigned)((double)n->total / z * bc + 0.5) : 0;
	if (fill > bc)
		fill = bc;
	o = put_n(out, o, size, '#', fill);
	put_n(out, o, size, ' ', bc - fill);
	return bar_at;
}

void tui_format_header(unsigned cols, char *out, size_t size)
{
	unsigned nc = name_cols(cols);
	snprintf(out, size, "%-*s %6s %6s %8s %8s %-*s", (int)nc, "name", "window", "parent", "self",
		 "total", (int)bar_cols(cols), "");
}

void tui_model_path_text(const struct tui_node *n, char *buf, size_t size)
{
	const struct tui_node *v[TUI_MAX_DEPTH + 1];
	size_t k = 0;
	for (; n && n->parent && k <= TUI_MAX_DEPTH; n = n->parent)
		v[k++] = n;
	size_t o = 0;
	buf[0] = '\0';
	if (!k) {
		snprintf(buf, size, "all");
		return;
	}
	while (k-- > 0 && o + 2 < size) {
		if (o)
			buf[o++] = ';';
		tui_sanitize(v[k]->name, strlen(v[k]->name), (unsigned)(size - o - 1) / 4, buf + o,
			     size - o);
		o += strlen(buf + o);
	}
	buf[o < size ? o : size - 1] = '\0';
}
