/*
 * net.h — the launcher's network primitives; internal to vmhost/.
 *
 *   netns.c  named network namespaces (the `ip netns` convention: a bind
 *            mount of the namespace under /run/netns/NAME), anonymous ones,
 *            entering them
 *   link.c   rtnetlink over libmnl: veth pairs across namespaces, taps,
 *            addresses, default routes; sysctls under /proc/sys
 *
 * Functions that can fail return -1 (or NULL) and write one message into
 * err that names what failed and on what; errno is kept from the failing
 * call so a caller can tell EEXIST or EPERM apart.
 */
#ifndef FB_VMHOST_NET_H
#define FB_VMHOST_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/policy.h"

#define FB_NETNS_DIR "/run/netns"

/* Create /run/netns/NAME holding a new, empty network namespace.  The
 * caller's own namespace is unchanged.  errno EEXIST when NAME is taken. */
int fb_netns_add(const char *name, char *err, size_t errsize);
/* Unmount and remove /run/netns/NAME.  Absent already is not an error. */
int fb_netns_del(const char *name, char *err, size_t errsize);
/* An O_CLOEXEC descriptor of a named namespace, for fb_netns_enter(). */
int fb_netns_open(const char *name, char *err, size_t errsize);
/* A descriptor of a new namespace that has no name: it lives as long as
 * the descriptor or a process inside it does. */
int fb_netns_new_anonymous(char *err, size_t errsize);
/* An O_CLOEXEC descriptor of the calling thread's namespace. */
int fb_netns_current(char *err, size_t errsize);
/* Move the calling thread into the namespace `fd` refers to. */
int fb_netns_enter(int fd, char *err, size_t errsize);
/* Run fn(arg) inside namespace `ns` and come back.  fn reports its own
 * failure (returns -1); failing to come back ends the process, since going
 * on would configure the wrong network. */
int fb_netns_call(int ns, int (*fn)(void *arg), void *arg, char *err,
		  size_t errsize);

/*
 * A route netlink socket.  It stays bound to the namespace it was opened
 * in, so one socket per namespace lets the launcher configure several
 * namespaces without moving between them.
 */
struct fb_rtnl;

struct fb_rtnl *fb_rtnl_open(char *err, size_t errsize);
void fb_rtnl_close(struct fb_rtnl *nl);

/*
 * A veth pair: `name`, up, in the socket's namespace; `peer`, down, in
 * the namespace `peer_ns` refers to (bring it up from there).
 */
int fb_link_add_veth(struct fb_rtnl *nl, const char *name, const char *peer,
		     int peer_ns, char *err, size_t errsize);
/*
 * A tap device `name` (Ethernet frames, no packet-info header) in the
 * calling thread's namespace, down.  Returns its O_CLOEXEC descriptor: the
 * device lives while that descriptor or a copy of it (the hypervisor's)
 * is open, so nothing outlives a crashed launcher.
 */
int fb_link_add_tap(const char *name, char *err, size_t errsize);
/* Delete an interface by name (a veth takes its peer with it). */
int fb_link_del(struct fb_rtnl *nl, const char *name, char *err,
		size_t errsize);
/* The index of interface `name`, or -1 (errno ENODEV when absent). */
int fb_link_index(struct fb_rtnl *nl, const char *name, char *err,
		  size_t errsize);
int fb_link_up(struct fb_rtnl *nl, int ifindex, char *err, size_t errsize);
/* Add `a`/prefixlen to an interface; IPv6 addresses skip duplicate
 * address detection, so they are usable at once. */
int fb_addr_add(struct fb_rtnl *nl, int ifindex, const struct fb_addr *a,
		unsigned prefixlen, char *err, size_t errsize);
/* A default route of gw's family via gw. */
int fb_route_add_default(struct fb_rtnl *nl, const struct fb_addr *gw,
			 char *err, size_t errsize);
/* 1 when the namespace routes `dst` by a unicast route (through a gateway
 * or out of a link), 0 when it has no route there. */
int fb_route_reaches(struct fb_rtnl *nl, const struct fb_addr *dst, char *err,
		     size_t errsize);
/* The type (RTN_UNICAST, RTN_LOCAL, ...) of the route `dst` takes, 0 when
 * there is none, -1 on error. */
int fb_route_type(struct fb_rtnl *nl, const struct fb_addr *dst, char *err,
		  size_t errsize);

/*
 * The sysctl tree (/proc/sys) as a directory descriptor for the two
 * below: of a procfs instance of our own where one can be made (see
 * link.c for why), else of /proc/sys itself.  Close it after use.
 */
int fb_sysctl_open(char *err, size_t errsize);
/* Read or write a sysctl of the calling thread's network namespace;
 * `key` as under /proc/sys: "net/ipv4/ip_forward". */
int fb_sysctl_read(int sys, const char *key, char *buf, size_t size,
		   char *err, size_t errsize);
int fb_sysctl_write(int sys, const char *key, const char *value, char *err,
		    size_t errsize);

#endif /* FB_VMHOST_NET_H */
