/*
 * test_decide.c — connection decisions through policies loaded from YAML:
 * every reason, the order address → mode → name, reopening non-public
 * ranges with subnets.allow and --public, subnets.deny over the IPv6 forms
 * that embed a denied IPv4 address, and the catch-all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include <string.h>

#include "policy/policy.h"

static struct fb_policy *load_with(const char *yaml, const char *publics)
{
	struct fb_cidr pub[4];
	struct fb_load_opts opts = { .publics = pub };
	struct fb_diags diags = { 0 };
	struct fb_policy *p;
	char err[200];

	if (publics) {
		assert_int_equal(fb_cidr_parse(publics, &pub[0], err, sizeof err), 0);
		opts.npublics = 1;
	}
	p = fb_policy_load(yaml, strlen(yaml), &opts, &diags);
	if (!p) {
		char *why = fb_diags_to_string(&diags);

		fail_msg("policy did not load:\n%s", why);
	}
	fb_diags_free(&diags);
	return p;
}

static struct fb_policy *load(const char *yaml)
{
	return load_with(yaml, NULL);
}

/*
 * Decide and compare against "VERDICT REASON KEY RULE BLOCK" (key and
 * block "-" when absent), the way `policy explain` reads.
 */
static void expect(const struct fb_policy *p, const char *name,
		   const char *ip, const char *want)
{
	struct fb_decision d;
	struct fb_addr a;
	char got[300];

	if (ip && fb_addr_parse(ip, &a) < 0)
		fail_msg("bad address %s", ip);
	fb_policy_decide(p, name, ip ? &a : NULL, &d);
	snprintf(got, sizeof got, "%s %s %s %d %s", fb_verdict_str(d.verdict),
		 fb_reason_str(d.reason), d.domain ? d.domain->pattern : "-",
		 d.rule, d.block ? d.block : "-");
	if (strcmp(got, want))
		fail_msg("%s @ %s: got \"%s\", expected \"%s\"",
			 name ? name : "(no name)", ip ? ip : "-", got, want);
}

static void expect_each(const struct fb_policy *p, const char *name,
			const char *const *ips, size_t n, const char *want)
{
	for (size_t i = 0; i < n; i++)
		expect(p, name, ips[i], want);
}

static const char custom[] =
	"allow:\n"
	"  \"*.npmjs.org\": []\n"
	"  github.com: []\n"
	"  api.openai.com:\n"
	"    - transform:\n"
	"        - headers: { authorization: \"Bearer x\" }\n"
	"subnets:\n"
	"  allow: [\"10.0.0.0/8\", \"169.254.169.254/32\", \"203.0.113.0/24\",\n"
	"          \"0.0.0.0/0\", \"::/0\"]\n"
	"  deny: [\"10.1.0.0/16\", \"8.8.4.0/24\", \"2606:4700::/32\"]\n";

static void test_address_reasons(void **state)
{
	struct fb_policy *p = load(custom);

	(void)state;
	/* subnets.deny wins over everything */
	expect(p, "github.com", "10.1.0.1", "deny denied-cidr - -1 -");
	expect(p, "github.com", "8.8.4.4", "deny denied-cidr - -1 -");
	expect(p, "github.com", "2606:4700::1111", "deny denied-cidr - -1 -");
	/* built-in non-public set: 0.0.0.0/0 and ::/0 reopen nothing */
	expect(p, "github.com", "192.168.1.1", "deny nonpublic - -1 private-use");
	expect(p, "github.com", "127.0.0.1", "deny nonpublic - -1 loopback");
	expect(p, NULL, "::1", "deny nonpublic - -1 loopback");
	expect(p, NULL, "fd00::1", "deny nonpublic - -1 unique-local");
	expect(p, NULL, "::ffff:10.0.0.1", "deny nonpublic - -1 private-use");
	expect(p, NULL, "169.254.169.253", "deny nonpublic - -1 link-local");
	/* reopened by an entry inside one block */
	expect(p, NULL, "10.2.3.4", "allow allowed-cidr - -1 -");
	expect(p, NULL, "169.254.169.254", "allow allowed-cidr - -1 -");
	expect(p, NULL, "203.0.113.9", "allow allowed-cidr - -1 -");
	/* a public address in subnets.allow bypasses the name */
	expect(p, "not-listed.org", "1.1.1.1", "allow allowed-cidr - -1 -");
	expect(p, NULL, "2a00:1450::1", "allow allowed-cidr - -1 -");
	fb_policy_unref(p);
}

