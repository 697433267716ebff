/*
 * ranges.c — the effective kernel address sets as merged intervals.
 *
 * nftables interval sets want sorted, non-overlapping ranges, and "the
 * non-public set minus what the operator declared public minus what the
 * policy reopened" is not a union of prefixes anyway.  So every prefix
 * becomes an inclusive interval of 128-bit integers (an IPv4 address is its
 * 32-bit value), and union and difference are linear sweeps over sorted,
 * merged lists: O(n log n) for the sort, whatever the prefixes look like.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy/internal.h"

static unsigned family_bytes(uint8_t family)
{
	return family == AF_INET ? 4 : 16;
}

fb_u128 fb_addr_value(const struct fb_addr *a)
{
	fb_u128 v = 0;

	for (unsigned i = 0; i < family_bytes(a->family); i++)
		v = v << 8 | a->b[i];
	return v;
}

void fb_cidr_span(const struct fb_cidr *c, struct fb_span *s)
{
	struct fb_addr a = { .family = c->family };
	unsigned host = family_bytes(c->family) * 8 - c->len;

	memcpy(a.b, c->b, sizeof a.b);
	s->lo = fb_addr_value(&a);
	/* 128 host bits (::/0) would overflow the shift */
	s->hi = host == 128 ? ~(fb_u128)0 : s->lo | (((fb_u128)1 << host) - 1);
}

static int span_cmp(const void *x, const void *y)
{
	const struct fb_span *a = x, *b = y;

	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	return 0;
}

size_t fb_spans_merge(struct fb_span *s, size_t n)
{
	size_t out = 0;

	if (n == 0)
		return 0;
	qsort(s, n, sizeof *s, span_cmp);
	for (size_t i = 1; i < n; i++) {
		/* adjacent counts as touching: hi + 1 == lo, without overflow */
		if (s[i].lo <= s[out].hi || s[i].lo - 1 == s[out].hi) {
			if (s[i].hi > s[out].hi)
				s[out].hi = s[i].hi;
		} else {
			s[++out] = s[i];
		}
	}
	return out + 1;
}

struct fb_span *fb_spans_from_cidrs(const struct fb_cidr *c, size_t n,
				    uint8_t family, size_t *nout)
{
	struct fb_span *s = malloc((n + 1) * sizeof *s);
	size_t k = 0;

	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (c[i].family == family)
			fb_cidr_span(&c[i], &s[k++]);
	*nout = fb_spans_merge(s, k);
	return s;
}

/*
 * a - b, both sorted and merged, into a new array (at most na + nb spans:
 * each span of b splits at most one span of a in two).
 */
static struct fb_span *spans_subtract(const struct fb_span *a, size_t na,
				      const struct fb_span *b, size_t nb,
				      size_t *nout)
{
	struct fb_span *out = malloc((na + nb + 1) * sizeof *out);
	size_t k = 0, j = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < na; i++) {
		fb_u128 lo = a[i].lo;
		bool gone = false;

		while (j < nb && b[j].hi < lo)
			j++;
		for (size_t m = j; m < nb && b[m].lo <= a[i].hi; m++) {
			if (b[m].lo > lo)
				out[k++] = (struct fb_span){ lo, b[m].lo - 1 };
			if (b[m].hi >= a[i].hi) {
				gone = true;
				break;
			}
			lo = b[m].hi + 1;
		}
		if (!gone)
			out[k++] = (struct fb_span){ lo, a[i].hi };
	}
	*nout = k;
	return out;
}

/* Concatenate two span lists and merge them (the union). */
static struct fb_span *spans_union(const struct fb_span *a, size_t na,
				   const struct fb_span *b, size_t nb,
				   size_t *nout)
{
	struct fb_span *out = malloc((na + nb + 1) * sizeof *out);

	if (!out)
		return NULL;
	memcpy(out, a, na * sizeof *a);
	memcpy(out + na, b, nb * sizeof *b);
	*nout = fb_spans_merge(out, na + nb);
	return out;
}

/* subnets.allow entries that reopen a non-public block, as spans. */
static struct fb_span *reopened_spans(const struct fb_policy *p,
				      uint8_t family, size_t *nout)
{
	struct fb_span *s = malloc((p->nsubnets[0] + 1) * sizeof *s);
	size_t k = 0;

	if (!s)
		return NULL;
	for (size_t i = 0; i < p->nsubnets[0]; i++) {
		const struct fb_cidr *c = &p->subnets[0][i];

		if (c->family == family && fb_cidr_reopens(c))
			fb_cidr_span(c, &s[k++]);
	}
	*nout = fb_spans_merge(s, k);
	return s;
}

