/*
 * resolver.c — c-ares on the proxy's event loop.
 *
 * c-ares tells us which sockets it wants watched (ARES_OPT_SOCK_STATE_CB);
 * we add them to the fb_loop and hand readiness back with ares_process_fd.
 * One fb_timer, re-armed after every call into c-ares, drives its
 * retransmissions and timeouts.
 *
 * A request first waits one loop turn (a zero timer): its callback then
 * never runs inside fb_resolve, whose caller may not be ready for it.  On
 * that turn it is answered from the cache or joins the lookup in flight
 * for the same name and family, so a burst of identical questions costs
 * the upstream one query.
 */
#include "proxy/resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>

#include "proxy/rate.h"

#define MAX_SOCKETS 8 /* one server: a UDP and a TCP socket, with room */
#define MAX_CHAIN 16  /* CNAME targets followed for one answer */
#define TIMEOUT_MS 2000
#define TRIES 2

struct lookup {
	LIST_ENTRY(lookup) link;
	TAILQ_HEAD(, fb_resolve_req) waiters;
	struct fb_resolver *r;
	int family;
	char name[FB_NAME_MAX];
};

struct fb_resolve_req {
	TAILQ_ENTRY(fb_resolve_req) link; /* in r->starting or lk->waiters */
	struct fb_resolver *r;
	struct lookup *lk;   /* the lookup it waits on, once started */
	struct fb_timer *start;
	fb_resolve_fn *cb;
	void *arg;
	int family;
	char name[FB_NAME_MAX];
};

struct fb_resolver {
	struct fb_loop *loop;
	ares_channel ch; /* opened by the first lookup (see open_channel) */
	struct fb_timer *timer;
	struct fb_dns_cache *cache;
	LIST_HEAD(, lookup) lookups;
	TAILQ_HEAD(, fb_resolve_req) starting;
	int watched[MAX_SOCKETS];
	size_t nwatched;
	struct fb_addr upstream;
	uint16_t upstream_port;
	/* Queries sent upstream, whoever asks: the DNS server has its own
	 * cap, but a connection to a new name under a wildcard asks too. */
	struct fb_rate rate;
	struct fb_resolver_stats stats;
};

/* ---- driving c-ares from the loop -------------------------------------- */

static void on_timeout(struct fb_loop *l, void *arg);

static void rearm(struct fb_resolver *r)
{
	struct timeval tv, *t;
	uint64_t ms;

	if (r->timer)
		fb_timer_cancel(r->loop, r->timer);
	r->timer = NULL;
	t = ares_timeout(r->ch, NULL, &tv);
	if (!t)
		return; /* nothing in flight */
	/* Rounded up: firing early would only wake c-ares for nothing. */
	ms = (uint64_t)t->tv_sec * 1000 + (uint64_t)t->tv_usec / 1000 + 1;
	r->timer = fb_timer_add(r->loop, ms, on_timeout, r);
}

static void on_timeout(struct fb_loop *l, void *arg)
{
	struct fb_resolver *r = arg;

	(void)l;
	r->timer = NULL;
	ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm(r);
}

static void on_io(struct fb_loop *l, int fd, uint32_t events, void *arg)
{
	struct fb_resolver *r = arg;
	bool rd = events & (EPOLLIN | EPOLLHUP | EPOLLERR);

	(void)l;
	ares_process_fd(r->ch, rd ? fd : ARES_SOCKET_BAD,
			events & EPOLLOUT ? fd : ARES_SOCKET_BAD);
	rearm(r);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable,
			  int writable)
{
	struct fb_resolver *r = data;
	uint32_t events = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
	size_t i;

	for (i = 0; i < r->nwatched && r->watched[i] != fd; i++)
		;
	if (i < r->nwatched) {
		if (events) {
			fb_loop_mod(r->loop, fd, events);
			return;
		}
		fb_loop_del(r->loop, fd);
		r->watched[i] = r->watched[--r->nwatched];
		return;
	}
	/* An unwatched socket's query runs into its timeout: c-ares has no
	 * way to hear that we could not watch it. */
	if (events && r->nwatched < MAX_SOCKETS &&
	    fb_loop_add(r->loop, fd, events, on_io, r) == 0)
		r->watched[r->nwatched++] = fd;
}

