/* SPDX-License-Identifier: MIT */
/*
 * test_push.c - pushing to Pyroscope (push/, cli/push.c), end to end
 * against a receiver that implements Pyroscope's ingest contract on
 * 127.0.0.1 (tests/support/pyroscope_rx.c):
 *
 *   - `serve - --push`: every pushed pprof decoded with `go tool pprof -raw`
 *     (skipped without go), the pushes add up to the whole input exactly,
 *     also across POST /reset (pushed by the reset hook) and the last,
 *     partial interval at exit; the query parameters, the form and its
 *     sample_type_config as Pyroscope reads them; folded pushes likewise.
 *   - failures: connection refused, 500, 429 with Retry-After (honoured),
 *     then delivered; a slow answer past the request timeout retried; a 4xx
 *     is a clear error naming the server's answer and is not retried.
 *   - the queue: bounded, the oldest dropped and counted, the newest sent,
 *     sent + dropped = everything (the push API driven directly).
 *   - a metric switch: each metric's pushes add up to its share exactly.
 *   - credentials: never in stderr, never in /proc/PID/cmdline; a URL with
 *     credentials is refused without echoing them.
 *
 * Waits are bounded polls of the receiver's state or of the server's
 * /api/status, never sleeps.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "push/push.h"
#include "support/live_client.h"
#include "support/pyroscope_rx.h"

#define CLI ST_TEST_CLI

TestSuite(push, .init = ts_dir_init, .fini = ts_dir_fini, .timeout = 90);

/* ------------------------------------------------------------ helpers */

/* A multiset of folded stacks: "stack" -> value. */
struct stacks {
	char **k;
	uint64_t *v;
	size_t n, cap;
};

static void stacks_add(struct stacks *s, const char *k, size_t klen, uint64_t v)
{
	for (size_t i = 0; i < s->n; i++)
		if (strlen(s->k[i]) == klen && !memcmp(s->k[i], k, klen)) {
			s->v[i] += v;
			return;
		}
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->k = realloc(s->k, s->cap * sizeof(*s->k));
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
	}
	s->k[s->n] = strndup(k, klen);
	s->v[s->n++] = v;
}

/* Add "stack N" lines. */
static void stacks_add_folded(struct stacks *s, const char *text, size_t len)
{
	const char *e = text + len;
	while (text < e) {
		const char *nl = memchr(text, '\n', (size_t)(e - text));
		const char *le = nl ? nl : e;
		const char *sp = le;
		while (sp > text && sp[-1] != ' ')
			sp--;
		if (sp > text)
			stacks_add(s, text, (size_t)(sp - 1 - text), strtoull(sp, NULL, 10));
		text = le + 1;
	}
}

static uint64_t stacks_total(const struct stacks *s)
{
	uint64_t t = 0;
	for (size_t i = 0; i < s->n; i++)
		t += s->v[i];
	return t;
}

/* Equal as multisets (zero entries ignored); the message says the first
 * difference. */
static void stacks_expect_eq(const struct stacks *got, const struct stacks *want, const char *what)
{
	for (size_t i = 0; i < want->n; i++) {
		uint64_t g = 0;
		for (size_t j = 0; j < got->n; j++)
			if (!strcmp(got->k[j], want->k[i]))
				g = got->v[j];
		cr_expect_eq(g, want->v[i], "%s: stack '%s' pushed %llu, ingested %llu", what, want->k[i],
			     (unsigned long long)g, (unsigned long long)want->v[i]);
	}
	cr_expect_eq(stacks_total(got), stacks_total(want), "%s: total pushed %llu, ingested %llu",
		     what, (unsigned long long)stacks_total(got),
		     (unsigned long long)stacks_total(want));
}

static void stacks_free(struct stacks *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->k[i]);
	free(s->k);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static bool have_go(void)
{
	return ts_run("command -v go >/dev/null 2>&1 && go tool -n pprof >/dev/null 2>&1") == 0;
}

/* Decode a gzipped pprof with `go tool pprof -raw` into s; *type gets the
 * sample type line ("samples/count" ...), malloc'd. */
