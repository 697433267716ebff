/* test_control.c — the control API's requests and answers, through
 * fb_control_handle() on a proxy with a real policy (no sockets, no nft). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <unistd.h>

#include "proxy/core.h"
#include "proxy/fdio.h"
#include "tests/lib/nofds.h"

static const char base_policy[] = "allow:\n  - a.test\n";

static int setup(void **state)
{
	struct fb_proxy *p = calloc(1, sizeof(*p));
	struct fb_diags d = { 0 };

	p->loop = fb_loop_new();
	p->policy = fb_policy_load(base_policy, strlen(base_policy),
				   &p->load_opts, &d);
	assert_non_null(p->policy);
	fb_diags_free(&d);
	p->generation = p->stats.generation = 1;
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	struct fb_proxy *p = *state;

	fb_policy_unref(p->policy);
	fb_policy_unref(p->retired); /* the loop never ran to release it */
	fb_loop_free(p->loop);
	free(p);
	return 0;
}

/* The response to a whole request, or NULL when more was wanted. */
static char *ask(struct fb_proxy *p, const char *req, size_t len)
{
	char *resp = NULL;
	size_t resp_len = 0;
	int rc = fb_control_handle(p, req, len, "test", &resp, &resp_len);

	assert_true(rc == 0 || rc == 1);
	if (rc == 0)
		return NULL;
	assert_int_equal(strlen(resp), resp_len);
	return resp;
}

static char *ask_str(struct fb_proxy *p, const char *req)
{
	return ask(p, req, strlen(req));
}

static void expect_status(char *resp, int status)
{
	char line[32];

	assert_non_null(resp);
	snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
	if (strncmp(resp, line, strlen(line)) != 0)
		fail_msg("wanted %d, got: %s", status, resp);
}

static char *put(struct fb_proxy *p, const char *method, const char *extra,
		 const char *body)
{
	char req[4096];

	snprintf(req, sizeof(req), "%s /policy HTTP/1.1\r\nHost: x\r\n%s"
		 "Content-Length: %zu\r\n\r\n%s", method, extra, strlen(body), body);
	return ask_str(p, req);
}

/* Ask `req` and expect `status`, the answer's body aside. */
static void expect_answer(struct fb_proxy *p, const char *req, int status)
{
	char *r = ask_str(p, req);

	expect_status(r, status);
	free(r);
}

static void test_needs_whole_request(void **state)
{
	struct fb_proxy *p = *state;
	static const char req[] =
		"PUT /policy HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\ndeny-all\n";

	/* every proper prefix: more wanted, nothing applied */
	for (size_t n = 0; n < sizeof(req) - 1; n++)
		assert_null(ask(p, req, n));
	assert_int_equal(p->generation, 1);
	char *r = ask(p, req, sizeof(req) - 1);
	expect_status(r, 200);
	free(r);
	assert_int_equal(p->generation, 2);
	assert_int_equal(fb_policy_mode(p->policy), FB_MODE_DENY_ALL);
}

static void test_get_policy_etag(void **state)
{
	struct fb_proxy *p = *state;
	char *r = ask_str(p, "GET /policy HTTP/1.1\r\nHost: x\r\n\r\n");

	expect_status(r, 200);
	assert_non_null(strstr(r, "\r\nETag: \"1\"\r\n"));
	assert_non_null(strstr(r, "\"a.test\""));
	free(r);
}

static void test_put_and_patch(void **state)
{
	struct fb_proxy *p = *state;
	char *r;

	r = put(p, "PUT", "", "allow:\n  - b.test\n");
	expect_status(r, 200);
	assert_non_null(strstr(r, "{\"generation\":2,\"closed\":0}"));
	free(r);
	assert_non_null(fb_policy_lookup(p->policy, "b.test"));
	assert_null(fb_policy_lookup(p->policy, "a.test"));

	r = put(p, "PATCH", "If-Match: \"2\"\r\n", "{\"allow\":{\"c.test\":[]}}");
	expect_status(r, 200);
	free(r);
	assert_int_equal(p->generation, 3);
	assert_non_null(fb_policy_lookup(p->policy, "b.test"));
	assert_non_null(fb_policy_lookup(p->policy, "c.test"));
	assert_int_equal(p->stats.policy_updates, 2);
}

