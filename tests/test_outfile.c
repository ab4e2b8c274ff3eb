/* SPDX-License-Identifier: MIT */
/*
 * test_outfile.c - `-o` of every subcommand (cli/outfile.c), end to end:
 * what the path names decides how it is written.  Devices, FIFOs, symlinks
 * and read-only directories are made inside the test's own directory
 * (/dev/null and /dev/full themselves are never touched); each expectation
 * is what the file system shows afterwards, checked with stat(2).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "support/support.h"

#define CLI ST_TEST_CLI

TestSuite(outfile, .init = ts_dir_init, .fini = ts_dir_fini, .timeout = 120);

/* A small input and the folded output it must give (sorted, summed). */
static const char IN[] = "main;b 2\nmain;a 1\nmain;b 3\n";
static const char OUT[] = "main;a 1\nmain;b 5\n";

static void write_input(void)
{
	cr_assert_eq(ts_write_file(ts_path("in.folded"), IN, sizeof(IN) - 1), 0);
}

/* Whether the directory holds a name starting with prefix. */
static bool dir_has(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "%s", dir);
	bool found = false;
	struct dirent *de;
	while ((de = readdir(d)) && !found)
		found = strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
			strncmp(de->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return found;
}

static char *slurp(const char *name)
{
	char *s = ts_read_file(ts_path(name), NULL);
	cr_assert_not_null(s, "%s missing", name);
	return s;
}

Test(outfile, char_devices_are_written_not_replaced)
{
	if (geteuid() != 0)
		cr_skip_test("mknod of a character device needs root");
	write_input();
	/* The same devices as /dev/null (1,3) and /dev/full (1,7), made here. */
	cr_assert_eq(mknod(ts_path("null"), S_IFCHR | 0666, makedev(1, 3)), 0, "%s", strerror(errno));
	cr_assert_eq(mknod(ts_path("full"), S_IFCHR | 0666, makedev(1, 7)), 0, "%s", strerror(errno));
	cr_expect_eq(ts_run("%s convert -o %s %s", CLI, ts_path("null"), ts_path("in.folded")), 0);
	cr_expect_eq(ts_run("%s convert -t json -o %s %s 2> %s", CLI, ts_path("full"), ts_path("in.folded"),
			    ts_path("err1")), 74, "writing a full device fails");
	cr_expect_eq(ts_run("%s diff -o %s %s %s 2> %s", CLI, ts_path("full"), ts_path("in.folded"),
			    ts_path("in.folded"), ts_path("err2")), 74);
	cr_expect_eq(ts_run("%s convert %s > %s 2> %s", CLI, ts_path("in.folded"), ts_path("full"),
			    ts_path("err3")), 74, "stdout on a full device fails");
	const char *names[] = { "null", "full" };
	unsigned minor[] = { 3, 7 };
	for (int i = 0; i < 2; i++) {
		struct stat sb;
		cr_assert_eq(stat(ts_path(names[i]), &sb), 0);
		cr_expect(S_ISCHR(sb.st_mode), "%s is still a character device", names[i]);
		cr_expect_eq(minor(sb.st_rdev), minor[i]);
	}
	for (int i = 1; i <= 3; i++) {
		char n[8];
		snprintf(n, sizeof(n), "err%d", i);
		char *err = slurp(n);
		cr_expect_not_null(strstr(err, "No space left on device"), "%s: %s", n, err);
		free(err);
	}
	cr_expect(!dir_has(ts_dir, ".null."), "no temporary beside the device");
}

