/* SPDX-License-Identifier: MIT */
/*
 * decode.c - ring-buffer records -> validated structs -> frames.
 *
 * Everything here runs on the consumer threads for every event, so it
 * allocates nothing and copies only the io header; and it sees bytes that a
 * kernel program wrote, so every length is checked against the record size
 * before use (fuzz/fuzz_ringbuf.c drives it with arbitrary bytes).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <string.h>

#include "decode.h"

int st_prof_decode(const void *data, size_t size, struct st_prof_rec *out)
{
	const struct st_prof_sample *s = data;
	if (!data || size < sizeof(*s) || s->magic != PROFILE_MAGIC)
		return -EINVAL;
	int ks = s->kstack_sz, us = s->ustack_sz;
	if (ks > (int)sizeof(s->kstack) || us > (int)sizeof(s->ustack))
		return -EINVAL;
	out->s = s;
	out->nk = ks > 0 ? (unsigned)ks / 8 : 0;
	out->nu = us > 0 ? (unsigned)us / 8 : 0;
	return 0;
}

/* The sample_id_all trailer of PERF_SAMPLE_TID | PERF_SAMPLE_TIME. */
#define PMAP_TRAILER 16u

static uint32_t rd32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t rd64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

int st_pmap_decode(const void *data, size_t size, struct st_pmap_rec *out)
{
	const unsigned char *p = data;
	struct perf_event_header h;
	if (!data || size < sizeof(h) + PMAP_TRAILER)
		return -EINVAL;
	memcpy(&h, p, sizeof(h));
	if (h.size != size)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	size_t body = size - PMAP_TRAILER; /* end of the type's own fields */
	out->time = rd64(p + size - 8);
	switch (h.type) {
	case PERF_RECORD_MMAP2:
		/* pid tid addr len pgoff, maj min ino ino_gen (or build id), prot flags, name */
		if (body < 72)
			return -EINVAL;
		out->kind = ST_PMAP_MMAP;
		out->pid = rd32(p + 8);
		out->tid = rd32(p + 12);
		out->addr = rd64(p + 16);
		out->len = rd64(p + 24);
		out->pgoff = rd64(p + 32);
		out->prot = rd32(p + 64);
		out->name = (const char *)p + 72;
		out->name_len = strnlen(out->name, body - 72);
		return 0;
	case PERF_RECORD_COMM:
		if (body < 16)
			return -EINVAL;
		out->kind = (h.misc & PERF_RECORD_MISC_COMM_EXEC) ? ST_PMAP_EXEC : ST_PMAP_OTHER;
		out->pid = rd32(p + 8);
		out->tid = rd32(p + 12);
		return 0;
	case PERF_RECORD_FORK:
	case PERF_RECORD_EXIT:
		if (body < 32)
			return -EINVAL;
		out->kind = h.type == PERF_RECORD_FORK ? ST_PMAP_FORK : ST_PMAP_EXIT;
		out->pid = rd32(p + 8);
		out->ppid = rd32(p + 12);
		out->tid = rd32(p + 16);
		out->ptid = rd32(p + 20);
		return 0;
	case PERF_RECORD_LOST:
		if (body < 24)
			return -EINVAL;
		out->kind = ST_PMAP_LOST;
		out->lost = rd64(p + 16);
		return 0;
	default:
		out->kind = ST_PMAP_OTHER;
		return 0;
	}
}

int st_io_decode(const void *data, size_t size, struct st_io_rec *out)
{
	if (!data || size < IO_EVENT_HDR)
		return -EINVAL;
	memcpy(&out->h, data, IO_EVENT_HDR);
	if (out->h.magic != IO_MAGIC || out->h.op == IO_OP_NONE || out->h.op >= IO_OP_COUNT_)
		return -EINVAL;
	if (out->h.path_len > size - IO_EVENT_HDR || out->h.path_len >= IO_PATH_MAX)
		return -EINVAL;
	out->path = out->h.path_len ? (const char *)data + IO_EVENT_HDR : NULL;
	out->path_len = out->h.path_len;
	/* A path read with bpf_probe_read_*_str may end early at a NUL. */
	if (out->path) {
		const char *nul = memchr(out->path, 0, out->path_len);
		if (nul)
			out->path_len = (size_t)(nul - out->path);
		if (!out->path_len)
			out->path = NULL;
	}
	return 0;
}

