/*
 * test_doc_json.c — the JSON fast path of the document parser: it takes
 * the JSON a control client sends, gives node for node (kind, text,
 * quoting, LINE:COL) the tree libyaml gives, and declines whatever libyaml
 * would read otherwise or refuse, so that no diagnostic depends on which
 * path read the text.  tests/fuzz/fuzz_doc_json.c holds the two to each
 * other on any bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/doc.h"
#include "tests/lib/doc_paths.h"

/* Whether the fast path takes `text`; either way, both paths agree. */
static bool fast_path_takes(const char *text, size_t len)
{
	struct fb_node *fast = fb_doc_parse_json(text, len);
	char *d1, *d2;
	struct fb_node *got = doc_parse_path(text, len, false, &d1);
	struct fb_node *want = doc_parse_path(text, len, true, &d2);

	if (!doc_same_tree(got, want) || strcmp(d1, d2))
		fail_msg("paths differ on [%.*s]:\n%s---\n%s", (int)len, text,
			 d1, d2);
	fb_node_free(got);
	fb_node_free(want);
	fb_node_free(fast);
	free(d1);
	free(d2);
	return fast != NULL;
}

static bool takes(const char *text)
{
	return fast_path_takes(text, strlen(text));
}

static void test_takes_json(void **state)
{
	char key[1100];

	(void)state;
	assert_true(takes("{\"allow\": [\"a.example\", \"*.b.example\"], "
			  "\"subnets\": {\"deny\": [\"203.0.113.0/24\"]}}\n"));
	assert_true(takes("{\"allow\":{\"a.com\":[{\"response\":{\"statusCode\":"
			  "200,\"body\":\"\",\"contentType\":\"x\"}}]}}"));
	assert_true(takes("[0, -0, 1.5, -2e10, 3E+2, 4e-1, true, false, null, "
			  "\"\", {}, [], [[{}]]]"));
	/* escapes, decoded as libyaml decodes them */
	assert_true(takes("{\"k\": \"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0041"
			  "\\u00e9\\u20ac\\u0000e\"}"));
	/* tabs between tokens inside the object, CRLF line breaks */
	assert_true(takes("{\r\n\t\"a\" :\t[ 1 ,\r\n  2 ]\t}\r\n"));
	/* the key 1023 characters before its ':' (with the quote) */
	snprintf(key, sizeof(key), "{\"%01021d\": 1}", 0);
	assert_true(takes(key));
}

static void test_declines_the_rest(void **state)
{
	char text[1100], deep[200] = "";

	(void)state;
	assert_false(takes("\t{\"a\": 1}"));      /* tab where a line starts */
	assert_false(takes("{\"a\": 1}\n\t"));
	assert_false(takes("{\"a\": 1}\r"));      /* a lone CR */
	assert_false(takes("{\"a\": \"\\ud800\"}")); /* a surrogate */
	assert_false(takes("{\"a\": \"\xc3\xa9\"}")); /* not ASCII */
	assert_false(takes("{\"a\": \"\\x41\"}"));  /* YAML's escape, not JSON's */
	assert_false(takes("{\"a\": \"x\ty\"}"));  /* a raw tab in a string */
	assert_false(takes("{\"a\": 1, }"));
	assert_false(takes("{\"a\": 01}"));
	assert_false(takes("{\"a\": yes}"));
	assert_false(takes("{'a': 1}"));
	assert_false(takes("{\"a\": 1} # c"));
	assert_false(takes("{\"a\"\n: 1}"));       /* ':' on another line */
	assert_false(takes("allow: []"));
	assert_false(takes("\"allow-all\""));
	assert_false(takes(""));
	assert_false(takes("{\"a\": 1}{}"));
	snprintf(text, sizeof(text), "{\"%01022d\": 1}", 0); /* key too far */
	assert_false(takes(text));
	for (int i = 0; i < FB_DOC_MAX_DEPTH + 1; i++)
		strcat(deep, "[");
	for (int i = 0; i < FB_DOC_MAX_DEPTH + 1; i++)
		strcat(deep, "]");
	assert_false(takes(deep));
	deep[FB_DOC_MAX_DEPTH] = '\0'; /* 64 deep: taken */
	memset(deep + FB_DOC_MAX_DEPTH, ']', FB_DOC_MAX_DEPTH);
	deep[2 * FB_DOC_MAX_DEPTH] = '\0';
	assert_true(takes(deep));
}

/* Duplicate keys come out of both paths reported and dropped alike. */
static void test_duplicates(void **state)
{
	static const char text[] =
		"{\"a\": {\"b\": 1, \"b\": 2}, \"a\": 3, \"c\": [{\"d\": 1, \"d\": 1}]}";
	char *d;
	struct fb_node *n;

	(void)state;
	assert_true(takes(text));
	n = doc_parse_path(text, strlen(text), false, &d);
	assert_string_equal(d, "t:1:16: duplicate key \"b\" (first at 1:8)\n"
			       "t:1:25: duplicate key \"a\" (first at 1:2)\n"
			       "t:1:48: duplicate key \"d\" (first at 1:40)\n");
	assert_int_equal(n->n, 2);
	free(d);
	fb_node_free(n);
}

/* What a control client sends: a 10k-domain list, on the fast path. */
static void test_large_policy(void **state)
{
	size_t cap = 400000, len = 0;
	char *text = malloc(cap);

	(void)state;
	assert_non_null(text);
	len += (size_t)snprintf(text, cap, "{\"allow\": [\"bench.test\"");
	for (int i = 0; i < 10000; i++)
		len += (size_t)snprintf(text + len, cap - len,
					", \"h%d-a.rules.example\"", i);
	len += (size_t)snprintf(text + len, cap - len, "]}\n");
	assert_true(fast_path_takes(text, len));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_takes_json),
		cmocka_unit_test(test_declines_the_rest),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_large_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
