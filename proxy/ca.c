/* ca.c — the sandbox CA: create, load, save, reissue; leaf minting and
 * the LRU cache of ready server contexts. */
#include "proxy/ca.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "policy/policy.h"
#include "proxy/pemfile.h"

#define NAME_MAX_LEN 253
#define NO_NAMES_SUBTREE "invalid"

/* A circular list through a sentinel: sentinel.next is the most
 * recently used leaf, sentinel.prev the least. */
struct lru_node {
	struct lru_node *next, *prev;
};

/* A cached leaf.  `node` first, so a list node is its leaf. */

struct leaf {
	struct lru_node node;
	struct leaf *chain; /* next in the hash bucket */
	SSL_CTX *ctx;
	time_t expires;
	char name[];
};

struct fb_ca {
	EVP_PKEY *key;
	X509 *cert;
	long lifetime;
	time_t not_after;

	/* Permitted dNSName subtrees, read back from the certificate so the
	 * guard and the guest's verifier judge by the same list. */
	char **subtrees;
	size_t nsubtrees;
	bool any_name; /* no dNSName constraint (a brokered "*") */

	/* Every leaf's key, made by the first mint: making it needs the
	 * random generator, which a proxy that never brokers leaves unset. */
	EVP_PKEY *leaf_key;

	struct leaf **buckets; /* nbuckets is a power of two */
	size_t nbuckets, capacity;
	uint32_t seed; /* random: a brokered wildcard lets the guest pick names */
	struct lru_node lru;
	struct fb_ca_stats stats;
};

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

/*
 * A normalised host name, or with `pattern` a policy key whose labels may
 * also be "*".  The caller normalised already; this only refuses what a
 * certificate must never carry.
 */
static const char *check_name(const char *s, bool pattern)
{
	size_t len = strlen(s), label = 0;
	bool digits_only = true;

	if (len == 0)
		return "empty name";
	if (len > NAME_MAX_LEN)
		return "longer than 253 octets";
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (label == 0)
				return "empty label";
			if (s[i - 1] == '-')
				return "label ends with '-'";
			if (c == '\0')
				break;
			label = 0;
			digits_only = true;
			continue;
		}
		if (c == '*' && pattern && label == 0 &&
		    (s[i + 1] == '.' || s[i + 1] == '\0')) {
			label = 1;
			digits_only = false;
			continue;
		}
		if (c >= '0' && c <= '9') {
			label++;
		} else if ((c >= 'a' && c <= 'z') || (c == '-' && label > 0)) {
			label++;
			digits_only = false;
		} else {
			return "not a normalised host name (lower-case letters, "
			       "digits, '-' and '.' only)";
		}
		if (label > 63)
			return "label longer than 63 octets";
	}
	if (digits_only)
		return "looks like an IP address, not a name";
	return NULL;
}

/* The dNSName subtree of a brokered key: what is right of its last "*"
 * label ("" when the key ends in "*": no constraint can cover it). */
static const char *subtree_of(const char *pattern)
{
	const char *star = strrchr(pattern, '*');

	if (!star)
		return pattern;
	return star[1] == '.' ? star + 2 : "";
}

/* `name` equals `base` or lies under it. */
static bool in_subtree(const char *name, const char *base)
{
	size_t n = strlen(name), b = strlen(base);

	if (n < b || strcmp(name + n - b, base) != 0)
		return false;
	return n == b || name[n - b - 1] == '.';
}

