/* SPDX-License-Identifier: MIT */
/*
 * test_convert.c - `shardtrie convert` end to end: the CLI binary on files,
 * its output checked against expectations computed here independently
 * (a plain parse + qsort for folded, jansson for the ior JSON).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/support.h"

#define CLI ST_TEST_CLI

TestSuite(convert, .init = ts_dir_init, .fini = ts_dir_fini, .timeout = 120);


/* ---- the independent expectation for -t folded: collect every
 * (stack, count), sort by stack, sum runs, render, sort the lines. ---- */
struct agg {
	char **stack;
	unsigned long long *count;
	size_t n, cap;
};

static void agg_add(struct agg *a, const char *s, size_t len, unsigned long long c)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 1024;
		a->stack = realloc(a->stack, a->cap * sizeof(*a->stack));
		a->count = realloc(a->count, a->cap * sizeof(*a->count));
	}
	a->stack[a->n] = strndup(s, len);
	a->count[a->n++] = c;
}

static void agg_free(struct agg *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->stack[i]);
	free(a->stack);
	free(a->count);
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static char *agg_render(struct agg *a)
{
	/* Sort (stack, count) pairs by stack through an index. */
	size_t *idx = malloc((a->n + 1) * sizeof(*idx));
	for (size_t i = 0; i < a->n; i++)
		idx[i] = i;
	for (size_t gap = a->n / 2; gap > 0; gap /= 2) /* shell sort: no shared code */
		for (size_t i = gap; i < a->n; i++)
			for (size_t j = i; j >= gap && strcmp(a->stack[idx[j - gap]], a->stack[idx[j]]) > 0; j -= gap) {
				size_t t = idx[j];
				idx[j] = idx[j - gap];
				idx[j - gap] = t;
			}
	char **lines = malloc((a->n + 1) * sizeof(*lines));
	size_t k = 0, total = 1;
	for (size_t i = 0; i < a->n;) {
		unsigned long long sum = 0;
		size_t j = i;
		for (; j < a->n && strcmp(a->stack[idx[j]], a->stack[idx[i]]) == 0; j++)
			sum = sum + a->count[idx[j]] < sum ? ~0ULL : sum + a->count[idx[j]];
		if (sum) {
			if (asprintf(&lines[k], "%s %llu\n", a->stack[idx[i]], sum) < 0)
				cr_assert_fail("asprintf");
			total += strlen(lines[k++]);
		}
		i = j;
	}
	qsort(lines, k, sizeof(*lines), cmp_str);
	char *out = malloc(total), *p = out;
	for (size_t i = 0; i < k; i++) {
		size_t l = strlen(lines[i]);
		memcpy(p, lines[i], l);
		p += l;
		free(lines[i]);
	}
	*p = 0;
	free(lines);
	free(idx);
	return out;
}

Test(convert, folded_equals_sorted_aggregation)
{
	static const char *alpha[] = { "main", "a b", "ünï", "\xff\xfe", "x", "run;", "[k]_[k]", "(anon)" };
	uint64_t seed = 42;
	size_t cap = 8 << 20, len = 0;
	char *in = malloc(cap);
	struct agg want = { 0 };
	/* ~6 MB so the input spans several reader blocks and both threads. */
	while (len < 6u << 20) {
		char stack[512];
		size_t sl = 0;
		int depth = 1 + (int)(ts_rand(&seed) % 6);
		for (int d = 0; d < depth; d++) {
			const char *f = alpha[ts_rand(&seed) % 8];
			sl += (size_t)snprintf(stack + sl, sizeof(stack) - sl, "%s%s", d ? ";" : "", f);
		}
		unsigned long long c = ts_rand(&seed) % 1000;
		int kind = (int)(ts_rand(&seed) % 20);
		if (kind == 0)
			len += (size_t)sprintf(in + len, "# comment %llu\n", c);
		else if (kind == 1)
			len += (size_t)sprintf(in + len, "\n");
		else {
			len += (size_t)sprintf(in + len, "%s %llu%s\n", stack, c, kind == 2 ? "\r" : "");
			/* The stack is what precedes the last space. */
			agg_add(&want, stack, sl, c);
		}
	}
	cr_assert_eq(ts_write_file(ts_path("in.folded"), in, len), 0);
	cr_assert_eq(ts_run("%s convert --threads 2 -t folded -o %s %s", CLI, ts_path("out"), ts_path("in.folded")), 0);
	char *got = ts_read_file(ts_path("out"), NULL);
	char *exp = agg_render(&want);
	cr_assert_not_null(got);
	cr_expect(strcmp(got, exp) == 0, "folded output differs from the sorted aggregation");
	/* Same through stdin with one thread, merged with a second file. */
	cr_assert_eq(ts_write_file(ts_path("two.folded"), "main 5\n", 7), 0);
	cr_assert_eq(ts_run("%s convert --threads 1 - %s < %s > %s", CLI, ts_path("two.folded"),
			    ts_path("in.folded"), ts_path("out2")), 0);
	agg_add(&want, "main", 4, 5);
	char *got2 = ts_read_file(ts_path("out2"), NULL), *exp2 = agg_render(&want);
	cr_expect(strcmp(got2, exp2) == 0, "stdin + file merge differs");
	free(got);
	free(exp);
	free(got2);
	free(exp2);
	free(in);
	agg_free(&want);
}

