/* SPDX-License-Identifier: MIT */
/*
 * cache.c - encoded answers (blobs) and the small cache that makes one
 * encoding per snapshot version and parameters serve every client.
 * A window's answer (window=Ns, mark) is keyed by its base snapshot's
 * version too: (version, base) names its contents exactly.
 *
 * A blob is immutable once built; the cache and each connection sending it
 * hold a reference, so a client that reads slowly pins one shared buffer,
 * never a copy of its own.  Encoding runs outside the cache's mutex: a slot
 * is marked `building`, and askers of the same key wait on `built`.  Nothing
 * here touches a lock of the engine: the encoder reads an acquired snapshot.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "live.h"

static int blob_from_stream(char *buf, size_t len, uint64_t version, struct st_live_blob **out)
{
	struct st_live_blob *b = malloc(sizeof(*b) + len + 1);
	if (!b)
		return -ENOMEM;
	b->refs = 1;
	b->version = version;
	b->len = len;
	memcpy(b->data, buf, len);
	b->data[len] = '\0';
	*out = b;
	return 0;
}

/* Write fmt of s (of the window earlier..s when delta) to f. */
static int write_one(const struct st_snap *earlier, const struct st_snap *s, int delta, int fmt,
		     const struct st_export_opts *o, FILE *f)
{
	return delta ? st_export_delta(earlier, s, -1, fmt, o, f, NULL) : st_export(s, fmt, o, f);
}

static int blob_encode(const struct st_snap *earlier, const struct st_snap *s, int delta,
		       uint64_t version, int fmt, const struct st_export_opts *o,
		       struct st_live_blob **out)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -errno;
	int r;
	if (fmt == ST_LIVE_FMT_SSE) {
		/* One event: the JSON is one line (names are escaped), so a
		 * single data: line carries it. */
		fprintf(f, "id: %llu\ndata: ", (unsigned long long)version);
		r = write_one(earlier, s, delta, ST_FMT_JSON, o, f);
		if (!r) {
			fflush(f);
			if (len && buf[len - 1] == '\n')
				fseeko(f, -1, SEEK_CUR);
			fputs("\n\n", f);
		}
	} else {
		r = write_one(earlier, s, delta, fmt, o, f);
	}
	if (fclose(f) && !r)
		r = -EIO;
	if (!r)
		r = blob_from_stream(buf, len, version, out);
	free(buf);
	return r;
}

int st_live_blob_export(const struct st_snap *s, uint64_t version, int fmt,
			const struct st_export_opts *o, struct st_live_blob **out)
{
	return blob_encode(NULL, s, 0, version, fmt, o, out);
}

int st_live_delta_export(const struct st_snap *earlier, const struct st_snap *later, int fmt,
			 const struct st_export_opts *o, struct st_live_blob **out)
{
	/* Named by the later snapshot's version (SSE ids, blob). */
	return blob_encode(earlier, later, 1, st_snap_version(later), fmt, o, out);
}

struct st_live_blob *st_live_blob_get(struct st_live_blob *b)
{
	/* Relaxed: a new reference is taken from one already held. */
	__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
	return b;
}

void st_live_blob_put(struct st_live_blob *b)
{
	/* acq_rel: the last dropper must see every other holder's reads done
	 * before it frees (pairs with the other droppers' release). */
	if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(b);
}

void st_live_cache_init(struct st_live_cache *c, const struct st_export_opts *opts)
{
	memset(c, 0, sizeof(*c));
	st_export_opts_init(&c->opts);
	if (opts) {
		/* An older, shorter struct sets its fields; ours keep defaults. */
		size_t n = opts->size < sizeof(c->opts) ? opts->size : sizeof(c->opts);
		memcpy(&c->opts, opts, n);
		c->opts.size = sizeof(c->opts);
	}
	c->opts.clamped = NULL; /* an out pointer: not shared between encodings */
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->built, NULL);
}

void st_live_cache_fini(struct st_live_cache *c)
{
	for (unsigned i = 0; i < ST_LIVE_CACHE_SLOTS; i++)
		st_live_blob_put(c->slot[i].blob);
	pthread_cond_destroy(&c->built);
	pthread_mutex_destroy(&c->mu);
}

static int key_eq(const struct st_live_key *a, const struct st_live_key *b)
{
	return a->version == b->version && a->base == b->base && a->fmt == b->fmt &&
	       a->metric == b->metric &&
	       a->min_fraction == b->min_fraction && a->max_nodes == b->max_nodes;
}

struct st_export_opts st_live_cache_opts(const struct st_live_cache *c, unsigned m)
{
	struct st_export_opts o = c->opts;
	o.metric = m;
	return o;
}

static struct st_export_opts key_opts(const struct st_live_cache *c, const struct st_live_key *k)
{
	struct st_export_opts o = st_live_cache_opts(c, k->metric);
	o.min_fraction = k->min_fraction;
	o.max_nodes = k->max_nodes;
	return o;
}

int st_live_cache_get(struct st_live_cache *c, const struct st_snap *base, const struct st_snap *s,
		      const struct st_live_key *k, struct st_live_blob **out)
{
	pthread_mutex_lock(&c->mu);
	for (;;) {
		int i, waiting = 0;
		for (i = 0; i < ST_LIVE_CACHE_SLOTS; i++) {
			if ((c->slot[i].blob || c->slot[i].building) && key_eq(&c->slot[i].key, k))
				break;
		}
		if (i < ST_LIVE_CACHE_SLOTS && c->slot[i].blob) {
			c->slot[i].used = ++c->clock;
			*out = st_live_blob_get(c->slot[i].blob);
			pthread_mutex_unlock(&c->mu);
			return 0;
		}
		if (i < ST_LIVE_CACHE_SLOTS)
			waiting = 1;
		if (!waiting)
			break;
		pthread_cond_wait(&c->built, &c->mu);
	}
	/* Miss: take the least recently used slot that nobody is building. */
	int v = -1;
	for (int i = 0; i < ST_LIVE_CACHE_SLOTS; i++) {
		if (c->slot[i].building)
			continue;
		if (v < 0 || c->slot[i].used < c->slot[v].used)
			v = i;
	}
	struct st_live_blob *old = NULL;
	if (v >= 0) {
		old = c->slot[v].blob;
		c->slot[v].blob = NULL;
		c->slot[v].key = *k;
		c->slot[v].building = 1;
		c->slot[v].used = ++c->clock;
	}
	pthread_mutex_unlock(&c->mu);
	st_live_blob_put(old);

	struct st_export_opts o = key_opts(c, k);
	struct st_live_blob *b = NULL;
	int r = k->base ? st_live_delta_export(base, s, k->fmt, &o, &b)
			: st_live_blob_export(s, k->version, k->fmt, &o, &b);
	if (v < 0) { /* every slot is being built: encode for this asker alone */
		*out = b;
		return r;
	}
	pthread_mutex_lock(&c->mu);
	c->slot[v].building = 0;
	c->encodes++;
	if (!r)
		c->slot[v].blob = st_live_blob_get(b);
	pthread_cond_broadcast(&c->built);
	pthread_mutex_unlock(&c->mu);
	*out = b;
	return r;
}
