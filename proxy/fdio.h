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

/*
 * A stream connection to the unix socket at path (close-on-exec).
 * Returns the descriptor, or -1 with errno set: ENAMETOOLONG when path
 * does not fit a socket address.
 */
int fb_unix_connect(const char *path);

#endif /* FB_FDIO_H */