static void test_if_match(void **state)
{
	struct fb_proxy *p = *state;
	char *r;

	r = put(p, "PUT", "If-Match: \"7\"\r\n", "deny-all");
	expect_status(r, 412);
	free(r);
	assert_int_equal(p->generation, 1);
	/* If-Match compares strongly: a weak tag never matches (RFC 9110
	 * 13.1.1), not even the current generation's */
	r = put(p, "PUT", "If-Match: W/\"1\"\r\n", "deny-all");
	expect_status(r, 412);
	free(r);
	r = put(p, "PUT", "If-Match: \"5\", W/\"1\"\r\n", "deny-all");
	expect_status(r, 412);
	free(r);
	assert_int_equal(p->generation, 1);
	/* a list matches when one member does */
	r = put(p, "PUT", "If-Match: \"5\", \"1\"\r\n", "deny-all");
	expect_status(r, 200);
	free(r);
	r = put(p, "PUT", "If-Match: *\r\n", "allow-all");
	expect_status(r, 200);
	free(r);
	/* "1" is stale now: a prefix of the generation does not match either */
	r = put(p, "PATCH", "If-Match: \"1\"\r\n", "{}");
	expect_status(r, 412);
	free(r);
	assert_int_equal(p->generation, 3);
	/* the list may span lines and hold empty elements */
	r = put(p, "PATCH", "If-Match: \"1\",,\r\nIf-Match: , \"3\"\r\n", "{}");
	expect_status(r, 200);
	free(r);
	assert_int_equal(p->generation, 4);
}

/* An If-Match that is neither "*" nor a list of entity tags is a
 * condition that is false: 412, nothing changed, the header named. */
static void test_if_match_malformed(void **state)
{
	static const char *const bad[] = {
		"1", "\"1", "1\"", "W/1", "w/\"1\"", "W/", "\"1\" \"1\"",
		"\"1\";", "*, \"1\"", "\"1\", *", "**", "\"1\"x", "\"a b\"",
		"\"1\"\r\nIf-Match: *",
	};
	struct fb_proxy *p = *state;
	char extra[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *r;

		snprintf(extra, sizeof(extra), "If-Match: %s\r\n", bad[i]);
		r = put(p, "PUT", extra, "deny-all");
		expect_status(r, 412);
		if (!strstr(r, "If-Match is neither * nor a list of entity tags"))
			fail_msg("%s: %s", bad[i], r);
		free(r);
	}
	assert_int_equal(p->generation, 1);
	/* an empty list is well formed, and matches nothing */
	expect_answer(p, "PUT /policy HTTP/1.1\r\nHost: x\r\nIf-Match: ,\r\n"
		      "Content-Length: 8\r\n\r\ndeny-all", 412);
	assert_int_equal(p->generation, 1);
}

/* If-None-Match (RFC 9110 13.1.2): a change meant only for a policy other
 * than the one in force, or (with *) for none at all, is refused when
 * that is not so; weak tags compare too.  Checked after If-Match. */
static void test_if_none_match(void **state)
{
	static const struct {
		const char *value;
		int status;
	} cases[] = {
		{ "*", 412 }, { "\"1\"", 412 }, { "W/\"1\"", 412 },
		{ "\"7\", \"1\"", 412 }, { "1", 412 }, { "*, \"2\"", 412 },
		{ "\"2\"", 200 }, { "W/\"9\", \"8\"", 200 },
	};
	struct fb_proxy *p = *state;
	char extra[80];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *r;

		snprintf(extra, sizeof(extra), "If-None-Match: %s\r\n",
			 cases[i].value);
		r = put(p, "PATCH", extra, "{\"allow\":{\"b.example\":[]}}");
		if (strncmp(r, cases[i].status == 200 ? "HTTP/1.1 200 " :
			    "HTTP/1.1 412 ", 13) != 0)
			fail_msg("If-None-Match: %s: %s", cases[i].value, r);
		free(r);
		if (cases[i].status == 200)
			break; /* the generation moved on */
		assert_int_equal(p->generation, 1);
	}
	assert_int_equal(p->generation, 2);
	/* If-Match is judged first: a stale one is reported as such */
	expect_answer(p, "PUT /policy HTTP/1.1\r\nHost: x\r\nIf-Match: \"1\"\r\n"
		      "If-None-Match: \"1\"\r\nContent-Length: 8\r\n\r\ndeny-all", 412);
	assert_int_equal(p->generation, 2);
}

