/* SPDX-License-Identifier: MIT */
/*
 * sysflood.c - syscall load for the `record io` benchmark: THREADS threads
 * each alternate read(/dev/zero, 1 byte) and write(/dev/null, 1 byte) for
 * SECONDS, then the total rate is printed as "sysflood: N calls C calls/s".
 * usage: sysflood [SECONDS] [THREADS]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double secs = 2;
static volatile int stop;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
	unsigned long *n = arg;
	int in = open("/dev/zero", O_RDONLY), out = open("/dev/null", O_WRONLY);
	char c;
	while (!stop) {
		for (int i = 0; i < 1000; i++) {
			if (read(in, &c, 1) != 1 || write(out, &c, 1) != 1)
				return NULL;
		}
		*n += 2000;
	}
	close(in);
	close(out);
	return NULL;
}

int main(int argc, char **argv)
{
	int nt = argc > 2 ? atoi(argv[2]) : 1;
	if (argc > 1)
		secs = atof(argv[1]);
	if (nt < 1 || nt > 256)
		nt = 1;
	pthread_t t[256];
	unsigned long n[256] = { 0 }, total = 0;
	double t0 = now();
	for (int i = 0; i < nt; i++)
		pthread_create(&t[i], NULL, run, &n[i]);
	while (now() - t0 < secs)
		usleep(10000);
	stop = 1;
	for (int i = 0; i < nt; i++) {
		pthread_join(t[i], NULL);
		total += n[i];
	}
	double dt = now() - t0;
	printf("sysflood: %lu calls %.0f calls/s\n", total, (double)total / dt);
	return 0;
}
