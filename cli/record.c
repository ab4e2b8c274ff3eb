/* SPDX-License-Identifier: MIT */
/*
 * record.c - `shardtrie record cpu|io`: the options (the target, the
 * tracer's own, the output options every exporting subcommand shares), the
 * output file opened, then the BPF tracer (bpf/tracer.h) with a sink that
 * exports into that file and commits it.  The arrow runs one way: cli -> bpf.
 *
 * The output is opened before the run, not after it: a path that cannot be
 * written fails in a moment (exit 73) instead of after a whole recording,
 * and we know whether it is our stdout, which the command then must not
 * write to (its stdout goes to our stderr: tracer.h cmd_stdout_to_stderr).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../bpf/tracer.h"
#include "../live/server.h"
#include "cli.h"

_Static_assert(ST_TRACE_OK == EX_OK_ && ST_TRACE_SOFTWARE == EX_SOFTWARE_ &&
		       ST_TRACE_NOPERM == EX_NOPERM_,
	       "a tracer's status is the process exit code");

/* Long options without a short one (below ST_OPT_EXPORT_FIRST). */
enum record_opt {
	OPT_KERNEL_ONLY = 256,
	OPT_USER_ONLY,
	OPT_COMM,
	OPT_FIELDS,
	OPT_METRIC,
	OPT_SELFTEST,
	OPT_FLOOD,
	OPT_SERVE,
	OPT_TUI,
};

/* What the options of both subcommands fill. */
struct record {
	const char *name; /* "record cpu" / "record io" */
	void (*usage)(FILE *f);
	struct st_trace_target t;
	const char *out; /* -o */
	int fmt;         /* -t */
	struct st_export_opts eo;
	struct st_trace_sink sink; /* writes to -o as -t with eo */
	struct st_outfile of;      /* -o, open from before the run until the sink */
	bool of_open;
	/* --serve[=ADDR[:PORT]]: the live view while the run goes on. */
	bool serve, live_opts;     /* --serve; a live option (--tick...) given */
	struct st_cli_live live;   /* serve's options (cli/serve.c) */
	char serve_addr[64];       /* ADDR of --serve=ADDR[:PORT] */
	unsigned live_metric;      /* the metric the live view shows first */
	const struct st_live_hooks *hooks; /* the live view's /order (io), or NULL */
	struct st_live *srv;       /* from sink.started() to sink.stopping() */
	/* --push URL (cli/push.c): pushed from sink.started() to .stopping(). */
	struct st_cli_push push;
	const char *push_label;    /* the metric= label */
	uint32_t push_rate;        /* samples per second (cpu: -F) */
	bool tui;                  /* --tui: the terminal view (record_tui.c) */
	struct tui_thread *view;
};

/* An option handler's "taken, go on" (st_cli_getopt's); anything else is
 * the exit code. */
#define NEXT ST_CLI_GO_ON

/* The options both take, in their getopt_long tables. */
#define RECORD_LONGOPTS                                                  \
	{ "pid", required_argument, 0, 'p' },                             \
	{ "duration", required_argument, 0, 'd' },                        \
	{ "to", required_argument, 0, 't' },                              \
	{ "output", required_argument, 0, 'o' },                          \
	{ "verbose", no_argument, 0, 'v' },                               \
	{ "help", no_argument, 0, 'h' },                                  \
	{ "serve", optional_argument, 0, OPT_SERVE },                     \
	{ "tui", no_argument, 0, OPT_TUI },                               \
	ST_CLI_LIVE_LONGOPTS,                                             \
	ST_CLI_PUSH_LONGOPTS,                                             \
	ST_CLI_EXPORT_LONGOPTS

