/*
 * link.c — interfaces, addresses and routes over rtnetlink (libmnl), and
 * the per-namespace sysctls under /proc/sys.
 *
 * The sysctls are reached through a procfs instance of the launcher's own
 * (fb_sysctl_open).  In the machine's /proc, the directories that every
 * network namespace has (net/ipv4, net/ipv6, ...) share one dcache hash
 * chain: a lookup compares the name with the entry of every namespace
 * that looked it up before (proc_sys_compare), hundreds with hundreds of
 * sandboxes.  A fresh instance, never attached to the tree, starts with
 * an empty dcache and takes it along when its descriptor is closed.
 *
 * Every request asks for an acknowledgement and waits for it, so a call
 * returns only once the kernel has applied (or refused) the change.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <libmnl/libmnl.h>

#include "vmhost/net.h"

struct fb_rtnl {
	struct mnl_socket *sock;
	unsigned portid;
	unsigned seq;
};

/* Large enough for a route dump's batches; a request fits in far less. */
#define RTNL_BUFSIZE 32768

struct fb_rtnl *fb_rtnl_open(char *err, size_t errsize)
{
	struct fb_rtnl *nl = calloc(1, sizeof *nl);

	if (!nl) {
		snprintf(err, errsize, "out of memory");
		return NULL;
	}
	nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl->sock || mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		snprintf(err, errsize, "rtnetlink socket: %s", strerror(errno));
		if (nl->sock)
			mnl_socket_close(nl->sock);
		free(nl);
		return NULL;
	}
	nl->portid = mnl_socket_get_portid(nl->sock);
	return nl;
}

void fb_rtnl_close(struct fb_rtnl *nl)
{
	if (!nl)
		return;
	mnl_socket_close(nl->sock);
	free(nl);
}

static struct nlmsghdr *request(char *buf, struct fb_rtnl *nl, uint16_t type,
				uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = ++nl->seq;
	return nlh;
}

/*
 * Send one request and read replies until its acknowledgement (or the end
 * of a dump), handing data messages to cb.  `what` names the change for
 * the error message, which carries the kernel's errno.
 */
static int talk(struct fb_rtnl *nl, struct nlmsghdr *nlh, mnl_cb_t cb,
		void *data, const char *what, char *err, size_t errsize)
{
	char *buf;
	ssize_t n;
	int ret, saved;

	if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0) {
		saved = errno;
		snprintf(err, errsize, "%s: send: %s", what, strerror(errno));
		errno = saved;
		return -1;
	}
	buf = malloc(RTNL_BUFSIZE);
	if (!buf) {
		snprintf(err, errsize, "%s: out of memory", what);
		errno = ENOMEM;
		return -1;
	}
	do {
		n = mnl_socket_recvfrom(nl->sock, buf, RTNL_BUFSIZE);
		ret = n < 0 ? -1 : mnl_cb_run(buf, n, nlh->nlmsg_seq,
					      nl->portid, cb, data);
	} while (ret > 0);
	saved = errno;
	free(buf);
	if (ret < 0) {
		snprintf(err, errsize, "%s: %s", what, strerror(saved));
		errno = saved;
		return -1;
	}
	return 0;
}

static void put_ifinfomsg(struct nlmsghdr *nlh, int ifindex, unsigned up)
{
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof *ifm);

	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = ifindex;
	ifm->ifi_flags = up;
	ifm->ifi_change = up;
}

