/* SPDX-License-Identifier: MIT */
/*
 * flood.c - `record io --flood RATE` (tool.h).
 *
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
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "iotrace.h"
#include "tool.h"

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
static int flood_end(const struct st_rec *r, struct flood *fl, unsigned n, atomic_bool *stop, double secs,
		     double rate)
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
	st_rec_say(r, "flood: %llu paired calls offered in %.3f s by %u feeders (%.0f/s, target %.0f/s, %llu program runs)\n",
		   (unsigned long long)offered, secs, n, secs > 0 ? (double)offered / secs : 0.0, rate,
		   (unsigned long long)runs);
	return err;
}

/* The CPUs this process may run on that have a ring: *n of them. */
static unsigned *flood_cpus(const struct st_rec *r, unsigned *n)
{
	cpu_set_t allowed;
	unsigned *cpus = calloc(r->ncpu, sizeof(*cpus));
	*n = 0;
	if (cpus && sched_getaffinity(0, sizeof(allowed), &allowed) == 0)
		for (unsigned i = 0; i < r->ncpu && i < CPU_SETSIZE; i++)
			if (CPU_ISSET(i, &allowed))
				cpus[(*n)++] = i;
	return cpus;
}

int st_io_flood(struct st_rec *r, int prog_fd, int fd, double rate, double duration)
{
	unsigned nf;
	unsigned *cpus = flood_cpus(r, &nf);
	struct flood *fl = NULL;
	atomic_bool fstop;
	atomic_init(&fstop, false);
	if (!nf || fd < 0 || !(fl = calloc(nf, sizeof(*fl)))) {
		free(cpus);
		st_rec_say(r, "--flood: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return ST_TRACE_SOFTWARE;
	}
	double t0 = st_rec_now();
	unsigned started = flood_start(fl, cpus, nf, prog_fd, fd, rate, &fstop);
	free(cpus);
	if (started == nf)
		st_rec_wait(r, duration);
	int err = flood_end(r, fl, started, &fstop, st_rec_now() - t0, rate);
	close(fd);
	free(fl);
	if (started < nf || err) {
		st_rec_say(r, "--flood: %s\n", started < nf ? "cannot start the feeder threads" : strerror(-err));
		return ST_TRACE_SOFTWARE;
	}
	return 0;
}
