/* name_oracle.c — see name_oracle.h. */
#include <stdbool.h>
#include <string.h>

#include "tests/lib/name_oracle.h"

struct labels {
	const char *s[128];
	size_t len[128];
	size_t n; /* rightmost first */
};

static void split(const char *name, struct labels *l)
{
	const char *end = name + strlen(name);

	l->n = 0;
	while (end > name && l->n < 128) {
		const char *start = end;

		while (start > name && start[-1] != '.')
			start--;
		l->s[l->n] = start;
		l->len[l->n++] = (size_t)(end - start);
		end = start > name ? start - 1 : start;
	}
}

static bool is_star(const struct labels *l, size_t i)
{
	return l->len[i] == 1 && l->s[i][0] == '*';
}

/* A leading "*" matches one or more labels; any other "*" exactly one. */
static bool matches(const struct labels *p, const struct labels *n)
{
	for (size_t i = 0; i < p->n; i++) {
		if (i == p->n - 1 && is_star(p, i))
			return n->n > i;
		if (i >= n->n)
			return false;
		if (!is_star(p, i) &&
		    (p->len[i] != n->len[i] || memcmp(p->s[i], n->s[i], n->len[i])))
			return false;
	}
	return p->n == n->n;
}

/*
 * > 0 when a is more specific: from the right, the first position where
 * one has a literal and the other "*" decides; else more literal labels;
 * else more labels.
 */
static int more_specific(const struct labels *a, const struct labels *b)
{
	size_t la = 0, lb = 0;

	for (size_t i = 0; i < a->n && i < b->n; i++)
		if (is_star(a, i) != is_star(b, i))
			return is_star(a, i) ? -1 : 1;
	for (size_t i = 0; i < a->n; i++)
		la += !is_star(a, i);
	for (size_t i = 0; i < b->n; i++)
		lb += !is_star(b, i);
	if (la != lb)
		return la > lb ? 1 : -1;
	return a->n > b->n ? 1 : a->n < b->n ? -1 : 0;
}

const struct fb_domain *name_oracle_lookup(const struct fb_domain *d, size_t n,
					   const char *name)
{
	const struct fb_domain *best = NULL;
	struct labels ln, lp, lbest = { .n = 0 };

	split(name, &ln);
	for (size_t i = 0; i < n; i++) {
		split(d[i].pattern, &lp);
		if (!matches(&lp, &ln))
			continue;
		if (!best || more_specific(&lp, &lbest) > 0) {
			best = &d[i];
			lbest = lp;
		}
	}
	return best;
}
