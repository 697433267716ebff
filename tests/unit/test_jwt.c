/* test_jwt.c — ES256 tokens verified the way a forward target would: with
 * the public key rebuilt from the published JWKS, by code independent of
 * the minting side. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "proxy/jwt.h"

static char err[512];

static const char *ISS = "https://firebreak.invalid/sandbox/t1";
static const char *AUD = "https://audit.example.com/fwd";
static const struct fb_jwt_request REQ = {
	.method = "POST", .url = "https://api.example.com/v1/x", .query = "a=1",
};

/* ---- an independent verifier ---------------------------------------- */

/* base64url without padding -> bytes; -1 on a character outside it. */
static int unb64url(const char *in, size_t len, unsigned char *out)
{
	uint32_t acc = 0;
	int bits = 0, n = 0;

	for (size_t i = 0; i < len; i++) {
		const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789-_";
		const char *p = in[i] ? strchr(tab, in[i]) : NULL;

		if (!p)
			return -1;
		acc = acc << 6 | (uint32_t)(p - tab);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	return n;
}

/* The value of "name":"..." in flat JSON, malloc'd. */
static char *json_str(const char *json, const char *name)
{
	char key[64];
	const char *p, *end;

	snprintf(key, sizeof(key), "\"%s\":\"", name);
	p = strstr(json, key);
	if (!p)
		return NULL;
	p += strlen(key);
	end = strchr(p, '"');
	return end ? strndup(p, (size_t)(end - p)) : NULL;
}

static long long json_int(const char *json, const char *name)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "\"%s\":", name);
	p = strstr(json, key);
	assert_non_null(p);
	return strtoll(p + strlen(key), NULL, 10);
}

/* The public key of the first JWKS entry, from its x and y alone. */
static EVP_PKEY *key_from_jwks(const char *jwks)
{
	char *x = json_str(jwks, "x"), *y = json_str(jwks, "y");
	unsigned char point[65] = { 0x04 };
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pkey = NULL;

	assert_non_null(x);
	assert_non_null(y);
	assert_int_equal(unb64url(x, strlen(x), point + 1), 32);
	assert_int_equal(unb64url(y, strlen(y), point + 33), 32);
	OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
					"P-256", 0);
	OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
					 sizeof(point));
	params = OSSL_PARAM_BLD_to_param(bld);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY,
					   params), 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	free(x);
	free(y);
	return pkey;
}

/* 1 valid, 0 invalid: the JWS signature over "header.payload", converted
 * from r||s back to the DER form OpenSSL verifies. */
static int verify_token(const char *token, EVP_PKEY *pub)
{
	const char *dot = strrchr(token, '.');
	unsigned char rs[70], *der = NULL;
	ECDSA_SIG *sig = ECDSA_SIG_new();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int derlen, ok;

	assert_non_null(dot);
	if (unb64url(dot + 1, strlen(dot + 1), rs) != 64)
		return 0;
	assert_true(ECDSA_SIG_set0(sig, BN_bin2bn(rs, 32, NULL),
				   BN_bin2bn(rs + 32, 32, NULL)));
	derlen = i2d_ECDSA_SIG(sig, &der);
	assert_true(derlen > 0);
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub),
			 1);
	ok = EVP_DigestVerify(md, der, (size_t)derlen,
			      (const unsigned char *)token,
			      (size_t)(dot - token)) == 1;
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
	return ok;
}

/* Part `i` (0 header, 1 payload) decoded, malloc'd and NUL-terminated. */
static char *part(const char *token, int i)
{
	const char *p = token, *end;
	char *out;
	int n;

	for (; i > 0; i--)
		p = strchr(p, '.') + 1;
	end = strchr(p, '.');
	assert_non_null(end);
	out = calloc(1, (size_t)(end - p) + 1);
	n = unb64url(p, (size_t)(end - p), (unsigned char *)out);
	assert_true(n > 0);
	return out;
}

/* ---- tests ---------------------------------------------------------- */

