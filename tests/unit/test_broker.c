/*
 * test_broker.c — the broker's TLS ends: the verified upstream client
 * (proxy/upstream.c) against a real OpenSSL server over a socketpair, the
 * sessions it resumes, and the shared context's refusals of bad
 * configuration.
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
 * One connection of the upstream client `up` for `expect` to a server
 * with context `sctx`, both ends non-blocking on a socketpair, driven in
 * turn.  After the handshake the server sends a byte, which the client
 * reads: TLS 1.3 tickets arrive that way.  Returns 0 when the client's
 * handshake completed; *resumed says whether it resumed a session.
 */
static int connect_once(struct fb_upstream *up, SSL_CTX *sctx,
			const char *expect, char *alpn, size_t alpn_size,
			bool *resumed)
{
	SSL *client, *server;
	char err[256], byte;
	size_t n;
	int sv[2], rc = -1;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	client = fb_upstream_ssl(up, BIO_new_socket(sv[0], BIO_NOCLOSE), expect,
				 err, sizeof(err));
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
			unsigned int len;

			SSL_get0_alpn_selected(client, &p, &len);
			snprintf(alpn, alpn_size, "%.*s", (int)len, (const char *)p);
			*resumed = SSL_session_reused(client);
			rc = 0;
			break;
		}
		if ((c != 1 && SSL_get_error(client, c) != SSL_ERROR_WANT_READ &&
		     SSL_get_error(client, c) != SSL_ERROR_WANT_WRITE) ||
		    (s != 1 && SSL_get_error(server, s) != SSL_ERROR_WANT_READ &&
		     SSL_get_error(server, s) != SSL_ERROR_WANT_WRITE))
			break;
	}
	if (rc == 0) {
		assert_int_equal(SSL_write_ex(server, "x", 1, &n), 1);
		assert_int_equal(SSL_read_ex(client, &byte, 1, &n), 1);
	}
	ERR_clear_error();
	fb_upstream_release(client, rc == 0);
	SSL_free(server);
	close(sv[0]);
	close(sv[1]);
	return rc;
}

/*
 * A fresh upstream client (trusting `extra_ca`) for `expect` against a
 * server presenting the CA's leaf for `served`: the broker's own leaf
 * context, or with `any_sni` one that answers any SNI.
 */
static int handshake(struct fixture *f, const char *extra_ca,
		     const char *served, const char *expect, bool any_sni,
		     char *alpn, size_t alpn_size)
{
	struct fb_upstream *up;
	SSL_CTX *sctx, *own = NULL;
	char err[256];
	bool resumed;
	int rc;

	up = fb_upstream_new(extra_ca, err, sizeof(err));
	assert_non_null(up);
	sctx = any_sni ? (own = any_sni_server(f, served)) :
			 fb_ca_leaf(f->ca, served, err, sizeof(err));
	assert_non_null(sctx);
	rc = connect_once(up, sctx, expect, alpn, alpn_size, &resumed);
	fb_upstream_free(up);
	SSL_CTX_free(own);
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

/* A server's ALPN choice: the client's first offer. */
static int first_offer(SSL *ssl, const unsigned char **out,
		       unsigned char *outlen, const unsigned char *in,
		       unsigned int inlen, void *arg)
{
	(void)ssl, (void)arg;
	if (!inlen || in[0] + 1u > inlen)
		return SSL_TLSEXT_ERR_NOACK;
	*out = in + 1;
	*outlen = in[0];
	return SSL_TLSEXT_ERR_OK;
}

/*
 * A second connection to a name resumes the session the first one, fully
 * verified, was given — in TLS 1.3 and in TLS 1.2 — and still speaks
 * HTTP/1.1 only.
 */
static void resumes(struct fixture *f, int max_version)
{
	struct fb_upstream *up;
	SSL_CTX *sctx = any_sni_server(f, "origin.example");
	char err[256], alpn[32] = "";
	bool resumed;

	SSL_CTX_set_alpn_select_cb(sctx, first_offer, NULL);
	if (max_version)
		SSL_CTX_set_max_proto_version(sctx, max_version);
	up = fb_upstream_new(f->cert, err, sizeof(err));
	assert_non_null(up);
	assert_int_equal(connect_once(up, sctx, "origin.example", alpn,
				      sizeof(alpn), &resumed), 0);
	assert_false(resumed);
	alpn[0] = '\0';
	assert_int_equal(connect_once(up, sctx, "origin.example", alpn,
				      sizeof(alpn), &resumed), 0);
	assert_true(resumed);
	assert_string_equal(alpn, "http/1.1");
	fb_upstream_free(up);
	SSL_CTX_free(sctx);
}

static void test_resumes_verified_session(void **state)
{
	resumes(*state, 0);
}

static void test_resumes_tls12_session(void **state)
{
	resumes(*state, TLS1_2_VERSION);
}

/*
 * A session is offered only to the name it was verified for: a server
 * that would resume it for any name (one ticket key, any SNI) still has
 * to show a certificate for the other name, and fails.  The first name
 * goes on resuming.
 */
static void test_session_only_for_its_name(void **state)
{
	struct fixture *f = *state;
	struct fb_upstream *up;
	SSL_CTX *sctx = any_sni_server(f, "a.origin.example");
	char err[256], alpn[32];
	bool resumed;

	up = fb_upstream_new(f->cert, err, sizeof(err));
	assert_non_null(up);
	assert_int_equal(connect_once(up, sctx, "a.origin.example", alpn,
				      sizeof(alpn), &resumed), 0);
	assert_int_equal(connect_once(up, sctx, "b.origin.example", alpn,
				      sizeof(alpn), &resumed), -1);
	assert_int_equal(connect_once(up, sctx, "a.origin.example", alpn,
				      sizeof(alpn), &resumed), 0);
	assert_true(resumed);
	fb_upstream_free(up);
	SSL_CTX_free(sctx);
}

static void test_bad_upstream_ca_named(void **state)
{
	char err[256];

	(void)state;
	assert_null(fb_upstream_new("/nonexistent/ca.pem", err, sizeof(err)));
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
		cmocka_unit_test(test_resumes_verified_session),
		cmocka_unit_test(test_resumes_tls12_session),
		cmocka_unit_test(test_session_only_for_its_name),
		cmocka_unit_test(test_bad_upstream_ca_named),
		cmocka_unit_test(test_ctx_refuses_missing_ca),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
