/*
 * loop.c — epoll plus a min-heap of timers, one thread.
 *
 * File descriptors: a table indexed by fd holds each handler.  epoll's
 * user data carries the fd and the slot's generation, so an event that was
 * queued for an fd deleted (and perhaps reused) earlier in the same batch is
 * recognised as stale and dropped instead of reaching the new owner.
 *
 * Timers: a binary min-heap ordered by (deadline, sequence); each timer
 * knows its heap index, so cancelling is O(log n).  A timer being fired is
 * out of the heap but still allocated until its handler returns, so the
 * handler may cancel it (a no-op) without touching freed memory.
 *
 * Hooks: called in order after the timers, every iteration.
 *
 * Errors: functions return -1 with errno set; the caller names the fd.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "proxy/loop.h"

#define MAX_EVENTS 256
#define NOT_IN_HEAP SIZE_MAX

struct io_slot {
	fb_io_fn *fn;
	void *arg;
	uint32_t gen; /* bumped on every delete: stale events do not match */
	bool used;
};

struct fb_timer {
	uint64_t when;
	uint64_t seq; /* ties fire in the order they were added */
	size_t idx;   /* position in the heap, or NOT_IN_HEAP while firing */
	fb_timer_fn *fn;
	void *arg;
};

struct hook {
	fb_timer_fn *fn;
	void *arg;
};

struct fb_loop {
	int epfd;
	struct io_slot *io;
	size_t nio;
	struct fb_timer **heap;
	size_t nheap, capheap;
	uint64_t seq;
	uint64_t now;
	struct hook hooks[FB_LOOP_HOOKS];
	size_t nhooks;
	bool stop;
};

uint64_t fb_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct fb_loop *fb_loop_new(void)
{
	struct fb_loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return NULL;
	}
	l->now = fb_monotonic_ms();
	return l;
}

void fb_loop_free(struct fb_loop *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nheap; i++)
		free(l->heap[i]);
	free(l->heap);
	free(l->io);
	close(l->epfd);
	free(l);
}

/* ---- file descriptors ------------------------------------------------ */

static int grow_io(struct fb_loop *l, int fd)
{
	size_t n = l->nio ? l->nio : 64;
	struct io_slot *io;

	while (n <= (size_t)fd)
		n *= 2;
	io = realloc(l->io, n * sizeof(*io));
	if (!io)
		return -1;
	memset(io + l->nio, 0, (n - l->nio) * sizeof(*io));
	l->io = io;
	l->nio = n;
	return 0;
}

static uint64_t io_token(int fd, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint32_t)fd;
}

int fb_loop_add(struct fb_loop *l, int fd, uint32_t events, fb_io_fn *fn,
		void *arg)
{
	struct epoll_event ev = { .events = events };

	if (fd < 0) {
		errno = EBADF;
		return -1;
	}
	if ((size_t)fd >= l->nio && grow_io(l, fd) < 0)
		return -1;
	if (l->io[fd].used) {
		errno = EEXIST;
		return -1;
	}
	ev.data.u64 = io_token(fd, l->io[fd].gen);
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -1;
	l->io[fd].fn = fn;
	l->io[fd].arg = arg;
	l->io[fd].used = true;
	return 0;
}

int fb_loop_mod(struct fb_loop *l, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events };

	if (fd < 0 || (size_t)fd >= l->nio || !l->io[fd].used) {
		errno = ENOENT;
		return -1;
	}
	ev.data.u64 = io_token(fd, l->io[fd].gen);
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev);
}

static void forget(struct fb_loop *l, int fd)
{
	l->io[fd].used = false;
	l->io[fd].fn = NULL;
	l->io[fd].arg = NULL;
	l->io[fd].gen++;
}

void fb_loop_handover(struct fb_loop *l, int fd, fb_io_fn *fn, void *arg)
{
	if (fd < 0 || (size_t)fd >= l->nio || !l->io[fd].used)
		return;
	l->io[fd].fn = fn;
	l->io[fd].arg = arg;
}

void fb_loop_del(struct fb_loop *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->nio || !l->io[fd].used)
		return;
	/* Fails harmlessly if the fd was closed first: the kernel already
	 * dropped it from the interest list. */
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	forget(l, fd);
}

void fb_loop_close(struct fb_loop *l, int fd)
{
	if (fd < 0)
		return;
	/* Were the file still open elsewhere, its registration would
	 * outlive the fd; the bumped generation drops its events. */
	if ((size_t)fd < l->nio && l->io[fd].used)
		forget(l, fd);
	close(fd);
}

/* ---- timers ------------------------------------------------------------ */

static bool timer_before(const struct fb_timer *a, const struct fb_timer *b)
{
	return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_set(struct fb_loop *l, size_t i, struct fb_timer *t)
{
	l->heap[i] = t;
	t->idx = i;
}

static void sift_up(struct fb_loop *l, size_t i)
{
	struct fb_timer *t = l->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!timer_before(t, l->heap[parent]))
			break;
		heap_set(l, i, l->heap[parent]);
		i = parent;
	}
	heap_set(l, i, t);
}

