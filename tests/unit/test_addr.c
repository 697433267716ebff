/*
 * test_addr.c — address and CIDR parsing with their exact error messages,
 * containment, and the kernel deny/allow ranges as merged intervals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "policy/internal.h"

static struct fb_cidr cidr(const char *s)
{
	struct fb_cidr c;
	char err[200];

	if (fb_cidr_parse(s, &c, err, sizeof err) < 0)
		fail_msg("%s: %s", s, err);
	return c;
}

static struct fb_addr addr(const char *s)
{
	struct fb_addr a;

	if (fb_addr_parse(s, &a) < 0)
		fail_msg("bad address %s", s);
	return a;
}

static void assert_cidr_error(const char *text, const char *want)
{
	struct fb_cidr c;
	char err[200] = "";

	assert_int_equal(fb_cidr_parse(text, &c, err, sizeof err), -1);
	assert_string_equal(err, want);
}

static void test_addr_parse_format(void **state)
{
	static const char *const ok[] = { "0.0.0.0", "10.1.2.3",
					  "255.255.255.255", "::", "::1",
					  "2001:db8::1", "::ffff:10.0.0.1" };
	static const char *const bad[] = { "", "1.2.3", "1.2.3.4.5", "256.0.0.1",
					   "01.2.3.4", "1.2.3.4 ", "[::1]",
					   "fe80::1%eth0", "::g", "example.com" };
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		struct fb_addr a = addr(ok[i]);

		fb_addr_format(&a, buf, sizeof buf);
		assert_string_equal(buf, ok[i]);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct fb_addr a;

		if (fb_addr_parse(bad[i], &a) == 0)
			fail_msg("\"%s\" accepted", bad[i]);
	}
}

/* Address and port as listen and resolver options spell them. */
/* Equal: same family and the family's bytes; an IPv4 address's unused
 * bytes never count. */
static void test_addr_equal(void **state)
{
	struct fb_addr a, b, c;

	(void)state;
	assert_int_equal(fb_addr_parse("192.0.2.1", &a), 0);
	assert_int_equal(fb_addr_parse("192.0.2.1", &b), 0);
	b.b[10] = 0xff; /* beyond an IPv4 address */
	assert_true(fb_addr_equal(&a, &b));
	assert_int_equal(fb_addr_parse("192.0.2.2", &b), 0);
	assert_false(fb_addr_equal(&a, &b));
	assert_int_equal(fb_addr_parse("::ffff:192.0.2.1", &c), 0);
	assert_false(fb_addr_equal(&a, &c));
	assert_int_equal(fb_addr_parse("2001:db8::1", &a), 0);
	assert_int_equal(fb_addr_parse("2001:db8::1", &b), 0);
	assert_true(fb_addr_equal(&a, &b));
	assert_int_equal(fb_addr_parse("2001:db8::2", &b), 0);
	assert_false(fb_addr_equal(&a, &b));
}

