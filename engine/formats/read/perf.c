/* SPDX-License-Identifier: MIT */
/*
 * perf.c - `perf script` text into an engine writer, collapsed exactly
 * as FlameGraph's stackcollapse-perf.pl does (so folded export = its output).
 *
 *   comm 123/456 [000] 1.234567:     1000 cycles:      <- header
 *           ffffffff8103ce3b native_safe_halt+0x5 ([kernel.kallsyms])   leaf
 *           ffffffff81013236 cpu_idle ([kernel.kallsyms])
 *                                                      <- blank: emit
 *   => comm;cpu_idle;native_safe_halt 1000
 *
 * The script is a line loop over Perl regexes; each one is reproduced here
 * with its backtracking worked out by hand (Perl's \s is [ \t\n\r\f\v], \d
 * and \w are ASCII on byte strings):
 *   1. Lines starting with '#' are skipped; a trailing "\n" is removed
 *      (chomp; a '\r' stays and makes the line unrecognisable, as in Perl).
 *   2. Empty line: if a header set pname, emit pname;stack with the period
 *      and forget both.  Without pname nothing happens (filtered samples).
 *   3. Header /^(\S.+?)\s+(\d+)[/]*(\d+)*\s+/: comm = the SHORTEST prefix of
 *      at least two bytes followed by whitespace, digits, optional "/digits"
 *      and whitespace.  pid/tid = both numbers, or "?"/the one number (also
 *      when the second is "0", Perl-false).  Then /:\s*(\d+)*\s+(\S+):\s*$/
 *      gives the period and the event; the first event seen becomes the
 *      filter unless one was given, and a header of another event is
 *      ignored (pname is NOT cleared: frames that follow attach to whatever
 *      sample is open, as in Perl).  Period "" or "0" counts 1.  pname =
 *      comm[-pid[/tid]] with ' ' -> '_'.
 *   4. Frame /^\s*(\w+)\s*(.+) \((.*)\)/: module = up to the LAST ')',
 *      symbol = up to the last " (" before it (greedy).  Ignored without
 *      pname.  "+0x<hex>" at the end is cut; a symbol starting with '(' is
 *      skipped; it is split on "->" (inlined frames, trailing empty parts
 *      dropped, later ones get "_[i]").  Each part: "[unknown]" ->
 *      "[module basename]" ("[unknown]" module: "[unknown]"; --addrs adds
 *      " <addr>"); ';' -> ':'; unless it looks like a Go method (".(...)."),
 *      cut from the first '(' not starting "(anonymous namespace)"; quotes
 *      deleted; for java processes a leading 'L' goes when there is a '/';
 *      then _[k] (module "[..." or "...vmlinux", not containing "unknown")
 *      or _[j] (module containing /tmp/perf-N.map).
 *   5. Anything else is "Unrecognized line" (reported, skipped).
 *   6. A sample not closed by a blank line at end of input is dropped.
 * State between samples is only pname and the stack, both empty after a
 * blank line, plus the event filter: that is why blocks cut after a blank
 * line with the filter fixed up front parse independently (st_perf_cut,
 * st_perf_first_event).
 * The comm may contain ';' (Perl joins the stack with ';' and never splits
 * it): it is ingested as several frames so the joined bytes are the same.
 */
#include <errno.h>
#include <sys/mman.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "formats.h"
#include "shardtrie_parse.h"

void st_perf_opts_init(struct st_perf_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
}

/* Byte classes: Perl's \s, \d, \w (ASCII), and [\da-f]. */
enum { C_WS = 1, C_DIGIT = 2, C_WORD = 4, C_HEX = 8 };
#define CL_D (C_DIGIT | C_WORD | C_HEX)
#define CL_L (C_WORD)
#define CL_H (C_WORD | C_HEX)
static const uint8_t cls[256] = {
	['\t'] = C_WS, ['\n'] = C_WS, ['\v'] = C_WS, ['\f'] = C_WS, ['\r'] = C_WS, [' '] = C_WS,
	['0'] = CL_D, ['1'] = CL_D, ['2'] = CL_D, ['3'] = CL_D, ['4'] = CL_D,
	['5'] = CL_D, ['6'] = CL_D, ['7'] = CL_D, ['8'] = CL_D, ['9'] = CL_D,
	['a'] = CL_H, ['b'] = CL_H, ['c'] = CL_H, ['d'] = CL_H, ['e'] = CL_H, ['f'] = CL_H,
	['g'] = CL_L, ['h'] = CL_L, ['i'] = CL_L, ['j'] = CL_L, ['k'] = CL_L, ['l'] = CL_L,
	['m'] = CL_L, ['n'] = CL_L, ['o'] = CL_L, ['p'] = CL_L, ['q'] = CL_L, ['r'] = CL_L,
	['s'] = CL_L, ['t'] = CL_L, ['u'] = CL_L, ['v'] = CL_L, ['w'] = CL_L, ['x'] = CL_L,
	['y'] = CL_L, ['z'] = CL_L,
	['A'] = CL_L, ['B'] = CL_L, ['C'] = CL_L, ['D'] = CL_L, ['E'] = CL_L, ['F'] = CL_L,
	['G'] = CL_L, ['H'] = CL_L, ['I'] = CL_L, ['J'] = CL_L, ['K'] = CL_L, ['L'] = CL_L,
	['M'] = CL_L, ['N'] = CL_L, ['O'] = CL_L, ['P'] = CL_L, ['Q'] = CL_L, ['R'] = CL_L,
	['S'] = CL_L, ['T'] = CL_L, ['U'] = CL_L, ['V'] = CL_L, ['W'] = CL_L, ['X'] = CL_L,
	['Y'] = CL_L, ['Z'] = CL_L, ['_'] = CL_L,
};
static inline bool is_ws(unsigned char c) { return cls[c] & C_WS; }
static inline bool is_digit(unsigned char c) { return cls[c] & C_DIGIT; }
static inline bool is_word(unsigned char c) { return cls[c] & C_WORD; }
static inline bool is_lhex(unsigned char c) { return cls[c] & C_HEX; }

struct hdr {
	size_t comm_len;
	const char *pid, *tid; /* NULL pid = "?" */
	size_t pid_len, tid_len;
};

