/* SPDX-License-Identifier: MIT */
/*
 * input.c - the one block reader of `convert` and `diff` (API in cli.h).
 *
 * Each input is cut into blocks of at most ST_INPUT_BLOCK bytes that end
 * at a line end (perf: just after a blank line, where a sample ends, when
 * the block has one) and handed to the consumer's block callback:
 *
 *   regular file  mapped whole; blocks point into the mapping (no copy, the
 *                 parsers read the page cache); a block's line number is
 *                 counted only when a report asks for it (st_input_line)
 *   pipe, tty     read() into pooled ST_INPUT_BLOCK buffers; lines counted
 *                 per block as it goes out
 *
 * Both paths cut at the same places.  A line longer than a block is never
 * buffered: it is reported through on_long_line (FILE:LINE) and skipped,
 * whatever the command.
 */
#include <errno.h>
#include <fcntl.h>
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

#define LONG_LINE_MSG "line longer than 1 MiB"
#define POOL_MAX 64

struct st_input {
	struct st_input_ops ops;
	pthread_mutex_t mu; /* pool and maps: blocks come back from any thread */
	/* Parsed blocks' buffers, reused: fresh 4 MiB buffers would cost a
	 * page fault and a page clear per 4 KiB of input. */
	char *pool[POOL_MAX];
	unsigned npool;
	/* Inputs mapped whole, unmapped by st_input_free. */
	struct mapping {
		char *p;
		size_t len;
		/* Byte known_off starts line known_line. */
		size_t known_off;
		uint64_t known_line;
	} *maps;
	unsigned nmaps;
};

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

struct st_input *st_input_new(const struct st_input_ops *ops)
{
	struct st_input *in = calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	in->ops = *ops;
	pthread_mutex_init(&in->mu, NULL);
	return in;
}

void st_input_free(struct st_input *in)
{
	if (!in)
		return;
	while (in->npool)
		free(in->pool[--in->npool]);
	for (unsigned i = 0; i < in->nmaps; i++)
		munmap(in->maps[i].p, in->maps[i].len);
	free(in->maps);
	pthread_mutex_destroy(&in->mu);
	free(in);
}

static char *buf_get(struct st_input *in)
{
	char *b = NULL;
	pthread_mutex_lock(&in->mu);
	if (in->npool)
		b = in->pool[--in->npool];
	pthread_mutex_unlock(&in->mu);
	return b ? b : malloc(ST_INPUT_BLOCK);
}

static void buf_put(struct st_input *in, char *buf)
{
	pthread_mutex_lock(&in->mu);
	if (in->npool < POOL_MAX) {
		in->pool[in->npool++] = buf;
		buf = NULL;
	}
	pthread_mutex_unlock(&in->mu);
	free(buf);
}

void st_input_release(struct st_input *in, const struct st_input_block *b)
{
	if (b->map < 0)
		buf_put(in, (char *)b->buf); /* a pool buffer: ours, writable */
}

/*
 * Line number of byte p of mapping mi, counted from the last point asked
 * (forwards or backwards), so lines are counted only when a line is
 * reported, and reports in input order count each byte once.  Caller
 * holds mu.
 */
static uint64_t map_line_locked(struct st_input *in, unsigned mi, const char *p)
{
	struct mapping *m = &in->maps[mi];
	const char *k = m->p + m->known_off;
	if (p >= k)
		m->known_line += count_lines(k, (size_t)(p - k));
	else
		m->known_line -= count_lines(p, (size_t)(k - p));
	m->known_off = (size_t)(p - m->p);
	return m->known_line;
}

static uint64_t map_line(struct st_input *in, unsigned mi, const char *p)
{
	pthread_mutex_lock(&in->mu);
	uint64_t line = map_line_locked(in, mi, p);
	pthread_mutex_unlock(&in->mu);
	return line;
}

uint64_t st_input_line(struct st_input *in, const struct st_input_block *b, uint64_t line)
{
	if (b->map < 0)
		return b->first_line + line - 1;
	return map_line(in, (unsigned)b->map, b->buf) + line - 1;
}

/* Where a full block buf[0..have) is cut: just after its last '\n' (perf:
 * after its last blank line, if it has one); 0 when it has no '\n' (a line
 * longer than a block). */
static size_t block_cut(const struct st_input *in, const char *buf, size_t have)
{
	const char *nl = memrchr(buf, '\n', have);
	if (!nl)
		return 0;
	size_t cut = (size_t)(nl + 1 - buf);
	if (in->ops.perf) {
		size_t pc = st_perf_cut(buf, cut);
		if (pc)
			cut = pc;
	}
	return cut;
}

static void long_line(struct st_input *in, const char *name, uint64_t line)
{
	in->ops.on_long_line(in->ops.arg, name, line, LONG_LINE_MSG);
}

/* Map fd whole and register the mapping as *mi (its bytes: *whole): 0, 1
 * when fd is not a mappable regular file (read it instead), or -errno. */
