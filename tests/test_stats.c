/* SPDX-License-Identifier: MIT */
/*
 * test_stats.c - struct st_stats is size-versioned: st_engine_stats()
 * writes exactly the caller's out->size bytes (a binary built against an
 * older, shorter header keeps the memory past its struct), zeroes a newer
 * caller's fields it does not know, and says how many bytes it filled.
 *
 * Each case lays the struct at the start of a bigger buffer filled with a
 * guard byte and checks every byte past out->size still holds it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "support/support.h"

#define GUARD 0xa5
#define EXTRA 64

union stats_buf {
	struct st_stats s;
	unsigned char b[sizeof(struct st_stats) + EXTRA];
};

/* An engine with a known state: 3 samples of 2 stacks, one
 * flush; *full is what a caller of this header's size gets. */
static struct st_engine *engine_with_samples(struct st_stats *full)
{
	struct st_engine *e = ts_engine_no_merger(2);
	struct st_writer *w = st_writer_open(e);
	cr_assert_not_null(w);
	const char *a[] = { "main", "work" }, *b[] = { "main", "idle" };
	size_t la[] = { 4, 4 };
	uint64_t one = 1;
	cr_assert_eq(st_writer_ingest_strs(w, a, la, 2, &one), 0);
	cr_assert_eq(st_writer_ingest_strs(w, a, la, 2, &one), 0);
	cr_assert_eq(st_writer_ingest_strs(w, b, la, 2, &one), 0);
	st_writer_close(w);
	cr_assert_neq(st_flush(e), 0);
	*full = (struct st_stats){ .size = sizeof(*full) };
	cr_assert_eq(st_engine_stats(e, full), 0);
	cr_assert_eq(full->size, sizeof(*full));
	cr_assert_eq(full->ingested, 3);
	cr_assert_eq(full->frames, st_frame_count(e));
	cr_assert_eq(full->nodes, 4); /* root, main, work, idle */
	return e;
}

/* The first byte at or past `from` that is not the guard, or -1. */
static long first_changed(const union stats_buf *u, size_t from)
{
	for (size_t i = from; i < sizeof(u->b); i++)
		if (u->b[i] != GUARD)
			return (long)i;
	return -1;
}

/* st_engine_stats into u, every byte GUARD first, with this size set. */
static int stats_sized(struct st_engine *e, union stats_buf *u, size_t size)
{
	memset(u, GUARD, sizeof(*u));
	u->s.size = size;
	return st_engine_stats(e, &u->s);
}

/* A caller built when the struct ended after mem_intern (before
 * mem_regions, merge_records, merge_fold_ns and publish_ns were added):
 * its fields are filled, the bytes after them are not touched. */
Test(stats, older_smaller_struct_gets_only_its_bytes)
{
	struct st_stats full;
	struct st_engine *e = engine_with_samples(&full);
	const size_t old = offsetof(struct st_stats, mem_intern) + sizeof(full.mem_intern);
	union stats_buf u;
	cr_assert_eq(stats_sized(e, &u, old), 0);
	long at = first_changed(&u, old);
	cr_expect_eq(at, -1, "byte %ld past the caller's %zu-byte struct was written", at, old);
	cr_expect_eq(u.s.size, old);
	cr_expect_eq(u.s.ingested, full.ingested);
	cr_expect_eq(u.s.dropped, 0);
	cr_expect_eq(u.s.merges, full.merges);
	cr_expect_eq(u.s.version, full.version);
	cr_expect_eq(u.s.nodes, full.nodes);
	cr_expect_eq(u.s.shards, full.shards);
	cr_expect_eq(u.s.frames, full.frames);
	cr_expect_eq(u.s.mem_intern, full.mem_intern);
	st_engine_destroy(e);
}

/* A size that ends inside a field: the bytes are counted exactly, not
 * rounded up to the field's end. */
Test(stats, size_inside_a_field_is_exact)
{
	struct st_stats full;
	struct st_engine *e = engine_with_samples(&full);
	const size_t cut = offsetof(struct st_stats, dropped) + 3;
	union stats_buf u;
	cr_assert_eq(stats_sized(e, &u, cut), 0);
	long at = first_changed(&u, cut);
	cr_expect_eq(at, -1, "byte %ld past the caller's %zu bytes was written", at, cut);
	cr_expect_eq(u.s.ingested, full.ingested);
	st_engine_destroy(e);
}

/* A caller built against a newer header: the library fills its own
 * struct, leaves the fields it does not know alone and reports its own
 * size. */
Test(stats, newer_bigger_struct_keeps_its_tail)
{
	struct st_stats full;
	struct st_engine *e = engine_with_samples(&full);
	const size_t newer = sizeof(struct st_stats) + EXTRA / 2;
	union stats_buf u;
	cr_assert_eq(stats_sized(e, &u, newer), 0);
	cr_expect_eq(u.s.size, sizeof(struct st_stats));
	cr_expect_eq(u.s.ingested, full.ingested);
	cr_expect_eq(u.s.publish_ns, full.publish_ns);
	long at = first_changed(&u, sizeof(struct st_stats));
	cr_expect_eq(at, -1, "byte %ld past the library's %zu-byte struct was written", at,
		     sizeof(struct st_stats));
	st_engine_destroy(e);
}

/* A size that does not cover the size field (a caller that forgot to set
 * it): -EINVAL and not one byte written. */
Test(stats, size_not_set_is_einval)
{
	struct st_stats full;
	struct st_engine *e = engine_with_samples(&full);
	for (size_t bad = 0; bad < sizeof(size_t); bad++) {
		union stats_buf u;
		cr_expect_eq(stats_sized(e, &u, bad), -EINVAL, "size %zu", bad);
		cr_expect_eq(u.s.size, bad);
		long at = first_changed(&u, sizeof(size_t));
		cr_expect_eq(at, -1, "size %zu: byte %ld was written", bad, at);
	}
	/* Garbage in an unset size (a stack address, say): refused, not a
	 * write of that many bytes. */
	static const size_t garbage[] = { 4097, 1u << 20, (size_t)0x7ffc762235a8ull, SIZE_MAX };
	for (size_t i = 0; i < sizeof(garbage) / sizeof(*garbage); i++) {
		union stats_buf u;
		cr_expect_eq(stats_sized(e, &u, garbage[i]), -EINVAL, "size %zu", garbage[i]);
		long at = first_changed(&u, sizeof(size_t));
		cr_expect_eq(at, -1, "size %zu: byte %ld was written", garbage[i], at);
	}
	st_engine_destroy(e);
}