static void sift_down(struct fb_loop *l, size_t i)
{
	struct fb_timer *t = l->heap[i];

	for (;;) {
		size_t child = 2 * i + 1;

		if (child >= l->nheap)
			break;
		if (child + 1 < l->nheap &&
		    timer_before(l->heap[child + 1], l->heap[child]))
			child++;
		if (!timer_before(l->heap[child], t))
			break;
		heap_set(l, i, l->heap[child]);
		i = child;
	}
	heap_set(l, i, t);
}

/* Take t out of the heap, keeping the heap property for the rest. */
static void heap_remove(struct fb_loop *l, struct fb_timer *t)
{
	size_t i = t->idx;
	struct fb_timer *last = l->heap[--l->nheap];

	t->idx = NOT_IN_HEAP;
	if (last == t)
		return;
	heap_set(l, i, last);
	if (i > 0 && timer_before(last, l->heap[(i - 1) / 2]))
		sift_up(l, i);
	else
		sift_down(l, i);
}

struct fb_timer *fb_timer_add(struct fb_loop *l, uint64_t ms, fb_timer_fn *fn,
			      void *arg)
{
	struct fb_timer *t;

	if (l->nheap == l->capheap) {
		size_t cap = l->capheap ? l->capheap * 2 : 64;
		struct fb_timer **heap = realloc(l->heap, cap * sizeof(*heap));

		if (!heap)
			return NULL;
		l->heap = heap;
		l->capheap = cap;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->when = l->now + ms;
	t->seq = l->seq++;
	t->fn = fn;
	t->arg = arg;
	l->heap[l->nheap++] = t;
	sift_up(l, l->nheap - 1);
	return t;
}

void fb_timer_cancel(struct fb_loop *l, struct fb_timer *t)
{
	if (!t)
		return;
	/* Firing right now: its own handler is cancelling it; it is freed
	 * when the handler returns. */
	if (t->idx == NOT_IN_HEAP)
		return;
	heap_remove(l, t);
	free(t);
}

/*
 * Fire the timers due at `now`.  Only timers that existed when this pass
 * began are fired, so a handler re-arming itself with 0 ms cannot keep
 * the loop from reaching epoll.
 */
static void fire_timers(struct fb_loop *l)
{
	uint64_t seq_limit = l->seq;

	while (l->nheap > 0 && !l->stop) {
		struct fb_timer *t = l->heap[0];

		if (t->when > l->now || t->seq >= seq_limit)
			break;
		heap_remove(l, t);
		t->fn(l, t->arg);
		free(t);
	}
}

static int next_timeout(const struct fb_loop *l)
{
	uint64_t wait;

	if (l->nheap == 0)
		return -1;
	if (l->heap[0]->when <= l->now)
		return 0;
	wait = l->heap[0]->when - l->now;
	return wait > 60000 ? 60000 : (int)wait;
}

/* ---- hooks --------------------------------------------------------------- */

int fb_loop_hook(struct fb_loop *l, fb_timer_fn *fn, void *arg)
{
	if (l->nhooks == FB_LOOP_HOOKS) {
		errno = ENOSPC;
		return -1;
	}
	l->hooks[l->nhooks++] = (struct hook){ fn, arg };
	return 0;
}

void fb_loop_unhook(struct fb_loop *l, fb_timer_fn *fn, void *arg)
{
	for (size_t i = 0; i < l->nhooks; i++) {
		if (l->hooks[i].fn == fn && l->hooks[i].arg == arg) {
			memmove(&l->hooks[i], &l->hooks[i + 1],
				(l->nhooks - i - 1) * sizeof(l->hooks[0]));
			l->nhooks--;
			return;
		}
	}
}

/* ---- running ----------------------------------------------------------- */

uint64_t fb_loop_now(struct fb_loop *l)
{
	return l->now;
}

void fb_loop_stop(struct fb_loop *l)
{
	l->stop = true;
}

int fb_loop_run(struct fb_loop *l)
{
	struct epoll_event ev[MAX_EVENTS];

	l->stop = false;
	while (!l->stop) {
		int n = epoll_wait(l->epfd, ev, MAX_EVENTS, next_timeout(l));

		if (n < 0 && errno != EINTR)
			return -1;
		l->now = fb_monotonic_ms();
		for (int i = 0; i < n && !l->stop; i++) {
			int fd = (int)(uint32_t)ev[i].data.u64;
			uint32_t gen = (uint32_t)(ev[i].data.u64 >> 32);
			struct io_slot *s = &l->io[fd];

			/* Deleted earlier in this batch (maybe re-added). */
			if (!s->used || s->gen != gen)
				continue;
			s->fn(l, fd, ev[i].events, s->arg);
		}
		fire_timers(l);
		/* by index: a hook may remove itself */
		for (size_t i = 0; i < l->nhooks; i++)
			l->hooks[i].fn(l, l->hooks[i].arg);
	}
	return 0;
}
