/*
 * slot.c — the uplink address pool.  Slot S is held by an exclusive
 * flock() on <state dir>/slots/S for as long as the launcher lives: two
 * launchers never hold the same slot, and a crashed one frees its slot
 * with its last descriptor, leaving nothing to clean up by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmhost/sandbox.h"

/* mkdir -p for the state directory's few levels. */
static int make_dir(const char *path, char *err, size_t errsize)
{
	char buf[256];
	char *p;

	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
		snprintf(err, errsize, "state directory path too long: %s",
			 path);
		return -1;
	}
	for (p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST) {
			snprintf(err, errsize, "mkdir %s: %s", buf,
				 strerror(errno));
			return -1;
		}
		if (c == '\0')
			return 0;
		*p = c;
	}
}

/* One level of the state directory's path; `last` for the directory
 * itself, which no one else may write even with the sticky bit. */
static int check_level(const char *path, bool last, char *err,
		       size_t errsize)
{
	uid_t me = geteuid();
	struct stat st;

	if (lstat(path, &st) < 0 || (S_ISLNK(st.st_mode) &&
				     (st.st_uid == 0 || st.st_uid == me) &&
				     stat(path, &st) < 0)) {
		snprintf(err, errsize, "state directory: %s: %s", path,
			 strerror(errno));
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != me) {
		snprintf(err, errsize, "state directory: %s is owned by uid %u, "
			 "not by root", path, (unsigned)st.st_uid);
		return -1;
	}
	if ((st.st_mode & 022) && (last || !(st.st_mode & S_ISVTX))) {
		snprintf(err, errsize, "state directory: %s is writable by "
			 "others (mode %03o)", path, st.st_mode & 07777);
		return -1;
	}
	return 0;
}

/*
 * Root writes into the state directory and trusts what it finds there
 * later: resolv.conf (through whatever link is in its place), the CA,
 * the proxy's socket.  Whoever else can write it, or a directory on its
 * path, can plant a link there to a file of root's or swap a file; a
 * process guest can, for a state directory under /tmp.  Every level
 * must be root's or ours, and none writable by others but for sticky
 * directories above it (/tmp itself).
 */
int fb_state_dir_check(const char *path, char *err, size_t errsize)
{
	char buf[PATH_MAX];
	char *p;

	/* A relative path's levels go on above the working directory; a
	 * path cut to fit would have another directory judged. */
	if (fb_path_absolute(path, buf, sizeof buf) < 0) {
		snprintf(err, errsize, "state directory %s: %s", path,
			 strerror(errno));
		return -1;
	}
	for (bool last = true;; last = false) {
		if (check_level(buf[0] ? buf : "/", last, err, errsize) < 0)
			return -1;
		p = strrchr(buf, '/');
		if (!p || !buf[0])
			return 0;
		*p = '\0';
	}
}

int fb_lock_path(const char *path, char *err, size_t errsize)
{
	struct stat held, now;
	int fd;

	for (;;) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			snprintf(err, errsize, "open %s: %s", path,
				 strerror(errno));
			return -1;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int e = errno;

			if (e != EWOULDBLOCK)
				snprintf(err, errsize, "lock %s: %s", path,
					 strerror(e));
			close(fd);
			errno = e;
			return -1;
		}
		/* A holder removes its file before unlocking, so a lock won
		 * on a file that is no longer the one at `path` is
		 * worthless: try again. */
		if (fstat(fd, &held) == 0 && stat(path, &now) == 0 &&
		    held.st_ino == now.st_ino && held.st_dev == now.st_dev)
			return fd;
		close(fd);
	}
}

/* Lock one slot file.  1: ours; 0: held by someone else; -1: error. */
static int try_slot(struct fb_slot *s, char *err, size_t errsize)
{
	s->fd = fb_lock_path(s->path, err, errsize);
	if (s->fd >= 0)
		return 1;
	return errno == EWOULDBLOCK ? 0 : -1;
}

int fb_slot_acquire(const char *state_dir, struct fb_slot *s, char *err,
		    size_t errsize)
{
	char dir[200];
	unsigned start;

	s->fd = -1;
	if (snprintf(dir, sizeof dir, "%s/" FB_SLOT_DIR, state_dir) >= (int)sizeof dir) {
		snprintf(err, errsize, "state directory path too long: %s",
			 state_dir);
		return -1;
	}
	/* checked before anything is made in it: a state directory that is
	 * another's link would have root make our files where it points */
	if (make_dir(state_dir, err, errsize) < 0 ||
	    fb_state_dir_check(state_dir, err, errsize) < 0 ||
	    make_dir(dir, err, errsize) < 0)
		return -1;
	/* Start anywhere, so concurrent launchers rarely race for a slot. */
	if (getrandom(&start, sizeof start, 0) != sizeof start)
		start = (unsigned)getpid();
	for (unsigned i = 0; i < FB_SLOTS; i++) {
		int got;

		s->index = (start + i) % FB_SLOTS;
		snprintf(s->path, sizeof s->path, "%s/%u", dir, s->index);
		got = try_slot(s, err, errsize);
		if (got)
			return got < 0 ? -1 : 0;
	}
	snprintf(err, errsize, "all %u uplink slots under %s are in use",
		 FB_SLOTS, dir);
	return -1;
}

void fb_unlock_path(const char *path, int *fd)
{
	if (*fd < 0)
		return;
	unlink(path);
	close(*fd);
	*fd = -1;
}

void fb_slot_release_stale(const char *state_dir, unsigned slot)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof path, "%s/" FB_SLOT_DIR "/%u", state_dir, slot);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		unlink(path);
	close(fd);
}

void fb_slot_release(struct fb_slot *s)
{
	fb_unlock_path(s->path, &s->fd);
}
