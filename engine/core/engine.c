/* SPDX-License-Identifier: MIT */
/*
 * engine.c - the engine's lifetime: options, create/destroy, metrics, frame
 * names, stats.  The hot path is writer.c, merging is merger.c.
 *
 *   st_engine_create: intern table ([other] interned first), the master's
 *     partitions (merge_layout), one shard per online CPU (rule E4),
 *     snapshot version 1 (empty, so st_snap_acquire() never sees NULL),
 *     then the merge pool and the merger thread
 *   st_engine_destroy: merger and pool stopped, implicit writers closed, every
 *     retire callback run (rcu_barrier), then everything freed
 *
 * Invariants
 *   1. The engine always has a published snapshot (e->snap != NULL).
 *   2. Create and destroy run with no other actor (docs/concurrency.md,
 *      "control"); everything else is safe from any thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "rcu.h"
#include "region.h"
#include "snapshot.h"

void st_options_init(struct st_options *o)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
	o->merge_interval_ms = 10;
	o->nmetrics = 1;
	o->metrics[0].name = "count";
	o->metrics[0].unit = "samples";
}

/* ------------------------------------------------------------ lifetime */

/*
 * Merge workers and master partitions (merger.c has the design).  Workers:
 * the option, or min(online CPUs / 8, 8) and at least 1: the writers own
 * most CPUs, and a fold is memory-bound.  Partitions: one per worker is
 * the least, but stacks are not equally costly (a partition with many new
 * stacks walks, one of known stacks only adds), and a worker may be
 * preempted on a shared host, so several per worker, taken one at a time,
 * let a worker that drew cheap ones (or more CPU) take more: 4
 * (PARTS_PER_WORKER).  8 per worker was tried (smaller partitions, more of
 * each concurrent walk in cache; 16 partitions held 0.1% more nodes than
 * 8 on the cold bench): on a quiet 2-CPU host, two interleaved pairs of
 * `--only merge` showed no difference (2-worker fold CPU 445/420 ns per
 * new record with 4, 464/413 with 8).  More partitions repeat more of the
 * trie's top levels (the publish merges them by name) and add their fixed
 * cost.  A power of two (the hash's top bits), at most ST_PARTS_MAX.  A
 * node cap needs the whole trie to choose what to keep
 * (st_master_apply_cap), so it keeps one partition and one worker.
 */
enum { PARTS_PER_WORKER = 4 };

static void merge_layout(struct st_engine *e, long ncpu)
{
	unsigned w = e->opt.merge_workers;
	if (!w) {
		long c = ncpu / 8;
		w = c < 1 ? 1 : c > 8 ? 8 : (unsigned)c;
	}
	if (w > ST_PARTS_MAX / 4)
		w = ST_PARTS_MAX / 4;
	e->nworkers = e->opt.node_cap ? 1 : w;
	unsigned bits = 0;
	while (e->nworkers > 1 && (1u << bits) < PARTS_PER_WORKER * e->nworkers &&
	       (1u << bits) < ST_PARTS_MAX)
		bits++;
	e->nparts = 1u << bits;
	e->part_shift = 64 - bits; /* unused when bits is 0 */
}

static void engine_free(struct st_engine *e)
{
	unsigned n = atomic_load(&e->nshards);
	for (unsigned i = 0; i < n; i++)
		st_shard_free(e->shards[i]);
	for (unsigned p = 0; p < e->nparts; p++)
		st_master_destroy(e->part[p]);
	for (size_t i = 0; e->pwork && i < (size_t)e->nworkers * e->nparts; i++) {
		struct st_pwork *w = &e->pwork[i];
		st_region_free(w->unl, w->unlcap * sizeof(*w->unl));
	}
	st_free(e->pwork);
	st_pmap_free(&e->pmap);
	st_region_free(e->walk, e->walk_cap * sizeof(*e->walk));
	if (e->snap) {
		/* Wait for pending retire callbacks, then drop our reference. */
		st_rcu_barrier();
		st_snap_free_now(e->snap);
	}
	st_intern_destroy(e->intern);
	for (unsigned i = 0; i < ST_MAX_METRICS; i++) {
		st_free(e->metric_names[i]);
		st_free(e->metric_units[i]);
	}
	pthread_mutex_destroy(&e->shard_lock);
	pthread_mutex_destroy(&e->merge_lock);
	pthread_mutex_destroy(&e->merger_mu);
	pthread_cond_destroy(&e->merger_cv);
	pthread_mutex_destroy(&e->pool_mu);
	pthread_cond_destroy(&e->pool_cv);
	pthread_cond_destroy(&e->pool_done);
	st_free(e);
}

