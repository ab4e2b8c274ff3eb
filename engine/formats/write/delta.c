/* SPDX-License-Identifier: MIT */
/*
 * delta.c - st_export_delta(): what was ingested between two snapshots of
 * one engine, written as any export format (the live server's window and
 * /debug/pprof/profile, and each interval a pusher sends).
 *
 * Frame ids are stable within one engine, so a node of `later` is found in
 * `earlier` by walking both from the root with st_snap_child_find().  A
 * node's self value in the window is its later self minus its earlier self
 * (0 when earlier has no such node).  Sums in the engine saturate: a
 * difference is never wrapped, b <= a (a node that stuck at UINT64_MAX)
 * gives 0.  Different generations (an st_reset() came between them) make
 * the whole of `later` the window: what came after the reset.
 *
 * The differences go into a private engine (one shard, no merger thread;
 * every metric of the source, or only the one asked for) through an
 * ordinary writer, then one flush and st_export(): the window's profile is
 * written the way every other profile is (units, escaping, sample types).
 * The walk keeps its own stack (no recursion: stacks can be 65536 deep).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "write.h"

struct walk {
	uint32_t node, anode, next, end; /* later node, earlier node, children */
};

struct dctx {
	struct st_writer *w;
	const struct st_snap *earlier, *later;
	unsigned m0, nm; /* source metrics m0..m0+nm go to private 0..nm */
	unsigned tm;     /* private metric whose sum is *total */
	uint64_t total;
};

/* Ingest node t's growth in self, stack names[1..d]. */
static int visit(struct dctx *c, const struct walk *t, const char **names, const size_t *lens,
		 size_t d)
{
	uint64_t vals[ST_MAX_METRICS];
	int any = 0;
	for (unsigned i = 0; i < c->nm; i++) {
		uint64_t b = st_snap_self(c->later, t->node, c->m0 + i);
		uint64_t a = t->anode == UINT32_MAX ? 0
						    : st_snap_self(c->earlier, t->anode, c->m0 + i);
		vals[i] = b > a ? b - a : 0;
		any |= vals[i] != 0;
	}
	if (!any)
		return 0;
	c->total = st_sat_add(c->total, vals[c->tm]);
	return st_writer_ingest_strs(c->w, names + 1, lens + 1, d, vals);
}

/* Double the three walk arrays (each kept valid on failure). */
static int grow(struct walk **st, const char ***names, size_t **lens, size_t *cap)
{
	size_t nc = *cap * 2;
	struct walk *s2 = st_realloc(*st, nc * sizeof(**st));
	if (s2)
		*st = s2;
	const char **n2 = st_realloc(*names, nc * sizeof(**names));
	if (n2)
		*names = n2;
	size_t *l2 = st_realloc(*lens, nc * sizeof(**lens));
	if (l2)
		*lens = l2;
	if (!s2 || !n2 || !l2)
		return -ENOMEM;
	*cap = nc;
	return 0;
}

/* Ingest every node of `later` whose self grew since `earlier` (NULL: all). */
static int fill(struct dctx *c)
{
	size_t cap = 64, d = 0;
	struct walk *st = st_malloc(cap * sizeof(*st));
	const char **names = st_malloc(cap * sizeof(*names));
	size_t *lens = st_malloc(cap * sizeof(*lens));
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
			r = grow(&st, &names, &lens, &cap);
			if (r)
				break;
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
	st_free(st);
	st_free(names);
	st_free(lens);
	return r;
}

int st_export_delta(const struct st_snap *earlier, const struct st_snap *later, int metric,
		    int fmt, const struct st_export_opts *o, FILE *out, uint64_t *total)
{
	if (total)
		*total = 0;
	if (!later || !out)
		return -EINVAL;
	struct st_engine *src = st_snap_engine(later);
	unsigned nsrc = st_snap_nmetrics(later);
	struct st_export_opts eo;
	if (o)
		eo = *o;
	else
		st_export_opts_init(&eo);
	if (metric < -1 || (metric >= 0 && (unsigned)metric >= nsrc) ||
	    (metric < 0 && eo.metric >= nsrc))
		return -EINVAL;
	if (earlier && st_snap_generation(earlier) != st_snap_generation(later))
		earlier = NULL;

	struct dctx c = { .earlier = earlier, .later = later };
	if (metric >= 0) {
		c.m0 = (unsigned)metric;
		c.nm = 1;
		c.tm = 0;
		eo.metric = 0;
	} else {
		c.m0 = 0;
		c.nm = nsrc;
		c.tm = eo.metric;
	}
	struct st_options so;
	st_options_init(&so);
	so.nshards = 1;
	so.merge_interval_ms = 0;
	so.nmetrics = c.nm;
	for (unsigned i = 0; i < c.nm; i++)
		so.metrics[i] = *st_engine_metric(src, c.m0 + i);
	struct st_engine *pe = st_engine_create(&so);
	if (!pe)
		return -errno;
	c.w = st_writer_open(pe);
	int r = c.w ? fill(&c) : -errno;
	if (c.w)
		st_writer_close(c.w);
	if (!r && !st_flush(pe))
		r = -ENOMEM;
	if (!r) {
		struct st_snap *s = st_snap_acquire(pe);
		r = s ? st_export(s, fmt, &eo, out) : -ENOMEM;
		if (s)
			st_snap_release(s);
	}
	st_engine_destroy(pe);
	if (!r && total)
		*total = c.total;
	return r;
}
