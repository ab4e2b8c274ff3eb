/* SPDX-License-Identifier: MIT */
/*
 * costs.c - what the engine costs beside ingest (the method's step 4):
 * snapshot impact, publish latency, memory per node and merge cost.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "util.h"

/* ------------------------------------------------------------ snapshot impact */

/* One back-to-back pair, 1 writer: merger every 10 ms, then merger idle;
 * each run warmed by two flushed passes so that it times the steady state. */
static void impact_pair(struct workload *W, enum variant v, unsigned passes, struct impact *im)
{
	struct result r;
	if (im->n >= 64)
		return;
	run_warm(W, v, 1, 10, 2, passes, NULL, &r);
	record(W_HOT, v, 1, 10, (unsigned)im->n + 1, &r, "snap");
	im->with[im->n] = mps(&r);
	run_warm(W, v, 1, 0, 2, passes, NULL, &r);
	record(W_HOT, v, 1, 0, (unsigned)im->n + 1, &r, "snap");
	im->without[im->n] = mps(&r);
	im->drop[im->n] = im->without[im->n] > 0 ? 1.0 - im->with[im->n] / im->without[im->n] : 0;
	im->n++;
}

static void impact_done(struct impact *im)
{
	im->med = bench_median(im->drop, im->n);
	im->q1 = bench_pct(im->drop, im->n, 0.25);
	im->q3 = bench_pct(im->drop, im->n, 0.75);
	im->mwith = bench_median(im->with, im->n);
	im->mwithout = bench_median(im->without, im->n);
}

void impact_print(const struct impact *im, const char *what)
{
	printf("  %s: merger every 10 ms %.2f M/s, merger idle %.2f M/s (medians of %zu pairs); "
	       "per-pair drop median %.3f, IQR %.3f..%.3f\n",
	       what, im->mwith, im->mwithout, im->n, im->med, im->q1, im->q3);
}

/* The host's speed drifts by more than the effect measured, and a pair
 * shares the host's state of the moment, so the figure is the median over
 * pairs of each pair's drop (with its interquartile range), not a ratio of
 * two medians taken over different moments.  Measured for the batch API
 * (the SUMMARY's figure, like every hot key) and for one call per sample,
 * which cannot overlap its cache misses and so feels the merger's traffic
 * more; the two kinds of pair alternate. */
void snapshot_impact(struct workload *hot, struct snap_cost *sc)
{
	sc->passes = cfg.short_mode ? 2 : 8;
	unsigned npairs = cfg.reps * (cfg.short_mode ? 2 : 3);
	npairs = npairs > 63 ? 63 : npairs;
	for (unsigned k = 0; k < npairs; k++) {
		impact_pair(hot, V_BATCH, sc->passes, &sc->batch);
		if (!cfg.short_mode || k % 2 == 0) /* short: half as many */
			impact_pair(hot, V_ENGINE, sc->passes, &sc->one_call);
	}
	impact_done(&sc->batch);
	impact_done(&sc->one_call);
}

/* ------------------------------------------------------------ publish latency */

static void latency_of(struct flusher *fl, struct latency *lat)
{
	lat->p50_ms = bench_pct(fl->lat, fl->n, 0.50) * 1e3;
	lat->p99_ms = bench_pct(fl->lat, fl->n, 0.99) * 1e3;
	lat->n = fl->n;
}

/* Hot, one writer, merger idle, a flusher calling st_flush() every 10 ms. */
void hot_latency(struct workload *hot, struct snap_cost *sc)
{
	struct result r;
	sc->fl.period_ms = 10;
	sc->fl.cap = 100000;
	sc->fl.lat = calloc(sc->fl.cap, sizeof(double));
	run_once(hot, V_ENGINE, 1, 0, sc->passes, &sc->fl, &r);
	record(W_HOT, V_ENGINE, 1, 0, 1, &r, "latency");
	sc->hot_ingest_mps = mps(&r);
	latency_of(&sc->fl, &sc->hot);
	sc->hot_nodes = r.st.nodes;
}

/* Cold (a growing trie), the same flusher; full mode only (the short mode
 * reports zeros). */
void cold_latency(struct workload *cold, struct snap_cost *sc, struct mem_cost *mc)
{
	struct result r;
	sc->fl.n = 0;
	if (!cfg.short_mode) {
		run_once(cold, V_ENGINE, 1, 0, 1, &sc->fl, &r);
		record(W_COLD, V_ENGINE, 1, 0, 2, &r, "latency");
	}
	latency_of(&sc->fl, &mc->cold);
}

/* ------------------------------------------------------------ memory */

static long proc_status_kb(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	size_t kl = strlen(key);
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static void reset_peak_rss(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");
	if (f) {
		fputs("5", f); /* resets VmHWM to the current RSS */
		fclose(f);
	}
}

static double per_node(size_t bytes, size_t nodes)
{
	return nodes ? (double)bytes / (double)nodes : 0;
}

/* Cold, one writer, merger idle, so the single final st_flush() folds all
 * 1 M records and builds the snapshot. */
void memory_cost(struct workload *cold, struct mem_cost *mc)
{
	struct result r;
	wl_draws(cold, 0);
	mc->rss_base = proc_status_kb("VmRSS");
	reset_peak_rss();
	run_once(cold, V_ENGINE, 1, 0, 1, NULL, &r);
	record(W_COLD, V_ENGINE, 1, 0, 1, &r, "memory");
	mc->rss_hwm = proc_status_kb("VmHWM");
	mc->st = r.st;
	size_t nodes = mc->st.nodes;
	mc->merge_ns_per_node = nodes ? r.flush_secs * 1e9 / (double)nodes : 0;
	mc->bpn_master = per_node(mc->st.mem_master, nodes);
	mc->bpn_snap = per_node(mc->st.mem_snapshot, nodes);
	mc->bytes_per_node = mc->bpn_master + mc->bpn_snap;
	mc->shard_mib = (double)mc->st.mem_shards / 1048576.0;
	mc->flush_s = r.flush_secs;
	mc->records = cold->samples;
	mc->expect_nodes = cold->expect_nodes;
}
