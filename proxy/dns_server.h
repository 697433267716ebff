/*
 * dns_server.h — the sandbox's resolver: UDP and TCP on --dns-listen.
 *
 * What a query gets (design.md "DNS"; the name decides, by
 * fb_policy_decide(policy, name, NULL) under the policy in force):
 *
 *   malformed (see dns.h)                 FORMERR; NOTIMP for opcodes
 *   more than the rate allows             REFUSED
 *   a name the policy does not allow      NXDOMAIN; nothing goes upstream,
 *     (or no host name at all)              so DNS cannot carry a tunnel
 *   HTTPS or SVCB for an allowed name     NOERROR, no records: no ECH keys
 *                                           reach the guest; not forwarded
 *   A or AAAA for an allowed name         resolved upstream; the answer is
 *                                           built here from the addresses,
 *                                           owned by the query name, TTL 1-300
 *   any other type for an allowed name    REFUSED: nothing but addresses is
 *                                           fetched, and TXT or NULL records
 *                                           are what a tunnel needs; REFUSED
 *                                           (not an empty answer) tells the
 *                                           user the proxy said no
 *
 * An answer is checked again when it arrives, under the policy in force
 * then: the query name and every CNAME target it went through must be
 * allowed, else NXDOMAIN (a CNAME to a name the policy refuses must not
 * hand out that name's addresses).  Addresses in the policy's deny set
 * (fb_policy_check_addr) are dropped, so an allowed name cannot point the
 * guest at 10.0.0.1 or the metadata service (DNS rebinding); when none is
 * left the reply is NOERROR with no records ("no usable address of this
 * type"), which, unlike NXDOMAIN, does not tell the client that the name's
 * other type is missing too.  CNAMEs are not shown to the guest.
 *
 * Every query is reported to on_query, but a guest over the rate cap
 * must not turn its flood into a flood of audit lines: the first
 * rate-limited query starts an interval of a second and is reported as
 * any other; the interval's later ones are reported `suppressed`; at its
 * end (or at fb_dns_server_free) on_suppressed gets their number, if any.
 * A flood costs the log two lines a second.
 */
#ifndef FB_DNS_SERVER_H
#define FB_DNS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "policy/policy.h"
#include "proxy/dns.h"
#include "proxy/loop.h"
#include "proxy/resolver.h"

/* An event's rcode when no reply went out. */
#define FB_DNS_NO_REPLY (-1)

/* One query's outcome, for the audit log; valid during the callback. */
struct fb_dns_event {
	/* Normalised; as received when not a host name, a label's bytes
	 * other than letters, digits, '-' and '_' written as in RFC 1035
	 * §5.1 ("\." for a dot, "\\" for a backslash, "\DDD" for a byte
	 * outside printable ASCII); "" if none. */
	const char *name;
	uint16_t qtype;
	bool tcp;
	const struct sockaddr_storage *source; /* who asked (UDP: as it claims) */
	/* Rate-limited and counted in the next fb_dns_suppressed_fn call:
	 * for the counters, not for the log. */
	bool suppressed;
	/* The query was let through: false for a refused name, a refused
	 * type, an answer the CNAME check or the deny set emptied, a
	 * malformed query, the rate cap. */
	bool allowed;
	/*
	 * Static.  The policy's reason for the name (fb_reason_str:
	 * "domain", "catch-all", "allow-all", "not-allowed", "deny-all"), or
	 * what overrode it: "malformed", "invalid-name", "rate-limited",
	 * "svcb-withheld", "qtype-refused", "cname-not-allowed",
	 * "upstream-nxdomain", "upstream-failed", "denied-address-dropped",
	 * "only-denied-addresses", "connection-closed" (asked upstream,
	 * unanswered: its TCP connection closed first, by the client or by
	 * the proxy, or the proxy stopped).
	 */
	const char *reason;
	const char *detail;     /* static, or NULL: what was malformed, why upstream failed */
	int rcode;              /* the reply's, or FB_DNS_NO_REPLY */
	const struct fb_addr *addrs; /* the addresses answered */
	size_t naddrs;
	uint64_t duration_ms;
};

typedef void fb_dns_event_fn(const struct fb_dns_event *ev, void *arg);
/* The end of a rate-limited interval: how many of its queries were
 * reported suppressed. */
typedef void fb_dns_suppressed_fn(uint64_t suppressed, void *arg);

struct fb_dns_config {
	const char *listen;           /* "ADDR:PORT" or "[v6]:PORT"; port 0: any */
	struct fb_policy *const *policy; /* the policy in force, read at each use */
	struct fb_resolver *resolver;
	unsigned rate_qps;            /* 0: 200 queries a second ... */
	unsigned rate_burst;          /* 0: ... with bursts of 400 */
	unsigned tcp_idle_ms;         /* 0: 10 s */
	fb_dns_event_fn *on_query;    /* may be NULL */
	fb_dns_suppressed_fn *on_suppressed; /* may be NULL */
	void *arg;                    /* for both */
};

struct fb_dns_stats {
	uint64_t queries;
	uint64_t allowed, denied;     /* by the policy */
	uint64_t rate_limited;
	uint64_t malformed;
	uint64_t upstream_failed;
};

struct fb_dns_server;

/* Bind UDP and TCP on cfg->listen (one port for both).  NULL with err. */
struct fb_dns_server *fb_dns_server_new(struct fb_loop *loop,
					const struct fb_dns_config *cfg,
					char *err, size_t errsize);
/* Closes every socket; queries in flight go unanswered. */
void fb_dns_server_free(struct fb_dns_server *s);
uint16_t fb_dns_server_port(const struct fb_dns_server *s);
void fb_dns_server_stats(const struct fb_dns_server *s, struct fb_dns_stats *st);

/* ---- the decisions, without I/O (the server's and the fuzzer's) ------ */

enum fb_dns_action {
	FB_DNS_DROP,   /* no reply: not a query */
	FB_DNS_REPLY,  /* reply at once with plan.rcode and no records */
	FB_DNS_LOOKUP, /* resolve plan.name for plan.family, then fb_dns_answer */
};

struct fb_dns_plan {
	enum fb_dns_action action;
	int rcode;
	int family;             /* AF_INET or AF_INET6 */
	bool allowed;
	const char *reason;
	const char *detail;
	char name[FB_NAME_MAX]; /* normalised */
};

/* Parse `pkt` into *q and decide what it gets under `policy`. */
void fb_dns_plan(const struct fb_policy *policy, const uint8_t *pkt,
		 size_t len, struct fb_dns_msg *q, struct fb_dns_plan *plan);

/*
 * The records answering a query planned as `plan`, from the lookup result
 * `res`, under `policy` (the one in force when the result came): fills
 * rr[FB_DNS_MAX_RR] and returns how many, setting plan->rcode, ->allowed,
 * ->reason and ->detail.
 */
size_t fb_dns_answer(const struct fb_policy *policy, struct fb_dns_plan *plan,
		     const struct fb_resolved *res, struct fb_dns_rr *rr);

#endif /* FB_DNS_SERVER_H */
