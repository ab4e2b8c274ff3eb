/* SPDX-License-Identifier: MIT */
/*
 * ingest.c - "rendering never slows ingest" (issue 19, docs/tui.md): the
 * time `shardtrie serve -` takes to ingest one stream, alone and with
 * `shardtrie top` attached and drawing in a real terminal (a detached tmux
 * session, 200x60), the two alternated rep by rep, medians reported.
 *
 *   1. a folded workload (N lines of value 1, deep stacks over a few
 *      thousand distinct frames) is made once, in memory;
 *   2. each run starts `serve --tick 20 -` with stdin a pipe; the viewer
 *      run starts `top URL` in tmux and waits (bounded) until the server
 *      counts its /events client; the clock starts when the first byte is
 *      written and stops when /api/status shows the whole total (polled
 *      every 2 ms on one kept-alive libcurl connection, in both runs);
 *   3. SUMMARY tui_ingest_alone_s, tui_ingest_viewer_s, tui_ingest_ratio
 *      (viewer / alone: 1.00 = no cost), tui_server_cpu_ratio (the serve
 *      process's user+sys time, viewer / alone: what serving the viewer
 *      cost it, less sensitive to a busy machine than the wall clock) and
 *      tui_sse_dropped (events the server dropped for the viewer being
 *      slow).
 *
 * The viewer competes for the same cores (2 on the reference machine): the
 * ratio is the whole cost of watching, the server's encoding included.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *cli;
static long lines = 2000000, reps = 5;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "bench-tui: %s: %s\n", what, strerror(errno));
	exit(2);
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The workload: main;svcA;handlerB;...;leafZ 1, depth 4..12, a skewed
 * choice at each level (so that some frames are big, most small). */
static char *workload(size_t *len)
{
	size_t cap = (size_t)lines * 96, n = 0;
	char *buf = malloc(cap);
	if (!buf)
		die("workload");
	uint64_t seed = 19;
	for (long i = 0; i < lines; i++) {
		unsigned depth = 4 + (unsigned)(rnd(&seed) % 9);
		n += (size_t)snprintf(buf + n, cap - n, "main");
		for (unsigned d = 1; d < depth && n + 32 < cap; d++) {
			uint64_t r = rnd(&seed);
			unsigned k = (unsigned)(r % 8) * (unsigned)((r >> 8) % 8) / 4; /* skewed */
			n += (size_t)snprintf(buf + n, cap - n, ";f%u_%u", d, k);
		}
		n += (size_t)snprintf(buf + n, cap - n, " 1\n");
	}
	*len = n;
	return buf;
}

struct body {
	char buf[1 << 16];
	size_t n;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t k = size * nmemb;
	if (b->n + k + 1 > sizeof(b->buf))
		return 0;
	memcpy(b->buf + b->n, p, k);
	b->n += k;
	b->buf[b->n] = '\0';
	return k;
}

/* /api/status key (the first element of an array), or -1. */
static long long status(CURL *h, const char *key)
{
	struct body b = { .n = 0 };
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(h) != CURLE_OK)
		return -1;
	json_t *j = json_loads(b.buf, 0, NULL), *v = json_object_get(j, key);
	if (json_is_array(v))
		v = json_array_get(v, 0);
	long long x = json_is_integer(v) ? (long long)json_integer_value(v) : -1;
	json_decref(j);
	return x;
}

