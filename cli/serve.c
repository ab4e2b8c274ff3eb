/* SPDX-License-Identifier: MIT */
/*
 * serve.c - `shardtrie serve [-f folded|perf] [FILE|-]`: ingest a file, or a
 * stream as it arrives (`perf script | shardtrie serve -f perf -`), and serve
 * it live over HTTP (live/server.h) until SIGINT or SIGTERM.
 *
 *   reader thread: poll(fd, stop) -> read -> cut at the last line end (perf:
 *                  the last blank line) -> parser -> its own writer
 *   merger thread (the engine's): shards -> published snapshots
 *   server threads: snapshots -> clients
 *   main thread:   sigwait(SIGINT, SIGTERM), then stop the reader and server
 *
 * A block is parsed as soon as it holds a whole line (sample), so what is
 * written to the pipe shows after one merge interval.  A line (perf: a
 * sample) longer than the reader's buffer is reported as FILE:LINE and
 * skipped, the same rule as convert's block reader.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "live/server.h"
#include "cli.h"
#include "shardtrie_parse.h"

#define SERVE_BUF (ST_INPUT_BLOCK)

struct serve_opts {
	bool perf;
	const char *path, *metric;
	struct st_cli_live live; /* --addr --port --tick --token-file --insecure --timeout */
	struct st_cli_push push; /* --push URL and its options (cli/push.c) */
	bool follow;
	struct st_perf_opts po;  /* --pid --tid --kernel --jit --all --addrs --event-filter */
	const char *perf_only;   /* the first of those given, for -f folded */
	struct st_export_opts eo; /* convert's output options: the answers' defaults */
};

struct feed {
	struct st_engine *e;
	const char *name;
	int fd, stop[2];
	int follow;         /* --follow: an inotify fd watching the file, or -1 */
	bool perf;
	struct st_perf_opts po;
	char *event;        /* perf: the event collapsed (first seen) */
	uint64_t line;      /* lines before the current block */
	uint64_t reported;  /* bad lines reported */
	struct st_parse_stats ps;
	int err;            /* -errno of a read/ingest failure */
};

enum { OPT_FOLLOW = 1100 }; /* after st_cli_live_opt_code */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s serve [-f folded|perf] [--addr A] [--port P] [--tick MS] [--follow]\n"
		"                [perf: --pid --tid --kernel --jit --all --addrs --event-filter EV]\n"
		"                [--min-fraction F] [output options] [FILE|-]\n"
		"  Ingest FILE (or stdin, read as it grows: `perf script | %s serve -f perf -`)\n"
		"  and serve the live flamegraph over HTTP until SIGINT/SIGTERM.\n"
		"  -f, --from F       input format: folded (default) or perf (perf script)\n"
		"  -m, --metric NAME  name of the values (default count)\n"
		"  --addr A           numeric address to listen on (default 127.0.0.1);\n"
		"                     a non-loopback address needs a bearer token\n"
		"  --port P           port (default 0: a free one; the URL is printed)\n"
		"  --tick MS          /events sends at most one snapshot per tick (200)\n"
		"  --token-file F     bearer token clients must send, read from F's first\n"
		"                     line (or set SHARDTRIE_LIVE_TOKEN)\n"
		"  --insecure         allow a non-loopback address without a token\n"
		"  --timeout S        close a connection idle (or not reading) S seconds (30)\n"
		"  --follow           at the end of FILE, wait for more (tail -f)\n"
		"Endpoints: / /events /api/snapshot /api/status /debug/pprof/profile /reset /order\n"
		"(docs/live.md).\n"
		ST_CLI_PERF_HELP
		"Output options (as convert's) are the defaults of the answers:\n"
		"  --min-fraction F   the page's pruning: /events drops frames below F of the\n"
		"                     total (default 0.001; /api/snapshot: min_fraction=)\n"
		ST_CLI_EXPORT_HELP
		ST_CLI_PUSH_HELP,
		st_prog, st_prog);
}

/* The live server's options (serve and record --serve). */

void st_cli_live_init(struct st_cli_live *o)
{
	*o = (struct st_cli_live){ .addr = "127.0.0.1", .tick = 200, .timeout = 30,
				   .events_min_fraction = -1 };
}

