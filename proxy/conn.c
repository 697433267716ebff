/*
 * conn.c — one guest connection, from accept to close.
 *
 *   PEEK      read up to 64 KiB until the peeker names the destination
 *             (TLS SNI, HTTP Host, Postgres SSLRequest + SNI), under a
 *             deadline and a cap on concurrent peeks
 *   RESOLVE   the name through the proxy's own resolver (never the guest's
 *             choice of address: brokering.md §0.1)
 *   DIAL      non-blocking connect to an address from that answer
 *   PG_UP     Postgres: our own SSLRequest upstream, waiting for its 'S'
 *   REPLAY    the peeked bytes, untouched, to the upstream
 *   RELAY     both ways, copied while small and spliced once large
 *             (splice.c); plain HTTP requests are read, checked one by
 *             one (conn_http.c) and forwarded
 *   DRAIN     refused: the alert or 403 is out, wait briefly for the
 *             guest to close so the message is not lost to a reset
 *
 * Every connection gets one decision line and one close line in the
 * audit log.
 *
 * Both sockets are registered once, edge-triggered, so a connection's
 * life costs no EPOLL_CTL_MOD: each event is noted as readiness (struct
 * fb_splice) and the steps read or write only a side known to be ready.
 * The upstream is watched for EPOLLOUT from the start (that is how a
 * connect completes); the guest only once it has refused bytes, which
 * most never do, and a fresh socket's EPOLLOUT would wake the loop for
 * nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/broker.h"
#include "proxy/conn.h"
#include "proxy/deny.h"

/* From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>,
 * whose other contents clash with the libc headers. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

#define WATCH_IN (EPOLLIN | EPOLLRDHUP | EPOLLET)
#define WATCH (WATCH_IN | EPOLLOUT)
#define PEEK_FIRST 4096        /* a ClientHello or request head, mostly */
#define DRAIN_MS 1000          /* how long a refused guest may take to close */
#define ANSWERS_QUIET_MS 5000  /* a refused request waits for the answers to
				* those before it: how long they may pause */
#define ACCEPT_BATCH 64

static const char *const state_names[] = {
	[C_PEEK] = "peek",       [C_RESOLVE] = "resolve", [C_DIAL] = "dial",
	[C_PG_UP] = "postgres",  [C_REPLAY] = "replay",   [C_RELAY] = "relay",
	[C_DRAIN] = "drain",
};

static void on_client(struct fb_loop *l, int fd, uint32_t ev, void *arg);
static void conn_free(struct conn *c);
static void on_upstream(struct fb_loop *l, int fd, uint32_t ev, void *arg);
static void conn_relay_start(struct conn *c);

const char *fb_conn_proto_str(enum conn_proto p)
{
	static const char *const names[] = {
		[P_UNKNOWN] = "unknown", [P_TLS] = "tls",
		[P_HTTP] = "http", [P_POSTGRES] = "postgres",
	};

	return names[p];
}

/* ---- small helpers ----------------------------------------------------- */

/* The port of an accepted connection's end (the address is kept apart). */
static uint16_t sockaddr_port(const struct sockaddr_storage *ss)
{
	struct fb_addr unused;

	return fb_addr_from_sockaddr(ss, &unused);
}

/*
 * Where the guest meant to go: the conntrack entry of the nft redirect.
 * False for a connection made straight to the proxy's port, whose
 * destination is the proxy itself: there is no entry (no conntrack), or
 * it names the proxy's own address and port.  Such a connection must
 * never be let go where it points (it is closed at once: a CIDR rule
 * covering the gateway would have the proxy connect to itself, again and
 * again).  The socket's family is the peer's, as accept reported it.
 */
static bool original_dst(const struct fb_proxy *p, int fd, sa_family_t family,
			 struct sockaddr_storage *ss)
{
	struct sockaddr_storage self;
	socklen_t len = sizeof(*ss), selflen = sizeof(self);
	struct fb_addr a, b;
	bool found = family == AF_INET6 ?
		getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, ss, &len) == 0 :
		getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, ss, &len) == 0;

	/* a redirect sends every port to the proxy's: only a destination
	 * on that port can be the proxy itself */
	if (found && sockaddr_port(ss) != p->listen_port)
		return true;
	if (getsockname(fd, (struct sockaddr *)&self, &selflen) < 0)
		return false;
	if (!found) {
		*ss = self;
		return false;
	}
	fb_addr_from_sockaddr(ss, &a);
	fb_addr_from_sockaddr(&self, &b);
	return !fb_addr_equal(&a, &b);
}

