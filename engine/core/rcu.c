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