/* ---- answers ----------------------------------------------------------- */

struct answer {
	struct fb_resolved res;
	struct fb_addr addrs[2 * FB_RESOLVE_MAX_ADDRS];
	size_t n4; /* addrs[0, n4) are IPv4 */
	/* one answer's aliases, or two cached ones' (cached_both) */
	char chain[2 * MAX_CHAIN * FB_NAME_MAX];
};

static void take_ttl(uint32_t *ttl, int t)
{
	uint32_t v = t < 0 ? 0 : (uint32_t)t;

	if (v < *ttl)
		*ttl = v;
}

static void take_addrs(struct answer *a, const struct ares_addrinfo *ai,
		       int family)
{
	size_t n = 0;

	for (const struct ares_addrinfo_node *p = ai->nodes; p; p = p->ai_next) {
		struct fb_addr *d = &a->addrs[a->res.naddrs];

		if (p->ai_family != family || n == FB_RESOLVE_MAX_ADDRS)
			continue;
		memset(d, 0, sizeof(*d));
		d->family = (uint8_t)family;
		if (family == AF_INET) {
			const struct sockaddr_in *in = (const void *)p->ai_addr;

			memcpy(d->b, &in->sin_addr, 4);
		} else {
			const struct sockaddr_in6 *in6 = (const void *)p->ai_addr;

			memcpy(d->b, &in6->sin6_addr, 16);
		}
		take_ttl(&a->res.ttl, p->ai_ttl);
		a->res.naddrs++;
		n++;
	}
}

/* The CNAME targets, normalised, each once.  -1 if one is not a name. */
static int take_chain(struct answer *a, const struct ares_addrinfo *ai)
{
	size_t used = 0;

	for (const struct ares_addrinfo_cname *c = ai->cnames; c; c = c->next) {
		char norm[FB_NAME_MAX];
		const char *why, *s = a->chain;
		bool seen = false;

		if (!c->name || fb_name_normalize(c->name, strlen(c->name), norm, &why) < 0)
			return -1;
		take_ttl(&a->res.ttl, c->ttl);
		for (size_t i = 0; i < a->res.nchain && !seen; i++, s += strlen(s) + 1)
			seen = strcmp(s, norm) == 0;
		if (seen)
			continue;
		if (a->res.nchain == MAX_CHAIN)
			return -1;
		memcpy(a->chain + used, norm, strlen(norm) + 1);
		used += strlen(norm) + 1;
		a->res.nchain++;
	}
	return 0;
}

static void make_answer(struct answer *a, int status, struct ares_addrinfo *ai)
{
	memset(&a->res, 0, sizeof(a->res));
	a->n4 = 0;
	a->res.addrs = a->addrs;
	a->res.chain = a->chain;
	a->res.ttl = FB_RESOLVE_NEG_TTL;
	switch (status) {
	case ARES_SUCCESS:
		a->res.ttl = FB_RESOLVE_TTL_MAX;
		take_addrs(a, ai, AF_INET);
		a->n4 = a->res.naddrs;
		take_addrs(a, ai, AF_INET6);
		if (take_chain(a, ai) < 0) {
			memset(&a->res, 0, sizeof(a->res));
			a->res.status = FB_RESOLVE_FAILED;
			a->res.why = "CNAME chain too long, or to a target "
				     "that is not a host name";
		}
		break;
	case ARES_ENODATA:
		a->res.status = FB_RESOLVE_OK;
		break;
	case ARES_ENOTFOUND:
		a->res.status = FB_RESOLVE_NXDOMAIN;
		break;
	default:
		a->res.status = FB_RESOLVE_FAILED;
		a->res.why = ares_strerror(status);
		break;
	}
}

