/*
 * netns.c — network namespaces, named the way `ip netns add` names them:
 * the namespace file of a thread that unshared its network is bind-mounted
 * on /run/netns/NAME, so `ip netns exec NAME ...` and `ip netns list` see
 * it and it outlives every process inside it until it is unmounted.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmhost/net.h"

int fb_netns_current(char *err, size_t errsize)
{
	int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		snprintf(err, errsize, "open /proc/thread-self/ns/net: %s",
			 strerror(errno));
	return fd;
}

int fb_netns_enter(int fd, char *err, size_t errsize)
{
	if (setns(fd, CLONE_NEWNET) < 0) {
		snprintf(err, errsize, "setns: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int fb_netns_open(const char *name, char *err, size_t errsize)
{
	char path[64];
	int fd;

	snprintf(path, sizeof path, FB_NETNS_DIR "/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		snprintf(err, errsize, "open %s: %s", path, strerror(errno));
	return fd;
}

static void go_home(int home)
{
	if (setns(home, CLONE_NEWNET) < 0) {
		fprintf(stderr, "firebreak: cannot return to the launcher's "
			"network namespace: %s\n", strerror(errno));
		_exit(1);
	}
	close(home);
}

static int unshare_netns(char *err, size_t errsize)
{
	if (unshare(CLONE_NEWNET) < 0) {
		snprintf(err, errsize, "unshare(CLONE_NEWNET): %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * fn(arg) with the thread in namespace ns, or in one made for the occasion
 * when fresh; then back in its own.  A flag and not ns == -1: a caller's
 * unopened namespace must fail, not run fn somewhere new.
 */
static int call_in(int ns, bool fresh, int (*fn)(void *arg), void *arg,
		   char *err, size_t errsize)
{
	int home = fb_netns_current(err, errsize);
	int ret, saved;

	if (home < 0)
		return -1;
	if ((fresh ? unshare_netns(err, errsize) :
		     fb_netns_enter(ns, err, errsize)) < 0) {
		saved = errno;
		close(home);
		errno = saved;
		return -1;
	}
	ret = fn(arg);
	saved = errno;
	go_home(home);
	errno = saved;
	return ret;
}

int fb_netns_call(int ns, int (*fn)(void *arg), void *arg, char *err,
		  size_t errsize)
{
	return call_in(ns, false, fn, arg, err, errsize);
}

struct ns_arg {
	const char *path; /* bind_current: where to mount */
	int fd;           /* open_current: the result */
	char *err;
	size_t errsize;
};

static int bind_current(void *p)
{
	struct ns_arg *a = p;

	if (mount("/proc/thread-self/ns/net", a->path, "none", MS_BIND,
		  NULL) < 0) {
		snprintf(a->err, a->errsize, "bind mount on %s: %s", a->path,
			 strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * /run/netns must be a shared mount point, so that a namespace mounted
 * under it from a private mount namespace (ip netns exec makes one) is
 * still visible from the others.  Make it one if it is not.
 */
static int prepare_netns_dir(char *err, size_t errsize)
{
	if (mkdir(FB_NETNS_DIR, 0755) < 0 && errno != EEXIST) {
		snprintf(err, errsize, "mkdir " FB_NETNS_DIR ": %s",
			 strerror(errno));
		return -1;
	}
	if (mount("", FB_NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) == 0)
		return 0;
	if (errno != EINVAL ||
	    mount(FB_NETNS_DIR, FB_NETNS_DIR, "none", MS_BIND | MS_REC,
		  NULL) < 0 ||
	    mount("", FB_NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) < 0) {
		snprintf(err, errsize, "make " FB_NETNS_DIR " a shared mount: %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

int fb_netns_add(const char *name, char *err, size_t errsize)
{
	char path[64];
	struct ns_arg arg = { .path = path, .err = err, .errsize = errsize };
	int fd, saved;

	if (prepare_netns_dir(err, errsize) < 0)
		return -1;
	snprintf(path, sizeof path, FB_NETNS_DIR "/%s", name);
	/* O_EXCL: two launchers never share a namespace by accident. */
	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0) {
		saved = errno;
		snprintf(err, errsize, "create %s: %s", path, strerror(errno));
		errno = saved;
		return -1;
	}
	close(fd);
	if (call_in(-1, true, bind_current, &arg, err, errsize) < 0) {
		saved = errno;
		unlink(path);
		errno = saved;
		return -1;
	}
	return 0;
}

int fb_netns_del(const char *name, char *err, size_t errsize)
{
	char path[64];

	snprintf(path, sizeof path, FB_NETNS_DIR "/%s", name);
	/* MNT_DETACH: a descriptor still open elsewhere keeps the namespace
	 * alive, but the name goes now. */
	if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL &&
	    errno != ENOENT) {
		snprintf(err, errsize, "unmount %s: %s", path, strerror(errno));
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errsize, "remove %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int open_current(void *p)
{
	struct ns_arg *a = p;

	a->fd = fb_netns_current(a->err, a->errsize);
	return a->fd < 0 ? -1 : 0;
}

int fb_netns_new_anonymous(char *err, size_t errsize)
{
	struct ns_arg arg = { .fd = -1, .err = err, .errsize = errsize };

	if (call_in(-1, true, open_current, &arg, err, errsize) < 0)
		return -1;
	return arg.fd;
}
