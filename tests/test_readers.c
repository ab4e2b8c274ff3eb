/* SPDX-License-Identifier: MIT */
/*
 * test_readers.c - our outputs in the readers users open them with.
 *
 *   units:     the units and sample rates each format carries (flamebearer,
 *              speedscope, svg), --units checked, markup escaped: no
 *              browser needed.
 *   readers:   headless Chromium (Debian's chromium) renders:
 *              - our flamebearer (single and diff) in Pyroscope's own
 *                flamegraph component (tests/readers: @pyroscope/flamegraph
 *                and its peers pinned in package-lock.json, bundled with
 *                esbuild into a page, tests/readers/page.jsx), and the test
 *                compares the time and the table it shows with the input;
 *              - our HTML viewer under malformed URL fragments, each in an
 *                iframe of one harness page: the flamegraph must be drawn.
 *              One Chromium run per test (it takes ~4 s to start); they skip
 *              when chromium or the npm packages are missing
 *              (scripts/deps.sh test installs both).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shardtrie.h"
#include "shardtrie_export.h"
#include "support/support.h"

#define CLI ST_TEST_CLI
#define READERS ST_TEST_DATA "/../readers"

TestSuite(units, .init = ts_dir_init, .fini = ts_dir_fini, .timeout = 60);
TestSuite(readers, .init = ts_dir_init, .fini = ts_dir_fini, .timeout = 120);

/* ------------------------------------------------------------ inputs */

/* A perf script capture: `n` samples of app;main;LEAF, each of `period`
 * (0: no period field) of `event`. */
static void perf_samples(FILE *f, const char *event, uint64_t period, const char *leaf, int n)
{
	for (int i = 0; i < n; i++) {
		fprintf(f, "app  4242 [001] %d.%06d: ", 100 + i / 1000, i % 1000);
		if (period)
			fprintf(f, "%10llu ", (unsigned long long)period);
		fprintf(f, "%s: \n\t    55d0c0de0001 %s+0x11 (/usr/bin/app)\n"
			   "\t    55d0c0de0002 main+0x22 (/usr/bin/app)\n\n",
			event, leaf);
	}
}

/* 300 samples in work, 150 in idle, each `period` of `event`, as file `name`. */
static const char *perf_capture(const char *name, const char *event, uint64_t period, int work,
				int idle)
{
	const char *path = ts_path(name);
	FILE *f = fopen(path, "w");
	cr_assert(f);
	fputs("# ========\n# cmdline : /usr/bin/perf record -F 100 -g -- ./app\n# ========\n#\n", f);
	perf_samples(f, event, period, "work", work);
	perf_samples(f, event, period, "idle", idle);
	fclose(f);
	return path;
}

static void write_text(const char *name, const char *text)
{
	cr_assert_eq(ts_write_file(ts_path(name), text, strlen(text)), 0);
}

/* Run the CLI on `args` (a shell fragment), its stdout parsed as JSON. */
static json_t *cli_json(const char *args)
{
	char out[512];
	snprintf(out, sizeof(out), "%s", ts_path("cli.json"));
	cr_assert_eq(ts_run("%s %s > %s 2>/dev/null", CLI, args, out), 0, "%s", args);
	json_error_t err;
	json_t *j = json_load_file(out, 0, &err);
	cr_assert(j, "%s: %s", args, err.text);
	return j;
}

static const char *jstr(json_t *j, const char *path)
{
	/* path: "a.b.c" through objects */
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *save, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
		j = json_object_get(j, k);
	return json_string_value(j);
}

static json_int_t jint(json_t *j, const char *path)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *save, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
		j = json_object_get(j, k);
	cr_assert(json_is_integer(j), "%s is not an integer", path);
	return json_integer_value(j);
}

/* ------------------------------------------------------------ units */

/* cpu-clock and task-clock periods are nanoseconds: Pyroscope must get a
 * sample rate that makes ticks / sampleRate the seconds, speedscope the
 * unit, the SVG the word.  Other events, and captures without periods,
 * count samples. */
