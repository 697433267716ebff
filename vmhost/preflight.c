/*
 * preflight.c — what `firebreak run` checks before it creates anything,
 * so a missing privilege or kernel feature is one clear line and not a
 * half-built sandbox torn down again.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <libmnl/libmnl.h>

#include "vmhost/sandbox.h"

static bool has_cap(const struct __user_cap_data_struct d[2], int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

int fb_preflight_privileges(char *err, size_t errsize)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data) < 0) {
		snprintf(err, errsize, "capget: %s", strerror(errno));
		return -1;
	}
	if (!has_cap(data, CAP_NET_ADMIN) || !has_cap(data, CAP_SYS_ADMIN)) {
		snprintf(err, errsize,
			 "needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)");
		return -1;
	}
	return 0;
}

/*
 * Ask nf_tables for its ruleset generation: the cheapest request that
 * only a kernel with nf_tables answers (without it, nfnetlink refuses
 * the unknown subsystem, or there is no nfnetlink at all).
 */
int fb_preflight_nftables(char *err, size_t errsize)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;
	unsigned portid;
	ssize_t n;
	int ret;

	nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		snprintf(err, errsize,
			 "the kernel has no nf_tables support: netfilter "
			 "netlink socket: %s", strerror(errno));
		if (nl)
			mnl_socket_close(nl);
		return -1;
	}
	portid = mnl_socket_get_portid(nl);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = 1;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof *nfg);
	nfg->nfgen_family = AF_UNSPEC;
	nfg->version = NFNETLINK_V0;

	ret = mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0 ? -1 : 1;
	while (ret > 0) {
		n = mnl_socket_recvfrom(nl, buf, sizeof buf);
		ret = n < 0 ? -1 : mnl_cb_run(buf, n, 1, portid, NULL, NULL);
	}
	if (ret < 0)
		snprintf(err, errsize, "the kernel has no nf_tables support: "
			 "nf_tables request: %s", strerror(errno));
	mnl_socket_close(nl);
	return ret < 0 ? -1 : 0;
}

int fb_find_program(const char *name, char *buf, size_t size)
{
	const char *path = getenv("PATH");

	if (strchr(name, '/')) {
		snprintf(buf, size, "%s", name);
		return access(buf, X_OK);
	}
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	errno = ENOENT;
	while (*path) {
		size_t n = strcspn(path, ":");

		if (n > 0 && (size_t)snprintf(buf, size, "%.*s/%s", (int)n,
					      path, name) < size &&
		    access(buf, X_OK) == 0)
			return 0;
		path += n + (path[n] == ':');
	}
	return -1;
}

int fb_path_absolute(const char *path, char *buf, size_t size)
{
	char cwd[PATH_MAX] = "";
	int n;

	if (path[0] != '/' && !getcwd(cwd, sizeof cwd))
		return -1;
	n = snprintf(buf, size, "%s%s%s", cwd, cwd[0] ? "/" : "", path);
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}
