/* SPDX-License-Identifier: MIT */
/*
 * runner.h - what the user sides of `record cpu` and `record io` share:
 * preflight checks, the command to trace, loading a tracer's skeleton with
 * its per-CPU ring buffers, one consumer thread (and one engine writer) per
 * ring, the wait, the end of the stream, drop accounting and the hand-over
 * to the sink (bpf/tracer.h).  Inside bpf/ only.
 *
 *   main thread                            consumer thread n (n = 0..ncpu-1)
 *   -----------                            ---------------------------------
 *   st_rec_open(): preflight, libbpf log
 *   st_rec_begin(): engine; the command
 *     forked, waiting on a pipe
 *   skeleton open, st_rec_configure()
 *   st_rec_load(): rings, load, maps
 *   st_rec_start() ----------------------> st_writer_open()
 *   (attach)                               loop: ring_buffer__poll(rings[n]),
 *                                                ring_buffer__consume() on a timeout
 *   st_rec_wait(): go; until a signal, -d        -> handler(cons, data, size)
 *     or the command exits                       -> st_writer_ingest*()
 *   st_rec_quiesce(): stop emitting        until stop: final ring_buffer__consume()
 *   destroy every link (no program         st_writer_close()
 *     instance can run after that)
 *   st_rec_finish(): st_rec_stop() ------> joined
 *     "dropped N of M events"; st_flush, sink.write(); the command's status
 *   st_rec_fini()
 */
#ifndef ST_BPF_RUNNER_H
#define ST_BPF_RUNNER_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../tracer.h"
#include "abi.h"
#include "shardtrie.h"

struct bpf_map;
struct bpf_program;
struct bpf_object_skeleton;
struct ring_buffer;
struct st_rec;

struct st_rec_consumer {
	struct st_rec *rec;
	unsigned cpu;
	struct st_writer *w;
	struct ring_buffer *rb;
	void *tool;        /* the tool's per-thread state */
	uint64_t records;  /* records handled */
	uint64_t bad;      /* records that did not decode */
	uint64_t failed;   /* ingest errors */
	uint64_t unresolved; /* io: events counted without their path */
	uint64_t cpu_ns;   /* the thread's CPU time (user + system), at its end */
};

/* Handle one record on consumer c's thread; return 0 (non-zero stops nothing,
 * it is counted as bad). */
typedef int (*st_rec_handler)(struct st_rec_consumer *c, const void *data, size_t size);

/*
 * The pieces of a skeleton that st_bpf.h gives every tracer, by pointer, so
 * that the shared steps work on any tool's skeleton.  ST_REC_SKEL(skel) fills
 * it from a generated skeleton after its __open().
 */
struct st_rec_skel {
	struct bpf_object_skeleton *s;
	struct bpf_map *rings, *tgids;
	struct bpf_program *on_fork;
	__u64 *wakeup_bytes;   /* .rodata: written before load only */
	__u32 *self_tgid;
	bool *filter_tgids;
	bool *stopped;         /* .bss */
	struct st_bpf_cpu_stats *stats;
};
#define ST_REC_SKEL(skel)                                                                         \
	((struct st_rec_skel){ .s = (skel)->skeleton,                                              \
			       .rings = (skel)->maps.st_rings,                                     \
			       .tgids = (skel)->maps.st_tgids,                                     \
			       .on_fork = (skel)->progs.st_on_fork,                                \
			       .wakeup_bytes = &(skel)->rodata->st_wakeup_bytes,                   \
			       .self_tgid = &(skel)->rodata->st_self_tgid,                         \
			       .filter_tgids = &(skel)->rodata->st_filter_tgids,                   \
			       .stopped = &(skel)->bss->st_stopped,                                \
			       .stats = (skel)->bss->st_stats })

/* Open a tool's skeleton: *skelp = open_fn(), then *k from it and
 * st_rec_configure(r, k, ring_bytes).  Evaluates to 0, or (after saying
 * why) an exit code. */
#define ST_REC_OPEN(r, skelp, k, open_fn, ring_bytes)                                               \
	((*(skelp) = open_fn()) ? (*(k) = ST_REC_SKEL(*(skelp)), st_rec_configure(r, k, ring_bytes), 0) \
				: st_rec_open_failed(r, errno))

struct st_rec {
	const char *prog;       /* message prefix ("shardtrie") */
	const char *name;       /* "record cpu" / "record io", for messages */
	const struct st_trace_target *t;
	struct st_engine *e;    /* owned: destroyed by st_rec_fini() */
	unsigned ncpu;          /* possible CPUs = rings = consumers */
	int *ring_fds;
	struct st_rec_consumer *cons;
	pthread_t *thr;
	unsigned started;
	st_rec_handler handler;
	atomic_bool stop;
	pid_t child;            /* the command run, or 0 */
	int go_fd;              /* write end of the child's go pipe */
	int pid_fd;             /* pidfd of t->pid (readable once it exits), or -1 */
	bool pid_gone;          /* t->pid had exited before pidfd_open() */
	int child_status;
	bool child_exited;
	bool child_ended;       /* ended by us (-d or a signal), not by itself */
	size_t ring_bytes;
	const struct st_trace_sink *sink; /* set by the tool after st_rec_open() */
	bool sink_started;      /* sink->started() succeeded, stopping() not yet called */
	/* The tool's per-thread state: made and freed on the consumer thread. */
	void *(*tool_init)(struct st_rec_consumer *c);
	void (*tool_fini)(struct st_rec_consumer *c);
	/* Optional: called on the consumer thread after every pass over its
	 * ring (a pass drains the ring: at least every ST_REC_POLL_MS). */
	void (*tool_tick)(struct st_rec_consumer *c);
	/* Optional: the tool's own lines of the end-of-run report, printed
	 * after the drop line, the consumers joined. */
	void (*tool_report)(const struct st_rec *r);
};

