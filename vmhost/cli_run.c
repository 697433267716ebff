/*
 * cli_run.c — `firebreak run`: one sandbox for one command.
 *
 * The sandbox is started and stopped by launch.c, as firebreak-vmhost's
 * are; here: the arguments, and the wait for the command, passing
 * SIGINT/SIGTERM on and re-reading the policy on SIGHUP; then everything
 * is removed and the command's status is the exit status.
 *
 * SIGHUP is passed to the sandbox's proxy, which owns the policy: it
 * re-reads --policy and applies it in user space and in the nft table,
 * cutting connections and forwarded streams the new policy refuses.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include "vmhost/firecracker.h"
#include "vmhost/launch.h"
#include "vmhost/qemu.h"
#include "vmhost/vmhost.h"

#define MAX_PUBLICS 64

struct run_args {
	const char *policy;       /* a file, or allow-all / deny-all */
	struct fb_cidr publics[MAX_PUBLICS];
	size_t npublics;
	const char *resolver;
	const char *user;
	const char *name;
	const char *state_dir;
	const char *audit_log;
	const char *upstream_ca;
	const char *firecracker;  /* set: the firecracker backend, this binary */
	const char *jailer;       /* set: firecracker runs under this jailer */
	bool qemu;                /* the qemu backend */
	const char *guest_dir;    /* a VM backend's guest image */
	unsigned vcpus, mem_mib;  /* 0: the backend's default */
	char **argv;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: firebreak run [--policy FILE|allow-all|deny-all] "
		"[--public CIDR]...\n"
		"                     [--resolver IP[:PORT]] [--user NAME|UID] "
		"[--name ID]\n"
		"                     [--state-dir DIR] [--audit-log FILE] "
		"[--backend process|qemu|firecracker]\n"
		"                     [--upstream-ca FILE] [--firecracker PATH] "
		"[--guest DIR]\n"
		"                     [--jailer PATH] [--vcpus N] [--memory MIB]\n"
		"                     -- COMMAND [ARG]...\n"
		"\n"
		"Runs COMMAND in a sandbox of its own (network, PID and mount "
		"namespaces)\nunder the policy (default deny-all), as user "
		"nobody unless --user says\notherwise, and exits with its "
		"status.  SIGHUP re-reads the policy file.\n");
}

/* A whole number from 1 to max. */
static int parse_count(const char *opt, const char *s, unsigned max,
		       unsigned *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(s, &end, 10);
	if (errno || end == s || *end || n < 1 || n > max) {
		fprintf(stderr, "firebreak run: %s '%s': expected a number "
			"from 1 to %u\n", opt, s, max);
		return -1;
	}
	*out = n;
	return 0;
}

static int parse_args(int argc, char **argv, struct run_args *a)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "public", required_argument, NULL, 'P' },
		{ "resolver", required_argument, NULL, 'r' },
		{ "user", required_argument, NULL, 'u' },
		{ "name", required_argument, NULL, 'n' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "backend", required_argument, NULL, 'b' },
		{ "audit-log", required_argument, NULL, 'a' },
		{ "upstream-ca", required_argument, NULL, 'U' },
		{ "firecracker", required_argument, NULL, 'F' },
		{ "jailer", required_argument, NULL, 'J' },
		{ "guest", required_argument, NULL, 'g' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "memory", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char err[160];
	const char *backend = "process";
	int c;

	memset(a, 0, sizeof *a);
	a->policy = "deny-all";
	a->user = "nobody";
	a->state_dir = FB_STATE_DIR;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': a->policy = optarg; break;
		case 'r': a->resolver = optarg; break;
		case 'u': a->user = optarg; break;
		case 'n': a->name = optarg; break;
		case 's': a->state_dir = optarg; break;
		case 'a': a->audit_log = optarg; break;
		case 'U': a->upstream_ca = optarg; break;
		case 'P':
			if (a->npublics == MAX_PUBLICS) {
				fprintf(stderr, "firebreak run: more than %d "
					"--public ranges\n", MAX_PUBLICS);
				return 2;
			}
			if (fb_cidr_parse(optarg, &a->publics[a->npublics++],
					  err, sizeof err) < 0) {
				fprintf(stderr, "firebreak run: --public: %s\n",
					err);
				return 2;
			}
			break;
		case 'b':
			if (strcmp(optarg, "process") &&
			    strcmp(optarg, "qemu") &&
			    strcmp(optarg, "firecracker")) {
				fprintf(stderr, "firebreak run: backend '%s' "
					"is not available yet; use process, "
					"qemu or firecracker\n", optarg);
				return 2;
			}
			backend = optarg;
			break;
		case 'F': a->firecracker = optarg; break;
		case 'J': a->jailer = optarg; break;
		case 'g': a->guest_dir = optarg; break;
		case 'c':
			if (parse_count("--vcpus", optarg, 32, &a->vcpus) < 0)
				return 2;
			break;
		case 'm':
			if (parse_count("--memory", optarg, 1 << 20,
					&a->mem_mib) < 0)
				return 2;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	/* The guest's output goes where ours does: in that stream it could
	 * write lines the log's readers would take for the proxy's. */
	if (a->audit_log && !strcmp(a->audit_log, "-")) {
		fprintf(stderr, "firebreak run: --audit-log -: the command's "
			"output shares the stream and could forge lines; give "
			"a file\n");
		return 2;
	}
	if (a->name && !fb_sandbox_id_valid(a->name)) {
		fprintf(stderr, "firebreak run: --name '%s': "
			FB_SANDBOX_ID_RULE "\n", a->name);
		return 2;
	}
	a->qemu = !strcmp(backend, "qemu");
	if (strcmp(backend, "firecracker") && (a->firecracker || a->jailer)) {
		fprintf(stderr, "firebreak run: --firecracker and --jailer need "
			"--backend firecracker\n");
		return 2;
	}
	if (!strcmp(backend, "process") &&
	    (a->guest_dir || a->vcpus || a->mem_mib)) {
		fprintf(stderr, "firebreak run: --guest, --vcpus and --memory "
			"need --backend qemu or firecracker\n");
		return 2;
	}
	if (!strcmp(backend, "firecracker") && !a->firecracker)
		a->firecracker = FB_FIRECRACKER_BINARY;
	if (a->qemu || a->firecracker) {
		if (!a->guest_dir)
			a->guest_dir = getenv("FIREBREAK_GUEST_DIR");
		if (!a->guest_dir)
			a->guest_dir = FB_GUEST_DIR_DEFAULT;
	}
	if (optind >= argc) {
		fprintf(stderr, "firebreak run: no COMMAND given\n");
		usage(stderr);
		return 2;
	}
	a->argv = argv + optind;
	return 0;
}