/*
 * subnets.deny as prefixes of `family`: for IPv6, also the IPv6 forms of
 * its IPv4 entries, so that a flow the allow set would forward by address
 * cannot reach a denied IPv4 address through NAT64 or 6to4 (the proxy
 * judges a dialled address the same way: fb_policy_check_addr).
 */
static struct fb_span *denied_spans(const struct fb_policy *p, uint8_t family,
				    size_t *nout)
{
	size_t n = p->nsubnets[1];
	struct fb_cidr *all = malloc((n * (1 + FB_EMBED_IMAGES_MAX) + 1) *
				     sizeof(*all));
	struct fb_span *s;

	if (!all)
		return NULL;
	if (n) /* subnets[1] is NULL without any */
		memcpy(all, p->subnets[1], n * sizeof(*all));
	for (size_t i = 0; family == AF_INET6 && i < p->nsubnets[1]; i++)
		if (p->subnets[1][i].family == AF_INET)
			n += fb_cidr_embedded_images(&p->subnets[1][i], &all[n]);
	s = fb_spans_from_cidrs(all, n, family, nout);
	free(all);
	return s;
}

/* subnets.deny + (non-public - publics - reopened), one family. */
static struct fb_span *deny_spans(const struct fb_policy *p, uint8_t family,
				  size_t *nout)
{
	size_t nnp = 0, nb, npub = 0, nre = 0, nclosed, ndeny = 0, nopen;
	const struct fb_cidr *np = fb_nonpublic_cidrs(&nb);
	struct fb_span *nonpublic = fb_spans_from_cidrs(np, nb, family, &nnp);
	struct fb_span *pub = fb_spans_from_cidrs(p->publics, p->npublics,
						  family, &npub);
	struct fb_span *re = reopened_spans(p, family, &nre);
	struct fb_span *deny = denied_spans(p, family, &ndeny);
	struct fb_span *open = NULL, *closed = NULL, *out = NULL;

	if (!nonpublic || !pub || !re || !deny)
		goto done;
	if (!(open = spans_subtract(nonpublic, nnp, pub, npub, &nopen)))
		goto done;
	if (!(closed = spans_subtract(open, nopen, re, nre, &nclosed)))
		goto done;
	out = spans_union(closed, nclosed, deny, ndeny, nout);
done:
	free(nonpublic);
	free(pub);
	free(re);
	free(deny);
	free(open);
	free(closed);
	return out;
}

static void value_bytes(fb_u128 v, uint8_t family, uint8_t *b)
{
	unsigned n = family_bytes(family);

	memset(b, 0, 16);
	for (unsigned i = n; i-- > 0; v >>= 8)
		b[i] = (uint8_t)v;
}

/* Append spans of one family to *out as fb_ranges. */
static void emit(struct fb_range *out, size_t *k, const struct fb_span *s,
		 size_t n, uint8_t family)
{
	for (size_t i = 0; i < n; i++, (*k)++) {
		out[*k].family = family;
		value_bytes(s[i].lo, family, out[*k].lo);
		value_bytes(s[i].hi, family, out[*k].hi);
	}
}

/* Run `family_spans` for both families; IPv4 ranges first. */
static int both_families(const struct fb_policy *p,
			 struct fb_span *(*family_spans)(const struct fb_policy *,
							 uint8_t, size_t *),
			 struct fb_range **out, size_t *n)
{
	size_t n4 = 0, n6 = 0;
	struct fb_span *s4 = family_spans(p, AF_INET, &n4);
	struct fb_span *s6 = family_spans(p, AF_INET6, &n6);
	int rc = -1;

	*out = NULL;
	*n = 0;
	if (s4 && s6 && (*out = malloc((n4 + n6 + 1) * sizeof **out))) {
		emit(*out, n, s4, n4, AF_INET);
		emit(*out, n, s6, n6, AF_INET6);
		rc = 0;
	}
	free(s4);
	free(s6);
	return rc;
}

static struct fb_span *allow_spans(const struct fb_policy *p, uint8_t family,
				   size_t *nout)
{
	size_t nallow, ndeny;
	struct fb_span *allow = fb_spans_from_cidrs(p->subnets[0], p->nsubnets[0],
						    family, &nallow);
	struct fb_span *deny = deny_spans(p, family, &ndeny);
	struct fb_span *out = NULL;

	if (allow && deny)
		out = spans_subtract(allow, nallow, deny, ndeny, nout);
	free(allow);
	free(deny);
	return out;
}

int fb_policy_deny_ranges(const struct fb_policy *p, struct fb_range **out,
			  size_t *n)
{
	return both_families(p, deny_spans, out, n);
}

int fb_policy_allow_ranges(const struct fb_policy *p, struct fb_range **out,
			   size_t *n)
{
	return both_families(p, allow_spans, out, n);
}