static void timer_set(struct conn *c, uint64_t ms, fb_timer_fn *fn)
{
	fb_timer_cancel(c->p->loop, c->timer);
	c->timer = fb_timer_add(c->p->loop, ms, fn, c);
}

/* ---- audit ------------------------------------------------------------- */

static void audit_common(struct conn *c, struct fb_audit_line *ln)
{
	fb_audit_uint(ln, "event.id", c->id);
	fb_audit_sockaddr(ln, "source", &c->src);
	fb_audit_sockaddr(ln, "destination", &c->dst);
	if (c->up.ss_family) /* the address dialled, ours, not the guest's */
		fb_audit_sockaddr(ln, "server", &c->up);
	if (c->has_name) {
		fb_audit_guest(ln, "destination.domain", c->name, strlen(c->name));
		if (c->proto == P_TLS || c->proto == P_POSTGRES)
			fb_audit_guest(ln, "tls.client.server_name", c->name,
				       strlen(c->name));
	}
	if (c->peek_reason)
		fb_audit_str(ln, "firebreak.peek", c->peek_reason);
	if (c->ech)
		fb_audit_bool(ln, "tls.client.ech", true);
	fb_audit_str(ln, "network.protocol", fb_conn_proto_str(c->proto));
	if (c->rule)
		fb_audit_str(ln, "rule.name", c->rule);
}

/* Deferred to the end of the loop iteration: nothing the guest can see
 * has happened yet (a refusal flushes it before answering). */
static void audit_decision(struct conn *c, bool allowed, const char *reason)
{
	struct fb_audit_line ln;

	fb_stats_outcome(&c->p->stats, allowed, reason);
	fb_audit_begin(c->p->audit, &ln, "connection",
		       allowed ? "allowed" : "denied", c->generation);
	fb_audit_str(&ln, "event.type", "start");
	fb_audit_str(&ln, "event.reason", reason);
	audit_common(c, &ln);
	fb_audit_defer(c->p->audit, c->p->loop, &ln);
	c->decided = true;
}

/* ---- lifetime ---------------------------------------------------------- */

static void peek_end(struct conn *c)
{
	if (c->peeking) {
		c->peeking = false;
		c->p->stats.peeking--;
	}
}

void fb_conn_close(struct conn *c, const char *why)
{
	struct fb_proxy *p = c->p;
	struct fb_audit_line ln;
	uint64_t up = c->to_up.bytes + c->replayed + c->http_up;
	uint64_t down = c->to_down.bytes;

	/* Never decided on the record: refused on the way (why), or allowed
	 * and gone while its name resolved (the allow stands; the end line
	 * says why it went). */
	if (!c->decided)
		audit_decision(c, c->state == C_RESOLVE,
			       c->state == C_RESOLVE ? c->allow_reason : why);
	fb_audit_begin(p->audit, &ln, "connection", NULL, c->generation);
	fb_audit_str(&ln, "event.type", "end");
	fb_audit_str(&ln, "event.reason", why);
	audit_common(c, &ln);
	/* whatever ended the connection, a request was refused on it */
	if (conn_http_refusal(c))
		fb_audit_str(&ln, "firebreak.request_refused", conn_http_refusal(c));
	fb_audit_uint(&ln, "event.duration",
		      (fb_loop_now(p->loop) - c->start_ms) * 1000000);
	fb_audit_uint(&ln, "source.bytes", up);
	fb_audit_uint(&ln, "destination.bytes", down);
	fb_audit_defer(p->audit, p->loop, &ln);
	p->stats.bytes_up += up;
	p->stats.bytes_down += down;
	conn_free(c);
}

/* c and all it holds, gone, with no line: fb_conn_close's, or a handoff's
 * to the broker, whose end line is then the connection's. */
static void conn_free(struct conn *c)
{
	struct fb_proxy *p = c->p;

	p->stats.open--;
	peek_end(c);
	fb_timer_cancel(p->loop, c->timer);
	if (c->rreq)
		fb_resolve_cancel(c->rreq);
	/* Both sides done or not, close() sends what shutdown() would: a
	 * FIN after the bytes still queued (a reset if unread bytes wait). */
	fb_loop_close(p->loop, c->cfd);
	fb_loop_close(p->loop, c->ufd);
	fb_splice_close(&c->to_up);
	fb_splice_close(&c->to_down);
	conn_peek_free(c);
	conn_http_free(c);
	if (c->policy)
		fb_policy_unref(c->policy);
	free(c->chain);
	if (c->prev)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->buf);
	free(c);
}

