/*
 * test_policy_dump.c — the redacted read-back in both shapes (exact text),
 * round trips through it, secrets never in it, and JSON merge patches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "policy/policy.h"

#define SECRET "sk-SECRET-0123456789"

static struct fb_policy *load(const char *text)
{
	struct fb_load_opts o = { .filename = "test.yaml" };
	struct fb_diags d = { 0 };
	struct fb_policy *p = fb_policy_load(text, strlen(text), &o, &d);

	if (!p)
		fb_diags_print(&d, stderr);
	assert_non_null(p);
	fb_diags_free(&d);
	return p;
}

static void expect_dump(const struct fb_policy *p, bool legacy,
			const char *want)
{
	char *got = fb_policy_dump(p, legacy);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

/* Load, dump, load the dump, dump again: the same text. */
static void expect_fixpoint(const char *text, bool legacy, const char *want)
{
	struct fb_policy *p = load(text), *again;

	expect_dump(p, legacy, want);
	again = load(want);
	expect_dump(again, legacy, want);
	fb_policy_unref(again);
	fb_policy_unref(p);
}

static void test_modes(void **state)
{
	(void)state;
	expect_fixpoint("allow-all", false, "\"allow-all\"\n");
	expect_fixpoint("mode: deny-all", false, "\"deny-all\"\n");
	expect_fixpoint("deny-all", true, "{\n  \"mode\": \"deny-all\"\n}\n");
	expect_fixpoint("{}", false,
			"{\n  \"allow\": {},\n  \"subnets\": {\n    \"allow\": [],\n    \"deny\": []\n  }\n}\n");
}

static void test_object_form(void **state)
{
	const char *text =
		"allow:\n"
		"  \"*.npmjs.org\": []\n"
		"  api.openai.com:\n"
		"    - match:\n"
		"        method: [POST]\n"
		"        path: {startsWith: /v1/}\n"
		"        queryString: [{key: {exact: k}}]\n"
		"        headers: [{key: {exact: X-Key}, value: {regex: \"^a\\\"b\\\\\\\\\"}}]\n"
		"      transform:\n"
		"        - headers: {Authorization: \"Bearer ${env:FB_TEST_KEY}\"}\n"
		"        - headers: {x-lit: \"" SECRET "\"}\n"
		"  internal.example.com:\n"
		"    - forwardURL: https://audit.example.com/fwd\n"
		"    - response: {statusCode: 418, body: \"tab\\there\\u0001\", contentType: text/plain}\n"
		"subnets:\n"
		"  allow: [10.0.0.0/8]\n"
		"  deny: [\"2001:db8::/32\"]\n";
	const char *want =
		"{\n"
		"  \"allow\": {\n"
		"    \"*.npmjs.org\": [],\n"
		"    \"api.openai.com\": [\n"
		"      {\n"
		"        \"match\": {\n"
		"          \"path\": {\n"
		"            \"startsWith\": \"/v1/\"\n"
		"          },\n"
		"          \"method\": [\n"
		"            \"POST\"\n"
		"          ],\n"
		"          \"queryString\": [\n"
		"            {\n"
		"              \"key\": {\n"
		"                \"exact\": \"k\"\n"
		"              }\n"
		"            }\n"
		"          ],\n"
		"          \"headers\": [\n"
		"            {\n"
		"              \"key\": {\n"
		"                \"exact\": \"x-key\"\n"
		"              },\n"
		"              \"value\": {\n"
		"                \"regex\": \"^a\\\"b\\\\\\\\\"\n"
		"              }\n"
		"            }\n"
		"          ]\n"
		"        },\n"
		"        \"transform\": [\n"
		"          {\n"
		"            \"headers\": {\n"
		"              \"authorization\": \"<redacted>\",\n"
		"              \"x-lit\": \"<redacted>\"\n"
		"            }\n"
		"          }\n"
		"        ]\n"
		"      }\n"
		"    ],\n"
		"    \"internal.example.com\": [\n"
		"      {\n"
		"        \"forwardURL\": \"https://audit.example.com/fwd\"\n"
		"      },\n"
		"      {\n"
		"        \"response\": {\n"
		"          \"statusCode\": 418,\n"
		"          \"body\": \"tab\\there\\u0001\",\n"
		"          \"contentType\": \"text/plain\"\n"
		"        }\n"
		"      }\n"
		"    ]\n"
		"  },\n"
		"  \"subnets\": {\n"
		"    \"allow\": [\n"
		"      \"10.0.0.0/8\"\n"
		"    ],\n"
		"    \"deny\": [\n"
		"      \"2001:db8::/32\"\n"
		"    ]\n"
		"  }\n"
		"}\n";
	struct fb_policy *p;
	struct fb_diags d = { 0 };
	struct fb_load_opts o = { .filename = "readback.json" };

	(void)state;
	setenv("FB_TEST_KEY", SECRET, 1);
	p = load(text);
	expect_dump(p, false, want);
	fb_policy_unref(p);
	/* the read-back itself is refused: it holds placeholders, not secrets */
	assert_null(fb_policy_load(want, strlen(want), &o, &d));
	assert_int_equal(d.n, 2);
	assert_int_equal(d.v[0].line, 34);
	assert_string_equal(d.v[0].msg, "header value contains \"<redacted>\", the read-back placeholder: replace it with the secret or a ${env:NAME} or ${file:PATH} reference");
	fb_diags_free(&d);
	unsetenv("FB_TEST_KEY");
}

