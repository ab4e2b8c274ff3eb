/* SPDX-License-Identifier: MIT */
/*
 * iotrace.c - `shardtrie record io`: file I/O syscalls paired in
 * iotrace.bpf.c, one record per pair through the per-CPU rings; each
 * consumer thread builds the ior frames (--fields) and ingests the four
 * counters (count, duration_ns, duration_to_prev_ns, bytes) into its writer;
 * --metric picks the one exported.
 *
 * Paths: the call's filename, or the (pid, fd) table in BPF (filled by opens
 * and dups seen during the run, and before it starts from /proc/PID/fd of
 * the command or -p process).  An fd the table misses (opened before the
 * run by a process not seeded, or made by a call not traced: socket, pipe,
 * ...): the consumer reads /proc/PID/fd/N once, keeps it in a small per-
 * thread cache and writes it back into the BPF table so every CPU sees it.
 * When that fails too (the process has exited), the event is still counted,
 * under "[unresolved fd N]", and the end-of-run summary says how many.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common/decode.h"
#include "common/runner.h"
#include "iotrace.skel.h"

#define RING_BYTES ST_BPF_RING_BYTES
#define FD_CACHE 512
#define FD_UNKNOWN UINT32_MAX

struct fd_entry {
	uint32_t pid;
	int32_t fd;
	uint32_t len; /* 0 = empty slot, FD_UNKNOWN = /proc had nothing */
	char path[IO_PATH_MAX];
};

struct io_tool {
	struct fd_entry cache[FD_CACHE];
	struct st_io_frames fr;
};

/* Read-only while the consumers run. */
static unsigned char io_fields[ST_IOF_COUNT_];
static unsigned io_nfields;
static int io_fds_map = -1;

static void *io_tool_init(struct st_rec_consumer *c)
{
	(void)c;
	return calloc(1, sizeof(struct io_tool));
}

static void io_tool_fini(struct st_rec_consumer *c)
{
	free(c->tool);
}

static struct fd_entry *fd_slot(struct io_tool *t, uint32_t pid, int32_t fd)
{
	return &t->cache[(pid * 2654435761u ^ (uint32_t)fd) % FD_CACHE];
}

/* The path of (pid, fd) from /proc, cached and written back to BPF. */
static const struct fd_entry *fd_resolve(struct io_tool *t, uint32_t pid, int32_t fd)
{
	struct fd_entry *e = fd_slot(t, pid, fd);
	if (e->len && e->pid == pid && e->fd == fd)
		return e->len == FD_UNKNOWN ? NULL : e;
	char fn[64];
	snprintf(fn, sizeof(fn), "/proc/%u/fd/%d", pid, fd);
	ssize_t n = readlink(fn, e->path, sizeof(e->path) - 1);
	e->pid = pid;
	e->fd = fd;
	if (n <= 0) {
		e->len = FD_UNKNOWN; /* until this fd is closed */
		return NULL;
	}
	e->len = (uint32_t)n;
	e->path[n] = 0;
	if (io_fds_map >= 0) {
		struct st_io_path v = { .len = (__u32)n };
		memcpy(v.path, e->path, (size_t)n);
		__u64 key = ((__u64)pid << 32) | (__u32)fd;
		bpf_map_update_elem(io_fds_map, &key, &v, BPF_NOEXIST);
	}
	return e;
}

static int on_io(struct st_rec_consumer *c, const void *data, size_t size)
{
	struct io_tool *t = c->tool;
	struct st_io_rec r;
	if (st_io_decode(data, size, &r))
		return -1;
	if (!t || !c->w) {
		c->failed++;
		return 0;
	}
	const char *path = r.path;
	size_t plen = r.path_len;
	if (!path && r.h.fd >= 0) {
		const struct fd_entry *e = fd_resolve(t, r.h.pid, r.h.fd);
		if (e) {
			path = e->path;
			plen = e->len;
		}
	} else if (!path && st_io_op_is_open(r.h.op) && r.h.ret >= 0) {
		/* The filename was not readable at enter: the new fd tells. */
		const struct fd_entry *e = fd_resolve(t, r.h.pid, (int32_t)r.h.ret);
		if (e) {
			path = e->path;
			plen = e->len;
		}
	}
	if (r.h.op == IO_OP_CLOSE && r.h.fd >= 0) {
		struct fd_entry *e = fd_slot(t, r.h.pid, r.h.fd);
		if (e->pid == r.h.pid && e->fd == r.h.fd)
			e->len = 0;
	}
	if (!path || !plen)
		c->unresolved++;
	st_io_frames_build(&r, io_fields, io_nfields, path, plen, &t->fr);
	uint64_t v[ST_IOM_N];
	st_io_values(&r, v);
	if (st_writer_ingest_strs(c->w, t->fr.p, t->fr.len, t->fr.n, v))
		c->failed++;
	return 0;
}

