/* fdio.c — whole-buffer writes (see fdio.h). */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proxy/fdio.h"

/* Bytes written of len; `as_socket`: send(2) first, for MSG_NOSIGNAL. */
static size_t write_loop(int fd, const char *p, size_t len, bool as_socket)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = as_socket ? send(fd, p + done, len - done,
					     MSG_NOSIGNAL)
				      : write(fd, p + done, len - done);

		if (n < 0 && errno == ENOTSOCK && as_socket) {
			as_socket = false;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC; /* a file that takes nothing more */
			break;
		}
		done += (size_t)n;
	}
	return done;
}

int fb_write_all(int fd, const void *p, size_t len)
{
	return write_loop(fd, p, len, true) == len ? 0 : -1;
}

size_t fb_write_upto(int fd, const void *p, size_t len)
{
	return write_loop(fd, p, len, false);
}

int fb_unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, saved;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}
