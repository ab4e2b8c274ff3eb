/* SPDX-License-Identifier: MIT */
/*
 * rcu.c - which liburcu flavour the engine uses, and thread registration.
 *
 * We use urcu-memb: its read-side lock is a thread-local counter update with
 * only a compiler barrier (the grace-period side uses membarrier(2) to order
 * readers), which is what an ingest path that takes a read-side section per
 * batch can afford.  urcu-memb needs every reader thread registered; the
 * engine's entry points that read call st_rcu_thread_online(), which
 * registers the caller once and unregisters it when the thread exits
 * (a pthread key destructor), so users never see the requirement.
 */
#include <pthread.h>
#include <stdlib.h>

#include "core.h"
#include "rcu.h"

static pthread_key_t reg_key;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static _Thread_local bool registered;

static void unregister_at_exit(void *arg)
{
	(void)arg;
	if (registered) {
		urcu_memb_unregister_thread();
		registered = false;
	}
}

static void make_key(void)
{
	pthread_key_create(&reg_key, unregister_at_exit);
}

void st_rcu_thread_online(void)
{
	if (ST_LIKELY(registered))
		return;
	pthread_once(&reg_once, make_key);
	urcu_memb_register_thread();
	registered = true;
	/* Any non-NULL value makes the destructor run at thread exit. */
	pthread_setspecific(reg_key, (void *)1);
}

#ifdef ST_TSAN

/*
 * T2/T3 of rcu.h: a call_rcu() seen by ThreadSanitizer.  The trampoline is
 * allocated with malloc, not st_malloc, so the engine's allocations (and
 * st_alloc_fail_after() counts) are the same in every build.  Without
 * memory the callback is queued directly: then TSan may report a false
 * race on it, but no real one is hidden.
 */
struct tsan_cb {
	struct rcu_head rcu;
	struct rcu_head *head;
	void (*fn)(struct rcu_head *);
};

/* Released by every callback after it ran; acquired by st_rcu_barrier(). */
static char callbacks_done;

static void tsan_trampoline(struct rcu_head *r)
{
	struct tsan_cb *c = caa_container_of(r, struct tsan_cb, rcu);
	__tsan_acquire(c);
	c->fn(c->head);
	__tsan_release(&callbacks_done);
	free(c);
}

void st_rcu_call_tsan(struct rcu_head *head, void (*fn)(struct rcu_head *))
{
	struct tsan_cb *c = malloc(sizeof(*c));
	if (!c) {
		urcu_memb_call_rcu(head, fn);
		return;
	}
	c->head = head;
	c->fn = fn;
	__tsan_release(c);
	urcu_memb_call_rcu(&c->rcu, tsan_trampoline);
}

void st_rcu_barrier_tsan(void)
{
	urcu_memb_barrier();
	__tsan_acquire(&callbacks_done);
}
#endif
