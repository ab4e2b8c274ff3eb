/* SPDX-License-Identifier: MIT */
/*
 * push.c - the pusher: a ticker thread that closes one interval per period
 * (the exact difference of two snapshots, st_export_delta()) into the bounded queue
 * (queue.c), and a sender thread that posts the queue to Pyroscope (send.c)
 * with retries, backoff and jitter.
 *
 * Invariants:
 *   - p->smu guards the figures (p->st, p->failing) and nothing else: it
 *     is taken inside p->mu, never around it, and never held while
 *     encoding or sending, so a status page never waits for either.
 *   - p->mu guards the interval state (last snapshot, its wall time, the
 *     metric).  Closing an interval, a reset and a metric
 *     switch all run under it, so they never interleave: intervals are
 *     consecutive, each starts at the snapshot the previous one ended at.
 *   - The ticker and the sender never take a lock that ingest takes: they
 *     read snapshots (st_snap_acquire, st_flush).  The sender holds no lock
 *     while a request runs, so a slow server only fills the queue.
 *   - Intervals with nothing new are not sent (counted as empty).
 *   - Every interval closed with samples ends as exactly one of: sent,
 *     rejected (4xx), dropped (queue full), unsent (drain time over at
 *     stop), and the figures say which, with its total value.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "internal.h"

#define REJECTS_PRINTED 10

struct st_push {
	struct st_engine *e;
	struct st_push_opts o; /* strings below are owned copies */
	char *url, *app, *hostname, *log_prefix, *spy;
	char *labels[ST_PUSH_MAX_LABELS];

	pthread_mutex_t mu;      /* the interval state (held while encoding) */
	struct st_snap *last;    /* where the open interval starts */
	double last_time;        /* its wall time (CLOCK_REALTIME, s) */
	unsigned metric;
	char *metric_label;
	pthread_mutex_t smu;     /* the figures: never held while encoding or
				    sending (a status page does not wait) */
	struct st_push_stats st; /* queue figures are read from q */
	bool failing;            /* the last attempt failed (for the log) */

	struct st_push_queue q;
	struct st_push_sender *sender;
	unsigned seed;           /* jitter (the sender's) */

	pthread_mutex_t tmu;     /* the ticker's sleep */
	pthread_cond_t tcv;
	bool stopping, stopped;
	pthread_t ticker, sending;
	bool ticker_up, sender_up;
};

void st_push_opts_init(struct st_push_opts *o)
{
	*o = (struct st_push_opts){
		.size = sizeof(*o),
		.app = "shardtrie",
		.sample_rate = 100,
		.spy_name = "shardtrie",
		.format = ST_PUSH_PPROF,
		.interval_ms = 10000,
		.queue_max = 64,
		.queue_bytes = 64u << 20,
		.timeout_ms = 10000,
		.backoff_min_ms = 500,
		.backoff_max_ms = 30000,
		.drain_ms = 10000,
	};
}

static void say(struct st_push *p, const char *fmt, ...)
{
	FILE *f = p->o.log ? p->o.log : stderr;
	va_list ap;
	va_start(ap, fmt);
	flockfile(f);
	fprintf(f, "%s: ", p->log_prefix);
	vfprintf(f, fmt, ap);
	fputc('\n', f);
	funlockfile(f);
	fflush(f);
	va_end(ap);
}

/* --------------------------------------------------------------- names */

bool st_push_label_name_ok(const char *s, size_t n)
{
	if (!n || (n >= 2 && s[0] == '_' && s[1] == '_'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		if (!alpha && (i == 0 || c < '0' || c > '9'))
			return false;
	}
	return true;
}

bool st_push_label_value_ok(const char *s, size_t n)
{
	if (!n || n > 1024)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || strchr("{},=\"", c))
			return false;
	}
	return true;
}

bool st_push_app_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

/* ------------------------------------------------------ what is pushed */

/* How Pyroscope is told what metric m's values are. */
struct units {
	const char *units;    /* units= */
	uint32_t rate;        /* sampleRate= (0: leave the default) */
	bool sampled;         /* sample_type_config "sampled" */
};

