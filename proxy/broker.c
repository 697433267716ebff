/*
 * broker.c — one brokered connection, from the guest's ClientHello to
 * close.
 *
 * The guest's TLS ends here, under a leaf the sandbox's CA minted for
 * exactly the peeked name.  Then request by request:
 *
 *   head     read and parse strictly (http.h); Host must be the SNI
 *   decide   the key's rules, first match wins (fb_policy_decide_request)
 *   act      respond locally, or rewrite the head (transform / forward)
 *            and send it over verified TLS to the origin or the target
 *   body     streamed by its framing; chunked bodies are re-encoded
 *   response the head parsed just enough to know where it ends, then
 *            relayed as it came, so keep-alive works and the next request
 *            is judged on its own
 *
 * A request the proxy refuses gets its status and "Connection: close";
 * the proxy never tries to resynchronise with a guest it disagreed with.
 * One upstream connection at a time: a request for another target parks
 * or closes the one open.  A connection that ends between exchanges
 * parks its upstream one for the next guest connection (pool.c), which
 * takes it only for a request it may send twice: should the origin have
 * closed it meanwhile, that request goes again, once, on a new one.
 * The two directions run side by side (a 100 Continue or an early
 * response must reach the guest while its body is still coming) but a
 * new request head is read only once the last response is done.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "proxy/broker.h"
#include "proxy/ca.h"
#include "proxy/core.h"
#include "proxy/jwt.h"
#include "proxy/peek.h"
#include "proxy/pemfile.h"

#define IN_MAX   (64 * 1024)  /* guest plaintext not yet consumed */
#define UIN_MAX  (64 * 1024)  /* upstream plaintext not yet consumed */
#define OUT_HIGH (64 * 1024)  /* stop reading the other side above this */
#define RESP_HEAD_MAX (32 * 1024)

enum rq_stage {
	RQ_HANDSHAKE, /* the guest's TLS handshake */
	RQ_HEAD,      /* reading a request head */
	RQ_BODY_START, /* a Content-Length body's first line, not sent yet */
	RQ_BODY,      /* Content-Length body */
	RQ_CHUNKED,   /* chunked body, re-encoded */
	RQ_SENT,      /* request complete; waiting for its response */
	RQ_RAW,       /* after a 101: bytes both ways */
};

enum rs_stage {
	RS_IDLE,      /* no request upstream */
	RS_HEAD,      /* reading a response head (1xx ones relayed) */
	RS_BODY,      /* Content-Length */
	RS_CHUNKED,
	RS_EOF,       /* delimited by the upstream closing */
	RS_RAW,
};

/* UP_TLS spans the TCP connect too: the ClientHello leaves once the
 * connect completes, a send before that waiting like any other. */
enum up_state { UP_NONE, UP_RESOLVE, UP_TLS, UP_READY };

struct obuf {
	char *p;
	size_t off, len, cap; /* pending bytes are p[off, len) */
};

struct fb_broker {
	struct fb_proxy *p;
	struct fb_broker_ctx *bc;
	struct fb_broker *prev, *next;
	uint64_t id;
	struct fb_policy *policy;
	uint64_t generation;          /* of policy: decided under, or rechecked */
	const struct fb_domain *key;
	char sni[FB_NAME_MAX];
	uint16_t port;
	struct fb_addr orig_dst;
	struct fb_addr src_addr;      /* the guest's end, as accepted: a */
	uint16_t src_port;            /* reset socket no longer tells it */
	uint64_t start_ms, last_ms, head_ms;
	struct fb_timer *timer;

	/* guest side */
	struct wire gw;
	SSL *cssl;
	uint32_t cev, cwant;   /* watched for; wanted at the last broker_run */
	uint32_t c_rd_ev, c_wr_ev;
	uint32_t c_fired;      /* reported since the last broker_run */
	char *in;
	size_t in_len;
	bool c_eof;
	struct obuf down;
	bool closing;          /* flush `down`, then close */

	/* the request being handled */
	enum rq_stage rq;
	struct fb_http_req req;
	struct fb_chunked rq_dec;
	uint64_t rq_left;
	bool discard;          /* body of a request answered locally */
	bool head_method;      /* HEAD: the response has no body */
	bool close_after;      /* the guest asked to close, or HTTP/1.0 */
	bool http10;           /* so it went upstream: the origin will close */
	bool replayable;       /* idempotent and bodiless: may be sent twice */
	bool websocket;
	/* for the request line: one byte past what the log shows, so that
	 * a longer one is flagged cut there */
	char method[FB_AUDIT_GUEST_MAX + 2];
	char path[FB_AUDIT_GUEST_MAX + 2];
	char rule[FB_NAME_MAX + 16];
	uint64_t rule_generation;     /* the policy the rule came from */
	char injected[256];
	const char *verdict;          /* the decision, or why it was refused */
	bool refused;                 /* answered here with an error */
	bool logged;                  /* its request line is written */
	bool sent_up;                 /* its head went to an upstream */
	bool sent_reused;             /* ... on one that carried one before */
	bool answer_seen;             /* some of its response came back */
	uint64_t req_generation;      /* of the policy that decided it */
	uint64_t req_start_ms, req_up, req_down;
	int status;

	/* upstream side */
	enum up_state up;
	char up_host[FB_NAME_MAX];
	uint16_t up_port;
	struct fb_resolve_req *rreq;
	struct wire uw;
	SSL *ussl;
	uint32_t uev, uwant, u_rd_ev, u_wr_ev, u_fired;
	struct sockaddr_storage up_addr;
	struct fb_chain *up_chain;     /* the CNAMEs the origin's name led through */
	struct obuf upq;
	char *uin;
	size_t uin_len;
	bool u_eof;
	bool up_keep;          /* the last response left the upstream open */
	bool up_idle;          /* between exchanges, the last one clean */
	unsigned up_served;    /* requests the upstream connection carried */
	uint64_t up_generation;       /* of the policy it was last checked by */
	char *replay;          /* the head sent on a connection that carried */
	size_t replay_len;     /* one before, for sending again on a new one */
	enum rs_stage rs;
	struct fb_chunked rs_dec;
	uint64_t rs_left;
};

static void broker_run(struct fb_broker *b);
static void broker_close(struct fb_broker *b, const char *why);

/* ---- buffers ------------------------------------------------------------ */

static int obuf_put(struct obuf *o, const void *data, size_t n)
{
	if (n == 0)
		return 0; /* a response rule's empty body: data may be NULL */
	if (o->off == o->len)
		o->off = o->len = 0;
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		char *p;

		if (o->off) {
			memmove(o->p, o->p + o->off, o->len - o->off);
			o->len -= o->off;
			o->off = 0;
		}
		while (cap < o->len + n)
			cap *= 2;
		if (cap != o->cap) {
			p = realloc(o->p, cap);
			if (!p)
				return -1;
			o->p = p;
			o->cap = cap;
		}
	}
	memcpy(o->p + o->len, data, n);
	o->len += n;
	return 0;
}

static size_t obuf_pending(const struct obuf *o)
{
	return o->len - o->off;
}

static void consume(char *buf, size_t *len, size_t n)
{
	memmove(buf, buf + n, *len - n);
	*len -= n;
}

/* ---- the BIO of both TLS ends: a struct wire ----------------------------- */

