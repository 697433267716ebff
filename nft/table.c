/*
 * table.c — the sandbox's table `inet firebreak`, replaced whole in one
 * transaction and then read back.
 *
 *   prerouting (nat)   guest DNS -> dns_port; subnets.allow untouched;
 *                      deny set untouched (forward rejects it); any
 *                      other guest TCP -> proxy_port
 *   forward (filter)   marked flows to what allow no longer holds cut
 *                      (the guest's TCP reset, the rest dropped both
 *                      ways); replies of marked flows; deny -> reject;
 *                      allow -> accept, marked for fb_nft_cut_flows;
 *                      the rest from the guest dropped (TCP with a
 *                      reset); policy drop
 *   input (filter)     replies, loopback, neighbour discovery, and from
 *                      the guest only the two proxy ports (TCP only as
 *                      the redirect's, never dialled straight); policy
 *                      drop
 *   output (filter)    the namespace's own dials (the proxy's) to the
 *                      deny set rejected, except the upstream resolver
 *
 * With no proxy listening, redirected TCP meets a closed port and is
 * reset, and DNS gets port-unreachable: nothing falls through (fail
 * closed).
 */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>

#include "nft/internal.h"

#define T FB_NFT_TABLE

static const struct family {
	int af;
	const char *deny, *allow;
} families[] = {
	{ AF_INET, "deny4", "allow4" },
	{ AF_INET6, "deny6", "allow6" },
};
#define NFAMILIES (sizeof(families) / sizeof(families[0]))

/* transaction ids of the sets, per family */
struct set_ids {
	uint32_t deny[NFAMILIES], allow[NFAMILIES];
};

static const struct {
	uint8_t proto;
	const char *name;
} dns_protos[] = { { IPPROTO_UDP, "udp" }, { IPPROTO_TCP, "tcp" } };

static int check_config(const struct fb_nft_config *cfg, char *err,
			size_t errsize)
{
	const char *g = cfg->guest_ifname;

	if (!g || !*g || strlen(g) > 15) {
		snprintf(err, errsize, "guest interface name \"%s\" must be "
			 "1 to 15 bytes", g ? g : "(null)");
		return -1;
	}
	if (!cfg->proxy_port || !cfg->dns_port) {
		snprintf(err, errsize, "proxy port %u and DNS port %u must "
			 "both be set", cfg->proxy_port, cfg->dns_port);
		return -1;
	}
	if (cfg->resolver.family != 0 && cfg->resolver.family != AF_INET &&
	    cfg->resolver.family != AF_INET6) {
		snprintf(err, errsize, "resolver address family %u is neither "
			 "IPv4 nor IPv6", cfg->resolver.family);
		return -1;
	}
	if (cfg->resolver.family && !cfg->resolver_port) {
		snprintf(err, errsize, "resolver port must be set");
		return -1;
	}
	if ((cfg->ndeny && !cfg->deny) || (cfg->nallow && !cfg->allow)) {
		snprintf(err, errsize, "range count given without ranges");
		return -1;
	}
	return 0;
}

static void prerouting(struct fbn_tbl *t, const struct fb_nft_config *cfg,
		       const struct set_ids *id)
{
	const char *g = cfg->guest_ifname;
	struct fbn_rule r;

	for (size_t i = 0; i < 2; i++) {
		fbn_rule_init(&r, T, "prerouting", "guest %s dport 53 "
			      "redirect to :%u", dns_protos[i].name,
			      cfg->dns_port);
		fbn_match_iifname(&r, g);
		fbn_match_l4proto(&r, dns_protos[i].proto);
		fbn_match_dport(&r, 53);
		fbn_do_redirect(&r, cfg->dns_port);
		fbn_tbl_rule(t, &r);
	}
	for (size_t f = 0; f < NFAMILIES; f++) {
		fbn_rule_init(&r, T, "prerouting", "guest daddr @%s accept",
			      families[f].allow);
		fbn_match_iifname(&r, g);
		fbn_match_addr_set(&r, families[f].af, FBN_DST,
				   families[f].allow, id->allow[f]);
		fbn_do_verdict(&r, NF_ACCEPT);
		fbn_tbl_rule(t, &r);

		/* not redirected: the forward chain rejects it, visibly */
		fbn_rule_init(&r, T, "prerouting", "guest daddr @%s return",
			      families[f].deny);
		fbn_match_iifname(&r, g);
		fbn_match_addr_set(&r, families[f].af, FBN_DST,
				   families[f].deny, id->deny[f]);
		fbn_do_verdict(&r, NFT_RETURN);
		fbn_tbl_rule(t, &r);
	}
	fbn_rule_init(&r, T, "prerouting", "guest tcp redirect to :%u",
		      cfg->proxy_port);
	fbn_match_iifname(&r, g);
	fbn_match_l4proto(&r, IPPROTO_TCP);
	fbn_do_redirect(&r, cfg->proxy_port);
	fbn_tbl_rule(t, &r);
}

