/* SPDX-License-Identifier: MIT */
/*
 * live_load.c - ingest under the live view's readers (issue 17, "Safety and
 * load"; docs/benchmarking.md, "The live-load case").
 *
 * One run: a fresh engine of the hot workload (merger every 10 ms, as serve
 * and record --serve run it) served in process by st_live_start(); one
 * writer ingests through the batch API for a fixed span.  A "0 clients"
 * run leaves the server idle; a "42 clients" run has, from one libcurl
 * multi thread:
 *   32  GET /events (SSE), read as they arrive, data: lines counted;
 *    4  GET /api/snapshot?format=flamebearer&max_nodes=1024 every 100 ms with
 *       If-None-Match of the last ETag (a UI poller: 304 when unchanged);
 *    4  GET /api/snapshot?format=json&min_fraction=0.001 every 100 ms without
 *       it (a script: every answer whose version moved is a fresh encode);
 *    2  GET /debug/pprof/profile?seconds=S back to back, concurrently (two
 *       scrape jobs), while a whole window fits in the timed span.
 * The clients connect while the writer waits after its warm-up pass; the
 * timed span starts when every SSE client has had an event and every
 * poller an answer.  A run's figures are the writer's samples over its
 * wall time and over its thread CPU time; a pair is a 0-client run and a
 * loaded run back to back (order alternating), its drop 1 - loaded/idle.
 * Pinned pairs are triples: a third run has no client but a thread spinning
 * on CPU 1, touching nothing of the engine -- the control that tells what
 * any busy neighbouring CPU costs the writer on this host.  Per run the
 * writer's voluntary context switches (waits: a lock would show here),
 * involuntary ones (preemption) and the IPIs its CPU took are counted.
 *
 * Placement (2 vCPUs): "pinned" puts the writer alone on CPU 0 and
 * everything else -- the merger, libmicrohttpd's threads, the clients --
 * on CPU 1 (they inherit the affinity of the thread that creates them;
 * threads made before the run are moved, and every loaded run checks), so
 * a drop can only come from what readers share with the writer (locks,
 * cache lines, memory bandwidth) or from the host, which the spinning
 * control measures -- not from taking its core.  "unpinned"
 * lets the scheduler place every thread: readers then also take CPU time
 * from the writer.  Both kinds of pair alternate in one run.
 *
 * Invariants: every run's root total equals the samples ingested (warm-up
 * included) and nothing is dropped, else `lost`; a client answer other than
 * 200/304, a transport error, an SSE stream that ends, or a scrape that is
 * not gzip counts in live.errors (exit 1); every wait is bounded.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "bench.h"
#include "live/server.h"
#include "util.h"

enum { NSSE = 32, NPOLL = 8, NSCRAPE = 2, NCLIENTS = NSSE + NPOLL + NSCRAPE };
enum { POLL_MS = 100, READY_WAIT_S = 20, DONE_WAIT_S = 30 };
enum phase { PH_SETUP, PH_TIMED, PH_DONE };
enum ckind { C_SSE, C_POLL, C_SCRAPE };
/* A run: server idle, the 42 clients, or (pinned, the controls) no client
 * but a thread on CPU 1 that spins -- what any busy neighbour costs -- or
 * that copies buffers larger than the L3 -- what any memory traffic costs. */
enum rkind { RK_IDLE, RK_LOAD, RK_SPIN, RK_STREAM, NRK };
static const char *const rkname[NRK] = { "0c", "42c", "spin", "stream" };
enum { STREAM_BYTES = 32 << 20 }; /* each of the two buffers */

struct live_run;

struct client {
	enum ckind kind;
	unsigned idx;
	struct live_run *run;
	CURL *h;
	struct curl_slist *hdrs;
	bool active, inm, timed;   /* in the multi; sends If-None-Match; started timed */
	double started, next_due;
	char url[256];
	char etag[64];
	/* SSE: the first bytes of the current line ("data:" counts an event). */
	char pre[5];
	size_t col;
	unsigned char magic[2];    /* scrape: the body's first two bytes */
	size_t body;
	uint64_t events;           /* SSE events, any phase (readiness) */
	uint64_t answers;          /* poll answers, any phase (readiness) */
};

struct live_run {
	struct live_mode *m;       /* where the figures go */
	enum rkind kind;
	bool loaded, pinned;
	double span;               /* timed seconds */
	unsigned scrape_s;
	unsigned port;
	_Atomic int phase;
	_Atomic double t_end;      /* the writer's planned end */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool warm, go, ready, clients_done;
	bool have_clients;         /* the client thread was started */
	CURLM *multi;
	struct client c[NCLIENTS];
	/* The writer's figures. */
	struct workload *W;
	struct st_engine *e;
	uint64_t warm_samples, samples, errors;
	double secs, cpu;
	long vcsw, ivcsw;          /* the writer's context switches, timed span */
	double ipis;               /* IPIs to CPU 0 per second, timed span */
	_Atomic pid_t writer_tid;
};

/* ------------------------------------------------------------ small helpers */

