/*
 * pemfile.h — private keys and certificates on disk, for the sandbox CA
 * and the token signing key; and OpenSSL's error queue as message text.
 *
 * Key files are the secrets of the host side: they are created 0600,
 * never through a symbolic link, never over an existing file unless the
 * caller says so, and a key file that group or others can read is
 * refused on load (as ssh does), so a mistake is loud rather than silent.
 */
#ifndef FB_PEMFILE_H
#define FB_PEMFILE_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/*
 * Write `len` bytes to `path` created with exactly `mode`.  Without
 * `replace` an existing path is an error; with it the file is written
 * aside and renamed over the old one, so a reader sees old or new whole.
 * 0 or -1 with err set.
 */
int fb_pem_write_file(const char *path, const void *data, size_t len,
		      unsigned mode, bool replace, char *err, size_t errsize);

/* PKCS#8 PEM, mode 0600. */
int fb_pem_save_key(EVP_PKEY *key, const char *path, bool replace, char *err,
		    size_t errsize);
/* PEM, mode 0644. */
int fb_pem_save_cert(X509 *cert, const char *path, bool replace, char *err,
		     size_t errsize);

/*
 * Read an ECDSA P-256 private key.  Refuses a path that is a symbolic
 * link, not a regular file, or readable by group or others.
 */
EVP_PKEY *fb_pem_load_key(const char *path, char *err, size_t errsize);
/* The first certificate in a PEM file. */
X509 *fb_pem_load_cert(const char *path, char *err, size_t errsize);

/* True when `key` is an EC key on the P-256 curve. */
bool fb_pem_is_p256(const EVP_PKEY *key);

/*
 * Format "what: reason" into err, the reason being the oldest entry of
 * OpenSSL's error queue (or "unknown error"); the queue is cleared.
 * Returns -1 so callers can `return fb_ssl_error(...)`.
 */
int fb_ssl_error(char *err, size_t errsize, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* FB_PEMFILE_H */
