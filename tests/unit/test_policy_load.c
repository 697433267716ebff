/*
 * test_policy_load.c — every accepted policy shape, down to the model it
 * yields: modes, list and map allow, rules and matchers, emptiness, the
 * legacy read-back shape, the policies in Vercel's documentation, secrets,
 * large policies loaded in a row in the memory of the ones before.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "policy/internal.h"

static struct fb_policy *load(const char *text)
{
	struct fb_load_opts o = { .filename = "test.yaml" };
	struct fb_diags d = { 0 };
	struct fb_policy *p = fb_policy_load(text, strlen(text), &o, &d);

	if (!p)
		fb_diags_print(&d, stderr);
	assert_non_null(p);
	assert_int_equal(d.n, 0);
	fb_diags_free(&d);
	return p;
}

static const struct fb_domain *domain(const struct fb_policy *p, size_t i,
				      const char *pattern, size_t nrules)
{
	size_t n;
	const struct fb_domain *d = fb_policy_domains(p, &n);

	assert_true(i < n);
	assert_string_equal(d[i].pattern, pattern);
	assert_int_equal(d[i].nrules, nrules);
	return &d[i];
}

static void test_modes(void **state)
{
	static const struct {
		const char *text;
		enum fb_mode mode;
	} cases[] = {
		{ "allow-all", FB_MODE_ALLOW_ALL },
		{ "deny-all\n", FB_MODE_DENY_ALL },
		{ "\"allow-all\"", FB_MODE_ALLOW_ALL },
		{ "# comment\n'deny-all'  # trailing\n", FB_MODE_DENY_ALL },
		{ "mode: allow-all\n", FB_MODE_ALLOW_ALL },
		{ "{\"mode\": \"deny-all\"}", FB_MODE_DENY_ALL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fb_policy *p = load(cases[i].text);
		size_t n;

		assert_int_equal(fb_policy_mode(p), cases[i].mode);
		fb_policy_domains(p, &n);
		assert_int_equal(n, 0);
		fb_policy_unref(p);
	}
}

/* {}, {allow: {}}, {allow: []}, {subnets: {}}, deny-only: custom, nothing allowed. */
static void test_empty_custom(void **state)
{
	static const char *const texts[] = {
		"{}", "allow: {}", "allow: []", "subnets: {}", "allow:\n",
		"{\"allow\": null, \"subnets\": {\"allow\": [], \"deny\": null}}",
		"subnets:\n  deny: [203.0.113.0/24]\n", "mode: custom\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct fb_policy *p = load(texts[i]);
		struct fb_decision dec;
		size_t n;

		assert_int_equal(fb_policy_mode(p), FB_MODE_CUSTOM);
		fb_policy_domains(p, &n);
		assert_int_equal(n, 0);
		fb_policy_subnets(p, 0, &n);
		assert_int_equal(n, 0);
		fb_policy_decide(p, "example.com", NULL, &dec);
		assert_int_equal(dec.verdict, FB_VERDICT_DENY);
		fb_policy_unref(p);
	}
}

static void test_list_form(void **state)
{
	struct fb_policy *p = load("allow: [github.com, \"*.NPMJS.org\", \"Example.COM.\", \"bücher.example\", \"*\"]\n");
	struct fb_decision dec;

	(void)state;
	assert_int_equal(fb_policy_mode(p), FB_MODE_CUSTOM);
	domain(p, 0, "github.com", 0);
	domain(p, 1, "*.npmjs.org", 0);
	domain(p, 2, "example.com", 0);
	domain(p, 3, "xn--bcher-kva.example", 0);
	domain(p, 4, "*", 0);
	fb_policy_decide(p, "registry.npmjs.org", NULL, &dec);
	assert_int_equal(dec.verdict, FB_VERDICT_ALLOW);
	fb_policy_unref(p);
}

static void test_subnets(void **state)
{
	struct fb_policy *p = load("subnets:\n  allow: [10.0.0.0/8, \"2001:DB8::/32\", 192.0.2.7]\n  deny: [\"10.1.0.0/16\"]\n");
	const struct fb_cidr *c;
	char text[FB_CIDR_STRLEN];
	size_t n;

	(void)state;
	c = fb_policy_subnets(p, 0, &n);
	assert_int_equal(n, 3);
	fb_cidr_format(&c[1], text, sizeof(text));
	assert_string_equal(text, "2001:db8::/32");
	fb_cidr_format(&c[2], text, sizeof(text));
	assert_string_equal(text, "192.0.2.7/32");
	c = fb_policy_subnets(p, 1, &n);
	assert_int_equal(n, 1);
	fb_cidr_format(&c[0], text, sizeof(text));
	assert_string_equal(text, "10.1.0.0/16");
	fb_policy_unref(p);
}

