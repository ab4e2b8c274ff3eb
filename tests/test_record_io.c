/* SPDX-License-Identifier: MIT */
/*
 * test_record_io.c - record io's field order while it runs (POST /order),
 * and serve's perf input and output options (issue 17):
 *   - order_*: the decode step and the swap of bpf/io/order.c, driven
 *     without BPF by consumer threads fed synthetic records: once set()
 *     returns, no stack of the old order is in the engine (rule R-ORDER);
 *     a consumer that does not move makes set() time out, without a reset;
 *     names follow ior's rules;
 *   - order_endpoint_*: GET|POST /order through a real `record io --serve`
 *     tracing dd (root + BPF, else skipped): the first snapshot after the
 *     POST and the output file have the new order only; 400 with the reason
 *     for bad bodies, 405 with Allow for other methods;
 *   - serve_*: `serve -f perf` with convert's perf options answers
 *     /api/snapshot?format=folded exactly as `convert` writes the same file;
 *     with convert's output options (--units, --sample-rate, --title...)
 *     its answers are byte for byte convert's; bad option values and perf
 *     options without -f perf are usage errors.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../bpf/io/order.h"
#include "support/live_client.h"
#include "support/support.h"

#define CLI ST_TEST_CLI

TestSuite(record_io, .init = ts_dir_init, .fini = ts_dir_fini, .timeout = 120);

/* ------------------------------------------------------------ unit */

static struct st_engine *io_engine(void)
{
	struct st_options so;
	st_options_init(&so);
	so.merge_interval_ms = 5; /* a merger runs, as in a live run */
	so.nmetrics = ST_IOM_N;
	for (int i = 0; i < ST_IOM_N; i++) {
		so.metrics[i].name = st_io_metric_names[i];
		so.metrics[i].unit = st_io_metric_units[i];
	}
	struct st_engine *e = st_engine_create(&so);
	cr_assert(e, "engine: %s", strerror(errno));
	return e;
}

/* A paired read of `comm` on /d/f, as the ring would carry it. */
static void fake_read(struct st_io_rec *r, const char *comm)
{
	memset(r, 0, sizeof(*r));
	r->h.magic = IO_MAGIC;
	r->h.op = IO_OP_READ;
	r->h.pid = r->h.tid = 42;
	r->h.dur_ns = 1000;
	r->h.ret = 8;
	r->h.fd = 3;
	snprintf(r->h.comm, sizeof(r->h.comm), "%s", comm);
	r->path = "/d/f";
	r->path_len = 4;
}

struct consumer {
	struct st_io_order *o;
	struct st_engine *e;
	unsigned idx;
	bool idle; /* only passes its check points, as a consumer whose ring is empty */
	atomic_bool *stop;
	_Atomic uint64_t events;
	int failed;
};

static void *consumer_main(void *arg)
{
	struct consumer *c = arg;
	struct st_io_order_slot *s = st_io_order_online(c->o, c->idx);
	struct st_writer *w = st_writer_open(c->e);
	struct st_io_frames fr;
	struct st_io_rec r;
	char comm[16];
	snprintf(comm, sizeof(comm), "c%u", c->idx);
	fake_read(&r, comm);
	while (!atomic_load(c->stop)) {
		if (c->idle) {
			st_io_order_quiet(s);
			pause_ms(1); /* the ring's poll timeout (25 ms in the tracer) */
			continue;
		}
		if (st_io_order_ingest(s, w, &r, r.path, r.path_len, &fr))
			c->failed++;
		atomic_fetch_add_explicit(&c->events, 1, memory_order_release);
	}
	st_io_order_offline(s);
	st_writer_close(w);
	return NULL;
}

/* Root children of the published snapshot that do not start the order
 * whose first field is `first` (comm: "cN"; tracepoint: "sys_enter_read";
 * path: "/d"). */
