/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what the harness's files share (docs/benchmarking.md).
 *
 *   bench.c     main: the workloads' steps in order, --only stops
 *   options.c   command line, configuration, thread counts
 *   run.c       one run: pinned threads, the variants' ingest loops, the
 *               flusher thread, the lost-sample check
 *   scaling.c   the scaling tables: runs.csv, the cells and their medians
 *   costs.c     snapshot impact (wall clock), publish latency, memory and
 *               merge cost
 *   snapcpu.c   snapshot impact on the writer's CPU: writer and merger
 *               pinned apart, the merger's CPU as a share of one core
 *   merge.c     merge scaling (1 and 2 merge workers), per-record costs
 *               and the scaling model printed from them
 *   live_load.c ingest with 0 clients vs 42 clients of the live server
 *               (32 SSE, 8 pollers, 2 pprof scrapers; libcurl)
 *   report.c    results.csv/.json, the plot, the notes and the SUMMARY line
 */
#ifndef BENCH_BENCH_H
#define BENCH_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "shardtrie.h"
#include "workload.h"

/* ------------------------------------------------------------ names */

enum variant { V_ENGINE, V_BATCH, V_MUTEX, V_FLOOR, NVARIANTS };
enum wl_id { W_HOT, W_COLD, W_STRINGS, W_REPLAY, NWL };
extern const char *const vname[NVARIANTS];
extern const char *const wlname[NWL];

#define MAXT 64 /* thread counts, and repetitions kept per cell */

/* ------------------------------------------------------------ options.c */

struct config {
	int short_mode;
	unsigned reps;
	unsigned depth;
	size_t hot_samples, cold_samples, str_samples, mutex_div;
	const char *replay;
	const char *outdir;
	uint64_t seed;
	unsigned max_threads;
	const char *only;    /* profiling: run just this workload (or "snap") */
	const char *variant; /* profiling: and just this variant */
	const char *seed_line; /* --seed-line: a file with bench/seed's SEED line */
	const char *push_line; /* --push-line: a file with bench/push's PUSH_COST line */
	/* Derived by options_parse(). */
	unsigned ncpu;       /* online CPUs */
	unsigned nmax;       /* N: the largest thread count but the oversubscribed 2N */
	unsigned tcounts[MAXT]; /* 1..N and 2N */
	unsigned ntcounts;
};
extern struct config cfg;

/* What options_parse() returns when main should go on; else the exit status. */
enum { OPTIONS_RUN = -1 };
int options_parse(int argc, char **argv);
/* --only WHAT: true when WHAT is given and equal to `name`. */
bool only_is(const char *name);
/* --variant: true when v's cells are to run. */
bool variant_wanted(enum variant v);

/* ------------------------------------------------------------ run.c */

struct result {
	double secs;       /* ingest span */
	double e2e_secs;   /* ingest span + the final flush (engine) */
	double flush_secs;
	double cpu_secs;   /* summed over the ingest threads */
	uint64_t samples;
	uint64_t lost;
	struct st_stats st;
};

double mps(const struct result *r);
double mps_cpu(const struct result *r);
double mps_e2e(const struct result *r);

/* A thread that calls st_flush() every period_ms while writers run and
 * records each call's latency (merge + snapshot build + publish). */
struct flusher {
	struct st_engine *e;
	unsigned period_ms;
	atomic_int *stop;
	double *lat;
	size_t n, cap;
	pthread_t tid;
};

/* Run W with variant v on nthreads threads: `warm` untimed passes first
 * (each followed by st_flush()), then `passes` timed ones.  merge_ms is the
 * engine's merger period; with fl a pinned flusher publishes on its period
 * and records latencies.  res's samples and times are the timed passes',
 * its `lost` covers everything ingested. */
void run_warm(struct workload *W, enum variant v, unsigned nthreads, unsigned merge_ms,
	      unsigned warm, unsigned passes, struct flusher *fl, struct result *res);
void run_once(struct workload *W, enum variant v, unsigned nthreads, unsigned merge_ms,
	      unsigned passes, struct flusher *fl, struct result *res);
/* One walk of d[0..n) of W through writer w: the batch API (64 per call)
 * or one call per sample.  Returns the samples not taken. */
uint64_t bench_ingest_pass(struct workload *W, struct st_writer *w, const uint32_t *d, size_t n,
			   bool batch);
/* st_flush(e), then the root total and st_engine_stats() (into *st)
 * against `expected` samples: what is missing, extra or dropped. */
uint64_t bench_engine_check(struct st_engine *e, uint64_t expected, struct st_stats *st);

/* ------------------------------------------------------------ scaling.c */

/* Open <outdir>/runs.csv and write its header: 0, or -1 after a message. */
int runs_open(void);
void runs_close(void);
/* Samples lost over every run recorded so far. */
uint64_t lost_total(void);
/* One run into runs.csv, and into the scaling cells unless `kind` names
 * another purpose (warmup, snap, latency, memory). */
