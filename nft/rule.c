/*
 * rule.c — one nftables rule, written as a sequence of small matches and
 * actions, the way `nft` compiles its own language: load a field into a
 * register, compare it, and end in a verdict.
 *
 * Every header-field match in the inet family is preceded by `meta
 * nfproto`: without it an IPv6 packet's bytes would be read where an IPv4
 * field lives.  All matches use register 1 (16 bytes, enough for an IPv6
 * address or an interface name).
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>

#include "nft/internal.h"

int fbn_rule_init(struct fbn_rule *fr, const char *table, const char *chain,
		  const char *what, ...)
{
	va_list ap;

	memset(fr, 0, sizeof(*fr));
	va_start(ap, what);
	vsnprintf(fr->what, sizeof(fr->what), what, ap);
	va_end(ap);
	fr->r = nftnl_rule_alloc();
	if (!fr->r) {
		fr->failed = "out of memory";
		return -1;
	}
	nftnl_rule_set_str(fr->r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(fr->r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u32(fr->r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	return 0;
}

void fbn_rule_free(struct fbn_rule *fr)
{
	if (fr->r)
		nftnl_rule_free(fr->r);
	fr->r = NULL;
}

/* A new expression already added to the rule, or NULL (rule failed). */
static struct nftnl_expr *add(struct fbn_rule *fr, const char *name)
{
	struct nftnl_expr *e;

	if (fr->failed)
		return NULL;
	e = nftnl_expr_alloc(name);
	if (!e) {
		fr->failed = "out of memory";
		return NULL;
	}
	nftnl_rule_add_expr(fr->r, e);
	return e;
}

static void load_meta(struct fbn_rule *fr, uint32_t key)
{
	struct nftnl_expr *e = add(fr, "meta");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
}

static void load_payload(struct fbn_rule *fr, uint32_t base, uint32_t offset,
			 uint32_t len)
{
	struct nftnl_expr *e = add(fr, "payload");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
}

static void cmp(struct fbn_rule *fr, enum nft_cmp_ops op, const void *data,
		uint32_t len)
{
	struct nftnl_expr *e = add(fr, "cmp");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
}

/* reg1 = reg1 & mask (xor 0) over len bytes */
static void mask(struct fbn_rule *fr, const void *m, uint32_t len)
{
	static const uint8_t zero[16];
	struct nftnl_expr *e = add(fr, "bitwise");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, m, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len);
}

static void match_ifname(struct fbn_rule *fr, uint32_t key, const char *name,
			 enum nft_cmp_ops op)
{
	char padded[IFNAMSIZ] = { 0 };

	if (strlen(name) >= IFNAMSIZ) {
		fr->failed = "interface name longer than 15 bytes";
		return;
	}
	memcpy(padded, name, strlen(name));
	load_meta(fr, key);
	cmp(fr, op, padded, sizeof(padded));
}

void fbn_match_iifname(struct fbn_rule *fr, const char *ifname)
{
	match_ifname(fr, NFT_META_IIFNAME, ifname, NFT_CMP_EQ);
}

void fbn_match_oifname(struct fbn_rule *fr, const char *ifname, bool equal)
{
	match_ifname(fr, NFT_META_OIFNAME, ifname,
		     equal ? NFT_CMP_EQ : NFT_CMP_NEQ);
}

void fbn_match_nfproto(struct fbn_rule *fr, uint8_t nfproto)
{
	load_meta(fr, NFT_META_NFPROTO);
	cmp(fr, NFT_CMP_EQ, &nfproto, 1);
}

void fbn_match_l4proto(struct fbn_rule *fr, uint8_t proto)
{
	load_meta(fr, NFT_META_L4PROTO);
	cmp(fr, NFT_CMP_EQ, &proto, 1);
}

/* The destination port of TCP or UDP: call after fbn_match_l4proto. */
void fbn_match_dport(struct fbn_rule *fr, uint16_t port)
{
	uint16_t be = htons(port);

	load_payload(fr, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
	cmp(fr, NFT_CMP_EQ, &be, 2);
}

/* A 32-bit conntrack field (`key`) with any of `bits` set. */
static void match_ct_bits(struct fbn_rule *fr, uint32_t key, uint32_t bits)
{
	struct nftnl_expr *e = add(fr, "ct");
	uint32_t zero = 0;

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	mask(fr, &bits, 4);
	cmp(fr, NFT_CMP_NEQ, &zero, 4);
}

void fbn_match_ct_state(struct fbn_rule *fr, uint32_t states)
{
	match_ct_bits(fr, NFT_CT_STATE, states);
}

void fbn_match_ct_status(struct fbn_rule *fr, uint32_t bits)
{
	match_ct_bits(fr, NFT_CT_STATUS, bits);
}

/* Where the address of `dir` sits in the network header of `family`. */
static void load_addr(struct fbn_rule *fr, int family, enum fbn_dir dir)
{
	if (family == AF_INET) {
		fbn_match_nfproto(fr, NFPROTO_IPV4);
		load_payload(fr, NFT_PAYLOAD_NETWORK_HEADER,
			     dir == FBN_SRC ? 12 : 16, 4);
	} else {
		fbn_match_nfproto(fr, NFPROTO_IPV6);
		load_payload(fr, NFT_PAYLOAD_NETWORK_HEADER,
			     dir == FBN_SRC ? 8 : 24, 16);
	}
}

static uint32_t addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

/*
 * The destination of the packet that opened the flow, `ct original ip
 * daddr`, whichever way this one goes.  No nfproto guard: the kernel's
 * ct expression itself ends the rule for a flow of the other family.
 */
static void load_ct_daddr(struct fbn_rule *fr, int family)
{
	struct nftnl_expr *e = add(fr, "ct");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, family == AF_INET ?
			   NFT_CT_DST_IP : NFT_CT_DST_IP6);
	nftnl_expr_set_u8(e, NFTNL_EXPR_CT_DIR, IP_CT_DIR_ORIGINAL);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
}

