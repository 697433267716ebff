/*
 * pool.c — upstream connections kept idle between guest connections.
 *
 * A guest that opens a connection per request (a curl in a shell loop,
 * many SDKs) would cost an upstream TCP and TLS handshake each time, on
 * top of its own.  So a brokered connection that ends between exchanges
 * leaves its upstream connection here, and the next guest connection to
 * the same host and port takes it, as a reverse proxy's upstream
 * keep-alive does.  Each guest connection still has one upstream
 * connection of its own: a parked one belongs to no guest connection and
 * is handed to one at a time.  A proxy serves one sandbox, so nothing
 * crosses between sandboxes.
 *
 * What is parked is in a known state (broker.c checks): verified, its
 * last response complete and framed, nothing unread, nothing unsent.
 * While parked it is watched: a TLS session ticket is taken (upstream.c
 * keeps it); anything else the origin sends is out of step, and that, a
 * close or an error ends the connection.  So do POOL_IDLE_MS of rest and
 * a policy change that denies where it goes or a CNAME it went through
 * (fb_pool_recheck).  The race
 * with an origin closing it just as it is taken is the broker's to meet:
 * a request that can be sent twice is, once, on a new connection.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>

#include <openssl/err.h>

#include "proxy/broker.h"

#define POOL_MAX     32      /* idle connections kept, all hosts together */
#define POOL_IDLE_MS 15000   /* an origin that closes sooner is seen doing
			      * so (on_idle_event) */

struct fb_idle {
	TAILQ_ENTRY(fb_idle) link;     /* the pool's list, parked last first */
	struct fb_pool *pool;
	SSL *ssl;
	struct wire w;
	struct sockaddr_storage addr;
	struct fb_chain *chain;
	struct fb_timer *timer;
	uint16_t port;
	char host[FB_NAME_MAX];
};

struct fb_pool {
	struct fb_loop *loop;          /* of the connections it holds */
	TAILQ_HEAD(fb_idle_list, fb_idle) idle;
	size_t n;
};

struct fb_pool *fb_pool_new(void)
{
	struct fb_pool *pool = calloc(1, sizeof(*pool));

	if (pool)
		TAILQ_INIT(&pool->idle);
	return pool;
}

static void unlink_idle(struct fb_idle *c)
{
	struct fb_pool *pool = c->pool;

	TAILQ_REMOVE(&pool->idle, c, link);
	pool->n--;
	fb_timer_cancel(pool->loop, c->timer);
}

/* `clean`: the connection ended between exchanges, its TLS session stays
 * good for resuming. */
static void close_idle(struct fb_idle *c, bool clean)
{
	struct fb_loop *l = c->pool->loop;

	unlink_idle(c);
	fb_upstream_release(c->ssl, clean);
	fb_loop_close(l, c->w.fd);
	free(c->chain);
	free(c);
}

static void on_idle_timeout(struct fb_loop *l, void *arg)
{
	struct fb_idle *c = arg;

	(void)l;
	c->timer = NULL;
	close_idle(c, true);
}

/* The origin sent something to a connection at rest. */
static void on_idle_event(struct fb_loop *l, int fd, uint32_t events,
			  void *arg)
{
	struct fb_idle *c = arg;
	char byte;
	size_t n;
	int r, err;

	(void)l;
	(void)fd;
	(void)events;
	c->w.drained = false;
	r = SSL_read_ex(c->ssl, &byte, 1, &n);
	err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ)
		return; /* a ticket or another record that carried no data */
	ERR_clear_error();
	close_idle(c, err == SSL_ERROR_ZERO_RETURN);
}

void fb_pool_put(struct fb_pool *pool, struct fb_loop *l, SSL *ssl,
		 const struct wire *w, uint32_t events, const char *host,
		 uint16_t port, const struct sockaddr_storage *addr,
		 struct fb_chain *chain)
{
	struct fb_idle *c = calloc(1, sizeof(*c));

	pool->loop = l;
	if (c)
		c->timer = fb_timer_add(l, POOL_IDLE_MS, on_idle_timeout, c);
	if (!c || !c->timer ||
	    (events != EPOLLIN && fb_loop_mod(l, w->fd, EPOLLIN) < 0)) {
		if (c)
			fb_timer_cancel(l, c->timer);
		free(c);
		free(chain);
		fb_upstream_release(ssl, true);
		fb_loop_close(l, w->fd);
		return;
	}
	if (pool->n == POOL_MAX)
		close_idle(TAILQ_LAST(&pool->idle, fb_idle_list), true);
	c->pool = pool;
	c->ssl = ssl;
	c->w = *w;
	c->addr = *addr;
	c->chain = chain;
	c->port = port;
	snprintf(c->host, sizeof(c->host), "%s", host);
	BIO_set_data(SSL_get_rbio(ssl), &c->w);
	fb_loop_handover(l, c->w.fd, on_idle_event, c);
	TAILQ_INSERT_HEAD(&pool->idle, c, link);
	pool->n++;
}

bool fb_pool_take(struct fb_pool *pool, const char *host, uint16_t port,
		  SSL **ssl, struct wire *w, struct sockaddr_storage *addr,
		  struct fb_chain **chain, fb_io_fn *fn, void *arg)
{
	struct fb_idle *c;

	TAILQ_FOREACH(c, &pool->idle, link)
		if (c->port == port && strcmp(c->host, host) == 0)
			break;
	if (!c)
		return false;
	if (SSL_has_pending(c->ssl)) {
		/* part of a record nobody asked for, not yet complete */
		close_idle(c, false);
		return false;
	}
	unlink_idle(c);
	*ssl = c->ssl;
	*w = c->w;
	w->drained = false;
	*addr = c->addr;
	*chain = c->chain;
	BIO_set_data(SSL_get_rbio(*ssl), w);
	fb_loop_handover(pool->loop, w->fd, fn, arg);
	free(c);
	return true;
}

void fb_pool_recheck(struct fb_pool *pool, const struct fb_policy *policy)
{
	struct fb_idle *c, *next;

	for (c = TAILQ_FIRST(&pool->idle); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (fb_upstream_denied(policy, &c->addr, c->chain))
			close_idle(c, true);
	}
}

void fb_pool_free(struct fb_pool *pool)
{
	if (!pool)
		return;
	while (!TAILQ_EMPTY(&pool->idle))
		close_idle(TAILQ_FIRST(&pool->idle), true);
	free(pool);
}