static void pprof_decode(const char *pb, size_t len, struct stacks *s, char **type)
{
	cr_assert_eq(ts_write_file(ts_path("p.pb.gz"), pb, len), 0);
	int rc = ts_run("cd '%s' && HOME='%s' GOCACHE='%s/gocache' PPROF_TMPDIR='%s' go tool pprof "
			"-raw p.pb.gz > raw 2> raw.err",
			ts_dir, ts_dir, ts_dir, ts_dir);
	char *raw = ts_read_file(ts_path("raw"), NULL);
	cr_assert(rc == 0 && raw, "go tool pprof -raw failed: %s",
		  ts_read_file(ts_path("raw.err"), NULL));
	/* Locations: "     1: 0x0 M=1 name :0 s=0()" (our names have no spaces) */
	size_t cap = 1024;
	char **names = calloc(cap, sizeof(*names));
	const char *loc = strstr(raw, "\nLocations\n");
	cr_assert(loc, "no Locations in: %s", raw);
	for (const char *l = loc + 11; *l && strncmp(l, "Mappings", 8); l = strchr(l, '\n') + 1) {
		unsigned id;
		char name[512];
		if (sscanf(l, " %u: %*s %*s %511s", &id, name) == 2) {
			cr_assert(id < cap, "location id %u", id);
			names[id] = strdup(name);
		}
		if (!strchr(l, '\n'))
			break;
	}
	const char *smp = strstr(raw, "Samples:\n");
	cr_assert(smp);
	smp += 9;
	const char *nl = strchr(smp, '\n');
	*type = strndup(smp, (size_t)(nl - smp));
	for (const char *l = nl + 1; *l && strncmp(l, "Locations", 9); l = strchr(l, '\n') + 1) {
		unsigned long long v;
		int off;
		if (sscanf(l, " %llu:%n", &v, &off) != 1)
			break;
		char ln[4096], *save = NULL, stack[8192] = "";
		snprintf(ln, sizeof(ln), "%.*s", (int)strcspn(l + off, "\n"), l + off);
		unsigned ids[256], n = 0;
		for (char *t = strtok_r(ln, " ", &save); t && n < 256; t = strtok_r(NULL, " ", &save))
			ids[n++] = (unsigned)strtoul(t, NULL, 10);
		for (unsigned i = n; i-- > 0;) { /* leaf first in pprof */
			strcat(stack, ids[i] < cap && names[ids[i]] ? names[ids[i]] : "?");
			if (i)
				strcat(stack, ";");
		}
		stacks_add(s, stack, strlen(stack), v);
	}
	for (size_t i = 0; i < cap; i++)
		free(names[i]);
	free(names);
	free(raw);
}

/* Every accepted push of r, decoded (pprof with go, or folded), summed. */
static void sum_pushes(struct prx *r, struct stacks *sum)
{
	size_t n = prx_accepted(r);
	for (size_t i = 0; i < n; i++) {
		struct prx_push p = prx_get(r, i);
		if (p.multipart || (p.format && !strcmp(p.format, "pprof"))) {
			char *type = NULL;
			pprof_decode(p.profile, p.profile_len, sum, &type);
			free(type);
		} else {
			stacks_add_folded(sum, p.profile, p.profile_len);
		}
		prx_push_free(&p);
	}
}

/* Deterministic input: n lines of stacks from a small alphabet. */
static char *make_input(uint64_t seed, unsigned n, struct stacks *want)
{
	static const char *fr[] = { "main", "parse", "alloc", "io_read", "hash", "sort", "emit" };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	for (unsigned i = 0; i < n; i++) {
		char line[256] = "main";
		unsigned d = 1 + (unsigned)(ts_rand(&seed) % 4);
		for (unsigned k = 0; k < d; k++) {
			strcat(line, ";");
			strcat(line, fr[ts_rand(&seed) % 7]);
		}
		uint64_t v = 1 + ts_rand(&seed) % 50;
		stacks_add(want, line, strlen(line), v);
		fprintf(f, "%s %llu\n", line, (unsigned long long)v);
	}
	fclose(f);
	return buf;
}

static bool file_has(const char *path, const char *needle)
{
	char *t = ts_read_file(path, NULL);
	bool has = t && strstr(t, needle);
	free(t);
	return has;
}

/* Bounded wait until the file at path holds needle. */
static bool wait_file_has(const char *path, const char *needle, unsigned max_ms)
{
	for (unsigned w = 0; w <= max_ms; w += 10) {
		if (file_has(path, needle))
			return true;
		pause_ms(10);
	}
	return false;
}

/* The whole /proc/PID/cmdline, NULs made spaces. */
static char *cmdline(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	size_t n;
	char *t = ts_read_file(path, &n);
	cr_assert(t);
	for (size_t i = 0; i < n; i++)
		if (!t[i])
			t[i] = ' ';
	return t;
}

/* ------------------------------------------------------ serve --push */

/* pprof pushes, decoded by go tool pprof, add up to the whole input across
 * a reset: with a 1 h interval the only pushes are the reset's (what came
 * before it) and the exit's (the last, partial interval), so the reset
 * hook is what pushes the first part; credentials reach the server and
 * nothing else. */
