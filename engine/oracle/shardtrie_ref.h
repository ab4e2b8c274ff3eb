/* SPDX-License-Identifier: MIT */
/*
 * shardtrie_ref.h - the reference trie: one mutex, one plain tree, the same
 * semantics as the engine (saturating sums, node cap folding into [other]),
 * written to be trusted at a glance.  Tests and fuzzers compare the engine
 * against it through the canonical dumps below.
 */
#ifndef SHARDTRIE_REF_H
#define SHARDTRIE_REF_H

#include "shardtrie.h"

#ifdef __cplusplus
extern "C" {
#endif

struct st_ref;

/* NULL + errno on failure.  node_cap as in st_options (0 = none). */
struct st_ref *st_ref_create(unsigned nmetrics, uint64_t node_cap);
void st_ref_destroy(struct st_ref *r);
/* Thread-safe.  Frames root first as byte strings.  0 or -ENOMEM. */
int st_ref_add(struct st_ref *r, const char *const *frames, const size_t *lens, size_t depth,
	       const uint64_t *values);
/* What st_flush() does to the engine's trie: apply the node cap.  Returns
 * the new version. */
uint64_t st_ref_flush(struct st_ref *r);
/* Drop everything, new baseline.  Returns the new version. */
uint64_t st_ref_reset(struct st_ref *r);
size_t st_ref_node_count(struct st_ref *r);

/*
 * Canonical dumps: one line per node, depth-first, children in name order:
 *   "<depth> <name as hex> <self_0>..<self_n-1> / <total_0>..<total_n-1>\n"
 * Two tries are equal exactly when their dumps are byte-equal.
 * Return 0 or -errno.
 */
int st_ref_dump(struct st_ref *r, FILE *out);
int st_snap_dump(const struct st_snap *s, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
