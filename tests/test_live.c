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

#include "support/live_client.h"

#define CLI ST_TEST_CLI

extern char **environ;

TestSuite(live, .init = ts_dir_init, .fini = ts_dir_fini, .timeout = 60);

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

Test(live, record_cpu_serve_shows_the_run_and_writes_the_output, .timeout = 60)
{
	ts_need_bpf("record --serve");
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
	struct srv s;
	char seen[8192];
	srv_spawn_record(&s, cmd, &out, seen, sizeof(seen));

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
	int st = srv_wait_record(&s, out, seen, sizeof(seen));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "record --serve: status %d: %s", st, seen);
	char *f = ts_read_file(ts_path("rec.folded"), NULL);
	cr_assert(f && strstr(f, ";burn_a "), "the output has no burn_a: %.300s", f ? f : "(none)");
	free(f);
}

/* ------------------------------------------------------ windows, marks */

/* /api/status key.sub as an unsigned number. */
static uint64_t status_sub(const struct srv *s, const char *key, const char *sub)
{
	json_t *j = status_json(s);
	json_t *v = json_object_get(json_object_get(j, key), sub);
	cr_assert(json_is_integer(v), "/api/status has no %s.%s", key, sub);
	uint64_t x = (uint64_t)json_integer_value(v);
	json_decref(j);
	return x;
}

/* GET /api/snapshot?format=folded&window=W: the body sorted, the base
 * version in *from (X-Window-From-Version; 0 when absent). */
static char *window_folded(const struct srv *s, const char *w, uint64_t *from, double *secs)
{
	char path[128];
	snprintf(path, sizeof(path), "/api/snapshot?format=folded&window=%s", w);
	struct resp r = http(s, "", path);
	cr_assert_eq(r.status, 200, "%s: %d %s", path, r.status, r.body);
	const char *h = header(&r, "X-Window-From-Version");
	*from = h ? strtoull(h, NULL, 10) : 0;
	h = header(&r, "X-Window-Seconds");
	if (secs)
		*secs = h ? strtod(h, NULL) : -1;
	/* (sorted_lines() of "" would qsort a NULL array) */
	char *got = r.body[0] ? sorted_lines(r.body) : strdup("");
	resp_free(&r);
	return got;
}

/* A mark, then the windows: mark = exactly what came after it, all = the
 * whole, Ns = the difference from the ring's snapshot of N s ago (made
 * exact by waiting until the ring holds a quiet version for N s). */
