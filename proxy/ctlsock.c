/* ctlsock.c — the control sockets' listening, peer check and requests
 * (see ctlsock.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "proxy/ctlsock.h"

int fb_ctlsock_listen(struct fb_loop *l, const char *path, const char *flag,
		      fb_io_fn *on_accept, void *arg, char *err,
		      size_t errsize)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	bool bound;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errsize, "%s %s: path too long", flag, path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	/* A socket left by a previous run is replaced; anything else at
	 * that path is not ours to remove. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errsize, "%s %s: exists and is not a socket",
				 flag, path);
			return -1;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errsize, "%s %s: socket: %s", flag, path,
			 strerror(errno));
		return -1;
	}
	/* the umask makes the socket 0600 from its first moment; chmod
	 * only says so again */
	old = umask(0177);
	bound = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	umask(old);
	if (!bound || chmod(path, 0600) < 0 || listen(fd, 128) < 0 ||
	    fb_loop_add(l, fd, EPOLLIN, on_accept, arg) < 0) {
		snprintf(err, errsize, "%s %s: %s", flag, path, strerror(errno));
		if (bound)
			unlink(path);
		close(fd);
		return -1;
	}
	return fd;
}

void fb_ctlsock_close(struct fb_loop *l, int fd, const char *path)
{
	fb_loop_del(l, fd);
	close(fd);
	unlink(path);
}

int fb_ctlsock_accept(int lfd, struct ucred *cred)
{
	socklen_t len = sizeof(*cred);
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) < 0 ||
	    (cred->uid != 0 && cred->uid != getuid())) {
		char no[160];
		int n = fb_ctlsock_head(no, sizeof(no), 403, "text/plain", 0, NULL);

		send(fd, no, (size_t)n, MSG_NOSIGNAL);
		close(fd);
		errno = EACCES; /* not a shortage: no pause (accept_pause.h) */
		return -1;
	}
	return fd;
}

int fb_ctlsock_head(char *buf, size_t size, int status, const char *type,
		    size_t body_len, const char *extra)
{
	return snprintf(buf, size,
			"HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
			"Content-Length: %zu\r\nConnection: close\r\n%s\r\n",
			status, fb_http_status_text(status), type, body_len,
			extra ? extra : "");
}

int fb_ctlsock_request(struct fb_http_req *req, const char *buf, size_t len,
		       int64_t body_max, size_t *whole, char *why,
		       size_t whysize)
{
	static const struct fb_http_limits limits = {
		.max_line = 8192, .max_head = FB_CTLSOCK_HEAD_MAX,
		.max_fields = 64,
	};

	fb_http_req_init(req);
	switch (fb_http_parse_head(req, buf, len, &limits)) {
	case FB_HTTP_NEED_MORE:
		return 0;
	case FB_HTTP_ERROR:
		snprintf(why, whysize, "bad request: %s",
			 fb_http_error_str(req->error));
		return fb_http_error_status(req->error);
	case FB_HTTP_DONE:
		break;
	}
	if (req->chunked) {
		snprintf(why, whysize, "send the body with a Content-Length");
		return 411;
	}
	if (req->content_length > body_max) {
		snprintf(why, whysize, "body over the %lld-byte limit",
			 (long long)body_max);
		return 413;
	}
	if (req->content_length > 0 &&
	    len - req->head_len < (size_t)req->content_length) {
		*whole = req->head_len + (size_t)req->content_length;
		return 0;
	}
	return 1;
}

size_t fb_ctlsock_room(size_t len, size_t cap, size_t whole,
		       int64_t body_max)
{
	size_t limit = FB_CTLSOCK_HEAD_MAX + (size_t)body_max;
	size_t want;

	if (len < cap && whole <= cap)
		return cap;
	if (whole > cap)
		want = whole;
	else
		want = cap ? cap * 2 : 4096;
	if (want > limit)
		want = limit;
	return want == cap ? 0 : want;
}

void fb_ctlsock_wipe_free(void *buf, size_t len)
{
	if (buf)
		explicit_bzero(buf, len);
	free(buf);
}

void fb_ctlsock_move(char *to, char *buf, size_t len)
{
	if (len)
		memcpy(to, buf, len);
	fb_ctlsock_wipe_free(buf, len);
}