static int wire_read(BIO *bio, char *out, int len)
{
	struct wire *w = BIO_get_data(bio);
	ssize_t n;

	BIO_clear_retry_flags(bio);
	if (w->peek_off < w->npeeked) {
		size_t k = w->npeeked - w->peek_off;

		if (k > (size_t)len)
			k = (size_t)len;
		memcpy(out, w->peeked + w->peek_off, k);
		w->peek_off += k;
		return (int)k;
	}
	n = recv(w->fd, out, (size_t)len, 0);
	w->drained = n < len;
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		BIO_set_retry_read(bio);
		return -1;
	}
	if (n > 0)
		w->in += (uint64_t)n;
	return n < 0 ? -1 : (int)n;
}

static int wire_write(BIO *bio, const char *in, int len)
{
	struct wire *w = BIO_get_data(bio);
	ssize_t n;

	BIO_clear_retry_flags(bio);
	n = send(w->fd, in, (size_t)len, MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		BIO_set_retry_write(bio);
		return -1;
	}
	if (n > 0)
		w->out += (uint64_t)n;
	return n < 0 ? -1 : (int)n;
}

static long wire_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	(void)bio;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *wire_method_new(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				     "firebreak broker socket");

	if (!m || !BIO_meth_set_read(m, wire_read) ||
	    !BIO_meth_set_write(m, wire_write) ||
	    !BIO_meth_set_ctrl(m, wire_ctrl)) {
		BIO_meth_free(m);
		return NULL;
	}
	return m;
}

static BIO *wire_bio(struct fb_broker *b, struct wire *w)
{
	BIO *bio = BIO_new(b->bc->bio_method);

	if (bio) {
		BIO_set_data(bio, w);
		BIO_set_init(bio, 1);
	}
	return bio;
}

/* An event on the wire's socket: reading may find something again. */
static void wire_fired(struct wire *w, uint32_t ev)
{
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
		w->drained = false;
}

/* ---- TLS I/O helpers ---------------------------------------------------- */

/* After an SSL call failed: the event that would let it proceed, or 0
 * when the connection is finished (closed or broken). */
static uint32_t ssl_wait(SSL *ssl, int ret)
{
	switch (SSL_get_error(ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		return EPOLLIN;
	case SSL_ERROR_WANT_WRITE:
		return EPOLLOUT;
	default:
		ERR_clear_error();
		return 0;
	}
}

/*
 * Read into buf[*len, cap).  1 progress, 0 blocked (*ev set), -1 EOF.
 * A drained socket is not read again until epoll reports it (the read
 * would only fail with EAGAIN), unless OpenSSL still holds bytes.
 */
static int ssl_fill(SSL *ssl, const struct wire *w, char *buf, size_t *len,
		    size_t cap, uint32_t *ev)
{
	size_t n;
	int r;

	if (*len == cap)
		return 0;
	if (w->drained && !SSL_has_pending(ssl)) {
		*ev = EPOLLIN;
		return 0;
	}
	r = SSL_read_ex(ssl, buf + *len, cap - *len, &n);
	if (r == 1) {
		*len += n;
		*ev = EPOLLIN;
		return 1;
	}
	*ev = ssl_wait(ssl, r);
	return *ev ? 0 : -1;
}

/* Write what `o` holds.  1 progress, 0 blocked or empty, -1 broken. */
static int ssl_flush(SSL *ssl, struct obuf *o, uint32_t *ev)
{
	size_t n;
	int r;

	if (!obuf_pending(o))
		return 0;
	r = SSL_write_ex(ssl, o->p + o->off, obuf_pending(o), &n);
	if (r == 1) {
		o->off += n;
		*ev = EPOLLOUT;
		return 1;
	}
	*ev = ssl_wait(ssl, r);
	return *ev ? 0 : -1;
}

/* ---- audit -------------------------------------------------------------- */

static void audit_request(struct fb_broker *b)
{
	struct fb_audit_line ln;
	uint64_t now = fb_loop_now(b->p->loop);

	fb_audit_begin(b->p->audit, &ln, "request",
		       b->refused ? "denied" : "allowed",
		       b->rule[0] ? b->rule_generation : b->generation);
	fb_audit_uint(&ln, "event.id", b->id);
	fb_audit_str(&ln, "event.reason", b->verdict);
	fb_audit_guest(&ln, "tls.client.server_name", b->sni, strlen(b->sni));
	if (b->method[0])
		fb_audit_guest(&ln, "http.request.method", b->method,
			       strlen(b->method));
	if (b->path[0])
		fb_audit_guest(&ln, "url.path", b->path, strlen(b->path));
	if (b->status)
		fb_audit_uint(&ln, "http.response.status_code",
			      (uint64_t)b->status);
	if (b->rule[0])
		fb_audit_str(&ln, "rule.name", b->rule);
	if (b->injected[0])
		fb_audit_str(&ln, "firebreak.injected", b->injected);
	if (b->sent_up && b->up_addr.ss_family)
		fb_audit_sockaddr(&ln, "server", &b->up_addr);
	if (b->sent_reused)
		fb_audit_bool(&ln, "firebreak.upstream_reused", true);
	fb_audit_uint(&ln, "http.request.bytes", b->req_up);
	fb_audit_uint(&ln, "http.response.bytes", b->req_down);
	fb_audit_uint(&ln, "event.duration", (now - b->req_start_ms) * 1000000);
	/* A refusal is on record before the guest hears of it; an answered
	 * request goes with the loop iteration's other lines, one write for
	 * all the keep-alive requests it relayed. */
	if (b->refused)
		fb_audit_emit(b->p->audit, &ln);
	else
		fb_audit_defer(b->p->audit, b->p->loop, &ln);
	b->p->stats.brokered_requests++;
	b->logged = true;
}

static void on_timer(struct fb_loop *l, void *arg);

/* A request head is due within the peek deadline of its first byte. */
static void head_started(struct fb_broker *b)
{
	b->head_ms = fb_loop_now(b->p->loop);
	fb_timer_cancel(b->p->loop, b->timer);
	b->timer = fb_timer_add(b->p->loop, b->p->cfg.peek_timeout_ms,
				on_timer, b);
}

static void request_reset(struct fb_broker *b)
{
	b->method[0] = b->path[0] = b->rule[0] = b->injected[0] = '\0';
	b->verdict = "";
	b->refused = b->sent_up = b->sent_reused = b->answer_seen = false;
	b->logged = false;
	b->status = 0;
	b->req_up = b->req_down = 0;
	b->discard = b->head_method = b->close_after = b->websocket = false;
	b->replayable = false;
	free(b->replay);
	b->replay = NULL;
	fb_http_req_init(&b->req);
	b->rq = RQ_HEAD;
	b->rs = RS_IDLE;
	b->req_start_ms = fb_loop_now(b->p->loop);
	if (b->in_len)
		head_started(b);
}

/* ---- local answers ------------------------------------------------------ */

/*
 * Answer the guest from here.  `close` ends the connection once it is
 * written.  The body is ours (a reason word or the policy's response),
 * never anything the guest or the upstream sent.
 */
static int answer(struct fb_broker *b, int status, const char *ctype,
		  const char *body, size_t body_len, const char *reason,
		  bool close)
{
	char head[512];
	int n;

	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\n%s%s%s%s%s%sContent-Length: %zu\r\n%s\r\n",
		     status, fb_http_status_text(status),
		     ctype ? "Content-Type: " : "", ctype ? ctype : "",
		     ctype ? "\r\n" : "",
		     reason ? "X-Firebreak-Reason: " : "", reason ? reason : "",
		     reason ? "\r\n" : "", body_len,
		     close ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(head) ||
	    obuf_put(&b->down, head, (size_t)n) < 0 ||
	    obuf_put(&b->down, body, body_len) < 0)
		return -1;
	b->status = status;
	b->req_down += (uint64_t)n + body_len;
	if (close)
		b->closing = true;
	return 0;
}

