/*
 * firecracker.c — the firecracker backend (firecracker.h).
 *
 *   launcher
 *     └ relay         configures the VM over the API socket, then copies
 *       │             the console to stdout, watching for the guest's
 *       │             status line; passes SIGINT/SIGTERM/SIGQUIT on;
 *       │             exits with the status.  Dies with the launcher.
 *       └ firecracker `--api-sock api.sock` in <state dir>/<id>/firecracker,
 *                     in the sandbox namespace (Firecracker opens its tap
 *                     by name, there), as the run's user with
 *                     no_new_privs.  The socket's directory is that
 *                     user's; the rest of the state dir stays root's.
 *
 * Firecracker has one serial port and no isa-debug-exit, so the guest's
 * init writes its status on the console as a line of its own,
 * "FB_EXIT=<n>" (fb.status=ttyS0 on the command line); the relay takes
 * that line out of the output.  The guest reports its own command's
 * status: a guest that prints a false one lies only about itself.  Once
 * it is reported, Firecracker has SHUTDOWN_GRACE_MS to exit (it does when
 * the guest reboots, with reboot=k) before it is killed.
 *
 * The kernel and the per-run initramfs reach Firecracker as inherited
 * descriptors named /proc/self/fd/N: the user it runs as need not read
 * the guest image, and the run leaves no file behind.  The API socket and
 * its directory are removed once the VM runs: nothing else may
 * reconfigure it.  The relay reaches the socket through a descriptor of
 * its directory, /proc/self/fd/N/api.sock, and Firecracker binds it by a
 * path relative to that directory: a unix socket's address holds 108
 * bytes, and a state directory's path, or a jail's in it, may not fit.
 *
 * Under Firecracker's jailer (--jailer PATH) the relay's child is
 *   jailer --id <id> --exec-file <firecracker> --uid <uid> --gid <gid>
 *          --chroot-base-dir <state dir>/<id>/jail
 *          --netns /run/netns/fb-<id> -- --api-sock /api.sock
 * as root, in the foreground, so the relay stays its parent: the jailer
 * enters the namespace and drops to the user itself.  Its chroot is
 * <chroot base>/<firecracker's file name>/<id>/root, where no /proc is,
 * so the kernel is copied and the run's initramfs built there as /vmlinux and
 * /initrd, readable by the user only, and the socket is found at
 * <root>/api.sock.  The relay removes the whole jail after the VM.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "policy/policy.h"
#include "proxy/loop.h"
#include "vmhost/firecracker.h"
#include "vmhost/kvm.h"
#include "vmhost/net.h"
#include "vmhost/sandbox.h"

#define SOCKET_TIMEOUT_MS 5000   /* firecracker start → API socket */
#define API_TIMEOUT_MS 5000      /* one API request */
#define SHUTDOWN_GRACE_MS 2000   /* status reported → firecracker gone */
#define EXIT_NOREPORT 125
#define STATUS_MARK FB_GUEST_STATUS_MARK
/* Firecracker's x86 guests stop by rebooting: reboot=k makes it the
 * keyboard controller's reset, on which Firecracker exits. */
#define BOOT_ARGS "console=ttyS0 reboot=k panic=1 pci=off quiet " \
		  FB_GUEST_NET " fb.status=ttyS0"

#define SOCK_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)
#define SOCK_NAME "api.sock"     /* in the socket's directory */

struct vm {
	const struct fb_firecracker_opts *o;
	char binary[PATH_MAX];   /* absolute under the jailer: --exec-file */
	char jailer[PATH_MAX];   /* empty: firecracker runs directly */
	char jail[PATH_MAX];     /* the chroot base, removed after the VM */
	char root[PATH_MAX];     /* the chroot */
	char sock_dir[PATH_MAX]; /* without the jailer: removed once it runs */
	char sock[PATH_MAX];     /* the API socket */
	char sock_via[SOCK_PATH_MAX]; /* /proc/self/fd/<sock_dir_fd>/api.sock */
	int sock_dir_fd;         /* O_PATH: the socket's directory */
	int kernel_fd, initrd_fd;
};

