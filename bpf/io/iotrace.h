/* SPDX-License-Identifier: MIT */
/*
 * iotrace.h - the kernel/user ABI of `shardtrie record io`: one ring-buffer
 * record per paired syscall (enter + exit of one thread), sent at the exit.
 *
 *   record = struct st_io_event (IO_EVENT_HDR bytes)
 *            + path bytes: 0, IO_PATH_SMALL or IO_PATH_MAX of them (the
 *              reservation size class), the first path_len meaningful,
 *              no NUL required.
 */
#ifndef ST_IOTRACE_H
#define ST_IOTRACE_H

#include "../common/abi.h"

#define IO_MAGIC 0x53544f49u /* "STIO" */
#define IO_COMM_LEN 16
#define IO_PATH_SMALL 64
#define IO_PATH_MAX 256

/* Syscalls traced; values are the ABI, names in decode.c. */
enum st_io_op {
	IO_OP_NONE = 0,
	IO_OP_OPEN, IO_OP_OPENAT, IO_OP_OPENAT2, IO_OP_CREAT,
	IO_OP_READ, IO_OP_WRITE, IO_OP_PREAD64, IO_OP_PWRITE64, IO_OP_READV, IO_OP_WRITEV,
	IO_OP_CLOSE, IO_OP_FSYNC, IO_OP_FDATASYNC, IO_OP_LSEEK,
	IO_OP_NEWFSTAT, IO_OP_NEWFSTATAT, IO_OP_STATX,
	IO_OP_RENAME, IO_OP_RENAMEAT, IO_OP_RENAMEAT2,
	IO_OP_UNLINK, IO_OP_UNLINKAT, IO_OP_MKDIR, IO_OP_MKDIRAT,
	IO_OP_GETDENTS64,
	IO_OP_COUNT_
};

/*
 * Traced for the (pid, fd) table only, never sent in a record (so not in
 * the ABI's op range): dup, dup2, dup3 and fcntl(F_DUPFD[_CLOEXEC]).  At the
 * exit, a new fd gets the old fd's path; an fd whose path is unknown removes
 * the new fd's stale entry (dup2/dup3 onto an open fd closes it).
 */
#define IO_OP_DUPFD_ 0x100

/* io_event.eflags */
#define IO_EF_PATH_FD    1u /* path came from the (pid, fd) table, not the call */
#define IO_EF_PATH_TRUNC 2u /* path longer than the class: cut */
#define IO_EF_HAS_FD     4u /* fd is the call's fd argument (a *at call: its dirfd,
			     * used when the filename is empty, AT_EMPTY_PATH) */
/* io_event.flags: bit 63 marks the low bits as the call's open flags */
#define IO_FLAGS_VALID (1ull << 63)

struct st_io_event {
	__u32 magic;
	__u16 op;        /* enum st_io_op */
	__u16 path_len;  /* meaningful bytes in path[] */
	__u32 pid;       /* tgid */
	__u32 tid;
	__u64 enter_ns;  /* bpf_ktime_get_ns() at enter */
	__u64 dur_ns;    /* exit - enter */
	__u64 gap_ns;    /* enter - the thread's previous traced exit; 0 = none */
	__s64 ret;       /* syscall return value */
	__u64 flags;     /* open flags (open, openat, creat) */
	__s32 fd;        /* fd argument (IO_EF_HAS_FD), or -1 */
	__u32 eflags;    /* IO_EF_* */
	char comm[IO_COMM_LEN];
	/* path bytes follow at IO_EVENT_HDR (see the top of this file) */
};
#define IO_EVENT_HDR ((unsigned)sizeof(struct st_io_event))

/* Value of the (pid, fd) -> path table, and of a thread's pending path. */
struct st_io_path {
	__u32 len;
	__u32 pad_;
	char path[IO_PATH_MAX];
};

/* Per-thread state between enter and exit (key: tid). */
struct st_io_thread {
	__u64 enter_ns;
	__u64 last_exit_ns;
	__u64 flags;
	__u64 upath;     /* filename pointer whose read failed at enter: retried
			  * at exit (the call has faulted the page in), or 0 */
	__s32 fd;
	__u16 op;        /* pending call, IO_OP_NONE when none */
	__u16 pad_;
	struct st_io_path p;
};

/* Context of the BPF_PROG_TEST_RUN entry point (raw_tp "io_test"). */
struct st_io_test_ctx {
	__u64 exit;      /* 0 = enter, 1 = exit */
	__u64 tgid;
	__u64 tid;
	__u64 op;
	__u64 now_ns;
	__u64 fd_or_ret; /* enter: fd (or -1); exit: return value */
};

/* Context of the synthetic-load entry point (raw_tp "io_flood"). */
struct st_io_flood_ctx {
	__u64 tgid;  /* the pid the records carry */
	__u64 tid0;  /* first synthetic thread id */
	__u64 ntids; /* threads, round robin */
	__u64 fd;    /* the fd read and written */
	__u64 n;     /* paired calls in this run */
};

#endif
