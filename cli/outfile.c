/* SPDX-License-Identifier: MIT */
/*
 * outfile.c - output files (`-o`) of every subcommand.
 *
 * What the path names decides how it is written:
 *
 *   missing, or a regular file   atomic replace: written to a temporary
 *     (symlinks followed to      "DIR/.NAME.shardtrie-tmp.PID.RANDOM" beside
 *     the file they name)        the resolved target, fsync'd, renamed over
 *                                it; readers see the old file or the whole
 *                                new one.  An existing file keeps its mode
 *                                (and owner, when we are root).
 *   stdout ("-" or none), a      written directly, nothing renamed: a device
 *     character/block device,    stays a device, a FIFO or a pipe
 *     a FIFO, /dev/fd/N          (`-o >(gzip > x.gz)`) gets the bytes
 *
 * Every byte of a file opened here goes through a stdio stream whose write
 * function keeps the first write(2) error, so "No space left on device"
 * reaches the message instead of the stream's bare error flag (which the
 * exporters can only report as EIO).  Stdout stays the process's stdout
 * (callers compare against it); its cause comes from the failing fflush.
 *
 * Temporaries:
 *  1. A signal that would kill us (SIGINT, SIGTERM, SIGHUP, SIGQUIT left at
 *     their default action) removes the temporary first (unlinkat is
 *     async-signal-safe), then the process dies of that signal.  A signal
 *     the program handles itself (record stops on them) is passed to its
 *     handler and the temporary stays for the commit; an ignored one stays
 *     ignored (nohup).
 *  2. SIGKILL cannot be caught: the temporary stays.  Its name holds the
 *     writer's PID, so the next open of the same target removes the ones
 *     whose process is gone (only names of exactly that pattern, for that
 *     target).  By hand: `rm DIR/.NAME.shardtrie-tmp.*` when no shardtrie
 *     writes NAME.
 *  3. A NAME too long for the pattern (255 bytes a name) is shortened in the
 *     temporary's name to its first bytes plus a hash of the whole name, so
 *     any NAME the directory accepts can be written.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define TMP_TAG ".shardtrie-tmp."
#define RAND_LEN 6
/* ".STEM" TMP_TAG "PID." RANDOM: PID at most 10 digits. */
#define TMP_OVERHEAD (1 + sizeof(TMP_TAG) - 1 + 10 + 1 + RAND_LEN)
#define STEM_HASHED 40 /* bytes of NAME kept before "~HASH" when shortened */

static const int cleanup_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define NSIG_CLEANUP (sizeof(cleanup_signals) / sizeof(cleanup_signals[0]))

/* What the handler needs, set before it is installed (at most one
 * temporary at a time: the subcommands write one output). */
static volatile sig_atomic_t have_tmp;
static int tmp_dirfd_for_signal = -1;
static char tmp_for_signal[NAME_MAX + 1];
static struct sigaction saved[NSIG_CLEANUP];
static bool installed[NSIG_CLEANUP];

static void on_signal(int sig, siginfo_t *si, void *ctx)
{
	for (size_t i = 0; i < NSIG_CLEANUP; i++) {
		if (cleanup_signals[i] != sig)
			continue;
		const struct sigaction *old = &saved[i];
		if (old->sa_flags & SA_SIGINFO) {
			old->sa_sigaction(sig, si, ctx); /* the program's own handler */
			return;
		}
		if (old->sa_handler != SIG_DFL) {
			old->sa_handler(sig);
			return;
		}
	}
	int e = errno;
	if (have_tmp)
		unlinkat(tmp_dirfd_for_signal, tmp_for_signal, 0);
	have_tmp = 0;
	signal(sig, SIG_DFL);
	raise(sig);
	errno = e;
}

/* Until commit or abort, a killing signal removes the temporary first (1.). */
static void remove_on_signal(int dirfd, const char *tmp)
{
	tmp_dirfd_for_signal = dirfd;
	strcpy(tmp_for_signal, tmp);
	have_tmp = 1;
	struct sigaction sa = { .sa_sigaction = on_signal, .sa_flags = SA_SIGINFO | SA_RESTART };
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < NSIG_CLEANUP; i++) {
		installed[i] = false;
		if (sigaction(cleanup_signals[i], NULL, &saved[i]) || saved[i].sa_handler == SIG_IGN)
			continue; /* ignored (nohup) stays ignored */
		installed[i] = sigaction(cleanup_signals[i], &sa, NULL) == 0;
	}
}

