/* SPDX-License-Identifier: MIT */
/*
 * decode.h - the user side of the ring-buffer ABI, with no libbpf in it (the
 * fuzz target builds it alone): validate and decode records, and turn an io
 * record into frames the way ior does (see ../shared/docs/formats.md).
 */
#ifndef ST_BPF_DECODE_H
#define ST_BPF_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../cpu/profile.h"
#include "../io/iotrace.h"

/* ------------------------------------------------------------ cpu */

/* A validated profile sample: the record itself (it is 8-aligned in the ring)
 * plus the usable stack lengths in entries (0 when the capture failed). */
struct st_prof_rec {
	const struct st_prof_sample *s;
	unsigned nk, nu;
};
/* 0, or -EINVAL when `size` bytes at `data` are not a profile sample. */
int st_prof_decode(const void *data, size_t size, struct st_prof_rec *out);

/*
 * A record of the mapping tracker's dummy perf events (mappings.c): every
 * record carries the sample_id_all trailer of PERF_SAMPLE_TID |
 * PERF_SAMPLE_TIME, so `time` is the CLOCK_MONOTONIC ns of the event.
 */
enum st_pmap_kind {
	ST_PMAP_OTHER, /* a type not asked for: skipped */
	ST_PMAP_MMAP,  /* PERF_RECORD_MMAP2: an executable mapping */
	ST_PMAP_EXEC,  /* PERF_RECORD_COMM with PERF_RECORD_MISC_COMM_EXEC */
	ST_PMAP_FORK,  /* PERF_RECORD_FORK */
	ST_PMAP_EXIT,  /* PERF_RECORD_EXIT */
	ST_PMAP_LOST,  /* PERF_RECORD_LOST: `lost` records dropped, ring full */
};
struct st_pmap_rec {
	enum st_pmap_kind kind;
	uint32_t pid, tid, ppid, ptid;
	uint64_t time;
	uint64_t addr, len, pgoff; /* MMAP */
	uint32_t prot;             /* MMAP: PROT_* */
	const char *name;          /* MMAP: file name inside the record, */
	size_t name_len;           /* up to its first NUL */
	uint64_t lost;             /* LOST */
};
/* 0, or -EINVAL when the `size` bytes at `data` (a perf_event_header first)
 * are not a well-formed record of that layout. */
int st_pmap_decode(const void *data, size_t size, struct st_pmap_rec *out);

/* ------------------------------------------------------------ io */

struct st_io_rec {
	struct st_io_event h; /* header, copied */
	const char *path;     /* path bytes inside the record (not NUL-terminated) */
	size_t path_len;
};
/* 0, or -EINVAL when the bytes are not an io record. */
int st_io_decode(const void *data, size_t size, struct st_io_rec *out);

/* "read", "openat", ... for an op; NULL when out of range. */
const char *st_io_op_name(unsigned op);
/* The tracepoint frame: "sys_enter_read" etc. (the pair is named by its enter). */
const char *st_io_tracepoint_name(unsigned op);
bool st_io_op_is_open(unsigned op);
bool st_io_op_uses_fd(unsigned op);

enum st_io_field { ST_IOF_COMM, ST_IOF_TRACEPOINT, ST_IOF_PATH, ST_IOF_PID, ST_IOF_TID, ST_IOF_FLAGS, ST_IOF_COUNT_ };
#define ST_IO_DEFAULT_FIELDS "comm,tracepoint,path"

/* Parse a --fields list: fills fields[0..*n).  Returns 0 or -EINVAL with a
 * message in err (empty list, empty value, unknown field, duplicate field).
 * Blanks around a name are ignored (ior's rule). */
int st_io_fields_parse(const char *spec, unsigned char fields[ST_IOF_COUNT_], unsigned *n,
		       char *err, size_t errlen);
/* The same rules for a list of names (POST /order's {"fields":[...]}). */
int st_io_fields_from_names(const char *const *names, size_t count,
			    unsigned char fields[ST_IOF_COUNT_], unsigned *n, char *err,
			    size_t errlen);
/* "comm", "tracepoint", ... for a field; NULL when out of range. */
const char *st_io_field_name(unsigned f);

/* Metrics kept for every io node, in this order. */
enum { ST_IOM_COUNT, ST_IOM_DURATION, ST_IOM_DURATION_TO_PREV, ST_IOM_BYTES, ST_IOM_N };
extern const char *const st_io_metric_names[ST_IOM_N];  /* engine metric names */
extern const char *const st_io_metric_units[ST_IOM_N];
/* --metric NAME (count|duration|duration_to_prev|bytes, engine names accepted too)
 * -> index, or -1. */
int st_io_metric_from_name(const char *name);
void st_io_values(const struct st_io_rec *r, uint64_t v[ST_IOM_N]);

#define ST_IO_MAX_FRAMES 160
struct st_io_frames {
	size_t n;
	const char *p[ST_IO_MAX_FRAMES];
	size_t len[ST_IO_MAX_FRAMES];
	char buf[1024]; /* pid/tid/flags/fd text */
};
/*
 * Frames of one event: the fields in order, each value split on ';' (empty
 * parts dropped), the path one frame per '/' component ("/a/b" -> "/a", "/b").
 * path/path_len: the path to use (the record's, or one resolved from the fd);
 * NULL = unknown, shown as "[unresolved fd N]" for fd calls and
 * "[unresolved path]" otherwise.  Frames point into r, path and out->buf.
 */
void st_io_frames_build(const struct st_io_rec *r, const unsigned char *fields, unsigned nfields,
			const char *path, size_t path_len, struct st_io_frames *out);

/* "O_WRONLY|O_CREAT|O_TRUNC" for open flags into buf; returns its length. */
size_t st_io_open_flags_str(uint64_t flags, char *buf, size_t n);

#endif
