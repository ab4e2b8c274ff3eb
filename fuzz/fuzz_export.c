/* SPDX-License-Identifier: MIT */
/*
 * fuzz_export.c - random tries through the JSON and folded writers and back.
 *
 * PROPERTY: for a random trie (names of arbitrary bytes, invalid UTF-8 and
 * control characters included, up to 4 metrics, values up to UINT64_MAX):
 *   JSON   parsed back with jansson (a real parser, not ours), the document
 *          is exactly the snapshot: keys n/v/t[/c], n = the name as Go's
 *          encoding/json writes it (each byte of invalid UTF-8 -> U+FFFD),
 *          v = self, t = total, c = the children kept by the pruning rules
 *          (strict `<` min_fraction, the 8-largest fallback at depth <= 1,
 *          recomputed here independently), in name order, "c" omitted when
 *          empty.  Totals above INT64_MAX (jansson's limit) skip this part.
 *   folded stacks strictly increasing byte-wise (Perl sort-keys order), each
 *          line parsed back with st_folded_parse_line(); the trie they make
 *          equals the trie of the snapshot's non-zero self values.
 *   both   a write error (/dev/full) is reported: -ENOSPC, its cause, when the
 *          final flush fails, -EIO when only the stream's error flag is left.
 * Names are made folded-safe before they are ingested: no ';', '\n' or NUL,
 * no leading '#' (a root frame "#" alone is written "# N", which the reader
 * skips as a comment, as inferno does).
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "shardtrie_parse.h"
#include "support/fz.h"

#define NM 4
#define POOL 16
#define DEPTH 8
#define FALLBACK_KEEP 8

static struct st_engine *engine;
static unsigned engine_uses;

/* Reused between inputs (see fuzz_folded.c): an engine destroy costs a
 * 10 ms rcu_barrier(). */
static struct st_engine *get_engine(void)
{
	static const char *const names[] = { "m1", "m2", "m3" };
	return fz_engine_reuse(&engine, &engine_uses, NM, names);
}

static char *export_mem(const struct st_snap *s, int fmt, unsigned metric, double minf,
			size_t *len)
{
	struct st_export_opts o;
	st_export_opts_init(&o);
	o.metric = metric;
	o.min_fraction = minf;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (!f)
		abort();
	int r = st_export(s, fmt, &o, f);
	if (fclose(f) || r)
		fz_fail("st_export(%s) = %d", st_format_name(fmt), r);
	return buf;
}

/* ---------------------------------------------------------------- JSON */

/* Go's encoding/json on a name: valid UTF-8 sequences kept, every byte
 * that does not start one becomes U+FFFD.  Written from the Unicode table of
 * well-formed sequences, not from export.c. */
