/*
 * json_escape.c — JSON string escaping for every writer of JSON: the
 * policy dump, the audit log, tokens and the daemon's answers.
 *
 * The text escaped is often the guest's (an SNI, a Host header), so it may
 * be any bytes.  Valid UTF-8 is copied as it is: escaping its bytes one by
 * one as \u00XX would turn "é" into "Ã©".  A byte that does not start a
 * valid UTF-8 sequence (stray continuation, overlong form, surrogate,
 * beyond U+10FFFF, cut short) becomes U+FFFD, written \ufffd, so the
 * output is always valid JSON and never claims a character that was not
 * sent.
 */
#include <string.h>

#include "policy/policy.h"

/* The longest escape of one input character: \u00XX or \ufffd. */
#define ESC_MAX 6

/* Length of the valid UTF-8 sequence at s (len bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t len)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	/* The second byte's range excludes overlong forms, UTF-16
	 * surrogates and code points past U+10FFFF. */
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/*
 * The escaped form of the character at s (len > 0 bytes left) into out;
 * its length.  *used is the number of input bytes it stands for.
 */
static size_t escape_char(const unsigned char *s, size_t len,
			  char out[ESC_MAX], size_t *used)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char c = s[0];
	size_t n;

	*used = 1;
	switch (c) {
	case '"':
	case '\\':
		out[0] = '\\';
		out[1] = (char)c;
		return 2;
	case '\n':
		memcpy(out, "\\n", 2);
		return 2;
	case '\r':
		memcpy(out, "\\r", 2);
		return 2;
	case '\t':
		memcpy(out, "\\t", 2);
		return 2;
	}
	if (c < 0x20 || c == 0x7f) {
		memcpy(out, "\\u00", 4);
		out[4] = hex[c >> 4];
		out[5] = hex[c & 15];
		return 6;
	}
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	n = utf8_len(s, len);
	if (n == 0) {
		memcpy(out, "\\ufffd", 6);
		return 6;
	}
	memcpy(out, s, n);
	*used = n;
	return n;
}

int fb_json_escape(const char *s, size_t len, char *out, size_t outsize)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;

	while (len > 0) {
		char tmp[ESC_MAX];
		size_t used, n = escape_char(p, len, tmp, &used);

		if (o + n >= outsize) {
			if (outsize)
				out[0] = '\0';
			return -1;
		}
		memcpy(out + o, tmp, n);
		o += n;
		p += used;
		len -= used;
	}
	if (o >= outsize)
		return -1;
	out[o] = '\0';
	return (int)o;
}

void fb_json_write_string(FILE *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	while (len > 0) {
		char tmp[ESC_MAX];
		size_t used, n = escape_char(p, len, tmp, &used);

		fwrite(tmp, 1, n, f);
		p += used;
		len -= used;
	}
	fputc('"', f);
}
