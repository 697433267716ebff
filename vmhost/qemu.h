/*
 * qemu.h — the qemu backend: the command runs in a microVM
 * (`qemu-system-x86_64 -M microvm`, KVM when /dev/kvm exists, TCG
 * otherwise) whose only network is the sandbox's tap.  Internal to vmhost/.
 *
 * The guest image (vmhost/guest/build.sh: a kernel and a base initramfs)
 * is the same for every sandbox.  What one sandbox needs — the command,
 * its environment, the sandbox CA and trust bundle — travels in a second
 * initramfs appended to the base one for this run only; the kernel
 * unpacks both.  The guest's network settings travel on the kernel
 * command line.
 */
#ifndef FB_VMHOST_QEMU_H
#define FB_VMHOST_QEMU_H

#include <stddef.h>
#include <sys/types.h>

#define FB_QEMU_BINARY "qemu-system-x86_64"
#define FB_QEMU_VCPUS 1
#define FB_QEMU_MEM_MIB 256       /* this kernel boots in no less than 96 */
#define FB_GUEST_KERNEL "vmlinux"
#define FB_GUEST_INITRD "initramfs.cpio.gz"
/* Where `make guest` puts the image; FIREBREAK_GUEST_DIR overrides it. */
#define FB_GUEST_DIR_DEFAULT "build/guest"

/*
 * The guest's network on its kernel command line: the guest link as
 * sandbox.h draws it, the gateway also being the resolver (the proxy
 * answers DNS there).  The guest's init also reads fb.status=TTY, where
 * it writes "FB_EXIT=<status>" as the last line, and fb.exit=PORT, the
 * isa-debug-exit port (decimal) it writes to after that.
 */
#define FB_GUEST_NET "fb.ip=10.200.0.2/30 fb.gw=10.200.0.1 " \
		     "fb.dns=10.200.0.1 fb.ip6=fd00:fb::2/64 fb.gw6=fd00:fb::1"
#define FB_GUEST_STATUS_MARK "FB_EXIT="
#define FB_GUEST_MAC "52:54:00:fb:00:02"

struct fb_qemu_opts {
	char **argv;              /* the command, run by the guest's init */
	char **env;               /* "NAME=value" for it, or NULL */
	const char *guest_dir;    /* FB_GUEST_KERNEL and FB_GUEST_INITRD */
	const char *ca_cert;      /* the sandbox CA (PEM), or NULL */
	const char *trust_bundle; /* public roots + the CA (PEM), or NULL */
	int tap_fd;               /* the sandbox's tap: the guest's eth0 */
	int ns;                   /* the network namespace qemu runs in */
	uid_t uid;                /* qemu runs as uid:gid */
	gid_t gid;
	unsigned vcpus;           /* 0: FB_QEMU_VCPUS */
	unsigned mem_mib;         /* 0: FB_QEMU_MEM_MIB */
};

/*
 * Before anything exists: the hypervisor is installed and the guest
 * image is readable, or one message saying which is missing and how to
 * get it.
 */
int fb_qemu_preflight(const char *guest_dir, char *err, size_t errsize);

/*
 * The initramfs for one run, written to `fd` from its current position:
 * the guest image's, then this sandbox's piece (/fb/cmd, /fb/env,
 * /fb/ca.pem, /fb/trust.pem).
 */
int fb_qemu_write_initrd(const struct fb_qemu_opts *o, int fd, char *err,
			 size_t errsize);

/*
 * Boot the guest and run o->argv in it.  Returns the pid to signal and
 * wait for, as fb_process_spawn does: it exits with the command's status
 * inside the guest (SIGINT/SIGTERM are passed to qemu, which stops the
 * guest: 128 plus the signal), 125 when the guest ended without
 * reporting one (a message says so).  The guest's console is the
 * caller's stdin and stdout.  Dies with the caller.
 */
pid_t fb_qemu_spawn(const struct fb_qemu_opts *o, char *err, size_t errsize);

#endif /* FB_VMHOST_QEMU_H */