struct st_engine *st_engine_create(const struct st_options *o)
{
	struct st_options def;
	if (!o) {
		st_options_init(&def);
		o = &def;
	}
	if (o->size < offsetof(struct st_options, node_cap) + sizeof(o->node_cap) ||
	    o->nmetrics < 1 || o->nmetrics > ST_MAX_METRICS ||
	    (o->node_cap && o->node_cap < 4)) {
		errno = EINVAL;
		return NULL;
	}
	struct st_engine *e = st_calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	/* An older caller's struct is shorter: its missing fields stay 0. */
	memcpy(&e->opt, o, o->size < sizeof(e->opt) ? o->size : sizeof(e->opt));
	e->opt.size = sizeof(e->opt);
	pthread_mutex_init(&e->shard_lock, NULL);
	pthread_mutex_init(&e->merge_lock, NULL);
	pthread_mutex_init(&e->merger_mu, NULL);
	pthread_mutex_init(&e->pool_mu, NULL);
	pthread_cond_init(&e->pool_cv, NULL);
	pthread_cond_init(&e->pool_done, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e->merger_cv, &ca);
	pthread_condattr_destroy(&ca);

	for (unsigned i = 0; i < o->nmetrics; i++) {
		char buf[32];
		const char *name = o->metrics[i].name, *unit = o->metrics[i].unit;
		if (!name) {
			snprintf(buf, sizeof(buf), i ? "metric%u" : "count", i);
			name = buf;
		}
		e->metric_names[i] = st_strdup(name);
		e->metric_units[i] = st_strdup(unit ? unit : (i ? "" : "samples"));
		if (!e->metric_names[i] || !e->metric_units[i])
			goto fail;
		e->opt.metrics[i].name = e->metric_names[i];
		e->opt.metrics[i].unit = e->metric_units[i];
	}
	st_rcu_thread_online();
	e->intern = st_intern_create();
	if (!e->intern)
		goto fail;
	int64_t other = st_intern_get(e->intern, ST_OTHER_NAME, strlen(ST_OTHER_NAME),
				      st_hash_bytes(ST_OTHER_NAME, strlen(ST_OTHER_NAME)));
	if (other < 0)
		goto fail;
	e->other_id = (uint32_t)other;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	merge_layout(e, ncpu);
	/* The creator's CPUs: the merger and pool threads inherit them; a
	 * sort helper started by a flush's caller (maybe pinned elsewhere)
	 * is given them.  merge_workers = 1 asks for one thread, helper
	 * included; and a helper is no use where the engine has one CPU. */
	e->cpus_known = pthread_getaffinity_np(pthread_self(), sizeof(e->cpus), &e->cpus) == 0;
	const long usable = e->cpus_known ? CPU_COUNT(&e->cpus) : ncpu;
	e->flush_helper = e->nparts == 1 && usable >= 2 && e->opt.merge_workers != 1;
	for (unsigned p = 0; p < e->nparts; p++) {
		e->part[p] = st_master_create(o->nmetrics, o->node_cap, e->other_id,
					      e->nparts + p, e->nparts);
		if (!e->part[p])
			goto fail;
	}
	if (e->nparts > 1) {
		e->pwork = st_calloc((size_t)e->nworkers * e->nparts, sizeof(*e->pwork));
		if (!e->pwork)
			goto fail;
	}

	unsigned ns = o->nshards ? o->nshards : (unsigned)(ncpu > 0 ? ncpu : 1);
	if (ns > ST_SHARDS_MAX / 2)
		ns = ST_SHARDS_MAX / 2;
	for (unsigned i = 0; i < ns; i++) {
		e->shards[i] = st_shard_new(o->nmetrics, i);
		if (!e->shards[i])
			goto fail;
		/* Release: the shard before the count (rule E4). */
		atomic_store_explicit(&e->nshards, i + 1, memory_order_release);
	}
	e->ncpu_shards = ns;