static void on_drain_timeout(struct fb_loop *l, void *arg)
{
	struct conn *c = arg;

	(void)l;
	c->timer = NULL;
	fb_conn_close(c, c->why);
}

/* Until the guest closes (or resets): what it still sends is dropped. */
static void drain(struct conn *c)
{
	char junk[4096];
	ssize_t n;

	do
		n = recv(c->cfd, junk, sizeof(junk), 0);
	while (n > 0 || (n < 0 && errno == EINTR));
	if (n == 0 || errno != EAGAIN)
		fb_conn_close(c, c->why);
}

/* The guest's side had news before the refusal whose edge is spent:
 * look at it now rather than wait out the deadline. */
static void on_drain_start(struct fb_loop *l, void *arg)
{
	struct conn *c = arg;

	(void)l;
	c->timer = NULL;
	timer_set(c, DRAIN_MS, on_drain_timeout);
	drain(c);
}

/*
 * Send the guest our last word, then half-close and give it a moment to
 * read it before the socket goes away.  Never frees c at once (the relay
 * calls this from inside its own step).
 */
static void conn_answer_close(struct conn *c, const char *reason,
			      const void *out, ssize_t len)
{
	uint64_t wait = DRAIN_MS;

	if (!c->decided)
		audit_decision(c, false, reason);
	/* the refusal is in the log before the guest can read it */
	fb_audit_flush(c->p->audit);
	peek_end(c);
	c->why = reason;
	/* A few hundred bytes into a socket buffer: not worth a retry; if
	 * they do not go, the connection is simply closed. */
	if (len <= 0 || send(c->cfd, out, (size_t)len, MSG_NOSIGNAL) != len ||
	    shutdown(c->cfd, SHUT_WR) < 0)
		wait = 0;
	fb_loop_close(c->p->loop, c->ufd);
	c->ufd = -1;
	if (c->rreq) {
		fb_resolve_cancel(c->rreq);
		c->rreq = NULL;
	}
	c->state = C_DRAIN;
	if (wait && c->to_up.in_ready)
		timer_set(c, 0, on_drain_start);
	else
		timer_set(c, wait, on_drain_timeout);
}

/* Refuse visibly: the TLS alert or the HTTP 403. */
void fb_conn_refuse(struct conn *c, const char *reason)
{
	char msg[512];
	const void *out = NULL;
	ssize_t len = 0;

	if (c->proto == P_TLS || c->proto == P_POSTGRES) {
		out = fb_tls_alert_access_denied;
		len = FB_TLS_ALERT_LEN;
	} else if (c->proto == P_HTTP) {
		len = fb_http_forbidden(msg, sizeof(msg), reason);
		out = msg;
	}
	conn_answer_close(c, reason, out, len);
}

void fb_conn_misdirected(struct conn *c, const char *reason)
{
	char msg[512];

	conn_answer_close(c, reason, msg,
			  fb_http_misdirected(msg, sizeof(msg), reason));
}

/* ---- accept ------------------------------------------------------------ */

static void on_peek_timeout(struct fb_loop *l, void *arg)
{
	struct conn *c = arg;

	(void)l;
	c->timer = NULL;
	fb_conn_close(c, "peek-timeout");
}

static void conn_start(struct fb_proxy *p, int fd,
		       const struct sockaddr_storage *src)
{
	struct conn *c = calloc(1, sizeof(*c));
	bool redirected;

	if (!c) {
		close(fd);
		return;
	}
	c->p = p;
	c->id = ++p->next_conn_id;
	c->cfd = fd;
	c->ufd = -1;
	c->src = *src;
	c->start_ms = c->last_ms = fb_loop_now(p->loop);
	c->generation = p->generation;
	fb_splice_init(&c->to_up);
	fb_splice_init(&c->to_down);
	redirected = original_dst(p, fd, src->ss_family, &c->dst);
	fb_addr_from_sockaddr(&c->dst, &c->dst_addr);
	c->next = p->conns;
	if (p->conns)
		p->conns->prev = c;
	p->conns = c;
	p->stats.accepted++;
	p->stats.open++;

	if (p->stats.open > p->cfg.max_conns) {
		fb_conn_close(c, "too-many-connections");
		return;
	}
	if (p->stats.peeking >= p->cfg.max_peeks) {
		fb_conn_close(c, "too-many-peeks");
		return;
	}
	if (!redirected) {
		audit_decision(c, false, "not-redirected");
		fb_conn_close(c, "not-redirected");
		return;
	}
	/* Grown only for the rare larger hello: 64 KiB per connection, freed
	 * at once, would have malloc return it to the kernel and fault it in
	 * again, connection after connection. */
	c->cap = PEEK_FIRST;
	c->buf = malloc(c->cap);
	if (!c->buf || conn_peek_init(c) < 0 ||
	    fb_loop_add(p->loop, fd, WATCH_IN, on_client, c) < 0) {
		fb_conn_close(c, "out-of-memory");
		return;
	}
	c->state = C_PEEK;
	c->peeking = true;
	p->stats.peeking++;
	timer_set(c, p->cfg.peek_timeout_ms, on_peek_timeout);
}

