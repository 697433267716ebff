/*
 * dns_server.c — the sandbox's resolver: listeners, per-query handling,
 * the rate cap, and the policy's say over every question and answer.
 *
 * UDP: each datagram is one query.  TCP (RFC 7766): each message has a
 * 2-byte length prefix, a connection may carry several and gets the
 * replies in the order they are ready; it is closed after tcp_idle_ms
 * without a whole query or a reply (bytes trickled in do not count), on a
 * message longer than a query can be, when its unsent replies pile up,
 * and once the client has finished sending and has its replies.
 *
 * Every query is reported once: when answered, or, asked upstream and
 * its connection closed before the answer, when it is given up.
 */
#include "proxy/dns_server.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/accept_pause.h"
#include "proxy/rate.h"

#define QUERY_MAX 4096        /* longer is no stub's query */
#define REPLY_MAX 2048        /* our largest reply is about 1.2 KiB */
#define UDP_BATCH 64          /* datagrams read per wakeup */
#define TCP_CONNS_MAX 64
#define TCP_INFLIGHT_MAX 16   /* per connection; then it is not read */
#define TCP_OUT_MAX (64 * 1024)
#define DEFAULT_QPS 200
#define DEFAULT_BURST 400
#define DEFAULT_TCP_IDLE_MS 10000
#define RATE_LOG_MS 1000      /* a rate-limited interval (dns_server.h) */
/* A question name in RFC 1035 presentation form: at most 4 characters a
 * byte ("\DDD"), dots included. */
#define NAME_SHOWN_MAX (4 * FB_DNS_NAME_WIRE_MAX)

struct tcp_conn;

/* A query waiting for the resolver. */
struct pending {
	LIST_ENTRY(pending) link; /* in s->udp_pending or conn->pending */
	struct fb_dns_server *s;
	struct tcp_conn *conn;    /* NULL: UDP */
	struct sockaddr_storage peer;
	socklen_t peerlen;
	struct fb_resolve_req *req;
	uint64_t started_ms;
	bool suppressed;          /* rate-limited, counted for on_suppressed */
	struct fb_dns_msg q;
	struct fb_dns_plan plan;
};

LIST_HEAD(pending_list, pending);

struct tcp_conn {
	LIST_ENTRY(tcp_conn) link;
	struct fb_dns_server *s;
	int fd;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	struct fb_timer *idle;     /* idle timeout, or the pending close */
	bool closing;
	bool eof;                  /* the client sends no more */
	struct pending_list pending;
	unsigned inflight;
	uint8_t in[2 + QUERY_MAX];
	size_t inlen;
	uint8_t *out;
	size_t outlen, outcap;
};

struct fb_dns_server {
	struct fb_loop *loop;
	struct fb_dns_config cfg;
	int udp_fd, tcp_fd;
	struct fb_accept_pause accept_pause;
	uint16_t port;
	struct pending_list udp_pending;
	LIST_HEAD(, tcp_conn) conns;
	unsigned nconns;
	struct fb_rate rate;      /* the rate cap */
	struct fb_timer *rate_log; /* the rate-limited interval, while open */
	uint64_t suppressed;       /* the queries it has reported suppressed */
	struct fb_dns_stats stats;
};

/* ---- the decisions ----------------------------------------------------- */

