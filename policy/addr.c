/*
 * addr.c — IPv4/IPv6 addresses and canonical prefixes.
 *
 * Parsing is strict on purpose: a policy that says "10.0.0.1/8" almost
 * certainly meant something else, and guessing which (10.0.0.0/8? the host
 * alone?) would silently widen or narrow a firewall rule.  So host bits set,
 * a prefix length out of range or any trailing garbage are errors that quote
 * the text and, where one exists, suggest the canonical form.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy/internal.h"

static unsigned family_bits(uint8_t family)
{
	return family == AF_INET ? 32 : 128;
}

int fb_addr_parse(const char *s, struct fb_addr *out)
{
	memset(out, 0, sizeof *out);
	/* inet_pton(AF_INET) takes dotted quads only: no octal, no short forms */
	if (inet_pton(AF_INET, s, out->b) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, out->b) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	return -1;
}

void fb_addr_format(const struct fb_addr *a, char *buf, size_t size)
{
	char text[INET6_ADDRSTRLEN];

	if (!inet_ntop(a->family == AF_INET ? AF_INET : AF_INET6, a->b, text,
		       sizeof text))
		snprintf(text, sizeof text, "?");
	snprintf(buf, size, "%s", text);
}

int fb_addr_port_parse(const char *s, struct fb_addr *a, int *port)
{
	const char *colon = strchr(s, ':'), *digits = NULL;
	char host[INET6_ADDRSTRLEN];
	size_t n = strlen(s);

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || (close[1] && close[1] != ':'))
			return -1;
		digits = close[1] ? close + 2 : NULL;
		s++;
		n = (size_t)(close - s);
	} else if (colon && !strchr(colon + 1, ':')) {
		digits = colon + 1;
		n = (size_t)(colon - s);
	}
	if (n >= sizeof(host))
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	if (fb_addr_parse(host, a) < 0)
		return -1;
	*port = digits ? fb_port_parse(digits, strlen(digits)) : -1;
	return digits && *port < 0 ? -1 : 0;
}

int fb_port_parse(const char *s, size_t len)
{
	long v = 0;

	if (len < 1 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v > 65535 ? -1 : (int)v;
}

socklen_t fb_addr_to_sockaddr(const struct fb_addr *a, uint16_t port,
			      struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, a->b, 4);
		return sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, a->b, 16);
		return sizeof(*s6);
	}
}

uint16_t fb_addr_from_sockaddr(const struct sockaddr_storage *ss,
			       struct fb_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;

		a->family = AF_INET;
		memcpy(a->b, &s4->sin_addr, 4);
		return ntohs(s4->sin_port);
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		a->family = AF_INET6;
		memcpy(a->b, &s6->sin6_addr, 16);
		return ntohs(s6->sin6_port);
	}
	return 0;
}

bool fb_addr_equal(const struct fb_addr *a, const struct fb_addr *b)
{
	return a->family == b->family &&
	       memcmp(a->b, b->b, family_bits(a->family) / 8) == 0;
}

/* Clear every bit after the first `len` (in place). */
static void mask_host_bits(uint8_t b[16], unsigned len)
{
	for (unsigned i = 0; i < 16; i++) {
		if (len >= 8) {
			len -= 8;
			continue;
		}
		b[i] &= (uint8_t)(0xff00 >> len);
		len = 0;
	}
}

int fb_cidr_parse(const char *s, struct fb_cidr *out, char *err,
		  size_t errsize)
{
	char text[INET6_ADDRSTRLEN + 8];
	struct fb_addr a;
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned bits, len;

	if (!*s) {
		snprintf(err, errsize, "empty CIDR");
		return -1;
	}
	if (alen >= sizeof text) {
		snprintf(err, errsize, "invalid address in \"%.60s...\"", s);
		return -1;
	}
	memcpy(text, s, alen);
	text[alen] = '\0';
	if (fb_addr_parse(text, &a) < 0) {
		snprintf(err, errsize,
			 "invalid address \"%s\" in \"%s\" (expected IPv4 or IPv6, like 10.0.0.0/8 or 2001:db8::/32)",
			 text, s);
		return -1;
	}
	bits = family_bits(a.family);
	len = bits;
	if (slash) {
		const char *p = slash + 1;

		/* digits only: no sign, no spaces, no leading zeros beyond "0" */
		if (!*p || strspn(p, "0123456789") != strlen(p) ||
		    (p[0] == '0' && p[1]) || strlen(p) > 3) {
			snprintf(err, errsize,
				 "invalid prefix length \"%s\" in \"%s\" (expected 0-%u)",
				 p, s, bits);
			return -1;
		}
		len = (unsigned)atoi(p);
		if (len > bits) {
			snprintf(err, errsize,
				 "prefix length %u out of range 0-%u in \"%s\"",
				 len, bits, s);
			return -1;
		}
	}
	memset(out, 0, sizeof *out);
	out->family = a.family;
	out->len = (uint8_t)len;
	memcpy(out->b, a.b, sizeof a.b);
	mask_host_bits(out->b, len);
	if (memcmp(out->b, a.b, sizeof a.b)) {
		char canon[FB_CIDR_STRLEN];

		fb_cidr_format(out, canon, sizeof canon);
		snprintf(err, errsize,
			 "host bits set in \"%s\" (did you mean %s?)", s, canon);
		return -1;
	}
	return 0;
}

void fb_cidr_format(const struct fb_cidr *c, char *buf, size_t size)
{
	struct fb_addr a = { .family = c->family };
	char text[INET6_ADDRSTRLEN];

	memcpy(a.b, c->b, sizeof a.b);
	fb_addr_format(&a, text, sizeof text);
	snprintf(buf, size, "%s/%u", text, c->len);
}

bool fb_cidr_contains(const struct fb_cidr *c, const struct fb_addr *a)
{
	unsigned full = c->len / 8, rest = c->len % 8;

	if (c->family != a->family)
		return false;
	if (memcmp(c->b, a->b, full))
		return false;
	if (!rest)
		return true;
	return ((c->b[full] ^ a->b[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}
