/* SPDX-License-Identifier: MIT */
/*
 * test_delta.c - st_snap_delta() and st_export_delta() against an
 * independent expectation: a fresh engine fed exactly the stacks that were
 * ingested between the two snapshots, exported the same way.
 *
 *   random_pairs   random stacks (names that share prefixes, depth 0..6,
 *                  zero and huge values, three metrics), a snapshot, more
 *                  stacks, another; some with an st_reset() between, some
 *                  with earlier NULL, some growing old stacks only.  For
 *                  metric -1 and each single metric: the delta snapshot
 *                  node for node (names, self, total), the bytes of every
 *                  export format, *total, and the metric's name and unit.
 *   alloc_failure  every allocation st_export_delta makes, failed in turn:
 *                  -ENOMEM, nothing leaked, then the right bytes.
 *   node_cap       an engine with a node cap folds earlier nodes into
 *                  [other]: later lacks children earlier had, so the walk
 *                  that matches the two must skip them by name.  Expected:
 *                  every node of later minus its earlier self found by
 *                  name (st_snap_child_find), fed to a fresh engine.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardtrie_export.h"
#include "support/support.h"

#define NM 3
#define MAXD 6

static const struct st_metric_desc metric_descs[NM] = {
	{ "count", "samples" }, { "bytes", "bytes" }, { "duration_ns", "nanoseconds" }
};
/* Names that share prefixes (name order is byte-wise, shorter first). */
static const char *const names[] = { "main", "a", "aa", "ab", "b",
				     "B", "x y", "z;w", "\xc3\xa9", "a\tb" };
#define NNAMES (sizeof(names) / sizeof(names[0]))

struct sample {
	unsigned d;
	unsigned f[MAXD];
	uint64_t v[NM];
};

static struct st_engine *engine(unsigned nm, const struct st_metric_desc *md, unsigned nshards,
				uint64_t node_cap)
{
	struct st_options so;
	st_options_init(&so);
	so.merge_interval_ms = 0;
	so.nshards = nshards;
	so.nmetrics = nm;
	so.node_cap = node_cap;
	for (unsigned k = 0; k < nm; k++)
		so.metrics[k] = md[k];
	struct st_engine *e = st_engine_create(&so);
	cr_assert(e);
	return e;
}

static void rand_sample(uint64_t *rs, struct sample *s)
{
	s->d = (unsigned)(ts_rand(rs) % (MAXD + 1));
	for (unsigned i = 0; i < s->d; i++)
		s->f[i] = (unsigned)(ts_rand(rs) % NNAMES);
	bool zero = ts_rand(rs) % 10 == 0; /* a stack that gains nothing */
	for (unsigned k = 0; k < NM; k++) {
		uint64_t r = ts_rand(rs) % 64;
		s->v[k] = zero || r < 12   ? 0
			  : r == 63 ? (1ull << 62) + ts_rand(rs) % 1000 /* totals saturate */
				    : r % 9 + 1;
	}
}

/* Ingest n samples into e; only metrics m0.. of a sample when nm < NM (an
 * engine of one metric), and only samples with a non-zero kept value when
 * nonzero_only. */
static void feed(struct st_engine *e, const struct sample *s, size_t n, unsigned m0, unsigned nm,
		 bool nonzero_only)
{
	struct st_writer *w = st_writer_open(e);
	cr_assert(w);
	for (size_t i = 0; i < n; i++) {
		const char *fr[MAXD];
		size_t lens[MAXD];
		bool any = false;
		for (unsigned k = 0; k < nm; k++)
			any |= s[i].v[m0 + k] != 0;
		if (nonzero_only && !any)
			continue;
		for (unsigned j = 0; j < s[i].d; j++) {
			fr[j] = names[s[i].f[j]];
			lens[j] = strlen(fr[j]);
		}
		cr_assert_eq(st_writer_ingest_strs(w, fr, lens, s[i].d, &s[i].v[m0]), 0);
	}
	st_writer_close(w);
	cr_assert(st_flush(e));
}

static char *export_bytes(const struct st_snap *s, int fmt, unsigned metric, size_t *len)
{
	struct st_export_opts eo;
	st_export_opts_init(&eo);
	eo.metric = metric;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	cr_assert(f);
	cr_assert_eq(st_export(s, fmt, &eo, f), 0, "format %d", fmt);
	fclose(f);
	return buf;
}

/* How many deltas had a saturated total (the side list of snapshot.c). */
static unsigned saturated_deltas;

/* delta(earlier, later, metric) == the snapshot of x (a fresh engine fed
 * the differences): node for node, in every format, *total, metric names. */
