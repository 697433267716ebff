/*
 * test_dns_server.c — the sandbox's resolver end to end on loopback.
 *
 * A fake upstream (UDP and TCP on 127.0.0.1, an ephemeral port) answers
 * from a table and logs every question it receives; the resolver asks it
 * through c-ares; clients are plain sockets.  One fb_loop drives it all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "policy/policy.h"
#include "proxy/dns.h"
#include "proxy/dns_server.h"
#include "proxy/loop.h"
#include "proxy/resolver.h"
#include "tests/lib/nofds.h"

/* ---- the fake upstream ------------------------------------------------- */

struct record {
	const char *name;
	uint16_t type;
	const char *data; /* an address, or a CNAME target */
	uint32_t ttl;
};

static const struct record zone[] = {
	{ "ok.example", FB_DNS_A, "1.2.3.4", 60 },
	{ "ok.example", FB_DNS_A, "5.6.7.8", 60 },
	{ "ok.example", FB_DNS_AAAA, "2a00:1450:4001::1", 60 },
	{ "a.b.wild.example", FB_DNS_A, "9.9.9.1", 60 },
	{ "refused.example", FB_DNS_A, "1.1.1.1", 60 },
	{ "alias-ok.example", FB_DNS_CNAME, "target-ok.example", 60 },
	{ "target-ok.example", FB_DNS_A, "9.9.9.9", 60 },
	{ "alias-bad.example", FB_DNS_CNAME, "hidden.example", 60 },
	{ "hidden.example", FB_DNS_A, "4.4.4.4", 60 },
	{ "rebind.example", FB_DNS_A, "10.0.0.1", 60 },
	{ "mixed.example", FB_DNS_A, "127.0.0.1", 60 },
	{ "mixed.example", FB_DNS_A, "1.2.3.4", 60 },
	{ "mixed.example", FB_DNS_A, "169.254.169.254", 60 },
	{ "long-ttl.example", FB_DNS_A, "8.8.4.4", 86400 },
	{ "split.example", FB_DNS_A, "7.7.7.7", 60 },
	{ "hidden.example", FB_DNS_AAAA, "2a00:1450:4001::66", 60 },
	/* 20 AAAA records: a reply of about 600 octets */
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::1", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::2", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::3", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::4", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::5", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::6", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::7", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::8", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::9", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::a", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::b", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::c", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::d", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::e", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::f", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::10", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::11", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::12", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::13", 60 },
	{ "many.example", FB_DNS_AAAA, "2a00:1450:4001::14", 60 },
};

/* Given to AAAA questions only: an alias its A answer does not have. */
static const struct record aaaa_only[] = {
	{ "split.example", FB_DNS_CNAME, "hidden.example", 60 },
};

#define POLICY "allow:\n" \
	"  - ok.example\n" \
	"  - \"*.wild.example\"\n" \
	"  - alias-ok.example\n" \
	"  - target-ok.example\n" \
	"  - alias-bad.example\n" \
	"  - rebind.example\n" \
	"  - mixed.example\n" \
	"  - long-ttl.example\n" \
	"  - many.example\n" \
	"  - split.example\n"

struct upstream {
	int udp, tcp;
	int conns[8];              /* accepted TCP connections, -1: none */
	uint16_t port;
	char log[64][FB_NAME_MAX]; /* every question name, in order */
	size_t nlog;
};

/* Build the zone's answer to q: a CNAME chain, then the addresses. */
static ssize_t zone_answer(const struct fb_dns_msg *q, uint8_t *buf, size_t cap)
{
	struct fb_dns_rr rr[FB_DNS_MAX_RR];
	char name[FB_NAME_MAX];
	size_t n = 0;
	bool found = false;
	const char *why;

	snprintf(name, sizeof(name), "%s", q->qname);
	for (int hop = 0; hop < 8; hop++) {
		const char *next = NULL;

		size_t nzone = sizeof(zone) / sizeof(zone[0]);
		size_t nonly = q->qtype == FB_DNS_AAAA ? sizeof(aaaa_only) / sizeof(aaaa_only[0]) : 0;

		for (size_t i = 0; i < nonly + nzone; i++) {
			const struct record *z = i < nonly ? &aaaa_only[i] : &zone[i - nonly];

			if (strcasecmp(z->name, name) != 0)
				continue;
			found = true;
			if (z->type != FB_DNS_CNAME && z->type != q->qtype)
				continue;
			memset(&rr[n], 0, sizeof(rr[n]));
			snprintf(rr[n].name, sizeof(rr[n].name), "%s", name);
			rr[n].type = z->type;
			rr[n].ttl = z->ttl;
			if (z->type == FB_DNS_CNAME) {
				snprintf(rr[n].target, sizeof(rr[n].target), "%s", z->data);
				next = z->data;
			} else {
				assert_int_equal(fb_addr_parse(z->data, &rr[n].addr), 0);
			}
			n++;
		}
		if (!next)
			break;
		snprintf(name, sizeof(name), "%s", next);
	}
	return fb_dns_build_reply(q, found ? FB_DNS_NOERROR : FB_DNS_NXDOMAIN,
				  rr, n, buf, cap, &why);
}

static void upstream_log(struct upstream *u, const struct fb_dns_msg *q)
{
	if (u->nlog < 64)
		snprintf(u->log[u->nlog++], FB_NAME_MAX, "%s", q->qname);
}

static void on_upstream_udp(struct fb_loop *l, int fd, uint32_t ev, void *arg)
{
	struct upstream *u = arg;
	uint8_t buf[1500], out[2048];
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	struct fb_dns_msg q;
	const char *why;
	ssize_t n, m;

	(void)l;
	(void)ev;
	n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &plen);
	if (n < 0 || fb_dns_parse_query(buf, (size_t)n, &q, &why) != 0)
		return;
	upstream_log(u, &q);
	m = zone_answer(&q, out, fb_dns_udp_limit(&q));
	if (m > 0)
		sendto(fd, out, (size_t)m, 0, (struct sockaddr *)&peer, plen);
}

/* One length-prefixed query per read is all c-ares sends on loopback. */
static void on_upstream_conn(struct fb_loop *l, int fd, uint32_t ev, void *arg)
{
	struct upstream *u = arg;
	uint8_t buf[1500], out[2 + 2048];
	struct fb_dns_msg q;
	const char *why;
	ssize_t n, m;

	(void)ev;
	n = recv(fd, buf, sizeof(buf), 0);
	if (n <= 0) {
		for (size_t i = 0; i < 8; i++)
			if (u->conns[i] == fd)
				u->conns[i] = -1;
		fb_loop_del(l, fd);
		close(fd);
		return;
	}
	if (n < 2 || fb_dns_parse_query(buf + 2, (size_t)n - 2, &q, &why) != 0)
		return;
	upstream_log(u, &q);
	m = zone_answer(&q, out + 2, sizeof(out) - 2);
	out[0] = (uint8_t)(m >> 8);
	out[1] = (uint8_t)m;
	if (m > 0)
		assert_int_equal(send(fd, out, (size_t)m + 2, 0), m + 2);
}

static void on_upstream_accept(struct fb_loop *l, int fd, uint32_t ev, void *arg)
{
	struct upstream *u = arg;
	int c = accept(fd, NULL, NULL);

	(void)ev;
	for (size_t i = 0; i < 8 && c >= 0; i++) {
		if (u->conns[i] < 0) {
			u->conns[i] = c;
			assert_int_equal(fb_loop_add(l, c, EPOLLIN, on_upstream_conn, u), 0);
			return;
		}
	}
	close(c);
}

