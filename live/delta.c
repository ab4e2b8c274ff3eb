/* SPDX-License-Identifier: MIT */
/*
 * delta.c - what was ingested between two snapshots of one engine, as any
 * export format: the /debug/pprof/profile window.
 *
 * Frame ids are stable within one engine, so a node of the later snapshot
 * is found in the earlier one by walking both from the root with
 * st_snap_child_find().  A node's self value in the window is its later
 * self minus its earlier self (0 when the earlier has no such node).  Sums
 * in the engine saturate: a node that reached UINT64_MAX cannot be
 * differenced and counts what the later snapshot shows, clamped at 0.
 *
 * The differences go into a private engine (one shard, no merger thread)
 * through an ordinary writer, then one flush and st_export(): the window's
 * profile is built and written the way every other profile is.  A reset
 * between the two snapshots (their generations differ) makes the whole of
 * the later snapshot the window: what came after the reset.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "live.h"

struct walk {
	uint32_t node, anode, next, end; /* later node, earlier node, children */
};

static struct st_engine *private_engine(const struct st_engine *src)
{
	struct st_options so;
	st_options_init(&so);
	so.nshards = 1;
	so.merge_interval_ms = 0;
	so.nmetrics = st_engine_nmetrics(src);
	for (unsigned m = 0; m < so.nmetrics; m++)
		so.metrics[m] = *st_engine_metric(src, m);
	return st_engine_create(&so);
}

/* Ingest node t's growth in self, stack names[1..d]. */
static int visit(struct st_writer *w, const struct st_snap *earlier, const struct st_snap *later,
		 const struct walk *t, const char **names, const size_t *lens, size_t d, unsigned nm)
{
	uint64_t vals[ST_MAX_METRICS];
	int any = 0;
	for (unsigned m = 0; m < nm; m++) {
		uint64_t b = st_snap_self(later, t->node, m);
		uint64_t a = t->anode == UINT32_MAX ? 0 : st_snap_self(earlier, t->anode, m);
		vals[m] = b > a ? b - a : 0;
		any |= vals[m] != 0;
	}
	return any ? st_writer_ingest_strs(w, names + 1, lens + 1, d, vals) : 0;
}

/* Double the three walk arrays (each kept valid on failure). */
static int grow(struct walk **st, const char ***names, size_t **lens, size_t *cap)
{
	size_t nc = *cap * 2;
	struct walk *s2 = realloc(*st, nc * sizeof(**st));
	if (s2)
		*st = s2;
	const char **n2 = realloc(*names, nc * sizeof(**names));
	if (n2)
		*names = n2;
	size_t *l2 = realloc(*lens, nc * sizeof(**lens));
	if (l2)
		*lens = l2;
	if (!s2 || !n2 || !l2)
		return -ENOMEM;
	*cap = nc;
	return 0;
}

/* Ingest every node of `later` whose self grew since `earlier` (NULL: all). */
static int fill(struct st_writer *w, const struct st_snap *earlier, const struct st_snap *later)
{
	unsigned nm = st_snap_nmetrics(later);
	size_t cap = 64;
	struct walk *st = malloc(cap * sizeof(*st));
	const char **names = malloc(cap * sizeof(*names));
	size_t *lens = malloc(cap * sizeof(*lens));
	int r = 0;
	if (!st || !names || !lens) {
		r = -ENOMEM;
		goto out;
	}
	size_t d = 0;
	uint32_t first, n = st_snap_children(later, ST_NODE_ROOT, &first);
	st[0] = (struct walk){ ST_NODE_ROOT, earlier ? ST_NODE_ROOT : UINT32_MAX, first, first + n };
	r = visit(w, earlier, later, &st[0], names, lens, 0, nm);
	while (!r) {
		struct walk *t = &st[d];
		if (t->next == t->end) {
			if (d == 0)
				break;
			d--;
			continue;
		}
		uint32_t c = t->next++, pa = t->anode;
		if (d + 2 > cap) {
			r = grow(&st, &names, &lens, &cap);
			if (r)
				break;
		}
		d++;
		names[d] = st_snap_name(later, c, &lens[d]);
		uint32_t an = pa == UINT32_MAX ? UINT32_MAX
					       : st_snap_child_find(earlier, pa, st_snap_frame(later, c));
		n = st_snap_children(later, c, &first);
		st[d] = (struct walk){ c, an, first, first + n };
		r = visit(w, earlier, later, &st[d], names, lens, d, nm);
	}
out:
	free(st);
	free(names);
	free(lens);
	return r;
}

int st_live_delta_export(const struct st_snap *earlier, const struct st_snap *later, int fmt,
			 const struct st_export_opts *o, struct st_live_blob **out)
{
	if (earlier && st_snap_generation(earlier) != st_snap_generation(later))
		earlier = NULL;
	struct st_engine *pe = private_engine(st_snap_engine(later));
	if (!pe)
		return -errno;
	struct st_writer *w = st_writer_open(pe);
	int r = w ? 0 : -errno;
	if (!r)
		r = fill(w, earlier, later);
	if (w)
		st_writer_close(w);
	if (!r && !st_flush(pe))
		r = -ENOMEM;
	if (!r) {
		struct st_snap *s = st_snap_acquire(pe);
		/* Named by the later snapshot's version (SSE ids, blob). */
		r = st_live_blob_export(s, st_snap_version(later), fmt, o, out);
		st_snap_release(s);
	}
	st_engine_destroy(pe);
	return r;
}
