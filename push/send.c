/* SPDX-License-Identifier: MIT */
/*
 * send.c - one POST of an interval to Pyroscope's ingest API with libcurl,
 * and what the answer means for the sender.
 *
 *   pprof:  POST URL/ingest?QUERY, multipart/form-data (curl_mime): field
 *           "profile" (profile.pprof, the gzipped profile.proto) and field
 *           "sample_type_config" (JSON: units, aggregation, display name).
 *           No format= parameter: Pyroscope's handler reads a format=pprof
 *           body as a bare profile, and recognises a form by its
 *           Content-Type (what its own agents send).
 *   folded: POST URL/ingest?QUERY&format=folded, text/plain lines.
 *
 * Outcomes: 2xx sent; no answer (refused, reset, timeout), 5xx and 429
 * retried (429's Retry-After, seconds or a date, honoured through
 * CURLINFO_RETRY_AFTER); any other status rejected with the server's first
 * line of answer.  Redirects are not followed (credentials would follow).
 *
 * Credentials: basic auth through CURLOPT_USERNAME/PASSWORD, a bearer token
 * and the tenant as headers.  They live in this struct and the curl handle
 * only; messages never include them (nor the URL's query).  Verbose output
 * is never turned on.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "internal.h"

#define ANSWER_MAX 1024 /* bytes of an answer kept for a message */

struct st_push_sender {
	CURL *h;
	struct curl_slist *hdrs;
	char *base;    /* URL without a trailing '/' */
	char *user, *password;
	char *secrets[4]; /* user, password, token, tenant: masked in messages */
	char curl_err[CURL_ERROR_SIZE];
	char answer[ANSWER_MAX + 1];
	size_t answer_len;
	long timeout_ms;
};

static size_t on_answer(char *p, size_t size, size_t n, void *arg)
{
	struct st_push_sender *s = arg;
	size_t k = size * n, room = ANSWER_MAX - s->answer_len;
	memcpy(s->answer + s->answer_len, p, k < room ? k : room);
	s->answer_len += k < room ? k : room;
	return k; /* the rest is read and discarded */
}

static void wipe_free(char *p)
{
	if (!p)
		return;
	/* explicit_bzero keeps a secret from lingering in freed memory. */
	explicit_bzero(p, strlen(p));
	free(p);
}

static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct st_push_sender *st_push_sender_new(const struct st_push_opts *o)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, global_init);
	if (global_rc != CURLE_OK) {
		errno = ENOMEM;
		return NULL;
	}
	struct st_push_sender *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->timeout_ms = o->timeout_ms;
	s->base = strdup(o->url);
	s->h = curl_easy_init();
	if (!s->base || !s->h)
		goto fail;
	size_t n = strlen(s->base);
	while (n && s->base[n - 1] == '/')
		s->base[--n] = '\0';
	char line[4200];
	const char *sec[4] = { o->user, o->password, o->token, o->tenant };
	for (size_t i = 0; i < 4; i++)
		if (sec[i] && sec[i][0] && !(s->secrets[i] = strdup(sec[i])))
			goto fail;
	if (o->user && o->user[0]) {
		s->user = strdup(o->user);
		s->password = strdup(o->password ? o->password : "");
		if (!s->user || !s->password)
			goto fail;
	} else if (o->token && o->token[0]) {
		if ((size_t)snprintf(line, sizeof(line), "Authorization: Bearer %s", o->token) >=
		    sizeof(line))
			goto inval;
		struct curl_slist *l = curl_slist_append(s->hdrs, line);
		explicit_bzero(line, sizeof(line));
		if (!l)
			goto fail;
		s->hdrs = l;
	}
	if (o->tenant && o->tenant[0]) {
		if ((size_t)snprintf(line, sizeof(line), "X-Scope-OrgID: %s", o->tenant) >=
		    sizeof(line))
			goto inval;
		struct curl_slist *l = curl_slist_append(s->hdrs, line);
		if (!l)
			goto fail;
		s->hdrs = l;
	}
	struct curl_slist *l = curl_slist_append(s->hdrs, "Expect:"); /* no 100-continue wait */
	if (!l)
		goto fail;
	s->hdrs = l;
	return s;
inval:
	st_push_sender_free(s);
	errno = EINVAL;
	return NULL;
fail:
	st_push_sender_free(s);
	errno = ENOMEM;
	return NULL;
}

