/* SPDX-License-Identifier: MIT */
/* fuzz_fmt_svg.c - the svg writer on random tries (see fmt_common.h). */
#include "fmt_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fmt_fuzz(data, size, ST_FMT_SVG);
}
