/* trust_bundle.c — the guest's CA bundle (trust_bundle.h). */
#include "proxy/trust_bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "proxy/fdio.h"
#include "proxy/pemfile.h"

#define ROOTS_MAX (16 << 20) /* Debian's bundle is about 200 KiB */

/* The whole roots file, checked to hold a certificate; malloc'd. */
static char *read_roots(const char *path, size_t *len, char *err,
			size_t errsize)
{
	FILE *f = fopen(path, "re");
	const char *why = NULL;
	char *buf = NULL;
	struct stat st;
	BIO *bio;
	X509 *first;
	size_t size;

	if (!f) {
		snprintf(err, errsize, "%s: cannot open roots: %s", path,
			 strerror(errno));
		return NULL;
	}
	/* st_size is a length only for a regular file: a directory's is
	 * whatever its file system says */
	if (fstat(fileno(f), &st) < 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (st.st_size > ROOTS_MAX)
		why = "larger than 16 MiB";
	else if (!(buf = malloc((size_t)st.st_size + 1)))
		why = strerror(ENOMEM);
	else if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
		why = ferror(f) ? strerror(errno) : "shorter than when opened";
	fclose(f);
	if (why) {
		snprintf(err, errsize, "%s: cannot read roots: %s", path, why);
		free(buf);
		return NULL;
	}
	size = (size_t)st.st_size;
	buf[size] = '\0';
	*len = size;
	bio = BIO_new_mem_buf(buf, (int)size);
	first = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (!first) {
		fb_ssl_error(err, errsize, "%s: no PEM certificate in roots", path);
		free(buf);
		return NULL;
	}
	X509_free(first);
	return buf;
}

/* roots + CA, in memory; malloc'd. */
static char *assemble(const char *roots_path, X509 *ca, size_t *len,
		      char *err, size_t errsize)
{
	static const char marker[] = "# firebreak sandbox CA\n";
	size_t rlen, clen;
	char *roots, *pem, *out;
	BIO *bio;

	roots = read_roots(roots_path, &rlen, err, errsize);
	if (!roots)
		return NULL;
	bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_X509(bio, ca)) {
		BIO_free(bio);
		free(roots);
		fb_ssl_error(err, errsize, "cannot encode the sandbox CA");
		return NULL;
	}
	clen = (size_t)BIO_get_mem_data(bio, &pem);
	out = malloc(rlen + 1 + sizeof(marker) + clen);
	if (out) {
		memcpy(out, roots, rlen);
		*len = rlen;
		if (rlen > 0 && roots[rlen - 1] != '\n')
			out[(*len)++] = '\n';
		memcpy(out + *len, marker, sizeof(marker) - 1);
		*len += sizeof(marker) - 1;
		memcpy(out + *len, pem, clen);
		*len += clen;
	} else {
		snprintf(err, errsize, "CA bundle: out of memory");
	}
	BIO_free(bio);
	free(roots);
	return out;
}

/* Overwrite `path` keeping its inode (see trust_bundle.h for why). */
static int rewrite_in_place(const char *path, const char *data, size_t len,
			    char *err, size_t errsize)
{
	int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errsize, "%s: cannot open bundle: %s", path,
			 errno == ELOOP ? "is a symbolic link" : strerror(errno));
		return -1;
	}
	if (fb_write_all(fd, data, len) < 0 || ftruncate(fd, (off_t)len) < 0 || fsync(fd) < 0) {
		snprintf(err, errsize, "%s: cannot write bundle: %s", path,
			 strerror(errno));
		close(fd);
		return -1;
	}
	if (close(fd) < 0) {
		snprintf(err, errsize, "%s: cannot write bundle: %s", path,
			 strerror(errno));
		return -1;
	}
	return 0;
}

int fb_trust_write_bundle(const char *roots_path, X509 *ca,
			  const char *out_path, char *err, size_t errsize)
{
	struct stat st;
	size_t len;
	char *data;
	int rc;

	data = assemble(roots_path, ca, &len, err, errsize);
	if (!data)
		return -1;
	if (lstat(out_path, &st) == 0) {
		if (S_ISREG(st.st_mode)) {
			rc = rewrite_in_place(out_path, data, len, err, errsize);
		} else {
			snprintf(err, errsize, "%s: bundle path is not a regular "
				 "file", out_path);
			rc = -1;
		}
	} else if (errno == ENOENT) {
		rc = fb_pem_write_file(out_path, data, len, 0644, true, err,
				       errsize);
	} else {
		snprintf(err, errsize, "%s: %s", out_path, strerror(errno));
		rc = -1;
	}
	free(data);
	return rc;
}
