/* SPDX-License-Identifier: MIT */
/*
 * live_client.c - the client side of the live tests (test_live.c,
 * test_live_page.c): `shardtrie serve` spawned on 127.0.0.1 port 0, curl
 * requests, /api/status polling (bounded, never a sleep standing for
 * synchronisation) and a DevTools client that drives headless Chromium.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "support/live_client.h"

#define CLI ST_TEST_CLI

extern char **environ;

/* ---------------------------------------------------------------- server */

/* Spawn `sh -c cmd` with stdin from in_fd (-1: /dev/null) and stdout into a
 * pipe whose read end is returned in *out. */
pid_t spawn_sh(const char *cmd, int in_fd, int *out)
{
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	if (in_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	/* A process group of its own, killed by ts_dir_fini whatever the
	 * test's outcome. */
	posix_spawnattr_t at;
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&at, 0);
	char *argv[] = { "sh", "-c", (char *)cmd, NULL };
	pid_t pid;
	cr_assert_eq(posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ), 0);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	ts_track_group(pid);
	close(p[1]);
	*out = p[0];
	return pid;
}

/* Read one line from fd (bounded; blocking reads of a pipe). */
bool read_line(int fd, char *buf, size_t n)
{
	size_t k = 0;
	while (k + 1 < n) {
		ssize_t r = read(fd, buf + k, 1);
		if (r <= 0)
			return false;
		if (buf[k] == '\n')
			break;
		k++;
	}
	buf[k] = '\0';
	return true;
}

/* A line from fd within ms milliseconds (poll before each read). */
bool read_line_within(int fd, char *buf, size_t n, int ms)
{
	size_t k = 0;
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (k + 1 < n) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		struct pollfd p = { fd, POLLIN, 0 };
		if (left <= 0 || poll(&p, 1, (int)left) <= 0 || read(fd, buf + k, 1) != 1)
			return false;
		if (buf[k] == '\n')
			break;
		k++;
	}
	buf[k] = '\0';
	return true;
}

/* Start `shardtrie serve ARGS -` fed from a pipe (in = its write end), or
 * with ARGS naming a file when feed is false. */
void srv_start(struct srv *s, const char *args, bool feed)
{
	int p[2] = { -1, -1 };
	if (feed)
		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "exec %s serve --tick 20 %s%s 2>'%s'", CLI, args, feed ? " -" : "",
		 ts_path("serve.err"));
	int out;
	s->pid = spawn_sh(cmd, p[0], &out);
	if (feed)
		close(p[0]);
	s->in = p[1];
	char line[256];
	cr_assert(read_line(out, line, sizeof(line)), "serve printed no URL: %s",
		  ts_read_file(ts_path("serve.err"), NULL));
	close(out);
	const char *u = strstr(line, "http://127.0.0.1:");
	cr_assert(u && !strncmp(line, "Live flamegraph at ", 19), "unexpected first line: %s", line);
	snprintf(s->url, sizeof(s->url), "%s", u);
}

/* Stop with SIGTERM: serve exits 0. */
void srv_stop(struct srv *s)
{
	if (s->in >= 0)
		close(s->in);
	cr_assert_eq(kill(s->pid, SIGTERM), 0);
	int st;
	cr_assert_eq(waitpid(s->pid, &st, 0), s->pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "serve did not exit 0 on SIGTERM (status %d): %s",
		  st, ts_read_file(ts_path("serve.err"), NULL));
}

void srv_spawn_record(struct srv *s, const char *cmd, int *out, char *seen, size_t n)
{
	*s = (struct srv){ .pid = spawn_sh(cmd, -1, out), .in = -1 };
	char line[512];
	seen[0] = '\0';
	for (int i = 0; i < 20 && !s->url[0]; i++) {
		cr_assert(read_line_within(*out, line, sizeof(line), 15000),
			  "record --serve printed no URL within 15 s; it said: %s", seen);
		size_t l = strlen(seen);
		snprintf(seen + l, n - l, "%s\n", line);
		const char *u = strstr(line, "http://127.0.0.1:");
		if (!strncmp(line, "Live flamegraph at ", 19) && u)
			snprintf(s->url, sizeof(s->url), "%s", u);
	}
	cr_assert(s->url[0], "no 'Live flamegraph at http://127.0.0.1:PORT/' line: %s", seen);
}

