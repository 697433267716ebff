/*
 * test_http.c — the strict request-head parser and the chunked decoder.
 *
 * Every input is copied into a heap block of exactly its length, so that a
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

struct payload {
	const char *s;
	size_t len;
	enum fb_http_error want;
};

#define P(str, err) { str, sizeof(str) - 1, err }

static char *exact_copy(const char *s, size_t len)
{
	char *b = malloc(len ? len : 1);

	assert_non_null(b);
	memcpy(b, s, len);
	return b;
}

/* Parse s whole; the request keeps pointing into *owned (caller frees). */
static enum fb_http_status parse(struct fb_http_req *req, const char *s,
				 size_t len, char **owned)
{
	*owned = exact_copy(s, len);
	fb_http_req_init(req);
	return fb_http_parse_head(req, *owned, len, NULL);
}

static bool slice_eq(struct fb_http_slice sl, const char *want)
{
	return sl.ptr && sl.len == strlen(want) && memcmp(sl.ptr, want, sl.len) == 0;
}

static void test_good_request(void **state)
{
	static const char req_text[] =
		"POST /v1/chat?model=x&stream=1 HTTP/1.1\r\n"
		"Host: api.example.com\r\n"
		"User-Agent: test/1.0\r\n"
		"Content-Type:application/json\r\n"
		"X-Empty:\r\n"
		"X-Spaces: \t padded value \t\r\n"
		"X-Obs-Text: caf\xc3\xa9\r\n"
		"Content-Length: 13\r\n"
		"Expect: 100-continue\r\n"
		"\r\n"
		"{\"a\":\"hello\"}";
	struct fb_http_req req;
	char *buf;

	(void)state;
	assert_int_equal(parse(&req, req_text, sizeof(req_text) - 1, &buf),
			 FB_HTTP_DONE);
	assert_true(slice_eq(req.method, "POST"));
	assert_true(slice_eq(req.target, "/v1/chat?model=x&stream=1"));
	assert_int_equal(req.form, FB_HTTP_ORIGIN_FORM);
	assert_true(slice_eq(req.path, "/v1/chat"));
	assert_true(slice_eq(req.query, "model=x&stream=1"));
	assert_int_equal(req.minor, 1);
	assert_int_equal(req.nfields, 8);
	assert_true(slice_eq(req.host, "api.example.com"));
	assert_int_equal(req.content_length, 13);
	assert_false(req.chunked);
	assert_int_equal(req.flags, FB_HTTP_KEEP_ALIVE | FB_HTTP_EXPECT_100);
	assert_int_equal(req.head_len, sizeof(req_text) - 1 - 13);
	assert_int_equal(req.fields[2].name_len, 12);
	assert_memory_equal(req.fields[2].value, "application/json", 16);
	assert_int_equal(req.fields[3].value_len, 0);
	assert_int_equal(req.fields[4].value_len, strlen("padded value"));
	assert_memory_equal(req.fields[4].value, "padded value", 12);
	assert_non_null(fb_http_field(&req, "x-obs-text"));
	assert_null(fb_http_field(&req, "x-missing"));
	free(buf);
}

static void test_many_fields(void **state)
{
	char text[8192];
	size_t n = 0;
	struct fb_http_req req;
	char *buf;

	(void)state;
	n += (size_t)snprintf(text + n, sizeof(text) - n,
			      "GET / HTTP/1.1\r\nHost: a.example\r\n");
	for (int i = 0; i < 99; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "X-Field-%d: value %d\r\n", i, i);
	n += (size_t)snprintf(text + n, sizeof(text) - n, "\r\n");
	assert_int_equal(parse(&req, text, n, &buf), FB_HTTP_DONE);
	assert_int_equal(req.nfields, 100);
	assert_memory_equal(req.fields[99].name, "X-Field-98", 10);
	free(buf);

	/* the 101st field is one too many under the default limits */
	n -= 2;
	n += (size_t)snprintf(text + n, sizeof(text) - n, "X-One-More: 1\r\n\r\n");
	assert_int_equal(parse(&req, text, n, &buf), FB_HTTP_ERROR);
	assert_int_equal(req.error, FB_HTTP_E_TOO_MANY_FIELDS);
	assert_int_equal(fb_http_error_status(req.error), 431);
	free(buf);
}