/* The temporary is gone or renamed: the program's own dispositions back. */
static void restore_signals(void)
{
	have_tmp = 0;
	for (size_t i = 0; i < NSIG_CLEANUP; i++)
		if (installed[i])
			sigaction(cleanup_signals[i], &saved[i], NULL);
	memset(installed, 0, sizeof(installed));
}

/* The stream's write function: all of buf to o->fd, or the count written
 * before the first error, which o->err keeps (a short count sets the
 * stream's error flag). */
static ssize_t stream_write(void *cookie, const char *buf, size_t size)
{
	struct st_outfile *o = cookie;
	size_t done = 0;
	while (done < size) {
		ssize_t n = write(o->fd, buf + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!o->err)
				o->err = n < 0 ? errno : EIO;
			break;
		}
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* Path with symlinks in its last component followed (the temporary must
 * sit beside the file that is replaced): a malloc'd path or NULL, errno
 * set.  A dangling link names the file to create. */
static char *resolve_links(const char *path)
{
	char *p = strdup(path);
	for (int hops = 0; p; hops++) {
		struct stat sb;
		if (lstat(p, &sb) || !S_ISLNK(sb.st_mode))
			return p;
		if (hops == 40) {
			free(p);
			errno = ELOOP;
			return NULL;
		}
		char target[PATH_MAX];
		ssize_t n = readlink(p, target, sizeof(target) - 1);
		if (n < 0) {
			free(p);
			return NULL;
		}
		target[n] = 0;
		const char *slash = strrchr(p, '/');
		char *next = NULL;
		if (target[0] == '/' || !slash)
			next = strdup(target);
		else if (asprintf(&next, "%.*s/%s", (int)(slash - p), p, target) < 0)
			next = NULL;
		free(p);
		p = next;
	}
	errno = ENOMEM;
	return NULL;
}

/* The stem of NAME's temporaries (3.): NAME, or its first STEM_HASHED
 * bytes and "~" and a 64-bit FNV-1a hash of all of it. */
static void tmp_stem(const char *name, char *stem, size_t n)
{
	size_t len = strlen(name);
	if (len + TMP_OVERHEAD <= NAME_MAX) {
		snprintf(stem, n, "%s", name);
		return;
	}
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 0x100000001b3ull;
	snprintf(stem, n, "%.*s~%016llx", STEM_HASHED, name, (unsigned long long)h);
}

/* Whether dirent name is a temporary of stem's pattern (2.), and its PID. */
static bool is_tmp_of(const char *name, const char *stem, long *pid)
{
	size_t sl = strlen(stem), tl = sizeof(TMP_TAG) - 1;
	if (name[0] != '.' || strncmp(name + 1, stem, sl) || strncmp(name + 1 + sl, TMP_TAG, tl))
		return false;
	const char *p = name + 1 + sl + tl, *digits = p;
	long v = 0;
	for (; *p >= '0' && *p <= '9' && p - digits < 10; p++)
		v = v * 10 + (*p - '0');
	if (p == digits || *p != '.' || strlen(p + 1) != RAND_LEN)
		return false;
	for (const char *r = p + 1; *r; r++)
		if (!((*r >= 'a' && *r <= 'z') || (*r >= 'A' && *r <= 'Z') || (*r >= '0' && *r <= '9')))
			return false;
	*pid = v;
	return true;
}

/* Remove stem's temporaries in dirfd whose writer is gone (2.). */
static void remove_stale(int dirfd, const char *stem)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *de;
	long pid;
	while ((de = readdir(d)))
		if (is_tmp_of(de->d_name, stem, &pid) && pid > 0 && pid != (long)getpid() &&
		    kill((pid_t)pid, 0) && errno == ESRCH) {
			struct stat sb;
			if (!fstatat(dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) && S_ISREG(sb.st_mode))
				unlinkat(dirfd, de->d_name, 0);
		}
	closedir(d);
}