int srv_wait_record(struct srv *s, int out, char *seen, size_t n)
{
	int st = 0;
	pid_t w = 0;
	for (int i = 0; i < 1500 && !(w = waitpid(s->pid, &st, WNOHANG)); i++)
		pause_ms(10);
	if (!w) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, &st, 0);
		cr_assert_fail("record did not end within 15 s: %s", seen);
	}
	size_t l = strlen(seen);
	ssize_t r = read(out, seen + l, n - l - 1); /* it has exited: no wait */
	seen[l + (size_t)(r > 0 ? r : 0)] = '\0';
	close(out);
	return st;
}

void feed(struct srv *s, const char *text)
{
	size_t n = strlen(text);
	cr_assert_eq(write(s->in, text, n), (ssize_t)n);
}

/* ---------------------------------------------------------------- client */

void resp_free(struct resp *r)
{
	free(r->hdr);
	free(r->body);
}

/* curl CURL_ARGS URLPATH: status, headers and body. */
struct resp http(const struct srv *s, const char *curl_args, const char *path)
{
	struct resp r = { 0 };
	int rc = ts_run("curl -s -m 20 -D '%s' -o '%s' -w '%%{http_code}' %s '%s%s' > '%s'",
			ts_path("hdr"), ts_path("body"), curl_args, s->url, path[0] == '/' ? path + 1 : path,
			ts_path("code"));
	cr_assert_eq(rc, 0, "curl %s %s failed (%d)", curl_args, path, rc);
	char *code = ts_read_file(ts_path("code"), NULL);
	r.status = atoi(code);
	free(code);
	r.hdr = ts_read_file(ts_path("hdr"), NULL);
	r.body = ts_read_file(ts_path("body"), &r.len);
	if (!r.body)
		r.body = calloc(1, 1);
	return r;
}

/* The value of header `name` in r (a static copy), or NULL. */
const char *header(const struct resp *r, const char *name)
{
	static char v[512];
	size_t n = strlen(name);
	for (const char *p = r->hdr; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (!strncasecmp(p, name, n) && p[n] == ':') {
			p += n + 1;
			while (*p == ' ')
				p++;
			size_t k = strcspn(p, "\r\n");
			snprintf(v, sizeof(v), "%.*s", (int)k, p);
			return v;
		}
	}
	return NULL;
}

void expect_status(const struct srv *s, const char *args, const char *path, int status,
			  const char *body_has)
{
	struct resp r = http(s, args, path);
	cr_expect_eq(r.status, status, "%s %s: status %d, want %d (%s)", args, path, r.status, status,
		     r.body);
	if (body_has)
		cr_expect(strstr(r.body, body_has), "%s %s: body '%s' lacks '%s'", args, path, r.body,
			  body_has);
	if (status >= 400) {
		cr_expect(header(&r, "Content-Type") && !strncmp(header(&r, "Content-Type"), "text/plain", 10),
			  "%s %s: error not text/plain", args, path);
		cr_expect(r.len > 0 && memchr(r.body, '\n', r.len) == r.body + r.len - 1,
			  "%s %s: error reason is not one line: '%s'", args, path, r.body);
	}
	resp_free(&r);
}

/* /api/status as JSON (caller decrefs). */
json_t *status_json(const struct srv *s)
{
	struct resp r = http(s, "", "/api/status");
	cr_assert_eq(r.status, 200);
	json_error_t je;
	json_t *j = json_loads(r.body, 0, &je);
	cr_assert(j, "bad /api/status JSON: %s", r.body);
	resp_free(&r);
	return j;
}

uint64_t status_u(const struct srv *s, const char *key)
{
	json_t *j = status_json(s);
	json_t *v = json_object_get(j, key);
	if (json_is_array(v))
		v = json_array_get(v, 0);
	cr_assert(json_is_integer(v), "/api/status has no %s", key);
	uint64_t x = (uint64_t)json_integer_value(v);
	json_decref(j);
	return x;
}

void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Poll /api/status until `key` reaches want (bounded: about 10 s). */
void wait_status(const struct srv *s, const char *key, uint64_t want)
{
	uint64_t v = 0;
	for (int i = 0; i < 1000; i++) {
		if ((v = status_u(s, key)) >= want)
			break;
		pause_ms(10);
	}
	cr_assert_eq(v, want, "/api/status %s is %llu, want %llu", key, (unsigned long long)v,
		     (unsigned long long)want);
}

