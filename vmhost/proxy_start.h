/*
 * proxy_start.h — a sandbox's firebreak-proxy: started inside the
 * sandbox namespace once the network is up, before the guest runs;
 * stopped before the network goes.  Internal to vmhost/.
 */
#ifndef FB_VMHOST_PROXY_START_H
#define FB_VMHOST_PROXY_START_H

#include <stddef.h>
#include <sys/types.h>

#include "policy/policy.h"
#include "vmhost/sandbox.h"

#define FB_CONTROL_SOCK "control.sock" /* under <state dir>/<id>/ */

struct fb_proxy_launch {
	const char *policy;         /* a file, or the words allow-all / deny-all */
	const struct fb_cidr *publics;
	size_t npublics;
	const char *resolver;       /* IP[:PORT] as the user gave it, or NULL */
	const char *audit_log;      /* FILE, "-", or NULL: none */
	const char *ca_cert, *ca_key; /* the sandbox CA (brokering) */
	const char *trust_bundle;   /* the guest's bundle: rewritten on a CA reissue */
	const char *jwt_key;        /* signs forwardURL tokens */
	const char *upstream_ca;    /* extra roots for brokered upstreams */
	unsigned generation;        /* the first policy's (--generation), 0: 1 */
};

/*
 * Start the proxy and wait until its control socket answers to its name
 * (it creates it last, after its nft table is in place).  Returns the
 * proxy's pid, or -1 with err naming what went wrong.
 */
pid_t fb_proxy_start(const struct fb_sandbox *sb, const struct fb_proxy_launch *l,
		     char *err, size_t errsize);
/* SIGTERM, wait, and remove what the start left in the sandbox dir. */
void fb_proxy_stop(const struct fb_sandbox *sb, pid_t pid);

/* <state dir>/<id>/control.sock for a sandbox id; -1 if too long. */
int fb_control_sock_path(const char *state_dir, const char *id, char *buf,
			 size_t size);

#endif /* FB_VMHOST_PROXY_START_H */
