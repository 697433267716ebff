/*
 * conn.h — one guest connection; shared by conn.c (the state machine),
 * conn_peek.c (naming the destination) and conn_http.c (checking every
 * plain HTTP request).  Internal to proxy/.
 */
#ifndef FB_CONN_H
#define FB_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "proxy/core.h"
#include "proxy/peek.h"
#include "proxy/splice.h"

enum conn_state { C_PEEK, C_RESOLVE, C_DIAL, C_PG_UP, C_REPLAY, C_RELAY, C_DRAIN };
enum conn_proto { P_UNKNOWN, P_TLS, P_HTTP, P_POSTGRES };

struct conn_peek;   /* conn_peek.c */
struct conn_http;   /* conn_http.c */

struct conn {
	struct fb_proxy *p;
	struct conn *prev, *next;
	uint64_t id;
	enum conn_state state;
	enum conn_proto proto;
	/* what a policy change re-decides from, together at the front: a
	 * recheck reads them in every connection */
	struct fb_policy *policy;     /* decided under (one reference) */
	uint64_t generation;
	struct fb_chain *chain;       /* the CNAMEs the name led through */
	struct fb_addr dst_addr, upstream_addr;
	bool has_name;
	bool by_name;                 /* dialled to the name's answer, not to
				       * dst_addr (conn.c, route_holds) */
	char name[FB_NAME_MAX];       /* normalised SNI / Host */

	int cfd, ufd;                 /* guest side, upstream side; -1: none */
	bool cfd_out;                 /* EPOLLOUT is watched on cfd */
	struct sockaddr_storage src;  /* the guest */
	struct sockaddr_storage dst;  /* where the guest meant to go */
	struct sockaddr_storage up;   /* where we dialled */
	const char *peek_reason;      /* why there is no name, or NULL */
	bool ech;                     /* the hello offered ECH: outer SNI */
	/* the deciding key (in `policy`, or NULL) and why it allows: a
	 * policy change that keeps the connection re-decides both */
	const char *rule;
	const char *allow_reason;
	const char *why;              /* DRAIN: the refusal reason */
	bool decided;                 /* the decision line is logged */
	bool peeking;                 /* counted in stats.peeking */

	/* the peeked bytes; for plain HTTP, then the guest's bytes not yet
	 * sent upstream (conn_http.c) */
	uint8_t *buf;
	size_t cap;                   /* buf's size, grown up to FB_PEEK_MAX */
	size_t len, off;              /* filled; replayed so far */
	uint64_t replayed;
	struct conn_peek *pk;

	struct fb_timer *timer;       /* peek deadline, dial, idle or drain */
	struct fb_resolve_req *rreq;
	/* the two directions; also, from accept on, the readiness of the
	 * sockets' sides (to_up: guest readable, upstream writable) */
	struct fb_splice to_up, to_down;
	uint64_t start_ms, last_ms;

	bool http;                    /* guest -> upstream read and checked */
	uint64_t http_up;
	struct conn_http *hr;
};

/* A relay step that refused (or closed) the connection itself. */
#define CONN_GONE (-2)

const char *fb_conn_proto_str(enum conn_proto p);

/* conn.c */
void fb_conn_decide(struct conn *c);                /* the peek is done */
void fb_conn_refuse(struct conn *c, const char *reason); /* alert / 403 */
void fb_conn_misdirected(struct conn *c, const char *reason); /* HTTP 421 */
void fb_conn_close(struct conn *c, const char *why);     /* frees c */
void fb_conn_relay(struct conn *c, uint32_t events);
/* the idle deadline becomes the pause allowed to the upstream's answers
 * before a refused request's (conn_http.c) */
void conn_await_answers(struct conn *c);

/* conn.c: c->buf holds at least `want` bytes (at most FB_PEEK_MAX); 0, -1 */
int conn_buf_grow(struct conn *c, size_t want);

/* conn_peek.c: c->buf[0..len) grew; decide, ask for more, or refuse.
 * 0: more bytes are wanted; 1: c was decided or closed (may be gone). */
int conn_peek_init(struct conn *c);
int conn_peek_step(struct conn *c);
void conn_peek_free(struct conn *c);

/* conn_http.c: plain HTTP, guest -> upstream, request by request */
int conn_http_start(struct conn *c);
ssize_t conn_http_pump(struct conn *c);  /* bytes forwarded, -1, CONN_GONE */
bool conn_http_done(const struct conn *c);
/* the guest's bytes wait for the answer to an Upgrade request; the
 * upstream's first bytes, peeked, tell it (101: the rest is not HTTP) */
bool conn_http_awaits_answer(const struct conn *c);
void conn_http_answer(struct conn *c);
/* why a request behind others was refused, or NULL; its answer goes
 * after theirs */
const char *conn_http_refusal(const struct conn *c);
void conn_http_refuse_now(struct conn *c);
void conn_http_free(struct conn *c);

#endif /* FB_CONN_H */
