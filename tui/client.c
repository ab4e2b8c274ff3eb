/* SPDX-License-Identifier: MIT */
/*
 * client.c - the terminal view's client of a live server (libcurl).
 *
 * One thread runs a curl multi handle with two transfers: the /events
 * stream (Server-Sent Events, parsed here: `id:`, `data:` lines joined,
 * a blank line ends an event, `:` comments skipped) and /api/status,
 * fetched once a second.  It keeps only the newest event and the newest
 * status (older ones not yet taken are freed): a view that draws slowly
 * skips snapshots, it never makes the stream (or the server) wait.  Each
 * arrival writes one byte to wake_fd.  A stream that ends or fails is
 * reopened a second later; its state (connected, HTTP error and reason) is
 * kept for the status line.
 *
 * Invariants: everything under mu is shared with the caller's thread; the
 * curl handles and the SSE parser belong to the client thread alone.  An
 * event larger than TUI_MAX_EVENT is dropped whole (counted in the state),
 * never buffered further.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tui.h"

#define TUI_MAX_EVENT (256u << 20)
#define TUI_MAX_STATUS (1u << 20)

struct buf {
	char *p;
	size_t len, cap;
};

/* Append n bytes (and keep a NUL after them): false past max or no memory. */
static bool buf_add(struct buf *b, const char *s, size_t n, size_t max)
{
	if (b->len + n + 1 > max)
		return false;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return false;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return true;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	*b = (struct buf){ 0 };
}

struct tui_client {
	char *base;           /* ends with '/' */
	struct curl_slist *hdrs;
	int wake_fd;
	pthread_t thr;
	CURLM *multi;

	pthread_mutex_t mu; /* protects what follows, up to the thread's own */
	bool stop, restart;
	char window[32];
	char metric[64]; /* "" = the server's default */
	char *event, *status; /* newest, not taken yet */
	char state[256];

	/* the client thread's own */
	CURL *sse, *st;
	struct buf line, data, stbody, errbody;
	bool overflow;  /* the event being read is too large: skip to its end */
	bool skip_line; /* inside a line longer than the limit: skip to its end */
	uint64_t dropped;
	uint64_t retry_at, status_at;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void wake(struct tui_client *c)
{
	if (write(c->wake_fd, "", 1) < 0) { /* full pipe: a wake is pending anyway */
	}
}

static void set_state(struct tui_client *c, const char *a, const char *b)
{
	pthread_mutex_lock(&c->mu);
	snprintf(c->state, sizeof(c->state), "%s%s", a, b);
	pthread_mutex_unlock(&c->mu);
	wake(c);
}

/* ------------------------------------------------------------------ SSE */

/* The event being read is too large: it goes whole, counted. */
static void drop_event(struct tui_client *c)
{
	if (c->overflow)
		return;
	c->overflow = true;
	c->dropped++;
	buf_free(&c->data);
	char why[64];
	snprintf(why, sizeof(why), "%llu", (unsigned long long)c->dropped);
	set_state(c, "events too large, dropped: ", why);
}

static void sse_line(struct tui_client *c, const char *l, size_t n)
{
	if (!n) { /* the event ends */
		if (c->data.len && !c->overflow) {
			pthread_mutex_lock(&c->mu);
			free(c->event);
			c->event = c->data.p; /* the buffer changes hands */
			pthread_mutex_unlock(&c->mu);
			c->data = (struct buf){ 0 };
			wake(c);
		}
		c->data.len = 0;
		c->overflow = false;
		return;
	}
	if (n >= 5 && !memcmp(l, "data:", 5) && !c->overflow) {
		l += 5, n -= 5;
		if (n && *l == ' ')
			l++, n--;
		if ((c->data.len && !buf_add(&c->data, "\n", 1, TUI_MAX_EVENT)) ||
		    !buf_add(&c->data, l, n, TUI_MAX_EVENT))
			drop_event(c);
	}
	/* id:, event:, retry: and comments: nothing to do */
}

static size_t sse_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct tui_client *c = arg;
	size_t n = size * nmemb;
	long code = 0;
	curl_easy_getinfo(c->sse, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200) { /* an error: keep its first line for the state */
		buf_add(&c->errbody, p, n, 512);
		return n;
	}
	size_t done = 0;
	while (done < n) {
		const char *nl = memchr(p + done, '\n', n - done);
		size_t k = nl ? (size_t)(nl - (p + done)) : n - done;
		if (!c->skip_line && !buf_add(&c->line, p + done, k, TUI_MAX_EVENT)) {
			/* a line past the limit: skipped, and its event goes */
			c->line.len = 0;
			c->skip_line = true;
			drop_event(c);
		}
		done += k;
		if (!nl)
			break;
		done++; /* the '\n' */
		if (c->skip_line) {
			c->skip_line = false;
			continue;
		}
		size_t ll = c->line.len;
		if (ll && c->line.p[ll - 1] == '\r')
			ll--;
		sse_line(c, c->line.p ? c->line.p : "", ll);
		c->line.len = 0;
	}
	return n;
}

