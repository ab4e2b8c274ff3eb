/* SPDX-License-Identifier: MIT */
/*
 * symbolize.c - kallsyms and ELF symbol tables, cached.
 *
 *   st_usyms (one per consumer thread)
 *     (path, file offset) from mappings.c
 *     bins[hash(path) % NB] --> bin { syms[] sorted by addr, PT_LOAD[] }
 *
 * Invariants: a bin is loaded once per path and never changes, so a name
 * pointer handed out lives until st_usyms_free().
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "symbolize.h"

static const char unknown[] = "[unknown]";

struct sym {
	uint64_t addr, size;
	const char *name;
};

static int sym_cmp(const void *a, const void *b)
{
	const struct sym *x = a, *y = b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Last symbol with addr <= a, or NULL. */
static const struct sym *sym_find(const struct sym *s, size_t n, uint64_t a)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s[mid].addr <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? &s[lo - 1] : NULL;
}

/* Names: ';' would split a folded frame, so it becomes ':' as in
 * stackcollapse-perf.pl. */
static char *name_dup(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = suffix ? strlen(suffix) : 0;
	char *d = malloc(a + b + 1);
	if (!d)
		return NULL;
	for (size_t i = 0; i < a; i++)
		d[i] = s[i] == ';' ? ':' : s[i];
	if (b)
		memcpy(d + a, suffix, b);
	d[a + b] = 0;
	return d;
}

/* ------------------------------------------------------------ kernel */

struct st_ksyms {
	struct sym *s;
	size_t n;
};

struct st_ksyms *st_ksyms_load(void)
{
	FILE *f = fopen("/proc/kallsyms", "re");
	if (!f)
		return NULL;
	struct st_ksyms *k = calloc(1, sizeof(*k));
	size_t cap = 0;
	char line[512];
	bool nonzero = false;
	while (k && fgets(line, sizeof(line), f)) {
		unsigned long long addr;
		char type, name[256];
		if (sscanf(line, "%llx %c %255s", &addr, &type, name) != 3)
			continue;
		if (addr)
			nonzero = true;
		if (type != 't' && type != 'T' && type != 'w' && type != 'W')
			continue;
		if (k->n == cap) {
			cap = cap ? cap * 2 : 65536;
			struct sym *ns = realloc(k->s, cap * sizeof(*ns));
			if (!ns)
				goto nomem;
			k->s = ns;
		}
		char *nm = name_dup(name, "_[k]");
		if (!nm)
			goto nomem;
		k->s[k->n++] = (struct sym){ addr, 0, nm };
	}
	fclose(f);
	if (!k)
		return NULL;
	if (!nonzero) {
		st_ksyms_free(k);
		errno = EPERM;
		return NULL;
	}
	qsort(k->s, k->n, sizeof(*k->s), sym_cmp);
	return k;
nomem:
	fclose(f);
	st_ksyms_free(k);
	errno = ENOMEM;
	return NULL;
}

void st_ksyms_free(struct st_ksyms *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->n; i++)
		free((char *)k->s[i].name);
	free(k->s);
	free(k);
}

size_t st_ksyms_count(const struct st_ksyms *k)
{
	return k ? k->n : 0;
}

const char *st_ksyms_find(const struct st_ksyms *k, uint64_t addr)
{
	const struct sym *s = k ? sym_find(k->s, k->n, addr) : NULL;
	return s ? s->name : "[unknown]_[k]";
}

/* ------------------------------------------------------------ user */

#define NB 1024

struct load {
	uint64_t vaddr, off, filesz;
};

struct bin {
	struct bin *next;
	char *path;
	char *module; /* "[basename]" */
	struct sym *s;
	size_t n;
	struct load *ld;
	size_t nld;
};

struct st_usyms {
	struct bin *bins[NB];
};

static unsigned hash_str(const char *s)
{
	unsigned h = 2166136261u;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

static bool elf_has_symtab(Elf *elf)
{
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_SYMTAB)
			return true;
	}
	return false;
}

/* The GNU build-id as hex, for /usr/lib/debug/.build-id/xx/yyyy.debug. */
static bool elf_build_id(Elf *elf, char *hex, size_t n)
{
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		size_t off = 0, noff, doff;
		GElf_Nhdr nh;
		while (d && (off = gelf_getnote(d, off, &nh, &noff, &doff)) > 0) {
			if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
			    memcmp((char *)d->d_buf + noff, "GNU", 4) || nh.n_descsz * 2 + 1 > n)
				continue;
			const unsigned char *id = (const unsigned char *)d->d_buf + doff;
			for (size_t i = 0; i < nh.n_descsz; i++)
				snprintf(hex + 2 * i, 3, "%02x", id[i]);
			return nh.n_descsz > 1;
		}
	}
	return false;
}

