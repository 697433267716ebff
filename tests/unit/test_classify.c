/*
 * test_classify.c — the built-in non-public set: first, last and middle
 * address of every block with the neighbours just outside it, IPv4 and
 * IPv6; IPv6 forms embedding IPv4; and the kernel prefix list covering
 * everything the classifier calls non-public.
 *
 * The tables below are written from the IANA registries independently of
 * policy/classify.c, so a block dropped or mistyped there shows up here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include <string.h>
#include <sys/socket.h>

#include "policy/internal.h"

#define PUBLIC ""   /* expected: globally reachable */
#define SKIP NULL   /* no neighbour on that side */

struct block {
	const char *first, *last, *name;
	const char *before, *before_name; /* the address just below */
	const char *after, *after_name;   /* the address just above */
};

static const struct block v4[] = {
	{ "0.0.0.0", "0.255.255.255", "this-network", SKIP, SKIP, "1.0.0.0", PUBLIC },
	{ "10.0.0.0", "10.255.255.255", "private-use", "9.255.255.255", PUBLIC, "11.0.0.0", PUBLIC },
	{ "100.64.0.0", "100.127.255.255", "shared-address-space", "100.63.255.255", PUBLIC, "100.128.0.0", PUBLIC },
	{ "127.0.0.0", "127.255.255.255", "loopback", "126.255.255.255", PUBLIC, "128.0.0.0", PUBLIC },
	{ "169.254.0.0", "169.254.255.255", "link-local", "169.253.255.255", PUBLIC, "169.255.0.0", PUBLIC },
	{ "172.16.0.0", "172.31.255.255", "private-use", "172.15.255.255", PUBLIC, "172.32.0.0", PUBLIC },
	{ "192.0.0.0", "192.0.0.255", "ietf-protocol-assignments", "191.255.255.255", PUBLIC, "192.0.1.0", PUBLIC },
	{ "192.0.2.0", "192.0.2.255", "documentation", "192.0.1.255", PUBLIC, "192.0.3.0", PUBLIC },
	{ "192.31.196.0", "192.31.196.255", "as112", "192.31.195.255", PUBLIC, "192.31.197.0", PUBLIC },
	{ "192.52.193.0", "192.52.193.255", "amt", "192.52.192.255", PUBLIC, "192.52.194.0", PUBLIC },
	{ "192.88.99.0", "192.88.99.255", "6to4-relay-anycast", "192.88.98.255", PUBLIC, "192.88.100.0", PUBLIC },
	{ "192.168.0.0", "192.168.255.255", "private-use", "192.167.255.255", PUBLIC, "192.169.0.0", PUBLIC },
	{ "192.175.48.0", "192.175.48.255", "as112", "192.175.47.255", PUBLIC, "192.175.49.0", PUBLIC },
	{ "198.18.0.0", "198.19.255.255", "benchmarking", "198.17.255.255", PUBLIC, "198.20.0.0", PUBLIC },
	{ "198.51.100.0", "198.51.100.255", "documentation", "198.51.99.255", PUBLIC, "198.51.101.0", PUBLIC },
	{ "203.0.113.0", "203.0.113.255", "documentation", "203.0.112.255", PUBLIC, "203.0.114.0", PUBLIC },
	{ "224.0.0.0", "239.255.255.255", "multicast", "223.255.255.255", PUBLIC, "240.0.0.0", "reserved" },
	{ "240.0.0.0", "255.255.255.254", "reserved", "239.255.255.255", "multicast", "255.255.255.255", "limited-broadcast" },
	{ "255.255.255.255", "255.255.255.255", "limited-broadcast", "255.255.255.254", "reserved", SKIP, SKIP },
};