void fb_conn_on_accept(struct fb_loop *l, int fd, uint32_t events, void *arg)
{
	struct fb_proxy *p = arg;

	(void)events;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage src;
		socklen_t len = sizeof(src);
		int cfd = accept4(fd, (struct sockaddr *)&src, &len,
				  SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd >= 0) {
			conn_start(p, cfd, &src);
			continue;
		}
		fb_accept_pause(&p->accept_pause, l, p->listen_fd, p->nlisten,
				errno);
		return;
	}
}

/* ---- decide, resolve, dial --------------------------------------------- */

static void on_dial_timeout(struct fb_loop *l, void *arg)
{
	struct conn *c = arg;

	(void)l;
	c->timer = NULL;
	fb_conn_close(c, c->state == C_REPLAY ? "replay-timeout" : "dial-timeout");
}

/* Decided: `a` on the port the guest asked for, logged as the server
 * (which the decision line names), then dialled. */
static void conn_dial(struct conn *c, const struct fb_addr *a)
{
	struct fb_proxy *p = c->p;
	socklen_t len;
	int fd;

	c->upstream_addr = *a;
	len = fb_addr_to_sockaddr(a, sockaddr_port(&c->dst), &c->up);
	audit_decision(c, true, c->allow_reason);
	fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fb_conn_close(c, "dial-failed");
		return;
	}
	if (connect(fd, (struct sockaddr *)&c->up, len) < 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		fb_conn_refuse(c, "dial-failed");
		return;
	}
	if (fb_loop_add(p->loop, fd, WATCH, on_upstream, c) < 0) {
		close(fd);
		fb_conn_close(c, "out-of-memory");
		return;
	}
	c->ufd = fd;
	c->state = C_DIAL;
	timer_set(c, p->cfg.peek_timeout_ms, on_dial_timeout);
}

static void on_resolved(const struct fb_resolved *res, void *arg)
{
	struct conn *c = arg;
	const struct fb_addr *a;
	bool oom;

	c->rreq = NULL;
	if (res->status != FB_RESOLVE_OK || res->naddrs == 0) {
		fb_conn_refuse(c, res->status == FB_RESOLVE_NXDOMAIN ?
				  "nxdomain" : "resolve-failed");
		return;
	}
	if (!fb_resolved_chain_allowed(res, c->policy)) {
		fb_conn_refuse(c, "cname-not-allowed");
		return;
	}
	a = fb_resolved_pick(res, c->policy, &c->dst_addr);
	if (!a) {
		fb_conn_refuse(c, "resolved-to-denied-address");
		return;
	}
	/* kept: a later policy must allow the whole chain too */
	c->chain = fb_chain_keep(res, &oom);
	if (oom) {
		fb_conn_refuse(c, "out-of-memory");
		return;
	}
	conn_dial(c, a);
}

