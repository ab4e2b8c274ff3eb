/* SPDX-License-Identifier: MIT */
/*
 * tool.h - what the user-side files of `record io` share (inside bpf/io/):
 *   iotrace.c   the tracer: consumers, fd paths, st_trace_io()
 *   order.c     the field order in force, its swap and the decode step
 *               (order.h; no libbpf)
 *   flood.c     --flood: synthetic load through BPF_PROG_TEST_RUN
 *   selftest.c  --selftest: the pairing code through BPF_PROG_TEST_RUN
 */
#ifndef ST_BPF_IO_TOOL_H
#define ST_BPF_IO_TOOL_H

#include "../common/runner.h"

struct iotrace_bpf;

/* iotrace_bpf__open(), kept in iotrace.c alone so that the BPF object is
 * embedded in the binary once. */
struct iotrace_bpf *st_io_skel_open(void);

/* Feed `rate` synthetic paired calls/s on fd (taken and closed; -1 with
 * errno set when opening it failed) through program prog_fd (raw_tp
 * io_flood) from one pinned feeder per CPU this process may run on, while
 * st_rec_wait(r, duration) runs; print what was offered.  The consumers are
 * running.  Prints what failed and returns an exit code, or 0. */
int st_io_flood(struct st_rec *r, int prog_fd, int fd, double rate, double duration);

#endif
