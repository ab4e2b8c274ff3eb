// SPDX-License-Identifier: MIT OR GPL-2.0
/*
 * profile.bpf.c - perf-event sampling: on each cpu-clock tick of a followed
 * process, reserve a record in this CPU's ring and fill it with the kernel
 * and user stacks straight from bpf_get_stack() (no stack map, no copy).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "profile.h"
#include "../common/st_bpf.h"

const volatile bool kernel_stacks = true;
const volatile bool user_stacks = true;

SEC("perf_event")
int do_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__u32 cpu = bpf_get_smp_processor_id();
	if (!st_want_tgid(tgid))
		return 0;
	struct st_bpf_cpu_stats *st = st_stats_cpu(cpu);
	__sync_fetch_and_add(&st->events, 1);
	void *ring = st_ring(cpu);
	struct st_prof_sample *s = ring ? bpf_ringbuf_reserve(ring, sizeof(*s), 0) : NULL;
	if (!s) {
		__sync_fetch_and_add(&st->rb_drops, 1);
		return 0;
	}
	s->magic = PROFILE_MAGIC;
	s->pid = tgid;
	s->tid = (__u32)id;
	s->cpu = cpu;
	s->time_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(s->comm, sizeof(s->comm));
	s->kstack_sz = kernel_stacks ? bpf_get_stack(ctx, s->kstack, sizeof(s->kstack), 0) : 0;
	s->ustack_sz = user_stacks && tgid ?
		bpf_get_stack(ctx, s->ustack, sizeof(s->ustack), BPF_F_USER_STACK) : 0;
	if (s->kstack_sz < 0 || s->ustack_sz < 0)
		__sync_fetch_and_add(&st->stack_fails, 1);
	bpf_ringbuf_submit(s, st_submit_flags(ring));
	return 0;
}
