/* SPDX-License-Identifier: MIT */
/*
 * runner.c - the shared user side of the BPF tracers (see runner.h for the
 * picture).
 *
 * Ordering at the end of a run, so that "dropped N of M" is exact:
 *   1. st_rec_quiesce() sets st_stopped: programs stop emitting/counting
 *      early (detaching takes a while), an optimisation only;
 *   2. the tool destroys every link.  bpf_link__destroy() of a syscall
 *      tracepoint returns after the kernel's unregister synchronisation
 *      (perf_trace_destroy -> tracepoint_synchronize_unregister); of a
 *      perf event, after PERF_EVENT_IOC_DISABLE and the close, which remove
 *      the event on its CPU synchronously.  So no program instance runs
 *      after that: no new records, counters final.  No sleep stands in;
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
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "runner.h"

#define TRACEFS "/sys/kernel/tracing"
/* Poll timeout: the most a record waits when its ring is below the
 * wakeup threshold (st_wakeup_bytes). */
#define ST_REC_POLL_MS 25
#define TRACEFS_MAGIC_ 0x74726163

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
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

int st_rec_preflight(const char *name, bool need_tracefs)
{
	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
		fprintf(stderr,
			"%s %s: this kernel has no BTF (/sys/kernel/btf/vmlinux missing):\n"
			"  CO-RE tracers need CONFIG_DEBUG_INFO_BTF=y\n",
			st_prog, name);
		return EX_SOFTWARE_;
	}
	if (need_tracefs) {
		struct statfs sf;
		if (statfs(TRACEFS, &sf) != 0 || sf.f_type != TRACEFS_MAGIC_) {
			if (mount("nodev", TRACEFS, "tracefs", 0, NULL) != 0 &&
			    access("/sys/kernel/debug/tracing/events", F_OK) != 0) {
				fprintf(stderr,
					"%s %s: tracefs is not mounted and mounting it failed (%s);\n"
					"  run: mount -t tracefs nodev " TRACEFS "\n",
					st_prog, name, strerror(errno));
				return EX_NOPERM_;
			}
		}
	}
	return 0;
}

void st_rec_explain(const char *name, const char *what, int err)
{
	if (err < 0)
		err = -err;
	fprintf(stderr, "%s %s: %s failed: %s\n", st_prog, name, what, strerror(err));
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

int st_rec_init(struct st_rec *r, const char *name, struct st_engine *e)
{
	memset(r, 0, sizeof(*r));
	r->name = name;
	r->e = e;
	r->go_fd = -1;
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

int st_rec_begin(struct st_rec *r, const char *name, const struct st_options *so, char **cmd,
		 struct st_engine **e)
{
	memset(r, 0, sizeof(*r));
	r->go_fd = -1; /* st_rec_fini() is safe from here on */
	*e = st_engine_create(so);
	int err = *e ? st_rec_init(r, name, *e) : -errno;
	if (err) {
		fprintf(stderr, "%s %s: cannot set up: %s\n", st_prog, name, strerror(-err));
		return EX_SOFTWARE_;
	}
	if (cmd && (err = st_rec_spawn(r, cmd))) {
		fprintf(stderr, "%s %s: cannot start %s: %s\n", st_prog, name, cmd[0], strerror(-err));
		return EX_SOFTWARE_;
	}
	return 0;
}

int st_rec_spawn(struct st_rec *r, char **argv)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		close(p[0]);
		close(p[1]);
		return -err;
	}
	if (pid == 0) {
		char c;
		close(p[1]);
		/* Wait until the tracer is attached; EOF means it gave up.  p[0]
		 * is close-on-exec: no close() here, which would be traced (with
		 * an fd the tracer never saw opened). */
		if (read(p[0], &c, 1) != 1)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "%s: cannot run %s: %s\n", st_prog, argv[0], strerror(errno));
		_exit(127);
	}
	close(p[0]);
	r->child = pid;
	r->go_fd = p[1];
	return 0;
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