static void test_check_addr_leaves_public_to_the_name(void **state)
{
	struct fb_policy *p = load("allow: [github.com]\n"
				   "subnets: { allow: [\"1.1.1.0/24\"] }\n");
	struct fb_decision d;
	struct fb_addr a;

	(void)state;
	assert_int_equal(fb_addr_parse("8.8.8.8", &a), 0);
	assert_int_equal(fb_policy_check_addr(p, &a, &d), -1);
	assert_int_equal(fb_addr_parse("1.1.1.1", &a), 0);
	assert_int_equal(fb_policy_check_addr(p, &a, &d), FB_VERDICT_ALLOW);
	assert_int_equal(d.reason, FB_REASON_ALLOWED_CIDR);
	assert_int_equal(fb_addr_parse("10.0.0.1", &a), 0);
	assert_int_equal(fb_policy_check_addr(p, &a, &d), FB_VERDICT_DENY);
	assert_string_equal(d.block, "private-use");
	expect(p, "github.com", "8.8.8.8", "allow domain github.com -1 -");
	expect(p, "gitlab.com", "8.8.8.8", "deny not-allowed - -1 -");
	fb_policy_unref(p);
}

static void test_name_reasons(void **state)
{
	struct fb_policy *p = load(custom);

	(void)state;
	expect(p, "github.com", NULL, "allow domain github.com -1 -");
	expect(p, "registry.npmjs.org", NULL, "allow domain *.npmjs.org -1 -");
	expect(p, "npmjs.org", NULL, "deny not-allowed - -1 -");
	expect(p, "api.openai.com", NULL, "broker domain api.openai.com -1 -");
	expect(p, NULL, NULL, "deny no-name - -1 -");
	assert_string_equal(fb_policy_lookup(p, "a.b.npmjs.org")->pattern,
			    "*.npmjs.org");
	assert_null(fb_policy_lookup(p, "gitlab.com"));
	assert_null(fb_policy_lookup(p, NULL));
	fb_policy_unref(p);
}

static void test_catch_all(void **state)
{
	struct fb_policy *p = load("allow:\n"
				   "  \"*\":\n"
				   "    - transform:\n"
				   "        - headers: { x-foo: bar }\n"
				   "  github.com: []\n");

	(void)state;
	/* "*" with rules brokers named traffic... */
	expect(p, "example.org", NULL, "broker catch-all * -1 -");
	/* ...but domain-less traffic has no name to broker: spliced */
	expect(p, NULL, "8.8.8.8", "allow catch-all * -1 -");
	expect(p, NULL, NULL, "allow catch-all * -1 -");
	/* a more specific key keeps its own (empty) rule list */
	expect(p, "github.com", NULL, "allow domain github.com -1 -");
	/* the catch-all does not open non-public addresses */
	expect(p, NULL, "10.0.0.1", "deny nonpublic - -1 private-use");
	fb_policy_unref(p);

	p = load("allow: [\"*\"]\n");
	expect(p, "anything.example", NULL, "allow catch-all * -1 -");
	expect(p, NULL, "1.1.1.1", "allow catch-all * -1 -");
	fb_policy_unref(p);
}

static void test_modes(void **state)
{
	struct fb_policy *p = load("allow-all");

	(void)state;
	expect(p, "example.org", "8.8.8.8", "allow allow-all - -1 -");
	expect(p, NULL, "8.8.8.8", "allow allow-all - -1 -");
	/* the whole public internet, not the private networks */
	expect(p, NULL, "169.254.169.254", "deny nonpublic - -1 link-local");
	expect(p, "example.org", "::ffff:192.168.0.1",
	       "deny nonpublic - -1 private-use");
	expect(p, NULL, "64:ff9b::7f00:1", "deny nonpublic - -1 loopback");
	fb_policy_unref(p);

	p = load("deny-all");
	expect(p, "example.org", "8.8.8.8", "deny deny-all - -1 -");
	expect(p, NULL, NULL, "deny deny-all - -1 -");
	fb_policy_unref(p);
}

