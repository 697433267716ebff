/* test_dns_msg.c — DNS messages: queries from c-ares (an independent
 * encoder) parse to what was asked; replies we build read back, through
 * our parser and through c-ares'; every malformed query is named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <ares.h>
#include <netdb.h>

#include "proxy/dns.h"

/* ---- a hand encoder for the bytes c-ares would never send -------------- */

struct pkt {
	uint8_t b[1024];
	size_t n;
};

static void p16(struct pkt *p, uint16_t v)
{
	p->b[p->n++] = (uint8_t)(v >> 8);
	p->b[p->n++] = (uint8_t)v;
}

static void pbytes(struct pkt *p, const void *s, size_t n)
{
	memcpy(p->b + p->n, s, n);
	p->n += n;
}

static void header(struct pkt *p, uint16_t flags, uint16_t qd, uint16_t an,
		   uint16_t ns, uint16_t ar)
{
	p->n = 0;
	p16(p, 0x1234);
	p16(p, flags);
	p16(p, qd);
	p16(p, an);
	p16(p, ns);
	p16(p, ar);
}

/* "\3www\7example\3com" style: the caller gives the wire bytes. */
static void question(struct pkt *p, const char *wire, size_t n, uint16_t type,
		     uint16_t class)
{
	pbytes(p, wire, n);
	p16(p, type);
	p16(p, class);
}

#define WWW "\3www\7example\3com"

static void good_query(struct pkt *p)
{
	header(p, FB_DNS_RD, 1, 0, 0, 0);
	question(p, WWW, sizeof(WWW), FB_DNS_A, FB_DNS_CLASS_IN);
}

/* ---- queries ----------------------------------------------------------- */

static void parse_ares_query(const char *name, int type, int edns,
			     struct fb_dns_msg *q)
{
	unsigned char *buf;
	int len;
	const char *why = NULL;

	assert_int_equal(ares_create_query(name, FB_DNS_CLASS_IN, type, 0xbeef, 1, &buf,
					   &len, edns), ARES_SUCCESS);
	assert_int_equal(fb_dns_parse_query(buf, (size_t)len, q, &why), FB_DNS_NOERROR);
	ares_free_string(buf);
}

static void test_query_from_cares(void **state)
{
	struct fb_dns_msg q;

	(void)state;
	parse_ares_query("Www.Example.COM", FB_DNS_AAAA, 0, &q);
	assert_int_equal(q.id, 0xbeef);
	assert_true(q.flags & FB_DNS_RD);
	assert_true(q.has_question);
	assert_true(q.qname_text);
	assert_string_equal(q.qname, "Www.Example.COM"); /* as sent: normalising is the server's */
	assert_int_equal(q.qtype, FB_DNS_AAAA);
	assert_int_equal(q.qclass, FB_DNS_CLASS_IN);
	assert_false(q.edns);
	assert_int_equal(fb_dns_udp_limit(&q), 512);

	/* With EDNS: the OPT record is read, its size honoured up to ours. */
	parse_ares_query("a.b", FB_DNS_HTTPS, 4096, &q);
	assert_int_equal(q.qtype, FB_DNS_HTTPS);
	assert_true(q.edns);
	assert_int_equal(q.edns_size, 4096);
	assert_int_equal(fb_dns_udp_limit(&q), FB_DNS_UDP_MAX);
}

static void test_query_odd_label_bytes(void **state)
{
	struct pkt p;
	struct fb_dns_msg q;
	const char *why;
	static const char dotted[] = "\3a.b\7example\3com"; /* a dot inside a label */
	static const char service[] = "\4_sip\4_tcp\1x";

	(void)state;
	header(&p, 0, 1, 0, 0, 0);
	question(&p, dotted, sizeof(dotted), FB_DNS_A, FB_DNS_CLASS_IN);
	assert_int_equal(fb_dns_parse_query(p.b, p.n, &q, &why), FB_DNS_NOERROR);
	assert_false(q.qname_text); /* "a.b.example.com" would be another name */
	assert_string_equal(q.qname, "");
	assert_int_equal(q.qwire_len, sizeof(dotted));

	header(&p, 0, 1, 0, 0, 0);
	question(&p, service, sizeof(service), FB_DNS_A, FB_DNS_CLASS_IN);
	assert_int_equal(fb_dns_parse_query(p.b, p.n, &q, &why), FB_DNS_NOERROR);
	assert_true(q.qname_text);
	assert_string_equal(q.qname, "_sip._tcp.x");

	/* The root. */
	header(&p, 0, 1, 0, 0, 0);
	question(&p, "", 1, FB_DNS_A, FB_DNS_CLASS_IN);
	assert_int_equal(fb_dns_parse_query(p.b, p.n, &q, &why), FB_DNS_NOERROR);
	assert_string_equal(q.qname, "");
}

