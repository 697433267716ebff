/*
 * http.c — strict incremental HTTP/1.1 request-head parser (RFC 9112).
 *
 * The request line is scanned byte by byte, so that a stream that cannot
 * be HTTP (an SSH banner, a binary protocol) is refused at the first byte
 * that proves it, not when a line ends.  Field lines are parsed whole once
 * their LF has arrived.  Every limit is checked against positions in the
 * stream, never against how much happened to arrive, so the verdict is the
 * same however the bytes were split between calls.
 */
#include "proxy/http.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define METHOD_MAX 32
#define CL_DIGITS_MAX 18 /* 10^18 - 1 fits an int64_t */

const struct fb_http_limits fb_http_default_limits = {
	.max_line = 8192,
	.max_head = 32768,
	.max_fields = 100,
};

static const struct {
	short status;
	const char *text;
} errors[FB_HTTP_E_COUNT] = {
	[FB_HTTP_OK] = { 200, "ok" },
	[FB_HTTP_E_BARE_LF] = { 400, "LF without CR" },
	[FB_HTTP_E_BARE_CR] = { 400, "CR without LF" },
	[FB_HTTP_E_METHOD] = { 400, "method is not a token" },
	[FB_HTTP_E_METHOD_TOO_LONG] = { 501, "method too long" },
	[FB_HTTP_E_TARGET] = { 400, "invalid request-target" },
	[FB_HTTP_E_VERSION] = { 400, "invalid HTTP version" },
	[FB_HTTP_E_VERSION_UNSUPPORTED] = { 505, "HTTP version not supported" },
	[FB_HTTP_E_LINE_TOO_LONG] = { 414, "request line too long" },
	[FB_HTTP_E_CONNECT] = { 405, "CONNECT not allowed" },
	[FB_HTTP_E_TRACE] = { 405, "TRACE not allowed" },
	[FB_HTTP_E_FIELD_NAME] = { 400, "field name is not a token" },
	[FB_HTTP_E_SPACE_BEFORE_COLON] = { 400, "whitespace before colon" },
	[FB_HTTP_E_NO_COLON] = { 400, "field line without colon" },
	[FB_HTTP_E_OBS_FOLD] = { 400, "obsolete line folding" },
	[FB_HTTP_E_FIELD_VALUE] = { 400, "control character in field value" },
	[FB_HTTP_E_TOO_MANY_FIELDS] = { 431, "too many header fields" },
	[FB_HTTP_E_HEAD_TOO_LARGE] = { 431, "header section too large" },
	[FB_HTTP_E_CONTENT_LENGTH] = { 400, "invalid Content-Length" },
	[FB_HTTP_E_CONTENT_LENGTH_DUP] = { 400, "more than one Content-Length" },
	[FB_HTTP_E_TE_DUP] = { 400, "more than one Transfer-Encoding" },
	[FB_HTTP_E_TE_INVALID] = { 400, "invalid Transfer-Encoding" },
	[FB_HTTP_E_TE_UNSUPPORTED] = { 501, "unsupported transfer coding" },
	[FB_HTTP_E_TE_HTTP10] = { 400, "Transfer-Encoding in HTTP/1.0" },
	[FB_HTTP_E_CL_AND_TE] = { 400, "both Content-Length and Transfer-Encoding" },
	[FB_HTTP_E_HOST_MISSING] = { 400, "missing Host" },
	[FB_HTTP_E_HOST_DUP] = { 400, "more than one Host" },
	[FB_HTTP_E_HOST_INVALID] = { 400, "invalid Host" },
	[FB_HTTP_E_H2C] = { 400, "h2c upgrade refused" },
	[FB_HTTP_E_CHUNK_SIZE] = { 400, "invalid chunk size" },
	[FB_HTTP_E_CHUNK_EXT] = { 400, "invalid chunk extension" },
	[FB_HTTP_E_CHUNK_CRLF] = { 400, "chunk data not followed by CRLF" },
	[FB_HTTP_E_TRAILER_TOO_LARGE] = { 431, "trailer section too large" },
};

int fb_http_error_status(enum fb_http_error e)
{
	return e < FB_HTTP_E_COUNT ? errors[e].status : 400;
}

const char *fb_http_error_str(enum fb_http_error e)
{
	return e < FB_HTTP_E_COUNT ? errors[e].text : "unknown error";
}

const char *fb_http_status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 421: return "Misdirected Request";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default:  return "";
	}
}

/* RFC 9110 §5.6.2: tchar. */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c);
}

/* A field-value byte (RFC 9110 §5.5): VCHAR, obs-text, SP, HTAB. */
static bool is_value_byte(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static bool slice_is(const char *p, size_t n, const char *lit)
{
	return n == strlen(lit) && strncasecmp(p, lit, n) == 0;
}

/* Next comma-separated element of [*p, end), OWS trimmed (may be empty);
 * *p becomes NULL after the last one.  False when the list is exhausted. */
static bool list_next(const char **p, const char *end, struct fb_http_slice *item)
{
	const char *s = *p, *e;

	if (!s)
		return false;
	e = memchr(s, ',', (size_t)(end - s));
	*p = e ? e + 1 : NULL;
	if (!e)
		e = end;
	while (s < e && is_ows((unsigned char)*s))
		s++;
	while (e > s && is_ows((unsigned char)e[-1]))
		e--;
	item->ptr = s;
	item->len = (size_t)(e - s);
	return true;
}

static bool all_tchar(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)p[i]))
			return false;
	return n > 0;
}

