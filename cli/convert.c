/* SPDX-License-Identifier: MIT */
/*
 * convert.c - `shardtrie convert`: stack files in, a flamegraph format out,
 * through the engine.
 *
 *   reader (this thread)                        parser threads (N)
 *   4 MiB blocks (of the mapped file, or  --->  st_folded_ingest() into
 *   read()), cut at the last '\n'       bounded  their own writer/shard
 *   (read(): lines counted per block     queue
 *   for FILE:LINE; mapped: counted only
 *   when a bad line is reported)
 *   then st_flush() -> snapshot -> exporter -> atomic output file
 *   (folded output: the shards' distinct stacks, sorted, with no trie or
 *   snapshot: st_export_folded_once)
 *
 * Memory is bounded by the queue (2 blocks per thread) plus the trie, not
 * by the input size.  A line longer than ST_MAX_LINE is reported and skipped
 * without being buffered.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "cli.h"
#include "shardtrie_parse.h"

#define BLOCK (4u << 20)
#define MAX_REPORTED 100

struct block {
	char *buf;
	size_t len;
	bool mapped; /* buf points into maps[map]: not ours to recycle */
	/* Absolute line number of buf's first line; for a mapped block it is
	 * only counted when a bad line needs it (map_line). */
	uint64_t first_line;
	unsigned map;
	const char *file;
	const char *event; /* perf: the event filter in force, or NULL */
	struct block *next;
};

struct job {
	struct st_engine *e;
	unsigned metric;
	bool perf;                  /* -f perf (else folded) */
	struct st_perf_opts popts;  /* perf options; event set per block */
	char *event;                /* perf: first event seen (or --event-filter) */
	pthread_mutex_t mu;
	pthread_cond_t cv_items, cv_space;
	struct block *head, *tail;
	unsigned queued, max_queued;
	bool done;
	/* Parsed blocks' buffers, reused by the reader: fresh 4 MiB buffers
	 * would cost a page fault and a page clear per 4 KiB of input. */
	char *pool[64];
	unsigned npool;
	/* Inputs mapped whole (regular files), unmapped once parsed. */
	struct mapping {
		char *p;
		size_t len;
		/* Byte known_off starts line known_line (under mu). */
		size_t known_off;
		uint64_t known_line;
	} *maps;
	unsigned nmaps;
	/* Totals, under mu. */
	struct st_parse_stats stats;
	uint64_t reported;
	int err;
};

struct worker_arg {
	struct job *j;
	struct block *cur;
};

static uint64_t count_lines(const char *p, size_t n);

/* Caller holds mu. */
static void report_locked(struct job *j, const char *file, uint64_t line, const char *msg)
{
	if (j->reported++ < MAX_REPORTED)
		fprintf(stderr, "%s:%llu: %s\n", file, (unsigned long long)line, msg);
}

static void report(struct job *j, const char *file, uint64_t line, const char *msg)
{
	pthread_mutex_lock(&j->mu);
	report_locked(j, file, line, msg);
	pthread_mutex_unlock(&j->mu);
}

/*
 * Line number of byte p of mapping mi, counted from the last point asked
 * (forwards or backwards), so lines are counted only when a bad line is
 * reported, and reports in input order count each byte once.  Caller
 * holds mu.
 */
static uint64_t map_line(struct job *j, unsigned mi, const char *p)
{
	struct mapping *m = &j->maps[mi];
	const char *k = m->p + m->known_off;
	if (p >= k)
		m->known_line += count_lines(k, (size_t)(p - k));
	else
		m->known_line -= count_lines(p, (size_t)(k - p));
	m->known_off = (size_t)(p - m->p);
	return m->known_line;
}

static void on_bad_line(void *arg, uint64_t line, const char *msg)
{
	struct worker_arg *w = arg;
	struct block *b = w->cur;
	if (!b->mapped) {
		report(w->j, b->file, b->first_line + line - 1, msg);
		return;
	}
	pthread_mutex_lock(&w->j->mu);
	report_locked(w->j, b->file, map_line(w->j, b->map, b->buf) + line - 1, msg);
	pthread_mutex_unlock(&w->j->mu);
}

static char *block_get(struct job *j)
{
	char *b = NULL;
	pthread_mutex_lock(&j->mu);
	if (j->npool)
		b = j->pool[--j->npool];
	pthread_mutex_unlock(&j->mu);
	return b ? b : malloc(BLOCK);
}

