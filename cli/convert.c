/* SPDX-License-Identifier: MIT */
/*
 * convert.c - `shardtrie convert`: stack files in, a flamegraph format out,
 * through the engine.
 *
 *   reader (this thread, input.c)               parser threads (N)
 *   4 MiB blocks (of the mapped file, or  --->  st_folded_ingest() into
 *   read()), cut at the last '\n'       bounded  their own writer/shard
 *                                        queue
 *   then st_flush() -> snapshot -> exporter -> atomic output file
 *   (folded output: the shards' distinct stacks, sorted, with no trie or
 *   snapshot: st_export_folded_once)
 *
 * Memory is bounded by the queue (2 blocks per thread) plus the trie, not
 * by the input size.  A line longer than a block is reported and skipped
 * by the reader without being buffered.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "shardtrie_parse.h"

#define MAX_REPORTED 100

/* convert's own long options (below ST_OPT_EXPORT_FIRST). */
enum convert_opt {
	OPT_FROM = 'f',
	OPT_TO = 't',
	OPT_OUTPUT = 'o',
	OPT_THREADS = 'j',
	OPT_HELP = 'h',
	OPT_METRIC = 1000,
	OPT_STRICT,
};

struct convert_opts {
	const char *from, *to, *out, *metric;
	long threads;
	bool strict;
	bool perf; /* -f perf (else folded) */
	int fmt;
	const char *perf_only; /* the first perf-only option given, for -f folded */
	struct st_perf_opts po;
	struct st_export_opts eo;
};

/* A block on its way to a parser thread. */
struct block {
	struct st_input_block in;
	const char *event; /* perf: the event filter in force, or NULL */
	size_t event_len;  /* its bytes (an event name may hold a NUL byte) */
	struct block *next;
};

struct job {
	struct st_engine *e;
	struct st_input *in;
	unsigned metric;
	bool perf;                  /* -f perf (else folded) */
	struct st_perf_opts popts;  /* perf options; event set per block */
	char *event;                /* perf: first event seen (or --event-filter) */
	size_t event_len;           /* its bytes: it may hold a NUL byte */
	/* perf, for pprof; reader thread only: the first sample's period (0 =
	 * none) and the earliest and latest sample times met. */
	uint64_t first_period, t_min, t_max;
	bool hdr_seen, t_seen;
	pthread_mutex_t mu;
	pthread_cond_t cv_items, cv_space;
	struct block *head, *tail;
	unsigned queued, max_queued;
	bool done;
	/* Totals, under mu. */
	struct st_parse_stats stats;
	struct ev_count {
		char *name; /* len bytes (a NUL byte among them is possible), NUL-terminated */
		size_t len;
		uint64_t samples;
	} *ev; /* perf: samples per event, first seen first */
	size_t nev;
	uint64_t reported;
	int err;
	pthread_t *tids;
	long started;
};

/* One parser thread's state. */
struct worker {
	struct job *j;
	struct block *cur;
	struct st_writer *w;
	struct st_perf_cache *pc; /* perf: frame and sample caches across blocks */
	struct st_parse_stats st;
	int err;
};

static void set_err(struct job *j, int err)
{
	pthread_mutex_lock(&j->mu);
	if (err && !j->err)
		j->err = err;
	pthread_mutex_unlock(&j->mu);
}

/* A parser rejected line `line` of the worker's current block. */
static void on_bad_line(void *arg, uint64_t line, const char *msg)
{
	struct worker *w = arg;
	const struct st_input_block *b = &w->cur->in;
	uint64_t at = st_input_line(w->j->in, b, line);
	pthread_mutex_lock(&w->j->mu);
	st_input_report(&w->j->reported, MAX_REPORTED, b->file, at, msg);
	pthread_mutex_unlock(&w->j->mu);
}

/* The reader skipped a line longer than a block. */
static void on_long_line(void *arg, const char *file, uint64_t line, const char *msg)
{
	struct job *j = arg;
	pthread_mutex_lock(&j->mu);
	j->stats.malformed++;
	j->stats.lines++;
	st_input_report(&j->reported, MAX_REPORTED, file, line, msg);
	pthread_mutex_unlock(&j->mu);
}