/* RFC 3986 reg-name: unreserved / pct-encoded / sub-delims. */
static bool is_reg_name(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '%') {
			if (n - i < 3 || fb_hex_digit((unsigned char)p[i + 1]) < 0 ||
			    fb_hex_digit((unsigned char)p[i + 2]) < 0)
				return false;
			i += 2;
		} else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') ||
			     (c && strchr("-._~!$&'()*+,;=", c)))) {
			return false;
		}
	}
	return true;
}

int fb_http_split_authority(const char *s, size_t len,
			    struct fb_http_slice *host, int *port)
{
	const char *end = s + len, *he;

	if (len && s[0] == '[') {
		char v6[INET6_ADDRSTRLEN];
		unsigned char bin[16];
		const char *close = memchr(s, ']', len);
		size_t n = close ? (size_t)(close - s - 1) : 0;

		if (!close || n >= sizeof(v6))
			return -1;
		memcpy(v6, s + 1, n);
		v6[n] = '\0';
		if (inet_pton(AF_INET6, v6, bin) != 1)
			return -1;
		he = close + 1;
	} else {
		he = memchr(s, ':', len);
		if (!he)
			he = end;
		if (he == s || !is_reg_name(s, (size_t)(he - s)))
			return -1;
	}
	host->ptr = s;
	host->len = (size_t)(he - s);
	*port = -1;
	if (he == end)
		return 0;
	/* port = 1*5DIGIT here: an empty port is legal URI syntax but no
	 * client sends one, and accepting it would only add a spelling. */
	if (*he != ':')
		return -1;
	*port = fb_port_parse(he + 1, (size_t)(end - he - 1));
	return *port < 0 ? -1 : 0;
}

void fb_http_req_init(struct fb_http_req *req)
{
	memset(req, 0, sizeof(*req));
	req->content_length = -1;
}

