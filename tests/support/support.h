/* SPDX-License-Identifier: MIT */
/* support.h - helpers the Criterion suites share (independent of the engine). */
#ifndef ST_TEST_SUPPORT_H
#define ST_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "shardtrie.h"
#include "shardtrie_export.h"
#include "shardtrie_ref.h"

/* Canonical dumps as malloc'd strings (caller frees). */
char *ts_dump_snap(const struct st_snap *s);
char *ts_dump_ref(struct st_ref *r);
/* Flush the engine and return its dump. */
char *ts_flush_dump(struct st_engine *e);
/* The root's total in `metric` in the engine's current snapshot (taken and
 * released here; it does not flush: flush first to see what was added). */
uint64_t ts_root_total(struct st_engine *e, unsigned metric);
/* An engine with no merger thread (merges only in st_flush), one metric and
 * nshards shards (0 = one per CPU); asserts it was made. */
struct st_engine *ts_engine_no_merger(unsigned nshards);
/* Flush the engine and the reference; assert that their dumps are equal
 * (the printf-style message says where, on failure). */
void ts_assert_matches_ref(struct st_engine *e, struct st_ref *r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Deterministic PRNG (splitmix64). */
uint64_t ts_rand(uint64_t *state);

/* Read a whole file (NUL-terminated, *len without it); NULL if absent. */
char *ts_read_file(const char *path, size_t *len);
int ts_write_file(const char *path, const void *data, size_t len);
/* A fresh temporary directory (static buffer per call site is the caller's). */
void ts_tmpdir(char *buf, size_t n);
/* A scratch directory per test: ts_dir_init as a suite's .init, ts_dir_fini
 * as its .fini; ts_path(name) is ts_dir/name (eight buffers in rotation, so
 * a few may be used in one call). */
extern char ts_dir[256];
void ts_dir_init(void);
void ts_dir_fini(void);
/* A child process group the test started (a server, a browser): ts_dir_fini
 * kills what is left of it, so a test that fails half-way (Criterion ends
 * it at the failed assertion) leaves no process behind. */
void ts_track_group(int pgid);
const char *ts_path(const char *name);

/* Run a shell command, return its exit status (or -1). */
int ts_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Skip the test unless BPF tracing works here: root, BTF, and `record io
 * --selftest` loads (which also proves the build had the BPF toolchain);
 * what names the test's need in the skip reason. */
void ts_need_bpf(const char *what);

#endif