/*
 * Put the fds `pid` has now into the BPF table, so calls on fds opened before
 * the run (stdin/stdout/stderr of the command, a -p process's files) have
 * their path in the record itself, whenever the consumer reads it.
 * skip_cloexec: the command is stopped before exec; its close-on-exec fds
 * (the go pipe) will be gone by the time it runs.
 */
static void seed_fds(pid_t pid, bool skip_cloexec)
{
	char dn[64];
	snprintf(dn, sizeof(dn), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dn);
	if (!d)
		return; /* resolved later from /proc, or counted as unresolved */
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);
		if (*end || end == de->d_name || fd < 0 || fd > INT32_MAX)
			continue;
		char fn[96];
		if (skip_cloexec) {
			snprintf(fn, sizeof(fn), "/proc/%d/fdinfo/%ld", (int)pid, fd);
			FILE *f = fopen(fn, "r");
			char line[128];
			unsigned long fl = 0;
			bool cloexec = false;
			while (f && fgets(line, sizeof(line), f))
				if (sscanf(line, "flags: %lo", &fl) == 1)
					cloexec = (fl & O_CLOEXEC) != 0;
			if (f)
				fclose(f);
			if (cloexec)
				continue;
		}
		struct st_io_path v = { 0 };
		snprintf(fn, sizeof(fn), "/proc/%d/fd/%ld", (int)pid, fd);
		ssize_t n = readlink(fn, v.path, sizeof(v.path) - 1);
		if (n <= 0)
			continue;
		v.len = (__u32)n;
		__u64 key = ((__u64)(__u32)pid << 32) | (__u32)fd;
		bpf_map_update_elem(io_fds_map, &key, &v, BPF_NOEXIST);
	}
	closedir(d);
}

/* Tracepoints this kernel lacks are not loaded (older kernels: openat2...). */
static void autoload_present(struct iotrace_bpf *skel)
{
	struct bpf_program *p;
	bpf_object__for_each_program(p, skel->obj) {
		const char *sec = bpf_program__section_name(p);
		const char *tp = strncmp(sec, "tracepoint/", 11) == 0 ? sec + 11 : NULL;
		if (!tp)
			continue;
		char fn[256];
		snprintf(fn, sizeof(fn), "/sys/kernel/tracing/events/%s", tp);
		if (access(fn, F_OK) != 0) {
			snprintf(fn, sizeof(fn), "/sys/kernel/debug/tracing/events/%s", tp);
			if (access(fn, F_OK) != 0)
				bpf_program__set_autoload(p, false);
		}
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shardtrie record io [-p PID] [--comm NAME] [--fields LIST]\n"
		"                           [--metric count|duration|duration_to_prev|bytes]\n"
		"                           [-d SECONDS] [-t FORMAT] [-o FILE] [-v] [-- COMMAND...]\n"
		"       shardtrie record io --flood RATE [-d SECONDS] [-v] [-o FILE]\n"
		"Traces file I/O syscalls (open*, creat, read/write & co, close, fsync,\n"
		"fdatasync, lseek, *stat*, rename*, unlink*, mkdir*, getdents64), pairs\n"
		"enter and exit per thread in BPF and writes a flamegraph whose frames are\n"
		"LIST (default comm,tracepoint,path; also pid, tid, flags; a path is one\n"
		"frame per '/' component).  All four counters are kept; --metric picks\n"
		"the one written (default count).  Without -p/COMMAND: every process\n"
		"but this tool.  -d, SIGINT and SIGTERM end the run; output is written.\n"
		"The exit code is COMMAND's (128 + N if signal N killed it).\n"
		"dup, dup2, dup3 and fcntl(F_DUPFD) are followed for fd paths (not\n"
		"recorded); a path that cannot be found is counted under\n"
		"[unresolved fd N] / [unresolved path] and reported at the end.\n"
		"--flood RATE traces nothing: it drives the pairing programs, rings and\n"
		"consumers with RATE synthetic calls/s (BPF_PROG_TEST_RUN, one feeder per\n"
		"CPU) for -d seconds (default 5), to measure what the path carries.\n");
}

