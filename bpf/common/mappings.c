/* SPDX-License-Identifier: MIT */
/*
 * mappings.c - the executable mappings of every process over time
 * (mappings.h), so that `record cpu` resolves the user frames of a process
 * that exited before its samples were read, as `perf record` does.
 *
 *   every CPU: dummy perf event (mmap2 of exec mappings, comm exec, fork,
 *   exit; sample_id_all TID|TIME; clock CLOCK_MONOTONIC = bpf_ktime_get_ns)
 *        | one perf ring per CPU (libbpf perf_buffer__new_raw)
 *        v sync: perf_buffer__consume() copies every record into a batch,
 *          sorts it by time and applies it in that order
 *   procs[pid % NPROC] -> proc { live[]: sorted by start, valid [t0, now)
 *                                old[]:  retired, valid [t0, t1), each
 *                                        freed after its epoch (2.) }
 *   /proc/PID/maps: snapshot at start (-p, the command, -a: every process)
 *   or at the first sample of a pid never seen: entries valid from t0 = 0
 *   where no entry is.
 *
 * An entry: from t0 until t1, [start, end) of the process maps `path` at
 * file offset pgoff (or a special module such as [vdso]).  Records:
 *   MMAP2 (exec)   live entries it overlaps retire at t (what is left of
 *                  them outside it stays live); it is live from t;
 *   COMM exec      every live entry retires at t (the new image's MMAP2
 *                  records follow it);
 *   FORK (process) a reused pid's live entries retire at t; the parent's
 *                  live entries are copied, from t;
 *   EXIT (leader)  every live entry retires at t; the process is dead.
 *
 * Guarantees:
 *  1. A sample taken at T resolves against the mappings as of T.  The kernel
 *     writes a record inside the mmap/exec/fork call it describes, before
 *     the code it maps can run, so every record with time <= T is in a perf
 *     ring before T; a sync that started after T has applied all of them.
 *     st_maps_resolve() syncs first unless one started after T (synced_at).
 *  2. A retired entry is kept until no pending sample can need it.  A sample
 *     at T < t1 was in its BPF ring before the record that retired the entry
 *     was read (1. the other way round).  The sync that applied that record
 *     publishes epoch E (release); a consumer that read the epoch (acquire)
 *     >= E before a pass over its ring has consumed every such sample when
 *     the pass ends.  At each tick a consumer publishes the epoch it read at
 *     its previous tick (drained[]); an entry retired in epoch E is freed
 *     once every drained[] >= E + 1 (one more pass: margin for a sample
 *     whose submission raced the record by microseconds).  Consumers tick
 *     at least every poll timeout (runner.c), so what exited processes hold
 *     is bounded by what exits in a few poll periods.
 *  3. Records are applied in time order within a sync.  Across two syncs a
 *     record can arrive after a newer one only when it was written on
 *     another CPU during the microseconds a drain takes.  An exec, fork or
 *     exit that comes after newer records of its process retires only what
 *     is older than itself; an mmap that comes late retires what it overlaps
 *     (perf without ordered events has the same window).
 * Locking: one mutex guards the tables, the batch and the stats; consumers
 * hold it for one sample's lookups.  Names handed out are interned and stay
 * valid until st_maps_close().  drained[] and epoch are atomics (2.).
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "decode.h"
#include "mappings.h"

#define NPROC 4096
#define NSTR 4096
#define T_INF UINT64_MAX
/* Per-CPU perf ring: 256 KiB, ~2,000 mapping records, drained at least
 * every SYNC_NS by a tick (an exec-heavy build makes a few hundred KiB/s
 * per CPU); what overflows is counted (PERF_RECORD_LOST) and reported. */
#define PERF_PAGES 64
#define SYNC_NS (10u * 1000000u)

struct ent {
	uint64_t start, end, pgoff;
	uint64_t t0, t1;    /* valid [t0, t1); t1 = T_INF while live */
	uint64_t epoch;     /* retired in this epoch (old[] only) */
	bool whole;         /* retired with the whole image (exec, exit) */
	const char *path;   /* interned, or NULL */
	const char *module; /* no file: "[vdso]" & co., or NULL (anonymous) */
};

