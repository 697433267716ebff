/* test_audit.c — audit lines are single, well-formed JSON lines whatever
 * the guest sends; the log survives logrotate (reopen); deferred lines
 * wait for the end of the loop iteration and are never lost or
 * reordered on the way (emit, reopen, close). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy/audit.h"
#include "proxy/deny.h"
#include "proxy/loop.h"
#include "proxy/stats.h"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* A log in a directory of its own, removed with it by tmplog_remove. */
struct tmplog {
	char dir[24], path[64];
	struct fb_audit *a;
};

static void tmplog_open(struct tmplog *t, const char *sandbox)
{
	char err[256];

	snprintf(t->dir, sizeof(t->dir), "/tmp/fbauditXXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/audit.log", t->dir);
	t->a = fb_audit_open(t->path, sandbox, err, sizeof(err));
	assert_non_null(t->a);
}

static void tmplog_remove(struct tmplog *t)
{
	unlink(t->path);
	rmdir(t->dir);
}

/* What a log of sandbox `sandbox` holds after one denied `action` line
 * under generation `gen` with the guest's value for `field`. */
static char *logged_guest(const char *sandbox, const char *action,
			  uint64_t gen, const char *field, const char *value,
			  size_t len)
{
	struct fb_audit_line ln;
	struct tmplog t;
	char *text;

	tmplog_open(&t, sandbox);
	fb_audit_begin(t.a, &ln, action, "denied", gen);
	fb_audit_guest(&ln, field, value, len);
	fb_audit_emit(t.a, &ln);
	fb_audit_close(t.a);
	text = slurp(t.path);
	tmplog_remove(&t);
	return text;
}

static void test_guest_text_cannot_forge_a_line(void **state)
{
	/* a fake second line, a NUL, a control char and a non-UTF-8 byte */
	static const char sni[] = "evil\"}\n{\"event.outcome\":\"allowed\\\x00\x07\xff";
	char *text;

	(void)state;
	text = logged_guest("sb\"1", "connection", 7, "tls.client.server_name",
			    sni, sizeof(sni) - 1);
	/* exactly one line, ending in a newline */
	assert_non_null(strchr(text, '\n'));
	assert_int_equal(strchr(text, '\n') - text, (long)strlen(text) - 1);
	assert_non_null(strstr(text, "\"sandbox.id\":\"sb\\\"1\""));
	assert_non_null(strstr(text, "\"policy.generation\":7"));
	assert_non_null(strstr(text,
		"\"tls.client.server_name\":\"evil\\\"}\\n{\\\"event.outcome\\\":"
		"\\\"allowed\\\\\\u0000\\u0007\\ufffd\""));
	assert_null(strstr(text, "_truncated"));
	assert_int_equal(strncmp(text, "{\"@timestamp\":\"", 15), 0);
	free(text);
}

static void test_long_guest_text_is_truncated_and_flagged(void **state)
{
	char name[4000], want[300];
	char *text;

	(void)state;
	memset(name, 'a', sizeof(name));
	text = logged_guest(NULL, "dns", 0, "dns.question.name", name,
			    sizeof(name));
	snprintf(want, sizeof(want), "\"dns.question.name\":\"%.*s\",",
		 FB_AUDIT_GUEST_MAX, name);
	assert_non_null(strstr(text, want));
	assert_non_null(strstr(text, "\"dns.question.name_truncated\":true}\n"));
	assert_null(strstr(text, "sandbox.id"));
	assert_null(strstr(text, "policy.generation"));
	free(text);
}

/* A cut through a two-byte character would log U+FFFD, a character the
 * guest never sent: the cut moves back to the character's start. */
static void test_truncation_keeps_utf8_characters_whole(void **state)
{
	char name[400], want[300];
	char *text;

	(void)state;
	for (size_t i = 0; i < sizeof(name); i += 2)
		memcpy(name + i, "\xc3\xa9", 2); /* U+00E9 */
	text = logged_guest(NULL, "dns", 0, "dns.question.name", name,
			    sizeof(name));
	/* FB_AUDIT_GUEST_MAX is odd: its last byte would be a lead byte */
	snprintf(want, sizeof(want), "\"dns.question.name\":\"%.*s\",",
		 FB_AUDIT_GUEST_MAX - 1, name);
	assert_non_null(strstr(text, want));
	assert_null(strstr(text, "\\u"));
	assert_non_null(strstr(text, "\"dns.question.name_truncated\":true}\n"));
	free(text);
}