int st_cli_live_opt(const char *cmd, int c, const char *arg, struct st_cli_live *o)
{
	switch (c) {
	case ST_OPT_LIVE_ADDR: o->addr = arg; return ST_CLI_GO_ON;
	case ST_OPT_LIVE_PORT:
		if (!st_cli_long_in(arg, 0, 65535, &o->port))
			return st_cli_bad_value(cmd, "--port", "a port in [0,65535]", arg), EX_USAGE_;
		return ST_CLI_GO_ON;
	case ST_OPT_LIVE_TICK:
		if (!st_cli_long_in(arg, 1, 60000, &o->tick))
			return st_cli_bad_value(cmd, "--tick", "milliseconds in [1,60000]", arg),
			       EX_USAGE_;
		return ST_CLI_GO_ON;
	case ST_OPT_LIVE_TIMEOUT:
		if (!st_cli_long_in(arg, 1, 3600, &o->timeout))
			return st_cli_bad_value(cmd, "--timeout", "seconds in [1,3600]", arg),
			       EX_USAGE_;
		return ST_CLI_GO_ON;
	case ST_OPT_LIVE_TOKEN_FILE: o->token_file = arg; return ST_CLI_GO_ON;
	case ST_OPT_LIVE_INSECURE: o->insecure = true; return ST_CLI_GO_ON;
	default: return 1;
	}
}

static int take(int c, const char *arg, void *ctx)
{
	struct serve_opts *o = ctx;
	int rc = st_cli_live_opt("serve", c, arg, &o->live);
	if (rc == 1)
		rc = st_cli_push_opt("serve", c, arg, &o->push);
	if (rc != 1)
		return rc;
	switch (c) {
	case 'f':
		if (strcmp(arg, "folded") && strcmp(arg, "perf")) {
			st_cli_bad_value("serve", "-f", "folded or perf", arg);
			return EX_USAGE_;
		}
		o->perf = !strcmp(arg, "perf");
		return ST_CLI_GO_ON;
	case 'm': o->metric = arg; return ST_CLI_GO_ON;
	case OPT_FOLLOW: o->follow = true; return ST_CLI_GO_ON;
	case 'h': usage(stdout); return EX_OK_;
	default:
		if (!st_cli_perf_opt(c, arg, &o->po, &o->perf_only))
			return ST_CLI_GO_ON;
		if (st_cli_other_opt(c, arg, &o->eo, "serve", usage))
			return EX_USAGE_;
		if (c == ST_OPT_MIN_FRACTION)
			o->live.events_min_fraction = o->eo.min_fraction;
		return ST_CLI_GO_ON;
	}
}

static int parse_args(int argc, char **argv, struct serve_opts *o)
{
	static const struct option lo[] = {
		{ "from", required_argument, 0, 'f' },
		{ "metric", required_argument, 0, 'm' },
		{ "addr", required_argument, 0, ST_OPT_LIVE_ADDR },
		{ "port", required_argument, 0, ST_OPT_LIVE_PORT },
		ST_CLI_LIVE_LONGOPTS,
		{ "follow", no_argument, 0, OPT_FOLLOW },
		ST_CLI_PUSH_LONGOPTS,
		{ "help", no_argument, 0, 'h' },
		ST_CLI_PERF_LONGOPTS,
		ST_CLI_MIN_FRACTION_LONGOPT,
		ST_CLI_EXPORT_LONGOPTS,
		{ 0, 0, 0, 0 },
	};
	*o = (struct serve_opts){ .metric = "count", .path = "-" };
	st_cli_live_init(&o->live);
	st_cli_push_init(&o->push);
	st_perf_opts_init(&o->po);
	st_export_opts_init(&o->eo);
	int rc = st_cli_getopt(argc, argv, "f:m:h", lo, take, o);
	if (rc != ST_CLI_GO_ON)
		return rc;
	if (!o->perf && o->perf_only) {
		fprintf(stderr, "%s serve: %s applies to perf script input only (-f perf)\n",
			st_prog, o->perf_only);
		return EX_USAGE_;
	}
	if (optind < argc)
		o->path = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "%s serve: one input at most, got '%s' too\n", st_prog, argv[optind]);
		return EX_USAGE_;
	}
	return ST_CLI_GO_ON;
}

