/* SPDX-License-Identifier: MIT */
/*
 * window.c - windows instead of destruction: the snapshots kept so that
 * `window=Ns` and `window=mark` can be answered by differencing (st_export_delta()),
 * and the mark.
 *
 * The ring.  A server thread wakes every ST_LIVE_RING_PERIOD_MS (1 s; it
 * waits on `wake` with a deadline, st_live_ring_stop() ends the wait) and
 * takes the published snapshot (st_snap_acquire: no lock that ingest or the
 * merger takes).  An entry is a refcounted holder of one snapshot reference
 * and two times: t_first, when the ring first saw that version, and
 * t_last, the last tick it was still the published one (the ring only
 * moves t_last of its newest entry while the version stays the same), so
 * the snapshot was the profile during all of [t_first, t_last].
 *
 * Policy (exact).  After each tick the entries are thinned from the newest
 * to the oldest, by age = now - t_last:
 *
 *   age  < 10 s      every entry kept (one per tick: dense)
 *   10 s .. 2 min    one per 10 s bucket of t_last (the newest in it)
 *   2 min .. 10 min  one per 60 s bucket
 *   10 min .. 1 h    one per 300 s bucket
 *   >= 1 h           only the newest such entry (so that every N <= 3600
 *                    finds an entry at least N s old)
 *
 * Buckets are absolute (t_last / spacing), so an entry that ages into a
 * tier displaces the older member of its bucket and nothing cascades.  The
 * ring's first entry (the profile when the server started) is exempt from
 * the buckets, so a window reaching back to the start is answered from it;
 * only the last rule drops it.  At most 10 + 12 + 9 + 11 + 1 + 1 = 44
 * entries (ST_LIVE_RING_MAX = 48 is the array; past it the oldest goes,
 * which this policy never needs).
 *
 * window=Ns at time now: the target is now - N.  The base is the newest
 * entry with t_first <= target; when t_last >= target it was the profile
 * at the target and the window covers exactly N s, else it covers
 * now - t_last.  Worst-case excess over N: the gap between two kept
 * entries around age N, i.e. one period (1 s) plus the spacing of the tier
 * holding age N: N < 10: +1 s, N < 120: +11 s, N < 600: +61 s, N <= 3600:
 * +301 s (plus the merge interval, 10 ms, by which a published snapshot
 * trails ingest).  No entry old enough: a server younger than N answers
 * everything (base none, the span since the ring started); otherwise (N
 * beyond what the ring reaches, ~1 h) the oldest entry is the base and the
 * span says how much less than N is covered.
 *
 * The mark: POST /mark holds the snapshot current at that moment (one
 * holder; a new mark replaces it); window=mark differences against it, or
 * is everything when no mark was set.
 *
 * A base from before a reset (its generation differs from the current
 * snapshot's) makes the window everything since the reset (st_export_delta()): the
 * data before it is gone, so "the last N s" or "since the mark" can only
 * show what came after.  The span reported is still now - base time.
 *
 * Memory: st_snap_memory() of each distinct snapshot held (ring + mark,
 * each counted once).  Snapshots of the same trie shape share one
 * structure block (snapshot.c) that st_snap_memory() counts in each, so
 * the figure is an upper bound: with an unchanged shape a kept snapshot
 * really costs its counts, 8 bytes per node and metric.
 *
 * Locking: `mu` protects the entries, the mark and `stop`; it is never
 * held while a snapshot is acquired, exported or released.  A holder
 * handed out (st_live_ring_base) has its own reference, so the ring may
 * drop the entry meanwhile.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "live.h"

static const struct {
	uint64_t age_ms, spacing_ms;
} tiers[] = {
	{ 10000, 0 },
	{ 120000, 10000 },
	{ 600000, 60000 },
	{ 3600000, 300000 },
};
#define NTIERS (sizeof(tiers) / sizeof(tiers[0]))

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct st_live_held *st_live_held_get(struct st_live_held *h)
{
	/* Relaxed: a new reference is taken from one already held. */
	__atomic_add_fetch(&h->refs, 1, __ATOMIC_RELAXED);
	return h;
}

void st_live_held_put(struct st_live_held *h)
{
	if (h && __atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		st_snap_release(h->s);
		free(h);
	}
}