/*
 * Wait for the command.  The first SIGINT/SIGTERM is passed on; a second
 * one kills the sandbox's processes outright.
 */
static int supervise(pid_t pid, int sigfd, pid_t proxy)
{
	struct signalfd_siginfo si;
	int stops = 0, st;

	for (;;) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFSIGNALED(st) ? 128 + WTERMSIG(st)
					       : WEXITSTATUS(st);
		if (read(sigfd, &si, sizeof si) != sizeof si) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "firebreak run: signalfd: %s\n",
				strerror(errno));
			kill(pid, SIGKILL);
			stops = 2;
			continue;
		}
		switch (si.ssi_signo) {
		case SIGHUP:
			/* the proxy owns the policy: it re-reads the file
			 * and applies it in user space and in nft */
			if (proxy > 0)
				kill(proxy, SIGHUP);
			break;
		case SIGINT:
		case SIGTERM:
			kill(pid, ++stops > 1 ? SIGKILL : (int)si.ssi_signo);
			break;
		}
	}
}

/* err may hold several lines (a policy's problems): prefix each. */
static void report(const char *err)
{
	for (const char *p = err; *p;) {
		size_t n = strcspn(p, "\n");

		fprintf(stderr, "firebreak run: %.*s\n", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

int fb_cmd_run(int argc, char **argv)
{
	struct run_args a;
	struct fb_launch_opts lo = { 0 };
	struct fb_launch l;
	struct fb_addr resolver;
	uint16_t port;
	sigset_t sigs;
	char err[4096];
	int sigfd, status;

	status = parse_args(argc, argv, &a);
	if (status)
		return status;
	if (fb_launch_resolve_user(a.user, &lo.uid, &lo.gid) < 0) {
		fprintf(stderr, "firebreak run: --user '%s': no such user\n",
			a.user);
		return 2;
	}
	if (a.resolver &&
	    fb_launch_parse_resolver(a.resolver, &resolver, &port) < 0) {
		fprintf(stderr, "firebreak run: --resolver '%s': expected IP, "
			"IP:PORT or [IPv6]:PORT\n", a.resolver);
		return 2;
	}

	/* From here on a signal waits for us: nothing interrupts a half-built
	 * sandbox, and teardown always runs. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGCHLD);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sigfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sigfd < 0) {
		fprintf(stderr, "firebreak run: signalfd: %s\n",
			strerror(errno));
		return 1;
	}

	lo.id = a.name;
	lo.state_dir = a.state_dir;
	lo.policy = a.policy;
	lo.publics = a.publics;
	lo.npublics = a.npublics;
	lo.resolver = a.resolver;
	lo.audit_log = a.audit_log;
	lo.upstream_ca = a.upstream_ca;
	lo.argv = a.argv;
	lo.backend = a.firecracker ? FB_BACKEND_FIRECRACKER :
		     a.qemu ? FB_BACKEND_QEMU : FB_BACKEND_PROCESS;
	lo.firecracker = a.firecracker;
	lo.jailer = a.jailer;
	lo.guest_dir = a.guest_dir;
	lo.vcpus = a.vcpus;
	lo.mem_mib = a.mem_mib;
	if (fb_launch_start(&lo, &l, err, sizeof err) < 0) {
		report(err);
		status = 1;
	} else {
		status = supervise(l.guest, sigfd, l.proxy);
		l.guest = -1; /* reaped */
		fb_launch_stop(&l);
	}
	close(sigfd);
	return status;
}
