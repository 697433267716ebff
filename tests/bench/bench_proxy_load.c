/*
 * bench_proxy_load — the TLS load that tests/bench/bench_proxy.sh sends
 * through each proxy it compares.  One thread, non-blocking OpenSSL on
 * epoll: one process keeps hundreds of handshakes in flight on a small
 * machine without spending a core on scheduling threads.
 *
 *   conns ADDR PORT NAME SECONDS CONC
 *	new TLS connections, CONC at a time, each sends "GET /" and reads
 *	to EOF; prints "done=N rate=R p50_us=A p99_us=B failed=F"
 *   bulk ADDR PORT NAME SECONDS STREAMS
 *	STREAMS connections each read "GET /bulk" for SECONDS;
 *	prints "bytes=N mbit=R failed=F"
 *   hold ADDR PORT NAME N SECONDS
 *	up to N open connections, filled for at most SECONDS, each sent the same recorded ClientHello and
 *	answered by the origin's first flight (so whatever is in between has
 *	dialled the origin and is relaying); prints "held=N failed=F", then
 *	keeps them open until the process is ended.  The handshakes are left
 *	unfinished: the client's share of 10k handshakes would only slow the
 *	filling up, and the relay holds the same state either way.
 *
 * The origin's certificate is not verified: a "200" status line from the
 * origin already proves the bytes went through, and verifying would add
 * the same client CPU to every column.  Session tickets are off: every
 * connection is a full handshake, the worst case for a proxy.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HOLD_DIALLING 256	/* connections in flight while filling up */

enum mode { CONNS, BULK, HOLD };
enum state { DIALLING, HANDSHAKE, REQUEST, RESPONSE, HELLO, HELD };

struct conn {
	int fd;
	SSL *ssl;
	enum state state;
	uint32_t events;	/* what epoll waits for now */
	double started;
	bool ok;		/* the response began with a 200 status line */
	size_t got;
};

struct load {
	enum mode mode;
	struct sockaddr_in dst;
	const char *name;
	char request[256];
	int request_len;
	unsigned char hello[2048];	/* hold: the ClientHello every one sends */
	int hello_len;
	SSL_CTX *ctx;
	int ep;
	double deadline;
	long limit;		/* CONC, STREAMS or N */
	long opened, open;	/* dialled so far; not yet settled */
	long done, failed, held;
	uint64_t bytes;
	double *lat;		/* seconds per finished connection */
	size_t nlat, caplat;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int watch(struct load *l, struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (c->events == events)
		return 0;
	if (epoll_ctl(l->ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
		      c->fd, &ev) < 0) {
		perror("bench_proxy_load: epoll_ctl");
		return -1;
	}
	c->events = events;
	return 0;
}

static void drop(struct conn *c)
{
	SSL_free(c->ssl);
	close(c->fd);
	free(c);
}

/* A new connection to the target; NULL when even the socket failed. */
static struct conn *dial(struct load *l)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c)
		return NULL;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		free(c);
		return NULL;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (l->mode != HOLD) {
		c->ssl = SSL_new(l->ctx);
		if (!c->ssl || !SSL_set_fd(c->ssl, c->fd) ||
		    !SSL_set_tlsext_host_name(c->ssl, l->name)) {
			drop(c);
			return NULL;
		}
	}
	if ((connect(c->fd, (struct sockaddr *)&l->dst, sizeof(l->dst)) < 0 &&
	     errno != EINPROGRESS) ||
	    watch(l, c, EPOLLOUT) < 0) {
		drop(c);
		return NULL;
	}
	c->started = now();
	return c;
}