static void test_token_verifies_with_published_key(void **state)
{
	struct fb_jwt_key *key = fb_jwt_key_create(err, sizeof(err));
	char *token, *jwks, *header, *claims, *kid, *jti;
	EVP_PKEY *pub;
	time_t now = 1767225600; /* 2026-01-01 */

	(void)state;
	assert_non_null(key);
	token = fb_jwt_mint(key, ISS, AUD, "sbx_1", &REQ, 120, now, err,
			    sizeof(err));
	if (!token)
		fail_msg("fb_jwt_mint: %s", err);
	jwks = fb_jwks_json(key);
	assert_non_null(jwks);
	assert_non_null(strstr(jwks, "\"kty\":\"EC\",\"crv\":\"P-256\""));
	assert_non_null(strstr(jwks, "\"alg\":\"ES256\",\"use\":\"sig\""));
	pub = key_from_jwks(jwks);
	assert_int_equal(verify_token(token, pub), 1);

	header = part(token, 0);
	assert_non_null(strstr(header, "\"alg\":\"ES256\""));
	assert_non_null(strstr(header, "\"typ\":\"JWT\""));
	kid = json_str(header, "kid");
	assert_string_equal(kid, fb_jwt_key_id(key));
	free(kid);
	kid = json_str(jwks, "kid");
	assert_string_equal(kid, fb_jwt_key_id(key));
	free(kid);

	claims = part(token, 1);
	assert_non_null(strstr(claims, "\"iss\":\"https://firebreak.invalid/"
				       "sandbox/t1\""));
	assert_non_null(strstr(claims, "\"aud\":\"https://audit.example.com/fwd\""));
	assert_non_null(strstr(claims, "\"sandbox_id\":\"sbx_1\""));
	/* bound to its request: RFC 9449's htm and htu, and the query */
	assert_non_null(strstr(claims, "\"htm\":\"POST\""));
	assert_non_null(strstr(claims, "\"htu\":\"https://api.example.com/v1/x\""));
	assert_non_null(strstr(claims, "\"query\":\"a=1\""));
	assert_int_equal(json_int(claims, "iat"), now);
	assert_int_equal(json_int(claims, "nbf"), now);
	assert_int_equal(json_int(claims, "exp"), now + 120);
	jti = json_str(claims, "jti");
	assert_int_equal(strlen(jti), 22);
	free(jti);

	free(header);
	free(claims);
	EVP_PKEY_free(pub);
	free(jwks);
	free(token);
	fb_jwt_key_free(key);
}

static void test_tampering_fails(void **state)
{
	struct fb_jwt_key *key = fb_jwt_key_create(err, sizeof(err));
	struct fb_jwt_key *other = fb_jwt_key_create(err, sizeof(err));
	char *token = fb_jwt_mint(key, ISS, AUD, "sbx_1", &REQ, 60, time(NULL), err,
				  sizeof(err));
	char *jwks = fb_jwks_json(key), *other_jwks = fb_jwks_json(other);
	EVP_PKEY *pub = key_from_jwks(jwks), *other_pub = key_from_jwks(other_jwks);
	char *forged = strdup(token), *p;

	(void)state;
	assert_int_equal(verify_token(token, pub), 1);
	assert_int_equal(verify_token(token, other_pub), 0);
	/* one payload character changed */
	p = strchr(forged, '.') + 5;
	*p = *p == 'A' ? 'B' : 'A';
	assert_int_equal(verify_token(forged, pub), 0);
	/* one signature character changed */
	strcpy(forged, token);
	p = strrchr(forged, '.') + 10;
	*p = *p == 'A' ? 'B' : 'A';
	assert_int_equal(verify_token(forged, pub), 0);

	free(forged);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(other_pub);
	free(jwks);
	free(other_jwks);
	free(token);
	fb_jwt_key_free(key);
	fb_jwt_key_free(other);
}

static void test_lifetime_bounded(void **state)
{
	struct fb_jwt_key *key = fb_jwt_key_create(err, sizeof(err));
	time_t now = time(NULL);
	char *token, *claims, *a, *b;

	(void)state;
	token = fb_jwt_mint(key, ISS, AUD, "sbx_1", &REQ, FB_JWT_TTL_MAX, now, err,
			    sizeof(err));
	assert_non_null(token);
	claims = part(token, 1);
	assert_true(json_int(claims, "exp") - json_int(claims, "iat") <= 300);
	free(claims);
	free(token);
	assert_null(fb_jwt_mint(key, ISS, AUD, "sbx_1", &REQ, 301, now, err,
				sizeof(err)));
	assert_non_null(strstr(err, "301"));
	assert_null(fb_jwt_mint(key, ISS, AUD, "sbx_1", &REQ, 0, now, err,
				sizeof(err)));
	/* every token is distinct */
	a = fb_jwt_mint(key, ISS, AUD, "sbx_1", &REQ, 60, now, err,
			sizeof(err));
	b = fb_jwt_mint(key, ISS, AUD, "sbx_1", &REQ, 60, now, err,
			sizeof(err));
	assert_string_not_equal(a, b);
	free(a);
	free(b);
	fb_jwt_key_free(key);
}

