/* SPDX-License-Identifier: MIT */
/*
 * cli.h - what the `shardtrie` subcommands share.
 *
 * A subcommand is `int cmd_x(int argc, char **argv)` (argv[0] is its name)
 * returning the process exit code, listed in main.c's table.
 */
#ifndef ST_CLI_H
#define ST_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "shardtrie.h"
#include "shardtrie_export.h"
#include "push/push.h" /* struct st_push_opts in struct st_cli_push */

/* sysexits-style codes the subcommands use. */
#define EX_OK_ 0
#define EX_USAGE_ 64
#define EX_DATAERR_ 65
#define EX_NOINPUT_ 66
#define EX_SOFTWARE_ 70
#define EX_CANTCREAT_ 73
#define EX_IOERR_ 74
#define EX_NOPERM_ 77

int cmd_convert(int argc, char **argv);
int cmd_record(int argc, char **argv); /* record.c: options, then bpf/tracer.h */
int cmd_diff(int argc, char **argv);
int cmd_serve(int argc, char **argv); /* serve.c: live/server.h over a file or stream */
int cmd_top(int argc, char **argv);   /* top.c: tui/tui.h attached to a live server */

/*
 * The live server's options, shared by `serve` and `record --serve`
 * (serve.c): put ST_CLI_LIVE_LONGOPTS in the getopt_long table and hand
 * option codes to st_cli_live_opt() (ST_CLI_GO_ON taken, an exit code, or
 * 1 = not a live option).  st_cli_live_check() reads the token and applies
 * the address rules; st_cli_live_start() starts the server on e and prints
 * "Live flamegraph at http://ADDR:PORT/" on url_out.  cmd and addr_opt name
 * the subcommand and the option that set the address, for messages.
 */
enum st_cli_live_opt_code {
	ST_OPT_LIVE_ADDR = 1000,
	ST_OPT_LIVE_PORT,
	ST_OPT_LIVE_TICK,
	ST_OPT_LIVE_TOKEN_FILE,
	ST_OPT_LIVE_INSECURE,
	ST_OPT_LIVE_TIMEOUT,
};
#define ST_CLI_LIVE_LONGOPTS                                              \
	{ "tick", required_argument, 0, ST_OPT_LIVE_TICK },                \
	{ "token-file", required_argument, 0, ST_OPT_LIVE_TOKEN_FILE },    \
	{ "insecure", no_argument, 0, ST_OPT_LIVE_INSECURE },              \
	{ "timeout", required_argument, 0, ST_OPT_LIVE_TIMEOUT }
struct st_cli_live {
	const char *addr, *token_file;
	long long port, tick, timeout;
	bool insecure;
	char *token; /* st_cli_live_check(): malloc'd, or NULL */
	/* The subcommand's output options (--units, --sample-rate, --title...),
	 * the base of the server's answers; or NULL. */
	const struct st_export_opts *eo;
	double events_min_fraction; /* /events' default pruning; < 0: the server's */
};
struct st_engine;
struct st_live;
struct st_live_hooks;
void st_cli_live_init(struct st_cli_live *o);
int st_cli_live_opt(const char *cmd, int c, const char *arg, struct st_cli_live *o);
int st_cli_live_check(const char *cmd, const char *addr_opt, struct st_cli_live *o);
/* NULL (message printed, *rc the exit code) or the server. */
struct st_live *st_cli_live_start(const char *cmd, const struct st_cli_live *o, struct st_engine *e,
				  unsigned metric, const struct st_live_hooks *hooks, FILE *url_out,
				  int *rc);
void st_cli_live_fini(struct st_cli_live *o);

/* record --tui (record_tui.c): a random token unless o has one (an exit
 * code or ST_CLI_GO_ON); the terminal view attached to the server on port
 * (NULL: message printed, the recording goes on); stopped before the
 * server. */
struct tui_thread;
int st_cli_tui_prepare(const char *cmd, struct st_cli_live *o);
struct tui_thread *st_cli_tui_start(const char *cmd, const struct st_cli_live *o, unsigned port);
void st_cli_tui_stop(struct tui_thread *t);