const struct fb_http_header *fb_http_field(const struct fb_http_req *req,
					   const char *name)
{
	for (size_t i = req->nfields; i-- > 0;)
		if (slice_is(req->fields[i].name, req->fields[i].name_len, name))
			return &req->fields[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Request line                                                        */
/* ------------------------------------------------------------------ */

enum { RL_METHOD, RL_TARGET, RL_VERSION, RL_LF, RL_FIELDS };

static enum fb_http_status fail(struct fb_http_req *req, enum fb_http_error e)
{
	req->error = e;
	req->status = FB_HTTP_ERROR;
	return FB_HTTP_ERROR;
}

/* Split a target (after the authority, if any) at the first '?'. */
static void split_query(struct fb_http_req *req, const char *p, const char *end)
{
	const char *q = memchr(p, '?', (size_t)(end - p));

	req->path.ptr = p;
	req->path.len = (size_t)((q ? q : end) - p);
	if (q) {
		req->query.ptr = q + 1;
		req->query.len = (size_t)(end - q - 1);
	}
}

/* http:// or https:// authority [path] [? query], no userinfo. */
static enum fb_http_error absolute_form(struct fb_http_req *req)
{
	const char *t = req->target.ptr, *end = t + req->target.len, *a, *ae;
	struct fb_http_slice host;
	int port;

	if (req->target.len > 7 && strncasecmp(t, "http://", 7) == 0)
		a = t + 7;
	else if (req->target.len > 8 && strncasecmp(t, "https://", 8) == 0)
		a = t + 8;
	else
		return FB_HTTP_E_TARGET;
	for (ae = a; ae < end && *ae != '/' && *ae != '?'; ae++)
		;
	if (fb_http_split_authority(a, (size_t)(ae - a), &host, &port) < 0)
		return FB_HTTP_E_TARGET;
	req->form = FB_HTTP_ABSOLUTE_FORM;
	req->authority.ptr = a;
	req->authority.len = (size_t)(ae - a);
	if (ae == end || *ae == '?') {
		/* RFC 9112 §3.2.1: an empty path is "/" */
		split_query(req, ae, end);
		req->path.ptr = "/";
		req->path.len = 1;
	} else {
		split_query(req, ae, end);
	}
	return FB_HTTP_OK;
}

/* "%XY" at p[0..3) of p[0..n), X and Y compared without case. */
static bool pct_is(const char *p, size_t n, char x, char y)
{
	return n >= 3 && p[0] == '%' && p[1] == x && (p[2] | 0x20) == y;
}

/*
 * A path segment "." or "..", as any server might read it: the dots
 * spelled out or as "%2e", the segment ended by '/', '\\', "%2f", "%5c"
 * or the end, and anything after a ';' ignored ("..;/", as Tomcat and
 * Spring read it).  Every origin resolves these segments away, so a
 * rule that judged "/v1/../admin" by its "/v1/" would not be judging the
 * path the origin serves.
 */
bool fb_http_path_has_dot_segment(const char *p, size_t len)
{
	size_t i = 0;

	for (;;) {
		size_t dots = 0, sep = 0;
		bool other = false, params = false;

		while (i < len && !(sep = fb_uri_separator(p + i, len - i))) {
			if (params) {
				i++;
			} else if (p[i] == ';') {
				params = true;
				i++;
			} else if (p[i] == '.') {
				dots++;
				i++;
			} else if (pct_is(p + i, len - i, '2', 'e')) {
				dots++;
				i += 3;
			} else {
				other = true;
				i++;
			}
		}
		if (!other && (dots == 1 || dots == 2))
			return true;
		if (i >= len)
			return false;
		i += sep;
	}
}

/* Decode every "%XY" of p[0..n) in place; the new length.  A '%' not
 * followed by two hex digits stays, as servers leave it. */
static size_t pct_decode(char *p, size_t n)
{
	size_t i = 0, o = 0;

	while (i < n) {
		int hi, lo;

		if (p[i] == '%' && n - i >= 3 &&
		    (hi = fb_hex_digit((unsigned char)p[i + 1])) >= 0 &&
		    (lo = fb_hex_digit((unsigned char)p[i + 2])) >= 0) {
			p[o++] = (char)(hi << 4 | lo);
			i += 3;
		} else {
			p[o++] = p[i++];
		}
	}
	return o;
}

#define DECODINGS_MAX 8

/*
 * Each decoding is a reading some server on the way may make: IIS once
 * decoded twice, and so do a framework that decodes the path its own
 * server already decoded, or a proxy behind the origin.  The check above
 * already reads "%2e" and "%2f", so the decoded forms it is given reach
 * one level further: "%252e%252e" (".." after two decodings) is caught
 * in the first, "%25252e" in the second.  A "%25" before anything else
 * ("%2520", a literal "%20") decodes to no dot-segment and passes.
 *
 * A pass may decode as little as one "%25" ("%252525...41"), so passes
 * are bounded, not left to end when nothing changes: one per "25" of a
 * 32 KiB head took the proxy's loop most of a second per request.  No
 * chain of servers decodes DECODINGS_MAX times; a path that would still
 * decode after that is refused, as one it cannot read the way they do.
 */
int fb_http_path_has_dot_segment_decoded(const char *p, size_t len)
{
	size_t n = len, m;
	char *d;
	int found = 0;

	if (fb_http_path_has_dot_segment(p, len))
		return 1;
	if (!memchr(p, '%', len))
		return 0;
	d = malloc(len);
	if (!d)
		return -1;
	memcpy(d, p, len);
	for (int pass = 0;; pass++) {
		m = n;
		n = pct_decode(d, m);
		if (n == m)
			break; /* nothing left to decode */
		if (pass == DECODINGS_MAX || fb_http_path_has_dot_segment(d, n)) {
			found = 1;
			break;
		}
	}
	free(d);
	return found;
}

/* The line [0, sp2 + 9) has the right shape; judge what it says. */
static enum fb_http_error request_line(struct fb_http_req *req, const char *buf)
{
	const char *v = buf + req->sp2 + 1;
	const char *m;
	size_t mlen;

	req->method.ptr = buf;
	req->method.len = req->sp1;
	req->target.ptr = buf + req->sp1 + 1;
	req->target.len = req->sp2 - req->sp1 - 1;
	if (v[5] != '1' || v[7] > '1')
		return FB_HTTP_E_VERSION_UNSUPPORTED;
	req->minor = v[7] - '0';

	/* Methods are case-sensitive, but some servers fold them: refuse
	 * every spelling of the ones a brokering proxy must not carry. */
	m = req->method.ptr;
	mlen = req->method.len;
	if (slice_is(m, mlen, "CONNECT"))
		return FB_HTTP_E_CONNECT;
	if (slice_is(m, mlen, "TRACE") || slice_is(m, mlen, "TRACK"))
		return FB_HTTP_E_TRACE;

	if (req->target.ptr[0] == '/') {
		req->form = FB_HTTP_ORIGIN_FORM;
		split_query(req, req->target.ptr, req->target.ptr + req->target.len);
		return FB_HTTP_OK;
	}
	if (req->target.len == 1 && req->target.ptr[0] == '*') {
		if (mlen != 7 || memcmp(m, "OPTIONS", 7) != 0)
			return FB_HTTP_E_TARGET;
		req->form = FB_HTTP_ASTERISK_FORM;
		req->path = req->target;
		return FB_HTTP_OK;
	}
	return absolute_form(req);
}

/*
 * Scan request-line bytes from req->scan.  method SP target SP
 * "HTTP/" DIGIT "." DIGIT CRLF; a method is at most METHOD_MAX bytes and
 * a target is visible ASCII without '#'.
 */
static enum fb_http_status scan_request_line(struct fb_http_req *req,
					     const char *buf, size_t len,
					     const struct fb_http_limits *lim)
{
	static const char version[] = "HTTP/0.0";

	for (; req->scan < len; req->scan++) {
		unsigned char c = (unsigned char)buf[req->scan];
		size_t i = req->scan;

		if (i >= lim->max_line &&
		    !(req->rl_state == RL_VERSION && i == req->sp2 + 9) &&
		    req->rl_state != RL_LF)
			return fail(req, FB_HTTP_E_LINE_TOO_LONG);
		switch (req->rl_state) {
		case RL_METHOD:
			if (c == ' ' && i > 0) {
				req->sp1 = i;
				req->rl_state = RL_TARGET;
			} else if (!is_tchar(c)) {
				return fail(req, FB_HTTP_E_METHOD);
			} else if (i >= METHOD_MAX) {
				return fail(req, FB_HTTP_E_METHOD_TOO_LONG);
			}
			break;
		case RL_TARGET:
			if (c == ' ' && i > req->sp1 + 1) {
				req->sp2 = i;
				req->rl_state = RL_VERSION;
			} else if (c <= 0x20 || c >= 0x7f || c == '#') {
				return fail(req, FB_HTTP_E_TARGET);
			}
			break;
		case RL_VERSION: {
			size_t k = i - req->sp2 - 1;

			if (k == 8) {
				if (c == '\n')
					return fail(req, FB_HTTP_E_BARE_LF);
				if (c != '\r')
					return fail(req, FB_HTTP_E_VERSION);
				req->rl_state = RL_LF;
			} else if (version[k] == '0' ? (c < '0' || c > '9')
						     : c != (unsigned char)version[k]) {
				return fail(req, FB_HTTP_E_VERSION);
			}
			break;
		}
		case RL_LF: {
			enum fb_http_error e;

			if (c != '\n')
				return fail(req, FB_HTTP_E_BARE_CR);
			req->line_done = true;
			e = request_line(req, buf);
			if (e != FB_HTTP_OK)
				return fail(req, e);
			req->rl_state = RL_FIELDS;
			req->pos = req->scan = i + 1;
			return FB_HTTP_NEED_MORE;
		}
		}
	}
	return FB_HTTP_NEED_MORE;
}

/* ------------------------------------------------------------------ */
/* Field lines                                                         */
/* ------------------------------------------------------------------ */

#define SEEN_CL      0x01
#define SEEN_TE      0x02
#define SEEN_CLOSE   0x04
#define SEEN_KEEP    0x08

/* Transfer-Encoding: exactly "chunked" is the only coding we carry. */
static enum fb_http_error transfer_encoding(struct fb_http_req *req,
					    const char *v, size_t n)
{
	const char *p = v, *end = v + n;
	struct fb_http_slice item = { 0 };
	size_t count = 0;

	if (req->minor == 0)
		return FB_HTTP_E_TE_HTTP10;
	if (slice_is(v, n, "chunked")) {
		req->chunked = true;
		return FB_HTTP_OK;
	}
	while (list_next(&p, end, &item)) {
		if (!all_tchar(item.ptr, item.len))
			return FB_HTTP_E_TE_INVALID;
		count++;
	}
	/* RFC 9112 §6.3: chunked must be the final coding of a request */
	if (!slice_is(item.ptr, item.len, "chunked"))
		return FB_HTTP_E_TE_INVALID;
	return count > 1 ? FB_HTTP_E_TE_UNSUPPORTED : FB_HTTP_E_TE_INVALID;
}

static enum fb_http_error content_length(struct fb_http_req *req,
					 const char *v, size_t n)
{
	int64_t cl = 0;

	if (n == 0 || n > CL_DIGITS_MAX)
		return FB_HTTP_E_CONTENT_LENGTH;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return FB_HTTP_E_CONTENT_LENGTH;
		cl = cl * 10 + (v[i] - '0');
	}
	req->content_length = cl;
	return FB_HTTP_OK;
}

/* Upgrade: protocol ["/" version], ...: h2c is never switched to. */
static enum fb_http_error upgrade(struct fb_http_req *req, const char *v, size_t n)
{
	const char *p = v, *end = v + n;
	struct fb_http_slice item;

	req->flags |= FB_HTTP_UPGRADE;
	while (list_next(&p, end, &item)) {
		const char *slash = memchr(item.ptr, '/', item.len);
		size_t name_len = slash ? (size_t)(slash - item.ptr) : item.len;

		if (slice_is(item.ptr, name_len, "h2c"))
			return FB_HTTP_E_H2C;
		if (slice_is(item.ptr, name_len, "websocket"))
			req->flags |= FB_HTTP_WEBSOCKET;
	}
	return FB_HTTP_OK;
}

static void connection(struct fb_http_req *req, const char *v, size_t n)
{
	const char *p = v, *end = v + n;
	struct fb_http_slice item;

	while (list_next(&p, end, &item)) {
		if (slice_is(item.ptr, item.len, "close"))
			req->seen |= SEEN_CLOSE;
		else if (slice_is(item.ptr, item.len, "keep-alive"))
			req->seen |= SEEN_KEEP;
	}
}

/* What the fields that frame or route the request say. */
static enum fb_http_error field_meaning(struct fb_http_req *req,
					const struct fb_http_header *f)
{
	const char *n = f->name, *v = f->value;
	size_t nl = f->name_len, vl = f->value_len;
	struct fb_http_slice host;
	int port;

	if (slice_is(n, nl, "host")) {
		if (req->host.ptr)
			return FB_HTTP_E_HOST_DUP;
		if (fb_http_split_authority(v, vl, &host, &port) < 0)
			return FB_HTTP_E_HOST_INVALID;
		req->host.ptr = v;
		req->host.len = vl;
	} else if (slice_is(n, nl, "content-length")) {
		/* even equal copies: a list is where parsers disagree */
		if (req->seen & SEEN_CL)
			return FB_HTTP_E_CONTENT_LENGTH_DUP;
		req->seen |= SEEN_CL;
		return content_length(req, v, vl);
	} else if (slice_is(n, nl, "transfer-encoding")) {
		if (req->seen & SEEN_TE)
			return FB_HTTP_E_TE_DUP;
		req->seen |= SEEN_TE;
		return transfer_encoding(req, v, vl);
	} else if (slice_is(n, nl, "upgrade")) {
		return upgrade(req, v, vl);
	} else if (slice_is(n, nl, "http2-settings")) {
		return FB_HTTP_E_H2C;
	} else if (slice_is(n, nl, "connection")) {
		connection(req, v, vl);
	} else if (slice_is(n, nl, "expect")) {
		if (slice_is(v, vl, "100-continue"))
			req->flags |= FB_HTTP_EXPECT_100;
	}
	return FB_HTTP_OK;
}

/* One field line [p, end), CRLF removed and known to hold no CR. */
static enum fb_http_error field_line(struct fb_http_req *req, const char *p,
				     const char *end,
				     const struct fb_http_limits *lim)
{
	const char *name = p, *v, *ve;
	struct fb_http_header *f;

	if (is_ows((unsigned char)*p))
		return FB_HTTP_E_OBS_FOLD;
	while (p < end && is_tchar((unsigned char)*p))
		p++;
	if (p == end)
		return FB_HTTP_E_NO_COLON;
	if (*p != ':') {
		if (!is_ows((unsigned char)*p))
			return FB_HTTP_E_FIELD_NAME;
		return memchr(p, ':', (size_t)(end - p)) ? FB_HTTP_E_SPACE_BEFORE_COLON
							 : FB_HTTP_E_NO_COLON;
	}
	if (p == name)
		return FB_HTTP_E_FIELD_NAME;
	for (v = p + 1; v < end && is_ows((unsigned char)*v); v++)
		;
	for (ve = end; ve > v && is_ows((unsigned char)ve[-1]); ve--)
		;
	for (const char *c = v; c < ve; c++)
		if (!is_value_byte((unsigned char)*c))
			return FB_HTTP_E_FIELD_VALUE;
	if (req->nfields >= lim->max_fields || req->nfields >= FB_HTTP_MAX_FIELDS)
		return FB_HTTP_E_TOO_MANY_FIELDS;
	f = &req->fields[req->nfields++];
	f->name = name;
	f->name_len = (size_t)(p - name);
	f->value = v;
	f->value_len = (size_t)(ve - v);
	return field_meaning(req, f);
}

/* The blank line: rules that need the whole head. */
static enum fb_http_error end_of_head(struct fb_http_req *req)
{
	if (req->minor == 1 && !req->host.ptr)
		return FB_HTTP_E_HOST_MISSING;
	if ((req->seen & SEEN_CL) && (req->seen & SEEN_TE))
		return FB_HTTP_E_CL_AND_TE;
	if (!(req->seen & SEEN_CLOSE) && (req->minor == 1 || (req->seen & SEEN_KEEP)))
		req->flags |= FB_HTTP_KEEP_ALIVE;
	return FB_HTTP_OK;
}

static enum fb_http_status parse_fields(struct fb_http_req *req,
					const char *buf, size_t len,
					const struct fb_http_limits *lim)
{
	size_t window = len < lim->max_head ? len : lim->max_head;

	while (req->scan < window) {
		const char *lf = memchr(buf + req->scan, '\n', window - req->scan);
		const char *line = buf + req->pos, *end;
		enum fb_http_error e;

		if (!lf) {
			req->scan = window;
			break;
		}
		if (lf == line || lf[-1] != '\r')
			return fail(req, FB_HTTP_E_BARE_LF);
		end = lf - 1;
		if (memchr(line, '\r', (size_t)(end - line)))
			return fail(req, FB_HTTP_E_BARE_CR);
		req->pos = req->scan = (size_t)(lf - buf) + 1;
		if (end == line) {
			e = end_of_head(req);
			if (e != FB_HTTP_OK)
				return fail(req, e);
			req->head_len = req->pos;
			req->status = FB_HTTP_DONE;
			return FB_HTTP_DONE;
		}
		e = field_line(req, line, end, lim);
		if (e != FB_HTTP_OK)
			return fail(req, e);
	}
	if (len >= lim->max_head)
		return fail(req, FB_HTTP_E_HEAD_TOO_LARGE);
	return FB_HTTP_NEED_MORE;
}

enum fb_http_status fb_http_parse_head(struct fb_http_req *req,
				       const char *buf, size_t len,
				       const struct fb_http_limits *lim)
{
	enum fb_http_status st;

	if (!lim)
		lim = &fb_http_default_limits;
	if (req->status != FB_HTTP_NEED_MORE)
		return req->status;
	if (req->base != (uintptr_t)buf) {
		/* the buffer moved: slices already taken would dangle */
		fb_http_req_init(req);
		req->base = (uintptr_t)buf;
	}
	if (req->rl_state != RL_FIELDS) {
		size_t window = len < lim->max_head ? len : lim->max_head;

		st = scan_request_line(req, buf, window, lim);
		if (st == FB_HTTP_ERROR)
			return st;
		if (req->rl_state != RL_FIELDS) {
			if (len >= lim->max_head)
				return fail(req, FB_HTTP_E_HEAD_TOO_LARGE);
			return FB_HTTP_NEED_MORE;
		}
	}
	return parse_fields(req, buf, len, lim);
}

/* ------------------------------------------------------------------ */
/* Hosts named besides the target and Host                             */
/* ------------------------------------------------------------------ */

/* Fields an application behind the origin takes for the host asked for
 * (Django, Rails, Express, Spring, ASP.NET, Symfony, as configured
 * behind a proxy). */
static const char *const forwarding_fields[] = {
	"x-forwarded-host", "x-host", "x-original-host", "x-forwarded-server",
	"x-http-host-override",
};

static bool is_forwarding_field(const struct fb_http_header *f)
{
	for (size_t i = 0; i < sizeof(forwarding_fields) / sizeof(*forwarding_fields); i++)
		if (fb_header_name_is(f->name, f->name_len,
				      forwarding_fields[i]))
			return true;
	return false;
}

/* Add a non-empty host to out[0..max); false when there is no room. */
static bool add_host(struct fb_http_slice *out, size_t max, size_t *n,
		     const char *p, size_t len)
{
	if (len == 0)
		return true;
	if (*n == max)
		return false;
	out[*n].ptr = p;
	out[(*n)++].len = len;
	return true;
}

/* Does p[0..n) hold "host", in any case, then OWS and '='? */
static bool holds_host_key(const char *p, size_t n)
{
	for (size_t i = 0; i + 4 <= n; i++) {
		size_t j = i + 4;

		if (strncasecmp(p + i, "host", 4) != 0)
			continue;
		while (j < n && is_ows((unsigned char)p[j]))
			j++;
		if (j < n && p[j] == '=')
			return true;
	}
	return false;
}

/*
 * Forwarded (RFC 7239): pairs split at ',' and ';', each host= value a
 * token or a quoted-string.  A quote anywhere else, or a backslash, would
 * need a full parse to place: refused rather than guessed at.  The key
 * and value are read with spaces around '=' trimmed, as Rack and most
 * hand-written parsers read them, and a "host=" inside another pair
 * ("xhost=", for="_host=") is refused: Spring's reading finds one
 * anywhere in the element.
 */
static bool forwarded_hosts(const struct fb_http_header *f,
			    struct fb_http_slice *out, size_t max, size_t *n)
{
	const char *p = f->value, *end = p + f->value_len;

	while (p < end) {
		const char *e = p, *eq, *k, *v;

		while (e < end && *e != ',' && *e != ';')
			e++;
		while (p < e && is_ows((unsigned char)*p))
			p++;
		for (eq = p; eq < e && *eq != '=';)
			eq++;
		if (eq == e)
			eq = NULL;
		k = eq ? eq : e;
		while (k > p && is_ows((unsigned char)k[-1]))
			k--;
		for (v = eq ? eq + 1 : e; v < e && is_ows((unsigned char)*v);)
			v++;
		while (e > v && is_ows((unsigned char)e[-1]))
			e--;
		if (memchr(p, '\\', (size_t)(e - p)))
			return false;
		if (eq && slice_is(p, (size_t)(k - p), "host")) {
			if (e - v >= 2 && *v == '"' && e[-1] == '"') {
				v++;
				e--;
			}
			if (memchr(v, '"', (size_t)(e - v)) || !add_host(out, max, n, v,
									 (size_t)(e - v)))
				return false;
		} else if (holds_host_key(p, (size_t)(e - p)) ||
			   (memchr(p, '"', (size_t)(e - p)) &&
			    !(eq && e - v >= 2 && *v == '"' && e[-1] == '"' &&
			      !memchr(v + 1, '"', (size_t)(e - v - 2))))) {
			return false;
		}
		for (p = e; p < end && *p != ',' && *p != ';'; p++)
			;
		p++;
	}
	return true;
}

int fb_http_forwarded_hosts(const struct fb_http_req *req,
			    struct fb_http_slice *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < req->nfields; i++) {
		const struct fb_http_header *f = &req->fields[i];
		const char *p = f->value, *end = p + f->value_len;
		struct fb_http_slice item;

		if (fb_header_name_is(f->name, f->name_len, "forwarded")) {
			if (!forwarded_hosts(f, out, max, &n))
				return -1;
			continue;
		}
		if (!is_forwarding_field(f))
			continue;
		while (list_next(&p, end, &item))
			if (!add_host(out, max, &n, item.ptr, item.len))
				return -1;
	}
	return (int)n;
}

