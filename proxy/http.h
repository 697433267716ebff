/*
 * http.h — a strict, incremental HTTP/1.1 request-head parser and chunked
 * body decoder (RFC 9112), zero-copy over the caller's buffer.
 *
 * The proxy is a transducer: whatever it forwards, an origin server parses
 * again.  Every construct on which two parsers could disagree (bare CR or
 * LF, obs-fold, whitespace before a colon, duplicate or malformed framing
 * headers, a transfer coding other than a lone "chunked") is refused with
 * the status to answer, never repaired.  There is no lenient mode.
 *
 * Refused outright as well, because a credential-brokering proxy must not
 * carry them: CONNECT and TRACE/TRACK (405), an h2c upgrade or the HTTP/2
 * connection preface (400 / 505).
 */
#ifndef FB_HTTP_H
#define FB_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h" /* struct fb_http_header */

enum fb_http_status {
	FB_HTTP_NEED_MORE, /* a prefix of a valid head: call again with more */
	FB_HTTP_DONE,      /* req->head_len bytes are a complete, valid head */
	FB_HTTP_ERROR,     /* req->error says why; answer it, then close */
};

/* Why a head or a chunked body was refused; fb_http_error_status() maps
 * each to the status line to answer. */
enum fb_http_error {
	FB_HTTP_OK,
	FB_HTTP_E_BARE_LF,          /* 400 LF not preceded by CR */
	FB_HTTP_E_BARE_CR,          /* 400 CR not followed by LF */
	FB_HTTP_E_METHOD,           /* 400 method is not a token */
	FB_HTTP_E_METHOD_TOO_LONG,  /* 501 */
	FB_HTTP_E_TARGET,           /* 400 request-target byte or form */
	FB_HTTP_E_VERSION,          /* 400 not "HTTP/" DIGIT "." DIGIT */
	FB_HTTP_E_VERSION_UNSUPPORTED, /* 505 anything but 1.0 and 1.1 */
	FB_HTTP_E_LINE_TOO_LONG,    /* 414 */
	FB_HTTP_E_CONNECT,          /* 405 */
	FB_HTTP_E_TRACE,            /* 405 TRACE or TRACK */
	FB_HTTP_E_FIELD_NAME,       /* 400 field name is not a token */
	FB_HTTP_E_SPACE_BEFORE_COLON, /* 400 */
	FB_HTTP_E_NO_COLON,         /* 400 */
	FB_HTTP_E_OBS_FOLD,         /* 400 line starting with SP or HTAB */
	FB_HTTP_E_FIELD_VALUE,      /* 400 control character in a value */
	FB_HTTP_E_TOO_MANY_FIELDS,  /* 431 */
	FB_HTTP_E_HEAD_TOO_LARGE,   /* 431 */
	FB_HTTP_E_CONTENT_LENGTH,   /* 400 not 1*DIGIT or too large */
	FB_HTTP_E_CONTENT_LENGTH_DUP, /* 400 more than one Content-Length */
	FB_HTTP_E_TE_DUP,           /* 400 more than one Transfer-Encoding */
	FB_HTTP_E_TE_INVALID,       /* 400 not a list of codings, or chunked not last */
	FB_HTTP_E_TE_UNSUPPORTED,   /* 501 codings besides the final chunked */
	FB_HTTP_E_TE_HTTP10,        /* 400 Transfer-Encoding in HTTP/1.0 */
	FB_HTTP_E_CL_AND_TE,        /* 400 */
	FB_HTTP_E_HOST_MISSING,     /* 400 HTTP/1.1 without Host */
	FB_HTTP_E_HOST_DUP,         /* 400 */
	FB_HTTP_E_HOST_INVALID,     /* 400 not uri-host [":" port] */
	FB_HTTP_E_H2C,              /* 400 Upgrade: h2c or HTTP2-Settings */
	FB_HTTP_E_CHUNK_SIZE,       /* 400 not 1*HEXDIG, or over 2^60 */
	FB_HTTP_E_CHUNK_EXT,        /* 400 malformed or oversized extension */
	FB_HTTP_E_CHUNK_CRLF,       /* 400 chunk data not followed by CRLF */
	FB_HTTP_E_TRAILER_TOO_LARGE, /* 431 */
	FB_HTTP_E_COUNT
};

