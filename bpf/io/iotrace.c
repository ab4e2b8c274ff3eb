/* SPDX-License-Identifier: MIT */
/*
 * iotrace.c - `shardtrie record io`: file I/O syscalls paired in
 * iotrace.bpf.c, one record per pair through the per-CPU rings; each
 * consumer thread builds the ior frames (--fields, in the order in force:
 * order.c, changeable while the run goes on) and ingests the four counters
 * (count, duration_ns, duration_to_prev_ns, bytes) into its writer; --metric
 * picks the one exported.
 *
 * Paths: the call's filename, or the (pid, fd) table in BPF (filled by opens
 * and dups seen during the run, and before it starts from /proc/PID/fd of
 * the command or -p process).  An fd the table misses (opened before the
 * run by a process not seeded, or made by a call not traced: socket, pipe,
 * ...): the consumer reads /proc/PID/fd/N once, keeps it in a small per-
 * thread cache and writes it back into the BPF table so every CPU sees it.
 * When that fails too (the process has exited), the event is still counted,
 * under "[unresolved fd N]", and the end-of-run summary says how many.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/decode.h"
#include "iotrace.skel.h"
#include "order.h"
#include "tool.h"

#define RING_BYTES ST_BPF_RING_BYTES
#define FD_CACHE 512
#define FD_UNKNOWN UINT32_MAX

struct fd_entry {
	uint32_t pid;
	int32_t fd;
	uint32_t len; /* 0 = empty slot, FD_UNKNOWN = /proc had nothing */
	char path[IO_PATH_MAX];
};

struct io_tool {
	struct fd_entry cache[FD_CACHE];
	struct st_io_frames fr;
	struct st_io_order_slot *slot; /* the field order (order.c) */
};

/* Set before the consumers start, read-only while they run. */
static struct st_io_order *io_order;
static int io_fds_map = -1;

static void *io_tool_init(struct st_rec_consumer *c)
{
	struct io_tool *t = calloc(1, sizeof(struct io_tool));
	if (t)
		t->slot = st_io_order_online(io_order, c->cpu);
	return t;
}

/* After every pass over the ring: no stack is being built (order.c). */
static void io_tool_tick(struct st_rec_consumer *c)
{
	struct io_tool *t = c->tool;
	if (t)
		st_io_order_quiet(t->slot);
}

/* After the last ingest (the final drain is done). */
static void io_tool_fini(struct st_rec_consumer *c)
{
	struct io_tool *t = c->tool;
	if (t)
		st_io_order_offline(t->slot);
	free(t);
}

/* Put (pid, fd) -> path into the BPF table unless it has an entry. */
static void fd_publish(uint32_t pid, int32_t fd, const char *path, size_t n)
{
	if (io_fds_map < 0)
		return;
	struct st_io_path v = { .len = (__u32)n };
	memcpy(v.path, path, n);
	__u64 key = ((__u64)pid << 32) | (__u32)fd;
	bpf_map_update_elem(io_fds_map, &key, &v, BPF_NOEXIST);
}

static struct fd_entry *fd_slot(struct io_tool *t, uint32_t pid, int32_t fd)
{
	return &t->cache[(pid * 2654435761u ^ (uint32_t)fd) % FD_CACHE];
}

/* The path of (pid, fd) from /proc, cached and written back to BPF. */
static const struct fd_entry *fd_resolve(struct io_tool *t, uint32_t pid, int32_t fd)
{
	struct fd_entry *e = fd_slot(t, pid, fd);
	if (e->len && e->pid == pid && e->fd == fd)
		return e->len == FD_UNKNOWN ? NULL : e;
	char fn[64];
	snprintf(fn, sizeof(fn), "/proc/%u/fd/%d", pid, fd);
	ssize_t n = readlink(fn, e->path, sizeof(e->path) - 1);
	e->pid = pid;
	e->fd = fd;
	if (n <= 0) {
		e->len = FD_UNKNOWN; /* until this fd is closed */
		return NULL;
	}
	e->len = (uint32_t)n;
	e->path[n] = 0;
	fd_publish(pid, fd, e->path, (size_t)n);
	return e;
}

