/* SPDX-License-Identifier: MIT */
/* record_stub.c - `shardtrie record` when the build had no BPF toolchain or
 * no kernel BTF: say what was missing. */
#include <stdio.h>

#include "cli.h"

int cmd_record(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "%s record: built without BPF support (missing at build time: %s);\n"
			"  install them (make deps) on a kernel with BTF and rebuild\n",
		st_prog, ST_BPF_MISSING);
	return EX_SOFTWARE_;
}