#define OUTPUT_USAGE                                                                \
	"-t FORMAT: folded json flamebearer pprof speedscope d3 svg html (default\n" \
	"folded); -o FILE written atomically (default stdout), checked before the\n" \
	"run starts (exit 73 at once when it cannot be created).  When the output\n" \
	"goes to standard output, COMMAND's standard output goes to standard error:\n" \
	"the output carries the profile and nothing else.\n"                       \
	ST_CLI_EXPORT_HELP                                                         \
	"--serve[=ADDR[:PORT]]: serve the live profile over HTTP while the run goes\n" \
	"on, as `shardtrie serve` does (default 127.0.0.1 and a free port; prints\n" \
	"\"Live flamegraph at http://...\" on standard error; docs/live.md).  A\n"    \
	"non-loopback ADDR needs --token-file F (or SHARDTRIE_LIVE_TOKEN) or\n"       \
	"--insecure; --tick MS and --timeout S as serve's.  The output is written\n"  \
	"at the end as without --serve, but POST /reset empties the recording: the\n" \
	"output then holds only what came after the last reset.\n"                \
	"--tui: the live profile in this terminal while the run goes on (`shardtrie\n"  \
	"top`'s view, docs/tui.md; q ends the run as SIGINT does).\n"              \
	ST_CLI_PUSH_HELP
#define IO_SERVE_USAGE                                                              \
	"record io --serve: GET /order answers {\"fields\":[...]}, the order in force;\n" \
	"POST /order {\"fields\":[...]} reorders the frames of every event decoded\n"  \
	"from then on and resets the recording (ior's semantics): the output is\n"    \
	"written with the order in force at the end and holds what came after the\n" \
	"last change.\n"

static int write_output(void *ctx, const struct st_snap *s, unsigned metric);

static void record_init(struct record *r, const char *name, void (*usage)(FILE *))
{
	memset(r, 0, sizeof(*r));
	r->name = name;
	r->usage = usage;
	r->t.prog = st_prog;
	r->fmt = ST_FMT_FOLDED;
	st_export_opts_init(&r->eo);
	st_cli_live_init(&r->live);
	st_cli_push_init(&r->push);
	r->sink = (struct st_trace_sink){ .write = write_output, .ctx = r };
}

/* "PROG record X: OPT wants WANT, got 'ARG'": a usage error. */
static int bad_arg(const struct record *r, const char *opt, const char *want, const char *arg)
{
	fprintf(stderr, "%s %s: %s wants %s, got '%s'\n", st_prog, r->name, opt, want, arg);
	return EX_USAGE_;
}

/* --serve's value: ADDR, ADDR:PORT, [IPV6]:PORT, :PORT or IPV6. */
static int parse_serve(struct record *r, const char *arg)
{
	const char *colon = strrchr(arg, ':'), *addr_end = colon;
	const char *addr = arg;
	if (arg[0] == '[') { /* [IPV6] or [IPV6]:PORT */
		const char *rb = strchr(arg, ']');
		if (!rb || (rb[1] && rb[1] != ':'))
			return bad_arg(r, "--serve", "ADDR[:PORT] ([IPV6]:PORT)", arg);
		addr = arg + 1;
		addr_end = rb;
		colon = rb[1] ? rb + 1 : NULL;
	} else if (colon && strchr(arg, ':') != colon) { /* a bare IPv6 address */
		colon = addr_end = NULL;
	}
	size_t n = addr_end ? (size_t)(addr_end - addr) : strlen(addr);
	if (n >= sizeof(r->serve_addr))
		return bad_arg(r, "--serve", "a numeric IPv4 or IPv6 address", arg);
	if (n) {
		memcpy(r->serve_addr, addr, n);
		r->serve_addr[n] = '\0';
		r->live.addr = r->serve_addr;
	}
	if (colon && !st_cli_long_in(colon + 1, 0, 65535, &r->live.port))
		return bad_arg(r, "--serve", "a port in [0,65535] after ':'", arg);
	return NEXT;
}

/* -d: seconds in (0, 1e7]. */
static bool parse_seconds(const char *s, double *d)
{
	char *end;
	*d = strtod(s, &end);
	return end != s && !*end && *d > 0 && *d <= 1e7;
}

