/* SPDX-License-Identifier: MIT */
/*
 * pyroscope_rx.c - the test receiver of pyroscope_rx.h.
 *
 * The contract it implements is Pyroscope's /ingest handler's: name, from
 * and until are required (400 otherwise); name is APP{k=v,...} with label
 * names [a-zA-Z_][a-zA-Z0-9_]* (400 otherwise); the body is a bare profile
 * when format=pprof, a multipart form (field "profile", optional
 * "sample_type_config") when the Content-Type says multipart/form-data, and
 * "stack N" lines otherwise (folded; a bad line is a 400).  Bodies are
 * bounded (32 MiB, 413).  One thread per connection: a scripted delay holds
 * one request only.
 */
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "pyroscope_rx.h"

#define BODY_MAX (32u << 20)

struct prx {
	struct MHD_Daemon *d;
	unsigned port;
	pthread_mutex_t mu;
	struct prx_act *script;
	size_t nscript, next_act;
	char *want_auth, *want_tenant;
	struct prx_push *pushes;
	size_t npushes, cap;
	size_t requests;
	size_t status_n[600];
	double times[256]; /* when request i was answered (CLOCK_MONOTONIC s) */
};

struct conn {
	char *body;
	size_t len, cap;
	bool too_big;
	struct MHD_PostProcessor *pp;
	struct prx_push p;
};

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

void prx_push_free(struct prx_push *p)
{
	free(p->name);
	free(p->from);
	free(p->until);
	free(p->format);
	free(p->units);
	free(p->aggregation);
	free(p->sample_rate);
	free(p->spy_name);
	free(p->content_type);
	free(p->authorization);
	free(p->tenant);
	free(p->profile);
	free(p->stc);
	memset(p, 0, sizeof(*p));
}

static int append(char **buf, size_t *len, size_t *cap, const char *data, size_t n, bool *too_big)
{
	if (*len + n > BODY_MAX) {
		*too_big = true;
		return -1;
	}
	if (*len + n + 1 > *cap) {
		size_t nc = *cap ? *cap : 4096;
		while (nc < *len + n + 1)
			nc *= 2;
		char *b = realloc(*buf, nc);
		if (!b)
			return -1;
		*buf = b;
		*cap = nc;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/* The form's fields (MHD's multipart parser): profile and sample_type_config
 * are kept, others ignored as Pyroscope does. */
static enum MHD_Result on_field(void *arg, enum MHD_ValueKind kind, const char *key,
				const char *filename, const char *ctype, const char *enc,
				const char *data, uint64_t off, size_t size)
{
	struct conn *c = arg;
	char **dst;
	size_t len;
	if (!strcmp(key, "profile")) {
		dst = &c->p.profile;
		len = c->p.profile_len;
	} else if (!strcmp(key, "sample_type_config")) {
		dst = &c->p.stc;
		len = c->p.stc ? strlen(c->p.stc) : 0;
	} else {
		return MHD_YES;
	}
	if (!size)
		return MHD_YES;
	char *b = realloc(*dst, len + size + 1);
	if (!b)
		return MHD_NO;
	*dst = b;
	memcpy(b + len, data, size);
	b[len + size] = '\0';
	if (dst == &c->p.profile)
		c->p.profile_len = len + size;
	return MHD_YES;
}

static enum MHD_Result reply(struct MHD_Connection *mc, int status, const char *text,
			     unsigned retry_after)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", "text/plain");
	if (retry_after) {
		char v[32];
		snprintf(v, sizeof(v), "%u", retry_after);
		MHD_add_response_header(r, "Retry-After", v);
	}
	enum MHD_Result ret = MHD_queue_response(mc, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

static bool label_name_ok(const char *s, size_t n)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool a = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
		if (!a && (i == 0 || ch < '0' || ch > '9'))
			return false;
	}
	return true;
}

/* APP{k=v,...} (or APP): NULL, or what is wrong. */
static const char *check_name(const char *name)
{
	const char *b = strchr(name, '{');
	if (!b)
		return *name ? NULL : "empty application name";
	if (b == name)
		return "empty application name";
	size_t n = strlen(name);
	if (name[n - 1] != '}')
		return "labels do not end with '}'";
	const char *p = b + 1, *end = name + n - 1;
	while (p < end) {
		const char *eq = memchr(p, '=', (size_t)(end - p));
		if (!eq)
			return "a label without '='";
		if (!label_name_ok(p, (size_t)(eq - p)))
			return "a bad label name";
		const char *comma = memchr(eq, ',', (size_t)(end - eq));
		const char *vend = comma ? comma : end;
		if (vend == eq + 1)
			return "an empty label value";
		p = comma ? comma + 1 : end;
	}
	return NULL;
}

/* "stack N" lines: NULL or what is wrong. */
static const char *check_folded(const char *s, size_t n)
{
	const char *e = s + n;
	while (s < e) {
		const char *nl = memchr(s, '\n', (size_t)(e - s));
		const char *le = nl ? nl : e;
		if (le > s) {
			const char *sp = le;
			while (sp > s && sp[-1] != ' ')
				sp--;
			if (sp == s || sp == le)
				return "a line without a count";
			for (const char *d = sp; d < le; d++)
				if (*d < '0' || *d > '9')
					return "a count that is not a number";
		}
		s = le + 1;
	}
	return NULL;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *mc, const char *url,
			       const char *method, const char *version, const char *upload,
			       size_t *upload_size, void **con_cls)
{
	struct prx *r = cls;
	struct conn *c = *con_cls;
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c)
			return MHD_NO;
		*con_cls = c;
		const char *ct = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Type");
		c->p.content_type = dup_or_null(ct);
		if (ct && strstr(ct, "multipart/form-data")) {
			const char *fmt = MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, "format");
			if (!fmt || strcmp(fmt, "pprof")) {
				c->p.multipart = true;
				c->pp = MHD_create_post_processor(mc, 65536, on_field, c);
			}
		}
		return MHD_YES;
	}
	if (*upload_size) {
		if (c->pp && !c->too_big) {
			if (c->len + *upload_size > BODY_MAX)
				c->too_big = true;
			else if (MHD_post_process(c->pp, upload, *upload_size) != MHD_YES)
				c->too_big = true; /* a broken form: answered 400 below */
			c->len += *upload_size;
		} else if (!c->too_big) {
			append(&c->body, &c->len, &c->cap, upload, *upload_size, &c->too_big);
		}
		*upload_size = 0;
		return MHD_YES;
	}
	/* The whole request is in. */
	struct prx_act act = { 0 };
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&r->mu);
	if (r->requests < 256)
		r->times[r->requests] = (double)now.tv_sec + now.tv_nsec / 1e9;
	r->requests++;
	if (r->next_act < r->nscript)
		act = r->script[r->next_act++];
	char *want_auth = dup_or_null(r->want_auth), *want_tenant = dup_or_null(r->want_tenant);
	pthread_mutex_unlock(&r->mu);
	if (act.delay_ms) {
		/* a scripted slow answer (what is tested is the client's
		 * timeout, not a synchronisation) */
		struct timespec ts = { act.delay_ms / 1000, (long)(act.delay_ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) && errno == EINTR) {
		}
	}
	int status = 200;
	const char *text = "";
	char echo[1024];
	struct prx_push *p = &c->p;
	p->authorization = dup_or_null(MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization"));
	p->tenant = dup_or_null(MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "X-Scope-OrgID"));