int fb_http_error_status(enum fb_http_error e);   /* 400, 405, 414, ... */
const char *fb_http_error_str(enum fb_http_error e); /* short, for logs */

/* The reason phrase firebreak sends after status in a status line; ""
 * for a status it has none for (a policy's response may be any). */
const char *fb_http_status_text(int status);

/* How a request names its resource (RFC 9112 §3.2). */
enum fb_http_form {
	FB_HTTP_ORIGIN_FORM,   /* "/path?query" */
	FB_HTTP_ABSOLUTE_FORM, /* "http://authority/path?query" */
	FB_HTTP_ASTERISK_FORM, /* "*", OPTIONS only */
};

#define FB_HTTP_KEEP_ALIVE   0x01 /* connection may carry another request */
#define FB_HTTP_EXPECT_100   0x02 /* Expect: 100-continue */
#define FB_HTTP_UPGRADE      0x04 /* an Upgrade field (h2c is refused) */
#define FB_HTTP_WEBSOCKET    0x08 /* ... offering "websocket" */

#define FB_HTTP_MAX_FIELDS 128

struct fb_http_limits {
	size_t max_line;   /* request line without CRLF; over it: 414 */
	size_t max_head;   /* whole head with the blank line; over it: 431 */
	size_t max_fields; /* <= FB_HTTP_MAX_FIELDS; over it: 431 */
};

/* 8 KiB request line, 32 KiB head, 100 fields. */
extern const struct fb_http_limits fb_http_default_limits;

/* A slice of the caller's buffer; ptr is NULL when absent. */
struct fb_http_slice {
	const char *ptr;
	size_t len;
};

struct fb_http_req {
	/* Results, valid on FB_HTTP_DONE; slices point into the buffer. */
	struct fb_http_slice method, target;
	enum fb_http_form form;
	struct fb_http_slice authority; /* absolute-form only */
	struct fb_http_slice path;      /* target before the first '?' ("*" for asterisk-form) */
	struct fb_http_slice query;     /* after the first '?'; ptr NULL when no '?' */
	int minor;                      /* HTTP/1.minor */
	struct fb_http_header fields[FB_HTTP_MAX_FIELDS];
	size_t nfields;
	struct fb_http_slice host;      /* the Host field value, or ptr NULL */
	int64_t content_length;         /* -1 when absent */
	bool chunked;
	unsigned flags;                 /* FB_HTTP_KEEP_ALIVE, ... */
	size_t head_len;                /* bytes up to and including the blank line */
	enum fb_http_error error;       /* on FB_HTTP_ERROR */
	bool line_done;                 /* a request line of the right shape arrived
					 * (method SP target SP HTTP/d.d CRLF) */

	/* Parser state, so that a call resumes where the last one stopped. */
	uintptr_t base;   /* the buffer of the last call */
	size_t pos;       /* start of the first line not yet parsed */
	size_t scan;      /* bytes of that line already scanned */
	int rl_state;     /* request-line scanner state */
	size_t sp1, sp2;  /* offsets of the request line's two spaces */
	unsigned seen;    /* framing fields met so far */
	enum fb_http_status status;
};

void fb_http_req_init(struct fb_http_req *req);

/*
 * Parse the request head at the start of buf[0..len).  Call again with the
 * same buffer grown (more bytes appended) after FB_HTTP_NEED_MORE; the
 * parse resumes where it stopped, or restarts if the buffer moved.  The
 * verdict never depends on how the bytes were split between calls.
 * limits NULL: fb_http_default_limits.
 */
enum fb_http_status fb_http_parse_head(struct fb_http_req *req,
				       const char *buf, size_t len,
				       const struct fb_http_limits *limits);

