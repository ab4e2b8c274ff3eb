/* SPDX-License-Identifier: MIT */
/*
 * push.c - the --push options shared by `serve` and `record cpu|io`
 * (push/push.h does the pushing; docs/push.md):
 *
 *   --push URL            Pyroscope server (http:// or https://), no
 *                         credentials in it (argv is readable by every user)
 *   --app NAME            application name (default shardtrie)
 *   --label K=V           an extra label, repeatable (hostname= and metric=
 *                         are set by default; a --label replaces them)
 *   --push-interval D     one push per D (100ms..1h; 10s)
 *   --push-queue N[/SIZE] unsent intervals kept: count and bytes (64/64M)
 *   --push-format F       pprof (default) or folded
 *   --push-timeout D      one request's time limit (100ms..10m; 10s)
 *   --push-drain D        at exit, how long unsent intervals are still tried
 *                         (0..1h; 10s; 0 = what is unsent at exit is
 *                         counted, not sent)
 *   --push-auth-file F    credentials, `key=value` lines: user, password,
 *                         token, tenant (else SHARDTRIE_PUSH_USER,
 *                         SHARDTRIE_PUSH_PASSWORD, SHARDTRIE_PUSH_TOKEN,
 *                         SHARDTRIE_PUSH_TENANT)
 *
 * Invariants: a credential is never printed, never taken from argv, and
 * freed (wiped) once handed to the pusher; a push option without --push is
 * a usage error (64); a bad value says which option and why (64).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "push/push.h"
#include "cli.h"

void st_cli_push_init(struct st_cli_push *o)
{
	memset(o, 0, sizeof(*o));
	st_push_opts_init(&o->o);
}

/* A duration: "250ms", "10s", "2m", "1h", a bare number is seconds; in
 * [lo, hi] milliseconds. */
static bool parse_duration(const char *s, unsigned *ms, double lo, double hi)
{
	char *end;
	double v = strtod(s, &end);
	double mul = 1000;
	if (end == s)
		return false;
	if (!strcmp(end, "ms"))
		mul = 1;
	else if (!strcmp(end, "s") || !*end)
		mul = 1000;
	else if (!strcmp(end, "m"))
		mul = 60000;
	else if (!strcmp(end, "h"))
		mul = 3600000;
	else
		return false;
	v *= mul;
	if (!(v >= lo && v <= hi))
		return false;
	*ms = (unsigned)v;
	return true;
}

/* "64", "64/16M", "/1G": count in [1, 1e6], size in [1 KiB, 64 GiB]. */
static bool parse_queue(const char *s, size_t *count, size_t *bytes)
{
	char *end;
	if (*s != '/') {
		long long n = strtoll(s, &end, 10);
		if (end == s || n < 1 || n > 1000000 || (*end && *end != '/'))
			return false;
		*count = (size_t)n;
		s = end;
	}
	if (!*s)
		return true;
	s++; /* '/' */
	double v = strtod(s, &end);
	if (end == s)
		return false;
	double mul = 1;
	if (!*end)
		mul = 1;
	else if (!strcmp(end, "K") || !strcmp(end, "k"))
		mul = 1024;
	else if (!strcmp(end, "M"))
		mul = 1024.0 * 1024;
	else if (!strcmp(end, "G"))
		mul = 1024.0 * 1024 * 1024;
	else
		return false;
	v *= mul;
	if (!(v >= 1024 && v <= 64.0 * 1024 * 1024 * 1024))
		return false;
	*bytes = (size_t)v;
	return true;
}

