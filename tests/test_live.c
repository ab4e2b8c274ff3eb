/* SPDX-License-Identifier: MIT */
/*
 * test_live.c - `shardtrie serve` and the live server (live/), end to end:
 * the server is started on 127.0.0.1 port 0 with stdin a pipe this test
 * writes, its URL read from its stdout, and every endpoint checked with a
 * real client (curl; `go tool pprof` for the scrape, skipped without go).
 *
 * No sleep stands for synchronisation: each step waits, in a bounded poll
 * loop, for the state it needs to show in /api/status (the total ingested,
 * the number of /debug/pprof windows started and done), so a window's
 * content is known exactly: what was written between its start and its end.
 *
 * `record cpu --serve` (root + BPF, skipped otherwise): the live profile
 * of a recording shows the bundled workload while it runs, and the
 * recording's output is still written at the end.
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

#include "support/support.h"

#define CLI ST_TEST_CLI

extern char **environ;

TestSuite(live, .init = ts_dir_init, .fini = ts_dir_fini, .timeout = 60);

/* ---------------------------------------------------------------- server */

struct srv {
	pid_t pid;
	int in;        /* the server's stdin (serve -), or -1 */
	char url[128]; /* http://127.0.0.1:PORT/ */
};

/* Spawn `sh -c cmd` with stdin from in_fd (-1: /dev/null) and stdout into a
 * pipe whose read end is returned in *out. */
static pid_t spawn_sh(const char *cmd, int in_fd, int *out)
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
	char *argv[] = { "sh", "-c", (char *)cmd, NULL };
	pid_t pid;
	cr_assert_eq(posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	*out = p[0];
	return pid;
}

/* Read one line from fd (bounded; blocking reads of a pipe). */
static bool read_line(int fd, char *buf, size_t n)
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

/* Start `shardtrie serve ARGS -` fed from a pipe (in = its write end), or
 * with ARGS naming a file when feed is false. */
static void srv_start(struct srv *s, const char *args, bool feed)
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
static void srv_stop(struct srv *s)
{
	if (s->in >= 0)
		close(s->in);
	cr_assert_eq(kill(s->pid, SIGTERM), 0);
	int st;
	cr_assert_eq(waitpid(s->pid, &st, 0), s->pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "serve did not exit 0 on SIGTERM (status %d): %s",
		  st, ts_read_file(ts_path("serve.err"), NULL));
}

static void feed(struct srv *s, const char *text)
{
	size_t n = strlen(text);
	cr_assert_eq(write(s->in, text, n), (ssize_t)n);
}

/* ---------------------------------------------------------------- client */

struct resp {
	int status;
	char *hdr, *body;
	size_t len;
};

static void resp_free(struct resp *r)
{
	free(r->hdr);
	free(r->body);
}

/* curl CURL_ARGS URLPATH: status, headers and body. */
static struct resp http(const struct srv *s, const char *curl_args, const char *path)
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
static const char *header(const struct resp *r, const char *name)
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

