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
 *
 * Every brokered guest connection has its own upstream connection, so a
 * busy guest that opens many short connections makes as many upstream
 * handshakes.  Most of a client handshake's cost is the origin's
 * certificate chain: decoding it, building and verifying the chain, and
 * the signature over the transcript.  So the proxy keeps the session an
 * origin last gave it, per host name, and offers it on the next
 * connection to that host, as any browser does.  A session is only ever
 * the result of a full handshake that passed the checks above for that
 * same name; resuming it proves the peer holds the secret that verified
 * server issued, which is what the certificate proved the first time.
 * TLS 1.3 resumption still makes a fresh (EC)DHE exchange.  An origin
 * that declines the session gets a full, verified handshake.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "proxy/broker.h"
#include "proxy/ca.h"
#include "proxy/pemfile.h"

/* Resumable sessions kept: one per host name, direct-mapped (a name
 * that collides with another replaces it, at worst costing a full
 * handshake). */
#define SESSION_SLOTS 64

struct resumable {
	char host[FB_NAME_MAX];
	SSL_SESSION *sess;
};

struct fb_upstream {
	X509_STORE *roots; /* the system roots and --upstream-ca, read at start */
	SSL_CTX *ctx;      /* made for the first connection (client_ctx) */
	struct resumable slot[SESSION_SLOTS];
};

static const unsigned char alpn_http11[] = "\x08http/1.1";

static struct resumable *slot_of(struct fb_upstream *up, const char *host)
{
	return &up->slot[fb_name_hash(0, host, strlen(host)) % SESSION_SLOTS];
}

static void forget(struct resumable *r)
{
	SSL_SESSION_free(r->sess);
	r->sess = NULL;
	r->host[0] = '\0';
}

/* The session to offer `host`, or NULL: one that has outlived the
 * lifetime its server gave it, or whose connection broke, is dropped. */
static SSL_SESSION *session_for(struct fb_upstream *up, const char *host)
{
	struct resumable *r = slot_of(up, host);

	if (!r->sess || strcmp(r->host, host) != 0)
		return NULL;
	if (!SSL_SESSION_is_resumable(r->sess) ||
	    time(NULL) - SSL_SESSION_get_time(r->sess) >=
	    SSL_SESSION_get_timeout(r->sess)) {
		forget(r);
		return NULL;
	}
	return r->sess;
}

/*
 * OpenSSL hands over each new session (TLS 1.3: each ticket, after the
 * handshake) of a connection.  Kept only when the connection was
 * verified — by its chain and name, or by resuming a session that was —
 * under the name it was made for: its SNI, which fb_upstream_ssl sets
 * from the same string as the name the certificate had to carry.
 * 1: the reference is ours.
 */
static int keep_session(SSL *ssl, SSL_SESSION *sess)
{
	struct fb_upstream *up = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	struct resumable *r;

	if (!host || strlen(host) >= FB_NAME_MAX ||
	    SSL_get_verify_result(ssl) != X509_V_OK ||
	    !SSL_SESSION_is_resumable(sess))
		return 0;
	r = slot_of(up, host);
	forget(r);
	memcpy(r->host, host, strlen(host) + 1);
	r->sess = sess;
	return 1;
}

/*
 * The context every upstream connection is made from.  It waits for the
 * first one: a TLS context sets up OpenSSL's random generator and its
 * tables of ciphers and groups (some 190 KiB), which a sandbox that never
 * brokers would carry for nothing.  The roots it verifies with were read
 * at start, so a bad --upstream-ca still stops the proxy there.
 */