static void block_put(struct job *j, char *buf)
{
	pthread_mutex_lock(&j->mu);
	if (j->npool < sizeof(j->pool) / sizeof(j->pool[0])) {
		j->pool[j->npool++] = buf;
		buf = NULL;
	}
	pthread_mutex_unlock(&j->mu);
	free(buf);
}

static void *worker(void *arg)
{
	struct job *j = arg;
	struct worker_arg wa = { j, NULL };
	struct st_parse_stats st = { 0 };
	struct st_writer *w = st_writer_open(j->e);
	int err = w ? 0 : -errno;
	/* perf: frame and sample caches that last across blocks. */
	struct st_perf_cache *pc = NULL;
	if (!err && j->perf && !(pc = st_perf_cache_new()))
		err = -ENOMEM;
	for (;;) {
		pthread_mutex_lock(&j->mu);
		while (!j->head && !j->done)
			pthread_cond_wait(&j->cv_items, &j->mu);
		struct block *b = j->head;
		if (b) {
			j->head = b->next;
			if (!j->head)
				j->tail = NULL;
			j->queued--;
			pthread_cond_signal(&j->cv_space);
		}
		pthread_mutex_unlock(&j->mu);
		if (!b)
			break;
		if (!err) {
			wa.cur = b;
			if (j->perf) {
				struct st_perf_opts po = j->popts;
				po.event = b->event;
				err = st_perf_ingest_cached(pc, w, j->metric, &po, b->buf, b->len,
							    on_bad_line, &wa, &st);
			} else {
				err = st_folded_ingest(w, st_engine_nmetrics(j->e), j->metric, b->buf,
						       b->len, on_bad_line, &wa, &st);
			}
		}
		if (!b->mapped)
			block_put(j, b->buf);
		free(b);
	}
	st_perf_cache_free(pc);
	st_writer_close(w);
	pthread_mutex_lock(&j->mu);
	j->stats.lines += st.lines;
	j->stats.samples += st.samples;
	j->stats.skipped += st.skipped;
	j->stats.malformed += st.malformed;
	j->stats.dropped += st.dropped;
	if (err && !j->err)
		j->err = err;
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

static void enqueue(struct job *j, char *buf, size_t len, uint64_t first_line, const char *file,
		    bool mapped, unsigned map)
{
	struct block *b = malloc(sizeof(*b));
	if (!b) {
		if (!mapped)
			free(buf);
		pthread_mutex_lock(&j->mu);
		j->err = -ENOMEM;
		pthread_mutex_unlock(&j->mu);
		return;
	}
	if (j->perf && !j->event) {
		/* The first event of the input is the default filter: fix it
		 * before the block that holds it goes out (blocks before it have
		 * no event, so the filter does not matter to them). */
		const char *ev;
		size_t evlen;
		if (st_perf_first_event(buf, len, &ev, &evlen))
			j->event = strndup(ev, evlen);
	}
	*b = (struct block){ buf, len, mapped, first_line, map, file, j->event, NULL };
	pthread_mutex_lock(&j->mu);
	while (j->queued >= j->max_queued)
		pthread_cond_wait(&j->cv_space, &j->mu);
	if (j->tail)
		j->tail->next = b;
	else
		j->head = b;
	j->tail = b;
	j->queued++;
	pthread_cond_signal(&j->cv_items);
	pthread_mutex_unlock(&j->mu);
}

/* '\n' bytes in p[0..n).  SSE2 (every x86-64): 16 bytes compared at a
 * time, the 0/-1 results subtracted into byte counters that are summed
 * (psadbw) before they can wrap; elsewhere eight at a time (exact zero-byte
 * test on word ^ "\n\n..", flags summed with one multiply).  Either way
 * not a memchr call per line. */
static uint64_t count_lines(const char *p, size_t n)
{
	uint64_t c = 0;
	size_t i = 0;
#ifdef __SSE2__
	const __m128i nl = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();
	while (i + 16 <= n) {
		__m128i acc = zero;
		/* 255 rounds at most: a byte counter holds 255. */
		size_t stop = n - i >= 255 * 16 ? i + 255 * 16 : i + (n - i) / 16 * 16;
		for (; i < stop; i += 16) {
			__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
			acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(v, nl));
		}
		__m128i sum = _mm_sad_epu8(acc, zero);
		c += (uint64_t)_mm_cvtsi128_si64(sum) +
		     (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(sum, sum));
	}
#else
	const uint64_t nl8 = 0x0A0A0A0A0A0A0A0Aull, lo7 = 0x7F7F7F7F7F7F7F7Full;
	for (; i + 8 <= n; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		v ^= nl8;
		uint64_t m = ~(((v & lo7) + lo7) | v | lo7) >> 7; /* 1 per '\n' byte */
		c += (m * 0x0101010101010101ull) >> 56;
	}
#endif
	for (; i < n; i++)
		c += p[i] == '\n';
	return c;
}

