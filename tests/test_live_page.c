/* SPDX-License-Identifier: MIT */
/*
 * test_live_page.c - the live page (live/page/) in headless Chromium,
 * driven through the DevTools protocol (support/live_client.c) against a
 * real `shardtrie serve -` fed by this test.  Skipped, with the reason,
 * where Chromium is not installed (`scripts/deps.sh test` installs it).
 * Every wait polls the page or /api/status (bounded), never a sleep.
 *
 * The page says what it shows on document.body.dataset: events (the
 * EventSource URL), view (its metric/window parameters), shown/received
 * (versions), total (the shown tree's total), order, conn, polls.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/live_client.h"

TestSuite(live_page, .init = ts_dir_init, .fini = ts_dir_fini, .timeout = 90);

#define NO_CHROMIUM "chromium (Debian chromium, `scripts/deps.sh test`) not installed: the page is not run"
#define DS "document.body.dataset."
#define CRUMBS "document.getElementById('crumbs').textContent"
/* The frames drawn, as sorted "depth:label:total" joined by '|'. */
#define FRAMES                                                                                     \
	"[...document.querySelectorAll('#chart .f')].map(e => (parseInt(e.style.top) / 18) + ':' + " \
	"e.textContent + ':' + e.dataset.t).sort().join('|')"
/* The field order control's fields, in order. */
#define FIELDS "[...document.querySelectorAll('#fields .field span')].map(e => e.textContent).join()"

static void key(struct cdp *c, const char *k)
{
	char js[160];
	snprintf(js, sizeof(js), "document.dispatchEvent(new KeyboardEvent('keydown', {key: '%s'}))", k);
	json_decref(cdp_eval(c, js));
}

/* Click the frame labelled name (the first one). */
static void click_frame(struct cdp *c, const char *name)
{
	char js[256];
	snprintf(js, sizeof(js), "[...document.querySelectorAll('#chart .f')].find(e => e.textContent === '%s').click()",
		 name);
	json_decref(cdp_eval(c, js));
}

/* Choose value in the <select id=id> as a user does (a change event). */
static void choose(struct cdp *c, const char *id, const char *value)
{
	char js[256];
	snprintf(js, sizeof(js),
		 "(() => { const s = document.getElementById('%s'); s.value = '%s'; "
		 "s.dispatchEvent(new Event('change')); return s.value; })()",
		 id, value);
	char *got = cdp_str(c, js);
	cr_assert_str_eq(got, value, "#%s has no option %s", id, value);
	free(got);
}

static void expect_str(struct cdp *c, const char *expr, const char *want)
{
	char *got = cdp_str(c, expr);
	cr_expect_str_eq(got, want, "%s", expr);
	free(got);
}