void fb_dns_plan(const struct fb_policy *policy, const uint8_t *pkt,
		 size_t len, struct fb_dns_msg *q, struct fb_dns_plan *plan)
{
	struct fb_decision d;
	const char *why;
	int rc;

	memset(plan, 0, sizeof(*plan));
	plan->action = FB_DNS_REPLY;
	rc = fb_dns_parse_query(pkt, len, q, &why);
	if (rc < 0) {
		plan->action = FB_DNS_DROP;
		plan->reason = "not-a-query";
		return;
	}
	if (rc != FB_DNS_NOERROR) {
		plan->rcode = rc;
		plan->reason = "malformed";
		plan->detail = why;
		return;
	}
	plan->rcode = FB_DNS_NXDOMAIN;
	if (!q->qname_text ||
	    fb_name_normalize(q->qname, strlen(q->qname), plan->name, &why) < 0) {
		plan->name[0] = '\0';
		plan->reason = "invalid-name";
		plan->detail = q->qname_text ? why :
			       "a label holds a byte other than a letter, digit, '-' or '_'";
		return;
	}
	fb_policy_decide(policy, plan->name, NULL, &d);
	plan->reason = fb_reason_str(d.reason);
	if (d.verdict == FB_VERDICT_DENY)
		return;
	plan->allowed = true;
	switch (q->qtype) {
	case FB_DNS_A:
	case FB_DNS_AAAA:
		plan->action = FB_DNS_LOOKUP;
		plan->family = q->qtype == FB_DNS_A ? AF_INET : AF_INET6;
		plan->rcode = FB_DNS_NOERROR;
		break;
	case FB_DNS_HTTPS:
	case FB_DNS_SVCB:
		plan->rcode = FB_DNS_NOERROR;
		plan->reason = "svcb-withheld";
		break;
	default:
		plan->rcode = FB_DNS_REFUSED;
		plan->allowed = false;
		plan->reason = "qtype-refused";
		break;
	}
}

size_t fb_dns_answer(const struct fb_policy *policy, struct fb_dns_plan *plan,
		     const struct fb_resolved *res, struct fb_dns_rr *rr)
{
	struct fb_decision d;
	size_t n = 0, dropped = 0;
	uint32_t ttl = res->ttl;

	/* The policy may have changed while the upstream was asked. */
	fb_policy_decide(policy, plan->name, NULL, &d);
	plan->reason = fb_reason_str(d.reason);
	plan->allowed = d.verdict != FB_VERDICT_DENY;
	plan->rcode = FB_DNS_NXDOMAIN;
	if (!plan->allowed)
		return 0;
	if (!fb_resolved_chain_allowed(res, policy)) {
		plan->allowed = false;
		plan->reason = "cname-not-allowed";
		plan->detail = "the answer went through a CNAME the policy "
			       "does not allow";
		return 0;
	}
	switch (res->status) {
	case FB_RESOLVE_NXDOMAIN:
		plan->reason = "upstream-nxdomain";
		return 0;
	case FB_RESOLVE_FAILED:
		plan->rcode = FB_DNS_SERVFAIL;
		plan->reason = "upstream-failed";
		plan->detail = res->why;
		return 0;
	case FB_RESOLVE_OK:
		break;
	}
	plan->rcode = FB_DNS_NOERROR;
	if (ttl < FB_RESOLVE_TTL_MIN)
		ttl = FB_RESOLVE_TTL_MIN;
	if (ttl > FB_RESOLVE_TTL_MAX)
		ttl = FB_RESOLVE_TTL_MAX;
	for (size_t i = 0; i < res->naddrs && n < FB_DNS_MAX_RR; i++) {
		const struct fb_addr *a = &res->addrs[i];

		if (a->family != plan->family)
			continue;
		if (fb_policy_check_addr(policy, a, &d) == FB_VERDICT_DENY) {
			dropped++;
			continue;
		}
		memset(&rr[n], 0, sizeof(rr[n]));
		memcpy(rr[n].name, plan->name, sizeof(rr[n].name));
		rr[n].type = a->family == AF_INET ? FB_DNS_A : FB_DNS_AAAA;
		rr[n].ttl = ttl;
		rr[n].addr = *a;
		n++;
	}
	if (dropped && n) {
		plan->reason = "denied-address-dropped";
	} else if (dropped) {
		plan->allowed = false;
		plan->reason = "only-denied-addresses";
	}
	return n;
}

/* ---- replies and the audit callback ------------------------------------ */

/*
 * A question name that is not a host name, in the presentation form of
 * RFC 1035 §5.1, so the log shows every byte the guest sent: which were a
 * label's and which were dots between labels.
 */
