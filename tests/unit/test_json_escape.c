/* test_json_escape.c — JSON string escaping: structure-breaking bytes
 * escaped, valid UTF-8 kept, invalid UTF-8 replaced by U+FFFD. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/policy.h"

static void expect_escape(const char *in, size_t len, const char *want)
{
	char out[256];
	char *text = NULL;
	size_t size = 0;
	FILE *f;

	assert_int_equal(fb_json_escape(in, len, out, sizeof(out)),
			 (int)strlen(want));
	assert_string_equal(out, want);

	/* the stream writer gives the same text, quoted */
	f = open_memstream(&text, &size);
	assert_non_null(f);
	fb_json_write_string(f, in, len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(size, strlen(want) + 2);
	assert_memory_equal(text + 1, want, strlen(want));
	assert_int_equal(text[0], '"');
	assert_int_equal(text[size - 1], '"');
	free(text);
}

#define EXPECT(in, want) expect_escape(in, sizeof(in) - 1, want)

static void test_structure_is_escaped(void **state)
{
	(void)state;
	EXPECT("a\"b\\c", "a\\\"b\\\\c");
	EXPECT("\n\r\t", "\\n\\r\\t");
	EXPECT("\x00\x01\x1f\x7f", "\\u0000\\u0001\\u001f\\u007f");
}

static void test_valid_utf8_passes_through(void **state)
{
	(void)state;
	EXPECT("caf\xc3\xa9", "caf\xc3\xa9");                 /* U+00E9 */
	EXPECT("\xe2\x82\xac", "\xe2\x82\xac");               /* U+20AC */
	EXPECT("\xef\xbf\xbf", "\xef\xbf\xbf");               /* U+FFFF */
	EXPECT("\xf0\x9f\x94\xa5", "\xf0\x9f\x94\xa5");       /* U+1F525 */
	EXPECT("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");       /* U+10FFFF */
}

/* Each byte that starts no valid sequence becomes one U+FFFD; what
 * follows it is read afresh. */
static void test_invalid_utf8_is_replaced(void **state)
{
	(void)state;
	EXPECT("\xff", "\\ufffd");
	EXPECT("\x80x", "\\ufffdx");                  /* stray continuation */
	EXPECT("\xc0\xaf", "\\ufffd\\ufffd");         /* overlong '/' */
	EXPECT("\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd"); /* overlong */
	EXPECT("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"); /* surrogate */
	EXPECT("\xf4\x90\x80\x80",
	       "\\ufffd\\ufffd\\ufffd\\ufffd");       /* past U+10FFFF */
	EXPECT("\xc3", "\\ufffd");                    /* cut short */
	EXPECT("\xe2\x82", "\\ufffd\\ufffd");
	EXPECT("\xc3\"", "\\ufffd\\\"");          /* no quote swallowed */
}

static void test_small_buffer_is_refused(void **state)
{
	char out[4] = "xyz";

	(void)state;
	assert_int_equal(fb_json_escape("ab\n", 3, out, sizeof(out)), -1);
	assert_string_equal(out, "");
	assert_int_equal(fb_json_escape("abc", 3, out, sizeof(out)), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(fb_json_escape("abcd", 4, out, sizeof(out)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_structure_is_escaped),
		cmocka_unit_test(test_valid_utf8_passes_through),
		cmocka_unit_test(test_invalid_utf8_is_replaced),
		cmocka_unit_test(test_small_buffer_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
