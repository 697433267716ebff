/* test_sandbox_id.c — which sandbox ids the launcher takes.  An id names
 * <state dir>/<id>, the namespace fb-<id>, its uplink and the table
 * firebreak-<id>: nothing that leaves the state directory, cannot be an
 * interface name, or is the state directory's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "vmhost/sandbox.h"

static void test_ids(void **state)
{
	static const struct {
		const char *id;
		bool valid;
	} cases[] = {
		{ "a", true }, { "0123456789ab", true }, { "-rf", true },
		{ "slot", true }, { "slots-1", true },
		{ "", false }, { "0123456789abc", false }, /* IFNAMSIZ */
		{ "..", false }, { "a/b", false }, { "A", false },
		{ "caf\xc3\xa9", false }, { "a b", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (fb_sandbox_id_valid(cases[i].id) != cases[i].valid)
			fail_msg("\"%s\": expected %s", cases[i].id,
				 cases[i].valid ? "valid" : "invalid");
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
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_slot_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
