/*
 * launch.h — one sandbox from nothing to running and back: the network,
 * the CA, the proxy, the guest.  `firebreak run` and firebreak-vmhost
 * both start and stop sandboxes through here.  Internal to vmhost/.
 */
#ifndef FB_VMHOST_LAUNCH_H
#define FB_VMHOST_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "policy/policy.h"
#include "vmhost/proxy_start.h"
#include "vmhost/sandbox.h"
#include "vmhost/sandbox_ca.h"

enum fb_backend {
	FB_BACKEND_PROCESS,     /* a command in namespaces of its own */
	FB_BACKEND_QEMU,        /* a microVM on the sandbox's tap */
	FB_BACKEND_FIRECRACKER,
};

struct fb_launch_opts {
	const char *id;             /* NULL: a random one */
	const char *state_dir;      /* NULL: FB_STATE_DIR */
	const char *policy;         /* a file, or allow-all / deny-all */
	const char *policy_name;    /* the file in messages; NULL: its path */
	const struct fb_cidr *publics;
	size_t npublics;
	const char *resolver;       /* IP[:PORT]; NULL: the host's own */
	const char *audit_log;      /* FILE, "-", or NULL: none */
	const char *upstream_ca;    /* extra roots for brokered upstreams */
	char **argv;                /* the guest's command */
	uid_t uid;                  /* it runs as (a VM backend: the VMM) */
	gid_t gid;
	enum fb_backend backend;
	const char *firecracker;    /* the binary; NULL: on PATH */
	const char *jailer;         /* set: firecracker runs under it */
	const char *guest_dir;      /* a VM backend's kernel and initrd */
	unsigned vcpus, mem_mib;    /* a VM backend's; 0: its default */
	/*
	 * clean_env false: the guest inherits the caller's environment (a
	 * user's `firebreak run`), with the policy's ${env:} secrets removed
	 * from it for good once the proxy has read them.  true: the guest
	 * gets PATH, the trust variables and `env` only, and the caller's
	 * environment stays whole for the next proxy (a daemon).  Either
	 * way a VM guest gets only the trust variables and `env`.
	 */
	bool clean_env;
	/* The guest's standard input, output and error are /dev/null, not
	 * the caller's: a daemon's are its log, which a guest could write
	 * lines into, or truncate. */
	bool no_stdio;
	char **env;                 /* more "NAME=value" for the guest, or NULL */
};

struct fb_launch {
	struct fb_sandbox sb;
	struct fb_sandbox_ca ca;
	struct fb_proxy_launch proxy_args; /* kept to restart the proxy */
	char resolver[64];
	pid_t proxy;                /* -1 when none runs */
	pid_t guest;                /* -1 when none runs */
	bool started;               /* sb and ca exist */
	double ready_ms;            /* from the start to the proxy ready */
};

/*
 * Check the policy, nf_tables and the backend, build the network and the
 * CA, start the proxy, then the guest.  On failure nothing is left and
 * err says which step failed and why (a policy's problems one per line,
 * "policy: FILE:LINE:COL: ..."); errno EINVAL for a policy that does not
 * load, EEXIST when opts->id names a live sandbox, EIO when the proxy
 * would not start.  The caller reaps l->guest and l->proxy (and sets
 * them to -1 once reaped).  The strings opts points to must outlive l: a
 * proxy restart reads them again.
 */
int fb_launch_start(const struct fb_launch_opts *o, struct fb_launch *l,
		    char *err, size_t errsize);
/* Start the proxy again after it died (its pid already reaped), with the
 * policy file in force.  -1 with err; l->proxy is -1 then. */
int fb_launch_restart_proxy(struct fb_launch *l, char *err, size_t errsize);
/* SIGKILL and reap the guest if it runs, stop the proxy, remove the CA
 * and the network.  Safe after a failed or partial start. */
void fb_launch_stop(struct fb_launch *l);

/* IP, IP:PORT or [IPv6]:PORT; port 53 when none.  0 or -1. */
int fb_launch_parse_resolver(const char *s, struct fb_addr *a, uint16_t *port);
/* NAME or UID; a number with no passwd entry runs with gid = uid.  0 or -1. */
int fb_launch_resolve_user(const char *user, uid_t *uid, gid_t *gid);

#endif /* FB_VMHOST_LAUNCH_H */