Test(units, perf_time_events_are_nanoseconds)
{
	static const struct {
		const char *event;
		uint64_t period;
		const char *fb_units, *ss_unit, *svg_unit;
		json_int_t rate;
	} cases[] = {
		{ "cpu-clock", 10000000, "samples", "nanoseconds", "nanoseconds", 1000000000 },
		{ "cpu-clock:ppp", 10000000, "samples", "nanoseconds", "nanoseconds", 1000000000 },
		{ "task-clock:u", 250000, "samples", "nanoseconds", "nanoseconds", 1000000000 },
		{ "cpu-clock", 0, "samples", "none", "samples", 100 },
		{ "cycles", 2500000, "samples", "none", "samples", 100 },
		{ "cpu-clocks", 100, "samples", "none", "samples", 100 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *in = perf_capture("cap.txt", cases[i].event, cases[i].period, 3, 1);
		char args[1024];
		snprintf(args, sizeof(args), "convert -f perf -t flamebearer %s", in);
		json_t *fb = cli_json(args);
		cr_expect_str_eq(jstr(fb, "metadata.units"), cases[i].fb_units, "%s", cases[i].event);
		cr_expect_eq(jint(fb, "metadata.sampleRate"), cases[i].rate, "%s", cases[i].event);
		cr_expect_eq(jint(fb, "flamebearer.numTicks"),
			     (json_int_t)(4 * (cases[i].period ? cases[i].period : 1)));
		json_decref(fb);
		snprintf(args, sizeof(args), "convert -f perf -t speedscope %s", in);
		json_t *ss = cli_json(args);
		cr_expect_str_eq(json_string_value(json_object_get(
					 json_array_get(json_object_get(ss, "profiles"), 0), "unit")),
				 cases[i].ss_unit, "%s", cases[i].event);
		json_decref(ss);
		cr_expect_eq(ts_run("%s convert -f perf -t svg %s | grep -q '<title>work ([0-9]* %s, 75.00%%)</title>'",
				    CLI, in, cases[i].svg_unit),
			     0, "svg of %s says %s", cases[i].event, cases[i].svg_unit);
	}
}

/* --units: the word the user gives wins over the input's; each time unit
 * reaches Pyroscope as samples at its rate. */
Test(units, units_option_maps_to_each_reader)
{
	static const struct {
		const char *units, *fb_units, *ss_unit;
		json_int_t rate;
	} cases[] = {
		{ "nanoseconds", "samples", "nanoseconds", 1000000000 },
		{ "microseconds", "samples", "microseconds", 1000000 },
		{ "milliseconds", "samples", "milliseconds", 1000 },
		{ "seconds", "samples", "seconds", 1 },
		{ "samples", "samples", "none", 97 },
		{ "bytes", "bytes", "bytes", 97 },
		{ "objects", "objects", "none", 97 },
		{ "lock_nanoseconds", "lock_nanoseconds", "nanoseconds", 97 },
	};
	write_text("in.folded", "app;main;work 3\napp;main;idle 1\n");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char args[1024];
		snprintf(args, sizeof(args), "convert -t flamebearer --sample-rate 97 --units %s %s",
			 cases[i].units, ts_path("in.folded"));
		json_t *fb = cli_json(args);
		cr_expect_str_eq(jstr(fb, "metadata.units"), cases[i].fb_units, "%s", cases[i].units);
		cr_expect_eq(jint(fb, "metadata.sampleRate"), cases[i].rate, "%s", cases[i].units);
		json_decref(fb);
		snprintf(args, sizeof(args), "diff -t flamebearer --units %s --sample-rate 97 %s %s",
			 cases[i].units, ts_path("in.folded"), ts_path("in.folded"));
		fb = cli_json(args);
		cr_expect_str_eq(jstr(fb, "metadata.units"), cases[i].fb_units, "diff %s", cases[i].units);
		cr_expect_eq(jint(fb, "metadata.sampleRate"), cases[i].rate, "diff %s", cases[i].units);
		json_decref(fb);
		snprintf(args, sizeof(args), "convert -t speedscope --units %s %s", cases[i].units,
			 ts_path("in.folded"));
		json_t *ss = cli_json(args);
		cr_expect_str_eq(json_string_value(json_object_get(
					 json_array_get(json_object_get(ss, "profiles"), 0), "unit")),
				 cases[i].ss_unit, "%s", cases[i].units);
		json_decref(ss);
	}
	/* Folded input counts samples: Pyroscope's default rate, speedscope "none". */
	json_t *fb = cli_json("convert -t flamebearer " ST_TEST_DATA "/formats/simpletree.folded");
	cr_expect_str_eq(jstr(fb, "metadata.units"), "samples");
	cr_expect_eq(jint(fb, "metadata.sampleRate"), 100);
	json_decref(fb);
}

/* A unit no reader knows is refused by convert, diff and record with the
 * list, and convert --help lists them. */