/* Lines of text sorted (for comparing folded outputs as sets of lines). */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *sorted_lines(const char *text)
{
	char *dup = strdup(text), *save = NULL;
	char **v = NULL;
	size_t n = 0, total = 1;
	for (char *t = strtok_r(dup, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
		v = realloc(v, (n + 1) * sizeof(*v));
		v[n++] = t;
		total += strlen(t) + 1;
	}
	qsort(v, n, sizeof(*v), cmp_str);
	char *out = calloc(1, total);
	for (size_t i = 0; i < n; i++) {
		strcat(out, v[i]);
		strcat(out, "\n");
	}
	free(v);
	free(dup);
	return out;
}

/* ------------------------------------------------ the page in Chromium */

/*
 * The page driven in headless Chromium through the DevTools protocol: a
 * minimal WebSocket client (RFC 6455: masked text frames out, unmasked
 * frames in) sends Runtime.evaluate and reads its answer.  Every wait polls
 * an expression in the page (bounded), never a sleep.
 */
bool have_chromium(void)
{
	return ts_run("command -v chromium >/dev/null 2>&1") == 0;
}

static bool read_full(int fd, void *buf, size_t n)
{
	for (size_t k = 0; k < n;) {
		ssize_t r = read(fd, (char *)buf + k, n - k);
		if (r <= 0)
			return false;
		k += (size_t)r;
	}
	return true;
}

static void ws_send(int fd, const char *text)
{
	size_t n = strlen(text), h = 0;
	unsigned char hdr[14];
	hdr[h++] = 0x81; /* FIN, text */
	if (n < 126) {
		hdr[h++] = 0x80 | (unsigned char)n;
	} else if (n < 65536) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (unsigned char)(n >> 8);
		hdr[h++] = (unsigned char)n;
	} else {
		hdr[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			hdr[h++] = (unsigned char)((uint64_t)n >> (8 * i));
	}
	static const unsigned char mask[4] = { 0x12, 0x34, 0x56, 0x78 };
	memcpy(hdr + h, mask, 4);
	h += 4;
	unsigned char *buf = malloc(h + n);
	memcpy(buf, hdr, h);
	for (size_t i = 0; i < n; i++)
		buf[h + i] = (unsigned char)text[i] ^ mask[i % 4];
	cr_assert_eq(write(fd, buf, h + n), (ssize_t)(h + n));
	free(buf);
}

/* One whole message (continuation frames joined); caller frees. */
static char *ws_recv(int fd)
{
	char *msg = NULL;
	size_t len = 0;
	for (;;) {
		unsigned char h[2];
		cr_assert(read_full(fd, h, 2), "DevTools connection closed");
		uint64_t n = h[1] & 0x7f;
		if (n == 126 || n == 127) {
			unsigned char x[8];
			size_t k = n == 126 ? 2 : 8;
			cr_assert(read_full(fd, x, k));
			n = 0;
			for (size_t i = 0; i < k; i++)
				n = n << 8 | x[i];
		}
		msg = realloc(msg, len + n + 1);
		cr_assert(read_full(fd, msg + len, n));
		len += n;
		msg[len] = '\0';
		if ((h[0] & 0x0f) == 0x9 || (h[0] & 0x0f) == 0xa) { /* ping/pong: skip */
			len -= n;
			continue;
		}
		if (h[0] & 0x80)
			return msg;
	}
}

/* Evaluate expr in the page: its JSON value (caller decrefs). */
json_t *cdp_eval(struct cdp *c, const char *expr)
{
	json_t *req = json_pack("{s:i,s:s,s:{s:s,s:b}}", "id", ++c->next_id, "method",
				"Runtime.evaluate", "params", "expression", expr, "returnByValue", 1);
	char *txt = json_dumps(req, JSON_COMPACT);
	ws_send(c->ws, txt);
	free(txt);
	json_decref(req);
	for (;;) {
		char *m = ws_recv(c->ws);
		json_t *j = json_loads(m, 0, NULL);
		free(m);
		if (j && json_integer_value(json_object_get(j, "id")) == c->next_id) {
			json_t *v = json_object_get(json_object_get(json_object_get(j, "result"), "result"),
						    "value");
			json_t *out = v ? json_incref(v) : json_null();
			json_decref(j);
			return out;
		}
		json_decref(j);
	}
}

char *cdp_str(struct cdp *c, const char *expr)
{
	json_t *v = cdp_eval(c, expr);
	char *s = strdup(json_is_string(v) ? json_string_value(v) : "");
	json_decref(v);
	return s;
}

/* Poll expr (a boolean) until true: bounded, about 15 s. */
void cdp_wait(struct cdp *c, const char *expr)
{
	for (int i = 0; i < 1500; i++) {
		json_t *v = cdp_eval(c, expr);
		bool ok = json_is_true(v);
		json_decref(v);
		if (ok)
			return;
		pause_ms(10);
	}
	cr_assert_fail("the page never satisfied: %s", expr);
}

void cdp_open(struct cdp *c, const char *url)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->dir, sizeof(c->dir), "%s", ts_path("chromium"));
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "exec chromium --headless=new --no-sandbox --disable-gpu --no-first-run "
		 "--user-data-dir='%s' --remote-debugging-address=127.0.0.1 "
		 "--remote-debugging-port=0 --window-size=1200,600 '%s' 2>&1",
		 c->dir, url);
	int out;
	c->pid = spawn_sh(cmd, -1, &out);
	char line[1024];
	int port = 0;
	while (!port && read_line(out, line, sizeof(line))) {
		const char *p = strstr(line, "DevTools listening on ws://127.0.0.1:");
		if (p)
			port = atoi(p + strlen("DevTools listening on ws://127.0.0.1:"));
	}
	close(out); /* Chromium's later logging goes nowhere (EPIPE) */
	cr_assert(port > 0, "chromium printed no DevTools address");
	/* The page target's WebSocket, from the DevTools HTTP endpoint. */
	char *page = NULL;
	for (int i = 0; i < 500 && !page; i++) {
		ts_run("curl -s -m 5 http://127.0.0.1:%d/json/list > '%s'", port, ts_path("targets"));
		char *t = ts_read_file(ts_path("targets"), NULL);
		json_t *j = t ? json_loads(t, 0, NULL) : NULL;
		size_t k;
		json_t *e;
		json_array_foreach(j, k, e)
		{
			const char *type = json_string_value(json_object_get(e, "type"));
			const char *u = json_string_value(json_object_get(e, "url"));
			if (!page && type && !strcmp(type, "page") && u && !strncmp(u, url, strlen(url)))
				page = strdup(json_string_value(json_object_get(e, "webSocketDebuggerUrl")));
		}
		json_decref(j);
		free(t);
		if (!page)
			pause_ms(10);
	}
	cr_assert(page, "no page target for %s", url);
	const char *path = strchr(page + strlen("ws://"), '/');
	c->ws = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(c->ws, (struct sockaddr *)&a, sizeof(a)), 0);
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			 "Sec-WebSocket-Version: 13\r\n\r\n",
			 path, port);
	cr_assert_eq(write(c->ws, req, (size_t)n), n);
	free(page);
	/* The handshake answer ends with an empty line. */
	char hs[2048];
	size_t k = 0;
	while (k < 4 || memcmp(hs + k - 4, "\r\n\r\n", 4)) {
		cr_assert(k < sizeof(hs) - 1 && read(c->ws, hs + k, 1) == 1, "WebSocket handshake failed");
		k++;
	}
	hs[k] = '\0';
	cr_assert(strstr(hs, " 101 "), "WebSocket handshake: %s", hs);
}

