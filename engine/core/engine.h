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

#define ST_SHARDS_MAX 4096

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

	/* Everything below is protected by merge_lock. */
	pthread_mutex_t merge_lock;
	struct st_master *master;
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
	struct st_stab *flipped[ST_SHARDS_MAX]; /* merger scratch */

	/* Current snapshot: published under merge_lock, rcu_dereference by
	 * readers (rule S1). */
	struct st_snap *snap;

	/* Merger thread (merger.c). */
	pthread_t merger;
	bool merger_running;
	pthread_mutex_t merger_mu;
	pthread_cond_t merger_cv;
	bool merger_stop;

	/* Implicit writers made by st_ingest (writer.c), under implicit_mu. */
	struct st_implicit *implicit_head;
};

/* ---- merger.c */
/* Start the merger thread (opt.merge_interval_ms > 0).  0 or -errno. */
int st_merger_start(struct st_engine *e);
/* Stop and join it, if it runs. */
void st_merger_stop(struct st_engine *e);

/* ---- writer.c */
/* Close the engine's implicit writers (st_engine_destroy); their threads
 * free their items when they exit. */
void st_writer_close_implicit(struct st_engine *e);

#endif /* ST_ENGINE_H */