static void set_cpu(bool pinned, int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	if (pinned && cfg.ncpu > 1) {
		CPU_SET(cpu, &set);
	} else {
		for (unsigned i = 0; i < cfg.ncpu && i < CPU_SETSIZE; i++)
			CPU_SET(i, &set);
	}
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* Start fn on a new thread already placed (pinned: on CPU 1), so that no
 * moment of its life is spent elsewhere. */
static int start_placed(pthread_t *tid, bool pinned, void *(*fn)(void *), void *arg)
{
	pthread_attr_t a;
	cpu_set_t set;
	CPU_ZERO(&set);
	for (unsigned i = 0; i < cfg.ncpu && i < CPU_SETSIZE; i++)
		if (!pinned || cfg.ncpu < 2 || i == 1)
			CPU_SET(i, &set);
	pthread_attr_init(&a);
	pthread_attr_setaffinity_np(&a, sizeof(set), &set);
	int rc = pthread_create(tid, &a, fn, arg);
	pthread_attr_destroy(&a);
	return rc;
}

static void signal_flag(struct live_run *r, bool *flag)
{
	pthread_mutex_lock(&r->mu);
	*flag = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Wait for *flag at most `secs`: false on time-out. */
static bool wait_flag(struct live_run *r, bool *flag, double secs)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)secs;
	pthread_mutex_lock(&r->mu);
	int err = 0;
	while (!*flag && err != ETIMEDOUT)
		err = pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	bool ok = *flag;
	pthread_mutex_unlock(&r->mu);
	return ok;
}

static void fail(struct live_mode *m, const char *what, const struct client *c, long code)
{
	if (m->errors++ < 10)
		fprintf(stderr, "bench: live: %s (client %u, %s): %ld\n", what, c ? c->idx : 0,
			c ? c->url : "-", code);
}

/* ------------------------------------------------------------ the writer */

/* The control: a busy thread on CPU 1 that touches nothing of the engine. */
static void *spin_main(void *arg)
{
	struct live_run *r = arg;
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	while (atomic_load(&r->phase) != PH_DONE)
		for (int i = 0; i < 100000; i++)
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	return (void *)(uintptr_t)(x & 1);
}

/* The other control: copy 32 MiB back and forth (64 MiB > the L3). */
static void *stream_main(void *arg)
{
	struct live_run *r = arg;
	char *a = malloc(STREAM_BYTES), *b = malloc(STREAM_BYTES);
	if (a && b) {
		memset(a, 1, STREAM_BYTES);
		memset(b, 2, STREAM_BYTES);
		for (unsigned i = 0; atomic_load(&r->phase) != PH_DONE; i++)
			memcpy(i % 2 ? a : b, i % 2 ? b : a, STREAM_BYTES);
	}
	free(a);
	free(b);
	return NULL;
}

static void *writer_main(void *arg)
{
	struct live_run *r = arg;
	struct workload *W = r->W;
	const uint32_t *d = W->draws[0];
	struct st_sample buf[BENCH_BATCH];
	set_cpu(r->pinned, 0);
	atomic_store(&r->writer_tid, (pid_t)syscall(SYS_gettid));
	struct st_writer *w = st_writer_open(r->e);
	if (!w || W->samples % BENCH_BATCH) {
		if (w)
			st_writer_close(w);
		r->errors++;
		atomic_store(&r->phase, PH_DONE); /* ends the other threads' loops */
		signal_flag(r, &r->warm);
		return NULL;
	}
	/* Warm-up: one pass, published, so the trie and the shard tables
	 * exist before the timed span (the steady state). */
	for (size_t i = 0; i < W->samples; i += BENCH_BATCH) {
		size_t k = W->samples - i < BENCH_BATCH ? W->samples - i : BENCH_BATCH;
		bench_fill_batch(W, d + i, k, buf);
		r->errors += (uint64_t)(st_writer_ingest_batch(w, buf, k) != (long)k);
	}
	r->warm_samples = W->samples;
	st_flush(r->e);
	signal_flag(r, &r->warm);
	if (!wait_flag(r, &r->go, READY_WAIT_S + 30)) {
		atomic_store(&r->phase, PH_DONE);
		st_writer_close(w);
		return NULL;
	}
	struct rusage u0, u1;
	unsigned long long ipi0 = cpu0_ipis(), ipi1;
	getrusage(RUSAGE_THREAD, &u0);
	double t0 = bench_now(), c0 = bench_cpu(), t1 = t0, end = t0 + r->span;
	atomic_store(&r->t_end, end);
	atomic_store(&r->phase, PH_TIMED);
	uint64_t n = 0;
	size_t i = 0;
	for (unsigned b = 0;; b++) {
		if (i + BENCH_BATCH > W->samples)
			i = 0; /* W->samples is a multiple of the batch */
		bench_fill_batch(W, d + i, BENCH_BATCH, buf);
		r->errors += (uint64_t)(st_writer_ingest_batch(w, buf, BENCH_BATCH) != BENCH_BATCH);
		i += BENCH_BATCH;
		n += BENCH_BATCH;
		if (b % 8 == 7 && (t1 = bench_now()) >= end)
			break;
	}
	r->cpu = bench_cpu() - c0;
	r->secs = t1 - t0;
	getrusage(RUSAGE_THREAD, &u1);
	ipi1 = cpu0_ipis();
	r->ipis = r->secs > 0 ? (double)(ipi1 - ipi0) / r->secs : 0;
	r->vcsw = u1.ru_nvcsw - u0.ru_nvcsw;
	r->ivcsw = u1.ru_nivcsw - u0.ru_nivcsw;
	r->samples = n;
	/* ST_BENCH_SPANS=1: each timed span on stderr (CLOCK_MONOTONIC
	 * seconds), to line up with `perf record -k CLOCK_MONOTONIC`. */
	if (getenv("ST_BENCH_SPANS"))
		fprintf(stderr, "span %s-%s %.6f %.6f\n", r->pinned ? "pinned" : "unpinned",
			rkname[r->kind], t0, t1);
	atomic_store(&r->phase, PH_DONE);
	st_writer_close(w);
	if (r->multi)
		curl_multi_wakeup(r->multi);
	return NULL;
}

