/*
 * ca.h — a sandbox's own certificate authority, and the leaf certificates
 * it mints for brokered names (design.md decision 7).
 *
 * One CA per sandbox.  Its key stays on the host; only the certificate
 * goes into the guest's trust store.  The certificate is short-lived and
 * carries critical nameConstraints, so even a stolen key can vouch only
 * for the policy's brokered names and never for an IP address:
 *
 *   permitted dNSName  one subtree per brokered name (see below)
 *   excluded iPAddress 0.0.0.0/0 and ::/0
 *
 * A dNSName constraint "example.com" permits example.com and every name
 * under it (RFC 5280 4.2.1.10); a constraint cannot say "exactly this
 * name".  So the subtree of a brokered key is:
 *
 *   api.example.com  ->  api.example.com
 *   *.example.com    ->  example.com   (the apex too: a leading "." to
 *                                       exclude it is not RFC 5280 syntax
 *                                       and verifiers disagree on it)
 *   www.*.com        ->  com           (what is right of the last "*")
 *   *                ->  no dNSName constraint at all
 *
 * The exactness comes from elsewhere: the policy decides that a name is
 * brokered, and a leaf is minted for exactly that one name.  A CA for a
 * policy with no brokered names permits only the subtree "invalid", a
 * top-level domain reserved never to exist (RFC 6761), so it can sign for
 * nothing real while keeping the same shape.
 *
 * Leaves: ECDSA P-256, SAN = the one name, serverAuth, a few hours, never
 * past the CA.  All leaves of a CA share one key, made when the CA is
 * created or loaded: it is held by the same process as the CA key, so a
 * key per leaf would isolate nothing, and minting is then one signature.
 * Ready server contexts are kept in an LRU cache keyed by name.
 */
#ifndef FB_CA_H
#define FB_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#define FB_CA_LIFETIME      (24 * 60 * 60) /* default CA validity, seconds */
#define FB_CA_SKEW          (5 * 60)       /* notBefore backdated by this */
#define FB_CA_LEAF_LIFETIME (4 * 60 * 60)
#define FB_CA_LEAF_RENEW    (10 * 60)      /* re-mint a cached leaf this close to expiry */
#define FB_CA_CACHE_SIZE    1024

struct fb_ca;

/*
 * A new CA: fresh P-256 key, subject CN "firebreak sandbox CA <id>",
 * valid from now - FB_CA_SKEW for `lifetime` seconds (0: FB_CA_LIFETIME).
 * `names` are the policy's brokered keys, normalised (lower-case, no
 * trailing dot, A-labels); a malformed one is an error.
 */
struct fb_ca *fb_ca_create(const char *sandbox_id, const char *const *names,
			   size_t n, long lifetime, char *err, size_t errsize);

/*
 * Load a CA written by fb_ca_save.  Refuses, naming the file and the
 * problem: a key file readable by others, a certificate that is not a CA,
 * has no nameConstraints, is expired or not yet valid, or a key that does
 * not match it.
 */
struct fb_ca *fb_ca_load(const char *cert_path, const char *key_path,
			 char *err, size_t errsize);

/*
 * Certificate 0644, key 0600 created exclusively and never through a
 * symbolic link.  Without `replace` an existing file is an error.
 */
int fb_ca_save(const struct fb_ca *ca, const char *cert_path,
	       const char *key_path, bool replace, char *err, size_t errsize);

/*
 * A new certificate for the same key and subject with constraints for
 * `names` and a fresh validity period (so this also renews an expiring
 * CA).  The leaf cache is emptied.  On error the CA is unchanged.
 *
 * The guest trusts the certificate object in its bundle, not the key: a
 * client still holding the old certificate applies the old constraints
 * and rejects leaves for newly brokered names.  So after a reissue the
 * guest's bundle must be rewritten (fb_ca_follow does both) in
 * place — the process backend's guest sees that file through a bind
 * mount, which pins the inode, so it must not be replaced by rename.
 * Guest processes that already read the old bundle (a running Node or
 * Python process) keep the old constraints until they restart.
 */
int fb_ca_reissue(struct fb_ca *ca, const char *const *names, size_t n,
		  char *err, size_t errsize);

void fb_ca_free(struct fb_ca *ca);

/* The CA certificate (borrowed; valid until the next reissue or free). */
X509 *fb_ca_cert(const struct fb_ca *ca);

/* True when `name` is a well-formed normalised host name inside the CA's
 * permitted subtrees: the only names fb_ca_leaf will mint for. */
bool fb_ca_permits(const struct fb_ca *ca, const char *name);

/*
 * A ready TLS server context for exactly `name`: TLS 1.2 or later, ALPN
 * selects "http/1.1" and nothing else (a client offering only h2 gets a
 * fatal no_application_protocol alert), a ClientHello whose SNI is not
 * `name` gets a fatal unrecognized_name alert, no session resumption.
 * `name` is the SNI the proxy peeked, normalised.  Refuses names outside
 * the permitted subtrees and an expired CA.
 *
 * The context is owned by the cache and valid until the next call on
 * this CA; SSL_new() takes its own reference, so connections outlive
 * eviction.
 */
SSL_CTX *fb_ca_leaf(struct fb_ca *ca, const char *name, char *err,
		    size_t errsize);

/* Cache capacity (0: FB_CA_CACHE_SIZE); empties the cache. */
int fb_ca_set_cache_size(struct fb_ca *ca, size_t capacity, char *err,
			 size_t errsize);
/* Whether a live leaf for `name` is cached; does not touch LRU order. */
bool fb_ca_cached(const struct fb_ca *ca, const char *name);

struct fb_ca_stats {
	uint64_t minted;  /* leaves signed */
	uint64_t hits;    /* fb_ca_leaf answered from the cache */
	uint64_t evicted; /* dropped as least recently used */
	size_t cached;
};
void fb_ca_stats(const struct fb_ca *ca, struct fb_ca_stats *st);

/*
 * The TLS 1.3 suites of both TLS ends of a brokered connection, preferred
 * first.  OpenSSL's own order puts AES-256-GCM with SHA-384 first;
 * AES-128-GCM is as strong for a session key (128-bit security, as X25519
 * and P-256 give), and its SHA-256 key schedule costs half as much per
 * handshake on CPUs with SHA instructions.  The others stay for peers
 * that insist.
 */
#define FB_TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:" \
			"TLS_CHACHA20_POLY1305_SHA256"

#endif /* FB_CA_H */