static int on_io(struct st_rec_consumer *c, const void *data, size_t size)
{
	struct io_tool *t = c->tool;
	struct st_io_rec r;
	if (st_io_decode(data, size, &r))
		return -1;
	if (!t || !c->w) {
		c->failed++;
		return 0;
	}
	const char *path = r.path;
	size_t plen = r.path_len;
	int32_t fd = -1; /* the fd whose path stands in for the record's */
	if (!path && r.h.fd >= 0)
		fd = r.h.fd;
	else if (!path && st_io_op_is_open(r.h.op) && r.h.ret >= 0)
		fd = (int32_t)r.h.ret; /* the filename was not readable at enter: the new fd tells */
	const struct fd_entry *e = fd >= 0 ? fd_resolve(t, r.h.pid, fd) : NULL;
	if (e) {
		path = e->path;
		plen = e->len;
	}
	if (r.h.op == IO_OP_CLOSE && r.h.fd >= 0) {
		struct fd_entry *slot = fd_slot(t, r.h.pid, r.h.fd);
		if (slot->pid == r.h.pid && slot->fd == r.h.fd)
			slot->len = 0;
	}
	if (!path || !plen)
		c->unresolved++;
	if (st_io_order_ingest(t->slot, c->w, &r, path, plen, &t->fr))
		c->failed++;
	return 0;
}

/*
 * Put the fds `pid` has now into the BPF table, so calls on fds opened before
 * the run (stdin/stdout/stderr of the command, a -p process's files) have
 * their path in the record itself, whenever the consumer reads it.
 * skip_cloexec: the command is stopped before exec; its close-on-exec fds
 * (the go pipe) will be gone by the time it runs.
 */
static void seed_fds(pid_t pid, bool skip_cloexec)
{
	char dn[64];
	snprintf(dn, sizeof(dn), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dn);
	if (!d)
		return; /* resolved later from /proc, or counted as unresolved */
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);
		if (*end || end == de->d_name || fd < 0 || fd > INT32_MAX)
			continue;
		char fn[96];
		if (skip_cloexec) {
			snprintf(fn, sizeof(fn), "/proc/%d/fdinfo/%ld", (int)pid, fd);
			FILE *f = fopen(fn, "r");
			char line[128];
			unsigned long fl = 0;
			bool cloexec = false;
			while (f && fgets(line, sizeof(line), f))
				if (sscanf(line, "flags: %lo", &fl) == 1)
					cloexec = (fl & O_CLOEXEC) != 0;
			if (f)
				fclose(f);
			if (cloexec)
				continue;
		}
		char path[IO_PATH_MAX];
		snprintf(fn, sizeof(fn), "/proc/%d/fd/%ld", (int)pid, fd);
		ssize_t n = readlink(fn, path, sizeof(path) - 1);
		if (n > 0)
			fd_publish((uint32_t)pid, (int32_t)fd, path, (size_t)n);
	}
	closedir(d);
}

/* Tracepoints this kernel lacks are not loaded (older kernels: openat2...). */
static void autoload_present(struct iotrace_bpf *skel)
{
	struct bpf_program *p;
	bpf_object__for_each_program(p, skel->obj) {
		const char *sec = bpf_program__section_name(p);
		const char *tp = strncmp(sec, "tracepoint/", 11) == 0 ? sec + 11 : NULL;
		if (!tp)
			continue;
		char fn[256];
		snprintf(fn, sizeof(fn), "/sys/kernel/tracing/events/%s", tp);
		if (access(fn, F_OK) != 0) {
			snprintf(fn, sizeof(fn), "/sys/kernel/debug/tracing/events/%s", tp);
			if (access(fn, F_OK) != 0)
				bpf_program__set_autoload(p, false);
		}
	}
}

struct iotrace_bpf *st_io_skel_open(void)
{
	return iotrace_bpf__open();
}

/* One run: the runner, the skeleton and the field order. */
struct io_run {
	struct st_rec rec;
	struct iotrace_bpf *skel;
	struct st_rec_skel k;
	struct st_io_order *own_order; /* made from cfg->fields when cfg->order is NULL */
	bool order_attached;
};

static int io_begin(struct io_run *run)
{
	struct st_options so;
	st_options_init(&so);
	so.merge_interval_ms = 0;
	so.nmetrics = ST_IOM_N;
	for (int i = 0; i < ST_IOM_N; i++) {
		so.metrics[i].name = st_io_metric_names[i];
		so.metrics[i].unit = st_io_metric_units[i];
	}
	int rc = st_rec_begin(&run->rec, &so);
	run->rec.tool_init = io_tool_init;
	run->rec.tool_tick = io_tool_tick;
	run->rec.tool_fini = io_tool_fini;
	/* Before the consumers (and the sink's started(), whose server may
	 * set the order) exist. */
	if (!rc && st_io_order_attach(io_order, run->rec.e, run->rec.ncpu)) {
		st_rec_say(&run->rec, "cannot set up: %s\n", strerror(ENOMEM));
		return ST_TRACE_SOFTWARE;
	}
	run->order_attached = !rc;
	return rc;
}

