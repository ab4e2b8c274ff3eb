/* SPDX-License-Identifier: MIT */
/* live_client.h - the live tests' client side (see live_client.c). */
#ifndef ST_TEST_LIVE_CLIENT_H
#define ST_TEST_LIVE_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "support/support.h"

/* A `shardtrie serve` on 127.0.0.1 port 0 (args appended); with feed its
 * stdin is a pipe this process writes (serve -).  The URL is read from its
 * stdout. */
struct srv {
	pid_t pid;
	int in;        /* the server's stdin (serve -), or -1 */
	char url[128]; /* http://127.0.0.1:PORT/ */
};
/* Spawn `sh -c cmd` with stdin from in_fd (-1: /dev/null) and stdout into a
 * pipe whose read end is returned in *out. */
pid_t spawn_sh(const char *cmd, int in_fd, int *out);
/* One line from fd (without its newline); false at EOF. */
bool read_line(int fd, char *buf, size_t n);
/* The same within ms milliseconds (poll before each read); false on time-out. */
bool read_line_within(int fd, char *buf, size_t n, int ms);
void srv_start(struct srv *s, const char *args, bool feed);
void srv_stop(struct srv *s);
/* Spawn `sh -c cmd` (a `record ... --serve` whose stderr goes to stdout)
 * and read its lines until "Live flamegraph at http://127.0.0.1:PORT/"
 * (bounded); *out is the pipe, seen (n bytes) what it printed so far. */
void srv_spawn_record(struct srv *s, const char *cmd, int *out, char *seen, size_t n);
/* Wait (bounded, 15 s) for a spawned record to end; its exit status, the
 * rest of its output appended to seen.  Killed and failed when it does not. */
int srv_wait_record(struct srv *s, int out, char *seen, size_t n);
/* Write text to the server's stdin. */
void feed(struct srv *s, const char *text);

/* One curl request: status, headers and body. */
struct resp {
	int status;
	char *hdr, *body;
	size_t len;
};
void resp_free(struct resp *r);
/* curl CURL_ARGS URLPATH. */
struct resp http(const struct srv *s, const char *curl_args, const char *path);
/* The value of header name in r (case-insensitive), or NULL. */
const char *header(const struct resp *r, const char *name);
/* Expect status (and body_has in the body, when not NULL). */
void expect_status(const struct srv *s, const char *args, const char *path, int status,
		   const char *body_has);

/* /api/status as JSON, one of its unsigned keys, and a bounded wait for a
 * key to reach a value. */
json_t *status_json(const struct srv *s);
uint64_t status_u(const struct srv *s, const char *key);
void wait_status(const struct srv *s, const char *key, uint64_t want);
void pause_ms(long ms);
/* text's lines sorted (malloc'd). */
char *sorted_lines(const char *text);

/* Headless Chromium driven through the DevTools protocol. */
struct cdp {
	pid_t pid;
	int ws;
	int next_id;
	char dir[300];
};
bool have_chromium(void);
void cdp_open(struct cdp *c, const char *url);
void cdp_close(struct cdp *c);
/* Runtime.evaluate expr: its value (JSON), as a string, or wait (bounded)
 * until it is true. */
json_t *cdp_eval(struct cdp *c, const char *expr);
char *cdp_str(struct cdp *c, const char *expr);
void cdp_wait(struct cdp *c, const char *expr);

#define PAGE_STATUS "document.getElementById('status').textContent"

/* Added for test_live_page.c: a bounded wait for a status key to equal want
 * exactly (also downwards, e.g. a total back to 0 after a reset), and any
 * DevTools method (params stolen; its "result", caller decrefs). */
void wait_status_eq(const struct srv *s, const char *key, uint64_t want);
json_t *cdp_call(struct cdp *c, const char *method, json_t *params);

#endif