static SSL_CTX *client_ctx(struct fb_upstream *up)
{
	SSL_CTX *ctx;

	if (up->ctx)
		return up->ctx;
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_ciphersuites(ctx, FB_TLS13_SUITES);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set1_cert_store(ctx, up->roots);
	/* Partial writes: the broker keeps its own buffers and retries with
	 * whatever is left, possibly from a moved pointer. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* A record's header and body in one read(2), not two. */
	SSL_CTX_set_read_ahead(ctx, 1);
	/* Sessions go to keep_session only: OpenSSL's own client cache is
	 * never looked up by name. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
					    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, keep_session);
	SSL_CTX_set_app_data(ctx, up);
	if (SSL_CTX_set_alpn_protos(ctx, alpn_http11, sizeof(alpn_http11) - 1)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	up->ctx = ctx;
	return ctx;
}

struct fb_upstream *fb_upstream_new(const char *extra_ca, char *err,
				    size_t errsize)
{
	struct fb_upstream *up = calloc(1, sizeof(*up));
	const char *roots;

	if (!up || !(up->roots = X509_STORE_new())) {
		snprintf(err, errsize, "upstream TLS context: out of memory");
		free(up);
		return NULL;
	}
	/*
	 * The system roots through their hashed directory, not the bundle
	 * file: OpenSSL then reads a root when a chain names it, instead of
	 * parsing every root (tens of milliseconds) each time a sandbox's
	 * proxy starts.  SSL_CERT_DIR is honoured as OpenSSL's defaults do.
	 */
	roots = getenv(X509_get_default_cert_dir_env());
	if (!roots)
		roots = X509_get_default_cert_dir();
	if (X509_STORE_load_path(up->roots, roots) != 1) {
		fb_ssl_error(err, errsize, "system trust store %s", roots);
		goto fail;
	}
	if (extra_ca && X509_STORE_load_file(up->roots, extra_ca) != 1) {
		fb_ssl_error(err, errsize, "--upstream-ca %s", extra_ca);
		goto fail;
	}
	return up;
fail:
	fb_upstream_free(up);
	return NULL;
}

void fb_upstream_free(struct fb_upstream *up)
{
	if (!up)
		return;
	for (size_t i = 0; i < SESSION_SLOTS; i++)
		forget(&up->slot[i]);
	SSL_CTX_free(up->ctx);
	X509_STORE_free(up->roots);
	free(up);
}

SSL *fb_upstream_ssl(struct fb_upstream *up, BIO *bio, const char *host,
		     char *err, size_t errsize)
{
	SSL_CTX *ctx = bio ? client_ctx(up) : NULL;
	SSL *ssl = ctx ? SSL_new(ctx) : NULL;
	SSL_SESSION *sess;

	if (!ssl) {
		BIO_free(bio);
		fb_ssl_error(err, errsize, "upstream TLS for %s", host);
		return NULL;
	}
	SSL_set_bio(ssl, bio, bio);
	/* SNI and the name the certificate must carry are the same name:
	 * the one the policy decided on, never what the guest later says. */
	if (SSL_set_tlsext_host_name(ssl, host) != 1 ||
	    SSL_set1_host(ssl, host) != 1) {
		fb_ssl_error(err, errsize, "upstream TLS for %s", host);
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	sess = session_for(up, host);
	if (sess && SSL_set_session(ssl, sess) != 1) {
		/* then a full handshake, as without one */
		ERR_clear_error();
	}
	SSL_set_connect_state(ssl);
	return ssl;
}

void fb_upstream_release(SSL *ssl, bool clean)
{
	/* OpenSSL takes a connection freed before it was shut down for a
	 * broken one and marks its session not resumable; one that ended
	 * between exchanges is not broken, and no close_notify is owed to a
	 * peer about to see the TCP close. */
	if (clean)
		SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(ssl);
}

bool fb_upstream_denied(const struct fb_policy *policy,
			const struct sockaddr_storage *addr,
			const struct fb_chain *chain)
{
	struct fb_decision d;
	struct fb_addr a;

	fb_addr_from_sockaddr(addr, &a);
	return fb_policy_check_addr(policy, &a, &d) == FB_VERDICT_DENY ||
	       !fb_chain_allowed(chain, policy);
}