static void upstream_start(struct fb_loop *l, struct upstream *u)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);

	memset(u, 0, sizeof(*u));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	u->udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	assert_int_equal(bind(u->udp, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(u->udp, (struct sockaddr *)&sin, &len), 0);
	u->port = ntohs(sin.sin_port);
	assert_int_equal(fb_loop_add(l, u->udp, EPOLLIN, on_upstream_udp, u), 0);
	u->tcp = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_int_equal(bind(u->tcp, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(u->tcp, 8), 0);
	assert_int_equal(fb_loop_add(l, u->tcp, EPOLLIN, on_upstream_accept, u), 0);
	for (size_t i = 0; i < 8; i++)
		u->conns[i] = -1;
}

static void upstream_stop(struct fb_loop *l, struct upstream *u)
{
	for (size_t i = 0; i < 8; i++) {
		if (u->conns[i] >= 0) {
			fb_loop_del(l, u->conns[i]);
			close(u->conns[i]);
		}
	}
	fb_loop_del(l, u->udp);
	fb_loop_del(l, u->tcp);
	close(u->udp);
	close(u->tcp);
}

static size_t upstream_asked(const struct upstream *u, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < u->nlog; i++)
		n += strcasecmp(u->log[i], name) == 0;
	return n;
}

/* ---- the fixture ------------------------------------------------------- */

struct fx {
	struct fb_loop *loop;
	struct upstream up;
	struct fb_policy *policy; /* the server reads it through &policy */
	struct fb_resolver *res;
	struct fb_dns_server *srv;
	int client;               /* a UDP socket */
	/* the last reply a client received */
	uint8_t reply[4096];
	ssize_t reply_len;
	bool timed_out;
	/* the audit callbacks' record */
	size_t nevents;
	struct fb_dns_event last;
	char last_name[4 * FB_DNS_NAME_WIRE_MAX];
	struct sockaddr_storage last_source;
	size_t rate_logged;       /* rate-limited, not suppressed */
	size_t suppressed;        /* reported suppressed */
	size_t intervals;         /* on_suppressed calls */
	uint64_t counted;         /* the sum of their counts */
};

static struct fb_policy *load(const char *text)
{
	struct fb_diags d = { 0 };
	struct fb_policy *p = fb_policy_load(text, strlen(text), NULL, &d);

	if (!p)
		fb_diags_print(&d, stderr);
	fb_diags_free(&d);
	assert_non_null(p);
	return p;
}

static void on_event(const struct fb_dns_event *ev, void *arg)
{
	struct fx *f = arg;

	f->nevents++;
	f->last = *ev;
	snprintf(f->last_name, sizeof(f->last_name), "%s", ev->name);
	f->last.name = f->last_name;
	f->last_source = *ev->source;
	f->last.source = &f->last_source;
	f->last.addrs = NULL; /* not kept past the callback */
	if (ev->suppressed)
		f->suppressed++;
	else if (strcmp(ev->reason, "rate-limited") == 0)
		f->rate_logged++;
}

static void on_suppressed(uint64_t n, void *arg)
{
	struct fx *f = arg;

	f->intervals++;
	f->counted += n;
}

static void start(struct fx *f, unsigned qps, unsigned burst, unsigned idle_ms)
{
	char server[64], err[256];
	struct fb_addr up;
	uint16_t port;
	struct fb_dns_config cfg = {
		.listen = "127.0.0.1:0",
		.policy = &f->policy,
		.rate_qps = qps,
		.rate_burst = burst,
		.tcp_idle_ms = idle_ms,
		.on_query = on_event,
		.on_suppressed = on_suppressed,
		.arg = f,
	};

	memset(f, 0, sizeof(*f));
	f->loop = fb_loop_new();
	assert_non_null(f->loop);
	upstream_start(f->loop, &f->up);
	snprintf(server, sizeof(server), "127.0.0.1:%u", f->up.port);
	f->res = fb_resolver_new(f->loop, server, err, sizeof(err));
	if (!f->res)
		fail_msg("%s", err);
	fb_resolver_upstream(f->res, &up, &port);
	fb_addr_format(&up, server, sizeof(server));
	assert_string_equal(server, "127.0.0.1");
	assert_int_equal(port, f->up.port);
	f->policy = load(POLICY);
	cfg.resolver = f->res;
	f->srv = fb_dns_server_new(f->loop, &cfg, err, sizeof(err));
	if (!f->srv)
		fail_msg("%s", err);
	f->client = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	assert_true(f->client >= 0);
}

static void stop(struct fx *f)
{
	fb_dns_server_free(f->srv);
	fb_resolver_free(f->res);
	upstream_stop(f->loop, &f->up);
	close(f->client);
	fb_loop_free(f->loop);
	fb_policy_unref(f->policy);
}

static void on_deadline(struct fb_loop *l, void *arg)
{
	struct fx *f = arg;

	f->timed_out = true;
	fb_loop_stop(l);
}

static void on_reply(struct fb_loop *l, int fd, uint32_t ev, void *arg)
{
	struct fx *f = arg;

	(void)ev;
	f->reply_len = recv(fd, f->reply, sizeof(f->reply), 0);
	fb_loop_stop(l);
}

/* Run the loop until `fd` is readable (its handler stops it) or ms pass. */
static void run_until_reply(struct fx *f, int fd, fb_io_fn *fn, uint64_t ms)
{
	struct fb_timer *t = fb_timer_add(f->loop, ms, on_deadline, f);

	f->timed_out = false;
	f->reply_len = -1;
	assert_int_equal(fb_loop_add(f->loop, fd, EPOLLIN, fn, f), 0);
	assert_int_equal(fb_loop_run(f->loop), 0);
	fb_loop_del(f->loop, fd);
	if (!f->timed_out)
		fb_timer_cancel(f->loop, t);
}

static struct sockaddr_in server_addr(const struct fx *f)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(fb_dns_server_port(f->srv));
	return sin;
}

/* Send raw bytes over UDP; the reply (if any, within ms) lands in f->reply. */
static void ask_raw_wait(struct fx *f, const void *pkt, size_t len, uint64_t ms)
{
	struct sockaddr_in sin = server_addr(f);

	assert_int_equal(sendto(f->client, pkt, len, 0, (struct sockaddr *)&sin,
				sizeof(sin)), (ssize_t)len);
	run_until_reply(f, f->client, on_reply, ms);
}

static void ask_raw(struct fx *f, const void *pkt, size_t len)
{
	ask_raw_wait(f, pkt, len, 2000);
}

/* Ask for name/type over UDP; returns the rcode, fills the answers. */
static int ask(struct fx *f, const char *name, uint16_t type,
	       struct fb_dns_rr *an, size_t *nan)
{
	unsigned char *q;
	int qlen;
	struct fb_dns_msg m;
	const char *why;

	assert_int_equal(ares_create_query(name, FB_DNS_CLASS_IN, type, 0x4242, 1,
					   &q, &qlen, 0), ARES_SUCCESS);
	ask_raw(f, q, (size_t)qlen);
	ares_free_string(q);
	if (f->timed_out)
		fail_msg("no reply to %s", name);
	assert_int_equal(fb_dns_parse_response(f->reply, (size_t)f->reply_len, &m,
					       an, nan, &why), 0);
	assert_int_equal(m.id, 0x4242);
	assert_string_equal(m.qname, name);
	return FB_DNS_RCODE(m.flags);
}

static void assert_addr(const struct fb_dns_rr *rr, const char *ip)
{
	char buf[64];

	fb_addr_format(&rr->addr, buf, sizeof(buf));
	assert_string_equal(buf, ip);
}

/* ---- the tests --------------------------------------------------------- */

