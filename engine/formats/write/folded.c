/* SPDX-License-Identifier: MIT */
/*
 * folded.c - "stack count" lines, as stackcollapse-*.pl and inferno
 * write them: identical stacks aggregated (the trie did that), one line per
 * node with a non-zero self value, sorted as WHOLE LINES byte-wise (C
 * locale), which is not the trie's name order ("a b;c" < "a;x" because
 * ' ' < ';').  The root's own value has no stack and is not written.
 *
 * Two ways in: st_export_folded() walks a snapshot's paths;
 * st_export_folded_once() (a one-shot convert) takes the distinct stacks
 * straight from the shard tables and sorts them by frame-name ranks, with no
 * master trie, no snapshot and no line built before it is written.  The
 * trie's nodes with a value are exactly the distinct stacks, so both write
 * the same bytes; a tie between two different stacks that print the same (a
 * frame holding ';') is broken as the walk would order them.
 *
 * A line break inside a frame name (a traced file name can hold one) would
 * forge a line of its own: such bytes are written as the two characters
 * "\n" / "\r".  Only the walk does that, before it sorts; the one-shot path
 * declines (-EBUSY) when any name holds one, so its callers use the walk.
 */
#include <errno.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "write.h"

struct lines {
	const struct st_snap *s;
	unsigned metric;
	bool esc; /* some name holds '\n' or '\r' */
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
	size_t nesc = 0;
	if (ST_UNLIKELY(l->esc))
		for (size_t i = 0; i < plen; i++)
			nesc += path[i] == '\n' || path[i] == '\r';
	size_t need = l->len + plen + nesc + (size_t)nlen;
	if (st_grow(&l->buf, &l->cap, need, 1, 1 << 16) ||
	    st_grow(&l->off, &l->ncap, l->n + 2, sizeof(*l->off), 1024))
		return -ENOMEM;
	l->off[l->n++] = l->len;
	char *d = l->buf + l->len;
	if (!nesc) {
		memcpy(d, path, plen);
		d += plen;
	} else {
		for (size_t i = 0; i < plen; i++) {
			if (path[i] == '\n' || path[i] == '\r') {
				*d++ = '\\';
				*d++ = path[i] == '\n' ? 'n' : 'r';
			} else {
				*d++ = path[i];
			}
		}
	}
	memcpy(d, num, (size_t)nlen);
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
	struct lines l = { .s = s, .metric = o->metric, .esc = st_frame_names_have_eol(st_snap_engine(s)) };
	size_t *order = NULL;
	int rc = st_export_walk_paths(s, collect, &l);
	if (rc || !l.n)
		goto out;
	l.off[l.n] = l.len;
	order = st_malloc((l.n ? l.n : 1) * sizeof(*order));
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
	st_free(order);
	st_free(l.buf);
	st_free(l.off);
	return rc;
}

/* ---------------------------------------------------- one-shot, no trie */

/*
 * The stacks are sorted as their printed bytes would sort, without printing
 * them first.  Frame names get ranks in byte order.  Two stacks agree on
 * frames [0, k) and differ at frame k: their bytes agree up to there, so
 * when neither name at k is a prefix of the other the name ranks decide.
 * When one is (rank r's prefixed names are ranks (r, pend[r]]), the byte
 * after the shorter name decides; only when that is ';' on both sides (a
 * name holding ';') are the bytes compared one by one, and when those are
 * equal too, the walk's order decides: name order at frame k.
 */
struct name {
	const char *p;
	size_t len;
};

#define HEAD 7 /* frame ranks copied into the entry */

struct once_ent {
	const uint32_t *f; /* frames, root first (in the shard record) */
	uint32_t depth;
	/* rank[f[0..HEAD)] (0 past depth; never compared there): most
	 * comparisons end within them, without a cache miss on the record.
	 * Ranks are one-to-one with frame ids. */
	uint32_t head[HEAD];
	uint64_t v;
};

