/*
 * test_policy_oom.c — a load that runs out of memory is refused: each
 * allocation the loader makes is failed in turn, and every run must give
 * either no policy or exactly the policy a normal load gives, never one
 * with a matcher, header, rule or CIDR list quietly missing.
 *
 * The allocator is replaced in this program, which a sanitizer's own
 * allocator does not allow: under ASan the test skips.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/policy.h"

#if defined(__SANITIZE_ADDRESS__)
#define REPLACE_ALLOCATOR 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPLACE_ALLOCATOR 0
#endif
#endif
#ifndef REPLACE_ALLOCATOR
#define REPLACE_ALLOCATOR 1
#endif

#if REPLACE_ALLOCATOR
static long fail_after = -1; /* allocations to allow before one fails */
static int failed;

static int fail_now(void)
{
	if (fail_after < 0 || fail_after-- > 0)
		return 0;
	failed = 1;
	errno = ENOMEM;
	return 1;
}

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

void *malloc(size_t n)
{
	return fail_now() ? NULL : __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __libc_realloc(p, n);
}

/* The policy's redacted dump, loaded with allocation `n` failing (-1: none). */
static char *load_failing(const char *text, long n, int *did_fail)
{
	struct fb_diags d = { 0 };
	struct fb_policy *p;
	char *dump = NULL;

	failed = 0;
	fail_after = n;
	p = fb_policy_load(text, strlen(text), NULL, &d);
	fail_after = -1;
	*did_fail = failed;
	if (p) {
		dump = fb_policy_dump(p, false);
		fb_policy_unref(p);
	}
	fb_diags_free(&d);
	return dump;
}

static void every_allocation_fails_closed(const char *text)
{
	int did_fail;
	char *ref = load_failing(text, -1, &did_fail);
	long n;

	assert_non_null(ref);
	for (n = 0;; n++) {
		char *got = load_failing(text, n, &did_fail);

		if (!did_fail) { /* the load made fewer than n allocations */
			free(got);
			break;
		}
		if (got && strcmp(got, ref) != 0)
			fail_msg("allocation %ld failed and the load kept:\n%s",
				 n, got);
		free(got);
	}
	assert_true(n > 100);
	free(ref);
}

static void test_object_form(void **state)
{
	(void)state;
	every_allocation_fails_closed(
		"allow:\n"
		"  \"*.npmjs.org\": []\n"
		"  api.example.com:\n"
		"    - match:\n"
		"        method: [POST, GET]\n"
		"        path: { startsWith: \"/v1/\" }\n"
		"        headers: [{ key: { exact: x-a }, value: { regex: \"^b\" } }]\n"
		"        queryString: [{ key: { exact: q } }]\n"
		"      transform:\n"
		"        - headers: { authorization: \"Bearer ${env:PATH}\", x-lit: lit }\n"
		"  internal.example.com:\n"
		"    - forwardURL: \"https://audit.example.com/fwd\"\n"
		"  r.example.com:\n"
		"    - match: { path: { exact: /x } }\n"
		"      response: { statusCode: 200, body: hi, contentType: text/plain }\n"
		"subnets:\n"
		"  allow: [\"10.0.0.0/8\"]\n"
		"  deny: [\"10.1.0.0/16\", \"192.0.2.0/24\"]\n");
}

static void test_legacy_shape(void **state)
{
	(void)state;
	every_allocation_fails_closed(
		"mode: custom\n"
		"allowedDomains: [a.example.com, B.example.com]\n"
		"injectionRules:\n"
		"  - domain: b.example.com\n"
		"    headers: { x-k: v }\n"
		"    match: { path: { startsWith: /p } }\n"
		"forwardRules:\n"
		"  - domain: c.example.com\n"
		"    forwardURL: \"https://f.example.com\"\n"
		"deniedCIDRs: [\"192.0.2.0/24\"]\n");
}
#else
static void test_object_form(void **state)
{
	(void)state;
	skip();
}

static void test_legacy_shape(void **state)
{
	(void)state;
	skip();
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_object_form),
		cmocka_unit_test(test_legacy_shape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
