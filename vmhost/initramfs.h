/*
 * initramfs.h — write a cpio "newc" archive, the format the kernel
 * unpacks as its initramfs.  Internal to vmhost/ (the qemu backend's
 * per-sandbox piece).
 *
 * The archive starts at the descriptor's current position, which must be
 * a multiple of 4 bytes into the file the kernel gets.  Names are paths
 * without a leading slash; a file's directory must come before it.  Each
 * call returns -1 with the message in the err buffer given to begin.
 */
#ifndef FB_VMHOST_INITRAMFS_H
#define FB_VMHOST_INITRAMFS_H

#include <stddef.h>

struct fb_initramfs {
	int fd;
	size_t offset; /* bytes written: the padding is relative to it */
	unsigned ino;
	char *err;
	size_t errsize;
};

void fb_initramfs_begin(struct fb_initramfs *a, int fd, char *err,
			size_t errsize);
int fb_initramfs_dir(struct fb_initramfs *a, const char *name, unsigned perm);
int fb_initramfs_file(struct fb_initramfs *a, const char *name,
		      unsigned perm, const void *data, size_t len);
/* The trailer; the archive is complete after it. */
int fb_initramfs_end(struct fb_initramfs *a);

#endif /* FB_VMHOST_INITRAMFS_H */