static struct units units_of(const struct st_push *p, unsigned m)
{
	const struct st_metric_desc *d = st_engine_metric(p->e, m);
	const char *u = d && d->unit ? d->unit : "samples";
	if (!strcmp(u, "samples") || !strcmp(u, "count"))
		return (struct units){ "samples", p->o.sample_rate ? p->o.sample_rate : 100, true };
	/* time: samples of 1 ns (1 us, ...), as the project's flamebearer does */
	if (!strcmp(u, "nanoseconds"))
		return (struct units){ "samples", 1000000000u, true };
	if (!strcmp(u, "microseconds"))
		return (struct units){ "samples", 1000000u, true };
	if (!strcmp(u, "milliseconds"))
		return (struct units){ "samples", 1000u, true };
	if (!strcmp(u, "seconds"))
		return (struct units){ "samples", 1u, true };
	if (!strcmp(u, "bytes"))
		return (struct units){ "bytes", 0, false };
	/* calls, events, objects...: plain counts */
	return (struct units){ "objects", 0, false };
}

/* The pprof sample type our writer gives metric m (pprof.c, rule 5). */
static const char *pprof_type(const struct st_push *p, unsigned m)
{
	const struct st_metric_desc *d = st_engine_metric(p->e, m);
	const char *t = d && d->name ? d->name : "samples";
	const char *u = d && d->unit ? d->unit : "count";
	if (!strcmp(t, "count"))
		t = "samples";
	if (!strcmp(t, "samples") && (!strcmp(u, "nanoseconds") || !strcmp(u, "microseconds") ||
				      !strcmp(u, "milliseconds") || !strcmp(u, "seconds")))
		t = "cpu";
	return t;
}

/* JSON string body (no quotes) of s into f. */
static void json_str(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

/* The same, bytes past ASCII as '?' (messages from libcurl and servers:
 * not necessarily UTF-8, which a JSON reader would refuse). */
static void json_ascii(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char one[2] = { c < 0x7f ? (char)c : '?', '\0' };
		json_str(f, one);
	}
}

/* "APP{hostname=H,metric=M,k=v...}": the user's labels replace defaults. */
static char *series_name(const struct st_push *p)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	if (!f)
		return NULL;
	fprintf(f, "%s{", p->app);
	bool host = true, metric = true;
	for (size_t i = 0; i < p->o.nlabels; i++) {
		if (!strncmp(p->labels[i], "hostname=", 9))
			host = false;
		if (!strncmp(p->labels[i], "metric=", 7))
			metric = false;
	}
	const char *sep = "";
	if (host && p->hostname[0]) {
		fprintf(f, "hostname=%s", p->hostname);
		sep = ",";
	}
	if (metric) {
		fprintf(f, "%smetric=%s", sep, p->metric_label);
		sep = ",";
	}
	for (size_t i = 0; i < p->o.nlabels; i++) {
		fprintf(f, "%s%s", sep, p->labels[i]);
		sep = ",";
	}
	fputc('}', f);
	if (fclose(f)) {
		free(out);
		return NULL;
	}
	return out;
}

/* The query string and (pprof) the sample_type_config of the interval. */
static int describe(struct st_push *p, struct st_push_item *it, double from, double until)
{
	struct units u = units_of(p, p->metric);
	char *name = series_name(p);
	char *ename = name ? curl_easy_escape(NULL, name, 0) : NULL;
	char *espy = curl_easy_escape(NULL, p->spy, 0);
	size_t n = 0;
	FILE *f = ename && espy ? open_memstream(&it->query, &n) : NULL;
	int r = f ? 0 : -ENOMEM;
	if (f) {
		fprintf(f, "name=%s&from=%lld&until=%lld&spyName=%s&units=%s&aggregationType=sum",
			ename, (long long)from, (long long)until, espy, u.units);
		if (u.rate)
			fprintf(f, "&sampleRate=%u", u.rate);
		if (p->o.format == ST_PUSH_FOLDED)
			fputs("&format=folded", f);
		if (fclose(f))
			r = -ENOMEM;
	}
	if (!r && p->o.format == ST_PUSH_PPROF) {
		size_t m = 0;
		FILE *g = open_memstream(&it->stc, &m);
		if (!g)
			r = -ENOMEM;
		else {
			fputs("{\"", g);
			json_str(g, pprof_type(p, p->metric));
			fprintf(g, "\":{\"units\":\"%s\",\"aggregation\":\"sum\",\"display-name\":\"",
				u.units);
			json_str(g, p->metric_label);
			fprintf(g, "\",\"sampled\":%s}}", u.sampled ? "true" : "false");
			if (fclose(g))
				r = -ENOMEM;
		}
	}
	curl_free(ename);
	curl_free(espy);
	free(name);
	return r;
}

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Metric m of what `now` holds beyond `last` (st_export_delta(): a reset
 * between them = all of now) encoded as fmt into it->body, its sum into
 * it->value.  Nothing new gives value 0 and no body.  0 or -errno.
 */
