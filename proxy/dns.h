/*
 * dns.h — DNS messages as the sandbox's resolver sees them (RFC 1035):
 * strict parsing of a client's query, parsing of a response's answer
 * section, and building of replies.  No I/O.
 *
 * A query is held to what a stub resolver sends: one question, class IN,
 * opcode QUERY, no answer or authority records, at most one additional
 * record which must be an EDNS OPT, nothing after the last record, and no
 * compression pointers in the question (a stub has nothing to point at).
 * Anything else is FORMERR (NOTIMP for other opcodes): a lenient parser in
 * front of a policy decision is a place for two readings of one name.
 */
#ifndef FB_DNS_H
#define FB_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy/policy.h"

enum fb_dns_rcode {
	FB_DNS_NOERROR = 0,
	FB_DNS_FORMERR = 1,
	FB_DNS_SERVFAIL = 2,
	FB_DNS_NXDOMAIN = 3,
	FB_DNS_NOTIMP = 4,
	FB_DNS_REFUSED = 5,
};

enum fb_dns_type {
	FB_DNS_A = 1,
	FB_DNS_CNAME = 5,
	FB_DNS_TXT = 16,
	FB_DNS_AAAA = 28,
	FB_DNS_OPT = 41,
	FB_DNS_SVCB = 64,
	FB_DNS_HTTPS = 65,
};

#define FB_DNS_CLASS_IN 1

/* Header flag bits (the second 16-bit word of the header). */
#define FB_DNS_QR 0x8000
#define FB_DNS_AA 0x0400
#define FB_DNS_TC 0x0200
#define FB_DNS_RD 0x0100
#define FB_DNS_RA 0x0080
#define FB_DNS_OPCODE(flags) (((flags) >> 11) & 0xf)
#define FB_DNS_RCODE(flags) ((flags) & 0xf)

#define FB_DNS_HEADER_LEN 12
#define FB_DNS_NAME_WIRE_MAX 255 /* RFC 1035 §3.1, length octets included */
#define FB_DNS_UDP_MIN 512       /* what a client without EDNS can take */
#define FB_DNS_UDP_MAX 1232      /* our EDNS payload size: no IP fragments */
#define FB_DNS_TCP_MAX 65535
#define FB_DNS_MAX_RR 32         /* records parsed from or put into one answer */

/*
 * A resource record of the answer section.  `name` and `target` are text
 * (labels joined by dots, no trailing dot, "" for the root).
 */
struct fb_dns_rr {
	char name[FB_NAME_MAX];
	uint16_t type;         /* A, AAAA, CNAME; other types: by type only */
	uint32_t ttl;
	struct fb_addr addr;   /* A, AAAA */
	char target[FB_NAME_MAX]; /* CNAME */
};

struct fb_dns_msg {
	uint16_t id;
	uint16_t flags;
	bool has_question;
	/* The question name as received, echoed in the reply unchanged so a
	 * client that randomises letter case (0x20) recognises its answer. */
	uint8_t qwire[FB_DNS_NAME_WIRE_MAX];
	size_t qwire_len;
	/*
	 * The question name as text, or "" with qname_text = false when a
	 * label holds a byte outside letters, digits, '-' and '_' (a dot or a
	 * NUL inside a label would make the text mean another name).
	 */
	char qname[FB_NAME_MAX];
	bool qname_text;
	uint16_t qtype, qclass;
	bool edns;             /* the query carried an OPT record */
	uint16_t edns_size;    /* its advertised UDP payload size */
};

/*
 * Parse a client's query.  Returns FB_DNS_NOERROR; FB_DNS_FORMERR or
 * FB_DNS_NOTIMP with *why naming the fault (q->id and q->flags, and the
 * question when it was read, are filled so the error can be answered); or
 * -1 when the bytes cannot be answered at all: shorter than a header, or
 * a response (answering responses would let two servers loop).
 */
int fb_dns_parse_query(const uint8_t *p, size_t len, struct fb_dns_msg *q,
		       const char **why);

/*
 * Parse a response: header, at most one question, the answer section's
 * A, AAAA and CNAME records (other types are checked for bounds and kept by
 * type only), authority and additional records checked for bounds and
 * skipped.  Compression pointers are followed, each strictly backwards of
 * the last, so no pointer chain can loop.  The answers go to
 * an[FB_DNS_MAX_RR], their number to *nan.  0, or -1 with *why.
 */
int fb_dns_parse_response(const uint8_t *p, size_t len, struct fb_dns_msg *m,
			  struct fb_dns_rr *an, size_t *nan, const char **why);

/*
 * Build the reply to `q` into buf: QR and RA set, RD copied, `rcode`, the
 * question echoed (when q has one), the n records, and an OPT record when
 * q had one.  A record whose name equals the question's is written as a
 * pointer to it.  When the records would make the reply longer than
 * `limit`, it is sent without them and with TC set, so the client asks
 * again over TCP.  Returns the length, or -1 with *why when even that does
 * not fit or a record cannot be encoded.
 */
ssize_t fb_dns_build_reply(const struct fb_dns_msg *q, int rcode,
			   const struct fb_dns_rr *rr, size_t n, uint8_t *buf,
			   size_t limit, const char **why);

/* The largest UDP reply `q`'s sender accepts. */
size_t fb_dns_udp_limit(const struct fb_dns_msg *q);

/* "A", "AAAA", "HTTPS", ... or NULL for a type without a name here. */
const char *fb_dns_type_str(uint16_t type);
/* "NOERROR", "NXDOMAIN", ... */
const char *fb_dns_rcode_str(int rcode);

#endif /* FB_DNS_H */