struct vec {
	struct ent *e;
	size_t n, cap;
};

struct proc {
	struct proc *next;  /* hash chain */
	struct proc *rnext; /* retiring list, when listed */
	uint32_t pid;
	bool dead;   /* its leader exited (or /proc never had it) */
	bool based;  /* its mappings from before tracking are known */
	bool listed; /* on the retiring list */
	struct vec live, old;
};

struct str {
	struct str *next;
	char s[];
};

struct rec {
	uint64_t time;
	size_t off, size; /* bytes in the batch buffer */
};

struct st_maps {
	pthread_mutex_t lock;
	struct perf_buffer *pb;
	int map_fd;
	struct proc *procs[NPROC];
	struct proc *retiring;
	struct str *strs[NSTR];
	unsigned char *bbuf; /* the batch being synced */
	size_t blen, bcap;
	struct rec *recs;
	size_t nrec, crec;
	uint64_t synced_at;       /* when the last sync began (1.) */
	_Atomic uint64_t last_sync; /* the same, for ticks without the lock */
	_Atomic uint64_t epoch;   /* bumped by every sync (2.) */
	unsigned ncons;
	_Atomic uint64_t *drained; /* [ncons] (2.) */
	uint64_t *prev;            /* [ncons]: each consumer's own */
	struct st_maps_stats st;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *intern(struct st_maps *m, const char *s, size_t len)
{
	unsigned h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	struct str **b = &m->strs[h % NSTR];
	for (struct str *x = *b; x; x = x->next)
		if (!strncmp(x->s, s, len) && !x->s[len])
			return x->s;
	struct str *x = malloc(sizeof(*x) + len + 1);
	if (!x)
		return NULL;
	memcpy(x->s, s, len);
	x->s[len] = 0;
	x->next = *b;
	*b = x;
	return x->s;
}

/* A mapping's name as the kernel writes it (in MMAP2 and /proc/PID/maps). */
static void ent_name(struct st_maps *m, struct ent *e, const char *name, size_t len)
{
	static const char del[] = " (deleted)";
	e->path = e->module = NULL;
	if (len && name[0] == '/') {
		if (len > sizeof(del) - 1 && !memcmp(name + len - (sizeof(del) - 1), del, sizeof(del) - 1))
			len -= sizeof(del) - 1;
		e->path = intern(m, name, len);
	} else if (len && name[0] == '[') {
		e->module = intern(m, name, len);
	} else {
		e->module = intern(m, "[unknown]", 9); /* anonymous (a JIT): mapped, no name */
	}
}

static int vec_insert(struct vec *v, size_t at, const struct ent *e)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		struct ent *ne = realloc(v->e, cap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		v->e = ne;
		v->cap = cap;
	}
	memmove(&v->e[at + 1], &v->e[at], (v->n - at) * sizeof(*e));
	v->e[at] = *e;
	v->n++;
	return 0;
}