/* design.md's example policy, every rule kind and matcher field. */
static void test_rules(void **state)
{
	const char *text =
		"allow:\n"
		"  \"*.npmjs.org\": []\n"
		"  \"github.com\": null\n"
		"  \"api.openai.com\":\n"
		"    - match: { method: [POST, PUT], path: { startsWith: \"/v1/\" } }\n"
		"      transform:\n"
		"        - headers: { Authorization: \"Bearer ${env:FB_TEST_KEY}\" }\n"
		"        - headers: { x-org: org-1 }\n"
		"  \"internal.example.com\":\n"
		"    - forwardURL: \"https://audit-proxy.example.com/fwd\"\n"
		"      match:\n"
		"        queryString: [{ key: { exact: a }, value: { regex: \"^[0-9]+$\" } }]\n"
		"        headers: [{ key: { exact: X-Api-Key } }, { value: { startsWith: tok } }]\n"
		"    - response: { statusCode: 403, body: \"denied\\n\", contentType: text/plain }\n"
		"    - response: { statusCode: 204 }\n";
	const struct fb_domain *d;
	const struct fb_rule *r;
	struct fb_policy *p;
	struct fb_policy_summary s;

	(void)state;
	setenv("FB_TEST_KEY", "sk-test-1", 1);
	p = load(text);
	domain(p, 0, "*.npmjs.org", 0);
	domain(p, 1, "github.com", 0);
	d = domain(p, 2, "api.openai.com", 1);
	r = &d->rules[0];
	assert_int_equal(r->line, 5);
	assert_int_equal(r->col, 7);
	assert_int_equal(r->action, FB_ACT_TRANSFORM);
	assert_int_equal(r->match->nmethods, 2);
	assert_string_equal(r->match->methods[1], "PUT");
	assert_int_equal(r->match->path->kind, FB_MATCH_PREFIX);
	assert_string_equal(r->match->path->text, "/v1/");
	assert_int_equal(r->nset, 2);
	assert_string_equal(r->set[0].name, "authorization");
	assert_string_equal(r->set[0].value, "Bearer sk-test-1");
	assert_string_equal(r->set[0].source, "Bearer ${env:FB_TEST_KEY}");
	assert_string_equal(r->set[1].name, "x-org");
	assert_string_equal(r->set[1].value, "org-1");
	assert_null(r->set[1].source); /* a literal keeps no second copy */

	d = domain(p, 3, "internal.example.com", 3);
	r = &d->rules[0];
	assert_int_equal(r->action, FB_ACT_FORWARD);
	assert_string_equal(r->forward_url, "https://audit-proxy.example.com/fwd");
	assert_int_equal(r->match->nquery, 1);
	assert_int_equal(r->match->query[0].value->kind, FB_MATCH_REGEX);
	assert_true(fb_matcher_match(r->match->query[0].value, "123", 3));
	assert_false(fb_matcher_match(r->match->query[0].value, "12a", 3));
	assert_int_equal(r->match->nheaders, 2);
	/* header names compare case-insensitively: stored lower-case */
	assert_string_equal(r->match->headers[0].key->text, "x-api-key");
	assert_null(r->match->headers[0].value);
	assert_null(r->match->headers[1].key);
	assert_string_equal(r->match->headers[1].value->text, "tok");
	r = &d->rules[1];
	assert_int_equal(r->action, FB_ACT_RESPOND);
	assert_null(r->match);
	assert_int_equal(r->status, 403);
	assert_int_equal(r->body_len, 7);
	assert_memory_equal(r->body, "denied\n", 7);
	assert_string_equal(r->content_type, "text/plain");
	r = &d->rules[2];
	assert_int_equal(r->status, 204);
	assert_null(r->body);
	assert_null(r->content_type);

	fb_policy_summarize(p, &s);
	assert_int_equal(s.mode, FB_MODE_CUSTOM);
	assert_int_equal(s.domains, 4);
	assert_int_equal(s.rules, 4);
	fb_policy_unref(p);
	unsetenv("FB_TEST_KEY");
}