/* -p -d -t -o -v -h and the output options. */
static int common_opt(struct record *r, int c, const char *arg)
{
	long long v;
	switch (c) {
	case 'p':
		if (!st_cli_long_in(arg, 1, 0x3fffffff, &v))
			return bad_arg(r, "-p", "a process id", arg);
		r->t.pid = (pid_t)v;
		return NEXT;
	case 'd':
		if (!parse_seconds(arg, &r->t.duration))
			return bad_arg(r, "-d", "a positive number of seconds", arg);
		return NEXT;
	case 't':
		r->fmt = st_cli_format(arg);
		return r->fmt < 0 ? EX_USAGE_ : NEXT;
	case 'o': r->out = arg; return NEXT;
	case 'v': r->t.verbose = true; return NEXT;
	case 'h': r->usage(stdout); return EX_OK_;
	case OPT_SERVE: r->serve = true; return arg ? parse_serve(r, arg) : NEXT;
	case OPT_TUI: r->tui = true; return NEXT;
	default:
		if (c >= ST_OPT_PUSH && c <= ST_OPT_PUSH_AUTH_FILE)
			return st_cli_push_opt(r->name, c, arg, &r->push);
		if (c >= ST_OPT_LIVE_ADDR && c <= ST_OPT_LIVE_TIMEOUT) {
			r->live_opts = true;
			return st_cli_live_opt(r->name, c, arg, &r->live);
		}
		return st_cli_other_opt(c, arg, &r->eo, r->name, r->usage) ? EX_USAGE_ : NEXT;
	}
}

/* A subcommand's options: the getopt_long tables, a handler for one option
 * (opt: NEXT or an exit code) and the checks after them all (check: the
 * same).  args starts with its struct record. */
struct record_parser {
	const char *shortopts;
	const struct option *lo;
	int (*opt)(int c, const char *arg, void *args);
	int (*check)(void *args);
};

/* The options (the shared loop of cli.h), then COMMAND ARGS (if any), then
 * the checks: NEXT or an exit code. */
static int parse(const struct record_parser *p, struct record *r, int argc, char **argv)
{
	int rc = st_cli_getopt(argc, argv, p->shortopts, p->lo, p->opt, r);
	if (rc != NEXT)
		return rc;
	if (optind < argc)
		r->t.cmd = argv + optind;
	rc = p->check(r);
	if (rc != NEXT)
		return rc;
	if (r->live_opts && !r->serve && !r->tui) {
		fprintf(stderr,
			"%s %s: --tick, --timeout, --token-file and --insecure need --serve or --tui\n",
			st_prog, r->name);
		return EX_USAGE_;
	}
	rc = st_cli_push_check(r->name, &r->push);
	if (rc != NEXT)
		return rc;
	rc = r->serve || r->tui ? st_cli_live_check(r->name, "--serve", &r->live) : NEXT;
	return rc == NEXT && r->tui ? st_cli_tui_prepare(r->name, &r->live) : rc;
}

/* sink.started(): the live view of the run's engine (--serve). */
/* POST /reset while pushing: the pusher pushes what came before, then
 * resets the engine. */
static int push_reset(void *arg)
{
	struct record *r = arg;
	return st_cli_push_reset(&r->push);
}

/* GET /api/status while pushing: the pusher's figures. */
static char *push_status(void *arg)
{
	struct record *r = arg;
	return st_cli_push_status(&r->push);
}

static int live_started(void *ctx, struct st_engine *e)
{
	struct record *r = ctx;
	int rc = st_cli_push_start(r->name, &r->push, e, r->live_metric, r->push_label, r->push_rate,
				   "ebpfspy");
	if (rc != EX_OK_ || (!r->serve && !r->tui))
		return rc;
	/* The source's hooks (record io: /order) and /reset through the pusher
	 * when pushing (the interval before the reset is pushed).  One arg for
	 * all: the record, first member of the source's own args. */
	struct st_live_hooks hooks = { 0 };
	if (r->hooks)
		hooks = *r->hooks;
	if (r->push.p) {
		hooks.reset = push_reset;
		hooks.status_get = push_status;
	}
	hooks.arg = r;
	rc = EX_SOFTWARE_;
	FILE *url_out = r->serve ? stderr : fopen("/dev/null", "we"); /* --tui alone: not said */
	if (url_out)
		r->srv = st_cli_live_start(r->name, &r->live, e, r->live_metric,
					   r->hooks || r->push.p ? &hooks : NULL, url_out, &rc);
	if (url_out && url_out != stderr)
		fclose(url_out);
	if (r->srv && r->tui)
		r->view = st_cli_tui_start(r->name, &r->live, st_live_port(r->srv));
	return r->srv ? EX_OK_ : rc;
}

/* sink.stopping(): the last sample is in; the output is written next. */
static void live_stopping(void *ctx)
{
	struct record *r = ctx;
	st_cli_tui_stop(r->view); /* the terminal back before the output */
	r->view = NULL;
	st_live_stop(r->srv);
	r->srv = NULL;
	st_cli_push_stop(&r->push); /* the last interval */
}

