/*
 * trust_bundle.h — the file a guest trusts: the host's public roots plus
 * the sandbox CA.  The launcher writes it when the sandbox starts; the
 * proxy rewrites it when a policy change reissues the CA (ca_follow.h).
 */
#ifndef FB_PROXY_TRUST_BUNDLE_H
#define FB_PROXY_TRUST_BUNDLE_H

#include <stddef.h>

#include <openssl/x509.h>

/* The host's public roots (Debian's ca-certificates). */
#define FB_TRUST_SYSTEM_ROOTS "/etc/ssl/certs/ca-certificates.crt"

/*
 * Write `roots_path`'s certificates followed by `ca` to `out_path`
 * (mode 0644).  The bundle is assembled and checked in memory first: a
 * missing or certificate-less roots file changes nothing.
 *
 * A new file is created aside and renamed into place.  An existing file
 * is rewritten in place, keeping its inode, because a guest that sees it
 * through a bind mount keeps the inode it was given: after fb_ca_reissue
 * the proxy calls this again on the same path.  A reader racing that
 * rewrite can see a mix, so it belongs before the guest's clients start,
 * or accepts that a client starting at that instant may have to retry.
 */
int fb_trust_write_bundle(const char *roots_path, X509 *ca,
			  const char *out_path, char *err, size_t errsize);

#endif /* FB_PROXY_TRUST_BUNDLE_H */