/* The peeker is done: decide under the policy in force now. */
void fb_conn_decide(struct conn *c)
{
	struct fb_proxy *p = c->p;
	struct fb_decision d;
	bool started;

	peek_end(c);
	fb_timer_cancel(p->loop, c->timer);
	c->timer = NULL;
	c->policy = fb_policy_ref(p->policy);
	c->generation = p->generation;
	fb_policy_decide(c->policy, c->has_name ? c->name : NULL, &c->dst_addr, &d);
	c->rule = d.domain ? d.domain->pattern : NULL;
	c->allow_reason = fb_reason_str(d.reason);
	switch (d.verdict) {
	case FB_VERDICT_ALLOW:
		break;
	case FB_VERDICT_BROKER:
		/* Without a CA (or over plain HTTP, where a secret would go
		 * out in clear) a brokered name is refused, never spliced. */
		if (!p->broker || c->proto != P_TLS) {
			fb_conn_refuse(c, "brokering-unavailable");
			return;
		}
		audit_decision(c, true, "brokered");
		fb_loop_del(p->loop, c->cfd);
		started = fb_broker_start(p, c->cfd, c->buf, c->len, c->name,
					  d.domain, c->policy, &c->dst_addr,
					  sockaddr_port(&c->dst), &c->src,
					  c->id) == 0;
		/* the broker took the socket and the policy reference, and
		 * closed them if it could not start (c->rule stays valid:
		 * p->policy is that policy); from here its end line is the
		 * connection's */
		c->cfd = -1;
		c->policy = NULL;
		if (started)
			conn_free(c);
		else
			fb_conn_close(c, "broker-failed");
		return;
	default:
		fb_conn_refuse(c, fb_reason_str(d.reason));
		return;
	}
	if (c->has_name && d.reason != FB_REASON_ALLOWED_CIDR) {
		c->by_name = true;
		c->state = C_RESOLVE;
		c->rreq = fb_resolve(p->resolver, c->name, AF_UNSPEC, on_resolved, c);
		if (!c->rreq)
			fb_conn_close(c, "out-of-memory");
		return;
	}
	/* Domain-less under "*" or allow-all, or an allowed CIDR: the guest's
	 * own destination, which fb_policy_decide has checked (step 1). */
	conn_dial(c, &c->dst_addr);
}

/* ---- upstream ---------------------------------------------------------- */

static const unsigned char pg_ssl_request[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };

static void conn_replay(struct conn *c)
{
	/* Plain HTTP: the relay forwards the peeked request itself, after
	 * checking it like every later one. */
	while (!c->http && c->off < c->len) {
		ssize_t n = send(c->ufd, c->buf + c->off, c->len - c->off,
				 MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN) {
			c->state = C_REPLAY; /* until the upstream's next edge */
			return;
		}
		if (n < 0) {
			fb_conn_close(c, "upstream-error");
			return;
		}
		c->off += (size_t)n;
		c->replayed += (uint64_t)n;
	}
	conn_relay_start(c);
}

/* A connect that failed reports EPOLLERR; one that succeeded, EPOLLOUT
 * alone: the event says what SO_ERROR would. */
static void dial_done(struct conn *c, uint32_t ev)
{
	if (ev & (EPOLLERR | EPOLLHUP)) {
		fb_conn_refuse(c, "dial-failed");
		return;
	}
	if (!(ev & EPOLLOUT))
		return;
	/* The dial deadline runs on until the peeked bytes are all taken:
	 * an upstream that takes none would hold the connection forever. */
	if (c->proto == P_POSTGRES) {
		/* The upstream gets its own SSLRequest; the guest's was answered
		 * by us.  Eight bytes into a fresh socket: sent whole. */
		if (send(c->ufd, pg_ssl_request, sizeof(pg_ssl_request),
			 MSG_NOSIGNAL) != sizeof(pg_ssl_request)) {
			fb_conn_close(c, "upstream-error");
			return;
		}
		c->state = C_PG_UP;
		timer_set(c, c->p->cfg.peek_timeout_ms, on_dial_timeout);
		return;
	}
	conn_replay(c);
}

static void pg_answer(struct conn *c)
{
	char s;
	ssize_t n = recv(c->ufd, &s, 1, 0);

	if (n < 0 && errno == EAGAIN)
		return;
	/* the deadline runs on through the replay (dial_done) */
	if (n != 1 || s != 'S') {
		/* The server will not speak TLS: the guest's ClientHello has
		 * nowhere to go, and plain text is not what was decided. */
		fb_conn_close(c, "upstream-refused-tls");
		return;
	}
	conn_replay(c);
}

static void on_upstream(struct fb_loop *l, int fd, uint32_t ev, void *arg)
{
	struct conn *c = arg;

	(void)l;
	(void)fd;
	fb_splice_event_in(&c->to_down, ev);
	fb_splice_event_out(&c->to_up, ev);
	switch (c->state) {
	case C_DIAL:
		dial_done(c, ev);
		break;
	case C_PG_UP:
		pg_answer(c);
		break;
	case C_REPLAY:
		conn_replay(c);
		break;
	case C_RELAY:
		fb_conn_relay(c, ev);
		break;
	default:
		break;
	}
}

/* ---- the guest side ---------------------------------------------------- */

