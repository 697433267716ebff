/*
 * qemu.c — the qemu backend (qemu.h).
 *
 *   launcher
 *     └ relay    passes SIGINT/SIGTERM/SIGHUP/SIGQUIT to qemu, waits, and
 *       │        exits with the status the guest wrote on its status port
 *       └ qemu   in the sandbox's guest network namespace, which for a VM
 *                holds no interface at all: the tap it inherits is its
 *                only way out, so code that escapes the guest into qemu
 *                finds no network and runs as the unprivileged user with
 *                no_new_privs.
 *
 * The guest's console (ttyS0) is the caller's stdin and stdout.  The
 * status goes out on a second serial port (ttyS1) as text: the exact
 * value, where isa-debug-exit's exit code can carry only 7 bits and
 * cannot be told apart from qemu's own failure; isa-debug-exit only ends
 * qemu without a kernel "Power down" line in the output.
 *
 * The kernel, the per-run initramfs and the status port's file reach qemu
 * as inherited descriptors named /proc/self/fd/N: the user it runs as
 * need not read the guest image, the image cannot change between the
 * check and the boot, and the two memfds leave nothing behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "vmhost/initramfs.h"
#include "vmhost/kvm.h"
#include "vmhost/qemu.h"
#include "vmhost/sandbox.h"

#define EXIT_PORT 0xf4        /* isa-debug-exit */
#define EXIT_NOREPORT 125

/* A growing byte string; `failed` sticks after an allocation fails. */
struct text {
	char *p;
	size_t len, cap;
	int failed;
};