/* Cache one family's slice of an answer. */
static void remember(struct fb_resolver *r, const char *name, int family,
		     const struct answer *a)
{
	struct fb_resolved part = a->res;

	if (family == AF_INET) {
		part.naddrs = a->n4;
	} else {
		part.addrs = a->addrs + a->n4;
		part.naddrs = a->res.naddrs - a->n4;
	}
	if (part.naddrs == 0)
		part.ttl = FB_RESOLVE_NEG_TTL;
	fb_dns_cache_put(r->cache, name, family, &part, fb_loop_now(r->loop));
}

static void free_lookup(struct lookup *lk)
{
	struct fb_resolve_req *q;

	while ((q = TAILQ_FIRST(&lk->waiters))) {
		TAILQ_REMOVE(&lk->waiters, q, link);
		free(q);
	}
	free(lk);
}

static void on_answer(void *arg, int status, int timeouts,
		      struct ares_addrinfo *ai)
{
	struct lookup *lk = arg;
	struct fb_resolver *r = lk->r;
	struct fb_resolve_req *q;
	struct answer *a;
	static const struct fb_resolved no_memory = {
		.status = FB_RESOLVE_FAILED, .why = "out of memory",
	};
	const struct fb_resolved *res = &no_memory;

	(void)timeouts;
	if (status == ARES_EDESTRUCTION) { /* fb_resolver_free */
		if (ai)
			ares_freeaddrinfo(ai);
		free_lookup(lk);
		return;
	}
	LIST_REMOVE(lk, link);
	a = malloc(sizeof(*a));
	if (a) {
		make_answer(a, status, ai);
		res = &a->res;
	}
	if (ai)
		ares_freeaddrinfo(ai);
	if (res->status == FB_RESOLVE_FAILED) {
		r->stats.failures++;
	} else {
		if (lk->family != AF_INET6)
			remember(r, lk->name, AF_INET, a);
		if (lk->family != AF_INET)
			remember(r, lk->name, AF_INET6, a);
	}
	/* One at a time: a callback may cancel another waiter. */
	while ((q = TAILQ_FIRST(&lk->waiters))) {
		TAILQ_REMOVE(&lk->waiters, q, link);
		q->cb(res, q->arg);
		free(q);
	}
	free(a);
	free(lk);
}

/* ---- requests ---------------------------------------------------------- */

/* Add `from`'s chain to a's, which has room for two answers' chains. */
static void append_chain(struct answer *a, const struct fb_resolved *from)
{
	const char *s = from->chain;
	char *end = a->chain;

	for (size_t i = 0; i < a->res.nchain; i++)
		end += strlen(end) + 1;
	for (size_t i = 0; i < from->nchain; i++) {
		size_t n = strlen(s) + 1;

		memcpy(end, s, n);
		end += n;
		s += n;
		a->res.nchain++;
	}
}

/* Both families from the cache into one answer. */
static bool cached_both(struct fb_resolver *r, const char *name,
			struct answer *a)
{
	struct fb_resolved v4, v6;
	uint64_t now = fb_loop_now(r->loop);

	if (!fb_dns_cache_get(r->cache, name, AF_INET, now, &v4) ||
	    !fb_dns_cache_get(r->cache, name, AF_INET6, now, &v6))
		return false;
	memset(&a->res, 0, sizeof(a->res));
	a->res.addrs = a->addrs;
	a->res.chain = a->chain;
	/*
	 * The aliases of both: each family's addresses were cached with the
	 * chain that led to them, and an answer may reach its AAAA records
	 * through a CNAME its A records do not go through.
	 */
	append_chain(a, &v4);
	append_chain(a, &v6);
	a->res.ttl = v4.ttl < v6.ttl ? v4.ttl : v6.ttl;
	a->res.status = FB_RESOLVE_OK;
	if (v4.status == FB_RESOLVE_NXDOMAIN || v6.status == FB_RESOLVE_NXDOMAIN)
		a->res.status = FB_RESOLVE_NXDOMAIN;
	if (v4.naddrs) /* addrs may be NULL when empty: no memcpy from NULL */
		memcpy(a->addrs, v4.addrs, v4.naddrs * sizeof(*v4.addrs));
	if (v6.naddrs)
		memcpy(a->addrs + v4.naddrs, v6.addrs, v6.naddrs * sizeof(*v6.addrs));
	a->res.naddrs = v4.naddrs + v6.naddrs;
	return true;
}