/* The next queued block, or NULL once the queue is empty and done. */
static struct block *take_block(struct job *j)
{
	pthread_mutex_lock(&j->mu);
	while (!j->head && !j->done)
		pthread_cond_wait(&j->cv_items, &j->mu);
	struct block *b = j->head;
	if (b) {
		j->head = b->next;
		if (!j->head)
			j->tail = NULL;
		j->queued--;
		pthread_cond_signal(&j->cv_space);
	}
	pthread_mutex_unlock(&j->mu);
	return b;
}

static int parse_block(struct worker *w, struct block *b)
{
	struct job *j = w->j;
	w->cur = b;
	if (j->perf) {
		struct st_perf_opts po = j->popts;
		po.event = b->event;
		po.event_len = b->event_len;
		return st_perf_ingest_cached(w->pc, w->w, j->metric, &po, b->in.buf, b->in.len,
					     on_bad_line, w, &w->st);
	}
	return st_folded_ingest(w->w, st_engine_nmetrics(j->e), j->metric, b->in.buf, b->in.len,
				on_bad_line, w, &w->st);
}

static void add_stats(struct st_parse_stats *to, const struct st_parse_stats *from)
{
	to->lines += from->lines;
	to->samples += from->samples;
	to->skipped += from->skipped;
	to->malformed += from->malformed;
	to->dropped += from->dropped;
	to->sum = st_sat_add(to->sum, from->sum);
	to->other_events += from->other_events;
	to->truncated += from->truncated;
}

/* Event names are compared and copied as bytes: one may hold a NUL byte
 * (perf prints what the event was named), and two names that differ after
 * it are two events, as stackcollapse-perf.pl sees them. */
static bool same_event(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

static char *dup_bytes(const char *s, size_t len)
{
	char *d = malloc(len + 1);
	if (d) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

/* An event name on stderr, a NUL byte in it as "\0". */
static void put_event(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i])
			fputc(s[i], stderr);
		else
			fputs("\\0", stderr);
}

/* A worker's per-event sample counts into the job's.  Caller holds mu. */
static int add_events_locked(struct job *j, const struct st_perf_cache *c)
{
	const char *name;
	size_t len;
	uint64_t n;
	for (size_t i = 0; st_perf_cache_event(c, i, &name, &len, &n); i++) {
		size_t k = 0;
		while (k < j->nev && !same_event(j->ev[k].name, j->ev[k].len, name, len))
			k++;
		if (k == j->nev) {
			struct ev_count *ne = realloc(j->ev, (j->nev + 1) * sizeof(*ne));
			if (!ne)
				return -ENOMEM;
			j->ev = ne;
			if (!(ne[k].name = dup_bytes(name, len)))
				return -ENOMEM;
			ne[k].len = len;
			ne[k].samples = 0;
			j->nev++;
		}
		j->ev[k].samples += n;
	}
	return 0;
}

/* Parse blocks until the queue is done (after an error: only drain it). */
static void *worker(void *arg)
{
	struct worker w = { .j = arg };
	struct job *j = w.j;
	w.w = st_writer_open(j->e);
	w.err = w.w ? 0 : -errno;
	if (!w.err && j->perf && !(w.pc = st_perf_cache_new()))
		w.err = -ENOMEM;
	struct block *b;
	while ((b = take_block(j))) {
		if (!w.err)
			w.err = parse_block(&w, b);
		st_input_release(j->in, &b->in);
		free(b);
	}
	st_writer_close(w.w);
	pthread_mutex_lock(&j->mu);
	add_stats(&j->stats, &w.st);
	int er = w.pc ? add_events_locked(j, w.pc) : 0;
	pthread_mutex_unlock(&j->mu);
	st_perf_cache_free(w.pc);
	set_err(j, w.err ? w.err : er);
	return NULL;
}

/* The first event of the input is the default filter: fix it before the
 * block that holds it goes out (blocks before it have no event, so the
 * filter does not matter to them). */
static void note_first_event(struct job *j, const struct st_input_block *ib)
{
	const char *ev;
	size_t evlen;
	if (j->perf && !j->event && st_perf_first_event(ib->buf, ib->len, &ev, &evlen)) {
		j->event = dup_bytes(ev, evlen); /* NULL: no filter, as before the first */
		j->event_len = j->event ? evlen : 0;
	}
}

/* The unit of perf input's values: the periods of cpu-clock and task-clock
 * (with or without modifiers, "cpu-clock:ppp") are nanoseconds of CPU time;
 * other events, and samples without a period (each counted 1: perf prints
 * a period in every header or in none), count samples: NULL, the metric's
 * own unit. */