/* The server's own answer for a window: /api/snapshot's root total. */
static uint64_t server_total(const struct srv *s, const char *query)
{
	char path[256];
	snprintf(path, sizeof(path), "/api/snapshot?%s", query);
	struct resp r = http(s, "", path);
	cr_assert_eq(r.status, 200, "%s: %d %s", path, r.status, r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	cr_assert(json_is_integer(json_object_get(j, "t")), "%s: no total in %s", path, r.body);
	uint64_t t = (uint64_t)json_integer_value(json_object_get(j, "t"));
	json_decref(j);
	resp_free(&r);
	return t;
}

/* Wait until the page shows the view `params` with total t. */
static void wait_view(struct cdp *c, const char *params, uint64_t t)
{
	char js[256];
	snprintf(js, sizeof(js), DS "view === '%s' && " DS "total === '%llu'", params, (unsigned long long)t);
	cdp_wait(c, js);
}

Test(live_page, updates_keeps_zoom_and_search_names_stay_text, .timeout = 90)
{
	if (!have_chromium())
		cr_skip_test(NO_CHROMIUM);
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
	click_frame(&c, "a");
	json_decref(cdp_eval(&c, "(() => { const i = document.getElementById('search'); i.value = 'z'; "
				 "i.dispatchEvent(new Event('input')); })()"));
	feed(&s, "main;a;z 10\n");
	wait_status(&s, "total", 15);
	cdp_wait(&c, DS "total === '15'");
	expect_str(&c, CRUMBS, "zoom: main \u203a a");
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
	key(&c, " ");
	feed(&s, "main;a;z 5\n");
	wait_status(&s, "total", 20);
	char want[128];
	snprintf(want, sizeof(want), DS "received === '%llu'", (unsigned long long)status_u(&s, "version"));
	cdp_wait(&c, want);
	st = cdp_str(&c, PAGE_STATUS);
	cr_expect(strstr(st, "paused") && strstr(st, "total 15"), "paused page changed: %s", st);
	free(st);
	key(&c, " ");
	cdp_wait(&c, DS "total === '20'");

	/* The zoomed node gone (a confirmed reset): the nearest ancestor that exists. */
	json_decref(cdp_eval(&c, "document.getElementById('reset').click(); "
				 "document.getElementById('reset-yes').click()"));
	wait_status_eq(&s, "total", 0);
	feed(&s, "main;q 1\n");
	wait_status(&s, "total", 1);
	cdp_wait(&c, DS "total === '1'");
	expect_str(&c, CRUMBS, "zoom: main");
	cdp_close(&c);
	srv_stop(&s);
}

/*
 * `r` sets a mark (nothing cleared) and shows what came after it; the
 * window selector shows what the server answers for each window; the zoom
 * survives the switches (the nearest ancestor while the node is not in the
 * window, the node again when it is).
 */
Test(live_page, mark_and_window_selector, .timeout = 90)
{
	if (!have_chromium())
		cr_skip_test(NO_CHROMIUM);
	struct srv s;
	srv_start(&s, "", true);
	feed(&s, "main;a;b 3\nmain;c 2\n");
	wait_status(&s, "total", 5);
	struct cdp c;
	cdp_open(&c, s.url);
	cdp_wait(&c, DS "total === '5'");
	click_frame(&c, "b");
	expect_str(&c, CRUMBS, "zoom: main \u203a a \u203a b");

	key(&c, "r");
	wait_status(&s, "marks", 1);
	cr_expect_eq(status_u(&s, "total"), 5, "a mark cleared data");
	cdp_wait(&c, DS "view === 'window=mark' && " DS "total === '0'");
	expect_str(&c, "document.getElementById('window').value", "mark");
	feed(&s, "main;x 4\nmain;a;y 2\n");
	wait_status(&s, "total", 11);
	cr_expect_eq(server_total(&s, "window=mark"), 6);
	wait_view(&c, "window=mark", 6);
	/* b has nothing since the mark: its nearest ancestor, a, is zoomed. */
	expect_str(&c, CRUMBS, "zoom: main \u203a a");

	/* Since start: everything, and b is back. */
	choose(&c, "window", "all");
	wait_view(&c, "", server_total(&s, "window=all"));
	expect_str(&c, DS "total", "11");
	expect_str(&c, CRUMBS, "zoom: main \u203a a \u203a b");
	cr_expect_eq(status_u(&s, "total"), 11, "a window switch changed the data");

	/* Since the mark again, unzoomed: exactly the frames fed after it. */
	key(&c, "Escape");
	choose(&c, "window", "mark");
	wait_view(&c, "window=mark", 6);
	expect_str(&c, FRAMES, "0:all:6|1:main:6|2:a:2|2:x:4|3:y:2");

	/* The last 60 s: what the server answers for it. */
	choose(&c, "window", "60s");
	wait_view(&c, "window=60s", server_total(&s, "window=60s"));
	expect_str(&c, DS "events", "events?window=60s");
	cdp_close(&c);
	srv_stop(&s);
}

/*
 * The metric selector lists the server's metrics (serve has one, named by
 * -m: a hostile name here, which must stay text); choosing one reopens the
 * stream with metric=NAME, keeps zoom and search and clears nothing.
 */
Test(live_page, metric_selector, .timeout = 90)
{
	if (!have_chromium())
		cr_skip_test(NO_CHROMIUM);
	struct srv s;
	srv_start(&s, "-m '<i>dur_ns</i>'", true);
	feed(&s, "main;a;b 7\nmain;c 1\n");
	wait_status(&s, "total", 8);
	struct cdp c;
	cdp_open(&c, s.url);
	cdp_wait(&c, DS "total === '8' && document.getElementById('metric').options.length > 0");
	json_t *st = status_json(&s);
	char *names = json_dumps(json_object_get(st, "metrics"), JSON_COMPACT);
	json_decref(st);
	expect_str(&c, "JSON.stringify([...document.getElementById('metric').options].map(o => o.textContent))",
		   names);
	cr_expect_str_eq(names, "[\"<i>dur_ns</i>\"]");
	free(names);
	json_t *v = cdp_eval(&c, "document.querySelectorAll('i').length");
	cr_expect_eq(json_integer_value(v), 0, "a metric name became markup");
	json_decref(v);

	click_frame(&c, "a");
	json_decref(cdp_eval(&c, "(() => { const i = document.getElementById('search'); i.value = 'b'; "
				 "i.dispatchEvent(new Event('input')); })()"));
	choose(&c, "metric", "<i>dur_ns</i>");
	wait_view(&c, "metric=%3Ci%3Edur_ns%3C%2Fi%3E", 8);
	expect_str(&c, DS "events", "events?metric=%3Ci%3Edur_ns%3C%2Fi%3E");
	expect_str(&c, CRUMBS, "zoom: main \u203a a");
	char *text = cdp_str(&c, PAGE_STATUS);
	cr_expect(strstr(text, "matched 7 (87.50%)") && strstr(text, "<i>dur_ns</i>"), "status: %s", text);
	free(text);
	cr_expect_eq(status_u(&s, "total"), 8, "a metric switch changed the data");
	cdp_close(&c);
	srv_stop(&s);
}

/*
 * serve has no field order: the control stays hidden.  Reset discards data,
 * so it takes a second click (nothing is posted before it); the live
 * figures come from /api/status; a server gone shows as such.
 */
Test(live_page, order_hidden_reset_confirmed_figures, .timeout = 90)
{
	if (!have_chromium())
		cr_skip_test(NO_CHROMIUM);
	struct srv s;
	srv_start(&s, "", true);
	feed(&s, "main;a 3\n");
	wait_status(&s, "total", 3);
	struct cdp c;
	cdp_open(&c, s.url);
	cdp_wait(&c, DS "total === '3' && " DS "order === 'none'");
	expect_str(&c, "String(document.getElementById('order').hidden && "
		       "document.getElementById('order').offsetHeight === 0)", "true");

	/* Every POST the page makes, recorded. */
	json_decref(cdp_eval(&c, "window.posts = []; { const f = window.fetch; window.fetch = function (u, o) { "
				 "if (o && o.method === 'POST') posts.push(String(u)); "
				 "return f.apply(this, arguments); }; }"));
	json_decref(cdp_eval(&c, "document.getElementById('reset').click()"));
	expect_str(&c, "JSON.stringify(posts) + document.getElementById('reset-yes').hidden", "[]false");
	key(&c, "Escape");
	expect_str(&c, "String(document.getElementById('reset-yes').hidden)", "true");
	json_decref(cdp_eval(&c, "document.getElementById('reset').click()"));
	json_decref(cdp_eval(&c, "document.getElementById('reset-no').click()"));
	expect_str(&c, "JSON.stringify(posts)", "[]");
	cr_expect_eq(status_u(&s, "total"), 3, "reset without confirmation");
	json_decref(cdp_eval(&c, "document.getElementById('reset').click(); "
				 "document.getElementById('reset-yes').click()"));
	expect_str(&c, "JSON.stringify(posts)", "[\"reset\"]");
	wait_status_eq(&s, "total", 0);
	cdp_wait(&c, DS "total === '0'");

	/* Live figures: a rate from two polls, the version, the drops. */
	cdp_wait(&c, DS "polls >= 2 && document.getElementById('figures').textContent.includes('samples/s')");
	char *f = cdp_str(&c, "document.getElementById('figures').textContent");
	cr_expect(strstr(f, "dropped 0") && strstr(f, "snapshot "), "figures: %s", f);
	free(f);
	expect_str(&c, "document.getElementById('conn').textContent", "live");

	/* The server gone: the page says so (EventSource retries on its own). */
	srv_stop(&s);
	cdp_wait(&c, DS "conn !== 'open' && /reconnecting|unreachable|disconnected/"
		     ".test(document.getElementById('conn').textContent)");
	cdp_close(&c);
}

/*
 * The field order control with fields (`record io --serve` has them; it
 * needs root and BPF, so /order is answered here inside the page, by a
 * fetch installed before the page's script runs: the page's side only, the
 * server's /order is tested in test_live.c).  The fields show as text, move
 * left, and apply POSTs {"fields":[...]}; a 400's reason is shown.
 */
Test(live_page, order_control_with_fields, .timeout = 90)
{
	if (!have_chromium())
		cr_skip_test(NO_CHROMIUM);
	struct srv s;
	srv_start(&s, "", true);
	feed(&s, "main;a 3\n");
	wait_status(&s, "total", 3);
	struct cdp c;
	cdp_open(&c, s.url);
	cdp_wait(&c, DS "order === 'none'");
	const char *stub =
		"window.posted = []; { const f = window.fetch; window.fetch = function (u, o) { "
		"if (!String(u).startsWith('order')) return f.apply(this, arguments); "
		"if (!o || o.method !== 'POST') return Promise.resolve(new Response("
		"'{\"fields\":[\"pid\",\"comm\",\"<b>file</b>\"]}', {status: 200})); "
		"posted.push(o.body); return Promise.resolve(posted.length === 1 ? "
		"new Response('bad request: unknown field \"<b>file</b>\"\\n', {status: 400}) : "
		"new Response(o.body, {status: 200})); }; }";
	json_decref(cdp_call(&c, "Page.enable", NULL));
	json_decref(cdp_call(&c, "Page.addScriptToEvaluateOnNewDocument", json_pack("{s:s}", "source", stub)));
	json_decref(cdp_call(&c, "Page.reload", NULL));
	cdp_wait(&c, DS "order === 'fields' && " DS "total === '3'");
	expect_str(&c, FIELDS, "pid,comm,<b>file</b>");
	expect_str(&c, "String(document.getElementById('order').offsetHeight > 0 && "
		       "document.querySelectorAll('b').length === 0)", "true");
	/* comm left of pid, then apply: the server says no. */
	json_decref(cdp_eval(&c, "document.querySelectorAll('#fields .field button')[1].click()"));
	expect_str(&c, FIELDS, "comm,pid,<b>file</b>");
	json_decref(cdp_eval(&c, "document.getElementById('order-apply').click()"));
	cdp_wait(&c, "document.getElementById('order-why').textContent !== ''");
	expect_str(&c, "document.getElementById('order-why').textContent",
		   "400 bad request: unknown field \"<b>file</b>\"");
	expect_str(&c, "JSON.stringify(posted)", "[\"{\\\"fields\\\":[\\\"comm\\\",\\\"pid\\\",\\\"<b>file</b>\\\"]}\"]");
	/* Applied again, accepted: the order shown is the server's answer. */
	json_decref(cdp_eval(&c, "document.getElementById('order-apply').click()"));
	cdp_wait(&c, "posted.length === 2 && document.getElementById('note').textContent.startsWith('field order')");
	expect_str(&c, "document.getElementById('order-why').textContent", "");
	expect_str(&c, FIELDS, "comm,pid,<b>file</b>");
	cdp_close(&c);
	srv_stop(&s);
}

/*
 * Frames too narrow for a label are painted on a canvas, not made elements
 * (a tree of many thin frames stays cheap): they are still there for the
 * pointer, whose tooltip names one (as text) and whose click zooms into it.
 */
Test(live_page, thin_frames_painted_hover_and_click, .timeout = 90)
{
	if (!have_chromium())
		cr_skip_test(NO_CHROMIUM);
	struct srv s;
	srv_start(&s, "", true);
	char *text = malloc(300 * 32), *p = text;
	for (int i = 0; i < 300; i++)
		p += sprintf(p, "main;<f%03d> 1\n", i);
	feed(&s, text);
	free(text);
	wait_status(&s, "total", 300);
	struct cdp c;
	cdp_open(&c, s.url);
	cdp_wait(&c, DS "total === '300'");
	/* all, main: elements; the 300 leaves (about 4 px each): painted. */
	expect_str(&c, DS "boxes + ' ' + " DS "elements", "302 2");
	json_t *v = cdp_eval(&c, "(() => { const r = document.getElementById('chart').getBoundingClientRect(); "
				 "const at = {clientX: r.left + r.width / 2, clientY: r.top + 2 * 18 + 9, bubbles: true}; "
				 "const t = document.getElementById('thin'); "
				 "t.dispatchEvent(new MouseEvent('mousemove', at)); "
				 "const tip = document.getElementById('tip'); const name = tip.textContent.split('\\n')[0]; "
				 "t.dispatchEvent(new MouseEvent('click', at)); "
				 "return [tip.hidden, tip.textContent, name]; })()");
	cr_assert(json_is_array(v) && json_array_size(v) == 3);
	cr_expect(json_is_false(json_array_get(v, 0)), "no tooltip over a painted frame");
	const char *tip = json_string_value(json_array_get(v, 1)), *name = json_string_value(json_array_get(v, 2));
	cr_expect(tip && !strncmp(tip, "<f", 2) && strstr(tip, "\ntotal 1 (0.33%), self 1"), "tooltip: %s", tip);
	char want[64];
	snprintf(want, sizeof(want), "zoom: main \u203a %s", name ? name : "?");
	expect_str(&c, CRUMBS, want);
	/* Zoomed, the leaf fills the width: an element with its name as text. */
	snprintf(want, sizeof(want), "%s:1", name ? name : "?");
	expect_str(&c, "(() => { const f = [...document.querySelectorAll('#chart .f')].pop(); "
		       "return f.textContent + ':' + f.dataset.t; })()", want);
	json_decref(v);
	cdp_close(&c);
	srv_stop(&s);
}

/* A view the server refuses (400): its reason is shown, the stream closed. */
Test(live_page, refused_view_reason_shown, .timeout = 90)
{
	if (!have_chromium())
		cr_skip_test(NO_CHROMIUM);
	struct srv s;
	srv_start(&s, "", true);
	char url[200];
	snprintf(url, sizeof(url), "%s?window=99999999s", s.url);
	struct cdp c;
	cdp_open(&c, url);
	cdp_wait(&c, "document.getElementById('note').textContent.startsWith('events: 400 ')");
	expect_str(&c, DS "conn + ' ' + document.getElementById('conn').textContent", "closed disconnected");
	expect_str(&c, DS "events", "events?window=99999999s");
	cdp_close(&c);
	srv_stop(&s);
}

/*
 * `serve --push` to a receiver that always fails (503): with a queue of
 * one interval, every new interval drops the one before it.  The page
 * shows the pusher's figures from /api/status's "push" object: the
 * dropped count /api/status says, in the warning colour, the failure, and
 * never a credential.
 */
#include "support/pyroscope_rx.h"

Test(live_page, push_figures_show_dropped_intervals, .timeout = 90)
{
	if (!have_chromium())
		cr_skip_test(NO_CHROMIUM);
	struct prx *rx = prx_start(0);
	cr_assert(rx);
	struct prx_act fail[400];
	for (int i = 0; i < 400; i++)
		fail[i] = (struct prx_act){ .status = 503, .echo_headers = true };
	prx_script(rx, fail, 400);
	setenv("SHARDTRIE_PUSH_TOKEN", "pAg3-s3cr3t", 1);
	char args[256];
	snprintf(args, sizeof(args),
		 "--push http://127.0.0.1:%u --push-interval 200ms --push-queue 1 --push-format folded",
		 prx_port(rx));
	struct srv s;
	srv_start(&s, args, true);
	/* three intervals with samples: the second and third each drop one */
	uint64_t fed = 0;
	json_t *j = NULL, *p = NULL;
	for (unsigned k = 0; k < 3; k++) {
		char line[64];
		snprintf(line, sizeof(line), "main;part%u %u\n", k, k + 1);
		feed(&s, line);
		fed += k + 1;
		wait_status(&s, "total", fed);
		for (int i = 0; i < 200; i++, pause_ms(10)) { /* a curl each: ~10 s */
			json_decref(j);
			j = status_json(&s);
			p = json_object_get(j, "push");
			if (json_integer_value(json_object_get(p, "intervals")) > k)
				break;
		}
		cr_assert_gt(json_integer_value(json_object_get(p, "intervals")), k, "no interval %u", k);
	}
	long long dropped = json_integer_value(json_object_get(p, "dropped"));
	long long dvalue = json_integer_value(json_object_get(p, "dropped_value"));
	cr_assert_geq(dropped, 2, "dropped %lld", dropped);
	json_decref(j);

	struct cdp c;
	cdp_open(&c, s.url);
	char js[256], want[96];
	snprintf(js, sizeof(js), DS "pushDropped === '%lld'", dropped);
	cdp_wait(&c, js);
	snprintf(want, sizeof(want), "%lld dropped (%lld)", dropped, dvalue);
	expect_str(&c, "document.getElementById('push-dropped').textContent", want);
	expect_str(&c, "document.getElementById('push-dropped').className", "warn");
	expect_str(&c, "getComputedStyle(document.getElementById('push-dropped')).color",
		   "rgb(204, 34, 34)");
	expect_str(&c, "String(document.getElementById('push').offsetHeight > 0)", "true");
	cdp_wait(&c, "document.getElementById('push').textContent.includes('failing: HTTP 503')");
	char *t = cdp_str(&c, "document.getElementById('push').textContent + "
			      "document.getElementById('push').title");
	cr_expect(strstr(t, "push http://127.0.0.1:") && strstr(t, "0 sent"), "push: %s", t);
	cr_expect(!strstr(t, "s3cr3t"), "a credential on the page: %s", t);
	free(t);
	cdp_close(&c);
	srv_stop(&s);
	prx_stop(rx);
}