static bool from_cache(struct fb_resolver *r, struct fb_resolve_req *q)
{
	struct answer *a;
	bool hit;

	if (q->family != AF_UNSPEC) {
		struct fb_resolved res;

		if (!fb_dns_cache_get(r->cache, q->name, q->family,
				      fb_loop_now(r->loop), &res))
			return false;
		q->cb(&res, q->arg);
		return true;
	}
	a = malloc(sizeof(*a));
	hit = a && cached_both(r, q->name, a);
	if (hit)
		q->cb(&a->res, q->arg);
	free(a);
	return hit;
}

static struct lookup *find_lookup(struct fb_resolver *r, const char *name,
				  int family)
{
	struct lookup *lk;

	LIST_FOREACH(lk, &r->lookups, link)
		if (lk->family == family && strcmp(lk->name, name) == 0)
			return lk;
	return NULL;
}

static void fail_now(struct fb_resolve_req *q, const char *why)
{
	struct fb_resolved res = { .status = FB_RESOLVE_FAILED, .why = why };

	q->cb(&res, q->arg);
	free(q);
}

static int open_channel(struct fb_resolver *r);

static void on_start(struct fb_loop *l, void *arg)
{
	struct fb_resolve_req *q = arg;
	struct fb_resolver *r = q->r;
	struct lookup *lk;

	(void)l;
	q->start = NULL;
	TAILQ_REMOVE(&r->starting, q, link);
	if (from_cache(r, q)) {
		r->stats.hits++;
		free(q);
		return;
	}
	lk = find_lookup(r, q->name, q->family);
	if (lk) {
		q->lk = lk;
		TAILQ_INSERT_TAIL(&lk->waiters, q, link);
		return;
	}
	if (!fb_rate_take(&r->rate, fb_loop_now(r->loop))) {
		r->stats.rate_limited++;
		fail_now(q, "over the upstream query rate");
		return;
	}
	if (!r->ch) {
		int rc = open_channel(r);

		if (rc != ARES_SUCCESS) {
			fail_now(q, ares_strerror(rc));
			return;
		}
	}
	lk = calloc(1, sizeof(*lk));
	if (!lk) {
		fail_now(q, "out of memory");
		return;
	}
	TAILQ_INIT(&lk->waiters);
	lk->r = r;
	lk->family = q->family;
	memcpy(lk->name, q->name, sizeof(lk->name));
	LIST_INSERT_HEAD(&r->lookups, lk, link);
	q->lk = lk;
	TAILQ_INSERT_TAIL(&lk->waiters, q, link);
	r->stats.upstream++;

	/* No sorting: RFC 6724 sorting connect()s a socket to every address. */
	struct ares_addrinfo_hints hints = {
		.ai_flags = ARES_AI_NOSORT,
		.ai_family = lk->family,
	};
	/* May answer at once (then q and lk are gone). */
	ares_getaddrinfo(r->ch, lk->name, NULL, &hints, on_answer, lk);
	rearm(r);
}

struct fb_resolve_req *fb_resolve(struct fb_resolver *r, const char *name,
				  int family, fb_resolve_fn *cb, void *arg)
{
	struct fb_resolve_req *q;
	size_t len = strlen(name);

	if (len >= FB_NAME_MAX ||
	    (family != AF_INET && family != AF_INET6 && family != AF_UNSPEC))
		return NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->start = fb_timer_add(r->loop, 0, on_start, q);
	if (!q->start) {
		free(q);
		return NULL;
	}
	q->r = r;
	q->cb = cb;
	q->arg = arg;
	q->family = family;
	memcpy(q->name, name, len + 1);
	TAILQ_INSERT_TAIL(&r->starting, q, link);
	r->stats.lookups++;
	return q;
}