int fb_link_add_veth(struct fb_rtnl *nl, const char *name, const char *peer,
		     int peer_ns, char *err, size_t errsize)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], what[80];
	struct nlmsghdr *nlh = request(buf, nl, RTM_NEWLINK,
				       NLM_F_CREATE | NLM_F_EXCL);
	struct nlattr *info, *data, *peer_nest;
	struct ifinfomsg *pifm;

	put_ifinfomsg(nlh, 0, IFF_UP);
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	/* The peer is described by an ifinfomsg of its own, then its
	 * attributes, inside VETH_INFO_PEER.  It stays down: the kernel
	 * would try to open it before the pair is joined (ENOTCONN). */
	peer_nest = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	pifm = (struct ifinfomsg *)((char *)nlh + nlh->nlmsg_len);
	memset(pifm, 0, sizeof *pifm);
	pifm->ifi_family = AF_UNSPEC;
	nlh->nlmsg_len += MNL_ALIGN(sizeof *pifm);
	mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
	mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, peer_ns);
	mnl_attr_nest_end(nlh, peer_nest);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);

	snprintf(what, sizeof what, "create veth %s/%s", name, peer);
	return talk(nl, nlh, NULL, NULL, what, err, errsize);
}

int fb_link_add_tap(const char *name, char *err, size_t errsize)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errsize, "create tap %s: open /dev/net/tun: %s",
			 name, strerror(errno));
		return -1;
	}
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int saved = errno;

		snprintf(err, errsize, "create tap %s: TUNSETIFF: %s", name,
			 strerror(errno));
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int fb_link_del(struct fb_rtnl *nl, const char *name, char *err,
		size_t errsize)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], what[64];
	struct nlmsghdr *nlh = request(buf, nl, RTM_DELLINK, 0);

	put_ifinfomsg(nlh, 0, 0);
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	snprintf(what, sizeof what, "delete link %s", name);
	return talk(nl, nlh, NULL, NULL, what, err, errsize);
}

static int link_index_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_type == RTM_NEWLINK)
		*(int *)data = ifm->ifi_index;
	return MNL_CB_OK;
}

int fb_link_index(struct fb_rtnl *nl, const char *name, char *err,
		  size_t errsize)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], what[64];
	struct nlmsghdr *nlh = request(buf, nl, RTM_GETLINK, 0);
	int index = -1;

	put_ifinfomsg(nlh, 0, 0);
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	snprintf(what, sizeof what, "find link %s", name);
	if (talk(nl, nlh, link_index_cb, &index, what, err, errsize) < 0)
		return -1;
	if (index <= 0) {
		snprintf(err, errsize, "%s: no such device", what);
		errno = ENODEV;
		return -1;
	}
	return index;
}

int fb_link_up(struct fb_rtnl *nl, int ifindex, char *err, size_t errsize)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], what[64];
	struct nlmsghdr *nlh = request(buf, nl, RTM_NEWLINK, 0);

	put_ifinfomsg(nlh, ifindex, IFF_UP);
	snprintf(what, sizeof what, "bring up link %d", ifindex);
	return talk(nl, nlh, NULL, NULL, what, err, errsize);
}

static size_t addr_len(const struct fb_addr *a)
{
	return a->family == AF_INET ? 4 : 16;
}

int fb_addr_add(struct fb_rtnl *nl, int ifindex, const struct fb_addr *a,
		unsigned prefixlen, char *err, size_t errsize)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], text[INET6_ADDRSTRLEN], what[96];
	struct nlmsghdr *nlh = request(buf, nl, RTM_NEWADDR,
				       NLM_F_CREATE | NLM_F_EXCL);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof *ifa);

	ifa->ifa_family = a->family;
	ifa->ifa_prefixlen = prefixlen;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = ifindex;
	/* The link's two ends are ours: nothing to detect, and waiting
	 * for DAD would leave the address unusable for a second or two. */
	if (a->family == AF_INET6)
		ifa->ifa_flags = IFA_F_NODAD;
	mnl_attr_put(nlh, IFA_LOCAL, addr_len(a), a->b);
	mnl_attr_put(nlh, IFA_ADDRESS, addr_len(a), a->b);

	fb_addr_format(a, text, sizeof text);
	snprintf(what, sizeof what, "add address %s/%u to link %d", text,
		 prefixlen, ifindex);
	return talk(nl, nlh, NULL, NULL, what, err, errsize);
}