static void expect_status(const struct srv *s, const char *args, const char *path, int status,
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
static json_t *status_json(const struct srv *s)
{
	struct resp r = http(s, "", "/api/status");
	cr_assert_eq(r.status, 200);
	json_error_t je;
	json_t *j = json_loads(r.body, 0, &je);
	cr_assert(j, "bad /api/status JSON: %s", r.body);
	resp_free(&r);
	return j;
}

static uint64_t status_u(const struct srv *s, const char *key)
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

static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Poll /api/status until `key` reaches want (bounded: about 10 s). */
static void wait_status(const struct srv *s, const char *key, uint64_t want)
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

static char *sorted_lines(const char *text)
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

/* ------------------------------------------------------------- endpoints */

static const char known[] = "main;a;b 3\nmain;a;c 2\nmain;<img src=x onerror=alert(1)> 1\n";

Test(live, snapshot_etag_and_formats)
{
	cr_assert_eq(ts_write_file(ts_path("in"), known, strlen(known)), 0);
	struct srv s;
	char args[512];
	snprintf(args, sizeof(args), "'%s'", ts_path("in"));
	srv_start(&s, args, false);
	wait_status(&s, "total", 6);
	uint64_t v = status_u(&s, "version");

	struct resp r = http(&s, "", "/api/snapshot?format=folded");
	cr_expect_eq(r.status, 200);
	char *want = sorted_lines(known), *got = sorted_lines(r.body);
	cr_expect_str_eq(got, want);
	free(want);
	free(got);
	char etag[64];
	snprintf(etag, sizeof(etag), "\"v%llu\"", (unsigned long long)v);
	cr_expect_str_eq(header(&r, "ETag"), etag);
	resp_free(&r);

	char h[128];
	snprintf(h, sizeof(h), "-H 'If-None-Match: %s'", etag);
	expect_status(&s, h, "/api/snapshot?format=folded", 304, NULL);
	expect_status(&s, "-H 'If-None-Match: \"v0\"'", "/api/snapshot", 200, "\"t\":6");

	r = http(&s, "", "/api/snapshot?format=json&min_fraction=0.5");
	cr_expect_eq(r.status, 200);
	cr_expect_str_eq(header(&r, "Content-Type"), "application/json");
	json_t *j = json_loads(r.body, 0, NULL);
	cr_expect(j && json_integer_value(json_object_get(j, "t")) == 6, "%s", r.body);
	json_decref(j);
	cr_expect(!strstr(r.body, "<img"), "min_fraction 0.5 keeps the 1/6 frame: %s", r.body);
	resp_free(&r);

	r = http(&s, "", "/api/snapshot?format=pprof&metric=count");
	cr_expect_eq(r.status, 200);
	cr_expect_str_eq(header(&r, "Content-Type"), "application/octet-stream");
	cr_expect(r.len > 2 && (unsigned char)r.body[0] == 0x1f && (unsigned char)r.body[1] == 0x8b,
		  "pprof is not gzip");
	resp_free(&r);
	r = http(&s, "", "/api/snapshot?format=svg");
	cr_expect_eq(r.status, 200);
	cr_expect(header(&r, "Content-Security-Policy") &&
		  strstr(header(&r, "Content-Security-Policy"), "sandbox"));
	resp_free(&r);
	r = http(&s, "", "/api/snapshot?format=flamebearer&max_nodes=2");
	cr_expect_eq(r.status, 200);
	resp_free(&r);

	/* One encoding per version and parameters, whatever the askers. */
	uint64_t enc = status_u(&s, "encodes");
	for (int i = 0; i < 5; i++)
		expect_status(&s, "", "/api/snapshot?format=d3", 200, NULL);
	cr_expect_eq(status_u(&s, "encodes"), enc + 1);

	expect_status(&s, "", "/api/snapshot?format=nope", 400, "format");
	expect_status(&s, "", "/api/snapshot?metric=bytes", 400, "metric");
	expect_status(&s, "", "/api/snapshot?min_fraction=2", 400, "min_fraction");
	expect_status(&s, "", "/api/snapshot?max_nodes=x", 400, "max_nodes");
	expect_status(&s, "", "/api/snapshot?colour=red", 400, "unknown parameter");
	expect_status(&s, "", "/debug/pprof/profile?seconds=0", 400, "seconds");
	expect_status(&s, "", "/nope", 404, "not found");
	srv_stop(&s);
}

Test(live, methods_origins_hosts_and_limits)
{
	struct srv s;
	srv_start(&s, "", true);
	feed(&s, known);
	wait_status(&s, "total", 6);

	struct resp r = http(&s, "-X POST", "/api/snapshot");
	cr_expect_eq(r.status, 405);
	cr_expect_str_eq(header(&r, "Allow"), "GET, HEAD");
	resp_free(&r);
	r = http(&s, "", "/reset");
	cr_expect_eq(r.status, 405);
	cr_expect_str_eq(header(&r, "Allow"), "POST");
	resp_free(&r);
	r = http(&s, "-X DELETE", "/order");
	cr_expect_eq(r.status, 405);
	cr_expect_str_eq(header(&r, "Allow"), "GET, POST");
	resp_free(&r);
	expect_status(&s, "", "/order", 404, "no field order for this source");
	expect_status(&s, "-X POST -d '{\"fields\":[\"comm\"]}'", "/order", 404, "no field order");

	/* A page elsewhere, or a rebound DNS name, cannot reset or read. */
	expect_status(&s, "-X POST -H 'Origin: http://evil.example'", "/reset", 403, "Origin");
	expect_status(&s, "-X POST -H 'Sec-Fetch-Site: cross-site'", "/reset", 403, NULL);
	expect_status(&s, "-X POST -H 'Host: evil.example'", "/reset", 403, "Host");
	expect_status(&s, "-H 'Host: evil.example:80'", "/api/status", 403, "Host");
	cr_expect_eq(status_u(&s, "total"), 6, "a refused reset cleared the data");

	/* Over the body limit: 413, announced or not. */
	char *big = malloc(100001);
	memset(big, 'x', 100000);
	big[100000] = '\0';
	cr_assert_eq(ts_write_file(ts_path("big"), big, 100000), 0);
	free(big);
	char a[512];
	snprintf(a, sizeof(a), "-X POST --data-binary @'%s'", ts_path("big"));
	expect_status(&s, a, "/reset", 413, "too large");
	snprintf(a, sizeof(a), "-X POST -H 'Transfer-Encoding: chunked' --data-binary @'%s'", ts_path("big"));
	expect_status(&s, a, "/reset", 413, "too large");
	cr_expect_eq(status_u(&s, "total"), 6);

	/* The page: self-contained, CSP and nosniff. */
	r = http(&s, "", "/");
	cr_expect_eq(r.status, 200);
	cr_expect(strstr(r.body, "<script src=\"app.js\""), "page: %s", r.body);
	cr_expect(!strstr(r.body, "http://") && !strstr(r.body, "https://"), "the page loads nothing remote");
	cr_expect(header(&r, "Content-Security-Policy") &&
		  strstr(header(&r, "Content-Security-Policy"), "default-src 'none'"));
	cr_expect_str_eq(header(&r, "X-Content-Type-Options"), "nosniff");
	resp_free(&r);
	r = http(&s, "", "/app.js");
	cr_expect_eq(r.status, 200);
	cr_expect(strstr(r.body, "EventSource") && strstr(r.body, "textContent"));
	cr_expect(!strstr(r.body, "innerHTML"), "names must never become markup");
	resp_free(&r);

	/* Same-origin reset: 200 with the empty snapshot, data gone. */
	char o[256];
	snprintf(o, sizeof(o), "-X POST -H 'Origin: %.*s'", (int)strlen(s.url) - 1, s.url);
	expect_status(&s, o, "/reset", 200, "\"t\":0");
	cr_expect_eq(status_u(&s, "total"), 0);
	srv_stop(&s);
}

/* ------------------------------------------------------------------ SSE */

/* The next event of an SSE stream on fd: its id and data (no comments). */
static bool next_event(int fd, uint64_t *id, char *data, size_t n)
{
	char line[1 << 16];
	bool have_id = false, have_data = false;
	while (read_line(fd, line, sizeof(line))) {
		if (!line[0]) {
			if (have_data)
				return have_id;
			continue;
		}
		if (!strncmp(line, "id: ", 4)) {
			*id = strtoull(line + 4, NULL, 10);
			have_id = true;
		} else if (!strncmp(line, "data: ", 6)) {
			snprintf(data, n, "%s", line + 6);
			have_data = true;
		}
	}
	return false;
}

static pid_t events_open(const struct srv *s, const char *args, int *fd)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "exec curl -sN -m 30 %s '%sevents'", args, s->url);
	return spawn_sh(cmd, -1, fd);
}

