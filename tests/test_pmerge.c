/* SPDX-License-Identifier: MIT */
/*
 * test_pmerge.c - the partitioned master and its merge pool (merger.c):
 * with 1..4 merge workers the published snapshot is exactly the reference
 * trie's (canonical dump), the folded export is byte-equal to a one-worker
 * engine's, and totals stay exact when allocations fail mid-merge.
 *
 * Workloads: several writer threads, stacks sharing prefixes (few names
 * near the root, many deep down: every partition holds the top levels, so
 * the publish must merge them by name), names of varied lengths (name
 * order differs from id order), hot stacks repeated across rounds (linked
 * folds) and fresh ones (walks), flushes during ingest, resets between
 * phases.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/support.h"
#include "support/threads.h"

enum { WRITERS = 3, MAXD = 24, HOT = 400 };

static struct st_engine *mk_workers_nm(unsigned workers, unsigned interval_ms, unsigned nm)
{
	struct st_options o;
	st_options_init(&o);
	o.merge_interval_ms = interval_ms;
	o.nshards = 4;
	o.nmetrics = nm;
	o.metrics[1].name = "bytes";
	o.merge_workers = workers;
	struct st_engine *e = st_engine_create(&o);
	cr_assert_not_null(e, "st_engine_create(workers %u): %s", workers, strerror(errno));
	return e;
}

static struct st_engine *mk_workers(unsigned workers, unsigned interval_ms)
{
	return mk_workers_nm(workers, interval_ms, 2);
}

/* Frame name for level d, choice x: few choices near the root. */
static size_t frame_name(char *buf, size_t n, uint32_t d, uint64_t x)
{
	static const char *const pre[] = { "a", "main", "zz_top", "B", "lib_c_start", "m" };
	return (size_t)snprintf(buf, n, "%s%u_%llx", pre[x % 6], d, (unsigned long long)x);
}

/* Stack number k of a workload: a pure function of (seed, k). */
static size_t make_stack(uint64_t seed, uint64_t k, char names[MAXD][48], const char **fr,
			 size_t *ln)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ULL + k;
	size_t depth = 1 + ts_rand(&s) % MAXD;
	for (size_t d = 0; d < depth; d++) {
		uint64_t choices = d < 2 ? 3 : d < 5 ? 7 : 300;
		ln[d] = frame_name(names[d], sizeof(names[d]), (uint32_t)d, ts_rand(&s) % choices);
		fr[d] = names[d];
	}
	return depth;
}

struct wl {
	struct st_engine *e[2]; /* the engine under test, and a second (or NULL) */
	struct st_ref *ref;
	uint64_t seed;
	unsigned phase;
	unsigned per_writer;
	bool hot_only; /* only stacks of the hot set: counts change, shapes do not */
	int errors; /* atomic via __atomic builtins */
};

struct warg {
	struct wl *wl;
	unsigned id;
};

static void *writer_main(void *arg)
{
	struct warg *a = arg;
	struct wl *wl = a->wl;
	struct st_writer *w[2] = { st_writer_open(wl->e[0]), wl->e[1] ? st_writer_open(wl->e[1]) : NULL };
	char names[MAXD][48];
	const char *fr[MAXD];
	size_t ln[MAXD];
	uint64_t s = wl->seed ^ ((uint64_t)a->id << 40) ^ ((uint64_t)wl->phase << 20);
	for (unsigned i = 0; i < wl->per_writer; i++) {
		/* Half hot (the same stacks every phase: linked folds), half
		 * fresh (walks). */
		uint64_t r = ts_rand(&s);
		uint64_t k = r & 1 || wl->hot_only ? r % HOT : HOT + ts_rand(&s);
		size_t d = make_stack(wl->seed, k, names, fr, ln);
		uint64_t v[2] = { 1, r % 1000 };
		int bad = !w[0] || st_writer_ingest_strs(w[0], fr, ln, d, v) != 0;
		if (w[1])
			bad |= st_writer_ingest_strs(w[1], fr, ln, d, v) != 0;
		bad |= st_ref_add(wl->ref, fr, ln, d, v) != 0;
		if (bad)
			__atomic_fetch_add(&wl->errors, 1, __ATOMIC_RELAXED);
	}
	st_writer_close(w[0]);
	if (w[1])
		st_writer_close(w[1]);
	return NULL;
}

