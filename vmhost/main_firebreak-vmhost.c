/*
 * main_firebreak-vmhost.c — the long-running launcher:
 *
 *   firebreak-vmhost [--socket PATH] [--state-dir DIR] [--public CIDR]...
 *                    [--resolver IP[:PORT]]
 *
 * Removes what a previous daemon left under DIR, then serves the API on
 * PATH until SIGTERM or SIGINT, and on the way out removes every sandbox
 * it made (their processes would not outlive it anyway).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmhost/daemon.h"
#include "vmhost/sandbox.h"

static const char usage[] =
	"usage: firebreak-vmhost [--socket PATH] [--state-dir DIR] "
	"[--public CIDR]...\n"
	"                        [--resolver IP[:PORT]]\n"
	"\n"
	"Serves the sandbox API (HTTP/1.1) on the unix socket PATH (default "
	FB_VMHOST_SOCKET ")\nand keeps each sandbox's state under DIR "
	"(default " FB_STATE_DIR ").\n--public declares a non-global range "
	"to be the internet for every sandbox;\n--resolver is the proxies' "
	"upstream DNS server (default the host's).\n";

static int parse_args(int argc, char **argv, struct fb_daemon *d)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "public", required_argument, NULL, 'P' },
		{ "resolver", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct fb_addr a;
	uint16_t port;
	char err[160];
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'S': d->socket_path = optarg; break;
		case 's': d->state_dir = optarg; break;
		case 'r':
			if (fb_launch_parse_resolver(optarg, &a, &port) < 0) {
				fprintf(stderr, "firebreak-vmhost: --resolver "
					"'%s': expected IP, IP:PORT or "
					"[IPv6]:PORT\n", optarg);
				return 2;
			}
			d->resolver = optarg;
			break;
		case 'P':
			if (d->npublics == FB_MAX_PUBLICS) {
				fprintf(stderr, "firebreak-vmhost: more than "
					"%d --public ranges\n", FB_MAX_PUBLICS);
				return 2;
			}
			if (fb_cidr_parse(optarg, &d->publics[d->npublics++],
					  err, sizeof err) < 0) {
				fprintf(stderr, "firebreak-vmhost: --public: "
					"%s\n", err);
				return 2;
			}
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "firebreak-vmhost: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct fb_daemon d = {
		.socket_path = FB_VMHOST_SOCKET,
		.state_dir = FB_STATE_DIR,
		.listen_fd = -1,
		.sig_fd = -1,
		.lock_fd = -1,
	};
	static char state_dir[PATH_MAX], socket_path[PATH_MAX];
	char guest_dir[PATH_MAX];
	const char *guest_env = getenv("FIREBREAK_GUEST_DIR");
	struct rlimit nofile;
	char err[512];
	int rc;

	rc = parse_args(argc, argv, &d);
	if (rc)
		return rc;
	/*
	 * The daemon works from "/".  A guest of the process backend starts
	 * in the daemon's working directory, and one under /tmp is not there
	 * in the sandbox, whose /tmp is its own: every such guest would be
	 * refused.  Paths given relative to where it started are made
	 * absolute first, FIREBREAK_GUEST_DIR's too (a create reads it).
	 */
	if (fb_path_absolute(d.state_dir, state_dir, sizeof state_dir) < 0 ||
	    fb_path_absolute(d.socket_path, socket_path,
			     sizeof socket_path) < 0 ||
	    (guest_env && *guest_env &&
	     (fb_path_absolute(guest_env, guest_dir, sizeof guest_dir) < 0 ||
	      setenv("FIREBREAK_GUEST_DIR", guest_dir, 1) < 0)) ||
	    chdir("/") < 0) {
		fprintf(stderr, "firebreak-vmhost: the working directory: %s\n",
			strerror(errno));
		return 1;
	}
	d.state_dir = state_dir;
	d.socket_path = socket_path;
	if (strlen(d.state_dir) > FB_STATE_DIR_MAX) {
		fprintf(stderr, "firebreak-vmhost: --state-dir %s: longer than "
			"%d characters (sockets under it need short paths)\n",
			d.state_dir, FB_STATE_DIR_MAX);
		return 2;
	}
	if (fb_preflight_privileges(err, sizeof err) < 0) {
		fprintf(stderr, "firebreak-vmhost: %s\n", err);
		return 1;
	}
	/* a sandbox holds a few descriptors (its namespaces, its slot lock):
	 * hundreds of them need more than the usual soft limit of 1024 */
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	if (mkdir(d.state_dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "firebreak-vmhost: --state-dir %s: %s\n",
			d.state_dir, strerror(errno));
		return 1;
	}
	/* before the first file is written there */
	if (fb_state_dir_check(d.state_dir, err, sizeof err) < 0) {
		fprintf(stderr, "firebreak-vmhost: %s\n", err);
		return 1;
	}
	/* before recovery, which would take a live daemon's sandboxes for
	 * remains */
	if (fb_daemon_lock(&d, err, sizeof err) < 0) {
		fprintf(stderr, "firebreak-vmhost: %s\n", err);
		return 1;
	}
	rc = 1;
	d.loop = fb_loop_new();
	if (!d.loop) {
		fprintf(stderr, "firebreak-vmhost: out of memory\n");
		goto out;
	}
	if (fb_supervise_start(&d, err, sizeof err) < 0) {
		fprintf(stderr, "firebreak-vmhost: %s\n", err);
		goto out;
	}
	/* listening first: a daemon already on the socket is found before
	 * anything is removed (requests wait in the backlog meanwhile) */
	if (fb_daemon_listen(&d, err, sizeof err) < 0) {
		fprintf(stderr, "firebreak-vmhost: %s\n", err);
		goto out;
	}
	fb_recover(&d);
	fprintf(stderr, "firebreak-vmhost: listening on %s\n", d.socket_path);
	rc = fb_loop_run(d.loop) < 0 ? 1 : 0;
out:
	fb_daemon_close(&d);
	while (d.sandboxes)
		fb_api_remove(&d, d.sandboxes);
	if (d.sig_fd >= 0)
		close(d.sig_fd);
	fb_loop_free(d.loop);
	fb_daemon_unlock(&d);
	return rc;
}