Test(live, windows_mark_and_seconds_are_exact)
{
	struct srv s;
	srv_start(&s, "", true);
	feed(&s, "main;before 5\n");
	wait_status(&s, "total", 5);
	uint64_t v1 = status_u(&s, "version");
	cr_expect_eq(status_u(&s, "marks"), 0);
	cr_expect_eq(status_u(&s, "mark_version"), 0);
	/* No mark yet: window=mark is everything. */
	uint64_t from;
	char *got = window_folded(&s, "mark", &from, NULL);
	cr_expect_str_eq(got, "main;before 5\n");
	cr_expect_eq(from, 0);
	free(got);

	struct resp r = http(&s, "-X POST", "/mark");
	cr_assert_eq(r.status, 200, "%s", r.body);
	char want[128];
	snprintf(want, sizeof(want), "{\"mark\":1,\"version\":%llu,\"t\":5}", (unsigned long long)v1);
	cr_expect_str_eq(r.body, want);
	cr_expect_str_eq(header(&r, "Content-Type"), "application/json");
	resp_free(&r);
	cr_expect_eq(status_u(&s, "marks"), 1);
	cr_expect_eq(status_u(&s, "mark_version"), v1);

	feed(&s, "main;after 3\nmain;before 1\n");
	wait_status(&s, "total", 9);
	uint64_t v2 = status_u(&s, "version");
	got = window_folded(&s, "mark", &from, NULL);
	cr_expect_str_eq(got, "main;after 3\nmain;before 1\n", "the mark window is what came after it");
	cr_expect_eq(from, v1);
	free(got);
	got = window_folded(&s, "all", &from, NULL);
	cr_expect_str_eq(got, "main;after 3\nmain;before 6\n", "nothing was cleared");
	free(got);
	got = window_folded(&s, "mark", &from, NULL);
	free(got);
	/* ETag of a window names its base; 304 on it. */
	r = http(&s, "", "/api/snapshot?window=mark");
	snprintf(want, sizeof(want), "\"v%llu-%llu\"", (unsigned long long)v2, (unsigned long long)v1);
	cr_expect_str_eq(header(&r, "ETag"), want);
	cr_expect(strstr(r.body, "\"t\":4"), "%s", r.body);
	resp_free(&r);
	char h[256];
	snprintf(h, sizeof(h), "-H 'If-None-Match: %s'", want);
	expect_status(&s, h, "/api/snapshot?window=mark", 304, NULL);
	/* The same window through another metric spelling: nothing cleared. */
	expect_status(&s, "", "/api/snapshot?window=mark&metric=count", 200, "\"t\":4");
	expect_status(&s, "", "/api/snapshot?window=all&metric=0", 200, "\"t\":9");
	cr_expect_eq(status_u(&s, "total"), 9);

	/* window=2s: once the ring has held v2 for 2 s the window is empty
	 * and based on v2 (bounded wait: the ring ticks every second). */
	double secs = 0;
	for (int i = 0; i < 100; i++) {
		got = window_folded(&s, "2s", &from, &secs);
		if (from == v2)
			break;
		free(got);
		got = NULL;
		pause_ms(100);
	}
	cr_assert_eq(from, v2, "the ring never based window=2s on the quiet version");
	cr_expect_str_eq(got, "", "no change in the last 2 s");
	cr_expect(secs >= 2.0 && secs < 2.5, "span %.3f", secs);
	free(got);
	feed(&s, "main;late 4\n");
	wait_status(&s, "total", 13);
	got = window_folded(&s, "2s", &from, &secs);
	cr_expect_eq(from, v2, "the base is the quiet version of 2 s ago");
	cr_expect_str_eq(got, "main;late 4\n", "window=2s is what came in the last 2 s");
	cr_expect(secs >= 2.0, "span %.3f", secs);
	free(got);
	got = window_folded(&s, "mark", &from, NULL);
	cr_expect_str_eq(got, "main;after 3\nmain;before 1\nmain;late 4\n");
	free(got);
	/* A window longer than the server's life is everything. */
	got = window_folded(&s, "86400s", &from, &secs);
	cr_expect_str_eq(got, "main;after 3\nmain;before 6\nmain;late 4\n");
	cr_expect_eq(from, 0);
	free(got);

	uint64_t k = status_sub(&s, "window_ring", "snapshots");
	uint64_t max = status_sub(&s, "window_ring", "max");
	cr_expect(k >= 2 && k <= max, "window_ring: %llu snapshots (max %llu)", (unsigned long long)k,
		  (unsigned long long)max);
	cr_expect_gt(status_sub(&s, "window_ring", "bytes"), 0);

	/* A second mark moves window=mark; a reset makes a mark from before
	 * it everything since the reset. */
	r = http(&s, "-X POST", "/mark");
	cr_expect(strstr(r.body, "\"mark\":2,") && strstr(r.body, "\"t\":13}"), "%s", r.body);
	resp_free(&r);
	got = window_folded(&s, "mark", &from, NULL);
	cr_expect_str_eq(got, "");
	free(got);
	expect_status(&s, "-X POST", "/reset", 200, "\"t\":0");
	feed(&s, "main;fresh 2\n");
	wait_status(&s, "total", 2);
	got = window_folded(&s, "mark", &from, NULL);
	cr_expect_str_eq(got, "main;fresh 2\n");
	free(got);
	srv_stop(&s);
}

static pid_t events_open_q(const struct srv *s, const char *query, int *fd)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "exec curl -sN -m 30 '%sevents?%s'", s->url, query);
	return spawn_sh(cmd, -1, fd);
}

/* /events?window=mark sends the window's tree; window=Ns repeats its frame
 * when the window moves though the version does not. */
Test(live, events_windows)
{
	struct srv s;
	srv_start(&s, "", true);
	feed(&s, "main;before 5\n");
	wait_status(&s, "total", 5);
	expect_status(&s, "-X POST", "/mark", 200, "\"mark\":1");
	feed(&s, "main;after 2\n");
	wait_status(&s, "total", 7);
	int fd;
	pid_t pid = events_open_q(&s, "window=mark&min_fraction=0", &fd);
	uint64_t id;
	static char data[1 << 16];
	cr_assert(next_event(fd, &id, data, sizeof(data)));
	cr_expect_eq(id, status_u(&s, "version"));
	cr_expect_eq(total_of(data), 2, "the mark window: %s", data);
	cr_expect(strstr(data, "\"after\"") && !strstr(data, "\"before\""), "%s", data);
	feed(&s, "main;after 1\nmain;before 1\n");
	cr_assert(next_event(fd, &id, data, sizeof(data)));
	cr_expect_eq(total_of(data), 4, "%s", data);
	events_close(pid, fd);

	/* window=1s: with no new version, the window moves past the last
	 * change and an empty frame of the same version comes (bounded: a
	 * few ticks of the ring). */
	uint64_t v = status_u(&s, "version");
	pid = events_open_q(&s, "window=1s", &fd);
	bool empty = false;
	for (int i = 0; i < 10 && !empty; i++) {
		cr_assert(next_event(fd, &id, data, sizeof(data)));
		cr_expect_eq(id, v, "no new version was published");
		empty = total_of(data) == 0;
	}
	cr_expect(empty, "window=1s never became empty: %s", data);
	events_close(pid, fd);
	expect_status(&s, "", "/events?window=2m", 400, "window");
	srv_stop(&s);
}

