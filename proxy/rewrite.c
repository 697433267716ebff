/*
 * rewrite.c — the head of a brokered request as it goes upstream.
 *
 * The head is always re-serialised from what the strict parser decided,
 * never forwarded as the guest wrote it (notes/brokering.md 4.6): one
 * request line in origin-form, one Host, framing restated, hop-by-hop
 * fields dropped.  An injected header replaces every copy the guest sent
 * under any spelling a server might fold into the same name (4.7), so
 * the origin sees exactly one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/broker.h"

/* Does a Connection field of the request list this field's name? */
static bool listed_in_connection(const struct fb_http_req *req,
				 const struct fb_http_header *f)
{
	for (size_t i = 0; i < req->nfields; i++) {
		const struct fb_http_header *c = &req->fields[i];
		const char *p = c->value, *end = c->value + c->value_len;

		if (!fb_header_name_is(c->name, c->name_len, "connection"))
			continue;
		while (p < end) {
			const char *tok;

			while (p < end && (*p == ',' || *p == ' ' || *p == '\t'))
				p++;
			tok = p;
			while (p < end && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			if (p > tok && (size_t)(p - tok) == f->name_len &&
			    strncasecmp(tok, f->name, f->name_len) == 0)
				return true;
		}
	}
	return false;
}

/* Fields that never cross the proxy as the guest sent them. */
static bool dropped(const struct fb_http_req *req,
		    const struct fb_http_header *f,
		    const struct fb_head_edit *edit)
{
	static const char *const hop[] = {
		"host", "connection", "keep-alive", "proxy-connection", "te",
		"trailer", "proxy-authorization", "proxy-authenticate",
		"content-length", "transfer-encoding", "upgrade",
	};
	const char *n = f->name;
	size_t nl = f->name_len;

	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (fb_header_name_is(n, nl, hop[i]))
			return true;
	if (nl >= 12 && fb_header_name_is(n, 12, "x-firebreak-"))
		return true;
	for (size_t i = 0; i < edit->nset; i++)
		if (fb_header_name_is(n, nl, edit->set[i].name))
			return true;
	return listed_in_connection(req, f);
}

char *fb_rewrite_head(const struct fb_http_req *req,
		      const struct fb_head_edit *edit, size_t *len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (!f)
		return NULL;
	fprintf(f, "%.*s %.*s%.*s", (int)req->method.len, req->method.ptr,
		(int)edit->prefix_len, edit->prefix ? edit->prefix : "",
		(int)req->path.len, req->path.ptr);
	if (req->query.ptr)
		fprintf(f, "?%.*s", (int)req->query.len, req->query.ptr);
	/* An HTTP/1.0 request goes as one: the origin then frames its answer
	 * as a 1.0 client reads it (never chunked). */
	fprintf(f, " HTTP/1.%d\r\nHost: %s\r\n", req->minor == 0 ? 0 : 1,
		edit->host);
	for (size_t i = 0; i < req->nfields; i++) {
		const struct fb_http_header *h = &req->fields[i];

		if (dropped(req, h, edit))
			continue;
		fprintf(f, "%.*s: %.*s\r\n", (int)h->name_len, h->name,
			(int)h->value_len, h->value);
	}
	if (req->chunked)
		fputs("Transfer-Encoding: chunked\r\n", f);
	else if (req->content_length >= 0)
		fprintf(f, "Content-Length: %lld\r\n",
			(long long)req->content_length);
	/* A guest's "Connection: close" is its own connection's business:
	 * the upstream connection is the proxy's, which keeps it for the
	 * next guest connection when it can (pool.c), and the guest is
	 * told of the close in the response (broker.c). */
	if (req->flags & FB_HTTP_WEBSOCKET)
		fputs("Connection: Upgrade\r\nUpgrade: websocket\r\n", f);
	/* in the order the transforms list them; the policy loader refuses
	 * a rule that sets one header twice */
	for (size_t i = 0; i < edit->nset; i++)
		fprintf(f, "%s: %s\r\n", edit->set[i].name, edit->set[i].value);
	for (size_t i = 0; i < edit->nadd; i++)
		fprintf(f, "%s: %s\r\n", edit->add[i].name, edit->add[i].value);
	fputs("\r\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*len = size;
	return buf;
}
