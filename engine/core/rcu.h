/* SPDX-License-Identifier: MIT */
/*
 * rcu.h - the liburcu flavour the core uses (urcu-memb: no signals, readers
 * pay one compiler barrier thanks to membarrier) and implicit registration.
 *
 * Under -fsanitize=thread (only there: ST_TSAN) this header also tells
 * ThreadSanitizer the happens-before edges liburcu makes but TSan cannot
 * see, because liburcu is not instrumented (docs/testing.md):
 *   T1. Publication.  rcu_xchg_pointer()/rcu_set_pointer() are inline-asm
 *       xchg/mov in liburcu; here they become the same operations as
 *       __atomic builtins (seq_cst xchg, release store), which TSan sees.
 *       rcu_dereference() is already an __atomic consume load (C11), so a
 *       reader that dereferences a published pointer is ordered after
 *       everything its publisher wrote before publishing -- exactly the
 *       guarantee liburcu gives, no more.
 *   T2. call_rcu().  The callback runs on liburcu's call_rcu thread after a
 *       hand-over TSan cannot see; st_call_rcu() goes through a trampoline
 *       (rcu.c) that releases before call_rcu() and acquires in the
 *       callback: the caller's writes happen before the callback.
 *   T3. rcu_barrier().  Every callback releases one sync object after it
 *       ran; st_rcu_barrier() acquires it on return.
 *   T4. The grace period of synchronize_rcu() is NOT told globally (that
 *       would also order read-side sections that began after the grace
 *       period started, and hide races).  Each use says what it hands over:
 *       TSAN_RELEASE()/TSAN_ACQUIRE() on the shard table (rule E1,
 *       docs/concurrency.md, writer.c and merger.c).
 * Nothing else is annotated, so two writers on one table, a write to a
 * published snapshot or a free while a reader holds it are still reported.
 */
#ifndef ST_RCU_H
#define ST_RCU_H

#include <urcu/urcu-memb.h>
#include <urcu/pointer.h>

/* Register the calling thread with urcu-memb once; unregistered at exit. */
void st_rcu_thread_online(void);
#define st_rcu_read_lock() urcu_memb_read_lock()
#define st_rcu_read_unlock() urcu_memb_read_unlock()
#define st_rcu_synchronize() urcu_memb_synchronize_rcu()

/* gcc defines __SANITIZE_THREAD__; clang (before 18) only has the feature. */
#if defined(__SANITIZE_THREAD__)
#define ST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ST_TSAN 1
#endif
#endif

#ifdef ST_TSAN
#include <sanitizer/tsan_interface.h>
#define TSAN_ACQUIRE(p) __tsan_acquire(p)
#define TSAN_RELEASE(p) __tsan_release(p)

/* T1: the same memory orders as liburcu's x86 asm, as builtins TSan sees. */
#undef rcu_xchg_pointer
#define rcu_xchg_pointer(p, v)                                                                     \
	__extension__({                                                                            \
		__typeof__(*(p)) st_tsan_v_ = (v);                                                 \
		__atomic_exchange_n((p), st_tsan_v_, __ATOMIC_SEQ_CST);                            \
	})
#undef rcu_set_pointer
#define rcu_set_pointer(p, v)                                                                      \
	do {                                                                                       \
		__typeof__(*(p)) st_tsan_v_ = (v);                                                 \
		__atomic_store_n((p), st_tsan_v_, __ATOMIC_RELEASE);                               \
	} while (0)
#undef rcu_cmpxchg_pointer
#define rcu_cmpxchg_pointer(p, old, v)                                                             \
	__extension__({                                                                            \
		__typeof__(*(p)) st_tsan_o_ = (old), st_tsan_v_ = (v);                             \
		__atomic_compare_exchange_n((p), &st_tsan_o_, st_tsan_v_, 0, __ATOMIC_SEQ_CST,     \
					    __ATOMIC_SEQ_CST);                                     \
		st_tsan_o_;                                                                        \
	})

/* T2, T3 (rcu.c). */
void st_rcu_call_tsan(struct rcu_head *head, void (*fn)(struct rcu_head *));
void st_rcu_barrier_tsan(void);
#define st_call_rcu(head, fn) st_rcu_call_tsan((head), (fn))
#define st_rcu_barrier() st_rcu_barrier_tsan()
#else
#define TSAN_ACQUIRE(p) ((void)(p))
#define TSAN_RELEASE(p) ((void)(p))
#define st_call_rcu(head, fn) urcu_memb_call_rcu((head), (fn))
#define st_rcu_barrier() urcu_memb_barrier()
#endif

#endif /* ST_RCU_H */
