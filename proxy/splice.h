/*
 * splice.h — one direction of a relayed connection: socket -> pipe ->
 * socket with splice(2), so the payload never enters user space.
 *
 * A pipe is the kernel buffer between the two sockets; data waits in it
 * while the writer is slow, and reading stops while it is full, so one
 * direction holds at most one pipe's worth of data.
 */
#ifndef FB_SPLICE_H
#define FB_SPLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fb_splice {
	int pipe[2];   /* [0] read end, [1] write end; -1 when not open */
	size_t queued; /* bytes in the pipe */
	size_t cap;    /* the pipe's capacity */
	bool in_eof;   /* the source said EOF (or failed) */
	bool out_shut; /* EOF passed on: shutdown(SHUT_WR) done */
	uint64_t bytes;
};

void fb_splice_init(struct fb_splice *s);
/*
 * Create the pipe, or take an empty one a closed connection left.  0, or
 * -1 with errno set.  Closing keeps the pipe for reuse if it is empty.
 */
int fb_splice_open(struct fb_splice *s);
void fb_splice_close(struct fb_splice *s);
/* Close the pipes kept for reuse (at exit, or to free descriptors). */
void fb_splice_pool_drain(void);

/*
 * Move what can move now from `in` to `out` without blocking.  Returns
 * the bytes delivered to `out` (0 too when nothing could move), or -1 on
 * an error of either socket (errno set).  When the source is at EOF and
 * the pipe is empty, `out` is shut down for writing (half-close).
 */
ssize_t fb_splice_pump(struct fb_splice *s, int in, int out);

/* Whether this direction wants `in` readable / `out` writable. */
bool fb_splice_wants_read(const struct fb_splice *s);
bool fb_splice_wants_write(const struct fb_splice *s);
/* Source at EOF and everything delivered. */
bool fb_splice_done(const struct fb_splice *s);

#endif /* FB_SPLICE_H */
