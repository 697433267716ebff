/*
 * conn_http.c — plain HTTP, guest to upstream: every request is checked,
 * not only the first.
 *
 * Splicing would hand the kernel the second request of a keep-alive
 * connection unseen, so this direction goes through user space: each
 * request head is parsed with the strict parser (http.h) and its Host
 * decided under the policy in force; only then are the head and its body
 * (Content-Length or chunked, framed exactly as the parser read them)
 * released to the upstream, byte for byte as the guest sent them.  The
 * other direction is still spliced.
 *
 * After a request with Upgrade the stream stops being HTTP only if the
 * upstream agrees (a 101 that names the protocol in an Upgrade field): a
 * declined upgrade leaves a keep-alive connection whose next requests the
 * origin reads as requests, so until its answer is known the guest's next
 * bytes wait, and then go on being checked unless it was such a 101.  The
 * answer can be told only when the upgrade was the connection's first
 * request (the upstream's first bytes answer it); a later one is never
 * taken as an upgrade, and what follows it is checked as requests still.
 *
 * A refused request behind others is answered after them: the upstream
 * is told no more requests come (half-close), and the guest gets what it
 * sends back to those before the 403 or 421 (conn.c waits for the
 * upstream's close, or for it to fall quiet).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "proxy/conn.h"
#include "proxy/http.h"

enum http_stage { H_HEAD, H_BODY_START, H_BODY, H_CHUNKED, H_UPGRADE, H_RAW };

/*
 * What the guest sent and the upstream has not yet been given is held in
 * the peek buffer, kept: c->buf[0..c->len), grown by conn_buf_grow as the
 * peek grew it, so a connection whose requests fit in what the peek took
 * never holds 64 KiB.
 */
struct conn_http {
	size_t fwd;          /* of c->len, the checked prefix cleared to send */
	enum http_stage stage;
	unsigned requests;   /* heads checked and cleared */
	uint64_t body_left;  /* H_BODY_START, H_BODY */
	struct fb_http_req req;
	struct fb_chunked dec;
	bool eof;            /* the guest finished sending */
	bool shut;           /* and the upstream was told */
	const char *refusal; /* a later request was refused for this reason */
	bool misdirected;    /* ... and is answered 421, not 403 */
};

int conn_http_start(struct conn *c)
{
	struct conn_http *h = calloc(1, sizeof(*h));

	if (!h)
		return -1;
	/* The peeked bytes are the first request: it is checked like the
	 * others and sent from here, not replayed. */
	fb_http_req_init(&h->req);
	c->hr = h;
	return 0;
}

void conn_http_free(struct conn *c)
{
	if (!c->hr)
		return;
	free(c->hr);
	c->hr = NULL;
}

/* The name an authority or Host value gives: 1 with it in `name`; 0 for
 * none, an IP literal or a name the peek would not take (domain-less, by
 * the same rule the peek applied to the first request); -1 when the value
 * is no authority at all. */
static int authority_name(const struct fb_http_slice *a, char name[FB_NAME_MAX])
{
	struct fb_http_slice host = { 0 };
	const char *why;
	int port;

	if (!a->ptr)
		return 0;
	if (fb_http_split_authority(a->ptr, a->len, &host, &port) < 0)
		return -1;
	return fb_peek_name(host.ptr, host.len, name, &why) == FB_PEEK_NAMED;
}

/*
 * X-Forwarded-Host, Forwarded: host= and the like name the host that a
 * framework behind the origin serves, in place of Host, when it trusts
 * them (Django's USE_X_FORWARDED_HOST, Express's "trust proxy"): each is
 * decided as a Host would be, and one the policy refuses, or that is not
 * a host at all, refuses the request.  An allowed name other than the
 * connection's passes: what it reaches is allowed, and a guest that is a
 * proxy itself, for an allowed site, names that site.
 */
