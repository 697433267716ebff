/* test_state_dir.c — fb_state_dir_check judges the directory a path
 * names, every level of it: a relative path's levels above the working
 * directory too, and a path too long to walk is refused, not cut. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmhost/sandbox.h"

static char dir[] = "/tmp/fb-test-sdir.XXXXXX";
static char open_dir[64], state[64], err[512];

static int setup(void **state_)
{
	(void)state_;
	strcpy(dir, "/tmp/fb-test-sdir.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	/* writable by anyone, no sticky bit: a level no one may trust */
	snprintf(open_dir, sizeof open_dir, "%s/open", dir);
	snprintf(state, sizeof state, "%s/open/state", dir);
	if (mkdir(open_dir, 0777) < 0 || chmod(open_dir, 0777) < 0 ||
	    mkdir(state, 0700) < 0)
		return -1;
	return 0;
}

static int teardown(void **state_)
{
	(void)state_;
	rmdir(state);
	rmdir(open_dir);
	rmdir(dir);
	return 0;
}

static void absolute_refused(void **state_)
{
	(void)state_;
	assert_int_equal(fb_state_dir_check(state, err, sizeof err), -1);
	assert_non_null(strstr(err, "writable by others"));
}

/* "state" from inside the open directory is the same directory. */
static void relative_judged_whole(void **state_)
{
	char cwd[4096];

	(void)state_;
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(open_dir), 0);
	assert_int_equal(fb_state_dir_check("state", err, sizeof err), -1);
	assert_non_null(strstr(err, "writable by others"));
	assert_int_equal(chdir(cwd), 0);
}

/* "<dir>/./././…/open/state": the first 255 bytes name <dir>, which is
 * fine; the whole names the state directory under the open one. */
static void long_path_not_cut(void **state_)
{
	char path[600];
	size_t n = (size_t)snprintf(path, sizeof path, "%s", dir);

	(void)state_;
	while (n < 300)
		n += (size_t)snprintf(path + n, sizeof path - n, "/.");
	snprintf(path + n, sizeof path - n, "/open/state");
	assert_int_equal(fb_state_dir_check(path, err, sizeof err), -1);
}

static void fine(void **state_)
{
	(void)state_;
	assert_int_equal(fb_state_dir_check(dir, err, sizeof err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(absolute_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(relative_judged_whole, setup,
						teardown),
		cmocka_unit_test_setup_teardown(long_path_not_cut, setup,
						teardown),
		cmocka_unit_test_setup_teardown(fine, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
