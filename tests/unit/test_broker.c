/*
 * test_broker.c — the broker's TLS ends: the verified upstream client
 * (proxy/upstream.c) against a real OpenSSL server over a socketpair, and
 * the shared context's refusals of bad configuration.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "proxy/broker.h"
#include "proxy/ca.h"

struct fixture {
	char dir[64];
	char cert[96], key[96];
	struct fb_ca *ca;
};

static int setup(void **state)
{
	static const char *const names[] = { "origin.example" };
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/fb-test-broker.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->cert, sizeof(f->cert), "%s/ca.crt", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/ca.key", f->dir);
	f->ca = fb_ca_create("test", names, 1, 0, err, sizeof(err));
	assert_non_null(f->ca);
	assert_int_equal(fb_ca_save(f->ca, f->cert, f->key, false, err,
				    sizeof(err)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	fb_ca_free(f->ca);
	unlink(f->cert);
	unlink(f->key);
	rmdir(f->dir);
	free(f);
	return 0;
}

/*
 * A server that presents the leaf for `served` whatever SNI it is asked
 * for (the broker's own leaf contexts refuse another SNI, which would
 * hide what the client checks).
 */
static SSL_CTX *any_sni_server(struct fixture *f, const char *served)
{
	char err[256];
	SSL_CTX *leaf = fb_ca_leaf(f->ca, served, err, sizeof(err));
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(leaf);
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate(ctx, SSL_CTX_get0_certificate(leaf)), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, SSL_CTX_get0_privatekey(leaf)), 1);
	return ctx;
}

/*
 * The upstream client for `expect` against a server presenting the CA's
 * leaf for `served`, both ends non-blocking on a socketpair, driven in
 * turn.  Returns 0 when the client's handshake completed.
 */
static int handshake(struct fixture *f, const char *extra_ca,
		     const char *served, const char *expect, bool any_sni,
		     char *alpn, size_t alpn_size)
{
	SSL_CTX *cctx, *sctx, *own = NULL;
	SSL *client, *server;
	char err[256];
	int sv[2], rc = -1;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	cctx = fb_upstream_ctx_new(extra_ca, err, sizeof(err));
	assert_non_null(cctx);
	sctx = any_sni ? (own = any_sni_server(f, served)) :
			 fb_ca_leaf(f->ca, served, err, sizeof(err));
	assert_non_null(sctx);
	client = fb_upstream_ssl(cctx, sv[0], expect, err, sizeof(err));
	assert_non_null(client);
	server = SSL_new(sctx);
	assert_non_null(server);
	SSL_set_fd(server, sv[1]);
	SSL_set_accept_state(server);
	for (int i = 0; i < 100; i++) {
		int c = SSL_do_handshake(client);
		int s = SSL_do_handshake(server);

		if (c == 1 && s == 1) {
			const unsigned char *p;
			unsigned int n;

			SSL_get0_alpn_selected(client, &p, &n);
			snprintf(alpn, alpn_size, "%.*s", (int)n, (const char *)p);
			rc = 0;
			break;
		}
		if ((c != 1 && SSL_get_error(client, c) != SSL_ERROR_WANT_READ &&
		     SSL_get_error(client, c) != SSL_ERROR_WANT_WRITE) ||
		    (s != 1 && SSL_get_error(server, s) != SSL_ERROR_WANT_READ &&
		     SSL_get_error(server, s) != SSL_ERROR_WANT_WRITE))
			break;
	}
	ERR_clear_error();
	SSL_free(client);
	SSL_free(server);
	SSL_CTX_free(cctx);
	SSL_CTX_free(own);
	close(sv[0]);
	close(sv[1]);
	return rc;
}

static void test_verified_with_upstream_ca(void **state)
{
	struct fixture *f = *state;
	char alpn[32] = "";

	assert_int_equal(handshake(f, f->cert, "origin.example", "origin.example",
				   false, alpn, sizeof(alpn)), 0);
	assert_string_equal(alpn, "http/1.1");
}

static void test_untrusted_issuer_refused(void **state)
{
	struct fixture *f = *state;
	char alpn[32];

	/* the system roots alone do not know the test CA */
	assert_int_equal(handshake(f, NULL, "origin.example", "origin.example",
				   false, alpn, sizeof(alpn)), -1);
}

/*
 * The system roots are read through their hashed directory (as
 * update-ca-certificates lays it out), root by root when a chain names
 * one: a CA linked there under its subject hash is trusted with no
 * --upstream-ca at all.
 */
static void test_system_roots_by_hashed_directory(void **state)
{
	struct fixture *f = *state;
	char link[128], alpn[32] = "";
	FILE *fp = fopen(f->cert, "r");
	X509 *x;

	assert_non_null(fp);
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	snprintf(link, sizeof(link), "%s/%08lx.0", f->dir,
		 X509_subject_name_hash(x));
	X509_free(x);
	assert_int_equal(symlink(f->cert, link), 0);
	assert_int_equal(setenv("SSL_CERT_DIR", f->dir, 1), 0);
	assert_int_equal(handshake(f, NULL, "origin.example", "origin.example",
				   false, alpn, sizeof(alpn)), 0);
	unsetenv("SSL_CERT_DIR");
	unlink(link);
	assert_string_equal(alpn, "http/1.1");
}

static void test_other_name_refused(void **state)
{
	struct fixture *f = *state;
	char alpn[32];

	/* a trusted certificate, but for another name than the one dialled */
	assert_int_equal(handshake(f, f->cert, "a.origin.example",
				   "b.origin.example", true, alpn, sizeof(alpn)), -1);
	assert_int_equal(handshake(f, f->cert, "a.origin.example",
				   "a.origin.example", true, alpn, sizeof(alpn)), 0);
}

static void test_bad_upstream_ca_named(void **state)
{
	char err[256];

	(void)state;
	assert_null(fb_upstream_ctx_new("/nonexistent/ca.pem", err, sizeof(err)));
	assert_non_null(strstr(err, "--upstream-ca /nonexistent/ca.pem"));
	ERR_clear_error();
}

static void test_ctx_refuses_missing_ca(void **state)
{
	struct fixture *f = *state;
	struct fb_proxy_config cfg = { .ca_cert = "/nonexistent/ca.crt",
				       .ca_key = f->key };
	struct fb_broker_ctx *bc;
	char err[256];

	assert_null(fb_broker_ctx_new(&cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/ca.crt"));
	ERR_clear_error();

	cfg.ca_cert = f->cert;
	cfg.jwt_key = "/nonexistent/jwt.key";
	assert_null(fb_broker_ctx_new(&cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/jwt.key"));
	ERR_clear_error();

	cfg.jwt_key = NULL;
	bc = fb_broker_ctx_new(&cfg, err, sizeof(err));
	assert_non_null(bc);
	assert_null(bc->jwt);
	assert_null(bc->live);
	fb_broker_ctx_free(bc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verified_with_upstream_ca),
		cmocka_unit_test(test_system_roots_by_hashed_directory),
		cmocka_unit_test(test_untrusted_issuer_refused),
		cmocka_unit_test(test_other_name_refused),
		cmocka_unit_test(test_bad_upstream_ca_named),
		cmocka_unit_test(test_ctx_refuses_missing_ca),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
