/* SPDX-License-Identifier: MIT */
/*
 * test_formats.c - input and output formats against goldens and real readers.
 *
 *   perf script  -> folded   goldens made by stackcollapse-perf.pl itself
 *                            (tests/data/formats/perf-mixed.*.folded), every
 *                            option; threaded blocks = one thread
 *   flamebearer  single/double: the goldens of formats.md, the SimpleTree of
 *                            the Pyroscope article, --max-nodes into "other"
 *   diff         folded "stack before after", --normalize (difffolded -n)
 *   delta        st_export_delta: what came between two snapshots, across a reset
 *   pprof        read back by `go tool pprof -raw` (skipped without go)
 *   speedscope, d3           exact small goldens
 *   svg          well-formed XML (xmllint), untrusted names as text
 *   html         headless Chromium: loads, zooms, searches (Matched: X%),
 *                table with recursion counted once, no script injection
 *                (skipped without chromium)
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardtrie_parse.h"
#include "support/support.h"

#define CLI ST_TEST_CLI
#define DATA ST_TEST_DATA "/formats"

TestSuite(formats, .init = ts_dir_init, .fini = ts_dir_fini, .timeout = 120);


static void put(const char *name, const char *text)
{
	cr_assert_eq(ts_write_file(ts_path(name), text, strlen(text)), 0);
}

static char *get(const char *p)
{
	size_t len;
	char *s = ts_read_file(p, &len);
	cr_assert(s, "missing %s", p);
	return s;
}

static void expect_file(const char *got, const char *want)
{
	char *a = get(got), *b = get(want);
	cr_expect_str_eq(a, b, "%s differs from %s", got, want);
	free(a);
	free(b);
}

static bool have(const char *tool)
{
	return ts_run("command -v %s >/dev/null 2>&1", tool) == 0;
}

/* Run `shardtrie CMD -o out IN [IN2]` (CMD e.g. "convert -t d3"), assert
 * that it succeeded and return what it wrote (caller frees). */
static char *cli_output(const char *cmd, const char *in, const char *in2)
{
	cr_assert_eq(ts_run("%s %s -o %s %s %s", CLI, cmd, ts_path("out"), in, in2 ? in2 : ""), 0, "%s", cmd);
	return get(ts_path("out"));
}

/* An engine without a merger thread (merges only in st_flush) and with
 * `nshards` shards up front (0: one per online CPU). */

/* Default export options writing metric `metric`, and a stream into *buf. */
static FILE *mem_out(struct st_export_opts *eo, unsigned metric, char **buf, size_t *len)
{
	st_export_opts_init(eo);
	eo->metric = metric;
	*buf = NULL;
	FILE *f = open_memstream(buf, len);
	cr_assert(f);
	return f;
}

/* Folded bytes of e: by the snapshot walk (flush first) or one-shot. */
static char *folded_of(struct st_engine *e, bool once, unsigned metric)
{
	struct st_export_opts eo;
	char *buf;
	size_t len;
	FILE *f = mem_out(&eo, metric, &buf, &len);
	if (once) {
		cr_assert_eq(st_export_folded_once(e, &eo, f), 0);
	} else {
		cr_assert(st_flush(e));
		struct st_snap *s = st_snap_acquire(e);
		cr_assert_eq(st_export(s, ST_FMT_FOLDED, &eo, f), 0);
		st_snap_release(s);
	}
	fclose(f);
	return buf;
}

/* ------------------------------------------------------------ perf */