static void expect_same(const struct st_snap *earlier, const struct st_snap *later, int metric,
			const struct st_snap *x, unsigned eo_metric, const char *where)
{
	struct st_snap *d = st_snap_delta(earlier, later, metric);
	cr_assert(d, "%s: st_snap_delta failed (errno %d)", where, errno);
	char *dd = ts_dump_snap(d), *dx = ts_dump_snap(x);
	cr_assert_str_eq(dd, dx, "%s: delta snapshot (metric %d)", where, metric);
	free(dd);
	free(dx);
	cr_assert_eq(st_snap_node_count(d), st_snap_node_count(x), "%s", where);
	cr_assert_eq(st_snap_nmetrics(d), st_snap_nmetrics(x), "%s", where);
	for (unsigned k = 0; k < st_snap_nmetrics(d); k++) {
		const struct st_metric_desc *a = st_snap_metric(d, k), *b = st_snap_metric(x, k);
		cr_assert(a && b);
		cr_assert_str_eq(a->name, b->name, "%s: metric %u", where, k);
		cr_assert_str_eq(a->unit, b->unit, "%s: metric %u", where, k);
	}
	cr_assert_null(st_snap_metric(d, st_snap_nmetrics(d)));
	saturated_deltas += st_snap_saturated(d, NULL) > 0;
	st_snap_release(d);

	for (int fmt = 0; fmt < ST_FMT_COUNT_; fmt++) {
		size_t lw, lg;
		char *want = export_bytes(x, fmt, eo_metric, &lw);
		struct st_export_opts eo;
		st_export_opts_init(&eo);
		eo.metric = metric < 0 ? eo_metric : 7; /* ignored for one metric */
		char *got = NULL;
		uint64_t total = 12345;
		FILE *f = open_memstream(&got, &lg);
		cr_assert(f);
		cr_assert_eq(st_export_delta(earlier, later, metric, fmt, &eo, f, &total), 0,
			     "%s: format %d", where, fmt);
		fclose(f);
		cr_assert(lg == lw && memcmp(got, want, lw) == 0,
			  "%s: format %d, metric %d/%u: %zu bytes, want %zu", where, fmt, metric,
			  eo_metric, lg, lw);
		cr_assert_eq(total, st_snap_total(x, ST_NODE_ROOT, eo_metric), "%s: total", where);
		free(got);
		free(want);
	}
}

/* Expectation engines for metric -1 (all) and each single metric, fed s. */
static void expect_all_metrics(const struct st_snap *earlier, const struct st_snap *later,
			       const struct sample *s, size_t n, uint64_t *rs, const char *where)
{
	for (int metric = -1; metric < NM; metric++) {
		unsigned m0 = metric < 0 ? 0 : (unsigned)metric, nm = metric < 0 ? NM : 1;
		struct st_engine *x = engine(nm, &metric_descs[m0], 1, 0);
		feed(x, s, n, m0, nm, true);
		struct st_snap *xs = st_snap_acquire(x);
		char w[160];
		snprintf(w, sizeof(w), "%s, metric %d", where, metric);
		expect_same(earlier, later, metric, xs,
			    metric < 0 ? (unsigned)(ts_rand(rs) % NM) : 0, w);
		st_snap_release(xs);
		st_engine_destroy(x);
	}
}

Test(delta, random_pairs, .timeout = 300)
{
	uint64_t rs = 2026;
	enum { CASES = 80, MAXN = 160 };
	struct sample *a = malloc(MAXN * sizeof(*a)), *b = malloc(2 * MAXN * sizeof(*b));
	cr_assert(a && b);
	for (unsigned c = 0; c < CASES; c++) {
		unsigned mode = c % 5; /* 0 reset, 1 earlier NULL, 2 old stacks only, 3-4 plain */
		size_t na = (size_t)(ts_rand(&rs) % MAXN), nb = (size_t)(ts_rand(&rs) % MAXN);
		if (c % 11 == 3)
			nb = 0; /* nothing between */
		for (size_t i = 0; i < na; i++)
			rand_sample(&rs, &a[i]);
		for (size_t i = 0; i < nb; i++) {
			rand_sample(&rs, &b[i]);
			if (mode == 2 && na) { /* the same shape: counts change only */
				struct sample *o = &a[ts_rand(&rs) % na];
				b[i].d = o->d;
				memcpy(b[i].f, o->f, sizeof(o->f));
			}
		}
		struct st_engine *e = engine(NM, metric_descs, 1 + c % 2, 0);
		feed(e, a, na, 0, NM, false);
		struct st_snap *ea = st_snap_acquire(e);
		if (mode == 0)
			cr_assert(st_reset(e));
		/* Two flushes between: several snapshots were published. */
		feed(e, b, nb / 2, 0, NM, false);
		feed(e, b + nb / 2, nb - nb / 2, 0, NM, false);
		struct st_snap *eb = st_snap_acquire(e);
		char where[64];
		snprintf(where, sizeof(where), "case %u (mode %u, %zu+%zu)", c, mode, na, nb);
		if (mode == 1) {
			/* NULL earlier: everything of later, A and B. */
			memcpy(b + nb, a, na * sizeof(*a));
			expect_all_metrics(NULL, eb, b, nb + na, &rs, where);
		} else {
			expect_all_metrics(ea, eb, b, nb, &rs, where);
		}
		/* Nothing between a snapshot and itself. */
		expect_all_metrics(eb, eb, NULL, 0, &rs, where);
		st_snap_release(ea);
		st_snap_release(eb);
		st_engine_destroy(e);
	}
	free(a);
	free(b);
	cr_expect_gt(saturated_deltas, 0, "no delta had a saturated total");
}

