/* test_ca.c — the sandbox CA: chains verify, constraints bite, files are
 * guarded, real handshakes negotiate only http/1.1, the cache is LRU. */
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

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "proxy/ca.h"
#include "tests/lib/tlspair.h"

static char err[512];

/* ---- helpers -------------------------------------------------------- */

struct dir {
	char path[64];
};

static void dir_make(struct dir *d)
{
	strcpy(d->path, "/tmp/fb-test-ca.XXXXXX");
	assert_non_null(mkdtemp(d->path));
}

static const char *in_dir(const struct dir *d, const char *name)
{
	static char buf[4][128];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", d->path, name);
	return buf[i];
}

static void dir_remove(struct dir *d)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
	assert_int_equal(system(cmd), 0);
}

static struct fb_ca *make_ca(const char *const *names, size_t n)
{
	struct fb_ca *ca = fb_ca_create("t1", names, n, 0, err, sizeof(err));

	if (!ca)
		fail_msg("fb_ca_create: %s", err);
	return ca;
}

static X509 *leaf_cert(struct fb_ca *ca, const char *name)
{
	SSL_CTX *ctx = fb_ca_leaf(ca, name, err, sizeof(err));

	if (!ctx)
		fail_msg("fb_ca_leaf(%s): %s", name, err);
	return SSL_CTX_get0_certificate(ctx);
}

/* X509_V_OK or the verifier's error for `leaf` under `root` as a TLS
 * server certificate for `host` (NULL: any name). */
static int verify(X509 *root, X509 *leaf, const char *host)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc;

	assert_true(X509_STORE_add_cert(store, root));
	assert_true(X509_STORE_CTX_init(ctx, store, leaf, NULL));
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
	if (host)
		assert_true(X509_VERIFY_PARAM_set1_host(
			X509_STORE_CTX_get0_param(ctx), host, 0));
	rc = X509_verify_cert(ctx) == 1 ? X509_V_OK :
					   X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}

static void write_pem(const char *path, X509 *cert)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(PEM_write_X509(f, cert));
	fclose(f);
}

static EVP_PKEY *read_key(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	assert_non_null(f);
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(k);
	return k;
}

/*
 * A leaf signed by the CA's key directly, without fb_ca_leaf's guard:
 * what a stolen CA key could produce.  `dns` or `ip` becomes the SAN.
 */
static X509 *forge_leaf(X509 *ca_cert, EVP_PKEY *ca_key, const char *san)
{
	X509 *c = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	assert_true(X509_set_version(c, X509_VERSION_3));
	ASN1_INTEGER_set(X509_get_serialNumber(c), 4242);
	X509_set_issuer_name(c, X509_get_subject_name(ca_cert));
	X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "O", MBSTRING_ASC,
				   (const unsigned char *)"forged", -1, -1, 0);
	X509_gmtime_adj(X509_getm_notBefore(c), -60);
	X509_gmtime_adj(X509_getm_notAfter(c), 3600);
	X509_set_pubkey(c, ca_key);
	X509V3_set_ctx(&v3, ca_cert, c, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	assert_non_null(ext);
	X509_add_ext(c, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(c, ca_key, EVP_sha256()));
	return c;
}

/* Whether `reason` is anywhere in the error queue; the queue is cleared. */
static bool queue_has(int reason)
{
	unsigned long e;
	bool found = false;

	while ((e = ERR_get_error()))
		if (ERR_GET_REASON(e) == reason)
			found = true;
	return found;
}

/* ---- chains and constraints ----------------------------------------- */

static const char *const brokered[] = {
	"api.example.com", "*.svc.example.org", "www.*.example.net",
};

static void test_leaf_chains_to_ca(void **state)
{
	struct fb_ca *ca = make_ca(brokered, 3);
	X509 *root = fb_ca_cert(ca), *leaf;

	(void)state;
	leaf = leaf_cert(ca, "api.example.com");
	assert_int_equal(verify(root, leaf, "api.example.com"), X509_V_OK);
	assert_int_equal(verify(root, leaf, "www.example.com"),
			 X509_V_ERR_HOSTNAME_MISMATCH);
	leaf = leaf_cert(ca, "a.b.svc.example.org");
	assert_int_equal(verify(root, leaf, "a.b.svc.example.org"), X509_V_OK);
	leaf = leaf_cert(ca, "www.shop.example.net");
	assert_int_equal(verify(root, leaf, "www.shop.example.net"), X509_V_OK);
	fb_ca_free(ca);
}