/* One phase: WRITERS threads ingest while this thread flushes now and then. */
static void run_phase(struct wl *wl)
{
	pthread_t t[WRITERS];
	struct warg a[WRITERS];
	for (unsigned i = 0; i < WRITERS; i++) {
		a[i] = (struct warg){ wl, i };
		cr_assert_eq(pthread_create(&t[i], NULL, writer_main, &a[i]), 0);
	}
	for (int i = 0; i < 5; i++)
		cr_assert_neq(st_flush(wl->e[0]), 0); /* folds while writers write */
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(wl->errors, 0);
	wl->phase++;
}

static char *export_folded(struct st_engine *e, unsigned metric)
{
	st_flush(e);
	struct st_snap *s = st_snap_acquire(e);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cr_assert_not_null(f);
	struct st_export_opts o;
	st_export_opts_init(&o);
	o.metric = metric;
	cr_assert_eq(st_export(s, ST_FMT_FOLDED, &o, f), 0);
	fclose(f);
	st_snap_release(s);
	return buf;
}

/* base: stats.ingested at the last reset (the counter is the engine's life's). */
static void check_stats_match(struct st_engine *e, struct st_ref *ref, uint64_t base,
			      const char *where)
{
	struct st_stats st = { .size = sizeof(st) };
	st_engine_stats(e, &st);
	struct st_snap *s = st_snap_acquire(e);
	cr_expect_eq(st.nodes, st_snap_node_count(s), "%s: stats.nodes %llu, snapshot %zu", where,
		     (unsigned long long)st.nodes, st_snap_node_count(s));
	cr_expect_eq(st.nodes, st_ref_node_count(ref), "%s: nodes %llu, reference %zu", where,
		     (unsigned long long)st.nodes, st_ref_node_count(ref));
	cr_expect_eq(st_snap_total(s, ST_NODE_ROOT, 0), st.ingested - base, "%s", where);
	cr_expect_eq(st.dropped, 0, "%s", where);
	cr_expect_gt(st.mem_master, 0);
	st_snap_release(s);
}

static void workload_nm(unsigned workers, uint64_t seed, unsigned nm)
{
	struct wl wl = { .seed = seed, .per_writer = 6000 };
	wl.e[0] = mk_workers_nm(workers, 0, nm);
	wl.e[1] = mk_workers_nm(1, 0, nm); /* the one-worker engine, for the export */
	wl.ref = st_ref_create(nm, 0);
	cr_assert_not_null(wl.ref);
	cr_expect_eq(ts_threads_named("st-merge-", true, NULL, 0), workers - 1,
		     "workers %u: pool threads", workers);
	uint64_t base = 0;
	static const bool reset_after[] = { false, true, false, false, true, false };
	for (unsigned ph = 0; ph < sizeof(reset_after) / sizeof(*reset_after); ph++) {
		run_phase(&wl);
		char where[64];
		snprintf(where, sizeof(where), "workers %u seed %llu phase %u", workers,
			 (unsigned long long)seed, ph);
		ts_assert_matches_ref(wl.e[0], wl.ref, "%s", where);
		check_stats_match(wl.e[0], wl.ref, base, where);
		/* Known stacks only (every hot one came up in this phase): the
		 * same shapes, new counts, the publish's fast path. */
		wl.hot_only = true;
		run_phase(&wl);
		wl.hot_only = false;
		ts_assert_matches_ref(wl.e[0], wl.ref, "%s (same shape)", where);
		for (unsigned m = 0; m < nm; m++) {
			char *a = export_folded(wl.e[0], m), *b = export_folded(wl.e[1], m);
			cr_assert_str_eq(a, b, "%s metric %u: folded export differs from one worker's",
					 where, m);
			free(a);
			free(b);
		}
		if (reset_after[ph]) {
			cr_assert_neq(st_reset(wl.e[0]), 0);
			st_reset(wl.e[1]);
			st_ref_reset(wl.ref);
			struct st_stats st = { .size = sizeof(st) };
			st_engine_stats(wl.e[0], &st);
			base = st.ingested;
		}
	}
	st_engine_destroy(wl.e[0]);
	st_engine_destroy(wl.e[1]);
	st_ref_destroy(wl.ref);
}

