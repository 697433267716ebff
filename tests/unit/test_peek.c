/*
 * test_peek.c — the peek state machine on real OpenSSL ClientHellos, on
 * hand-built ones (each malformation on its own), on HTTP heads and on
 * Postgres SSLRequests, fed whole, byte by byte and re-split into TLS
 * records of 1 byte and of other sizes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "proxy/peek.h"

#define HELLO_CAP 400000

struct bytes {
	uint8_t *b;
	size_t len;
};

static struct bytes bytes_new(void)
{
	struct bytes x = { malloc(HELLO_CAP), 0 };

	assert_non_null(x.b);
	return x;
}

static void put(struct bytes *x, const void *p, size_t n)
{
	assert_true(x->len + n <= HELLO_CAP);
	memcpy(x->b + x->len, p, n);
	x->len += n;
}

static void put8(struct bytes *x, unsigned v)
{
	uint8_t b = (uint8_t)v;

	put(x, &b, 1);
}

static void put16(struct bytes *x, unsigned v)
{
	put8(x, v >> 8);
	put8(x, v);
}

static void put24(struct bytes *x, unsigned v)
{
	put8(x, v >> 16);
	put16(x, v & 0xffff);
}

/* ------------------------------------------------------------------ */
/* Building ClientHellos                                               */
/* ------------------------------------------------------------------ */

struct ext {
	unsigned type;
	const void *data;
	size_t len;
};

struct hello_opts {
	unsigned msg_type;      /* 0: ClientHello (1) */
	unsigned version;       /* 0: 0x0303 */
	size_t sid_len;         /* 0..255 */
	size_t cs_len;          /* 0: 4 */
	bool no_extensions;     /* omit the extensions block */
	int exts_len_delta;     /* added to the extensions block length */
	const uint8_t *trailer; /* bytes after the extensions, inside the message */
	size_t trailer_len;
};

/* A ClientHello handshake message (no record header). */
static struct bytes build_hello(const struct hello_opts *o,
				const struct ext *exts, size_t n)
{
	struct bytes m = bytes_new();
	size_t len_at, exts_at, total = 0;
	uint8_t zero[256] = { 0 };

	put8(&m, o->msg_type ? o->msg_type : 1);
	len_at = m.len;
	put24(&m, 0);
	put16(&m, o->version ? o->version : 0x0303);
	put(&m, zero, 32);
	put8(&m, (unsigned)o->sid_len);
	put(&m, zero, o->sid_len);
	put16(&m, (unsigned)(o->cs_len ? o->cs_len : 4));
	for (size_t i = 0; i < (o->cs_len ? o->cs_len : 4); i++)
		put8(&m, i % 2 ? 0x01 : 0x13);
	put8(&m, 1);
	put8(&m, 0);
	if (!o->no_extensions) {
		exts_at = m.len;
		put16(&m, 0);
		for (size_t i = 0; i < n; i++) {
			put16(&m, exts[i].type);
			put16(&m, (unsigned)exts[i].len);
			put(&m, exts[i].data, exts[i].len);
			total += 4 + exts[i].len;
		}
		m.b[exts_at] = (uint8_t)((total + (size_t)o->exts_len_delta) >> 8);
		m.b[exts_at + 1] = (uint8_t)(total + (size_t)o->exts_len_delta);
	}
	if (o->trailer_len)
		put(&m, o->trailer, o->trailer_len);
	m.b[len_at] = (uint8_t)((m.len - 4) >> 16);
	m.b[len_at + 1] = (uint8_t)((m.len - 4) >> 8);
	m.b[len_at + 2] = (uint8_t)(m.len - 4);
	return m;
}

/* server_name extension data: a list of (type, name) entries. */
static size_t sni_data(uint8_t *out, const char *const *names, size_t n,
		       const size_t *lens)
{
	size_t off = 2;

	for (size_t i = 0; i < n; i++) {
		size_t l = lens ? lens[i] : strlen(names[i]);

		out[off++] = 0;
		out[off++] = (uint8_t)(l >> 8);
		out[off++] = (uint8_t)l;
		memcpy(out + off, names[i], l);
		off += l;
	}
	out[0] = (uint8_t)((off - 2) >> 8);
	out[1] = (uint8_t)(off - 2);
	return off;
}

/* The handshake bytes framed into records of `size` bytes (the last may
 * be shorter); size 0 cycles through odd sizes. */
static struct bytes frame(const struct bytes *msg, size_t size)
{
	static const size_t cycle[] = { 1, 7, 300, 2, 16384, 3, 5000 };
	struct bytes r = bytes_new();
	size_t k = 0;

	for (size_t off = 0; off < msg->len; k++) {
		size_t n = size ? size : cycle[k % 7];

		if (n > msg->len - off)
			n = msg->len - off;
		put8(&r, 22);
		put16(&r, k ? 0x0303 : 0x0301);
		put16(&r, (unsigned)n);
		put(&r, msg->b + off, n);
		off += n;
	}
	return r;
}