void fb_resolve_cancel(struct fb_resolve_req *q)
{
	if (!q)
		return;
	if (q->start) {
		fb_timer_cancel(q->r->loop, q->start);
		TAILQ_REMOVE(&q->r->starting, q, link);
	} else {
		/* The upstream query goes on: its answer is cached for the
		 * next asker. */
		TAILQ_REMOVE(&q->lk->waiters, q, link);
	}
	free(q);
}

const struct fb_addr *fb_resolved_pick(const struct fb_resolved *res,
				       const struct fb_policy *policy,
				       const struct fb_addr *prefer)
{
	const struct fb_addr *first = NULL;
	struct fb_decision d;

	for (size_t i = 0; i < res->naddrs; i++) {
		const struct fb_addr *a = &res->addrs[i];

		if (fb_policy_check_addr(policy, a, &d) == FB_VERDICT_DENY)
			continue;
		if (prefer && fb_addr_equal(a, prefer))
			return a;
		if (!first)
			first = a;
	}
	return first;
}

/* n names back to back, each NUL-terminated. */
static bool names_allowed(const char *target, size_t n,
			  const struct fb_policy *policy)
{
	struct fb_decision d;

	for (size_t i = 0; i < n; i++, target += strlen(target) + 1) {
		fb_policy_decide(policy, target, NULL, &d);
		if (d.verdict == FB_VERDICT_DENY)
			return false;
	}
	return true;
}

bool fb_resolved_chain_allowed(const struct fb_resolved *res,
			       const struct fb_policy *policy)
{
	return names_allowed(res->chain, res->nchain, policy);
}

struct fb_chain {
	size_t n;
	char names[]; /* as fb_resolved's chain */
};

struct fb_chain *fb_chain_keep(const struct fb_resolved *res, bool *oom)
{
	const char *s = res->chain;
	struct fb_chain *ch;
	size_t len = 0;

	*oom = false;
	if (!res->nchain)
		return NULL;
	for (size_t i = 0; i < res->nchain; i++)
		len += strlen(s + len) + 1;
	ch = malloc(sizeof(*ch) + len);
	if (!ch) {
		*oom = true;
		return NULL;
	}
	ch->n = res->nchain;
	memcpy(ch->names, s, len);
	return ch;
}

bool fb_chain_allowed(const struct fb_chain *ch, const struct fb_policy *policy)
{
	return !ch || names_allowed(ch->names, ch->n, policy);
}

void fb_resolver_upstream(const struct fb_resolver *r, struct fb_addr *addr,
			  uint16_t *port)
{
	*addr = r->upstream;
	*port = r->upstream_port;
}

void fb_resolver_stats(const struct fb_resolver *r, struct fb_resolver_stats *s)
{
	*s = r->stats;
}

/* ---- setup ------------------------------------------------------------- */

/* "IP", "IP:PORT", "[IPv6]:PORT" or a bare IPv6 address; port 53 when none. */
static int parse_server(const char *s, struct fb_addr *a, unsigned *port,
			char *err, size_t errsize)
{
	int p;

	if (fb_addr_port_parse(s, a, &p) < 0) {
		snprintf(err, errsize, "resolver \"%s\": not an IP address, "
			 "IP:PORT or [IPv6]:PORT (port 1-65535)", s);
		return -1;
	}
	if (p == 0) {
		snprintf(err, errsize, "resolver \"%s\": port must be 1-65535", s);
		return -1;
	}
	*port = p < 0 ? 53 : (unsigned)p;
	return 0;
}