static const char *perf_unit(const struct job *j)
{
	static const char *const clocks[] = { "cpu-clock", "task-clock" };
	if (!j->perf || !j->event || !j->first_period)
		return NULL;
	for (size_t i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++) {
		size_t n = strlen(clocks[i]);
		if (j->event_len >= n && !memcmp(j->event, clocks[i], n) &&
		    (j->event_len == n || j->event[n] == ':'))
			return "nanoseconds";
	}
	return NULL;
}

/* The numbers of the perf header whose event token starts at ev (inside
 * buf): "TIME: [PERIOD] EVENT:".  *period 0 when there is none, *t_ns the
 * time in nanoseconds (false when there is none). */
static bool perf_hdr_nums(const char *buf, const char *ev, uint64_t *period, uint64_t *t_ns)
{
	const char *p = ev, *d;
	while (p > buf && (p[-1] == ' ' || p[-1] == '\t'))
		p--;
	for (d = p; d > buf && d[-1] >= '0' && d[-1] <= '9';)
		d--;
	*period = 0;
	for (const char *q = d; q < p; q++)
		*period = *period > (UINT64_MAX - 9) / 10 ? UINT64_MAX : *period * 10 + (uint64_t)(*q - '0');
	while (d > buf && (d[-1] == ' ' || d[-1] == '\t'))
		d--;
	if (d == buf || d[-1] != ':')
		return false;
	const char *e = d - 1, *t = e;
	while (t > buf && ((t[-1] >= '0' && t[-1] <= '9') || t[-1] == '.'))
		t--;
	uint64_t sec = 0, ns = 0, scale = 1000000000;
	const char *q = t;
	for (; q < e && *q != '.' && sec < UINT64_MAX / 10000000000u; q++)
		sec = sec * 10 + (uint64_t)(*q - '0');
	if (q == t || (q < e && *q != '.'))
		return false;
	for (q += q < e; q < e && scale > 1; q++)
		ns += (uint64_t)(*q - '0') * (scale /= 10);
	*t_ns = sec * 1000000000u + ns;
	return true;
}

/* pprof's period and duration: the first sample's period and the time
 * between the first and the last sample, from the first header of the
 * input and the last sample of every block (blocks end after a blank
 * line, so that is the last sample's header). */
static void note_times(struct job *j, const struct st_input_block *ib)
{
	const char *ev;
	size_t evlen, start = 0, end = ib->len;
	uint64_t period, t;
	if (!j->perf)
		return;
	if (!j->hdr_seen && st_perf_first_event(ib->buf, ib->len, &ev, &evlen)) {
		j->hdr_seen = true;
		if (perf_hdr_nums(ib->buf, ev, &period, &t)) {
			j->t_min = j->t_max = t;
			j->t_seen = true;
		}
		j->first_period = period;
	}
	while (end && ib->buf[end - 1] == '\n')
		end--;
	for (size_t i = end; i > 0; i--)
		if (ib->buf[i - 1] == '\n' && (i == 1 || ib->buf[i - 2] == '\n')) {
			start = i;
			break;
		}
	if (st_perf_first_event(ib->buf + start, end - start, &ev, &evlen) &&
	    perf_hdr_nums(ib->buf + start, ev, &period, &t)) {
		j->t_min = j->t_seen && j->t_min < t ? j->t_min : t;
		j->t_max = j->t_seen && j->t_max > t ? j->t_max : t;
		j->t_seen = true;
	}
}

/* What the pprof writer tells about perf input, and where it counts the
 * values it clamps. */
static void pprof_facts(const struct job *j, struct st_export_opts *eo, uint64_t *clamped)
{
	if (j->perf && j->event) {
		eo->event = j->event;
		eo->period = j->first_period;
	}
	if (j->t_seen && j->t_max > j->t_min)
		eo->duration_ns = j->t_max - j->t_min;
	eo->clamped = clamped;
}