static bool forwarded_hosts_allowed(struct conn *c, const struct fb_http_req *req)
{
	struct fb_http_slice hosts[FB_HTTP_FORWARDED_MAX];
	int n = fb_http_forwarded_hosts(req, hosts, FB_HTTP_FORWARDED_MAX);
	char name[FB_NAME_MAX];
	struct fb_decision d;

	for (int i = 0; i < n; i++) {
		int named = authority_name(&hosts[i], name);

		if (named < 0)
			return false;
		fb_policy_decide(c->p->policy, named ? name : NULL, &c->dst_addr, &d);
		if (d.verdict != FB_VERDICT_ALLOW)
			return false;
	}
	return n >= 0;
}

/*
 * The request's authority (absolute-form) or Host, decided under the
 * policy in force now: NULL when it may go, else why not; *misdirected
 * when it names another host than the connection's own.
 */
static const char *request_refusal(struct conn *c, const struct fb_http_req *req,
				   bool *misdirected)
{
	const struct fb_http_slice *auth = req->authority.ptr ? &req->authority
							      : &req->host;
	char name[FB_NAME_MAX], other[FB_NAME_MAX];
	struct fb_decision d;
	bool named = authority_name(auth, name) > 0;

	/* An absolute-form target wins over Host for us and for nginx
	 * (RFC 9112 §3.2.2), but nginx still hands the Host on ($http_host,
	 * the usual proxy_set_header) and an application behind it may route
	 * on that: both must name the same host, as the peek asks of the
	 * first request. */
	if (req->authority.ptr && req->host.ptr &&
	    ((authority_name(&req->host, other) > 0) != named ||
	     (named && strcmp(name, other) != 0)))
		return "ambiguous-host";
	fb_policy_decide(c->p->policy, named ? name : NULL, &c->dst_addr, &d);
	if (d.verdict != FB_VERDICT_ALLOW)
		return d.verdict == FB_VERDICT_BROKER ? "brokering-unavailable"
						      : fb_reason_str(d.reason);
	if (!forwarded_hosts_allowed(c, req))
		return "ambiguous-host";
	/* The upstream was chosen for the connection's first name: a request
	 * for any other would reach the wrong origin, allowed or not. */
	if (named != c->has_name || (named && strcmp(name, c->name) != 0)) {
		*misdirected = true;
		return "host-changed";
	}
	return NULL;
}

void conn_http_refuse_now(struct conn *c)
{
	if (c->hr->misdirected)
		fb_conn_misdirected(c, c->hr->refusal);
	else
		fb_conn_refuse(c, c->hr->refusal);
}

/*
 * Refuse the request at the front of c->buf.  Those before it were sent
 * and their answers may still be coming: the refused request and all
 * after it are dropped, the guest is read no more, and the upstream is
 * half-closed (conn_http_pump) so that it answers and closes.  0, or
 * CONN_GONE when the refusal went out at once.
 */
static int refuse(struct conn *c, struct conn_http *h, const char *why,
		  bool misdirected)
{
	h->refusal = why;
	h->misdirected = misdirected;
	if (h->requests == 0) {
		conn_http_refuse_now(c);
		return CONN_GONE;
	}
	c->len = h->fwd = 0; /* fwd: body bytes of a chunked request cut short */
	h->eof = true;
	conn_await_answers(c);
	return 0;
}

const char *conn_http_refusal(const struct conn *c)
{
	return c->hr ? c->hr->refusal : NULL;
}

/* Clear the next stretch of c->buf for sending: a checked head, body
 * bytes, or (H_RAW) everything.  0, or CONN_GONE after a refusal. */