/* /^(\S.+?)\s+(\d+)[/]*(\d+)*\s+/ on s[0..n). */
static bool match_header(const char *s, size_t n, struct hdr *h)
{
	const unsigned char *u = (const unsigned char *)s;
	if (n < 4 || is_ws(u[0]))
		return false;
	size_t i = 1;
	while (i < n) {
		/* Next whitespace run [p, q). */
		while (i < n && !is_ws(u[i]))
			i++;
		size_t p = i;
		while (i < n && is_ws(u[i]))
			i++;
		size_t q = i;
		if (p == q)
			break;
		/* Every k in [max(p,2), q) continues the same way from q; the
		 * lazy group takes the first k that works. */
		size_t k = p < 2 ? 2 : p;
		if (k >= q)
			continue;
		size_t j = q;
		while (j < n && is_digit(u[j]))
			j++;
		if (j == q || j >= n)
			continue;
		if (is_ws(u[j])) {
			*h = (struct hdr){ k, NULL, s + q, 0, (size_t)(j - q) };
			return true;
		}
		if (u[j] != '/')
			continue;
		size_t m = j;
		while (m < n && u[m] == '/')
			m++;
		if (m >= n)
			continue;
		if (is_ws(u[m])) {
			*h = (struct hdr){ k, NULL, s + q, 0, (size_t)(j - q) };
			return true;
		}
		size_t e = m;
		while (e < n && is_digit(u[e]))
			e++;
		if (e == m || e >= n || !is_ws(u[e]))
			continue;
		if (e - m == 1 && u[m] == '0') /* $3 eq "0" is false in Perl */
			*h = (struct hdr){ k, NULL, s + q, 0, (size_t)(j - q) };
		else
			*h = (struct hdr){ k, s + q, s + m, (size_t)(j - q), (size_t)(e - m) };
		return true;
	}
	return false;
}

/* /:\s*(\d+)*\s+(\S+):\s*$/ on s[0..n): event and period (NULL if none). */
static bool match_event(const char *s, size_t n, const char **ev, size_t *evlen, const char **per,
			size_t *perlen)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t e = n;
	while (e > 0 && is_ws(u[e - 1]))
		e--;
	if (e < 2 || u[e - 1] != ':')
		return false;
	size_t t = e - 1; /* token [t, e-1) then ':' */
	while (t > 0 && !is_ws(u[t - 1]))
		t--;
	if (t == e - 1 || t == 0)
		return false;
	size_t i = t;
	while (i > 0 && is_ws(u[i - 1]))
		i--; /* at least one: u[t-1] is ws */
	size_t d = i;
	while (d > 0 && is_digit(u[d - 1]))
		d--;
	size_t c = d;
	if (d < i)
		while (c > 0 && is_ws(u[c - 1]))
			c--;
	if (c == 0 || u[c - 1] != ':')
		return false;
	*ev = s + t;
	*evlen = e - 1 - t;
	*per = d < i ? s + d : NULL;
	*perlen = i - d;
	return true;
}

int st_perf_first_event(const char *buf, size_t len, const char **ev, size_t *evlen)
{
	const char *p = buf, *end = buf + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		struct hdr h;
		const char *per;
		size_t perlen;
		if (n && p[0] != '#' && match_header(p, n, &h) &&
		    match_event(p, n, ev, evlen, &per, &perlen))
			return 1;
		p = nl ? nl + 1 : end;
	}
	return 0;
}

size_t st_perf_cut(const char *buf, size_t len)
{
	/* The last "\n\n": the second '\n' is a blank line.  A block
	 * starting with '\n' is a blank line too. */
	for (size_t i = len; i-- > 0;) {
		if (buf[i] != '\n')
			continue;
		if (i == 0 || buf[i - 1] == '\n')
			return i + 1;
	}
	return 0;
}

/* ------------------------------------------------------------ the stack */

/*
 * Frame cache.  The clean-up of a frame line depends only on the symbol
 * (after the "+0x" cut), the module, whether the process is java, and for
 * --addrs on the address when the symbol holds "[unknown]".  Those bytes map
 * to the interned ids of the cleaned parts, so each distinct raw frame is
 * cleaned and interned once per call; the rest of its lines cost a hash and
 * a compare.  pname (comm[-pid[/tid]]) is cached the same way.  The stack is
 * kept as ids and goes to st_writer_ingest().
 */
struct fc_ent {
	uint64_t h;
	const char *k;      /* key bytes (in a key chunk): f, then mod, then pc */
	uint32_t fl, modl, pcl;
	uint32_t ioff;      /* ids in cid */
	uint32_t nids;
	uint8_t kind;       /* 0 frame, 2 pname; | 1 java */
};

/*
 * A cached sample body: its own open-addressing table whose slots hold
 * everything a hit needs, so a lookup costs one slot load before the key
 * compare (the slot's position is known before the header is parsed and is
 * prefetched then).  A body's slot is at (hash >> 4) & mask; nids == 0: empty.
 */
struct body_slot {
	uint64_t tag;  /* the hash with its low 4 bits replaced by the kind: 4
			* keyed by the prefix, 12 by the whole body; | 1 java */
	const char *k; /* the body's bytes (in a key chunk) */
	uint32_t fl;   /* its length */
	uint32_t ioff; /* ids in cid, leaf first */
	uint32_t nids;
	uint32_t aux;  /* its line count */
};

struct st_perf_cache {
	/* What the entries were made for: other values clear the cache. */
	const struct st_engine *e;
	struct st_perf_opts o;
	uint32_t *slots; /* entry index + 1, 0 empty */
	size_t nslots;
	struct fc_ent *ent;
	size_t nent, entcap;
	/* Key bytes, in chunks that never move (no copy on growth): */
	char **kch;
	size_t nkch, kchcap;
	char *kcur;             /* the chunk being filled */
	size_t kused, kcap;     /* of kcur */
	size_t kblen;           /* key bytes in all chunks */
	uint32_t *cid;
	size_t ncid, cidcap;
	struct body_slot *bslots;
	size_t nbslots, nbodies;
};

/* Past this many key bytes the cache starts over (bounds its memory). */
#define FC_MAX_KEY_BYTES (64u << 20)

#define EMIT_BATCH 16

