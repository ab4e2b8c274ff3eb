/* SPDX-License-Identifier: MIT */
/*
 * abi.h - what every shardtrie BPF tracer shares between kernel and user
 * space: the per-CPU drop counters and the per-CPU ring-buffer layout.
 * Fixed-width types only; included by *.bpf.c (after vmlinux.h) and by the
 * user side (which gets __u32 & co. from <linux/types.h>).
 */
#ifndef ST_BPF_ABI_H
#define ST_BPF_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* CPUs the counters and ring array cover; a power of two (masking keeps the
 * verifier happy).  CPUs past it share the last slot's ring: never dropped. */
#define ST_BPF_MAX_CPUS 1024

/* Default bytes of each per-CPU ring buffer (a power of two, >= page size). */
#define ST_BPF_RING_BYTES (8u << 20)

/*
 * Per-CPU counters, one cache line each, written only by BPF programs
 * running on that CPU (with atomic adds: syscall tracepoint programs can be
 * preempted on recent kernels), read by user space at the end.
 *   events      every event the filter accepted (profile samples, paired syscalls)
 *   rb_drops    bpf_ringbuf_reserve() failed: ring full, record lost
 *   stack_fails profile: bpf_get_stack() failed for the kernel or user part
 *               (the sample is still sent, that part empty)
 *   unpaired    io: an exit without its enter (tracing started mid-call,
 *               thread state evicted) - not an event, nothing lost
 *   path_fails  io: the filename could not be read from user memory
 */
struct st_bpf_cpu_stats {
	__u64 events;
	__u64 rb_drops;
	__u64 stack_fails;
	__u64 unpaired;
	__u64 path_fails;
	__u64 pad_[3];
};

#endif
