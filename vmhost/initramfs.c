/*
 * initramfs.c — a cpio archive in the "newc" format, the one the kernel
 * unpacks into its initial root file system (Documentation/driver-api/
 * early-userspace/buffer-format.rst).  Enough of it for the qemu
 * backend's per-sandbox piece: directories and small regular files.
 *
 * Each entry is a 110-byte ASCII header ("070701" and thirteen 8-digit
 * hex fields), the NUL-terminated name, then the data; name and data are
 * each padded to a multiple of 4 bytes from the archive's start.  A
 * "TRAILER!!!" entry ends the archive.  The kernel accepts several
 * archives back to back, which is how the piece goes after the base
 * image; an archive must then begin at a multiple of 4 (zeros between
 * them are skipped).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vmhost/initramfs.h"

static int put(struct fb_initramfs *a, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(a->fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(a->err, a->errsize, "write the initramfs: %s",
				 strerror(errno));
			return -1;
		}
		p += n;
		len -= n;
		a->offset += n;
	}
	return 0;
}

static int pad(struct fb_initramfs *a)
{
	static const char zeros[3];

	return put(a, zeros, (4 - a->offset % 4) % 4);
}

static int entry(struct fb_initramfs *a, const char *name, unsigned mode,
		 const void *data, size_t len)
{
	char hdr[111];
	size_t namesize = strlen(name) + 1;

	if (len > 0xffffffffUL || namesize > 4096) {
		snprintf(a->err, a->errsize, "initramfs: %s is too large",
			 name);
		return -1;
	}
	/* ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
	 * rdevmajor, rdevminor, namesize, check: root owns everything, and
	 * a fixed mtime keeps the archive reproducible. */
	snprintf(hdr, sizeof hdr,
		 "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 ++a->ino, mode, 0u, 0u, (mode & 0170000) == 0040000 ? 2u : 1u,
		 0u, (unsigned)len, 0u, 0u, 0u, 0u, (unsigned)namesize, 0u);
	if (put(a, hdr, 110) < 0 || put(a, name, namesize) < 0 ||
	    pad(a) < 0 || put(a, data, len) < 0 || pad(a) < 0)
		return -1;
	return 0;
}

void fb_initramfs_begin(struct fb_initramfs *a, int fd, char *err,
			size_t errsize)
{
	memset(a, 0, sizeof *a);
	a->fd = fd;
	a->err = err;
	a->errsize = errsize;
}

int fb_initramfs_dir(struct fb_initramfs *a, const char *name, unsigned perm)
{
	return entry(a, name, 0040000 | (perm & 07777), NULL, 0);
}

int fb_initramfs_file(struct fb_initramfs *a, const char *name,
		      unsigned perm, const void *data, size_t len)
{
	return entry(a, name, 0100000 | (perm & 07777), data, len);
}

int fb_initramfs_end(struct fb_initramfs *a)
{
	return entry(a, "TRAILER!!!", 0, NULL, 0);
}
