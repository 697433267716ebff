/*
 * secret.c — ${env:NAME} and ${file:PATH} in header values.
 *
 * A resolved value is a secret: every buffer that held one is wiped before
 * it is freed, and no message ever quotes one — errors name the variable
 * or the file instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "policy/secret.h"

/* A growing buffer that never leaves a copy of its contents behind. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static int sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = malloc(cap);
		if (!p)
			return -1;
		if (b->p) {
			memcpy(p, b->p, b->len);
			fb_secret_free(b->p, b->cap);
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

void fb_secret_free(char *s, size_t len)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, len);
	free(s);
}

static bool valid_env_name(const char *s, size_t n)
{
	if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '_' || (s[i] >= '0' && s[i] <= '9') ||
		      ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z')))
			return false;
	return true;
}

static int resolve_env(const char *name, size_t n, struct sbuf *b, char *err,
		       size_t errsize)
{
	char var[256];
	const char *v;

	if (!valid_env_name(name, n) || n >= sizeof(var)) {
		snprintf(err, errsize, "invalid environment variable name "
			 "\"%.*s\" in ${env:...}", (int)(n > 64 ? 64 : n), name);
		return -1;
	}
	memcpy(var, name, n);
	var[n] = '\0';
	v = getenv(var);
	if (!v) {
		snprintf(err, errsize, "environment variable %s is not set", var);
		return -1;
	}
	if (!*v) {
		snprintf(err, errsize, "environment variable %s is empty", var);
		return -1;
	}
	if (strpbrk(v, "\r\n")) {
		snprintf(err, errsize, "environment variable %s contains a CR "
			 "or LF character, which a header value cannot hold", var);
		return -1;
	}
	return sbuf_add(b, v, strlen(v));
}

static int read_secret_file(const char *path, struct sbuf *b, char *err,
			    size_t errsize)
{
	char chunk[4096];
	struct stat st;
	size_t start = b->len;
	ssize_t got;
	int fd, rc = -1;

	/* O_NONBLOCK: a FIFO must not stall the load; it is refused below. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errsize, "cannot read secret file %s: %s", path,
			 strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errsize, "secret file %s is not a regular file",
			 path);
		goto out;
	}
	while ((got = read(fd, chunk, sizeof(chunk))) > 0) {
		if (b->len - start + (size_t)got > FB_SECRET_FILE_MAX) {
			snprintf(err, errsize, "secret file %s is larger than "
				 "%d bytes", path, FB_SECRET_FILE_MAX);
			goto out;
		}
		if (sbuf_add(b, chunk, (size_t)got) < 0) {
			snprintf(err, errsize, "out of memory");
			goto out;
		}
	}
	if (got < 0) {
		snprintf(err, errsize, "cannot read secret file %s: %s", path,
			 strerror(errno));
		goto out;
	}
	if (b->len > start && b->p[b->len - 1] == '\n')
		b->p[--b->len] = '\0';
	if (b->len == start) {
		snprintf(err, errsize, "secret file %s is empty", path);
		goto out;
	}
	if (memchr(b->p + start, '\r', b->len - start) ||
	    memchr(b->p + start, '\n', b->len - start) ||
	    memchr(b->p + start, '\0', b->len - start)) {
		snprintf(err, errsize, "secret file %s contains a CR, LF or NUL "
			 "character (only one trailing newline is dropped)", path);
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(chunk, sizeof(chunk));
	close(fd);
	return rc;
}

static int resolve_file(const char *p, size_t n, struct sbuf *b, char *err,
			size_t errsize)
{
	char *path;
	int rc;

	if (n == 0 || p[0] != '/' || memchr(p, '\0', n)) {
		snprintf(err, errsize, "secret file path must be absolute, found "
			 "\"%.*s\"", (int)(n > 256 ? 256 : n), p);
		return -1;
	}
	path = strndup(p, n);
	if (!path) {
		snprintf(err, errsize, "out of memory");
		return -1;
	}
	rc = read_secret_file(path, b, err, errsize);
	free(path);
	return rc;
}

/* One "${...}" at text[0]; *used receives its length. */
static int resolve_ref(const char *text, size_t len, size_t *used,
		       struct sbuf *b, char *err, size_t errsize)
{
	const char *end = memchr(text, '}', len);
	const char *body = text + 2;
	size_t n;

	if (!end) {
		snprintf(err, errsize, "unterminated \"${\" in header value: "
			 "expected ${env:NAME} or ${file:PATH} (write $${ for "
			 "a literal ${)");
		return -1;
	}
	*used = (size_t)(end - text) + 1;
	n = (size_t)(end - body);
	if (n > 4 && memcmp(body, "env:", 4) == 0)
		return resolve_env(body + 4, n - 4, b, err, errsize);
	if (n > 5 && memcmp(body, "file:", 5) == 0)
		return resolve_file(body + 5, n - 5, b, err, errsize);
	snprintf(err, errsize, "unsupported reference in header value: expected "
		 "${env:NAME} or ${file:PATH} (write $${ for a literal ${)");
	return -1;
}

int fb_secret_resolve(const char *text, size_t len, char **out,
		      size_t *outlen, bool *refs, char *err, size_t errsize)
{
	struct sbuf b = { 0 };
	size_t i = 0, used;

	*refs = false;
	while (i < len) {
		const char *dollar = memchr(text + i, '$', len - i);
		size_t lit = dollar ? (size_t)(dollar - text) - i : len - i;

		if (lit && sbuf_add(&b, text + i, lit) < 0)
			goto nomem;
		i += lit;
		if (i == len)
			break;
		if (len - i >= 3 && memcmp(text + i, "$${", 3) == 0) {
			if (sbuf_add(&b, "${", 2) < 0)
				goto nomem;
			i += 3;
		} else if (len - i >= 2 && text[i + 1] == '{') {
			if (resolve_ref(text + i, len - i, &used, &b, err,
					errsize) < 0)
				goto fail;
			*refs = true;
			i += used;
		} else {
			if (sbuf_add(&b, "$", 1) < 0)
				goto nomem;
			i++;
		}
	}
	if (sbuf_add(&b, "", 0) < 0)
		goto nomem;
	if (memchr(b.p, '\r', b.len) || memchr(b.p, '\n', b.len) ||
	    memchr(b.p, '\0', b.len)) {
		snprintf(err, errsize, "header value contains a CR, LF or NUL "
			 "character");
		goto fail;
	}
	if (memmem(b.p, b.len, FB_REDACTED, strlen(FB_REDACTED))) {
		snprintf(err, errsize, "header value contains \"%s\", the "
			 "read-back placeholder: replace it with the secret or "
			 "a ${env:NAME} or ${file:PATH} reference", FB_REDACTED);
		goto fail;
	}
	*out = b.p;
	*outlen = b.len;
	return 0;
nomem:
	snprintf(err, errsize, "out of memory");
fail:
	fb_secret_free(b.p, b.cap);
	return -1;
}