static unsigned wrong_roots(struct st_engine *e, unsigned first, uint64_t *total)
{
	cr_assert(st_flush(e));
	struct st_snap *s = st_snap_acquire(e);
	uint32_t c0, n = st_snap_children(s, ST_NODE_ROOT, &c0);
	unsigned bad = 0;
	for (uint32_t i = c0; i < c0 + n; i++) {
		size_t len;
		const char *name = st_snap_name(s, i, &len);
		const char *want = first == ST_IOF_TRACEPOINT ? "sys_enter_read" : "/d";
		bool ok = first == ST_IOF_COMM ? len == 2 && name[0] == 'c'
					       : len == strlen(want) && !memcmp(name, want, len);
		bad += !ok;
	}
	*total = st_snap_total(s, ST_NODE_ROOT, ST_IOM_COUNT);
	st_snap_release(s);
	return bad;
}

/* Every busy consumer has ingested 2 more events than in before[]: one
 * that was building a stack when set() returned has ingested it.  Bounded
 * (10 s). */
static void consumers_advance(struct consumer *c, unsigned n, const uint64_t *before)
{
	for (long spins = 0;; spins++) {
		unsigned behind = 0;
		for (unsigned i = 0; i < n; i++)
			behind += !c[i].idle &&
				  atomic_load_explicit(&c[i].events, memory_order_acquire) < before[i] + 2;
		if (!behind)
			return;
		cr_assert(spins < 100000, "the consumers stopped ingesting");
		pause_ms(0); /* nanosleep(0): yield to them */
	}
}

/*
 * Rule R-ORDER: three consumers ingest as fast as they can while the main
 * thread cycles the order through three orders 300 times; after each set()
 * returns, and once every consumer has ingested 2 more events (so none is
 * still holding a stack built before), the flushed snapshot holds stacks of
 * the new order only.  A fourth consumer is idle (set() must not wait on it
 * for ever).  Without the wait in set() (swap, then reset at once) stacks
 * built with the old order land after the reset and this fails.
 */
Test(record_io, order_swap_leaves_no_old_stack)
{
	static const unsigned char orders[3][3] = {
		{ ST_IOF_COMM, ST_IOF_TRACEPOINT, ST_IOF_PATH },
		{ ST_IOF_TRACEPOINT, ST_IOF_PATH, ST_IOF_COMM },
		{ ST_IOF_PATH, ST_IOF_COMM, ST_IOF_TRACEPOINT },
	};
	struct st_engine *e = io_engine();
	struct st_io_order *o = st_io_order_new(orders[0], 3);
	cr_assert(o);
	cr_assert_eq(st_io_order_attach(o, e, 4), 0);
	atomic_bool stop;
	atomic_init(&stop, false);
	struct consumer c[4];
	pthread_t t[4];
	for (unsigned i = 0; i < 4; i++) {
		c[i] = (struct consumer){ .o = o, .e = e, .idx = i, .idle = i == 3, .stop = &stop };
		atomic_init(&c[i].events, 0);
		cr_assert_eq(pthread_create(&t[i], NULL, consumer_main, &c[i]), 0);
	}
	unsigned bad = 0, nonempty = 0;
	uint64_t total;
	for (int k = 1; k <= 300; k++) {
		const unsigned char *to = orders[k % 3];
		cr_assert_eq(st_io_order_set(o, to, 3), 0, "set %d failed", k);
		uint64_t before[4];
		for (unsigned i = 0; i < 4; i++)
			before[i] = atomic_load_explicit(&c[i].events, memory_order_acquire);
		unsigned char now[ST_IOF_COUNT_];
		cr_assert_eq(st_io_order_get(o, now), 3);
		cr_assert_eq(now[0], to[0]);
		consumers_advance(c, 4, before);
		unsigned w = wrong_roots(e, now[0], &total);
		bad += w;
		nonempty += total > 0;
	}
	atomic_store(&stop, true);
	uint64_t events = 0;
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(c[i].failed, 0, "consumer %u: ingest failed", i);
		events += c[i].events;
	}
	cr_expect_eq(bad, 0, "%u root frames of the old order after set() returned", bad);
	cr_expect(events > 300, "the consumers ingested only %llu events", (unsigned long long)events);
	cr_expect(nonempty > 0, "no snapshot after a set() held a stack: the test saw nothing");
	/* The order in force at the end (300 % 3 = 0: comm first) is the only one. */
	cr_expect_eq(wrong_roots(e, ST_IOF_COMM, &total), 0);
	st_io_order_detach(o);
	st_io_order_free(o);
	st_engine_destroy(e);
}