/* ------------------------------------------------------------ the clients */

/* SSE: count the lines that start with "data:" (one per event). */
static size_t sse_body(char *p, size_t sz, size_t nm, void *arg)
{
	struct client *c = arg;
	size_t n = sz * nm;
	for (size_t i = 0; i < n;) {
		if (c->col < sizeof(c->pre)) {
			char ch = p[i++];
			if (ch == '\n') {
				c->col = 0;
				continue;
			}
			c->pre[c->col++] = ch;
			if (c->col == sizeof(c->pre) && !memcmp(c->pre, "data:", 5)) {
				c->events++;
				if (atomic_load(&c->run->phase) == PH_TIMED)
					c->run->m->sse_events++;
			}
			continue;
		}
		const char *nl = memchr(p + i, '\n', n - i);
		if (!nl)
			break;
		i = (size_t)(nl - p) + 1;
		c->col = 0;
	}
	if (atomic_load(&c->run->phase) == PH_TIMED)
		c->run->m->sse_bytes += n;
	return n;
}

static size_t count_body(char *p, size_t sz, size_t nm, void *arg)
{
	struct client *c = arg;
	size_t n = sz * nm;
	for (size_t i = 0; i < n && c->body + i < 2; i++)
		c->magic[c->body + i] = (unsigned char)p[i];
	c->body += n;
	return n;
}

static int client_init(struct live_run *r, struct client *c, enum ckind kind, unsigned idx)
{
	c->kind = kind;
	c->idx = idx;
	c->run = r;
	c->h = curl_easy_init();
	if (!c->h)
		return -1;
	const char *path = "/events";
	if (kind == C_POLL)
		path = idx % 2 ? "/api/snapshot?format=json&min_fraction=0.001"
			       : "/api/snapshot?format=flamebearer&max_nodes=1024";
	c->inm = kind == C_POLL && idx % 2 == 0;
	char tmp[64];
	if (kind == C_SCRAPE) {
		snprintf(tmp, sizeof(tmp), "/debug/pprof/profile?seconds=%u", r->scrape_s);
		path = tmp;
	}
	snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%u%s", r->port, path);
	curl_easy_setopt(c->h, CURLOPT_URL, c->url);
	curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, kind == C_SSE ? sse_body : count_body);
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
	if (kind == C_SSE)
		c->hdrs = curl_slist_append(NULL, "Accept: text/event-stream");
	else /* bounded: a request the server never answers is a failure */
		curl_easy_setopt(c->h, CURLOPT_TIMEOUT, (long)(DONE_WAIT_S + r->scrape_s));
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
	/* Pollers start spread over one period, as independent UIs would. */
	c->next_due = bench_now() + (kind == C_POLL ? idx * POLL_MS * 1e-3 / NPOLL : 0);
	return 0;
}

static void client_start(struct live_run *r, struct client *c, double now)
{
	if (c->inm && c->etag[0]) {
		char h[96];
		snprintf(h, sizeof(h), "If-None-Match: %s", c->etag);
		curl_slist_free_all(c->hdrs);
		c->hdrs = curl_slist_append(NULL, h);
		curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
	}
	c->body = 0;
	c->started = now;
	c->timed = atomic_load(&r->phase) == PH_TIMED;
	c->active = curl_multi_add_handle(r->multi, c->h) == CURLM_OK;
	if (!c->active)
		fail(r->m, "curl_multi_add_handle failed", c, 0);
}

static void poll_done(struct live_run *r, struct client *c, long code)
{
	struct live_mode *m = r->m;
	curl_off_t us = 0, dl = 0;
	curl_easy_getinfo(c->h, CURLINFO_TOTAL_TIME_T, &us);
	curl_easy_getinfo(c->h, CURLINFO_SIZE_DOWNLOAD_T, &dl);
	struct curl_header *eh;
	if (code == 200 && curl_easy_header(c->h, "ETag", 0, CURLH_HEADER, -1, &eh) == CURLHE_OK)
		snprintf(c->etag, sizeof(c->etag), "%s", eh->value);
	if (code != 200 && code != 304)
		fail(m, "/api/snapshot answered", c, code);
	else
		c->answers++;
	if (!c->timed || (code != 200 && code != 304))
		return;
	if (m->nlat < LIVE_MAX_LAT)
		m->lat[m->nlat++] = (double)us * 1e-3;
	m->snaps_200 += code == 200;
	m->snaps_304 += code == 304;
	m->snap_bytes += (uint64_t)dl;
}

