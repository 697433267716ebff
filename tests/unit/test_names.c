/*
 * test_names.c — name normalisation, allow-key patterns, and which key
 * the compiled index picks: Vercel's wildcard table row by row, and the
 * precedence between exact keys, wildcards and "*".
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include <string.h>

#include "policy/internal.h"
#include "tests/lib/name_oracle.h"

static void assert_name(const char *in, const char *want)
{
	char out[FB_NAME_MAX];
	const char *why = NULL;

	if (fb_name_normalize(in, strlen(in), out, &why) < 0)
		fail_msg("\"%s\": %s", in, why);
	assert_string_equal(out, want);
}

static void assert_bad_name(const char *in, const char *want_why)
{
	char out[FB_NAME_MAX];
	const char *why = NULL;

	if (fb_name_normalize(in, strlen(in), out, &why) == 0)
		fail_msg("\"%s\" accepted as \"%s\"", in, out);
	assert_non_null(strstr(why, want_why));
}

static void test_case_dot_idn(void **state)
{
	(void)state;
	assert_name("Example.COM", "example.com");
	assert_name("example.com.", "example.com");
	assert_name("bücher.example", "xn--bcher-kva.example");
	assert_name("BÜCHER.example.", "xn--bcher-kva.example");
	assert_name("xn--bcher-kva.example", "xn--bcher-kva.example");
	assert_name("a-b.c0", "a-b.c0");
	assert_bad_name("example.com..", "empty label");
	assert_bad_name("", "empty name");
	assert_bad_name(".", "empty name");
	assert_bad_name("a..b", "empty label");
	assert_bad_name("-a.com", "hyphen");
	assert_bad_name("a-.com", "hyphen");
	assert_bad_name("a_b.com", "invalid character");
	assert_bad_name("a b.com", "invalid character");
	assert_bad_name("*.example.com", "\"*\" in a name");
}

/*
 * The one-pass check takes only names that are canonical already, and
 * what it takes, the full path makes of the upper-cased name: the same.
 * It leaves the rest, errors and numbers included, to the full path.
 */
static void assert_canonical(const char *in, bool wild, bool want)
{
	char upper[FB_NAME_MAX], out[FB_NAME_MAX];
	const char *why = NULL;
	size_t len = strlen(in);
	int rc;

	char *exact = malloc(len ? len : 1); /* no NUL: a read past it shows */

	assert_non_null(exact);
	memcpy(exact, in, len);
	if (fb_name_canonical(exact, len, wild) != want)
		fail_msg("\"%s\" (%s): canonical %s", in, wild ? "pattern" : "name",
			 want ? "no" : "yes");
	free(exact);
	if (!want)
		return;
	for (size_t i = 0; i <= len; i++)
		upper[i] = (char)toupper((unsigned char)in[i]);
	rc = wild ? fb_pattern_normalize(upper, len, out, &why)
		  : fb_name_normalize(upper, len, out, &why);
	if (rc < 0)
		fail_msg("\"%s\": %s", upper, why);
	assert_string_equal(out, in);
}

static void test_canonical_fast_path(void **state)
{
	static const char l63[] =
		"a23456789012345678901234567890123456789012345678901234567890123";
	char n253[254], n254[255];

	(void)state;
	assert_canonical("example.com", false, true);
	assert_canonical("a-b.c0", false, true);
	assert_canonical("xn--bcher-kva.example", false, true);
	assert_canonical("h9-a.rules.example", false, true);
	assert_canonical(l63, false, true);
	assert_canonical("*.example.com", true, true);
	assert_canonical("www.*.com", true, true);
	assert_canonical("example.*", true, true);
	/* for the full path: */
	assert_canonical("Example.com", false, false);   /* upper case */
	assert_canonical("*.example.com", false, false); /* "*" in a name */
	assert_canonical("api*.example.com", true, false);
	assert_canonical("*api.example.com", true, false);
	assert_canonical("**.example.com", true, false);
	assert_canonical("a..b", false, false);
	assert_canonical(".a", false, false);
	assert_canonical("a.", false, false);
	assert_canonical("*.a.", true, false);
	assert_canonical("", false, false);
	assert_canonical("-a.com", false, false);
	assert_canonical("a-.com", false, false);
	assert_canonical("a.-", false, false);
	assert_canonical("a_b.com", false, false);
	assert_canonical("b\xc3\xbc" "cher.example", false, false);
	assert_canonical("10.0.0.1", false, false);
	assert_canonical("host.0x7f", false, false);
	assert_canonical("host.1a", false, false); /* a digit first: left to the full path */
	assert_canonical("a.a23456789012345678901234567890123456789012345678901234567890123x",
			 false, false); /* a 64-octet label */
	memset(n253, 'a', 253);
	for (int i = 63; i < 253; i += 64)
		n253[i] = '.';
	n253[253] = '\0';
	assert_canonical(n253, false, true);
	memcpy(n254, n253, 253);
	strcpy(n254 + 253, "a");
	assert_canonical(n254, false, false);
	assert_int_equal(fb_name_canonical("a\0b", 3, false), false);
}

