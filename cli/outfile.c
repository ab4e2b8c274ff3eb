/* SPDX-License-Identifier: MIT */
/*
 * outfile.c - atomic output files.
 *
 * Write to "DIR/.NAME.XXXXXX" (same directory, so rename is atomic), fsync,
 * rename over NAME.  Readers of NAME see the old file or the whole new one,
 * never a partial one.  A SIGINT/SIGTERM before commit removes the temporary
 * file (unlink is async-signal-safe) and exits 128+signal.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t have_tmp;
static char tmp_for_signal[4096];

static void on_signal(int sig)
{
	if (have_tmp)
		unlink(tmp_for_signal);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Until commit or abort, SIGINT/SIGTERM remove tmp (of at most
 * sizeof(tmp_for_signal) bytes) before the process dies. */
static void remove_on_signal(const char *tmp)
{
	strcpy(tmp_for_signal, tmp);
	have_tmp = 1;
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int st_outfile_open(struct st_outfile *o, const char *path)
{
	memset(o, 0, sizeof(*o));
	if (!path || strcmp(path, "-") == 0) {
		o->f = stdout;
		return 0;
	}
	const char *slash = strrchr(path, '/');
	size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
	size_t need = strlen(path) + 16;
	if (need > sizeof(tmp_for_signal))
		return -ENAMETOOLONG;
	o->path = strdup(path);
	o->tmp = malloc(need);
	if (!o->path || !o->tmp) {
		free(o->path);
		free(o->tmp);
		return -ENOMEM;
	}
	snprintf(o->tmp, need, "%.*s.%s.XXXXXX", (int)dlen, path, path + dlen);
	int fd = mkstemp(o->tmp);
	if (fd < 0) {
		int err = errno;
		free(o->path);
		free(o->tmp);
		o->path = o->tmp = NULL;
		return -err;
	}
	/* mkstemp makes 0600; output files are ordinary 0644 (less umask). */
	mode_t um = umask(0);
	umask(um);
	fchmod(fd, 0666 & ~um);
	remove_on_signal(o->tmp);
	o->f = fdopen(fd, "w");
	if (!o->f) {
		int err = errno;
		close(fd);
		st_outfile_abort(o);
		return -err;
	}
	return 0;
}

void st_outfile_abort(struct st_outfile *o)
{
	if (o->tmp) {
		if (o->f)
			fclose(o->f);
		unlink(o->tmp);
		have_tmp = 0;
	}
	free(o->path);
	free(o->tmp);
	memset(o, 0, sizeof(*o));
}

int st_outfile_commit(struct st_outfile *o)
{
	if (!o->tmp) {
		int bad = fflush(o->f) || ferror(o->f);
		return bad ? -EIO : 0;
	}
	int err = 0;
	if (fflush(o->f) || ferror(o->f) || fsync(fileno(o->f)))
		err = errno ? errno : EIO;
	if (fclose(o->f) && !err)
		err = errno;
	o->f = NULL;
	if (!err && rename(o->tmp, o->path))
		err = errno;
	if (err) {
		st_outfile_abort(o);
		return -err;
	}
	have_tmp = 0;
	free(o->path);
	free(o->tmp);
	memset(o, 0, sizeof(*o));
	return 0;
}

/* Write path (stdout when NULL) atomically with write(arg, f).  -EBUSY from
 * write (only st_export_folded_once gives it) leaves nothing behind and
 * returns -1 without a message: the caller falls back to a snapshot.  Any
 * other error is reported and mapped to an exit code. */
static int write_atomically(const char *path, int (*write)(void *arg, FILE *f), void *arg)
{
	struct st_outfile of;
	int r = st_outfile_open(&of, path);
	if (r) {
		fprintf(stderr, "%s: %s: cannot create: %s\n", st_prog, path, strerror(-r));
		return EX_CANTCREAT_;
	}
	r = write(arg, of.f);
	if (r == -EBUSY) {
		st_outfile_abort(&of);
		return -1;
	}
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
	return write_atomically(path, write_snap, &x);
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
	return write_atomically(path, write_once, &x);
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