/* A header-name regex matches whatever the case; its value does not. */
static void test_header_regex_case(void **state)
{
	struct fb_policy *p = load("allow:\n  a.com:\n    - match: {headers: [{key: {regex: \"^x-api-\"}, value: {regex: \"^Tok\"}}]}\n      response: {statusCode: 403}\n");
	const struct fb_kv_matcher *kv = &p->domains[0].rules[0].match->headers[0];

	(void)state;
	assert_true(fb_matcher_match(kv->key, "X-API-Key", 9));
	assert_true(fb_matcher_match(kv->value, "Tok1", 4));
	assert_false(fb_matcher_match(kv->value, "tok1", 4));
	fb_policy_unref(p);
}

static void test_json_is_accepted(void **state)
{
	struct fb_policy *p = load("{\"allow\": {\"api.example.com\": [{\"match\": {\"method\": [\"GET\"]}, \"forwardURL\": \"https://[2001:db8::1]:8443/x\"}], \"b.example\": []}, \"subnets\": {\"deny\": [\"192.0.2.0/24\"]}}");
	const struct fb_domain *d = domain(p, 0, "api.example.com", 1);

	(void)state;
	assert_string_equal(d->rules[0].forward_url, "https://[2001:db8::1]:8443/x");
	domain(p, 1, "b.example", 0);
	fb_policy_unref(p);
}

/* Vercel's fromAPINetworkPolicy: per domain injections first, then
 * forwards; domains only in rules become keys after allowedDomains. */
static void test_legacy_shape(void **state)
{
	const char *text =
		"mode: custom\n"
		"allowedDomains: [github.com, API.example.com]\n"
		"allowedCIDRs: [10.0.0.0/8]\n"
		"deniedCIDRs: [10.1.0.0/16]\n"
		"forwardRules:\n"
		"  - domain: api.example.com\n"
		"    forwardURL: https://fwd.example/one\n"
		"  - domain: rules-only.example\n"
		"    forwardURL: https://fwd.example/two\n"
		"injectionRules:\n"
		"  - domain: api.example.com\n"
		"    headers: { x-key: \"${env:FB_TEST_KEY}\" }\n"
		"    match: { path: { exact: /v1 } }\n"
		"  - domain: api.example.com\n"
		"    headers: { x-other: lit }\n"
		"responseRules:\n"
		"  - domain: github.com\n"
		"    response: { statusCode: 451 }\n";
	const struct fb_domain *d;
	struct fb_policy *p;
	size_t n;

	(void)state;
	setenv("FB_TEST_KEY", "k", 1);
	p = load(text);
	assert_int_equal(fb_policy_mode(p), FB_MODE_CUSTOM);
	domain(p, 0, "github.com", 1);
	d = domain(p, 1, "api.example.com", 3);
	assert_int_equal(d->rules[0].action, FB_ACT_TRANSFORM);
	assert_string_equal(d->rules[0].set[0].name, "x-key");
	assert_string_equal(d->rules[0].match->path->text, "/v1");
	assert_int_equal(d->rules[1].action, FB_ACT_TRANSFORM);
	assert_string_equal(d->rules[1].set[0].name, "x-other");
	assert_int_equal(d->rules[2].action, FB_ACT_FORWARD);
	assert_string_equal(d->rules[2].forward_url, "https://fwd.example/one");
	d = domain(p, 2, "rules-only.example", 1);
	assert_string_equal(d->rules[0].forward_url, "https://fwd.example/two");
	fb_policy_domains(p, &n);
	assert_int_equal(n, 3);
	fb_policy_subnets(p, 0, &n);
	assert_int_equal(n, 1);
	fb_policy_subnets(p, 1, &n);
	assert_int_equal(n, 1);
	fb_policy_unref(p);
	unsetenv("FB_TEST_KEY");
}

/*
 * Thousands of legacy domains, rules written in another case: every rule
 * joins its own key, keys stay in source order, and a rule for a domain
 * not listed adds it once, however many rules name it.
 */