static void scrape_done(struct live_run *r, struct client *c, long code)
{
	struct live_mode *m = r->m;
	if (code != 200 || c->body < 2 || c->magic[0] != 0x1f || c->magic[1] != 0x8b) {
		fail(m, "scrape not a 200 gzip answer", c, code);
		return;
	}
	m->scrapes++;
	m->scrape_bytes += c->body;
}

static void one_done(struct live_run *r, CURLMsg *msg)
{
	char *priv = NULL;
	long code = 0;
	curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
	struct client *c = (struct client *)priv;
	curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
	curl_multi_remove_handle(r->multi, msg->easy_handle);
	c->active = false;
	if (msg->data.result != CURLE_OK) {
		fail(r->m, curl_easy_strerror(msg->data.result), c, code);
		return;
	}
	if (c->kind == C_SSE)
		fail(r->m, "an /events stream ended", c, code);
	else if (c->kind == C_POLL)
		poll_done(r, c, code);
	else
		scrape_done(r, c, code);
}

/* Start what is due: pollers on their period, scrapers back to back while
 * a whole window fits before the writer's end. */
static void start_due(struct live_run *r, double now)
{
	int ph = atomic_load(&r->phase);
	for (unsigned i = 0; i < NCLIENTS; i++) {
		struct client *c = &r->c[i];
		if (c->active || ph == PH_DONE)
			continue;
		if (c->kind == C_POLL && now >= c->next_due) {
			/* Fixed rate: a period after the last start, or a period
			 * from now when the last answer came later than that. */
			double next = c->next_due + POLL_MS * 1e-3;
			c->next_due = next > now ? next : now + POLL_MS * 1e-3;
			client_start(r, c, now);
		} else if (c->kind == C_SCRAPE && ph == PH_TIMED &&
			   now + r->scrape_s <= atomic_load(&r->t_end)) {
			client_start(r, c, now);
		}
	}
}

static bool all_ready(const struct live_run *r)
{
	for (unsigned i = 0; i < NSSE + NPOLL; i++)
		if (r->c[i].kind == C_SSE ? !r->c[i].events : !r->c[i].answers)
			return false;
	return true;
}

static bool scrapes_active(const struct live_run *r)
{
	for (unsigned i = NSSE + NPOLL; i < NCLIENTS; i++)
		if (r->c[i].active)
			return true;
	return false;
}

static void *clients_main(void *arg)
{
	struct live_run *r = arg;
	for (unsigned i = 0; i < NSSE; i++)
		client_start(r, &r->c[i], bench_now());
	double deadline = 0;
	for (;;) {
		double now = bench_now();
		start_due(r, now);
		int running = 0, left;
		curl_multi_perform(r->multi, &running);
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(r->multi, &left)))
			if (msg->msg == CURLMSG_DONE)
				one_done(r, msg);
		if (!r->ready && all_ready(r))
			signal_flag(r, &r->ready);
		if (atomic_load(&r->phase) == PH_DONE) {
			deadline = deadline ? deadline : now + DONE_WAIT_S;
			if (!scrapes_active(r))
				break;
			if (now > deadline) {
				fail(r->m, "scrape still running after the run", NULL, 0);
				break;
			}
		}
		curl_multi_poll(r->multi, NULL, 0, 5, NULL);
	}
	for (unsigned i = 0; i < NCLIENTS; i++)
		if (r->c[i].active)
			curl_multi_remove_handle(r->multi, r->c[i].h);
	signal_flag(r, &r->clients_done);
	return NULL;
}

/* ------------------------------------------------------------ one run */

/* GET /api/status: its "encodes" and "sse_dropped" (-1 when unreadable). */
static void status_of(unsigned port, long long *encodes, long long *sse_dropped)
{
	char url[64], *buf = NULL;
	size_t len = 0;
	*encodes = *sse_dropped = -1;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/status", port);
	FILE *f = open_memstream(&buf, &len);
	CURL *h = curl_easy_init();
	if (f && h) {
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
		curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_perform(h);
	}
	if (h)
		curl_easy_cleanup(h);
	if (f)
		fclose(f);
	json_t *j = buf ? json_loadb(buf, len, 0, NULL) : NULL;
	if (json_is_integer(json_object_get(j, "encodes")))
		*encodes = json_integer_value(json_object_get(j, "encodes"));
	if (json_is_integer(json_object_get(j, "sse_dropped")))
		*sse_dropped = json_integer_value(json_object_get(j, "sse_dropped"));
	json_decref(j);
	free(buf);
}

/* Every thread of this process but the caller and `except`, with its name:
 * fn(tid, name, arg).  A thread that exits meanwhile is skipped. */