/* ------------------------------------------------------------- --flood */

/*
 * `--flood RATE`: instead of attaching the tracepoints, one feeder thread
 * per CPU this process may run on, pinned there, runs the raw_tp "io_flood" program through
 * BPF_PROG_TEST_RUN every millisecond for the pairs it owes at RATE / CPUs
 * per second.  Each run pairs that many synthetic read/write calls with the
 * tracepoints' own io_enter()/io_exit() and submits the records to that
 * CPU's ring, where the usual consumer takes them: the whole path except the
 * tracepoint itself, at a rate this machine's syscalls cannot produce.  The
 * clock paces the offered load; it synchronises nothing (the feeders are
 * joined before the drain, so every record is in its ring by then).
 */
struct flood {
	pthread_t thr;
	unsigned cpu;
	int prog_fd, fd;
	double rate; /* pairs per second for this feeder */
	atomic_bool *stop;
	uint64_t offered, runs;
	int err;
};

static void *flood_main(void *arg)
{
	struct flood *f = arg;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(f->cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set)) {
		f->err = -EINVAL;
		return NULL;
	}
	pthread_setname_np(pthread_self(), "st-flood");
	struct st_io_flood_ctx in = { .tgid = (__u64)getpid(), .tid0 = 0x40000000u + f->cpu * 64u,
				      .ntids = 16, .fd = (__u64)f->fd };
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	double due = 0;
	while (!atomic_load_explicit(f->stop, memory_order_acquire)) {
		due += f->rate / 1000.0;
		uint64_t n = (uint64_t)due - f->offered;
		if (n) {
			in.n = n;
			LIBBPF_OPTS(bpf_test_run_opts, t, .ctx_in = &in, .ctx_size_in = sizeof(in));
			if (bpf_prog_test_run_opts(f->prog_fd, &t)) {
				f->err = -errno;
				break;
			}
			f->offered += n;
			f->runs++;
		}
		next.tv_nsec += 1000000;
		if (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	return NULL;
}

/* Start a feeder on each of cpus[0..n). */
static unsigned flood_start(struct flood *fl, const unsigned *cpus, unsigned n, int prog_fd, int fd,
			    double rate, atomic_bool *stop)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	unsigned i = 0;
	for (; i < n; i++) {
		fl[i] = (struct flood){ .cpu = cpus[i], .prog_fd = prog_fd, .fd = fd, .rate = rate / n,
					.stop = stop };
		if (pthread_create(&fl[i].thr, NULL, flood_main, &fl[i]))
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return i;
}

/* Stop and join the feeders; print what they offered.  0 or -errno. */
static int flood_end(struct flood *fl, unsigned n, atomic_bool *stop, double secs, double rate)
{
	atomic_store_explicit(stop, true, memory_order_release);
	uint64_t offered = 0, runs = 0;
	int err = 0;
	for (unsigned i = 0; i < n; i++) {
		pthread_join(fl[i].thr, NULL);
		offered += fl[i].offered;
		runs += fl[i].runs;
		if (fl[i].err && !err)
			err = fl[i].err;
	}
	fprintf(stderr,
		"%s record io: flood: %llu paired calls offered in %.3f s by %u feeders (%.0f/s, target %.0f/s, %llu program runs)\n",
		st_prog, (unsigned long long)offered, secs, n, secs > 0 ? (double)offered / secs : 0.0, rate,
		(unsigned long long)runs);
	return err;
}

static int selftest(void);

int st_record_io(int argc, char **argv);
int st_record_io(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "pid", required_argument, 0, 'p' },
		{ "comm", required_argument, 0, 'c' },
		{ "fields", required_argument, 0, 'f' },
		{ "metric", required_argument, 0, 'm' },
		{ "duration", required_argument, 0, 'd' },
		{ "to", required_argument, 0, 't' },
		{ "output", required_argument, 0, 'o' },
		{ "verbose", no_argument, 0, 'v' },
		{ "selftest", no_argument, 0, 'S' },
		{ "flood", required_argument, 0, 'L' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct st_rec_opts o = { .fmt = ST_FMT_FOLDED };
	const char *fields = ST_IO_DEFAULT_FIELDS, *comm = NULL;
	int metric = ST_IOM_COUNT;
	double flood_rate = 0;
	char msg[256];
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+p:d:t:o:vh", lo, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'p': {
			long p = strtol(optarg, &end, 10);
			if (*end || p < 1 || p > 0x3fffffff) {
				fprintf(stderr, "%s record io: -p wants a process id, got '%s'\n", st_prog, optarg);
				return EX_USAGE_;
			}
			o.pid = (pid_t)p;
			break;
		}
		case 'c':
			comm = optarg;
			if (!*comm || strlen(comm) >= IO_COMM_LEN) {
				fprintf(stderr, "%s record io: --comm wants 1..15 characters (the kernel's comm), got '%s'\n",
					st_prog, optarg);
				return EX_USAGE_;
			}
			break;
		case 'f': fields = optarg; break;
		case 'm':
			metric = st_io_metric_from_name(optarg);
			if (metric < 0) {
				fprintf(stderr, "%s record io: unknown --metric '%s' (known: count, duration, duration_to_prev, bytes)\n",
					st_prog, optarg);
				return EX_USAGE_;
			}
			break;
		case 'd':
			o.duration = st_rec_parse_seconds(optarg);
			if (o.duration < 0) {
				fprintf(stderr, "%s record io: -d wants a positive number of seconds, got '%s'\n",
					st_prog, optarg);
				return EX_USAGE_;
			}
			break;
		case 't':
			o.fmt = st_cli_format(optarg);
			if (o.fmt < 0)
				return EX_USAGE_;
			break;
		case 'o': o.out = optarg; break;
		case 'v': o.verbose = true; break;
		case 'S': return selftest();
		case 'L': {
			flood_rate = strtod(optarg, &end);
			if (*end || end == optarg || !(flood_rate >= 1 && flood_rate <= 1e9)) {
				fprintf(stderr, "%s record io: --flood wants calls per second (1..1e9), got '%s'\n",
					st_prog, optarg);
				return EX_USAGE_;
			}
			break;
		}
		case 'h': usage(stdout); return EX_OK_;
		default: usage(stderr); return EX_USAGE_;
		}
	}
	if (st_io_fields_parse(fields, io_fields, &io_nfields, msg, sizeof(msg))) {
		fprintf(stderr, "%s record io: --fields: %s\n", st_prog, msg);
		return EX_USAGE_;
	}
	if (optind < argc)
		o.cmd = argv + optind;
	if (o.pid && o.cmd) {
		fprintf(stderr, "%s record io: -p and COMMAND exclude each other\n", st_prog);
		return EX_USAGE_;
	}
	if (flood_rate && (o.pid || o.cmd || comm)) {
		fprintf(stderr, "%s record io: --flood traces nothing real: no -p, --comm or COMMAND\n", st_prog);
		return EX_USAGE_;
	}
	if (flood_rate && !o.duration)
		o.duration = 5;
	if (o.pid && kill(o.pid, 0) != 0 && errno == ESRCH) {
		fprintf(stderr, "%s record io: no process %d\n", st_prog, (int)o.pid);
		return EX_NOINPUT_;
	}
	int rc = st_rec_preflight("record io", true);
	if (rc)
		return rc;
	st_rec_libbpf_log(o.verbose);

	struct st_rec rec;
	struct iotrace_bpf *skel = NULL;
	struct st_engine *e = NULL;
	struct flood *flood = NULL;
	int err;
	struct st_options so;
	st_options_init(&so);
	so.merge_interval_ms = 0;
	so.nmetrics = ST_IOM_N;
	for (int i = 0; i < ST_IOM_N; i++) {
		so.metrics[i].name = st_io_metric_names[i];
		so.metrics[i].unit = st_io_metric_units[i];
	}
	if ((rc = st_rec_begin(&rec, "record io", &so, o.cmd, &e)))
		goto cleanup;
	rec.tool_init = io_tool_init;
	rec.tool_fini = io_tool_fini;
	skel = iotrace_bpf__open();
	if (!skel) {
		st_rec_explain("record io", "opening the BPF object", errno);
		rc = EX_SOFTWARE_;
		goto cleanup;
	}
	skel->rodata->st_self_tgid = (__u32)getpid();
	skel->rodata->st_wakeup_bytes = RING_BYTES / 8;
	skel->rodata->st_filter_tgids = o.pid || o.cmd;
	if (comm) {
		skel->rodata->filter_comm = true;
		strncpy((char *)skel->rodata->targ_comm, comm, IO_COMM_LEN - 1);
	}
	bpf_program__set_autoload(skel->progs.st_on_fork, o.pid || o.cmd);
	bpf_program__set_autoload(skel->progs.io_test, false);
	autoload_present(skel);
	if (flood_rate) { /* io_flood alone: no tracepoint is attached */
		struct bpf_program *p;
		bpf_object__for_each_program(p, skel->obj)
			bpf_program__set_autoload(p, p == skel->progs.io_flood);
	} else {
		bpf_program__set_autoload(skel->progs.io_flood, false);
	}
	if ((err = st_rec_rings_prepare(&rec, skel->maps.st_rings, RING_BYTES))) {
		st_rec_explain("record io", "creating ring buffers", err);
		rc = EX_NOPERM_;
		goto cleanup;
	}
	if ((err = iotrace_bpf__load(skel))) {
		st_rec_explain("record io", "loading the BPF programs", err);
		rc = EX_NOPERM_;
		goto cleanup;
	}
	io_fds_map = bpf_map__fd(skel->maps.fds);
	if ((err = st_rec_rings_install(&rec, skel->maps.st_rings)) ||
	    (o.pid && (err = st_rec_follow(skel->maps.st_tgids, o.pid))) ||
	    (rec.child && (err = st_rec_follow(skel->maps.st_tgids, rec.child)))) {
		st_rec_explain("record io", "filling the maps", err);
		rc = EX_SOFTWARE_;
		goto cleanup;
	}
	if (o.pid)
		seed_fds(o.pid, false);
	if (rec.child)
		seed_fds(rec.child, true);
	if ((err = st_rec_start(&rec, on_io))) {
		st_rec_explain("record io", "starting consumer threads", err);
		rc = EX_SOFTWARE_;
		goto cleanup;
	}
	if (!flood_rate && (err = iotrace_bpf__attach(skel))) {
		st_rec_explain("record io", "attaching the syscall tracepoints", err);
		rc = EX_NOPERM_;
		goto cleanup;
	}
	if (flood_rate) {
		/* A feeder on every CPU this process may run on that has a ring. */
		cpu_set_t allowed;
		unsigned nf = 0, *cpus = calloc(rec.ncpu, sizeof(*cpus));
		if (cpus && sched_getaffinity(0, sizeof(allowed), &allowed) == 0)
			for (unsigned i = 0; i < rec.ncpu && i < CPU_SETSIZE; i++)
				if (CPU_ISSET(i, &allowed))
					cpus[nf++] = i;
		atomic_bool fstop;
		atomic_init(&fstop, false);
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (!nf || fd < 0 || !(flood = calloc(nf, sizeof(*flood)))) {
			free(cpus);
			fprintf(stderr, "%s record io: --flood: %s\n", st_prog, strerror(errno));
			if (fd >= 0)
				close(fd);
			rc = EX_SOFTWARE_;
			goto cleanup;
		}
		seed_fds(getpid(), false); /* the fd's path, as a traced open leaves it */
		double t0 = st_rec_now();
		unsigned started = flood_start(flood, cpus, nf, bpf_program__fd(skel->progs.io_flood), fd,
					       flood_rate, &fstop);
		free(cpus);
		if (started == nf)
			st_rec_wait(&rec, o.duration);
		err = flood_end(flood, started, &fstop, st_rec_now() - t0, flood_rate);
		close(fd);
		if (started < nf || err) {
			fprintf(stderr, "%s record io: --flood: %s\n", st_prog,
				started < nf ? "cannot start the feeder threads" : strerror(-err));
			rc = EX_SOFTWARE_;
			goto cleanup;
		}
	} else {
		st_rec_wait(&rec, o.duration);
	}
	/* End of the stream (runner.c): stop emitting, detach every program
	 * (returns once no instance can still run), then drain. */
	st_rec_quiesce(&skel->bss->st_stopped);
	st_rec_detach_parallel(skel->skeleton);
	st_rec_stop(&rec);
	st_rec_report(&rec, skel->bss->st_stats, o.verbose, "events");
	rc = st_rec_output(&rec, &o, (unsigned)metric);
	if (!rc)
		rc = st_rec_child_rc(&rec);