static void events_close(pid_t pid, int fd)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	close(fd);
}

static uint64_t total_of(const char *json)
{
	json_t *j = json_loads(json, 0, NULL);
	cr_assert(j, "event data is not JSON: %s", json);
	uint64_t t = (uint64_t)json_integer_value(json_object_get(j, "t"));
	json_decref(j);
	return t;
}

Test(live, events_framing_ids_and_reconnect)
{
	struct srv s;
	srv_start(&s, "", true);
	feed(&s, known);
	wait_status(&s, "total", 6);
	int fd;
	pid_t pid = events_open(&s, "", &fd);
	char line[256];
	cr_assert(read_line(fd, line, sizeof(line)));
	cr_expect_str_eq(line, "retry: 2000");
	uint64_t id1, id2, id3;
	static char data[1 << 16];
	cr_assert(next_event(fd, &id1, data, sizeof(data)));
	cr_expect_eq(id1, status_u(&s, "version"));
	cr_expect_eq(total_of(data), 6);

	feed(&s, "main;d 4\n");
	cr_assert(next_event(fd, &id2, data, sizeof(data)));
	cr_expect_gt(id2, id1);
	cr_expect_eq(total_of(data), 10, "event after the feed: %s", data);
	events_close(pid, fd);

	/* A reconnecting client gets the current snapshot at once. */
	char h[64];
	snprintf(h, sizeof(h), "-H 'Last-Event-ID: %llu'", (unsigned long long)id1);
	pid = events_open(&s, h, &fd);
	cr_assert(next_event(fd, &id3, data, sizeof(data)));
	cr_expect_eq(id3, status_u(&s, "version"));
	cr_expect_eq(total_of(data), 10);
	events_close(pid, fd);
	expect_status(&s, "", "/events?metric=nope", 400, "metric");
	srv_stop(&s);
}

/* ----------------------------------------------------- pprof windows */

/* Start a scrape of `seconds` in the background: curl saving to file. */
static pid_t scrape_start(const struct srv *s, const char *query, const char *file)
{
	char cmd[1024];
	int fd;
	snprintf(cmd, sizeof(cmd), "exec curl -s -m 30 -o '%s' '%sdebug/pprof/profile?%s'", file,
		 s->url, query);
	pid_t pid = spawn_sh(cmd, -1, &fd);
	close(fd);
	return pid;
}

static void scrape_wait(pid_t pid)
{
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "curl scrape failed (%d)", st);
}

