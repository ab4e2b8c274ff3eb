/* SPDX-License-Identifier: MIT */
/*
 * pyroscope_rx.h - a test receiver for Pyroscope's ingest API
 * (POST /ingest) on 127.0.0.1, built on libmicrohttpd: it checks the query
 * parameters (name=APP{k=v,...} with Pyroscope's label syntax, from, until
 * required), reads the bodies Pyroscope reads (a multipart form with
 * `profile` and `sample_type_config`, a bare pprof for format=pprof, folded
 * lines otherwise), checks credentials when told to, and answers each
 * request from a script (status, Retry-After, a delay) and 200 after it.
 * Every accepted push is kept for the test to inspect.
 */
#ifndef ST_TEST_PYROSCOPE_RX_H
#define ST_TEST_PYROSCOPE_RX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct prx_push {
	char *name, *from, *until, *format, *units, *aggregation, *sample_rate, *spy_name;
	char *content_type;
	char *authorization, *tenant; /* headers as received, or NULL */
	char *profile;                /* pprof (gzipped) or folded text */
	size_t profile_len;
	char *stc;                    /* sample_type_config, or NULL */
	bool multipart;
};

/* One scripted answer: status (0 = the normal answer), Retry-After seconds
 * (0 = none), a delay before answering; echo_headers: the answer's text
 * repeats the request's Authorization and X-Scope-OrgID (as a careless
 * proxy's error page might). */
struct prx_act {
	int status;
	unsigned retry_after_s;
	unsigned delay_ms;
	bool echo_headers;
};

struct prx;
/* Listen on 127.0.0.1:port (0 = a free one). */
struct prx *prx_start(unsigned port);
unsigned prx_port(const struct prx *r);
void prx_stop(struct prx *r);
/* Answers for the next requests, in order (copied). */
void prx_script(struct prx *r, const struct prx_act *acts, size_t n);
/* Requests must carry exactly this Authorization (NULL: any) and
 * X-Scope-OrgID (NULL: any), else 401. */
void prx_require(struct prx *r, const char *authorization, const char *tenant);
/* Requests seen (any answer), pushes accepted (200). */
size_t prx_requests(struct prx *r);
size_t prx_accepted(struct prx *r);
/* How many requests got status s. */
size_t prx_status_count(struct prx *r, int s);
/* When request i arrived (CLOCK_MONOTONIC seconds; first 256). */
double prx_request_time(struct prx *r, size_t i);
/* Push i (< prx_accepted), a copy: free with prx_push_free. */
struct prx_push prx_get(struct prx *r, size_t i);
void prx_push_free(struct prx_push *p);
/* Wait (bounded, polling the receiver's state) until pred(r) holds. */
bool prx_wait(struct prx *r, bool (*pred)(struct prx *r, void *arg), void *arg, unsigned max_ms);
bool prx_wait_accepted(struct prx *r, size_t n, unsigned max_ms);
bool prx_wait_requests(struct prx *r, size_t n, unsigned max_ms);

#endif
