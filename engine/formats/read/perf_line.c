/* SPDX-License-Identifier: MIT */
/*
 * perf_line.c - matching `perf script` lines and cleaning what they name,
 * as stackcollapse-perf.pl does (rules 3 and 4 listed in perf.c):
 *
 *   - the byte classes of Perl's \s \d \w on byte strings (perf_cls);
 *   - the header regex /^(\S.+?)\s+(\d+)[/]*(\d+)*\s+/ (perf_match_header),
 *     the header of a thread perf never saw named that Perl does not
 *     parse (perf_match_header_unnamed: pid or tid "-1"), and the event
 *     regex /:\s*(\d+)*\s+(\S+):\s*$/ (perf_match_event), each with its
 *     backtracking worked out by hand;
 *   - a frame's symbol into its interned, cleaned parts (perf_clean_frame:
 *     "->" inline split, "[unknown]", ';' -> ':', argument lists, quotes,
 *     java 'L', the _[k] _[j] _[i] annotations);
 *   - pname, comm[-pid[/tid]] with ' ' -> '_', into interned ids
 *     (perf_pname_ids).
 * The frame regex itself is perf_match_frame() in perf.h (inline: it runs
 * once per frame line).
 *
 * Invariants: the matchers only read the line (never past s[n-1]) and keep
 * no state; the cleaners build each part in ps->arena (scratch, reused by
 * the next part) and append ids to the cache's cid, which is all they
 * change there: the caller turns the ids into a cache entry or cuts them.
 */
#include <errno.h>

#include "perf.h"

#define CL_D (C_DIGIT | C_WORD | C_HEX)
#define CL_L (C_WORD)
#define CL_H (C_WORD | C_HEX)
const uint8_t perf_cls[256] = {
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

bool perf_match_header(const char *s, size_t n, struct perf_hdr *h)
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
			*h = (struct perf_hdr){ k, NULL, s + q, 0, (size_t)(j - q) };
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
			*h = (struct perf_hdr){ k, NULL, s + q, 0, (size_t)(j - q) };
			return true;
		}
		size_t e = m;
		while (e < n && is_digit(u[e]))
			e++;
		if (e == m || e >= n || !is_ws(u[e]))
			continue;
		if (e - m == 1 && u[m] == '0') /* $3 eq "0" is false in Perl */
			*h = (struct perf_hdr){ k, NULL, s + q, 0, (size_t)(j - q) };
		else
			*h = (struct perf_hdr){ k, s + q, s + m, (size_t)(j - q), (size_t)(e - m) };
		return true;
	}
	return false;
}

/* A pid or tid at s[i..n): digits, or "-1"; its end, or i when none. */
static size_t unnamed_num(const unsigned char *u, size_t i, size_t n, bool *minus1)
{
	*minus1 = false;
	if (i + 1 < n && u[i] == '-' && u[i + 1] == '1' && (i + 2 == n || !is_digit(u[i + 2]))) {
		*minus1 = true;
		return i + 2;
	}
	while (i < n && is_digit(u[i]))
		i++;
	return i;
}

bool perf_match_header_unnamed(const char *s, size_t n, struct perf_hdr *h)
{
	const unsigned char *u = (const unsigned char *)s;
	if (n < 4 || is_ws(u[0]))
		return false;
	/* As perf_match_header: the lazy comm ends at the first whitespace
	 * run (past two bytes) that the numbers follow. */
	for (size_t i = 1; i < n;) {
		while (i < n && !is_ws(u[i]))
			i++;
		size_t p = i;
		while (i < n && is_ws(u[i]))
			i++;
		size_t q = i;
		if (p == q)
			break;
		size_t k = p < 2 ? 2 : p;
		if (k >= q)
			continue;
		bool m1, m2 = false;
		size_t j = unnamed_num(u, q, n, &m1);
		if (j == q || j >= n)
			continue;
		size_t tid = j, e = j;
		if (u[j] == '/') {
			size_t m = j;
			while (m < n && u[m] == '/')
				m++;
			tid = m;
			e = unnamed_num(u, m, n, &m2);
			if (e == m)
				continue;
		}
		if (e >= n || !is_ws(u[e]) || !(m1 || m2))
			continue;
		if (tid == j || (e - tid == 1 && u[tid] == '0')) /* as Perl: tid "0" is none */
			*h = (struct perf_hdr){ k, NULL, s + q, 0, j - q };
		else
			*h = (struct perf_hdr){ k, s + q, s + tid, j - q, e - tid };
		return true;
	}
	return false;
}

bool perf_match_event(const char *s, size_t n, const char **ev, size_t *evlen, const char **per,
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

static int arena_reserve(struct pstate *ps, size_t need)
{
	return st_grow(&ps->arena, &ps->acap, need, 1, 4096);
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
	return perf_cid_push(ps, o, n, ok);
}

int perf_clean_frame(struct pstate *ps, const struct perf_frame *fr, bool *ok)
{
	const char *f = fr->f, *pc = fr->pc, *mod = fr->mod;
	size_t fl = fr->fl, pcl = fr->pcl, modl = fr->modl;
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

int perf_pname_ids(struct pstate *ps, const char *comm, size_t comml, const char *pid,
		   size_t pidl, const char *tid, size_t tidl, bool *ok)
{
	size_t need = comml + 2 + pidl + tidl;
	if (arena_reserve(ps, need))
		return -ENOMEM;
	char *o = ps->arena;
	size_t k = 0;
	memcpy(o, comm, comml);
	k = comml;
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
	const char *p = o, *end = o + k;
	for (;;) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *fe = semi ? semi : end;
		if (perf_cid_push(ps, p, (size_t)(fe - p), ok))
			return -ENOMEM;
		if (!semi)
			break;
		p = semi + 1;
	}
	struct st_perf_cache *c = ps->c;
	if (st_grow(&c->cid, &c->cidcap, c->ncid + 1, sizeof(*c->cid), 1024))
		return -ENOMEM;
	c->cid[c->ncid++] = k >= 4 && memcmp(o, "java", 4) == 0;
	return 0;
}
