/*
 * broker.h — credential brokering (design.md decision 7): for a name
 * whose policy key carries rules, the proxy terminates the guest's TLS
 * with a leaf from the sandbox's CA, reads every HTTP request, applies
 * the first rule that matches (transform, forward or respond) and sends
 * the request on over verified TLS.  Internal to proxy/.
 *
 *   broker.c    one brokered connection: the state machine on the loop
 *   judge.c     one request head: the refusals, then the key's rules
 *   rewrite.c   the request head as it goes upstream
 *   forward.c   forwardURL targets and their signed token
 *   upstream.c  the verified TLS client, and the sessions it resumes
 *   pool.c      upstream connections kept between guest connections
 */
#ifndef FB_BROKER_H
#define FB_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "policy/policy.h"
#include "proxy/http.h"
#include "proxy/loop.h"
#include "proxy/proxy.h"
#include "proxy/resolver.h"

struct fb_proxy;
struct fb_broker;
struct fb_jwt_key;
struct fb_loop;
struct fb_pool;
struct fb_upstream;

/*
 * What one TLS end reads and writes through (its BIO's data): a socket,
 * and for the guest the bytes the peek already took from it, replayed
 * first.
 */
struct wire {
	int fd;
	uint8_t *peeked;
	size_t npeeked, peek_off;
	uint64_t in, out;      /* bytes through the socket */
	bool drained;          /* a read came back short: the socket is empty
				* until epoll says otherwise */
};

/*
 * What every brokered connection of a proxy shares: the CA that mints the
 * leaves, the key that signs forward tokens, the upstream TLS context,
 * and the live connections (closed when the context is freed).
 */
struct fb_broker_ctx {
	struct fb_ca *ca;
	struct fb_jwt_key *jwt;     /* NULL: forwardURL rules answer 502 */
	struct fb_upstream *upstream;
	struct fb_pool *pool;       /* idle upstream connections */
	BIO_METHOD *bio_method;     /* both TLS ends: a socket (the guest's
				     * after the peeked bytes) */
	struct fb_broker *live;
};

/*
 * From the proxy's configuration: --ca-cert/--ca-key (required to
 * broker), --jwt-key and --upstream-ca (optional).  NULL with err set.
 */
struct fb_broker_ctx *fb_broker_ctx_new(const struct fb_proxy_config *cfg,
					char *err, size_t errsize);
/* Closes every live brokered connection, then frees. */
void fb_broker_ctx_free(struct fb_broker_ctx *bc);

/*
 * What the broker does with a request head parsed from head[0..len) on a
 * connection to sni:port brokered under `key` (judge.c): its path and
 * query put in normal form in place (they only shrink), then either a
 * refusal, whose status (400, 421) is returned with *why its reason, or
 * 0 with *d the key's rules' decision.  -1: out of memory.
 */
int fb_broker_judge(const struct fb_domain *key, const char *sni,
		    uint16_t port, char *head, size_t len,
		    struct fb_http_req *req, struct fb_decision *d,
		    const char **why);

/*
 * Take over a guest connection whose peek named `sni` and whose key `key`
 * carries rules.  `peeked` are the bytes already read from client_fd (the
 * start of the ClientHello), `policy_ref` a reference the connection now
 * owns (key points into it), `orig_dst`/`port` where the guest was going,
 * `src` the guest's end.  The fd is owned by the broker from here on, even
 * when this fails (then it is closed and -1 returned).
 */
int fb_broker_start(struct fb_proxy *p, int client_fd, const uint8_t *peeked,
		    size_t npeeked, const char *sni, const struct fb_domain *key,
		    struct fb_policy *policy_ref, const struct fb_addr *orig_dst,
		    uint16_t port, const struct sockaddr_storage *src,
		    uint64_t conn_id);

/* Live brokered connections re-decided under the policy now in force;
 * those it no longer brokers for the same key are closed.  Returns how
 * many were closed. */
size_t fb_broker_recheck(struct fb_proxy *p);
/* The live brokered connections as /connections entries, appended to f;
 * `sep` goes before the first one ("" or ","). */
void fb_brokers_json(const struct fb_proxy *p, FILE *f, const char *sep);
/* The bytes the live brokered connections moved so far (the guest's side),
 * added to *up and *down. */
void fb_brokers_bytes(const struct fb_proxy *p, uint64_t *up, uint64_t *down);

/* ---- rewrite.c ---------------------------------------------------------- */

/* One header to add to a rewritten head. */
struct fb_head_field {
	const char *name;
	const char *value;
};

struct fb_head_edit {
	const char *host;                  /* the Host to send */
	const char *prefix;                /* forward: the base path before */
	size_t prefix_len;                 /* the request's own */
	const struct fb_header_set *set;   /* transform: replace these */
	size_t nset;
	const struct fb_head_field *add;   /* appended as they are */
	size_t nadd;
};

