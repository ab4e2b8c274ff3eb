/* SPDX-License-Identifier: MIT */
/*
 * workload.c - deterministic generators for the benchmark's workloads.
 *
 *   hot      depth D (32), 10,000 distinct stacks grown as a random tree
 *            (each new stack keeps a prefix of an earlier one), Zipf draws:
 *            a CPU profiler's steady state, where nearly every sample is a
 *            stack seen before.
 *   cold     1,000,000 distinct depth-32 stacks drawn as a permutation, so
 *            every draw is a new stack.  Stack i is its 6 decimal digits
 *            spelled out: the tree branches 10 ways at depths 4, 10, 16, 22,
 *            28 and 32 and runs as chains in between, so the trie has about
 *            1.47 M nodes (shared prefixes, as real stacks have) instead of
 *            32 M.
 *   strings  ior-like records `comm;tracepoint;/path/components`: 100,000
 *            distinct paths under a shared directory tree, Zipf draws,
 *            ingested as strings so interning is part of the cost.
 *   replay   the stacks of a folded file, drawn in proportion to counts.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "shardtrie.h"
#include "workload.h"

/* ------------------------------------------------------------ builder */

struct hset {
	uint32_t *slot; /* index + 1, 0 = empty */
	size_t mask;
};

static int hset_init(struct hset *h, size_t want)
{
	size_t n = 1024;
	while (n < want * 2)
		n *= 2;
	h->slot = calloc(n, sizeof(*h->slot));
	h->mask = n - 1;
	return h->slot ? 0 : -ENOMEM;
}

struct builder {
	struct workload *w;
	size_t dict_cap;
	struct hset dset;
	uint32_t *st_off, *st_depth;
	size_t st_cap;
	size_t fs_cap;
	struct hset sset;
};

static int b_init(struct builder *b, struct workload *w, size_t dicts, size_t stacks)
{
	memset(b, 0, sizeof(*b));
	b->w = w;
	if (hset_init(&b->dset, dicts) || hset_init(&b->sset, stacks))
		return -ENOMEM;
	return 0;
}

/* Open addressing: the slot holding the key that `same` recognises, or the
 * empty slot where it would go; *found is the key's index + 1, 0 when new. */
typedef int (*hset_same)(const struct builder *b, uint32_t idx, const void *key, size_t len);
static size_t hset_find(const struct hset *h, uint64_t hash, hset_same same,
			const struct builder *b, const void *key, size_t len, uint32_t *found)
{
	size_t j = hash & h->mask;
	for (;;) {
		uint32_t v = h->slot[j];
		if (!v || same(b, v - 1, key, len)) {
			*found = v;
			return j;
		}
		j = (j + 1) & h->mask;
	}
}

static void oom(void)
{
	fprintf(stderr, "bench: out of memory\n");
	exit(2);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p)
		oom();
	return p;
}

/* Insert index + 1 at slot j of a set that must stay at most half full. */
static void hset_put(struct hset *h, size_t j, size_t count, const char *what)
{
	h->slot[j] = (uint32_t)count;
	if (count * 2 > h->mask) {
		fprintf(stderr, "bench: %s set too small\n", what);
		exit(2);
	}
}

static int same_name(const struct builder *b, uint32_t i, const void *s, size_t len)
{
	return b->w->dict_len[i] == len && memcmp(b->w->dict[i], s, len) == 0;
}

/* Local id of string s (added when new). */
static uint32_t b_dict(struct builder *b, const char *s, size_t len)
{
	struct workload *w = b->w;
	uint32_t v;
	size_t j = hset_find(&b->dset, XXH3_64bits(s, len), same_name, b, s, len, &v);
	if (v)
		return v - 1;
	if (w->ndict == b->dict_cap) {
		b->dict_cap = b->dict_cap ? b->dict_cap * 2 : 1024;
		w->dict = xrealloc(w->dict, b->dict_cap * sizeof(*w->dict));
		w->dict_len = xrealloc(w->dict_len, b->dict_cap * sizeof(*w->dict_len));
	}
	char *c = malloc(len + 1);
	if (!c)
		oom();
	memcpy(c, s, len);
	c[len] = 0;
	w->dict[w->ndict] = c;
	w->dict_len[w->ndict] = len;
	hset_put(&b->dset, j, ++w->ndict, "dictionary");
	return (uint32_t)(w->ndict - 1);
}

