/*
 * batch.c — netfilter netlink plumbing: a socket, one-shot requests and
 * dumps, and transactions.
 *
 * A transaction is sent with a single sendmsg: nfnetlink applies a batch
 * only if BATCH_BEGIN, every message and BATCH_END arrive in one skb, and
 * then commits all of it or aborts all of it.  Every message asks for an
 * acknowledgement so that we know the kernel's verdict on each; a refusal
 * comes back with the sequence number of the message refused, which we
 * turn into the description recorded when the message was built.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include "nft/internal.h"

/* A commit or dump that takes longer than this has hung, not worked. */
#define FB_NL_TIMEOUT_SEC 10

int fbn_nl_open(struct fbn_nl *nl, char *err, size_t errsize)
{
	struct timeval tv = { .tv_sec = FB_NL_TIMEOUT_SEC };
	int one = 1;

	nl->sock = mnl_socket_open(NETLINK_NETFILTER);
	if (!nl->sock) {
		snprintf(err, errsize, "netfilter netlink socket: %s",
			 strerror(errno));
		return -1;
	}
	if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		snprintf(err, errsize, "netfilter netlink bind: %s",
			 strerror(errno));
		mnl_socket_close(nl->sock);
		nl->sock = NULL;
		return -1;
	}
	/*
	 * Extended ACKs carry the kernel's own words for a refusal; capped
	 * ACKs keep a refusal of a large element message from echoing it
	 * whole.  Both are best effort: older kernels just say less.
	 */
	mnl_socket_setsockopt(nl->sock, NETLINK_EXT_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(nl->sock, NETLINK_CAP_ACK, &one, sizeof(one));
	setsockopt(mnl_socket_get_fd(nl->sock), SOL_SOCKET, SO_RCVTIMEO, &tv,
		   sizeof(tv));
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->seq = (uint32_t)time(NULL);
	return 0;
}

void fbn_nl_close(struct fbn_nl *nl)
{
	if (nl->sock)
		mnl_socket_close(nl->sock);
	nl->sock = NULL;
}

/* The kernel's message in an extended ACK, or "" when it gave none. */
static const char *ext_ack_msg(const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a;
	size_t off;

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return "";
	off = sizeof(*e);
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(e->msg);
	mnl_attr_for_each(a, nlh, off) {
		if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
			return mnl_attr_get_str(a);
	}
	return "";
}

int fbn_nl_request(struct fbn_nl *nl, struct nlmsghdr *req, fbn_nl_cb cb,
		   void *data, char *err, size_t errsize)
{
	char buf[1 << 16];
	uint32_t seq = ++nl->seq;
	ssize_t n;

	req->nlmsg_seq = seq;
	if (mnl_socket_sendto(nl->sock, req, req->nlmsg_len) < 0) {
		snprintf(err, errsize, "netlink send: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		const struct nlmsghdr *nlh;
		int len;

		n = mnl_socket_recvfrom(nl->sock, buf, sizeof(buf));
		if (n < 0) {
			snprintf(err, errsize, "netlink receive: %s",
				 errno == EAGAIN ? "no answer from the kernel"
						 : strerror(errno));
			return -1;
		}
		len = (int)n;
		for (nlh = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len)) {
			if (nlh->nlmsg_seq != seq ||
			    nlh->nlmsg_pid != nl->portid)
				continue;
			if (nlh->nlmsg_type == NLMSG_DONE)
				return 0;
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e =
					mnl_nlmsg_get_payload(nlh);
				if (e->error)
					snprintf(err, errsize, "%s%s%s",
						 strerror(-e->error),
						 *ext_ack_msg(nlh) ? ": " : "",
						 ext_ack_msg(nlh));
				return e->error;
			}
			if (cb && cb(nlh, data) < 0) {
				snprintf(err, errsize,
					 "malformed netlink reply");
				return -1;
			}
		}
	}
}

/* ---- transactions ---------------------------------------------------- */

void fbn_batch_init(struct fbn_batch *b)
{
	memset(b, 0, sizeof(*b));
	b->seq0 = (uint32_t)time(NULL) << 8;
}