static const char *name_as_received(const struct fb_dns_msg *q,
				    char out[NAME_SHOWN_MAX])
{
	size_t o = 0;

	for (size_t i = 0; i < q->qwire_len && q->qwire[i]; i += 1 + q->qwire[i]) {
		if (i > 0)
			out[o++] = '.';
		for (size_t j = 1; j <= q->qwire[i]; j++) {
			uint8_t b = q->qwire[i + j];

			if (b == '.' || b == '\\')
				o += (size_t)sprintf(out + o, "\\%c", b);
			else if (b < 0x21 || b > 0x7e)
				o += (size_t)sprintf(out + o, "\\%03u", (unsigned)b);
			else
				out[o++] = (char)b;
		}
	}
	out[o] = '\0';
	return out;
}

static void report(const struct pending *p, const struct fb_dns_rr *rr,
		   size_t n)
{
	struct fb_dns_server *s = p->s;
	const struct fb_dns_plan *plan = &p->plan;
	struct fb_addr addrs[FB_DNS_MAX_RR];
	char shown[NAME_SHOWN_MAX];
	struct fb_dns_event ev = {
		.name = plan->name[0] ? plan->name :
			p->q.qname_text ? p->q.qname : name_as_received(&p->q, shown),
		.qtype = p->q.qtype,
		.tcp = p->conn,
		.source = &p->peer,
		.suppressed = p->suppressed,
		.allowed = plan->allowed,
		.reason = plan->reason,
		.detail = plan->detail,
		.rcode = plan->rcode,
		.addrs = addrs,
		.naddrs = n,
		.duration_ms = fb_loop_now(s->loop) - p->started_ms,
	};

	s->stats.queries++;
	if (plan->allowed)
		s->stats.allowed++;
	else
		s->stats.denied++;
	if (plan->rcode == FB_DNS_FORMERR || plan->rcode == FB_DNS_NOTIMP)
		s->stats.malformed++;
	if (plan->rcode == FB_DNS_SERVFAIL)
		s->stats.upstream_failed++;
	for (size_t i = 0; i < n; i++)
		addrs[i] = rr[i].addr;
	if (s->cfg.on_query)
		s->cfg.on_query(&ev, s->cfg.arg);
}

static void tcp_send(struct tcp_conn *c, const uint8_t *msg, size_t len);

/* For the report: nothing went out, the connection being gone. */
static void no_reply(struct pending *p)
{
	p->plan.rcode = FB_DNS_NO_REPLY;
	p->plan.reason = "connection-closed";
	p->plan.detail = "the connection closed before the answer";
}

/*
 * Build and send the reply; if the records cannot be written, SERVFAIL.
 * For the report that follows, p->plan.rcode says which went out (none,
 * on a TCP connection closing), and the return value how many records
 * (none when truncated for UDP).
 */
static size_t reply(struct pending *p, const struct fb_dns_rr *rr, size_t n)
{
	uint8_t buf[REPLY_MAX];
	size_t limit = p->conn ? sizeof(buf) : fb_dns_udp_limit(&p->q);
	const char *why;
	ssize_t len;

	if (p->conn && p->conn->closing) {
		no_reply(p);
		return 0;
	}

	len = fb_dns_build_reply(&p->q, p->plan.rcode, rr, n, buf, limit, &why);
	if (len < 0) {
		p->plan.rcode = FB_DNS_SERVFAIL;
		p->plan.detail = why;
		n = 0;
		len = fb_dns_build_reply(&p->q, p->plan.rcode, NULL, 0, buf, limit,
					 &why);
	}
	if (len < 0)
		return 0;
	if (p->conn)
		tcp_send(p->conn, buf, (size_t)len);
	else
		sendto(p->s->udp_fd, buf, (size_t)len, MSG_DONTWAIT,
		       (const struct sockaddr *)&p->peer, p->peerlen);
	return buf[2] & (FB_DNS_TC >> 8) ? 0 : n;
}

static void rate_log_close(struct fb_dns_server *s)
{
	if (s->suppressed && s->cfg.on_suppressed)
		s->cfg.on_suppressed(s->suppressed, s->cfg.arg);
	s->suppressed = 0;
}

static void on_rate_log_end(struct fb_loop *l, void *arg)
{
	struct fb_dns_server *s = arg;

	(void)l;
	s->rate_log = NULL;
	rate_log_close(s);
}

/* A query over the cap: true when it is to be reported suppressed, the
 * interval's first having been reported in full (dns_server.h). */