#define ARG(field, key) p->field = dup_or_null(MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, key))
	ARG(name, "name");
	ARG(from, "from");
	ARG(until, "until");
	ARG(format, "format");
	ARG(units, "units");
	ARG(aggregation, "aggregationType");
	ARG(sample_rate, "sampleRate");
	ARG(spy_name, "spyName");
#undef ARG
	const char *bad;
	if (strcmp(method, "POST") || strcmp(url, "/ingest")) {
		status = 404;
		text = "not found";
	} else if (want_auth && (!p->authorization || strcmp(p->authorization, want_auth))) {
		status = 401;
		text = "unauthorized";
	} else if (want_tenant && (!p->tenant || strcmp(p->tenant, want_tenant))) {
		status = 401;
		text = "no org id";
	} else if (c->too_big) {
		status = 413;
		text = "request body too large";
	} else if (!p->name || !p->from || !p->until) {
		status = 400;
		text = "name, from and until are required";
	} else if ((bad = check_name(p->name))) {
		status = 400;
		text = bad;
	} else if (act.status) {
		status = act.status;
		text = status == 429 ? "too many requests" : "scripted failure";
		if (act.echo_headers) { /* a careless proxy: the credentials echoed */
			snprintf(echo, sizeof(echo), "%s (Authorization: %s, X-Scope-OrgID: %s)", text,
				 p->authorization ? p->authorization : "-", p->tenant ? p->tenant : "-");
			text = echo;
		}
	} else {
		if (!p->multipart) {
			p->profile = c->body;
			p->profile_len = c->len;
			c->body = NULL;
		}
		if (!p->profile || !p->profile_len) {
			status = 400;
			text = "empty profile";
		} else if (!p->multipart && (!p->format || strcmp(p->format, "pprof")) &&
			   (bad = check_folded(p->profile, p->profile_len))) {
			status = 400;
			text = bad;
		}
	}
	free(want_auth);
	free(want_tenant);
	pthread_mutex_lock(&r->mu);
	r->status_n[status < 600 ? status : 0]++;
	if (status == 200 && r->npushes == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 16;
		struct prx_push *np = realloc(r->pushes, nc * sizeof(*np));
		if (np) {
			r->pushes = np;
			r->cap = nc;
		}
	}
	if (status == 200 && r->npushes < r->cap) {
		r->pushes[r->npushes++] = *p;
		memset(p, 0, sizeof(*p));
	}
	pthread_mutex_unlock(&r->mu);
	return reply(mc, status, text, act.retry_after_s);
}

