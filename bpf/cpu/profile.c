/* SPDX-License-Identifier: MIT */
/*
 * profile.c - `shardtrie record cpu`: perf-event sampling on every CPU
 * (cpu-clock, -F Hz), kernel + user stacks from profile.bpf.c through one
 * ring per CPU to one consumer thread per CPU, each symbolizing with its own
 * caches and ingesting into its own writer.  Frames root -> leaf:
 * comm; user frames...; kernel frames_[k]  (stackcollapse-perf.pl --all).
 *
 * User frames resolve through mappings.c, which captures every process's
 * executable mappings while it lives (perf mapping records, /proc at start):
 * a sample of a process that has exited since still finds its files.  The
 * share of user frames left [unknown] is reported at the end of every run.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/decode.h"
#include "common/mappings.h"
#include "common/runner.h"
#include "common/symbolize.h"
#include "profile.skel.h"

struct cpu_tool {
	struct st_usyms *us;
	/* frames of the sample being built: comm + user + kernel */
	const char *f[1 + 2 * PROFILE_MAX_STACK];
	size_t len[1 + 2 * PROFILE_MAX_STACK];
	char comm[PROFILE_COMM_LEN + 1];
	uint64_t ua[PROFILE_MAX_STACK];        /* user addresses to look up */
	struct st_uloc uloc[PROFILE_MAX_STACK]; /* where they were */
	uint64_t uframes, unknown;             /* user frames, of them [unknown] */
};

/* Samples are ~2 KiB and rare (HZ x CPUs): a quarter of the io ring. */
#define RING_BYTES (ST_BPF_RING_BYTES / 4)

static struct st_ksyms *ksyms; /* read-only while consumers run */
static struct st_maps *maps;   /* shared by the consumers (locks inside) */
/* The consumers' user frame counts, added as each ends (relaxed: read
 * after they are joined). */
static _Atomic uint64_t uframes_all, unknown_all;

/* Samples are drained at least every poll period (runner.c) whatever the
 * threshold; it only bounds wakeups at high rates: 16 samples. */
#define WAKEUP_BYTES (16 * sizeof(struct st_prof_sample))

static void *cpu_tool_init(struct st_rec_consumer *c)
{
	struct cpu_tool *t = calloc(1, sizeof(*t));
	(void)c;
	if (t)
		t->us = st_usyms_new();
	return t;
}

static void cpu_tool_fini(struct st_rec_consumer *c)
{
	struct cpu_tool *t = c->tool;
	if (t) {
		st_usyms_free(t->us);
		atomic_fetch_add_explicit(&uframes_all, t->uframes, memory_order_relaxed);
		atomic_fetch_add_explicit(&unknown_all, t->unknown, memory_order_relaxed);
	}
	free(t);
}

static void cpu_tool_tick(struct st_rec_consumer *c)
{
	if (maps) /* NULL without user stacks */
		st_maps_tick(maps, c->cpu);
}

