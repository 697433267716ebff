/*
 * sandbox.c — build and remove one sandbox's network (the picture is in
 * sandbox.h): namespaces, the two veth pairs, addresses and routes, the
 * sandbox table inside fb-<id> and the masquerading table outside.
 *
 * Forwarding in the launcher's namespace: IPv4 forwarding is switched on
 * if it is off (as Docker and every NAT router does) and left on at exit,
 * since other sandboxes may be using it.  IPv6 forwarding is never
 * switched on here: on a host that takes its own address from router
 * advertisements that would stop it accepting them.  So sandboxes get
 * IPv6 egress only where the launcher's namespace already forwards IPv6
 * and routes the global unicast range; elsewhere the guest's IPv6 stays
 * inside the sandbox.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/magic.h>
#include <linux/rtnetlink.h>

#include "nft/nft.h"
#include "vmhost/daemon.h"
#include "vmhost/net.h"
#include "vmhost/sandbox.h"

#define GUEST_IF   "eth0"    /* in the guest's namespace */
#define GATEWAY_IF "guest0"  /* its peer, in fb-<id> */
#define UPLINK_IF  "uplink0" /* in fb-<id>; the outer end is named fb-<id> */
#define GUEST_NAT_TABLE "firebreak-guest" /* in fb-<id>, beside the policy's */
/* in <dir>, locked by the launcher for the sandbox's life: "INODE SLOT",
 * its namespace's inode and its uplink slot, for fb_sandbox_sweep */
#define LAUNCHER_LOCK "launcher.lock"
#define TAKEN_MAX 8 /* slots tried past one another launcher uses here */

enum {
	MADE_NETNS = 1 << 0,
	MADE_DIR = 1 << 1,
	MADE_UPLINK = 1 << 2,
	MADE_UPLINK_TABLE = 1 << 3,
	OWN_DIR = 1 << 4, /* the directory was made here, not by a daemon */
};

static void addr4(struct fb_addr *a, unsigned b0, unsigned b1, unsigned b2,
		  unsigned b3)
{
	memset(a, 0, sizeof *a);
	a->family = AF_INET;
	a->b[0] = b0;
	a->b[1] = b1;
	a->b[2] = b2;
	a->b[3] = b3;
}

/* fd00:fb:g2:g3::last */
static void addr6(struct fb_addr *a, unsigned g2, unsigned g3, unsigned last)
{
	memset(a, 0, sizeof *a);
	a->family = AF_INET6;
	a->b[0] = 0xfd;
	a->b[3] = 0xfb;
	a->b[4] = g2 >> 8;
	a->b[5] = g2 & 0xff;
	a->b[6] = g3 >> 8;
	a->b[7] = g3 & 0xff;
	a->b[15] = last;
}

/* The guest link: the same in every sandbox. */
static void guest_link(struct fb_addr *gw4, struct fb_addr *guest4,
		       struct fb_addr *gw6, struct fb_addr *guest6)
{
	addr4(gw4, 10, 200, 0, 1);
	addr4(guest4, 10, 200, 0, 2);
	addr6(gw6, 0, 0, 1);
	addr6(guest6, 0, 0, 2);
}

/* Slot S's uplink: end 1 outside, end 2 inside. */
static void uplink4(const struct fb_sandbox *sb, unsigned end,
		    struct fb_addr *a)
{
	unsigned base = sb->slot.index * 4;

	addr4(a, 100, 127, (base >> 8) & 0xff, (base & 0xff) + end);
}

static void uplink6(const struct fb_sandbox *sb, unsigned end,
		    struct fb_addr *a)
{
	addr6(a, 1, sb->slot.index, end);
}

bool fb_sandbox_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > FB_SANDBOX_ID_MAX)
		return false;
	/* <state dir>/<id> is the sandbox's: that one is the slot pool's,
	 * whose files recovery would remove with the sandbox's */
	if (!strcmp(id, FB_SLOT_DIR))
		return false;
	return strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static void random_id(char id[FB_SANDBOX_ID_MAX + 1])
{
	unsigned char r[4];

	if (getrandom(r, sizeof r, 0) != sizeof r) {
		unsigned pid = (unsigned)getpid();

		memcpy(r, &pid, sizeof r);
	}
	snprintf(id, FB_SANDBOX_ID_MAX + 1, "%02x%02x%02x%02x", r[0], r[1],
		 r[2], r[3]);
}