/* The last field named `name` (case-insensitive), or NULL. */
const struct fb_http_header *fb_http_field(const struct fb_http_req *req,
					   const char *name);

/* Room for the hosts fb_http_forwarded_hosts() reads: a request that
 * names more is refused wherever they are checked. */
#define FB_HTTP_FORWARDED_MAX 16

/*
 * The hosts a request names besides its target and Host, for whatever
 * behind the origin routes by them: each element of X-Forwarded-Host,
 * X-Host, X-Original-Host, X-Forwarded-Server and X-HTTP-Host-Override,
 * and each host= of Forwarded, as written (port and all, not checked).
 * How many went into out[0..max); -1 when more than max, or a Forwarded
 * value too tangled to read the same way as every server would.
 */
int fb_http_forwarded_hosts(const struct fb_http_req *req,
			    struct fb_http_slice *out, size_t max);

/*
 * Could a request body that starts with p[0..len) be read as the next
 * request by an origin that answers without reading the body?  (Its
 * first line, loosely: a method and '/', '*' or "scheme://"; a method, a
 * target and "HTTP/"; or "GET" and a target alone.)  FB_HTTP_ERROR: it
 * could; FB_HTTP_DONE: it could not; FB_HTTP_NEED_MORE: more of it is
 * needed to tell (never when `whole`, the body complete).
 */
enum fb_http_status fb_http_body_start(const char *p, size_t len, bool whole);

/*
 * Split a Host value or an absolute-form authority into host and port
 * (-1 when absent).  An IPv6 literal keeps its brackets.  -1 on anything
 * but uri-host [":" port] with a non-empty host (no userinfo).
 */
int fb_http_split_authority(const char *s, size_t len,
			    struct fb_http_slice *host, int *port);

/*
 * Does the path hold a "." or ".." segment, plain or percent-encoded,
 * ended by '/', '\\', "%2f" or "%5c", or followed by ";params"?  A
 * brokered request's path is judged by the rules as it is sent, so one
 * whose meaning depends on the origin resolving it is refused.
 */
bool fb_http_path_has_dot_segment(const char *path, size_t len);

/*
 * The same, in the path as sent and percent-decoded once, twice, ... as
 * long as a decoding changes it: "/v1/%252e%252e/admin" is "/v1/../admin"
 * to a server that decodes twice.  1, 0, or -1 when out of memory.  1
 * too for a path that would still decode after eight decodings.
 */
int fb_http_path_has_dot_segment_decoded(const char *path, size_t len);

/* ------------------------------------------------------------------ */
/* Chunked body decoder                                                */
/* ------------------------------------------------------------------ */

enum fb_chunked_status {
	FB_CHUNKED_NEED_MORE, /* all input consumed, body not finished */
	FB_CHUNKED_DATA,      /* decoded body bytes in *data, *data_len */
	FB_CHUNKED_DONE,      /* last chunk and trailer section consumed */
	FB_CHUNKED_ERROR,     /* dec->error says why; close */
};

#define FB_CHUNK_EXT_MAX 1024 /* bytes of extensions on one chunk line */
#define FB_CHUNK_TRAILER_MAX 8192

struct fb_chunked {
	int state;
	uint64_t left;      /* chunk size being read, then data bytes left */
	unsigned digits;    /* hex digits read for this size */
	size_t ext_len;     /* extension bytes on this chunk line */
	size_t trailer_len; /* bytes of the trailer section */
	enum fb_http_error error;
};

void fb_chunked_init(struct fb_chunked *dec);

/*
 * Decode from in[0..len).  *consumed is how many input bytes were used;
 * call again with the rest.  Data spans point into `in`.  Trailer fields
 * are checked with the header rules and dropped (RFC 9110 §6.5.1 lets a
 * recipient that removes the chunked coding discard them).
 */
enum fb_chunked_status fb_chunked_decode(struct fb_chunked *dec,
					 const char *in, size_t len,
					 size_t *consumed,
					 const char **data, size_t *data_len);

#endif /* FB_HTTP_H */
