/*
 * sets.c — inclusive address ranges as nftables interval-set elements.
 *
 * An interval set holds boundaries, not ranges: [lo, hi] becomes a start
 * element lo and an end element hi + 1 flagged NFT_SET_ELEM_INTERVAL_END.
 * A range that reaches the last address has no hi + 1, so it gets no end
 * element: the interval stays open to the top.  Overlapping boundaries are
 * refused by the kernel, so ranges are sorted and merged first; merging
 * changes nothing about which addresses match.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_tables.h>

#include "nft/internal.h"

/* qsort_r order of ranges of one family; ctx points at the address length */
static int cmp_lo(const void *a, const void *b, void *ctx)
{
	return memcmp(((const struct fb_range *)a)->lo,
		      ((const struct fb_range *)b)->lo, *(size_t *)ctx);
}

static bool is_top(const uint8_t *a, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (a[i] != 0xff)
			return false;
	return true;
}

/* a + 1, big-endian; a must not be the top address */
static void next_addr(const uint8_t *a, uint8_t *out, size_t len)
{
	memcpy(out, a, len);
	for (size_t i = len; i-- > 0;)
		if (++out[i] != 0)
			break;
}

/* lo <= hi + 1: the two touch or overlap, so they can be one range */
static bool touches(const uint8_t *hi, const uint8_t *lo, size_t len)
{
	uint8_t after[16];

	if (memcmp(lo, hi, len) <= 0)
		return true;
	next_addr(hi, after, len); /* lo > hi: hi is not the top address */
	return memcmp(lo, after, len) == 0;
}

static void format_range(const struct fb_range *r, char *buf, size_t size)
{
	char lo[INET6_ADDRSTRLEN], hi[INET6_ADDRSTRLEN];

	inet_ntop(r->family, r->lo, lo, sizeof(lo));
	inet_ntop(r->family, r->hi, hi, sizeof(hi));
	snprintf(buf, size, "%s-%s", lo, hi);
}

/* Every range well-formed?  The first bad one is named. */
static int check_ranges(const struct fb_range *r, size_t n, const char *what,
			char *err, size_t errsize)
{
	for (size_t i = 0; i < n; i++) {
		char text[2 * INET6_ADDRSTRLEN + 2];
		size_t len;

		if (r[i].family != AF_INET && r[i].family != AF_INET6) {
			snprintf(err, errsize,
				 "%s range %zu: address family %u is neither "
				 "IPv4 nor IPv6", what, i, r[i].family);
			return -1;
		}
		len = r[i].family == AF_INET ? 4 : 16;
		if (memcmp(r[i].lo, r[i].hi, len) > 0) {
			format_range(&r[i], text, sizeof(text));
			snprintf(err, errsize,
				 "%s range %zu (%s) starts after it ends",
				 what, i, text);
			return -1;
		}
	}
	return 0;
}

int fbn_ranges_to_elems(const struct fb_range *r, size_t n, int family,
			const char *what, struct fbn_elem **out, size_t *nout,
			char *err, size_t errsize)
{
	size_t len = family == AF_INET ? 4 : 16, nsel = 0, ne = 0;
	struct fb_range *sel;
	struct fbn_elem *e;

	*out = NULL;
	*nout = 0;
	if (check_ranges(r, n, what, err, errsize) < 0)
		return -1;
	sel = malloc((n ? n : 1) * sizeof(*sel));
	e = malloc((2 * n + 1) * sizeof(*e));
	if (!sel || !e) {
		free(sel);
		free(e);
		snprintf(err, errsize, "out of memory for %zu %s ranges", n,
			 what);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (r[i].family == family)
			sel[nsel++] = r[i];
	qsort_r(sel, nsel, sizeof(*sel), cmp_lo, &len);

	for (size_t i = 0; i < nsel;) {
		uint8_t hi[16];
		size_t j;

		memcpy(hi, sel[i].hi, len);
		for (j = i + 1; j < nsel && touches(hi, sel[j].lo, len); j++)
			if (memcmp(sel[j].hi, hi, len) > 0)
				memcpy(hi, sel[j].hi, len);
		memset(&e[ne], 0, sizeof(e[ne]));
		memcpy(e[ne++].key, sel[i].lo, len);
		if (!is_top(hi, len)) {
			memset(&e[ne], 0, sizeof(e[ne]));
			next_addr(hi, e[ne].key, len);
			e[ne++].end = true;
		}
		i = j;
	}
	free(sel);
	*out = e;
	*nout = ne;
	return 0;
}

bool fbn_elems_contain(const struct fbn_elem *e, size_t n, const uint8_t *a,
		       size_t len)
{
	size_t lo = 0, hi = n; /* find the last element with key <= a */

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(e[mid].key, a, len) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && !e[lo - 1].end;
}

void fbn_elem_put(struct nlmsghdr *nlh, const struct fbn_elem *e,
		  size_t klen)
{
	struct nlattr *el = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
	struct nlattr *key = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_KEY);

	mnl_attr_put(nlh, NFTA_DATA_VALUE, klen, e->key);
	mnl_attr_nest_end(nlh, key);
	if (e->end)
		mnl_attr_put_u32(nlh, NFTA_SET_ELEM_FLAGS,
				 htonl(NFT_SET_ELEM_INTERVAL_END));
	mnl_attr_nest_end(nlh, el);
}