/* After the options: the sink's live hooks when --serve or --push was
 * given; label and rate describe the metric to Pyroscope. */
static void live_setup(struct record *r, unsigned metric, const char *label, uint32_t rate)
{
	r->push_label = label;
	r->push_rate = rate;
	if (!r->serve && !r->tui && !r->push.o.url)
		return;
	r->live_metric = metric;
	r->live.eo = &r->eo; /* the output options: the answers' defaults too */
	r->sink.started = live_started;
	r->sink.stopping = live_stopping;
}

/* -p names a process that exists. */
static int check_pid(const struct record *r)
{
	if (r->t.pid && kill(r->t.pid, 0) != 0 && errno == ESRCH) {
		fprintf(stderr, "%s %s: no process %d\n", st_prog, r->name, (int)r->t.pid);
		return EX_NOINPUT_;
	}
	return NEXT;
}

/* a and b are the same file (or pipe, or terminal). */
static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* -o now (see the top).  NEXT or 73. */
static int output_do_open(struct record *r)
{
	int err = st_outfile_open(&r->of, r->out);
	if (err) {
		fprintf(stderr, "%s %s: %s: cannot create: %s\n", st_prog, r->name, r->out,
			strerror(-err));
		return EX_CANTCREAT_;
	}
	r->of_open = true;
	return NEXT;
}

/* The output goes to our stdout: no -o, -o -, or a path that names the
 * file fd 1 is (/dev/stdout, the file stdout was redirected to).  Asked of
 * the path, before it is opened: the output file's stream says nothing. */
static bool output_is_stdout(const char *out)
{
	struct stat so, sp;
	if (!out || !strcmp(out, "-"))
		return true;
	return fstat(STDOUT_FILENO, &so) == 0 && stat(out, &sp) == 0 && same_file(&so, &sp);
}

/*
 * Open -o before the tracer starts (see the top), after noting whether it
 * is our stdout.  A FIFO is the exception: opening it waits for its reader,
 * which would move the recording's window; it is opened by the sink (where
 * a missing one is reported as any other).  NEXT or 73.
 */
static int output_open(struct record *r)
{
	struct stat sp;
	r->t.cmd_stdout_to_stderr = output_is_stdout(r->out);
	if (r->out && strcmp(r->out, "-") && stat(r->out, &sp) == 0 && S_ISFIFO(sp.st_mode))
		return NEXT;
	return output_do_open(r);
}

/* A run that never reached the sink leaves nothing behind. */
static void output_close(struct record *r)
{
	if (r->of_open)
		st_outfile_abort(&r->of);
	r->of_open = false;
}

/* Before a run: the options, then the output opened (checked) before
 * anything is traced.  NEXT, or the exit code (the live options, a token
 * read already, freed). */
static int record_prepare(const struct record_parser *p, struct record *r, int argc, char **argv)
{
	int rc = parse(p, r, argc, argv);
	if (rc == NEXT)
		rc = output_open(r);
	if (rc != NEXT) {
		st_cli_live_fini(&r->live);
		st_cli_push_fini(&r->push);
	}
	return rc;
}

/* After a run whose tracer returned rc: an output the sink did not commit
 * is discarded, the live server's options freed.  Returns rc. */
static int record_finish(struct record *r, int rc)
{
	output_close(r);
	st_cli_live_fini(&r->live);
	st_cli_push_fini(&r->push);
	return rc;
}

/* The sink: the run's snapshot as -t into the file opened before the run,
 * with the output options, then committed (renamed into place). */
static int write_output(void *ctx, const struct st_snap *s, unsigned metric)
{
	struct record *r = ctx;
	r->eo.metric = metric;
	st_cli_report_saturation(r->name, s, false); /* said, not fatal: no --strict */
	int rc = r->of_open ? NEXT : output_do_open(r); /* a FIFO: now */
	if (rc != NEXT)
		return rc;
	/* The stream's bare EIO replaced by the real cause (ENOSPC, EFBIG...). */
	int err = st_outfile_stream_error(&r->of, st_export(s, r->fmt, &r->eo, r->of.f));
	if (err)
		st_outfile_abort(&r->of);
	else
		err = st_outfile_commit(&r->of);
	r->of_open = false;
	if (err) {
		fprintf(stderr, "%s %s: %s: write failed: %s\n", st_prog, r->name,
			r->out ? r->out : "stdout", strerror(-err));
		return EX_IOERR_;
	}
	return EX_OK_;
}

