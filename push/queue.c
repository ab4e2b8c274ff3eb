/* SPDX-License-Identifier: MIT */
/*
 * queue.c - the bounded FIFO between the ticker (producer) and the sender.
 *
 * Invariants (all under q->mu):
 *   - count and bytes cover the waiting items plus the one in flight, and
 *     never exceed max / max_bytes after a put returns (an item larger than
 *     max_bytes alone is dropped at once).
 *   - Room is made oldest first: the in-flight item if it is waiting to be
 *     retried (it is marked abandoned; the sender stops retrying it and it
 *     is counted here, once), then the oldest waiting ones.  An item during
 *     an attempt is never dropped (it may be arriving right now: counting
 *     it dropped and sent would break the sums).
 *   - Every item put is, in the end, exactly one of: sent or rejected (the
 *     sender counts), dropped (here), or unsent at fini.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

uint64_t st_push_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void st_push_item_free(struct st_push_item *it)
{
	if (!it)
		return;
	free(it->body);
	free(it->query);
	free(it->stc);
	free(it);
}

void st_push_queue_init(struct st_push_queue *q, size_t max, size_t max_bytes)
{
	*q = (struct st_push_queue){ .max = max ? max : 1, .max_bytes = max_bytes };
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
}

void st_push_queue_fini(struct st_push_queue *q, uint64_t *unsent, uint64_t *unsent_value)
{
	struct st_push_item *it = q->head, *next;
	for (; it; it = next) {
		next = it->next;
		(*unsent)++;
		*unsent_value = st_sat_add(*unsent_value, it->value);
		st_push_item_free(it);
	}
	q->head = q->tail = NULL;
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
}

static size_t item_bytes(const struct st_push_item *it)
{
	return it->len + 64;
}

static void drop_locked(struct st_push_queue *q, const struct st_push_item *it)
{
	q->dropped++;
	q->dropped_value = st_sat_add(q->dropped_value, it->value);
	q->count--;
	q->bytes -= item_bytes(it);
}

/* Make room for one more item of n bytes, oldest first: true when done. */
static bool make_room_locked(struct st_push_queue *q, size_t n)
{
	while (q->count + 1 > q->max || q->bytes + n > q->max_bytes) {
		if (q->inflight && q->inflight_failed && !q->inflight_abandoned) {
			q->inflight_abandoned = true;
			drop_locked(q, q->inflight);
			pthread_cond_broadcast(&q->cv); /* the sender's backoff */
		} else if (q->head) {
			struct st_push_item *old = q->head;
			q->head = old->next;
			if (!q->head)
				q->tail = NULL;
			drop_locked(q, old);
			st_push_item_free(old);
		} else {
			return false;
		}
	}
	return true;
}

void st_push_queue_put(struct st_push_queue *q, struct st_push_item *it)
{
	size_t n = item_bytes(it);
	pthread_mutex_lock(&q->mu);
	if (n > q->max_bytes || !make_room_locked(q, n)) {
		/* Larger than the whole limit, or the only thing in the way is
		 * an item in its first attempt: this one cannot be kept. */
		q->dropped++;
		q->dropped_value = st_sat_add(q->dropped_value, it->value);
		pthread_mutex_unlock(&q->mu);
		st_push_item_free(it);
		return;
	}
	it->next = NULL;
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->count++;
	q->bytes += n;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

/* Wait on cv until deadline_ns at most: false when it has passed. */
static bool wait_until(struct st_push_queue *q, uint64_t deadline_ns)
{
	if (st_push_now_ns() >= deadline_ns)
		return false;
	struct timespec ts = { (time_t)(deadline_ns / 1000000000u), (long)(deadline_ns % 1000000000u) };
	return pthread_cond_timedwait(&q->cv, &q->mu, &ts) != ETIMEDOUT || st_push_now_ns() < deadline_ns;
}

/* The drain deadline has passed (stop given, deadline set). */
static bool past_deadline_locked(const struct st_push_queue *q)
{
	return q->stop && st_push_now_ns() >= q->deadline_ns;
}

struct st_push_item *st_push_queue_take(struct st_push_queue *q)
{
	struct st_push_item *it = NULL;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		if (past_deadline_locked(q))
			break;
		if (q->head) {
			it = q->head;
			q->head = it->next;
			if (!q->head)
				q->tail = NULL;
			q->inflight = it;
			q->inflight_failed = q->inflight_abandoned = false;
			break;
		}
		if (q->stop)
			break;
		pthread_cond_wait(&q->cv, &q->mu);
	}
	pthread_mutex_unlock(&q->mu);
	return it;
}

bool st_push_queue_backoff(struct st_push_queue *q, unsigned ms)
{
	uint64_t until = st_push_now_ns() + (uint64_t)ms * 1000000u;
	pthread_mutex_lock(&q->mu);
	q->inflight_failed = true;
	for (;;) {
		uint64_t end = q->stop && q->deadline_ns < until ? q->deadline_ns : until;
		if (q->inflight_abandoned || !wait_until(q, end))
			break;
	}
	bool go_on = !q->inflight_abandoned && !past_deadline_locked(q);
	if (go_on)
		q->inflight_failed = false; /* attempting again: not droppable */
	pthread_mutex_unlock(&q->mu);
	return go_on;
}

bool st_push_queue_done(struct st_push_queue *q)
{
	pthread_mutex_lock(&q->mu);
	struct st_push_item *it = q->inflight;
	bool abandoned = q->inflight_abandoned;
	if (it && !abandoned) {
		q->count--;
		q->bytes -= item_bytes(it);
	}
	q->inflight = NULL;
	q->inflight_failed = q->inflight_abandoned = false;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	st_push_item_free(it);
	return abandoned;
}

void st_push_queue_stop(struct st_push_queue *q, uint64_t deadline_ns)
{
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	q->deadline_ns = deadline_ns;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}