struct step {
	struct fb_sandbox *sb;
	bool tap;
	int sysctl;  /* fb_sysctl_open's, for the build's four sysctls */
	char *err;
	size_t errsize;
};

static int add_addr(struct fb_rtnl *nl, int ifindex, const struct fb_addr *a,
		    unsigned len, struct step *st)
{
	return fb_addr_add(nl, ifindex, a, len, st->err, st->errsize);
}

/* The launcher's side: forwarding, the uplink veth and its outer end. */
static int setup_outside(struct step *st)
{
	struct fb_sandbox *sb = st->sb;
	struct fb_rtnl *nl = fb_rtnl_open(st->err, st->errsize);
	struct fb_addr a;
	char fwd[8];
	int idx, ret = -1, v6;

	if (!nl)
		return -1;
	if (fb_sysctl_read(st->sysctl, "net/ipv4/ip_forward", fwd, sizeof fwd,
			   st->err, st->errsize) < 0)
		goto out;
	if (strcmp(fwd, "1") && fb_sysctl_write(st->sysctl,
						"net/ipv4/ip_forward", "1",
						st->err, st->errsize) < 0)
		goto out;
	/* 2000::, the first global unicast address: a default route or a
	 * route to 2000::/3 reaches it, a host without IPv6 egress does not */
	memset(&a, 0, sizeof a);
	a.family = AF_INET6;
	a.b[0] = 0x20;
	v6 = fb_route_reaches(nl, &a, st->err, st->errsize);
	if (v6 < 0)
		goto out;
	sb->v6_egress = v6 &&
		fb_sysctl_read(st->sysctl, "net/ipv6/conf/all/forwarding", fwd,
			       sizeof fwd, st->err, st->errsize) == 0 &&
		!strcmp(fwd, "1");

	if (fb_link_add_veth(nl, sb->name, UPLINK_IF, sb->sandbox_ns, st->err,
			     st->errsize) < 0)
		goto out;
	sb->made |= MADE_UPLINK;
	idx = fb_link_index(nl, sb->name, st->err, st->errsize);
	if (idx < 0)
		goto out;
	uplink4(sb, 1, &a);
	if (add_addr(nl, idx, &a, 30, st) < 0)
		goto out;
	if (sb->v6_egress) {
		uplink6(sb, 1, &a);
		if (add_addr(nl, idx, &a, 64, st) < 0)
			goto out;
	}
	ret = 0;
out:
	fb_rtnl_close(nl);
	return ret;
}