static bool rate_log_suppress(struct fb_dns_server *s)
{
	if (s->rate_log) {
		s->suppressed++;
		return true;
	}
	/* Without its timer no interval opens: each query is reported. */
	s->rate_log = fb_timer_add(s->loop, RATE_LOG_MS, on_rate_log_end, s);
	return false;
}

static void tcp_resume(struct tcp_conn *c);

static void finish(struct pending *p)
{
	struct tcp_conn *c = p->conn;

	LIST_REMOVE(p, link);
	free(p);
	if (c) {
		c->inflight--;
		tcp_resume(c);
	}
}

static void on_resolved(const struct fb_resolved *res, void *arg)
{
	struct pending *p = arg;
	struct fb_dns_server *s = p->s;
	struct fb_dns_rr rr[FB_DNS_MAX_RR];
	size_t n;

	p->req = NULL;
	n = fb_dns_answer(*s->cfg.policy, &p->plan, res, rr);
	n = reply(p, rr, n);
	report(p, rr, n);
	finish(p);
}

/* Past the rate cap, `p` is refused (no token left at `now`): counted,
 * and its line suppressed but for one an interval.  True if so. */
static bool rate_limited(struct fb_dns_server *s, struct pending *p,
			 uint64_t now)
{
	if (fb_rate_take(&s->rate, now))
		return false;
	s->stats.rate_limited++;
	p->plan.allowed = false;
	p->plan.reason = "rate-limited";
	p->suppressed = rate_log_suppress(s);
	return true;
}

/* One query from `peer`, over UDP (c == NULL) or TCP. */
static void handle(struct fb_dns_server *s, struct tcp_conn *c,
		   const struct sockaddr_storage *peer, socklen_t peerlen,
		   const uint8_t *pkt, size_t len)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (!p)
		return;
	p->s = s;
	p->conn = c;
	memcpy(&p->peer, peer, peerlen);
	p->peerlen = peerlen;
	p->started_ms = fb_loop_now(s->loop);
	fb_dns_plan(*s->cfg.policy, pkt, len, &p->q, &p->plan);
	if (p->plan.action == FB_DNS_DROP) {
		free(p);
		return;
	}
	if (rate_limited(s, p, p->started_ms)) {
		p->plan.action = FB_DNS_REPLY;
		p->plan.rcode = FB_DNS_REFUSED;
		p->plan.detail = NULL;
	}
	if (p->plan.action == FB_DNS_REPLY) {
		reply(p, NULL, 0);
		report(p, NULL, 0);
		free(p);
		return;
	}
	LIST_INSERT_HEAD(c ? &c->pending : &s->udp_pending, p, link);
	if (c)
		c->inflight++;
	p->req = fb_resolve(s->cfg.resolver, p->plan.name, p->plan.family,
			    on_resolved, p);
	if (!p->req) {
		struct fb_resolved res = {
			.status = FB_RESOLVE_FAILED, .why = "out of memory",
		};

		on_resolved(&res, p);
	}
}

/*
 * Give up the queries still waiting for the resolver: their connection
 * is closing, or the server is.  Each was asked upstream, so each is
 * reported, with no reply.
 */
static void cancel_all(struct pending_list *list)
{
	struct pending *p;

	while ((p = LIST_FIRST(list))) {
		fb_resolve_cancel(p->req);
		no_reply(p);
		report(p, NULL, 0);
		LIST_REMOVE(p, link);
		free(p);
	}
}

/* ---- UDP --------------------------------------------------------------- */

static void on_udp(struct fb_loop *l, int fd, uint32_t events, void *arg)
{
	struct fb_dns_server *s = arg;
	uint8_t buf[QUERY_MAX];

	(void)l;
	(void)events;
	for (int i = 0; i < UDP_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t peerlen = sizeof(peer);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_TRUNC,
				     (struct sockaddr *)&peer, &peerlen);

		if (n < 0)
			return; /* EAGAIN, or an ICMP error for an earlier reply */
		if ((size_t)n > sizeof(buf))
			continue; /* longer than any query: not one */
		handle(s, NULL, &peer, peerlen, buf, (size_t)n);
	}
}

