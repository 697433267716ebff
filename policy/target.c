/*
 * target.c — a brokered request's path and query as origins read them:
 * RFC 3986's normal form, in which the broker sends them and the rules
 * compare them (fb_uri_normalize), and the other readings of a path and
 * a query that servers and frameworks take apart from it
 * (fb_request_target): the lenient path of nginx, IIS and Tomcat, the
 * path after a "//authority" as a URL parser has it, the path before its
 * ';' as Fastify 4 routes it, and the query as form decoders split it.
 * request.c decides which of them a rule must meet.
 */
#include <string.h>

#include "policy/internal.h"

int fb_hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* RFC 3986 §2.3 */
static bool unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

/*
 * A '%' must start an escape: after "%%33", a server that keeps the stray
 * '%' reads "%3", and the normal form, decoding "%33", would hold "%3"
 * followed by whatever comes next, a new escape.  With every '%' an
 * escape, a decoded octet is never '%' and the normal form is stable.
 */
static bool escapes_valid(const char *s, size_t len)
{
	for (const char *p = s; (p = memchr(p, '%', len - (size_t)(p - s)));
	     p += 3)
		if (len - (size_t)(p - s) < 3 ||
		    fb_hex_digit((unsigned char)p[1]) < 0 ||
		    fb_hex_digit((unsigned char)p[2]) < 0)
			return false;
	return true;
}

int fb_uri_normalize(char *s, size_t *len)
{
	static const char upper[] = "0123456789ABCDEF";
	size_t i = 0, o = 0;

	if (!escapes_valid(s, *len))
		return -1;
	while (i < *len) {
		int hi, lo;

		if (s[i] != '%') {
			s[o++] = s[i++];
			continue;
		}
		hi = fb_hex_digit((unsigned char)s[i + 1]);
		lo = fb_hex_digit((unsigned char)s[i + 2]);
		i += 3;
		if (unreserved((unsigned char)(hi << 4 | lo))) {
			s[o++] = (char)(hi << 4 | lo);
		} else {
			s[o++] = '%';
			s[o++] = upper[hi];
			s[o++] = upper[lo];
		}
	}
	*len = o;
	return 0;
}

size_t fb_uri_separator(const char *p, size_t n)
{
	if (p[0] == '/' || p[0] == '\\')
		return 1;
	if (n < 3 || p[0] != '%')
		return 0;
	return (p[1] == '2' && (p[2] | 0x20) == 'f') ||
	       (p[1] == '5' && (p[2] | 0x20) == 'c') ? 3 : 0;
}

/* fb_request_target()'s lenient reading of path[0..len), into out; its
 * length. */
static size_t lenient_reading(const char *path, size_t len, char *out)
{
	size_t i = 0, o = 0;
	bool params = false;

	while (i < len) {
		size_t sep = fb_uri_separator(path + i, len - i);

		if (sep) {
			if (!o || out[o - 1] != '/')
				out[o++] = '/';
			params = false;
			i += sep;
			continue;
		}
		params = params || path[i] == ';';
		if (!params)
			out[o++] = path[i];
		i++;
	}
	return o;
}

/*
 * A URL parser takes a path that starts with two separators for a
 * network-path reference (RFC 3986 §4.2): WHATWG's, as Node's
 * `new URL(req.url, base)` reads a target, finds the host "x" and the
 * path "/blocked" in "//x/blocked" (and in "/\\x/blocked", "///x/blocked").
 * Where that path starts in path[0..len): the '/' or '\\' after the
 * authority, or len for the path "/"; 0 when path has no authority.
 */
static size_t after_authority(const char *path, size_t len)
{
	size_t i = 0;

	while (i < len && (path[i] == '/' || path[i] == '\\'))
		i++;
	if (i < 2)
		return 0;
	while (i < len && path[i] != '/' && path[i] != '\\')
		i++;
	return i;
}

/* The path's readings: scratch holds 2 * path_len bytes. */
static void request_path(struct fb_request *r, const char *path,
			 size_t path_len, char *scratch)
{
	size_t n = lenient_reading(path, path_len, scratch);
	size_t at = after_authority(path, path_len);
	const char *semi;

	r->path = path;
	r->path_len = path_len;
	r->lenient = n != path_len || memcmp(scratch, path, n) ? scratch : NULL;
	r->lenient_len = r->lenient ? n : 0;
	r->url_path = NULL;
	r->url_path_len = 0;
	semi = path ? memchr(path, ';', path_len) : NULL;
	r->semi_len = semi ? (size_t)(semi - path) : 0;
	if (at == path_len && at) {
		r->url_path = "/";
		r->url_path_len = 1;
	} else if (at) {
		r->url_path = scratch + path_len;
		r->url_path_len = lenient_reading(path + at, path_len - at,
						  scratch + path_len);
	}
}

/* The query's readings: scratch holds 3 * len bytes. */
static void request_query(struct fb_request *r, const char *query,
			  size_t len, char *scratch)
{
	size_t o = 0;

	r->query = query;
	r->query_len = len;
	r->form_query = NULL;
	r->form_query_len = 0;
	if (!query || (!memchr(query, '+', len) && !memchr(query, ';', len)))
		return;
	for (size_t i = 0; i < len; i++) {
		if (query[i] == '+') {
			memcpy(scratch + o, "%20", 3);
			o += 3;
		} else {
			scratch[o++] = query[i] == ';' ? '&' : query[i];
		}
	}
	r->form_query = scratch;
	r->form_query_len = o;
}

void fb_request_target(struct fb_request *r, const char *path,
		       size_t path_len, const char *query, size_t query_len,
		       char *scratch)
{
	request_path(r, path, path_len, scratch);
	request_query(r, query, query_len, scratch + 2 * path_len);
}