/* Inside fb-<id>: a router between the guest link and the uplink. */
static int setup_sandbox_ns(void *arg)
{
	struct step *st = arg;
	struct fb_sandbox *sb = st->sb;
	struct fb_addr gw4, guest4, gw6, guest6, a;
	struct fb_rtnl *nl;
	int idx, ret = -1;

	if (fb_sysctl_write(st->sysctl, "net/ipv4/ip_forward", "1", st->err,
			    st->errsize) < 0 ||
	    fb_sysctl_write(st->sysctl, "net/ipv6/conf/all/forwarding", "1",
			    st->err, st->errsize) < 0)
		return -1;
	nl = fb_rtnl_open(st->err, st->errsize);
	if (!nl)
		return -1;
	guest_link(&gw4, &guest4, &gw6, &guest6);
	if (fb_link_up(nl, 1, st->err, st->errsize) < 0)
		goto out;
	if (st->tap) {
		sb->tap_fd = fb_link_add_tap(GATEWAY_IF, st->err, st->errsize);
		if (sb->tap_fd < 0)
			goto out;
	} else if (fb_link_add_veth(nl, GATEWAY_IF, GUEST_IF, sb->guest_ns,
				    st->err, st->errsize) < 0) {
		goto out;
	}
	idx = fb_link_index(nl, GATEWAY_IF, st->err, st->errsize);
	if (idx < 0 || (st->tap && fb_link_up(nl, idx, st->err,
					      st->errsize) < 0) ||
	    add_addr(nl, idx, &gw4, 30, st) < 0 ||
	    add_addr(nl, idx, &gw6, 64, st) < 0)
		goto out;
	idx = fb_link_index(nl, UPLINK_IF, st->err, st->errsize);
	uplink4(sb, 2, &a);
	if (idx < 0 || fb_link_up(nl, idx, st->err, st->errsize) < 0 ||
	    add_addr(nl, idx, &a, 30, st) < 0)
		goto out;
	uplink4(sb, 1, &a);
	if (fb_route_add_default(nl, &a, st->err, st->errsize) < 0)
		goto out;
	if (sb->v6_egress) {
		uplink6(sb, 2, &a);
		if (add_addr(nl, idx, &a, 64, st) < 0)
			goto out;
		uplink6(sb, 1, &a);
		if (fb_route_add_default(nl, &a, st->err, st->errsize) < 0)
			goto out;
	}
	ret = 0;
out:
	fb_rtnl_close(nl);
	return ret;
}

/* Inside the guest's namespace: eth0 and a default route to the gateway. */
static int setup_guest_ns(void *arg)
{
	struct step *st = arg;
	struct fb_addr gw4, guest4, gw6, guest6;
	struct fb_rtnl *nl = fb_rtnl_open(st->err, st->errsize);
	int idx, ret = -1;

	if (!nl)
		return -1;
	guest_link(&gw4, &guest4, &gw6, &guest6);
	if (fb_link_up(nl, 1, st->err, st->errsize) < 0)
		goto out;
	idx = fb_link_index(nl, GUEST_IF, st->err, st->errsize);
	if (idx < 0 || fb_link_up(nl, idx, st->err, st->errsize) < 0 ||
	    add_addr(nl, idx, &guest4, 30, st) < 0 ||
	    add_addr(nl, idx, &guest6, 64, st) < 0 ||
	    fb_route_add_default(nl, &gw4, st->err, st->errsize) < 0 ||
	    fb_route_add_default(nl, &gw6, st->err, st->errsize) < 0)
		goto out;
	ret = 0;
out:
	fb_rtnl_close(nl);
	return ret;
}

static void prefix_of(struct fb_cidr *c, const struct fb_addr *a,
		      unsigned len)
{
	c->family = a->family;
	c->len = len;
	memcpy(c->b, a->b, sizeof c->b);
}

/* Outside: forward the uplink and masquerade its network on the way out. */
static int setup_uplink_table(struct step *st)
{
	struct fb_sandbox *sb = st->sb;
	struct fb_nft_uplink u = { .table = sb->table, .ifname = sb->name,
				   .input = true, .resolver = sb->resolver,
				   .resolver_port = sb->resolver_port };
	struct fb_addr a;

	uplink4(sb, 0, &a);
	prefix_of(&u.net4, &a, 30);
	if (sb->v6_egress) {
		uplink6(sb, 0, &a);
		prefix_of(&u.net6, &a, 64);
	}
	if (fb_nft_apply_uplink(&u, st->err, st->errsize) < 0)
		return -1;
	sb->made |= MADE_UPLINK_TABLE;
	return 0;
}

/*
 * Inside fb-<id>, the guest link is the guest's uplink: the guest's
 * address is the same in every sandbox, so what it sends through is
 * masqueraded to the sandbox's own uplink address, which the launcher's
 * side can route back.  The same table shape as the launcher's uplink
 * table, but no input chain (the sandbox table's decides what reaches
 * the proxy); its forward accepts decide nothing on their own, since the
 * sandbox table's forward chain still drops what the policy refuses.
 */
