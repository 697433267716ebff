/*
 * doc_json.c — the fast path of fb_doc_parse for plain JSON, which is
 * what programs send to the control API: libyaml spends a token, an event
 * and two copies on every scalar, more than all the rest of an update of
 * a 10k-domain policy.
 *
 * The fast path never reports anything.  It builds the tree only for text
 * that libyaml reads into exactly the same tree — the same kinds, text,
 * quoting and LINE:COL — without a problem, and declines everything else
 * (returns NULL), which then goes to libyaml as before: a diagnostic, and
 * where it points, cannot depend on which path read the text.  What it
 * takes is the intersection of JSON and of what libyaml reads that way:
 *
 *   - printable ASCII; line breaks "\n" or "\r\n"; tabs only between the
 *     tokens inside the outermost object or array (libyaml refuses a tab
 *     where a line starts outside a flow collection);
 *   - one object or array, with nothing but spaces and line breaks
 *     around it;
 *   - strings without control characters, with the JSON escapes, except
 *     \u escapes of UTF-16 surrogates (libyaml refuses those);
 *   - numbers as JSON writes them, true, false and null (plain scalars);
 *   - an object's key on the same line as its ':' and fewer than 1024
 *     characters before it (libyaml's limit on an implicit key);
 *   - at most FB_DOC_MAX_DEPTH nested collections and FB_DOC_MAX_NODES
 *     parse events, counted as libyaml counts them.
 *
 * Duplicate keys are left to the caller, which drops and reports them
 * for both paths alike.  Running out of memory also declines.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "policy/doc.h"
#include "policy/internal.h"

#define KEY_MAX 1024 /* libyaml: an implicit key within 1024 characters */

struct json {
	const char *s, *end;
	const char *line_start; /* for the column, 1-based like libyaml's marks */
	unsigned line;
	size_t events;          /* libyaml's parse events so far */
	unsigned depth;
	struct fb_arena *arena; /* where the nodes go; NULL: malloc */
};

static unsigned col(const struct json *j)
{
	return (unsigned)(j->s - j->line_start) + 1;
}

/* Spaces and line breaks; tabs too when `tabs`.  False on a lone CR. */
static bool skip_space(struct json *j, bool tabs)
{
	while (j->s < j->end) {
		char c = *j->s;

		if (c == ' ' || (c == '\t' && tabs)) {
			j->s++;
		} else if (c == '\n' || (c == '\r' && j->s + 1 < j->end &&
					 j->s[1] == '\n')) {
			j->s += c == '\r' ? 2 : 1;
			j->line++;
			j->line_start = j->s;
		} else {
			return c != '\r';
		}
	}
	return true;
}

