/* SPDX-License-Identifier: MIT */
/*
 * order.c - record io's field order, changed while the run goes on (POST
 * /order of record --serve), and the decode step that applies it.
 *
 * The order is applied in user space: the kernel sends the same record
 * whatever the order, and each consumer builds an event's frames when it
 * decodes it.  The order in force is an immutable version {epoch, fields}
 * behind one atomic pointer, `cur`; set() swaps in a new version, waits,
 * then resets the engine.
 *
 * THE RULE (R-ORDER): once st_io_order_set() has returned 0, no stack built
 * with an earlier order is in the engine, and none is ingested later.  So
 * every snapshot published after set() returned, and the output written at
 * the end, holds stacks of one order: the one in force at that time.
 *
 * How it holds (a grace period, as in RCU, with the consumers as readers):
 *   consumer, per event:  v = cur (acquire); if v->epoch != the slot's last,
 *                         slot.seen = v->epoch (release); build with v; ingest
 *   consumer, idle:       after every pass over its ring (25 ms at most when
 *                         idle), the same load and store, building nothing
 *   set():                cur = new (seq_cst);
 *                         wait until every slot's seen >= new epoch;
 *                         st_reset(engine); free the old version.
 * A consumer stores seen = E only after it loaded version E, and its loads
 * of cur never go back (coherence), so seen >= E_new means every stack it
 * built with an older version was ingested before that store (program
 * order + release/acquire): the ingest happened before the reset, which
 * discards it (st_reset: "samples ingested before the call are
 * discarded").  Stacks of the new order that race with the reset are
 * counted once or not at all, as any sample racing a reset; they are of
 * the new order either way.  Nothing on the event path blocks: one load of
 * a read-mostly pointer and, once per swap, a store to the consumer's own
 * line and a wake-up.
 *
 * Slots: seen = OFFLINE (UINT64_MAX: not started, or ended: holds nothing,
 * never waited for), ONLINE (0: started, version unknown yet) or an epoch
 * (>= 1).  Coming online is store ONLINE (seq_cst), then load cur
 * (seq_cst): set()'s store of cur and its loads of seen are seq_cst too, so
 * either set() sees the slot not OFFLINE and waits for it, or the consumer's
 * load comes after set()'s store in the single total order and it starts
 * with the new version.  Going offline (after the last ingest) is a release
 * store of OFFLINE.
 *
 * The wait is bounded (10 s; a consumer passes a check point at least every
 * 25 ms plus one event while it runs, and goes offline when it stops).  If
 * it ever expires, set() returns -ETIMEDOUT with the new order in force and
 * the engine NOT reset (a reset could keep an old stack that lands after
 * it): the caller says so, and a later reset clears the mix.
 *
 * set() calls are serialised (set_mu), which also guards attach/detach and
 * the versions' lifetime for get().  The old version is freed once the
 * grace period is over (or kept until st_io_order_free() after a timeout).
 */
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "order.h"

#define SLOT_OFFLINE UINT64_MAX
#define SLOT_ONLINE 0
#define WAIT_MS_DEFAULT 10000

struct order_ver {
	uint64_t epoch; /* >= 1 */
	unsigned n;
	unsigned char fields[ST_IOF_COUNT_];
	struct order_ver *retired_next; /* kept after a timed-out set() */
};

struct st_io_order_slot {
	alignas(64) _Atomic uint64_t seen; /* written by its consumer only */
	uint64_t last;                     /* the consumer's copy of seen */
	struct st_io_order *o;
};

struct st_io_order {
	_Atomic(struct order_ver *) cur;
	pthread_mutex_t set_mu;  /* set() calls, attach/detach, get() */
	pthread_mutex_t wake_mu; /* with wake_cv: a slot moved */
	pthread_cond_t wake_cv;
	struct st_engine *e;     /* the attached run's engine, or NULL */
	struct st_io_order_slot *slots;
	unsigned nslots;
	unsigned wait_ms;
	struct order_ver *retired;
};

static struct order_ver *ver_new(const unsigned char *fields, unsigned n, uint64_t epoch)
{
	if (!n || n > ST_IOF_COUNT_)
		return errno = EINVAL, NULL;
	for (unsigned i = 0; i < n; i++)
		if (fields[i] >= ST_IOF_COUNT_)
			return errno = EINVAL, NULL;
	struct order_ver *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->epoch = epoch;
	v->n = n;
	memcpy(v->fields, fields, n);
	return v;
}

struct st_io_order *st_io_order_new(const unsigned char *fields, unsigned n)
{
	struct st_io_order *o = calloc(1, sizeof(*o));
	struct order_ver *v = o ? ver_new(fields, n, 1) : NULL;
	pthread_condattr_t ca;
	if (!v || pthread_condattr_init(&ca)) {
		free(o);
		free(v);
		return NULL;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&o->wake_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&o->set_mu, NULL);
	pthread_mutex_init(&o->wake_mu, NULL);
	atomic_init(&o->cur, v);
	o->wait_ms = WAIT_MS_DEFAULT;
	return o;
}

void st_io_order_free(struct st_io_order *o)
{
	if (!o)
		return;
	free(o->slots);
	free(atomic_load(&o->cur));
	for (struct order_ver *v = o->retired, *next; v; v = next) {
		next = v->retired_next;
		free(v);
	}
	pthread_mutex_destroy(&o->set_mu);
	pthread_mutex_destroy(&o->wake_mu);
	pthread_cond_destroy(&o->wake_cv);
	free(o);
}

void st_io_order_set_wait_ms(struct st_io_order *o, unsigned ms)
{
	pthread_mutex_lock(&o->set_mu);
	o->wait_ms = ms;
	pthread_mutex_unlock(&o->set_mu);
}

