/* SPDX-License-Identifier: MIT */
/*
 * tree.c - the private tree the richer writers (diff, svg, html,
 * speedscope, d3) work on; flamebearer uses it for a diff only (a single
 * profile's flamebearer walks the snapshot itself, flamebearer.c).
 *
 *   snapshot(s) --add (side 0/1, optionally reversed)--> st_xtree
 *        node: name, self[2], total[2], kids [first, first+nkids) by name
 *
 * Why not the snapshot itself: a diff needs two trees aligned by name (a
 * name on one side only gets an empty node on the other), and --reverse
 * needs the stacks merged from the leaf; one structure serves all three.
 * Invariants after st_xtree_finish():
 *   1. node 0 is the root (name ""), a node's parent has a smaller index;
 *   2. kids of a node are contiguous in t->kids and in name order (bytes,
 *      shorter first on a common prefix), the snapshot's order;
 *   3. total[s] = self[s] + sum of kids' total[s], saturating.
 * Names point into the engine's interned strings (valid for its lifetime).
 */
#include <errno.h>
#include <stdlib.h>

#include "write.h"

static uint64_t key_hash(uint32_t parent, const char *name, size_t len)
{
	return st_hash_bytes(name, len) * 0x9e3779b97f4a7c15ull ^ (parent + 0x632be59bd9b4e019ull);
}

/*
 * Double the index table *ht of *htcap slots (a power of two, min_cap at
 * first; UINT32_MAX is empty) and put back the indexes [first, n), each at
 * hash(arg, i) with linear probing.  0, or -ENOMEM with the table as it
 * was.  The xtree's node table and the names table both grow through it.
 */
static int index_grow(uint32_t **ht, size_t *htcap, size_t min_cap, size_t first, size_t n,
		      uint64_t (*hash)(const void *arg, size_t i), const void *arg)
{
	size_t nc = *htcap ? *htcap * 2 : min_cap;
	uint32_t *nh = st_malloc(nc * sizeof(*nh));
	if (!nh)
		return -ENOMEM;
	memset(nh, 0xff, nc * sizeof(*nh));
	for (size_t i = first; i < n; i++) {
		size_t h = hash(arg, i) & (nc - 1);
		while (nh[h] != UINT32_MAX)
			h = (h + 1) & (nc - 1);
		nh[h] = (uint32_t)i;
	}
	st_free(*ht);
	*ht = nh;
	*htcap = nc;
	return 0;
}

static uint64_t xnode_hash(const void *arg, size_t i)
{
	const struct st_xnode *x = &((const struct st_xtree *)arg)->n[i];
	return key_hash(x->parent, x->name, x->len);
}

static int ht_grow(struct st_xtree *t)
{
	return index_grow(&t->ht, &t->htcap, 1024, 1, t->count, xnode_hash, t);
}

int st_xtree_init(struct st_xtree *t)
{
	memset(t, 0, sizeof(*t));
	t->cap = 1024;
	t->n = st_calloc(t->cap, sizeof(*t->n));
	if (!t->n)
		return -ENOMEM;
	t->n[0] = (struct st_xnode){ .name = "", .parent = UINT32_MAX };
	t->count = 1;
	return ht_grow(t);
}

void st_xtree_free(struct st_xtree *t)
{
	st_free(t->n);
	st_free(t->kids);
	st_free(t->ht);
	memset(t, 0, sizeof(*t));
}

/* Child `name` of parent, created if missing; UINT32_MAX on ENOMEM. */
uint32_t st_xtree_child(struct st_xtree *t, uint32_t parent, const char *name, size_t len)
{
	size_t h = key_hash(parent, name, len) & (t->htcap - 1);
	for (uint32_t i; (i = t->ht[h]) != UINT32_MAX; h = (h + 1) & (t->htcap - 1)) {
		const struct st_xnode *x = &t->n[i];
		if (x->parent == parent && x->len == len && memcmp(x->name, name, len) == 0)
			return i;
	}
	if (t->count >= UINT32_MAX - 1)
		return UINT32_MAX;
	if (t->count == t->cap && st_grow(&t->n, &t->cap, t->count + 1, sizeof(*t->n), 1024))
		return UINT32_MAX;
	uint32_t id = (uint32_t)t->count++;
	t->n[id] = (struct st_xnode){ .name = name, .len = len, .parent = parent };
	t->ht[h] = id;
	if (t->count * 2 > t->htcap && ht_grow(t))
		return UINT32_MAX;
	return id;
}

