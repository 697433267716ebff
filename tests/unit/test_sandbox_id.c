/* test_sandbox_id.c — which sandbox ids the launcher takes.  An id names
 * <state dir>/<id>, the namespace fb-<id>, its uplink and the table
 * firebreak-<id>: nothing that leaves the state directory, cannot be an
 * interface name, or is the state directory's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "vmhost/sandbox.h"

static void test_valid(void **state)
{
	(void)state;
	assert_true(fb_sandbox_id_valid("a"));
	assert_true(fb_sandbox_id_valid("0123456789ab"));
	assert_true(fb_sandbox_id_valid("-rf"));
	assert_true(fb_sandbox_id_valid("slot"));
	assert_true(fb_sandbox_id_valid("slots-1"));
}

static void test_invalid(void **state)
{
	(void)state;
	assert_false(fb_sandbox_id_valid(""));
	assert_false(fb_sandbox_id_valid("0123456789abc")); /* IFNAMSIZ */
	assert_false(fb_sandbox_id_valid(".."));
	assert_false(fb_sandbox_id_valid("a/b"));
	assert_false(fb_sandbox_id_valid("A"));
	assert_false(fb_sandbox_id_valid("caf\xc3\xa9"));
	assert_false(fb_sandbox_id_valid("a b"));
}

/* The slot pool's directory: a sandbox of that name would put its files
 * among the slot locks, and recovering it would remove every one. */
static void test_slot_dir(void **state)
{
	(void)state;
	assert_false(fb_sandbox_id_valid(FB_SLOT_DIR));
	assert_false(fb_sandbox_id_valid("slots"));
	assert_non_null(strstr(FB_SANDBOX_ID_RULE, "\"slots\""));
	assert_non_null(strstr(FB_SANDBOX_ID_RULE, "1 to 12 "));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_slot_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