/* Each case: the bytes, what the parser must say, a word of the reason. */
static void expect(const struct pkt *p, int rc, const char *why_part)
{
	struct fb_dns_msg q;
	const char *why = NULL;
	int got = fb_dns_parse_query(p->b, p->n, &q, &why);

	if (got != rc)
		fail_msg("expected %d (%s), got %d (%s)", rc, why_part ? why_part : "-",
			 got, why ? why : "-");
	if (why_part) {
		assert_non_null(why);
		if (!strstr(why, why_part))
			fail_msg("reason \"%s\" lacks \"%s\"", why, why_part);
	}
	if (rc > 0) /* an error reply can be built for it */
		assert_int_equal(q.id, 0x1234);
}

static void test_query_malformed(void **state)
{
	struct pkt p;
	char name[300];
	size_t n;

	(void)state;
	/* Not answerable at all: too short, or a response. */
	good_query(&p);
	p.n = 11;
	expect(&p, -1, NULL);
	good_query(&p);
	p.b[2] |= 0x80;
	expect(&p, -1, NULL);

	/* Opcode STATUS. */
	good_query(&p);
	p.b[2] |= 2 << 3;
	expect(&p, FB_DNS_NOTIMP, "opcode");

	/* Zero questions, two questions. */
	header(&p, 0, 0, 0, 0, 0);
	expect(&p, FB_DNS_FORMERR, "exactly one question");
	header(&p, 0, 2, 0, 0, 0);
	question(&p, WWW, sizeof(WWW), FB_DNS_A, FB_DNS_CLASS_IN);
	question(&p, WWW, sizeof(WWW), FB_DNS_A, FB_DNS_CLASS_IN);
	expect(&p, FB_DNS_FORMERR, "exactly one question");

	/* Answer records, two additional records. */
	good_query(&p);
	p.b[7] = 1;
	expect(&p, FB_DNS_FORMERR, "answer or authority");
	good_query(&p);
	p.b[11] = 2;
	expect(&p, FB_DNS_FORMERR, "more than one additional");

	/* A label of 64: its length byte has a label-type bit set. */
	header(&p, 0, 1, 0, 0, 0);
	p.b[p.n++] = 64;
	memset(p.b + p.n, 'a', 64);
	p.n += 64;
	p.b[p.n++] = 0;
	p16(&p, FB_DNS_A);
	p16(&p, FB_DNS_CLASS_IN);
	expect(&p, FB_DNS_FORMERR, "label type");

	/* Labels of 63, 63, 63 and 62 octets: 256 with the length octets. */
	for (n = 0; n < 3 * 64; n += 64) {
		name[n] = 63;
		memset(name + n + 1, 'a', 63);
	}
	name[n] = 62;
	memset(name + n + 1, 'b', 62);
	name[n + 63] = 0;
	header(&p, 0, 1, 0, 0, 0);
	question(&p, name, n + 64, FB_DNS_A, FB_DNS_CLASS_IN);
	expect(&p, FB_DNS_FORMERR, "longer than 255");
	/* ... one octet less (a 253-character name) is fine. */
	name[n] = 61;
	name[n + 62] = 0;
	header(&p, 0, 1, 0, 0, 0);
	question(&p, name, n + 63, FB_DNS_A, FB_DNS_CLASS_IN);
	expect(&p, FB_DNS_NOERROR, NULL);

	/* A compression pointer in the question, to the header. */
	header(&p, 0, 1, 0, 0, 0);
	question(&p, "\3www\xc0\x0c", 6, FB_DNS_A, FB_DNS_CLASS_IN);
	expect(&p, FB_DNS_FORMERR, "compression pointer");

	/* Cut short: in a label, before the type, in the type. */
	good_query(&p);
	p.n = FB_DNS_HEADER_LEN + 6;
	expect(&p, FB_DNS_FORMERR, "past the end");
	good_query(&p);
	p.n = FB_DNS_HEADER_LEN + sizeof(WWW) - 1;
	expect(&p, FB_DNS_FORMERR, "past the end");
	good_query(&p);
	p.n -= 3;
	expect(&p, FB_DNS_FORMERR, "cut short");

	/* Class CH (version.bind and friends). */
	header(&p, 0, 1, 0, 0, 0);
	question(&p, WWW, sizeof(WWW), FB_DNS_TXT, 3);
	expect(&p, FB_DNS_FORMERR, "class");

	/* Trailing garbage. */
	good_query(&p);
	pbytes(&p, "\0", 1);
	expect(&p, FB_DNS_FORMERR, "after the last record");

	/* An additional record that is not OPT; an OPT not at the root. */
	good_query(&p);
	p.b[11] = 1;
	pbytes(&p, "\0", 1);
	p16(&p, FB_DNS_A);
	p16(&p, FB_DNS_CLASS_IN);
	pbytes(&p, "\0\0\0\0\0\4\1\2\3\4", 10);
	expect(&p, FB_DNS_FORMERR, "not an EDNS OPT");
	good_query(&p);
	p.b[11] = 1;
	pbytes(&p, "\1x\0", 3);
	p16(&p, FB_DNS_OPT);
	pbytes(&p, "\x10\0\0\0\0\0\0\0", 8);
	expect(&p, FB_DNS_FORMERR, "not an EDNS OPT");

	/* An OPT whose data runs past the end. */
	good_query(&p);
	p.b[11] = 1;
	pbytes(&p, "\0", 1);
	p16(&p, FB_DNS_OPT);
	pbytes(&p, "\x10\0\0\0\0\0\0\x08\0\0", 10);
	expect(&p, FB_DNS_FORMERR, "past the end");
}

