/* SPDX-License-Identifier: MIT */
/*
 * child.c - the traced command and the wait for the end of a run (child.h;
 * st_rec_wait() in runner.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
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

/* The handlers in place, SIGINT, SIGTERM and SIGCHLD blocked; *waitmask:
 * the mask with them unblocked, for ppoll(). */
static void signals_catch(struct sigaction *old_chld, sigset_t *block, sigset_t *waitmask)
{
	struct sigaction sa = { .sa_handler = on_signal }, sc = { .sa_handler = on_child };
	sigemptyset(&sa.sa_mask);
	sigemptyset(&sc.sa_mask);
	sc.sa_flags = SA_NOCLDSTOP;
	sigemptyset(block);
	sigaddset(block, SIGINT);
	sigaddset(block, SIGTERM);
	sigaddset(block, SIGCHLD);
	sigprocmask(SIG_BLOCK, block, waitmask);
	sigdelset(waitmask, SIGINT);
	sigdelset(waitmask, SIGTERM);
	sigdelset(waitmask, SIGCHLD);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGCHLD, &sc, old_chld);
}

static void signals_restore(const struct sigaction *old_chld, const sigset_t *block)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigaction(SIGCHLD, old_chld, NULL);
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

/* Sleep until a signal, the command's end or the deadline (0: none). */
static void sleep_until_end(struct st_rec *r, double end, const sigset_t *waitmask)
{
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
		ppoll(NULL, 0, tp, waitmask);
	}
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
	struct sigaction old_chld;
	sigset_t block, waitmask;
	signals_catch(&old_chld, &block, &waitmask);
	child_go(r);
	/* Attached and consuming, with the handlers in place: say so, so that
	 * scripts (and tests) can start their workload without guessing. */
	st_rec_say(r, "tracing; SIGINT/SIGTERM end the run\n");
	fflush(stderr);
	sleep_until_end(r, duration > 0 ? st_rec_now() + duration : 0, &waitmask);
	if (r->child && !r->child_exited) {
		/* Ended by -d or a signal: end the command too. */
		r->child_ended = true;
		kill(r->child, SIGTERM);
		if (waitpid(r->child, &r->child_status, 0) == r->child)
			r->child_exited = true;
	}
	signals_restore(&old_chld, &block);
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
}