/* 0: waiting for what OpenSSL wants; -1: the connection failed. */
static int want(struct load *l, struct conn *c, int rc)
{
	switch (SSL_get_error(c->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return watch(l, c, EPOLLIN);
	case SSL_ERROR_WANT_WRITE:
		return watch(l, c, EPOLLOUT);
	default:
		return -1;
	}
}

/*
 * Take c as far as it goes without blocking.  1: finished (its response
 * read to EOF, or held); 0: waiting; -1: failed.
 */
static int step(struct load *l, struct conn *c)
{
	static char buf[1 << 16];
	socklen_t len = sizeof(int);
	int rc, soerr = 0;

	switch (c->state) {
	case DIALLING:
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 ||
		    soerr)
			return -1;
		if (l->mode == HOLD) {
			/* a hello this small fits any socket buffer at once */
			if (write(c->fd, l->hello, (size_t)l->hello_len) != l->hello_len)
				return -1;
			c->state = HELLO;
			return watch(l, c, EPOLLIN);
		}
		c->state = HANDSHAKE;
		/* fall through */
	case HANDSHAKE:
		rc = SSL_connect(c->ssl);
		if (rc != 1)
			return want(l, c, rc);
		c->state = REQUEST;
		/* fall through */
	case REQUEST:
		rc = SSL_write(c->ssl, l->request, l->request_len);
		if (rc <= 0)
			return want(l, c, rc);
		c->state = RESPONSE;
		/* fall through */
	case RESPONSE:
		while ((rc = SSL_read(c->ssl, buf, sizeof(buf))) > 0) {
			if (!c->got)
				c->ok = rc >= 12 && !memcmp(buf, "HTTP/1.1 200", 12);
			c->got += (size_t)rc;
			if (l->mode != BULK)
				continue;
			if (now() >= l->deadline)
				return 0;	/* the run is over */
			l->bytes += (uint64_t)rc;
		}
		if (SSL_get_error(c->ssl, rc) == SSL_ERROR_ZERO_RETURN)
			return c->ok ? 1 : -1;
		return want(l, c, rc);
	case HELLO:
	case HELD:
		/* the origin's flight, maybe in parts; EOF: the far side gave up */
		rc = (int)read(c->fd, buf, sizeof(buf));
		if (rc == 0 || (rc < 0 && errno != EAGAIN))
			return -1;
		if (c->state == HELD || rc < 0)
			return 0;
		if (buf[0] != 0x16)	/* not a handshake record: an alert */
			return -1;
		c->state = HELD;
		return 1;
	}
	return -1;
}

static int record(struct load *l, double seconds)
{
	if (l->nlat == l->caplat) {
		size_t cap = l->caplat ? 2 * l->caplat : 4096;
		double *grown = realloc(l->lat, cap * sizeof(*grown));

		if (!grown)
			return -1;
		l->lat = grown;
		l->caplat = cap;
	}
	l->lat[l->nlat++] = seconds;
	return 0;
}

/* What happens after step() said 1 or -1 for c. */
static void settle(struct load *l, struct conn *c, int rc)
{
	if (c->state == HELD && rc < 0)
		l->held--;	/* it was no longer counted as opening */
	else
		l->open--;
	if (rc < 0) {
		l->failed++;
		drop(c);
		return;
	}
	switch (l->mode) {
	case CONNS:
		if (now() < l->deadline) {
			l->done++;
			if (record(l, now() - c->started) < 0)
				l->failed++;
		}
		drop(c);
		break;
	case BULK:	/* the origin ended a stream early: count it */
		l->failed++;
		drop(c);
		break;
	case HOLD:
		l->held++;
		break;
	}
}