static int encode_delta(const struct st_snap *last, const struct st_snap *now, unsigned m,
			int fmt, const struct st_export_opts *eo, struct st_push_item *it)
{
	/* The same published snapshot: nothing came in (no walk, no encode). */
	if (last && st_snap_version(last) == st_snap_version(now) &&
	    st_snap_generation(last) == st_snap_generation(now)) {
		it->value = 0;
		return 0;
	}
	FILE *f = open_memstream(&it->body, &it->len);
	if (!f)
		return -errno;
	int r = st_export_delta(last, now, (int)m, fmt, eo, f, &it->value);
	if (fclose(f) && !r)
		r = -EIO;
	if (r || !it->value) {
		free(it->body);
		it->body = NULL;
		it->len = 0;
		if (r)
			it->value = 0;
	}
	return r;
}

/*
 * Close the open interval at snapshot `now` (a reference the pusher takes
 * over): its difference with the last one is queued, and `now` becomes
 * where the next interval starts.  Under p->mu.
 */
static void close_interval_locked(struct st_push *p, struct st_snap *now)
{
	double t = wall_now();
	struct st_export_opts eo;
	st_export_opts_init(&eo);
	eo.sample_rate = units_of(p, p->metric).rate;
	eo.app_name = p->app;
	eo.duration_ns = t > p->last_time ? (uint64_t)((t - p->last_time) * 1e9) : 0;
	int fmt = p->o.format == ST_PUSH_FOLDED ? ST_FMT_FOLDED : ST_FMT_PPROF;
	struct st_push_item *it = calloc(1, sizeof(*it));
	int r = it ? 0 : -ENOMEM;
	if (!r)
		r = encode_delta(p->last, now, p->metric, fmt, &eo, it);
	if (!r && it->value)
		r = describe(p, it, p->last_time, t);
	if (r) {
		pthread_mutex_lock(&p->smu);
		p->st.errors++;
		snprintf(p->st.last_error, sizeof(p->st.last_error), "cannot encode an interval: %s",
			 strerror(-r));
		pthread_mutex_unlock(&p->smu);
		say(p, "cannot encode an interval: %s (its samples are not pushed)", strerror(-r));
		st_push_item_free(it);
	} else if (!it->value) {
		pthread_mutex_lock(&p->smu);
		p->st.empty++;
		pthread_mutex_unlock(&p->smu);
		st_push_item_free(it);
	} else {
		pthread_mutex_lock(&p->smu);
		p->st.intervals++;
		pthread_mutex_unlock(&p->smu);
		st_push_queue_put(&p->q, it);
	}
	st_snap_release(p->last);
	p->last = now;
	p->last_time = t;
}

/* ------------------------------------------------------------- threads */

static void *ticker(void *arg)
{
	struct st_push *p = arg;
	uint64_t period = (uint64_t)p->o.interval_ms * 1000000u;
	uint64_t next = st_push_now_ns() + period;
	pthread_mutex_lock(&p->tmu);
	while (!p->stopping) {
		struct timespec ts = { (time_t)(next / 1000000000u), (long)(next % 1000000000u) };
		if (pthread_cond_timedwait(&p->tcv, &p->tmu, &ts) != ETIMEDOUT &&
		    st_push_now_ns() < next)
			continue;
		if (p->stopping)
			break;
		pthread_mutex_unlock(&p->tmu);
		pthread_mutex_lock(&p->mu);
		close_interval_locked(p, st_snap_acquire(p->e));
		pthread_mutex_unlock(&p->mu);
		pthread_mutex_lock(&p->tmu);
		uint64_t now = st_push_now_ns();
		next += period;
		if (next <= now) /* fell behind (a stalled machine): no burst */
			next = now + period;
	}
	pthread_mutex_unlock(&p->tmu);
	return NULL;
}

/* Retry delay after the n-th failure (n >= 1): exponential, capped, with
 * "equal jitter" (half fixed, half random) so a fleet does not retry in
 * step; a Retry-After replaces it (plus up to 10 % of jitter). */
