/*
 * firecracker.h — the firecracker backend: the command runs in a
 * Firecracker microVM configured over its API socket.  The binary is the
 * user's (--firecracker PATH), run directly or under Firecracker's jailer
 * (--jailer PATH); the guest image and the per-sandbox piece are the qemu
 * backend's (qemu.h).  Internal to vmhost/.
 */
#ifndef FB_VMHOST_FIRECRACKER_H
#define FB_VMHOST_FIRECRACKER_H

#include <stddef.h>
#include <sys/types.h>

#include "vmhost/qemu.h"

#define FB_FIRECRACKER_BINARY "firecracker"

struct fb_firecracker_opts {
	/*
	 * What the guest runs and trusts, and the guest image: as the qemu
	 * backend takes them; guest.uid:gid is who firecracker runs as.
	 * guest.tap_fd and guest.ns are not used: see tap_fd and
	 * sandbox_ns.
	 */
	struct fb_qemu_opts guest;
	const char *binary;      /* NULL: FB_FIRECRACKER_BINARY on PATH */
	const char *jailer;      /* set: the jailer starts firecracker */
	const char *id;          /* the sandbox's: the jail's --id */
	int sandbox_ns;          /* where the tap is: firecracker runs there */
	const char *sandbox_ns_name; /* its name under /run/netns: --netns */
	const char *tap_name;    /* the tap's name in sandbox_ns */
	const char *dir;         /* the sandbox's state dir: the API socket */
	unsigned vcpus;          /* 0: FB_QEMU_VCPUS, the guest image's */
	unsigned mem_mib;        /* 0: FB_QEMU_MEM_MIB, likewise */
};

/* Before anything exists: the binary (and the jailer, when one is given)
 * runs and the guest image is readable, or one message saying which is
 * missing. */
int fb_firecracker_preflight(const char *binary, const char *jailer,
			     const char *guest_dir, char *err, size_t errsize);

/*
 * Start firecracker in the sandbox namespace, configure the VM over the
 * API (boot source, network interface, machine, start) and return the
 * pid to signal and wait for, as fb_qemu_spawn does: it exits with the
 * command's status in the guest, 128 plus the signal that stopped it, or
 * 125 when the guest ended without reporting one (a message says so).
 * The guest's console is the caller's stdout, less the status line.
 * Returns -1 with err naming the step (an API call and Firecracker's
 * fault_message) when the VM could not be started; nothing of it is left
 * then.
 *
 * Under the jailer, the kernel and the run's initramfs are copied into
 * the chroot (<dir>/jail/<binary's name>/<id>/root) as /vmlinux and
 * /initrd; the tree is removed when the VM is gone.
 *
 * *tap_fd is consumed: Firecracker attaches to the tap by name, and a tap
 * takes one attachment, so the caller's descriptor is closed once the tap
 * is persistent and owned by guest.uid.  The tap still goes with the
 * sandbox namespace.
 */
pid_t fb_firecracker_spawn(const struct fb_firecracker_opts *o, int *tap_fd,
			   char *err, size_t errsize);

#endif /* FB_VMHOST_FIRECRACKER_H */
