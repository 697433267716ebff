/* test_loop.c — the event loop: fd dispatch, deletion during dispatch,
 * closing a watched fd, timer order, cancellation, fairness between
 * timers and I/O, and the end-of-iteration hooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "proxy/loop.h"

struct pipe_end {
	int r, w;
	int calls;
	struct pipe_end *other; /* deleted by whichever handler runs first */
};

static void open_pipe(struct pipe_end *p)
{
	int fds[2];

	assert_int_equal(pipe(fds), 0);
	p->r = fds[0];
	p->w = fds[1];
	p->calls = 0;
	p->other = NULL;
}

static void on_readable_stop(struct fb_loop *l, int fd, uint32_t ev, void *arg)
{
	struct pipe_end *p = arg;
	char c;

	assert_true(ev & EPOLLIN);
	assert_int_equal(read(fd, &c, 1), 1);
	p->calls++;
	fb_loop_stop(l);
}

static void test_fd_dispatch(void **state)
{
	struct fb_loop *l = fb_loop_new();
	struct pipe_end p;

	(void)state;
	open_pipe(&p);
	assert_int_equal(fb_loop_add(l, p.r, EPOLLIN, on_readable_stop, &p), 0);
	/* a second handler for the same fd is refused */
	assert_int_equal(fb_loop_add(l, p.r, EPOLLIN, on_readable_stop, &p), -1);
	assert_int_equal(write(p.w, "x", 1), 1);
	assert_int_equal(fb_loop_run(l), 0);
	assert_int_equal(p.calls, 1);
	fb_loop_del(l, p.r);
	fb_loop_free(l);
	close(p.r);
	close(p.w);
}

/*
 * Both pipes are readable in the same epoll batch; the first handler to run
 * deletes and closes the other pipe and reuses its fd number for a fresh
 * pipe with a different handler.  The stale event must reach nobody.
 */
static int reused_calls;
static void on_stop(struct fb_loop *l, void *arg);

static void on_reused(struct fb_loop *l, int fd, uint32_t ev, void *arg)
{
	(void)l; (void)fd; (void)ev; (void)arg;
	reused_calls++;
}

static void on_readable_kill_other(struct fb_loop *l, int fd, uint32_t ev,
				   void *arg)
{
	struct pipe_end *p = arg;
	struct pipe_end *o = p->other;
	int fds[2];

	(void)ev;
	p->calls++;
	fb_loop_del(l, fd);
	if (o->calls == 0) {
		int victim = o->r;

		fb_loop_del(l, o->r);
		close(o->r);
		/* a fresh, readable pipe under the same fd number */
		assert_int_equal(pipe(fds), 0);
		if (fds[0] != victim) {
			assert_int_equal(dup2(fds[0], victim), victim);
			close(fds[0]);
		}
		assert_int_equal(write(fds[1], "y", 1), 1);
		assert_int_equal(fb_loop_add(l, victim, EPOLLIN, on_reused, NULL), 0);
		close(o->w);
		o->w = fds[1];
	}
}

static void test_delete_during_dispatch(void **state)
{
	struct fb_loop *l = fb_loop_new();
	struct pipe_end a, b;

	(void)state;
	open_pipe(&a);
	open_pipe(&b);
	a.other = &b;
	b.other = &a;
	assert_int_equal(fb_loop_add(l, a.r, EPOLLIN, on_readable_kill_other, &a), 0);
	assert_int_equal(fb_loop_add(l, b.r, EPOLLIN, on_readable_kill_other, &b), 0);
	assert_int_equal(write(a.w, "x", 1), 1);
	assert_int_equal(write(b.w, "x", 1), 1);
	reused_calls = 0;
	assert_non_null(fb_timer_add(l, 0, on_stop, NULL));
	assert_int_equal(fb_loop_run(l), 0);
	assert_int_equal(a.calls + b.calls, 1);
	assert_int_equal(reused_calls, 0);
	fb_loop_del(l, a.calls ? b.r : a.r);
	fb_loop_free(l);
	close(a.r);
	close(a.w);
	close(b.r);
	close(b.w);
}

/* ---- timers ------------------------------------------------------------ */

struct order {
	int seen[64];
	int n;
	struct fb_timer *victim;
	struct fb_timer *self;
};

struct tick {
	struct order *o;
	int id;
};

static void on_tick(struct fb_loop *l, void *arg)
{
	struct tick *t = arg;

	t->o->seen[t->o->n++] = t->id;
	/* cancelling a timer that is firing (its own) must be harmless */
	if (t->o->self) {
		fb_timer_cancel(l, t->o->self);
		t->o->self = NULL;
	}
	if (t->o->victim) {
		fb_timer_cancel(l, t->o->victim);
		t->o->victim = NULL;
	}
}