static size_t go_sanitize(const unsigned char *s, size_t n, unsigned char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		size_t len = 0;
		unsigned lo = 0x80, hi = 0xbf;
		if (c < 0x80)
			len = 1;
		else if (c >= 0xc2 && c <= 0xdf)
			len = 2;
		else if (c == 0xe0)
			len = 3, lo = 0xa0;
		else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
			len = 3;
		else if (c == 0xed)
			len = 3, hi = 0x9f;
		else if (c == 0xf0)
			len = 4, lo = 0x90;
		else if (c >= 0xf1 && c <= 0xf3)
			len = 4;
		else if (c == 0xf4)
			len = 4, hi = 0x8f;
		bool ok = len > 0 && i + len <= n;
		for (size_t k = 1; ok && k < len; k++) {
			unsigned b = s[i + k];
			unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xbf;
			ok = b >= l && b <= h;
		}
		if (ok) {
			memcpy(out + o, s + i, len);
			o += len;
			i += len;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	return o;
}

struct jcheck {
	const struct st_snap *s;
	unsigned m;
	double minf;
	uint64_t root_t;
};

static bool passes(const struct jcheck *c, uint32_t node)
{
	if (c->root_t == 0)
		return true;
	return !((double)st_snap_total(c->s, node, c->m) / (double)c->root_t < c->minf);
}

/* The children of `node` (at `depth`) that the JSON must contain, in name
 * order.  Returns how many were put in keep[]. */
static uint32_t expected_children(const struct jcheck *c, uint32_t node, uint32_t depth,
				  uint32_t *keep)
{
	uint32_t first, n = st_snap_children(c->s, node, &first), k = 0;
	for (uint32_t i = first; i < first + n; i++)
		if (passes(c, i))
			keep[k++] = i;
	if (k || !n || depth > 1)
		return k;
	/* Fallback: the 8 largest totals, ties to the earlier name; selection
	 * by repeated scans (n is small here), then back to name order. */
	bool *taken = calloc(n, sizeof(*taken));
	if (!taken)
		abort();
	for (unsigned r = 0; r < FALLBACK_KEEP && r < n; r++) {
		uint32_t best = UINT32_MAX;
		for (uint32_t i = 0; i < n; i++)
			if (!taken[i] && (best == UINT32_MAX ||
					  st_snap_total(c->s, first + i, c->m) >
						  st_snap_total(c->s, first + best, c->m)))
				best = i;
		taken[best] = true;
	}
	for (uint32_t i = 0; i < n; i++)
		if (taken[i])
			keep[k++] = first + i;
	free(taken);
	return k;
}

static void json_compare(const struct jcheck *c, json_t *j, uint32_t node, uint32_t depth)
{
	if (!json_is_object(j))
		fz_fail("json: node %u is not an object", node);
	json_t *n = json_object_get(j, "n"), *v = json_object_get(j, "v"),
	       *t = json_object_get(j, "t"), *ch = json_object_get(j, "c");
	if (!json_is_string(n) || !json_is_integer(v) || !json_is_integer(t))
		fz_fail("json: node %u lacks n/v/t", node);
	size_t nkeys = json_object_size(j);
	if (nkeys != 3u + (ch != NULL))
		fz_fail("json: node %u has %zu keys", node, nkeys);
	size_t len;
	const char *name = st_snap_name(c->s, node, &len);
	unsigned char *want = malloc(3 * len + 1);
	if (!want)
		abort();
	size_t wlen = go_sanitize((const unsigned char *)name, len, want);
	if (json_string_length(n) != wlen || memcmp(json_string_value(n), want, wlen))
		fz_fail("json: node %u name %.*s, want %.*s", node, (int)json_string_length(n),
			json_string_value(n), (int)wlen, want);
	free(want);
	if ((uint64_t)json_integer_value(v) != st_snap_self(c->s, node, c->m) ||
	    (uint64_t)json_integer_value(t) != st_snap_total(c->s, node, c->m))
		fz_fail("json: node %u v/t %lld/%lld, want %llu/%llu", node,
			(long long)json_integer_value(v), (long long)json_integer_value(t),
			(unsigned long long)st_snap_self(c->s, node, c->m),
			(unsigned long long)st_snap_total(c->s, node, c->m));
	uint32_t first, nch = st_snap_children(c->s, node, &first);
	uint32_t *keep = malloc((nch ? nch : 1) * sizeof(*keep));
	if (!keep)
		abort();
	uint32_t k = expected_children(c, node, depth, keep);
	if (ch && (!json_is_array(ch) || json_array_size(ch) == 0))
		fz_fail("json: node %u has an empty or non-array \"c\"", node);
	if ((ch ? json_array_size(ch) : 0) != k)
		fz_fail("json: node %u (depth %u, min_fraction %g) has %zu children, want %u of %u",
			node, depth, c->minf, ch ? json_array_size(ch) : 0, k, nch);
	for (uint32_t i = 0; i < k; i++)
		json_compare(c, json_array_get(ch, i), keep[i], depth + 1);
	free(keep);
}

static void check_json(const struct st_snap *s, unsigned m, double minf)
{
	size_t len;
	char *text = export_mem(s, ST_FMT_JSON, m, minf, &len);
	json_error_t err;
	json_t *doc = json_loadb(text, len, JSON_ALLOW_NUL, &err);
	if (!doc)
		fz_fail("json does not parse: %s at %d:%d", err.text, err.line, err.column);
	struct jcheck c = { s, m, minf, st_snap_total(s, ST_NODE_ROOT, m) };
	json_compare(&c, doc, ST_NODE_ROOT, 0);
	json_decref(doc);
	free(text);
}

/* ---------------------------------------------------------------- folded */

struct collect {
	const struct st_snap *s;
	struct st_ref *ref;
	unsigned m;
};

/* A name as folded writes it: a line break as the two characters "\n" or
 * "\r" (engine/formats/write/folded.c); a fresh copy (the caller frees it). */
static char *folded_name(const char *p, size_t len, size_t *out_len)
{
	char *q = malloc(2 * len + 1), *d = q;
	if (!q)
		abort();
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n' || p[i] == '\r') {
			*d++ = '\\';
			*d++ = p[i] == '\n' ? 'n' : 'r';
		} else {
			*d++ = p[i];
		}
	}
	*out_len = (size_t)(d - q);
	return q;
}

/* The trie folded can represent: every non-root node's non-zero self. */
static void expected_folded(const struct st_snap *s, unsigned m, struct st_ref *ref)
{
	size_t n = st_snap_node_count(s);
	const char **fr = malloc(n * sizeof(*fr));
	size_t *lens = malloc(n * sizeof(*lens));
	if (!fr || !lens)
		abort();
	for (uint32_t i = 1; i < n; i++) {
		uint64_t v = st_snap_self(s, i, m);
		if (!v)
			continue;
		uint32_t d = st_snap_depth(s, i);
		for (uint32_t x = i, k = d; k-- > 0; x = st_snap_parent(s, x)) {
			size_t l;
			const char *nm = st_snap_name(s, x, &l);
			fr[k] = folded_name(nm, l, &lens[k]);
		}
		if (st_ref_add(ref, fr, lens, d, &v))
			abort();
		for (uint32_t k = 0; k < d; k++)
			free((char *)fr[k]);
	}
	free(fr);
	free(lens);
}

