/* SPDX-License-Identifier: MIT */
/*
 * symbolize.h - addresses -> frame names for `record cpu`.
 *
 * Kernel: /proc/kallsyms loaded once, sorted, then read-only (shared by
 * every consumer thread without locks); names carry the "_[k]" suffix.
 * User: which file and offset an address was at comes from mappings.c; one
 * st_usyms per consumer thread (no sharing, no locks) holds per binary its
 * ELF symbol tables (.symtab, else .dynsym, else the build-id debug file)
 * through libelf.  Returned names stay valid until the cache is freed.  An
 * offset in a file without a symbol for it is "[basename]" (as
 * stackcollapse-perf.pl shows perf's [unknown]).
 */
#ifndef ST_BPF_SYMBOLIZE_H
#define ST_BPF_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

struct st_ksyms;
/* NULL and errno set (EPERM when addresses are hidden by kptr_restrict). */
struct st_ksyms *st_ksyms_load(void);
void st_ksyms_free(struct st_ksyms *k);
/* "name_[k]", or "[unknown]_[k]" outside every symbol. */
const char *st_ksyms_find(const struct st_ksyms *k, uint64_t addr);
size_t st_ksyms_count(const struct st_ksyms *k);

struct st_usyms;
struct st_usyms *st_usyms_new(void);
void st_usyms_free(struct st_usyms *u);
/* The function at file offset `off` of the file at `path` (opened through
 * /proc/PID/root when not found as is: another mount namespace). */
const char *st_usyms_file_sym(struct st_usyms *u, const char *path, uint32_t pid, uint64_t off);

#endif