/* ---- TCP --------------------------------------------------------------- */

static void on_idle(struct fb_loop *l, void *arg);

/*
 * The whole queries left in the buffer behind the in-flight cap when the
 * connection goes: read, never asked upstream, and reported like those
 * that were, with no reply: a guest may write many in one go.  Each takes
 * a token of the rate cap as handle() would have it take one, so that
 * writing them and resetting is no way around the cap's log suppression.
 */
static void report_unread(struct tcp_conn *c)
{
	size_t off = 0;

	while (c->inlen - off >= 2) {
		size_t mlen = (size_t)c->in[off] << 8 | c->in[off + 1];
		struct pending p = {
			.s = c->s, .conn = c, .peerlen = c->peerlen,
			.started_ms = fb_loop_now(c->s->loop),
		};

		if (mlen > QUERY_MAX || c->inlen - off - 2 < mlen)
			return;
		memcpy(&p.peer, &c->peer, c->peerlen);
		fb_dns_plan(*c->s->cfg.policy, c->in + off + 2, mlen, &p.q,
			    &p.plan);
		if (p.plan.action != FB_DNS_DROP) {
			no_reply(&p);
			rate_limited(c->s, &p, p.started_ms);
			report(&p, NULL, 0);
		}
		off += 2 + mlen;
	}
}

static void tcp_close(struct tcp_conn *c)
{
	struct fb_dns_server *s = c->s;

	cancel_all(&c->pending);
	report_unread(c);
	if (c->idle)
		fb_timer_cancel(s->loop, c->idle);
	fb_loop_del(s->loop, c->fd);
	close(c->fd);
	LIST_REMOVE(c, link);
	s->nconns--;
	free(c->out);
	free(c);
}

static void touch(struct tcp_conn *c)
{
	struct fb_loop *l = c->s->loop;

	if (c->closing)
		return;
	if (c->idle)
		fb_timer_cancel(l, c->idle);
	c->idle = fb_timer_add(l, c->s->cfg.tcp_idle_ms, on_idle, c);
}

static void on_idle(struct fb_loop *l, void *arg)
{
	struct tcp_conn *c = arg;

	(void)l;
	c->idle = NULL;
	tcp_close(c);
}

/* Close from the loop, not from under a caller that still holds c. */
static void tcp_close_soon(struct tcp_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->idle)
		fb_timer_cancel(c->s->loop, c->idle);
	c->idle = fb_timer_add(c->s->loop, 0, on_idle, c);
}

/*
 * Read while under the cap on queries in flight and the client sends;
 * write while queued.  A client that has finished sending is closed once
 * every query it sent is answered and the answers are out.
 */
static void tcp_watch(struct tcp_conn *c)
{
	if (c->eof && !c->inflight && !c->outlen) {
		tcp_close_soon(c);
		return;
	}
	fb_loop_mod(c->s->loop, c->fd,
		    (c->inflight < TCP_INFLIGHT_MAX && !c->eof ? EPOLLIN : 0) |
		    (c->outlen ? EPOLLOUT : 0));
}

/* Write what is queued; -1 when the connection is gone. */
static int tcp_flush(struct tcp_conn *c)
{
	while (c->outlen) {
		ssize_t n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		memmove(c->out, c->out + n, c->outlen - (size_t)n);
		c->outlen -= (size_t)n;
	}
	tcp_watch(c);
	return 0;
}

/* Queue one reply; a client that lets its replies pile up is closed. */
static void tcp_send(struct tcp_conn *c, const uint8_t *msg, size_t len)
{
	size_t need = c->outlen + 2 + len;

	if (c->closing)
		return;
	if (need > c->outcap) {
		uint8_t *out = need <= TCP_OUT_MAX ? realloc(c->out, need) : NULL;

		if (!out) {
			tcp_close_soon(c);
			return;
		}
		c->out = out;
		c->outcap = need;
	}
	c->out[c->outlen] = (uint8_t)(len >> 8);
	c->out[c->outlen + 1] = (uint8_t)len;
	memcpy(c->out + c->outlen + 2, msg, len);
	c->outlen = need;
	touch(c);
	if (tcp_flush(c) < 0)
		tcp_close_soon(c);
}

