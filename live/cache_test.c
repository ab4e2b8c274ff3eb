/* SPDX-License-Identifier: MIT */
/*
 * cache_test.c - white-box suite of the encode-once cache (cache.c) with
 * windows (st_export_delta()): the base export options (st_live_opts.export) reach
 * every encoding, plain and windowed; a window's key names its base, so
 * two bases are two encodings and one base asked twice is one.
 *
 * Linked into the test binary with cache.c (live/module.mk).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "live.h"
#include "support/support.h"

static void add(struct st_engine *e, const char *leaf, uint64_t n)
{
	struct st_writer *w = st_writer_open(e);
	const char *f[] = { "main", leaf };
	size_t lens[] = { 4, strlen(leaf) };
	cr_assert_eq(st_writer_ingest_strs(w, f, lens, 2, &n), 0);
	st_writer_close(w);
	cr_assert(st_flush(e));
}

Test(live_cache, base_options_and_window_keys)
{
	struct st_engine *e = ts_engine_no_merger(1);
	add(e, "a", 3);
	struct st_snap *s1 = st_snap_acquire(e);
	add(e, "b", 2);
	add(e, "a", 1);
	struct st_snap *s2 = st_snap_acquire(e);

	uint64_t clamped = 0;
	struct st_export_opts o;
	st_export_opts_init(&o);
	o.sample_rate = 997;
	o.app_name = "base-opts";
	o.clamped = &clamped;
	o.metric = 0;
	struct st_live_cache c;
	st_live_cache_init(&c, &o);
	cr_assert_null(c.opts.clamped, "an out pointer is not shared by the encodings");

	/* Plain: the whole of s2, with the base options. */
	struct st_live_key k = { st_snap_version(s2), 0, ST_FMT_FLAMEBEARER, 0, 0, -1 };
	struct st_live_blob *b;
	cr_assert_eq(st_live_cache_get(&c, NULL, s2, &k, &b), 0);
	cr_expect(strstr(b->data, "\"sampleRate\":997") && strstr(b->data, "\"name\":\"base-opts\""),
		  "%s", b->data);
	cr_expect(strstr(b->data, "\"numTicks\":6"), "%s", b->data);
	st_live_blob_put(b);

	/* Window s1..s2: what came after s1 only, same options. */
	k.base = st_snap_version(s1);
	cr_assert_eq(st_live_cache_get(&c, s1, s2, &k, &b), 0);
	cr_expect(strstr(b->data, "\"sampleRate\":997"), "%s", b->data);
	cr_expect(strstr(b->data, "\"numTicks\":3"), "the window holds b 2 + a 1: %s", b->data);
	st_live_blob_put(b);
	k.fmt = ST_FMT_FOLDED;
	cr_assert_eq(st_live_cache_get(&c, s1, s2, &k, &b), 0);
	cr_expect_str_eq(b->data, "main;a 1\nmain;b 2\n");
	st_live_blob_put(b);
	/* SSE frames of a window carry the real version as their id. */
	k.fmt = ST_LIVE_FMT_SSE;
	cr_assert_eq(st_live_cache_get(&c, s1, s2, &k, &b), 0);
	char id[48];
	snprintf(id, sizeof(id), "id: %llu\n", (unsigned long long)st_snap_version(s2));
	cr_expect(!strncmp(b->data, id, strlen(id)), "%s", b->data);
	st_live_blob_put(b);

	/* One encoding per (version, base, ...): asked again, none more; a
	 * window based elsewhere (here: none) is another. */
	uint64_t enc = c.encodes;
	cr_assert_eq(st_live_cache_get(&c, s1, s2, &k, &b), 0);
	st_live_blob_put(b);
	cr_expect_eq(c.encodes, enc);
	k.base = 0;
	cr_assert_eq(st_live_cache_get(&c, NULL, s2, &k, &b), 0);
	cr_expect(strstr(b->data, "\"t\":6"), "%s", b->data);
	st_live_blob_put(b);
	cr_expect_eq(c.encodes, enc + 1);
	cr_expect_eq(clamped, 0);
	st_live_cache_fini(&c);
	st_snap_release(s1);
	st_snap_release(s2);
	st_engine_destroy(e);
}
