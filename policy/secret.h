/*
 * secret.h — header values that reference secrets, resolved at load:
 *
 *   ${env:NAME}   the loader's environment variable NAME
 *   ${file:PATH}  the contents of the file at the absolute PATH, one
 *                 trailing newline dropped (at most FB_SECRET_FILE_MAX bytes)
 *   $${           a literal "${"; any other "$" is literal
 *
 * References may appear anywhere in a value ("Bearer ${env:KEY}").  Any
 * other "${...}" is an error.  Internal to policy/.
 */
#ifndef FB_POLICY_SECRET_H
#define FB_POLICY_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define FB_SECRET_FILE_MAX 65536
/* What every read-back shows for a header value, and what a loaded value
 * may therefore never contain. */
#define FB_REDACTED "<redacted>"

/*
 * Resolve `text` into a malloc'd, NUL-terminated *out of *outlen bytes;
 * *refs says whether it used any reference.  The result is checked: no CR,
 * LF or NUL, no "<redacted>" placeholder, no empty variable or file.
 * -1 with a message in err that names the variable or path, never a value.
 */
int fb_secret_resolve(const char *text, size_t len, char **out,
		      size_t *outlen, bool *refs, char *err, size_t errsize);

/* Wipe, then free. */
void fb_secret_free(char *s, size_t len);

#endif /* FB_POLICY_SECRET_H */