/* reg1 looked up in the set; flags NFT_LOOKUP_F_INV for "not in" */
static void lookup(struct fbn_rule *fr, const char *set, uint32_t set_id,
		   uint32_t flags)
{
	struct nftnl_expr *e = add(fr, "lookup");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
	if (flags)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, flags);
}

void fbn_match_addr_set(struct fbn_rule *fr, int family, enum fbn_dir dir,
			const char *set, uint32_t set_id)
{
	load_addr(fr, family, dir);
	lookup(fr, set, set_id, 0);
}

void fbn_match_ct_daddr_not_in_set(struct fbn_rule *fr, int family,
				   const char *set, uint32_t set_id)
{
	load_ct_daddr(fr, family);
	lookup(fr, set, set_id, NFT_LOOKUP_F_INV);
}

void fbn_match_ct_mark(struct fbn_rule *fr, uint32_t mark)
{
	struct nftnl_expr *e = add(fr, "ct");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_MARK);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	cmp(fr, NFT_CMP_EQ, &mark, 4);
}

void fbn_match_not_l4proto(struct fbn_rule *fr, uint8_t proto)
{
	load_meta(fr, NFT_META_L4PROTO);
	cmp(fr, NFT_CMP_NEQ, &proto, 1);
}

void fbn_match_addr(struct fbn_rule *fr, const struct fb_addr *a)
{
	load_addr(fr, a->family, FBN_DST);
	cmp(fr, NFT_CMP_EQ, a->b, addr_len(a->family));
}

void fbn_match_cidr(struct fbn_rule *fr, const struct fb_cidr *c,
		    enum fbn_dir dir)
{
	uint8_t m[16] = { 0 };
	uint32_t len = addr_len(c->family);

	load_addr(fr, c->family, dir);
	for (unsigned i = 0; i < c->len; i++)
		m[i / 8] |= (uint8_t)(0x80 >> (i % 8));
	mask(fr, m, len);
	cmp(fr, NFT_CMP_EQ, c->b, len);
}

void fbn_match_ndisc(struct fbn_rule *fr)
{
	const uint8_t first = 133, last = 136, hops = 255; /* RS .. NA */

	fbn_match_nfproto(fr, NFPROTO_IPV6);
	fbn_match_l4proto(fr, IPPROTO_ICMPV6);
	load_payload(fr, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
	cmp(fr, NFT_CMP_GTE, &first, 1);
	cmp(fr, NFT_CMP_LTE, &last, 1);
	/* hop limit 255: the sender is on the link (RFC 4861 §7.1) */
	load_payload(fr, NFT_PAYLOAD_NETWORK_HEADER, 7, 1);
	cmp(fr, NFT_CMP_EQ, &hops, 1);
}

void fbn_match_saddr_not_via_iif(struct fbn_rule *fr)
{
	const uint32_t none = 0; /* the interface index of no route */
	struct nftnl_expr *e = add(fr, "fib");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS,
			   NFTA_FIB_F_SADDR | NFTA_FIB_F_IIF);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_OIF);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
	cmp(fr, NFT_CMP_EQ, &none, sizeof(none));
}

void fbn_do_counter(struct fbn_rule *fr, const char *name)
{
	struct nftnl_expr *e = add(fr, "objref");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_OBJREF_IMM_TYPE, NFT_OBJECT_COUNTER);
	nftnl_expr_set_str(e, NFTNL_EXPR_OBJREF_IMM_NAME, name);
}

/* reg1 = value (len bytes, as the consuming expression reads it) */
static void load_imm(struct fbn_rule *fr, const void *value, uint32_t len)
{
	struct nftnl_expr *e = add(fr, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
	nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, value, len);
}

void fbn_do_ct_mark(struct fbn_rule *fr, uint32_t mark)
{
	struct nftnl_expr *e;

	load_imm(fr, &mark, sizeof(mark));
	e = add(fr, "ct");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_MARK);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_SREG, NFT_REG_1);
}

void fbn_do_verdict(struct fbn_rule *fr, int verdict)
{
	struct nftnl_expr *e = add(fr, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
}

void fbn_do_reject_tcp(struct fbn_rule *fr)
{
	struct nftnl_expr *e = add(fr, "reject");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
	nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, 0);
}

/* ICMP or ICMPv6 "administratively prohibited", whichever fits */
void fbn_do_reject_admin(struct fbn_rule *fr)
{
	struct nftnl_expr *e = add(fr, "reject");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_ICMPX_UNREACH);
	nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE,
			  NFT_REJECT_ICMPX_ADMIN_PROHIBITED);
}

void fbn_do_redirect(struct fbn_rule *fr, uint16_t port)
{
	uint16_t be = htons(port);
	struct nftnl_expr *e;

	load_imm(fr, &be, sizeof(be));
	e = add(fr, "redir");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_FLAGS,
			   NF_NAT_RANGE_PROTO_SPECIFIED);
}

void fbn_do_masquerade(struct fbn_rule *fr)
{
	add(fr, "masq");
}
