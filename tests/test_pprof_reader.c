/* SPDX-License-Identifier: MIT */
/*
 * test_pprof_reader.c - our pprof output as `go tool pprof` (Debian's
 * golang-go, the reader users open it with) shows it: every frame name back
 * byte for byte from -traces, -top, -raw and a -proto round trip, every
 * total exact, and the sample/period types, period and duration for perf
 * and folded input.  The expectations are computed here from the input, not
 * from our writer.  Skipped when `go` is not installed.
 *
 * pprof rewrites names it takes for mangled ones (a Function whose
 * system_name equals its name): C++/Rust-looking names lose their (...) and
 * <...> groups.  Names that are not valid UTF-8 cannot be kept: proto3
 * strings must be UTF-8, so each bad byte is written as U+FFFD (go tool
 * pprof itself would pass the raw bytes through; Pyroscope would reject
 * the profile).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"

#define CLI ST_TEST_CLI

TestSuite(pprof_reader, .init = ts_dir_init, .fini = ts_dir_fini, .timeout = 60);

static bool have_go(void)
{
	return ts_run("command -v go >/dev/null 2>&1 && go tool -n pprof >/dev/null 2>&1") == 0;
}

#define NEED_GO()                                                                              \
	do {                                                                                   \
		if (!have_go())                                                                \
			cr_skip_test("go (Debian golang-go, `scripts/deps.sh test`) not installed: " \
				     "no `go tool pprof` to read the profile back with");      \
	} while (0)

/* `go tool pprof ARGS FILE` in ts_dir with its caches there too; its
 * stdout (caller frees). */
static char *pprof(const char *args, const char *file)
{
	cr_assert_eq(ts_run("cd '%s' && HOME='%s' GOCACHE='%s/gocache' PPROF_TMPDIR='%s' "
			    "go tool pprof %s '%s' > pp.out 2> pp.err",
			    ts_dir, ts_dir, ts_dir, ts_dir, args, file),
		     0, "go tool pprof %s %s failed: %s", args, file, ts_read_file(ts_path("pp.err"), NULL));
	char *s = ts_read_file(ts_path("pp.out"), NULL);
	cr_assert(s);
	return s;
}

/* ---- a growable list of lines, sorted and joined for comparison. ---- */
struct lines {
	char **v;
	size_t n, cap;
};

static void lines_add(struct lines *l, const char *s, size_t len)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		cr_assert(l->v);
	}
	l->v[l->n++] = strndup(s, len);
}

