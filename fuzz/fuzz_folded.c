/* SPDX-License-Identifier: MIT */
/*
 * fuzz_folded.c - any bytes through the folded ("collapsed") parser.
 *
 * PROPERTY: st_folded_ingest() on any input neither crashes nor reads
 * outside its buffer (the input sits in an allocation of exactly its size
 * under ASan), and it agrees with an independent, deliberately plain parse
 * of the documented grammar written here (engine/formats/read/folded.c's header comment
 * and shardtrie_parse.h):
 *   - the same number of lines, ingested samples, skipped and malformed
 *     lines, with every malformed line reported once, in order;
 *   - st_folded_parse_line() gives the same verdict, frames and count for
 *     every line;
 *   - the engine's trie after a flush equals the reference trie fed with the
 *     accepted lines of the plain parse (so the totals of accepted lines,
 *     per stack, are equal).
 *
 * The engine is reused between inputs (st_reset() starts each one on an
 * empty baseline) because destroying an engine costs a 10 ms rcu_barrier();
 * it is recreated every FZ_ENGINE_REUSE inputs so interned names stay bounded.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shardtrie_parse.h"
#include "support/fz.h"

#define NM 2

/* ------------------------------------------- the plain parse, independent */

enum verdict { V_SKIP, V_BAD, V_OK };

struct plain {
	enum verdict v;
	uint64_t count;
	size_t nframes;
	const char *stack; /* stack bytes, frames split on ';' */
	size_t slen;
};

static bool is_ws(char c) { return c == ' ' || c == '\t'; }

/* One line (without '\n') by the rules as written, nothing shared with
 * engine/formats/read/folded.c. */