/*
 * The --push options, shared by `serve` and `record` (push.c, push/push.h,
 * docs/push.md): put ST_CLI_PUSH_LONGOPTS in the getopt_long table and hand
 * option codes to st_cli_push_opt() (ST_CLI_GO_ON taken, an exit code, or
 * 1 = not a push option).  st_cli_push_check() after the options (URL
 * rules, credentials from SHARDTRIE_PUSH_* or --push-auth-file);
 * st_cli_push_start() once the engine exists (EX_OK_ when --push is not
 * given); st_cli_push_reset() is a live reset hook (arg: the struct) that
 * pushes what came before the reset; st_cli_push_stop() pushes the last
 * interval, drains and reports; st_cli_push_fini() frees.
 */
enum st_cli_push_opt_code {
	ST_OPT_PUSH = 1200,
	ST_OPT_PUSH_APP,
	ST_OPT_PUSH_LABEL,
	ST_OPT_PUSH_INTERVAL,
	ST_OPT_PUSH_QUEUE,
	ST_OPT_PUSH_FORMAT,
	ST_OPT_PUSH_AUTH_FILE,
	ST_OPT_PUSH_TIMEOUT,
	ST_OPT_PUSH_DRAIN,
};
#define ST_CLI_PUSH_LONGOPTS                                                 \
	{ "push", required_argument, 0, ST_OPT_PUSH },                        \
	{ "app", required_argument, 0, ST_OPT_PUSH_APP },                     \
	{ "label", required_argument, 0, ST_OPT_PUSH_LABEL },                 \
	{ "push-interval", required_argument, 0, ST_OPT_PUSH_INTERVAL },      \
	{ "push-queue", required_argument, 0, ST_OPT_PUSH_QUEUE },            \
	{ "push-format", required_argument, 0, ST_OPT_PUSH_FORMAT },          \
	{ "push-auth-file", required_argument, 0, ST_OPT_PUSH_AUTH_FILE },    \
	{ "push-timeout", required_argument, 0, ST_OPT_PUSH_TIMEOUT },        \
	{ "push-drain", required_argument, 0, ST_OPT_PUSH_DRAIN }
#define ST_CLI_PUSH_HELP                                                              \
	"push options (docs/push.md): --push URL sends the profile to a Pyroscope\n"  \
	"  server every --push-interval D (10s), each push the exact difference since\n" \
	"  the last; --app NAME (shardtrie), --label K=V (repeatable; hostname= and\n"  \
	"  metric= by default), --push-queue N[/SIZE] unsent intervals kept (64/64M,\n" \
	"  oldest dropped), --push-format pprof|folded, --push-timeout D one\n"       \
	"  request's limit (10s), --push-drain D how long unsent intervals are still\n" \
	"  tried at exit (10s; 0 = not at all), credentials from\n"                   \
	"  SHARDTRIE_PUSH_USER/_PASSWORD (basic), SHARDTRIE_PUSH_TOKEN (bearer),\n"    \
	"  SHARDTRIE_PUSH_TENANT (X-Scope-OrgID) or --push-auth-file F\n"
struct st_push;
struct st_cli_push {
	struct st_push_opts o;   /* url NULL: no --push */
	const char *auth_file;
	bool other;              /* a push option other than --push */
	char *user, *password, *token, *tenant; /* until st_cli_push_start */
	struct st_push *p;
};
void st_cli_push_init(struct st_cli_push *o);
int st_cli_push_opt(const char *cmd, int c, const char *arg, struct st_cli_push *o);
int st_cli_push_check(const char *cmd, struct st_cli_push *o);
int st_cli_push_start(const char *cmd, struct st_cli_push *o, struct st_engine *e, unsigned metric,
		      const char *metric_label, uint32_t sample_rate, const char *spy);
int st_cli_push_reset(void *arg);
char *st_cli_push_status(void *arg); /* live status hook: {"push":{...}} */
void st_cli_push_stop(struct st_cli_push *o);
void st_cli_push_fini(struct st_cli_push *o);

/*
 * An output file (outfile.c): a missing or regular file (symlinks followed)
 * is written to a temporary file beside it and renamed over it on commit
 * (mode, and owner when root, kept), removed on abort or when a killing
 * SIGINT/SIGTERM/SIGHUP/SIGQUIT arrives first; stale temporaries of killed
 * writers are removed by the next open.  Stdout (path NULL or "-"),
 * devices, FIFOs and pipes are written directly.  f is stdout for stdout,
 * else a stream that keeps its first write error in o->err: o must not move
 * until commit/abort.
 */
