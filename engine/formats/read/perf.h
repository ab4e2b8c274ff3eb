/* SPDX-License-Identifier: MIT */
/*
 * perf.h - the three parts of the `perf script` reader and what they share
 * (formats-internal: nothing declared here is exported).
 *
 *   perf.c        the driver: st_perf_ingest[_cached], the block helpers
 *                 (st_perf_cut, st_perf_first_event), the line loop and the
 *                 samples (a header gives pname and the period, frame lines
 *                 give ids, a blank line hands pname;stack to the writer in
 *                 batches of EMIT_BATCH).  The rules it reproduces from
 *                 stackcollapse-perf.pl are listed at its top.
 *   perf_line.c   line matching and cleaning: the header and event regexes,
 *                 a frame's symbol into its cleaned, interned parts (rule 4)
 *                 and pname from comm/pid/tid (rule 3).  Matching a frame
 *                 line runs once per frame: perf_match_frame() is inline
 *                 here so the driver's loop makes no call for it.
 *   perf_cache.c  the caches: the raw-frame cache (raw frame or pname bytes
 *                 -> their interned ids, so each distinct one is cleaned
 *                 and interned once) and the sample-body cache (a whole
 *                 body's bytes -> its ids, so a repeated sample costs one
 *                 compare).  What runs per frame (perf_fc_find) and per
 *                 sample (perf_body_prefix, perf_body_home, perf_body_add)
 *                 is inline.
 *
 * Invariants:
 *  - A cache serves one engine and one set of options (c->e, c->o): the
 *    driver clears it when either changes, since the ids come from that
 *    engine's interner and the cleaning depends on the options.
 *  - Key bytes are stored in chunks that never move, so an entry's k stays
 *    valid until the cache is cleared; the driver clears it (past
 *    FC_MAX_KEY_BYTES) only at a blank line, when no sample refers to it.
 *  - c->cid holds the entries' ids back to back: an entry owns
 *    cid[ioff, ioff + nids).  A miss appends its ids to cid and either
 *    becomes an entry or is cut back (ncid = ioff): nothing else writes cid.
 *  - A frame entry's ids are in the order they go on the leaf-first list
 *    (an inline group reversed); a pname entry's ids end with the java flag.
 *  - Failing to cache only loses caching; failing to intern marks the
 *    sample (ps->serr, ps->pn_err), which is dropped at its blank line:
 *    never a wrong stack.
 */
#ifndef ST_FORMATS_READ_PERF_H
#define ST_FORMATS_READ_PERF_H

#include <stdint.h>

#include "formats.h"
#include "shardtrie_parse.h"

#pragma GCC visibility push(hidden)

/* -------------------------------------------------------- byte classes */

/* Perl's \s, \d, \w (ASCII) and [\da-f] (perf_line.c). */
enum { C_WS = 1, C_DIGIT = 2, C_WORD = 4, C_HEX = 8 };
extern const uint8_t perf_cls[256];
static inline bool is_ws(unsigned char c) { return perf_cls[c] & C_WS; }
static inline bool is_digit(unsigned char c) { return perf_cls[c] & C_DIGIT; }
static inline bool is_word(unsigned char c) { return perf_cls[c] & C_WORD; }
static inline bool is_lhex(unsigned char c) { return perf_cls[c] & C_HEX; }

static inline bool contains(const char *s, size_t n, const char *needle, size_t nl)
{
	return nl <= n && memmem(s, n, needle, nl) != NULL;
}

/* ----------------------------------------------------------- the caches */

/* A raw-frame cache entry: a frame (kind 0) or a pname (kind 2), | 1 for a
 * java process. */
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
	/* Samples per event name, first seen first (st_perf_cache_event):
	 * a tally of the input, not a cache, so perf_cache_clear keeps it. */
	struct perf_ev {
		char *name;
		size_t len;
		uint64_t samples;
	} *ev;
	size_t nev, evcap;
};

/* Past this many key bytes the cache starts over (bounds its memory). */
#define FC_MAX_KEY_BYTES (64u << 20)
/* Samples longer than this are not cached whole (their frames still are). */
#define BODY_MAX (1u << 20)
/* A body is looked up by its first BODY_PREFIX bytes (perf_cache.c). */
#define BODY_PREFIX 128
/* Distinct event names tallied; later ones share one entry, PERF_EV_MORE. */
#define PERF_EV_MAX 64
#define PERF_EV_MORE "(other events)"

/* ---------------------------------------------------- the parse state */

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
	size_t ev_kept;     /* the filter's tally entry (SIZE_MAX: not looked up yet) */
	/* current sample */
	bool have_pname, java;
	bool period_err;    /* its period does not fit 64 bits: dropped at its end */
	uint64_t period;
	uint64_t hdr_line;  /* its header's line (a sample cut off is reported there) */
	int serr;           /* first intern error of the stack's frames, 0 if none */
	int serr_tmp;       /* last intern error (perf_cid_push) */
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