static void test_legacy_many_domains(void **state)
{
	enum { N = 3000 };
	size_t cap = N * 96 + 256, len = 0, n;
	char *text = malloc(cap);
	const struct fb_domain *d;
	struct fb_policy *p;

	(void)state;
	assert_non_null(text);
	len += (size_t)snprintf(text + len, cap - len,
				"mode: custom\nallowedDomains:\n");
	for (int i = 0; i < N; i++)
		len += (size_t)snprintf(text + len, cap - len,
					"  - h%d.example.com\n", i);
	len += (size_t)snprintf(text + len, cap - len, "forwardRules:\n");
	for (int i = N - 1; i >= 0; i -= 7)
		len += (size_t)snprintf(text + len, cap - len,
					"  - { domain: H%d.Example.COM., "
					"forwardURL: \"https://f.example/%d\" }\n",
					i, i);
	for (int i = 0; i < 3; i++)
		len += (size_t)snprintf(text + len, cap - len,
					"  - { domain: extra.example.com, "
					"forwardURL: \"https://f.example/x%d\" }\n",
					i);
	assert_true(len < cap);
	p = load(text);
	d = fb_policy_domains(p, &n);
	assert_int_equal(n, N + 1);
	for (int i = 0; i < N; i++) {
		char name[64], url[64];

		snprintf(name, sizeof name, "h%d.example.com", i);
		assert_string_equal(d[i].pattern, name);
		assert_int_equal(d[i].nrules, (N - 1 - i) % 7 == 0);
		if (d[i].nrules) {
			snprintf(url, sizeof url, "https://f.example/%d", i);
			assert_string_equal(d[i].rules[0].forward_url, url);
		}
	}
	assert_string_equal(d[N].pattern, "extra.example.com");
	assert_int_equal(d[N].nrules, 3);
	assert_string_equal(d[N].rules[2].forward_url, "https://f.example/x2");
	fb_policy_unref(p);
	free(text);
}

/* A JSON policy of N names "hI-TAG.rules.test" (malloc'd text). */
static char *json_names(int n, const char *tag)
{
	size_t cap = (size_t)n * 40 + 64, len = 0;
	char *text = malloc(cap);

	assert_non_null(text);
	len += (size_t)snprintf(text + len, cap - len, "{\"allow\": [");
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len, "%s\"H%d-%s.rules.test\"",
					i ? ", " : "", i, tag);
	len += (size_t)snprintf(text + len, cap - len, "]}");
	assert_true(len < cap);
	return text;
}

/* Every name of `tag` decided as `verdict`, and the patterns normalised. */
static void assert_names(const struct fb_policy *p, int n, const char *tag,
			 enum fb_verdict verdict)
{
	for (int i = 0; i < n; i++) {
		struct fb_decision dec;
		char name[64];

		snprintf(name, sizeof name, "h%d-%s.rules.test", i, tag);
		fb_policy_decide(p, name, NULL, &dec);
		assert_int_equal(dec.verdict, verdict);
	}
}

/*
 * Hot swaps in a row: a policy is built while the one before still
 * serves, in the memory a freed one gave back or that was reserved for
 * it, and none of them may see another's.  A text that looks like JSON
 * but is YAML (unquoted keys) is first read in part by the fast path,
 * whose nodes are thrown away.
 */
static void test_swaps_reuse_memory(void **state)
{
	enum { N = 3000 };
	char *a = json_names(N, "a"), *b = json_names(N, "b");
	struct fb_policy *pa, *pb, *pa2, *py;
	char *dump_a, *dump_a2;

	(void)state;
	pa = load(a);
	fb_policy_reserve_next(pa);
	pb = load(b);
	assert_names(pa, N, "a", FB_VERDICT_ALLOW);
	assert_names(pa, N, "b", FB_VERDICT_DENY);
	assert_names(pb, N, "b", FB_VERDICT_ALLOW);
	dump_a = fb_policy_dump(pa, false);
	assert_non_null(dump_a);
	fb_policy_unref(pa);
	fb_policy_reserve_next(pb);
	pa2 = load(a); /* in what pa gave back */
	assert_names(pb, N, "b", FB_VERDICT_ALLOW);
	assert_names(pb, N, "a", FB_VERDICT_DENY);
	assert_names(pa2, N, "a", FB_VERDICT_ALLOW);
	dump_a2 = fb_policy_dump(pa2, false);
	assert_non_null(dump_a2);
	assert_string_equal(dump_a, dump_a2);
	fb_policy_unref(pb);
	py = load("{allow: [\"H1-y.rules.test\", h2-y.rules.test]}");
	domain(py, 0, "h1-y.rules.test", 0);
	domain(py, 1, "h2-y.rules.test", 0);
	assert_names(pa2, N, "a", FB_VERDICT_ALLOW);
	fb_policy_unref(py);
	fb_policy_unref(pa2);
	free(dump_a);
	free(dump_a2);
	free(a);
	free(b);
}

/*
 * The room a policy takes is what its names take: one long name first
 * must not have every name after it counted as long (the next update's
 * reserve would make all that room too).
 */