int st_cli_push_opt(const char *cmd, int c, const char *arg, struct st_cli_push *o)
{
	switch (c) {
	case ST_OPT_PUSH: o->o.url = arg; return ST_CLI_GO_ON;
	case ST_OPT_PUSH_APP:
		if (!st_push_app_ok(arg))
			return st_cli_bad_value(cmd, "app", "1..128 of [a-zA-Z0-9_.-]", arg), EX_USAGE_;
		o->o.app = arg;
		break;
	case ST_OPT_PUSH_LABEL: {
		const char *eq = strchr(arg, '=');
		if (!eq || !st_push_label_name_ok(arg, (size_t)(eq - arg)) ||
		    !st_push_label_value_ok(eq + 1, strlen(eq + 1)))
			return st_cli_bad_value(cmd, "label",
						"K=V (K: [a-zA-Z_][a-zA-Z0-9_]*, not __*; V: no {},=\" "
						"or control characters)",
						arg),
			       EX_USAGE_;
		/* a label given twice: the last one wins */
		size_t i;
		for (i = 0; i < o->o.nlabels; i++)
			if (!strncmp(o->o.labels[i], arg, (size_t)(eq - arg) + 1))
				break;
		if (i == ST_PUSH_MAX_LABELS) {
			fprintf(stderr, "%s %s: at most %d --label\n", st_prog, cmd, ST_PUSH_MAX_LABELS);
			return EX_USAGE_;
		}
		o->o.labels[i] = arg;
		if (i == o->o.nlabels)
			o->o.nlabels++;
		break;
	}
	case ST_OPT_PUSH_INTERVAL:
		if (!parse_duration(arg, &o->o.interval_ms, 100, 3600000))
			return st_cli_bad_value(cmd, "push-interval",
						"a duration in [100ms, 1h] (250ms, 10s, 2m)", arg),
			       EX_USAGE_;
		break;
	case ST_OPT_PUSH_QUEUE:
		if (!parse_queue(arg, &o->o.queue_max, &o->o.queue_bytes))
			return st_cli_bad_value(cmd, "push-queue",
						"N[/SIZE]: N in [1,1000000] intervals, SIZE in "
						"[1K,64G] bytes (64/64M)",
						arg),
			       EX_USAGE_;
		break;
	case ST_OPT_PUSH_FORMAT:
		if (strcmp(arg, "pprof") && strcmp(arg, "folded"))
			return st_cli_bad_value(cmd, "push-format", "pprof or folded", arg), EX_USAGE_;
		o->o.format = strcmp(arg, "pprof") ? ST_PUSH_FOLDED : ST_PUSH_PPROF;
		break;
	case ST_OPT_PUSH_TIMEOUT:
		if (!parse_duration(arg, &o->o.timeout_ms, 100, 600000))
			return st_cli_bad_value(cmd, "push-timeout",
						"a duration in [100ms, 10m] (500ms, 10s, 1m)", arg),
			       EX_USAGE_;
		break;
	case ST_OPT_PUSH_DRAIN:
		if (!parse_duration(arg, &o->o.drain_ms, 0, 3600000))
			return st_cli_bad_value(cmd, "push-drain",
						"a duration in [0, 1h] (0, 500ms, 10s, 2m)", arg),
			       EX_USAGE_;
		break;
	case ST_OPT_PUSH_AUTH_FILE: o->auth_file = arg; break;
	default: return 1;
	}
	o->other = true;
	return ST_CLI_GO_ON;
}

static void wipe(char **s)
{
	if (*s) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
	}
	*s = NULL;
}

static int set_secret(char **dst, const char *v)
{
	wipe(dst);
	return (*dst = strdup(v)) ? 0 : -ENOMEM;
}

/* The credentials file: `key=value` lines (user, password, token, tenant),
 * blank lines and `#` comments.  Values are never echoed in messages. */
static int read_auth_file(const char *cmd, struct st_cli_push *o)
{
	FILE *f = fopen(o->auth_file, "r");
	if (!f) {
		fprintf(stderr, "%s %s: --push-auth-file %s: %s\n", st_prog, cmd, o->auth_file,
			strerror(errno));
		return EX_NOINPUT_;
	}
	struct stat sb;
	if (!fstat(fileno(f), &sb) && (sb.st_mode & 077))
		fprintf(stderr, "%s %s: warning: --push-auth-file %s is readable by other users "
				"(chmod 600 it)\n", st_prog, cmd, o->auth_file);
	char line[4096];
	unsigned no = 0;
	int rc = ST_CLI_GO_ON;
	while (rc == ST_CLI_GO_ON && fgets(line, sizeof(line), f)) {
		no++;
		line[strcspn(line, "\r\n")] = '\0';
		char *k = line + strspn(line, " \t");
		if (!*k || *k == '#')
			continue;
		char *eq = strchr(k, '=');
		char **dst = NULL;
		if (eq) {
			*eq = '\0';
			dst = !strcmp(k, "user")       ? &o->user
			      : !strcmp(k, "password") ? &o->password
			      : !strcmp(k, "token")    ? &o->token
			      : !strcmp(k, "tenant")   ? &o->tenant
						       : NULL;
		}
		if (!dst) {
			fprintf(stderr, "%s %s: --push-auth-file %s:%u: want user=, password=, token= "
					"or tenant=\n", st_prog, cmd, o->auth_file, no);
			rc = EX_DATAERR_;
		} else if (set_secret(dst, eq + 1)) {
			rc = EX_SOFTWARE_;
		}
	}
	explicit_bzero(line, sizeof(line));
	fclose(f);
	return rc;
}

static int from_env(char **dst, const char *name)
{
	const char *v = getenv(name);
	return v && *v ? set_secret(dst, v) : 0;
}