/* A consumer online that never passes a check point: set() gives up after
 * its bound with -ETIMEDOUT, the new order in force and nothing reset; once
 * it goes offline, set() resets at once. */
Test(record_io, order_set_times_out_without_reset)
{
	static const unsigned char a[] = { ST_IOF_COMM, ST_IOF_PATH };
	static const unsigned char b[] = { ST_IOF_PATH, ST_IOF_COMM };
	struct st_engine *e = io_engine();
	struct st_io_order *o = st_io_order_new(a, 2);
	cr_assert(o);
	cr_assert_eq(st_io_order_attach(o, e, 2), 0); /* slot 1 never comes online */
	st_io_order_set_wait_ms(o, 150);
	struct st_io_order_slot *s = st_io_order_online(o, 0);
	struct st_writer *w = st_writer_open(e);
	struct st_io_rec r;
	struct st_io_frames fr;
	fake_read(&r, "cx");
	cr_assert_eq(st_io_order_ingest(s, w, &r, r.path, r.path_len, &fr), 0);
	cr_assert_eq(fr.n, 3);
	cr_assert(fr.len[0] == 2 && !memcmp(fr.p[0], "cx", 2), "frames not in the order comm,path");

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_expect_eq(st_io_order_set(o, b, 2), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	cr_expect(ms >= 140 && ms < 5000, "set() waited %.0f ms for a bound of 150", ms);
	unsigned char now[ST_IOF_COUNT_];
	cr_expect_eq(st_io_order_get(o, now), 2);
	cr_expect_eq(now[0], ST_IOF_PATH, "the new order is not in force after a timeout");
	uint64_t total;
	wrong_roots(e, ST_IOF_COMM, &total);
	cr_expect_eq(total, 1, "a timed-out set() reset the engine (total %llu)",
		     (unsigned long long)total);

	/* The consumer moves on (its next event): built with the new order. */
	cr_assert_eq(st_io_order_ingest(s, w, &r, r.path, r.path_len, &fr), 0);
	cr_expect(fr.len[0] == 2 && !memcmp(fr.p[0], "/d", 2), "frames not in the order path,comm");
	st_io_order_offline(s);
	cr_expect_eq(st_io_order_set(o, a, 2), 0);
	wrong_roots(e, ST_IOF_COMM, &total);
	cr_expect_eq(total, 0, "set() with every consumer offline did not reset");
	st_writer_close(w);
	st_io_order_detach(o);
	st_io_order_free(o);
	st_engine_destroy(e);
}

/* POST /order's names: ior's rules (trimmed; empty list, empty value,
 * unknown and repeated names refused), and a hostile name is not echoed. */
Test(record_io, order_names_follow_ior_rules)
{
	unsigned char f[ST_IOF_COUNT_];
	unsigned n;
	char err[200];
	const char *ok[] = { " path", "comm ", "pid" };
	cr_assert_eq(st_io_fields_from_names(ok, 3, f, &n, err, sizeof(err)), 0, "%s", err);
	cr_expect(n == 3 && f[0] == ST_IOF_PATH && f[1] == ST_IOF_COMM && f[2] == ST_IOF_PID);
	static const struct {
		const char *names[3];
		size_t n;
		const char *msg;
	} bad[] = {
		{ { NULL }, 0, "empty field list" },
		{ { "comm", "  " }, 2, "empty value at position 2" },
		{ { "comm", "bogus" }, 2, "unknown field 'bogus'" },
		{ { "comm", "path", "comm" }, 3, "duplicate field 'comm'" },
		{ { "comm\r\nX-Evil: 1" }, 1, "unknown field at position 1" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(st_io_fields_from_names(bad[i].names, bad[i].n, f, &n, err, sizeof(err)),
			     -EINVAL, "case %zu accepted", i);
		cr_expect(strstr(err, bad[i].msg), "case %zu: '%s' lacks '%s'", i, err, bad[i].msg);
		cr_expect(!strchr(err, '\n') && !strchr(err, '\r'), "case %zu: two lines: %s", i, err);
	}
	/* --fields shares the rules (and now ignores blanks too). */
	cr_expect_eq(st_io_fields_parse("tracepoint, comm", f, &n, err, sizeof(err)), 0, "%s", err);
	cr_expect(n == 2 && f[1] == ST_IOF_COMM);
}

/* ------------------------------------------------------- record io --serve */

/* Every line of folded text starts with prefix (and there is one). */
static bool all_lines_start(const char *text, const char *prefix, const char **bad)
{
	size_t pl = strlen(prefix);
	*bad = NULL;
	if (!*text)
		return true;
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, prefix, pl)) {
			*bad = p;
			return false;
		}
	return true;
}