static int setup_guest_nat(void *arg)
{
	struct step *st = arg;
	struct fb_addr gw4, guest4, gw6, guest6;
	struct fb_nft_uplink u = { .table = GUEST_NAT_TABLE,
				   .ifname = GATEWAY_IF };

	guest_link(&gw4, &guest4, &gw6, &guest6);
	gw4.b[3] = 0;
	gw6.b[15] = 0;
	prefix_of(&u.net4, &gw4, 30);
	prefix_of(&u.net6, &gw6, 64);
	return fb_nft_apply_uplink(&u, st->err, st->errsize);
}

/* The guest's resolver is the gateway, where the proxy answers DNS. */
static int write_resolv_conf(struct step *st)
{
	struct fb_sandbox *sb = st->sb;
	FILE *f;

	if (mkdir(sb->dir, 0755) == 0) {
		sb->made |= OWN_DIR;
	} else if (errno != EEXIST) {
		snprintf(st->err, st->errsize, "mkdir %s: %s", sb->dir,
			 strerror(errno));
		return -1;
	}
	sb->made |= MADE_DIR;
	f = fopen(sb->resolv_conf, "we");
	if (!f || fputs("nameserver 10.200.0.1\n", f) < 0 || fclose(f) != 0) {
		snprintf(st->err, st->errsize, "write %s: %s", sb->resolv_conf,
			 strerror(errno));
		return -1;
	}
	return 0;
}

struct apply {
	const struct fb_nft_config *cfg;
	char *err;
	size_t errsize;
};

static int apply_in_sandbox(void *arg)
{
	struct apply *ap = arg;

	return fb_nft_apply(ap->cfg, ap->err, ap->errsize);
}

/*
 * The sandbox table's first program, in place before the guest link
 * carries a packet.  From then on the sandbox's proxy owns the table and
 * replaces it on every policy update.
 */
static int apply_policy(struct fb_sandbox *sb, const struct fb_policy *p,
			char *err, size_t errsize)
{
	struct fb_addr gw[2], guest4, guest6;
	struct fb_range *deny = NULL, *allow = NULL;
	size_t ndeny = 0, nallow = 0;
	struct fb_nft_config cfg = {
		.guest_ifname = GATEWAY_IF,
		.gateway = gw,
		.ngateway = 2,
		.proxy_port = FB_PROXY_PORT,
		.dns_port = FB_DNS_PORT,
		.resolver = sb->resolver,
		.resolver_port = sb->resolver_port,
	};
	struct apply ap = { &cfg, err, errsize };
	int ret = -1;

	guest_link(&gw[0], &guest4, &gw[1], &guest6);
	if (fb_policy_deny_ranges(p, &deny, &ndeny) < 0 ||
	    fb_policy_allow_ranges(p, &allow, &nallow) < 0) {
		snprintf(err, errsize, "compute the policy's address sets: %s",
			 strerror(errno));
		goto out;
	}
	cfg.deny = deny;
	cfg.ndeny = ndeny;
	cfg.allow = allow;
	cfg.nallow = nallow;
	ret = fb_netns_call(sb->sandbox_ns, apply_in_sandbox, &ap, err,
			    errsize);
out:
	free(deny);
	free(allow);
	return ret;
}

/* Name the sandbox and claim its namespace: the one step that can find
 * another sandbox in the way. */
static int claim_name(struct fb_sandbox *sb, const char *id, char *err,
		      size_t errsize)
{
	for (int tries = 0; tries < 8; tries++) {
		if (id)
			snprintf(sb->id, sizeof sb->id, "%s", id);
		else
			random_id(sb->id);
		snprintf(sb->name, sizeof sb->name, "fb-%s", sb->id);
		if (fb_netns_add(sb->name, err, errsize) == 0) {
			sb->made |= MADE_NETNS;
			return 0;
		}
		if (errno != EEXIST)
			return -1;
		snprintf(err, errsize, "namespace %s exists", sb->name);
		if (id) {
			errno = EEXIST;
			return -1;
		}
	}
	return -1;
}