bool fb_ca_permits(const struct fb_ca *ca, const char *name)
{
	if (check_name(name, false))
		return false;
	if (ca->any_name)
		return true;
	for (size_t i = 0; i < ca->nsubtrees; i++)
		if (in_subtree(name, ca->subtrees[i]))
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* Certificate building blocks                                         */
/* ------------------------------------------------------------------ */

/* A random positive 128-bit serial number (RFC 5280: at most 20 octets). */
static int set_random_serial(X509 *cert)
{
	unsigned char raw[16];
	BIGNUM *bn;
	int ok;

	do {
		if (RAND_bytes(raw, sizeof(raw)) != 1)
			return 0;
	} while (raw[0] == 0 && raw[1] == 0); /* keep it near 128 bits */
	bn = BN_bin2bn(raw, sizeof(raw), NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
	BN_free(bn);
	return ok;
}

static int set_validity(X509 *cert, time_t from, time_t until)
{
	return ASN1_TIME_set(X509_getm_notBefore(cert), from) &&
	       ASN1_TIME_set(X509_getm_notAfter(cert), until);
}

/* An extension from OpenSSL's fixed-syntax text ("critical,CA:TRUE"): only
 * constant strings go through here, never names. */
static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	ok = ext && X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

static GENERAL_NAME *dns_name(const char *name)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();

	if (!gn || !s || !ASN1_STRING_set(s, name, (int)strlen(name))) {
		GENERAL_NAME_free(gn);
		ASN1_IA5STRING_free(s);
		return NULL;
	}
	GENERAL_NAME_set0_value(gn, GEN_DNS, s);
	return gn;
}

/* An iPAddress subtree covering a whole family: address and mask zero. */
static GENERAL_NAME *ip_everything(int octets)
{
	static const unsigned char zero[32];
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_OCTET_STRING *s = ASN1_OCTET_STRING_new();

	if (!gn || !s || !ASN1_OCTET_STRING_set(s, zero, 2 * octets)) {
		GENERAL_NAME_free(gn);
		ASN1_OCTET_STRING_free(s);
		return NULL;
	}
	GENERAL_NAME_set0_value(gn, GEN_IPADD, s);
	return gn;
}

static int push_subtree(STACK_OF(GENERAL_SUBTREE) **sk, GENERAL_NAME *gn)
{
	GENERAL_SUBTREE *st;

	if (!gn)
		return 0;
	if (!*sk && !(*sk = sk_GENERAL_SUBTREE_new_null())) {
		GENERAL_NAME_free(gn);
		return 0;
	}
	st = GENERAL_SUBTREE_new();
	if (!st) {
		GENERAL_NAME_free(gn);
		return 0;
	}
	GENERAL_NAME_free(st->base);
	st->base = gn;
	if (!sk_GENERAL_SUBTREE_push(*sk, st)) {
		GENERAL_SUBTREE_free(st);
		return 0;
	}
	return 1;
}

/* The permitted subtrees for `names`, each once, none inside another. */
static int add_permitted(NAME_CONSTRAINTS *nc, const char *const *names,
			 size_t n)
{
	const char **bases = calloc(n ? n : 1, sizeof(*bases));
	size_t nbases = 0;
	int ok = 1;

	if (!bases)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const char *b = subtree_of(names[i]);
		size_t j, kept = 0;

		if (*b == '\0') { /* "*": every name; no dNSName subtree */
			nbases = 0;
			goto out;
		}
		for (j = 0; j < nbases; j++)
			if (in_subtree(b, bases[j]))
				break;
		if (j < nbases)
			continue;
		for (j = 0; j < nbases; j++) /* drop those b now covers */
			if (!in_subtree(bases[j], b))
				bases[kept++] = bases[j];
		nbases = kept;
		bases[nbases++] = b;
	}
	if (n == 0)
		bases[nbases++] = NO_NAMES_SUBTREE;
	for (size_t i = 0; i < nbases && ok; i++)
		ok = push_subtree(&nc->permittedSubtrees, dns_name(bases[i]));
out:
	free(bases);
	return ok;
}

static int add_name_constraints(X509 *cert, const char *const *names,
				size_t n)
{
	NAME_CONSTRAINTS *nc = NAME_CONSTRAINTS_new();
	int ok = nc && add_permitted(nc, names, n) &&
		 push_subtree(&nc->excludedSubtrees, ip_everything(4)) &&
		 push_subtree(&nc->excludedSubtrees, ip_everything(16)) &&
		 X509_add1_ext_i2d(cert, NID_name_constraints, nc, 1,
				   X509V3_ADD_DEFAULT) == 1;

	NAME_CONSTRAINTS_free(nc);
	return ok;
}

static int check_names(const char *const *names, size_t n, char *err,
		       size_t errsize)
{
	for (size_t i = 0; i < n; i++) {
		const char *why = check_name(names[i], true);

		if (why) {
			snprintf(err, errsize, "brokered name \"%s\": %s",
				 names[i], why);
			return -1;
		}
	}
	return 0;
}