/* Doubled until it holds `want` bytes, never past FB_PEEK_MAX. */
int conn_buf_grow(struct conn *c, size_t want)
{
	size_t cap = c->cap;
	uint8_t *buf;

	while (cap < want)
		cap = cap * 2 < FB_PEEK_MAX ? cap * 2 : FB_PEEK_MAX;
	if (cap == c->cap)
		return 0;
	buf = realloc(c->buf, cap);
	if (!buf)
		return -1;
	c->buf = buf;
	c->cap = cap;
	return 0;
}

/* Read until the peeker has its answer or the socket runs dry (conn_peek.c
 * closes at 64 KiB), taking the same readiness rules as the relay. */
static void peek_read(struct conn *c)
{
	struct fb_splice *in = &c->to_up;

	while (in->in_ready) {
		size_t room;
		ssize_t n;

		if (c->len == c->cap && conn_buf_grow(c, c->cap + 1) < 0) {
			fb_conn_close(c, "out-of-memory");
			return;
		}
		room = c->cap - c->len;
		n = recv(c->cfd, c->buf + c->len, room, 0);
		switch (fb_splice_read_seen(in, n, room)) {
		case FB_READ_RETRY:
			continue;
		case FB_READ_DRY:
			return;
		case FB_READ_EOF:
		case FB_READ_ERROR:
			/* The relay passes a reset on as an EOF; here there
			 * is no upstream yet to pass it to, and the close
			 * line tells a guest that reset from one that closed. */
			fb_conn_close(c, n == 0 ? "client-closed" : "client-error");
			return;
		case FB_READ_BYTES:
			break;
		}
		c->len += (size_t)n;
		if (conn_peek_step(c) != 0)
			return; /* decided, refused or closed: c may be gone */
	}
}

static void on_client(struct fb_loop *l, int fd, uint32_t ev, void *arg)
{
	struct conn *c = arg;

	(void)l;
	(void)fd;
	fb_splice_event_in(&c->to_up, ev);
	fb_splice_event_out(&c->to_down, ev);
	switch (c->state) {
	case C_PEEK:
		peek_read(c);
		break;
	case C_RELAY:
		fb_conn_relay(c, ev);
		break;
	case C_DRAIN:
		drain(c);
		break;
	default:
		/* Not reading the guest now (resolving, dialling): epoll still
		 * reports a reset or hang-up, and left alone it would again at
		 * once, for as long as the wait lasts. */
		if (ev & (EPOLLERR | EPOLLHUP))
			fb_conn_close(c, "client-gone");
		break;
	}
}

/* ---- relay ------------------------------------------------------------- */

static void on_idle(struct fb_loop *l, void *arg)
{
	struct conn *c = arg;
	bool refused = conn_http_refusal(c) != NULL;
	uint64_t idle = refused ? ANSWERS_QUIET_MS
				: (uint64_t)c->p->cfg.idle_timeout_s * 1000;
	uint64_t quiet = fb_loop_now(l) - c->last_ms;

	c->timer = NULL;
	if (quiet >= idle) {
		/* An upstream that answered and stays open gets no longer.
		 * A guest that left part of an answer unread would find the
		 * refusal inside it: it gets the close alone. */
		if (refused && c->to_down.queued == 0)
			conn_http_refuse_now(c);
		else
			fb_conn_close(c, refused ? conn_http_refusal(c)
						 : "idle-timeout");
		return;
	}
	/* Activity moved the deadline: one timer per connection, re-armed
	 * lazily here rather than on every read. */
	timer_set(c, idle - quiet, on_idle);
}

void conn_await_answers(struct conn *c)
{
	c->last_ms = fb_loop_now(c->p->loop);
	timer_set(c, ANSWERS_QUIET_MS, on_idle);
}

static void conn_relay_start(struct conn *c)
{
	if (c->http && conn_http_start(c) < 0) {
		fb_conn_close(c, "out-of-memory");
		return;
	}
	if (!c->http) {
		/* replayed: the peek buffer is no longer needed */
		free(c->buf);
		c->buf = NULL;
		conn_peek_free(c);
	}
	c->state = C_RELAY;
	c->last_ms = fb_loop_now(c->p->loop);
	timer_set(c, (uint64_t)c->p->cfg.idle_timeout_s * 1000, on_idle);
	fb_conn_relay(c, 0);
}

/* A relay step failed: no pipe to hold what a reader refused is a
 * shortage of the proxy's, anything else the sockets'. */
