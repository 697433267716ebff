/*
 * nofds.h — an event loop run with no descriptor to spare, to show that
 * a listener whose accept(2) fails for want of one waits instead of
 * spinning (proxy/accept_pause.h).
 */
#ifndef FB_TEST_NOFDS_H
#define FB_TEST_NOFDS_H

#include <stdint.h>

#include "proxy/loop.h"

/*
 * Run `l` for `ms` with RLIMIT_NOFILE at the lowest free descriptor, so
 * that every accept fails with EMFILE, then put the limit back.  Returns
 * how many times the loop turned (a paused listener: a handful; one left
 * watched: thousands), or -1 when the limit could not be set.
 */
long nofds_turns(struct fb_loop *l, uint64_t ms);

#endif /* FB_TEST_NOFDS_H */