static void lines_addf(struct lines *l, const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	char *s = malloc(na + nb + 1);
	memcpy(s, a, na);
	memcpy(s + na, b, nb + 1);
	lines_add(l, s, na + nb);
	free(s);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted, '\n'-joined; frees the lines. */
static char *lines_join(struct lines *l)
{
	qsort(l->v, l->n, sizeof(*l->v), cmp_str);
	size_t len = 1;
	for (size_t i = 0; i < l->n; i++)
		len += strlen(l->v[i]) + 1;
	char *s = malloc(len), *p = s;
	for (size_t i = 0; i < l->n; i++) {
		p = stpcpy(p, l->v[i]);
		*p++ = '\n';
		free(l->v[i]);
	}
	*p = 0;
	free(l->v);
	*l = (struct lines){ 0 };
	return s;
}

/* Next line of *p (without '\n'), NULL at the end. */
static char *next_line(char **p, size_t *len)
{
	if (!**p)
		return NULL;
	char *s = *p, *nl = strchr(s, '\n');
	*len = nl ? (size_t)(nl - s) : strlen(s);
	*p = nl ? nl + 1 : s + *len;
	return s;
}

/* -traces: blocks between "-----------+---" lines; each line is
 * "%10s   NAME", the value on the leaf's line only, leaf first.  Returns
 * "root;...;leaf VALUE" lines, sorted. */
static char *traces_to_folded(char *t)
{
	struct lines out = { 0 };
	char *p = t, *ln, *stack[64], value[32] = "";
	size_t len, depth = 0, lens[64];
	bool in = false;
	while ((ln = next_line(&p, &len)) || in) {
		if (!ln || (len > 11 && memcmp(ln, "-----------+", 12) == 0)) {
			if (in && depth) {
				char buf[8192] = "";
				for (size_t i = depth; i-- > 0;) {
					strncat(buf, stack[i], lens[i]);
					strcat(buf, i ? ";" : " ");
				}
				lines_addf(&out, buf, value);
			}
			in = ln != NULL;
			depth = 0;
			if (!ln)
				break;
			continue;
		}
		if (!in)
			continue; /* the header: File, Type, ... */
		cr_assert(len >= 13 && depth < 64, "unexpected -traces line: %.*s", (int)len, ln);
		if (depth == 0) {
			size_t k = 0;
			while (k < 10 && ln[k] == ' ')
				k++;
			snprintf(value, sizeof(value), "%.*s", (int)(10 - k), ln + k);
		}
		stack[depth] = ln + 13;
		lens[depth++] = len - 13;
	}
	return lines_join(&out);
}

/* -raw: "Samples:" then the types line then "VALUE: loc loc ..." (leaf
 * first); "Locations" then "ID: 0x0 M=1 NAME :0 s=0()" (the "()" is the
 * empty system_name).  Returns folded lines, sorted; *types the types line. */
static char *raw_to_folded(char *t, char **types, char **period)
{
	char *names[1024] = { 0 };
	struct lines smp = { 0 };
	char *p = t, *ln;
	size_t len;
	int sec = 0;
	*types = *period = NULL;
	while ((ln = next_line(&p, &len))) {
		if (strncmp(ln, "PeriodType:", 11) == 0 || strncmp(ln, "Period:", 7) == 0 ||
		    strncmp(ln, "Duration:", 9) == 0) {
			char *o = *period;
			if (asprintf(period, "%s%.*s\n", o ? o : "", (int)len, ln) < 0)
				cr_assert_fail();
			free(o);
		} else if (strncmp(ln, "Samples:", 8) == 0) {
			sec = 1;
		} else if (sec == 1) {
			*types = strndup(ln, len);
			sec = 2;
		} else if (strncmp(ln, "Locations", 9) == 0) {
			sec = 3;
		} else if (strncmp(ln, "Mappings", 8) == 0) {
			sec = 4;
		} else if (sec == 2) {
			lines_add(&smp, ln, len);
		} else if (sec == 3) {
			unsigned id;
			int off = 0;
			cr_assert(sscanf(ln, " %u: 0x0 M=1 %n", &id, &off) == 1 && off && id < 1024,
				  "unexpected -raw location: %.*s", (int)len, ln);
			/* " :0 s=0" alone when system_name == name. */
			const char *tail = " :0 s=0()";
			size_t tl = strlen(tail);
			if (len >= (size_t)off + tl - 2 && memcmp(ln + len - tl + 2, tail, tl - 2) == 0)
				tl -= 2;
			cr_assert(len >= (size_t)off + tl && memcmp(ln + len - tl, tail, tl) == 0,
				  "a name pprof shows with a system name or a file: %.*s", (int)len, ln);
			names[id] = strndup(ln + off, len - (size_t)off - tl);
		}
	}
	struct lines out = { 0 };
	for (size_t i = 0; i < smp.n; i++) {
		char *s = smp.v[i], *colon = strchr(s, ':');
		cr_assert(colon);
		*colon = 0;
		unsigned ids[64];
		size_t n = 0;
		int off;
		for (char *q = colon + 1; n < 64 && sscanf(q, " %u%n", &ids[n], &off) == 1; q += off)
			n++;
		char buf[8192] = "";
		for (size_t k = n; k-- > 0;) {
			cr_assert(ids[k] < 1024 && names[ids[k]]);
			strcat(buf, names[ids[k]]);
			strcat(buf, k ? ";" : " ");
		}
		lines_addf(&out, buf, s + strspn(s, " "));
	}
	for (size_t i = 0; i < smp.n; i++)
		free(smp.v[i]);
	free(smp.v);
	for (size_t i = 0; i < 1024; i++)
		free(names[i]);
	return lines_join(&out);
}

/* -top: after the "flat  flat%" header, "FLAT FLAT% SUM% CUM CUM%  NAME".
 * Returns "NAME flat=F cum=C" lines, sorted. */
static char *top_to_lines(char *t)
{
	struct lines out = { 0 };
	char *p = t, *ln;
	size_t len;
	bool body = false;
	while ((ln = next_line(&p, &len))) {
		if (!body) {
			body = strstr(ln, "flat  flat%") && (size_t)(strstr(ln, "flat  flat%") - ln) < len;
			continue;
		}
		char flat[32], cum[32];
		int off = 0;
		cr_assert(sscanf(ln, "%31s %*s %*s %31s %*s%n", flat, cum, &off) == 2 && off,
			  "unexpected -top line: %.*s", (int)len, ln);
		cr_assert(memcmp(ln + off, "  ", 2) == 0);
		char tail[96];
		snprintf(tail, sizeof(tail), " flat=%s cum=%s", flat, cum);
		char *name = strndup(ln + off + 2, len - (size_t)off - 2);
		lines_addf(&out, name, tail);
		free(name);
	}
	return lines_join(&out);
}

/* ------------------------------------------------------------ names */

/* Frame names as they go in (a folded frame holds any byte but ';', '\n'
 * and NUL) and as every reader must show them. */
static const struct {
	const char *in, *out;
} names[] = {
	/* C++ */
	{ "std::vector<int, std::allocator<int> >::push_back(int const&)", NULL },
	{ "std::vector<long, std::allocator<long> >::push_back(long const&)", NULL },
	{ "Foo::operator()(int) const", NULL },
	{ "operator<<(std::ostream&, Bar const&)", NULL },
	{ "std::_Function_handler<void (), main::{lambda()#1}>::_M_invoke(std::_Any_data const&)", NULL },
	{ "(anonymous namespace)::helper(char const*)", NULL },
	{ "a::b<c<d>>::operator<=>(e const&) [clone .cold]", NULL },
	{ "_ZN3foo3barEv", NULL }, /* mangled as given: must stay mangled */
	/* Rust */
	{ "<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop", NULL },
	{ "core::ptr::drop_in_place<std::collections::hash::map::HashMap<u64,alloc::string::String>>", NULL },
	{ "app::main::{{closure}}", NULL },
	{ "_RNvCs1234_7mycrate3foo", NULL },
	/* Go */
	{ "main.(*T).M", NULL },
	{ "main.F[...]", NULL },
	{ "github.com/x/y/v2.(*Srv).Handle.func1", NULL },
	{ "runtime.goexit", NULL },
	/* Java (';' cannot be in a folded frame: perf's collapse makes it ':') */
	{ "java/lang/String.<init>", NULL },
	{ "Ljava/lang/String:.valueOf(Ljava/lang/Object:)Ljava/lang/String:", NULL },
	{ "com.example.Foo$Bar.lambda$run$0(Ljava/util/List:)V", NULL },
	{ "Interpreter_[j]", NULL },
	/* hostile */
	{ "<script>alert(1)</script>", NULL },
	{ "\"quoted\" 'name'", NULL },
	{ "back\\slash\\n\\\"", NULL },
	{ "[unknown]", NULL },
	{ "[kernel.kallsyms]_[k]", NULL },
	{ "a < b > c ( d ) [ e ]", NULL },
	{ "((()))<<<>>>", NULL },
	{ "%s%n%x{{.}}", NULL },
	/* non-ASCII, and bytes that are not UTF-8: one U+FFFD per bad byte */
	{ "名前空間::関数<型>(引数)", NULL },
	{ "naïve_ñ_🔥", NULL },
	{ "bad\xff\xfeutf", "bad\xef\xbf\xbd\xef\xbf\xbdutf" },
	{ "overlong\xc0\xaf|surrogate\xed\xa0\x80|cut\xe6\x97", "overlong\xef\xbf\xbd\xef\xbf\xbd|"
	  "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|cut\xef\xbf\xbd\xef\xbf\xbd" },
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

static const char *shown(size_t i)
{
	return names[i].out ? names[i].out : names[i].in;
}

/* The stacks: main;NAME for each name (count 1000 + 3i), and a deep one
 * through three of them (count 5).  Builds the input and the expected
 * folded lines, -top lines (flat = as leaf, cum = stacks holding it). */
static void make_input(char **in, char **folded, char **top)
{
	struct lines f = { 0 }, t = { 0 };
	char *buf = NULL;
	size_t blen = 0;
	FILE *fin = open_memstream(&buf, &blen);
	const size_t deep[3] = { 0, 8, 20 };
	unsigned long long main_cum = 5;
	for (size_t i = 0; i < NNAMES; i++) {
		unsigned long long c = 1000 + 3 * i, cum = c;
		fprintf(fin, "main;%s %llu\n", names[i].in, c);
		char v[32];
		snprintf(v, sizeof(v), " %llu", c);
		char *st;
		cr_assert(asprintf(&st, "main;%s", shown(i)) > 0);
		lines_addf(&f, st, v);
		free(st);
		bool in_deep = i == deep[0] || i == deep[1] || i == deep[2];
		if (in_deep)
			cum += 5;
		unsigned long long flat = c + (i == deep[2] ? 5 : 0);
		char tail[64];
		snprintf(tail, sizeof(tail), " flat=%llu cum=%llu", flat, cum);
		lines_addf(&t, shown(i), tail);
		main_cum += c;
	}
	fprintf(fin, "main;%s;%s;%s 5\n", names[deep[0]].in, names[deep[1]].in, names[deep[2]].in);
	char *st;
	cr_assert(asprintf(&st, "main;%s;%s;%s", shown(deep[0]), shown(deep[1]), shown(deep[2])) > 0);
	lines_addf(&f, st, " 5");
	free(st);
	char tail[64];
	snprintf(tail, sizeof(tail), " flat=0 cum=%llu", main_cum);
	lines_addf(&t, "main", tail);
	fclose(fin);
	*in = buf;
	*folded = lines_join(&f);
	*top = lines_join(&t);
}

Test(pprof_reader, names_and_totals_exact_in_go_tool_pprof)
{
	NEED_GO();
	char *in, *want, *want_top;
	make_input(&in, &want, &want_top);
	cr_assert_eq(ts_write_file(ts_path("in.folded"), in, strlen(in)), 0);
	cr_assert_eq(ts_run("%s convert -t pprof -o '%s' '%s'", CLI, ts_path("p.pb.gz"), ts_path("in.folded")), 0);

	char *t = pprof("-traces", "p.pb.gz");
	cr_assert(strstr(t, "Type: samples\n"), "%s", t);
	char *got = traces_to_folded(t);
	cr_expect_str_eq(got, want, "-traces:\n%s\nwanted:\n%s", got, want);
	free(got);

	/* The demangler modes must leave them alone too. */
	static const char *const modes[] = { "-symbolize=demangle=full", "-symbolize=demangle=templates",
					     "-symbolize=force" };
	for (size_t i = 0; i < 3; i++) {
		char args[96];
		snprintf(args, sizeof(args), "%s -traces", modes[i]);
		char *tm = pprof(args, "p.pb.gz");
		cr_expect_str_eq(tm, t, "%s changed names", modes[i]);
		free(tm);
	}

	char *top = pprof("-top -nodefraction=0 -edgefraction=0 -nodecount=1000000", "p.pb.gz");
	got = top_to_lines(top);
	cr_expect_str_eq(got, want_top, "-top:\n%s\nwanted:\n%s", got, want_top);
	free(got);
	free(top);

	char *raw = pprof("-raw", "p.pb.gz"), *types, *period;
	got = raw_to_folded(raw, &types, &period);
	cr_expect_str_eq(got, want, "-raw:\n%s", raw);
	cr_expect_str_eq(types, "samples/count[dflt]");
	cr_expect_str_eq(period, "PeriodType: samples count\nPeriod: 1\n");
	free(got);
	free(types);
	free(period);
	free(raw);

	/* Written back by pprof itself (-proto), read again: same traces. */
	char *rt = pprof("-proto", "p.pb.gz");
	size_t rlen = 0;
	free(rt);
	rt = ts_read_file(ts_path("pp.out"), &rlen);
	cr_assert_eq(ts_write_file(ts_path("rt.pb.gz"), rt, rlen), 0);
	free(rt);
	rt = pprof("-traces", "rt.pb.gz");
	cr_expect_str_eq(rt, t, "-proto round trip changed the traces");
	free(rt);
	free(t);
	free(in);
	free(want);
	free(want_top);
}

/* ------------------------------------------------------------ units */

/* perf script text: NS samples of EVENT with period PERIOD (or none when
 * PERIOD is NULL), 10 ms apart from t = 100.000000 s. */
static void put_perf(const char *name, const char *event, const char *period, int ns)
{
	FILE *f = fopen(ts_path(name), "w");
	cr_assert(f);
	for (int i = 0; i < ns; i++) {
		fprintf(f, "app 42/42 [001] %d.%06d: %s%s%s:\n", 100 + i / 100, (i % 100) * 10000,
			period ? period : "", period ? " " : "", event);
		fprintf(f, "\t    4005d6 %s+0x1 (/usr/bin/app)\n", i % 3 ? "std::map<int, int>::find(int const&)" : "leaf");
		fprintf(f, "\t    4005f0 main+0x10 (/usr/bin/app)\n\n");
	}
	fclose(f);
}

/* -raw prints the duration with "%.4v": 1.49s shows as "1.49", 290ms as
 * "290m" (-top prints it whole). */
static void check_perf(const char *file, const char *opts, const char *types, const char *period,
		       const char *folded)
{
	cr_assert_eq(ts_run("%s convert -f perf %s -t pprof -o '%s' '%s'", CLI, opts, ts_path("u.pb.gz"),
			    ts_path(file)),
		     0);
	char *raw = pprof("-raw", "u.pb.gz"), *t, *p;
	char *got = raw_to_folded(raw, &t, &p);
	cr_expect_str_eq(t, types, "%s %s: types %s", file, opts, t);
	cr_expect_str_eq(p, period, "%s %s: period %s", file, opts, p);
	cr_expect_str_eq(got, folded, "%s %s: samples %s", file, opts, got);
	free(got);
	free(t);
	free(p);
	free(raw);
}

Test(pprof_reader, sample_and_period_types)
{
	NEED_GO();
	/* cpu-clock periods are nanoseconds of CPU time: 150 samples at
	 * 4 kHz = 37.5 ms over 1.49 s. */
	put_perf("cpu.txt", "cpu-clock:ppp", "250000", 150);
	check_perf("cpu.txt", "", "cpu/nanoseconds[dflt]",
		   "PeriodType: cpu nanoseconds\nPeriod: 250000\nDuration: 1.49\n",
		   "app;main;leaf 12500000\napp;main;std::map<int, int>::find 25000000\n");
	char *top = pprof("-top -nodefraction=0", "u.pb.gz");
	cr_expect(strstr(top, "Type: cpu\n") && strstr(top, "Duration: 1.49s, Total samples = 37.50ms"),
		  "%s", top);
	free(top);
	/* Other events: their periods count the event. */
	put_perf("cyc.txt", "cycles", "1000003", 30);
	check_perf("cyc.txt", "", "cycles/count[dflt]", "PeriodType: cycles count\nPeriod: 0\nDuration: 290m\n",
		   "app;main;leaf 10000030\napp;main;std::map<int, int>::find 20000060\n");
	/* No period in the header: every sample counts one. */
	put_perf("nop.txt", "cpu-clock", NULL, 30);
	check_perf("nop.txt", "", "samples/count[dflt]", "PeriodType: samples count\nPeriod: 1\nDuration: 290m\n",
		   "app;main;leaf 10\napp;main;std::map<int, int>::find 20\n");
}

Test(pprof_reader, folded_units)
{
	NEED_GO();
	cr_assert_eq(ts_write_file(ts_path("f"), "a;b 3\na 4\n", 10), 0);
	static const struct {
		const char *opts, *types, *period;
	} c[] = {
		{ "", "samples/count[dflt]", "PeriodType: samples count\nPeriod: 1\n" },
		{ "--metric bytes", "bytes/bytes[dflt]", "PeriodType: bytes bytes\nPeriod: 0\n" },
		{ "--units bytes", "samples/bytes[dflt]", "PeriodType: samples bytes\nPeriod: 1\n" },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		cr_assert_eq(ts_run("%s convert %s -t pprof -o '%s' '%s'", CLI, c[i].opts, ts_path("f.pb.gz"),
				    ts_path("f")),
			     0);
		char *raw = pprof("-raw", "f.pb.gz"), *t, *p;
		char *got = raw_to_folded(raw, &t, &p);
		cr_expect_str_eq(t, c[i].types, "%s", c[i].opts);
		cr_expect_str_eq(p, c[i].period, "%s", c[i].opts);
		cr_expect_str_eq(got, "a 4\na;b 3\n", "%s", c[i].opts);
		free(got);
		free(t);
		free(p);
		free(raw);
	}
}

/* ------------------------------------------------------------ clamping */

Test(pprof_reader, values_over_int64_max_are_reported)
{
	NEED_GO();
	const char *in = "a 18446744073709551615\nb 9223372036854775808\nc 9223372036854775807\nd 5\n";
	cr_assert_eq(ts_write_file(ts_path("big"), in, strlen(in)), 0);
	cr_assert_eq(ts_run("%s convert -t pprof -o '%s' '%s' 2> '%s'", CLI, ts_path("b.pb.gz"), ts_path("big"),
			    ts_path("err")),
		     0);
	/* (The saturated root sum has its own message.) */
	char *err = ts_read_file(ts_path("err"), NULL);
	cr_expect(strstr(err, "\nshardtrie convert: pprof: 2 values above 9223372036854775807 (INT64_MAX, "
			      "pprof's largest) written as 9223372036854775807\n") ||
		  strstr(err, "shardtrie convert: pprof: 2 values above 9223372036854775807 (INT64_MAX, "
			      "pprof's largest) written as 9223372036854775807\n") == err,
		  "stderr: %s", err);
	free(err);
	char *raw = pprof("-raw", "b.pb.gz"), *t, *p;
	char *got = raw_to_folded(raw, &t, &p);
	cr_expect_str_eq(got, "a 9223372036854775807\nb 9223372036854775807\nc 9223372036854775807\nd 5\n");
	free(got);
	free(t);
	free(p);
	free(raw);
	cr_assert_eq(ts_run("printf 'a 9223372036854775808\\n' | %s convert -t pprof -o '%s' 2> '%s'", CLI,
			    ts_path("s.pb.gz"), ts_path("err")),
		     0);
	err = ts_read_file(ts_path("err"), NULL);
	cr_expect_str_eq(err, "shardtrie convert: pprof: 1 value above 9223372036854775807 (INT64_MAX, "
			      "pprof's largest) written as 9223372036854775807\n");
	free(err);
	/* Nothing to clamp: nothing said. */
	cr_assert_eq(ts_run("printf 'a 1\\n' | %s convert -t pprof -o '%s' 2> '%s'", CLI, ts_path("s.pb.gz"),
			    ts_path("err")),
		     0);
	err = ts_read_file(ts_path("err"), NULL);
	cr_expect_str_eq(err, "");
	free(err);
}