/* Which programs load: the tracepoints this kernel has, or io_flood alone
 * (no tracepoint attached); never the test entry point. */
static void io_autoload(struct iotrace_bpf *skel, const struct st_trace_io_cfg *cfg)
{
	bpf_program__set_autoload(skel->progs.io_test, false);
	autoload_present(skel);
	if (cfg->flood_rate) {
		struct bpf_program *p;
		bpf_object__for_each_program(p, skel->obj)
			bpf_program__set_autoload(p, p == skel->progs.io_flood);
	} else {
		bpf_program__set_autoload(skel->progs.io_flood, false);
	}
}

/* Open, configure and load the skeleton; seed the fd table. */
static int io_load(struct io_run *run, const struct st_trace_io_cfg *cfg)
{
	struct st_rec *r = &run->rec;
	int rc = ST_REC_OPEN(r, &run->skel, &run->k, st_io_skel_open, RING_BYTES);
	if (rc)
		return rc;
	if (cfg->comm) {
		run->skel->rodata->filter_comm = true;
		strncpy((char *)run->skel->rodata->targ_comm, cfg->comm, IO_COMM_LEN - 1);
	}
	io_autoload(run->skel, cfg);
	if ((rc = st_rec_load(r, &run->k)))
		return rc;
	io_fds_map = bpf_map__fd(run->skel->maps.fds);
	if (cfg->t.pid)
		seed_fds(cfg->t.pid, false);
	if (r->child)
		seed_fds(r->child, true);
	return 0;
}

/* The consumers, then the syscall tracepoints (none with --flood). */
static int io_attach(struct io_run *run, const struct st_trace_io_cfg *cfg)
{
	int rc = st_rec_start(&run->rec, on_io), err;
	if (rc)
		return rc;
	if (!cfg->flood_rate && (err = iotrace_bpf__attach(run->skel))) {
		st_rec_explain(&run->rec, "attaching the syscall tracepoints", err);
		return ST_TRACE_NOPERM;
	}
	return 0;
}

static int io_trace(struct io_run *run, const struct st_trace_io_cfg *cfg,
		    const struct st_trace_sink *sink)
{
	if (cfg->flood_rate) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd >= 0)
			seed_fds(getpid(), false); /* fd's path, as a traced open leaves it */
		int rc = st_io_flood(&run->rec, bpf_program__fd(run->skel->progs.io_flood), fd,
				     cfg->flood_rate, cfg->t.duration);
		if (rc)
			return rc;
	} else {
		st_rec_wait(&run->rec, cfg->t.duration);
	}
	/* End of the stream (runner.c): stop emitting, detach every program
	 * (returns once no instance can still run), then drain. */
	st_rec_quiesce(&run->k);
	return st_rec_finish(&run->rec, &run->k, "events", sink, cfg->metric);
}

static void io_cleanup(struct io_run *run)
{
	/* Consumers joined (offline), the sink's server stopped: no set()
	 * can run, and none waits, when the order lets the engine go. */
	st_rec_fini(&run->rec);
	if (run->order_attached)
		st_io_order_detach(io_order);
	st_io_order_free(run->own_order);
	io_order = NULL;
	io_fds_map = -1;
	if (run->skel)
		st_rec_detach_parallel(run->skel->skeleton);
	iotrace_bpf__destroy(run->skel);
}

int st_trace_io(const struct st_trace_io_cfg *cfg, const struct st_trace_sink *sink)
{
	struct io_run run = { 0 };
	int rc = st_rec_open(&run.rec, "record io", &cfg->t, true);
	if (rc)
		return rc;
	run.rec.sink = sink; /* started()/stopping(): runner.c */
	io_order = cfg->order;
	if (!io_order && !(io_order = run.own_order = st_io_order_new(cfg->fields, cfg->nfields))) {
		st_rec_say(&run.rec, "cannot set up the field order: %s\n", strerror(errno));
		st_rec_fini(&run.rec);
		return ST_TRACE_SOFTWARE;
	}
	if (!(rc = io_begin(&run)) && !(rc = io_load(&run, cfg)) && !(rc = io_attach(&run, cfg)))
		rc = io_trace(&run, cfg, sink);
	io_cleanup(&run);
	return rc;
}
