/* SPDX-License-Identifier: MIT */
/*
 * engine.h - the engine object the three roles share: its lifetime
 * (engine.c), the writer hot path (writer.c) and the merger (merger.c).
 * Each field says which rule of docs/concurrency.md protects it.
 */
#ifndef ST_ENGINE_H
#define ST_ENGINE_H

#include <pthread.h>

#include "intern.h"
#include "master.h"
#include "shard.h"
#include "snapshot.h"

#define ST_SHARDS_MAX 4096

/* One worker's unlinked records (rebased) of one partition in one merge
 * (merger.c): listed by the worker in phase A, walked by the partition's
 * taker in phase B. */
struct st_pwork {
	struct st_srec **unl;
	size_t nunl, unlcap;
};

struct st_implicit;

struct st_engine {
	struct st_options opt;
	char *metric_names[ST_MAX_METRICS];
	char *metric_units[ST_MAX_METRICS];
	struct st_intern *intern;
	uint32_t other_id;

	/* Shard registry: slots [0, nshards) are published with a release
	 * store of nshards after the shard is initialised; read with acquire
	 * (rule E4). */
	struct st_shard *shards[ST_SHARDS_MAX];
	atomic_uint nshards;
	unsigned ncpu_shards;
	pthread_mutex_t shard_lock; /* serialises adding shards */

	/* st_flush/st_reset callers waiting for merge_lock (merger.c). */
	atomic_uint publish_waiting;

	/* Everything below is protected by merge_lock. */
	pthread_mutex_t merge_lock;
	/* The master, split into nparts = 2^k partitions by the hash of each
	 * stack's first part_depth frames (merger.c, "partitions"): part_depth
	 * is chosen while every partition is empty, a linked record's epoch
	 * names its partition.  nparts is 1 (part_shift, part_depth unused)
	 * with one merge worker or a node cap. */
	struct st_master *part[ST_PARTS_MAX];
	unsigned nparts, part_shift, part_depth;
	struct st_pwork *pwork;   /* nworkers * nparts (nparts > 1): worker w's
				     list for partition p at [w * nparts + p] */
	struct st_pmap pmap;      /* nparts > 1: snapshot node -> partition nodes */
	bool flush_helper;        /* nparts == 1, 2+ usable CPUs, merge_workers not 1:
				     a flush's big fold sorts on a second
				     thread (master.c) */
	bool cpus_known;          /* cpus: the creator's CPUs (create time), */
	cpu_set_t cpus;           /* where the merger and its helpers run */
	uint32_t merged_nodes;    /* nodes of the last snapshot built */
	uint64_t version;
	uint64_t generation;
	uint64_t merges;
	uint64_t folded;
	uint64_t merge_dropped;
	uint64_t merge_records, merge_fold_ns, publish_ns; /* st_stats */
	struct st_srec **walk;    /* merger: unlinked records of one fold */
	size_t nwalk, walk_cap;
	bool unpublished;         /* folded since the last publish */
	uint64_t next_publish_ns; /* merger thread: earliest next publish */
	/* Merger scratch: each shard's table of this merge, and whether it
	 * was swapped out (merger.c choose_tables). */
	struct st_stab *flipped[ST_SHARDS_MAX];
	bool flipped_out[ST_SHARDS_MAX];

	/* Current snapshot: published under merge_lock, rcu_dereference by
	 * readers (rule S1). */
	struct st_snap *snap;

	/* Merger thread (merger.c). */
	pthread_t merger;
	bool merger_running;
	pthread_mutex_t merger_mu;
	pthread_cond_t merger_cv;
	bool merger_stop;

	/* Merge pool (merger.c): nworkers - 1 threads; the merge_lock holder
	 * is the other worker.  pool_gen/pool_busy/pool_stop under pool_mu;
	 * pool_next hands out partitions (atomic, during a run only). */
	unsigned nworkers;
	pthread_t pool[ST_PARTS_MAX];
	unsigned npool;
	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cv, pool_done;
	uint64_t pool_gen;
	unsigned pool_busy;
	bool pool_stop;
	/* Set by the merge_lock holder before a phase starts (merger.c). */
	unsigned pool_phase;   /* 0 distribute tables' pieces, 1 fold partitions,
				  2 split rows, 3 sort partitions */
	bool pool_lazy, pool_woken; /* pool_phase(): merge_lock holder only */
	unsigned pool_ntables; /* flipped[0..pool_ntables) */
	unsigned pool_nachunks; /* phase A: pieces of the tables' groups */
	uint32_t pool_tchunk[ST_SHARDS_MAX + 1]; /* phase A: table i's first piece */
	size_t pool_tgroups[ST_SHARDS_MAX];      /* phase A: table i's groups */
	unsigned pool_nchunks; /* phase S: chunks of ssrc[] */
	uint8_t pool_order[ST_PARTS_MAX]; /* phase B: partitions, biggest first */
	struct st_pwork ssrc[ST_PARTS_MAX]; /* phase S: each row's list 0, detached */
	atomic_uint pool_next;
	/* Per worker, summed after a merge by the merge_lock holder. */
	uint64_t pool_records[ST_PARTS_MAX], pool_dropped[ST_PARTS_MAX];

	/* Implicit writers made by st_ingest (writer.c), under implicit_mu. */
	struct st_implicit *implicit_head;
};

/* ---- merger.c */
/* The first snapshot (version 1, empty) at creation.  0 or -ENOMEM. */
int st_merger_first_snapshot(struct st_engine *e);
/* Nodes of the master's merged view (st_stats.nodes).  merge_lock held. */
uint64_t st_merger_nodes(const struct st_engine *e);
/* Start the merge pool (nworkers > 1) and the merger thread
 * (opt.merge_interval_ms > 0).  0 or -errno (nothing left running). */
int st_merger_start(struct st_engine *e);
/* Stop and join them, if they run. */
void st_merger_stop(struct st_engine *e);

/* ---- writer.c */
/* Close the engine's implicit writers (st_engine_destroy); their threads
 * free their items when they exit. */
void st_writer_close_implicit(struct st_engine *e);

#endif /* ST_ENGINE_H */
