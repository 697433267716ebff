/*
 * nft.h — one nftables table per sandbox, programmed over netlink
 * (libnftnl + libmnl; no nft binary at run time).
 *
 * Every function works in the network namespace of the calling thread:
 * enter the sandbox's namespace (setns) first.  Every change is a single
 * netlink batch: it applies whole or not at all, and the error names what
 * the kernel refused.
 */
#ifndef FB_NFT_H
#define FB_NFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

#define FB_NFT_TABLE "firebreak"

/* The sandbox-side table `inet firebreak`. */
struct fb_nft_config {
	const char *guest_ifname;      /* the link the guest's traffic arrives on */
	/*
	 * The sandbox-side addresses of the gateway.  Not matched by the
	 * table: the input chain admits the proxy ports on whatever local
	 * address a redirect picked, and drops everything else from the guest.
	 */
	const struct fb_addr *gateway;
	size_t ngateway;
	uint16_t proxy_port;           /* TCP redirect target (15001) */
	uint16_t dns_port;             /* UDP/TCP 53 redirect target (15053) */
	/*
	 * Effective sets, from fb_policy_deny_ranges / fb_policy_allow_ranges,
	 * both families mixed.  Any order; overlaps are merged.  A range with
	 * lo > hi fails the apply.
	 */
	const struct fb_range *deny;
	size_t ndeny;
	const struct fb_range *allow;
	size_t nallow;
	/*
	 * The upstream resolver: the namespace's own processes (the proxy) may
	 * reach it on port 53 whatever the deny set says.  family 0: none.
	 */
	struct fb_addr resolver;
	uint16_t resolver_port;
};

/*
 * Create or replace the table atomically (one batch: the old table, if
 * any, is deleted and the new one added in the same transaction), then
 * read it back and compare with what was meant.  0 or -1 with err set.
 */
int fb_nft_apply(const struct fb_nft_config *cfg, char *err, size_t errsize);

/* Delete our table; only ours.  Absent already is not an error. */
int fb_nft_delete(const char *table, char *err, size_t errsize);

/* Named counters of the sandbox table. */
struct fb_nft_counters {
	uint64_t allowed_pkts, allowed_bytes;   /* forwarded by subnets.allow */
	uint64_t rejected_pkts, rejected_bytes; /* deny set */
	uint64_t dropped_pkts, dropped_bytes;   /* everything else */
	/* the namespace's own dials (the proxy's) refused by the deny set */
	uint64_t output_rejected_pkts, output_rejected_bytes;
};
int fb_nft_read_counters(struct fb_nft_counters *c, char *err, size_t errsize);

/*
 * After a policy change removed access: cut the forwarded (not
 * redirected) flows from the guest whose original destination is no
 * longer inside `allow`.  The new table already resets such a TCP flow's
 * next guest segment; this deletes the conntrack entries of the other
 * flows (UDP, ICMP) so their next packet is judged afresh, and with `tcp`
 * those of the TCP flows too (a moment after the first call: see
 * conntrack.c).  Call it after fb_nft_apply of the new policy, with the
 * same allow ranges.  The forward chain marks the flows it admits by
 * subnets.allow (ct mark), so the proxy's own connections are never
 * touched.  Returns the number of flows cut (TCP flows counted, or
 * deleted with `tcp`; others deleted), or -1.
 */
int fb_nft_cut_flows(const struct fb_range *allow, size_t nallow, bool tcp,
		     char *err, size_t errsize);

/*
 * The launcher's side: table `inet <table>` in the uplink namespace that
 * masquerades the sandbox's uplink network as it leaves by any other
 * interface, forwards from the uplink veth, and into it only replies (no
 * connection can be opened into the sandbox from outside).  With
 * `input`, of what the uplink veth delivers to the namespace itself only
 * replies, neighbour discovery and the resolver's port are taken: the
 * sandbox reaches none of the launcher's own services, whatever address
 * they listen on.  Remove it with fb_nft_delete(table).
 */
struct fb_nft_uplink {
	const char *table;     /* unique per sandbox, e.g. "firebreak-<id>" */
	const char *ifname;    /* the outer end of the uplink veth */
	struct fb_cidr net4;   /* the uplink's IPv4 link network */
	struct fb_cidr net6;   /* family 0 when IPv6 egress is off */
	bool input;            /* guard the namespace's own addresses */
	/* With input: the proxy's upstream resolver, reachable on
	 * resolver_port where it is an address of the namespace itself.
	 * family 0: none. */
	struct fb_addr resolver;
	uint16_t resolver_port;
};
int fb_nft_apply_uplink(const struct fb_nft_uplink *u, char *err,
			size_t errsize);

#endif /* FB_NFT_H */