static const char *relay_error(void)
{
	return errno == EMFILE || errno == ENFILE || errno == ENOMEM ?
	       "out-of-resources" : "relay-error";
}

/* Both directions, each only as far as its ready sides let it. */
void fb_conn_relay(struct conn *c, uint32_t ev)
{
	ssize_t up, down;
	bool up_done, down_done;

	/* A reset on either side ends the connection; the other side
	 * learns of it from the close. */
	if (ev & EPOLLERR) {
		fb_conn_close(c, "reset");
		return;
	}
	if (c->http)
		conn_http_answer(c);
	up = c->http ? conn_http_pump(c) :
		       fb_splice_pump(&c->to_up, c->cfd, c->ufd);
	if (up == CONN_GONE)
		return;
	if (up < 0) {
		fb_conn_close(c, relay_error());
		return;
	}
	/* the answer to an Upgrade request is read only once it is told */
	down = c->http && conn_http_awaits_answer(c) ? 0 :
	       fb_splice_pump(&c->to_down, c->ufd, c->cfd);
	if (down < 0) {
		fb_conn_close(c, relay_error());
		return;
	}
	if (up > 0 || down > 0)
		c->last_ms = fb_loop_now(c->p->loop);
	up_done = c->http ? conn_http_done(c) : fb_splice_done(&c->to_up);
	down_done = fb_splice_done(&c->to_down);
	if (up_done && down_done) {
		/* the upstream answered what went before a refused request */
		if (conn_http_refusal(c))
			conn_http_refuse_now(c);
		else /* close() passes on the EOFs not yet passed on */
			fb_conn_close(c, "closed");
		return;
	}
	if (up_done && !c->http)
		fb_splice_shut(&c->to_up, c->ufd);
	if (down_done)
		fb_splice_shut(&c->to_down, c->cfd);
	/* The guest refused bytes: from now on its EPOLLOUT matters.  The
	 * change reports the socket at once if it is writable already. */
	if (!c->to_down.out_ready && !c->cfd_out) {
		if (fb_loop_mod(c->p->loop, c->cfd, WATCH) < 0) {
			fb_conn_close(c, "out-of-resources");
			return;
		}
		c->cfd_out = true;
	}
}

/* ---- policy changes ---------------------------------------------------- */

/*
 * What a recheck decides from: the name and the addresses.  Most of a
 * sandbox's connections go to a few hosts, and connections opened
 * together sit together in the list, so the inputs of the one before
 * are kept with its outcome, and a connection with the same ones takes
 * it: a 2000-connection recheck decides a handful of times, not 2000.
 */
struct recheck_memo {
	bool valid, has_name, by_name, refused;
	char name[FB_NAME_MAX];
	struct fb_addr dst, upstream;
	const char *rule, *reason;    /* the new policy's, when not refused */
};

static bool memo_holds(const struct recheck_memo *m, const struct conn *c)
{
	return m->valid && m->has_name == c->has_name &&
	       m->by_name == c->by_name &&
	       (!c->has_name || !strcmp(m->name, c->name)) &&
	       fb_addr_equal(&m->dst, &c->dst_addr) &&
	       fb_addr_equal(&m->upstream, &c->upstream_addr);
}

/*
 * Whether `policy`, which allows `c` by `d` (its decision for the name and
 * the guest's destination), still sends it where it goes: a policy change
 * may allow a connection by another route than the one it was dialled on.
 * A new connection is dialled to the name's own answer unless an allowed
 * CIDR covers the guest's destination (or it has no name): then to that
 * destination.  So one dialled to the destination stays only while that
 * holds; one dialled (or resolving) by name stays under an allowed CIDR
 * only if the policy allows the name where it really goes, and *d becomes
 * that decision, the one its lines should name.
 */
static bool route_holds(const struct fb_policy *policy, const struct conn *c,
			struct fb_decision *d)
{
	if (!c->by_name)
		return !c->has_name || d->reason == FB_REASON_ALLOWED_CIDR ||
		       d->reason == FB_REASON_ALLOW_ALL; /* any route goes */
	if (d->reason != FB_REASON_ALLOWED_CIDR)
		return true;
	fb_policy_decide(policy, c->name,
			 c->upstream_addr.family ? &c->upstream_addr : NULL, d);
	return d->verdict == FB_VERDICT_ALLOW;
}

/* Whether the policy in force refuses `c` now. */
static bool recheck_refuses(struct fb_proxy *p, const struct conn *c,
			    struct recheck_memo *m)
{
	struct fb_decision d;

