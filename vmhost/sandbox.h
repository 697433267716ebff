/*
 * sandbox.h — one sandbox's network, and the process backend; internal
 * to vmhost/.
 *
 *   guest netns                 sandbox netns "fb-<id>"          launcher's netns
 *   eth0 10.200.0.2/30  ─veth─  guest0 10.200.0.1/30
 *   (a VM's eth0         ─tap──  guest0: opts.tap)
 *        fd00:fb::2/64                 fd00:fb::1/64
 *                               table inet firebreak (the policy)
 *                               table inet firebreak-guest (masquerade)
 *                               uplink0 100.127.S.2/30  ─veth─  fb-<id> 100.127.S.1/30
 *                                       fd00:fb:1:S::2/64               fd00:fb:1:S::1/64
 *                                                               table inet firebreak-<id>
 *
 * The guest side is the same in every sandbox (a restored snapshot needs
 * no renumbering); the uplink is a slot S of a pool (slot.c), unique among
 * the launchers sharing a state directory, and passed over when another
 * pool's launcher uses its address in this namespace (sandbox.c).
 */
#ifndef FB_VMHOST_SANDBOX_H
#define FB_VMHOST_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy/policy.h"

#define FB_SANDBOX_ID_MAX 12  /* "fb-" + id fits IFNAMSIZ */
#define FB_PROXY_PORT 15001   /* the gateway's TCP redirect target */
#define FB_DNS_PORT 15053     /* the gateway's DNS redirect target */
#define FB_STATE_DIR "/run/firebreak"

/*
 * Uplink slots: slot S owns 100.127.0.0/16's S-th /30 and fd00:fb:1:S::/64.
 * 100.64.0.0/10 is shared address space, never a destination the guest
 * may reach (it is in the deny set), so using its top /16 for point-to-
 * point links between our own namespaces collides with nothing the guest
 * can address.  A slot is held by an flock()ed file under the state
 * directory: a crashed launcher's slot is free again at once.
 */
#define FB_SLOTS 16384
#define FB_SLOT_DIR "slots" /* <state dir>/slots/S */

struct fb_slot {
	unsigned index;
	int fd;          /* holds the lock; -1 when none */
	char path[256];
};

int fb_slot_acquire(const char *state_dir, struct fb_slot *s, char *err,
		    size_t errsize);
/* 0 when the state directory and every directory above it are root's or
 * ours and no one else can write into it (see slot.c); else -1, err set.
 * fb_slot_acquire checks it. */
int fb_state_dir_check(const char *path, char *err, size_t errsize);
void fb_slot_release(struct fb_slot *s);
/* Remove slot S's file under state_dir if no launcher holds it. */
void fb_slot_release_stale(const char *state_dir, unsigned slot);
/*
 * An exclusive flock() on the file at path, made if absent: its O_CLOEXEC
 * descriptor, or -1 with errno EWOULDBLOCK when another holds it (err
 * untouched), else -1 with err.  The holder unlinks the file before it
 * closes the descriptor, so nothing is left behind; the lock then goes
 * to whoever made the next file, never to a waiter on the old one.
 */
int fb_lock_path(const char *path, char *err, size_t errsize);
/* Unlink path and close *fd (fb_lock_path's), then *fd = -1; none: no-op. */
void fb_unlock_path(const char *path, int *fd);

struct fb_sandbox_opts {
	const char *id;        /* NULL: a random one */
	const char *state_dir; /* NULL: FB_STATE_DIR */
	const struct fb_policy *policy; /* the sandbox table's first sets */
	struct fb_addr resolver;  /* family 0: none */
	uint16_t resolver_port;
	bool tap;  /* the guest link is a tap for a VM (sb->tap_fd), not a
		    * veth into guest_ns */
};

struct fb_sandbox {
	char id[FB_SANDBOX_ID_MAX + 1];
	char name[16];        /* "fb-<id>": the namespace, and the uplink's outer end */
	char table[32];       /* "firebreak-<id>": the table in the launcher's namespace */
	char dir[256];        /* <state dir>/<id>: resolv.conf, the proxy's socket */
	char resolv_conf[300];
	int sandbox_ns;
	int guest_ns;         /* no name: it lives while this descriptor or the guest does */
	int tap_fd;           /* opts.tap: the gateway's tap, for the VM; else -1 */
	int lock_fd;          /* holds <dir>/launcher.lock; -1 when none */
	struct fb_slot slot;
	bool v6_egress;       /* the launcher's side has IPv6 to forward to */
	struct fb_addr resolver;
	uint16_t resolver_port;
	unsigned made;        /* what exists, for teardown */
};

