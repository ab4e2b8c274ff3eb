/* SPDX-License-Identifier: MIT */
/*
 * export_folded.c - "stack count" lines, as stackcollapse-*.pl and inferno
 * write them: identical stacks aggregated (the trie did that), one line per
 * node with a non-zero self value, sorted as WHOLE LINES byte-wise (C
 * locale), which is not the trie's name order ("a b;c" < "a;x" because
 * ' ' < ';').  The root's own value has no stack and is not written.
 *
 * Two ways in: st_export_folded() walks a snapshot's paths;
 * st_export_folded_once() (a one-shot convert) takes the distinct stacks
 * straight from the shard tables and sorts them, with no master trie and
 * no snapshot.  The trie's nodes are exactly the distinct stacks, so both
 * write the same bytes; a tie between two different stacks that print the
 * same (a frame holding ';') is broken as the walk would order them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "export.h"

struct lines {
	const struct st_snap *s;
	unsigned metric;
	char *buf;
	size_t len, cap;
	size_t *off; /* line i = buf[off[i] .. off[i+1]) */
	size_t n, ncap;
};

static int collect(void *arg, uint32_t node, const char *path, size_t plen)
{
	struct lines *l = arg;
	uint64_t v = st_snap_self(l->s, node, l->metric);
	if (!v || node == ST_NODE_ROOT)
		return 0;
	char num[24];
	int nlen = snprintf(num, sizeof(num), " %" PRIu64 "\n", v);
	size_t need = l->len + plen + (size_t)nlen;
	if (need > l->cap) {
		size_t nc = l->cap ? l->cap : 1 << 16;
		while (nc < need)
			nc *= 2;
		char *nb = realloc(l->buf, nc);
		if (!nb)
			return -ENOMEM;
		l->buf = nb;
		l->cap = nc;
	}
	if (l->n + 2 > l->ncap) {
		size_t nc = l->ncap ? l->ncap * 2 : 1024;
		size_t *no = realloc(l->off, nc * sizeof(*no));
		if (!no)
			return -ENOMEM;
		l->off = no;
		l->ncap = nc;
	}
	l->off[l->n++] = l->len;
	memcpy(l->buf + l->len, path, plen);
	memcpy(l->buf + l->len + plen, num, (size_t)nlen);
	l->len = need;
	return 0;
}

static int cmp_lines(const void *a, const void *b, void *arg)
{
	const struct lines *sort_lines = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	const char *x = sort_lines->buf + sort_lines->off[i];
	const char *y = sort_lines->buf + sort_lines->off[j];
	size_t lx = sort_lines->off[i + 1] - sort_lines->off[i] - 1; /* without '\n' */
	size_t ly = sort_lines->off[j + 1] - sort_lines->off[j] - 1;
	/* Compare the stacks, not the " count" after them: Perl's
	 * `sort keys %collapsed` (stackcollapse-*.pl) orders keys, and the two
	 * differ when a frame holds a byte below ' ' ("a" < "a\tb" but
	 * "a\tb 1" < "a 1"). Stacks are unique, so this is a total order. */
	lx = (size_t)((const char *)memrchr(x, ' ', lx) - x);
	ly = (size_t)((const char *)memrchr(y, ' ', ly) - y);
	int c = memcmp(x, y, lx < ly ? lx : ly);
	return c ? c : (lx > ly) - (lx < ly);
}

int st_export_folded(const struct st_snap *s, const struct st_export_opts *o, FILE *out)
{
	struct lines l = { .s = s, .metric = o->metric };
	size_t *order = NULL;
	int rc = st_export_walk_paths(s, collect, &l);
	if (rc || !l.n)
		goto out;
	l.off[l.n] = l.len;
	order = malloc((l.n ? l.n : 1) * sizeof(*order));
	if (!order) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < l.n; i++)
		order[i] = i;
	qsort_r(order, l.n, sizeof(*order), cmp_lines, &l);
	for (size_t i = 0; i < l.n; i++)
		fwrite(l.buf + l.off[order[i]], 1, l.off[order[i] + 1] - l.off[order[i]], out);
out:
	free(order);
	free(l.buf);
	free(l.off);
	return rc;
}

/* ---------------------------------------------------- one-shot, no trie */

struct name {
	const char *p;
	size_t len;
};

struct once_ent {
	size_t off, len;         /* stack bytes: buf[off .. off+len) */
	const struct st_srec *r; /* its frames, for ties and merging */
	uint64_t v;
};

struct once {
	const struct st_intern *in;
	unsigned metric;
	FILE *out;
	struct name *names; /* by frame id */
	uint32_t nnames;
	char *buf;
	struct once_ent *ent;
	unsigned nm;
};

/* The frames of a and b in the order st_export_walk_paths visits their
 * nodes: frame by frame in name order, an ancestor before its subtree. */