/* Refuse the request and close: its status, our reason, and a body that
 * names the reason so a person reading curl's output knows. */
static void refuse(struct fb_broker *b, int status, const char *reason)
{
	char body[128];
	int n = snprintf(body, sizeof(body), "firebreak: %s\n", reason);

	b->verdict = reason;
	b->refused = true;
	if (answer(b, status, "text/plain", body, (size_t)n, reason, true) < 0)
		b->closing = true;
	audit_request(b);
	b->rq = RQ_SENT;
}

/* ---- the upstream connection -------------------------------------------- */

static void upstream_close(struct fb_broker *b)
{
	if (b->rreq) {
		fb_resolve_cancel(b->rreq);
		b->rreq = NULL;
	}
	if (b->ussl) {
		fb_upstream_release(b->ussl, b->up == UP_READY &&
				    b->rs == RS_IDLE && !b->uin_len);
		b->ussl = NULL;
	}
	fb_loop_close(b->p->loop, b->uw.fd);
	b->uw = (struct wire){ .fd = -1 };
	b->up = UP_NONE;
	b->uev = b->uwant = b->u_fired = 0;
	b->upq.off = b->upq.len = 0;
	b->uin_len = 0;
	b->u_eof = false;
	b->up_keep = b->up_idle = false;
	b->up_served = 0;
	free(b->up_chain);
	b->up_chain = NULL;
}

/* Done with the upstream connection: parked for a later guest connection
 * when it is between clean exchanges (pool.c), else closed. */
static void upstream_release(struct fb_broker *b)
{
	if (b->up == UP_READY && b->up_idle && !b->u_eof && !b->uin_len &&
	    !obuf_pending(&b->upq) && !SSL_has_pending(b->ussl) &&
	    b->up_generation == b->p->generation) {
		fb_pool_put(b->bc->pool, b->p->loop, b->ussl, &b->uw, b->uev,
			    b->up_host, b->up_port, &b->up_addr, b->up_chain);
		b->ussl = NULL;
		b->uw.fd = -1;
		b->up_chain = NULL;
	}
	upstream_close(b);
}

static void on_upstream(struct fb_loop *l, int fd, uint32_t ev, void *arg)
{
	struct fb_broker *b = arg;

	(void)l;
	(void)fd;
	b->u_fired |= ev;
	wire_fired(&b->uw, ev);
	broker_run(b);
}

static int upstream_for(struct fb_broker *b, const char *host, uint16_t port,
			bool pooled);

/*
 * The upstream connection broke before a byte of the response came back.
 * When it had carried a request before, the origin may have closed it as
 * idle just as this request went out; a request that may be sent twice
 * goes again, once, on a new connection, unless the policy changed since
 * it was decided (its head is the old policy's).  true when it did.
 */
static bool resend(struct fb_broker *b)
{
	char host[FB_NAME_MAX];
	uint16_t port = b->up_port;
	char *head = b->replay;
	bool sent;

	if (!head || b->answer_seen || b->rs != RS_HEAD ||
	    b->req_generation != b->p->generation)
		return false;
	b->replay = NULL;
	snprintf(host, sizeof(host), "%s", b->up_host);
	upstream_close(b);
	sent = upstream_for(b, host, port, false) == 0 &&
	       obuf_put(&b->upq, head, b->replay_len) == 0;
	free(head);
	if (sent) {
		b->up_served = 1;
		b->sent_reused = false;
	}
	return sent;
}

static void upstream_failed(struct fb_broker *b, const char *reason)
{
	if (resend(b)) {
		broker_run(b);
		return;
	}
	upstream_close(b);
	if (b->rs == RS_HEAD || b->rs == RS_IDLE) {
		refuse(b, 502, reason);
		b->rs = RS_IDLE;
	} else {
		/* Part of the answer is out (even with the request still
		 * going up): a 502 now would land inside its body.  The guest
		 * can only be cut off, and the line says why. */
		if (!b->logged) {
			b->verdict = reason;
			audit_request(b);
		}
		b->closing = true;
	}
	broker_run(b);
}

/* A TLS record and the HTTP exchange it carries are written whole: Nagle
 * would hold a small response's last segment for the peer's delayed ACK,
 * 40 ms on every keep-alive request. */