/* ------------------------------------------------------------------ */
/* A body that reads as a request                                      */
/* ------------------------------------------------------------------ */

#define BODY_SKIP_MAX 256    /* empty lines and spaces before the method */
#define BODY_LINE_MAX 32768  /* bytes of a first line looked at */

/* What some server splits a request line at: Python's http.server
 * splits it as str.split() does, on any Latin-1 whitespace but LF. */
static bool is_loose_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == 0x0b || c == 0x0c ||
	       (c >= 0x1c && c <= 0x1f) || c == 0x85 || c == 0xa0;
}

/* A method as nginx reads one: upper-case letters, '_' and '-'.  Other
 * servers take any token but want "HTTP/" after the target, so "cat
 * /etc/passwd" in a text body is no request to any of them. */
static bool nginx_method(const char *p, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (!((p[k] >= 'A' && p[k] <= 'Z') || p[k] == '_' || p[k] == '-'))
			return false;
	return true;
}

/* Does p[0..n) start "scheme://" (an absolute-form target)?  1, 0, or -1
 * when it is too short to tell. */
static int scheme_start(const char *p, size_t n)
{
	size_t k = 0;

	if (n > 0 && !((p[0] | 0x20) >= 'a' && (p[0] | 0x20) <= 'z'))
		return 0;
	while (k < n && (((p[k] | 0x20) >= 'a' && (p[k] | 0x20) <= 'z') ||
			 (p[k] >= '0' && p[k] <= '9') || p[k] == '+' ||
			 p[k] == '-' || p[k] == '.'))
		k++;
	for (size_t j = 0; j < 3; j++, k++) {
		if (k >= n)
			return -1;
		if (p[k] != "://"[j])
			return 0;
	}
	return 1;
}

