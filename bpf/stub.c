/* SPDX-License-Identifier: MIT */
/*
 * stub.c - the tracer API (tracer.h) when the build had no BPF toolchain or
 * no kernel BTF (bpf/module.mk's BPF_MISSING): st_trace_missing() says what
 * was missing, for the caller to print; the tracers do nothing.
 */
#include "tracer.h"

const char *st_trace_missing(void)
{
	return ST_BPF_MISSING;
}

int st_trace_cpu(const struct st_trace_cpu_cfg *cfg, const struct st_trace_sink *sink)
{
	(void)cfg;
	(void)sink;
	return ST_TRACE_SOFTWARE;
}

int st_trace_io(const struct st_trace_io_cfg *cfg, const struct st_trace_sink *sink)
{
	(void)cfg;
	(void)sink;
	return ST_TRACE_SOFTWARE;
}

int st_trace_io_selftest(const char *prog)
{
	(void)prog;
	return ST_TRACE_SOFTWARE;
}
