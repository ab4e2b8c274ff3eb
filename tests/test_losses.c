/* SPDX-License-Identifier: MIT */
/*
 * test_losses.c - what used to be lost without a word is said on stderr,
 * and --strict turns it into exit 65 with no output (issue 16, points 5
 * and 6):
 *
 *   saturation   folded sums at UINT64_MAX (the snapshot path and the
 *                one-shot folded path), a perf period over 64 bits, diff's
 *                numTicks (BEFORE + AFTER) capped instead of wrapped
 *   perf input   other events counted per event, an --event-filter that
 *                matches nothing (exit 65), a sample longer than a 4 MiB
 *                block and a last sample with no blank line (cut off),
 *                perf-only options with -f folded (exit 64), the header
 *                perf prints for a thread it never saw named (":-1")
 *
 * The CLI tests run the binary in ST_TEST_LOSSES_CLI when set, so the same
 * checks can be pointed at an older build to see them fail there.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shardtrie_export.h"
#include "shardtrie_parse.h"
#include "support/support.h"

#define DATA ST_TEST_DATA "/formats"
#define MAXS "18446744073709551615"

TestSuite(losses, .init = ts_dir_init, .fini = ts_dir_fini, .timeout = 60);

static const char *cli(void)
{
	const char *c = getenv("ST_TEST_LOSSES_CLI");
	return c && *c ? c : ST_TEST_CLI;
}

static void put(const char *name, const char *text)
{
	cr_assert_eq(ts_write_file(ts_path(name), text, strlen(text)), 0);
}

static char *slurp(const char *name)
{
	size_t len;
	char *s = ts_read_file(ts_path(name), &len);
	return s ? s : strdup("");
}

/* `shardtrie ARGS` with stdout to file "out" and stderr to "err": the exit
 * status; *err (when given) is stderr, to free. */
static int run(char **err, const char *args)
{
	unlink(ts_path("out"));
	int rc = ts_run("%s %s > '%s' 2> '%s'", cli(), args, ts_path("out"), ts_path("err"));
	if (err)
		*err = slurp("err");
	return rc;
}

