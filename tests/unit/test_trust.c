/* test_trust.c — the guest's CA bundle: what it holds, that a leaf
 * verifies against it, that a rewrite reaches a guest through a bind
 * mount, and that bad input changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "proxy/ca.h"
#include "vmhost/trust.h"

static char err[512];
static char dir[] = "/tmp/fb-test-trust.XXXXXX";

static const char *path(const char *name)
{
	static char buf[4][128];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/fb-test-trust.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static struct fb_ca *make_ca(const char *name)
{
	struct fb_ca *ca = fb_ca_create("t1", &name, 1, 0, err, sizeof(err));

	if (!ca)
		fail_msg("fb_ca_create: %s", err);
	return ca;
}

/* A roots file of two unrelated self-signed certificates. */
static void write_roots(const char *file)
{
	FILE *f = fopen(file, "w");

	assert_non_null(f);
	for (int i = 0; i < 2; i++) {
		struct fb_ca *ca = make_ca("root.example");

		assert_true(PEM_write_X509(f, fb_ca_cert(ca)));
		fb_ca_free(ca);
	}
	fclose(f);
}

static void write_text(const char *file, const char *text)
{
	FILE *f = fopen(file, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* The certificates of a bundle, in order. */
static STACK_OF(X509) *read_bundle(const char *file)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	FILE *f = fopen(file, "r");
	X509 *c;

	assert_non_null(f);
	while ((c = PEM_read_X509(f, NULL, NULL, NULL)))
		sk_X509_push(sk, c);
	fclose(f);
	return sk;
}

static void test_bundle_holds_roots_then_ca(void **state)
{
	struct fb_ca *ca = make_ca("api.example.com");
	STACK_OF(X509) *sk;
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *vctx = X509_STORE_CTX_new();
	SSL_CTX *leaf;
	struct stat st;

	(void)state;
	write_roots(path("roots.pem"));
	assert_int_equal(fb_trust_write_bundle(path("roots.pem"), fb_ca_cert(ca),
					       path("bundle.crt"), err,
					       sizeof(err)), 0);
	assert_int_equal(stat(path("bundle.crt"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	sk = read_bundle(path("bundle.crt"));
	assert_int_equal(sk_X509_num(sk), 3);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 2), fb_ca_cert(ca)), 0);
	sk_X509_pop_free(sk, X509_free);

	/* a client trusting the bundle accepts the minted leaf */
	leaf = fb_ca_leaf(ca, "api.example.com", err, sizeof(err));
	assert_non_null(leaf);
	assert_int_equal(X509_STORE_load_file(store, path("bundle.crt")), 1);
	assert_true(X509_STORE_CTX_init(vctx, store,
					SSL_CTX_get0_certificate(leaf), NULL));
	X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(vctx),
				    "api.example.com", 0);
	assert_int_equal(X509_verify_cert(vctx), 1);
	X509_STORE_CTX_free(vctx);
	X509_STORE_free(store);
	fb_ca_free(ca);
}

static void test_bundle_with_system_roots(void **state)
{
	struct fb_ca *ca;
	STACK_OF(X509) *sys, *sk;

	(void)state;
	if (access(FB_TRUST_SYSTEM_ROOTS, R_OK) != 0)
		skip();
	ca = make_ca("api.example.com");
	assert_int_equal(fb_trust_write_bundle(FB_TRUST_SYSTEM_ROOTS,
					       fb_ca_cert(ca), path("sys.crt"),
					       err, sizeof(err)), 0);
	sys = read_bundle(FB_TRUST_SYSTEM_ROOTS);
	sk = read_bundle(path("sys.crt"));
	assert_true(sk_X509_num(sys) > 10);
	assert_int_equal(sk_X509_num(sk), sk_X509_num(sys) + 1);
	sk_X509_pop_free(sys, X509_free);
	sk_X509_pop_free(sk, X509_free);
	fb_ca_free(ca);
}

/* After a reissue the launcher rewrites the bundle; a guest that sees it
 * through a bind mount must see the new CA. */