/* An operator's value (an error quoting a long path) is cut and flagged
 * too, not dropped with the line marked incomplete. */
static void test_long_value_is_truncated_and_flagged(void **state)
{
	char val[3000], want[FB_AUDIT_STR_MAX + 32];
	struct fb_audit_line ln;
	struct tmplog t;
	char *text;

	(void)state;
	tmplog_open(&t, NULL);
	memset(val, 'b', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	fb_audit_begin(t.a, &ln, "policy", "denied", 0);
	fb_audit_str(&ln, "error.message", val);
	fb_audit_emit(t.a, &ln);
	fb_audit_close(t.a);
	text = slurp(t.path);
	snprintf(want, sizeof(want), "\"error.message\":\"%.*s\",",
		 FB_AUDIT_STR_MAX, val);
	assert_non_null(strstr(text, want));
	assert_non_null(strstr(text, "\"error.message_truncated\":true}\n"));
	assert_null(strstr(text, "event.incomplete"));
	free(text);
	tmplog_remove(&t);
}

static void emit_marked(struct fb_audit *a, const char *mark)
{
	struct fb_audit_line ln;

	fb_audit_begin(a, &ln, "dns", "allowed", 0);
	fb_audit_str(&ln, "mark", mark);
	fb_audit_emit(a, &ln);
}

/*
 * A disk that fills up: RLIMIT_FSIZE makes the file take part of a line,
 * then nothing, as a full file system does.  The lines lost are counted,
 * and once there is room again the next line starts on a line of its
 * own, so only the line cut short is unreadable.
 */
static void test_full_disk_is_counted_and_heals(void **state)
{
	struct rlimit was, cap;
	struct tmplog t;
	struct fb_audit *a;
	struct stat st;
	char *text, *second, *cut_end;

	(void)state;
	tmplog_open(&t, NULL);
	a = t.a;
	emit_marked(a, "one");
	assert_int_equal(stat(t.path, &st), 0);

	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &was), 0);
	cap = was;
	cap.rlim_cur = (rlim_t)st.st_size + 20;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &cap), 0);
	emit_marked(a, "two");   /* 20 bytes of it go out */
	emit_marked(a, "three"); /* none */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &was), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(fb_audit_health(a).lines_lost, 2);
	emit_marked(a, "four");
	assert_int_equal(fb_audit_health(a).lines_lost, 2);
	fb_audit_close(a);

	text = slurp(t.path);
	second = strchr(text, '\n') + 1;
	cut_end = strchr(second, '\n');
	assert_non_null(strstr(text, "\"mark\":\"one\"}\n"));
	assert_int_equal(cut_end - second, 20);
	assert_int_equal(strncmp(cut_end + 1, "{\"@timestamp\"", 13), 0);
	assert_non_null(strstr(cut_end + 1, "\"mark\":\"four\"}\n"));
	assert_null(strstr(text, "three"));
	free(text);
	tmplog_remove(&t);
}

static void test_reopen_follows_logrotate(void **state)
{
	char dir[] = "/tmp/fbauditXXXXXX", path[64], moved[80], err[256];
	struct fb_audit_line ln;
	struct fb_audit *a;
	char *text;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	snprintf(moved, sizeof(moved), "%s/audit.log.1", dir);
	a = fb_audit_open(path, "x", err, sizeof(err));
	assert_non_null(a);
	fb_audit_begin(a, &ln, "policy", NULL, 1);
	fb_audit_emit(a, &ln);
	assert_int_equal(rename(path, moved), 0);
	/* a reopen that fails keeps the old file, and says so until one works */
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(fb_audit_reopen(a, err, sizeof(err)), -1);
	assert_true(fb_audit_health(a).reopen_failed);
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(fb_audit_reopen(a, err, sizeof(err)), 0);
	assert_false(fb_audit_health(a).reopen_failed);
	fb_audit_begin(a, &ln, "policy", NULL, 2);
	fb_audit_emit(a, &ln);
	fb_audit_close(a);

	text = slurp(moved);
	assert_non_null(strstr(text, "\"policy.generation\":1}"));
	assert_null(strstr(text, "\"policy.generation\":2"));
	free(text);
	text = slurp(path);
	assert_non_null(strstr(text, "\"policy.generation\":2}"));
	free(text);
	unlink(path);
	unlink(moved);
	rmdir(dir);
}

static size_t file_size(const char *path)
{
	char *text = slurp(path);
	size_t n = strlen(text);

	free(text);
	return n;
}