static const char *const legacy_text =
	"mode: custom\n"
	"allowedDomains: [github.com, api.example.com]\n"
	"allowedCIDRs: [10.0.0.0/8]\n"
	"deniedCIDRs: [10.1.0.0/16]\n"
	"forwardRules:\n"
	"  - domain: api.example.com\n"
	"    forwardURL: https://fwd.example/one\n"
	"    match: {method: [GET]}\n"
	"injectionRules:\n"
	"  - domain: api.example.com\n"
	"    headers: {X-Key: \"${env:FB_TEST_KEY}\", x-two: \"" SECRET "\"}\n"
	"  - domain: only-injected.example\n"
	"    headers: {x-key: \"${env:FB_TEST_KEY}\"}\n"
	"    match: {path: {exact: /v1}}\n";

static const char *const legacy_want =
	"{\n"
	"  \"mode\": \"custom\",\n"
	"  \"allowedDomains\": [\n"
	"    \"github.com\",\n"
	"    \"api.example.com\",\n"
	"    \"only-injected.example\"\n"
	"  ],\n"
	"  \"allowedCIDRs\": [\n"
	"    \"10.0.0.0/8\"\n"
	"  ],\n"
	"  \"deniedCIDRs\": [\n"
	"    \"10.1.0.0/16\"\n"
	"  ],\n"
	"  \"injectionRules\": [\n"
	"    {\n"
	"      \"domain\": \"api.example.com\",\n"
	"      \"headerNames\": [\n"
	"        \"x-key\",\n"
	"        \"x-two\"\n"
	"      ]\n"
	"    },\n"
	"    {\n"
	"      \"domain\": \"only-injected.example\",\n"
	"      \"headerNames\": [\n"
	"        \"x-key\"\n"
	"      ],\n"
	"      \"match\": {\n"
	"        \"path\": {\n"
	"          \"exact\": \"/v1\"\n"
	"        }\n"
	"      }\n"
	"    }\n"
	"  ],\n"
	"  \"forwardRules\": [\n"
	"    {\n"
	"      \"domain\": \"api.example.com\",\n"
	"      \"forwardURL\": \"https://fwd.example/one\",\n"
	"      \"match\": {\n"
	"        \"method\": [\n"
	"          \"GET\"\n"
	"        ]\n"
	"      }\n"
	"    }\n"
	"  ]\n"
	"}\n";

