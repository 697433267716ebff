/*
 * fuzz_rules.c — the rule matcher on requests parsed from fuzz bytes,
 * against one policy using every matcher kind (exact, startsWith, regex
 * on path, query keys and values, header names and values; methods).
 *
 * For every head the strict parser accepts: its path and query, put in
 * normal form as the broker does, do not grow and stay as they are when
 * normalized again; the path's lenient reading, if it differs, is no
 * longer and has no run of separators, backslash or parameter, and the
 * path before its first ';' ends there; the decision is the same
 * twice, names a rule whose
 * action it reports, is the broker's own (fb_broker_judge) where that
 * refuses nothing, and the head the broker would send upstream parses
 * again as a valid head that carries each injected header exactly once,
 * under any spelling, with the rule's value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "proxy/broker.h"
#include "proxy/http.h"

static const char policy_text[] =
	"allow:\n"
	"  api.example.com:\n"
	"    - match:\n"
	"        method: [POST, PUT]\n"
	"        path: { startsWith: /v1/ }\n"
	"        queryString:\n"
	"          - { key: { exact: model }, value: { startsWith: gpt- } }\n"
	"      transform:\n"
	"        - headers: { authorization: \"Bearer one\" }\n"
	"        - headers: { x-api-key: two, x_other: three }\n"
	"    - match:\n"
	"        path: { regex: \"^/fwd/[a-z]+$\" }\n"
	"        headers:\n"
	"          - { key: { regex: \"^x-trace\" }, value: { regex: \"[0-9]{3}\" } }\n"
	"      forwardURL: https://audit.example.com/hook\n"
	"    - match:\n"
	"        path: { exact: /local }\n"
	"        queryString: [{ value: { regex: \"^a+$\" } }]\n"
	"        headers: [{ key: { startsWith: x-k }, value: { exact: v } }]\n"
	"      response: { statusCode: 418, contentType: text/plain, body: local }\n"
	"    - match:\n"
	"        headers: [{ key: { exact: user-agent }, value: { startsWith: curl } }]\n"
	"      transform: [{ headers: { x-ua: curl } }]\n";

static const struct fb_domain *domain(void)
{
	static struct fb_policy *policy;
	size_t n;

	if (!policy) {
		struct fb_diags diags = { 0 };

		policy = fb_policy_load(policy_text, sizeof(policy_text) - 1,
					NULL, &diags);
		if (!policy)
			abort();
	}
	return fb_policy_domains(policy, &n);
}

/* The slice in normal form, in place in buf[0..size), as the broker puts
 * it: a slice elsewhere is the parser's "/".  -1: it has none. */
static int normalize(char *buf, size_t size, struct fb_http_slice *s)
{
	uintptr_t at = (uintptr_t)s->ptr;
	char *p, *again;
	size_t n;

	if (!s->ptr || at < (uintptr_t)buf || at >= (uintptr_t)buf + size) {
		if (s->ptr && (s->len != 1 || s->ptr[0] != '/'))
			abort();
		return 0;
	}
	p = buf + (at - (uintptr_t)buf);
	n = s->len;
	if (fb_uri_normalize(p, &n) < 0)
		return -1; /* the broker refuses it */
	if (n > s->len || !(again = malloc(n ? n : 1)))
		abort();
	memcpy(again, p, n);
	s->len = n;
	if (fb_uri_normalize(again, &n) < 0 || n != s->len ||
	    memcmp(again, p, n))
		abort();
	free(again);
	return 0;
}