/* First live entry with start >= a. */
static size_t live_lower(const struct vec *v, uint64_t a)
{
	size_t lo = 0, hi = v->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->e[mid].start < a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int live_add(struct vec *v, const struct ent *e)
{
	return vec_insert(v, live_lower(v, e->start), e);
}

static struct proc *proc_find(struct st_maps *m, uint32_t pid)
{
	for (struct proc *p = m->procs[pid % NPROC]; p; p = p->next)
		if (p->pid == pid)
			return p;
	return NULL;
}

static struct proc *proc_get(struct st_maps *m, uint32_t pid)
{
	struct proc *p = proc_find(m, pid);
	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->pid = pid;
	p->next = m->procs[pid % NPROC];
	m->procs[pid % NPROC] = p;
	return p;
}

static void proc_list(struct st_maps *m, struct proc *p)
{
	if (!p->listed) {
		p->listed = true;
		p->rnext = m->retiring;
		m->retiring = p;
	}
}

/* Live entry i retires at t, in the epoch the current sync publishes. */
static void retire(struct st_maps *m, struct proc *p, size_t i, uint64_t t, bool whole)
{
	struct ent e = p->live.e[i];
	memmove(&p->live.e[i], &p->live.e[i + 1], (p->live.n - i - 1) * sizeof(e));
	p->live.n--;
	e.t1 = t;
	e.whole = whole;
	e.epoch = atomic_load_explicit(&m->epoch, memory_order_relaxed) + 1;
	if (e.t0 < t && !vec_insert(&p->old, p->old.n, &e))
		proc_list(m, p);
}

/* Every live entry older than t retires at t (an entry from a newer record
 * that came first, 3., stays). */
static void retire_all(struct st_maps *m, struct proc *p, uint64_t t)
{
	for (size_t i = p->live.n; i-- > 0;)
		if (p->live.e[i].t0 <= t)
			retire(m, p, i, t, true);
}

/* A new live entry at time e->t0: what it overlaps retires (2.), the parts
 * of those outside it stay live. */
static void map_add(struct st_maps *m, struct proc *p, const struct ent *e)
{
	struct ent rest[2];
	unsigned nrest = 0;
	size_t i = live_lower(&p->live, e->start);
	if (i > 0 && p->live.e[i - 1].end > e->start)
		i--;
	while (i < p->live.n && p->live.e[i].start < e->end) {
		const struct ent *o = &p->live.e[i];
		if (o->start < e->start && nrest < 2) {
			rest[nrest] = *o;
			rest[nrest++].end = e->start;
		}
		if (o->end > e->end && nrest < 2) {
			rest[nrest] = *o;
			rest[nrest].start = e->end;
			rest[nrest++].pgoff = o->pgoff + (e->end - o->start);
		}
		retire(m, p, i, e->t0, false);
	}
	for (unsigned k = 0; k < nrest; k++)
		live_add(&p->live, &rest[k]);
	live_add(&p->live, e);
}

/* /proc/PID/maps: entries from t0 = 0 wherever none is live. */
static void proc_read(struct st_maps *m, struct proc *p)
{
	char fn[64], line[PATH_MAX + 128];
	p->based = true;
	snprintf(fn, sizeof(fn), "/proc/%u/maps", p->pid);
	FILE *f = fopen(fn, "re");
	if (!f) {
		if (!p->live.n) {
			p->dead = true; /* gone: freed with the retiring list */
			proc_list(m, p);
		}
		return;
	}
	m->st.procfs++;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e, off;
		char perms[8];
		int pos = 0;
		if (sscanf(line, "%llx-%llx %7s %llx %*s %*s%n", &s, &e, perms, &off, &pos) != 4 ||
		    perms[2] != 'x' || s >= e)
			continue;
		char *name = line + pos;
		while (*name == ' ')
			name++;
		size_t nl = strcspn(name, "\n");
		size_t i = live_lower(&p->live, s);
		if ((i < p->live.n && p->live.e[i].start < e) || (i > 0 && p->live.e[i - 1].end > s))
			continue; /* a record already says what is there */
		struct ent en = { .start = s, .end = e, .pgoff = off, .t0 = 0, .t1 = T_INF };
		ent_name(m, &en, name, nl);
		vec_insert(&p->live, i, &en);
	}
	fclose(f);
}