static struct st_live_held *held_new(struct st_snap *s, uint64_t t, bool first)
{
	struct st_live_held *h = malloc(sizeof(*h));
	if (!h)
		return NULL;
	*h = (struct st_live_held){ .refs = 1, .s = s, .t_first = t, .t_last = t, .first = first };
	return h;
}

void st_live_ring_init(struct st_live_ring *r, struct st_engine *e, uint64_t start_ms)
{
	memset(r, 0, sizeof(*r));
	r->e = e;
	r->start_ms = start_ms;
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->wake, &ca);
	pthread_condattr_destroy(&ca);
}

void st_live_ring_fini(struct st_live_ring *r)
{
	for (unsigned i = 0; i < r->n; i++)
		st_live_held_put(r->ent[i]);
	st_live_held_put(r->mark);
	r->n = 0;
	r->mark = NULL;
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->mu);
}

/* Thin the entries per the policy above; the dropped ones go to out[]. */
static unsigned thin(struct st_live_ring *r, uint64_t now, struct st_live_held **out)
{
	unsigned nout = 0, keep = 0;
	bool seen_old = false;
	unsigned ptier = NTIERS;
	uint64_t pbucket = 0;
	struct st_live_held *kept[ST_LIVE_RING_MAX];
	for (unsigned i = r->n; i-- > 0;) {
		struct st_live_held *h = r->ent[i];
		uint64_t age = now > h->t_last ? now - h->t_last : 0;
		unsigned t = 0;
		while (t < NTIERS && age >= tiers[t].age_ms)
			t++;
		bool drop;
		if (t == NTIERS) {
			drop = seen_old; /* keep only the newest past the last tier */
			seen_old = true;
		} else if (!tiers[t].spacing_ms) {
			drop = false;
		} else {
			uint64_t b = h->t_last / tiers[t].spacing_ms;
			drop = t == ptier && b == pbucket && !h->first;
			ptier = t;
			pbucket = b;
		}
		if (drop)
			out[nout++] = h;
		else
			kept[keep++] = h;
	}
	/* kept[] is newest first; the ring is oldest first. */
	for (unsigned i = 0; i < keep; i++)
		r->ent[i] = kept[keep - 1 - i];
	r->n = keep;
	return nout;
}

void st_live_ring_take(struct st_live_ring *r, struct st_snap *s, uint64_t now)
{
	struct st_live_held *drop[ST_LIVE_RING_MAX + 1];
	unsigned nd = 0;
	struct st_snap *unused = NULL;
	struct st_live_held *h = NULL;
	pthread_mutex_lock(&r->mu);
	struct st_live_held *last = r->n ? r->ent[r->n - 1] : NULL;
	if (last && st_snap_version(last->s) == st_snap_version(s)) {
		last->t_last = now; /* still the profile: the span grows */
		unused = s;
	} else if ((h = held_new(s, now, !r->taken++))) {
		if (r->n == ST_LIVE_RING_MAX) { /* never with this policy */
			drop[nd++] = r->ent[0];
			memmove(r->ent, r->ent + 1, (r->n - 1) * sizeof(r->ent[0]));
			r->n--;
		}
		r->ent[r->n++] = h;
	} else {
		unused = s; /* no memory: this tick is skipped */
	}
	nd += thin(r, now, drop + nd);
	pthread_mutex_unlock(&r->mu);
	st_snap_release(unused);
	for (unsigned i = 0; i < nd; i++)
		st_live_held_put(drop[i]);
}

struct st_live_held *st_live_ring_base(struct st_live_ring *r, const struct st_live_window *w,
				       uint64_t now, uint64_t *base_ms)
{
	struct st_live_held *h = NULL;
	pthread_mutex_lock(&r->mu);
	if (w->kind == ST_LIVE_WIN_MARK) {
		h = r->mark;
		*base_ms = h ? h->t_first : r->start_ms;
	} else if (w->kind == ST_LIVE_WIN_SECONDS) {
		uint64_t n = (uint64_t)w->seconds * 1000;
		uint64_t target = now > n ? now - n : 0;
		for (unsigned i = r->n; i-- > 0;) {
			if (r->ent[i]->t_first <= target) {
				h = r->ent[i];
				break;
			}
		}
		if (h) {
			*base_ms = h->t_last >= target ? target : h->t_last;
		} else if (target < r->start_ms || !r->n) {
			*base_ms = r->start_ms; /* younger than N: everything */
		} else {
			h = r->ent[0]; /* beyond the ring's reach: the oldest */
			*base_ms = h->t_first;
		}
	} else {
		*base_ms = r->start_ms;
	}
	if (h)
		st_live_held_get(h);
	pthread_mutex_unlock(&r->mu);
	return h;
}

