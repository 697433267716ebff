/*
 * test_rewrite.c — the head of a brokered request as it goes upstream
 * (proxy/rewrite.c) and forwardURL targets (proxy/forward.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "proxy/broker.h"
#include "proxy/jwt.h"

struct parsed {
	struct fb_http_req req;
	char *buf;
};

static void parse(struct parsed *p, const char *head)
{
	size_t len = strlen(head);

	p->buf = malloc(len);
	assert_non_null(p->buf);
	memcpy(p->buf, head, len);
	fb_http_req_init(&p->req);
	assert_int_equal(fb_http_parse_head(&p->req, p->buf, len, NULL),
			 FB_HTTP_DONE);
}

/* The rewritten head as a NUL-terminated string (caller frees). */
static char *rewrite(const char *head, const struct fb_head_edit *edit)
{
	struct parsed p;
	size_t len;
	char *out, *s;

	parse(&p, head);
	out = fb_rewrite_head(&p.req, edit, &len);
	assert_non_null(out);
	s = strndup(out, len);
	assert_int_equal(strlen(s), len);
	free(out);
	free(p.buf);
	return s;
}

static struct fb_header_set key_set[] = {
	{ .name = "x-api-key", .value = "SECRET" },
};

static void test_replaces_every_spelling(void **state)
{
	struct fb_head_edit edit = { .host = "api.example.com", .set = key_set,
				     .nset = 1 };
	char *s;

	(void)state;
	s = rewrite("GET /v1/x?a=1 HTTP/1.1\r\nHost: api.example.com\r\n"
		    "X-API-KEY: one\r\nx_api_key: two\r\nAccept: */*\r\n"
		    "X-Api_Key: three\r\n\r\n", &edit);
	assert_string_equal(s, "GET /v1/x?a=1 HTTP/1.1\r\n"
			    "Host: api.example.com\r\nAccept: */*\r\n"
			    "x-api-key: SECRET\r\n\r\n");
	free(s);
}

static void test_transforms_in_order(void **state)
{
	struct fb_header_set sets[] = {
		{ .name = "x-other", .value = "first" },
		{ .name = "authorization", .value = "second" },
	};
	struct fb_head_edit edit = { .host = "h.example", .set = sets, .nset = 2 };
	char *s;

	(void)state;
	s = rewrite("GET / HTTP/1.1\r\nHost: h.example\r\n"
		    "Authorization: guest\r\nX-OTHER: guest\r\n\r\n", &edit);
	assert_string_equal(s, "GET / HTTP/1.1\r\nHost: h.example\r\n"
			    "x-other: first\r\nauthorization: second\r\n\r\n");
	free(s);
}

static void test_hop_by_hop_and_own_fields_dropped(void **state)
{
	struct fb_head_edit edit = { .host = "h.example" };
	char *s;

	(void)state;
	s = rewrite("POST /p HTTP/1.1\r\nHost: h.example\r\n"
		    "Connection: keep-alive, X-Secret-Hop\r\nKeep-Alive: 5\r\n"
		    "X-Secret-Hop: gone\r\nTE: trailers\r\nTrailer: x\r\n"
		    "Proxy-Authorization: Basic x\r\nX-Firebreak-Token: forged\r\n"
		    "x_firebreak_forwarded_host: forged\r\n"
		    "Content-Length: 3\r\nX-Kept: yes\r\n\r\n", &edit);
	assert_string_equal(s, "POST /p HTTP/1.1\r\nHost: h.example\r\n"
			    "X-Kept: yes\r\nContent-Length: 3\r\n\r\n");
	free(s);
}

