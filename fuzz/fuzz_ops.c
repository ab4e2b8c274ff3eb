/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ops.c - the engine against the reference trie, operation by operation.
 *
 * PROPERTY: for any program of operations (ingest through every API from 1-4
 * writers, flush, snapshot, reset, intern, export, bad samples, writer
 * hand-over), after every flush the engine's snapshot and the reference trie
 * (shardtrie_ref.h) dump byte-identically: same structure, same self and
 * total for every metric, node cap folding included.  Versions strictly
 * increase, generations count resets, every snapshot satisfies
 * fz_check_snap(), a held snapshot never changes, rejected samples change
 * nothing, interning is stable, and stats count exactly what was accepted.
 * Windows: without a node cap, every held snapshot plus st_snap_delta() of
 * it and the flushed one is the flushed one (folded, summed by stack).
 * THREADED variant (first byte & 0x80): the same samples, decoded up front,
 * are ingested by 2-4 threads (own writers or st_ingest) while those threads
 * also flush, read snapshots and export; after joining, one flush must equal
 * the reference fed with every sample, and every snapshot seen meanwhile
 * must be well formed with versions never going back and totals never above
 * the final ones.  No node cap there: folding depends on flush timing.
 *
 * Input layout: 3 header bytes (metrics/writers/mode, node cap and merge
 * workers, shards),
 * then one opcode byte per operation followed by its operands.  Missing
 * bytes read as 0 (fz.h), so every input is a program.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "support/fz.h"

#define POOL_MAX 40
#define MAX_DEPTH 128
#define MAX_OPS 3000
#define HELD 4
#define MAX_THREADS 4

struct name {
	const char *s;
	size_t len;
	int64_t id; /* -1 until interned */
};

static const struct name initial_names[] = {
	{ "main", 4, -1 },   { "a", 1, -1 },       { "b", 1, -1 },
	{ "ab", 2, -1 },     { "", 0, -1 },        { ST_OTHER_NAME, sizeof(ST_OTHER_NAME) - 1, -1 },
	{ "a;b", 3, -1 },    { "\xff\0z", 3, -1 }, { "\xc3\xa9", 2, -1 },
	{ "a b", 3, -1 },
};

struct sample {
	uint32_t depth;
	uint8_t idx[MAX_DEPTH]; /* pool indexes */
	uint64_t v[ST_MAX_METRICS];
	uint8_t api;    /* 0 ids, 1 strings (batch when repeat is even), 2 batch, 3 st_ingest */
	uint8_t writer; /* single-threaded mode */
	uint8_t repeat; /* 1..4 */
};

struct prog {
	struct st_engine *e;
	struct st_ref *ref;
	unsigned nm, nwriters;
	struct name pool[POOL_MAX];
	size_t npool;
};

static void decode_sample(struct fz_in *in, const struct prog *p, struct sample *s)
{
	uint8_t d = fz_u8(in);
	s->depth = d < 224 ? d % 7u : (uint32_t)(d - 224) * 4u; /* mostly shallow */
	for (uint32_t i = 0; i < s->depth; i++)
		s->idx[i] = (uint8_t)(fz_u8(in) % p->npool);
	for (unsigned m = 0; m < p->nm; m++)
		s->v[m] = fz_value(in);
	uint8_t k = fz_u8(in);
	s->api = k & 3;
	s->writer = (uint8_t)((k >> 2) % p->nwriters);
	s->repeat = (uint8_t)(1 + ((k >> 5) & 3));
}

static uint32_t name_id(struct prog *p, size_t i)
{
	if (p->pool[i].id < 0) {
		p->pool[i].id = st_intern(p->e, p->pool[i].s, p->pool[i].len);
		if (p->pool[i].id < 0)
			fz_fail("st_intern: %lld", (long long)p->pool[i].id);
	}
	return (uint32_t)p->pool[i].id;
}