static void test_leaf_fields(void **state)
{
	struct fb_ca *ca = make_ca(brokered, 1);
	X509 *root = fb_ca_cert(ca);
	X509 *leaf = leaf_cert(ca, "api.example.com");
	GENERAL_NAMES *san = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL,
					      NULL);
	int pday, psec;

	(void)state;
	assert_non_null(san);
	assert_int_equal(sk_GENERAL_NAME_num(san), 1);
	assert_int_equal(sk_GENERAL_NAME_value(san, 0)->type, GEN_DNS);
	GENERAL_NAMES_free(san);
	assert_true(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER);
	assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_check_ca(leaf), 0);
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf),
					       X509_get0_subject_key_id(root)), 0);
	/* a few hours, never past the CA */
	assert_true(ASN1_TIME_diff(&pday, &psec, X509_get0_notBefore(leaf),
				   X509_get0_notAfter(leaf)));
	assert_int_equal(pday, 0);
	assert_true(psec <= FB_CA_LEAF_LIFETIME + FB_CA_SKEW);
	assert_true(ASN1_TIME_compare(X509_get0_notAfter(leaf),
				      X509_get0_notAfter(root)) <= 0);
	/* the CA itself: 24 h + skew, pathlen 0, a 128-bit-ish serial */
	assert_true(ASN1_TIME_diff(&pday, &psec, X509_get0_notBefore(root),
				   X509_get0_notAfter(root)));
	assert_int_equal(pday * 86400 + psec, FB_CA_LIFETIME + FB_CA_SKEW);
	assert_int_equal(X509_get_pathlen(root), 0);
	assert_true(X509_get_key_usage(root) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
	assert_true(ASN1_STRING_length(X509_get0_serialNumber(root)) >= 15);
	fb_ca_free(ca);
}

static void test_refuses_names_outside(void **state)
{
	struct fb_ca *ca = make_ca(brokered, 3);

	(void)state;
	assert_null(fb_ca_leaf(ca, "evil.com", err, sizeof(err)));
	assert_non_null(strstr(err, "refusing to mint"));
	assert_non_null(strstr(err, "evil.com"));
	assert_null(fb_ca_leaf(ca, "example.com", err, sizeof(err)));
	assert_null(fb_ca_leaf(ca, "API.example.com", err, sizeof(err)));
	assert_null(fb_ca_leaf(ca, "1.2.3.4", err, sizeof(err)));
	assert_null(fb_ca_leaf(ca, "", err, sizeof(err)));
	assert_null(fb_ca_leaf(ca, "*.svc.example.org", err, sizeof(err)));
	assert_false(fb_ca_permits(ca, "api.example.com."));
	assert_false(fb_ca_permits(ca, "xapi.example.com"));
	assert_true(fb_ca_permits(ca, "svc.example.org"));
	fb_ca_free(ca);
}

static void test_constraints_bite_without_guard(void **state)
{
	struct fb_ca *ca = make_ca(brokered, 1);
	struct dir d;
	EVP_PKEY *key;
	X509 *forged;

	(void)state;
	dir_make(&d);
	assert_int_equal(fb_ca_save(ca, in_dir(&d, "ca.pem"),
				    in_dir(&d, "ca.key"), false, err,
				    sizeof(err)), 0);
	key = read_key(in_dir(&d, "ca.key"));

	forged = forge_leaf(fb_ca_cert(ca), key, "DNS:evil.com");
	assert_int_equal(verify(fb_ca_cert(ca), forged, "evil.com"),
			 X509_V_ERR_PERMITTED_VIOLATION);
	X509_free(forged);
	forged = forge_leaf(fb_ca_cert(ca), key, "DNS:api.example.com.evil.com");
	assert_int_equal(verify(fb_ca_cert(ca), forged,
				"api.example.com.evil.com"),
			 X509_V_ERR_PERMITTED_VIOLATION);
	X509_free(forged);
	forged = forge_leaf(fb_ca_cert(ca), key, "IP:93.184.216.34");
	assert_int_equal(verify(fb_ca_cert(ca), forged, NULL),
			 X509_V_ERR_EXCLUDED_VIOLATION);
	X509_free(forged);
	forged = forge_leaf(fb_ca_cert(ca), key, "IP:2001:db8::1");
	assert_int_equal(verify(fb_ca_cert(ca), forged, NULL),
			 X509_V_ERR_EXCLUDED_VIOLATION);
	X509_free(forged);
	/* and the control: the same forgery for a permitted name passes */
	forged = forge_leaf(fb_ca_cert(ca), key, "DNS:api.example.com");
	assert_int_equal(verify(fb_ca_cert(ca), forged, "api.example.com"),
			 X509_V_OK);
	X509_free(forged);

	EVP_PKEY_free(key);
	dir_remove(&d);
	fb_ca_free(ca);
}