/* ------------------------------------------------------------ record cpu */

static void cpu_usage(FILE *f)
{
	fprintf(f,
		"usage: shardtrie record cpu [-F HZ] [-p PID | -a] [-d SECONDS]\n"
		"                            [--kernel-only | --user-only] [-t FORMAT] [-o FILE]\n"
		"                            [output options] [--serve[=ADDR[:PORT]]] [--tui] [-v]\n"
		"                            [-- COMMAND ARGS...]\n"
		"Samples on-CPU stacks (kernel and user) on every CPU at HZ (default 99)\n"
		"and writes them as a flamegraph.  With COMMAND: that command and its\n"
		"children until it exits; -p: that process (and children it forks)\n"
		"until it exits; -a (the default): everything but this tool.  -d ends\n"
		"the run after SECONDS; SIGINT, SIGTERM, SIGHUP and SIGQUIT end it too,\n"
		"and the output is still written.\n"
		"The exit code is COMMAND's (128 + N if signal N killed it).\n"
		"Frames: comm;user...;kernel_[k].\n" OUTPUT_USAGE);
}

struct cpu_args {
	struct record r; /* first: parse() hands &r to cpu_opt and cpu_check */
	struct st_trace_cpu_cfg cfg;
	bool all, kernel_only, user_only;
};

static int cpu_opt(int c, const char *arg, void *args)
{
	struct cpu_args *a = args;
	long long v;
	switch (c) {
	case 'F':
		if (!st_cli_long_in(arg, 1, 100000, &v))
			return bad_arg(&a->r, "-F", "1..100000 Hz", arg);
		a->cfg.hz = (unsigned)v;
		return NEXT;
	case 'a': a->all = true; return NEXT;
	case OPT_KERNEL_ONLY: a->kernel_only = true; return NEXT;
	case OPT_USER_ONLY: a->user_only = true; return NEXT;
	default: return common_opt(&a->r, c, arg);
	}
}

static int cpu_check(void *args)
{
	struct cpu_args *a = args;
	const struct st_trace_target *t = &a->r.t;
	if ((t->pid != 0) + a->all + (t->cmd != NULL) > 1 || (a->kernel_only && a->user_only)) {
		fprintf(stderr, "%s record cpu: -p, -a and COMMAND exclude each other, and so do "
				"--kernel-only and --user-only\n", st_prog);
		cpu_usage(stderr);
		return EX_USAGE_;
	}
	a->cfg.kernel_stacks = !a->user_only;
	a->cfg.user_stacks = !a->kernel_only;
	return check_pid(&a->r);
}

static int record_cpu(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "freq", required_argument, 0, 'F' },
		{ "all", no_argument, 0, 'a' },
		{ "kernel-only", no_argument, 0, OPT_KERNEL_ONLY },
		{ "user-only", no_argument, 0, OPT_USER_ONLY },
		RECORD_LONGOPTS,
		{ 0, 0, 0, 0 },
	};
	static const struct record_parser p = { "+F:p:ad:t:o:vh", lo, cpu_opt, cpu_check };
	struct cpu_args a = { .cfg = { .hz = 99 } };
	record_init(&a.r, "record cpu", cpu_usage);
	int rc = record_prepare(&p, &a.r, argc, argv);
	if (rc != NEXT)
		return rc;
	a.cfg.t = a.r.t;
	live_setup(&a.r, 0, "cpu", a.cfg.hz);
	return record_finish(&a.r, st_trace_cpu(&a.cfg, &a.r.sink));
}

/* ------------------------------------------------------------ record io */