static void workload(unsigned workers, uint64_t seed)
{
	workload_nm(workers, seed, 2);
}

Test(pmerge, one_worker_matches_reference) { workload(1, 11); }
Test(pmerge, two_workers_one_metric_match_reference) { workload_nm(2, 15, 1); }
Test(pmerge, two_workers_match_reference) { workload(2, 12); }
Test(pmerge, three_workers_match_reference) { workload(3, 13); }
Test(pmerge, four_workers_match_reference) { workload(4, 14); }
/* The most workers the engine runs (engine.c merge_layout: 16, more are cut
 * to it): ST_PARTS_MAX partitions, fewer than PARTS_PER_WORKER each. */
Test(pmerge, most_workers_fill_every_partition) { workload(16, 16); }
Test(pmerge, more_workers_than_the_most_are_cut)
{
	struct st_engine *e = mk_workers_nm(40, 0, 1);
	cr_expect_eq(ts_threads_named("st-merge-", true, NULL, 0), 15, "pool threads");
	st_engine_destroy(e);
}

/* The merger thread folding (1 ms) while writers write and flushes help. */
Test(pmerge, merger_thread_and_flushes_interleave)
{
	struct wl wl = { .seed = 21, .per_writer = 8000 };
	wl.e[0] = mk_workers(3, 1);
	wl.ref = st_ref_create(2, 0);
	for (unsigned ph = 0; ph < 3; ph++) {
		run_phase(&wl);
		ts_assert_matches_ref(wl.e[0], wl.ref, "phase %u", ph);
	}
	st_engine_destroy(wl.e[0]);
	/* Joined threads leave /proc/self/task once the kernel reaps them,
	 * a moment after pthread_join returns: poll, for 2 s at most. */
	size_t left = ts_threads_named("st-merge-", true, NULL, 0);
	for (int i = 0; left && i < 2000; i++) {
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
		left = ts_threads_named("st-merge-", true, NULL, 0);
	}
	cr_expect_eq(left, 0, "pool threads outlive the engine");
	st_ref_destroy(wl.ref);
}

/* Fail the k-th allocation of a merge: every sample is either in the
 * snapshot or counted as dropped, never twice, and the trie stays well
 * formed (no two siblings of one name). */
Test(pmerge, allocation_failure_keeps_totals_exact)
{
	unsigned failures = 0;
	for (long k = 0; k < 40; k++) {
		struct st_engine *e = mk_workers(2, 0);
		struct st_writer *w = st_writer_open(e);
		char names[MAXD + 1][48];
		const char *fr[MAXD + 1];
		size_t ln[MAXD + 1];
		for (int round = 0; round < 3; round++) {
			for (uint64_t i = 0; i < 3000; i++) {
				/* Distinct stacks: a dropped record is one sample. */
				size_t d = make_stack(31 + (uint64_t)round, i, names, fr, ln);
				ln[d] = (size_t)snprintf(names[d], sizeof(names[d]), "u%d_%llu", round,
							 (unsigned long long)i);
				fr[d] = names[d];
				d++;
				cr_assert_eq(st_writer_ingest_strs(w, fr, ln, d, (uint64_t[]){ 1, 2 }), 0);
			}
			if (round == 1)
				st_alloc_fail_after(k);
			uint64_t v = st_flush(e);
			st_alloc_fail_after(-1);
			if (!v) {
				failures++;
				cr_assert_neq(st_flush(e), 0, "k %ld: publish again", k);
			}
			struct st_stats st = { .size = sizeof(st) };
			st_engine_stats(e, &st);
			failures += st.dropped != 0;
			struct st_snap *s = st_snap_acquire(e);
			cr_expect_eq(st_snap_total(s, ST_NODE_ROOT, 0), st.ingested - st.dropped,
				     "k %ld round %d: total %llu ingested %llu dropped %llu", k, round,
				     (unsigned long long)st_snap_total(s, ST_NODE_ROOT, 0),
				     (unsigned long long)st.ingested, (unsigned long long)st.dropped);
			for (uint32_t i = 0; i < st_snap_node_count(s); i++) {
				uint32_t first, n = st_snap_children(s, i, &first);
				for (uint32_t c = first + 1; c < first + n; c++)
					cr_assert_neq(st_snap_frame(s, c), st_snap_frame(s, c - 1),
						      "k %ld: node %u has two children named %u", k,
						      i, st_snap_frame(s, c));
			}
			st_snap_release(s);
		}
		st_writer_close(w);
		st_engine_destroy(e);
	}
	cr_expect_gt(failures, 0, "no injected failure hit the merge");
}