/* Feed one sample (repeat times) to the reference. */
static void ref_add(struct prog *p, const struct sample *s)
{
	const char *fr[MAX_DEPTH];
	size_t lens[MAX_DEPTH];
	for (uint32_t i = 0; i < s->depth; i++) {
		fr[i] = p->pool[s->idx[i]].s;
		lens[i] = p->pool[s->idx[i]].len;
	}
	for (unsigned r = 0; r < s->repeat; r++)
		if (st_ref_add(p->ref, fr, lens, s->depth, s->v))
			fz_fail("st_ref_add failed");
}

/* Ingest one sample into the engine through writer w (or st_ingest).
 * Ids must already be interned when called from a thread. */
static void engine_add(struct prog *p, struct st_writer *w, const struct sample *s)
{
	uint32_t ids[MAX_DEPTH];
	const char *fr[MAX_DEPTH];
	size_t lens[MAX_DEPTH];
	for (uint32_t i = 0; i < s->depth; i++) {
		ids[i] = (uint32_t)p->pool[s->idx[i]].id;
		fr[i] = p->pool[s->idx[i]].s;
		lens[i] = p->pool[s->idx[i]].len;
	}
	int r = 0;
	switch (s->api) {
	case 0:
		for (unsigned k = 0; k < s->repeat && !r; k++)
			r = st_writer_ingest(w, ids, s->depth, s->v);
		break;
	case 1:
		if (s->repeat % 2 == 0) { /* even repeats: the strings batch API */
			struct st_str_sample b[4];
			for (unsigned k = 0; k < s->repeat; k++)
				b[k] = (struct st_str_sample){ fr, lens, s->depth, s->v };
			long n = st_writer_ingest_strs_batch(w, b, s->repeat);
			r = n == s->repeat ? 0 : n < 0 ? (int)n : -EPROTO;
			break;
		}
		for (unsigned k = 0; k < s->repeat && !r; k++)
			r = st_writer_ingest_strs(w, fr, lens, s->depth, s->v);
		break;
	case 2: {
		struct st_sample b[4];
		for (unsigned k = 0; k < s->repeat; k++)
			b[k] = (struct st_sample){ ids, s->depth, s->v };
		long n = st_writer_ingest_batch(w, b, s->repeat);
		r = n == s->repeat ? 0 : n < 0 ? (int)n : -EPROTO;
		break;
	}
	default:
		for (unsigned k = 0; k < s->repeat && !r; k++)
			r = st_ingest(p->e, ids, s->depth, s->v);
		break;
	}
	if (r)
		fz_fail("ingest (api %u, depth %u) failed: %d", s->api, s->depth, r);
}

static struct st_engine *make_engine(unsigned nm, unsigned nshards, uint64_t cap, unsigned workers)
{
	struct st_options o;
	st_options_init(&o);
	o.merge_interval_ms = 0; /* merges only in st_flush/st_reset */
	o.nshards = nshards;
	o.nmetrics = nm;
	o.node_cap = cap;
	o.merge_workers = workers; /* the partitioned merge (a cap forces one) */
	for (unsigned m = 1; m < nm; m++) {
		static const char *names[] = { "count", "m1", "m2", "m3", "m4", "m5", "m6", "m7" };
		o.metrics[m].name = names[m];
		o.metrics[m].unit = "units";
	}
	struct st_engine *e = st_engine_create(&o);
	if (!e)
		fz_fail("st_engine_create: %d", errno);
	return e;
}

/* Export in both formats to memory: must succeed; bad metric is -EINVAL. */
static void export_check(const struct st_snap *s, uint8_t k)
{
	struct st_export_opts o;
	st_export_opts_init(&o);
	unsigned nm = st_snap_nmetrics(s);
	o.metric = (k >> 1) % (nm + 1);
	static const double fr[] = { 0, 0.001, 0.1, 0.5, 1.0, 2.0 };
	o.min_fraction = fr[(k >> 4) % 6];
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		abort();
	int r = st_export(s, k & 1 ? ST_FMT_JSON : ST_FMT_FOLDED, &o, f);
	fclose(f);
	if (o.metric == nm ? r != -EINVAL : r != 0)
		fz_fail("st_export(fmt %d, metric %u/%u) = %d", k & 1, o.metric, nm, r);
	if (r == 0 && !(k & 1)) {
		/* Folded: one line per node with a non-zero self below the root. */
		size_t lines = 0, want = 0;
		for (size_t i = 0; i < len; i++)
			lines += buf[i] == '\n';
		for (uint32_t i = 1; i < st_snap_node_count(s); i++)
			want += st_snap_self(s, i, o.metric) != 0;
		if (lines != want)
			fz_fail("folded export: %zu lines for %zu nodes with self", lines, want);
	}
	free(buf);
}