static void apply(struct st_maps *m, const struct st_pmap_rec *r)
{
	struct proc *p, *parent;
	m->st.records++;
	switch (r->kind) {
	case ST_PMAP_MMAP: {
		if (!(r->prot & PROT_EXEC) || !r->len || r->addr + r->len < r->addr || !(p = proc_get(m, r->pid)))
			return;
		struct ent e = { .start = r->addr, .end = r->addr + r->len, .pgoff = r->pgoff,
				 .t0 = r->time, .t1 = T_INF };
		ent_name(m, &e, r->name, r->name_len);
		map_add(m, p, &e);
		return;
	}
	case ST_PMAP_EXEC:
		if (!(p = proc_get(m, r->pid)))
			return;
		retire_all(m, p, r->time);
		p->based = true;
		p->dead = false;
		return;
	case ST_PMAP_FORK:
		if (r->pid == r->ppid || !(p = proc_get(m, r->pid)))
			return; /* a thread: same mappings */
		retire_all(m, p, r->time);
		/* Entries left are the child's own, from newer records that came
		 * first (3.): it has exec'd, the parent's image is not wanted. */
		parent = p->live.n ? NULL : proc_find(m, r->ppid);
		p->based = (parent && parent->based) || p->live.n;
		p->dead = false;
		for (size_t i = 0; parent && i < parent->live.n; i++) {
			struct ent e = parent->live.e[i];
			e.t0 = r->time;
			vec_insert(&p->live, p->live.n, &e); /* sorted already */
		}
		return;
	case ST_PMAP_EXIT:
		if (r->pid != r->tid || !(p = proc_find(m, r->pid)))
			return; /* a thread, or a process never sampled nor mapped */
		retire_all(m, p, r->time);
		p->dead = !p->live.n; /* else a new process has the pid already (3.) */
		proc_list(m, p);
		return;
	case ST_PMAP_LOST:
		m->st.lost += r->lost;
		return;
	case ST_PMAP_OTHER:
		m->st.records--;
		return;
	}
}

static void proc_free(struct st_maps *m, struct proc *p)
{
	struct proc **pp = &m->procs[p->pid % NPROC];
	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	free(p->live.e);
	free(p->old.e);
	free(p);
}

/* Free the retired entries no pending sample can need (2.), and the dead
 * processes left with nothing. */
static void reclaim(struct st_maps *m)
{
	uint64_t min = UINT64_MAX;
	for (unsigned c = 0; c < m->ncons; c++) {
		/* Pairs with the release in st_maps_tick(): that consumer's pass
		 * ended before this read. */
		uint64_t d = atomic_load_explicit(&m->drained[c], memory_order_acquire);
		if (d < min)
			min = d;
	}
	for (struct proc **pp = &m->retiring, *p; (p = *pp);) {
		size_t k = 0;
		for (size_t i = 0; i < p->old.n; i++)
			if (p->old.e[i].epoch + 1 > min)
				p->old.e[k++] = p->old.e[i];
		p->old.n = k;
		if (k) {
			pp = &p->rnext;
			continue;
		}
		*pp = p->rnext;
		p->listed = false;
		if (p->dead && !p->live.n)
			proc_free(m, p);
	}
}

static enum bpf_perf_event_ret on_perf(void *ctx, int cpu, struct perf_event_header *h)
{
	struct st_maps *m = ctx;
	(void)cpu;
	if (m->blen + h->size > m->bcap) {
		size_t cap = m->bcap ? m->bcap * 2 : 65536;
		while (cap < m->blen + h->size)
			cap *= 2;
		unsigned char *nb = realloc(m->bbuf, cap);
		if (!nb)
			goto lost;
		m->bbuf = nb;
		m->bcap = cap;
	}
	if (m->nrec == m->crec) {
		size_t cap = m->crec ? m->crec * 2 : 1024;
		struct rec *nr = realloc(m->recs, cap * sizeof(*nr));
		if (!nr)
			goto lost;
		m->recs = nr;
		m->crec = cap;
	}
	memcpy(m->bbuf + m->blen, h, h->size);
	uint64_t t = 0;
	if (h->size >= sizeof(*h) + 8)
		memcpy(&t, (const char *)h + h->size - 8, 8);
	m->recs[m->nrec++] = (struct rec){ t, m->blen, h->size };
	m->blen += h->size;
	return LIBBPF_PERF_EVENT_CONT;
lost:
	m->st.lost++;
	return LIBBPF_PERF_EVENT_CONT;
}

static int rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off; /* equal times: ring order */
}