static void no_delay(int fd)
{
	int on = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

static void on_resolved(const struct fb_resolved *res, void *arg)
{
	struct fb_broker *b = arg;
	const struct fb_addr *a;
	bool oom = false;
	socklen_t len;
	char err[256];
	bool origin;

	b->rreq = NULL;
	if (res->status != FB_RESOLVE_OK || !res->naddrs) {
		upstream_failed(b, res->status == FB_RESOLVE_NXDOMAIN ?
				   "nxdomain" : "resolve-failed");
		return;
	}
	origin = strcmp(b->up_host, b->sni) == 0;
	/* The origin is a name the guest asked for: its chain must stay
	 * inside the policy.  A forwardURL target is the operator's, named
	 * in the policy itself, and need not be allowed to the guest. */
	if (origin && !fb_resolved_chain_allowed(res, b->policy)) {
		upstream_failed(b, "cname-not-allowed");
		return;
	}
	/* the guest's own destination is preferred for the origin only,
	 * not for a forward target */
	a = fb_resolved_pick(res, b->policy, origin ? &b->orig_dst : NULL);
	if (!a) {
		upstream_failed(b, "resolved-to-denied-address");
		return;
	}
	/* kept with the connection: a later policy must allow it too */
	b->up_chain = origin ? fb_chain_keep(res, &oom) : NULL;
	if (oom) {
		upstream_failed(b, "out-of-resources");
		return;
	}
	len = fb_addr_to_sockaddr(a, b->up_port, &b->up_addr);
	b->up_generation = b->p->generation;
	b->uw.fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (b->uw.fd < 0 ||
	    (connect(b->uw.fd, (struct sockaddr *)&b->up_addr, len) < 0 &&
	     errno != EINPROGRESS)) {
		upstream_failed(b, "dial-failed");
		return;
	}
	no_delay(b->uw.fd);
	b->ussl = fb_upstream_ssl(b->bc->upstream, wire_bio(b, &b->uw),
				  b->up_host, err, sizeof(err));
	if (!b->ussl ||
	    fb_loop_add(b->p->loop, b->uw.fd, EPOLLOUT, on_upstream, b) < 0) {
		upstream_failed(b, "out-of-resources");
		return;
	}
	b->uev = b->uwant = EPOLLOUT;
	b->u_wr_ev = EPOLLOUT;
	b->up = UP_TLS;
	broker_run(b);
}

/* Make sure the upstream in use is host:port: the one open, one parked
 * (when `pooled`), or a new one.  0, or -1 out of memory. */
static int upstream_for(struct fb_broker *b, const char *host, uint16_t port,
			bool pooled)
{
	if (b->up != UP_NONE && b->up_port == port &&
	    strcmp(b->up_host, host) == 0)
		return 0;
	upstream_release(b);
	snprintf(b->up_host, sizeof(b->up_host), "%s", host);
	b->up_port = port;
	if (pooled && fb_pool_take(b->bc->pool, host, port, &b->ussl, &b->uw,
				   &b->up_addr, &b->up_chain, on_upstream, b)) {
		b->up = UP_READY;
		b->uev = b->uwant = b->u_rd_ev = EPOLLIN;
		b->u_wr_ev = EPOLLOUT;
		b->up_idle = true;
		b->up_served = 1;
		b->up_generation = b->p->generation; /* the pool is rechecked
						       * on every change */
		b->p->stats.upstream_reused++;
		return 0;
	}
	b->up = UP_RESOLVE;
	b->rreq = fb_resolve(b->p->resolver, host, AF_UNSPEC, on_resolved, b);
	return b->rreq ? 0 : -1;
}

/* Connect and handshake.  1 progress, 0 waiting, -1 failed (handled). */
static int upstream_progress(struct fb_broker *b)
{
	int r = SSL_do_handshake(b->ussl);

	if (r == 1) {
		b->up = UP_READY;
		b->u_rd_ev = EPOLLIN;
		b->u_wr_ev = EPOLLOUT;
		return 1;
	}
	b->u_wr_ev = ssl_wait(b->ussl, r);
	if (!b->u_wr_ev) {
		/* not even the ClientHello went out: the connect failed */
		upstream_failed(b, b->uw.out ? "upstream-tls-failed" :
					       "dial-failed");
		return -1;
	}
	return 0;
}

/* ---- requests ----------------------------------------------------------- */

static void copy_slice(char *dst, size_t size, const struct fb_http_slice *s)
{
	size_t n = s->len < size - 1 ? s->len : size - 1;

	memcpy(dst, s->ptr, n);
	dst[n] = '\0';
}

/* Methods a client may repeat without changing the outcome (RFC 9110
 * 9.2.2); TRACE never gets this far. */
static bool idempotent(const struct fb_http_slice *m)
{
	static const char *const names[] = { "GET", "HEAD", "OPTIONS", "PUT",
					     "DELETE" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (m->len == strlen(names[i]) &&
		    memcmp(m->ptr, names[i], m->len) == 0)
			return true;
	return false;
}

static void note_injected(struct fb_broker *b, const struct fb_rule *r)
{
	size_t off = 0;

	for (size_t i = 0; i < r->nset && off < sizeof(b->injected); i++)
		off += (size_t)snprintf(b->injected + off,
					sizeof(b->injected) - off, "%s%s",
					off ? "," : "", r->set[i].name);
}

/* The head is parsed: decide, then answer or send it on.  0, or -1 when
 * out of memory (the caller closes). */
static int request_head(struct fb_broker *b)
{
	const struct fb_http_req *req = &b->req;
	struct fb_head_field add[FB_FORWARD_FIELDS];
	struct fb_head_edit edit = { .host = b->sni };
	struct fb_forward_store store = { 0 };
	struct fb_forward_target fwd;
	const struct fb_rule *rule = NULL;
	struct fb_decision d;
	char host[FB_NAME_MAX + 8], err[256];
	const char *why;
	char *head;
	size_t len;
	int n;

	copy_slice(b->method, sizeof(b->method), &req->method);
	copy_slice(b->path, sizeof(b->path), &req->path);
	b->head_method = req->method.len == 4 && !memcmp(req->method.ptr, "HEAD", 4);
	b->close_after = !(req->flags & FB_HTTP_KEEP_ALIVE);
	b->http10 = req->minor == 0;
	b->websocket = req->flags & FB_HTTP_WEBSOCKET;
	b->replayable = !b->websocket && !req->chunked &&
			req->content_length <= 0 && idempotent(&req->method);
	n = fb_broker_judge(b->key, b->sni, b->port, b->in, b->in_len,
			    &b->req, &d, &why);
	if (n < 0)
		return -1;
	if (n > 0) {
		refuse(b, n, why);
		return 0;
	}
	b->verdict = fb_verdict_str(d.verdict);
	b->req_generation = b->generation;
	/* a forwarded request carries a token meant to be used once */
	if (d.verdict == FB_VERDICT_FORWARD)
		b->replayable = false;
	if (d.rule >= 0) {
		rule = &b->key->rules[d.rule];
		snprintf(b->rule, sizeof(b->rule), "%s[%d]", b->key->pattern,
			 d.rule);
		/* a swap while the response is on its way moves b->key on,
		 * not this request's rule */
		b->rule_generation = b->generation;
	}
	if (d.verdict == FB_VERDICT_RESPOND) {
		b->discard = true;
		if (answer(b, rule->status, rule->content_type, rule->body,
			   rule->body_len, NULL, b->close_after) < 0)
			b->closing = true;
		goto body;
	}

	if (b->port == 443)
		snprintf(host, sizeof(host), "%s", b->sni);
	else
		snprintf(host, sizeof(host), "%s:%u", b->sni, b->port);
	edit.host = host;
	if (d.verdict == FB_VERDICT_BROKER) {
		edit.set = rule->set;
		edit.nset = rule->nset;
		note_injected(b, rule);
	}
	if (d.verdict == FB_VERDICT_FORWARD) {
		n = fb_forward_parse(rule->forward_url, &fwd, err, sizeof(err));
		if (n >= 0)
			n = fb_forward_fields(b->bc->jwt, rule->forward_url,
					      b->p->cfg.sandbox_id, b->sni,
					      b->port, req, add, &store, err,
					      sizeof(err));
		if (n < 0) {
			fprintf(stderr, "firebreak-proxy: %s\n", err);
			refuse(b, 502, "forward-failed");
			return 0;
		}
		edit.host = fwd.authority;
		edit.prefix = fwd.path;
		edit.prefix_len = fwd.path_len;
		edit.add = add;
		edit.nadd = (size_t)n;
		snprintf(b->injected, sizeof(b->injected), "x-firebreak-token");
	}
	head = fb_rewrite_head(req, &edit, &len);
	fb_forward_fields_free(&store);
	/* the upstream first: switching targets empties its queue */
	if (!head ||
	    upstream_for(b, d.verdict == FB_VERDICT_FORWARD ? fwd.host : b->sni,
			 d.verdict == FB_VERDICT_FORWARD ? fwd.port : b->port,
			 b->replayable) < 0 ||
	    obuf_put(&b->upq, head, len) < 0) {
		free(head);
		return -1;
	}
	b->req_up += len;
	b->sent_up = true;
	b->sent_reused = b->up_served > 0;
	b->up_idle = b->up_keep = false;
	if (b->replayable && b->up_served > 0) {
		b->replay = head;
		b->replay_len = len;
	} else {
		free(head);
	}
	b->up_served++;
	b->rs = RS_HEAD;
body:
	if (req->chunked) {
		fb_chunked_init(&b->rq_dec);
		b->rq = RQ_CHUNKED;
	} else if (req->content_length > 0) {
		b->rq_left = (uint64_t)req->content_length;
		b->rq = b->discard ? RQ_BODY : RQ_BODY_START;
	} else {
		b->rq = RQ_SENT;
	}
	return 0;
}

/* Parse what the guest sent so far as a request head.  1 progress, 0
 * none, -1 out of memory. */
static int request_parse(struct fb_broker *b)
{
	enum fb_http_status st;

	if (!b->in_len)
		return 0;
	st = fb_http_parse_head(&b->req, b->in, b->in_len, NULL);
	if (st == FB_HTTP_NEED_MORE) {
		if (b->in_len == IN_MAX)
			refuse(b, 431, "head-too-large");
		return b->in_len == IN_MAX;
	}
	if (st == FB_HTTP_ERROR) {
		if (b->req.line_done)
			copy_slice(b->method, sizeof(b->method), &b->req.method);
		refuse(b, fb_http_error_status(b->req.error),
		       fb_http_error_str(b->req.error));
		return 1;
	}
	if (request_head(b) < 0)
		return -1;
	consume(b->in, &b->in_len, b->req.head_len);
	return 1;
}

/* Body bytes from the guest to the upstream (or nowhere, for a request
 * answered here).  1 progress, 0 none. */
static int request_body(struct fb_broker *b)
{
	char size[24];
	int progress = 0;

	while (b->in_len && obuf_pending(&b->upq) < OUT_HIGH) {
		const char *data;
		size_t used, dlen;
		enum fb_chunked_status st;
		int n;

		if (b->rq == RQ_BODY_START) {
			/*
			 * An origin that answers without reading a body reads
			 * it as its next request: one sent without the rules'
			 * say, or the start of one (a POST whose body is to be
			 * what comes next) that swallows the next request on
			 * the connection, secret and all, where the guest can
			 * read it back.  A body that starts like a request is
			 * refused before any of it goes (conn_http.c does the
			 * same), and the upstream connection, holding our
			 * head, goes with it.  A chunked body is re-encoded:
			 * it starts with our chunk size.
			 */
			used = b->in_len < b->rq_left ? b->in_len : (size_t)b->rq_left;
			switch (fb_http_body_start(b->in, used, used == b->rq_left)) {
			case FB_HTTP_NEED_MORE:
				return progress;
			case FB_HTTP_ERROR:
				upstream_close(b);
				refuse(b, 400, "http-body-request");
				return 1;
			case FB_HTTP_DONE:
				break;
			}
			b->rq = RQ_BODY;
		}
		if (b->rq == RQ_BODY || b->rq == RQ_RAW) {
			used = b->in_len;
			if (b->rq == RQ_BODY && used > b->rq_left)
				used = (size_t)b->rq_left;
			if (!b->discard && obuf_put(&b->upq, b->in, used) < 0)
				return -1;
			b->req_up += used;
			consume(b->in, &b->in_len, used);
			if (b->rq == RQ_BODY && !(b->rq_left -= used))
				b->rq = RQ_SENT;
			return 1;
		}
		if (b->rq != RQ_CHUNKED)
			return progress;
		st = fb_chunked_decode(&b->rq_dec, b->in, b->in_len, &used,
				       &data, &dlen);
		if (st == FB_CHUNKED_ERROR) {
			/* the head is already upstream: cut both sides */
			upstream_close(b);
			refuse(b, fb_http_error_status(b->rq_dec.error),
			       fb_http_error_str(b->rq_dec.error));
			return 1;
		}
		if (!b->discard && st == FB_CHUNKED_DATA && dlen) {
			n = snprintf(size, sizeof(size), "%zx\r\n", dlen);
			if (obuf_put(&b->upq, size, (size_t)n) < 0 ||
			    obuf_put(&b->upq, data, dlen) < 0 ||
			    obuf_put(&b->upq, "\r\n", 2) < 0)
				return -1;
		}
		if (st == FB_CHUNKED_DONE) {
			if (!b->discard && obuf_put(&b->upq, "0\r\n\r\n", 5) < 0)
				return -1;
			b->rq = RQ_SENT;
		}
		b->req_up += used;
		consume(b->in, &b->in_len, used);
		progress = 1;
		if (st == FB_CHUNKED_DONE || (st == FB_CHUNKED_NEED_MORE && !used))
			break;
	}
	return progress;
}

/* ---- responses ---------------------------------------------------------- */

/* A strict-enough reading of a response head: where it ends and how its
 * body is framed.  -1 on anything the proxy cannot frame. */
static int response_head(struct fb_broker *b, size_t head_len)
{
	const char *p = b->uin, *end = b->uin + head_len - 2;
	bool chunked = false, has_cl = false, close = false;
	uint64_t cl = 0;
	int status;

	if (head_len < 14 || memcmp(p, "HTTP/1.", 7) || (p[7] != '0' && p[7] != '1') ||
	    p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' ||
	    p[10] > '9' || p[11] < '0' || p[11] > '9')
		return -1;
	status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	close = p[7] == '0';
	for (p = memchr(p, '\n', (size_t)(end - p)) + 1; p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p + 1));
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		const char *v, *ve = eol - 1;
		size_t nl;

		if (!eol || eol == p || eol[-1] != '\r' || !colon || colon == p)
			return -1;
		nl = (size_t)(colon - p);
		for (v = colon + 1; v < ve && (*v == ' ' || *v == '\t'); v++)
			;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (nl == 14 && !strncasecmp(p, "content-length", 14)) {
			char *e;

			if (has_cl || v == ve || *v < '0' || *v > '9')
				return -1;
			cl = strtoull(v, &e, 10);
			if (e != ve)
				return -1;
			has_cl = true;
		} else if (nl == 17 && !strncasecmp(p, "transfer-encoding", 17)) {
			chunked = ve - v >= 7 && !strncasecmp(ve - 7, "chunked", 7);
			if (!chunked)
				close = true; /* delimited by close */
		} else if (nl == 10 && !strncasecmp(p, "connection", 10)) {
			for (const char *s = v; s + 5 <= ve; s++)
				if (!strncasecmp(s, "close", 5))
					close = true;
		}
		p = eol + 1;
	}
	if (chunked && has_cl)
		return -1;
	if (status >= 100 && status < 200) {
		if (status == 101 && b->websocket) {
			b->status = 101;
			b->rs = RS_RAW;
			b->rq = RQ_RAW;
		}
		return 0; /* an interim response: the final one follows */
	}
	b->status = status;
	b->up_keep = !close && !b->http10;
	if (close)
		b->close_after = true;
	if (b->head_method || status == 204 || status == 304) {
		b->rs = RS_IDLE;
	} else if (chunked) {
		fb_chunked_init(&b->rs_dec);
		b->rs = RS_CHUNKED;
	} else if (has_cl) {
		b->rs_left = cl;
		b->rs = cl ? RS_BODY : RS_IDLE;
	} else {
		b->rs = RS_EOF;
		b->close_after = true;
		b->up_keep = false;
	}
	return 0;
}

