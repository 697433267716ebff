/*
 * upstream.c — the proxy as a TLS client of the real origin (or of a
 * forwardURL target) on a brokered connection.
 *
 * The guest trusted our leaf because the proxy vouches for the origin,
 * so the proxy must verify the origin at least as well as the guest
 * would have: the system roots (plus --upstream-ca for a private
 * deployment or a test), the name checked against the certificate, no
 * protocol below TLS 1.2, and HTTP/1.1 as the only protocol offered since
 * that is what the proxy parses.
 */
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "proxy/broker.h"
#include "proxy/pemfile.h"

static const unsigned char alpn_http11[] = "\x08http/1.1";

SSL_CTX *fb_upstream_ctx_new(const char *extra_ca, char *err, size_t errsize)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	const char *roots;

	if (!ctx) {
		fb_ssl_error(err, errsize, "upstream TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* Partial writes: the broker keeps its own buffers and retries with
	 * whatever is left, possibly from a moved pointer. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/*
	 * The system roots through their hashed directory, not the bundle
	 * file: OpenSSL then reads a root when a chain names it, instead of
	 * parsing every root (tens of milliseconds) each time a sandbox's
	 * proxy starts.  SSL_CERT_DIR is honoured as OpenSSL's defaults do.
	 */
	roots = getenv(X509_get_default_cert_dir_env());
	if (!roots)
		roots = X509_get_default_cert_dir();
	if (SSL_CTX_load_verify_dir(ctx, roots) != 1) {
		fb_ssl_error(err, errsize, "system trust store %s", roots);
		goto fail;
	}
	if (extra_ca && SSL_CTX_load_verify_locations(ctx, extra_ca, NULL) != 1) {
		fb_ssl_error(err, errsize, "--upstream-ca %s", extra_ca);
		goto fail;
	}
	if (SSL_CTX_set_alpn_protos(ctx, alpn_http11, sizeof(alpn_http11) - 1)) {
		fb_ssl_error(err, errsize, "upstream ALPN");
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL *fb_upstream_ssl(SSL_CTX *ctx, int fd, const char *host, char *err,
		     size_t errsize)
{
	SSL *ssl = SSL_new(ctx);

	if (!ssl) {
		fb_ssl_error(err, errsize, "upstream TLS for %s", host);
		return NULL;
	}
	/* SNI and the name the certificate must carry are the same name:
	 * the one the policy decided on, never what the guest later says. */
	if (SSL_set_fd(ssl, fd) != 1 ||
	    SSL_set_tlsext_host_name(ssl, host) != 1 ||
	    SSL_set1_host(ssl, host) != 1) {
		fb_ssl_error(err, errsize, "upstream TLS for %s", host);
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	SSL_set_connect_state(ssl);
	return ssl;
}
