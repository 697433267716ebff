/*
 * fuzz_peek.c — the peek must reach the same verdict however the stream
 * arrives: whole, one byte more per call, or (for TLS) with the handshake
 * re-split into records whose sizes the input chooses.  And a name the
 * peek reads from a ClientHello must be the name OpenSSL reads from the
 * same bytes (or OpenSSL must refuse the hello): the brokered path
 * terminates TLS with OpenSSL, and the two must never disagree.  Any
 * difference aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "proxy/peek.h"

static void same(const struct fb_peek *a, const struct fb_peek *b, bool status_too)
{
	if (status_too && a->status != b->status)
		abort();
	if (a->status != FB_PEEK_DONE || b->status != FB_PEEK_DONE)
		return;
	if (a->proto != b->proto || a->reason != b->reason ||
	    strcmp(a->name, b->name) != 0 || a->ech != b->ech ||
	    strcmp(a->alpn, b->alpn) != 0 ||
	    a->after_sslrequest != b->after_sslrequest)
		abort();
}

/* Whole buffer: answer an SSLRequest the way the proxy does. */
static void whole(struct fb_peek *p, const uint8_t *buf, size_t len)
{
	fb_peek_init(p);
	if (fb_peek_feed(p, buf, len) == FB_PEEK_SSLREQUEST) {
		fb_peek_after_sslrequest(p);
		fb_peek_feed(p, buf, len);
	}
}

static void bytewise(struct fb_peek *p, const uint8_t *buf, size_t len)
{
	fb_peek_init(p);
	for (size_t k = 1; k <= len; k++) {
		enum fb_peek_status st = fb_peek_feed(p, buf, k);

		if (st == FB_PEEK_SSLREQUEST) {
			fb_peek_after_sslrequest(p);
			st = fb_peek_feed(p, buf, k);
		}
		if (st != FB_PEEK_NEED_MORE)
			break;
	}
}

/* The handshake bytes of a stream of handshake records (the last one may
 * be cut short), re-framed into records of input-chosen sizes. */
static size_t reframe(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	uint8_t *msg = malloc(len);
	size_t n = 0, o = 0, k = 0;

	if (!msg)
		abort();
	for (size_t off = 0; off + 5 <= len;) {
		size_t r = (size_t)in[off + 3] << 8 | in[off + 4];

		if (in[off] != 22 || r == 0 || r > 16384)
			break;
		if (r > len - off - 5)
			r = len - off - 5;
		memcpy(msg + n, in + off + 5, r);
		n += r;
		off += 5 + r;
	}
	for (size_t off = 0; off < n; k++) {
		size_t r = 1 + (in[k % len] * 257u + k) % 700;

		if (r > n - off)
			r = n - off;
		if (o + 5 + r > cap)
			break;
		out[o++] = 22;
		out[o++] = 3;
		out[o++] = 1 + k % 3;
		out[o++] = (uint8_t)(r >> 8);
		out[o++] = (uint8_t)r;
		memcpy(out + o, msg + off, r);
		o += r;
		off += r;
	}
	free(msg);
	return o;
}

struct openssl_view {
	bool called;
	char name[FB_NAME_MAX];
	enum fb_peek_reason reason;
};

static int on_servername(SSL *ssl, int *alert, void *arg)
{
	struct openssl_view *v = arg;
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const char *why;

	(void)alert;
	v->called = true;
	v->reason = sni ? fb_peek_name(sni, strlen(sni), v->name, &why)
			: FB_PEEK_NO_SNI;
	/* stop here: the rest of the handshake is not under test */
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* What OpenSSL, as a server, makes of the same bytes. */
static void openssl_differential(const struct fb_peek *p, const uint8_t *buf,
				 size_t len)
{
	static SSL_CTX *ctx;
	struct openssl_view v = { 0 };
	SSL *ssl;
	BIO *in;

	if (!ctx) {
		ctx = SSL_CTX_new(TLS_server_method());
		if (!ctx)
			abort();
		SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
		SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
	}
	SSL_CTX_set_tlsext_servername_arg(ctx, &v);
	ssl = SSL_new(ctx);
	in = BIO_new_mem_buf(buf, (int)len);
	if (!ssl || !in)
		abort();
	SSL_set_bio(ssl, in, BIO_new(BIO_s_mem()));
	SSL_set_accept_state(ssl);
	SSL_do_handshake(ssl);
	SSL_free(ssl);
	if (!v.called)
		return; /* OpenSSL refused the hello before its name */
	if (p->reason == FB_PEEK_NAMED &&
	    (v.reason != FB_PEEK_NAMED || strcmp(v.name, p->name) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fb_peek *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	uint8_t *buf = malloc(size ? size : 1);

	if (!a || !b || !buf)
		abort();
	memcpy(buf, data, size);
	whole(a, buf, size);
	bytewise(b, buf, size);
	same(a, b, true);

	if (size && data[0] == 22 && a->status == FB_PEEK_DONE &&
	    a->reason == FB_PEEK_NAMED)
		openssl_differential(a, buf, size);

	if (size && data[0] == 22 && a->proto == FB_PEEK_TLS &&
	    a->status == FB_PEEK_DONE && a->reason != FB_PEEK_BAD_RECORD) {
		size_t cap = 6 * size + 5;
		uint8_t *re = malloc(cap);
		size_t n;

		if (!re)
			abort();
		n = reframe(data, size, re, cap);
		whole(b, re, n);
		if (b->status != FB_PEEK_TOO_BIG)
			same(a, b, true);
		free(re);
	}
	free(buf);
	free(a);
	free(b);
	return 0;
}