/*
 * Relay a response head.  A guest that asked to close learns that the
 * proxy will (RFC 9112 9.6) even when the origin, whose connection stays
 * open for the next one, does not say so: the origin's own Connection
 * and Keep-Alive fields give way to "Connection: close".  The head was
 * checked by response_head: CRLF lines, each field with its colon.
 */
static int relay_head(struct fb_broker *b, size_t head_len, bool guest_close)
{
	static const char close_field[] = "Connection: close\r\n\r\n";
	bool final = b->rs != RS_HEAD && b->rs != RS_RAW;
	const char *line = b->uin, *end = b->uin + head_len - 2;

	if (!(final && guest_close && b->up_keep)) {
		b->req_down += head_len;
		return obuf_put(&b->down, b->uin, head_len);
	}
	while (line < end) {
		const char *eol = memchr(line, '\n', (size_t)(end - line)) + 1;
		size_t n = (size_t)(eol - line);

		if (line != b->uin &&
		    ((n > 11 && !strncasecmp(line, "connection:", 11)) ||
		     (n > 11 && !strncasecmp(line, "keep-alive:", 11))))
			n = 0;
		if (n && obuf_put(&b->down, line, n) < 0)
			return -1;
		b->req_down += n;
		line = eol;
	}
	b->req_down += sizeof(close_field) - 1;
	return obuf_put(&b->down, close_field, sizeof(close_field) - 1);
}