struct pstate {
	const struct st_perf_opts *o;
	struct st_writer *w;
	struct st_engine *e;
	unsigned metric;
	/* filter */
	const char *ev;
	size_t evlen;
	char *evbuf;
	/* current sample */
	bool have_pname, java;
	uint64_t period;
	int serr;           /* first intern error of the stack's frames, 0 if none */
	int serr_tmp;       /* last intern error (cid_push) */
	int pn_err;         /* intern error of pname, 0 if none */
	uint32_t *pn;       /* pname ids (several when the comm holds ';') */
	size_t npn, pncap;
	/* scratch for cleaning one part / building pname */
	char *arena;
	size_t acap;
	/* Frame ids of the sample as they come (leaf first); each frame line's
	 * inline group is stored reversed so that reversing the whole list
	 * gives Perl's order. */
	uint32_t *fr;
	size_t nfr, frcap;
	/* Accepted samples not yet handed to the writer: root-first stacks
	 * back to back in ids, so st_writer_ingest_batch_done() can prefetch
	 * a group's table slots and records before adding to any of them. */
	uint32_t *ids;
	size_t nids, idcap;
	size_t bn;
	size_t boff[EMIT_BATCH];
	uint32_t bdepth[EMIT_BATCH];
	uint64_t bperiod[EMIT_BATCH], bline[EMIT_BATCH];
	struct st_perf_cache *c;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem, size_t init)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap : init;
	while (nc < need)
		nc *= 2;
	void *np = st_realloc(*p, nc * elem);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = nc;
	return 0;
}

static int arena_reserve(struct pstate *ps, size_t need)
{
	return grow((void **)&ps->arena, &ps->acap, need, 1, 4096);
}

static inline int push_id(struct pstate *ps, uint32_t id)
{
	if (ST_UNLIKELY(ps->nfr == ps->frcap) &&
	    grow((void **)&ps->fr, &ps->frcap, ps->nfr + 1, sizeof(*ps->fr), 256))
		return -ENOMEM;
	ps->fr[ps->nfr++] = id;
	return 0;
}

static inline uint64_t key_hash(const char *f, size_t fl, const char *mod, size_t modl,
				const char *pc, size_t pcl, unsigned kind)
{
	uint64_t h = st_hash_bytes(f, fl);
	h ^= st_hash_bytes(mod, modl) * 0x9E3779B97F4A7C15ull;
	if (pcl)
		h ^= st_hash_bytes(pc, pcl) * 0xC2B2AE3D27D4EB4Full;
	return h + kind;
}

/* The entry for the key, or NULL. */
static inline struct fc_ent *fc_find(struct pstate *ps, uint64_t h, const char *f, size_t fl,
				     const char *mod, size_t modl, const char *pc, size_t pcl,
				     unsigned kind)
{
	if (!ps->c->nslots)
		return NULL;
	size_t mask = ps->c->nslots - 1;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		uint32_t s = ps->c->slots[i];
		if (!s)
			return NULL;
		struct fc_ent *e = &ps->c->ent[s - 1];
		if (e->h == h && e->kind == kind && e->fl == fl && e->modl == modl && e->pcl == pcl) {
			const char *k = e->k;
			if (memcmp(k, f, fl) == 0 && memcmp(k + fl, mod, modl) == 0 &&
			    (!pcl || memcmp(k + fl + modl, pc, pcl) == 0))
				return e;
		}
	}
}

#define KEY_CHUNK (2u << 20)

/* Copy key bytes f, mod, pc into the key chunks; where, or NULL (no memory). */
static const char *key_store(struct st_perf_cache *c, const char *f, size_t fl, const char *mod,
			     size_t modl, const char *pc, size_t pcl)
{
	size_t kl = fl + modl + pcl;
	if (c->ncid > UINT32_MAX)
		return NULL;
	if (kl > c->kcap - c->kused) {
		size_t cap = kl > KEY_CHUNK ? kl : KEY_CHUNK;
		if (grow((void **)&c->kch, &c->kchcap, c->nkch + 1, sizeof(*c->kch), 16))
			return NULL;
		char *ch = st_malloc(cap + KEY_CHUNK);
		if (!ch)
			return NULL;
		c->kch[c->nkch++] = ch;
		/* From a 2 MiB boundary on, as a huge page where the kernel
		 * allows it: a 4 KiB page fault per 4 KiB of keys was a third
		 * of the faults of a convert. */
		char *al = (char *)(((uintptr_t)ch + KEY_CHUNK - 1) & ~(uintptr_t)(KEY_CHUNK - 1));
#ifdef MADV_HUGEPAGE
		madvise(al, cap & ~(size_t)(KEY_CHUNK - 1), MADV_HUGEPAGE);
#endif
		c->kcur = al;
		c->kused = 0;
		c->kcap = cap;
	}
	char *k = c->kcur + c->kused;
	memcpy(k, f, fl);
	if (modl)
		memcpy(k + fl, mod, modl);
	if (pcl)
		memcpy(k + fl + modl, pc, pcl);
	c->kused += kl;
	c->kblen += kl;
	return k;
}

/* Add an entry whose ids are cid[ioff..ncid).  Failure only loses caching. */
static struct fc_ent *fc_add(struct pstate *ps, uint64_t h, const char *f, size_t fl,
			     const char *mod, size_t modl, const char *pc, size_t pcl,
			     unsigned kind, size_t ioff)
{
	if (ps->c->nent + 1 >= UINT32_MAX)
		return NULL;
	if ((ps->c->nent + 1) * 2 > ps->c->nslots) {
		size_t ns = ps->c->nslots ? ps->c->nslots * 2 : 1024;
		uint32_t *sl = st_calloc(ns, sizeof(*sl));
		if (!sl)
			return NULL;
		for (size_t j = 0; j < ps->c->nent; j++) {
			size_t i = (size_t)ps->c->ent[j].h & (ns - 1);
			while (sl[i])
				i = (i + 1) & (ns - 1);
			sl[i] = (uint32_t)j + 1;
		}
		st_free(ps->c->slots);
		ps->c->slots = sl;
		ps->c->nslots = ns;
	}
	if (grow((void **)&ps->c->ent, &ps->c->entcap, ps->c->nent + 1, sizeof(*ps->c->ent), 256))
		return NULL;
	const char *k = key_store(ps->c, f, fl, mod, modl, pc, pcl);
	if (!k)
		return NULL;
	struct fc_ent *e = &ps->c->ent[ps->c->nent];
	*e = (struct fc_ent){ h, k, (uint32_t)fl, (uint32_t)modl, (uint32_t)pcl,
			      (uint32_t)ioff, (uint32_t)(ps->c->ncid - ioff), (uint8_t)kind };
	size_t i = (size_t)h & (ps->c->nslots - 1);
	while (ps->c->slots[i])
		i = (i + 1) & (ps->c->nslots - 1);
	ps->c->slots[i] = (uint32_t)++ps->c->nent;
	return e;
}

