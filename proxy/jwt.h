/*
 * jwt.h — the proxy's token signing key, the short-lived ES256 JWTs it
 * attaches to forwarded requests, and the JWKS that lets a forward target
 * verify them (as Vercel's firewall does with its OIDC token, notes/
 * vercel-firewall.md 5.6; ES256 rather than RS256: small keys, fast
 * signatures, and any JOSE library verifies both).
 *
 * The key id is the RFC 7638 JWK thumbprint, so it names the key itself:
 * a target caching the JWKS sees a new kid exactly when the key changes.
 */
#ifndef FB_JWT_H
#define FB_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define FB_JWT_TTL_MAX 300 /* seconds: a token outlives its request briefly */

struct fb_jwt_key;

/* A fresh ECDSA P-256 key. */
struct fb_jwt_key *fb_jwt_key_create(char *err, size_t errsize);
/* PKCS#8 PEM; the file is refused if group or others can read it. */
struct fb_jwt_key *fb_jwt_key_load(const char *path, char *err,
				   size_t errsize);
/* Mode 0600, created exclusively unless `replace`, never via a symlink. */
int fb_jwt_key_save(const struct fb_jwt_key *key, const char *path,
		    bool replace, char *err, size_t errsize);
void fb_jwt_key_free(struct fb_jwt_key *key);

/* The RFC 7638 thumbprint, base64url (43 characters). */
const char *fb_jwt_key_id(const struct fb_jwt_key *key);

/*
 * The request a token goes with, so that it proves nothing for another:
 * RFC 9449 (DPoP) 4.2's "htm" and "htu", and the query htu leaves out.
 */
struct fb_jwt_request {
	const char *method; /* htm */
	const char *url;    /* htu: "https://host[:port]/path", no query */
	const char *query;  /* query: after the '?', "" when there is none */
};

/*
 * A compact JWS "header.payload.signature", malloc'd:
 *   header  {"alg":"ES256","typ":"JWT","kid":<thumbprint>}
 *   claims  {"iss","aud","sub" (= sandbox_id),"sandbox_id",
 *            "htm","htu","query" (from req),
 *            "iat","nbf" (= now),"exp" (= now + ttl),"jti" (random)}
 * The signature is the raw 64-byte r||s of RFC 7518 3.4, not DER.
 * `ttl` is 1..FB_JWT_TTL_MAX seconds; strings must be UTF-8, and all
 * but the query non-empty.
 */
char *fb_jwt_mint(const struct fb_jwt_key *key, const char *iss,
		  const char *aud, const char *sandbox_id,
		  const struct fb_jwt_request *req, long ttl, time_t now,
		  char *err, size_t errsize);

/* {"keys":[{"kty":"EC","crv":"P-256","x","y","kid","alg":"ES256",
 * "use":"sig"}]}, malloc'd; NULL only when out of memory. */
char *fb_jwks_json(const struct fb_jwt_key *key);

#endif /* FB_JWT_H */