int fb_firecracker_preflight(const char *binary, const char *jailer,
			     const char *guest_dir, char *err, size_t errsize)
{
	const char *files[] = { FB_GUEST_KERNEL, FB_GUEST_INITRD };
	char path[PATH_MAX];

	if (!binary)
		binary = FB_FIRECRACKER_BINARY;
	if (fb_find_program(binary, path, sizeof path) < 0) {
		snprintf(err, errsize, "backend firecracker: %s: %s (the "
			 "binary is yours to install; --firecracker PATH names "
			 "it)", binary, strerror(errno));
		return -1;
	}
	/* the jailer runs nothing else */
	if (jailer && !strstr(strrchr(path, '/') ? strrchr(path, '/') + 1 :
			      path, "firecracker")) {
		snprintf(err, errsize, "backend firecracker: %s: the jailer "
			 "runs only a binary whose name holds \"firecracker\"",
			 binary);
		return -1;
	}
	if (jailer && fb_find_program(jailer, path, sizeof path) < 0) {
		snprintf(err, errsize, "backend firecracker: jailer %s: %s "
			 "(the binary is yours to install; --jailer PATH names "
			 "it)", jailer, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", guest_dir, files[i]);
		if (access(path, R_OK) < 0) {
			snprintf(err, errsize, "guest image %s: %s (`make "
				 "guest` builds it; --guest DIR names another)",
				 path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/*
 * The tap for Firecracker: persistent, so it outlives our descriptor,
 * and owned by the user Firecracker runs as, so it may attach.
 */
static int hand_over_tap(int *tap_fd, uid_t uid, char *err, size_t errsize)
{
	if (ioctl(*tap_fd, TUNSETOWNER, (unsigned long)uid) < 0 ||
	    ioctl(*tap_fd, TUNSETPERSIST, 1UL) < 0) {
		snprintf(err, errsize, "hand the tap to firecracker: %s",
			 strerror(errno));
		return -1;
	}
	close(*tap_fd);
	*tap_fd = -1;
	return 0;
}

/* ---- the API client ------------------------------------------------ */

/* Firecracker's fault_message from a JSON body, or the body itself. */
static void fault_message(const char *body, char *out, size_t size)
{
	const char *p = strstr(body, "\"fault_message\"");
	size_t n = 0;

	if (!p || !(p = strchr(p + 15, ':')) ||
	    !(p = strchr(p, '"'))) {
		snprintf(out, size, "%s", *body ? body : "(no message)");
		return;
	}
	for (p++; *p && *p != '"' && n + 1 < size; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			/* \n, \t and \uXXXX need no rendering in one line */
			out[n++] = *p == 'n' || *p == 't' ? ' ' :
				   *p == 'u' ? '?' : *p;
			if (*p == 'u')
				p += strnlen(p + 1, 4);
		} else {
			out[n++] = *p;
		}
	}
	out[n] = '\0';
}

static int api_connect(const struct vm *vm, char *err, size_t errsize)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", vm->sock_via);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		snprintf(err, errsize, "connect to the API socket: %s",
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Read one response into buf (NUL-terminated): headers, then as many
 * body bytes as Content-Length says. */
static int api_read(int fd, char *buf, size_t size, char **body,
		    uint64_t deadline, char *err, size_t errsize)
{
	size_t len = 0, want = 0;
	char *cl;

	*body = NULL;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = (int64_t)(deadline - fb_monotonic_ms());
		ssize_t n;

		if (*body && len >= (size_t)(*body - buf) + want)
			return 0;
		if (left <= 0 || poll(&p, 1, left) == 0) {
			snprintf(err, errsize, "no answer in %d ms",
				 API_TIMEOUT_MS);
			return -1;
		}
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || len + n == size - 1) {
			snprintf(err, errsize, "%s", n < 0 ? strerror(errno) :
				 n == 0 ? "connection closed mid-answer" :
				 "answer too long");
			return -1;
		}
		len += n;
		buf[len] = '\0';
		if (*body || !(*body = strstr(buf, "\r\n\r\n")))
			continue;
		*body += 4;
		cl = strcasestr(buf, "\r\ncontent-length:");
		if (cl && cl < *body)
			want = strtoul(cl + 17, NULL, 10);
	}
}

/*
 * One API request; 2xx is success.  Anything else is an error naming the
 * request and Firecracker's fault_message.
 */
static int api_call(const struct vm *vm, const char *method,
		    const char *path, const char *json, char *err,
		    size_t errsize)
{
	char req[4096], resp[4096], why[512], *body;
	uint64_t deadline = fb_monotonic_ms() + API_TIMEOUT_MS;
	int fd, n, code = 0, ret = -1;

	n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: localhost\r\n"
		     "Accept: application/json\r\nContent-Type: "
		     "application/json\r\nContent-Length: %zu\r\n\r\n%s",
		     method, path, strlen(json), json);
	if (n < 0 || (size_t)n >= sizeof req) {
		snprintf(err, errsize, "%s %s: request too long", method, path);
		return -1;
	}
	fd = api_connect(vm, why, sizeof why);
	if (fd < 0)
		goto fail;
	if (write(fd, req, n) != n) {
		snprintf(why, sizeof why, "send: %s", strerror(errno));
		goto fail;
	}
	if (api_read(fd, resp, sizeof resp, &body, deadline, why,
		     sizeof why) < 0)
		goto fail;
	if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1) {
		snprintf(why, sizeof why, "not an HTTP answer: %.40s", resp);
		goto fail;
	}
	if (code / 100 == 2) {
		ret = 0;
		goto out;
	}
	fault_message(body, why, sizeof why);
	snprintf(err, errsize, "firecracker: %s %s: %d: %s", method, path,
		 code, why);
	goto out;
fail:
	snprintf(err, errsize, "firecracker: %s %s: %s", method, path, why);
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/* ---- configuring the VM -------------------------------------------- */

/* The paths are the chroot's files or /proc/self/fd/N, and the arguments
 * ours: nothing to escape. */
static int put_boot_source(const struct vm *vm, char *err, size_t errsize)
{
	char body[1024];

	if (vm->jailer[0])
		snprintf(body, sizeof body, "{\"kernel_image_path\":"
			 "\"/vmlinux\",\"initrd_path\":\"/initrd\","
			 "\"boot_args\":\"" BOOT_ARGS "\"}");
	else
		snprintf(body, sizeof body, "{\"kernel_image_path\":"
			 "\"/proc/self/fd/%d\",\"initrd_path\":"
			 "\"/proc/self/fd/%d\",\"boot_args\":\"" BOOT_ARGS
			 "\"}", vm->kernel_fd, vm->initrd_fd);
	return api_call(vm, "PUT", "/boot-source", body, err, errsize);
}

static int put_network(const struct vm *vm, char *err, size_t errsize)
{
	char tap[6 * IFNAMSIZ], body[512];

	if (fb_json_escape(vm->o->tap_name, strlen(vm->o->tap_name), tap,
			   sizeof tap) < 0) {
		snprintf(err, errsize, "firecracker: tap name '%s' is too "
			 "long", vm->o->tap_name);
		return -1;
	}
	/* the MAC qemu gives the guest too: a snapshot restores unchanged */
	snprintf(body, sizeof body, "{\"iface_id\":\"eth0\","
		 "\"host_dev_name\":\"%s\",\"guest_mac\":\"" FB_GUEST_MAC
		 "\"}", tap);
	return api_call(vm, "PUT", "/network-interfaces/eth0", body,
			err, errsize);
}

static int put_machine(const struct vm *vm, char *err, size_t errsize)
{
	char body[128];

	snprintf(body, sizeof body, "{\"vcpu_count\":%u,\"mem_size_mib\":%u,"
		 "\"smt\":false}",
		 vm->o->vcpus ? vm->o->vcpus : FB_QEMU_VCPUS,
		 vm->o->mem_mib ? vm->o->mem_mib : FB_QEMU_MEM_MIB);
	return api_call(vm, "PUT", "/machine-config", body, err,
			errsize);
}

/*
 * Wait until the API socket takes connections (it exists from bind(),
 * before listen()); firecracker's death ends the wait early.
 */
static int wait_socket(const struct vm *vm, pid_t pid, char *err,
		       size_t errsize)
{
	uint64_t deadline = fb_monotonic_ms() + SOCKET_TIMEOUT_MS;
	char why[256];
	int ws, fd;

	while (fb_monotonic_ms() < deadline) {
		fd = api_connect(vm, why, sizeof why);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (waitpid(pid, &ws, WNOHANG) == pid) {
			snprintf(err, errsize, "firecracker %s before its API "
				 "socket appeared",
				 WIFSIGNALED(ws) ? "was killed" : "exited");
			return -1;
		}
		usleep(10000);
	}
	snprintf(err, errsize, "firecracker: %s after %d ms",
		 why, SOCKET_TIMEOUT_MS);
	return -1;
}

static int configure(const struct vm *vm, pid_t pid, char *err,
		     size_t errsize)
{
	if (wait_socket(vm, pid, err, errsize) < 0)
		return -1;
	if (put_boot_source(vm, err, errsize) < 0 ||
	    put_network(vm, err, errsize) < 0 ||
	    put_machine(vm, err, errsize) < 0 ||
	    api_call(vm, "PUT", "/actions",
		     "{\"action_type\":\"InstanceStart\"}", err, errsize) < 0)
		return -1;
	return 0;
}

/* ---- the processes ------------------------------------------------- */

static void child_fail(int report, const char *what)
{
	char msg[256];
	int n = snprintf(msg, sizeof msg, "firecracker: %s: %s", what,
			 strerror(errno));

	if (n >= (int)sizeof msg)
		n = sizeof msg - 1;
	if (write(report, msg, n) < 0)
		perror("firecracker: report");
	_exit(EXIT_NOREPORT);
}

static void keep_open(int fd, int report)
{
	if (fcntl(fd, F_SETFD, 0) < 0)
		child_fail(report, "clear close-on-exec");
}

/* In the child, as root: the jailer enters the namespace, drops to the
 * user and execs firecracker in its chroot. */
static void exec_jailer(const struct vm *vm, int report)
{
	const struct fb_qemu_opts *g = &vm->o->guest;
	char uid[16], gid[16], netns[PATH_MAX];
	char *argv[] = { (char *)vm->jailer, "--id", (char *)vm->o->id,
			 "--exec-file", (char *)vm->binary, "--uid", uid,
			 "--gid", gid, "--chroot-base-dir", (char *)vm->jail,
			 "--netns", netns, "--", "--api-sock", "/" SOCK_NAME,
			 NULL };

	snprintf(uid, sizeof uid, "%u", (unsigned)g->uid);
	snprintf(gid, sizeof gid, "%u", (unsigned)g->gid);
	snprintf(netns, sizeof netns, FB_NETNS_DIR "/%s",
		 vm->o->sandbox_ns_name);
	execv(argv[0], argv);
	child_fail(report, vm->jailer);
}

/*
 * In the child: the console pipe on stdout, the sandbox namespace, the
 * guest image open, the user's uid; exec.  A failure is written on
 * `report` (close-on-exec: an exec that works closes it unwritten).
 */
static void exec_firecracker(const struct vm *vm, int console, int report,
			     pid_t relay)
{
	const struct fb_qemu_opts *g = &vm->o->guest;
	char *argv[] = { (char *)vm->binary, "--api-sock", SOCK_NAME, NULL };
	gid_t kvm_group;
	gid_t groups[1];
	size_t ngroups = 0;
	sigset_t none;
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (null < 0 || dup2(null, STDIN_FILENO) < 0 ||
	    dup2(console, STDOUT_FILENO) < 0)
		child_fail(report, "redirect stdin and stdout");
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != relay)
		child_fail(report, "tie to the launcher");
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* firecracker keeps the image descriptors given below and nothing the
	 * launcher's caller left open; the report pipe closes at the exec */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	if (vm->jailer[0])
		exec_jailer(vm, report);
	if (setns(vm->o->sandbox_ns, CLONE_NEWNET) < 0)
		child_fail(report, "enter the sandbox namespace");
	if (fchdir(vm->sock_dir_fd) < 0)
		child_fail(report, vm->sock_dir);
	keep_open(vm->kernel_fd, report);
	keep_open(vm->initrd_fd, report);
	/* /dev/kvm's group, when that is what lets firecracker open it:
	 * the one supplementary group kept (never root's) */
	if (fb_kvm_usable(FB_KVM_DEVICE, g->uid, g->gid, &kvm_group) &&
	    kvm_group != FB_KVM_NO_GROUP)
		groups[ngroups++] = kvm_group;
	if (setgroups(ngroups, groups) < 0 || setgid(g->gid) < 0 ||
	    setuid(g->uid) < 0)
		child_fail(report, "drop privileges");
	/* setuid cleared it */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != relay)
		child_fail(report, "tie to the launcher");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(report, "prctl(PR_SET_NO_NEW_PRIVS)");
	execv(argv[0], argv);
	child_fail(report, vm->binary);
}