Test(outfile, fifo_and_pipe_get_the_bytes)
{
	write_input();
	cr_assert_eq(mkfifo(ts_path("fifo"), 0644), 0);
	/* A reader on the FIFO (bounded: a writer that replaces the FIFO
	 * instead of opening it leaves it waiting). */
	cr_expect_eq(ts_run("timeout 20 cat %s > %s & %s convert -o %s %s; rc=$?; wait; exit $rc",
			    ts_path("fifo"), ts_path("got"), CLI, ts_path("fifo"), ts_path("in.folded")),
		     0);
	char *got = slurp("got");
	cr_expect_str_eq(got, OUT);
	free(got);
	struct stat sb;
	cr_assert_eq(lstat(ts_path("fifo"), &sb), 0);
	cr_expect(S_ISFIFO(sb.st_mode), "the FIFO is still a FIFO");
	/* A process substitution: -o /dev/fd/N, a pipe. */
	cr_expect_eq(ts_run("bash -c '%s convert -o >(timeout 20 cat > %s) %s; rc=$?; wait; exit $rc'", CLI,
			    ts_path("got2"), ts_path("in.folded")),
		     0);
	/* bash waits for the substitution only since 5.1: poll briefly. */
	char *got2 = NULL;
	for (int i = 0; i < 200; i++) {
		size_t n = 0;
		free(got2);
		got2 = ts_read_file(ts_path("got2"), &n);
		if (got2 && n == sizeof(OUT) - 1)
			break;
		usleep(10000);
	}
	cr_expect_str_eq(got2 ? got2 : "(none)", OUT);
	free(got2);
}

Test(outfile, symlinks_are_followed_and_mode_and_owner_kept)
{
	write_input();
	cr_assert_eq(mkdir(ts_path("sub"), 0755), 0);
	cr_assert_eq(ts_write_file(ts_path("sub/real"), "old\n", 4), 0);
	cr_assert_eq(chmod(ts_path("sub/real"), 0640), 0);
	bool root = geteuid() == 0;
	if (root)
		cr_assert_eq(chown(ts_path("sub/real"), 1, 2), 0);
	cr_assert_eq(symlink("sub/real", ts_path("link")), 0); /* relative to the link's dir */
	cr_assert_eq(ts_run("%s convert -o %s %s", CLI, ts_path("link"), ts_path("in.folded")), 0);
	struct stat sb;
	cr_assert_eq(lstat(ts_path("link"), &sb), 0);
	cr_expect(S_ISLNK(sb.st_mode), "the link is still a link");
	char *real = slurp("sub/real");
	cr_expect_str_eq(real, OUT, "its target got the output");
	free(real);
	cr_assert_eq(stat(ts_path("sub/real"), &sb), 0);
	cr_expect_eq(sb.st_mode & 07777, 0640, "mode kept: %o", sb.st_mode & 07777);
	if (root)
		cr_expect(sb.st_uid == 1 && sb.st_gid == 2, "owner kept: %u:%u", sb.st_uid, sb.st_gid);
	cr_expect(!dir_has(ts_path("sub"), ".real."), "no temporary left beside the target");
	/* A dangling link names the file to create; diff takes -o the same way. */
	cr_assert_eq(symlink("sub/new", ts_path("dangling")), 0);
	cr_assert_eq(ts_run("%s diff -t folded -o %s %s %s", CLI, ts_path("dangling"), ts_path("in.folded"),
			    ts_path("in.folded")),
		     0);
	cr_assert_eq(lstat(ts_path("dangling"), &sb), 0);
	cr_expect(S_ISLNK(sb.st_mode));
	char *nw = slurp("sub/new");
	cr_expect_str_eq(nw, "main;a 1 1\nmain;b 5 5\n");
	free(nw);
	/* A file that did not exist gets 0666 less the umask, as any new file. */
	cr_assert_eq(ts_run("umask 027; %s convert -o %s %s", CLI, ts_path("o"), ts_path("in.folded")), 0);
	cr_assert_eq(stat(ts_path("o"), &sb), 0);
	cr_expect_eq(sb.st_mode & 0777, 0640, "mode %o", sb.st_mode & 0777);
}

/* The command prefix that runs the CLI where a 0555 directory really is
 * read-only: as nobody when we are root (root ignores the mode bits). */
static const char *unprivileged(void)
{
	if (geteuid() != 0)
		return "";
	if (ts_run("command -v setpriv >/dev/null") != 0)
		return NULL;
	return "setpriv --reuid=65534 --regid=65534 --clear-groups ";
}

