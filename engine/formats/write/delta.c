/* SPDX-License-Identifier: MIT */
/*
 * delta.c - st_export_delta(): what was ingested between two snapshots of
 * one engine, written as any export format (the live server's window and
 * /debug/pprof/profile, and each interval a pusher sends).
 *
 * The window is st_snap_delta(): a snapshot of its own holding, for every
 * node of `later` that gained something, its growth in self (later minus
 * earlier, never wrapped: a sum that stuck at UINT64_MAX gains 0), with
 * every metric of the source or only the one asked for (then the window's
 * metric 0, named and united as that one).  Different generations (an
 * st_reset() came between them) make the whole of `later` the window: what
 * came after the reset.  It is written by st_export() like every other
 * profile (units, escaping, sample types), so the window's bytes are those
 * of a profile that holds exactly the differences.
 */
#include <errno.h>

#include "write.h"

int st_export_delta(const struct st_snap *earlier, const struct st_snap *later, int metric,
		    int fmt, const struct st_export_opts *o, FILE *out, uint64_t *total)
{
	if (total)
		*total = 0;
	if (!later || !out)
		return -EINVAL;
	unsigned nsrc = st_snap_nmetrics(later);
	struct st_export_opts eo;
	if (o)
		eo = *o;
	else
		st_export_opts_init(&eo);
	if (metric < -1 || (metric >= 0 && (unsigned)metric >= nsrc) ||
	    (metric < 0 && eo.metric >= nsrc))
		return -EINVAL;
	if (metric >= 0)
		eo.metric = 0;
	struct st_snap *d = st_snap_delta(earlier, later, metric);
	if (!d)
		return errno ? -errno : -ENOMEM;
	int r = st_export(d, fmt, &eo, out);
	if (!r && total)
		*total = st_snap_total(d, ST_NODE_ROOT, eo.metric);
	st_snap_release(d);
	return r;
}
