/*
 * test_http_smuggle.c — what the plain-HTTP relay looks at besides the
 * head's framing: the hosts forwarding fields name.
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
		{ "X-Forwarded-Host:\r\n", 0, "" },
		{ "X-Forwarded-Host: ,,\r\n", 0, "" },
		{ "Forwarded: for=10.0.0.1;host=a.test;proto=http\r\n", 1, "a.test" },
		{ "Forwarded: HOST=\"a.test:80\", for=\"[2001:db8::1]:4711\";host=b.test\r\n",
		  2, "a.test:80|b.test" },
		{ "Forwarded: for=10.0.0.1\r\n", 0, "" },
		{ "Forwarded: host=\"\"\r\n", 0, "" },
		{ "Forwarded: host=a.test\r\nX-Forwarded-Host: b.test\r\n"
		  "Forwarded: host=c.test\r\n", 3, "a.test|b.test|c.test" },
		/* too tangled to read as every server would */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forwarded_hosts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
