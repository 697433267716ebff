/*
 * decide.c — the connection decision, in design.md's order: the address
 * first (deny set, then subnets.allow), then the mode, then the name.
 */
#include <stddef.h>

#include "policy/internal.h"

static const char *const verdict_names[] = {
	[FB_VERDICT_DENY] = "deny",
	[FB_VERDICT_ALLOW] = "allow",
	[FB_VERDICT_BROKER] = "broker",
	[FB_VERDICT_FORWARD] = "forward",
	[FB_VERDICT_RESPOND] = "respond",
};

/* Stable: audit logs and the X-Firebreak-Reason header carry these. */
static const char *const reason_names[] = {
	[FB_REASON_DENIED_CIDR] = "denied-cidr",
	[FB_REASON_NONPUBLIC] = "nonpublic",
	[FB_REASON_ALLOWED_CIDR] = "allowed-cidr",
	[FB_REASON_DENY_ALL] = "deny-all",
	[FB_REASON_ALLOW_ALL] = "allow-all",
	[FB_REASON_NO_NAME] = "no-name",
	[FB_REASON_CATCH_ALL] = "catch-all",
	[FB_REASON_DOMAIN] = "domain",
	[FB_REASON_NOT_ALLOWED] = "not-allowed",
	[FB_REASON_RULE] = "rule",
	[FB_REASON_NO_RULE] = "no-rule",
};

const char *fb_verdict_str(enum fb_verdict v)
{
	if ((size_t)v >= sizeof verdict_names / sizeof verdict_names[0])
		return "?";
	return verdict_names[v];
}

const char *fb_reason_str(enum fb_reason r)
{
	if ((size_t)r >= sizeof reason_names / sizeof reason_names[0])
		return "?";
	return reason_names[r];
}

static void set(struct fb_decision *d, enum fb_verdict v, enum fb_reason r,
		const struct fb_domain *domain)
{
	*d = (struct fb_decision){ .verdict = v, .reason = r,
				   .domain = domain, .rule = -1 };
}

/*
 * subnets.deny holds an IPv6 form that embeds a denied IPv4 address
 * (mapped, compatible, translated, NAT64, 6to4, Teredo) as well as the
 * address itself: a translator or tunnel delivers the one to the other.
 * Of the policy's sets only this one unwraps: subnets.allow, --public and
 * reopenings match the address as written, so an IPv4 entry never lets
 * an embedded form in (deny wins, allow fails closed).  The non-public
 * classifier judges by the same unwrapping, done once here for both.
 */
static bool denied(const struct fb_policy *p, const struct fb_addr *a,
		   const struct fb_addr *v4, size_t nv4)
{
	if (fb_prefix_set_contains(p->deny, a))
		return true;
	for (size_t i = 0; i < nv4; i++)
		if (fb_prefix_set_contains(p->deny, &v4[i]))
			return true;
	return false;
}

int fb_policy_check_addr(const struct fb_policy *p, const struct fb_addr *a,
			 struct fb_decision *d)
{
	struct fb_addr v4[FB_EMBEDDED_V4_MAX];
	size_t nv4 = fb_addr_embedded_v4(a, v4);
	const char *block;

	if (denied(p, a, v4, nv4)) {
		set(d, FB_VERDICT_DENY, FB_REASON_DENIED_CIDR, NULL);
		return FB_VERDICT_DENY;
	}
	/*
	 * --public and a reopening subnets.allow entry are matched against the
	 * address as dialled, as the kernel set is, so both always agree.
	 */
	block = fb_nonpublic_block_of(a, v4, nv4);
	if (block && !fb_prefix_set_contains(p->public_, a) &&
	    !fb_prefix_set_contains(p->reopen, a)) {
		set(d, FB_VERDICT_DENY, FB_REASON_NONPUBLIC, NULL);
		d->block = block;
		return FB_VERDICT_DENY;
	}
	if (fb_prefix_set_contains(p->allow, a)) {
		set(d, FB_VERDICT_ALLOW, FB_REASON_ALLOWED_CIDR, NULL);
		return FB_VERDICT_ALLOW;
	}
	return -1;
}

const struct fb_domain *fb_policy_lookup(const struct fb_policy *p,
					 const char *name)
{
	if (p->mode != FB_MODE_CUSTOM || !name)
		return NULL;
	return fb_name_index_lookup(p->names, name);
}

void fb_policy_decide(const struct fb_policy *p, const char *name,
		      const struct fb_addr *dst, struct fb_decision *d)
{
	const struct fb_domain *key;

	if (dst && fb_policy_check_addr(p, dst, d) >= 0)
		return;
	if (p->mode == FB_MODE_DENY_ALL) {
		set(d, FB_VERDICT_DENY, FB_REASON_DENY_ALL, NULL);
		return;
	}
	if (p->mode == FB_MODE_ALLOW_ALL) {
		set(d, FB_VERDICT_ALLOW, FB_REASON_ALLOW_ALL, NULL);
		return;
	}
	if (!name) {
		/* domain-less traffic under "*" passes unmodified: there is
		 * no name to mint a certificate for, so never brokered */
		if (p->catch_all)
			set(d, FB_VERDICT_ALLOW, FB_REASON_CATCH_ALL, p->catch_all);
		else
			set(d, FB_VERDICT_DENY, FB_REASON_NO_NAME, NULL);
		return;
	}
	key = fb_name_index_lookup(p->names, name);
	if (!key) {
		set(d, FB_VERDICT_DENY, FB_REASON_NOT_ALLOWED, NULL);
		return;
	}
	set(d, key->nrules ? FB_VERDICT_BROKER : FB_VERDICT_ALLOW,
	    key == p->catch_all ? FB_REASON_CATCH_ALL : FB_REASON_DOMAIN, key);
}
