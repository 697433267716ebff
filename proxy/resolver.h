/*
 * resolver.h — asynchronous name resolution for the proxy, and the cache
 * of answers it keeps.
 *
 * One upstream server (--resolver IP[:PORT], else the first nameserver of
 * /etc/resolv.conf), asked through c-ares driven by the proxy's fb_loop:
 * no hosts file, no search domains, no other server.  Answers are cached
 * by name and family for their TTL, clamped to 1-300 s, so a rebinding
 * window is short and a name the guest resolved can be checked against
 * the address its connection went to (design.md, decision 6).
 *
 * The cache holds what the upstream said, never a policy decision: who
 * may see an answer is decided by the caller, under the policy in force
 * when the answer is used.
 */
#ifndef FB_RESOLVER_H
#define FB_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"
#include "proxy/loop.h"

#define FB_RESOLVE_TTL_MIN 1
#define FB_RESOLVE_TTL_MAX 300
#define FB_RESOLVE_NEG_TTL 30    /* a family with no address is asked again after this */
#define FB_RESOLVE_MAX_ADDRS 32  /* addresses kept per name and family */
/* Upstream queries a second (bursts twice that): room for the DNS
 * server's own cap (200) and the connections' lookups beside it. */
#define FB_RESOLVE_UPSTREAM_QPS 400

enum fb_resolve_status {
	FB_RESOLVE_OK,       /* naddrs may be 0: the name has no such address */
	FB_RESOLVE_NXDOMAIN, /* the upstream says the name does not exist */
	FB_RESOLVE_FAILED,   /* timeout, SERVFAIL, refused, bad answer ... */
};

/* An answer; everything it points to is valid during the callback only. */
struct fb_resolved {
	enum fb_resolve_status status;
	const char *why;             /* FB_RESOLVE_FAILED: what went wrong */
	const struct fb_addr *addrs; /* IPv4 first, then IPv6 */
	size_t naddrs;
	uint32_t ttl;                /* seconds it stays valid */
	/* The CNAME targets the answer went through, in order, each
	 * NUL-terminated, back to back; the query name is not among them. */
	const char *chain;
	size_t nchain;
};

typedef void fb_resolve_fn(const struct fb_resolved *res, void *arg);

struct fb_resolver;
struct fb_resolve_req;

/*
 * `server` is "IP", "IP:PORT", "[IPv6]:PORT" or NULL for the first
 * nameserver of /etc/resolv.conf; port 53 unless given.  Returns NULL with
 * a message in err.
 */
struct fb_resolver *fb_resolver_new(struct fb_loop *loop, const char *server,
				    char *err, size_t errsize);
/*
 * Pending requests are dropped without their callbacks being called, and
 * their handles die with them: free what holds handles (the DNS server,
 * connections) first.
 */
void fb_resolver_free(struct fb_resolver *r);

/*
 * Resolve a normalised name: family AF_INET, AF_INET6 or AF_UNSPEC (both).
 * The cache is asked first; concurrent requests for one name share one
 * upstream query.  The callback is always called later from the loop,
 * never from inside fb_resolve.  Returns a handle valid until the callback
 * starts, or NULL when out of memory.
 */
struct fb_resolve_req *fb_resolve(struct fb_resolver *r, const char *name,
				  int family, fb_resolve_fn *cb, void *arg);
/* The callback will not be called.  Not from inside that callback. */
void fb_resolve_cancel(struct fb_resolve_req *req);

/*
 * The address of `res` to dial: `prefer` (the guest's own destination,
 * or NULL) when the answer holds it, so a client pinned to one of several
 * addresses keeps it, else the first; each must pass `policy`'s deny set
 * again.  NULL when none does.
 */
const struct fb_addr *fb_resolved_pick(const struct fb_resolved *res,
				       const struct fb_policy *policy,
				       const struct fb_addr *prefer);

/* Whether `policy` lets the guest reach every CNAME target `res` went
 * through: an allowed name must not lead to a refused one's addresses,
 * by a DNS answer or by a connection. */
bool fb_resolved_chain_allowed(const struct fb_resolved *res,
			       const struct fb_policy *policy);

/*
 * A chain kept by what was reached through it, to be judged again by
 * every later policy (fb_chain_allowed; NULL, no chain, passes).
 * fb_chain_keep returns NULL for an answer without CNAMEs, and sets
 * *oom when it could not keep one.  Freed with free().
 */
struct fb_chain;
struct fb_chain *fb_chain_keep(const struct fb_resolved *res, bool *oom);
bool fb_chain_allowed(const struct fb_chain *ch, const struct fb_policy *policy);

/* The upstream in use (from `server` or /etc/resolv.conf): the one
 * address and port the nft output chain must let the proxy reach. */
void fb_resolver_upstream(const struct fb_resolver *r, struct fb_addr *addr,
			  uint16_t *port);

/* Counters for GET /stats. */
struct fb_resolver_stats {
	uint64_t lookups;   /* requests */
	uint64_t hits;      /* served from the cache */
	uint64_t upstream;  /* queries that went to the upstream */
	uint64_t failures;  /* of those, failed (not NXDOMAIN) */
	uint64_t rate_limited; /* not sent: over FB_RESOLVE_UPSTREAM_QPS */
};
void fb_resolver_stats(const struct fb_resolver *r, struct fb_resolver_stats *s);

/* ---- the cache (dns_cache.c) ----------------------------------------- */

struct fb_dns_cache;

struct fb_dns_cache *fb_dns_cache_new(size_t max_entries);
void fb_dns_cache_free(struct fb_dns_cache *c);

/*
 * Store the answer for (name, family AF_INET or AF_INET6) at loop time
 * `now_ms`, replacing any older one; res->ttl is clamped to 1-300 s.  The
 * oldest entry makes room when the cache is full.  0 or -1 (no memory).
 */
int fb_dns_cache_put(struct fb_dns_cache *c, const char *name, int family,
		     const struct fb_resolved *res, uint64_t now_ms);
/*
 * The unexpired answer for (name, family) into *out (pointing into the
 * cache until the next put), its ttl the time it has left.  true if found.
 */
bool fb_dns_cache_get(struct fb_dns_cache *c, const char *name, int family,
		      uint64_t now_ms, struct fb_resolved *out);

#endif /* FB_RESOLVER_H */
