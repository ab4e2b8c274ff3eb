/* SPDX-License-Identifier: MIT */
/*
 * svg.c - interactive flamegraphs: a flamegraph.pl-style SVG and a
 * one-file HTML viewer (flamegraph + table + sandwich), single or diff.
 *
 *   SVG:  <g class="f" data-s=START data-w=WIDTH data-d=DEPTH>
 *           <title>name (N units, P%)</title><rect/><text/></g> ...
 *         + ~100 lines of inline script: click = zoom, "Reset Zoom",
 *         "Search" (regex prompt) with "Matched: X%", details on hover.
 *   HTML: the tree as JSON (<script type="application/json">) + a viewer
 *         script that builds the views with the DOM (textContent only).
 *
 * 1. Names, titles, units and every other string are untrusted: XML-
 *    escaped in SVG (and invalid UTF-8 / XML-forbidden control bytes become
 *    U+FFFD so the document always parses),
 *    JSON-escaped in HTML where '<' '>' '&' are \u003c.. so "</script>"
 *    cannot close the data block; the viewer never uses innerHTML.
 * 2. "Matched" is the union of matched intervals (a match nested inside
 *    another match is not counted twice) over the zoomed frame's width.
 * 3. Layout as flamegraph.pl: children left-aligned in name order, the
 *    parent's self part at the right; colours hashed from the name, so the
 *    same frame has the same colour in every graph.  Diff: widths from
 *    AFTER, red = grew, blue = shrank, intensity by |delta| / max |delta|.
 * 4. Frames narrower than --minwidth percent of the total are left out
 *    (with their subtrees), as are frames under 0.1 px in the SVG.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "write.h"

void st_xml_escape(FILE *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		unsigned c = *p;
		if (c < 0x80) {
			switch (c) {
			case '<': fputs("&lt;", out); break;
			case '>': fputs("&gt;", out); break;
			case '&': fputs("&amp;", out); break;
			case '"': fputs("&quot;", out); break;
			case '\'': fputs("&#39;", out); break;
			case '\t': case '\n': case '\r': fprintf(out, "&#%u;", c); break;
			default:
				if (c < 0x20 || c == 0x7f)
					fputs("\xef\xbf\xbd", out);
				else
					putc((int)c, out);
			}
			p++;
			continue;
		}
		/* Invalid UTF-8, and the two non-characters XML forbids, become
		 * U+FFFD one byte at a time. */
		unsigned cp;
		size_t n = st_utf8_seq(p, end, &cp);
		if (!n || cp == 0xfffe || cp == 0xffff) {
			fputs("\xef\xbf\xbd", out);
			p++;
			continue;
		}
		fwrite(p, 1, n, out);
		p += n;
	}
}

/* ------------------------------------------------------------ colours */

static uint32_t name_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a: stable across runs and builds */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

static bool has_suffix(const char *s, size_t n, const char *suf)
{
	size_t k = strlen(suf);
	return n >= k && memcmp(s + n - k, suf, k) == 0;
}

/*
 * The palettes of flamegraph.pl: each of r, g, b is base + (int)(mul * v)
 * with v one of the name hash's three bytes scaled to [0, 1] (v1, v2, v3:
 * index 0, 1, 2).  The last entry (no name) is "hot", also for any name
 * not listed.
 */
struct palette {
	const char *name;
	struct {
		short base, mul;
		unsigned char v;
	} c[3];
};
static const struct palette palettes[] = {
	{ "mem", { { 0, 0, 0 }, { 190, 50, 1 }, { 0, 210, 0 } } },
	{ "io", { { 80, 60, 0 }, { 80, 60, 0 }, { 190, 55, 1 } } },
	{ "red", { { 200, 55, 0 }, { 50, 80, 0 }, { 50, 80, 0 } } },
	{ "green", { { 50, 60, 0 }, { 200, 55, 0 }, { 50, 60, 0 } } },
	{ "blue", { { 80, 60, 0 }, { 80, 60, 0 }, { 205, 50, 0 } } },
	{ "yellow", { { 175, 55, 0 }, { 175, 55, 0 }, { 50, 20, 0 } } },
	{ "purple", { { 190, 65, 0 }, { 80, 60, 0 }, { 190, 65, 0 } } },
	{ "aqua", { { 50, 60, 0 }, { 165, 55, 0 }, { 165, 55, 0 } } },
	{ "orange", { { 190, 65, 0 }, { 90, 65, 0 }, { 0, 0, 0 } } },
	{ NULL, { { 205, 50, 2 }, { 0, 230, 0 }, { 0, 55, 1 } } }, /* hot */
};