/*
 * The console, passed through, less the status line: bytes of a line
 * that starts like STATUS_MARK are held until the line proves to be the
 * status (dropped) or not (written).
 */
struct console {
	char held[sizeof STATUS_MARK + 8];
	size_t nheld;
	bool line_start;
	int status;   /* -1 until reported */
};

static void out(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nobody reads: the guest still runs out */
		p += w;
		n -= w;
	}
}

/* Is held[] plus c still a prefix of STATUS_MARK digits [\r] \n? */
static bool still_status(const struct console *c, char ch)
{
	size_t mark = sizeof STATUS_MARK - 1, n = c->nheld;

	if (n < mark)
		return ch == STATUS_MARK[n];
	if (ch >= '0' && ch <= '9')
		return n < mark + 3 && (n == mark || c->held[n - 1] != '\r');
	if (ch == '\r')
		return n > mark && c->held[n - 1] != '\r';
	return ch == '\n' && n > mark;
}

static void console_feed(struct console *c, const char *p, size_t n)
{
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (c->nheld || (c->line_start && ch == STATUS_MARK[0])) {
			if (!c->nheld)
				out(p + start, i - start);
			if (!still_status(c, ch)) {
				out(c->held, c->nheld);
				c->nheld = 0;
				start = i;
			} else if (ch == '\n') {
				long v;

				c->held[c->nheld] = '\0';
				v = strtol(c->held + sizeof STATUS_MARK - 1,
					   NULL, 10);
				c->status = v <= 255 ? (int)v : 255;
				c->nheld = 0;
				start = i + 1;
			} else {
				c->held[c->nheld++] = ch;
				start = i + 1;
			}
		}
		c->line_start = ch == '\n';
	}
	if (!c->nheld)
		out(p + start, n - start);
}

