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
	uid_t uid;
	gid_t gid;
	/*
	 * clean_env false: the guest inherits the caller's environment (a
	 * user's `firebreak run`), with the policy's ${env:} secrets removed
	 * from it for good once the proxy has read them.  true: the guest
	 * gets PATH, the trust variables and `env` only, and the caller's
	 * environment stays whole for the next proxy (a daemon).
	 */
	bool clean_env;
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
};

/*
 * Check and load the policy, build the network and the CA, start the
 * proxy, then the guest.  On failure nothing is left and err says which
 * step failed and why (a policy's problems as FILE:LINE:COL lines);
 * errno EEXIST when opts->id names a live sandbox.  Blocks SIGCHLD is
 * the caller's business: the caller reaps l->guest and l->proxy.
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

#endif /* FB_VMHOST_LAUNCH_H */
