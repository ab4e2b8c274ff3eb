/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include "export.h"
int st_export_pprof(const struct st_snap *s, const struct st_export_opts *o, FILE *out) { return -ENOSYS; }