static void on_stop(struct fb_loop *l, void *arg)
{
	(void)arg;
	fb_loop_stop(l);
}

static void test_timer_order(void **state)
{
	struct fb_loop *l = fb_loop_new();
	struct order o = { .n = 0 };
	struct tick t[5];
	static const uint64_t ms[5] = { 30, 10, 20, 10, 0 };

	(void)state;
	for (int i = 0; i < 5; i++) {
		t[i] = (struct tick){ &o, i };
		assert_non_null(fb_timer_add(l, ms[i], on_tick, &t[i]));
	}
	assert_non_null(fb_timer_add(l, 40, on_stop, NULL));
	uint64_t start = fb_loop_now(l);
	assert_int_equal(fb_loop_run(l), 0);
	assert_true(fb_loop_now(l) - start >= 40);
	/* by deadline; equal deadlines in the order they were added */
	assert_int_equal(o.n, 5);
	assert_int_equal(o.seen[0], 4);
	assert_int_equal(o.seen[1], 1);
	assert_int_equal(o.seen[2], 3);
	assert_int_equal(o.seen[3], 2);
	assert_int_equal(o.seen[4], 0);
	fb_loop_free(l);
}

static void test_timer_cancel(void **state)
{
	struct fb_loop *l = fb_loop_new();
	struct order o = { .n = 0 };
	struct tick t[4];

	(void)state;
	for (int i = 0; i < 4; i++)
		t[i] = (struct tick){ &o, i };
	struct fb_timer *first = fb_timer_add(l, 5, on_tick, &t[0]);
	struct fb_timer *gone = fb_timer_add(l, 10, on_tick, &t[1]);
	struct fb_timer *killed = fb_timer_add(l, 15, on_tick, &t[2]);
	assert_non_null(fb_timer_add(l, 20, on_tick, &t[3]));
	assert_non_null(fb_timer_add(l, 25, on_stop, NULL));
	/* cancelled before the loop runs */
	fb_timer_cancel(l, gone);
	/* the first one cancels itself, then the third */
	o.self = first;
	o.victim = killed;
	assert_int_equal(fb_loop_run(l), 0);
	assert_int_equal(o.n, 2);
	assert_int_equal(o.seen[0], 0);
	assert_int_equal(o.seen[1], 3);
	fb_loop_free(l);
}

/* Many timers, half cancelled at random: the rest fire in deadline order. */
static uint64_t last_when;
static int heap_fired, heap_bad;

static void on_heap_tick(struct fb_loop *l, void *arg)
{
	uint64_t when = (uint64_t)(uintptr_t)arg;

	(void)l;
	if (when < last_when)
		heap_bad++;
	last_when = when;
	heap_fired++;
}

static void test_timer_heap(void **state)
{
	enum { N = 2000 };
	struct fb_loop *l = fb_loop_new();
	struct fb_timer *t[N];
	int kept = 0;

	(void)state;
	srand(42);
	for (int i = 0; i < N; i++) {
		uint64_t ms = (uint64_t)(rand() % 30);

		t[i] = fb_timer_add(l, ms, on_heap_tick, (void *)(uintptr_t)ms);
		assert_non_null(t[i]);
	}
	for (int i = 0; i < N; i++) {
		if (rand() % 2)
			fb_timer_cancel(l, t[i]);
		else
			kept++;
	}
	assert_non_null(fb_timer_add(l, 50, on_stop, NULL));
	last_when = 0;
	heap_fired = heap_bad = 0;
	assert_int_equal(fb_loop_run(l), 0);
	assert_int_equal(heap_fired, kept);
	assert_int_equal(heap_bad, 0);
	fb_loop_free(l);
}

/* A timer re-arming itself with 0 ms must not starve I/O. */
static int rearms;

static void on_rearm(struct fb_loop *l, void *arg)
{
	(void)arg;
	rearms++;
	assert_non_null(fb_timer_add(l, 0, on_rearm, NULL));
}

static void test_zero_timer_fairness(void **state)
{
	struct fb_loop *l = fb_loop_new();
	struct pipe_end p;

	(void)state;
	open_pipe(&p);
	assert_int_equal(fb_loop_add(l, p.r, EPOLLIN, on_readable_stop, &p), 0);
	assert_non_null(fb_timer_add(l, 0, on_rearm, NULL));
	assert_int_equal(write(p.w, "x", 1), 1);
	rearms = 0;
	assert_int_equal(fb_loop_run(l), 0);
	assert_int_equal(p.calls, 1);
	assert_true(rearms <= 2);
	/* the pending re-armed timer is freed with the loop (LeakSanitizer) */
	fb_loop_free(l);
	close(p.r);
	close(p.w);
}

