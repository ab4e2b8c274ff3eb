/* SPDX-License-Identifier: MIT */
/*
 * d3.c - two JSON shapes read by browser flamegraph tools:
 *
 *   d3-flame-graph   {"name":"root","value":TOTAL,"children":[{...}]}
 *                    value inclusive; children in name order, omitted
 *                    when empty.
 *   speedscope       {"$schema":..., "shared":{"frames":[{"name":..}]},
 *                    "profiles":[{"type":"sampled", ..., "samples":[[root
 *                    first frame indexes]], "weights":[self]}], ...}
 *                    one sample per node with a self value, in DFS order.
 * Both walk iteratively (stacks are up to 65536 deep) and JSON-escape every
 * name the way Go's encoding/json does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "write.h"

int st_export_d3(const struct st_snap *s, const struct st_export_opts *o, FILE *out)
{
	struct st_xtree t;
	int rc = st_xtree_build(&t, s, NULL, o->metric, o->reverse);
	if (rc)
		return rc;
	/* Stack entries: node index, or node|CLOSE to close its children. */
	const uint64_t CLOSE = 1ull << 32;
	uint64_t *stk = st_malloc(2 * t.count * sizeof(*stk) + sizeof(*stk));
	size_t sp = 0;
	if (!stk) {
		rc = -ENOMEM;
		goto out;
	}
	stk[sp++] = 0;
	bool need_comma = false;
	while (sp) {
		uint64_t e = stk[--sp];
		if (e & CLOSE) {
			fputs("]}", out);
			need_comma = true;
			continue;
		}
		const struct st_xnode *x = &t.n[(uint32_t)e];
		if (need_comma)
			putc(',', out);
		fputs("{\"name\":\"", out);
		if ((uint32_t)e == 0)
			fputs("root", out);
		else
			st_json_escape(out, x->name, x->len);
		fprintf(out, "\",\"value\":%" PRIu64, x->total[0]);
		if (!x->nkids) {
			putc('}', out);
			need_comma = true;
			continue;
		}
		fputs(",\"children\":[", out);
		need_comma = false;
		stk[sp++] = e | CLOSE;
		for (uint32_t k = x->nkids; k-- > 0;)
			stk[sp++] = t.kids[x->first + k];
	}
	putc('\n', out);
out:
	st_free(stk);
	st_xtree_free(&t);
	return rc;
}

/* speedscope's "unit" for st_export_units(): its own time units and
 * "bytes"; Pyroscope's "lock_nanoseconds" is nanoseconds; every count
 * (samples, objects, ...) is "none", shown as a plain number. */
static const char *speedscope_unit(const char *u)
{
	static const char *const known[] = { "nanoseconds", "microseconds", "milliseconds",
					     "seconds", "bytes" };
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(u, known[i]) == 0)
			return known[i];
	return strcmp(u, "lock_nanoseconds") ? "none" : "nanoseconds";
}

int st_export_speedscope(const struct st_snap *s, const struct st_export_opts *o, FILE *out)
{
	struct st_xtree t;
	int rc = st_xtree_build(&t, s, NULL, o->metric, false);
	if (rc)
		return rc;
	struct st_names nm = { 0 };
	uint32_t *fidx = st_malloc(t.count * sizeof(*fidx));
	uint32_t *stk = st_malloc(t.count * sizeof(*stk));
	uint32_t *path = st_malloc(t.count * sizeof(*path)); /* frame indexes root first */
	uint32_t *depth = st_malloc(t.count * sizeof(*depth));
	if (!fidx || !stk || !path || !depth) {
		rc = -ENOMEM;
		goto out;
	}
	/* Frame index of every node, names in DFS first-seen order. */
	for (size_t i = 1; i < t.count; i++) {
		rc = st_names_get(&nm, t.n[i].name, t.n[i].len, &fidx[i]);
		if (rc)
			goto out;
	}
	fputs("{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",\"shared\":{\"frames\":[", out);
	for (size_t i = 0; i < nm.n; i++) {
		fputs(i ? ",{\"name\":\"" : "{\"name\":\"", out);
		st_json_escape(out, nm.name[i], nm.len[i]);
		fputs("\"}", out);
	}
	const char *name = o->app_name ? o->app_name : o->title ? o->title : "shardtrie";
	fputs("]},\"profiles\":[{\"type\":\"sampled\",\"name\":\"", out);
	st_json_escape(out, name, strlen(name));
	fprintf(out, "\",\"unit\":\"%s\",\"startValue\":0,\"endValue\":%" PRIu64 ",\"samples\":[",
		speedscope_unit(st_export_units(s, o)), t.n[0].total[0]);
	/* Pass 1: samples; pass 2: weights, in the same DFS order. */
	for (int pass = 0; pass < 2; pass++) {
		size_t sp = 0;
		bool first = true;
		stk[sp++] = 0;
		depth[0] = 0;
		while (sp) {
			uint32_t u = stk[--sp];
			const struct st_xnode *x = &t.n[u];
			uint32_t d = depth[u];
			if (u)
				path[d - 1] = fidx[u];
			if (u && x->self[0]) {
				if (!first)
					putc(',', out);
				first = false;
				if (pass == 0) {
					putc('[', out);
					for (uint32_t k = 0; k < d; k++)
						fprintf(out, k ? ",%" PRIu32 : "%" PRIu32, path[k]);
					putc(']', out);
				} else {
					fprintf(out, "%" PRIu64, x->self[0]);
				}
			}
			for (uint32_t k = x->nkids; k-- > 0;) {
				uint32_t c = t.kids[x->first + k];
				depth[c] = d + 1;
				stk[sp++] = c;
			}
		}
		if (pass == 0)
			fputs("],\"weights\":[", out);
	}
	fputs("]}],\"activeProfileIndex\":0,\"exporter\":\"shardtrie@0.1\",\"name\":\"", out);
	st_json_escape(out, name, strlen(name));
	fputs("\"}\n", out);
out:
	st_free(fidx);
	st_free(stk);
	st_free(path);
	st_free(depth);
	st_names_free(&nm);
	st_xtree_free(&t);
	return rc;
}