static json_t *convert_json(const char *input, const char *minf)
{
	cr_assert_eq(ts_write_file(ts_path("j.folded"), input, strlen(input)), 0);
	cr_assert_eq(ts_run("%s convert -t json --min-fraction %s -o %s %s", CLI, minf, ts_path("j.json"),
			    ts_path("j.folded")), 0);
	json_error_t err;
	json_t *j = json_load_file(ts_path("j.json"), 0, &err);
	cr_assert_not_null(j, "bad JSON: %s", err.text);
	return j;
}

static const char *kid_names(json_t *node, char *buf, size_t n)
{
	json_t *c = json_object_get(node, "c");
	buf[0] = 0;
	size_t i;
	json_t *k;
	json_array_foreach(c, i, k) {
		strncat(buf, json_string_value(json_object_get(k, "n")), n - strlen(buf) - 2);
		strcat(buf, ",");
	}
	return buf;
}

static json_t *kid(json_t *node, const char *name)
{
	size_t i;
	json_t *k;
	json_array_foreach(json_object_get(node, "c"), i, k)
		if (strcmp(json_string_value(json_object_get(k, "n")), name) == 0)
			return k;
	return NULL;
}

Test(convert, json_prunes_strictly_below_the_fraction)
{
	/* root 2000: edge = 2/2000 = 0.001 exactly (kept), small 0.0005 (pruned). */
	json_t *j = convert_json("big;x 1997\nedge 2\nsmall 1\n", "0.001");
	char buf[256];
	cr_expect_str_eq(json_string_value(json_object_get(j, "n")), "");
	cr_expect_eq(json_integer_value(json_object_get(j, "t")), 2000, "root total includes pruned");
	cr_expect_str_eq(kid_names(j, buf, sizeof(buf)), "big,edge,");
	json_t *big = kid(j, "big");
	cr_expect_eq(json_integer_value(json_object_get(big, "v")), 0);
	cr_expect_eq(json_integer_value(json_object_get(big, "t")), 1997);
	json_t *x = kid(big, "x");
	cr_expect_null(json_object_get(x, "c"), "empty children are omitted");
	json_decref(j);
}

Test(convert, json_keeps_eight_largest_at_depth_le_1)
{
	/* Root: 10 children, none reaching 0.5 -> the 8 largest, in name order. */
	json_t *j = convert_json("c0 1\nc1 2\nc2 3\nc3 4\nc4 5\nc5 6\nc6 7\nc7 8\nc8 9\nc9 10\n", "0.5");
	char buf[256];
	cr_expect_str_eq(kid_names(j, buf, sizeof(buf)), "c2,c3,c4,c5,c6,c7,c8,c9,");
	json_decref(j);
	/* Ties broken by name: equal totals keep the first names. */
	j = convert_json("t9 1\nt8 1\nt7 1\nt6 1\nt5 1\nt4 1\nt3 1\nt2 1\nt1 1\nt0 1\n", "0.5");
	cr_expect_str_eq(kid_names(j, buf, sizeof(buf)), "t0,t1,t2,t3,t4,t5,t6,t7,");
	json_decref(j);
	/* Depth 1 is rescued, depth 2 is not. */
	j = convert_json("p;k1 30\np;k2 30\np;k3 40\nq;r;s1 30\nq;r;s2 30\nq;r;s3 30\nbig 810\n", "0.05");
	cr_expect_str_eq(kid_names(kid(j, "p"), buf, sizeof(buf)), "k1,k2,k3,");
	json_t *r = kid(kid(j, "q"), "r");
	cr_assert_not_null(r);
	cr_expect_null(json_object_get(r, "c"));
	cr_expect_eq(json_integer_value(json_object_get(r, "t")), 90);
	json_decref(j);
}

