/* SPDX-License-Identifier: MIT */
/*
 * record.c - `shardtrie record cpu|io`: dispatch to the BPF tracers
 * (bpf/cpu/profile.c, bpf/io/iotrace.c; docs/bpf.md).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int st_record_cpu(int argc, char **argv);
int st_record_io(int argc, char **argv);

int cmd_record(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "cpu"))
		return st_record_cpu(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "io"))
		return st_record_io(argc - 1, argv + 1);
	FILE *f = argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? stdout : stderr;
	fprintf(f, "usage: shardtrie record cpu|io [OPTIONS] [-- COMMAND ARGS...]\n"
		   "  cpu   sample on-CPU stacks (perf events + BPF)\n"
		   "  io    trace file I/O syscalls (syscall tracepoints + BPF)\n"
		   "'shardtrie record cpu --help' for the options.\n");
	return f == stdout ? EX_OK_ : EX_USAGE_;
}
