/* SPDX-License-Identifier: MIT */
/*
 * profile.c - `shardtrie record cpu`: perf-event sampling on every CPU
 * (cpu-clock, -F Hz), kernel + user stacks from profile.bpf.c through one
 * ring per CPU to one consumer thread per CPU, each symbolizing with its own
 * caches and ingesting into its own writer.  Frames root -> leaf:
 * comm; user frames...; kernel frames_[k]  (stackcollapse-perf.pl --all).
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cli.h"
#include "common/decode.h"
#include "common/runner.h"
#include "common/symbolize.h"
#include "profile.skel.h"

struct cpu_tool {
	struct st_usyms *us;
	/* frames of the sample being built: comm + user + kernel */
	const char *f[1 + 2 * PROFILE_MAX_STACK];
	size_t len[1 + 2 * PROFILE_MAX_STACK];
	char comm[PROFILE_COMM_LEN + 1];
};

/* Samples are ~2 KiB and rare (HZ x CPUs): a quarter of the io ring. */
#define RING_BYTES (ST_BPF_RING_BYTES / 4)

static struct st_ksyms *ksyms; /* read-only while consumers run */

static void *cpu_tool_init(struct st_rec_consumer *c)
{
	struct cpu_tool *t = calloc(1, sizeof(*t));
	(void)c;
	if (t)
		t->us = st_usyms_new();
	return t;
}

static void cpu_tool_fini(struct st_rec_consumer *c)
{
	struct cpu_tool *t = c->tool;
	if (t)
		st_usyms_free(t->us);
	free(t);
}

static int on_sample(struct st_rec_consumer *c, const void *data, size_t size)
{
	struct cpu_tool *t = c->tool;
	struct st_prof_rec r;
	if (st_prof_decode(data, size, &r))
		return -1;
	if (!t || !t->us || !c->w) {
		c->failed++;
		return 0;
	}
	const struct st_prof_sample *s = r.s;
	size_t n = 0;
	/* comm: spaces -> '_' and ';' -> ':' as stackcollapse-perf.pl does. */
	size_t cl = strnlen(s->comm, PROFILE_COMM_LEN);
	for (size_t i = 0; i < cl; i++)
		t->comm[i] = s->comm[i] == ' ' ? '_' : s->comm[i] == ';' ? ':' : s->comm[i];
	t->f[n] = t->comm;
	t->len[n++] = cl;
	/* Stacks are leaf first; a return address points after the call, so
	 * every frame but the leaf is looked up at addr - 1 (as perf does). */
	for (unsigned i = r.nu; i-- > 0;) {
		uint64_t a = s->ustack[i];
		const char *nm = st_usyms_find(t->us, s->pid, s->comm, i ? a - 1 : a);
		t->f[n] = nm;
		t->len[n++] = strlen(nm);
	}
	for (unsigned i = r.nk; i-- > 0;) {
		uint64_t a = s->kstack[i];
		const char *nm = st_ksyms_find(ksyms, i ? a - 1 : a);
		t->f[n] = nm;
		t->len[n++] = strlen(nm);
	}
	uint64_t one = 1;
	if (st_writer_ingest_strs(c->w, t->f, t->len, n, &one))
		c->failed++;
	return 0;
}

static int open_perf_events(struct profile_bpf *skel, unsigned hz, struct bpf_link **links,
			    int *fds, unsigned ncpu)
{
	unsigned opened = 0;
	for (unsigned cpu = 0; cpu < ncpu; cpu++) {
		struct perf_event_attr a = {
			.type = PERF_TYPE_SOFTWARE,
			.config = PERF_COUNT_SW_CPU_CLOCK,
			.size = sizeof(a),
			.sample_freq = hz,
			.freq = 1,
		};
		fds[cpu] = (int)syscall(__NR_perf_event_open, &a, -1, (int)cpu, -1, PERF_FLAG_FD_CLOEXEC);
		if (fds[cpu] < 0) {
			if (errno == ENODEV)
				continue; /* offline CPU */
			return -errno;
		}
		links[cpu] = bpf_program__attach_perf_event(skel->progs.do_sample, fds[cpu]);
		if (!links[cpu])
			return -errno;
		fds[cpu] = -1; /* the link owns it: bpf_link__destroy() disables and closes it */
		opened++;
	}
	return opened ? 0 : -ENODEV;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shardtrie record cpu [-F HZ] [-p PID | -a] [-d SECONDS]\n"
		"                            [--kernel-only | --user-only] [-t FORMAT] [-o FILE]\n"
		"                            [-v] [-- COMMAND ARGS...]\n"
		"Samples on-CPU stacks (kernel and user) on every CPU at HZ (default 99)\n"
		"and writes them as a flamegraph.  With COMMAND: that command and its\n"
		"children until it exits; -p: that process (and children it forks);\n"
		"-a (the default): everything but this tool.  -d ends the run after\n"
		"SECONDS; SIGINT/SIGTERM end it too, and the output is still written.\n"
		"The exit code is COMMAND's (128 + N if signal N killed it).\n"
		"Frames: comm;user...;kernel_[k].  -t folded|json (default folded),\n"
		"-o FILE written atomically (default stdout).\n");
}

