/* SPDX-License-Identifier: MIT */
/*
 * export_folded.c - "stack count" lines, as stackcollapse-*.pl and inferno
 * write them: identical stacks aggregated (the trie did that), one line per
 * node with a non-zero self value, sorted as WHOLE LINES byte-wise (C
 * locale), which is not the trie's name order ("a b;c" < "a;x" because
 * ' ' < ';').  The root's own value has no stack and is not written.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

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
