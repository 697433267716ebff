/*
 * daemon.c — firebreak-vmhost's socket: HTTP/1.1 on a unix socket (mode
 * 0600, peers root or our own uid), one request per connection, the same
 * conventions as the proxy's control socket so `curl --unix-socket`
 * works.  Responses carry a Content-Length: a guest forked while a
 * connection was open holds a copy of it, so the peer cannot count on
 * seeing the connection close.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/ctlsock.h"
#include "proxy/fdio.h"
#include "vmhost/daemon.h"

#define REQUEST_TIMEOUT_MS 10000
/* A whole answer (a 64 MiB log, say) not taken by then is dropped, with
 * the client: one that stops reading must not hold it for good. */
#define ANSWER_TIMEOUT_MS 20000
#define BODY_MAX (16 * 1024 * 1024)

struct fb_client {
	struct fb_daemon *d;
	struct fb_client *prev, *next;
	int fd;
	struct ucred peer;      /* who is asking */
	char *in;
	size_t len, cap;
	size_t whole;           /* the request's size, once its head is in */
	char *out;
	size_t out_len, out_off, out_cap;
	bool answered;          /* close once out is sent */
	bool streaming;         /* out grows while the tick runs */
	struct fb_timer *timer; /* request deadline, or the follow tick */
	unsigned tick_ms;
	fb_client_tick_fn *tick;
	void *tick_arg;
};

struct fb_daemon *fb_client_daemon(struct fb_client *c)
{
	return c->d;
}

const struct ucred *fb_client_peer(const struct fb_client *c)
{
	return &c->peer;
}

void fb_client_close(struct fb_client *c)
{
	struct fb_daemon *d = c->d;

	fb_timer_cancel(d->loop, c->timer);
	fb_loop_del(d->loop, c->fd);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		d->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->tick_arg);
	fb_ctlsock_wipe_free(c->in, c->cap);
	fb_ctlsock_wipe_free(c->out, c->out_cap); /* flush resets out_len */
	free(c);
}

/* Send what is queued; 0 while the client lives, -1 once it is closed. */
static int flush(struct fb_client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off,
				 c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			fb_loop_mod(c->d->loop, c->fd, EPOLLIN | EPOLLOUT);
			return 0;
		}
		if (n < 0) {
			fb_client_close(c);
			return -1;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	fb_loop_mod(c->d->loop, c->fd, EPOLLIN);
	if (c->answered && !c->streaming) {
		fb_client_close(c);
		return -1;
	}
	return 0;
}

static int queue(struct fb_client *c, const char *p, size_t len)
{
	if (c->out_cap - c->out_len < len) {
		/* what was sent is dropped here: a stream that never
		 * drains whole would otherwise keep all it ever sent */
		size_t unsent = c->out_len - c->out_off;
		size_t cap = 2 * (unsent + len) + 4096; /* few copies */
		char *out = malloc(cap); /* not realloc: the old one is wiped */

		if (!out)
			return -1;
		if (unsent)
			memcpy(out, c->out + c->out_off, unsent);
		/* all of it: flush resets out_len, not what was sent */
		fb_ctlsock_wipe_free(c->out, c->out_cap);
		c->out = out;
		c->out_cap = cap;
		c->out_len = unsent;
		c->out_off = 0;
	}
	memcpy(c->out + c->out_len, p, len);
	c->out_len += len;
	return 0;
}

static void on_timeout(struct fb_loop *l, void *arg);

void fb_client_respond(struct fb_client *c, int status, const char *type,
		       const char *extra, const char *body, size_t len)
{
	char head[1024];
	int n = fb_ctlsock_head(head, sizeof head, status, type, len, extra);

	c->answered = true;
	if (n < 0 || (size_t)n >= sizeof head || queue(c, head, (size_t)n) < 0 ||
	    queue(c, body, len) < 0) {
		fb_client_close(c);
		return;
	}
	if (flush(c) == 0 && !c->timer)
		c->timer = fb_timer_add(c->d->loop, ANSWER_TIMEOUT_MS,
					on_timeout, c);
}

void fb_client_error(struct fb_client *c, int status, const char *fmt, ...)
{
	char body[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(body, sizeof body - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof body - 2)
		n = sizeof body - 2;
	body[n++] = '\n';
	fb_client_respond(c, status, "text/plain; charset=utf-8", NULL, body,
			  (size_t)n);
}

int fb_client_stream_begin(struct fb_client *c, const char *type)
{
	char head[256];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
			 "Connection: close\r\n\r\n", type);

	c->answered = c->streaming = true;
	return queue(c, head, (size_t)n);
}

size_t fb_client_queued(const struct fb_client *c)
{
	return c->out_len - c->out_off;
}

int fb_client_stream(struct fb_client *c, const char *p, size_t len)
{
	if (queue(c, p, len) < 0) {
		fb_client_close(c);
		return -1;
	}
	return flush(c);
}

static void on_tick(struct fb_loop *l, void *arg)
{
	struct fb_client *c = arg;

	c->timer = NULL;
	switch (c->tick(c, c->tick_arg)) {
	case 0:
		break;
	case -1: /* the client is already gone */
		return;
	default:
		fb_client_close(c);
		return;
	}
	c->timer = fb_timer_add(l, c->tick_ms, on_tick, c);
}