static void test_arena_holds_what_names_take(void **state)
{
	enum { N = 3000 };
	char *names = json_names(N, "a");
	size_t len = strlen(names);
	char *first = malloc(len + 300), *last = malloc(len + 300);
	char label[64];
	struct fb_policy *pf, *pl;

	(void)state;
	assert_non_null(first);
	assert_non_null(last);
	memset(label, 'x', 63);
	label[63] = '\0';
	/* {"allow": ["<252 bytes>", names...]} and {"allow": [names..., "<252>"]} */
	snprintf(first, len + 300, "{\"allow\": [\"%s.%s.%s.%.55s.test\", %s",
		 label, label, label, label, names + 11);
	snprintf(last, len + 300, "%.*s, \"%s.%s.%s.%.55s.test\"]}",
		 (int)(len - 2), names, label, label, label, label);
	pf = load(first);
	pl = load(last);
	assert_int_equal(pf->ndomains, N + 1);
	assert_int_equal(pl->ndomains, N + 1);
	/* without giving back, the first would take some 250 * N more */
	assert_true(fb_arena_used(pf->arena) < fb_arena_used(pl->arena) + 64 * 1024);
	fb_policy_unref(pf);
	fb_policy_unref(pl);
	free(first);
	free(last);
	free(names);
}

/* Whether this kernel makes transparent huge pages where advised. */
static bool huge_pages_advisable(void)
{
	char mode[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (f) {
		if (!fgets(mode, sizeof(mode), f))
			mode[0] = '\0';
		fclose(f);
	}
	return strstr(mode, "[always]") || strstr(mode, "[madvise]");
}

/* The THPeligible value of the mapping that holds `addr`, or -1. */
static int thp_eligible(const void *addr)
{
	uintptr_t a = (uintptr_t)addr, start, end;
	bool in = false;
	char line[512];
	int eligible = -1;
	FILE *f = fopen("/proc/self/smaps", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &start, &end) == 2)
			in = start <= a && a < end;
		else if (in && sscanf(line, "THPeligible: %d", &eligible) == 1)
			break;
	}
	fclose(f);
	return eligible;
}

/*
 * A large policy is built in huge pages where the kernel has them
 * (policy/arena.c): its first update then faults some 100 times where it
 * faulted 1600 times, in a VM whose host shadows its page tables.
 */
static void test_large_policy_in_huge_pages(void **state)
{
	struct fb_policy *p;
	char *names;

	(void)state;
#if defined(__SANITIZE_ADDRESS__)
	skip(); /* the arena's blocks come from malloc, for ASan to watch */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	skip();
#endif
#endif
	if (!huge_pages_advisable())
		skip();
	names = json_names(10000, "a");
	p = load(names);
	assert_int_equal(thp_eligible(p->domains), 1);
	fb_policy_unref(p);
	free(names);
}

/* The policies quoted in notes/vercel-firewall.md load as documented. */
static void test_vercel_examples(void **state)
{
	static const char *const texts[] = {
		/* 1.1.5 list and record forms */
		"{\"allow\": [\"*.npmjs.org\", \"github.com\"]}",
		"{\"allow\": {\"*.npmjs.org\": [], \"github.com\": []}}",
		/* 2.2 the wildcard table's patterns */
		"allow: [example.com, \"*.example.com\", \"www.*.com\", \"*\"]",
		/* 1.1.9 catch-all deny after an allow-with-transform rule */
		"allow:\n  api.example.com:\n    - match: {path: {startsWith: /v1/}}\n      transform: [{headers: {authorization: \"Bearer ${env:FB_TEST_KEY}\"}}]\n    - response: {statusCode: 403}\n",
		/* 2.8 PR#53's demo: httpbin.org and a catch-all, each with a transform */
		"{\"allow\": {\"httpbin.org\": [{\"transform\": [{\"headers\": {\"Authorization\": \"Bearer ${env:FB_TEST_KEY}\"}}]}], \"*\": [{\"transform\": [{\"headers\": {\"x-foo\": \"bar\"}}]}]}}",
		/* 4.1.9 and 10.7: inject only when the placeholder is present */
		"allow:\n  api.example.com:\n    - match: {headers: [{key: {exact: x-api-key}, value: {exact: placeholder}}]}\n      transform: [{headers: {authorization: \"${env:FB_TEST_KEY}\"}}]\n",
		/* 5.4 forwarding to a proxy path */
		"allow:\n  example.com:\n    - forwardURL: https://proxy.vercel.app/proxy\n",
		/* 3.4 the whole internet by address */
		"subnets: {allow: [\"0.0.0.0/0\", \"::/0\"]}",
		/* 10.5 a broker policy with a catch-all */
		"{\"allow\": {\"*\": [], \"github.com\": [{\"transform\": [{\"headers\": {\"authorization\": \"token ${env:FB_TEST_KEY}\"}}]}]}}",
		/* 1.2.2 the legacy read-back shape, values supplied */
		"{\"mode\": \"custom\", \"allowedDomains\": [\"a.example\"], \"injectionRules\": [{\"domain\": \"a.example\", \"headers\": {\"x-k\": \"${env:FB_TEST_KEY}\"}}], \"forwardRules\": [{\"domain\": \"b.example\", \"forwardURL\": \"https://f.example/x\", \"match\": {\"method\": [\"POST\"]}}]}",
	};

	(void)state;
	setenv("FB_TEST_KEY", "k", 1);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		fb_policy_unref(load(texts[i]));
	unsetenv("FB_TEST_KEY");
}