/*
 * The request head to send upstream, malloc'd, *len its length:
 * "METHOD origin-target HTTP/1.1", Host, then the guest's fields minus
 * hop-by-hop ones (Connection and what it names, Keep-Alive, TE, Trailer,
 * Proxy-*, Upgrade unless a websocket handshake), our own x-firebreak-*,
 * the framing fields (re-stated from what the parser decided) and every
 * copy of a replaced header (any case, '_' for '-'); then the set and
 * added fields.  NULL when out of memory.
 */
char *fb_rewrite_head(const struct fb_http_req *req,
		      const struct fb_head_edit *edit, size_t *len);

/* ---- forward.c ---------------------------------------------------------- */

struct fb_forward_target {
	char host[FB_NAME_MAX];  /* normalised */
	uint16_t port;
	char authority[FB_NAME_MAX + 8]; /* for Host: host[:port] */
	const char *path;        /* into the URL: the base path, */
	size_t path_len;         /* without a trailing '/' */
};

/* Split a rule's forwardURL ("https://host[:port][/path]").  -1 with err. */
int fb_forward_parse(const char *url, struct fb_forward_target *t,
		     char *err, size_t errsize);

/*
 * The headers a forward target receives besides the request's own:
 * x-firebreak-forwarded-host/-scheme/-port/-path and x-firebreak-token,
 * a JWT for `url` signed by `key` and bound to `req` (its method, and
 * https://sni[:port], path and query).  Strings live in `store` (freed with
 * fb_forward_fields_free).  Returns the number of fields, or -1 with err.
 */
#define FB_FORWARD_FIELDS 5
struct fb_forward_store {
	char port[8];
	char *path;
	char *token;
};
int fb_forward_fields(const struct fb_jwt_key *key, const char *url,
		      const char *sandbox_id, const char *sni, uint16_t port,
		      const struct fb_http_req *req,
		      struct fb_head_field out[FB_FORWARD_FIELDS],
		      struct fb_forward_store *store, char *err, size_t errsize);
void fb_forward_fields_free(struct fb_forward_store *store);

/* ---- upstream.c --------------------------------------------------------- */

/* The TLS client of every brokered connection: TLS 1.2+, peer verified
 * against the system roots plus `extra_ca` (a PEM file, or NULL), ALPN
 * http/1.1; and the sessions verified origins gave it, one per host name.
 * NULL with err set. */
struct fb_upstream *fb_upstream_new(const char *extra_ca, char *err,
				    size_t errsize);
void fb_upstream_free(struct fb_upstream *up);
/* A client SSL for `host` over `bio` (which it takes, even on failure;
 * NULL fails): SNI and hostname check set, and the session last kept for
 * `host`, if any, offered for resumption. */
SSL *fb_upstream_ssl(struct fb_upstream *up, BIO *bio, const char *host,
		     char *err, size_t errsize);
/* Free an upstream SSL.  `clean`: it ended between exchanges, its
 * session stays resumable; else (an error, a response cut short) the
 * session is not offered again. */
void fb_upstream_release(SSL *ssl, bool clean);
/* Does `policy` refuse an upstream connection dialled to `addr`, reached
 * through the CNAMEs of `chain` (NULL: none): its deny set covers the
 * address, or it does not allow a name of the chain?  A policy change
 * closes such a connection, live or parked. */
bool fb_upstream_denied(const struct fb_policy *policy,
			const struct sockaddr_storage *addr,
			const struct fb_chain *chain);

/* ---- pool.c ------------------------------------------------------------ */

struct fb_pool *fb_pool_new(void);
/* Closes every idle connection, then frees. */
void fb_pool_free(struct fb_pool *pool);
/*
 * Keep an upstream connection that ended between exchanges, verified and
 * with nothing unread or unsent, for the next guest connection to
 * host:port.  The pool takes `ssl` and the socket in `w` (watched for
 * `events` on `l` until now); its BIO reads through the pool's own copy
 * of `w` from here on.  `addr` is where it was dialled, and `chain`
 * (taken too; NULL: none) the CNAMEs host led through.
 */
void fb_pool_put(struct fb_pool *pool, struct fb_loop *l, SSL *ssl,
		 const struct wire *w, uint32_t events, const char *host,
		 uint16_t port, const struct sockaddr_storage *addr,
		 struct fb_chain *chain);
/*
 * The connection to host:port parked last, if any: *ssl, its socket in
 * *w (which its BIO reads through from now on), where it goes in *addr
 * and *chain (the caller's to free); its socket watched for EPOLLIN,
 * reported to fn(arg).
 */
bool fb_pool_take(struct fb_pool *pool, const char *host, uint16_t port,
		  SSL **ssl, struct wire *w, struct sockaddr_storage *addr,
		  struct fb_chain **chain, fb_io_fn *fn, void *arg);
/* Close every idle connection to an address `policy` denies, or reached
 * through a CNAME it does not allow.  Which names it brokers need no
 * check: a parked connection is only ever taken for a request the policy
 * in force sends to its host and port. */
void fb_pool_recheck(struct fb_pool *pool, const struct fb_policy *policy);

#endif /* FB_BROKER_H */