static void colour(const char *pal, const char *s, size_t n, char out[24])
{
	uint32_t h = name_hash(s, n);
	const double v[3] = { (h & 0xff) / 255.0, ((h >> 8) & 0xff) / 255.0,
			      ((h >> 16) & 0xff) / 255.0 };
	if (!pal)
		pal = "hot";
	if (!strcmp(pal, "java") || !strcmp(pal, "js") || !strcmp(pal, "perl")) {
		/* Annotated frames first (stackcollapse suffixes), then a guess. */
		if (has_suffix(s, n, "_[j]") || (!strcmp(pal, "java") && memchr(s, '/', n)))
			pal = "green";
		else if (has_suffix(s, n, "_[i]"))
			pal = "aqua";
		else if (has_suffix(s, n, "_[k]"))
			pal = "orange";
		else if (memmem(s, n, "::", 2) || (!strcmp(pal, "perl") && memmem(s, n, ".pm", 3)))
			pal = "yellow";
		else
			pal = "red";
	}
	const struct palette *P = &palettes[0];
	while (P->name && strcmp(pal, P->name))
		P++;
	int c[3];
	for (int i = 0; i < 3; i++)
		c[i] = P->c[i].base + (int)(P->c[i].mul * v[P->c[i].v]);
	snprintf(out, 24, "rgb(%d,%d,%d)", c[0], c[1], c[2]);
}

static void diff_colour(int64_t delta, uint64_t maxd, char out[24])
{
	if (!delta || !maxd) {
		snprintf(out, 24, "rgb(250,250,250)");
		return;
	}
	double f = fabs((double)delta) / (double)maxd;
	int c = (int)(210 * (1 - f));
	if (delta > 0)
		snprintf(out, 24, "rgb(255,%d,%d)", c, c);
	else
		snprintf(out, 24, "rgb(%d,%d,255)", c, c);
}

static int64_t node_delta(const struct st_xnode *x)
{
	return (int64_t)(x->total[1] - x->total[0]);
}

/* ------------------------------------------------------------ SVG */