static void test_legacy_round_trip(void **state)
{
	struct fb_policy *p;

	(void)state;
	setenv("FB_TEST_KEY", SECRET, 1);
	p = load(legacy_text);
	expect_dump(p, true, legacy_want);
	fb_policy_unref(p);
	/* the same policy written in the object form */
	p = load("allow:\n"
		 "  github.com: []\n"
		 "  api.example.com:\n"
		 "    - transform: [{headers: {X-Key: \"${env:FB_TEST_KEY}\", x-two: \"" SECRET "\"}}]\n"
		 "    - forwardURL: https://fwd.example/one\n"
		 "      match: {method: [GET]}\n"
		 "  only-injected.example:\n"
		 "    - match: {path: {exact: /v1}}\n"
		 "      transform: [{headers: {x-key: \"${env:FB_TEST_KEY}\"}}]\n"
		 "subnets: {allow: [10.0.0.0/8], deny: [10.1.0.0/16]}\n");
	expect_dump(p, true, legacy_want);
	fb_policy_unref(p);
	/* a legacy policy without values round-trips as it is */
	expect_fixpoint("mode: custom\nallowedDomains: [a.example]\nforwardRules: [{domain: b.example, forwardURL: \"https://f.example/\"}]\n",
			true,
			"{\n  \"mode\": \"custom\",\n  \"allowedDomains\": [\n    \"a.example\",\n    \"b.example\"\n  ],\n"
			"  \"allowedCIDRs\": [],\n  \"deniedCIDRs\": [],\n  \"injectionRules\": [],\n"
			"  \"forwardRules\": [\n    {\n      \"domain\": \"b.example\",\n      \"forwardURL\": \"https://f.example/\"\n    }\n  ]\n}\n");
	/* response rules have no Vercel field: ours, and only when present */
	expect_fixpoint("allow: {a.example: [{response: {statusCode: 403}}]}", true,
			"{\n  \"mode\": \"custom\",\n  \"allowedDomains\": [\n    \"a.example\"\n  ],\n"
			"  \"allowedCIDRs\": [],\n  \"deniedCIDRs\": [],\n  \"injectionRules\": [],\n  \"forwardRules\": [],\n"
			"  \"responseRules\": [\n    {\n      \"domain\": \"a.example\",\n      \"response\": {\n        \"statusCode\": 403\n      }\n    }\n  ]\n}\n");
	unsetenv("FB_TEST_KEY");
}

/* Object form → legacy dump → load → object dump: the same policy. */
static void test_object_legacy_object(void **state)
{
	const char *text = "allow:\n  a.example: []\n  b.example:\n    - forwardURL: https://f.example/x\n      match: {method: [PUT]}\nsubnets: {deny: [192.0.2.0/24]}\n";
	struct fb_policy *p = load(text), *q;
	char *legacy, *before, *after;

	(void)state;
	legacy = fb_policy_dump(p, true);
	q = load(legacy);
	before = fb_policy_dump(p, false);
	after = fb_policy_dump(q, false);
	assert_string_equal(before, after);
	free(legacy);
	free(before);
	free(after);
	fb_policy_unref(q);
	fb_policy_unref(p);
}

/* The secret is in the model, and in no dump of either shape. */
static void test_redaction(void **state)
{
	char path[] = "/tmp/fb-test-key-XXXXXX", text[512];
	int fd = mkstemp(path);
	struct fb_policy *p;
	char *dump;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, SECRET "-file\n", strlen(SECRET) + 6), (ssize_t)strlen(SECRET) + 6);
	close(fd);
	setenv("FB_TEST_KEY", SECRET "-env", 1);
	snprintf(text, sizeof(text),
		 "allow:\n  a.example:\n    - transform:\n        - headers:\n"
		 "            x-env: \"Bearer ${env:FB_TEST_KEY}\"\n"
		 "            x-file: \"${file:%s}\"\n"
		 "            x-lit: \"" SECRET "-lit\"\n", path);
	p = load(text);
	assert_string_equal(p ? fb_policy_domains(p, &(size_t){ 0 })[0].rules[0].set[0].value : "",
			    "Bearer " SECRET "-env");
	for (int legacy = 0; legacy < 2; legacy++) {
		dump = fb_policy_dump(p, legacy);
		assert_null(strstr(dump, "sk-SECRET"));
		assert_null(strstr(dump, "0123456789"));
		free(dump);
	}
	fb_policy_unref(p);
	unlink(path);
	unsetenv("FB_TEST_KEY");
}

/* ---- merge patch -------------------------------------------------------- */

static struct fb_policy *patch(const struct fb_policy *base, const char *body,
			       struct fb_diags *d)
{
	struct fb_load_opts o = { .filename = "patch.json" };

	return fb_policy_patch(base, body, strlen(body), &o, d);
}