static const char *const op_names[IO_OP_COUNT_] = {
	[IO_OP_OPEN] = "open", [IO_OP_OPENAT] = "openat", [IO_OP_OPENAT2] = "openat2",
	[IO_OP_CREAT] = "creat", [IO_OP_READ] = "read", [IO_OP_WRITE] = "write",
	[IO_OP_PREAD64] = "pread64", [IO_OP_PWRITE64] = "pwrite64", [IO_OP_READV] = "readv",
	[IO_OP_WRITEV] = "writev", [IO_OP_CLOSE] = "close", [IO_OP_FSYNC] = "fsync",
	[IO_OP_FDATASYNC] = "fdatasync", [IO_OP_LSEEK] = "lseek", [IO_OP_NEWFSTAT] = "newfstat",
	[IO_OP_NEWFSTATAT] = "newfstatat", [IO_OP_STATX] = "statx", [IO_OP_RENAME] = "rename",
	[IO_OP_RENAMEAT] = "renameat", [IO_OP_RENAMEAT2] = "renameat2", [IO_OP_UNLINK] = "unlink",
	[IO_OP_UNLINKAT] = "unlinkat", [IO_OP_MKDIR] = "mkdir", [IO_OP_MKDIRAT] = "mkdirat",
	[IO_OP_GETDENTS64] = "getdents64",
};

static const char *const tp_names[IO_OP_COUNT_] = {
#define TPN(op, n) [op] = "sys_enter_" n
	TPN(IO_OP_OPEN, "open"), TPN(IO_OP_OPENAT, "openat"), TPN(IO_OP_OPENAT2, "openat2"),
	TPN(IO_OP_CREAT, "creat"), TPN(IO_OP_READ, "read"), TPN(IO_OP_WRITE, "write"),
	TPN(IO_OP_PREAD64, "pread64"), TPN(IO_OP_PWRITE64, "pwrite64"), TPN(IO_OP_READV, "readv"),
	TPN(IO_OP_WRITEV, "writev"), TPN(IO_OP_CLOSE, "close"), TPN(IO_OP_FSYNC, "fsync"),
	TPN(IO_OP_FDATASYNC, "fdatasync"), TPN(IO_OP_LSEEK, "lseek"), TPN(IO_OP_NEWFSTAT, "newfstat"),
	TPN(IO_OP_NEWFSTATAT, "newfstatat"), TPN(IO_OP_STATX, "statx"), TPN(IO_OP_RENAME, "rename"),
	TPN(IO_OP_RENAMEAT, "renameat"), TPN(IO_OP_RENAMEAT2, "renameat2"),
	TPN(IO_OP_UNLINK, "unlink"), TPN(IO_OP_UNLINKAT, "unlinkat"), TPN(IO_OP_MKDIR, "mkdir"),
	TPN(IO_OP_MKDIRAT, "mkdirat"), TPN(IO_OP_GETDENTS64, "getdents64"),
#undef TPN
};

const char *st_io_op_name(unsigned op)
{
	return op < IO_OP_COUNT_ ? op_names[op] : NULL;
}

const char *st_io_tracepoint_name(unsigned op)
{
	return op < IO_OP_COUNT_ ? tp_names[op] : NULL;
}

bool st_io_op_is_open(unsigned op)
{
	return op == IO_OP_OPEN || op == IO_OP_OPENAT || op == IO_OP_OPENAT2 || op == IO_OP_CREAT;
}

bool st_io_op_uses_fd(unsigned op)
{
	switch (op) {
	case IO_OP_READ: case IO_OP_WRITE: case IO_OP_PREAD64: case IO_OP_PWRITE64:
	case IO_OP_READV: case IO_OP_WRITEV: case IO_OP_CLOSE: case IO_OP_FSYNC:
	case IO_OP_FDATASYNC: case IO_OP_LSEEK: case IO_OP_NEWFSTAT: case IO_OP_GETDENTS64:
		return true;
	default:
		return false;
	}
}

static bool op_moves_bytes(unsigned op)
{
	switch (op) {
	case IO_OP_READ: case IO_OP_WRITE: case IO_OP_PREAD64: case IO_OP_PWRITE64:
	case IO_OP_READV: case IO_OP_WRITEV:
		return true;
	default:
		return false;
	}
}

static const char *const field_names[ST_IOF_COUNT_] = {
	"comm", "tracepoint", "path", "pid", "tid", "flags",
};

const char *st_io_field_name(unsigned f)
{
	return f < ST_IOF_COUNT_ ? field_names[f] : NULL;
}

#define FIELDS_KNOWN "(known: comm,tracepoint,path,pid,tid,flags)"

/*
 * One value of a field list (p, len; position pos from 1), ior's rules:
 * surrounding blanks trimmed; empty, unknown and repeated names refused.
 * Appends it to fields[*n] and marks it in seen[].  Names are quoted in
 * messages only when they are short and printable (an /order body is
 * anyone's text; the message is one line of an HTTP answer).
 */
