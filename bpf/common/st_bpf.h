/* SPDX-License-Identifier: MIT */
/*
 * st_bpf.h - BPF-side pieces every shardtrie tracer shares: the array of
 * per-CPU ring buffers, the per-CPU counters and the process filter (own
 * process out; optionally only a set of tgids, followed across fork).
 * Include after vmlinux.h and <bpf/bpf_helpers.h>.
 *
 *   CPU n program --reserve--> rings[n] (BPF_MAP_TYPE_RINGBUF) --> consumer thread n
 *                                                                 --> writer n --> shard n
 */
#ifndef ST_BPF_H
#define ST_BPF_H

#include "abi.h"

/* Filled by user space: max_entries = CPUs, inner maps created per CPU
 * (bpf_map__set_inner_map_fd() before load, updates after). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} st_rings SEC(".maps");

/* The tgids followed when st_filter_tgids is set; children join on fork. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} st_tgids SEC(".maps");

struct st_bpf_cpu_stats st_stats[ST_BPF_MAX_CPUS];

/* Set by user space at the end of a run (memory-mapped .bss): programs
 * stop counting and emitting, so the counters are final before the drain. */
bool st_stopped;

/* Submit without waking the consumer until this much is waiting in the ring
 * (then force a wakeup): one wakeup per batch instead of one per record.
 * The consumer also polls with a timeout, so a quiet ring is still drained. */
const volatile __u64 st_wakeup_bytes = 0;

const volatile __u32 st_self_tgid = 0;
const volatile bool st_filter_tgids = false;

static __always_inline struct st_bpf_cpu_stats *st_stats_cpu(__u32 cpu)
{
	return &st_stats[cpu & (ST_BPF_MAX_CPUS - 1)];
}

static __always_inline bool st_want_tgid(__u32 tgid)
{
	if (tgid == st_self_tgid || st_stopped)
		return false;
	if (!st_filter_tgids)
		return true;
	return bpf_map_lookup_elem(&st_tgids, &tgid) != NULL;
}

/* The ring of this CPU (or NULL when user space did not fill it). */
static __always_inline void *st_ring(__u32 cpu)
{
	if (cpu >= ST_BPF_MAX_CPUS)
		cpu = ST_BPF_MAX_CPUS - 1;
	return bpf_map_lookup_elem(&st_rings, &cpu);
}

static __always_inline __u64 st_submit_flags(void *ring)
{
	if (!st_wakeup_bytes)
		return 0; /* adaptive: wake when the consumer has caught up */
	return bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) >= st_wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									       : BPF_RB_NO_WAKEUP;
}

/* Follow the traced processes across fork: a child of a followed tgid is
 * followed too (threads land here as well; their tid key is harmless). */
SEC("tracepoint/sched/sched_process_fork")
int st_on_fork(struct trace_event_raw_sched_process_fork *ctx)
{
	__u32 parent = bpf_get_current_pid_tgid() >> 32;
	__u8 one = 1;
	if (!st_filter_tgids || !bpf_map_lookup_elem(&st_tgids, &parent))
		return 0;
	__u32 child = (__u32)BPF_CORE_READ(ctx, child_pid);
	bpf_map_update_elem(&st_tgids, &child, &one, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#endif
