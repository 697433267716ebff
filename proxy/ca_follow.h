/*
 * ca_follow.h — keeping the sandbox CA's name constraints in step with
 * the policy in force.
 *
 * The CA permits exactly the subtrees of the policy's brokered names
 * (ca.h), so a policy that brokers a name the CA was not issued for needs
 * a new CA certificate — and the guest needs it in its bundle, because it
 * applies the constraints of the certificate it trusts, not of the key.
 */
#ifndef FB_PROXY_CA_FOLLOW_H
#define FB_PROXY_CA_FOLLOW_H

#include <stddef.h>

#include "policy/policy.h"
#include "proxy/ca.h"

/* The policy's brokered keys (those with rules), pointing into `pol`;
 * malloc'd, NULL when out of memory. */
const char **fb_brokered_names(const struct fb_policy *pol, size_t *n);

/*
 * Move `ca` from the brokered names of `from` to those of `to`: nothing
 * when the two sets are equal; else fb_ca_reissue, then the certificate
 * written over `cert_path` (write aside and rename: only the bundle
 * reaches the guest) and, when `bundle_path` is set, the guest's bundle
 * (`roots_path` + the CA) rewritten in place.
 *
 * On failure err says which step failed and the CA is issued for `from`
 * again, the files rewritten to match, so nothing is half-applied.
 */
int fb_ca_follow(struct fb_ca *ca, const struct fb_policy *from,
		 const struct fb_policy *to, const char *cert_path,
		 const char *bundle_path, const char *roots_path, char *err,
		 size_t errsize);

#endif /* FB_PROXY_CA_FOLLOW_H */