/* The response is complete: log it, then either the next request or
 * the end of the connection. */
static void response_done(struct fb_broker *b)
{
	audit_request(b);
	if (!b->discard)
		b->up_idle = b->up_keep && b->rq == RQ_SENT;
	if (b->close_after || b->rq != RQ_SENT) {
		/* a response before the whole request body: the rest of the
		 * guest's stream cannot be trusted to be framed as we think */
		b->closing = true;
		return;
	}
	request_reset(b);
}

static int response_step(struct fb_broker *b)
{
	size_t used;

	if (!b->uin_len || obuf_pending(&b->down) >= OUT_HIGH)
		return 0;
	if (b->rs == RS_HEAD) {
		char *e = memmem(b->uin, b->uin_len, "\r\n\r\n", 4);
		bool guest_close = b->close_after;
		size_t hl;

		if (!e) {
			if (b->uin_len >= RESP_HEAD_MAX)
				return -1;
			return 0;
		}
		hl = (size_t)(e - b->uin) + 4;
		if (response_head(b, hl) < 0 || relay_head(b, hl, guest_close) < 0)
			return -1;
		consume(b->uin, &b->uin_len, hl);
		if (b->rs == RS_IDLE)
			response_done(b);
		else if (b->rs == RS_RAW)
			audit_request(b); /* the upgrade, logged as it happens */
		return 1;
	}
	used = b->uin_len;
	if (b->rs == RS_BODY && used > b->rs_left)
		used = (size_t)b->rs_left;
	if (b->rs == RS_CHUNKED) {
		const char *data;
		size_t dlen;
		enum fb_chunked_status st;

		st = fb_chunked_decode(&b->rs_dec, b->uin, b->uin_len, &used,
				       &data, &dlen);
		if (st == FB_CHUNKED_ERROR)
			return -1;
		if (st == FB_CHUNKED_DONE)
			b->rs = RS_IDLE;
	} else if (b->rs == RS_BODY) {
		b->rs_left -= used;
		if (!b->rs_left)
			b->rs = RS_IDLE;
	} else if (b->rs != RS_EOF && b->rs != RS_RAW) {
		return 0; /* bytes nobody asked for: left until closing */
	}
	if (obuf_put(&b->down, b->uin, used) < 0)
		return -1;
	b->req_down += used;
	consume(b->uin, &b->uin_len, used);
	if (b->rs == RS_IDLE)
		response_done(b);
	return used > 0;
}

/* ---- the loop ----------------------------------------------------------- */

static bool reading_guest(const struct fb_broker *b)
{
	return !b->closing && !b->c_eof && b->rq != RQ_SENT &&
	       b->in_len < IN_MAX && obuf_pending(&b->upq) < OUT_HIGH;
}

static bool reading_upstream(const struct fb_broker *b)
{
	return b->up == UP_READY && !b->u_eof && b->uin_len < UIN_MAX &&
	       obuf_pending(&b->down) < OUT_HIGH;
}

/* The guest's handshake; the SNI it settled on must be the one peeked
 * (ca.c already refuses another name; this holds if that ever changes). */
static int handshake(struct fb_broker *b)
{
	const char *sn;
	int r = SSL_do_handshake(b->cssl);

	if (r != 1) {
		b->c_rd_ev = ssl_wait(b->cssl, r);
		return b->c_rd_ev ? 0 : -1;
	}
	sn = SSL_get_servername(b->cssl, TLSEXT_NAMETYPE_host_name);
	if (!sn || strcasecmp(sn, b->sni) != 0)
		return -1;
	free(b->gw.peeked);
	b->gw.peeked = NULL;
	b->c_rd_ev = EPOLLIN;
	request_reset(b);
	return 1;
}

/* One pass over everything that can move.  1 progress, 0 none, -1 the
 * broker is gone. */
static int step(struct fb_broker *b)
{
	int progress = 0, r;

	if (b->rq == RQ_HANDSHAKE) {
		r = handshake(b);
		if (r < 0) {
			broker_close(b, "tls-handshake-failed");
			return -1;
		}
		if (!r)
			return 0;
		progress = 1;
	}
	if (reading_guest(b)) {
		bool first = b->rq == RQ_HEAD && !b->in_len;

		r = ssl_fill(b->cssl, &b->gw, b->in, &b->in_len, IN_MAX,
			   &b->c_rd_ev);
		if (r < 0)
			b->c_eof = true;
		if (r > 0 && first) {
			b->req_start_ms = fb_loop_now(b->p->loop);
			head_started(b);
		}
		progress |= r != 0;
	}
	if (!b->closing) {
		r = b->rq == RQ_HEAD ? request_parse(b) : 0;
		/* a body that came with its head goes up in the same record */
		if (r >= 0 && b->rq != RQ_HEAD && !b->closing) {
			int rb = request_body(b);

			r = rb < 0 ? rb : r | rb;
		}
		if (r < 0) {
			broker_close(b, "out-of-memory");
			return -1;
		}
		progress |= r;
		/* a request answered here, its body now read: the next one */
		if (b->rq == RQ_SENT && b->discard && !b->closing)
			response_done(b);
	}
	if (b->up == UP_TLS) {
		r = upstream_progress(b);
		if (r < 0)
			return -1;
		progress |= r;
	}
	if (b->up == UP_READY) {
		r = ssl_flush(b->ussl, &b->upq, &b->u_wr_ev);
		if (r < 0) {
			upstream_failed(b, "upstream-closed");
			return -1;
		}
		progress |= r;
	}
	if (reading_upstream(b)) {
		r = ssl_fill(b->ussl, &b->uw, b->uin, &b->uin_len, UIN_MAX,
			   &b->u_rd_ev);
		if (r > 0 && b->rs != RS_IDLE)
			b->answer_seen = true;
		if (r < 0) {
			b->u_eof = true;
			/* an idle keep-alive upstream went away: the next
			 * request dials again */
			if (b->rs == RS_IDLE)
				upstream_close(b);
		}
		progress |= r != 0;
	}
	if (b->rs == RS_IDLE && b->uin_len) {
		/* bytes no request asked for: that upstream is out of step */
		upstream_close(b);
	}
	/* the whole of what arrived (a head and the body behind it) before
	 * the flush: one record and one send to the guest, not one each */
	while ((r = response_step(b)) > 0)
		progress = 1;
	if (r < 0) {
		upstream_failed(b, "bad-upstream-response");
		return -1;
	}
	if (b->u_eof && b->rs != RS_IDLE) {
		if (b->uin_len && obuf_pending(&b->down) >= OUT_HIGH) {
			/* the rest goes once the guest has taken more */
		} else if (!b->uin_len && (b->rs == RS_EOF || b->rs == RS_RAW)) {
			/* a body delimited by the close, all relayed; an
			 * upgraded stream was logged at its 101, and its
			 * bytes go in the connection's end line */
			if (b->rs == RS_EOF)
				audit_request(b);
			b->rs = RS_IDLE;
			b->closing = true;
		} else {
			upstream_failed(b, "upstream-closed");
			return -1;
		}
	}
	r = ssl_flush(b->cssl, &b->down, &b->c_wr_ev);
	if (r < 0) {
		broker_close(b, "client-error");
		return -1;
	}
	progress |= r;
	if (b->closing && !obuf_pending(&b->down)) {
		SSL_shutdown(b->cssl);
		broker_close(b, b->status >= 400 ? "refused" : "closed");
		return -1;
	}
	if (b->c_eof && !b->closing && !obuf_pending(&b->down) &&
	    (b->rq == RQ_HEAD || (b->rq == RQ_RAW && !b->in_len))) {
		broker_close(b, "client-closed");
		return -1;
	}
	if (b->c_eof && b->rq != RQ_HEAD && b->rq != RQ_SENT && b->rq != RQ_RAW) {
		broker_close(b, "client-closed-mid-request");
		return -1;
	}
	return progress;
}

