/* SPDX-License-Identifier: MIT */
/*
 * perf.c - `perf script` text into an engine writer, collapsed exactly
 * as FlameGraph's stackcollapse-perf.pl does (so folded export = its output).
 * This is the driver: the line loop, the samples and the block helpers;
 * line matching and cleaning are in perf_line.c, the caches that make a
 * repeated frame or sample cheap in perf_cache.c (perf.h: what each part
 * does and the invariants between them).
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
 * What Perl loses without a word is counted here and reported (the output
 * stays Perl's):
 *   - samples of other events: st->other_events, and per event name in the
 *     cache's tally (st_perf_cache_event), kept or not;
 *   - a sample cut off by the end of the buffer (rule 6): st->truncated,
 *     reported at its header line;
 *   - a period over UINT64_MAX (Perl would sum it as a float): the sample
 *     is dropped and reported (st->dropped), never saturated.
 * One extension: a header perf prints for a thread it never saw named
 * (":-1 14159/-1 [000] ...", perf_match_header_unnamed) fails Perl's header
 * regex, so Perl reports it and drops the sample.  It is parsed here as a
 * header with comm ":-1" (the name perf itself shows for it) and pid/tid as
 * printed, tried only on a line that is neither a Perl header nor a frame.
 * State between samples is only pname and the stack, both empty after a
 * blank line, plus the event filter: that is why blocks cut after a blank
 * line with the filter fixed up front parse independently (st_perf_cut,
 * st_perf_first_event).
 * The comm may contain ';' (Perl joins the stack with ';' and never splits
 * it): it is ingested as several frames so the joined bytes are the same.
 */
#include <errno.h>
#include <stddef.h>

#include "perf.h"

void st_perf_opts_init(struct st_perf_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
}