/* A secret under a wildcard that names one registrant's hosts loads: the
 * public suffix is to the right of a label the owner holds. */
static void test_secret_under_registrant_wildcard(void **state)
{
	static const char *const keys[] = {
		"*.example.com", "api.*.example.com", "*.example.co.uk",
		"*.docs.github.io", "*.bucket.s3.amazonaws.com",
		"*.svc.cluster.local", "*.ec2.example.amazonaws.com",
	};
	char text[256];

	(void)state;
	setenv("FB_TEST_KEY", "k", 1);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(text, sizeof(text), "allow:\n  \"%s\":\n    - transform: [{headers: {x-k: \"${env:FB_TEST_KEY}\"}}]\n",
			 keys[i]);
		fb_policy_unref(load(text));
	}
	unsetenv("FB_TEST_KEY");
}

static void test_secret_from_file(void **state)
{
	char path[] = "/tmp/fb-test-key-XXXXXX", text[256];
	int fd = mkstemp(path);
	struct fb_policy *p;
	const struct fb_header_set *h;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "sk-from-file\n", 13), 13);
	close(fd);
	snprintf(text, sizeof(text), "allow:\n  a.com:\n    - transform: [{headers: {x-k: \"k=${file:%s};$${env:NOT};$5\"}}]\n", path);
	p = load(text);
	h = &p->domains[0].rules[0].set[0];
	/* one trailing newline dropped; $${ is a literal ${; a lone $ stays */
	assert_string_equal(h->value, "k=sk-from-file;${env:NOT};$5");
	assert_non_null(strstr(h->source, "${file:"));
	fb_policy_unref(p);
	unlink(path);
}

static void test_publics_and_refs(void **state)
{
	struct fb_cidr pub;
	char err[128];
	struct fb_load_opts o = { .publics = &pub, .npublics = 1 };
	struct fb_diags d = { 0 };
	struct fb_policy *p;

	(void)state;
	assert_int_equal(fb_cidr_parse("10.9.0.0/16", &pub, err, sizeof(err)), 0);
	p = fb_policy_load("allow-all", 9, &o, &d);
	assert_non_null(p);
	assert_int_equal(p->npublics, 1);
	assert_memory_equal(&p->publics[0], &pub, sizeof(pub));
	assert_ptr_equal(fb_policy_ref(p), p);
	assert_int_equal(p->refs, 2);
	fb_policy_unref(p);
	assert_int_equal(p->refs, 1);
	fb_policy_unref(p); /* LeakSanitizer checks it is gone */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_empty_custom),
		cmocka_unit_test(test_list_form),
		cmocka_unit_test(test_subnets),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_header_regex_case),
		cmocka_unit_test(test_json_is_accepted),
		cmocka_unit_test(test_legacy_shape),
		cmocka_unit_test(test_legacy_many_domains),
		cmocka_unit_test(test_swaps_reuse_memory),
		cmocka_unit_test(test_arena_holds_what_names_take),
		cmocka_unit_test(test_large_policy_in_huge_pages),
		cmocka_unit_test(test_vercel_examples),
		cmocka_unit_test(test_secret_under_registrant_wildcard),
		cmocka_unit_test(test_secret_from_file),
		cmocka_unit_test(test_publics_and_refs),
	};

	return cmocka_run_group_tests_name("policy load", tests, NULL, NULL);
}