Test(convert, json_escapes_untrusted_names)
{
	json_t *j = convert_json("<script>alert(1)</script>;\"q\\ 1\n", "0");
	json_t *s = kid(j, "<script>alert(1)</script>");
	cr_assert_not_null(s);
	cr_expect_not_null(kid(s, "\"q\\"));
	json_decref(j);
	char *raw = ts_read_file(ts_path("j.json"), NULL);
	cr_expect_null(strstr(raw, "<script>"), "< and > are escaped as Go does");
	free(raw);
}

Test(convert, malformed_lines_are_reported_and_skipped)
{
	static const char in[] = "good;a 3\nno_count\ngood;b x1\nbad 99999999999999999999\ngood;a 4\n"
				 "nul\0byte 1\n good 1.5\n";
	cr_assert_eq(ts_write_file(ts_path("bad.folded"), in, sizeof(in) - 1), 0);
	cr_assert_eq(ts_run("%s convert -o %s %s 2> %s", CLI, ts_path("out"), ts_path("bad.folded"), ts_path("err")), 0);
	char *out = ts_read_file(ts_path("out"), NULL), *err = ts_read_file(ts_path("err"), NULL);
	cr_expect_str_eq(out, "good;a 7\n");
	char want[600];
	snprintf(want, sizeof(want), "%s:2: ", ts_path("bad.folded"));
	cr_expect_not_null(strstr(err, want), "stderr: %s", err);
	snprintf(want, sizeof(want), "%s:4: count overflows 64 bits", ts_path("bad.folded"));
	cr_expect_not_null(strstr(err, want), "stderr: %s", err);
	snprintf(want, sizeof(want), "%s:6: NUL byte in line", ts_path("bad.folded"));
	cr_expect_not_null(strstr(err, want), "stderr: %s", err);
	cr_expect_not_null(strstr(err, "5 of 7 lines ignored"), "stderr: %s", err);
	free(out);
	free(err);
}

/* Bad lines in several 4 MiB blocks, parsed by two threads: the mapped file
 * (lines counted only when reported) and a pipe (read(), lines counted per
 * block) report the same FILE:LINE numbers. */
Test(convert, bad_line_numbers_across_blocks)
{
	FILE *f = fopen(ts_path("many.folded"), "w");
	cr_assert(f);
	const unsigned N = 400000, STEP = 7919;
	for (unsigned i = 0; i < N; i++) {
		if (i % STEP == STEP - 1)
			fprintf(f, "no count on line %u here\n", i + 1);
		else
			fprintf(f, "main;frame_%u;leaf_with_a_longer_name %u\n", i % 97, i % 5 + 1);
	}
	fclose(f);
	for (int pipe = 0; pipe < 2; pipe++) {
		if (pipe)
			cr_assert_eq(ts_run("cat %s | %s convert --threads 2 -o %s - 2> %s",
					    ts_path("many.folded"), CLI, ts_path("out"), ts_path("err")),
				     0);
		else
			cr_assert_eq(ts_run("%s convert --threads 2 -o %s %s 2> %s", CLI, ts_path("out"),
					    ts_path("many.folded"), ts_path("err")),
				     0);
		char *err = ts_read_file(ts_path("err"), NULL);
		cr_assert(err);
		unsigned seen = 0;
		for (unsigned i = STEP - 1; i < N; i += STEP, seen++) {
			char want[600];
			snprintf(want, sizeof(want), "%s:%u: ", pipe ? "<stdin>" : ts_path("many.folded"),
				 i + 1);
			cr_expect_not_null(strstr(err, want), "pipe %d: no '%s' in %.300s", pipe, want, err);
		}
		char tail[64];
		snprintf(tail, sizeof(tail), "%u of %u lines ignored", seen, N);
		cr_expect_not_null(strstr(err, tail), "pipe %d: %s", pipe, err);
		free(err);
	}
}

