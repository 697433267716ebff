/*
 * test_request.c — per-request rule matching on a brokered name: every
 * matcher kind (exact, startsWith, regex) on every dimension (method,
 * path, query, headers), AND/OR semantics, first match wins, the verdict
 * per action, bounded regex work, and the normal form paths and queries
 * are matched in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include <string.h>

#include "policy/internal.h"

#define MAX_HEADERS 8

static struct fb_policy *load(const char *yaml)
{
	struct fb_diags diags = { 0 };
	struct fb_policy *p = fb_policy_load(yaml, strlen(yaml), NULL, &diags);

	if (!p) {
		char *why = fb_diags_to_string(&diags);

		fail_msg("policy did not load:\n%s", why);
	}
	return p;
}

/*
 * Decide "METHOD TARGET" with headers given as "Name: value" strings, on
 * the only key of `p`, as the broker does: its path and query in normal
 * form first.  Returns "VERDICT REASON RULE", or "bad-escape" for a
 * target the broker refuses so.
 */
static const char *decide(const struct fb_policy *p, const char *method,
			  const char *target, const char *const *headers)
{
	static char out[64];
	struct fb_http_header h[MAX_HEADERS];
	const char *q = strchr(target, '?');
	size_t nh = 0, nd;
	const struct fb_domain *d = fb_policy_domains(p, &nd);
	struct fb_decision dec;

	for (; headers && headers[nh]; nh++) {
		const char *colon = strchr(headers[nh], ':');

		h[nh] = (struct fb_http_header){
			.name = headers[nh],
			.name_len = (size_t)(colon - headers[nh]),
			.value = colon + 2,
			.value_len = strlen(colon + 2),
		};
	}
	struct fb_request req = {
		.method = method, .method_len = strlen(method),
		.headers = h, .nheaders = nh,
	};
	/* the path and query in normal form, as the broker matches them,
	 * then their other readings */
	size_t path_len = q ? (size_t)(q - target) : strlen(target);
	size_t query_len = q ? strlen(q + 1) : 0;
	char *copy = strdup(target);
	char *scratch = malloc(FB_TARGET_SCRATCH(path_len, query_len));

	assert_non_null(copy);
	assert_non_null(scratch);
	if (fb_uri_normalize(copy, &path_len) < 0 ||
	    (q && fb_uri_normalize(copy + (q - target) + 1, &query_len) < 0)) {
		free(copy);
		free(scratch);
		return "bad-escape";
	}
	fb_request_target(&req, copy, path_len,
			  q ? copy + (q - target) + 1 : NULL, query_len, scratch);
	fb_policy_decide_request(&d[0], &req, &dec);
	free(scratch);
	free(copy);
	assert_ptr_equal(dec.domain, &d[0]);
	snprintf(out, sizeof out, "%s %s %d", fb_verdict_str(dec.verdict),
		 fb_reason_str(dec.reason), dec.rule);
	return out;
}

#define NO_HEADERS NULL

/* Each GET of cases[i][0] is decided as cases[i][1]. */
static void decide_gets(struct fb_policy *p, const char *const (*cases)[2],
			size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_string_equal(decide(p, "GET", cases[i][0], NULL),
				    cases[i][1]);
}
#define HEADERS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Each cases[i]: a method, a target and one field, decided as the last. */
static void decide_requests(struct fb_policy *p, const char *const (*cases)[4],
			    size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_string_equal(decide(p, cases[i][0], cases[i][1],
					   HEADERS(cases[i][2])),
				    cases[i][3]);
}

static void test_method_or_case_sensitive(void **state)
{
	struct fb_policy *p = load(
		"allow:\n"
		"  api.example.com:\n"
		"    - match: { method: [POST, PUT] }\n"
		"      transform: [{ headers: { authorization: s } }]\n");

	(void)state;
	assert_string_equal(decide(p, "POST", "/", NO_HEADERS), "broker rule 0");
	assert_string_equal(decide(p, "PUT", "/", NO_HEADERS), "broker rule 0");
	assert_string_equal(decide(p, "GET", "/", NO_HEADERS), "allow no-rule -1");
	assert_string_equal(decide(p, "post", "/", NO_HEADERS), "allow no-rule -1");
	assert_string_equal(decide(p, "POSTX", "/", NO_HEADERS), "allow no-rule -1");
	fb_policy_unref(p);
}

/* A framework serves a POST as the method an override field or a _method
 * parameter names: the method matcher reads it so too. */