unsigned st_io_order_get(struct st_io_order *o, unsigned char fields[ST_IOF_COUNT_])
{
	pthread_mutex_lock(&o->set_mu); /* the version stays alive meanwhile */
	const struct order_ver *v = atomic_load_explicit(&o->cur, memory_order_acquire);
	unsigned n = v->n;
	memcpy(fields, v->fields, n);
	pthread_mutex_unlock(&o->set_mu);
	return n;
}

/* ------------------------------------------------------------ run side */

int st_io_order_attach(struct st_io_order *o, struct st_engine *e, unsigned nslots)
{
	struct st_io_order_slot *s = aligned_alloc(64, sizeof(*s) * (nslots ? nslots : 1));
	if (!s)
		return -ENOMEM;
	for (unsigned i = 0; i < nslots; i++) {
		atomic_init(&s[i].seen, SLOT_OFFLINE);
		s[i].last = SLOT_OFFLINE;
		s[i].o = o;
	}
	pthread_mutex_lock(&o->set_mu);
	o->slots = s;
	o->nslots = nslots;
	o->e = e;
	pthread_mutex_unlock(&o->set_mu);
	return 0;
}

void st_io_order_detach(struct st_io_order *o)
{
	pthread_mutex_lock(&o->set_mu); /* no set() is waiting or resetting */
	free(o->slots);
	o->slots = NULL;
	o->nslots = 0;
	o->e = NULL;
	pthread_mutex_unlock(&o->set_mu);
}

/* The slot moved: wake set()'s wait (rare: once per swap and consumer). */
static void slot_moved(struct st_io_order_slot *s, uint64_t seen)
{
	atomic_store_explicit(&s->seen, seen, memory_order_release);
	pthread_mutex_lock(&s->o->wake_mu);
	pthread_cond_broadcast(&s->o->wake_cv);
	pthread_mutex_unlock(&s->o->wake_mu);
}

/* The version in force, noting its epoch in the slot when it is new to it. */
static const struct order_ver *slot_enter(struct st_io_order_slot *s)
{
	const struct order_ver *v = atomic_load_explicit(&s->o->cur, memory_order_acquire);
	if (v->epoch != s->last) {
		s->last = v->epoch;
		slot_moved(s, v->epoch);
	}
	return v;
}

struct st_io_order_slot *st_io_order_online(struct st_io_order *o, unsigned i)
{
	struct st_io_order_slot *s = &o->slots[i];
	atomic_store(&s->seen, SLOT_ONLINE); /* seq_cst, then the seq_cst load: see the top */
	const struct order_ver *v = atomic_load(&o->cur);
	s->last = v->epoch;
	slot_moved(s, v->epoch);
	return s;
}

void st_io_order_quiet(struct st_io_order_slot *s)
{
	if (s)
		slot_enter(s);
}

void st_io_order_offline(struct st_io_order_slot *s)
{
	if (s) {
		s->last = SLOT_OFFLINE;
		slot_moved(s, SLOT_OFFLINE);
	}
}

int st_io_order_ingest(struct st_io_order_slot *s, struct st_writer *w, const struct st_io_rec *r,
		       const char *path, size_t path_len, struct st_io_frames *fr)
{
	const struct order_ver *v = slot_enter(s);
	st_io_frames_build(r, v->fields, v->n, path, path_len, fr);
	uint64_t val[ST_IOM_N];
	st_io_values(r, val);
	return st_writer_ingest_strs(w, fr->p, fr->len, fr->n, val);
}

/* ------------------------------------------------------------ set() */

/* Every attached slot is OFFLINE or has seen epoch >= e (set_mu held). */
static bool caught_up(const struct st_io_order *o, uint64_t e)
{
	for (unsigned i = 0; i < o->nslots; i++)
		if (atomic_load(&o->slots[i].seen) < e) /* seq_cst: see the top */
			return false;
	return true;
}

/* Wait (bounded) until caught_up(o, e): 0 or -ETIMEDOUT. */
static int wait_caught_up(struct st_io_order *o, uint64_t e)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += o->wait_ms / 1000;
	until.tv_nsec += (long)(o->wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	int err = 0;
	pthread_mutex_lock(&o->wake_mu);
	/* A slot stores seen before it takes wake_mu to broadcast, so a move
	 * after this check wakes the wait below: none is missed. */
	while (!caught_up(o, e) && err != ETIMEDOUT)
		err = pthread_cond_timedwait(&o->wake_cv, &o->wake_mu, &until);
	bool done = caught_up(o, e);
	pthread_mutex_unlock(&o->wake_mu);
	return done ? 0 : -ETIMEDOUT;
}

int st_io_order_set(struct st_io_order *o, const unsigned char *fields, unsigned n)
{
	pthread_mutex_lock(&o->set_mu);
	struct order_ver *old = atomic_load_explicit(&o->cur, memory_order_relaxed);
	struct order_ver *v = ver_new(fields, n, old->epoch + 1);
	if (!v) {
		int err = -errno;
		pthread_mutex_unlock(&o->set_mu);
		return err;
	}
	atomic_store(&o->cur, v); /* seq_cst: see the top */
	int err = o->nslots ? wait_caught_up(o, v->epoch) : 0;
	if (!err) {
		if (o->e)
			st_reset(o->e);
		free(old); /* no consumer holds it any more */
	} else {
		old->retired_next = o->retired; /* a late consumer may still read it */
		o->retired = old;
	}
	pthread_mutex_unlock(&o->set_mu);
	return err;
}
