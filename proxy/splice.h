/*
 * splice.h — one direction of a relayed connection.
 *
 * Most connections are short: a handshake, a request, an answer, a few
 * hundred bytes each way.  For those a pipe costs more than it saves, so a
 * direction starts by copying: recv(2) into a buffer shared by all
 * connections, send(2) at once.  Only when the reader cannot take
 * everything, or a read fills the whole buffer (a bulk transfer), does the
 * direction take a pipe and splice(2) from then on, so that a large
 * payload never enters user space and data waiting for a slow reader
 * waits in the kernel, not in the proxy's memory.  One direction holds at
 * most one pipe's worth of data.
 *
 * The sockets are watched edge-triggered: the caller reports each epoll
 * event with fb_splice_event_in / fb_splice_event_out, and the pump moves
 * data only on a side known to be ready, until that side runs dry or full.
 */
#ifndef FB_SPLICE_H
#define FB_SPLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct fb_splice {
	int pipe[2];    /* [0] read end, [1] write end; -1 while copying */
	size_t queued;  /* bytes in the pipe */
	size_t cap;     /* the pipe's capacity */
	bool in_ready;  /* `in` may hold bytes or EOF (an edge since it ran dry) */
	bool in_hup;    /* `in` reported EOF ahead: read on until recv says 0 */
	bool out_ready; /* `out` may take bytes (no EAGAIN since its last edge) */
	bool in_eof;    /* the source said EOF (or was reset) */
	bool out_shut;  /* EOF passed on: shutdown(SHUT_WR) done */
	uint64_t bytes; /* delivered to `out` */
};

/* Fresh sockets: `out` can take bytes, `in` waits for its first edge. */
void fb_splice_init(struct fb_splice *s);
/* Give the pipe back: kept for reuse if it is empty, else closed. */
void fb_splice_close(struct fb_splice *s);
/* Close the pipes kept for reuse (at exit, or to free descriptors). */
void fb_splice_pool_drain(void);

/* An epoll event on the source socket / on the destination socket. */
void fb_splice_event_in(struct fb_splice *s, uint32_t events);
void fb_splice_event_out(struct fb_splice *s, uint32_t events);

/*
 * What one read from the source socket said, as fb_splice_read_seen sorts
 * it.  Every reader of a watched source (the pump, the peek, the plain
 * HTTP relay) goes by it, so that none waits for an edge that never comes.
 */
enum fb_splice_read {
	FB_READ_BYTES, /* n > 0; in_ready says whether more may wait */
	FB_READ_RETRY, /* EINTR: read again */
	FB_READ_DRY,   /* EAGAIN: in_ready cleared until the next edge */
	FB_READ_EOF,   /* 0, or a reset (passed on as an EOF): in_eof set */
	FB_READ_ERROR, /* any other error, left in errno */
};

/* Note in `s` what a read of `room` bytes at most, which returned `n`
 * (errno set when negative), says about the source. */
enum fb_splice_read fb_splice_read_seen(struct fb_splice *s, ssize_t n,
					size_t room);

/*
 * Move what can move now from `in` to `out` without blocking.  Returns
 * the bytes delivered to `out` (0 too when nothing could move), or -1 on
 * an error of either socket, or when no pipe could be had to hold bytes
 * `out` refused (errno set).  Never shuts `out` down: see fb_splice_done.
 */
ssize_t fb_splice_pump(struct fb_splice *s, int in, int out);

/* The source is at EOF and everything it sent is delivered: `out` may be
 * shut down for writing (fb_splice_shut), or simply closed. */
bool fb_splice_done(const struct fb_splice *s);
/* Pass the EOF on as a half-close, once. */
void fb_splice_shut(struct fb_splice *s, int out);

#endif /* FB_SPLICE_H */
