/* jwt.c — ES256 JWTs and the JWKS that verifies them. */
#include "proxy/jwt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "policy/policy.h"
#include "proxy/pemfile.h"

#define COORD 32          /* P-256 coordinate and scalar size */
#define B64_32 44         /* base64url of 32 bytes (43) plus NUL */

struct fb_jwt_key {
	EVP_PKEY *pkey;
	char x[B64_32], y[B64_32]; /* public point, base64url */
	char kid[B64_32];
};

/* base64url without padding (RFC 7515 2); `out` holds 4*ceil(len/3)+1. */
static size_t b64url(const unsigned char *in, size_t len, char *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t left = len - i;

		if (left > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (left > 2)
			v |= in[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		if (left > 1)
			out[o++] = tab[v >> 6 & 63];
		if (left > 2)
			out[o++] = tab[v & 63];
	}
	out[o] = '\0';
	return o;
}

static int coord_b64(const EVP_PKEY *pkey, const char *param, char out[B64_32])
{
	unsigned char raw[COORD];
	BIGNUM *bn = NULL;
	int ok = EVP_PKEY_get_bn_param(pkey, param, &bn) &&
		 BN_bn2binpad(bn, raw, COORD) == COORD;

	BN_free(bn);
	if (ok)
		b64url(raw, COORD, out);
	return ok;
}

/* RFC 7638: SHA-256 over the required members in lexical order, no
 * whitespace. */
static int thumbprint(struct fb_jwt_key *k)
{
	unsigned char digest[32];
	char json[160];
	int len = snprintf(json, sizeof(json),
			   "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\","
			   "\"y\":\"%s\"}", k->x, k->y);

	if (!EVP_Digest(json, (size_t)len, digest, NULL, EVP_sha256(), NULL))
		return 0;
	b64url(digest, sizeof(digest), k->kid);
	return 1;
}

static struct fb_jwt_key *wrap(EVP_PKEY *pkey, const char *what, char *err,
			       size_t errsize)
{
	struct fb_jwt_key *k = calloc(1, sizeof(*k));

	if (!k || !coord_b64(pkey, OSSL_PKEY_PARAM_EC_PUB_X, k->x) ||
	    !coord_b64(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, k->y) || !thumbprint(k)) {
		fb_ssl_error(err, errsize, "%s: cannot read the public key", what);
		free(k);
		EVP_PKEY_free(pkey);
		return NULL;
	}
	k->pkey = pkey;
	return k;
}

struct fb_jwt_key *fb_jwt_key_create(char *err, size_t errsize)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");

	if (!pkey) {
		fb_ssl_error(err, errsize, "cannot generate the token key");
		return NULL;
	}
	return wrap(pkey, "new token key", err, errsize);
}

struct fb_jwt_key *fb_jwt_key_load(const char *path, char *err,
				   size_t errsize)
{
	EVP_PKEY *pkey = fb_pem_load_key(path, err, errsize);

	return pkey ? wrap(pkey, path, err, errsize) : NULL;
}

int fb_jwt_key_save(const struct fb_jwt_key *key, const char *path,
		    bool replace, char *err, size_t errsize)
{
	return fb_pem_save_key(key->pkey, path, replace, err, errsize);
}