static void test_addr_port_parse(void **state)
{
	static const struct {
		const char *text;
		const char *addr; /* NULL: refused */
		int port;
	} cases[] = {
		{ "192.0.2.1:53", "192.0.2.1", 53 },
		{ "192.0.2.1", "192.0.2.1", -1 },
		{ "192.0.2.1:0", "192.0.2.1", 0 },
		{ "192.0.2.1:65535", "192.0.2.1", 65535 },
		{ "[2001:db8::1]:5353", "2001:db8::1", 5353 },
		{ "[2001:db8::1]", "2001:db8::1", -1 },
		{ "2001:db8::1", "2001:db8::1", -1 },
		{ "::1:53", "::1:53", -1 }, /* IPv6 whole: no port split off */
		{ "192.0.2.1:", NULL, 0 },
		{ "192.0.2.1:65536", NULL, 0 },
		{ "192.0.2.1:000053", NULL, 0 },
		{ "192.0.2.1:+53", NULL, 0 },
		{ "192.0.2.1: 53", NULL, 0 },
		{ "192.0.2.1:53x", NULL, 0 },
		{ "[2001:db8::1]53", NULL, 0 },
		{ "[2001:db8::1", NULL, 0 },
		{ "[192.0.2.1]:53", "192.0.2.1", 53 },
		{ "dns.example:53", NULL, 0 },
		{ ":53", NULL, 0 },
		{ "", NULL, 0 },
	};
	struct sockaddr_storage ss;
	struct fb_addr a, want, back;
	int port;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = fb_addr_port_parse(cases[i].text, &a, &port);

		if (!cases[i].addr) {
			if (rc == 0)
				fail_msg("\"%s\" accepted", cases[i].text);
			continue;
		}
		if (rc < 0)
			fail_msg("\"%s\" refused", cases[i].text);
		assert_int_equal(fb_addr_parse(cases[i].addr, &want), 0);
		assert_memory_equal(&a, &want, sizeof(a));
		assert_int_equal(port, cases[i].port);
	}
	assert_int_equal(fb_addr_port_parse("[2001:db8::1]:443", &a, &port), 0);
	assert_int_equal(fb_addr_to_sockaddr(&a, (uint16_t)port, &ss),
			 sizeof(struct sockaddr_in6));
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 443);
	assert_memory_equal(&((struct sockaddr_in6 *)&ss)->sin6_addr, a.b, 16);
	assert_int_equal(fb_addr_port_parse("192.0.2.7:80", &a, &port), 0);
	assert_int_equal(fb_addr_to_sockaddr(&a, (uint16_t)port, &ss),
			 sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 80);
	assert_memory_equal(&((struct sockaddr_in *)&ss)->sin_addr, a.b, 4);

	/* and back: the same address and port from either family */
	assert_int_equal(fb_addr_from_sockaddr(&ss, &back), 80);
	assert_memory_equal(&back, &a, sizeof(a));
	assert_int_equal(fb_addr_port_parse("[2001:db8::1]:443", &a, &port), 0);
	fb_addr_to_sockaddr(&a, (uint16_t)port, &ss);
	assert_int_equal(fb_addr_from_sockaddr(&ss, &back), 443);
	assert_memory_equal(&back, &a, sizeof(a));
	ss.ss_family = AF_UNIX;
	assert_int_equal(fb_addr_from_sockaddr(&ss, &back), 0);
	assert_int_equal(back.family, 0);
}

static void test_cidr_parse_format(void **state)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "10.0.0.0/8", "10.0.0.0/8" },
		{ "10.1.2.3", "10.1.2.3/32" },
		{ "0.0.0.0/0", "0.0.0.0/0" },
		{ "::/0", "::/0" },
		{ "2001:DB8::/32", "2001:db8::/32" },
		{ "::1", "::1/128" },
		{ "169.254.169.254/32", "169.254.169.254/32" },
		{ "192.168.128.0/17", "192.168.128.0/17" },
	};
	char buf[FB_CIDR_STRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fb_cidr c = cidr(cases[i].in);

		fb_cidr_format(&c, buf, sizeof buf);
		assert_string_equal(buf, cases[i].out);
	}
}

static void test_cidr_errors(void **state)
{
	(void)state;
	assert_cidr_error("10.0.0.1/8",
			  "host bits set in \"10.0.0.1/8\" (did you mean 10.0.0.0/8?)");
	assert_cidr_error("192.168.1.1/17",
			  "host bits set in \"192.168.1.1/17\" (did you mean 192.168.0.0/17?)");
	assert_cidr_error("2001:db8::1/32",
			  "host bits set in \"2001:db8::1/32\" (did you mean 2001:db8::/32?)");
	assert_cidr_error("10.0.0.0/33",
			  "prefix length 33 out of range 0-32 in \"10.0.0.0/33\"");
	assert_cidr_error("::/129",
			  "prefix length 129 out of range 0-128 in \"::/129\"");
	assert_cidr_error("10.0.0.0/x",
			  "invalid prefix length \"x\" in \"10.0.0.0/x\" (expected 0-32)");
	assert_cidr_error("10.0.0.0/",
			  "invalid prefix length \"\" in \"10.0.0.0/\" (expected 0-32)");
	assert_cidr_error("10.0.0.0/08",
			  "invalid prefix length \"08\" in \"10.0.0.0/08\" (expected 0-32)");
	assert_cidr_error("10.0.0.0/-1",
			  "invalid prefix length \"-1\" in \"10.0.0.0/-1\" (expected 0-32)");
	assert_cidr_error("10.0.0.0/8 ",
			  "invalid prefix length \"8 \" in \"10.0.0.0/8 \" (expected 0-32)");
	assert_cidr_error("::/1280",
			  "invalid prefix length \"1280\" in \"::/1280\" (expected 0-128)");
	assert_cidr_error("garbage",
			  "invalid address \"garbage\" in \"garbage\" (expected IPv4 or IPv6, like 10.0.0.0/8 or 2001:db8::/32)");
	assert_cidr_error("10.0.0/8",
			  "invalid address \"10.0.0\" in \"10.0.0/8\" (expected IPv4 or IPv6, like 10.0.0.0/8 or 2001:db8::/32)");
	assert_cidr_error("", "empty CIDR");
}