/* ---- replies ----------------------------------------------------------- */

static struct fb_dns_rr addr_rr(const char *name, const char *ip, uint32_t ttl)
{
	struct fb_dns_rr rr;

	memset(&rr, 0, sizeof(rr));
	strcpy(rr.name, name);
	assert_int_equal(fb_addr_parse(ip, &rr.addr), 0);
	rr.type = rr.addr.family == AF_INET ? FB_DNS_A : FB_DNS_AAAA;
	rr.ttl = ttl;
	return rr;
}

static void test_reply_round_trip(void **state)
{
	struct pkt p;
	struct fb_dns_msg q, m;
	struct fb_dns_rr rr[3], an[FB_DNS_MAX_RR];
	size_t nan;
	uint8_t buf[512];
	const char *why = NULL;
	ssize_t len;
	struct hostent *he = NULL;
	struct ares_addrttl ttls[4];
	int nttls = 4;

	(void)state;
	header(&p, FB_DNS_RD, 1, 0, 0, 0);
	question(&p, "\3WwW\7eXample\3com", sizeof(WWW), FB_DNS_A, FB_DNS_CLASS_IN);
	assert_int_equal(fb_dns_parse_query(p.b, p.n, &q, &why), 0);

	rr[0] = addr_rr("www.example.com", "1.2.3.4", 60);
	rr[1] = addr_rr("www.example.com", "5.6.7.8", 60);
	memset(&rr[2], 0, sizeof(rr[2]));
	strcpy(rr[2].name, "www.example.com");
	rr[2].type = FB_DNS_CNAME;
	rr[2].ttl = 7;
	strcpy(rr[2].target, "other.example.net");
	len = fb_dns_build_reply(&q, FB_DNS_NOERROR, rr, 3, buf, sizeof(buf), &why);
	assert_true(len > 0);

	/* The question comes back byte for byte (0x20 case intact), and each
	 * record's name is a pointer to it. */
	assert_memory_equal(buf + FB_DNS_HEADER_LEN, "\3WwW\7eXample\3com", sizeof(WWW));
	assert_int_equal(buf[FB_DNS_HEADER_LEN + sizeof(WWW) + 4], 0xc0);
	assert_int_equal(buf[FB_DNS_HEADER_LEN + sizeof(WWW) + 5], FB_DNS_HEADER_LEN);

	assert_int_equal(fb_dns_parse_response(buf, (size_t)len, &m, an, &nan, &why), 0);
	assert_int_equal(m.id, 0x1234);
	assert_true(m.flags & FB_DNS_QR);
	assert_true(m.flags & FB_DNS_RD);
	assert_true(m.flags & FB_DNS_RA);
	assert_int_equal(FB_DNS_RCODE(m.flags), FB_DNS_NOERROR);
	assert_string_equal(m.qname, "WwW.eXample.com");
	assert_int_equal(nan, 3);
	assert_int_equal(an[1].type, FB_DNS_A);
	assert_memory_equal(an[1].addr.b, "\5\6\7\10", 4);
	assert_int_equal(an[1].ttl, 60);
	assert_string_equal(an[2].target, "other.example.net");
	assert_int_equal(an[2].ttl, 7);

	/* c-ares reads the same addresses (their TTL capped by the CNAME's). */
	assert_int_equal(ares_parse_a_reply(buf, (int)len, &he, ttls, &nttls), ARES_SUCCESS);
	assert_int_equal(nttls, 2);
	assert_memory_equal(&ttls[0].ipaddr, "\1\2\3\4", 4);
	assert_memory_equal(&ttls[1].ipaddr, "\5\6\7\10", 4);
	assert_int_equal(ttls[0].ttl, 7);
	ares_free_hostent(he);
}