/* The handshake bytes inside a record-framed stream. */
static struct bytes deframe(const struct bytes *rec)
{
	struct bytes m = bytes_new();

	for (size_t off = 0; off + 5 <= rec->len;) {
		size_t n = (size_t)rec->b[off + 3] << 8 | rec->b[off + 4];

		assert_int_equal(rec->b[off], 22);
		assert_true(off + 5 + n <= rec->len);
		put(&m, rec->b + off + 5, n);
		off += 5 + n;
	}
	return m;
}

/* A real ClientHello from OpenSSL: sni and alpn may be NULL. */
static struct bytes openssl_hello(const char *sni, const unsigned char *alpn,
				  unsigned alpn_len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	BIO *rbio, *wbio;
	struct bytes x = bytes_new();
	int n;

	assert_non_null(ctx);
	ssl = SSL_new(ctx);
	assert_non_null(ssl);
	rbio = BIO_new(BIO_s_mem());
	wbio = BIO_new(BIO_s_mem());
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_connect_state(ssl);
	if (sni)
		assert_int_equal(SSL_set_tlsext_host_name(ssl, sni), 1);
	if (alpn)
		assert_int_equal(SSL_set_alpn_protos(ssl, alpn, alpn_len), 0);
	assert_int_equal(SSL_do_handshake(ssl), -1);
	n = BIO_read(wbio, x.b, HELLO_CAP);
	assert_true(n > 100);
	x.len = (size_t)n;
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return x;
}

/* The server name OpenSSL's own server reads from the same bytes: the
 * brokered path terminates TLS with OpenSSL, and the two must agree. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	(void)alert;
	snprintf(arg, FB_NAME_MAX, "%s", sni ? sni : "");
	return SSL_TLSEXT_ERR_ALERT_FATAL; /* the rest is not under test */
}

static bool openssl_reads(const struct bytes *rec, char name[FB_NAME_MAX])
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *ssl;
	BIO *in;

	name[0] = '\x01'; /* not a name: the callback did not run */
	assert_non_null(ctx);
	SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
	SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
	SSL_CTX_set_tlsext_servername_arg(ctx, name);
	ssl = SSL_new(ctx);
	in = BIO_new_mem_buf(rec->b, (int)rec->len);
	assert_non_null(ssl);
	assert_non_null(in);
	SSL_set_bio(ssl, in, BIO_new(BIO_s_mem()));
	SSL_set_accept_state(ssl);
	assert_int_equal(SSL_do_handshake(ssl), -1);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return name[0] != '\x01';
}

/* A name the peek reads, OpenSSL reads too, up to normalisation. */
static void assert_openssl_agrees(const struct bytes *rec, const struct fb_peek *p)
{
	char raw[FB_NAME_MAX], norm[FB_NAME_MAX];
	const char *why;

	if (p->reason != FB_PEEK_NAMED)
		return;
	assert_true(openssl_reads(rec, raw));
	assert_int_equal(fb_peek_name(raw, strlen(raw), norm, &why), FB_PEEK_NAMED);
	assert_string_equal(norm, p->name);
}

/* ------------------------------------------------------------------ */
/* Feeding                                                             */
/* ------------------------------------------------------------------ */

static enum fb_peek_status feed_whole(struct fb_peek *p, const struct bytes *in)
{
	uint8_t *b = malloc(in->len ? in->len : 1);
	enum fb_peek_status st;

	assert_non_null(b);
	memcpy(b, in->b, in->len);
	fb_peek_init(p);
	st = fb_peek_feed(p, b, in->len);
	free(b);
	return st;
}

/* One byte more per call, each call on a buffer of exactly that size at a
 * new address: the peek may keep no pointer into an earlier buffer. */
static enum fb_peek_status feed_bytewise(struct fb_peek *p, const struct bytes *in)
{
	enum fb_peek_status st = FB_PEEK_NEED_MORE;

	fb_peek_init(p);
	for (size_t k = 1; k <= in->len && st == FB_PEEK_NEED_MORE; k++) {
		uint8_t *b = malloc(k);

		assert_non_null(b);
		memcpy(b, in->b, k);
		st = fb_peek_feed(p, b, k);
		free(b);
	}
	return st;
}

static void assert_same(const struct fb_peek *a, const struct fb_peek *b)
{
	assert_int_equal(a->proto, b->proto);
	assert_int_equal(a->reason, b->reason);
	assert_string_equal(a->name, b->name);
	assert_int_equal(a->ech, b->ech);
	assert_string_equal(a->alpn, b->alpn);
}

/*
 * Frame msg into one record, 1-byte records and a mix of sizes; feed each
 * whole and byte by byte; all must give the same DONE verdict, which is
 * returned in *out.
 */
