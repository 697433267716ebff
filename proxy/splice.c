/* splice.c — one relayed direction: copied while small, spliced once not. */
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/splice.h"

/*
 * The copy buffer, shared by every connection: the proxy is one thread
 * and no copy outlives fb_splice_pump.  What the reader refuses of it is
 * written into an empty pipe, which must take it whole; the smallest pipe
 * the kernel makes (for a user over fs.pipe-user-pages-soft) is two
 * pages, so 8 KiB always fits.
 */
#define COPY_MAX 8192
static char copy_buf[COPY_MAX];

/*
 * Empty pipes of closed connections, kept for the next ones: a pipe
 * otherwise costs pipe2, F_GETPIPE_SZ and two closes.  Only a pipe known
 * to be empty comes back here, so a connection never sees another's
 * bytes.  The pool is small: it absorbs churn, not a burst's high mark.
 */
#define POOL_MAX 32

static struct {
	int pipe[2];
	size_t cap;
} pool[POOL_MAX];
static size_t npool;

void fb_splice_init(struct fb_splice *s)
{
	*s = (struct fb_splice){ .pipe = { -1, -1 }, .out_ready = true };
}

/* From now on this direction splices: a pipe from the pool or a new one. */
static int pipe_take(struct fb_splice *s)
{
	int cap;

	if (npool > 0) {
		npool--;
		s->pipe[0] = pool[npool].pipe[0];
		s->pipe[1] = pool[npool].pipe[1];
		s->cap = pool[npool].cap;
		return 0;
	}
	if (pipe2(s->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	cap = fcntl(s->pipe[0], F_GETPIPE_SZ);
	s->cap = cap > 0 ? (size_t)cap : 4096;
	return 0;
}

void fb_splice_close(struct fb_splice *s)
{
	if (s->pipe[0] >= 0 && s->queued == 0 && npool < POOL_MAX) {
		pool[npool].pipe[0] = s->pipe[0];
		pool[npool].pipe[1] = s->pipe[1];
		pool[npool].cap = s->cap;
		npool++;
	} else if (s->pipe[0] >= 0) {
		close(s->pipe[0]);
		close(s->pipe[1]);
	}
	s->pipe[0] = s->pipe[1] = -1;
}

void fb_splice_pool_drain(void)
{
	while (npool > 0) {
		npool--;
		close(pool[npool].pipe[0]);
		close(pool[npool].pipe[1]);
	}
}

void fb_splice_event_in(struct fb_splice *s, uint32_t events)
{
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		s->in_ready = true;
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		s->in_hup = true;
}

void fb_splice_event_out(struct fb_splice *s, uint32_t events)
{
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		s->out_ready = true;
}

enum fb_splice_read fb_splice_read_seen(struct fb_splice *s, ssize_t n,
					size_t room)
{
	if (n == 0 || (n < 0 && errno == ECONNRESET)) {
		s->in_eof = true;
		return FB_READ_EOF;
	}
	if (n < 0 && errno == EINTR)
		return FB_READ_RETRY;
	if (n < 0 && errno == EAGAIN) {
		s->in_ready = false;
		return FB_READ_DRY;
	}
	if (n < 0)
		return FB_READ_ERROR;
	/* A short read took all there was: more comes with a new edge.  An
	 * EOF seen behind the data comes with none, so read on to it. */
	if ((size_t)n < room && !s->in_hup)
		s->in_ready = false;
	return FB_READ_BYTES;
}

/* Bytes `out` refused go into a pipe, where they wait for it. */
static int stash(struct fb_splice *s, const char *p, size_t len)
{
	ssize_t n;

	if (pipe_take(s) < 0)
		return -1;
	n = write(s->pipe[1], p, len);
	if (n > 0)
		s->queued = (size_t)n; /* a pipe holding bytes is never pooled */
	if (n != (ssize_t)len) {
		if (n >= 0)
			errno = ENOSPC; /* an empty pipe took less than 8 KiB */
		return -1;
	}
	return 0;
}

/*
 * One recv and send through the copy buffer.  1: go on, 0: `in` ran dry
 * or ended, -1: error.
 */
static int copy_once(struct fb_splice *s, int in, int out, size_t *moved)
{
	ssize_t n = recv(in, copy_buf, COPY_MAX, 0);
	ssize_t w;

	switch (fb_splice_read_seen(s, n, COPY_MAX)) {
	case FB_READ_RETRY:
		return 1;
	case FB_READ_DRY:
	case FB_READ_EOF:
		return 0;
	case FB_READ_ERROR:
		return -1;
	case FB_READ_BYTES:
		break;
	}
	w = send(out, copy_buf, (size_t)n, MSG_NOSIGNAL);
	if (w < 0 && errno != EAGAIN && errno != EINTR)
		return -1;
	if (w < 0)
		w = 0;
	s->bytes += (uint64_t)w;
	*moved += (size_t)w;
	if (w < n) {
		s->out_ready = false;
		return stash(s, copy_buf + w, (size_t)(n - w)) < 0 ? -1 : 1;
	}
	/* A full read: a bulk transfer, spliced from now on.  Without a
	 * pipe (out of descriptors) it simply goes on being copied. */
	if (n == COPY_MAX)
		pipe_take(s);
	return 1;
}

/*
 * socket -> pipe.  1: bytes moved (or retry), 0: none, -1: error.  The
 * pipe's slots can fill before its bytes do, and that bends the read rule
 * twice: a splice may stop short at them rather than at the socket's end,
 * so it counts as a full read (room = n) and the next one finds out; and
 * with bytes in the pipe, EAGAIN may mean the slots are full, not that the
 * socket ran dry: then the read is tried again once the pipe drains.
 */
static int pipe_fill(struct fb_splice *s, int in)
{
	ssize_t n = splice(in, NULL, s->pipe[1], NULL, s->cap - s->queued,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

	if (n < 0 && errno == EAGAIN && s->queued > 0)
		return 0;
	switch (fb_splice_read_seen(s, n, n > 0 ? (size_t)n : 0)) {
	case FB_READ_BYTES:
		s->queued += (size_t)n;
		return 1;
	case FB_READ_RETRY:
		return 1;
	case FB_READ_ERROR:
		return -1;
	case FB_READ_DRY:
	case FB_READ_EOF:
		break;
	}
	return 0;
}

/* socket -> pipe -> socket until neither side moves.  0, or -1. */
static int splice_loop(struct fb_splice *s, int in, int out, size_t *moved)
{
	for (;;) {
		bool progress = false;
		ssize_t n;

		if (s->in_ready && !s->in_eof && s->queued < s->cap) {
			int rc = pipe_fill(s, in);

			if (rc < 0)
				return -1;
			progress = rc > 0;
		}
		if (s->queued > 0 && s->out_ready) {
			n = splice(s->pipe[0], NULL, out, NULL, s->queued,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				s->queued -= (size_t)n;
				s->bytes += (uint64_t)n;
				*moved += (size_t)n;
				progress = true;
			} else if (n < 0 && errno == EAGAIN) {
				s->out_ready = false;
			} else if (n < 0 && errno == EINTR) {
				progress = true;
			} else if (n < 0) {
				return -1;
			}
		}
		if (!progress)
			return 0;
	}
}

ssize_t fb_splice_pump(struct fb_splice *s, int in, int out)
{
	size_t moved = 0;
	int rc = 1;

	while (rc > 0 && s->pipe[0] < 0 && s->in_ready && !s->in_eof)
		rc = copy_once(s, in, out, &moved);
	if (rc < 0)
		return -1;
	if (s->pipe[0] >= 0 && splice_loop(s, in, out, &moved) < 0)
		return -1;
	return (ssize_t)moved;
}

bool fb_splice_done(const struct fb_splice *s)
{
	return s->in_eof && s->queued == 0;
}

void fb_splice_shut(struct fb_splice *s, int out)
{
	if (s->out_shut)
		return;
	shutdown(out, SHUT_WR);
	s->out_shut = true;
}