struct deferring {
	struct fb_audit *a;
	const char *path;
	size_t size_inside; /* the file's size while the lines waited */
};

static void defer_gen(struct fb_audit *a, struct fb_loop *l, uint64_t gen)
{
	struct fb_audit_line ln;

	fb_audit_begin(a, &ln, "connection", "allowed", gen);
	fb_audit_defer(a, l, &ln);
}

static void on_defer_two(struct fb_loop *l, void *arg)
{
	struct deferring *d = arg;

	defer_gen(d->a, l, 1);
	defer_gen(d->a, l, 2);
	d->size_inside = file_size(d->path);
	fb_loop_stop(l);
}

/* Every line a whole object: '{' to '}', then a newline. */
static bool whole_lines(const char *text)
{
	const char *p = text;

	while (*p) {
		const char *nl = strchr(p, '\n');

		if (!nl || *p != '{' || nl[-1] != '}')
			return false;
		p = nl + 1;
	}
	return p != text;
}

/* Position of "policy.generation":N} in text, or -1. */
static long at(const char *text, int gen)
{
	char key[48];
	const char *p;

	snprintf(key, sizeof(key), "\"policy.generation\":%d}", gen);
	p = strstr(text, key);
	return p ? p - text : -1;
}

/* A log removed under the proxy (rm) is made again at its path, the
 * next second at the latest, rather than taking every line with it. */
static void test_removed_log_is_made_again(void **state)
{
	char dir[] = "/tmp/fbauditXXXXXX", path[64], err[256];
	struct fb_audit_line ln;
	struct fb_audit *a;
	char *text;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	a = fb_audit_open(path, "x", err, sizeof(err));
	assert_non_null(a);
	fb_audit_begin(a, &ln, "policy", NULL, 1);
	fb_audit_emit(a, &ln);
	assert_int_equal(unlink(path), 0);
	usleep(1100 * 1000);
	fb_audit_begin(a, &ln, "policy", NULL, 2);
	fb_audit_emit(a, &ln);
	assert_false(fb_audit_health(a).reopen_failed);
	fb_audit_close(a);
	text = slurp(path);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"policy.generation\":2}"));
	free(text);
	unlink(path);
	rmdir(dir);
}

/* ... and one that cannot be made again (its directory gone too) is said
 * once on stderr, not once a second for as long as it lasts. */
