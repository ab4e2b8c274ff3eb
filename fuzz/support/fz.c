/* SPDX-License-Identifier: MIT */
/* fz.c - shared helpers of the fuzz targets (see fz.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "support/fz.h"

uint8_t fz_u8(struct fz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

uint16_t fz_u16(struct fz_in *in)
{
	return (uint16_t)(fz_u8(in) | (uint16_t)fz_u8(in) << 8);
}

uint32_t fz_u32(struct fz_in *in)
{
	return fz_u16(in) | (uint32_t)fz_u16(in) << 16;
}

uint64_t fz_u64(struct fz_in *in)
{
	return fz_u32(in) | (uint64_t)fz_u32(in) << 32;
}

uint64_t fz_value(struct fz_in *in)
{
	uint8_t k = fz_u8(in);
	switch (k >> 5) {
	case 0:
		return 0;
	case 1:
	case 2:
	case 3:
		return k & 31;
	case 4:
		return fz_u16(in);
	case 5:
		return ((uint64_t)1 << 32) - 16 + (k & 31);
	case 6:
		return UINT64_MAX - (k & 31);
	default:
		return fz_u64(in);
	}
}

size_t fz_bytes(struct fz_in *in, const uint8_t **out, size_t max)
{
	size_t len = fz_u8(in) % (max + 1);
	if (len > in->n)
		len = in->n;
	*out = in->p;
	in->p += len;
	in->n -= len;
	return len;
}

void fz_fail(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs(FZ_MISMATCH ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

void fz_expect_same(const char *what, const char *a, const char *b)
{
	if (strcmp(a, b) == 0)
		return;
	size_t line = 1, i = 0, start = 0;
	while (a[i] && a[i] == b[i]) {
		if (a[i] == '\n') {
			line++;
			start = i + 1;
		}
		i++;
	}
	const char *ea = strchr(a + start, '\n'), *eb = strchr(b + start, '\n');
	int la = ea ? (int)(ea - a - (long)start) : (int)strlen(a + start);
	int lb = eb ? (int)(eb - b - (long)start) : (int)strlen(b + start);
	if (la > 200)
		la = 200;
	if (lb > 200)
		lb = 200;
	fz_fail("%s differ at line %zu:\n  engine: %.*s\n  oracle: %.*s", what, line, la,
		a + start, lb, b + start);
}

static char *dump_with(int (*fn)(const void *, FILE *), const void *arg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		abort();
	int r = fn(arg, f);
	if (fclose(f) || r || !buf)
		fz_fail("dump failed (%d)", r);
	return buf;
}

static int snap_fn(const void *a, FILE *f) { return st_snap_dump(a, f); }
static int ref_fn(const void *a, FILE *f) { return st_ref_dump((struct st_ref *)a, f); }

char *fz_dump_snap(const struct st_snap *s) { return dump_with(snap_fn, s); }
char *fz_dump_ref(struct st_ref *r) { return dump_with(ref_fn, r); }

static void expect_same_dumps(const char *what, char *a, char *b)
{
	fz_expect_same(what, a, b);
	free(a);
	free(b);
}

void fz_expect_snap_is_ref(const char *what, const struct st_snap *s, struct st_ref *ref)
{
	expect_same_dumps(what, fz_dump_snap(s), fz_dump_ref(ref));
}

void fz_expect_refs_same(const char *what, struct st_ref *a, struct st_ref *b)
{
	expect_same_dumps(what, fz_dump_ref(a), fz_dump_ref(b));
}

int fz_name_cmp(const char *a, size_t la, const char *b, size_t lb)
{
	for (size_t i = 0; i < la && i < lb; i++)
		if (a[i] != b[i])
			return (unsigned char)a[i] < (unsigned char)b[i] ? -1 : 1;
	return la < lb ? -1 : la > lb ? 1 : 0;
}

void fz_check_snap(const struct st_snap *s)
{
	size_t n = st_snap_node_count(s);
	unsigned nm = st_snap_nmetrics(s);
	size_t len;
	if (n < 1)
		fz_fail("snapshot without a root");
	const char *rn = st_snap_name(s, ST_NODE_ROOT, &len);
	if (!rn || len || st_snap_parent(s, ST_NODE_ROOT) != UINT32_MAX ||
	    st_snap_frame(s, ST_NODE_ROOT) != ST_FRAME_ROOT || st_snap_depth(s, ST_NODE_ROOT))
		fz_fail("bad root");
	/* Children come after their parent (BFS) in every snapshot we make,
	 * so one pass in index order sees parents first; `seen` counts nodes
	 * reached through child ranges. */
	size_t seen = 1;
	uint32_t *depth = calloc(n, sizeof(*depth));
	if (!depth)
		abort();
	depth[0] = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t first, k = st_snap_children(s, i, &first);
		if (k && ((uint64_t)first + k > n || first <= i))
			fz_fail("node %u: children [%u,+%u) out of range (n=%zu)", i, first, k, n);
		uint64_t sum[ST_MAX_METRICS];
		for (unsigned m = 0; m < nm; m++)
			sum[m] = st_snap_self(s, i, m);
		const char *prev = NULL;
		size_t plen = 0;
		for (uint32_t c = first; c < first + k; c++) {
			size_t cl;
			const char *cn = st_snap_name(s, c, &cl);
			if (!cn)
				fz_fail("node %u: no name", c);
			if (st_snap_parent(s, c) != i)
				fz_fail("node %u: parent %u, listed under %u", c, st_snap_parent(s, c), i);
			if (prev && fz_name_cmp(prev, plen, cn, cl) >= 0)
				fz_fail("node %u: children of %u not in strict name order", c, i);
			if (st_snap_child_find(s, i, st_snap_frame(s, c)) != c)
				fz_fail("node %u: st_snap_child_find does not find it", c);
			depth[c] = depth[i] + 1;
			/* st_snap_depth() walks to the root: sample it, or a deep
			 * chain costs O(n * depth). */
			if ((depth[c] < 32 || c % 61 == 0) && st_snap_depth(s, c) != depth[c])
				fz_fail("node %u: depth %u, expected %u", c, st_snap_depth(s, c), depth[c]);
			prev = cn;
			plen = cl;
			for (unsigned m = 0; m < nm; m++)
				sum[m] = fz_sat_add(sum[m], st_snap_total(s, c, m));
			seen++;
		}
		for (unsigned m = 0; m < nm; m++)
			if (sum[m] != st_snap_total(s, i, m))
				fz_fail("node %u metric %u: total %llu != self + children %llu", i, m,
					(unsigned long long)st_snap_total(s, i, m),
					(unsigned long long)sum[m]);
	}
	free(depth);
	if (seen != n)
		fz_fail("%zu nodes, %zu reachable from the root", n, seen);
}

struct st_engine *fz_engine_reuse(struct st_engine **slot, unsigned *use, unsigned nm,
				  const char *const *metric_names)
{
	if (*slot && ++*use >= FZ_ENGINE_REUSE) {
		st_engine_destroy(*slot);
		*slot = NULL;
	}
	if (*slot) {
		st_reset(*slot);
		return *slot;
	}
	struct st_options o;
	st_options_init(&o);
	o.merge_interval_ms = 0;
	o.nshards = 1;
	o.nmetrics = nm;
	for (unsigned m = 1; m < nm; m++)
		o.metrics[m].name = metric_names[m - 1];
	*slot = st_engine_create(&o);
	if (!*slot)
		fz_fail("st_engine_create: %d", errno);
	*use = 0;
	return *slot;
}
