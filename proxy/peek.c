/*
 * peek.c — one incremental state machine over a connection's first bytes.
 *
 * TLS is read in two layers.  The record layer strips 5-byte headers
 * (handshake records only, each 1..2^14 bytes) and passes the bodies on,
 * so a ClientHello split into 1-byte TCP segments or 1-byte records reads
 * the same as one sent whole.  The hello layer reads fields one at a time
 * without buffering the message: an integer is accumulated, a vector is
 * skipped, and only the server name and ALPN are copied out.  Every vector
 * is checked against the one that encloses it, and every enclosing length
 * must be used exactly.
 */
#include "proxy/peek.h"

#include <arpa/inet.h>
#include <string.h>

#define TLS_HANDSHAKE 22
#define TLS_RECORD_MAX 16384
#define TLS_CLIENT_HELLO 1
#define EXT_SERVER_NAME 0
#define EXT_ALPN 16
#define EXT_ECH 0xfe0d

/* Postgres SSLRequest / GSSENCRequest: length 8, code 80877103 / 80877104 */
static const uint8_t pg_request[7] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16 };
#define PG_SSL_LAST 0x2f
#define PG_GSS_LAST 0x30

enum stage {
	STAGE_SNIFF,
	STAGE_TLS,
	STAGE_TLS_NEXT, /* after an SSLRequest: a ClientHello must follow */
	STAGE_HTTP,
	STAGE_POSTGRES,
	STAGE_SSLV2,
};

/* ClientHello fields, in wire order; each names the field being read. */
enum field {
	H_TYPE, H_LEN, H_VERSION, H_RANDOM, H_SID_LEN, H_SID, H_CS_LEN, H_CS,
	H_COMP_LEN, H_COMP, H_EXTS_LEN, H_EXT_TYPE, H_EXT_LEN, H_EXT_BODY,
	H_SNI_LIST_LEN, H_SNI_TYPE, H_SNI_LEN, H_SNI_NAME,
	H_ALPN_LIST_LEN, H_ALPN_LEN, H_ALPN_NAME,
};

static const struct fb_http_limits peek_limits = {
	.max_line = FB_PEEK_MAX,
	.max_head = FB_PEEK_MAX,
	.max_fields = FB_HTTP_MAX_FIELDS,
};

static const char *const reasons[] = {
	[FB_PEEK_NAMED] = "named",
	[FB_PEEK_NO_SNI] = "no-sni",
	[FB_PEEK_EMPTY_SNI] = "empty-sni",
	[FB_PEEK_IP_LITERAL] = "ip-literal",
	[FB_PEEK_DUPLICATE_EXTENSION] = "duplicate-extension",
	[FB_PEEK_MULTIPLE_HOST_NAMES] = "multiple-host-names",
	[FB_PEEK_NON_LDH] = "non-ldh",
	[FB_PEEK_BAD_NAME] = "bad-name",
	[FB_PEEK_BAD_RECORD] = "bad-record",
	[FB_PEEK_MALFORMED] = "malformed",
	[FB_PEEK_NO_HOST] = "no-host",
	[FB_PEEK_AMBIGUOUS_HOST] = "ambiguous-host",
	[FB_PEEK_SSLV2_HELLO] = "sslv2-hello",
	[FB_PEEK_POSTGRES_GSSENC] = "postgres-gssenc",
	[FB_PEEK_UNKNOWN_PROTOCOL] = "unknown-protocol",
};

const char *fb_peek_reason_str(enum fb_peek_reason r)
{
	return r < sizeof(reasons) / sizeof(reasons[0]) ? reasons[r] : "?";
}

const char *fb_peek_proto_str(enum fb_peek_proto p)
{
	switch (p) {
	case FB_PEEK_TLS:
		return "tls";
	case FB_PEEK_HTTP:
		return "http";
	case FB_PEEK_POSTGRES:
		return "postgres";
	case FB_PEEK_UNKNOWN:
		break;
	}
	return "unknown";
}

