/* SPDX-License-Identifier: MIT */
/*
 * fz.h - what the fuzz targets share: a byte reader that never runs out
 * (missing bytes read as zero, so every input is a valid program), canonical
 * dumps as strings, snapshot invariant checks, and one way to report a
 * broken property.
 *
 * A target is one fuzz/fuzz_<name>.c defining LLVMFuzzerTestOneInput().  The
 * same file links against libFuzzer (clang, `make fuzz`) and against
 * fuzz/standalone.c (any compiler, corpus replay in `make test`).
 *
 * A broken property is reported by fz_fail(): it prints one line starting
 * with FZ_MISMATCH (scripts grep for it, see fuzz/module.mk) and aborts, so
 * libFuzzer keeps the input as crash-<sha1>.
 */
#ifndef ST_FUZZ_FZ_H
#define ST_FUZZ_FZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "shardtrie.h"
#include "shardtrie_export.h"
#include "shardtrie_ref.h"

#define FZ_MISMATCH "FUZZ-MISMATCH"

/* The libFuzzer entry points (prototypes for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

struct fz_in {
	const uint8_t *p;
	size_t n;
};

static inline bool fz_more(const struct fz_in *in) { return in->n > 0; }
uint8_t fz_u8(struct fz_in *in);
uint16_t fz_u16(struct fz_in *in);
uint32_t fz_u32(struct fz_in *in);
uint64_t fz_u64(struct fz_in *in);
/* A value biased to the interesting ones: 0, small, around 2^32, next to
 * UINT64_MAX (saturation), or any. */
uint64_t fz_value(struct fz_in *in);
/* Up to max bytes taken from the input (length from the first byte);
 * *out points into the input. */
size_t fz_bytes(struct fz_in *in, const uint8_t **out, size_t max);

/* Report a broken property and abort.  Never returns. */
void fz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* Fail unless a and b are equal, naming the first differing line. */
void fz_expect_same(const char *what, const char *a, const char *b);

/* Canonical dumps as malloc'd NUL-terminated strings (abort on ENOMEM). */
char *fz_dump_snap(const struct st_snap *s);
char *fz_dump_ref(struct st_ref *r);
/* fz_expect_same() on the dumps of a snapshot and a reference (the engine
 * side first), or of two references. */
void fz_expect_snap_is_ref(const char *what, const struct st_snap *s, struct st_ref *ref);
void fz_expect_refs_same(const char *what, struct st_ref *a, struct st_ref *b);

/*
 * What must hold in any snapshot, checked through the public API only:
 * root first with an empty name, children contiguous with the right parent
 * and depth and strictly increasing names (byte-wise, shorter first),
 * st_snap_child_find() finds each child, total = self + children's totals
 * (saturating) for every metric, and every node reachable from the root.
 */
void fz_check_snap(const struct st_snap *s);

/*
 * An engine reused between inputs, st_reset() each time and recreated every
 * FZ_ENGINE_REUSE uses (so interned names stay bounded): a destroy costs a
 * 10 ms rcu_barrier(), which would dominate a target's run time.  `slot`
 * holds the target's engine; `use` its use count; `metric_names` names
 * metrics 1..nm-1.  No merger thread, one shard.
 */
#define FZ_ENGINE_REUSE 512
struct st_engine *fz_engine_reuse(struct st_engine **slot, unsigned *use, unsigned nm,
				  const char *const *metric_names);

/* Byte-wise name order, shorter first on a common prefix. */
int fz_name_cmp(const char *a, size_t la, const char *b, size_t lb);

static inline uint64_t fz_sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

#endif
