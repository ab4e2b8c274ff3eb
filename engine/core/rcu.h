/* SPDX-License-Identifier: MIT */
/*
 * rcu.h - the liburcu flavour the core uses (urcu-memb: no signals, readers
 * pay one compiler barrier thanks to membarrier) and implicit registration.
 */
#ifndef ST_RCU_H
#define ST_RCU_H

#include <urcu/urcu-memb.h>

/* Register the calling thread with urcu-memb once; unregistered at exit. */
void st_rcu_thread_online(void);
#define st_rcu_read_lock() urcu_memb_read_lock()
#define st_rcu_read_unlock() urcu_memb_read_unlock()
#define st_rcu_synchronize() urcu_memb_synchronize_rcu()
#define st_rcu_barrier() urcu_memb_barrier()
#define st_call_rcu(head, fn) urcu_memb_call_rcu((head), (fn))

/*
 * ThreadSanitizer cannot see liburcu's ordering (it is not instrumented):
 * under -fsanitize=thread the two hand-overs of a shard table (rule E1,
 * docs/concurrency.md) are told to it explicitly, so it still checks
 * everything else -- two writers on one table would be reported.
 */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define TSAN_ACQUIRE(p) __tsan_acquire(p)
#define TSAN_RELEASE(p) __tsan_release(p)
#else
#define TSAN_ACQUIRE(p) ((void)(p))
#define TSAN_RELEASE(p) ((void)(p))
#endif

#endif /* ST_RCU_H */