static void test_allowed_answered(void **state)
{
	struct fx f;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t n;

	(void)state;
	start(&f, 0, 0, 0);
	assert_int_equal(ask(&f, "ok.example", FB_DNS_A, an, &n), FB_DNS_NOERROR);
	assert_int_equal(n, 2);
	assert_addr(&an[0], "1.2.3.4");
	assert_addr(&an[1], "5.6.7.8");
	assert_string_equal(an[0].name, "ok.example");
	assert_true(an[0].ttl >= 1 && an[0].ttl <= 60);
	assert_int_equal(f.last.rcode, FB_DNS_NOERROR);
	assert_true(f.last.allowed);
	assert_string_equal(f.last.name, "ok.example");
	assert_int_equal(f.last.naddrs, 2);
	assert_string_equal(f.last.reason, "domain");

	assert_int_equal(ask(&f, "OK.Example", FB_DNS_AAAA, an, &n), FB_DNS_NOERROR);
	assert_int_equal(n, 1);
	assert_addr(&an[0], "2a00:1450:4001::1");

	/* A wildcard key; the answer's TTL is capped at 300 s. */
	assert_int_equal(ask(&f, "a.b.wild.example", FB_DNS_A, an, &n), FB_DNS_NOERROR);
	assert_int_equal(n, 1);
	assert_addr(&an[0], "9.9.9.1");
	assert_int_equal(ask(&f, "long-ttl.example", FB_DNS_A, an, &n), FB_DNS_NOERROR);
	assert_int_equal(an[0].ttl, 300);
	stop(&f);
}

static void test_refused_never_leaves(void **state)
{
	struct fx f;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t n;

	(void)state;
	start(&f, 0, 0, 0);
	assert_int_equal(ask(&f, "refused.example", FB_DNS_A, an, &n), FB_DNS_NXDOMAIN);
	assert_int_equal(n, 0);
	assert_int_equal(ask(&f, "wild.example", FB_DNS_A, an, &n), FB_DNS_NXDOMAIN); /* not the apex */
	assert_int_equal(ask(&f, "refused.example", FB_DNS_TXT, an, &n), FB_DNS_NXDOMAIN);
	assert_int_equal(f.up.nlog, 0);
	assert_false(f.last.allowed);
	assert_string_equal(f.last.reason, "not-allowed");
	assert_int_equal(f.last.rcode, FB_DNS_NXDOMAIN);
	stop(&f);
}

static void test_https_svcb_and_other_types(void **state)
{
	struct fx f;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t n;

	(void)state;
	start(&f, 0, 0, 0);
	assert_int_equal(ask(&f, "ok.example", FB_DNS_HTTPS, an, &n), FB_DNS_NOERROR);
	assert_int_equal(n, 0);
	assert_int_equal(ask(&f, "ok.example", FB_DNS_SVCB, an, &n), FB_DNS_NOERROR);
	assert_int_equal(n, 0);
	assert_string_equal(f.last.reason, "svcb-withheld");
	assert_int_equal(ask(&f, "ok.example", FB_DNS_TXT, an, &n), FB_DNS_REFUSED);
	assert_int_equal(ask(&f, "ok.example", 10 /* NULL */, an, &n), FB_DNS_REFUSED);
	assert_int_equal(ask(&f, "ok.example", 255 /* ANY */, an, &n), FB_DNS_REFUSED);
	assert_string_equal(f.last.reason, "qtype-refused");
	assert_false(f.last.allowed);
	assert_int_equal(f.up.nlog, 0);
	stop(&f);
}

static void test_cname_chain(void **state)
{
	struct fx f;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t n;

	(void)state;
	start(&f, 0, 0, 0);
	/* Through an allowed name: the target's address, owned by the
	 * query name (the chain is not shown). */
	assert_int_equal(ask(&f, "alias-ok.example", FB_DNS_A, an, &n), FB_DNS_NOERROR);
	assert_int_equal(n, 1);
	assert_int_equal(an[0].type, FB_DNS_A);
	assert_string_equal(an[0].name, "alias-ok.example");
	assert_addr(&an[0], "9.9.9.9");
	/* Through a name the policy refuses: nothing of it. */
	assert_int_equal(ask(&f, "alias-bad.example", FB_DNS_A, an, &n), FB_DNS_NXDOMAIN);
	assert_int_equal(n, 0);
	assert_string_equal(f.last.reason, "cname-not-allowed");
	assert_false(f.last.allowed);
	/* Even when the alias's answer is already cached. */
	assert_int_equal(ask(&f, "alias-bad.example", FB_DNS_A, an, &n), FB_DNS_NXDOMAIN);
	assert_int_equal(upstream_asked(&f.up, "alias-bad.example"), 1);
	stop(&f);
}

static void test_denied_addresses_dropped(void **state)
{
	struct fx f;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t n;

	(void)state;
	start(&f, 0, 0, 0);
	assert_int_equal(ask(&f, "mixed.example", FB_DNS_A, an, &n), FB_DNS_NOERROR);
	assert_int_equal(n, 1);
	assert_addr(&an[0], "1.2.3.4");
	assert_string_equal(f.last.reason, "denied-address-dropped");
	assert_true(f.last.allowed);
	/* Only a private address: an empty answer, not the address. */
	assert_int_equal(ask(&f, "rebind.example", FB_DNS_A, an, &n), FB_DNS_NOERROR);
	assert_int_equal(n, 0);
	assert_string_equal(f.last.reason, "only-denied-addresses");
	assert_false(f.last.allowed);
	stop(&f);
}

static void test_cache(void **state)
{
	struct fx f;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t n;
	struct fb_resolver_stats rs;

	(void)state;
	start(&f, 0, 0, 0);
	assert_int_equal(ask(&f, "ok.example", FB_DNS_A, an, &n), FB_DNS_NOERROR);
	assert_int_equal(ask(&f, "ok.example", FB_DNS_A, an, &n), FB_DNS_NOERROR);
	assert_int_equal(n, 2);
	assert_int_equal(upstream_asked(&f.up, "ok.example"), 1);
	fb_resolver_stats(f.res, &rs);
	assert_int_equal(rs.hits, 1);
	assert_int_equal(rs.upstream, 1);
	stop(&f);
}

/* The cache alone, on a clock the test sets. */
static void test_cache_expiry_and_eviction(void **state)
{
	struct fb_dns_cache *c = fb_dns_cache_new(2);
	struct fb_addr a[2];
	struct fb_resolved res = { .status = FB_RESOLVE_OK, .addrs = a, .naddrs = 2,
				   .ttl = 0, .chain = "x.example\0y.example", .nchain = 2 };
	struct fb_resolved out;

	(void)state;
	assert_int_equal(fb_addr_parse("1.2.3.4", &a[0]), 0);
	assert_int_equal(fb_addr_parse("5.6.7.8", &a[1]), 0);
	/* TTL 0 is kept for the 1 s minimum, and no longer. */
	assert_int_equal(fb_dns_cache_put(c, "a.example", AF_INET, &res, 5000), 0);
	assert_true(fb_dns_cache_get(c, "a.example", AF_INET, 5999, &out));
	assert_int_equal(out.ttl, 1);
	assert_int_equal(out.naddrs, 2);
	assert_int_equal(out.nchain, 2);
	assert_string_equal(out.chain + strlen(out.chain) + 1, "y.example");
	assert_false(fb_dns_cache_get(c, "a.example", AF_INET6, 5999, &out));
	assert_false(fb_dns_cache_get(c, "a.example", AF_INET, 6000, &out));
	/* A day is kept for 300 s. */
	res.ttl = 86400;
	assert_int_equal(fb_dns_cache_put(c, "a.example", AF_INET, &res, 0), 0);
	assert_true(fb_dns_cache_get(c, "a.example", AF_INET, 299999, &out));
	assert_int_equal(out.ttl, 1);
	assert_false(fb_dns_cache_get(c, "a.example", AF_INET, 300000, &out));
	/* Full: the oldest goes; a newer answer replaces an older one. */
	assert_int_equal(fb_dns_cache_put(c, "a.example", AF_INET, &res, 0), 0);
	assert_int_equal(fb_dns_cache_put(c, "b.example", AF_INET, &res, 0), 0);
	res.naddrs = 1;
	assert_int_equal(fb_dns_cache_put(c, "b.example", AF_INET, &res, 0), 0);
	assert_true(fb_dns_cache_get(c, "a.example", AF_INET, 0, &out));
	assert_true(fb_dns_cache_get(c, "b.example", AF_INET, 0, &out));
	assert_int_equal(out.naddrs, 1);
	assert_int_equal(fb_dns_cache_put(c, "c.example", AF_INET, &res, 0), 0);
	assert_false(fb_dns_cache_get(c, "a.example", AF_INET, 0, &out));
	assert_true(fb_dns_cache_get(c, "b.example", AF_INET, 0, &out));
	assert_true(fb_dns_cache_get(c, "c.example", AF_INET, 0, &out));
	fb_dns_cache_free(c);
}