uint64_t st_live_ring_mark(struct st_live_ring *r, struct st_snap *s, uint64_t now)
{
	struct st_live_held *h = held_new(s, now, false);
	if (!h) {
		st_snap_release(s);
		return 0;
	}
	pthread_mutex_lock(&r->mu);
	struct st_live_held *old = r->mark;
	r->mark = h;
	uint64_t id = ++r->marks;
	pthread_mutex_unlock(&r->mu);
	st_live_held_put(old);
	return id;
}

void st_live_ring_stats(struct st_live_ring *r, struct st_live_ring_stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&r->mu);
	for (unsigned i = 0; i < r->n; i++) {
		st->snapshots++;
		st->bytes += st_snap_memory(r->ent[i]->s);
	}
	if (r->mark) {
		uint64_t mv = st_snap_version(r->mark->s);
		bool in_ring = false;
		for (unsigned i = 0; i < r->n; i++)
			in_ring |= st_snap_version(r->ent[i]->s) == mv;
		if (!in_ring) {
			st->snapshots++;
			st->bytes += st_snap_memory(r->mark->s);
		}
		st->mark_version = mv;
	}
	st->marks = r->marks;
	pthread_mutex_unlock(&r->mu);
	st->max = ST_LIVE_RING_MAX + 1;
}

/* ------------------------------------------------------------- the thread */

static void *ring_main(void *arg)
{
	struct st_live_ring *r = arg;
	uint64_t next = now_ms();
	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		uint64_t now = now_ms();
		if (now < next) {
			struct timespec ts = { (time_t)(next / 1000), (long)(next % 1000) * 1000000 };
			pthread_cond_timedwait(&r->wake, &r->mu, &ts);
			continue; /* woken, timed out or spurious: look again */
		}
		pthread_mutex_unlock(&r->mu);
		st_live_ring_take(r, st_snap_acquire(r->e), now);
		next += ST_LIVE_RING_PERIOD_MS;
		if (next <= now) /* late (a stopped process): no burst of ticks */
			next = now + ST_LIVE_RING_PERIOD_MS;
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

int st_live_ring_start(struct st_live_ring *r, struct st_engine *e)
{
	st_live_ring_init(r, e, now_ms());
	int err = pthread_create(&r->thr, NULL, ring_main, r);
	if (err) {
		st_live_ring_fini(r);
		return -err;
	}
	return 0;
}

void st_live_ring_stop(struct st_live_ring *r)
{
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->wake);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thr, NULL);
	st_live_ring_fini(r);
}

/* ------------------------------------------------------------ parameter */

int st_live_window_parse(const char *v, struct st_live_window *w, char *err, size_t n)
{
	memset(w, 0, sizeof(*w));
	if (!strcmp(v, "all")) {
		w->kind = ST_LIVE_WIN_ALL;
		return 0;
	}
	if (!strcmp(v, "mark")) {
		w->kind = ST_LIVE_WIN_MARK;
		return 0;
	}
	size_t len = strlen(v);
	long x = 0;
	bool ok = len >= 2 && len <= 6 && v[len - 1] == 's';
	for (size_t i = 0; ok && i + 1 < len; i++) {
		ok = v[i] >= '0' && v[i] <= '9' && !(i == 0 && v[i] == '0');
		x = x * 10 + (v[i] - '0');
	}
	if (!ok || x < 1 || x > 86400) {
		snprintf(err, n, "window: wants all, mark or Ns with N in 1..86400, got '%.64s'", v);
		return -EINVAL;
	}
	w->kind = ST_LIVE_WIN_SECONDS;
	w->seconds = x;
	return 0;
}