/* A self-signed CA certificate for `key`. */
static X509 *build_ca_cert(EVP_PKEY *key, const X509_NAME *subject,
			   const char *const *names, size_t n, long lifetime,
			   char *err, size_t errsize)
{
	time_t now = time(NULL);
	X509 *cert = X509_new();

	if (!cert || !X509_set_version(cert, X509_VERSION_3) ||
	    !set_random_serial(cert) ||
	    !X509_set_subject_name(cert, subject) ||
	    !X509_set_issuer_name(cert, subject) ||
	    !set_validity(cert, now - FB_CA_SKEW, now + lifetime) ||
	    !X509_set_pubkey(cert, key) ||
	    !add_ext(cert, cert, NID_basic_constraints,
		     "critical,CA:TRUE,pathlen:0") ||
	    !add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !add_ext(cert, cert, NID_subject_key_identifier, "hash") ||
	    !add_name_constraints(cert, names, n) ||
	    !X509_sign(cert, key, EVP_sha256())) {
		X509_free(cert);
		fb_ssl_error(err, errsize, "cannot build the CA certificate");
		return NULL;
	}
	return cert;
}

/* ------------------------------------------------------------------ */
/* The CA object                                                       */
/* ------------------------------------------------------------------ */

static time_t asn1_to_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (!ASN1_TIME_to_tm(t, &tm))
		return 0;
	return timegm(&tm);
}

static void free_subtrees(struct fb_ca *ca)
{
	for (size_t i = 0; i < ca->nsubtrees; i++)
		free(ca->subtrees[i]);
	free(ca->subtrees);
	ca->subtrees = NULL;
	ca->nsubtrees = 0;
}

/* Read the permitted dNSName subtrees of `cert` into `ca`.  A certificate
 * without nameConstraints is refused: firebreak never holds a CA that
 * could vouch for any name. */
static int read_subtrees(struct fb_ca *ca, X509 *cert, const char *what,
			 char *err, size_t errsize)
{
	int crit = -1;
	NAME_CONSTRAINTS *nc = X509_get_ext_d2i(cert, NID_name_constraints,
						&crit, NULL);
	int n = nc && nc->permittedSubtrees ?
			sk_GENERAL_SUBTREE_num(nc->permittedSubtrees) : 0;
	char **v = calloc(n ? (size_t)n : 1, sizeof(*v));
	size_t nv = 0;

	if (!nc || crit != 1 || !v) {
		snprintf(err, errsize, "%s: %s", what,
			 v ? "CA certificate has no critical nameConstraints"
			   : "out of memory");
		goto fail;
	}
	for (int i = 0; i < n; i++) {
		GENERAL_NAME *gn = sk_GENERAL_SUBTREE_value(nc->permittedSubtrees,
							    i)->base;
		const ASN1_IA5STRING *s;

		if (gn->type != GEN_DNS)
			continue;
		s = gn->d.dNSName;
		v[nv] = strndup((const char *)ASN1_STRING_get0_data(s),
				(size_t)ASN1_STRING_length(s));
		if (!v[nv++]) {
			snprintf(err, errsize, "%s: out of memory", what);
			goto fail;
		}
	}
	NAME_CONSTRAINTS_free(nc);
	free_subtrees(ca);
	ca->subtrees = v;
	ca->nsubtrees = nv;
	ca->any_name = nv == 0;
	return 0;
fail:
	for (size_t i = 0; i < nv; i++)
		free(v[i]);
	free(v);
	NAME_CONSTRAINTS_free(nc);
	return -1;
}

/* Make `cert` the CA's certificate (taking it) once its constraints read
 * back. */
static int adopt_cert(struct fb_ca *ca, X509 *cert, const char *what,
		      char *err, size_t errsize)
{
	if (read_subtrees(ca, cert, what, err, errsize) < 0) {
		X509_free(cert);
		return -1;
	}
	X509_free(ca->cert);
	ca->cert = cert;
	ca->not_after = asn1_to_time(X509_get0_notAfter(cert));
	return 0;
}

