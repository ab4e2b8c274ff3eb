/* SPDX-License-Identifier: MIT */
/*
 * test_threads.c - ts_threads_named (tests/support/threads.c), which the
 * pmerge suite and bench/snapcpu.c use to find the engine's threads: a
 * whole name matches only itself, a prefix every name it starts, max
 * bounds what is written, and an exited thread is no longer found.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "support/threads.h"

struct named {
	pthread_t th;
	pthread_barrier_t *go, *done;
	pid_t tid;
};

static void *named_main(void *arg)
{
	struct named *t = arg;
	t->tid = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(t->go);
	pthread_barrier_wait(t->done);
	return NULL;
}

Test(threads, by_whole_name_and_by_prefix)
{
	pthread_barrier_t go, done;
	pthread_barrier_init(&go, NULL, 3);
	pthread_barrier_init(&done, NULL, 3);
	struct named t[2];
	static const char *names[] = { "ts-thr-a", "ts-thr-ab" };
	for (int i = 0; i < 2; i++) {
		t[i] = (struct named){ .go = &go, .done = &done };
		cr_assert_eq(pthread_create(&t[i].th, NULL, named_main, &t[i]), 0);
		cr_assert_eq(pthread_setname_np(t[i].th, names[i]), 0);
	}
	pthread_barrier_wait(&go); /* both have their TIDs and names */

	pid_t got[4] = { 0 };
	cr_expect_eq(ts_threads_named("ts-thr-a", false, got, 4), 1);
	cr_expect_eq(got[0], t[0].tid, "whole name: TID %d, want %d", got[0], t[0].tid);
	cr_expect_eq(ts_threads_named("ts-thr-ab", false, NULL, 0), 1);
	cr_expect_eq(ts_threads_named("ts-thr", false, NULL, 0), 0, "a prefix is not a name");
	cr_expect_eq(ts_threads_named("ts-thr-a", true, NULL, 0), 2);
	memset(got, 0, sizeof(got));
	cr_expect_eq(ts_threads_named("ts-thr-", true, got, 1), 1, "max 1");
	cr_expect(got[0] == t[0].tid || got[0] == t[1].tid, "TID %d", got[0]);
	cr_expect_eq(got[1], 0, "nothing past max written");

	pthread_barrier_wait(&done);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i].th, NULL);
	/* pthread_join returns once the kernel cleared the TID, which may be
	 * a moment before the task leaves /proc: poll, bounded (2 s). */
	size_t left = 1;
	for (int i = 0; i < 2000 && (left = ts_threads_named("ts-thr-", true, NULL, 0)); i++)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	cr_expect_eq(left, 0, "joined threads are gone");
	pthread_barrier_destroy(&go);
	pthread_barrier_destroy(&done);
}