static int classify(struct conn *c, struct conn_http *h)
{
	const char *in = (const char *)c->buf;
	bool misdirected = false;
	const char *why;

	switch (h->stage) {
	case H_HEAD:
		switch (fb_http_parse_head(&h->req, in, c->len, NULL)) {
		case FB_HTTP_NEED_MORE:
			return 0;
		case FB_HTTP_ERROR:
			return refuse(c, h, h->req.error == FB_HTTP_E_HEAD_TOO_LARGE ?
					    "http-head-too-large" : "http-malformed",
				      false);
		case FB_HTTP_DONE:
			break;
		}
		if ((why = request_refusal(c, &h->req, &misdirected)))
			return refuse(c, h, why, misdirected);
		h->fwd = h->req.head_len;
		h->requests++;
		if ((h->req.flags & FB_HTTP_UPGRADE) && h->requests == 1 &&
		    !h->req.chunked && h->req.content_length <= 0) {
			h->stage = H_UPGRADE;
		} else if (h->req.chunked) {
			fb_chunked_init(&h->dec);
			h->stage = H_CHUNKED;
		} else if (h->req.content_length > 0) {
			h->body_left = (uint64_t)h->req.content_length;
			h->stage = H_BODY_START;
		}
		fb_http_req_init(&h->req);
		return 0;
	case H_BODY_START: {
		/*
		 * An origin that answers without reading a body (a handler
		 * that never looks at a GET's, a 417 to Expect: 100-continue)
		 * reads it as the next request, whose Host nobody checked: a
		 * body that starts like a request is refused before any of it
		 * goes.  Its head went already (a client that sent Expect
		 * waits for an answer to it); the origin gets the end of the
		 * stream in place of the body.  A chunked body starts with a
		 * chunk size, which no request line does.
		 */
		size_t have = c->len < h->body_left ? c->len : (size_t)h->body_left;

		switch (fb_http_body_start(in, have, have == h->body_left)) {
		case FB_HTTP_NEED_MORE:
			return 0;
		case FB_HTTP_ERROR:
			return refuse(c, h, "http-body-request", false);
		case FB_HTTP_DONE:
			break;
		}
		h->stage = H_BODY;
		return 0;
	}
	case H_BODY: {
		size_t take = c->len < h->body_left ? c->len : (size_t)h->body_left;

		h->fwd = take;
		h->body_left -= take;
		if (h->body_left == 0)
			h->stage = H_HEAD;
		return 0;
	}
	case H_CHUNKED:
		while (h->fwd < c->len) {
			const char *data;
			size_t used, dlen;
			enum fb_chunked_status st;

			st = fb_chunked_decode(&h->dec, in + h->fwd,
					       c->len - h->fwd, &used, &data, &dlen);
			h->fwd += used;
			if (st == FB_CHUNKED_ERROR)
				return refuse(c, h, "http-malformed", false);
			if (st == FB_CHUNKED_DONE) {
				h->stage = H_HEAD;
				break;
			}
			if (st == FB_CHUNKED_NEED_MORE)
				break;
		}
		return 0;
	case H_UPGRADE:
		return 0; /* held until conn_http_answer */
	case H_RAW:
		h->fwd = c->len;
		return 0;
	}
	return 0;
}

bool conn_http_awaits_answer(const struct conn *c)
{
	return c->hr && c->hr->stage == H_UPGRADE;
}

/* Bytes of the upstream's answer to an Upgrade that may be looked at: a
 * 101 whose head does not end within them is taken as declined (its frames
 * are then refused as requests), so there is room for a handshake that
 * sets many cookies. */
#define ANSWER_HEAD_MAX 16384

/* Does the response head [p, end) carry an Upgrade field with a value? */
static bool answer_upgrades(const char *p, const char *end)
{
	while ((p = memchr(p, '\n', (size_t)(end - p))) && ++p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *v;

		if (!eol)
			break;
		if (eol - p > 8 && strncasecmp(p, "upgrade:", 8) == 0) {
			for (v = p + 8; v < eol && (*v == ' ' || *v == '\t' ||
						    *v == '\r'); v++)
				;
			if (v < eol)
				return true;
		}
	}
	return false;
}