/* Ids: [a-z0-9-], 1 to FB_SANDBOX_ID_MAX characters, other than
 * FB_SLOT_DIR.  FB_SANDBOX_ID_RULE says so, for messages. */
bool fb_sandbox_id_valid(const char *id);
#define FB_SANDBOX_ID_RULE "use 1 to " FB_STR(FB_SANDBOX_ID_MAX) " of a-z, " \
			   "0-9 and '-', other than \"" FB_SLOT_DIR "\""
#define FB_STR(x) FB_STR_(x)
#define FB_STR_(x) #x

/*
 * Build the whole network, every table included, the sandbox table
 * programmed for opts->policy before the guest link carries a packet
 * (the sandbox's proxy takes the table over from there).  On failure
 * everything made so far is removed; errno EEXIST when opts->id names a
 * live sandbox.
 */
int fb_sandbox_create(struct fb_sandbox *sb, const struct fb_sandbox_opts *opts,
		      char *err, size_t errsize);
/*
 * fb_sandbox_create in two halves, for a caller with work of its own to
 * do in between (in another thread: the CA is made while the network is
 * built).  claim takes the slot, the name and the directory, and on
 * failure removes what it made; build makes everything else, and on
 * failure leaves the sandbox to fb_sandbox_destroy.
 */
int fb_sandbox_claim(struct fb_sandbox *sb, const struct fb_sandbox_opts *opts,
		     char *err, size_t errsize);
int fb_sandbox_build(struct fb_sandbox *sb, const struct fb_sandbox_opts *opts,
		     char *err, size_t errsize);
/* Remove everything create made; reports problems on stderr. */
void fb_sandbox_destroy(struct fb_sandbox *sb);
/*
 * Remove what launchers killed outright (SIGKILL, the OOM killer) left
 * under state_dir: a sandbox directory whose launcher.lock no one holds,
 * with the namespace, table and slot it names.  A daemon's sandboxes
 * (with a state file) are its recovery's.  claim runs it.
 */
void fb_sandbox_sweep(const char *state_dir);
/*
 * Whether the namespace fb-<id> is still the one the launcher that
 * worked in `dir` recorded in its lock file: a name freed since (a
 * reboot, a hand's `ip netns del`) may be another launcher's now, whose
 * namespace and table are not ours to remove.  False with no record.
 */
bool fb_sandbox_netns_ours(const char *dir, const char *id);

/* Remove path and everything under it: depth first, a symlink removed
 * and never followed, never off path's filesystem.  What cannot be
 * removed is reported on stderr. */
void fb_remove_tree(const char *path);

/* preflight.c: one clear error before anything is created. */
int fb_preflight_privileges(char *err, size_t errsize);
int fb_preflight_nftables(char *err, size_t errsize);
/*
 * The program execvp would run for `name`, into buf: name itself when it
 * holds a '/', else the first executable PATH entry (a default PATH when
 * unset).  0, or -1 with errno saying why (ENOENT when nowhere on PATH).
 */
int fb_find_program(const char *name, char *buf, size_t size);
/*
 * `path` made absolute against the working directory, into buf, with its
 * symlinks left in (a later look-up follows what they point to then).  0,
 * or -1 with errno (ENAMETOOLONG when it does not fit: never cut).
 */
int fb_path_absolute(const char *path, char *buf, size_t size);

/* The process backend (process.c). */
struct fb_process_opts {
	char **argv;
	uid_t uid;
	gid_t gid;
	int guest_ns;
	const char *resolv_conf; /* bind-mounted over /etc/resolv.conf */
	const char *trust_bundle; /* bind-mounted over the CA bundle paths, or NULL */
	char **env;              /* "NAME=value" set for the command, or NULL */
};

/*
 * Start argv in the guest namespace, a new PID namespace (under a small
 * init that forwards signals and reaps) and a private mount namespace, as
 * uid:gid with no supplementary groups and no_new_privs.  Returns the pid
 * to signal and wait for: it exits with the command's status, or 128 plus
 * the signal that killed it; 125 when the sandbox could not be entered,
 * 126/127 when the command could not be run.  Dies with the caller.
 */
pid_t fb_process_spawn(const struct fb_process_opts *o, char *err,
		       size_t errsize);

#endif /* FB_VMHOST_SANDBOX_H */