static int status_of(const struct console *c, int ws, int stopped_by)
{
	if (c->status >= 0)
		return c->status;
	if (stopped_by)
		return 128 + stopped_by;
	if (WIFSIGNALED(ws))
		fprintf(stderr, "firebreak run: firecracker was killed by "
			"signal %d before the guest reported a status\n",
			WTERMSIG(ws));
	else
		fprintf(stderr, "firebreak run: the guest stopped without "
			"reporting a status (firecracker exited with %d)\n",
			WEXITSTATUS(ws));
	return EXIT_NOREPORT;
}

/* Copy the console until firecracker is gone; the run's status. */
static int supervise(pid_t pid, int console_fd, int sigfd)
{
	struct console c = { .line_start = true, .status = -1 };
	struct signalfd_siginfo si;
	uint64_t kill_at = 0;
	int stopped_by = 0, ws = 0;
	bool exited = false, eof = false, killed = false;
	char buf[16384];

	while (!exited || !eof) {
		struct pollfd p[2] = {
			{ .fd = eof ? -1 : console_fd, .events = POLLIN },
			{ .fd = sigfd, .events = POLLIN },
		};
		int timeout = -1;

		if (c.status >= 0 && !kill_at)
			kill_at = fb_monotonic_ms() + SHUTDOWN_GRACE_MS;
		if (kill_at && !killed)
			timeout = kill_at > fb_monotonic_ms() ? (int)(kill_at - fb_monotonic_ms())
						     : 0;
		if (poll(p, 2, timeout) < 0 && errno != EINTR)
			break;
		if (kill_at && !killed && !exited && fb_monotonic_ms() >= kill_at) {
			kill(pid, SIGKILL);
			killed = true;
		}
		if (p[0].revents) {
			ssize_t n = read(console_fd, buf, sizeof buf);

			if (n > 0)
				console_feed(&c, buf, n);
			else if (n == 0 || errno != EINTR)
				eof = true;
		}
		if (p[1].revents &&
		    read(sigfd, &si, sizeof si) == sizeof si &&
		    si.ssi_signo != SIGCHLD && si.ssi_signo != SIGHUP) {
			stopped_by = si.ssi_signo;
			kill(pid, si.ssi_signo);
		}
		if (!exited && waitpid(pid, &ws, WNOHANG) == pid)
			exited = true;
	}
	out(c.held, c.nheld);
	return status_of(&c, ws, stopped_by);
}

