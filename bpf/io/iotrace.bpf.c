// SPDX-License-Identifier: MIT OR GPL-2.0
/*
 * iotrace.bpf.c - file I/O syscalls, enter and exit paired per thread.
 *
 *   sys_enter_X --> io_enter(): threads[tid] = { op, enter time, fd, flags,
 *                               filename copied from user memory }
 *   sys_exit_X  --> io_exit():  threads[tid].op == X ?  no -> unpaired++
 *                               record { duration, gap since the thread's
 *                               previous exit, ret, path } -> this CPU's ring
 *                               opens that returned an fd: fds[(pid, fd)] = path
 *                               close: fds[(pid, fd)] removed
 *   dup, dup2, dup3, fcntl(F_DUPFD*): paired the same way, never sent;
 *                               the exit copies fds[(pid, old)] to
 *                               fds[(pid, new)] (or removes the new fd's
 *                               stale entry when the old one is unknown)
 *
 * Both maps are LRU: a thread or fd that disappears without its exit/close
 * ages out instead of filling the map.  io_enter()/io_exit() take the ids and
 * the time as arguments so BPF_PROG_TEST_RUN (raw_tp "io_test") drives the
 * same code with synthetic events.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "iotrace.h"
#include "../common/st_bpf.h"

const volatile bool filter_comm = false;
const volatile char targ_comm[IO_COMM_LEN] = {};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct st_io_thread);
} threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct st_io_path);
} fds SEC(".maps");

/* Never written: the initial value of a new thread entry. */
struct st_io_thread io_zero_thread;

static __always_inline bool is_open(__u32 op)
{
	return op == IO_OP_OPEN || op == IO_OP_OPENAT || op == IO_OP_OPENAT2 || op == IO_OP_CREAT;
}

static __noinline int io_enter(__u32 tid, __u32 op, __u64 now, __s64 fd, const char *upath)
{
	struct st_io_thread *t = bpf_map_lookup_elem(&threads, &tid);
	if (!t) {
		bpf_map_update_elem(&threads, &tid, &io_zero_thread, BPF_NOEXIST);
		t = bpf_map_lookup_elem(&threads, &tid);
		if (!t)
			return 0;
	}
	t->op = (__u16)op;
	t->enter_ns = now;
	t->fd = (__s32)fd;
	t->flags = 0;
	t->upath = 0;
	t->p.len = 0;
	if (upath) {
		long n = bpf_probe_read_user_str(t->p.path, sizeof(t->p.path), upath);
		if (n > 0)
			t->p.len = (__u32)n - 1;
		else
			t->upath = (__u64)upath; /* not faulted in yet: retried at exit */
	}
	return 0;
}

/* Second chance for a filename unreadable at enter: the syscall has copied
 * it by now (getname), so its page is normally present. */
static __always_inline void path_retry(struct st_io_thread *t, struct st_bpf_cpu_stats *st)
{
	if (!t->upath)
		return;
	long n = bpf_probe_read_user_str(t->p.path, sizeof(t->p.path), (const void *)t->upath);
	t->upath = 0;
	if (n > 0) {
		t->p.len = (__u32)n - 1;
	} else {
		__sync_fetch_and_add(&st->path_fails, 1);
		t->fd = -1; /* a *at call's dirfd is not the file */
	}
}

/* Reserve by size class and copy the path in the same branch: the verifier
 * then knows the copy fits the reservation. */
static __always_inline struct st_io_event *reserve(void *ring, const struct st_io_path *src, __u32 len)
{
	struct st_io_event *e;
	if (!len || !src)
		return bpf_ringbuf_reserve(ring, IO_EVENT_HDR, 0);
	if (len <= IO_PATH_SMALL) {
		e = bpf_ringbuf_reserve(ring, IO_EVENT_HDR + IO_PATH_SMALL, 0);
		if (e)
			bpf_probe_read_kernel((char *)(e + 1), IO_PATH_SMALL, src->path);
		return e;
	}
	e = bpf_ringbuf_reserve(ring, IO_EVENT_HDR + IO_PATH_MAX, 0);
	if (e)
		bpf_probe_read_kernel((char *)(e + 1), IO_PATH_MAX, src->path);
	return e;
}