static void expect_patched(const char *base_text, const char *body,
			   const char *want)
{
	struct fb_diags d = { 0 };
	struct fb_policy *base = load(base_text), *p;

	p = patch(base, body, &d);
	if (!p)
		fb_diags_print(&d, stderr);
	assert_non_null(p);
	expect_dump(p, false, want);
	fb_policy_unref(p);
	fb_policy_unref(base);
	fb_diags_free(&d);
}

static void test_patch(void **state)
{
	(void)state;
	/* add a domain (a list-form base is a map by then) */
	expect_patched("allow: [a.example]\nsubnets: {deny: [192.0.2.0/24]}\n",
		       "{\"allow\": {\"b.example\": []}}",
		       "{\n  \"allow\": {\n    \"a.example\": [],\n    \"b.example\": []\n  },\n"
		       "  \"subnets\": {\n    \"allow\": [],\n    \"deny\": [\n      \"192.0.2.0/24\"\n    ]\n  }\n}\n");
	/* delete a key with null, named as written or normalised */
	expect_patched("allow: [a.example, B.Example, c.example]\n",
		       "{\"allow\": {\"a.example\": null, \"b.example.\": null}}",
		       "{\n  \"allow\": {\n    \"c.example\": []\n  },\n"
		       "  \"subnets\": {\n    \"allow\": [],\n    \"deny\": []\n  }\n}\n");
	/* lists are replaced whole */
	expect_patched("allow: [a.example]\nsubnets: {allow: [10.0.0.0/8], deny: [10.1.0.0/16]}\n",
		       "{\"subnets\": {\"allow\": [\"172.16.0.0/12\"]}}",
		       "{\n  \"allow\": {\n    \"a.example\": []\n  },\n"
		       "  \"subnets\": {\n    \"allow\": [\n      \"172.16.0.0/12\"\n    ],\n    \"deny\": [\n      \"10.1.0.0/16\"\n    ]\n  }\n}\n");
	/* an object on a mode string: the patch alone, a custom policy */
	expect_patched("allow-all", "{\"allow\": {\"a.example\": []}}",
		       "{\n  \"allow\": {\n    \"a.example\": []\n  },\n"
		       "  \"subnets\": {\n    \"allow\": [],\n    \"deny\": []\n  }\n}\n");
	/* a string replaces everything */
	expect_patched("allow: [a.example]", "\"deny-all\"", "\"deny-all\"\n");
	/* {} changes nothing */
	expect_patched("allow: [a.example]", "{}",
		       "{\n  \"allow\": {\n    \"a.example\": []\n  },\n"
		       "  \"subnets\": {\n    \"allow\": [],\n    \"deny\": []\n  }\n}\n");
}

/* Secrets are kept as references and resolved again for the new policy. */
static void test_patch_resolves_secrets_again(void **state)
{
	struct fb_diags d = { 0 };
	struct fb_policy *base, *p;
	const char *text = "allow:\n  a.example:\n    - transform: [{headers: {x-k: \"${env:FB_TEST_KEY}\", x-l: literal-1}}]\n";

	(void)state;
	setenv("FB_TEST_KEY", "old", 1);
	base = load(text);
	setenv("FB_TEST_KEY", "new", 1);
	p = patch(base, "{\"allow\": {\"b.example\": []}}", &d);
	assert_non_null(p);
	assert_string_equal(fb_policy_domains(p, &(size_t){ 0 })[0].rules[0].set[0].value, "new");
	assert_string_equal(fb_policy_domains(p, &(size_t){ 0 })[0].rules[0].set[1].value, "literal-1");
	assert_string_equal(fb_policy_domains(base, &(size_t){ 0 })[0].rules[0].set[0].value, "old");
	fb_policy_unref(p);
	fb_policy_unref(base);
	unsetenv("FB_TEST_KEY");
}

/*
 * The fingerprint a SIGHUP compares: the same for the same policy however
 * written (comments, order of keys, list or map form), another for
 * another policy or another value of one of its secrets.
 */
