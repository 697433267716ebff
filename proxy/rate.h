/*
 * rate.h — a token bucket: at most `per_s` a second on average, `burst`
 * at once.  Internal to proxy/.
 */
#ifndef FB_RATE_H
#define FB_RATE_H

#include <stdbool.h>
#include <stdint.h>

struct fb_rate {
	uint64_t tokens_milli; /* in 1/1000 of a token */
	uint64_t refilled_ms;
	unsigned per_s, burst;
};

/* Full, at `now` (ms). */
void fb_rate_init(struct fb_rate *r, unsigned per_s, unsigned burst,
		  uint64_t now);
/* Take a token at `now`; false when none is left. */
bool fb_rate_take(struct fb_rate *r, uint64_t now);

#endif /* FB_RATE_H */