static __noinline int io_exit(__u32 tgid, __u32 tid, __u32 op, __u64 now, __s64 ret)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct st_bpf_cpu_stats *st = st_stats_cpu(cpu);
	struct st_io_thread *t = bpf_map_lookup_elem(&threads, &tid);
	if (!t || t->op != op) {
		__sync_fetch_and_add(&st->unpaired, 1);
		return 0;
	}
	__sync_fetch_and_add(&st->events, 1);
	__u64 enter = t->enter_ns;
	__u64 last = t->last_exit_ns;
	t->last_exit_ns = now;
	t->op = IO_OP_NONE;
	path_retry(t, st);

	struct st_io_path *src = NULL;
	__u32 eflags = 0;
	__u64 key = ((__u64)tgid << 32) | (__u32)t->fd;
	if (t->p.len) {
		src = &t->p;
	} else if (t->fd >= 0) {
		eflags |= IO_EF_HAS_FD;
		src = bpf_map_lookup_elem(&fds, &key);
		if (src)
			eflags |= IO_EF_PATH_FD;
	}
	__u32 len = src ? src->len : 0;
	if (len > IO_PATH_MAX - 1)
		len = IO_PATH_MAX - 1;

	void *ring = st_ring(cpu);
	struct st_io_event *e = ring ? reserve(ring, src, len) : NULL;
	if (!e) {
		__sync_fetch_and_add(&st->rb_drops, 1);
	} else {
		e->magic = IO_MAGIC;
		e->op = (__u16)op;
		e->pid = tgid;
		e->tid = tid;
		e->enter_ns = enter;
		e->dur_ns = now - enter;
		e->gap_ns = last && enter > last ? enter - last : 0;
		e->ret = ret;
		e->flags = t->flags;
		e->fd = (eflags & IO_EF_HAS_FD) ? t->fd : -1;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		e->path_len = src ? (__u16)len : 0;
		e->eflags = eflags;
		bpf_ringbuf_submit(e, st_submit_flags(ring));
	}

	/* Keep the (pid, fd) table in step with the process's fd table. */
	if (is_open(op) && ret >= 0 && t->p.len) {
		__u64 nkey = ((__u64)tgid << 32) | (__u32)ret;
		bpf_map_update_elem(&fds, &nkey, &t->p, BPF_ANY);
	} else if (is_open(op) && ret >= 0) {
		/* Filename unreadable: whatever the table had for this fd number
		 * is stale now (the consumer resolves it from /proc). */
		__u64 nkey = ((__u64)tgid << 32) | (__u32)ret;
		bpf_map_delete_elem(&fds, &nkey);
	} else if (op == IO_OP_CLOSE && t->fd >= 0) {
		bpf_map_delete_elem(&fds, &key);
	}
	return 0;
}

/* Exit of dup/dup2/dup3/fcntl(F_DUPFD*): no record, no event; the thread's
 * previous-exit time is left alone (the gap of the next traced call spans
 * the dup, as if it were not traced). */
static __noinline int dup_exit(__u32 tgid, __u32 tid, __s64 ret)
{
	struct st_io_thread *t = bpf_map_lookup_elem(&threads, &tid);
	if (!t || t->op != IO_OP_DUPFD_)
		return 0;
	t->op = IO_OP_NONE;
	if (ret < 0 || ret == t->fd || t->fd < 0)
		return 0; /* failed, or dup2(fd, fd): nothing changed */
	__u64 okey = ((__u64)tgid << 32) | (__u32)t->fd;
	__u64 nkey = ((__u64)tgid << 32) | (__u32)ret;
	struct st_io_path *src = bpf_map_lookup_elem(&fds, &okey);
	if (src)
		bpf_map_update_elem(&fds, &nkey, src, BPF_ANY);
	else
		bpf_map_delete_elem(&fds, &nkey);
	return 0;
}