static void test_claims_escaped(void **state)
{
	struct fb_jwt_key *key = fb_jwt_key_create(err, sizeof(err));
	struct fb_jwt_request req = REQ;
	char *token, *claims;

	(void)state;
	token = fb_jwt_mint(key, ISS, "https://x.example/\",\"aud\":\"evil",
			    "sb\"x\n\\\x01", &REQ, 60, 1000, err, sizeof(err));
	assert_non_null(token);
	claims = part(token, 1);
	assert_non_null(strstr(claims,
		"\"aud\":\"https://x.example/\\\",\\\"aud\\\":\\\"evil\","));
	assert_non_null(strstr(claims, "\"sandbox_id\":\"sb\\\"x\\n\\\\\\u0001\""));
	free(claims);
	free(token);
	assert_null(fb_jwt_mint(key, ISS, AUD, "bad\xff", &REQ, 60, 1000, err,
				sizeof(err)));
	assert_non_null(strstr(err, "sandbox_id is not valid UTF-8"));
	assert_null(fb_jwt_mint(key, ISS, AUD, "\xc0\xaf", &REQ, 60, 1000, err,
				sizeof(err)));
	assert_null(fb_jwt_mint(key, "", AUD, "s", &REQ, 60, 1000, err,
				sizeof(err)));
	assert_non_null(strstr(err, "iss is empty"));
	token = fb_jwt_mint(key, ISS, AUD, "sandbox-\xc3\xa9", &REQ, 60, 1000, err,
			    sizeof(err));
	assert_non_null(token);
	free(token);
	/* a request without a query has an empty one; no method is an error */
	req.query = "";
	token = fb_jwt_mint(key, ISS, AUD, "s", &req, 60, 1000, err,
			    sizeof(err));
	assert_non_null(token);
	claims = part(token, 1);
	assert_non_null(strstr(claims, "\"query\":\"\""));
	free(claims);
	free(token);
	req.method = "";
	assert_null(fb_jwt_mint(key, ISS, AUD, "s", &req, 60, 1000, err,
				sizeof(err)));
	assert_non_null(strstr(err, "htm is empty"));
	fb_jwt_key_free(key);
}

/*
 * RFC 7517 A.2's example P-256 key.  Its thumbprint is the value other
 * JOSE libraries publish for this key; the test also recomputes it with
 * the openssl command line over the RFC 7638 canonical JSON.
 */
static const char *RFC_D = "870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE";
static const char *RFC_X = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4";
static const char *RFC_Y = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM";
static const char *RFC_KID = "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s";

static void write_rfc_key(const char *path)
{
	unsigned char d[32], point[65] = { 0x04 };
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pkey = NULL;
	OSSL_PARAM *params;
	BIGNUM *priv;
	FILE *f;

	assert_int_equal(unb64url(RFC_D, strlen(RFC_D), d), 32);
	assert_int_equal(unb64url(RFC_X, strlen(RFC_X), point + 1), 32);
	assert_int_equal(unb64url(RFC_Y, strlen(RFC_Y), point + 33), 32);
	priv = BN_bin2bn(d, 32, NULL);
	OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
					"P-256", 0);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv);
	OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
					 sizeof(point));
	params = OSSL_PARAM_BLD_to_param(bld);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params),
			 1);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fchmod(fileno(f), 0600), 0);
	assert_true(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL));
	fclose(f);
	EVP_PKEY_free(pkey);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(priv);
}

static void test_kid_is_rfc7638_thumbprint(void **state)
{
	char dir[] = "/tmp/fb-test-jwt.XXXXXX", path[64], cmd[512], out[64] = "";
	struct fb_jwt_key *key;
	char *jwks, *x;
	FILE *p;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/rfc.key", dir);
	write_rfc_key(path);
	key = fb_jwt_key_load(path, err, sizeof(err));
	if (!key)
		fail_msg("fb_jwt_key_load: %s", err);
	assert_string_equal(fb_jwt_key_id(key), RFC_KID);
	jwks = fb_jwks_json(key);
	x = json_str(jwks, "x");
	assert_string_equal(x, RFC_X);
	free(x);
	free(jwks);

	snprintf(cmd, sizeof(cmd),
		 "printf '%%s' '{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\","
		 "\"y\":\"%s\"}' | openssl dgst -sha256 -binary | base64 | "
		 "tr '+/' '-_' | tr -d '=\\n'", RFC_X, RFC_Y);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, sizeof(out), p));
	assert_int_equal(pclose(p), 0);
	assert_string_equal(out, RFC_KID);

	unlink(path);
	rmdir(dir);
	fb_jwt_key_free(key);
}

static void test_key_file(void **state)
{
	char dir[] = "/tmp/fb-test-jwt.XXXXXX", path[64];
	struct fb_jwt_key *key = fb_jwt_key_create(err, sizeof(err)), *back;
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/jwt.key", dir);
	assert_int_equal(fb_jwt_key_save(key, path, false, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(fb_jwt_key_save(key, path, false, err, sizeof(err)), -1);
	back = fb_jwt_key_load(path, err, sizeof(err));
	assert_non_null(back);
	assert_string_equal(fb_jwt_key_id(back), fb_jwt_key_id(key));
	fb_jwt_key_free(back);
	assert_int_equal(chmod(path, 0640), 0);
	assert_null(fb_jwt_key_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, "0640"));
	unlink(path);
	assert_null(fb_jwt_key_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	rmdir(dir);
	fb_jwt_key_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_verifies_with_published_key),
		cmocka_unit_test(test_tampering_fails),
		cmocka_unit_test(test_lifetime_bounded),
		cmocka_unit_test(test_claims_escaped),
		cmocka_unit_test(test_kid_is_rfc7638_thumbprint),
		cmocka_unit_test(test_key_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