/* ------------------------------------------------ windows (st_snap_delta) */

/* Text with its length: a frame name may hold a NUL byte. */
struct text {
	char *p;
	size_t len;
};

static struct text folded_of(const struct st_snap *s, unsigned metric)
{
	struct st_export_opts o;
	st_export_opts_init(&o);
	o.metric = metric;
	struct text t = { NULL, 0 };
	FILE *f = open_memstream(&t.p, &t.len);
	if (!f)
		abort();
	if (st_export(s, ST_FMT_FOLDED, &o, f))
		fz_fail("folded export of a %s snapshot failed", "window");
	fclose(f);
	return t;
}

struct fline {
	const char *stack;
	size_t len;
	uint64_t n;
};

static int fline_cmp(const void *a, const void *b)
{
	const struct fline *x = a, *y = b;
	return fz_name_cmp(x->stack, x->len, y->stack, y->len);
}

/* Folded text (several exports one after the other) as one profile: each
 * stack once, its counts summed, zero counts left out, sorted. */
static struct text folded_canon(struct text in)
{
	size_t n = 0, cap = 16;
	struct fline *l = malloc(cap * sizeof(*l));
	const char *p = in.p, *end = in.p + in.len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			fz_fail("folded export without a final line break");
		const char *sp = nl;
		while (sp > p && *sp != ' ')
			sp--;
		if (n == cap)
			l = realloc(l, (cap *= 2) * sizeof(*l));
		l[n++] = (struct fline){ p, (size_t)(sp - p), strtoull(sp + 1, NULL, 10) };
		p = nl + 1;
	}
	qsort(l, n, sizeof(*l), fline_cmp);
	struct text out = { NULL, 0 };
	FILE *f = open_memstream(&out.p, &out.len);
	if (!f)
		abort();
	for (size_t i = 0; i < n;) {
		uint64_t v = 0;
		size_t j = i;
		for (; j < n && !fline_cmp(&l[i], &l[j]); j++)
			v = fz_sat_add(v, l[j].n);
		if (v) {
			fwrite(l[i].stack, 1, l[i].len, f);
			fprintf(f, " %llu\n", (unsigned long long)v);
		}
		i = j;
	}
	fclose(f);
	free(l);
	return out;
}

/*
 * The window from held snapshot h (NULL: from nothing) to s, as
 * st_snap_delta() gives it, added to h is s: per metric, as one metric
 * (metric m) and as all of them (-1).  Across a reset the window is s.
 * Only without a node cap (folding rewrites what h had) and without a
 * saturated sum (the difference is clamped there, by design).
 */
