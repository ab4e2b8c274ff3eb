/* SPDX-License-Identifier: MIT */
/*
 * internal.h - what the files of push/ share (not used outside push/).
 *
 *   queue   the bounded FIFO of encoded intervals between the ticker and
 *           the sender (queue.c)
 *   send    one POST to Pyroscope's /ingest and what its answer means (send.c)
 */
#ifndef ST_PUSH_INTERNAL_H
#define ST_PUSH_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "push.h"
#include "shardtrie_export.h"

/* ------------------------------------------------------------- queue */

/* One closed interval, encoded and ready to send. */
struct st_push_item {
	struct st_push_item *next;
	char *body;    /* the profile (pprof: gzipped profile.proto) */
	size_t len;
	char *query;   /* everything after "/ingest?" */
	char *stc;     /* pprof: the sample_type_config JSON */
	uint64_t value; /* the interval's total (the pushed metric) */
};
void st_push_item_free(struct st_push_item *it);

struct st_push_queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;       /* an item came, the in-flight one was
				    abandoned, or stop */
	size_t max, max_bytes;
	struct st_push_item *head, *tail; /* waiting, oldest first */
	size_t count, bytes;     /* waiting + in flight */
	struct st_push_item *inflight; /* taken by the sender, not done */
	bool inflight_failed;    /* it has failed once: droppable */
	bool inflight_abandoned; /* dropped while in flight: do not retry */
	bool stop;               /* no more puts; the sender drains */
	uint64_t deadline_ns;    /* with stop: when draining ends */
	uint64_t dropped, dropped_value;
};
void st_push_queue_init(struct st_push_queue *q, size_t max, size_t max_bytes);
/* Free what is left; *unsent, *unsent_value += it. */
void st_push_queue_fini(struct st_push_queue *q, uint64_t *unsent, uint64_t *unsent_value);
/* Append it (ownership passes).  Oldest first, intervals are dropped until
 * it fits: the in-flight one if it has failed once, else the oldest
 * waiting; an item bigger than the whole byte limit is itself dropped. */
void st_push_queue_put(struct st_push_queue *q, struct st_push_item *it);
/* The sender: wait for the oldest item (it becomes in flight); NULL once
 * stopped and nothing waits, or once the drain deadline has passed. */
struct st_push_item *st_push_queue_take(struct st_push_queue *q);
/* The in-flight attempt failed: wait up to ms (less when the drain deadline
 * comes first) before the next.  false: do not retry (abandoned, or the
 * deadline passed); the item is still in flight: finish it with _done. */
bool st_push_queue_backoff(struct st_push_queue *q, unsigned ms);
/* The in-flight item is finished (sent, rejected or abandoned): freed.
 * Returns true when it had been dropped (abandoned) meanwhile. */
bool st_push_queue_done(struct st_push_queue *q);
/* No more puts; the sender drains until deadline_ns (CLOCK_MONOTONIC). */
void st_push_queue_stop(struct st_push_queue *q, uint64_t deadline_ns);

uint64_t st_push_now_ns(void); /* CLOCK_MONOTONIC */

/* ------------------------------------------------------------- send */

enum st_push_outcome {
	ST_PUSH_SENT,     /* 2xx */
	ST_PUSH_RETRY,    /* refused, timeout, 5xx, 429: try again */
	ST_PUSH_REJECTED, /* another 4xx (or 3xx): a clear error, not retried */
};

struct st_push_sender;
/* A libcurl handle for url with the credentials of o (copied). */
struct st_push_sender *st_push_sender_new(const struct st_push_opts *o);
void st_push_sender_free(struct st_push_sender *s);
/* POST it once.  *retry_after_ms: the server's Retry-After (0 = none);
 * *status the HTTP status (0: no answer); why: a one-line reason (the
 * server's answer for a rejection, never a credential). */
enum st_push_outcome st_push_send(struct st_push_sender *s, const struct st_push_item *it,
				  long *status, unsigned *retry_after_ms, char *why,
				  size_t whylen);

#endif