/*
 * An origin that answers a request without reading its body (a GET
 * handler that never looks at one, a 417 to Expect: 100-continue: the
 * "CL.0" and "0.CL" desyncs) reads that body as the next request, which
 * the proxy, having framed it as a body, never checked.  A body is taken
 * for a request when its first line, after the empty lines and spaces
 * servers skip, is a method and then: for a method nginx reads, a target
 * that starts like one ('/', '*', "scheme://"), whatever follows (nginx
 * takes spaces inside a target); for any, a target and "HTTP/", as
 * loosely spaced as http.server splits them; or, after GET, a target
 * alone (HTTP/0.9, which http.server still serves).  JSON, forms and
 * multipart never start so, nor do "Hello world" and "cat /etc/passwd".
 * A first line not told apart within BODY_LINE_MAX bytes is refused.
 */
enum fb_http_status fb_http_body_start(const char *p, size_t len, bool whole)
{
	enum fb_http_status more;
	size_t i = 0, m, t;
	bool get;
	int r = 0;

	if (len > BODY_LINE_MAX) {
		len = BODY_LINE_MAX;
		whole = false;
	}
	more = whole ? FB_HTTP_DONE :
	       len == BODY_LINE_MAX ? FB_HTTP_ERROR : FB_HTTP_NEED_MORE;
	while (i < len && (p[i] == '\n' || is_loose_space((unsigned char)p[i])))
		if (++i > BODY_SKIP_MAX)
			return FB_HTTP_ERROR;
	/* The whole token: our own parser stops at METHOD_MAX, but Apache
	 * and Tomcat take a method as long as their 8 KiB line, Go longer
	 * (so one that fills all we look at is not told apart: refused). */
	for (m = i; m < len && is_tchar((unsigned char)p[m]); m++)
		;
	if (m == len)
		return more;
	if (m == i || !is_loose_space((unsigned char)p[m]))
		return FB_HTTP_DONE;
	get = m - i == 3 && memcmp(p + i, "GET", 3) == 0;
	for (t = m; t < len && is_loose_space((unsigned char)p[t]); t++)
		;
	if (t == len)
		return more;
	if (p[t] == '\n') /* a method alone */
		return FB_HTTP_DONE;
	if (nginx_method(p + i, m - i) &&
	    (p[t] == '/' || p[t] == '*' || (r = scheme_start(p + t, len - t)) > 0))
		return FB_HTTP_ERROR;
	if (r < 0)
		return more;
	/* the target, then "HTTP/" or the end of the line */
	while (t < len && p[t] != '\n' && !is_loose_space((unsigned char)p[t]))
		t++;
	while (t < len && is_loose_space((unsigned char)p[t]))
		t++;
	if (t < len && p[t] == '\n')
		return get ? FB_HTTP_ERROR : FB_HTTP_DONE;
	for (size_t k = 0; k < 5; k++, t++) {
		if (t == len)
			return more;
		if ((k < 4 ? p[t] | 0x20 : p[t]) != "http/"[k])
			return FB_HTTP_DONE;
	}
	return FB_HTTP_ERROR;
}