/* The reader's block callback: queue the block (waiting for room). */
static int enqueue(void *arg, const struct st_input_block *ib)
{
	struct job *j = arg;
	struct block *b = malloc(sizeof(*b));
	if (!b) {
		st_input_release(j->in, ib);
		set_err(j, -ENOMEM);
		return 0;
	}
	note_first_event(j, ib);
	note_times(j, ib);
	*b = (struct block){ *ib, j->event, j->event_len, NULL };
	pthread_mutex_lock(&j->mu);
	while (j->queued >= j->max_queued)
		pthread_cond_wait(&j->cv_space, &j->mu);
	if (j->tail)
		j->tail->next = b;
	else
		j->head = b;
	j->tail = b;
	j->queued++;
	pthread_cond_signal(&j->cv_items);
	pthread_mutex_unlock(&j->mu);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shardtrie convert [-f folded|perf] [-t FORMAT] [--metric NAME]\n"
		"                         [--min-fraction F] [--threads N] [--strict]\n"
		"                         [perf: --pid --tid --kernel --jit --all --addrs\n"
		"                          --event-filter EV]  [output options] [-o FILE] [FILE...]\n"
		"FORMAT: folded json flamebearer pprof speedscope d3 svg html\n"
		ST_CLI_EXPORT_HELP
		"Reads folded stacks or `perf script` text (-f perf, collapsed like\n"
		"stackcollapse-perf.pl) from FILEs (stdin when none, or '-'), merges them\n"
		"through the engine and writes one output (stdout unless -o; -o is\n"
		"written atomically).  Malformed lines are reported as FILE:LINE and\n"
		"skipped; so are perf samples cut off (no blank line after them) and\n"
		"periods over 64 bits; samples of other events are counted per event,\n"
		"and totals that saturate at 2^64-1 are said.  --strict makes any of\n"
		"them an error (exit 65, no output); an --event-filter that matches no\n"
		"sample is one always.\n");
}

static const char *unit_for(const char *metric)
{
	if (strstr(metric, "duration") || strstr(metric, "_ns"))
		return "nanoseconds";
	if (strstr(metric, "bytes"))
		return "bytes";
	return "samples";
}

/* One option of getopt_long into o: ST_CLI_GO_ON, or the exit code. */
static int take_opt(int c, const char *arg, void *ctx)
{
	struct convert_opts *o = ctx;
	long long v;
	switch (c) {
	case OPT_FROM: o->from = arg; return ST_CLI_GO_ON;
	case OPT_TO: o->to = arg; return ST_CLI_GO_ON;
	case OPT_OUTPUT: o->out = arg; return ST_CLI_GO_ON;
	case OPT_METRIC: o->metric = arg; return ST_CLI_GO_ON;
	case OPT_STRICT: o->strict = true; return ST_CLI_GO_ON;
	case OPT_THREADS:
		if (!st_cli_long_in(arg, 1, 1024, &v)) {
			st_cli_bad_value("convert", "threads", "1..1024", arg);
			return EX_USAGE_;
		}
		o->threads = (long)v;
		return ST_CLI_GO_ON;
	case OPT_HELP: usage(stdout); return EX_OK_;
	default:
		if (!st_cli_perf_opt(c, arg, &o->po, &o->perf_only))
			return ST_CLI_GO_ON;
		return st_cli_other_opt(c, arg, &o->eo, "convert", usage) ? EX_USAGE_ : ST_CLI_GO_ON;
	}
}

static int parse_args(int argc, char **argv, struct convert_opts *o)
{
	static const struct option lo[] = {
		{ "from", required_argument, 0, OPT_FROM },
		{ "to", required_argument, 0, OPT_TO },
		{ "output", required_argument, 0, OPT_OUTPUT },
		{ "metric", required_argument, 0, OPT_METRIC },
		{ "threads", required_argument, 0, OPT_THREADS },
		{ "strict", no_argument, 0, OPT_STRICT },
		ST_CLI_MIN_FRACTION_LONGOPT,
		ST_CLI_PERF_LONGOPTS,
		ST_CLI_EXPORT_LONGOPTS,
		{ "help", no_argument, 0, OPT_HELP },
		{ 0, 0, 0, 0 },
	};
	*o = (struct convert_opts){ .from = "folded", .to = "folded", .metric = "count",
				    .threads = sysconf(_SC_NPROCESSORS_ONLN) };
	st_perf_opts_init(&o->po);
	st_export_opts_init(&o->eo);
	return st_cli_getopt(argc, argv, "f:t:o:j:h", lo, take_opt, o);
}

