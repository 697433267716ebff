/* accept_pause.c — listeners out of descriptors wait (see accept_pause.h). */
#include "proxy/accept_pause.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

static void watch(struct fb_accept_pause *ap, uint32_t events)
{
	for (size_t i = 0; i < ap->nfds; i++)
		fb_loop_mod(ap->loop, ap->fds[i], events);
}

static void on_resume(struct fb_loop *l, void *arg)
{
	struct fb_accept_pause *ap = arg;

	(void)l;
	ap->resume = NULL;
	watch(ap, EPOLLIN);
}

void fb_accept_pause(struct fb_accept_pause *ap, struct fb_loop *l,
		     const int *fds, size_t nfds, int err)
{
	if (ap->resume || (err != EMFILE && err != ENFILE && err != ENOBUFS &&
			   err != ENOMEM))
		return;
	/* Without the timer that ends it, a pause would last for ever. */
	ap->resume = fb_timer_add(l, FB_ACCEPT_RETRY_MS, on_resume, ap);
	if (!ap->resume)
		return;
	fprintf(stderr, "%s: accept: %s; pausing %d ms\n",
		program_invocation_short_name, strerror(err),
		FB_ACCEPT_RETRY_MS);
	ap->loop = l;
	ap->fds = fds;
	ap->nfds = nfds;
	watch(ap, 0);
}

void fb_accept_pause_cancel(struct fb_accept_pause *ap)
{
	if (!ap->resume)
		return;
	fb_timer_cancel(ap->loop, ap->resume);
	ap->resume = NULL;
}
