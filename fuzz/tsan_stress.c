/* SPDX-License-Identifier: MIT */
/*
 * tsan_stress.c - the concurrency check `make tsan` runs under
 * ThreadSanitizer (a CI step; Criterion's inheritable arena cannot be
 * mapped under TSan, so tests/test_stress.c cannot run there).
 *
 * PROPERTY: with every ingest path, snapshot readers, flushes and resets
 * running at once, TSan reports no data race, and at every known point the
 * engine equals the reference fed the same samples.
 *
 *   writers (one thread each, KINDS):     st_writer_ingest (reopened every
 *     phase), st_writer_ingest_batch, st_writer_ingest_strs,
 *     st_writer_ingest_strs_batch, st_ingest (the implicit writer); the
 *     string writers intern new names while the others ingest; two writers
 *     also st_flush() every FLUSH_EVERY samples and check the flush holds
 *     at least what they ingested in this generation
 *   reader:        st_snap_acquire, fz_check_snap, st_export (each format in
 *     turn), st_engine_stats; versions and generations never go back, and
 *     within a generation the root total never decreases nor exceeds what
 *     was generated since its reset
 *   delta reader:  holds two snapshots and checks st_snap_delta() of them
 *     (all metrics and one) against their root totals
 *   merger:        every millisecond (merge_interval_ms = 1)
 *   main:          phases between two barriers (the method of
 *     tests/test_stress.c): resets at known points between phases, and one
 *     reset racing with ingest; while the writers run it feeds the
 *     reference the same deterministic samples (seeded by kind and phase)
 *     and flushes twice; after each phase it flushes and compares the whole
 *     trie, and the generation, with the reference (a phase with a racing
 *     reset is checked for bounds only; the reset before the next phase
 *     makes it exact again).
 *
 *   then a cold burst, twice: one writer ingests SPLIT_STACKS new stacks
 *     and flushes, with no merger thread (the flush folds them all and
 *     sorts them on two threads: engine/core/master.c, sort_split, where
 *     the engine picks one partition, 2 to 15 CPUs; with 16+ its pool
 *     folds partitions instead), then with the merger every millisecond
 *     (here its folds stay small: whether one splits once a flush waits
 *     depends on timing); equal to the reference each time.
 *
 * The writers never touch the reference: its mutex would order them and
 * hide races between them.  The readers and the merger take part in no
 * barrier, so only the engine orders them.  Every configuration of
 * `configs` runs in turn: merge_workers 0 (the engine's choice), 2 and 4,
 * with fewer and with more shards than writers.
 *
 * Usage: tsan_stress [samples per writer per phase]   (default PER_PHASE)
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/fz.h"

enum { K_ONE, K_BATCH, K_STRS, K_STRS_BATCH, K_IMPLICIT, KINDS };
enum {
	PHASES = 6,
	PER_PHASE = 3000,
	NFRAMES = 16,    /* interned up front; what the id writers use */
	NNEW = 6,        /* names new in each phase, per string writer */
	MAXD = 10,
	NSTACKS = 800,   /* distinct stacks (the string writers' new names aside) */
	BATCH = 8,
	FLUSH_EVERY = 700,
};

static const char *const kind_name[KINDS] = { "ingest", "batch", "strs", "strs_batch", "implicit" };

/* Resets between phases (writers stopped) and racing with a phase. */
static const bool reset_before[PHASES] = { 0, 0, 1, 0, 1, 0 };
static const bool reset_during[PHASES] = { 0, 0, 0, 1, 0, 0 };

struct config {
	unsigned merge_workers, nshards;
};
static const struct config configs[] = { { 0, 2 }, { 2, 2 }, { 4, 8 } };

/* Names, formatted before any thread starts and read-only afterwards. */
static char names[NFRAMES][8];
static size_t name_len[NFRAMES];
static char new_names[KINDS][PHASES][NNEW][16];

static struct st_engine *e;
static uint32_t ids[NFRAMES];
static unsigned per_phase = PER_PHASE;
static pthread_barrier_t start_b, end_b;
static atomic_bool stop;
/* Per generation: at most this many samples (metric 0 counts 1 each). */
static uint64_t gen_max[PHASES + 2];
/* Per phase: its generation, and the samples of earlier phases in it. */
static uint64_t phase_gen[PHASES], phase_base[PHASES];
static atomic_ulong reads, deltas, flushes;

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/*
 * Sample i of writer `kind` in phase `ph`, the same for the writer and for
 * main's reference: frames as names (fr, ln) and, for the id writers, as
 * ids; values v[0] = 1, v[1] in 0..99.  Returns the depth (0 happens: the
 * root alone).
 */