/* Expectation for the node-cap case: every node of later, its self minus
 * that of the node of the same path in earlier (found by name), fed to a
 * fresh engine of every metric (flushed).  The match by name is a linear
 * search over the children, independent of st_snap_child_find(). */
static struct st_engine *by_name(const struct st_snap *ea, const struct st_snap *eb)
{
	struct st_engine *x = engine(NM, metric_descs, 1, 0);
	struct st_writer *w = st_writer_open(x);
	cr_assert(w);
	size_t n = st_snap_node_count(eb);
	uint32_t *stk = malloc(n * sizeof(*stk)), *match = malloc(n * sizeof(*match)),
		 *depth = malloc(n * sizeof(*depth)), *path = malloc((n + 1) * sizeof(*path));
	const char **fr = malloc((n + 1) * sizeof(*fr));
	size_t *lens = malloc((n + 1) * sizeof(*lens)), sp = 0;
	cr_assert(stk && match && depth && path && fr && lens);
	stk[sp++] = ST_NODE_ROOT;
	match[ST_NODE_ROOT] = ST_NODE_ROOT;
	depth[ST_NODE_ROOT] = 0;
	while (sp) {
		uint32_t u = stk[--sp], d = depth[u];
		if (d)
			path[d - 1] = u;
		uint64_t v[NM];
		bool any = false;
		for (unsigned k = 0; k < NM; k++) {
			uint64_t bv = st_snap_self(eb, u, k);
			uint64_t av = match[u] == UINT32_MAX ? 0 : st_snap_self(ea, match[u], k);
			v[k] = bv > av ? bv - av : 0;
			any |= v[k] != 0;
		}
		if (any) {
			for (uint32_t i = 0; i < d; i++)
				fr[i] = st_snap_name(eb, path[i], &lens[i]);
			cr_assert_eq(st_writer_ingest_strs(w, fr, lens, d, v), 0);
		}
		uint32_t first, k = st_snap_children(eb, u, &first);
		for (uint32_t c = first; c < first + k; c++) {
			size_t len;
			const char *nm = st_snap_name(eb, c, &len);
			uint32_t am = UINT32_MAX;
			if (match[u] != UINT32_MAX) {
				uint32_t f0, nc = st_snap_children(ea, match[u], &f0);
				for (uint32_t y = f0; y < f0 + nc; y++) {
					size_t l2;
					const char *n2 = st_snap_name(ea, y, &l2);
					if (l2 == len && memcmp(n2, nm, len) == 0)
						am = y;
				}
			}
			match[c] = am;
			depth[c] = d + 1;
			stk[sp++] = c;
		}
	}
	st_writer_close(w);
	cr_assert(st_flush(x));
	free(stk);
	free(match);
	free(depth);
	free(path);
	free(fr);
	free(lens);
	return x;
}

/* How many nodes of earlier have no node of the same path in later. */
static size_t lost_nodes(const struct st_snap *ea, const struct st_snap *eb)
{
	size_t n = st_snap_node_count(ea), lost = 0;
	uint32_t *m = malloc(n * sizeof(*m));
	cr_assert(m);
	m[ST_NODE_ROOT] = ST_NODE_ROOT;
	for (uint32_t i = 1; i < n; i++) { /* BFS: parents first */
		uint32_t p = m[st_snap_parent(ea, i)];
		uint32_t f = st_snap_frame(ea, i);
		m[i] = p == UINT32_MAX ? UINT32_MAX : st_snap_child_find(eb, p, f);
		lost += m[i] == UINT32_MAX;
	}
	free(m);
	return lost;
}

