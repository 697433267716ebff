/*
 * trust.h — how a guest comes to trust its sandbox's CA: a bundle file
 * (the host's public roots plus the CA) mounted over the distribution's
 * bundle paths, the CA alone at the anchor paths, and the environment
 * variables common clients read instead of the system store
 * (notes/vercel-firewall.md 7.3-7.4).  Internal to vmhost.
 */
#ifndef FB_VMHOST_TRUST_H
#define FB_VMHOST_TRUST_H

#include <stddef.h>

#include "proxy/trust_bundle.h" /* the bundle itself */

/* Where a guest looks, as the guest sees them: mount the bundle over the
 * two bundle paths and the CA alone over the two anchors. */
#define FB_TRUST_GUEST_BUNDLE        "/etc/ssl/certs/ca-certificates.crt"
#define FB_TRUST_GUEST_FEDORA_BUNDLE "/etc/pki/tls/certs/ca-bundle.crt"
#define FB_TRUST_GUEST_DEBIAN_ANCHOR \
	"/usr/local/share/ca-certificates/firebreak-sandbox-ca.crt"
#define FB_TRUST_GUEST_FEDORA_ANCHOR \
	"/etc/pki/ca-trust/source/anchors/firebreak-sandbox-ca.pem"

/*
 * The guest's trust environment as "NAME=value" strings, NULL-terminated
 * and malloc'd (free with fb_trust_env_free): SSL_CERT_FILE,
 * CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE, GIT_SSL_CAINFO, PIP_CERT,
 * AWS_CA_BUNDLE, CARGO_HTTP_CAINFO, NPM_CONFIG_CAFILE and
 * GRPC_DEFAULT_SSL_ROOTS_FILE_PATH name `bundle`; NODE_EXTRA_CA_CERTS
 * names `ca` (Node adds it to its own roots; NULL: `bundle`);
 * NODE_USE_SYSTEM_CA=1 makes newer Node read the system store as well.
 * Paths are as the guest sees them.  NULL when out of memory.
 */
char **fb_trust_env(const char *bundle, const char *ca);
void fb_trust_env_free(char **env);

#endif /* FB_VMHOST_TRUST_H */