Test(convert, strict_fails_and_leaves_existing_output_alone)
{
	cr_assert_eq(ts_write_file(ts_path("bad.folded"), "a 1\nbroken\n", 11), 0);
	cr_assert_eq(ts_write_file(ts_path("out"), "previous\n", 9), 0);
	cr_expect_eq(ts_run("%s convert --strict -o %s %s 2>/dev/null", CLI, ts_path("out"), ts_path("bad.folded")), 65);
	char *out = ts_read_file(ts_path("out"), NULL);
	cr_expect_str_eq(out, "previous\n");
	free(out);
	cr_expect_eq(ts_run("ls -a %s | grep -c '^\\.out\\.' >/dev/null", ts_dir), 1, "no temporary left");
}

Test(convert, empty_input_and_missing_file)
{
	cr_assert_eq(ts_write_file(ts_path("empty"), "", 0), 0);
	cr_expect_eq(ts_run("%s convert -o %s %s", CLI, ts_path("out"), ts_path("empty")), 0);
	size_t n = 99;
	free(ts_read_file(ts_path("out"), &n));
	cr_expect_eq(n, 0);
	cr_expect_eq(ts_run("%s convert %s 2>/dev/null", CLI, ts_path("does-not-exist")), 66);
	cr_expect_eq(ts_run("%s convert -t nope %s 2>/dev/null", CLI, ts_path("empty")), 64);
}

Test(convert, huge_lines_and_deep_stacks)
{
	/* 2 MiB line (under the block size), then 5 MiB with no newline at all
	 * inside a block, then a 10,000-frame stack, then a normal line. */
	size_t cap = 16 << 20, len = 0;
	char *in = malloc(cap);
	memset(in, 'x', 2 << 20);
	len = 2 << 20;
	len += (size_t)sprintf(in + len, " 1\n");
	memset(in + len, 'y', 5 << 20);
	len += 5 << 20;
	len += (size_t)sprintf(in + len, " 1\n");
	size_t deep_start = len;
	for (int i = 0; i < 10000; i++)
		len += (size_t)sprintf(in + len, "%sf%d", i ? ";" : "", i % 10);
	size_t deep_len = len - deep_start;
	len += (size_t)sprintf(in + len, " 7\nok 1\n");
	cr_assert_eq(ts_write_file(ts_path("huge"), in, len), 0);
	cr_assert_eq(ts_run("%s convert -o %s %s 2> %s", CLI, ts_path("out"), ts_path("huge"), ts_path("err")), 0);
	char *out = ts_read_file(ts_path("out"), NULL), *err = ts_read_file(ts_path("err"), NULL);
	char want[64];
	snprintf(want, sizeof(want), "%s:1: line longer than 1 MiB", ts_path("huge"));
	cr_expect_not_null(strstr(err, want), "stderr: %s", err);
	snprintf(want, sizeof(want), "%s:2: line longer than 1 MiB", ts_path("huge"));
	cr_expect_not_null(strstr(err, want), "stderr: %s", err);
	/* Output: the deep line then "ok 1" ('f' < 'o'). */
	cr_expect_eq(memcmp(out, in + deep_start, deep_len), 0);
	cr_expect_str_eq(out + deep_len, " 7\nok 1\n");
	free(out);
	free(err);
	/* The same through a pipe (read(), not the file mapping). */
	cr_assert_eq(ts_run("cat %s | %s convert -o %s 2> %s", ts_path("huge"), CLI, ts_path("out"),
			    ts_path("err")),
		     0);
	out = ts_read_file(ts_path("out"), NULL);
	err = ts_read_file(ts_path("err"), NULL);
	cr_expect_not_null(strstr(err, "<stdin>:1: line longer than 1 MiB"), "stderr: %s", err);
	cr_expect_not_null(strstr(err, "<stdin>:2: line longer than 1 MiB"), "stderr: %s", err);
	cr_expect_eq(memcmp(out, in + deep_start, deep_len), 0);
	cr_expect_str_eq(out + deep_len, " 7\nok 1\n");
	free(out);
	free(err);
	free(in);
}

Test(convert, sums_saturate_and_crlf_is_accepted)
{
	const char *in = "s 18446744073709551615\r\ns 1\r\nt 2\r\n";
	cr_assert_eq(ts_write_file(ts_path("sat"), in, strlen(in)), 0);
	cr_assert_eq(ts_run("%s convert -o %s %s", CLI, ts_path("out"), ts_path("sat")), 0);
	char *out = ts_read_file(ts_path("out"), NULL);
	cr_expect_str_eq(out, "s 18446744073709551615\nt 2\n");
	free(out);
}