/* The sum of the counts of folded text. */
static uint64_t sum_counts(const char *text)
{
	uint64_t sum = 0;
	for (const char *l = text; *l;) {
		const char *e = strchr(l, '\n');
		const char *sp = l;
		for (const char *q = l; q < e; q++)
			if (*q == ' ')
				sp = q;
		sum += strtoull(sp + 1, NULL, 10);
		l = e + 1;
	}
	return sum;
}

Test(live, pprof_windows_add_up_to_the_whole)
{
	struct srv s;
	srv_start(&s, "", true);
	/* Chunk k repeats the stacks of the chunks before it (so the window
	 * is a real difference, not the new nodes alone) plus its own. */
	char chunk[3][512], whole[2048] = "";
	uint64_t total = 0;
	for (int k = 0; k < 3; k++) {
		char *p = chunk[k];
		p += sprintf(p, "main;work;leaf%d %d\n", k, 10 + k);
		total += 10 + (uint64_t)k;
		for (int i = 0; i <= k; i++) {
			p += sprintf(p, "main;shared;s%d %d\n", i, k + i + 1);
			total += (uint64_t)(k + i + 1);
		}
		p += sprintf(p, "main %d\n", k + 1);
		total += (uint64_t)k + 1;
	}
	uint64_t fed = 0;
	for (int k = 0; k < 3; k++) {
		char f1[64], f2[64];
		snprintf(f1, sizeof(f1), "w%d.a", k);
		snprintf(f2, sizeof(f2), "w%d.b", k);
		/* Two scrapers on the first window: any number at once. */
		pid_t a = scrape_start(&s, "seconds=1&format=folded", ts_path(f1));
		pid_t b = k == 0 ? scrape_start(&s, "seconds=1&format=folded", ts_path(f2)) : 0;
		wait_status(&s, "windows_started", (uint64_t)k + 2);
		feed(&s, chunk[k]);
		fed += sum_counts(chunk[k]);
		wait_status(&s, "total", fed);
		cr_assert_eq(status_u(&s, "windows_active"), k == 0 ? 2 : 1,
			     "the window ended before its stacks were merged (machine too slow?)");
		scrape_wait(a);
		char *got = ts_read_file(ts_path(f1), NULL);
		cr_assert(got);
		char *g = sorted_lines(got), *w = sorted_lines(chunk[k]);
		/* The window's "main N" line is main's self: folded merges it. */
		cr_expect_str_eq(g, w, "window %d", k);
		if (b) {
			scrape_wait(b);
			char *got2 = ts_read_file(ts_path(f2), NULL);
			cr_expect_str_eq(got2, got, "two scrapers of one window differ");
			free(got2);
		}
		strcat(whole, got);
		free(got);
		free(g);
		free(w);
	}
	cr_expect_eq(fed, total);
	/* The windows add up to the whole. */
	struct resp r = http(&s, "", "/api/snapshot?format=folded");
	char *all = ts_read_file(ts_path("body"), NULL);
	(void)all;
	/* Sum per stack over the windows. */
	json_t *sum = json_object();
	char *save = NULL;
	for (char *t = strtok_r(whole, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
		char *sp = strrchr(t, ' ');
		*sp = '\0';
		json_int_t prev = json_integer_value(json_object_get(sum, t));
		json_object_set_new(sum, t, json_integer(prev + atoll(sp + 1)));
	}
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	const char *key;
	json_t *val;
	json_object_foreach(sum, key, val)
		fprintf(f, "%s %lld\n", key, (long long)json_integer_value(val));
	fclose(f);
	char *a1 = sorted_lines(buf), *a2 = sorted_lines(r.body);
	cr_expect_str_eq(a1, a2, "the windows do not add up to the whole");
	free(a1);
	free(a2);
	free(buf);
	free(all);
	json_decref(sum);
	resp_free(&r);
	srv_stop(&s);
}

static bool have_go(void)
{
	return ts_run("command -v go >/dev/null 2>&1 && go tool -n pprof >/dev/null 2>&1") == 0;
}

/* `go tool pprof -raw` text -> folded lines "a;b;c N" (root first). */
static char *raw_to_folded(const char *raw)
{
	char *names[64] = { 0 };
	const char *loc = strstr(raw, "\nLocations\n");
	cr_assert(loc, "no Locations in pprof -raw output: %s", raw);
	for (const char *l = loc + 11; *l && *l != 'M'; l = strchr(l, '\n') + 1) {
		unsigned id;
		char name[128];
		/* "     1: 0x0 M=1 name :0 s=0()" */
		if (sscanf(l, " %u: %*s %*s %127s", &id, name) == 2 && id < 64)
			names[id] = strdup(name);
		if (!strchr(l, '\n'))
			break;
	}
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	const char *smp = strstr(raw, "\nSamples:\n");
	cr_assert(smp);
	smp = strchr(smp + 10, '\n') + 1; /* skip the sample type line */
	for (const char *l = smp; *l && strncmp(l, "Locations", 9); l = strchr(l, '\n') + 1) {
		unsigned long long v;
		int off;
		if (sscanf(l, " %llu:%n", &v, &off) != 1)
			break;
		char ln[512], *save = NULL;
		snprintf(ln, sizeof(ln), "%.*s", (int)strcspn(l + off, "\n"), l + off);
		unsigned ids[64], n = 0;
		for (char *t = strtok_r(ln, " ", &save); t && n < 64; t = strtok_r(NULL, " ", &save))
			ids[n++] = (unsigned)strtoul(t, NULL, 10);
		for (unsigned i = n; i-- > 0;) /* pprof lists the leaf first */
			fprintf(f, "%s%s", names[ids[i] < 64 ? ids[i] : 0] ? names[ids[i]] : "?",
				i ? ";" : "");
		fprintf(f, " %llu\n", v);
	}
	fclose(f);
	for (int i = 0; i < 64; i++)
		free(names[i]);
	char *out = sorted_lines(buf);
	free(buf);
	return out;
}

Test(live, go_tool_pprof_scrape_is_exact)
{
	if (!have_go())
		cr_skip_test("go (Debian golang-go, `scripts/deps.sh test`) not installed: no `go tool "
			     "pprof` to scrape with");
	struct srv s;
	srv_start(&s, "", true);
	feed(&s, "main;before 5\nmain;both 1\n");
	wait_status(&s, "total", 6);
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && exec env HOME='%s' GOCACHE='%s/gocache' PPROF_TMPDIR='%s' go tool pprof "
		 "-raw -seconds 2 '%s' 2>pp.err",
		 ts_dir, ts_dir, ts_dir, ts_dir, s.url);
	int fd;
	pid_t pid = spawn_sh(cmd, -1, &fd);
	wait_status(&s, "windows_started", 1);
	feed(&s, "main;during;x 7\nmain;both 2\nmain;during;y 3\n");
	wait_status(&s, "total", 18);
	cr_assert_eq(status_u(&s, "windows_active"), 1, "the window ended before its stacks were merged");
	wait_status(&s, "windows_done", 1);
	feed(&s, "main;after 4\nmain;both 8\n");
	FILE *out = fdopen(fd, "r");
	static char raw[1 << 16];
	size_t n = fread(raw, 1, sizeof(raw) - 1, out);
	raw[n] = '\0';
	fclose(out);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "go tool pprof failed: %s",
		  ts_read_file(ts_path("pp.err"), NULL));
	char *got = raw_to_folded(raw);
	cr_expect_str_eq(got, "main;both 2\nmain;during;x 7\nmain;during;y 3\n", "raw: %s", raw);
	free(got);
	wait_status(&s, "total", 30);
	srv_stop(&s);
}

