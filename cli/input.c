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
 *
 * A mapped file that shrinks while it is read (a log rotated by
 * copytruncate) would end the process with SIGBUS at the first access past
 * its new end, in whichever thread touches it.  Reading with read() instead
 * would cost +50% CPU on `convert -f perf` (the copy and the line counting:
 * 150 -> 229 ms user+sys per 100 MB on one thread, 207 -> 324 ms on two,
 * median of 9), so the mapping stays and is guarded:
 *  1. Each mapping is registered (guard_add) for the process's SIGBUS
 *     handler.  A fault inside a registered mapping maps a fresh page over
 *     the faulting one (mmap MAP_FIXED, a plain system call), fills it with
 *     '\n' and flags the mapping shrunk; the faulting load then reads blank
 *     lines, which every parser skips without a report, and the thread goes
 *     on: no jump out of a parser that may hold a lock or be inside an RCU
 *     read side.  Only the blocks already handed out are read after that
 *     (2.), a page fault each.  Any other SIGBUS gets the previous
 *     disposition (default: death).
 *  2. The reader checks the flag and fstat's the size before each block, and
 *     st_input_finish checks the flags once the parsers are done: either
 *     ends the input with ST_INPUT_ESHRANK ("file shrank while being read"),
 *     so what a racing parser read never reaches an output.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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
		int guard;        /* slot in guards[] (1.), or -1 */
		const char *name; /* for st_input_finish: the caller's string */
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

/* ---- the SIGBUS guard (1.) ---- */

#define MAX_GUARDS 64
/* A mapped input: [start, end), and whether the handler patched it.  start
 * is published last (release) and cleared first, the handler reads it
 * (acquire) before end: a nonzero start has its end. */
static struct guard {
	_Atomic uintptr_t start;
	uintptr_t end;
	atomic_bool shrank;
} guards[MAX_GUARDS];
static pthread_mutex_t guards_mu = PTHREAD_MUTEX_INITIALIZER; /* add/remove */
static struct sigaction prev_bus;
static uintptr_t page_size;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;
static bool bus_ok; /* the handler is installed */

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	for (int i = 0; i < MAX_GUARDS; i++) {
		uintptr_t s = atomic_load_explicit(&guards[i].start, memory_order_acquire);
		if (!s || a < s || a >= guards[i].end)
			continue;
		int e = errno;
		void *p = mmap((void *)(a & ~(page_size - 1)), page_size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		errno = e;
		if (p == MAP_FAILED)
			break; /* cannot patch: die of the signal as before */
		memset(p, '\n', page_size);
		atomic_store_explicit(&guards[i].shrank, true, memory_order_relaxed);
		return; /* the load runs again and reads blank lines */
	}
	if (prev_bus.sa_flags & SA_SIGINFO) {
		prev_bus.sa_sigaction(sig, si, ctx);
		return;
	}
	if (prev_bus.sa_handler != SIG_DFL && prev_bus.sa_handler != SIG_IGN) {
		prev_bus.sa_handler(sig);
		return;
	}
	signal(SIGBUS, SIG_DFL); /* the fault repeats, now fatal */
}

static void bus_install(void)
{
	page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
	sigemptyset(&sa.sa_mask);
	bus_ok = sigaction(SIGBUS, &sa, &prev_bus) == 0;
}

/* Register [p, p+len) (rounded up to pages): its slot, or -1 when the guard
 * is not available (the caller reads the file instead). */
static int guard_add(const char *p, size_t len)
{
	pthread_once(&bus_once, bus_install);
	if (!bus_ok)
		return -1;
	int slot = -1;
	pthread_mutex_lock(&guards_mu);
	for (int i = 0; i < MAX_GUARDS && slot < 0; i++)
		if (!atomic_load_explicit(&guards[i].start, memory_order_relaxed))
			slot = i;
	if (slot >= 0) {
		guards[slot].end = ((uintptr_t)p + len + page_size - 1) & ~(page_size - 1);
		atomic_store_explicit(&guards[slot].shrank, false, memory_order_relaxed);
		/* Pairs with the handler's acquire: end is visible with start. */
		atomic_store_explicit(&guards[slot].start, (uintptr_t)p, memory_order_release);
	}
	pthread_mutex_unlock(&guards_mu);
	return slot;
}

