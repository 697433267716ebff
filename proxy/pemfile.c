/* pemfile.c — keys and certificates on disk; OpenSSL errors as text. */
#include "proxy/fdio.h"
#include "proxy/pemfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>

int fb_ssl_error(char *err, size_t errsize, const char *fmt, ...)
{
	char what[256], reason[256] = "unknown error";
	unsigned long e = ERR_get_error();
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	snprintf(err, errsize, "%s: %s", what, reason);
	return -1;
}

int fb_pem_write_file(const char *path, const void *data, size_t len,
		      unsigned mode, bool replace, char *err, size_t errsize)
{
	char tmp[4096];
	const char *target = path;
	int fd;

	if (replace) {
		/* Written aside and renamed: the old file stays whole until
		 * the new one is complete, and rename never follows a link. */
		if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >=
		    (int)sizeof(tmp)) {
			snprintf(err, errsize, "%s: path too long", path);
			return -1;
		}
		fd = mkostemp(tmp, O_CLOEXEC);
		target = tmp;
	} else {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				O_CLOEXEC, mode);
	}
	if (fd < 0) {
		snprintf(err, errsize, "%s: cannot create: %s%s", path,
			 strerror(errno),
			 errno == EEXIST ? " (refusing to overwrite)" : "");
		return -1;
	}
	/* The umask must not decide who may read a key. */
	if (fchmod(fd, mode) < 0 || fb_write_all(fd, data, len) < 0 ||
	    fsync(fd) < 0) {
		snprintf(err, errsize, "%s: cannot write: %s", path,
			 strerror(errno));
		close(fd);
		unlink(target);
		return -1;
	}
	if (close(fd) < 0) {
		snprintf(err, errsize, "%s: cannot write: %s", path,
			 strerror(errno));
		unlink(target);
		return -1;
	}
	if (replace && rename(tmp, path) < 0) {
		snprintf(err, errsize, "%s: cannot replace: %s", path,
			 strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Write out what was PEM-encoded into `bio`; ok: the encoder succeeded. */
static int save_bio(BIO *bio, int ok, const char *path, unsigned mode,
		    bool replace, char *err, size_t errsize)
{
	char *data;
	long len;
	int rc;

	if (!ok) {
		BIO_free(bio);
		return fb_ssl_error(err, errsize, "%s: cannot encode", path);
	}
	len = BIO_get_mem_data(bio, &data);
	rc = fb_pem_write_file(path, data, (size_t)len, mode, replace, err,
			       errsize);
	BIO_free(bio);
	return rc;
}

int fb_pem_save_key(EVP_PKEY *key, const char *path, bool replace, char *err,
		    size_t errsize)
{
	BIO *bio = BIO_new(BIO_s_mem());

	if (!bio)
		return fb_ssl_error(err, errsize, "%s: out of memory", path);
	return save_bio(bio, PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0,
						      NULL, NULL),
			path, 0600, replace, err, errsize);
}

int fb_pem_save_cert(X509 *cert, const char *path, bool replace, char *err,
		     size_t errsize)
{
	BIO *bio = BIO_new(BIO_s_mem());

	if (!bio)
		return fb_ssl_error(err, errsize, "%s: out of memory", path);
	return save_bio(bio, PEM_write_bio_X509(bio, cert), path, 0644, replace,
			err, errsize);
}

/* Keys are never encrypted here: refuse instead of prompting on a tty. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return -1;
}

bool fb_pem_is_p256(const EVP_PKEY *key)
{
	char group[64];

	return EVP_PKEY_is_a(key, "EC") &&
	       EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
					      group, sizeof(group), NULL) &&
	       strcmp(group, "prime256v1") == 0;
}

EVP_PKEY *fb_pem_load_key(const char *path, char *err, size_t errsize)
{
	EVP_PKEY *key;
	struct stat st;
	FILE *fp;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errsize, "%s: cannot open key: %s", path,
			 errno == ELOOP ? "is a symbolic link" : strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errsize, "%s: key is not a regular file", path);
		close(fd);
		return NULL;
	}
	if (st.st_mode & 077) {
		snprintf(err, errsize,
			 "%s: key is accessible by group or others (mode %04o); "
			 "it must be 0600", path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return NULL;
	}
	fp = fdopen(fd, "r");
	if (!fp) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	key = PEM_read_PrivateKey(fp, NULL, no_passphrase, NULL);
	fclose(fp);
	if (!key) {
		fb_ssl_error(err, errsize, "%s: not a PEM private key", path);
		return NULL;
	}
	if (!fb_pem_is_p256(key)) {
		snprintf(err, errsize, "%s: key is not ECDSA P-256", path);
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

X509 *fb_pem_load_cert(const char *path, char *err, size_t errsize)
{
	FILE *fp = fopen(path, "re");
	X509 *cert;

	if (!fp) {
		snprintf(err, errsize, "%s: cannot open certificate: %s", path,
			 strerror(errno));
		return NULL;
	}
	cert = PEM_read_X509(fp, NULL, no_passphrase, NULL);
	fclose(fp);
	if (!cert)
		fb_ssl_error(err, errsize, "%s: not a PEM certificate", path);
	return cert;
}
