/* SPDX-License-Identifier: MIT */
/*
 * compare.c - shardtrie against the design it replaces (issue 20 item 6):
 * the seed's LiveTrie (bench/seed/livetrie.go: one RWMutex, a Go map of
 * children per node, versioned, JSON snapshot under the read lock), fed the
 * same pre-generated events in the same run.
 *
 * Events: ior-like (what the seed ingested): NSTACKS distinct stacks of 3-5
 * string frames (comm; tracepoint; path components), drawn Zipf(1.0), each
 * with a duration-like value.  They are generated here once (fixed seed),
 * written to a file the Go peer reads, and kept in memory for the engine.
 *
 * Cells, each REPS times, interleaved (engine, seed, engine, seed ...) so a
 * machine's drift hits both alike; the figure is the median:
 *   threads 1 and N (N = online CPUs, at least 2), reader off and on.
 *   reader on = every 10 ms a snapshot as JSON {n,v,t,c} with
 *   min_fraction 0.001 (the seed's SnapshotJSON; for the engine st_snap_acquire
 *   + st_export(ST_FMT_JSON) to /dev/null).
 * The engine ingests through st_writer_ingest_strs (one call per event, the
 * seed's granularity); st_writer_ingest_strs_batch (64 per call) is a
 * separate row.
 *
 * Stalls: each writer times batches of 1024 events; one slower than 1 ms is
 * a stall (a tracer's ring buffer overflows while its consumer waits).
 * Reported per second of ingest.
 *
 * Exactness: after each cell the engine's root total (flushed) and the
 * peer's trie total must equal the events' sum, or the run fails (exit 2).
 *
 * Output: a table, then one line
 *   SEED vs_seed_1t=X vs_seed_nt=Y seed_stalls_ps=A st_stalls_ps=B ...
 * (ratios are events/s of the engine over the seed's, reader on).
 *
 * Usage: shardtrie_seed [--events N] [--reps R] [--peer PATH] [--dir DIR]
 *        shardtrie_seed --profile single|batch [--events N] [--stacks N]
 *   --profile: one engine cell only (one writer, no reader, no peer, no
 *   events file), for valgrind --tool=callgrind: writer_main's inclusive
 *   cost over --events is the writer's instructions per event.  Also prints
 *   the writer thread's CPU time per event (on a shared machine steadier
 *   than wall time: it leaves out the time the thread was not running).
 *   --stacks: that many distinct stacks instead of 2000 (each with its own
 *   leaf name): a fresh engine's first sightings dominate.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shardtrie.h"
#include "shardtrie_export.h"

enum { NSTACKS_SEED = 2000, TBATCH = 1024, SBATCH = 64, READER_MS = 10 };
static const double STALL_S = 1e-3;

struct stack {
	unsigned depth;
	const char *f[5];
	size_t len[5];
};

/* NSTACKS_SEED (the comparison), or --stacks N in --profile mode. */
static unsigned NSTACKS = NSTACKS_SEED;
static struct stack *stacks;
static uint32_t *ev_idx, *ev_val;
static size_t nev;
static uint64_t ev_sum;

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------- events */

static const char *const comms[] = { "nginx", "postgres", "java", "redis-server", "node",
	"python3", "sshd", "systemd-journal", "kworker/u8:2", "containerd", "etcd", "envoy" };
static const char *const tps[] = { "enter_read", "enter_write", "enter_openat", "enter_close",
	"enter_pread64", "enter_pwrite64", "enter_fsync", "enter_newfstatat", "enter_getdents64",
	"enter_lseek", "enter_readv", "enter_writev", "enter_sendto", "enter_recvfrom",
	"enter_io_uring_enter", "enter_fdatasync" };
static const char *const dirs[] = { "/var", "lib", "postgresql", "15", "main", "base", "pg_wal",
	"/usr", "share", "nginx", "html", "/home", "app", "data", "cache", "log", "tmp", "/proc",
	"self", "fd", "/etc", "ssl", "certs", "node_modules", "index.js", "segment" };

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p) {
		perror("seed");
		exit(2);
	}
	return p;
}

