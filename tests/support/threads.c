/* SPDX-License-Identifier: MIT */
/* threads.c - this process's threads by name (threads.h has the rules). */
#include "threads.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t ts_threads_named(const char *name, bool prefix, pid_t *tids, size_t max)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return 0;
	const size_t len = strlen(name);
	size_t n = 0;
	struct dirent *de;
	while ((!tids || n < max) && (de = readdir(d))) {
		/* comm is at most 15 bytes and a newline */
		char path[300], comm[32] = "";
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue; /* exited since readdir */
		bool got = fgets(comm, sizeof(comm), f) != NULL;
		fclose(f);
		if (!got)
			continue;
		comm[strcspn(comm, "\n")] = 0;
		if (prefix ? strncmp(comm, name, len) != 0 : strcmp(comm, name) != 0)
			continue;
		if (tids)
			tids[n] = (pid_t)strtol(de->d_name, NULL, 10);
		n++;
	}
	closedir(d);
	return n;
}
