/*
 * control.c — the control API: HTTP/1.1 on a unix socket (mode 0600,
 * peer uid checked), one request per connection, as Docker and
 * Firecracker do, so `curl --unix-socket` works.
 *
 *   GET   /policy       the redacted policy, ETag = its generation
 *   PUT   /policy       replace (YAML or JSON); answered once enforced
 *   PATCH /policy       RFC 7396 JSON merge patch
 *   GET   /stats        counters as JSON
 *   GET   /metrics      the same for Prometheus
 *   GET   /connections  live connections
 *
 * PUT and PATCH honour If-Match (412 on a stale generation, a weak tag
 * or a value that is no If-Match at all) and If-None-Match (412 when it
 * names the generation in force, or is *); a policy that does not load
 * is a 400 listing every FILE:LINE:COL problem, and the one in force
 * stays.  Either refusal, and that of a change whose body is chunked or
 * too large, is an audit line of its own (outcome denied, why, never the
 * submitted text), as a failed SIGHUP is.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/accept_pause.h"
#include "proxy/broker.h"
#include "proxy/core.h"
#include "proxy/ctlsock.h"
#include "proxy/http.h"
#include "proxy/jwt.h"

#define CONTROL_TIMEOUT_MS 10000
/* the largest request buffer kept between requests */
#define CONTROL_KEEP_MAX (4u << 20)

struct fb_control {
	struct fb_proxy *p;
	int fd;
	struct fb_accept_pause pause;
	char *path;
	struct client *clients;
	/*
	 * The buffer of the largest request so far, wiped, for the next
	 * one: a 10k-domain policy is a 300 KB body, and a buffer that
	 * size from malloc is a fresh mapping each time (glibc's mmap
	 * threshold), some 75 page faults that cost an update 1 ms or more
	 * under a hypervisor that shadows page tables.
	 */
	char *kept;
	size_t kept_cap;
};

struct client {
	struct fb_control *ctl;
	struct client *prev, *next;
	int fd;
	char who[64];
	char *in;
	size_t len, cap;
	size_t whole;         /* the request's size, once its head is in */
	char *out;            /* the response, once there is one */
	size_t out_len, out_off;
	struct fb_timer *timer;
};

/* ---- responses --------------------------------------------------------- */

/* A complete response; `extra` is more header lines, each ending in CRLF. */
static int respond(char **resp, size_t *resp_len, int status,
		   const char *type, const char *extra, const char *body,
		   size_t body_len)
{
	char head[1024], *buf;
	int n = fb_ctlsock_head(head, sizeof(head), status, type, body_len,
				extra);

	if (n < 0 || (size_t)n >= sizeof(head) ||
	    !(buf = malloc((size_t)n + body_len + 1)))
		return -1;
	memcpy(buf, head, (size_t)n);
	if (body_len)
		memcpy(buf + n, body, body_len);
	buf[(size_t)n + body_len] = '\0'; /* a string too, for its readers */
	*resp = buf;
	*resp_len = (size_t)n + body_len;
	return 1;
}