cleanup:
	st_rec_fini(&rec);
	free(flood);
	io_fds_map = -1;
	if (skel)
		st_rec_detach_parallel(skel->skeleton);
	iotrace_bpf__destroy(skel);
	st_engine_destroy(e);
	return rc;
}

/* ---------------------------------------------------------------- selftest */

struct st_events {
	struct st_io_event ev[16];
	char path[16][IO_PATH_MAX];
	unsigned n, bad;
};

static int collect(void *ctx, void *data, size_t size)
{
	struct st_events *s = ctx;
	struct st_io_rec r;
	if (st_io_decode(data, size, &r) || s->n == 16) {
		s->bad++;
		return 0;
	}
	s->ev[s->n] = r.h;
	if (r.path)
		memcpy(s->path[s->n], r.path, r.path_len);
	s->n++;
	return 0;
}

static int test_call(struct iotrace_bpf *skel, int exit, unsigned tgid, unsigned tid, unsigned op,
		     unsigned long long now, long long v)
{
	struct st_io_test_ctx in = { (__u64)exit, tgid, tid, op, now, (__u64)v };
	LIBBPF_OPTS(bpf_test_run_opts, topts, .ctx_in = &in, .ctx_size_in = sizeof(in));
	int err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.io_test), &topts);
	return err ? -errno : (int)topts.retval;
}

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		checks++;                                                                          \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "io-selftest: FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, "\n");                                                     \
			failed++;                                                                  \
		}                                                                                  \
	} while (0)

