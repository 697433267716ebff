/*
 * helper_ctfail.c — run a command whose conntrack requests fail, as they
 * do when the kernel runs short of memory for a dump.
 *
 *   helper_ctfail N COMMAND [ARG]...
 *
 * A seccomp filter hands every netlink sendto(2) of COMMAND to a
 * supervisor, a child of this helper that dies with it.  The supervisor
 * reads the message's header from COMMAND's memory: the first N requests
 * to ctnetlink (N = -1: all of them) fail with ENOBUFS; every other
 * message, nf_tables' included, goes to the kernel untouched.  Nothing in
 * COMMAND is replaced: it meets a real failing system call.  COMMAND
 * keeps this helper's pid.
 *
 * With FAIL_NFT_READS_WHILE=PATH in the environment, nf_tables reads fail
 * the same way while PATH exists: the requests sent outside a batch (a
 * batch starts with a message of no subsystem), such as the dumps that
 * read a table back after its commit.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>

/* sendto's sixth argument, the address length: a netlink address's */
static int notify_netlink_sends(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sendto, 0, 2),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[5])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, sizeof(struct sockaddr_nl), 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
	};
	struct sock_fprog prog = { sizeof f / sizeof f[0], f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			    SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
}

/* The subsystem the message `req` sends is addressed to, or -1. */
static int subsystem(const struct seccomp_notif *req)
{
	struct nlmsghdr h;
	struct iovec local = { &h, sizeof(h) };
	struct iovec remote = { (void *)(uintptr_t)req->data.args[1], sizeof(h) };

	if (req->data.args[2] < sizeof(h) ||
	    process_vm_readv((pid_t)req->pid, &local, 1, &remote, 1, 0) !=
		    (ssize_t)sizeof(h))
		return -1;
	return NFNL_SUBSYS_ID(h.nlmsg_type);
}

static void supervise(int listener, long fails)
{
	const char *nft_reads_while = getenv("FAIL_NFT_READS_WHILE");
	struct pollfd pfd = { .fd = listener, .events = POLLIN };

	/* POLLHUP: the command, the filter's last user, has exited */
	while (poll(&pfd, 1, -1) >= 0 && !(pfd.revents & POLLHUP)) {
		struct seccomp_notif req;
		struct seccomp_notif_resp resp = { 0 };
		int subsys;

		memset(&req, 0, sizeof(req));
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
			continue;
		resp.id = req.id;
		subsys = subsystem(&req);
		if (subsys == NFNL_SUBSYS_CTNETLINK && fails != 0) {
			resp.error = -ENOBUFS;
			if (fails > 0)
				fails--;
		} else if (subsys == NFNL_SUBSYS_NFTABLES && nft_reads_while &&
			   access(nft_reads_while, F_OK) == 0) {
			resp.error = -ENOBUFS;
		} else {
			resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		}
		ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
	}
}

static int pass_fd(int sock, int fd)
{
	char data = 0;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl = { 0 };
	struct iovec iov = { &data, 1 };
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &m, 0) == 1 ? 0 : -1;
}

static int take_fd(int sock)
{
	char data;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { &data, 1 };
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	struct cmsghdr *c;
	int fd;

	if (recvmsg(sock, &m, 0) != 1 || !(c = CMSG_FIRSTHDR(&m)) ||
	    c->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

int main(int argc, char **argv)
{
	pid_t command = getpid();
	int sv[2], listener;

	if (argc < 3) {
		fprintf(stderr, "usage: helper_ctfail N COMMAND [ARG]...\n");
		return 2;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("socketpair");
		return 1;
	}
	switch (fork()) {
	case -1:
		perror("fork");
		return 1;
	case 0:
		close(sv[0]);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != command)
			return 1;
		listener = take_fd(sv[1]);
		if (listener < 0)
			return 1;
		supervise(listener, strtol(argv[1], NULL, 10));
		return 0;
	}
	close(sv[1]);
	listener = notify_netlink_sends();
	if (listener < 0 || pass_fd(sv[0], listener) < 0) {
		perror("helper_ctfail: seccomp listener");
		return 1;
	}
	close(listener);
	close(sv[0]);
	execvp(argv[2], argv + 2);
	perror(argv[2]);
	return 127;
}