/*
 * A regular file is mapped whole instead of read(): the parser threads read
 * the page cache directly, with no copy into block buffers (a tenth of the
 * CPU of a one-thread perf convert).  Blocks are cut exactly where the read()
 * path cuts them.  Like any reader of a mapping, a file truncated by someone
 * else while it is converted ends the process with SIGBUS.  Returns 1 when
 * the file is not mappable (the caller reads it), 0, or -errno.
 */
static int map_input(struct job *j, int fd, const char *name)
{
	struct stat sb;
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    lseek(fd, 0, SEEK_CUR) != 0)
		return 1;
	size_t size = (size_t)sb.st_size;
	char *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return 1;
	madvise(m, size, MADV_SEQUENTIAL);
	/* Parser threads read maps[] (map_line) under mu. */
	pthread_mutex_lock(&j->mu);
	struct mapping *nm = realloc(j->maps, (j->nmaps + 1) * sizeof(*nm));
	if (nm) {
		j->maps = nm;
		j->maps[j->nmaps++] = (struct mapping){ m, size, 0, 1 };
	}
	unsigned mi = j->nmaps - 1;
	pthread_mutex_unlock(&j->mu);
	if (!nm) {
		munmap(m, size);
		return -ENOMEM;
	}
	size_t off = 0;
	while (off < size) {
		char *buf = m + off;
		size_t have = size - off < BLOCK ? size - off : BLOCK, cut = have;
		if (off + have < size) {
			char *nl = memrchr(buf, '\n', have);
			if (!nl) {
				/* BLOCK bytes with no newline: over ST_MAX_LINE. */
				pthread_mutex_lock(&j->mu);
				j->stats.malformed++;
				j->stats.lines++;
				report_locked(j, name, map_line(j, mi, buf), "line longer than 1 MiB");
				pthread_mutex_unlock(&j->mu);
				nl = memchr(buf + have, '\n', size - off - have);
				off = nl ? (size_t)(nl + 1 - m) : size;
				continue;
			}
			cut = (size_t)(nl + 1 - buf);
			if (j->perf) {
				size_t pc = st_perf_cut(buf, cut);
				if (pc)
					cut = pc;
			}
		}
		enqueue(j, buf, cut, 0, name, true, mi);
		off += cut;
	}
	return 0;
}

/* Read one input and queue it in blocks that end at a line boundary (perf:
 * just after a blank line, where a sample ends, when the block has one). */
static int read_input(struct job *j, int fd, const char *name)
{
	char *buf = block_get(j);
	size_t have = 0;
	uint64_t line = 1;
	bool skipping = false; /* inside an over-long line: drop until '\n' */
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t r = read(fd, buf + have, BLOCK - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int err = errno;
			free(buf);
			return -err;
		}
		have += (size_t)r;
		bool eof = r == 0;
		if (skipping) {
			char *nl = memchr(buf, '\n', have);
			if (!nl) {
				have = 0;
				if (eof)
					break;
				continue;
			}
			skipping = false;
			line++;
			have -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, have);
		}
		if (!eof && have < BLOCK)
			continue; /* fill the block first */
		size_t cut = have;
		if (!eof) {
			char *nl = memrchr(buf, '\n', have);
			if (!nl) {
				/* BLOCK bytes with no newline: over ST_MAX_LINE. */
				pthread_mutex_lock(&j->mu);
				j->stats.malformed++;
				j->stats.lines++;
				pthread_mutex_unlock(&j->mu);
				report(j, name, line, "line longer than 1 MiB");
				skipping = true;
				have = 0;
				continue;
			}
			cut = (size_t)(nl + 1 - buf);
			if (j->perf) {
				size_t pc = st_perf_cut(buf, cut);
				if (pc)
					cut = pc;
			}
		}
		if (cut) {
			char *nb = block_get(j);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			memcpy(nb, buf + cut, have - cut);
			uint64_t nlines = count_lines(buf, cut);
			enqueue(j, buf, cut, line, name, false, 0);
			line += nlines;
			buf = nb;
			have -= cut;
		}
		if (eof)
			break;
	}
	free(buf);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shardtrie convert [-f folded|perf] [-t FORMAT] [--metric NAME]\n"
		"                         [--min-fraction F] [--threads N] [--strict]\n"
		"                         [perf: --pid --tid --kernel --jit --all --addrs\n"
		"                          --event-filter EV]  [output options] [-o FILE] [FILE...]\n"
		"FORMAT: folded json flamebearer pprof speedscope d3 svg html\n"
		"output options: --max-nodes N (flamebearer, -1 = all) --title T\n"
		"  --width PX --minwidth PCT --inverted --reverse --colors PALETTE\n"
		"  --sample-rate HZ --units U\n"
		"Reads folded stacks or `perf script` text (-f perf, collapsed like\n"
		"stackcollapse-perf.pl) from FILEs (stdin when none, or '-'), merges them\n"
		"through the engine and writes one output (stdout unless -o; -o is\n"
		"written atomically).  Malformed lines are reported as FILE:LINE and\n"
		"skipped; --strict makes any of them an error (exit 65, no output).\n");
}

