/* SPDX-License-Identifier: MIT */
/*
 * runner.c - the shared user side of the BPF tracers (see runner.h for the
 * picture; the traced command and the wait are in child.c).
 *
 * Ordering at the end of a run, so that "dropped N of M" is exact:
 *   1. st_rec_quiesce() sets st_stopped: programs stop emitting/counting
 *      early (detaching takes a while), an optimisation only;
 *   2. every link is destroyed (the tool's own, then st_rec_finish() the
 *      skeleton's).  bpf_link__destroy() of a syscall tracepoint returns
 *      after the kernel's unregister synchronisation (perf_trace_destroy ->
 *      tracepoint_synchronize_unregister); of a perf event, after
 *      PERF_EVENT_IOC_DISABLE and the close, which remove the event on its
 *      CPU synchronously.  So no program instance runs after that: no new
 *      records, counters final.  No sleep stands in;
 *   3. st_rec_stop() sets `stop` (release); each consumer sees it (acquire)
 *      after its current poll, drains its ring with ring_buffer__consume()
 *      and closes its writer;
 *   4. the main thread joins them, then sums the counters and flushes.
 * Signals are blocked in the consumer threads: SIGINT/SIGTERM reach the main
 * thread, whose handler only sets a flag.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "runner.h"

#define TRACEFS "/sys/kernel/tracing"
/* Poll timeout: the most a record waits when its ring is below the
 * wakeup threshold (st_wakeup_bytes): a timeout drains the ring. */
#define ST_REC_POLL_MS 25
#define TRACEFS_MAGIC_ 0x74726163

/* ------------------------------------------------------------ set-up */

void st_rec_say(const struct st_rec *r, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s %s: ", r->prog, r->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static bool verbose_log;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG || (level == LIBBPF_INFO && !verbose_log))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

void st_rec_libbpf_log(bool verbose)
{
	verbose_log = verbose;
	libbpf_set_print(libbpf_print);
}

/* Tracepoints are attached by id, which libbpf reads from tracefs (from
 * the copy under debugfs when that exists).  0 when one is there or tracefs
 * could be mounted now (said so: the mount outlives the run), else the
 * mount's -errno. */
static int tracefs_ready(const struct st_rec *r)
{
	struct statfs sf;
	if (statfs(TRACEFS, &sf) == 0 && sf.f_type == TRACEFS_MAGIC_)
		return 0;
	if (access("/sys/kernel/debug/tracing/events", F_OK) == 0)
		return 0;
	if (mount("nodev", TRACEFS, "tracefs", 0, NULL) != 0)
		return -errno;
	st_rec_say(r, "tracefs was not mounted: mounted it at " TRACEFS "\n");
	return 0;
}

/* Why tracefs could not be mounted (err: the mount's errno), and the
 * exit code. */
static int tracefs_failed(const struct st_rec *r, int err)
{
	const char *why = err == EPERM || err == EACCES ?
		"mounting needs CAP_SYS_ADMIN (root)" :
		err == ENODEV ? "this kernel has no tracefs (CONFIG_TRACING is off)" :
		err == ENOENT ? "the mount point " TRACEFS " does not exist (is sysfs mounted at /sys?)" :
		"the mount failed";
	st_rec_say(r, "the tracepoints need tracefs, which is not mounted; mounting it at " TRACEFS
		      " failed: %s (%s)\n"
		      "  mount it (mount -t tracefs nodev " TRACEFS ") and run again\n",
		   why, strerror(err));
	return err == EPERM || err == EACCES ? ST_TRACE_NOPERM : ST_TRACE_SOFTWARE;
}

static int preflight(const struct st_rec *r, bool need_tracefs)
{
	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
		st_rec_say(r, "this kernel has no BTF (/sys/kernel/btf/vmlinux missing):\n"
			      "  CO-RE tracers need CONFIG_DEBUG_INFO_BTF=y\n");
		return ST_TRACE_SOFTWARE;
	}
	int err = need_tracefs ? tracefs_ready(r) : 0;
	return err ? tracefs_failed(r, -err) : 0;
}