static void peek_all_ways(const struct bytes *msg, struct fb_peek *out)
{
	static const size_t sizes[] = { 16384, 1, 0, 2 };
	struct fb_peek other;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct bytes rec = frame(msg, sizes[i]);

		if (rec.len > FB_PEEK_MAX) {
			free(rec.b);
			continue;
		}
		assert_int_equal(feed_whole(i ? &other : out, &rec), FB_PEEK_DONE);
		if (i)
			assert_same(out, &other);
		assert_int_equal(feed_bytewise(&other, &rec), FB_PEEK_DONE);
		assert_same(out, &other);
		assert_openssl_agrees(&rec, out);
		free(rec.b);
	}
}

static void expect_sni(const char *name, size_t len, enum fb_peek_reason want,
		       const char *want_name)
{
	uint8_t data[600];
	const char *names[] = { name };
	struct ext e = { 0, data, 0 };
	struct hello_opts o = { 0 };
	struct bytes m;
	struct fb_peek p;

	assert_true(len < 590);
	e.len = sni_data(data, names, 1, &len);
	m = build_hello(&o, &e, 1);
	peek_all_ways(&m, &p);
	if (p.reason != want)
		fail_msg("SNI \"%.*s\": %s (%s), want %s", (int)len, name,
			 fb_peek_reason_str(p.reason), p.why ? p.why : "",
			 fb_peek_reason_str(want));
	assert_int_equal(p.proto, FB_PEEK_TLS);
	assert_string_equal(p.name, want_name);
	free(m.b);
}

/* ------------------------------------------------------------------ */
/* TLS                                                                 */
/* ------------------------------------------------------------------ */

static void test_openssl_hello(void **state)
{
	static const unsigned char alpn[] = "\x02h2\x08http/1.1";
	struct bytes rec = openssl_hello("Api.Example.COM.", alpn, sizeof(alpn) - 1);
	struct bytes msg = deframe(&rec);
	struct fb_peek p, q;

	(void)state;
	assert_int_equal(feed_whole(&p, &rec), FB_PEEK_DONE);
	assert_int_equal(p.proto, FB_PEEK_TLS);
	assert_int_equal(p.reason, FB_PEEK_NAMED);
	assert_string_equal(p.name, "api.example.com");
	assert_string_equal(p.alpn, "h2,http/1.1");
	assert_false(p.ech);
	assert_openssl_agrees(&rec, &p);
	assert_int_equal(feed_bytewise(&q, &rec), FB_PEEK_DONE);
	assert_same(&p, &q);
	peek_all_ways(&msg, &q);
	assert_same(&p, &q);
	/* one byte short of the hello is not enough, whichever way */
	rec.len--;
	assert_int_equal(feed_whole(&q, &rec), FB_PEEK_NEED_MORE);
	assert_int_equal(feed_bytewise(&q, &rec), FB_PEEK_NEED_MORE);
	free(rec.b);
	free(msg.b);

	rec = openssl_hello(NULL, NULL, 0);
	assert_int_equal(feed_whole(&p, &rec), FB_PEEK_DONE);
	assert_int_equal(p.reason, FB_PEEK_NO_SNI);
	assert_string_equal(p.name, "");
	free(rec.b);
}

static void test_sni_names(void **state)
{
	static const char long_label[] =
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com";
	char big[300];

	(void)state;
	expect_sni("example.com", 11, FB_PEEK_NAMED, "example.com");
	expect_sni("xn--caf-dma.example", 19, FB_PEEK_NAMED, "xn--caf-dma.example");
	expect_sni("127.0.0.1", 9, FB_PEEK_IP_LITERAL, "");
	expect_sni("2130706433", 10, FB_PEEK_IP_LITERAL, "");
	expect_sni("0x7f.1", 6, FB_PEEK_IP_LITERAL, "");
	expect_sni("10.0.0.0X", 9, FB_PEEK_IP_LITERAL, "");
	expect_sni("127.1", 5, FB_PEEK_IP_LITERAL, "");
	expect_sni("1.2.3.4.", 8, FB_PEEK_IP_LITERAL, "");
	expect_sni("::1", 3, FB_PEEK_IP_LITERAL, "");
	expect_sni("[2001:db8::1]", 13, FB_PEEK_IP_LITERAL, "");
	expect_sni("allowed.com\0.evil.com", 21, FB_PEEK_NON_LDH, "");
	expect_sni("a\x07.com", 6, FB_PEEK_NON_LDH, "");
	expect_sni("a\x1b[31m.com", 10, FB_PEEK_NON_LDH, "");
	expect_sni("caf\xc3\xa9.com", 9, FB_PEEK_NON_LDH, "");
	expect_sni("a_b.example", 11, FB_PEEK_NON_LDH, "");
	expect_sni("a b.example", 11, FB_PEEK_NON_LDH, "");
	expect_sni(".", 1, FB_PEEK_BAD_NAME, "");
	expect_sni("..", 2, FB_PEEK_BAD_NAME, "");
	expect_sni("a..b", 4, FB_PEEK_BAD_NAME, "");
	expect_sni("-a.com", 6, FB_PEEK_BAD_NAME, "");
	expect_sni(long_label, sizeof(long_label) - 1, FB_PEEK_BAD_NAME, "");
	memset(big, 'a', sizeof(big));
	for (size_t i = 50; i < sizeof(big); i += 50)
		big[i] = '.';
	expect_sni(big, 254, FB_PEEK_BAD_NAME, "");
	expect_sni(big, 260, FB_PEEK_BAD_NAME, "");
	{
		char want[254];

		memcpy(want, big, 253);
		want[253] = '\0';
		expect_sni(big, 253, FB_PEEK_NAMED, want);
	}
}

