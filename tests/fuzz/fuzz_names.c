/*
 * fuzz_names.c — names, patterns, addresses and CIDRs from arbitrary
 * bytes, checking the invariants the decisions rely on:
 *   - a normalised name or pattern normalises to itself (canonical form);
 *   - a normalised name is never an IP literal and never contains "*";
 *   - a parsed CIDR formats to text that parses back to the same prefix,
 *     and contains its own first address;
 *   - an index built from a pattern finds it for a name made from it;
 *   - what the one-pass check takes as canonical, the full path makes of
 *     its upper-cased form: the two paths agree.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

static void check_name(const uint8_t *data, size_t size)
{
	char out[FB_NAME_MAX], again[FB_NAME_MAX];
	struct fb_addr a;
	const char *why;

	if (fb_name_normalize((const char *)data, size, out, &why) < 0)
		return;
	if (fb_name_normalize(out, strlen(out), again, &why) < 0 ||
	    strcmp(out, again))
		abort();
	if (strchr(out, '*') || fb_addr_parse(out, &a) == 0 || strlen(out) > 253)
		abort();
}

static void check_pattern(const uint8_t *data, size_t size)
{
	char out[FB_NAME_MAX], again[FB_NAME_MAX], name[2 * FB_NAME_MAX];
	struct fb_domain d = { .pattern = out };
	struct fb_name_index *ix;
	const char *why;
	size_t k = 0;

	if (fb_pattern_normalize((const char *)data, size, out, &why) < 0)
		return;
	if (fb_pattern_normalize(out, strlen(out), again, &why) < 0 ||
	    strcmp(out, again))
		abort();
	/* every "*" label replaced by "x" is a name the pattern matches */
	for (const char *p = out; *p; p++)
		name[k++] = *p == '*' ? 'x' : *p;
	name[k] = '\0';
	if (!(ix = fb_name_index_build(&d, 1, NULL)))
		return;
	if (fb_name_index_lookup(ix, name) != &d)
		abort();
	fb_name_index_free(ix);
}

static void check_canonical(const uint8_t *data, size_t size, bool wild)
{
	char upper[FB_NAME_MAX], out[FB_NAME_MAX];
	bool letter = false;
	const char *why;
	int rc;

	if (!fb_name_canonical((const char *)data, size, wild))
		return;
	for (size_t i = 0; i < size; i++) {
		letter |= isalpha(data[i]) != 0;
		upper[i] = (char)toupper(data[i]);
	}
	if (!letter)
		return; /* the full path would see the same text */
	rc = wild ? fb_pattern_normalize(upper, size, out, &why)
		  : fb_name_normalize(upper, size, out, &why);
	if (rc < 0 || strlen(out) != size || memcmp(out, data, size))
		abort();
}

static void check_cidr(const uint8_t *data, size_t size)
{
	char text[128], formatted[FB_CIDR_STRLEN], err[256];
	struct fb_cidr c, again;
	struct fb_addr first;

	if (size >= sizeof text)
		return;
	memcpy(text, data, size);
	text[size] = '\0';
	if (fb_cidr_parse(text, &c, err, sizeof err) < 0)
		return;
	fb_cidr_format(&c, formatted, sizeof formatted);
	if (fb_cidr_parse(formatted, &again, err, sizeof err) < 0 ||
	    memcmp(&c, &again, sizeof c))
		abort();
	first.family = c.family;
	memcpy(first.b, c.b, sizeof first.b);
	if (!fb_cidr_contains(&c, &first))
		abort();
	(void)fb_nonpublic_block(&first);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_name(data, size);
	check_pattern(data, size);
	check_canonical(data, size, false);
	check_canonical(data, size, true);
	check_cidr(data, size);
	return 0;
}