int st_xtree_add_snap(struct st_xtree *t, const struct st_snap *s, unsigned metric, int side,
		      bool reverse)
{
	size_t nn = st_snap_node_count(s);
	uint32_t *map = st_malloc(nn * sizeof(*map));
	uint32_t *stack = st_malloc(nn * sizeof(*stack));
	int rc = 0;
	if (!map || !stack) {
		rc = -ENOMEM;
		goto out;
	}
	size_t sp = 0;
	stack[sp++] = ST_NODE_ROOT;
	map[ST_NODE_ROOT] = 0;
	while (sp) {
		uint32_t node = stack[--sp];
		uint64_t v = st_snap_self(s, node, metric);
		if (!reverse) {
			if (node != ST_NODE_ROOT) {
				size_t len;
				const char *name = st_snap_name(s, node, &len);
				uint32_t x = st_xtree_child(t, map[st_snap_parent(s, node)], name, len);
				if (x == UINT32_MAX) {
					rc = -ENOMEM;
					goto out;
				}
				map[node] = x;
			}
			t->n[map[node]].self[side] = st_sat_add(t->n[map[node]].self[side], v);
		} else if (v) {
			/* Leaf first: node, its parent, ... below the root. */
			uint32_t x = 0;
			for (uint32_t u = node; u != ST_NODE_ROOT; u = st_snap_parent(s, u)) {
				size_t len;
				const char *name = st_snap_name(s, u, &len);
				x = st_xtree_child(t, x, name, len);
				if (x == UINT32_MAX) {
					rc = -ENOMEM;
					goto out;
				}
			}
			t->n[x].self[side] = st_sat_add(t->n[x].self[side], v);
		}
		uint32_t first, n = st_snap_children(s, node, &first);
		for (uint32_t i = n; i-- > 0;)
			stack[sp++] = first + i;
	}
out:
	st_free(map);
	st_free(stack);
	return rc;
}

static int cmp_kids(const void *a, const void *b, void *arg)
{
	const struct st_xtree *t = arg;
	const struct st_xnode *x = &t->n[*(const uint32_t *)a];
	const struct st_xnode *y = &t->n[*(const uint32_t *)b];
	int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

int st_xtree_finish(struct st_xtree *t)
{
	for (size_t i = 0; i < t->count; i++) {
		t->n[i].total[0] = t->n[i].self[0];
		t->n[i].total[1] = t->n[i].self[1];
		t->n[i].nkids = 0;
	}
	for (size_t i = t->count; i-- > 1;) {
		struct st_xnode *x = &t->n[i], *p = &t->n[x->parent];
		p->total[0] = st_sat_add(p->total[0], x->total[0]);
		p->total[1] = st_sat_add(p->total[1], x->total[1]);
		p->nkids++;
	}
	st_free(t->kids);
	t->kids = st_malloc((t->count ? t->count : 1) * sizeof(*t->kids));
	if (!t->kids)
		return -ENOMEM;
	uint32_t off = 0;
	for (size_t i = 0; i < t->count; i++) {
		t->n[i].first = off;
		off += t->n[i].nkids;
		t->n[i].nkids = 0;
	}
	for (size_t i = 1; i < t->count; i++) {
		struct st_xnode *p = &t->n[t->n[i].parent];
		t->kids[p->first + p->nkids++] = (uint32_t)i;
	}
	for (size_t i = 0; i < t->count; i++)
		if (t->n[i].nkids > 1)
			qsort_r(t->kids + t->n[i].first, t->n[i].nkids, sizeof(uint32_t), cmp_kids, t);
	return 0;
}

int st_xtree_build(struct st_xtree *t, const struct st_snap *a, const struct st_snap *b,
		   unsigned metric, bool reverse)
{
	int rc = st_xtree_init(t);
	if (!rc && a)
		rc = st_xtree_add_snap(t, a, metric, 0, reverse);
	if (!rc && b)
		rc = st_xtree_add_snap(t, b, metric, 1, reverse);
	if (!rc)
		rc = st_xtree_finish(t);
	if (rc)
		st_xtree_free(t);
	return rc;
}

const char *st_export_units(const struct st_snap *s, const struct st_export_opts *o)
{
	if (o->units && o->units[0])
		return o->units;
	const struct st_metric_desc *d = st_snap_metric(s, o->metric);
	return d && d->unit ? d->unit : "samples";
}

static uint64_t name_hash(const void *arg, size_t i)
{
	const struct st_names *nm = arg;
	return st_hash_bytes(nm->name[i], nm->len[i]);
}

/* Distinct names in first-seen order (flamebearer names[], speedscope frames). */
int st_names_get(struct st_names *nm, const char *s, size_t len, uint32_t *out)
{
	if ((nm->n + 1) * 2 > nm->htcap &&
	    index_grow(&nm->ht, &nm->htcap, 256, 0, nm->n, name_hash, nm))
		return -ENOMEM;
	size_t h = st_hash_bytes(s, len) & (nm->htcap - 1);
	for (uint32_t i; (i = nm->ht[h]) != UINT32_MAX; h = (h + 1) & (nm->htcap - 1))
		if (nm->len[i] == len && memcmp(nm->name[i], s, len) == 0) {
			*out = i;
			return 0;
		}
	if (nm->n == nm->cap) {
		/* name[] and len[] grow together: the capacity is the one both
		 * have (an array that grew alone is only reallocated again). */
		size_t ca = nm->cap, cb = nm->cap;
		if (st_grow(&nm->name, &ca, nm->n + 1, sizeof(*nm->name), 256) ||
		    st_grow(&nm->len, &cb, nm->n + 1, sizeof(*nm->len), 256))
			return -ENOMEM;
		nm->cap = ca;
	}
	nm->name[nm->n] = s;
	nm->len[nm->n] = len;
	nm->ht[h] = (uint32_t)nm->n;
	*out = (uint32_t)nm->n++;
	return 0;
}

void st_names_free(struct st_names *nm)
{
	st_free(nm->ht);
	st_free(nm->name);
	st_free(nm->len);
	memset(nm, 0, sizeof(*nm));
}