static size_t body_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t n = size * nmemb;
	return buf_add(b, p, n, TUI_MAX_STATUS) ? n : 0;
}

static CURL *easy(struct tui_client *c, const char *path)
{
	CURL *h = curl_easy_init();
	if (!h)
		return NULL;
	size_t n = strlen(c->base) + strlen(path) + 1;
	char *url = malloc(n);
	if (!url) {
		curl_easy_cleanup(h);
		return NULL;
	}
	snprintf(url, n, "%s%s", c->base, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	free(url); /* curl keeps its own copy */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "shardtrie-top");
	return h;
}

static void stream_open(struct tui_client *c)
{
	char path[256];
	pthread_mutex_lock(&c->mu);
	c->restart = false;
	int k = snprintf(path, sizeof(path), "events?");
	if (strcmp(c->window, "all"))
		k += snprintf(path + k, sizeof(path) - (size_t)k, "window=%s&", c->window);
	if (c->metric[0])
		k += snprintf(path + k, sizeof(path) - (size_t)k, "metric=%s&", c->metric);
	path[k - 1] = '\0'; /* the last '?' or '&' */
	pthread_mutex_unlock(&c->mu);
	c->line.len = c->data.len = c->errbody.len = 0;
	c->overflow = c->skip_line = false;
	if (!(c->sse = easy(c, path))) {
		c->retry_at = now_ms() + 1000;
		return;
	}
	curl_easy_setopt(c->sse, CURLOPT_WRITEFUNCTION, sse_write);
	curl_easy_setopt(c->sse, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->sse, CURLOPT_HTTPGET, 1L);
	curl_multi_add_handle(c->multi, c->sse);
	set_state(c, "connecting", "");
}

static void stream_close(struct tui_client *c)
{
	if (!c->sse)
		return;
	curl_multi_remove_handle(c->multi, c->sse);
	curl_easy_cleanup(c->sse);
	c->sse = NULL;
}

static void status_open(struct tui_client *c)
{
	c->stbody.len = 0;
	if (!(c->st = easy(c, "api/status")))
		return;
	curl_easy_setopt(c->st, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(c->st, CURLOPT_WRITEDATA, &c->stbody);
	curl_easy_setopt(c->st, CURLOPT_TIMEOUT_MS, 5000L);
	curl_multi_add_handle(c->multi, c->st);
}

static void done(struct tui_client *c, CURL *h, CURLcode res)
{
	long code = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (h == c->st) {
		if (res == CURLE_OK && code == 200 && c->stbody.p) {
			pthread_mutex_lock(&c->mu);
			free(c->status);
			c->status = c->stbody.p;
			pthread_mutex_unlock(&c->mu);
			c->stbody = (struct buf){ 0 };
			wake(c);
		}
		curl_multi_remove_handle(c->multi, h);
		curl_easy_cleanup(h);
		c->st = NULL;
		c->status_at = now_ms() + 1000;
		return;
	}
	if (res != CURLE_OK)
		set_state(c, "disconnected, retrying: ", curl_easy_strerror(res));
	else if (code != 200) {
		char why[200];
		const char *b = c->errbody.p ? c->errbody.p : "";
		snprintf(why, sizeof(why), "%.*s", (int)strcspn(b, "\r\n"), b);
		pthread_mutex_lock(&c->mu);
		snprintf(c->state, sizeof(c->state), "HTTP %ld: %s", code, why);
		pthread_mutex_unlock(&c->mu);
		wake(c);
	} else {
		set_state(c, "stream ended, retrying", "");
	}
	stream_close(c);
	c->retry_at = now_ms() + 1000;
}

static void *client_main(void *arg)
{
	struct tui_client *c = arg;
	bool was_connected = false;
	for (;;) {
		pthread_mutex_lock(&c->mu);
		bool stop = c->stop, restart = c->restart;
		pthread_mutex_unlock(&c->mu);
		if (stop)
			break;
		uint64_t now = now_ms();
		if (restart) {
			stream_close(c);
			c->retry_at = 0;
			was_connected = false;
			pthread_mutex_lock(&c->mu);
			free(c->event);
			c->event = NULL;
			pthread_mutex_unlock(&c->mu);
		}
		if (!c->sse && now >= c->retry_at) {
			stream_open(c);
			was_connected = false;
		}
		if (!c->st && now >= c->status_at)
			status_open(c);
		int running;
		curl_multi_perform(c->multi, &running);
		long code = 0;
		if (c->sse && !was_connected &&
		    curl_easy_getinfo(c->sse, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200) {
			was_connected = true;
			set_state(c, "connected", "");
		}
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(c->multi, &left)))
			if (msg->msg == CURLMSG_DONE)
				done(c, msg->easy_handle, msg->data.result);
		now = now_ms();
		uint64_t next = c->st ? now + 1000 : c->status_at;
		if (!c->sse && c->retry_at < next)
			next = c->retry_at;
		long wait = next > now ? (long)(next - now) : 0;
		if (wait > 1000)
			wait = 1000;
		curl_multi_poll(c->multi, NULL, 0, (int)wait, NULL);
	}
	stream_close(c);
	if (c->st) {
		curl_multi_remove_handle(c->multi, c->st);
		curl_easy_cleanup(c->st);
		c->st = NULL;
	}
	return NULL;
}