static int map_fd(struct st_input *in, int fd, unsigned *mi, struct mapping *whole)
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
	pthread_mutex_lock(&in->mu); /* consumers' st_input_line reads maps */
	struct mapping *nm = realloc(in->maps, (in->nmaps + 1) * sizeof(*nm));
	if (nm) {
		in->maps = nm;
		in->maps[in->nmaps++] = (struct mapping){ m, size, 0, 1 };
	}
	*mi = in->nmaps - 1;
	*whole = (struct mapping){ m, size, 0, 1 };
	pthread_mutex_unlock(&in->mu);
	if (!nm) {
		munmap(m, size);
		return -ENOMEM;
	}
	return 0;
}

/*
 * A regular file is mapped whole instead of read(): no copy into block
 * buffers (a tenth of the CPU of a one-thread perf convert).  Blocks are cut
 * exactly where read_input cuts them.  Like any reader of a mapping, a file
 * truncated by someone else meanwhile ends the process with SIGBUS.
 * Returns 0 or the block callback's stop value.
 */
static int map_input(struct st_input *in, struct mapping m, unsigned mi, const char *name)
{
	size_t off = 0;
	while (off < m.len) {
		const char *buf = m.p + off;
		size_t have = m.len - off < ST_INPUT_BLOCK ? m.len - off : ST_INPUT_BLOCK, cut = have;
		if (off + have < m.len && !(cut = block_cut(in, buf, have))) {
			/* ST_INPUT_BLOCK bytes with no newline: skip to the next. */
			long_line(in, name, map_line(in, mi, buf));
			const char *nl = memchr(buf + have, '\n', m.len - off - have);
			off = nl ? (size_t)(nl + 1 - m.p) : m.len;
			continue;
		}
		struct st_input_block b = { buf, cut, name, 0, (int)mi };
		int r = in->ops.block(in->ops.arg, &b);
		if (r)
			return r;
		off += cut;
	}
	return 0;
}

/* The read() side of one input: the block being filled, the line number of
 * its first byte, and whether that byte is inside an over-long line. */
struct filling {
	char *buf;
	size_t have;
	uint64_t line;
	bool skipping; /* inside an over-long line: drop until '\n' */
};

/* Drop the rest of an over-long line from f; false when it goes on past
 * what f holds. */
static bool skip_long_line(struct filling *f)
{
	char *nl = memchr(f->buf, '\n', f->have);
	if (!nl) {
		f->have = 0;
		return false;
	}
	f->skipping = false;
	f->line++;
	f->have -= (size_t)(nl + 1 - f->buf);
	memmove(f->buf, nl + 1, f->have);
	return true;
}

/* Send f->buf[0..cut) out as a block and go on filling a fresh buffer with
 * what follows it.  0, -ENOMEM or the block callback's stop value. */
static int send_block(struct st_input *in, struct filling *f, size_t cut, const char *name)
{
	char *nb = buf_get(in);
	if (!nb)
		return -ENOMEM;
	memcpy(nb, f->buf + cut, f->have - cut);
	struct st_input_block b = { f->buf, cut, name, f->line, -1 };
	f->line += count_lines(f->buf, cut);
	f->buf = nb;
	f->have -= cut;
	return in->ops.block(in->ops.arg, &b);
}

/* Read one input with read(), cut like map_input.  0, -errno or the block
 * callback's stop value. */
static int read_input(struct st_input *in, int fd, const char *name)
{
	struct filling f = { buf_get(in), 0, 1, false };
	int rc = 0;
	if (!f.buf)
		return -ENOMEM;
	for (;;) {
		ssize_t r = read(fd, f.buf + f.have, ST_INPUT_BLOCK - f.have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		f.have += (size_t)r;
		bool eof = r == 0;
		if (f.skipping && !skip_long_line(&f) && !eof)
			continue;
		if (!eof && f.have < ST_INPUT_BLOCK)
			continue; /* fill the block first */
		size_t cut = eof ? f.have : block_cut(in, f.buf, f.have);
		if (!eof && !cut) {
			/* ST_INPUT_BLOCK bytes with no newline. */
			long_line(in, name, f.line);
			f.skipping = true;
			f.have = 0;
			continue;
		}
		if (cut && (rc = send_block(in, &f, cut, name)))
			break;
		if (eof)
			break;
	}
	free(f.buf);
	return rc;
}

int st_input_fd(struct st_input *in, int fd, const char *name)
{
	unsigned mi;
	struct mapping m;
	int r = map_fd(in, fd, &mi, &m);
	if (r == 1)
		return read_input(in, fd, name);
	return r ? r : map_input(in, m, mi, name);
}

int st_input_open(const char *path)
{
	return strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
}

void st_input_close(int fd)
{
	if (fd != STDIN_FILENO)
		close(fd);
}

void st_input_report(uint64_t *reported, uint64_t max, const char *file, uint64_t line,
		     const char *msg)
{
	if ((*reported)++ < max)
		fprintf(stderr, "%s:%llu: %s\n", file, (unsigned long long)line, msg);
}