/* Intern s[0..n) and append the id to cid; an error is kept in ps->serr
 * (the sample is dropped at its blank line) and id 0 stands in for it. */
static int cid_push(struct pstate *ps, const char *s, size_t n, bool *ok)
{
	int64_t id = st_intern(ps->e, s, n);
	if (id < 0) {
		ps->serr_tmp = (int)id;
		*ok = false;
		id = 0;
	}
	if (grow((void **)&ps->c->cid, &ps->c->cidcap, ps->c->ncid + 1, sizeof(*ps->c->cid), 1024))
		return -ENOMEM;
	ps->c->cid[ps->c->ncid++] = (uint32_t)id;
	return 0;
}

static bool contains(const char *s, size_t n, const char *needle, size_t nl)
{
	return nl <= n && memmem(s, n, needle, nl) != NULL;
}

/* Does mod contain /tmp/perf-\d+\.map ? */
static bool is_jit_module(const char *m, size_t n)
{
	const char *p = m, *end = m + n;
	while ((p = memmem(p, (size_t)(end - p), "/tmp/perf-", 10))) {
		const char *d = p + 10;
		while (d < end && is_digit((unsigned char)*d))
			d++;
		if (d > p + 10 && end - d >= 4 && memcmp(d, ".map", 4) == 0)
			return true;
		p++;
	}
	return false;
}

/*
 * Clean one "->" part (tidy_generic, tidy_java, annotations) in the scratch
 * arena and append its id to cid.  `first` is false for inlined parts after
 * the first.
 */
static int add_part(struct pstate *ps, const char *f, size_t fl, const char *pc, size_t pcl,
		    const char *mod, size_t modl, bool first, bool *ok)
{
	/* Worst case: "[" mod " <" pc ">]" "_[x]" */
	if (arena_reserve(ps, fl + modl + pcl + 16))
		return -ENOMEM;
	char *o = ps->arena;
	size_t n = 0;
	if (fl == 9 && memcmp(f, "[unknown]", 9) == 0) {
		const char *b;
		size_t bl;
		if (!(modl == 9 && memcmp(mod, "[unknown]", 9) == 0)) {
			const char *slash = memrchr(mod, '/', modl);
			b = slash ? slash + 1 : mod;
			bl = (size_t)(mod + modl - b);
		} else {
			b = "unknown";
			bl = 7;
		}
		o[n++] = '[';
		memcpy(o + n, b, bl);
		n += bl;
		if (ps->o->addrs) {
			o[n++] = ' ';
			o[n++] = '<';
			memcpy(o + n, pc, pcl);
			n += pcl;
			o[n++] = '>';
		}
		o[n++] = ']';
	} else {
		memcpy(o, f, fl);
		n = fl;
	}
	/* tidy_generic: ';' -> ':' (one table lookup per byte) */
	static const uint8_t special[256] = { [';'] = 1, ['('] = 2, ['"'] = 4, ['\''] = 4 };
	unsigned seen = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned k = special[(unsigned char)o[i]];
		if (ST_UNLIKELY(k)) {
			seen |= k;
			if (k == 1)
				o[i] = ':';
		}
	}
	bool paren = seen & 2, quote = seen & 4;
	if (paren) {
		/* Go method: ".(" ... ")." with the ")." after the ".(". */
		const char *a = memmem(o, n, ".(", 2);
		bool go = false;
		for (size_t i = n; a && i-- > (size_t)(a - o) + 2;)
			if (i + 1 < n && o[i] == ')' && o[i + 1] == '.') {
				go = true;
				break;
			}
		if (!go) {
			for (size_t i = 0; i < n; i++) {
				if (o[i] != '(')
					continue;
				if (n - i > 20 && memcmp(o + i + 1, "anonymous namespace)", 20) == 0)
					continue;
				n = i;
				break;
			}
		}
	}
	if (quote) {
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			if (o[i] != '"' && o[i] != '\'')
				o[k++] = o[i];
		n = k;
	}
	if (ps->java && n && o[0] == 'L' && memchr(o, '/', n)) {
		memmove(o, o + 1, n - 1);
		n--;
	}
	if (!first) {
		if (!contains(o, n, "_[i]", 4)) {
			memcpy(o + n, "_[i]", 4);
			n += 4;
		}
	} else if (ps->o->kernel && modl && (mod[0] == '[' || (modl >= 7 && memcmp(mod + modl - 7, "vmlinux", 7) == 0)) &&
		   !contains(mod, modl, "unknown", 7)) {
		memcpy(o + n, "_[k]", 4);
		n += 4;
	} else if (ps->o->jit && is_jit_module(mod, modl)) {
		if (!contains(o, n, "_[j]", 4)) {
			memcpy(o + n, "_[j]", 4);
			n += 4;
		}
	}
	return cid_push(ps, o, n, ok);
}

/* The ids of a frame whose symbol is f (offset cut, not starting '('),
 * in the order they go on the leaf-first list: cid[ioff..ncid). */
