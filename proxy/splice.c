/* splice.c — zero-copy relay of one direction through a pipe. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "proxy/splice.h"

void fb_splice_init(struct fb_splice *s)
{
	*s = (struct fb_splice){ .pipe = { -1, -1 } };
}

/*
 * Empty pipes of closed connections, kept for the next ones: a new
 * connection otherwise pays pipe2, F_GETPIPE_SZ and two closes per
 * direction, a fifth of its system calls when it is short.  Only a pipe
 * known to be empty comes back here, so a connection never sees another's
 * bytes.  The pool is small: it absorbs churn, not a burst's high mark.
 */
#define POOL_MAX 32

static struct {
	int pipe[2];
	size_t cap;
} pool[POOL_MAX];
static size_t npool;

int fb_splice_open(struct fb_splice *s)
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

ssize_t fb_splice_pump(struct fb_splice *s, int in, int out)
{
	size_t moved = 0;

	for (;;) {
		bool progress = false;
		ssize_t n;

		if (!s->in_eof && s->queued < s->cap) {
			n = splice(in, NULL, s->pipe[1], NULL, s->cap - s->queued,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				s->queued += (size_t)n;
				progress = true;
			} else if (n == 0) {
				s->in_eof = true;
			} else if (errno == ECONNRESET) {
				s->in_eof = true; /* the peer went away: pass it on as EOF */
			} else if (errno != EAGAIN && errno != EINTR) {
				return -1;
			}
		}
		if (s->queued > 0) {
			n = splice(s->pipe[0], NULL, out, NULL, s->queued,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				s->queued -= (size_t)n;
				s->bytes += (uint64_t)n;
				moved += (size_t)n;
				progress = true;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				return -1;
			}
		}
		if (s->in_eof && s->queued == 0 && !s->out_shut) {
			shutdown(out, SHUT_WR);
			s->out_shut = true;
		}
		if (!progress)
			return (ssize_t)moved;
	}
}

bool fb_splice_wants_read(const struct fb_splice *s)
{
	return !s->in_eof && s->queued < s->cap;
}

bool fb_splice_wants_write(const struct fb_splice *s)
{
	return s->queued > 0;
}

bool fb_splice_done(const struct fb_splice *s)
{
	return s->out_shut;
}
