/* SPDX-License-Identifier: MIT */
/*
 * intern_test.c - the name table's batch lookup-or-insert
 * (st_intern_get_many, intern.c), which the writer's miss path uses for the
 * names of a stack: known and new names mixed, the same new name twice in
 * one batch, a refused batch, allocation failures half-way, and threads
 * interning overlapping batches at once.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "intern.h"
#include "support/support.h"

static void req(struct st_intern_req *r, const char *s)
{
	memset(r, 0, sizeof(*r));
	r->s = s;
	r->len = strlen(s);
	r->hash = st_hash_bytes(s, r->len);
}

/* Known and new names, one new name three times: one id per distinct name,
 * dense in order of first appearance, `added` only where it was inserted,
 * and every id names its bytes. */
Test(intern, many_mixes_known_new_and_repeated_names)
{
	struct st_intern *in = st_intern_create();
	cr_assert_not_null(in);
	cr_assert_eq(st_intern_get(in, "known", 5, st_hash_bytes("known", 5)), 0);
	const char *names[] = { "new1", "known", "dup", "new2", "dup", "dup", "new1" };
	enum { N = sizeof(names) / sizeof(names[0]) };
	struct st_intern_req r[N];
	for (int k = 0; k < N; k++)
		req(&r[k], names[k]);
	cr_assert_eq(st_intern_get_many(in, r, N), 0);
	uint32_t want[N] = { 1, 0, 2, 3, 2, 2, 1 };
	bool added[N] = { true, false, true, true, false, false, false };
	for (int k = 0; k < N; k++) {
		cr_assert_eq(r[k].id, want[k], "%s: id %u", names[k], r[k].id);
		cr_assert_eq(r[k].added, added[k], "%s at %d", names[k], k);
		size_t l;
		const char *nm = st_intern_name(in, r[k].id, &l);
		cr_assert_eq(nm, r[k].name, "the interned copy");
		cr_assert_eq(l, strlen(names[k]));
		cr_assert_eq(memcmp(nm, names[k], l), 0);
	}
	cr_assert_eq(st_intern_count(in), 4);
	/* Again: all known now, nothing added, the same ids. */
	for (int k = 0; k < N; k++)
		req(&r[k], names[k]);
	cr_assert_eq(st_intern_get_many(in, r, N), 0);
	for (int k = 0; k < N; k++) {
		cr_assert_eq(r[k].id, want[k]);
		cr_assert(!r[k].added);
	}
	cr_assert_eq(st_intern_count(in), 4);
	st_intern_destroy(in);
}

/* A name too long anywhere in the batch refuses all of it, before anything
 * is interned. */
Test(intern, many_refuses_a_batch_with_a_name_too_long)
{
	static char big[ST_MAX_FRAME_LEN + 2];
	memset(big, 'x', sizeof(big) - 1);
	struct st_intern *in = st_intern_create();
	cr_assert_not_null(in);
	struct st_intern_req r[3];
	req(&r[0], "a");
	req(&r[1], "b");
	req(&r[2], big);
	cr_assert_eq(st_intern_get_many(in, r, 3), -ENAMETOOLONG);
	cr_assert_eq(st_intern_count(in), 0);
	st_intern_destroy(in);
}

/* Enough new names in one batch to grow the table twice (slots and id
 * chunks), with failing allocations at every point up to the first that
 * succeeds throughout: a failed batch says so, the names before the failing
 * one have their ids, and the table is exact afterwards. */
Test(intern, many_through_growth_and_allocation_failures, .timeout = 60)
{
	enum { N = 5000 };
	static char buf[N][16];
	static struct st_intern_req r[N];
	for (long fail = 0; fail < 12; fail++) {
		struct st_intern *in = st_intern_create();
		cr_assert_not_null(in);
		for (int k = 0; k < N; k++) {
			snprintf(buf[k], sizeof(buf[k]), "name%d", k % (N / 2));
			req(&r[k], buf[k]);
		}
		st_alloc_fail_after(fail);
		int err = st_intern_get_many(in, r, N);
		st_alloc_fail_after(-1);
		uint32_t got = st_intern_count(in);
		if (err) {
			cr_assert_eq(err, -ENOMEM, "fail after %ld: %d", fail, err);
			cr_assert_lt(got, N / 2);
		}
		/* Those with a name have the right one; then all of them. */
		for (int pass = 0; pass < 2; pass++) {
			for (int k = 0; k < N; k++) {
				if (!r[k].name)
					continue;
				size_t l;
				const char *nm = st_intern_name(in, r[k].id, &l);
				cr_assert_not_null(nm, "fail after %ld: name %d", fail, k);
				cr_assert_eq(l, r[k].len);
				cr_assert_eq(memcmp(nm, buf[k], l), 0);
			}
			if (pass == 0) {
				for (int k = 0; k < N; k++)
					req(&r[k], buf[k]);
				cr_assert_eq(st_intern_get_many(in, r, N), 0);
				/* Ids stay dense and one per distinct name. */
				cr_assert_eq(st_intern_count(in), N / 2);
				for (int k = 0; k < N / 2; k++)
					cr_assert_eq(r[k].id, r[k + N / 2].id);
			}
		}
		st_intern_destroy(in);
	}
}

/* Threads interning overlapping batches (each its own order, each name
 * twice in its batch) agree on every id. */
#define TN 4
#define TNAMES 3000
static struct st_intern *t_in;
static uint32_t t_ids[TN][TNAMES];
static char t_buf[TNAMES][16];

static void *batch_interner(void *arg)
{
	size_t t = (size_t)arg;
	enum { B = 32 };
	struct st_intern_req r[2 * B];
	for (int base = 0; base < TNAMES; base += B) {
		for (int k = 0; k < B; k++) {
			/* Thread t walks the names from its own offset. */
			int i = (base + k + (int)t * 777) % TNAMES;
			req(&r[k], t_buf[i]);
			req(&r[B + k], t_buf[i]);
		}
		cr_assert_eq(st_intern_get_many(t_in, r, 2 * B), 0);
		for (int k = 0; k < B; k++) {
			int i = (base + k + (int)t * 777) % TNAMES;
			cr_assert_eq(r[k].id, r[B + k].id);
			t_ids[t][i] = r[k].id;
		}
	}
	return NULL;
}

Test(intern, many_from_threads_agrees, .timeout = 60)
{
	for (int i = 0; i < TNAMES; i++)
		snprintf(t_buf[i], sizeof(t_buf[i]), "t%d", i);
	for (int round = 0; round < 5; round++) {
		t_in = st_intern_create();
		cr_assert_not_null(t_in);
		pthread_t th[TN];
		for (size_t t = 0; t < TN; t++)
			pthread_create(&th[t], NULL, batch_interner, (void *)t);
		for (size_t t = 0; t < TN; t++)
			pthread_join(th[t], NULL);
		cr_assert_eq(st_intern_count(t_in), TNAMES);
		for (int i = 0; i < TNAMES; i++) {
			for (int t = 1; t < TN; t++)
				cr_assert_eq(t_ids[t][i], t_ids[0][i], "name %d", i);
			size_t l;
			const char *nm = st_intern_name(t_in, t_ids[0][i], &l);
			cr_assert_eq(l, strlen(t_buf[i]));
			cr_assert_eq(memcmp(nm, t_buf[i], l), 0);
		}
		st_intern_destroy(t_in);
	}
}