/* ------------------------------------------------- load and safety */

/* A client that asks for /events and never reads: the server closes it
 * after the idle timeout, and ingest meanwhile goes on at full speed. */
Test(live, stalled_events_client_is_dropped, .timeout = 60)
{
	struct srv s;
	srv_start(&s, "--timeout 1", true);
	int port = atoi(strrchr(s.url, ':') + 1);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	char req[256];
	int n = snprintf(req, sizeof(req),
			 "GET /events?min_fraction=0 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port);
	cr_assert_eq(write(fd, req, (size_t)n), n);
	wait_status(&s, "sse_clients", 1);
	/* Big events (every stack distinct, nothing pruned) until the socket
	 * buffers are full and the client has stopped the server's writes. */
	static char chunk[1 << 20];
	uint64_t fed = 0;
	uint64_t clients = 1;
	for (int round = 0; round < 200 && clients; round++) {
		char *p = chunk;
		for (int i = 0; i < 8000; i++)
			p += sprintf(p, "main;r%d;frame_with_a_long_name_%d 1\n", round, i);
		feed(&s, chunk);
		fed += 8000;
		wait_status(&s, "total", fed); /* ingest is never held up */
		clients = status_u(&s, "sse_clients");
	}
	cr_expect_eq(clients, 0, "a client that never reads is still connected");
	close(fd);
	srv_stop(&s);
}

Test(live, token_and_address_rules)
{
	/* A non-loopback address needs a token or --insecure: exit 64. */
	cr_expect_eq(ts_run("env -u SHARDTRIE_LIVE_TOKEN %s serve --addr 0.0.0.0 /dev/null 2>'%s'", CLI,
			    ts_path("e")), 64);
	char *e = ts_read_file(ts_path("e"), NULL);
	cr_expect(e && strstr(e, "token"), "%s", e);
	free(e);
	cr_expect_eq(ts_run("%s serve --port 70000 /dev/null 2>/dev/null", CLI), 64);
	cr_expect_eq(ts_run("%s serve --token-file '%s' /dev/null 2>/dev/null", CLI, ts_path("none")), 66);

	/* A token (from a file, never argv) guards every request. */
	cr_assert_eq(ts_write_file(ts_path("tok"), "s3cret-t0ken\n", 13), 0);
	char args[512];
	snprintf(args, sizeof(args), "--token-file '%s'", ts_path("tok"));
	struct srv s;
	srv_start(&s, args, true);
	struct resp r = http(&s, "", "/api/status");
	cr_expect_eq(r.status, 401);
	cr_expect_str_eq(header(&r, "WWW-Authenticate"), "Bearer");
	resp_free(&r);
	expect_status(&s, "-H 'Authorization: Bearer wrong'", "/api/status", 401, NULL);
	expect_status(&s, "-H 'Authorization: Bearer s3cret-t0ken'", "/api/status", 200, "\"version\"");
	expect_status(&s, "", "/api/status?token=s3cret-t0ken", 200, "\"version\"");
	expect_status(&s, "-X POST -H 'Authorization: Bearer s3cret-t0ken' -H 'Origin: http://evil.example'",
		      "/reset", 403, NULL);
	srv_stop(&s);
}

Test(live, perf_script_stream)
{
	struct srv s;
	srv_start(&s, "-f perf", true);
	/* Two samples of the first event, one of another (skipped), the last
	 * sample ended by its blank line only later. */
	feed(&s, "app 12 1.0: 1 cpu-clock:ppp:\n\tffff f1 (/bin/app)\n\tffff main (/bin/app)\n\n"
		 "app 12 1.1: 1 cpu-clock:ppp:\n\tffff f2 (/bin/app)\n\tffff main (/bin/app)\n\n"
		 "app 12 1.2: 1 cycles:\n\tffff f3 (/bin/app)\n\n");
	wait_status(&s, "total", 2);
	feed(&s, "app 12 1.3: 1 cpu-clock:ppp:\n\tffff f1 (/bin/app)\n\tffff main (/bin/app)\n");
	feed(&s, "\n");
	wait_status(&s, "total", 3);
	struct resp r = http(&s, "", "/api/snapshot?format=folded");
	cr_expect_str_eq(r.body, "app;main;f1 2\napp;main;f2 1\n");
	resp_free(&r);
	srv_stop(&s);
}

/* With nothing new to send, /events sends comment keep-alives (at least
 * twice per idle timeout), so a quiet stream is not closed as idle. */
Test(live, events_keepalive_on_a_quiet_stream)
{
	struct srv s;
	srv_start(&s, "--timeout 2", true);
	feed(&s, "a 1\n");
	wait_status(&s, "total", 1);
	int fd;
	pid_t pid = events_open(&s, "", &fd);
	uint64_t id;
	static char data[4096];
	cr_assert(next_event(fd, &id, data, sizeof(data)));
	char line[256];
	int comments = 0;
	/* Three keep-alives take about 3 s: longer than the 2 s timeout. */
	while (comments < 3 && read_line(fd, line, sizeof(line))) {
		if (!strcmp(line, ": keep-alive"))
			comments++;
		else
			cr_expect(!line[0], "unexpected line on a quiet stream: %s", line);
	}
	cr_expect_eq(comments, 3, "the stream ended before three keep-alives");
	events_close(pid, fd);
	srv_stop(&s);
}

/* A reset inside a window: the window is what came after the reset, and
 * nothing ingested before it. */
Test(live, pprof_window_across_a_reset)
{
	struct srv s;
	srv_start(&s, "", true);
	feed(&s, "main;old 50\n");
	wait_status(&s, "total", 50);
	pid_t a = scrape_start(&s, "seconds=1&format=folded", ts_path("w"));
	wait_status(&s, "windows_started", 1);
	expect_status(&s, "-X POST", "/reset", 200, "\"t\":0");
	feed(&s, "main;new 7\nmain;old 2\n");
	wait_status(&s, "total", 9);
	scrape_wait(a);
	char *got = ts_read_file(ts_path("w"), NULL);
	cr_expect_str_eq(got, "main;new 7\nmain;old 2\n");
	free(got);
	srv_stop(&s);
}

/* ------------------------------------------------ the page in Chromium */

/*
 * The page driven in headless Chromium through the DevTools protocol: a
 * minimal WebSocket client (RFC 6455: masked text frames out, unmasked
 * frames in) sends Runtime.evaluate and reads its answer.  Every wait polls
 * an expression in the page (bounded), never a sleep.
 */
struct cdp {
	pid_t pid;
	int ws;
	int next_id;
	char dir[300];
};

static bool have_chromium(void)
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
static json_t *cdp_eval(struct cdp *c, const char *expr)
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

static char *cdp_str(struct cdp *c, const char *expr)
{
	json_t *v = cdp_eval(c, expr);
	char *s = strdup(json_is_string(v) ? json_string_value(v) : "");
	json_decref(v);
	return s;
}

/* Poll expr (a boolean) until true: bounded, about 15 s. */
static void cdp_wait(struct cdp *c, const char *expr)
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

static void cdp_open(struct cdp *c, const char *url)
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

static void cdp_close(struct cdp *c)
{
	close(c->ws);
	kill(c->pid, SIGTERM);
	waitpid(c->pid, NULL, 0);
}

#define PAGE_STATUS "document.getElementById('status').textContent"

Test(live, page_updates_keeps_zoom_and_search_names_stay_text, .timeout = 90)
{
	if (!have_chromium())
		cr_skip_test("chromium (Debian chromium, `scripts/deps.sh test`) not installed: the page "
			     "is not run");
	struct srv s;
	srv_start(&s, "", true);
	feed(&s, "main;a;b 3\nmain;<img src=x onerror=alert(1)>;c 2\n");
	wait_status(&s, "total", 5);
	struct cdp c;
	cdp_open(&c, s.url);
	cdp_wait(&c, "document.querySelectorAll('#chart .f').length === 6");
	char *st = cdp_str(&c, PAGE_STATUS);
	cr_expect(strstr(st, "total 5"), "status: %s", st);
	free(st);
	/* The hostile name is a frame's text, not markup. */
	json_t *v = cdp_eval(&c, "[...document.querySelectorAll('#chart .f')].some(e => e.textContent "
				 "=== '<img src=x onerror=alert(1)>') && document.querySelectorAll('img').length === 0");
	cr_expect(json_is_true(v), "the hostile name did not stay text");
	json_decref(v);

	/* Zoom into main;a and search for z, then update. */
	cdp_eval(&c, "[...document.querySelectorAll('#chart .f')].find(e => e.textContent === 'a').click()");
	cdp_eval(&c, "(() => { const i = document.getElementById('search'); i.value = 'z'; "
		     "i.dispatchEvent(new Event('input')); })()");
	feed(&s, "main;a;z 10\n");
	wait_status(&s, "total", 15);
	cdp_wait(&c, "document.getElementById('status').textContent.includes('total 15')");
	st = cdp_str(&c, "document.getElementById('crumbs').textContent");
	cr_expect_str_eq(st, "zoom: main \u203a a", "zoom lost across an update");
	free(st);
	st = cdp_str(&c, PAGE_STATUS);
	cr_expect(strstr(st, "matched 10 (66.67%)"), "search lost across an update: %s", st);
	free(st);
	v = cdp_eval(&c, "[...document.querySelectorAll('#chart .f.m')].map(e => e.textContent).join()");
	cr_expect_str_eq(json_string_value(v), "z");
	json_decref(v);
	/* Zoomed frames are scaled to the zoomed node: z is 10/13 of a. */
	v = cdp_eval(&c, "(() => { const f = [...document.querySelectorAll('#chart .f')]; "
			 "const w = (n) => parseFloat(f.find(e => e.textContent === n).style.width); "
			 "return Math.round(1000 * w('z') / w('a')); })()");
	cr_expect_eq(json_integer_value(v), 769, "z/a width ratio %lld/1000", json_integer_value(v));
	json_decref(v);

	/* Pause (space): a new version arrives but is not shown until resume. */
	cdp_eval(&c, "document.dispatchEvent(new KeyboardEvent('keydown', {key: ' '}))");
	feed(&s, "main;a;z 5\n");
	wait_status(&s, "total", 20);
	char want[128];
	snprintf(want, sizeof(want), "document.body.dataset.received === '%llu'",
		 (unsigned long long)status_u(&s, "version"));
	cdp_wait(&c, want);
	st = cdp_str(&c, PAGE_STATUS);
	cr_expect(strstr(st, "paused") && strstr(st, "total 15"), "paused page changed: %s", st);
	free(st);
	cdp_eval(&c, "document.dispatchEvent(new KeyboardEvent('keydown', {key: ' '}))");
	cdp_wait(&c, "document.getElementById('status').textContent.includes('total 20')");

	/* The zoomed node gone (a reset): the nearest ancestor that exists. */
	cdp_eval(&c, "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'r'}))");
	wait_status(&s, "total", 0);
	feed(&s, "main;q 1\n");
	wait_status(&s, "total", 1);
	cdp_wait(&c, "document.getElementById('status').textContent.includes('total 1,') || "
		     "document.getElementById('status').textContent.endsWith('total 1')");
	st = cdp_str(&c, "document.getElementById('crumbs').textContent");
	cr_expect_str_eq(st, "zoom: main", "zoom did not fall back to the nearest ancestor");
	free(st);
	cdp_close(&c);
	srv_stop(&s);
}

/* --follow: a file that grows is read as it grows; an unfinished last line
 * waits for its end. */
Test(live, follow_a_growing_file)
{
	cr_assert_eq(ts_write_file(ts_path("grow"), "a;b 1\n", 6), 0);
	struct srv s;
	char args[512];
	snprintf(args, sizeof(args), "--follow '%s'", ts_path("grow"));
	srv_start(&s, args, false);
	wait_status(&s, "total", 1);
	FILE *f = fopen(ts_path("grow"), "a");
	cr_assert(f);
	fputs("a;c 2\na;", f);
	fflush(f);
	wait_status(&s, "total", 3);
	fputs("d 3\n", f);
	fclose(f);
	wait_status(&s, "total", 6);
	struct resp r = http(&s, "", "/api/snapshot?format=folded");
	cr_expect_str_eq(r.body, "a;b 1\na;c 2\na;d 3\n");
	resp_free(&r);
	srv_stop(&s);
	cr_expect_eq(ts_run("%s serve --addr localhost /dev/null 2>/dev/null", CLI), 64,
		     "a name is not a numeric address");
}

/* ------------------------------------------------------- record --serve */

/* A line from fd within ms milliseconds (poll before each read). */
static bool read_line_within(int fd, char *buf, size_t n, int ms)
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

Test(live, record_cpu_serve_shows_the_run_and_writes_the_output, .timeout = 60)
{
	if (geteuid() != 0)
		cr_skip_test("record --serve needs root (or CAP_BPF+CAP_PERFMON): running as uid %u",
			     geteuid());
	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
		cr_skip_test("kernel has no BTF (/sys/kernel/btf/vmlinux): CO-RE tracers cannot run");
	int rc = ts_run("'%s' record io --selftest >/dev/null 2>'%s'", CLI, ts_path("probe.err"));
	if (rc != 0)
		cr_skip_test("BPF unusable here (record io --selftest exit %d): %s", rc,
			     ts_read_file(ts_path("probe.err"), NULL));
	char spin[600];
	snprintf(spin, sizeof(spin), "%s", CLI);
	char *slash = strrchr(spin, '/');
	snprintf(slash ? slash + 1 : spin, sizeof(spin) - (size_t)(slash ? slash + 1 - spin : 0),
		 "bpf/spin");
	if (access(spin, X_OK) != 0)
		cr_skip_test("bundled workload %s not built", spin);

	/* stderr into the pipe (the URL is printed there: stdout may carry
	 * the output), stdout to /dev/null. */
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "exec '%s' record cpu -F 499 --serve -o '%s' -- '%s' 4 2>&1 >/dev/null",
		 CLI, ts_path("rec.folded"), spin);
	int out;
	pid_t pid = spawn_sh(cmd, -1, &out);
	struct srv s = { .pid = pid, .in = -1 };
	char line[512], seen[4096] = "";
	for (int i = 0; i < 20 && !s.url[0]; i++) {
		cr_assert(read_line_within(out, line, sizeof(line), 15000),
			  "record --serve printed no URL on stderr within 15 s; it said: %s", seen);
		strncat(seen, line, sizeof(seen) - strlen(seen) - 2);
		strcat(seen, "\n");
		const char *u = strstr(line, "http://127.0.0.1:");
		if (!strncmp(line, "Live flamegraph at ", 19) && u)
			snprintf(s.url, sizeof(s.url), "%s", u);
	}
	cr_assert(s.url[0], "no 'Live flamegraph at http://127.0.0.1:PORT/' line: %s", seen);

	/* While the workload runs: its frames show in the live snapshot. */
	bool found = false;
	for (int i = 0; i < 300 && !found; i++) { /* about 3 s at most */
		struct resp r = http(&s, "", "/api/snapshot?format=folded");
		found = r.status == 200 && strstr(r.body, ";burn_a ");
		resp_free(&r);
		if (!found)
			pause_ms(10);
	}
	cr_expect(found, "burn_a never showed in the live snapshot while recording");
	cr_expect(status_u(&s, "ingested") > 0, "/api/status ingested nothing");
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	char rest[8192];
	ssize_t n = read(out, rest, sizeof(rest) - 1); /* the writer has exited: no wait */
	rest[n > 0 ? n : 0] = '\0';
	close(out);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "record --serve: status %d: %s%s", st, seen,
		  rest);
	char *f = ts_read_file(ts_path("rec.folded"), NULL);
	cr_assert(f && strstr(f, ";burn_a "), "the output has no burn_a: %.300s", f ? f : "(none)");
	free(f);
}