static void text_add(struct text *t, const char *s, size_t n)
{
	if (t->failed)
		return;
	if (t->len + n + 1 > t->cap) {
		size_t cap = (t->len + n + 1) * 2;
		char *p = realloc(t->p, cap);

		if (!p) {
			t->failed = 1;
			return;
		}
		t->p = p;
		t->cap = cap;
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void text_str(struct text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

/* s as one shell word: single quotes, each ' written as '\''. */
static void text_quoted(struct text *t, const char *s)
{
	text_str(t, "'");
	for (const char *q; (q = strchr(s, '\'')); s = q + 1) {
		text_add(t, s, q - s);
		text_str(t, "'\\''");
	}
	text_str(t, s);
	text_str(t, "'");
}

static int readable(const char *guest_dir, const char *file, char *err,
		    size_t errsize)
{
	char path[512];

	snprintf(path, sizeof path, "%s/%s", guest_dir, file);
	if (access(path, R_OK) == 0)
		return 0;
	snprintf(err, errsize, "guest image %s: %s (`make guest` builds it; "
		 "--guest DIR names another)", path, strerror(errno));
	return -1;
}

int fb_qemu_preflight(const char *guest_dir, char *err, size_t errsize)
{
	char path[512];

	if (fb_find_program(FB_QEMU_BINARY, path, sizeof path) < 0) {
		snprintf(err, errsize, "backend qemu: %s is not installed "
			 "(apt-get install qemu-system-x86), or use --backend "
			 "process", FB_QEMU_BINARY);
		return -1;
	}
	if (readable(guest_dir, FB_GUEST_KERNEL, err, errsize) < 0 ||
	    readable(guest_dir, FB_GUEST_INITRD, err, errsize) < 0)
		return -1;
	return 0;
}

static int read_file(const char *path, struct text *t, char *err,
		     size_t errsize)
{
	char buf[16384];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errsize, "open %s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = read(fd, buf, sizeof buf)) > 0)
		text_add(t, buf, n);
	if (n < 0)
		snprintf(err, errsize, "read %s: %s", path, strerror(errno));
	else if (t->failed)
		snprintf(err, errsize, "read %s: out of memory", path);
	close(fd);
	return n < 0 || t->failed ? -1 : 0;
}

/* Copy the base image to `out`, then zeros up to a multiple of 4. */
static int copy_base(const char *guest_dir, int out, char *err,
		     size_t errsize)
{
	static const char zeros[3];
	char path[512], buf[65536];
	off_t total = 0;
	ssize_t n;
	int ret = -1, fd;

	snprintf(path, sizeof path, "%s/%s", guest_dir, FB_GUEST_INITRD);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errsize, "open %s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = read(fd, buf, sizeof buf)) > 0) {
		if (write(out, buf, n) != n)
			goto write_failed;
		total += n;
	}
	if (n < 0) {
		snprintf(err, errsize, "read %s: %s", path, strerror(errno));
		goto out;
	}
	n = (4 - total % 4) % 4;
	if (write(out, zeros, n) != n)
		goto write_failed;
	ret = 0;
	goto out;
write_failed:
	snprintf(err, errsize, "copy %s: %s", path, strerror(errno));
out:
	close(fd);
	return ret;
}

/*
 * The sandbox's piece: /fb/cmd (the argv as shell words), /fb/env (an
 * export line per variable), /fb/ca.pem and /fb/trust.pem.
 */
static int write_piece(const struct fb_qemu_opts *o, int out, char *err,
		       size_t errsize)
{
	struct text cmd = { 0 }, env = { 0 }, ca = { 0 }, bundle = { 0 };
	struct fb_initramfs a;
	int ret = -1;

	for (char **arg = o->argv; *arg; arg++) {
		text_quoted(&cmd, *arg);
		text_str(&cmd, arg[1] ? " " : "\n");
	}
	text_str(&env, "");
	for (char **e = o->env; e && *e; e++) {
		text_str(&env, "export ");
		text_quoted(&env, *e);
		text_str(&env, "\n");
	}
	if (cmd.failed || env.failed) {
		snprintf(err, errsize, "out of memory");
		goto out;
	}
	if ((o->ca_cert && read_file(o->ca_cert, &ca, err, errsize) < 0) ||
	    (o->trust_bundle &&
	     read_file(o->trust_bundle, &bundle, err, errsize) < 0))
		goto out;

	fb_initramfs_begin(&a, out, err, errsize);
	if (fb_initramfs_dir(&a, "fb", 0755) < 0 ||
	    fb_initramfs_file(&a, "fb/cmd", 0644, cmd.p, cmd.len) < 0 ||
	    fb_initramfs_file(&a, "fb/env", 0644, env.p, env.len) < 0 ||
	    (o->ca_cert &&
	     fb_initramfs_file(&a, "fb/ca.pem", 0644, ca.p, ca.len) < 0) ||
	    (o->trust_bundle &&
	     fb_initramfs_file(&a, "fb/trust.pem", 0644, bundle.p,
			       bundle.len) < 0) ||
	    fb_initramfs_end(&a) < 0)
		goto out;
	ret = 0;
out:
	free(cmd.p);
	free(env.p);
	free(ca.p);
	free(bundle.p);
	return ret;
}

int fb_qemu_write_initrd(const struct fb_qemu_opts *o, int fd, char *err,
			 size_t errsize)
{
	if (copy_base(o->guest_dir, fd, err, errsize) < 0 ||
	    write_piece(o, fd, err, errsize) < 0)
		return -1;
	return 0;
}

/* The host's TSC rate in kHz, from /proc/cpuinfo's "cpu MHz"; 0 if unknown. */
static unsigned long tsc_khz(void)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[256];
	double mhz = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "cpu MHz : %lf", &mhz) == 1)
			break;
	fclose(f);
	return (unsigned long)(mhz * 1000);
}

/* What qemu inherits besides the tap. */
struct vm_files {
	int kernel;  /* the guest image's, opened by the launcher */
	int initrd;  /* memfd: the image's initramfs and this run's piece */
	int status;  /* memfd: the status port's output */
};

struct launch {
	char kernel[32];     /* /proc/self/fd/N */
	char initrd[32];
	char status_dev[64]; /* file,id=status,path=/proc/self/fd/N */
	char netdev[64];     /* tap,id=net0,fd=N */
	char append[512];
	char smp[16], mem[16];
	const char *accel, *cpu;
	gid_t kvm_group;     /* kept for /dev/kvm, or FB_KVM_NO_GROUP */
	char *argv[48];
};

/*
 * Under TCG the microvm machine has no clock to calibrate the TSC
 * against; the guest's TSC is the host's, so the host's rate is the
 * right one, and without it about one boot in three hangs.
 */