static void remove_socket(const struct vm *vm)
{
	unlink(vm->sock);
	if (vm->sock_dir[0])
		rmdir(vm->sock_dir);
}

/* The jail and whatever the jailer and firecracker made in it. */
static void remove_jail(const struct vm *vm)
{
	if (vm->jailer[0])
		fb_remove_tree(vm->jail);
}

/*
 * The relay: start firecracker, configure the VM, say how that went on
 * `report` (a newline, or the error), supervise.
 */
static void relay(const struct vm *vm, int report, pid_t launcher)
{
	char err[768] = "";
	int console[2], exec_report[2], sigfd, ws;
	sigset_t sigs;
	ssize_t n;
	pid_t pid;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != launcher)
		_exit(EXIT_NOREPORT);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGQUIT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGCHLD);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sigfd < 0 || pipe2(console, O_CLOEXEC) < 0 ||
	    pipe2(exec_report, O_CLOEXEC) < 0) {
		snprintf(err, sizeof err, "firecracker: relay: %s",
			 strerror(errno));
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, sizeof err, "firecracker: fork: %s",
			 strerror(errno));
		goto fail;
	}
	if (pid == 0)
		exec_firecracker(vm, console[1], exec_report[1], getppid());
	close(console[1]);
	close(exec_report[1]);
	n = read(exec_report[0], err, sizeof err - 1);
	close(exec_report[0]);
	if (n > 0) {
		err[n] = '\0';
		goto fail_reap;
	}
	if (configure(vm, pid, err, sizeof err) < 0)
		goto fail_reap;
	remove_socket(vm);
	if (write(report, "\n", 1) != 1)
		_exit(EXIT_NOREPORT);
	close(report);
	ws = supervise(pid, console[0], sigfd);
	remove_jail(vm);
	_exit(ws);
