/* SPDX-License-Identifier: MIT */
/*
 * server.h - the live view: an HTTP server (libmicrohttpd) that shows an
 * engine's snapshots while ingest goes on (issue 17, docs/live.md).
 *
 *   GET  /                      the live flamegraph page (+ /app.js, /app.css)
 *   GET  /events                Server-Sent Events, ior JSON per new version
 *   GET  /api/snapshot          any export format, ETag "v<version>", cached
 *   GET  /api/status            version, totals, clients, scrape windows (JSON),
 *                               + the source's figures (hooks.status_get)
 *   GET  /debug/pprof/profile   what was ingested during the next N seconds
 *   POST /reset, GET|POST /order   ior's semantics, through hooks
 *   POST /mark                  a mark for window=mark (nothing cleared)
 *
 * /events and /api/snapshot take window=all|Ns|mark: the difference of the
 * current snapshot and one kept for windows (live/window.c).
 *
 * The server only ever reads snapshots (st_snap_acquire/release): it takes
 * no lock that ingest takes, and a slow or hostile client costs it at most
 * one reference on a shared, already encoded buffer.  Live uses the public
 * API of engine/include/ alone (arrows: cli -> live -> formats -> core).
 */
#ifndef ST_LIVE_SERVER_H
#define ST_LIVE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shardtrie.h"

struct st_export_opts;

/* What a source can do beyond snapshots.  Every hook may be NULL. */
struct st_live_hooks {
	/* POST /reset: start a new baseline.  NULL = st_reset(engine).
	 * Returns 0 or -errno (500). */
	int (*reset)(void *arg);
	/* GET /order: a malloc'd {"fields":[...]}; NULL hook = the source has
	 * no field order (404). */
	char *(*order_get)(void *arg);
	/* POST /order with fields[0..n): 0, or -EINVAL with *why set (400). */
	int (*order_set)(void *arg, const char *const *fields, size_t n, const char **why);
	void *arg;
	/* --- appended (issue 18): GET /api/status: a malloc'd JSON object
	 * whose members are added to the answer, e.g. {"push":{...}} (the
	 * page shows a "push" object's figures).  A member the server sets
	 * itself is kept; NULL, or not a JSON object: nothing added.  Called
	 * from the server's threads, any time until st_live_stop. */
	char *(*status_get)(void *arg);
};

struct st_live_opts {
	size_t size;            /* sizeof(struct st_live_opts) */
	const char *addr;       /* numeric address to bind; NULL = 127.0.0.1 */
	unsigned port;          /* 0 = a free port */
	unsigned tick_ms;       /* /events: at most one event per tick (200) */
	const char *token;      /* bearer token every request must carry, or
				   NULL; copied */
	unsigned metric;        /* default metric of every endpoint (0) */
	unsigned max_conns;     /* concurrent connections (64) */
	unsigned timeout_s;     /* idle connection timeout (30) */
	size_t max_body;        /* request body limit, 413 past it (64 KiB) */
	unsigned sse_slow_ms;   /* an /events client still reading an event
				   this long after a newer one exists is
				   dropped (5000) */
	unsigned keepalive_ms;  /* /events comment keep-alive period (15000) */
	double events_min_fraction; /* /events default min_fraction (0.001) */
	struct st_live_hooks hooks;
	/* --- appended (issue 17, windows): */
	const struct st_export_opts *export; /* base options of every encoded
				   answer (units, sample rate...; metric,
				   min_fraction and max_nodes come from the
				   request); NULL = defaults.  Copied; its
				   strings must outlive the server. */
	unsigned request_timeout_s; /* a request's headers and body must
				   arrive within this many seconds of the
				   connection's start or the previous answer's
				   end, else the connection is closed
				   (0 = timeout_s) */
};
void st_live_opts_init(struct st_live_opts *o);

/* Whether addr is a numeric address the server can bind: 1 loopback
 * (127.0.0.0/8, ::1), 0 another one, -EINVAL not a numeric address. */
int st_live_addr_kind(const char *addr);

struct st_live;
/* Start serving engine e (which must outlive the server).  NULL with errno
 * set (EINVAL bad option, EADDRINUSE, ...). */
struct st_live *st_live_start(struct st_engine *e, const struct st_live_opts *o);
/* The port bound (the real one when 0 was asked). */
unsigned st_live_port(const struct st_live *l);
/* Stop: wakes every waiting /events and /debug/pprof request, closes the
 * connections and frees the server. */
void st_live_stop(struct st_live *l);

#endif
