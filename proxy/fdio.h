/*
 * fdio.h — descriptor plumbing shared by the proxy's file writers and the
 * command-line clients of the control sockets.
 */
#ifndef FB_FDIO_H
#define FB_FDIO_H

#include <stddef.h>

/*
 * Write all len bytes of p to fd, retrying short writes and EINTR.  A
 * socket is written with MSG_NOSIGNAL, so a peer that went away is an
 * EPIPE error here rather than a signal that kills the caller.  Returns 0,
 * or -1 with errno set by the failing call.
 */
int fb_write_all(int fd, const void *p, size_t len);
/* write(2) alone (no send(2) tried first: one call fewer for a file),
 * retrying short writes and EINTR; how many bytes went: len, or fewer
 * when a write failed (errno says why; ENOSPC for a file that took
 * nothing more).  The caller must ignore SIGPIPE if fd may be a socket. */
size_t fb_write_upto(int fd, const void *p, size_t len);

/*
 * A stream connection to the unix socket at path (close-on-exec).
 * Returns the descriptor, or -1 with errno set: ENAMETOOLONG when path
 * does not fit a socket address.
 */
int fb_unix_connect(const char *path);

#endif /* FB_FDIO_H */