Test(units, unknown_units_rejected)
{
	write_text("in.folded", "a;b 1\n");
	const char *bad[] = { "nanosecond", "Samples", "", "<b>x</b>" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(ts_run("%s convert -t flamebearer --units '%s' -o %s %s 2> %s", CLI, bad[i],
				    ts_path("out"), ts_path("in.folded"), ts_path("err")),
			     64, "convert --units '%s'", bad[i]);
		cr_expect_eq(ts_run("grep -q \"unknown unit '.*' (known: samples .* nanoseconds\" %s",
				    ts_path("err")),
			     0, "the message names the known units");
		cr_expect_eq(access(ts_path("out"), F_OK), -1, "no output written");
		cr_expect_eq(ts_run("%s diff --units '%s' %s %s >/dev/null 2>&1", CLI, bad[i],
				    ts_path("in.folded"), ts_path("in.folded")),
			     64, "diff --units '%s'", bad[i]);
		/* record refuses it while parsing its options: no tracer runs. */
		cr_expect_eq(ts_run("%s record cpu --units '%s' -d 1 -- true >/dev/null 2>&1", CLI,
				    bad[i]),
			     64, "record --units '%s'", bad[i]);
	}
	cr_expect_eq(ts_run("%s convert --help | grep -q 'lock_nanoseconds, trace_samples'", CLI), 0);
}

/* Every string that reaches markup is escaped: title, units, names, in the
 * SVG and the HTML viewer, single and diff (library callers may pass any
 * units; the CLI refuses them earlier). */
Test(units, markup_escaped_everywhere)
{
	struct st_engine *e = ts_engine_no_merger(0);
	struct st_writer *w = st_writer_open(e);
	int64_t id = st_intern(e, "<x>&\"'", 6);
	cr_assert(id >= 0);
	uint32_t ids[1] = { (uint32_t)id };
	uint64_t v = 5;
	cr_assert_eq(st_writer_ingest(w, ids, 1, &v), 0);
	st_writer_close(w);
	cr_assert(st_flush(e));
	struct st_snap *s = st_snap_acquire(e);
	struct st_export_opts o;
	st_export_opts_init(&o);
	o.units = "u</title><script>alert(1)</script>";
	o.title = "t</title><script>alert(2)</script>";
	o.colors = "hot\"</script><script>alert(3)</script>";
	const char *kinds[] = { "svg", "html", "diff.svg", "diff.html" };
	for (size_t k = 0; k < 4; k++) {
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);
		int fmt = strstr(kinds[k], "svg") ? ST_FMT_SVG : ST_FMT_HTML;
		int rc = strncmp(kinds[k], "diff", 4) ? st_export(s, fmt, &o, f)
						       : st_export_diff(s, s, fmt, &o, f);
		fclose(f);
		cr_assert_eq(rc, 0);
		cr_expect_null(strstr(buf, "<script>alert"), "%s: markup injected", kinds[k]);
		cr_expect_null(strstr(buf, "<x>"), "%s: name unescaped", kinds[k]);
		if (fmt == ST_FMT_SVG)
			cr_expect_not_null(strstr(buf, "u&lt;/title&gt;&lt;script&gt;alert(1)"),
					   "%s: the units are shown, escaped", kinds[k]);
		free(buf);
	}
	st_snap_release(s);
	st_engine_destroy(e);
}

/* ------------------------------------------------------------ readers */

static const char *chromium_path(void)
{
	static char found[512];
	const char *env = getenv("CHROMIUM");
	if (env && *env)
		return access(env, X_OK) == 0 ? env : NULL;
	const char *cands[] = { "/usr/bin/chromium", "/usr/bin/chromium-browser",
				"/usr/lib/chromium/chromium" };
	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
		if (access(cands[i], X_OK) == 0) {
			snprintf(found, sizeof(found), "%s", cands[i]);
			return found;
		}
	return NULL;
}

static const char *need_chromium(void)
{
	const char *c = chromium_path();
	if (!c)
		cr_skip_test("chromium is not installed (scripts/deps.sh test installs Debian's "
			     "chromium; or set CHROMIUM=/path)");
	return c;
}

/* Run chromium headless on `page` (a file in ts_dir), the DOM after the
 * load and 3 s of virtual time in *dom (malloc'd). */