static bool has(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

static size_t out_size(void)
{
	size_t len = 0;
	char *s = ts_read_file(ts_path("out"), &len);
	free(s);
	return s ? len : 0;
}

/* ---------------------------------------------------------- saturation */

Test(losses, folded_sum_saturation_is_reported_and_strict_fails)
{
	/* a's total is MAX + 1: capped.  Its children's totals are exact. */
	put("sat.folded", "a;b " MAXS "\na;c 1\n");
	char args[1024], *err;
	snprintf(args, sizeof(args), "convert -t flamebearer '%s'", ts_path("sat.folded"));
	cr_assert_eq(run(&err, args), 0);
	cr_expect(has(err, "totals reached " MAXS), "stderr: %s", err);
	cr_expect(has(err, "deepest: a;b"), "stderr: %s", err);
	free(err);
	snprintf(args, sizeof(args), "convert --strict -t flamebearer '%s'", ts_path("sat.folded"));
	cr_expect_eq(run(&err, args), 65);
	cr_expect_eq(out_size(), 0, "--strict wrote output");
	cr_expect(has(err, "--strict: no output written"), "stderr: %s", err);
	free(err);
}

Test(losses, folded_output_path_reports_saturation_too)
{
	/* One stack whose own sum saturates, folded output: the one-shot
	 * path that builds no snapshot must say so as well. */
	put("sat2.folded", "a;b " MAXS "\na;b 1\nc 2\n");
	char args[1024], *err;
	snprintf(args, sizeof(args), "convert --threads 1 -t folded '%s'", ts_path("sat2.folded"));
	cr_assert_eq(run(&err, args), 0);
	char *out = slurp("out");
	cr_expect_str_eq(out, "a;b " MAXS "\nc 2\n"); /* capped, never wrapped */
	free(out);
	cr_expect(has(err, "totals reached " MAXS), "stderr: %s", err);
	free(err);
	snprintf(args, sizeof(args), "convert --strict -t folded '%s'", ts_path("sat2.folded"));
	cr_expect_eq(run(&err, args), 65);
	cr_expect_eq(out_size(), 0);
	free(err);
	/* A sum that only reaches MAX - 1 is exact: nothing said. */
	put("fine.folded", "a 18446744073709551613\nb 1\n");
	snprintf(args, sizeof(args), "convert --strict -t flamebearer '%s'", ts_path("fine.folded"));
	cr_expect_eq(run(&err, args), 0);
	cr_expect_str_eq(err, "");
	free(err);
}

Test(losses, perf_period_over_64_bits_is_reported_not_saturated)
{
	put("big.perf", "app 1/1 [000] 1.0: 99999999999999999999 cpu-clock:\n"
			"\t1 huge (/m)\n"
			"\n"
			"app 1/1 [000] 1.1: 7 cpu-clock:\n"
			"\t1 small (/m)\n"
			"\n");
	char args[1024], *err;
	snprintf(args, sizeof(args), "convert -f perf '%s'", ts_path("big.perf"));
	cr_assert_eq(run(&err, args), 0);
	char *out = slurp("out");
	cr_expect_str_eq(out, "app;small 7\n", "the huge sample is dropped, not capped");
	free(out);
	cr_expect(has(err, "big.perf:1: sample period does not fit 64 bits"), "stderr: %s", err);
	free(err);
	snprintf(args, sizeof(args), "convert -f perf --strict '%s'", ts_path("big.perf"));
	cr_expect_eq(run(&err, args), 65);
	cr_expect_eq(out_size(), 0);
	free(err);
}

Test(losses, diff_numticks_is_capped_never_wrapped)
{
	put("half.folded", "a 9223372036854775808\n");
	char args[1024], *err;
	snprintf(args, sizeof(args), "diff '%s' '%s'", ts_path("half.folded"), ts_path("half.folded"));
	cr_assert_eq(run(&err, args), 0);
	char *out = slurp("out");
	cr_expect(has(out, "\"numTicks\":" MAXS ","), "%s", out);
	free(out);
	cr_expect(has(err, "numTicks"), "stderr: %s", err);
	free(err);
	snprintf(args, sizeof(args), "diff --strict '%s' '%s'", ts_path("half.folded"),
		 ts_path("half.folded"));
	cr_expect_eq(run(&err, args), 65);
	cr_expect_eq(out_size(), 0);
	free(err);
}

Test(losses, snapshot_saturation_query)
{
	struct st_engine *e = ts_engine_no_merger(0);
	struct st_writer *w = st_writer_open(e);
	const char *ab[] = { "a", "b" }, *ac[] = { "a", "c" }, *d[] = { "d" };
	size_t l2[] = { 1, 1 }, l1[] = { 1 };
	uint64_t vmax[ST_MAX_METRICS] = { UINT64_MAX }, v1[ST_MAX_METRICS] = { 1 };
	cr_assert_eq(st_writer_ingest_strs(w, d, l1, 1, v1), 0);
	st_flush(e);
	struct st_snap *s = st_snap_acquire(e);
	uint32_t deepest = 0;
	cr_expect_eq(st_snap_saturated(s, &deepest), 0);
	cr_expect_eq(deepest, UINT32_MAX);
	st_snap_release(s);
	cr_assert_eq(st_writer_ingest_strs(w, ab, l2, 2, vmax), 0);
	cr_assert_eq(st_writer_ingest_strs(w, ac, l2, 2, v1), 0);
	st_writer_close(w);
	st_flush(e);
	s = st_snap_acquire(e);
	/* root, a (MAX + 1 + ...) and a;b (exactly MAX: cannot be told). */
	cr_expect_eq(st_snap_saturated(s, &deepest), 3);
	size_t len;
	const char *nm = st_snap_name(s, deepest, &len);
	cr_expect(len == 1 && nm[0] == 'b');
	cr_expect_eq(st_snap_depth(s, deepest), 2);
	st_snap_release(s);
	st_engine_destroy(e);
}

/* ---------------------------------------------------------- perf input */

/* Perf script text: `n` samples of `event`, period 10, comm `comm`. */
static void add_samples(FILE *f, const char *comm, const char *event, int n)
{
	for (int i = 0; i < n; i++)
		fprintf(f, "%s 10/11 [000] %d.000001: 10 %s:\n\t1 leaf%d (/m)\n\t2 main (/m)\n\n", comm,
			i, event, i % 3);
}

Test(losses, other_events_are_counted_per_event)
{
	FILE *f = fopen(ts_path("mixed.perf"), "w");
	cr_assert(f);
	add_samples(f, "app", "cpu-clock", 4);
	add_samples(f, "app", "instructions", 3);
	add_samples(f, "app", "cache-misses", 2);
	add_samples(f, "app", "cpu-clock", 1);
	fclose(f);
	char args[1024], *err;
	snprintf(args, sizeof(args), "convert -f perf '%s'", ts_path("mixed.perf"));
	cr_assert_eq(run(&err, args), 0);
	char *out = slurp("out");
	cr_expect_str_eq(out, "app;main;leaf0 30\napp;main;leaf1 10\napp;main;leaf2 10\n",
			 "the output stays stackcollapse-perf.pl's");
	free(out);
	cr_expect(has(err, "kept event cpu-clock (5 samples); skipped 5 samples of other events: "
			   "instructions 3, cache-misses 2 (choose one with --event-filter)"),
		  "stderr: %s", err);
	free(err);
	/* A loss under --strict, unless the event was chosen. */
	snprintf(args, sizeof(args), "convert -f perf --strict '%s'", ts_path("mixed.perf"));
	cr_expect_eq(run(&err, args), 65);
	cr_expect_eq(out_size(), 0);
	free(err);
	snprintf(args, sizeof(args), "convert -f perf --strict --event-filter instructions '%s'",
		 ts_path("mixed.perf"));
	cr_expect_eq(run(&err, args), 0);
	out = slurp("out");
	cr_expect_str_eq(out, "app;main;leaf0 10\napp;main;leaf1 10\napp;main;leaf2 10\n");
	free(out);
	cr_expect(has(err, "kept event instructions (3 samples); skipped 7 samples of other events: "
			   "cpu-clock 5, cache-misses 2\n"),
		  "stderr: %s", err);
	free(err);
}

Test(losses, shipped_mixed_capture_reports_its_events)
{
	char args[1024], *err;
	snprintf(args, sizeof(args), "convert -f perf '%s/perf-mixed.txt'", DATA);
	cr_assert_eq(run(&err, args), 0);
	char *out = slurp("out"), *want = ts_read_file(DATA "/perf-mixed.folded", NULL);
	cr_assert(want);
	cr_expect_str_eq(out, want);
	free(out);
	free(want);
	cr_expect(has(err, "skipped 2 samples of other events: cycles 1, instructions 1"), "stderr: %s",
		  err);
	free(err);
}

/* Threads and 4 MiB blocks do not change the counts. */
Test(losses, event_counts_do_not_depend_on_threads)
{
	FILE *f = fopen(ts_path("many.perf"), "w");
	cr_assert(f);
	for (int k = 0; k < 300; k++) {
		add_samples(f, "app", "cycles", 60);
		add_samples(f, "app", "instructions", 40);
	}
	fclose(f);
	char *err[2];
	for (int t = 0; t < 2; t++) {
		char args[1024];
		snprintf(args, sizeof(args), "convert -f perf --threads %d '%s'", t ? 4 : 1,
			 ts_path("many.perf"));
		cr_assert_eq(run(&err[t], args), 0);
	}
	cr_expect(has(err[0], "kept event cycles (18000 samples); skipped 12000 samples of other "
			      "events: instructions 12000"),
		  "stderr: %s", err[0]);
	cr_expect_str_eq(err[0], err[1]);
	free(err[0]);
	free(err[1]);
}

/* An event name may hold a NUL byte (perf prints what it was given): the
 * filter is the whole name, not the part before the NUL, whatever the
 * threads (before: the name was cut there, so every sample was "another
 * event" and the output was empty; with threads each block chose its own). */
static void add_nul_samples(FILE *f, char which, int n)
{
	for (int i = 0; i < n; i++) {
		fprintf(f, "app 10/11 [000] %d.000001: 10 ev", i);
		fputc('\0', f);
		fprintf(f, "%c:\n\t1 leaf%d (/m)\n\t2 main (/m)\n\n", which, i % 3);
	}
}

Test(losses, event_name_with_a_nul_byte_is_one_filter)
{
	FILE *f = fopen(ts_path("nul.perf"), "w");
	cr_assert(f);
	/* Past one 4 MiB block, so that 4 threads parse several. */
	for (int k = 0; k < 20000; k++) {
		add_nul_samples(f, 'a', 2);
		add_nul_samples(f, 'b', 1);
	}
	fclose(f);
	char *out[2], *err[2];
	for (int t = 0; t < 2; t++) {
		char args[1024];
		snprintf(args, sizeof(args), "convert -f perf --threads %d '%s'", t ? 4 : 1,
			 ts_path("nul.perf"));
		cr_assert_eq(run(&err[t], args), 0);
		out[t] = slurp("out");
	}
	cr_expect_str_eq(out[0], "app;main;leaf0 200000\napp;main;leaf1 200000\n");
	cr_expect_str_eq(out[1], out[0], "threads change nothing");
	cr_expect(has(err[0], "kept event ev\\0a (40000 samples); skipped 20000 samples of other "
			      "events: ev\\0b 20000"),
		  "stderr: %s", err[0]);
	cr_expect_str_eq(err[1], err[0]);
	for (int t = 0; t < 2; t++) {
		free(out[t]);
		free(err[t]);
	}
}

Test(losses, event_filter_matching_nothing_fails)
{
	char args[1024], *err;
	snprintf(args, sizeof(args), "convert -f perf --event-filter bogus -o '%s' '%s/perf-mixed.txt'",
		 ts_path("ev.folded"), DATA);
	cr_expect_eq(run(&err, args), 65);
	cr_expect_eq(access(ts_path("ev.folded"), F_OK), -1, "no output file");
	cr_expect(has(err, "--event-filter bogus matches no sample; events in the input: "
			   "cpu-clock 12, cycles 1, instructions 1"),
		  "stderr: %s", err);
	free(err);
}

Test(losses, sample_longer_than_a_block_is_reported)
{
	/* One sample of ~5 MiB (60000 frames), then a normal one: the
	 * reader's 4 MiB block cuts the big one.  File (mapped) and pipe. */
	FILE *f = fopen(ts_path("huge.perf"), "w");
	cr_assert(f);
	fprintf(f, "big 1/1 [000] 1.0: 3 cpu-clock:\n");
	for (int i = 0; i < 60000; i++)
		fprintf(f, "\t%x frame_%d_with_a_rather_long_symbol_name_padding_padding_padding_padding (/m)\n",
			i, i);
	fprintf(f, "\nsmall 2/2 [000] 2.0: 5 cpu-clock:\n\t1 leaf (/m)\n\n");
	fclose(f);
	for (int pipe = 0; pipe < 2; pipe++) {
		char args[1024], *err;
		if (pipe)
			snprintf(args, sizeof(args), "convert -f perf - < '%s'", ts_path("huge.perf"));
		else
			snprintf(args, sizeof(args), "convert -f perf '%s'", ts_path("huge.perf"));
		cr_assert_eq(run(&err, args), 0);
		char *out = slurp("out");
		cr_expect_str_eq(out, "small;leaf 5\n");
		free(out);
		cr_expect(has(err, ":1: sample cut off"), "stderr: %s", err);
		cr_expect(has(err, "1 sample cut off with no blank line after it"), "stderr: %s", err);
		free(err);
		if (pipe)
			snprintf(args, sizeof(args), "convert -f perf --strict - < '%s'", ts_path("huge.perf"));
		else
			snprintf(args, sizeof(args), "convert -f perf --strict '%s'", ts_path("huge.perf"));
		cr_expect_eq(run(&err, args), 65, "pipe %d", pipe);
		cr_expect_eq(out_size(), 0);
		free(err);
	}
}

Test(losses, truncated_last_sample_is_reported)
{
	put("trunc.perf", "app 1/1 [000] 1.0: 2 cpu-clock:\n\t1 a (/m)\n\n"
			  "app 1/1 [000] 1.1: 3 cpu-clock:\n\t1 b (/m)\n");
	char args[1024], *err;
	snprintf(args, sizeof(args), "convert -f perf '%s'", ts_path("trunc.perf"));
	cr_assert_eq(run(&err, args), 0);
	char *out = slurp("out");
	cr_expect_str_eq(out, "app;a 2\n"); /* dropped, as stackcollapse-perf.pl does */
	free(out);
	cr_expect(has(err, "trunc.perf:4: sample cut off"), "stderr: %s", err);
	free(err);
	snprintf(args, sizeof(args), "convert -f perf --strict '%s'", ts_path("trunc.perf"));
	cr_expect_eq(run(&err, args), 65);
	cr_expect_eq(out_size(), 0);
	free(err);
}

Test(losses, perf_options_with_folded_input_are_usage_errors)
{
	put("x.folded", "a 1\n");
	static const char *opts[] = { "--pid", "--tid", "--kernel", "--jit", "--all", "--addrs",
				      "--event-filter cycles" };
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		char args[1024], *err;
		snprintf(args, sizeof(args), "convert %s '%s'", opts[i], ts_path("x.folded"));
		cr_expect_eq(run(&err, args), 64, "%s", opts[i]);
		cr_expect(has(err, "applies to perf script input only"), "%s: %s", opts[i], err);
		cr_expect_eq(out_size(), 0);
		free(err);
	}
}