/* The input and output formats named: ST_CLI_GO_ON or EX_USAGE_. */
static int check_formats(struct convert_opts *o)
{
	o->perf = strcmp(o->from, "perf") == 0;
	if (!o->perf && strcmp(o->from, "folded") != 0) {
		fprintf(stderr, "%s convert: unknown input format '%s' (known: folded, perf)\n", st_prog,
			o->from);
		return EX_USAGE_;
	}
	if (!o->perf && o->perf_only) {
		fprintf(stderr, "%s convert: %s applies to perf script input only (-f perf)\n", st_prog,
			o->perf_only);
		return EX_USAGE_;
	}
	o->fmt = st_cli_format(o->to);
	if (o->fmt < 0)
		return EX_USAGE_;
	if (o->threads < 1)
		o->threads = 1;
	return ST_CLI_GO_ON;
}

static struct st_engine *make_engine(const struct convert_opts *o)
{
	struct st_options so;
	st_options_init(&so);
	so.merge_interval_ms = 0; /* one flush at the end is all convert needs */
	so.nshards = (unsigned)o->threads;
	so.metrics[0].name = o->metric;
	so.metrics[0].unit = unit_for(o->metric);
	struct st_engine *e = st_engine_create(&so);
	if (!e)
		fprintf(stderr, "%s convert: cannot create engine: %s\n", st_prog, strerror(errno));
	return e;
}

/* The job with its reader and parser threads: EX_OK_ or the exit code. */
static int job_start(struct job *j, struct st_engine *e, const struct convert_opts *o)
{
	*j = (struct job){ .e = e, .metric = 0, .max_queued = 2 * (unsigned)o->threads,
			   .perf = o->perf, .popts = o->po };
	if (o->perf && o->po.event && o->po.event[0]) {
		j->event = strdup(o->po.event);
		j->event_len = j->event ? strlen(j->event) : 0;
	}
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv_items, NULL);
	pthread_cond_init(&j->cv_space, NULL);
	struct st_input_ops ops = { .perf = o->perf, .block = enqueue,
				    .on_long_line = on_long_line, .arg = j };
	if (!(j->in = st_input_new(&ops))) {
		fprintf(stderr, "%s convert: %s\n", st_prog, strerror(ENOMEM));
		return EX_SOFTWARE_;
	}
	j->tids = calloc((size_t)o->threads, sizeof(*j->tids));
	for (; j->tids && j->started < o->threads; j->started++)
		if (pthread_create(&j->tids[j->started], NULL, worker, j))
			break;
	if (!j->started) {
		fprintf(stderr, "%s convert: cannot start parser threads\n", st_prog);
		return EX_SOFTWARE_;
	}
	return EX_OK_;
}

/* Tell the parser threads the queue is done and wait for them. */
static void job_join(struct job *j)
{
	pthread_mutex_lock(&j->mu);
	j->done = true;
	pthread_cond_broadcast(&j->cv_items);
	pthread_mutex_unlock(&j->mu);
	for (long i = 0; i < j->started; i++)
		pthread_join(j->tids[i], NULL);
}

static void job_free(struct job *j)
{
	for (size_t i = 0; i < j->nev; i++)
		free(j->ev[i].name);
	free(j->ev);
	free(j->tids);
	free(j->event);
	st_input_free(j->in);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv_items);
	pthread_cond_destroy(&j->cv_space);
}

/* Queue one input ("-": stdin) for the parser threads. */
static int read_one(struct job *j, const char *path)
{
	int fd = st_input_open(path);
	if (fd < 0) {
		fprintf(stderr, "%s convert: %s: %s\n", st_prog, path, strerror(errno));
		return EX_NOINPUT_;
	}
	int r = st_input_fd(j->in, fd, strcmp(path, "-") ? path : "<stdin>");
	st_input_close(fd);
	if (r) {
		fprintf(stderr, "%s convert: %s: read failed: %s\n", st_prog, path, st_input_strerror(r));
		return EX_IOERR_;
	}
	return EX_OK_;
}

/* Every input in turn (none: stdin), until one fails. */
static int read_inputs(struct job *j, int nin, char **paths)
{
	int rc = EX_OK_;
	for (int i = 0; rc == EX_OK_ && i < (nin ? nin : 1); i++)
		rc = read_one(j, nin ? paths[i] : "-");
	return rc;
}

/* After the parse: the engine error and the bad-line totals, and what
 * --strict makes of them.  rc: the exit code so far. */