/* A hello with the given extensions; verdict must agree every way. */
static void expect_exts(const struct hello_opts *o, const struct ext *e,
			size_t n, enum fb_peek_reason want)
{
	struct bytes m = build_hello(o, e, n);
	struct fb_peek p;

	peek_all_ways(&m, &p);
	if (p.reason != want)
		fail_msg("got %s (%s), want %s", fb_peek_reason_str(p.reason),
			 p.why ? p.why : "", fb_peek_reason_str(want));
	assert_int_equal(p.proto, FB_PEEK_TLS);
	if (want != FB_PEEK_NAMED)
		assert_string_equal(p.name, "");
	free(m.b);
}

static void test_sni_structure(void **state)
{
	const char *one[] = { "a.example" };
	const char *two[] = { "a.example", "b.example" };
	const char *same[] = { "a.example", "a.example" };
	uint8_t d1[64], d2[64], bad[64];
	size_t l1 = sni_data(d1, one, 1, NULL), l2;
	struct hello_opts o = { 0 };
	uint8_t alpn[] = { 0, 3, 2, 'h', '2' };

	(void)state;
	/* the baseline is accepted */
	expect_exts(&o, (struct ext[]){ { 0, d1, l1 } }, 1, FB_PEEK_NAMED);
	/* two server_name extensions (nginx takes the first, Squid the last) */
	l2 = sni_data(d2, (const char *[]){ "b.example" }, 1, NULL);
	expect_exts(&o, (struct ext[]){ { 0, d1, l1 }, { 0, d2, l2 } }, 2,
		    FB_PEEK_DUPLICATE_EXTENSION);
	/* any duplicate extension makes the hello ambiguous */
	expect_exts(&o, (struct ext[]){ { 0, d1, l1 }, { 16, alpn, 5 }, { 16, alpn, 5 } },
		    3, FB_PEEK_DUPLICATE_EXTENSION);
	expect_exts(&o, (struct ext[]){ { 0x1234, "", 0 }, { 0, d1, l1 }, { 0x1234, "", 0 } },
		    3, FB_PEEK_DUPLICATE_EXTENSION);
	/* two host_names in one list, different or equal */
	l2 = sni_data(d2, two, 2, NULL);
	expect_exts(&o, (struct ext[]){ { 0, d2, l2 } }, 1, FB_PEEK_MULTIPLE_HOST_NAMES);
	l2 = sni_data(d2, same, 2, NULL);
	expect_exts(&o, (struct ext[]){ { 0, d2, l2 } }, 1, FB_PEEK_MULTIPLE_HOST_NAMES);
	/* empty extension, empty list, empty name */
	expect_exts(&o, (struct ext[]){ { 0, "", 0 } }, 1, FB_PEEK_EMPTY_SNI);
	expect_exts(&o, (struct ext[]){ { 0, "\0\0", 2 } }, 1, FB_PEEK_EMPTY_SNI);
	expect_exts(&o, (struct ext[]){ { 0, "\0\3\0\0\0", 5 } }, 1, FB_PEEK_EMPTY_SNI);
	/* an entry of another name type first */
	memcpy(bad, d1, l1);
	bad[2] = 1;
	expect_exts(&o, (struct ext[]){ { 0, bad, l1 } }, 1, FB_PEEK_MALFORMED);
	/* trailing junk inside the extension, after the list */
	memcpy(bad, d1, l1);
	bad[l1] = 'x';
	expect_exts(&o, (struct ext[]){ { 0, bad, l1 + 1 } }, 1, FB_PEEK_MALFORMED);
	/* list length one short of the extension / one past it */
	memcpy(bad, d1, l1);
	bad[1]--;
	expect_exts(&o, (struct ext[]){ { 0, bad, l1 } }, 1, FB_PEEK_MALFORMED);
	bad[1] += 2;
	expect_exts(&o, (struct ext[]){ { 0, bad, l1 } }, 1, FB_PEEK_MALFORMED);
	/* name length past the list */
	memcpy(bad, d1, l1);
	bad[4]++;
	expect_exts(&o, (struct ext[]){ { 0, bad, l1 } }, 1, FB_PEEK_MALFORMED);
	/* no extensions at all: a valid TLS 1.2 hello without a name */
	o.no_extensions = true;
	expect_exts(&o, NULL, 0, FB_PEEK_NO_SNI);
}