static int respond_text(char **resp, size_t *resp_len, int status,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int respond_text(char **resp, size_t *resp_len, int status,
			const char *fmt, ...)
{
	char body[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(body))
		n = sizeof(body) - 1;
	return respond(resp, resp_len, status, "text/plain; charset=utf-8",
		       NULL, body, (size_t)n);
}

/* ---- the policy resource ----------------------------------------------- */

static int get_policy(struct fb_proxy *p, char **resp, size_t *resp_len)
{
	char *dump = fb_policy_dump(p->policy, false);
	char etag[64];
	int rc;

	if (!dump)
		return respond_text(resp, resp_len, 500, "out of memory\n");
	snprintf(etag, sizeof(etag), "ETag: \"%llu\"\r\n",
		 (unsigned long long)p->generation);
	rc = respond(resp, resp_len, 200, "application/json", etag, dump,
		     strlen(dump));
	free(dump);
	return rc;
}

/* A precondition's list of entity tags, against the policy's. */
enum tags { TAGS_ABSENT, TAGS_MATCH, TAGS_NO_MATCH, TAGS_MALFORMED };

/* etagc (RFC 9110 8.8.3): any visible byte but DQUOTE, and obs-text. */
static bool is_etagc(unsigned char c)
{
	return c == 0x21 || (c >= 0x23 && c != 0x7f);
}

/*
 * The If-Match or If-None-Match fields `name` (RFC 9110 13.1.1, 13.1.2)
 * against the policy's entity tag, "N" for generation N.  "*" matches,
 * since there is always a policy.  A list of entity tags matches when one
 * of them does: by the strong comparison for If-Match, where W/"N" never
 * does (a weak tag is no promise that the policy is the same byte for
 * byte), by the weak one for If-None-Match, as the RFC asks of each.  The
 * list may span several lines and holds empty elements (", ,").  Anything
 * else is neither "*" nor a list of entity tags: malformed, which the
 * caller refuses rather than make a change without the check the client
 * asked for.
 */
static enum tags tags(const struct fb_http_req *req, const char *name,
		      uint64_t generation)
{
	bool weak_ok = strcasecmp(name, "if-none-match") == 0;
	size_t name_len = strlen(name), want_len, elems = 0;
	bool present = false, star = false, match = false;
	char want[24];

	want_len = (size_t)snprintf(want, sizeof(want), "%llu",
				    (unsigned long long)generation);
	for (size_t i = 0; i < req->nfields; i++) {
		const struct fb_http_header *h = &req->fields[i];
		const char *s = h->value, *end = h->value + h->value_len;

		if (h->name_len != name_len ||
		    strncasecmp(h->name, name, name_len) != 0)
			continue;
		present = true;
		for (;;) {
			const char *tag;
			bool weak;

			while (s < end && (*s == ' ' || *s == '\t' || *s == ','))
				s++;
			if (s == end)
				break;
			elems++;
			if (*s == '*') {
				star = true;
				s++;
			} else {
				weak = end - s >= 2 && s[0] == 'W' && s[1] == '/';
				if (weak)
					s += 2;
				if (s == end || *s != '"')
					return TAGS_MALFORMED;
				for (tag = ++s; s < end && *s != '"'; s++)
					if (!is_etagc((unsigned char)*s))
						return TAGS_MALFORMED;
				if (s == end)
					return TAGS_MALFORMED;
				if ((!weak || weak_ok) &&
				    (size_t)(s - tag) == want_len &&
				    memcmp(tag, want, want_len) == 0)
					match = true;
				s++;
			}
			while (s < end && (*s == ' ' || *s == '\t'))
				s++;
			if (s < end && *s != ',')
				return TAGS_MALFORMED;
		}
	}
	if (!present)
		return TAGS_ABSENT;
	if (star)
		return elems == 1 ? TAGS_MATCH : TAGS_MALFORMED;
	return match ? TAGS_MATCH : TAGS_NO_MATCH;
}

/*
 * The preconditions of a change, in the RFC's order (13.2.2): If-Match
 * must match, then If-None-Match must not ("*" never passes: there is
 * always a policy).  NULL when the change may go, else why not, for the
 * audit line, with the 412's text in `text`.
 */
static const char *precondition_failed(const struct fb_http_req *req,
				       uint64_t generation, char *text,
				       size_t size)
{
	unsigned long long g = (unsigned long long)generation;

	switch (tags(req, "if-match", generation)) {
	case TAGS_ABSENT:
	case TAGS_MATCH:
		break;
	case TAGS_NO_MATCH:
		snprintf(text, size, "policy generation is %llu, not the one in"
			 " If-Match (a weak W/ tag never matches)\n", g);
		return "stale If-Match";
	case TAGS_MALFORMED:
		snprintf(text, size, "If-Match is neither * nor a list of entity"
			 " tags (\"%llu\" is the policy's): nothing changed\n", g);
		return "malformed If-Match";
	}
	switch (tags(req, "if-none-match", generation)) {
	case TAGS_ABSENT:
	case TAGS_NO_MATCH:
		return NULL;
	case TAGS_MATCH:
		snprintf(text, size, "If-None-Match names the policy in force"
			 " (generation %llu, or *): nothing changed\n", g);
		return "If-None-Match matched";
	case TAGS_MALFORMED:
	default:
		snprintf(text, size, "If-None-Match is neither * nor a list of"
			 " entity tags (\"%llu\" is the policy's): nothing"
			 " changed\n", g);
		return "malformed If-None-Match";
	}
}

/*
 * Who asks for a change, as its audit line names them: the socket's peer
 * and, when that is the launcher daemon passing on a request of its own
 * client, the client it names (Firebreak-On-Behalf-Of: uid=U pid=P).  Only
 * the peers the socket lets in can send one, and they hold the policy
 * anyway; a value of any other form is left out.
 */
static void changer(char *buf, size_t size, const char *who,
		    const struct fb_http_req *req, bool patch)
{
	const struct fb_http_header *h =
		fb_http_field(req, "firebreak-on-behalf-of");
	int n = snprintf(buf, size, "%s %s", who, patch ? "PATCH" : "PUT");
	char v[48], again[48];
	unsigned uid, pid;

	if (!h || h->value_len >= sizeof(v) || n < 0 || (size_t)n >= size)
		return;
	memcpy(v, h->value, h->value_len);
	v[h->value_len] = '\0';
	if (sscanf(v, "uid=%u pid=%u", &uid, &pid) != 2)
		return;
	snprintf(again, sizeof(again), "uid=%u pid=%u", uid, pid);
	if (strcmp(again, v) == 0)
		snprintf(buf + n, size - (size_t)n, " for %s", v);
}

static int change_policy(struct fb_proxy *p, const struct fb_http_req *req,
			 const char *body, size_t body_len, bool patch,
			 const char *who, char **resp, size_t *resp_len)
{
	struct fb_diags diags = { 0 };
	/* Positions are in the body, not in the --policy file the options
	 * name: a problem pointed there sends the operator to the wrong text. */
	struct fb_load_opts opts = p->load_opts;
	struct fb_policy *np;
	char err[1024], out[2048], why[6 * sizeof(p->cut.error)], whobuf[128];
	const char *failed;
	size_t closed;
	int n;

	changer(whobuf, sizeof(whobuf), who, req, patch);
	failed = precondition_failed(req, p->generation, out, sizeof(out));
	if (failed) {
		snprintf(err, sizeof(err), "%s: generation is %llu", failed,
			 (unsigned long long)p->generation);
		fb_proxy_audit_rejected(p, whobuf, err);
		return respond_text(resp, resp_len, 412, "%s", out);
	}
	opts.filename = patch ? "<patch>" : "<body>";
	np = patch ? fb_policy_patch(p->policy, body, body_len, &opts, &diags)
		   : fb_policy_load(body, body_len, &opts, &diags);
	if (!np) {
		char *msg = fb_diags_to_string(&diags);
		int rc;

		/* Positions only: a diagnostic's text may quote the policy,
		 * and the log must not hold what the requester sent. */
		if (diags.n > 0 && diags.v[0].line > 0)
			snprintf(err, sizeof(err),
				 "invalid policy: %zu problem(s), the first at %u:%u",
				 diags.n, diags.v[0].line, diags.v[0].col);
		else
			snprintf(err, sizeof(err), "invalid policy: %zu problem(s)",
				 diags.n);
		fb_proxy_audit_rejected(p, whobuf, err);
		fb_diags_free(&diags);
		if (!msg)
			return respond_text(resp, resp_len, 500, "out of memory\n");
		rc = respond(resp, resp_len, 400, "text/plain; charset=utf-8",
			     NULL, msg, strlen(msg));
		free(msg);
		return rc;
	}
	fb_diags_free(&diags);
	if (fb_proxy_swap(p, np, whobuf, &closed, err, sizeof(err)) < 0)
		return respond_text(resp, resp_len, 500,
				    "policy not applied, generation %llu stays: %s\n",
				    (unsigned long long)p->generation, err);
	n = snprintf(out, sizeof(out), "{\"generation\":%llu,\"closed\":%zu",
		     (unsigned long long)p->generation, closed);
	/* Applied, but forwarded flows it denies may still run until a
	 * retry cuts them (proxy.c, "cutting forwarded flows"). */
	if (p->stats.flows_uncut) {
		fb_json_escape(p->cut.error, strlen(p->cut.error), why,
			       sizeof(why));
		n += snprintf(out + n, sizeof(out) - (size_t)n,
			      ",\"flows_cut\":false,\"flows_cut_error\":\"%s\"",
			      why);
	}
	n += snprintf(out + n, sizeof(out) - (size_t)n, "}\n");
	snprintf(err, sizeof(err), "ETag: \"%llu\"\r\n",
		 (unsigned long long)p->generation);
	return respond(resp, resp_len, 200, "application/json", err, out,
		       (size_t)n);
}

/* ---- routing ----------------------------------------------------------- */

static bool slice_is(const struct fb_http_slice *s, const char *lit)
{
	return s->len == strlen(lit) && memcmp(s->ptr, lit, s->len) == 0;
}

static int serve_doc(char **resp, size_t *resp_len, const char *type,
		     char *doc)
{
	int rc;

	if (!doc)
		return respond_text(resp, resp_len, 500, "out of memory\n");
	rc = respond(resp, resp_len, 200, type, NULL, doc, strlen(doc));
	free(doc);
	return rc;
}

static int route(struct fb_proxy *p, const struct fb_http_req *req,
		 const char *body, size_t body_len, const char *who,
		 char **resp, size_t *resp_len)
{
	const struct fb_http_slice *m = &req->method;
	bool get = slice_is(m, "GET");
	struct fb_stats now = p->stats;
	struct fb_audit_health health;
	struct fb_resolver_stats rs;
	uint64_t up, down;

	if (slice_is(&req->path, "/policy") && !req->query.ptr) {
		if (get)
			return get_policy(p, resp, resp_len);
		if (slice_is(m, "PUT") || slice_is(m, "PATCH"))
			return change_policy(p, req, body, body_len,
					     slice_is(m, "PATCH"), who, resp,
					     resp_len);
		return respond(resp, resp_len, 405, "text/plain; charset=utf-8",
			       "Allow: GET, PUT, PATCH\r\n",
			       "method not allowed\n", 19);
	}
	if (slice_is(&req->path, "/stats") || slice_is(&req->path, "/metrics") ||
	    slice_is(&req->path, "/connections") || slice_is(&req->path, "/jwks")) {
		if (!get)
			return respond(resp, resp_len, 405,
				       "text/plain; charset=utf-8",
				       "Allow: GET\r\n", "method not allowed\n", 19);
		/* byte counters include the connections still open,
		 * brokered ones too */
		fb_conns_bytes(p, &up, &down);
		fb_brokers_bytes(p, &up, &down);
		now.bytes_up += up;
		now.bytes_down += down;
		health = fb_audit_health(p->audit);
		now.audit_lines_lost = health.lines_lost;
		now.audit_reopen_failed = health.reopen_failed;
		if (p->resolver) {
			fb_resolver_stats(p->resolver, &rs);
			now.upstream_queries = rs.upstream;
			now.upstream_failed = rs.failures;
			now.upstream_rate_limited = rs.rate_limited;
		}
		if (slice_is(&req->path, "/stats"))
			return serve_doc(resp, resp_len, "application/json",
					 fb_stats_json(&now));
		if (slice_is(&req->path, "/metrics"))
			return serve_doc(resp, resp_len,
					 "text/plain; version=0.0.4",
					 fb_stats_metrics(&now));
		/* the key forward targets verify x-firebreak-token with */
		if (slice_is(&req->path, "/jwks")) {
			if (!p->broker || !p->broker->jwt)
				return respond_text(resp, resp_len, 404,
						    "no token signing key (--jwt-key)\n");
			return serve_doc(resp, resp_len, "application/json",
					 fb_jwks_json(p->broker->jwt));
		}
		return serve_doc(resp, resp_len, "application/json",
				 fb_conns_json(p));
	}
	return respond_text(resp, resp_len, 404, "no such resource\n");
}

/* fb_control_handle; when more is needed and the head is in, *whole
 * receives the size of the whole request, so that the body is read
 * into room made once. */
static int handle(struct fb_proxy *p, const char *buf, size_t len,
		  const char *who, char **resp, size_t *resp_len, size_t *whole)
{
	struct fb_http_req req;
	char why[256];
	int rc = fb_ctlsock_request(&req, buf, len, FB_CONTROL_BODY_MAX, whole,
				    why, sizeof(why));

	if (rc == 0)
		return 0;
	/* A change refused for its framing (chunked, too large) is an
	 * attempt the log shows too; a head that did not parse names no
	 * method to go by. */
	if ((rc == 411 || rc == 413) && slice_is(&req.path, "/policy") &&
	    (slice_is(&req.method, "PUT") || slice_is(&req.method, "PATCH"))) {
		char whobuf[128];

		changer(whobuf, sizeof(whobuf), who, &req,
			slice_is(&req.method, "PATCH"));
		fb_proxy_audit_rejected(p, whobuf, why);
	}
	if (rc != 1)
		return respond_text(resp, resp_len, rc, "%s\n", why);
	return route(p, &req, buf + req.head_len,
		     req.content_length > 0 ? (size_t)req.content_length : 0,
		     who, resp, resp_len);
}

int fb_control_handle(struct fb_proxy *p, const char *buf, size_t len,
		      const char *who, char **resp, size_t *resp_len)
{
	size_t whole;

	return handle(p, buf, len, who, resp, resp_len, &whole);
}

/* ---- the socket -------------------------------------------------------- */

/* `cl`'s buffer, kept when it is the largest yet; freed otherwise. */
static void keep_buffer(struct fb_control *ctl, struct client *cl)
{
	if (cl->cap <= ctl->kept_cap || cl->cap > CONTROL_KEEP_MAX) {
		fb_ctlsock_wipe_free(cl->in, cl->len);
		return;
	}
	explicit_bzero(cl->in, cl->len); /* kept: none of it stays behind */
	free(ctl->kept);
	ctl->kept = cl->in;
	ctl->kept_cap = cl->cap;
}

static void client_free(struct client *cl)
{
	struct fb_control *ctl = cl->ctl;

	fb_timer_cancel(ctl->p->loop, cl->timer);
	fb_loop_del(ctl->p->loop, cl->fd);
	close(cl->fd);
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		ctl->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	keep_buffer(ctl, cl);
	fb_ctlsock_wipe_free(cl->out, cl->out_len);
	free(cl);
}

static void client_timeout(struct fb_loop *l, void *arg)
{
	struct client *cl = arg;

	(void)l;
	cl->timer = NULL;
	client_free(cl);
}

static void client_write(struct client *cl)
{
	while (cl->out_off < cl->out_len) {
		ssize_t n = send(cl->fd, cl->out + cl->out_off,
				 cl->out_len - cl->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN) {
			fb_loop_mod(cl->ctl->p->loop, cl->fd, EPOLLOUT);
			return;
		}
		if (n < 0)
			break;
		cl->out_off += (size_t)n;
	}
	client_free(cl);
}

static void client_read(struct client *cl)
{
	size_t cap = fb_ctlsock_room(cl->len, cl->cap, cl->whole,
				     FB_CONTROL_BODY_MAX);
	ssize_t n;
	int rc;

	if (!cap) {
		client_free(cl);
		return;
	}
	if (cap != cl->cap) {
		char *in;

		if (cap <= cl->ctl->kept_cap) { /* takes the kept one */
			in = cl->ctl->kept;
			cap = cl->ctl->kept_cap;
			cl->ctl->kept = NULL;
			cl->ctl->kept_cap = 0;
		} else {
			in = malloc(cap); /* not realloc: the old one is wiped */
		}
		if (!in) {
			client_free(cl);
			return;
		}
		fb_ctlsock_move(in, cl->in, cl->len);
		cl->in = in;
		cl->cap = cap;
	}
	n = recv(cl->fd, cl->in + cl->len, cl->cap - cl->len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_free(cl);
		return;
	}
	cl->len += (size_t)n;
	if (cl->len < cl->whole)
		return; /* the head is in and said how much: not all of it yet */
	rc = handle(cl->ctl->p, cl->in, cl->len, cl->who, &cl->out,
		    &cl->out_len, &cl->whole);
	if (rc == 0)
		return;
	if (rc < 0) {
		client_free(cl);
		return;
	}
	client_write(cl);
}

static void on_client(struct fb_loop *l, int fd, uint32_t events, void *arg)
{
	struct client *cl = arg;

	(void)l;
	(void)fd;
	(void)events;
	if (cl->out)
		client_write(cl);
	else
		client_read(cl);
}

static void on_accept(struct fb_loop *l, int fd, uint32_t events, void *arg)
{
	struct fb_control *ctl = arg;
	struct ucred cred;
	struct client *cl;
	int cfd;

	(void)events;
	cfd = fb_ctlsock_accept(fd, &cred);
	if (cfd < 0) {
		fb_accept_pause(&ctl->pause, l, &ctl->fd, 1, errno);
		return;
	}
	cl = calloc(1, sizeof(*cl));
	if (!cl || fb_loop_add(l, cfd, EPOLLIN, on_client, cl) < 0) {
		free(cl);
		close(cfd);
		return;
	}
	cl->ctl = ctl;
	cl->fd = cfd;
	snprintf(cl->who, sizeof(cl->who), "control uid=%u pid=%d",
		 (unsigned)cred.uid, (int)cred.pid);
	cl->next = ctl->clients;
	if (ctl->clients)
		ctl->clients->prev = cl;
	ctl->clients = cl;
	cl->timer = fb_timer_add(l, CONTROL_TIMEOUT_MS, client_timeout, cl);
}

struct fb_control *fb_control_new(struct fb_proxy *p, const char *path,
				  char *err, size_t errsize)
{
	struct fb_control *ctl = calloc(1, sizeof(*ctl));

	if (!ctl || !(ctl->path = strdup(path))) {
		snprintf(err, errsize, "--control %s: out of memory", path);
		free(ctl);
		return NULL;
	}
	ctl->p = p;
	ctl->fd = fb_ctlsock_listen(p->loop, path, "--control", on_accept, ctl,
				    err, errsize);
	if (ctl->fd < 0) {
		free(ctl->path);
		free(ctl);
		return NULL;
	}
	return ctl;
}

void fb_control_free(struct fb_control *ctl)
{
	if (!ctl)
		return;
	while (ctl->clients)
		client_free(ctl->clients);
	free(ctl->kept);
	fb_accept_pause_cancel(&ctl->pause);
	fb_ctlsock_close(ctl->p->loop, ctl->fd, ctl->path);
	free(ctl->path);
	free(ctl);
}
