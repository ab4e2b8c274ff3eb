/* SPDX-License-Identifier: MIT */
/*
 * pprof.c - gzip-compressed perftools.profiles.Profile (profile.proto),
 * what `go tool pprof`, Pyroscope and Parca read.  Encoded by hand: the
 * message is small and fixed, a generated codec would be more code.
 *
 *   Profile { sample_type=1 [ValueType{type=1,unit=2}] one per metric,
 *             sample=2 [Sample{location_id=1 packed LEAF FIRST,
 *                              value=2 packed, one per metric}],
 *             location=4 [Location{id=1, line=4 [Line{function_id=1}]}],
 *             function=5 [Function{id=1, name=2}],
 *             string_table=6 ("" first), duration_nanos=10,
 *             period_type=11, period=12, default_sample_type=14 }
 *
 * 1. One Function and one Location per distinct frame (same id for both,
 *    1-based, in first-seen DFS order); a frame's id is its interned id's.
 * 2. One Sample per trie node with a non-zero self value in any metric;
 *    its location ids are the node's path, leaf first.  A value above
 *    INT64_MAX (pprof's values are int64) is written as INT64_MAX and
 *    counted in *o->clamped.
 * 3. Names are shown exactly as they are: a Function has a name and NO
 *    system_name.  pprof's symbolizer "demangles" every Function whose
 *    name is empty or equal to its system_name (internal/symbolizer,
 *    demangleSingleFunction), and a name it cannot demangle but that looks
 *    like demangled C++ ("::", '<', '>', '[' or ']' anywhere) loses every
 *    (...) and <...> group: std::vector<int>::push_back(int const&) became
 *    std::vector::push_back, <script>alert(1)</script> became "alert".
 *    A name that differs from system_name counts as demangled already and
 *    is left alone, with -symbolize=demangle=... too (force mode copies
 *    system_name over name only when system_name is not empty).  We have
 *    no mangled form, no file and no line to give, so none are written.
 * 4. Every string is valid UTF-8: proto3 `string` fields must be, and
 *    readers that check (protobuf-go, Grafana Pyroscope's ingest) reject the
 *    whole profile otherwise.  A byte that is not part of a valid UTF-8
 *    sequence becomes U+FFFD, one per byte, as in our JSON formats.
 * 5. Sample types are in metric order, each from its metric (a metric
 *    "count" is pprof's "samples"/"count"); o->metric's is also the
 *    period_type and default_sample_type.  For perf input (o->event) whose
 *    header carried periods, o->metric's values are periods: "cpu" in
 *    "nanoseconds" for the clock events (cpu-clock, task-clock), else the
 *    event's own count (type = event name, unit "count"); without periods
 *    every sample counts 1 ("samples"/"count").  o->units, when given,
 *    replaces the unit; a count of samples given a time unit becomes
 *    "cpu".  period is o->period for a clock event, 1 for a count of
 *    samples, left out otherwise; duration_nanos is o->duration_ns.
 */
#include <errno.h>
#include <stdlib.h>

#include <zlib.h>

#include "write.h"

struct pb {
	uint8_t *p;
	size_t n, cap;
	int err;
};

static void pb_reserve(struct pb *b, size_t more)
{
	if (b->err || b->n + more <= b->cap)
		return;
	if (st_grow(&b->p, &b->cap, b->n + more, 1, 4096))
		b->err = -ENOMEM;
}