/* The token from --token-file or SHARDTRIE_LIVE_TOKEN (never argv, which
 * every user of the machine can read): malloc'd, NULL when none; *rc set to
 * an exit code on error. */
static char *read_token(const char *cmd, const struct st_cli_live *o, int *rc)
{
	*rc = EX_OK_;
	if (!o->token_file) {
		const char *env = getenv("SHARDTRIE_LIVE_TOKEN");
		return env && *env ? strdup(env) : NULL;
	}
	FILE *f = fopen(o->token_file, "r");
	char line[1024];
	if (!f || !fgets(line, sizeof(line), f)) {
		fprintf(stderr, "%s %s: %s: cannot read a token: %s\n", st_prog, cmd, o->token_file,
			f ? "empty file" : strerror(errno));
		if (f)
			fclose(f);
		*rc = EX_NOINPUT_;
		return NULL;
	}
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	if (!line[0]) {
		fprintf(stderr, "%s %s: %s: the token's line is empty\n", st_prog, cmd, o->token_file);
		*rc = EX_DATAERR_;
		return NULL;
	}
	return strdup(line);
}

/* ------------------------------------------------------------- reader */

static void on_bad_line(void *arg, uint64_t line, const char *msg)
{
	struct feed *f = arg;
	st_input_report(&f->reported, 20, f->name, f->line + line, msg);
}

static uint64_t count_lines(const char *p, size_t n)
{
	uint64_t k = 0;
	for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
		k++;
	return k;
}

static int ingest(struct feed *f, struct st_writer *w, struct st_perf_cache *pc, const char *buf,
		  size_t len)
{
	int r;
	if (!f->perf) {
		r = st_folded_ingest(w, st_engine_nmetrics(f->e), 0, buf, len, on_bad_line, f, &f->ps);
	} else {
		const char *ev;
		size_t evlen;
		if (!f->po.event && st_perf_first_event(buf, len, &ev, &evlen)) {
			/* As bytes: the name may hold a NUL byte. */
			if (!(f->event = malloc(evlen + 1)))
				return -ENOMEM;
			memcpy(f->event, ev, evlen);
			f->event[evlen] = '\0';
			f->po.event = f->event;
			f->po.event_len = evlen;
		}
		r = st_perf_ingest_cached(pc, w, 0, &f->po, buf, len, on_bad_line, f, &f->ps);
	}
	f->line += count_lines(buf, len);
	return r;
}

/* Where a block can end: after the last '\n' (perf: the last blank line). */
static size_t cut(const struct feed *f, const char *buf, size_t len)
{
	if (f->perf)
		return st_perf_cut(buf, len);
	const char *nl = memrchr(buf, '\n', len);
	return nl ? (size_t)(nl - buf) + 1 : 0;
}

/* Wait for input or the stop pipe: 1 readable, 0 stop. */
static int wait_input(struct feed *f, int fd)
{
	struct pollfd p[2] = { { fd, POLLIN, 0 }, { f->stop[0], POLLIN, 0 } };
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1; /* let read() report it */
		}
		if (p[1].revents)
			return 0;
		return 1;
	}
}