/* A CA object around `key`, which it takes only on success. */
static struct fb_ca *ca_new(EVP_PKEY *key, long lifetime, char *err,
			    size_t errsize)
{
	struct fb_ca *ca = calloc(1, sizeof(*ca));

	if (!ca) {
		snprintf(err, errsize, "out of memory");
		return NULL;
	}
	ca->lifetime = lifetime;
	ca->lru.next = ca->lru.prev = &ca->lru;
	/* getrandom, not RAND_bytes: a proxy that never brokers leaves
	 * OpenSSL's generator unset (see leaf_key). */
	if (getrandom(&ca->seed, sizeof(ca->seed), 0) != sizeof(ca->seed)) {
		snprintf(err, errsize, "getrandom: %s", strerror(errno));
		free(ca);
		return NULL;
	}
	if (fb_ca_set_cache_size(ca, FB_CA_CACHE_SIZE, err, errsize) < 0) {
		fb_ca_free(ca);
		return NULL;
	}
	ca->key = key;
	return ca;
}

struct fb_ca *fb_ca_create(const char *sandbox_id, const char *const *names,
			   size_t n, long lifetime, char *err, size_t errsize)
{
	char cn[65];
	X509_NAME *subject = NULL;
	struct fb_ca *ca = NULL;
	EVP_PKEY *key;
	X509 *cert;

	if (lifetime == 0)
		lifetime = FB_CA_LIFETIME;
	if (lifetime < 0) {
		snprintf(err, errsize, "CA lifetime %ld s is not positive",
			 lifetime);
		return NULL;
	}
	/* The CN is at most 64 characters (RFC 5280 ub-common-name). */
	if (snprintf(cn, sizeof(cn), "firebreak sandbox CA %s", sandbox_id) >=
	    (int)sizeof(cn)) {
		snprintf(err, errsize, "sandbox id \"%s\" too long for the CA "
			 "name (at most 43 characters)", sandbox_id);
		return NULL;
	}
	if (check_names(names, n, err, errsize) < 0)
		return NULL;
	key = EVP_EC_gen("P-256");
	if (!key) {
		fb_ssl_error(err, errsize, "cannot generate the CA key");
		return NULL;
	}
	ca = ca_new(key, lifetime, err, errsize);
	if (!ca)
		goto fail_key;
	subject = X509_NAME_new();
	if (!subject || !X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
			(const unsigned char *)cn, -1, -1, 0)) {
		fb_ssl_error(err, errsize, "CA name \"%s\"", cn);
		goto fail;
	}
	cert = build_ca_cert(key, subject, names, n, lifetime, err, errsize);
	if (!cert || adopt_cert(ca, cert, "new CA", err, errsize) < 0)
		goto fail;
	X509_NAME_free(subject);
	return ca;
fail_key:
	EVP_PKEY_free(key);
fail:
	X509_NAME_free(subject);
	fb_ca_free(ca);
	return NULL;
}

static void format_time(const ASN1_TIME *t, char *buf, size_t size)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int len = 0;

	if (bio && ASN1_TIME_print(bio, t))
		len = BIO_read(bio, buf, (int)size - 1);
	buf[len > 0 ? len : 0] = '\0';
	BIO_free(bio);
}

/* 0 when `cert` can serve as a sandbox CA with `key`; else -1 and why. */
static int check_ca(X509 *cert, EVP_PKEY *key, const char *cert_path,
		    const char *key_path, char *err, size_t errsize)
{
	const ASN1_TIME *nb = X509_get0_notBefore(cert);
	const ASN1_TIME *na = X509_get0_notAfter(cert);
	char when[64];

	if (X509_check_ca(cert) != 1) {
		snprintf(err, errsize, "%s: not a CA certificate "
			 "(basicConstraints CA:TRUE missing)", cert_path);
	} else if (!(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN)) {
		snprintf(err, errsize, "%s: CA certificate may not sign "
			 "certificates (keyUsage keyCertSign missing)", cert_path);
	} else if (X509_cmp_current_time(nb) > 0) {
		format_time(nb, when, sizeof(when));
		snprintf(err, errsize, "%s: CA certificate not valid before %s",
			 cert_path, when);
	} else if (X509_cmp_current_time(na) < 0) {
		format_time(na, when, sizeof(when));
		snprintf(err, errsize, "%s: CA certificate expired at %s",
			 cert_path, when);
	} else if (X509_check_private_key(cert, key) != 1) {
		snprintf(err, errsize, "%s: key does not match the CA "
			 "certificate %s", key_path, cert_path);
	} else if (X509_verify(cert, key) != 1) {
		snprintf(err, errsize, "%s: CA certificate is not self-signed "
			 "by its key %s", cert_path, key_path);
	} else {
		return 0;
	}
	ERR_clear_error();
	return -1;
}