/*
 * The upstream's first bytes answer the Upgrade: the stream is opaque from
 * then on only for a 101 that names the protocol switched to in an
 * Upgrade field, as RFC 9110 §15.2.2 requires of every 101.  A bare 101
 * is what nginx's "return 101" sends, and what an application that lets
 * the client pick the status (httpbin's /status/101) gets through a
 * proxy in front of it, and the server that sent it goes on reading
 * requests: taking it as a switch would let the next requests, to any
 * virtual host on that server, pass unchecked.
 */
void conn_http_answer(struct conn *c)
{
	static const char v11[] = "HTTP/1.1 101 ", v10[] = "HTTP/1.0 101 ";
	const size_t slen = sizeof(v11) - 1;
	struct conn_http *h = c->hr;
	char head[ANSWER_HEAD_MAX];
	const char *end;
	ssize_t n;

	if (!conn_http_awaits_answer(c))
		return;
	if (c->to_down.bytes > 0) { /* it spoke first: its answer is not told */
		h->stage = H_HEAD;
		return;
	}
	n = recv(c->ufd, head, sizeof(head), MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0 && (size_t)n < slen && !c->to_down.in_hup)
		return; /* the rest of the status line comes with a new edge */
	if (n < (ssize_t)slen ||
	    (memcmp(head, v11, slen) != 0 && memcmp(head, v10, slen) != 0)) {
		h->stage = H_HEAD;
		return;
	}
	end = memmem(head, (size_t)n, "\r\n\r\n", 4);
	if (!end && (size_t)n < sizeof(head) && !c->to_down.in_hup)
		return; /* so does the rest of the head */
	h->stage = end && answer_upgrades(head, end + 2) ? H_RAW : H_HEAD;
}

ssize_t conn_http_pump(struct conn *c)
{
	struct conn_http *h = c->hr;
	size_t sent = 0;

	for (;;) {
		bool progress = false;
		ssize_t n;

		if (h->fwd > 0 && c->to_up.out_ready) {
			n = send(c->ufd, c->buf, h->fwd, MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return -1;
			if (n < 0 && errno == EAGAIN)
				c->to_up.out_ready = false;
			if (n > 0) {
				memmove(c->buf, c->buf + n, c->len - (size_t)n);
				c->len -= (size_t)n;
				h->fwd -= (size_t)n;
				c->http_up += (uint64_t)n;
				sent += (size_t)n;
				progress = true;
			}
		}
		if (h->fwd == 0 && c->len > 0) {
			enum http_stage before = h->stage;

			if (classify(c, h) == CONN_GONE)
				return CONN_GONE;
			progress |= h->fwd > 0 || h->stage != before;
		}
		if (!h->eof && c->len < FB_PEEK_MAX && c->to_up.in_ready) {
			size_t room;

			if (c->len == c->cap && conn_buf_grow(c, c->cap + 1) < 0)
				return -1;
			room = c->cap - c->len;
			n = recv(c->cfd, c->buf + c->len, room, 0);
			switch (fb_splice_read_seen(&c->to_up, n, room)) {
			case FB_READ_BYTES:
				c->len += (size_t)n;
				progress = true;
				break;
			case FB_READ_RETRY:
				progress = true;
				break;
			case FB_READ_DRY:
				break;
			case FB_READ_ERROR:
				/* An error ends the guest's requests as an EOF
				 * does, where the spliced direction fails: what
				 * was checked still goes out, and the other
				 * direction's next send finds the socket gone. */
			case FB_READ_EOF:
				h->eof = true;
				break;
			}
		}
		if (h->eof && h->fwd == 0 && !h->shut && h->stage != H_UPGRADE) {
			/* An unfinished request left at EOF is dropped, never
			 * sent unchecked. */
			shutdown(c->ufd, SHUT_WR);
			h->shut = true;
		}
		if (!progress)
			return (ssize_t)sent;
	}
}

bool conn_http_done(const struct conn *c)
{
	return c->hr->shut;
}