static void build_launch(struct launch *l, const struct fb_qemu_opts *o,
			 const struct vm_files *f)
{
	bool kvm = fb_kvm_usable(FB_KVM_DEVICE, o->uid, o->gid, &l->kvm_group);
	unsigned long khz = kvm ? 0 : tsc_khz();
	char tsc[64] = "";
	size_t n = 0;

	snprintf(l->kernel, sizeof l->kernel, "/proc/self/fd/%d", f->kernel);
	snprintf(l->initrd, sizeof l->initrd, "/proc/self/fd/%d", f->initrd);
	snprintf(l->status_dev, sizeof l->status_dev,
		 "file,id=status,path=/proc/self/fd/%d", f->status);
	snprintf(l->netdev, sizeof l->netdev, "tap,id=net0,fd=%d", o->tap_fd);
	if (khz)
		snprintf(tsc, sizeof tsc, " tsc_early_khz=%lu tsc=reliable",
			 khz);
	snprintf(l->append, sizeof l->append,
		 "console=ttyS0 panic=-1 loglevel=3%s " FB_GUEST_NET
		 " fb.status=ttyS1 fb.exit=%d", tsc, EXIT_PORT);
	snprintf(l->smp, sizeof l->smp, "%u", o->vcpus ? o->vcpus : FB_QEMU_VCPUS);
	snprintf(l->mem, sizeof l->mem, "%u",
		 o->mem_mib ? o->mem_mib : FB_QEMU_MEM_MIB);
	l->accel = kvm ? "kvm" : "tcg";
	l->cpu = kvm ? "host" : "max";

#define ARG(s) (l->argv[n++] = (char *)(s))
	ARG(FB_QEMU_BINARY);
	ARG("-M"); ARG("microvm");
	ARG("-accel"); ARG(l->accel);
	ARG("-cpu"); ARG(l->cpu);
	ARG("-m"); ARG(l->mem);
	ARG("-smp"); ARG(l->smp);
	ARG("-nodefaults"); ARG("-no-user-config");
	ARG("-display"); ARG("none");
	ARG("-no-reboot");
	/* no spawning, no new privileges, no obsolete system calls */
	ARG("-sandbox");
	ARG("on,obsolete=deny,elevateprivileges=deny,spawn=deny,"
	    "resourcecontrol=deny");
	ARG("-chardev"); ARG("stdio,id=console");
	ARG("-serial"); ARG("chardev:console");
	ARG("-chardev"); ARG(l->status_dev);
	ARG("-device"); ARG("isa-serial,chardev=status,index=1");
	ARG("-device"); ARG("isa-debug-exit,iobase=0xf4,iosize=0x04");
	ARG("-kernel"); ARG(l->kernel);
	ARG("-initrd"); ARG(l->initrd);
	ARG("-append"); ARG(l->append);
	ARG("-netdev"); ARG(l->netdev);
	ARG("-device"); ARG("virtio-net-device,netdev=net0,mac=" FB_GUEST_MAC);
	ARG(NULL);
#undef ARG
}

static void die(const char *what)
{
	fprintf(stderr, "firebreak run: qemu: %s: %s\n", what,
		strerror(errno));
	_exit(EXIT_NOREPORT);
}

static void keep_open(int fd)
{
	if (fcntl(fd, F_SETFD, 0) < 0)
		die("clear close-on-exec");
}

/* In the child: enter the namespace, drop to the user, exec qemu. */
static void exec_qemu(const struct fb_qemu_opts *o, struct launch *l,
		      const struct vm_files *f, pid_t relay)
{
	gid_t groups[1];
	size_t ngroups = 0;

	if (setns(o->ns, CLONE_NEWNET) < 0)
		die("enter the guest's network namespace");
	/* The console is the launcher's terminal, written to, but not qemu's
	 * controlling terminal: a guest that broke into qemu could otherwise
	 * push keystrokes into the root shell that ran us (TIOCSTI). */
	if (setsid() < 0)
		die("setsid");
	/* qemu keeps what it is given below and nothing the launcher's
	 * caller left open */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	keep_open(o->tap_fd);
	keep_open(f->kernel);
	keep_open(f->initrd);
	keep_open(f->status);
	/* /dev/kvm's group (kvm), when that is what lets qemu open it: the
	 * one supplementary group the hypervisor keeps */
	if (strcmp(l->accel, "kvm") == 0 && l->kvm_group != FB_KVM_NO_GROUP)
		groups[ngroups++] = l->kvm_group;
	if (setgroups(ngroups, groups) < 0 || setgid(o->gid) < 0 ||
	    setuid(o->uid) < 0)
		die("drop privileges");
	/* after setuid, which clears it */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != relay)
		die("tie to the launcher");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("prctl(PR_SET_NO_NEW_PRIVS)");
	execvp(l->argv[0], l->argv);
	die("exec " FB_QEMU_BINARY);
}