static int field_take(const char *p, size_t len, unsigned pos, bool seen[ST_IOF_COUNT_],
		      unsigned char fields[ST_IOF_COUNT_], unsigned *n, char *err, size_t errlen)
{
	while (len && (*p == ' ' || *p == '\t'))
		p++, len--;
	while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (!len) {
		snprintf(err, errlen, "empty value at position %u in the field list", pos);
		return -EINVAL;
	}
	int f = -1;
	for (int i = 0; i < ST_IOF_COUNT_; i++)
		if (strlen(field_names[i]) == len && !memcmp(field_names[i], p, len))
			f = i;
	if (f < 0) {
		bool shown = len <= 32;
		for (size_t i = 0; shown && i < len; i++)
			shown = p[i] >= 0x20 && p[i] < 0x7f;
		if (shown)
			snprintf(err, errlen, "unknown field '%.*s' " FIELDS_KNOWN, (int)len, p);
		else
			snprintf(err, errlen, "unknown field at position %u " FIELDS_KNOWN, pos);
		return -EINVAL;
	}
	if (seen[f]) {
		snprintf(err, errlen, "duplicate field '%s'", field_names[f]);
		return -EINVAL;
	}
	seen[f] = true;
	fields[(*n)++] = (unsigned char)f;
	return 0;
}

int st_io_fields_parse(const char *spec, unsigned char fields[ST_IOF_COUNT_], unsigned *n,
		       char *err, size_t errlen)
{
	*n = 0;
	if (!spec || !*spec) {
		snprintf(err, errlen, "empty field list " FIELDS_KNOWN);
		return -EINVAL;
	}
	bool seen[ST_IOF_COUNT_] = { false };
	for (unsigned pos = 1;; pos++) {
		const char *end = strchr(spec, ',');
		size_t len = end ? (size_t)(end - spec) : strlen(spec);
		if (field_take(spec, len, pos, seen, fields, n, err, errlen))
			return -EINVAL;
		if (!end)
			return 0;
		spec = end + 1;
	}
}

int st_io_fields_from_names(const char *const *names, size_t count,
			    unsigned char fields[ST_IOF_COUNT_], unsigned *n, char *err,
			    size_t errlen)
{
	*n = 0;
	if (!count) {
		snprintf(err, errlen, "empty field list " FIELDS_KNOWN);
		return -EINVAL;
	}
	bool seen[ST_IOF_COUNT_] = { false };
	for (size_t i = 0; i < count; i++)
		if (field_take(names[i], strlen(names[i]), (unsigned)i + 1, seen, fields, n, err,
			       errlen))
			return -EINVAL;
	return 0;
}

const char *const st_io_metric_names[ST_IOM_N] = { "count", "duration_ns", "duration_to_prev_ns", "bytes" };
const char *const st_io_metric_units[ST_IOM_N] = { "calls", "nanoseconds", "nanoseconds", "bytes" };

int st_io_metric_from_name(const char *name)
{
	static const char *const cli[ST_IOM_N] = { "count", "duration", "duration_to_prev", "bytes" };
	for (int i = 0; i < ST_IOM_N; i++)
		if (!strcmp(name, cli[i]) || !strcmp(name, st_io_metric_names[i]))
			return i;
	return -1;
}

void st_io_values(const struct st_io_rec *r, uint64_t v[ST_IOM_N])
{
	v[ST_IOM_COUNT] = 1;
	v[ST_IOM_DURATION] = r->h.dur_ns;
	v[ST_IOM_DURATION_TO_PREV] = r->h.gap_ns;
	v[ST_IOM_BYTES] = op_moves_bytes(r->h.op) && r->h.ret > 0 ? (uint64_t)r->h.ret : 0;
}

size_t st_io_open_flags_str(uint64_t flags, char *buf, size_t n)
{
	static const struct { unsigned long bit; const char *name; } names[] = {
		{ O_CREAT, "O_CREAT" }, { O_EXCL, "O_EXCL" }, { O_NOCTTY, "O_NOCTTY" },
		{ O_TRUNC, "O_TRUNC" }, { O_APPEND, "O_APPEND" }, { O_NONBLOCK, "O_NONBLOCK" },
		{ O_DSYNC, "O_DSYNC" }, { O_DIRECT, "O_DIRECT" }, { O_LARGEFILE, "O_LARGEFILE" },
		{ O_DIRECTORY, "O_DIRECTORY" }, { O_NOFOLLOW, "O_NOFOLLOW" }, { O_NOATIME, "O_NOATIME" },
		{ O_CLOEXEC, "O_CLOEXEC" }, { O_PATH, "O_PATH" }, { O_TMPFILE & ~O_DIRECTORY, "O_TMPFILE" },
		{ O_SYNC & ~O_DSYNC, "O_SYNC" },
	};
	unsigned long f = (unsigned long)(flags & 0xffffffffu);
	size_t len = 0;
	const char *acc = (f & O_ACCMODE) == O_WRONLY ? "O_WRONLY" :
			  (f & O_ACCMODE) == O_RDWR ? "O_RDWR" : "O_RDONLY";
	if (!n)
		return 0;
	buf[0] = 0;
	int w = snprintf(buf, n, "%s", acc);
	len = w > 0 && (size_t)w < n ? (size_t)w : n - 1;
	f &= ~(unsigned long)O_ACCMODE;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(f & names[i].bit))
			continue;
		f &= ~names[i].bit;
		w = snprintf(buf + len, n - len, "|%s", names[i].name);
		len = w > 0 && (size_t)w < n - len ? len + (size_t)w : n - 1;
	}
	if (f) {
		w = snprintf(buf + len, n - len, "|0x%lx", f);
		len = w > 0 && (size_t)w < n - len ? len + (size_t)w : n - 1;
	}
	return len;
}

