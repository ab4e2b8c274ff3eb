/* SPDX-License-Identifier: MIT */
/*
 * flamebearer.c - Pyroscope's flamebearer JSON (v0.35.1 server), the
 * "single" format and the "double" (diff) format (diff.c picks it).
 *
 *   levels[i] = bars of depth i, left to right, 4 numbers each
 *               [x_delta, total, self, name_index]       (single)
 *               [xL_d, totalL, selfL, xR_d, totalR, selfR, name_index]
 *
 * The Go server's algorithm, reproduced step for step so that the bytes of
 * names[] and levels[] are the server's (docs: formats.md):
 *   1. minVal = the max_nodes-th largest total (diff: of max(left, right)),
 *      0 when max_nodes <= 0 or the tree is smaller.  The server finds it
 *      with a DFS that skips subtrees below the heap minimum; totals shrink
 *      downwards, so that is exactly the k-th largest of all totals.
 *   2. LIFO walk from the root; a node's kept children (total >= minVal)
 *      are pushed in name order, the sum of the others as one synthetic
 *      "other" child (self = total = sum) pushed last, so popped first.
 *   3. Each visited bar is PREPENDED to its level; we append and write the
 *      level backwards, which is the same list.
 *   4. names[] in first-visit order; the root's "" becomes "total" (any
 *      other "" frame shares index 0, as in the server's name cache).
 *   5. x of the first child = parent x + parent self, next children follow;
 *      stored x is the gap since the previous bar's end in that level
 *      (each side its own chain in the double format).
 *
 * Units: Pyroscope's UI knows "samples" (shown as time: ticks / sampleRate
 * seconds), "objects", "goroutines", "bytes", "lock_samples",
 * "lock_nanoseconds", "trace_samples" and "exceptions", and fails on any
 * other word.  A time metric goes out as "samples" at the rate that makes
 * ticks / sampleRate its seconds (nanoseconds: 1e9), so the UI shows the
 * real time; a unit Pyroscope does not know goes out as "objects", a plain
 * count (pyroscope_units()).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "write.h"

#define OTHER UINT32_MAX

/* Pyroscope's word for `units` (st_export_units()), *rate the sampleRate to
 * write with it (o->sample_rate unless the unit implies one). */
static const char *pyroscope_units(const char *units, uint32_t *rate)
{
	static const struct {
		const char *unit;
		uint32_t rate;
	} times[] = { { "nanoseconds", 1000000000 }, { "microseconds", 1000000 },
		      { "milliseconds", 1000 }, { "seconds", 1 } };
	static const char *const known[] = { "samples", "objects", "goroutines", "bytes",
					     "lock_samples", "lock_nanoseconds", "trace_samples",
					     "exceptions" };
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
		if (!strcmp(units, times[i].unit)) {
			*rate = times[i].rate;
			return "samples";
		}
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(units, known[i]))
			return known[i];
	return "objects";
}

static int cmp_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x < y) - (x > y);
}

static uint64_t node_val(const struct st_xnode *x, bool diff)
{
	return diff && x->total[1] > x->total[0] ? x->total[1] : x->total[0];
}

static int min_value(const struct st_xtree *t, bool diff, int64_t max_nodes, uint64_t *out)
{
	*out = 0;
	if (max_nodes <= 0 || t->count < (uint64_t)max_nodes)
		return 0;
	uint64_t *v = st_malloc(t->count * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < t->count; i++)
		v[i] = node_val(&t->n[i], diff);
	qsort(v, t->count, sizeof(*v), cmp_desc);
	*out = v[max_nodes - 1];
	st_free(v);
	return 0;
}

struct level {
	uint64_t *v; /* bars, stride 4 (single) or 7 (double), in visit order */
	size_t n, cap;
};

struct ent {
	uint32_t node; /* or OTHER */
	uint32_t level;
	uint64_t x[2];
	uint64_t other[2];
};