/* ------------------------------------------------------------------ */
/* Chunked body (RFC 9112 §7.1)                                        */
/* ------------------------------------------------------------------ */

#define CHUNK_DIGITS_MAX 15 /* sizes below 2^60: no overflow, no games */

enum {
	CH_SIZE,        /* first hex digit */
	CH_SIZE_MORE,   /* more digits, BWS, ';' or CR */
	CH_BWS,         /* whitespace after the size: only ';' may follow */
	CH_EXT,         /* chunk-ext: tokens, '=', ';', BWS */
	CH_EXT_QUOTED,  /* inside a quoted-string */
	CH_EXT_QPAIR,   /* after a backslash in a quoted-string */
	CH_SIZE_LF,     /* CR seen on the size line */
	CH_DATA,
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TRAILER,     /* start of a trailer line (or the final CRLF) */
	CH_TRAILER_NAME,
	CH_TRAILER_VALUE,
	CH_TRAILER_LF,  /* CR seen at the end of a trailer field */
	CH_END_LF,      /* CR seen on the blank line */
	CH_DONE,
	CH_ERROR,
};

void fb_chunked_init(struct fb_chunked *dec)
{
	memset(dec, 0, sizeof(*dec));
}

static enum fb_chunked_status chunk_fail(struct fb_chunked *dec,
					 enum fb_http_error e)
{
	dec->state = CH_ERROR;
	dec->error = e;
	return FB_CHUNKED_ERROR;
}