void st_push_sender_free(struct st_push_sender *s)
{
	if (!s)
		return;
	if (s->h)
		curl_easy_cleanup(s->h);
	/* the header list holds the token: wipe each line */
	for (struct curl_slist *l = s->hdrs; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(s->hdrs);
	free(s->base);
	wipe_free(s->user);
	wipe_free(s->password);
	for (size_t i = 0; i < 4; i++)
		wipe_free(s->secrets[i]);
	free(s);
}

/* Every credential in why overwritten by '*'s: a server (or a proxy) may
 * echo a header back in its answer, and why is printed and shown on status
 * pages. */
static void mask_secrets(const struct st_push_sender *s, char *why)
{
	for (size_t i = 0; i < 4; i++) {
		const char *sec = s->secrets[i];
		size_t k = sec ? strlen(sec) : 0;
		for (char *at = why; k && (at = strstr(at, sec)); at += k)
			memset(at, '*', k);
	}
}

/* The first line of the answer, printable, for a message. */
static void answer_line(const struct st_push_sender *s, char *out, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < s->answer_len && k + 1 < n; i++) {
		unsigned char ch = (unsigned char)s->answer[i];
		if (ch == '\n' || ch == '\r')
			break;
		out[k++] = isprint(ch) ? (char)ch : '?';
	}
	out[k] = '\0';
}

enum st_push_outcome st_push_send(struct st_push_sender *s, const struct st_push_item *it,
				  long *status, unsigned *retry_after_ms, char *why, size_t whylen)
{
	*status = 0;
	*retry_after_ms = 0;
	why[0] = '\0';
	CURL *h = s->h;
	curl_easy_reset(h);
	size_t ulen = strlen(s->base) + strlen(it->query) + 16;
	char *url = malloc(ulen);
	curl_mime *mime = NULL;
	enum st_push_outcome out = ST_PUSH_RETRY;
	if (!url) {
		snprintf(why, whylen, "out of memory");
		return ST_PUSH_RETRY;
	}
	snprintf(url, ulen, "%s/ingest?%s", s->base, it->query);
	s->answer_len = 0;
	s->curl_err[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->curl_err);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_answer);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "shardtrie-push/1");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, s->hdrs);
	if (s->user) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, s->user);
		curl_easy_setopt(h, CURLOPT_PASSWORD, s->password);
	}
	struct curl_slist *hdrs = NULL;
	if (it->stc) { /* pprof: a form */
		mime = curl_mime_init(h);
		curl_mimepart *p = mime ? curl_mime_addpart(mime) : NULL;
		if (!p || curl_mime_name(p, "profile") || curl_mime_filename(p, "profile.pprof") ||
		    curl_mime_type(p, "application/octet-stream") ||
		    curl_mime_data(p, it->body, it->len)) {
			snprintf(why, whylen, "cannot build the form");
			goto out;
		}
		p = curl_mime_addpart(mime);
		if (!p || curl_mime_name(p, "sample_type_config") ||
		    curl_mime_filename(p, "sample_type_config.json") ||
		    curl_mime_type(p, "application/json") ||
		    curl_mime_data(p, it->stc, CURL_ZERO_TERMINATED)) {
			snprintf(why, whylen, "cannot build the form");
			goto out;
		}
		curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
	} else {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, it->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)it->len);
		struct curl_slist *l = curl_slist_append(NULL, "Content-Type: text/plain");
		if (l) {
			hdrs = l;
			for (struct curl_slist *x = s->hdrs; x; x = x->next)
				if ((l = curl_slist_append(hdrs, x->data)))
					hdrs = l;
			curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		}
	}
	CURLcode rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		/* refused, reset, timed out, TLS: the network's fault, retried */
		snprintf(why, whylen, "%s", s->curl_err[0] ? s->curl_err : curl_easy_strerror(rc));
		out = ST_PUSH_RETRY;
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_off_t ra = 0;
	if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
		*retry_after_ms = ra > 3600 ? 3600000u : (unsigned)ra * 1000u;
	char line[200];
	answer_line(s, line, sizeof(line));
	if (*status >= 200 && *status < 300) {
		out = ST_PUSH_SENT;
	} else if (*status == 429 || *status >= 500) {
		snprintf(why, whylen, "HTTP %ld%s%s", *status, line[0] ? ": " : "", line);
		out = ST_PUSH_RETRY;
	} else {
		snprintf(why, whylen, "HTTP %ld%s%s", *status, line[0] ? ": " : "", line);
		out = ST_PUSH_REJECTED;
	}
out:
	mask_secrets(s, why);
	curl_mime_free(mime);
	/* hdrs holds copies of the token line */
	for (struct curl_slist *x = hdrs; x; x = x->next)
		explicit_bzero(x->data, strlen(x->data));
	curl_slist_free_all(hdrs);
	free(url);
	return out;
}