static unsigned backoff_ms(struct st_push *p, unsigned n, unsigned retry_after)
{
	if (retry_after)
		return retry_after + (unsigned)(rand_r(&p->seed) % (retry_after / 10 + 1));
	uint64_t d = p->o.backoff_min_ms ? p->o.backoff_min_ms : 1;
	for (unsigned i = 1; i < n && d < p->o.backoff_max_ms; i++)
		d *= 2;
	if (d > p->o.backoff_max_ms)
		d = p->o.backoff_max_ms;
	return (unsigned)(d / 2 + (uint64_t)rand_r(&p->seed) % (d / 2 + 1));
}

static void *sender(void *arg)
{
	struct st_push *p = arg;
	struct st_push_item *it;
	char why[256];
	while ((it = st_push_queue_take(&p->q))) {
		uint64_t value = it->value;
		size_t len = it->len;
		enum st_push_outcome out;
		for (unsigned n = 1;; n++) {
			long status;
			unsigned ra;
			out = st_push_send(p->sender, it, &status, &ra, why, sizeof(why));
			pthread_mutex_lock(&p->smu);
			p->st.last_status = status;
			if (out == ST_PUSH_SENT) {
				p->st.sent++;
				p->st.sent_value = st_sat_add(p->st.sent_value, value);
				p->st.sent_bytes = st_sat_add(p->st.sent_bytes, len);
				p->st.last_success = wall_now();
				if (p->failing)
					say(p, "%s: sending again", p->url);
				p->failing = false;
			} else if (out == ST_PUSH_REJECTED) {
				p->st.last_failure = wall_now();
				p->st.rejected++;
				p->st.rejected_value = st_sat_add(p->st.rejected_value, value);
				snprintf(p->st.last_error, sizeof(p->st.last_error), "%s", why);
				if (p->st.rejected <= REJECTS_PRINTED)
					say(p, "%s: the server refused an interval: %s%s", p->url, why,
					    p->st.rejected == REJECTS_PRINTED ? " (further refusals not printed)"
									      : "");
			} else {
				p->st.last_failure = wall_now();
				snprintf(p->st.last_error, sizeof(p->st.last_error), "%s", why);
				if (!p->failing)
					say(p, "%s: %s; retrying with backoff", p->url, why);
				p->failing = true;
				p->st.retries++;
			}
			pthread_mutex_unlock(&p->smu);
			if (out != ST_PUSH_RETRY)
				break;
			if (!st_push_queue_backoff(&p->q, backoff_ms(p, n, ra)))
				break;
		}
		bool abandoned = st_push_queue_done(&p->q);
		if (out == ST_PUSH_RETRY && !abandoned) { /* the drain time ran out */
			pthread_mutex_lock(&p->smu);
			p->st.unsent++;
			p->st.unsent_value = st_sat_add(p->st.unsent_value, value);
			pthread_mutex_unlock(&p->smu);
		}
	}
	return NULL;
}

/* --------------------------------------------------------------- API */

/* url as scheme://host[:port][/path] into out: user info (credentials),
 * query and fragment left out, whatever the caller checked. */
static void url_shown(const char *url, char *out, size_t n)
{
	const char *auth = strstr(url, "://");
	auth = auth ? auth + 3 : url;
	size_t scheme = (size_t)(auth - url);
	size_t alen = strcspn(auth, "/?#");
	const char *at = memrchr(auth, '@', alen);
	const char *host = at ? at + 1 : auth;
	size_t hlen = alen - (size_t)(host - auth);
	size_t plen = strcspn(auth + alen, "?#");
	snprintf(out, n, "%.*s%.*s%.*s", (int)scheme, url, (int)hlen, host, (int)plen, auth + alen);
}

static char *dup_or(const char *s, const char *dflt)
{
	return strdup(s && s[0] ? s : dflt);
}