/*
 * BPF_PROG_TEST_RUN of the pairing code (raw_tp "io_test" calls the same
 * io_enter()/io_exit() as the tracepoints, with synthetic ids and times).
 */
static int selftest(void)
{
	struct st_rec rec;
	struct iotrace_bpf *skel = NULL;
	struct ring_buffer *rb = NULL;
	struct st_events got = { 0 };
	int rc = EX_SOFTWARE_, err, checks = 0, failed = 0;
	st_rec_libbpf_log(false);
	if (st_rec_init(&rec, "record io", NULL))
		return EX_SOFTWARE_;
	skel = iotrace_bpf__open();
	if (!skel) {
		st_rec_explain("record io", "opening the BPF object", errno);
		goto cleanup;
	}
	struct bpf_program *p;
	bpf_object__for_each_program(p, skel->obj)
		bpf_program__set_autoload(p, p == skel->progs.io_test);
	if ((err = st_rec_rings_prepare(&rec, skel->maps.st_rings, 1 << 16)) ||
	    (err = iotrace_bpf__load(skel)) ||
	    (err = st_rec_rings_install(&rec, skel->maps.st_rings))) {
		st_rec_explain("record io", "loading the BPF test program", err);
		rc = EX_NOPERM_;
		goto cleanup;
	}
	for (unsigned i = 0; i < rec.ncpu; i++) {
		if (!rb)
			rb = ring_buffer__new(rec.ring_fds[i], collect, &got, NULL);
		else
			ring_buffer__add(rb, rec.ring_fds[i], collect, &got);
	}
	if (!rb)
		goto cleanup;
	const unsigned TG = 50, T1 = 100, T2 = 200;
	/* A path for (TG, fd 5), as an earlier open would have left it. */
	struct st_io_path pv = { .len = 6 };
	memcpy(pv.path, "/tmp/x", 6);
	__u64 key = ((__u64)TG << 32) | 5u;
	bpf_map_update_elem(bpf_map__fd(skel->maps.fds), &key, &pv, BPF_ANY);

	/* 1: enter+exit pair: duration, ret, fd path; no previous exit. */
	test_call(skel, 0, TG, T1, IO_OP_READ, 1000, 5);
	test_call(skel, 1, TG, T1, IO_OP_READ, 1500, 42);
	/* 2: next call of the thread: gap since the previous exit. */
	test_call(skel, 0, TG, T1, IO_OP_WRITE, 2000, 7);
	test_call(skel, 1, TG, T1, IO_OP_WRITE, 2100, 3);
	/* 3: exit without enter (another thread): unpaired, no record. */
	test_call(skel, 1, TG, T2, IO_OP_READ, 2200, 1);
	/* 4: enter read, exit write: mismatch, unpaired; the read then pairs. */
	test_call(skel, 0, TG, T1, IO_OP_READ, 3000, 9);
	test_call(skel, 1, TG, T1, IO_OP_WRITE, 3100, 1);
	test_call(skel, 1, TG, T1, IO_OP_READ, 3300, 0);
	/* 5: a second exit of the same call: unpaired. */
	test_call(skel, 1, TG, T1, IO_OP_READ, 3400, 0);
	/* 6: close of fd 5 removes it from the (pid, fd) table. */
	test_call(skel, 0, TG, T1, IO_OP_CLOSE, 4000, 5);
	test_call(skel, 1, TG, T1, IO_OP_CLOSE, 4010, 0);
	/* 7: negative return: no bytes (checked on the user side). */
	test_call(skel, 0, TG, T2, IO_OP_READ, 5000, 5);
	test_call(skel, 1, TG, T2, IO_OP_READ, 5001, -9);
	ring_buffer__consume(rb);

	CHECK(got.bad == 0, "%u undecodable records", got.bad);
	CHECK(got.n == 5, "%u records, want 5", got.n);
	if (got.n == 5) {
		struct st_io_event *e = got.ev;
		CHECK(e[0].op == IO_OP_READ && e[0].dur_ns == 500 && e[0].gap_ns == 0 && e[0].ret == 42 &&
			      e[0].pid == TG && e[0].tid == T1 && e[0].fd == 5,
		      "pair 1: op %u dur %llu gap %llu ret %lld", e[0].op, (unsigned long long)e[0].dur_ns,
		      (unsigned long long)e[0].gap_ns, (long long)e[0].ret);
		CHECK(e[0].path_len == 6 && !memcmp(got.path[0], "/tmp/x", 6) && (e[0].eflags & IO_EF_PATH_FD),
		      "pair 1 path '%.*s' eflags %u", (int)e[0].path_len, got.path[0], e[0].eflags);
		CHECK(e[1].op == IO_OP_WRITE && e[1].dur_ns == 100 && e[1].gap_ns == 500 && e[1].ret == 3,
		      "pair 2: dur %llu gap %llu", (unsigned long long)e[1].dur_ns, (unsigned long long)e[1].gap_ns);
		CHECK(e[2].op == IO_OP_READ && e[2].dur_ns == 300 && e[2].gap_ns == 900,
		      "pair 4: dur %llu gap %llu", (unsigned long long)e[2].dur_ns, (unsigned long long)e[2].gap_ns);
		CHECK(e[3].op == IO_OP_CLOSE && e[3].dur_ns == 10 && e[3].path_len == 6,
		      "close: op %u dur %llu path_len %u", e[3].op, (unsigned long long)e[3].dur_ns, e[3].path_len);
		struct st_io_rec rr = { .h = e[4] };
		uint64_t v[ST_IOM_N];
		st_io_values(&rr, v);
		CHECK(e[4].tid == T2 && e[4].ret == -9 && e[4].gap_ns == 0 && v[ST_IOM_BYTES] == 0 &&
			      e[4].path_len == 0 && e[4].fd == 5,
		      "pair 7: tid %u ret %lld gap %llu bytes %llu path_len %u", e[4].tid, (long long)e[4].ret,
		      (unsigned long long)e[4].gap_ns, (unsigned long long)v[ST_IOM_BYTES], e[4].path_len);
	}
	struct st_io_path tmp;
	CHECK(bpf_map_lookup_elem(bpf_map__fd(skel->maps.fds), &key, &tmp) != 0 && errno == ENOENT,
	      "(pid, fd 5) still in the table after close");
	__u64 unpaired = 0, events = 0;
	for (unsigned i = 0; i < rec.ncpu; i++) {
		unpaired += skel->bss->st_stats[i].unpaired;
		events += skel->bss->st_stats[i].events;
	}
	CHECK(unpaired == 3 && events == 5, "unpaired %llu (want 3), events %llu (want 5)",
	      (unsigned long long)unpaired, (unsigned long long)events);

	/* dup bookkeeping (no records, no events): dup2(7, 0) copies (TG, 7)'s
	 * path to fd 0; a read on fd 0 then carries it, and its gap ignores the
	 * dup; a dup of an unknown fd onto 0 removes fd 0's stale path; a failed
	 * dup changes nothing. */
	memset(&got, 0, sizeof(got));
	struct st_io_path py = { .len = 6 };
	memcpy(py.path, "/tmp/y", 6);
	__u64 k7 = ((__u64)TG << 32) | 7u, k0 = ((__u64)TG << 32) | 0u, k8 = ((__u64)TG << 32) | 8u;
	bpf_map_update_elem(bpf_map__fd(skel->maps.fds), &k7, &py, BPF_ANY);
	test_call(skel, 0, TG, T1, IO_OP_DUPFD_, 6000, 7);
	test_call(skel, 1, TG, T1, IO_OP_DUPFD_, 6010, 0);
	CHECK(bpf_map_lookup_elem(bpf_map__fd(skel->maps.fds), &k0, &tmp) == 0 && tmp.len == 6 &&
		      !memcmp(tmp.path, "/tmp/y", 6),
	      "dup2(7, 0) did not copy the path");
	test_call(skel, 0, TG, T1, IO_OP_READ, 7000, 0);
	test_call(skel, 1, TG, T1, IO_OP_READ, 7050, 1);
	test_call(skel, 0, TG, T1, IO_OP_DUPFD_, 8000, 7);
	test_call(skel, 1, TG, T1, IO_OP_DUPFD_, 8010, -24); /* EMFILE */
	CHECK(bpf_map_lookup_elem(bpf_map__fd(skel->maps.fds), &k8, &tmp) != 0,
	      "a failed dup added an fd");
	test_call(skel, 0, TG, T1, IO_OP_DUPFD_, 9000, 9);   /* fd 9: unknown */
	test_call(skel, 1, TG, T1, IO_OP_DUPFD_, 9010, 0);
	CHECK(bpf_map_lookup_elem(bpf_map__fd(skel->maps.fds), &k0, &tmp) != 0 && errno == ENOENT,
	      "dup2(unknown, 0) left fd 0's old path");
	ring_buffer__consume(rb);
	CHECK(got.bad == 0 && got.n == 1, "dup phase: %u records (want 1), %u bad", got.n, got.bad);
	if (got.n == 1)
		CHECK(got.ev[0].op == IO_OP_READ && got.ev[0].path_len == 6 && !memcmp(got.path[0], "/tmp/y", 6) &&
			      got.ev[0].gap_ns == 7000 - 4010,
		      "read on the dup'ed fd: path '%.*s' gap %llu", (int)got.ev[0].path_len, got.path[0],
		      (unsigned long long)got.ev[0].gap_ns);
	unpaired = events = 0;
	for (unsigned i = 0; i < rec.ncpu; i++) {
		unpaired += skel->bss->st_stats[i].unpaired;
		events += skel->bss->st_stats[i].events;
	}
	CHECK(unpaired == 3 && events == 6, "after dups: unpaired %llu (want 3), events %llu (want 6)",
	      (unsigned long long)unpaired, (unsigned long long)events);
	printf("io-selftest: %d checks, %d failed\n", checks, failed);
	rc = failed ? EX_SOFTWARE_ : EX_OK_;
cleanup:
	ring_buffer__free(rb);
	st_rec_fini(&rec);
	iotrace_bpf__destroy(skel);
	return rc;
}