/* Apply every record in the perf rings now (1.), then free what can go (2.). */
static void sync_locked(struct st_maps *m)
{
	uint64_t t = now_ns();
	m->blen = m->nrec = 0;
	perf_buffer__consume(m->pb);
	if (m->nrec)
		qsort(m->recs, m->nrec, sizeof(*m->recs), rec_cmp);
	for (size_t i = 0; i < m->nrec; i++) {
		struct st_pmap_rec r;
		if (!st_pmap_decode(m->bbuf + m->recs[i].off, m->recs[i].size, &r))
			apply(m, &r);
	}
	m->synced_at = t;
	atomic_store_explicit(&m->last_sync, t, memory_order_relaxed);
	/* Publishes the retirements above (2.); pairs with the acquire in
	 * st_maps_tick(). */
	atomic_fetch_add_explicit(&m->epoch, 1, memory_order_release);
	reclaim(m);
}

struct st_maps *st_maps_open(unsigned nconsumers)
{
	struct st_maps *m = calloc(1, sizeof(*m));
	int err = -ENOMEM;
	if (!m)
		return NULL;
	m->map_fd = -1;
	pthread_mutex_init(&m->lock, NULL);
	atomic_init(&m->epoch, 1);
	atomic_init(&m->last_sync, 0);
	m->ncons = nconsumers;
	m->drained = calloc(nconsumers ? nconsumers : 1, sizeof(*m->drained));
	m->prev = calloc(nconsumers ? nconsumers : 1, sizeof(*m->prev));
	if (!m->drained || !m->prev)
		goto fail;
	for (unsigned c = 0; c < nconsumers; c++)
		atomic_init(&m->drained[c], 0);
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0) {
		err = ncpu ? ncpu : -EINVAL;
		goto fail;
	}
	m->map_fd = bpf_map_create(BPF_MAP_TYPE_PERF_EVENT_ARRAY, "st_mappings", sizeof(int), sizeof(int),
				   (__u32)ncpu, NULL);
	if (m->map_fd < 0) {
		err = -errno;
		goto fail;
	}
	long page = sysconf(_SC_PAGESIZE);
	struct perf_event_attr a = {
		.type = PERF_TYPE_SOFTWARE,
		.config = PERF_COUNT_SW_DUMMY,
		.size = sizeof(a),
		.sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_TIME,
		.sample_id_all = 1,
		.mmap = 1, /* executable mappings only (no mmap_data) */
		.mmap2 = 1,
		.comm = 1,
		.comm_exec = 1,
		.task = 1,
		.use_clockid = 1,
		.clockid = CLOCK_MONOTONIC, /* = bpf_ktime_get_ns() of the samples */
		.watermark = 1,             /* nobody waits on it: ticks drain it */
		.wakeup_watermark = (__u32)(PERF_PAGES * page / 2),
		.exclude_hv = 1,
	};
	m->pb = perf_buffer__new_raw(m->map_fd, PERF_PAGES, &a, on_perf, m, NULL);
	if (!m->pb) {
		err = -errno;
		goto fail;
	}
	return m;
fail:
	st_maps_close(m);
	errno = -err;
	return NULL;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

void st_maps_snapshot(struct st_maps *m, pid_t pid)
{
	pthread_mutex_lock(&m->lock);
	sync_locked(m); /* what the records said since the open comes first */
	if (pid > 0) {
		struct proc *p = proc_get(m, (uint32_t)pid);
		if (p && !p->based)
			proc_read(m, p);
	} else {
		DIR *d = opendir("/proc");
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (!all_digits(de->d_name))
				continue;
			struct proc *p = proc_get(m, (uint32_t)strtoul(de->d_name, NULL, 10));
			if (p && !p->based)
				proc_read(m, p);
		}
		if (d)
			closedir(d);
	}
	pthread_mutex_unlock(&m->lock);
}

