/*
 * build.c — a table written into a transaction, object by object, while
 * keeping the tally (chains and their rule counts, sets and their element
 * counts, counters) that the read-back compares with the kernel's view.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "nft/internal.h"

/* Room for one table, chain, set, counter or rule message: all are small. */
#define FB_OBJ_ROOM 8192
/* Elements per NEWSETELEM message, each at most 36 bytes of attributes. */
#define FB_ELEMS_PER_MSG 1024
#define FB_ELEM_ROOM 40

/* nft's own datatype numbers, so `nft list` prints the keys as addresses */
#define NFT_TYPE_IPADDR 7
#define NFT_TYPE_IP6ADDR 8

static struct fbn_tbl_item *tally(struct fbn_tbl *t, struct fbn_tbl_item *v,
				  size_t *n, const char *kind, const char *name)
{
	if (*n == FBN_TBL_MAX || strlen(name) >= sizeof(v->name)) {
		fbn_batch_fail(t->b, "%s %s: too many or name too long", kind,
			       name);
		return NULL;
	}
	memset(&v[*n], 0, sizeof(v[*n]));
	strcpy(v[*n].name, name);
	return &v[(*n)++];
}

static struct fbn_tbl_item *find(struct fbn_tbl_item *v, size_t n,
				 const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

static void put_table(struct fbn_tbl *t, uint16_t type, uint16_t flags,
		      const char *verb)
{
	struct nftnl_table *nt = nftnl_table_alloc();
	struct nlmsghdr *nlh;

	if (!nt) {
		fbn_batch_fail(t->b, "out of memory");
		return;
	}
	nftnl_table_set_str(nt, NFTNL_TABLE_NAME, t->name);
	nlh = fbn_batch_open(t->b, type, NFPROTO_INET, flags, FB_OBJ_ROOM,
			     "%s table inet %s", verb, t->name);
	if (nlh) {
		nftnl_table_nlmsg_build_payload(nlh, nt);
		fbn_batch_close(t->b, nlh);
	}
	nftnl_table_free(nt);
}

void fbn_tbl_drop(struct fbn_tbl *t, struct fbn_batch *b, const char *name)
{
	memset(t, 0, sizeof(*t));
	t->b = b;
	t->name = name;
	if (strlen(name) >= NFT_TABLE_MAXNAMELEN) {
		fbn_batch_fail(b, "table name \"%.32s...\" is longer than %d "
			       "bytes", name, NFT_TABLE_MAXNAMELEN - 1);
		return;
	}
	/*
	 * Deleting a table that does not exist would fail the whole batch;
	 * adding it first (a no-op if it exists) makes the delete always
	 * valid, with no window between a query and the change.
	 */
	put_table(t, NFT_MSG_NEWTABLE, NLM_F_CREATE, "add");
	put_table(t, NFT_MSG_DELTABLE, 0, "delete");
}

void fbn_tbl_replace(struct fbn_tbl *t, struct fbn_batch *b, const char *name)
{
	fbn_tbl_drop(t, b, name);
	put_table(t, NFT_MSG_NEWTABLE, NLM_F_CREATE, "add");
}

void fbn_tbl_chain(struct fbn_tbl *t, const char *name, const char *type,
		   int hook, int prio, int policy)
{
	struct nftnl_chain *c;
	struct nlmsghdr *nlh;

	if (!tally(t, t->chains, &t->nchains, "chain", name))
		return;
	c = nftnl_chain_alloc();
	if (!c) {
		fbn_batch_fail(t->b, "out of memory");
		return;
	}
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, t->name);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, (uint32_t)hook);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, (uint32_t)policy);
	nlh = fbn_batch_open(t->b, NFT_MSG_NEWCHAIN, NFPROTO_INET,
			     NLM_F_CREATE, FB_OBJ_ROOM, "chain %s (%s, %s)",
			     name, type, policy == NF_DROP ? "policy drop" :
			     "policy accept");
	if (nlh) {
		nftnl_chain_nlmsg_build_payload(nlh, c);
		fbn_batch_close(t->b, nlh);
	}
	nftnl_chain_free(c);
}

uint32_t fbn_tbl_set(struct fbn_tbl *t, const char *name, int family)
{
	struct fbn_tbl_item *it = tally(t, t->sets, &t->nsets, "set", name);
	struct nftnl_set *s;
	struct nlmsghdr *nlh;

	if (!it)
		return 0;
	it->id = (uint32_t)t->nsets;
	it->family = family;
	s = nftnl_set_alloc();
	if (!s) {
		fbn_batch_fail(t->b, "out of memory");
		return 0;
	}
	nftnl_set_set_str(s, NFTNL_SET_TABLE, t->name);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_INTERVAL);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, family == AF_INET ?
			  NFT_TYPE_IPADDR : NFT_TYPE_IP6ADDR);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, family == AF_INET ? 4 : 16);
	nftnl_set_set_u32(s, NFTNL_SET_ID, it->id);
	nlh = fbn_batch_open(t->b, NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE,
			     FB_OBJ_ROOM, "set %s", name);
	if (nlh) {
		nftnl_set_nlmsg_build_payload(nlh, s);
		fbn_batch_close(t->b, nlh);
	}
	nftnl_set_free(s);
	return it->id;
}