struct fb_ca *fb_ca_load(const char *cert_path, const char *key_path,
			 char *err, size_t errsize)
{
	struct fb_ca *ca;
	EVP_PKEY *key;
	X509 *cert;
	long lifetime;

	cert = fb_pem_load_cert(cert_path, err, errsize);
	if (!cert)
		return NULL;
	key = fb_pem_load_key(key_path, err, errsize);
	if (!key || check_ca(cert, key, cert_path, key_path, err, errsize) < 0)
		goto fail;
	/* A reissue keeps the period this certificate was made with. */
	lifetime = (long)(asn1_to_time(X509_get0_notAfter(cert)) -
			  asn1_to_time(X509_get0_notBefore(cert))) - FB_CA_SKEW;
	ca = ca_new(key, lifetime > 0 ? lifetime : FB_CA_LIFETIME, err, errsize);
	if (!ca)
		goto fail;
	if (adopt_cert(ca, cert, cert_path, err, errsize) < 0) {
		fb_ca_free(ca);
		return NULL;
	}
	return ca;
fail:
	EVP_PKEY_free(key);
	X509_free(cert);
	return NULL;
}

int fb_ca_save(const struct fb_ca *ca, const char *cert_path,
	       const char *key_path, bool replace, char *err, size_t errsize)
{
	if (fb_pem_save_key(ca->key, key_path, replace, err, errsize) < 0)
		return -1;
	if (fb_pem_save_cert(ca->cert, cert_path, replace, err, errsize) < 0) {
		/* A key created just now without its certificate would only
		 * block the next save; a replaced one cannot be put back. */
		if (!replace)
			unlink(key_path);
		return -1;
	}
	return 0;
}

static void cache_flush(struct fb_ca *ca);

int fb_ca_reissue(struct fb_ca *ca, const char *const *names, size_t n,
		  char *err, size_t errsize)
{
	X509 *cert;

	if (check_names(names, n, err, errsize) < 0)
		return -1;
	cert = build_ca_cert(ca->key, X509_get_subject_name(ca->cert), names, n,
			     ca->lifetime, err, errsize);
	if (!cert || adopt_cert(ca, cert, "reissued CA", err, errsize) < 0)
		return -1;
	cache_flush(ca);
	return 0;
}

void fb_ca_free(struct fb_ca *ca)
{
	if (!ca)
		return;
	cache_flush(ca);
	free(ca->buckets);
	free_subtrees(ca);
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	EVP_PKEY_free(ca->leaf_key);
	free(ca);
}

X509 *fb_ca_cert(const struct fb_ca *ca)
{
	return ca->cert;
}

/* ------------------------------------------------------------------ */
/* Leaves                                                              */
/* ------------------------------------------------------------------ */

