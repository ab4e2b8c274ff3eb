/* SPDX-License-Identifier: MIT */
/*
 * formats.h - what the readers (read/) and writers (write/) of
 * libshardtrie-formats share.  Formats are built on the public API alone
 * (shardtrie.h): no core header is visible from here.
 */
#ifndef ST_FORMATS_H
#define ST_FORMATS_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "shardtrie.h"

#define ST_LIKELY(x) __builtin_expect(!!(x), 1)
#define ST_UNLIKELY(x) __builtin_expect(!!(x), 0)

#endif /* ST_FORMATS_H */