Test(formats, perf_matches_stackcollapse_perf_for_every_option)
{
	static const struct {
		const char *opts, *golden;
	} cases[] = {
		{ "", "perf-mixed.folded" },
		{ "--pid", "perf-mixed.pid.folded" },
		{ "--tid", "perf-mixed.tid.folded" },
		{ "--kernel", "perf-mixed.kernel.folded" },
		{ "--jit", "perf-mixed.jit.folded" },
		{ "--all", "perf-mixed.all.folded" },
		{ "--addrs", "perf-mixed.addrs.folded" },
		{ "--event-filter instructions", "perf-mixed.ev-instructions.folded" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(ts_run("%s convert -f perf %s -o %s %s/perf-mixed.txt 2>/dev/null", CLI,
				    cases[i].opts, ts_path("out"), DATA), 0, "%s", cases[i].opts);
		char want[512];
		snprintf(want, sizeof(want), "%s/%s", DATA, cases[i].golden);
		expect_file(ts_path("out"), want);
	}
}

static void on_err(void *arg, uint64_t line, const char *msg)
{
	(*(int *)arg)++;
	(void)line;
	(void)msg;
}

Test(formats, perf_library_api)
{
	const char *text = "# comment\n"
			   "app 10/11 [000] 1.0: 100 cycles:\n"
			   "\t1 leaf+0x10 (/lib/x.so)\n"
			   "\t2 [unknown] (/usr/lib/libfoo.so)\n"
			   "\n"
			   "app 10/11 [000] 1.1: 7 instructions:\n"
			   "\t1 other (/lib/x.so)\n"
			   "\n"
			   "garbage\n"
			   "app 10/11 [000] 1.2: 5 cycles:\n"
			   "\t1 leaf (/lib/x.so)\n";
	const char *ev;
	size_t evlen;
	cr_assert_eq(st_perf_first_event(text, strlen(text), &ev, &evlen), 1);
	cr_assert_eq(evlen, 6);
	cr_assert(!memcmp(ev, "cycles", 6));
	/* The last blank line ends at "\n\n" after the instructions sample. */
	size_t cut = st_perf_cut(text, strlen(text));
	cr_assert(cut > 0 && text[cut - 1] == '\n' && text[cut - 2] == '\n');
	cr_assert_str_eq(text + cut, "garbage\napp 10/11 [000] 1.2: 5 cycles:\n\t1 leaf (/lib/x.so)\n");

	struct st_engine *e = ts_engine_no_merger(0);
	struct st_writer *w = st_writer_open(e);
	struct st_perf_opts po;
	st_perf_opts_init(&po);
	po.tid = true;
	struct st_parse_stats st = { 0 };
	int errs = 0;
	cr_assert_eq(st_perf_ingest(w, 0, &po, text, strlen(text), on_err, &errs, &st), 0);
	st_writer_close(w);
	cr_expect_eq(st.samples, 1); /* instructions filtered, last sample unterminated */
	cr_expect_eq(st.malformed, 1);
	cr_expect_eq(st.other_events, 1);
	cr_expect_eq(st.truncated, 1);
	cr_expect_eq(errs, 2); /* "garbage", and the sample cut off */
	char *buf = folded_of(e, false, 0);
	cr_expect_str_eq(buf, "app-10/11;[libfoo.so];leaf 100\n");
	free(buf);
	st_engine_destroy(e);
}

/* One cache across blocks: a sample body seen under a java comm is not
 * reused for another comm (java drops the leading 'L'), repeated bodies and
 * frames give the same stacks, line numbers stay right after cached
 * samples, and changing the options starts the cache over. */
static void count_err_line(void *arg, uint64_t line, const char *msg)
{
	(void)msg;
	*(uint64_t *)arg = line;
}

Test(formats, perf_cache_across_blocks)
{
	const char *a = "java 1/1 [000] 1.0: 1 cycles:\n"
			"\t1 Lfoo/Bar;.m+0x1 (/tmp/perf-9.map)\n"
			"\t2 main (/bin/x)\n"
			"\n"
			"bash 2/2 [000] 1.0: 2 cycles:\n"
			"\t1 Lfoo/Bar;.m+0x1 (/tmp/perf-9.map)\n"
			"\t2 main (/bin/x)\n"
			"\n";
	const char *b = "java 1/1 [000] 1.0: 4 cycles:\n"
			"\t1 Lfoo/Bar;.m+0x1 (/tmp/perf-9.map)\n"
			"\t2 main (/bin/x)\n"
			"\n"
			"bash 2/2 [000] 1.0: 8 cycles:\n"
			"\t1 Lfoo/Bar;.m+0x2 (/tmp/perf-9.map)\n"
			"\t2 main (/bin/x)\n"
			"\n"
			"junk\n";
	struct st_engine *e = ts_engine_no_merger(0);
	struct st_writer *w = st_writer_open(e);
	struct st_perf_cache *c = st_perf_cache_new();
	cr_assert(c);
	struct st_perf_opts po;
	st_perf_opts_init(&po);
	struct st_parse_stats st = { 0 };
	uint64_t errline = 0;
	cr_assert_eq(st_perf_ingest_cached(c, w, 0, &po, a, strlen(a), count_err_line, &errline, &st), 0);
	cr_assert_eq(st_perf_ingest_cached(c, w, 0, &po, b, strlen(b), count_err_line, &errline, &st), 0);
	cr_expect_eq(errline, 9);
	cr_expect_eq(st.lines, 17);
	po.jit = true; /* new options: the cache starts over */
	cr_assert_eq(st_perf_ingest_cached(c, w, 0, &po, a, strlen(a), NULL, NULL, &st), 0);
	st_perf_cache_free(c);
	st_writer_close(w);
	cr_expect_eq(st.samples, 6);
	char *buf = folded_of(e, false, 0);
	cr_expect_str_eq(buf, "bash;main;Lfoo/Bar:.m 10\n"
			      "bash;main;Lfoo/Bar:.m_[j] 2\n"
			      "java;main;foo/Bar:.m 5\n"
			      "java;main;foo/Bar:.m_[j] 1\n");
	free(buf);
	st_engine_destroy(e);
}

/*
 * The sample cache looks a body up by its first 128 bytes (or all of it when
 * shorter) and then compares it whole: bodies that differ from a cached one
 * only in the last byte before the blank line, stop short of it, run past
 * it, share its first lines past the lookup prefix (more than four of them:
 * those fall back to a whole-body hash), sit around the 128-byte boundary,
 * or end the input without a blank line must each parse as if nothing were
 * cached.  Reference: every sample ingested on its own with a fresh cache.
 */
struct psample {
	char *text;
	size_t len;
};

/* The samples v[0..n) as one text (*len bytes; caller frees). */
static char *join_samples(const struct psample *v, size_t n, size_t *len)
{
	char *whole = NULL;
	FILE *f = open_memstream(&whole, len);
	cr_assert(f);
	for (size_t i = 0; i < n; i++)
		fwrite(v[i].text, 1, v[i].len, f);
	fclose(f);
	return whole;
}

static void add_sample(struct psample *v, size_t *n, const char *comm, unsigned period,
		       const char *body, bool blank)
{
	char *t = NULL;
	size_t len;
	FILE *f = open_memstream(&t, &len);
	cr_assert(f);
	fprintf(f, "%s 7/8 [001] 2.000001: %u cycles:\n%s%s", comm, period, body, blank ? "\n" : "");
	fclose(f);
	v[(*n)++] = (struct psample){ t, len };
}

/* Frame line i of a family of bodies: "\t<addr> f<i>_<tag>+0x<i> (<mod>)\n". */
static void frame(FILE *f, unsigned i, unsigned tag, const char *mod)
{
	fprintf(f, "\t%16x f%u_%u+0x%x (%s)\n", 0x1000u + i, i, tag, i, mod);
}

static char *body_of(unsigned nlines, unsigned common, unsigned tag, const char *last_mod)
{
	char *t = NULL;
	size_t len;
	FILE *f = open_memstream(&t, &len);
	cr_assert(f);
	for (unsigned i = 0; i < nlines; i++)
		frame(f, i, i < common ? 0 : tag, i + 1 == nlines && last_mod ? last_mod : "/bin/app");
	fclose(f);
	return t;
}

/* One frame line of exactly len bytes (len >= 12). */
static char *line_of_len(size_t len, char c)
{
	char *t = malloc(len + 1);
	cr_assert(t);
	memcpy(t, "\t1 ", 3);
	memset(t + 3, c, len - 8);
	memcpy(t + len - 5, " (m)\n", 6);
	return t;
}

Test(formats, perf_body_cache_near_misses)
{
	struct psample v[400];
	size_t n = 0;
	char *keep[64];
	size_t nk = 0;
	/* A 30-line body (~1.2 kB) and its near misses. */
	char *B = keep[nk++] = body_of(30, 30, 0, NULL);
	char *Bmod = keep[nk++] = body_of(30, 30, 0, "/bin/apq"); /* last byte before ')' */
	char *Bbad = keep[nk++] = strdup(B);
	Bbad[strlen(Bbad) - 2] = ']'; /* last frame line unrecognised */
	char *Bshort = keep[nk++] = body_of(29, 29, 0, NULL);
	char *B1 = keep[nk++] = body_of(1, 1, 0, NULL);
	char *B5 = keep[nk++] = body_of(5, 5, 0, NULL);
	char *Blong = keep[nk++] = body_of(31, 31, 0, NULL);
	/* Eight bodies sharing their first 20 lines (well past 128 bytes). */
	char *fam[8];
	for (unsigned t = 0; t < 8; t++)
		fam[t] = keep[nk++] = body_of(24 + t % 3, 20, t + 1, NULL);
	/* Bodies of 127..130 and 255..258 bytes (around lookup prefixes of 128
	 * or 256 bytes), and ones equal to them but in one byte. */
	char *edge[16];
	for (unsigned k = 0; k < 8; k++) {
		size_t len = (k < 4 ? 127 : 255) + k % 4;
		edge[k] = keep[nk++] = line_of_len(len, 'a');
		edge[8 + k] = keep[nk++] = strdup(edge[k]);
		/* The first two: a byte of the symbol; the others: the ')' (past
		 * the prefix for the longest), so the line is unrecognised. */
		edge[8 + k][k % 4 < 2 ? len - 6 : len - 2] = k % 4 < 2 ? 'b' : ']';
	}
	/* Two-line bodies around the boundary: a long first line, then a short one. */
	char *two[4];
	for (unsigned k = 0; k < 4; k++) {
		char *l1 = line_of_len((k % 2 ? 112 : 240) + 8 * (k / 2), 'c'), *l2 = line_of_len(20, (char)('d' + k % 2));
		two[k] = keep[nk++] = malloc(strlen(l1) + strlen(l2) + 1);
		strcpy(two[k], l1);
		strcat(two[k], l2);
		free(l1);
		free(l2);
	}
	char *Bcomment = keep[nk++] = malloc(strlen(B) + 16);
	strcpy(Bcomment, B5);
	strcat(Bcomment, "# inside\n");
	strcat(Bcomment, B1);
	/* A body cached before a longer one that starts with it (so the
	 * shorter one comes first among those sharing its lookup prefix). */
	char *Cshort = keep[nk++] = body_of(10, 10, 9, NULL);
	char *C = keep[nk++] = body_of(11, 11, 9, NULL);
	add_sample(v, &n, "bash", 2, Cshort, true);
	add_sample(v, &n, "bash", 4, C, true);
	add_sample(v, &n, "bash", 8, C, true);
	add_sample(v, &n, "bash", 16, Cshort, true);
	const char *comms[] = { "bash", "java", "V8 Worker" };
	for (unsigned round = 0; round < 3; round++) {
		for (unsigned c = 0; c < 3; c++) {
			const char *cm = comms[(c + round) % 3];
			add_sample(v, &n, cm, 1 + round, B, true);
			add_sample(v, &n, cm, 10, Bmod, true);
			add_sample(v, &n, cm, 100, B, true);
			add_sample(v, &n, cm, 1000, Bbad, true);
			add_sample(v, &n, cm, 3, Bshort, true);
			add_sample(v, &n, cm, 5, B1, true);
			add_sample(v, &n, cm, 7, B5, true);
			add_sample(v, &n, cm, 11, Blong, true);
			add_sample(v, &n, cm, 13, B, true);
			add_sample(v, &n, cm, 17, Bcomment, true);
			for (unsigned t = 0; t < 8; t++)
				add_sample(v, &n, cm, 19 + t, fam[(t * 3 + round) % 8], true);
			for (unsigned k = 0; k < 16; k++)
				add_sample(v, &n, cm, 29 + k, edge[(k + round) % 16], true);
			for (unsigned k = 0; k < 4; k++)
				add_sample(v, &n, cm, 41 + k, two[(k + c) % 4], true);
		}
	}
	/* The input ends inside a repeated body, then exactly at one (no blank
	 * line after either: neither sample counts). */
	char *cut = keep[nk++] = strdup(B);
	cut[strlen(cut) - 7] = '\0';
	add_sample(v, &n, "bash", 1, cut, false);
	cr_assert_lt(n, 399);
	size_t wlen;
	char *whole = join_samples(v, n, &wlen);
	for (int end_at_body = 0; end_at_body < 2; end_at_body++) {
		if (end_at_body) { /* the last sample ends exactly at a cached body */
			free(v[n - 1].text);
			n--;
			add_sample(v, &n, "bash", 1, B, false);
			free(whole);
			whole = join_samples(v, n, &wlen);
		}
		for (unsigned opt = 0; opt < 4; opt++) {
			struct st_perf_opts po;
			st_perf_opts_init(&po);
			po.event = "cycles";
			po.kernel = opt & 1;
			po.tid = opt & 2;
			char *out[2];
			struct st_parse_stats st[2] = { { 0 }, { 0 } };
			for (int ref = 0; ref < 2; ref++) {
				struct st_engine *e = ts_engine_no_merger(0);
				struct st_writer *w = st_writer_open(e);
				cr_assert(w);
				if (ref) {
					for (size_t i = 0; i < n; i++)
						cr_assert_eq(st_perf_ingest(w, 0, &po, v[i].text, v[i].len, NULL,
									    NULL, &st[1]),
							     0);
				} else {
					/* One cache over two blocks cut at a blank line. */
					struct st_perf_cache *c = st_perf_cache_new();
					cr_assert(c);
					size_t half = st_perf_cut(whole, wlen / 2);
					cr_assert(half);
					/* Exact-size copies: a read past a block's end
					 * is caught under ASan. */
					char *b1 = malloc(half), *b2 = malloc(wlen - half);
					cr_assert(b1 && b2);
					memcpy(b1, whole, half);
					memcpy(b2, whole + half, wlen - half);
					cr_assert_eq(st_perf_ingest_cached(c, w, 0, &po, b1, half, NULL, NULL,
									   &st[0]),
						     0);
					cr_assert_eq(st_perf_ingest_cached(c, w, 0, &po, b2, wlen - half, NULL,
									   NULL, &st[0]),
						     0);
					free(b1);
					free(b2);
					st_perf_cache_free(c);
				}
				st_writer_close(w);
				out[ref] = folded_of(e, false, 0);
				st_engine_destroy(e);
			}
			cr_expect_str_eq(out[0], out[1], "opt %u end %d", opt, end_at_body);
			cr_expect(strstr(out[0], ";f29_0;f28_0;"), "opt %u", opt);
			cr_expect_eq(st[0].samples, st[1].samples);
			cr_expect_eq(st[0].lines, st[1].lines);
			cr_expect_eq(st[0].malformed, st[1].malformed);
			cr_expect_eq(st[0].skipped, st[1].skipped);
			free(out[0]);
			free(out[1]);
		}
	}
	free(whole);
	for (size_t i = 0; i < n; i++)
		free(v[i].text);
	for (size_t i = 0; i < nk; i++)
		free(keep[i]);
}

Test(formats, perf_threaded_blocks_equal_one_thread)
{
	/* ~12 MB: several 4 MiB blocks, cut at blank lines. */
	FILE *f = fopen(ts_path("big.txt"), "w");
	cr_assert(f);
	const unsigned K = 60000;
	for (unsigned i = 0; i < K; i++)
		fprintf(f,
			"worker %u/%u [%03u] %u.000001: 1000 cpu-clock:\n"
			"\tffffffff81000001 do_work_%u+0x1 ([kernel.kallsyms])\n"
			"\t7f0000000001 compute_%u (/usr/lib/libm.so.6)\n"
			"\t7f0000000002 [unknown] (/usr/bin/worker)\n"
			"\t7f0000000003 main (/usr/bin/worker)\n\n",
			i % 7, i % 13, i % 4, i, i % 5, i % 11);
	fclose(f);
	cr_assert_eq(ts_run("%s convert -f perf --kernel --threads 1 -o %s %s", CLI, ts_path("one"),
			    ts_path("big.txt")), 0);
	cr_assert_eq(ts_run("%s convert -f perf --kernel --threads 4 -o %s %s", CLI, ts_path("four"),
			    ts_path("big.txt")), 0);
	expect_file(ts_path("four"), ts_path("one"));
	/* Read from a pipe instead of mapped: the same blocks, the same bytes. */
	cr_assert_eq(ts_run("cat %s | %s convert -f perf --kernel --threads 2 -o %s -", ts_path("big.txt"),
			    CLI, ts_path("pipe")),
		     0);
	expect_file(ts_path("pipe"), ts_path("one"));
	char *out = get(ts_path("one"));
	/* compute_0 (i%11 == 0) and do_work_0 (i%5 == 0): i multiple of 55. */
	cr_expect(strstr(out, "worker;main;[worker];compute_0;do_work_0_[k] 1091000\n"), "%.200s", out);
	free(out);
}

/* ------------------------------------------- one-shot folded (no trie) */

/* Random perf script text: 8 comms (one with ';', one java), kernel, JIT,
 * libc and [unknown] frames, +0x offsets, `->` inlines, other events,
 * comments, malformed lines, zero and missing periods, a repeated pool of
 * bodies and fresh ones. */
static char *gen_perf(uint64_t seed, size_t samples, size_t *len)
{
	static const char *comms[] = { "java", "swapper", "ba;sh", "postgres", "V8 Worker",
				       "kworker/0:1", "nginx", "py" };
	static const char *mods[] = { "[kernel.kallsyms]", "/usr/lib/libc.so.6", "/tmp/perf-12.map",
				      "/usr/bin/postgres", "[unknown]", "/usr/lib/jvm/libjvm.so" };
	static const char *syms[] = { "do_syscall_64", "vfs_read", "Lorg/foo/Bar;.baz(I)V",
				      "[unknown]", "std::vector<int>::push_back(int const&)",
				      "net/http.(*Client).Do", "malloc", "a->b", "x;y",
				      "Interpreter", "memcpy", "m" };
	static const char *events[] = { "cpu-clock:", "cpu-clock:", "cpu-clock:", "instructions:" };
	uint64_t st = seed;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	cr_assert(f);
	for (size_t i = 0; i < samples; i++) {
		uint64_t r = ts_rand(&st);
		if (r % 53 == 0)
			fprintf(f, "# a comment\n");
		if (r % 61 == 1)
			fprintf(f, "garbage line\n");
		const char *comm = comms[ts_rand(&st) % 8];
		unsigned pid = (unsigned)(ts_rand(&st) % 5) + 1;
		uint64_t per = ts_rand(&st) % 7;
		if (per == 6)
			fprintf(f, "%s %u/%u [000] 1.%06zu: %s\n", comm, pid, pid + 1, i,
				events[ts_rand(&st) % 4]);
		else
			fprintf(f, "%s %u/%u [000] 1.%06zu: %llu %s\n", comm, pid, pid + 1, i,
				(unsigned long long)(per == 5 ? 0 : per * 1000 + 1),
				events[ts_rand(&st) % 4]);
		/* Half the samples reuse one of 16 bodies (the sample cache). */
		uint64_t bst = ts_rand(&st) % 2 ? seed * 31 + ts_rand(&st) % 16 : ts_rand(&st);
		unsigned depth = (unsigned)(ts_rand(&bst) % 14);
		for (unsigned k = 0; k < depth; k++) {
			const char *sym = syms[ts_rand(&bst) % 12];
			const char *mod = mods[ts_rand(&bst) % 6];
			uint64_t off = ts_rand(&bst) % 3;
			fprintf(f, "\t%16llx %s", (unsigned long long)(ts_rand(&bst) % 4096), sym);
			if (off)
				fprintf(f, "+0x%llx", (unsigned long long)off);
			fprintf(f, " (%s)\n", mod);
		}
		if (ts_rand(&st) % 97) /* rarely: no blank line (sample merges on) */
			fprintf(f, "\n");
	}
	fclose(f);
	return buf;
}

/* Ingest text through `nw` writers: the text is cut at sample boundaries
 * into pieces dealt round-robin, so the same stack sits in several shards. */
static void ingest_perf(struct st_engine *e, unsigned nw, const struct st_perf_opts *po,
			const char *text, size_t len)
{
	struct st_writer *w[4];
	struct st_perf_cache *c[4];
	for (unsigned i = 0; i < nw; i++) {
		cr_assert(w[i] = st_writer_open(e));
		cr_assert(c[i] = st_perf_cache_new());
	}
	size_t off = 0;
	for (unsigned piece = 0; off < len; piece++) {
		size_t want = len - off < 2000 ? len - off : 2000;
		size_t cut = want == len - off ? want : st_perf_cut(text + off, want);
		if (!cut)
			cut = len - off;
		struct st_parse_stats st = { 0 };
		cr_assert_eq(st_perf_ingest_cached(c[piece % nw], w[piece % nw], 0, po, text + off,
						   cut, NULL, NULL, &st),
			     0);
		off += cut;
	}
	for (unsigned i = 0; i < nw; i++) {
		st_perf_cache_free(c[i]);
		st_writer_close(w[i]);
	}
}

/* Allocation failures anywhere while perf samples are batched into the
 * writer: every sample is either ingested or counted as dropped with a
 * report, and the parser's count agrees with the engine's. */
Test(formats, perf_batched_ingest_under_allocation_failure)
{
	size_t len;
	char *text = gen_perf(99, 400, &len);
	for (long k = 0; k < 120; k += 3) {
		struct st_engine *e = ts_engine_no_merger(1);
		struct st_writer *w = st_writer_open(e);
		cr_assert(w);
		struct st_perf_opts po;
		st_perf_opts_init(&po);
		po.event = "cpu-clock";
		struct st_parse_stats st = { 0 };
		int errs = 0;
		st_alloc_fail_after(k);
		int rc = st_perf_ingest(w, 0, &po, text, len, on_err, &errs, &st);
		st_alloc_fail_after(-1);
		cr_expect(rc == 0 || rc == -ENOMEM, "k %ld: rc %d", k, rc);
		st_writer_close(w);
		struct st_stats es = { .size = sizeof(es) };
		st_engine_stats(e, &es);
		cr_expect_eq(st.samples, es.ingested, "k %ld: parser %llu, engine %llu", k,
			     (unsigned long long)st.samples, (unsigned long long)es.ingested);
		cr_expect_eq((uint64_t)errs, st.dropped + st.malformed, "k %ld", k);
		st_engine_destroy(e);
	}
	free(text);
}

Test(formats, folded_once_equals_snapshot_export_on_perf_input)
{
	for (unsigned opt = 0; opt < 32; opt++) {
		size_t len;
		char *text = gen_perf(opt + 1, 1500, &len);
		struct st_perf_opts po;
		st_perf_opts_init(&po);
		po.pid = opt & 1;
		po.tid = opt & 2;
		po.kernel = opt & 4;
		po.jit = opt & 8;
		po.addrs = opt & 16;
		po.event = "cpu-clock";
		char *out[2];
		for (int once = 0; once < 2; once++) {
			struct st_engine *e = ts_engine_no_merger(2);
			ingest_perf(e, 1 + opt % 3, &po, text, len);
			out[once] = folded_of(e, once, 0);
			/* One-shot took the samples: nothing is left behind. */
			if (once) {
				char *after = folded_of(e, false, 0);
				cr_expect_str_eq(after, "");
				free(after);
			}
			st_engine_destroy(e);
		}
		cr_expect(strlen(out[0]) > 1000, "opt %u: %zu bytes", opt, strlen(out[0]));
		cr_expect_str_eq(out[1], out[0], "options %u", opt);
		free(out[0]);
		free(out[1]);
		free(text);
	}
}

static void ingest_strs(struct st_writer *w, const char *stack, const uint64_t *v)
{
	const char *fr[8];
	size_t lens[8], d = 0;
	for (const char *p = stack; *p; d++) {
		const char *sep = strchr(p, '|');
		size_t n = sep ? (size_t)(sep - p) : strlen(p);
		fr[d] = p;
		lens[d] = n;
		p += n + (sep != NULL);
	}
	cr_assert_eq(st_writer_ingest_strs(w, fr, lens, d, v), 0);
}

/* An engine without a merger thread, metrics "samples" and "bytes". */
static struct st_engine *two_metric_engine(unsigned nshards)
{
	struct st_options so;
	st_options_init(&so);
	so.merge_interval_ms = 0;
	so.nshards = nshards;
	so.nmetrics = 2;
	so.metrics[1].name = "bytes";
	struct st_engine *e = st_engine_create(&so);
	cr_assert(e);
	return e;
}

/* Folded output of metric `metric` for a fixed random mix of edge-case
 * stacks ('|' separates frames) spread over three writers. */
static char *edge_folded(bool once, unsigned metric)
{
	static const char *stacks[] = { "a;b", "a|b", "a|b|c", "a", "a b", "a\tb", "a|;b", "a;|b",
					"a|\x01", "", "zz|y", "a;b|c", "a|b;c", "\xff|a" };
	const size_t ns = sizeof(stacks) / sizeof(stacks[0]);
	struct st_engine *e = two_metric_engine(3);
	struct st_writer *w[3];
	for (int i = 0; i < 3; i++)
		cr_assert(w[i] = st_writer_open(e));
	uint64_t rs = 7;
	for (int rep = 0; rep < 300; rep++) {
		size_t k = ts_rand(&rs) % ns;
		uint64_t v[2] = { ts_rand(&rs) % 3, ts_rand(&rs) % 5 };
		if (k == 10 && rep % 2 == 0)
			v[0] = UINT64_MAX / 2; /* zz;y saturates across shards */
		ingest_strs(w[rep % 3], stacks[k], v);
	}
	/* Random short names over "ab; \x01": many names prefix others. */
	for (int rep = 0; rep < 3000; rep++) {
		char names[12][4];
		const char *fr[12];
		size_t lens[12], d = (size_t)(ts_rand(&rs) % 12);
		for (size_t k = 0; k < d; k++) {
			lens[k] = (size_t)(ts_rand(&rs) % 4);
			for (size_t c = 0; c < lens[k]; c++)
				names[k][c] = "ab; \x01"[ts_rand(&rs) % 5];
			if (k < 8 && rep % 2) { /* deep stacks sharing their first frames */
				names[k][0] = 'a';
				lens[k] = 1;
			}
			fr[k] = names[k];
		}
		uint64_t v[2] = { ts_rand(&rs) % 4, ts_rand(&rs) % 2 };
		cr_assert_eq(st_writer_ingest_strs(w[rep % 3], fr, lens, d, v), 0);
	}
	for (int i = 0; i < 3; i++)
		st_writer_close(w[i]);
	char *out = folded_of(e, once, metric);
	st_engine_destroy(e);
	return out;
}

/* Edge cases of the one-shot path against the snapshot walk: stacks that
 * print the same from different frames ("a;b" vs "a","b"), ordering by
 * bytes below ' ', zero values, root samples, sums across shards that
 * saturate, a second metric; -EBUSY once something was merged. */
/* st_export_folded_once declines: -EBUSY, nothing written, nothing taken. */
static void expect_once_declines(struct st_engine *e)
{
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	cr_assert(f);
	cr_assert_eq(st_export_folded_once(e, NULL, f), -EBUSY);
	fclose(f);
	cr_expect_eq(len, 0);
	free(buf);
}

Test(formats, folded_once_edge_cases)
{
	for (unsigned m = 0; m < 2; m++) {
		char *walk = edge_folded(false, m), *once = edge_folded(true, m);
		cr_expect_str_eq(once, walk, "metric %u", m);
		if (m == 0)
			cr_expect(strstr(walk, "zz;y 18446744073709551615\n"), "%s", walk);
		free(walk);
		free(once);
	}

	/* Merged already: -EBUSY, nothing written, nothing taken. */
	struct st_engine *e = ts_engine_no_merger(0);
	struct st_writer *w = st_writer_open(e);
	uint64_t one = 1;
	ingest_strs(w, "x|y", &one);
	cr_assert(st_flush(e));
	ingest_strs(w, "x|z", &one);
	st_writer_close(w);
	expect_once_declines(e);
	char *all = folded_of(e, false, 0);
	cr_expect_str_eq(all, "x;y 1\nx;z 1\n");
	free(all);
	st_engine_destroy(e);
}

/* A frame name holding a line break (a traced file name may) cannot forge
 * a folded line: the walk writes it as "\n" / "\r" and sorts after that;
 * the one-shot path declines before it takes any sample. */
Test(formats, folded_escapes_line_breaks_in_names)
{
	struct st_engine *e = ts_engine_no_merger(0);
	struct st_writer *w = st_writer_open(e);
	uint64_t one = 1, big = 1000000;
	ingest_strs(w, "cat|/tmp/x\nfake;stack 999", &big);
	ingest_strs(w, "cat|a\rb", &one);
	ingest_strs(w, "cat|b", &one);
	st_writer_close(w);
	expect_once_declines(e);
	char *all = folded_of(e, false, 0);
	cr_expect_str_eq(all, "cat;/tmp/x\\nfake;stack 999 1000000\n"
			      "cat;a\\rb 1\n"
			      "cat;b 1\n");
	free(all);
	st_engine_destroy(e);
}

/* The one-shot line writer copies short names 32 bytes at a time into a
 * 1 MiB buffer: names of every length around that, names as long as the
 * buffer or as long as a frame may be, and lines that straddle the buffer's
 * end, against the snapshot walk. */
static char *long_names_folded(bool once)
{
	struct st_engine *e = ts_engine_no_merger(2);
	struct st_writer *w = st_writer_open(e);
	cr_assert(w);
	size_t big = ST_MAX_FRAME_LEN;
	char *pool = malloc(big);
	cr_assert(pool);
	for (size_t i = 0; i < big; i++)
		pool[i] = (char)('a' + i % 23);
	static const size_t huge[] = { (1u << 20) - 40, (1u << 20) - 1, 1u << 20, 70000 };
	uint64_t rs = 11;
	for (int rep = 0; rep < 40000; rep++) {
		const char *fr[6];
		size_t lens[6], d = 1 + (size_t)(ts_rand(&rs) % 6);
		for (size_t k = 0; k < d; k++) {
			size_t off = (size_t)(ts_rand(&rs) % 64);
			lens[k] = (size_t)(ts_rand(&rs) % 70);
			if (rep % 5000 == 17 && k == d - 1)
				lens[k] = huge[(rep / 5000) % 4], off = 0;
			fr[k] = pool + off;
		}
		uint64_t v = 1 + ts_rand(&rs) % 9;
		cr_assert_eq(st_writer_ingest_strs(w, fr, lens, d, &v), 0);
	}
	st_writer_close(w);
	free(pool);
	char *out = folded_of(e, once, 0);
	st_engine_destroy(e);
	return out;
}

Test(formats, folded_once_name_lengths)
{
	char *walk = long_names_folded(false), *once = long_names_folded(true);
	cr_expect_gt(strlen(walk), 3u << 20);
	cr_expect(strcmp(once, walk) == 0, "one-shot differs from the walk (%zu vs %zu bytes)",
		  strlen(once), strlen(walk));
	free(walk);
	free(once);
}

/* ------------------------------------------------------------ delta */

/* st_export_delta(a, b, metric) with o->metric eo_metric, as folded text,
 * is want and its *total want_total. */
static void expect_delta(const struct st_snap *a, const struct st_snap *b, int metric,
			 unsigned eo_metric, const char *want, uint64_t want_total)
{
	struct st_export_opts eo;
	char *buf;
	size_t len;
	uint64_t tot = 1234;
	FILE *f = mem_out(&eo, eo_metric, &buf, &len);
	cr_assert_eq(st_export_delta(a, b, metric, ST_FMT_FOLDED, &eo, f, &tot), 0);
	fclose(f);
	cr_expect_str_eq(buf, want, "delta (metric %d, o->metric %u)", metric, eo_metric);
	cr_expect_eq(tot, want_total, "total %" PRIu64 " (metric %d)", tot, metric);
	free(buf);
}

/* Feed n stacks ('|' separates frames) with two-metric values, then flush. */
static void feed(struct st_engine *e, const char *const *stacks, const uint64_t (*v)[2], size_t n)
{
	struct st_writer *w = st_writer_open(e);
	cr_assert(w);
	for (size_t i = 0; i < n; i++)
		ingest_strs(w, stacks[i], v[i]);
	st_writer_close(w);
	cr_assert(st_flush(e));
}

/* The delta of two snapshots is what was fed between them, for one metric
 * (metric m) or all (metric -1, o->metric chosen) alike; across st_reset()
 * it is everything after the reset; a saturated sum is not wrapped. */
Test(formats, export_delta_is_what_came_between)
{
	static const char *s1[] = { "a|b", "a|c", "x", "d" };
	static const uint64_t v1[][2] = { { 3, 30 }, { 1, 0 }, { UINT64_MAX, 1 }, { 0, 7 } };
	static const char *s2[] = { "a|b", "d", "a", "a|b|e", "x" };
	static const uint64_t v2[][2] = { { 2, 20 }, { 5, 0 }, { 1, 1 }, { 4, 0 }, { 9, 2 } };
	static const char *s3[] = { "a|c", "q|r" };
	static const uint64_t v3[][2] = { { 6, 60 }, { 0, 8 } };
	struct st_engine *e = two_metric_engine(2);
	feed(e, s1, v1, 4);
	struct st_snap *a = st_snap_acquire(e);
	feed(e, s2, v2, 5);
	struct st_snap *b = st_snap_acquire(e);

	/* x stuck at UINT64_MAX: its growth of 9 cannot show, and is not wrapped. */
	static const char *want0 = "a 1\na;b 2\na;b;e 4\nd 5\n";
	static const char *want1 = "a 1\na;b 20\nx 2\n";
	expect_delta(a, b, 0, 1, want0, 12);
	expect_delta(a, b, -1, 0, want0, 12);
	expect_delta(a, b, 1, 0, want1, 23);
	expect_delta(a, b, -1, 1, want1, 23);
	/* Nothing between b and itself; NULL earlier = all of later. */
	expect_delta(b, b, -1, 0, "", 0);
	expect_delta(NULL, a, 0, 0, "a;b 3\na;c 1\nx 18446744073709551615\n", UINT64_MAX);

	/* Across a reset: all of later (s3), not s2 + s3 nor s3 minus s1. */
	cr_assert(st_reset(e));
	feed(e, s3, v3, 2);
	struct st_snap *c = st_snap_acquire(e);
	cr_assert_neq(st_snap_generation(a), st_snap_generation(c));
	expect_delta(a, c, -1, 0, "a;c 6\n", 6);
	expect_delta(b, c, 1, 0, "a;c 60\nq;r 8\n", 68);

	/* A metric the engine lacks is refused. */
	FILE *f = fopen("/dev/null", "w");
	cr_assert(f);
	cr_expect_eq(st_export_delta(a, b, 2, ST_FMT_FOLDED, NULL, f, NULL), -EINVAL);
	cr_expect_eq(st_export_delta(a, b, -2, ST_FMT_FOLDED, NULL, f, NULL), -EINVAL);
	fclose(f);
	st_snap_release(a);
	st_snap_release(b);
	st_snap_release(c);
	st_engine_destroy(e);
}

/* ------------------------------------------------------------ flamebearer */

Test(formats, flamebearer_golden_from_formats_md)
{
	put("in", "a;b 1\na;c 2\n");
	char *s = cli_output("convert -t flamebearer", ts_path("in"), NULL);
	cr_expect_str_eq(s, "{\"version\":1,\"flamebearer\":{\"names\":[\"total\",\"a\",\"c\",\"b\"],"
			    "\"levels\":[[0,3,0,0],[0,3,0,1],[0,1,1,3,0,2,2,2]],\"numTicks\":3,\"maxSelf\":2},"
			    "\"metadata\":{\"format\":\"single\",\"units\":\"samples\",\"sampleRate\":100,"
			    "\"spyName\":\"shardtrie\",\"name\":\"shardtrie\"}}\n");
	free(s);
}

Test(formats, flamebearer_simpletree_from_the_article)
{
	/* simpletree.folded = the article's SimpleTree decoded to stacks;
	 * the golden holds its names/levels verbatim (609 ticks, maxSelf 493). */
	char *s = cli_output("convert -t flamebearer", DATA "/simpletree.folded", NULL);
	expect_file(ts_path("out"), DATA "/simpletree.flamebearer.json");
	cr_expect(strstr(s, "[0,100,0,23,0,506,0,19,1,2,0,7]"));
	cr_expect(strstr(s, "\"numTicks\":609,\"maxSelf\":493"));
	free(s);
}

Test(formats, flamebearer_max_nodes_folds_into_other)
{
	put("in", "a;b 1\na;c 2\n");
	char *s = cli_output("convert -t flamebearer --max-nodes 3", ts_path("in"), NULL);
	cr_expect(strstr(s, "\"names\":[\"total\",\"a\",\"other\",\"c\"],"
			    "\"levels\":[[0,3,0,0],[0,3,0,1],[0,2,2,3,0,1,1,2]]"), "%s", s);
	free(s);
	/* -1 (and a cap above the node count) keeps everything. */
	s = cli_output("convert -t flamebearer --max-nodes 100", ts_path("in"), NULL);
	cr_expect(strstr(s, "[0,1,1,3,0,2,2,2]"));
	free(s);
}

Test(formats, flamebearer_escapes_names)
{
	put("in", "<script>alert(1)</script>;\"q\\ 1\n");
	char *s = cli_output("convert -t flamebearer", ts_path("in"), NULL);
	cr_expect(strstr(s, "\"\\u003cscript\\u003ealert(1)\\u003c/script\\u003e\",\"\\\"q\\\\\""), "%s", s);
	cr_expect(!strstr(s, "<script>"));
	free(s);
}

/* ------------------------------------------------------------ diff */

Test(formats, diff_flamebearer_golden)
{
	put("l", "a;b 1\na;c 2\n");
	put("r", "a;b 4\na;c 8\n");
	char *s = cli_output("diff", ts_path("l"), ts_path("r"));
	cr_expect(strstr(s, "\"names\":[\"total\",\"a\",\"c\",\"b\"],\"levels\":[[0,3,0,0,12,0,0],"
			    "[0,3,0,0,12,0,1],[0,1,1,0,4,4,3,0,2,2,0,8,8,2]],\"numTicks\":15,\"maxSelf\":8}"),
		  "%s", s);
	cr_expect(strstr(s, "\"format\":\"double\""));
	cr_expect(strstr(s, "\"leftTicks\":3,\"rightTicks\":12"));
	free(s);
}

Test(formats, diff_folded_sorted_and_normalized)
{
	put("l", "x 5\na;b 1\na;c 2\n");
	put("r", "a;b 4\na;c 8\nz 3\n");
	char *s = cli_output("diff -t folded", ts_path("l"), ts_path("r"));
	cr_expect_str_eq(s, "a;b 1 4\na;c 2 8\nx 5 0\nz 0 3\n");
	free(s);
	/* -n: before * 15 / 8, truncated per stack. */
	s = cli_output("diff -t folded --normalize", ts_path("l"), ts_path("r"));
	cr_expect_str_eq(s, "a;b 1 4\na;c 3 8\nx 9 0\nz 0 3\n");
	free(s);
	cr_expect_eq(ts_run("%s diff -t pprof %s %s 2>/dev/null", CLI, ts_path("l"), ts_path("r")), 64);
}

/* ------------------------------------------------------------ pprof */

Test(formats, pprof_read_back_by_go_tool_pprof)
{
	if (!have("go"))
		cr_skip_test("go (golang-go) not installed: no pprof reader to check against");
	put("in", "main;work;leaf 7\nmain;work 3\nmain;idle 2\nmain;x.(*T).y;a b 1\n");
	cr_assert_eq(ts_run("%s convert -t pprof -o %s %s", CLI, ts_path("p.pb.gz"), ts_path("in")), 0);
	/* -raw prints samples (value: location ids, leaf first) then
	 * locations; rebuild folded stacks from it. */
	cr_assert_eq(ts_run("cd %s && HOME=%s go tool pprof -raw p.pb.gz > raw 2>/dev/null", ts_dir, ts_dir), 0);
	cr_assert_eq(ts_run("awk '/^Samples:/{s=1;next} /^Locations/{s=0;l=1;next} /^Mappings/{l=0}"
			    " s && /:/{v=$1; sub(\":\",\"\",v); st=\"\"; for(i=2;i<=NF;i++) st=$i \" \" st; S[++n]=st; V[n]=v}"
			    " l && /^ *[0-9]+: /{id=$1; sub(\":\",\"\",id); nm=$0; sub(/^ *[0-9]+: 0x0 (M=[0-9]+ )?/,\"\",nm);"
			    " sub(/ :0 s=0(\\(\\))?$/,\"\",nm); L[id]=nm}"
			    " END{for(k=1;k<=n;k++){split(S[k],a,\" \"); o=\"\"; for(j=1;j<=length(a);j++) if(a[j]!=\"\") o=o (o==\"\"?\"\":\";\") L[a[j]]; print o, V[k]}}'"
			    " %s/raw | LC_ALL=C sort > %s/back", ts_dir, ts_dir), 0);
	char *s = get(ts_path("back"));
	cr_expect_str_eq(s, "main;idle 2\nmain;work 3\nmain;work;leaf 7\nmain;x.(*T).y;a b 1\n");
	free(s);
	cr_assert_eq(ts_run("cd %s && HOME=%s go tool pprof -top p.pb.gz 2>/dev/null | grep -q 'Type: samples'",
			    ts_dir, ts_dir), 0);
}

/* ------------------------------------------------------------ json shapes */

Test(formats, speedscope_and_d3_goldens)
{
	put("in", "a;b 1\na;c 2\na 4\n");
	char *s = cli_output("convert -t d3", ts_path("in"), NULL);
	cr_expect_str_eq(s, "{\"name\":\"root\",\"value\":7,\"children\":[{\"name\":\"a\",\"value\":7,"
			    "\"children\":[{\"name\":\"b\",\"value\":1},{\"name\":\"c\",\"value\":2}]}]}\n");
	free(s);
	s = cli_output("convert -t speedscope", ts_path("in"), NULL);
	cr_expect_str_eq(s, "{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\","
			    "\"shared\":{\"frames\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"}]},"
			    "\"profiles\":[{\"type\":\"sampled\",\"name\":\"shardtrie\",\"unit\":\"none\","
			    "\"startValue\":0,\"endValue\":7,\"samples\":[[0],[0,1],[0,2]],\"weights\":[4,1,2]}],"
			    "\"activeProfileIndex\":0,\"exporter\":\"shardtrie@0.1\",\"name\":\"shardtrie\"}\n");
	free(s);
}