/* The code point of the 4 hex digits at s, or -1. */
static long hex4(const char *s)
{
	long v = 0;

	for (int i = 0; i < 4; i++) {
		int d = fb_hex_digit((unsigned char)s[i]);

		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* The escapes in s[0..len) (known valid) decoded into out; its length. */
static size_t unescape(const char *s, size_t len, char *out)
{
	static const char simple[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		long u;

		if (s[i] != '\\') {
			out[o++] = s[i];
			continue;
		}
		if (s[++i] != 'u') {
			out[o++] = strchr(simple, s[i])[1]; /* pairs: escape, byte */
			continue;
		}
		u = hex4(s + i + 1);
		i += 4;
		if (u < 0x80) {
			out[o++] = (char)u;
		} else if (u < 0x800) {
			out[o++] = (char)(0xc0 | u >> 6);
			out[o++] = (char)(0x80 | (u & 0x3f));
		} else {
			out[o++] = (char)(0xe0 | u >> 12);
			out[o++] = (char)(0x80 | ((u >> 6) & 0x3f));
			out[o++] = (char)(0x80 | (u & 0x3f));
		}
	}
	return o;
}

/*
 * The bytes of `x` that need a look of their own in a string, each marked
 * by its top bit: a quote, a backslash, a control character, DEL or a byte
 * that is not ASCII.  Each test is the "has a zero byte" trick, which may
 * also mark a byte above (after) one that matched, never one below: the
 * first byte marked is the first that needs a look.
 */
static uint64_t special8(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ull, highs = ones << 7;
	uint64_t quote = x ^ (ones * '"'), bslash = x ^ (ones * '\\');
	uint64_t del = x ^ (ones * 0x7f);

	return (((quote - ones) & ~quote) | ((bslash - ones) & ~bslash) |
		((del - ones) & ~del) | ((x - ones * 0x20) & ~x) | x) & highs;
}

/* 8 bytes, the first at the low end: the order special8's marks count in */
static uint64_t load8(const char *s)
{
	uint64_t x;

	memcpy(&x, s, sizeof(x));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	x = __builtin_bswap64(x);
#endif
	return x;
}

/* The first byte in [p, end) that needs a look in a string, or end.  A
 * policy's strings are names: 8 bytes at a time. */
static const char *plain_end(const char *p, const char *end)
{
	for (; end - p >= 8; p += 8) {
		uint64_t m = special8(load8(p));

		if (m)
			return p + __builtin_ctzll(m) / 8;
	}
	for (; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
			break;
	}
	return p;
}

/* A double-quoted string at j->s; NULL to decline. */
static struct fb_node *string(struct json *j)
{
	const char *start = j->s + 1, *p = start;
	unsigned column = col(j);
	bool escapes = false;
	struct fb_node *n;

	for (;; p++) {
		p = plain_end(p, j->end);
		if (p == j->end)
			return NULL;
		if (*p == '"')
			break;
		if (*p != '\\' || ++p == j->end)
			return NULL; /* a control character, or not ASCII */
		escapes = true;
		if (*p == 'u') {
			long u;

			if (j->end - p < 5 || (u = hex4(p + 1)) < 0 ||
			    (u >= 0xd800 && u <= 0xdfff))
				return NULL;
			p += 4;
		} else if (!memchr("\"\\/bfnrt", *p, 8)) {
			return NULL;
		}
	}
	j->s = p + 1;
	n = fb_node_new_scalar_in(j->arena, start, (size_t)(p - start), j->line,
				  column);
	if (!n)
		return NULL;
	if (escapes) { /* in place: an escape never decodes longer */
		size_t len = unescape(n->text, n->len, n->text);

		/* the text may be a secret: no copy of it stays behind */
		OPENSSL_cleanse(n->text + len, n->len - len);
		n->text[len] = '\0';
		n->len = len;
	}
	n->quoted = true;
	return n;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The end of the digits from s, or NULL when there are none. */
static const char *digits(const char *s, const char *end)
{
	const char *p = s;

	while (p < end && is_digit(*p))
		p++;
	return p > s ? p : NULL;
}

/* The end of the JSON number at s, or NULL. */
static const char *number_end(const char *s, const char *end)
{
	const char *p = s;

	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (!(p = digits(p, end)))
		return NULL;
	if (p < end && *p == '.' && !(p = digits(p + 1, end)))
		return NULL;
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		p = digits(p, end);
	}
	return p;
}

/* A number, true, false or null: a plain scalar, which must end where
 * libyaml's plain scalar ends.  NULL to decline. */
static struct fb_node *plain(struct json *j)
{
	static const char *const words[] = { "true", "false", "null" };
	const char *start = j->s, *end = number_end(j->s, j->end);
	unsigned column = col(j);

	for (size_t i = 0; !end && i < 3; i++) {
		size_t len = strlen(words[i]);

		if ((size_t)(j->end - start) >= len && !memcmp(start, words[i], len))
			end = start + len;
	}
	if (!end || (end < j->end && !memchr(" \t\r\n,]}", *end, 7)))
		return NULL;
	j->s = end;
	if (end - start == 4 && !memcmp(start, "null", 4))
		return fb_node_new_in(j->arena, FB_NODE_NULL, j->line, column);
	return fb_node_new_scalar_in(j->arena, start, (size_t)(end - start),
				     j->line, column);
}

static struct fb_node *value(struct json *j);

/* The members of an object or the items of an array, up to `close`. */
static bool members(struct json *j, struct fb_node *n, char close)
{
	bool object = close == '}';

	if (!skip_space(j, true) || j->s == j->end)
		return false;
	if (*j->s == close) {
		j->s++;
		return true;
	}
	for (;;) {
		struct fb_node *k = NULL, *v;
		const char *key_at = j->s;

		if (object) {
			if (*j->s != '"' || !(k = string(j)))
				return false;
			j->events++;
			/* blanks only: the ':' must stay on the key's line */
			while (j->s < j->end && (*j->s == ' ' || *j->s == '\t'))
				j->s++;
			if (j->s == j->end || *j->s != ':' ||
			    j->s - key_at >= KEY_MAX) {
				fb_node_free(k);
				return false;
			}
			j->s++;
			if (!skip_space(j, true) || j->s == j->end) {
				fb_node_free(k);
				return false;
			}
		}
		v = value(j);
		if (!v || (object ? fb_node_put(n, k, v) : fb_node_append(n, v)) < 0) {
			fb_node_free(k);
			fb_node_free(v);
			return false;
		}
		if (!skip_space(j, true) || j->s == j->end)
			return false;
		if (*j->s == close) {
			j->s++;
			return true;
		}
		if (*j->s != ',')
			return false;
		j->s++;
		if (!skip_space(j, true) || j->s == j->end)
			return false;
	}
}

/* An object or array at j->s. */
static struct fb_node *collection(struct json *j)
{
	bool object = *j->s == '{';
	struct fb_node *n;

	if (j->depth == FB_DOC_MAX_DEPTH)
		return NULL;
	n = fb_node_new_in(j->arena, object ? FB_NODE_MAP : FB_NODE_SEQ, j->line,
			   col(j));
	if (!n)
		return NULL;
	j->s++;
	j->depth++;
	j->events += 2; /* start and end */
	if (!members(j, n, object ? '}' : ']')) {
		fb_node_free(n);
		return NULL;
	}
	j->depth--;
	return n;
}

/* Any value at j->s (not at the end); NULL to decline. */
static struct fb_node *value(struct json *j)
{
	if (*j->s == '{' || *j->s == '[')
		return collection(j);
	j->events++;
	return *j->s == '"' ? string(j) : plain(j);
}

struct fb_node *fb_doc_parse_json_in(struct fb_arena *arena, const char *text,
				     size_t len)
{
	struct json j = {
		.s = text, .end = text + len, .line_start = text, .line = 1,
		.events = 4, /* stream and document, start and end */
		.arena = arena,
	};
	struct fb_node *doc;

	if (!skip_space(&j, false) || j.s == j.end ||
	    (*j.s != '{' && *j.s != '['))
		return NULL;
	doc = collection(&j);
	if (doc && (!skip_space(&j, false) || j.s != j.end ||
		    j.events > FB_DOC_MAX_NODES)) {
		fb_node_free(doc);
		return NULL;
	}
	return doc;
}

struct fb_node *fb_doc_parse_json(const char *text, size_t len)
{
	return fb_doc_parse_json_in(NULL, text, len);
}
