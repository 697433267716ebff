/*
 * accept_pause.h — a listener that cannot accept for want of descriptors
 * waits a moment instead of spinning.
 *
 * accept(2) failing with EMFILE, ENFILE, ENOBUFS or ENOMEM leaves the
 * connection in the backlog, so a level-triggered listener is reported
 * ready again at once and the loop would spin at full CPU until something
 * is freed.  Its listeners are not watched for FB_ACCEPT_RETRY_MS instead,
 * then watched again (the backlog keeps the connections meanwhile).
 */
#ifndef FB_ACCEPT_PAUSE_H
#define FB_ACCEPT_PAUSE_H

#include <stddef.h>

#include "proxy/loop.h"

#define FB_ACCEPT_RETRY_MS 100

/* Zero-initialised: not paused. */
struct fb_accept_pause {
	struct fb_loop *loop;
	const int *fds;         /* the listeners paused together */
	size_t nfds;
	struct fb_timer *resume; /* set while paused */
};

/*
 * After accept4() on one of fds[0..nfds) failed with errno `err`: pause
 * them all when `err` is a lack of resources and they are not paused
 * already; other errors (EAGAIN, a connection reset in the backlog)
 * change nothing.  fds must stay valid while paused.
 */
void fb_accept_pause(struct fb_accept_pause *ap, struct fb_loop *l,
		     const int *fds, size_t nfds, int err);
/* Forget a pause in progress, before the listeners are closed. */
void fb_accept_pause_cancel(struct fb_accept_pause *ap);

#endif /* FB_ACCEPT_PAUSE_H */