static void window_check(const struct st_snap *h, const struct st_snap *s)
{
	if (st_snap_saturated(s, NULL) || (h && st_snap_saturated(h, NULL)))
		return;
	bool same = h && st_snap_generation(h) == st_snap_generation(s);
	struct st_snap *all = st_snap_delta(h, s, -1);
	if (!all)
		fz_fail("st_snap_delta(-1): %d", errno);
	for (unsigned m = 0; m < st_snap_nmetrics(s); m++) {
		struct st_snap *one = st_snap_delta(h, s, (int)m);
		if (!one || st_snap_nmetrics(one) != 1)
			fz_fail("st_snap_delta(%u): %d", m, errno);
		struct text later = folded_of(s, m), want = folded_canon(later);
		for (int k = 0; k < 2; k++) {
			struct text base = same ? folded_of(h, m) : (struct text){ NULL, 0 };
			struct text win = k ? folded_of(one, 0) : folded_of(all, m);
			struct text both = { malloc(base.len + win.len + 1), base.len + win.len };
			if (base.len)
				memcpy(both.p, base.p, base.len);
			memcpy(both.p + base.len, win.p, win.len);
			struct text got = folded_canon(both);
			if (got.len != want.len || memcmp(got.p, want.p, got.len))
				fz_fail("window %s + delta (metric %u, %s) is not the later "
					"snapshot:\n%.*s---\n%.*s", same ? "base" : "(reset)", m,
					k ? "one metric" : "all metrics", (int)got.len, got.p,
					(int)want.len, want.p);
			free(base.p);
			free(win.p);
			free(both.p);
			free(got.p);
		}
		free(later.p);
		free(want.p);
		st_snap_release(one);
	}
	st_snap_release(all);
}

/*
 * Nodes a flush may leave under node cap `cap` (docs/design.md): the root,
 * K = (cap-2)/2 kept subtrees and at most K+1 [other] buckets, so never more
 * than the cap.  (With K = (cap-1)/2 odd caps allowed cap+1: found by this
 * target, see docs/testing.md.)
 */
static size_t cap_bound(uint64_t cap)
{
	return (size_t)cap;
}

/* Flush both sides, check the snapshot's structure, compare the dumps. */
static void flush_and_compare(struct prog *p, const char *what)
{
	st_flush(p->e);
	st_ref_flush(p->ref);
	struct st_snap *s = st_snap_acquire(p->e);
	fz_check_snap(s);
	fz_expect_snap_is_ref(what, s, p->ref);
	st_snap_release(s);
}

/* ------------------------------------------------------------ sequential */

struct held {
	struct st_snap *s;
	char *dump;
};

static void held_release(struct held *h)
{
	if (!h->s)
		return;
	char *now = fz_dump_snap(h->s);
	fz_expect_same("held snapshot (before vs after later operations)", now, h->dump);
	free(now);
	free(h->dump);
	st_snap_release(h->s);
	h->s = NULL;
}

