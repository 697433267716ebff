/*
 * peek.h — what a new connection is about to say, read from its first
 * bytes: the TLS ClientHello's server name, an HTTP/1.x request's Host,
 * or a Postgres SSLRequest (after which a ClientHello follows).
 *
 * Pure byte parsing: no sockets, no clock.  The caller accumulates what
 * the client sent (those bytes are later replayed upstream untouched) and
 * owns the deadline; the peek owns the byte bound, FB_PEEK_MAX.
 *
 * A connection the peek cannot name is "domain-less" (fb_peek.reason says
 * why): it passes only under the catch-all "*" key.  The peek never
 * guesses: an ambiguous hello or request (two server names, duplicate
 * extensions, Host disagreeing with an absolute-form target) is
 * domain-less too, so that no upstream can read a different name from
 * the same bytes.
 */
#ifndef FB_PEEK_H
#define FB_PEEK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h" /* FB_NAME_MAX */
#include "proxy/http.h"

#define FB_PEEK_MAX 65536 /* bytes looked at before giving up */
#define FB_PEEK_ALPN_MAX 128
#define FB_PEEK_MAX_EXTENSIONS 128

enum fb_peek_status {
	FB_PEEK_NEED_MORE,  /* feed again once more bytes have arrived */
	FB_PEEK_DONE,       /* proto, reason, name (and the rest) are set */
	FB_PEEK_SSLREQUEST, /* a Postgres SSLRequest (8 bytes): answer 'S',
			     * call fb_peek_after_sslrequest(), feed again */
	FB_PEEK_TOO_BIG,    /* FB_PEEK_MAX bytes and still undecided: close */
};

enum fb_peek_proto {
	FB_PEEK_UNKNOWN,
	FB_PEEK_TLS,
	FB_PEEK_HTTP,
	FB_PEEK_POSTGRES, /* a Postgres request the proxy does not answer */
};

enum fb_peek_reason {
	FB_PEEK_NAMED,                /* name holds the normalised name */
	FB_PEEK_NO_SNI,               /* a valid hello without server_name */
	FB_PEEK_EMPTY_SNI,            /* empty extension, list or name */
	FB_PEEK_IP_LITERAL,           /* 127.0.0.1, 0x7f.1, 2130706433, [::1] */
	FB_PEEK_DUPLICATE_EXTENSION,  /* RFC 8446 §4.2 */
	FB_PEEK_MULTIPLE_HOST_NAMES,  /* two host_names, or two Host fields */
	FB_PEEK_NON_LDH,              /* a byte outside letters, digits, '-', '.' */
	FB_PEEK_BAD_NAME,             /* refused by fb_name_normalize(); see why */
	FB_PEEK_BAD_RECORD,           /* TLS record layer */
	FB_PEEK_MALFORMED,            /* ClientHello or request head; see why */
	FB_PEEK_NO_HOST,              /* HTTP/1.0 request without Host */
	FB_PEEK_AMBIGUOUS_HOST,       /* absolute-form authority != Host */
	FB_PEEK_SSLV2_HELLO,
	FB_PEEK_POSTGRES_GSSENC,      /* GSSENCRequest: see fb_peek_feed() */
	FB_PEEK_UNKNOWN_PROTOCOL,
};

const char *fb_peek_reason_str(enum fb_peek_reason r); /* "no-sni", ... */
const char *fb_peek_proto_str(enum fb_peek_proto p);   /* "tls", ... */

struct fb_peek {
	/* Results, valid once fb_peek_feed() returned FB_PEEK_DONE. */
	enum fb_peek_proto proto;
	enum fb_peek_reason reason;
	const char *why;           /* static detail for the log, or NULL */
	char name[FB_NAME_MAX];    /* FB_PEEK_NAMED only */
	bool ech;                  /* encrypted_client_hello offered: the name
				    * is the outer (public) one */
	bool after_sslrequest;     /* the hello followed a Postgres SSLRequest */
	char alpn[FB_PEEK_ALPN_MAX]; /* offered protocols, comma-separated,
				      * bytes outside printable ASCII as '?' */
	/*
	 * HTTP: the parsed head (method, target, fields), its slices pointing
	 * into the buffer of the last fb_peek_feed() call.  When reason is
	 * FB_PEEK_MALFORMED, http.error says what the strict parser refused.
	 */
	struct fb_http_req http;

	/* State: where the bytes left off. */
	size_t off;                /* bytes of the stream consumed */
	size_t tls_start;          /* offset of the first TLS record */
	int stage;                 /* which protocol the bytes are read as */
	enum fb_peek_status status;
	struct fb_peek_tls {
		uint8_t hdr[5];        /* record header being collected */
		uint8_t hdr_len;
		uint32_t rec_left;     /* body bytes left in the current record */
		int state;             /* the ClientHello field being read */
		uint32_t pos;          /* offset in the handshake message */
		uint32_t need;         /* bytes the field still needs */
		uint32_t acc;          /* an integer field being read */
		uint32_t limit;        /* end of the innermost enclosing vector */
		uint32_t msg_end, ext_end;
		uint16_t ext_type;
		uint16_t seen[FB_PEEK_MAX_EXTENSIONS];
		unsigned nseen;
		bool sni_seen, host_name_seen;
		size_t raw_len;        /* bytes of the server name received */
		char raw[FB_NAME_MAX]; /* its first FB_NAME_MAX bytes */
		size_t alpn_len;
		bool alpn_full;        /* later protocols did not fit */
	} tls;
};

void fb_peek_init(struct fb_peek *p);

/*
 * Feed the stream so far: buf[0..len) is everything the client sent, the
 * same prefix at every call, growing (the buffer itself may move between
 * calls).  Bytes past FB_PEEK_MAX are never looked at; the verdict does
 * not depend on how the bytes were split between calls.
 *
 * Anything that is not a TLS handshake record, an HTTP/1.x request line
 * or a Postgres SSLRequest/GSSENCRequest is FB_PEEK_UNKNOWN as soon as
 * its first bytes show it, so SSH and the like pass quickly under "*".
 *
 * A GSSENCRequest is domain-less (FB_PEEK_POSTGRES_GSSENC): under "*" it
 * is spliced and the server answers it; otherwise the caller closes.
 */
enum fb_peek_status fb_peek_feed(struct fb_peek *p, const uint8_t *buf,
				 size_t len);

/*
 * After FB_PEEK_SSLREQUEST (the caller answered 'S'): the next bytes must
 * be a TLS ClientHello.  Keep feeding the same stream, SSLRequest
 * included; the result has after_sslrequest set, telling the caller to
 * send the SSLRequest upstream and consume the server's 'S' itself.
 * Does nothing unless the last fb_peek_feed() returned FB_PEEK_SSLREQUEST.
 */
void fb_peek_after_sslrequest(struct fb_peek *p);

/*
 * Check a name received on the wire (SNI, or the host part of a Host
 * value without port) and normalise it into out.  FB_PEEK_NAMED, or why
 * it is not a name (*why set for FB_PEEK_BAD_NAME).  The same rule the
 * peek applies, for the brokering code's Host == SNI check.
 */
enum fb_peek_reason fb_peek_name(const char *s, size_t len,
				 char out[FB_NAME_MAX], const char **why);

#endif /* FB_PEEK_H */