static int same_stack(const struct builder *b, uint32_t i, const void *f, size_t depth)
{
	return b->st_depth[i] == depth &&
	       memcmp(b->w->frames_store + b->st_off[i], f, depth * sizeof(uint32_t)) == 0;
}

/* Add a stack of local ids; returns its index (an earlier copy's when it
 * is a duplicate). */
static size_t b_stack(struct builder *b, const uint32_t *f, uint32_t depth)
{
	struct workload *w = b->w;
	uint32_t v;
	size_t j = hset_find(&b->sset, XXH3_64bits(f, depth * sizeof(*f)), same_stack, b, f, depth,
			     &v);
	if (v)
		return v - 1;
	if (w->nstacks == b->st_cap) {
		b->st_cap = b->st_cap ? b->st_cap * 2 : 1024;
		b->st_off = xrealloc(b->st_off, b->st_cap * sizeof(*b->st_off));
		b->st_depth = xrealloc(b->st_depth, b->st_cap * sizeof(*b->st_depth));
	}
	while (w->nframes_store + depth > b->fs_cap) {
		b->fs_cap = b->fs_cap ? b->fs_cap * 2 : 65536;
		w->frames_store = xrealloc(w->frames_store, b->fs_cap * sizeof(*w->frames_store));
	}
	memcpy(w->frames_store + w->nframes_store, f, depth * sizeof(*f));
	b->st_off[w->nstacks] = (uint32_t)w->nframes_store;
	b->st_depth[w->nstacks] = depth;
	w->nframes_store += depth;
	hset_put(&b->sset, j, ++w->nstacks, "stack");
	return w->nstacks - 1;
}

/* Turn local ids into engine ids and lay out the string views. */
static int b_finish(struct builder *b)
{
	struct workload *w = b->w;
	w->id_base = 1; /* "[other]" is interned first by st_engine_create */
	w->stacks = calloc(w->nstacks ? w->nstacks : 1, sizeof(*w->stacks));
	w->names_store = calloc(w->nframes_store + 1, sizeof(*w->names_store));
	w->lens_store = calloc(w->nframes_store + 1, sizeof(*w->lens_store));
	if (!w->stacks || !w->names_store || !w->lens_store)
		return -ENOMEM;
	for (size_t i = 0; i < w->nframes_store; i++) {
		uint32_t id = w->frames_store[i];
		w->names_store[i] = w->dict[id];
		w->lens_store[i] = w->dict_len[id];
		w->frames_store[i] = id + w->id_base;
	}
	for (size_t k = 0; k < w->nstacks; k++) {
		w->stacks[k].frames = w->frames_store + b->st_off[k];
		w->stacks[k].names = w->names_store + b->st_off[k];
		w->stacks[k].lens = w->lens_store + b->st_off[k];
		w->stacks[k].depth = b->st_depth[k];
	}
	free(b->dset.slot);
	free(b->sset.slot);
	free(b->st_off);
	free(b->st_depth);
	return 0;
}

static int zipf_cdf(struct workload *w, size_t n, double s, const double *weights)
{
	w->cdf = malloc(n * sizeof(*w->cdf));
	if (!w->cdf)
		return -ENOMEM;
	double acc = 0;
	for (size_t k = 0; k < n; k++) {
		acc += weights ? weights[k] : 1.0 / pow((double)(k + 1), s);
		w->cdf[k] = acc;
	}
	for (size_t k = 0; k < n; k++)
		w->cdf[k] /= acc;
	w->cdf[n - 1] = 1.0;
	w->draw_kind = WL_DRAW_CDF;
	return 0;
}