int fb_route_add_default(struct fb_rtnl *nl, const struct fb_addr *gw,
			 char *err, size_t errsize)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], text[INET6_ADDRSTRLEN], what[96];
	struct nlmsghdr *nlh = request(buf, nl, RTM_NEWROUTE,
				       NLM_F_CREATE | NLM_F_EXCL);
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof *rtm);

	rtm->rtm_family = gw->family;
	rtm->rtm_table = RT_TABLE_MAIN;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_scope = RT_SCOPE_UNIVERSE;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put(nlh, RTA_GATEWAY, addr_len(gw), gw->b);

	fb_addr_format(gw, text, sizeof text);
	snprintf(what, sizeof what, "add default route via %s", text);
	return talk(nl, nlh, NULL, NULL, what, err, errsize);
}

static int route_type_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_type == RTM_NEWROUTE)
		*(int *)data = rtm->rtm_type;
	return MNL_CB_OK;
}

/*
 * One lookup (RTM_F_FIB_MATCH: the route that matched, not a cached
 * destination), never a dump: a dump walks every route of the namespace,
 * and the launcher's namespace holds a few per live sandbox.
 */
int fb_route_type(struct fb_rtnl *nl, const struct fb_addr *dst, char *err,
		  size_t errsize)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = request(buf, nl, RTM_GETROUTE, 0);
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof *rtm);
	size_t len = dst->family == AF_INET ? 4 : 16;
	int found = 0;

	rtm->rtm_family = dst->family;
	rtm->rtm_dst_len = len * 8;
	rtm->rtm_flags = RTM_F_FIB_MATCH;
	mnl_attr_put(nlh, RTA_DST, len, dst->b);
	if (talk(nl, nlh, route_type_cb, &found, "look up a route", err,
		 errsize) < 0)
		return errno == ENETUNREACH || errno == EHOSTUNREACH ? 0 : -1;
	return found;
}

int fb_route_reaches(struct fb_rtnl *nl, const struct fb_addr *dst, char *err,
		     size_t errsize)
{
	int type = fb_route_type(nl, dst, err, errsize);

	return type < 0 ? -1 : type == RTN_UNICAST;
}

int fb_sysctl_open(char *err, size_t errsize)
{
	int fs, mnt, sys;

	fs = fsopen("proc", FSOPEN_CLOEXEC);
	if (fs >= 0 && fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0) {
		mnt = fsmount(fs, FSMOUNT_CLOEXEC, 0);
		close(fs);
		if (mnt >= 0) {
			sys = openat(mnt, "sys", O_PATH | O_DIRECTORY |
				     O_CLOEXEC);
			close(mnt);
			if (sys >= 0)
				return sys;
		}
	} else if (fs >= 0) {
		close(fs);
	}
	/* no procfs of our own (no mount API, or not allowed here) */
	sys = open("/proc/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (sys < 0)
		snprintf(err, errsize, "open /proc/sys: %s", strerror(errno));
	return sys;
}

int fb_sysctl_read(int sys, const char *key, char *buf, size_t size,
		   char *err, size_t errsize)
{
	ssize_t n;
	int fd;

	fd = openat(sys, key, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errsize, "open /proc/sys/%s: %s", key,
			 strerror(errno));
		return -1;
	}
	n = read(fd, buf, size - 1);
	if (n < 0)
		snprintf(err, errsize, "read /proc/sys/%s: %s", key,
			 strerror(errno));
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

int fb_sysctl_write(int sys, const char *key, const char *value, char *err,
		    size_t errsize)
{
	size_t len = strlen(value);
	int fd, ok;

	fd = openat(sys, key, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errsize, "open /proc/sys/%s: %s", key,
			 strerror(errno));
		return -1;
	}
	ok = write(fd, value, len) == (ssize_t)len;
	if (!ok)
		snprintf(err, errsize, "write %s to /proc/sys/%s: %s", value,
			 key, strerror(errno));
	close(fd);
	return ok ? 0 : -1;
}