static void test_method_override(void **state)
{
	struct fb_policy *p = load(
		"allow:\n"
		"  api.example.com:\n"
		"    - match: { method: [DELETE] }\n"
		"      response: { statusCode: 405 }\n"
		"    - match: { method: [GET] }\n"
		"      response: { statusCode: 403 }\n");
	/* the method, the target, a field, and the decision */
	static const char *const cases[][4] = {
		{ "POST", "/x", "X-HTTP-Method-Override: DELETE", "respond rule 0" },
		{ "POST", "/x", "x-http-method-override: delete", "respond rule 0" },
		{ "POST", "/x", "X_HTTP_Method: Delete", "respond rule 0" },
		{ "POST", "/x", "X-Method-Override: DELETE", "respond rule 0" },
		{ "POST", "/x?a=1&_method=delete", "x-a: 1", "respond rule 0" },
		/* only a POST is overridden, and only to the method named */
		{ "GET", "/x", "X-HTTP-Method-Override: DELETE", "respond rule 1" },
		{ "GET", "/x?_method=DELETE", "x-a: 1", "respond rule 1" },
		{ "POST", "/x", "X-HTTP-Method-Override: PUT", "allow no-rule -1" },
		{ "POST", "/x", "X-HTTP-Method-Override: DELETEX", "allow no-rule -1" },
		{ "POST", "/x?method=DELETE", "x-method: DELETE", "allow no-rule -1" },
		/* HEAD runs the GET handler, sent or named */
		{ "HEAD", "/x", "x-a: 1", "respond rule 1" },
		{ "POST", "/x?_method=head", "x-a: 1", "respond rule 1" },
		{ "POST", "/x", "X-HTTP-Method-Override: HEAD", "respond rule 1" },
		{ "PUT", "/x", "x-a: 1", "allow no-rule -1" },
	};

	(void)state;
	decide_requests(p, cases, sizeof(cases) / sizeof(cases[0]));
	fb_policy_unref(p);
}

static void test_path_kinds(void **state)
{
	struct fb_policy *p = load(
		"allow:\n"
		"  api.example.com:\n"
		"    - match: { path: { exact: /v1/models } }\n"
		"      transform: [{ headers: { a: s } }]\n"
		"    - match: { path: { startsWith: /v1/ } }\n"
		"      forwardURL: https://audit.example.com/fwd\n"
		"    - match: { path: { regex: \"admin\" } }\n"
		"      response: { statusCode: 403 }\n"
		"    - match: { path: { regex: \"^/only$\" } }\n"
		"      response: { statusCode: 404 }\n");

	(void)state;
	assert_string_equal(decide(p, "GET", "/v1/models", NO_HEADERS), "broker rule 0");
	/* exact means exact; the query is not part of the path */
	assert_string_equal(decide(p, "GET", "/v1/models?x=1", NO_HEADERS), "broker rule 0");
	assert_string_equal(decide(p, "GET", "/v1/models/", NO_HEADERS), "forward rule 1");
	assert_string_equal(decide(p, "GET", "/V1/models", NO_HEADERS), "allow no-rule -1");
	assert_string_equal(decide(p, "GET", "/v1", NO_HEADERS), "allow no-rule -1");
	/* regex searches anywhere unless anchored */
	assert_string_equal(decide(p, "GET", "/x/admin/y", NO_HEADERS), "respond rule 2");
	assert_string_equal(decide(p, "GET", "/only", NO_HEADERS), "respond rule 3");
	assert_string_equal(decide(p, "GET", "/only/not", NO_HEADERS), "allow no-rule -1");
	/* %2F is no slash as sent, but one as some servers read it: a rule
	 * that grants needs both readings */
	assert_string_equal(decide(p, "GET", "/v1%2Fmodels", NO_HEADERS), "allow no-rule -1");
	assert_string_equal(decide(p, "GET", "/v1%3Fmodels", NO_HEADERS), "allow no-rule -1");
	assert_string_equal(decide(p, "GET", "/x?path=/v1/", NO_HEADERS), "allow no-rule -1");
	fb_policy_unref(p);
}

/* fb_uri_normalize(s) as a string; "-1" if it fails, s unchanged */
static const char *normal(const char *s)
{
	static char out[128];
	size_t n = strlen(s);

	assert_true(n < sizeof out);
	memcpy(out, s, n + 1);
	if (fb_uri_normalize(out, &n) < 0) {
		assert_string_equal(out, s);
		return "-1";
	}
	out[n] = '\0';
	return out;
}

static void test_uri_normal_form(void **state)
{
	(void)state;
	/* unreserved octets decoded, whatever the case of their hex */
	assert_string_equal(normal("/v1/%66iles"), "/v1/files");
	assert_string_equal(normal("%41%5a%61%7A%30%39%2D%2e%5F%7e"), "AZaz09-._~");
	/* the others kept, in upper case */
	assert_string_equal(normal("/a%2fb%2Fc%3d%25%20%c3%a9"), "/a%2Fb%2Fc%3D%25%20%C3%A9");
	/* one decoding only: "%2566" is a literal "%66" */
	assert_string_equal(normal("%2566"), "%2566");
	/* a '%' without two hex digits after it: no normal form, as
	 * "%%33" would become "%3" and then an escape with what follows */
	assert_string_equal(normal("%%333"), "-1");
	assert_string_equal(normal("%3%333"), "-1");
	assert_string_equal(normal("%zz"), "-1");
	assert_string_equal(normal("a%4"), "-1");
	assert_string_equal(normal("a%41%"), "-1");
	assert_string_equal(normal(""), "");
	/* a NUL escape is no unreserved octet */
	assert_string_equal(normal("%00"), "%00");
}