static void io_usage(FILE *f)
{
	fprintf(f,
		"usage: shardtrie record io [-p PID] [--comm NAME] [--fields LIST]\n"
		"                           [--metric count|duration|duration_to_prev|bytes]\n"
		"                           [-d SECONDS] [-t FORMAT] [-o FILE] [output options]\n"
		"                           [--serve[=ADDR[:PORT]]] [--tui] [-v] [-- COMMAND...]\n"
		"       shardtrie record io --flood RATE [-d SECONDS] [-v] [-o FILE]\n"
		"Traces file I/O syscalls (open*, creat, read/write & co, close, fsync,\n"
		"fdatasync, lseek, *stat*, rename*, unlink*, mkdir*, getdents64), pairs\n"
		"enter and exit per thread in BPF and writes a flamegraph whose frames are\n"
		"LIST (default comm,tracepoint,path; also pid, tid, flags; a path is one\n"
		"frame per '/' component).  All four counters are kept; --metric picks\n"
		"the one written (default count).  Without -p/COMMAND: every process\n"
		"but this tool.  The run ends when COMMAND or -p's process exits, or\n"
		"at -d, SIGINT, SIGTERM, SIGHUP or SIGQUIT; the output is written.\n"
		"The exit code is COMMAND's (128 + N if signal N killed it).\n"
		"dup, dup2, dup3 and fcntl(F_DUPFD) are followed for fd paths (not\n"
		"recorded); a path that cannot be found is counted under\n"
		"[unresolved fd N] / [unresolved path] and reported at the end.\n"
		"--flood RATE traces nothing: it drives the pairing programs, rings and\n"
		"consumers with RATE synthetic calls/s (BPF_PROG_TEST_RUN, one feeder per\n"
		"CPU) for -d seconds (default 5), to measure what the path carries.\n" OUTPUT_USAGE
		IO_SERVE_USAGE);
}

struct io_args {
	struct record r; /* first: parse() hands &r to io_opt and io_check */
	struct st_trace_io_cfg cfg;
	const char *fields;
	struct st_live_hooks hooks; /* --serve: /order */
};

/* GET /order (and POST's answer): {"fields":[...]}, the order in force.
 * The names are fixed words: nothing to escape. */
static char *io_order_get(void *arg)
{
	struct io_args *a = arg;
	unsigned char f[ST_IOF_COUNT_];
	unsigned n = st_io_order_get(a->cfg.order, f);
	char buf[16 + ST_IOF_COUNT_ * 16];
	size_t len = (size_t)snprintf(buf, sizeof(buf), "{\"fields\":[");
	for (unsigned i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s\"%s\"", i ? "," : "",
					st_io_field_name(f[i]));
	snprintf(buf + len, sizeof(buf) - len, "]}");
	return strdup(buf);
}

/* POST /order: validated as --fields is (ior's rules), then swapped in and
 * the recording reset (bpf/tracer.h, st_io_order_set). */
static int io_order_set(void *arg, const char *const *names, size_t n, const char **why)
{
	static _Thread_local char msg[200]; /* read by the server on this thread, after us */
	struct io_args *a = arg;
	unsigned char f[ST_IOF_COUNT_];
	unsigned k;
	if (st_io_fields_from_names(names, n, f, &k, msg, sizeof(msg))) {
		*why = msg;
		return -EINVAL;
	}
	int err = st_io_order_set(a->cfg.order, f, k);
	char list[ST_IOF_COUNT_ * 16] = "";
	for (unsigned i = 0; i < k; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? "," : "",
			 st_io_field_name(f[i]));
	if (a->r.tui && !a->r.serve)
		return err; /* the terminal view is the only client: it says so itself */
	if (!err)
		fprintf(stderr, "%s record io: /order: fields now %s; the recording was reset\n",
			st_prog, list);
	else
		fprintf(stderr, "%s record io: /order: fields now %s, but the recording could not "
				"be reset: %s (POST /reset clears it)\n",
			st_prog, list, strerror(-err));
	return err;
}

static int io_opt(int c, const char *arg, void *args)
{
	struct io_args *a = args;
	int m;
	switch (c) {
	case OPT_COMM:
		if (!*arg || strlen(arg) >= IO_COMM_LEN)
			return bad_arg(&a->r, "--comm", "1..15 characters (the kernel's comm)", arg);
		a->cfg.comm = arg;
		return NEXT;
	case OPT_FIELDS: a->fields = arg; return NEXT;
	case OPT_METRIC:
		if ((m = st_io_metric_from_name(arg)) < 0) {
			fprintf(stderr, "%s record io: unknown --metric '%s' (known: count, duration, "
					"duration_to_prev, bytes)\n", st_prog, arg);
			return EX_USAGE_;
		}
		a->cfg.metric = (unsigned)m;
		return NEXT;
	case OPT_SELFTEST: return st_trace_io_selftest(st_prog);
	case OPT_FLOOD:
		if (!st_cli_double_in(arg, 1, 1e9, &a->cfg.flood_rate))
			return bad_arg(&a->r, "--flood", "calls per second (1..1e9)", arg);
		return NEXT;
	default: return common_opt(&a->r, c, arg);
	}
}