struct st_outfile {
	FILE *f;
	char *path; /* replaced: the target's name in dirfd (else NULL) */
	char *tmp;  /* the temporary's name in dirfd, or NULL */
	int fd;    /* what f writes to (fileno(f) is -1 but for stdout) */
	int dirfd; /* replaced: the target's directory */
	int err;   /* first write(2) error of f, or 0 */
};
int st_outfile_open(struct st_outfile *o, const char *path); /* 0 or -errno */
int st_outfile_commit(struct st_outfile *o); /* 0 or -errno; aborts on error */
void st_outfile_abort(struct st_outfile *o);
/* A writer's result r for o->f with its bare -EIO (stream error flag)
 * replaced by the real cause kept in o->err. */
int st_outfile_stream_error(const struct st_outfile *o, int r);
/* Whether path could be opened by st_outfile_open, without writing it
 * (a temporary is created and removed; FIFOs are not opened): 0 or
 * -errno.  st_cli_output_check prints "PROG CMD: PATH: cannot create: ..."
 * and returns EX_CANTCREAT_ (else EX_OK_): call it before the work. */
int st_outfile_check(const char *path);
int st_cli_output_check(const char *cmd, const char *path);

/* Write snapshot s as `format` to path through st_outfile.  Prints the
 * error and returns an exit code. */
int st_cli_export(const struct st_snap *s, int format, const struct st_export_opts *eo,
		  const char *path);

/* The same for folded output straight from engine e's shards
 * (st_export_folded_once): an exit code, or -1 (nothing written) when e has
 * merged stacks and the caller must flush and use st_cli_export. */
int st_cli_export_folded_once(struct st_engine *e, const struct st_export_opts *eo,
			      const char *path);

/* When some totals of s saturated at UINT64_MAX, say how many and where on
 * stderr ("PROG CMD: N totals saturated ..."); returns EX_DATAERR_ then if
 * strict (the caller writes no output), else EX_OK_ (convert.c). */
int st_cli_report_saturation(const char *cmd, const struct st_snap *s, bool strict);

/* Parse a format name for -t; prints the error and returns -1 if unknown. */
int st_cli_format(const char *name);

/*
 * Output-format options shared by convert, diff and record (exportopts.c):
 * put ST_CLI_EXPORT_LONGOPTS in the getopt_long table and hand unknown
 * option codes to st_cli_export_opt(): 0 = taken, -1 = bad value (message
 * printed), 1 = not an export option.  Subcommands number their own long
 * options below ST_OPT_EXPORT_FIRST.
 */
enum st_cli_export_opt_code {
	ST_OPT_EXPORT_FIRST = 2000,
	ST_OPT_MAX_NODES = ST_OPT_EXPORT_FIRST,
	ST_OPT_TITLE,
	ST_OPT_WIDTH,
	ST_OPT_MINWIDTH,
	ST_OPT_INVERTED,
	ST_OPT_REVERSE,
	ST_OPT_COLORS,
	ST_OPT_SAMPLE_RATE,
	ST_OPT_UNITS,
	ST_OPT_NAME,
	ST_OPT_MIN_FRACTION, /* in ST_CLI_MIN_FRACTION_LONGOPT, not in the set below */
};
#define ST_CLI_EXPORT_LONGOPTS                                           \
	{ "max-nodes", required_argument, 0, ST_OPT_MAX_NODES },          \
	{ "title", required_argument, 0, ST_OPT_TITLE },                  \
	{ "width", required_argument, 0, ST_OPT_WIDTH },                  \
	{ "minwidth", required_argument, 0, ST_OPT_MINWIDTH },            \
	{ "inverted", no_argument, 0, ST_OPT_INVERTED },                  \
	{ "reverse", no_argument, 0, ST_OPT_REVERSE },                    \
	{ "colors", required_argument, 0, ST_OPT_COLORS },                \
	{ "sample-rate", required_argument, 0, ST_OPT_SAMPLE_RATE },      \
	{ "units", required_argument, 0, ST_OPT_UNITS },                  \
	{ "name", required_argument, 0, ST_OPT_NAME }
