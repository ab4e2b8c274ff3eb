/* SPDX-License-Identifier: MIT */
/*
 * test_live_page.c - the live page (live/page/) in headless Chromium,
 * driven through the DevTools protocol (support/live_client.c) against a
 * real `shardtrie serve -` fed by this test.  Skipped, with the reason,
 * where Chromium is not installed (`scripts/deps.sh test` installs it).
 * Every wait polls the page or /api/status (bounded), never a sleep.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/live_client.h"

TestSuite(live_page, .init = ts_dir_init, .fini = ts_dir_fini, .timeout = 90);

#define PAGE_STATUS "document.getElementById('status').textContent"

Test(live_page, updates_keeps_zoom_and_search_names_stay_text, .timeout = 90)
{
	if (!have_chromium())
		cr_skip_test("chromium (Debian chromium, `scripts/deps.sh test`) not installed: the page "
			     "is not run");
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
	cdp_eval(&c, "[...document.querySelectorAll('#chart .f')].find(e => e.textContent === 'a').click()");
	cdp_eval(&c, "(() => { const i = document.getElementById('search'); i.value = 'z'; "
		     "i.dispatchEvent(new Event('input')); })()");
	feed(&s, "main;a;z 10\n");
	wait_status(&s, "total", 15);
	cdp_wait(&c, "document.getElementById('status').textContent.includes('total 15')");
	st = cdp_str(&c, "document.getElementById('crumbs').textContent");
	cr_expect_str_eq(st, "zoom: main \u203a a", "zoom lost across an update");
	free(st);
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
	cdp_eval(&c, "document.dispatchEvent(new KeyboardEvent('keydown', {key: ' '}))");
	feed(&s, "main;a;z 5\n");
	wait_status(&s, "total", 20);
	char want[128];
	snprintf(want, sizeof(want), "document.body.dataset.received === '%llu'",
		 (unsigned long long)status_u(&s, "version"));
	cdp_wait(&c, want);
	st = cdp_str(&c, PAGE_STATUS);
	cr_expect(strstr(st, "paused") && strstr(st, "total 15"), "paused page changed: %s", st);
	free(st);
	cdp_eval(&c, "document.dispatchEvent(new KeyboardEvent('keydown', {key: ' '}))");
	cdp_wait(&c, "document.getElementById('status').textContent.includes('total 20')");

	/* The zoomed node gone (a reset): the nearest ancestor that exists. */
	cdp_eval(&c, "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'r'}))");
	wait_status(&s, "total", 0);
	feed(&s, "main;q 1\n");
	wait_status(&s, "total", 1);
	cdp_wait(&c, "document.getElementById('status').textContent.includes('total 1,') || "
		     "document.getElementById('status').textContent.endsWith('total 1')");
	st = cdp_str(&c, "document.getElementById('crumbs').textContent");
	cr_expect_str_eq(st, "zoom: main", "zoom did not fall back to the nearest ancestor");
	free(st);
	cdp_close(&c);
	srv_stop(&s);
}
