/* SPDX-License-Identifier: MIT */
/*
 * export.h - what the format writers (export_*.c) share.
 *
 * A writer is `int fn(const struct st_snap *, const struct st_export_opts *,
 * FILE *)` registered in export.c's table.  Writers walk the snapshot through
 * the public query API only, never recurse (stacks can be 65536 deep), and
 * escape every frame name (names are untrusted input: file names, comms).
 */
#ifndef ST_EXPORT_H
#define ST_EXPORT_H

#include <stdio.h>

#include "shardtrie.h"

typedef int (*st_export_fn)(const struct st_snap *s, const struct st_export_opts *o, FILE *out);

int st_export_folded(const struct st_snap *s, const struct st_export_opts *o, FILE *out);
int st_export_json(const struct st_snap *s, const struct st_export_opts *o, FILE *out);

/* Write s[0..len) as a JSON string body (no quotes) the way Go's
 * encoding/json does: invalid UTF-8 -> \ufffd, <>& and U+2028/9 escaped. */
void st_json_escape(FILE *out, const char *s, size_t len);

/* 0, or -EIO when the stream has an error. */
int st_export_status(FILE *out);

/*
 * Visit every node depth-first in name order, passing the ';'-joined path
 * from the first frame below the root (bytes, not NUL terminated; the root's
 * path is empty).  Iterative.  Returns 0, -ENOMEM, or the first non-zero
 * return of fn.
 */
typedef int (*st_path_fn)(void *arg, uint32_t node, const char *path, size_t len);
int st_export_walk_paths(const struct st_snap *s, st_path_fn fn, void *arg);

#endif
