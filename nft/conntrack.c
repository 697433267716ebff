/*
 * conntrack.c — cut the guest's forwarded flows that a new policy no
 * longer allows.
 *
 * An established flow passes the forward chain on `ct state established`
 * whatever the sets now say, so removing a CIDR from subnets.allow does
 * not stop a stream already open to it.  TCP flows are cut by the table
 * itself (table.c, cut_marked): the guest's next segment is reset while
 * the origin's replies still arrive, so at first they are only counted
 * here — deleting their entries at once would drop a reply in flight and
 * leave the guest waiting for its retransmission timeout.  A moment later
 * the proxy calls again with `tcp` set to delete them too: from then on
 * the origin's packets find no entry and are dropped, however long the
 * origin goes on sending, and a guest segment is a new flow the proxy's
 * port answers with a reset.  Other flows (UDP, ICMP) the
 * table drops both ways, and have their entries deleted here: an origin
 * that goes on sending would keep an entry alive for as long as it does.
 * Only entries carrying FB_NFT_CT_MARK are candidates —
 * the forward chain marks exactly the flows it lets through by
 * subnets.allow — so the proxy's own upstream connections and the
 * redirected flows are never touched.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "nft/internal.h"

/* allow as sorted interval boundaries, per family, for binary search */
struct allowed {
	struct fbn_elem *v4, *v6;
	size_t n4, n6;
};

/* The original tuples (and zones) of the entries to delete. */
struct doomed {
	const struct allowed *allow;
	struct victim {
		uint8_t family;
		uint16_t zone;
		bool has_zone;
		size_t len;
		char tuple[256]; /* the CTA_TUPLE_ORIG attribute, whole */
	} *v;
	size_t n, cap;
	size_t tcp;  /* TCP flows the table now cuts: counted, not deleted */
	bool delete_tcp; /* ... unless this is set */
	bool oom;
};

static int nested_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	uint16_t type = mnl_attr_get_type(a);

	if (type <= CTA_MAX)
		tb[type] = a;
	return MNL_CB_OK;
}

/* The original destination, from CTA_TUPLE_ORIG / CTA_TUPLE_IP. */
static int orig_dst(const struct nlattr *tuple, uint8_t family,
		    uint8_t dst[16])
{
	const struct nlattr *tt[CTA_MAX + 1] = { 0 }, *ip[CTA_MAX + 1] = { 0 };
	const struct nlattr *a;

	if (mnl_attr_parse_nested(tuple, nested_cb, tt) < 0 ||
	    !tt[CTA_TUPLE_IP] ||
	    mnl_attr_parse_nested(tt[CTA_TUPLE_IP], nested_cb, ip) < 0)
		return -1;
	a = ip[family == AF_INET ? CTA_IP_V4_DST : CTA_IP_V6_DST];
	if (!a || mnl_attr_get_payload_len(a) != (family == AF_INET ? 4 : 16))
		return -1;
	memcpy(dst, mnl_attr_get_payload(a), mnl_attr_get_payload_len(a));
	return 0;
}

/* The layer-4 protocol, from CTA_TUPLE_ORIG / CTA_TUPLE_PROTO. */
static int orig_proto(const struct nlattr *tuple)
{
	const struct nlattr *tt[CTA_MAX + 1] = { 0 }, *pt[CTA_MAX + 1] = { 0 };

	if (mnl_attr_parse_nested(tuple, nested_cb, tt) < 0 ||
	    !tt[CTA_TUPLE_PROTO] ||
	    mnl_attr_parse_nested(tt[CTA_TUPLE_PROTO], nested_cb, pt) < 0 ||
	    !pt[CTA_PROTO_NUM])
		return -1;
	return mnl_attr_get_u8(pt[CTA_PROTO_NUM]);
}

