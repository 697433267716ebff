/*
 * test_policy_errors.c — every way a policy is refused, each with the exact
 * FILE:LINE:COL: message it must print, and nothing loaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "policy/policy.h"

struct bad {
	const char *name;
	const char *text;
	const char *diags; /* exactly what fb_diags_to_string() gives */
};

static const struct bad cases[] = {
	{ "allow is a string", "allow: github.com\n",
	  "bad.yaml:1:8: expected a list of domains or a map of domain to rules, found a string \"github.com\"\n" },
	{ "unknown top-level key", "allow: []\nsubnet: {}\n",
	  "bad.yaml:2:1: unknown key \"subnet\" in the policy: expected allow, subnets, mode, allowedDomains, allowedCIDRs, deniedCIDRs, injectionRules, forwardRules or responseRules\n" },
	{ "unknown rule key", "allow:\n  a.com:\n    - transform: [{headers: {x-a: b}}]\n      matches: {}\n",
	  "bad.yaml:4:7: unknown key \"matches\" in a rule: expected match, transform, forwardURL or response\n" },
	{ "unknown subnets key", "subnets: {allow: [], permit: []}\n",
	  "bad.yaml:1:22: unknown key \"permit\" in subnets: expected allow or deny\n" },
	{ "duplicate key", "allow: []\nallow: {}\n",
	  "bad.yaml:2:1: duplicate key \"allow\" (first at 1:1)\n" },
	{ "duplicate JSON key", "{\"allow\": [], \"subnets\": {\"deny\": [], \"deny\": []}}",
	  "bad.yaml:1:39: duplicate key \"deny\" (first at 1:27)\n" },
	/* JSON takes the parser's fast path: the same messages, the same places */
	{ "JSON keys equal once normalised", "{\"allow\": [\"GitHub.com\", \"github.com.\"]}",
	  "bad.yaml:1:26: domain \"github.com.\" is the same as \"GitHub.com\" at 1:12 (both are github.com)\n" },
	{ "JSON statusCode quoted", "{\"allow\": {\"a.com\": [{\"response\": {\"statusCode\": \"200\"}}]}}",
	  "bad.yaml:1:50: expected an integer statusCode (200-599), found a string \"200\"\n" },
	{ "JSON over lines", "{\n  \"allow\": [\n    \"a.com\",\n    \"api*.example.com\"\n  ],\n"
	  "  \"subnets\": {\"deny\": [\"10.0.0.1/8\"]}\n}\n",
	  "bad.yaml:4:5: invalid domain \"api*.example.com\": wildcard must be a whole label (\"*.example.com\", not \"api*.example.com\")\n"
	  "bad.yaml:6:24: host bits set in \"10.0.0.1/8\" (did you mean 10.0.0.0/8?)\n" },
	{ "JSON rule with two actions", "{\"allow\": {\"a.com\": [{\"transform\": [{\"headers\": "
	  "{\"x-a\": \"b\\u00e9\"}}], \"forwardURL\": \"https://x.example/\"}]}}",
	  "bad.yaml:1:22: a rule takes exactly one of transform, forwardURL or response, found transform and forwardURL\n" },
	{ "keys equal once normalised", "allow:\n  GitHub.com: []\n  github.com.: []\n",
	  "bad.yaml:3:3: domain \"github.com.\" is the same as \"GitHub.com\" at 2:3 (both are github.com)\n" },
	{ "partial-label wildcard", "allow: [\"api*.example.com\"]\n",
	  "bad.yaml:1:9: invalid domain \"api*.example.com\": wildcard must be a whole label (\"*.example.com\", not \"api*.example.com\")\n" },
	{ "IP address as a domain", "allow: [\"10.0.0.1\"]\n",
	  "bad.yaml:1:9: invalid domain \"10.0.0.1\": an IP address is not a name\n" },
	{ "domain list holds a list", "allow:\n  - a.com\n  - [x]\n",
	  "bad.yaml:3:5: expected a domain, found a list\n" },
	{ "bad CIDR", "subnets:\n  allow: [\"10.0.0.300/8\"]\n",
	  "bad.yaml:2:11: invalid address \"10.0.0.300\" in \"10.0.0.300/8\" (expected IPv4 or IPv6, like 10.0.0.0/8 or 2001:db8::/32)\n" },
	{ "host bits set", "subnets:\n  deny: [\"10.0.0.1/8\"]\n",
	  "bad.yaml:2:10: host bits set in \"10.0.0.1/8\" (did you mean 10.0.0.0/8?)\n" },
	{ "CIDRs not a list", "subnets: {allow: 10.0.0.0/8}\n",
	  "bad.yaml:1:18: expected a list of CIDRs in subnets.allow, found a string \"10.0.0.0/8\"\n" },
	{ "transform and forwardURL", "allow:\n  a.com:\n    - transform: [{headers: {x-a: b}}]\n      forwardURL: https://x.example/\n",
	  "bad.yaml:3:7: a rule takes exactly one of transform, forwardURL or response, found transform and forwardURL\n" },
	{ "no action", "allow:\n  a.com:\n    - match: {method: [GET]}\n",
	  "bad.yaml:3:7: a rule needs one of transform, forwardURL or response\n" },
	{ "rules not a list", "allow:\n  a.com: {forwardURL: https://x.example/}\n",
	  "bad.yaml:2:10: expected a list of rules for \"a.com\", found a map\n" },
	{ "statusCode out of range", "allow:\n  a.com:\n    - response: {statusCode: 700}\n",
	  "bad.yaml:3:30: statusCode 700 out of range 200-599\n" },
	{ "statusCode quoted", "allow:\n  a.com:\n    - response: {statusCode: \"200\"}\n",
	  "bad.yaml:3:30: expected an integer statusCode (200-599), found a string \"200\"\n" },
	{ "statusCode missing", "allow:\n  a.com:\n    - response: {body: x, contentType: text/plain}\n",
	  "bad.yaml:3:17: response needs a statusCode (200-599)\n" },
	{ "body on 204", "allow:\n  a.com:\n    - response: {statusCode: 204, body: hi, contentType: text/plain}\n",
	  "bad.yaml:3:41: a 204 response has no body\n" },
	{ "body without contentType", "allow:\n  a.com:\n    - response: {statusCode: 403, body: hi}\n",
	  "bad.yaml:3:41: a response body needs a contentType\n" },
	{ "forwardURL with a query", "allow:\n  a.com:\n    - forwardURL: \"https://proxy.example/x?a=1\"\n",
	  "bad.yaml:3:19: forwardURL \"https://proxy.example/x?...\" has a query or fragment: the request's own path and query are appended\n" },
	{ "forwardURL http://", "allow:\n  a.com:\n    - forwardURL: \"http://proxy.example/x\"\n",
	  "bad.yaml:3:19: forwardURL must be an https:// URL, found a string \"http://proxy.example/x\"\n" },
	{ "forwardURL http:// with credentials", "allow:\n  a.com:\n    - forwardURL: \"http://u:SECRET@proxy.example/x?t=TOKEN#F\"\n",
	  "bad.yaml:3:19: forwardURL must be an https:// URL, found a string \"http://...@proxy.example/x?...\"\n" },
	{ "forwardURL with a token in its query", "allow:\n  a.com:\n    - forwardURL: \"https://u:SECRET@proxy.example/x?key=TOKEN\"\n",
	  "bad.yaml:3:19: forwardURL \"https://...@proxy.example/x?...\" has a query or fragment: the request's own path and query are appended\n" },
	{ "forwardURL with a fragment", "allow:\n  a.com:\n    - forwardURL: \"https://proxy.example/x#TOKEN\"\n",
	  "bad.yaml:3:19: forwardURL \"https://proxy.example/x#...\" has a query or fragment: the request's own path and query are appended\n" },
	{ "forwardURL a number", "allow:\n  a.com:\n    - forwardURL: 5\n",
	  "bad.yaml:3:19: forwardURL must be an https:// URL, found a number \"5\"\n" },
	{ "forwardURL with userinfo", "allow:\n  a.com:\n    - forwardURL: \"https://u:p@proxy.example/x\"\n",
	  "bad.yaml:3:19: forwardURL must not carry credentials (user@host)\n" },
	{ "forwardURL without host", "allow:\n  a.com:\n    - forwardURL: \"https:///x\"\n",
	  "bad.yaml:3:19: invalid forwardURL \"https:///x\": no host\n" },
	{ "forwardURL bad port", "allow:\n  a.com:\n    - forwardURL: \"https://p.example:99999/\"\n",
	  "bad.yaml:3:19: invalid forwardURL \"https://p.example:99999/\": invalid port\n" },
	{ "bad regex", "allow:\n  a.com:\n    - match: {path: {regex: \"^/v1/(chat\"}}\n      response: {statusCode: 403}\n",
	  "bad.yaml:3:29: invalid regex: missing closing parenthesis at offset 10\n" },
	{ "matcher with two kinds", "allow:\n  a.com:\n    - match: {path: {exact: /a, regex: b}}\n      response: {statusCode: 403}\n",
	  "bad.yaml:3:21: a matcher takes exactly one of exact, startsWith or regex, found exact and regex\n" },
	/* a literal path or query no normalized request holds */
	{ "escaped letter in a path", "allow:\n  a.com:\n    - match: {path: {startsWith: \"/v1/%66iles\"}}\n      response: {statusCode: 403}\n",
	  "bad.yaml:3:34: \"/v1/%66iles\" never matches: requests are matched with escapes of letters, digits and -._~ decoded and the others in upper case (RFC 3986 section 6.2.2); write \"/v1/files\"\n" },
	{ "lower-case escape in a path", "allow:\n  a.com:\n    - match: {path: {exact: /a%2fb}}\n      response: {statusCode: 403}\n",
	  "bad.yaml:3:29: \"/a%2fb\" never matches: requests are matched with escapes of letters, digits and -._~ decoded and the others in upper case (RFC 3986 section 6.2.2); write \"/a%2Fb\"\n" },
	{ "escapes in a query matcher", "allow:\n  a.com:\n    - match: {queryString: [{key: {exact: m%6fdel}, value: {startsWith: \"%7e\"}}]}\n      response: {statusCode: 403}\n",
	  "bad.yaml:3:43: \"m%6fdel\" never matches: requests are matched with escapes of letters, digits and -._~ decoded and the others in upper case (RFC 3986 section 6.2.2); write \"model\"\n"
	  "bad.yaml:3:73: \"%7e\" never matches: requests are matched with escapes of letters, digits and -._~ decoded and the others in upper case (RFC 3986 section 6.2.2); write \"~\"\n" },
	{ "lower-case escape in a path regex", "allow:\n  a.com:\n    - match: {path: {regex: \"^/a%2fb\"}}\n      response: {statusCode: 403}\n",
	  "bad.yaml:3:29: regex \"^/a%2fb\" never matches %2f: requests are matched with escapes of letters, digits and -._~ decoded and the others in upper case (RFC 3986 section 6.2.2); write \"%2F\"\n" },
	{ "escaped letter in a query regex", "allow:\n  a.com:\n    - match: {queryString: [{value: {regex: \"%2F|%66\"}}]}\n      response: {statusCode: 403}\n",
	  "bad.yaml:3:45: regex \"%2F|%66\" never matches %66: requests are matched with escapes of letters, digits and -._~ decoded and the others in upper case (RFC 3986 section 6.2.2); write \"f\"\n" },
	{ "stray percent in a path", "allow:\n  a.com:\n    - match: {path: {exact: /100%}}\n      response: {statusCode: 403}\n",
	  "bad.yaml:3:29: \"/100%\" never matches: a '%' in a path or query starts an escape, two hex digits (write a '%' as %25)\n" },
	{ "matcher with no kind", "allow:\n  a.com:\n    - match: {path: {}}\n      response: {statusCode: 403}\n",
	  "bad.yaml:3:21: a matcher needs one of exact, startsWith or regex\n" },
	{ "match with no dimension", "allow:\n  a.com:\n    - match: {}\n      response: {statusCode: 403}\n",
	  "bad.yaml:3:14: match has no dimension: expected at least one of path, method, queryString or headers\n" },
	{ "empty method list", "allow:\n  a.com:\n    - match: {method: []}\n      response: {statusCode: 403}\n",
	  "bad.yaml:3:23: method is an empty list: list at least one entry or leave it out\n" },
	{ "key-value matcher with neither", "allow:\n  a.com:\n    - match: {headers: [{}]}\n      response: {statusCode: 403}\n",
	  "bad.yaml:3:25: a headers matcher needs a key or a value matcher\n" },
	{ "redacted placeholder", "allow:\n  a.com:\n    - transform: [{headers: {authorization: \"<redacted>\"}}]\n",
	  "bad.yaml:3:45: header value contains \"<redacted>\", the read-back placeholder: replace it with the secret or a ${env:NAME} or ${file:PATH} reference\n" },
	{ "missing environment variable", "allow:\n  a.com:\n    - transform: [{headers: {authorization: \"Bearer ${env:FB_TEST_UNSET_VAR}\"}}]\n",
	  "bad.yaml:3:45: environment variable FB_TEST_UNSET_VAR is not set\n" },
	{ "unknown reference", "allow:\n  a.com:\n    - transform: [{headers: {authorization: \"${vault:x}\"}}]\n",
	  "bad.yaml:3:45: unsupported reference in header value: expected ${env:NAME} or ${file:PATH} (write $${ for a literal ${)\n" },
	{ "relative secret file", "allow:\n  a.com:\n    - transform: [{headers: {x-k: \"${file:key.txt}\"}}]\n",
	  "bad.yaml:3:35: secret file path must be absolute, found \"key.txt\"\n" },
	{ "CR LF in a literal value", "allow:\n  a.com:\n    - transform: [{headers: {x-a: \"a\\r\\nb\"}}]\n",
	  "bad.yaml:3:35: header value contains a CR, LF or NUL character\n" },
	/* a secret goes only under a key that names one registrant's hosts */
	{ "secret on the catch-all", "allow:\n  \"*\":\n    - transform: [{headers: {x-a: b, x-k: \"${env:PATH}\"}}]\n",
	  "bad.yaml:2:3: \"*\" matches hosts of any owner (it matches every host): its rules cannot inject ${env:PATH}\n" },
	{ "secret on a top-level domain", "allow:\n  \"*.com\":\n    - transform: [{headers: {x-k: \"${env:PATH}\"}}]\n",
	  "bad.yaml:2:3: \"*.com\" matches hosts of any owner (\"com\" is a public suffix): its rules cannot inject ${env:PATH}\n" },
	{ "secret on www.*.com", "allow:\n  www.*.com:\n    - transform: [{headers: {x-k: \"${env:PATH}\"}}]\n",
	  "bad.yaml:2:3: \"www.*.com\" matches hosts of any owner (\"com\" is a public suffix): its rules cannot inject ${env:PATH}\n" },
	{ "secret on a two-label suffix", "allow:\n  \"*.co.uk\":\n    - transform: [{headers: {x-k: \"${env:PATH}\"}}]\n",
	  "bad.yaml:2:3: \"*.co.uk\" matches hosts of any owner (\"co.uk\" is a public suffix): its rules cannot inject ${env:PATH}\n" },
	/* the list's private section: anyone gets a name under these */
	{ "secret on a hosting platform", "allow:\n  \"*.github.io\":\n    - transform: [{headers: {x-k: \"${env:PATH}\"}}]\n",
	  "bad.yaml:2:3: \"*.github.io\" matches hosts of any owner (\"github.io\" is a public suffix): its rules cannot inject ${env:PATH}\n" },
	{ "secret on any bucket", "allow:\n  \"*.s3.amazonaws.com\":\n    - transform: [{headers: {x-k: \"${file:/etc/hostname}\"}}]\n",
	  "bad.yaml:2:3: \"*.s3.amazonaws.com\" matches hosts of any owner (\"s3.amazonaws.com\" is a public suffix): its rules cannot inject ${file:/etc/hostname}\n" },
	/* public suffixes below the key: anyone's bucket is *.amazonaws.com */
	{ "secret over suffixes below", "allow:\n  \"*.amazonaws.com\":\n    - transform: [{headers: {x-k: \"${env:PATH}\"}}]\n",
	  "bad.yaml:2:3: \"*.amazonaws.com\" matches hosts of any owner (public suffixes lie under \"amazonaws.com\"): its rules cannot inject ${env:PATH}\n" },
	/* an unknown single label is one too (the list's "*" rule) */
	{ "secret on an unlisted top label", "allow:\n  \"api.*.internal\":\n    - transform: [{headers: {x-k: \"${env:PATH}\"}}]\n",
	  "bad.yaml:2:3: \"api.*.internal\" matches hosts of any owner (\"internal\" is a public suffix): its rules cannot inject ${env:PATH}\n" },
	{ "framing header", "allow:\n  a.com:\n    - transform: [{headers: {Content-Length: \"5\"}}]\n",
	  "bad.yaml:3:30: a transform cannot set content-length: it frames the message or the connection\n" },
	{ "header name not a token", "allow:\n  a.com:\n    - transform: [{headers: {\"x a\": \"5\"}}]\n",
	  "bad.yaml:3:30: invalid header name \"x a\": expected an RFC 9110 token (letters, digits, !#$%&'*+-.^_`|~)\n" },
	{ "header set twice", "allow:\n  a.com:\n    - transform: [{headers: {X-A: \"1\"}}, {headers: {x-a: \"2\"}}]\n",
	  "bad.yaml:3:53: header x-a is set twice in this rule\n" },
	{ "empty transform", "allow:\n  a.com:\n    - transform: []\n",
	  "bad.yaml:3:18: transform is an empty list: list at least one entry or leave it out\n" },
	{ "empty text", "",
	  "bad.yaml:1:1: empty policy: write deny-all to refuse everything\n" },
	{ "only comments", "# nothing\n  # here\n",
	  "bad.yaml:1:1: empty policy: write deny-all to refuse everything\n" },
	{ "null document", "\n~\n",
	  "bad.yaml:2:1: empty policy: write deny-all to refuse everything\n" },
	{ "other mode word", "allow-some\n",
	  "bad.yaml:1:1: expected allow-all, deny-all or a map with allow and subnets, found a string \"allow-some\"\n" },
	{ "YAML syntax error", "allow: [a.com\nsubnets: {}\n",
	  "bad.yaml:2:8: invalid YAML: did not find expected ',' or ']' while parsing a flow sequence at 1:8\n" },
	{ "JSON syntax error", "{\"allow\": [\"a.com\",]]}",
	  "bad.yaml:1:21: invalid YAML: did not find expected ',' or '}' while parsing a flow mapping at 1:1\n" },
	{ "second document", "deny-all\n---\nallow-all\n",
	  "bad.yaml:2:1: expected one YAML document, found a second\n" },
	{ "alias", "allow: *x\n",
	  "bad.yaml:1:8: YAML aliases are not supported: write the value out\n" },
	{ "tag", "allow: !!str a.com\n",
	  "bad.yaml:1:8: YAML tags are not supported (found tag:yaml.org,2002:str)\n" },
	{ "object and legacy keys mixed", "mode: custom\nallow: []\n",
	  "bad.yaml:2:1: mode and allow cannot be used together: write either the object form (allow, subnets) or the legacy shape (mode, allowedDomains, ...)\n" },
	{ "legacy headerNames", "mode: custom\ninjectionRules:\n  - domain: a.com\n    headerNames: [authorization]\n",
	  "bad.yaml:4:18: headerNames is read-back only: write headers with the values (or ${env:NAME} references) instead\n" },
	{ "legacy unknown mode", "mode: open\n",
	  "bad.yaml:1:7: expected mode allow-all, deny-all or custom, found a string \"open\"\n" },
	{ "legacy lists under allow-all", "mode: allow-all\nallowedDomains: [a.com]\n",
	  "bad.yaml:2:1: allowedDomains needs mode custom, found mode allow-all\n" },
	{ "legacy rule without domain", "mode: custom\nforwardRules:\n  - forwardURL: https://x.example/\n",
	  "bad.yaml:3:5: an entry of forwardRules needs domain and forwardURL\n" },
	{ "several errors, all reported in source order",
	  "allow:\n  \"api*.x.com\": []\n  b.com:\n    - forwardURL: \"http://x.example\"\n    - {}\nsubnets:\n  permit: []\n  deny: [\"1.2.3.4/8\", \"::1/129\"]\n",
	  "bad.yaml:2:3: invalid domain \"api*.x.com\": wildcard must be a whole label (\"*.example.com\", not \"api*.example.com\")\n"
	  "bad.yaml:4:19: forwardURL must be an https:// URL, found a string \"http://x.example\"\n"
	  "bad.yaml:5:7: a rule needs one of transform, forwardURL or response\n"
	  "bad.yaml:7:3: unknown key \"permit\" in subnets: expected allow or deny\n"
	  "bad.yaml:8:10: host bits set in \"1.2.3.4/8\" (did you mean 1.0.0.0/8?)\n"
	  "bad.yaml:8:23: prefix length 129 out of range 0-128 in \"::1/129\"\n" },
	{ "duplicate key does not hide later errors", "allow: []\nallow: []\nsubnets: {deny: [\"300.0.0.0/8\"]}\n",
	  "bad.yaml:2:1: duplicate key \"allow\" (first at 1:1)\n"
	  "bad.yaml:3:18: invalid address \"300.0.0.0\" in \"300.0.0.0/8\" (expected IPv4 or IPv6, like 10.0.0.0/8 or 2001:db8::/32)\n" },
};