static int clean_frame(struct pstate *ps, const char *f, size_t fl, const char *pc, size_t pcl,
		       const char *mod, size_t modl, bool *ok)
{
	size_t base = ps->c->ncid;
	/* split /->/, trailing empty fields dropped; most symbols have no '-' */
	const char *dash = fl ? memchr(f, '-', fl) : NULL;
	if (!dash)
		return fl ? add_part(ps, f, fl, pc, pcl, mod, modl, true, ok) : 0;
	size_t nparts = 0, last_nonempty = 0;
	{
		const char *p = f, *end = f + fl;
		for (;;) {
			const char *arrow = memmem(p, (size_t)(end - p), "->", 2);
			const char *pe = arrow ? arrow : end;
			nparts++;
			if (pe > p)
				last_nonempty = nparts;
			if (!arrow)
				break;
			p = arrow + 2;
		}
	}
	const char *p = f, *end = f + fl;
	for (size_t i = 0; i < last_nonempty; i++) {
		const char *arrow = memmem(p, (size_t)(end - p), "->", 2);
		const char *pe = arrow ? arrow : end;
		if (add_part(ps, p, (size_t)(pe - p), pc, pcl, mod, modl, i == 0, ok))
			return -ENOMEM;
		p = pe + 2;
	}
	/* Reverse the group so a final whole reversal restores its order. */
	for (size_t i = base, j = ps->c->ncid; i + 1 < j; i++, j--) {
		uint32_t t = ps->c->cid[i];
		ps->c->cid[i] = ps->c->cid[j - 1];
		ps->c->cid[j - 1] = t;
	}
	return 0;
}

/* /^\s*(\w+)\s*(.+) \((.*)\)/ and everything done with the frame. */
static int frame_line(struct pstate *ps, const char *s, size_t n, bool *recognised)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t a = 0;
	while (a < n && is_ws(u[a]))
		a++;
	size_t we = a;
	while (we < n && is_word(u[we]))
		we++;
	*recognised = false;
	if (we == a)
		return 0;
	size_t lastparen;
	if (ST_LIKELY(u[n - 1] == ')')) {
		lastparen = n - 1;
	} else {
		const char *rp = memrchr(s, ')', n);
		if (!rp)
			return 0;
		lastparen = (size_t)(rp - s);
	}
	if (lastparen < 2)
		return 0;
	/* The last " (" before the last ')'. */
	size_t R = SIZE_MAX;
	for (size_t lim = lastparen; lim > 1;) {
		const char *op = memrchr(s + 1, '(', lim - 1);
		if (!op)
			break;
		size_t r = (size_t)(op - s) - 1;
		if (u[r] == ' ') {
			R = r;
			break;
		}
		lim = r + 1;
	}
	if (R == SIZE_MAX || R < 1)
		return 0;
	size_t q;
	if (we + 1 <= R) {
		size_t sl = 0;
		while (we + sl < n && is_ws(u[we + sl]))
			sl++;
		if (sl > R - 1 - we)
			sl = R - 1 - we;
		q = we + sl;
	} else {
		if (R - 1 < a + 1)
			return 0;
		we = R - 1;
		q = we;
	}
	*recognised = true;
	if (!ps->have_pname)
		return 0;
	const char *pc = s + a;
	size_t pcl = we - a;
	const char *f = s + q;
	size_t fl = R - q;
	const char *mod = s + R + 2;
	size_t modl = lastparen - (R + 2);

	/* s/\+0x[\da-f]+$// */
	size_t h = fl;
	while (h > 0 && is_lhex((unsigned char)f[h - 1]))
		h--;
	if (h < fl && h >= 3 && f[h - 3] == '+' && f[h - 2] == '0' && f[h - 1] == 'x')
		fl = h - 3;
	if (fl && f[0] == '(')
		return 0;
	/* The address matters only for "[unknown]" parts with --addrs. */
	size_t kpcl = ps->o->addrs && contains(f, fl, "[unknown]", 9) ? pcl : 0;
	unsigned kind = ps->java;
	uint64_t hk = key_hash(f, fl, mod, modl, pc, kpcl, kind);
	struct fc_ent *e = fc_find(ps, hk, f, fl, mod, modl, pc, kpcl, kind);
	if (ST_UNLIKELY(!e)) {
		size_t ioff = ps->c->ncid;
		bool ok = true;
		if (clean_frame(ps, f, fl, pc, pcl, mod, modl, &ok))
			return -ENOMEM;
		if (!ok && !ps->serr)
			ps->serr = ps->serr_tmp;
		if (ok)
			e = fc_add(ps, hk, f, fl, mod, modl, pc, kpcl, kind, ioff);
		if (!e) {
			for (size_t i = ioff; i < ps->c->ncid; i++)
				if (push_id(ps, ps->c->cid[i]))
					return -ENOMEM;
			ps->c->ncid = ioff;
			return 0;
		}
	}
	if (ST_UNLIKELY(ps->nfr + e->nids > ps->frcap) &&
	    grow((void **)&ps->fr, &ps->frcap, ps->nfr + e->nids, sizeof(*ps->fr), 256))
		return -ENOMEM;
	const uint32_t *ids = ps->c->cid + e->ioff;
	for (uint32_t i = 0; i < e->nids; i++)
		ps->fr[ps->nfr++] = ids[i];
	return 0;
}

/* ids[0..n-1) are pname's ids, ids[n-1] the java flag. */
static int set_pname(struct pstate *ps, const uint32_t *ids, size_t n)
{
	if (grow((void **)&ps->pn, &ps->pncap, n, sizeof(*ps->pn), 16))
		return -ENOMEM;
	memcpy(ps->pn, ids, (n - 1) * sizeof(*ps->pn));
	ps->npn = n - 1;
	ps->java = ids[n - 1];
	return 0;
}

