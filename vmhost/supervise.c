/*
 * supervise.c — the daemon's children, through a signalfd on the loop.
 *
 * A proxy that dies is started again at once with the policy in force
 * (the file the daemon keeps current across PUT and PATCH).  Until it
 * listens, the sandbox table's redirects meet no listener and every new
 * connection is refused: the sandbox is cut off, never let through.  A
 * guest that exits is reaped and its sandbox marked stopped with its
 * status; the network, proxy and log stay until the sandbox is removed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include "vmhost/daemon.h"

/* A proxy that would not start is tried again, sooner at first. */
#define RETRY_MS 200
#define RETRY_MAX_MS 10000

void fb_managed_save(struct fb_managed *m)
{
	char path[PATH_MAX + 16], err[512];

	m->st.proxy = m->launch.proxy > 0 ? m->launch.proxy : 0;
	m->st.guest = m->launch.guest > 0 ? m->launch.guest : 0;
	m->st.proxy_start = fb_proc_starttime(m->st.proxy);
	m->st.guest_start = fb_proc_starttime(m->st.guest);
	snprintf(path, sizeof path, "%s/%s", m->dir, FB_STATE_FILE);
	if (fb_state_write(path, &m->st, err, sizeof err) < 0)
		fprintf(stderr, "firebreak-vmhost: sandbox %s: %s\n", m->st.id,
			err);
}

static void restart_proxies(struct fb_loop *l, void *arg);

/*
 * Start the proxy of `m` again; on failure it is retried with the others
 * that failed, in one round on one timer whose delay doubles while a
 * round fails (a secret file gone for good must not have the daemon
 * retrying all the time), the sandbox cut off meanwhile.
 */
static void revive(struct fb_daemon *d, struct fb_managed *m)
{
	uint64_t t0 = fb_monotonic_ms();
	char err[512];

	m->launch.proxy_args.generation = m->generation_seen + 1;
	if (fb_launch_restart_proxy(&m->launch, err, sizeof err) < 0) {
		if (!d->retry_ms)
			d->retry_ms = RETRY_MS;
		fprintf(stderr, "firebreak-vmhost: sandbox %s: proxy restart: "
			"%s; retrying in %u ms\n", m->st.id, err, d->retry_ms);
		if (!d->retry)
			d->retry = fb_timer_add(d->loop, d->retry_ms,
						restart_proxies, d);
	} else {
		m->proxy_restarts++;
		fprintf(stderr, "firebreak-vmhost: sandbox %s: proxy restarted "
			"(pid %d) in %llu ms\n", m->st.id, (int)m->launch.proxy,
			(unsigned long long)(fb_monotonic_ms() - t0));
	}
	fb_managed_save(m);
}

/* The retry round: every sandbox still without a proxy. */
static void restart_proxies(struct fb_loop *l, void *arg)
{
	struct fb_daemon *d = arg;
	unsigned delay = d->retry_ms;

	(void)l;
	d->retry = NULL;
	d->retry_ms = delay * 2 < RETRY_MAX_MS ? delay * 2 : RETRY_MAX_MS;
	for (struct fb_managed *m = d->sandboxes; m; m = m->next)
		if (m->launch.proxy < 0 && m->launch.started)
			revive(d, m);
	if (!d->retry)
		d->retry_ms = 0; /* all up: the next failure starts again */
}

static int exit_code(int st)
{
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static void reap(struct fb_daemon *d)
{
	for (struct fb_managed *m = d->sandboxes; m; m = m->next) {
		int st;

		if (m->launch.guest > 0 &&
		    waitpid(m->launch.guest, &st, WNOHANG) == m->launch.guest) {
			m->launch.guest = -1;
			m->st.status = FB_SBX_STOPPED;
			m->st.exit_status = exit_code(st);
			fprintf(stderr, "firebreak-vmhost: sandbox %s: guest "
				"exited with status %d\n", m->st.id,
				m->st.exit_status);
			fb_managed_save(m);
		}
		if (m->launch.proxy > 0 &&
		    waitpid(m->launch.proxy, &st, WNOHANG) == m->launch.proxy) {
			fprintf(stderr, "firebreak-vmhost: sandbox %s: proxy "
				"%d died with status %d\n", m->st.id,
				(int)m->launch.proxy, exit_code(st));
			m->launch.proxy = -1;
			revive(d, m);
		}
	}
}

static void on_signal(struct fb_loop *l, int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo si;

	(void)events;
	while (read(fd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGCHLD)
			reap(arg);
		else if (si.ssi_signo == SIGHUP)
			/* the reload a daemon's SIGHUP usually asks for, or a
			 * closed terminal: neither should end every sandbox */
			fprintf(stderr, "firebreak-vmhost: SIGHUP: nothing to "
				"reload (SIGTERM stops the daemon and removes its "
				"sandboxes)\n");
		else
			fb_loop_stop(l);
	}
}

int fb_supervise_start(struct fb_daemon *d, char *err, size_t errsize)
{
	sigset_t sigs;

	/* blocked for good: they arrive through the descriptor, and no
	 * half-built sandbox is ever interrupted */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGCHLD);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	d->sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (d->sig_fd < 0 ||
	    fb_loop_add(d->loop, d->sig_fd, EPOLLIN, on_signal, d) < 0) {
		snprintf(err, errsize, "signalfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}