/*
 * Set what fd is watched for (*cur), given what the state wants now and
 * wanted last time (*wanted).  Readability no longer wanted stays watched
 * until it is reported while unwanted: a guest seldom sends while its
 * response is on the way, and each change is a system call.
 */
static void watch(struct fb_broker *b, int fd, uint32_t *cur,
		  uint32_t *wanted, uint32_t want, uint32_t fired)
{
	bool unwanted = (fired & EPOLLIN) && !(*wanted & EPOLLIN);

	*wanted = want;
	if ((*cur & EPOLLIN) && !unwanted)
		want |= EPOLLIN;
	if (fd >= 0 && *cur != want && fb_loop_mod(b->p->loop, fd, want) == 0)
		*cur = want;
}

static void broker_run(struct fb_broker *b)
{
	uint32_t cw = 0, uw = 0;
	int r;

	while ((r = step(b)) > 0)
		b->last_ms = fb_loop_now(b->p->loop);
	if (r < 0)
		return;
	if (b->rq == RQ_HANDSHAKE || reading_guest(b))
		cw |= b->c_rd_ev;
	if (obuf_pending(&b->down))
		cw |= b->c_wr_ev;
	if (b->up == UP_TLS)
		uw |= b->u_wr_ev;
	if (b->up == UP_READY && obuf_pending(&b->upq))
		uw |= b->u_wr_ev;
	if (reading_upstream(b))
		uw |= b->u_rd_ev;
	watch(b, b->gw.fd, &b->cev, &b->cwant, cw, b->c_fired);
	watch(b, b->uw.fd, &b->uev, &b->uwant, uw, b->u_fired);
	b->c_fired = b->u_fired = 0;
}

static void on_client(struct fb_loop *l, int fd, uint32_t ev, void *arg)
{
	struct fb_broker *b = arg;

	(void)l;
	(void)fd;
	b->c_fired |= ev;
	wire_fired(&b->gw, ev);
	broker_run(b);
}

/*
 * One timer: a request head (and the handshake) must arrive within the
 * peek deadline once its first byte is in, else 408; any connection quiet
 * for the idle timeout goes away.
 */
static void on_timer(struct fb_loop *l, void *arg)
{
	struct fb_broker *b = arg;
	uint64_t now = fb_loop_now(l);
	uint64_t head_ms = b->p->cfg.peek_timeout_ms;
	uint64_t idle_ms = (uint64_t)b->p->cfg.idle_timeout_s * 1000;
	uint64_t next = b->last_ms + idle_ms;

	b->timer = NULL;
	if (b->rq == RQ_HANDSHAKE && now >= b->head_ms + head_ms) {
		broker_close(b, "tls-handshake-timeout");
		return;
	}
	if (b->rq == RQ_HEAD && b->in_len && !b->closing) {
		if (now >= b->head_ms + head_ms) {
			refuse(b, 408, "head-timeout");
			broker_run(b);
			return;
		}
		if (b->head_ms + head_ms < next)
			next = b->head_ms + head_ms;
	}
	if (b->rq == RQ_HANDSHAKE && b->head_ms + head_ms < next)
		next = b->head_ms + head_ms;
	if (now >= b->last_ms + idle_ms) {
		broker_close(b, "idle-timeout");
		return;
	}
	b->timer = fb_timer_add(l, next - now, on_timer, b);
}

/* ---- lifetime ----------------------------------------------------------- */

static void broker_close(struct fb_broker *b, const char *why)
{
	struct fb_proxy *p = b->p;
	struct fb_audit_line ln;
	struct sockaddr_storage ss;

	/* A request begun and not logged (its answer not finished, or not
	 * begun): on record with why it ended, the status relayed if any. */
	if (b->rq > RQ_HEAD && !b->logged) {
		b->verdict = why;
		audit_request(b);
	}
	fb_audit_begin(p->audit, &ln, "connection", NULL, b->generation);
	fb_audit_str(&ln, "event.type", "end");
	fb_audit_str(&ln, "event.reason", why);
	fb_audit_uint(&ln, "event.id", b->id);
	/* the connection's only end line: its ends as the start line has
	 * them */
	fb_addr_to_sockaddr(&b->src_addr, b->src_port, &ss);
	fb_audit_sockaddr(&ln, "source", &ss);
	fb_addr_to_sockaddr(&b->orig_dst, b->port, &ss);
	fb_audit_sockaddr(&ln, "destination", &ss);
	fb_audit_guest(&ln, "tls.client.server_name", b->sni, strlen(b->sni));
	fb_audit_str(&ln, "rule.name", b->key->pattern);
	fb_audit_str(&ln, "network.protocol", "tls");
	fb_audit_bool(&ln, "firebreak.brokered", true);
	fb_audit_uint(&ln, "event.duration",
		      (fb_loop_now(p->loop) - b->start_ms) * 1000000);
	fb_audit_uint(&ln, "source.bytes", b->gw.in);
	fb_audit_uint(&ln, "destination.bytes", b->gw.out);
	fb_audit_defer(p->audit, p->loop, &ln);
	p->stats.bytes_up += b->gw.in;
	p->stats.bytes_down += b->gw.out;
	p->stats.open--;

	upstream_release(b);
	fb_timer_cancel(p->loop, b->timer);
	SSL_free(b->cssl);
	fb_loop_close(p->loop, b->gw.fd);
	if (b->prev)
		b->prev->next = b->next;
	else
		b->bc->live = b->next;
	if (b->next)
		b->next->prev = b->prev;
	fb_policy_unref(b->policy);
	free(b->gw.peeked);
	free(b->in);
	free(b->uin);
	free(b->down.p);
	free(b->upq.p);
	free(b->replay);
	free(b);
}

