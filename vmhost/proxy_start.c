/*
 * proxy_start.c — run a sandbox's firebreak-proxy inside its namespace.
 *
 * The proxy is the program next to the running `firebreak` binary, so a
 * build directory's launcher runs that build's proxy.  It dies with the
 * launcher (PR_SET_PDEATHSIG): a sandbox never outlives supervision with
 * a proxy nobody can stop, and without a proxy its redirects are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxy/loop.h"
#include "vmhost/net.h"
#include "vmhost/proxy_start.h"

#define START_TIMEOUT_MS 5000
/* Every option once (35 words), 64 --public, the NULL. */
#define MAX_ARGS (35 + 2 * 64 + 1)
#define POLICY_FILE "policy.yaml" /* the words allow-all / deny-all, as a file */

int fb_control_sock_path(const char *state_dir, const char *id, char *buf,
			 size_t size)
{
	int n = snprintf(buf, size, "%s/%s/%s", state_dir, id, FB_CONTROL_SOCK);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int proxy_binary(char *buf, size_t size, char *err, size_t errsize)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n < 0) {
		snprintf(err, errsize, "readlink /proc/self/exe: %s", strerror(errno));
		return -1;
	}
	self[n] = '\0';
	slash = strrchr(self, '/');
	*slash = '\0';
	if ((size_t)snprintf(buf, size, "%s/firebreak-proxy", self) >= size ||
	    access(buf, X_OK) < 0) {
		snprintf(err, errsize, "%s/firebreak-proxy: %s", self,
			 strerror(errno ? errno : ENAMETOOLONG));
		return -1;
	}
	return 0;
}

/*
 * The policy as a path the proxy can re-read on SIGHUP: absolute, but
 * with its symlinks left in, so that re-pointing one (as a config-map
 * update does) and sending SIGHUP loads the new target.
 */