static const char svg_script[] =
	"<script type=\"text/ecmascript\"><![CDATA[\n"
	"'use strict';\n"
	"var W, PAD = 10, total, frames, details, matchedtxt, unzoombtn, zoomed = null, searching = null;\n"
	"function init(evt) {\n"
	"  var svg = document.documentElement; W = +svg.getAttribute('width');\n"
	"  frames = Array.prototype.slice.call(document.querySelectorAll('g.f'));\n"
	"  frames.forEach(function (g) { g.s = +g.getAttribute('data-s'); g.w = +g.getAttribute('data-w');\n"
	"    g.d = +g.getAttribute('data-d'); var t = g.querySelector('title').textContent;\n"
	"    g.nm = t.slice(0, t.lastIndexOf(' (')); g.r = g.querySelector('rect'); g.fill = g.r.getAttribute('fill'); });\n"
	"  total = +svg.getAttribute('data-total'); details = document.getElementById('details');\n"
	"  matchedtxt = document.getElementById('matched'); unzoombtn = document.getElementById('unzoom');\n"
	"  document.addEventListener('click', function (e) { var g = e.target.closest && e.target.closest('g.f');\n"
	"    if (g) { zoom(g); e.preventDefault(); } }, false);\n"
	"  document.addEventListener('mouseover', function (e) { var g = e.target.closest && e.target.closest('g.f');\n"
	"    if (g) details.textContent = 'Function: ' + g.querySelector('title').textContent; }, false);\n"
	"  document.addEventListener('mouseout', function () { details.textContent = ' '; }, false);\n"
	"  layout(0, total);\n"
	"}\n"
	"function fit(g, w) { var t = g.querySelector('text'), n = Math.floor(w / 7);\n"
	"  t.textContent = n < 3 ? '' : (g.nm.length <= n ? g.nm : g.nm.slice(0, n - 2) + '..'); }\n"
	"function layout(s0, w0) { var sc = (W - 2 * PAD) / w0, zd = zoomed ? zoomed.d : -1;\n"
	"  frames.forEach(function (g) {\n"
	"    var inside = g.s >= s0 && g.s + g.w <= s0 + w0, anc = zoomed && g.d < zd && g.s <= s0 && g.s + g.w >= s0 + w0;\n"
	"    if (!inside && !anc) { g.style.display = 'none'; return; }\n"
	"    g.style.display = ''; var x = anc ? PAD : PAD + (g.s - s0) * sc, w = anc ? W - 2 * PAD : g.w * sc;\n"
	"    g.r.setAttribute('x', x); g.r.setAttribute('width', Math.max(w, 0));\n"
	"    g.querySelector('text').setAttribute('x', x + 3); g.style.opacity = anc ? 0.5 : 1; fit(g, w); });\n"
	"}\n"
	"function zoom(g) { zoomed = g; unzoombtn.style.opacity = 1; layout(g.s, g.w); if (searching) search(searching); }\n"
	"function unzoom() { zoomed = null; unzoombtn.style.opacity = 0; layout(0, total); if (searching) search(searching); }\n"
	"function search(re) { var rx = new RegExp(re), iv = [];\n"
	"  frames.forEach(function (g) { var m = rx.test(g.nm); g.r.setAttribute('fill', m ? 'rgb(230,0,230)' : g.fill);\n"
	"    if (m) iv.push([g.s, g.s + g.w]); });\n"
	"  var s0 = zoomed ? zoomed.s : 0, w0 = zoomed ? zoomed.w : total, sum = 0, end = -1;\n"
	"  iv = iv.map(function (a) { return [Math.max(a[0], s0), Math.min(a[1], s0 + w0)]; })\n"
	"        .filter(function (a) { return a[1] > a[0]; }).sort(function (a, b) { return a[0] - b[0]; });\n"
	"  iv.forEach(function (a) { if (a[0] >= end) { sum += a[1] - a[0]; end = a[1]; }\n"
	"    else if (a[1] > end) { sum += a[1] - end; end = a[1]; } });\n"
	"  searching = re; matchedtxt.textContent = 'Matched: ' + (w0 ? (100 * sum / w0).toFixed(1) : '0.0') + '%';\n"
	"  return sum;\n"
	"}\n"
	"function search_prompt() { if (searching) { searching = null; matchedtxt.textContent = ' ';\n"
	"    frames.forEach(function (g) { g.r.setAttribute('fill', g.fill); }); return; }\n"
	"  var re = prompt('Enter a search term (regexp allowed)', ''); if (re) { try { search(re); } catch (e) { alert(e); } } }\n"
	"]]></script>\n";

struct lay {
	uint32_t node;
	uint32_t depth;
	uint64_t start;
};

