/*
 * conn_peek.c — name a new connection's destination from its first bytes
 * (the parsing is peek.c's; this file drives it from the connection).
 *
 * Never continue without an answer: the deadline (conn.c) or the 64 KiB
 * bound closes the connection, and a Postgres client only gets our 'S'
 * once, after which a TLS ClientHello must follow.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/conn.h"
#include "proxy/peek.h"

struct conn_peek {
	struct fb_peek peek;
	size_t skip; /* leading bytes not replayed: the guest's SSLRequest */
};

int conn_peek_init(struct conn *c)
{
	c->pk = malloc(sizeof(*c->pk));
	if (!c->pk)
		return -1;
	fb_peek_init(&c->pk->peek);
	c->pk->skip = 0;
	return 0;
}

void conn_peek_free(struct conn *c)
{
	free(c->pk);
	c->pk = NULL;
}

static enum conn_proto proto_of(const struct fb_peek *pk)
{
	if (pk->after_sslrequest)
		return P_POSTGRES;
	switch (pk->proto) {
	case FB_PEEK_TLS:
		return P_TLS;
	case FB_PEEK_HTTP:
		return P_HTTP;
	default:
		return P_UNKNOWN;
	}
}

int conn_peek_step(struct conn *c)
{
	struct fb_peek *pk = &c->pk->peek;

	switch (fb_peek_feed(pk, c->buf, c->len)) {
	case FB_PEEK_NEED_MORE:
		return 0; /* at FB_PEEK_MAX bytes the peek says TOO_BIG */
	case FB_PEEK_TOO_BIG:
		fb_conn_close(c, "peek-too-large");
		return 1;
	case FB_PEEK_SSLREQUEST:
		/* One byte into a fresh socket: it goes or the guest is gone. */
		if (send(c->cfd, "S", 1, MSG_NOSIGNAL) != 1) {
			fb_conn_close(c, "client-error");
			return 1;
		}
		c->proto = P_POSTGRES;
		c->pk->skip = 8;
		fb_peek_after_sslrequest(pk);
		/* a client that did not wait for the 'S' sent its hello
		 * with the request: it is here already, and no more comes */
		return c->len > c->pk->skip ? conn_peek_step(c) : 0;
	case FB_PEEK_DONE:
		break;
	}
	c->proto = proto_of(pk);
	c->has_name = pk->reason == FB_PEEK_NAMED;
	if (c->has_name)
		memcpy(c->name, pk->name, sizeof(c->name));
	else
		c->peek_reason = fb_peek_reason_str(pk->reason);
	c->ech = pk->ech;
	/* our own SSLRequest goes upstream instead of the guest's */
	c->off = c->pk->skip;
	c->http = c->proto == P_HTTP;
	fb_conn_decide(c);
	return 1;
}