Test(convert, sigterm_leaves_no_partial_output)
{
	/* Input that never ends (a fifo we keep open), so convert is mid-run
	 * whenever the signal lands; wherever that is, no output may appear. */
	cr_assert_eq(ts_run("mkfifo %s", ts_path("fifo")), 0);
	int rc = ts_run("( exec 3<>%s; %s convert -o %s %s & pid=$!; "
			"echo 'a 1' >&3; kill -TERM $pid; wait $pid; echo $? > %s ) 2>/dev/null",
			ts_path("fifo"), CLI, ts_path("out"), ts_path("fifo"), ts_path("rc"));
	cr_assert_eq(rc, 0);
	char *st = ts_read_file(ts_path("rc"), NULL);
	cr_expect_eq(atoi(st), 143, "killed by SIGTERM");
	free(st);
	struct stat sb;
	cr_expect_neq(stat(ts_path("out"), &sb), 0, "no output file");
	cr_expect_eq(ts_run("ls -a %s | grep -q '^\\.out\\.'", ts_dir), 1, "no temporary left");
}

/* convert and diff read through one block reader with one rule: a line
 * longer than a block (4 MiB) is reported as FILE:LINE and skipped, the
 * other lines count, and --strict makes it an error; from a mapped file and
 * from a pipe alike. */
Test(convert, over_long_line_same_in_convert_and_diff)
{
	const size_t big = 5u << 20;
	char *in = malloc(big + 64);
	size_t len = (size_t)sprintf(in, "a;b 3\n");
	memset(in + len, 'y', big);
	len += big;
	len += (size_t)sprintf(in + len, " 1\nc 2\na;b 4\n");
	cr_assert_eq(ts_write_file(ts_path("long.folded"), in, len), 0);
	free(in);
	char f[512], want[600];
	snprintf(f, sizeof(f), "%s", ts_path("long.folded")); /* ts_path's buffers rotate */
	snprintf(want, sizeof(want), "%s:2: line longer than 1 MiB", f);
	for (int pipe = 0; pipe < 2; pipe++) {
		const char *src = pipe ? "-" : f;
		cr_assert_eq(ts_run("cat %s | %s convert -t folded -o %s %s 2> %s", f, CLI, ts_path("c.out"),
				    src, ts_path("c.err")),
			     0);
		cr_assert_eq(ts_run("cat %s | %s diff -t folded -o %s %s %s 2> %s", f, CLI, ts_path("d.out"),
				    src, f, ts_path("d.err")),
			     0);
		char *cout = ts_read_file(ts_path("c.out"), NULL), *cerr = ts_read_file(ts_path("c.err"), NULL);
		char *dout = ts_read_file(ts_path("d.out"), NULL), *derr = ts_read_file(ts_path("d.err"), NULL);
		cr_expect_str_eq(cout, "a;b 7\nc 2\n");
		cr_expect_str_eq(dout, "a;b 7 7\nc 2 2\n");
		const char *w = pipe ? ":2: line longer than 1 MiB" : want;
		cr_expect_not_null(strstr(cerr, w), "pipe %d, convert stderr: %s", pipe, cerr);
		cr_expect_not_null(strstr(derr, w), "pipe %d, diff stderr: %s", pipe, derr);
		cr_expect_not_null(strstr(cerr, "1 of 4 lines ignored"), "convert stderr: %s", cerr);
		cr_expect_not_null(strstr(derr, "2 bad lines ignored"), "diff stderr: %s", derr);
		free(cout);
		free(cerr);
		free(dout);
		free(derr);
	}
	cr_expect_eq(ts_run("%s convert --strict %s >/dev/null 2>&1", CLI, f), 65);
	cr_expect_eq(ts_run("%s diff --strict -t folded %s %s >/dev/null 2>&1", CLI, f, f), 65);
}

/* A mapped input truncated while convert reads it (a log rotated by
 * copytruncate): an error naming the file, exit 74, no output, and never a
 * SIGBUS.  The truncation is sent once /proc/PID/maps shows the mapping, so
 * blocks are still being read and parsed when it lands. */