static void test_no_brokered_names_permit_nothing(void **state)
{
	struct fb_ca *ca = make_ca(NULL, 0);
	NAME_CONSTRAINTS *nc;
	const ASN1_IA5STRING *s;
	int crit;

	(void)state;
	nc = X509_get_ext_d2i(fb_ca_cert(ca), NID_name_constraints, &crit, NULL);
	assert_non_null(nc);
	assert_int_equal(crit, 1);
	assert_int_equal(sk_GENERAL_SUBTREE_num(nc->permittedSubtrees), 1);
	s = sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, 0)->base->d.dNSName;
	assert_string_equal((const char *)ASN1_STRING_get0_data(s), "invalid");
	assert_int_equal(sk_GENERAL_SUBTREE_num(nc->excludedSubtrees), 2);
	NAME_CONSTRAINTS_free(nc);
	assert_false(fb_ca_permits(ca, "example.com"));
	assert_null(fb_ca_leaf(ca, "example.com", err, sizeof(err)));
	fb_ca_free(ca);
}

static void test_catch_all_and_overlapping_subtrees(void **state)
{
	static const char *const all[] = { "api.example.com", "*" };
	static const char *const nested[] = {
		"api.example.com", "*.example.com", "a.example.com", "x.org",
	};
	struct fb_ca *ca = make_ca(all, 2);
	NAME_CONSTRAINTS *nc;
	X509 *leaf;

	(void)state;
	leaf = leaf_cert(ca, "anything.net");
	assert_int_equal(verify(fb_ca_cert(ca), leaf, "anything.net"), X509_V_OK);
	nc = X509_get_ext_d2i(fb_ca_cert(ca), NID_name_constraints, NULL, NULL);
	assert_null(nc->permittedSubtrees);
	assert_int_equal(sk_GENERAL_SUBTREE_num(nc->excludedSubtrees), 2);
	NAME_CONSTRAINTS_free(nc);
	fb_ca_free(ca);

	/* one subtree per covering name: example.com swallows its children */
	ca = make_ca(nested, 4);
	nc = X509_get_ext_d2i(fb_ca_cert(ca), NID_name_constraints, NULL, NULL);
	assert_int_equal(sk_GENERAL_SUBTREE_num(nc->permittedSubtrees), 2);
	NAME_CONSTRAINTS_free(nc);
	fb_ca_free(ca);
}

static void test_create_rejects_bad_input(void **state)
{
	static const char *const bad[][1] = {
		{ "Example.com" }, { "a..b" }, { "api*.example.com" },
		{ "10.0.0.1" }, { "exa mple.com" }, { "-a.com" }, { "a-.com" },
	};
	static const char *const ok[] = { "ok.com" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_null(fb_ca_create("t1", bad[i], 1, 0, err, sizeof(err)));
		assert_non_null(strstr(err, bad[i][0]));
	}
	assert_null(fb_ca_create("t1", ok, 1, -5, err, sizeof(err)));
	assert_null(fb_ca_create("a-sandbox-id-that-is-far-too-long-for-a-cn-1234",
				 ok, 1, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "too long"));
}

/* ---- files ---------------------------------------------------------- */