/* Print "<prog> <name>: " and the message to stderr. */
void st_rec_say(const struct st_rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Start a run of tool `name` on target t: r made safe for st_rec_fini(),
 * then root/capabilities, BTF, tracefs when the tool needs it or t follows a
 * pid or command (mounted when missing and possible; why not, when not),
 * and the libbpf log (warnings only unless t->verbose).  Prints the problem
 * and returns an exit code, or 0. */
int st_rec_open(struct st_rec *r, const char *name, const struct st_trace_target *t,
		bool need_tracefs);
/* libbpf messages: warnings only unless verbose (st_rec_open() sets it). */
void st_rec_libbpf_log(bool verbose);
/* Explain a libbpf load/attach failure (privileges, BTF, memlock). */
void st_rec_explain(const struct st_rec *r, const char *what, int err);

/* The bare set-up (no engine, no command, no message): the rings and the
 * consumers' table for every possible CPU.  0 or -errno. */
int st_rec_init(struct st_rec *r, const char *prog, const char *name);
/*
 * After st_rec_open(): create the engine from *so, st_rec_init() and, with
 * t->cmd, fork the command, stopped before exec until st_rec_wait(); with
 * t->pid, open its pidfd (so that st_rec_wait() sees it exit).  Prints what
 * failed and returns an exit code, or 0.
 */
int st_rec_begin(struct st_rec *r, const struct st_options *so);
/* The shared .rodata and autoload settings before load: own process out,
 * follow t->pid / the command (and the fork tracepoint) when given, wake the
 * consumer per ring_bytes / 8. */
void st_rec_configure(struct st_rec *r, const struct st_rec_skel *k, size_t ring_bytes);
/* ST_REC_OPEN's failure: "opening the BPF object failed", ST_TRACE_SOFTWARE. */
int st_rec_open_failed(const struct st_rec *r, int err);
/* Rings (one per possible CPU, ring_bytes each), load the skeleton, fill the
 * ring array and the followed tgids.  Prints what failed and returns an
 * exit code, or 0. */
int st_rec_load(struct st_rec *r, const struct st_rec_skel *k);
/* Before load: one ring per possible CPU, the outer map sized to match. */
int st_rec_rings_prepare(struct st_rec *r, struct bpf_map *outer, size_t bytes);
/* After load: put the rings into the outer map. */
int st_rec_rings_install(struct st_rec *r, struct bpf_map *outer);
/* Start one consumer thread per ring.  Prints what failed and returns an
 * exit code, or 0. */
int st_rec_start(struct st_rec *r, st_rec_handler h);
/* Let the command go and wait for the end of the run: a signal (SIGINT,
 * SIGTERM, SIGHUP, SIGQUIT), the duration, the command's exit or t->pid's. */
void st_rec_wait(struct st_rec *r, double duration);
/* End of the event stream, step 1: set the programs' st_stopped flag so
 * they stop emitting and counting while the links are destroyed.  Not a
 * synchronisation: instances already past the check finish normally;
 * destroying every link (step 2, the tool's) is what waits for them. */
void st_rec_quiesce(const struct st_rec_skel *k);
/* Destroy a skeleton's links from several threads at once: detaching a
 * syscall tracepoint waits for RCU grace periods (~14 ms each here), which
 * overlap when done in parallel. */
void st_rec_detach_parallel(struct bpf_object_skeleton *s);
/* Steps 2 (the skeleton's links) and 3: stop and join the consumers after
 * draining the rings, print the report (`what`: "samples", "events"), hand
 * the engine's snapshot to the sink for `metric`, and when that succeeded
 * pass the command's status on.  Returns the run's exit code. */
int st_rec_finish(struct st_rec *r, const struct st_rec_skel *k, const char *what,
		  const struct st_trace_sink *sink, unsigned metric);
/* Stop and join the consumers after draining the rings. */
void st_rec_stop(struct st_rec *r);
/* Sum the per-CPU BPF counters of the first r->ncpu CPUs. */
struct st_bpf_cpu_stats st_rec_stats_sum(const struct st_rec *r, const struct st_bpf_cpu_stats *stats);
/* Consumers joined, command reaped, rings closed, engine destroyed. */
void st_rec_fini(struct st_rec *r);

/* CLOCK_MONOTONIC in seconds. */
double st_rec_now(void);

#endif