Test(outfile, read_only_directory_fails_before_the_work)
{
	const char *as = unprivileged();
	if (!as)
		cr_skip_test("running as root without setpriv (util-linux): no way to be refused");
	write_input();
	cr_assert_eq(chmod(ts_dir, 0755), 0); /* nobody may enter, not write */
	cr_assert_eq(chmod(ts_path("in.folded"), 0644), 0);
	cr_assert_eq(mkdir(ts_path("ro"), 0555), 0);
	cr_assert_eq(chmod(ts_path("ro"), 0555), 0);
	/* The output is checked before any input is read: a missing input
	 * (exit 66) would be found first otherwise. */
	cr_expect_eq(ts_run("%s%s convert -o %s %s 2> %s", as, CLI, ts_path("ro/out"), ts_path("no-such-input"),
			    ts_path("err")),
		     73);
	char *err = slurp("err");
	char want[600];
	snprintf(want, sizeof(want), "%s: cannot create: Permission denied", ts_path("ro/out"));
	cr_expect_not_null(strstr(err, want), "stderr: %s", err);
	free(err);
	cr_expect_eq(ts_run("%s%s diff -o %s %s %s 2>/dev/null", as, CLI, ts_path("ro/out"),
			    ts_path("in.folded"), ts_path("in.folded")),
		     73);
	cr_expect(!dir_has(ts_path("ro"), "."), "nothing created in ro/");
}

Test(outfile, long_names)
{
	write_input();
	/* 250 bytes: a valid name whose ".NAME.XXXXXX" temporary would not be. */
	char name[301];
	memset(name, 'n', 250);
	name[250] = 0;
	cr_assert_eq(ts_run("%s convert -o %s/%s %s 2> %s", CLI, ts_dir, name, ts_path("in.folded"),
			    ts_path("err")),
		     0);
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", ts_dir, name);
	char *got = ts_read_file(path, NULL);
	cr_expect_str_eq(got ? got : "(none)", OUT);
	free(got);
	cr_expect(!dir_has(ts_dir, ".nnnn"), "no temporary left");
	/* 300 bytes: no such name can exist; said before any input is read. */
	memset(name, 'm', 300);
	name[300] = 0;
	cr_expect_eq(ts_run("%s convert -o %s/%s %s 2> %s", CLI, ts_dir, name, ts_path("no-such-input"),
			    ts_path("err")),
		     73);
	char *err = slurp("err");
	cr_expect_not_null(strstr(err, "cannot create: File name too long"), "stderr: %s", err);
	free(err);
}

/* Write errors name their errno: a file size limit gives EFBIG, which used
 * to print as "Input/output error" (no root needed for this one). */
Test(outfile, write_error_names_the_cause)
{
	/* ~200 KiB of output against a 64 KiB limit. */
	FILE *f = fopen(ts_path("in.folded"), "w");
	cr_assert(f);
	for (int i = 0; i < 10000; i++)
		fprintf(f, "main;some_function_%05d 1\n", i);
	fclose(f);
	cr_expect_eq(ts_run("trap '' XFSZ; ulimit -f 64; %s convert -o %s %s 2> %s", CLI, ts_path("out"),
			    ts_path("in.folded"), ts_path("err")),
		     74);
	char *err = slurp("err");
	cr_expect_not_null(strstr(err, "write failed: File too large"), "stderr: %s", err);
	free(err);
	struct stat sb;
	cr_expect_neq(stat(ts_path("out"), &sb), 0, "no partial output");
	cr_expect(!dir_has(ts_dir, ".out."), "no temporary left");
}

/* The next run for a target removes the temporaries that killed writers
 * left (their PID is gone), and only those: exactly the documented
 * pattern ".NAME.shardtrie-tmp.PID.XXXXXX", for that NAME. */