/* "1234567" -> "1,234,567" */
static const char *thousands(uint64_t v, char *buf, size_t n)
{
	char d[32];
	int len = snprintf(d, sizeof(d), "%llu", (unsigned long long)v);
	size_t o = 0;
	for (int i = 0; i < len && o + 2 < n; i++) {
		if (i && (len - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = d[i];
	}
	buf[o] = 0;
	return buf;
}

static void cpu_report(const struct st_rec *r)
{
	uint64_t all = atomic_load_explicit(&uframes_all, memory_order_relaxed);
	uint64_t unk = atomic_load_explicit(&unknown_all, memory_order_relaxed);
	char a[32], b[32];
	st_rec_say(r, "%.1f%% of user frames unresolved (%s of %s)\n",
		   all ? 100.0 * (double)unk / (double)all : 0.0, thousands(unk, a, sizeof(a)),
		   thousands(all, b, sizeof(b)));
	struct st_maps_stats ms = st_maps_stats(maps);
	if (ms.lost)
		st_rec_say(r, "%llu mapping records lost (perf ring full): some user frames may be [unknown]\n",
			   (unsigned long long)ms.lost);
	if (r->t->verbose)
		st_rec_say(r, "mappings: %llu records, %llu processes read from /proc, %llu held at the end\n",
			   (unsigned long long)ms.records, (unsigned long long)ms.procfs,
			   (unsigned long long)ms.live);
}

static int on_sample(struct st_rec_consumer *c, const void *data, size_t size)
{
	struct cpu_tool *t = c->tool;
	struct st_prof_rec r;
	if (st_prof_decode(data, size, &r))
		return -1;
	if (!t || !t->us || !c->w) {
		c->failed++;
		return 0;
	}
	const struct st_prof_sample *s = r.s;
	size_t n = 0;
	/* comm: spaces -> '_' and ';' -> ':' as stackcollapse-perf.pl does. */
	size_t cl = strnlen(s->comm, PROFILE_COMM_LEN);
	for (size_t i = 0; i < cl; i++)
		t->comm[i] = s->comm[i] == ' ' ? '_' : s->comm[i] == ';' ? ':' : s->comm[i];
	t->f[n] = t->comm;
	t->len[n++] = cl;
	/* Stacks are leaf first; a return address points after the call, so
	 * every frame but the leaf is looked up at addr - 1 (as perf does). */
	for (unsigned i = 0; i < r.nu; i++)
		t->ua[i] = i ? s->ustack[i] - 1 : s->ustack[i];
	if (!maps) /* no user stacks asked for: the BPF side sent none */
		r.nu = 0;
	if (r.nu)
		st_maps_resolve(maps, s->pid, s->time_ns, t->ua, r.nu, t->uloc);
	/* A return address in no executable mapping breaks the frame-pointer
	 * chain there (code built without frame pointers, ld.so at start-up):
	 * every frame past it was read through a garbage pointer.  Keep one
	 * [unknown] for the break, drop the rest, as their addresses mean
	 * nothing. */
	unsigned nu = r.nu;
	for (unsigned i = 0; i < nu; i++)
		if (!t->uloc[i].path && !t->uloc[i].module)
			nu = i + 1;
	for (unsigned i = nu; i-- > 0;) {
		const struct st_uloc *l = &t->uloc[i];
		const char *nm = l->path ? st_usyms_file_sym(t->us, l->path, s->pid, l->off) :
				 l->module ? l->module : "[unknown]";
		t->unknown += !strcmp(nm, "[unknown]");
		t->f[n] = nm;
		t->len[n++] = strlen(nm);
	}
	t->uframes += nu;
	for (unsigned i = r.nk; i-- > 0;) {
		uint64_t a = s->kstack[i];
		const char *nm = st_ksyms_find(ksyms, i ? a - 1 : a);
		t->f[n] = nm;
		t->len[n++] = strlen(nm);
	}
	uint64_t one = 1;
	if (st_writer_ingest_strs(c->w, t->f, t->len, n, &one))
		c->failed++;
	return 0;
}

static int open_perf_events(struct profile_bpf *skel, unsigned hz, struct bpf_link **links,
			    int *fds, unsigned ncpu)
{
	unsigned opened = 0;
	for (unsigned cpu = 0; cpu < ncpu; cpu++) {
		struct perf_event_attr a = {
			.type = PERF_TYPE_SOFTWARE,
			.config = PERF_COUNT_SW_CPU_CLOCK,
			.size = sizeof(a),
			.sample_freq = hz,
			.freq = 1,
		};
		fds[cpu] = (int)syscall(__NR_perf_event_open, &a, -1, (int)cpu, -1, PERF_FLAG_FD_CLOEXEC);
		if (fds[cpu] < 0) {
			if (errno == ENODEV)
				continue; /* offline CPU */
			return -errno;
		}
		links[cpu] = bpf_program__attach_perf_event(skel->progs.do_sample, fds[cpu]);
		if (!links[cpu])
			return -errno;
		fds[cpu] = -1; /* the link owns it: bpf_link__destroy() disables and closes it */
		opened++;
	}
	return opened ? 0 : -ENODEV;
}

/* One run: the runner, the skeleton, one perf event (link) per CPU. */
struct cpu_run {
	struct st_rec rec;
	struct profile_bpf *skel;
	struct st_rec_skel k;
	struct bpf_link **links;
	int *pfds;
};

/* Kernel symbols, shared read-only by the consumers. */
static void ksyms_open(const struct st_rec *r)
{
	ksyms = st_ksyms_load();
	if (!ksyms)
		st_rec_say(r, "cannot read kernel symbols from /proc/kallsyms (%s); kernel frames will be [unknown]_[k]\n",
			   strerror(errno));
}

static int cpu_begin(struct cpu_run *run)
{
	struct st_options so;
	st_options_init(&so);
	so.merge_interval_ms = 0; /* one flush at the end */
	so.metrics[0].name = "samples";
	so.metrics[0].unit = "samples";
	int rc = st_rec_begin(&run->rec, &so);
	run->rec.tool_init = cpu_tool_init;
	run->rec.tool_fini = cpu_tool_fini;
	run->rec.tool_tick = cpu_tool_tick;
	return rc;
}

/* Open, configure and load the skeleton; the fork tracepoint when following. */
static int cpu_load(struct cpu_run *run, const struct st_trace_cpu_cfg *cfg)
{
	struct st_rec *r = &run->rec;
	int rc = ST_REC_OPEN(r, &run->skel, &run->k, profile_bpf__open, RING_BYTES), err;
	if (rc)
		return rc;
	*run->k.wakeup_bytes = WAKEUP_BYTES;
	run->skel->rodata->kernel_stacks = cfg->kernel_stacks;
	run->skel->rodata->user_stacks = cfg->user_stacks;
	if ((rc = st_rec_load(r, &run->k)))
		return rc;
	if ((cfg->t.pid || cfg->t.cmd) && (err = profile_bpf__attach(run->skel))) {
		st_rec_explain(r, "attaching the fork tracepoint", err);
		return ST_TRACE_SOFTWARE;
	}
	return 0;
}

/* The consumers, then a perf event on every CPU. */
static int cpu_attach(struct cpu_run *run, const struct st_trace_cpu_cfg *cfg)
{
	struct st_rec *r = &run->rec;
	run->links = calloc(r->ncpu, sizeof(*run->links));
	run->pfds = malloc(r->ncpu * sizeof(*run->pfds));
	if (!run->links || !run->pfds)
		return ST_TRACE_SOFTWARE;
	for (unsigned i = 0; i < r->ncpu; i++)
		run->pfds[i] = -1;
	/* Mapping records from now on, then what lived before: the target,
	 * the command (before its exec), or every process. */
	if (cfg->user_stacks) {
		maps = st_maps_open(r->ncpu);
		if (!maps) {
			st_rec_explain(r, "opening the perf events that track mappings", -errno);
			return ST_TRACE_NOPERM;
		}
		st_maps_snapshot(maps, cfg->t.pid ? cfg->t.pid : r->child);
		r->tool_report = cpu_report;
	}
	int rc = st_rec_start(r, on_sample);
	if (rc)
		return rc;
	int err = open_perf_events(run->skel, cfg->hz, run->links, run->pfds, r->ncpu);
	if (err) {
		st_rec_explain(r, "opening cpu-clock perf events", err);
		return ST_TRACE_NOPERM;
	}
	return 0;
}

static void destroy_perf_links(struct cpu_run *run)
{
	for (unsigned i = 0; run->links && i < run->rec.ncpu; i++) {
		bpf_link__destroy(run->links[i]);
		run->links[i] = NULL;
	}
}

static int cpu_trace(struct cpu_run *run, const struct st_trace_cpu_cfg *cfg,
		     const struct st_trace_sink *sink)
{
	st_rec_wait(&run->rec, cfg->t.duration);
	/* End of the stream (runner.c): stop emitting, destroy every link
	 * (PERF_EVENT_IOC_DISABLE + close remove each event on its CPU
	 * synchronously: no do_sample() runs after), then drain. */
	st_rec_quiesce(&run->k);
	destroy_perf_links(run);
	return st_rec_finish(&run->rec, &run->k, "samples", sink, 0); /* the fork tracepoint too */
}

static void cpu_cleanup(struct cpu_run *run)
{
	destroy_perf_links(run);
	for (unsigned i = 0; run->pfds && i < run->rec.ncpu; i++)
		if (run->pfds[i] >= 0)
			close(run->pfds[i]);
	st_rec_fini(&run->rec); /* joins consumers before the engine goes */
	free(run->links);
	free(run->pfds);
	if (run->skel)
		st_rec_detach_parallel(run->skel->skeleton);
	profile_bpf__destroy(run->skel);
	st_ksyms_free(ksyms);
	ksyms = NULL;
	st_maps_close(maps); /* the consumers are joined */
	maps = NULL;
	atomic_store_explicit(&uframes_all, 0, memory_order_relaxed);
	atomic_store_explicit(&unknown_all, 0, memory_order_relaxed);
}

int st_trace_cpu(const struct st_trace_cpu_cfg *cfg, const struct st_trace_sink *sink)
{
	struct cpu_run run = { 0 };
	int rc = st_rec_open(&run.rec, "record cpu", &cfg->t, false);
	if (rc)
		return rc;
	run.rec.sink = sink; /* started()/stopping(): runner.c */
	ksyms_open(&run.rec);
	if (!(rc = cpu_begin(&run)) && !(rc = cpu_load(&run, cfg)) && !(rc = cpu_attach(&run, cfg)))
		rc = cpu_trace(&run, cfg, sink);
	cpu_cleanup(&run);
	return rc;
}
