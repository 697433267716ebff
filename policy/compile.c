/*
 * compile.c — turn a validated model into the lookups decisions use.
 *
 * Everything here is derived from the model, so a failure (only memory can
 * fail) frees what was built and leaves the policy unusable rather than
 * half-compiled: the loader then discards it and the policy in force stays.
 */
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

/* The subnets.allow entries that lie inside one non-public block. */
static struct fb_prefix_set *build_reopen(const struct fb_policy *p)
{
	struct fb_cidr *inside = malloc((p->nsubnets[0] + 1) * sizeof *inside);
	struct fb_prefix_set *s;
	size_t n = 0;

	if (!inside)
		return NULL;
	for (size_t i = 0; i < p->nsubnets[0]; i++)
		if (fb_cidr_reopens(&p->subnets[0][i]))
			inside[n++] = p->subnets[0][i];
	s = fb_prefix_set_build(inside, n);
	free(inside);
	return s;
}

int fb_policy_compile(struct fb_policy *p, struct fb_diags *diags,
		      const char *file)
{
	for (size_t i = 0; i < p->ndomains && !p->catch_all; i++)
		if (!strcmp(p->domains[i].pattern, "*"))
			p->catch_all = &p->domains[i];
	if (!p->names)
		p->names = fb_name_index_build_in(p->arena, p->domains,
						  p->ndomains, NULL);
	p->deny = fb_prefix_set_build(p->subnets[1], p->nsubnets[1]);
	p->allow = fb_prefix_set_build(p->subnets[0], p->nsubnets[0]);
	p->reopen = build_reopen(p);
	p->public_ = fb_prefix_set_build(p->publics, p->npublics);
	if (!p->names || !p->deny || !p->allow || !p->reopen || !p->public_) {
		fb_policy_uncompile(p);
		fb_diags_add(diags, file ? file : "<input>", 0, 0,
			     "out of memory compiling the policy (%zu domains, %zu CIDRs)",
			     p->ndomains, p->nsubnets[0] + p->nsubnets[1]);
		return -1;
	}
	return 0;
}

void fb_policy_uncompile(struct fb_policy *p)
{
	fb_name_index_free(p->names);
	fb_prefix_set_free(p->deny);
	fb_prefix_set_free(p->allow);
	fb_prefix_set_free(p->reopen);
	fb_prefix_set_free(p->public_);
	p->names = NULL;
	p->catch_all = NULL;
	p->deny = p->allow = p->reopen = p->public_ = NULL;
}
