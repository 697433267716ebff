/*
 * classify.c — the built-in non-public address set.
 *
 * Sources: the IANA IPv4 and IPv6 Special-Purpose Address Registries
 * (RFC 6890 and its updates).  A block is here when the registry marks it
 * "Globally Reachable: False" or "N/A", and, to stay conservative, a few
 * that it marks reachable but that no sandbox has business dialling: the
 * AS112 and AMT anycast blocks (RFC 7534, RFC 7535, RFC 7450) and the whole
 * of 192.0.0.0/24 rather than its reachable /32s (RFC 7723, RFC 8155).
 *
 * IPv6 forms that carry an IPv4 address are judged by that address, since a
 * translator or tunnel delivers them to it: mapped (RFC 4291 §2.5.5.2),
 * compatible (§2.5.5.1, deprecated), IPv4-translated ::ffff:0:0:0/96 (RFC
 * 2765 §2.1, obsolete, but a SIIT translator may still deliver it), NAT64
 * 64:ff9b::/96 (RFC 6052) and the local-use 64:ff9b:1::/48 (RFC 8215, with
 * the IPv4 address in the last 32 bits), 6to4 2002::/16 (RFC 3056, bits
 * 16-47) and Teredo 2001::/32 (RFC 4380: server at bits 32-63, client in
 * the last 32 bits inverted).
 *
 * fb_nonpublic_cidrs() turns the same tables into prefixes for the kernel:
 * each IPv4 block and its image under every embedding that keeps the IPv4
 * address at a fixed prefix position.  Teredo hides the client address in
 * the low bits behind arbitrary flags and port, and 64:ff9b:1::/48 leaves
 * 48 free bits above it, so neither has prefix images: both are blocked
 * whole in the kernel, where the classifier can still judge one address.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy/internal.h"

struct block {
	const char *cidr;
	const char *name;
	struct fb_cidr parsed;
};

/* Searched in order: 255.255.255.255 before the 240/4 that holds it. */
static struct block v4_blocks[] = {
	{ .cidr = "0.0.0.0/8", .name = "this-network" },		/* RFC 791 */
	{ .cidr = "10.0.0.0/8", .name = "private-use" },		/* RFC 1918 */
	{ .cidr = "100.64.0.0/10", .name = "shared-address-space" },	/* RFC 6598 */
	{ .cidr = "127.0.0.0/8", .name = "loopback" },			/* RFC 1122 */
	{ .cidr = "169.254.0.0/16", .name = "link-local" },		/* RFC 3927 */
	{ .cidr = "172.16.0.0/12", .name = "private-use" },		/* RFC 1918 */
	{ .cidr = "192.0.0.0/24", .name = "ietf-protocol-assignments" }, /* RFC 6890 */
	{ .cidr = "192.0.2.0/24", .name = "documentation" },		/* RFC 5737 */
	{ .cidr = "192.31.196.0/24", .name = "as112" },			/* RFC 7535 */
	{ .cidr = "192.52.193.0/24", .name = "amt" },			/* RFC 7450 */
	{ .cidr = "192.88.99.0/24", .name = "6to4-relay-anycast" },	/* RFC 7526 */
	{ .cidr = "192.168.0.0/16", .name = "private-use" },		/* RFC 1918 */
	{ .cidr = "192.175.48.0/24", .name = "as112" },			/* RFC 7534 */
	{ .cidr = "198.18.0.0/15", .name = "benchmarking" },		/* RFC 2544 */
	{ .cidr = "198.51.100.0/24", .name = "documentation" },		/* RFC 5737 */
	{ .cidr = "203.0.113.0/24", .name = "documentation" },		/* RFC 5737 */
	{ .cidr = "224.0.0.0/4", .name = "multicast" },			/* RFC 5771 */
	{ .cidr = "255.255.255.255/32", .name = "limited-broadcast" },	/* RFC 919 */
	{ .cidr = "240.0.0.0/4", .name = "reserved" },			/* RFC 1112 */
};

/*
 * IPv6 blocks other than the embedding forms.  Inside 2001::/23 the
 * registry marks 2001:1::1/128, 2001:1::2/128, 2001:1::3/128 (anycast
 * PCP, TURN, DNS-SD SRP), 2001:3::/32 (AMT), 2001:4:112::/48 (AS112) and
 * 2001:30::/28 (DRIP) globally reachable, so they are not listed; ORCHIDv2
 * is listed although marked reachable, because RFC 7343 §2 makes ORCHIDs
 * identifiers that are never routed.
 */