	if (memo_holds(m, c))
		return m->refused;
	fb_policy_decide(p->policy, c->has_name ? c->name : NULL,
			 &c->dst_addr, &d);
	m->refused = d.verdict != FB_VERDICT_ALLOW ||
		     !route_holds(p->policy, c, &d);
	m->rule = d.domain ? d.domain->pattern : NULL;
	m->reason = fb_reason_str(d.reason);
	if (!m->refused && c->upstream_addr.family)
		m->refused = fb_policy_check_addr(p->policy, &c->upstream_addr,
						  &d) == FB_VERDICT_DENY;
	m->valid = true;
	m->has_name = c->has_name;
	m->by_name = c->by_name;
	if (c->has_name)
		strcpy(m->name, c->name);
	m->dst = c->dst_addr;
	m->upstream = c->upstream_addr;
	return m->refused;
}

size_t fb_conns_recheck(struct fb_proxy *p)
{
	struct conn *c = p->conns, *next;
	struct recheck_memo memo = { .valid = false };
	size_t closed = 0;

	for (; c; c = next) {
		next = c->next;
		if (next) /* its fields are read next: fetch them meanwhile */
			__builtin_prefetch(next);
		if (!c->policy || c->state == C_DRAIN)
			continue; /* not decided yet: will be, under the new policy */
		/* the chain apart: one name's answers may differ */
		if (recheck_refuses(p, c, &memo) ||
		    !fb_chain_allowed(c->chain, p->policy)) {
			/* A reset, not a FIN: a client must not take a cut
			 * download for a complete one. */
			struct linger rst = { .l_onoff = 1, .l_linger = 0 };

			setsockopt(c->cfd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
			fb_conn_close(c, "policy-changed");
			closed++;
			continue;
		}
		/* From here on the connection is held under the new policy,
		 * and its lines say so: a decision still to be logged (the
		 * name is resolving) and the close line name the new rule. */
		fb_policy_unref(c->policy);
		c->policy = fb_policy_ref(p->policy);
		c->generation = p->generation;
		c->rule = memo.rule;
		c->allow_reason = memo.reason;
	}
	return closed;
}

void fb_conns_close_all(struct fb_proxy *p)
{
	while (p->conns)
		fb_conn_close(p->conns, "proxy-stopping");
}

void fb_conns_bytes(const struct fb_proxy *p, uint64_t *up, uint64_t *down)
{
	*up = *down = 0;
	for (const struct conn *c = p->conns; c; c = c->next) {
		*up += c->to_up.bytes + c->replayed + c->http_up;
		*down += c->to_down.bytes;
	}
}

char *fb_conns_json(const struct fb_proxy *p)
{
	char *buf = NULL;
	size_t size;
	FILE *f = open_memstream(&buf, &size);
	const char *sep = "";

	if (!f)
		return NULL;
	fputc('[', f);
	for (const struct conn *c = p->conns; c; c = c->next) {
		char src[INET6_ADDRSTRLEN] = "", dst[INET6_ADDRSTRLEN] = "";
		char name[FB_NAME_MAX * 6 + 1] = "";
		struct fb_addr a;
		unsigned sport = fb_addr_from_sockaddr(&c->src, &a);

		fb_addr_format(&a, src, sizeof(src));
		fb_addr_format(&c->dst_addr, dst, sizeof(dst));
		if (c->has_name)
			fb_json_escape(c->name, strlen(c->name), name, sizeof(name));
		fprintf(f, "%s{\"id\":%llu,\"state\":\"%s\",\"protocol\":\"%s\","
			"\"source\":\"%s:%u\",\"destination\":\"%s:%u\","
			"\"domain\":\"%s\",\"rule\":\"%s\",\"generation\":%llu,"
			"\"bytes_up\":%llu,\"bytes_down\":%llu,\"age_ms\":%llu}",
			sep, (unsigned long long)c->id, state_names[c->state],
			fb_conn_proto_str(c->proto), src, sport,
			dst, sockaddr_port(&c->dst), name, c->rule ? c->rule : "",
			(unsigned long long)c->generation,
			(unsigned long long)(c->to_up.bytes + c->replayed + c->http_up),
			(unsigned long long)c->to_down.bytes,
			(unsigned long long)(fb_loop_now(p->loop) - c->start_ms));
		sep = ",";
	}
	fb_brokers_json(p, f, sep);
	fputs("]\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