static char *chromium_dump(const char *chromium, const char *page)
{
	char dom[512], profile[512], pg[512];
	snprintf(dom, sizeof(dom), "%s", ts_path("dom.html"));
	snprintf(profile, sizeof(profile), "%s", ts_path("chromium-profile"));
	snprintf(pg, sizeof(pg), "%s", ts_path(page));
	int rc = ts_run("timeout 90 %s --headless --no-sandbox --disable-gpu --no-first-run "
			"--disable-extensions --disable-dev-shm-usage --allow-file-access-from-files "
			"--user-data-dir=%s --virtual-time-budget=3000 --dump-dom 'file://%s' "
			"> %s 2> %s.err",
			chromium, profile, pg, dom, dom);
	cr_assert_eq(rc, 0, "chromium failed (%d); see %s.err", rc, dom);
	size_t len;
	char *d = ts_read_file(dom, &len);
	cr_assert(d);
	return d;
}

/* The JSON the page wrote into <pre id="st-results">. */
static json_t *page_results(const char *dom)
{
	const char *tag = "<pre id=\"st-results\">";
	const char *a = strstr(dom, tag);
	cr_assert(a, "the page wrote no results (it did not run to the end)");
	a += strlen(tag);
	const char *b = strstr(a, "</pre>");
	cr_assert(b);
	json_error_t err;
	json_t *j = json_loadb(a, (size_t)(b - a), 0, &err);
	cr_assert(j, "results: %s", err.text);
	return j;
}

/* The cells of the table row named `name` in result r (NULL: none). */
static json_t *row(json_t *r, const char *name)
{
	size_t i;
	json_t *cells;
	json_array_foreach(json_object_get(r, "rows"), i, cells)
		if (!strcmp(json_string_value(json_array_get(cells, 0)) ?: "", name))
			return cells;
	return NULL;
}

static void expect_cell(json_t *r, const char *id, const char *name, size_t col, const char *want)
{
	json_t *cells = row(r, name);
	cr_expect(cells, "%s: no table row '%s'", id, name);
	if (!cells)
		return;
	const char *got = json_string_value(json_array_get(cells, col));
	cr_expect_str_eq(got ?: "(none)", want, "%s: row '%s' column %zu", id, name, col);
}

static void expect_clean(json_t *r, const char *id)
{
	json_t *e = json_object_get(r, "error");
	cr_expect(json_is_null(e), "%s: the UI failed: %s", id, json_string_value(e));
	size_t i;
	json_t *w;
	json_array_foreach(json_object_get(r, "warnings"), i, w)
		cr_expect_null(strstr(json_string_value(w), "Unsupported"), "%s: %s", id,
			       json_string_value(w));
}

/* Pyroscope's flamegraph component shows the capture's real CPU time for
 * perf cpu-clock input (4.5 s, not years), folded counts as samples at the
 * sample rate, bytes as bytes, and a diff with both sides' time. */
