/* test_splice.c — one relay direction over real TCP sockets on loopback,
 * driven by an edge-triggered epoll as conn.c drives it: bytes arrive
 * intact and in order whether copied or spliced, no edge is lost (a lost
 * one stalls the relay and fails the test), small exchanges take no pipe,
 * a full reader's bytes wait in one, EOF is passed on as a half-close,
 * a pipe that still holds bytes is never handed to another relay, and
 * every reader of a source reads a read's result by the same rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proxy/splice.h"

/* A connected TCP pair on 127.0.0.1, both ends non-blocking: *a is the
 * relay's end, *b the test's (the guest or the origin). */
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
	fcntl(*b, F_SETFL, O_NONBLOCK);
	close(l);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The relay of one direction, in -> out, and the two test ends. */
struct rig {
	int guest, in, out, origin, ep;
	struct fb_splice s;
};

static void rig_open(struct rig *r)
{
	struct epoll_event ev;

	tcp_pair(&r->in, &r->guest);
	tcp_pair(&r->out, &r->origin);
	r->ep = epoll_create1(0);
	assert_true(r->ep >= 0);
	/* registered once, edge-triggered, as conn.c does */
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLRDHUP | EPOLLET,
				   .data.fd = r->in };
	assert_int_equal(epoll_ctl(r->ep, EPOLL_CTL_ADD, r->in, &ev), 0);
	ev = (struct epoll_event){ .events = EPOLLOUT | EPOLLET, .data.fd = r->out };
	assert_int_equal(epoll_ctl(r->ep, EPOLL_CTL_ADD, r->out, &ev), 0);
	fb_splice_init(&r->s);
}

static void rig_close(struct rig *r)
{
	fb_splice_close(&r->s);
	close(r->ep);
	close(r->guest);
	close(r->in);
	close(r->out);
	close(r->origin);
}

/* One turn of the relay: wait for edges (up to ms), note them, pump. */
static void rig_turn(struct rig *r, int ms)
{
	struct epoll_event evs[4];
	int n = epoll_wait(r->ep, evs, 4, ms);

	for (int i = 0; i < n; i++) {
		if (evs[i].data.fd == r->in)
			fb_splice_event_in(&r->s, evs[i].events);
		else
			fb_splice_event_out(&r->s, evs[i].events);
	}
	assert_true(fb_splice_pump(&r->s, r->in, r->out) >= 0);
}

/* The origin reads what arrived into got[*have..cap). */
static void origin_read(struct rig *r, char *got, size_t *have, size_t cap)
{
	ssize_t n;

	while (*have < cap &&
	       (n = recv(r->origin, got + *have, cap - *have, 0)) > 0)
		*have += (size_t)n;
}

static void fill_pattern(char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(i * 7 + seed + i / 251);
}

static void test_bulk_is_spliced_and_half_closed(void **state)
{
	static char buf[3000000], got[3000000];
	size_t sent = 0, have = 0;
	double deadline = now_s() + 10;
	struct rig r;

	(void)state;
	rig_open(&r);
	fill_pattern(buf, sizeof(buf), 1);
	/* more than the socket buffers and the pipe hold: every side fills
	 * and drains many times, each time on an edge */
	while (have < sizeof(buf)) {
		assert_true(now_s() < deadline); /* a lost edge stalls here */
		if (sent < sizeof(buf)) {
			ssize_t n = send(r.guest, buf + sent, sizeof(buf) - sent, 0);

			if (n > 0)
				sent += (size_t)n;
			if (sent == sizeof(buf))
				shutdown(r.guest, SHUT_WR);
		}
		rig_turn(&r, 10);
		origin_read(&r, got, &have, sizeof(got));
	}
	assert_memory_equal(buf, got, sizeof(buf));
	assert_int_equal(r.s.bytes, sizeof(buf));
	assert_true(r.s.pipe[0] >= 0); /* full reads: spliced */

	/* the guest's EOF comes with an edge of its own */
	while (!fb_splice_done(&r.s)) {
		assert_true(now_s() < deadline);
		rig_turn(&r, 10);
	}
	fb_splice_shut(&r.s, r.out);
	fcntl(r.origin, F_SETFL, 0);
	assert_int_equal(recv(r.origin, got, 1, 0), 0);
	/* ... and only a half-close: the origin can still answer */
	assert_int_equal(send(r.origin, "late", 4, 0), 4);
	fcntl(r.out, F_SETFL, 0);
	assert_int_equal(recv(r.out, got, sizeof(got), 0), 4);
	assert_memory_equal(got, "late", 4);
	rig_close(&r);
}