static void test_forms(void **state)
{
	struct fb_http_req req;
	char *buf;

	(void)state;
	static const char abs[] = "GET HTTP://Api.Example.com:8080?q=1 HTTP/1.1\r\n"
				  "Host: api.example.com:8080\r\n\r\n";
	assert_int_equal(parse(&req, abs, sizeof(abs) - 1, &buf), FB_HTTP_DONE);
	assert_int_equal(req.form, FB_HTTP_ABSOLUTE_FORM);
	assert_true(slice_eq(req.authority, "Api.Example.com:8080"));
	assert_true(slice_eq(req.path, "/"));
	assert_true(slice_eq(req.query, "q=1"));
	free(buf);

	static const char abs2[] = "GET https://[::1]/a/b HTTP/1.1\r\nHost: [::1]\r\n\r\n";
	assert_int_equal(parse(&req, abs2, sizeof(abs2) - 1, &buf), FB_HTTP_DONE);
	assert_true(slice_eq(req.authority, "[::1]"));
	assert_true(slice_eq(req.path, "/a/b"));
	assert_null(req.query.ptr);
	free(buf);

	static const char star[] = "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n";
	assert_int_equal(parse(&req, star, sizeof(star) - 1, &buf), FB_HTTP_DONE);
	assert_int_equal(req.form, FB_HTTP_ASTERISK_FORM);
	assert_true(slice_eq(req.path, "*"));
	free(buf);

	/* HTTP/1.0: Host optional, no keep-alive unless asked */
	static const char v10[] = "GET /x HTTP/1.0\r\n\r\n";
	assert_int_equal(parse(&req, v10, sizeof(v10) - 1, &buf), FB_HTTP_DONE);
	assert_int_equal(req.minor, 0);
	assert_null(req.host.ptr);
	assert_int_equal(req.flags & FB_HTTP_KEEP_ALIVE, 0);
	free(buf);
	static const char v10ka[] = "GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
	assert_int_equal(parse(&req, v10ka, sizeof(v10ka) - 1, &buf), FB_HTTP_DONE);
	assert_int_equal(req.flags, FB_HTTP_KEEP_ALIVE);
	free(buf);
	static const char close[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n";
	assert_int_equal(parse(&req, close, sizeof(close) - 1, &buf), FB_HTTP_DONE);
	assert_int_equal(req.flags, 0);
	free(buf);

	static const char ws[] = "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
				 "Connection: Upgrade\r\n\r\n";
	assert_int_equal(parse(&req, ws, sizeof(ws) - 1, &buf), FB_HTTP_DONE);
	assert_int_equal(req.flags, FB_HTTP_KEEP_ALIVE | FB_HTTP_UPGRADE | FB_HTTP_WEBSOCKET);
	free(buf);

	static const char chunked[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n";
	assert_int_equal(parse(&req, chunked, sizeof(chunked) - 1, &buf), FB_HTTP_DONE);
	assert_true(req.chunked);
	assert_int_equal(req.content_length, -1);
	free(buf);
}

/* Everything RFC 9112 lets a strict recipient refuse, plus the smuggling
 * payloads of notes/brokering.md §4.6 and checklist rows 30-51. */
static const struct payload refused[] = {
	/* line endings */
	P("GET / HTTP/1.1\nHost: x\r\n\r\n", FB_HTTP_E_BARE_LF),
	P("GET / HTTP/1.1\r\nHost: x\n\r\n", FB_HTTP_E_BARE_LF),
	P("GET / HTTP/1.1\r\nHost: x\r\n\n", FB_HTTP_E_BARE_LF),
	P("GET / HTTP/1.1\rHost: x\r\n\r\n", FB_HTTP_E_BARE_CR),
	P("GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", FB_HTTP_E_BARE_CR),
	P("GET / HTTP/1.1\r\nX: a\rTransfer-Encoding: chunked\r\nHost: x\r\n\r\n", FB_HTTP_E_BARE_CR),
	/* request line */
	P("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_METHOD),
	P(" GET / HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_METHOD),
	P("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_METHOD),
	P("GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_METHOD),
	P("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA / HTTP/1.1\r\n", FB_HTTP_E_METHOD_TOO_LONG),
	P("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_TARGET),
	P("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_VERSION),
	P("GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_TARGET),
	P("GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_TARGET),
	P("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_TARGET),
	P("GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_TARGET),
	P("GET a/b HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_TARGET),
	P("GET * HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_TARGET),
	P("GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_TARGET),
	P("GET http://user@x/ HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_TARGET),
	P("GET http:/// HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_TARGET),
	P("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", FB_HTTP_E_VERSION),
	P("GET / http/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_VERSION),
	P("GET / HTTP/1.10\r\nHost: x\r\n\r\n", FB_HTTP_E_VERSION),
	P("GET /\r\n\r\n", FB_HTTP_E_TARGET),
	P("GET / HTTP/2.0\r\nHost: x\r\n\r\n", FB_HTTP_E_VERSION_UNSUPPORTED),
	P("GET / HTTP/1.2\r\nHost: x\r\n\r\n", FB_HTTP_E_VERSION_UNSUPPORTED),
	P("GET / HTTP/0.9\r\n\r\n", FB_HTTP_E_VERSION_UNSUPPORTED),
	P("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", FB_HTTP_E_VERSION_UNSUPPORTED),
	P("CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n", FB_HTTP_E_CONNECT),
	P("connect x:443 HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_CONNECT),
	P("TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_TRACE),
	P("TRACK / HTTP/1.1\r\nHost: x\r\n\r\n", FB_HTTP_E_TRACE),
	/* field lines */
	P("GET / HTTP/1.1\r\nHost : x\r\n\r\n", FB_HTTP_E_SPACE_BEFORE_COLON),
	P("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding\t: chunked\r\n\r\n", FB_HTTP_E_SPACE_BEFORE_COLON),
	P("GET / HTTP/1.1\r\nHost: x\r\n\tTransfer-Encoding: chunked\r\n\r\n", FB_HTTP_E_OBS_FOLD),
	P("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", FB_HTTP_E_OBS_FOLD),
	P("GET / HTTP/1.1\r\n Host: x\r\n\r\n", FB_HTTP_E_OBS_FOLD),
	P("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", FB_HTTP_E_NO_COLON),
	P("GET / HTTP/1.1\r\nHost: x\r\nNo Colon\r\n\r\n", FB_HTTP_E_NO_COLON),
	P("GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n", FB_HTTP_E_FIELD_NAME),
	P("GET / HTTP/1.1\r\nHost: x\r\nX(y): z\r\n\r\n", FB_HTTP_E_FIELD_NAME),
	P("GET / HTTP/1.1\r\nHost: x\r\n\x01Transfer-Encoding: chunked\r\n\r\n", FB_HTTP_E_FIELD_NAME),
	P("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", FB_HTTP_E_FIELD_VALUE),
	P("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f\r\n\r\n", FB_HTTP_E_FIELD_VALUE),
	P("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x0b\r\n\r\n", FB_HTTP_E_FIELD_VALUE),
	/* Content-Length */
	P("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", FB_HTTP_E_CONTENT_LENGTH),
	P("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", FB_HTTP_E_CONTENT_LENGTH),
	P("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", FB_HTTP_E_CONTENT_LENGTH),
	P("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\n", FB_HTTP_E_CONTENT_LENGTH),
	P("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1_0\r\n\r\n", FB_HTTP_E_CONTENT_LENGTH),
	P("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5,5\r\n\r\n", FB_HTTP_E_CONTENT_LENGTH),
	P("POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", FB_HTTP_E_CONTENT_LENGTH),
	P("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999999999999999\r\n\r\n", FB_HTTP_E_CONTENT_LENGTH),
	P("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", FB_HTTP_E_CONTENT_LENGTH_DUP),
	P("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n", FB_HTTP_E_CONTENT_LENGTH_DUP),
	/* Transfer-Encoding */
	P("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", FB_HTTP_E_CL_AND_TE),
	P("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", FB_HTTP_E_CL_AND_TE),
	P("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", FB_HTTP_E_TE_DUP),
	P("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", FB_HTTP_E_TE_UNSUPPORTED),
	P("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", FB_HTTP_E_TE_UNSUPPORTED),
	P("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", FB_HTTP_E_TE_INVALID),
	P("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", FB_HTTP_E_TE_INVALID),
	P("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", FB_HTTP_E_TE_INVALID),
	P("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,chunked\r\n\r\n", FB_HTTP_E_TE_INVALID),
	P("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", FB_HTTP_E_TE_INVALID),
	P("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", FB_HTTP_E_TE_INVALID),
	P("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\x0b\r\n\r\n", FB_HTTP_E_FIELD_VALUE),
	P("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\xa0\r\n\r\n", FB_HTTP_E_TE_INVALID),
	P("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", FB_HTTP_E_TE_INVALID),
	P("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n", FB_HTTP_E_TE_INVALID),
	P("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", FB_HTTP_E_TE_HTTP10),
	/* Host */
	P("GET / HTTP/1.1\r\n\r\n", FB_HTTP_E_HOST_MISSING),
	P("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", FB_HTTP_E_HOST_DUP),
	P("GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n", FB_HTTP_E_HOST_DUP),
	P("GET / HTTP/1.1\r\nHost:\r\n\r\n", FB_HTTP_E_HOST_INVALID),
	P("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", FB_HTTP_E_HOST_INVALID),
	P("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", FB_HTTP_E_HOST_INVALID),
	P("GET / HTTP/1.1\r\nHost: a:\r\n\r\n", FB_HTTP_E_HOST_INVALID),
	P("GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", FB_HTTP_E_HOST_INVALID),
	P("GET / HTTP/1.1\r\nHost: a:80:80\r\n\r\n", FB_HTTP_E_HOST_INVALID),
	P("GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n", FB_HTTP_E_HOST_INVALID),
	P("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", FB_HTTP_OK), /* reg-name sub-delim */
	/* protocol switches */
	P("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
	  "Connection: Upgrade, HTTP2-Settings\r\n\r\n", FB_HTTP_E_H2C),
	P("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket, H2C\r\n\r\n", FB_HTTP_E_H2C),
	P("GET / HTTP/1.1\r\nHost: x\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", FB_HTTP_E_H2C),
};

static void check_refused(const struct payload *pl)
{
	struct fb_http_req req;
	enum fb_http_status st;
	char *buf;

	st = parse(&req, pl->s, pl->len, &buf);
	if (pl->want == FB_HTTP_OK) {
		assert_int_equal(st, FB_HTTP_DONE);
	} else {
		if (st != FB_HTTP_ERROR || req.error != pl->want)
			fail_msg("payload %.*s: status %d error %d (%s), want %d (%s)",
				 (int)pl->len, pl->s, st, req.error,
				 fb_http_error_str(req.error), pl->want,
				 fb_http_error_str(pl->want));
	}
	free(buf);
}

static void test_refused(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		check_refused(&refused[i]);
	assert_int_equal(fb_http_error_status(FB_HTTP_E_CONNECT), 405);
	assert_int_equal(fb_http_error_status(FB_HTTP_E_TRACE), 405);
	assert_int_equal(fb_http_error_status(FB_HTTP_E_VERSION_UNSUPPORTED), 505);
	assert_int_equal(fb_http_error_status(FB_HTTP_E_TE_UNSUPPORTED), 501);
	assert_int_equal(fb_http_error_status(FB_HTTP_E_LINE_TOO_LONG), 414);
	assert_int_equal(fb_http_error_status(FB_HTTP_E_OBS_FOLD), 400);
}

/* An error is reported at the byte that proves it, before the line ends:
 * an SSH banner is refused without waiting for more. */
/* Every status a refusal maps to goes out with its reason phrase. */
static void test_status_text(void **state)
{
	(void)state;
	for (int e = FB_HTTP_E_BARE_LF; e < FB_HTTP_E_COUNT; e++)
		assert_true(fb_http_status_text(fb_http_error_status(e))[0]);
	assert_string_equal(fb_http_status_text(200), "OK");
	assert_string_equal(fb_http_status_text(413), "Content Too Large");
	assert_string_equal(fb_http_status_text(421), "Misdirected Request");
	assert_string_equal(fb_http_status_text(418), "");
}

static void test_refused_early(void **state)
{
	static const char ssh[] = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r";
	struct fb_http_req req;
	char *buf;

	(void)state;
	assert_int_equal(parse(&req, ssh, sizeof(ssh) - 1, &buf), FB_HTTP_ERROR);
	assert_int_equal(req.error, FB_HTTP_E_TARGET);
	assert_false(req.line_done);
	free(buf);
	assert_int_equal(parse(&req, "\x16\x03", 2, &buf), FB_HTTP_ERROR);
	assert_int_equal(req.error, FB_HTTP_E_METHOD);
	free(buf);
	assert_int_equal(parse(&req, "GET / HTTP/1.1\r\nHost: x", 23, &buf),
			 FB_HTTP_NEED_MORE);
	assert_true(req.line_done);
	free(buf);
}

static void test_limits(void **state)
{
	const struct fb_http_limits lim = { .max_line = 64, .max_head = 128, .max_fields = 3 };
	char text[512];
	struct fb_http_req req;
	int n;

	(void)state;
	/* a request line of exactly max_line bytes passes; one more is 414 */
	n = snprintf(text, sizeof(text), "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n",
		     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"); /* 50 */
	fb_http_req_init(&req);
	assert_int_equal(fb_http_parse_head(&req, text, (size_t)n, &lim), FB_HTTP_DONE);
	n = snprintf(text, sizeof(text), "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n",
		     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"); /* 51 */
	fb_http_req_init(&req);
	assert_int_equal(fb_http_parse_head(&req, text, (size_t)n, &lim), FB_HTTP_ERROR);
	assert_int_equal(req.error, FB_HTTP_E_LINE_TOO_LONG);
	/* ... even when the rest has not arrived */
	fb_http_req_init(&req);
	assert_int_equal(fb_http_parse_head(&req, text, 70, &lim), FB_HTTP_ERROR);
	assert_int_equal(req.error, FB_HTTP_E_LINE_TOO_LONG);

	/* the head, blank line included, may be max_head bytes, not one more */
	char b[128];

	memset(b, 'b', sizeof(b));
	n = snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: x\r\nX: %.96s\r\n\r\n", b);
	assert_int_equal(n, 128);
	fb_http_req_init(&req);
	assert_int_equal(fb_http_parse_head(&req, text, (size_t)n, &lim), FB_HTTP_DONE);
	assert_int_equal(req.head_len, 128);
	n = snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: x\r\nX: %.97s\r\n\r\nBODY", b);
	fb_http_req_init(&req);
	assert_int_equal(fb_http_parse_head(&req, text, (size_t)n, &lim), FB_HTTP_ERROR);
	assert_int_equal(req.error, FB_HTTP_E_HEAD_TOO_LARGE);
	assert_int_equal(fb_http_error_status(req.error), 431);

	n = snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
	fb_http_req_init(&req);
	assert_int_equal(fb_http_parse_head(&req, text, (size_t)n, &lim), FB_HTTP_ERROR);
	assert_int_equal(req.error, FB_HTTP_E_TOO_MANY_FIELDS);
}

/* Parse buf whole, then at every split point (first call with k bytes,
 * then all), then byte by byte: every way gives the same answer. */
static void check_splits(const char *s, size_t len)
{
	struct fb_http_req whole, part;
	enum fb_http_status w, st = FB_HTTP_NEED_MORE;
	char *buf = exact_copy(s, len);

	fb_http_req_init(&whole);
	w = fb_http_parse_head(&whole, buf, len, NULL);
	for (size_t k = 0; k <= len; k++) {
		fb_http_req_init(&part);
		st = fb_http_parse_head(&part, buf, k, NULL);
		if (st == FB_HTTP_NEED_MORE)
			st = fb_http_parse_head(&part, buf, len, NULL);
		assert_int_equal(st, w);
		assert_int_equal(part.error, whole.error);
		assert_int_equal(part.head_len, whole.head_len);
		assert_int_equal(part.nfields, whole.nfields);
		assert_int_equal(part.content_length, whole.content_length);
		assert_int_equal(part.flags, whole.flags);
		assert_ptr_equal(part.host.ptr, whole.host.ptr);
		assert_ptr_equal(part.path.ptr, whole.path.ptr);
		assert_int_equal(part.path.len, whole.path.len);
	}
	fb_http_req_init(&part);
	for (size_t k = 0; k <= len; k++) {
		st = fb_http_parse_head(&part, buf, k, NULL);
		if (st != FB_HTTP_NEED_MORE)
			break;
	}
	assert_int_equal(st, w);
	assert_int_equal(part.error, whole.error);
	assert_int_equal(part.head_len, whole.head_len);
	free(buf);
}

static void test_incremental(void **state)
{
	static const char good[] =
		"PUT /upload?id=7 HTTP/1.1\r\nHost: files.example.com:8443\r\n"
		"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n"
		"Accept: */*\r\n\r\n5\r\nhello\r\n0\r\n\r\n";

	(void)state;
	check_splits(good, sizeof(good) - 1);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		check_splits(refused[i].s, refused[i].len);
}

/* The caller's buffer may move (realloc) between calls. */
static void test_buffer_moves(void **state)
{
	static const char text[] = "GET /moved HTTP/1.1\r\nHost: m.example\r\nX-A: 1\r\n\r\n";
	size_t len = sizeof(text) - 1;
	struct fb_http_req req;
	char *a = exact_copy(text, 30), *b;

	(void)state;
	fb_http_req_init(&req);
	assert_int_equal(fb_http_parse_head(&req, a, 30, NULL), FB_HTTP_NEED_MORE);
	free(a);
	b = exact_copy(text, len);
	assert_int_equal(fb_http_parse_head(&req, b, len, NULL), FB_HTTP_DONE);
	assert_ptr_equal(req.method.ptr, b);
	assert_true(slice_eq(req.host, "m.example"));
	assert_true(slice_eq(req.path, "/moved"));
	free(b);
}

static void test_split_authority(void **state)
{
	struct fb_http_slice host;
	int port;

	(void)state;
	assert_int_equal(fb_http_split_authority("a.example:8080", 14, &host, &port), 0);
	assert_int_equal(host.len, 9);
	assert_int_equal(port, 8080);
	assert_int_equal(fb_http_split_authority("[2001:db8::1]:443", 17, &host, &port), 0);
	assert_int_equal(host.len, 13);
	assert_int_equal(port, 443);
	assert_int_equal(fb_http_split_authority("a.example", 9, &host, &port), 0);
	assert_int_equal(port, -1);
	assert_int_equal(fb_http_split_authority("", 0, &host, &port), -1);
	assert_int_equal(fb_http_split_authority(":80", 3, &host, &port), -1);
	assert_int_equal(fb_http_split_authority("[::1", 4, &host, &port), -1);
	assert_int_equal(fb_http_split_authority("[::1]x", 6, &host, &port), -1);
	assert_int_equal(fb_http_split_authority("a%zz", 4, &host, &port), -1);
	assert_int_equal(fb_http_split_authority("a%2e", 4, &host, &port), 0);
	assert_int_equal(fb_http_split_authority("a%2", 3, &host, &port), -1);
}

static void test_dot_segments(void **state)
{
	static const char *const dotted[] = {
		"/v1/../admin", "/v1/./x", "/..", "/.", "/a/..", "/a/.",
		"/v1/%2e%2e/admin", "/v1/%2E%2e/admin", "/v1/.%2e/x",
		"/v1/%2e/x", "/v1%2f..%2fadmin", "/v1%2F..%2Fadmin",
		"/v1\\..\\admin", "/v1%5c..%5cadmin", "/v1/..;/admin",
		"/v1/.;x=1/y", "/v1/%2e%2e;/admin",
	};
	static const char *const clean[] = {
		"/", "/v1/x", "/v1/...", "/v1/.hidden", "/v1/..x", "/v1/x..",
		"/v1/x.json", "//x", "/v1/%2e%2e%2e", "/v1/%252e%252e/x",
		"/v1/a;..", "/v1/%2", "/v1/%2%2e", "/a.b/c.d",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(dotted) / sizeof(dotted[0]); i++) {
		char *t = exact_copy(dotted[i], strlen(dotted[i]));

		if (!fb_http_path_has_dot_segment(t, strlen(dotted[i])))
			fail_msg("not refused: %s", dotted[i]);
		free(t);
	}
	for (size_t i = 0; i < sizeof(clean) / sizeof(clean[0]); i++) {
		char *t = exact_copy(clean[i], strlen(clean[i]));

		if (fb_http_path_has_dot_segment(t, strlen(clean[i])))
			fail_msg("refused: %s", clean[i]);
		free(t);
	}
}

/* Dot-segments an origin only sees after decoding the path again. */
static void test_dot_segments_decoded(void **state)
{
	static const char *const dotted[] = {
		"/v1/../admin", "/v1/%2e%2e/admin", "/v1%2f..%2fadmin",
		"/v1/%252e%252e/admin", "/v1/%252E%252e/admin", "/v1/.%252e/x",
		"/v1/..%252fadmin", "/v1%252f..%252fadmin", "/v1%255c..%255cx",
		"/v1/%25252e%25252e/admin", "/v1/%25%32%65%25%32%65/admin",
		"/v1/%%32%65%%32%65/admin", "/v1/..%253b/admin", "/%252e",
		/* still encoded after eight decodings (nine here): one pass
		 * went to each "25", seconds of them at the head's size */
		"/v1/%252525252525252541",
	};
	static const char *const clean[] = {
		"/", "/v1/x", "/v1/%2520x", "/v1/%2525", "/v1/%252ehidden",
		"/v1/a%252e%252eb", "/v1/%252e%252e%252e", "/v1/a%252fb",
		"/v1/%25zz", "/v1/%", "/v1/%2", "/v1/100%25", "/v1/a%2Fb",
		"/v1/%2520%252e%252ex", "/v1/%2525252525252541",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(dotted) / sizeof(dotted[0]); i++) {
		char *t = exact_copy(dotted[i], strlen(dotted[i]));

		if (fb_http_path_has_dot_segment_decoded(t, strlen(dotted[i])) != 1)
			fail_msg("not refused: %s", dotted[i]);
		free(t);
	}
	for (size_t i = 0; i < sizeof(clean) / sizeof(clean[0]); i++) {
		char *t = exact_copy(clean[i], strlen(clean[i]));

		if (fb_http_path_has_dot_segment_decoded(t, strlen(clean[i])) != 0)
			fail_msg("refused: %s", clean[i]);
		free(t);
	}
}

/* ------------------------------------------------------------------ */
/* Chunked                                                             */
/* ------------------------------------------------------------------ */

/* Decode s in pieces of `step` bytes (0: whole); collects the data. */
static enum fb_chunked_status dechunk(const char *s, size_t len, size_t step,
				      char *out, size_t *out_len,
				      size_t *used, enum fb_http_error *err)
{
	struct fb_chunked dec;
	enum fb_chunked_status st = FB_CHUNKED_NEED_MORE;
	char *buf = exact_copy(s, len);
	size_t off = 0, avail = step ? 0 : len;

	fb_chunked_init(&dec);
	*out_len = 0;
	for (;;) {
		const char *data;
		size_t n, consumed;

		st = fb_chunked_decode(&dec, buf + off, avail - off, &consumed,
				       &data, &n);
		off += consumed;
		if (st == FB_CHUNKED_DATA) {
			memcpy(out + *out_len, data, n);
			*out_len += n;
			continue;
		}
		if (st != FB_CHUNKED_NEED_MORE || avail == len)
			break;
		avail = avail + step < len ? avail + step : len;
	}
	*used = off;
	*err = dec.error;
	free(buf);
	return st;
}

static void test_chunked_good(void **state)
{
	static const char body[] =
		"5\r\nhello\r\n"
		"1;name=value;quoted=\"a \\\" b\"\r\n,\r\n"
		"A ;ext\r\n world...!\r\n"
		"0\r\n"
		"Trailer-One: 1\r\n"
		"X-Empty:\r\n"
		"\r\n"
		"NEXT REQUEST";
	char out[64];
	size_t out_len, used;
	enum fb_http_error err;

	(void)state;
	for (size_t step = 0; step < 8; step++) {
		assert_int_equal(dechunk(body, sizeof(body) - 1, step, out,
					 &out_len, &used, &err),
				 FB_CHUNKED_DONE);
		assert_int_equal(out_len, 16);
		assert_memory_equal(out, "hello, world...!", 16);
		assert_int_equal(used, sizeof(body) - 1 - strlen("NEXT REQUEST"));
	}
	assert_int_equal(dechunk("5\r\nhel", 6, 0, out, &out_len, &used, &err),
			 FB_CHUNKED_NEED_MORE);
	assert_int_equal(out_len, 3);
	assert_int_equal(dechunk("fffffffffffffff\r\n", 17, 0, out, &out_len,
				 &used, &err),
			 FB_CHUNKED_NEED_MORE);
}

static const struct payload bad_chunks[] = {
	P("0x5\r\nhello\r\n0\r\n\r\n", FB_HTTP_E_CHUNK_SIZE),
	P("+5\r\nhello\r\n0\r\n\r\n", FB_HTTP_E_CHUNK_SIZE),
	P("-5\r\nhello\r\n0\r\n\r\n", FB_HTTP_E_CHUNK_SIZE),
	P(" 5\r\nhello\r\n0\r\n\r\n", FB_HTTP_E_CHUNK_SIZE),
	P("5_\r\nhello\r\n0\r\n\r\n", FB_HTTP_E_CHUNK_SIZE),
	P("\r\nhello\r\n0\r\n\r\n", FB_HTTP_E_CHUNK_SIZE),
	P("1000000000000000\r\n", FB_HTTP_E_CHUNK_SIZE),
	P("5 \r\nhello\r\n0\r\n\r\n", FB_HTTP_E_CHUNK_EXT),
	P("5\nhello\r\n0\r\n\r\n", FB_HTTP_E_BARE_LF),
	P("5\rhello\r\n0\r\n\r\n", FB_HTTP_E_BARE_CR),
	P("5\r\nhello\n0\r\n\r\n", FB_HTTP_E_CHUNK_CRLF),
	P("5\r\nhelloX\r\n0\r\n\r\n", FB_HTTP_E_CHUNK_CRLF),
	P("5\r\nhello\r\r\n0\r\n\r\n", FB_HTTP_E_CHUNK_CRLF),
	P("5;a=\"b\rc\"\r\nhello\r\n0\r\n\r\n", FB_HTTP_E_CHUNK_EXT),
	P("5;a=\"bc\r\nhello\r\n0\r\n\r\n", FB_HTTP_E_CHUNK_EXT),
	P("5;a\x01\r\nhello\r\n0\r\n\r\n", FB_HTTP_E_CHUNK_EXT),
	P("5;a\nhello\r\n0\r\n\r\n", FB_HTTP_E_CHUNK_EXT),
	P("0\r\nX: a\r\n b\r\n\r\n", FB_HTTP_E_OBS_FOLD),
	P("0\r\nX : a\r\n\r\n", FB_HTTP_E_SPACE_BEFORE_COLON),
	P("0\r\nX\r\n\r\n", FB_HTTP_E_NO_COLON),
	P("0\r\n: a\r\n\r\n", FB_HTTP_E_FIELD_NAME),
	P("0\r\nX: a\0\r\n\r\n", FB_HTTP_E_FIELD_VALUE),
	P("0\r\nX: a\n\r\n", FB_HTTP_E_BARE_LF),
	P("0\r\nX: a\r\r\n", FB_HTTP_E_BARE_CR),
	P("0\r\n\n", FB_HTTP_E_BARE_LF),
	P("0\r\n\rX", FB_HTTP_E_BARE_CR),
};

static void test_chunked_refused(void **state)
{
	char out[4096];
	size_t out_len, used;
	enum fb_http_error err;
	char ext[FB_CHUNK_EXT_MAX + 16];

	(void)state;
	for (size_t i = 0; i < sizeof(bad_chunks) / sizeof(bad_chunks[0]); i++) {
		for (size_t step = 0; step < 3; step++) {
			enum fb_chunked_status st;

			st = dechunk(bad_chunks[i].s, bad_chunks[i].len, step, out,
				     &out_len, &used, &err);
			if (st != FB_CHUNKED_ERROR || err != bad_chunks[i].want)
				fail_msg("chunked %zu (step %zu): status %d error %s, want %s",
					 i, step, st, fb_http_error_str(err),
					 fb_http_error_str(bad_chunks[i].want));
		}
	}
	/* extensions are bounded */
	memset(ext, 'e', sizeof(ext));
	ext[0] = '1';
	ext[1] = ';';
	assert_int_equal(dechunk(ext, sizeof(ext), 0, out, &out_len, &used, &err),
			 FB_CHUNKED_ERROR);
	assert_int_equal(err, FB_HTTP_E_CHUNK_EXT);
	/* so are trailers */
	{
		char *t = malloc(FB_CHUNK_TRAILER_MAX + 64);
		size_t n = 0;

		assert_non_null(t);
		memcpy(t, "0\r\n", 3);
		n = 3;
		while (n < FB_CHUNK_TRAILER_MAX + 16) {
			memcpy(t + n, "X-T: 0123456789\r\n", 17);
			n += 17;
		}
		assert_int_equal(dechunk(t, n, 0, out, &out_len, &used, &err),
				 FB_CHUNKED_ERROR);
		assert_int_equal(err, FB_HTTP_E_TRAILER_TOO_LARGE);
		free(t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_request),
		cmocka_unit_test(test_many_fields),
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_status_text),
		cmocka_unit_test(test_refused_early),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_buffer_moves),
		cmocka_unit_test(test_split_authority),
		cmocka_unit_test(test_dot_segments),
		cmocka_unit_test(test_dot_segments_decoded),
		cmocka_unit_test(test_chunked_good),
		cmocka_unit_test(test_chunked_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