static void test_hello_structure(void **state)
{
	const char *one[] = { "a.example" };
	uint8_t d1[64];
	struct ext sni = { 0, d1, sni_data(d1, one, 1, NULL) };
	static const uint8_t junk[] = { 1, 2, 3 };
	struct hello_opts o;

	(void)state;
	o = (struct hello_opts){ .msg_type = 2 };
	expect_exts(&o, &sni, 1, FB_PEEK_MALFORMED);
	o = (struct hello_opts){ .version = 0x0300 };
	expect_exts(&o, &sni, 1, FB_PEEK_MALFORMED);
	o = (struct hello_opts){ .version = 0x0304 };
	expect_exts(&o, &sni, 1, FB_PEEK_MALFORMED);
	o = (struct hello_opts){ .version = 0x0301 };
	expect_exts(&o, &sni, 1, FB_PEEK_NAMED);
	o = (struct hello_opts){ .sid_len = 32 };
	expect_exts(&o, &sni, 1, FB_PEEK_NAMED);
	o = (struct hello_opts){ .sid_len = 33 };
	expect_exts(&o, &sni, 1, FB_PEEK_MALFORMED);
	o = (struct hello_opts){ .cs_len = 3 };
	expect_exts(&o, &sni, 1, FB_PEEK_MALFORMED);
	o = (struct hello_opts){ .exts_len_delta = -1 };
	expect_exts(&o, &sni, 1, FB_PEEK_MALFORMED);
	o = (struct hello_opts){ .exts_len_delta = 1 };
	expect_exts(&o, &sni, 1, FB_PEEK_MALFORMED);
	o = (struct hello_opts){ .trailer = junk, .trailer_len = 3 };
	expect_exts(&o, &sni, 1, FB_PEEK_MALFORMED);
	/* an extension longer than what is left of the block */
	o = (struct hello_opts){ .exts_len_delta = 0 };
	{
		uint8_t d[64] = { 0 };
		struct ext e = { 0x5555, d, 10 };
		struct bytes m = build_hello(&o, &e, 1);
		struct fb_peek p;

		m.b[m.len - 11]++; /* the extension's length, low byte */
		peek_all_ways(&m, &p);
		assert_int_equal(p.reason, FB_PEEK_MALFORMED);
		free(m.b);
	}
}

static void test_ech_and_alpn(void **state)
{
	const char *one[] = { "public.example" };
	uint8_t d1[64], ech[40] = { 0 };
	static const uint8_t alpn[] = { 0, 12, 2, 'h', '2', 3, 'a', ',', 0x01,
					4, 'x', 0x7f, 0xff, ' ' };
	struct ext e[] = {
		{ 0, d1, sni_data(d1, one, 1, NULL) },
		{ 0xfe0d, ech, sizeof(ech) },
		{ 16, alpn, sizeof(alpn) },
	};
	struct hello_opts o = { 0 };
	struct bytes m = build_hello(&o, e, 3);
	struct fb_peek p;

	(void)state;
	peek_all_ways(&m, &p);
	assert_int_equal(p.reason, FB_PEEK_NAMED);
	assert_string_equal(p.name, "public.example");
	assert_true(p.ech);
	assert_string_equal(p.alpn, "h2,a??,x???");
	free(m.b);

	/* ECH does not rescue a missing outer name */
	m = build_hello(&o, e + 1, 1);
	peek_all_ways(&m, &p);
	assert_int_equal(p.reason, FB_PEEK_NO_SNI);
	assert_true(p.ech);
	free(m.b);

	/* an empty ALPN protocol name is malformed */
	struct ext bad = { 16, "\0\2\0\0", 4 };
	expect_exts(&o, &bad, 1, FB_PEEK_MALFORMED);
}