static void test_framing_restated(void **state)
{
	struct fb_head_edit edit = { .host = "h.example" };
	char *s;

	(void)state;
	s = rewrite("POST / HTTP/1.1\r\nHost: h.example\r\n"
		    "Transfer-Encoding: CHUNKED\r\n\r\n", &edit);
	assert_string_equal(s, "POST / HTTP/1.1\r\nHost: h.example\r\n"
			    "Transfer-Encoding: chunked\r\n\r\n");
	free(s);
	/* HTTP/1.0 goes upstream as 1.0, with the Host we choose */
	s = rewrite("GET /old HTTP/1.0\r\nHost: h.example:443\r\n\r\n", &edit);
	assert_string_equal(s, "GET /old HTTP/1.0\r\nHost: h.example\r\n\r\n");
	free(s);
	/* a guest that closes after this request: the upstream connection
	 * is the proxy's, and stays open for the next guest connection */
	s = rewrite("GET / HTTP/1.1\r\nHost: h.example\r\n"
		    "Connection: close\r\n\r\n", &edit);
	assert_string_equal(s, "GET / HTTP/1.1\r\nHost: h.example\r\n\r\n");
	free(s);
}

static void test_absolute_form_to_origin_form(void **state)
{
	struct fb_head_edit edit = { .host = "h.example" };
	char *s;

	(void)state;
	s = rewrite("GET https://h.example/a/b?c=d HTTP/1.1\r\n"
		    "Host: h.example\r\n\r\n", &edit);
	assert_string_equal(s, "GET /a/b?c=d HTTP/1.1\r\nHost: h.example\r\n\r\n");
	free(s);
	s = rewrite("GET http://h.example HTTP/1.1\r\nHost: h.example\r\n\r\n",
		    &edit);
	assert_string_equal(s, "GET / HTTP/1.1\r\nHost: h.example\r\n\r\n");
	free(s);
}