Test(readers, pyroscope_shows_real_time)
{
	const char *chromium = need_chromium();
	if (access(READERS "/node_modules/@pyroscope/flamegraph/package.json", R_OK) ||
	    access(READERS "/node_modules/.bin/esbuild", X_OK))
		cr_skip_test("npm packages missing: run `npm ci` in tests/readers "
			     "(scripts/deps.sh test does)");
	cr_assert_eq(ts_run("%s/node_modules/.bin/esbuild %s/page.jsx --bundle --log-level=error "
			    "--define:process.env.NODE_ENV='\"production\"' --outfile=%s",
			    READERS, READERS, ts_path("bundle.js")),
		     0, "esbuild");

	/* 300 + 150 samples of 10 ms cpu-clock = 4.5 s of CPU; after: 200 + 100
	 * = 3 s (diff reads folded: the unit is given). */
	const char *perf = perf_capture("cpu.perf", "cpu-clock:ppp", 10000000, 300, 150);
	cr_assert_eq(ts_run("%s convert -f perf -t flamebearer -o %s %s", CLI, ts_path("perf.json"),
			    perf),
		     0);
	cr_assert_eq(ts_run("%s convert -f perf -o %s %s", CLI, ts_path("before.folded"), perf), 0);
	perf = perf_capture("cpu2.perf", "cpu-clock:ppp", 10000000, 200, 100);
	cr_assert_eq(ts_run("%s convert -f perf -o %s %s", CLI, ts_path("after.folded"), perf), 0);
	cr_assert_eq(ts_run("%s diff -t flamebearer --units nanoseconds -o %s %s %s", CLI,
			    ts_path("diff.json"), ts_path("before.folded"), ts_path("after.folded")),
		     0);
	/* 250 + 150 samples at 50 Hz = 8 s; 2048 + 1024 bytes = 3 KB. */
	write_text("count.folded", "app;main;work 250\napp;main;idle 150\n");
	cr_assert_eq(ts_run("%s convert -t flamebearer --sample-rate 50 -o %s %s", CLI,
			    ts_path("count.json"), ts_path("count.folded")),
		     0);
	write_text("mem.folded", "app;alloc 2048\napp;free 1024\n");
	cr_assert_eq(ts_run("%s convert -t flamebearer --units bytes -o %s %s", CLI,
			    ts_path("bytes.json"), ts_path("mem.folded")),
		     0);

	FILE *f = fopen(ts_path("pyroscope.html"), "w");
	cr_assert(f);
	fputs("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
	      "<link rel=\"stylesheet\" href=\"bundle.css\"></head><body>\n"
	      "<script>window.ST_PROFILES = [\n",
	      f);
	const char *ids[] = { "perf", "diff", "count", "bytes" };
	for (size_t i = 0; i < 4; i++) {
		char name[32];
		snprintf(name, sizeof(name), "%s.json", ids[i]);
		size_t len;
		char *js = ts_read_file(ts_path(name), &len);
		cr_assert(js);
		/* Our JSON escapes '<' '>' '&': it cannot close the script. */
		fprintf(f, "%s{ id: '%s', profile: %s }", i ? "," : "", ids[i], js);
		free(js);
	}
	fputs("];</script>\n<script src=\"bundle.js\"></script></body></html>\n", f);
	fclose(f);

	char *dom = chromium_dump(chromium, "pyroscope.html");
	json_t *res = page_results(dom);
	free(dom);

	json_t *r = json_object_get(res, "perf");
	expect_clean(r, "perf");
	expect_cell(r, "perf", "total", 2, "4.50 seconds");
	expect_cell(r, "perf", "work", 1, "3.00 seconds");
	expect_cell(r, "perf", "idle", 1, "1.50 seconds");
	expect_cell(r, "perf", "main", 2, "4.50 seconds");
	const char *tip = json_string_value(json_object_get(r, "tooltip"));
	cr_expect(tip && strstr(tip, "CPU Time") && strstr(tip, "4.50 seconds"), "perf tooltip: %s",
		  tip);

	r = json_object_get(res, "diff");
	expect_clean(r, "diff");
	expect_cell(r, "diff", "work", 1, "66.67 %");
	expect_cell(r, "diff", "work", 2, "66.67 %");
	tip = json_string_value(json_object_get(r, "tooltip"));
	cr_expect(tip && strstr(tip, "4.50 seconds") && strstr(tip, "3.00 seconds"),
		  "diff tooltip shows both sides' time: %s", tip);

	r = json_object_get(res, "count");
	expect_clean(r, "count");
	expect_cell(r, "count", "total", 2, "8.00 seconds");
	expect_cell(r, "count", "work", 1, "5.00 seconds");
	expect_cell(r, "count", "idle", 1, "3.00 seconds");

	r = json_object_get(res, "bytes");
	expect_clean(r, "bytes");
	expect_cell(r, "bytes", "total", 2, "3.00 KB");
	expect_cell(r, "bytes", "alloc", 1, "2.00 KB");
	json_decref(res);
}

/* Our HTML viewer draws its flamegraph whatever the URL fragment holds:
 * text that is not percent-encoding (taken as typed), an unknown view, a
 * zoom on no frame, keys that are Object.prototype's, a bad regexp, a
 * fragment of 200 KB.  A well-formed fragment still works. */
