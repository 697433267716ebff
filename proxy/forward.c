/*
 * forward.c — forwardURL rules: the request goes to a target of the
 * policy's choosing instead of the origin, with what the origin would
 * have seen in x-firebreak-forwarded-* fields and a short-lived token
 * that proves the proxy sent it (notes/vercel-firewall.md 5.6).  The
 * target verifies the token against the sandbox's published JWKS: its
 * audience is the forwardURL exactly, so a token captured at one target
 * cannot be replayed at another, and its htm, htu and query name the
 * request, so it cannot be sent with another one either.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "proxy/broker.h"
#include "proxy/jwt.h"

#define TOKEN_TTL 60 /* seconds: the request is sent at once */

int fb_forward_parse(const char *url, struct fb_forward_target *t,
		     char *err, size_t errsize)
{
	const char *a, *ae, *colon;
	const char *why;
	long port = 443;

	memset(t, 0, sizeof(*t));
	if (strncasecmp(url, "https://", 8) != 0) {
		snprintf(err, errsize, "forwardURL %s: not an https URL", url);
		return -1;
	}
	a = url + 8;
	ae = a + strcspn(a, "/");
	colon = memchr(a, ':', (size_t)(ae - a));
	if (colon) {
		char *end;

		port = strtol(colon + 1, &end, 10);
		if (end != ae || colon + 1 == ae || port < 1 || port > 65535) {
			snprintf(err, errsize, "forwardURL %s: bad port", url);
			return -1;
		}
	}
	if (fb_name_normalize(a, (size_t)((colon ? colon : ae) - a), t->host,
			      &why) < 0) {
		snprintf(err, errsize, "forwardURL %s: host: %s", url, why);
		return -1;
	}
	t->port = (uint16_t)port;
	if (port == 443)
		snprintf(t->authority, sizeof(t->authority), "%s", t->host);
	else
		snprintf(t->authority, sizeof(t->authority), "%s:%ld", t->host,
			 port);
	/* "/fwd/" + "/v1/x" must not become "/fwd//v1/x" */
	t->path = ae;
	t->path_len = strlen(ae);
	if (t->path_len && ae[t->path_len - 1] == '/')
		t->path_len--;
	return 0;
}

int fb_forward_fields(const struct fb_jwt_key *key, const char *url,
		      const char *sandbox_id, const char *sni, uint16_t port,
		      const struct fb_http_req *req,
		      struct fb_head_field out[FB_FORWARD_FIELDS],
		      struct fb_forward_store *store, char *err, size_t errsize)
{
	/* a method is at most 32 bytes (http.c): method[] holds it whole */
	char method[64], authority[FB_NAME_MAX + 8], *htu = NULL, *query = NULL;
	struct fb_jwt_request bound = { .method = method };

	memset(store, 0, sizeof(*store));
	if (!key) {
		snprintf(err, errsize, "forwardURL %s: the proxy has no token key (--jwt-key)",
			 url);
		return -1;
	}
	/* The token names the request it came with, so that whoever sees it
	 * (a target that logs it, anything on the way) cannot send it with
	 * another method, host, path or query before it expires. */
	snprintf(method, sizeof(method), "%.*s", (int)req->method.len,
		 req->method.ptr);
	if (port == 443)
		snprintf(authority, sizeof(authority), "%s", sni);
	else
		snprintf(authority, sizeof(authority), "%s:%u", sni, port);
	if (asprintf(&htu, "https://%s%.*s", authority, (int)req->path.len,
		     req->path.ptr) < 0)
		htu = NULL;
	if (asprintf(&query, "%.*s", (int)req->query.len,
		     req->query.ptr ? req->query.ptr : "") < 0)
		query = NULL;
	bound.url = htu;
	bound.query = query;
	if (htu && query)
		store->token = fb_jwt_mint(key, "firebreak", url,
					   sandbox_id && *sandbox_id ? sandbox_id : "-",
					   &bound, TOKEN_TTL, time(NULL), err,
					   errsize);
	else
		snprintf(err, errsize, "out of memory");
	free(htu);
	free(query);
	if (!store->token)
		return -1;
	snprintf(store->port, sizeof(store->port), "%u", port);
	if (asprintf(&store->path, "%.*s%s%.*s", (int)req->path.len,
		     req->path.ptr, req->query.ptr ? "?" : "",
		     (int)req->query.len, req->query.ptr ? req->query.ptr : "") < 0) {
		store->path = NULL;
		fb_forward_fields_free(store);
		snprintf(err, errsize, "out of memory");
		return -1;
	}
	out[0] = (struct fb_head_field){ "x-firebreak-forwarded-host", sni };
	out[1] = (struct fb_head_field){ "x-firebreak-forwarded-scheme", "https" };
	out[2] = (struct fb_head_field){ "x-firebreak-forwarded-port", store->port };
	out[3] = (struct fb_head_field){ "x-firebreak-forwarded-path", store->path };
	out[4] = (struct fb_head_field){ "x-firebreak-token", store->token };
	return FB_FORWARD_FIELDS;
}

void fb_forward_fields_free(struct fb_forward_store *store)
{
	free(store->path);
	free(store->token);
	store->path = store->token = NULL;
}