struct got {
	struct fx *f;
	int calls;
	enum fb_resolve_status status;
	bool chain_ok; /* every CNAME target allowed by f->policy */
	size_t naddrs;
	struct fb_addr addrs[8];
};

static void on_resolved(const struct fb_resolved *res, void *arg)
{
	struct got *g = arg;

	g->calls++;
	g->status = res->status;
	g->chain_ok = fb_resolved_chain_allowed(res, g->f->policy);
	g->naddrs = res->naddrs;
	memcpy(g->addrs, res->addrs, (res->naddrs < 8 ? res->naddrs : 8) * sizeof(*res->addrs));
	fb_loop_stop(g->f->loop);
}

/*
 * An answer of each family cached on its own, one through a CNAME the
 * policy refuses: both families from the cache (the connection path)
 * carry that alias, as one lookup of both would.
 */
static void test_cname_chain_of_either_family(void **state)
{
	struct fx f;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	struct got g = { 0 };
	size_t n;

	(void)state;
	start(&f, 0, 0, 0);
	g.f = &f;
	assert_int_equal(ask(&f, "split.example", FB_DNS_AAAA, an, &n), FB_DNS_NXDOMAIN);
	assert_string_equal(f.last.reason, "cname-not-allowed");
	assert_int_equal(ask(&f, "split.example", FB_DNS_A, an, &n), FB_DNS_NOERROR);
	assert_int_equal(n, 1);
	assert_non_null(fb_resolve(f.res, "split.example", AF_UNSPEC, on_resolved, &g));
	assert_int_equal(fb_loop_run(f.loop), 0);
	assert_int_equal(upstream_asked(&f.up, "split.example"), 2); /* cached */
	assert_int_equal(g.status, FB_RESOLVE_OK);
	assert_int_equal(g.naddrs, 2);
	assert_false(g.chain_ok);
	stop(&f);
}

struct rated {
	struct fx *f;
	int calls, limited;
};

static void on_rated(const struct fb_resolved *res, void *arg)
{
	struct rated *r = arg;

	if (res->status == FB_RESOLVE_FAILED && res->why &&
	    strstr(res->why, "upstream query rate"))
		r->limited++;
	if (++r->calls == 1000)
		fb_loop_stop(r->f->loop);
}

/*
 * Every query to the upstream pays one cap, whoever asks: 1000 names at
 * once (a guest's connections to new names under a wildcard) send the
 * burst of 800 and a few more as it refills; the rest fail at once.
 */
static void test_resolve_upstream_rate(void **state)
{
	struct fb_resolver_stats st;
	struct rated r = { 0 };
	char name[32];
	struct fx f;

	(void)state;
	start(&f, 0, 0, 0);
	r.f = &f;
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "n%d.example", i);
		assert_non_null(fb_resolve(f.res, name, AF_INET, on_rated, &r));
	}
	fb_timer_add(f.loop, 10000, on_deadline, &f);
	assert_int_equal(fb_loop_run(f.loop), 0);
	assert_int_equal(r.calls, 1000);
	fb_resolver_stats(f.res, &st);
	assert_int_equal(st.upstream + st.rate_limited, 1000);
	assert_int_equal(st.rate_limited, (uint64_t)r.limited);
	assert_true(st.upstream >= 2 * FB_RESOLVE_UPSTREAM_QPS);
	assert_true(r.limited >= 100);
	stop(&f);
}

/* The connection path's API: both families, shared lookups, cancel. */
static void test_resolve_api(void **state)
{
	struct fx f;
	struct got g = { 0 }, dropped = { 0 };
	struct fb_resolve_req *cancelled;
	char ip[64];

	(void)state;
	start(&f, 0, 0, 0);
	g.f = &f;
	dropped.f = &f;
	assert_non_null(fb_resolve(f.res, "ok.example", AF_UNSPEC, on_resolved, &g));
	cancelled = fb_resolve(f.res, "ok.example", AF_UNSPEC, on_resolved, &dropped);
	fb_resolve_cancel(cancelled);
	assert_int_equal(fb_loop_run(f.loop), 0);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, FB_RESOLVE_OK);
	assert_int_equal(g.naddrs, 3);
	fb_addr_format(&g.addrs[2], ip, sizeof(ip));
	assert_string_equal(ip, "2a00:1450:4001::1");

	/* A cancel after the lookup went out: the other asker still gets
	 * the answer, and the cancelled one never hears of it. */
	cancelled = fb_resolve(f.res, "target-ok.example", AF_INET, on_resolved, &dropped);
	assert_non_null(fb_resolve(f.res, "target-ok.example", AF_INET, on_resolved, &g));
	fb_timer_add(f.loop, 0, on_deadline, &f); /* one turn: both start */
	assert_int_equal(fb_loop_run(f.loop), 0);
	assert_int_equal(upstream_asked(&f.up, "target-ok.example"), 0); /* not yet answered */
	fb_resolve_cancel(cancelled);
	assert_int_equal(fb_loop_run(f.loop), 0);
	assert_int_equal(g.calls, 2);
	assert_int_equal(g.naddrs, 1);
	assert_int_equal(upstream_asked(&f.up, "target-ok.example"), 1);

	/* Both families of an IPv4-only name, twice: the second from the
	 * cache, its IPv6 half empty. */
	for (int i = 0; i < 2; i++) {
		assert_non_null(fb_resolve(f.res, "long-ttl.example", AF_UNSPEC, on_resolved, &g));
		assert_int_equal(fb_loop_run(f.loop), 0);
		assert_int_equal(g.status, FB_RESOLVE_OK);
		assert_int_equal(g.naddrs, 1);
	}
	assert_int_equal(upstream_asked(&f.up, "long-ttl.example"), 2); /* A and AAAA */

	/* NXDOMAIN from the upstream. */
	assert_non_null(fb_resolve(f.res, "nowhere.example", AF_INET, on_resolved, &g));
	assert_int_equal(fb_loop_run(f.loop), 0);
	assert_int_equal(g.status, FB_RESOLVE_NXDOMAIN);
	assert_int_equal(dropped.calls, 0);
	stop(&f);
}

static void test_upstream_down(void **state)
{
	struct fx f;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t n;
	struct fb_dns_stats st;

	(void)state;
	start(&f, 0, 0, 0);
	/* Nobody listens there any more: the upstream fails, SERVFAIL. */
	fb_loop_del(f.loop, f.up.udp);
	fb_loop_del(f.loop, f.up.tcp);
	close(f.up.udp);
	close(f.up.tcp);
	f.up.udp = f.up.tcp = -1;
	assert_int_equal(ask(&f, "ok.example", FB_DNS_A, an, &n), FB_DNS_SERVFAIL);
	assert_string_equal(f.last.reason, "upstream-failed");
	assert_non_null(f.last.detail);
	fb_dns_server_stats(f.srv, &st);
	assert_int_equal(st.upstream_failed, 1);
	stop(&f);
}

static void test_rate_cap(void **state)
{
	struct fx f;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t n;
	int refused = 0;
	struct fb_dns_stats st;

	(void)state;
	start(&f, 1, 3, 0); /* 1 query a second, bursts of 3 */
	for (int i = 0; i < 6; i++) {
		int rc = ask(&f, "refused.example", FB_DNS_A, an, &n);

		/* The burst is answered; then mostly REFUSED (a slow
		 * machine may see a token refilled meanwhile). */
		if (i < 3)
			assert_int_equal(rc, FB_DNS_NXDOMAIN);
		if (rc == FB_DNS_REFUSED) {
			assert_string_equal(f.last.reason, "rate-limited");
			refused++;
		}
	}
	assert_true(refused >= 1 && refused <= 3);
	fb_dns_server_stats(f.srv, &st);
	assert_int_equal(st.rate_limited, (uint64_t)refused);
	assert_int_equal(st.queries, 6);
	stop(&f);
}