static void test_lost_log_said_once(void **state)
{
	char dir[] = "/tmp/fbauditXXXXXX", path[64], err[256];
	char errlog[] = "/tmp/fbauditerrXXXXXX";
	struct fb_audit_line ln;
	struct fb_audit *a;
	int efd = mkstemp(errlog), saved = dup(STDERR_FILENO);
	char *text, *at;
	int said = 0;

	(void)state;
	assert_true(efd >= 0 && saved >= 0);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	a = fb_audit_open(path, "x", err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(dup2(efd, STDERR_FILENO), STDERR_FILENO);
	for (int i = 0; i < 3; i++) { /* three seconds, three checks */
		usleep(1100 * 1000);
		fb_audit_begin(a, &ln, "policy", NULL, (uint64_t)i);
		fb_audit_emit(a, &ln);
	}
	dup2(saved, STDERR_FILENO);
	close(saved);
	assert_true(fb_audit_health(a).reopen_failed);
	fb_audit_close(a);
	text = slurp(errlog);
	assert_non_null(text);
	for (at = text; (at = strstr(at, "cannot make it again")); at++)
		said++;
	free(text);
	close(efd);
	unlink(errlog);
	assert_int_equal(said, 1);
}

static void test_deferred_lines(void **state)
{
	char dir[] = "/tmp/fbauditXXXXXX", path[64], moved[80], err[256];
	struct fb_loop *l = fb_loop_new();
	struct deferring d;
	struct fb_audit_line ln;
	char *text;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	snprintf(moved, sizeof(moved), "%s/audit.log.1", dir);
	d = (struct deferring){ .path = path };
	d.a = fb_audit_open(path, "x", err, sizeof(err));
	assert_non_null(d.a);

	/* two lines wait while the iteration lasts, and are written when
	 * it ends, whole and in order */
	assert_non_null(fb_timer_add(l, 0, on_defer_two, &d));
	assert_int_equal(fb_loop_run(l), 0);
	assert_int_equal(d.size_inside, 0);
	text = slurp(path);
	assert_true(at(text, 1) >= 0 && at(text, 1) < at(text, 2));
	assert_int_equal(text[strlen(text) - 1], '\n');
	free(text);

	/* a line written at once goes behind the waiting ones */
	defer_gen(d.a, l, 3);
	fb_audit_begin(d.a, &ln, "policy", NULL, 4);
	fb_audit_emit(d.a, &ln);
	text = slurp(path);
	assert_true(at(text, 2) < at(text, 3) && at(text, 3) < at(text, 4));
	free(text);

	/* logrotate: the waiting lines belong to the old file */
	defer_gen(d.a, l, 5);
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(fb_audit_reopen(d.a, err, sizeof(err)), 0);
	text = slurp(moved);
	assert_true(at(text, 5) > at(text, 4));
	free(text);

	/* more lines than one write holds: none is lost or cut */
	for (int gen = 100; gen < 400; gen++)
		defer_gen(d.a, l, (uint64_t)gen);
	/* and closing writes what still waits */
	fb_audit_close(d.a);
	text = slurp(path);
	for (int gen = 100; gen < 400; gen++)
		assert_true(at(text, gen) > (gen > 100 ? at(text, gen - 1) : -1));
	assert_true(whole_lines(text));
	free(text);
	fb_loop_free(l);
	unlink(path);
	unlink(moved);
	rmdir(dir);
}

static void test_open_names_the_problem(void **state)
{
	char err[256];

	(void)state;
	assert_null(fb_audit_open("/nonexistent-dir/x.log", NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent-dir/x.log"));
	assert_non_null(strstr(err, "No such file"));
}

static void test_refusals(void **state)
{
	char buf[512];
	int n;

	(void)state;
	assert_memory_equal(fb_tls_alert_access_denied,
			    "\x15\x03\x03\x00\x02\x02\x31", FB_TLS_ALERT_LEN);
	n = fb_http_forbidden(buf, sizeof(buf), "not-allowed");
	assert_true(n > 0);
	assert_int_equal(strncmp(buf, "HTTP/1.1 403 Forbidden\r\n", 24), 0);
	assert_non_null(strstr(buf, "\r\nX-Firebreak-Reason: not-allowed\r\n"));
	/* Content-Length matches the one-line body */
	const char *body = strstr(buf, "\r\n\r\n") + 4;
	char cl[64];
	snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", strlen(body));
	assert_non_null(strstr(buf, cl));
	assert_int_equal(strchr(body, '\n') - body, (long)strlen(body) - 1);
	assert_int_equal(fb_http_forbidden(buf, 40, "not-allowed"), -1);
}

static void test_stats_formats(void **state)
{
	struct fb_stats s = { .accepted = 3, .generation = 2, .dns_queries = 5,
			      .dns_denied = 2 };
	char *j, *m;

	(void)state;
	fb_stats_outcome(&s, true, "domain");
	fb_stats_outcome(&s, false, "not-allowed");
	fb_stats_outcome(&s, false, "not-allowed");
	j = fb_stats_json(&s);
	m = fb_stats_metrics(&s);
	assert_non_null(strstr(j, "\"allowed\":{\"domain\":1}"));
	assert_non_null(strstr(j, "\"denied\":{\"not-allowed\":2}"));
	assert_non_null(strstr(j, "\"generation\":2"));
	assert_non_null(strstr(m, "firebreak_connections_total{outcome=\"denied\",reason=\"not-allowed\"} 2\n"));
	assert_non_null(strstr(m, "firebreak_dns_queries_total{outcome=\"allowed\"} 3\n"));
	assert_non_null(strstr(m, "firebreak_policy_generation 2\n"));
	assert_non_null(strstr(j, "\"audit\":{\"lines_lost\":0,\"reopen_failed\":false}"));
	assert_non_null(strstr(m, "firebreak_audit_lines_lost_total 0\n"));
	assert_non_null(strstr(m, "firebreak_audit_reopen_failed 0\n"));
	free(j);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_guest_text_cannot_forge_a_line),
		cmocka_unit_test(test_long_guest_text_is_truncated_and_flagged),
		cmocka_unit_test(test_truncation_keeps_utf8_characters_whole),
		cmocka_unit_test(test_long_value_is_truncated_and_flagged),
		cmocka_unit_test(test_full_disk_is_counted_and_heals),
		cmocka_unit_test(test_reopen_follows_logrotate),
		cmocka_unit_test(test_removed_log_is_made_again),
		cmocka_unit_test(test_lost_log_said_once),
		cmocka_unit_test(test_deferred_lines),
		cmocka_unit_test(test_open_names_the_problem),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_stats_formats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