static void run_sequential(struct prog *p, struct fz_in *in, uint64_t cap)
{
	struct st_writer *w[MAX_THREADS] = { 0 };
	struct held held[HELD] = { 0 };
	uint64_t last_version = 1, resets = 0, accepted = 0;
	size_t nheld = 0;
	static const uint32_t zeros[ST_MAX_DEPTH + 1];

	for (unsigned i = 0; i < p->nwriters; i++)
		if (!(w[i] = st_writer_open(p->e)))
			fz_fail("st_writer_open: %d", errno);

	for (unsigned op = 0; op < MAX_OPS && fz_more(in); op++) {
		uint8_t code = fz_u8(in);
		switch (code % 16) {
		case 0: case 1: case 2: case 3: case 4: case 5: case 14: {
			struct sample s;
			decode_sample(in, p, &s);
			if (s.api == 3)
				s.api = 0; /* st_ingest's writers outlive engines on this thread */
			if (code % 16 == 14)
				memset(s.v, 0, sizeof(s.v)); /* zero samples still make nodes */
			for (uint32_t i = 0; i < s.depth; i++)
				name_id(p, s.idx[i]);
			engine_add(p, w[s.writer], &s);
			ref_add(p, &s);
			accepted += s.repeat;
			break;
		}
		case 6: {
			uint64_t v = st_flush(p->e);
			st_ref_flush(p->ref);
			if (v <= last_version)
				fz_fail("st_flush returned version %llu after %llu",
					(unsigned long long)v, (unsigned long long)last_version);
			last_version = v;
			struct st_snap *s = st_snap_acquire(p->e);
			if (st_snap_version(s) != v || st_snap_generation(s) != resets)
				fz_fail("snapshot after flush: version %llu gen %llu, want %llu gen %llu",
					(unsigned long long)st_snap_version(s),
					(unsigned long long)st_snap_generation(s),
					(unsigned long long)v, (unsigned long long)resets);
			fz_check_snap(s);
			fz_expect_snap_is_ref("engine and reference after flush", s, p->ref);
			struct st_stats st = { .size = sizeof(st) };
			st_engine_stats(p->e, &st);
			if (st.nodes != st_snap_node_count(s) || st.version != v || st.dropped ||
			    st.ingested != accepted)
				fz_fail("stats: nodes %zu/%zu version %llu/%llu dropped %llu "
					"ingested %llu/%llu",
					st.nodes, st_snap_node_count(s), (unsigned long long)st.version,
					(unsigned long long)v, (unsigned long long)st.dropped,
					(unsigned long long)st.ingested, (unsigned long long)accepted);
			if (cap && st_snap_node_count(s) > cap_bound(cap))
				fz_fail("node cap %llu: %zu nodes after a flush",
					(unsigned long long)cap, st_snap_node_count(s));
			if (!cap) {
				window_check(NULL, s);
				for (size_t k = 0; k < nheld; k++)
					window_check(held[k].s, s);
			}
			st_snap_release(s);
			break;
		}
		case 7: {
			if (nheld == HELD) {
				held_release(&held[0]);
				memmove(held, held + 1, (HELD - 1) * sizeof(*held));
				held[HELD - 1].s = NULL;
				nheld--;
			}
			struct st_snap *s = st_snap_acquire(p->e);
			if (st_snap_version(s) != last_version)
				fz_fail("acquired version %llu, last published %llu",
					(unsigned long long)st_snap_version(s),
					(unsigned long long)last_version);
			fz_check_snap(s);
			held[nheld].s = s;
			held[nheld].dump = fz_dump_snap(s);
			nheld++;
			break;
		}
		case 8:
			if (nheld) {
				size_t k = fz_u8(in) % nheld;
				held_release(&held[k]);
				memmove(held + k, held + k + 1, (nheld - k - 1) * sizeof(*held));
				held[--nheld].s = NULL;
			}
			break;
		case 9: {
			uint64_t v = st_reset(p->e);
			st_ref_reset(p->ref);
			resets++;
			if (v <= last_version)
				fz_fail("st_reset returned version %llu after %llu",
					(unsigned long long)v, (unsigned long long)last_version);
			last_version = v; /* stats.ingested counts since creation: kept */
			struct st_snap *s = st_snap_acquire(p->e);
			if (st_snap_node_count(s) != 1 || st_snap_generation(s) != resets ||
			    st_snap_version(s) != v)
				fz_fail("after reset: %zu nodes, generation %llu/%llu",
					st_snap_node_count(s), (unsigned long long)st_snap_generation(s),
					(unsigned long long)resets);
			for (unsigned m = 0; m < p->nm; m++)
				if (st_snap_total(s, 0, m))
					fz_fail("after reset: root total %u non-zero", m);
			st_snap_release(s);
			break;
		}
		case 10: {
			const uint8_t *b;
			size_t len = fz_bytes(in, &b, 12);
			int64_t id = st_intern(p->e, (const char *)b, len);
			int64_t again = st_intern(p->e, (const char *)b, len);
			size_t nlen;
			const char *nm = id >= 0 ? st_frame_name(p->e, (uint32_t)id, &nlen) : NULL;
			if (id < 0 || again != id || !nm || nlen != len || memcmp(nm, b, len) ||
			    nm[len] != '\0')
				fz_fail("st_intern not stable: %lld then %lld", (long long)id,
					(long long)again);
			if (p->npool < POOL_MAX) /* the engine's copy outlives the input */
				p->pool[p->npool++] = (struct name){ nm, len, id };
			break;
		}
		case 11: {
			struct st_snap *s = st_snap_acquire(p->e);
			export_check(s, fz_u8(in));
			st_snap_release(s);
			break;
		}
		case 12: {
			/* Rejected samples change nothing (checked at the next flush). */
			uint8_t k = fz_u8(in);
			uint64_t v[ST_MAX_METRICS] = { 1, 1, 1, 1, 1, 1, 1, 1 };
			uint32_t bad[3] = { name_id(p, 0), (uint32_t)st_frame_count(p->e), 0 };
			int r;
			if (k & 1) {
				r = st_writer_ingest(w[0], zeros, ST_MAX_DEPTH + 1, v);
				if (r != -E2BIG)
					fz_fail("depth %u accepted: %d", ST_MAX_DEPTH + 1, r);
			} else {
				r = st_writer_ingest(w[0], bad, 2 + (k >> 7), v);
				if (r != -EINVAL)
					fz_fail("unknown frame id accepted: %d", r);
			}
			break;
		}
		case 13: {
			size_t k = fz_u8(in) % p->nwriters;
			st_writer_close(w[k]);
			if (!(w[k] = st_writer_open(p->e)))
				fz_fail("st_writer_open: %d", errno);
			break;
		}
		default: {
			/* Stats between flushes: what was accepted is counted. */
			struct st_stats st = { .size = sizeof(st) };
			st_engine_stats(p->e, &st);
			if (st.ingested != accepted || st.version != last_version)
				fz_fail("stats: ingested %llu, accepted %llu",
					(unsigned long long)st.ingested, (unsigned long long)accepted);
			break;
		}
		}
	}
	/* Final comparison, then everything is given back. */
	flush_and_compare(p, "engine and reference at the end");
	for (size_t i = 0; i < nheld; i++)
		held_release(&held[i]);
	for (unsigned i = 0; i < p->nwriters; i++)
		st_writer_close(w[i]);
}

