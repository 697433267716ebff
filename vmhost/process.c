/*
 * process.c — the process backend: a command in namespaces of its own.
 *
 *   launcher
 *     └ relay     enters the guest's network namespace, unshares PID,
 *       │         mount and IPC namespaces; forwards signals to init;
 *       │         exits with init's status.  Dies with the launcher.
 *       └ init    PID 1 of the new PID namespace: private mounts, the
 *         │       gateway as resolver, a /proc and a /sys of its own,
 *         │       empty /run, /tmp, /var/tmp and /dev/shm; forwards
 *         │       signals to the command and reaps orphans.
 *         │       Its exit kills every process left in the namespace.
 *         └ command   unprivileged, no supplementary groups, no
 *                     capabilities even as root, no_new_privs.
 *
 * The command is not PID 1 itself because PID 1 ignores every signal it
 * has no handler for: a plain `sleep` could not be stopped with SIGTERM.
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
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "vmhost/sandbox.h"
#include "vmhost/trust.h"

#define EXIT_SETUP 125    /* the sandbox could not be entered */
#define EXIT_NOEXEC 126   /* the command exists but cannot run */
#define EXIT_NOTFOUND 127

/* Signals passed down the chain; everything else keeps its default. */
static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,
				 SIGUSR2 };
#define NFORWARDED (sizeof forwarded / sizeof forwarded[0])

static volatile pid_t forward_to;

static void forward(int sig)
{
	if (forward_to > 0)
		kill(forward_to, sig);
}

static void die(const char *what)
{
	fprintf(stderr, "firebreak run: %s: %s\n", what, strerror(errno));
	_exit(EXIT_SETUP);
}

/* The status a shell would report for `st`. */
static int status_code(int st)
{
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static void set_forwarding(void)
{
	struct sigaction sa = { .sa_handler = forward };

	/* No SA_RESTART: waitpid must return to look at the child. */
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < NFORWARDED; i++)
		sigaction(forwarded[i], &sa, NULL);
}

static void unblock_all(void)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * The relay holds the write end of this pipe until it exits; init, whose
 * parent is outside its PID namespace (getppid() says 0), tells from the
 * read end whether the relay is still there.
 */
static int relay_alive[2] = { -1, -1 };

/* Die with the parent; if it is already gone, do not start at all. */
static void tie_to_parent(pid_t parent)
{
	struct pollfd p = { .fd = relay_alive[0], .events = POLLIN };

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		die("prctl(PR_SET_PDEATHSIG)");
	if (relay_alive[0] >= 0) {
		close(relay_alive[1]);
		if (poll(&p, 1, 0) != 0)
			_exit(EXIT_SETUP);
	} else if (getppid() != parent) {
		_exit(EXIT_SETUP);
	}
}

/* Wait for `child`, reaping anything else that turns up; its status. */
static int wait_for(pid_t child)
{
	int st;

	for (;;) {
		pid_t got = waitpid(-1, &st, 0);

		if (got == child)
			return status_code(st);
		if (got < 0 && errno != EINTR)
			die("waitpid");
	}
}

/*
 * No capability survives the command's exec, whatever its uid: the
 * bounding set emptied, the ambient set cleared (the inheritable one is
 * empty already).  Without a user namespace the command's root is the
 * host's: with CAP_SYS_ADMIN and CAP_NET_ADMIN it could unmount the
 * empty /run, enter the sandbox's namespace and delete the policy's
 * table, or any other sandbox's.  EINVAL ends the walk: the kernel's
 * last capability.
 */
static void drop_capabilities(void)
{
	for (int cap = 0;; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL && cap > 0)
				break;
			die("prctl(PR_CAPBSET_DROP)");
		}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		die("prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
}

/*
 * The command: every signal as exec leaves a new program (a launcher
 * that ignores SIGPIPE would hand that on), and a session of its own,
 * so that the terminal the launcher runs on, whose descriptors it may
 * share, is not its controlling terminal: on that one TIOCSTI would push
 * keystrokes into the shell that started us, to run as root once we are
 * gone.
 */
static void run_command(const struct fb_process_opts *o, pid_t init)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	(void)init; /* PID 1 of our namespace: when it goes, so do we */
	/* EINVAL for KILL and STOP, and for the two real-time signals
	 * glibc keeps to itself: those stay as they were */
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL);
	unblock_all();
	if (setsid() < 0)
		die("setsid");
	drop_capabilities();
	if (setgroups(0, NULL) < 0)
		die("setgroups");
	if (setgid(o->gid) < 0)
		die("setgid");
	if (setuid(o->uid) < 0)
		die("setuid");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("prctl(PR_SET_NO_NEW_PRIVS)");
	for (char **e = o->env; e && *e; e++)
		if (putenv(*e) != 0)
			die("putenv");
	execvp(o->argv[0], o->argv);
	fprintf(stderr, "firebreak run: %s: %s\n", o->argv[0], strerror(errno));
	_exit(errno == ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC);
}

/*
 * Start child(o, our pid) in a new process, forward signals to it, and
 * exit with its status.  Signals stay blocked until its pid is known, so
 * none is lost in between.
 */