static void test_cidr_contains(void **state)
{
	struct fb_cidr c8 = cidr("10.0.0.0/8"), c17 = cidr("192.168.128.0/17");
	struct fb_cidr all4 = cidr("0.0.0.0/0"), all6 = cidr("::/0");
	struct fb_cidr doc6 = cidr("2001:db8::/32");
	struct fb_addr v4 = addr("10.0.0.1");

	(void)state;
	assert_true(fb_cidr_contains(&c8, &v4));
	assert_true(fb_cidr_contains(&c8, &(struct fb_addr){ 0 }) == false);
	v4 = addr("10.255.255.255");
	assert_true(fb_cidr_contains(&c8, &v4));
	v4 = addr("11.0.0.0");
	assert_false(fb_cidr_contains(&c8, &v4));
	v4 = addr("192.168.128.0");
	assert_true(fb_cidr_contains(&c17, &v4));
	v4 = addr("192.168.127.255");
	assert_false(fb_cidr_contains(&c17, &v4));
	assert_true(fb_cidr_contains(&all4, &v4));
	assert_false(fb_cidr_contains(&all6, &v4));
	v4 = addr("2001:db8:ffff::1");
	assert_true(fb_cidr_contains(&doc6, &v4));
	assert_true(fb_cidr_contains(&all6, &v4));
	v4 = addr("2001:db9::");
	assert_false(fb_cidr_contains(&doc6, &v4));
}

/* ------------------------------------------------------------------ */

static void assert_range(const struct fb_range *r, const char *lo,
			 const char *hi)
{
	struct fb_addr a = { .family = r->family }, b = { .family = r->family };
	char l[64], h[64];

	memcpy(a.b, r->lo, 16);
	memcpy(b.b, r->hi, 16);
	fb_addr_format(&a, l, sizeof l);
	fb_addr_format(&b, h, sizeof h);
	if (strcmp(l, lo) || strcmp(h, hi))
		fail_msg("range %s-%s, expected %s-%s", l, h, lo, hi);
}

static struct fb_range *find_range(struct fb_range *r, size_t n,
				   const char *inside)
{
	struct fb_addr a = addr(inside);
	fb_u128 x = fb_addr_value(&a);

	for (size_t i = 0; i < n; i++) {
		struct fb_addr lo = { .family = r[i].family }, hi = lo;

		memcpy(lo.b, r[i].lo, 16);
		memcpy(hi.b, r[i].hi, 16);
		if (r[i].family == a.family && fb_addr_value(&lo) <= x &&
		    x <= fb_addr_value(&hi))
			return &r[i];
	}
	return NULL;
}

static void assert_sorted_disjoint(const struct fb_range *r, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct fb_addr prev = { .family = r[i - 1].family };
		struct fb_addr next = { .family = r[i].family };

		if (r[i].family != r[i - 1].family) {
			assert_int_equal(r[i - 1].family, AF_INET);
			continue;
		}
		memcpy(prev.b, r[i - 1].hi, 16);
		memcpy(next.b, r[i].lo, 16);
		/* disjoint and not even adjacent: merged */
		assert_true(fb_addr_value(&prev) + 1 < fb_addr_value(&next));
	}
}