/* Each header set once, under any spelling, with the rule's value. */
static void check_injected(const struct fb_rule *r, const char *head,
			   size_t len)
{
	/* the guest's head was within the default limits; ours adds Host,
	 * the injected fields and the framing field */
	static const struct fb_http_limits roomier = {
		.max_line = 8192, .max_head = 64 * 1024,
		.max_fields = FB_HTTP_MAX_FIELDS,
	};
	struct fb_http_req req;

	fb_http_req_init(&req);
	if (fb_http_parse_head(&req, head, len, &roomier) != FB_HTTP_DONE ||
	    req.head_len != len)
		abort();
	for (size_t i = 0; i < r->nset; i++) {
		const char *value = r->set[i].value;
		size_t copies = 0;

		for (size_t f = 0; f < req.nfields; f++) {
			const struct fb_http_header *h = &req.fields[f];

			if (!fb_header_name_is(h->name, h->name_len,
					       r->set[i].name))
				continue;
			copies++;
			if (h->value_len != strlen(value) ||
			    memcmp(h->value, value, h->value_len))
				abort();
		}
		if (copies != 1)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fb_domain *d = domain();
	struct fb_decision a, b;
	struct fb_http_req req;
	struct fb_request fr;
	struct fb_head_edit edit = { .host = "api.example.com" };
	char *buf = malloc(size ? size : 1), *head, *readings;
	const char *why;
	size_t len;
	int judged;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	fb_http_req_init(&req);
	if (fb_http_parse_head(&req, buf, size, NULL) != FB_HTTP_DONE ||
	    req.form == FB_HTTP_ASTERISK_FORM) {
		free(buf);
		return 0;
	}
	if (normalize(buf, size, &req.path) < 0 ||
	    normalize(buf, size, &req.query) < 0) {
		free(buf);
		return 0;
	}
	fr = (struct fb_request){
		.method = req.method.ptr, .method_len = req.method.len,
		.query = req.query.ptr, .query_len = req.query.len,
		.headers = req.fields, .nheaders = req.nfields,
	};
	readings = malloc(FB_TARGET_SCRATCH(req.path.len, req.query.len));
	if (!readings)
		abort();
	fb_request_target(&fr, req.path.ptr, req.path.len, req.query.ptr,
			  req.query.len, readings);
	/* the form reading has no '+' and no ';' */
	if (fr.form_query && (memchr(fr.form_query, '+', fr.form_query_len) ||
			      memchr(fr.form_query, ';', fr.form_query_len) ||
			      fr.form_query_len > 3 * req.query.len))
		abort();
	/* the other reading is no longer and has no run of separators, no
	 * backslash and no parameters */
	if (fr.lenient && (fr.lenient_len > req.path.len ||
			   memmem(fr.lenient, fr.lenient_len, "//", 2) ||
			   memchr(fr.lenient, '\\', fr.lenient_len) ||
			   memchr(fr.lenient, ';', fr.lenient_len)))
		abort();
	/* so is the path after an authority, which starts with '/' */
	if (fr.url_path && (fr.url_path_len > req.path.len ||
			    fr.url_path[0] != '/' ||
			    memmem(fr.url_path, fr.url_path_len, "//", 2) ||
			    memchr(fr.url_path, '\\', fr.url_path_len) ||
			    memchr(fr.url_path, ';', fr.url_path_len)))
		abort();
	/* the path before its first ';' ends there */
	if (fr.semi_len && (fr.semi_len >= req.path.len ||
			    fr.path[fr.semi_len] != ';' ||
			    memchr(fr.path, ';', fr.semi_len)))
		abort();
	fb_policy_decide_request(d, &fr, &a);
	fb_policy_decide_request(d, &fr, &b);
	if (a.verdict != b.verdict || a.rule != b.rule || a.reason != b.reason)
		abort();
	if (a.rule < 0) {
		if (a.verdict != FB_VERDICT_ALLOW || a.reason != FB_REASON_NO_RULE)
			abort();
	} else {
		static const enum fb_verdict of_action[] = {
			[FB_ACT_TRANSFORM] = FB_VERDICT_BROKER,
			[FB_ACT_FORWARD] = FB_VERDICT_FORWARD,
			[FB_ACT_RESPOND] = FB_VERDICT_RESPOND,
		};

		if ((size_t)a.rule >= d->nrules ||
		    of_action[d->rules[a.rule].action] != a.verdict)
			abort();
		if (a.verdict == FB_VERDICT_BROKER) {
			edit.set = d->rules[a.rule].set;
			edit.nset = d->rules[a.rule].nset;
		}
	}
	/* the broker's own judgement, with its refusals, decides the same
	 * where it refuses nothing (the target is in normal form already,
	 * which stays as it is) */
	why = NULL;
	judged = fb_broker_judge(d, "api.example.com", 443, buf, size, &req,
				 &b, &why);
	if (judged < 0 || (judged > 0) != (why != NULL) ||
	    (judged == 0 && (b.verdict != a.verdict || b.rule != a.rule)))
		abort();
	head = fb_rewrite_head(&req, &edit, &len);
	if (head) {
		if (a.verdict == FB_VERDICT_BROKER)
			check_injected(&d->rules[a.rule], head, len);
		free(head);
	}
	free(readings);
	free(buf);
	return 0;
}