/* `ct state established,related accept`, first in every filter chain */
static void replies(struct fbn_tbl *t, const char *chain)
{
	struct fbn_rule r;

	fbn_rule_init(&r, T, chain, "ct state established,related accept");
	fbn_match_ct_state(&r, FBN_CT_ESTABLISHED | FBN_CT_RELATED);
	fbn_do_verdict(&r, NF_ACCEPT);
	fbn_tbl_rule(t, &r);
}

/* Neighbour discovery: IPv6 on a link does not work without it. */
static void ndisc(struct fbn_tbl *t, const char *chain)
{
	struct fbn_rule r;

	fbn_rule_init(&r, T, chain, "icmpv6 neighbour discovery accept");
	fbn_match_ndisc(&r);
	fbn_do_verdict(&r, NF_ACCEPT);
	fbn_tbl_rule(t, &r);
}

/* Whatever else comes from the guest, last in its filter chains. */
static void drop_rest(struct fbn_tbl *t, const char *chain, const char *g)
{
	struct fbn_rule r;

	fbn_rule_init(&r, T, chain, "guest drop");
	fbn_match_iifname(&r, g);
	fbn_do_counter(&r, "dropped");
	fbn_do_verdict(&r, NF_DROP);
	fbn_tbl_rule(t, &r);
}

/* Reject destinations in the deny sets: TCP with a reset, the rest ICMP. */
static void reject_denied(struct fbn_tbl *t, const char *chain,
			  const char *iif, const struct set_ids *id,
			  const char *counter)
{
	struct fbn_rule r;

	for (size_t f = 0; f < NFAMILIES; f++) {
		for (int tcp = 1; tcp >= 0; tcp--) {
			fbn_rule_init(&r, T, chain, "%sdaddr @%s%s reject",
				      iif ? "guest " : "", families[f].deny,
				      tcp ? " tcp" : "");
			if (iif)
				fbn_match_iifname(&r, iif);
			fbn_match_addr_set(&r, families[f].af, FBN_DST,
					   families[f].deny, id->deny[f]);
			if (tcp)
				fbn_match_l4proto(&r, IPPROTO_TCP);
			fbn_do_counter(&r, counter);
			if (tcp)
				fbn_do_reject_tcp(&r);
			else
				fbn_do_reject_admin(&r);
			fbn_tbl_rule(t, &r);
		}
	}
}

/*
 * A flow subnets.allow let through (marked) whose destination the policy
 * no longer allows is cut here, ahead of the established accept, as soon
 * as the table is swapped.  The guest's next TCP segment gets a reset,
 * and nothing the guest sends on it leaves: its own resets neither (a
 * reset carries a payload as well as any segment, and past the first one
 * conntrack checks no window), so the reject rule takes them too, and
 * answers none.  The origin's TCP still reaches the guest for a moment,
 * so a reply already in flight is delivered and answered with that reset
 * instead of being lost and leaving the guest to find out at its
 * retransmission timeout; fb_nft_cut_flows deletes the flow's entry a
 * second later, and the origin's packets then meet no entry and are
 * dropped.  Anything else of the flow (UDP, ICMP) is dropped both ways
 * at once: nothing ends it, and the origin's packets would keep its
 * conntrack entry alive and reach the guest for as long as
 * fb_nft_cut_flows fails to delete it.  The destination compared is the
 * one the guest dialled, which the origin's packets carry as source.
 */
static void cut_marked(struct fbn_tbl *t, const char *g,
		       const struct set_ids *id)
{
	struct fbn_rule r;

	for (size_t f = 0; f < NFAMILIES; f++) {
		for (int tcp = 1; tcp >= 0; tcp--) {
			fbn_rule_init(&r, T, "forward", "%sct mark cut "
				      "original daddr != @%s %s",
				      tcp ? "guest " : "", families[f].allow,
				      tcp ? "tcp reset" : "drop");
			if (tcp)
				fbn_match_iifname(&r, g);
			fbn_match_ct_mark(&r, FB_NFT_CT_MARK);
			fbn_match_ct_daddr_not_in_set(&r, families[f].af,
						      families[f].allow,
						      id->allow[f]);
			if (tcp)
				fbn_match_l4proto(&r, IPPROTO_TCP);
			else
				fbn_match_not_l4proto(&r, IPPROTO_TCP);
			fbn_do_counter(&r, "rejected");
			if (tcp)
				fbn_do_reject_tcp(&r);
			else
				fbn_do_verdict(&r, NF_DROP);
			fbn_tbl_rule(t, &r);
		}
	}
}