static X509 *mint(struct fb_ca *ca, const char *name, time_t now, char *err,
		  size_t errsize)
{
	X509 *cert = X509_new();
	X509_NAME *subject = X509_NAME_new();
	GENERAL_NAMES *san = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = dns_name(name);
	time_t until = now + FB_CA_LEAF_LIFETIME;
	int ok;

	if (until > ca->not_after)
		until = ca->not_after;
	ok = cert && subject && san && gn && sk_GENERAL_NAME_push(san, gn);
	if (!ok)
		GENERAL_NAME_free(gn);
	ok = ok && X509_set_version(cert, X509_VERSION_3) &&
	     set_random_serial(cert) &&
	     X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
					(const unsigned char *)name, -1, -1, 0) &&
	     X509_set_subject_name(cert, subject) &&
	     X509_set_issuer_name(cert, X509_get_subject_name(ca->cert)) &&
	     set_validity(cert, now - FB_CA_SKEW, until) &&
	     X509_set_pubkey(cert, ca->leaf_key) &&
	     add_ext(cert, ca->cert, NID_basic_constraints, "critical,CA:FALSE") &&
	     add_ext(cert, ca->cert, NID_key_usage, "critical,digitalSignature") &&
	     add_ext(cert, ca->cert, NID_ext_key_usage, "serverAuth") &&
	     add_ext(cert, ca->cert, NID_authority_key_identifier, "keyid:always") &&
	     X509_add1_ext_i2d(cert, NID_subject_alt_name, san, 0,
			       X509V3_ADD_DEFAULT) == 1 &&
	     X509_sign(cert, ca->key, EVP_sha256());
	GENERAL_NAMES_free(san);
	X509_NAME_free(subject);
	if (!ok) {
		X509_free(cert);
		fb_ssl_error(err, errsize, "cannot mint a certificate for \"%s\"",
			     name);
		return NULL;
	}
	ca->stats.minted++;
	return cert;
}

/* HTTP/1.1 first; HTTP/1.0 for a client that offers nothing newer
 * (curl --http1.0). */
static const unsigned char alpn_http1[] = "\x08http/1.1\x08http/1.0";

/* Brokering parses HTTP/1.x only: anything else (h2) must not be
 * negotiated, or it would pass uninspected. */
