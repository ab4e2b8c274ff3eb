/* SPDX-License-Identifier: MIT */
/*
 * push.h - push an engine's profile to a Grafana Pyroscope server, one
 * exact interval at a time (issue 18, docs/push.md).
 *
 *   engine --snapshots--> ticker thread: every interval, the difference of
 *                         this snapshot and the last one pushed (st_export_delta()),
 *                         encoded (pprof or folded) -> queue (queue.c)
 *   queue  -------------> sender thread: POST URL/ingest?name=APP{labels}...
 *                         (libcurl), retried with backoff and jitter
 *
 * Invariants:
 *   - Pushing only reads snapshots (st_snap_acquire/release, st_flush):
 *     it never takes a lock ingest takes, so it never slows ingest.
 *   - Every sample of the pushed metric is in exactly one interval: each
 *     interval is the exact difference of two snapshots, the next interval
 *     starts where the last ended.  A reset through st_push_reset() first
 *     closes the interval (flush, difference) and then resets, a metric
 *     switch through st_push_set_metric() closes the old metric's interval,
 *     st_push_stop() pushes the last (partial) interval.  So the pushes add
 *     up to the whole profile: sent, or counted as dropped.  (For an engine
 *     without a node cap, as the CLI makes them: folding into [other] moves
 *     values between nodes, which a difference of snapshots cannot follow.)
 *   - The queue is bounded by count and bytes; when full the oldest interval
 *     is dropped and counted, never the newest.
 *   - Credentials are never printed and never put in a URL; the caller
 *     reads them from the environment or a file (cli/push.c).
 *
 * The arrow: cli -> push -> engine/include.  No cli/ or live/ header here.
 */
#ifndef ST_PUSH_PUSH_H
#define ST_PUSH_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "shardtrie.h"

enum st_push_format {
	ST_PUSH_PPROF = 0, /* multipart/form-data: profile (gzipped pprof) +
			      sample_type_config (Pyroscope agents' way) */
	ST_PUSH_FOLDED,    /* format=folded: "a;b;c N" lines */
};

#define ST_PUSH_MAX_LABELS 32

struct st_push_opts {
	size_t size;               /* sizeof(struct st_push_opts) */
	const char *url;           /* server base URL: http(s)://HOST[:PORT][/PATH] */
	const char *app;           /* application name (default "shardtrie") */
	const char *labels[ST_PUSH_MAX_LABELS]; /* "k=v", checked by the caller */
	size_t nlabels;
	unsigned metric;           /* the engine metric pushed */
	const char *metric_label;  /* value of the metric= label (default: the
				      engine metric's name) */
	uint32_t sample_rate;      /* units=samples: samples per second (100) */
	const char *spy_name;      /* spyName= (default "shardtrie") */
	int format;                /* enum st_push_format */
	unsigned interval_ms;      /* one push per interval (10000) */
	size_t queue_max;          /* intervals waiting at most (64) */
	size_t queue_bytes;        /* bytes waiting at most (64 MiB) */
	unsigned timeout_ms;       /* one request's time limit (10000) */
	unsigned backoff_min_ms;   /* first retry delay (500) */
	unsigned backoff_max_ms;   /* longest retry delay (30000) */
	unsigned drain_ms;         /* at stop: how long unsent intervals are
				      still tried (10000) */
	/* Credentials (copied; never printed): basic auth when user is set,
	 * else a bearer token when token is set; tenant -> X-Scope-OrgID. */
	const char *user, *password, *token, *tenant;
	const char *hostname;      /* hostname= label (default gethostname) */
	FILE *log;                 /* messages (default stderr) */
	const char *log_prefix;    /* "shardtrie serve: push" */
};
void st_push_opts_init(struct st_push_opts *o);

struct st_push_stats {
	uint64_t intervals;     /* intervals closed with samples in them */
	uint64_t empty;         /* intervals closed with nothing new (not sent) */
	uint64_t sent;          /* intervals the server accepted (2xx) */
	uint64_t sent_value;    /* their total value (pushed metric) */
	uint64_t retries;       /* attempts after a failure */
	uint64_t dropped;       /* intervals dropped: queue full */
	uint64_t dropped_value; /* their total value */
	uint64_t rejected;      /* intervals the server refused (4xx but 429) */
	uint64_t rejected_value;
	uint64_t unsent;        /* still queued when the drain time ran out */
	uint64_t unsent_value;
	uint64_t errors;        /* intervals that could not be encoded */
	size_t queued;          /* waiting now */
	size_t queued_bytes;
	long last_status;       /* last HTTP status (0: none or no answer) */
	char last_error[256];   /* last failure, for a status page ("" none; never
				   a credential: send.c masks them) */
	/* --- appended (the live page and /api/status, st_push_status_json): */
	uint64_t sent_bytes;    /* bodies the server accepted, bytes */
	double last_success;    /* wall time (Unix s) of the last 2xx, 0 none */
	double last_failure;    /* of the last failed attempt, 0 none */
	unsigned interval_ms;   /* the push period */
	char url[256];          /* the server, scheme://host[:port][/path]: no
				   user info, query or fragment */
};

struct st_push;
/* Start pushing engine e (which must outlive st_push_stop).  The baseline
 * is the current snapshot: what was ingested before is not pushed.  NULL
 * with errno set (EINVAL bad option, ENOMEM). */
struct st_push *st_push_start(struct st_engine *e, const struct st_push_opts *o);
/* Close the interval (everything ingested so far), then st_reset(): what
 * came before the reset is still pushed.  Returns st_reset's version. */
uint64_t st_push_reset(struct st_push *p);
/* Close the interval of the metric pushed so far, then push metric m (its
 * label: label, or the engine metric's name) from now on.  0 or -EINVAL. */
int st_push_set_metric(struct st_push *p, unsigned m, const char *label);
/* A copy of the figures (any thread, any time until st_push_free). */
void st_push_get_stats(struct st_push *p, struct st_push_stats *out);
/* The figures as one JSON object, malloc'd:
 * {"push":{"url":...,"interval_ms":...,"intervals":...,"sent":...,
 * "sent_value":...,"sent_bytes":...,"retries":...,"queued":...,
 * "queued_bytes":...,"dropped":...,"dropped_value":...,"rejected":...,
 * "rejected_value":...,"errors":...,"last_status":...,"last_error":"...",
 * "last_success":UNIX_S|null,"last_failure":UNIX_S|null}} (a live status
 * page's extra figures).  No credential is in it.  NULL: out of memory. */
char *st_push_status_json(struct st_push *p);
/* Push the last interval, try the queue until it is empty or drain_ms has
 * passed, stop both threads.  The engine may be destroyed afterwards. */
void st_push_stop(struct st_push *p);
/* "N intervals sent (V), D dropped..." one line on o->log. */
void st_push_report(struct st_push *p);
void st_push_free(struct st_push *p);

/* Whether s is a valid Pyroscope label name ([a-zA-Z_][a-zA-Z0-9_]*, not
 * "__"-prefixed) and v a value the name syntax can carry (no {},=" or
 * control bytes, not empty).  For the caller's checks. */
bool st_push_label_name_ok(const char *s, size_t n);
bool st_push_label_value_ok(const char *s, size_t n);
/* An application name Pyroscope takes: [a-zA-Z0-9_.-]+ (1..128). */
bool st_push_app_ok(const char *s);

#endif