static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* One run: seconds to ingest buf, with or without the viewer. */
static double run(const char *buf, size_t len, int viewer, long long *dropped, double *cpu)
{
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		die("pipe");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	char *argv[] = { (char *)cli, "serve", "--tick", "20", "-", NULL };
	pid_t pid;
	if ((errno = posix_spawn(&pid, cli, &fa, NULL, argv, environ)))
		die("spawn serve");
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	char line[256];
	size_t k = 0;
	while (k + 1 < sizeof(line) && read(out[0], line + k, 1) == 1 && line[k] != '\n')
		k++;
	line[k] = '\0';
	close(out[0]);
	const char *url = strstr(line, "http://");
	if (!url) {
		fprintf(stderr, "bench-tui: serve printed no URL\n");
		exit(2);
	}
	char st[300], sock[64], cmd[1024];
	snprintf(st, sizeof(st), "%sapi/status", url);
	snprintf(sock, sizeof(sock), "bench-tui-%d", (int)getpid());
	CURL *h = curl_easy_init();
	curl_easy_setopt(h, CURLOPT_URL, st);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	if (viewer) {
		snprintf(cmd, sizeof(cmd),
			 "tmux -L %s -f /dev/null new-session -d -s t -x 200 -y 60 '%s top %s'", sock,
			 cli, url);
		if (system(cmd) != 0) {
			fprintf(stderr, "bench-tui: tmux failed (Debian: tmux)\n");
			exit(2);
		}
		int i = 0;
		while (status(h, "sse_clients") < 1 && i++ < 5000)
			pause_ms(2);
		if (i > 5000) {
			fprintf(stderr, "bench-tui: the viewer never attached\n");
			exit(2);
		}
	}
	double t0 = now_s();
	for (size_t off = 0; off < len;) {
		ssize_t w = write(in[1], buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die("write");
		off += (size_t)w;
	}
	long long want = lines, got = 0;
	for (long i = 0; (got = status(h, "total")) < want && i < 600000; i++)
		pause_ms(2);
	double t = now_s() - t0;
	if (got != want)
		fprintf(stderr, "bench-tui: total %lld, want %lld\n", got, want);
	*dropped = status(h, "sse_dropped");
	curl_easy_cleanup(h);
	if (viewer) {
		snprintf(cmd, sizeof(cmd), "tmux -L %s kill-server", sock);
		if (system(cmd) != 0)
			fprintf(stderr, "bench-tui: tmux kill-server failed\n");
	}
	close(in[1]);
	kill(pid, SIGTERM);
	struct rusage ru;
	if (wait4(pid, NULL, 0, &ru) != pid)
		die("wait4");
	*cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	return t;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--cli") && i + 1 < argc)
			cli = argv[++i];
		else if (!strcmp(argv[i], "--lines") && i + 1 < argc)
			lines = atol(argv[++i]);
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = atol(argv[++i]);
		else {
			fprintf(stderr, "usage: %s --cli PATH [--lines N] [--reps R]\n", argv[0]);
			return 2;
		}
	}
	if (!cli || lines < 1 || reps < 1 || reps > 100) {
		fprintf(stderr, "bench-tui: --cli PATH needed; --lines >= 1; --reps in 1..100\n");
		return 2;
	}
	if (system("command -v tmux >/dev/null 2>&1") != 0) {
		fprintf(stderr, "bench-tui: needs tmux (Debian: tmux; scripts/deps.sh test)\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	size_t len;
	char *buf = workload(&len);
	printf("workload: %ld lines, %.1f MB; %ld reps, alone/viewer alternated\n", lines,
	       (double)len / 1e6, reps);
	double *a = calloc((size_t)reps, sizeof(double)), *v = calloc((size_t)reps, sizeof(double));
	double *ac = calloc((size_t)reps, sizeof(double)), *vc = calloc((size_t)reps, sizeof(double));
	long long dropped = 0, d;
	for (long r = 0; r < reps; r++) {
		if (r % 2) {
			v[r] = run(buf, len, 1, &d, &vc[r]);
			dropped += d > 0 ? d : 0;
			a[r] = run(buf, len, 0, &d, &ac[r]);
		} else {
			a[r] = run(buf, len, 0, &d, &ac[r]);
			v[r] = run(buf, len, 1, &d, &vc[r]);
			dropped += d > 0 ? d : 0;
		}
		printf("rep %ld: alone %.3f s (server cpu %.3f s), with top %.3f s (server cpu %.3f s)\n",
		       r + 1, a[r], ac[r], v[r], vc[r]);
		fflush(stdout);
	}
	qsort(a, (size_t)reps, sizeof(double), cmp_d);
	qsort(v, (size_t)reps, sizeof(double), cmp_d);
	qsort(ac, (size_t)reps, sizeof(double), cmp_d);
	qsort(vc, (size_t)reps, sizeof(double), cmp_d);
	double ma = a[reps / 2], mv = v[reps / 2];
	printf("median: alone %.3f s (%.2f M lines/s), with top %.3f s (%.2f M lines/s)\n", ma,
	       (double)lines / ma / 1e6, mv, (double)lines / mv / 1e6);
	printf("median server cpu: alone %.3f s, with top %.3f s\n", ac[reps / 2], vc[reps / 2]);
	printf("SUMMARY tui_ingest_alone_s=%.3f tui_ingest_viewer_s=%.3f tui_ingest_ratio=%.3f "
	       "tui_server_cpu_ratio=%.3f tui_sse_dropped=%lld\n",
	       ma, mv, mv / ma, vc[reps / 2] / ac[reps / 2], dropped);
	free(a);
	free(v);
	free(ac);
	free(vc);
	free(buf);
	return 0;
}
