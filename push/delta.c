/* SPDX-License-Identifier: MIT */
/*
 * delta.c - one metric's difference of two snapshots of one engine, encoded
 * for a push (the same idea as live/delta.c, written on the public API:
 * push/ does not include live/).
 *
 * Frame ids are stable within an engine, so a node of `later` is found in
 * `earlier` by walking both from the root with st_snap_child_find().  A
 * node's value in the interval is its later self minus its earlier self
 * (0 when earlier has no such node; a sum that saturated at UINT64_MAX is
 * clamped at 0 rather than wrapped).  Different generations (a reset came
 * between them) make all of `later` the interval.
 *
 * The differences go into a private one-metric engine (one shard, no merger)
 * through an ordinary writer, then one flush and st_export() into memory:
 * the interval's profile is written by the project's own pprof and folded
 * writers, so its sample type, units and escaping are those of any export.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct walk {
	uint32_t node, anode, next, end; /* later node, earlier node, children */
};

struct ctx {
	struct st_writer *w;
	const struct st_snap *earlier, *later;
	unsigned m;
	uint64_t total;
};

static int visit(struct ctx *c, const struct walk *t, const char **names, const size_t *lens,
		 size_t d)
{
	uint64_t b = st_snap_self(c->later, t->node, c->m);
	uint64_t a = t->anode == UINT32_MAX ? 0 : st_snap_self(c->earlier, t->anode, c->m);
	if (b <= a)
		return 0;
	uint64_t v = b - a;
	c->total = st_sat_add(c->total, v);
	return st_writer_ingest_strs(c->w, names + 1, lens + 1, d, &v);
}

static int fill(struct ctx *c)
{
	size_t cap = 64, d = 0;
	struct walk *st = malloc(cap * sizeof(*st));
	const char **names = malloc(cap * sizeof(*names));
	size_t *lens = malloc(cap * sizeof(*lens));
	int r = 0;
	if (!st || !names || !lens) {
		r = -ENOMEM;
		goto out;
	}
	uint32_t first, n = st_snap_children(c->later, ST_NODE_ROOT, &first);
	st[0] = (struct walk){ ST_NODE_ROOT, c->earlier ? ST_NODE_ROOT : UINT32_MAX, first,
			       first + n };
	r = visit(c, &st[0], names, lens, 0);
	while (!r) {
		struct walk *t = &st[d];
		if (t->next == t->end) {
			if (d == 0)
				break;
			d--;
			continue;
		}
		uint32_t ch = t->next++, pa = t->anode;
		if (d + 2 > cap) {
			size_t nc = cap * 2;
			struct walk *s2 = realloc(st, nc * sizeof(*st));
			if (s2)
				st = s2;
			const char **n2 = realloc(names, nc * sizeof(*names));
			if (n2)
				names = n2;
			size_t *l2 = realloc(lens, nc * sizeof(*lens));
			if (l2)
				lens = l2;
			if (!s2 || !n2 || !l2) {
				r = -ENOMEM;
				break;
			}
			cap = nc;
		}
		d++;
		names[d] = st_snap_name(c->later, ch, &lens[d]);
		uint32_t an = pa == UINT32_MAX ? UINT32_MAX
					       : st_snap_child_find(c->earlier, pa,
								    st_snap_frame(c->later, ch));
		n = st_snap_children(c->later, ch, &first);
		st[d] = (struct walk){ ch, an, first, first + n };
		r = visit(c, &st[d], names, lens, d);
	}
out:
	free(st);
	free(names);
	free(lens);
	return r;
}

int st_push_delta(const struct st_snap *earlier, const struct st_snap *later, unsigned m, int fmt,
		  const struct st_export_opts *eo, char **out, size_t *len, uint64_t *total)
{
	*out = NULL;
	*len = 0;
	*total = 0;
	struct st_engine *src = st_snap_engine(later);
	if (m >= st_snap_nmetrics(later))
		return -EINVAL;
	if (earlier && st_snap_generation(earlier) != st_snap_generation(later))
		earlier = NULL;
	struct st_options so;
	st_options_init(&so);
	so.nshards = 1;
	so.merge_interval_ms = 0;
	so.nmetrics = 1;
	so.metrics[0] = *st_engine_metric(src, m);
	struct st_engine *pe = st_engine_create(&so);
	if (!pe)
		return -errno;
	struct ctx c = { .w = st_writer_open(pe), .earlier = earlier, .later = later, .m = m };
	int r = c.w ? fill(&c) : -errno;
	if (c.w)
		st_writer_close(c.w);
	if (!r && c.total && !st_flush(pe))
		r = -ENOMEM;
	if (!r && c.total) {
		struct st_export_opts o = *eo;
		o.metric = 0;
		FILE *f = open_memstream(out, len);
		struct st_snap *s = st_snap_acquire(pe);
		if (!f) {
			r = -errno;
		} else {
			r = st_export(s, fmt, &o, f);
			if (fclose(f) && !r)
				r = -EIO;
		}
		st_snap_release(s);
		if (r) {
			free(*out);
			*out = NULL;
			*len = 0;
		}
	}
	if (!r)
		*total = c.total;
	st_engine_destroy(pe);
	return r;
}