/* ------------------------------------------------------------ threaded */

enum { T_INGEST, T_FLUSH, T_SNAP, T_EXPORT, T_INTERN };

struct top {
	uint8_t kind, thread, arg;
	struct sample s;
	const uint8_t *name;
	size_t nlen;
};

struct tctx {
	struct prog *p;
	struct top *ops;
	size_t nops;
	unsigned me;
	bool use_implicit;
	pthread_barrier_t *go;
	const uint64_t *final_root; /* upper bound of every root total */
	int64_t *intern_ids;        /* per op, for the cross-thread check */
};

static void *thread_main(void *arg)
{
	struct tctx *t = arg;
	struct prog *p = t->p;
	struct st_writer *w = t->use_implicit ? NULL : st_writer_open(p->e);
	if (!t->use_implicit && !w)
		fz_fail("st_writer_open: %d", errno);
	uint64_t last = 0;
	pthread_barrier_wait(t->go);
	for (size_t i = 0; i < t->nops; i++) {
		struct top *o = &t->ops[i];
		if (o->thread != t->me)
			continue;
		switch (o->kind) {
		case T_INGEST: {
			struct sample s = o->s;
			if (t->use_implicit)
				s.api = 3;
			else if (s.api == 3)
				s.api = 0;
			engine_add(p, w, &s);
			break;
		}
		case T_FLUSH: {
			uint64_t v = st_flush(p->e);
			if (v <= last)
				fz_fail("thread %u: st_flush version %llu after %llu", t->me,
					(unsigned long long)v, (unsigned long long)last);
			last = v;
			break;
		}
		case T_SNAP:
		case T_EXPORT: {
			struct st_snap *s = st_snap_acquire(p->e);
			uint64_t v = st_snap_version(s);
			if (v < last)
				fz_fail("thread %u: snapshot version %llu after %llu", t->me,
					(unsigned long long)v, (unsigned long long)last);
			last = v;
			fz_check_snap(s);
			for (unsigned m = 0; m < p->nm; m++)
				if (st_snap_total(s, 0, m) > t->final_root[m])
					fz_fail("thread %u: root total %llu of metric %u above the "
						"final %llu (double count)", t->me,
						(unsigned long long)st_snap_total(s, 0, m), m,
						(unsigned long long)t->final_root[m]);
			if (o->kind == T_EXPORT)
				export_check(s, o->arg);
			st_snap_release(s);
			break;
		}
		default: {
			int64_t id = st_intern(p->e, (const char *)o->name, o->nlen);
			if (id < 0)
				fz_fail("st_intern: %lld", (long long)id);
			t->intern_ids[i] = id;
			break;
		}
		}
	}
	st_writer_close(w);
	return NULL;
}