/* The ClientHello a fresh client sends, recorded once through memory BIOs. */
static int record_hello(struct load *l)
{
	SSL *ssl = SSL_new(l->ctx);
	BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
	int rc;

	if (!ssl || !in || !out) {
		SSL_free(ssl);
		BIO_free(in);
		BIO_free(out);
		return -1;
	}
	SSL_set_bio(ssl, in, out);
	if (SSL_set_tlsext_host_name(ssl, l->name))
		SSL_connect(ssl);	/* stops wanting the ServerHello */
	l->hello_len = BIO_read(out, l->hello, sizeof(l->hello));
	rc = l->hello_len > 0 && BIO_ctrl_pending(out) == 0 ? 0 : -1;
	SSL_free(ssl);		/* and both BIOs */
	return rc;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static bool more(const struct load *l)
{
	if (l->mode == HOLD)
		return l->opened < l->limit && l->open < HOLD_DIALLING;
	return l->open < l->limit && now() < l->deadline;
}

static bool finished(const struct load *l)
{
	if (l->mode == HOLD && l->opened == l->limit && l->open == 0)
		return true;
	return now() >= l->deadline;
}

static int run(struct load *l, double seconds)
{
	struct epoll_event evs[256];

	l->ep = epoll_create1(0);
	if (l->ep < 0) {
		perror("bench_proxy_load: epoll_create1");
		return -1;
	}
	l->deadline = now() + seconds;
	while (!finished(l)) {
		int n;

		while (more(l)) {
			l->opened++;
			if (!dial(l)) {
				l->failed++;
				break;
			}
			l->open++;
		}
		n = epoll_wait(l->ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			int rc = step(l, c);

			if (rc)
				settle(l, c, rc);
		}
	}
	return 0;
}

static void report(struct load *l, double seconds)
{
	switch (l->mode) {
	case CONNS:
		qsort(l->lat, l->nlat, sizeof(*l->lat), cmp_double);
		printf("done=%ld rate=%.0f p50_us=%.0f p99_us=%.0f failed=%ld\n",
		       l->done, (double)l->done / seconds,
		       l->nlat ? l->lat[l->nlat / 2] * 1e6 : 0,
		       l->nlat ? l->lat[l->nlat * 99 / 100] * 1e6 : 0, l->failed);
		break;
	case BULK:
		printf("bytes=%llu mbit=%.0f failed=%ld\n",
		       (unsigned long long)l->bytes,
		       (double)l->bytes * 8 / seconds / 1e6, l->failed);
		break;
	case HOLD:
		printf("held=%ld failed=%ld\n", l->held, l->failed);
		break;
	}
	fflush(stdout);
}

static int usage(void)
{
	fprintf(stderr,
		"usage: bench_proxy_load conns ADDR PORT NAME SECONDS CONC\n"
		"       bench_proxy_load bulk ADDR PORT NAME SECONDS STREAMS\n"
		"       bench_proxy_load hold ADDR PORT NAME N SECONDS\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct load l = { .ep = -1 };
	double seconds = 0;
	int rc;

	if (argc != 7)
		return usage();
	if (!strcmp(argv[1], "conns"))
		l.mode = CONNS;
	else if (!strcmp(argv[1], "bulk"))
		l.mode = BULK;
	else if (!strcmp(argv[1], "hold"))
		l.mode = HOLD;
	else
		return usage();
	l.dst.sin_family = AF_INET;
	l.dst.sin_port = htons((uint16_t)atoi(argv[3]));
	if (inet_pton(AF_INET, argv[2], &l.dst.sin_addr) != 1) {
		fprintf(stderr, "bench_proxy_load: \"%s\": expected an IPv4 address\n",
			argv[2]);
		return 2;
	}
	l.name = argv[4];
	if (l.mode == HOLD) {
		l.limit = atol(argv[5]);
		seconds = atof(argv[6]);
	} else {
		seconds = atof(argv[5]);
		l.limit = atol(argv[6]);
	}
	if (l.limit < 1 || seconds <= 0)
		return usage();
	l.request_len = snprintf(l.request, sizeof(l.request),
				 "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
				 l.mode == BULK ? "/bulk" : "/", l.name);

	/* a held connection is a descriptor: make room for all of them */
	if (l.mode == HOLD) {
		struct rlimit rl = { (rlim_t)l.limit + 64, (rlim_t)l.limit + 64 };

		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			perror("bench_proxy_load: RLIMIT_NOFILE");
			return 1;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	l.ctx = SSL_CTX_new(TLS_client_method());
	if (!l.ctx) {
		fprintf(stderr, "bench_proxy_load: SSL_CTX_new failed\n");
		return 1;
	}
	SSL_CTX_set_verify(l.ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(l.ctx, SSL_SESS_CACHE_OFF);
	/* an origin that closes without close_notify has still answered */
	SSL_CTX_set_options(l.ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(l.ctx, SSL_MODE_RELEASE_BUFFERS);

	if (l.mode == HOLD && record_hello(&l) < 0) {
		fprintf(stderr, "bench_proxy_load: cannot record a ClientHello for %s\n",
			l.name);
		return 1;
	}
	rc = run(&l, seconds);
	if (rc == 0) {
		report(&l, l.mode == HOLD ? 0 : seconds);
		if (l.mode == HOLD)
			pause();	/* until the script ends us */
	}
	if (l.ep >= 0)
		close(l.ep);
	free(l.lat);
	SSL_CTX_free(l.ctx);
	return rc ? 1 : 0;
}