/* Thread t's draws when every draw of a pass must be a new stack: a
 * permutation of the stacks (repeated if samples exceed them). */
static int draw_permutation(const struct workload *w, uint32_t *d, uint64_t *rs)
{
	uint32_t *perm = malloc(w->nstacks * sizeof(*perm));
	if (!perm)
		return -ENOMEM;
	for (size_t i = 0; i < w->nstacks; i++)
		perm[i] = (uint32_t)i;
	for (size_t i = w->nstacks; i > 1; i--) {
		size_t j = wl_rand(rs) % i;
		uint32_t x = perm[i - 1];
		perm[i - 1] = perm[j];
		perm[j] = x;
	}
	for (size_t i = 0; i < w->samples; i++)
		d[i] = perm[i % w->nstacks];
	free(perm);
	return 0;
}

/* Draws from the workload's cumulative distribution (binary search). */
static void draw_cdf(const struct workload *w, uint32_t *d, uint64_t *rs)
{
	for (size_t i = 0; i < w->samples; i++) {
		double u = (double)(wl_rand(rs) >> 11) * 0x1.0p-53;
		size_t lo = 0, hi = w->nstacks - 1;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (w->cdf[mid] < u)
				lo = mid + 1;
			else
				hi = mid;
		}
		d[i] = (uint32_t)lo;
	}
}

const uint32_t *wl_draws(struct workload *w, unsigned t)
{
	if (t >= WL_MAX_THREADS)
		return NULL;
	if (w->draws[t])
		return w->draws[t];
	uint32_t *d = malloc(w->samples * sizeof(*d));
	if (!d)
		return NULL;
	uint64_t rs = w->seed ^ (0x5851f42d4c957f2dULL * (t + 1));
	if (w->draw_kind == WL_DRAW_PERMUTATION) {
		if (draw_permutation(w, d, &rs)) {
			free(d);
			return NULL;
		}
	} else {
		draw_cdf(w, d, &rs);
	}
	w->draws[t] = d;
	return d;
}

/* ------------------------------------------------------------ hot */

int wl_hot(struct workload *w, unsigned depth, size_t nstacks, double zipf_s, size_t samples,
	   uint64_t seed)
{
	memset(w, 0, sizeof(*w));
	w->name = "hot";
	w->what = "CPU profiler steady state: repeated stacks, Zipf draws, ids pre-interned";
	w->seed = seed;
	w->samples = samples;
	struct builder b;
	if (b_init(&b, w, 8192, nstacks))
		return -ENOMEM;
	/* 4096 function names, as a big binary's hot set. */
	enum { NFUNCS = 4096 };
	char buf[64];
	for (unsigned i = 0; i < NFUNCS; i++) {
		int n = snprintf(buf, sizeof(buf), "fn_%04u_%s", i,
				 i % 3 == 0 ? "[kernel]" : i % 3 == 1 ? "libc.so.6" : "app");
		b_dict(&b, buf, (size_t)n);
	}
	uint64_t rs = seed;
	uint32_t *f = malloc(depth * sizeof(*f));
	if (!f)
		return -ENOMEM;
	while (w->nstacks < nstacks) {
		/* Keep a prefix of an earlier stack, fill the rest at random. */
		uint32_t keep = 0;
		if (w->nstacks) {
			const uint32_t *src = w->frames_store +
					      (wl_rand(&rs) % w->nstacks) * (size_t)depth;
			keep = (uint32_t)(wl_rand(&rs) % depth);
			memcpy(f, src, keep * sizeof(*f));
		}
		for (uint32_t d = keep; d < depth; d++)
			f[d] = (uint32_t)(wl_rand(&rs) % NFUNCS);
		b_stack(&b, f, depth);
	}
	free(f);
	if (b_finish(&b))
		return -ENOMEM;
	return zipf_cdf(w, w->nstacks, zipf_s, NULL);
}