static void put_elems(struct fbn_tbl *t, const struct fbn_tbl_item *set,
		      const struct fbn_elem *e, size_t n, size_t first)
{
	size_t klen = set->family == AF_INET ? 4 : 16;
	char from[INET6_ADDRSTRLEN];
	struct nlattr *list;
	struct nlmsghdr *nlh;

	inet_ntop(set->family, e[0].key, from, sizeof(from));
	nlh = fbn_batch_open(t->b, NFT_MSG_NEWSETELEM, NFPROTO_INET,
			     NLM_F_CREATE, 512 + n * FB_ELEM_ROOM,
			     "elements %zu-%zu of set %s (from %s)", first,
			     first + n - 1, set->name, from);
	if (!nlh)
		return;
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, t->name);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set->name);
	mnl_attr_put_u32(nlh, NFTA_SET_ELEM_LIST_SET_ID, htonl(set->id));
	list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
	for (size_t i = 0; i < n; i++)
		fbn_elem_put(nlh, &e[i], klen);
	mnl_attr_nest_end(nlh, list);
	fbn_batch_close(t->b, nlh);
}

void fbn_tbl_set_fill(struct fbn_tbl *t, const char *set,
		      const struct fb_range *r, size_t n, const char *what)
{
	struct fbn_tbl_item *it = find(t->sets, t->nsets, set);
	struct fbn_elem *e;
	size_t ne;
	char err[200];

	if (t->b->failed)
		return;
	if (!it) {
		fbn_batch_fail(t->b, "set %s is not part of table %s", set,
			       t->name);
		return;
	}
	if (fbn_ranges_to_elems(r, n, it->family, what, &e, &ne, err,
				sizeof(err)) < 0) {
		fbn_batch_fail(t->b, "%s", err);
		return;
	}
	/* one allocation for all of them, not a doubling series of copies */
	fbn_batch_reserve(t->b, ne * FB_ELEM_ROOM +
			  (ne / FB_ELEMS_PER_MSG + 1) * 1024);
	for (size_t i = 0; i < ne; i += FB_ELEMS_PER_MSG)
		put_elems(t, it, e + i,
			  ne - i < FB_ELEMS_PER_MSG ? ne - i : FB_ELEMS_PER_MSG,
			  i);
	it->count += ne;
	it->nsamples = ne < FBN_SAMPLES ? ne : FBN_SAMPLES;
	for (size_t i = 0; i < it->nsamples; i++)
		it->samples[i] = ne <= FBN_SAMPLES ?
			e[i] : e[i * (ne - 1) / (FBN_SAMPLES - 1)];
	free(e);
}

void fbn_tbl_counter(struct fbn_tbl *t, const char *name)
{
	struct nftnl_obj *o;
	struct nlmsghdr *nlh;

	if (!tally(t, t->counters, &t->ncounters, "counter", name))
		return;
	o = nftnl_obj_alloc();
	if (!o) {
		fbn_batch_fail(t->b, "out of memory");
		return;
	}
	nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, t->name);
	nftnl_obj_set_str(o, NFTNL_OBJ_NAME, name);
	nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
	nlh = fbn_batch_open(t->b, NFT_MSG_NEWOBJ, NFPROTO_INET, NLM_F_CREATE,
			     FB_OBJ_ROOM, "counter %s", name);
	if (nlh) {
		nftnl_obj_nlmsg_build_payload(nlh, o);
		fbn_batch_close(t->b, nlh);
	}
	nftnl_obj_free(o);
}

void fbn_tbl_rule(struct fbn_tbl *t, struct fbn_rule *fr)
{
	const char *chain;
	struct fbn_tbl_item *c;
	struct nlmsghdr *nlh;

	if (!fr->r) {
		fbn_batch_fail(t->b, "rule \"%s\": %s", fr->what, fr->failed);
		return;
	}
	chain = nftnl_rule_get_str(fr->r, NFTNL_RULE_CHAIN);
	c = find(t->chains, t->nchains, chain);
	if (fr->failed)
		fbn_batch_fail(t->b, "rule \"%s\" in chain %s: %s", fr->what,
			       chain, fr->failed);
	else if (!c)
		fbn_batch_fail(t->b, "rule \"%s\": no chain %s in table %s",
			       fr->what, chain, t->name);
	nlh = fbn_batch_open(t->b, NFT_MSG_NEWRULE, NFPROTO_INET,
			     NLM_F_CREATE | NLM_F_APPEND, FB_OBJ_ROOM,
			     "rule \"%s\" in chain %s", fr->what, chain);
	if (nlh) {
		nftnl_rule_nlmsg_build_payload(nlh, fr->r);
		fbn_batch_close(t->b, nlh);
		c->count++;
	}
	fbn_rule_free(fr);
}