static void test_invalid_policy_keeps_old(void **state)
{
	struct fb_proxy *p = *state;
	struct fb_policy *before = p->policy;
	char *r = put(p, "PUT", "", "allow:\n  - \"api*.x\"\n  - ok.test\nsubnets:\n  deny: [\"10.0.0.1/8\"]\n");

	expect_status(r, 400);
	/* every problem, each with its position */
	assert_non_null(strstr(r, ":2:"));
	assert_non_null(strstr(r, ":5:"));
	free(r);
	assert_ptr_equal(p->policy, before);
	assert_int_equal(p->generation, 1);

	r = put(p, "PUT", "", "");
	expect_status(r, 400);
	free(r);
	assert_int_equal(p->generation, 1);
}

/* A problem's position is in the body sent, so it is not named after the
 * --policy file the proxy started from. */
static void test_problems_name_the_body(void **state)
{
	struct fb_proxy *p = *state;
	char *r;

	p->load_opts.filename = "/etc/firebreak/policy.yaml";
	r = put(p, "PUT", "", "allow:\n  - \"api*.x\"\n");
	expect_status(r, 400);
	assert_non_null(strstr(r, "\r\n\r\n<body>:2:"));
	assert_null(strstr(r, "policy.yaml"));
	free(r);
	r = put(p, "PATCH", "", "{\"allow\": {\"api*.x\": []}}");
	expect_status(r, 400);
	assert_non_null(strstr(r, "\r\n\r\n<patch>:1:"));
	assert_null(strstr(r, "policy.yaml"));
	free(r);
	assert_int_equal(p->generation, 1);
}

