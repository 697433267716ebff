/*
 * dns_cache.c — upstream answers by (name, family) until their TTL runs
 * out.  A hash table for lookups and a list in insertion order for
 * eviction: when full, the oldest answer goes, expired or not.
 */
#include "proxy/resolver.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>

#include "policy/policy.h"

#define BUCKETS 1024 /* a power of two */

struct entry {
	struct entry *hnext;    /* bucket chain */
	TAILQ_ENTRY(entry) age; /* oldest first */
	uint64_t expires_ms;
	int family;
	enum fb_resolve_status status;
	struct fb_addr *addrs;
	size_t naddrs;
	char *chain;
	size_t chain_len, nchain;
	char name[FB_NAME_MAX];
};

struct fb_dns_cache {
	struct entry *bucket[BUCKETS];
	TAILQ_HEAD(, entry) by_age;
	size_t n, max;
	uint32_t seed; /* random: the guest picks the names (wildcards) */
};

static size_t bucket_of(const struct fb_dns_cache *c, const char *name,
			int family)
{
	return fb_name_hash(c->seed ^ (uint32_t)family, name, strlen(name)) &
	       (BUCKETS - 1);
}

struct fb_dns_cache *fb_dns_cache_new(size_t max_entries)
{
	struct fb_dns_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (getrandom(&c->seed, sizeof(c->seed), 0) != sizeof(c->seed)) {
		free(c);
		return NULL;
	}
	TAILQ_INIT(&c->by_age);
	c->max = max_entries ? max_entries : 4096;
	return c;
}

static void drop(struct fb_dns_cache *c, struct entry *e)
{
	struct entry **pp = &c->bucket[bucket_of(c, e->name, e->family)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	TAILQ_REMOVE(&c->by_age, e, age);
	c->n--;
	free(e->addrs);
	free(e->chain);
	free(e);
}

void fb_dns_cache_free(struct fb_dns_cache *c)
{
	struct entry *e;

	if (!c)
		return;
	while ((e = TAILQ_FIRST(&c->by_age)))
		drop(c, e);
	free(c);
}

static struct entry *find(struct fb_dns_cache *c, const char *name, int family)
{
	for (struct entry *e = c->bucket[bucket_of(c, name, family)]; e; e = e->hnext)
		if (e->family == family && strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

static uint32_t clamp_ttl(uint32_t ttl)
{
	if (ttl < FB_RESOLVE_TTL_MIN)
		return FB_RESOLVE_TTL_MIN;
	return ttl > FB_RESOLVE_TTL_MAX ? FB_RESOLVE_TTL_MAX : ttl;
}

int fb_dns_cache_put(struct fb_dns_cache *c, const char *name, int family,
		     const struct fb_resolved *res, uint64_t now_ms)
{
	size_t nlen = strlen(name), chain_len = 0;
	struct entry *e, *old;

	if (nlen >= FB_NAME_MAX)
		return -1;
	for (size_t i = 0; i < res->nchain; i++)
		chain_len += strlen(res->chain + chain_len) + 1;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -1;
	e->addrs = res->naddrs ? malloc(res->naddrs * sizeof(*e->addrs)) : NULL;
	e->chain = chain_len ? malloc(chain_len) : NULL;
	if ((res->naddrs && !e->addrs) || (chain_len && !e->chain)) {
		free(e->addrs);
		free(e->chain);
		free(e);
		return -1;
	}
	if (res->naddrs)
		memcpy(e->addrs, res->addrs, res->naddrs * sizeof(*e->addrs));
	if (chain_len)
		memcpy(e->chain, res->chain, chain_len);
	e->naddrs = res->naddrs;
	e->chain_len = chain_len;
	e->nchain = res->nchain;
	e->status = res->status;
	e->family = family;
	e->expires_ms = now_ms + 1000ull * clamp_ttl(res->ttl);
	memcpy(e->name, name, nlen + 1);

	if ((old = find(c, name, family)))
		drop(c, old);
	if (c->n >= c->max)
		drop(c, TAILQ_FIRST(&c->by_age));
	size_t b = bucket_of(c, name, family);
	e->hnext = c->bucket[b];
	c->bucket[b] = e;
	TAILQ_INSERT_TAIL(&c->by_age, e, age);
	c->n++;
	return 0;
}

bool fb_dns_cache_get(struct fb_dns_cache *c, const char *name, int family,
		      uint64_t now_ms, struct fb_resolved *out)
{
	struct entry *e = find(c, name, family);

	if (!e)
		return false;
	if (now_ms >= e->expires_ms) {
		drop(c, e);
		return false;
	}
	memset(out, 0, sizeof(*out));
	out->status = e->status;
	out->addrs = e->addrs;
	out->naddrs = e->naddrs;
	out->chain = e->chain;
	out->nchain = e->nchain;
	out->ttl = (uint32_t)((e->expires_ms - now_ms + 999) / 1000);
	return true;
}