static struct block v6_blocks[] = {
	{ .cidr = "::/128", .name = "unspecified" },			/* RFC 4291 */
	{ .cidr = "::1/128", .name = "loopback" },			/* RFC 4291 */
	{ .cidr = "100::/64", .name = "discard-only" },			/* RFC 6666 */
	{ .cidr = "2001:2::/48", .name = "benchmarking" },		/* RFC 5180 */
	{ .cidr = "2001:10::/28", .name = "orchid" },			/* RFC 4843, deprecated */
	{ .cidr = "2001:20::/28", .name = "orchid-v2" },		/* RFC 7343 */
	{ .cidr = "2001:db8::/32", .name = "documentation" },		/* RFC 3849 */
	{ .cidr = "3fff::/20", .name = "documentation" },		/* RFC 9637 */
	{ .cidr = "5f00::/16", .name = "segment-routing-sids" },	/* RFC 9602 */
	{ .cidr = "fc00::/7", .name = "unique-local" },			/* RFC 4193 */
	{ .cidr = "fe80::/10", .name = "link-local" },			/* RFC 4291 */
	{ .cidr = "fec0::/10", .name = "site-local" },			/* RFC 3879, deprecated */
	{ .cidr = "ff00::/8", .name = "multicast" },			/* RFC 4291 */
};

/*
 * Where each form keeps its IPv4 address: from bit v4_bit, XORed with
 * v4_xor; Teredo also carries its server's IPv4 address at bit 32.
 */
static struct {
	const char *cidr;
	unsigned v4_bit;
	uint32_t v4_xor;
	unsigned server_bit; /* 0: none */
	struct fb_cidr parsed;
} embeddings[] = {
	{ .cidr = "::ffff:0:0/96", .v4_bit = 96 },	/* mapped */
	{ .cidr = "::/96", .v4_bit = 96 },		/* compatible */
	{ .cidr = "::ffff:0:0:0/96", .v4_bit = 96 },	/* IPv4-translated */
	{ .cidr = "64:ff9b::/96", .v4_bit = 96 },	/* NAT64 */
	{ .cidr = "64:ff9b:1::/48", .v4_bit = 96 },	/* NAT64, local use */
	{ .cidr = "2002::/16", .v4_bit = 16 },		/* 6to4 */
	{ .cidr = "2001::/32", .v4_bit = 96, .v4_xor = 0xffffffff,
	  .server_bit = 32 },				/* Teredo */
};

#define NV4 (sizeof v4_blocks / sizeof v4_blocks[0])
#define NV6 (sizeof v6_blocks / sizeof v6_blocks[0])
#define NEMBED (sizeof embeddings / sizeof embeddings[0])

static struct fb_cidr all_cidrs[NV4 + NV6 + NV4 * NEMBED];
static size_t nall;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void parse_or_abort(const char *text, struct fb_cidr *out)
{
	char err[160];

	/* the tables are constants: a failure here is a bug caught by any test */
	if (fb_cidr_parse(text, out, err, sizeof err) < 0)
		abort();
}

