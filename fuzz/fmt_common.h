/* SPDX-License-Identifier: MIT */
/*
 * fmt_common.h - shared body of the per-writer fuzz targets
 * (fuzz_fmt_<writer>.c): a random trie, names of arbitrary bytes, goes
 * through one writer (single and, where it exists, diff form).
 *
 * PROPERTY: no crash or out-of-bounds access; JSON writers produce a
 * document jansson parses (flamebearer: numTicks = root total, names[0] =
 * "total"); pprof is a gzip stream zlib inflates completely; SVG/HTML hold
 * exactly their own <script> elements, whatever the names (no injection).
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "shardtrie.h"
#include "support/fz.h"

static struct st_engine *fmt_engine(struct fz_in *in)
{
	struct st_options o;
	st_options_init(&o);
	o.merge_interval_ms = 0;
	o.nshards = 1;
	struct st_engine *e = st_engine_create(&o);
	if (!e)
		fz_fail("engine: %d", errno);
	struct st_writer *w = st_writer_open(e);
	const char *pool[12];
	size_t plen[12];
	for (int i = 0; i < 12; i++) {
		const uint8_t *b;
		plen[i] = fz_bytes(in, &b, 12);
		pool[i] = (const char *)b;
		if (!plen[i]) {
			pool[i] = "<script>x</script>";
			plen[i] = strlen(pool[i]);
		}
	}
	for (int k = 0; k < 64 && fz_more(in); k++) {
		const char *fr[8];
		size_t fl[8];
		size_t d = 1 + fz_u8(in) % 8;
		for (size_t j = 0; j < d; j++) {
			unsigned p = fz_u8(in) % 12;
			fr[j] = pool[p];
			fl[j] = plen[p];
		}
		uint64_t v = 1 + fz_u8(in);
		st_writer_ingest_strs(w, fr, fl, d, &v);
	}
	st_writer_close(w);
	st_flush(e);
	return e;
}

static size_t count(const char *s, size_t n, const char *needle)
{
	size_t c = 0, k = strlen(needle);
	for (const char *p = s; (p = memmem(p, n - (size_t)(p - s), needle, k)); p += k)
		c++;
	return c;
}

static void fmt_check(int fmt, bool diff, const char *buf, size_t len, const struct st_snap *s)
{
	switch (fmt) {
	case ST_FMT_FLAMEBEARER:
	case ST_FMT_SPEEDSCOPE:
	case ST_FMT_D3: {
		json_error_t err;
		json_t *j = json_loadb(buf, len, JSON_ALLOW_NUL, &err);
		if (!j)
			fz_fail("%s: invalid JSON: %s", st_format_name(fmt), err.text);
		if (fmt == ST_FMT_FLAMEBEARER) {
			json_t *fb = json_object_get(j, "flamebearer");
			const char *n0 = json_string_value(json_array_get(json_object_get(fb, "names"), 0));
			if (!n0 || strcmp(n0, "total"))
				fz_fail("names[0] is not total");
			if (!diff && (uint64_t)json_integer_value(json_object_get(fb, "numTicks")) !=
					     st_snap_total(s, ST_NODE_ROOT, 0))
				fz_fail("numTicks != root total");
		}
		json_decref(j);
		break;
	}
	case ST_FMT_PPROF: {
		z_stream z = { 0 };
		uint8_t out[4096];
		if (inflateInit2(&z, 15 + 16) != Z_OK)
			abort();
		z.next_in = (uint8_t *)buf;
		z.avail_in = (uInt)len;
		int r;
		do {
			z.next_out = out;
			z.avail_out = sizeof(out);
			r = inflate(&z, Z_NO_FLUSH);
		} while (r == Z_OK);
		inflateEnd(&z);
		if (r != Z_STREAM_END)
			fz_fail("pprof: not a complete gzip stream (%d)", r);
		break;
	}
	case ST_FMT_SVG:
		if (count(buf, len, "<script") != 1 || count(buf, len, "</script") != 1)
			fz_fail("svg: script elements injected");
		break;
	case ST_FMT_HTML:
		if (count(buf, len, "<script") != 2 || count(buf, len, "</script") != 2)
			fz_fail("html: script elements injected");
		break;
	}
}

static int fmt_fuzz(const uint8_t *data, size_t size, int fmt)
{
	struct fz_in in = { data, size };
	struct st_engine *a = fmt_engine(&in), *b = fmt_engine(&in);
	struct st_snap *sa = st_snap_acquire(a), *sb = st_snap_acquire(b);
	struct st_export_opts o;
	st_export_opts_init(&o);
	o.max_nodes = (int64_t)(size % 7) - 1;
	o.minwidth = (double)(size % 3);
	o.inverted = size & 1;
	o.reverse = (size >> 1) & 1;
	for (int diff = 0; diff < 2; diff++) {
		if (diff && fmt != ST_FMT_FLAMEBEARER && fmt != ST_FMT_SVG && fmt != ST_FMT_HTML)
			break;
		char *buf = NULL;
		size_t len;
		FILE *f = open_memstream(&buf, &len);
		int r = diff ? st_export_diff(sa, sb, fmt, &o, f) : st_export(sa, fmt, &o, f);
		fclose(f);
		if (r)
			fz_fail("export %s: %d", st_format_name(fmt), r);
		fmt_check(fmt, diff, buf, len, sa);
		free(buf);
	}
	st_snap_release(sa);
	st_snap_release(sb);
	st_engine_destroy(a);
	st_engine_destroy(b);
	return 0;
}