static int header_line(struct pstate *ps, const char *s, size_t n, const struct hdr *h,
		       struct st_parse_stats *st, bool *accepted)
{
	*accepted = false;
	const char *ev, *per;
	size_t evlen, perlen;
	uint64_t period = 1;
	if (match_event(s, n, &ev, &evlen, &per, &perlen)) {
		if (!ps->ev) {
			ps->evbuf = st_malloc(evlen + 1);
			if (!ps->evbuf)
				return -ENOMEM;
			memcpy(ps->evbuf, ev, evlen);
			ps->ev = ps->evbuf;
			ps->evlen = evlen;
		} else if (evlen != ps->evlen || memcmp(ev, ps->ev, evlen) != 0) {
			st->skipped++;
			return 0;
		}
		if (per && !(perlen == 1 && per[0] == '0')) {
			period = 0;
			for (size_t i = 0; i < perlen; i++)
				if (__builtin_mul_overflow(period, 10, &period) ||
				    __builtin_add_overflow(period, (uint64_t)(per[i] - '0'), &period)) {
					period = UINT64_MAX;
					break;
				}
		}
	}
	/* A header replaces pname; frames already on the stack stay (Perl). */
	const char *pid = h->pid ? h->pid : "?";
	size_t pidl = h->pid ? h->pid_len : 1;
	const char *tid = h->tid;
	size_t tidl = h->tid_len;
	if (!ps->o->tid)
		tidl = 0;
	if (!ps->o->tid && !ps->o->pid)
		pidl = 0;
	uint64_t hk = key_hash(s, h->comm_len, pid, pidl, tid, tidl, 2);
	struct fc_ent *e = fc_find(ps, hk, s, h->comm_len, pid, pidl, tid, tidl, 2);
	if (!e) {
		size_t need = h->comm_len + 2 + pidl + tidl;
		if (arena_reserve(ps, need))
			return -ENOMEM;
		char *o = ps->arena;
		size_t k = 0;
		memcpy(o, s, h->comm_len);
		k = h->comm_len;
		if (ps->o->tid || ps->o->pid) {
			o[k++] = '-';
			memcpy(o + k, pid, pidl);
			k += pidl;
			if (ps->o->tid) {
				o[k++] = '/';
				memcpy(o + k, tid, tidl);
				k += tidl;
			}
		}
		for (size_t i = 0; i < k; i++)
			if (o[i] == ' ')
				o[i] = '_';
		/* Perl joins with ';' and never splits: a ';' in the comm makes
		 * several frames.  The java flag follows the ids. */
		size_t ioff = ps->c->ncid;
		bool ok = true;
		const char *p = o, *end = o + k;
		for (;;) {
			const char *semi = memchr(p, ';', (size_t)(end - p));
			const char *fe = semi ? semi : end;
			if (cid_push(ps, p, (size_t)(fe - p), &ok))
				return -ENOMEM;
			if (!semi)
				break;
			p = semi + 1;
		}
		if (grow((void **)&ps->c->cid, &ps->c->cidcap, ps->c->ncid + 1, sizeof(*ps->c->cid), 1024))
			return -ENOMEM;
		ps->c->cid[ps->c->ncid++] = k >= 4 && memcmp(o, "java", 4) == 0;
		ps->pn_err = ok ? 0 : ps->serr_tmp;
		if (ok)
			e = fc_add(ps, hk, s, h->comm_len, pid, pidl, tid, tidl, 2, ioff);
		if (!e) {
			int r = set_pname(ps, ps->c->cid + ioff, ps->c->ncid - ioff);
			ps->c->ncid = ioff;
			if (r)
				return r;
			goto done;
		}
	} else {
		ps->pn_err = 0;
	}
	if (set_pname(ps, ps->c->cid + e->ioff, e->nids))
		return -ENOMEM;
done:
	ps->have_pname = true;
	ps->period = period;
	*accepted = true;
	return 0;
}

/* Blank line with pname: pname;stack -> the writer. */
static const char *drop_reason(int r)
{
	return r == -E2BIG ? "sample deeper than the frame limit"
	       : r == -ENAMETOOLONG ? "frame longer than 1 MiB"
				    : "sample dropped (out of memory)";
}

/* Hand the batched samples to the writer; one that fails is counted as
 * dropped and reported at its line, the rest still go in. */
static void flush_batch(struct pstate *ps, struct st_parse_stats *st, st_parse_err_fn errfn,
			void *arg)
{
	struct st_sample s[EMIT_BATCH];
	uint64_t values[EMIT_BATCH][ST_MAX_METRICS];
	for (size_t i = 0; i < ps->bn; i++) {
		memset(values[i], 0, sizeof(values[i]));
		values[i][ps->metric] = ps->bperiod[i];
		s[i] = (struct st_sample){ ps->ids + ps->boff[i], ps->bdepth[i], values[i] };
	}
	for (size_t i = 0; i < ps->bn;) {
		size_t done = 0;
		int r = st_writer_ingest_batch_done(ps->w, s + i, ps->bn - i, &done);
		st->samples += done;
		i += done;
		if (!r)
			break;
		st->dropped++;
		if (errfn)
			errfn(arg, ps->bline[i], drop_reason(r));
		i++;
	}
	ps->bn = 0;
	ps->nids = 0;
}

static int emit(struct pstate *ps, struct st_parse_stats *st, st_parse_err_fn errfn, void *arg,
		uint64_t lineno)
{
	size_t depth = ps->npn + ps->nfr;
	int r = 0;
	if (depth > ST_MAX_DEPTH) {
		r = -E2BIG;
	} else if (ps->pn_err || ps->serr) {
		r = ps->pn_err ? ps->pn_err : ps->serr;
	} else {
		if (grow((void **)&ps->ids, &ps->idcap, ps->nids + depth, sizeof(*ps->ids), 256))
			return -ENOMEM;
		uint32_t *d = ps->ids + ps->nids;
		memcpy(d, ps->pn, ps->npn * sizeof(*d));
		d += ps->npn;
		for (size_t i = ps->nfr; i-- > 0;)
			*d++ = ps->fr[i];
		ps->boff[ps->bn] = ps->nids;
		ps->bdepth[ps->bn] = (uint32_t)depth;
		ps->bperiod[ps->bn] = ps->period;
		ps->bline[ps->bn] = lineno;
		ps->nids += depth;
		if (++ps->bn == EMIT_BATCH)
			flush_batch(ps, st, errfn, arg);
	}
	if (r) {
		st->dropped++;
		if (errfn)
			errfn(arg, lineno, drop_reason(r));
	}
	ps->have_pname = false;
	ps->nfr = 0;
	ps->serr = 0;
	return 0;
}

static void fc_clear(struct st_perf_cache *c)
{
	if (c->slots)
		memset(c->slots, 0, c->nslots * sizeof(*c->slots));
	if (c->bslots)
		memset(c->bslots, 0, c->nbslots * sizeof(*c->bslots));
	c->nbodies = 0;
	c->nent = 0;
	for (size_t i = 0; i < c->nkch; i++)
		st_free(c->kch[i]);
	c->nkch = 0;
	c->kcur = NULL;
	c->kused = c->kcap = 0;
	c->kblen = 0;
	c->ncid = 0;
}