static const char *unit_for(const char *metric)
{
	if (strstr(metric, "duration") || strstr(metric, "_ns"))
		return "nanoseconds";
	if (strstr(metric, "bytes"))
		return "bytes";
	return "samples";
}

int cmd_convert(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "from", required_argument, 0, 'f' },
		{ "to", required_argument, 0, 't' },
		{ "output", required_argument, 0, 'o' },
		{ "metric", required_argument, 0, 'm' },
		{ "min-fraction", required_argument, 0, 'F' },
		{ "threads", required_argument, 0, 'j' },
		{ "strict", no_argument, 0, 'S' },
		{ "pid", no_argument, 0, 1000 },
		{ "tid", no_argument, 0, 1001 },
		{ "kernel", no_argument, 0, 1002 },
		{ "jit", no_argument, 0, 1003 },
		{ "all", no_argument, 0, 1004 },
		{ "addrs", no_argument, 0, 1005 },
		{ "event-filter", required_argument, 0, 1006 },
		ST_CLI_EXPORT_LONGOPTS,
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *from = "folded", *to = "folded", *out = NULL, *metric = "count";
	double minf = 0;
	long threads = sysconf(_SC_NPROCESSORS_ONLN);
	bool strict = false;
	struct st_perf_opts po;
	st_perf_opts_init(&po);
	struct st_export_opts eo;
	st_export_opts_init(&eo);
	eo.max_nodes = -1;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "f:t:o:j:h", lo, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'f': from = optarg; break;
		case 't': to = optarg; break;
		case 'o': out = optarg; break;
		case 'm': metric = optarg; break;
		case 'S': strict = true; break;
		case 1000: po.pid = true; break;
		case 1001: po.tid = true; break;
		case 1002: po.kernel = true; break;
		case 1003: po.jit = true; break;
		case 1004: po.kernel = po.jit = true; break;
		case 1005: po.addrs = true; break;
		case 1006: po.event = optarg; break;
		case 'F':
			minf = strtod(optarg, &end);
			if (*end || end == optarg || !(minf >= 0 && minf <= 1)) {
				fprintf(stderr, "%s convert: --min-fraction wants a number in [0,1], got '%s'\n",
					st_prog, optarg);
				return EX_USAGE_;
			}
			break;
		case 'j':
			threads = strtol(optarg, &end, 10);
			if (*end || threads < 1 || threads > 1024) {
				fprintf(stderr, "%s convert: --threads wants 1..1024, got '%s'\n", st_prog, optarg);
				return EX_USAGE_;
			}
			break;
		case 'h': usage(stdout); return EX_OK_;
		default: {
			int r = st_cli_export_opt(c, optarg, &eo, "convert");
			if (r == 0)
				break;
			if (r > 0)
				usage(stderr);
			return EX_USAGE_;
		}
		}
	}
	bool perf = strcmp(from, "perf") == 0;
	if (!perf && strcmp(from, "folded") != 0) {
		fprintf(stderr, "%s convert: unknown input format '%s' (known: folded, perf)\n", st_prog,
			from);
		return EX_USAGE_;
	}
	int fmt = st_cli_format(to);
	if (fmt < 0)
		return EX_USAGE_;
	if (threads < 1)
		threads = 1;

	struct st_options so;
	st_options_init(&so);
	so.merge_interval_ms = 0; /* one flush at the end is all convert needs */
	so.nshards = (unsigned)threads;
	so.metrics[0].name = metric;
	so.metrics[0].unit = unit_for(metric);
	struct st_engine *e = st_engine_create(&so);
	if (!e) {
		fprintf(stderr, "%s convert: cannot create engine: %s\n", st_prog, strerror(errno));
		return EX_SOFTWARE_;
	}
	struct job j = { .e = e, .metric = 0, .max_queued = 2 * (unsigned)threads, .perf = perf,
			 .popts = po };
	if (perf && po.event && po.event[0])
		j.event = strdup(po.event);
	pthread_mutex_init(&j.mu, NULL);
	pthread_cond_init(&j.cv_items, NULL);
	pthread_cond_init(&j.cv_space, NULL);
	pthread_t *tids = calloc((size_t)threads, sizeof(*tids));
	long started = 0;
	int rc = EX_OK_;
	for (; tids && started < threads; started++)
		if (pthread_create(&tids[started], NULL, worker, &j))
			break;
	if (!started) {
		fprintf(stderr, "%s convert: cannot start parser threads\n", st_prog);
		rc = EX_SOFTWARE_;
	}

	int nin = argc - optind;
	for (int i = 0; rc == EX_OK_ && i < (nin ? nin : 1); i++) {
		const char *name = nin ? argv[optind + i] : "-";
		bool is_stdin = strcmp(name, "-") == 0;
		int fd = is_stdin ? STDIN_FILENO : open(name, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "%s convert: %s: %s\n", st_prog, name, strerror(errno));
			rc = EX_NOINPUT_;
			break;
		}
		int r = map_input(&j, fd, is_stdin ? "<stdin>" : name);
		if (r > 0)
			r = read_input(&j, fd, is_stdin ? "<stdin>" : name);
		if (!is_stdin)
			close(fd);
		if (r) {
			fprintf(stderr, "%s convert: %s: read failed: %s\n", st_prog, name, strerror(-r));
			rc = EX_IOERR_;
		}
	}
	pthread_mutex_lock(&j.mu);
	j.done = true;
	pthread_cond_broadcast(&j.cv_items);
	pthread_mutex_unlock(&j.mu);
	for (long i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);

	if (rc == EX_OK_ && j.err) {
		fprintf(stderr, "%s convert: %s\n", st_prog, strerror(-j.err));
		rc = EX_SOFTWARE_;
	}
	uint64_t bad = j.stats.malformed + j.stats.dropped;
	if (j.reported > MAX_REPORTED)
		fprintf(stderr, "%s convert: ... %llu more bad lines not shown\n", st_prog,
			(unsigned long long)(j.reported - MAX_REPORTED));
	if (bad)
		fprintf(stderr, "%s convert: %llu of %llu lines ignored (%llu malformed, %llu dropped)%s\n",
			st_prog, (unsigned long long)bad, (unsigned long long)j.stats.lines,
			(unsigned long long)j.stats.malformed, (unsigned long long)j.stats.dropped,
			strict ? "; --strict: no output written" : "");
	if (rc == EX_OK_ && strict && bad)
		rc = EX_DATAERR_;
	eo.min_fraction = minf;
	if (rc == EX_OK_ && fmt == ST_FMT_FOLDED) {
		/* Nothing was merged (no merger thread, no flush): the distinct
		 * stacks go out sorted, with no trie or snapshot built. */
		rc = st_cli_export_folded_once(e, &eo, out);
		if (rc < 0)
			rc = EX_OK_; /* stacks merged after all: the general path */
		else
			goto done;
	}
	if (rc == EX_OK_) {
		if (!st_flush(e)) {
			fprintf(stderr, "%s convert: out of memory building the snapshot\n", st_prog);
			rc = EX_SOFTWARE_;
		} else {
			struct st_snap *s = st_snap_acquire(e);
			rc = st_cli_export(s, fmt, &eo, out);
			st_snap_release(s);
		}
	}
done:
	st_engine_destroy(e);
	free(j.event);
	pthread_mutex_destroy(&j.mu);
	pthread_cond_destroy(&j.cv_items);
	pthread_cond_destroy(&j.cv_space);
	while (j.npool)
		free(j.pool[--j.npool]);
	for (unsigned i = 0; i < j.nmaps; i++)
		munmap(j.maps[i].p, j.maps[i].len);
	free(j.maps);
	return rc;
}