void fb_peek_init(struct fb_peek *p)
{
	memset(p, 0, sizeof(*p));
	fb_http_req_init(&p->http);
	p->tls.state = H_TYPE;
	p->tls.need = 1;
	p->tls.limit = UINT32_MAX;
}

static enum fb_peek_status done(struct fb_peek *p, enum fb_peek_proto proto,
				enum fb_peek_reason reason, const char *why)
{
	p->proto = proto;
	p->reason = reason;
	p->why = why;
	p->status = FB_PEEK_DONE;
	return FB_PEEK_DONE;
}

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

static bool is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static bool is_ipv6_literal(const char *s, size_t len)
{
	char text[INET6_ADDRSTRLEN];
	unsigned char bin[16];

	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
	}
	if (len >= sizeof(text) || !memchr(s, ':', len))
		return false;
	memcpy(text, s, len);
	text[len] = '\0';
	return inet_pton(AF_INET6, text, bin) == 1;
}

enum fb_peek_reason fb_peek_name(const char *s, size_t len,
				 char out[FB_NAME_MAX], const char **why)
{
	*why = NULL;
	if (len == 0)
		return FB_PEEK_EMPTY_SNI;
	if (is_ipv6_literal(s, len))
		return FB_PEEK_IP_LITERAL;
	/* Wire names are A-labels: UTF-8, NUL and the rest are not names,
	 * and must not reach the IDNA conversion fb_name_normalize() does. */
	for (size_t i = 0; i < len; i++)
		if (!is_ldh((unsigned char)s[i]))
			return FB_PEEK_NON_LDH;
	if (fb_name_ends_in_number(s, len))
		return FB_PEEK_IP_LITERAL;
	if (fb_name_normalize(s, len, out, why) < 0)
		return FB_PEEK_BAD_NAME;
	return FB_PEEK_NAMED;
}

/* ------------------------------------------------------------------ */
/* TLS: the ClientHello, one field at a time                           */
/* ------------------------------------------------------------------ */

static enum fb_peek_status malformed(struct fb_peek *p, const char *why)
{
	return done(p, FB_PEEK_TLS, FB_PEEK_MALFORMED, why);
}

/* Read `need` bytes as `field` next, within the enclosing vector. */
static enum fb_peek_status expect(struct fb_peek *p, enum field field,
				  uint32_t need)
{
	struct fb_peek_tls *t = &p->tls;

	if (need > t->limit - t->pos)
		return malformed(p, "vector overruns its enclosing length");
	t->state = field;
	t->need = need;
	t->acc = 0;
	return FB_PEEK_NEED_MORE;
}

/* The message is over: judge the server name. */
static enum fb_peek_status hello_end(struct fb_peek *p)
{
	struct fb_peek_tls *t = &p->tls;
	enum fb_peek_reason r;

	if (!t->sni_seen)
		return done(p, FB_PEEK_TLS, FB_PEEK_NO_SNI, NULL);
	if (t->raw_len > sizeof(t->raw))
		return done(p, FB_PEEK_TLS, FB_PEEK_BAD_NAME,
			    "server name longer than 253 octets");
	r = fb_peek_name(t->raw, t->raw_len, p->name, &p->why);
	return done(p, FB_PEEK_TLS, r, p->why);
}

static enum fb_peek_status extension_end(struct fb_peek *p)
{
	struct fb_peek_tls *t = &p->tls;

	t->limit = t->msg_end;
	if (t->pos == t->msg_end)
		return hello_end(p);
	return expect(p, H_EXT_TYPE, 2);
}

static enum fb_peek_status extension_start(struct fb_peek *p)
{
	struct fb_peek_tls *t = &p->tls;
	uint32_t len = t->acc;