Test(losses, unnamed_thread_header_is_parsed)
{
	/* What `perf script` prints for a sample whose thread it never saw
	 * (comm ":-1"), on a busy system-wide capture. */
	put("unnamed.perf", ":-1 14159/-1    [000]   524.077898: cpu-clock:ppp:\n"
			    "\tffffffff8103ce3b native_safe_halt+0xb ([kernel.kallsyms])\n"
			    "\tffffffff81013236 cpu_idle ([kernel.kallsyms])\n"
			    "\n"
			    "app 10/11 [001]   524.077899: cpu-clock:ppp:\n"
			    "\t1 leaf (/m)\n"
			    "\n");
	char args[1024], *err;
	snprintf(args, sizeof(args), "convert -f perf '%s'", ts_path("unnamed.perf"));
	cr_assert_eq(run(&err, args), 0);
	char *out = slurp("out");
	cr_expect_str_eq(out, ":-1;cpu_idle;native_safe_halt 1\napp;leaf 1\n");
	free(out);
	cr_expect_str_eq(err, "");
	free(err);
	snprintf(args, sizeof(args), "convert -f perf --tid --strict '%s'", ts_path("unnamed.perf"));
	cr_assert_eq(run(&err, args), 0);
	out = slurp("out");
	cr_expect_str_eq(out, ":-1-14159/-1;cpu_idle;native_safe_halt 1\napp-10/11;leaf 1\n");
	free(out);
	free(err);
}