int st_export_flamebearer_tree(const struct st_xtree *t, bool diff, const struct st_snap *s,
			       const struct st_export_opts *o, FILE *out)
{
	const unsigned stride = diff ? 7 : 4;
	struct st_names nm = { 0 };
	struct level *lv = NULL;
	size_t nlv = 0, lvcap = 0;
	struct ent *st = NULL;
	size_t sp = 0, scap = 0;
	uint64_t minv, maxself = 0;
	int rc = min_value(t, diff, o->max_nodes, &minv);
	if (rc)
		goto out;
	scap = 1024;
	st = st_malloc(scap * sizeof(*st));
	if (!st) {
		rc = -ENOMEM;
		goto out;
	}
	st[sp++] = (struct ent){ 0, 0, { 0, 0 }, { 0, 0 } };
	while (sp) {
		struct ent e = st[--sp];
		const struct st_xnode *x = e.node == OTHER ? NULL : &t->n[e.node];
		uint64_t tot[2], self[2];
		const char *name;
		size_t nlen;
		if (x) {
			if (node_val(x, diff) < minv)
				continue;
			tot[0] = x->total[0];
			tot[1] = x->total[1];
			self[0] = x->self[0];
			self[1] = x->self[1];
			name = x->name;
			nlen = x->len;
		} else {
			tot[0] = self[0] = e.other[0];
			tot[1] = self[1] = e.other[1];
			name = "other";
			nlen = 5;
		}
		uint32_t ni;
		rc = st_names_get(&nm, name, nlen, &ni);
		if (rc)
			goto out;
		if (e.level == nlv) {
			if (st_grow(&lv, &lvcap, nlv + 1, sizeof(*lv), 64)) {
				rc = -ENOMEM;
				goto out;
			}
			lv[nlv++] = (struct level){ 0 };
		}
		struct level *L = &lv[e.level];
		if (st_grow(&L->v, &L->cap, L->n + stride, sizeof(*L->v), 64)) {
			rc = -ENOMEM;
			goto out;
		}
		uint64_t *b = L->v + L->n;
		L->n += stride;
		if (self[0] > maxself)
			maxself = self[0];
		if (diff && self[1] > maxself)
			maxself = self[1];
		if (diff) {
			b[0] = e.x[0], b[1] = tot[0], b[2] = self[0];
			b[3] = e.x[1], b[4] = tot[1], b[5] = self[1];
			b[6] = ni;
		} else {
			b[0] = e.x[0], b[1] = tot[0], b[2] = self[0], b[3] = ni;
		}
		if (!x)
			continue;
		uint64_t xo[2] = { e.x[0] + self[0], e.x[1] + self[1] };
		uint64_t oth[2] = { 0, 0 };
		if (st_grow(&st, &scap, sp + x->nkids + 1, sizeof(*st), 1024)) {
			rc = -ENOMEM;
			goto out;
		}
		for (uint32_t k = 0; k < x->nkids; k++) {
			const struct st_xnode *c = &t->n[t->kids[x->first + k]];
			if (node_val(c, diff) >= minv) {
				st[sp++] = (struct ent){ t->kids[x->first + k], e.level + 1, { xo[0], xo[1] },
							 { 0, 0 } };
				xo[0] += c->total[0];
				xo[1] += c->total[1];
			} else {
				oth[0] += c->total[0];
				oth[1] += c->total[1];
			}
		}
		if (oth[0] || oth[1])
			st[sp++] = (struct ent){ OTHER, e.level + 1, { xo[0], xo[1] }, { oth[0], oth[1] } };
	}

	fputs("{\"version\":1,\"flamebearer\":{\"names\":[", out);
	for (size_t i = 0; i < nm.n; i++) {
		fputs(i ? ",\"" : "\"", out);
		if (i == 0)
			fputs("total", out);
		else
			st_json_escape(out, nm.name[i], nm.len[i]);
		putc('"', out);
	}
	fputs("],\"levels\":[", out);
	for (size_t l = 0; l < nlv; l++) {
		fputs(l ? ",[" : "[", out);
		uint64_t prev[2] = { 0, 0 };
		bool firstv = true;
		for (size_t j = lv[l].n; j >= stride; j -= stride) {
			const uint64_t *b = lv[l].v + j - stride;
			for (unsigned k = 0; k < stride; k++) {
				uint64_t v = b[k];
				if (k == 0 || (diff && k == 3)) {
					unsigned side = k ? 1 : 0;
					v = b[k] - prev[side];
					prev[side] = b[k] + b[k + 1];
				}
				fprintf(out, firstv ? "%" PRIu64 : ",%" PRIu64, v);
				firstv = false;
			}
		}
		putc(']', out);
	}
	const struct st_xnode *root = &t->n[0];
	uint64_t ticks = diff ? st_sat_add(root->total[0], root->total[1]) : root->total[0];
	fprintf(out, "],\"numTicks\":%" PRIu64 ",\"maxSelf\":%" PRIu64 "},\"metadata\":{\"format\":\"%s\",\"units\":\"",
		ticks, maxself, diff ? "double" : "single");
	uint32_t rate = o->sample_rate;
	fputs(pyroscope_units(st_export_units(s, o), &rate), out);
	fprintf(out, "\",\"sampleRate\":%" PRIu32 ",\"spyName\":\"", rate);
	const char *spy = o->spy_name ? o->spy_name : "shardtrie";
	st_json_escape(out, spy, strlen(spy));
	fputs("\",\"name\":\"", out);
	const char *an = o->app_name ? o->app_name : o->title ? o->title : "shardtrie";
	st_json_escape(out, an, strlen(an));
	putc('"', out);
	if (diff)
		fprintf(out, ",\"leftTicks\":%" PRIu64 ",\"rightTicks\":%" PRIu64 "},\"leftTicks\":%" PRIu64
			",\"rightTicks\":%" PRIu64 "}\n",
			root->total[0], root->total[1], root->total[0], root->total[1]);
	else
		fputs("}}\n", out);
out:
	for (size_t l = 0; l < nlv; l++)
		st_free(lv[l].v);
	st_free(lv);
	st_free(st);
	st_names_free(&nm);
	return rc;
}

int st_export_flamebearer(const struct st_snap *s, const struct st_export_opts *o, FILE *out)
{
	struct st_xtree t;
	int rc = st_xtree_build(&t, s, NULL, o->metric, false);
	if (rc)
		return rc;
	rc = st_export_flamebearer_tree(&t, false, s, o, out);
	st_xtree_free(&t);
	return rc;
}