static void test_small_exchanges_take_no_pipe(void **state)
{
	char got[64];
	size_t have = 0;
	struct rig r;

	(void)state;
	rig_open(&r);
	for (int i = 0; i < 20; i++) {
		char msg[32];
		int len = snprintf(msg, sizeof(msg), "record %02d;", i);
		double deadline = now_s() + 2;

		assert_int_equal(send(r.guest, msg, (size_t)len, 0), len);
		have = 0;
		while (have < (size_t)len) {
			assert_true(now_s() < deadline);
			rig_turn(&r, 10);
			origin_read(&r, got, &have, (size_t)len);
		}
		assert_memory_equal(got, msg, (size_t)len);
	}
	assert_int_equal(r.s.pipe[0], -1);
	assert_int_equal(r.s.bytes, 20 * 10);

	/* the last bytes and the EOF at once: EPOLLRDHUP keeps the read
	 * going past the short read that took the bytes */
	assert_int_equal(send(r.guest, "bye", 3, 0), 3);
	shutdown(r.guest, SHUT_WR);
	usleep(20000);
	have = 0;
	for (double deadline = now_s() + 2; !fb_splice_done(&r.s);) {
		assert_true(now_s() < deadline);
		rig_turn(&r, 10);
	}
	origin_read(&r, got, &have, sizeof(got));
	assert_int_equal(have, 3);
	assert_memory_equal(got, "bye", 3);
	assert_int_equal(r.s.pipe[0], -1);
	rig_close(&r);
}

/* A reader that stops reading: what it refused waits in a pipe, in
 * order, and goes out when it reads again. */
