/*
 * recover.c — what a daemon that died (kill -9, a crash, a reboot of the
 * service) left under the state directory.
 *
 * A sandbox's proxy and guest are tied to the launcher that started them
 * (PR_SET_PDEATHSIG): when the daemon dies they die too, so there is
 * never a live sandbox to adopt, only its remains.  Each state file names
 * them: the namespace fb-<id> (with the uplink veth inside), the table
 * firebreak-<id> in our namespace, the slot file and the directory.  A
 * process that still runs under a recorded pid is killed only when its
 * start time is the recorded one, so a recycled pid is never touched.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/syscall.h>

#include "nft/nft.h"
#include "vmhost/daemon.h"
#include "vmhost/net.h"
#include "vmhost/sandbox.h"

#define GONE_TIMEOUT_MS 2000

/* Kill pid if it is still the process recorded, and wait until it is. */
static void kill_recorded(pid_t pid, unsigned long long start)
{
	struct pollfd p = { .events = POLLIN };

	if (pid <= 0 || !start || fb_proc_starttime(pid) != start)
		return;
	p.fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (p.fd < 0)
		return;
	/* the pidfd pins the process: checking again rules out a pid that
	 * was recycled between the first check and the open */
	if (fb_proc_starttime(pid) == start) {
		syscall(SYS_pidfd_send_signal, p.fd, SIGKILL, NULL, 0);
		poll(&p, 1, GONE_TIMEOUT_MS);
	}
	close(p.fd);
}

static void remove_remains(struct fb_daemon *d, const char *dir,
			   const struct fb_state *s)
{
	char err[256];

	kill_recorded(s->guest, s->guest_start);
	kill_recorded(s->proxy, s->proxy_start);
	if (!fb_sandbox_netns_ours(dir, s->id)) {
		fprintf(stderr, "firebreak-vmhost: sandbox %s: namespace %s is "
			"not the one it had (another launcher's now, or gone): "
			"it and table %s are left alone\n", s->id, s->netns,
			s->table);
	} else {
		if (fb_nft_delete(s->table, err, sizeof err) < 0)
			fprintf(stderr, "firebreak-vmhost: remove table %s: "
				"%s\n", s->table, err);
		/* the uplink veth lives in the namespace and goes with it */
		if (fb_netns_del(s->netns, err, sizeof err) < 0)
			fprintf(stderr, "firebreak-vmhost: %s\n", err);
	}
	fb_slot_release_stale(d->state_dir, s->slot);
	fb_audit_keep(d->state_dir, dir, s->id);
	/* a firecracker jail included, whose relay died with us */
	fb_remove_tree(dir);
	fprintf(stderr, "firebreak-vmhost: removed sandbox %s left by a "
		"previous daemon\n", s->id);
}

void fb_recover(struct fb_daemon *d)
{
	DIR *dp = opendir(d->state_dir);
	struct dirent *e;

	while (dp && (e = readdir(dp))) {
		char dir[PATH_MAX], path[PATH_MAX + 16], err[512];
		struct fb_state s;

		if (!fb_sandbox_id_valid(e->d_name))
			continue;
		snprintf(dir, sizeof dir, "%s/%s", d->state_dir, e->d_name);
		snprintf(path, sizeof path, "%s/%s", dir, FB_STATE_FILE);
		if (access(path, F_OK) < 0)
			continue; /* not a daemon's sandbox: `firebreak run`'s */
		if (fb_state_read(path, &s, err, sizeof err) < 0) {
			fprintf(stderr, "firebreak-vmhost: %s; left alone\n",
				err);
			continue;
		}
		if (strcmp(s.id, e->d_name)) {
			fprintf(stderr, "firebreak-vmhost: %s names sandbox "
				"%s; left alone\n", path, s.id);
			continue;
		}
		remove_remains(d, dir, &s);
	}
	if (dp)
		closedir(dp);
}