static void test_records(void **state)
{
	const char *one[] = { "a.example" };
	uint8_t d1[64];
	struct ext sni = { 0, d1, sni_data(d1, one, 1, NULL) };
	struct hello_opts o = { 0 };
	struct bytes m = build_hello(&o, &sni, 1), rec, x;
	struct fb_peek p;

	(void)state;
	/* an alert record before the hello */
	x = bytes_new();
	put(&x, "\x15\x03\x03\x00\x02\x02\x28", 7);
	rec = frame(&m, 0);
	put(&x, rec.b, rec.len);
	assert_int_equal(feed_whole(&p, &x), FB_PEEK_DONE);
	assert_int_equal(p.proto, FB_PEEK_UNKNOWN); /* first byte is not 22 */
	free(x.b);

	/* a ChangeCipherSpec record between two fragments */
	x = bytes_new();
	put(&x, rec.b, 6); /* 1-byte first record */
	put(&x, "\x14\x03\x03\x00\x01\x01", 6);
	put(&x, rec.b + 6, rec.len - 6);
	assert_int_equal(feed_whole(&p, &x), FB_PEEK_DONE);
	assert_int_equal(p.reason, FB_PEEK_BAD_RECORD);
	assert_int_equal(feed_bytewise(&p, &x), FB_PEEK_DONE);
	assert_int_equal(p.reason, FB_PEEK_BAD_RECORD);
	free(x.b);

	/* a zero-length handshake record */
	x = bytes_new();
	put(&x, "\x16\x03\x01\x00\x00", 5);
	put(&x, rec.b, rec.len);
	assert_int_equal(feed_whole(&p, &x), FB_PEEK_DONE);
	assert_int_equal(p.reason, FB_PEEK_BAD_RECORD);
	free(x.b);
	free(rec.b);

	/* record longer than 2^14; record version 3.4 and 2.x */
	rec = frame(&m, 16384);
	rec.b[3] = 0x40;
	rec.b[4] = 0x01;
	assert_int_equal(feed_whole(&p, &rec), FB_PEEK_DONE);
	assert_int_equal(p.reason, FB_PEEK_BAD_RECORD);
	rec.b[3] = 0;
	rec.b[4] = (uint8_t)m.len;
	rec.b[2] = 4;
	assert_int_equal(feed_whole(&p, &rec), FB_PEEK_DONE);
	assert_int_equal(p.reason, FB_PEEK_BAD_RECORD);
	rec.b[1] = 2;
	rec.b[2] = 3;
	assert_int_equal(feed_whole(&p, &rec), FB_PEEK_DONE);
	assert_int_equal(p.reason, FB_PEEK_BAD_RECORD);
	rec.b[1] = 3;
	assert_int_equal(feed_whole(&p, &rec), FB_PEEK_DONE);
	assert_int_equal(p.reason, FB_PEEK_NAMED);
	free(rec.b);
	free(m.b);
}

static void test_too_big(void **state)
{
	const char *one[] = { "big.example" };
	uint8_t d1[64];
	static uint8_t pad[65535];
	struct ext e[] = { { 0, d1, sni_data(d1, one, 1, NULL) }, { 21, pad, 0 } };
	struct hello_opts o = { 0 };
	struct bytes m, rec;
	struct fb_peek p;

	(void)state;
	/* declared longer than the cap: refused at the length, not after
	 * waiting for 64 KiB */
	e[1].len = 50000;
	o.cs_len = 20000;
	m = build_hello(&o, e, 2);
	o.cs_len = 0;
	assert_true(m.len > FB_PEEK_MAX);
	rec = frame(&m, 16384);
	rec.len = 20;
	assert_int_equal(feed_whole(&p, &rec), FB_PEEK_TOO_BIG);
	assert_int_equal(feed_bytewise(&p, &rec), FB_PEEK_TOO_BIG);
	free(rec.b);
	free(m.b);

	/* 60000 bytes in four full records fits ... */
	e[1].len = 60000;
	m = build_hello(&o, e, 2);
	rec = frame(&m, 16384);
	assert_true(rec.len <= FB_PEEK_MAX);
	assert_int_equal(feed_whole(&p, &rec), FB_PEEK_DONE);
	assert_string_equal(p.name, "big.example");
	free(rec.b);
	/* ... but not in 1-byte records: six times the bytes */
	rec = frame(&m, 1);
	assert_int_equal(feed_whole(&p, &rec), FB_PEEK_TOO_BIG);
	free(rec.b);
	free(m.b);

	/* exactly FB_PEEK_MAX bytes on the wire (four records) is enough;
	 * a hello one byte longer is not */
	for (size_t extra = 0; extra < 2; extra++) {
		size_t base;

		e[1].len = 0;
		m = build_hello(&o, e, 2);
		base = m.len;
		free(m.b);
		e[1].len = FB_PEEK_MAX - 4 * 5 - base + extra;
		m = build_hello(&o, e, 2);
		rec = frame(&m, 16384);
		assert_int_equal(rec.len, FB_PEEK_MAX + extra);
		assert_int_equal(feed_whole(&p, &rec),
				 extra ? FB_PEEK_TOO_BIG : FB_PEEK_DONE);
		free(rec.b);
		free(m.b);
	}

	/* the byte bound holds for HTTP too */
	rec = bytes_new();
	put(&rec, "GET / HTTP/1.1\r\nHost: a.example\r\nX: ", 36);
	memset(rec.b + rec.len, 'x', 70000);
	rec.len += 70000;
	assert_int_equal(feed_whole(&p, &rec), FB_PEEK_TOO_BIG);
	free(rec.b);
}

