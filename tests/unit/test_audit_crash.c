/* test_audit_crash.c — a crash does not lose the audit lines waiting for
 * the end of the loop iteration: an abort() and a real fault each write
 * them before the process dies, and the process still dies of its
 * signal.  (Its own suite: the signal handlers are process-wide, and each
 * crash happens in a child forked before any other test armed them.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxy/audit.h"
#include "proxy/loop.h"

static const int fatal[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
static volatile uintptr_t unmapped = 16; /* the first page is never mapped */

/* In a child: defer a line, then die by `how`. */
static void crash_with_a_waiting_line(const char *path, int how)
{
	struct fb_audit_line ln;
	struct fb_loop *l;
	struct fb_audit *a;
	char err[256];
	int null = open("/dev/null", O_WRONLY);

	/* the default actions, not the test runner's or a sanitizer's;
	 * and no crash report on the test's output */
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		signal(fatal[i], SIG_DFL);
	dup2(null, STDERR_FILENO);
	l = fb_loop_new();
	a = fb_audit_open(path, "crash", err, sizeof(err));
	if (!l || !a)
		_exit(3);
	fb_audit_begin(a, &ln, "connection", "allowed", 42);
	fb_audit_defer(a, l, &ln);
	if (how == SIGABRT)
		abort();
	*(volatile int *)unmapped = 1; /* a fault, not a sent signal */
	_exit(4);
}

static void check_crash(int how)
{
	char dir[] = "/tmp/fbcrashXXXXXX", path[64], text[4096] = "";
	FILE *f;
	pid_t pid;
	int status;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		crash_with_a_waiting_line(path, how);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), how);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_true(fread(text, 1, sizeof(text) - 1, f) > 0);
	fclose(f);
	assert_non_null(strstr(text, "\"policy.generation\":42}\n"));
	unlink(path);
	rmdir(dir);
}

static void test_abort_writes_waiting_lines(void **state)
{
	(void)state;
	check_crash(SIGABRT);
}

static void test_fault_writes_waiting_lines(void **state)
{
	(void)state;
	check_crash(SIGSEGV);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_abort_writes_waiting_lines),
		cmocka_unit_test(test_fault_writes_waiting_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