static void each_thread(pid_t except, void (*fn)(pid_t, const char *, void *), void *arg)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	pid_t self = (pid_t)syscall(SYS_gettid);
	if (!d)
		return;
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);
		char path[64], name[32] = "?";
		if (tid <= 0 || tid == except || tid == self)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tid);
		FILE *f = fopen(path, "r");
		if (f) {
			if (fgets(name, sizeof(name), f))
				name[strcspn(name, "\n")] = 0;
			fclose(f);
		}
		fn(tid, name, arg);
	}
	closedir(d);
}

static void count_on_cpu0(pid_t tid, const char *name, void *arg)
{
	cpu_set_t set;
	if (sched_getaffinity(tid, sizeof(set), &set) || !CPU_ISSET(0, &set))
		return;
	if ((*(uint64_t *)arg)++ < 4)
		fprintf(stderr, "bench: live: thread %d (%s) is allowed on CPU 0\n", (int)tid, name);
}

static void place_thread(pid_t tid, const char *name, void *arg)
{
	sched_setaffinity(tid, sizeof(cpu_set_t), arg);
}

/* Threads made before the run (liburcu's call_rcu thread, which frees the
 * snapshots readers release, jemalloc's, earlier steps') follow the run's
 * placement too: CPU 1 when pinned, any CPU otherwise. */
static void place_others(bool pinned)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	for (unsigned i = 0; i < cfg.ncpu && i < CPU_SETSIZE; i++)
		if (!pinned || cfg.ncpu < 2 || i == 1)
			CPU_SET(i, &set);
	each_thread(0, place_thread, &set);
}

/* The clients of a loaded run up to the start of the timed span: 0, or -1
 * after a message. */
static int clients_start(struct live_run *r, pthread_t *tid)
{
	r->multi = curl_multi_init();
	if (!r->multi)
		return -1;
	for (unsigned i = 0; i < NCLIENTS; i++) {
		enum ckind k = i < NSSE ? C_SSE : i < NSSE + NPOLL ? C_POLL : C_SCRAPE;
		if (client_init(r, &r->c[i], k, i))
			return -1;
	}
	if (start_placed(tid, r->pinned, clients_main, r))
		return -1;
	r->have_clients = true;
	if (!wait_flag(r, &r->ready, READY_WAIT_S)) {
		fprintf(stderr, "bench: live: clients not all answered within %d s\n", READY_WAIT_S);
		return -1;
	}
	return 0;
}

static void clients_free(struct live_run *r)
{
	for (unsigned i = 0; i < NCLIENTS; i++) {
		if (r->c[i].h)
			curl_easy_cleanup(r->c[i].h);
		curl_slist_free_all(r->c[i].hdrs);
	}
	if (r->multi)
		curl_multi_cleanup(r->multi);
}

/* The engine's root total against what was ingested: samples off. */
static uint64_t run_lost(struct live_run *r)
{
	st_flush(r->e);
	struct st_snap *s = st_snap_acquire(r->e);
	uint64_t got = st_snap_total(s, ST_NODE_ROOT, 0), want = r->warm_samples + r->samples;
	st_snap_release(s);
	struct st_stats st = { .size = sizeof(st) };
	st_engine_stats(r->e, &st);
	return r->errors + st.dropped + (got > want ? got - want : want - got);
}

/* Runs as the caller placed itself: the engine's merger and the server's
 * threads inherit its affinity. */
static int run_body(struct live_run *r, struct st_live *srv)
{
	pthread_t wt, ct, st;
	bool clients = false, spin = false;
	int rc = 0;
	r->port = st_live_port(srv);
	if (pthread_create(&wt, NULL, writer_main, r))
		return -1;
	if (!wait_flag(r, &r->warm, 60))
		rc = -1;
	long long enc0 = 0, enc1, drop0 = 0, drop1;
	if (!rc && r->loaded) {
		rc = clients_start(r, &ct);
		clients = r->have_clients;
		status_of(r->port, &enc0, &drop0);
	}
	if (!rc && (r->kind == RK_SPIN || r->kind == RK_STREAM))
		spin = start_placed(&st, true, r->kind == RK_SPIN ? spin_main : stream_main, r) == 0;
	signal_flag(r, &r->go);
	if (r->pinned && cfg.ncpu > 1)
		each_thread(atomic_load(&r->writer_tid), count_on_cpu0, &r->m->off_cpu);
	pthread_join(wt, NULL);
	if (spin)
		pthread_join(st, NULL);
	if (clients && !wait_flag(r, &r->clients_done, DONE_WAIT_S + 10)) {
		fprintf(stderr, "bench: live: the client thread did not finish\n");
		exit(2);
	}
	if (clients) {
		pthread_join(ct, NULL);
		status_of(r->port, &enc1, &drop1);
		r->m->encodes += (uint64_t)(enc1 - enc0);
		r->m->sse_dropped += (uint64_t)(drop1 - drop0);
	}
	clients_free(r);
	return rc;
}