/* ------------------------------------------------ line matching (perf_line.c) */

/* A header line's comm (its first comm_len bytes) and pid/tid. */
struct perf_hdr {
	size_t comm_len;
	const char *pid, *tid; /* NULL pid = "?" */
	size_t pid_len, tid_len;
};

/* /^(\S.+?)\s+(\d+)[/]*(\d+)*\s+/ on s[0..n). */
bool perf_match_header(const char *s, size_t n, struct perf_hdr *h);

/*
 * Not Perl's: the header perf prints for a sample whose thread it never saw
 * (comm ":-1", from `thread ? thread__comm_str(thread) : ":-1"`) or whose
 * pid/tid is -1, e.g. ":-1 14159/-1    [000]   524.077898: cpu-clock:ppp:".
 * /^(\S.+?)\s+(\d+|-1)(?:[/]+(\d+|-1))?\s+/ with one number "-1"; the
 * driver tries it only on a line that is neither Perl header nor frame, so
 * every line Perl parses is parsed as before.
 */
bool perf_match_header_unnamed(const char *s, size_t n, struct perf_hdr *h);

/* /:\s*(\d+)*\s+(\S+):\s*$/ on s[0..n): event and period (NULL if none). */
bool perf_match_event(const char *s, size_t n, const char **ev, size_t *evlen, const char **per,
		      size_t *perlen);

/* A frame line's address, symbol and module. */
struct perf_frame {
	const char *pc, *f, *mod;
	size_t pcl, fl, modl;
};

/*
 * /^\s*(\w+)\s*(.+) \((.*)\)/ on s[0..n) (n > 0): the module is up to the
 * LAST ')', the symbol up to the last " (" before it (greedy).  False when
 * the line is no frame.
 */
static inline bool perf_match_frame(const char *s, size_t n, struct perf_frame *fr)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t a = 0;
	while (a < n && is_ws(u[a]))
		a++;
	size_t we = a;
	while (we < n && is_word(u[we]))
		we++;
	if (we == a)
		return false;
	size_t lastparen;
	if (ST_LIKELY(u[n - 1] == ')')) {
		lastparen = n - 1;
	} else {
		const char *rp = memrchr(s, ')', n);
		if (!rp)
			return false;
		lastparen = (size_t)(rp - s);
	}
	if (lastparen < 2)
		return false;
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
		return false;
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
			return false;
		we = R - 1;
		q = we;
	}
	*fr = (struct perf_frame){ s + a, s + q, s + R + 2, we - a, R - q, lastparen - (R + 2) };
	return true;
}

/*
 * s/\+0x[\da-f]+$// on the symbol; false when what is left starts with '('
 * (Perl skips such a frame).
 */
static inline bool perf_frame_symbol(struct perf_frame *fr)
{
	const char *f = fr->f;
	size_t h = fr->fl;
	while (h > 0 && is_lhex((unsigned char)f[h - 1]))
		h--;
	if (h < fr->fl && h >= 3 && f[h - 3] == '+' && f[h - 2] == '0' && f[h - 1] == 'x')
		fr->fl = h - 3;
	return !(fr->fl && f[0] == '(');
}

/* The ids of frame fr (its symbol cut by perf_frame_symbol) in the order
 * they go on the leaf-first list, appended to the cache's cid. */
int perf_clean_frame(struct pstate *ps, const struct perf_frame *fr, bool *ok);

/* pname's ids (comm[-pid[/tid]] with ' ' -> '_', split at ';') and then the
 * java flag, appended to the cache's cid; pid/tid as the options keep them. */
int perf_pname_ids(struct pstate *ps, const char *comm, size_t comml, const char *pid,
		   size_t pidl, const char *tid, size_t tidl, bool *ok);

/* ------------------------------------------------------ the caches (perf_cache.c) */

static inline uint64_t key_hash(const char *f, size_t fl, const char *mod, size_t modl,
				const char *pc, size_t pcl, unsigned kind)
{
	uint64_t h = st_hash_bytes(f, fl);
	h ^= st_hash_bytes(mod, modl) * 0x9E3779B97F4A7C15ull;
	if (pcl)
		h ^= st_hash_bytes(pc, pcl) * 0xC2B2AE3D27D4EB4Full;
	return h + kind;
}

