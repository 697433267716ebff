/*
 * launch.c — one sandbox, in order: the policy is loaded and nf_tables
 * checked before anything exists; then the network, the CA (its key stays
 * on the host side), the proxy, and only then the guest, so that the
 * guest's first packet meets a proxy that already enforces the policy.
 * Stopping runs the same steps backwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/wait.h>

#include "vmhost/firecracker.h"
#include "vmhost/launch.h"
#include "vmhost/qemu.h"
#include "vmhost/trust.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

extern char **environ;

int fb_launch_parse_resolver(const char *s, struct fb_addr *a, uint16_t *port)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	const char *p = NULL;
	char *end;
	unsigned long n = 53;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || (close[1] && close[1] != ':'))
			return -1;
		snprintf(host, sizeof host, "%.*s", (int)(close - s - 1), s + 1);
		p = close[1] ? close + 2 : NULL;
	} else if (colon && strchr(s, ':') == colon) {
		snprintf(host, sizeof host, "%.*s", (int)(colon - s), s);
		p = colon + 1;
	} else {
		snprintf(host, sizeof host, "%s", s);
	}
	if (p) {
		errno = 0;
		n = strtoul(p, &end, 10);
		if (errno || end == p || *end || n == 0 || n > 65535)
			return -1;
	}
	if (fb_addr_parse(host, a) < 0)
		return -1;
	*port = n;
	return 0;
}

int fb_launch_resolve_user(const char *user, uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam(user);
	unsigned long n;
	char *end;

	if (pw) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
		return 0;
	}
	errno = 0;
	n = strtoul(user, &end, 10);
	if (errno || end == user || *end || n > 0xfffffffeUL)
		return -1;
	pw = getpwuid(n);
	*uid = n;
	*gid = pw ? pw->pw_gid : n;
	return 0;
}

/* The launcher's own resolver: the first nameserver in /etc/resolv.conf. */
static void host_resolver(struct fb_addr *a, uint16_t *port)
{
	FILE *f = fopen("/etc/resolv.conf", "re");
	char line[256], addr[INET6_ADDRSTRLEN + 1];

	a->family = 0;
	if (!f)
		return;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, " nameserver %46s", addr) == 1 &&
		    fb_addr_parse(addr, a) == 0) {
			*port = 53;
			break;
		}
	fclose(f);
}

