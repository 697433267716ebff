/* rate.c — the token bucket of rate.h. */
#include "proxy/rate.h"

void fb_rate_init(struct fb_rate *r, unsigned per_s, unsigned burst,
		  uint64_t now)
{
	r->per_s = per_s;
	r->burst = burst;
	r->tokens_milli = 1000ull * burst;
	r->refilled_ms = now;
}

bool fb_rate_take(struct fb_rate *r, uint64_t now)
{
	uint64_t cap = 1000ull * r->burst;

	r->tokens_milli += (now - r->refilled_ms) * r->per_s;
	if (r->tokens_milli > cap)
		r->tokens_milli = cap;
	r->refilled_ms = now;
	if (r->tokens_milli < 1000)
		return false;
	r->tokens_milli -= 1000;
	return true;
}