/* ------------------------------------------------------- library side */

static void count_err(void *arg, uint64_t line, const char *msg)
{
	(void)line;
	(void)msg;
	(*(int *)arg)++;
}

Test(losses, perf_stats_and_event_tally)
{
	const char *text = "app 1/1 [000] 1.0: 5 cycles:\n\t1 a (/m)\n\n"
			   "app 1/1 [000] 1.1: 6 instructions:\n\t1 b (/m)\n\n"
			   "app 1/1 [000] 1.2: 7 cycles:\n\t1 c (/m)\n\n"
			   "app 1/1 [000] 1.3: 1 branches:\n\t1 d (/m)\n\n"
			   "app 1/1 [000] 1.4: 8 cycles:\n\t1 e (/m)\n";
	struct st_engine *e = ts_engine_no_merger(0);
	struct st_writer *w = st_writer_open(e);
	struct st_perf_cache *c = st_perf_cache_new();
	cr_assert(w && c);
	struct st_parse_stats st = { 0 };
	int errs = 0;
	cr_assert_eq(st_perf_ingest_cached(c, w, 0, NULL, text, strlen(text), count_err, &errs, &st), 0);
	cr_expect_eq(st.samples, 2);
	cr_expect_eq(st.other_events, 2);
	cr_expect_eq(st.truncated, 1);
	cr_expect_eq(st.sum, 12);
	cr_expect_eq(errs, 1);
	static const struct {
		const char *name;
		uint64_t n;
	} want[] = { { "cycles", 3 }, { "instructions", 1 }, { "branches", 1 } };
	const char *name;
	size_t len;
	uint64_t n;
	size_t i = 0;
	for (; st_perf_cache_event(c, i, &name, &len, &n); i++) {
		cr_assert(i < 3);
		cr_expect_str_eq(name, want[i].name);
		cr_expect_eq(len, strlen(want[i].name));
		cr_expect_eq(n, want[i].n, "%s", name);
	}
	cr_expect_eq(i, 3);
	st_perf_cache_free(c);
	st_writer_close(w);
	st_engine_destroy(e);
}