static int live_run(struct workload *W, struct live_mode *m, enum rkind kind, bool pinned,
		    double span, unsigned scrape_s, struct result *res)
{
	static struct live_run r; /* big (clients); one run at a time */
	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	r.m = m;
	r.kind = kind;
	r.loaded = kind == RK_LOAD;
	r.pinned = pinned;
	r.span = span;
	r.scrape_s = scrape_s;
	r.W = W;
	/* The merger and libmicrohttpd's threads start from here. */
	place_others(pinned);
	set_cpu(pinned, 1);
	/* ST_BENCH_LIVE_MERGE_MS: another merger period, for experiments. */
	const char *mm = getenv("ST_BENCH_LIVE_MERGE_MS");
	r.e = bench_engine(W, mm && atoi(mm) > 0 ? (unsigned)atoi(mm) : 10);
	struct st_live_opts o;
	st_live_opts_init(&o);
	struct st_live *srv = st_live_start(r.e, &o);
	set_cpu(false, 0);
	if (!srv) {
		fprintf(stderr, "bench: live: st_live_start: %s\n", strerror(errno));
		st_engine_destroy(r.e);
		return -1;
	}
	int rc = run_body(&r, srv);
	st_live_stop(srv);
	memset(res, 0, sizeof(*res));
	res->samples = r.samples;
	res->secs = res->e2e_secs = r.secs;
	res->cpu_secs = r.cpu;
	res->lost = run_lost(&r);
	/* The writer's context switches per timed second: voluntary ones are
	 * waits (a lock, a page fault's I/O), involuntary ones preemption. */
	m->vcsw[kind] += r.secs > 0 ? (double)r.vcsw / r.secs : 0;
	m->ivcsw[kind] += r.secs > 0 ? (double)r.ivcsw / r.secs : 0;
	m->ipis[kind] += r.ipis;
	st_engine_destroy(r.e);
	pthread_cond_destroy(&r.cv);
	pthread_mutex_destroy(&r.mu);
	return rc;
}

/* ------------------------------------------------------------ pairs */

static double drop_of(double base, double x)
{
	return base > 0 ? 1 - x / base : 0;
}

/* One pair (pinned: with the two controls): the runs back to
 * back, their order reversed every other time, so that a drift of the
 * host's speed counts against each side equally often. */
static int live_pair(struct workload *W, struct live_mode *m, bool pinned, double span,
		     unsigned scrape_s)
{
	struct result res[NRK];
	size_t k = m->n;
	char kind[32];
	unsigned nk = pinned ? NRK : 2;
	if (k >= LIVE_MAX_PAIRS)
		return 0;
	for (unsigned i = 0; i < nk; i++) {
		enum rkind rk = (enum rkind)(k % 2 ? nk - 1 - i : i);
		if (live_run(W, m, rk, pinned, span, scrape_s, &res[rk]))
			return -1;
		snprintf(kind, sizeof(kind), "live-%s-%s-", pinned ? "pinned" : "unpinned",
			 rkname[rk]);
		record(W_HOT, V_BATCH, 1, 10, (unsigned)k + 1, &res[rk], kind);
	}
	m->idle[k] = mps(&res[RK_IDLE]);
	m->load[k] = mps(&res[RK_LOAD]);
	m->idle_cpu[k] = mps_cpu(&res[RK_IDLE]);
	m->load_cpu[k] = mps_cpu(&res[RK_LOAD]);
	m->drop[k] = drop_of(m->idle[k], m->load[k]);
	m->drop_cpu[k] = drop_of(m->idle_cpu[k], m->load_cpu[k]);
	if (pinned) {
		m->spin_drop[k] = drop_of(m->idle[k], mps(&res[RK_SPIN]));
		m->spin_drop_cpu[k] = drop_of(m->idle_cpu[k], mps_cpu(&res[RK_SPIN]));
		m->stream_drop[k] = drop_of(m->idle[k], mps(&res[RK_STREAM]));
		m->stream_drop_cpu[k] = drop_of(m->idle_cpu[k], mps_cpu(&res[RK_STREAM]));
	}
	m->loaded_secs += res[RK_LOAD].secs;
	m->n++;
	return 0;
}

static void mode_done(struct live_mode *m)
{
	double tmp[LIVE_MAX_PAIRS];
#define MED(dst, src) (memcpy(tmp, m->src, m->n * sizeof(double)), dst = bench_median(tmp, m->n))
	MED(m->med_idle, idle);
	MED(m->med_load, load);
	MED(m->med_idle_cpu, idle_cpu);
	MED(m->med_load_cpu, load_cpu);
	MED(m->med_drop_cpu, drop_cpu);
	MED(m->med_drop, drop);
	MED(m->med_spin_drop, spin_drop);
	MED(m->med_spin_drop_cpu, spin_drop_cpu);
	MED(m->med_stream_drop, stream_drop);
	MED(m->med_stream_drop_cpu, stream_drop_cpu);
#undef MED
	m->q1 = bench_pct(m->drop, m->n, 0.25);
	m->q3 = bench_pct(m->drop, m->n, 0.75);
	m->p50_ms = bench_pct(m->lat, m->nlat, 0.50);
	m->p99_ms = bench_pct(m->lat, m->nlat, 0.99);
	m->max_ms = bench_pct(m->lat, m->nlat, 1.0);
}

