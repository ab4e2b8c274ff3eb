/* SPDX-License-Identifier: MIT */
/*
 * tsan_stress.c - a plain-main() concurrent stress for `make tsan`
 * (Criterion's inheritable arena cannot be mapped under ThreadSanitizer, so
 * tests/test_stress.c cannot run there).
 *
 * PROPERTY: 4 writers (two through st_writer_ingest, one batched, one
 * through st_ingest) ingest deterministic samples while the merger runs every
 * millisecond, a reader acquires, checks (fz_check_snap) and exports
 * snapshots, and the main thread flushes; no data race is reported and the
 * final flush equals the reference fed with the same samples.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/fz.h"

enum { WRITERS = 4, PER_WRITER = 4000, NFRAMES = 16 };

static struct st_engine *e;
static struct st_ref *ref;
static uint32_t ids[NFRAMES];
static char names[NFRAMES][8];
static atomic_bool stop;

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void *writer(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;
	struct st_writer *w = me == 3 ? NULL : st_writer_open(e);
	uint64_t seed = me + 1;
	for (int i = 0; i < PER_WRITER; i++) {
		uint32_t f[8];
		const char *fr[8];
		size_t lens[8], d = 1 + rnd(&seed) % 8;
		for (size_t k = 0; k < d; k++) {
			unsigned x = (unsigned)(rnd(&seed) % (k < 2 ? 3 : NFRAMES));
			f[k] = ids[x];
			fr[k] = names[x];
			lens[k] = strlen(names[x]);
		}
		uint64_t v[2] = { 1, rnd(&seed) % 1000 };
		int r;
		if (me == 3) {
			r = st_ingest(e, f, d, v);
		} else if (me == 2) {
			struct st_sample s = { f, (uint32_t)d, v };
			r = st_writer_ingest_batch(w, &s, 1) == 1 ? 0 : -1;
		} else {
			r = st_writer_ingest(w, f, d, v);
		}
		if (r || st_ref_add(ref, fr, lens, d, v))
			fz_fail("ingest failed");
	}
	st_writer_close(w);
	return NULL;
}

static void *reader(void *arg)
{
	(void)arg;
	uint64_t last = 0;
	while (!atomic_load(&stop)) {
		struct st_snap *s = st_snap_acquire(e);
		if (st_snap_version(s) < last)
			fz_fail("version went back");
		last = st_snap_version(s);
		fz_check_snap(s);
		FILE *f = fopen("/dev/null", "w");
		if (f) {
			st_export(s, ST_FMT_JSON, NULL, f);
			fclose(f);
		}
		st_snap_release(s);
	}
	return NULL;
}

int main(void)
{
	struct st_options o;
	st_options_init(&o);
	o.merge_interval_ms = 1;
	o.nshards = 2; /* fewer shards than writers: extra shards are made */
	o.nmetrics = 2;
	o.metrics[1].name = "weight";
	e = st_engine_create(&o);
	ref = st_ref_create(2, 0);
	if (!e || !ref)
		fz_fail("setup");
	for (unsigned i = 0; i < NFRAMES; i++) {
		snprintf(names[i], sizeof(names[i]), "fn%u", i);
		ids[i] = (uint32_t)st_intern(e, names[i], strlen(names[i]));
	}
	pthread_t w[WRITERS], r;
	pthread_create(&r, NULL, reader, NULL);
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_create(&w[i], NULL, writer, (void *)(uintptr_t)i);
	for (int i = 0; i < 50; i++)
		st_flush(e);
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	atomic_store(&stop, true);
	pthread_join(r, NULL);
	st_flush(e);
	struct st_snap *s = st_snap_acquire(e);
	fz_expect_snap_is_ref("engine and reference after the stress", s, ref);
	st_snap_release(s);
	st_ref_destroy(ref);
	st_engine_destroy(e);
	puts("tsan_stress: engine equals reference");
	return 0;
}