static void supervise(void (*child)(const struct fb_process_opts *, pid_t),
		      const struct fb_process_opts *o)
{
	pid_t self = getpid(), pid;
	sigset_t all;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	set_forwarding();
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		child(o, self);
	forward_to = pid;
	unblock_all();
	_exit(wait_for(pid));
}

/*
 * Directories the host's processes share by path, which no namespace
 * hides, each replaced by an empty tmpfs of the command's own: /run for
 * the services' unix sockets (D-Bus, the databases' local sockets, the
 * journal, the launcher's daemon), /tmp and /var/tmp for the users' (X11,
 * tmux, ssh-agent) and the files users leave for each other, /dev/shm for
 * POSIX shared memory, which the IPC namespace does not cover.  A host
 * process behind such a socket has the host's network: the command
 * reaching it would go round the policy.
 *
 * A tmpfs is memory the host holds until the sandbox ends, and no OOM kill
 * gives it back: together these stay under the half of RAM the kernel
 * lets any one tmpfs take.
 */
static const struct private_dir {
	const char *path;
	unsigned long flags;
	const char *opts;
} private_dirs[] = {
	{ "/run", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=1m" },
	{ "/tmp", MS_NOSUID | MS_NODEV, "mode=1777,size=20%" },
	{ "/var/tmp", MS_NOSUID | MS_NODEV, "mode=1777,size=10%" },
	{ "/dev/shm", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=10%" },
};
#define NPRIVATE (sizeof private_dirs / sizeof private_dirs[0])

/* A host that has no such directory has nothing there to hide. */
static void mount_private_dirs(void)
{
	char what[64];

	for (size_t i = 0; i < NPRIVATE; i++) {
		const struct private_dir *d = &private_dirs[i];

		if (access(d->path, F_OK) < 0)
			continue;
		if (mount("tmpfs", d->path, "tmpfs", d->flags, d->opts) < 0) {
			snprintf(what, sizeof what, "mount a tmpfs on %s",
				 d->path);
			die(what);
		}
	}
}

/* The private directory `path` lies in, or NULL. */
static const char *private_dir_of(const char *path)
{
	for (size_t i = 0; i < NPRIVATE; i++) {
		size_t n = strlen(private_dirs[i].path);

		if (!strncmp(path, private_dirs[i].path, n) && path[n] == '/')
			return private_dirs[i].path;
	}
	return NULL;
}

/*
 * A file of ours bind-mounted over one of the host's.  Both were looked
 * up before the private directories were mounted: the file is an O_PATH
 * descriptor (a state directory may be under /tmp or /run), the target
 * its path with symlinks resolved, since /etc/resolv.conf is often a link
 * into /run.  A target in a private directory is made again, empty, there.
 */
struct overlay {
	int src;
	char target[PATH_MAX];
};

static bool overlay_prepare(struct overlay *ov, const char *src,
			    const char *target)
{
	ov->src = -1;
	if (!realpath(target, ov->target))
		return false;
	ov->src = open(src, O_PATH | O_CLOEXEC);
	if (ov->src < 0)
		die("open a file for the sandbox");
	return true;
}

static void make_in_private(const char *path, const char *dir)
{
	char buf[PATH_MAX];
	int fd;

	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + strlen(dir) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			die("mkdir in the sandbox's private directory");
		*p = '/';
	}
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create a file in the sandbox's private directory");
	close(fd);
}

static void overlay_mount(const struct overlay *ov, const char *what)
{
	const char *dir;
	char src[32];

	if (ov->src < 0)
		return;
	dir = private_dir_of(ov->target);
	if (dir)
		make_in_private(ov->target, dir);
	snprintf(src, sizeof src, "/proc/self/fd/%d", ov->src);
	if (mount(src, ov->target, NULL, MS_BIND, NULL) < 0)
		die(what);
	close(ov->src);
}

/*
 * /sys lists the network devices of the namespace it was mounted from:
 * the host's, with their names, addresses and drivers, until one is
 * mounted from the guest's.  Read-only: the command has nothing to write
 * there.  It covers the host's mounts under /sys (cgroups, tracing),
 * which describe the host too.  The kernel allows it where it allows the
 * new /proc, so a failure is fatal as that one's is.
 */
/*
 * Every mqueue file system mounted in the host's namespace (systemd puts
 * one on /dev/mqueue) shows the host's POSIX message queues, whatever the
 * IPC namespace: opened by path, they are a channel out.  Each is covered
 * by a new one, which shows the command's own.  The mount points, from
 * /proc/self/mountinfo (spaces and the like escaped as \ooo), are all
 * read before any is covered: the new mounts join the file as it is read.
 */
static void mount_own_mqueues(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], **mps = NULL;
	size_t n = 0;

	if (!f)
		die("read /proc/self/mountinfo");
	while (fgets(line, sizeof line, f)) {
		char *sep = strstr(line, " - "), *mp = line, *end, *in, *out;
		char **grown;

		if (!sep || strncmp(sep + 3, "mqueue ", 7))
			continue;
		/* the fifth field: ID PARENT MAJ:MIN ROOT MOUNTPOINT ... */
		for (int i = 0; i < 4 && mp; i++)
			if ((mp = strchr(mp, ' ')))
				mp++;
		if (!mp || !(end = strchr(mp, ' ')))
			continue;
		*end = '\0';
		for (in = out = mp; *in; in++, out++) {
			if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' &&
			    in[2] >= '0' && in[2] <= '7' && in[3] >= '0' &&
			    in[3] <= '7') {
				*out = (char)((in[1] - '0') << 6 |
					      (in[2] - '0') << 3 | (in[3] - '0'));
				in += 3;
			} else {
				*out = *in;
			}
		}
		*out = '\0';
		grown = realloc(mps, (n + 1) * sizeof(*mps));
		if (!grown || !(grown[n] = strdup(mp)))
			die("remember an mqueue mount");
		mps = grown;
		n++;
	}
	fclose(f);
	for (size_t i = 0; i < n; i++) {
		if (mount("mqueue", mps[i], "mqueue",
			  MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
			die("mount an mqueue over the host's");
		free(mps[i]);
	}
	free(mps);
}

static void mount_sys(void)
{
	if (access("/sys", F_OK) == 0 &&
	    mount("sysfs", "/sys", "sysfs",
		  MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		die("mount a sysfs on /sys");
}

/*
 * The working directory is held, not looked up: one under /tmp would
 * still be the host's after the mounts.  Entered again by its path it is
 * the sandbox's.  One that is not there (it was in a private directory,
 * or is gone) is not kept as the host's: the command starts in /, and is
 * told why, as a relative path it names will not be found.
 */
static void reenter_cwd(const char *cwd)
{
	if (cwd && chdir(cwd) == 0)
		return;
	if (cwd)
		fprintf(stderr, "firebreak run: the working directory %s is "
			"not in the sandbox (its /run, /tmp, /var/tmp and "
			"/dev/shm are its own): the command starts in /\n",
			cwd);
	if (chdir("/") < 0)
		die("change to /");
}

static void run_init(const struct fb_process_opts *o, pid_t relay)
{
	/* The sandbox CA's bundle goes over the distributions' bundle paths
	 * that exist here (a bind mount needs its target). */
	static const char *const bundles[] = {
		FB_TRUST_GUEST_BUNDLE, FB_TRUST_GUEST_FEDORA_BUNDLE,
	};
	struct overlay resolv, trust[sizeof(bundles) / sizeof(bundles[0])];
	char cwd[PATH_MAX];
	bool have_cwd;

	tie_to_parent(relay);
	have_cwd = getcwd(cwd, sizeof cwd) != NULL; /* not if it is gone */
	/* Mounts made here must not leak into the launcher's namespace. */
	if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die("make / private");
	if (!overlay_prepare(&resolv, o->resolv_conf, "/etc/resolv.conf"))
		die("find /etc/resolv.conf");
	for (size_t i = 0; i < sizeof(bundles) / sizeof(bundles[0]); i++)
		if (!o->trust_bundle ||
		    !overlay_prepare(&trust[i], o->trust_bundle, bundles[i]))
			trust[i].src = -1;
	mount_private_dirs();
	mount_own_mqueues();
	overlay_mount(&resolv,
		      "bind mount the sandbox's resolv.conf on /etc/resolv.conf");
	for (size_t i = 0; i < sizeof(bundles) / sizeof(bundles[0]); i++)
		overlay_mount(&trust[i], "bind mount the sandbox's CA bundle");
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  NULL) < 0)
		die("mount /proc");
	mount_sys();
	reenter_cwd(have_cwd ? cwd : NULL);
	supervise(run_command, o);
}

static void run_relay(const struct fb_process_opts *o, pid_t launcher)
{
	tie_to_parent(launcher);
	if (setns(o->guest_ns, CLONE_NEWNET) < 0)
		die("enter the guest's network namespace");
	/* The relay never execs, so O_CLOEXEC does not protect the
	 * launcher's descriptors from it: a daemon's would keep its other
	 * sandboxes' namespaces, slot locks and clients open for as long as
	 * this guest runs. */
	if (close_range(3, ~0U, 0) < 0)
		die("close the launcher's descriptors");
	/* IPC too: System V queues, semaphores and shared memory, and POSIX
	 * queues, are found by key or name and open to every user their
	 * mode allows: a channel to the host's services and to the other
	 * sandboxes' guests, which run as the same user.  (POSIX queues by
	 * path, through a host's mqueue mount: mount_own_mqueues.) */
	if (unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC) < 0)
		die("unshare PID, mount and IPC namespaces");
	if (pipe2(relay_alive, O_CLOEXEC) < 0)
		die("pipe");
	supervise(run_init, o);
}

pid_t fb_process_spawn(const struct fb_process_opts *o, char *err,
		       size_t errsize)
{
	pid_t launcher = getpid();
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		snprintf(err, errsize, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
		run_relay(o, launcher);
	return pid;
}
