/* test_daemon_state.c — what firebreak-vmhost keeps on disk: a state file
 * reads back as written and a hostile one is refused before recovery
 * could delete anything it names; the policy source it restarts a proxy
 * with loads into the same policy, secret references unresolved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmhost/daemon.h"

static char dir[] = "/tmp/fb-test-state.XXXXXX";
static char file[64], err[512];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/fb-test-state.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(file, sizeof file, "%s/state.json", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(file);
	rmdir(dir);
	return 0;
}

static void write_text(const char *text)
{
	FILE *f = fopen(file, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void state_round_trip(void **state)
{
	struct fb_state in = {
		.id = "a-1", .backend = "process", .status = FB_SBX_STOPPED,
		.exit_status = 137, .netns = "fb-a-1", .table = "firebreak-a-1",
		.slot = 16383, .proxy = 4242, .guest = 4243,
		.proxy_start = 123456789012ULL, .guest_start = 1,
	}, out;

	(void)state;
	assert_int_equal(fb_state_write(file, &in, err, sizeof err), 0);
	assert_int_equal(fb_state_read(file, &out, err, sizeof err), 0);
	assert_string_equal(out.id, in.id);
	assert_string_equal(out.backend, in.backend);
	assert_int_equal(out.status, in.status);
	assert_int_equal(out.exit_status, in.exit_status);
	assert_string_equal(out.netns, in.netns);
	assert_string_equal(out.table, in.table);
	assert_int_equal(out.slot, in.slot);
	assert_int_equal(out.proxy, in.proxy);
	assert_int_equal(out.guest, in.guest);
	assert_true(out.proxy_start == in.proxy_start);
	assert_true(out.guest_start == in.guest_start);
	/* the temporary file was renamed, not left beside it */
	snprintf(err, sizeof err, "%s.tmp", file);
	assert_int_equal(access(err, F_OK), -1);
	in.status = FB_SBX_RUNNING;
	in.exit_status = -1;
	assert_int_equal(fb_state_write(file, &in, err, sizeof err), 0);
	assert_int_equal(fb_state_read(file, &out, err, sizeof err), 0);
	assert_int_equal(out.status, FB_SBX_RUNNING);
	assert_int_equal(out.exit_status, -1);
}

/* Recovery deletes the namespace and table a state file names: only the
 * sandbox's own names may pass. */
static void state_refuses_foreign_names(void **state)
{
	static const char *const bad[] = {
		"{\"id\":\"a\",\"backend\":\"process\",\"status\":\"running\","
		"\"exit_status\":null,\"namespace\":\"fbt-1-host\",\"table\":"
		"\"firebreak-a\",\"slot\":1,\"pids\":{\"proxy\":1,\"guest\":2},"
		"\"starttimes\":{\"proxy\":1,\"guest\":2}}",
		"{\"id\":\"a\",\"backend\":\"process\",\"status\":\"running\","
		"\"exit_status\":null,\"namespace\":\"fb-a\",\"table\":"
		"\"nat\",\"slot\":1,\"pids\":{\"proxy\":1,\"guest\":2},"
		"\"starttimes\":{\"proxy\":1,\"guest\":2}}",
		"{\"id\":\"../x\",\"backend\":\"process\",\"status\":\"running\","
		"\"exit_status\":null,\"namespace\":\"fb-../x\",\"table\":"
		"\"firebreak-../x\",\"slot\":1,\"pids\":{\"proxy\":1,\"guest\":2},"
		"\"starttimes\":{\"proxy\":1,\"guest\":2}}",
		"{\"id\":\"a\",\"backend\":\"process\",\"status\":\"running\","
		"\"exit_status\":null,\"namespace\":\"fb-a\",\"table\":"
		"\"firebreak-a\",\"slot\":99999,\"pids\":{\"proxy\":1,\"guest\":2},"
		"\"starttimes\":{\"proxy\":1,\"guest\":2}}",
		"[1, 2]",
		"{\"id\": ",
		"",
	};
	struct fb_state out;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_text(bad[i]);
		err[0] = '\0';
		assert_int_equal(fb_state_read(file, &out, err, sizeof err), -1);
		assert_non_null(strstr(err, file));
	}
}

static void starttime_names_a_live_process(void **state)
{
	(void)state;
	assert_true(fb_proc_starttime(getpid()) > 0);
	assert_int_equal(fb_proc_starttime(getpid()), fb_proc_starttime(getpid()));
	assert_int_equal(fb_proc_starttime(0), 0);
	assert_int_equal(fb_proc_starttime(0x3ffffff0), 0);
}

static struct fb_policy *load(const char *text)
{
	struct fb_diags diags = { 0 };
	struct fb_policy *p = fb_policy_load(text, strlen(text), NULL, &diags);

	if (!p)
		fb_diags_print(&diags, stderr);
	fb_diags_free(&diags);
	return p;
}

/* The source loads into the same policy, and keeps ${env:} unresolved. */
static void policy_source_round_trip(void **state)
{
	static const char *const texts[] = {
		"allow-all",
		"deny-all",
		"allow: [example.com, \"*.npmjs.org\"]\n"
		"subnets: { allow: [10.0.0.0/8], deny: [10.1.0.0/16] }\n",
		"allow:\n"
		"  api.example.com:\n"
		"    - match: { method: [POST], path: { startsWith: \"/v1/\" } }\n"
		"      transform:\n"
		"        - headers: { authorization: \"Bearer ${env:FB_TEST_KEY}\" }\n"
		"    - match: { path: { exact: \"/x\" } }\n"
		"      response: { statusCode: 418, body: \"no\", contentType: text/plain }\n",
	};

	(void)state;
	setenv("FB_TEST_KEY", "s3cret-value", 1);
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		struct fb_policy *a = load(texts[i]), *b;
		char *src, *da, *db;

		assert_non_null(a);
		src = fb_policy_source(a);
		assert_non_null(src);
		assert_null(strstr(src, "s3cret-value"));
		b = load(src);
		assert_non_null(b);
		da = fb_policy_dump(a, false);
		db = fb_policy_dump(b, false);
		assert_string_equal(da, db);
		if (strstr(texts[i], "${env:"))
			assert_non_null(strstr(src, "${env:FB_TEST_KEY}"));
		free(da);
		free(db);
		free(src);
		fb_policy_unref(a);
		fb_policy_unref(b);
	}
	unsetenv("FB_TEST_KEY");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(state_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(state_refuses_foreign_names,
						setup, teardown),
		cmocka_unit_test(starttime_names_a_live_process),
		cmocka_unit_test(policy_source_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
