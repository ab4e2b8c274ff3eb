/* SPDX-License-Identifier: MIT */
/*
 * export_cut.c - the cost of the live server's cut exports (issue 17): one
 * snapshot of the hot workload (bench/workload.c, ~165 K nodes), encoded
 * again and again as
 *
 *   fb     flamebearer, max_nodes=1024    (/api/snapshot?format=flamebearer&max_nodes=1024)
 *   json   ior json, min_fraction=0.001   (/api/snapshot?format=json&min_fraction=0.001)
 *   fb16k  flamebearer, max_nodes=16384   (a larger cut)
 *   fball  flamebearer, no cut            (the whole snapshot written)
 *
 * each into a fresh open_memstream(), as the server's cache does.  Rounds
 * alternate fb, json; per format the median, p99 and max wall time of one
 * st_export(), the output size and an XXH64 of the bytes (two builds must
 * print the same hashes: byte-identical output).
 *
 * usage: export_cut [ROUNDS]        (default 200)
 *        export_cut -1 NAME         one encode of cut NAME, for
 *            valgrind --tool=callgrind --toggle-collect=st_export export_cut -1 fb
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "shardtrie_export.h"
#include "../util.h"
#include "../workload.h"

struct cut {
	const char *name;
	int fmt;
	int64_t max_nodes;
	double min_fraction;
};

static const struct cut cuts[] = {
	{ "fb", ST_FMT_FLAMEBEARER, 1024, 0 },
	{ "json", ST_FMT_JSON, -1, 0.001 },
	{ "fb16k", ST_FMT_FLAMEBEARER, 16384, 0 },
	{ "fball", ST_FMT_FLAMEBEARER, -1, 0 },
};
enum { NCUTS = sizeof(cuts) / sizeof(cuts[0]) };

/* One encode of s as c: seconds, *len bytes, *hash of them. */
static double encode(const struct st_snap *s, const struct cut *c, size_t *len, uint64_t *hash)
{
	struct st_export_opts o;
	st_export_opts_init(&o);
	o.max_nodes = c->max_nodes;
	o.min_fraction = c->min_fraction;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (!f) {
		perror("export_cut: open_memstream");
		exit(2);
	}
	double a = bench_now();
	int rc = st_export(s, c->fmt, &o, f);
	double b = bench_now();
	if (fclose(f) || rc) {
		fprintf(stderr, "export_cut: %s: st_export: %d\n", c->name, rc);
		exit(1);
	}
	*hash = XXH64(buf, *len, 0);
	free(buf);
	return b - a;
}

static struct st_snap *hot_snapshot(struct workload *w, struct st_engine **ep)
{
	if (wl_hot(w, 32, 10000, 1.0, 1u << 20, 0x5eedf00dULL) || !wl_draws(w, 0))
		exit(2);
	struct st_engine *e = bench_engine(w, 0);
	struct st_writer *wr = st_writer_open(e);
	struct st_sample buf[BENCH_BATCH];
	if (!wr)
		exit(2);
	for (size_t i = 0; i < w->samples; i += BENCH_BATCH) {
		size_t k = w->samples - i < BENCH_BATCH ? w->samples - i : BENCH_BATCH;
		bench_fill_batch(w, w->draws[0] + i, k, buf);
		if (st_writer_ingest_batch(wr, buf, k) != (long)k) {
			fprintf(stderr, "export_cut: ingest failed\n");
			exit(1);
		}
	}
	st_writer_close(wr);
	if (!st_flush(e))
		exit(1);
	*ep = e;
	return st_snap_acquire(e);
}

int main(int argc, char **argv)
{
	int one = -1;
	long rounds = 200;
	if (argc == 3 && !strcmp(argv[1], "-1")) {
		for (int i = 0; i < NCUTS; i++)
			if (!strcmp(argv[2], cuts[i].name))
				one = i;
		if (one < 0) {
			fprintf(stderr, "usage: export_cut [ROUNDS] | -1 fb|json|fb16k|fball\n");
			return 2;
		}
	} else if (argc == 2) {
		rounds = strtol(argv[1], NULL, 10);
	}
	if (rounds < 1 || argc > 3) {
		fprintf(stderr, "usage: export_cut [ROUNDS] | -1 fb|json|fb16k|fball\n");
		return 2;
	}
	static struct workload w;
	struct st_engine *e;
	struct st_snap *s = hot_snapshot(&w, &e);
	size_t len;
	uint64_t hash;
	if (one >= 0) {
		encode(s, &cuts[one], &len, &hash);
		printf("%s: %zu bytes, xxh64 %016" PRIx64 "\n", cuts[one].name, len, hash);
	} else {
		printf("snapshot: %zu nodes, root total %" PRIu64 "; %ld rounds\n",
		       st_snap_node_count(s), st_snap_total(s, ST_NODE_ROOT, 0), rounds);
		double *t[NCUTS];
		size_t l0[NCUTS];
		uint64_t h0[NCUTS];
		for (int i = 0; i < NCUTS; i++) {
			t[i] = malloc((size_t)rounds * sizeof(double));
			if (!t[i])
				return 2;
			encode(s, &cuts[i], &l0[i], &h0[i]); /* warm-up, and the bytes */
		}
		for (long r = 0; r < rounds; r++)
			for (int i = 0; i < NCUTS; i++) {
				t[i][r] = encode(s, &cuts[i], &len, &hash);
				if (len != l0[i] || hash != h0[i]) {
					fprintf(stderr, "export_cut: %s: output changed\n", cuts[i].name);
					return 1;
				}
			}
		for (int i = 0; i < NCUTS; i++) {
			double med = bench_median(t[i], (size_t)rounds); /* sorts */
			printf("%-6s median %8.3f ms  p99 %8.3f ms  max %8.3f ms  %8zu bytes  xxh64 %016" PRIx64
			       "\n",
			       cuts[i].name, med * 1e3, bench_pct(t[i], (size_t)rounds, 0.99) * 1e3,
			       t[i][rounds - 1] * 1e3, l0[i], h0[i]);
			free(t[i]);
		}
	}
	st_snap_release(s);
	st_engine_destroy(e);
	wl_free(&w);
	return 0;
}