static void test_public_override(void **state)
{
	struct fb_policy *p = load_with("allow: [github.com]\n", "10.0.0.0/8");

	(void)state;
	/* declared public: decided by name like any internet address */
	expect(p, "github.com", "10.9.9.9", "allow domain github.com -1 -");
	expect(p, "gitlab.com", "10.9.9.9", "deny not-allowed - -1 -");
	/* only that range */
	expect(p, "github.com", "192.168.1.1", "deny nonpublic - -1 private-use");
	/* matched as dialled, like the kernel set: the mapped form stays closed */
	expect(p, "github.com", "::ffff:10.9.9.9",
	       "deny nonpublic - -1 private-use");
	fb_policy_unref(p);

	/* subnets.deny still wins over --public */
	p = load_with("allow: [github.com]\n"
		      "subnets: { deny: [\"10.9.0.0/16\"] }\n", "10.0.0.0/8");
	expect(p, "github.com", "10.9.9.9", "deny denied-cidr - -1 -");
	fb_policy_unref(p);
}

static void test_reopen_needs_one_block(void **state)
{
	/* 172.16.0.0/11 spans private 172.16/12 and public 172.0/12 */
	struct fb_policy *p = load("allow: []\n"
				   "subnets:\n"
				   "  allow: [\"172.0.0.0/11\", \"fe80::/10\",\n"
				   "          \"::ffff:127.0.0.0/104\"]\n");

	(void)state;
	expect(p, NULL, "172.16.0.1", "deny nonpublic - -1 private-use");
	expect(p, NULL, "172.1.0.1", "allow allowed-cidr - -1 -");
	expect(p, NULL, "fe80::1", "allow allowed-cidr - -1 -");
	expect(p, NULL, "::ffff:127.0.0.1", "allow allowed-cidr - -1 -");
	expect(p, NULL, "127.0.0.1", "deny nonpublic - -1 loopback");
	fb_policy_unref(p);
}

/*
 * Every IPv6 form that embeds 8.8.8.10: a translator or tunnel delivers
 * each to it, so subnets.deny covers them all.  Teredo carries two IPv4
 * addresses (server at bit 32, client inverted in the last 32 bits):
 * either being denied denies it.  Server 65.54.227.120 and client
 * 1.2.3.4 (inverted fefd:fcfb) are public and not denied.
 */
static const char *const embeds_denied[] = {
	"::ffff:8.8.8.10",				/* mapped */
	"::8.8.8.10",					/* compatible */
	"::ffff:0:808:80a",				/* translated */
	"64:ff9b::808:80a",				/* NAT64 */
	"64:ff9b:1:abcd::808:80a",			/* NAT64, local use */
	"2002:808:80a::1",				/* 6to4 */
	"2002:808:80a:ffff:ffff:ffff:ffff:ffff",
	"2001:0:4136:e378:8000:63bf:f7f7:f7f5",		/* Teredo client */
	"2001:0:808:80a:8000:63bf:fefd:fcfb",		/* Teredo server */
};
#define NEMBEDS_DENIED (sizeof embeds_denied / sizeof *embeds_denied)

/* Plain IPv6 addresses that look like those but embed nothing. */
static const char *const embeds_nothing[] = {
	"::fffe:808:80a",		/* neither mapped nor compatible */
	"::1:0:808:80a",
	"::fffe:0:808:80a",		/* beside ::ffff:0:0:0/96 */
	"64:ff9b:0:1::808:80a",		/* beside 64:ff9b::/96 and :1::/48 */
	"64:ff9c::808:80a",
	"2003:808:80a::1",		/* beside 2002::/16 */
	"2001:1:808:80a::f7f7:f7f5",	/* beside 2001::/32 */
	"808:80a::",
};