int st_perf_first_event(const char *buf, size_t len, const char **ev, size_t *evlen)
{
	const char *p = buf, *end = buf + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		struct perf_hdr h;
		struct perf_frame fr;
		const char *per;
		size_t perlen;
		if (n && p[0] != '#' &&
		    (perf_match_header(p, n, &h) ||
		     (!perf_match_frame(p, n, &fr) && perf_match_header_unnamed(p, n, &h))) &&
		    perf_match_event(p, n, ev, evlen, &per, &perlen))
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

/* ------------------------------------------------------------ samples */

static inline int push_id(struct pstate *ps, uint32_t id)
{
	if (ST_UNLIKELY(ps->nfr == ps->frcap) &&
	    st_grow(&ps->fr, &ps->frcap, ps->nfr + 1, sizeof(*ps->fr), 256))
		return -ENOMEM;
	ps->fr[ps->nfr++] = id;
	return 0;
}

/* A frame line: its ids onto the sample's list, through the raw-frame
 * cache (cleaned and interned on a miss). */
static int frame_line(struct pstate *ps, const char *s, size_t n, bool *recognised)
{
	struct perf_frame fr;
	*recognised = perf_match_frame(s, n, &fr);
	if (!*recognised || !ps->have_pname)
		return 0;
	if (!perf_frame_symbol(&fr))
		return 0;
	/* The address matters only for "[unknown]" parts with --addrs. */
	size_t kpcl = ps->o->addrs && contains(fr.f, fr.fl, "[unknown]", 9) ? fr.pcl : 0;
	unsigned kind = ps->java;
	struct st_perf_cache *c = ps->c;
	uint64_t hk = key_hash(fr.f, fr.fl, fr.mod, fr.modl, fr.pc, kpcl, kind);
	struct fc_ent *e = perf_fc_find(c, hk, fr.f, fr.fl, fr.mod, fr.modl, fr.pc, kpcl, kind);
	if (ST_UNLIKELY(!e)) {
		size_t ioff = c->ncid;
		bool ok = true;
		/* A copy: fr's address is not taken, so its fields stay in
		 * registers on the hit path. */
		struct perf_frame miss = fr;
		if (perf_clean_frame(ps, &miss, &ok))
			return -ENOMEM;
		if (!ok && !ps->serr)
			ps->serr = ps->serr_tmp;
		if (ok)
			e = perf_fc_add(c, hk, fr.f, fr.fl, fr.mod, fr.modl, fr.pc, kpcl, kind, ioff);
		if (!e) {
			for (size_t i = ioff; i < c->ncid; i++)
				if (push_id(ps, c->cid[i]))
					return -ENOMEM;
			c->ncid = ioff;
			return 0;
		}
	}
	if (ST_UNLIKELY(ps->nfr + e->nids > ps->frcap) &&
	    st_grow(&ps->fr, &ps->frcap, ps->nfr + e->nids, sizeof(*ps->fr), 256))
		return -ENOMEM;
	const uint32_t *ids = c->cid + e->ioff;
	for (uint32_t i = 0; i < e->nids; i++)
		ps->fr[ps->nfr++] = ids[i];
	return 0;
}

/* ids[0..n-1) are pname's ids, ids[n-1] the java flag. */
static int set_pname(struct pstate *ps, const uint32_t *ids, size_t n)
{
	if (n > ps->pncap && st_grow(&ps->pn, &ps->pncap, n, sizeof(*ps->pn), 16))
		return -ENOMEM;
	memcpy(ps->pn, ids, (n - 1) * sizeof(*ps->pn));
	ps->npn = n - 1;
	ps->java = ids[n - 1];
	return 0;
}

/* A header line: the event filter, the period, and pname's ids through the
 * raw-frame cache. */
static int header_line(struct pstate *ps, const char *s, size_t n, const struct perf_hdr *h,
		       struct st_parse_stats *st, bool *accepted)
{
	*accepted = false;
	const char *ev, *per;
	size_t evlen, perlen;
	uint64_t period = 1;
	bool period_err = false;
	if (perf_match_event(s, n, &ev, &evlen, &per, &perlen)) {
		if (!ps->ev) {
			ps->evbuf = st_malloc(evlen + 1);
			if (!ps->evbuf)
				return -ENOMEM;
			memcpy(ps->evbuf, ev, evlen);
			ps->ev = ps->evbuf;
			ps->evlen = evlen;
		} else if (evlen != ps->evlen || memcmp(ev, ps->ev, evlen) != 0) {
			size_t t = perf_ev_tally(ps->c, ev, evlen);
			if (t == SIZE_MAX)
				return -ENOMEM;
			ps->c->ev[t].samples++;
			st->skipped++;
			st->other_events++;
			return 0;
		}
		if (ST_UNLIKELY(ps->ev_kept == SIZE_MAX) &&
		    (ps->ev_kept = perf_ev_tally(ps->c, ps->ev, ps->evlen)) == SIZE_MAX)
			return -ENOMEM;
		ps->c->ev[ps->ev_kept].samples++;
		if (per && !(perlen == 1 && per[0] == '0')) {
			period = 0;
			for (size_t i = 0; i < perlen; i++)
				if (__builtin_mul_overflow(period, 10, &period) ||
				    __builtin_add_overflow(period, (uint64_t)(per[i] - '0'), &period)) {
					period_err = true;
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
	struct st_perf_cache *c = ps->c;
	uint64_t hk = key_hash(s, h->comm_len, pid, pidl, tid, tidl, 2);
	struct fc_ent *e = perf_fc_find(c, hk, s, h->comm_len, pid, pidl, tid, tidl, 2);
	if (!e) {
		size_t ioff = c->ncid;
		bool ok = true;
		if (perf_pname_ids(ps, s, h->comm_len, pid, pidl, tid, tidl, &ok))
			return -ENOMEM;
		ps->pn_err = ok ? 0 : ps->serr_tmp;
		if (ok)
			e = perf_fc_add(c, hk, s, h->comm_len, pid, pidl, tid, tidl, 2, ioff);
		if (!e) {
			int r = set_pname(ps, c->cid + ioff, c->ncid - ioff);
			c->ncid = ioff;
			if (r)
				return r;
			goto done;
		}
	} else {
		ps->pn_err = 0;
	}
	if (set_pname(ps, c->cid + e->ioff, e->nids))
		return -ENOMEM;
done:
	ps->have_pname = true;
	ps->period = period;
	ps->period_err = period_err;
	*accepted = true;
	return 0;
}

static const char *drop_reason(int r)
{
	return r == -E2BIG ? "sample deeper than the frame limit"
	       : r == -ENAMETOOLONG ? "frame longer than 1 MiB"
	       : r == -ERANGE ? "sample period does not fit 64 bits: sample dropped"
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
		for (size_t k = i; k < i + done; k++)
			st->sum = st_sat_add(st->sum, ps->bperiod[k]);
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

/* Blank line with pname: pname;stack -> the batch (the writer when full). */
static int emit(struct pstate *ps, struct st_parse_stats *st, st_parse_err_fn errfn, void *arg,
		uint64_t lineno)
{
	size_t depth = ps->npn + ps->nfr;
	int r = 0;
	if (depth > ST_MAX_DEPTH) {
		r = -E2BIG;
	} else if (ps->period_err) {
		r = -ERANGE;
	} else if (ps->pn_err || ps->serr) {
		r = ps->pn_err ? ps->pn_err : ps->serr;
	} else {
		if (ps->nids + depth > ps->idcap &&
		    st_grow(&ps->ids, &ps->idcap, ps->nids + depth, sizeof(*ps->ids), 256))
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
		if (errfn) /* a bad period at its header, the rest where the sample ends */
			errfn(arg, r == -ERANGE ? ps->hdr_line : lineno, drop_reason(r));
	}
	ps->have_pname = false;
	ps->nfr = 0;
	ps->serr = 0;
	return 0;
}

/* ------------------------------------------------------------ the driver */

int st_perf_ingest_cached(struct st_perf_cache *c, struct st_writer *w, unsigned metric,
			  const struct st_perf_opts *o, const char *buf, size_t len,
			  st_parse_err_fn errfn, void *arg, struct st_parse_stats *st)
{
	struct st_perf_opts def;
	if (!o) {
		st_perf_opts_init(&def);
		o = &def;
	}
	struct pstate ps = { .o = o, .w = w, .e = st_writer_engine(w), .metric = metric, .c = c,
			     .ev_kept = SIZE_MAX };
	if (c->e != ps.e || c->o.pid != o->pid || c->o.tid != o->tid || c->o.kernel != o->kernel ||
	    c->o.jit != o->jit || c->o.addrs != o->addrs) {
		perf_cache_clear(c);
		c->e = ps.e;
		c->o = *o;
		c->o.event = NULL;
	}
	/* event_len: a caller built before it existed passes a smaller size. */
	size_t evlen = o->size >= offsetof(struct st_perf_opts, event_len) + sizeof(o->event_len)
			       ? o->event_len
			       : 0;
	if (o->event && (evlen || o->event[0])) {
		ps.ev = o->event;
		ps.evlen = evlen ? evlen : strlen(o->event);
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
			    (c->ncid + (ps.nfr - bnfr) <= c->cidcap ||
			     !st_grow(&c->cid, &c->cidcap, c->ncid + (ps.nfr - bnfr), sizeof(*c->cid), 1024))) {
				size_t ioff = c->ncid;
				memcpy(c->cid + ioff, ps.fr + bnfr, (ps.nfr - bnfr) * sizeof(*c->cid));
				c->ncid += ps.nfr - bnfr;
				size_t bl = (size_t)(s - body);
				if (bfull) /* too many bodies with this prefix */
					bh = st_hash_bytes(body, bl);
				if (!perf_body_add(c, bh, bkind, body, bl, ioff, lineno - 1 - body_line0))
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
				perf_cache_clear(c);
			continue;
		}
		struct perf_hdr h;
		if (!is_ws((unsigned char)s[0]) && perf_match_header(s, n, &h)) {
			/* The body's lookup prefix and hash first: its slot is
			 * fetched while the header is parsed. */
			bool whole = false;
			size_t pl = perf_body_prefix(p, end, &whole);
			uint64_t ph = 0;
			if (pl) {
				ph = st_hash_bytes(p, pl);
				const struct body_slot *home = perf_body_home(c, ph);
				if (home)
					__builtin_prefetch(home);
			}
			bool accepted;
			rc = header_line(&ps, s, n, &h, st, &accepted);
			if (rc)
				break;
			if (accepted)
				ps.hdr_line = lineno;
			body = NULL;
			if (accepted && pl) {
				const char *bend;
				bkind = 4 | ps.java;
				bh = ph;
				bfull = false;
				const struct body_slot *e =
					perf_body_find(c, bh, bkind, p, (size_t)(end - p), whole ? NULL : &bfull);
				if (bfull) {
					bkind |= 8;
					if (perf_find_body(p, end, &bend)) {
						size_t bl = (size_t)(bend - p);
						e = perf_body_find(c, st_hash_bytes(p, bl), bkind, p, bl + 1, NULL);
					}
				}
				if (e) {
					if (ps.nfr + e->nids > ps.frcap &&
					    st_grow(&ps.fr, &ps.frcap, ps.nfr + e->nids, sizeof(*ps.fr), 256)) {
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
		const char *uev, *uper;
		size_t uevl, uperl;
		if (!ok && !is_ws((unsigned char)s[0]) && perf_match_header_unnamed(s, n, &h) &&
		    perf_match_event(s, n, &uev, &uevl, &uper, &uperl)) {
			/* Rare (perf never saw the thread named): no body caching. */
			bool accepted;
			rc = header_line(&ps, s, n, &h, st, &accepted);
			if (rc)
				break;
			if (accepted)
				ps.hdr_line = lineno;
			body = NULL;
			bok = false;
			continue;
		}
		if (!ok) {
			bok = false;
			st->malformed++;
			if (errfn)
				errfn(arg, lineno, "unrecognized perf script line");
		}
	}
	if (!rc && ps.have_pname) {
		/* Rule 6: dropped as Perl does, but counted and reported. */
		st->truncated++;
		if (errfn)
			errfn(arg, ps.hdr_line,
			      "sample cut off: no blank line ends it (input truncated, or the sample is "
			      "longer than the reader's block): dropped");
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
