/* SPDX-License-Identifier: MIT */
/*
 * write.h - what the format writers in write/ share.
 *
 * A writer is `int fn(const struct st_snap *, const struct st_export_opts *,
 * FILE *)` registered in export.c's table.  Writers walk the snapshot through
 * the public query API only, never recurse (stacks can be 65536 deep), and
 * escape every frame name (names are untrusted input: file names, comms).
 */
#ifndef ST_WRITE_H
#define ST_WRITE_H

#include <stdio.h>

#include "formats.h"
#include "shardtrie_export.h"

typedef int (*st_export_fn)(const struct st_snap *s, const struct st_export_opts *o, FILE *out);

int st_export_folded(const struct st_snap *s, const struct st_export_opts *o, FILE *out);
int st_export_json(const struct st_snap *s, const struct st_export_opts *o, FILE *out);

/* Write s[0..len) as a JSON string body (no quotes) the way Go's
 * encoding/json does: invalid UTF-8 -> \ufffd, <>& and U+2028/9 escaped. */
void st_json_escape(FILE *out, const char *s, size_t len);

/* The valid UTF-8 sequence starting at p (lead byte >= 0x80, not past end):
 * its length (2..4) with the code point in *cp, or 0 when the bytes there
 * are not one (bad lead, truncated, overlong, surrogate, > U+10FFFF). */
size_t st_utf8_seq(const unsigned char *p, const unsigned char *end, unsigned *cp);

/* v in decimal, the bytes fprintf("%" PRIu64) writes, without its format
 * parsing (the per-number cost of the flamebearer levels and json nodes). */
static inline void st_put_u64(FILE *out, uint64_t v)
{
	char b[20];
	size_t i = sizeof(b);
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	fwrite(b + i, 1, sizeof(b) - i, out);
}

/* 0, or -EIO when the stream has an error. */
int st_export_status(FILE *out);

/* o with every field set: o itself, or *def filled with the defaults (o
 * NULL) or with o's fields and the defaults of those its caller's older
 * header did not have (o->size smaller). */
const struct st_export_opts *st_export_opts_full(const struct st_export_opts *o,
						 struct st_export_opts *def);

/*
 * Visit every node depth-first in name order, passing the ';'-joined path
 * from the first frame below the root (bytes, not NUL terminated; the root's
 * path is empty).  Iterative.  Returns 0, -ENOMEM, or the first non-zero
 * return of fn.
 */
typedef int (*st_path_fn)(void *arg, uint32_t node, const char *path, size_t len);
int st_export_walk_paths(const struct st_snap *s, st_path_fn fn, void *arg);

/* ---- export_tree.c: the aligned/reversible tree of the richer writers. */
#include <stdbool.h>
struct st_xnode {
	const char *name;
	size_t len;
	uint32_t parent;       /* UINT32_MAX for the root */
	uint32_t first, nkids; /* kids[first .. first+nkids), by name */
	uint64_t self[2], total[2]; /* [0] = single/before, [1] = after */
};
struct st_xtree {
	struct st_xnode *n;
	size_t count, cap;
	uint32_t *kids;
	uint32_t *ht;
	size_t htcap;
};
int st_xtree_init(struct st_xtree *t);
uint32_t st_xtree_child(struct st_xtree *t, uint32_t parent, const char *name, size_t len);
int st_xtree_add_snap(struct st_xtree *t, const struct st_snap *s, unsigned metric, int side,
		      bool reverse);
int st_xtree_finish(struct st_xtree *t);
/* init + add a (side 0) + add b (side 1, may be NULL) + finish. */
int st_xtree_build(struct st_xtree *t, const struct st_snap *a, const struct st_snap *b,
		   unsigned metric, bool reverse);
void st_xtree_free(struct st_xtree *t);
/* Name -> index in first-seen order. */
struct st_names {
	uint32_t *ht; /* index into name[], UINT32_MAX empty */
	size_t htcap;
	const char **name;
	size_t *len;
	size_t n, cap;
};
int st_names_get(struct st_names *nm, const char *s, size_t len, uint32_t *out);
void st_names_free(struct st_names *nm);
/* The units string of o->metric (o->units wins). */
const char *st_export_units(const struct st_snap *s, const struct st_export_opts *o);

/* Writers over an xtree (diff = two sides). */
int st_export_flamebearer_tree(const struct st_xtree *t, bool diff, const struct st_snap *s,
			       const struct st_export_opts *o, FILE *out);
int st_export_svg_tree(const struct st_xtree *t, bool diff, const struct st_export_opts *o,
		       FILE *out);
int st_export_html_tree(const struct st_xtree *t, bool diff, const struct st_export_opts *o,
			FILE *out);

int st_export_flamebearer(const struct st_snap *s, const struct st_export_opts *o, FILE *out);
int st_export_pprof(const struct st_snap *s, const struct st_export_opts *o, FILE *out);
int st_export_speedscope(const struct st_snap *s, const struct st_export_opts *o, FILE *out);
int st_export_d3(const struct st_snap *s, const struct st_export_opts *o, FILE *out);
int st_export_svg(const struct st_snap *s, const struct st_export_opts *o, FILE *out);
int st_export_html(const struct st_snap *s, const struct st_export_opts *o, FILE *out);

/* The HTML viewer's script and style (export_html_viewer.c). */
extern const char st_html_viewer_js[];
extern const char st_html_viewer_css[];

/* Write s[0..len) escaped for XML/HTML text and attribute values. */
void st_xml_escape(FILE *out, const char *s, size_t len);

#endif