static void test_ip_literal_is_not_a_name(void **state)
{
	(void)state;
	assert_bad_name("10.0.0.1", "IP address");
	assert_bad_name("127.1", "IP address");
	assert_bad_name("0x7f.1", "IP address");
	/* WHATWG reads a last label "0x" as the number 0 */
	assert_bad_name("10.0.0.0x", "IP address");
	assert_bad_name("10.0.0.0X.", "IP address");
	assert_bad_name("a.0xff", "IP address");
	assert_name("a.0xg", "a.0xg");
	assert_name("0x7f.example", "0x7f.example");
	assert_bad_name("::1", "invalid character");
	assert_bad_name("[::1]", "invalid character");
	assert_name("1.example.com", "1.example.com");
}

static void test_length_limits(void **state)
{
	char label[80], name[300];

	(void)state;
	memset(label, 'a', 63);
	strcpy(label + 63, ".com");
	assert_name(label, label);
	memset(label, 'a', 64);
	strcpy(label + 64, ".com");
	assert_bad_name(label, "label longer than 63");

	/* 4 x 63 + 1 = 253 octets: the longest name */
	for (int i = 0; i < 4; i++) {
		memset(name + i * 64, i == 3 ? 'b' : 'a', 63);
		name[i * 64 + 63] = '.';
	}
	name[3 * 64 + 61] = '\0';
	assert_int_equal(strlen(name), 253);
	assert_name(name, name);
	name[3 * 64 + 61] = 'c';
	name[3 * 64 + 62] = '\0';
	assert_bad_name(name, "longer than 253");
}

static void assert_pattern(const char *in, const char *want)
{
	char out[FB_NAME_MAX];
	const char *why = NULL;

	if (fb_pattern_normalize(in, strlen(in), out, &why) < 0)
		fail_msg("\"%s\": %s", in, why);
	assert_string_equal(out, want);
}

static void assert_bad_pattern(const char *in, const char *want_why)
{
	char out[FB_NAME_MAX];
	const char *why = NULL;

	if (fb_pattern_normalize(in, strlen(in), out, &why) == 0)
		fail_msg("\"%s\" accepted as \"%s\"", in, out);
	assert_non_null(strstr(why, want_why));
}

static void test_patterns(void **state)
{
	(void)state;
	assert_pattern("*", "*");
	assert_pattern("*.Example.COM.", "*.example.com");
	assert_pattern("www.*.com", "www.*.com");
	assert_pattern("*.*.example.com", "*.*.example.com");
	assert_pattern("*.bücher.example", "*.xn--bcher-kva.example");
	assert_bad_pattern("api*.example.com", "whole label");
	assert_bad_pattern("*api.example.com", "whole label");
	assert_bad_pattern("www.ex*le.com", "whole label");
	assert_bad_pattern("**.example.com", "whole label");
	assert_bad_pattern("*..com", "empty label");
	assert_bad_pattern("10.0.0.1", "IP address");
}

/* An index over `patterns`, whose lookups return the matching pattern. */
struct index {
	struct fb_domain d[16];
	struct fb_name_index *ix;
};

static void build(struct index *x, const char *const *patterns)
{
	size_t n = 0;
	bool same;

	memset(x, 0, sizeof *x);
	for (; patterns[n]; n++)
		x->d[n].pattern = (char *)patterns[n];
	x->ix = fb_name_index_build(x->d, n, &same);
	assert_non_null(x->ix);
	assert_false(same);
}

static const char *lookup(struct index *x, const char *name)
{
	const struct fb_domain *d = fb_name_index_lookup(x->ix, name);

	return d ? d->pattern : "(none)";
}