/* Preorder layout: start offset (ticks) and depth of every drawn frame. */
static int layout(const struct st_xtree *t, int side, uint64_t cut, struct lay **out, size_t *nout,
		  uint32_t *maxdepth)
{
	struct lay *stk = st_malloc(t->count * sizeof(*stk));
	struct lay *res = st_malloc(t->count * sizeof(*res));
	size_t sp = 0, n = 0;
	*maxdepth = 0;
	if (!stk || !res) {
		st_free(stk);
		st_free(res);
		return -ENOMEM;
	}
	stk[sp++] = (struct lay){ 0, 0, 0 };
	while (sp) {
		struct lay l = stk[--sp];
		const struct st_xnode *x = &t->n[l.node];
		if (x->total[side] == 0 || (l.node && x->total[side] < cut))
			continue;
		res[n++] = l;
		if (l.depth > *maxdepth)
			*maxdepth = l.depth;
		uint64_t s = l.start;
		/* children left-aligned in name order: compute starts first */
		size_t base = sp;
		for (uint32_t k = 0; k < x->nkids; k++) {
			uint32_t c = t->kids[x->first + k];
			stk[sp++] = (struct lay){ c, l.depth + 1, s };
			s += t->n[c].total[side];
		}
		/* reverse so the first child is popped first (preorder by name) */
		for (size_t i = base, j = sp; i + 1 < j; i++, j--) {
			struct lay tmp = stk[i];
			stk[i] = stk[j - 1];
			stk[j - 1] = tmp;
		}
	}
	st_free(stk);
	*out = res;
	*nout = n;
	return 0;
}

static uint64_t cut_value(const struct st_xtree *t, int side, double minwidth)
{
	double c = ceil((double)t->n[0].total[side] * minwidth / 100.0);
	return c > 0 ? (uint64_t)c : 0;
}