/* ------------------------------------------------------------ cold */

static uint64_t mix2(uint64_t a, uint64_t b)
{
	uint64_t s = a * 0x9e3779b97f4a7c15ULL ^ b;
	return wl_rand(&s);
}

int wl_cold(struct workload *w, size_t samples, uint64_t seed)
{
	enum { DEPTH = 32, NFUNCS = 4096, DIGITS = 6 };
	static const unsigned branch_at[DIGITS] = { 4, 10, 16, 22, 28, 32 };
	memset(w, 0, sizeof(*w));
	w->name = "cold";
	w->what = "1,000,000 distinct stacks, each drawn once per pass: node creation";
	w->seed = seed;
	w->samples = samples;
	const size_t nstacks = 1000000;
	struct builder b;
	if (b_init(&b, w, NFUNCS * 2, nstacks))
		return -ENOMEM;
	char buf[64];
	for (unsigned i = 0; i < NFUNCS; i++) {
		int n = snprintf(buf, sizeof(buf), "cold_fn_%04u", i);
		b_dict(&b, buf, (size_t)n);
	}
	uint32_t f[DEPTH];
	for (size_t i = 0; i < nstacks; i++) {
		unsigned nb = 0; /* branch levels passed */
		uint64_t div = 1000000;
		for (unsigned d = 1; d <= DEPTH; d++) {
			int branch = nb < DIGITS && branch_at[nb] == d;
			if (branch) {
				nb++;
				div /= 10;
			}
			uint64_t p = i / div; /* digits decided so far */
			uint64_t h = mix2(seed ^ d, branch ? p / 10 : p);
			f[d - 1] = (uint32_t)((branch ? h + p % 10 : h) % NFUNCS);
		}
		b_stack(&b, f, DEPTH);
	}
	if (w->nstacks != nstacks) {
		fprintf(stderr, "bench: cold generator made %zu stacks, want %zu\n", w->nstacks,
			nstacks);
		return -EINVAL;
	}
	/* 1 + sum over depths of distinct prefixes. */
	uint64_t nodes = 1, div = 1000000;
	for (unsigned d = 1, nb = 0; d <= DEPTH; d++) {
		if (nb < DIGITS && branch_at[nb] == d) {
			nb++;
			div /= 10;
		}
		nodes += nstacks / div;
	}
	w->expect_nodes = nodes;
	if (b_finish(&b))
		return -ENOMEM;
	w->draw_kind = WL_DRAW_PERMUTATION;
	return 0;
}

/* ------------------------------------------------------------ strings */

static const char *const comms[] = { "nginx", "postgres", "java", "python3", "node", "sshd",
				     "systemd", "cc1", "ld", "make", "bash", "rsyslogd",
				     "containerd", "dockerd", "redis-server", "mysqld" };
static const char *const tps[] = { "sys_enter_openat", "sys_enter_read", "sys_enter_write",
				   "sys_enter_close", "sys_enter_newfstatat", "sys_enter_statx",
				   "sys_enter_getdents64", "sys_enter_unlinkat",
				   "sys_enter_renameat2", "sys_enter_mmap", "sys_enter_pread64",
				   "sys_enter_fsync" };
static const char *const tops[] = { "usr", "var", "home", "etc", "opt", "srv", "tmp", "proc" };
static const char *const dirs[] = { "lib", "share", "bin", "include", "log", "cache", "src",
				    "x86_64-linux-gnu", "python3.11", "site-packages",
				    "node_modules", "data", "conf.d", "www", "pgsql", "16",
				    "main", "base", "pg_wal", "journal", "locale", "doc",
				    "man", "fonts", "systemd", "system", "db", "run", "git",
				    "objects", "refs", "build" };
static const char *const exts[] = { ".so", ".py", ".js", ".conf", ".log", ".json", ".h", ".c",
				    "", ".db", ".idx", ".pyc" };