/*
 * Handle every whole message read so far, up to the cap in flight; each
 * restarts the idle time.  handle() may queue replies but never frees c,
 * and may come back here (a lookup that fails at once ends a query in
 * flight): the message is taken out of the buffer first.  -1: close it.
 */
static int tcp_drain(struct tcp_conn *c)
{
	uint8_t msg[QUERY_MAX];

	for (;;) {
		size_t mlen;

		if (c->closing || c->inlen < 2)
			return 0;
		mlen = (size_t)c->in[0] << 8 | c->in[1];
		if (mlen > QUERY_MAX)
			return -1;
		if (c->inlen < 2 + mlen || c->inflight >= TCP_INFLIGHT_MAX)
			return 0;
		memcpy(msg, c->in + 2, mlen);
		memmove(c->in, c->in + 2 + mlen, c->inlen - 2 - mlen);
		c->inlen -= 2 + mlen;
		touch(c);
		handle(c->s, c, &c->peer, c->peerlen, msg, mlen);
	}
}

/* A query in flight ended: room for the ones waiting in the buffer. */
static void tcp_resume(struct tcp_conn *c)
{
	if (tcp_drain(c) < 0)
		tcp_close_soon(c);
	else
		tcp_watch(c);
}

static void on_tcp(struct fb_loop *l, int fd, uint32_t events, void *arg)
{
	struct tcp_conn *c = arg;
	ssize_t n;

	(void)l;
	/* A reset or a peer gone both ways: its replies have nowhere to go. */
	if (events & (EPOLLHUP | EPOLLERR)) {
		tcp_close(c);
		return;
	}
	if ((events & EPOLLOUT) && tcp_flush(c) < 0) {
		tcp_close(c);
		return;
	}
	if (!(events & EPOLLIN) || c->closing || c->inflight >= TCP_INFLIGHT_MAX)
		return;
	n = recv(fd, c->in + c->inlen, sizeof(c->in) - c->inlen, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n < 0) {
		tcp_close(c);
		return;
	}
	if (n == 0) { /* a half-close: the replies still owed go out */
		c->eof = true;
		tcp_watch(c);
		return;
	}
	c->inlen += (size_t)n;
	if (tcp_drain(c) < 0) {
		tcp_close(c);
		return;
	}
	tcp_watch(c);
}

static void on_accept(struct fb_loop *l, int fd, uint32_t events, void *arg)
{
	struct fb_dns_server *s = arg;
	struct sockaddr_storage peer;
	socklen_t peerlen = sizeof(peer);
	struct tcp_conn *c;
	int cfd;

	(void)events;
	cfd = accept4(fd, (struct sockaddr *)&peer, &peerlen,
		      SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0) {
		fb_accept_pause(&s->accept_pause, l, &s->tcp_fd, 1, errno);
		return;
	}
	if (s->nconns >= TCP_CONNS_MAX || !(c = calloc(1, sizeof(*c)))) {
		close(cfd);
		return;
	}
	c->s = s;
	c->fd = cfd;
	c->peer = peer;
	c->peerlen = peerlen;
	LIST_INIT(&c->pending);
	if (fb_loop_add(l, cfd, EPOLLIN, on_tcp, c) < 0) {
		close(cfd);
		free(c);
		return;
	}
	LIST_INSERT_HEAD(&s->conns, c, link);
	s->nconns++;
	touch(c);
}

/* ---- setup ------------------------------------------------------------- */