/* Literal paths and queries in normal form load; header values and
 * regexes are not held to it. */
static void test_uri_matchers_load(void **state)
{
	struct fb_policy *p = load(
		"allow:\n"
		"  api.example.com:\n"
		"    - match: { path: { exact: \"/a%2Fb~\" } }\n"
		"      response: { statusCode: 403 }\n"
		"    - match: { queryString: [{ key: { exact: q }, value: { startsWith: \"%C3%A9\" } }] }\n"
		"      response: { statusCode: 404 }\n"
		"    - match: { path: { regex: \"%2F\" } }\n"
		"      response: { statusCode: 410 }\n"
		"    - match: { headers: [{ key: { exact: x-a }, value: { exact: \"%66\" } }] }\n"
		"      response: { statusCode: 418 }\n");

	(void)state;
	assert_string_equal(decide(p, "GET", "/a%2Fb~", NO_HEADERS), "respond rule 0");
	assert_string_equal(decide(p, "GET", "/?q=%C3%A9t%C3%A9", NO_HEADERS), "respond rule 1");
	/* a regex sees the normal form: "%2f" is "%2F" there */
	assert_string_equal(decide(p, "GET", "/%2f", NO_HEADERS), "respond rule 2");
	assert_string_equal(decide(p, "GET", "/", HEADERS("x-a: %66")), "respond rule 3");
	fb_policy_unref(p);
}

/* A path matcher matches the path as sent or as lenient servers read it. */
static void test_lenient_reading(void **state)
{
	struct fb_policy *p = load(
		"allow:\n"
		"  api.example.com:\n"
		"    - match: { path: { startsWith: /blocked } }\n"
		"      response: { statusCode: 403 }\n"
		"    - match: { path: { exact: /a/b } }\n"
		"      response: { statusCode: 404 }\n"
		"    - match: { path: { startsWith: /v1/ } }\n"
		"      transform: [{ headers: { a: s } }]\n");

	(void)state;
	assert_string_equal(decide(p, "GET", "/blocked", NO_HEADERS), "respond rule 0");
	assert_string_equal(decide(p, "GET", "//blocked", NO_HEADERS), "respond rule 0");
	assert_string_equal(decide(p, "GET", "///blocked/x", NO_HEADERS), "respond rule 0");
	assert_string_equal(decide(p, "GET", "/\\blocked", NO_HEADERS), "respond rule 0");
	assert_string_equal(decide(p, "GET", "/%2Fblocked", NO_HEADERS), "respond rule 0");
	assert_string_equal(decide(p, "GET", "/%5cblocked", NO_HEADERS), "respond rule 0");
	assert_string_equal(decide(p, "GET", "/a//b", NO_HEADERS), "respond rule 1");
	assert_string_equal(decide(p, "GET", "/a%2F%2Fb", NO_HEADERS), "respond rule 1");
	assert_string_equal(decide(p, "GET", "/a\\b?x=//", NO_HEADERS), "respond rule 1");
	/* Tomcat's and Spring's parameters */
	assert_string_equal(decide(p, "GET", "/a/b;jsessionid=1", NO_HEADERS), "respond rule 1");
	assert_string_equal(decide(p, "GET", "/a;x=1/b;y", NO_HEADERS), "respond rule 1");
	assert_string_equal(decide(p, "GET", "/;x/blocked", NO_HEADERS), "respond rule 0");
	assert_string_equal(decide(p, "GET", "/a/%3Bb", NO_HEADERS), "allow no-rule -1");
	/* Fastify 4's router ends the path at the first ';' */
	assert_string_equal(decide(p, "GET", "/a/b;x/c", NO_HEADERS), "respond rule 1");
	assert_string_equal(decide(p, "GET", "/a/b;/x/y/z", NO_HEADERS), "respond rule 1");
	assert_string_equal(decide(p, "GET", "/a/b%3B/x", NO_HEADERS), "allow no-rule -1");
	assert_string_equal(decide(p, "GET", "/v1;x/y", NO_HEADERS), "allow no-rule -1");
	assert_string_equal(decide(p, "GET", "/v1/x;y/z", NO_HEADERS), "broker rule 2");
	/* a rule that grants needs every reading: "/v1//x" is in /v1/ as
	 * sent and as merged, "//v1/x" only as merged ("/x" to a URL parser) */
	assert_string_equal(decide(p, "GET", "/v1//x", NO_HEADERS), "broker rule 2");
	assert_string_equal(decide(p, "GET", "//v1/x", NO_HEADERS), "allow no-rule -1");
	/* a separator is no letter, and a path elsewhere no match */
	assert_string_equal(decide(p, "GET", "/blo%2Fcked", NO_HEADERS), "allow no-rule -1");
	assert_string_equal(decide(p, "GET", "/x//blocked", NO_HEADERS), "allow no-rule -1");
	assert_string_equal(decide(p, "GET", "/a/b/c", NO_HEADERS), "allow no-rule -1");
	fb_policy_unref(p);
}