static void test_websocket_upgrade_kept(void **state)
{
	struct fb_head_edit edit = { .host = "h.example" };
	char *s;

	(void)state;
	s = rewrite("GET /ws HTTP/1.1\r\nHost: h.example\r\n"
		    "Connection: Upgrade\r\nUpgrade: websocket\r\n"
		    "Sec-WebSocket-Key: k\r\n\r\n", &edit);
	assert_string_equal(s, "GET /ws HTTP/1.1\r\nHost: h.example\r\n"
			    "Sec-WebSocket-Key: k\r\n"
			    "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
	free(s);
}

static void test_forward_prefix_and_fields(void **state)
{
	struct fb_head_field add[] = { { "x-firebreak-forwarded-host", "a.example" } };
	struct fb_head_edit edit = { .host = "fwd.example:8443", .prefix = "/hook",
				     .prefix_len = 5, .add = add, .nadd = 1 };
	char *s;

	(void)state;
	s = rewrite("GET /v1?q HTTP/1.1\r\nHost: a.example\r\n\r\n", &edit);
	assert_string_equal(s, "GET /hook/v1?q HTTP/1.1\r\nHost: fwd.example:8443\r\n"
			    "x-firebreak-forwarded-host: a.example\r\n\r\n");
	free(s);
}

static void test_header_name_is(void **state)
{
	(void)state;
	assert_true(fb_header_name_is("X_API-Key", 9, "x-api-key"));
	assert_false(fb_header_name_is("x-api-keys", 10, "x-api-key"));
	assert_false(fb_header_name_is("x-api-ke", 8, "x-api-key"));
	assert_false(fb_header_name_is("x.api-key", 9, "x-api-key"));
	/* a policy may name the header with '_' too */
	assert_true(fb_header_name_is("X-Api-Key", 9, "x_api_key"));
}

static void test_forward_parse(void **state)
{
	struct fb_forward_target t;
	char err[256];

	(void)state;
	assert_int_equal(fb_forward_parse("https://Fwd.Example/base/", &t, err,
					  sizeof(err)), 0);
	assert_string_equal(t.host, "fwd.example");
	assert_int_equal(t.port, 443);
	assert_string_equal(t.authority, "fwd.example");
	assert_int_equal(t.path_len, 5);
	assert_memory_equal(t.path, "/base", 5);

	assert_int_equal(fb_forward_parse("https://fwd.example:8443", &t, err,
					  sizeof(err)), 0);
	assert_int_equal(t.port, 8443);
	assert_string_equal(t.authority, "fwd.example:8443");
	assert_int_equal(t.path_len, 0);

	assert_int_equal(fb_forward_parse("http://fwd.example/", &t, err,
					  sizeof(err)), -1);
	assert_non_null(strstr(err, "not an https URL"));
	assert_int_equal(fb_forward_parse("https://fwd.example:0/", &t, err,
					  sizeof(err)), -1);
	assert_non_null(strstr(err, "bad port"));
	assert_int_equal(fb_forward_parse("https://fwd.example:99999", &t, err,
					  sizeof(err)), -1);
}

/* A token's claims, base64url-decoded (caller frees). */
static char *token_claims(const char *token)
{
	const char *p = strchr(token, '.') + 1, *end = strchr(p, '.');
	size_t n = (size_t)(end - p), padded = (n + 3) / 4 * 4;
	char *b64 = calloc(1, padded + 1), *out = calloc(1, padded);

	assert_non_null(b64);
	assert_non_null(out);
	for (size_t i = 0; i < padded; i++)
		b64[i] = i >= n ? '=' : p[i] == '-' ? '+' : p[i] == '_' ? '/' : p[i];
	assert_true(EVP_DecodeBlock((unsigned char *)out, (unsigned char *)b64,
				    (int)padded) > 0);
	free(b64);
	return out;
}

/* The token's claims name this request: method, URL and query. */
static void expect_bound(const char *token, const char *htm, const char *htu,
			 const char *query)
{
	char *claims = token_claims(token), want[256];

	snprintf(want, sizeof(want),
		 "\"htm\":\"%s\",\"htu\":\"%s\",\"query\":\"%s\"", htm, htu, query);
	if (!strstr(claims, want))
		fail_msg("%s not in %s", want, claims);
	free(claims);
}

static void test_forward_fields(void **state)
{
	struct fb_head_field f[FB_FORWARD_FIELDS];
	struct fb_forward_store store;
	struct fb_jwt_key *key;
	struct parsed p;
	char err[256];

	(void)state;
	parse(&p, "GET /x/y?z=1 HTTP/1.1\r\nHost: a.example\r\n\r\n");
	assert_int_equal(fb_forward_fields(NULL, "https://f.example/h", "sb", "a.example",
					   443, &p.req, f, &store, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--jwt-key"));
	key = fb_jwt_key_create(err, sizeof(err));
	assert_non_null(key);
	assert_int_equal(fb_forward_fields(key, "https://f.example/h", "sb", "a.example",
					   8443, &p.req, f, &store, err, sizeof(err)),
			 FB_FORWARD_FIELDS);
	assert_string_equal(f[0].value, "a.example");
	assert_string_equal(f[1].value, "https");
	assert_string_equal(f[2].value, "8443");
	assert_string_equal(f[3].value, "/x/y?z=1");
	assert_string_equal(f[4].name, "x-firebreak-token");
	/* three base64url parts */
	assert_non_null(strchr(strchr(f[4].value, '.') + 1, '.'));
	/* the token names this request, as the forwarded-* fields do */
	expect_bound(f[4].value, "GET", "https://a.example:8443/x/y", "z=1");
	fb_forward_fields_free(&store);
	free(p.buf);

	/* port 443 is not named; no query is an empty one */
	parse(&p, "DELETE /x HTTP/1.1\r\nHost: a.example\r\n\r\n");
	assert_int_equal(fb_forward_fields(key, "https://f.example/h", "sb", "a.example",
					   443, &p.req, f, &store, err, sizeof(err)),
			 FB_FORWARD_FIELDS);
	expect_bound(f[4].value, "DELETE", "https://a.example/x", "");
	fb_forward_fields_free(&store);
	fb_jwt_key_free(key);
	free(p.buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replaces_every_spelling),
		cmocka_unit_test(test_transforms_in_order),
		cmocka_unit_test(test_hop_by_hop_and_own_fields_dropped),
		cmocka_unit_test(test_framing_restated),
		cmocka_unit_test(test_absolute_form_to_origin_form),
		cmocka_unit_test(test_websocket_upgrade_kept),
		cmocka_unit_test(test_forward_prefix_and_fields),
		cmocka_unit_test(test_header_name_is),
		cmocka_unit_test(test_forward_parse),
		cmocka_unit_test(test_forward_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