Test(readers, html_viewer_survives_any_fragment)
{
	const char *chromium = need_chromium();
	write_text("in.folded", "app;100% 3\napp;work;constructor 1\napp;__proto__ 2\n");
	cr_assert_eq(ts_run("%s convert -t html -o %s %s", CLI, ts_path("viewer.html"),
			    ts_path("in.folded")),
		     0);
	static const struct {
		const char *frag; /* the fragment ('&' becomes "&amp;" in the src attribute) */
		const char *matched; /* "Matched: ..." expected, or NULL: any */
		const char *zoom;    /* data-zoom of the drawn graph */
	} cases[] = {
		{ "search=100%", "Matched: 50.0%", "all" },
		{ "search=%E0%A4%A", "Matched: 0.0%", "all" },
		{ "zoom=garbage", NULL, "all" },
		{ "view=bogus&zoom=%", NULL, "all" },
		{ "view=__proto__&__proto__=x&constructor=1", NULL, "all" },
		{ "view=toString&fn=%zz&search=(", "bad regexp", "all" },
		{ "%", NULL, "all" },
		{ "=&&==&search", NULL, "all" },
		{ "LONG", NULL, "all" },
		{ "zoom=work&search=constructor", "Matched: 100.0%", "work" },
		{ "search=%5F%5Fproto", "Matched: 33.3%", "all" },
	};
	const size_t n = sizeof(cases) / sizeof(cases[0]);
	FILE *f = fopen(ts_path("harness.html"), "w");
	cr_assert(f);
	fputs("<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body>\n", f);
	for (size_t i = 0; i < n; i++) {
		fputs("<iframe width=\"1000\" height=\"300\" src=\"viewer.html#", f);
		if (!strcmp(cases[i].frag, "LONG")) {
			fputs("search=", f);
			for (int k = 0; k < 200000 / 3; k++)
				fputs("%A4", f);
			fputs("a", f);
		} else {
			for (const char *c = cases[i].frag; *c; c++) {
				if (*c == '&')
					fputs("&amp;", f);
				else
					putc(*c, f);
			}
		}
		fputs("\"></iframe>\n", f);
	}
	/* After every frame loaded: what each one shows. */
	fputs("<script>\nwindow.addEventListener('load', function () {\n"
	      "  var out = [];\n"
	      "  document.querySelectorAll('iframe').forEach(function (f) {\n"
	      "    var r = {};\n"
	      "    try {\n"
	      "      var d = f.contentDocument, fg = d.getElementById('fg');\n"
	      "      r.hash = f.contentWindow.location.hash.length;\n"
	      "      r.frames = d.querySelectorAll('#fg .fr').length;\n"
	      "      r.api = !!f.contentWindow.shardtrie;\n"
	      "      r.shown = fg ? d.getElementById('view-flamegraph').style.display !== 'none' : false;\n"
	      "      r.zoom = fg ? fg.getAttribute('data-zoom') : null;\n"
	      "      r.matched = d.getElementById('matched') ? d.getElementById('matched').textContent : null;\n"
	      "      r.rows = d.querySelectorAll('#table tr').length;\n"
	      "    } catch (e) { r.error = String(e); }\n"
	      "    out.push(r);\n"
	      "  });\n"
	      "  var pre = document.createElement('pre'); pre.id = 'st-results';\n"
	      "  pre.textContent = JSON.stringify(out).replace(/[<>&]/g, function (c) {\n"
	      "    return '\\\\u' + ('000' + c.charCodeAt(0).toString(16)).slice(-4); });\n"
	      "  document.body.appendChild(pre);\n"
	      "});\n</script></body></html>\n",
	      f);
	fclose(f);

	char *dom = chromium_dump(chromium, "harness.html");
	json_t *res = page_results(dom);
	free(dom);
	cr_assert_eq(json_array_size(res), n);
	for (size_t i = 0; i < n; i++) {
		json_t *r = json_array_get(res, i);
		const char *frag = cases[i].frag;
		cr_expect_null(json_object_get(r, "error"), "#%s: %s", frag,
			       json_string_value(json_object_get(r, "error")));
		cr_expect(json_is_true(json_object_get(r, "api")), "#%s: the viewer's script stopped",
			  frag);
		/* all, app, 100%, __proto__, work, constructor: 6 frames (fewer
		 * when zoomed: all and app stay as ancestors). */
		json_int_t frames = json_integer_value(json_object_get(r, "frames"));
		cr_expect(frames >= 4, "#%s: %lld frames drawn", frag, (long long)frames);
		cr_expect(json_is_true(json_object_get(r, "shown")), "#%s: flamegraph hidden", frag);
		cr_expect_eq(json_integer_value(json_object_get(r, "rows")), 1 + 5,
			     "#%s: the table (header + 5 functions)", frag);
		cr_expect_str_eq(json_string_value(json_object_get(r, "zoom")) ?: "(none)",
				 cases[i].zoom, "#%s: zoom", frag);
		if (cases[i].matched)
			cr_expect_str_eq(json_string_value(json_object_get(r, "matched")) ?: "(none)",
					 cases[i].matched, "#%s", frag);
	}
	cr_expect_gt(json_integer_value(json_object_get(json_array_get(res, 8), "hash")), 200000,
		     "the long fragment reached the viewer whole");
	json_decref(res);
}