Test(live, window_and_mark_errors)
{
	struct srv s;
	srv_start(&s, "", true);
	feed(&s, known);
	wait_status(&s, "total", 6);
	const char *bad[] = { "0s", "86401s", "10m", "", "1.5s", "-1s", "marks", "s" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char path[128];
		snprintf(path, sizeof(path), "/api/snapshot?window=%s", bad[i]);
		expect_status(&s, "", path, 400, "window");
		snprintf(path, sizeof(path), "/events?window=%s", bad[i]);
		expect_status(&s, "", path, 400, "window");
	}
	expect_status(&s, "", "/debug/pprof/profile?window=1s", 400, "unknown parameter");
	struct resp r = http(&s, "", "/mark");
	cr_expect_eq(r.status, 405);
	cr_expect_str_eq(header(&r, "Allow"), "POST");
	resp_free(&r);
	expect_status(&s, "-X PUT", "/mark", 405, "allowed: POST");
	expect_status(&s, "-X POST -H 'Origin: http://evil.example'", "/mark", 403, "cross-site");
	expect_status(&s, "-X POST -H 'Sec-Fetch-Site: cross-site'", "/mark", 403, "cross-site");
	expect_status(&s, "-X POST -H 'Host: evil.example'", "/mark", 403, "Host");
	expect_status(&s, "-X POST", "/mark?metric=nope", 400, "metric");
	cr_expect_eq(status_u(&s, "marks"), 0, "refused marks set nothing");
	char h[256];
	snprintf(h, sizeof(h), "-X POST -H 'Origin: %.*s'", (int)strlen(s.url) - 1, s.url);
	expect_status(&s, h, "/mark", 200, "\"mark\":1");
	srv_stop(&s);
}

/* ---------------------------------------------------- request time limit */

/* A client trickling its request headers (a byte every 200 ms: never idle)
 * is closed once the request time limit (--timeout 2) passes; a longer
 * answer (a 3 s pprof window) on a request received whole is not. */
Test(live, slow_request_is_closed_long_answers_are_not)
{
	struct srv s;
	srv_start(&s, "--timeout 2", true);
	feed(&s, "main;a 1\n");
	wait_status(&s, "total", 1);
	pid_t a = scrape_start(&s, "seconds=3&format=folded", ts_path("w"));
	wait_status(&s, "windows_started", 1);

	unsigned port = (unsigned)atoi(strrchr(s.url, ':') + 1);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
	char head[128];
	int n = snprintf(head, sizeof(head), "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nX-Slow: ",
			 port);
	cr_assert_eq(send(fd, head, (size_t)n, MSG_NOSIGNAL), n);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bool closed = false;
	/* The client's pace: poll for the server's end for 200 ms, then one
	 * more byte; at most 8 s. */
	for (int i = 0; i < 40 && !closed; i++) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 200) > 0) {
			char buf[256];
			closed = recv(fd, buf, sizeof(buf), 0) <= 0;
			cr_assert(closed, "the server answered a request it never got whole");
		} else {
			closed = send(fd, "x", 1, MSG_NOSIGNAL) != 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	close(fd);
	cr_expect(closed, "a trickling client kept its connection for %.1f s", took);
	cr_expect(took > 1.5 && took < 4.5, "closed after %.1f s; the limit is 2 s", took);
	wait_status(&s, "request_timeouts", 1);

	scrape_wait(a);
	char *got = ts_read_file(ts_path("w"), NULL);
	cr_expect_str_eq(got, "", "the 3 s window ran to its end (nothing new came)");
	free(got);
	srv_stop(&s);
}

/* A bad value names the option once, as the user typed it. */
Test(live, bad_option_values_name_the_option)
{
	static const char *const cases[][2] = {
		{ "--port 99999", "serve: --port wants a port in [0,65535], got '99999'" },
		{ "--tick 0", "serve: --tick wants milliseconds in [1,60000], got '0'" },
		{ "-f xml", "serve: -f wants folded or perf, got 'xml'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		int rc = ts_run("'%s' serve %s </dev/null 2>'%s'", CLI, cases[i][0], ts_path("err"));
		cr_expect_eq(rc, 64, "%s: exit %d", cases[i][0], rc);
		char *err = ts_read_file(ts_path("err"), NULL);
		cr_expect(strstr(err, cases[i][1]), "%s: stderr: %s", cases[i][0], err);
		free(err);
	}
}