Test(push, pprof_pushes_add_up_across_reset_and_exit)
{
	if (!have_go())
		cr_skip_test("go (Debian golang-go, `scripts/deps.sh test`) not installed: no `go tool "
			     "pprof` to decode the pushes with");
	struct prx *rx = prx_start(0);
	cr_assert(rx);
	prx_require(rx, "Bearer s3cr3t-T0KEN", "tenant-42");
	setenv("SHARDTRIE_PUSH_TOKEN", "s3cr3t-T0KEN", 1);
	setenv("SHARDTRIE_PUSH_TENANT", "tenant-42", 1);
	char args[512];
	snprintf(args, sizeof(args),
		 "--push http://127.0.0.1:%u --push-interval 1h --app my.app --label env=test "
		 "--label region=eu_1",
		 prx_port(rx));
	struct srv s;
	srv_start(&s, args, true);
	char *cl = cmdline(s.pid);
	cr_expect(!strstr(cl, "s3cr3t"), "the token is in the command line: %s", cl);
	free(cl);

	struct stacks want = { 0 }, got = { 0 };
	char *a = make_input(1, 300, &want);
	feed(&s, a);
	wait_status(&s, "total", stacks_total(&want));
	struct resp r = http(&s, "-X POST", "/reset");
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	cr_assert(prx_wait_accepted(rx, 1, 10000), "the reset pushed nothing (%zu requests)",
		  prx_requests(rx));
	struct stacks after = { 0 };
	char *b = make_input(2, 200, &after);
	for (size_t i = 0; i < after.n; i++)
		stacks_add(&want, after.k[i], strlen(after.k[i]), after.v[i]);
	feed(&s, b);
	wait_status(&s, "total", stacks_total(&after));
	srv_stop(&s); /* SIGTERM: the last interval is pushed before exit */
	cr_assert_eq(prx_accepted(rx), 2, "pushes: %zu", prx_accepted(rx));
	cr_expect_eq(prx_requests(rx), 2);

	sum_pushes(rx, &got);
	stacks_expect_eq(&got, &want, "pprof pushes");

	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	for (size_t i = 0; i < 2; i++) {
		struct prx_push p = prx_get(rx, i);
		char name[512];
		snprintf(name, sizeof(name), "my.app{hostname=%s,metric=count,env=test,region=eu_1}", host);
		cr_expect_str_eq(p.name, name);
		cr_expect(p.multipart, "not a form: %s", p.content_type);
		cr_expect(!p.format, "a form must come without format= (Pyroscope would read it as a "
				     "bare pprof)");
		cr_expect_str_eq(p.units, "samples");
		cr_expect_str_eq(p.aggregation, "sum");
		cr_expect_str_eq(p.sample_rate, "100");
		cr_expect_str_eq(p.spy_name, "shardtrie");
		cr_expect(strtoll(p.from, NULL, 10) > 1600000000 &&
			  strtoll(p.until, NULL, 10) >= strtoll(p.from, NULL, 10));
		cr_expect(p.stc && strstr(p.stc, "\"samples\":{\"units\":\"samples\",\"aggregation\":"
						 "\"sum\",\"display-name\":\"count\""),
			  "sample_type_config: %s", p.stc);
		char *type = NULL;
		struct stacks one = { 0 };
		pprof_decode(p.profile, p.profile_len, &one, &type);
		cr_expect(strstr(type, "samples/count"), "sample type: %s", type);
		free(type);
		stacks_free(&one);
		prx_push_free(&p);
	}
	cr_expect(!file_has(ts_path("serve.err"), "s3cr3t"), "the token is in stderr");
	cr_expect(file_has(ts_path("serve.err"), "2 intervals sent"), "%s",
		  ts_read_file(ts_path("serve.err"), NULL));
	free(a);
	free(b);
	stacks_free(&want);
	stacks_free(&after);
	stacks_free(&got);
	prx_stop(rx);
}

/* Periodic folded pushes (200 ms): several intervals, each exact, the sum
 * the whole input; format=folded, the lines as Pyroscope reads them. */
Test(push, folded_periodic_pushes_add_up)
{
	struct prx *rx = prx_start(0);
	cr_assert(rx);
	char args[512];
	snprintf(args, sizeof(args), "--push http://127.0.0.1:%u/ --push-interval 200ms --push-format folded",
		 prx_port(rx));
	struct srv s;
	srv_start(&s, args, true);
	struct stacks want = { 0 }, got = { 0 };
	uint64_t fed = 0;
	for (unsigned k = 0; k < 4; k++) {
		struct stacks part = { 0 };
		char *t = make_input(10 + k, 100, &part);
		for (size_t i = 0; i < part.n; i++)
			stacks_add(&want, part.k[i], strlen(part.k[i]), part.v[i]);
		feed(&s, t);
		fed += stacks_total(&part);
		wait_status(&s, "total", fed);
		/* the next part goes into a later interval */
		cr_assert(prx_wait_accepted(rx, k + 1, 10000), "interval %u not pushed", k);
		free(t);
		stacks_free(&part);
	}
	srv_stop(&s);
	cr_expect_eq(prx_accepted(rx), 4, "an interval with nothing new was pushed, or one was lost");
	sum_pushes(rx, &got);
	stacks_expect_eq(&got, &want, "folded pushes");
	struct prx_push p = prx_get(rx, 0);
	cr_expect_str_eq(p.format, "folded");
	cr_expect(!p.multipart);
	prx_push_free(&p);
	stacks_free(&want);
	stacks_free(&got);
	prx_stop(rx);
}

/* Connection refused, 500, 429 with Retry-After, 503: retried with backoff
 * until delivered, nothing lost; the Retry-After is honoured. */
