/*
 * dns_msg.c — parse and build DNS messages (RFC 1035 §4, RFC 6891 OPT).
 */
#include "proxy/dns.h"

#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* ---- reading ----------------------------------------------------------- */

struct rd {
	const uint8_t *p;
	size_t len;
	size_t off;
};

static int get16(struct rd *r, uint16_t *v)
{
	if (r->len - r->off < 2)
		return -1;
	*v = (uint16_t)(r->p[r->off] << 8 | r->p[r->off + 1]);
	r->off += 2;
	return 0;
}

static int get32(struct rd *r, uint32_t *v)
{
	const uint8_t *b = r->p + r->off;

	if (r->len - r->off < 4)
		return -1;
	*v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	r->off += 4;
	return 0;
}

/* Letters, digits, '-' and '_' (service labels): anything else in a label
 * cannot be written as text without changing which name it is. */
static bool label_byte_ok(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

struct name {
	uint8_t wire[FB_DNS_NAME_WIRE_MAX];
	size_t wire_len;
	char text[FB_NAME_MAX];
	bool text_ok;
};

/*
 * Read a name at r->off.  With `follow`, compression pointers are followed;
 * every pointer must land before the start of the labels that led to it,
 * so each jump goes strictly backwards and no chain of pointers can loop.
 * Without it a pointer is an error.  r->off ends after the name as it
 * appears in place (after the first pointer, if any).
 */
static int read_name(struct rd *r, bool follow, struct name *n,
		     const char **why)
{
	size_t pos = r->off, limit = r->off, resume = 0, t = 0;
	bool jumped = false;

	n->wire_len = 0;
	n->text_ok = true;
	for (;;) {
		if (pos >= r->len) {
			*why = "name runs past the end of the message";
			return -1;
		}
		uint8_t c = r->p[pos];
		if ((c & 0xc0) == 0xc0) {
			if (!follow) {
				*why = "compression pointer in the question";
				return -1;
			}
			if (pos + 1 >= r->len) {
				*why = "compression pointer cut short";
				return -1;
			}
			size_t to = (size_t)(c & 0x3f) << 8 | r->p[pos + 1];
			if (to >= limit) {
				*why = "compression pointer does not point backwards";
				return -1;
			}
			if (!jumped)
				resume = pos + 2;
			jumped = true;
			limit = to;
			pos = to;
			continue;
		}
		if (c & 0xc0) {
			*why = "label type other than a plain label";
			return -1;
		}
		if (n->wire_len + 1 + c > FB_DNS_NAME_WIRE_MAX) {
			*why = "name longer than 255 octets";
			return -1;
		}
		if (r->len - pos - 1 < c) {
			*why = "label runs past the end of the message";
			return -1;
		}
		memcpy(n->wire + n->wire_len, r->p + pos, 1 + (size_t)c);
		n->wire_len += 1 + (size_t)c;
		if (c == 0)
			break;
		if (t > 0)
			n->text[t++] = '.';
		for (size_t i = 1; i <= c; i++) {
			n->text_ok &= label_byte_ok(r->p[pos + i]);
			n->text[t++] = (char)r->p[pos + i];
		}
		pos += 1 + (size_t)c;
	}
	n->text[t] = '\0';
	if (!n->text_ok)
		n->text[0] = '\0';
	r->off = jumped ? resume : pos + 1;
	return 0;
}

static void read_header(struct rd *r, struct fb_dns_msg *m, uint16_t count[4])
{
	get16(r, &m->id);
	get16(r, &m->flags);
	for (int i = 0; i < 4; i++)
		get16(r, &count[i]);
}

static int read_question(struct rd *r, bool follow, struct fb_dns_msg *m,
			 const char **why)
{
	struct name n;

	if (read_name(r, follow, &n, why) < 0)
		return -1;
	if (get16(r, &m->qtype) < 0 || get16(r, &m->qclass) < 0) {
		*why = "question cut short after its name";
		return -1;
	}
	memcpy(m->qwire, n.wire, n.wire_len);
	m->qwire_len = n.wire_len;
	memcpy(m->qname, n.text, sizeof(m->qname));
	m->qname_text = n.text_ok;
	m->has_question = true;
	return 0;
}

struct rr_head {
	struct name owner;
	uint16_t type, class;
	uint32_t ttl;
	uint16_t rdlen;
	size_t rdata; /* offset of the data */
};

/* A record's fixed part; r->off ends after its data. */
static int read_rr(struct rd *r, struct rr_head *h, const char **why)
{
	if (read_name(r, true, &h->owner, why) < 0)
		return -1;
	if (get16(r, &h->type) < 0 || get16(r, &h->class) < 0 ||
	    get32(r, &h->ttl) < 0 || get16(r, &h->rdlen) < 0) {
		*why = "record cut short after its name";
		return -1;
	}
	if (r->len - r->off < h->rdlen) {
		*why = "record data runs past the end of the message";
		return -1;
	}
	h->rdata = r->off;
	r->off += h->rdlen;
	return 0;
}

/* ---- queries ----------------------------------------------------------- */

int fb_dns_parse_query(const uint8_t *p, size_t len, struct fb_dns_msg *q,
		       const char **why)
{
	struct rd r = { p, len, 0 };
	uint16_t count[4]; /* question, answer, authority, additional */

	memset(q, 0, sizeof(*q));
	*why = NULL;
	if (len < FB_DNS_HEADER_LEN)
		return -1;
	read_header(&r, q, count);
	if (q->flags & FB_DNS_QR)
		return -1;
	if (FB_DNS_OPCODE(q->flags) != 0) {
		*why = "opcode is not QUERY";
		return FB_DNS_NOTIMP;
	}
	if (count[0] != 1) {
		*why = "a query must hold exactly one question";
		return FB_DNS_FORMERR;
	}
	if (count[1] != 0 || count[2] != 0) {
		*why = "answer or authority records in a query";
		return FB_DNS_FORMERR;
	}
	if (count[3] > 1) {
		*why = "more than one additional record in a query";
		return FB_DNS_FORMERR;
	}
	if (read_question(&r, false, q, why) < 0)
		return FB_DNS_FORMERR;
	if (q->qclass != FB_DNS_CLASS_IN) {
		*why = "question class is not IN";
		return FB_DNS_FORMERR;
	}
	if (count[3] == 1) {
		struct rr_head h;

		if (read_rr(&r, &h, why) < 0)
			return FB_DNS_FORMERR;
		if (h.type != FB_DNS_OPT || h.owner.wire_len != 1) {
			*why = "the additional record is not an EDNS OPT for the root";
			return FB_DNS_FORMERR;
		}
		q->edns = true;
		q->edns_size = h.class;
	}
	if (r.off != len) {
		*why = "bytes after the last record";
		return FB_DNS_FORMERR;
	}
	return FB_DNS_NOERROR;
}

size_t fb_dns_udp_limit(const struct fb_dns_msg *q)
{
	if (!q->edns || q->edns_size <= FB_DNS_UDP_MIN)
		return FB_DNS_UDP_MIN;
	return q->edns_size < FB_DNS_UDP_MAX ? q->edns_size : FB_DNS_UDP_MAX;
}

/* ---- responses --------------------------------------------------------- */

static int read_answer(struct rd *r, struct fb_dns_rr *rr, const char **why)
{
	struct rr_head h;

	if (read_rr(r, &h, why) < 0)
		return -1;
	if (!h.owner.text_ok) {
		*why = "record name is not a host name";
		return -1;
	}
	memset(rr, 0, sizeof(*rr));
	memcpy(rr->name, h.owner.text, sizeof(rr->name));
	rr->type = h.type;
	/* RFC 2181 §8: a TTL with the top bit set means zero. */
	rr->ttl = h.ttl & 0x80000000u ? 0 : h.ttl;
	switch (h.type) {
	case FB_DNS_A:
	case FB_DNS_AAAA: {
		size_t want = h.type == FB_DNS_A ? 4 : 16;

		if (h.rdlen != want) {
			*why = "address record of the wrong length";
			return -1;
		}
		rr->addr.family = h.type == FB_DNS_A ? AF_INET : AF_INET6;
		memcpy(rr->addr.b, r->p + h.rdata, want);
		break;
	}
	case FB_DNS_CNAME: {
		struct rd in = { r->p, h.rdata + h.rdlen, h.rdata };
		struct name target;

		if (read_name(&in, true, &target, why) < 0)
			return -1;
		if (in.off != in.len) {
			*why = "CNAME data longer than its name";
			return -1;
		}
		if (!target.text_ok) {
			*why = "CNAME target is not a host name";
			return -1;
		}
		memcpy(rr->target, target.text, sizeof(rr->target));
		break;
	}
	default:
		break;
	}
	return 0;
}

int fb_dns_parse_response(const uint8_t *p, size_t len, struct fb_dns_msg *m,
			  struct fb_dns_rr *an, size_t *nan, const char **why)
{
	struct rd r = { p, len, 0 };
	uint16_t count[4];

	memset(m, 0, sizeof(*m));
	*nan = 0;
	if (len < FB_DNS_HEADER_LEN) {
		*why = "shorter than a DNS header";
		return -1;
	}
	read_header(&r, m, count);
	if (!(m->flags & FB_DNS_QR)) {
		*why = "not a response";
		return -1;
	}
	if (count[0] > 1) {
		*why = "more than one question";
		return -1;
	}
	if (count[0] == 1 && read_question(&r, true, m, why) < 0)
		return -1;
	if (count[1] > FB_DNS_MAX_RR) {
		*why = "more answer records than one answer may hold";
		return -1;
	}
	for (uint16_t i = 0; i < count[1]; i++)
		if (read_answer(&r, &an[(*nan)++], why) < 0)
			return -1;
	for (unsigned i = 0; i < (unsigned)count[2] + count[3]; i++) {
		struct rr_head h;

		if (read_rr(&r, &h, why) < 0)
			return -1;
	}
	if (r.off != len) {
		*why = "bytes after the last record";
		return -1;
	}
	return 0;
}

/* ---- building ---------------------------------------------------------- */

struct wr {
	uint8_t *p;
	size_t len, cap;
	bool full; /* something did not fit */
};

static void put(struct wr *w, const void *src, size_t n)
{
	if (w->full || w->cap - w->len < n) {
		w->full = true;
		return;
	}
	memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void put16(struct wr *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	put(w, b, 2);
}

static void put32(struct wr *w, uint32_t v)
{
	put16(w, (uint16_t)(v >> 16));
	put16(w, (uint16_t)v);
}

/* A name as text, as a pointer to the question when it is that name. */
static int put_name(struct wr *w, const struct fb_dns_msg *q, const char *text,
		    const char **why)
{
	size_t total = 1;

	if (q->has_question && q->qname_text && strcasecmp(text, q->qname) == 0) {
		put16(w, 0xc000 | FB_DNS_HEADER_LEN);
		return 0;
	}
	for (const char *s = text; *s;) {
		size_t n = strcspn(s, ".");

		if (n == 0 || n > 63) {
			*why = n ? "label longer than 63 octets" : "empty label";
			return -1;
		}
		total += 1 + n;
		if (total > FB_DNS_NAME_WIRE_MAX) {
			*why = "name longer than 255 octets";
			return -1;
		}
		uint8_t l = (uint8_t)n;
		put(w, &l, 1);
		put(w, s, n);
		s += n;
		if (*s == '.' && *++s == '\0') {
			*why = "empty label";
			return -1;
		}
	}
	put(w, "", 1);
	return 0;
}

static int put_rr(struct wr *w, const struct fb_dns_msg *q,
		  const struct fb_dns_rr *rr, const char **why)
{
	if (put_name(w, q, rr->name, why) < 0)
		return -1;
	put16(w, rr->type);
	put16(w, FB_DNS_CLASS_IN);
	put32(w, rr->ttl);
	switch (rr->type) {
	case FB_DNS_A:
	case FB_DNS_AAAA: {
		int family = rr->type == FB_DNS_A ? AF_INET : AF_INET6;
		uint16_t n = rr->type == FB_DNS_A ? 4 : 16;

		if (rr->addr.family != family) {
			*why = "address family does not match the record type";
			return -1;
		}
		put16(w, n);
		put(w, rr->addr.b, n);
		return 0;
	}
	case FB_DNS_CNAME: {
		size_t at = w->len;

		put16(w, 0); /* length, patched below */
		if (put_name(w, q, rr->target, why) < 0)
			return -1;
		if (!w->full) {
			size_t n = w->len - at - 2;

			w->p[at] = (uint8_t)(n >> 8);
			w->p[at + 1] = (uint8_t)n;
		}
		return 0;
	}
	default:
		*why = "record type this builder does not write";
		return -1;
	}
}

static int assemble(struct wr *w, const struct fb_dns_msg *q, int rcode,
		    const struct fb_dns_rr *rr, size_t n, bool tc,
		    const char **why)
{
	uint16_t flags = FB_DNS_QR | (q->flags & (0xf << 11)) |
			 (q->flags & FB_DNS_RD) | FB_DNS_RA | (rcode & 0xf);

	if (tc)
		flags |= FB_DNS_TC;
	w->len = 0;
	w->full = false;
	put16(w, q->id);
	put16(w, flags);
	put16(w, q->has_question);
	put16(w, (uint16_t)n);
	put16(w, 0);
	put16(w, q->edns);
	if (q->has_question) {
		put(w, q->qwire, q->qwire_len);
		put16(w, q->qtype);
		put16(w, q->qclass);
	}
	for (size_t i = 0; i < n; i++)
		if (put_rr(w, q, &rr[i], why) < 0)
			return -1;
	if (q->edns) {
		put(w, "", 1);
		put16(w, FB_DNS_OPT);
		put16(w, FB_DNS_UDP_MAX);
		put32(w, 0);
		put16(w, 0);
	}
	return 0;
}

ssize_t fb_dns_build_reply(const struct fb_dns_msg *q, int rcode,
			   const struct fb_dns_rr *rr, size_t n, uint8_t *buf,
			   size_t limit, const char **why)
{
	struct wr w = { buf, 0, limit, false };

	if (n > FB_DNS_MAX_RR) {
		*why = "more records than one answer may hold";
		return -1;
	}
	if (assemble(&w, q, rcode, rr, n, false, why) < 0)
		return -1;
	if (w.full && n > 0 && assemble(&w, q, rcode, NULL, 0, true, why) < 0)
		return -1;
	if (w.full) {
		*why = "reply does not fit even without records";
		return -1;
	}
	return (ssize_t)w.len;
}

const char *fb_dns_type_str(uint16_t type)
{
	switch (type) {
	case FB_DNS_A:
		return "A";
	case FB_DNS_CNAME:
		return "CNAME";
	case FB_DNS_TXT:
		return "TXT";
	case FB_DNS_AAAA:
		return "AAAA";
	case FB_DNS_OPT:
		return "OPT";
	case FB_DNS_SVCB:
		return "SVCB";
	case FB_DNS_HTTPS:
		return "HTTPS";
	default:
		return NULL;
	}
}

const char *fb_dns_rcode_str(int rcode)
{
	static const char *const names[] = {
		"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
	};

	if (rcode >= 0 && rcode < (int)(sizeof(names) / sizeof(names[0])))
		return names[rcode];
	return "RCODE?";
}
