/* test_ctlsock.c — the control sockets' shared server side: the socket
 * is 0600 and replaces only a socket, a foreign uid is answered 403, a
 * request is whole once its Content-Length body is in, its buffer holds
 * every request admitted, and an answer's head is the one both send. */
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxy/ctlsock.h"
#include "proxy/fdio.h"

#define NOBODY 65534

struct sock {
	struct fb_loop *loop;
	char dir[32];
	char path[64];
};

static void on_accept(struct fb_loop *l, int fd, uint32_t events, void *arg)
{
	(void)l;
	(void)fd;
	(void)events;
	(void)arg;
	fail_msg("the loop never runs here");
}

static int setup(void **state)
{
	struct sock *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	strcpy(s->dir, "/tmp/fb-ctlsock-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->path, sizeof(s->path), "%s/control.sock", s->dir);
	s->loop = fb_loop_new();
	assert_non_null(s->loop);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct sock *s = *state;

	unlink(s->path);
	rmdir(s->dir);
	fb_loop_free(s->loop);
	free(s);
	return 0;
}

static int listen_at(struct sock *s, char *err, size_t errsize)
{
	return fb_ctlsock_listen(s->loop, s->path, "--test", on_accept, NULL,
				 err, errsize);
}

/* The next connection on lfd, once one waits. */
static int accept_one(int lfd, struct ucred *cred)
{
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };

	assert_int_equal(poll(&pfd, 1, 5000), 1);
	return fb_ctlsock_accept(lfd, cred);
}