/* A line of text starts with want. */
static bool has_line(const char *text, const char *want)
{
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, want, strlen(want)))
			return true;
	return false;
}

/* Poll the live folded snapshot (bounded, about 10 s) until it has a line
 * starting with want; every snapshot seen must have only lines starting
 * with prefix (NULL: not checked). */
static void wait_folded(const struct srv *s, const char *want, const char *prefix)
{
	for (int i = 0; i < 1000; i++) {
		struct resp r = http(s, "", "/api/snapshot?format=folded");
		cr_assert_eq(r.status, 200);
		const char *bad;
		if (prefix)
			cr_assert(all_lines_start(r.body, prefix, &bad),
				  "a stack not in the new order after POST /order answered: %.200s", bad);
		bool found = has_line(r.body, want);
		resp_free(&r);
		if (found)
			return;
		pause_ms(10);
	}
	cr_assert_fail("'%s' never showed in the live snapshot", want);
}

Test(record_io, order_endpoint_through_record_io_serve, .timeout = 90)
{
	ts_need_bpf("record io --serve");
	/* dd reads /dev/zero and writes /dev/null until the run file goes. */
	char run[512]; /* ts_path()'s buffer is reused by every call */
	snprintf(run, sizeof(run), "%s", ts_path("running"));
	cr_assert_eq(ts_write_file(run, "", 0), 0);
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "exec '%s' record io --serve -o '%s' -- sh -c 'while [ -e \"%s\" ]; do "
		 "dd if=/dev/zero of=/dev/null bs=1 count=20 status=none; done' 2>&1 >/dev/null",
		 CLI, ts_path("rec.folded"), run);
	int out;
	struct srv s;
	char seen[16384];
	srv_spawn_record(&s, cmd, &out, seen, sizeof(seen));

	/* GET: --fields' default order; the stacks follow it. */
	struct resp r = http(&s, "", "/order");
	cr_expect_eq(r.status, 200);
	cr_expect_str_eq(r.body, "{\"fields\":[\"comm\",\"tracepoint\",\"path\"]}");
	resp_free(&r);
	wait_folded(&s, "dd;sys_enter_read;/dev;/zero ", NULL);

	/* POST: reordered and reset; from the answer on, every snapshot has
	 * the new order only. */
	r = http(&s, "-X POST --data-binary '{\"fields\":[\"tracepoint\",\"comm\",\"path\"]}'",
		 "/order");
	cr_expect_eq(r.status, 200, "POST /order: %d %s", r.status, r.body);
	cr_expect_str_eq(r.body, "{\"fields\":[\"tracepoint\",\"comm\",\"path\"]}");
	resp_free(&r);
	wait_folded(&s, "sys_enter_read;dd;/dev;/zero ", "sys_enter_");

	/* Bad bodies: 400 with the reason, the order unchanged. */
	static const struct {
		const char *body, *reason;
	} bad[] = {
		{ "{\"fields\":", "want {\"fields\"" },
		{ "{\"fields\":\"comm\"}", "want {\"fields\"" },
		{ "{\"fields\":[1]}", "strings" },
		{ "{\"fields\":[\"comm\",\"bogus\"]}", "unknown field 'bogus'" },
		{ "{\"fields\":[\"path\",\"path\"]}", "duplicate field 'path'" },
		{ "{\"fields\":[]}", "empty field list" },
		{ "{\"fields\":[\"comm\",\"\"]}", "empty value" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char args[256];
		snprintf(args, sizeof(args), "-X POST --data-binary '%s'", bad[i].body);
		expect_status(&s, args, "/order", 400, bad[i].reason);
	}
	r = http(&s, "", "/order");
	cr_expect_str_eq(r.body, "{\"fields\":[\"tracepoint\",\"comm\",\"path\"]}",
			 "a refused POST changed the order");
	resp_free(&r);
	/* Other methods: 405, Allow: GET, POST. */
	const char *methods[] = { "PUT", "DELETE" };
	for (int i = 0; i < 2; i++) {
		char args[64];
		snprintf(args, sizeof(args), "-X %s", methods[i]);
		r = http(&s, args, "/order");
		cr_expect_eq(r.status, 405, "%s /order: %d", methods[i], r.status);
		const char *allow = header(&r, "Allow");
		cr_expect(allow && !strcmp(allow, "GET, POST"), "%s /order: Allow '%s'", methods[i],
			  allow ? allow : "(none)");
		resp_free(&r);
	}

	/* The end: the output has the order in force at the end. */
	cr_assert_eq(unlink(run), 0);
	int st = srv_wait_record(&s, out, seen, sizeof(seen));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "record io --serve: status %d: %s", st, seen);
	cr_expect(strstr(seen, "/order: fields now tracepoint,comm,path; the recording was reset"),
		  "the change is not said on stderr: %s", seen);
	char *f = ts_read_file(ts_path("rec.folded"), NULL);
	const char *badl;
	cr_assert(f && strstr(f, "sys_enter_read;dd;/dev;/zero "), "output: %.300s", f ? f : "(none)");
	cr_expect(all_lines_start(f, "sys_enter_", &badl), "output line not in the final order: %.200s",
		  badl);
	free(f);
}

