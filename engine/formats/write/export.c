/* SPDX-License-Identifier: MIT */
/*
 * export.c - the format table and what every writer shares.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "write.h"

static const struct {
	const char *name;
	st_export_fn fn;
} formats[ST_FMT_COUNT_] = {
	[ST_FMT_FOLDED] = { "folded", st_export_folded },
	[ST_FMT_JSON] = { "json", st_export_json },
	[ST_FMT_FLAMEBEARER] = { "flamebearer", st_export_flamebearer },
	[ST_FMT_PPROF] = { "pprof", st_export_pprof },
	[ST_FMT_SPEEDSCOPE] = { "speedscope", st_export_speedscope },
	[ST_FMT_D3] = { "d3", st_export_d3 },
	[ST_FMT_SVG] = { "svg", st_export_svg },
	[ST_FMT_HTML] = { "html", st_export_html },
};

void st_export_opts_init(struct st_export_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
	o->max_nodes = -1;
	o->width = 1200;
	o->sample_rate = 100;
}

int st_format_from_name(const char *name)
{
	for (int i = 0; i < ST_FMT_COUNT_; i++)
		if (formats[i].name && strcmp(formats[i].name, name) == 0)
			return i;
	return -ENOENT;
}

const char *st_format_name(int fmt)
{
	return fmt >= 0 && fmt < ST_FMT_COUNT_ ? formats[fmt].name : NULL;
}

const struct st_export_opts *st_export_opts_full(const struct st_export_opts *o,
						 struct st_export_opts *def)
{
	if (o && o->size >= sizeof(*def))
		return o;
	st_export_opts_init(def);
	if (o) {
		/* Built against an older header: newer fields get defaults. */
		memcpy(def, o, o->size > sizeof(size_t) ? o->size : sizeof(size_t));
		def->size = sizeof(*def);
	}
	return def;
}

int st_export(const struct st_snap *s, int fmt, const struct st_export_opts *o, FILE *out)
{
	struct st_export_opts def;
	if (fmt < 0 || fmt >= ST_FMT_COUNT_ || !formats[fmt].fn)
		return -EINVAL;
	o = st_export_opts_full(o, &def);
	if (o->metric >= st_snap_nmetrics(s))
		return -EINVAL;
	int r = formats[fmt].fn(s, o, out);
	return r ? r : st_export_status(out);
}

int st_export_status(FILE *out)
{
	/* A failing fflush leaves the cause in errno (ENOSPC, EFBIG, EPIPE...);
	 * the error flag alone, from an earlier failed write, says only EIO. */
	errno = 0;
	if (fflush(out))
		return errno ? -errno : -EIO;
	return ferror(out) ? -EIO : 0;
}

void st_json_escape(FILE *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		unsigned c = *p;
		if (c < 0x80) {
			if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
				putc((int)c, out);
			} else if (c == '"' || c == '\\') {
				putc('\\', out);
				putc((int)c, out);
			} else if (c == '\n') {
				fputs("\\n", out);
			} else if (c == '\r') {
				fputs("\\r", out);
			} else if (c == '\t') {
				fputs("\\t", out);
			} else if (c == '\b') {
				fputs("\\b", out);
			} else if (c == '\f') {
				fputs("\\f", out);
			} else {
				fputs("\\u00", out);
				putc(hex[c >> 4], out);
				putc(hex[c & 15], out);
			}
			p++;
			continue;
		}
		/* Anything that is not valid UTF-8 is one U+FFFD per bad byte,
		 * as Go does. */
		unsigned cp;
		size_t n = st_utf8_seq(p, end, &cp);
		if (!n) {
			fputs("\\ufffd", out);
			p++;
			continue;
		}
		if (cp == 0x2028 || cp == 0x2029)
			fprintf(out, "\\u%04x", cp);
		else
			fwrite(p, 1, n, out);
		p += n;
	}
}

size_t st_utf8_seq(const unsigned char *p, const unsigned char *end, unsigned *cp)
{
	unsigned c = *p, need, v;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		v = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		v = c & 0x07;
	} else {
		return 0;
	}
	if ((size_t)(end - p) <= need)
		return 0;
	for (unsigned i = 1; i <= need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates, beyond U+10FFFF. */
	if ((need == 2 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) ||
	    (need == 3 && (v < 0x10000 || v > 0x10ffff)))
		return 0;
	*cp = v;
	return need + 1;
}

int st_export_walk_paths(const struct st_snap *s, st_path_fn fn, void *arg)
{
	/* Explicit stack of (node, path length before it): no recursion. */
	struct ent {
		uint32_t node;
		size_t plen;
		bool sep; /* below a frame, not the root: ';' before the name */
	};
	size_t scap = 1024, pcap = 4096, sp = 0;
	struct ent *stack = st_malloc(scap * sizeof(*stack));
	char *path = st_malloc(pcap);
	int rc = 0;
	if (!stack || !path) {
		rc = -ENOMEM;
		goto out;
	}
	stack[sp++] = (struct ent){ ST_NODE_ROOT, 0, false };
	while (sp) {
		struct ent e = stack[--sp];
		size_t plen = e.plen;
		if (e.node != ST_NODE_ROOT) {
			size_t nlen;
			const char *name = st_snap_name(s, e.node, &nlen);
			if (st_grow(&path, &pcap, plen + 1 + nlen, 1, 0)) {
				rc = -ENOMEM;
				goto out;
			}
			if (e.sep)
				path[plen++] = ';';
			memcpy(path + plen, name, nlen);
			plen += nlen;
		}
		rc = fn(arg, e.node, path, plen);
		if (rc)
			goto out;
		uint32_t first, n = st_snap_children(s, e.node, &first);
		if (st_grow(&stack, &scap, sp + n, sizeof(*stack), 0)) {
			rc = -ENOMEM;
			goto out;
		}
		/* Push in reverse so children are visited in name order. */
		for (uint32_t i = n; i-- > 0;)
			stack[sp++] = (struct ent){ first + i, plen, e.node != ST_NODE_ROOT };
	}
out:
	st_free(stack);
	st_free(path);
	return rc;
}