/* Loads `text` as "bad.yaml" and checks it fails with exactly `want`. */
static void expect_refused(const char *text, size_t len,
			   const struct fb_load_opts *opts, const char *want)
{
	struct fb_load_opts o = opts ? *opts : (struct fb_load_opts){ 0 };
	struct fb_diags d = { 0 };
	struct fb_policy *p;
	char *got;

	o.filename = "bad.yaml";
	p = fb_policy_load(text, len, &o, &d);
	got = fb_diags_to_string(&d);
	assert_null(p);
	assert_string_equal(got, want);
	free(got);
	fb_diags_free(&d);
}

static void test_case(void **state)
{
	const struct bad *c = *state;

	expect_refused(c->text, strlen(c->text), NULL, c->diags);
}

static void test_deep_nesting(void **state)
{
	char text[200];

	(void)state;
	memset(text, '[', 70);
	memset(text + 70, ']', 70);
	text[140] = '\0';
	expect_refused(text, 140, NULL,
		       "bad.yaml:1:65: nesting deeper than 64 levels\n");
}

static void test_document_too_large(void **state)
{
	size_t len = (16u << 20) + 1;
	char *text = malloc(len);

	(void)state;
	assert_non_null(text);
	memset(text, ' ', len);
	expect_refused(text, len, NULL,
		       "bad.yaml: policy is 16777217 bytes, more than the limit of 16777216\n");
	free(text);
}

