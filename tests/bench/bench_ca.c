/*
 * bench_ca.c — what brokering's certificates cost: minting a leaf, a
 * cache hit, and a full in-memory TLS handshake served from the cache,
 * each next to its baseline (a handshake with a fixed server context that
 * has no cache, callbacks or minting in front of it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/err.h>

#include "proxy/ca.h"
#include "tests/lib/tlspair.h"

#define MINTS      1000
#define LOOKUPS    200000
#define HANDSHAKES 500

static char err[512];

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void row(const char *what, int n, double us)
{
	printf("%-40s %8d %12.2f %12.0f\n", what, n, us / n, n / (us / 1e6));
}

static void die(const char *what)
{
	fprintf(stderr, "bench_ca: %s: %s\n", what, err);
	exit(1);
}

static const char *name(int i)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "h%d.bench.example", i);
	return buf;
}

/* One full handshake, client verifying the chain and the host name. */
static void handshake(SSL_CTX *client, SSL_CTX *server, const char *host)
{
	struct tls_pair p;

	if (tls_pair_init(&p, client, server) < 0)
		die("tls pair");
	SSL_set_tlsext_host_name(p.client, host);
	SSL_set1_host(p.client, host);
	SSL_set_alpn_protos(p.client, (const unsigned char *)"\x08http/1.1", 9);
	if (tls_pair_handshake(&p) < 0) {
		ERR_print_errors_fp(stderr);
		die("handshake");
	}
	tls_pair_free(&p);
}

int main(void)
{
	static const char *const names[] = { "*.bench.example" };
	struct fb_ca *ca = fb_ca_create("bench", names, 1, 0, err, sizeof(err));
	SSL_CTX *client, *fixed, *leaf;
	double t;

	if (!ca || fb_ca_set_cache_size(ca, 2 * MINTS + HANDSHAKES, err,
					sizeof(err)) < 0)
		die("ca");
	client = SSL_CTX_new(TLS_client_method());
	X509_STORE_add_cert(SSL_CTX_get_cert_store(client), fb_ca_cert(ca));
	SSL_CTX_set_verify(client, SSL_VERIFY_PEER, NULL);

	printf("%-40s %8s %12s %12s\n", "operation", "n", "us/op", "ops/s");

	t = now_us();
	for (int i = 0; i < MINTS; i++)
		if (!fb_ca_leaf(ca, name(i), err, sizeof(err)))
			die("mint");
	row("leaf mint (uncached)", MINTS, now_us() - t);

	t = now_us();
	for (int i = 0; i < LOOKUPS; i++)
		if (!fb_ca_leaf(ca, name(i % MINTS), err, sizeof(err)))
			die("lookup");
	row("leaf lookup (cached)", LOOKUPS, now_us() - t);

	/* the baseline: the same certificate and key in a plain context */
	leaf = fb_ca_leaf(ca, name(0), err, sizeof(err));
	fixed = SSL_CTX_new(TLS_server_method());
	if (!leaf || !fixed ||
	    SSL_CTX_use_certificate(fixed, SSL_CTX_get0_certificate(leaf)) != 1 ||
	    SSL_CTX_use_PrivateKey(fixed, SSL_CTX_get0_privatekey(leaf)) != 1)
		die("fixed context");

	t = now_us();
	for (int i = 0; i < HANDSHAKES; i++)
		handshake(client, fixed, name(0));
	row("handshake, fixed certificate (baseline)", HANDSHAKES, now_us() - t);

	t = now_us();
	for (int i = 0; i < HANDSHAKES; i++) {
		leaf = fb_ca_leaf(ca, name(i % MINTS), err, sizeof(err));
		if (!leaf)
			die("lookup");
		handshake(client, leaf, name(i % MINTS));
	}
	row("handshake, cached leaf", HANDSHAKES, now_us() - t);

	t = now_us();
	for (int i = 0; i < HANDSHAKES; i++) {
		leaf = fb_ca_leaf(ca, name(MINTS + i), err, sizeof(err));
		if (!leaf)
			die("mint");
		handshake(client, leaf, name(MINTS + i));
	}
	row("handshake, leaf minted on first use", HANDSHAKES, now_us() - t);

	SSL_CTX_free(fixed);
	SSL_CTX_free(client);
	fb_ca_free(ca);
	return 0;
}
