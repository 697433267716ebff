/*
 * suffix.c — whether the hosts an allow key matches belong to one owner.
 *
 * A secret injected under a key goes to whichever host the guest names
 * that the key matches.  "*.example.com" matches hosts of example.com's
 * owner only; "*.co.uk", "*.github.io" and "*.s3.amazonaws.com" match
 * names anyone can register or be handed out by a hosting platform, and
 * "*.amazonaws.com" matches those under s3.amazonaws.com as well.  The
 * Public Suffix List tells them apart: its ICANN section (co.uk) and its
 * private one (github.io), and its implicit "*" rule, by which any single
 * label is a suffix.
 *
 * Two questions, for the fixed labels after a key's last wildcard:
 *   is it a public suffix?  libpsl's built-in copy of the list answers;
 *   is a public suffix below it?  (what "*." or "a.*." reaches) libpsl
 *     has no way to enumerate its rules, so the list it was built from
 *     is read, once, the first time a key with a secret needs it, into
 *     a sorted array of every name that has a rule below it.
 */
#include <errno.h>
#include <libpsl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

/* Names with a public suffix below them, sorted, in one buffer. */
static struct {
	pthread_once_t once;
	char *names;   /* NUL-terminated, back to back */
	size_t *at;    /* offsets into names, sorted by the names */
	size_t n;
	int error;     /* errno of reading the list, or 0 */
} above = { .once = PTHREAD_ONCE_INIT };

static int add_name(char **buf, size_t *len, size_t *cap, size_t **at,
		    size_t *n, size_t *ncap, const char *name)
{
	size_t size = strlen(name) + 1;

	if (*len + size > *cap) {
		size_t c = (*cap ? *cap * 2 : 64 * 1024) + size;
		char *b = realloc(*buf, c);

		if (!b)
			return -1;
		*buf = b, *cap = c;
	}
	if (*n == *ncap) {
		size_t c = *ncap ? *ncap * 2 : 4096;
		size_t *a = realloc(*at, c * sizeof(*a));

		if (!a)
			return -1;
		*at = a, *ncap = c;
	}
	memcpy(*buf + *len, name, size);
	(*at)[(*n)++] = *len;
	*len += size;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(above.names + *(const size_t *)a,
		      above.names + *(const size_t *)b);
}

/*
 * A rule "a.b.c" puts a suffix below "b.c" and "c"; a wildcard rule
 * "*.b.c" below "b.c" and "c" too.  An exception ("!www.ck") takes a name
 * out of the list, and so puts nothing below anything.
 */
static void read_list(void)
{
	const char *path = psl_builtin_filename();
	FILE *f = path ? fopen(path, "re") : NULL;
	size_t len = 0, cap = 0, ncap = 0;
	char line[512], name[FB_NAME_MAX];

	if (!f) {
		above.error = path ? errno : ENOENT;
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		char *rule = line, *dot;
		const char *why;

		rule[strcspn(rule, " \t\r\n")] = '\0';
		if (!*rule || *rule == '!' || !strncmp(rule, "//", 2))
			continue;
		if (!strncmp(rule, "*.", 2))
			rule += 2;
		else if (!(rule = strchr(rule, '.')) || !*++rule)
			continue; /* a single label: nothing above it */
		if (fb_name_normalize(rule, strlen(rule), name, &why) < 0)
			continue;
		for (dot = name;; dot++) {
			if (add_name(&above.names, &len, &cap, &above.at,
				     &above.n, &ncap, dot) < 0) {
				above.error = ENOMEM;
				break;
			}
			if (!(dot = strchr(dot, '.')))
				break;
		}
	}
	if (ferror(f) && !above.error)
		above.error = EIO;
	fclose(f);
	if (!above.error)
		qsort(above.at, above.n, sizeof(*above.at), by_name);
}

/* Whether a public suffix lies below `name`; -1 when the list is not
 * there to say. */
static int suffix_below(const char *name)
{
	size_t lo = 0, hi;

	pthread_once(&above.once, read_list);
	if (above.error)
		return -1;
	for (hi = above.n; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, above.names + above.at[mid]);

		if (c == 0)
			return 1;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return 0;
}

int fb_pattern_owners(const char *pattern, char *why, size_t size)
{
	const char *tail = strrchr(pattern, '*');
	int below;

	if (!tail)
		return 0; /* one name */
	if (!*++tail) {
		snprintf(why, size, "it matches every host");
		return 1;
	}
	tail++; /* past the dot */
	if (psl_is_public_suffix2(psl_builtin(), tail, PSL_TYPE_ANY)) {
		snprintf(why, size, "\"%s\" is a public suffix", tail);
		return 1;
	}
	if ((below = suffix_below(tail)) < 0) {
		snprintf(why, size, "the public suffix list %s: %s",
			 psl_builtin_filename() ? psl_builtin_filename()
						: "(none built in)",
			 strerror(above.error));
		return -1;
	}
	if (below) {
		snprintf(why, size, "public suffixes lie under \"%s\"", tail);
		return 1;
	}
	return 0;
}