/* URL: http(s), a host, no credentials, no query or fragment (curl's own
 * parser).  The message never repeats the URL: it may hold a secret. */
static int check_url(const char *cmd, const char *url)
{
	CURLU *u = curl_url();
	const char *why = NULL;
	char *scheme = NULL, *host = NULL, *user = NULL, *query = NULL, *frag = NULL;
	if (!u)
		return EX_SOFTWARE_;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		why = "is not a URL (want http://HOST[:PORT] or https://...)";
	} else {
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
		curl_url_get(u, CURLUPART_HOST, &host, 0);
		curl_url_get(u, CURLUPART_USER, &user, 0);
		curl_url_get(u, CURLUPART_QUERY, &query, 0);
		curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0);
		if (!scheme || (strcmp(scheme, "http") && strcmp(scheme, "https")))
			why = "must be http:// or https://";
		else if (!host || !*host)
			why = "has no host";
		else if (user)
			why = "holds credentials, which argv shows to every user: give them in "
			      "SHARDTRIE_PUSH_USER/SHARDTRIE_PUSH_PASSWORD or --push-auth-file";
		else if (query || frag)
			why = "must not have a query or fragment (the pusher adds /ingest?...)";
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(query);
	curl_free(frag);
	curl_url_cleanup(u);
	if (!why)
		return ST_CLI_GO_ON;
	fprintf(stderr, "%s %s: --push URL %s\n", st_prog, cmd, why);
	return EX_USAGE_;
}

int st_cli_push_check(const char *cmd, struct st_cli_push *o)
{
	if (!o->o.url) {
		if (!o->other)
			return ST_CLI_GO_ON;
		fprintf(stderr, "%s %s: --app, --label and --push-* need --push URL\n", st_prog, cmd);
		return EX_USAGE_;
	}
	int rc = check_url(cmd, o->o.url);
	if (rc != ST_CLI_GO_ON)
		return rc;
	if (from_env(&o->user, "SHARDTRIE_PUSH_USER") ||
	    from_env(&o->password, "SHARDTRIE_PUSH_PASSWORD") ||
	    from_env(&o->token, "SHARDTRIE_PUSH_TOKEN") ||
	    from_env(&o->tenant, "SHARDTRIE_PUSH_TENANT"))
		return EX_SOFTWARE_;
	if (o->auth_file && (rc = read_auth_file(cmd, o)) != ST_CLI_GO_ON)
		return rc;
	if (o->password && !o->user) {
		fprintf(stderr, "%s %s: a push password without a user (SHARDTRIE_PUSH_USER or "
				"user= in --push-auth-file)\n", st_prog, cmd);
		return EX_USAGE_;
	}
	return ST_CLI_GO_ON;
}

int st_cli_push_start(const char *cmd, struct st_cli_push *o, struct st_engine *e, unsigned metric,
		      const char *metric_label, uint32_t sample_rate, const char *spy)
{
	if (!o->o.url)
		return EX_OK_;
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "%s %s: push", st_prog, cmd);
	o->o.metric = metric;
	o->o.metric_label = metric_label;
	if (sample_rate)
		o->o.sample_rate = sample_rate;
	o->o.spy_name = spy;
	o->o.user = o->user;
	o->o.password = o->password;
	o->o.token = o->token;
	o->o.tenant = o->tenant;
	o->o.log = stderr;
	o->o.log_prefix = prefix;
	o->p = st_push_start(e, &o->o);
	int err = errno;
	o->o.user = o->o.password = o->o.token = o->o.tenant = NULL;
	wipe(&o->user); /* the pusher has its own copies */
	wipe(&o->password);
	wipe(&o->token);
	wipe(&o->tenant);
	if (!o->p) {
		fprintf(stderr, "%s %s: cannot start pushing: %s\n", st_prog, cmd, strerror(err));
		return err == EINVAL ? EX_USAGE_ : EX_SOFTWARE_;
	}
	return EX_OK_;
}

int st_cli_push_reset(void *arg)
{
	struct st_cli_push *o = arg;
	st_push_reset(o->p);
	return 0;
}

char *st_cli_push_status(void *arg)
{
	struct st_cli_push *o = arg;
	return o->p ? st_push_status_json(o->p) : NULL;
}

void st_cli_push_stop(struct st_cli_push *o)
{
	if (!o->p)
		return;
	st_push_stop(o->p);
	st_push_report(o->p);
}

void st_cli_push_fini(struct st_cli_push *o)
{
	st_push_free(o->p);
	o->p = NULL;
	wipe(&o->user);
	wipe(&o->password);
	wipe(&o->token);
	wipe(&o->tenant);
}
