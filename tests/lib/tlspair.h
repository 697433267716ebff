/*
 * tlspair.h — a TLS client and server talking through an in-memory BIO
 * pair in one thread: real OpenSSL handshakes without sockets.
 */
#ifndef FB_TEST_TLSPAIR_H
#define FB_TEST_TLSPAIR_H

#include <openssl/ssl.h>

struct tls_pair {
	SSL *client, *server;
};

/* Both ends joined by a BIO pair; the caller configures them (SNI, ALPN,
 * verification) before tls_pair_handshake.  0 or -1. */
int tls_pair_init(struct tls_pair *p, SSL_CTX *client_ctx,
		  SSL_CTX *server_ctx);

/*
 * Drive both handshakes until each finishes or fails.  Returns 0 when
 * both completed, else -1; the OpenSSL error queue is left for the caller
 * (ERR_peek_error) and then should be cleared.
 */
int tls_pair_handshake(struct tls_pair *p);

void tls_pair_free(struct tls_pair *p);

#endif /* FB_TEST_TLSPAIR_H */
