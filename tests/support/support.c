/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/support.h"

static char *dump(int (*fn)(const void *, FILE *), const void *arg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fn(arg, f);
	fclose(f);
	return buf;
}

static int snap_fn(const void *a, FILE *f) { return st_snap_dump(a, f); }
static int ref_fn(const void *a, FILE *f) { return st_ref_dump((struct st_ref *)a, f); }

char *ts_dump_snap(const struct st_snap *s) { return dump(snap_fn, s); }
char *ts_dump_ref(struct st_ref *r) { return dump(ref_fn, r); }

char *ts_flush_dump(struct st_engine *e)
{
	st_flush(e);
	struct st_snap *s = st_snap_acquire(e);
	char *d = ts_dump_snap(s);
	st_snap_release(s);
	return d;
}

uint64_t ts_root_total(struct st_engine *e, unsigned metric)
{
	struct st_snap *s = st_snap_acquire(e);
	uint64_t t = st_snap_total(s, ST_NODE_ROOT, metric);
	st_snap_release(s);
	return t;
}

void ts_assert_matches_ref(struct st_engine *e, struct st_ref *r, const char *fmt, ...)
{
	char where[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(where, sizeof(where), fmt, ap);
	va_end(ap);
	st_ref_flush(r);
	char *de = ts_flush_dump(e), *dr = ts_dump_ref(r);
	cr_assert_str_eq(de, dr, "%s", where);
	free(de);
	free(dr);
}

uint64_t ts_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

char *ts_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t n = 0, cap = 0, r;
	do {
		if (n + 65536 + 1 > cap) {
			cap = (n + 65536 + 1) * 2;
			buf = realloc(buf, cap);
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
	} while (r > 0);
	fclose(f);
	buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

int ts_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t w = fwrite(data, 1, len, f);
	return fclose(f) || w != len ? -1 : 0;
}

void ts_tmpdir(char *buf, size_t n)
{
	snprintf(buf, n, "/tmp/shardtrie-test.XXXXXX");
	if (!mkdtemp(buf))
		buf[0] = 0;
}

char ts_dir[256];

void ts_dir_init(void)
{
	ts_tmpdir(ts_dir, sizeof(ts_dir));
	if (!ts_dir[0])
		abort(); /* no scratch directory: nothing can run */
}

enum { MAX_GROUPS = 32 };
static int groups[MAX_GROUPS];
static unsigned ngroups;

void ts_track_group(int pgid)
{
	if (ngroups < MAX_GROUPS)
		groups[ngroups++] = pgid;
}

void ts_dir_fini(void)
{
	/* Groups already gone (the test stopped them) give ESRCH: harmless. */
	for (unsigned i = 0; i < ngroups; i++)
		if (groups[i] > 1)
			kill(-groups[i], SIGKILL);
	ngroups = 0;
	ts_run("rm -rf '%s'", ts_dir);
}

const char *ts_path(const char *name)
{
	static char buf[8][512];
	static int k;
	char *b = buf[k++ & 7];
	snprintf(b, sizeof(buf[0]), "%s/%s", ts_dir, name);
	return b;
}

int ts_run(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

struct st_engine *ts_engine_no_merger(unsigned nshards)
{
	struct st_options so;
	st_options_init(&so);
	so.merge_interval_ms = 0;
	so.nshards = nshards;
	struct st_engine *e = st_engine_create(&so);
	cr_assert(e, "st_engine_create: %s", strerror(errno));
	return e;
}

void ts_need_bpf(const char *what)
{
	if (geteuid() != 0)
		cr_skip_test("%s needs root (or CAP_BPF+CAP_PERFMON): running as uid %u", what,
			     geteuid());
	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
		cr_skip_test("kernel has no BTF (/sys/kernel/btf/vmlinux): CO-RE tracers cannot run");
	int rc = ts_run("'%s' record io --selftest >/dev/null 2>'%s'", ST_TEST_CLI,
			ts_path("probe.err"));
	if (rc != 0) {
		char *err = ts_read_file(ts_path("probe.err"), NULL);
		cr_skip_test("BPF unusable here (record io --selftest exit %d): %s", rc, err ? err : "");
	}
}