/*
 * Express and ASP.NET Core route without case and with or without one
 * trailing '/': "/ADMIN" and "/admin/" reach the route "/admin", and
 * app.use("/admin/") serves "/admin"; Rails serves "/admin.json" there.
 * A rule that answers meets those spellings; one that grants keeps to
 * the bytes.
 */
static void test_case_and_slash_reading(void **state)
{
	static const char *const cases[][2] = {
		{ "/admin", "respond rule 0" },
		{ "/ADMIN", "respond rule 0" },
		{ "/Admin/", "respond rule 0" },
		{ "/%41dmin", "respond rule 0" },
		{ "//ADMIN//", "respond rule 0" },
		{ "/admin;x/", "respond rule 0" },
		{ "/admin//", "respond rule 0" }, /* one '/' as merged */
		{ "/admin/x", "allow no-rule -1" },
		{ "/admins", "allow no-rule -1" },
		/* Rails' format suffix */
		{ "/admin.json", "respond rule 0" },
		{ "/Admin.xml/", "respond rule 0" },
		{ "/admin.json.gz", "allow no-rule -1" },
		{ "/admin.", "allow no-rule -1" },
		{ "/admin/.json", "allow no-rule -1" },
		{ "/report/7.json", "respond rule 2" },
		{ "/Private", "respond rule 1" },
		{ "/PRIVATE/", "respond rule 1" },
		{ "/private/KEYS", "respond rule 1" },
		{ "/privatekeys", "allow no-rule -1" },
		{ "/Report/2024", "respond rule 2" },
		{ "/REPORT/2024/", "respond rule 2" },
		{ "/report/x", "allow no-rule -1" },
		{ "/Exact/", "respond rule 3" },
		{ "/exact", "respond rule 3" },
		{ "/exact.json", "respond rule 3" },
		{ "/private.json", "respond rule 1" },
		{ "/privates", "allow no-rule -1" },
		{ "/V1/chat", "allow no-rule -1" },
		{ "/v1/chat/", "allow no-rule -1" },
		{ "/v1/chat.json", "allow no-rule -1" },
		{ "/v1/chat", "broker rule 4" },
	};
	struct fb_policy *p = load(
		"allow:\n"
		"  api.example.com:\n"
		"    - match: { path: { exact: /admin } }\n"
		"      response: { statusCode: 403 }\n"
		"    - match: { path: { startsWith: /private/ } }\n"
		"      response: { statusCode: 403 }\n"
		"    - match: { path: { regex: \"^/report/[0-9]+$\" } }\n"
		"      response: { statusCode: 403 }\n"
		"    - match: { path: { exact: /Exact/ } }\n"
		"      response: { statusCode: 403 }\n"
		"    - match: { path: { exact: /v1/chat } }\n"
		"      transform: [{ headers: { a: s } }]\n");

	(void)state;
	decide_gets(p, cases, sizeof(cases) / sizeof(cases[0]));
	fb_policy_unref(p);
}

/* A URL parser (Node's `new URL(req.url, base)`) reads a path that starts
 * with two separators as an authority and a path: "//x/blocked" is
 * "/blocked" there. */
static void test_authority_reading(void **state)
{
	struct fb_policy *p = load(
		"allow:\n"
		"  api.example.com:\n"
		"    - match: { path: { startsWith: /blocked } }\n"
		"      response: { statusCode: 403 }\n"
		"    - match: { path: { exact: / } }\n"
		"      response: { statusCode: 404 }\n"
		"    - match: { path: { startsWith: /v1/ } }\n"
		"      transform: [{ headers: { a: s } }]\n");

	/* the target, and the decision */
	static const char *const cases[][2] = {
		{ "//x/blocked", "respond rule 0" },
		{ "/\\x/blocked", "respond rule 0" },
		{ "///x/blocked/y", "respond rule 0" },
		{ "//x\\blocked?q=1", "respond rule 0" },
		{ "//x:8/;a/blocked", "respond rule 0" },
		{ "//x", "respond rule 1" },
		/* a grant needs every reading: nginx serves /x/v1/y */
		{ "//x/v1/y", "allow no-rule -1" },
		/* one separator is no authority, nor is an encoded one */
		{ "/x/blocked", "allow no-rule -1" },
		{ "/%2Fx/blocked", "allow no-rule -1" },
	};

	(void)state;
	decide_gets(p, cases, sizeof(cases) / sizeof(cases[0]));
	fb_policy_unref(p);
}