struct sample {
	const char *fr[MAXD];
	size_t ln[MAXD];
	uint32_t id[MAXD];
	uint64_t v[2];
	size_t d;
};

static void make_sample(uint64_t *seed, unsigned kind, unsigned ph, struct sample *s)
{
	bool strs = kind == K_STRS || kind == K_STRS_BATCH;
	/* One of NSTACKS stacks (shared by every writer, so most samples add
	 * to existing records and nodes), its new names (string writers)
	 * new in each phase. */
	uint64_t st = 0x57ac0000u + rnd(seed) % NSTACKS;
	s->d = rnd(&st) % (MAXD + 1);
	for (size_t k = 0; k < s->d; k++) {
		uint64_t r = rnd(&st);
		if (strs && k >= 2 && r % 4 == 0) {
			const char *n = new_names[kind][ph][(r >> 8) % NNEW];
			s->fr[k] = n;
			s->ln[k] = strlen(n);
			continue;
		}
		unsigned x = (unsigned)((r >> 8) % (k < 2 ? 3 : NFRAMES));
		s->fr[k] = names[x];
		s->ln[k] = name_len[x];
		s->id[k] = ids[x];
	}
	s->v[0] = 1;
	s->v[1] = rnd(seed) % 100;
}

static uint64_t seed_of(unsigned kind, unsigned ph, unsigned cfg)
{
	return 0x5eed0000u + cfg * 100000u + kind * 1000u + ph;
}

static uint64_t root_total(const struct st_snap *s, unsigned m)
{
	return st_snap_total(s, ST_NODE_ROOT, m);
}

/* A writer's own flush: holds everything it ingested in this generation. */
static void flush_check(unsigned kind, unsigned ph, unsigned done)
{
	uint64_t v = st_flush(e);
	if (!v)
		fz_fail("%s: st_flush failed", kind_name[kind]);
	atomic_fetch_add(&flushes, 1);
	struct st_snap *s = st_snap_acquire(e);
	if (st_snap_version(s) < v)
		fz_fail("%s: snapshot %llu older than the flush's %llu", kind_name[kind],
			(unsigned long long)st_snap_version(s), (unsigned long long)v);
	if (!reset_during[ph] && st_snap_generation(s) == phase_gen[ph] &&
	    root_total(s, 0) < phase_base[ph] + done)
		fz_fail("%s: phase %u: flush holds %llu samples, %llu + %u were ingested before it",
			kind_name[kind], ph, (unsigned long long)root_total(s, 0),
			(unsigned long long)phase_base[ph], done);
	st_snap_release(s);
}

struct warg {
	unsigned kind, cfg;
};

static void *writer(void *arg)
{
	const struct warg *wa = arg;
	const unsigned kind = wa->kind;
	struct st_writer *w = NULL;
	struct sample b[BATCH];
	struct st_sample ib[BATCH];
	struct st_str_sample sb[BATCH];

	if (kind != K_IMPLICIT && kind != K_ONE && !(w = st_writer_open(e)))
		fz_fail("st_writer_open");
	for (unsigned ph = 0; ph < PHASES; ph++) {
		pthread_barrier_wait(&start_b);
		/* Closed and reopened every phase: shards change hands. */
		if (kind == K_ONE && !(w = st_writer_open(e)))
			fz_fail("st_writer_open");
		uint64_t seed = seed_of(kind, ph, wa->cfg);
		unsigned nb = 0;
		for (unsigned i = 0; i < per_phase; i++) {
			struct sample *s = &b[nb];
			make_sample(&seed, kind, ph, s);
			long r = 0;
			switch (kind) {
			case K_ONE:
				r = st_writer_ingest(w, s->id, s->d, s->v);
				break;
			case K_IMPLICIT:
				r = st_ingest(e, s->id, s->d, s->v);
				break;
			case K_STRS:
				r = st_writer_ingest_strs(w, s->fr, s->ln, s->d, s->v);
				break;
			case K_BATCH:
				ib[nb] = (struct st_sample){ s->id, (uint32_t)s->d, s->v };
				break;
			case K_STRS_BATCH:
				sb[nb] = (struct st_str_sample){ s->fr, s->ln, (uint32_t)s->d,
								 s->v };
				break;
			}
			if (r)
				fz_fail("%s: ingest returned %ld", kind_name[kind], r);
			if ((kind == K_BATCH || kind == K_STRS_BATCH) &&
			    (++nb == BATCH || i + 1 == per_phase)) {
				long n = kind == K_BATCH ? st_writer_ingest_batch(w, ib, nb)
							 : st_writer_ingest_strs_batch(w, sb, nb);
				if (n != (long)nb)
					fz_fail("%s: batch of %u returned %ld", kind_name[kind],
						nb, n);
				nb = 0;
			}
			if ((kind == K_BATCH || kind == K_IMPLICIT) && nb == 0 &&
			    (i + 1) % FLUSH_EVERY == 0)
				flush_check(kind, ph, i + 1);
		}
		if (kind == K_ONE) {
			st_writer_close(w);
			w = NULL;
		}
		pthread_barrier_wait(&end_b);
	}
	st_writer_close(w);
	return NULL; /* the implicit writer is closed as this thread exits */
}