static void pb_varint(struct pb *b, uint64_t v)
{
	pb_reserve(b, 10);
	if (b->err)
		return;
	while (v >= 0x80) {
		b->p[b->n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b->p[b->n++] = (uint8_t)v;
}

static unsigned varint_len(uint64_t v)
{
	unsigned n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static void pb_key(struct pb *b, unsigned field, unsigned wt) { pb_varint(b, (uint64_t)field << 3 | wt); }

static void pb_uint(struct pb *b, unsigned field, uint64_t v)
{
	if (!v)
		return; /* proto3 default */
	pb_key(b, field, 0);
	pb_varint(b, v);
}

static void pb_bytes(struct pb *b, unsigned field, const void *s, size_t len)
{
	pb_key(b, field, 2);
	pb_varint(b, len);
	pb_reserve(b, len);
	if (b->err)
		return;
	memcpy(b->p + b->n, s, len);
	b->n += len;
}

/* A string field, made valid UTF-8 (rule 4): each bad byte -> U+FFFD. */
static void pb_str(struct pb *b, unsigned field, const char *s, size_t len)
{
	static const char rep[] = "\xef\xbf\xbd";
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	size_t out = 0;
	unsigned cp;
	for (const unsigned char *q = p; q < end;) {
		size_t n = *q < 0x80 ? 1 : st_utf8_seq(q, end, &cp);
		out += n ? n : 3;
		q += n ? n : 1;
	}
	if (out == len) {
		pb_bytes(b, field, s, len);
		return;
	}
	pb_key(b, field, 2);
	pb_varint(b, out);
	pb_reserve(b, out);
	if (b->err)
		return;
	while (p < end) {
		size_t n = *p < 0x80 ? 1 : st_utf8_seq(p, end, &cp);
		if (n) {
			memcpy(b->p + b->n, p, n);
		} else {
			memcpy(b->p + b->n, rep, 3);
			n = 1;
			b->n += 2;
		}
		b->n += n;
		p += n;
	}
}

/* The sample type of metric m (rule 5); *period: the Profile's period
 * when m is the one written (0 = leave it out). */
static void value_type(const struct st_snap *s, const struct st_export_opts *o, unsigned m,
		       const char **type, size_t *tlen, const char **unit, uint64_t *period)
{
	const struct st_metric_desc *d = st_snap_metric(s, m);
	*type = d && d->name ? d->name : "samples";
	*unit = d && d->unit ? d->unit : "count";
	if (strcmp(*type, "count") == 0)
		*type = "samples";
	*tlen = strlen(*type);
	*period = 0;
	if (m != o->metric)
		goto unit;
	/* perf input: what the periods the reader summed are. */
	bool count = strcmp(*unit, "samples") == 0 || strcmp(*unit, "count") == 0;
	if (o->event && o->event[0] && count && o->period) {
		size_t n = strcspn(o->event, ":");
		if ((n == 9 && memcmp(o->event, "cpu-clock", 9) == 0) ||
		    (n == 10 && memcmp(o->event, "task-clock", 10) == 0)) {
			*type = "cpu";
			*tlen = 3;
			*unit = "nanoseconds";
			*period = o->period;
		} else {
			*type = o->event;
			*tlen = n;
			*unit = "count";
		}
	} else if (count && strcmp(*type, "samples") == 0) {
		*period = 1; /* each sample counts one */
	}
	if (o->units && o->units[0])
		*unit = o->units;
	/* A count of samples said to be time (--units, or perf clock periods
	 * given as units): CPU time, as pprof names it. */
	if (strcmp(*type, "samples") == 0 &&
	    (strcmp(*unit, "nanoseconds") == 0 || strcmp(*unit, "microseconds") == 0 ||
	     strcmp(*unit, "milliseconds") == 0 || strcmp(*unit, "seconds") == 0)) {
		*type = "cpu";
		*tlen = 3;
		if (*period == 1)
			*period = 0;
	}
unit:
	/* pprof's own name for a plain sample count. */
	if (strcmp(*unit, "samples") == 0)
		*unit = "count";
}

/* A packed repeated field of varints. */
static void pb_packed(struct pb *b, unsigned field, const uint64_t *v, size_t n)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += varint_len(v[i]);
	pb_key(b, field, 2);
	pb_varint(b, len);
	for (size_t i = 0; i < n; i++)
		pb_varint(b, v[i]);
}

static void pb_value_type(struct pb *b, unsigned field, uint64_t type, uint64_t unit)
{
	pb_key(b, field, 2);
	pb_varint(b, (type ? 1 + varint_len(type) : 0) + (unit ? 1 + varint_len(unit) : 0));
	pb_uint(b, 1, type);
	pb_uint(b, 2, unit);
}

static int gzip_out(const uint8_t *p, size_t n, FILE *out)
{
	z_stream z = { 0 };
	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	uint8_t buf[1 << 16];
	z.next_in = (uint8_t *)p;
	int rc = 0, zr;
	do {
		size_t chunk = n - (size_t)(z.next_in - p);
		if (chunk > (1u << 30))
			chunk = 1u << 30;
		z.avail_in = (uInt)chunk;
		bool last = (size_t)(z.next_in - p) + chunk == n;
		do {
			z.next_out = buf;
			z.avail_out = sizeof(buf);
			zr = deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
			size_t have = sizeof(buf) - z.avail_out;
			if (have && fwrite(buf, 1, have, out) != have)
				rc = -EIO;
		} while (z.avail_out == 0 && !rc);
		if (last)
			break;
	} while (!rc);
	if (!rc && zr != Z_STREAM_END)
		rc = -EIO;
	deflateEnd(&z);
	return rc;
}

int st_export_pprof(const struct st_snap *s, const struct st_export_opts *o, FILE *out)
{
	struct st_engine *e = st_snap_engine(s);
	unsigned nm = st_snap_nmetrics(s);
	size_t nn = st_snap_node_count(s);
	size_t nframes = st_frame_count(e);
	uint32_t *loc = st_calloc(nframes + 1, sizeof(*loc)); /* frame id -> location id */
	uint32_t *order = st_malloc((nframes + 1) * sizeof(*order)); /* location id-1 -> frame */
	uint32_t *stk = st_malloc(nn * sizeof(*stk));
	uint64_t *path = st_malloc((nn + 1) * sizeof(*path));
	uint32_t *depth = st_malloc(nn * sizeof(*depth));
	struct pb b = { 0 }, sub = { 0 };
	uint32_t nloc = 0;
	uint64_t clamped = 0;
	int rc = 0;
	if (!loc || !order || !stk || !path || !depth) {
		rc = -ENOMEM;
		goto out;
	}
	/* String table: "", then per metric type and unit, then frames. */
	uint64_t nstr = 1;
	for (unsigned m = 0; m < nm; m++) {
		pb_value_type(&b, 1, nstr, nstr + 1);
		nstr += 2;
	}
	/* Samples, DFS; locations are numbered as frames are first met. */
	size_t sp = 0;
	stk[sp++] = ST_NODE_ROOT;
	depth[ST_NODE_ROOT] = 0;
	uint64_t vals[ST_MAX_METRICS];
	while (sp && !b.err && !sub.err) {
		uint32_t u = stk[--sp];
		uint32_t d = depth[u];
		if (u != ST_NODE_ROOT) {
			uint32_t f = st_snap_frame(s, u);
			if (f >= nframes) {
				rc = -EINVAL;
				goto out;
			}
			if (!loc[f]) {
				loc[f] = ++nloc;
				order[nloc - 1] = f;
			}
			path[d - 1] = loc[f];
			bool any = false;
			for (unsigned m = 0; m < nm; m++) {
				vals[m] = st_snap_self(s, u, m);
				if (vals[m] > INT64_MAX) {
					vals[m] = INT64_MAX;
					clamped++;
				}
				any |= vals[m] != 0;
			}
			if (any) {
				sub.n = 0;
				/* leaf first */
				size_t len = 0;
				for (uint32_t k = d; k-- > 0;)
					len += varint_len(path[k]);
				pb_key(&sub, 1, 2);
				pb_varint(&sub, len);
				for (uint32_t k = d; k-- > 0;)
					pb_varint(&sub, path[k]);
				pb_packed(&sub, 2, vals, nm);
				if (!sub.err)
					pb_bytes(&b, 2, sub.p, sub.n);
			}
		}
		uint32_t first, n = st_snap_children(s, u, &first);
		for (uint32_t i = n; i-- > 0;) {
			depth[first + i] = d + 1;
			stk[sp++] = first + i;
		}
	}
	/* Locations and functions: id i uses string nstr + i - 1. */
	for (uint32_t i = 1; i <= nloc && !b.err; i++) {
		sub.n = 0;
		pb_uint(&sub, 1, i);
		pb_key(&sub, 4, 2);
		pb_varint(&sub, 1 + varint_len(i));
		pb_uint(&sub, 1, i);
		if (!sub.err)
			pb_bytes(&b, 4, sub.p, sub.n);
	}
	for (uint32_t i = 1; i <= nloc && !b.err; i++) {
		sub.n = 0;
		pb_uint(&sub, 1, i);
		pb_uint(&sub, 2, nstr + i - 1); /* name; no system_name: rule 3 */
		if (!sub.err)
			pb_bytes(&b, 5, sub.p, sub.n);
	}
	pb_bytes(&b, 6, "", 0);
	uint64_t period = 0;
	for (unsigned m = 0; m < nm; m++) {
		const char *type, *unit;
		size_t tlen;
		uint64_t p;
		value_type(s, o, m, &type, &tlen, &unit, &p);
		if (m == o->metric)
			period = p;
		pb_str(&b, 6, type, tlen);
		pb_str(&b, 6, unit, strlen(unit));
	}
	for (uint32_t i = 1; i <= nloc && !b.err; i++) {
		size_t len;
		const char *name = st_frame_name(e, order[i - 1], &len);
		pb_str(&b, 6, name ? name : "", name ? len : 0);
	}
	pb_uint(&b, 10, o->duration_ns);
	pb_value_type(&b, 11, 1 + 2 * o->metric, 2 + 2 * o->metric);
	pb_uint(&b, 12, period);
	pb_uint(&b, 14, 1 + 2 * o->metric); /* default_sample_type */
	if (b.err || sub.err) {
		rc = -ENOMEM;
		goto out;
	}
	rc = gzip_out(b.p, b.n, out);
	if (o->clamped)
		*o->clamped += clamped;
out:
	st_free(loc);
	st_free(order);
	st_free(stk);
	st_free(path);
	st_free(depth);
	st_free(b.p);
	st_free(sub.p);
	return rc;
}
