/* SPDX-License-Identifier: MIT */
/*
 * selftest.c - `record io --selftest`: BPF_PROG_TEST_RUN of the pairing code
 * (raw_tp "io_test" calls the same io_enter()/io_exit() as the tracepoints,
 * with synthetic ids and times); tracepoint programs themselves cannot be
 * test-run.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../common/decode.h"
#include "iotrace.skel.h"
#include "tool.h"

struct st_events {
	struct st_io_event ev[16];
	char path[16][IO_PATH_MAX];
	unsigned n, bad;
};

struct selftest {
	struct st_rec rec;
	struct iotrace_bpf *skel;
	struct ring_buffer *rb;
	int fds;                 /* the (pid, fd) -> path map */
	struct st_events got;
	int checks, failed;
};

/* The test's synthetic process and threads. */
enum { TG = 50, T1 = 100, T2 = 200 };

static int collect(void *ctx, void *data, size_t size)
{
	struct st_events *s = ctx;
	struct st_io_rec r;
	if (st_io_decode(data, size, &r) || s->n == 16) {
		s->bad++;
		return 0;
	}
	s->ev[s->n] = r.h;
	if (r.path)
		memcpy(s->path[s->n], r.path, r.path_len);
	s->n++;
	return 0;
}

static int test_call(struct selftest *t, int exit, unsigned tid, unsigned op, unsigned long long now,
		     long long v)
{
	struct st_io_test_ctx in = { (__u64)exit, TG, tid, op, now, (__u64)v };
	LIBBPF_OPTS(bpf_test_run_opts, topts, .ctx_in = &in, .ctx_size_in = sizeof(in));
	int err = bpf_prog_test_run_opts(bpf_program__fd(t->skel->progs.io_test), &topts);
	return err ? -errno : (int)topts.retval;
}

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		t->checks++;                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "io-selftest: FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, "\n");                                                     \
			t->failed++;                                                               \
		}                                                                                  \
	} while (0)

static __u64 fd_key(unsigned fd)
{
	return ((__u64)TG << 32) | fd;
}

/* Set (TG, fd)'s path, as an earlier open would have left it. */
static void path_set(struct selftest *t, unsigned fd, const char *path)
{
	struct st_io_path v = { .len = (__u32)strlen(path) };
	memcpy(v.path, path, v.len);
	__u64 key = fd_key(fd);
	bpf_map_update_elem(t->fds, &key, &v, BPF_ANY);
}

/* (TG, fd)'s path into *v: 0, or -1 with errno (ENOENT: none). */
static int path_get(struct selftest *t, unsigned fd, struct st_io_path *v)
{
	__u64 key = fd_key(fd);
	return bpf_map_lookup_elem(t->fds, &key, v);
}

/* Check the summed counters. */
static void check_stats(struct selftest *t, const char *when, __u64 unpaired, __u64 events)
{
	struct st_bpf_cpu_stats s = st_rec_stats_sum(&t->rec, t->skel->bss->st_stats);
	CHECK(s.unpaired == unpaired && s.events == events, "%sunpaired %llu (want %llu), events %llu (want %llu)",
	      when, (unsigned long long)s.unpaired, (unsigned long long)unpaired,
	      (unsigned long long)s.events, (unsigned long long)events);
}

/* io_test alone, loaded, its rings gathered in one ring_buffer. */
static int setup(struct selftest *t)
{
	int err;
	if (st_rec_init(&t->rec, t->rec.prog, "record io"))
		return ST_TRACE_SOFTWARE;
	if (!(t->skel = st_io_skel_open()))
		return st_rec_open_failed(&t->rec, errno);
	struct bpf_program *p;
	bpf_object__for_each_program(p, t->skel->obj)
		bpf_program__set_autoload(p, p == t->skel->progs.io_test);
	if ((err = st_rec_rings_prepare(&t->rec, t->skel->maps.st_rings, 1 << 16)) ||
	    (err = iotrace_bpf__load(t->skel)) ||
	    (err = st_rec_rings_install(&t->rec, t->skel->maps.st_rings))) {
		st_rec_explain(&t->rec, "loading the BPF test program", err);
		return ST_TRACE_NOPERM;
	}
	t->fds = bpf_map__fd(t->skel->maps.fds);
	for (unsigned i = 0; i < t->rec.ncpu; i++) {
		if (!t->rb)
			t->rb = ring_buffer__new(t->rec.ring_fds[i], collect, &t->got, NULL);
		else
			ring_buffer__add(t->rb, t->rec.ring_fds[i], collect, &t->got);
	}
	return t->rb ? 0 : ST_TRACE_SOFTWARE;
}