static __always_inline bool comm_ok(void)
{
	char c[IO_COMM_LEN];
	if (!filter_comm)
		return true;
	bpf_get_current_comm(c, sizeof(c));
	for (int i = 0; i < IO_COMM_LEN; i++) {
		if (c[i] != targ_comm[i])
			return false;
		if (!c[i])
			break;
	}
	return true;
}

static __always_inline int on_enter(__u32 op, __s64 fd, const char *upath, __u64 flags)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!st_want_tgid(id >> 32) || !comm_ok())
		return 0;
	io_enter((__u32)id, op, bpf_ktime_get_ns(), fd, upath);
	if (flags) {
		__u32 tid = (__u32)id;
		struct st_io_thread *t = bpf_map_lookup_elem(&threads, &tid);
		if (t)
			t->flags = flags;
	}
	return 0;
}

static __always_inline int on_exit(__u32 op, __s64 ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!st_want_tgid(id >> 32))
		return 0;
	return io_exit(id >> 32, (__u32)id, op, bpf_ktime_get_ns(), ret);
}

static __always_inline int on_dup_exit(__s64 ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!st_want_tgid(id >> 32))
		return 0;
	return dup_exit(id >> 32, (__u32)id, ret);
}

#define TP_EXIT(name, OP)                                                              \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                     \
	int exit_##name(struct trace_event_raw_sys_exit *ctx)                          \
	{                                                                              \
		return on_exit(OP, ctx->ret);                                          \
	}
/* fd-based call: fd in args[0] */
#define TP_FD(name, OP)                                                                \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                    \
	int enter_##name(struct trace_event_raw_sys_enter *ctx)                        \
	{                                                                              \
		return on_enter(OP, (__s32)ctx->args[0], NULL, 0);                     \
	}                                                                              \
	TP_EXIT(name, OP)
/* path-based call: filename in args[P], open flags in args[F] (F < 0: none) */
#define TP_PATH(name, OP, P, F)                                                        \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                    \
	int enter_##name(struct trace_event_raw_sys_enter *ctx)                        \
	{                                                                              \
		return on_enter(OP, -1, (const char *)ctx->args[P],                    \
				(F) >= 0 ? ctx->args[(F) >= 0 ? (F) : 0] | IO_FLAGS_VALID : 0); \
	}                                                                              \
	TP_EXIT(name, OP)
/* *at call that accepts an empty filename (AT_EMPTY_PATH): the dirfd in
 * args[D] names the file then, so it is kept as the call's fd. */
#define TP_AT(name, OP, D, P)                                                          \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                    \
	int enter_##name(struct trace_event_raw_sys_enter *ctx)                        \
	{                                                                              \
		return on_enter(OP, (__s32)ctx->args[D], (const char *)ctx->args[P], 0); \
	}                                                                              \
	TP_EXIT(name, OP)
/* fd bookkeeping only: old fd in args[0] */
#define TP_DUP(name)                                                                   \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                    \
	int enter_##name(struct trace_event_raw_sys_enter *ctx)                        \
	{                                                                              \
		return on_enter(IO_OP_DUPFD_, (__s32)ctx->args[0], NULL, 0);           \
	}                                                                              \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                     \
	int exit_##name(struct trace_event_raw_sys_exit *ctx)                          \
	{                                                                              \
		return on_dup_exit(ctx->ret);                                          \
	}

