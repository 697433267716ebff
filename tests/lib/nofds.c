/* nofds.c — see nofds.h. */
#include "tests/lib/nofds.h"

#include <stddef.h>
#include <sys/resource.h>
#include <unistd.h>

static void count_turn(struct fb_loop *l, void *arg)
{
	(void)l;
	(*(long *)arg)++;
}

static void stop(struct fb_loop *l, void *arg)
{
	*(struct fb_timer **)arg = NULL;
	fb_loop_stop(l);
}

long nofds_turns(struct fb_loop *l, uint64_t ms)
{
	struct rlimit saved, none;
	struct fb_timer *deadline = NULL;
	long turns = 0;
	int lowest = dup(0);

	if (lowest < 0 || getrlimit(RLIMIT_NOFILE, &saved) < 0)
		return -1;
	close(lowest);
	none = saved;
	none.rlim_cur = (rlim_t)lowest;
	if (setrlimit(RLIMIT_NOFILE, &none) < 0)
		return -1;
	if (fb_loop_hook(l, count_turn, &turns) < 0 ||
	    !(deadline = fb_timer_add(l, ms, stop, &deadline)) ||
	    fb_loop_run(l) < 0)
		turns = -1;
	fb_timer_cancel(l, deadline); /* when the loop stopped before it */
	fb_loop_unhook(l, count_turn, &turns);
	if (setrlimit(RLIMIT_NOFILE, &saved) < 0)
		return -1;
	return turns;
}