static void *reader(void *arg)
{
	struct feed *f = arg;
	struct st_writer *w = st_writer_open(f->e);
	struct st_perf_cache *pc = f->perf ? st_perf_cache_new() : NULL;
	char *buf = malloc(SERVE_BUF);
	size_t len = 0;
	bool skipping = false; /* inside a line (sample) longer than the buffer */
	if (!w || !buf || (f->perf && !pc)) {
		f->err = -ENOMEM;
		goto out;
	}
	while (wait_input(f, f->fd)) {
		ssize_t n = read(f->fd, buf + len, SERVE_BUF - len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			f->err = -errno;
			break;
		}
		if (n == 0 && f->follow >= 0) {
			/* --follow: wait until the file changes.  The watch was
			 * set before the first read, so a write after this read
			 * has an event queued: no change is missed. */
			if (!wait_input(f, f->follow))
				break; /* stop: an unfinished last line is not data yet */
			char ev[4096];
			if (read(f->follow, ev, sizeof(ev)) < 0 && errno != EAGAIN) {
				f->err = -errno;
				break;
			}
			continue;
		}
		if (n == 0) { /* end of input: what is left is the last line */
			if (len && !skipping)
				f->err = ingest(f, w, pc, buf, len);
			break;
		}
		len += (size_t)n;
		size_t k = cut(f, buf, len);
		if (skipping && k) { /* the over-long line ends in this block */
			f->line += count_lines(buf, k);
			skipping = false;
		} else if (k && (f->err = ingest(f, w, pc, buf, k))) {
			break;
		}
		if (!k && len == SERVE_BUF) {
			if (!skipping) {
				st_input_report(&f->reported, 20, f->name, f->line + 1,
						f->perf ? "sample longer than the 4 MiB reader buffer: skipped"
							: "line longer than the 4 MiB reader buffer: skipped");
				f->ps.malformed++;
			}
			skipping = true;
			f->line += count_lines(buf, len);
			len = 0;
			continue;
		}
		memmove(buf, buf + k, len - k);
		len -= k;
	}
out:
	free(buf);
	st_perf_cache_free(pc);
	if (w)
		st_writer_close(w);
	return NULL;
}

/* ------------------------------------------------------------- command */

static struct st_engine *make_engine(const char *metric)
{
	struct st_options so;
	st_options_init(&so);
	so.nshards = 2;
	so.metrics[0].name = metric;
	so.metrics[0].unit = strstr(metric, "bytes")                                 ? "bytes"
			     : strstr(metric, "duration") || strstr(metric, "_ns") ? "nanoseconds"
										    : "samples";
	return st_engine_create(&so);
}

static int serve(struct serve_opts *o)
{
	struct feed f = { .name = strcmp(o->path, "-") ? o->path : "<stdin>", .perf = o->perf,
			  .po = o->po, .stop = { -1, -1 }, .follow = -1 };
	f.fd = st_input_open(o->path);
	if (f.fd < 0) {
		fprintf(stderr, "%s serve: %s: %s\n", st_prog, o->path, strerror(errno));
		return EX_NOINPUT_;
	}
	if (o->follow && strcmp(o->path, "-")) {
		f.follow = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
		if (f.follow < 0 || inotify_add_watch(f.follow, o->path, IN_MODIFY) < 0) {
			fprintf(stderr, "%s serve: %s: cannot follow: %s\n", st_prog, o->path,
				strerror(errno));
			if (f.follow >= 0)
				close(f.follow);
			st_input_close(f.fd);
			return EX_NOINPUT_;
		}
	}
	if (!(f.e = make_engine(o->metric)) || pipe2(f.stop, O_CLOEXEC)) {
		fprintf(stderr, "%s serve: %s\n", st_prog, strerror(errno));
		if (f.e)
			st_engine_destroy(f.e);
		st_input_close(f.fd);
		return EX_SOFTWARE_;
	}
	/* Every thread made from here on inherits the mask; main takes the
	 * signals with sigwait(). */
	sigset_t sigs, old;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);

	/* --push: started first, so that /reset pushes what came before it. */
	int rc = st_cli_push_start("serve", &o->push, f.e, 0, o->metric, 0,
				   o->perf ? "perf_script" : "shardtrie");
	struct st_live_hooks hooks = { .reset = st_cli_push_reset,
				       .status_get = st_cli_push_status,
				       .arg = &o->push };
	struct st_live *l = rc != EX_OK_ ? NULL
		: st_cli_live_start("serve", &o->live, f.e, 0, o->push.p ? &hooks : NULL, stdout, &rc);
	pthread_t rt;
	if (!l) {
	} else if ((errno = pthread_create(&rt, NULL, reader, &f))) {
		fprintf(stderr, "%s serve: cannot start the reader: %s\n", st_prog, strerror(errno));
		rc = EX_SOFTWARE_;
	} else {
		int sig;
		sigwait(&sigs, &sig);
		if (write(f.stop[1], "", 1) < 0) { /* the reader polls it */
		}
		pthread_join(rt, NULL);
		if (f.err) {
			fprintf(stderr, "%s serve: %s: %s\n", st_prog, f.name, strerror(-f.err));
			rc = EX_IOERR_;
		}
		fprintf(stderr, "%s serve: %llu samples, %llu malformed lines\n", st_prog,
			(unsigned long long)f.ps.samples, (unsigned long long)f.ps.malformed);
		if (f.perf && f.ps.other_events)
			fprintf(stderr,
				"%s serve: kept event %s; skipped %llu samples of other events%s\n",
				st_prog, f.po.event ? f.po.event : "?",
				(unsigned long long)f.ps.other_events,
				o->po.event ? "" : " (choose one with --event-filter)");
	}
	st_live_stop(l);
	st_cli_push_stop(&o->push); /* the last interval, after the last sample */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(f.stop[0]);
	close(f.stop[1]);
	st_input_close(f.fd);
	if (f.follow >= 0)
		close(f.follow);
	st_engine_destroy(f.e);
	free(f.event);
	return rc;
}