static void test_rewrite_reaches_bind_mount(void **state)
{
	static const char *const after[] = { "b.example.com" };
	struct fb_ca *ca = make_ca("a.example.com");
	struct stat before, now;
	STACK_OF(X509) *sk;
	int pipefd[2], status;
	char go;
	pid_t pid;

	(void)state;
	write_roots(path("roots.pem"));
	assert_int_equal(fb_trust_write_bundle(path("roots.pem"), fb_ca_cert(ca),
					       path("bundle.crt"), err,
					       sizeof(err)), 0);
	assert_int_equal(stat(path("bundle.crt"), &before), 0);
	write_text(path("guest.crt"), "");
	assert_int_equal(pipe(pipefd), 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* the guest: its own mount namespace, the bundle bound in */
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount(path("bundle.crt"), path("guest.crt"), NULL, MS_BIND,
			  NULL) < 0)
			_exit(2);
		if (read(pipefd[0], &go, 1) != 1)
			_exit(3);
		/* fb_ca_cert(ca) is still the old certificate in this copy */
		sk = read_bundle(path("guest.crt"));
		_exit(sk_X509_num(sk) == 3 &&
		      X509_cmp(sk_X509_value(sk, 2), fb_ca_cert(ca)) != 0 ? 0 : 1);
	}
	assert_int_equal(fb_ca_reissue(ca, after, 1, err, sizeof(err)), 0);
	assert_int_equal(fb_trust_write_bundle(path("roots.pem"), fb_ca_cert(ca),
					       path("bundle.crt"), err,
					       sizeof(err)), 0);
	assert_int_equal(write(pipefd[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(pipefd[0]);
	close(pipefd[1]);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
		skip(); /* no mount namespaces here */
	/* the guest read the reissued certificate, not the old one */
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	sk = read_bundle(path("bundle.crt"));
	assert_int_equal(X509_cmp(sk_X509_value(sk, 2), fb_ca_cert(ca)), 0);
	sk_X509_pop_free(sk, X509_free);
	assert_int_equal(stat(path("bundle.crt"), &now), 0);
	assert_int_equal(now.st_ino, before.st_ino);
	fb_ca_free(ca);
}

static void test_bad_input_changes_nothing(void **state)
{
	struct fb_ca *ca = make_ca("api.example.com");
	struct stat a, b;

	(void)state;
	write_roots(path("roots.pem"));
	assert_int_equal(fb_trust_write_bundle(path("roots.pem"), fb_ca_cert(ca),
					       path("bundle.crt"), err,
					       sizeof(err)), 0);
	assert_int_equal(stat(path("bundle.crt"), &a), 0);

	assert_int_equal(fb_trust_write_bundle(path("missing.pem"),
					       fb_ca_cert(ca), path("bundle.crt"),
					       err, sizeof(err)), -1);
	assert_non_null(strstr(err, "missing.pem"));
	write_text(path("junk.pem"), "not a certificate\n");
	assert_int_equal(fb_trust_write_bundle(path("junk.pem"), fb_ca_cert(ca),
					       path("bundle.crt"), err,
					       sizeof(err)), -1);
	assert_non_null(strstr(err, "no PEM certificate"));
	assert_int_equal(mkdir(path("roots.d"), 0700), 0);
	assert_int_equal(fb_trust_write_bundle(path("roots.d"), fb_ca_cert(ca),
					       path("bundle.crt"), err,
					       sizeof(err)), -1);
	assert_non_null(strstr(err, "roots.d: cannot read roots: not a "
				    "regular file"));
	assert_int_equal(stat(path("bundle.crt"), &b), 0);
	assert_int_equal(a.st_size, b.st_size);
	assert_int_equal(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);

	/* never through a symbolic link */
	assert_int_equal(symlink(path("elsewhere"), path("link.crt")), 0);
	assert_int_equal(fb_trust_write_bundle(path("roots.pem"), fb_ca_cert(ca),
					       path("link.crt"), err,
					       sizeof(err)), -1);
	assert_int_equal(access(path("elsewhere"), F_OK), -1);
	fb_ca_free(ca);
}

static const char *env_get(char **env, const char *name)
{
	size_t n = strlen(name);

	for (; *env; env++)
		if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

static void test_environment(void **state)
{
	static const char *const to_bundle[] = {
		"SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE",
		"GIT_SSL_CAINFO", "PIP_CERT", "AWS_CA_BUNDLE",
		"CARGO_HTTP_CAINFO", "NPM_CONFIG_CAFILE",
		"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
	};
	char **env = fb_trust_env(FB_TRUST_GUEST_BUNDLE,
				  FB_TRUST_GUEST_DEBIAN_ANCHOR);
	size_t n = 0;

	(void)state;
	assert_non_null(env);
	for (size_t i = 0; i < sizeof(to_bundle) / sizeof(to_bundle[0]); i++) {
		const char *v = env_get(env, to_bundle[i]);

		if (!v)
			fail_msg("%s not set", to_bundle[i]);
		assert_string_equal(v, FB_TRUST_GUEST_BUNDLE);
	}
	assert_string_equal(env_get(env, "NODE_EXTRA_CA_CERTS"),
			    FB_TRUST_GUEST_DEBIAN_ANCHOR);
	assert_string_equal(env_get(env, "NODE_USE_SYSTEM_CA"), "1");
	while (env[n])
		n++;
	assert_int_equal(n, 11);
	fb_trust_env_free(env);

	env = fb_trust_env("/b.crt", NULL);
	assert_string_equal(env_get(env, "NODE_EXTRA_CA_CERTS"), "/b.crt");
	fb_trust_env_free(env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bundle_holds_roots_then_ca,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_bundle_with_system_roots,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewrite_reaches_bind_mount,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input_changes_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_environment, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