Test(push, failures_are_retried_until_delivered)
{
	/* a port with nothing listening yet: bind a receiver, stop it */
	struct prx *tmp = prx_start(0);
	cr_assert(tmp);
	unsigned port = prx_port(tmp);
	prx_stop(tmp);
	char args[512];
	snprintf(args, sizeof(args), "--push http://127.0.0.1:%u --push-interval 200ms --push-format folded",
		 port);
	struct srv s;
	srv_start(&s, args, true);
	struct stacks want = { 0 }, got = { 0 };
	char *t = make_input(5, 50, &want);
	feed(&s, t);
	wait_status(&s, "total", stacks_total(&want));
	cr_assert(wait_file_has(ts_path("serve.err"), "retrying", 10000),
		  "no refused connection reported: %s", ts_read_file(ts_path("serve.err"), NULL));
	struct prx *rx = prx_start(port);
	cr_assert(rx, "port %u taken meanwhile", port);
	static const struct prx_act acts[] = { { .status = 500 },
					       { .status = 429, .retry_after_s = 2 },
					       { .status = 503 } };
	prx_script(rx, acts, 3);
	cr_assert(prx_wait_accepted(rx, 1, 30000), "never delivered (%zu requests)", prx_requests(rx));
	cr_expect_eq(prx_status_count(rx, 500), 1);
	cr_expect_eq(prx_status_count(rx, 429), 1);
	cr_expect_eq(prx_status_count(rx, 503), 1);
	double waited = prx_request_time(rx, 2) - prx_request_time(rx, 1);
	cr_expect_geq(waited, 1.95, "Retry-After: 2 not honoured (%.3f s)", waited);
	srv_stop(&s);
	sum_pushes(rx, &got);
	stacks_expect_eq(&got, &want, "after failures");
	char *err = ts_read_file(ts_path("serve.err"), NULL);
	cr_expect(strstr(err, "1 intervals sent"), "%s", err);
	cr_expect(strstr(err, "sending again"), "%s", err);
	free(err);
	free(t);
	stacks_free(&want);
	stacks_free(&got);
	prx_stop(rx);
}

/* A 4xx other than 429 is an error naming the server's answer, not retried;
 * the credentials sent are never printed. */
/* --push-drain and --push-timeout: with nothing listening, the exit waits
 * for the drain time given (not the default 10 s), and what was not sent is
 * counted in the exit report, with its value. */
Test(push, drain_time_bounds_the_exit_and_counts_unsent)
{
	struct prx *tmp = prx_start(0); /* a port with nothing listening */
	cr_assert(tmp);
	unsigned port = prx_port(tmp);
	prx_stop(tmp);
	char args[512];
	snprintf(args, sizeof(args),
		 "--push http://127.0.0.1:%u --push-interval 1h --push-format folded "
		 "--push-timeout 300ms --push-drain 500ms",
		 port);
	struct srv s;
	srv_start(&s, args, true);
	struct stacks want = { 0 };
	char *t = make_input(7, 40, &want);
	feed(&s, t);
	wait_status(&s, "total", stacks_total(&want));
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	srv_stop(&s); /* the last interval is pushed, refused, retried for 500 ms */
	clock_gettime(CLOCK_MONOTONIC, &b);
	double took = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	cr_expect_geq(took, 0.45, "exit %.3f s: the drain time was not used", took);
	cr_expect_lt(took, 5.0, "exit %.3f s: --push-drain 500ms not honoured (default 10 s)", took);
	char *err = ts_read_file(ts_path("serve.err"), NULL);
	char want_unsent[96];
	snprintf(want_unsent, sizeof(want_unsent), "1 unsent at exit (%llu)",
		 (unsigned long long)stacks_total(&want));
	cr_expect(strstr(err, want_unsent), "want '%s' in: %s", want_unsent, err);
	cr_expect(strstr(err, "0 intervals sent"), "%s", err);
	free(err);
	free(t);
	stacks_free(&want);
}

Test(push, client_error_is_reported_not_retried)
{
	struct prx *rx = prx_start(0);
	cr_assert(rx);
	prx_require(rx, "Basic d3Jvbmc6d3Jvbmc=", NULL); /* wrong:wrong */
	setenv("SHARDTRIE_PUSH_USER", "12345", 1);
	setenv("SHARDTRIE_PUSH_PASSWORD", "glc_pa55w0rd", 1);
	char args[512];
	snprintf(args, sizeof(args), "--push http://127.0.0.1:%u --push-interval 200ms", prx_port(rx));
	struct srv s;
	srv_start(&s, args, true);
	feed(&s, "a;b 1\n");
	wait_status(&s, "total", 1);
	cr_assert(prx_wait_requests(rx, 1, 10000));
	cr_assert(wait_file_has(ts_path("serve.err"), "HTTP 401: unauthorized", 10000), "%s",
		  ts_read_file(ts_path("serve.err"), NULL));
	/* a 400 too: the next interval */
	static const struct prx_act bad[] = { { .status = 400 } };
	prx_require(rx, NULL, NULL);
	prx_script(rx, bad, 1);
	feed(&s, "a;c 2\n");
	wait_status(&s, "total", 3);
	cr_assert(prx_wait_requests(rx, 2, 10000));
	cr_assert(wait_file_has(ts_path("serve.err"), "HTTP 400: scripted failure", 10000), "%s",
		  ts_read_file(ts_path("serve.err"), NULL));
	srv_stop(&s);
	cr_expect_eq(prx_requests(rx), 2, "a refused interval was retried");
	char *err = ts_read_file(ts_path("serve.err"), NULL);
	cr_expect(strstr(err, "2 refused by the server (3)"), "%s", err);
	cr_expect(!strstr(err, "glc_pa55w0rd") && !strstr(err, "MTIzNDU6Z2xj"), "a credential in stderr");
	free(err);
	prx_stop(rx);
}

