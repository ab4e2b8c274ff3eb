/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include "export.h"
int st_export_svg_tree(const struct st_xtree *t, bool diff, const struct st_export_opts *o, FILE *out) { return -ENOSYS; }
int st_export_html_tree(const struct st_xtree *t, bool diff, const struct st_export_opts *o, FILE *out) { return -ENOSYS; }
int st_export_svg(const struct st_snap *s, const struct st_export_opts *o, FILE *out) { return -ENOSYS; }
int st_export_html(const struct st_snap *s, const struct st_export_opts *o, FILE *out) { return -ENOSYS; }
void st_xml_escape(FILE *out, const char *s, size_t len) {}