/* Before munmap: no fault can hit the range after it, so no ordering
 * beyond the store. */
static void guard_remove(int slot)
{
	if (slot < 0)
		return;
	pthread_mutex_lock(&guards_mu);
	atomic_store_explicit(&guards[slot].start, 0, memory_order_relaxed);
	pthread_mutex_unlock(&guards_mu);
}

static bool guard_shrank(int slot)
{
	return slot >= 0 && atomic_load_explicit(&guards[slot].shrank, memory_order_relaxed);
}

const char *st_input_strerror(int r)
{
	return r == -ST_INPUT_ESHRANK ? "file shrank while being read" : strerror(-r);
}

int st_input_finish(struct st_input *in, const char **file)
{
	int r = 0;
	pthread_mutex_lock(&in->mu);
	for (unsigned i = 0; i < in->nmaps && !r; i++)
		if (guard_shrank(in->maps[i].guard)) {
			*file = in->maps[i].name;
			r = -ST_INPUT_ESHRANK;
		}
	pthread_mutex_unlock(&in->mu);
	return r;
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
	for (unsigned i = 0; i < in->nmaps; i++) {
		guard_remove(in->maps[i].guard);
		munmap(in->maps[i].p, in->maps[i].len);
	}
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
 * when fd is not a mappable regular file or the guard has no room (read it
 * instead), or -errno. */
static int map_fd(struct st_input *in, int fd, const char *name, unsigned *mi,
		  struct mapping *whole)
{
	struct stat sb;
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    lseek(fd, 0, SEEK_CUR) != 0)
		return 1;
	size_t size = (size_t)sb.st_size;
	char *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return 1;
	int guard = guard_add(m, size);
	if (guard < 0) {
		munmap(m, size);
		return 1;
	}
	madvise(m, size, MADV_SEQUENTIAL);
	pthread_mutex_lock(&in->mu); /* consumers' st_input_line reads maps */
	struct mapping *nm = realloc(in->maps, (in->nmaps + 1) * sizeof(*nm));
	if (nm) {
		in->maps = nm;
		in->maps[in->nmaps++] = (struct mapping){ m, size, 0, 1, guard, name };
	}
	*mi = in->nmaps - 1;
	*whole = (struct mapping){ m, size, 0, 1, guard, name };
	pthread_mutex_unlock(&in->mu);
	if (!nm) {
		guard_remove(guard);
		munmap(m, size);
		return -ENOMEM;
	}
	return 0;
}

/* 0, or -ST_INPUT_ESHRANK when the mapped file fd shrank below m's length
 * (2.); -EIO when a page faulted although the file kept its size (a read
 * error of the device also raises SIGBUS). */
static int map_check(int fd, const struct mapping *m)
{
	struct stat sb;
	bool smaller = fstat(fd, &sb) == 0 && (size_t)sb.st_size < m->len;
	if (smaller)
		return -ST_INPUT_ESHRANK;
	return guard_shrank(m->guard) ? -EIO : 0;
}

/*
 * A regular file is mapped whole instead of read(): no copy into block
 * buffers.  Blocks are cut exactly where read_input cuts them.  Returns 0,
 * -ST_INPUT_ESHRANK when the file shrank (2.), or the block callback's stop
 * value.
 */
static int map_input(struct st_input *in, int fd, struct mapping m, unsigned mi, const char *name)
{
	size_t off = 0;
	while (off < m.len) {
		int bad = map_check(fd, &m);
		if (bad)
			return bad;
		const char *buf = m.p + off;
		size_t have = m.len - off < ST_INPUT_BLOCK ? m.len - off : ST_INPUT_BLOCK, cut = have;
		if (off + have < m.len && !(cut = block_cut(in, buf, have))) {
			/* ST_INPUT_BLOCK bytes with no newline: skip to the next
			 * (unless the file shrank meanwhile). */
			if ((bad = map_check(fd, &m)))
				return bad;
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
	int r = map_fd(in, fd, name, &mi, &m);
	if (r == 1)
		return read_input(in, fd, name);
	return r ? r : map_input(in, fd, m, mi, name);
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