static void test_reply_errors_and_edns(void **state)
{
	struct pkt p;
	struct fb_dns_msg q, m;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t nan;
	uint8_t buf[512];
	const char *why;
	ssize_t len;
	unsigned char *qb;
	int qlen;

	(void)state;
	/* FORMERR before the question was read: no question in the reply. */
	header(&p, 0, 2, 0, 0, 0);
	assert_int_equal(fb_dns_parse_query(p.b, p.n, &q, &why), FB_DNS_FORMERR);
	len = fb_dns_build_reply(&q, FB_DNS_FORMERR, NULL, 0, buf, sizeof(buf), &why);
	assert_int_equal(len, FB_DNS_HEADER_LEN);
	assert_int_equal(fb_dns_parse_response(buf, (size_t)len, &m, an, &nan, &why), 0);
	assert_int_equal(FB_DNS_RCODE(m.flags), FB_DNS_FORMERR);
	assert_false(m.has_question);

	/* An EDNS query gets an OPT back, and NXDOMAIN keeps the question. */
	assert_int_equal(ares_create_query("x.example", FB_DNS_CLASS_IN, FB_DNS_A, 7, 1, &qb, &qlen, 1232), 0);
	assert_int_equal(fb_dns_parse_query(qb, (size_t)qlen, &q, &why), 0);
	ares_free_string(qb);
	len = fb_dns_build_reply(&q, FB_DNS_NXDOMAIN, NULL, 0, buf, sizeof(buf), &why);
	assert_true(len > 0);
	assert_int_equal(fb_dns_parse_response(buf, (size_t)len, &m, an, &nan, &why), 0);
	assert_int_equal(FB_DNS_RCODE(m.flags), FB_DNS_NXDOMAIN);
	assert_string_equal(m.qname, "x.example");
	assert_int_equal(buf[11], 1); /* ARCOUNT: the OPT */
	assert_int_equal(buf[len - 11], 0);      /* root owner */
	assert_int_equal(buf[len - 10], 0);      /* type ... */
	assert_int_equal(buf[len - 9], FB_DNS_OPT);
}

