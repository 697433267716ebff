/*
 * loop.h — the proxy's event loop: epoll for file descriptors, a min-heap
 * of one-shot timers, one thread.  Small enough to read in one sitting.
 */
#ifndef FB_LOOP_H
#define FB_LOOP_H

#include <stdint.h>

struct fb_loop;
struct fb_timer;

/* events: EPOLLIN / EPOLLOUT bits as delivered by epoll (EPOLLHUP, EPOLLERR too). */
typedef void fb_io_fn(struct fb_loop *l, int fd, uint32_t events, void *arg);
typedef void fb_timer_fn(struct fb_loop *l, void *arg);

struct fb_loop *fb_loop_new(void);
void fb_loop_free(struct fb_loop *l);

/* Watch fd for `events` (EPOLLIN|EPOLLOUT); one handler per fd. 0 or -1. */
int fb_loop_add(struct fb_loop *l, int fd, uint32_t events, fb_io_fn *fn,
		void *arg);
int fb_loop_mod(struct fb_loop *l, int fd, uint32_t events);
/* Send fd's events to another handler from now on, without a system
 * call: a connection that changes owner keeps its registration. */
void fb_loop_handover(struct fb_loop *l, int fd, fb_io_fn *fn, void *arg);
/* Stop watching fd; safe to call from inside any handler. */
void fb_loop_del(struct fb_loop *l, int fd);
/* Stop watching fd and close it, in one system call: closing takes the fd
 * out of epoll's set, as long as it was never duplicated (the proxy's are
 * not).  Safe to call from inside any handler. */
void fb_loop_close(struct fb_loop *l, int fd);

/* Call fn once after `ms` milliseconds.  The handle is valid until it
 * fires or is cancelled. */
struct fb_timer *fb_timer_add(struct fb_loop *l, uint64_t ms, fb_timer_fn *fn,
			      void *arg);
void fb_timer_cancel(struct fb_loop *l, struct fb_timer *t);

/*
 * Call fn(l, arg) at the end of every iteration, once its events and
 * timers are handled and before the loop waits again: for work gathered
 * over an iteration and done once (the audit log's lines).  At most
 * FB_LOOP_HOOKS; 0, or -1 when they are taken.
 */
#define FB_LOOP_HOOKS 4
int fb_loop_hook(struct fb_loop *l, fb_timer_fn *fn, void *arg);
void fb_loop_unhook(struct fb_loop *l, fb_timer_fn *fn, void *arg);

/* Monotonic milliseconds, cached per loop iteration. */
uint64_t fb_loop_now(struct fb_loop *l);
/* Monotonic milliseconds, read now: for deadlines kept outside a loop's
 * iteration, where the cached time would be stale. */
uint64_t fb_monotonic_ms(void);

/* Run until fb_loop_stop(); 0, or -1 if epoll itself fails. */
int fb_loop_run(struct fb_loop *l);
void fb_loop_stop(struct fb_loop *l);

#endif /* FB_LOOP_H */