static int report_totals(const struct job *j, bool strict, int rc)
{
	if (rc == EX_OK_ && j->err) {
		fprintf(stderr, "%s convert: %s\n", st_prog, strerror(-j->err));
		rc = EX_SOFTWARE_;
	}
	uint64_t bad = j->stats.malformed + j->stats.dropped;
	if (j->reported > MAX_REPORTED)
		fprintf(stderr, "%s convert: ... %llu more bad lines not shown\n", st_prog,
			(unsigned long long)(j->reported - MAX_REPORTED));
	if (bad)
		fprintf(stderr, "%s convert: %llu of %llu lines ignored (%llu malformed, %llu dropped)%s\n",
			st_prog, (unsigned long long)bad, (unsigned long long)j->stats.lines,
			(unsigned long long)j->stats.malformed, (unsigned long long)j->stats.dropped,
			strict ? "; --strict: no output written" : "");
	if (rc == EX_OK_ && strict && bad)
		rc = EX_DATAERR_;
	return rc;
}

/* The samples of j->event (the filter in force), 0 when none. */
static uint64_t kept_samples(const struct job *j)
{
	for (size_t i = 0; j->event && i < j->nev; i++)
		if (same_event(j->ev[i].name, j->ev[i].len, j->event, j->event_len))
			return j->ev[i].samples;
	return 0;
}

/* "a 1, b 2": the events other than j->event, with their samples. */
static void print_other_events(const struct job *j)
{
	const char *sep = "";
	for (size_t i = 0; i < j->nev; i++) {
		if (j->event && same_event(j->ev[i].name, j->ev[i].len, j->event, j->event_len))
			continue;
		fputs(sep, stderr);
		put_event(j->ev[i].name, j->ev[i].len);
		fprintf(stderr, " %llu", (unsigned long long)j->ev[i].samples);
		sep = ", ";
	}
}

/*
 * What perf input lost that stackcollapse-perf.pl loses without a word:
 * samples of other events (their counts per event), samples cut off at
 * the end of an input, and an --event-filter that matched nothing (an
 * error: exit 65, no output, since the input rather than the command line
 * decides it).  --strict makes any loss an error (exit 65, no output);
 * other events skipped under an explicit --event-filter are no loss.
 */
static int report_perf_losses(const struct job *j, const struct convert_opts *o, int rc)
{
	if (!o->perf || (rc != EX_OK_ && rc != EX_DATAERR_)) /* DATAERR_: --strict */
		return rc;
	const char *nowrite = o->strict ? "; --strict: no output written" : "";
	bool chosen = o->po.event && o->po.event[0];
	uint64_t kept = kept_samples(j);
	if (chosen && !kept) {
		fprintf(stderr, "%s convert: --event-filter %s matches no sample; ", st_prog, o->po.event);
		if (j->nev) {
			fputs("events in the input: ", stderr);
			print_other_events(j);
		} else {
			fputs("the input holds no sample", stderr);
		}
		fputs("; no output written\n", stderr);
		return EX_DATAERR_;
	}
	if (j->stats.other_events) {
		fprintf(stderr, "%s convert: kept event ", st_prog);
		if (j->event)
			put_event(j->event, j->event_len);
		else
			fputc('?', stderr);
		fprintf(stderr, " (%llu sample%s); skipped %llu sample%s of other events: ",
			(unsigned long long)kept, kept == 1 ? "" : "s",
			(unsigned long long)j->stats.other_events,
			j->stats.other_events == 1 ? "" : "s");
		print_other_events(j);
		fprintf(stderr, "%s%s\n", chosen ? "" : " (choose one with --event-filter)",
			chosen ? "" : nowrite);
		if (o->strict && !chosen)
			rc = EX_DATAERR_;
	}
	if (j->stats.truncated) {
		fprintf(stderr, "%s convert: %llu sample%s cut off with no blank line after %s "
			"(input truncated, or a sample longer than %u MiB): dropped%s\n",
			st_prog, (unsigned long long)j->stats.truncated, j->stats.truncated == 1 ? "" : "s",
			j->stats.truncated == 1 ? "it" : "them", ST_INPUT_BLOCK >> 20, nowrite);
		if (o->strict)
			rc = EX_DATAERR_;
	}
	return rc;
}

/* The path of node n (root excluded), its last frames when deep. */
static void print_path(const struct st_snap *s, uint32_t n)
{
	enum { SHOWN = 8 };
	uint32_t chain[SHOWN];
	unsigned k = 0;
	bool more = false;
	for (; n != UINT32_MAX && n != ST_NODE_ROOT; n = st_snap_parent(s, n)) {
		if (k == SHOWN) {
			more = true;
			break;
		}
		chain[k++] = n;
	}
	if (more)
		fputs("...;", stderr);
	while (k--) {
		size_t len;
		const char *name = st_snap_name(s, chain[k], &len);
		fwrite(name, 1, len, stderr);
		if (k)
			putc(';', stderr);
	}
}