enum { NC = sizeof(comms) / sizeof(comms[0]), NT = sizeof(tps) / sizeof(tps[0]),
       NTOP = sizeof(tops) / sizeof(tops[0]), ND = sizeof(dirs) / sizeof(dirs[0]),
       NE = sizeof(exts) / sizeof(exts[0]), MAXD = 12 };

static uint32_t b_name(struct builder *b, const char *s)
{
	return b_dict(b, s, strlen(s));
}

/* One record `comm;tracepoint;/top/dir.../file` into f: its depth. */
static uint32_t strings_record(struct builder *b, uint64_t *rs, uint32_t *f)
{
	char buf[64];
	uint32_t d = 0;
	uint64_t r = wl_rand(rs);
	f[d++] = b_name(b, comms[r % NC]);
	r = wl_rand(rs);
	f[d++] = b_name(b, tps[r % NT]);
	r = wl_rand(rs);
	/* Skewed toward the first entries: a few hot directories. */
	f[d++] = b_name(b, tops[(r % NTOP) * (r % NTOP) / NTOP]);
	unsigned ndirs = 1 + (unsigned)(wl_rand(rs) % 6);
	for (unsigned k = 0; k < ndirs; k++) {
		r = wl_rand(rs);
		if (r % 4 == 0) { /* a per-project directory */
			int n = snprintf(buf, sizeof(buf), "proj%03u", (unsigned)(r >> 8) % 300);
			f[d++] = b_dict(b, buf, (size_t)n);
		} else {
			unsigned x = (unsigned)((r >> 8) % ND);
			f[d++] = b_name(b, dirs[x * x / ND]);
		}
	}
	r = wl_rand(rs);
	int n = snprintf(buf, sizeof(buf), "file%05u%s", (unsigned)(r % 40000),
			 exts[(r >> 20) % NE]);
	f[d++] = b_dict(b, buf, (size_t)n);
	return d;
}

int wl_strings(struct workload *w, size_t npaths, double zipf_s, size_t samples, uint64_t seed)
{
	memset(w, 0, sizeof(*w));
	w->name = "strings";
	w->what = "ior-like comm;tracepoint;/path records, frames as strings (interning timed)";
	w->by_strings = 1;
	w->seed = seed;
	w->samples = samples;
	struct builder b;
	if (b_init(&b, w, npaths * 2, npaths))
		return -ENOMEM;
	uint64_t rs = seed;
	uint32_t f[MAXD];
	while (w->nstacks < npaths) {
		uint32_t d = strings_record(&b, &rs, f);
		b_stack(&b, f, d);
	}
	if (b_finish(&b))
		return -ENOMEM;
	return zipf_cdf(w, w->nstacks, zipf_s, NULL);
}

/* ------------------------------------------------------------ replay */

struct replay {
	struct builder b;
	const char *path;
	size_t lineno;
	uint32_t *f;            /* the line's frames */
	size_t cap;
	double *weights;        /* per distinct stack: the sum of its counts */
	size_t wcap;
};

/* Split "a;b;c" into r->f: its depth, or 0 when out of memory. */
static uint32_t replay_frames(struct replay *r, char *line)
{
	uint32_t d = 0;
	for (char *s = line;;) {
		char *semi = strchr(s, ';');
		size_t l = semi ? (size_t)(semi - s) : strlen(s);
		if (d == r->cap) {
			r->cap = r->cap ? r->cap * 2 : 64;
			r->f = realloc(r->f, r->cap * sizeof(*r->f));
			if (!r->f)
				return 0;
		}
		r->f[d++] = b_dict(&r->b, s, l);
		if (!semi)
			return d;
		s = semi + 1;
	}
}

/* Stack k (new when it is the last one) gets cnt more weight. */
static int replay_weigh(struct replay *r, size_t k, size_t before, double cnt)
{
	if (k != before) {
		r->weights[k] += cnt; /* duplicate line */
		return 0;
	}
	if (before == r->wcap) {
		r->wcap = r->wcap ? r->wcap * 2 : 1024;
		r->weights = realloc(r->weights, r->wcap * sizeof(*r->weights));
		if (!r->weights)
			return -ENOMEM;
	}
	r->weights[before] = cnt;
	return 0;
}