/* ------------------------------------------------------------ svg/html */

static const char *hostile = "main;<script>alert(1)</script> 3\n"
			     "main;<img src=x onerror=\"document.title='pwned'\">;x 1\n"
			     "main;bad\xff\x01utf8 1\n"
			     "a;b 1\na;c 2\na;b;a;b 2\n";

Test(formats, svg_is_well_formed_and_escapes)
{
	put("in", hostile);
	cr_assert_eq(ts_run("%s convert -t svg --title 'T<&>' --width 800 --colors java -o %s %s", CLI,
			    ts_path("out.svg"), ts_path("in")), 0);
	char *s = get(ts_path("out.svg"));
	cr_expect(!strstr(s, "<script>alert"));
	cr_expect(strstr(s, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	cr_expect(strstr(s, "T&lt;&amp;&gt;"));
	cr_expect(strstr(s, "width=\"800\""));
	free(s);
	if (have("xmllint"))
		cr_expect_eq(ts_run("xmllint --noout %s", ts_path("out.svg")), 0);
	/* diff svg: red for growth, blue for shrinkage */
	put("l", "a;b 1\na;c 8\n");
	put("r", "a;b 4\na;c 2\n");
	cr_assert_eq(ts_run("%s diff -t svg --inverted -o %s %s %s", CLI, ts_path("d.svg"), ts_path("l"),
			    ts_path("r")), 0);
	s = get(ts_path("d.svg"));
	cr_expect(strstr(s, "fill=\"rgb(255,"));
	cr_expect(strstr(s, ",255)\""));
	free(s);
}

static int chromium_dom(const char *html, const char *hash, const char *out)
{
	return ts_run("D=$(mktemp -d) && timeout 60 chromium --headless --no-sandbox --disable-gpu"
		      " --disable-background-networking --no-first-run --user-data-ts_dir=$D"
		      " --dump-dom 'file://%s#%s' > %s 2>/dev/null; r=$?; rm -rf $D; exit $r",
		      html, hash, out);
}

Test(formats, html_viewer_in_headless_chromium)
{
	if (!have("chromium"))
		cr_skip_test("chromium not installed: cannot run the HTML viewer check");
	put("in", hostile);
	cr_assert_eq(ts_run("%s convert -t html -o %s %s", CLI, ts_path("v.html"), ts_path("in")), 0);
	char *s = get(ts_path("v.html"));
	cr_expect(!strstr(s, "<script>alert"));
	cr_expect(!strstr(s, "<img"));
	free(s);
	/* zoom into a, search ^b$: b (3) and the nested b (2) count once: 3/5 */
	cr_assert_eq(chromium_dom(ts_path("v.html"), "zoom=a&search=%5Eb%24", ts_path("dom")), 0);
	s = get(ts_path("dom"));
	cr_expect(strstr(s, "data-zoom=\"a\""), "viewer did not load/zoom");
	cr_expect(strstr(s, "Matched: 60.0%"), "search result wrong");
	cr_expect(!strstr(s, "<title>pwned"));
	free(s);
	/* table: a's total counts the recursive a;b;a;b once (1+2+2 = 5) */
	cr_assert_eq(chromium_dom(ts_path("v.html"), "view=table&fn=b", ts_path("dom")), 0);
	s = get(ts_path("dom"));
	cr_expect(strstr(s, "<td class=\"fn\">a</td><td>0</td><td>0.00%</td><td>5</td>"), "%.300s",
		  strstr(s, "<table") ? strstr(s, "<table") : s);
	cr_expect(strstr(s, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	cr_expect(strstr(s, "id=\"callers\""));
	cr_expect(!strstr(s, "<title>pwned"));
	free(s);
}