int st_cli_report_saturation(const char *cmd, const struct st_snap *s, bool strict)
{
	uint32_t deepest;
	size_t n = st_snap_saturated(s, &deepest);
	if (!n)
		return EX_OK_;
	fprintf(stderr, "%s %s: %zu total%s reached %llu, where sums saturate (deepest: ", st_prog,
		cmd, n, n == 1 ? "" : "s", (unsigned long long)UINT64_MAX);
	if (deepest == ST_NODE_ROOT)
		fputs("the root", stderr);
	else
		print_path(s, deepest);
	fprintf(stderr, "): they are capped, not exact, and a frame may show as much as its "
		"parent%s\n", strict ? "; --strict: no output written" : "");
	return strict ? EX_DATAERR_ : EX_OK_;
}

/* Values summed to UINT64_MAX: some totals may have saturated.  Builds the
 * snapshot (the folded output then comes from it too) and reports. */
static int check_saturation(struct st_engine *e, bool strict)
{
	if (!st_flush(e)) {
		fprintf(stderr, "%s convert: out of memory building the snapshot\n", st_prog);
		return EX_SOFTWARE_;
	}
	struct st_snap *s = st_snap_acquire(e);
	int rc = st_cli_report_saturation("convert", s, strict);
	st_snap_release(s);
	return rc;
}

/* The merged stacks of e, written as o->fmt to o->out. */
static int write_output(struct st_engine *e, const struct convert_opts *o)
{
	if (o->fmt == ST_FMT_FOLDED) {
		/* Nothing was merged (no merger thread, no flush): the distinct
		 * stacks go out sorted, with no trie or snapshot built. */
		int rc = st_cli_export_folded_once(e, &o->eo, o->out);
		if (rc >= 0)
			return rc; /* else stacks merged after all: the general path */
	}
	if (!st_flush(e)) {
		fprintf(stderr, "%s convert: out of memory building the snapshot\n", st_prog);
		return EX_SOFTWARE_;
	}
	struct st_snap *s = st_snap_acquire(e);
	int rc = st_cli_export(s, o->fmt, &o->eo, o->out);
	st_snap_release(s);
	return rc;
}

int cmd_convert(int argc, char **argv)
{
	struct convert_opts o;
	int rc = parse_args(argc, argv, &o);
	if (rc == ST_CLI_GO_ON)
		rc = check_formats(&o);
	if (rc != ST_CLI_GO_ON)
		return rc;
	if ((rc = st_cli_output_check("convert", o.out)))
		return rc; /* before the work */
	struct st_engine *e = make_engine(&o);
	if (!e)
		return EX_SOFTWARE_;
	struct job j;
	int r;
	rc = job_start(&j, e, &o);
	if (rc == EX_OK_)
		rc = read_inputs(&j, argc - optind, argv + optind);
	job_join(&j);
	const char *shrunk;
	if (rc == EX_OK_ && (r = st_input_finish(j.in, &shrunk))) {
		fprintf(stderr, "%s convert: %s: read failed: %s\n", st_prog, shrunk, st_input_strerror(r));
		rc = EX_IOERR_; /* a parser may have read patched pages: no output */
	}
	rc = report_totals(&j, o.strict, rc);
	rc = report_perf_losses(&j, &o, rc);
	if (rc == EX_OK_ && j.stats.sum == UINT64_MAX)
		rc = check_saturation(e, o.strict);
	uint64_t clamped = 0;
	pprof_facts(&j, &o.eo, &clamped);
	if (rc == EX_OK_ && !o.eo.units)
		o.eo.units = perf_unit(&j); /* known only once the input is read */
	if (rc == EX_OK_)
		rc = write_output(e, &o);
	if (rc == EX_OK_ && clamped)
		fprintf(stderr, "%s convert: pprof: %llu value%s above %lld (INT64_MAX, pprof's largest) "
			"written as %lld\n", st_prog, (unsigned long long)clamped, clamped > 1 ? "s" : "",
			(long long)INT64_MAX, (long long)INT64_MAX);
	st_engine_destroy(e);
	job_free(&j);
	return rc;
}