	if (len > t->msg_end - t->pos)
		return malformed(p, "extension overruns the extensions block");
	t->ext_end = t->pos + len;
	switch (t->ext_type) {
	case EXT_SERVER_NAME:
		t->sni_seen = true;
		if (len == 0)
			return done(p, FB_PEEK_TLS, FB_PEEK_EMPTY_SNI,
				    "empty server_name extension");
		t->limit = t->ext_end;
		return expect(p, H_SNI_LIST_LEN, 2);
	case EXT_ALPN:
		t->limit = t->ext_end;
		return expect(p, H_ALPN_LIST_LEN, 2);
	}
	return expect(p, H_EXT_BODY, len);
}

static enum fb_peek_status extension_type(struct fb_peek *p)
{
	struct fb_peek_tls *t = &p->tls;

	for (unsigned i = 0; i < t->nseen; i++)
		if (t->seen[i] == t->acc)
			return done(p, FB_PEEK_TLS, FB_PEEK_DUPLICATE_EXTENSION,
				    NULL);
	if (t->nseen == FB_PEEK_MAX_EXTENSIONS)
		return malformed(p, "too many extensions");
	t->seen[t->nseen++] = (uint16_t)t->acc;
	t->ext_type = (uint16_t)t->acc;
	if (t->ext_type == EXT_ECH)
		p->ech = true;
	return expect(p, H_EXT_LEN, 2);
}

/* The field just read is complete: check it and choose the next. */
static enum fb_peek_status hello_field(struct fb_peek *p)
{
	struct fb_peek_tls *t = &p->tls;
	uint32_t v = t->acc;

	switch ((enum field)t->state) {
	case H_TYPE:
		if (v != TLS_CLIENT_HELLO)
			return malformed(p, "first handshake message is not a ClientHello");
		return expect(p, H_LEN, 3);
	case H_LEN:
		if (p->tls_start + 5 + 4 + (size_t)v > FB_PEEK_MAX) {
			p->status = FB_PEEK_TOO_BIG;
			return FB_PEEK_TOO_BIG;
		}
		t->msg_end = t->limit = 4 + v;
		return expect(p, H_VERSION, 2);
	case H_VERSION:
		if (v < 0x0301 || v > 0x0303)
			return malformed(p, "legacy_version is not TLS 1.0-1.2");
		return expect(p, H_RANDOM, 32);
	case H_RANDOM:
		return expect(p, H_SID_LEN, 1);
	case H_SID_LEN:
		if (v > 32)
			return malformed(p, "session_id longer than 32 bytes");
		return expect(p, H_SID, v);
	case H_SID:
		return expect(p, H_CS_LEN, 2);
	case H_CS_LEN:
		if (v < 2 || v % 2)
			return malformed(p, "cipher_suites length is odd or zero");
		return expect(p, H_CS, v);
	case H_CS:
		return expect(p, H_COMP_LEN, 1);
	case H_COMP_LEN:
		if (v < 1)
			return malformed(p, "no compression methods");
		return expect(p, H_COMP, v);
	case H_COMP:
		if (t->pos == t->msg_end)
			return hello_end(p);
		return expect(p, H_EXTS_LEN, 2);
	case H_EXTS_LEN:
		if (v != t->msg_end - t->pos)
			return malformed(p, "extensions length does not match the message");
		if (v == 0)
			return hello_end(p);
		return expect(p, H_EXT_TYPE, 2);
	case H_EXT_TYPE:
		return extension_type(p);
	case H_EXT_LEN:
		return extension_start(p);
	case H_EXT_BODY:
		return extension_end(p);
	case H_SNI_LIST_LEN:
		if (v != t->ext_end - t->pos)
			return malformed(p, "server_name list length does not match the extension");
		if (v == 0)
			return done(p, FB_PEEK_TLS, FB_PEEK_EMPTY_SNI,
				    "empty server_name list");
		return expect(p, H_SNI_TYPE, 1);
	case H_SNI_TYPE:
		/* RFC 6066 §3 cannot be parsed past an unknown name type, and
		 * OpenSSL accepts exactly one host_name: so do we. */
		if (v != 0)
			return malformed(p, "server_name entry is not a host_name");
		if (t->host_name_seen)
			return done(p, FB_PEEK_TLS, FB_PEEK_MULTIPLE_HOST_NAMES, NULL);
		t->host_name_seen = true;
		return expect(p, H_SNI_LEN, 2);
	case H_SNI_LEN:
		if (v == 0)
			return done(p, FB_PEEK_TLS, FB_PEEK_EMPTY_SNI, "empty host_name");
		return expect(p, H_SNI_NAME, v);
	case H_SNI_NAME:
		if (t->pos == t->ext_end)
			return extension_end(p);
		return expect(p, H_SNI_TYPE, 1);
	case H_ALPN_LIST_LEN:
		if (v != t->ext_end - t->pos || v < 2)
			return malformed(p, "ALPN list length does not match the extension");
		return expect(p, H_ALPN_LEN, 1);
	case H_ALPN_LEN:
		if (v == 0)
			return malformed(p, "empty ALPN protocol name");
		/* room for a comma, the name and the NUL, or stop listing */
		if (t->alpn_len + 1 + v >= sizeof(p->alpn))
			t->alpn_full = true;
		if (!t->alpn_full && t->alpn_len)
			p->alpn[t->alpn_len++] = ',';
		return expect(p, H_ALPN_NAME, v);
	case H_ALPN_NAME:
		if (t->pos == t->ext_end)
			return extension_end(p);
		return expect(p, H_ALPN_LEN, 1);
	}
	return malformed(p, "internal state");
}