/* One byte of a size line; returns FB_HTTP_OK or why it is wrong. */
static enum fb_http_error size_line_byte(struct fb_chunked *dec, unsigned char c)
{
	int h = fb_hex_digit(c);

	if (dec->state >= CH_BWS && dec->state <= CH_EXT_QPAIR &&
	    ++dec->ext_len > FB_CHUNK_EXT_MAX)
		return FB_HTTP_E_CHUNK_EXT;
	switch (dec->state) {
	case CH_SIZE:
		if (h < 0)
			return FB_HTTP_E_CHUNK_SIZE;
		dec->left = (uint64_t)h;
		dec->digits = 1;
		dec->state = CH_SIZE_MORE;
		break;
	case CH_SIZE_MORE:
		if (h >= 0) {
			if (++dec->digits > CHUNK_DIGITS_MAX)
				return FB_HTTP_E_CHUNK_SIZE;
			dec->left = dec->left << 4 | (uint64_t)h;
		} else if (c == '\r') {
			dec->state = CH_SIZE_LF;
		} else if (c == ';' || is_ows(c)) {
			dec->ext_len = 1;
			dec->state = c == ';' ? CH_EXT : CH_BWS;
		} else {
			return c == '\n' ? FB_HTTP_E_BARE_LF : FB_HTTP_E_CHUNK_SIZE;
		}
		break;
	case CH_BWS:
		if (c == ';')
			dec->state = CH_EXT;
		else if (!is_ows(c))
			return FB_HTTP_E_CHUNK_EXT;
		break;
	case CH_EXT:
		if (c == '\r')
			dec->state = CH_SIZE_LF;
		else if (c == '"')
			dec->state = CH_EXT_QUOTED;
		else if (!is_tchar(c) && !is_ows(c) && c != ';' && c != '=')
			return FB_HTTP_E_CHUNK_EXT;
		break;
	case CH_EXT_QUOTED:
		if (c == '"')
			dec->state = CH_EXT;
		else if (c == '\\')
			dec->state = CH_EXT_QPAIR;
		else if (!is_value_byte(c))
			return FB_HTTP_E_CHUNK_EXT;
		break;
	case CH_EXT_QPAIR:
		if (!is_value_byte(c))
			return FB_HTTP_E_CHUNK_EXT;
		dec->state = CH_EXT_QUOTED;
		break;
	case CH_SIZE_LF:
		if (c != '\n')
			return FB_HTTP_E_BARE_CR;
		dec->ext_len = 0;
		dec->state = dec->left ? CH_DATA : CH_TRAILER;
		break;
	}
	return FB_HTTP_OK;
}

