/*
 * dump.c — the redacted read-back: pretty-printed JSON (which is also
 * YAML), keys and rules in source order, every header value a transform
 * sets printed as "<redacted>".  Two shapes: the object form users write,
 * and the legacy shape Vercel's API returns.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/doc.h"
#include "policy/internal.h"
#include "policy/secret.h"

#define JW_MAX_DEPTH 16

/* A small pretty-printing JSON writer. */
struct jw {
	FILE *f;
	int depth;
	bool empty[JW_MAX_DEPTH]; /* nothing written yet at this depth */
	bool after_key;
};

static void jw_indent(struct jw *w, int depth)
{
	fputc('\n', w->f);
	for (int i = 0; i < depth; i++)
		fputs("  ", w->f);
}

/* Every value and key starts here: a comma and a new line as needed. */
static void jw_item(struct jw *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	if (w->depth == 0)
		return;
	if (!w->empty[w->depth])
		fputc(',', w->f);
	w->empty[w->depth] = false;
	jw_indent(w, w->depth);
}

static void jw_open(struct jw *w, char c)
{
	jw_item(w);
	fputc(c, w->f);
	w->empty[++w->depth] = true;
}

static void jw_close(struct jw *w, char c)
{
	if (!w->empty[w->depth])
		jw_indent(w, w->depth - 1);
	w->depth--;
	fputc(c, w->f);
}

static void jw_strn(struct jw *w, const char *s, size_t len)
{
	jw_item(w);
	fb_json_write_string(w->f, s, len);
}

static void jw_str(struct jw *w, const char *s)
{
	jw_strn(w, s, strlen(s));
}

static void jw_int(struct jw *w, long v)
{
	jw_item(w);
	fprintf(w->f, "%ld", v);
}

static void jw_key(struct jw *w, const char *k)
{
	jw_item(w);
	fb_json_write_string(w->f, k, strlen(k));
	fputs(": ", w->f);
	w->after_key = true;
}

/* ---- the pieces both shapes share --------------------------------------- */

static void dump_matcher(struct jw *w, const char *key,
			 const struct fb_matcher *m)
{
	static const char *const kinds[] = {
		[FB_MATCH_EXACT] = "exact",
		[FB_MATCH_PREFIX] = "startsWith",
		[FB_MATCH_REGEX] = "regex",
	};

	if (!m)
		return;
	jw_key(w, key);
	jw_open(w, '{');
	jw_key(w, kinds[m->kind]);
	jw_strn(w, m->text, m->len);
	jw_close(w, '}');
}

static void dump_kvs(struct jw *w, const char *key,
		     const struct fb_kv_matcher *kv, size_t n)
{
	if (!n)
		return;
	jw_key(w, key);
	jw_open(w, '[');
	for (size_t i = 0; i < n; i++) {
		jw_open(w, '{');
		dump_matcher(w, "key", kv[i].key);
		dump_matcher(w, "value", kv[i].value);
		jw_close(w, '}');
	}
	jw_close(w, ']');
}

static void dump_match(struct jw *w, const struct fb_match *m)
{
	if (!m)
		return;
	jw_key(w, "match");
	jw_open(w, '{');
	dump_matcher(w, "path", m->path);
	if (m->nmethods) {
		jw_key(w, "method");
		jw_open(w, '[');
		for (size_t i = 0; i < m->nmethods; i++)
			jw_str(w, m->methods[i]);
		jw_close(w, ']');
	}
	dump_kvs(w, "queryString", m->query, m->nquery);
	dump_kvs(w, "headers", m->headers, m->nheaders);
	jw_close(w, '}');
}

static void dump_response(struct jw *w, const struct fb_rule *r)
{
	jw_key(w, "response");
	jw_open(w, '{');
	jw_key(w, "statusCode");
	jw_int(w, r->status);
	if (r->body) {
		jw_key(w, "body");
		jw_strn(w, r->body, r->body_len);
		jw_key(w, "contentType");
		jw_str(w, r->content_type);
	}
	jw_close(w, '}');
}

static void dump_cidrs(struct jw *w, const char *key,
		       const struct fb_policy *p, int which)
{
	char text[FB_CIDR_STRLEN];

	jw_key(w, key);
	jw_open(w, '[');
	for (size_t i = 0; i < p->nsubnets[which]; i++) {
		fb_cidr_format(&p->subnets[which][i], text, sizeof(text));
		jw_str(w, text);
	}
	jw_close(w, ']');
}

/* ---- the object form ---------------------------------------------------- */