/* Copy the bytes of a server name or an ALPN protocol name. */
static void copy_out(struct fb_peek *p, const uint8_t *b, size_t n)
{
	struct fb_peek_tls *t = &p->tls;

	for (size_t i = 0; i < n; i++) {
		if (t->state == H_SNI_NAME) {
			if (t->raw_len < sizeof(t->raw))
				t->raw[t->raw_len] = (char)b[i];
			t->raw_len++;
		} else if (!t->alpn_full) {
			bool plain = b[i] > 0x20 && b[i] < 0x7f && b[i] != ',';

			p->alpn[t->alpn_len++] = plain ? (char)b[i] : '?';
		}
	}
}

/* Handshake bytes, record headers already removed. */
static enum fb_peek_status hello_bytes(struct fb_peek *p, const uint8_t *b,
				       size_t n)
{
	struct fb_peek_tls *t = &p->tls;
	enum fb_peek_status st;

	while (n > 0) {
		size_t k = n < t->need ? n : t->need;

		switch ((enum field)t->state) {
		case H_RANDOM: case H_SID: case H_CS: case H_COMP: case H_EXT_BODY:
			break;
		case H_SNI_NAME: case H_ALPN_NAME:
			copy_out(p, b, k);
			break;
		default:
			for (size_t i = 0; i < k; i++)
				t->acc = t->acc << 8 | b[i];
		}
		b += k;
		n -= k;
		t->pos += (uint32_t)k;
		t->need -= (uint32_t)k;
		/* a zero-length vector completes without a byte */
		while (t->need == 0) {
			st = hello_field(p);
			if (st != FB_PEEK_NEED_MORE)
				return st;
		}
	}
	return FB_PEEK_NEED_MORE;
}

/* A complete record header: only handshake records may carry the hello. */
static const char *record_header_problem(const uint8_t h[5])
{
	size_t len = (size_t)h[3] << 8 | h[4];

	if (h[0] != TLS_HANDSHAKE)
		return "non-handshake record before the ClientHello ended";
	if (h[1] != 3 || h[2] < 1 || h[2] > 3)
		return "record version is not TLS 1.0-1.2";
	if (len == 0)
		return "empty handshake record";
	if (len > TLS_RECORD_MAX)
		return "record longer than 2^14 bytes";
	return NULL;
}