/* This boot's id (/proc/sys/kernel/random/boot_id), "?" if unread. */
static const char *boot_id(char out[40])
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

	if (!f || fscanf(f, "%39s", out) != 1)
		snprintf(out, 40, "?");
	if (f)
		fclose(f);
	return out;
}

/* Lock <dir>/launcher.lock and say in it what sweep needs: the
 * namespace's inode, the slot, the boot. */
static int hold_dir(struct fb_sandbox *sb, char *err, size_t errsize)
{
	char path[PATH_MAX], boot[40];
	struct stat st;

	snprintf(path, sizeof path, "%s/" LAUNCHER_LOCK, sb->dir);
	sb->lock_fd = fb_lock_path(path, err, errsize);
	if (sb->lock_fd < 0 || fstat(sb->sandbox_ns, &st) < 0 ||
	    dprintf(sb->lock_fd, "%llu %u %s\n", (unsigned long long)st.st_ino,
		    sb->slot.index, boot_id(boot)) < 0) {
		if (sb->lock_fd >= 0 || errno == EWOULDBLOCK)
			snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The namespace `name` if it is still the one a dead launcher recorded,
 * in this boot (`boot`, or "" for a record that has none), with inode
 * `ino` (a name freed since may be another's now; after a reboot it
 * can only be another's), or only a name: a file with no namespace
 * behind it in our view, whose own went with the mount namespace of a
 * launcher started under `ip netns exec`.
 */
static bool stale_netns(const char *name, unsigned long long ino,
			const char *boot)
{
	char path[64], now[40];
	struct statfs fs;
	struct stat st;

	if (boot[0] && strcmp(boot, boot_id(now)) != 0)
		return false;
	snprintf(path, sizeof path, FB_NETNS_DIR "/%s", name);
	if (stat(path, &st) < 0 || statfs(path, &fs) < 0)
		return false;
	return fs.f_type != NSFS_MAGIC || st.st_ino == ino;
}

/* What hold_dir wrote in a launcher.lock (a record from before the boot
 * was added leaves `boot` ""); false when it holds no record. */
static bool read_record(FILE *f, unsigned long long *ino, unsigned *slot,
			char boot[40])
{
	boot[0] = '\0';
	return fscanf(f, "%llu %u %39s", ino, slot, boot) >= 2;
}

static void sweep_one(const char *state_dir, const char *id)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], name[32], err[256];
	char boot[40];
	unsigned long long ino;
	unsigned slot;
	FILE *f;
	int fd;

	snprintf(dir, sizeof dir, "%s/%s", state_dir, id);
	snprintf(path, sizeof path, "%s/" FB_STATE_FILE, dir);
	if (access(path, F_OK) == 0)
		return; /* a daemon's: its recovery removes it */
	snprintf(path, sizeof path, "%s/" LAUNCHER_LOCK, dir);
	/* no O_CREAT: a directory without one is being made, or not ours */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	f = flock(fd, LOCK_EX | LOCK_NB) == 0 ? fdopen(fd, "r") : NULL;
	if (!f || !read_record(f, &ino, &slot, boot) || slot >= FB_SLOTS) {
		if (f)
			fclose(f);
		else
			close(fd);
		return; /* its launcher lives, or is only starting */
	}
	snprintf(name, sizeof name, "fb-%s", id);
	if (stale_netns(name, ino, boot)) {
		snprintf(path, sizeof path, "firebreak-%s", id);
		if (fb_nft_delete(path, err, sizeof err) < 0)
			fprintf(stderr, "firebreak: remove table %s: %s\n", path,
				err);
		/* the uplink veth lives in the namespace and goes with it */
		if (fb_netns_del(name, err, sizeof err) < 0)
			fprintf(stderr, "firebreak: %s\n", err);
	}
	fb_slot_release_stale(state_dir, slot);
	fb_remove_tree(dir);
	fclose(f);
	fprintf(stderr, "firebreak: removed sandbox %s, left by a launcher "
		"that was killed\n", id);
}

bool fb_sandbox_netns_ours(const char *dir, const char *id)
{
	char path[PATH_MAX + 32], name[32], boot[40];
	unsigned long long ino;
	unsigned slot;
	bool ours;
	FILE *f;

	snprintf(path, sizeof path, "%s/" LAUNCHER_LOCK, dir);
	f = fopen(path, "re");
	if (!f)
		return false;
	ours = read_record(f, &ino, &slot, boot);
	fclose(f);
	snprintf(name, sizeof name, "fb-%s", id);
	return ours && stale_netns(name, ino, boot);
}

void fb_sandbox_sweep(const char *state_dir)
{
	DIR *dp = opendir(state_dir);
	struct dirent *e;

	while (dp && (e = readdir(dp)))
		if (fb_sandbox_id_valid(e->d_name))
			sweep_one(state_dir, e->d_name);
	if (dp)
		closedir(dp);
}

/*
 * 1 when the slot's outer uplink address is already an address of this
 * namespace: a launcher on another state directory (another slot pool)
 * took the same slot here, and of two sandboxes sharing the addresses
 * one would get no answers.
 */
static int uplink_in_use(const struct fb_sandbox *sb, char *err,
			 size_t errsize)
{
	struct fb_rtnl *nl = fb_rtnl_open(err, errsize);
	struct fb_addr a;
	int type;

	if (!nl)
		return -1;
	uplink4(sb, 1, &a);
	type = fb_route_type(nl, &a, err, errsize);
	fb_rtnl_close(nl);
	return type < 0 ? -1 : type == RTN_LOCAL;
}

/* A slot whose uplink is free here; the ones found taken stay locked
 * meanwhile, so the pool does not hand them out again. */
static int take_slot(struct fb_sandbox *sb, const char *state_dir, char *err,
		     size_t errsize)
{
	struct fb_slot taken[TAKEN_MAX];
	size_t n = 0;
	int ret = -1, busy;

	while ((ret = fb_slot_acquire(state_dir, &sb->slot, err, errsize)) == 0 &&
	       (busy = uplink_in_use(sb, err, errsize)) != 0) {
		ret = -1;
		if (busy < 0 || n == TAKEN_MAX) {
			if (busy > 0)
				snprintf(err, errsize, "uplink slots under %s/"
					 FB_SLOT_DIR ": %d in a row are used "
					 "here by a launcher with another state "
					 "directory", state_dir, TAKEN_MAX + 1);
			fb_slot_release(&sb->slot);
			break;
		}
		taken[n++] = sb->slot;
	}
	if (ret < 0 && n && n < TAKEN_MAX && strlen(err) + 1 < errsize)
		snprintf(err + strlen(err), errsize - strlen(err), " (%zu "
			 "of them by a launcher with another state directory)",
			 n);
	while (n)
		fb_slot_release(&taken[--n]);
	return ret;
}

int fb_sandbox_claim(struct fb_sandbox *sb, const struct fb_sandbox_opts *o,
		     char *err, size_t errsize)
{
	const char *state_dir = o->state_dir ? o->state_dir : FB_STATE_DIR;
	struct step st = { sb, o->tap, -1, err, errsize };
	int saved;

	memset(sb, 0, sizeof *sb);
	sb->sandbox_ns = sb->guest_ns = sb->tap_fd = sb->lock_fd = -1;
	sb->slot.fd = -1;
	sb->resolver = o->resolver;
	sb->resolver_port = o->resolver_port;

	if (take_slot(sb, state_dir, err, errsize) < 0)
		goto fail;
	/* after the state directory was found trustworthy (acquire) and
	 * before a name of a killed launcher's could be in the way */
	fb_sandbox_sweep(state_dir);
	if (claim_name(sb, o->id, err, errsize) < 0)
		goto fail;
	snprintf(sb->table, sizeof sb->table, "firebreak-%s", sb->id);
	snprintf(sb->dir, sizeof sb->dir, "%s/%s", state_dir, sb->id);
	snprintf(sb->resolv_conf, sizeof sb->resolv_conf, "%s/resolv.conf",
		 sb->dir);

	sb->sandbox_ns = fb_netns_open(sb->name, err, errsize);
	if (sb->sandbox_ns < 0 || write_resolv_conf(&st) < 0 ||
	    hold_dir(sb, err, errsize) < 0)
		goto fail;
	return 0;
fail:
	saved = errno;
	fb_sandbox_destroy(sb);
	errno = saved;
	return -1;
}

int fb_sandbox_build(struct fb_sandbox *sb, const struct fb_sandbox_opts *o,
		     char *err, size_t errsize)
{
	struct step st = { sb, o->tap, -1, err, errsize };
	int ret = -1, saved;

	sb->guest_ns = fb_netns_new_anonymous(err, errsize);
	if (sb->guest_ns < 0)
		return -1;
	st.sysctl = fb_sysctl_open(err, errsize);
	if (st.sysctl < 0 || setup_outside(&st) < 0 ||
	    fb_netns_call(sb->sandbox_ns, setup_sandbox_ns, &st, err,
			  errsize) < 0 ||
	    (!o->tap && fb_netns_call(sb->guest_ns, setup_guest_ns, &st,
				      err, errsize) < 0) ||
	    apply_policy(sb, o->policy, err, errsize) < 0 ||
	    fb_netns_call(sb->sandbox_ns, setup_guest_nat, &st, err,
			  errsize) < 0 ||
	    setup_uplink_table(&st) < 0)
		goto out;
	ret = 0;
out:
	saved = errno;
	if (st.sysctl >= 0)
		close(st.sysctl);
	errno = saved;
	return ret;
}

int fb_sandbox_create(struct fb_sandbox *sb, const struct fb_sandbox_opts *o,
		      char *err, size_t errsize)
{
	int saved;

	if (fb_sandbox_claim(sb, o, err, errsize) < 0)
		return -1;
	if (fb_sandbox_build(sb, o, err, errsize) == 0)
		return 0;
	saved = errno;
	fb_sandbox_destroy(sb);
	errno = saved;
	return -1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void fb_sandbox_destroy(struct fb_sandbox *sb)
{
	char err[256];
	struct fb_rtnl *nl;

	if ((sb->made & MADE_UPLINK_TABLE) &&
	    fb_nft_delete(sb->table, err, sizeof err) < 0)
		fprintf(stderr, "firebreak: remove table %s: %s\n", sb->table,
			err);
	/* Deleting the outer end takes the pair now; left to the namespace's
	 * teardown it would linger for a moment after we exit. */
	if (sb->made & MADE_UPLINK) {
		nl = fb_rtnl_open(err, sizeof err);
		if (!nl || fb_link_del(nl, sb->name, err, sizeof err) < 0)
			fprintf(stderr, "firebreak: %s\n", err);
		fb_rtnl_close(nl);
	}
	if ((sb->made & MADE_NETNS) && fb_netns_del(sb->name, err,
						    sizeof err) < 0)
		fprintf(stderr, "firebreak: %s\n", err);
	/* a daemon's directory holds its own files yet: it removes it */
	if (sb->made & MADE_DIR) {
		char lock[PATH_MAX];

		snprintf(lock, sizeof lock, "%s/" LAUNCHER_LOCK, sb->dir);
		fb_unlock_path(lock, &sb->lock_fd);
		unlink(sb->resolv_conf);
		if (rmdir(sb->dir) < 0 && errno != ENOENT &&
		    (sb->made & OWN_DIR))
			fprintf(stderr, "firebreak: remove %s: %s\n", sb->dir,
				strerror(errno));
	}
	close_fd(&sb->tap_fd);
	close_fd(&sb->guest_ns);
	close_fd(&sb->sandbox_ns);
	fb_slot_release(&sb->slot);
	sb->made = 0;
}

static int remove_entry(const char *path, const struct stat *st, int type,
			struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) < 0 &&
	    errno != ENOENT)
		fprintf(stderr, "firebreak: remove %s: %s\n", path,
			strerror(errno));
	return 0;
}

void fb_remove_tree(const char *path)
{
	if (access(path, F_OK) == 0)
		nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}