/* A synthetic call: enter (v = the fd or -1) or exit (v = the return value)
 * of op on thread tid at time now. */
struct test_call {
	int exit;
	unsigned tid, op;
	unsigned long long now;
	long long v;
};

static void test_calls(struct selftest *t, const struct test_call *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		test_call(t, c[i].exit, c[i].tid, c[i].op, c[i].now, c[i].v);
}

/* Pairing: the calls, then what came out of the rings. */
static void pairs_run(struct selftest *t)
{
	static const struct test_call calls[] = {
		/* 1: enter+exit pair: duration, ret, fd path; no previous exit. */
		{ 0, T1, IO_OP_READ, 1000, 5 }, { 1, T1, IO_OP_READ, 1500, 42 },
		/* 2: next call of the thread: gap since the previous exit. */
		{ 0, T1, IO_OP_WRITE, 2000, 7 }, { 1, T1, IO_OP_WRITE, 2100, 3 },
		/* 3: exit without enter (another thread): unpaired, no record. */
		{ 1, T2, IO_OP_READ, 2200, 1 },
		/* 4: enter read, exit write: mismatch, unpaired; the read then pairs. */
		{ 0, T1, IO_OP_READ, 3000, 9 }, { 1, T1, IO_OP_WRITE, 3100, 1 },
		{ 1, T1, IO_OP_READ, 3300, 0 },
		/* 5: a second exit of the same call: unpaired. */
		{ 1, T1, IO_OP_READ, 3400, 0 },
		/* 6: close of fd 5 removes it from the (pid, fd) table. */
		{ 0, T1, IO_OP_CLOSE, 4000, 5 }, { 1, T1, IO_OP_CLOSE, 4010, 0 },
		/* 7: negative return: no bytes (checked on the user side). */
		{ 0, T2, IO_OP_READ, 5000, 5 }, { 1, T2, IO_OP_READ, 5001, -9 },
	};
	path_set(t, 5, "/tmp/x");
	test_calls(t, calls, sizeof(calls) / sizeof(calls[0]));
	ring_buffer__consume(t->rb);
}

static void pairs_check_records(struct selftest *t)
{
	struct st_io_event *e = t->got.ev;
	CHECK(e[0].op == IO_OP_READ && e[0].dur_ns == 500 && e[0].gap_ns == 0 && e[0].ret == 42 &&
		      e[0].pid == TG && e[0].tid == T1 && e[0].fd == 5,
	      "pair 1: op %u dur %llu gap %llu ret %lld", e[0].op, (unsigned long long)e[0].dur_ns,
	      (unsigned long long)e[0].gap_ns, (long long)e[0].ret);
	CHECK(e[0].path_len == 6 && !memcmp(t->got.path[0], "/tmp/x", 6) && (e[0].eflags & IO_EF_PATH_FD),
	      "pair 1 path '%.*s' eflags %u", (int)e[0].path_len, t->got.path[0], e[0].eflags);
	CHECK(e[1].op == IO_OP_WRITE && e[1].dur_ns == 100 && e[1].gap_ns == 500 && e[1].ret == 3,
	      "pair 2: dur %llu gap %llu", (unsigned long long)e[1].dur_ns, (unsigned long long)e[1].gap_ns);
	CHECK(e[2].op == IO_OP_READ && e[2].dur_ns == 300 && e[2].gap_ns == 900,
	      "pair 4: dur %llu gap %llu", (unsigned long long)e[2].dur_ns, (unsigned long long)e[2].gap_ns);
	CHECK(e[3].op == IO_OP_CLOSE && e[3].dur_ns == 10 && e[3].path_len == 6,
	      "close: op %u dur %llu path_len %u", e[3].op, (unsigned long long)e[3].dur_ns, e[3].path_len);
	struct st_io_rec rr = { .h = e[4] };
	uint64_t v[ST_IOM_N];
	st_io_values(&rr, v);
	CHECK(e[4].tid == T2 && e[4].ret == -9 && e[4].gap_ns == 0 && v[ST_IOM_BYTES] == 0 &&
		      e[4].path_len == 0 && e[4].fd == 5,
	      "pair 7: tid %u ret %lld gap %llu bytes %llu path_len %u", e[4].tid, (long long)e[4].ret,
	      (unsigned long long)e[4].gap_ns, (unsigned long long)v[ST_IOM_BYTES], e[4].path_len);
}