static void completed(void *cls, struct MHD_Connection *mc, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct conn *c = *con_cls;
	if (!c)
		return;
	if (c->pp)
		MHD_destroy_post_processor(c->pp);
	free(c->body);
	prx_push_free(&c->p);
	free(c);
	*con_cls = NULL;
}

struct prx *prx_start(unsigned port)
{
	struct prx *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
				(uint16_t)port, NULL, NULL, handler, r, MHD_OPTION_SOCK_ADDR, &sa,
				MHD_OPTION_NOTIFY_COMPLETED, completed, r,
				MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
	if (!r->d) {
		free(r);
		return NULL;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT);
	r->port = di ? di->port : port;
	return r;
}

unsigned prx_port(const struct prx *r)
{
	return r->port;
}

void prx_stop(struct prx *r)
{
	if (!r)
		return;
	MHD_stop_daemon(r->d);
	for (size_t i = 0; i < r->npushes; i++)
		prx_push_free(&r->pushes[i]);
	free(r->pushes);
	free(r->script);
	free(r->want_auth);
	free(r->want_tenant);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

void prx_script(struct prx *r, const struct prx_act *acts, size_t n)
{
	pthread_mutex_lock(&r->mu);
	free(r->script);
	r->script = n ? malloc(n * sizeof(*acts)) : NULL;
	if (r->script)
		memcpy(r->script, acts, n * sizeof(*acts));
	r->nscript = r->script ? n : 0;
	r->next_act = 0;
	pthread_mutex_unlock(&r->mu);
}

void prx_require(struct prx *r, const char *authorization, const char *tenant)
{
	pthread_mutex_lock(&r->mu);
	free(r->want_auth);
	free(r->want_tenant);
	r->want_auth = dup_or_null(authorization);
	r->want_tenant = dup_or_null(tenant);
	pthread_mutex_unlock(&r->mu);
}

size_t prx_requests(struct prx *r)
{
	pthread_mutex_lock(&r->mu);
	size_t n = r->requests;
	pthread_mutex_unlock(&r->mu);
	return n;
}

size_t prx_accepted(struct prx *r)
{
	pthread_mutex_lock(&r->mu);
	size_t n = r->npushes;
	pthread_mutex_unlock(&r->mu);
	return n;
}

size_t prx_status_count(struct prx *r, int s)
{
	pthread_mutex_lock(&r->mu);
	size_t n = s > 0 && s < 600 ? r->status_n[s] : 0;
	pthread_mutex_unlock(&r->mu);
	return n;
}

double prx_request_time(struct prx *r, size_t i)
{
	pthread_mutex_lock(&r->mu);
	double t = i < r->requests && i < 256 ? r->times[i] : 0;
	pthread_mutex_unlock(&r->mu);
	return t;
}

static char *dupmem(const char *p, size_t n)
{
	if (!p)
		return NULL;
	char *d = malloc(n + 1);
	memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

struct prx_push prx_get(struct prx *r, size_t i)
{
	struct prx_push c = { 0 };
	pthread_mutex_lock(&r->mu);
	if (i < r->npushes) {
		const struct prx_push *p = &r->pushes[i];
		c = (struct prx_push){
			.name = dup_or_null(p->name), .from = dup_or_null(p->from),
			.until = dup_or_null(p->until), .format = dup_or_null(p->format),
			.units = dup_or_null(p->units), .aggregation = dup_or_null(p->aggregation),
			.sample_rate = dup_or_null(p->sample_rate),
			.spy_name = dup_or_null(p->spy_name),
			.content_type = dup_or_null(p->content_type),
			.authorization = dup_or_null(p->authorization),
			.tenant = dup_or_null(p->tenant),
			.profile = dupmem(p->profile, p->profile_len), .profile_len = p->profile_len,
			.stc = dup_or_null(p->stc), .multipart = p->multipart,
		};
	}
	pthread_mutex_unlock(&r->mu);
	return c;
}

bool prx_wait(struct prx *r, bool (*pred)(struct prx *r, void *arg), void *arg, unsigned max_ms)
{
	for (unsigned waited = 0;; waited += 5) {
		if (pred(r, arg))
			return true;
		if (waited >= max_ms)
			return false;
		struct timespec ts = { 0, 5000000L }; /* one poll period */
		nanosleep(&ts, NULL);
	}
}

static bool accepted_at_least(struct prx *r, void *arg)
{
	return prx_accepted(r) >= *(size_t *)arg;
}

static bool requests_at_least(struct prx *r, void *arg)
{
	return prx_requests(r) >= *(size_t *)arg;
}

bool prx_wait_accepted(struct prx *r, size_t n, unsigned max_ms)
{
	return prx_wait(r, accepted_at_least, &n, max_ms);
}

bool prx_wait_requests(struct prx *r, size_t n, unsigned max_ms)
{
	return prx_wait(r, requests_at_least, &n, max_ms);
}
