/* SPDX-License-Identifier: MIT */
/*
 * child.c - the traced command, the -p target, and the wait for the end of a
 * run (child.h; st_rec_wait() in runner.h).
 *
 * The wait sleeps in one ppoll() on the -p target's pidfd (if any) with the
 * ending signals and SIGCHLD unblocked for just that call: it wakes for a
 * signal, the command's exit (SIGCHLD), the target's exit (the pidfd turns
 * readable) or the -d deadline, and polls nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"

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
		/* Our stdout carries the output: the command writes to our
		 * stderr instead.  Done now, before the tracer is attached, so
		 * that the dup2() is not traced. */
		if (r->t && r->t->cmd_stdout_to_stderr && dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
			_exit(127);
		/* Wait until the tracer is attached; EOF means it gave up.  p[0]
		 * is close-on-exec: no close() here, which would be traced (with
		 * an fd the tracer never saw opened). */
		if (read(p[0], &c, 1) != 1)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "%s: cannot run %s: %s\n", r->prog, argv[0], strerror(errno));
		_exit(127);
	}
	close(p[0]);
	r->child = pid;
	r->go_fd = p[1];
	return 0;
}

int st_rec_watch_pid(struct st_rec *r, pid_t pid)
{
	r->pid_fd = pidfd_open(pid, 0);
	r->pid_gone = r->pid_fd < 0 && errno == ESRCH;
	return r->pid_fd < 0 ? -errno : 0;
}

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
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

/* The signals that end a run, as SIGINT does (a closed terminal, the quit
 * key and kill's default all mean "stop, keep what was recorded"), then
 * SIGCHLD.  old[] keeps the handlers found, in this order. */
static const int caught[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD };
#define NCAUGHT (sizeof(caught) / sizeof(caught[0]))

/* The handlers in place, the caught signals blocked; *waitmask: the mask
 * with them unblocked, for ppoll(). */
static void signals_catch(struct sigaction old[NCAUGHT], sigset_t *block, sigset_t *waitmask)
{
	struct sigaction sa = { .sa_handler = on_signal }, sc = { .sa_handler = on_child };
	sigemptyset(&sa.sa_mask);
	sigemptyset(&sc.sa_mask);
	sc.sa_flags = SA_NOCLDSTOP;
	sigemptyset(block);
	for (size_t i = 0; i < NCAUGHT; i++)
		sigaddset(block, caught[i]);
	sigprocmask(SIG_BLOCK, block, waitmask);
	for (size_t i = 0; i < NCAUGHT; i++) {
		sigdelset(waitmask, caught[i]);
		sigaction(caught[i], caught[i] == SIGCHLD ? &sc : &sa, &old[i]);
	}
}

/* The handlers found before (e.g. the output file's, which removes its
 * temporary when a signal kills the process), then the mask: a signal that
 * arrived after the wait ended is delivered now, to them. */
static void signals_restore(const struct sigaction old[NCAUGHT], const sigset_t *block)
{
	for (size_t i = 0; i < NCAUGHT; i++)
		sigaction(caught[i], &old[i], NULL);
	sigprocmask(SIG_UNBLOCK, block, NULL);
}

/* Let the command exec. */
static void child_go(struct st_rec *r)
{
	if (r->go_fd < 0)
		return;
	ssize_t w = write(r->go_fd, "g", 1);
	(void)w;
	close(r->go_fd);
	r->go_fd = -1;
}

/* True once the -p target has exited (its pidfd is readable). */
static bool target_gone(const struct st_rec *r)
{
	struct pollfd p = { .fd = r->pid_fd, .events = POLLIN };
	return r->pid_gone || (r->pid_fd >= 0 && poll(&p, 1, 0) == 1);
}

/* Sleep until a signal, the command's or the target's end, or the deadline
 * (0: none). */
static void sleep_until_end(struct st_rec *r, double end, const sigset_t *waitmask)
{
	struct pollfd p = { .fd = r->pid_fd, .events = POLLIN };
	while (!got_signal && !(r->child && reap(r)) && !target_gone(r)) {
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
		ppoll(&p, r->pid_fd >= 0, tp, waitmask);
	}
}

/*
 * The caught signals stay blocked except inside ppoll(), which unblocks them
 * atomically: a signal that arrives between a check and the wait is
 * delivered by the ppoll() and ends it with EINTR, never lost.  The target's
 * exit needs no signal: its pidfd is in the ppoll() set.  So the loop sleeps
 * until a signal, the command's or the target's end, or the -d deadline.
 */
void st_rec_wait(struct st_rec *r, double duration)
{
	struct sigaction old[NCAUGHT];
	sigset_t block, waitmask;
	signals_catch(old, &block, &waitmask);
	child_go(r);
	/* Attached and consuming, with the handlers in place: say so, so that
	 * scripts (and tests) can start their workload without guessing. */
	st_rec_say(r, "tracing; SIGINT, SIGTERM, SIGHUP or SIGQUIT ends the run\n");
	fflush(stderr);
	sleep_until_end(r, duration > 0 ? st_rec_now() + duration : 0, &waitmask);
	if (!got_signal && target_gone(r))
		st_rec_say(r, "process %d exited: the run ends\n", (int)r->t->pid);
	if (r->child && !r->child_exited) {
		/* Ended by -d or a signal: end the command too. */
		r->child_ended = true;
		kill(r->child, SIGTERM);
		if (waitpid(r->child, &r->child_status, 0) == r->child)
			r->child_exited = true;
	}
	signals_restore(old, &block);
}

int st_rec_child_rc(const struct st_rec *r)
{
	if (!r->child || !r->child_exited || r->child_ended)
		return 0;
	if (WIFEXITED(r->child_status)) {
		int st = WEXITSTATUS(r->child_status);
		if (st)
			st_rec_say(r, "the command exited with status %d\n", st);
		return st;
	}
	if (WIFSIGNALED(r->child_status)) {
		int sig = WTERMSIG(r->child_status);
		st_rec_say(r, "the command was killed by signal %d (%s)\n", sig, strsignal(sig));
		return 128 + sig;
	}
	return 0;
}

void st_rec_child_fini(struct st_rec *r)
{
	if (r->go_fd >= 0)
		close(r->go_fd); /* the child reads EOF and exits without exec */
	r->go_fd = -1;
	if (r->child && !r->child_exited)
		waitpid(r->child, &r->child_status, 0);
	if (r->pid_fd >= 0)
		close(r->pid_fd);
	r->pid_fd = -1;
}