void fbn_batch_free(struct fbn_batch *b)
{
	for (size_t i = 0; i < b->nmsg; i++)
		free(b->what[i]);
	free(b->what);
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

void fbn_batch_fail(struct fbn_batch *b, const char *fmt, ...)
{
	va_list ap;

	if (b->failed)
		return;
	b->failed = true;
	va_start(ap, fmt);
	vsnprintf(b->err, sizeof(b->err), fmt, ap);
	va_end(ap);
}

bool fbn_batch_reserve(struct fbn_batch *b, size_t need)
{
	size_t cap = b->cap ? b->cap : 1 << 16;
	char *p;

	while (cap - b->len < need)
		cap *= 2;
	if (cap == b->cap)
		return true;
	p = realloc(b->buf, cap);
	if (!p) {
		fbn_batch_fail(b, "out of memory for a %zu-byte batch", cap);
		return false;
	}
	b->buf = p;
	b->cap = cap;
	return true;
}

struct nlmsghdr *fbn_batch_open(struct fbn_batch *b, uint16_t type,
				uint16_t family, uint16_t flags, size_t room,
				const char *what, ...)
{
	struct nlmsghdr *nlh;
	va_list ap;
	char *desc;

	/* BATCH_BEGIN goes in front of the first message */
	if (b->failed || !fbn_batch_reserve(b, room + 2 * MNL_ALIGN(
						   sizeof(struct nlmsghdr) +
						   sizeof(struct nfgenmsg))))
		return NULL;
	if (b->nmsg == b->whatcap) {
		size_t cap = b->whatcap ? 2 * b->whatcap : 64;
		char **p = realloc(b->what, cap * sizeof(*p));

		if (!p) {
			fbn_batch_fail(b, "out of memory");
			return NULL;
		}
		b->what = p;
		b->whatcap = cap;
	}
	va_start(ap, what);
	if (vasprintf(&desc, what, ap) < 0) {
		va_end(ap);
		fbn_batch_fail(b, "out of memory");
		return NULL;
	}
	va_end(ap);
	if (b->len == 0) {
		nlh = nftnl_batch_begin(b->buf, b->seq0 - 1);
		b->len = nlh->nlmsg_len;
	}
	b->what[b->nmsg] = desc;
	nlh = nftnl_nlmsg_build_hdr(b->buf + b->len, type, family,
				    flags | NLM_F_ACK, b->seq0 + b->nmsg);
	b->nmsg++;
	return nlh;
}

void fbn_batch_close(struct fbn_batch *b, struct nlmsghdr *nlh)
{
	b->len += MNL_ALIGN(nlh->nlmsg_len);
}

/* The description of the message a reply refers to. */
static const char *batch_what(const struct fbn_batch *b, uint32_t seq)
{
	if (seq - b->seq0 < b->nmsg)
		return b->what[seq - b->seq0];
	return "the transaction";
}

/* Read one ACK per message; the first refusal is the one reported. */
static int batch_read_acks(struct fbn_batch *b, struct fbn_nl *nl, char *err,
			   size_t errsize)
{
	char buf[1 << 16];
	size_t acked = 0;
	bool refused = false;

	while (acked < b->nmsg) {
		const struct nlmsghdr *nlh;
		ssize_t n = mnl_socket_recvfrom(nl->sock, buf, sizeof(buf));
		int len;

		if (n < 0) {
			snprintf(err, errsize,
				 "nftables transaction: %s while waiting for "
				 "the kernel's answer (%zu of %zu messages "
				 "acknowledged)",
				 errno == EAGAIN ? "timed out"
						 : strerror(errno),
				 acked, b->nmsg);
			return -1;
		}
		len = (int)n;
		for (nlh = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len)) {
			const struct nlmsgerr *e;

			if (nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			e = mnl_nlmsg_get_payload(nlh);
			acked++;
			if (e->error == 0 || refused)
				continue;
			refused = true;
			snprintf(err, errsize,
				 "kernel refused %s: %s%s%s; nothing applied",
				 batch_what(b, e->msg.nlmsg_seq),
				 strerror(-e->error),
				 *ext_ack_msg(nlh) ? " — " : "",
				 ext_ack_msg(nlh));
			/* a refusal of the batch itself ends the answers */
			if (e->msg.nlmsg_seq - b->seq0 >= b->nmsg)
				return -1;
		}
	}
	return refused ? -1 : 0;
}

int fbn_batch_commit(struct fbn_batch *b, char *err, size_t errsize)
{
	struct nlmsghdr *end;
	struct fbn_nl nl;
	int size, rc;

	if (b->failed) {
		snprintf(err, errsize, "%s; nothing applied", b->err);
		return -1;
	}
	if (b->nmsg == 0)
		return 0;
	end = nftnl_batch_end(b->buf + b->len, b->seq0 + b->nmsg);
	b->len += end->nlmsg_len;
	if (b->len > INT32_MAX / 2) {
		snprintf(err, errsize, "transaction of %zu bytes is too large",
			 b->len);
		return -1;
	}
	if (fbn_nl_open(&nl, err, errsize) < 0)
		return -1;
	/*
	 * The whole batch must fit the socket's send buffer, and all the
	 * ACKs its receive buffer; *FORCE needs CAP_NET_ADMIN, which
	 * programming nftables needs anyway.
	 */
	size = (int)b->len + 4096;
	setsockopt(mnl_socket_get_fd(nl.sock), SOL_SOCKET, SO_SNDBUFFORCE,
		   &size, sizeof(size));
	size = (int)(b->nmsg * 1024 + 65536);
	setsockopt(mnl_socket_get_fd(nl.sock), SOL_SOCKET, SO_RCVBUFFORCE,
		   &size, sizeof(size));
	if (mnl_socket_sendto(nl.sock, b->buf, b->len) < 0) {
		snprintf(err, errsize,
			 "nftables transaction of %zu bytes: send: %s; "
			 "nothing applied", b->len, strerror(errno));
		fbn_nl_close(&nl);
		return -1;
	}
	rc = batch_read_acks(b, &nl, err, errsize);
	fbn_nl_close(&nl);
	return rc;
}
