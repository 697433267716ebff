/* fdio.c — whole-buffer writes (see fdio.h). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
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