/* https://vercel.com/docs/sandbox/concepts/firewall, the wildcard table */
static void test_vercel_table(void **state)
{
	static const struct {
		const char *pattern;
		const char *matches[3];
		const char *not_matches[3];
	} rows[] = {
		{ "example.com", { "example.com" }, { "www.example.com" } },
		{ "*.example.com", { "www.example.com", "www.api.example.com" },
		  { "example.com" } },
		{ "www.*.com", { "www.example.com" },
		  { "example.com", "www.api.example.com" } },
		{ "*", { "example.com", "a.b.c.d.e", "com" }, { NULL } },
	};
	struct index x;

	(void)state;
	for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
		const char *one[] = { rows[r].pattern, NULL };

		build(&x, one);
		for (int i = 0; i < 3 && rows[r].matches[i]; i++)
			assert_string_equal(lookup(&x, rows[r].matches[i]),
					    rows[r].pattern);
		for (int i = 0; i < 3 && rows[r].not_matches[i]; i++)
			assert_string_equal(lookup(&x, rows[r].not_matches[i]),
					    "(none)");
		fb_name_index_free(x.ix);
	}
}

static void test_wildcard_positions(void **state)
{
	const char *keys[] = { "*.*.example.com", "api.*.*.org", "example.*",
			       NULL };
	struct index x;

	(void)state;
	build(&x, keys);
	assert_string_equal(lookup(&x, "a.b.example.com"), "*.*.example.com");
	assert_string_equal(lookup(&x, "a.b.c.example.com"), "*.*.example.com");
	assert_string_equal(lookup(&x, "b.example.com"), "(none)");
	assert_string_equal(lookup(&x, "api.x.y.org"), "api.*.*.org");
	assert_string_equal(lookup(&x, "api.x.org"), "(none)");
	assert_string_equal(lookup(&x, "api.x.y.z.org"), "(none)");
	assert_string_equal(lookup(&x, "example.net"), "example.*");
	assert_string_equal(lookup(&x, "www.example.net"), "(none)");
	fb_name_index_free(x.ix);
}

static void test_precedence(void **state)
{
	/* listed least specific first, so source order cannot be what wins */
	const char *keys[] = { "*", "*.com", "www.*.com", "*.example.com",
			       "*.*.example.com", "a.*.example.com",
			       "www.example.com", NULL };
	struct index x;

	(void)state;
	build(&x, keys);
	assert_string_equal(lookup(&x, "www.example.com"), "www.example.com");
	assert_string_equal(lookup(&x, "api.example.com"), "*.example.com");
	/* design.md's tie-break: the literal "example" beats www.*.com's "*" */
	assert_string_equal(lookup(&x, "www.other.com"), "www.*.com");
	assert_string_equal(lookup(&x, "api.other.com"), "*.com");
	/* same literal count: the key with more labels is more specific */
	assert_string_equal(lookup(&x, "x.b.example.com"), "*.*.example.com");
	/* equal up to the fourth label, where the literal "a" beats "*" */
	assert_string_equal(lookup(&x, "a.b.example.com"), "a.*.example.com");
	assert_string_equal(lookup(&x, "example.com"), "*.com");
	assert_string_equal(lookup(&x, "example.org"), "*");
	assert_string_equal(lookup(&x, "org"), "*");
	fb_name_index_free(x.ix);
}

static void test_exact_beats_wildcards_in_any_order(void **state)
{
	const char *keys[] = { "api.github.com", "*.github.com", "*", NULL };
	const char *reversed[] = { "*", "*.github.com", "api.github.com", NULL };
	struct index x;

	(void)state;
	build(&x, keys);
	assert_string_equal(lookup(&x, "api.github.com"), "api.github.com");
	assert_string_equal(lookup(&x, "raw.github.com"), "*.github.com");
	assert_string_equal(lookup(&x, "github.com"), "*");
	fb_name_index_free(x.ix);
	build(&x, reversed);
	assert_string_equal(lookup(&x, "api.github.com"), "api.github.com");
	assert_string_equal(lookup(&x, "raw.github.com"), "*.github.com");
	fb_name_index_free(x.ix);
}

static void test_no_keys(void **state)
{
	const char *none[] = { NULL };
	struct index x;

	(void)state;
	build(&x, none);
	assert_string_equal(lookup(&x, "example.com"), "(none)");
	fb_name_index_free(x.ix);
}