/* Push s[0..len) split on ';' with empty parts dropped. */
static void push_split(struct st_io_frames *o, const char *s, size_t len)
{
	while (len && o->n < ST_IO_MAX_FRAMES) {
		const char *semi = memchr(s, ';', len);
		size_t part = semi ? (size_t)(semi - s) : len;
		if (part) {
			o->p[o->n] = s;
			o->len[o->n++] = part;
		}
		if (!semi)
			break;
		s += part + 1;
		len -= part + 1;
	}
}

/* "/a/b" -> "/a", "/b"; "a/b" -> "a", "/b"; "/" -> "/".  Each component
 * keeps its leading '/' (it points into the path), then is split on ';'. */
static void push_path(struct st_io_frames *o, const char *s, size_t len)
{
	size_t i = 0;
	bool any = false;
	while (i < len && o->n < ST_IO_MAX_FRAMES) {
		size_t start = i;
		if (s[i] == '/')
			i++;
		while (i < len && s[i] != '/')
			i++;
		size_t clen = i - start;
		if (clen == 1 && s[start] == '/')
			continue; /* "//" or a trailing '/' */
		if (s[start] == '/' && memchr(s + start + 1, ';', clen - 1)) {
			/* "/x;y": the '/' stays on the first part only. */
			size_t before = o->n;
			push_split(o, s + start + 1, clen - 1);
			if (o->n > before && o->p[before] == s + start + 1) {
				o->p[before]--;
				o->len[before]++;
			}
		} else {
			push_split(o, s + start, clen);
		}
		any = true;
	}
	if (!any && len && o->n < ST_IO_MAX_FRAMES) {
		o->p[o->n] = s;
		o->len[o->n++] = 1; /* the root itself */
	}
}

static size_t comm_len(const char *c)
{
	const char *nul = memchr(c, 0, IO_COMM_LEN);
	return nul ? (size_t)(nul - c) : IO_COMM_LEN;
}

void st_io_frames_build(const struct st_io_rec *r, const unsigned char *fields, unsigned nfields,
			const char *path, size_t path_len, struct st_io_frames *out)
{
	size_t used = 0;
	out->n = 0;
	for (unsigned i = 0; i < nfields; i++) {
		char *b = out->buf + used;
		size_t room = sizeof(out->buf) - used, w = 0;
		switch (fields[i]) {
		case ST_IOF_COMM:
			push_split(out, r->h.comm, comm_len(r->h.comm));
			break;
		case ST_IOF_TRACEPOINT: {
			const char *t = st_io_tracepoint_name(r->h.op);
			if (t)
				push_split(out, t, strlen(t));
			break;
		}
		case ST_IOF_PATH:
			if (path && path_len) {
				push_path(out, path, path_len);
			} else {
				/* Never silently without a path: named, and counted
				 * by the caller (see st_io_path_unresolved). */
				int k = r->h.fd >= 0 ? snprintf(b, room, "[unresolved fd %d]", r->h.fd)
						     : snprintf(b, room, "[unresolved path]");
				w = k > 0 && (size_t)k < room ? (size_t)k : 0;
				push_split(out, b, w);
			}
			break;
		case ST_IOF_PID:
		case ST_IOF_TID: {
			int k = snprintf(b, room, "%u", fields[i] == ST_IOF_PID ? r->h.pid : r->h.tid);
			w = k > 0 && (size_t)k < room ? (size_t)k : 0;
			push_split(out, b, w);
			break;
		}
		case ST_IOF_FLAGS:
			if (r->h.flags & IO_FLAGS_VALID) {
				w = st_io_open_flags_str(r->h.flags, b, room);
				push_split(out, b, w);
			}
			break;
		default:
			break;
		}
		used += w;
	}
}
