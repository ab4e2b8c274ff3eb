/* SPDX-License-Identifier: MIT */
/*
 * parse_perf.c - `perf script` text into an engine writer, collapsed exactly
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

#include "internal.h"
#include "shardtrie_parse.h"

void st_perf_opts_init(struct st_perf_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
}

static inline bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static inline bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline bool is_word(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

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

struct frame {
	size_t off; /* in the arena */
	size_t len;
};

struct pstate {
	const struct st_perf_opts *o;
	struct st_writer *w;
	unsigned metric;
	/* filter */
	const char *ev;
	size_t evlen;
	char *evbuf;
	/* current sample */
	bool have_pname, java;
	uint64_t period;
	char *arena;
	size_t alen, acap;
	size_t pname_off, pname_len;
	/* Frames of the sample as they come (leaf first); each frame line's
	 * inline group is stored reversed so that reversing the whole list
	 * gives Perl's order. */
	struct frame *fr;
	size_t nfr, frcap;
	const char **ptrs;
	size_t *lens;
	size_t pcap;
};

static int arena_reserve(struct pstate *ps, size_t more)
{
	if (ps->alen + more <= ps->acap)
		return 0;
	size_t nc = ps->acap ? ps->acap : 4096;
	while (nc < ps->alen + more)
		nc *= 2;
	char *na = st_realloc(ps->arena, nc);
	if (!na)
		return -ENOMEM;
	ps->arena = na;
	ps->acap = nc;
	return 0;
}

