/* SPDX-License-Identifier: MIT */
/*
 * window_test.c - white-box suite of the window ring (window.c), driven
 * with a simulated clock: a real engine publishes one new version per
 * simulated second (or none, when idle) and the ring takes it, for two
 * simulated hours.  Checks the policy's promises at every tick: at most 43
 * entries, every window=Ns base is the profile as it was at or before
 * now - N (covers at least N s) and exceeds N by at most the documented
 * bound, a server younger than N answers everything, an idle stretch gives
 * exact (empty) windows, the mark, and the parameter's syntax.
 *
 * Linked into the test binary with window.c (live/module.mk).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "live.h"
#include "support/support.h"

#define T0 1000000u /* the simulated monotonic clock at start, ms */
#define HOURS2 7200

/* The excess over N that window.c documents, in ms. */
static uint64_t bound_ms(long n)
{
	if (n < 10)
		return 1000;
	if (n < 120)
		return 11000;
	if (n < 600)
		return 61000;
	return 301000;
}

static void one_more(struct st_engine *e, struct st_writer *w)
{
	const char *f[] = { "main", "tick" };
	size_t lens[] = { 4, 4 };
	uint64_t one = 1;
	cr_assert_eq(st_writer_ingest_strs(w, f, lens, 2, &one), 0);
	cr_assert(st_flush(e));
}

Test(live_ring, policy_bounds_count_and_error)
{
	struct st_engine *e = ts_engine_no_merger(1);
	struct st_writer *w = st_writer_open(e);
	struct st_live_ring r;
	st_live_ring_init(&r, e, T0);
	/* version_at[k]: the published version during simulated second k. */
	static uint64_t version_at[HOURS2 + 1];
	static const long ns[] = { 1, 2, 5, 9, 10, 11, 30, 60, 119, 120, 300, 599, 600, 1800, 3599, 3600 };
	unsigned most = 0;
	for (unsigned k = 0; k <= HOURS2; k++) {
		bool idle = k >= 5000 && k < 5030; /* 30 s without a new version */
		if (k && !idle)
			one_more(e, w);
		uint64_t now = T0 + (uint64_t)k * 1000;
		struct st_snap *s = st_snap_acquire(e);
		version_at[k] = st_snap_version(s);
		st_live_ring_take(&r, s, now);
		cr_assert_leq(r.n, 44, "tick %u: %u entries", k, r.n);
		most = r.n > most ? r.n : most;
		for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
			struct st_live_window win = { ST_LIVE_WIN_SECONDS, ns[i] };
			uint64_t base_ms;
			struct st_live_held *h = st_live_ring_base(&r, &win, now, &base_ms);
			uint64_t n_ms = (uint64_t)ns[i] * 1000;
			if (k * 1000ull < n_ms) {
				cr_assert_null(h, "tick %u N %ld: younger than N answers all", k, ns[i]);
				cr_assert_eq(base_ms, T0);
				continue;
			}
			cr_assert_not_null(h, "tick %u N %ld: no base", k, ns[i]);
			cr_assert_leq(base_ms, now - n_ms, "tick %u N %ld: covers less than N", k, ns[i]);
			uint64_t excess = now - n_ms - base_ms;
			cr_assert_leq(excess, bound_ms(ns[i]), "tick %u N %ld: %llu ms over N", k, ns[i],
				      (unsigned long long)excess);
			/* The base is the profile as it was at base_ms. */
			cr_assert_eq(st_snap_version(h->s), version_at[(base_ms - T0) / 1000],
				     "tick %u N %ld", k, ns[i]);
			if (idle && k >= 5010 && ns[i] <= 10)
				cr_assert_eq(st_snap_version(h->s), version_at[k],
					     "idle: the last %ld s hold nothing new", ns[i]);
			st_live_held_put(h);
		}
	}
	cr_log_info("ring: at most %u entries over 2 h of one version per second", most);
	cr_assert_geq(most, 38, "the tiers are used (%u)", most);

	/* The mark: a base at the moment it was set, replaced by the next. */
	struct st_live_window mw = { ST_LIVE_WIN_MARK, 0 };
	uint64_t base_ms, now = T0 + (HOURS2 + 1) * 1000ull;
	cr_assert_null(st_live_ring_base(&r, &mw, now, &base_ms), "no mark yet: everything");
	cr_assert_eq(st_live_ring_mark(&r, st_snap_acquire(e), now), 1);
	uint64_t mv = st_snap_version(r.mark->s);
	one_more(e, w);
	cr_assert_eq(st_live_ring_mark(&r, st_snap_acquire(e), now + 5), 2);
	struct st_live_held *h = st_live_ring_base(&r, &mw, now + 10, &base_ms);
	cr_assert(h && st_snap_version(h->s) == mv + 1 && base_ms == now + 5);
	st_live_held_put(h);
	struct st_live_ring_stats rs;
	st_live_ring_stats(&r, &rs);
	cr_assert_eq(rs.marks, 2);
	cr_assert_eq(rs.mark_version, mv + 1);
	cr_assert_eq(rs.snapshots, r.n + 1, "the mark is not in the ring: counted once more");
	cr_assert_gt(rs.bytes, 0);
	st_writer_close(w);
	st_live_ring_fini(&r);
	st_engine_destroy(e);
}

Test(live_ring, window_parameter)
{
	struct st_live_window w;
	char err[256];
	cr_assert_eq(st_live_window_parse("all", &w, err, sizeof(err)), 0);
	cr_assert_eq(w.kind, ST_LIVE_WIN_ALL);
	cr_assert_eq(st_live_window_parse("mark", &w, err, sizeof(err)), 0);
	cr_assert_eq(w.kind, ST_LIVE_WIN_MARK);
	cr_assert_eq(st_live_window_parse("10s", &w, err, sizeof(err)), 0);
	cr_assert(w.kind == ST_LIVE_WIN_SECONDS && w.seconds == 10);
	cr_assert_eq(st_live_window_parse("86400s", &w, err, sizeof(err)), 0);
	const char *bad[] = { "", "s", "0s", "01s", "86401s", "1", "-1s", "1.5s", "10S", "1ss",
			      "9999999s", "All", " 1s" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(st_live_window_parse(bad[i], &w, err, sizeof(err)), -EINVAL, "'%s'", bad[i]);
		cr_assert(strstr(err, "window:"), "'%s': %s", bad[i], err);
	}
}