void record(enum wl_id wi, enum variant v, unsigned t, unsigned merge_ms, unsigned rep,
	    const struct result *r, const char *kind);
/* The scaling table of workload wi: a warm-up per variant, then cfg.reps
 * repetitions over the thread counts up to max_t. */
void scaling(enum wl_id wi, struct workload *W, const enum variant *vs, size_t nv,
	     unsigned max_t);

enum cell_rate { RATE_WALL, RATE_E2E, RATE_CPU };
/* Median of one cell's repetitions (0 when it did not run). */
double cell_med(enum wl_id wi, enum variant v, unsigned t, enum cell_rate what);
/* The same for workload wi's steady-state cell (engine_batch, 1 thread,
 * two flushed warm passes first), run in each repetition of its table. */
double ss_med(enum wl_id wi, enum cell_rate what);
/* The table on stdout, and the medians as CSV rows when rc is not NULL. */
void print_table(FILE *rc);
/* hot_threads.dat: the hot medians, one column per variant. */
void write_hot_dat(FILE *dat);
/* The "results" array of results.json. */
void write_json_cells(FILE *js);

/* ------------------------------------------------------------ costs.c */

/* Snapshot impact: back-to-back pairs of runs (merger every 10 ms, idle). */
struct impact {
	double with[64], without[64], drop[64];
	size_t n;
	double med, q1, q3;     /* of the per-pair drops */
	double mwith, mwithout; /* medians of the rates */
};

struct latency {
	double p50_ms, p99_ms;
	size_t n;               /* publishes */
};

struct snap_cost {
	unsigned passes;        /* timed passes per run */
	struct impact batch, one_call;
	struct latency hot;
	double hot_ingest_mps;  /* ingest rate while the flusher ran */
	size_t hot_nodes;
	struct flusher fl;
};

struct mem_cost {
	struct st_stats st;     /* cold, one writer, after the final flush */
	long rss_base, rss_hwm; /* KiB */
	double bpn_master, bpn_snap, bytes_per_node;
	double shard_mib;
	double flush_s, merge_ns_per_node;
	size_t records;
	uint64_t expect_nodes;
	struct latency cold;    /* full mode only */
};

void snapshot_impact(struct workload *hot, struct snap_cost *sc);
void impact_print(const struct impact *im, const char *what);
void hot_latency(struct workload *hot, struct snap_cost *sc);
void memory_cost(struct workload *cold, struct mem_cost *mc);
void cold_latency(struct workload *cold, struct snap_cost *sc, struct mem_cost *mc);

/* ------------------------------------------------------------ snapcpu.c */

/* Writer CPU per sample, merger every 10 ms (pinned to CPU 1) against
 * merger idle, 1 pinned writer on CPU 0, pairs in alternating order. */
#define SNAPCPU_MAX 64
struct snap_cpu {
	unsigned passes;            /* timed passes per run */
	size_t n;                   /* pairs */
	double on_ns[SNAPCPU_MAX], off_ns[SNAPCPU_MAX]; /* writer CPU ns/sample */
	double ratio[SNAPCPU_MAX];  /* on / off - 1, per pair */
	double share[SNAPCPU_MAX];  /* merger CPU / wall, merger-on runs */
	double helper_share[SNAPCPU_MAX]; /* its call_rcu thread's CPU / wall */
	double ipis_on[SNAPCPU_MAX], ipis_off[SNAPCPU_MAX]; /* IPIs to CPU 0 per second */
	double fold_share[SNAPCPU_MAX], pub_share[SNAPCPU_MAX]; /* merger wall shares */
	double recs_per_merge[SNAPCPU_MAX], pubs_ps[SNAPCPU_MAX], wall_s[SNAPCPU_MAX];
	double med, q1, q3;         /* of ratio[]: the SUMMARY's snap_impact */
	double med_on_ns, med_off_ns, med_share, share_q1, share_q3, med_helper_share;
	double med_ipis_on, med_ipis_off;
	double med_fold_share, med_pub_share, med_recs_per_merge, med_pubs_ps, med_wall_s;
	size_t nodes;               /* hot trie */
	int pinned;                 /* merger found and pinned to CPU 1 */
	const char *clock;          /* how the merger's CPU was read */
};
void snapshot_cpu(struct workload *hot, struct snap_cpu *sc);
void snapshot_cpu_print(const struct snap_cpu *sc);

/* ------------------------------------------------------------ merge.c */

/* Merge scaling: per engine (merge_workers k, merger idle, 1 pinned
 * writer), 1 M cold stacks then one st_flush (new records, new nodes), the
 * same again (new records onto known nodes), then a kept table's records
 * (linked: one add each), then empty flushes (the fixed cost). */
