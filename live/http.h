/* SPDX-License-Identifier: MIT */
/*
 * http.h - what the HTTP side of live/ shares (server.c, http.c, api.c,
 * events.c); not used outside live/.
 *
 *   server.c  lifetime, request checks, routing, the page's files
 *   http.c    replies (headers every answer carries), query parameters,
 *             clocks and waits that st_live_stop() ends
 *   api.c     /api/snapshot, /api/status, /debug/pprof/profile, /reset,
 *             /order
 *   events.c  /events (Server-Sent Events)
 *   deadline.c  the request-time limit (a thread closing connections whose
 *             request did not arrive whole in time)
 *
 * Every endpoint runs on its connection's own thread (libmicrohttpd's
 * thread per connection) and may block it; nothing else.
 */
#ifndef ST_LIVE_HTTP_H
#define ST_LIVE_HTTP_H

#include <microhttpd.h>
#include <stdbool.h>

#include "live.h"
#include "server.h"

#define NHOSTS 3

/* deadline.c: one per open connection (libmicrohttpd's socket context). */
struct st_live_conn {
	struct st_live_conn *prev, *next;
	int fd;
	uint64_t deadline_ms; /* 0 = none (request received, or no limit) */
};
struct st_live_deadlines {
	uint64_t limit_ms;     /* set before the thread starts */
	pthread_t thr;
	pthread_mutex_t mu;    /* protects everything below */
	pthread_cond_t wake;   /* CLOCK_MONOTONIC */
	bool stop;
	struct st_live_conn head; /* circular list of open connections */
	uint64_t closed;       /* connections closed for their deadline */
};
int st_live_deadlines_start(struct st_live_deadlines *d, unsigned limit_s);
void st_live_deadlines_stop(struct st_live_deadlines *d);
uint64_t st_live_deadlines_closed(struct st_live_deadlines *d);
struct st_live_conn *st_live_conn_open(struct st_live_deadlines *d, int fd); /* NULL: no memory */
void st_live_conn_arm(struct st_live_deadlines *d, struct st_live_conn *c, bool on);
void st_live_conn_close(struct st_live_deadlines *d, struct st_live_conn *c);

/*
 * The server.  Fields without a note are set by st_live_start() before the
 * daemon runs and only read after (the daemon's thread creation orders them).
 */
struct st_live {
	struct st_engine *e;
	struct st_live_opts o;   /* addr and token cleared: not kept */
	char *token;             /* owned copy, or NULL */
	struct MHD_Daemon *d;
	unsigned port;           /* the bound one */
	bool loopback;
	char hosts[NHOSTS][96];  /* Host values naming us (loopback only) */
	struct st_live_cache cache; /* its own mutex */
	struct st_live_ring ring;   /* its own mutex and thread */
	struct st_live_deadlines dl; /* its own mutex and thread */
	pthread_mutex_t mu;      /* protects stopping; `wake` waits on it */
	pthread_cond_t wake;     /* CLOCK_MONOTONIC; broadcast by st_live_stop() */
	bool stopping;
	/* Figures for /api/status: st_live_count()/st_live_load() only
	 * (relaxed atomics: each is a counter, read alone). */
	uint64_t sse_clients, sse_dropped, win_started, win_active, win_done;
};

/* A request's state across the handler's calls: its body so far. */
struct st_live_req {
	char *body;
	size_t len;
	bool too_big;
};

/* Figures (st_live fields named above): relaxed atomics, counters only. */
void st_live_count(uint64_t *c, int d);
uint64_t st_live_load(const uint64_t *c);
uint64_t st_live_now_ms(void); /* CLOCK_MONOTONIC */
/* Wait on l->wake until the monotonic time until_ms or a stop: true when
 * stopping. */
bool st_live_wait_until(struct st_live *l, uint64_t until_ms);
bool st_live_stopping(struct st_live *l);

/* ---- replies: each queues the response and drops its reference. */
void st_live_common_headers(struct MHD_Response *r, const char *cache);
enum MHD_Result st_live_queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r);
/* A one-line text/plain answer, with one extra header h1: v1 (or none). */
enum MHD_Result st_live_reply_text(struct MHD_Connection *c, unsigned status, const char *h1,
				   const char *v1, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* A response sending blob b (it takes the caller's reference). */
struct MHD_Response *st_live_blob_response(struct st_live_blob *b, const char *ctype,
					   const char *cache);
const char *st_live_content_type(int fmt);
void st_live_format_headers(struct MHD_Response *r, int fmt);

/* ---- query parameters */
enum {
	P_FORMAT = 1 << 0,
	P_METRIC = 1 << 1,
	P_MIN_FRACTION = 1 << 2,
	P_MAX_NODES = 1 << 3,
	P_SECONDS = 1 << 4,
	P_WINDOW = 1 << 5,
};

struct st_live_params {
	struct st_live *l;
	unsigned allowed; /* P_* this endpoint takes */
	int fmt;
	unsigned metric;
	double min_fraction;
	int64_t max_nodes;
	long seconds;
	struct st_live_window window; /* default all */
	char err[256];    /* the first bad parameter, or "" */
};

/* True when v is all of a decimal integer in [lo, hi]. */
bool st_live_whole_long(const char *v, long lo, long hi, long *out);
/* Parse the query into *p (only the P_* in allowed; `token` is ignored,
 * anything else is an error): false with p->err set on a bad one. */
bool st_live_get_params(struct st_live *l, struct MHD_Connection *c, unsigned allowed,
			struct st_live_params *p);

/* ---- endpoints (api.c, events.c) */
enum MHD_Result st_live_api_snapshot(struct st_live *l, struct MHD_Connection *c);
enum MHD_Result st_live_api_status(struct st_live *l, struct MHD_Connection *c);
enum MHD_Result st_live_pprof_profile(struct st_live *l, struct MHD_Connection *c);
enum MHD_Result st_live_reset(struct st_live *l, struct MHD_Connection *c);
enum MHD_Result st_live_mark(struct st_live *l, struct MHD_Connection *c);
enum MHD_Result st_live_order(struct st_live *l, struct MHD_Connection *c, const char *method,
			      const struct st_live_req *q);
enum MHD_Result st_live_events(struct st_live *l, struct MHD_Connection *c);

#endif