static void rec_reset(struct st_rec *r, const char *prog, const char *name)
{
	memset(r, 0, sizeof(*r));
	r->prog = prog;
	r->name = name;
	r->go_fd = -1; /* st_rec_fini() is safe from here on */
	r->pid_fd = -1;
}

int st_rec_open(struct st_rec *r, const char *name, const struct st_trace_target *t,
		bool need_tracefs)
{
	rec_reset(r, t->prog, name);
	r->t = t;
	/* Following a pid or a command attaches the shared fork tracepoint
	 * (st_rec_configure()): tracefs then, whatever the tool needs. */
	int rc = preflight(r, need_tracefs || t->pid || t->cmd);
	if (rc)
		return rc;
	st_rec_libbpf_log(t->verbose);
	return 0;
}

void st_rec_explain(const struct st_rec *r, const char *what, int err)
{
	if (err < 0)
		err = -err;
	st_rec_say(r, "%s failed: %s\n", what, strerror(err));
	if ((err == EPERM || err == EACCES) && geteuid() == 0 && !strstr(what, "perf"))
		fprintf(stderr, "  the kernel rejected a program (verifier): run with -v for its log\n");
	else if (err == EPERM || err == EACCES)
		fprintf(stderr,
			"  BPF tracing needs root, or CAP_BPF + CAP_PERFMON (+ CAP_SYS_RESOURCE on\n"
			"  kernels before 5.11 for locked memory, CAP_DAC_READ_SEARCH for /proc of\n"
			"  other users); see docs/bpf.md.  kernel.unprivileged_bpf_disabled does not\n"
			"  matter with those capabilities.\n");
	else if (err == ENOENT || err == ESRCH)
		fprintf(stderr, "  a tracepoint or kernel type is missing: is tracefs mounted and the kernel built with BTF?\n");
}

/* The per-CPU tables. */
static int rec_alloc(struct st_rec *r)
{
	int n = libbpf_num_possible_cpus();
	if (n <= 0)
		return n ? n : -EINVAL;
	if (n > ST_BPF_MAX_CPUS)
		n = ST_BPF_MAX_CPUS;
	r->ncpu = (unsigned)n;
	r->ring_fds = malloc(r->ncpu * sizeof(int));
	for (unsigned i = 0; r->ring_fds && i < r->ncpu; i++)
		r->ring_fds[i] = -1; /* st_rec_fini() must not close garbage */
	r->cons = calloc(r->ncpu, sizeof(*r->cons));
	r->thr = calloc(r->ncpu, sizeof(*r->thr));
	if (!r->ring_fds || !r->cons || !r->thr)
		return -ENOMEM;
	atomic_init(&r->stop, false);
	return 0;
}

int st_rec_init(struct st_rec *r, const char *prog, const char *name)
{
	rec_reset(r, prog, name);
	return rec_alloc(r);
}

int st_rec_begin(struct st_rec *r, const struct st_options *so)
{
	struct st_options live;
	if (r->sink && r->sink->started && !so->merge_interval_ms) {
		live = *so; /* the caller watches the run: snapshots follow it */
		live.merge_interval_ms = 10;
		so = &live;
	}
	r->e = st_engine_create(so);
	int err = r->e ? rec_alloc(r) : -errno;
	if (err) {
		st_rec_say(r, "cannot set up: %s\n", strerror(-err));
		return ST_TRACE_SOFTWARE;
	}
	char **cmd = r->t->cmd;
	if (cmd && (err = st_rec_spawn(r, cmd))) {
		st_rec_say(r, "cannot start %s: %s\n", cmd[0], strerror(-err));
		return ST_TRACE_SOFTWARE;
	}
	/* ESRCH: gone since the CLI's check; the wait ends at once.  Any
	 * other failure (ENOSYS before Linux 5.3): only -d or a signal ends
	 * the run. */
	if (r->t->pid && (err = st_rec_watch_pid(r, r->t->pid)) && err != -ESRCH)
		st_rec_say(r, "cannot watch process %d for its exit (pidfd_open: %s): "
			      "only -d or a signal ends the run\n", (int)r->t->pid, strerror(-err));
	return 0;
}

