/* tlspair.c — an in-memory TLS client/server pair for tests and benches. */
#include "tests/lib/tlspair.h"

int tls_pair_init(struct tls_pair *p, SSL_CTX *client_ctx,
		  SSL_CTX *server_ctx)
{
	BIO *cb, *sb;

	p->client = SSL_new(client_ctx);
	p->server = SSL_new(server_ctx);
	if (!p->client || !p->server || !BIO_new_bio_pair(&cb, 0, &sb, 0)) {
		tls_pair_free(p);
		return -1;
	}
	SSL_set_bio(p->client, cb, cb);
	SSL_set_bio(p->server, sb, sb);
	SSL_set_connect_state(p->client);
	SSL_set_accept_state(p->server);
	return 0;
}

/* 1 done, 0 wants more, -1 failed. */
static int step(SSL *ssl)
{
	int rc = SSL_do_handshake(ssl);

	if (rc == 1)
		return 1;
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	default:
		return -1;
	}
}

int tls_pair_handshake(struct tls_pair *p)
{
	int c = 0, s = 0;

	/* When one end fails it has queued an alert: keep stepping the other
	 * so it reads that alert and fails with its reason too. */
	for (int rounds = 0; rounds < 32 && (c == 0 || s == 0); rounds++) {
		if (c == 0)
			c = step(p->client);
		if (s == 0)
			s = step(p->server);
	}
	return c == 1 && s == 1 ? 0 : -1;
}

void tls_pair_free(struct tls_pair *p)
{
	SSL_free(p->client);
	SSL_free(p->server);
	p->client = p->server = NULL;
}