/* The compiled-size limit, with a small limit and with the default. */
static void test_huge_regex(void **state)
{
	struct fb_load_opts small = { .regex_max_bytes = 100 };
	const char *text = "allow:\n  a.com:\n    - match: {path: {regex: \"(abc|def|ghi|jkl){1,20}\"}}\n      response: {statusCode: 403}\n";
	char *big;
	size_t n = 70000, off;

	(void)state;
	expect_refused(text, strlen(text), &small,
		       "bad.yaml:3:29: regex compiles to 1090 bytes, more than the limit of 100\n");
	big = malloc(n + 200);
	assert_non_null(big);
	off = (size_t)sprintf(big, "allow:\n  a.com:\n    - match: {path: {regex: \"");
	memset(big + off, 'a', n);
	strcpy(big + off + n, "\"}}\n      response: {statusCode: 403}\n");
	expect_refused(big, strlen(big), NULL,
		       "bad.yaml:3:29: invalid regex: pattern string is longer than the limit set by the application at offset 0\n");
	free(big);
}

/* At most 100 messages, then a count of the rest. */
static void test_error_cap(void **state)
{
	char *text = malloc(150 * 16 + 16), *want, *got;
	struct fb_diags d = { 0 };
	struct fb_load_opts o = { .filename = "bad.yaml" };
	size_t off = (size_t)sprintf(text, "allow:\n");

	(void)state;
	for (int i = 0; i < 150; i++)
		off += (size_t)sprintf(text + off, "  - \"a*%d.x\"\n", i);
	assert_null(fb_policy_load(text, off, &o, &d));
	assert_int_equal(d.n, 101);
	assert_string_equal(d.v[100].msg, "... and 50 more errors");
	assert_int_equal(d.v[99].line, 101);
	got = fb_diags_to_string(&d);
	want = "bad.yaml: ... and 50 more errors\n";
	assert_string_equal(got + strlen(got) - strlen(want), want);
	free(got);
	fb_diags_free(&d);
	free(text);
}