static void test_digest(void **state)
{
	const char *text = "allow:\n  a.example:\n    - transform: [{headers: {x-k: \"${env:FB_TEST_KEY}\"}}]\n  b.example: []\n";
	const char *same = "# a comment\nallow:\n  a.example:\n    - transform:\n        - headers: { x-k: \"${env:FB_TEST_KEY}\" }\n  b.example: []\n";
	const char *other = "allow:\n  a.example:\n    - transform: [{headers: {x-k: \"${env:FB_TEST_KEY}\"}}]\n  c.example: []\n";
	struct fb_policy *p[4];
	uint64_t d[4][2];

	(void)state;
	setenv("FB_TEST_KEY", "old", 1);
	p[0] = load(text);
	p[1] = load(same);
	p[2] = load(other);
	setenv("FB_TEST_KEY", "new", 1);
	p[3] = load(text);
	for (int i = 0; i < 4; i++)
		assert_int_equal(fb_policy_digest(p[i], d[i]), 0);
	assert_memory_equal(d[0], d[1], sizeof(d[0]));
	assert_memory_not_equal(d[0], d[2], sizeof(d[0]));
	assert_memory_not_equal(d[0], d[3], sizeof(d[0]));
	for (int i = 0; i < 4; i++)
		fb_policy_unref(p[i]);
	p[0] = load("allow-all");
	p[1] = load("deny-all");
	/* a value only the source holds: a matcher's text, a number */
	p[2] = load("allow:\n  a.example:\n    - match: { path: { startsWith: /a } }\n      response: { statusCode: 403 }\n");
	p[3] = load("allow:\n  a.example:\n    - match: { path: { startsWith: /b } }\n      response: { statusCode: 403 }\n");
	for (int i = 0; i < 4; i++)
		assert_int_equal(fb_policy_digest(p[i], d[i]), 0);
	assert_memory_not_equal(d[0], d[1], sizeof(d[0]));
	assert_memory_not_equal(d[2], d[3], sizeof(d[0]));
	fb_policy_unref(p[3]);
	p[3] = load("allow:\n  a.example:\n    - match: { path: { startsWith: /a } }\n      response: { statusCode: 404 }\n");
	assert_int_equal(fb_policy_digest(p[3], d[3]), 0);
	assert_memory_not_equal(d[2], d[3], sizeof(d[0]));
	for (int i = 0; i < 4; i++)
		fb_policy_unref(p[i]);
	unsetenv("FB_TEST_KEY");
}

/* A patch that breaks the policy: NULL, diagnostics, base as it was. */
static void test_invalid_patch_keeps_base(void **state)
{
	const char *text = "allow: [a.example]\nsubnets: {deny: [192.0.2.0/24]}\n";
	struct fb_policy *base = load(text);
	char *before = fb_policy_dump(base, false), *after, *msgs;
	struct fb_diags d = { 0 };

	(void)state;
	assert_null(patch(base, "{\"allow\": {\"api*.example\": []},\n \"subnets\": {\"deny\": [\"192.0.2.1/24\"]}}", &d));
	msgs = fb_diags_to_string(&d);
	assert_string_equal(msgs,
			    "patch.json:1:12: invalid domain \"api*.example\": wildcard must be a whole label (\"*.example.com\", not \"api*.example.com\")\n"
			    "patch.json:2:23: host bits set in \"192.0.2.1/24\" (did you mean 192.0.2.0/24?)\n");
	free(msgs);
	fb_diags_free(&d);
	assert_null(patch(base, "{\"allow\": [", &d));
	assert_int_equal(d.n, 1);
	fb_diags_free(&d);
	assert_null(patch(base, "", &d));
	msgs = fb_diags_to_string(&d);
	assert_string_equal(msgs, "patch.json:1:1: empty patch: expected a JSON merge patch object (or {} to change nothing)\n");
	free(msgs);
	fb_diags_free(&d);
	after = fb_policy_dump(base, false);
	assert_string_equal(before, after);
	free(before);
	free(after);
	fb_policy_unref(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_object_form),
		cmocka_unit_test(test_legacy_round_trip),
		cmocka_unit_test(test_object_legacy_object),
		cmocka_unit_test(test_redaction),
		cmocka_unit_test(test_patch),
		cmocka_unit_test(test_patch_resolves_secrets_again),
		cmocka_unit_test(test_invalid_patch_keeps_base),
		cmocka_unit_test(test_digest),
	};

	return cmocka_run_group_tests_name("policy dump and patch", tests,
					   NULL, NULL);
}