static volatile pid_t qemu_pid;
static volatile sig_atomic_t stopped_by;

/* Each of the forwarded signals ends qemu: the status is 128 + it. */
static void forward(int sig)
{
	stopped_by = sig;
	if (qemu_pid > 0)
		kill(qemu_pid, sig);
}

/* The guest's report: FB_EXIT=<0-255> at the start of the file. */
static int reported_status(int fd)
{
	const size_t mark = strlen(FB_GUEST_STATUS_MARK);
	char buf[32], *end;
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	long v;

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (strncmp(buf, FB_GUEST_STATUS_MARK, mark) != 0)
		return -1;
	v = strtol(buf + mark, &end, 10);
	if (end == buf + mark || v < 0 || v > 255 ||
	    (*end && *end != '\r' && *end != '\n'))
		return -1;
	return v;
}

static void explain_no_report(int st)
{
	if (WIFSIGNALED(st))
		fprintf(stderr, "firebreak run: qemu was killed by signal %d "
			"before the guest reported a status\n", WTERMSIG(st));
	else
		fprintf(stderr, "firebreak run: the guest stopped without "
			"reporting a status (qemu exited with %d)\n",
			WEXITSTATUS(st));
}

static void relay(const struct fb_qemu_opts *o, struct launch *l,
		  const struct vm_files *f, pid_t launcher)
{
	static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	struct sigaction sa = { .sa_handler = forward };
	sigset_t none;
	pid_t pid;
	int st, status;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != launcher)
		die("tie to the launcher");
	/* No SA_RESTART: waitpid must come back to look at qemu. */
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
		sigaction(forwarded[i], &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		exec_qemu(o, l, f, getppid());
	qemu_pid = pid;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	status = reported_status(f->status);
	if (status >= 0)
		_exit(status);
	if (stopped_by)
		_exit(128 + stopped_by);
	explain_no_report(st);
	_exit(EXIT_NOREPORT);
}

static int open_files(const struct fb_qemu_opts *o, struct vm_files *f,
		      char *err, size_t errsize)
{
	char path[512];

	snprintf(path, sizeof path, "%s/%s", o->guest_dir, FB_GUEST_KERNEL);
	f->kernel = open(path, O_RDONLY | O_CLOEXEC);
	if (f->kernel < 0) {
		snprintf(err, errsize, "open %s: %s", path, strerror(errno));
		return -1;
	}
	f->initrd = memfd_create("firebreak-initrd", MFD_CLOEXEC);
	if (f->initrd < 0 ||
	    (f->status = memfd_create("firebreak-status", MFD_CLOEXEC)) < 0) {
		snprintf(err, errsize, "memfd_create: %s", strerror(errno));
		return -1;
	}
	return fb_qemu_write_initrd(o, f->initrd, err, errsize);
}

static void close_files(const struct vm_files *f)
{
	if (f->kernel >= 0)
		close(f->kernel);
	if (f->initrd >= 0)
		close(f->initrd);
	if (f->status >= 0)
		close(f->status);
}

pid_t fb_qemu_spawn(const struct fb_qemu_opts *o, char *err, size_t errsize)
{
	struct vm_files f = { -1, -1, -1 };
	struct launch l;
	pid_t launcher = getpid(), pid = -1;

	if (open_files(o, &f, err, errsize) < 0)
		goto out;
	build_launch(&l, o, &f);
	pid = fork();
	if (pid < 0)
		snprintf(err, errsize, "fork: %s", strerror(errno));
	else if (pid == 0)
		relay(o, &l, &f, launcher);
out:
	close_files(&f);
	return pid;
}
