/*
 * verify.c — read a committed table back and compare it with what was
 * meant: the same chains with the same number of rules, the same sets
 * with the same number of elements, the same counters.  A transaction
 * the kernel accepted should always pass; this catches what should not
 * happen (a concurrent writer, a kernel that silently merged or dropped
 * elements) before the caller reports the policy as enforced.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include "nft/internal.h"

#define ATTR_MAX 16 /* above every NFTA_* index read here */

struct seen {
	const struct fbn_tbl *want;
	struct fbn_tbl_item *v; /* the tally being filled */
	size_t *n;
	int name_attr, table_attr;
	/*
	 * What adds to an object's count: nothing (chains, sets, counters),
	 * each dumped rule (to its chain), or the elements listed.
	 */
	enum { COUNT_NONE, COUNT_RULES, COUNT_ELEMS } count;
};

static int attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	uint16_t type = mnl_attr_get_type(a);

	if (type < ATTR_MAX)
		tb[type] = a;
	return MNL_CB_OK;
}

static const char *attr_str(const struct nlattr *a)
{
	if (!a || mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
		return NULL;
	return mnl_attr_get_str(a);
}

/* One dumped chain, rule, set or counter: tally it under its name. */
static int count_object(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[ATTR_MAX] = { 0 };
	struct seen *s = data;
	const char *table, *name;
	size_t i;

	mnl_attr_parse(nlh, sizeof(struct nfgenmsg), attr_cb, tb);
	table = attr_str(tb[s->table_attr]);
	name = attr_str(tb[s->name_attr]);
	if (!table || !name)
		return -1;
	if (strcmp(table, s->want->name) != 0)
		return 0;
	for (i = 0; i < *s->n; i++)
		if (strcmp(s->v[i].name, name) == 0)
			break;
	if (i == *s->n) {
		if (*s->n == FBN_TBL_MAX)
			return 0; /* more than we ever make: a mismatch */
		snprintf(s->v[i].name, sizeof(s->v[i].name), "%s", name);
		s->v[i].count = 0;
		(*s->n)++;
	}
	if (s->count == COUNT_RULES) {
		s->v[i].count++;
	} else if (s->count == COUNT_ELEMS) {
		const struct nlattr *list = tb[NFTA_SET_ELEM_LIST_ELEMENTS], *e;

		if (list)
			mnl_attr_for_each_nested(e, list)
				s->v[i].count++;
	}
	return 0;
}

static int dump(struct fbn_nl *nl, uint16_t type, int table_attr,
		const char *table, const char *set, struct seen *s,
		char *err, size_t errsize)
{
	char buf[512];
	struct nlmsghdr *nlh;

	nlh = nftnl_nlmsg_build_hdr(buf, type, NFPROTO_INET, NLM_F_DUMP, 0);
	mnl_attr_put_strz(nlh, (uint16_t)table_attr, table);
	if (set)
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set);
	return fbn_nl_request(nl, nlh, count_object, s, err, errsize) < 0 ?
		       -1 : 0;
}

static int count_reply(const struct nlmsghdr *nlh, void *data)
{
	(void)nlh;
	++*(size_t *)data;
	return 0;
}

/*
 * A set too large to dump quickly: each sample must be found by a lookup
 * of exactly that element; then the set is taken to hold what was sent.
 */
static int lookup_samples(struct fbn_nl *nl, const struct fbn_tbl *t,
			  const struct fbn_tbl_item *want,
			  struct fbn_tbl_item *got, size_t ngot, char *err,
			  size_t errsize)
{
	size_t klen = want->family == AF_INET ? 4 : 16, i;

	for (i = 0; i < ngot; i++)
		if (strcmp(got[i].name, want->name) == 0)
			break;
	if (i == ngot)
		return 0; /* compare() names the missing set */
	for (size_t k = 0; k < want->nsamples; k++) {
		const struct fbn_elem *e = &want->samples[k];
		char buf[512], why[200], addr[INET6_ADDRSTRLEN];
		struct nlmsghdr *nlh;
		struct nlattr *list;
		size_t found = 0;

		nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM,
					    NFPROTO_INET, NLM_F_ACK, 0);
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, t->name);
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, want->name);
		list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
		fbn_elem_put(nlh, e, klen);
		mnl_attr_nest_end(nlh, list);
		if (fbn_nl_request(nl, nlh, count_reply, &found, why,
				   sizeof(why)) < 0 || !found) {
			inet_ntop(want->family, e->key, addr, sizeof(addr));
			snprintf(err, errsize, "read-back of table %s: set %s "
				 "lacks its element %s%s", t->name, want->name,
				 addr, e->end ? " (interval end)" : "");
			return -1;
		}
	}
	got[i].count = want->count;
	return 0;
}