Test(push, bad_options_are_usage_errors)
{
	static const char *const bad[] = {
		"--app x",                                   /* push option without --push */
		"--push ftp://127.0.0.1:1",                 /* scheme */
		"--push http://127.0.0.1:1 --label 1x=y",   /* label name */
		"--push http://127.0.0.1:1 --label __n=y",  /* reserved */
		"--push http://127.0.0.1:1 --label a=b,c",  /* value syntax */
		"--push http://127.0.0.1:1 --push-interval 10ms",
		"--push http://127.0.0.1:1 --push-queue 0",
		"--push http://127.0.0.1:1 --push-queue 8/10",
		"--push http://127.0.0.1:1 --push-format json",
		"--push http://127.0.0.1:1 --push-timeout 50ms",
		"--push http://127.0.0.1:1 --push-timeout 11m",
		"--push http://127.0.0.1:1 --push-drain 2h",
		"--push http://127.0.0.1:1 --push-drain -1s",
		"--push http://127.0.0.1:1 --push-drain soon",
		"--push http://127.0.0.1:1/?x=1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		int rc = ts_run("%s serve %s /dev/null >/dev/null 2>'%s'", CLI, bad[i], ts_path("err"));
		cr_expect_eq(rc, 64, "'%s': exit %d", bad[i], rc);
	}
	/* credentials in the URL: refused, and not repeated */
	int rc = ts_run("%s serve --push http://me:hunter2@127.0.0.1:1 /dev/null >/dev/null 2>'%s'",
			CLI, ts_path("err"));
	cr_expect_eq(rc, 64);
	cr_expect(file_has(ts_path("err"), "holds credentials"));
	cr_expect(!file_has(ts_path("err"), "hunter2"));
}

/* ------------------------------------------------- the push API itself */

static struct st_engine *engine2(void)
{
	struct st_options so;
	st_options_init(&so);
	so.nshards = 1;
	so.nmetrics = 2;
	so.metrics[0] = (struct st_metric_desc){ "count", "calls" };
	so.metrics[1] = (struct st_metric_desc){ "bytes", "bytes" };
	struct st_engine *e = st_engine_create(&so);
	cr_assert(e);
	return e;
}

static void ingest(struct st_writer *w, const char *a, const char *b, uint64_t v0, uint64_t v1)
{
	const char *fr[2] = { a, b };
	size_t ln[2] = { strlen(a), strlen(b) };
	uint64_t v[2] = { v0, v1 };
	cr_assert_eq(st_writer_ingest_strs(w, fr, ln, 2, v), 0);
}

static void api_opts(struct st_push_opts *o, struct prx *rx, char *url, size_t n)
{
	st_push_opts_init(o);
	snprintf(url, n, "http://127.0.0.1:%u", prx_port(rx));
	o->url = url;
	o->format = ST_PUSH_FOLDED;
	o->hostname = "testhost";
	o->log = fopen(ts_path("push.log"), "w");
	cr_assert(o->log);
}

static uint64_t wait_intervals(struct st_push *p, uint64_t n)
{
	struct st_push_stats st;
	for (unsigned w = 0; w < 10000; w += 5) {
		st_push_get_stats(p, &st);
		if (st.intervals >= n)
			return st.intervals;
		pause_ms(5);
	}
	cr_assert_fail("interval %llu never closed", (unsigned long long)n);
	return 0;
}

/* Queue of 2 while the server fails: the oldest intervals are dropped and
 * counted, the newest are sent once it recovers; sent + dropped = all. */
Test(push, full_queue_drops_the_oldest_and_counts)
{
	struct prx *rx = prx_start(0);
	cr_assert(rx);
	struct prx_act fail[64];
	for (int i = 0; i < 64; i++)
		fail[i] = (struct prx_act){ .status = 500 };
	prx_script(rx, fail, 64);
	struct st_engine *e = engine2();
	struct st_push_opts o;
	char url[64];
	api_opts(&o, rx, url, sizeof(url));
	o.interval_ms = 100;
	o.queue_max = 2;
	o.backoff_min_ms = 20;
	o.backoff_max_ms = 40;
	struct st_push *p = st_push_start(e, &o);
	cr_assert(p);
	struct st_writer *w = st_writer_open(e);
	/* interval k holds value 1 << k: a push's total says which it was */
	uint64_t all = 0;
	for (unsigned k = 0; k < 8; k++) {
		ingest(w, "main", "k", 1ull << k, 0);
		all += 1ull << k;
		st_flush(e);
		wait_intervals(p, k + 1);
	}
	prx_script(rx, NULL, 0); /* healthy again */
	st_push_stop(p);
	struct st_push_stats st;
	st_push_get_stats(p, &st);
	cr_expect_eq(st.intervals, 8);
	cr_expect_geq(st.dropped, 5, "dropped %llu", (unsigned long long)st.dropped);
	cr_expect_eq(st.sent + st.dropped + st.unsent + st.rejected, 8);
	cr_expect_eq(st.sent_value + st.dropped_value, all);
	cr_expect_eq(st.unsent, 0);
	cr_expect_eq(prx_accepted(rx), st.sent);
	/* what arrived is the newest: the last interval and the ones just
	 * before it, never an old one while a newer was dropped */
	uint64_t got = 0;
	for (size_t i = 0; i < prx_accepted(rx); i++) {
		struct prx_push q = prx_get(rx, i);
		struct stacks one = { 0 };
		stacks_add_folded(&one, q.profile, q.profile_len);
		got |= stacks_total(&one);
		stacks_free(&one);
		prx_push_free(&q);
	}
	cr_expect_eq(got, st.sent_value);
	cr_expect(got & (1u << 7), "the newest interval was not sent");
	cr_expect_eq(got & st.dropped_value, 0);
	cr_expect(got > st.dropped_value, "an older interval was kept over a newer one: sent %llx "
					   "dropped %llx", (unsigned long long)got,
		  (unsigned long long)st.dropped_value);
	st_writer_close(w);
	fclose(o.log);
	st_push_free(p);
	st_engine_destroy(e);
	prx_stop(rx);
}