static int push_frame(struct pstate *ps, size_t off, size_t len)
{
	if (ps->nfr == ps->frcap) {
		size_t nc = ps->frcap ? ps->frcap * 2 : 256;
		struct frame *nf = st_realloc(ps->fr, nc * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		ps->fr = nf;
		ps->frcap = nc;
	}
	ps->fr[ps->nfr++] = (struct frame){ off, len };
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
 * Clean one "->" part (tidy_generic, tidy_java, annotations) into the arena
 * and push it.  `first` is false for inlined parts after the first.
 */
static int add_part(struct pstate *ps, const char *f, size_t fl, const char *pc, size_t pcl,
		    const char *mod, size_t modl, bool first)
{
	/* Worst case: "[" mod " <" pc ">]" "_[x]" */
	if (arena_reserve(ps, fl + modl + pcl + 16))
		return -ENOMEM;
	size_t start = ps->alen;
	char *o = ps->arena + start;
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
	ps->alen = start + n;
	return push_frame(ps, start, n);
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
	const char *rp = memrchr(s, ')', n);
	if (!rp)
		return 0;
	size_t lastparen = (size_t)(rp - s);
	if (lastparen < 2)
		return 0;
	size_t R = SIZE_MAX;
	for (size_t r = lastparen - 2 + 1; r-- > 0;) {
		if (u[r] == ' ' && u[r + 1] == '(') {
			R = r;
			break;
		}
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
	while (h > 0 && (is_digit((unsigned char)f[h - 1]) || (f[h - 1] >= 'a' && f[h - 1] <= 'f')))
		h--;
	if (h < fl && h >= 3 && f[h - 3] == '+' && f[h - 2] == '0' && f[h - 1] == 'x')
		fl = h - 3;
	if (fl && f[0] == '(')
		return 0;
	/* split /->/, trailing empty fields dropped; most symbols have no '-' */
	size_t base = ps->nfr;
	const char *dash = memchr(f, '-', fl);
	if (!dash) {
		if (fl && add_part(ps, f, fl, pc, pcl, mod, modl, true))
			return -ENOMEM;
		return 0;
	}
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
		if (add_part(ps, p, (size_t)(pe - p), pc, pcl, mod, modl, i == 0))
			return -ENOMEM;
		p = pe + 2;
	}
	/* Reverse the group so a final whole reversal restores its order. */
	for (size_t i = base, j = ps->nfr; i + 1 < j; i++, j--) {
		struct frame t = ps->fr[i];
		ps->fr[i] = ps->fr[j - 1];
		ps->fr[j - 1] = t;
	}
	return 0;
}

static int header_line(struct pstate *ps, const char *s, size_t n, const struct hdr *h,
		       struct st_parse_stats *st)
{
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
	size_t need = h->comm_len + 2 + (h->pid ? h->pid_len : 1) + h->tid_len;
	if (arena_reserve(ps, need))
		return -ENOMEM;
	char *o = ps->arena + ps->alen;
	size_t k = 0;
	memcpy(o, s, h->comm_len);
	k = h->comm_len;
	if (ps->o->tid || ps->o->pid) {
		o[k++] = '-';
		if (h->pid) {
			memcpy(o + k, h->pid, h->pid_len);
			k += h->pid_len;
		} else {
			o[k++] = '?';
		}
		if (ps->o->tid) {
			o[k++] = '/';
			memcpy(o + k, h->tid, h->tid_len);
			k += h->tid_len;
		}
	}
	for (size_t i = 0; i < k; i++)
		if (o[i] == ' ')
			o[i] = '_';
	ps->pname_off = ps->alen;
	ps->pname_len = k;
	ps->alen += k;
	ps->java = k >= 4 && memcmp(o, "java", 4) == 0;
	ps->have_pname = true;
	ps->period = period;
	return 0;
}

/* Blank line with pname: pname;stack -> the writer. */
static int emit(struct pstate *ps, struct st_parse_stats *st, st_parse_err_fn errfn, void *arg,
		uint64_t lineno)
{
	const char *pn = ps->arena + ps->pname_off;
	size_t pnl = ps->pname_len;
	size_t npn = 1;
	for (size_t i = 0; i < pnl; i++)
		npn += pn[i] == ';';
	size_t depth = npn + ps->nfr;
	if (depth > ps->pcap) {
		size_t nc = depth < 256 ? 256 : depth;
		const char **np = st_realloc(ps->ptrs, nc * sizeof(*np));
		if (np)
			ps->ptrs = np;
		size_t *nl = np ? st_realloc(ps->lens, nc * sizeof(*nl)) : NULL;
		if (!np || !nl)
			return -ENOMEM;
		ps->lens = nl;
		ps->pcap = nc;
	}
	size_t d = 0;
	const char *p = pn, *end = pn + pnl;
	for (;;) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *fe = semi ? semi : end;
		ps->ptrs[d] = p;
		ps->lens[d++] = (size_t)(fe - p);
		if (!semi)
			break;
		p = semi + 1;
	}
	for (size_t i = ps->nfr; i-- > 0;) {
		ps->ptrs[d] = ps->arena + ps->fr[i].off;
		ps->lens[d++] = ps->fr[i].len;
	}
	uint64_t values[ST_MAX_METRICS] = { 0 };
	values[ps->metric] = ps->period;
	int r = depth > ST_MAX_DEPTH ? -E2BIG
				     : st_writer_ingest_strs(ps->w, ps->ptrs, ps->lens, depth, values);
	if (r == 0) {
		st->samples++;
	} else {
		st->dropped++;
		if (errfn)
			errfn(arg, lineno,
			      r == -E2BIG ? "sample deeper than the frame limit"
			      : r == -ENAMETOOLONG ? "frame longer than 1 MiB"
						   : "sample dropped (out of memory)");
	}
	ps->have_pname = false;
	ps->nfr = 0;
	ps->alen = 0;
	return 0;
}

int st_perf_ingest(struct st_writer *w, unsigned metric, const struct st_perf_opts *o,
		   const char *buf, size_t len, st_parse_err_fn errfn, void *arg,
		   struct st_parse_stats *st)
{
	struct st_perf_opts def;
	if (!o) {
		st_perf_opts_init(&def);
		o = &def;
	}
	struct pstate ps = { .o = o, .w = w, .metric = metric };
	if (o->event && o->event[0]) {
		ps.ev = o->event;
		ps.evlen = strlen(o->event);
	}
	int rc = 0;
	uint64_t lineno = 0;
	const char *p = buf, *end = buf + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		const char *s = p;
		p = nl ? nl + 1 : end;
		lineno++;
		st->lines++;
		if (n && s[0] == '#') {
			st->skipped++;
			continue;
		}
		if (n == 0) {
			if (ps.have_pname) {
				rc = emit(&ps, st, errfn, arg, lineno);
				if (rc)
					break;
			} else {
				st->skipped++;
			}
			continue;
		}
		struct hdr h;
		if (!is_ws((unsigned char)s[0]) && match_header(s, n, &h)) {
			/* Without pname the stack is empty: reuse the arena. */
			if (!ps.have_pname)
				ps.alen = 0;
			rc = header_line(&ps, s, n, &h, st);
			if (rc)
				break;
			continue;
		}
		bool ok;
		rc = frame_line(&ps, s, n, &ok);
		if (rc)
			break;
		if (!ok) {
			st->malformed++;
			if (errfn)
				errfn(arg, lineno, "unrecognized perf script line");
		}
	}
	st_free(ps.arena);
	st_free(ps.fr);
	st_free(ps.ptrs);
	st_free(ps.lens);
	st_free(ps.evbuf);
	return rc;
}