static void gen_events(size_t n, uint64_t seed)
{
	uint64_t s = seed;
	stacks = calloc(NSTACKS, sizeof(*stacks));
	double *cdf = malloc(NSTACKS * sizeof(*cdf)), acc = 0;
	if (!stacks || !cdf) {
		perror("seed: stacks");
		exit(2);
	}
	for (unsigned i = 0; i < NSTACKS; i++) {
		struct stack *st = &stacks[i];
		st->depth = 3 + (unsigned)(rnd(&s) % 3);
		st->f[0] = comms[rnd(&s) % (sizeof(comms) / sizeof(*comms))];
		st->f[1] = tps[rnd(&s) % (sizeof(tps) / sizeof(*tps))];
		for (unsigned d = 2; d < st->depth; d++) {
			char buf[64];
			/* The last component is a file of this stack (distinct
			 * names at the leaves, shared directories above). */
			if (d + 1 == st->depth)
				snprintf(buf, sizeof(buf), "file-%u.dat", i);
			else
				snprintf(buf, sizeof(buf), "%s", dirs[rnd(&s) % (sizeof(dirs) / sizeof(*dirs))]);
			st->f[d] = xstrdup(buf);
		}
		for (unsigned d = 0; d < st->depth; d++)
			st->len[d] = strlen(st->f[d]);
	}
	/* Zipf(1.0) over the stacks by inverse CDF. */
	for (unsigned i = 0; i < NSTACKS; i++)
		cdf[i] = (acc += 1.0 / (i + 1));
	ev_idx = malloc(n * sizeof(*ev_idx));
	ev_val = malloc(n * sizeof(*ev_val));
	if (!ev_idx || !ev_val) {
		perror("seed: events");
		exit(2);
	}
	for (size_t k = 0; k < n; k++) {
		double u = (double)(rnd(&s) >> 11) * 0x1.0p-53 * acc;
		unsigned lo = 0, hi = NSTACKS - 1;
		while (lo < hi) {
			unsigned mid = (lo + hi) / 2;
			if (cdf[mid] < u)
				lo = mid + 1;
			else
				hi = mid;
		}
		ev_idx[k] = lo;
		ev_val[k] = 1 + (uint32_t)(rnd(&s) % 5000); /* ns-like duration */
		ev_sum += ev_val[k];
	}
	free(cdf);
	nev = n;
}

static void put32(FILE *f, uint32_t v)
{
	unsigned char b[4] = { v, v >> 8, v >> 16, v >> 24 };
	fwrite(b, 1, 4, f);
}

static int write_events(const char *path)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -errno;
	fputs("STSEED1\n", f);
	put32(f, NSTACKS);
	for (unsigned i = 0; i < NSTACKS; i++) {
		put32(f, stacks[i].depth);
		for (unsigned d = 0; d < stacks[i].depth; d++) {
			put32(f, (uint32_t)stacks[i].len[d]);
			fwrite(stacks[i].f[d], 1, stacks[i].len[d], f);
		}
	}
	uint64_t n = nev;
	unsigned char b8[8];
	for (int i = 0; i < 8; i++)
		b8[i] = (unsigned char)(n >> (8 * i));
	fwrite(b8, 1, 8, f);
	for (size_t k = 0; k < nev; k++)
		put32(f, ev_idx[k]);
	for (size_t k = 0; k < nev; k++)
		put32(f, ev_val[k]);
	int err = ferror(f) ? -EIO : 0;
	if (fclose(f) && !err)
		err = -errno;
	return err;
}

/* ------------------------------------------------------------- engine */

struct cell {
	double meps, stalls_ps;
	unsigned long snaps;
	double cpu_ns; /* writers' thread CPU time per event */
};

struct wctx {
	struct st_engine *e;
	size_t lo, hi;
	bool batch;
	unsigned long stalls;
	int err;
	double cpu_s; /* this writer's thread CPU time */
};

