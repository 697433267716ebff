/*
 * cli_run.c — `firebreak run`: one sandbox for one command.
 *
 * Order: check privileges, the policy and nf_tables before anything
 * exists; build the network; start the proxy; start the command; wait,
 * passing SIGINT/SIGTERM on and re-reading the policy on SIGHUP; remove
 * everything; exit with the command's status.
 *
 * SIGHUP is passed to the sandbox's proxy, which owns the policy: it
 * re-reads --policy and applies it in user space and in the nft table,
 * cutting connections and forwarded streams the new policy refuses.
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include "vmhost/firecracker.h"
#include "vmhost/proxy_start.h"
#include "vmhost/qemu.h"
#include "vmhost/sandbox.h"
#include "vmhost/sandbox_ca.h"
#include "vmhost/trust.h"
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
		"                     [--state-dir DIR] [--audit-log FILE|-] "
		"[--backend process|qemu|firecracker]\n"
		"                     [--upstream-ca FILE] [--firecracker PATH] "
		"[--guest DIR]\n"
		"                     [--vcpus N] [--memory MIB]\n"
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
	if (a->name && !fb_sandbox_id_valid(a->name)) {
		fprintf(stderr, "firebreak run: --name '%s': use 1 to %d of "
			"a-z, 0-9 and '-'\n", a->name, FB_SANDBOX_ID_MAX);
		return 2;
	}
	a->qemu = !strcmp(backend, "qemu");
	if (strcmp(backend, "firecracker") && a->firecracker) {
		fprintf(stderr, "firebreak run: --firecracker needs "
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

/* --user NAME|UID; a number with no passwd entry runs with gid = uid. */
static int resolve_user(const char *user, uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam(user);
	char *end;
	unsigned long n;

	if (pw) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
		return 0;
	}
	errno = 0;
	n = strtoul(user, &end, 10);
	if (errno || end == user || *end || n > 0xfffffffeUL) {
		fprintf(stderr, "firebreak run: --user '%s': no such user\n",
			user);
		return -1;
	}
	pw = getpwuid(n);
	*uid = n;
	*gid = pw ? pw->pw_gid : n;
	return 0;
}

/* IP, IP:PORT or [IPv6]:PORT; port 53 when none. */
static int parse_resolver(const char *s, struct fb_addr *a, uint16_t *port)
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

static struct fb_policy *load_policy(const struct run_args *a)
{
	struct fb_load_opts lo = {
		.filename = a->policy,
		.publics = a->publics,
		.npublics = a->npublics,
	};
	struct fb_diags diags = { 0 };
	struct fb_policy *p;

	if (!strcmp(a->policy, "allow-all") || !strcmp(a->policy, "deny-all"))
		p = fb_policy_load(a->policy, strlen(a->policy), &lo, &diags);
	else
		p = fb_policy_load_file(a->policy, &lo, &diags);
	for (size_t i = 0; !p && i < diags.n; i++) {
		const struct fb_diag *d = &diags.v[i];

		if (d->line)
			fprintf(stderr, "firebreak run: policy: %s:%u:%u: %s\n",
				d->file, d->line, d->col, d->msg);
		else
			fprintf(stderr, "firebreak run: policy: %s: %s\n",
				d->file, d->msg);
	}
	if (!p && diags.n == 0)
		fprintf(stderr, "firebreak run: policy: %s: cannot load\n",
			a->policy);
	fb_diags_free(&diags);
	return p;
}

/*
 * The proxy: started inside fb-<id> once the network is up and before the
 * guest runs, listening on the gateway's FB_PROXY_PORT and FB_DNS_PORT.
 * Until it exists nothing listens there, and the sandbox table's
 * redirects end in a refusal: names fail closed.
 */
static pid_t sandbox_start_proxy(const struct run_args *a,
				 struct fb_sandbox *sb,
				 const struct fb_sandbox_ca *ca, char *err,
				 size_t errsize)
{
	struct fb_proxy_launch l = {
		.policy = a->policy,
		.publics = a->publics,
		.npublics = a->npublics,
		.resolver = a->resolver,
		.audit_log = a->audit_log,
		.ca_cert = ca->cert,
		.ca_key = ca->key,
		.jwt_key = ca->jwt_key,
		.upstream_ca = a->upstream_ca,
	};

	return fb_proxy_start(sb, &l, err, errsize);
}

/* The firecracker backend: the same guest as the process backend gets,
 * in a VM on the sandbox's tap. */
static pid_t spawn_firecracker(const struct run_args *a, struct fb_sandbox *sb,
			       const struct fb_sandbox_ca *ca,
			       const struct fb_process_opts *po, char *err,
			       size_t errsize)
{
	struct fb_firecracker_opts fo = {
		.guest = {
			.argv = po->argv,
			.env = po->env,
			.guest_dir = a->guest_dir,
			.ca_cert = ca->cert,
			.trust_bundle = ca->bundle,
			.tap_fd = -1,
			.ns = -1,
			.uid = po->uid,
			.gid = po->gid,
		},
		.binary = a->firecracker,
		.sandbox_ns = sb->sandbox_ns,
		.tap_name = "guest0",
		.dir = sb->dir,
		.vcpus = a->vcpus,
		.mem_mib = a->mem_mib,
	};

	return fb_firecracker_spawn(&fo, &sb->tap_fd, err, errsize);
}