static void check_folded(const struct st_snap *s, unsigned m)
{
	size_t len;
	char *text = export_mem(s, ST_FMT_FOLDED, m, 0, &len);
	struct st_ref *got = st_ref_create(1, 0), *want = st_ref_create(1, 0);
	const char **fr = malloc((len + 2) * sizeof(*fr));
	size_t *lens = malloc((len + 2) * sizeof(*lens));
	if (!got || !want || !fr || !lens)
		abort();
	if (len && text[len - 1] != '\n')
		fz_fail("folded output does not end with a newline");
	const char *p = text, *end = text + len, *prev = NULL;
	size_t prevlen = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)(nl - p);
		/* Ordered by stack (Perl's `sort keys`, formats/write/folded.c), which
		 * is whole-line order unless a frame has a byte below ' '. */
		const char *sp = memrchr(p, ' ', n);
		size_t slen = sp ? (size_t)(sp - p) : n;
		if (prev && fz_name_cmp(prev, prevlen, p, slen) >= 0)
			fz_fail("folded stacks not strictly increasing: %.*s / %.*s", (int)prevlen,
				prev, (int)slen, p);
		size_t depth;
		uint64_t count;
		const char *err = NULL;
		int r = st_folded_parse_line(p, n, fr, lens, len + 2, &depth, &count, &err);
		if (r != 1)
			fz_fail("folded line does not parse back (%d, %s): %.*s", r, err ? err : "",
				(int)n, p);
		if (st_ref_add(got, fr, lens, depth, &count))
			abort();
		prev = p;
		prevlen = slen;
		p = nl + 1;
	}
	expected_folded(s, m, want);
	fz_expect_refs_same("folded output parsed back vs the snapshot's self values", got, want);
	free(fr);
	free(lens);
	st_ref_destroy(got);
	st_ref_destroy(want);
	free(text);
}

static void check_write_error(const struct st_snap *s, int fmt)
{
	FILE *f = fopen("/dev/full", "w");
	if (!f)
		return;
	int r = st_export(s, fmt, NULL, f);
	fclose(f);
	/* An empty folded export writes nothing, so it cannot fail. */
	if (r != -ENOSPC && r != -EIO && !(r == 0 && fmt == ST_FMT_FOLDED))
		fz_fail("st_export(%s) to /dev/full = %d, want -ENOSPC or -EIO", st_format_name(fmt), r);
}

/* ---------------------------------------------------------------- target */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	uint8_t h = fz_u8(&in), hf = fz_u8(&in);
	unsigned m = h % NM;
	static const double fractions[] = { 0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.9, 1.0 };
	double minf = fractions[hf & 7];
	if (hf & 8) /* any fraction, including odd ones */
		minf = (double)(hf >> 4) / 15.0;

	/* Name pool: bytes from the input, made folded-safe. */
	char names[POOL][16];
	size_t nlens[POOL];
	size_t npool = 1 + fz_u8(&in) % POOL;
	for (size_t i = 0; i < npool; i++) {
		const uint8_t *b;
		nlens[i] = fz_bytes(&in, &b, sizeof(names[i]));
		memcpy(names[i], b, nlens[i]);
		for (size_t k = 0; k < nlens[i]; k++) {
			char *c = &names[i][k];
			*c = *c == ';' ? ':' : *c == '\n' ? '_' : *c == '\0' ? '@' : *c;
		}
		/* A first frame "#" alone would be written "# N", which the
		 * reader (like inferno) skips as a comment. */
		if (nlens[i] && names[i][0] == '#')
			names[i][0] = '%';
	}

	struct st_engine *e = get_engine();
	struct st_writer *w = st_writer_open(e);
	if (!w)
		fz_fail("st_writer_open");
	while (fz_more(&in)) {
		uint8_t d = fz_u8(&in) % (DEPTH + 1);
		const char *fr[DEPTH];
		size_t lens[DEPTH];
		for (uint8_t k = 0; k < d; k++) {
			size_t idx = fz_u8(&in) % npool;
			fr[k] = names[idx];
			lens[k] = nlens[idx];
			if (k == 0 && !lens[0]) { /* " 5" is no folded line */
				fr[0] = "root";
				lens[0] = 4;
			}
		}
		uint64_t v[NM];
		for (unsigned k = 0; k < NM; k++)
			v[k] = (h & 0x80) ? fz_value(&in) : fz_u16(&in);
		if (st_writer_ingest_strs(w, fr, lens, d, v))
			fz_fail("ingest failed");
	}
	st_writer_close(w);
	st_flush(e);
	struct st_snap *s = st_snap_acquire(e);

	bool fits = true; /* jansson's integers are int64 */
	for (uint32_t i = 0; i < st_snap_node_count(s); i++)
		fits &= st_snap_total(s, i, m) <= INT64_MAX;
	if (fits) {
		check_json(s, m, 0);
		if (minf > 0)
			check_json(s, m, minf);
	}
	check_folded(s, m);
	if ((h & 0x70) == 0x70) {
		check_write_error(s, ST_FMT_JSON);
		check_write_error(s, ST_FMT_FOLDED);
	}
	st_snap_release(s);
	return 0;
}
