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
const char *ts_path(const char *name);

/* Run a shell command, return its exit status (or -1). */
int ts_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