/* /proc/stat's busy and total jiffies over all CPUs. */
static void cpu_jiffies(unsigned long long *busy, unsigned long long *total)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	*busy = *total = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (int i = 0; i < 8; i++)
			*total += v[i];
		*busy = *total - v[3] - v[4]; /* minus idle and iowait */
	}
	fclose(f);
}

static double self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e-6;
}

int live_load(struct workload *hot, struct live_cost *lc)
{
	unsigned long long b0, t0, b1, t1;
	/* A scrape costs its two snapshot acquisitions and the delta encode at
	 * its end, whatever its length: 1-second windows back to back are the
	 * most load two scrapers can make. */
	lc->span = cfg.short_mode ? 1.5 : 4.0;
	lc->scrape_s = 1;
	lc->pinned.lat = calloc(LIVE_MAX_LAT, sizeof(double));
	lc->unpinned.lat = calloc(LIVE_MAX_LAT, sizeof(double));
	if (!lc->pinned.lat || !lc->unpinned.lat || curl_global_init(CURL_GLOBAL_DEFAULT)) {
		fprintf(stderr, "bench: live: cannot set up libcurl\n");
		return -1;
	}
	if (!wl_draws(hot, 0))
		return -1;
	double w0 = bench_now(), s0 = self_cpu();
	cpu_jiffies(&b0, &t0);
	getloadavg(lc->load0, 3);
	/* The host's speed swings by +-20 % between runs seconds apart: 3
	 * pairs left the median within +-0.1 of the truth, 7 within a few
	 * hundredths (docs/benchmarking.md). */
	unsigned pairs = cfg.reps < 7 ? 7 : cfg.reps;
	for (unsigned k = 0; k < pairs; k++) {
		if (live_pair(hot, &lc->pinned, true, lc->span, lc->scrape_s) ||
		    live_pair(hot, &lc->unpinned, false, lc->span, lc->scrape_s))
			return -1;
	}
	cpu_jiffies(&b1, &t1);
	getloadavg(lc->load1, 3);
	lc->secs = bench_now() - w0;
	/* Other processes' CPUs: the host's busy share minus this process's. */
	double busy_cpus = t1 > t0 ? (double)(b1 - b0) / (double)(t1 - t0) * cfg.ncpu : 0;
	lc->other_cpus = busy_cpus - (self_cpu() - s0) / lc->secs;
	mode_done(&lc->pinned);
	mode_done(&lc->unpinned);
	curl_global_cleanup();
	return 0;
}

/* ------------------------------------------------------------ report */

static void mode_print(const struct live_mode *m, const char *what, bool pinned)
{
	printf("  %s: 0 clients %.2f M/s, 42 clients %.2f M/s (medians of %zu pairs); per-pair "
	       "drop median %.3f, IQR %.3f..%.3f; per writer CPU-second %.2f vs %.2f M/s, "
	       "drop %.3f\n",
	       what, m->med_idle, m->med_load, m->n, m->med_drop, m->q1, m->q3, m->med_idle_cpu,
	       m->med_load_cpu, m->med_drop_cpu);
	double n = m->n ? (double)m->n : 1;
	printf("    per second of the writer, 0 clients / 42 clients / spin / stream: voluntary "
	       "context switches %.1f / %.1f / %.1f / %.1f, involuntary %.1f / %.1f / %.1f / "
	       "%.1f, IPIs to CPU 0 %.0f / %.0f / %.0f / %.0f\n",
	       m->vcsw[RK_IDLE] / n, m->vcsw[RK_LOAD] / n, m->vcsw[RK_SPIN] / n,
	       m->vcsw[RK_STREAM] / n, m->ivcsw[RK_IDLE] / n, m->ivcsw[RK_LOAD] / n,
	       m->ivcsw[RK_SPIN] / n, m->ivcsw[RK_STREAM] / n, m->ipis[RK_IDLE] / n,
	       m->ipis[RK_LOAD] / n, m->ipis[RK_SPIN] / n, m->ipis[RK_STREAM] / n);
	if (pinned)
		printf("    controls instead of the clients, a thread on CPU 1 spinning / copying "
		       "2 x 32 MiB: drop %.3f / %.3f wall, %.3f / %.3f per writer CPU-second "
		       "(medians)\n",
		       m->med_spin_drop, m->med_stream_drop, m->med_spin_drop_cpu,
		       m->med_stream_drop_cpu);
	printf("    /api/snapshot: %zu answers (%llu 200, %llu 304, %.1f MiB) p50 %.2f ms "
	       "p99 %.2f ms max %.2f ms; /events: %llu events delivered to 32 clients "
	       "(%.1f per client-second, %.1f MiB), %llu dropped as slow; encodes %llu; "
	       "scrapes: %llu (%.1f KiB each); client errors %llu\n",
	       m->nlat, (unsigned long long)m->snaps_200, (unsigned long long)m->snaps_304,
	       (double)m->snap_bytes / 1048576, m->p50_ms, m->p99_ms, m->max_ms,
	       (unsigned long long)m->sse_events,
	       m->loaded_secs > 0 ? (double)m->sse_events / (NSSE * m->loaded_secs) : 0,
	       (double)m->sse_bytes / 1048576, (unsigned long long)m->sse_dropped,
	       (unsigned long long)m->encodes, (unsigned long long)m->scrapes,
	       m->scrapes ? (double)m->scrape_bytes / 1024 / (double)m->scrapes : 0,
	       (unsigned long long)m->errors);
}