static void dump_rule(struct jw *w, const struct fb_rule *r)
{
	jw_open(w, '{');
	dump_match(w, r->match);
	switch (r->action) {
	case FB_ACT_TRANSFORM:
		/* the model keeps the transforms flattened: one of them */
		jw_key(w, "transform");
		jw_open(w, '[');
		jw_open(w, '{');
		jw_key(w, "headers");
		jw_open(w, '{');
		for (size_t i = 0; i < r->nset; i++) {
			jw_key(w, r->set[i].name);
			jw_str(w, FB_REDACTED);
		}
		jw_close(w, '}');
		jw_close(w, '}');
		jw_close(w, ']');
		break;
	case FB_ACT_FORWARD:
		jw_key(w, "forwardURL");
		jw_str(w, r->forward_url);
		break;
	case FB_ACT_RESPOND:
		dump_response(w, r);
		break;
	}
	jw_close(w, '}');
}

static void dump_object(struct jw *w, const struct fb_policy *p)
{
	jw_open(w, '{');
	jw_key(w, "allow");
	jw_open(w, '{');
	for (size_t i = 0; i < p->ndomains; i++) {
		const struct fb_domain *d = &p->domains[i];

		jw_key(w, d->pattern);
		jw_open(w, '[');
		for (size_t j = 0; j < d->nrules; j++)
			dump_rule(w, &d->rules[j]);
		jw_close(w, ']');
	}
	jw_close(w, '}');
	jw_key(w, "subnets");
	jw_open(w, '{');
	dump_cidrs(w, "allow", p, 0);
	dump_cidrs(w, "deny", p, 1);
	jw_close(w, '}');
	jw_close(w, '}');
}

/* ---- the legacy shape --------------------------------------------------- */

/*
 * One list of the legacy shape: every rule of one action, in key order.
 * Vercel's read-back has injectionRules and forwardRules only; response
 * rules have no legacy field there, so they go to our own "responseRules"
 * (printed only when there are some, so Vercel-shaped readers see nothing
 * new), which the loader accepts back.
 */
static void dump_legacy_rules(struct jw *w, const struct fb_policy *p,
			      enum fb_action action, const char *key)
{
	bool any = false;

	for (size_t i = 0; i < p->ndomains && !any; i++)
		for (size_t j = 0; j < p->domains[i].nrules; j++)
			any |= p->domains[i].rules[j].action == action;
	if (!any && action == FB_ACT_RESPOND)
		return;
	jw_key(w, key);
	jw_open(w, '[');
	for (size_t i = 0; i < p->ndomains; i++) {
		const struct fb_domain *d = &p->domains[i];

		for (size_t j = 0; j < d->nrules; j++) {
			const struct fb_rule *r = &d->rules[j];

			if (r->action != action)
				continue;
			jw_open(w, '{');
			jw_key(w, "domain");
			jw_str(w, d->pattern);
			if (action == FB_ACT_TRANSFORM) {
				jw_key(w, "headerNames");
				jw_open(w, '[');
				for (size_t k = 0; k < r->nset; k++)
					jw_str(w, r->set[k].name);
				jw_close(w, ']');
			} else if (action == FB_ACT_FORWARD) {
				jw_key(w, "forwardURL");
				jw_str(w, r->forward_url);
			} else {
				dump_response(w, r);
			}
			dump_match(w, r->match);
			jw_close(w, '}');
		}
	}
	jw_close(w, ']');
}

static void dump_legacy(struct jw *w, const struct fb_policy *p)
{
	jw_open(w, '{');
	jw_key(w, "mode");
	if (p->mode != FB_MODE_CUSTOM) {
		jw_str(w, p->mode == FB_MODE_ALLOW_ALL ? "allow-all" : "deny-all");
		jw_close(w, '}');
		return;
	}
	jw_str(w, "custom");
	jw_key(w, "allowedDomains");
	jw_open(w, '[');
	for (size_t i = 0; i < p->ndomains; i++)
		jw_str(w, p->domains[i].pattern);
	jw_close(w, ']');
	dump_cidrs(w, "allowedCIDRs", p, 0);
	dump_cidrs(w, "deniedCIDRs", p, 1);
	dump_legacy_rules(w, p, FB_ACT_TRANSFORM, "injectionRules");
	dump_legacy_rules(w, p, FB_ACT_FORWARD, "forwardRules");
	dump_legacy_rules(w, p, FB_ACT_RESPOND, "responseRules");
	jw_close(w, '}');
}