fail_reap:
	kill(pid, SIGKILL);
	waitpid(pid, &ws, 0);
fail:
	remove_socket(vm);
	remove_jail(vm);
	n = write(report, err, strlen(err));
	_exit(EXIT_NOREPORT);
}

/* The per-run initramfs, as the qemu backend builds it, in a memfd. */
static int open_initrd(const struct fb_qemu_opts *g, char *err,
		       size_t errsize)
{
	int fd = memfd_create("firebreak-initrd", MFD_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errsize, "memfd_create: %s", strerror(errno));
		return -1;
	}
	if (fb_qemu_write_initrd(g, fd, err, errsize) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* <root>/name, new, readable by the user only, open for writing; -1
 * with err. */
static int jail_file(const struct vm *vm, const char *name, char *err,
		     size_t errsize)
{
	char dst[PATH_MAX];
	int fd = -1;

	if (snprintf(dst, sizeof dst, "%s/%s", vm->root, name) >=
	    (int)sizeof dst) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0400);
	if (fd < 0 || fchown(fd, vm->o->guest.uid, vm->o->guest.gid) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errsize, "firecracker: jail: %s/%s: %s", vm->root, name,
		 strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* The kernel as <root>/vmlinux. */
static int jail_kernel(const struct vm *vm, char *err, size_t errsize)
{
	int fd = jail_file(vm, "vmlinux", err, errsize);
	struct stat st;
	off_t off = 0;

	if (fd < 0)
		return -1;
	if (fstat(vm->kernel_fd, &st) < 0)
		goto fail;
	while (off < st.st_size) {
		ssize_t n = sendfile(fd, vm->kernel_fd, &off, st.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			goto fail;
		}
	}
	close(fd);
	return 0;
fail:
	snprintf(err, errsize, "firecracker: jail: %s/vmlinux: %s", vm->root,
		 strerror(errno));
	close(fd);
	return -1;
}

/* The per-run initramfs, built straight into <root>/initrd. */
static int jail_initrd(const struct vm *vm, char *err, size_t errsize)
{
	int fd = jail_file(vm, "initrd", err, errsize);
	int rc;

	if (fd < 0)
		return -1;
	rc = fb_qemu_write_initrd(&vm->o->guest, fd, err, errsize);
	close(fd);
	return rc;
}

/* <dir>/api.sock, where firecracker makes its API socket, and the way
 * to it through a descriptor of dir. */
static int sock_path(struct vm *vm, const char *dir, char *err,
		     size_t errsize)
{
	vm->sock_dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (vm->sock_dir_fd < 0) {
		snprintf(err, errsize, "firecracker: %s: %s", dir,
			 strerror(errno));
		return -1;
	}
	snprintf(vm->sock, sizeof vm->sock, "%s/" SOCK_NAME, dir);
	snprintf(vm->sock_via, sizeof vm->sock_via,
		 "/proc/self/fd/%d/" SOCK_NAME, vm->sock_dir_fd);
	return 0;
}

/*
 * The jailer's chroot, <dir>/jail/<binary's name>/<id>/root, made before
 * the jailer runs, with the guest image in it: the directories above it
 * root's and only traversable, the root the user's, so firecracker may
 * make its socket there.  Nothing of it is left on failure.
 */
static int make_jail(struct vm *vm, char *err, size_t errsize)
{
	const struct fb_firecracker_opts *o = vm->o;
	char path[PATH_MAX];
	const char *name;
	int n;

	if (!realpath(vm->binary, path)) {
		snprintf(err, errsize, "firecracker: %s: %s", vm->binary,
			 strerror(errno));
		return -1;
	}
	memcpy(vm->binary, path, sizeof path);
	name = strrchr(vm->binary, '/') + 1;
	snprintf(vm->jail, sizeof vm->jail, "%s/jail", o->dir);
	n = snprintf(vm->root, sizeof vm->root, "%s/%s/%s/root", vm->jail,
		     name, o->id);
	/* the socket's path holds the others: if it fits, they do */
	if (n < 0 || (size_t)n + sizeof SOCK_NAME >= sizeof vm->root) {
		snprintf(err, errsize, "firecracker: jail in %s: path too "
			 "long", o->dir);
		return -1;
	}
	if (mkdir(vm->jail, 0711) < 0) {
		snprintf(err, errsize, "firecracker: jail: %s: %s", vm->jail,
			 strerror(errno));
		return -1;
	}
	memcpy(path, vm->root, sizeof vm->root);
	for (char *p = strchr(path + strlen(vm->jail) + 1, '/'); p;
	     p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(path, 0711) < 0)
			goto fail_dir;
		*p = '/';
	}
	if (mkdir(path, 0700) < 0 ||
	    chown(path, o->guest.uid, o->guest.gid) < 0)
		goto fail_dir;
	if (sock_path(vm, vm->root, err, errsize) < 0 ||
	    jail_kernel(vm, err, errsize) < 0 ||
	    jail_initrd(vm, err, errsize) < 0)
		goto fail;
	return 0;
fail_dir:
	snprintf(err, errsize, "firecracker: jail: %s: %s", path,
		 strerror(errno));
fail:
	remove_jail(vm);
	return -1;
}

/* The relay's report: a newline once the VM runs, else the error. */
static int read_report(int fd, pid_t relay, char *err, size_t errsize)
{
	ssize_t n;

	while ((n = read(fd, err, errsize - 1)) < 0 && errno == EINTR)
		;
	if (n == 1 && err[0] == '\n') {
		err[0] = '\0';
		return 0;
	}
	if (n <= 0)
		snprintf(err, errsize, "firecracker: the relay died before "
			 "the VM started");
	else
		err[n] = '\0';
	kill(relay, SIGKILL);
	while (waitpid(relay, NULL, 0) < 0 && errno == EINTR)
		;
	return -1;
}

pid_t fb_firecracker_spawn(const struct fb_firecracker_opts *o, int *tap_fd,
			   char *err, size_t errsize)
{
	struct vm vm = { .o = o, .sock_dir_fd = -1, .kernel_fd = -1,
			 .initrd_fd = -1 };
	char kernel[PATH_MAX];
	int report[2] = { -1, -1 };
	pid_t pid = -1, launcher = getpid();

	if (fb_find_program(o->binary ? o->binary : FB_FIRECRACKER_BINARY,
			 vm.binary, sizeof vm.binary) < 0) {
		snprintf(err, errsize, "firecracker: %s: %s", o->binary ?
			 o->binary : FB_FIRECRACKER_BINARY, strerror(errno));
		return -1;
	}
	if (o->jailer && fb_find_program(o->jailer, vm.jailer,
					 sizeof vm.jailer) < 0) {
		snprintf(err, errsize, "firecracker: jailer %s: %s", o->jailer,
			 strerror(errno));
		return -1;
	}
	/* under the jailer, the socket is in the chroot: make_jail's */
	if (!o->jailer) {
		int n = snprintf(vm.sock_dir, sizeof vm.sock_dir,
				 "%s/firecracker", o->dir);

		if (n < 0 || (size_t)n + sizeof SOCK_NAME >= sizeof vm.sock) {
			snprintf(err, errsize, "firecracker: %s: path too long",
				 o->dir);
			return -1;
		}
	}
	snprintf(kernel, sizeof kernel, "%s/%s", o->guest.guest_dir,
		 FB_GUEST_KERNEL);
	vm.kernel_fd = open(kernel, O_RDONLY | O_CLOEXEC);
	if (vm.kernel_fd < 0) {
		snprintf(err, errsize, "open %s: %s", kernel, strerror(errno));
		return -1;
	}
	/* under the jailer, make_jail builds it in the chroot */
	if (!o->jailer &&
	    (vm.initrd_fd = open_initrd(&o->guest, err, errsize)) < 0)
		goto out;
	if (o->jailer) {
		if (make_jail(&vm, err, errsize) < 0)
			goto out;
	/* firecracker, as the user, creates its socket in a dir of its own */
	} else if (mkdir(vm.sock_dir, 0700) < 0 ||
		   chown(vm.sock_dir, o->guest.uid, o->guest.gid) < 0) {
		snprintf(err, errsize, "%s: %s", vm.sock_dir, strerror(errno));
		rmdir(vm.sock_dir);
		goto out;
	} else if (sock_path(&vm, vm.sock_dir, err, errsize) < 0) {
		rmdir(vm.sock_dir);
		goto out;
	}
	if (hand_over_tap(tap_fd, o->guest.uid, err, errsize) < 0)
		goto out_dir;
	if (pipe2(report, O_CLOEXEC) < 0) {
		snprintf(err, errsize, "pipe: %s", strerror(errno));
		goto out_dir;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		snprintf(err, errsize, "fork: %s", strerror(errno));
		goto out_dir;
	}
	if (pid == 0) {
		close(report[0]);
		relay(&vm, report[1], launcher);
	}
	close(report[1]);
	report[1] = -1;
	if (read_report(report[0], pid, err, errsize) == 0)
		goto out;
	pid = -1;
out_dir:
	remove_socket(&vm);
	remove_jail(&vm);
out:
	for (int i = 0; i < 2; i++)
		if (report[i] >= 0)
			close(report[i]);
	if (vm.initrd_fd >= 0)
		close(vm.initrd_fd);
	if (vm.sock_dir_fd >= 0)
		close(vm.sock_dir_fd);
	close(vm.kernel_fd);
	return pid;
}
