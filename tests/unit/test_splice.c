/* test_splice.c — one relay direction over real TCP sockets on loopback:
 * bytes arrive intact, a full reader stops the pump, EOF is passed on as
 * a half-close while the other direction stays open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "proxy/splice.h"

/* A connected TCP pair on 127.0.0.1: *a non-blocking, *b blocking. */
static void tcp_pair(int *a, int *b)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &len), 0);
	*b = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(*b, (struct sockaddr *)&sa, sizeof(sa)), 0);
	*a = accept(l, NULL, NULL);
	assert_true(*a >= 0);
	fcntl(*a, F_SETFL, O_NONBLOCK);
	close(l);
}

static void test_relay_and_half_close(void **state)
{
	int guest, in, out, origin;
	struct fb_splice s;
	char buf[300000], got[300000];
	size_t have = 0;

	(void)state;
	tcp_pair(&in, &guest);      /* guest writes, the relay reads `in` */
	tcp_pair(&out, &origin);    /* the relay writes `out`, origin reads */
	fcntl(origin, F_SETFL, O_NONBLOCK);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7);

	fb_splice_init(&s);
	assert_int_equal(fb_splice_open(&s), 0);
	assert_true(fb_splice_wants_read(&s));
	assert_false(fb_splice_wants_write(&s));

	/* more than socket buffers and the pipe hold: pump and drain in turn */
	size_t sent = 0;
	fcntl(guest, F_SETFL, O_NONBLOCK);
	while (have < sizeof(buf)) {
		if (sent < sizeof(buf)) {
			ssize_t n = send(guest, buf + sent, sizeof(buf) - sent, 0);
			if (n > 0)
				sent += (size_t)n;
			if (sent == sizeof(buf))
				shutdown(guest, SHUT_WR);
		}
		assert_true(fb_splice_pump(&s, in, out) >= 0);
		ssize_t n = recv(origin, got + have, sizeof(got) - have, 0);
		if (n > 0)
			have += (size_t)n;
	}
	assert_memory_equal(buf, got, sizeof(buf));
	assert_int_equal(s.bytes, sizeof(buf));

	/* the guest's EOF reaches the origin as a half-close ... */
	for (int i = 0; i < 100 && !fb_splice_done(&s); i++) {
		fb_splice_pump(&s, in, out);
		usleep(1000);
	}
	assert_true(fb_splice_done(&s));
	struct timeval tv = { .tv_sec = 2 };
	fcntl(origin, F_SETFL, 0);
	setsockopt(origin, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(recv(origin, got, 1, 0), 0);
	/* ... and only a half-close: the origin can still answer */
	assert_int_equal(send(origin, "late", 4, 0), 4);
	fcntl(out, F_SETFL, 0);
	assert_int_equal(recv(out, got, sizeof(got), 0), 4);
	assert_memory_equal(got, "late", 4);
	fb_splice_close(&s);
	close(guest);
	close(in);
	close(out);
	close(origin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relay_and_half_close),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
