/*
 * test_http_smuggle.c — what the plain-HTTP relay looks at besides the
 * head's framing: the hosts forwarding fields name, and a body that an
 * origin skipping it would read as the next request.
 *
 * Inputs are copied into heap blocks of exactly their length, so that a
 * read past the end shows under AddressSanitizer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/http.h"

/* s in a heap block of exactly its length (caller frees). */
static char *exact(const char *s, size_t len)
{
	char *b = malloc(len ? len : 1);

	assert_non_null(b);
	memcpy(b, s, len);
	return b;
}

/* The hosts of head's forwarding fields, joined with '|' into out. */
static int hosts_of(const char *head, char *out, size_t size)
{
	struct fb_http_slice hosts[4];
	struct fb_http_req req;
	size_t len = strlen(head);
	char *buf = exact(head, len);
	int n;

	fb_http_req_init(&req);
	assert_int_equal(fb_http_parse_head(&req, buf, len, NULL), FB_HTTP_DONE);
	n = fb_http_forwarded_hosts(&req, hosts, 4);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		size_t at = strlen(out);

		assert_true(at + hosts[i].len + 2 < size);
		memcpy(out + at, hosts[i].ptr, hosts[i].len);
		strcpy(out + at + hosts[i].len, i + 1 < n ? "|" : "");
	}
	free(buf);
	return n;
}

static void test_forwarded_hosts(void **state)
{
	static const struct {
		const char *fields;
		int n;
		const char *hosts;
	} cases[] = {
		{ "", 0, "" },
		{ "X-Forwarded-For: 10.0.0.1\r\nVia: 1.1 p\r\n", 0, "" },
		{ "X-Forwarded-Host: other.test\r\n", 1, "other.test" },
		{ "x-forwarded-host:  a.test:8080 , b.test\r\n", 2, "a.test:8080|b.test" },
		{ "X-Host: a.test\r\nX-Original-Host: b.test\r\n", 2, "a.test|b.test" },
		{ "X-Forwarded-Server: a.test\r\nX-HTTP-Host-Override: b.test\r\n",
		  2, "a.test|b.test" },
		/* as CGI and WSGI name them: HTTP_X_FORWARDED_HOST */
		{ "X_Forwarded_Host: a.test\r\nx_host: b.test\r\n", 2, "a.test|b.test" },
		{ "X-Forwarded_Hosts: a.test\r\nXForwardedHost: b.test\r\n", 0, "" },
		{ "X-Forwarded-Host:\r\n", 0, "" },
		{ "X-Forwarded-Host: ,,\r\n", 0, "" },
		{ "Forwarded: for=10.0.0.1;host=a.test;proto=http\r\n", 1, "a.test" },
		{ "Forwarded: HOST=\"a.test:80\", for=\"[2001:db8::1]:4711\";host=b.test\r\n",
		  2, "a.test:80|b.test" },
		{ "Forwarded: for=10.0.0.1\r\n", 0, "" },
		{ "Forwarded: host=\"\"\r\n", 0, "" },
		{ "Forwarded: host=a.test\r\nX-Forwarded-Host: b.test\r\n"
		  "Forwarded: host=c.test\r\n", 3, "a.test|b.test|c.test" },
		/* a key and value spaced as Rack and most hand-written
		 * parsers still read them (they trim both) */
		{ "Forwarded: host =a.test\r\n", 1, "a.test" },
		{ "Forwarded: for=10.0.0.1; Host\t= b.test\r\n", 1, "b.test" },
		/* too tangled to read as every server would */
		/* "host=" inside another pair: Spring finds it anywhere */
		{ "Forwarded: xhost=a.test\r\n", -1, "" },
		{ "Forwarded: for=\"_host=a.test\"\r\n", -1, "" },
		{ "Forwarded: proto=http;by=host =a.test\r\n", -1, "" },
		{ "Forwarded: host=\"a.test;host=b.test\"\r\n", -1, "" },
		{ "Forwarded: host=\"a\\\"b\"\r\n", -1, "" },
		{ "Forwarded: for=\"x\\y\"\r\n", -1, "" },
		{ "Forwarded: host=a\"b\r\n", -1, "" },
		{ "Forwarded: \"host\"=a.test\r\n", -1, "" },
		/* more than fit */
		{ "X-Forwarded-Host: a, b, c, d, e\r\n", -1, "" },
	};
	char head[512], got[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n;

		snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: h.test\r\n%s\r\n",
			 cases[i].fields);
		n = hosts_of(head, got, sizeof(got));
		if (n != cases[i].n || (n >= 0 && strcmp(got, cases[i].hosts) != 0))
			fail_msg("%s: %d \"%s\", want %d \"%s\"", cases[i].fields, n,
				 got, cases[i].n, cases[i].hosts);
	}
}

static enum fb_http_status body_start(const char *s, size_t len, bool whole)
{
	char *b = exact(s, len);
	enum fb_http_status st = fb_http_body_start(b, len, whole);

	free(b);
	return st;
}