static void *reader(void *arg)
{
	(void)arg;
	FILE *null = fopen("/dev/null", "w");
	if (!null)
		fz_fail("reader: /dev/null");
	uint64_t last_v = 0, last_g = 0, last_t = 0;
	unsigned fmt = 0;
	while (!atomic_load(&stop)) {
		struct st_snap *s = st_snap_acquire(e);
		uint64_t v = st_snap_version(s), g = st_snap_generation(s), t = root_total(s, 0);
		if (v < last_v || g < last_g)
			fz_fail("reader: version %llu gen %llu after version %llu gen %llu",
				(unsigned long long)v, (unsigned long long)g,
				(unsigned long long)last_v, (unsigned long long)last_g);
		if (g == last_g && t < last_t)
			fz_fail("reader: generation %llu went from %llu to %llu samples",
				(unsigned long long)g, (unsigned long long)last_t,
				(unsigned long long)t);
		if (g > PHASES || t > gen_max[g])
			fz_fail("reader: generation %llu holds %llu samples, at most %llu made",
				(unsigned long long)g, (unsigned long long)t,
				(unsigned long long)(g > PHASES ? 0 : gen_max[g]));
		fz_check_snap(s);
		int rc = st_export(s, (int)fmt, NULL, null);
		if (rc)
			fz_fail("reader: st_export(%s) = %d", st_format_name((int)fmt), rc);
		fmt = (fmt + 1) % ST_FMT_COUNT_;
		struct st_stats st = { .size = sizeof(st) };
		st_engine_stats(e, &st);
		if (st.version < v)
			fz_fail("reader: stats version %llu < snapshot %llu",
				(unsigned long long)st.version, (unsigned long long)v);
		last_v = v;
		last_g = g;
		last_t = t;
		st_snap_release(s);
		atomic_fetch_add(&reads, 1);
	}
	fclose(null);
	return NULL;
}

/* st_snap_delta(prev, cur) of two held snapshots, all metrics and one. */
static void check_delta(const struct st_snap *prev, const struct st_snap *cur)
{
	bool same = st_snap_generation(prev) == st_snap_generation(cur);
	struct st_snap *d = st_snap_delta(prev, cur, -1), *d1 = st_snap_delta(prev, cur, 1);
	if (!d || !d1)
		fz_fail("delta: st_snap_delta failed");
	for (unsigned m = 0; m < 2; m++) {
		uint64_t want = root_total(cur, m) - (same ? root_total(prev, m) : 0);
		uint64_t got = root_total(d, m);
		if (same && root_total(prev, m) > root_total(cur, m))
			fz_fail("delta: metric %u went down in generation %llu", m,
				(unsigned long long)st_snap_generation(cur));
		if (got != want)
			fz_fail("delta: versions %llu..%llu (%s gen) metric %u: %llu not %llu",
				(unsigned long long)st_snap_version(prev),
				(unsigned long long)st_snap_version(cur), same ? "same" : "new", m,
				(unsigned long long)got, (unsigned long long)want);
	}
	if (st_snap_nmetrics(d1) != 1 || root_total(d1, 0) != root_total(d, 1))
		fz_fail("delta: metric 1 alone differs from metric 1 of all");
	fz_check_snap(d);
	st_snap_release(d);
	st_snap_release(d1);
}

static void *delta_reader(void *arg)
{
	(void)arg;
	struct st_snap *prev = st_snap_acquire(e);
	while (!atomic_load(&stop)) {
		struct st_snap *cur = st_snap_acquire(e);
		if (st_snap_version(cur) < st_snap_version(prev))
			fz_fail("delta: version went back");
		if (st_snap_version(cur) == st_snap_version(prev)) {
			/* Nothing new: leave the CPU to the writers (this is
			 * no synchronisation, only fewer useless deltas). */
			st_snap_release(cur);
			sched_yield();
			continue;
		}
		check_delta(prev, cur);
		st_snap_release(prev);
		prev = cur;
		atomic_fetch_add(&deltas, 1);
	}
	st_snap_release(prev);
	return NULL;
}