int st_cli_live_check(const char *cmd, const char *addr_opt, struct st_cli_live *o)
{
	int rc;
	o->token = read_token(cmd, o, &rc);
	if (rc != EX_OK_)
		return rc;
	int kind = st_live_addr_kind(o->addr);
	if (kind < 0)
		return st_cli_bad_value(cmd, addr_opt, "a numeric IPv4 or IPv6 address", o->addr),
		       EX_USAGE_;
	if (!kind && !o->token && !o->insecure) {
		fprintf(stderr,
			"%s %s: %s %s is not loopback: give a token (--token-file F or "
			"SHARDTRIE_LIVE_TOKEN) or --insecure\n",
			st_prog, cmd, addr_opt, o->addr);
		return EX_USAGE_;
	}
	return ST_CLI_GO_ON;
}

struct st_live *st_cli_live_start(const char *cmd, const struct st_cli_live *o, struct st_engine *e,
				  unsigned metric, const struct st_live_hooks *hooks, FILE *url_out,
				  int *rc)
{
	struct st_live_opts lo;
	st_live_opts_init(&lo);
	lo.addr = o->addr;
	lo.port = (unsigned)o->port;
	lo.tick_ms = (unsigned)o->tick;
	lo.timeout_s = (unsigned)o->timeout;
	lo.token = o->token;
	lo.metric = metric;
	if (hooks)
		lo.hooks = *hooks;
	lo.export = o->eo; /* the output options: the answers' base (copied) */
	if (o->events_min_fraction >= 0)
		lo.events_min_fraction = o->events_min_fraction;
	struct st_live *l = st_live_start(e, &lo);
	if (!l) {
		fprintf(stderr, "%s %s: cannot listen on %s port %lld: %s\n", st_prog, cmd, o->addr,
			o->port, strerror(errno));
		*rc = errno == EINVAL ? EX_USAGE_ : EX_SOFTWARE_;
		return NULL;
	}
	bool v6 = strchr(o->addr, ':') != NULL;
	fprintf(url_out, "Live flamegraph at http://%s%s%s:%u/\n", v6 ? "[" : "", o->addr,
		v6 ? "]" : "", st_live_port(l));
	fflush(url_out);
	return l;
}

void st_cli_live_fini(struct st_cli_live *o)
{
	free(o->token);
	o->token = NULL;
}

int cmd_serve(int argc, char **argv)
{
	struct serve_opts o;
	int rc = parse_args(argc, argv, &o);
	if (rc != ST_CLI_GO_ON)
		return rc;
	o.live.eo = &o.eo;
	rc = st_cli_live_check("serve", "--addr", &o.live);
	if (rc == ST_CLI_GO_ON)
		rc = st_cli_push_check("serve", &o.push);
	if (rc == ST_CLI_GO_ON)
		rc = serve(&o);
	st_cli_live_fini(&o.live);
	st_cli_push_fini(&o.push);
	return rc;
}