/* leaf: a is the sampled instruction pointer, not a return address. */
static void lookup(const struct proc *p, uint64_t t, uint64_t a, bool leaf, struct st_uloc *out)
{
	const struct ent *hit = NULL;
	for (size_t i = 0; i < p->old.n && !hit; i++) {
		const struct ent *e = &p->old.e[i];
		if (a >= e->start && a < e->end && t >= e->t0 && t < e->t1)
			hit = e;
	}
	size_t i = live_lower(&p->live, a + 1);
	if (!hit && i > 0) {
		const struct ent *e = &p->live.e[i - 1];
		if (a < e->end && t >= e->t0)
			hit = e;
	}
	/* A sample taken inside execve() after the new image replaced the old
	 * one, or inside exit after the EXIT record, still has the old user
	 * registers: its instruction pointer (only that: the rest of the chain
	 * is read from memory that is gone) is the syscall's call site in the
	 * image that just ended. */
	for (size_t j = p->old.n; !hit && leaf && j-- > 0;) {
		const struct ent *e = &p->old.e[j]; /* latest first: old[] is in retirement order */
		if (e->whole && a >= e->start && a < e->end && e->t1 <= t)
			hit = e;
	}
	*out = (struct st_uloc){ NULL, NULL, 0 };
	if (hit) {
		out->path = hit->path;
		out->module = hit->module;
		out->off = a - hit->start + hit->pgoff;
	}
}

void st_maps_resolve(struct st_maps *m, uint32_t pid, uint64_t time_ns, const uint64_t *addr,
		     unsigned n, struct st_uloc *out)
{
	pthread_mutex_lock(&m->lock);
	if (time_ns >= m->synced_at)
		sync_locked(m); /* 1. */
	struct proc *p = proc_get(m, pid);
	if (p && !p->based && !p->dead)
		proc_read(m, p); /* alive before tracking, never seen: read it now */
	for (unsigned i = 0; i < n; i++) {
		if (p)
			lookup(p, time_ns, addr[i], i == 0, &out[i]);
		else
			out[i] = (struct st_uloc){ NULL, NULL, 0 };
	}
	pthread_mutex_unlock(&m->lock);
}

void st_maps_tick(struct st_maps *m, unsigned cons)
{
	if (cons >= m->ncons)
		return;
	/* Pairs with the release in sync_locked(): the retirements of epoch e
	 * happened before the pass that follows this read (2.). */
	uint64_t e = atomic_load_explicit(&m->epoch, memory_order_acquire);
	/* Pairs with the acquire in reclaim(): the pass since the previous
	 * tick, which began after reading prev, is over. */
	atomic_store_explicit(&m->drained[cons], m->prev[cons], memory_order_release);
	m->prev[cons] = e;
	uint64_t now = now_ns();
	if (now - atomic_load_explicit(&m->last_sync, memory_order_relaxed) >= SYNC_NS &&
	    pthread_mutex_trylock(&m->lock) == 0) {
		sync_locked(m);
		pthread_mutex_unlock(&m->lock);
	}
}

struct st_maps_stats st_maps_stats(struct st_maps *m)
{
	pthread_mutex_lock(&m->lock);
	struct st_maps_stats s = m->st;
	s.live = 0;
	for (unsigned i = 0; i < NPROC; i++)
		for (struct proc *p = m->procs[i]; p; p = p->next)
			s.live++;
	pthread_mutex_unlock(&m->lock);
	return s;
}

void st_maps_close(struct st_maps *m)
{
	if (!m)
		return;
	perf_buffer__free(m->pb);
	if (m->map_fd >= 0)
		close(m->map_fd);
	for (unsigned i = 0; i < NPROC; i++)
		for (struct proc *p = m->procs[i], *n; p; p = n) {
			n = p->next;
			free(p->live.e);
			free(p->old.e);
			free(p);
		}
	for (unsigned i = 0; i < NSTR; i++)
		for (struct str *s = m->strs[i], *n; s; s = n) {
			n = s->next;
			free(s);
		}
	free(m->bbuf);
	free(m->recs);
	free((void *)m->drained);
	free(m->prev);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