static int judge_entry(const struct nlmsghdr *nlh, void *data)
{
	const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[CTA_MAX + 1] = { 0 };
	struct doomed *d = data;
	const struct allowed *al = d->allow;
	struct victim *v;
	uint8_t dst[16];
	bool inside;

	mnl_attr_parse(nlh, sizeof(*nfg), nested_cb, tb);
	if (!tb[CTA_TUPLE_ORIG] || !tb[CTA_MARK] ||
	    ntohl(mnl_attr_get_u32(tb[CTA_MARK])) != FB_NFT_CT_MARK)
		return 0;
	if (nfg->nfgen_family != AF_INET && nfg->nfgen_family != AF_INET6)
		return 0;
	if (orig_dst(tb[CTA_TUPLE_ORIG], nfg->nfgen_family, dst) < 0)
		return -1;
	inside = nfg->nfgen_family == AF_INET ?
			 fbn_elems_contain(al->v4, al->n4, dst, 4) :
			 fbn_elems_contain(al->v6, al->n6, dst, 16);
	if (inside)
		return 0;
	if (orig_proto(tb[CTA_TUPLE_ORIG]) == IPPROTO_TCP && !d->delete_tcp) {
		d->tcp++;
		return 0;
	}
	if (mnl_attr_get_len(tb[CTA_TUPLE_ORIG]) > sizeof(v->tuple))
		return -1;
	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 16;
		struct victim *p = realloc(d->v, cap * sizeof(*p));

		if (!p) {
			d->oom = true;
			return -1;
		}
		d->v = p;
		d->cap = cap;
	}
	v = &d->v[d->n++];
	v->family = nfg->nfgen_family;
	v->has_zone = tb[CTA_ZONE] != NULL;
	v->zone = v->has_zone ? mnl_attr_get_u16(tb[CTA_ZONE]) : 0;
	v->len = mnl_attr_get_len(tb[CTA_TUPLE_ORIG]);
	memcpy(v->tuple, tb[CTA_TUPLE_ORIG], v->len);
	return 0;
}

static struct nlmsghdr *ct_msg(char *buf, uint16_t type, uint16_t flags,
			       uint8_t family)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = family;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	return nlh;
}

/* Delete one entry; gone already (the flow closed meanwhile) is fine. */
static int delete_entry(struct fbn_nl *nl, const struct victim *v, char *err,
			size_t errsize)
{
	char buf[512];
	struct nlmsghdr *nlh = ct_msg(buf, IPCTNL_MSG_CT_DELETE, NLM_F_ACK,
				      v->family);
	int rc;

	/* the tuple goes back exactly as the dump gave it */
	memcpy(mnl_nlmsg_get_payload_tail(nlh), v->tuple, v->len);
	nlh->nlmsg_len += MNL_ALIGN(v->len);
	if (v->has_zone)
		mnl_attr_put_u16(nlh, CTA_ZONE, v->zone);
	rc = fbn_nl_request(nl, nlh, NULL, NULL, err, errsize);
	if (rc == -ENOENT)
		return 0;
	return rc < 0 ? -1 : 1;
}

int fb_nft_cut_flows(const struct fb_range *allow, size_t nallow, bool tcp,
		     char *err, size_t errsize)
{
	struct allowed al = { 0 };
	struct doomed d = { .allow = &al, .delete_tcp = tcp };
	char buf[512], why[200];
	struct nlmsghdr *nlh;
	struct fbn_nl nl;
	int cut = 0, rc = -1;

	if (fbn_ranges_to_elems(allow, nallow, AF_INET, "allow", &al.v4,
				&al.n4, err, errsize) < 0 ||
	    fbn_ranges_to_elems(allow, nallow, AF_INET6, "allow", &al.v6,
				&al.n6, err, errsize) < 0)
		goto out_free;
	if (fbn_nl_open(&nl, err, errsize) < 0)
		goto out_free;

	/* the kernel filters the dump by mark; judge_entry checks again */
	nlh = ct_msg(buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, AF_UNSPEC);
	mnl_attr_put_u32(nlh, CTA_MARK, htonl(FB_NFT_CT_MARK));
	mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(0xffffffffu));
	if (fbn_nl_request(&nl, nlh, judge_entry, &d, why, sizeof(why)) < 0) {
		snprintf(err, errsize, "conntrack dump: %s",
			 d.oom ? "out of memory" : why);
		goto out;
	}
	for (size_t i = 0; i < d.n; i++) {
		int one = delete_entry(&nl, &d.v[i], why, sizeof(why));

		if (one < 0) {
			snprintf(err, errsize, "conntrack delete (%d of %zu "
				 "flows cut so far): %s", cut, d.n, why);
			goto out;
		}
		cut += one;
	}
	rc = cut + (int)d.tcp;
out:
	fbn_nl_close(&nl);
out_free:
	free(d.v);
	free(al.v4);
	free(al.v6);
	return rc;
}