/* One byte of the trailer section, checked with the header rules. */
static enum fb_http_error trailer_byte(struct fb_chunked *dec, unsigned char c)
{
	if (++dec->trailer_len > FB_CHUNK_TRAILER_MAX)
		return FB_HTTP_E_TRAILER_TOO_LARGE;
	switch (dec->state) {
	case CH_TRAILER:
		if (c == '\r')
			dec->state = CH_END_LF;
		else if (c == '\n')
			return FB_HTTP_E_BARE_LF;
		else if (is_ows(c))
			return FB_HTTP_E_OBS_FOLD;
		else if (!is_tchar(c))
			return FB_HTTP_E_FIELD_NAME;
		else
			dec->state = CH_TRAILER_NAME;
		break;
	case CH_TRAILER_NAME:
		if (c == ':')
			dec->state = CH_TRAILER_VALUE;
		else if (is_ows(c))
			return FB_HTTP_E_SPACE_BEFORE_COLON;
		else if (c == '\r' || c == '\n')
			return FB_HTTP_E_NO_COLON;
		else if (!is_tchar(c))
			return FB_HTTP_E_FIELD_NAME;
		break;
	case CH_TRAILER_VALUE:
		if (c == '\r')
			dec->state = CH_TRAILER_LF;
		else if (c == '\n')
			return FB_HTTP_E_BARE_LF;
		else if (!is_value_byte(c))
			return FB_HTTP_E_FIELD_VALUE;
		break;
	case CH_TRAILER_LF:
	case CH_END_LF:
		if (c != '\n')
			return FB_HTTP_E_BARE_CR;
		dec->state = dec->state == CH_END_LF ? CH_DONE : CH_TRAILER;
		break;
	}
	return FB_HTTP_OK;
}

enum fb_chunked_status fb_chunked_decode(struct fb_chunked *dec,
					 const char *in, size_t len,
					 size_t *consumed,
					 const char **data, size_t *data_len)
{
	size_t i = 0;
	enum fb_http_error e;

	*data = NULL;
	*data_len = 0;
	while (i < len && dec->state != CH_DONE && dec->state != CH_ERROR) {
		unsigned char c = (unsigned char)in[i];

		switch (dec->state) {
		case CH_DATA: {
			size_t n = len - i < dec->left ? len - i : (size_t)dec->left;

			*data = in + i;
			*data_len = n;
			dec->left -= n;
			if (!dec->left)
				dec->state = CH_DATA_CR;
			*consumed = i + n;
			return FB_CHUNKED_DATA;
		}
		case CH_DATA_CR:
		case CH_DATA_LF:
			if (c != (dec->state == CH_DATA_CR ? '\r' : '\n')) {
				*consumed = i;
				return chunk_fail(dec, FB_HTTP_E_CHUNK_CRLF);
			}
			dec->state = dec->state == CH_DATA_CR ? CH_DATA_LF : CH_SIZE;
			break;
		default:
			e = dec->state >= CH_TRAILER ? trailer_byte(dec, c)
						     : size_line_byte(dec, c);
			if (e != FB_HTTP_OK) {
				*consumed = i;
				return chunk_fail(dec, e);
			}
		}
		i++;
	}
	*consumed = i;
	if (dec->state == CH_ERROR)
		return FB_CHUNKED_ERROR;
	return dec->state == CH_DONE ? FB_CHUNKED_DONE : FB_CHUNKED_NEED_MORE;
}