/* ------------------------------------------------------------ load */

void st_rec_configure(struct st_rec *r, const struct st_rec_skel *k, size_t ring_bytes)
{
	bool follow = r->t->pid || r->t->cmd;
	r->ring_bytes = ring_bytes;
	*k->self_tgid = (__u32)getpid();
	*k->wakeup_bytes = ring_bytes / 8;
	*k->filter_tgids = follow;
	bpf_program__set_autoload(k->on_fork, follow);
}

int st_rec_open_failed(const struct st_rec *r, int err)
{
	st_rec_explain(r, "opening the BPF object", err);
	return ST_TRACE_SOFTWARE;
}

int st_rec_rings_prepare(struct st_rec *r, struct bpf_map *outer, size_t bytes)
{
	r->ring_bytes = bytes;
	for (unsigned i = 0; i < r->ncpu; i++) {
		r->ring_fds[i] = bpf_map_create(BPF_MAP_TYPE_RINGBUF, NULL, 0, 0, (__u32)bytes, NULL);
		if (r->ring_fds[i] < 0)
			return -errno;
	}
	int err = bpf_map__set_max_entries(outer, r->ncpu);
	if (!err)
		err = bpf_map__set_inner_map_fd(outer, r->ring_fds[0]);
	return err;
}

int st_rec_rings_install(struct st_rec *r, struct bpf_map *outer)
{
	int ofd = bpf_map__fd(outer);
	for (unsigned i = 0; i < r->ncpu; i++) {
		__u32 k = i;
		if (bpf_map_update_elem(ofd, &k, &r->ring_fds[i], BPF_ANY))
			return -errno;
	}
	return 0;
}

/* Follow tgid pid (0: nothing to do). */
static int follow(struct bpf_map *tgids, pid_t pid)
{
	__u32 k = (__u32)pid;
	__u8 one = 1;
	if (!pid)
		return 0;
	return bpf_map_update_elem(bpf_map__fd(tgids), &k, &one, BPF_ANY) ? -errno : 0;
}

int st_rec_load(struct st_rec *r, const struct st_rec_skel *k)
{
	int err;
	if ((err = st_rec_rings_prepare(r, k->rings, r->ring_bytes))) {
		st_rec_explain(r, "creating ring buffers", err);
		return ST_TRACE_NOPERM;
	}
	if ((err = bpf_object__load_skeleton(k->s))) {
		st_rec_explain(r, "loading the BPF programs", err);
		return ST_TRACE_NOPERM;
	}
	if ((err = st_rec_rings_install(r, k->rings)) || (err = follow(k->tgids, r->t->pid)) ||
	    (err = follow(k->tgids, r->child))) {
		st_rec_explain(r, "filling the maps", err);
		return ST_TRACE_SOFTWARE;
	}
	return 0;
}

/* ------------------------------------------------------------ consumers */

static int on_record(void *ctx, void *data, size_t size)
{
	struct st_rec_consumer *c = ctx;
	c->records++;
	if (c->rec->handler(c, data, size))
		c->bad++;
	return 0;
}

