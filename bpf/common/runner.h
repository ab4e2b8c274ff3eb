/* SPDX-License-Identifier: MIT */
/*
 * runner.h - what `record cpu` and `record io` share on the user side:
 * preflight checks, the command to profile, per-CPU ring buffers with one
 * consumer thread (and one engine writer) each, the wait, drop accounting.
 *
 *   main thread                          consumer thread n (n = 0..ncpu-1)
 *   -----------                          ---------------------------------
 *   st_rec_spawn()  child waits on pipe  st_writer_open()
 *   skeleton open, st_rec_rings_prepare  loop: ring_buffer__poll(rings[n])
 *   load, st_rec_rings_install, attach          -> handler(cons, data, size)
 *   st_rec_start() -------------------->         -> st_writer_ingest*()
 *   st_rec_wait(): go; until signal,     until stop: final ring_buffer__consume()
 *     -d or the command exits            st_writer_close()
 *   st_rec_quiesce(): stop emitting
 *   destroy every link (no program
 *     instance can run after that)
 *   st_rec_stop() ---------------------> joined
 *   st_rec_report(): "dropped N of M events"; st_flush + export
 */
#ifndef ST_BPF_RUNNER_H
#define ST_BPF_RUNNER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "abi.h"
#include "shardtrie.h"

struct bpf_map;
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

struct st_rec {
	const char *name;       /* "record cpu" / "record io", for messages */
	struct st_engine *e;
	unsigned ncpu;          /* possible CPUs = rings = consumers */
	int *ring_fds;
	struct st_rec_consumer *cons;
	pthread_t *thr;
	unsigned started;
	st_rec_handler handler;
	atomic_bool stop;
	pid_t child;            /* the command run, or 0 */
	int go_fd;              /* write end of the child's go pipe */
	int child_status;
	bool child_exited;
	bool child_ended;       /* ended by us (-d or a signal), not by itself */
	size_t ring_bytes;
	/* The tool's per-thread state: made and freed on the consumer thread. */
	void *(*tool_init)(struct st_rec_consumer *c);
	void (*tool_fini)(struct st_rec_consumer *c);
	void *tool_arg;
};

/* Common options. */
struct st_rec_opts {
	double duration;  /* seconds, 0 = until the command ends or a signal */
	pid_t pid;        /* -p */
	bool all;         /* -a */
	char **cmd;       /* -- COMMAND ARGS (NULL-terminated) or NULL */
	const char *out;  /* -o */
	int fmt;          /* -t */
	bool verbose;
};

/* Root/capabilities, BTF, tracefs (mounted when missing and possible).
 * Prints the problem and returns an exit code, or 0. */
int st_rec_preflight(const char *name, bool need_tracefs);
/* libbpf messages: warnings only unless verbose. */
void st_rec_libbpf_log(bool verbose);
/* Explain a libbpf load/attach failure (privileges, BTF, memlock). */
void st_rec_explain(const char *name, const char *what, int err);

int st_rec_init(struct st_rec *r, const char *name, struct st_engine *e);
/* Fork the command, stopped before exec until st_rec_wait(). 0 or -errno. */
int st_rec_spawn(struct st_rec *r, char **argv);
/*
 * What both tracers do first: create the engine from *so into *e, st_rec_init
 * r for it and, with cmd, st_rec_spawn it.  Prints what failed and returns
 * an exit code, or 0.  Whatever it returns, r and *e are in a state the
 * caller's cleanup (st_rec_fini, st_engine_destroy) handles.
 */
int st_rec_begin(struct st_rec *r, const char *name, const struct st_options *so, char **cmd,
		 struct st_engine **e);
/* Before load: one ring per possible CPU, the outer map sized to match. */
int st_rec_rings_prepare(struct st_rec *r, struct bpf_map *outer, size_t bytes);
/* After load: put the rings into the outer map. */
int st_rec_rings_install(struct st_rec *r, struct bpf_map *outer);
/* Follow tgid (the map is the skeleton's st_tgids). */
int st_rec_follow(struct bpf_map *tgids, pid_t pid);
/* Start one consumer thread per ring. */
int st_rec_start(struct st_rec *r, st_rec_handler h);
/* Let the command go and wait for the end of the run: a signal, -d, or the
 * command's exit. */
void st_rec_wait(struct st_rec *r, double duration);
/* The exit code the tool passes on for the command, as strace does: 0 with
 * no command or one we ended (-d, a signal), its exit status otherwise
 * (127 when it could not be run), 128 + N when killed by signal N.  Prints
 * why when not 0. */
int st_rec_child_rc(const struct st_rec *r);
/* End of the event stream, step 1: set the programs' st_stopped flag
 * (*stopped, the skeleton's .bss) so they stop emitting and counting while
 * the links are destroyed.  Not a synchronisation: instances already past
 * the check finish normally; destroying every link (step 2) is what waits
 * for them.  Then st_rec_stop() (step 3) drains and the counters are final. */
void st_rec_quiesce(bool *stopped);
/* Destroy a skeleton's links from several threads at once: detaching a
 * syscall tracepoint waits for RCU grace periods (~14 ms each here), which
 * overlap when done in parallel. */
struct bpf_object_skeleton;
void st_rec_detach_parallel(struct bpf_object_skeleton *s);
/* Stop and join the consumers after draining the rings. */
void st_rec_stop(struct st_rec *r);
/* Sum the per-CPU counters and print the drop line (always when something
 * was dropped, otherwise with verbose) and the unresolved-path line (always
 * when there were any).  Returns the total dropped. */
uint64_t st_rec_report(struct st_rec *r, const struct st_bpf_cpu_stats *stats, bool verbose,
		       const char *what);
void st_rec_fini(struct st_rec *r);
/* Flush the engine and write the output. */
int st_rec_output(struct st_rec *r, const struct st_rec_opts *o, unsigned metric);

/* CLOCK_MONOTONIC in seconds. */
double st_rec_now(void);
/* Parse -d seconds; -1 on error. */
double st_rec_parse_seconds(const char *s);

#endif
