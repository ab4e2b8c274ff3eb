/* SPDX-License-Identifier: MIT */
/*
 * test_fb_cut.c - the cut exports of a single snapshot (issue 17) against
 * independent expectations, on random trees.
 *
 *   flamebearer  st_export() walks the snapshot in place and finds minVal
 *                best-first; st_export_diff(s, s) goes through the private
 *                xtree of both sides and sorts every value.  Both sides
 *                equal, the "double" document is the "single" one with
 *                each bar's right half (xR, totalR, selfR) added: taking
 *                it out must give the single bytes exactly, for every
 *                max_nodes (none, 0, 1, ..., node count + 1) and metric.
 *   json         parsed back and checked against the snapshot node by node
 *                with the rules of json.c (prune strictly below
 *                min_fraction * root, the 8-largest fallback at depth <= 1,
 *                t and v of every kept node).
 *
 * Both also check the root's numbers against printf's decimal (the writers
 * print numbers their own way), up to UINT64_MAX.
 *
 * Trees: random stacks over a small name pool ("", "other" and names that
 * share prefixes among them), values with many ties, a second metric that is
 * zero on most nodes, and a variant near UINT64_MAX whose totals saturate.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardtrie_export.h"
#include "support/support.h"

TestSuite(fbcut, .timeout = 120);

static const char *const pool[] = { "", "other", "a", "ab", "abc", "b", "main", "f\"<&>", "g" };
enum { NPOOL = sizeof(pool) / sizeof(pool[0]) };

/* A random engine: `samples` stacks of depth 0..maxd over the pool's first
 * `names` names; metric 0 in 1..3 (big: near UINT64_MAX / 4), metric 1
 * mostly 0. */
static struct st_engine *random_engine(uint64_t *seed, unsigned samples, unsigned maxd,
				       unsigned names, bool big)
{
	struct st_options o;
	st_options_init(&o);
	o.merge_interval_ms = 0;
	o.nshards = 1;
	o.nmetrics = 2;
	o.metrics[0] = (struct st_metric_desc){ "count", "samples" };
	o.metrics[1] = (struct st_metric_desc){ "bytes", "bytes" };
	struct st_engine *e = st_engine_create(&o);
	cr_assert(e);
	struct st_writer *w = st_writer_open(e);
	cr_assert(w);
	for (unsigned i = 0; i < samples; i++) {
		const char *fr[16];
		size_t fl[16];
		unsigned d = (unsigned)(ts_rand(seed) % (maxd + 1));
		for (unsigned j = 0; j < d; j++) {
			fr[j] = pool[ts_rand(seed) % names];
			fl[j] = strlen(fr[j]);
		}
		uint64_t v[2] = { 1 + ts_rand(seed) % 3, ts_rand(seed) % 4 == 0 ? ts_rand(seed) % 5 : 0 };
		if (big)
			v[0] = UINT64_MAX / 4 - ts_rand(seed) % 3;
		cr_assert_eq(st_writer_ingest_strs(w, fr, fl, d, v), 0);
	}
	st_writer_close(w);
	cr_assert(st_flush(e));
	return e;
}

