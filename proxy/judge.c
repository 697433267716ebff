/*
 * judge.c — what the broker does with one request head: first the
 * refusals no rule can lift (a Host or X-Forwarded-Host for another
 * name, a path override, a stray '%', dot-segments, ...), then the key's
 * rules on every reading of the target.  The broker asks for each
 * request it reads, and `firebreak policy explain` for the one it is
 * given, so that what the operator is told is what the broker does.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy/broker.h"

/* Host (and an absolute-form authority) must name the SNI exactly: a
 * request for another name must not ride on this name's credentials. */
static bool host_is_sni(const char *sni, uint16_t port,
			const struct fb_http_slice *v)
{
	struct fb_http_slice host;
	char name[FB_NAME_MAX];
	const char *why;
	int p;

	if (!v->ptr || fb_http_split_authority(v->ptr, v->len, &host, &p) < 0)
		return false;
	if (p >= 0 && p != port)
		return false;
	return fb_name_normalize(host.ptr, host.len, name, &why) == 0 &&
	       strcmp(name, sni) == 0;
}

/*
 * X-Forwarded-Host and its kin (fb_http_forwarded_hosts) name the host a
 * request is for to an application behind a proxy that trusts them: a
 * multi-tenant origin routes on them.  On a brokered name each must name
 * the SNI as Host does, or the credentials injected for this name would
 * be spent on another.  More hosts than FB_HTTP_FORWARDED_MAX, or a
 * Forwarded too tangled to read one way, fail.
 */
static bool forwarded_are_sni(const char *sni, uint16_t port,
			      const struct fb_http_req *req)
{
	struct fb_http_slice hosts[FB_HTTP_FORWARDED_MAX];
	int n = fb_http_forwarded_hosts(req, hosts, FB_HTTP_FORWARDED_MAX);

	for (int i = 0; i < n; i++)
		if (!host_is_sni(sni, port, &hosts[i]))
			return false;
	return n >= 0;
}

/* Rules name methods case-sensitively (RFC 9110 9.1), but some servers
 * fold case (ASP.NET Core's routing, for one): there "delete" would walk
 * past a DELETE response rule and be served as DELETE.  Every method in
 * use is upper-case. */
static bool method_has_lower(const struct fb_http_slice *m)
{
	for (size_t i = 0; i < m->len; i++)
		if (m->ptr[i] >= 'a' && m->ptr[i] <= 'z')
			return true;
	return false;
}

/*
 * Fields an application takes for the path asked for, instead of the
 * target: IIS URL Rewrite's X-Original-URL and ISAPI_Rewrite's
 * X-Rewrite-URL (PHP and ASP.NET code sets REQUEST_URI from them), and
 * X-Original-URI and X-Forwarded-URI, which nginx auth_request and
 * Traefik forwardAuth set-ups hand an application to decide on.  They
 * are a front proxy's to set, never a client's: a guest's would ask the
 * origin for a path the rules never judged.
 */
static bool path_override(const struct fb_http_req *req)
{
	static const char *const names[] = { "x-original-url", "x-rewrite-url",
					     "x-original-uri",
					     "x-forwarded-uri" };

	for (size_t i = 0; i < req->nfields; i++)
		for (size_t j = 0; j < sizeof(names) / sizeof(names[0]); j++)
			if (fb_header_name_is(req->fields[i].name,
					      req->fields[i].name_len, names[j]))
				return true;
	return false;
}

/* The request's path and query in the form the rules compare, in place
 * in the head: they only shrink.  The path of an absolute-form target
 * without one is the parser's "/", not in the head, and normal.  -1: a
 * stray '%'. */
static int normalize_target(char *head, size_t len, struct fb_http_req *req)
{
	struct fb_http_slice *s[] = { &req->path, &req->query };
	uintptr_t in = (uintptr_t)head;

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		uintptr_t at = (uintptr_t)s[i]->ptr;

		if (s[i]->ptr && at >= in && at < in + len &&
		    fb_uri_normalize(head + (at - in), &s[i]->len) < 0)
			return -1;
	}
	return 0;
}

static int refused(const char **why, int status, const char *reason)
{
	*why = reason;
	return status;
}

int fb_broker_judge(const struct fb_domain *key, const char *sni,
		    uint16_t port, char *head, size_t len,
		    struct fb_http_req *req, struct fb_decision *d,
		    const char **why)
{
	struct fb_request fr = {
		.method = req->method.ptr, .method_len = req->method.len,
		.headers = req->fields, .nheaders = req->nfields,
	};
	char *readings;
	int n;

	*why = NULL;
	if (req->form == FB_HTTP_ASTERISK_FORM)
		return refused(why, 400, "asterisk-form");
	if (!host_is_sni(sni, port, &req->host) ||
	    (req->form == FB_HTTP_ABSOLUTE_FORM &&
	     !host_is_sni(sni, port, &req->authority)))
		return refused(why, 421, "host-not-sni");
	if (!forwarded_are_sni(sni, port, req))
		return refused(why, 421, "forwarded-host-not-sni");
	if ((req->flags & FB_HTTP_UPGRADE) && !(req->flags & FB_HTTP_WEBSOCKET))
		return refused(why, 400, "upgrade-not-websocket");
	if (path_override(req))
		return refused(why, 400, "path-override");
	if (normalize_target(head, len, req) < 0)
		return refused(why, 400, "bad-escape");
	/* The rules judge the path as sent; "/v1/../admin" would take a
	 * "/v1/" rule's secret to "/admin", "/fwd/../x" out of a forwardURL's
	 * path, "/./blocked" past a response rule.  So would "%252e%252e"
	 * where something behind the origin decodes the path again. */
	n = fb_http_path_has_dot_segment_decoded(req->path.ptr, req->path.len);
	if (n < 0)
		return -1;
	if (n)
		return refused(why, 400, "dot-segment");
	if (method_has_lower(&req->method))
		return refused(why, 400, "method-not-upper-case");

	readings = malloc(FB_TARGET_SCRATCH(req->path.len, req->query.len));
	if (!readings)
		return -1;
	fb_request_target(&fr, req->path.ptr, req->path.len, req->query.ptr,
			  req->query.len, readings);
	fb_policy_decide_request(key, &fr, d);
	free(readings);
	return 0;
}
