/* SPDX-License-Identifier: MIT */
/*
 * profile.h - the kernel/user ABI of `shardtrie record cpu`: one ring-buffer
 * record per perf-event sample.
 */
#ifndef ST_PROFILE_H
#define ST_PROFILE_H

#include "../common/abi.h"

#define PROFILE_MAX_STACK 127
#define PROFILE_COMM_LEN 16
#define PROFILE_MAGIC 0x53545043u /* "STPC" */

/*
 * kstack/ustack: return addresses leaf first, as bpf_get_stack() wrote them;
 * kstack_sz/ustack_sz are its return values: bytes written (a multiple of 8,
 * <= sizeof(kstack)) or a negative errno when the capture failed.
 * time_ns: bpf_ktime_get_ns() (CLOCK_MONOTONIC), the clock the mapping
 * records carry too (bpf/common/mappings.c): a user frame is looked up in
 * the mappings the process had at that time, even after it has exited.
 */
struct st_prof_sample {
	__u32 magic;
	__u32 pid;  /* tgid */
	__u32 tid;
	__u32 cpu;
	__u64 time_ns;
	__s32 kstack_sz;
	__s32 ustack_sz;
	char comm[PROFILE_COMM_LEN];
	__u64 kstack[PROFILE_MAX_STACK];
	__u64 ustack[PROFILE_MAX_STACK];
};

#endif
