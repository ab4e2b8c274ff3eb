/* SPDX-License-Identifier: MIT */
/*
 * tracer.h - the API of the BPF tracers, for whoever drives them (the CLI's
 * `record cpu|io`, cli/record.c).  Nothing here knows about option parsing
 * or output files: a tracer takes a config struct and a sink, runs, hands
 * the sink the run's merged stacks and returns a status.
 *
 *   cli/record.c --config, sink--> st_trace_cpu() / st_trace_io()   (bpf/)
 *                <--sink.write(snapshot)-- at the end of the run
 *                <--status-------------------
 *
 * Contracts, for every st_trace_*() entry point:
 *   - The config has been validated by the caller (ranges, -p names an
 *     existing process, pid and cmd not both set, io fields parsed).
 *   - Messages go to stderr, prefixed "<prog> <what>: " (what = "record cpu"
 *     / "record io"); progress and the end-of-run report as documented in
 *     docs/bpf.md.  Nothing is written to stdout except by the sink.
 *   - The sink's write() is called at most once, on the calling thread,
 *     after the tracing has ended and the drop report is printed; it writes
 *     the snapshot (valid only during the call) and returns 0 or an exit
 *     code.  A non-zero return becomes the tracer's status.
 *   - The sink's optional started() and stopping() let the caller watch
 *     the engine while the run goes on (record --serve): started(ctx, e)
 *     is called once, on the calling thread, when the engine exists and
 *     before any tracing starts (no program attached, no consumer running);
 *     it returns 0, or an exit code that ends the run before it starts
 *     (and becomes the status; stopping() is then not called).  e stays
 *     valid until stopping(ctx) returns.  The engine then runs a merger
 *     (10 ms) so that its published snapshots follow the run; a caller may
 *     only read them (st_snap_acquire/release, st_engine_stats) and reset
 *     it (st_reset: the output then holds what came after the reset).
 *     stopping(ctx) is called once after started() succeeded, on the
 *     calling thread, after the last sample is ingested (consumers joined)
 *     and before write() and the engine's teardown, also when the run
 *     fails; the caller must stop using e by the time it returns.
 *   - The status is a process exit code: ST_TRACE_OK, one of the sysexits
 *     values below, or (when the run succeeded and a command was traced) the
 *     command's own status, as strace passes it on: its exit status (127
 *     when it could not be run), 128 + N when signal N killed it, 0 when the
 *     tracer ended it (duration, one of the signals below).
 *   - SIGINT, SIGTERM, SIGHUP and SIGQUIT end a run (handlers are installed
 *     while tracing and the previous ones restored after); the output is
 *     still written and the status is as for a run ended by -d.
 *   - A run on t.pid ends when that process exits (its pidfd polls
 *     readable; children it forked may live on); a run on t.cmd ends when
 *     the command exits.
 */
#ifndef ST_BPF_TRACER_H
#define ST_BPF_TRACER_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/decode.h" /* io fields and metrics: st_io_fields_parse(), ST_IOM_* */
#include "shardtrie.h"

/* Exit statuses (sysexits.h values). */
enum st_trace_status {
	ST_TRACE_OK = 0,
	ST_TRACE_SOFTWARE = 70, /* set-up failed, out of memory, BPF object unusable, no BTF */
	ST_TRACE_NOPERM = 77,   /* loading, attaching or tracefs refused (privileges, verifier) */
};

/* Where the run's stacks go. */
struct st_trace_sink {
	/* s: the run's merged stacks; metric: the index of the metric to write. */
	int (*write)(void *ctx, const struct st_snap *s, unsigned metric);
	/* Optional (NULL: not called), see the contract above. */
	int (*started)(void *ctx, struct st_engine *e);
	void (*stopping)(void *ctx);
	void *ctx;
};

/* What every tracer traces, and how it talks. */
struct st_trace_target {
	const char *prog; /* message prefix, e.g. "shardtrie" */
	double duration;  /* seconds; 0 = until cmd ends, SIGINT or SIGTERM */
	pid_t pid;        /* > 0: that process and the children it forks */
	char **cmd;       /* NULL-terminated argv to run and trace (with its
			   * children), started once the tracer is attached; or NULL */
	bool verbose;     /* libbpf info messages and the full report */
	bool cmd_stdout_to_stderr; /* cmd's stdout is our stderr: set when the
				    * sink writes to our stdout, which must carry
				    * the output and nothing else */
};

/* `record cpu`: on-CPU stacks sampled by perf events on every CPU. */
struct st_trace_cpu_cfg {
	struct st_trace_target t; /* neither pid nor cmd: every process but this one */
	unsigned hz;              /* sampling frequency, 1..100000 */
	bool kernel_stacks;       /* capture the kernel part of each stack */
	bool user_stacks;         /* capture the user part */
};
int st_trace_cpu(const struct st_trace_cpu_cfg *cfg, const struct st_trace_sink *sink);

/*
 * `record io`'s field order while it runs (record --serve's GET|POST
 * /order).  The caller makes one from the parsed --fields and puts it in
 * st_trace_io_cfg.order; get() and set() may then be called from any
 * thread, before, during or after st_trace_io().  set() makes the new order
 * the one every event decoded from then on is built with, waits until no
 * consumer can still ingest a stack of the old one (a few ms: one poll
 * period at most), then resets the run's engine (st_reset) while a run is
 * going on.  Hence (the rule R-ORDER, bpf/io/order.c): once set() returned
 * 0, the engine holds stacks of the new order only, and the output written
 * at the end of the run has the order in force at the end.
 * set(): 0; -EINVAL (an empty list, a field out of range: validate names
 * with st_io_fields_from_names()); -ENOMEM; or -ETIMEDOUT when a consumer
 * did not move within 10 s: the new order is then in force but the engine
 * was NOT reset (it may hold both orders until the next reset).
 */
struct st_io_order;
/* NULL (errno: EINVAL for an empty or bad list, ENOMEM). */
struct st_io_order *st_io_order_new(const unsigned char *fields, unsigned n);
void st_io_order_free(struct st_io_order *o); /* after the run */
/* The order in force into fields[]; returns how many. */
unsigned st_io_order_get(struct st_io_order *o, unsigned char fields[ST_IOF_COUNT_]);
int st_io_order_set(struct st_io_order *o, const unsigned char *fields, unsigned n);

/* `record io`: file I/O syscalls paired per thread; all ST_IOM_N metrics kept. */
struct st_trace_io_cfg {
	struct st_trace_target t;
	const char *comm;                    /* only threads of this comm (< 16 chars), or NULL */
	unsigned char fields[ST_IOF_COUNT_]; /* frames of an event (st_io_fields_parse()) */
	unsigned nfields;
	struct st_io_order *order;           /* NULL: fields[] for the whole run; else the
					      * order in force, changeable (above), and
					      * fields[] unused */
	unsigned metric;                     /* ST_IOM_*: the metric the sink is asked to write */
	double flood_rate;                   /* > 0: trace nothing, feed this many synthetic
					      * calls/s for t.duration s (no pid, cmd or comm) */
};
int st_trace_io(const struct st_trace_io_cfg *cfg, const struct st_trace_sink *sink);

/* `record io --selftest`: the pairing programs through BPF_PROG_TEST_RUN.
 * Prints "io-selftest: N checks, M failed" on stdout; ST_TRACE_OK when none
 * failed. */
int st_trace_io_selftest(const char *prog);

/* NULL when the tracers were built; otherwise what the build lacked
 * ("clang bpftool ...": bpf/stub.c), and every st_trace_*() returns
 * ST_TRACE_SOFTWARE without doing anything. */
const char *st_trace_missing(void);

#endif