/* A watched fd closed through the loop: no EPOLL_CTL_DEL, yet the number
 * can be watched again at once, and the old handler hears nothing. */
static int closed_calls;

static void on_closed(struct fb_loop *l, int fd, uint32_t ev, void *arg)
{
	(void)l; (void)fd; (void)ev; (void)arg;
	closed_calls++;
}

static void test_close_watched_fd(void **state)
{
	struct fb_loop *l = fb_loop_new();
	struct pipe_end p, q;
	int num;

	(void)state;
	open_pipe(&p);
	num = p.r;
	assert_int_equal(fb_loop_add(l, p.r, EPOLLIN, on_closed, NULL), 0);
	assert_int_equal(write(p.w, "x", 1), 1);
	fb_loop_close(l, p.r);
	/* the same number, a new pipe, a new handler */
	open_pipe(&q);
	if (q.r != num) {
		assert_int_equal(dup2(q.r, num), num);
		close(q.r);
		q.r = num;
	}
	assert_int_equal(fb_loop_add(l, q.r, EPOLLIN, on_readable_stop, &q), 0);
	assert_int_equal(write(q.w, "y", 1), 1);
	closed_calls = 0;
	assert_int_equal(fb_loop_run(l), 0);
	assert_int_equal(closed_calls, 0);
	assert_int_equal(q.calls, 1);
	fb_loop_close(l, q.r);
	fb_loop_free(l);
	close(p.w);
	close(q.w);
}

/* Hooks run after the iteration's events and timers, every iteration. */
static char trail[16];

static void mark(char c)
{
	size_t n = strlen(trail);

	if (n + 1 < sizeof(trail))
		trail[n] = c;
}

static void on_fd_mark(struct fb_loop *l, int fd, uint32_t ev, void *arg)
{
	char c;

	(void)l; (void)ev; (void)arg;
	assert_int_equal(read(fd, &c, 1), 1);
	mark('F');
}

static void on_timer_mark(struct fb_loop *l, void *arg)
{
	(void)l; (void)arg;
	mark('T');
}

static void on_hook_mark(struct fb_loop *l, void *arg)
{
	(void)arg;
	mark('H');
	if (strlen(trail) >= 4)
		fb_loop_stop(l);
}

static void on_hook_other(struct fb_loop *l, void *arg)
{
	(void)l; (void)arg;
	mark('X');
}

static void test_hooks_end_each_iteration(void **state)
{
	struct fb_loop *l = fb_loop_new();
	struct pipe_end p;

	(void)state;
	open_pipe(&p);
	memset(trail, 0, sizeof(trail));
	assert_int_equal(fb_loop_add(l, p.r, EPOLLIN, on_fd_mark, NULL), 0);
	assert_non_null(fb_timer_add(l, 0, on_timer_mark, NULL));
	assert_int_equal(fb_loop_hook(l, on_hook_mark, NULL), 0);
	assert_int_equal(fb_loop_hook(l, on_hook_other, NULL), 0);
	fb_loop_unhook(l, on_hook_other, NULL);
	assert_int_equal(write(p.w, "x", 1), 1);
	/* first iteration: the fd, the timer, the hook; then a timer alone */
	assert_non_null(fb_timer_add(l, 20, on_timer_mark, NULL));
	assert_int_equal(fb_loop_run(l), 0);
	assert_string_equal(trail, "FTHTH");
	/* a full set refuses one more */
	for (int i = 1; i < FB_LOOP_HOOKS; i++)
		assert_int_equal(fb_loop_hook(l, on_hook_other, NULL), 0);
	assert_int_equal(fb_loop_hook(l, on_hook_other, NULL), -1);
	fb_loop_del(l, p.r);
	fb_loop_free(l);
	close(p.r);
	close(p.w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fd_dispatch),
		cmocka_unit_test(test_delete_during_dispatch),
		cmocka_unit_test(test_close_watched_fd),
		cmocka_unit_test(test_timer_order),
		cmocka_unit_test(test_timer_cancel),
		cmocka_unit_test(test_timer_heap),
		cmocka_unit_test(test_zero_timer_fairness),
		cmocka_unit_test(test_hooks_end_each_iteration),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