static int policy_path(const struct fb_sandbox *sb, const char *policy,
		       char *buf, size_t size, char *err, size_t errsize)
{
	if (strcmp(policy, "allow-all") && strcmp(policy, "deny-all")) {
		if (fb_path_absolute(policy, buf, size) < 0 ||
		    access(buf, R_OK) < 0) {
			snprintf(err, errsize, "%s: %s", policy, strerror(errno));
			return -1;
		}
		return 0;
	}
	snprintf(buf, size, "%s/%s", sb->dir, POLICY_FILE);
	FILE *f = fopen(buf, "we");
	if (!f || fprintf(f, "%s\n", policy) < 0 || fclose(f) != 0) {
		snprintf(err, errsize, "write %s: %s", buf, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The child of a vfork: it runs in the launcher's memory, on the
 * launcher's stack, until the exec.  A fork would copy the launcher's
 * page tables only for the exec to throw them away, some milliseconds on
 * the path of every sandbox's start.  So the child changes nothing of
 * the parent's: no stdio stream, no allocation, and no signal handler of
 * the launcher's may run here (the caller blocks every signal over the
 * vfork; the handlers go back to the default before the mask opens).
 */
static void child(const struct fb_sandbox *sb, char **argv)
{
	const struct sigaction dfl = { .sa_handler = SIG_DFL };
	struct sigaction sa;
	sigset_t none;
	char err[256];
	int devnull;

	for (int sig = 1; sig < NSIG; sig++)
		if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL &&
		    sa.sa_handler != SIG_IGN)
			sigaction(sig, &dfl, NULL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull >= 0)
		dup2(devnull, STDIN_FILENO);
	/* Whatever the launcher's caller left open (a pipe of its shell, a
	 * log) is not the proxy's to hold: it would keep a reader from its
	 * end of file, and the proxy runs as long as the sandbox.  The table
	 * is the child's own (vfork shares memory, not descriptors). */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	if (fb_netns_enter(sb->sandbox_ns, err, sizeof(err)) < 0) {
		dprintf(STDERR_FILENO, "firebreak-proxy: %s\n", err);
		_exit(125);
	}
	execv(argv[0], argv);
	dprintf(STDERR_FILENO, "firebreak-proxy: exec %s: %s\n", argv[0],
		strerror(errno));
	_exit(127);
}

/*
 * Wait until the proxy's control socket exists: woken by the directory's
 * inotify watch (`watch`, made before the fork so the socket cannot be
 * missed) or by the proxy's exit (its pidfd), not by polling.  Without
 * either descriptor, it looks again every millisecond.  0, or -1 with
 * the proxy reaped or killed.
 */
static int wait_ready(pid_t pid, int watch, const char *sock, char *err,
		      size_t errsize)
{
	struct pollfd p[2] = {
		{ .fd = watch, .events = POLLIN },
		{ .fd = pidfd_open(pid, 0), .events = POLLIN },
	};
	uint64_t deadline = fb_monotonic_ms() + START_TIMEOUT_MS, now;
	char events[4096];
	struct stat st;
	int status, ret = -1;

	while ((now = fb_monotonic_ms()) < deadline) {
		if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode)) {
			ret = 0;
			goto out;
		}
		switch (waitpid(pid, &status, WNOHANG)) {
		case 0:
			break;
		case -1: /* not ours to wait for: a readable pidfd would spin */
			snprintf(err, errsize, "waitpid firebreak-proxy: %s",
				 strerror(errno));
			goto out;
		default:
			snprintf(err, errsize, "firebreak-proxy exited with status %d before it was ready",
				 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
			goto out;
		}
		poll(p, 2, watch >= 0 && p[1].fd >= 0 ? (int)(deadline - now) : 1);
		if (watch >= 0)
			while (read(watch, events, sizeof(events)) > 0)
				;
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	snprintf(err, errsize, "firebreak-proxy not ready after %d ms", START_TIMEOUT_MS);
out:
	if (p[1].fd >= 0)
		close(p[1].fd);
	return ret;
}

pid_t fb_proxy_start(const struct fb_sandbox *sb, const struct fb_proxy_launch *l,
		     char *err, size_t errsize)
{
	char bin[PATH_MAX], pol[PATH_MAX], sock[PATH_MAX], gen[16];
	char publics[64][FB_CIDR_STRLEN];
	const char *argv[MAX_ARGS];
	size_t n = 0;
	sigset_t all, was;
	pid_t pid;
	int watch, ready;

	if (proxy_binary(bin, sizeof(bin), err, errsize) < 0 ||
	    policy_path(sb, l->policy, pol, sizeof(pol), err, errsize) < 0)
		return -1;
	snprintf(sock, sizeof(sock), "%s/%s", sb->dir, FB_CONTROL_SOCK);
	argv[n++] = bin;
	argv[n++] = "--policy";      argv[n++] = pol;
	argv[n++] = "--listen";      argv[n++] = "10.200.0.1:15001";
	argv[n++] = "--listen";      argv[n++] = "[fd00:fb::1]:15001";
	argv[n++] = "--dns-listen";  argv[n++] = "10.200.0.1:15053";
	argv[n++] = "--control";     argv[n++] = sock;
	argv[n++] = "--sandbox-id";  argv[n++] = sb->id;
	argv[n++] = "--guest-if";    argv[n++] = "guest0";
	argv[n++] = "--gateway";     argv[n++] = "10.200.0.1";
	argv[n++] = "--gateway";     argv[n++] = "fd00:fb::1";
	if (l->generation) {
		snprintf(gen, sizeof(gen), "%u", l->generation);
		argv[n++] = "--generation";
		argv[n++] = gen;
	}
	if (l->resolver) {
		argv[n++] = "--resolver";
		argv[n++] = l->resolver;
	}
	if (l->audit_log) {
		argv[n++] = "--audit-log";
		argv[n++] = l->audit_log;
	}
	if (l->ca_cert) {
		argv[n++] = "--ca-cert";  argv[n++] = l->ca_cert;
		argv[n++] = "--ca-key";   argv[n++] = l->ca_key;
		argv[n++] = "--jwt-key";  argv[n++] = l->jwt_key;
		argv[n++] = "--trust-bundle"; argv[n++] = l->trust_bundle;
	}
	if (l->upstream_ca) {
		argv[n++] = "--upstream-ca";
		argv[n++] = l->upstream_ca;
	}
	for (size_t i = 0; i < l->npublics && i < 64; i++) {
		fb_cidr_format(&l->publics[i], publics[i], sizeof(publics[i]));
		argv[n++] = "--public";
		argv[n++] = publics[i];
	}
	argv[n] = NULL;

	unlink(sock);
	watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (watch >= 0 && inotify_add_watch(watch, sb->dir, IN_CREATE) < 0) {
		close(watch);
		watch = -1;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &was);
	pid = vfork();
	if (pid == 0)
		child(sb, (char **)argv);
	pthread_sigmask(SIG_SETMASK, &was, NULL);
	if (pid < 0) {
		snprintf(err, errsize, "vfork: %s", strerror(errno));
		if (watch >= 0)
			close(watch);
		return -1;
	}
	ready = wait_ready(pid, watch, sock, err, errsize);
	if (watch >= 0)
		close(watch);
	return ready < 0 ? -1 : pid;
}

void fb_proxy_stop(const struct fb_sandbox *sb, pid_t pid)
{
	char path[PATH_MAX];
	int status;

	if (pid > 0) {
		kill(pid, SIGTERM);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	/* the proxy removes its socket; these are ours */
	snprintf(path, sizeof(path), "%s/%s", sb->dir, FB_CONTROL_SOCK);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s", sb->dir, POLICY_FILE);
	unlink(path);
}
