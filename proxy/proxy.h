/*
 * proxy.h — firebreak-proxy, the per-sandbox transparent egress proxy:
 * what its main program and the tests need.
 *
 * One process per sandbox, one thread, one epoll loop.  The proxy owns
 * the sandbox's policy in user space and (unless told otherwise) in the
 * kernel's nft table; it is changed over the control socket or by SIGHUP.
 */
#ifndef FB_PROXY_H
#define FB_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"
#include "proxy/stats.h"

#define FB_PROXY_PORT 15001
#define FB_PROXY_DNS_PORT 15053
#define FB_PEEK_TIMEOUT_MS 10000
#define FB_IDLE_TIMEOUT_S 300
#define FB_MAX_PEEKS 1024
#define FB_CONTROL_BODY_MAX (16 * 1024 * 1024)
#define FB_MAX_LISTEN 2          /* an IPv4 and an IPv6 address */

struct fb_proxy_config {
	const char *policy_path;     /* required: the file SIGHUP re-reads */
	const char *listen[FB_MAX_LISTEN]; /* ADDR:PORT ([v6]:PORT), one port */
	size_t nlisten;
	const char *dns_listen;      /* ADDR:PORT, or NULL: no DNS server */
	const char *control_path;    /* unix socket, created 0600 */
	const char *audit_path;      /* FILE, "-" for stdout, NULL: none */
	const char *sandbox_id;
	const char *ca_cert, *ca_key; /* the sandbox CA: needed to broker */
	const char *trust_bundle;    /* the guest's bundle, rewritten in place
	                                when a policy change reissues the CA */
	const char *jwt_key;         /* signs forwardURL tokens (optional) */
	const char *resolver;        /* IP[:PORT]; NULL: /etc/resolv.conf */
	const struct fb_cidr *publics;
	size_t npublics;
	const char *upstream_ca;
	unsigned peek_timeout_ms;
	unsigned idle_timeout_s;
	unsigned max_peeks;
	unsigned max_conns;          /* 0: as many as descriptors allow */
	/* The first policy's generation, 0: 1.  A launcher that starts the
	 * proxy again passes one past the last it handed out, so that no
	 * ETag from before the restart matches after it. */
	unsigned first_generation;
	/* nft: apply the sandbox's table on start and on every change */
	bool nft;
	const char *guest_if;        /* the guest's link in the namespace */
	const struct fb_addr *gateways; /* the gateway's addresses (nft); */
	size_t ngateways;               /* none: the --listen address */
};

struct fb_proxy;

/* Set the defaults above; the caller fills in the rest. */
void fb_proxy_config_init(struct fb_proxy_config *c);

/*
 * Load the policy, open every socket, apply nft: everything that can fail
 * on bad configuration fails here, with a message in err naming it.
 */
struct fb_proxy *fb_proxy_new(const struct fb_proxy_config *c, char *err,
			      size_t errsize);
/* Serve until SIGTERM / SIGINT.  0, or -1 with err set. */
int fb_proxy_run(struct fb_proxy *p, char *err, size_t errsize);
void fb_proxy_free(struct fb_proxy *p);

const struct fb_stats *fb_proxy_stats(const struct fb_proxy *p);

#endif /* FB_PROXY_H */