/*
 * Replies, in the forward chain, only of flows it admitted (marked).  Any
 * other flow of the namespace is the proxy's own, never forwarded; but a
 * guest can write an ICMP error that quotes one of them (an origin's
 * segment to the proxy) and address it to that origin: conntrack calls
 * it related, and the launcher's masquerade would carry it and whatever
 * the guest put after the quote out to the origin, past the proxy.
 */
static void forwarded_replies(struct fbn_tbl *t)
{
	struct fbn_rule r;

	fbn_rule_init(&r, T, "forward", "ct state established,related "
		      "ct mark fb accept");
	fbn_match_ct_state(&r, FBN_CT_ESTABLISHED | FBN_CT_RELATED);
	fbn_match_ct_mark(&r, FB_NFT_CT_MARK);
	fbn_do_verdict(&r, NF_ACCEPT);
	fbn_tbl_rule(t, &r);
}

static void forward(struct fbn_tbl *t, const struct fb_nft_config *cfg,
		    const struct set_ids *id)
{
	const char *g = cfg->guest_ifname;
	struct fbn_rule r;

	cut_marked(t, g, id);
	forwarded_replies(t);
	reject_denied(t, "forward", g, id, "rejected");
	for (size_t f = 0; f < NFAMILIES; f++) {
		fbn_rule_init(&r, T, "forward", "guest daddr @%s accept",
			      families[f].allow);
		fbn_match_iifname(&r, g);
		fbn_match_addr_set(&r, families[f].af, FBN_DST,
				   families[f].allow, id->allow[f]);
		fbn_do_ct_mark(&r, FB_NFT_CT_MARK);
		fbn_do_counter(&r, "allowed");
		fbn_do_verdict(&r, NF_ACCEPT);
		fbn_tbl_rule(t, &r);
	}
	/*
	 * New guest TCP never gets here: prerouting redirected it, or it is
	 * denied or allowed above.  What does is an invalid segment to an
	 * address outside subnets.allow — typically the next segment of a
	 * flow fb_nft_cut_flows cut, where conntrack does not pick flows up
	 * mid-stream (nf_conntrack_tcp_loose=0).  A reset tells the guest at
	 * once instead of leaving it to time out.
	 */
	fbn_rule_init(&r, T, "forward", "guest tcp reset");
	fbn_match_iifname(&r, g);
	fbn_match_l4proto(&r, IPPROTO_TCP);
	fbn_do_counter(&r, "dropped");
	fbn_do_reject_tcp(&r);
	fbn_tbl_rule(t, &r);

	drop_rest(t, "forward", g);
}

/*
 * Before anything else, conntrack included: what comes from the guest
 * with a source address whose route does not lead back to the guest is
 * dropped.  A spoofed source would otherwise have the proxy's answers
 * (a DNS reply repeats the question, which the guest wrote) sent to any
 * address outside, as established traffic; would send forwarded flows
 * out under someone else's address; and could pose as the reply of a
 * flow of the proxy's own.  Neighbour discovery is let by first: DAD
 * probes come from the unspecified address.  From it or a link-local
 * one only, which no router forwards: a neighbour solicitation with any
 * other source would reach an address subnets.allow holds under it.
 */
static void guard(struct fbn_tbl *t, const struct fb_nft_config *cfg)
{
	static const struct fb_cidr unforwarded[] = {
		{ .family = AF_INET6, .len = 128 },               /* ::/128 */
		{ .family = AF_INET6, .len = 10, .b = { 0xfe, 0x80 } },
	};
	struct fbn_rule r;

	for (size_t i = 0; i < 2; i++) {
		fbn_rule_init(&r, T, "guard", "icmpv6 neighbour discovery "
			      "from %s accept", i ? "fe80::/10" : "::");
		fbn_match_ndisc(&r);
		fbn_match_cidr(&r, &unforwarded[i], FBN_SRC);
		fbn_do_verdict(&r, NF_ACCEPT);
		fbn_tbl_rule(t, &r);
	}
	fbn_rule_init(&r, T, "guard", "guest saddr not routed back drop");
	fbn_match_iifname(&r, cfg->guest_ifname);
	fbn_match_saddr_not_via_iif(&r);
	fbn_do_counter(&r, "dropped");
	fbn_do_verdict(&r, NF_DROP);
	fbn_tbl_rule(t, &r);
}