int fb_broker_start(struct fb_proxy *p, int client_fd, const uint8_t *peeked,
		    size_t npeeked, const char *sni, const struct fb_domain *key,
		    struct fb_policy *policy_ref, const struct fb_addr *orig_dst,
		    uint16_t port, const struct sockaddr_storage *src,
		    uint64_t conn_id)
{
	struct fb_broker_ctx *bc = p->broker;
	struct fb_broker *b = calloc(1, sizeof(*b));
	SSL_CTX *leaf;
	BIO *bio = NULL;
	char err[256];

	if (!b)
		goto fail;
	b->p = p;
	b->bc = bc;
	b->id = conn_id;
	b->gw.fd = client_fd;
	no_delay(client_fd);
	b->uw.fd = -1;
	b->policy = policy_ref;
	b->generation = p->generation;  /* the caller decided just now */
	b->key = key;
	b->port = port;
	b->orig_dst = *orig_dst;
	b->src_port = fb_addr_from_sockaddr(src, &b->src_addr);
	snprintf(b->sni, sizeof(b->sni), "%s", sni);
	b->start_ms = b->last_ms = b->head_ms = fb_loop_now(p->loop);
	b->verdict = "";
	b->c_rd_ev = EPOLLIN;
	b->c_wr_ev = EPOLLOUT;
	b->gw.peeked = malloc(npeeked ? npeeked : 1);
	b->in = malloc(IN_MAX);
	b->uin = malloc(UIN_MAX);
	if (!b->gw.peeked || !b->in || !b->uin)
		goto fail_b;
	memcpy(b->gw.peeked, peeked, npeeked);
	b->gw.npeeked = npeeked;
	b->gw.in = npeeked;

	leaf = fb_ca_leaf(bc->ca, sni, err, sizeof(err));
	if (!leaf) {
		fprintf(stderr, "firebreak-proxy: leaf for %s: %s\n", sni, err);
		goto fail_b;
	}
	b->cssl = SSL_new(leaf);
	bio = wire_bio(b, &b->gw);
	if (!b->cssl || !bio)
		goto fail_b;
	SSL_set_bio(b->cssl, bio, bio);
	bio = NULL;
	SSL_set_mode(b->cssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
			      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* A record's header and body in one recv(2), not two.  What OpenSSL
	 * reads ahead is taken by the next ssl_fill: step() reads the guest
	 * again whenever reading_guest() turns true. */
	SSL_set_read_ahead(b->cssl, 1);
	SSL_set_accept_state(b->cssl);
	if (fb_loop_add(p->loop, client_fd, EPOLLIN, on_client, b) < 0)
		goto fail_b;
	b->cev = b->cwant = EPOLLIN;
	b->rq = RQ_HANDSHAKE;
	b->next = bc->live;
	if (bc->live)
		bc->live->prev = b;
	bc->live = b;
	p->stats.open++;
	b->timer = fb_timer_add(p->loop, p->cfg.peek_timeout_ms, on_timer, b);
	broker_run(b);
	return 0;

fail_b:
	BIO_free(bio);
	SSL_free(b->cssl);
	free(b->gw.peeked);
	free(b->in);
	free(b->uin);
	free(b);
fail:
	fb_policy_unref(policy_ref);
	close(client_fd);
	return -1;
}

/* The guest's end, as "IP:PORT". */
static void peer_format(const struct fb_broker *b, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "";

	if (b->src_addr.family)
		fb_addr_format(&b->src_addr, ip, sizeof(ip));
	snprintf(buf, size, "%s:%u", ip, (unsigned)b->src_port);
}

void fb_brokers_bytes(const struct fb_proxy *p, uint64_t *up, uint64_t *down)
{
	if (!p->broker)
		return;
	for (const struct fb_broker *b = p->broker->live; b; b = b->next) {
		*up += b->gw.in;
		*down += b->gw.out;
	}
}

void fb_brokers_json(const struct fb_proxy *p, FILE *f, const char *sep)
{
	if (!p->broker)
		return;
	for (const struct fb_broker *b = p->broker->live; b; b = b->next) {
		char src[INET6_ADDRSTRLEN + 8], dst[INET6_ADDRSTRLEN];
		char name[FB_NAME_MAX * 6 + 1] = "";

		peer_format(b, src, sizeof(src));
		fb_addr_format(&b->orig_dst, dst, sizeof(dst));
		fb_json_escape(b->sni, strlen(b->sni), name, sizeof(name));
		fprintf(f, "%s{\"id\":%llu,\"state\":\"brokered\",\"protocol\":\"tls\","
			"\"source\":\"%s\",\"destination\":\"%s:%u\","
			"\"domain\":\"%s\",\"rule\":\"%s\",\"generation\":%llu,"
			"\"bytes_up\":%llu,\"bytes_down\":%llu,\"age_ms\":%llu}",
			sep, (unsigned long long)b->id, src, dst, b->port, name,
			b->rule, (unsigned long long)b->generation,
			(unsigned long long)b->gw.in,
			(unsigned long long)b->gw.out,
			(unsigned long long)(fb_loop_now(p->loop) - b->start_ms));
		sep = ",";
	}
}

/* Does `policy` deny the address the upstream connection was dialled to? */
static bool upstream_denied(const struct fb_broker *b,
			    const struct fb_policy *policy)
{
	return (b->up == UP_TLS || b->up == UP_READY) &&
	       fb_upstream_denied(policy, &b->up_addr, b->up_chain);
}

size_t fb_broker_recheck(struct fb_proxy *p)
{
	struct fb_broker *b, *next;
	size_t closed = 0;

	if (!p->broker)
		return 0;
	for (b = p->broker->live; b; b = next) {
		const struct fb_domain *key;
		struct fb_decision d;

		next = b->next;
		fb_policy_decide(p->policy, b->sni, &b->orig_dst, &d);
		key = d.domain;
		/* The rules a connection applies are its key's: a new policy
		 * keeps it only if the name is still brokered, and then it
		 * applies the new rules from the next request on.  Nor is
		 * it kept when the new deny set covers where its upstream
		 * connection goes. */
		if (d.verdict != FB_VERDICT_BROKER || !key ||
		    upstream_denied(b, p->policy)) {
			broker_close(b, "policy-changed");
			closed++;
			continue;
		}
		/* A request decided under the old rules whose head has not
		 * left yet, its upstream still resolving or connecting,
		 * would take out what the new policy may have withdrawn (a
		 * secret, a forward): refused, as a request sent after the
		 * change would be judged anew, unless its key's rules are
		 * the same (the change was elsewhere). */
		if (b->sent_up && b->rs == RS_HEAD &&
		    (b->up == UP_RESOLVE || b->up == UP_TLS) &&
		    !fb_domain_rules_equal(b->key, key)) {
			upstream_close(b);
			b->injected[0] = '\0'; /* nothing went */
			b->sent_up = false;
			refuse(b, 503, "policy-changed");
			b->rs = RS_IDLE;
			closed++;
			broker_run(b);
			continue;
		}
		fb_policy_unref(b->policy);
		b->policy = fb_policy_ref(p->policy);
		b->generation = p->generation;
		b->up_generation = p->generation;
		b->key = key;
	}
	fb_pool_recheck(p->broker->pool, p->policy);
	return closed;
}

struct fb_broker_ctx *fb_broker_ctx_new(const struct fb_proxy_config *cfg,
					char *err, size_t errsize)
{
	struct fb_broker_ctx *bc = calloc(1, sizeof(*bc));

	if (!bc) {
		snprintf(err, errsize, "out of memory");
		return NULL;
	}
	bc->ca = fb_ca_load(cfg->ca_cert, cfg->ca_key, err, errsize);
	if (!bc->ca)
		goto fail;
	if (cfg->jwt_key) {
		bc->jwt = fb_jwt_key_load(cfg->jwt_key, err, errsize);
		if (!bc->jwt)
			goto fail;
	}
	bc->upstream = fb_upstream_new(cfg->upstream_ca, err, errsize);
	if (!bc->upstream)
		goto fail;
	bc->bio_method = wire_method_new();
	bc->pool = fb_pool_new();
	if (!bc->bio_method || !bc->pool) {
		snprintf(err, errsize, "out of memory");
		goto fail;
	}
	return bc;
fail:
	fb_broker_ctx_free(bc);
	return NULL;
}

void fb_broker_ctx_free(struct fb_broker_ctx *bc)
{
	if (!bc)
		return;
	while (bc->live)
		broker_close(bc->live, "proxy-stopping");
	fb_pool_free(bc->pool);
	fb_ca_free(bc->ca);
	fb_jwt_key_free(bc->jwt);
	fb_upstream_free(bc->upstream);
	BIO_meth_free(bc->bio_method);
	free(bc);
}