static void run_threaded(struct prog *p, struct fz_in *in, unsigned nthreads)
{
	struct top *ops = calloc(MAX_OPS, sizeof(*ops));
	int64_t *ids = calloc(MAX_OPS, sizeof(*ids));
	uint64_t final_root[ST_MAX_METRICS] = { 0 };
	size_t n = 0;
	if (!ops || !ids)
		abort();
	/* Every name a thread may use is interned before the threads start,
	 * so samples are the same bytes whichever thread runs first. */
	for (size_t i = 0; i < p->npool; i++)
		name_id(p, i);
	while (n < MAX_OPS && fz_more(in)) {
		struct top *o = &ops[n];
		uint8_t code = fz_u8(in);
		o->thread = (uint8_t)(fz_u8(in) % nthreads);
		switch (code % 10) {
		case 6:
			o->kind = T_FLUSH;
			break;
		case 7:
			o->kind = T_SNAP;
			break;
		case 8:
			o->kind = T_EXPORT;
			o->arg = fz_u8(in);
			break;
		case 9:
			o->kind = T_INTERN;
			o->nlen = fz_bytes(in, &o->name, 6);
			break;
		default:
			o->kind = T_INGEST;
			decode_sample(in, p, &o->s);
			ref_add(p, &o->s);
			for (unsigned r = 0; r < o->s.repeat; r++)
				for (unsigned m = 0; m < p->nm; m++)
					final_root[m] = fz_sat_add(final_root[m], o->s.v[m]);
			break;
		}
		n++;
	}

	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, nthreads);
	pthread_t th[MAX_THREADS];
	struct tctx ctx[MAX_THREADS];
	for (unsigned i = 0; i < nthreads; i++) {
		ctx[i] = (struct tctx){ p, ops, n, i, i == nthreads - 1 && (nthreads & 1),
					&go, final_root, ids };
		if (pthread_create(&th[i], NULL, thread_main, &ctx[i]))
			fz_fail("pthread_create failed");
	}
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);

	/* Same bytes, same id, whichever thread interned them first. */
	for (size_t i = 0; i < n; i++)
		if (ops[i].kind == T_INTERN &&
		    st_intern(p->e, (const char *)ops[i].name, ops[i].nlen) != ids[i])
			fz_fail("op %zu: concurrent intern gave id %lld", i, (long long)ids[i]);

	flush_and_compare(p, "engine and reference after joining the threads");
	free(ops);
	free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	uint8_t h0 = fz_u8(&in), h1 = fz_u8(&in), h2 = fz_u8(&in);
	bool threaded = h0 & 0x80;
	struct prog p = { .nm = 1 + (h0 & 7u) % 4u, .nwriters = 1 + ((h0 >> 3) & 3u) };
	if (h0 & 0x40)
		p.nm = 1 + (h0 & 7u); /* up to ST_MAX_METRICS */
	/* Small caps fold often; the reference requires cap >= 4 as the engine. */
	uint64_t cap = !threaded && (h1 & 0x80) ? 4 + (h1 & 0x3f) : 0;
	memcpy(p.pool, initial_names, sizeof(initial_names));
	p.npool = sizeof(initial_names) / sizeof(initial_names[0]);
	/* h1 bits 5-6: 1..4 merge workers (bit 5 is also the cap's, which
	 * forces one worker anyway). */
	p.e = make_engine(p.nm, 1 + (h2 & 3u), cap, 1 + ((h1 >> 5) & 3u));
	p.ref = st_ref_create(p.nm, cap);
	if (!p.ref)
		fz_fail("st_ref_create");

	if (threaded)
		run_threaded(&p, &in, 2 + (h2 >> 2) % 3u);
	else
		run_sequential(&p, &in, cap);

	st_ref_destroy(p.ref);
	st_engine_destroy(p.e);
	return 0;
}