static void elf_symbols(Elf *elf, struct bin *b, size_t *cap)
{
	Elf_Scn *scn = NULL;
	bool have_symtab = false;
	while ((scn = elf_nextscn(elf, scn)))
	{
		GElf_Shdr sh;
		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_SYMTAB)
			have_symtab = true;
	}
	scn = NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type != (have_symtab ? SHT_SYMTAB : SHT_DYNSYM) || !sh.sh_entsize)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		size_t cnt = sh.sh_size / sh.sh_entsize;
		for (size_t i = 0; d && i < cnt; i++) {
			GElf_Sym sym;
			if (!gelf_getsym(d, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
			    !sym.st_value || sym.st_shndx == SHN_UNDEF)
				continue;
			const char *nm = elf_strptr(elf, sh.sh_link, sym.st_name);
			if (!nm || !*nm)
				continue;
			if (b->n == *cap) {
				*cap = *cap ? *cap * 2 : 256;
				struct sym *ns = realloc(b->s, *cap * sizeof(*ns));
				if (!ns)
					return;
				b->s = ns;
			}
			char *d2 = name_dup(nm, NULL);
			if (!d2)
				return;
			b->s[b->n++] = (struct sym){ sym.st_value, sym.st_size, d2 };
		}
	}
}

/* "[basename]", with ';' made ':' (a frame separator in folded output). */
static char *module_name(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t bl = strlen(base);
	char *m = malloc(bl + 3);
	if (!m)
		return NULL;
	m[0] = '[';
	memcpy(m + 1, base, bl);
	memcpy(m + 1 + bl, "]", 2);
	for (char *p = m; *p; p++)
		if (*p == ';')
			*p = ':';
	return m;
}

static int open_binary(const char *path, uint32_t pid)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		/* Another mount namespace (a container): go through its root. */
		char alt[PATH_MAX];
		snprintf(alt, sizeof(alt), "/proc/%u/root%s", pid, path);
		fd = open(alt, O_RDONLY | O_CLOEXEC);
	}
	return fd;
}

/* The PT_LOAD segments, for file offset -> address. */
static void load_segments(Elf *elf, struct bin *b)
{
	size_t nph = 0;
	if (elf_getphdrnum(elf, &nph) != 0 || !nph)
		return;
	b->ld = calloc(nph, sizeof(*b->ld));
	for (size_t i = 0; b->ld && i < nph; i++) {
		GElf_Phdr ph;
		if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD)
			b->ld[b->nld++] = (struct load){ ph.p_vaddr, ph.p_offset, ph.p_filesz };
	}
}

/* The symbols of elf, or of its detached debug file when elf is stripped
 * (Debian's -dbg packages), sorted. */
static void load_symbols(Elf *elf, struct bin *b)
{
	size_t cap = 0;
	char id[128];
	int dfd = -1;
	Elf *dbg = NULL;
	if (!elf_has_symtab(elf) && elf_build_id(elf, id, sizeof(id))) {
		char fn[PATH_MAX];
		snprintf(fn, sizeof(fn), "/usr/lib/debug/.build-id/%.2s/%s.debug", id, id + 2);
		dfd = open(fn, O_RDONLY | O_CLOEXEC);
		if (dfd >= 0)
			dbg = elf_begin(dfd, ELF_C_READ_MMAP, NULL);
	}
	if (dbg && elf_kind(dbg) == ELF_K_ELF && elf_has_symtab(dbg))
		elf_symbols(dbg, b, &cap);
	else
		elf_symbols(elf, b, &cap);
	if (dbg)
		elf_end(dbg);
	if (dfd >= 0)
		close(dfd);
	if (b->n)
		qsort(b->s, b->n, sizeof(*b->s), sym_cmp);
}

static struct bin *bin_load(const char *path, uint32_t pid)
{
	struct bin *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->path = strdup(path);
	b->module = module_name(path);
	int fd = open_binary(path, pid);
	if (fd < 0)
		return b;
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (elf && elf_kind(elf) == ELF_K_ELF) {
		load_segments(elf, b);
		load_symbols(elf, b);
	}
	if (elf)
		elf_end(elf);
	close(fd);
	return b;
}

static struct bin *bin_get(struct st_usyms *u, const char *path, uint32_t pid)
{
	unsigned h = hash_str(path) % NB;
	for (struct bin *b = u->bins[h]; b; b = b->next)
		if (!strcmp(b->path, path))
			return b;
	struct bin *b = bin_load(path, pid);
	if (!b || !b->path) {
		free(b);
		return NULL;
	}
	b->next = u->bins[h];
	u->bins[h] = b;
	return b;
}

struct st_usyms *st_usyms_new(void)
{
	if (elf_version(EV_CURRENT) == EV_NONE)
		return NULL;
	return calloc(1, sizeof(struct st_usyms));
}

void st_usyms_free(struct st_usyms *u)
{
	if (!u)
		return;
	for (int i = 0; i < NB; i++) {
		for (struct bin *b = u->bins[i], *n; b; b = n) {
			n = b->next;
			for (size_t j = 0; j < b->n; j++)
				free((char *)b->s[j].name);
			free(b->s);
			free(b->ld);
			free(b->module);
			free(b->path);
			free(b);
		}
	}
	free(u);
}

const char *st_usyms_file_sym(struct st_usyms *u, const char *path, uint32_t pid, uint64_t off)
{
	const struct bin *b = bin_get(u, path, pid);
	if (!b)
		return unknown;
	if (!b->n)
		return b->module ? b->module : unknown;
	uint64_t va = off;
	for (size_t i = 0; i < b->nld; i++)
		if (off >= b->ld[i].off && off < b->ld[i].off + b->ld[i].filesz) {
			va = off - b->ld[i].off + b->ld[i].vaddr;
			break;
		}
	const struct sym *s = sym_find(b->s, b->n, va);
	if (!s || (s->size && va >= s->addr + s->size))
		return b->module ? b->module : unknown;
	return s->name;
}