static void pairs_check(struct selftest *t)
{
	CHECK(t->got.bad == 0, "%u undecodable records", t->got.bad);
	CHECK(t->got.n == 5, "%u records, want 5", t->got.n);
	if (t->got.n == 5)
		pairs_check_records(t);
	struct st_io_path tmp;
	CHECK(path_get(t, 5, &tmp) != 0 && errno == ENOENT, "(pid, fd 5) still in the table after close");
	check_stats(t, "", 3, 5);
}

/* dup bookkeeping (no records, no events): dup2(7, 0) copies (TG, 7)'s path
 * to fd 0; a read on fd 0 then carries it, and its gap ignores the dup; a
 * dup of an unknown fd onto 0 removes fd 0's stale path; a failed dup
 * changes nothing. */
static void dups(struct selftest *t)
{
	struct st_io_path tmp;
	memset(&t->got, 0, sizeof(t->got));
	path_set(t, 7, "/tmp/y");
	static const struct test_call dup2_7_0[] = {
		{ 0, T1, IO_OP_DUPFD_, 6000, 7 }, { 1, T1, IO_OP_DUPFD_, 6010, 0 },
	}, read_then_failed_dup[] = {
		{ 0, T1, IO_OP_READ, 7000, 0 }, { 1, T1, IO_OP_READ, 7050, 1 },
		{ 0, T1, IO_OP_DUPFD_, 8000, 7 }, { 1, T1, IO_OP_DUPFD_, 8010, -24 }, /* EMFILE */
	}, dup2_unknown_0[] = {
		{ 0, T1, IO_OP_DUPFD_, 9000, 9 }, { 1, T1, IO_OP_DUPFD_, 9010, 0 }, /* fd 9: unknown */
	};
	test_calls(t, dup2_7_0, 2);
	CHECK(path_get(t, 0, &tmp) == 0 && tmp.len == 6 && !memcmp(tmp.path, "/tmp/y", 6),
	      "dup2(7, 0) did not copy the path");
	test_calls(t, read_then_failed_dup, 4);
	CHECK(path_get(t, 8, &tmp) != 0, "a failed dup added an fd");
	test_calls(t, dup2_unknown_0, 2);
	CHECK(path_get(t, 0, &tmp) != 0 && errno == ENOENT, "dup2(unknown, 0) left fd 0's old path");
	ring_buffer__consume(t->rb);
	const struct st_events *g = &t->got;
	CHECK(g->bad == 0 && g->n == 1, "dup phase: %u records (want 1), %u bad", g->n, g->bad);
	if (g->n == 1)
		CHECK(g->ev[0].op == IO_OP_READ && g->ev[0].path_len == 6 && !memcmp(g->path[0], "/tmp/y", 6) &&
			      g->ev[0].gap_ns == 7000 - 4010,
		      "read on the dup'ed fd: path '%.*s' gap %llu", (int)g->ev[0].path_len, g->path[0],
		      (unsigned long long)g->ev[0].gap_ns);
	check_stats(t, "after dups: ", 3, 6);
}

int st_trace_io_selftest(const char *prog)
{
	static struct selftest t; /* the events are large for a stack */
	memset(&t, 0, sizeof(t));
	t.rec.prog = prog;
	st_rec_libbpf_log(false);
	int rc = setup(&t);
	if (!rc) {
		pairs_run(&t);
		pairs_check(&t);
		dups(&t);
		printf("io-selftest: %d checks, %d failed\n", t.checks, t.failed);
		rc = t.failed ? ST_TRACE_SOFTWARE : ST_TRACE_OK;
	}
	ring_buffer__free(t.rb);
	st_rec_fini(&t.rec);
	iotrace_bpf__destroy(t.skel);
	return rc;
}