/* Create a fresh temporary for stem in dirfd: its fd, or -errno. */
static int create_tmp(int dirfd, const char *stem, char *tmp, size_t n)
{
	static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	for (int tries = 0; tries < 100; tries++) {
		unsigned char rnd[RAND_LEN];
		if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
			uint64_t x = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull + (uint64_t)tries +
				     (uint64_t)(uintptr_t)tmp;
			memcpy(rnd, &x, sizeof(rnd));
		}
		char r[RAND_LEN + 1];
		for (int i = 0; i < RAND_LEN; i++)
			r[i] = abc[rnd[i] % (sizeof(abc) - 1)];
		r[RAND_LEN] = 0;
		snprintf(tmp, n, ".%s%s%ld.%s", stem, TMP_TAG, (long)getpid(), r);
		int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd >= 0 ? fd : -errno;
	}
	return -EEXIST;
}

/* path NULL/"-", or an existing file that is not regular: written directly. */
static int open_direct(struct st_outfile *o, const char *path, bool is_stdout)
{
	if (is_stdout) {
		o->f = stdout;
		o->fd = STDOUT_FILENO;
		return 0;
	}
	o->fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	return o->fd < 0 ? -errno : 0;
}

/* A missing or regular target: a temporary beside the resolved file. */
static int open_replace(struct st_outfile *o, const char *path)
{
	char *target = resolve_links(path);
	if (!target)
		return -errno;
	const char *slash = strrchr(target, '/');
	const char *name = slash ? slash + 1 : target;
	char dir[PATH_MAX];
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", slash == target ? 1 : (int)(slash - target), target);
	int err = 0;
	if (!*name)
		err = EISDIR;
	else if (strlen(name) > NAME_MAX)
		err = ENAMETOOLONG;
	if (!err && (o->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		err = errno;
	if (err) {
		free(target);
		return -err;
	}
	o->path = strdup(name);
	o->tmp = malloc(NAME_MAX + 1);
	free(target);
	if (!o->path || !o->tmp)
		return -ENOMEM;
	char stem[NAME_MAX + 1];
	tmp_stem(o->path, stem, sizeof(stem));
	remove_stale(o->dirfd, stem);
	struct stat old;
	bool existed = fstatat(o->dirfd, o->path, &old, 0) == 0 && S_ISREG(old.st_mode);
	int fd = create_tmp(o->dirfd, stem, o->tmp, NAME_MAX + 1);
	if (fd < 0) {
		free(o->tmp);
		o->tmp = NULL; /* nothing to remove */
		return fd;
	}
	o->fd = fd;
	remove_on_signal(o->dirfd, o->tmp);
	if (existed) {
		/* chown first: it clears set-id bits that fchmod then restores. */
		if (geteuid() == 0)
			(void)!fchown(fd, old.st_uid, old.st_gid);
		fchmod(fd, old.st_mode & 07777);
	} else {
		mode_t um = umask(0); /* mkstemp-style 0600 -> 0666 less umask */
		umask(um);
		fchmod(fd, 0666 & ~um);
	}
	return 0;
}

int st_outfile_open(struct st_outfile *o, const char *path)
{
	memset(o, 0, sizeof(*o));
	o->fd = o->dirfd = -1;
	bool is_stdout = !path || strcmp(path, "-") == 0;
	struct stat sb;
	int sr = is_stdout ? 0 : stat(path, &sb), r;
	if (is_stdout)
		r = open_direct(o, path, true);
	else if (sr == 0 && S_ISDIR(sb.st_mode))
		r = -EISDIR;
	else if (sr == 0 && !S_ISREG(sb.st_mode))
		r = open_direct(o, path, false); /* device, FIFO, pipe, socket */
	else if (sr && errno != ENOENT)
		r = -errno; /* EACCES, ENOTDIR, ELOOP: nothing to create */
	else
		r = open_replace(o, path); /* regular, or missing (dangling links too) */
	if (!r && !o->f) {
		cookie_io_functions_t io = { .write = stream_write };
		o->f = fopencookie(o, "w", io);
		if (!o->f)
			r = -errno;
		else
			setvbuf(o->f, NULL, _IOFBF, 1 << 16);
	}
	if (r)
		st_outfile_abort(o);
	return r;
}

/* Close what o holds; the temporary, if any, is removed. */
void st_outfile_abort(struct st_outfile *o)
{
	if (o->f && o->f != stdout)
		fclose(o->f); /* the stream's own buffer; o->fd stays ours */
	if (o->fd >= 0 && o->fd != STDOUT_FILENO)
		close(o->fd);
	if (o->tmp) {
		unlinkat(o->dirfd, o->tmp, 0);
		restore_signals();
	}
	if (o->dirfd >= 0)
		close(o->dirfd);
	free(o->path);
	free(o->tmp);
	memset(o, 0, sizeof(*o));
	o->fd = o->dirfd = -1;
}

int st_outfile_commit(struct st_outfile *o)
{
	int err = 0;
	errno = 0;
	if (fflush(o->f) || ferror(o->f))
		err = o->err ? o->err : errno ? errno : EIO;
	if (o->f != stdout)
		fclose(o->f);
	o->f = NULL;
	if (!err && o->tmp && fsync(o->fd))
		err = errno;
	if (o->fd != STDOUT_FILENO) {
		if (close(o->fd) && !err)
			err = errno;
		o->fd = -1;
	}
	if (!err && o->tmp && renameat(o->dirfd, o->tmp, o->dirfd, o->path))
		err = errno;
	if (!err && o->tmp) {
		free(o->tmp);
		o->tmp = NULL; /* renamed: nothing to remove */
		restore_signals();
	}
	st_outfile_abort(o);
	return -err;
}

int st_outfile_stream_error(const struct st_outfile *o, int r)
{
	return r == -EIO && o->err ? -o->err : r;
}

int st_outfile_check(const char *path)
{
	struct st_outfile o;
	if (!path || strcmp(path, "-") == 0)
		return 0;
	struct stat sb;
	if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
		/* Opening a FIFO would wait for its reader: only ask. */
		if (S_ISDIR(sb.st_mode))
			return -EISDIR;
		return access(path, W_OK) ? -errno : 0;
	}
	memset(&o, 0, sizeof(o));
	o.fd = o.dirfd = -1;
	int r = open_replace(&o, path);
	st_outfile_abort(&o);
	return r;
}

int st_cli_output_check(const char *cmd, const char *path)
{
	int r = st_outfile_check(path);
	if (!r)
		return EX_OK_;
	fprintf(stderr, "%s %s: %s: cannot create: %s\n", st_prog, cmd, path, strerror(-r));
	return EX_CANTCREAT_;
}

/* Write path (stdout when NULL) with write(arg, f).  -EBUSY from write
 * (only st_export_folded_once gives it) leaves nothing behind and returns
 * -1 without a message: the caller falls back to a snapshot.  Any other
 * error is reported and mapped to an exit code. */
static int write_output(const char *path, int (*write_fn)(void *arg, FILE *f), void *arg)
{
	struct st_outfile of;
	int r = st_outfile_open(&of, path);
	if (r) {
		fprintf(stderr, "%s: %s: cannot create: %s\n", st_prog, path, strerror(-r));
		return EX_CANTCREAT_;
	}
	r = write_fn(arg, of.f);
	if (r == -EBUSY) {
		st_outfile_abort(&of);
		return -1;
	}
	r = st_outfile_stream_error(&of, r);
	if (r)
		st_outfile_abort(&of);
	else
		r = st_outfile_commit(&of);
	if (r) {
		fprintf(stderr, "%s: %s: write failed: %s\n", st_prog, path ? path : "stdout",
			strerror(-r));
		return EX_IOERR_;
	}
	return EX_OK_;
}

struct snap_export {
	const struct st_snap *s;
	int format;
	const struct st_export_opts *eo;
};

static int write_snap(void *arg, FILE *f)
{
	const struct snap_export *x = arg;
	return st_export(x->s, x->format, x->eo, f);
}

int st_cli_export(const struct st_snap *s, int format, const struct st_export_opts *eo,
		  const char *path)
{
	struct snap_export x = { s, format, eo };
	return write_output(path, write_snap, &x);
}

struct once_export {
	struct st_engine *e;
	const struct st_export_opts *eo;
};

static int write_once(void *arg, FILE *f)
{
	const struct once_export *x = arg;
	return st_export_folded_once(x->e, x->eo, f);
}

int st_cli_export_folded_once(struct st_engine *e, const struct st_export_opts *eo,
			      const char *path)
{
	struct once_export x = { e, eo };
	return write_output(path, write_once, &x);
}

int st_cli_format(const char *name)
{
	int f = st_format_from_name(name);
	if (f < 0) {
		fprintf(stderr, "%s: unknown output format '%s' (known:", st_prog, name);
		for (int i = 0; st_format_name(i); i++)
			fprintf(stderr, " %s", st_format_name(i));
		fprintf(stderr, ")\n");
	}
	return f;
}