static double thread_cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *writer_main(void *arg)
{
	struct wctx *c = arg;
	struct st_writer *w = st_writer_open(c->e);
	if (!w) {
		c->err = -ENOMEM;
		return NULL;
	}
	uint64_t vals[TBATCH];
	struct st_str_sample ss[SBATCH];
	double cpu0 = thread_cpu();
	for (size_t b = c->lo; b < c->hi; b += TBATCH) {
		size_t end = b + TBATCH < c->hi ? b + TBATCH : c->hi;
		double t0 = now();
		if (!c->batch) {
			for (size_t i = b; i < end; i++) {
				const struct stack *st = &stacks[ev_idx[i]];
				uint64_t v = ev_val[i];
				int r = st_writer_ingest_strs(w, st->f, st->len, st->depth, &v);
				if (r && !c->err)
					c->err = r;
			}
		} else {
			for (size_t i = b; i < end; i += SBATCH) {
				size_t m = end - i < SBATCH ? end - i : SBATCH;
				for (size_t j = 0; j < m; j++) {
					const struct stack *st = &stacks[ev_idx[i + j]];
					vals[j] = ev_val[i + j];
					ss[j] = (struct st_str_sample){ st->f, st->len, st->depth, &vals[j] };
				}
				long r = st_writer_ingest_strs_batch(w, ss, m);
				if (r != (long)m && !c->err)
					c->err = r < 0 ? (int)r : -EIO;
			}
		}
		if (now() - t0 > STALL_S)
			c->stalls++;
	}
	c->cpu_s = thread_cpu() - cpu0;
	st_writer_close(w);
	return NULL;
}

struct rctx {
	struct st_engine *e;
	atomic_bool stop;
	unsigned long snaps;
	FILE *null;
};

/* Every READER_MS: the published snapshot as ior JSON (the seed's reader). */
static void *reader_main(void *arg)
{
	struct rctx *r = arg;
	struct st_export_opts o;
	st_export_opts_init(&o);
	o.min_fraction = 0.001;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!atomic_load(&r->stop)) {
		next.tv_nsec += READER_MS * 1000000L;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000L;
		}
		/* A periodic timer, not synchronisation: the reader's rate. */
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		struct st_snap *s = st_snap_acquire(r->e);
		st_export(s, ST_FMT_JSON, &o, r->null);
		st_snap_release(s);
		r->snaps++;
	}
	return NULL;
}

static int engine_cell(unsigned nthr, bool reader, bool batch, struct cell *out)
{
	struct st_options o;
	st_options_init(&o);
	o.metrics[0].name = "duration";
	o.metrics[0].unit = "nanoseconds";
	struct st_engine *e = st_engine_create(&o);
	if (!e)
		return -errno;
	struct wctx wc[64];
	pthread_t wt[64], rt;
	struct rctx rc = { .e = e, .null = fopen("/dev/null", "w") };
	if (!rc.null) {
		st_engine_destroy(e);
		return -errno;
	}
	if (reader)
		pthread_create(&rt, NULL, reader_main, &rc);
	double t0 = now();
	for (unsigned t = 0; t < nthr; t++) {
		wc[t] = (struct wctx){ e, nev * t / nthr, nev * (t + 1) / nthr, batch, 0, 0, 0 };
		pthread_create(&wt[t], NULL, writer_main, &wc[t]);
	}
	unsigned long stalls = 0;
	int err = 0;
	double cpu = 0;
	for (unsigned t = 0; t < nthr; t++) {
		pthread_join(wt[t], NULL);
		stalls += wc[t].stalls;
		cpu += wc[t].cpu_s;
		if (wc[t].err && !err)
			err = wc[t].err;
	}
	double secs = now() - t0;
	if (reader) {
		atomic_store(&rc.stop, true);
		pthread_join(rt, NULL);
	}
	fclose(rc.null);
	st_flush(e);
	struct st_snap *s = st_snap_acquire(e);
	uint64_t total = st_snap_total(s, ST_NODE_ROOT, 0);
	st_snap_release(s);
	st_engine_destroy(e);
	if (err)
		return err;
	if (total != ev_sum) {
		fprintf(stderr, "seed: engine total %" PRIu64 " != events' sum %" PRIu64 "\n", total, ev_sum);
		return -EIO;
	}
	*out = (struct cell){ nev / secs / 1e6, stalls / secs, rc.snaps, cpu / nev * 1e9 };
	return 0;
}