static void test_replaces_a_stale_socket(void **state)
{
	struct sock *s = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cred;
	struct stat st;
	char err[256];
	int stale, lfd, c, a;

	strcpy(sa.sun_path, s->path);
	stale = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(stale, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(stale);

	lfd = listen_at(s, err, sizeof(err));
	assert_true(lfd >= 0);
	assert_int_equal(lstat(s->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);

	c = fb_unix_connect(s->path);
	assert_true(c >= 0);
	a = accept_one(lfd, &cred);
	assert_true(a >= 0);
	assert_int_equal(cred.uid, getuid());
	close(a);
	close(c);

	fb_ctlsock_close(s->loop, lfd, s->path);
	assert_int_equal(access(s->path, F_OK), -1);
}

static void test_refuses_what_is_not_a_socket(void **state)
{
	struct sock *s = *state;
	char err[256], want[256];
	int fd = open(s->path, O_WRONLY | O_CREAT | O_EXCL, 0600);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(listen_at(s, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "--test %s: exists and is not a socket",
		 s->path);
	assert_string_equal(err, want);
	assert_int_equal(access(s->path, F_OK), 0); /* left where it was */
}

static void test_refuses_a_long_path(void **state)
{
	struct sock *s = *state;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	char err[512], want[512];

	memset(path, 'a', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(fb_ctlsock_listen(s->loop, path, "--test", on_accept,
					   NULL, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "--test %s: path too long", path);
	assert_string_equal(err, want);
}

/* The child's exit status: 0 when it was answered 403, then closed. */
static int connect_as_nobody(const char *path)
{
	static const char want[] =
		"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
		"Content-Length: 0\r\nConnection: close\r\n\r\n";
	char buf[256];
	size_t len = 0;
	ssize_t n;
	int fd;

	if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
		return 2;
	fd = fb_unix_connect(path);
	if (fd < 0)
		return 3;
	while ((n = read(fd, buf + len, sizeof(buf) - len)) > 0)
		len += (size_t)n;
	if (n < 0)
		return 4;
	return len == sizeof(want) - 1 && memcmp(buf, want, len) == 0 ? 0 : 5;
}

static void test_foreign_uid_gets_403(void **state)
{
	struct sock *s = *state;
	struct ucred cred;
	char err[256];
	int lfd, status;
	pid_t pid;

	if (geteuid() != 0)
		skip(); /* only root can be another uid */
	lfd = listen_at(s, err, sizeof(err));
	assert_true(lfd >= 0);
	/* the modes would stop nobody at connect(2): opened, so that what
	 * refuses it is the peer check */
	assert_int_equal(chmod(s->dir, 0711), 0);
	assert_int_equal(chmod(s->path, 0666), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(connect_as_nobody(s->path));
	assert_int_equal(accept_one(lfd, &cred), -1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	fb_ctlsock_close(s->loop, lfd, s->path);
}

static void test_request_whole_once_its_body_is_in(void **state)
{
	static const char put[] =
		"PUT /policy HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody";
	static const char chunked[] =
		"PUT /policy HTTP/1.1\r\nHost: x\r\n"
		"Transfer-Encoding: chunked\r\n\r\n";
	size_t head = sizeof(put) - 1 - 4, whole = 0;
	struct fb_http_req req;
	char why[128];

	(void)state;
	assert_int_equal(fb_ctlsock_request(&req, put, head - 2, 4, &whole,
					    why, sizeof(why)), 0);
	assert_int_equal(whole, 0);
	assert_int_equal(fb_ctlsock_request(&req, put, head + 1, 4, &whole,
					    why, sizeof(why)), 0);
	assert_int_equal(whole, sizeof(put) - 1);
	assert_int_equal(fb_ctlsock_request(&req, put, sizeof(put) - 1, 4,
					    &whole, why, sizeof(why)), 1);
	assert_int_equal(req.head_len, head);
	assert_int_equal(fb_ctlsock_request(&req, put, sizeof(put) - 1, 3,
					    &whole, why, sizeof(why)), 413);
	assert_string_equal(why, "body over the 3-byte limit");
	assert_int_equal(fb_ctlsock_request(&req, chunked, sizeof(chunked) - 1,
					    4, &whole, why, sizeof(why)), 411);
}

static void test_response_head(void **state)
{
	static const char want[] =
		"HTTP/1.1 412 Precondition Failed\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Length: 5\r\nConnection: close\r\n"
		"ETag: \"3\"\r\n\r\n";
	char head[256];

	(void)state;
	assert_int_equal(fb_ctlsock_head(head, sizeof(head), 412,
					 "text/plain; charset=utf-8", 5,
					 "ETag: \"3\"\r\n"), sizeof(want) - 1);
	assert_string_equal(head, want);
	fb_ctlsock_head(head, sizeof(head), 201, "application/json", 0, NULL);
	assert_string_equal(head, "HTTP/1.1 201 Created\r\n"
			    "Content-Type: application/json\r\n"
			    "Content-Length: 0\r\nConnection: close\r\n\r\n");
}

#define BODY_MAX (16 << 20)
#define LIMIT (FB_CTLSOCK_HEAD_MAX + BODY_MAX)

static void test_room_doubles_then_fits_the_request(void **state)
{
	(void)state;
	assert_int_equal(fb_ctlsock_room(0, 0, 0, BODY_MAX), 4096);
	assert_int_equal(fb_ctlsock_room(100, 4096, 0, BODY_MAX), 4096);
	assert_int_equal(fb_ctlsock_room(4096, 4096, 0, BODY_MAX), 8192);
	/* once the head is in, the whole request at once, however large */
	assert_int_equal(fb_ctlsock_room(100, 4096, 5000, BODY_MAX), 5000);
	assert_int_equal(fb_ctlsock_room(100, 4096, LIMIT, BODY_MAX), LIMIT);
	assert_int_equal(fb_ctlsock_room(100, LIMIT, LIMIT, BODY_MAX), LIMIT);
	/* doubling stops at the limit, and a buffer full there is refused */
	assert_int_equal(fb_ctlsock_room(LIMIT / 2 + 1, LIMIT / 2 + 1, 0,
					 BODY_MAX), LIMIT);
	assert_int_equal(fb_ctlsock_room(LIMIT, LIMIT, 0, BODY_MAX), 0);
}

/*
 * A request read as a control socket reads it, 64 KiB a recv: the
 * largest cap reached, and the verdict (1 whole, or the refusing
 * status).
 */
static int read_request(const char *buf, size_t size, size_t *max_cap)
{
	struct fb_http_req req;
	size_t len = 0, cap = 0, whole = 0;
	char why[128];
	int rc = 0;

	*max_cap = 0;
	while (rc == 0 && len < size) {
		size_t n = 64 * 1024;

		cap = fb_ctlsock_room(len, cap, whole, BODY_MAX);
		assert_true(cap > len);
		if (cap > *max_cap)
			*max_cap = cap;
		if (n > cap - len)
			n = cap - len;
		if (n > size - len)
			n = size - len;
		len += n;
		if (len >= whole)
			rc = fb_ctlsock_request(&req, buf, len, BODY_MAX,
						&whole, why, sizeof(why));
	}
	return rc;
}

static void test_every_admitted_body_fits(void **state)
{
	static const char fmt[] =
		"PUT /policy HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n";
	char *buf = malloc(LIMIT + 1);
	size_t max_cap;
	int head;

	(void)state;
	assert_non_null(buf);
	memset(buf, 'x', LIMIT + 1);
	/* the largest body admitted, and one byte under it */
	for (int body = BODY_MAX - 1; body <= BODY_MAX; body++) {
		head = snprintf(buf, 128, fmt, body);
		buf[head] = 'x';
		assert_int_equal(read_request(buf, (size_t)(head + body),
					      &max_cap), 1);
		assert_int_equal(max_cap, head + body);
	}
	/* one byte over: refused from the head, the buffer still small */
	head = snprintf(buf, 128, fmt, BODY_MAX + 1);
	buf[head] = 'x';
	assert_int_equal(read_request(buf, (size_t)head + BODY_MAX + 1,
				      &max_cap), 413);
	assert_int_equal(max_cap, 4096);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_replaces_a_stale_socket,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_what_is_not_a_socket,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_a_long_path,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_uid_gets_403,
						setup, teardown),
		cmocka_unit_test(test_request_whole_once_its_body_is_in),
		cmocka_unit_test(test_response_head),
		cmocka_unit_test(test_room_doubles_then_fits_the_request),
		cmocka_unit_test(test_every_admitted_body_fits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