void fb_client_follow(struct fb_client *c, unsigned ms, fb_client_tick_fn *fn,
		      void *arg)
{
	fb_timer_cancel(c->d->loop, c->timer);
	c->tick_ms = ms;
	c->tick = fn;
	c->tick_arg = arg;
	c->timer = fb_timer_add(c->d->loop, ms, on_tick, c);
}

/* The request is complete when its head parses and its body is in. */
static void client_read(struct fb_client *c)
{
	size_t cap = fb_ctlsock_room(c->len, c->cap, c->whole, BODY_MAX);
	struct fb_http_req req;
	char why[256];
	ssize_t n;
	int rc;

	if (!cap) {
		fb_client_error(c, 413, "request over %d bytes",
				FB_CTLSOCK_HEAD_MAX + BODY_MAX);
		return;
	}
	if (cap != c->cap) {
		char *in = malloc(cap); /* not realloc: the old one is wiped */

		if (!in) {
			fb_client_error(c, 500, "out of memory");
			return;
		}
		fb_ctlsock_move(in, c->in, c->len);
		c->in = in;
		c->cap = cap;
	}
	n = recv(c->fd, c->in + c->len, c->cap - c->len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		fb_client_close(c);
		return;
	}
	c->len += (size_t)n;
	if (c->len < c->whole)
		return; /* the head is in and said how much: not all of it yet */
	rc = fb_ctlsock_request(&req, c->in, c->len, BODY_MAX, &c->whole, why,
				sizeof why);
	if (rc == 0)
		return;
	if (rc != 1) {
		fb_client_error(c, rc, "%s", why);
		return;
	}
	fb_timer_cancel(c->d->loop, c->timer);
	c->timer = NULL;
	fb_api_handle(c, &req, c->in + req.head_len,
		      req.content_length > 0 ? (size_t)req.content_length : 0);
}

static void on_client(struct fb_loop *l, int fd, uint32_t events, void *arg)
{
	struct fb_client *c = arg;
	char drain[512];

	(void)l;
	if (!c->answered) {
		client_read(c);
		return;
	}
	/* answered: input is the peer leaving (or noise to drop) */
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		ssize_t n = recv(fd, drain, sizeof drain, 0);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			fb_client_close(c);
			return;
		}
	}
	if (events & EPOLLOUT)
		flush(c);
}

static void on_timeout(struct fb_loop *l, void *arg)
{
	struct fb_client *c = arg;

	(void)l;
	c->timer = NULL;
	fb_client_close(c);
}

static void on_accept(struct fb_loop *l, int fd, uint32_t events, void *arg)
{
	struct fb_daemon *d = arg;
	struct ucred cred;
	struct fb_client *c;
	int cfd;

	(void)events;
	cfd = fb_ctlsock_accept(fd, &cred);
	if (cfd < 0) {
		fb_accept_pause(&d->pause, l, &d->listen_fd, 1, errno);
		return;
	}
	c = calloc(1, sizeof *c);
	if (!c || fb_loop_add(l, cfd, EPOLLIN, on_client, c) < 0) {
		free(c);
		close(cfd);
		return;
	}
	c->d = d;
	c->fd = cfd;
	c->peer = cred;
	c->next = d->clients;
	if (d->clients)
		d->clients->prev = c;
	d->clients = c;
	c->timer = fb_timer_add(l, REQUEST_TIMEOUT_MS, on_timeout, c);
}

int fb_daemon_lock(struct fb_daemon *d, char *err, size_t errsize)
{
	if (snprintf(d->lock_path, sizeof d->lock_path, "%s/%s", d->state_dir,
		     FB_DAEMON_LOCK) >= (int)sizeof d->lock_path) {
		snprintf(err, errsize, "--state-dir %s: path too long",
			 d->state_dir);
		return -1;
	}
	d->lock_fd = fb_lock_path(d->lock_path, err, errsize);
	if (d->lock_fd < 0 && errno == EWOULDBLOCK)
		snprintf(err, errsize, "--state-dir %s: another firebreak-vmhost "
			 "uses it (it holds %s); its sandboxes are not ours to "
			 "remove", d->state_dir, d->lock_path);
	return d->lock_fd < 0 ? -1 : 0;
}

void fb_daemon_unlock(struct fb_daemon *d)
{
	fb_unlock_path(d->lock_path, &d->lock_fd);
}

int fb_daemon_listen(struct fb_daemon *d, char *err, size_t errsize)
{
	/* fb_ctlsock_listen replaces a socket it finds, which is right for
	 * one a dead daemon left; a live one's clients would be taken from
	 * it without a word */
	int fd = fb_unix_connect(d->socket_path);

	if (fd >= 0) {
		close(fd);
		snprintf(err, errsize, "--socket %s: another firebreak-vmhost "
			 "listens there", d->socket_path);
		return -1;
	}
	d->listen_fd = fb_ctlsock_listen(d->loop, d->socket_path, "--socket",
					 on_accept, d, err, errsize);
	return d->listen_fd < 0 ? -1 : 0;
}

void fb_daemon_close(struct fb_daemon *d)
{
	while (d->clients)
		fb_client_close(d->clients);
	if (d->listen_fd >= 0) {
		fb_accept_pause_cancel(&d->pause);
		fb_ctlsock_close(d->loop, d->listen_fd, d->socket_path);
		d->listen_fd = -1;
	}
}