/* A rule that grants (a secret, a forward) matches only when every
 * reading of the request does; one that answers, when any does. */
static void test_grants_every_reading(void **state)
{
	struct fb_policy *p = load(
		"allow:\n"
		"  api.example.com:\n"
		"    - match: { method: [DELETE] }\n"
		"      response: { statusCode: 405 }\n"
		"    - match: { method: [GET], path: { startsWith: /v1/ } }\n"
		"      transform: [{ headers: { a: s } }]\n"
		"    - match: { method: [POST], queryString: [{ key: { exact: q }, value: { exact: a+b } }] }\n"
		"      forwardURL: https://audit.example.com/hook\n");
	/* the method, the target, a field, and the decision */
	static const char *const cases[][4] = {
		{ "GET", "/v1/x", "x-a: 1", "broker rule 1" },
		/* a POST a framework may serve as GET is still a POST */
		{ "POST", "/v1/x?_method=GET", "x-a: 1", "allow no-rule -1" },
		{ "POST", "/v1/x", "X-HTTP-Method-Override: GET", "allow no-rule -1" },
		/* and a POST it may serve as DELETE no longer a POST */
		{ "POST", "/?q=a+b", "x-a: 1", "forward rule 2" },
		{ "POST", "/?q=a+b", "X-HTTP-Method-Override: PUT", "allow no-rule -1" },
		/* PHP reads ".method" and "+method" as "_method" */
		{ "POST", "/?.method=DELETE", "x-a: 1", "respond rule 0" },
		{ "POST", "/?+method=DELETE", "x-a: 1", "respond rule 0" },
		{ "POST", "/?[method=DELETE", "x-a: 1", "respond rule 0" },
		{ "POST", "/?xmethod=DELETE", "x-a: 1", "allow no-rule -1" },
		/* HEAD reads what GET does: no grant is widened by it, sent
		 * or named */
		{ "HEAD", "/v1/x", "x-a: 1", "allow no-rule -1" },
		{ "POST", "/v1/x?_method=HEAD", "x-a: 1", "allow no-rule -1" },
		/* nor by case, a trailing '/' or a format suffix; and the
		 * path before its ';' is a reading like any other */
		{ "GET", "/V1/x", "x-a: 1", "allow no-rule -1" },
		{ "GET", "/v1", "x-a: 1", "allow no-rule -1" },
		{ "GET", "/v1.json", "x-a: 1", "allow no-rule -1" },
		{ "GET", "/v1/x;y", "x-a: 1", "broker rule 1" },
		{ "GET", "/v1;y/x", "x-a: 1", "allow no-rule -1" },
		/* a grant takes the query as sent: "a+b" is those bytes */
		{ "POST", "/?q=a%2Bb", "x-a: 1", "allow no-rule -1" },
		{ "POST", "/?q=a%20b", "x-a: 1", "allow no-rule -1" },
	};

	(void)state;
	decide_requests(p, cases, sizeof(cases) / sizeof(cases[0]));
	fb_policy_unref(p);
}

static void test_query(void **state)
{
	struct fb_policy *p = load(
		"allow:\n"
		"  api.example.com:\n"
		"    - match:\n"
		"        queryString:\n"
		"          - { key: { exact: model }, value: { startsWith: gpt- } }\n"
		"          - { key: { exact: stream } }\n"
		"      transform: [{ headers: { a: s } }]\n"
		"    - match:\n"
		"        queryString: [{ value: { regex: \"^[0-9]+$\" } }]\n"
		"      forwardURL: https://audit.example.com/fwd\n");

	(void)state;
	/* both kv matchers (AND), in any order, among other pairs */
	assert_string_equal(decide(p, "GET", "/?model=gpt-4&stream=1", NO_HEADERS), "broker rule 0");
	assert_string_equal(decide(p, "GET", "/?a=b&stream&model=gpt-x", NO_HEADERS), "broker rule 0");
	/* a rule that grants needs every value of a repeated key */
	assert_string_equal(decide(p, "GET", "/?model=gpt-3&stream=&model=gpt-4", NO_HEADERS), "broker rule 0");
	assert_string_equal(decide(p, "GET", "/?model=x&stream=&model=gpt-4", NO_HEADERS), "allow no-rule -1");
	/* one missing: no */
	assert_string_equal(decide(p, "GET", "/?model=gpt-4", NO_HEADERS), "allow no-rule -1");
	assert_string_equal(decide(p, "GET", "/?model=GPT-4&stream=on", NO_HEADERS), "allow no-rule -1");
	/* value only, on any key; in normal form, so "%32" is the digit 2,
	 * and nothing else decoded */
	assert_string_equal(decide(p, "GET", "/?page=42", NO_HEADERS), "forward rule 1");
	assert_string_equal(decide(p, "GET", "/?page=4%32", NO_HEADERS), "forward rule 1");
	assert_string_equal(decide(p, "GET", "/?page=4%2B2", NO_HEADERS), "allow no-rule -1");
	assert_string_equal(decide(p, "GET", "/?42", NO_HEADERS), "allow no-rule -1");
	/* no query at all */
	assert_string_equal(decide(p, "GET", "/", NO_HEADERS), "allow no-rule -1");
	assert_string_equal(decide(p, "GET", "/?", NO_HEADERS), "allow no-rule -1");
	fb_policy_unref(p);
}