static void input(struct fbn_tbl *t, const struct fb_nft_config *cfg)
{
	const char *g = cfg->guest_ifname;
	struct fbn_rule r;

	replies(t, "input");
	fbn_rule_init(&r, T, "input", "iifname lo accept");
	fbn_match_iifname(&r, "lo");
	fbn_do_verdict(&r, NF_ACCEPT);
	fbn_tbl_rule(t, &r);
	ndisc(t, "input");

	/* redirected only: a connection made straight to the proxy's port
	 * has nowhere to go but the proxy itself */
	fbn_rule_init(&r, T, "input", "guest tcp dport %u ct status dnat accept",
		      cfg->proxy_port);
	fbn_match_iifname(&r, g);
	fbn_match_l4proto(&r, IPPROTO_TCP);
	fbn_match_dport(&r, cfg->proxy_port);
	fbn_match_ct_status(&r, IPS_DST_NAT);
	fbn_do_verdict(&r, NF_ACCEPT);
	fbn_tbl_rule(t, &r);
	for (size_t i = 0; i < 2; i++) {
		fbn_rule_init(&r, T, "input", "guest %s dport %u accept",
			      dns_protos[i].name, cfg->dns_port);
		fbn_match_iifname(&r, g);
		fbn_match_l4proto(&r, dns_protos[i].proto);
		fbn_match_dport(&r, cfg->dns_port);
		fbn_do_verdict(&r, NF_ACCEPT);
		fbn_tbl_rule(t, &r);
	}
	drop_rest(t, "input", g);
}

static void output(struct fbn_tbl *t, const struct fb_nft_config *cfg,
		   const struct set_ids *id)
{
	struct fbn_rule r;

	fbn_rule_init(&r, T, "output", "oifname lo accept");
	fbn_match_oifname(&r, "lo", true);
	fbn_do_verdict(&r, NF_ACCEPT);
	fbn_tbl_rule(t, &r);
	replies(t, "output");
	ndisc(t, "output");
	/* the upstream resolver is often private: the proxy alone, port only */
	for (size_t i = 0; cfg->resolver.family && i < 2; i++) {
		fbn_rule_init(&r, T, "output", "resolver %s dport %u accept",
			      dns_protos[i].name, cfg->resolver_port);
		fbn_match_addr(&r, &cfg->resolver);
		fbn_match_l4proto(&r, dns_protos[i].proto);
		fbn_match_dport(&r, cfg->resolver_port);
		fbn_do_verdict(&r, NF_ACCEPT);
		fbn_tbl_rule(t, &r);
	}
	reject_denied(t, "output", NULL, id, "output_rejected");
}

int fb_nft_apply(const struct fb_nft_config *cfg, char *err, size_t errsize)
{
	static const char *const counters[] = { "allowed", "rejected",
						"dropped", "output_rejected" };
	struct fbn_batch b;
	struct fbn_tbl t;
	struct set_ids id;
	int rc;

	if (check_config(cfg, err, errsize) < 0)
		return -1;
	fbn_batch_init(&b);
	fbn_tbl_replace(&t, &b, T);
	for (size_t f = 0; f < NFAMILIES; f++) {
		id.deny[f] = fbn_tbl_set(&t, families[f].deny, families[f].af);
		fbn_tbl_set_fill(&t, families[f].deny, cfg->deny, cfg->ndeny,
				 "deny");
		id.allow[f] = fbn_tbl_set(&t, families[f].allow,
					  families[f].af);
		fbn_tbl_set_fill(&t, families[f].allow, cfg->allow, cfg->nallow,
				 "allow");
	}
	for (size_t i = 0; i < sizeof(counters) / sizeof(*counters); i++)
		fbn_tbl_counter(&t, counters[i]);
	fbn_tbl_chain(&t, "guard", "filter", NF_INET_PRE_ROUTING,
		      FBN_PRIO_RAW, NF_ACCEPT);
	fbn_tbl_chain(&t, "prerouting", "nat", NF_INET_PRE_ROUTING,
		      FBN_PRIO_DSTNAT, NF_ACCEPT);
	fbn_tbl_chain(&t, "input", "filter", NF_INET_LOCAL_IN,
		      FBN_PRIO_FILTER, NF_DROP);
	fbn_tbl_chain(&t, "forward", "filter", NF_INET_FORWARD,
		      FBN_PRIO_FILTER, NF_DROP);
	fbn_tbl_chain(&t, "output", "filter", NF_INET_LOCAL_OUT,
		      FBN_PRIO_FILTER, NF_ACCEPT);
	guard(&t, cfg);
	prerouting(&t, cfg, &id);
	forward(&t, cfg, &id);
	input(&t, cfg);
	output(&t, cfg, &id);

	rc = fbn_batch_commit(&b, err, errsize);
	if (rc == 0)
		rc = fbn_tbl_verify(&t, err, errsize);
	fbn_batch_free(&b);
	return rc;
}