char *fb_policy_dump(const struct fb_policy *p, bool legacy)
{
	struct jw w = { 0 };
	char *out = NULL;
	size_t len;

	w.f = open_memstream(&out, &len);
	if (!w.f)
		return NULL;
	if (legacy)
		dump_legacy(&w, p);
	else if (p->mode == FB_MODE_CUSTOM)
		dump_object(&w, p);
	else
		jw_str(&w, p->mode == FB_MODE_ALLOW_ALL ? "allow-all" : "deny-all");
	fputc('\n', w.f);
	if (fclose(w.f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* ---- the source, secret references as written --------------------------- */

/* A plain number or boolean stays bare, so that it reads back as one. */
static bool bare(const struct fb_node *n)
{
	const char *what = fb_node_what(n);

	return !strcmp(what, "a number") || !strcmp(what, "a boolean");
}

static int dump_node(struct jw *w, const struct fb_node *n)
{
	switch (n->kind) {
	case FB_NODE_NULL:
		jw_item(w);
		fputs("null", w->f);
		return 0;
	case FB_NODE_SCALAR:
		if (bare(n)) {
			jw_item(w);
			fputs(n->text, w->f);
		} else {
			jw_strn(w, n->text, n->len);
		}
		return 0;
	case FB_NODE_SEQ:
	case FB_NODE_MAP:
		break;
	}
	if (w->depth + 1 >= JW_MAX_DEPTH)
		return -1;
	jw_open(w, n->kind == FB_NODE_MAP ? '{' : '[');
	for (size_t i = 0; i < n->n; i++) {
		if (n->kind == FB_NODE_MAP)
			jw_key(w, n->keys[i]->text);
		if (dump_node(w, n->vals[i]) < 0)
			return -1;
	}
	jw_close(w, n->kind == FB_NODE_MAP ? '}' : ']');
	return 0;
}

/* Two FNV-1a lanes with different multipliers, each byte into both. */
static void fingerprint(uint64_t h[2], const void *data, size_t len)
{
	const unsigned char *b = data;

	for (size_t i = 0; i < len; i++) {
		h[0] = (h[0] ^ b[i]) * 0x100000001b3ull;
		h[1] = (h[1] ^ b[i]) * 0x9e3779b97f4a7c15ull;
	}
}

/*
 * The source tree into the fingerprint as dump_node would write it, but
 * with no text made: each node's kind (a scalar's bare or not), each text
 * and key with its length, so that two trees hash alike where dump_node
 * writes them alike.  -1 past the depth dump_node refuses.
 */
static int fingerprint_node(uint64_t h[2], const struct fb_node *n,
			    unsigned depth)
{
	unsigned char tag = (unsigned char)n->kind;

	if (n->kind == FB_NODE_SCALAR && bare(n))
		tag |= 0x80;
	fingerprint(h, &tag, 1);
	switch (n->kind) {
	case FB_NODE_NULL:
		return 0;
	case FB_NODE_SCALAR:
		fingerprint(h, &n->len, sizeof(n->len));
		fingerprint(h, n->text, n->len);
		return 0;
	case FB_NODE_SEQ:
	case FB_NODE_MAP:
		break;
	}
	if (depth + 1 >= JW_MAX_DEPTH)
		return -1;
	fingerprint(h, &n->n, sizeof(n->n));
	for (size_t i = 0; i < n->n; i++) {
		if (n->kind == FB_NODE_MAP) {
			size_t klen = strlen(n->keys[i]->text);

			fingerprint(h, &klen, sizeof(klen));
			fingerprint(h, n->keys[i]->text, klen);
		}
		if (fingerprint_node(h, n->vals[i], depth + 1) < 0)
			return -1;
	}
	return 0;
}

int fb_policy_digest(const struct fb_policy *p, uint64_t out[2])
{
	uint64_t h[2] = { 0xcbf29ce484222325ull, 0x84222325cbf29ce4ull };

	fingerprint(h, &p->mode, sizeof(p->mode));
	if (p->source && fingerprint_node(h, p->source, 0) < 0)
		return -1;
	for (size_t i = 0; i < p->ndomains; i++) {
		const struct fb_domain *d = &p->domains[i];

		for (size_t j = 0; j < d->nrules; j++)
			for (size_t k = 0; k < d->rules[j].nset; k++) {
				const char *v = d->rules[j].set[k].value;

				fingerprint(h, v, strlen(v) + 1);
			}
	}
	out[0] = fb_fmix64(h[0]);
	out[1] = fb_fmix64(h[1]);
	return 0;
}

char *fb_policy_source(const struct fb_policy *p)
{
	struct jw w = { 0 };
	char *out = NULL;
	size_t len;
	int rc;

	w.f = open_memstream(&out, &len);
	if (!w.f)
		return NULL;
	rc = p->source ? dump_node(&w, p->source) : -1;
	fputc('\n', w.f);
	if (fclose(w.f) != 0 || rc < 0) {
		free(out);
		return NULL;
	}
	return out;
}
