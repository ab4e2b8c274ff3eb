/* SPDX-License-Identifier: MIT */
/*
 * threads.h - this process's threads found by name (the comm under
 * /proc/self/task/TID/), for the suites and benches that look for the
 * engine's threads: the merger ("st-merger"), its pool ("st-merge-N").
 * No Criterion in it, so that bench/ links it too (as bench/push links
 * pyroscope_rx.o).
 *
 * Invariants: a thread that exits during the scan is skipped, not an
 * error; at most `max` TIDs are written; no /proc is 0 threads found.
 */
#ifndef ST_TEST_THREADS_H
#define ST_TEST_THREADS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * The threads whose name is `name` (prefix false) or starts with it
 * (prefix true).  tids NULL: how many there are.  Else their TIDs go into
 * tids[0..max), in /proc's order, and the scan stops at max: returns how
 * many were written.
 */
size_t ts_threads_named(const char *name, bool prefix, pid_t *tids, size_t max);

#endif
