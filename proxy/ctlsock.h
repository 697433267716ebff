/*
 * ctlsock.h — the server side of the HTTP/1.1 unix sockets that drive
 * firebreak (the proxy's --control, firebreak-vmhost's --socket): one
 * place for what both promise their clients.  The socket is mode 0600,
 * a peer that is neither root nor our own uid is answered 403 and
 * closed, a request is one head and a Content-Length body, and an
 * answer carries a Content-Length and closes the connection.
 */
#ifndef FB_CTLSOCK_H
#define FB_CTLSOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proxy/http.h"
#include "proxy/loop.h"

/* the largest request head either socket reads */
#define FB_CTLSOCK_HEAD_MAX (64 * 1024)

/*
 * Listen at path, replacing a socket a previous run left there, and have
 * loop call on_accept(arg) when a connection waits.  Every error names
 * the path after `flag`, the option it came from ("--socket PATH: exists
 * and is not a socket").  Returns the descriptor, or -1 with err set.
 */
int fb_ctlsock_listen(struct fb_loop *l, const char *path, const char *flag,
		      fb_io_fn *on_accept, void *arg, char *err,
		      size_t errsize);

/* Stop listening on fd and remove path. */
void fb_ctlsock_close(struct fb_loop *l, int fd, const char *path);

/*
 * One connection from listening fd lfd, non-blocking and close-on-exec,
 * with its peer's credentials in *cred.  -1 when none waits, or when the
 * peer was refused (answered 403, then closed).
 */
int fb_ctlsock_accept(int lfd, struct ucred *cred);

/*
 * The head of a response on either socket into buf: the status line,
 * Content-Type type, Content-Length body_len, Connection: close, then
 * extra (more header lines, each ending in CRLF; NULL for none).  What
 * snprintf returns: size or more when it did not fit.
 */
int fb_ctlsock_head(char *buf, size_t size, int status, const char *type,
		    size_t body_len, const char *extra);

/*
 * Whether buf[0..len) holds one whole request whose body, if any, is at
 * most body_max bytes sent with a Content-Length.  0 while more is to
 * come: once the head is in, *whole is then the size of the whole
 * request, so that room for the body is made once.  1 when it is whole:
 * req is parsed, the body at buf + req->head_len.  Otherwise the HTTP
 * status refusing it, and in why the reason, one line without a newline.
 */
int fb_ctlsock_request(struct fb_http_req *req, const char *buf, size_t len,
		       int64_t body_max, size_t *whole, char *why,
		       size_t whysize);

/*
 * The size to make a request buffer of cap bytes, len of them read,
 * before reading more of a request whose body may be body_max bytes.
 * whole is fb_ctlsock_request's, or 0 before the head is in: while the
 * head comes the buffer doubles from 4096, and once the head is in it
 * is made the request's size at once.  Never more than
 * FB_CTLSOCK_HEAD_MAX + body_max, which holds every request admitted;
 * cap when there is room, 0 when the buffer is full at that limit.
 */
size_t fb_ctlsock_room(size_t len, size_t cap, size_t whole,
		       int64_t body_max);

/*
 * A request may hold literal secrets (a policy's header values), and an
 * answer may quote one (a diagnostic): the memory of either is wiped
 * before it is given up.  fb_ctlsock_move moves buf[0..len) into `to`,
 * then wipes and frees buf.
 */
void fb_ctlsock_wipe_free(void *buf, size_t len);
void fb_ctlsock_move(char *to, char *buf, size_t len);

#endif /* FB_CTLSOCK_H */