static struct plain plain_line(const char *l, size_t n)
{
	struct plain r = { V_BAD, 0, 0, NULL, 0 };
	if (n > ST_MAX_LINE)
		return r; /* longer than the reader buffers */
	if (n > 0 && l[n - 1] == '\r')
		n--;
	bool all_ws = true;
	for (size_t i = 0; i < n; i++)
		if (!is_ws(l[i]))
			all_ws = false;
	if (n == 0 || all_ws || (n >= 2 && l[0] == '#' && l[1] == ' ')) {
		r.v = V_SKIP;
		return r;
	}
	for (size_t i = 0; i < n; i++)
		if (l[i] == '\0')
			return r;
	/* The count is what follows the last space or tab. */
	size_t last = n;
	for (size_t i = 0; i < n; i++)
		if (is_ws(l[i]))
			last = i;
	if (last == n || last == n - 1)
		return r; /* no whitespace, or nothing after the last one */
	uint64_t v = 0;
	for (size_t i = last + 1; i < n; i++) {
		if (l[i] < '0' || l[i] > '9')
			return r;
		uint64_t d = (uint64_t)(l[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return r; /* does not fit 64 bits */
		v = v * 10 + d;
	}
	if (last == 0)
		return r; /* empty stack */
	size_t frames = 1;
	for (size_t i = 0; i < last; i++)
		frames += l[i] == ';';
	if (frames > ST_MAX_DEPTH)
		return r;
	r.v = v ? V_OK : V_SKIP;
	r.count = v;
	r.nframes = frames;
	r.stack = l;
	r.slen = last;
	return r;
}

/* ------------------------------------------------------------ the target */

struct errs {
	uint64_t n, last_line;
};

static void on_err(void *arg, uint64_t line, const char *msg)
{
	struct errs *e = arg;
	if (!msg || !*msg || line <= e->last_line)
		fz_fail("error callback: line %llu after %llu, message %s",
			(unsigned long long)line, (unsigned long long)e->last_line, msg ? msg : "NULL");
	e->last_line = line;
	e->n++;
}

static struct st_engine *engine;
static unsigned engine_uses;

static struct st_engine *get_engine(void)
{
	static const char *const names[] = { "other" };
	return fz_engine_reuse(&engine, &engine_uses, NM, names);
}

static void check_line_api(const char *l, size_t n, const struct plain *want,
			   const char **frames, size_t *lens, size_t cap)
{
	size_t depth = 0;
	uint64_t count = 0;
	const char *err = NULL;
	int r = st_folded_parse_line(l, n, frames, lens, cap, &depth, &count, &err);
	int w = want->v == V_OK ? 1 : want->v == V_SKIP ? 0 : -1;
	if (r != w)
		fz_fail("st_folded_parse_line = %d, plain parse says %d for %.*s", r, w,
			(int)(n > 120 ? 120 : n), l);
	if (r < 0 && (!err || !*err))
		fz_fail("malformed line without a message");
	if (r != 1)
		return;
	if (count != want->count || depth != want->nframes)
		fz_fail("line %.*s: count %llu depth %zu, plain %llu depth %zu",
			(int)(n > 120 ? 120 : n), l, (unsigned long long)count, depth,
			(unsigned long long)want->count, want->nframes);
	const char *p = want->stack, *end = want->stack + want->slen;
	for (size_t i = 0; i < depth; i++) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		size_t len = (size_t)((semi ? semi : end) - p);
		if (frames[i] != p || lens[i] != len)
			fz_fail("frame %zu differs from the plain split", i);
		p += len + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy: a read past the end trips ASan even when
	 * libFuzzer's own buffer would have slack. */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	unsigned metric = size & 1; /* either metric, the other stays 0 */

	struct st_engine *e = get_engine();
	struct st_ref *ref = st_ref_create(NM, 0);
	struct st_writer *w = st_writer_open(e);
	if (!ref || !w)
		fz_fail("setup");

	struct st_parse_stats st = { 0 };
	struct errs errs = { 0, 0 };
	if (st_folded_ingest(w, NM, metric, buf, size, on_err, &errs, &st))
		fz_fail("st_folded_ingest failed");

	/* The plain parse, line by line, and the line API on the same lines. */
	uint64_t lines = 0, ok = 0, skip = 0, bad = 0;
	size_t fcap = size + 2;
	const char **frames = malloc(fcap * sizeof(*frames));
	size_t *lens = malloc(fcap * sizeof(*lens));
	const char **fr = malloc(fcap * sizeof(*fr));
	if (!frames || !lens || !fr)
		abort();
	const char *p = buf, *end = buf + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		lines++;
		struct plain r = plain_line(p, n);
		if (n <= ST_MAX_LINE)
			check_line_api(p, n, &r, fr, lens, fcap < ST_MAX_DEPTH ? fcap : ST_MAX_DEPTH);
		if (r.v == V_OK) {
			ok++;
			size_t d = 0;
			const char *q = r.stack, *send = r.stack + r.slen;
			for (;;) {
				const char *semi = memchr(q, ';', (size_t)(send - q));
				frames[d] = q;
				lens[d] = (size_t)((semi ? semi : send) - q);
				d++;
				if (!semi)
					break;
				q = semi + 1;
			}
			uint64_t v[NM] = { 0 };
			v[metric] = r.count;
			if (st_ref_add(ref, frames, lens, d, v))
				fz_fail("st_ref_add");
		} else if (r.v == V_SKIP) {
			skip++;
		} else {
			bad++;
		}
		p = nl ? nl + 1 : end;
	}
	if (st.lines != lines || st.samples != ok || st.skipped != skip || st.malformed != bad ||
	    st.dropped || errs.n != bad)
		fz_fail("stats: lines %llu/%llu samples %llu/%llu skipped %llu/%llu "
			"malformed %llu/%llu (reported %llu) dropped %llu",
			(unsigned long long)st.lines, (unsigned long long)lines,
			(unsigned long long)st.samples, (unsigned long long)ok,
			(unsigned long long)st.skipped, (unsigned long long)skip,
			(unsigned long long)st.malformed, (unsigned long long)bad,
			(unsigned long long)errs.n, (unsigned long long)st.dropped);

	st_writer_close(w);
	st_flush(e);
	st_ref_flush(ref);
	struct st_snap *s = st_snap_acquire(e);
	fz_check_snap(s);
	fz_expect_snap_is_ref("parsed trie and plain-parse reference", s, ref);
	st_snap_release(s);
	st_ref_destroy(ref);
	free(frames);
	free(lens);
	free(fr);
	free(buf);
	return 0;
}