struct once {
	const struct st_engine *e;
	unsigned metric;
	FILE *out;
	struct name *names; /* by frame id */
	uint32_t *rank;     /* by frame id: position in byte order */
	uint32_t *pend;     /* by rank: last rank whose name has this one as prefix */
	uint32_t *byrank;   /* rank -> frame id */
	uint32_t nnames;
	struct once_ent *ent;
	char *nbuf; /* every name, back to back, NAME_SLACK bytes after the last */
	char *ob;   /* output buffer (OUT_CHUNK + NAME_SLACK bytes) */
	size_t ol;
	int err;
};

static int cmp_name_ids(const void *pa, const void *pb, void *arg)
{
	const struct name *nm = arg;
	const struct name *a = &nm[*(const uint32_t *)pa], *b = &nm[*(const uint32_t *)pb];
	int c = memcmp(a->p, b->p, a->len < b->len ? a->len : b->len);
	return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* The next printed byte of e after frame *i, offset *j; -1 at the end. */
static int next_byte(const struct once *o, const struct once_ent *e, uint32_t *i, size_t *j)
{
	if (*i >= e->depth)
		return -1;
	const struct name *n = &o->names[e->f[*i]];
	if (*j < n->len)
		return (unsigned char)n->p[(*j)++];
	++*i;
	*j = 0;
	return *i < e->depth ? ';' : -1;
}

static int cmp_once(const void *pa, const void *pb, void *arg)
{
	const struct once *o = arg;
	const struct once_ent *a = pa, *b = pb;
	uint32_t d = a->depth < b->depth ? a->depth : b->depth, k = 0;
	uint32_t hd = d < HEAD ? d : HEAD;
	while (k < hd && a->head[k] == b->head[k])
		k++;
	if (k == hd)
		while (k < d && a->f[k] == b->f[k])
			k++;
	if (k == d) /* one prints as a prefix of the other: shorter first */
		return (a->depth > b->depth) - (a->depth < b->depth);
	uint32_t ra = k < HEAD ? a->head[k] : o->rank[a->f[k]];
	uint32_t rb = k < HEAD ? b->head[k] : o->rank[b->f[k]];
	if (ra < rb ? rb > o->pend[ra] : ra > o->pend[rb])
		return ra < rb ? -1 : 1;
	/* One name is a prefix of the other: the shorter stack's next byte
	 * (';', or its end) against the longer name's next byte decides,
	 * unless that byte is ';' too. */
	const struct name *na = &o->names[o->byrank[ra]], *nb = &o->names[o->byrank[rb]];
	int ca, cb;
	if (na->len < nb->len) {
		ca = k + 1 < a->depth ? ';' : -1;
		cb = (unsigned char)nb->p[na->len];
	} else {
		ca = (unsigned char)na->p[nb->len];
		cb = k + 1 < b->depth ? ';' : -1;
	}
	if (ca != cb)
		return ca < cb ? -1 : 1;
	uint32_t ia = k, ib = k;
	size_t ja = 0, jb = 0;
	for (;;) {
		ca = next_byte(o, a, &ia, &ja);
		cb = next_byte(o, b, &ib, &jb);
		if (ca != cb)
			return ca < cb ? -1 : 1;
		if (ca < 0)
			return ra < rb ? -1 : 1; /* same bytes: walk order */
	}
}

/*
 * Bottom-up merge sort of the entries themselves: qsort_r sorts entries
 * this big through pointers (a cache miss per comparison on a million
 * stacks); runs merged in place stream through memory instead.
 */
static int sort_once(struct once *o, struct once_ent *a, size_t n)
{
	struct once_ent *tmp = st_malloc((n ? n : 1) * sizeof(*tmp)), *src = a, *dst = tmp;
	if (!tmp)
		return -ENOMEM;
	/* Runs of 8 by insertion first. */
	for (size_t lo = 0; lo < n; lo += 8) {
		size_t hi = lo + 8 < n ? lo + 8 : n;
		for (size_t i = lo + 1; i < hi; i++) {
			struct once_ent x = a[i];
			size_t j = i;
			for (; j > lo && cmp_once(&a[j - 1], &x, o) > 0; j--)
				a[j] = a[j - 1];
			a[j] = x;
		}
	}
	for (size_t w = 8; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
			size_t i = lo, j = mid, k = lo;
			while (i < mid && j < hi)
				dst[k++] = cmp_once(&src[j], &src[i], o) < 0 ? src[j++] : src[i++];
			while (i < mid)
				dst[k++] = src[i++];
			while (j < hi)
				dst[k++] = src[j++];
		}
		struct once_ent *t = src;
		src = dst;
		dst = t;
	}
	if (src != a)
		memcpy(a, src, n * sizeof(*a));
	st_free(tmp);
	return 0;
}

