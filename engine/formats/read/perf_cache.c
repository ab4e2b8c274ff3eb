/* SPDX-License-Identifier: MIT */
/*
 * perf_cache.c - the perf reader's two caches, kept in one st_perf_cache
 * that a caller may reuse over many calls (st_perf_ingest_cached).
 *
 * The raw-frame cache.  The clean-up of a frame line depends only on the
 * symbol (after the "+0x" cut), the module, whether the process is java,
 * and for --addrs on the address when the symbol holds "[unknown]".  Those
 * bytes map to the interned ids of the cleaned parts, so each distinct raw
 * frame is cleaned and interned once; the rest of its lines cost a hash
 * and a compare.  pname (comm[-pid[/tid]]) is cached the same way (kind 2).
 * Entries sit in ent[], found through an open-addressing table of indexes
 * (slots, at most half full); their key bytes are copied into key chunks.
 *
 * The sample-body cache.  A sample body (the lines after an accepted
 * header up to the blank line that ends it) is looked up by its first
 * BODY_PREFIX bytes, or all of it when shorter, and then compared in full
 * with the cached copy: one pass over the bytes, with no scan for its
 * blank line first.  The blank line is the first '\n' at q > p with
 * q[-1] == '\n', so a cached body B (which ends in '\n' and holds no
 * "\n\n") is the body at p exactly when p[0..|B|) == B and p[|B|] == '\n'.
 * The prefix is a function of the body's bytes: the whole body if its
 * blank line is within BODY_PREFIX + 1 bytes, else its first BODY_PREFIX
 * bytes.  Bodies sharing a prefix share a hash; once BODY_CHAIN of them are
 * cached, a body with that prefix is looked up the old way instead, by the
 * hash of the whole body (kind | 8), and cached under it (the first
 * BODY_CHAIN once more): inputs whose bodies share their first lines cost
 * a scan, a hash and a compare, no more.
 *
 * Invariants (see also perf.h): key chunks never move, so stored keys stay
 * valid until perf_cache_clear(); both tables stay at most half full, so a
 * probe always meets an empty slot; ids of entries and bodies live in cid
 * and are never rewritten once an entry or body owns them; every failure
 * here only loses caching, never a sample.
 */
#include <errno.h>
#include <sys/mman.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "perf.h"

#define BODY_CHAIN 4

#define KEY_CHUNK (2u << 20)

const char *perf_key_store(struct st_perf_cache *c, const char *f, size_t fl, const char *mod,
			     size_t modl, const char *pc, size_t pcl)
{
	size_t kl = fl + modl + pcl;
	if (c->ncid > UINT32_MAX)
		return NULL;
	if (kl > c->kcap - c->kused) {
		size_t cap = kl > KEY_CHUNK ? kl : KEY_CHUNK;
		if (st_grow(&c->kch, &c->kchcap, c->nkch + 1, sizeof(*c->kch), 16))
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

struct fc_ent *perf_fc_add(struct st_perf_cache *c, uint64_t h, const char *f, size_t fl,
			   const char *mod, size_t modl, const char *pc, size_t pcl, unsigned kind,
			   size_t ioff)
{
	if (c->nent + 1 >= UINT32_MAX)
		return NULL;
	if ((c->nent + 1) * 2 > c->nslots) {
		size_t ns = c->nslots ? c->nslots * 2 : 1024;
		uint32_t *sl = st_calloc(ns, sizeof(*sl));
		if (!sl)
			return NULL;
		for (size_t j = 0; j < c->nent; j++) {
			size_t i = (size_t)c->ent[j].h & (ns - 1);
			while (sl[i])
				i = (i + 1) & (ns - 1);
			sl[i] = (uint32_t)j + 1;
		}
		st_free(c->slots);
		c->slots = sl;
		c->nslots = ns;
	}
	if (st_grow(&c->ent, &c->entcap, c->nent + 1, sizeof(*c->ent), 256))
		return NULL;
	const char *k = perf_key_store(c, f, fl, mod, modl, pc, pcl);
	if (!k)
		return NULL;
	struct fc_ent *e = &c->ent[c->nent];
	*e = (struct fc_ent){ h, k, (uint32_t)fl, (uint32_t)modl, (uint32_t)pcl,
			      (uint32_t)ioff, (uint32_t)(c->ncid - ioff), (uint8_t)kind };
	size_t i = (size_t)h & (c->nslots - 1);
	while (c->slots[i])
		i = (i + 1) & (c->nslots - 1);
	c->slots[i] = (uint32_t)++c->nent;
	return e;
}

int perf_cid_push(struct pstate *ps, const char *s, size_t n, bool *ok)
{
	int64_t id = st_intern(ps->e, s, n);
	if (id < 0) {
		ps->serr_tmp = (int)id;
		*ok = false;
		id = 0;
	}
	struct st_perf_cache *c = ps->c;
	if (c->ncid == c->cidcap && st_grow(&c->cid, &c->cidcap, c->ncid + 1, sizeof(*c->cid), 1024))
		return -ENOMEM;
	c->cid[c->ncid++] = (uint32_t)id;
	return 0;
}

void perf_cache_clear(struct st_perf_cache *c)
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
	for (size_t i = 0; i < c->nev; i++)
		st_free(c->ev[i].name);
	st_free(c->ev);
	st_free(c);
}

size_t perf_ev_tally(struct st_perf_cache *c, const char *ev, size_t evlen)
{
	/* A linear search: a capture holds a handful of events, and the
	 * filter's own entry is looked up once per ingest, not per sample. */
	for (size_t i = 0; i < c->nev; i++)
		if (c->ev[i].len == evlen && memcmp(c->ev[i].name, ev, evlen) == 0)
			return i;
	if (c->nev >= PERF_EV_MAX) {
		ev = PERF_EV_MORE;
		evlen = sizeof(PERF_EV_MORE) - 1;
		for (size_t i = 0; i < c->nev; i++)
			if (c->ev[i].len == evlen && memcmp(c->ev[i].name, ev, evlen) == 0)
				return i;
	}
	if (st_grow(&c->ev, &c->evcap, c->nev + 1, sizeof(*c->ev), 8))
		return SIZE_MAX;
	char *name = st_malloc(evlen + 1);
	if (!name)
		return SIZE_MAX;
	memcpy(name, ev, evlen);
	name[evlen] = '\0';
	c->ev[c->nev] = (struct perf_ev){ name, evlen, 0 };
	return c->nev++;
}

int st_perf_cache_event(const struct st_perf_cache *c, size_t i, const char **name, size_t *len,
			uint64_t *samples)
{
	if (!c || i >= c->nev)
		return 0;
	*name = c->ev[i].name;
	*len = c->ev[i].len;
	*samples = c->ev[i].samples;
	return 1;
}

/* The first i in [1, len) with p[i-1] == p[i] == '\n' (0 if none), with
 * one pass over the bytes, 16 at a time with SSE2. */
size_t perf_find_pair(const char *p, size_t len)
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
 * The cached body of this kind at p whose hash is h, or NULL.  With
 * `full` (a prefix lookup of a body longer than the prefix): when
 * BODY_CHAIN or more bodies have this prefix, sets *full and compares
 * none of them (they may agree with p over most of their length): the
 * caller looks the body up by its whole-body hash.
 */
const struct body_slot *perf_body_find(const struct st_perf_cache *c, uint64_t h, unsigned kind,
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

bool perf_body_rehash(struct st_perf_cache *c)
{
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
	return true;
}