/* ------------------------------------------------------------------ */
/* Postgres                                                            */
/* ------------------------------------------------------------------ */

static void test_postgres(void **state)
{
	static const uint8_t sslreq[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
	static const uint8_t gssreq[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30 };
	static const uint8_t startup[] = { 0, 0, 0, 0x29, 0, 3, 0, 0 };
	struct bytes hello = openssl_hello("db.example", NULL, 0);
	struct bytes s = bytes_new();
	struct fb_peek p;
	enum fb_peek_status st = FB_PEEK_NEED_MORE;

	(void)state;
	put(&s, sslreq, 8);
	put(&s, hello.b, hello.len);

	/* whole: the request, then (after 'S') the hello in the same stream */
	fb_peek_init(&p);
	assert_int_equal(fb_peek_feed(&p, s.b, s.len), FB_PEEK_SSLREQUEST);
	assert_int_equal(fb_peek_feed(&p, s.b, s.len), FB_PEEK_SSLREQUEST);
	fb_peek_after_sslrequest(&p);
	assert_int_equal(fb_peek_feed(&p, s.b, s.len), FB_PEEK_DONE);
	assert_int_equal(p.proto, FB_PEEK_TLS);
	assert_true(p.after_sslrequest);
	assert_string_equal(p.name, "db.example");

	/* byte by byte */
	fb_peek_init(&p);
	for (size_t k = 1; k <= s.len; k++) {
		st = fb_peek_feed(&p, s.b, k);
		if (st == FB_PEEK_SSLREQUEST) {
			assert_int_equal(k, 8);
			fb_peek_after_sslrequest(&p);
		} else if (st != FB_PEEK_NEED_MORE) {
			break;
		}
	}
	assert_int_equal(st, FB_PEEK_DONE);
	assert_string_equal(p.name, "db.example");

	/* something else after the 'S' */
	fb_peek_init(&p);
	assert_int_equal(fb_peek_feed(&p, (const uint8_t *)"\0\0\0\x08\x04\xd2\x16\x2fGET", 11),
			 FB_PEEK_SSLREQUEST);
	fb_peek_after_sslrequest(&p);
	assert_int_equal(fb_peek_feed(&p, (const uint8_t *)"\0\0\0\x08\x04\xd2\x16\x2fGET", 11),
			 FB_PEEK_DONE);
	assert_int_equal(p.proto, FB_PEEK_UNKNOWN);

	fb_peek_init(&p);
	assert_int_equal(fb_peek_feed(&p, gssreq, 8), FB_PEEK_DONE);
	assert_int_equal(p.proto, FB_PEEK_POSTGRES);
	assert_int_equal(p.reason, FB_PEEK_POSTGRES_GSSENC);

	/* a plaintext startup message is told apart at its fourth byte */
	fb_peek_init(&p);
	assert_int_equal(fb_peek_feed(&p, startup, 4), FB_PEEK_DONE);
	assert_int_equal(p.reason, FB_PEEK_UNKNOWN_PROTOCOL);
	free(s.b);
	free(hello.b);
}

/* ------------------------------------------------------------------ */
/* HTTP and the rest                                                   */
/* ------------------------------------------------------------------ */

static void expect_http(const char *text, enum fb_peek_reason want,
			const char *want_name)
{
	struct bytes x = bytes_new();
	struct fb_peek p, q;

	put(&x, text, strlen(text));
	assert_int_equal(feed_whole(&p, &x), FB_PEEK_DONE);
	if (p.reason != want)
		fail_msg("%s: %s (%s), want %s", text, fb_peek_reason_str(p.reason),
			 p.why ? p.why : "", fb_peek_reason_str(want));
	assert_int_equal(p.proto, FB_PEEK_HTTP);
	assert_string_equal(p.name, want_name);
	assert_int_equal(feed_bytewise(&q, &x), FB_PEEK_DONE);
	assert_int_equal(q.reason, p.reason);
	assert_string_equal(q.name, p.name);
	free(x.b);
}

static void test_http(void **state)
{
	struct bytes x = bytes_new();
	struct fb_peek p;

	(void)state;
	expect_http("GET /a?b HTTP/1.1\r\nHost: WWW.Example.com:8080\r\n\r\n",
		    FB_PEEK_NAMED, "www.example.com");
	expect_http("GET / HTTP/1.1\r\nHost: example.com.\r\n\r\n", FB_PEEK_NAMED,
		    "example.com");
	expect_http("GET http://Example.COM:80/x HTTP/1.1\r\nHost: example.com\r\n\r\n",
		    FB_PEEK_NAMED, "example.com");
	expect_http("GET http://evil.example/x HTTP/1.1\r\nHost: good.example\r\n\r\n",
		    FB_PEEK_AMBIGUOUS_HOST, "");
	expect_http("GET http://10.0.0.1/x HTTP/1.1\r\nHost: good.example\r\n\r\n",
		    FB_PEEK_AMBIGUOUS_HOST, "");
	expect_http("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", FB_PEEK_IP_LITERAL, "");
	expect_http("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", FB_PEEK_IP_LITERAL, "");
	expect_http("GET / HTTP/1.1\r\nHost: 0x7f.1\r\n\r\n", FB_PEEK_IP_LITERAL, "");
	expect_http("GET / HTTP/1.1\r\nHost: a_b.example\r\n\r\n", FB_PEEK_NON_LDH, "");
	expect_http("GET / HTTP/1.1\r\nHost: a%2eb\r\n\r\n", FB_PEEK_NON_LDH, "");
	expect_http("GET / HTTP/1.1\r\nHost: a..b\r\n\r\n", FB_PEEK_BAD_NAME, "");
	expect_http("GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
		    FB_PEEK_MULTIPLE_HOST_NAMES, "");
	expect_http("GET / HTTP/1.0\r\n\r\n", FB_PEEK_NO_HOST, "");
	expect_http("GET / HTTP/1.1\r\n\r\n", FB_PEEK_NO_HOST, "");
	expect_http("GET / HTTP/1.1\r\nHost: a.example\r\nX: a\r\n b\r\n\r\n",
		    FB_PEEK_MALFORMED, "");
	expect_http("POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 1\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n", FB_PEEK_MALFORMED, "");
	expect_http("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", FB_PEEK_MALFORMED, "");

	/* the head is there for the caller; the body is not the peek's */
	put(&x, "POST /upload?x=1 HTTP/1.1\r\nHost: up.example\r\nContent-Length: 4\r\n\r\nbody", 70);
	fb_peek_init(&p);
	assert_int_equal(fb_peek_feed(&p, x.b, x.len), FB_PEEK_DONE);
	assert_int_equal(p.http.method.len, 4);
	assert_memory_equal(p.http.method.ptr, "POST", 4);
	assert_int_equal(p.http.path.len, 7);
	assert_int_equal(p.http.head_len, 66);
	assert_int_equal(p.http.content_length, 4);
	free(x.b);

	/* refused obs-fold tells why */
	x = bytes_new();
	put(&x, "GET / HTTP/1.1\r\nHost: a\r\n\tx\r\n\r\n", 31);
	assert_int_equal(feed_whole(&p, &x), FB_PEEK_DONE);
	assert_int_equal(p.http.error, FB_HTTP_E_OBS_FOLD);
	assert_string_equal(p.why, fb_http_error_str(FB_HTTP_E_OBS_FOLD));
	free(x.b);
}

static void test_unknown(void **state)
{
	static const struct {
		const char *s;
		size_t len;
		enum fb_peek_reason reason;
	} cases[] = {
		{ "SSH-2.0-OpenSSH_9.2p1\r", 22, FB_PEEK_UNKNOWN_PROTOCOL },
		{ "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r", 39, FB_PEEK_UNKNOWN_PROTOCOL },
		{ "\x05\x01\x00", 1, FB_PEEK_UNKNOWN_PROTOCOL },   /* SOCKS5 */
		{ "\x0d\x0a", 1, FB_PEEK_UNKNOWN_PROTOCOL },
		{ "\x80\x2e\x01\x00\x02", 3, FB_PEEK_SSLV2_HELLO },
		{ "\x80\x2e\x02", 3, FB_PEEK_UNKNOWN_PROTOCOL },
		{ "\x00\x00\x00\x10", 4, FB_PEEK_UNKNOWN_PROTOCOL },
		{ "\x16\x03\x03\x00\x05\x02", 6, FB_PEEK_MALFORMED }, /* ServerHello */
	};
	struct fb_peek p;

	(void)state;
	fb_peek_init(&p);
	assert_int_equal(fb_peek_feed(&p, (const uint8_t *)"", 0), FB_PEEK_NEED_MORE);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bytes x = bytes_new();

		put(&x, cases[i].s, cases[i].len);
		/* decided at the last byte given, not one later */
		x.len--;
		if (x.len)
			assert_int_equal(feed_whole(&p, &x), FB_PEEK_NEED_MORE);
		x.len++;
		assert_int_equal(feed_whole(&p, &x), FB_PEEK_DONE);
		assert_int_equal(p.reason, cases[i].reason);
		assert_string_equal(p.name, "");
		free(x.b);
	}
	assert_string_equal(fb_peek_reason_str(FB_PEEK_AMBIGUOUS_HOST), "ambiguous-host");
	assert_string_equal(fb_peek_proto_str(FB_PEEK_TLS), "tls");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openssl_hello),
		cmocka_unit_test(test_sni_names),
		cmocka_unit_test(test_sni_structure),
		cmocka_unit_test(test_hello_structure),
		cmocka_unit_test(test_ech_and_alpn),
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_postgres),
		cmocka_unit_test(test_http),
		cmocka_unit_test(test_unknown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