/* Compare one kind of object: names and counts, both ways. */
static int compare(const char *kind, const char *unit,
		   const struct fbn_tbl_item *want, size_t nwant,
		   const struct fbn_tbl_item *got, size_t ngot,
		   const char *table, char *err, size_t errsize)
{
	for (size_t i = 0; i < nwant; i++) {
		size_t j;

		for (j = 0; j < ngot; j++)
			if (strcmp(want[i].name, got[j].name) == 0)
				break;
		if (j == ngot) {
			snprintf(err, errsize, "read-back of table %s: %s %s "
				 "is missing", table, kind, want[i].name);
			return -1;
		}
		if (unit && got[j].count != want[i].count) {
			snprintf(err, errsize, "read-back of table %s: %s %s "
				 "has %zu %s, expected %zu", table, kind,
				 want[i].name, got[j].count, unit,
				 want[i].count);
			return -1;
		}
	}
	if (ngot != nwant) {
		snprintf(err, errsize, "read-back of table %s: %zu %ss, "
			 "expected %zu", table, ngot, kind, nwant);
		return -1;
	}
	return 0;
}

int fbn_tbl_verify(const struct fbn_tbl *t, char *err, size_t errsize)
{
	struct fbn_tbl_item chains[FBN_TBL_MAX], sets[FBN_TBL_MAX],
		counters[FBN_TBL_MAX];
	size_t nchains = 0, nsets = 0, ncounters = 0;
	struct seen s = { .want = t };
	struct fbn_nl nl;
	int rc = -1;

	if (fbn_nl_open(&nl, err, errsize) < 0)
		return -1;

	s.v = chains, s.n = &nchains;
	s.table_attr = NFTA_CHAIN_TABLE, s.name_attr = NFTA_CHAIN_NAME;
	if (dump(&nl, NFT_MSG_GETCHAIN, NFTA_CHAIN_TABLE, t->name, NULL, &s,
		 err, errsize) < 0)
		goto out;
	s.table_attr = NFTA_RULE_TABLE, s.name_attr = NFTA_RULE_CHAIN;
	s.count = COUNT_RULES;
	if (dump(&nl, NFT_MSG_GETRULE, NFTA_RULE_TABLE, t->name, NULL, &s,
		 err, errsize) < 0 ||
	    compare("chain", "rules", t->chains, t->nchains, chains, nchains,
		    t->name, err, errsize) < 0)
		goto out;

	s.v = sets, s.n = &nsets, s.count = COUNT_NONE;
	s.table_attr = NFTA_SET_TABLE, s.name_attr = NFTA_SET_NAME;
	if (dump(&nl, NFT_MSG_GETSET, NFTA_SET_TABLE, t->name, NULL, &s, err,
		 errsize) < 0)
		goto out;
	s.table_attr = NFTA_SET_ELEM_LIST_TABLE;
	s.name_attr = NFTA_SET_ELEM_LIST_SET;
	s.count = COUNT_ELEMS;
	for (size_t i = 0; i < t->nsets; i++) {
		const struct fbn_tbl_item *want = &t->sets[i];

		if (want->count <= FBN_VERIFY_DUMP) {
			if (dump(&nl, NFT_MSG_GETSETELEM,
				 NFTA_SET_ELEM_LIST_TABLE, t->name, want->name,
				 &s, err, errsize) < 0)
				goto out;
		} else if (lookup_samples(&nl, t, want, sets, nsets, err,
					  errsize) < 0) {
			goto out;
		}
	}
	if (compare("set", "elements", t->sets, t->nsets, sets, nsets,
		    t->name, err, errsize) < 0)
		goto out;

	s.v = counters, s.n = &ncounters, s.count = COUNT_NONE;
	s.table_attr = NFTA_OBJ_TABLE, s.name_attr = NFTA_OBJ_NAME;
	if (dump(&nl, NFT_MSG_GETOBJ, NFTA_OBJ_TABLE, t->name, NULL, &s, err,
		 errsize) < 0 ||
	    compare("counter", NULL, t->counters, t->ncounters, counters,
		    ncounters, t->name, err, errsize) < 0)
		goto out;
	rc = 0;
out:
	fbn_nl_close(&nl);
	return rc;
}
