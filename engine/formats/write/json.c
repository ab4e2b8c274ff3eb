/* SPDX-License-Identifier: MIT */
/*
 * json.c - ior's LiveTrie snapshot JSON: {"n","v","t","c"}.
 *
 *   {"n":"","v":0,"t":3,"c":[{"n":"a","v":0,"t":3,"c":[...]}]}
 *
 * Semantics (ior internal/flamegraph, shared/docs/formats.md):
 *   1. n = name (root ""), v = self, t = subtree total INCLUDING pruned
 *      descendants, c = kept children in name order, omitted when empty.
 *   2. A node at depth > 0 is pruned with its subtree when
 *      (double)t / (double)root.t < min_fraction (strict: a node at exactly
 *      the fraction is kept), and only when root.t > 0.
 *   3. Fallback: when a kept node at depth <= 1 has children and pruning
 *      would hide all of them, its 8 largest children are kept (largest t
 *      first, ties by name byte-wise), still written in name order.
 *   4. Strings are escaped as Go's encoding/json does.
 * The walk is iterative: stacks may be 65536 frames deep.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

#include "write.h"

#define FALLBACK_KEEP 8

struct frame {
	uint32_t node;
	uint32_t depth;
	uint32_t next;      /* next child index (absolute) to consider */
	uint32_t end;       /* one past the last child */
	bool fallback;      /* children chosen by rule 3 */
	bool any;           /* a child has been written ("," needed) */
	uint32_t pick[FALLBACK_KEEP];
	unsigned npick;
};

struct jctx {
	const struct st_snap *s;
	unsigned m;
	double minf;
	uint64_t root_t;
};

static bool passes(const struct jctx *c, uint32_t node, uint32_t depth)
{
	if (depth == 0 || c->root_t == 0)
		return true;
	return !((double)st_snap_total(c->s, node, c->m) / (double)c->root_t < c->minf);
}

/* Rule 3: the FALLBACK_KEEP largest children, sorted back to name order. */
static unsigned pick_largest(const struct jctx *c, uint32_t first, uint32_t n, uint32_t *pick)
{
	unsigned k = 0;
	for (uint32_t i = first; i < first + n; i++) {
		uint64_t t = st_snap_total(c->s, i, c->m);
		/* Insertion into a descending list; equal totals keep name order
		 * because children are visited in name order. */
		unsigned pos = k;
		while (pos > 0 && st_snap_total(c->s, pick[pos - 1], c->m) < t)
			pos--;
		if (pos >= FALLBACK_KEEP)
			continue;
		unsigned last = k < FALLBACK_KEEP ? k : FALLBACK_KEEP - 1;
		for (unsigned j = last; j > pos; j--)
			pick[j] = pick[j - 1];
		pick[pos] = i;
		if (k < FALLBACK_KEEP)
			k++;
	}
	/* Back to name order = index order. */
	for (unsigned i = 1; i < k; i++)
		for (unsigned j = i; j > 0 && pick[j - 1] > pick[j]; j--) {
			uint32_t t = pick[j];
			pick[j] = pick[j - 1];
			pick[j - 1] = t;
		}
	return k;
}

static void open_node(const struct jctx *c, struct frame *f, FILE *out)
{
	size_t len;
	const char *name = st_snap_name(c->s, f->node, &len);
	fputs("{\"n\":\"", out);
	st_json_escape(out, name, len);
	fputs("\",\"v\":", out);
	st_put_u64(out, st_snap_self(c->s, f->node, c->m));
	fputs(",\"t\":", out);
	st_put_u64(out, st_snap_total(c->s, f->node, c->m));
	uint32_t first, n = st_snap_children(c->s, f->node, &first);
	f->next = first;
	f->end = first + n;
	f->any = false;
	f->fallback = false;
	f->npick = 0;
	if (n && f->depth <= 1) {
		bool some = false;
		for (uint32_t i = first; i < first + n && !some; i++)
			some = passes(c, i, f->depth + 1);
		if (!some) {
			f->fallback = true;
			f->npick = pick_largest(c, first, n, f->pick);
		}
	}
}

/* Next child of f to write, or UINT32_MAX. */
static uint32_t next_child(const struct jctx *c, struct frame *f)
{
	if (f->fallback) {
		for (unsigned i = 0; i < f->npick; i++)
			if (f->pick[i] >= f->next) {
				f->next = f->pick[i] + 1;
				return f->pick[i];
			}
		return UINT32_MAX;
	}
	while (f->next < f->end) {
		uint32_t i = f->next++;
		if (passes(c, i, f->depth + 1))
			return i;
	}
	return UINT32_MAX;
}

int st_export_json(const struct st_snap *s, const struct st_export_opts *o, FILE *out)
{
	struct jctx c = { s, o->metric, o->min_fraction, st_snap_total(s, ST_NODE_ROOT, o->metric) };
	size_t cap = 256, sp = 0;
	struct frame *st = st_malloc(cap * sizeof(*st));
	if (!st)
		return -ENOMEM;
	st[sp] = (struct frame){ .node = ST_NODE_ROOT, .depth = 0 };
	open_node(&c, &st[sp], out);
	sp++;
	while (sp) {
		struct frame *f = &st[sp - 1];
		uint32_t ch = next_child(&c, f);
		if (ch == UINT32_MAX) {
			fputs(f->any ? "]}" : "}", out);
			sp--;
			continue;
		}
		fputs(f->any ? "," : ",\"c\":[", out);
		f->any = true;
		if (sp == cap) {
			if (st_grow(&st, &cap, sp + 1, sizeof(*st), 256)) {
				st_free(st);
				return -ENOMEM;
			}
			f = &st[sp - 1];
		}
		st[sp] = (struct frame){ .node = ch, .depth = f->depth + 1 };
		open_node(&c, &st[sp], out);
		sp++;
	}
	fputc('\n', out);
	st_free(st);
	return 0;
}