static void test_body_start(void **state)
{
	static const char *const requests[] = {
		"GET / HTTP/1.1\r\nHost: refused.test\r\n\r\n",
		"GET /x\r\n", "GET x\r\n", "GET x \r\n", "GET x\n",
		"POST /p HTTP/1.1\r\n", "POST x HTTP/1.1\r\n",
		"X /", "_-X /x y", "OPTIONS * HTTP/1.1\r\n",
		"get / HTTP/1.1\r\n", "cat /etc/passwd HTTP/1.0\r\n",
		"GET http://refused.test/ HTTP/1.1\r\n\r\n",
		"GET HTTPS://refused.test/ HTTP/1.1\r\n\r\n",
		"GET foo+bar://refused.test/", "GET x://",
		"\r\nGET / HTTP/1.1\r\n", "\n\n\r\nGET /", "GET http://",
		"0123456789abcdef0123456789ABCDEF / HTTP/1.1",
		/* longer than our parser takes: Apache, Tomcat and Go do */
		"0123456789abcdef0123456789ABCDEFXXXXXXXX / HTTP/1.1\r\n",
		/* spaced as str.split() splits */
		" GET /x HTTP/1.1\r\n", "GET\t/", "GET\x0b/x", "GET\r/x HTTP/1.1\r\n",
		"\x1cGET\xa0x\x85HTTP/1.1\r\n", "GET  x\t HTTP/1.0\r\n",
		"GET x http/1.1\r\n",
	};
	static const char *const bodies[] = {
		"{\"a\":1}", "[]", "a=b&c=d", "--boundary\r\n", "Hello world",
		"Hello world\r\nmore", "Hello world again", "Hello big world\r\n",
		"Dear sir: hi", "POST x\r\n", "GET httpbin.org is a site",
		"GET", "GET ", "GET h", "GET htt", "GET http:/", "true", "\r\n",
		"GET\r\n/", "GET\n/",
		"0123456789abcdef0123456789ABCDEFx /", "GET httpx", "GET x HTTPS",
		"GET x HTTP", "5\r\nhello\r\n0\r\n\r\n", "Hello: world",
		/* no server reads these as requests: nginx wants an upper-case
		 * method, the others "HTTP/" after the target */
		"cat /etc/passwd", "cat /etc/passwd\nls /tmp\n", "get /",
		"Note /tmp is full", "0123456789abcdef0123456789ABCDEF /",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
		if (body_start(requests[i], strlen(requests[i]), true) != FB_HTTP_ERROR)
			fail_msg("passed: %s", requests[i]);
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		if (body_start(bodies[i], strlen(bodies[i]), true) != FB_HTTP_DONE)
			fail_msg("refused: %s", bodies[i]);
}

/* A prefix that could still become a request line waits for more, unless
 * it is the whole body; the verdict is the same however the body arrives. */
static void test_body_start_split(void **state)
{
	static const char *const texts[] = {
		"GET /x HTTP/1.1\r\n", "GET http://r.test/ HTTP/1.1\r\n",
		"\r\n\r\nPOST / HTTP/1.1\r\n", "{\"a\": 1}", "Hello world",
		"GET httpx", "GET x HTTP/1.1\r\n", "GET x\r\n", "Hello big world",
		"GET x://y", "Hello world HTTPS", "cat /etc/passwd",
		"cat /x HTTP/1.1\r\n",
	};

	(void)state;
	assert_int_equal(body_start("", 0, false), FB_HTTP_NEED_MORE);
	assert_int_equal(body_start("", 0, true), FB_HTTP_DONE);
	assert_int_equal(body_start("GET", 3, false), FB_HTTP_NEED_MORE);
	assert_int_equal(body_start("GET ", 4, false), FB_HTTP_NEED_MORE);
	assert_int_equal(body_start("GET ht", 6, false), FB_HTTP_NEED_MORE);
	assert_int_equal(body_start("GET x HTT", 9, false), FB_HTTP_NEED_MORE);
	assert_int_equal(body_start("GET x", 5, false), FB_HTTP_NEED_MORE);
	assert_int_equal(body_start("\r\n", 2, false), FB_HTTP_NEED_MORE);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		size_t len = strlen(texts[i]);
		enum fb_http_status want = body_start(texts[i], len, true);

		for (size_t k = 0; k < len; k++) {
			enum fb_http_status st = body_start(texts[i], k, false);

			if (st != FB_HTTP_NEED_MORE && st != want)
				fail_msg("%s: %zu bytes say %d, all say %d",
					 texts[i], k, st, want);
		}
	}
}

static void test_body_start_empty_lines(void **state)
{
	char buf[300];

	(void)state;
	memset(buf, '\n', sizeof(buf));
	/* nginx skips any number of them; past a bound, fail closed */
	assert_int_equal(body_start(buf, 256, false), FB_HTTP_NEED_MORE);
	assert_int_equal(body_start(buf, 257, false), FB_HTTP_ERROR);
	assert_int_equal(body_start(buf, sizeof(buf), true), FB_HTTP_ERROR);
}

/* A first line longer than is looked at is refused unless told apart. */
static void test_body_start_long_line(void **state)
{
	size_t len = 40000;
	char *buf = malloc(len);

	(void)state;
	assert_non_null(buf);
	memcpy(buf, "GET ", 4);
	memset(buf + 4, 'a', len - 4);
	assert_int_equal(fb_http_body_start(buf, 20000, false), FB_HTTP_NEED_MORE);
	assert_int_equal(fb_http_body_start(buf, 20000, true), FB_HTTP_DONE);
	assert_int_equal(fb_http_body_start(buf, 32768, false), FB_HTTP_ERROR);
	assert_int_equal(fb_http_body_start(buf, len, true), FB_HTTP_ERROR);
	/* one token as long as all that is looked at: a method to Go */
	memset(buf, 'a', len);
	assert_int_equal(fb_http_body_start(buf, len, false), FB_HTTP_ERROR);
	assert_int_equal(fb_http_body_start(buf, 20000, true), FB_HTTP_DONE);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forwarded_hosts),
		cmocka_unit_test(test_body_start),
		cmocka_unit_test(test_body_start_split),
		cmocka_unit_test(test_body_start_empty_lines),
		cmocka_unit_test(test_body_start_long_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