TP_PATH(open, IO_OP_OPEN, 0, 1)
TP_PATH(openat, IO_OP_OPENAT, 1, 2)
TP_PATH(openat2, IO_OP_OPENAT2, 1, -1)
TP_PATH(creat, IO_OP_CREAT, 0, -1)
TP_FD(read, IO_OP_READ)
TP_FD(write, IO_OP_WRITE)
TP_FD(pread64, IO_OP_PREAD64)
TP_FD(pwrite64, IO_OP_PWRITE64)
TP_FD(readv, IO_OP_READV)
TP_FD(writev, IO_OP_WRITEV)
TP_FD(close, IO_OP_CLOSE)
TP_FD(fsync, IO_OP_FSYNC)
TP_FD(fdatasync, IO_OP_FDATASYNC)
TP_FD(lseek, IO_OP_LSEEK)
TP_FD(newfstat, IO_OP_NEWFSTAT)
TP_AT(newfstatat, IO_OP_NEWFSTATAT, 0, 1)
TP_AT(statx, IO_OP_STATX, 0, 1)
TP_PATH(rename, IO_OP_RENAME, 0, -1)
TP_PATH(renameat, IO_OP_RENAMEAT, 1, -1)
TP_PATH(renameat2, IO_OP_RENAMEAT2, 1, -1)
TP_PATH(unlink, IO_OP_UNLINK, 0, -1)
TP_PATH(unlinkat, IO_OP_UNLINKAT, 1, -1)
TP_PATH(mkdir, IO_OP_MKDIR, 0, -1)
TP_PATH(mkdirat, IO_OP_MKDIRAT, 1, -1)
TP_FD(getdents64, IO_OP_GETDENTS64)
TP_DUP(dup)
TP_DUP(dup2)
TP_DUP(dup3)

#define F_DUPFD_ 0
#define F_DUPFD_CLOEXEC_ 1030
SEC("tracepoint/syscalls/sys_enter_fcntl")
int enter_fcntl(struct trace_event_raw_sys_enter *ctx)
{
	__u64 cmd = ctx->args[1];
	if (cmd != F_DUPFD_ && cmd != F_DUPFD_CLOEXEC_)
		return 0;
	return on_enter(IO_OP_DUPFD_, (__s32)ctx->args[0], NULL, 0);
}
SEC("tracepoint/syscalls/sys_exit_fcntl")
int exit_fcntl(struct trace_event_raw_sys_exit *ctx)
{
	return on_dup_exit(ctx->ret);
}

/* BPF_PROG_TEST_RUN entry: one synthetic enter or exit (struct st_io_test_ctx),
 * no filters, same pairing code.  Loaded only by `record io-selftest`. */
SEC("raw_tp")
int io_test(__u64 *ctx)
{
	__u64 exit = ctx[0], tgid = ctx[1], tid = ctx[2], op = ctx[3], now = ctx[4], v = ctx[5];
	if (op >= IO_OP_COUNT_ && op != IO_OP_DUPFD_)
		return -1;
	if (exit && op == IO_OP_DUPFD_)
		return dup_exit((__u32)tgid, (__u32)tid, (__s64)v);
	if (exit)
		return io_exit((__u32)tgid, (__u32)tid, (__u32)op, now, (__s64)v);
	return io_enter((__u32)tid, (__u32)op, now, (__s64)v, NULL);
}

/* Synthetic load for `record io --flood RATE`: ctx->n paired calls (read and
 * write by turns, 1 byte each, on ctx->fd, whose path user space put in
 * `fds`) from ntids synthetic threads, through the same io_enter()/io_exit()
 * as the tracepoints, timed by the clock, so the pairing, the ring and the
 * consumers carry a chosen rate that real syscalls cannot reach here (the
 * tracepoints themselves cap it).  Loaded only in that mode. */
struct flood_arg {
	__u32 tgid, tid0, ntids;
	__s32 fd;
};

static long flood_one(__u64 i, void *ctx)
{
	struct flood_arg *a = ctx;
	__u32 tid = a->tid0 + (__u32)(i % (a->ntids ? a->ntids : 1));
	__u32 op = (i & 1) ? IO_OP_WRITE : IO_OP_READ;
	io_enter(tid, op, bpf_ktime_get_ns(), a->fd, NULL);
	io_exit(a->tgid, tid, op, bpf_ktime_get_ns(), 1);
	return 0;
}

SEC("raw_tp")
int io_flood(struct st_io_flood_ctx *ctx)
{
	struct flood_arg a = { (__u32)ctx->tgid, (__u32)ctx->tid0, (__u32)ctx->ntids, (__s32)ctx->fd };
	return bpf_loop((__u32)ctx->n, flood_one, &a, 0);
}
