/* SPDX-License-Identifier: MIT */
/*
 * order.h - the run side of record io's field order (order.c; the caller's
 * side, st_io_order_new/get/set/free, is in ../tracer.h).  No libbpf: the
 * tests drive the decode step and the swap without a kernel.
 *
 *   main thread      st_io_order_attach(o, engine, ncons)   before the consumers start
 *   consumer i       st_io_order_online(o, i)               on its thread, first
 *                    st_io_order_ingest(slot, ...)          per event: frames in the
 *                                                           order in force, ingested
 *                    st_io_order_quiet(slot)                after each pass over its ring
 *                    st_io_order_offline(slot)              after its last ingest
 *   main thread      st_io_order_detach(o)                  consumers joined
 *   any thread       st_io_order_set(o, ...)                swap, wait, reset (order.c)
 */
#ifndef ST_BPF_IO_ORDER_H
#define ST_BPF_IO_ORDER_H

#include <stddef.h>

#include "../common/decode.h"
#include "../tracer.h"
#include "shardtrie.h"

struct st_io_order_slot;

/* Bind o to a run: set() now resets e and waits for the nslots consumers.
 * 0 or -ENOMEM.  o must not be attached already. */
int st_io_order_attach(struct st_io_order *o, struct st_engine *e, unsigned nslots);
/* Unbind (every consumer offline or never started; the engine may be gone). */
void st_io_order_detach(struct st_io_order *o);
/* Consumer i (< nslots) comes online: its slot. */
struct st_io_order_slot *st_io_order_online(struct st_io_order *o, unsigned i);
/* The consumer holds no stack of an older order: between passes. */
void st_io_order_quiet(struct st_io_order_slot *s);
/* The consumer ingests nothing more. */
void st_io_order_offline(struct st_io_order_slot *s);

/*
 * The decode step of one event: its frames in the order in force (built
 * into *fr by st_io_frames_build with path/path_len), its ST_IOM_N values,
 * ingested through w.  Returns st_writer_ingest_strs()'s result.
 */
int st_io_order_ingest(struct st_io_order_slot *s, struct st_writer *w, const struct st_io_rec *r,
		       const char *path, size_t path_len, struct st_io_frames *fr);

/* How long set() waits for the consumers (default 10000 ms; tests). */
void st_io_order_set_wait_ms(struct st_io_order *o, unsigned ms);

#endif
