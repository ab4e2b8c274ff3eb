/* SPDX-License-Identifier: MIT */
/*
 * reference.c - the oracle: a mutex-protected tree in the manner of ior's
 * LiveTrie.  Deliberately simple: recursion, sorted child arrays kept sorted
 * on insert, totals computed on demand.  It must not share code with the
 * engine's trie (master.c, snapshot.c) so that a bug cannot hide in both.
 *
 * Node cap (same rule as master.c, written independently):
 *   if nodes (root included) > cap:
 *     K = max(1, (cap-2)/2); T = K-th largest metric-0 total among non-root
 *     nodes; keep nodes with total >= T, or > T if more than K tie at >= T;
 *     every dropped child of a kept node adds its subtree totals (all
 *     metrics) to the self of that node's "[other]" child.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "shardtrie_ref.h"

struct rnode {
	char *name;
	size_t len;
	uint64_t self[ST_MAX_METRICS];
	uint64_t dump_total[ST_MAX_METRICS]; /* filled by st_ref_dump() only */
	struct rnode **kids; /* sorted by name */
	size_t nk, cap;
};

struct st_ref {
	pthread_mutex_t mu;
	unsigned nm;
	uint64_t cap;
	uint64_t version;
	struct rnode *root;
};

static uint64_t sat(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

static int name_cmp(const char *a, size_t la, const char *b, size_t lb)
{
	int c = memcmp(a, b, la < lb ? la : lb);
	return c ? c : (la > lb) - (la < lb);
}

static struct rnode *rnode_new(const char *name, size_t len)
{
	struct rnode *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->name = malloc(len + 1);
	if (!n->name) {
		free(n);
		return NULL;
	}
	memcpy(n->name, name, len);
	n->name[len] = 0;
	n->len = len;
	return n;
}

static void rnode_free(struct rnode *n)
{
	for (size_t i = 0; i < n->nk; i++)
		rnode_free(n->kids[i]);
	free(n->kids);
	free(n->name);
	free(n);
}

/* Room for one more child of p; 0 or -ENOMEM.  Plain realloc: the
 * oracle never goes through the engine's allocator, so failure injection
 * in a test cannot make it lose what the engine is compared against. */
static int kids_reserve(struct rnode *p)
{
	if (p->nk < p->cap)
		return 0;
	size_t nc = p->cap ? p->cap * 2 : 4;
	struct rnode **k = realloc(p->kids, nc * sizeof(*k));
	if (!k)
		return -ENOMEM;
	p->kids = k;
	p->cap = nc;
	return 0;
}

/* The child named name, created in sorted position if absent. */
static struct rnode *child(struct rnode *p, const char *name, size_t len)
{
	size_t lo = 0, hi = p->nk;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = name_cmp(p->kids[mid]->name, p->kids[mid]->len, name, len);
		if (c == 0)
			return p->kids[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (kids_reserve(p))
		return NULL;
	struct rnode *n = rnode_new(name, len);
	if (!n)
		return NULL;
	memmove(&p->kids[lo + 1], &p->kids[lo], (p->nk - lo) * sizeof(*p->kids));
	p->kids[lo] = n;
	p->nk++;
	return n;
}

struct st_ref *st_ref_create(unsigned nmetrics, uint64_t node_cap)
{
	if (nmetrics < 1 || nmetrics > ST_MAX_METRICS || (node_cap && node_cap < 4)) {
		errno = EINVAL;
		return NULL;
	}
	struct st_ref *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->root = rnode_new("", 0);
	if (!r->root) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->mu, NULL);
	r->nm = nmetrics;
	r->cap = node_cap;
	r->version = 1;
	return r;
}

void st_ref_destroy(struct st_ref *r)
{
	if (!r)
		return;
	rnode_free(r->root);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

int st_ref_add(struct st_ref *r, const char *const *frames, const size_t *lens, size_t depth,
	       const uint64_t *values)
{
	int rc = 0;
	pthread_mutex_lock(&r->mu);
	struct rnode *n = r->root;
	for (size_t i = 0; i < depth && n; i++)
		n = child(n, frames[i], lens[i]);
	if (n) {
		for (unsigned m = 0; m < r->nm; m++)
			n->self[m] = sat(n->self[m], values[m]);
	} else {
		rc = -ENOMEM;
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}

static size_t count_nodes(const struct rnode *n)
{
	size_t c = 1;
	for (size_t i = 0; i < n->nk; i++)
		c += count_nodes(n->kids[i]);
	return c;
}

static void totals(const struct rnode *n, unsigned nm, uint64_t *out)
{
	for (unsigned m = 0; m < nm; m++)
		out[m] = n->self[m];
	for (size_t i = 0; i < n->nk; i++) {
		uint64_t t[ST_MAX_METRICS];
		totals(n->kids[i], nm, t);
		for (unsigned m = 0; m < nm; m++)
			out[m] = sat(out[m], t[m]);
	}
}

static void collect_totals(const struct rnode *n, unsigned nm, uint64_t *arr, size_t *k)
{
	for (size_t i = 0; i < n->nk; i++) {
		uint64_t t[ST_MAX_METRICS];
		totals(n->kids[i], nm, t);
		arr[(*k)++] = t[0];
		collect_totals(n->kids[i], nm, arr, k);
	}
}

static int desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

static bool kept(const struct rnode *n, unsigned nm, uint64_t T, bool strict)
{
	uint64_t t[ST_MAX_METRICS];
	totals(n, nm, t);
	return strict ? t[0] > T : t[0] >= T;
}

/* Fold the dropped children of kept node p into p's "[other]". */
static int fold(struct rnode *p, unsigned nm, uint64_t T, bool strict)
{
	struct rnode **old = p->kids;
	size_t nold = p->nk;
	uint64_t other[ST_MAX_METRICS] = { 0 };
	bool any_dropped = false;
	p->kids = NULL;
	p->nk = p->cap = 0;
	for (size_t i = 0; i < nold; i++) {
		struct rnode *c = old[i];
		if (kept(c, nm, T, strict)) {
			/* Re-insert (keeps order); a kept "[other]" merges below. */
			struct rnode *slot = child(p, c->name, c->len);
			if (!slot)
				return -ENOMEM;
			for (unsigned m = 0; m < nm; m++)
				slot->self[m] = sat(slot->self[m], c->self[m]);
			/* Move c's children into slot. */
			for (size_t j = 0; j < c->nk; j++) {
				if (kids_reserve(slot))
					return -ENOMEM;
				slot->kids[slot->nk++] = c->kids[j];
			}
			c->nk = 0;
			rnode_free(c);
		} else {
			uint64_t t[ST_MAX_METRICS];
			totals(c, nm, t);
			for (unsigned m = 0; m < nm; m++)
				other[m] = sat(other[m], t[m]);
			any_dropped = true;
			rnode_free(c);
		}
	}
	free(old);
	if (any_dropped) {
		struct rnode *o = child(p, ST_OTHER_NAME, strlen(ST_OTHER_NAME));
		if (!o)
			return -ENOMEM;
		for (unsigned m = 0; m < nm; m++)
			o->self[m] = sat(o->self[m], other[m]);
	}
	for (size_t i = 0; i < p->nk; i++)
		if (fold(p->kids[i], nm, T, strict))
			return -ENOMEM;
	return 0;
}

uint64_t st_ref_flush(struct st_ref *r)
{
	pthread_mutex_lock(&r->mu);
	size_t n = count_nodes(r->root);
	if (r->cap && n > r->cap) {
		uint64_t *arr = malloc((n - 1) * sizeof(*arr));
		if (arr) {
			size_t k = 0;
			collect_totals(r->root, r->nm, arr, &k);
			qsort(arr, k, sizeof(*arr), desc);
			uint64_t K = (r->cap - 2) / 2 ? (r->cap - 2) / 2 : 1;
			uint64_t T = arr[K - 1];
			size_t ge = 0;
			while (ge < k && arr[ge] >= T)
				ge++;
			fold(r->root, r->nm, T, ge > K);
			free(arr);
		}
	}
	uint64_t v = ++r->version;
	pthread_mutex_unlock(&r->mu);
	return v;
}

uint64_t st_ref_reset(struct st_ref *r)
{
	pthread_mutex_lock(&r->mu);
	struct rnode *fresh = rnode_new("", 0);
	if (fresh) {
		rnode_free(r->root);
		r->root = fresh;
	}
	uint64_t v = ++r->version;
	pthread_mutex_unlock(&r->mu);
	return v;
}

size_t st_ref_node_count(struct st_ref *r)
{
	pthread_mutex_lock(&r->mu);
	size_t n = count_nodes(r->root);
	pthread_mutex_unlock(&r->mu);
	return n;
}

static void dump_line(FILE *out, unsigned depth, const char *name, size_t len, unsigned nm,
		      const uint64_t *self, const uint64_t *total)
{
	fprintf(out, "%u ", depth);
	for (size_t i = 0; i < len; i++)
		fprintf(out, "%02x", (unsigned char)name[i]);
	for (unsigned m = 0; m < nm; m++)
		fprintf(out, " %" PRIu64, self[m]);
	fputs(" /", out);
	for (unsigned m = 0; m < nm; m++)
		fprintf(out, " %" PRIu64, total[m]);
	fputc('\n', out);
}

/* The same sums as totals(), once per node: calling totals() for every
 * node made a dump O(nodes x depth), seconds for a 2000-deep chain. */
static void dump_totals(struct rnode *n, unsigned nm)
{
	memcpy(n->dump_total, n->self, sizeof(n->dump_total));
	for (size_t i = 0; i < n->nk; i++) {
		dump_totals(n->kids[i], nm);
		for (unsigned m = 0; m < nm; m++)
			n->dump_total[m] = sat(n->dump_total[m], n->kids[i]->dump_total[m]);
	}
}

static void dump_node(const struct rnode *n, unsigned depth, unsigned nm, FILE *out)
{
	dump_line(out, depth, n->name, n->len, nm, n->self, n->dump_total);
	for (size_t i = 0; i < n->nk; i++)
		dump_node(n->kids[i], depth + 1, nm, out);
}

int st_ref_dump(struct st_ref *r, FILE *out)
{
	pthread_mutex_lock(&r->mu);
	dump_totals(r->root, r->nm);
	dump_node(r->root, 0, r->nm, out);
	pthread_mutex_unlock(&r->mu);
	return ferror(out) ? -EIO : 0;
}

int st_snap_dump(const struct st_snap *s, FILE *out)
{
	unsigned nm = st_snap_nmetrics(s);
	/* Explicit stack of (node, depth): snapshots may be deeper than C
	 * recursion allows. */
	size_t cap = 1024, sp = 0;
	uint32_t (*stack)[2] = malloc(cap * sizeof(*stack));
	if (!stack)
		return -ENOMEM;
	stack[sp][0] = ST_NODE_ROOT;
	stack[sp++][1] = 0;
	while (sp) {
		sp--;
		uint32_t node = stack[sp][0], depth = stack[sp][1];
		uint64_t self[ST_MAX_METRICS], total[ST_MAX_METRICS];
		for (unsigned m = 0; m < nm; m++) {
			self[m] = st_snap_self(s, node, m);
			total[m] = st_snap_total(s, node, m);
		}
		size_t len;
		const char *name = st_snap_name(s, node, &len);
		dump_line(out, depth, name, len, nm, self, total);
		uint32_t first, k = st_snap_children(s, node, &first);
		if (sp + k > cap) {
			while (cap < sp + k)
				cap *= 2;
			uint32_t(*ns)[2] = realloc(stack, cap * sizeof(*ns));
			if (!ns) {
				free(stack);
				return -ENOMEM;
			}
			stack = ns;
		}
		for (uint32_t i = k; i-- > 0;) {
			stack[sp][0] = first + i;
			stack[sp++][1] = depth + 1;
		}
	}
	free(stack);
	return ferror(out) ? -EIO : 0;
}