/* --------------------------------------------------------------- public */

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct tui_client *tui_client_start(const char *base, const char *token, int wake_fd, char *err,
				    size_t errlen)
{
	if (strncmp(base, "http://", 7) && strncmp(base, "https://", 8)) {
		snprintf(err, errlen, "'%s' is not an http:// or https:// URL", base);
		return NULL;
	}
	if (token && strpbrk(token, "\r\n")) {
		snprintf(err, errlen, "the token holds a line break");
		return NULL;
	}
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, global_init);
	struct tui_client *c = calloc(1, sizeof(*c));
	size_t n = strlen(base);
	if (!c || !(c->base = malloc(n + 2)))
		goto oom;
	snprintf(c->base, n + 2, "%s%s", base, n && base[n - 1] == '/' ? "" : "/");
	c->wake_fd = wake_fd;
	snprintf(c->window, sizeof(c->window), "all");
	if (token) {
		size_t tn = strlen(token) + 32;
		char *h = malloc(tn);
		if (!h)
			goto oom;
		snprintf(h, tn, "Authorization: Bearer %s", token);
		c->hdrs = curl_slist_append(NULL, h);
		free(h);
		if (!c->hdrs)
			goto oom;
	}
	if (!(c->multi = curl_multi_init()))
		goto oom;
	pthread_mutex_init(&c->mu, NULL);
	snprintf(c->state, sizeof(c->state), "connecting");
	if ((errno = pthread_create(&c->thr, NULL, client_main, c))) {
		snprintf(err, errlen, "cannot start the client thread: %s", strerror(errno));
		pthread_mutex_destroy(&c->mu);
		curl_multi_cleanup(c->multi);
		curl_slist_free_all(c->hdrs);
		free(c->base);
		free(c);
		return NULL;
	}
	return c;
oom:
	if (c) {
		curl_slist_free_all(c->hdrs);
		free(c->base);
	}
	free(c);
	snprintf(err, errlen, "out of memory");
	return NULL;
}

void tui_client_stop(struct tui_client *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_mutex_unlock(&c->mu);
	curl_multi_wakeup(c->multi);
	pthread_join(c->thr, NULL);
	curl_multi_cleanup(c->multi);
	curl_slist_free_all(c->hdrs);
	buf_free(&c->line);
	buf_free(&c->data);
	buf_free(&c->stbody);
	buf_free(&c->errbody);
	free(c->event);
	free(c->status);
	free(c->base);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

void tui_client_stream(struct tui_client *c, const char *window, const char *metric)
{
	pthread_mutex_lock(&c->mu);
	snprintf(c->window, sizeof(c->window), "%s", window ? window : "all");
	snprintf(c->metric, sizeof(c->metric), "%s", metric ? metric : "");
	c->restart = true;
	free(c->event);
	c->event = NULL;
	pthread_mutex_unlock(&c->mu);
	curl_multi_wakeup(c->multi);
}

static char *take(struct tui_client *c, char **slot)
{
	pthread_mutex_lock(&c->mu);
	char *p = *slot;
	*slot = NULL;
	pthread_mutex_unlock(&c->mu);
	return p;
}

char *tui_client_take_event(struct tui_client *c)
{
	return take(c, &c->event);
}

char *tui_client_take_status(struct tui_client *c)
{
	return take(c, &c->status);
}

void tui_client_state(struct tui_client *c, char *out, size_t size)
{
	pthread_mutex_lock(&c->mu);
	snprintf(out, size, "%s", c->state);
	pthread_mutex_unlock(&c->mu);
}

long tui_client_request(struct tui_client *c, const char *method, const char *path,
			const char *body, char **answer, char *err, size_t errlen)
{
	*answer = NULL;
	struct buf b = { 0 };
	CURL *h = easy(c, path[0] == '/' ? path + 1 : path);
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return 0;
	}
	struct curl_slist *hdrs = NULL;
	if (body) {
		for (struct curl_slist *x = c->hdrs; x; x = x->next)
			hdrs = curl_slist_append(hdrs, x->data);
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	}
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	CURLcode res = curl_easy_perform(h);
	long code = 0;
	if (res != CURLE_OK)
		snprintf(err, errlen, "%s", curl_easy_strerror(res));
	else
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	*answer = b.p;
	return code;
}