/* One line of the folded file (blank and # lines skipped): 0 or -errno. */
static int replay_line(struct replay *r, char *line, ssize_t len)
{
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = 0;
	if (!len || line[0] == '#')
		return 0;
	char *sp = strrchr(line, ' ');
	char *end = NULL;
	unsigned long long cnt = sp ? strtoull(sp + 1, &end, 10) : 0;
	if (!sp || sp == line || !end || *end || end == sp + 1) {
		fprintf(stderr, "%s:%zu: expected \"frame;frame;... COUNT\"\n", r->path, r->lineno);
		return -EINVAL;
	}
	*sp = 0;
	uint32_t d = replay_frames(r, line);
	if (!d)
		return -ENOMEM;
	size_t before = r->b.w->nstacks;
	return replay_weigh(r, b_stack(&r->b, r->f, d), before, (double)cnt);
}

static int replay_read(struct replay *r, FILE *fp)
{
	char *line = NULL;
	size_t lcap = 0;
	ssize_t len;
	int ret = 0;
	while (!ret && (len = getline(&line, &lcap, fp)) >= 0) {
		r->lineno++;
		ret = replay_line(r, line, len);
	}
	free(line);
	return ret;
}

int wl_replay(struct workload *w, const char *path, size_t samples, uint64_t seed)
{
	memset(w, 0, sizeof(*w));
	w->name = "replay";
	w->what = "a recorded folded profile, stacks drawn in proportion to their counts";
	w->seed = seed;
	w->samples = samples;
	FILE *fp = fopen(path, "r");
	if (!fp) {
		fprintf(stderr, "bench: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	struct replay r = { .path = path };
	if (b_init(&r.b, w, 1u << 20, 1u << 20)) {
		fclose(fp);
		return -ENOMEM;
	}
	int ret = replay_read(&r, fp);
	if (!ret && !w->nstacks) {
		fprintf(stderr, "%s: no stacks\n", path);
		ret = -EINVAL;
	}
	if (!ret)
		ret = b_finish(&r.b);
	if (!ret)
		ret = zipf_cdf(w, w->nstacks, 0, r.weights);
	free(r.f);
	free(r.weights);
	fclose(fp);
	return ret;
}

void wl_free(struct workload *w)
{
	for (size_t i = 0; i < w->ndict; i++)
		free(w->dict[i]);
	free(w->dict);
	free(w->dict_len);
	free(w->stacks);
	free(w->frames_store);
	free(w->names_store);
	free(w->lens_store);
	free(w->cdf);
	for (unsigned t = 0; t < WL_MAX_THREADS; t++)
		free(w->draws[t]);
	memset(w, 0, sizeof(*w));
}

struct st_engine *wl_engine(const struct workload *w, unsigned merge_ms)
{
	struct st_options o;
	st_options_init(&o);
	o.merge_interval_ms = merge_ms;
	return wl_engine_opts(w, &o);
}

struct st_engine *wl_engine_opts(const struct workload *w, const struct st_options *o)
{
	struct st_engine *e = st_engine_create(o);
	if (!e) {
		fprintf(stderr, "workload: st_engine_create: %s\n", strerror(errno));
		return NULL;
	}
	if (w->by_strings)
		return e;
	/* Pre-intern: the stacks hold ids dict[i] -> id_base + i. */
	for (size_t i = 0; i < w->ndict; i++) {
		int64_t id = st_intern(e, w->dict[i], w->dict_len[i]);
		if (id != (int64_t)(w->id_base + i)) {
			fprintf(stderr, "workload: %s: frame %zu interned as %" PRId64 ", expected %zu\n",
				w->name, i, id, w->id_base + i);
			st_engine_destroy(e);
			return NULL;
		}
	}
	return e;
}