void cdp_close(struct cdp *c)
{
	close(c->ws);
	kill(c->pid, SIGTERM);
	waitpid(c->pid, NULL, 0);
}


/* ------------------------------------------- added for test_live_page.c */

/* Poll /api/status until `key` is exactly want (bounded: about 10 s). */
void wait_status_eq(const struct srv *s, const char *key, uint64_t want)
{
	uint64_t v = 0;
	for (int i = 0; i < 1000; i++) {
		if ((v = status_u(s, key)) == want)
			return;
		pause_ms(10);
	}
	cr_assert_fail("/api/status %s stays %llu, want %llu", key, (unsigned long long)v,
		       (unsigned long long)want);
}

/* Any DevTools method: its "result" (caller decrefs); params are stolen. */
json_t *cdp_call(struct cdp *c, const char *method, json_t *params)
{
	json_t *req = json_pack("{s:i,s:s,s:o}", "id", ++c->next_id, "method", method, "params",
				params ? params : json_object());
	char *txt = json_dumps(req, JSON_COMPACT);
	ws_send(c->ws, txt);
	free(txt);
	json_decref(req);
	for (;;) {
		char *m = ws_recv(c->ws);
		json_t *j = json_loads(m, 0, NULL);
		free(m);
		if (j && json_integer_value(json_object_get(j, "id")) == c->next_id) {
			json_t *err = json_object_get(j, "error");
			cr_assert(!err, "DevTools %s failed: %s", method,
				  json_string_value(json_object_get(err, "message")));
			json_t *out = json_incref(json_object_get(j, "result"));
			json_decref(j);
			return out;
		}
		json_decref(j);
	}
}