static int select_http1(SSL *ssl, const unsigned char **out,
			 unsigned char *outlen, const unsigned char *in,
			 unsigned int inlen, void *arg)
{
	unsigned char *chosen;

	(void)ssl, (void)arg;
	if (SSL_select_next_proto(&chosen, outlen, alpn_http1,
				  sizeof(alpn_http1) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
	*out = chosen;
	return SSL_TLSEXT_ERR_OK;
}

/* The handshake's SNI must be the name the proxy peeked and minted for. */
static int servername_is_leaf(SSL *ssl, int *alert, void *arg)
{
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	X509 *leaf = SSL_CTX_get0_certificate(SSL_get_SSL_CTX(ssl));

	(void)arg;
	if (sni && leaf &&
	    X509_check_host(leaf, sni, 0, X509_CHECK_FLAG_NO_WILDCARDS,
			    NULL) == 1)
		return SSL_TLSEXT_ERR_OK;
	*alert = SSL_AD_UNRECOGNIZED_NAME;
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static SSL_CTX *server_ctx(struct fb_ca *ca, X509 *cert, char *err,
			   size_t errsize)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    SSL_CTX_use_certificate(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, ca->leaf_key) != 1) {
		SSL_CTX_free(ctx);
		fb_ssl_error(err, errsize, "cannot set up a TLS server context");
		return NULL;
	}
	/* Each connection is a full handshake: nothing resumed across a
	 * reissue or into another sandbox.  TLS 1.3 would still send two
	 * tickets after every handshake (stateful ones under NO_TICKET),
	 * each a record to build and send, for sessions nobody can resume. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
				 SSL_OP_NO_COMPRESSION |
				 SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_ciphersuites(ctx, FB_TLS13_SUITES);
	/* The guest trusts the CA itself: the leaf goes alone, with no chain
	 * built from an empty store on every handshake. */
	SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
	SSL_CTX_set_alpn_select_cb(ctx, select_http1, NULL);
	SSL_CTX_set_tlsext_servername_callback(ctx, servername_is_leaf);
	return ctx;
}

/* ------------------------------------------------------------------ */
/* The cache: a hash table of leaves threaded on an LRU list           */
/* ------------------------------------------------------------------ */

static struct leaf **bucket_of(const struct fb_ca *ca, const char *name)
{
	return &ca->buckets[fb_name_hash(ca->seed, name, strlen(name)) &
			    (ca->nbuckets - 1)];
}

static struct leaf *cache_find(const struct fb_ca *ca, const char *name)
{
	struct leaf *l = *bucket_of(ca, name);

	while (l && strcmp(l->name, name) != 0)
		l = l->chain;
	return l;
}

static void lru_unlink(struct lru_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
}

static void lru_push_newest(struct fb_ca *ca, struct lru_node *n)
{
	n->next = ca->lru.next;
	n->prev = &ca->lru;
	ca->lru.next->prev = n;
	ca->lru.next = n;
}

static void cache_drop(struct fb_ca *ca, struct leaf *l)
{
	struct leaf **p = bucket_of(ca, l->name);

	while (*p != l)
		p = &(*p)->chain;
	*p = l->chain;
	lru_unlink(&l->node);
	SSL_CTX_free(l->ctx);
	free(l);
	ca->stats.cached--;
}

static void cache_flush(struct fb_ca *ca)
{
	while (ca->lru.prev != &ca->lru)
		cache_drop(ca, (struct leaf *)ca->lru.prev);
}

int fb_ca_set_cache_size(struct fb_ca *ca, size_t capacity, char *err,
			 size_t errsize)
{
	size_t nbuckets = 16;
	struct leaf **buckets;

	if (capacity == 0)
		capacity = FB_CA_CACHE_SIZE;
	while (nbuckets < capacity && nbuckets < ((size_t)1 << 20))
		nbuckets <<= 1;
	buckets = calloc(nbuckets, sizeof(*buckets));
	if (!buckets) {
		snprintf(err, errsize, "leaf cache of %zu: out of memory",
			 capacity);
		return -1;
	}
	cache_flush(ca);
	free(ca->buckets);
	ca->buckets = buckets;
	ca->nbuckets = nbuckets;
	ca->capacity = capacity;
	return 0;
}

bool fb_ca_cached(const struct fb_ca *ca, const char *name)
{
	const struct leaf *l = cache_find(ca, name);

	return l && l->expires - time(NULL) > FB_CA_LEAF_RENEW;
}

SSL_CTX *fb_ca_leaf(struct fb_ca *ca, const char *name, char *err,
		    size_t errsize)
{
	time_t now = time(NULL);
	size_t len = strlen(name);
	struct leaf *l;
	X509 *cert;

	l = cache_find(ca, name);
	if (l && l->expires - now > FB_CA_LEAF_RENEW) {
		lru_unlink(&l->node);
		lru_push_newest(ca, &l->node);
		ca->stats.hits++;
		return l->ctx;
	}
	if (l)
		cache_drop(ca, l);
	if (!fb_ca_permits(ca, name)) {
		snprintf(err, errsize, "refusing to mint a certificate for \"%s\": "
			 "not a name this CA may vouch for", name);
		return NULL;
	}
	if (now >= ca->not_after) {
		char when[64];

		format_time(X509_get0_notAfter(ca->cert), when, sizeof(when));
		snprintf(err, errsize, "cannot mint for \"%s\": the CA expired "
			 "at %s; reissue it", name, when);
		return NULL;
	}
	if (!ca->leaf_key && !(ca->leaf_key = EVP_EC_gen("P-256"))) {
		fb_ssl_error(err, errsize, "cannot generate the leaf key");
		return NULL;
	}
	l = malloc(sizeof(*l) + len + 1);
	cert = mint(ca, name, now, err, errsize);
	if (!l || !cert) {
		if (!l)
			snprintf(err, errsize, "out of memory");
		free(l);
		X509_free(cert);
		return NULL;
	}
	l->ctx = server_ctx(ca, cert, err, errsize);
	l->expires = asn1_to_time(X509_get0_notAfter(cert));
	X509_free(cert);
	if (!l->ctx) {
		free(l);
		return NULL;
	}
	memcpy(l->name, name, len + 1);
	if (ca->stats.cached == ca->capacity) {
		cache_drop(ca, (struct leaf *)ca->lru.prev);
		ca->stats.evicted++;
	}
	l->chain = *bucket_of(ca, name);
	*bucket_of(ca, name) = l;
	lru_push_newest(ca, &l->node);
	ca->stats.cached++;
	return l->ctx;
}

void fb_ca_stats(const struct fb_ca *ca, struct fb_ca_stats *st)
{
	*st = ca->stats;
}