struct st_push *st_push_start(struct st_engine *e, const struct st_push_opts *o)
{
	if (!o->url || !o->url[0] || o->nlabels > ST_PUSH_MAX_LABELS || !o->interval_ms ||
	    o->metric >= st_engine_nmetrics(e) || (o->app && o->app[0] && !st_push_app_ok(o->app))) {
		errno = EINVAL;
		return NULL;
	}
	struct st_push *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->e = e;
	p->o = *o;
	p->o.log = o->log ? o->log : stderr;
	char host[256] = "";
	if (!o->hostname) {
		if (gethostname(host, sizeof(host) - 1))
			host[0] = '\0';
		for (char *c = host; *c; c++) /* keep the label syntax */
			if (strchr("{},=\" ", *c) || (unsigned char)*c < 0x20)
				*c = '_';
	}
	p->url = strdup(o->url);
	url_shown(o->url, p->st.url, sizeof(p->st.url));
	p->st.interval_ms = o->interval_ms;
	p->app = dup_or(o->app, "shardtrie");
	p->hostname = strdup(o->hostname ? o->hostname : host);
	p->log_prefix = dup_or(o->log_prefix, "push");
	p->spy = dup_or(o->spy_name, "shardtrie");
	const struct st_metric_desc *d = st_engine_metric(e, o->metric);
	p->metric = o->metric;
	p->metric_label = dup_or(o->metric_label, d && d->name ? d->name : "samples");
	bool ok = p->url && p->app && p->hostname && p->log_prefix && p->spy && p->metric_label;
	for (size_t i = 0; i < o->nlabels && ok; i++)
		ok = (p->labels[i] = strdup(o->labels[i])) != NULL;
	p->o.user = p->o.password = p->o.token = p->o.tenant = NULL; /* kept by the sender only */
	if (!ok || !(p->sender = st_push_sender_new(o))) {
		int err = errno ? errno : ENOMEM;
		st_push_free(p);
		errno = err;
		return NULL;
	}
	p->seed = (unsigned)st_push_now_ns() ^ (unsigned)getpid();
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->smu, NULL);
	pthread_mutex_init(&p->tmu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->tcv, &ca);
	pthread_condattr_destroy(&ca);
	st_push_queue_init(&p->q, o->queue_max, o->queue_bytes);
	p->last = st_snap_acquire(e);
	p->last_time = wall_now();
	int err = pthread_create(&p->sending, NULL, sender, p);
	p->sender_up = !err;
	if (!err) {
		err = pthread_create(&p->ticker, NULL, ticker, p);
		p->ticker_up = !err;
	}
	if (err) {
		st_push_stop(p);
		st_push_free(p);
		errno = err;
		return NULL;
	}
	return p;
}

uint64_t st_push_reset(struct st_push *p)
{
	pthread_mutex_lock(&p->mu);
	/* Everything ingested before this call is in the flushed snapshot:
	 * push it, then reset (samples racing with the reset itself are
	 * discarded by it, as st_reset() says, in the output too). */
	if (!p->stopped && st_flush(p->e))
		close_interval_locked(p, st_snap_acquire(p->e));
	uint64_t v = st_reset(p->e);
	if (!p->stopped) {
		st_snap_release(p->last);
		p->last = st_snap_acquire(p->e); /* the new generation's (empty) start */
	}
	pthread_mutex_unlock(&p->mu);
	return v;
}

int st_push_set_metric(struct st_push *p, unsigned m, const char *label)
{
	if (m >= st_engine_nmetrics(p->e))
		return -EINVAL;
	const struct st_metric_desc *d = st_engine_metric(p->e, m);
	char *l = dup_or(label, d && d->name ? d->name : "samples");
	if (!l)
		return -ENOMEM;
	pthread_mutex_lock(&p->mu);
	if (!p->stopped && st_flush(p->e))
		close_interval_locked(p, st_snap_acquire(p->e));
	p->metric = m;
	free(p->metric_label);
	p->metric_label = l;
	pthread_mutex_unlock(&p->mu);
	return 0;
}

void st_push_get_stats(struct st_push *p, struct st_push_stats *out)
{
	pthread_mutex_lock(&p->smu);
	*out = p->st;
	pthread_mutex_unlock(&p->smu);
	pthread_mutex_lock(&p->q.mu);
	out->dropped = p->q.dropped;
	out->dropped_value = p->q.dropped_value;
	out->queued = p->q.count;
	out->queued_bytes = p->q.bytes;
	pthread_mutex_unlock(&p->q.mu);
}

/* JSON number for a wall time, or null. */
static void json_time(FILE *f, const char *key, double t)
{
	if (t > 0)
		fprintf(f, ",\"%s\":%.3f", key, t);
	else
		fprintf(f, ",\"%s\":null", key);
}