/* The raw-frame cache's entry for the key (hash h), or NULL. */
static inline struct fc_ent *perf_fc_find(const struct st_perf_cache *c, uint64_t h,
					  const char *f, size_t fl, const char *mod, size_t modl,
					  const char *pc, size_t pcl, unsigned kind)
{
	if (!c->nslots)
		return NULL;
	size_t mask = c->nslots - 1;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		uint32_t s = c->slots[i];
		if (!s)
			return NULL;
		struct fc_ent *e = &c->ent[s - 1];
		if (e->h == h && e->kind == kind && e->fl == fl && e->modl == modl && e->pcl == pcl) {
			const char *k = e->k;
			if (memcmp(k, f, fl) == 0 && memcmp(k + fl, mod, modl) == 0 &&
			    (!pcl || memcmp(k + fl + modl, pc, pcl) == 0))
				return e;
		}
	}
}

/* Add an entry whose ids are cid[ioff..ncid); NULL (no memory, or too
 * many) only loses caching. */
struct fc_ent *perf_fc_add(struct st_perf_cache *c, uint64_t h, const char *f, size_t fl,
			   const char *mod, size_t modl, const char *pc, size_t pcl, unsigned kind,
			   size_t ioff);

/* Intern s[0..n) and append the id to cid; an intern error is kept in
 * ps->serr_tmp with *ok false and id 0 standing in.  -ENOMEM: no room. */
int perf_cid_push(struct pstate *ps, const char *s, size_t n, bool *ok);

/* The tally entry of event ev (added when new; PERF_EV_MORE past
 * PERF_EV_MAX names): its index, or SIZE_MAX (no memory). */
size_t perf_ev_tally(struct st_perf_cache *c, const char *ev, size_t evlen);

/* Forget every entry and body (keeps the tables' memory). */
void perf_cache_clear(struct st_perf_cache *c);

/* The first i in [1, len) with p[i-1] == p[i] == '\n' (0 if none). */
size_t perf_find_pair(const char *p, size_t len);

/*
 * The body at p (a line start after an accepted header), [p, *bend): false
 * when no blank line follows within BODY_MAX (or the body is empty).
 */
static inline bool perf_find_body(const char *p, const char *end, const char **bend)
{
	size_t len = (size_t)(end - p) > BODY_MAX ? BODY_MAX : (size_t)(end - p);
	if (!len || *p == '\n')
		return false;
	size_t i = perf_find_pair(p, len);
	if (!i)
		return false;
	*bend = p + i;
	return true;
}

/* The length of the body's lookup prefix (0: no body here), and whether
 * that is the whole body. */
static inline size_t perf_body_prefix(const char *p, const char *end, bool *whole)
{
	size_t avail = (size_t)(end - p);
	if (!avail || *p == '\n')
		return 0;
	size_t i = perf_find_pair(p, avail > BODY_PREFIX + 1 ? BODY_PREFIX + 1 : avail);
	if (i) {
		*whole = true;
		return i;
	}
	*whole = false;
	return avail > BODY_PREFIX + 1 ? BODY_PREFIX : 0;
}

/* Where a body whose hash is h starts probing (NULL without a table). */
static inline const struct body_slot *perf_body_home(const struct st_perf_cache *c, uint64_t h)
{
	return c->nbslots ? &c->bslots[(size_t)(h >> 4) & (c->nbslots - 1)] : NULL;
}

/*
 * The cached body of this kind at p whose hash is h, or NULL.  With
 * `full` (a prefix lookup of a body longer than the prefix): when too many
 * bodies have this prefix, sets *full and compares none of them: the
 * caller looks the body up by its whole-body hash (kind | 8).
 */
const struct body_slot *perf_body_find(const struct st_perf_cache *c, uint64_t h, unsigned kind,
				       const char *p, size_t avail, bool *full);

/* Copy key bytes f, mod, pc into the key chunks; where, or NULL (no memory). */
const char *perf_key_store(struct st_perf_cache *c, const char *f, size_t fl, const char *mod,
			   size_t modl, const char *pc, size_t pcl);

/* Double the body table (at least half empty after); false: no memory. */
bool perf_body_rehash(struct st_perf_cache *c);

/* Cache the body [p, p + fl) under hash h: ids cid[ioff..ncid), aux lines.
 * False when there is no room (the caller forgets the ids).  Inline: a
 * sample that misses the body cache comes here. */
static inline bool perf_body_add(struct st_perf_cache *c, uint64_t h, unsigned kind,
				 const char *p, size_t fl, size_t ioff, uint64_t aux)
{
	if ((c->nbodies + 1) * 2 > c->nbslots && !perf_body_rehash(c))
		return false;
	if (c->ncid - ioff > UINT32_MAX || aux > UINT32_MAX || c->ncid == ioff)
		return false;
	const char *k = perf_key_store(c, p, fl, "", 0, "", 0);
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

#pragma GCC visibility pop

#endif /* ST_FORMATS_READ_PERF_H */
