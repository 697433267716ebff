/*
 * uplink.c — the launcher's table in the uplink namespace: the sandbox's
 * uplink network is masqueraded as it leaves by any other interface;
 * forwarding from the uplink veth is accepted, and into it only replies,
 * so nothing outside can open a connection into the sandbox.  A table of
 * its own per sandbox (policy accept for everything else), so adding or
 * removing it (fb_nft_delete) changes nothing for other traffic.
 *
 * With u->input, what the uplink veth delivers to this namespace itself
 * is dropped but for replies, neighbour discovery and the resolver.  The
 * sandbox's deny set keeps the private ranges out, but not the launcher's
 * addresses in ranges a policy may allow (the host's public address, its
 * address in a VPC subnet the policy opens for a database): to a service
 * of the host, the sandbox would be a local peer, past any firewall the
 * host keeps on its outside interface.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netfilter.h>

#include "nft/internal.h"

static int check_uplink(const struct fb_nft_uplink *u, char *err,
			size_t errsize)
{
	if (!u->table || !*u->table) {
		snprintf(err, errsize, "uplink table name missing");
		return -1;
	}
	if (!u->ifname || !*u->ifname || strlen(u->ifname) > 15) {
		snprintf(err, errsize, "uplink interface name \"%s\" must be "
			 "1 to 15 bytes", u->ifname ? u->ifname : "(null)");
		return -1;
	}
	if (u->net4.family != AF_INET || u->net4.len > 32) {
		snprintf(err, errsize, "uplink IPv4 network missing or "
			 "malformed (family %u, /%u)", u->net4.family,
			 u->net4.len);
		return -1;
	}
	if (u->net6.family && (u->net6.family != AF_INET6 ||
			       u->net6.len > 128)) {
		snprintf(err, errsize, "uplink IPv6 network malformed "
			 "(family %u, /%u)", u->net6.family, u->net6.len);
		return -1;
	}
	if (u->resolver.family && ((u->resolver.family != AF_INET &&
				    u->resolver.family != AF_INET6) ||
				   !u->resolver_port)) {
		snprintf(err, errsize, "uplink resolver malformed (family %u, "
			 "port %u)", u->resolver.family, u->resolver_port);
		return -1;
	}
	return 0;
}

/* The launcher's own addresses, as the uplink veth reaches them. */
static void input(struct fbn_tbl *t, const struct fb_nft_uplink *u)
{
	static const struct {
		uint8_t proto;
		const char *name;
	} dns[] = { { IPPROTO_UDP, "udp" }, { IPPROTO_TCP, "tcp" } };
	struct fbn_rule r;

	fbn_rule_init(&r, u->table, "input", "iifname %s replies accept",
		      u->ifname);
	fbn_match_iifname(&r, u->ifname);
	fbn_match_ct_state(&r, FBN_CT_ESTABLISHED | FBN_CT_RELATED);
	fbn_do_verdict(&r, NF_ACCEPT);
	fbn_tbl_rule(t, &r);
	fbn_rule_init(&r, u->table, "input", "iifname %s neighbour "
		      "discovery accept", u->ifname);
	fbn_match_iifname(&r, u->ifname);
	fbn_match_ndisc(&r);
	fbn_do_verdict(&r, NF_ACCEPT);
	fbn_tbl_rule(t, &r);
	for (size_t i = 0; u->resolver.family && i < 2; i++) {
		fbn_rule_init(&r, u->table, "input", "iifname %s resolver %s "
			      "dport %u accept", u->ifname, dns[i].name,
			      u->resolver_port);
		fbn_match_iifname(&r, u->ifname);
		fbn_match_addr(&r, &u->resolver);
		fbn_match_l4proto(&r, dns[i].proto);
		fbn_match_dport(&r, u->resolver_port);
		fbn_do_verdict(&r, NF_ACCEPT);
		fbn_tbl_rule(t, &r);
	}
	fbn_rule_init(&r, u->table, "input", "iifname %s drop", u->ifname);
	fbn_match_iifname(&r, u->ifname);
	fbn_do_verdict(&r, NF_DROP);
	fbn_tbl_rule(t, &r);
}

int fb_nft_apply_uplink(const struct fb_nft_uplink *u, char *err,
			size_t errsize)
{
	const struct fb_cidr *nets[] = { &u->net4, &u->net6 };
	struct fbn_batch b;
	struct fbn_tbl t;
	struct fbn_rule r;
	int rc;

	if (check_uplink(u, err, errsize) < 0)
		return -1;
	fbn_batch_init(&b);
	fbn_tbl_replace(&t, &b, u->table);
	fbn_tbl_chain(&t, "postrouting", "nat", NF_INET_POST_ROUTING,
		      FBN_PRIO_SRCNAT, NF_ACCEPT);
	fbn_tbl_chain(&t, "forward", "filter", NF_INET_FORWARD,
		      FBN_PRIO_FILTER, NF_ACCEPT);
	if (u->input)
		fbn_tbl_chain(&t, "input", "filter", NF_INET_LOCAL_IN,
			      FBN_PRIO_FILTER, NF_ACCEPT);
	for (size_t i = 0; i < 2 && nets[i]->family; i++) {
		fbn_rule_init(&r, u->table, "postrouting", "saddr uplink "
			      "network oifname != %s masquerade", u->ifname);
		fbn_match_cidr(&r, nets[i], FBN_SRC);
		fbn_match_oifname(&r, u->ifname, false);
		fbn_do_masquerade(&r);
		fbn_tbl_rule(&t, &r);
	}
	fbn_rule_init(&r, u->table, "forward", "iifname %s accept", u->ifname);
	fbn_match_iifname(&r, u->ifname);
	fbn_do_verdict(&r, NF_ACCEPT);
	fbn_tbl_rule(&t, &r);
	fbn_rule_init(&r, u->table, "forward", "oifname %s replies accept",
		      u->ifname);
	fbn_match_oifname(&r, u->ifname, true);
	fbn_match_ct_state(&r, FBN_CT_ESTABLISHED | FBN_CT_RELATED);
	fbn_do_verdict(&r, NF_ACCEPT);
	fbn_tbl_rule(&t, &r);
	fbn_rule_init(&r, u->table, "forward", "oifname %s drop", u->ifname);
	fbn_match_oifname(&r, u->ifname, true);
	fbn_do_verdict(&r, NF_DROP);
	fbn_tbl_rule(&t, &r);
	if (u->input)
		input(&t, u);

	rc = fbn_batch_commit(&b, err, errsize);
	if (rc == 0)
		rc = fbn_tbl_verify(&t, err, errsize);
	fbn_batch_free(&b);
	return rc;
}
