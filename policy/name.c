/*
 * name.c — host names and allow-key patterns in one canonical form.
 *
 * A name from the wire (SNI, Host) and a key from a policy must compare
 * byte for byte, so both go through the same steps: one trailing dot
 * dropped, U-labels converted to A-labels (IDNA 2008 with the UTS #46
 * mapping, which also lower-cases), ASCII lower-cased, then checked as LDH
 * labels of 1-63 octets in a name of at most 253.  Anything else is an
 * error rather than a guess: a name we cannot canonicalise cannot be
 * matched safely.
 */
#include <ctype.h>
#include <idn2.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

/* Lower-case letters, digits and "-": one load an octet, for the loops
 * that read every key of a policy. */
static const bool ldh[256] = {
	['-'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
	['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
	['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
	['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
};

static bool is_ldh(unsigned char c)
{
	return ldh[c];
}

bool fb_name_ends_in_number(const char *s, size_t len)
{
	int (*digit)(int) = isdigit;
	const char *label;
	size_t n, i = 0;

	if (len && s[len - 1] == '.')
		len--;
	for (label = s + len; label > s && label[-1] != '.'; label--)
		;
	n = (size_t)(s + len - label);
	if (n == 0)
		return false;
	if (n >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X')) {
		digit = isxdigit;
		i = 2;
	}
	for (; i < n; i++)
		if (!digit((unsigned char)label[i]))
			return false;
	return true;
}

/*
 * Check and lower-case an ASCII name of `total` octets in place; `wild`
 * admits "*" labels.  One pass: a policy update normalises every key.
 * The first label with a problem decides the message, and within a label
 * the order is: empty, too long, its first character that is not LDH
 * (or a misplaced "*"), a hyphen at either end.
 */
static int check_ascii(char *s, size_t total, bool wild, const char **why)
{
	char *label = s, *bad = NULL;

	if (total > 253) {
		*why = "name longer than 253 octets";
		return -1;
	}
	for (char *p = s;; p++) {
		if (*p && *p != '.') {
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
			if (!bad && !is_ldh((unsigned char)*p))
				bad = p;
			continue;
		}
		size_t len = (size_t)(p - label);

		if (len == 0) {
			*why = "empty label";
			return -1;
		}
		if (len > 63) {
			*why = "label longer than 63 octets";
			return -1;
		}
		if (!(wild && len == 1 && label[0] == '*')) { /* whole-label wildcard */
			if (bad && *bad == '*') {
				*why = wild ? "wildcard must be a whole label (\"*.example.com\", not \"api*.example.com\")"
					    : "\"*\" in a name";
				return -1;
			}
			if (bad) {
				*why = "invalid character (expected letters, digits, hyphens and dots)";
				return -1;
			}
			if (label[0] == '-' || p[-1] == '-') {
				*why = "label starts or ends with a hyphen";
				return -1;
			}
		}
		if (!*p)
			break;
		label = p + 1;
		bad = NULL;
	}
	if (fb_name_ends_in_number(s, total)) {
		*why = "an IP address is not a name";
		return -1;
	}
	return 0;
}

bool fb_name_canonical(const char *s, size_t len, bool wild)
{
	const unsigned char *label = (const unsigned char *)s, *end = label + len;

	if (len == 0 || len > 253)
		return false;
	for (;;) {
		const unsigned char *p = label;

		if (wild && p < end && *p == '*') /* a whole label, or nothing */
			p++;
		else
			while (p < end && is_ldh(*p))
				p++;
		if (p == label || p - label > 63 || *label == '-' || p[-1] == '-')
			return false;
		if (p == end)
			break;
		if (*p != '.')
			return false;
		label = p + 1;
	}
	/* an all-digit (or 0x) last label starts with a digit: an address
	 * perhaps, which the full check words */
	return !(*label >= '0' && *label <= '9');
}

static int normalize(const char *in, size_t len, char out[FB_NAME_MAX],
		     bool wild, const char **why)
{
	char buf[4 * FB_NAME_MAX];
	bool ascii = true;

	if (len && in[len - 1] == '.')
		len--;
	if (fb_name_canonical(in, len, wild)) {
		memcpy(out, in, len);
		out[len] = '\0';
		return 0;
	}
	if (len == 0) {
		*why = "empty name";
		return -1;
	}
	if (memchr(in, '\0', len)) {
		*why = "NUL byte in name";
		return -1;
	}
	/* U-labels may take up to 4 octets a character before conversion */
	if (len >= sizeof buf) {
		*why = "name longer than 253 octets";
		return -1;
	}
	memcpy(buf, in, len);
	buf[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)buf[i] >= 0x80)
			ascii = false;
	if (!ascii) {
		char *alabels = NULL;

		if (idn2_lookup_u8((const uint8_t *)buf, (uint8_t **)&alabels,
				   IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK) {
			*why = "invalid internationalised name (IDNA 2008)";
			return -1;
		}
		len = strlen(alabels);
		if (len >= sizeof buf) {
			idn2_free(alabels);
			*why = "name longer than 253 octets";
			return -1;
		}
		memcpy(buf, alabels, len + 1);
		idn2_free(alabels);
	}
	if (check_ascii(buf, len, wild, why) < 0)
		return -1;
	memcpy(out, buf, len + 1);
	return 0;
}

int fb_name_normalize(const char *in, size_t len, char out[FB_NAME_MAX],
		      const char **why)
{
	return normalize(in, len, out, false, why);
}

int fb_pattern_normalize(const char *in, size_t len, char out[FB_NAME_MAX],
			 const char **why)
{
	if (len == 1 && in[0] == '*') {
		strcpy(out, "*");
		return 0;
	}
	return normalize(in, len, out, true, why);
}