/* The partitions split the trie below a shared prefix, not stack by stack:
 * stacks that share nodes mostly land in one partition, so two workers'
 * master holds about the nodes of one trie (the whole-stack hash made each
 * shared node once per partition: 2-3x the memory on this workload). */
Test(pmerge, partitions_do_not_duplicate_shared_prefixes)
{
	enum { NSTACKS = 60000, DEPTH = 20, NF = 512 };
	size_t mem[2];
	uint64_t nodes[2];
	for (unsigned k = 0; k < 2; k++) {
		struct st_engine *e = mk_workers_nm(k + 1, 0, 1);
		char b[32];
		for (unsigned i = 0; i < NF; i++)
			cr_assert_eq(st_intern(e, b, (size_t)snprintf(b, sizeof(b), "f%u", i)),
				     (int64_t)i + 1);
		struct st_writer *w = st_writer_open(e);
		cr_assert_not_null(w);
		uint32_t f[DEPTH];
		for (uint64_t i = 0; i < NSTACKS; i++) {
			/* Three frames every stack has, then a tree splitting
			 * ~10 ways every 4 levels. */
			for (uint32_t d = 0; d < DEPTH; d++) {
				uint64_t p = d < 3 ? 0 : i / (uint64_t)(d < 7 ? 6000 : d < 11 ? 600 : d < 15 ? 60 : d < 19 ? 6 : 1);
				uint64_t s = p * 0x9e3779b97f4a7c15ULL + d;
				f[d] = 1 + (uint32_t)(ts_rand(&s) % NF);
			}
			cr_assert_eq(st_writer_ingest(w, f, DEPTH, (uint64_t[]){ 1 }), 0);
		}
		st_writer_close(w);
		cr_assert_neq(st_flush(e), 0);
		struct st_stats st = { .size = sizeof(st) };
		st_engine_stats(e, &st);
		cr_assert_eq(st.dropped, 0);
		struct st_snap *s = st_snap_acquire(e);
		cr_assert_eq(st_snap_total(s, ST_NODE_ROOT, 0), NSTACKS);
		nodes[k] = st_snap_node_count(s);
		st_snap_release(s);
		mem[k] = st.mem_master;
		st_engine_destroy(e);
	}
	cr_expect_eq(nodes[1], nodes[0]);
	cr_expect_leq(mem[1], mem[0] + mem[0] / 2,
		      "two workers' master %zu bytes, one worker's %zu (%llu nodes)", mem[1], mem[0],
		      (unsigned long long)nodes[0]);
}

/* One busy shard: a single writer's table lists ~20 K records per fold, so
 * phase A hands it out in pieces to every worker (merger.c TABLE_CHUNK);
 * the first fold walks them all, the second adds them linked (atomic adds
 * from several workers).  Exact against the reference both times, for 2 and
 * 4 workers. */
Test(pmerge, one_busy_table_is_shared_by_the_workers)
{
	enum { NSTACKS = 20000, ROUNDS = 2 };
	for (unsigned workers = 2; workers <= 4; workers += 2) {
		struct st_engine *e = mk_workers_nm(workers, 0, 2);
		struct st_ref *ref = st_ref_create(2, 0);
		cr_assert_not_null(ref);
		struct st_writer *w = st_writer_open(e);
		cr_assert_not_null(w);
		char names[MAXD][48];
		const char *fr[MAXD];
		size_t ln[MAXD];
		for (unsigned round = 0; round < ROUNDS; round++) {
			for (uint64_t k = 0; k < NSTACKS; k++) {
				size_t d = make_stack(77, HOT + k, names, fr, ln);
				uint64_t v[2] = { 1 + round, k % 97 };
				cr_assert_eq(st_writer_ingest_strs(w, fr, ln, d, v), 0);
				cr_assert_eq(st_ref_add(ref, fr, ln, d, v), 0);
			}
			ts_assert_matches_ref(e, ref, "workers %u round %u", workers, round);
		}
		st_writer_close(w);
		st_ref_destroy(ref);
		st_engine_destroy(e);
	}
}