static const struct block v6[] = {
	{ "::", "::", "unspecified", SKIP, SKIP, "::1", "loopback" },
	/* ::2 is IPv4-compatible 0.0.0.2 */
	{ "::1", "::1", "loopback", "::", "unspecified", "::2", "this-network" },
	{ "100::", "100::ffff:ffff:ffff:ffff", "discard-only",
	  "ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC, "100:0:0:1::", PUBLIC },
	{ "2001:2::", "2001:2:0:ffff:ffff:ffff:ffff:ffff", "benchmarking",
	  "2001:1:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC, "2001:2:1::", PUBLIC },
	{ "2001:10::", "2001:1f:ffff:ffff:ffff:ffff:ffff:ffff", "orchid",
	  "2001:f:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC, "2001:20::", "orchid-v2" },
	{ "2001:20::", "2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", "orchid-v2",
	  "2001:1f:ffff:ffff:ffff:ffff:ffff:ffff", "orchid", "2001:30::", PUBLIC },
	{ "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "documentation",
	  "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC, "2001:db9::", PUBLIC },
	{ "3fff::", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", "documentation",
	  "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC, "3fff:1000::", PUBLIC },
	{ "5f00::", "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "segment-routing-sids",
	  "5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC, "5f01::", PUBLIC },
	{ "fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "unique-local",
	  "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC, "fe00::", PUBLIC },
	{ "fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local",
	  "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC, "fec0::", "site-local" },
	{ "fec0::", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "site-local",
	  "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local", "ff00::", "multicast" },
	{ "ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast",
	  "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "site-local", SKIP, SKIP },
};

static struct fb_addr addr(const char *s)
{
	struct fb_addr a;

	if (fb_addr_parse(s, &a) < 0)
		fail_msg("bad address %s", s);
	return a;
}

static void expect(const struct fb_addr *a, const char *want)
{
	const char *got = fb_nonpublic_block(a);
	char text[64];

	fb_addr_format(a, text, sizeof text);
	if (!*want && got)
		fail_msg("%s: expected public, got %s", text, got);
	if (*want && (!got || strcmp(got, want)))
		fail_msg("%s: expected %s, got %s", text, want, got ? got : "public");
}

static void expect_text(const char *s, const char *want)
{
	struct fb_addr a = addr(s);

	expect(&a, want);
}

static struct fb_addr from_value(fb_u128 v, uint8_t family)
{
	struct fb_addr a = { .family = family };

	for (int i = family == AF_INET ? 3 : 15; i >= 0; i--, v >>= 8)
		a.b[i] = (uint8_t)v;
	return a;
}

static void check_blocks(const struct block *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct fb_addr first = addr(b[i].first), last = addr(b[i].last);
		fb_u128 lo = fb_addr_value(&first), hi = fb_addr_value(&last);
		struct fb_addr mid = from_value(lo + (hi - lo) / 2, first.family);

		expect(&first, b[i].name);
		expect(&last, b[i].name);
		expect(&mid, b[i].name);
		if (b[i].before)
			expect_text(b[i].before, b[i].before_name);
		if (b[i].after)
			expect_text(b[i].after, b[i].after_name);
	}
}

static void test_v4_blocks(void **state)
{
	(void)state;
	check_blocks(v4, sizeof v4 / sizeof v4[0]);
	expect_text("1.1.1.1", PUBLIC);
	expect_text("8.8.8.8", PUBLIC);
	expect_text("223.255.255.254", PUBLIC);
}

static void test_v6_blocks(void **state)
{
	(void)state;
	check_blocks(v6, sizeof v6 / sizeof v6[0]);
	expect_text("2606:4700::1111", PUBLIC);
	expect_text("2a00:1450:4001::200e", PUBLIC);
	/* globally reachable inside 2001::/23 per the registry */
	expect_text("2001:1::1", PUBLIC);
	expect_text("2001:1::2", PUBLIC);
	expect_text("2001:3::1", PUBLIC);
	expect_text("2001:4:112::1", PUBLIC);
	expect_text("2001:30::1", PUBLIC);
}

static void test_embedded_v4(void **state)
{
	(void)state;
	/* mapped */
	expect_text("::ffff:10.1.2.3", "private-use");
	expect_text("::ffff:0.0.0.0", "this-network");
	expect_text("::ffff:169.254.169.254", "link-local");
	expect_text("::ffff:8.8.8.8", PUBLIC);
	expect_text("::ffff:255.255.255.255", "limited-broadcast");
	/* compatible */
	expect_text("::127.0.0.1", "loopback");
	expect_text("::10.0.0.1", "private-use");
	expect_text("::8.8.8.8", PUBLIC);
	/* IPv4-translated (RFC 2765) */
	expect_text("::ffff:0:10.1.2.3", "private-use");
	expect_text("::ffff:0:169.254.169.254", "link-local");
	expect_text("::ffff:0:8.8.8.8", PUBLIC);
	/* NAT64, well-known and local-use prefixes */
	expect_text("64:ff9b::192.168.1.1", "private-use");
	expect_text("64:ff9b::169.254.169.254", "link-local");
	expect_text("64:ff9b::8.8.8.8", PUBLIC);
	expect_text("64:ff9b:1::10.0.0.1", "private-use");
	expect_text("64:ff9b:1:ffff:ffff::127.0.0.1", "loopback");
	expect_text("64:ff9b:1:abcd::8.8.8.8", PUBLIC);
	/* 6to4: the IPv4 address in bits 16-47 */
	expect_text("2002:a00:1::1", "private-use");
	expect_text("2002:7f00:1::", "loopback");
	expect_text("2002:a9fe:a9fe::1", "link-local");
	expect_text("2002:808:808::1", PUBLIC);
	/* Teredo, RFC 4380 §4's example: server 65.54.227.120, client
	 * 192.0.2.45 stored inverted in the last 32 bits */
	expect_text("2001:0:4136:e378:8000:63bf:3fff:fdd2", "documentation");
	expect_text("2001:0:4136:e378:8000:63bf:f7f7:f7f7", PUBLIC);
	expect_text("2001:0:a00:1:8000:63bf:f7f7:f7f7", "private-use");
	expect_text("2001:0:4136:e378::", "limited-broadcast");
	/* multicast */
	expect_text("ff02::1", "multicast");
	expect_text("224.0.0.251", "multicast");
}

static bool in_kernel_list(const struct fb_addr *a)
{
	size_t n;
	const struct fb_cidr *c = fb_nonpublic_cidrs(&n);

	for (size_t i = 0; i < n; i++)
		if (fb_cidr_contains(&c[i], a))
			return true;
	return false;
}

static void test_kernel_list_has_the_images(void **state)
{
	static const char *const in[] = {
		"10.0.0.1", "::ffff:10.0.0.1", "::10.0.0.1", "64:ff9b::a00:1",
		"2002:a00::1", "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
		"64:ff9b:1:abcd::8.8.8.8", "fe80::1", "ff02::1",
		"::ffff:255.255.255.255", "2002:ffff:ffff::",
	};
	static const char *const out[] = {
		"8.8.8.8", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::",
		"2606:4700::1111", "2001:1::1",
	};
	size_t n;
	const struct fb_cidr *c = fb_nonpublic_cidrs(&n);

	(void)state;
	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
		struct fb_addr a = addr(in[i]);

		if (!in_kernel_list(&a))
			fail_msg("%s missing from the kernel list", in[i]);
	}
	for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
		struct fb_addr a = addr(out[i]);

		if (in_kernel_list(&a))
			fail_msg("%s in the kernel list", out[i]);
	}
	/* canonical prefixes, each naming non-public space */
	for (size_t i = 0; i < n; i++) {
		struct fb_addr first = { .family = c[i].family };
		char buf[FB_CIDR_STRLEN], err[160];
		struct fb_cidr again;

		fb_cidr_format(&c[i], buf, sizeof buf);
		if (fb_cidr_parse(buf, &again, err, sizeof err) < 0)
			fail_msg("%s", err);
		memcpy(first.b, c[i].b, 16);
		if (!fb_nonpublic_block(&first))
			fail_msg("%s starts with a public address", buf);
	}
}

/*
 * Whatever the classifier calls non-public, the kernel set must hold too:
 * otherwise the proxy would refuse an address the kernel lets through.
 * Random addresses inside each embedding prefix and all of IPv4.
 */
static void test_kernel_list_covers_classifier(void **state)
{
	static const char *const prefixes[] = { "::ffff:0:0", "::", "64:ff9b::",
						"64:ff9b:1::", "2002::", "2001::" };
	static const unsigned lens[] = { 96, 96, 96, 48, 16, 32 };
	uint64_t x = 0x9e3779b97f4a7c15ull;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		for (size_t p = 0; p <= sizeof lens / sizeof lens[0]; p++) {
			uint8_t rnd[16];
			struct fb_addr a;

			for (int i = 0; i < 16; i += 8) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				memcpy(rnd + i, &x, 8);
			}
			if (p == sizeof lens / sizeof lens[0]) {
				a = (struct fb_addr){ .family = AF_INET };
				memcpy(a.b, rnd, 4);
			} else {
				a = addr(prefixes[p]);
				for (unsigned bit = lens[p]; bit < 128; bit++)
					a.b[bit / 8] |= rnd[bit / 8] & (0x80 >> (bit % 8));
				/* half the time, put 10.x.1.2 where the IPv4 part goes */
				if (round & 1)
					memcpy(&a.b[p == 4 ? 2 : 12],
					       (uint8_t[]){ 10, rnd[0], 1, 2 }, 4);
			}
			if (fb_nonpublic_block(&a) && !in_kernel_list(&a)) {
				char text[64];

				fb_addr_format(&a, text, sizeof text);
				fail_msg("%s is non-public but not in the kernel list",
					 text);
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v4_blocks),
		cmocka_unit_test(test_v6_blocks),
		cmocka_unit_test(test_embedded_v4),
		cmocka_unit_test(test_kernel_list_has_the_images),
		cmocka_unit_test(test_kernel_list_covers_classifier),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