int st_cli_export_opt(int c, const char *arg, struct st_export_opts *eo, const char *cmd);
/* --min-fraction F (json pruning, [0,1]): convert and serve list it in their
 * tables too; st_cli_export_opt() takes it. */
#define ST_CLI_MIN_FRACTION_LONGOPT { "min-fraction", required_argument, 0, ST_OPT_MIN_FRACTION }

/*
 * The perf script input options convert and serve share (exportopts.c): put
 * ST_CLI_PERF_LONGOPTS in the getopt_long table and hand option codes to
 * st_cli_perf_opt(): 0 = taken into *po (and *first, when NULL, set to the
 * option's name, for "applies to perf script input only"), 1 = not a perf
 * option.  --event-filter "" is the same as none (the first event seen).
 */
enum st_cli_perf_opt_code {
	ST_OPT_PERF_FIRST = 3000,
	ST_OPT_PERF_PID = ST_OPT_PERF_FIRST,
	ST_OPT_PERF_TID,
	ST_OPT_PERF_KERNEL,
	ST_OPT_PERF_JIT,
	ST_OPT_PERF_ALL,
	ST_OPT_PERF_ADDRS,
	ST_OPT_PERF_EVENT_FILTER,
};
#define ST_CLI_PERF_LONGOPTS                                                 \
	{ "pid", no_argument, 0, ST_OPT_PERF_PID },                           \
	{ "tid", no_argument, 0, ST_OPT_PERF_TID },                           \
	{ "kernel", no_argument, 0, ST_OPT_PERF_KERNEL },                     \
	{ "jit", no_argument, 0, ST_OPT_PERF_JIT },                           \
	{ "all", no_argument, 0, ST_OPT_PERF_ALL },                           \
	{ "addrs", no_argument, 0, ST_OPT_PERF_ADDRS },                       \
	{ "event-filter", required_argument, 0, ST_OPT_PERF_EVENT_FILTER }
struct st_perf_opts;
int st_cli_perf_opt(int c, const char *arg, struct st_perf_opts *po, const char **first);
#define ST_CLI_PERF_HELP                                                              \
	"perf script input (-f perf), collapsed as stackcollapse-perf.pl does:\n"        \
	"  --pid, --tid   root frame comm-PID (comm-PID/TID)\n"                          \
	"  --kernel, --jit, --all   _[k] on kernel frames, _[j] on JIT frames, both\n"   \
	"  --addrs        \"[module <addr>]\" for frames without a symbol\n"             \
	"  --event-filter EV   collapse only event EV (default: the first one seen)\n"
/* The output options in a subcommand's --help (--units takes only these
 * words: exportopts.c rejects the others, exit 64). */
#define ST_CLI_EXPORT_HELP                                                           \
	"output options: --max-nodes N (flamebearer, -1 = all) --title T --name NAME\n" \
	"  --width PX --minwidth PCT --inverted --reverse --colors PALETTE\n"          \
	"  --units U: what the values are (default: from the input; perf cpu-clock\n"   \
	"    and task-clock periods are nanoseconds, other input counts samples):\n"   \
	"    samples (--sample-rate HZ of them make a second, default 100), objects,\n" \
	"    goroutines, bytes, lock_samples, lock_nanoseconds, trace_samples,\n"       \
	"    exceptions (Pyroscope's units), nanoseconds, microseconds, milliseconds,\n" \
	"    seconds (Pyroscope gets these as samples at 1e9, 1e6, 1e3, 1 Hz)\n"

/*
 * A subcommand's option loop: getopt_long over argv (optind reset to 1),
 * each option's code and optarg handed to take(c, arg, ctx), which returns
 * ST_CLI_GO_ON to go on or an exit code to stop with.  Returns ST_CLI_GO_ON
 * once all options are taken (operands from optind), else that exit code.
 */
#define ST_CLI_GO_ON (-1)
struct option;
int st_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *lo,
		  int (*take)(int c, const char *arg, void *ctx), void *ctx);

/* The default case of a take(): code c (optarg arg) as an export option
 * (returns 0), else EX_USAGE_ after the message (for an unknown option:
 * usage(stderr)). */