static void test_save_and_load(void **state)
{
	struct fb_ca *ca = make_ca(brokered, 3), *back;
	struct dir d;
	struct stat st;
	X509 *leaf;

	(void)state;
	dir_make(&d);
	assert_int_equal(fb_ca_save(ca, in_dir(&d, "ca.pem"),
				    in_dir(&d, "ca.key"), false, err,
				    sizeof(err)), 0);
	assert_int_equal(stat(in_dir(&d, "ca.key"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(in_dir(&d, "ca.pem"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);

	/* never silently over an existing key */
	assert_int_equal(fb_ca_save(ca, in_dir(&d, "ca.pem"),
				    in_dir(&d, "ca.key"), false, err,
				    sizeof(err)), -1);
	assert_non_null(strstr(err, "refusing to overwrite"));
	/* a failed save leaves no stray key behind */
	assert_int_equal(fb_ca_save(ca, in_dir(&d, "ca.pem"),
				    in_dir(&d, "new.key"), false, err,
				    sizeof(err)), -1);
	assert_int_equal(access(in_dir(&d, "new.key"), F_OK), -1);
	assert_int_equal(fb_ca_save(ca, in_dir(&d, "ca.pem"),
				    in_dir(&d, "ca.key"), true, err,
				    sizeof(err)), 0);
	assert_int_equal(stat(in_dir(&d, "ca.key"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* never through a symbolic link */
	assert_int_equal(symlink(in_dir(&d, "elsewhere"), in_dir(&d, "link.key")),
			 0);
	assert_int_equal(fb_ca_save(ca, in_dir(&d, "x.pem"),
				    in_dir(&d, "link.key"), false, err,
				    sizeof(err)), -1);
	assert_int_equal(access(in_dir(&d, "elsewhere"), F_OK), -1);

	back = fb_ca_load(in_dir(&d, "ca.pem"), in_dir(&d, "ca.key"), err,
			  sizeof(err));
	if (!back)
		fail_msg("fb_ca_load: %s", err);
	leaf = leaf_cert(back, "api.example.com");
	assert_int_equal(verify(fb_ca_cert(ca), leaf, "api.example.com"),
			 X509_V_OK);
	assert_false(fb_ca_permits(back, "evil.com"));
	assert_true(fb_ca_permits(back, "x.svc.example.org"));
	fb_ca_free(back);
	dir_remove(&d);
	fb_ca_free(ca);
}

static void expect_load_error(const struct dir *d, const char *cert,
			      const char *key, const char *want)
{
	struct fb_ca *ca = fb_ca_load(in_dir(d, cert), in_dir(d, key), err,
				      sizeof(err));

	if (ca)
		fail_msg("loaded %s + %s; expected \"%s\"", cert, key, want);
	if (!strstr(err, want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void test_load_refuses(void **state)
{
	struct fb_ca *ca = make_ca(brokered, 1), *other = make_ca(brokered, 1);
	struct dir d;
	EVP_PKEY *key;
	X509 *expired;

	(void)state;
	dir_make(&d);
	assert_int_equal(fb_ca_save(ca, in_dir(&d, "ca.pem"),
				    in_dir(&d, "ca.key"), false, err,
				    sizeof(err)), 0);
	assert_int_equal(fb_ca_save(other, in_dir(&d, "other.pem"),
				    in_dir(&d, "other.key"), false, err,
				    sizeof(err)), 0);
	expect_load_error(&d, "ca.pem", "other.key", "does not match");
	expect_load_error(&d, "missing.pem", "ca.key", "missing.pem");
	expect_load_error(&d, "ca.key", "ca.key", "not a PEM certificate");

	write_pem(in_dir(&d, "leaf.pem"), leaf_cert(ca, "api.example.com"));
	expect_load_error(&d, "leaf.pem", "ca.key", "not a CA");

	/* the same CA, re-signed with a validity that ended an hour ago */
	key = read_key(in_dir(&d, "ca.key"));
	expired = X509_dup(fb_ca_cert(ca));
	X509_gmtime_adj(X509_getm_notBefore(expired), -2 * 86400);
	X509_gmtime_adj(X509_getm_notAfter(expired), -3600);
	assert_true(X509_sign(expired, key, EVP_sha256()));
	write_pem(in_dir(&d, "expired.pem"), expired);
	expect_load_error(&d, "expired.pem", "ca.key", "expired at");
	X509_free(expired);
	EVP_PKEY_free(key);

	assert_int_equal(chmod(in_dir(&d, "ca.key"), 0644), 0);
	expect_load_error(&d, "ca.pem", "ca.key", "mode 0644");
	assert_int_equal(chmod(in_dir(&d, "ca.key"), 0600), 0);
	assert_int_equal(symlink(in_dir(&d, "ca.key"), in_dir(&d, "link.key")), 0);
	expect_load_error(&d, "ca.pem", "link.key", "symbolic link");

	dir_remove(&d);
	fb_ca_free(other);
	fb_ca_free(ca);
}

static void test_openssl_command_line_agrees(void **state)
{
	struct fb_ca *ca = make_ca(brokered, 1);
	struct dir d;
	char cmd[512];

	(void)state;
	dir_make(&d);
	write_pem(in_dir(&d, "ca.pem"), fb_ca_cert(ca));
	write_pem(in_dir(&d, "leaf.pem"), leaf_cert(ca, "api.example.com"));
	snprintf(cmd, sizeof(cmd), "openssl verify -purpose sslserver -CAfile %s "
		 "-verify_hostname %s %s >/dev/null 2>&1", in_dir(&d, "ca.pem"),
		 "api.example.com", in_dir(&d, "leaf.pem"));
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "openssl verify -CAfile %s -verify_hostname "
		 "%s %s >/dev/null 2>&1", in_dir(&d, "ca.pem"), "evil.com",
		 in_dir(&d, "leaf.pem"));
	assert_int_not_equal(system(cmd), 0);
	dir_remove(&d);
	fb_ca_free(ca);
}

/* ---- reissue -------------------------------------------------------- */

static void test_reissue_moves_constraints(void **state)
{
	static const char *const before[] = { "a.example.com" };
	static const char *const after[] = { "b.example.com" };
	struct fb_ca *ca = make_ca(before, 1);
	X509 *old = X509_dup(fb_ca_cert(ca)), *leaf;
	struct fb_ca_stats st;

	(void)state;
	leaf_cert(ca, "a.example.com");
	assert_null(fb_ca_leaf(ca, "b.example.com", err, sizeof(err)));
	assert_int_equal(fb_ca_reissue(ca, after, 1, err, sizeof(err)), 0);
	fb_ca_stats(ca, &st);
	assert_int_equal(st.cached, 0);
	assert_false(fb_ca_cached(ca, "a.example.com"));

	leaf = leaf_cert(ca, "b.example.com");
	assert_int_equal(verify(fb_ca_cert(ca), leaf, "b.example.com"), X509_V_OK);
	/* a guest still holding the old certificate refuses the new name */
	assert_int_equal(verify(old, leaf, "b.example.com"),
			 X509_V_ERR_PERMITTED_VIOLATION);
	assert_null(fb_ca_leaf(ca, "a.example.com", err, sizeof(err)));
	/* same key and name, so chains still find their issuer */
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(old),
				       X509_get_subject_name(fb_ca_cert(ca))), 0);
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_subject_key_id(old),
				X509_get0_subject_key_id(fb_ca_cert(ca))), 0);
	assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(old),
				X509_get0_serialNumber(fb_ca_cert(ca))), 0);

	/* a bad name changes nothing */
	assert_int_equal(fb_ca_reissue(ca, (const char *const[]){ "B.com" }, 1,
				       err, sizeof(err)), -1);
	assert_true(fb_ca_permits(ca, "b.example.com"));
	X509_free(old);
	fb_ca_free(ca);
}

/* ---- handshakes ----------------------------------------------------- */

static SSL_CTX *client_ctx(X509 *root)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(ctx);
	assert_true(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), root));
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

/* Handshake as a client for `sni` offering `alpn` (wire format). */
static int handshake(struct fb_ca *ca, const char *sni, const char *minted_for,
		     const unsigned char *alpn, unsigned alpn_len,
		     int max_version, struct tls_pair *p)
{
	SSL_CTX *cctx = client_ctx(fb_ca_cert(ca));
	SSL_CTX *sctx = fb_ca_leaf(ca, minted_for, err, sizeof(err));
	int rc;

	assert_non_null(sctx);
	if (max_version)
		SSL_CTX_set_max_proto_version(cctx, max_version);
	assert_int_equal(tls_pair_init(p, cctx, sctx), 0);
	SSL_CTX_free(cctx); /* the SSL holds its own reference */
	SSL_set_tlsext_host_name(p->client, sni);
	SSL_set1_host(p->client, sni);
	if (alpn)
		assert_int_equal(SSL_set_alpn_protos(p->client, alpn, alpn_len), 0);
	rc = tls_pair_handshake(p);
	return rc;
}

static void test_handshake_http11(void **state)
{
	static const unsigned char both[] = "\x02h2\x08http/1.1";
	struct fb_ca *ca = make_ca(brokered, 1);
	struct tls_pair p;
	const unsigned char *proto;
	unsigned len;

	(void)state;
	assert_int_equal(handshake(ca, "api.example.com", "api.example.com",
				   both, sizeof(both) - 1, 0, &p), 0);
	assert_int_equal(SSL_get_verify_result(p.client), X509_V_OK);
	SSL_get0_alpn_selected(p.client, &proto, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(proto, "http/1.1", 8);
	assert_true(SSL_version(p.client) >= TLS1_2_VERSION);
	tls_pair_free(&p);

	/* no ALPN at all is HTTP/1.1 too */
	assert_int_equal(handshake(ca, "api.example.com", "api.example.com",
				   NULL, 0, 0, &p), 0);
	tls_pair_free(&p);

	/* a client that offers HTTP/1.0 alone gets it; one that offers both
	 * gets 1.1 whatever its order */
	assert_int_equal(handshake(ca, "api.example.com", "api.example.com",
				   (const unsigned char *)"\x08http/1.0", 9, 0,
				   &p), 0);
	SSL_get0_alpn_selected(p.client, &proto, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(proto, "http/1.0", 8);
	tls_pair_free(&p);
	assert_int_equal(handshake(ca, "api.example.com", "api.example.com",
				   (const unsigned char *)"\x08http/1.0\x08http/1.1",
				   18, 0, &p), 0);
	SSL_get0_alpn_selected(p.client, &proto, &len);
	assert_memory_equal(proto, "http/1.1", 8);
	tls_pair_free(&p);
	fb_ca_free(ca);
}

static void test_handshake_h2_only_refused(void **state)
{
	static const unsigned char h2[] = "\x02h2";
	struct fb_ca *ca = make_ca(brokered, 1);
	struct tls_pair p;

	(void)state;
	ERR_clear_error();
	assert_int_equal(handshake(ca, "api.example.com", "api.example.com",
				   h2, sizeof(h2) - 1, 0, &p), -1);
	/* the client received the fatal no_application_protocol alert */
	assert_true(queue_has(SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL));
	tls_pair_free(&p);
	fb_ca_free(ca);
}

static void test_handshake_refuses_other_sni_and_old_tls(void **state)
{
	static const char *const two[] = { "api.example.com", "b.example.com" };
	struct fb_ca *ca = make_ca(two, 2);
	struct tls_pair p;

	(void)state;
	ERR_clear_error();
	assert_int_equal(handshake(ca, "b.example.com", "api.example.com", NULL,
				   0, 0, &p), -1);
	assert_true(queue_has(SSL_R_TLSV1_UNRECOGNIZED_NAME));
	tls_pair_free(&p);

	assert_int_equal(handshake(ca, "api.example.com", "api.example.com",
				   NULL, 0, TLS1_1_VERSION, &p), -1);
	ERR_clear_error();
	tls_pair_free(&p);
	fb_ca_free(ca);
}

static int tickets;

static int count_ticket(SSL *ssl, SSL_SESSION *sess)
{
	(void)ssl, (void)sess;
	tickets++;
	return 0;
}

/* No resumption means no tickets either: a TLS 1.3 client that reads
 * past the handshake has been sent none. */
static void test_handshake_sends_no_tickets(void **state)
{
	struct fb_ca *ca = make_ca(brokered, 1);
	SSL_CTX *cctx = client_ctx(fb_ca_cert(ca));
	SSL_CTX *sctx = fb_ca_leaf(ca, "api.example.com", err, sizeof(err));
	struct tls_pair p;
	char byte;
	size_t n;

	(void)state;
	assert_non_null(sctx);
	SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT);
	SSL_CTX_sess_set_new_cb(cctx, count_ticket);
	assert_int_equal(tls_pair_init(&p, cctx, sctx), 0);
	SSL_CTX_free(cctx);
	SSL_set_tlsext_host_name(p.client, "api.example.com");
	tickets = 0;
	assert_int_equal(tls_pair_handshake(&p), 0);
	assert_int_equal(SSL_version(p.client), TLS1_3_VERSION);
	/* OpenSSL's client offers AES-256 first; the proxy picks AES-128
	 * with its cheaper key schedule */
	assert_string_equal(SSL_get_cipher_name(p.client), "TLS_AES_128_GCM_SHA256");
	assert_int_equal(SSL_write_ex(p.server, "x", 1, &n), 1);
	assert_int_equal(SSL_read_ex(p.client, &byte, 1, &n), 1);
	assert_int_equal(tickets, 0);
	tls_pair_free(&p);
	fb_ca_free(ca);
}

/* ---- cache ---------------------------------------------------------- */

static void test_lru_eviction_order(void **state)
{
	static const char *const names[] = { "*.example.com" };
	struct fb_ca *ca = make_ca(names, 1);
	struct fb_ca_stats st;
	SSL_CTX *a;

	(void)state;
	assert_int_equal(fb_ca_set_cache_size(ca, 2, err, sizeof(err)), 0);
	a = fb_ca_leaf(ca, "a.example.com", err, sizeof(err));
	assert_non_null(a);
	assert_non_null(fb_ca_leaf(ca, "b.example.com", err, sizeof(err)));
	/* touching a makes b the least recently used */
	assert_ptr_equal(fb_ca_leaf(ca, "a.example.com", err, sizeof(err)), a);
	assert_non_null(fb_ca_leaf(ca, "c.example.com", err, sizeof(err)));
	assert_true(fb_ca_cached(ca, "a.example.com"));
	assert_false(fb_ca_cached(ca, "b.example.com"));
	assert_true(fb_ca_cached(ca, "c.example.com"));
	fb_ca_stats(ca, &st);
	assert_int_equal(st.minted, 3);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.evicted, 1);
	assert_int_equal(st.cached, 2);

	/* now a is the oldest */
	assert_non_null(fb_ca_leaf(ca, "d.example.com", err, sizeof(err)));
	assert_false(fb_ca_cached(ca, "a.example.com"));
	assert_true(fb_ca_cached(ca, "c.example.com"));
	assert_true(fb_ca_cached(ca, "d.example.com"));
	fb_ca_free(ca);
}

/* A live connection keeps its context when the cache evicts it. */
static void test_connection_outlives_eviction(void **state)
{
	static const char *const names[] = { "*.example.com" };
	struct fb_ca *ca = make_ca(names, 1);
	struct tls_pair p;

	(void)state;
	assert_int_equal(fb_ca_set_cache_size(ca, 1, err, sizeof(err)), 0);
	assert_int_equal(handshake(ca, "a.example.com", "a.example.com", NULL, 0,
				   0, &p), 0);
	assert_non_null(fb_ca_leaf(ca, "b.example.com", err, sizeof(err)));
	assert_false(fb_ca_cached(ca, "a.example.com"));
	assert_int_equal(SSL_write(p.server, "x", 1), 1);
	tls_pair_free(&p);
	fb_ca_free(ca);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leaf_chains_to_ca),
		cmocka_unit_test(test_leaf_fields),
		cmocka_unit_test(test_refuses_names_outside),
		cmocka_unit_test(test_constraints_bite_without_guard),
		cmocka_unit_test(test_no_brokered_names_permit_nothing),
		cmocka_unit_test(test_catch_all_and_overlapping_subtrees),
		cmocka_unit_test(test_create_rejects_bad_input),
		cmocka_unit_test(test_save_and_load),
		cmocka_unit_test(test_load_refuses),
		cmocka_unit_test(test_openssl_command_line_agrees),
		cmocka_unit_test(test_reissue_moves_constraints),
		cmocka_unit_test(test_handshake_http11),
		cmocka_unit_test(test_handshake_h2_only_refused),
		cmocka_unit_test(test_handshake_refuses_other_sni_and_old_tls),
		cmocka_unit_test(test_handshake_sends_no_tickets),
		cmocka_unit_test(test_lru_eviction_order),
		cmocka_unit_test(test_connection_outlives_eviction),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