/* Every problem, one "policy: FILE:LINE:COL: message" line each. */
static void policy_errors(const struct fb_diags *diags, char *err,
			  size_t errsize)
{
	size_t used = 0;

	err[0] = '\0';
	for (size_t i = 0; i < diags->n && used < errsize; i++) {
		const struct fb_diag *d = &diags->v[i];
		int n = d->line ?
			snprintf(err + used, errsize - used,
				 "%spolicy: %s:%u:%u: %s", i ? "\n" : "",
				 d->file, d->line, d->col, d->msg) :
			snprintf(err + used, errsize - used, "%spolicy: %s: %s",
				 i ? "\n" : "", d->file, d->msg);

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

static struct fb_policy *load_policy(const struct fb_launch_opts *o,
				     char *err, size_t errsize)
{
	const char *name = o->policy_name ? o->policy_name : o->policy;
	struct fb_load_opts lo = {
		.filename = name,
		.publics = o->publics,
		.npublics = o->npublics,
	};
	struct fb_diags diags = { 0 };
	struct fb_policy *p;

	if (!strcmp(o->policy, "allow-all") || !strcmp(o->policy, "deny-all"))
		p = fb_policy_load(o->policy, strlen(o->policy), &lo, &diags);
	else
		p = fb_policy_load_file(o->policy, &lo, &diags);
	if (!p && diags.n)
		policy_errors(&diags, err, errsize);
	else if (!p)
		snprintf(err, errsize, "policy: %s: cannot load", name);
	fb_diags_free(&diags);
	return p;
}

/* "what: " before the message a step left in err. */
static void prefix_err(const char *what, char *err, size_t errsize)
{
	size_t n = strlen(what) + 2, len = strlen(err);

	if (n + len >= errsize)
		len = errsize - n - 1;
	memmove(err + n, err, len);
	err[n + len] = '\0';
	memcpy(err, what, n - 2);
	memcpy(err + n - 2, ": ", 2);
}

static int preflight_backend(const struct fb_launch_opts *o, char *err,
			     size_t errsize)
{
	switch (o->backend) {
	case FB_BACKEND_PROCESS:
		return 0;
	case FB_BACKEND_QEMU:
		return fb_qemu_preflight(o->guest_dir, err, errsize);
	case FB_BACKEND_FIRECRACKER:
		return fb_firecracker_preflight(o->firecracker ? o->firecracker
					       : FB_FIRECRACKER_BINARY,
					       o->jailer, o->guest_dir, err,
					       errsize);
	}
	return 0;
}

/* NULL-terminated concatenation of two string lists (either may be NULL);
 * the strings are shared, only the array is new. */
static char **env_join(char **a, char **b)
{
	size_t na = 0, nb = 0;
	char **out;

	while (a && a[na])
		na++;
	while (b && b[nb])
		nb++;
	out = calloc(na + nb + 1, sizeof *out);
	if (!out)
		return NULL;
	memcpy(out, a, na * sizeof *out);
	if (nb)
		memcpy(out + na, b, nb * sizeof *out);
	return out;
}

static pid_t spawn_vm(const struct fb_launch_opts *o, struct fb_launch *l,
		      const struct fb_process_opts *po, char *err,
		      size_t errsize)
{
	struct fb_qemu_opts guest = {
		.argv = po->argv,
		.env = po->env,
		.guest_dir = o->guest_dir,
		.ca_cert = l->ca.cert,
		.trust_bundle = l->ca.bundle,
		.tap_fd = l->sb.tap_fd,
		.ns = l->sb.guest_ns,
		.uid = po->uid,
		.gid = po->gid,
		.vcpus = o->vcpus,
		.mem_mib = o->mem_mib,
	};
	struct fb_firecracker_opts fo = {
		.guest = guest,
		.binary = o->firecracker,
		.jailer = o->jailer,
		.id = l->sb.id,
		.sandbox_ns = l->sb.sandbox_ns,
		.sandbox_ns_name = l->sb.name,
		.tap_name = "guest0",
		.dir = l->sb.dir,
		.vcpus = o->vcpus,
		.mem_mib = o->mem_mib,
	};

	if (o->backend == FB_BACKEND_QEMU)
		return fb_qemu_spawn(&guest, err, errsize);
	fo.guest.tap_fd = fo.guest.ns = -1;
	return fb_firecracker_spawn(&fo, &l->sb.tap_fd, err, errsize);
}

/* Descriptors 0 to n-1 back from `saved`, which are closed. */
static void stdio_restore(const int saved[3], int n)
{
	for (int fd = 0; fd < n; fd++) {
		dup2(saved[fd], fd);
		close(saved[fd]);
	}
}

/* Standard input, output and error on /dev/null, the caller's kept in
 * `saved` for stdio_restore.  -1, nothing changed, on failure. */
static int stdio_to_null(int saved[3])
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null < 0)
		return -1;
	for (int fd = 0; fd < 3; fd++) {
		saved[fd] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (saved[fd] < 0 || dup2(null, fd) < 0) {
			if (saved[fd] >= 0)
				close(saved[fd]);
			stdio_restore(saved, fd);
			close(null);
			return -1;
		}
	}
	close(null);
	return 0;
}

/*
 * Start the guest.  With clean_env the fork sees an environment of PATH
 * alone (the process backend adds po->env on top of what it inherits),
 * with no_stdio descriptors 0-2 on /dev/null; the caller's are put back
 * at once, which is safe because the launcher is single-threaded.
 */
static pid_t spawn_guest(const struct fb_launch_opts *o, struct fb_launch *l,
			 char *err, size_t errsize)
{
	struct fb_process_opts po = {
		.argv = o->argv,
		.uid = o->uid,
		.gid = o->gid,
		.guest_ns = l->sb.guest_ns,
		.resolv_conf = l->sb.resolv_conf,
		.trust_bundle = l->ca.bundle,
	};
	char **trust = fb_trust_env(FB_TRUST_GUEST_BUNDLE, NULL);
	char path[4096], *clean[] = { path, NULL };
	char **saved = environ;
	int stdio[3];
	pid_t pid = -1;

	snprintf(path, sizeof path, "PATH=%s",
		 getenv("PATH") ? getenv("PATH") : DEFAULT_PATH);
	po.env = trust ? env_join(trust, o->env) : NULL;
	if (!po.env) {
		snprintf(err, errsize, "out of memory");
		goto out;
	}
	if (o->no_stdio && stdio_to_null(stdio) < 0) {
		snprintf(err, errsize, "/dev/null for the guest: %s",
			 strerror(errno));
		goto out;
	}
	if (o->clean_env)
		environ = clean;
	if (o->backend == FB_BACKEND_PROCESS)
		pid = fb_process_spawn(&po, err, errsize);
	else
		pid = spawn_vm(o, l, &po, err, errsize);
	environ = saved;
	if (o->no_stdio)
		stdio_restore(stdio, 3);
out:
	free(po.env);
	fb_trust_env_free(trust);
	return pid;
}