static void test_refusals(void **state)
{
	struct fb_proxy *p = *state;
	char *r;

	r = ask_str(p, "POST /policy HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
	expect_status(r, 405);
	assert_non_null(strstr(r, "\r\nAllow: GET, PUT, PATCH\r\n"));
	free(r);
	expect_answer(p, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", 404);
	expect_answer(p, "PUT /policy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 411);
	expect_answer(p, "PUT /policy HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413);
	expect_answer(p, "GET /policy HTTP/1.1\nHost: x\r\n\r\n", 400);
	expect_answer(p, "PUT /stats HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405);
	assert_int_equal(p->generation, 1);
}

/* A change refused for its framing is in the audit log like any other
 * refused change: who, and why. */
static void test_framing_refusals_are_audited(void **state)
{
	struct fb_proxy *p = *state;
	char path[] = "/tmp/fb-control-audit-XXXXXX", err[256], log[4096];
	ssize_t n;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	p->audit = fb_audit_open(path, NULL, err, sizeof(err));
	assert_non_null(p->audit);
	expect_answer(p, "PUT /policy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 411);
	expect_answer(p, "PATCH /policy HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413);
	/* not a change: no line */
	expect_answer(p, "GET /stats HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413);
	fb_audit_close(p->audit);
	p->audit = NULL;
	n = read(fd, log, sizeof(log) - 1);
	assert_true(n > 0);
	log[n] = '\0';
	close(fd);
	unlink(path);
	assert_non_null(strstr(log, "\"event.outcome\":\"denied\",\"policy.generation\":1,\"event.reason\":\"rejected\",\"user.name\":\"test PUT\",\"error.message\":\"send the body with a Content-Length\"}\n"));
	assert_non_null(strstr(log, "\"user.name\":\"test PATCH\",\"error.message\":\"body over the 16777216-byte limit\"}\n"));
	assert_null(strchr(strchr(strchr(log, '\n') + 1, '\n') + 1, '\n'));
	assert_int_equal(p->generation, 1);
}

/* A log on a full disk: /stats and /metrics count the lines it lost. */
static void test_lost_audit_lines_are_reported(void **state)
{
	struct fb_proxy *p = *state;
	char err[256], *r;

	p->audit = fb_audit_open("/dev/full", NULL, err, sizeof(err));
	assert_non_null(p->audit);
	expect_answer(p, "PUT /policy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 411);
	r = ask_str(p, "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_non_null(strstr(r, "\"audit\":{\"lines_lost\":1,\"reopen_failed\":false}"));
	free(r);
	r = ask_str(p, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_non_null(strstr(r, "\nfirebreak_audit_lines_lost_total 1\n"));
	free(r);
	fb_audit_close(p->audit);
	p->audit = NULL;
}

static void test_stats_and_metrics(void **state)
{
	struct fb_proxy *p = *state;
	char *r;

	fb_stats_outcome(&p->stats, false, "not-allowed");
	r = ask_str(p, "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
	expect_status(r, 200);
	assert_non_null(strstr(r, "Content-Type: application/json"));
	assert_non_null(strstr(r, "\"denied\":{\"not-allowed\":1}"));
	free(r);
	r = ask_str(p, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	expect_status(r, 200);
	assert_non_null(strstr(r, "\nfirebreak_policy_generation 1\n"));
	free(r);
	r = ask_str(p, "GET /connections HTTP/1.1\r\nHost: x\r\n\r\n");
	expect_status(r, 200);
	assert_non_null(strstr(r, "\r\n\r\n[]\n"));
	free(r);
}

/* More reasons than the table has room for: none goes uncounted. */
static void test_metrics_count_every_reason(void **state)
{
	static char reasons[60][16]; /* static: the table keeps the pointers */
	struct fb_proxy *p = *state;
	unsigned long long sum = 0, n;
	const char *at;
	char *r;

	for (int i = 0; i < 60; i++) {
		snprintf(reasons[i], sizeof(reasons[i]), "reason-%d", i);
		fb_stats_outcome(&p->stats, false, reasons[i]);
	}
	fb_stats_outcome(&p->stats, false, reasons[59]);
	r = ask_str(p, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	expect_status(r, 200);
	for (at = r; (at = strstr(at, "{outcome=\"denied\",reason=\"")); at++) {
		at = strchr(at, '}');
		assert_int_equal(sscanf(at, "} %llu", &n), 1);
		sum += n;
	}
	assert_int_equal(sum, 61);
	assert_non_null(strstr(r, "{outcome=\"denied\",reason=\"other\"} 14\n"));
	free(r);
}

static void stop_loop(struct fb_loop *l, void *arg)
{
	(void)arg;
	fb_loop_stop(l);
}

/* Out of descriptors, the control socket's listener waits instead of
 * turning the loop again and again; the connection in its backlog is
 * answered once descriptors are free. */
static void test_accept_out_of_descriptors(void **state)
{
	static const char get[] = "GET /policy HTTP/1.1\r\nHost: x\r\n\r\n";
	struct fb_proxy *p = *state;
	char dir[] = "/tmp/fbctl.XXXXXX", path[64], err[256], answer[64] = "";
	struct fb_control *ctl;
	long turns;
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/c.sock", dir);
	ctl = fb_control_new(p, path, err, sizeof(err));
	assert_non_null(ctl);
	fd = fb_unix_connect(path); /* in the backlog, not accepted yet */
	assert_true(fd >= 0);
	assert_int_equal(write(fd, get, sizeof(get) - 1), (ssize_t)sizeof(get) - 1);
	/* a pause of 100 ms, a try, a pause: about ten turns in 500 ms */
	turns = nofds_turns(p->loop, 500);
	assert_true(turns >= 0 && turns < 50);
	fb_timer_add(p->loop, 300, stop_loop, NULL);
	assert_int_equal(fb_loop_run(p->loop), 0);
	assert_true(read(fd, answer, sizeof(answer) - 1) > 0);
	assert_memory_equal(answer, "HTTP/1.1 200 ", 13);
	close(fd);
	fb_control_free(ctl);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_needs_whole_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_policy_etag, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_and_patch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_if_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_if_match_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_if_none_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_policy_keeps_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_problems_name_the_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_framing_refusals_are_audited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_audit_lines_are_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_and_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_count_every_reason, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_out_of_descriptors, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
