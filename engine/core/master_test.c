/* SPDX-License-Identifier: MIT */
/*
 * master_test.c - a flush's fold sorted on two threads (master.c,
 * sort_split): the helper sorts the ranges of the upper half of the
 * positions while the caller sorts the lower half and walks behind itself,
 * then walks the rest.  The result must be the reference trie's, whatever
 * the ranges' sizes on either side of the split, over several flushes
 * (new stacks among old ones), and the same as with one thread.
 */
#include <criterion/criterion.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "master.h"
#include "support/support.h"
#include "support/threads.h"

enum { MS_MAXD = 12, MS_NAMES = 600 };

struct ms_ctx {
	struct st_engine *e;
	struct st_ref *ref;
	struct st_writer *w;
	char names[MS_NAMES][8];
	uint32_t ids[MS_NAMES];
	bool giant; /* ms_stack's second shape */
};

/* An engine from o (one writer), the reference, the names interned. */
static void ms_open_opts(struct ms_ctx *c, const struct st_options *o)
{
	c->giant = false;
	c->e = st_engine_create(o);
	cr_assert_not_null(c->e);
	c->ref = st_ref_create(1, 0);
	c->w = st_writer_open(c->e);
	cr_assert(c->ref && c->w);
	for (uint32_t i = 0; i < MS_NAMES; i++) {
		snprintf(c->names[i], sizeof(c->names[i]), "m%u", i);
		int64_t id = st_intern(c->e, c->names[i], strlen(c->names[i]));
		cr_assert_geq(id, 0);
		c->ids[i] = (uint32_t)id;
	}
}

static struct st_options ms_options(unsigned workers)
{
	struct st_options o;
	st_options_init(&o);
	o.merge_interval_ms = 0;
	o.nshards = 1;
	o.merge_workers = workers;
	return o;
}

/* No merger, one partition whatever this machine's CPUs; the helper on or
 * off (merge_workers 1 would turn it off: it is forced here). */
static void ms_open(struct ms_ctx *c, bool helper)
{
	const struct st_options o = ms_options(1);
	ms_open_opts(c, &o);
	cr_assert_eq(c->e->nparts, 1u);
	c->e->flush_helper = helper;
}

static void ms_close(struct ms_ctx *c)
{
	st_writer_close(c->w);
	st_ref_destroy(c->ref);
	st_engine_destroy(c->e);
}

/*
 * Stack i: a root frame, then a top fan of 12 whose branches hold very
 * different shares of the stacks (i % 97 picks the branch, so ranges near
 * n/2 are large and small), under each the i % 97 it was picked by, then
 * fans of 60 and 20 with frames between that depend on the digits so far:
 * 116,400 distinct stacks.  Some stop early (prefixes of others).
 *
 * giant: the last branch (the highest positions) holds 72 % of the stacks,
 * so no range starts in the upper half after the top split: the caller
 * sorts and walks the small branches first, then splits the giant one and
 * hands the helper its upper children (a split in the middle of the sort).
 */
static uint32_t ms_stack(uint32_t i, uint32_t *f, bool giant)
{
	const uint32_t r = i % 97;
	const uint32_t a = giant ? (r < 70 ? 11 : r % 11)
				 : r < 40 ? 0 : r < 60 ? 1 : r < 70 ? 2 : 3 + r % 9;
	const uint32_t b = i / 97 % 60, c = i / (97 * 60) % 20;
	uint32_t d = 0;
	f[d++] = 1;
	f[d++] = 10 + a;
	f[d++] = 30 + r; /* every i % 97 its own subtree */
	if (i % 211 == 3)
		return d;
	f[d++] = 130 + b;
	f[d++] = 200 + (a + b) % 100;
	if (i % 89 == 0)
		return d;
	f[d++] = 400 + c;
	f[d++] = 450 + (a + b + c) % 150;
	return d;
}

static void ms_add(struct ms_ctx *c, uint32_t i, uint64_t v)
{
	uint32_t f[MS_MAXD], fid[MS_MAXD];
	const char *fr[MS_MAXD];
	size_t fl[MS_MAXD];
	uint32_t d = ms_stack(i, f, c->giant);
	for (uint32_t x = 0; x < d; x++) {
		fid[x] = c->ids[f[x]];
		fr[x] = c->names[f[x]];
		fl[x] = strlen(fr[x]);
	}
	cr_assert_eq(st_writer_ingest(c->w, fid, d, &v), 0);
	cr_assert_eq(st_ref_add(c->ref, fr, fl, d, &v), 0);
}

/* Two rounds, each flushed and compared: the even stacks, then all of them
 * (the even ones again, linked; the odd ones new): over SORT_SPLIT_MIN
 * (32 Ki) new records in each fold. */
static uint64_t ms_run(bool helper, bool giant)
{
	struct ms_ctx c;
	ms_open(&c, helper);
	c.giant = giant;
	uint64_t seed = 5;
	const uint32_t n = 97 * 60 * 20; /* 116,400 distinct stacks */
	for (unsigned r = 0; r < 2; r++) {
		for (uint32_t i = 0; i < n; i += 2 - r)
			ms_add(&c, i, 1 + ts_rand(&seed) % 40);
		ts_assert_matches_ref(c.e, c.ref, "helper %d, giant %d, round %u", helper, giant, r);
	}
	uint64_t splits = st_master_sort_splits(c.e->part[0]);
	ms_close(&c);
	return splits;
}