static enum fb_peek_status tls_records(struct fb_peek *p, const uint8_t *buf,
				       size_t len)
{
	struct fb_peek_tls *t = &p->tls;
	enum fb_peek_status st;

	while (p->off < len) {
		size_t n;

		if (t->rec_left == 0) {
			const char *problem;

			t->hdr[t->hdr_len++] = buf[p->off++];
			if (t->hdr_len < sizeof(t->hdr))
				continue;
			t->hdr_len = 0;
			problem = record_header_problem(t->hdr);
			if (problem)
				return done(p, FB_PEEK_TLS, FB_PEEK_BAD_RECORD, problem);
			t->rec_left = (uint32_t)t->hdr[3] << 8 | t->hdr[4];
			continue;
		}
		n = len - p->off < t->rec_left ? len - p->off : t->rec_left;
		st = hello_bytes(p, buf + p->off, n);
		p->off += n;
		t->rec_left -= (uint32_t)n;
		if (st != FB_PEEK_NEED_MORE)
			return st;
	}
	return FB_PEEK_NEED_MORE;
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                */
/* ------------------------------------------------------------------ */

static enum fb_peek_status http_refused(struct fb_peek *p)
{
	const char *why = fb_http_error_str(p->http.error);

	switch (p->http.error) {
	case FB_HTTP_E_HEAD_TOO_LARGE:
	case FB_HTTP_E_LINE_TOO_LONG:
		p->status = FB_PEEK_TOO_BIG;
		return FB_PEEK_TOO_BIG;
	case FB_HTTP_E_HOST_DUP:
		return done(p, FB_PEEK_HTTP, FB_PEEK_MULTIPLE_HOST_NAMES, why);
	case FB_HTTP_E_HOST_MISSING:
		return done(p, FB_PEEK_HTTP, FB_PEEK_NO_HOST, why);
	default:
		break;
	}
	/* a stream that never had an HTTP request line is not HTTP */
	if (!p->http.line_done)
		return done(p, FB_PEEK_UNKNOWN, FB_PEEK_UNKNOWN_PROTOCOL, why);
	return done(p, FB_PEEK_HTTP, FB_PEEK_MALFORMED, why);
}

/* The name of a complete, valid head: its Host, which an absolute-form
 * target must agree with. */
static enum fb_peek_status http_name(struct fb_peek *p)
{
	const struct fb_http_req *req = &p->http;
	struct fb_http_slice host, auth;
	char other[FB_NAME_MAX];
	const char *why;
	enum fb_peek_reason r;
	int port;

	if (!req->host.ptr)
		return done(p, FB_PEEK_HTTP, FB_PEEK_NO_HOST, NULL);
	/* the parser validated both; splitting again cannot fail */
	fb_http_split_authority(req->host.ptr, req->host.len, &host, &port);
	r = fb_peek_name(host.ptr, host.len, p->name, &p->why);
	if (r != FB_PEEK_NAMED || req->form != FB_HTTP_ABSOLUTE_FORM)
		return done(p, FB_PEEK_HTTP, r, p->why);
	fb_http_split_authority(req->authority.ptr, req->authority.len, &auth,
				&port);
	if (fb_peek_name(auth.ptr, auth.len, other, &why) != FB_PEEK_NAMED ||
	    strcmp(other, p->name) != 0) {
		p->name[0] = '\0';
		return done(p, FB_PEEK_HTTP, FB_PEEK_AMBIGUOUS_HOST,
			    "absolute-form target names another host than Host");
	}
	return done(p, FB_PEEK_HTTP, FB_PEEK_NAMED, NULL);
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */
/* ------------------------------------------------------------------ */

/* The first byte says which reader to use.  Everything else is read as
 * HTTP, whose request-line scanner refuses the first byte that cannot
 * belong to a request line (a method is a token). */
static enum stage sniff(uint8_t first)
{
	if (first == TLS_HANDSHAKE)
		return STAGE_TLS;
	if (first == 0)
		return STAGE_POSTGRES;
	if (first & 0x80)
		return STAGE_SSLV2;
	return STAGE_HTTP;
}

static enum fb_peek_status postgres(struct fb_peek *p, const uint8_t *buf,
				    size_t len)
{
	for (; p->off < len; p->off++) {
		uint8_t c = buf[p->off];

		if (p->off < sizeof(pg_request)) {
			if (c != pg_request[p->off])
				return done(p, FB_PEEK_UNKNOWN,
					    FB_PEEK_UNKNOWN_PROTOCOL, NULL);
			continue;
		}
		p->off++;
		if (c == PG_SSL_LAST) {
			p->status = FB_PEEK_SSLREQUEST;
			return FB_PEEK_SSLREQUEST;
		}
		if (c == PG_GSS_LAST)
			return done(p, FB_PEEK_POSTGRES, FB_PEEK_POSTGRES_GSSENC, NULL);
		return done(p, FB_PEEK_UNKNOWN, FB_PEEK_UNKNOWN_PROTOCOL, NULL);
	}
	return FB_PEEK_NEED_MORE;
}

void fb_peek_after_sslrequest(struct fb_peek *p)
{
	if (p->status != FB_PEEK_SSLREQUEST)
		return; /* nothing to resume: a finished peek stays finished */
	p->stage = STAGE_TLS_NEXT;
	p->status = FB_PEEK_NEED_MORE;
	p->after_sslrequest = true;
}

static enum fb_peek_status feed(struct fb_peek *p, const uint8_t *buf,
				size_t len)
{
	enum fb_http_status hs;

	if (p->stage == STAGE_SNIFF || p->stage == STAGE_TLS_NEXT) {
		if (p->off == len)
			return FB_PEEK_NEED_MORE;
		if (p->stage == STAGE_TLS_NEXT && buf[p->off] != TLS_HANDSHAKE)
			return done(p, FB_PEEK_UNKNOWN, FB_PEEK_UNKNOWN_PROTOCOL,
				    "no ClientHello after the SSLRequest");
		p->tls_start = p->off;
		p->stage = sniff(buf[p->off]);
	}
	switch (p->stage) {
	case STAGE_TLS:
		return tls_records(p, buf, len);
	case STAGE_POSTGRES:
		return postgres(p, buf, len);
	case STAGE_SSLV2:
		/* 2-byte header with the high bit set, then CLIENT-HELLO (1) */
		if (len < 3)
			return FB_PEEK_NEED_MORE;
		if (buf[2] == 1)
			return done(p, FB_PEEK_UNKNOWN, FB_PEEK_SSLV2_HELLO, NULL);
		return done(p, FB_PEEK_UNKNOWN, FB_PEEK_UNKNOWN_PROTOCOL, NULL);
	case STAGE_HTTP:
		p->off = len;
		hs = fb_http_parse_head(&p->http, (const char *)buf, len,
					&peek_limits);
		if (hs == FB_HTTP_ERROR)
			return http_refused(p);
		if (hs == FB_HTTP_DONE)
			return http_name(p);
		return FB_PEEK_NEED_MORE;
	}
	return FB_PEEK_NEED_MORE;
}

enum fb_peek_status fb_peek_feed(struct fb_peek *p, const uint8_t *buf,
				 size_t len)
{
	enum fb_peek_status st;

	if (p->status != FB_PEEK_NEED_MORE)
		return p->status;
	if (len > FB_PEEK_MAX)
		len = FB_PEEK_MAX;
	if (len < p->off)
		return FB_PEEK_NEED_MORE;
	st = feed(p, buf, len);
	if (st == FB_PEEK_NEED_MORE && len == FB_PEEK_MAX) {
		p->status = FB_PEEK_TOO_BIG;
		return FB_PEEK_TOO_BIG;
	}
	return st;
}