/* A flood over the cap: every query counted, but only the first of each
 * interval for the log, and the others' number when the interval ends
 * or the server is freed. */
static void test_rate_limited_logged_once_an_interval(void **state)
{
	struct fx f;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t n;
	struct fb_dns_stats st;

	(void)state;
	start(&f, 1, 1, 0); /* 1 query a second, no burst */
	for (int i = 0; i < 100; i++)
		ask(&f, "refused.example", FB_DNS_A, an, &n);
	fb_dns_server_stats(f.srv, &st);
	assert_int_equal(f.nevents, 100);
	assert_int_equal(st.queries, 100);
	assert_true(st.rate_limited >= 90);
	/* 100 queries take far less than the second an interval lasts; a
	 * slow machine may see them straddle two. */
	assert_true(f.rate_logged >= 1 && f.rate_logged <= 2);
	assert_int_equal(f.rate_logged + f.suppressed, st.rate_limited);
	assert_true(f.intervals <= 1);

	/* The interval (a second) ends: the count of those left out. */
	fb_timer_add(f.loop, 1100, on_deadline, &f);
	assert_int_equal(fb_loop_run(f.loop), 0);
	assert_true(f.intervals >= 1 && f.intervals <= f.rate_logged);
	assert_int_equal(f.counted, f.suppressed);

	/* A new interval, its count given at the server's end. */
	for (int i = 0; i < 5; i++)
		ask(&f, "refused.example", FB_DNS_A, an, &n);
	assert_true(f.suppressed > f.counted);
	stop(&f);
	assert_int_equal(f.counted, f.suppressed);
}

/* A name that is not a host name is reported as it came, every byte
 * told apart: a dot inside a label from one between labels. */
static void test_invalid_name_reported_as_received(void **state)
{
	struct fx f;
	static const uint8_t dotted[] =
		"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
		"\3a.b\7example\0\0\1\0\1";
	static const uint8_t binary[] =
		"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
		"\6a\0\xff\\ \"\7example\0\0\1\0\1";

	(void)state;
	start(&f, 0, 0, 0);
	ask_raw(&f, dotted, sizeof(dotted) - 1);
	assert_false(f.timed_out);
	assert_int_equal(f.reply[3] & 0xf, FB_DNS_NXDOMAIN);
	assert_string_equal(f.last.reason, "invalid-name");
	assert_string_equal(f.last.name, "a\\.b.example");
	ask_raw(&f, binary, sizeof(binary) - 1);
	assert_false(f.timed_out);
	assert_string_equal(f.last.name, "a\\000\\255\\\\\\032\".example");
	assert_int_equal(f.up.nlog, 0);
	stop(&f);
}

static void test_policy_swap(void **state)
{
	struct fx f;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t n;
	struct fb_policy *old;

	(void)state;
	start(&f, 0, 0, 0);
	assert_int_equal(ask(&f, "ok.example", FB_DNS_A, an, &n), FB_DNS_NOERROR);
	/* The next query sees the new policy, though the answer is cached. */
	old = f.policy;
	f.policy = load("allow: [other.example]");
	fb_policy_unref(old);
	assert_int_equal(ask(&f, "ok.example", FB_DNS_A, an, &n), FB_DNS_NXDOMAIN);
	old = f.policy;
	f.policy = load("deny-all");
	fb_policy_unref(old);
	assert_int_equal(ask(&f, "other.example", FB_DNS_A, an, &n), FB_DNS_NXDOMAIN);
	assert_string_equal(f.last.reason, "deny-all");
	old = f.policy;
	f.policy = load("allow-all");
	fb_policy_unref(old);
	assert_int_equal(ask(&f, "refused.example", FB_DNS_A, an, &n), FB_DNS_NOERROR);
	assert_int_equal(n, 1);
	assert_string_equal(f.last.reason, "allow-all");
	/* allow-all is the public internet: private answers still dropped. */
	assert_int_equal(ask(&f, "rebind.example", FB_DNS_A, an, &n), FB_DNS_NOERROR);
	assert_int_equal(n, 0);
	assert_int_equal(upstream_asked(&f.up, "ok.example"), 1);
	stop(&f);
}

/* A swap while the upstream is being asked: the answer is judged under
 * the policy in force when it arrives. */
static void on_swap(struct fb_loop *l, void *arg)
{
	struct fx *f = arg;
	struct fb_policy *old = f->policy;

	(void)l;
	f->policy = load("deny-all");
	fb_policy_unref(old);
}

static void test_policy_swap_in_flight(void **state)
{
	struct fx f;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t n;

	(void)state;
	start(&f, 0, 0, 0);
	fb_timer_add(f.loop, 0, on_swap, &f); /* fires after the query is planned */
	assert_int_equal(ask(&f, "ok.example", FB_DNS_A, an, &n), FB_DNS_NXDOMAIN);
	assert_int_equal(n, 0);
	stop(&f);
}

static void test_malformed(void **state)
{
	struct fx f;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t n;
	struct fb_dns_stats st;
	static const uint8_t two_questions[] =
		"\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00"
		"\2ok\7example\0\0\1\0\1" "\2ok\7example\0\0\1\0\1";
	static const uint8_t pointer[] =
		"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
		"\2ok\xc0\x0c\0\1\0\1";
	static const uint8_t trailing[] =
		"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
		"\2ok\7example\0\0\1\0\1garbage";
	static const uint8_t opcode[] =
		"\x12\x34\x11\x00\x00\x01\x00\x00\x00\x00\x00\x00"
		"\2ok\7example\0\0\1\0\1";
	static const uint8_t response[] =
		"\x12\x34\x81\x00\x00\x01\x00\x00\x00\x00\x00\x00"
		"\2ok\7example\0\0\1\0\1";
	struct { const uint8_t *pkt; size_t len; int rcode; } cases[] = {
		{ two_questions, sizeof(two_questions) - 1, FB_DNS_FORMERR },
		{ pointer, sizeof(pointer) - 1, FB_DNS_FORMERR },
		{ trailing, sizeof(trailing) - 1, FB_DNS_FORMERR },
		{ opcode, sizeof(opcode) - 1, FB_DNS_NOTIMP },
	};

	(void)state;
	start(&f, 0, 0, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ask_raw(&f, cases[i].pkt, cases[i].len);
		assert_false(f.timed_out);
		assert_true(f.reply_len >= FB_DNS_HEADER_LEN);
		assert_int_equal(f.reply[0], 0x12);
		assert_int_equal(f.reply[1], 0x34);
		assert_true(f.reply[2] & 0x80);
		assert_int_equal(f.reply[3] & 0xf, cases[i].rcode);
		assert_string_equal(f.last.reason, "malformed");
	}
	/* A response, or a scrap of a header: no reply at all. */
	ask_raw_wait(&f, response, sizeof(response) - 1, 200);
	assert_true(f.timed_out);
	ask_raw_wait(&f, "\x12\x34\x01", 3, 200);
	assert_true(f.timed_out);
	/* Random bytes, then the server still answers. */
	srand(7);
	for (int i = 0; i < 200; i++) {
		uint8_t junk[64];
		size_t len = 12 + (size_t)(rand() % 52);
		struct sockaddr_in sin = server_addr(&f);

		for (size_t j = 0; j < len; j++)
			junk[j] = (uint8_t)rand();
		junk[2] &= 0x7f; /* a query, so the server replies */
		sendto(f.client, junk, len, 0, (struct sockaddr *)&sin, sizeof(sin));
	}
	fb_timer_add(f.loop, 100, on_deadline, &f);
	fb_loop_run(f.loop);
	while (recv(f.client, f.reply, sizeof(f.reply), 0) > 0)
		;
	assert_int_equal(ask(&f, "ok.example", FB_DNS_A, an, &n), FB_DNS_NOERROR);
	fb_dns_server_stats(f.srv, &st);
	assert_true(st.malformed >= 4);
	assert_int_equal(f.up.nlog, 1);
	stop(&f);
}