static void test_deny_ranges(void **state)
{
	struct fb_cidr allow[] = { cidr("10.0.0.0/8"), cidr("169.254.169.254/32"),
				   cidr("0.0.0.0/0"), cidr("::/0") };
	struct fb_cidr deny[] = { cidr("10.1.0.0/16"), cidr("8.8.8.0/24"),
				  cidr("8.8.9.0/24"), cidr("2606:4700::/32") };
	struct fb_cidr pub[] = { cidr("100.64.0.0/10") };
	struct fb_policy p = {
		.mode = FB_MODE_CUSTOM,
		.subnets = { allow, deny }, .nsubnets = { 4, 4 },
		.publics = pub, .npublics = 1,
	};
	struct fb_range *r;
	size_t n;

	(void)state;
	assert_int_equal(fb_policy_deny_ranges(&p, &r, &n), 0);
	assert_sorted_disjoint(r, n);
	/* 10/8 reopened, but its 10.1/16 denied */
	assert_null(find_range(r, n, "10.0.0.1"));
	assert_range(find_range(r, n, "10.1.0.0"), "10.1.0.0", "10.1.255.255");
	/* adjacent denials merge */
	assert_range(find_range(r, n, "8.8.8.8"), "8.8.8.0", "8.8.9.255");
	/* metadata reopened alone: its neighbours stay closed */
	assert_null(find_range(r, n, "169.254.169.254"));
	assert_range(find_range(r, n, "169.254.0.1"), "169.254.0.0",
		     "169.254.169.253");
	assert_range(find_range(r, n, "169.254.169.255"), "169.254.169.255",
		     "169.254.255.255");
	/* --public */
	assert_null(find_range(r, n, "100.64.0.1"));
	/* 0.0.0.0/0 and ::/0 reopen nothing non-public */
	assert_non_null(find_range(r, n, "127.0.0.1"));
	assert_non_null(find_range(r, n, "192.168.1.1"));
	assert_non_null(find_range(r, n, "::1"));
	assert_non_null(find_range(r, n, "fe80::1"));
	/* embedded images; mapped 10/8 is not reopened by 10.0.0.0/8 */
	assert_non_null(find_range(r, n, "::ffff:10.0.0.1"));
	assert_range(find_range(r, n, "2002:7f00::1"), "2002:7f00::",
		     "2002:7fff:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_range(find_range(r, n, "2001::1"), "2001::",
		     "2001:0:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_non_null(find_range(r, n, "2606:4700::1"));
	assert_null(find_range(r, n, "1.1.1.1"));
	assert_null(find_range(r, n, "2a00:1450::1"));
	free(r);
}

static void test_allow_ranges(void **state)
{
	struct fb_cidr allow[] = { cidr("10.0.0.0/8"), cidr("0.0.0.0/0"),
				   cidr("2001:db8::/32") };
	struct fb_cidr deny[] = { cidr("10.1.0.0/16"), cidr("8.8.8.0/24") };
	struct fb_policy p = {
		.mode = FB_MODE_CUSTOM,
		.subnets = { allow, deny }, .nsubnets = { 3, 2 },
	};
	struct fb_range *r;
	size_t n;

	(void)state;
	assert_int_equal(fb_policy_allow_ranges(&p, &r, &n), 0);
	assert_sorted_disjoint(r, n);
	assert_non_null(find_range(r, n, "10.0.0.1"));
	assert_null(find_range(r, n, "10.1.2.3"));
	assert_null(find_range(r, n, "8.8.8.8"));
	assert_null(find_range(r, n, "127.0.0.1"));
	assert_range(find_range(r, n, "1.1.1.1"), "1.0.0.0", "8.8.7.255");
	/* 10/8 is reopened, so it joins its public neighbour below */
	assert_range(find_range(r, n, "8.8.9.0"), "8.8.9.0", "10.0.255.255");
	assert_range(find_range(r, n, "10.2.0.0"), "10.2.0.0", "100.63.255.255");
	/* documentation space is non-public and 2001:db8::/32 lies in it */
	assert_range(find_range(r, n, "2001:db8::1"), "2001:db8::",
		     "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
	free(r);
}

/* A flow the allow set forwards by address cannot reach a denied IPv4
 * address in an IPv6 form: mapped, compatible, translated, NAT64 or 6to4. */
static void test_deny_covers_embedded_forms(void **state)
{
	struct fb_cidr allow[] = { cidr("::/0") };
	struct fb_cidr deny[] = { cidr("8.8.8.8/32") };
	struct fb_policy p = {
		.mode = FB_MODE_CUSTOM,
		.subnets = { allow, deny }, .nsubnets = { 1, 1 },
	};
	static const char *const denied[] = {
		"::ffff:8.8.8.8", "::8.8.8.8", "::ffff:0:8.8.8.8",
		"64:ff9b::808:808", "2002:808:808::1", "2002:808:808:ffff::1",
	};
	static const char *const allowed[] = {
		"::ffff:8.8.8.9", "::ffff:0:8.8.8.9", "64:ff9b::808:809", "2002:808:809::1",
		"2a00:1450::1",
	};
	struct fb_range *r;
	size_t n;

	(void)state;
	assert_int_equal(fb_policy_allow_ranges(&p, &r, &n), 0);
	assert_sorted_disjoint(r, n);
	for (size_t i = 0; i < sizeof(denied) / sizeof(*denied); i++)
		if (find_range(r, n, denied[i]))
			fail_msg("%s is in the allow set", denied[i]);
	for (size_t i = 0; i < sizeof(allowed) / sizeof(*allowed); i++)
		if (!find_range(r, n, allowed[i]))
			fail_msg("%s is not in the allow set", allowed[i]);
	free(r);
	assert_int_equal(fb_policy_deny_ranges(&p, &r, &n), 0);
	for (size_t i = 0; i < sizeof(denied) / sizeof(*denied); i++)
		if (!find_range(r, n, denied[i]))
			fail_msg("%s is not in the deny set", denied[i]);
	free(r);
}

static void test_empty_policy_ranges(void **state)
{
	struct fb_policy p = { .mode = FB_MODE_DENY_ALL };
	struct fb_range *r;
	size_t n, ncidrs;

	(void)state;
	assert_int_equal(fb_policy_allow_ranges(&p, &r, &n), 0);
	assert_int_equal(n, 0);
	free(r);
	assert_int_equal(fb_policy_deny_ranges(&p, &r, &n), 0);
	fb_nonpublic_cidrs(&ncidrs);
	assert_true(n > 10 && n <= ncidrs);
	assert_sorted_disjoint(r, n);
	free(r);
}

/* 100 000 prefixes merge in well under a second even under ASan. */
static void test_many_cidrs(void **state)
{
	size_t n = 100000;
	struct fb_cidr *deny = calloc(n, sizeof *deny);
	struct fb_policy p = { .mode = FB_MODE_CUSTOM };
	struct fb_range *r;
	size_t nr;

	(void)state;
	assert_non_null(deny);
	for (size_t i = 0; i < n; i++) {
		/* every other /24 from 11.0.0.0 up: nothing merges */
		uint32_t v = 0x0b000000u + (uint32_t)(i * 2) * 256;

		deny[i] = (struct fb_cidr){ .family = AF_INET, .len = 24,
					    .b = { v >> 24, v >> 16 & 0xff, v >> 8 & 0xff } };
	}
	p.subnets[1] = deny;
	p.nsubnets[1] = n;
	assert_int_equal(fb_policy_deny_ranges(&p, &r, &nr), 0);
	assert_sorted_disjoint(r, nr);
	assert_non_null(find_range(r, nr, "11.0.0.1"));
	assert_null(find_range(r, nr, "11.0.1.1"));
	free(r);
	free(deny);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_parse_format),
		cmocka_unit_test(test_addr_equal),
		cmocka_unit_test(test_addr_port_parse),
		cmocka_unit_test(test_cidr_parse_format),
		cmocka_unit_test(test_cidr_errors),
		cmocka_unit_test(test_cidr_contains),
		cmocka_unit_test(test_deny_ranges),
		cmocka_unit_test(test_allow_ranges),
		cmocka_unit_test(test_deny_covers_embedded_forms),
		cmocka_unit_test(test_empty_policy_ranges),
		cmocka_unit_test(test_many_cidrs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