	/* Version 1: the empty trie, so st_snap_acquire() never sees NULL. */
	if (st_merger_first_snapshot(e))
		goto fail;

	int err = st_merger_start(e);
	if (err) {
		errno = -err;
		goto fail;
	}
	return e;
fail:;
	int saved = errno ? errno : ENOMEM;
	engine_free(e);
	errno = saved;
	return NULL;
}

void st_engine_destroy(struct st_engine *e)
{
	if (!e)
		return;
	st_merger_stop(e);
	st_writer_close_implicit(e);
	engine_free(e);
}

unsigned st_engine_nmetrics(const struct st_engine *e)
{
	return e->opt.nmetrics;
}

const struct st_metric_desc *st_engine_metric(const struct st_engine *e, unsigned i)
{
	return i < e->opt.nmetrics ? &e->opt.metrics[i] : NULL;
}

int st_engine_metric_index(const struct st_engine *e, const char *name)
{
	for (unsigned i = 0; i < e->opt.nmetrics; i++)
		if (strcmp(e->opt.metrics[i].name, name) == 0)
			return (int)i;
	return -ENOENT;
}

struct st_snap *st_snap_acquire(struct st_engine *e)
{
	return st_snap_acquire_slot(&e->snap);
}

int64_t st_intern(struct st_engine *e, const char *s, size_t len)
{
	return st_intern_get(e->intern, s, len, st_hash_bytes(s, len));
}

const char *st_frame_name(const struct st_engine *e, uint32_t id, size_t *len)
{
	return st_intern_name(e->intern, id, len);
}

size_t st_frame_count(const struct st_engine *e)
{
	return st_intern_count(e->intern);
}

int st_frame_names_have_eol(const struct st_engine *e)
{
	return st_intern_has_eol(e->intern);
}

/*
 * The caller's out->size says how big its struct is (older binaries have a
 * shorter one): the stats are gathered in a struct of this library's size
 * and only the caller's bytes are written; a newer caller's fields past
 * ours are left as it set them, and out->size says how many bytes were
 * filled.  A size past ST_STATS_SIZE_MAX is no struct's: refused, so a
 * caller that forgot to set it does not get a huge write.
 */
#define ST_STATS_SIZE_MAX 4096u

int st_engine_stats(struct st_engine *e, struct st_stats *out)
{
	size_t want = out->size;
	if (want < sizeof(out->size) || want > ST_STATS_SIZE_MAX)
		return -EINVAL;
	struct st_stats s;
	memset(&s, 0, sizeof(s));
	s.size = want < sizeof(s) ? want : sizeof(s);
	unsigned n = atomic_load_explicit(&e->nshards, memory_order_acquire);
	for (unsigned i = 0; i < n; i++) {
		s.ingested += atomic_load_explicit(&e->shards[i]->ingested, memory_order_relaxed);
		s.dropped += atomic_load_explicit(&e->shards[i]->dropped, memory_order_relaxed);
	}
	s.shards = n;
	s.frames = st_intern_count(e->intern);
	s.mem_intern = st_intern_memory(e->intern);
	pthread_mutex_lock(&e->merge_lock);
	/* Spare tables belong to the merger (merge_lock); an active one's size
	 * is kept in relaxed atomics by its writer (st_stab_memory), and only
	 * a merge_lock holder swaps it. */
	for (unsigned i = 0; i < n; i++)
		s.mem_shards += st_stab_memory(e->shards[i]->active) +
				st_stab_memory(e->shards[i]->spare);
	s.dropped += e->merge_dropped;
	s.merges = e->merges;
	s.folded = e->folded;
	s.version = e->version;
	s.merge_records = e->merge_records;
	s.merge_fold_ns = e->merge_fold_ns;
	s.publish_ns = e->publish_ns;
	s.nodes = st_merger_nodes(e);
	for (unsigned p = 0; p < e->nparts; p++)
		s.mem_master += st_master_memory(e->part[p]);
	s.mem_snapshot = st_snap_memory(e->snap);
	pthread_mutex_unlock(&e->merge_lock);
	s.mem_regions = st_region_mapped();
	memcpy(out, &s, s.size);
	return 0;
}