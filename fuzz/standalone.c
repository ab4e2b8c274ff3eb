/* SPDX-License-Identifier: MIT */
/*
 * standalone.c - replay fuzz inputs without libFuzzer.
 *
 *   replay_<target> FILE|DIR...
 *
 * Runs LLVMFuzzerTestOneInput() once per file (directories: every regular
 * file in them, in name order, so runs are reproducible).  Linked with each
 * target by fuzz/module.mk and built with the configured compiler (gcc by
 * default), so `make test` replays the checked-in corpora under gcc and
 * `make test SANITIZE=address,undefined` under gcc's sanitizers too.  A broken
 * property aborts, exactly as under libFuzzer.  Each input is copied into a
 * buffer of exactly its size so that an out-of-bounds read can trip ASan.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support/fz.h"

/* Optional in a target, as in libFuzzer. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t cap = 4096, n = 0, r;
	uint8_t *buf = malloc(cap);
	while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			uint8_t *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				buf = NULL;
			} else {
				buf = nb;
			}
		}
	}
	int err = ferror(f);
	fclose(f);
	if (!buf || err) {
		fprintf(stderr, "replay: %s: read failed\n", path);
		free(buf);
		return -1;
	}
	uint8_t *exact = malloc(n ? n : 1);
	if (!exact) {
		free(buf);
		return -1;
	}
	memcpy(exact, buf, n);
	free(buf);
	LLVMFuzzerTestOneInput(exact, n);
	free(exact);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path, size_t *count)
{
	struct stat st;
	if (stat(path, &st)) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(*count)++;
		return run_file(path);
	}
	DIR *d = opendir(path);
	if (!d) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	char **names = NULL;
	size_t nn = 0, cap = 0;
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (nn == cap) {
			char **p = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*p));
			if (!p) {
				rc = -1;
				break;
			}
			names = p;
		}
		size_t len = strlen(path) + 1 + strlen(de->d_name) + 1;
		if (!(names[nn] = malloc(len))) {
			rc = -1;
			break;
		}
		snprintf(names[nn++], len, "%s/%s", path, de->d_name);
	}
	closedir(d);
	if (nn)
		qsort(names, nn, sizeof(*names), cmp_str);
	for (size_t i = 0; i < nn; i++) {
		if (!rc && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
			(*count)++;
			rc = run_file(names[i]);
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	size_t count = 0;
	for (int i = 1; i < argc; i++)
		if (run_path(argv[i], &count))
			return 1;
	printf("%s: %zu inputs replayed, all properties held\n", argv[0], count);
	return 0;
}