/* The image of an IPv4 prefix at bit `at` of an IPv6 prefix. */
static void embed_prefix(const struct fb_cidr *outer, unsigned at,
			 const struct fb_cidr *v4, struct fb_cidr *out)
{
	*out = *outer;
	for (unsigned i = 0; i < 32; i++) {
		unsigned bit = at + i;

		if (v4->b[i / 8] & (0x80 >> (i % 8)))
			out->b[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
	}
	out->len = (uint8_t)(at + v4->len);
}

/* The images of `v4` under every form that carries it right after its
 * prefix, into out[]; how many. */
static size_t embed_images(const struct fb_cidr *v4, struct fb_cidr *out)
{
	size_t n = 0;

	for (size_t e = 0; e < NEMBED; e++) {
		const struct fb_cidr *outer = &embeddings[e].parsed;

		/* the IPv4 address must follow the prefix directly */
		if (embeddings[e].v4_bit == outer->len)
			embed_prefix(outer, embeddings[e].v4_bit, v4, &out[n++]);
	}
	return n;
}

static void build_tables(void)
{
	for (size_t i = 0; i < NV4; i++)
		parse_or_abort(v4_blocks[i].cidr, &v4_blocks[i].parsed);
	for (size_t i = 0; i < NV6; i++)
		parse_or_abort(v6_blocks[i].cidr, &v6_blocks[i].parsed);
	for (size_t i = 0; i < NEMBED; i++)
		parse_or_abort(embeddings[i].cidr, &embeddings[i].parsed);

	for (size_t i = 0; i < NV4; i++)
		all_cidrs[nall++] = v4_blocks[i].parsed;
	for (size_t i = 0; i < NV6; i++)
		all_cidrs[nall++] = v6_blocks[i].parsed;
	/* a form with no image of a prefix (Teredo, local-use NAT64) whole */
	for (size_t e = 0; e < NEMBED; e++)
		if (embeddings[e].v4_bit != embeddings[e].parsed.len)
			all_cidrs[nall++] = embeddings[e].parsed;
	for (size_t i = 0; i < NV4; i++)
		nall += embed_images(&v4_blocks[i].parsed, &all_cidrs[nall]);
}

size_t fb_cidr_embedded_images(const struct fb_cidr *v4,
			       struct fb_cidr out[FB_EMBED_IMAGES_MAX])
{
	_Static_assert(NEMBED <= FB_EMBED_IMAGES_MAX, "room for every form");
	pthread_once(&tables_once, build_tables);
	return embed_images(v4, out);
}

const struct fb_cidr *fb_nonpublic_cidrs(size_t *n)
{
	pthread_once(&tables_once, build_tables);
	*n = nall;
	return all_cidrs;
}

static const char *classify_v4(const struct fb_addr *a)
{
	for (size_t i = 0; i < NV4; i++)
		if (fb_cidr_contains(&v4_blocks[i].parsed, a))
			return v4_blocks[i].name;
	return NULL;
}

static void extract_v4(const struct fb_addr *a, unsigned at, uint32_t xor,
		       struct fb_addr *v4)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < 32; i++) {
		unsigned bit = at + i;

		v = v << 1 | ((a->b[bit / 8] >> (7 - bit % 8)) & 1);
	}
	v ^= xor;
	memset(v4, 0, sizeof *v4);
	v4->family = AF_INET;
	v4->b[0] = (uint8_t)(v >> 24);
	v4->b[1] = (uint8_t)(v >> 16);
	v4->b[2] = (uint8_t)(v >> 8);
	v4->b[3] = (uint8_t)v;
}

size_t fb_addr_embedded_v4(const struct fb_addr *a,
			   struct fb_addr v4[FB_EMBEDDED_V4_MAX])
{
	size_t n = 0;

	if (a->family != AF_INET6)
		return 0;
	pthread_once(&tables_once, build_tables);
	/* the forms' prefixes do not overlap: at most one matches */
	for (size_t e = 0; e < NEMBED; e++) {
		if (!fb_cidr_contains(&embeddings[e].parsed, a))
			continue;
		if (embeddings[e].server_bit)
			extract_v4(a, embeddings[e].server_bit, 0, &v4[n++]);
		extract_v4(a, embeddings[e].v4_bit, embeddings[e].v4_xor,
			   &v4[n++]);
		break;
	}
	return n;
}

static const char *classify_v6(const struct fb_addr *a,
			       const struct fb_addr *v4, size_t nv4)
{
	const char *name = NULL;

	for (size_t i = 0; i < NV6; i++)
		if (fb_cidr_contains(&v6_blocks[i].parsed, a))
			return v6_blocks[i].name;
	for (size_t i = 0; i < nv4 && !name; i++)
		name = classify_v4(&v4[i]);
	return name;
}

const char *fb_nonpublic_block_of(const struct fb_addr *a,
				  const struct fb_addr *v4, size_t nv4)
{
	pthread_once(&tables_once, build_tables);
	return a->family == AF_INET ? classify_v4(a) : classify_v6(a, v4, nv4);
}

const char *fb_nonpublic_block(const struct fb_addr *a)
{
	struct fb_addr v4[FB_EMBEDDED_V4_MAX];

	return fb_nonpublic_block_of(a, v4, fb_addr_embedded_v4(a, v4));
}

bool fb_cidr_reopens(const struct fb_cidr *c)
{
	struct fb_addr first = { .family = c->family };
	size_t n;
	const struct fb_cidr *blocks = fb_nonpublic_cidrs(&n);

	memcpy(first.b, c->b, sizeof first.b);
	for (size_t i = 0; i < n; i++)
		if (blocks[i].len <= c->len && fb_cidr_contains(&blocks[i], &first))
			return true;
	return false;
}
