/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ringbuf.c - any bytes through the user-side decoder of the BPF
 * ring-buffer records (bpf/common/decode.c), as `record cpu|io` consumers
 * run it on every record.
 *
 * Input: byte 0 picks the path, the rest is one record (or a field list):
 *   0: st_prof_decode(), then every stack entry it declares usable is read;
 *   1: st_io_decode() + st_io_frames_build() with the field permutation
 *      picked by byte 1, then ingest into an engine with the 4 io metrics;
 *   2: st_io_fields_parse() of the bytes as a string.
 *
 * PROPERTIES: no crash or read outside the record (it sits in an allocation
 * of exactly its size under ASan); a decoded io record has path_len within
 * the record; every frame is non-empty, contains no ';', points into the
 * record, the fd path or the frames' own buffer; the ingest succeeds; a
 * field list that parses has 1..6 distinct known fields.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../bpf/common/decode.h"
#include "support/fz.h"

static struct st_engine *eng;
static struct st_writer *wr;
static unsigned long inputs;

static bool inside(const char *p, size_t len, const void *base, size_t n)
{
	const char *b = base;
	return p >= b && len <= n && (size_t)(p - b) <= n - len;
}

static void io_path(const uint8_t *data, size_t size)
{
	if (size < 1)
		return;
	unsigned sel = data[0];
	data++;
	size--;
	struct st_io_rec r;
	if (st_io_decode(data, size, &r))
		return;
	if (r.path && !inside(r.path, r.path_len, data, size))
		fz_fail("io: path outside the record");
	/* A field list: rotate the 6 fields by sel, take 1 + sel % 6 of them. */
	unsigned char f[ST_IOF_COUNT_];
	unsigned nf = 1 + sel % ST_IOF_COUNT_;
	for (unsigned i = 0; i < nf; i++)
		f[i] = (unsigned char)((i + sel / ST_IOF_COUNT_) % ST_IOF_COUNT_);
	static struct st_io_frames fr;
	static const char fdpath[] = "/proc/self/fd/;weird//path/";
	bool use_fd = !r.path && (sel & 0x80);
	const char *p = use_fd ? fdpath : r.path;
	size_t plen = use_fd ? sizeof(fdpath) - 1 : r.path_len;
	st_io_frames_build(&r, f, nf, p, plen, &fr);
	if (fr.n > ST_IO_MAX_FRAMES)
		fz_fail("io: %zu frames", fr.n);
	for (size_t i = 0; i < fr.n; i++) {
		if (!fr.len[i])
			fz_fail("io: empty frame %zu", i);
		if (memchr(fr.p[i], ';', fr.len[i]))
			fz_fail("io: ';' in frame %zu", i);
		const char *tp = st_io_tracepoint_name(r.h.op);
		if (!inside(fr.p[i], fr.len[i], data, size) && !(p && inside(fr.p[i], fr.len[i], p, plen)) &&
		    !inside(fr.p[i], fr.len[i], fr.buf, sizeof(fr.buf)) &&
		    !(tp && inside(fr.p[i], fr.len[i], tp, strlen(tp))) &&
		    !inside(fr.p[i], fr.len[i], &r.h, sizeof(r.h)))
			fz_fail("io: frame %zu points outside its sources", i);
	}
	uint64_t v[ST_IOM_N];
	st_io_values(&r, v);
	if (v[ST_IOM_COUNT] != 1)
		fz_fail("io: count %llu", (unsigned long long)v[ST_IOM_COUNT]);
	if (!eng) {
		struct st_options o;
		st_options_init(&o);
		o.nshards = 1;
		o.merge_interval_ms = 0;
		o.nmetrics = ST_IOM_N;
		for (int i = 0; i < ST_IOM_N; i++) {
			o.metrics[i].name = st_io_metric_names[i];
			o.metrics[i].unit = st_io_metric_units[i];
		}
		eng = st_engine_create(&o);
		wr = eng ? st_writer_open(eng) : NULL;
		if (!wr)
			fz_fail("engine: %s", strerror(errno));
	}
	int err = st_writer_ingest_strs(wr, fr.p, fr.len, fr.n, v);
	if (err)
		fz_fail("io: ingest %d", err);
}

static void prof_path(const uint8_t *data, size_t size)
{
	struct st_prof_rec r;
	if (st_prof_decode(data, size, &r))
		return;
	if (r.nk > PROFILE_MAX_STACK || r.nu > PROFILE_MAX_STACK)
		fz_fail("prof: %u/%u entries", r.nk, r.nu);
	volatile uint64_t sum = 0;
	for (unsigned i = 0; i < r.nk; i++)
		sum += r.s->kstack[i];
	for (unsigned i = 0; i < r.nu; i++)
		sum += r.s->ustack[i];
	(void)sum;
}

static void fields_path(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return;
	memcpy(s, data, size);
	s[size] = 0;
	unsigned char f[ST_IOF_COUNT_];
	unsigned n = 0;
	char err[256];
	if (st_io_fields_parse(s, f, &n, err, sizeof(err)) == 0) {
		bool seen[ST_IOF_COUNT_] = { false };
		if (n < 1 || n > ST_IOF_COUNT_)
			fz_fail("fields: %u fields", n);
		for (unsigned i = 0; i < n; i++) {
			if (f[i] >= ST_IOF_COUNT_ || seen[f[i]])
				fz_fail("fields: bad or duplicate field %u", f[i]);
			seen[f[i]] = true;
		}
	} else if (!err[0]) {
		fz_fail("fields: rejected without a message");
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* Copy so the record is 8-aligned as in the ring, and exactly sized. */
	uint8_t *rec = malloc(size - 1 ? size - 1 : 1);
	if (!rec)
		return 0;
	memcpy(rec, data + 1, size - 1);
	switch (data[0] % 3) {
	case 0: prof_path(rec, size - 1); break;
	case 1: io_path(rec, size - 1); break;
	default: fields_path(rec, size - 1); break;
	}
	free(rec);
	if (eng && ++inputs % 4096 == 0) {
		st_writer_close(wr);
		st_engine_destroy(eng);
		eng = NULL;
		wr = NULL;
	}
	return 0;
}