/* main's share of phase ph: the reference gets what the writers ingest. */
static void feed_ref(struct st_ref *ref, unsigned ph, unsigned cfg)
{
	for (unsigned kind = 0; kind < KINDS; kind++) {
		uint64_t seed = seed_of(kind, ph, cfg);
		struct sample s;
		for (unsigned i = 0; i < per_phase; i++) {
			make_sample(&seed, kind, ph, &s);
			if (st_ref_add(ref, s.fr, s.ln, s.d, s.v))
				fz_fail("st_ref_add");
		}
	}
}

static void plan(void)
{
	uint64_t g = 0, acc = 0, per = (uint64_t)KINDS * per_phase;
	memset(gen_max, 0, sizeof(gen_max));
	for (unsigned ph = 0; ph < PHASES; ph++) {
		if (reset_before[ph]) {
			gen_max[g++] = acc;
			acc = 0;
		}
		phase_gen[ph] = g;
		phase_base[ph] = acc;
		acc += per;
		if (reset_during[ph]) {
			/* Part of the phase may land in either generation. */
			gen_max[g++] = acc;
			acc = per;
		}
	}
	gen_max[g] = acc;
}

/* ids[] of names[] in the engine e. */
static void intern_names(void)
{
	for (unsigned i = 0; i < NFRAMES; i++) {
		int64_t id = st_intern(e, names[i], name_len[i]);
		if (id < 0)
			fz_fail("st_intern");
		ids[i] = (uint32_t)id;
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void run(unsigned cfg)
{
	const struct config *c = &configs[cfg];
	double t0 = now_s();
	struct st_options o;
	st_options_init(&o);
	o.merge_interval_ms = 1;
	o.nshards = c->nshards;
	o.merge_workers = c->merge_workers;
	o.nmetrics = 2;
	o.metrics[1].name = "weight";
	e = st_engine_create(&o);
	struct st_ref *ref = st_ref_create(2, 0);
	if (!e || !ref)
		fz_fail("setup");
	intern_names();
	atomic_store(&stop, false);
	atomic_store(&reads, 0);
	atomic_store(&deltas, 0);
	atomic_store(&flushes, 0);
	pthread_barrier_init(&start_b, NULL, KINDS + 1);
	pthread_barrier_init(&end_b, NULL, KINDS + 1);
	pthread_t wt[KINDS], rt, dt;
	struct warg wa[KINDS];
	for (unsigned k = 0; k < KINDS; k++) {
		wa[k] = (struct warg){ k, cfg };
		pthread_create(&wt[k], NULL, writer, &wa[k]);
	}
	pthread_create(&rt, NULL, reader, NULL);
	pthread_create(&dt, NULL, delta_reader, NULL);

	for (unsigned ph = 0; ph < PHASES; ph++) {
		if (reset_before[ph]) {
			st_reset(e);
			st_ref_reset(ref);
		}
		pthread_barrier_wait(&start_b);
		if (reset_during[ph]) {
			st_reset(e); /* races with the writers' first samples */
			st_ref_reset(ref);
		}
		feed_ref(ref, ph, cfg);
		st_flush(e);
		st_flush(e);
		pthread_barrier_wait(&end_b);

		/* Writers stopped: the flush holds exactly the generation. */
		if (!st_flush(e))
			fz_fail("st_flush");
		struct st_snap *s = st_snap_acquire(e);
		uint64_t g = st_snap_generation(s);
		char what[96];
		snprintf(what, sizeof(what), "merge_workers %u, phase %u, generation %llu",
			 c->merge_workers, ph, (unsigned long long)g);
		if (reset_during[ph]) {
			fz_check_snap(s);
			uint64_t most = (uint64_t)KINDS * per_phase;
			if (g != phase_gen[ph] + 1 || root_total(s, 0) > most)
				fz_fail("%s: after a racing reset: %llu samples", what,
					(unsigned long long)root_total(s, 0));
		} else {
			if (g != phase_gen[ph])
				fz_fail("%s: want generation %llu", what,
					(unsigned long long)phase_gen[ph]);
			fz_expect_snap_is_ref(what, s, ref);
		}
		st_snap_release(s);
	}
	atomic_store(&stop, true);
	for (unsigned k = 0; k < KINDS; k++)
		pthread_join(wt[k], NULL);
	pthread_join(rt, NULL);
	pthread_join(dt, NULL);
	struct st_stats st = { .size = sizeof(st) };
	st_engine_stats(e, &st);
	if (st.dropped || !st.merges)
		fz_fail("stats: %llu dropped, %llu merges", (unsigned long long)st.dropped,
			(unsigned long long)st.merges);
	printf("tsan_stress: merge_workers %u, %u shards: %u phases x %u writers x %u samples, "
	       "%zu nodes, %llu merges, %lu flushes by writers, %lu snapshots read, %lu deltas: "
	       "equal to the reference (%.1f s)\n",
	       c->merge_workers, c->nshards, PHASES, KINDS, per_phase, st.nodes,
	       (unsigned long long)st.merges, atomic_load(&flushes), atomic_load(&reads),
	       atomic_load(&deltas), now_s() - t0);
	if (!atomic_load(&reads) || !atomic_load(&deltas))
		fz_fail("the readers read nothing");
	st_ref_destroy(ref);
	st_engine_destroy(e);
	pthread_barrier_destroy(&start_b);
	pthread_barrier_destroy(&end_b);
}

/* The cold burst (above): SPLIT_STACKS distinct stacks of depth 7 over
 * NFRAMES names, a digit tree under a skewed top fan. */
enum { SPLIT_STACKS = 40000 };

static void split_run(unsigned interval_ms)
{
	const double t0 = now_s();
	struct st_options o;
	st_options_init(&o);
	o.merge_interval_ms = interval_ms;
	o.nshards = 1;
	e = st_engine_create(&o);
	struct st_ref *ref = st_ref_create(1, 0);
	if (!e || !ref)
		fz_fail("split: create");
	intern_names();
	struct st_writer *w = st_writer_open(e);
	if (!w)
		fz_fail("split: st_writer_open");
	for (uint32_t i = 0; i < SPLIT_STACKS; i++) {
		const char *fr[7];
		size_t ln[7];
		uint32_t id[7];
		/* Base-16 digits of i (four levels: 65,536 > SPLIT_STACKS), the
		 * top one skewed, with a frame that depends on them between. */
		unsigned x[7] = { 0, i % 7 < 4 ? 0 : 1 + i % 15, i / 16 % 16, (i * 7) % 16,
				  i / 256 % 16, i % 16, (i / 4096) % 16 };
		for (unsigned k = 0; k < 7; k++) {
			fr[k] = names[x[k]];
			ln[k] = name_len[x[k]];
			id[k] = ids[x[k]];
		}
		uint64_t v = 1 + i % 5;
		if (st_writer_ingest(w, id, 7, &v) || st_ref_add(ref, fr, ln, 7, &v))
			fz_fail("split: ingest");
	}
	if (!st_flush(e))
		fz_fail("split: st_flush");
	struct st_snap *s = st_snap_acquire(e);
	fz_expect_snap_is_ref("split: one flush of a cold burst", s, ref);
	printf("tsan_stress: a cold burst of %u stacks, merger every %u ms (0: none), one "
	       "flush, %zu nodes: equal to the reference (%.1f s)\n", SPLIT_STACKS, interval_ms,
	       st_snap_node_count(s), now_s() - t0);
	st_snap_release(s);
	st_writer_close(w);
	st_ref_destroy(ref);
	st_engine_destroy(e);
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		per_phase = (unsigned)strtoul(argv[1], NULL, 10);
		if (per_phase < 1 || per_phase > 1000000) {
			fprintf(stderr, "usage: tsan_stress [samples per writer per phase]\n");
			return 2;
		}
	}
	for (unsigned i = 0; i < NFRAMES; i++) {
		snprintf(names[i], sizeof(names[i]), "fn%u", i);
		name_len[i] = strlen(names[i]);
	}
	for (unsigned k = 0; k < KINDS; k++)
		for (unsigned ph = 0; ph < PHASES; ph++)
			for (unsigned n = 0; n < NNEW; n++)
				snprintf(new_names[k][ph][n], sizeof(new_names[k][ph][n]),
					 "k%u.p%u.n%u", k, ph, n);
	plan();
	for (unsigned cfg = 0; cfg < sizeof(configs) / sizeof(configs[0]); cfg++)
		run(cfg);
	split_run(0);
	split_run(1);
	puts("tsan_stress: every configuration equals the reference");
	return 0;
}