/*
 * Random keys over a tiny alphabet, so that many overlap, with "*" in
 * every position; every name of up to five labels over the same alphabet
 * must get the key the brute-force reading of the rules picks.
 */
static void test_index_agrees_with_brute_force(void **state)
{
	/* "ab" ends like "b": keys that share a tail of bytes, not a label */
	static const char *const words[] = { "a", "b", "*", "ab" };
	enum { NKEYS = 40, ROUNDS = 200 };
	char patterns[NKEYS][24], name[24];
	struct fb_domain d[NKEYS];
	uint64_t x = 88172645463325252ull;

	(void)state;
	for (int round = 0; round < ROUNDS; round++) {
		size_t n = 0;

		memset(d, 0, sizeof d);
		for (int k = 0; k < NKEYS; k++) {
			int labels;
			char *p = patterns[n];

			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			labels = 1 + (int)(x % 4);
			p[0] = '\0';
			for (int l = 0; l < labels; l++) {
				strcat(p, l ? "." : "");
				strcat(p, words[(x >> (8 + 2 * l)) % 4]);
			}
			/* keys are unique, as the loader guarantees */
			bool dup = false;

			for (size_t j = 0; j < n; j++)
				dup |= !strcmp(d[j].pattern, p);
			if (!dup)
				d[n++].pattern = p;
		}
		bool same;
		struct fb_name_index *ix = fb_name_index_build(d, n, &same);

		assert_non_null(ix);
		assert_false(same);
		for (int len = 1, count = 3; len <= 5; len++, count *= 3) {
			for (int k = 0; k < count; k++) {
				name[0] = '\0';
				for (int l = 0, digits = k; l < len; l++, digits /= 3) {
					strcat(name, l ? "." : "");
					strcat(name, words[digits % 3 == 2 ? 3 : digits % 3]);
				}
				const struct fb_domain *got = fb_name_index_lookup(ix, name);
				const struct fb_domain *want = name_oracle_lookup(d, n, name);

				if (got != want)
					fail_msg("round %d, %s: index picks %s, rules pick %s",
						 round, name, got ? got->pattern : "none",
						 want ? want->pattern : "none");
			}
		}
		fb_name_index_free(ix);
	}
}

/* The index tells when two keys are the same pattern, and only then. */
static void test_index_finds_same_keys(void **state)
{
	static const char *const sets[][4] = {
		{ "a.com", "*.a.com", "a.com", NULL },
		{ "*", "b.com", "*", NULL },
		{ "www.*.com", "*.com", "www.*.com", NULL },
		{ "*.*.a.com", "*.a.com", "*.*.a.com", NULL },
	};
	/* a name the repeated key decides */
	static const char *const names[] = {
		"a.com", "zzz.org", "www.x.com", "x.y.a.com",
	};
	static const char *const distinct[] = {
		"a.com", "*.a.com", "*", "*.*.a.com", "www.*.com", "*.com",
		"a.com.b", NULL,
	};
	struct fb_domain d[8];
	struct fb_name_index *ix;
	bool same;

	(void)state;
	for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
		memset(d, 0, sizeof d);
		for (size_t k = 0; k < 3; k++)
			d[k].pattern = (char *)sets[i][k];
		ix = fb_name_index_build(d, 3, &same);
		assert_non_null(ix);
		assert_true(same);
		/* the first of the two is the one kept */
		assert_ptr_equal(fb_name_index_lookup(ix, names[i]), &d[0]);
		fb_name_index_free(ix);
	}
	memset(d, 0, sizeof d);
	for (size_t k = 0; distinct[k]; k++)
		d[k].pattern = (char *)distinct[k];
	ix = fb_name_index_build(d, 7, &same);
	assert_non_null(ix);
	assert_false(same);
	fb_name_index_free(ix);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_case_dot_idn),
		cmocka_unit_test(test_canonical_fast_path),
		cmocka_unit_test(test_ip_literal_is_not_a_name),
		cmocka_unit_test(test_length_limits),
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_vercel_table),
		cmocka_unit_test(test_wildcard_positions),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_exact_beats_wildcards_in_any_order),
		cmocka_unit_test(test_no_keys),
		cmocka_unit_test(test_index_agrees_with_brute_force),
		cmocka_unit_test(test_index_finds_same_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