/* The qemu backend: the same guest, in a microVM on the sandbox's tap. */
static pid_t spawn_qemu(const struct run_args *a, struct fb_sandbox *sb,
			const struct fb_sandbox_ca *ca,
			const struct fb_process_opts *po, char *err,
			size_t errsize)
{
	struct fb_qemu_opts qo = {
		.argv = po->argv,
		.env = po->env,
		.guest_dir = a->guest_dir,
		.ca_cert = ca->cert,
		.trust_bundle = ca->bundle,
		.tap_fd = sb->tap_fd,
		.ns = sb->guest_ns,
		.uid = po->uid,
		.gid = po->gid,
		.vcpus = a->vcpus,
		.mem_mib = a->mem_mib,
	};

	return fb_qemu_spawn(&qo, err, errsize);
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

int fb_cmd_run(int argc, char **argv)
{
	struct run_args a;
	struct fb_sandbox_opts so = { 0 };
	struct fb_process_opts po = { 0 };
	struct fb_sandbox sb;
	struct fb_sandbox_ca ca = { 0 };
	struct fb_policy *policy;
	sigset_t sigs;
	char err[512];
	int sigfd, status = 1;
	pid_t pid, proxy = -1;

	status = parse_args(argc, argv, &a);
	if (status)
		return status;
	status = 1;
	if (resolve_user(a.user, &po.uid, &po.gid) < 0)
		return 2;
	if (a.resolver) {
		if (parse_resolver(a.resolver, &so.resolver,
				   &so.resolver_port) < 0) {
			fprintf(stderr, "firebreak run: --resolver '%s': "
				"expected IP, IP:PORT or [IPv6]:PORT\n",
				a.resolver);
			return 2;
		}
	} else {
		host_resolver(&so.resolver, &so.resolver_port);
	}
	if (fb_preflight_privileges(err, sizeof err) < 0) {
		fprintf(stderr, "firebreak run: %s\n", err);
		return 1;
	}
	policy = load_policy(&a);
	if (!policy)
		return 1;
	if (fb_preflight_nftables(err, sizeof err) < 0 ||
	    (a.firecracker && fb_firecracker_preflight(a.firecracker,
						      a.guest_dir, err,
						      sizeof err) < 0) ||
	    (a.qemu && fb_qemu_preflight(a.guest_dir, err, sizeof err) < 0)) {
		fprintf(stderr, "firebreak run: %s\n", err);
		fb_policy_unref(policy);
		return 1;
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
		fb_policy_unref(policy);
		return 1;
	}

	so.id = a.name;
	so.state_dir = a.state_dir;
	so.policy = policy;
	so.tap = a.firecracker || a.qemu;
	if (fb_sandbox_create(&sb, &so, err, sizeof err) < 0) {
		fprintf(stderr, "firebreak run: %s\n", err);
		goto out;
	}
	/* The CA and token key stay here, on the host side; the guest gets
	 * the certificate in its trust store and nothing else. */
	if (fb_sandbox_ca_create(&sb, policy, &ca, err, sizeof err) < 0) {
		fprintf(stderr, "firebreak run: sandbox CA: %s\n", err);
		goto destroy;
	}
	proxy = sandbox_start_proxy(&a, &sb, &ca, err, sizeof err);
	if (proxy < 0) {
		fprintf(stderr, "firebreak run: proxy: %s\n", err);
		goto destroy;
	}
	/* The proxy has read its secrets; the guest must not inherit them. */
	fb_sandbox_scrub_secrets(policy);
	po.env = fb_trust_env(FB_TRUST_GUEST_BUNDLE, NULL);
	if (!po.env) {
		fprintf(stderr, "firebreak run: out of memory\n");
		goto destroy;
	}
	po.trust_bundle = ca.bundle;
	po.argv = a.argv;
	po.guest_ns = sb.guest_ns;
	po.resolv_conf = sb.resolv_conf;
	if (a.firecracker)
		pid = spawn_firecracker(&a, &sb, &ca, &po, err, sizeof err);
	else if (a.qemu)
		pid = spawn_qemu(&a, &sb, &ca, &po, err, sizeof err);
	else
		pid = fb_process_spawn(&po, err, sizeof err);
	if (pid < 0) {
		fprintf(stderr, "firebreak run: %s\n", err);
		goto destroy;
	}
	status = supervise(pid, sigfd, proxy);
destroy:
	if (proxy > 0)
		fb_proxy_stop(&sb, proxy);
	fb_trust_env_free(po.env);
	fb_sandbox_ca_remove(&ca);
	fb_sandbox_destroy(&sb);
out:
	close(sigfd);
	fb_policy_unref(policy);
	return status;
}