Test(delta, node_cap_folds_earlier_nodes, .timeout = 120)
{
	uint64_t rs = 77;
	size_t lost = 0;
	for (unsigned c = 0; c < 30; c++) {
		struct st_engine *e = engine(NM, metric_descs, 1, 24 + c);
		struct sample s[120];
		for (size_t i = 0; i < 120; i++)
			rand_sample(&rs, &s[i]);
		feed(e, s, 40, 0, NM, false);
		struct st_snap *ea = st_snap_acquire(e);
		feed(e, s + 40, 80, 0, NM, false);
		struct st_snap *eb = st_snap_acquire(e);
		lost += lost_nodes(ea, eb);
		struct st_engine *x = by_name(ea, eb);
		struct st_snap *xs = st_snap_acquire(x);
		char where[48];
		snprintf(where, sizeof(where), "cap case %u", c);
		expect_same(ea, eb, -1, xs, c % NM, where);
		st_snap_release(xs);
		st_engine_destroy(x);
		st_snap_release(ea);
		st_snap_release(eb);
		st_engine_destroy(e);
	}
	cr_expect_gt(lost, 0, "no case had earlier nodes that later lacks");
}

/* Misuse is refused, not answered with nonsense. */
Test(delta, refuses_bad_arguments)
{
	struct st_engine *e = engine(NM, metric_descs, 1, 0);
	struct st_engine *o = engine(NM, metric_descs, 1, 0);
	struct st_snap *a = st_snap_acquire(e), *b = st_snap_acquire(o);
	errno = 0;
	cr_expect_null(st_snap_delta(a, a, NM));
	cr_expect_eq(errno, EINVAL);
	cr_expect_null(st_snap_delta(a, a, -2));
	cr_expect_null(st_snap_delta(a, NULL, 0));
	errno = 0;
	cr_expect_null(st_snap_delta(a, b, -1), "snapshots of two engines");
	cr_expect_eq(errno, EINVAL);
	struct st_snap *d = st_snap_delta(NULL, a, 1);
	cr_assert(d);
	cr_expect_str_eq(st_snap_metric(d, 0)->name, "bytes");
	cr_expect_eq(st_snap_node_count(d), 1u);
	st_snap_release(d);
	st_snap_release(a);
	st_snap_release(b);
	st_engine_destroy(e);
	st_engine_destroy(o);
}

/* Each allocation failing in turn: -ENOMEM (or a NULL snapshot with errno
 * ENOMEM), never a crash or wrong bytes; ASan checks nothing leaks. */
Test(delta, alloc_failure)
{
	uint64_t rs = 5;
	struct sample s[200];
	for (size_t i = 0; i < 200; i++)
		rand_sample(&rs, &s[i]);
	struct st_engine *e = engine(NM, metric_descs, 1, 0);
	feed(e, s, 100, 0, NM, false);
	struct st_snap *a = st_snap_acquire(e);
	feed(e, s + 100, 100, 0, NM, false);
	struct st_snap *b = st_snap_acquire(e);
	size_t lw;
	struct st_snap *d0 = st_snap_delta(a, b, -1);
	cr_assert(d0);
	char *want = export_bytes(d0, ST_FMT_PPROF, 1, &lw);
	st_snap_release(d0);
	bool done = false;
	for (long k = 0; k < 1000 && !done; k++) {
		st_alloc_fail_after(k);
		errno = 0;
		struct st_snap *d = st_snap_delta(a, b, -1);
		int de = errno;
		st_alloc_fail_after(-1);
		if (!d) {
			cr_assert_eq(de, ENOMEM, "after %ld allocations: errno %d", k, de);
			continue;
		}
		st_snap_release(d);
		char *got = NULL;
		size_t lg;
		FILE *f = open_memstream(&got, &lg);
		cr_assert(f);
		struct st_export_opts eo;
		st_export_opts_init(&eo);
		eo.metric = 1;
		uint64_t total = 7;
		st_alloc_fail_after(k);
		int r = st_export_delta(a, b, -1, ST_FMT_PPROF, &eo, f, &total);
		st_alloc_fail_after(-1);
		fclose(f);
		if (r) {
			cr_assert_eq(r, -ENOMEM, "after %ld allocations: %d", k, r);
			cr_assert_eq(total, 0);
		} else {
			cr_assert(lg == lw && memcmp(got, want, lw) == 0, "after %ld allocations", k);
			done = true;
		}
		free(got);
	}
	cr_expect(done, "st_export_delta never succeeded");
	free(want);
	st_snap_release(a);
	st_snap_release(b);
	st_engine_destroy(e);
}