static char *export(const struct st_snap *s, const struct st_snap *diff_with,
		    const struct st_export_opts *o, int fmt)
{
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	cr_assert(f);
	int rc = diff_with ? st_export_diff(s, diff_with, fmt, o, f) : st_export(s, fmt, o, f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(rc, 0, "export: %d", rc);
	return buf;
}

/* s[from..) starts with `lit`: the position after it. */
static size_t expect_at(const char *s, size_t from, const char *lit)
{
	cr_assert(!strncmp(s + from, lit, strlen(lit)), "wanted %s at %zu of %s", lit, from, s);
	return from + strlen(lit);
}

/* The "single" document a "double" one of two equal sides stands for. */
static char *single_of_double(const char *d)
{
	char *out = NULL;
	size_t olen;
	FILE *f = open_memstream(&out, &olen);
	cr_assert(f);
	size_t p = expect_at(d, 0, "{\"version\":1,\"flamebearer\":{\"names\":[");
	/* Names are escaped strings: no unescaped quote inside, so the first
	 * `],"levels":[` ends them. */
	const char *lv = strstr(d + p, "],\"levels\":[");
	cr_assert(lv);
	fputs("{\"version\":1,\"flamebearer\":{\"names\":[", f);
	fwrite(d + p, 1, (size_t)(lv - (d + p)), f);
	fputs("],\"levels\":[", f);
	p = (size_t)(lv - d) + strlen("],\"levels\":[");
	for (bool firstl = true; d[p] == '['; firstl = false) {
		fputs(firstl ? "[" : ",[", f);
		p++;
		for (unsigned k = 0; d[p] != ']'; k++) {
			char *end;
			uint64_t v = strtoull(d + p, &end, 10);
			cr_assert(end != d + p, "a number at %zu of %s", p, d);
			/* [xL, totalL, selfL, xR, totalR, selfR, name]: the right
			 * half repeats the left, the single bar is the rest. */
			if (k % 7 < 3 || k % 7 == 6)
				fprintf(f, k ? ",%" PRIu64 : "%" PRIu64, v);
			p = (size_t)(end - d);
			if (d[p] == ',')
				p++;
		}
		putc(']', f);
		p++;
		if (d[p] == ',')
			p++;
	}
	/* numTicks is left + right (saturating): the single one is leftTicks. */
	p = expect_at(d, p, "],\"numTicks\":");
	const char *ms = strstr(d + p, ",\"maxSelf\":");
	const char *meta = strstr(d + p, "},\"metadata\":{\"format\":\"double\"");
	const char *lt = strstr(d + p, ",\"leftTicks\":");
	cr_assert(ms && meta && lt && ms < meta && meta < lt);
	uint64_t left = strtoull(lt + strlen(",\"leftTicks\":"), NULL, 10);
	fprintf(f, "],\"numTicks\":%" PRIu64, left);
	fwrite(ms, 1, (size_t)(meta - ms), f);
	fputs("},\"metadata\":{\"format\":\"single\"", f);
	const char *m0 = meta + strlen("},\"metadata\":{\"format\":\"double\"");
	fwrite(m0, 1, (size_t)(lt - m0), f);
	fputs("}}\n", f);
	cr_assert_eq(fclose(f), 0);
	return out;
}

/* Check the flamebearer cut of s for max_nodes across the range. */
static void check_flamebearer(const struct st_snap *s, const char *what)
{
	int64_t n = (int64_t)st_snap_node_count(s);
	const int64_t cuts[] = { -1, 0, 1, 2, 3, 4, 7, 16, 64, n / 2, n - 1, n, n + 1, 1024 };
	for (unsigned m = 0; m < 2; m++)
		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
			struct st_export_opts o;
			st_export_opts_init(&o);
			o.metric = m;
			o.max_nodes = cuts[i];
			char *single = export(s, NULL, &o, ST_FMT_FLAMEBEARER);
			/* The root bar, in printf's decimal (numbers up to UINT64_MAX). */
			char root[96];
			snprintf(root, sizeof(root), "\"levels\":[[0,%" PRIu64 ",%" PRIu64 ",0]",
				 st_snap_total(s, ST_NODE_ROOT, m), st_snap_self(s, ST_NODE_ROOT, m));
			cr_assert(strstr(single, root), "%s: no %s in %s", what, root, single);
			char *dbl = export(s, s, &o, ST_FMT_FLAMEBEARER);
			char *want = single_of_double(dbl);
			cr_assert_str_eq(single, want,
					 "%s: %" PRId64 " nodes, metric %u, max_nodes %" PRId64 ":\n%s\n%s",
					 what, n, m, cuts[i], single, want);
			free(single);
			free(dbl);
			free(want);
		}
}

/* ---- json: the rules of json.c, checked against the snapshot. */

struct jcheck {
	const struct st_snap *s;
	unsigned m;
	double minf;
	uint64_t root_t;
	size_t kept;
};

static bool passes(const struct jcheck *c, uint32_t node)
{
	return c->root_t == 0 ||
	       !((double)st_snap_total(c->s, node, c->m) / (double)c->root_t < c->minf);
}

/* Is child i of [first, first+n) among the 8 largest (ties: name order)? */
static bool among_largest(const struct jcheck *c, uint32_t first, uint32_t n, uint32_t i)
{
	uint64_t t = st_snap_total(c->s, i, c->m);
	unsigned before = 0;
	for (uint32_t j = first; j < first + n; j++) {
		uint64_t u = st_snap_total(c->s, j, c->m);
		before += u > t || (u == t && j < i);
	}
	return before < 8;
}