int st_export_svg_tree(const struct st_xtree *t, bool diff, const struct st_export_opts *o,
		       FILE *out)
{
	int side = diff ? 1 : 0;
	unsigned W = o->width ? o->width : 1200;
	const unsigned FH = 16, TOP = 36, BOT = 34, PAD = 10;
	uint64_t total = t->n[0].total[side];
	struct lay *ly;
	size_t n;
	uint32_t maxd;
	/* flamegraph.pl drops frames under 0.1 px; minwidth is a percent. */
	double px_cut = total ? 0.1 * (double)total / (double)(W - 2 * PAD) : 0;
	uint64_t cut = cut_value(t, side, o->minwidth);
	if ((double)cut < px_cut)
		cut = (uint64_t)ceil(px_cut);
	int rc = layout(t, side, cut, &ly, &n, &maxd);
	if (rc)
		return rc;
	uint64_t maxdelta = 0;
	if (diff)
		for (size_t i = 0; i < n; i++) {
			int64_t d = node_delta(&t->n[ly[i].node]);
			uint64_t a = d < 0 ? (uint64_t)-d : (uint64_t)d;
			if (ly[i].node && a > maxdelta)
				maxdelta = a;
		}
	unsigned H = TOP + BOT + (maxd + 1) * FH;
	const char *title = o->title ? o->title : diff ? "Differential Flame Graph"
				       : o->inverted ? "Icicle Graph" : "Flame Graph";
	fprintf(out,
		"<?xml version=\"1.0\" standalone=\"no\"?>\n"
		"<svg version=\"1.1\" width=\"%u\" height=\"%u\" onload=\"init(evt)\" viewBox=\"0 0 %u %u\" "
		"xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" data-total=\"%" PRIu64 "\">\n"
		"<style type=\"text/css\">text { font-family: Verdana, sans-serif; font-size: 12px; fill: rgb(0,0,0); }"
		" #title { text-anchor: middle; font-size: 17px; } #unzoom, #search { cursor: pointer; }"
		" g.f:hover rect { stroke: black; stroke-width: 0.5; cursor: pointer; }</style>\n",
		W, H, W, H, total);
	fputs(svg_script, out);
	fprintf(out, "<rect x=\"0\" y=\"0\" width=\"%u\" height=\"%u\" fill=\"rgb(248,248,248)\"/>\n", W, H);
	fprintf(out, "<text id=\"title\" x=\"%u\" y=\"24\">", W / 2);
	st_xml_escape(out, title, strlen(title));
	fputs("</text>\n", out);
	fprintf(out, "<text id=\"unzoom\" x=\"%u\" y=\"24\" onclick=\"unzoom()\" style=\"opacity:0\">Reset Zoom</text>\n", PAD);
	fprintf(out, "<text id=\"search\" x=\"%u\" y=\"24\" onclick=\"search_prompt()\" text-anchor=\"end\">Search</text>\n", W - PAD);
	fprintf(out, "<text id=\"details\" x=\"%u\" y=\"%u\"> </text>\n", PAD, H - 12);
	fprintf(out, "<text id=\"matched\" x=\"%u\" y=\"%u\" text-anchor=\"end\"> </text>\n", W - PAD, H - 12);
	const char *units = o->units ? o->units : "samples";
	double sc = total ? (double)(W - 2 * PAD) / (double)total : 0;
	for (size_t i = 0; i < n; i++) {
		const struct st_xnode *x = &t->n[ly[i].node];
		const char *name = ly[i].node ? x->name : "all";
		size_t nlen = ly[i].node ? x->len : 3;
		uint64_t v = x->total[side];
		double px = PAD + (double)ly[i].start * sc, pw = (double)v * sc;
		unsigned y = o->inverted ? TOP + ly[i].depth * FH : H - BOT - (ly[i].depth + 1) * FH;
		char fill[24];
		if (diff)
			diff_colour(node_delta(x), maxdelta, fill);
		else
			colour(o->colors, name, nlen, fill);
		fprintf(out, "<g class=\"f\" data-s=\"%" PRIu64 "\" data-w=\"%" PRIu64 "\" data-d=\"%u\"><title>",
			ly[i].start, v, ly[i].depth);
		st_xml_escape(out, name, nlen);
		fprintf(out, " (%" PRIu64 " ", v);
		st_xml_escape(out, units, strlen(units));
		fprintf(out, ", %.2f%%", total ? 100.0 * (double)v / (double)total : 0.0);
		if (diff) {
			int64_t d = node_delta(x);
			fprintf(out, "; before %" PRIu64 ", %+" PRId64, x->total[0], d);
		}
		fprintf(out, ")</title><rect x=\"%.1f\" y=\"%u\" width=\"%.1f\" height=\"%u\" fill=\"%s\" rx=\"2\" ry=\"2\"/>"
			"<text x=\"%.1f\" y=\"%u\">",
			px, y, pw, FH - 1, fill, px + 3, y + FH - 4);
		/* Initial label; the script refits it on zoom. */
		size_t chars = (size_t)(pw / 7);
		if (chars >= 3) {
			if (nlen <= chars) {
				st_xml_escape(out, name, nlen);
			} else {
				size_t k = chars - 2;
				while (k > 0 && ((unsigned char)name[k] & 0xc0) == 0x80)
					k--; /* don't split a UTF-8 sequence */
				st_xml_escape(out, name, k);
				fputs("..", out);
			}
		}
		fputs("</text></g>\n", out);
	}
	fputs("</svg>\n", out);
	st_free(ly);
	return 0;
}

typedef int (*tree_writer)(const struct st_xtree *t, bool diff, const struct st_export_opts *o,
			   FILE *out);

/* A single (non-diff) snapshot through a tree writer, units defaulted. */
static int export_via_tree(const struct st_snap *s, const struct st_export_opts *o, FILE *out,
			   tree_writer fn)
{
	struct st_xtree t;
	int rc = st_xtree_build(&t, s, NULL, o->metric, o->reverse);
	if (rc)
		return rc;
	struct st_export_opts oo = *o;
	if (!oo.units)
		oo.units = st_export_units(s, o);
	rc = fn(&t, false, &oo, out);
	st_xtree_free(&t);
	return rc;
}

int st_export_svg(const struct st_snap *s, const struct st_export_opts *o, FILE *out)
{
	return export_via_tree(s, o, out, st_export_svg_tree);
}

/* ------------------------------------------------------------ HTML */

/* The next node the viewer shows, depth-first in name order from the
 * stack stk[0..*sp) (its kids pushed), or UINT32_MAX when done.  A node
 * below `cut` on `side`, or empty on both sides, is left out with its
 * subtree. */