/* "ADDR:PORT" or "[v6]:PORT"; port 0 asks the kernel for one. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss,
			socklen_t *sslen, char *err, size_t errsize)
{
	struct fb_addr a;
	int port;

	if (fb_addr_port_parse(spec, &a, &port) < 0 || port < 0) {
		snprintf(err, errsize, "dns listen \"%s\": expected ADDR:PORT "
			 "or [IPv6]:PORT", spec);
		return -1;
	}
	*sslen = fb_addr_to_sockaddr(&a, (uint16_t)port, ss);
	return 0;
}

static int open_socket(int type, const struct sockaddr_storage *ss,
		       socklen_t sslen, const char *spec, char *err,
		       size_t errsize)
{
	int one = 1;
	int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0 ||
	    (type == SOCK_STREAM &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) ||
	    bind(fd, (const struct sockaddr *)ss, sslen) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 64) < 0)) {
		snprintf(err, errsize, "dns listen %s (%s): %s", spec,
			 type == SOCK_STREAM ? "tcp" : "udp", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static in_port_t *port_of(struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return &((struct sockaddr_in *)ss)->sin_port;
	return &((struct sockaddr_in6 *)ss)->sin6_port;
}

/* UDP then TCP on the port UDP got (the same one unless it was 0). */
static int open_listeners(struct fb_dns_server *s, char *err, size_t errsize)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	bool any;

	if (parse_listen(s->cfg.listen, &ss, &sslen, err, errsize) < 0)
		return -1;
	any = *port_of(&ss) == 0;
	/* With port 0 the port UDP got may be taken for TCP: try again. */
	for (int attempt = 0; attempt < 8; attempt++) {
		socklen_t len = sslen;

		s->udp_fd = open_socket(SOCK_DGRAM, &ss, sslen, s->cfg.listen, err, errsize);
		if (s->udp_fd < 0)
			return -1;
		getsockname(s->udp_fd, (struct sockaddr *)&ss, &len);
		s->tcp_fd = open_socket(SOCK_STREAM, &ss, sslen, s->cfg.listen, err, errsize);
		if (s->tcp_fd >= 0) {
			s->port = ntohs(*port_of(&ss));
			return 0;
		}
		close(s->udp_fd);
		s->udp_fd = -1;
		if (!any || errno != EADDRINUSE)
			return -1;
		*port_of(&ss) = 0;
	}
	return -1;
}

struct fb_dns_server *fb_dns_server_new(struct fb_loop *loop,
					const struct fb_dns_config *cfg,
					char *err, size_t errsize)
{
	struct fb_dns_server *s = calloc(1, sizeof(*s));

	if (!s) {
		snprintf(err, errsize, "dns server: out of memory");
		return NULL;
	}
	s->loop = loop;
	s->cfg = *cfg;
	if (!s->cfg.rate_qps)
		s->cfg.rate_qps = DEFAULT_QPS;
	if (!s->cfg.rate_burst)
		s->cfg.rate_burst = DEFAULT_BURST;
	if (!s->cfg.tcp_idle_ms)
		s->cfg.tcp_idle_ms = DEFAULT_TCP_IDLE_MS;
	fb_rate_init(&s->rate, s->cfg.rate_qps, s->cfg.rate_burst,
		     fb_loop_now(loop));
	s->udp_fd = s->tcp_fd = -1;
	LIST_INIT(&s->udp_pending);
	LIST_INIT(&s->conns);
	if (open_listeners(s, err, errsize) < 0) {
		free(s);
		return NULL;
	}
	if (fb_loop_add(loop, s->udp_fd, EPOLLIN, on_udp, s) < 0 ||
	    fb_loop_add(loop, s->tcp_fd, EPOLLIN, on_accept, s) < 0) {
		snprintf(err, errsize, "dns listen %s: cannot watch the sockets", cfg->listen);
		fb_dns_server_free(s);
		return NULL;
	}
	return s;
}

void fb_dns_server_free(struct fb_dns_server *s)
{
	struct tcp_conn *c;

	if (!s)
		return;
	while ((c = LIST_FIRST(&s->conns)))
		tcp_close(c);
	cancel_all(&s->udp_pending);
	if (s->rate_log) {
		fb_timer_cancel(s->loop, s->rate_log);
		rate_log_close(s);
	}
	fb_accept_pause_cancel(&s->accept_pause);
	fb_loop_del(s->loop, s->udp_fd);
	fb_loop_del(s->loop, s->tcp_fd);
	close(s->udp_fd);
	close(s->tcp_fd);
	free(s);
}

uint16_t fb_dns_server_port(const struct fb_dns_server *s)
{
	return s->port;
}

void fb_dns_server_stats(const struct fb_dns_server *s, struct fb_dns_stats *st)
{
	*st = s->stats;
}