/* Node `node` at `depth` against the JSON object j (no recursion into
 * deep stacks here: random trees are at most 13 deep). */
static void check_json_node(struct jcheck *c, uint32_t node, uint32_t depth, json_t *j)
{
	size_t len;
	const char *name = st_snap_name(c->s, node, &len);
	json_t *n = json_object_get(j, "n"), *kids = json_object_get(j, "c");
	cr_assert(json_is_string(n));
	if (node == ST_NODE_ROOT)
		cr_assert_eq(json_string_length(n), 0);
	else
		cr_assert(json_string_length(n) == len && !memcmp(json_string_value(n), name, len));
	cr_assert_eq((uint64_t)json_integer_value(json_object_get(j, "v")),
		     st_snap_self(c->s, node, c->m));
	cr_assert_eq((uint64_t)json_integer_value(json_object_get(j, "t")),
		     st_snap_total(c->s, node, c->m));
	c->kept++;
	uint32_t first, nk = st_snap_children(c->s, node, &first);
	bool some = false;
	for (uint32_t i = first; i < first + nk; i++)
		some |= passes(c, i);
	bool fallback = depth <= 1 && nk && !some;
	size_t k = 0;
	for (uint32_t i = first; i < first + nk; i++) {
		if (!(fallback ? among_largest(c, first, nk, i) : passes(c, i)))
			continue;
		cr_assert(json_is_array(kids) && k < json_array_size(kids), "node %u: child %u missing",
			  node, i);
		check_json_node(c, i, depth + 1, json_array_get(kids, k++));
	}
	if (kids)
		cr_assert(k > 0 && k == json_array_size(kids), "node %u: extra children", node);
}

static void check_json(const struct st_snap *s, const char *what, bool big)
{
	const double fr[] = { 0, 1e-9, 0.001, 0.01, 0.05, 0.2, 0.5, 1 };
	for (unsigned m = 0; m < 2; m++)
		for (size_t i = 0; i < sizeof(fr) / sizeof(fr[0]); i++) {
			struct st_export_opts o;
			st_export_opts_init(&o);
			o.metric = m;
			o.min_fraction = fr[i];
			char *got = export(s, NULL, &o, ST_FMT_JSON);
			char root[96];
			snprintf(root, sizeof(root), "{\"n\":\"\",\"v\":%" PRIu64 ",\"t\":%" PRIu64,
				 st_snap_self(s, ST_NODE_ROOT, m), st_snap_total(s, ST_NODE_ROOT, m));
			cr_assert(!strncmp(got, root, strlen(root)), "%s: %s does not start with %s",
				  what, got, root);
			if (big) { /* jansson reads integers up to INT64_MAX */
				free(got);
				continue;
			}
			json_error_t err;
			json_t *j = json_loads(got, 0, &err);
			cr_assert(j, "%s: %s", what, err.text);
			struct jcheck c = { s, m, fr[i], st_snap_total(s, ST_NODE_ROOT, m), 0 };
			check_json_node(&c, ST_NODE_ROOT, 0, j);
			json_decref(j);
			free(got);
		}
}

Test(fbcut, random_trees_match_the_full_tree_path)
{
	uint64_t seed = 0x17f1a3eb;
	const struct {
		unsigned samples, maxd, names;
	} shapes[] = { { 0, 0, 1 },  { 1, 0, 1 },	{ 1, 3, 2 },	{ 5, 2, 3 },
		       { 40, 4, 9 }, { 200, 12, 9 }, { 400, 2, 9 }, { 2000, 8, 4 },
		       { 3000, 12, 9 } };
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		for (int big = 0; big < 2; big++) {
			struct st_engine *e = random_engine(&seed, shapes[i].samples, shapes[i].maxd,
							    shapes[i].names, big);
			struct st_snap *s = st_snap_acquire(e);
			char what[64];
			snprintf(what, sizeof(what), "shape %zu%s", i, big ? " (saturating)" : "");
			check_flamebearer(s, what);
			check_json(s, what, big);
			st_snap_release(s);
			st_engine_destroy(e);
		}
}
