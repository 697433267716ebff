/*
 * counters.c — the sandbox table's named counters, read in one dump.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/object.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "nft/internal.h"

struct found {
	struct fb_nft_counters *c;
	unsigned seen; /* one bit per counter below */
};

static const struct {
	const char *name;
	size_t pkts, bytes; /* offsets in struct fb_nft_counters */
} names[] = {
#define C(n) { #n, offsetof(struct fb_nft_counters, n##_pkts), \
	       offsetof(struct fb_nft_counters, n##_bytes) }
	C(allowed), C(rejected), C(dropped), C(output_rejected),
#undef C
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

static int take_counter(const struct nlmsghdr *nlh, void *data)
{
	struct nftnl_obj *o = nftnl_obj_alloc();
	struct found *f = data;
	const char *table, *name;
	int rc = 0;

	if (!o)
		return -1;
	if (nftnl_obj_nlmsg_parse(nlh, o) < 0) {
		rc = -1;
		goto out;
	}
	table = nftnl_obj_get_str(o, NFTNL_OBJ_TABLE);
	name = nftnl_obj_get_str(o, NFTNL_OBJ_NAME);
	if (!table || !name || strcmp(table, FB_NFT_TABLE) != 0)
		goto out;
	for (size_t i = 0; i < NNAMES; i++) {
		if (strcmp(name, names[i].name) != 0)
			continue;
		*(uint64_t *)((char *)f->c + names[i].pkts) =
			nftnl_obj_get_u64(o, NFTNL_OBJ_CTR_PKTS);
		*(uint64_t *)((char *)f->c + names[i].bytes) =
			nftnl_obj_get_u64(o, NFTNL_OBJ_CTR_BYTES);
		f->seen |= 1u << i;
	}
out:
	nftnl_obj_free(o);
	return rc;
}

int fb_nft_read_counters(struct fb_nft_counters *c, char *err,
			 size_t errsize)
{
	struct found f = { .c = c };
	char buf[512], why[200];
	struct nlmsghdr *nlh;
	struct fbn_nl nl;
	int rc;

	memset(c, 0, sizeof(*c));
	if (fbn_nl_open(&nl, err, errsize) < 0)
		return -1;
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETOBJ, NFPROTO_INET,
				    NLM_F_DUMP, 0);
	mnl_attr_put_strz(nlh, NFTA_OBJ_TABLE, FB_NFT_TABLE);
	mnl_attr_put_u32(nlh, NFTA_OBJ_TYPE, htonl(NFT_OBJECT_COUNTER));
	rc = fbn_nl_request(&nl, nlh, take_counter, &f, why, sizeof(why));
	fbn_nl_close(&nl);
	if (rc < 0) {
		snprintf(err, errsize, "reading counters of table inet %s: %s",
			 FB_NFT_TABLE, why);
		return -1;
	}
	for (size_t i = 0; i < NNAMES; i++) {
		if (!(f.seen & (1u << i))) {
			snprintf(err, errsize, "table inet %s has no counter "
				 "%s (not applied yet?)", FB_NFT_TABLE,
				 names[i].name);
			return -1;
		}
	}
	return 0;
}
