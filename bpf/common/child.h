/* SPDX-License-Identifier: MIT */
/*
 * child.h - the command a tracer runs (`record ... -- COMMAND`), the process
 * it watches (-p) and the wait for the end of a run (runner.h's st_rec).
 * Inside bpf/ only.
 */
#ifndef ST_BPF_CHILD_H
#define ST_BPF_CHILD_H

#include "runner.h"

/* Fork argv, stopped before exec until st_rec_wait() lets it go (EOF on the
 * pipe: it exits 127 without running).  0 or -errno. */
int st_rec_spawn(struct st_rec *r, char **argv);
/* Watch process pid (-p): st_rec_wait() ends the run when it exits.  0 or
 * -errno (ESRCH: already gone). */
int st_rec_watch_pid(struct st_rec *r, pid_t pid);
/* The exit code the tool passes on for the command, as strace does: 0 with
 * no command or one we ended (-d, a signal), its exit status otherwise
 * (127 when it could not be run), 128 + N when killed by signal N.  Prints
 * why when not 0. */
int st_rec_child_rc(const struct st_rec *r);
/* Let a command that never went exit, and reap it. */
void st_rec_child_fini(struct st_rec *r);

#endif