static void test_deny_covers_embedded_forms(void **state)
{
	struct fb_policy *p = load("allow: [\"*\"]\n"
				   "subnets: { deny: [\"8.8.8.10/32\"] }\n");
	struct fb_decision d;
	struct fb_addr a;

	(void)state;
	expect(p, NULL, "8.8.8.10", "deny denied-cidr - -1 -");
	expect_each(p, NULL, embeds_denied, NEMBEDS_DENIED,
		    "deny denied-cidr - -1 -");
	/* the check the proxy makes on every address it dials */
	for (size_t i = 0; i < NEMBEDS_DENIED; i++) {
		assert_int_equal(fb_addr_parse(embeds_denied[i], &a), 0);
		assert_int_equal(fb_policy_check_addr(p, &a, &d), FB_VERDICT_DENY);
	}
	expect_each(p, NULL, embeds_nothing,
		    sizeof embeds_nothing / sizeof *embeds_nothing,
		    "allow catch-all * -1 -");
	/* the neighbours of the denied address stay open in every form */
	expect(p, NULL, "::ffff:8.8.8.11", "allow catch-all * -1 -");
	expect(p, NULL, "64:ff9b::808:809", "allow catch-all * -1 -");
	expect(p, NULL, "2002:808:80b::1", "allow catch-all * -1 -");
	expect(p, NULL, "2001:0:4136:e378:8000:63bf:f7f7:f7f4",
	       "allow catch-all * -1 -");
	fb_policy_unref(p);

	/* denying all of IPv4 denies every embedded form, and no other IPv6 */
	p = load("allow: [\"*\"]\nsubnets: { deny: [\"0.0.0.0/0\"] }\n");
	expect_each(p, NULL, embeds_denied, NEMBEDS_DENIED,
		    "deny denied-cidr - -1 -");
	expect(p, NULL, "2a00:1450::1", "allow catch-all * -1 -");
	fb_policy_unref(p);
}

static void test_allow_never_reopens_embedded_deny(void **state)
{
	/* IPv6 entries that cover every embedding form, and 8/8 itself */
	struct fb_policy *p = load("allow: [github.com]\n"
				   "subnets:\n"
				   "  allow: [\"8.0.0.0/8\", \"::/0\", \"::ffff:0:0/96\",\n"
				   "          \"::/96\", \"64:ff9b::/96\",\n"
				   "          \"64:ff9b:1::/48\", \"2002::/16\",\n"
				   "          \"2001::/32\"]\n"
				   "  deny: [\"8.8.8.10/32\"]\n");

	(void)state;
	expect_each(p, "github.com", embeds_denied, NEMBEDS_DENIED,
		    "deny denied-cidr - -1 -");
	fb_policy_unref(p);

	/*
	 * subnets.allow matches the address as written: 8.8.8.0/24 lets
	 * 8.8.8.1 in by address, but its mapped form is left to the name.
	 */
	p = load("allow: [github.com]\n"
		 "subnets: { allow: [\"8.8.8.0/24\"] }\n");
	expect(p, NULL, "8.8.8.1", "allow allowed-cidr - -1 -");
	expect(p, NULL, "::ffff:8.8.8.1", "deny no-name - -1 -");
	expect(p, "github.com", "::ffff:8.8.8.1", "allow domain github.com -1 -");
	fb_policy_unref(p);
}

static void test_strings(void **state)
{
	static const char *const verdicts[] = { "deny", "allow", "broker",
						"forward", "respond" };
	static const char *const reasons[] = {
		"denied-cidr", "nonpublic", "allowed-cidr", "deny-all",
		"allow-all", "no-name", "catch-all", "domain", "not-allowed",
		"rule", "no-rule",
	};

	(void)state;
	for (int i = 0; i < 5; i++)
		assert_string_equal(fb_verdict_str((enum fb_verdict)i), verdicts[i]);
	for (int i = 0; i < 11; i++)
		assert_string_equal(fb_reason_str((enum fb_reason)i), reasons[i]);
	assert_string_equal(fb_reason_str((enum fb_reason)99), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address_reasons),
		cmocka_unit_test(test_check_addr_leaves_public_to_the_name),
		cmocka_unit_test(test_name_reasons),
		cmocka_unit_test(test_catch_all),
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_public_override),
		cmocka_unit_test(test_reopen_needs_one_block),
		cmocka_unit_test(test_deny_covers_embedded_forms),
		cmocka_unit_test(test_allow_never_reopens_embedded_deny),
		cmocka_unit_test(test_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