int st_rec_follow(struct bpf_map *tgids, pid_t pid)
{
	__u32 k = (__u32)pid;
	__u8 one = 1;
	return bpf_map_update_elem(bpf_map__fd(tgids), &k, &one, BPF_ANY) ? -errno : 0;
}

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

int st_rec_start(struct st_rec *r, st_rec_handler h)
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

double st_rec_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile sig_atomic_t got_child;

static void on_child(int sig)
{
	(void)sig;
	got_child = 1;
}

/* Reap the command if it has ended; true when it has. */
static bool reap(struct st_rec *r)
{
	if (r->child_exited)
		return true;
	if (waitpid(r->child, &r->child_status, WNOHANG) == r->child)
		r->child_exited = true;
	return r->child_exited;
}

/*
 * SIGINT, SIGTERM and SIGCHLD stay blocked except inside ppoll(), which
 * unblocks them atomically: a signal that arrives between a check and the
 * wait is delivered by the ppoll() and ends it with EINTR, never lost.  So
 * the loop sleeps until a signal, the command's end or the -d deadline, and
 * polls nothing.
 */
void st_rec_wait(struct st_rec *r, double duration)
{
	struct sigaction sa = { .sa_handler = on_signal }, sc = { .sa_handler = on_child },
			 old_chld;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&sc.sa_mask);
	sc.sa_flags = SA_NOCLDSTOP;
	sigset_t block, waitmask;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGCHLD);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGCHLD, &sc, &old_chld);
	if (r->go_fd >= 0) {
		ssize_t w = write(r->go_fd, "g", 1);
		(void)w;
		close(r->go_fd);
		r->go_fd = -1;
	}
	/* Attached and consuming, with the handlers in place: say so, so that
	 * scripts (and tests) can start their workload without guessing. */
	fprintf(stderr, "%s %s: tracing; SIGINT/SIGTERM end the run\n", st_prog, r->name);
	fflush(stderr);
	double end = duration > 0 ? st_rec_now() + duration : 0;
	while (!got_signal && !(r->child && reap(r))) {
		struct timespec ts, *tp = NULL;
		if (end) {
			double left = end - st_rec_now();
			if (left <= 0)
				break;
			ts.tv_sec = (time_t)left;
			ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
			tp = &ts;
		}
		got_child = 0;
		ppoll(NULL, 0, tp, &waitmask);
	}
	if (r->child && !r->child_exited) {
		/* Ended by -d or a signal: end the command too. */
		r->child_ended = true;
		kill(r->child, SIGTERM);
		if (waitpid(r->child, &r->child_status, 0) == r->child)
			r->child_exited = true;
	}
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigaction(SIGCHLD, &old_chld, NULL);
	sigprocmask(SIG_UNBLOCK, &block, NULL);
}

int st_rec_child_rc(const struct st_rec *r)
{
	if (!r->child || !r->child_exited || r->child_ended)
		return 0;
	if (WIFEXITED(r->child_status)) {
		int st = WEXITSTATUS(r->child_status);
		if (st)
			fprintf(stderr, "%s %s: the command exited with status %d\n", st_prog, r->name, st);
		return st;
	}
	if (WIFSIGNALED(r->child_status)) {
		int sig = WTERMSIG(r->child_status);
		fprintf(stderr, "%s %s: the command was killed by signal %d (%s)\n", st_prog, r->name, sig,
			strsignal(sig));
		return 128 + sig;
	}
	return 0;
}

