/* fdio.c — whole-buffer writes (see fdio.h). */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/fdio.h"

int fb_write_all(int fd, const void *p, size_t len)
{
	const char *at = p;
	int is_socket = 1;

	while (len > 0) {
		ssize_t n = is_socket ? send(fd, at, len, MSG_NOSIGNAL)
				      : write(fd, at, len);

		if (n < 0 && errno == ENOTSOCK && is_socket) {
			is_socket = 0;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		at += n;
		len -= (size_t)n;
	}
	return 0;
}