static int walk_order(const struct once *o, const struct st_srec *a, const struct st_srec *b)
{
	const uint32_t *fa = st_srec_frames((struct st_srec *)a, o->nm);
	const uint32_t *fb = st_srec_frames((struct st_srec *)b, o->nm);
	uint32_t d = a->depth < b->depth ? a->depth : b->depth;
	for (uint32_t i = 0; i < d; i++)
		if (fa[i] != fb[i])
			return st_intern_cmp(o->in, fa[i], fb[i]);
	return (a->depth > b->depth) - (a->depth < b->depth);
}

static int cmp_once(const void *pa, const void *pb, void *arg)
{
	const struct once *o = arg;
	const struct once_ent *a = pa, *b = pb;
	int c = memcmp(o->buf + a->off, o->buf + b->off, a->len < b->len ? a->len : b->len);
	if (c)
		return c;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return walk_order(o, a->r, b->r); /* 0 only for the same stack */
}

/* Decimal digits of v, written backwards ending at end; returns the start. */
static char *u64_dec(char *end, uint64_t v)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return end;
}

#define OUT_CHUNK (1u << 20)

static int once_cb(void *arg, struct st_srec *const *recs, size_t n, unsigned nm)
{
	struct once *o = arg;
	o->nm = nm;
	/* Frame names by id, looked up once instead of once per frame. */
	o->nnames = st_intern_count(o->in);
	o->names = malloc((o->nnames ? o->nnames : 1) * sizeof(*o->names));
	o->ent = malloc((n ? n : 1) * sizeof(*o->ent));
	if (!o->names || !o->ent)
		return -ENOMEM;
	for (uint32_t i = 0; i < o->nnames; i++)
		o->names[i].p = st_intern_name(o->in, i, &o->names[i].len);
	/* The stacks that print, and the bytes they need. */
	size_t ne = 0, bytes = 0;
	for (size_t i = 0; i < n; i++) {
		const struct st_srec *r = recs[i];
		uint64_t v = st_srec_values((struct st_srec *)r)[o->metric];
		if (!v || !r->depth)
			continue; /* prints nothing, as a zero or root node */
		const uint32_t *f = st_srec_frames((struct st_srec *)r, nm);
		size_t len = r->depth - 1;
		for (uint32_t k = 0; k < r->depth; k++) {
			if (f[k] >= o->nnames)
				return -EINVAL; /* cannot be: ids are checked on ingest */
			len += o->names[f[k]].len;
		}
		o->ent[ne++] = (struct once_ent){ bytes, len, r, v };
		bytes += len;
	}
	o->buf = malloc(bytes ? bytes : 1);
	if (!o->buf)
		return -ENOMEM;
	for (size_t i = 0; i < ne; i++) {
		const struct st_srec *r = o->ent[i].r;
		const uint32_t *f = st_srec_frames((struct st_srec *)r, nm);
		char *p = o->buf + o->ent[i].off;
		for (uint32_t k = 0; k < r->depth; k++) {
			if (k)
				*p++ = ';';
			memcpy(p, o->names[f[k]].p, o->names[f[k]].len);
			p += o->names[f[k]].len;
		}
	}
	qsort_r(o->ent, ne, sizeof(*o->ent), cmp_once, o);
	/* Write in 1 MiB pieces: one fwrite each, not one per line. */
	char *ob = malloc(OUT_CHUNK);
	if (!ob)
		return -ENOMEM;
	size_t ol = 0;
	int rc = 0;
	for (size_t i = 0; i < ne;) {
		/* The same stack from several shards: one line, values summed. */
		uint64_t v = o->ent[i].v;
		size_t j = i + 1;
		for (; j < ne && cmp_once(&o->ent[i], &o->ent[j], o) == 0; j++)
			v = st_sat_add(v, o->ent[j].v);
		const struct once_ent *x = &o->ent[i];
		char num[24], *ns = u64_dec(num + sizeof(num), v);
		size_t nl = (size_t)(num + sizeof(num) - ns);
		if (ol + x->len + nl + 2 > OUT_CHUNK) {
			if (ol && fwrite(ob, 1, ol, o->out) != ol) {
				rc = -EIO;
				break;
			}
			ol = 0;
		}
		if (x->len + nl + 2 > OUT_CHUNK) {
			/* A stack longer than the chunk: straight through. */
			if (fwrite(o->buf + x->off, 1, x->len, o->out) != x->len) {
				rc = -EIO;
				break;
			}
		} else {
			memcpy(ob + ol, o->buf + x->off, x->len);
			ol += x->len;
		}
		ob[ol++] = ' ';
		memcpy(ob + ol, ns, nl);
		ol += nl;
		ob[ol++] = '\n';
		i = j;
	}
	if (!rc && ol && fwrite(ob, 1, ol, o->out) != ol)
		rc = -EIO;
	free(ob);
	return rc;
}

int st_export_folded_once(struct st_engine *e, const struct st_export_opts *o, FILE *out)
{
	if (o && o->metric >= st_engine_nmetrics(e))
		return -EINVAL;
	struct once x = { .in = st_engine_intern(e), .metric = o ? o->metric : 0, .out = out };
	int rc = st_engine_drain(e, once_cb, &x);
	free(x.names);
	free(x.ent);
	free(x.buf);
	return rc ? rc : st_export_status(out);
}