/* An answer slower than the request timeout is retried (the request timed
 * out), and the interval still arrives once. */
Test(push, slow_answer_times_out_and_is_retried)
{
	struct prx *rx = prx_start(0);
	cr_assert(rx);
	static const struct prx_act slow[] = { { .delay_ms = 1500 } };
	prx_script(rx, slow, 1);
	struct st_engine *e = engine2();
	struct st_push_opts o;
	char url[64];
	api_opts(&o, rx, url, sizeof(url));
	o.interval_ms = 100;
	o.timeout_ms = 300;
	o.backoff_min_ms = 20;
	struct st_push *p = st_push_start(e, &o);
	cr_assert(p);
	struct st_writer *w = st_writer_open(e);
	ingest(w, "main", "slow", 7, 0);
	cr_assert(prx_wait_requests(rx, 2, 10000));
	st_push_stop(p);
	struct st_push_stats st;
	st_push_get_stats(p, &st);
	cr_expect_geq(st.retries, 1);
	cr_expect_eq(st.sent, 1);
	cr_expect_eq(st.sent_value, 7);
	/* the slow request's answer was 200 but came too late: the retry
	 * delivered it, so it may be there twice at the receiver; what we
	 * count as sent is once */
	cr_expect(wait_file_has(ts_path("push.log"), "timed out", 1000) ||
		  file_has(ts_path("push.log"), "Timeout"), "no timeout reported");
	st_writer_close(w);
	fclose(o.log);
	st_push_free(p);
	st_engine_destroy(e);
	prx_stop(rx);
}

/* A metric switch closes the old metric's interval: each metric's pushes
 * add up to exactly what it gained while it was the one pushed. */
Test(push, metric_switch_is_exact)
{
	struct prx *rx = prx_start(0);
	cr_assert(rx);
	struct st_engine *e = engine2();
	struct st_push_opts o;
	char url[64];
	api_opts(&o, rx, url, sizeof(url));
	o.interval_ms = 3600000; /* only the switch and the stop push */
	struct st_push *p = st_push_start(e, &o);
	cr_assert(p);
	struct st_writer *w = st_writer_open(e);
	ingest(w, "main", "a", 3, 300);
	ingest(w, "main", "b", 4, 400);
	cr_assert_eq(st_push_set_metric(p, 1, "io_bytes"), 0);
	ingest(w, "main", "a", 5, 500);
	ingest(w, "main", "c", 6, 600);
	st_writer_close(w);
	st_push_stop(p);
	cr_assert_eq(prx_accepted(rx), 2);
	struct prx_push q0 = prx_get(rx, 0), q1 = prx_get(rx, 1);
	cr_expect_str_eq(q0.name, "shardtrie{hostname=testhost,metric=count}");
	cr_expect_str_eq(q0.units, "objects");
	cr_expect_str_eq(q1.name, "shardtrie{hostname=testhost,metric=io_bytes}");
	cr_expect_str_eq(q1.units, "bytes");
	struct stacks s0 = { 0 }, s1 = { 0 }, w0 = { 0 }, w1 = { 0 };
	stacks_add_folded(&s0, q0.profile, q0.profile_len);
	stacks_add_folded(&s1, q1.profile, q1.profile_len);
	stacks_add_folded(&w0, "main;a 3\nmain;b 4\n", 18);
	stacks_add_folded(&w1, "main;a 500\nmain;c 600\n", 22);
	stacks_expect_eq(&s0, &w0, "count before the switch");
	stacks_expect_eq(&s1, &w1, "bytes after the switch");
	stacks_free(&s0);
	stacks_free(&s1);
	stacks_free(&w0);
	stacks_free(&w1);
	prx_push_free(&q0);
	prx_push_free(&q1);
	fclose(o.log);
	st_push_free(p);
	st_engine_destroy(e);
	prx_stop(rx);
}

/* ------------------------------------------------------ record --push */

/* `record io --flood` (root + BPF, else skipped): the pushes of a
 * recording add up to the output file, stack for stack, the last partial
 * interval included; metric=io_bytes with units=bytes. */