int st_record_cpu(int argc, char **argv);
int st_record_cpu(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "freq", required_argument, 0, 'F' },
		{ "pid", required_argument, 0, 'p' },
		{ "all", no_argument, 0, 'a' },
		{ "duration", required_argument, 0, 'd' },
		{ "kernel-only", no_argument, 0, 'K' },
		{ "user-only", no_argument, 0, 'U' },
		{ "to", required_argument, 0, 't' },
		{ "output", required_argument, 0, 'o' },
		{ "verbose", no_argument, 0, 'v' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct st_rec_opts o = { .fmt = ST_FMT_FOLDED };
	long hz = 99;
	bool konly = false, uonly = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+F:p:ad:t:o:vh", lo, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'F':
			hz = strtol(optarg, &end, 10);
			if (*end || hz < 1 || hz > 100000) {
				fprintf(stderr, "%s record cpu: -F wants 1..100000 Hz, got '%s'\n", st_prog, optarg);
				return EX_USAGE_;
			}
			break;
		case 'p': {
			long p = strtol(optarg, &end, 10);
			if (*end || p < 1 || p > 0x3fffffff) {
				fprintf(stderr, "%s record cpu: -p wants a process id, got '%s'\n", st_prog, optarg);
				return EX_USAGE_;
			}
			o.pid = (pid_t)p;
			break;
		}
		case 'a': o.all = true; break;
		case 'd':
			o.duration = st_rec_parse_seconds(optarg);
			if (o.duration < 0) {
				fprintf(stderr, "%s record cpu: -d wants a positive number of seconds, got '%s'\n",
					st_prog, optarg);
				return EX_USAGE_;
			}
			break;
		case 'K': konly = true; break;
		case 'U': uonly = true; break;
		case 't':
			o.fmt = st_cli_format(optarg);
			if (o.fmt < 0)
				return EX_USAGE_;
			break;
		case 'o': o.out = optarg; break;
		case 'v': o.verbose = true; break;
		case 'h': usage(stdout); return EX_OK_;
		default: usage(stderr); return EX_USAGE_;
		}
	}
	if (optind < argc)
		o.cmd = argv + optind;
	if ((o.pid != 0) + o.all + (o.cmd != NULL) > 1 || (konly && uonly)) {
		fprintf(stderr, "%s record cpu: -p, -a and COMMAND exclude each other, and so do "
				"--kernel-only and --user-only\n", st_prog);
		usage(stderr);
		return EX_USAGE_;
	}
	if (o.pid && kill(o.pid, 0) != 0 && errno == ESRCH) {
		fprintf(stderr, "%s record cpu: no process %d\n", st_prog, (int)o.pid);
		return EX_NOINPUT_;
	}
	int rc = st_rec_preflight("record cpu", false);
	if (rc)
		return rc;
	st_rec_libbpf_log(o.verbose);

	struct st_rec rec;
	struct profile_bpf *skel = NULL;
	struct bpf_link **links = NULL;
	int *pfds = NULL;
	struct st_engine *e = NULL;
	int err;

	ksyms = st_ksyms_load();
	if (!ksyms)
		fprintf(stderr, "%s record cpu: cannot read kernel symbols from /proc/kallsyms (%s); kernel frames will be [unknown]_[k]\n",
			st_prog, strerror(errno));

	struct st_options so;
	st_options_init(&so);
	so.merge_interval_ms = 0; /* one flush at the end */
	so.metrics[0].name = "samples";
	so.metrics[0].unit = "samples";
	if ((rc = st_rec_begin(&rec, "record cpu", &so, o.cmd, &e)))
		goto cleanup;
	rec.tool_init = cpu_tool_init;
	rec.tool_fini = cpu_tool_fini;

	skel = profile_bpf__open();
	if (!skel) {
		st_rec_explain("record cpu", "opening the BPF object", errno);
		rc = EX_SOFTWARE_;
		goto cleanup;
	}
	skel->rodata->st_self_tgid = (__u32)getpid();
	skel->rodata->st_wakeup_bytes = RING_BYTES / 8;
	skel->rodata->st_filter_tgids = o.pid || o.cmd;
	skel->rodata->kernel_stacks = !uonly;
	skel->rodata->user_stacks = !konly;
	bpf_program__set_autoload(skel->progs.st_on_fork, o.pid || o.cmd);
	if ((err = st_rec_rings_prepare(&rec, skel->maps.st_rings, RING_BYTES))) {
		st_rec_explain("record cpu", "creating ring buffers", err);
		rc = EX_NOPERM_;
		goto cleanup;
	}
	if ((err = profile_bpf__load(skel))) {
		st_rec_explain("record cpu", "loading the BPF programs", err);
		rc = EX_NOPERM_;
		goto cleanup;
	}
	if ((err = st_rec_rings_install(&rec, skel->maps.st_rings)) ||
	    (o.pid && (err = st_rec_follow(skel->maps.st_tgids, o.pid))) ||
	    (rec.child && (err = st_rec_follow(skel->maps.st_tgids, rec.child)))) {
		st_rec_explain("record cpu", "filling the maps", err);
		rc = EX_SOFTWARE_;
		goto cleanup;
	}
	if ((o.pid || o.cmd) && (err = profile_bpf__attach(skel))) {
		st_rec_explain("record cpu", "attaching the fork tracepoint", err);
		rc = EX_SOFTWARE_;
		goto cleanup;
	}
	links = calloc(rec.ncpu, sizeof(*links));
	pfds = malloc(rec.ncpu * sizeof(*pfds));
	if (!links || !pfds) {
		rc = EX_SOFTWARE_;
		goto cleanup;
	}
	for (unsigned i = 0; i < rec.ncpu; i++)
		pfds[i] = -1;
	if ((err = st_rec_start(&rec, on_sample))) {
		st_rec_explain("record cpu", "starting consumer threads", err);
		rc = EX_SOFTWARE_;
		goto cleanup;
	}
	if ((err = open_perf_events(skel, (unsigned)hz, links, pfds, rec.ncpu))) {
		st_rec_explain("record cpu", "opening cpu-clock perf events", err);
		rc = EX_NOPERM_;
		goto cleanup;
	}
	st_rec_wait(&rec, o.duration);
	/* End of the stream (runner.c): stop emitting, destroy every link
	 * (PERF_EVENT_IOC_DISABLE + close remove each event on its CPU
	 * synchronously: no do_sample() runs after), then drain. */
	st_rec_quiesce(&skel->bss->st_stopped);
	for (unsigned i = 0; i < rec.ncpu; i++) {
		bpf_link__destroy(links[i]);
		links[i] = NULL;
	}
	st_rec_detach_parallel(skel->skeleton); /* the fork tracepoint */
	st_rec_stop(&rec);
	st_rec_report(&rec, skel->bss->st_stats, o.verbose, "samples");
	rc = st_rec_output(&rec, &o, 0);
	if (!rc)
		rc = st_rec_child_rc(&rec);

cleanup:
	for (unsigned i = 0; links && i < rec.ncpu; i++)
		bpf_link__destroy(links[i]);
	for (unsigned i = 0; pfds && i < rec.ncpu; i++)
		if (pfds[i] >= 0)
			close(pfds[i]);
	st_rec_fini(&rec); /* joins consumers before the engine goes */
	free(links);
	free(pfds);
	if (skel)
		st_rec_detach_parallel(skel->skeleton);
	profile_bpf__destroy(skel);
	st_engine_destroy(e);
	st_ksyms_free(ksyms);
	ksyms = NULL;
	return rc;
}