static void test_refused_bytes_wait_in_a_pipe(void **state)
{
	static char buf[4000000], got[4000000];
	int small = 4096;
	size_t sent = 0, have = 0;
	double deadline = now_s() + 10;
	struct rig r;

	(void)state;
	rig_open(&r);
	setsockopt(r.out, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	fill_pattern(buf, sizeof(buf), 2);
	/* writes smaller than the copy buffer: copied until `out` is full */
	while (r.s.pipe[0] < 0) {
		assert_true(now_s() < deadline);
		assert_true(sent < sizeof(buf));
		assert_int_equal(send(r.guest, buf + sent, 1000, 0), 1000);
		sent += 1000;
		rig_turn(&r, 10);
	}
	assert_true(r.s.queued > 0);
	assert_false(r.s.out_ready);
	/* now the origin reads again, and the guest sends the rest */
	while (have < sizeof(buf)) {
		assert_true(now_s() < deadline);
		if (sent < sizeof(buf)) {
			ssize_t n = send(r.guest, buf + sent, sizeof(buf) - sent, 0);

			if (n > 0)
				sent += (size_t)n;
		}
		rig_turn(&r, 10);
		origin_read(&r, got, &have, sizeof(got));
	}
	assert_memory_equal(buf, got, sizeof(buf));
	rig_close(&r);
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

/* Pipes go back to the pool only empty: one still holding bytes is
 * closed, so no later connection can read them. */
static void test_a_pipe_with_bytes_is_never_reused(void **state)
{
	int small = 4096, p0, p1;
	struct rig r;
	double deadline = now_s() + 10;
	char block[1000] = { 0 };

	(void)state;
	fb_splice_pool_drain();
	rig_open(&r);
	setsockopt(r.out, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	while (r.s.pipe[0] < 0) {
		assert_true(now_s() < deadline);
		assert_int_equal(send(r.guest, block, sizeof(block), 0),
				 (ssize_t)sizeof(block));
		rig_turn(&r, 10);
	}
	assert_true(r.s.queued > 0);
	p0 = r.s.pipe[0];
	p1 = r.s.pipe[1];
	fb_splice_close(&r.s);
	assert_false(fd_open(p0));
	assert_false(fd_open(p1));
	rig_close(&r);

	/* an empty one is kept, and the next relay that needs one gets it */
	rig_open(&r);
	static char bulk[200000];
	size_t sent = 0, have = 0;
	while (have < sizeof(bulk)) {
		assert_true(now_s() < deadline);
		if (sent < sizeof(bulk)) {
			ssize_t n = send(r.guest, bulk + sent, sizeof(bulk) - sent, 0);

			if (n > 0)
				sent += (size_t)n;
		}
		rig_turn(&r, 10);
		origin_read(&r, bulk, &have, sizeof(bulk));
	}
	assert_true(r.s.pipe[0] >= 0);
	assert_int_equal(r.s.queued, 0);
	p0 = r.s.pipe[0];
	p1 = r.s.pipe[1];
	fb_splice_close(&r.s);
	assert_true(fd_open(p0));
	fb_splice_init(&r.s);
	assert_int_equal(send(r.guest, bulk, 65536, 0), 65536);
	have = 0;
	while (r.s.pipe[0] < 0) {
		assert_true(now_s() < deadline);
		rig_turn(&r, 10);
		origin_read(&r, bulk, &have, sizeof(bulk));
	}
	assert_int_equal(r.s.pipe[0], p0);
	assert_int_equal(r.s.pipe[1], p1);
	rig_close(&r);
	fb_splice_pool_drain();
	assert_false(fd_open(p0));
}

/* The rule every reader of a source goes by, read by read: what a result
 * says, and what it leaves of in_ready and in_eof. */
static void test_what_a_read_says(void **state)
{
	static const struct {
		ssize_t n;
		int err;
		bool hup;
		enum fb_splice_read says;
		bool ready, eof;
	} reads[] = {
		/* a full read: more may wait */
		{ 100, 0, false, FB_READ_BYTES, true, false },
		/* a short one took all there was, unless an EOF is behind
		 * it, which brings no edge of its own */
		{ 40, 0, false, FB_READ_BYTES, false, false },
		{ 40, 0, true, FB_READ_BYTES, true, false },
		{ -1, EAGAIN, false, FB_READ_DRY, false, false },
		{ -1, EAGAIN, true, FB_READ_DRY, false, false },
		{ -1, EINTR, false, FB_READ_RETRY, true, false },
		{ 0, 0, true, FB_READ_EOF, true, true },
		{ -1, ECONNRESET, false, FB_READ_EOF, true, true },
		{ -1, ETIMEDOUT, false, FB_READ_ERROR, true, false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
		struct fb_splice s;

		fb_splice_init(&s);
		s.in_ready = true;
		s.in_hup = reads[i].hup;
		errno = reads[i].err;
		assert_int_equal(fb_splice_read_seen(&s, reads[i].n, 100),
				 reads[i].says);
		assert_int_equal(s.in_ready, reads[i].ready);
		assert_int_equal(s.in_eof, reads[i].eof);
		if (reads[i].says == FB_READ_ERROR)
			assert_int_equal(errno, reads[i].err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bulk_is_spliced_and_half_closed),
		cmocka_unit_test(test_small_exchanges_take_no_pipe),
		cmocka_unit_test(test_refused_bytes_wait_in_a_pipe),
		cmocka_unit_test(test_a_pipe_with_bytes_is_never_reused),
		cmocka_unit_test(test_what_a_read_says),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