static int io_check(void *args)
{
	struct io_args *a = args;
	struct st_trace_target *t = &a->r.t;
	char msg[256];
	if (st_io_fields_parse(a->fields, a->cfg.fields, &a->cfg.nfields, msg, sizeof(msg))) {
		fprintf(stderr, "%s record io: --fields: %s\n", st_prog, msg);
		return EX_USAGE_;
	}
	if (t->pid && t->cmd) {
		fprintf(stderr, "%s record io: -p and COMMAND exclude each other\n", st_prog);
		return EX_USAGE_;
	}
	if (a->cfg.flood_rate && (t->pid || t->cmd || a->cfg.comm)) {
		fprintf(stderr, "%s record io: --flood traces nothing real: no -p, --comm or COMMAND\n", st_prog);
		return EX_USAGE_;
	}
	if (a->cfg.flood_rate && !t->duration)
		t->duration = 5;
	return check_pid(&a->r);
}

static int record_io(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "comm", required_argument, 0, OPT_COMM },
		{ "fields", required_argument, 0, OPT_FIELDS },
		{ "metric", required_argument, 0, OPT_METRIC },
		{ "selftest", no_argument, 0, OPT_SELFTEST },
		{ "flood", required_argument, 0, OPT_FLOOD },
		RECORD_LONGOPTS,
		{ 0, 0, 0, 0 },
	};
	static const struct record_parser p = { "+p:d:t:o:vh", lo, io_opt, io_check };
	struct io_args a = { .cfg = { .metric = ST_IOM_COUNT }, .fields = ST_IO_DEFAULT_FIELDS };
	record_init(&a.r, "record io", io_usage);
	int rc = record_prepare(&p, &a.r, argc, argv);
	if (rc != NEXT)
		return rc;
	a.cfg.t = a.r.t;
	if (a.r.serve || a.r.tui) { /* the field order, changeable through /order (o in the view) */
		if (!(a.cfg.order = st_io_order_new(a.cfg.fields, a.cfg.nfields))) {
			fprintf(stderr, "%s record io: %s\n", st_prog, strerror(errno));
			return record_finish(&a.r, EX_SOFTWARE_);
		}
		a.hooks = (struct st_live_hooks){ .order_get = io_order_get,
						  .order_set = io_order_set, .arg = &a.r };
		a.r.hooks = &a.hooks;
	}
	static const char *const labels[ST_IOM_N] = { "io_count", "io_duration",
						      "io_duration_to_prev", "io_bytes" };
	live_setup(&a.r, a.cfg.metric, labels[a.cfg.metric], 0);
	rc = record_finish(&a.r, st_trace_io(&a.cfg, &a.r.sink));
	st_io_order_free(a.cfg.order);
	return rc;
}

/* ------------------------------------------------------------ record */

int cmd_record(int argc, char **argv)
{
	const char *missing = st_trace_missing();
	if (missing) {
		fprintf(stderr, "%s record: built without BPF support (missing at build time: %s);\n"
				"  install them (make deps) on a kernel with BTF and rebuild\n",
			st_prog, missing);
		return EX_SOFTWARE_;
	}
	if (argc >= 2 && !strcmp(argv[1], "cpu"))
		return record_cpu(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "io"))
		return record_io(argc - 1, argv + 1);
	FILE *f = argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? stdout : stderr;
	fprintf(f, "usage: shardtrie record cpu|io [OPTIONS] [-- COMMAND ARGS...]\n"
		   "  cpu   sample on-CPU stacks (perf events + BPF)\n"
		   "  io    trace file I/O syscalls (syscall tracepoints + BPF)\n"
		   "'shardtrie record cpu --help' for the options.\n");
	return f == stdout ? EX_OK_ : EX_USAGE_;
}