static char *write_temp(const char *content, size_t len)
{
	char *path = strdup("/tmp/fb-test-secret-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

static void expect_file_secret_refused(const char *content, size_t len,
				       const char *why)
{
	char *path = write_temp(content, len), text[256], want[256];

	snprintf(text, sizeof(text), "allow:\n  a.com:\n    - transform: [{headers: {x-k: \"${file:%s}\"}}]\n", path);
	snprintf(want, sizeof(want), "bad.yaml:3:35: secret file %s %s\n", path, why);
	expect_refused(text, strlen(text), NULL, want);
	unlink(path);
	free(path);
}

static void test_secret_file_problems(void **state)
{
	char text[256];

	(void)state;
	expect_file_secret_refused("ab\r\ncd\n", 7, "contains a CR, LF or NUL character (only one trailing newline is dropped)");
	expect_file_secret_refused("key\n\n", 5, "contains a CR, LF or NUL character (only one trailing newline is dropped)");
	expect_file_secret_refused("a\0b", 3, "contains a CR, LF or NUL character (only one trailing newline is dropped)");
	expect_file_secret_refused("\n", 1, "is empty");
	snprintf(text, sizeof(text), "allow:\n  a.com:\n    - transform: [{headers: {x-k: \"${file:/nonexistent/fb-key}\"}}]\n");
	expect_refused(text, strlen(text), NULL,
		       "bad.yaml:3:35: cannot read secret file /nonexistent/fb-key: No such file or directory\n");
}

static void test_secret_env_problems(void **state)
{
	const char *text = "allow:\n  a.com:\n    - transform: [{headers: {x-k: \"${env:FB_TEST_SECRET}\"}}]\n";

	(void)state;
	setenv("FB_TEST_SECRET", "line1\nline2", 1);
	expect_refused(text, strlen(text), NULL,
		       "bad.yaml:3:35: environment variable FB_TEST_SECRET contains a CR or LF character, which a header value cannot hold\n");
	setenv("FB_TEST_SECRET", "", 1);
	expect_refused(text, strlen(text), NULL,
		       "bad.yaml:3:35: environment variable FB_TEST_SECRET is empty\n");
	setenv("FB_TEST_SECRET", "x<redacted>", 1);
	expect_refused(text, strlen(text), NULL,
		       "bad.yaml:3:35: header value contains \"<redacted>\", the read-back placeholder: replace it with the secret or a ${env:NAME} or ${file:PATH} reference\n");
	unsetenv("FB_TEST_SECRET");
}

/* A secret never appears in a message, whatever is wrong with it. */
static void test_secret_not_in_messages(void **state)
{
	const char *text = "allow:\n  a.com:\n    - transform: [{headers: {x-k: \"${env:FB_TEST_SECRET}\"}}]\n";
	struct fb_load_opts o = { .filename = "bad.yaml" };
	struct fb_diags d = { 0 };
	char *got;

	(void)state;
	setenv("FB_TEST_SECRET", "sk-TOPSECRET\r", 1);
	assert_null(fb_policy_load(text, strlen(text), &o, &d));
	got = fb_diags_to_string(&d);
	assert_null(strstr(got, "TOPSECRET"));
	free(got);
	fb_diags_free(&d);
	unsetenv("FB_TEST_SECRET");
}

/* Loading `path` fails with the one problem of an empty policy. */
static void expect_empty_policy(const char *path)
{
	struct fb_diags d = { 0 };
	char want[256], *got;

	assert_null(fb_policy_load_file(path, NULL, &d));
	got = fb_diags_to_string(&d);
	snprintf(want, sizeof(want), "%s:1:1: empty policy: write deny-all to refuse everything\n", path);
	assert_string_equal(got, want);
	free(got);
	fb_diags_free(&d);
}

static void test_empty_file(void **state)
{
	char *path = write_temp("", 0);
	struct fb_diags d = { 0 };
	char *got;

	(void)state;
	expect_empty_policy(path);
	unlink(path);
	free(path);
	assert_null(fb_policy_load_file("/nonexistent/policy.yaml", NULL, &d));
	got = fb_diags_to_string(&d);
	assert_string_equal(got, "/nonexistent/policy.yaml: cannot read policy: No such file or directory\n");
	free(got);
	fb_diags_free(&d);
}

/* A FIFO at the policy's path with no writer: the proxy re-reads it on
 * its one thread (SIGHUP), so the load must not wait for a writer. */
static void test_fifo_without_writer(void **state)
{
	char dir[] = "/tmp/fb-test-fifo-XXXXXX", path[64];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/policy.yaml", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(10); /* a load that waits ends the test here */
	expect_empty_policy(path);
	alarm(0);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	size_t ncases = sizeof(cases) / sizeof(cases[0]);
	const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_document_too_large),
		cmocka_unit_test(test_huge_regex),
		cmocka_unit_test(test_error_cap),
		cmocka_unit_test(test_secret_file_problems),
		cmocka_unit_test(test_secret_env_problems),
		cmocka_unit_test(test_secret_not_in_messages),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_fifo_without_writer),
	};
	size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
	struct CMUnitTest *tests = calloc(ncases + nfixed, sizeof(*tests));
	int rc;

	for (size_t i = 0; i < ncases; i++)
		tests[i] = (struct CMUnitTest){
			.name = cases[i].name,
			.test_func = test_case,
			.initial_state = (void *)&cases[i],
		};
	memcpy(tests + ncases, fixed, sizeof(fixed));
	rc = _cmocka_run_group_tests("policy errors", tests, ncases + nfixed,
				     NULL, NULL);
	free(tests);
	return rc;
}
