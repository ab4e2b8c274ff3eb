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
 *      downwards, so that is exactly the k-th largest of all totals.  We
 *      find it best-first (min_value_snap()) on a snapshot, by sorting every
 *      value on the diff's xtree.
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
 * Cost (issue 17, the live server's max_nodes=1024 polls): a single profile
 * is walked in the snapshot itself, which already has totals and children
 * in name order, so an export reads the kept bars, their children and the
 * frontier of the best-first search, never the whole snapshot; only the
 * diff builds the xtree (tree.c) of both sides.
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

/*
 * What the walk reads: an xtree (the diff, two sides aligned by name), or
 * the snapshot itself (a single profile: its nodes already have totals and
 * children in name order, so no copy is made).  Node 0 is the root in both.
 */
struct src {
	const struct st_xtree *t; /* NULL: the snapshot s */
	const struct st_snap *s;
	unsigned m;
	bool diff;
};

/* The value compared with minVal (diff: the larger side). */
static uint64_t node_val(const struct src *r, uint32_t node)
{
	if (!r->t)
		return st_snap_total(r->s, node, r->m);
	const struct st_xnode *x = &r->t->n[node];
	return r->diff && x->total[1] > x->total[0] ? x->total[1] : x->total[0];
}

/* A node's total on both sides (the snapshot has side 0 only). */
static void node_total(const struct src *r, uint32_t node, uint64_t tot[2])
{
	if (r->t) {
		tot[0] = r->t->n[node].total[0];
		tot[1] = r->t->n[node].total[1];
	} else {
		tot[0] = st_snap_total(r->s, node, r->m);
		tot[1] = 0;
	}
}

static void node_self(const struct src *r, uint32_t node, uint64_t self[2])
{
	if (r->t) {
		self[0] = r->t->n[node].self[0];
		self[1] = r->t->n[node].self[1];
	} else {
		self[0] = st_snap_self(r->s, node, r->m);
		self[1] = 0;
	}
}

/* The root is "" whatever the snapshot calls it (names[0], rule 4). */
static const char *node_name(const struct src *r, uint32_t node, size_t *len)
{
	if (r->t) {
		*len = r->t->n[node].len;
		return r->t->n[node].name;
	}
	if (node == ST_NODE_ROOT) {
		*len = 0;
		return "";
	}
	return st_snap_name(r->s, node, len);
}

/* Number of children of node; child k is kid(r, *first, k). */
static uint32_t node_kids(const struct src *r, uint32_t node, uint32_t *first)
{
	if (r->t) {
		*first = r->t->n[node].first;
		return r->t->n[node].nkids;
	}
	return st_snap_children(r->s, node, first);
}

static uint32_t kid(const struct src *r, uint32_t first, uint32_t k)
{
	return r->t ? r->t->kids[first + k] : first + k;
}

/* Rule 1 over an xtree: sort every node's value (the diff, kept simple). */
static int min_value_sort(const struct st_xtree *t, bool diff, int64_t max_nodes, uint64_t *out)
{
	uint64_t *v = st_malloc(t->count * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < t->count; i++)
		v[i] = diff && t->n[i].total[1] > t->n[i].total[0] ? t->n[i].total[1]
								     : t->n[i].total[0];
	qsort(v, t->count, sizeof(*v), cmp_desc);
	*out = v[max_nodes - 1];
	st_free(v);
	return 0;
}

struct hent {
	uint64_t v;
	uint32_t node;
};

/*
 * Rule 1 over a snapshot, best first: a max-heap of the frontier, seeded
 * with the root; pop the largest, push its children.  A child's total is
 * at most its parent's (saturating sums), so the pops come out in
 * non-increasing order of total over ALL nodes, and the max_nodes-th pop is
 * the max_nodes-th largest total.  Cost: max_nodes pops plus the children
 * of the popped nodes, not the snapshot's size.
 */
static int min_value_snap(const struct st_snap *s, unsigned m, int64_t max_nodes, uint64_t *out)
{
	size_t cap = 1024, n = 0;
	struct hent *h = st_malloc(cap * sizeof(*h));
	if (!h)
		return -ENOMEM;
	h[n++] = (struct hent){ st_snap_total(s, ST_NODE_ROOT, m), ST_NODE_ROOT };
	for (int64_t popped = 1; n; popped++) {
		/* n >= 1 while popped <= max_nodes <= node_count: an unpopped node
		 * or its highest unpopped ancestor is in the heap. */
		struct hent top = h[0];
		if (popped == max_nodes) {
			*out = top.v;
			break;
		}
		/* Pop: the last entry sifts down from the root. */
		struct hent last = h[--n];
		size_t i = 0;
		for (size_t c; (c = 2 * i + 1) < n; i = c) {
			if (c + 1 < n && h[c + 1].v > h[c].v)
				c++;
			if (h[c].v <= last.v)
				break;
			h[i] = h[c];
		}
		if (n)
			h[i] = last;
		uint32_t first, nk = st_snap_children(s, top.node, &first);
		if (st_grow(&h, &cap, n + nk, sizeof(*h), 1024)) {
			st_free(h);
			return -ENOMEM;
		}
		for (uint32_t k = 0; k < nk; k++) {
			struct hent e = { st_snap_total(s, first + k, m), first + k };
			size_t j = n++;
			for (; j > 0 && h[(j - 1) / 2].v < e.v; j = (j - 1) / 2)
				h[j] = h[(j - 1) / 2];
			h[j] = e;
		}
	}
	st_free(h);
	return 0;
}

static int min_value(const struct src *r, int64_t max_nodes, uint64_t *out)
{
	size_t count = r->t ? r->t->count : st_snap_node_count(r->s);
	*out = 0;
	if (max_nodes <= 0 || count < (uint64_t)max_nodes)
		return 0;
	return r->t ? min_value_sort(r->t, r->diff, max_nodes, out)
		    : min_value_snap(r->s, r->m, max_nodes, out);
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

/* Rules 2-5 over r; s gives the units. */
static int write_fb(const struct src *r, const struct st_snap *s, const struct st_export_opts *o,
		    FILE *out)
{
	const bool diff = r->diff;
	const unsigned stride = diff ? 7 : 4;
	struct st_names nm = { 0 };
	struct level *lv = NULL;
	size_t nlv = 0, lvcap = 0;
	struct ent *st = NULL;
	size_t sp = 0, scap = 0;
	uint64_t minv, maxself = 0;
	int rc = min_value(r, o->max_nodes, &minv);
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
		uint64_t tot[2], self[2];
		const char *name;
		size_t nlen;
		if (e.node != OTHER) {
			if (node_val(r, e.node) < minv)
				continue;
			node_total(r, e.node, tot);
			node_self(r, e.node, self);
			name = node_name(r, e.node, &nlen);
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
		if (e.node == OTHER)
			continue;
		uint64_t xo[2] = { e.x[0] + self[0], e.x[1] + self[1] };
		uint64_t oth[2] = { 0, 0 };
		uint32_t first, nk = node_kids(r, e.node, &first);
		if (st_grow(&st, &scap, sp + nk + 1, sizeof(*st), 1024)) {
			rc = -ENOMEM;
			goto out;
		}
		for (uint32_t k = 0; k < nk; k++) {
			uint32_t c = kid(r, first, k);
			uint64_t ct[2];
			node_total(r, c, ct);
			if (node_val(r, c) >= minv) {
				st[sp++] = (struct ent){ c, e.level + 1, { xo[0], xo[1] }, { 0, 0 } };
				xo[0] += ct[0];
				xo[1] += ct[1];
			} else {
				oth[0] += ct[0];
				oth[1] += ct[1];
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
				if (!firstv)
					putc(',', out);
				st_put_u64(out, v);
				firstv = false;
			}
		}
		putc(']', out);
	}
	uint64_t root[2];
	node_total(r, 0, root);
	uint64_t ticks = diff ? st_sat_add(root[0], root[1]) : root[0];
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
			root[0], root[1], root[0], root[1]);
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

int st_export_flamebearer_tree(const struct st_xtree *t, bool diff, const struct st_snap *s,
			       const struct st_export_opts *o, FILE *out)
{
	const struct src r = { t, s, o->metric, diff };
	return write_fb(&r, s, o, out);
}

/* A single profile is walked in place: the cost is what is written (the
 * kept bars and their children), not the snapshot's size. */
int st_export_flamebearer(const struct st_snap *s, const struct st_export_opts *o, FILE *out)
{
	const struct src r = { NULL, s, o->metric, false };
	return write_fb(&r, s, o, out);
}