Test(push, record_io_pushes_add_up_to_the_output, .timeout = 120)
{
	ts_need_bpf("record --push");
	struct prx *rx = prx_start(0);
	cr_assert(rx);
	int rc = ts_run("'%s' record io --flood 20000 -d 1 --metric bytes --push http://127.0.0.1:%u "
			"--push-interval 200ms --push-format folded -o '%s' 2>'%s'",
			CLI, prx_port(rx), ts_path("out.folded"), ts_path("rec.err"));
	char *err = ts_read_file(ts_path("rec.err"), NULL);
	cr_assert_eq(rc, 0, "record: exit %d: %s", rc, err);
	size_t n;
	char *out = ts_read_file(ts_path("out.folded"), &n);
	cr_assert(out);
	struct stacks want = { 0 }, got = { 0 };
	stacks_add_folded(&want, out, n);
	cr_assert_gt(stacks_total(&want), 0, "the flood recorded nothing");
	sum_pushes(rx, &got);
	stacks_expect_eq(&got, &want, "record io pushes");
	struct prx_push p = prx_get(rx, 0);
	cr_expect(p.name && strstr(p.name, "metric=io_bytes"), "%s", p.name);
	cr_expect_str_eq(p.units, "bytes");
	cr_expect_str_eq(p.spy_name, "ebpfspy");
	prx_push_free(&p);
	cr_expect(strstr(err, "0 dropped") && strstr(err, "0 unsent"), "%s", err);
	free(err);
	free(out);
	stacks_free(&want);
	stacks_free(&got);
	prx_stop(rx);
}

/* ------------------------------------------------- figures in /api/status */

/* The pusher's figure key of /api/status ("push" object), -1 when absent. */
static long long push_fig(const struct srv *s, const char *key)
{
	json_t *j = status_json(s);
	json_t *v = json_object_get(json_object_get(j, "push"), key);
	long long r = json_is_integer(v) ? (long long)json_integer_value(v) : -1;
	json_decref(j);
	return r;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Bounded wait until the push figure key is at least want; its value. */
static long long wait_push_fig(const struct srv *s, const char *key, long long want,
			       unsigned max_ms)
{
	long long v = -1;
	double end = mono_s() + max_ms / 1000.0;
	do {
		if ((v = push_fig(s, key)) >= want)
			return v;
		pause_ms(10);
	} while (mono_s() < end);
	json_t *j = status_json(s);
	char *txt = json_dumps(json_object_get(j, "push"), JSON_COMPACT);
	cr_assert_fail("/api/status push.%s is %lld, want >= %lld: %s", key, v, want, txt);
	return v;
}

/*
 * `serve --push` shows the pusher's figures in /api/status (the live
 * status hook): while the server fails (503, its answer echoing the
 * credentials as a careless proxy's would) the queue of 2 overflows, the
 * oldest intervals are dropped and counted there; the URL is shown
 * without its credentials, and no credential appears anywhere in the
 * answer.  Then the server recovers: sent + dropped add up to the input,
 * and the exit line says the same dropped count.
 */
Test(push, status_shows_the_figures_never_the_credentials)
{
	struct prx *rx = prx_start(0);
	cr_assert(rx);
	struct prx_act fail[200];
	for (int i = 0; i < 200; i++)
		fail[i] = (struct prx_act){ .status = 503, .echo_headers = true };
	prx_script(rx, fail, 200);
	setenv("SHARDTRIE_PUSH_TOKEN", "s3cr3t-T0KEN-9", 1);
	setenv("SHARDTRIE_PUSH_TENANT", "s3cr3t-tenant", 1);
	char args[512], want_url[128];
	snprintf(want_url, sizeof(want_url), "http://127.0.0.1:%u", prx_port(rx));
	snprintf(args, sizeof(args),
		 "--push %s --push-interval 200ms --push-queue 2 --push-format folded", want_url);
	struct srv s;
	srv_start(&s, args, true);
	uint64_t fed = 0;
	for (unsigned k = 0; k < 5; k++) {
		struct stacks part = { 0 };
		char *t = make_input(30 + k, 40, &part);
		feed(&s, t);
		fed += stacks_total(&part);
		wait_status(&s, "total", fed);
		wait_push_fig(&s, "intervals", k + 1, 10000); /* the next part: a later interval */
		free(t);
		stacks_free(&part);
	}
	long long dropped = wait_push_fig(&s, "dropped", 3, 10000);
	wait_push_fig(&s, "retries", 1, 10000);

	struct resp r = http(&s, "", "/api/status");
	cr_assert_eq(r.status, 200);
	cr_expect(!strstr(r.body, "s3cr3t"), "a credential in /api/status: %s", r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	json_t *p = json_object_get(j, "push");
	cr_assert(json_is_object(p), "no push figures: %s", r.body);
	cr_expect_str_eq(json_string_value(json_object_get(p, "url")), want_url);
	cr_expect_eq(json_integer_value(json_object_get(p, "interval_ms")), 200);
	cr_expect_eq(json_integer_value(json_object_get(p, "sent")), 0);
	cr_expect_eq(json_integer_value(json_object_get(p, "intervals")), 5);
	cr_expect_eq(json_integer_value(json_object_get(p, "last_status")), 503);
	cr_expect_geq(json_integer_value(json_object_get(p, "dropped")), 3);
	cr_expect_leq(json_integer_value(json_object_get(p, "queued")), 2);
	cr_expect_gt(json_integer_value(json_object_get(p, "dropped_value")), 0);
	const char *le = json_string_value(json_object_get(p, "last_error"));
	cr_expect(le && strstr(le, "HTTP 503: scripted failure (Authorization: Bearer ****"),
		  "last_error: %s", le);
	cr_expect(json_is_null(json_object_get(p, "last_success")));
	cr_expect(json_is_number(json_object_get(p, "last_failure")));
	cr_expect(json_is_integer(json_object_get(j, "version")), "the server's own figures kept");
	json_decref(j);
	resp_free(&r);

	/* Recovered: what was queued arrives; sent + dropped = all of it. */
	prx_script(rx, NULL, 0);
	wait_push_fig(&s, "sent", 1, 40000);
	j = NULL;
	for (double end = mono_s() + 40; !j || mono_s() < end; pause_ms(20)) {
		json_decref(j);
		j = status_json(&s);
		p = json_object_get(j, "push");
		if (!json_integer_value(json_object_get(p, "queued")))
			break;
	}
	cr_expect_eq(json_integer_value(json_object_get(p, "queued")), 0);
	cr_expect_eq((uint64_t)json_integer_value(json_object_get(p, "sent_value")) +
			     (uint64_t)json_integer_value(json_object_get(p, "dropped_value")),
		     fed);
	cr_expect_eq(json_integer_value(json_object_get(p, "dropped")), dropped,
		     "dropped changed after the failures");
	cr_expect_gt(json_integer_value(json_object_get(p, "sent_bytes")), 0);
	cr_expect(json_is_number(json_object_get(p, "last_success")));
	json_decref(j);
	srv_stop(&s);
	char want[64];
	snprintf(want, sizeof(want), "%lld dropped", dropped);
	char *err = ts_read_file(ts_path("serve.err"), NULL);
	cr_expect(strstr(err, want), "exit line without '%s': %s", want, err);
	cr_expect(!strstr(err, "s3cr3t"), "a credential in stderr: %s", err);
	free(err);
	prx_stop(rx);
}

/* The figures' URL leaves out user info, query and fragment whatever the
 * caller passed (the CLI refuses such a URL; the API does not). */
Test(push, status_json_url_without_credentials)
{
	struct st_engine *e = engine2();
	struct st_push_opts o;
	st_push_opts_init(&o);
	o.url = "https://user:pa55word@127.0.0.1:1/base/path?api_key=k3y#frag";
	o.interval_ms = 3600000;
	o.hostname = "testhost";
	o.log = fopen(ts_path("push.log"), "w");
	cr_assert(o.log);
	struct st_push *p = st_push_start(e, &o);
	cr_assert(p);
	char *js = st_push_status_json(p);
	cr_assert(js);
	json_t *j = json_loads(js, 0, NULL);
	cr_assert(j, "not JSON: %s", js);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "push"), "url")),
			 "https://127.0.0.1:1/base/path");
	cr_expect(!strstr(js, "pa55word") && !strstr(js, "k3y") && !strstr(js, "user"), "%s", js);
	json_decref(j);
	free(js);
	st_push_free(p);
	fclose(o.log);
	st_engine_destroy(e);
}