/* ASP.NET Core binds query keys without case: a rule that answers
 * reads a key so; one that grants keeps to the bytes, and to every copy
 * of a key. */
static void test_query_key_case(void **state)
{
	static const char *const cases[][2] = {
		{ "/?debug=1", "respond rule 0" },
		{ "/?DEBUG=1", "respond rule 0" },
		{ "/?Debug=1&x=2", "respond rule 0" },
		{ "/?x-Trace=on", "respond rule 1" },
		{ "/?TRACE_ID=7", "respond rule 2" },
		{ "/?debug=0", "allow no-rule -1" }, /* values keep their case */
		{ "/?Debugger=1", "allow no-rule -1" },
		{ "/?Model=gpt-4", "allow no-rule -1" },
		{ "/?model=gpt-4", "broker rule 3" },
		/* a grant needs every copy of its key: frameworks take the
		 * first or the last */
		{ "/?model=gpt-4&model=gpt-4", "broker rule 3" },
		{ "/?model=gpt-4&model=o1", "allow no-rule -1" },
		{ "/?model=o1&model=gpt-4", "allow no-rule -1" },
		{ "/?model=gpt-4&model", "allow no-rule -1" },
		{ "/?model=gpt-4&Model=o1", "allow no-rule -1" },
		{ "/?model=gpt-4&x=1;model=o1", "allow no-rule -1" },
		{ "/?model=gpt-4&x=1;y=2", "broker rule 3" },
		/* nor spelt as PHP and Rack 2 bind it */
		{ "/?model=gpt-4&+model=o1", "allow no-rule -1" },
		{ "/?model=gpt-4&%20model=o1", "allow no-rule -1" },
		{ "/?model=gpt-4&model%00x=o1", "allow no-rule -1" },
		{ "/?model=gpt-4&model[]=o1", "allow no-rule -1" },
		{ "/?model=gpt-4&model%5B%5D=o1", "allow no-rule -1" },
		{ "/?model=gpt-4&[model]=o1", "allow no-rule -1" },
		{ "/?model=gpt-4&model]=o1", "allow no-rule -1" },
		{ "/?model=gpt-4&models=o1&xmodel=o1&mo.del=o1", "broker rule 3" },
		{ "/?ver_sion=2&version=3", "broker rule 4" },
		{ "/?ver_sion=2&ver.sion=3", "broker rule 5" },
		{ "/?ver_sion=2&ver%20sion=3", "broker rule 5" },
		/* a block needs one */
		{ "/?debug=0&debug=1", "respond rule 0" },
	};
	struct fb_policy *p = load(
		"allow:\n"
		"  api.example.com:\n"
		"    - match: { queryString: [{ key: { exact: debug }, value: { exact: \"1\" } }] }\n"
		"      response: { statusCode: 403 }\n"
		"    - match: { queryString: [{ key: { startsWith: x-trace } }] }\n"
		"      response: { statusCode: 403 }\n"
		"    - match: { queryString: [{ key: { regex: \"^trace_[a-z]+$\" } }] }\n"
		"      response: { statusCode: 403 }\n"
		"    - match: { queryString: [{ key: { exact: model }, value: { exact: gpt-4 } }] }\n"
		"      transform: [{ headers: { a: s } }]\n"
		"    - match: { queryString: [{ key: { exact: ver_sion }, value: { exact: \"2\" } }] }\n"
		"      transform: [{ headers: { a: s } }]\n"
		"    - match: { queryString: [{ key: { regex: \"^ver\" } }] }\n"
		"      transform: [{ headers: { a: s } }]\n");

	(void)state;
	decide_gets(p, cases, sizeof(cases) / sizeof(cases[0]));
	fb_policy_unref(p);
}

/* Form decoders read '+' as a space, and Rack before 3 splits at ';':
 * a query matcher reads the query so too. */