struct st_perf_cache *st_perf_cache_new(void)
{
	return st_calloc(1, sizeof(struct st_perf_cache));
}

void st_perf_cache_free(struct st_perf_cache *c)
{
	if (!c)
		return;
	st_free(c->slots);
	st_free(c->bslots);
	st_free(c->ent);
	for (size_t i = 0; i < c->nkch; i++)
		st_free(c->kch[i]);
	st_free(c->kch);
	st_free(c->cid);
	st_free(c);
}

/* Samples longer than this are not cached whole (their frames still are). */
#define BODY_MAX (1u << 20)

/*
 * A sample body (the lines after an accepted header up to the blank line
 * that ends it) is looked up by its first BODY_PREFIX bytes, or all of it
 * when shorter, and then compared in full with the cached copy: one pass
 * over the bytes, with no scan for its blank line first.  The blank line
 * is the first '\n' at q > p with q[-1] == '\n', so a cached body B (which
 * ends in '\n' and holds no "\n\n") is the body at p exactly when
 * p[0..|B|) == B and p[|B|] == '\n'.  The prefix is a function of the body's
 * bytes: the whole body if its blank line is within BODY_PREFIX + 1 bytes,
 * else its first BODY_PREFIX bytes.  Bodies sharing a prefix share a hash;
 * once BODY_CHAIN of them are cached, a body with that prefix is looked up
 * the old way instead, by the hash of the whole body (kind | 8), and cached
 * under it (the first BODY_CHAIN once more): inputs whose bodies share
 * their first lines cost a scan, a hash and a compare, no more.
 */
#define BODY_PREFIX 128
#define BODY_CHAIN 4

/* The first i in [1, len) with p[i-1] == p[i] == '\n' (0 if none), with
 * one pass over the bytes, 16 at a time with SSE2. */
static size_t find_pair(const char *p, size_t len)
{
	size_t i = 0;
#ifdef __SSE2__
	const __m128i nl = _mm_set1_epi8('\n');
	uint32_t carry = 0; /* p[i-1] == '\n' (0 at i == 0: p[-1] is not ours) */
	for (; i + 16 <= len; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		uint32_t m = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl));
		uint32_t pair = m & (m << 1 | carry); /* bit b: p[i+b-1], p[i+b] */
		if (pair)
			return i + (unsigned)__builtin_ctz(pair);
		carry = m >> 15;
	}
#endif
	for (i = i ? i : 1; i < len; i++)
		if (p[i] == '\n' && p[i - 1] == '\n')
			return i;
	return 0;
}

/*
 * The body at p (a line start after an accepted header), [p, *bend): false
 * when no blank line follows within BODY_MAX (or the body is empty).
 */
static bool find_body(const char *p, const char *end, const char **bend)
{
	size_t len = (size_t)(end - p) > BODY_MAX ? BODY_MAX : (size_t)(end - p);
	if (!len || *p == '\n')
		return false;
	size_t i = find_pair(p, len);
	if (!i)
		return false;
	*bend = p + i;
	return true;
}

/* The length of the body's lookup prefix (0: no body here), and whether
 * that is the whole body. */
static size_t body_prefix(const char *p, const char *end, bool *whole)
{
	size_t avail = (size_t)(end - p);
	if (!avail || *p == '\n')
		return 0;
	size_t i = find_pair(p, avail > BODY_PREFIX + 1 ? BODY_PREFIX + 1 : avail);
	if (i) {
		*whole = true;
		return i;
	}
	*whole = false;
	return avail > BODY_PREFIX + 1 ? BODY_PREFIX : 0;
}

/* Where a body whose hash is h starts probing (0 without a table). */
static inline const struct body_slot *body_home(const struct st_perf_cache *c, uint64_t h)
{
	return c->nbslots ? &c->bslots[(size_t)(h >> 4) & (c->nbslots - 1)] : NULL;
}

/*
 * The cached body of this kind at p whose hash is h, or NULL.  With
 * `full` (a prefix lookup of a body longer than the prefix): when
 * BODY_CHAIN or more bodies have this prefix, sets *full and compares
 * none of them (they may agree with p over most of their length): the
 * caller looks the body up by its whole-body hash.
 */
static const struct body_slot *body_find(const struct st_perf_cache *c, uint64_t h, unsigned kind,
					 const char *p, size_t avail, bool *full)
{
	if (!c->nbslots)
		return NULL;
	size_t mask = c->nbslots - 1, i0 = (size_t)(h >> 4) & mask;
	uint64_t tag = (h & ~(uint64_t)15) | kind;
	if (full) {
		unsigned cnt = 0;
		for (size_t i = i0; c->bslots[i].nids; i = (i + 1) & mask)
			cnt += c->bslots[i].tag == tag;
		if (cnt >= BODY_CHAIN) {
			*full = true;
			return NULL;
		}
	}
	for (size_t i = i0;; i = (i + 1) & mask) {
		const struct body_slot *b = &c->bslots[i];
		if (!b->nids)
			return NULL;
		if (b->tag == tag) {
			if (b->fl < avail) {
				__builtin_prefetch(c->cid + b->ioff);
				if (p[b->fl] == '\n' && memcmp(p, b->k, b->fl) == 0)
					return b;
			}
		}
	}
}

/* Cache the body [p, p + fl) under hash h: ids cid[ioff..ncid), aux lines.
 * False when there is no room (the caller forgets the ids). */