void live_print(const struct live_cost *lc)
{
	printf("\nlive load (hot, 1 writer, batch API, merger 10 ms, in-process server; %.1f s "
	       "timed per run, scrapes of %u s; 32 SSE + 8 pollers every 100 ms + 2 scrapers):\n",
	       lc->span, lc->scrape_s);
	mode_print(&lc->pinned, "pinned (writer on CPU 0, the rest on CPU 1; live_drop = the "
				"drop per writer CPU-second, live_drop_wall)", true);
	printf("    threads besides the writer allowed on CPU 0 during the loaded runs: %llu "
	       "(must be 0)\n", (unsigned long long)lc->pinned.off_cpu);
	mode_print(&lc->unpinned, "unpinned (live_drop_unpinned, wall clock)", false);
	printf("  %.1f s in all; load average %.2f before, %.2f after; other processes used "
	       "%.2f CPUs meanwhile\n",
	       lc->secs, lc->load0[0], lc->load1[0], lc->other_cpus);
}

static void json_mode(FILE *js, const struct live_mode *m, const char *name, const char *tail)
{
	double n = m->n ? (double)m->n : 1;
	fprintf(js,
		"    \"%s\": {\"pairs\": %zu, \"mps_idle\": %.3f, \"mps_loaded\": %.3f, "
		"\"drop\": %.4f, \"drop_q1\": %.4f, \"drop_q3\": %.4f, \"mps_cpu_idle\": %.3f, "
		"\"mps_cpu_loaded\": %.3f, \"drop_cpu\": %.4f, \"snap_answers\": %zu, "
		"\"snap_200\": %llu, \"snap_304\": %llu, \"snap_bytes\": %llu, "
		"\"snap_p50_ms\": %.3f, \"snap_p99_ms\": %.3f, \"snap_max_ms\": %.3f, "
		"\"sse_events\": %llu, \"sse_bytes\": %llu, \"sse_dropped\": %llu, "
		"\"encodes\": %llu, \"scrapes\": %llu, \"scrape_bytes\": %llu, "
		"\"errors\": %llu, \"spin_drop\": %.4f, \"spin_drop_cpu\": %.4f, "
		"\"stream_drop\": %.4f, \"stream_drop_cpu\": %.4f, "
		"\"ipis_per_s\": [%.1f, %.1f, %.1f, %.1f], "
		"\"vcsw_per_s\": [%.1f, %.1f, %.1f, %.1f], "
		"\"ivcsw_per_s\": [%.1f, %.1f, %.1f, %.1f]}%s\n",
		name, m->n, m->med_idle, m->med_load, m->med_drop, m->q1, m->q3, m->med_idle_cpu,
		m->med_load_cpu, m->med_drop_cpu, m->nlat, (unsigned long long)m->snaps_200,
		(unsigned long long)m->snaps_304, (unsigned long long)m->snap_bytes, m->p50_ms,
		m->p99_ms, m->max_ms, (unsigned long long)m->sse_events,
		(unsigned long long)m->sse_bytes, (unsigned long long)m->sse_dropped,
		(unsigned long long)m->encodes, (unsigned long long)m->scrapes,
		(unsigned long long)m->scrape_bytes, (unsigned long long)m->errors,
		m->med_spin_drop, m->med_spin_drop_cpu, m->med_stream_drop, m->med_stream_drop_cpu,
		m->ipis[0] / n, m->ipis[1] / n, m->ipis[2] / n, m->ipis[3] / n, m->vcsw[0] / n,
		m->vcsw[1] / n, m->vcsw[2] / n, m->vcsw[3] / n, m->ivcsw[0] / n, m->ivcsw[1] / n,
		m->ivcsw[2] / n, m->ivcsw[3] / n, tail);
}

void live_json(FILE *js, const struct live_cost *lc)
{
	fprintf(js, "  \"live\": {\"span_s\": %.2f, \"scrape_s\": %u, \"secs\": %.2f, "
		    "\"loadavg_before\": %.2f, \"loadavg_after\": %.2f, \"other_cpus\": %.3f,\n",
		lc->span, lc->scrape_s, lc->secs, lc->load0[0], lc->load1[0], lc->other_cpus);
	json_mode(js, &lc->pinned, "pinned", ",");
	json_mode(js, &lc->unpinned, "unpinned", "");
	fprintf(js, "  },\n");
}

/* Client failures, and threads found where the pinned placement says they
 * are not: either voids the figures. */
uint64_t live_errors(const struct live_cost *lc)
{
	return lc->pinned.errors + lc->unpinned.errors + lc->pinned.off_cpu;
}