void st_rec_quiesce(bool *stopped)
{
	/* A program that read st_stopped == false just before the store still
	 * reserves, submits and counts: consistent, and waited for by the
	 * link destruction that follows (see the top of this file). */
	__atomic_store_n(stopped, true, __ATOMIC_SEQ_CST);
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

void st_rec_stop(struct st_rec *r)
{
	atomic_store_explicit(&r->stop, true, memory_order_release);
	for (unsigned i = 0; i < r->started; i++)
		pthread_join(r->thr[i], NULL);
	r->started = 0;
}

uint64_t st_rec_report(struct st_rec *r, const struct st_bpf_cpu_stats *stats, bool verbose,
		       const char *what)
{
	struct st_bpf_cpu_stats t = { 0 };
	uint64_t records = 0, bad = 0, failed = 0, cpu_ns = 0, unresolved = 0;
	for (unsigned i = 0; i < r->ncpu; i++) {
		t.events += stats[i].events;
		t.rb_drops += stats[i].rb_drops;
		t.stack_fails += stats[i].stack_fails;
		t.unpaired += stats[i].unpaired;
		t.path_fails += stats[i].path_fails;
		records += r->cons[i].records;
		bad += r->cons[i].bad;
		failed += r->cons[i].failed;
		unresolved += r->cons[i].unresolved;
		cpu_ns += r->cons[i].cpu_ns;
	}
	uint64_t dropped = t.rb_drops + bad + failed;
	if (dropped || verbose)
		fprintf(stderr, "%s %s: dropped %llu of %llu %s (ring full %llu, undecodable %llu, ingest failed %llu)\n",
			st_prog, r->name, (unsigned long long)dropped, (unsigned long long)t.events, what,
			(unsigned long long)t.rb_drops, (unsigned long long)bad,
			(unsigned long long)failed);
	if (unresolved)
		fprintf(stderr, "%s %s: %llu of %llu %s had an unresolved path (counted under "
				"[unresolved fd N] / [unresolved path])\n",
			st_prog, r->name, (unsigned long long)unresolved, (unsigned long long)t.events, what);
	if (t.stack_fails)
		fprintf(stderr, "%s %s: %llu of %llu samples had a failed stack capture (kept, that part empty)\n",
			st_prog, r->name, (unsigned long long)t.stack_fails, (unsigned long long)t.events);
	if (verbose) {
		if (t.unpaired || t.path_fails)
			fprintf(stderr, "%s %s: %llu exits without their enter (not events), %llu unreadable filenames\n",
				st_prog, r->name, (unsigned long long)t.unpaired, (unsigned long long)t.path_fails);
		fprintf(stderr, "%s %s: %llu records consumed by %u threads using %.3f s CPU: %.3f us/record\n",
			st_prog, r->name, (unsigned long long)records, r->ncpu, (double)cpu_ns / 1e9,
			records ? (double)cpu_ns / 1e3 / (double)records : 0.0);
	}
	return dropped;
}

void st_rec_fini(struct st_rec *r)
{
	if (r->started)
		st_rec_stop(r);
	if (r->go_fd >= 0)
		close(r->go_fd); /* the child reads EOF and exits without exec */
	if (r->child && !r->child_exited)
		waitpid(r->child, &r->child_status, 0);
	for (unsigned i = 0; r->cons && i < r->ncpu; i++)
		ring_buffer__free(r->cons[i].rb);
	for (unsigned i = 0; r->ring_fds && i < r->ncpu; i++)
		if (r->ring_fds[i] >= 0)
			close(r->ring_fds[i]);
	free(r->ring_fds);
	free(r->cons);
	free(r->thr);
	memset(r, 0, sizeof(*r));
	r->go_fd = -1;
}

int st_rec_output(struct st_rec *r, const struct st_rec_opts *o, unsigned metric)
{
	if (!st_flush(r->e)) {
		fprintf(stderr, "%s %s: out of memory building the snapshot\n", st_prog, r->name);
		return EX_SOFTWARE_;
	}
	struct st_snap *s = st_snap_acquire(r->e);
	struct st_export_opts eo;
	st_export_opts_init(&eo);
	eo.metric = metric;
	int rc = st_cli_export(s, o->fmt, &eo, o->out);
	st_snap_release(s);
	return rc;
}

double st_rec_parse_seconds(const char *s)
{
	char *end;
	double d = strtod(s, &end);
	if (end == s || *end || !(d > 0) || d > 1e7)
		return -1;
	return d;
}