static void *consumer_main(void *arg)
{
	struct st_rec_consumer *c = arg;
	struct st_rec *r = c->rec;
	c->w = st_writer_open(r->e);
	if (r->tool_init)
		c->tool = r->tool_init(c);
	while (!atomic_load_explicit(&r->stop, memory_order_acquire)) {
		int n = ring_buffer__poll(c->rb, ST_REC_POLL_MS);
		if (n < 0 && n != -EINTR)
			break;
		/* A timeout: what waits below the wakeup threshold is drained
		 * too, so no record waits longer than one poll period. */
		if (n <= 0)
			ring_buffer__consume(c->rb);
		if (r->tool_tick)
			r->tool_tick(c);
	}
	ring_buffer__consume(c->rb); /* what arrived before the detach */
	if (r->tool_fini)
		r->tool_fini(c);
	st_writer_close(c->w);
	c->w = NULL;
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
		c->cpu_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	return NULL;
}

static int start_consumers(struct st_rec *r, st_rec_handler h)
{
	r->handler = h;
	for (unsigned i = 0; i < r->ncpu; i++) {
		struct st_rec_consumer *c = &r->cons[i];
		c->rec = r;
		c->cpu = i;
		c->rb = ring_buffer__new(r->ring_fds[i], on_record, c, NULL);
		if (!c->rb)
			return -errno;
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int err = 0;
	for (; r->started < r->ncpu; r->started++) {
		err = -pthread_create(&r->thr[r->started], NULL, consumer_main, &r->cons[r->started]);
		if (err)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

/* The sink's stopping(), once, when its started() succeeded. */
static void sink_stopping(struct st_rec *r)
{
	if (r->sink_started)
		r->sink->stopping(r->sink->ctx);
	r->sink_started = false;
}

int st_rec_start(struct st_rec *r, st_rec_handler h)
{
	if (r->sink && r->sink->started) {
		int rc = r->sink->started(r->sink->ctx, r->e);
		if (rc)
			return rc;
		r->sink_started = r->sink->stopping != NULL;
	}
	int err = start_consumers(r, h);
	if (err) {
		st_rec_explain(r, "starting consumer threads", err);
		return ST_TRACE_SOFTWARE;
	}
	return 0;
}

void st_rec_stop(struct st_rec *r)
{
	atomic_store_explicit(&r->stop, true, memory_order_release);
	for (unsigned i = 0; i < r->started; i++)
		pthread_join(r->thr[i], NULL);
	r->started = 0;
}

double st_rec_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ the end */

void st_rec_quiesce(const struct st_rec_skel *k)
{
	/* A program that read st_stopped == false just before the store still
	 * reserves, submits and counts: consistent, and waited for by the
	 * link destruction that follows (see the top of this file). */
	__atomic_store_n(k->stopped, true, __ATOMIC_SEQ_CST);
}

struct detach_job {
	struct bpf_object_skeleton *s;
	atomic_int next;
};

static void *detach_worker(void *arg)
{
	struct detach_job *j = arg;
	for (;;) {
		int i = atomic_fetch_add(&j->next, 1);
		if (i >= j->s->prog_cnt)
			return NULL;
		struct bpf_link **l = j->s->progs[i].link;
		if (l && *l) {
			bpf_link__destroy(*l);
			*l = NULL;
		}
	}
}

void st_rec_detach_parallel(struct bpf_object_skeleton *s)
{
	struct detach_job j = { .s = s };
	pthread_t t[16];
	int n = 0;
	atomic_init(&j.next, 0);
	for (; n < 16 && n < s->prog_cnt; n++)
		if (pthread_create(&t[n], NULL, detach_worker, &j))
			break;
	detach_worker(&j);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

struct st_bpf_cpu_stats st_rec_stats_sum(const struct st_rec *r, const struct st_bpf_cpu_stats *stats)
{
	struct st_bpf_cpu_stats t = { 0 };
	for (unsigned i = 0; i < r->ncpu; i++) {
		t.events += stats[i].events;
		t.rb_drops += stats[i].rb_drops;
		t.stack_fails += stats[i].stack_fails;
		t.unpaired += stats[i].unpaired;
		t.path_fails += stats[i].path_fails;
	}
	return t;
}

/* The consumers' counters, summed. */
static struct st_rec_consumer consumers_sum(const struct st_rec *r)
{
	struct st_rec_consumer s = { 0 };
	for (unsigned i = 0; i < r->ncpu; i++) {
		s.records += r->cons[i].records;
		s.bad += r->cons[i].bad;
		s.failed += r->cons[i].failed;
		s.unresolved += r->cons[i].unresolved;
		s.cpu_ns += r->cons[i].cpu_ns;
	}
	return s;
}

typedef unsigned long long ull;

/* The drop line (always when something was dropped, otherwise with
 * verbose), the unresolved-path and stack lines (always when there were
 * any), the consumers' cost (verbose). */
static void report(const struct st_rec *r, const struct st_bpf_cpu_stats *stats, const char *what)
{
	struct st_bpf_cpu_stats t = st_rec_stats_sum(r, stats);
	struct st_rec_consumer s = consumers_sum(r);
	bool verbose = r->t && r->t->verbose;
	uint64_t dropped = t.rb_drops + s.bad + s.failed;
	if (dropped || verbose)
		st_rec_say(r, "dropped %llu of %llu %s (ring full %llu, undecodable %llu, ingest failed %llu)\n",
			   (ull)dropped, (ull)t.events, what, (ull)t.rb_drops, (ull)s.bad, (ull)s.failed);
	if (s.unresolved)
		st_rec_say(r, "%llu of %llu %s had an unresolved path (counted under "
			      "[unresolved fd N] / [unresolved path])\n",
			   (ull)s.unresolved, (ull)t.events, what);
	if (t.stack_fails)
		st_rec_say(r, "%llu of %llu samples had a failed stack capture (kept, that part empty)\n",
			   (ull)t.stack_fails, (ull)t.events);
	if (r->tool_report)
		r->tool_report(r);
	if (!verbose)
		return;
	if (t.unpaired || t.path_fails)
		st_rec_say(r, "%llu exits without their enter (not events), %llu unreadable filenames\n",
			   (ull)t.unpaired, (ull)t.path_fails);
	st_rec_say(r, "%llu records consumed by %u threads using %.3f s CPU: %.3f us/record\n",
		   (ull)s.records, r->ncpu, (double)s.cpu_ns / 1e9,
		   s.records ? (double)s.cpu_ns / 1e3 / (double)s.records : 0.0);
}

/* Flush the engine and hand its snapshot to the sink. */
static int output(struct st_rec *r, const struct st_trace_sink *sink, unsigned metric)
{
	if (!st_flush(r->e)) {
		st_rec_say(r, "out of memory building the snapshot\n");
		return ST_TRACE_SOFTWARE;
	}
	struct st_snap *s = st_snap_acquire(r->e);
	int rc = sink->write(sink->ctx, s, metric);
	st_snap_release(s);
	return rc;
}

int st_rec_finish(struct st_rec *r, const struct st_rec_skel *k, const char *what,
		  const struct st_trace_sink *sink, unsigned metric)
{
	st_rec_detach_parallel(k->s);
	st_rec_stop(r);
	sink_stopping(r); /* the last sample is in */
	report(r, k->stats, what);
	int rc = output(r, sink, metric);
	return rc ? rc : st_rec_child_rc(r);
}

void st_rec_fini(struct st_rec *r)
{
	if (r->started)
		st_rec_stop(r);
	sink_stopping(r); /* a run that failed after started() */
	st_rec_child_fini(r);
	for (unsigned i = 0; r->cons && i < r->ncpu; i++)
		ring_buffer__free(r->cons[i].rb);
	for (unsigned i = 0; r->ring_fds && i < r->ncpu; i++)
		if (r->ring_fds[i] >= 0)
			close(r->ring_fds[i]);
	free(r->ring_fds);
	free(r->cons);
	free(r->thr);
	st_engine_destroy(r->e); /* after the consumers' writers are closed */
	rec_reset(r, NULL, NULL);
}

const char *st_trace_missing(void)
{
	return NULL; /* built: bpf/stub.c is the other answer */
}