Test(convert, input_truncated_while_read_is_an_error_not_sigbus, .timeout = 120)
{
	const char *in = ts_path("rotated.folded");
	char path[512], out[512], err[512];
	snprintf(path, sizeof(path), "%s", in); /* ts_path's buffers rotate */
	snprintf(out, sizeof(out), "%s", ts_path("out"));
	snprintf(err, sizeof(err), "%s", ts_path("err"));
	FILE *f = fopen(path, "w");
	cr_assert(f);
	for (unsigned i = 0; i < 2500000; i++) /* ~100 MB, 25 blocks */
		fprintf(f, "main;frame_%u;leaf_with_a_somewhat_longer_name_%u %u\n", i % 97, i % 13, i % 5 + 1);
	fclose(f);
	pid_t pid = fork();
	if (pid == 0) {
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(e, 2);
		execl(CLI, CLI, "convert", "--threads", "1", "-o", out, path, (char *)NULL);
		_exit(127);
	}
	cr_assert(pid > 0);
	char maps[64];
	snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)pid);
	bool seen = false;
	for (int i = 0; i < 200000 && !seen; i++) { /* bounded: the run takes ~1 s */
		char *m = ts_read_file(maps, NULL);
		seen = m && strstr(m, path);
		free(m);
	}
	cr_assert(seen, "convert never mapped %s", path);
	cr_assert_eq(truncate(path, 0), 0);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(!WIFSIGNALED(st), "killed by signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 74, "status %#x", st);
	char *e = ts_read_file(err, NULL);
	char want[600];
	snprintf(want, sizeof(want), "%s: read failed: file shrank while being read", path);
	cr_expect(e && strstr(e, want), "stderr: %s", e ? e : "(none)");
	free(e);
	struct stat sb;
	cr_expect_neq(stat(out, &sb), 0, "no output from a half-read input");
}

/* diff reads stdin once: `diff - -` (or stdin named twice) is a usage
 * error, not an empty AFTER. */
Test(convert, diff_refuses_stdin_twice)
{
	cr_assert_eq(ts_write_file(ts_path("a.folded"), "a 1\n", 4), 0);
	cr_expect_eq(ts_run("%s diff -t folded - - < %s > %s 2> %s", CLI, ts_path("a.folded"), ts_path("out"),
			    ts_path("err")),
		     64);
	char *err = ts_read_file(ts_path("err"), NULL);
	cr_expect(err && strstr(err, "BEFORE and AFTER are the same stream (-)"), "stderr: %s", err);
	free(err);
	cr_expect_eq(ts_run("cat %s | %s diff -t folded /dev/stdin - > %s 2>/dev/null", ts_path("a.folded"),
			    CLI, ts_path("out")),
		     64);
}

/* --normalize against a side with no samples has nothing to scale by:
 * said on stderr, values written unscaled (exit 0), or exit 65 with
 * --strict; never a silent all-zero BEFORE. */
Test(convert, diff_normalize_with_an_empty_side_is_reported)
{
	cr_assert_eq(ts_write_file(ts_path("a.folded"), "a 4\nb 6\n", 8), 0);
	cr_assert_eq(ts_write_file(ts_path("empty"), "", 0), 0);
	cr_assert_eq(ts_run("%s diff -t folded --normalize %s %s > %s 2> %s", CLI, ts_path("a.folded"),
			    ts_path("empty"), ts_path("out"), ts_path("err")),
		     0);
	char *out = ts_read_file(ts_path("out"), NULL), *err = ts_read_file(ts_path("err"), NULL);
	cr_expect_str_eq(out, "a 4 0\nb 6 0\n", "BEFORE unscaled");
	cr_expect(err && strstr(err, "--normalize: AFTER"), "stderr: %s", err);
	cr_expect(err && strstr(err, "has no samples"), "stderr: %s", err);
	free(out);
	free(err);
	cr_assert_eq(ts_run("%s diff -t folded --normalize %s %s > %s 2> %s", CLI, ts_path("empty"),
			    ts_path("a.folded"), ts_path("out"), ts_path("err")),
		     0);
	err = ts_read_file(ts_path("err"), NULL);
	cr_expect(err && strstr(err, "--normalize: BEFORE"), "stderr: %s", err);
	free(err);
	cr_expect_eq(ts_run("%s diff --strict -t folded --normalize %s %s > %s 2>/dev/null", CLI,
			    ts_path("a.folded"), ts_path("empty"), ts_path("out")),
		     65);
	/* Both sides with samples: nothing said. */
	cr_assert_eq(ts_run("%s diff -t folded --normalize %s %s > %s 2> %s", CLI, ts_path("a.folded"),
			    ts_path("a.folded"), ts_path("out"), ts_path("err")),
		     0);
	size_t n = 1;
	free(ts_read_file(ts_path("err"), &n));
	cr_expect_eq(n, 0);
}