static void test_query_form(void **state)
{
	struct fb_policy *p = load(
		"allow:\n"
		"  api.example.com:\n"
		"    - match: { queryString: [{ key: { exact: q }, value: { exact: \"a%20b\" } }] }\n"
		"      response: { statusCode: 403 }\n"
		"    - match: { queryString: [{ key: { exact: action }, value: { exact: delete } }] }\n"
		"      response: { statusCode: 404 }\n");
	/* the target, and the decision */
	static const char *const cases[][2] = {
		{ "/?q=a%20b", "respond rule 0" },
		{ "/?q=a+b", "respond rule 0" },
		{ "/?x=1&q=a+b&y", "respond rule 0" },
		{ "/?x=1;action=delete", "respond rule 1" },
		{ "/?action=delete;x=1", "respond rule 1" },
		{ "/x;y?action=delete&z", "respond rule 1" },
		/* '+' is a space, not a separator; a literal %2B is no space */
		{ "/?q=a%2Bb", "allow no-rule -1" },
		{ "/?q=a++b", "allow no-rule -1" },
		{ "/?action=del+ete", "allow no-rule -1" },
	};

	(void)state;
	decide_gets(p, cases, sizeof(cases) / sizeof(cases[0]));
	fb_policy_unref(p);
}

static void test_headers(void **state)
{
	struct fb_policy *p = load(
		"allow:\n"
		"  api.example.com:\n"
		"    - match:\n"
		"        headers:\n"
		"          - { key: { exact: X-Api-Key }, value: { exact: placeholder } }\n"
		"          - { key: { startsWith: x-trace } }\n"
		"      transform: [{ headers: { authorization: s } }]\n"
		"    - match:\n"
		"        headers: [{ key: { regex: \"^user-agent$\" }, value: { regex: curl } }]\n"
		"      response: { statusCode: 403 }\n"
		"    - match:\n"
		"        headers: [{ key: { regex: \"^x-tier$\" }, value: { exact: free } }]\n"
		"      transform: [{ headers: { authorization: t } }]\n"
		"    - match:\n"
		"        headers: [{ key: { regex: \"^x_grp$\" }, value: { exact: a } }]\n"
		"      transform: [{ headers: { authorization: g } }]\n");

	/* up to three fields, and the decision of a GET / with them */
	static const char *const cases[][4] = {
		/* names case-insensitive, values case-sensitive, AND
		 * across matchers */
		{ "x-api-key: placeholder", "X-TRACE-ID: 1", NULL, "broker rule 0" },
		{ "X-API-KEY: Placeholder", "x-trace-id: 1", NULL, "allow no-rule -1" },
		{ "x-api-key: placeholder", NULL, NULL, "allow no-rule -1" },
		/* a rule that grants needs every copy of a repeated
		 * header, as an application may read any; one that
		 * answers, one copy */
		{ "x-api-key: other", "x-trace: 1", "X-Api-Key: placeholder", "allow no-rule -1" },
		{ "x-api-key: placeholder", "x-trace: 1", "X-Api-Key: placeholder", "broker rule 0" },
		{ "User-Agent: wget", "user-agent: curl", NULL, "respond rule 1" },
		/* CGI, PHP and WSGI read X_Api_Key as X-Api-Key */
		{ "x-api-key: placeholder", "x-trace: 1", "X_Api_Key: other", "allow no-rule -1" },
		{ "x-api-key: placeholder", "x-trace: 1", "X_Api_Keys: other", "broker rule 0" },
		{ "X-Tier: free", NULL, NULL, "broker rule 2" },
		{ "X-Tier: free", "x_tier: pro", NULL, "allow no-rule -1" },
		{ "x_grp: a", NULL, NULL, "broker rule 3" },
		{ "x_grp: a", "X-Grp: b", NULL, "allow no-rule -1" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const fields[] = { cases[i][0], cases[i][1],
					       cases[i][2], NULL };

		assert_string_equal(decide(p, "GET", "/", fields), cases[i][3]);
	}
	/* a regex on the name is caseless too; the value regex searches */
	assert_string_equal(decide(p, "GET", "/", HEADERS("User-Agent: my-curl/8")),
			    "respond rule 1");
	assert_string_equal(decide(p, "GET", "/", HEADERS("User-Agent: Curl/8")),
			    "allow no-rule -1");
	assert_string_equal(decide(p, "GET", "/", HEADERS("X-User-Agent: curl")),
			    "allow no-rule -1");
	fb_policy_unref(p);
}

static void test_all_dimensions_and_order(void **state)
{
	struct fb_policy *p = load(
		"allow:\n"
		"  api.example.com:\n"
		"    - match:\n"
		"        method: [POST]\n"
		"        path: { startsWith: /v1/ }\n"
		"        queryString: [{ key: { exact: a } }]\n"
		"        headers: [{ key: { exact: x-k } }]\n"
		"      transform: [{ headers: { a: s } }]\n"
		"    - forwardURL: https://audit.example.com/fwd\n"
		"    - response: { statusCode: 403 }\n");

	(void)state;
	assert_string_equal(decide(p, "POST", "/v1/x?a=1", HEADERS("X-K: v")),
			    "broker rule 0");
	/* each dimension alone failing drops to the catch-everything rule 1,
	 * which shadows rule 2 */
	assert_string_equal(decide(p, "GET", "/v1/x?a=1", HEADERS("X-K: v")),
			    "forward rule 1");
	assert_string_equal(decide(p, "POST", "/v2/x?a=1", HEADERS("X-K: v")),
			    "forward rule 1");
	assert_string_equal(decide(p, "POST", "/v1/x?b=1", HEADERS("X-K: v")),
			    "forward rule 1");
	assert_string_equal(decide(p, "POST", "/v1/x?a=1", HEADERS("X-J: v")),
			    "forward rule 1");
	fb_policy_unref(p);
}

/* A backtracking bomb costs bounded work and counts as no match. */
static void test_regex_limits(void **state)
{
	struct fb_policy *p = load(
		"allow:\n"
		"  api.example.com:\n"
		"    - match: { path: { regex: \"^(a|a)*$\" } }\n"
		"      response: { statusCode: 403 }\n");
	char path[4096];

	(void)state;
	path[0] = '/';
	memset(path + 1, 'a', sizeof path - 3);
	path[sizeof path - 2] = 'b';
	path[sizeof path - 1] = '\0';
	assert_string_equal(decide(p, "GET", path, NO_HEADERS), "allow no-rule -1");
	fb_policy_unref(p);
}

static void test_matcher_kinds_directly(void **state)
{
	struct fb_matcher exact = { .kind = FB_MATCH_EXACT, .text = "abc", .len = 3 };
	struct fb_matcher prefix = { .kind = FB_MATCH_PREFIX, .text = "ab", .len = 2 };
	struct fb_matcher empty = { .kind = FB_MATCH_PREFIX, .text = "", .len = 0 };

	(void)state;
	assert_true(fb_matcher_match(&exact, "abc", 3));
	assert_false(fb_matcher_match(&exact, "abcd", 4));
	assert_false(fb_matcher_match(&exact, "ab", 2));
	/* lengths, not NUL terminators, bound the comparison */
	assert_false(fb_matcher_match(&exact, "abc\0", 4));
	assert_true(fb_matcher_match(&prefix, "abz", 3));
	assert_false(fb_matcher_match(&prefix, "a", 1));
	assert_true(fb_matcher_match(&empty, "", 0));
}

/* A key whose rules a policy change left as they were: every part of
 * a rule counts, the resolved header values included. */
static void test_rules_equal(void **state)
{
	static const char base[] =
		"allow:\n"
		"  a.test:\n"
		"    - match: { path: { startsWith: /v1/ }, method: [GET] }\n"
		"      transform: [{ headers: { x-api-key: one } }]\n"
		"    - response: { statusCode: 403, contentType: text/plain, body: no }\n";
	static const struct { const char *from, *to; } changes[] = {
		{ "key: one", "key: two" },			/* a value */
		{ "x-api-key", "x-api-kex" },			/* a name */
		{ "transform: [{ headers: { x-api-key: one } }]",
		  "forwardURL: https://hook.test/x" },		/* the action */
		{ "/v1/", "/v2/" },				/* the match */
		{ "[GET]", "[GET, PUT]" },
		{ "403", "404" },				/* the response */
		{ "body: no }", "body: no }\n    - response: { statusCode: 404 }" },
	};
	struct fb_policy *p = load(base), *q = load(base);
	const struct fb_domain *a = fb_policy_lookup(p, "a.test");

	(void)state;
	assert_true(fb_domain_rules_equal(a, fb_policy_lookup(q, "a.test")));
	fb_policy_unref(q);
	for (size_t i = 0; i < sizeof(changes) / sizeof(*changes); i++) {
		const char *at = strstr(base, changes[i].from);
		char text[512];

		snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - base), base,
			 changes[i].to, at + strlen(changes[i].from));
		q = load(text);
		if (fb_domain_rules_equal(a, fb_policy_lookup(q, "a.test")))
			fail_msg("%s -> %s: still equal", changes[i].from,
				 changes[i].to);
		fb_policy_unref(q);
	}
	fb_policy_unref(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_method_or_case_sensitive),
		cmocka_unit_test(test_method_override),
		cmocka_unit_test(test_path_kinds),
		cmocka_unit_test(test_uri_normal_form),
		cmocka_unit_test(test_uri_matchers_load),
		cmocka_unit_test(test_lenient_reading),
		cmocka_unit_test(test_grants_every_reading),
		cmocka_unit_test(test_case_and_slash_reading),
		cmocka_unit_test(test_authority_reading),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_query_form),
		cmocka_unit_test(test_query_key_case),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_all_dimensions_and_order),
		cmocka_unit_test(test_regex_limits),
		cmocka_unit_test(test_matcher_kinds_directly),
		cmocka_unit_test(test_rules_equal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