static void test_reply_truncated(void **state)
{
	struct pkt p;
	struct fb_dns_msg q, m;
	struct fb_dns_rr rr[FB_DNS_MAX_RR], an[FB_DNS_MAX_RR];
	size_t nan;
	uint8_t buf[2048];
	const char *why;
	ssize_t len;
	char ip[64];

	(void)state;
	good_query(&p);
	assert_int_equal(fb_dns_parse_query(p.b, p.n, &q, &why), 0);
	for (int i = 0; i < FB_DNS_MAX_RR; i++) {
		snprintf(ip, sizeof(ip), "2001:4860::%x", i + 1);
		rr[i] = addr_rr("www.example.com", ip, 30);
	}
	/* 32 AAAA records are 896 octets: over 512, so TC and no records. */
	len = fb_dns_build_reply(&q, 0, rr, FB_DNS_MAX_RR, buf, fb_dns_udp_limit(&q), &why);
	assert_true(len > 0 && len <= 512);
	assert_int_equal(fb_dns_parse_response(buf, (size_t)len, &m, an, &nan, &why), 0);
	assert_true(m.flags & FB_DNS_TC);
	assert_int_equal(nan, 0);
	/* Over TCP they fit. */
	len = fb_dns_build_reply(&q, 0, rr, FB_DNS_MAX_RR, buf, sizeof(buf), &why);
	assert_int_equal(fb_dns_parse_response(buf, (size_t)len, &m, an, &nan, &why), 0);
	assert_false(m.flags & FB_DNS_TC);
	assert_int_equal(nan, FB_DNS_MAX_RR);
	assert_memory_equal(an[31].addr.b, rr[31].addr.b, 16);
	/* A record that cannot be encoded is an error, not a half reply. */
	rr[0] = addr_rr("www.example.com", "1.2.3.4", 30);
	rr[0].type = FB_DNS_AAAA;
	assert_int_equal(fb_dns_build_reply(&q, 0, rr, 1, buf, sizeof(buf), &why), -1);
	assert_non_null(strstr(why, "family"));
	rr[0] = addr_rr("x..y", "1.2.3.4", 30);
	assert_int_equal(fb_dns_build_reply(&q, 0, rr, 1, buf, sizeof(buf), &why), -1);
	assert_non_null(strstr(why, "empty label"));
}

/* ---- responses: compression pointers ----------------------------------- */

/* A response to WWW with one A record whose owner is `owner` (wire). */
static void response_with_owner(struct pkt *p, const char *owner, size_t n)
{
	header(p, FB_DNS_QR, 1, 1, 0, 0);
	question(p, WWW, sizeof(WWW), FB_DNS_A, FB_DNS_CLASS_IN);
	pbytes(p, owner, n);
	p16(p, FB_DNS_A);
	p16(p, FB_DNS_CLASS_IN);
	pbytes(p, "\0\0\0\x3c\0\4\1\2\3\4", 10);
}

static void test_response_pointers(void **state)
{
	struct pkt p;
	struct fb_dns_msg m;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t nan, at;
	const char *why = NULL;

	(void)state;
	/* A pointer to a suffix of the question. */
	response_with_owner(&p, "\4mail\xc0\x10", 7);
	assert_int_equal(fb_dns_parse_response(p.b, p.n, &m, an, &nan, &why), 0);
	assert_string_equal(an[0].name, "mail.example.com");

	/* A pointer to itself. */
	at = FB_DNS_HEADER_LEN + sizeof(WWW) + 4;
	response_with_owner(&p, "\xc0\x00", 2);
	p.b[at + 1] = (uint8_t)at;
	assert_int_equal(fb_dns_parse_response(p.b, p.n, &m, an, &nan, &why), -1);
	assert_non_null(strstr(why, "backwards"));

	/* Two names pointing at each other: "\1a" -> the second, which
	 * points back at the first. */
	response_with_owner(&p, "\1a\xc0\x00", 4);
	p.b[at + 3] = (uint8_t)(at + 4 + 10 - 10); /* forward: past itself */
	assert_int_equal(fb_dns_parse_response(p.b, p.n, &m, an, &nan, &why), -1);
	assert_non_null(strstr(why, "backwards"));
	response_with_owner(&p, "\1a\xc0\x00", 4);
	p.b[at + 3] = (uint8_t)at; /* into its own labels */
	assert_int_equal(fb_dns_parse_response(p.b, p.n, &m, an, &nan, &why), -1);
	assert_non_null(strstr(why, "backwards"));

	/* A pointer cut short at the end of the message. */
	response_with_owner(&p, "\xc0", 1);
	p.n = at + 1;
	assert_int_equal(fb_dns_parse_response(p.b, p.n, &m, an, &nan, &why), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_from_cares),
		cmocka_unit_test(test_query_odd_label_bytes),
		cmocka_unit_test(test_query_malformed),
		cmocka_unit_test(test_reply_round_trip),
		cmocka_unit_test(test_reply_errors_and_edns),
		cmocka_unit_test(test_reply_truncated),
		cmocka_unit_test(test_response_pointers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