int st_cli_other_opt(int c, const char *arg, struct st_export_opts *eo, const char *cmd,
		     void (*usage)(FILE *));

/* Option values: true when arg is all of a number in [lo, hi] (strtoll /
 * strtod syntax).  st_cli_bad_value prints "PROG CMD: --OPT wants WANT,
 * got 'ARG'" and returns -1. */
bool st_cli_long_in(const char *arg, long long lo, long long hi, long long *v);
bool st_cli_double_in(const char *arg, double lo, double hi, double *v);
int st_cli_bad_value(const char *cmd, const char *opt, const char *want, const char *arg);

/*
 * The block reader of convert and diff (input.c), so that every input gets
 * the same rules.  Each input is cut into blocks of at most ST_INPUT_BLOCK
 * bytes that end at a line end (ops.perf: just after a blank line, where a
 * perf sample ends, when the block has one), handed to ops.block in input
 * order.  Regular files are mapped whole (blocks point into the mapping, kept
 * until st_input_free); anything else is read() into pooled buffers.
 *
 * The rule for a line longer than a block: it is never buffered or passed
 * on; ops.on_long_line gets FILE:LINE and the message, and the consumer
 * counts it as a malformed line (reported and skipped; --strict makes it an
 * error like any malformed line).  Shorter lines reach the parsers, which
 * have their own limits (folded: ST_MAX_LINE, rejected with the same
 * message).
 *
 * Blocks may be parsed on other threads: st_input_line and st_input_release
 * are thread-safe.
 */
#define ST_INPUT_BLOCK (4u << 20)

struct st_input_block {
	const char *buf; /* len bytes, whole lines */
	size_t len;
	const char *file;    /* the name given to st_input_fd, for reports */
	uint64_t first_line; /* read() blocks: line number of buf's first line */
	int map;             /* mapped blocks: the mapping (else -1) */
};

struct st_input_ops {
	bool perf; /* cut perf script text where a sample ends */
	/* Take block *b (keep a copy of it) and st_input_release it once
	 * parsed; 0 goes on, anything else (> 0) stops st_input_fd with that
	 * value. */
	int (*block)(void *arg, const struct st_input_block *b);
	/* The line at file:line was longer than a block and skipped. */
	void (*on_long_line)(void *arg, const char *file, uint64_t line, const char *msg);
	void *arg;
};

struct st_input;
struct st_input *st_input_new(const struct st_input_ops *ops); /* NULL: no memory */
void st_input_free(struct st_input *in); /* unmaps every mapped input */
/* Path "-" is stdin.  st_input_open: an fd, or -1 with errno set;
 * st_input_close leaves stdin open. */
int st_input_open(const char *path);
void st_input_close(int fd);
/* Cut all of fd (reported as `name`, a string that must outlive in) into
 * blocks: 0, -errno (read error, out of memory), -ST_INPUT_ESHRANK (a
 * mapped file shrank while it was read), or the stop value of ops.block. */
int st_input_fd(struct st_input *in, int fd, const char *name);
#define ST_INPUT_ESHRANK 4096 /* beyond every errno */
/* Once every block is parsed: 0, or -ST_INPUT_ESHRANK with *file the name
 * of an input that shrank under a parser (its blocks may have read patched
 * blank lines: the result must not be written). */
int st_input_finish(struct st_input *in, const char **file);
/* The message of st_input_fd's / st_input_finish's error r (< 0). */
const char *st_input_strerror(int r);
/* The file's line number of line `line` (1-based) of block b: what a
 * parser's st_parse_err_fn line becomes in a FILE:LINE report.  A mapped
 * block's lines are counted only here, when a report needs them. */
uint64_t st_input_line(struct st_input *in, const struct st_input_block *b, uint64_t line);
/* Block b is parsed: its buffer goes back to the pool. */
void st_input_release(struct st_input *in, const struct st_input_block *b);
/* Print "FILE:LINE: MSG" for the first `max` bad lines (*reported counts
 * them all), the one form of a bad-line report. */
void st_input_report(uint64_t *reported, uint64_t max, const char *file, uint64_t line,
		     const char *msg);

extern const char *st_prog;

#endif