void fb_jwt_key_free(struct fb_jwt_key *key)
{
	if (!key)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

const char *fb_jwt_key_id(const struct fb_jwt_key *key)
{
	return key->kid;
}

/* ------------------------------------------------------------------ */
/* Minting                                                             */
/* ------------------------------------------------------------------ */

/* Well-formed UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF): JSON text must be. */
static bool valid_utf8(const unsigned char *s)
{
	while (*s) {
		unsigned c = *s++, n, cp, min;

		if (c < 0x80)
			continue;
		if ((c & 0xe0) == 0xc0)
			n = 1, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			n = 2, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			n = 3, cp = c & 0x07, min = 0x10000;
		else
			return false;
		for (; n > 0; n--, s++) {
			if ((*s & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (*s & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

/* ES256: ECDSA over SHA-256, the signature as r||s, 32 bytes each. */
static int sign_es256(EVP_PKEY *pkey, const char *data, size_t len,
		      unsigned char rs[2 * COORD])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[80];
	const unsigned char *p = der;
	size_t derlen = sizeof(der);
	ECDSA_SIG *sig = NULL;
	const BIGNUM *r, *s;
	int ok;

	ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
	     EVP_DigestSign(md, der, &derlen, (const unsigned char *)data,
			    len) == 1 &&
	     (sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) != NULL;
	if (ok) {
		ECDSA_SIG_get0(sig, &r, &s);
		ok = BN_bn2binpad(r, rs, COORD) == COORD &&
		     BN_bn2binpad(s, rs + COORD, COORD) == COORD;
	}
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	return ok;
}

/* The claims object, malloc'd; *len receives its length. */
static char *claims_json(const char *iss, const char *aud,
			 const char *sandbox_id,
			 const struct fb_jwt_request *req, long ttl,
			 time_t now, const char *jti, size_t *len)
{
	char *json = NULL;
	FILE *f = open_memstream(&json, len);

	if (!f)
		return NULL;
	fputs("{\"iss\":", f);
	fb_json_write_string(f, iss, strlen(iss));
	fputs(",\"aud\":", f);
	fb_json_write_string(f, aud, strlen(aud));
	fputs(",\"sub\":", f);
	fb_json_write_string(f, sandbox_id, strlen(sandbox_id));
	fputs(",\"sandbox_id\":", f);
	fb_json_write_string(f, sandbox_id, strlen(sandbox_id));
	fputs(",\"htm\":", f);
	fb_json_write_string(f, req->method, strlen(req->method));
	fputs(",\"htu\":", f);
	fb_json_write_string(f, req->url, strlen(req->url));
	fputs(",\"query\":", f);
	fb_json_write_string(f, req->query, strlen(req->query));
	fprintf(f, ",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,\"jti\":\"%s\"}",
		(long long)now, (long long)now, (long long)now + ttl, jti);
	if (fclose(f) != 0) {
		free(json);
		return NULL;
	}
	return json;
}

char *fb_jwt_mint(const struct fb_jwt_key *key, const char *iss,
		  const char *aud, const char *sandbox_id,
		  const struct fb_jwt_request *req, long ttl, time_t now,
		  char *err, size_t errsize)
{
	/* the query alone may be empty: a request need not have one */
	const struct {
		const char *name, *value;
		bool may_be_empty;
	} claim[] = {
		{ "iss", iss, false }, { "aud", aud, false },
		{ "sandbox_id", sandbox_id, false }, { "htm", req->method, false },
		{ "htu", req->url, false }, { "query", req->query, true },
	};
	unsigned char rnd[16], rs[2 * COORD];
	char header[96], jti[B64_32], *claims, *token;
	size_t hlen, clen, n;

	for (size_t i = 0; i < sizeof(claim) / sizeof(claim[0]); i++) {
		const char *v = claim[i].value;
		bool empty = !v || (!*v && !claim[i].may_be_empty);

		if (empty || !valid_utf8((const unsigned char *)v)) {
			snprintf(err, errsize, "token claim %s is %s", claim[i].name,
				 empty ? "empty" : "not valid UTF-8");
			return NULL;
		}
	}
	if (ttl < 1 || ttl > FB_JWT_TTL_MAX) {
		snprintf(err, errsize, "token lifetime %ld s outside 1-%d s", ttl,
			 FB_JWT_TTL_MAX);
		return NULL;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		fb_ssl_error(err, errsize, "token id");
		return NULL;
	}
	b64url(rnd, sizeof(rnd), jti);
	hlen = (size_t)snprintf(header, sizeof(header),
				"{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
				key->kid);
	claims = claims_json(iss, aud, sandbox_id, req, ttl, now, jti, &clen);
	/* each part grows by 4/3 when encoded; the signature is 86 */
	token = claims ? malloc(4 * (hlen / 3 + 1) + 4 * (clen / 3 + 1) + 90)
		       : NULL;
	if (!token) {
		free(claims);
		snprintf(err, errsize, "token: out of memory");
		return NULL;
	}
	n = b64url((const unsigned char *)header, hlen, token);
	token[n++] = '.';
	n += b64url((const unsigned char *)claims, clen, token + n);
	free(claims);
	if (!sign_es256(key->pkey, token, n, rs)) {
		free(token);
		fb_ssl_error(err, errsize, "cannot sign the token");
		return NULL;
	}
	token[n++] = '.';
	b64url(rs, sizeof(rs), token + n);
	return token;
}

char *fb_jwks_json(const struct fb_jwt_key *key)
{
	char *json;

	if (asprintf(&json, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
		     "\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"%s\",\"alg\":\"ES256\","
		     "\"use\":\"sig\"}]}", key->x, key->y, key->kid) < 0)
		return NULL;
	return json;
}