Test(outfile, stale_temporaries_of_dead_writers_are_removed)
{
	write_input();
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	cr_assert(dead > 0);
	cr_assert_eq(waitpid(dead, NULL, 0), dead); /* reaped: the PID is free */
	char stale[128], live[128], longer[128], other[128];
	snprintf(stale, sizeof(stale), ".out.shardtrie-tmp.%d.aB3xYz", (int)dead);
	snprintf(live, sizeof(live), ".out.shardtrie-tmp.%d.aB3xYz", (int)getpid());
	snprintf(longer, sizeof(longer), ".out.shardtrie-tmp.%d.aB3xYzz", (int)dead);
	snprintf(other, sizeof(other), ".other.shardtrie-tmp.%d.aB3xYz", (int)dead);
	const char *all[] = { stale, live, longer, other };
	for (int i = 0; i < 4; i++)
		cr_assert_eq(ts_write_file(ts_path(all[i]), "partial", 7), 0);
	cr_assert_eq(ts_run("%s convert -o %s %s", CLI, ts_path("out"), ts_path("in.folded")), 0);
	struct stat sb;
	cr_expect_neq(stat(ts_path(stale), &sb), 0, "the dead writer's temporary is removed");
	for (int i = 1; i < 4; i++)
		cr_expect_eq(stat(ts_path(all[i]), &sb), 0, "%s is kept", all[i]);
	char *out = slurp("out");
	cr_expect_str_eq(out, OUT);
	free(out);
}

/*
 * A killing signal that lands while the output is being written removes
 * the temporary: for SIGHUP and SIGQUIT as for SIGINT/SIGTERM.  The signal
 * is sent when inotify reports the first write to the temporary (a few
 * MB of output and an fsync keep it there for a while); the process must
 * die of that signal and leave neither output nor temporary.
 */
static void kill_while_writing(int sig)
{
	FILE *f = fopen(ts_path("in.folded"), "w");
	cr_assert(f);
	for (int i = 0; i < 300000; i++)
		fprintf(f, "main;caller_%d;a_rather_long_function_name_%d 1\n", i % 1000, i);
	fclose(f);
	for (int attempt = 0; attempt < 3; attempt++) {
		int in = inotify_init1(IN_CLOEXEC);
		cr_assert(in >= 0);
		cr_assert(inotify_add_watch(in, ts_dir, IN_MODIFY) >= 0);
		pid_t pid = fork();
		if (pid == 0) {
			struct rlimit no_core = { 0, 0 };
			setrlimit(RLIMIT_CORE, &no_core);
			int devnull = open("/dev/null", O_WRONLY); /* read only by us: stderr sink */
			dup2(devnull, 2);
			execl(CLI, CLI, "convert", "--threads", "2", "-o", ts_path("out"), ts_path("in.folded"),
			      (char *)NULL);
			_exit(127);
		}
		cr_assert(pid > 0);
		bool sent = false;
		char buf[4096] __attribute__((aligned(8)));
		struct pollfd pfd = { in, POLLIN, 0 };
		/* Bounded: 30 s of events at most. */
		for (int waited = 0; !sent && waited < 300 && poll(&pfd, 1, 100) >= 0; waited++) {
			if (!(pfd.revents & POLLIN))
				continue;
			ssize_t n = read(in, buf, sizeof(buf));
			for (ssize_t off = 0; n > 0 && off < n && !sent;) {
				const struct inotify_event *ev = (const void *)(buf + off);
				if (ev->len && strncmp(ev->name, ".out.", 5) == 0) {
					kill(pid, sig);
					sent = true;
				}
				off += (ssize_t)sizeof(*ev) + ev->len;
			}
		}
		close(in);
		int st;
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		struct stat sb;
		if (!sent || (WIFEXITED(st) && WEXITSTATUS(st) == 0 && stat(ts_path("out"), &sb) == 0)) {
			unlink(ts_path("out"));
			continue; /* it finished before the signal: try again */
		}
		cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == sig, "died of signal %d (status %#x)", sig, st);
		cr_expect_neq(stat(ts_path("out"), &sb), 0, "no output");
		cr_expect(!dir_has(ts_dir, ".out."), "no temporary left");
		return;
	}
	cr_skip_test("the output was written before the signal could land, three times");
}

Test(outfile, sighup_while_writing_removes_the_temporary)
{
	kill_while_writing(SIGHUP);
}

Test(outfile, sigquit_while_writing_removes_the_temporary)
{
	kill_while_writing(SIGQUIT);
}