static uint32_t html_next(const struct st_xtree *t, uint32_t *stk, size_t *sp, int side,
			  uint64_t cut)
{
	while (*sp) {
		uint32_t u = stk[--*sp];
		const struct st_xnode *x = &t->n[u];
		if (u && (x->total[side] < cut || (!x->total[0] && !x->total[1])))
			continue;
		for (uint32_t k = x->nkids; k-- > 0;)
			stk[(*sp)++] = t->kids[x->first + k];
		return u;
	}
	return UINT32_MAX;
}

int st_export_html_tree(const struct st_xtree *t, bool diff, const struct st_export_opts *o,
			FILE *out)
{
	int side = diff ? 1 : 0;
	uint64_t cut = cut_value(t, side, o->minwidth);
	struct st_names nm = { 0 };
	uint32_t *stk = st_malloc(t->count * sizeof(*stk));
	uint32_t *idx = st_malloc(t->count * sizeof(*idx)); /* xnode -> emitted index */
	int rc = 0;
	if (!stk || !idx) {
		rc = -ENOMEM;
		goto out;
	}
	const char *title = o->title ? o->title : diff ? "Differential Flame Graph" : "Flame Graph";
	fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n<title>", out);
	st_xml_escape(out, title, strlen(title));
	fprintf(out, "</title>\n<style>%s</style>\n</head><body>\n", st_html_viewer_css);
	/* Names first (their own pass keeps the JSON in one piece). */
	size_t sp = 0;
	stk[sp++] = 0;
	for (uint32_t u; (u = html_next(t, stk, &sp, side, cut)) != UINT32_MAX;) {
		const struct st_xnode *x = &t->n[u];
		uint32_t ni;
		if ((rc = st_names_get(&nm, u ? x->name : "all", u ? x->len : 3, &ni)))
			goto out;
	}
	fputs("<script type=\"application/json\" id=\"st-data\">{\"title\":\"", out);
	st_json_escape(out, title, strlen(title));
	const char *units = o->units ? o->units : "samples";
	fputs("\",\"units\":\"", out);
	st_json_escape(out, units, strlen(units));
	fprintf(out, "\",\"diff\":%s,\"inverted\":%s,\"colors\":\"", diff ? "true" : "false",
		o->inverted ? "true" : "false");
	const char *colors = o->colors ? o->colors : "hot";
	st_json_escape(out, colors, strlen(colors));
	fputs("\",\"names\":[", out);
	for (size_t i = 0; i < nm.n; i++) {
		fputs(i ? ",\"" : "\"", out);
		st_json_escape(out, nm.name[i], nm.len[i]);
		putc('"', out);
	}
	/* nodes: [parent, name, self, total(, selfBefore, totalBefore)] preorder */
	fputs("],\"nodes\":[", out);
	sp = 0;
	stk[sp++] = 0;
	uint32_t emitted = 0;
	for (uint32_t u; (u = html_next(t, stk, &sp, side, cut)) != UINT32_MAX;) {
		const struct st_xnode *x = &t->n[u];
		uint32_t ni;
		st_names_get(&nm, u ? x->name : "all", u ? x->len : 3, &ni);
		idx[u] = emitted++;
		fprintf(out, "%s[%" PRId64 ",%u,%" PRIu64 ",%" PRIu64, u ? "," : "",
			u ? (int64_t)idx[x->parent] : (int64_t)-1, ni, x->self[side], x->total[side]);
		if (diff)
			fprintf(out, ",%" PRIu64 ",%" PRIu64, x->self[0], x->total[0]);
		putc(']', out);
	}
	fputs("]}</script>\n<script>", out);
	fputs(st_html_viewer_js, out);
	fputs("</script>\n</body></html>\n", out);
out:
	st_free(stk);
	st_free(idx);
	st_names_free(&nm);
	return rc;
}

int st_export_html(const struct st_snap *s, const struct st_export_opts *o, FILE *out)
{
	return export_via_tree(s, o, out, st_export_html_tree);
}