/* ------------------------------------------------------------- the peer */

static int seed_cell(const char *peer, const char *evfile, unsigned nthr, bool reader,
		     struct cell *out)
{
	char cmd[8400];
	snprintf(cmd, sizeof(cmd), "'%s' -events '%s' -threads %u -reader-ms %d", peer, evfile, nthr,
		 reader ? READER_MS : 0);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -errno;
	char line[512] = "";
	bool got = fgets(line, sizeof(line), p) != NULL;
	int st = pclose(p);
	double meps = 0, sps = 0;
	unsigned long snaps = 0;
	uint64_t total = 0;
	const char *m = strstr(line, "meps="), *sp = strstr(line, "stalls_per_s="),
		   *sn = strstr(line, "snaps="), *tt = strstr(line, "total=");
	if (!got || st || !m || !sp || !sn || !tt) {
		fprintf(stderr, "seed: the peer failed (%s): %s", cmd, got ? line : "no output\n");
		return -EIO;
	}
	meps = strtod(m + 5, NULL);
	sps = strtod(sp + 13, NULL);
	snaps = strtoul(sn + 6, NULL, 10);
	total = strtoull(tt + 6, NULL, 10);
	if (total != ev_sum) {
		fprintf(stderr, "seed: peer total %" PRIu64 " != events' sum %" PRIu64 "\n", total, ev_sum);
		return -EIO;
	}
	*out = (struct cell){ meps, sps, snaps, 0 };
	return 0;
}

/* ------------------------------------------------------------- main */

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_dbl);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

enum { PEER_SEED, PEER_ENGINE, PEER_BATCH, NPEERS };
static const char *const peer_name[] = { "seed LiveTrie (Go)", "shardtrie strs", "shardtrie strs_batch" };