#define MERGE_MAX_PAIRS 16
struct merge_one {
	double wc_ns;               /* writer CPU ns/sample, cold (new stacks) */
	double mrps;                /* new records folded per second (fold) */
	double new_ns, known_ns, linked_ns; /* fold CPU ns/record, fixed cost out */
	double fixed_ns;            /* one empty fold (wall): flips, a grace period */
	double pub_first_ns, pub_ns; /* publish CPU ns/node: first build, rebuild */
	double flush1_s;            /* the first flush, wall */
	double flush1_cpu_s;        /* ... and the process's CPU meanwhile */
};
struct merge_cost {
	size_t n;                   /* pairs */
	struct merge_one w1[MERGE_MAX_PAIRS], w2[MERGE_MAX_PAIRS];
	struct merge_one m1, m2;    /* medians, field by field */
	double scale[MERGE_MAX_PAIRS], med_scale, q1, q3; /* 2w / 1w per pair */
	size_t nodes, records, linked_stacks;
};
void merge_scaling(struct workload *cold, struct merge_cost *mc);
void merge_print(const struct merge_cost *mc);
/* The scaling model from the measured costs (hot inputs from sc when it ran). */
void merge_model_print(const struct merge_cost *mc, const struct snap_cpu *sc);

/* ------------------------------------------------------------ live_load.c */

#define LIVE_MAX_PAIRS 64
#define LIVE_MAX_LAT 65536

/* One placement's pairs (0 clients, 42 clients) and what the clients saw
 * during the timed spans of the loaded runs. */
struct live_mode {
	double idle[LIVE_MAX_PAIRS], load[LIVE_MAX_PAIRS], drop[LIVE_MAX_PAIRS];
	double idle_cpu[LIVE_MAX_PAIRS], load_cpu[LIVE_MAX_PAIRS], drop_cpu[LIVE_MAX_PAIRS];
	size_t n;
	double med_idle, med_load, med_drop, q1, q3;       /* wall clock */
	double med_idle_cpu, med_load_cpu, med_drop_cpu;  /* per writer CPU-second */
	double loaded_secs;        /* timed seconds of the loaded runs */
	/* Per run kind (0 clients, 42 clients, spin, stream), summed over the pairs:
	 * the writer's voluntary and involuntary context switches and the
	 * IPIs its CPU took, per timed second. */
	double vcsw[4], ivcsw[4], ipis[4];
	/* Pinned only: the control, a spinning thread on CPU 1. */
	double spin_drop[LIVE_MAX_PAIRS], spin_drop_cpu[LIVE_MAX_PAIRS];
	double med_spin_drop, med_spin_drop_cpu;
	/* ... and one copying 2 x 32 MiB back and forth (memory traffic). */
	double stream_drop[LIVE_MAX_PAIRS], stream_drop_cpu[LIVE_MAX_PAIRS];
	double med_stream_drop, med_stream_drop_cpu;
	double *lat;               /* /api/snapshot total times, ms */
	size_t nlat;
	double p50_ms, p99_ms, max_ms;
	uint64_t snaps_200, snaps_304, snap_bytes;
	uint64_t sse_events, sse_bytes, sse_dropped;
	uint64_t encodes;          /* the server's cache encodings (/api/status) */
	uint64_t scrapes, scrape_bytes;
	uint64_t errors;           /* client-side failures: must be 0 */
	uint64_t off_cpu;          /* pinned: other threads allowed on CPU 0 (0) */
};

struct live_cost {
	double span;               /* timed seconds per run */
	unsigned scrape_s;         /* seconds= of each scrape */
	struct live_mode pinned, unpinned;
	double secs;               /* the whole step */
	double load0[3], load1[3]; /* load averages before and after */
	double other_cpus;         /* CPUs other processes kept busy meanwhile */
};

/* cfg.reps (at least 3) pairs pinned and unpinned, interleaved: 0, or -1
 * after a message (the server or the clients could not be set up). */
int live_load(struct workload *hot, struct live_cost *lc);
void live_print(const struct live_cost *lc);
/* The "live" member of results.json (with its trailing comma). */
void live_json(FILE *js, const struct live_cost *lc);
/* Client-side failures over every loaded run. */
uint64_t live_errors(const struct live_cost *lc);

/* ------------------------------------------------------------ report.c */

/* Everything measured outside the scaling tables, for the report. */
struct findings {
	struct workload hot;
	struct snap_cost snap;
	struct snap_cpu snapcpu;
	struct merge_cost merge;
	struct mem_cost mem;
	struct live_cost live;
	size_t str_frames;
	double t_start;
};

/* results.csv, hot_threads.{dat,gp,svg}, results.json, the printed
 * figures and the SUMMARY line: 0, or 2 when the outputs cannot be written. */
int report(const struct findings *f);

#endif