/* The first "nameserver" line of /etc/resolv.conf. */
static int system_server(char *out, size_t size, char *err, size_t errsize)
{
	FILE *f = fopen("/etc/resolv.conf", "r");
	char line[256];

	if (!f) {
		snprintf(err, errsize, "/etc/resolv.conf: %s (give --resolver)",
			 strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char word[16], addr[64];

		if (sscanf(line, "%15s %63s", word, addr) == 2 &&
		    strcmp(word, "nameserver") == 0 && strlen(addr) < size) {
			strcpy(out, addr);
			fclose(f);
			return 0;
		}
	}
	fclose(f);
	snprintf(err, errsize, "/etc/resolv.conf: no nameserver line (give --resolver)");
	return -1;
}

/*
 * A c-ares channel that asks only the upstream.  Opened when first
 * needed: a channel holds its query tables (some 74 KiB), which a proxy
 * whose guest never looks a name up would keep for nothing.
 */
static int open_channel(struct fb_resolver *r)
{
	const struct fb_addr *a = &r->upstream;
	struct ares_options o = { 0 };
	struct ares_addr_port_node node = { 0 };
	int rc;

	/* Only the upstream: no hosts file, no search list, no HOSTALIASES. */
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	o.timeout = TIMEOUT_MS;
	o.tries = TRIES;
	o.lookups = (char *)"b";
	o.ndomains = 0;
	o.sock_state_cb = on_sock_state;
	o.sock_state_cb_data = r;
	rc = ares_init_options(&r->ch, &o,
			       ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
			       ARES_OPT_LOOKUPS | ARES_OPT_DOMAINS |
			       ARES_OPT_SOCK_STATE_CB);
	if (rc != ARES_SUCCESS)
		return rc;
	node.family = a->family;
	if (a->family == AF_INET)
		memcpy(&node.addr.addr4, a->b, 4);
	else
		memcpy(&node.addr.addr6, a->b, 16);
	node.udp_port = r->upstream_port;
	node.tcp_port = r->upstream_port;
	rc = ares_set_servers_ports(r->ch, &node);
	if (rc != ARES_SUCCESS) {
		ares_destroy(r->ch);
		r->ch = NULL;
	}
	return rc;
}

struct fb_resolver *fb_resolver_new(struct fb_loop *loop, const char *server,
				    char *err, size_t errsize)
{
	char sys[64];
	struct fb_addr a;
	unsigned port;
	struct fb_resolver *r;
	int rc;

	if (!server) {
		if (system_server(sys, sizeof(sys), err, errsize) < 0)
			return NULL;
		server = sys;
	}
	if (parse_server(server, &a, &port, err, errsize) < 0)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r || !(r->cache = fb_dns_cache_new(0))) {
		snprintf(err, errsize, "resolver %s: out of memory", server);
		free(r);
		return NULL;
	}
	r->loop = loop;
	r->upstream = a;
	r->upstream_port = (uint16_t)port;
	fb_rate_init(&r->rate, FB_RESOLVE_UPSTREAM_QPS,
		     2 * FB_RESOLVE_UPSTREAM_QPS, fb_loop_now(loop));
	LIST_INIT(&r->lookups);
	TAILQ_INIT(&r->starting);
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errsize, "resolver %s: %s", server, ares_strerror(rc));
		fb_dns_cache_free(r->cache);
		free(r);
		return NULL;
	}
	return r;
}

void fb_resolver_free(struct fb_resolver *r)
{
	struct fb_resolve_req *q;

	if (!r)
		return;
	while ((q = TAILQ_FIRST(&r->starting))) {
		fb_timer_cancel(r->loop, q->start);
		TAILQ_REMOVE(&r->starting, q, link);
		free(q);
	}
	if (r->ch)
		ares_destroy(r->ch); /* lookups end with ARES_EDESTRUCTION */
	ares_library_cleanup();
	for (size_t i = 0; i < r->nwatched; i++)
		fb_loop_del(r->loop, r->watched[i]);
	if (r->timer)
		fb_timer_cancel(r->loop, r->timer);
	fb_dns_cache_free(r->cache);
	free(r);
}
