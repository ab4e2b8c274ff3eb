/* SPDX-License-Identifier: MIT */
/*
 * deadline.c - the request-time limit: a request's headers and body must
 * arrive within request_timeout_s of the connection's start (or of the end
 * of the previous answer on a kept-alive connection).  libmicrohttpd's own
 * timeout counts idle time only, so a client trickling a byte per timeout
 * would keep its slot forever; this closes it.
 *
 *   connection opened (MHD notify STARTED)   armed: deadline = now + limit
 *   request received whole (routed)          disarmed: the answer may take
 *                                            long (/events, pprof windows);
 *                                            the idle timeout still applies
 *   answer done (MHD request completed)      armed again (next request)
 *   connection closed (MHD notify CLOSED)    forgotten
 *
 * A thread waits (on `wake`, with the earliest deadline as its own) and
 * shuts down the socket of a connection past its deadline: the
 * connection's thread then sees the end of its input and libmicrohttpd
 * closes it as usual.  Invariants: `mu` protects the list, every deadline
 * and `stop`; a connection is in the list from STARTED to CLOSED, and
 * libmicrohttpd notifies CLOSED before it closes the socket, so under `mu`
 * a listed fd is still that connection's (never a reused number).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "http.h"

static void list_add(struct st_live_deadlines *d, struct st_live_conn *c)
{
	c->prev = &d->head;
	c->next = d->head.next;
	d->head.next->prev = c;
	d->head.next = c;
}

static void list_del(struct st_live_conn *c)
{
	c->prev->next = c->next;
	c->next->prev = c->prev;
}

struct st_live_conn *st_live_conn_open(struct st_live_deadlines *d, int fd)
{
	struct st_live_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL; /* then this connection has only the idle timeout */
	c->fd = fd;
	pthread_mutex_lock(&d->mu);
	c->deadline_ms = d->limit_ms ? st_live_now_ms() + d->limit_ms : 0;
	list_add(d, c);
	pthread_cond_broadcast(&d->wake);
	pthread_mutex_unlock(&d->mu);
	return c;
}

void st_live_conn_arm(struct st_live_deadlines *d, struct st_live_conn *c, bool on)
{
	if (!c)
		return;
	pthread_mutex_lock(&d->mu);
	c->deadline_ms = on && d->limit_ms ? st_live_now_ms() + d->limit_ms : 0;
	if (c->deadline_ms)
		pthread_cond_broadcast(&d->wake);
	pthread_mutex_unlock(&d->mu);
}

void st_live_conn_close(struct st_live_deadlines *d, struct st_live_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&d->mu);
	list_del(c);
	pthread_mutex_unlock(&d->mu);
	free(c);
}

static void *deadline_main(void *arg)
{
	struct st_live_deadlines *d = arg;
	pthread_mutex_lock(&d->mu);
	while (!d->stop) {
		uint64_t now = st_live_now_ms(), next = 0;
		for (struct st_live_conn *c = d->head.next; c != &d->head; c = c->next) {
			if (!c->deadline_ms)
				continue;
			if (c->deadline_ms <= now) {
				c->deadline_ms = 0; /* once */
				shutdown(c->fd, SHUT_RDWR);
				d->closed++;
			} else if (!next || c->deadline_ms < next) {
				next = c->deadline_ms;
			}
		}
		if (!next) {
			pthread_cond_wait(&d->wake, &d->mu);
		} else {
			struct timespec ts = { (time_t)(next / 1000), (long)(next % 1000) * 1000000 };
			pthread_cond_timedwait(&d->wake, &d->mu, &ts);
		}
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

int st_live_deadlines_start(struct st_live_deadlines *d, unsigned limit_s)
{
	memset(d, 0, sizeof(*d));
	d->limit_ms = (uint64_t)limit_s * 1000;
	d->head.next = d->head.prev = &d->head;
	pthread_mutex_init(&d->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->wake, &ca);
	pthread_condattr_destroy(&ca);
	int err = pthread_create(&d->thr, NULL, deadline_main, d);
	if (err) {
		pthread_cond_destroy(&d->wake);
		pthread_mutex_destroy(&d->mu);
		return -err;
	}
	return 0;
}

/* After the daemon stopped (every connection closed and forgotten). */
void st_live_deadlines_stop(struct st_live_deadlines *d)
{
	pthread_mutex_lock(&d->mu);
	d->stop = true;
	pthread_cond_broadcast(&d->wake);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->thr, NULL);
	pthread_cond_destroy(&d->wake);
	pthread_mutex_destroy(&d->mu);
}

uint64_t st_live_deadlines_closed(struct st_live_deadlines *d)
{
	pthread_mutex_lock(&d->mu);
	uint64_t n = d->closed;
	pthread_mutex_unlock(&d->mu);
	return n;
}