int fb_launch_start(const struct fb_launch_opts *o, struct fb_launch *l,
		    char *err, size_t errsize)
{
	struct fb_sandbox_opts so = {
		.id = o->id,
		.state_dir = o->state_dir,
		.tap = o->backend != FB_BACKEND_PROCESS,
	};
	struct fb_sandbox_ca_job ca_job;
	struct fb_policy *policy;
	struct timespec t0, t1;
	char ca_err[512];
	int built, saved;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(l, 0, sizeof *l);
	l->proxy = l->guest = -1;
	/*
	 * The process backend has no user namespace: its uid 0 is the
	 * host's.  Even with no capability (process.c drops them all) that
	 * root owns the host's root files: /etc/passwd, the proxy's control
	 * socket (a new policy), the CA key.
	 */
	if (o->backend == FB_BACKEND_PROCESS && o->uid == 0) {
		snprintf(err, errsize, "user root: the process backend's root "
			 "is the host's; run the command as another user");
		errno = EINVAL;
		return -1;
	}
	if (o->resolver) {
		if (fb_launch_parse_resolver(o->resolver, &so.resolver,
					     &so.resolver_port) < 0) {
			snprintf(err, errsize, "resolver '%s': expected IP, "
				 "IP:PORT or [IPv6]:PORT", o->resolver);
			errno = EINVAL;
			return -1;
		}
		snprintf(l->resolver, sizeof l->resolver, "%s", o->resolver);
	} else {
		host_resolver(&so.resolver, &so.resolver_port);
	}
	if (fb_preflight_privileges(err, errsize) < 0)
		return -1;
	policy = load_policy(o, err, errsize);
	if (!policy) {
		errno = EINVAL;
		return -1;
	}
	if (fb_preflight_nftables(err, errsize) < 0 ||
	    preflight_backend(o, err, errsize) < 0) {
		errno = ENOENT;
		goto fail_policy;
	}

	so.policy = policy;
	if (fb_sandbox_claim(&l->sb, &so, err, errsize) < 0)
		goto fail_policy;
	l->started = true;
	/* The CA and token key stay here, on the host side; the guest gets
	 * the certificate in its trust store and nothing else.  Neither the
	 * CA nor the network needs the other, so the keys are generated
	 * while the network is built. */
	if (fb_sandbox_ca_begin(&ca_job, &l->sb, policy, &l->ca, err,
				errsize) < 0) {
		prefix_err("sandbox CA", err, errsize);
		goto fail;
	}
	built = fb_sandbox_build(&l->sb, &so, err, errsize);
	saved = errno;
	if (fb_sandbox_ca_end(&ca_job, ca_err, sizeof ca_err) < 0 &&
	    built == 0) {
		snprintf(err, errsize, "sandbox CA: %s", ca_err);
		goto fail;
	}
	errno = saved;
	if (built < 0)
		goto fail;
	l->proxy_args = (struct fb_proxy_launch){
		.policy = o->policy,
		.publics = o->publics,
		.npublics = o->npublics,
		.resolver = o->resolver ? l->resolver : NULL,
		.audit_log = o->audit_log,
		.ca_cert = l->ca.cert,
		.ca_key = l->ca.key,
		.jwt_key = l->ca.jwt_key,
		.trust_bundle = l->ca.bundle,
		.upstream_ca = o->upstream_ca,
	};
	l->proxy = fb_proxy_start(&l->sb, &l->proxy_args, err, errsize);
	if (l->proxy < 0) {
		prefix_err("proxy", err, errsize);
		/* the host's fault, whatever errno the wait left (a stat's
		 * ENOENT would read as a missing hypervisor) */
		errno = EIO;
		goto fail;
	}
	/* Network, CA and a proxy enforcing the policy: what a sandbox
	 * costs before its guest, which an operator may want to know. */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	l->ready_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		      (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	/* The proxy has read its secrets; a guest that inherits the
	 * caller's environment must not find them there. */
	if (!o->clean_env)
		fb_sandbox_scrub_secrets(policy);
	l->guest = spawn_guest(o, l, err, errsize);
	if (l->guest < 0)
		goto fail;
	fb_policy_unref(policy);
	return 0;
fail:
	saved = errno;
	fb_launch_stop(l);
	errno = saved;
fail_policy:
	saved = errno;
	fb_policy_unref(policy);
	errno = saved;
	return -1;
}

int fb_launch_restart_proxy(struct fb_launch *l, char *err, size_t errsize)
{
	l->proxy = fb_proxy_start(&l->sb, &l->proxy_args, err, errsize);
	return l->proxy < 0 ? -1 : 0;
}

void fb_launch_stop(struct fb_launch *l)
{
	if (l->guest > 0) {
		kill(l->guest, SIGKILL);
		while (waitpid(l->guest, NULL, 0) < 0 && errno == EINTR)
			;
		l->guest = -1;
	}
	if (!l->started)
		return;
	fb_proxy_stop(&l->sb, l->proxy);
	l->proxy = -1;
	fb_sandbox_ca_remove(&l->ca);
	fb_sandbox_destroy(&l->sb);
	l->started = false;
}