/* ---- TCP ---------------------------------------------------------------- */

static int tcp_connect(struct fx *f)
{
	struct sockaddr_in sin = server_addr(f);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

struct tcp_reader {
	struct fx *f;
	uint8_t buf[4096];
	size_t len;
	size_t want;  /* stop once this many messages are whole */
	bool eof;
};

static size_t whole_messages(const struct tcp_reader *r)
{
	size_t n = 0, off = 0;

	while (off + 2 <= r->len) {
		size_t m = (size_t)r->buf[off] << 8 | r->buf[off + 1];

		if (off + 2 + m > r->len)
			break;
		off += 2 + m;
		n++;
	}
	return n;
}

static void on_tcp_reply(struct fb_loop *l, int fd, uint32_t ev, void *arg)
{
	struct tcp_reader *r = arg;
	ssize_t n;

	(void)ev;
	n = recv(fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
	if (n <= 0) {
		r->eof = true;
		fb_loop_stop(l);
		return;
	}
	r->len += (size_t)n;
	if (whole_messages(r) >= r->want)
		fb_loop_stop(l);
}

static void tcp_wait(struct fx *f, int fd, struct tcp_reader *r)
{
	struct fb_timer *t = fb_timer_add(f->loop, 2000, on_deadline, f);

	f->timed_out = false;
	assert_int_equal(fb_loop_add(f->loop, fd, EPOLLIN, on_tcp_reply, r), 0);
	assert_int_equal(fb_loop_run(f->loop), 0);
	fb_loop_del(f->loop, fd);
	if (!f->timed_out)
		fb_timer_cancel(f->loop, t);
}

/* Append one length-prefixed query to buf. */
static size_t tcp_query(uint8_t *buf, const char *name, uint16_t type, uint16_t id)
{
	unsigned char *q;
	int qlen;

	assert_int_equal(ares_create_query(name, FB_DNS_CLASS_IN, type, id, 1, &q,
					   &qlen, 0), ARES_SUCCESS);
	buf[0] = (uint8_t)(qlen >> 8);
	buf[1] = (uint8_t)qlen;
	memcpy(buf + 2, q, (size_t)qlen);
	ares_free_string(q);
	return 2 + (size_t)qlen;
}

/* Send one query on fd and wait for its reply, into *r. */
static void tcp_ask(struct fx *f, int fd, struct tcp_reader *r,
		    const char *name, uint16_t type, uint16_t id)
{
	uint8_t out[512];
	size_t n = tcp_query(out, name, type, id);

	assert_int_equal(write(fd, out, n), (ssize_t)n);
	memset(r, 0, sizeof(*r));
	r->f = f;
	r->want = 1;
	tcp_wait(f, fd, r);
	assert_int_equal(whole_messages(r), 1);
}

static void test_tcp_two_queries(void **state)
{
	struct fx f;
	struct tcp_reader r = { 0 };
	uint8_t out[1024];
	size_t n = 0, off = 0;
	int fd;
	bool seen[2] = { false, false };

	(void)state;
	start(&f, 0, 0, 0);
	fd = tcp_connect(&f);
	/* Both in one write: the second must not be lost in the buffer. */
	n += tcp_query(out + n, "ok.example", FB_DNS_A, 1);
	n += tcp_query(out + n, "refused.example", FB_DNS_A, 2);
	assert_int_equal(write(fd, out, n), (ssize_t)n);
	r.f = &f;
	r.want = 2;
	tcp_wait(&f, fd, &r);
	assert_false(f.timed_out);
	assert_int_equal(whole_messages(&r), 2);
	for (int i = 0; i < 2; i++) {
		struct fb_dns_msg m;
		struct fb_dns_rr an[FB_DNS_MAX_RR];
		size_t nan, len = (size_t)r.buf[off] << 8 | r.buf[off + 1];
		const char *why;

		assert_int_equal(fb_dns_parse_response(r.buf + off + 2, len, &m, an, &nan, &why), 0);
		assert_true(m.id == 1 || m.id == 2);
		seen[m.id - 1] = true;
		if (m.id == 1) {
			assert_int_equal(FB_DNS_RCODE(m.flags), FB_DNS_NOERROR);
			assert_int_equal(nan, 2);
		} else {
			assert_int_equal(FB_DNS_RCODE(m.flags), FB_DNS_NXDOMAIN);
		}
		off += 2 + len;
	}
	assert_true(seen[0] && seen[1]);
	assert_true(f.last.tcp);

	/* A third on the same connection, split across two writes. */
	n = tcp_query(out, "ok.example", FB_DNS_AAAA, 3);
	assert_int_equal(write(fd, out, 5), 5);
	assert_int_equal(write(fd, out + 5, n - 5), (ssize_t)(n - 5));
	r.want = 3;
	tcp_wait(&f, fd, &r);
	assert_int_equal(whole_messages(&r), 3);
	close(fd);
	stop(&f);
}

/* Each query is reported with the address and port it came from. */
static void test_source_reported(void **state)
{
	struct fx f;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	struct tcp_reader r;
	struct sockaddr_in me;
	const struct sockaddr_in *got = (const struct sockaddr_in *)&f.last_source;
	socklen_t len = sizeof(me);
	size_t n;
	int fd;

	(void)state;
	start(&f, 0, 0, 0);
	assert_int_equal(ask(&f, "refused.example", FB_DNS_A, an, &n), FB_DNS_NXDOMAIN);
	assert_int_equal(getsockname(f.client, (struct sockaddr *)&me, &len), 0);
	assert_int_equal(got->sin_family, AF_INET);
	assert_int_equal(got->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	assert_int_equal(got->sin_port, me.sin_port);

	fd = tcp_connect(&f);
	tcp_ask(&f, fd, &r, "ok.example", FB_DNS_A, 1);
	assert_true(f.last.tcp);
	len = sizeof(me);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
	assert_int_equal(got->sin_family, AF_INET);
	assert_int_equal(got->sin_port, me.sin_port);
	close(fd);
	stop(&f);
}

/* Over 512 octets: UDP says TC with no records, TCP has them all. */
static void test_udp_truncation(void **state)
{
	struct fx f;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t n, len;
	struct tcp_reader r;
	struct fb_dns_msg m;
	const char *why;
	int fd;

	(void)state;
	start(&f, 0, 0, 0);
	assert_int_equal(ask(&f, "many.example", FB_DNS_AAAA, an, &n), FB_DNS_NOERROR);
	assert_true(f.reply[2] & (FB_DNS_TC >> 8));
	assert_int_equal(n, 0);
	assert_int_equal(f.last.naddrs, 0);
	/* c-ares got TC from the upstream too and asked again over TCP. */
	assert_int_equal(upstream_asked(&f.up, "many.example"), 2);
	fd = tcp_connect(&f);
	tcp_ask(&f, fd, &r, "many.example", FB_DNS_AAAA, 5);
	len = (size_t)r.buf[0] << 8 | r.buf[1];
	assert_true(len > 512);
	assert_int_equal(fb_dns_parse_response(r.buf + 2, len, &m, an, &n, &why), 0);
	assert_false(m.flags & FB_DNS_TC);
	assert_int_equal(n, 20);
	assert_int_equal(f.last.naddrs, 20);
	assert_int_equal(upstream_asked(&f.up, "many.example"), 2); /* cached */
	close(fd);
	stop(&f);
}

static void test_tcp_idle_and_oversized(void **state)
{
	struct fx f;
	struct tcp_reader r = { 0 };
	int fd;

	(void)state;
	start(&f, 0, 0, 150);
	/* Silent: closed after the idle time. */
	fd = tcp_connect(&f);
	r.f = &f;
	r.want = 1;
	tcp_wait(&f, fd, &r);
	assert_false(f.timed_out);
	assert_true(r.eof);
	close(fd);
	/* A length no query can have: closed at once. */
	fd = tcp_connect(&f);
	memset(&r, 0, sizeof(r));
	r.f = &f;
	r.want = 1;
	assert_int_equal(write(fd, "\xff\xff", 2), 2);
	tcp_wait(&f, fd, &r);
	assert_true(r.eof);
	assert_int_equal(r.len, 0);
	close(fd);
	stop(&f);
}

/* Run the loop for ms, or until fd has a whole message or its end. */
static void tcp_wait_ms(struct fx *f, int fd, struct tcp_reader *r, uint64_t ms)
{
	struct fb_timer *t = fb_timer_add(f->loop, ms, on_deadline, f);

	f->timed_out = false;
	assert_int_equal(fb_loop_add(f->loop, fd, EPOLLIN, on_tcp_reply, r), 0);
	assert_int_equal(fb_loop_run(f->loop), 0);
	fb_loop_del(f->loop, fd);
	if (!f->timed_out)
		fb_timer_cancel(f->loop, t);
}

/* A query trickled in a byte at a time does not keep its connection
 * past the idle time: only whole queries and replies restart it. */
static void test_tcp_trickle_closed(void **state)
{
	struct fx f;
	struct tcp_reader r = { 0 };
	uint8_t out[512];
	size_t n, sent = 0;
	int fd;

	(void)state;
	start(&f, 0, 0, 150);
	fd = tcp_connect(&f);
	n = tcp_query(out, "ok.example", FB_DNS_A, 1);
	r.f = &f;
	r.want = 1;
	/* A byte every 50 ms: 30 bytes would take 1.5 s. */
	while (!r.eof && sent < 30 && sent < n) {
		assert_int_equal(write(fd, out + sent, 1), 1);
		sent++;
		tcp_wait_ms(&f, fd, &r, 50);
	}
	assert_true(r.eof);
	assert_int_equal(r.len, 0);
	assert_true(sent <= 6);
	close(fd);
	stop(&f);
}

/* A client that sends its query and shuts its side gets the answer
 * (RFC 7766 §6.2.1), then the end of the connection. */
static void test_tcp_half_close_answered(void **state)
{
	struct fx f;
	struct tcp_reader r = { 0 };
	uint8_t out[512];
	size_t n;
	int fd;

	(void)state;
	start(&f, 0, 0, 0);
	fd = tcp_connect(&f);
	n = tcp_query(out, "ok.example", FB_DNS_A, 1);
	n += tcp_query(out + n, "refused.example", FB_DNS_A, 2);
	assert_int_equal(write(fd, out, n), (ssize_t)n);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	r.f = &f;
	r.want = 3; /* more than come: wait for the end */
	tcp_wait(&f, fd, &r);
	assert_false(f.timed_out);
	assert_true(r.eof);
	assert_int_equal(whole_messages(&r), 2);
	assert_int_equal(f.nevents, 2);
	close(fd);
	stop(&f);
}

/*
 * A TCP client gone before its answer: the query went upstream, so it is
 * reported, once, as given up, and nothing is reported again when the
 * answer would have come.
 */
/*
 * Against a silent upstream: `n` bytes of queries written on one TCP
 * connection, nothing reported in the 100 ms after, then the connection
 * reset (after a plain close the replies would still be owed) and 100 ms
 * for what that reports.
 */
static void tcp_write_then_reset(struct fx *f, const uint8_t *out, size_t n)
{
	struct linger reset = { .l_onoff = 1, .l_linger = 0 };
	int fd;

	fb_loop_del(f->loop, f->up.udp); /* the upstream goes silent */
	fd = tcp_connect(f);
	assert_int_equal(write(fd, out, n), (ssize_t)n);
	fb_timer_add(f->loop, 100, on_deadline, f);
	assert_int_equal(fb_loop_run(f->loop), 0);
	assert_int_equal(f->nevents, 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset,
				    sizeof(reset)), 0);
	close(fd);
	fb_timer_add(f->loop, 100, on_deadline, f);
	assert_int_equal(fb_loop_run(f->loop), 0);
}

static void test_tcp_client_gone_reported(void **state)
{
	struct fx f;
	uint8_t out[512];

	(void)state;
	start(&f, 0, 0, 0);
	tcp_write_then_reset(&f, out, tcp_query(out, "ok.example", FB_DNS_A, 1));
	assert_int_equal(f.nevents, 1);
	assert_string_equal(f.last_name, "ok.example");
	assert_string_equal(f.last.reason, "connection-closed");
	assert_true(f.last.allowed);
	assert_true(f.last.tcp);
	assert_int_equal(f.last.rcode, FB_DNS_NO_REPLY);
	stop(&f);
	assert_int_equal(f.nevents, 1);
}

/*
 * Queries written in one go beyond the connection's in-flight cap (16)
 * wait in its buffer, never asked upstream: when the client goes, they
 * are reported too, each once, as given up.
 */
static void test_tcp_unread_queries_reported(void **state)
{
	uint8_t out[20 * 64];
	size_t n = 0;
	struct fx f;

	(void)state;
	start(&f, 0, 0, 0);
	for (uint16_t i = 0; i < 20; i++)
		n += tcp_query(out + n, i < 16 ? "ok.example" : "other.example",
			       FB_DNS_A, (uint16_t)(i + 1));
	tcp_write_then_reset(&f, out, n);
	assert_int_equal(f.nevents, 20);
	assert_string_equal(f.last.reason, "connection-closed");
	assert_int_equal(f.last.rcode, FB_DNS_NO_REPLY);
	stop(&f);
	assert_int_equal(f.nevents, 20);
}

/* ... and each takes a token of the rate cap: written and reset, past the
 * cap, they are rate-limited and their lines suppressed as any are. */
static void test_tcp_unread_queries_rate_limited(void **state)
{
	uint8_t out[100 * 64];
	struct fb_dns_stats st;
	size_t n = 0;
	struct fx f;

	(void)state;
	start(&f, 1, 16, 0); /* the 16 in flight take the burst */
	for (uint16_t i = 0; i < 100; i++)
		n += tcp_query(out + n, "ok.example", FB_DNS_A, (uint16_t)(i + 1));
	tcp_write_then_reset(&f, out, n);
	fb_dns_server_stats(f.srv, &st);
	assert_int_equal(f.nevents, 100);
	assert_true(st.rate_limited >= 80);
	assert_int_equal(f.rate_logged + f.suppressed, st.rate_limited);
	assert_true(f.rate_logged <= 2);
	stop(&f);
}

/* Out of descriptors, the TCP listener (level-triggered) waits rather
 * than waking the loop again and again, and takes the connection once
 * descriptors are free. */
static void test_tcp_accept_out_of_descriptors(void **state)
{
	struct fx f;
	struct tcp_reader r = { 0 };
	uint8_t out[512];
	long turns;
	size_t n;
	int fd;

	(void)state;
	start(&f, 0, 0, 0);
	fd = tcp_connect(&f); /* in the backlog, not accepted yet */
	n = tcp_query(out, "ok.example", FB_DNS_A, 1);
	assert_int_equal(write(fd, out, n), (ssize_t)n);
	/* A pause of 100 ms, a try, a pause: about ten turns in 500 ms; a
	 * listener left watched turns the loop thousands of times. */
	turns = nofds_turns(f.loop, 500);
	assert_true(turns >= 0 && turns < 50);

	r.f = &f;
	r.want = 1;
	tcp_wait(&f, fd, &r);
	assert_int_equal(whole_messages(&r), 1);
	close(fd);
	stop(&f);
}

/* Freed with queries in flight (LeakSanitizer watches this one). */
static void test_free_in_flight(void **state)
{
	struct fx f;
	struct got g = { 0 };
	unsigned char *q;
	int qlen, fd;
	struct sockaddr_in sin;
	uint8_t out[512];
	size_t n;

	(void)state;
	start(&f, 0, 0, 0);
	g.f = &f;
	fb_loop_del(f.loop, f.up.udp); /* the upstream goes silent */
	assert_int_equal(ares_create_query("ok.example", FB_DNS_CLASS_IN, FB_DNS_A, 9, 1,
					   &q, &qlen, 0), ARES_SUCCESS);
	sin = server_addr(&f);
	assert_int_equal(sendto(f.client, q, (size_t)qlen, 0, (struct sockaddr *)&sin,
				sizeof(sin)), qlen);
	ares_free_string(q);
	fd = tcp_connect(&f);
	n = tcp_query(out, "ok.example", FB_DNS_AAAA, 10);
	assert_int_equal(write(fd, out, n), (ssize_t)n);
	assert_non_null(fb_resolve(f.res, "mixed.example", AF_UNSPEC, on_resolved, &g));
	assert_non_null(fb_resolve(f.res, "alias-ok.example", AF_INET, on_resolved, &g));
	fb_timer_add(f.loop, 200, on_deadline, &f);
	assert_int_equal(fb_loop_run(f.loop), 0);
	assert_int_equal(g.calls, 0);
	/* One more that has not even started. */
	assert_non_null(fb_resolve(f.res, "target-ok.example", AF_INET, on_resolved, &g));
	assert_int_equal(f.nevents, 0);
	stop(&f);
	assert_int_equal(g.calls, 0);
	/* The two queries the guest sent were asked upstream: each is
	 * reported, unanswered. */
	assert_int_equal(f.nevents, 2);
	assert_string_equal(f.last.reason, "connection-closed");
	assert_int_equal(f.last.rcode, FB_DNS_NO_REPLY);
	close(fd);
}

/*
 * In a child with its own mount namespace, `text` bind-mounted over
 * /etc/resolv.conf: 0 when the resolver picked `want` (NULL: refused it
 * with `why` in the message), 1 on a mismatch, 77 when namespaces are
 * not available to us.
 */
static int with_resolv_conf(const char *text, const char *want, const char *why)
{
	char path[] = "/tmp/fb-resolv-XXXXXX", err[256], got[64];
	int fd = mkstemp(path), status;
	pid_t pid;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct fb_loop *l;
		struct fb_resolver *r;
		struct fb_addr a;
		uint16_t port;

		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount(path, "/etc/resolv.conf", NULL, MS_BIND, NULL) < 0)
			_exit(77);
		l = fb_loop_new();
		r = fb_resolver_new(l, NULL, err, sizeof(err));
		if (!r)
			_exit(!want && strstr(err, why) ? 0 : 1);
		fb_resolver_upstream(r, &a, &port);
		fb_addr_format(&a, got, sizeof(got));
		fb_resolver_free(r);
		fb_loop_free(l);
		_exit(want && strcmp(got, want) == 0 && port == 53 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unlink(path);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* No --resolver: the first nameserver line of the host's resolv.conf. */
/* The address to dial from an answer: the guest's own when the answer
 * holds it and the deny set passes it, else the first that passes. */
static void test_resolved_pick(void **state)
{
	struct fb_policy *p = load("allow: [a.test]\n"
				   "subnets: { deny: [9.9.9.1/32] }\n");
	struct fb_addr addrs[3], other;
	struct fb_resolved res = { .addrs = addrs, .naddrs = 3 };

	(void)state;
	/* public addresses (the documentation ranges are denied by default);
	 * nothing is sent to them */
	assert_int_equal(fb_addr_parse("9.9.9.1", &addrs[0]), 0);
	assert_int_equal(fb_addr_parse("9.9.9.2", &addrs[1]), 0);
	assert_int_equal(fb_addr_parse("9.9.9.3", &addrs[2]), 0);
	assert_int_equal(fb_addr_parse("9.9.9.9", &other), 0);
	assert_ptr_equal(fb_resolved_pick(&res, p, &addrs[2]), &addrs[2]);
	assert_ptr_equal(fb_resolved_pick(&res, p, &other), &addrs[1]);
	assert_ptr_equal(fb_resolved_pick(&res, p, NULL), &addrs[1]);
	/* the guest's own, when denied, is not dialled */
	assert_ptr_equal(fb_resolved_pick(&res, p, &addrs[0]), &addrs[1]);
	res.naddrs = 1;
	assert_null(fb_resolved_pick(&res, p, NULL));
	fb_policy_unref(p);
}

static void test_default_resolver(void **state)
{
	int rc;

	(void)state;
	rc = with_resolv_conf("# generated\nsearch corp.example\n"
			      "nameserver 192.0.2.53\nnameserver 192.0.2.54\n",
			      "192.0.2.53", NULL);
	if (rc == 77)
		skip();
	assert_int_equal(rc, 0);
	assert_int_equal(with_resolv_conf("nameserver fd00::53\n", "fd00::53", NULL), 0);
	assert_int_equal(with_resolv_conf("search corp.example\n", NULL,
					  "no nameserver line"), 0);
}

static void test_bad_config(void **state)
{
	struct fb_loop *l = fb_loop_new();
	struct fb_policy *p = load("deny-all");
	char err[256];
	struct fb_dns_config cfg = { .listen = "127.0.0.1", .policy = &p };
	struct fb_dns_server *srv;

	(void)state;
	assert_null(fb_dns_server_new(l, &cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "ADDR:PORT"));
	cfg.listen = "localhost:53";
	assert_null(fb_dns_server_new(l, &cfg, err, sizeof(err)));
	assert_null(fb_resolver_new(l, "8.8.8.8:0", err, sizeof(err)));
	assert_non_null(strstr(err, "port"));
	assert_null(fb_resolver_new(l, "dns.example", err, sizeof(err)));
	assert_non_null(strstr(err, "not an IP address"));
	assert_null(fb_resolver_new(l, "[::1", err, sizeof(err)));
	/* IPv6 listen address. */
	cfg.listen = "[::1]:0";
	srv = fb_dns_server_new(l, &cfg, err, sizeof(err));
	if (!srv)
		fail_msg("%s", err);
	assert_true(fb_dns_server_port(srv) > 0);
	fb_dns_server_free(srv);
	fb_policy_unref(p);
	fb_loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed_answered),
		cmocka_unit_test(test_refused_never_leaves),
		cmocka_unit_test(test_https_svcb_and_other_types),
		cmocka_unit_test(test_cname_chain),
		cmocka_unit_test(test_cname_chain_of_either_family),
		cmocka_unit_test(test_denied_addresses_dropped),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_cache_expiry_and_eviction),
		cmocka_unit_test(test_resolve_api),
		cmocka_unit_test(test_resolve_upstream_rate),
		cmocka_unit_test(test_upstream_down),
		cmocka_unit_test(test_rate_cap),
		cmocka_unit_test(test_rate_limited_logged_once_an_interval),
		cmocka_unit_test(test_source_reported),
		cmocka_unit_test(test_invalid_name_reported_as_received),
		cmocka_unit_test(test_policy_swap),
		cmocka_unit_test(test_policy_swap_in_flight),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_tcp_two_queries),
		cmocka_unit_test(test_udp_truncation),
		cmocka_unit_test(test_tcp_idle_and_oversized),
		cmocka_unit_test(test_tcp_trickle_closed),
		cmocka_unit_test(test_tcp_half_close_answered),
		cmocka_unit_test(test_tcp_client_gone_reported),
		cmocka_unit_test(test_tcp_unread_queries_reported),
		cmocka_unit_test(test_tcp_unread_queries_rate_limited),
		cmocka_unit_test(test_tcp_accept_out_of_descriptors),
		cmocka_unit_test(test_free_in_flight),
		cmocka_unit_test(test_resolved_pick),
		cmocka_unit_test(test_default_resolver),
		cmocka_unit_test(test_bad_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