static bool body_add(struct st_perf_cache *c, uint64_t h, unsigned kind, const char *p, size_t fl,
		     size_t ioff, uint64_t aux)
{
	if ((c->nbodies + 1) * 2 > c->nbslots) {
		size_t ns = c->nbslots ? c->nbslots * 2 : 1024;
		struct body_slot *sl = st_calloc(ns, sizeof(*sl));
		if (!sl)
			return false;
		for (size_t j = 0; j < c->nbslots; j++) {
			const struct body_slot *b = &c->bslots[j];
			if (!b->nids)
				continue;
			size_t i = (size_t)(b->tag >> 4) & (ns - 1);
			while (sl[i].nids)
				i = (i + 1) & (ns - 1);
			sl[i] = *b;
		}
		st_free(c->bslots);
		c->bslots = sl;
		c->nbslots = ns;
	}
	if (c->ncid - ioff > UINT32_MAX || aux > UINT32_MAX || c->ncid == ioff)
		return false;
	const char *k = key_store(c, p, fl, "", 0, "", 0);
	if (!k)
		return false;
	size_t mask = c->nbslots - 1, i = (size_t)(h >> 4) & mask;
	while (c->bslots[i].nids)
		i = (i + 1) & mask;
	c->bslots[i] = (struct body_slot){ (h & ~(uint64_t)15) | kind, k, (uint32_t)fl, (uint32_t)ioff,
					   (uint32_t)(c->ncid - ioff), (uint32_t)aux };
	c->nbodies++;
	return true;
}

int st_perf_ingest_cached(struct st_perf_cache *c, struct st_writer *w, unsigned metric,
			  const struct st_perf_opts *o, const char *buf, size_t len,
			  st_parse_err_fn errfn, void *arg, struct st_parse_stats *st)
{
	struct st_perf_opts def;
	if (!o) {
		st_perf_opts_init(&def);
		o = &def;
	}
	struct pstate ps = { .o = o, .w = w, .e = st_writer_engine(w), .metric = metric, .c = c };
	if (c->e != ps.e || c->o.pid != o->pid || c->o.tid != o->tid || c->o.kernel != o->kernel ||
	    c->o.jit != o->jit || c->o.addrs != o->addrs) {
		fc_clear(c);
		c->e = ps.e;
		c->o = *o;
		c->o.event = NULL;
	}
	if (o->event && o->event[0]) {
		ps.ev = o->event;
		ps.evlen = strlen(o->event);
	}
	int rc = 0;
	uint64_t lineno = 0;
	/* A sample body being parsed line by line that may go in the cache. */
	const char *body = NULL;
	uint64_t bh = 0, body_line0 = 0;
	size_t bnfr = 0;
	unsigned bkind = 4;
	bool bok = false, bfull = false;
	const char *p = buf, *end = buf + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		const char *s = p;
		p = nl ? nl + 1 : end;
		lineno++;
		if (n && s[0] == '#') {
			st->skipped++;
			bok = false;
			continue;
		}
		if (n == 0) {
			/* A body that produced no frames is not cached: nothing to reuse.
			 * s is the first blank line after body: the body is [body, s). */
			if (body && s > body && (size_t)(s - body) < BODY_MAX && bok && !ps.serr &&
			    ps.have_pname && ps.nfr > bnfr &&
			    !grow((void **)&c->cid, &c->cidcap, c->ncid + (ps.nfr - bnfr), sizeof(*c->cid), 1024)) {
				size_t ioff = c->ncid;
				memcpy(c->cid + ioff, ps.fr + bnfr, (ps.nfr - bnfr) * sizeof(*c->cid));
				c->ncid += ps.nfr - bnfr;
				size_t bl = (size_t)(s - body);
				if (bfull) /* too many bodies with this prefix */
					bh = st_hash_bytes(body, bl);
				if (!body_add(c, bh, bkind, body, bl, ioff, lineno - 1 - body_line0))
					c->ncid = ioff;
			}
			body = NULL;
			if (ps.have_pname) {
				rc = emit(&ps, st, errfn, arg, lineno);
				if (rc)
					break;
			} else {
				st->skipped++;
			}
			if (c->kblen > FC_MAX_KEY_BYTES)
				fc_clear(c);
			continue;
		}
		struct hdr h;
		if (!is_ws((unsigned char)s[0]) && match_header(s, n, &h)) {
			/* The body's lookup prefix and hash first: its slot is
			 * fetched while the header is parsed. */
			bool whole = false;
			size_t pl = body_prefix(p, end, &whole);
			uint64_t ph = 0;
			if (pl) {
				ph = st_hash_bytes(p, pl);
				const struct body_slot *home = body_home(c, ph);
				if (home)
					__builtin_prefetch(home);
			}
			bool accepted;
			rc = header_line(&ps, s, n, &h, st, &accepted);
			if (rc)
				break;
			body = NULL;
			if (accepted && pl) {
				const char *bend;
				bkind = 4 | ps.java;
				bh = ph;
				bfull = false;
				const struct body_slot *e =
					body_find(c, bh, bkind, p, (size_t)(end - p), whole ? NULL : &bfull);
				if (bfull) {
					bkind |= 8;
					if (find_body(p, end, &bend)) {
						size_t bl = (size_t)(bend - p);
						e = body_find(c, st_hash_bytes(p, bl), bkind, p, bl + 1, NULL);
					}
				}
				if (e) {
					if (grow((void **)&ps.fr, &ps.frcap, ps.nfr + e->nids, sizeof(*ps.fr), 256)) {
						rc = -ENOMEM;
						break;
					}
					memcpy(ps.fr + ps.nfr, c->cid + e->ioff, e->nids * sizeof(*ps.fr));
					ps.nfr += e->nids;
					lineno += e->aux;
					p += e->fl;
					continue;
				}
				body = p;
				body_line0 = lineno;
				bnfr = ps.nfr;
				bok = true;
			}
			continue;
		}
		bool ok;
		rc = frame_line(&ps, s, n, &ok);
		if (rc)
			break;
		if (!ok) {
			bok = false;
			st->malformed++;
			if (errfn)
				errfn(arg, lineno, "unrecognized perf script line");
		}
	}
	flush_batch(&ps, st, errfn, arg); /* also after an error: keep what parsed */
	st->lines += lineno;
	st_free(ps.arena);
	st_free(ps.fr);
	st_free(ps.ids);
	st_free(ps.pn);
	st_free(ps.evbuf);
	return rc;
}

int st_perf_ingest(struct st_writer *w, unsigned metric, const struct st_perf_opts *o,
		   const char *buf, size_t len, st_parse_err_fn errfn, void *arg,
		   struct st_parse_stats *st)
{
	struct st_perf_cache *c = st_perf_cache_new();
	if (!c)
		return -ENOMEM;
	int rc = st_perf_ingest_cached(c, w, metric, o, buf, len, errfn, arg, st);
	st_perf_cache_free(c);
	return rc;
}