/* ------------------------------------------------------------ serve -f perf */

#define PERF_TXT ST_TEST_DATA "/formats/perf-mixed.txt"

/* Sum of the values of folded text. */
static uint64_t folded_total(const char *text)
{
	uint64_t t = 0;
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		const char *nl = strchr(p, '\n');
		const char *sp = p + (nl ? (size_t)(nl - p) : strlen(p));
		while (sp > p && sp[-1] != ' ')
			sp--;
		t += strtoull(sp, NULL, 10);
	}
	return t;
}

Test(record_io, serve_perf_filters_like_convert)
{
	static const char *const opts[] = {
		"",
		"--pid",
		"--tid --kernel",
		"--all --addrs",
		"--jit",
		"--event-filter instructions",
		"--event-filter cycles --pid",
	};
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		cr_assert_eq(ts_run("'%s' convert -f perf %s -o '%s' '%s' 2>/dev/null", CLI, opts[i],
				    ts_path("c.folded"), PERF_TXT),
			     0, "convert %s failed", opts[i]);
		char *want = ts_read_file(ts_path("c.folded"), NULL);
		cr_assert(want && *want, "convert %s wrote nothing", opts[i]);
		uint64_t total = folded_total(want);
		char args[256];
		snprintf(args, sizeof(args), "-f perf %s '%s'", opts[i], PERF_TXT);
		struct srv s;
		srv_start(&s, args, false);
		wait_status(&s, "total", total);
		struct resp r = http(&s, "", "/api/snapshot?format=folded");
		char *got = sorted_lines(r.body), *exp = sorted_lines(want);
		cr_expect_str_eq(got, exp, "serve -f perf %s differs from convert", opts[i]);
		free(got);
		free(exp);
		resp_free(&r);
		free(want);
		srv_stop(&s);
	}
}