char *st_push_status_json(struct st_push *p)
{
	struct st_push_stats s;
	st_push_get_stats(p, &s);
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	if (!f)
		return NULL;
	fputs("{\"push\":{\"url\":\"", f);
	json_ascii(f, s.url);
	fprintf(f,
		"\",\"interval_ms\":%u,\"intervals\":%llu,\"empty\":%llu,\"sent\":%llu,"
		"\"sent_value\":%llu,\"sent_bytes\":%llu,\"retries\":%llu,\"queued\":%zu,"
		"\"queued_bytes\":%zu,\"dropped\":%llu,\"dropped_value\":%llu,\"rejected\":%llu,"
		"\"rejected_value\":%llu,\"unsent\":%llu,\"errors\":%llu,\"last_status\":%ld,"
		"\"last_error\":\"",
		s.interval_ms, (unsigned long long)s.intervals, (unsigned long long)s.empty,
		(unsigned long long)s.sent, (unsigned long long)s.sent_value,
		(unsigned long long)s.sent_bytes, (unsigned long long)s.retries, s.queued,
		s.queued_bytes, (unsigned long long)s.dropped, (unsigned long long)s.dropped_value,
		(unsigned long long)s.rejected, (unsigned long long)s.rejected_value,
		(unsigned long long)s.unsent, (unsigned long long)s.errors, s.last_status);
	json_ascii(f, s.last_error);
	fputc('"', f);
	json_time(f, "last_success", s.last_success);
	json_time(f, "last_failure", s.last_failure);
	fputs("}}", f);
	if (fclose(f)) {
		free(out);
		return NULL;
	}
	return out;
}

void st_push_stop(struct st_push *p)
{
	if (!p || p->stopped)
		return;
	if (p->ticker_up) {
		pthread_mutex_lock(&p->tmu);
		p->stopping = true;
		pthread_cond_broadcast(&p->tcv);
		pthread_mutex_unlock(&p->tmu);
		pthread_join(p->ticker, NULL);
		p->ticker_up = false;
	}
	/* The last, partial interval: everything ingested before this call. */
	pthread_mutex_lock(&p->mu);
	if (st_flush(p->e))
		close_interval_locked(p, st_snap_acquire(p->e));
	st_snap_release(p->last);
	p->last = NULL;
	p->stopped = true;
	pthread_mutex_unlock(&p->mu);
	st_push_queue_stop(&p->q, st_push_now_ns() + (uint64_t)p->o.drain_ms * 1000000u);
	if (p->sender_up) {
		pthread_join(p->sending, NULL);
		p->sender_up = false;
	}
	/* What the drain did not send. */
	uint64_t unsent = 0, value = 0;
	pthread_mutex_lock(&p->q.mu);
	for (struct st_push_item *it = p->q.head; it; it = it->next) {
		unsent++;
		value = st_sat_add(value, it->value);
	}
	pthread_mutex_unlock(&p->q.mu);
	pthread_mutex_lock(&p->smu);
	p->st.unsent += unsent;
	p->st.unsent_value = st_sat_add(p->st.unsent_value, value);
	pthread_mutex_unlock(&p->smu);
}

void st_push_report(struct st_push *p)
{
	struct st_push_stats s;
	st_push_get_stats(p, &s);
	say(p, "%llu intervals sent (%llu in all), %llu retries, %llu dropped (queue full, %llu), "
	       "%llu refused by the server (%llu), %llu unsent at exit (%llu), %llu not encoded",
	    (unsigned long long)s.sent, (unsigned long long)s.sent_value,
	    (unsigned long long)s.retries, (unsigned long long)s.dropped,
	    (unsigned long long)s.dropped_value, (unsigned long long)s.rejected,
	    (unsigned long long)s.rejected_value, (unsigned long long)s.unsent,
	    (unsigned long long)s.unsent_value, (unsigned long long)s.errors);
}

void st_push_free(struct st_push *p)
{
	if (!p)
		return;
	if (p->sender) { /* started: the threads and the queue exist */
		st_push_stop(p);
		uint64_t u = 0, v = 0;
		st_push_queue_fini(&p->q, &u, &v); /* counted by st_push_stop */
		pthread_cond_destroy(&p->tcv);
		pthread_mutex_destroy(&p->tmu);
		pthread_mutex_destroy(&p->mu);
		pthread_mutex_destroy(&p->smu);
		st_push_sender_free(p->sender);
	}
	free(p->url);
	free(p->app);
	free(p->hostname);
	free(p->log_prefix);
	free(p->spy);
	free(p->metric_label);
	for (size_t i = 0; i < ST_PUSH_MAX_LABELS; i++)
		free(p->labels[i]);
	free(p);
}