/* `record io --serve --push` (root + BPF, else skipped): the recording's
 * page shows the pusher's figures (the same status hook as `serve --push`),
 * and the pushes add up to the output file. */
Test(push, record_serve_push_shows_the_figures, .timeout = 120)
{
	ts_need_bpf("record --serve --push");
	struct prx *rx = prx_start(0);
	cr_assert(rx);
	char run[512]; /* ts_path()'s buffer is reused by every call */
	snprintf(run, sizeof(run), "%s", ts_path("running"));
	cr_assert_eq(ts_write_file(run, "", 0), 0);
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "exec '%s' record io --serve --push http://127.0.0.1:%u --push-interval 200ms "
		 "--push-format folded -o '%s' -- sh -c 'while [ -e \"%s\" ]; do "
		 "dd if=/dev/zero of=/dev/null bs=1 count=20 status=none; done' 2>&1 >/dev/null",
		 CLI, prx_port(rx), ts_path("rec.folded"), run);
	int out;
	struct srv s;
	char seen[16384];
	srv_spawn_record(&s, cmd, &out, seen, sizeof(seen));
	cr_expect_geq(wait_push_fig(&s, "sent", 2, 15000), 2);
	json_t *j = status_json(&s);
	json_t *p = json_object_get(j, "push");
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", prx_port(rx));
	const char *u = json_string_value(json_object_get(p, "url"));
	cr_expect(u && !strncmp(u, url, strlen(url)), "push.url %s, want %s", u ? u : "(none)", url);
	cr_expect_eq(json_integer_value(json_object_get(p, "dropped")), 0);
	json_decref(j);
	cr_assert_eq(unlink(run), 0);
	int st = srv_wait_record(&s, out, seen, sizeof(seen));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "record: status %d: %s", st, seen);
	size_t n;
	char *f = ts_read_file(ts_path("rec.folded"), &n);
	cr_assert(f);
	struct stacks want = { 0 }, got = { 0 };
	stacks_add_folded(&want, f, n);
	cr_assert_gt(stacks_total(&want), 0, "the recording is empty");
	sum_pushes(rx, &got);
	stacks_expect_eq(&got, &want, "record --serve --push");
	free(f);
	stacks_free(&want);
	stacks_free(&got);
	prx_stop(rx);
}