#define OUT_CHUNK (1u << 20)
/* Names up to this long are copied as two 16-byte moves, which may read
 * past the name (into the next one, or the slack after the last) and write
 * past it in the output buffer (into its slack, then overwritten). */
#define NAME_SLACK 32

static void put(struct once *o, const char *p, size_t n)
{
	if (o->ol + n > OUT_CHUNK) {
		if (o->ol && fwrite(o->ob, 1, o->ol, o->out) != o->ol)
			o->err = -EIO;
		o->ol = 0;
		if (n > OUT_CHUNK) { /* a name longer than the buffer */
			if (fwrite(p, 1, n, o->out) != n)
				o->err = -EIO;
			return;
		}
	}
	memcpy(o->ob + o->ol, p, n);
	o->ol += n;
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

/* Ranks of every frame name in byte order, and the prefix ranges. */
static int rank_names(struct once *o)
{
	uint32_t n = o->nnames;
	o->names = st_malloc((n ? n : 1) * sizeof(*o->names));
	o->rank = st_malloc((n ? n : 1) * sizeof(*o->rank));
	o->pend = st_malloc((n ? n : 1) * sizeof(*o->pend));
	o->byrank = st_malloc((n ? n : 1) * sizeof(*o->byrank));
	if (!o->names || !o->rank || !o->pend || !o->byrank)
		return -ENOMEM;
	size_t total = 0;
	for (uint32_t i = 0; i < n; i++) {
		o->names[i].p = st_frame_name(o->e, i, &o->names[i].len);
		o->byrank[i] = i;
		total += o->names[i].len;
	}
	o->nbuf = st_malloc(total + NAME_SLACK);
	if (!o->nbuf)
		return -ENOMEM;
	memset(o->nbuf + total, 0, NAME_SLACK);
	char *q = o->nbuf;
	for (uint32_t i = 0; i < n; i++) {
		memcpy(q, o->names[i].p, o->names[i].len);
		o->names[i].p = q;
		q += o->names[i].len;
	}
	qsort_r(o->byrank, n, sizeof(*o->byrank), cmp_name_ids, o->names);
	/* A name's prefixed names follow it contiguously: keep a stack of
	 * the names that prefix the current one (pend reuses rank's array
	 * slots as the stack until rank is filled in below). */
	uint32_t *stk = o->rank, sp = 0;
	for (uint32_t r = 0; r < n; r++) {
		const struct name *cur = &o->names[o->byrank[r]];
		while (sp) {
			const struct name *top = &o->names[o->byrank[stk[sp - 1]]];
			if (top->len <= cur->len && memcmp(top->p, cur->p, top->len) == 0)
				break;
			o->pend[stk[--sp]] = r - 1;
		}
		stk[sp++] = r;
	}
	while (sp)
		o->pend[stk[--sp]] = n - 1;
	for (uint32_t r = 0; r < n; r++)
		o->rank[o->byrank[r]] = r;
	return 0;
}

static int once_cb(void *arg, const struct st_stack_view *recs, size_t n, unsigned nm)
{
	struct once *o = arg;
	(void)nm;
	o->nnames = (uint32_t)st_frame_count(o->e);
	int rc = rank_names(o);
	if (rc)
		return rc;
	o->ent = st_malloc((n ? n : 1) * sizeof(*o->ent));
	o->ob = st_malloc(OUT_CHUNK + NAME_SLACK);
	if (!o->ent || !o->ob)
		return -ENOMEM;
	/* The stacks that print. */
	size_t ne = 0;
	for (size_t i = 0; i < n; i++) {
		const struct st_stack_view *r = &recs[i];
		uint64_t v = r->values[o->metric];
		if (!v || !r->depth)
			continue; /* prints nothing, as a zero or root node */
		const uint32_t *f = r->frames;
		for (uint32_t k = 0; k < r->depth; k++)
			if (f[k] >= o->nnames)
				return -EINVAL; /* cannot be: ids are checked on ingest */
		struct once_ent *x = &o->ent[ne++];
		*x = (struct once_ent){ .f = f, .depth = r->depth, .v = v };
		for (uint32_t k = 0; k < HEAD; k++)
			x->head[k] = k < r->depth ? o->rank[f[k]] : 0;
	}
	rc = sort_once(o, o->ent, ne);
	if (rc)
		return rc;
	for (size_t i = 0; i < ne && !o->err;) {
		/* The same stack from several shards (equal frames: adjacent
		 * after the sort): one line, values summed. */
		const struct once_ent *x = &o->ent[i];
		if (i + 4 < ne) {
			__builtin_prefetch(o->ent[i + 4].f);
			__builtin_prefetch(o->ent[i + 4].f + 16);
		}
		uint64_t v = x->v;
		size_t j = i + 1;
		for (; j < ne && o->ent[j].depth == x->depth &&
		       memcmp(o->ent[j].f, x->f, x->depth * sizeof(*x->f)) == 0;
		     j++)
			v = st_sat_add(v, o->ent[j].v);
		/* "name;" per frame, then the last ';' becomes the ' ' before
		 * the count (it is always the buffer's last byte: put() leaves
		 * what it is given last in the buffer unless longer than it). */
		for (uint32_t k = 0; k < x->depth; k++) {
			const struct name *fn = &o->names[x->f[k]];
			char *d = o->ob + o->ol;
#ifdef __SSE2__
			if (ST_LIKELY(fn->len <= NAME_SLACK && o->ol + NAME_SLACK + 1 <= OUT_CHUNK)) {
				__m128i a = _mm_loadu_si128((const __m128i *)(const void *)fn->p);
				__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(fn->p + 16));
				_mm_storeu_si128((__m128i *)(void *)d, a);
				_mm_storeu_si128((__m128i *)(void *)(d + 16), b);
			} else
#endif
			if (fn->len < OUT_CHUNK - o->ol) { /* the name and its ';' fit */
				memcpy(d, fn->p, fn->len);
			} else {
				put(o, fn->p, fn->len);
				put(o, ";", 1);
				continue;
			}
			d[fn->len] = ';';
			o->ol += fn->len + 1;
		}
		o->ob[o->ol - 1] = ' ';
		char num[24], *ns = u64_dec(num + sizeof(num) - 1, v);
		num[sizeof(num) - 1] = '\n';
		put(o, ns, (size_t)(num + sizeof(num) - ns));
		i = j;
	}
	if (!o->err && o->ol && fwrite(o->ob, 1, o->ol, o->out) != o->ol)
		o->err = -EIO;
	return o->err;
}

int st_export_folded_once(struct st_engine *e, const struct st_export_opts *o, FILE *out)
{
	if (o && o->metric >= st_engine_nmetrics(e))
		return -EINVAL;
	struct once x = { .e = e, .metric = o ? o->metric : 0, .out = out };
	if (st_frame_names_have_eol(e))
		return -EBUSY; /* names to escape: the walk does that */
	int rc = st_engine_take_stacks(e, once_cb, &x);
	st_free(x.names);
	st_free(x.nbuf);
	st_free(x.rank);
	st_free(x.pend);
	st_free(x.byrank);
	st_free(x.ent);
	st_free(x.ob);
	return rc ? rc : st_export_status(out);
}