/* Output options: serve's answers are what convert writes with the same
 * options (the server's base export options). */
Test(record_io, serve_output_options_like_convert)
{
	static const struct {
		const char *fmt, *opts;
	} cases[] = {
		{ "flamebearer", "--units bytes --sample-rate 250 --name app" },
		{ "svg", "--title 'served tree' --width 640 --colors blue" },
	};
	const char *in = ST_TEST_DATA "/formats/simpletree.folded";
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(ts_run("'%s' convert -t %s %s -o '%s' '%s'", CLI, cases[i].fmt,
				    cases[i].opts, ts_path("c.out"), in),
			     0);
		size_t wlen;
		char *want = ts_read_file(ts_path("c.out"), &wlen);
		char args[512];
		snprintf(args, sizeof(args), "%s '%s'", cases[i].opts, in);
		struct srv s;
		srv_start(&s, args, false);
		wait_status(&s, "total", 609); /* simpletree's samples: the file is in */
		char path[64];
		snprintf(path, sizeof(path), "/api/snapshot?format=%s", cases[i].fmt);
		struct resp r = http(&s, "", path);
		cr_expect_eq(r.status, 200);
		cr_expect(r.len == wlen && !memcmp(r.body, want, wlen),
			  "serve %s: the %s answer differs from convert's:\n%.300s\n--- convert:\n%.300s",
			  cases[i].opts, cases[i].fmt, r.body, want);
		resp_free(&r);
		free(want);
		srv_stop(&s);
	}
	/* --min-fraction: the page's pruning (/events); 3 of 609 is below 0.5
	 * but above the default 0.001.  curl reads the stream for 2 s (the
	 * first event comes at once). */
	for (int pruned = 0; pruned < 2; pruned++) {
		char args[512];
		snprintf(args, sizeof(args), "%s '%s'", pruned ? "--min-fraction 0.5" : "", in);
		struct srv s;
		srv_start(&s, args, false);
		wait_status(&s, "total", 609);
		ts_run("curl -s -N -m 2 '%sevents' > '%s'", s.url, ts_path("ev"));
		char *ev = ts_read_file(ts_path("ev"), NULL);
		cr_assert(ev && strstr(ev, "data: {\"n\""), "no event: %s", ev ? ev : "");
		cr_expect_eq(strstr(ev, "runtime.mcall") == NULL, pruned,
			     "serve %s: /events %s runtime.mcall (3 of 609)", args,
			     pruned ? "keeps" : "lacks");
		free(ev);
		srv_stop(&s);
	}
}

Test(record_io, serve_takes_convert_options_and_checks_them)
{
	static const struct {
		const char *args, *msg;
	} bad[] = {
		{ "--pid", "--pid applies to perf script input only (-f perf)" },
		{ "-f folded --event-filter x", "--event-filter applies to perf script input only" },
		{ "--units parsecs", "unknown unit 'parsecs'" },
		{ "--sample-rate 0", "--sample-rate wants a positive rate" },
		{ "--min-fraction 2", "--min-fraction wants a number in [0,1]" },
		{ "--width 5", "--width wants 10..1000000 pixels" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = ts_run("'%s' serve %s /dev/null >/dev/null 2>'%s'", CLI, bad[i].args,
				ts_path("err"));
		char *err = ts_read_file(ts_path("err"), NULL);
		cr_expect_eq(rc, 64, "serve %s: exit %d, want 64", bad[i].args, rc);
		cr_expect(err && strstr(err, bad[i].msg), "serve %s: '%s' lacks '%s'", bad[i].args,
			  err ? err : "", bad[i].msg);
		free(err);
	}
	cr_expect_eq(ts_run("'%s' serve --help >'%s'", CLI, ts_path("help")), 0);
	char *help = ts_read_file(ts_path("help"), NULL);
	cr_expect(help && strstr(help, "--event-filter") && strstr(help, "--units") &&
			  strstr(help, "--min-fraction"),
		  "serve --help lacks the perf or output options: %s", help ? help : "");
	free(help);
}
