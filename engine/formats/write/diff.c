/* SPDX-License-Identifier: MIT */
/*
 * diff.c - st_export_diff(): two snapshots (BEFORE, AFTER) aligned by path
 * into one tree of two sides (tree.c), then written as the flamebearer
 * "double" format, as FlameGraph's difffolded.pl lines ("stack before
 * after", sorted byte-wise), or as an SVG/HTML differential flamegraph
 * (red = grew, blue = shrank).
 *
 * --normalize is difffolded.pl -n: every stack's BEFORE value becomes
 * int(before * T2 / T1), T1 and T2 the two sides' totals, computed in 128
 * bits and saturated, then the totals are summed again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "write.h"

struct dline {
	size_t off, len; /* in buf, without '\n' */
};

static int cmp_dline(const void *a, const void *b, void *arg)
{
	const char *buf = arg;
	const struct dline *x = a, *y = b;
	int c = memcmp(buf + x->off, buf + y->off, x->len < y->len ? x->len : y->len);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* "stack before after" for every node with a value on either side. */
static int diff_folded(const struct st_xtree *t, FILE *out)
{
	char *buf = NULL, *path = NULL;
	size_t blen = 0, bcap = 0, plen = 0, pcap = 0;
	struct dline *ln = NULL;
	size_t nl = 0, lcap = 0;
	struct fr {
		uint32_t node;
		size_t plen;
	} *stk = st_malloc(t->count * sizeof(*stk));
	int rc = 0;
	size_t sp = 0;
	if (!stk)
		return -ENOMEM;
	stk[sp++] = (struct fr){ 0, 0 };
	while (sp) {
		struct fr f = stk[--sp];
		const struct st_xnode *x = &t->n[f.node];
		plen = f.plen;
		if (f.node) {
			if (st_grow(&path, &pcap, plen + 1 + x->len, 1, 4096)) {
				rc = -ENOMEM;
				goto out;
			}
			if (x->parent)
				path[plen++] = ';';
			memcpy(path + plen, x->name, x->len);
			plen += x->len;
			if (x->self[0] || x->self[1]) {
				char num[48];
				int n = snprintf(num, sizeof(num), " %" PRIu64 " %" PRIu64, x->self[0], x->self[1]);
				if (st_grow(&buf, &bcap, blen + plen + (size_t)n, 1, 1 << 16) ||
				    st_grow(&ln, &lcap, nl + 1, sizeof(*ln), 1024)) {
					rc = -ENOMEM;
					goto out;
				}
				ln[nl++] = (struct dline){ blen, plen + (size_t)n };
				memcpy(buf + blen, path, plen);
				memcpy(buf + blen + plen, num, (size_t)n);
				blen += plen + (size_t)n;
			}
		}
		for (uint32_t k = x->nkids; k-- > 0;)
			stk[sp++] = (struct fr){ t->kids[x->first + k], plen };
	}
	if (nl)
		qsort_r(ln, nl, sizeof(*ln), cmp_dline, buf);
	for (size_t i = 0; i < nl; i++) {
		fwrite(buf + ln[i].off, 1, ln[i].len, out);
		putc('\n', out);
	}
out:
	st_free(stk);
	st_free(buf);
	st_free(path);
	st_free(ln);
	return rc;
}

int st_export_diff(const struct st_snap *before, const struct st_snap *after, int fmt,
		   const struct st_export_opts *o, FILE *out)
{
	struct st_export_opts def;
	o = st_export_opts_full(o, &def);
	if (o->metric >= st_snap_nmetrics(before) || o->metric >= st_snap_nmetrics(after))
		return -EINVAL;
	if (fmt != ST_FMT_FLAMEBEARER && fmt != ST_FMT_FOLDED && fmt != ST_FMT_SVG &&
	    fmt != ST_FMT_HTML)
		return -EINVAL;
	struct st_xtree t;
	int rc = st_xtree_build(&t, before, after, o->metric, false);
	if (rc)
		return rc;
	uint64_t t1 = t.n[0].total[0], t2 = t.n[0].total[1];
	if (o->normalize && t1 != t2 && t1) {
		/* difffolded.pl -n: each stack's before = int(before * T2 / T1). */
		for (size_t i = 0; i < t.count; i++) {
			unsigned __int128 v = (unsigned __int128)t.n[i].self[0] * t2 / t1;
			t.n[i].self[0] = v > UINT64_MAX ? UINT64_MAX : (uint64_t)v;
		}
		rc = st_xtree_finish(&t);
	}
	/* The svg/html writers print o->units: the metric's unit when unset,
	 * as the single-snapshot writers do. */
	struct st_export_opts oo = *o;
	if (!oo.units)
		oo.units = st_export_units(after, o);
	o = &oo;
	if (!rc) {
		switch (fmt) {
		case ST_FMT_FLAMEBEARER:
			rc = st_export_flamebearer_tree(&t, true, after, o, out);
			break;
		case ST_FMT_FOLDED:
			rc = diff_folded(&t, out);
			break;
		case ST_FMT_SVG:
			rc = st_export_svg_tree(&t, true, o, out);
			break;
		default:
			rc = st_export_html_tree(&t, true, o, out);
			break;
		}
	}
	st_xtree_free(&t);
	return rc ? rc : st_export_status(out);
}