int main(int argc, char **argv)
{
	size_t n = 20000000;
	unsigned reps = 3;
	const char *peer = "build/release/bench/seed/livetrie", *dir = "build/bench";
	const char *profile = NULL;
	static const struct option lo[] = { { "events", 1, 0, 'n' }, { "reps", 1, 0, 'r' },
		{ "peer", 1, 0, 'p' }, { "dir", 1, 0, 'd' }, { "profile", 1, 0, 'P' },
		{ "stacks", 1, 0, 'S' }, { 0, 0, 0, 0 } };
	for (int c; (c = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
		if (c == 'n')
			n = strtoull(optarg, NULL, 0);
		else if (c == 'r')
			reps = (unsigned)strtoul(optarg, NULL, 0);
		else if (c == 'p')
			peer = optarg;
		else if (c == 'd')
			dir = optarg;
		else if (c == 'P' && (!strcmp(optarg, "single") || !strcmp(optarg, "batch")))
			profile = optarg;
		else if (c == 'S')
			NSTACKS = (unsigned)strtoul(optarg, NULL, 0);
		else {
			fprintf(stderr,
				"usage: %s [--events N] [--reps R] [--peer PATH] [--dir DIR]\n"
				"       %s --profile single|batch [--events N] [--stacks N]\n",
				argv[0], argv[0]);
			return 2;
		}
	}
	if (!n || !reps || reps > 15) {
		fprintf(stderr, "seed: --events must be > 0 and --reps 1..15\n");
		return 2;
	}
	if (!NSTACKS || NSTACKS > 10000000 || (NSTACKS != NSTACKS_SEED && !profile)) {
		fprintf(stderr, "seed: --stacks is 1..10000000, and only with --profile\n");
		return 2;
	}
	long nc = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned nt = nc >= 2 ? (unsigned)(nc > 64 ? 64 : nc) : 2;
	gen_events(n, 0x5eedf00dULL);
	if (profile) {
		struct cell c;
		int perr = engine_cell(1, false, !strcmp(profile, "batch"), &c);
		if (perr) {
			fprintf(stderr, "seed: profile %s: %s\n", profile, strerror(-perr));
			return 2;
		}
		printf("PROFILE %s events=%zu meps=%.2f writer_cpu_ns_per_event=%.1f\n", profile,
		       nev, c.meps, c.cpu_ns);
		return 0;
	}
	char evfile[4096];
	snprintf(evfile, sizeof(evfile), "%s/seed-events.bin", dir);
	int err = write_events(evfile);
	if (err) {
		fprintf(stderr, "seed: %s: %s\n", evfile, strerror(-err));
		return 2;
	}
	printf("seed comparison: %zu ior-like events (%u stacks of 3-5 frames, Zipf 1.0), %u reps, "
	       "medians; reader = JSON snapshot every %d ms\n",
	       nev, NSTACKS, reps, READER_MS);
	unsigned thr[2] = { 1, nt };
	/* med[peer][thread idx][reader] */
	struct cell med[NPEERS][2][2];
	for (int ti = 0; ti < 2; ti++)
		for (int rd = 0; rd < 2; rd++) {
			double meps[NPEERS][15], sps[NPEERS][15], snaps[NPEERS][15];
			double cpu[NPEERS][15];
			for (unsigned r = 0; r < reps; r++)
				for (int p = 0; p < NPEERS; p++) {
					struct cell c = { 0 };
					err = p == PEER_SEED ? seed_cell(peer, evfile, thr[ti], rd, &c)
							     : engine_cell(thr[ti], rd, p == PEER_BATCH, &c);
					if (err) {
						fprintf(stderr, "seed: %s, %u threads: %s\n", peer_name[p],
							thr[ti], strerror(-err));
						return 2;
					}
					meps[p][r] = c.meps;
					sps[p][r] = c.stalls_ps;
					snaps[p][r] = (double)c.snaps;
					cpu[p][r] = c.cpu_ns;
				}
			for (int p = 0; p < NPEERS; p++) {
				med[p][ti][rd] = (struct cell){ median(meps[p], reps), median(sps[p], reps),
								(unsigned long)median(snaps[p], reps),
								median(cpu[p], reps) };
				printf("  %-22s threads=%-2u reader=%-3s %8.2f M events/s  stalls/s %7.2f  snapshots %lu",
				       peer_name[p], thr[ti], rd ? "on" : "off", med[p][ti][rd].meps,
				       med[p][ti][rd].stalls_ps, med[p][ti][rd].snaps);
				/* The peer's CPU time is not measured (its own process). */
				if (p != PEER_SEED)
					printf("  writer CPU %.1f ns/event", med[p][ti][rd].cpu_ns);
				putchar('\n');
			}
			fflush(stdout);
		}
	unlink(evfile);
	const struct cell *s1 = &med[PEER_SEED][0][1], *sn = &med[PEER_SEED][1][1];
	const struct cell *e1 = &med[PEER_ENGINE][0][1], *en = &med[PEER_ENGINE][1][1];
	printf("SEED vs_seed_1t=%.2f vs_seed_nt=%.2f seed_nt=%u seed_stalls_ps=%.2f st_stalls_ps=%.2f "
	       "seed_reader_loss=%.3f st_reader_loss=%.3f batch_vs_single_1t=%.2f\n",
	       e1->meps / s1->meps, en->meps / sn->meps, nt, sn->stalls_ps + s1->stalls_ps,
	       en->stalls_ps + e1->stalls_ps, 1 - s1->meps / med[PEER_SEED][0][0].meps,
	       1 - e1->meps / med[PEER_ENGINE][0][0].meps,
	       med[PEER_BATCH][0][1].meps / e1->meps);
	return 0;
}