Test(master_split, flush_sorted_on_two_threads_matches_reference)
{
	cr_assert_geq(ms_run(true, false), 1, "no fold was sorted on two threads");
	cr_assert_geq(ms_run(true, true), 1, "no fold was sorted on two threads (giant branch)");
}

Test(master_split, one_thread_matches_reference_and_never_splits)
{
	cr_assert_eq(ms_run(false, false), 0);
	cr_assert_eq(ms_run(false, true), 0);
}

/* The engine's own choice: merge_workers 0 on 2+ CPUs folds a big flush
 * with the helper, merge_workers 1 never (one thread, as asked). */
static uint64_t ms_splits_with_workers(unsigned workers)
{
	const struct st_options o = ms_options(workers);
	struct ms_ctx c;
	ms_open_opts(&c, &o);
	if (c.e->nparts > 1) {
		ms_close(&c);
		cr_skip_test("merge_workers %u: the engine chose partitions here (16+ CPUs): "
			     "its pool folds them, no sort helper", workers);
	}
	for (uint32_t i = 0; i < 97 * 60 * 20; i += 2)
		ms_add(&c, i, 1);
	ts_assert_matches_ref(c.e, c.ref, "merge_workers %u", workers);
	uint64_t splits = st_master_sort_splits(c.e->part[0]);
	ms_close(&c);
	return splits;
}

Test(master_split, merge_workers_one_never_starts_the_helper)
{
	cr_assert_eq(ms_splits_with_workers(1), 0);
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		cr_skip_test("one CPU: the engine never starts the sort helper");
	cr_assert_geq(ms_splits_with_workers(0), 1, "merge_workers 0 on 2+ CPUs: no helper");
}

/* Whether thread tid sleeps in a futex wait on the word at addr (its
 * current syscall, from /proc); -1 when that cannot be read here. */
static int ms_waits_on(pid_t tid, const void *addr)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long nr = -2;
	unsigned long a0 = 0;
	int got = fgets(buf, sizeof(buf), f) ? sscanf(buf, "%ld %lx", &nr, &a0) : 0;
	fclose(f);
	if (got < 1 || nr == -2)
		return -1;
	return nr == SYS_futex && a0 == (unsigned long)(uintptr_t)addr;
}

/*
 * The merger thread's own fold splits its sort once a flush waits for it
 * (merger.c fold_tables: publish_waiting).  The test holds merge_lock while
 * one writer ingests ~58 K new stacks and until the merger thread waits on
 * the lock (past its own check of publish_waiting: seen in /proc), with all
 * of them to fold; it then counts itself as a waiting flush
 * (publish_waiting) and lets go.  The merger's fold must split, and the
 * trie must still be the reference's.
 */
Test(master_split, merger_fold_splits_once_a_flush_waits)
{
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		cr_skip_test("one CPU: the engine never starts the sort helper");
	struct st_options o = ms_options(0);
	o.merge_interval_ms = 1;
	struct ms_ctx c;
	ms_open_opts(&c, &o);
	if (!c.e->flush_helper) {
		ms_close(&c);
		cr_skip_test("the engine chose no sort helper here (16+ CPUs: partitions, or "
			     "one usable CPU)");
	}
	pid_t tid;
	cr_assert_eq(ts_threads_named("st-merger", false, &tid, 1), 1);
	pthread_mutex_lock(&c.e->merge_lock);
	for (uint32_t i = 0; i < 97 * 60 * 20; i += 2)
		ms_add(&c, i, 1 + i % 7);
	const time_t deadline = time(NULL) + 10;
	int w;
	while ((w = ms_waits_on(tid, &c.e->merge_lock)) == 0 && time(NULL) < deadline)
		sched_yield();
	if (w != 1) {
		pthread_mutex_unlock(&c.e->merge_lock);
		ms_close(&c);
		if (w < 0)
			cr_skip_test("/proc/self/task/TID/syscall cannot be read here");
		cr_assert_fail("the merger thread never waited for merge_lock");
	}
	atomic_fetch_add(&c.e->publish_waiting, 1);
	pthread_mutex_unlock(&c.e->merge_lock);
	/* The merger thread takes the lock and folds; poll for its split,
	 * 10 s at most (it folds in well under a second). */
	uint64_t splits = 0;
	while (!splits && time(NULL) < deadline) {
		sched_yield();
		pthread_mutex_lock(&c.e->merge_lock);
		splits = st_master_sort_splits(c.e->part[0]);
		pthread_mutex_unlock(&c.e->merge_lock);
	}
	atomic_fetch_sub(&c.e->publish_waiting, 1);
	cr_assert_geq(splits, 1, "the merger's fold did not split while a flush waited");
	ts_assert_matches_ref(c.e, c.ref, "after the merger's split fold");
	ms_close(&c);
}
