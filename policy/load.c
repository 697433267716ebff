/*
 * load.c — a policy document to a validated, complete model.
 *
 * Two steps.  First the document's shape is recognised and rewritten into
 * the canonical object form: the mode strings stay strings, a list-form
 * `allow` becomes a map, and the legacy read-back shape (mode: custom,
 * allowedDomains, injectionRules, ...) is converted as Vercel's SDK does
 * (per domain, every injection rule, then every forward rule).  Second,
 * the canonical tree is checked and turned into `struct fb_policy`.  The
 * canonical tree is kept (with secret references as written) so that a
 * merge patch applies to exactly what the policy says.
 *
 * Every problem is reported, not just the first; any problem and the
 * result is NULL with nothing kept.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "policy/doc.h"
#include "policy/internal.h"
#include "policy/secret.h"

#define REGEX_MAX_DEFAULT (64u << 10)
#define RULE_MAX_HEADERS 100 /* headers one rule may set */
#define QUOTE_MAX 80         /* bytes of a value quoted in a message */

struct loader {
	struct fb_report *r;
	size_t regex_max;
	pcre2_compile_context *cctx;
};

/* ---- helpers ------------------------------------------------------------ */

/*
 * What a message says about a node: "a list", "a string \"x\"".  The
 * buffer is a compound literal, alive until the end of the statement that
 * uses found(), so two can appear in one message.
 */
#define DESCRIBE_MAX (QUOTE_MAX + 32)
#define found(n) describe((n), true, (char[DESCRIBE_MAX]){ 0 })
/* A scalar's text in quotes (cut at QUOTE_MAX bytes) for a message. */
#define quoted(n) describe((n), false, (char[DESCRIBE_MAX]){ 0 })

static const char *describe(const struct fb_node *n, bool what, char *b)
{
	int len = (int)(n->len > QUOTE_MAX ? QUOTE_MAX : n->len);

	if (n->kind != FB_NODE_SCALAR)
		snprintf(b, DESCRIBE_MAX, "%s", fb_node_what(n));
	else if (what)
		snprintf(b, DESCRIBE_MAX, "%s \"%.*s\"", fb_node_what(n), len,
			 n->text);
	else
		snprintf(b, DESCRIBE_MAX, "\"%.*s\"", len, n->text);
	return b;
}

/*
 * A URL as a message quotes it, its credentials (user:password@) and its
 * query or fragment shown as "..." only: an operator may have put a token
 * there, and messages reach logs (a refused SIGHUP's audit line).
 */
#define url_quoted(n) describe_url((n), (char[DESCRIBE_MAX]){ 0 })

static const char *describe_url(const struct fb_node *n, char *b)
{
	const char *s = n->text, *end = s + n->len, *scheme, *host, *at = NULL;
	const char *auth_end, *rest;
	char clean[QUOTE_MAX + 1];
	int len;

	scheme = memmem(s, n->len, "://", 3);
	host = scheme ? scheme + 3 : s;
	auth_end = host + strcspn(host, "/?#");
	if (auth_end > end)
		auth_end = end;
	for (const char *c = host; c < auth_end; c++)
		if (*c == '@')
			at = c;
	rest = host + strcspn(host, "?#");
	if (rest > end)
		rest = end;
	len = snprintf(clean, sizeof(clean), "%.*s%s%.*s%s%s",
		       (int)(host - s), s, at ? "...@" : "",
		       (int)(rest - (at ? at + 1 : host)), at ? at + 1 : host,
		       rest < end ? (*rest == '?' ? "?" : "#") : "",
		       rest < end ? "..." : "");
	if (len < 0)
		len = 0;
	snprintf(b, DESCRIBE_MAX, "\"%.*s\"",
		 len > QUOTE_MAX ? QUOTE_MAX : len, clean);
	return b;
}

/* "transform and forwardURL": which of `keys` the map has. */
static void list_present(const struct fb_node *map, const char *const *keys,
			 char *out, size_t size)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; keys[i]; i++) {
		if (!fb_node_get(map, keys[i]))
			continue;
		n += (size_t)snprintf(out + n, size - n, "%s%s",
				      n ? " and " : "", keys[i]);
		if (n >= size)
			return;
	}
}

/* A map's keys must come from `allowed` (NULL-terminated); each stranger
 * is reported with the list of what was expected. */
static void check_keys(struct loader *L, const struct fb_node *map,
		       const char *const *allowed, const char *where)
{
	for (size_t i = 0; i < map->n; i++) {
		const struct fb_node *k = map->keys[i];
		char expected[256] = "";
		size_t j;

		for (j = 0; allowed[j]; j++)
			if (fb_node_is(k, allowed[j]))
				break;
		if (allowed[j])
			continue;
		for (j = 0; allowed[j]; j++) {
			if (j)
				strcat(expected, allowed[j + 1] ? ", " : " or ");
			strcat(expected, allowed[j]);
		}
		fb_report(L->r, k, "unknown key \"%.*s\" in %s: expected %s",
			  (int)(k->len > QUOTE_MAX ? QUOTE_MAX : k->len),
			  k->text, where, expected);
	}
}

/*
 * Step 2 runs on after an allocation fails, to report every other problem;
 * the failure is reported too, so that build() refuses the policy instead
 * of keeping it with a matcher, header, rule or CIDR list missing (a rule
 * whose path matcher is missing would match every path).
 */
static void out_of_memory(struct loader *L)
{
	fb_report(L->r, NULL, "out of memory");
}

/* A scalar that stands for a string; reports and returns NULL otherwise. */
static const char *want_string(struct loader *L, const struct fb_node *n,
			       const char *what)
{
	if (n->kind == FB_NODE_SCALAR)
		return n->text;
	fb_report(L->r, n, "expected %s, found %s", what, found(n));
	return NULL;
}

static bool is_tchar(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* An RFC 9110 token: header names and methods. */
static bool is_token(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_tchar((unsigned char)s[i]))
			return false;
	return true;
}

/* A NUL-terminated copy of len bytes (which may hold NULs). */
static char *dup_bytes(const char *s, size_t len, bool lower)
{
	char *d = malloc(len + 1);

	if (!d)
		return NULL;
	for (size_t i = 0; i < len; i++)
		d[i] = lower ? (char)tolower((unsigned char)s[i]) : s[i];
	d[len] = '\0';
	return d;
}

/* ---- step 1: the document's shape to the canonical object form ---------- */

static const char *const object_keys[] = { "allow", "subnets", NULL };
static const char *const legacy_keys[] = {
	"mode", "allowedDomains", "allowedCIDRs", "deniedCIDRs",
	"injectionRules", "forwardRules", "responseRules", NULL
};
static const char *const policy_keys[] = {
	"allow", "subnets", "mode", "allowedDomains", "allowedCIDRs",
	"deniedCIDRs", "injectionRules", "forwardRules", "responseRules", NULL
};

static bool in_list(const struct fb_node *k, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (fb_node_is(k, list[i]))
			return true;
	return false;
}

static struct fb_node *put_new(struct fb_node *map, const char *key,
			       struct fb_node *val, const struct fb_node *at)
{
	struct fb_node *k;

	if (!val)
		return NULL;
	k = fb_node_new_scalar(key, strlen(key), at->line, at->col);
	if (!k || fb_node_put(map, k, val) < 0) {
		fb_node_free(k);
		fb_node_free(val);
		return NULL;
	}
	return val;
}

/*
 * The value under `key`, taken out of the document (its slot left NULL,
 * which fb_node_free skips): the canonical form is made of the document's
 * own nodes, not copies of them, and the caller frees what is left.
 */
static struct fb_node *take(struct fb_node *map, const char *key)
{
	for (size_t i = 0; i < map->n; i++) {
		struct fb_node *v = map->vals[i];

		if (v && fb_node_is(map->keys[i], key)) {
			map->vals[i] = NULL;
			return v;
		}
	}
	return NULL;
}

/* list-form allow → map of domain to no rules; the items become the keys */
static struct fb_node *allow_list_to_map(struct loader *L,
					 struct fb_node *list)
{
	struct fb_node *map = fb_node_new_in(list->arena, FB_NODE_MAP,
					     list->line, list->col);

	if (map && fb_node_reserve(map, list->n) < 0) {
		fb_node_free(map);
		return NULL;
	}
	for (size_t i = 0; map && i < list->n; i++) {
		struct fb_node *k = list->vals[i], *v;

		if (!want_string(L, k, "a domain"))
			continue;
		v = fb_node_new_in(list->arena, FB_NODE_SEQ, k->line, k->col);
		if (!v || fb_node_put(map, k, v) < 0) {
			fb_node_free(v);
			fb_node_free(map);
			return NULL;
		}
		list->vals[i] = NULL;
	}
	return map;
}

static struct fb_node *canonical_object(struct loader *L, struct fb_node *doc)
{
	struct fb_node *out = fb_node_new(FB_NODE_MAP, doc->line, doc->col);
	struct fb_node *allow = fb_node_get(doc, "allow");
	struct fb_node *subnets = take(doc, "subnets");
	struct fb_node *v = NULL;

	if (!out) {
		fb_node_free(subnets);
		return NULL;
	}
	if (allow) {
		if (allow->kind == FB_NODE_SEQ)
			v = allow_list_to_map(L, allow);
		else if (allow->kind == FB_NODE_MAP)
			v = take(doc, "allow");
		else if (allow->kind == FB_NODE_NULL)
			v = fb_node_new(FB_NODE_MAP, allow->line, allow->col);
		else
			fb_report(L->r, allow, "expected a list of domains or "
				  "a map of domain to rules, found %s",
				  found(allow));
		/* a NULL `v` for a list, map or null is ENOMEM */
		if (allow->kind != FB_NODE_SCALAR &&
		    !put_new(out, "allow", v, allow))
			goto nomem;
	}
	if (subnets && !put_new(out, "subnets", subnets, subnets))
		goto nomem;
	return out;
nomem:
	fb_node_free(out);
	return NULL;
}

/* ---- the legacy read-back shape ---- */

/*
 * The allow map being built from a legacy policy, with each key's
 * normalised name so that rules join the key they belong to.  A hash
 * table finds that key: a generated policy may hold 100k domains and as
 * many rules, and a search per rule would be quadratic.
 */
struct legacy_allow {
	struct fb_node *allow;     /* the map being built */
	char (*norm)[FB_NAME_MAX]; /* the normalised name of each key */
	size_t cap;                /* of norm */
	uint32_t *slots;           /* first key of a name, index + 1; 0: free */
	size_t mask;               /* slot count - 1, a power of two */
};

static const char *norm_or_raw(const struct fb_node *k, char out[FB_NAME_MAX])
{
	const char *why;

	if (fb_pattern_normalize(k->text, k->len, out, &why) < 0)
		snprintf(out, FB_NAME_MAX, "%.*s",
			 (int)(k->len >= FB_NAME_MAX ? FB_NAME_MAX - 1 : k->len),
			 k->text);
	return out;
}

/* The slot that holds `name`'s first key, or the free slot it would take. */
static uint32_t *legacy_slot(const struct legacy_allow *lk, const char *name)
{
	size_t i = fb_name_hash(0, name, strlen(name)) & lk->mask;

	for (;; i = (i + 1) & lk->mask) {
		uint32_t k = lk->slots[i];

		if (!k || !strcmp(lk->norm[k - 1], name))
			return &lk->slots[i];
	}
}

/* Room for one more key, with the table at most half full. */
static int legacy_reserve(struct legacy_allow *lk)
{
	size_t n = lk->allow->n, size = lk->mask + 1;
	uint32_t *old = lk->slots;

	if (n == lk->cap) {
		size_t cap = lk->cap ? 2 * lk->cap : 16;
		void *grown = reallocarray(lk->norm, cap, sizeof(*lk->norm));

		if (!grown)
			return -1;
		lk->norm = grown;
		lk->cap = cap;
	}
	if (old && 2 * (n + 1) <= size)
		return 0;
	size = old ? 2 * size : 32;
	if (n >= UINT32_MAX || !(lk->slots = calloc(size, sizeof(*old)))) {
		lk->slots = old;
		return -1;
	}
	lk->mask = size - 1;
	for (size_t i = 0; i < n; i++) {
		uint32_t *slot = legacy_slot(lk, lk->norm[i]);

		if (!*slot) /* a later duplicate never takes the slot */
			*slot = (uint32_t)i + 1;
	}
	free(old);
	return 0;
}

/* A new key with no rules yet; its rule list, or NULL on ENOMEM. */
static struct fb_node *legacy_add_key(struct legacy_allow *lk,
				      const struct fb_node *domain)
{
	struct fb_node *map = lk->allow, *k, *v;
	uint32_t *slot;

	if (legacy_reserve(lk) < 0)
		return NULL;
	k = fb_node_copy(domain, true);
	v = fb_node_new(FB_NODE_SEQ, domain->line, domain->col);
	if (!k || !v || fb_node_put(map, k, v) < 0) {
		fb_node_free(k);
		fb_node_free(v);
		return NULL;
	}
	norm_or_raw(domain, lk->norm[map->n - 1]);
	slot = legacy_slot(lk, lk->norm[map->n - 1]);
	if (!*slot)
		*slot = (uint32_t)map->n;
	return v;
}

/* The rule list of the key `domain` names, added when new. */
static struct fb_node *legacy_key(struct legacy_allow *lk,
				  const struct fb_node *domain)
{
	char name[FB_NAME_MAX];
	uint32_t k;

	if (lk->slots) {
		k = *legacy_slot(lk, norm_or_raw(domain, name));
		if (k)
			return lk->allow->vals[k - 1];
	}
	return legacy_add_key(lk, domain);
}

/* One rule entry of injectionRules / forwardRules / responseRules. */
struct legacy_kind {
	const char *list;    /* "injectionRules" */
	const char *field;   /* the entry's action field: "headers" */
	const char *const *keys;
};

static const char *const injection_keys[] = { "domain", "headers", "match", NULL };
static const char *const forward_keys[] = { "domain", "forwardURL", "match", NULL };
static const char *const response_keys[] = { "domain", "response", "match", NULL };

static const struct legacy_kind legacy_kinds[] = {
	{ "injectionRules", "headers", injection_keys },
	{ "forwardRules", "forwardURL", forward_keys },
	{ "responseRules", "response", response_keys },
};

/* The object-form rule for a legacy entry: {match?, transform|forwardURL|response}. */
static struct fb_node *legacy_rule(const struct legacy_kind *kind,
				   const struct fb_node *entry,
				   const struct fb_node *action)
{
	struct fb_node *rule = fb_node_new(FB_NODE_MAP, entry->line, entry->col);
	const struct fb_node *match = fb_node_get(entry, "match");
	struct fb_node *list, *transform;

	if (!rule)
		return NULL;
	if (match && !put_new(rule, "match", fb_node_copy(match, true), match))
		goto nomem;
	if (kind->keys != injection_keys) {
		if (!put_new(rule, kind->field, fb_node_copy(action, true), action))
			goto nomem;
		return rule;
	}
	/* headers: {...} → transform: [{headers: {...}}] */
	list = put_new(rule, "transform",
		       fb_node_new(FB_NODE_SEQ, action->line, action->col),
		       action);
	transform = fb_node_new(FB_NODE_MAP, action->line, action->col);
	if (!list || !transform || fb_node_append(list, transform) < 0) {
		fb_node_free(transform);
		goto nomem;
	}
	if (!put_new(transform, "headers", fb_node_copy(action, true), action))
		goto nomem;
	return rule;
nomem:
	fb_node_free(rule);
	return NULL;
}

static int legacy_rules(struct loader *L, struct legacy_allow *lk,
			const struct legacy_kind *kind,
			const struct fb_node *list)
{
	if (list->kind == FB_NODE_NULL)
		return 0;
	if (list->kind != FB_NODE_SEQ) {
		fb_report(L->r, list, "expected a list of rules in %s, found %s",
			  kind->list, found(list));
		return 0;
	}
	for (size_t i = 0; i < list->n; i++) {
		const struct fb_node *e = list->vals[i], *domain, *action, *hn;
		struct fb_node *rules, *rule;
		char where[64];

		if (e->kind != FB_NODE_MAP) {
			fb_report(L->r, e, "expected a rule map in %s, found %s",
				  kind->list, found(e));
			continue;
		}
		hn = fb_node_get(e, "headerNames");
		if (hn && kind->keys == injection_keys) {
			fb_report(L->r, hn, "headerNames is read-back only: write "
				  "headers with the values (or ${env:NAME} "
				  "references) instead");
			continue;
		}
		snprintf(where, sizeof(where), "an entry of %s", kind->list);
		check_keys(L, e, kind->keys, where);
		domain = fb_node_get(e, "domain");
		action = fb_node_get(e, kind->field);
		if (!domain || !action) {
			fb_report(L->r, e, "an entry of %s needs domain and %s",
				  kind->list, kind->field);
			continue;
		}
		if (!want_string(L, domain, "a domain"))
			continue;
		rules = legacy_key(lk, domain);
		rule = rules ? legacy_rule(kind, e, action) : NULL;
		if (!rule || fb_node_append(rules, rule) < 0) {
			fb_node_free(rule);
			return -1;
		}
	}
	return 0;
}

static struct fb_node *canonical_legacy(struct loader *L,
					const struct fb_node *doc)
{
	const struct fb_node *mode = fb_node_get(doc, "mode");
	const struct fb_node *domains = fb_node_get(doc, "allowedDomains");
	struct legacy_allow lk = { 0 };
	struct fb_node *out, *subnets;

	if (mode && !fb_node_is(mode, "custom")) {
		if (!fb_node_is(mode, "allow-all") && !fb_node_is(mode, "deny-all")) {
			fb_report(L->r, mode, "expected mode allow-all, deny-all "
				  "or custom, found %s", found(mode));
			return NULL;
		}
		for (size_t i = 0; i < doc->n; i++)
			if (in_list(doc->keys[i], legacy_keys) &&
			    !fb_node_is(doc->keys[i], "mode"))
				fb_report(L->r, doc->keys[i], "%s needs mode "
					  "custom, found mode %s",
					  doc->keys[i]->text, mode->text);
		return fb_node_copy(mode, true);
	}
	out = fb_node_new(FB_NODE_MAP, doc->line, doc->col);
	lk.allow = out ? fb_node_new(FB_NODE_MAP, doc->line, doc->col) : NULL;
	if (!lk.allow || !put_new(out, "allow", lk.allow, doc))
		goto nomem;
	if (domains && domains->kind == FB_NODE_SEQ) {
		/* each entry is a key; duplicates are reported in step 2 */
		for (size_t i = 0; i < domains->n; i++)
			if (want_string(L, domains->vals[i], "a domain") &&
			    !legacy_add_key(&lk, domains->vals[i]))
				goto nomem;
	} else if (domains && domains->kind != FB_NODE_NULL) {
		fb_report(L->r, domains, "expected a list of domains in "
			  "allowedDomains, found %s", found(domains));
	}
	for (size_t i = 0; i < sizeof(legacy_kinds) / sizeof(legacy_kinds[0]); i++) {
		const struct fb_node *list = fb_node_get(doc, legacy_kinds[i].list);

		if (list && legacy_rules(L, &lk, &legacy_kinds[i], list) < 0)
			goto nomem;
	}
	subnets = fb_node_new(FB_NODE_MAP, doc->line, doc->col);
	if (!put_new(out, "subnets", subnets, doc))
		goto nomem;
	for (int which = 0; which < 2; which++) {
		const char *from = which ? "deniedCIDRs" : "allowedCIDRs";
		const struct fb_node *cidrs = fb_node_get(doc, from);

		if (cidrs && !put_new(subnets, which ? "deny" : "allow",
				      fb_node_copy(cidrs, true), cidrs))
			goto nomem;
	}
	free(lk.norm);
	free(lk.slots);
	return out;
nomem:
	free(lk.norm);
	free(lk.slots);
	fb_node_free(out);
	return NULL;
}

/* Step 1.  NULL with errors reported (or on ENOMEM, also reported).
 * Takes nodes out of `doc`; the caller still frees it. */
static struct fb_node *canonical(struct loader *L, struct fb_node *doc)
{
	const struct fb_node *first_object = NULL, *first_legacy = NULL;
	struct fb_node *out;

	switch (doc->kind) {
	case FB_NODE_NULL:
		fb_report(L->r, doc, "empty policy: write deny-all to refuse "
			  "everything");
		return NULL;
	case FB_NODE_SCALAR:
		if (fb_node_is(doc, "allow-all") || fb_node_is(doc, "deny-all"))
			return fb_node_copy(doc, true);
		/* fall through */
	case FB_NODE_SEQ:
		fb_report(L->r, doc, "expected allow-all, deny-all or a map "
			  "with allow and subnets, found %s", found(doc));
		return NULL;
	case FB_NODE_MAP:
		break;
	}
	for (size_t i = 0; i < doc->n; i++) {
		const struct fb_node *k = doc->keys[i];

		if (in_list(k, object_keys) && !first_object)
			first_object = k;
		else if (in_list(k, legacy_keys) && !first_legacy)
			first_legacy = k;
	}
	if (first_object && first_legacy) {
		bool object_later = first_object->line > first_legacy->line ||
			(first_object->line == first_legacy->line &&
			 first_object->col > first_legacy->col);
		const struct fb_node *later = object_later ? first_object :
							     first_legacy;

		fb_report(L->r, later, "%s and %s cannot be used together: "
			  "write either the object form (allow, subnets) or "
			  "the legacy shape (mode, allowedDomains, ...)",
			  first_legacy->text, first_object->text);
		return NULL;
	}
	check_keys(L, doc, policy_keys, "the policy");
	out = first_legacy ? canonical_legacy(L, doc) : canonical_object(L, doc);
	if (!out && L->r->count == 0)
		fb_report(L->r, doc, "out of memory");
	return out;
}

/* ---- step 2: the canonical tree to the model ---------------------------- */

static void matcher_free(struct fb_matcher *m)
{
	if (!m)
		return;
	pcre2_code_free(m->re);
	pcre2_code_free(m->re_fold);
	free(m->text);
	free(m);
}

static void kv_free(struct fb_kv_matcher *kv, size_t n)
{
	for (size_t i = 0; kv && i < n; i++) {
		matcher_free(kv[i].key);
		matcher_free(kv[i].value);
	}
	free(kv);
}

static void match_free(struct fb_match *m)
{
	if (!m)
		return;
	matcher_free(m->path);
	for (size_t i = 0; i < m->nmethods; i++)
		free(m->methods[i]);
	free(m->methods);
	kv_free(m->query, m->nquery);
	kv_free(m->headers, m->nheaders);
	free(m);
}

static void rule_free(struct fb_rule *r)
{
	match_free(r->match);
	for (size_t i = 0; i < r->nset; i++) {
		free(r->set[i].name);
		fb_secret_free(r->set[i].value, strlen(r->set[i].value));
		free(r->set[i].source);
	}
	free(r->set);
	free(r->forward_url);
	free(r->content_type);
	free(r->body);
}

static void domain_free(struct fb_domain *d)
{
	for (size_t i = 0; i < d->nrules; i++)
		rule_free(&d->rules[i]);
	free(d->rules);
}

void fb_policy_destroy(struct fb_policy *p)
{
	if (!p)
		return;
	fb_policy_uncompile(p);
	for (size_t i = 0; i < p->ndomains; i++)
		domain_free(&p->domains[i]);
	free(p->subnets[0]);
	free(p->subnets[1]);
	free(p->publics);
	fb_node_free(p->source);
	fb_arena_free(p->arena); /* the domains, patterns, most of the source */
	free(p);
}

/* What a matcher compares with. */
enum matched {
	MATCHED_VALUE,
	MATCHED_NAME, /* a header name: without case */
	MATCHED_URI,  /* a query value: fb_uri_normalize()'s form */
	MATCHED_ROUTE, /* a path or query key: that form, and without case
			* for a rule that answers (request.c) */
};

/*
 * An escape a URI regex spells out ("%2f", "%66") must be in the normal
 * form requests are matched in ("%2F", "f"), or it never matches: false
 * after reporting the first that is not.
 */
static bool regex_escapes_normal(struct loader *L, const struct fb_node *v)
{
	for (const char *p = v->text; (p = memchr(p, '%', v->len -
			(size_t)(p - v->text))); p++) {
		char esc[3];
		size_t len = sizeof(esc);

		if (v->len - (size_t)(p - v->text) < 3)
			break;
		memcpy(esc, p, sizeof(esc));
		if (fb_uri_normalize(esc, &len) < 0 ||
		    (len == 3 && !memcmp(esc, p, 3)))
			continue; /* not an escape, or a normal one */
		fb_report(L->r, v, "regex %s never matches %.3s: requests are "
			  "matched with escapes of letters, digits and -._~ "
			  "decoded and the others in upper case (RFC 3986 "
			  "section 6.2.2); write \"%.*s\"", quoted(v), p,
			  (int)len, esc);
		return false;
	}
	return true;
}

/* v's pattern compiled with options, or NULL (reported). */
static pcre2_code *compile_regex(struct loader *L, const struct fb_node *v,
				 uint32_t options)
{
	PCRE2_SIZE offset, size;
	pcre2_code *re;
	int code;

	re = pcre2_compile((PCRE2_SPTR)v->text, v->len, options, &code,
			   &offset, L->cctx);
	if (!re) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(code, msg, sizeof(msg));
		fb_report(L->r, v, "invalid regex: %s at offset %zu",
			  (const char *)msg, (size_t)offset);
		return NULL;
	}
	pcre2_pattern_info(re, PCRE2_INFO_SIZE, &size);
	if (size > L->regex_max) {
		fb_report(L->r, v, "regex compiles to %zu bytes, more than the "
			  "limit of %zu", (size_t)size, L->regex_max);
		pcre2_code_free(re);
		return NULL;
	}
	return re;
}

/* {exact|startsWith|regex: string} */
static struct fb_matcher *load_matcher(struct loader *L,
				       const struct fb_node *n,
				       enum matched what)
{
	static const char *const kinds[] = { "exact", "startsWith", "regex", NULL };
	bool fold = what == MATCHED_NAME;
	const struct fb_node *v = NULL;
	struct fb_matcher *m;
	int kind = -1, nkinds = 0;
	char present[64];

	if (n->kind != FB_NODE_MAP) {
		fb_report(L->r, n, "expected a matcher {exact|startsWith|regex: "
			  "string}, found %s", found(n));
		return NULL;
	}
	check_keys(L, n, kinds, "a matcher");
	for (int k = 0; kinds[k]; k++) {
		if (!fb_node_get(n, kinds[k]))
			continue;
		if (nkinds++ == 0) {
			kind = k;
			v = fb_node_get(n, kinds[k]);
		}
	}
	if (nkinds == 0) {
		fb_report(L->r, n, "a matcher needs one of exact, startsWith or "
			  "regex");
		return NULL;
	}
	if (nkinds > 1) {
		list_present(n, kinds, present, sizeof(present));
		fb_report(L->r, n, "a matcher takes exactly one of exact, "
			  "startsWith or regex, found %s", present);
		return NULL;
	}
	if (!want_string(L, v, "a string to match"))
		return NULL;
	m = calloc(1, sizeof(*m));
	if (!m) {
		out_of_memory(L);
		return NULL;
	}
	m->kind = (enum fb_match_kind)kind; /* same order as `kinds` */
	m->text = dup_bytes(v->text, v->len, fold && m->kind != FB_MATCH_REGEX);
	m->len = v->len;
	if (!m->text) {
		out_of_memory(L);
		matcher_free(m);
		return NULL;
	}
	/* a literal no normalized request holds would never match */
	if ((what == MATCHED_URI || what == MATCHED_ROUTE) &&
	    m->kind != FB_MATCH_REGEX) {
		size_t len = m->len;

		if (fb_uri_normalize(m->text, &len) < 0) {
			fb_report(L->r, v, "%s never matches: a '%%' in a path "
				  "or query starts an escape, two hex digits "
				  "(write a '%%' as %%25)", quoted(v));
			matcher_free(m);
			return NULL;
		}
		if (len != m->len || memcmp(m->text, v->text, len)) {
			fb_report(L->r, v, "%s never matches: requests are "
				  "matched with escapes of letters, digits and "
				  "-._~ decoded and the others in upper case "
				  "(RFC 3986 section 6.2.2); write \"%.*s\"",
				  quoted(v), (int)(len > QUOTE_MAX ? QUOTE_MAX :
						   len), m->text);
			matcher_free(m);
			return NULL;
		}
	}
	if (m->kind != FB_MATCH_REGEX)
		return m;
	if ((what == MATCHED_URI || what == MATCHED_ROUTE) &&
	    !regex_escapes_normal(L, v)) {
		matcher_free(m);
		return NULL;
	}
	m->re = compile_regex(L, v, fold ? PCRE2_CASELESS : 0);
	if (m->re && what == MATCHED_ROUTE)
		m->re_fold = compile_regex(L, v, PCRE2_CASELESS);
	if (!m->re || (what == MATCHED_ROUTE && !m->re_fold)) {
		matcher_free(m);
		return NULL;
	}
	return m;
}

/* `n` if it is a non-empty list; NULL if absent (no error) or not one. */
static const struct fb_node *want_list(struct loader *L,
				       const struct fb_node *n,
				       const char *name)
{
	if (!n)
		return NULL;
	if (n->kind != FB_NODE_SEQ) {
		fb_report(L->r, n, "expected a list in %s, found %s", name,
			  found(n));
		return NULL;
	}
	if (n->n == 0) {
		fb_report(L->r, n, "%s is an empty list: list at least one "
			  "entry or leave it out", name);
		return NULL;
	}
	return n;
}

static int load_kvs(struct loader *L, const struct fb_node *list,
		    const char *name, enum matched key, enum matched value,
		    struct fb_kv_matcher **out, size_t *nout)
{
	static const char *const keys[] = { "key", "value", NULL };

	*out = calloc(list->n, sizeof(**out));
	if (!*out) {
		out_of_memory(L);
		return -1;
	}
	for (size_t i = 0; i < list->n; i++) {
		const struct fb_node *e = list->vals[i], *k, *v;
		struct fb_kv_matcher *kv = &(*out)[(*nout)++];
		char where[64];

		if (e->kind != FB_NODE_MAP) {
			fb_report(L->r, e, "expected a {key, value} matcher in "
				  "%s, found %s", name, found(e));
			continue;
		}
		snprintf(where, sizeof(where), "a %s matcher", name);
		check_keys(L, e, keys, where);
		k = fb_node_get(e, "key");
		v = fb_node_get(e, "value");
		if (!k && !v)
			fb_report(L->r, e, "a %s matcher needs a key or a value "
				  "matcher", name);
		if (k)
			kv->key = load_matcher(L, k, key);
		if (v)
			kv->value = load_matcher(L, v, value);
	}
	return 0;
}

static struct fb_match *load_match(struct loader *L, const struct fb_node *n)
{
	static const char *const dims[] = { "path", "method", "queryString",
					    "headers", NULL };
	const struct fb_node *path, *methods, *query, *headers;
	struct fb_match *m;

	if (n->kind != FB_NODE_MAP) {
		fb_report(L->r, n, "expected a match map (path, method, "
			  "queryString, headers), found %s", found(n));
		return NULL;
	}
	check_keys(L, n, dims, "match");
	path = fb_node_get(n, "path");
	methods = want_list(L, fb_node_get(n, "method"), "method");
	query = want_list(L, fb_node_get(n, "queryString"), "queryString");
	headers = want_list(L, fb_node_get(n, "headers"), "headers");
	if (!path && !fb_node_get(n, "method") && !fb_node_get(n, "queryString")
	    && !fb_node_get(n, "headers")) {
		fb_report(L->r, n, "match has no dimension: expected at least "
			  "one of path, method, queryString or headers");
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		out_of_memory(L);
		return NULL;
	}
	if (path)
		m->path = load_matcher(L, path, MATCHED_ROUTE);
	if (methods) {
		m->methods = calloc(methods->n, sizeof(*m->methods));
		if (!m->methods) {
			out_of_memory(L);
			goto fail;
		}
		for (size_t i = 0; i < methods->n; i++) {
			const struct fb_node *v = methods->vals[i];

			if (!want_string(L, v, "a method"))
				continue;
			if (!is_token(v->text, v->len)) {
				fb_report(L->r, v, "invalid method %s: expected "
					  "an HTTP token like GET", quoted(v));
				continue;
			}
			m->methods[m->nmethods] = strndup(v->text, v->len);
			if (!m->methods[m->nmethods++]) {
				out_of_memory(L);
				goto fail;
			}
		}
	}
	if (query && load_kvs(L, query, "queryString", MATCHED_ROUTE,
			      MATCHED_URI, &m->query,
			      &m->nquery) < 0)
		goto fail;
	if (headers && load_kvs(L, headers, "headers", MATCHED_NAME,
				MATCHED_VALUE, &m->headers,
				&m->nheaders) < 0)
		goto fail;
	return m;
fail:
	match_free(m);
	return NULL;
}

/* Names a transform must never set: they frame the message or the hop. */
static const char *const framing_headers[] = {
	"content-length", "transfer-encoding", "connection", "keep-alive",
	"te", "trailer", "upgrade", "proxy-connection", NULL
};

static void load_header(struct loader *L, struct fb_rule *r,
			const struct fb_node *name, const struct fb_node *value)
{
	struct fb_header_set *h;
	char err[512];
	char *lower;
	bool refs;

	if (!is_token(name->text, name->len)) {
		fb_report(L->r, name, "invalid header name %s: expected an "
			  "RFC 9110 token (letters, digits, !#$%%&'*+-.^_`|~)",
			  quoted(name));
		return;
	}
	lower = dup_bytes(name->text, name->len, true);
	if (!lower) {
		out_of_memory(L);
		return;
	}
	for (size_t i = 0; framing_headers[i]; i++) {
		if (strcmp(lower, framing_headers[i]) == 0) {
			fb_report(L->r, name, "a transform cannot set %s: it "
				  "frames the message or the connection", lower);
			free(lower);
			return;
		}
	}
	for (size_t i = 0; i < r->nset; i++) {
		if (strcmp(r->set[i].name, lower) == 0) {
			fb_report(L->r, name, "header %s is set twice in this "
				  "rule", lower);
			free(lower);
			return;
		}
	}
	if (value->kind != FB_NODE_SCALAR) {
		fb_report(L->r, value, "expected a header value string, found "
			  "%s", found(value));
		free(lower);
		return;
	}
	h = &r->set[r->nset];
	if (fb_secret_resolve(value->text, value->len, &h->value, &(size_t){ 0 },
			      &refs, err, sizeof(err)) < 0) {
		fb_report(L->r, value, "%s", err);
		free(lower);
		return;
	}
	h->name = lower;
	/* a literal is itself the secret: only references are kept as text */
	h->source = refs ? strndup(value->text, value->len) : NULL;
	r->nset++;
	if (refs && !h->source)
		out_of_memory(L);
}

static void load_transform(struct loader *L, struct fb_rule *r,
			   const struct fb_node *n)
{
	static const char *const keys[] = { "headers", NULL };
	size_t total = 0;

	if (!want_list(L, n, "transform"))
		return;
	for (size_t i = 0; i < n->n; i++) {
		const struct fb_node *h = fb_node_get(n->vals[i], "headers");

		if (n->vals[i]->kind != FB_NODE_MAP) {
			fb_report(L->r, n->vals[i], "expected a transform "
				  "{headers: {name: value}}, found %s",
				  found(n->vals[i]));
			continue;
		}
		check_keys(L, n->vals[i], keys, "a transform");
		if (!h || h->kind != FB_NODE_MAP || h->n == 0) {
			fb_report(L->r, h ? h : n->vals[i], "a transform needs "
				  "headers: a map of header name to value");
			continue;
		}
		total += h->n;
	}
	if (total > RULE_MAX_HEADERS) {
		fb_report(L->r, n, "a rule sets %zu headers, more than the "
			  "limit of %d", total, RULE_MAX_HEADERS);
		return;
	}
	r->set = calloc(total ? total : 1, sizeof(*r->set));
	if (!r->set) {
		out_of_memory(L);
		return;
	}
	for (size_t i = 0; i < n->n; i++) {
		const struct fb_node *h = fb_node_get(n->vals[i], "headers");

		for (size_t j = 0; h && h->kind == FB_NODE_MAP && j < h->n; j++)
			load_header(L, r, h->keys[j], h->vals[j]);
	}
}

/*
 * https://host[:port][/path]: no userinfo, query or fragment; host a name
 * or an IP literal.
 */
static void load_forward_url(struct loader *L, struct fb_rule *r,
			     const struct fb_node *n)
{
	const char *s, *host, *end, *port;
	char name[FB_NAME_MAX], hostbuf[FB_NAME_MAX + 2];
	const char *why = NULL;
	struct fb_addr addr;
	size_t hlen;

	if (!(s = want_string(L, n, "an https URL")))
		return;
	if (strncasecmp(s, "https://", 8) != 0) {
		fb_report(L->r, n, "forwardURL must be an https:// URL, found "
			  "%s %s", fb_node_what(n), url_quoted(n));
		return;
	}
	for (size_t i = 0; i < n->len; i++) {
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f) {
			fb_report(L->r, n, "forwardURL contains a space or "
				  "control character");
			return;
		}
	}
	if (strpbrk(s, "?#")) {
		fb_report(L->r, n, "forwardURL %s has a query or fragment: "
			  "the request's own path and query are appended",
			  url_quoted(n));
		return;
	}
	host = s + 8;
	end = host + strcspn(host, "/");
	if (memchr(host, '@', (size_t)(end - host))) {
		fb_report(L->r, n, "forwardURL must not carry credentials "
			  "(user@host)");
		return;
	}
	if (*host == '[') {
		const char *close = memchr(host, ']', (size_t)(end - host));

		port = close ? close + 1 : end;
		hlen = close ? (size_t)(close - host - 1) : 0;
		host++;
		if (!close || hlen >= sizeof(hostbuf))
			why = "unterminated IPv6 literal";
	} else {
		port = memchr(host, ':', (size_t)(end - host));
		if (!port)
			port = end;
		hlen = (size_t)(port - host);
	}
	if (!why && hlen == 0)
		why = "no host";
	if (!why && hlen >= sizeof(hostbuf))
		why = "host name too long";
	if (!why) {
		memcpy(hostbuf, host, hlen);
		hostbuf[hlen] = '\0';
		/* an IP literal, else a name: `why` says what is wrong */
		if (fb_addr_parse(hostbuf, &addr) < 0)
			fb_name_normalize(hostbuf, hlen, name, &why);
	}
	if (!why && port < end) {
		char *stop;
		long v = *port == ':' && port[1] != '/' && port[1] ?
			strtol(port + 1, &stop, 10) : -1;
		if (v < 1 || v > 65535 || stop != end)
			why = "invalid port";
	}
	if (why) {
		fb_report(L->r, n, "invalid forwardURL %s: %s", url_quoted(n),
			  why);
		return;
	}
	r->forward_url = strndup(s, n->len);
	if (!r->forward_url)
		out_of_memory(L);
}

static void load_response(struct loader *L, struct fb_rule *r,
			  const struct fb_node *n)
{
	static const char *const keys[] = { "statusCode", "body",
					    "contentType", NULL };
	const struct fb_node *status, *body, *type;
	long code;

	if (n->kind != FB_NODE_MAP) {
		fb_report(L->r, n, "expected a response {statusCode, body?, "
			  "contentType?}, found %s", found(n));
		return;
	}
	check_keys(L, n, keys, "response");
	status = fb_node_get(n, "statusCode");
	body = fb_node_get(n, "body");
	type = fb_node_get(n, "contentType");
	if (!status) {
		fb_report(L->r, n, "response needs a statusCode (200-599)");
		return;
	}
	if (status->kind != FB_NODE_SCALAR || status->quoted ||
	    strspn(status->text, "0123456789") != status->len ||
	    status->len == 0 || status->len > 3) {
		fb_report(L->r, status, "expected an integer statusCode "
			  "(200-599), found %s", found(status));
		return;
	}
	code = strtol(status->text, NULL, 10);
	if (code < 200 || code > 599) {
		fb_report(L->r, status, "statusCode %ld out of range 200-599",
			  code);
		return;
	}
	r->status = (int)code;
	if (body && (code == 204 || code == 205 || code == 304)) {
		fb_report(L->r, body, "a %ld response has no body", code);
		return;
	}
	if (body && !type) {
		fb_report(L->r, body, "a response body needs a contentType");
		return;
	}
	if (type && !body) {
		fb_report(L->r, type, "contentType without a body: add a body "
			  "or remove contentType");
		return;
	}
	if (!body)
		return;
	if (!want_string(L, body, "a body string") ||
	    !want_string(L, type, "a content type"))
		return;
	for (size_t i = 0; i < type->len; i++) {
		if ((unsigned char)type->text[i] < 0x20 || type->text[i] == 0x7f) {
			fb_report(L->r, type, "contentType contains a control "
				  "character");
			return;
		}
	}
	r->body = malloc(body->len + 1);
	r->content_type = strndup(type->text, type->len);
	if (!r->body || !r->content_type) {
		out_of_memory(L);
		return;
	}
	memcpy(r->body, body->text, body->len + 1);
	r->body_len = body->len;
}

static void load_rule(struct loader *L, struct fb_rule *r,
		      const struct fb_node *n)
{
	static const char *const keys[] = { "match", "transform", "forwardURL",
					    "response", NULL };
	const struct fb_node *match, *t, *f, *resp;
	char actions[64];

	r->line = n->line;
	r->col = n->col;
	if (n->kind != FB_NODE_MAP) {
		fb_report(L->r, n, "expected a rule map (match?, transform | "
			  "forwardURL | response), found %s", found(n));
		return;
	}
	check_keys(L, n, keys, "a rule");
	match = fb_node_get(n, "match");
	t = fb_node_get(n, "transform");
	f = fb_node_get(n, "forwardURL");
	resp = fb_node_get(n, "response");
	if ((t != NULL) + (f != NULL) + (resp != NULL) != 1) {
		list_present(n, keys + 1, actions, sizeof(actions));
		if (*actions)
			fb_report(L->r, n, "a rule takes exactly one of "
				  "transform, forwardURL or response, found %s",
				  actions);
		else
			fb_report(L->r, n, "a rule needs one of transform, "
				  "forwardURL or response");
		return;
	}
	if (match)
		r->match = load_match(L, match);
	if (t) {
		r->action = FB_ACT_TRANSFORM;
		load_transform(L, r, t);
	} else if (f) {
		r->action = FB_ACT_FORWARD;
		load_forward_url(L, r, f);
	} else {
		r->action = FB_ACT_RESPOND;
		load_response(L, r, resp);
	}
}

/* Compare normalised keys, then source order (for duplicate reports). */
static int domain_at_cmp(const void *a, const void *b)
{
	const struct fb_domain *x = *(struct fb_domain *const *)a;
	const struct fb_domain *y = *(struct fb_domain *const *)b;
	int c = strcmp(x->pattern, y->pattern);

	return c ? c : (x < y ? -1 : 1);
}

static void report_duplicate_domains(struct loader *L, struct fb_policy *p,
				     const struct fb_node *allow)
{
	const struct fb_domain **sorted;

	if (p->ndomains < 2)
		return;
	sorted = malloc(p->ndomains * sizeof(*sorted));
	if (!sorted) {
		out_of_memory(L);
		return;
	}
	for (size_t i = 0; i < p->ndomains; i++)
		sorted[i] = &p->domains[i];
	qsort(sorted, p->ndomains, sizeof(*sorted), domain_at_cmp);
	for (size_t i = 1, first = 0; i < p->ndomains; i++) {
		const struct fb_node *k, *f;

		if (!*sorted[i]->pattern) /* invalid, reported already */
			continue;
		if (strcmp(sorted[i]->pattern, sorted[first]->pattern)) {
			first = i;
			continue;
		}
		/* domains[] is parallel to the allow map's keys */
		k = allow->keys[sorted[i] - p->domains];
		f = allow->keys[sorted[first] - p->domains];
		fb_report(L->r, k, "domain %s is the same as %s at %u:%u "
			  "(both are %s)", quoted(k), quoted(f), f->line, f->col,
			  sorted[i]->pattern);
	}
	free(sorted);
}

/* Room in p->patterns for `need` more bytes, with `left` keys to come. */
static int patterns_reserve(struct fb_policy *p, size_t len, size_t *cap,
			    size_t need, size_t left)
{
	size_t want = len + need * left + FB_NAME_MAX;
	char *grown;

	if (*cap - len >= need)
		return 0;
	/* enough for the rest if they are as long as this one, or double */
	if (want < 2 * *cap)
		want = 2 * *cap;
	grown = fb_arena_alloc(p->arena, want);
	if (!grown)
		return -1;
	if (len)
		memcpy(grown, p->patterns, len); /* the old room stays in the arena */
	p->patterns = grown;
	*cap = want;
	return 0;
}

/*
 * A secret goes only under a key whose hosts one owner holds (suffix.c):
 * under "*", "*.com" or "*.github.io" the guest would choose who gets it.
 * Literal headers (Vercel's catch-all example sets x-foo: bar), responses
 * and forwards (whose token goes to the operator's own URL) are fine
 * there.
 */
static const char *first_secret(const struct fb_domain *d)
{
	for (size_t i = 0; i < d->nrules; i++)
		for (size_t j = 0; j < d->rules[i].nset; j++)
			if (d->rules[i].set[j].source)
				return d->rules[i].set[j].source;
	return NULL;
}

static void refuse_secrets(struct loader *L, const struct fb_domain *d,
			   const struct fb_node *key, const char *pattern)
{
	const char *source = first_secret(d);
	char why[FB_NAME_MAX + 80];
	int owners;

	if (!source || !(owners = fb_pattern_owners(pattern, why, sizeof(why))))
		return;
	if (owners > 0)
		fb_report(L->r, key, "%s matches hosts of any owner (%s): its "
			  "rules cannot inject %s", quoted(key), why, source);
	else
		fb_report(L->r, key, "cannot tell whose hosts %s matches (%s): "
			  "its rules cannot inject %s", quoted(key), why,
			  source);
}

/*
 * Each key normalised in the model and, for later patches, in the tree.
 * The patterns go back to back in p->patterns, one allocation for all.
 * The name index is built here, as soon as the keys are known to be
 * valid, and not in fb_policy_compile: building it is how keys that are
 * the same pattern are found, without a sort.
 */
static void load_domains(struct loader *L, struct fb_policy *p,
			 struct fb_node *allow)
{
	size_t *at = malloc((allow->n ? allow->n : 1) * sizeof(*at));
	size_t len = 0, cap = 0;
	bool same = false;

	p->domains = fb_arena_calloc(p->arena, allow->n ? allow->n : 1,
				    sizeof(*p->domains));
	if (!at || !p->domains) {
		out_of_memory(L);
		free(at);
		return;
	}
	for (size_t i = 0; i < allow->n; i++) {
		const struct fb_node *k = allow->keys[i];
		const struct fb_node *rules = allow->vals[i];
		struct fb_domain *d = &p->domains[p->ndomains++];
		char name[FB_NAME_MAX];
		const char *why;
		size_t n;

		if (fb_pattern_normalize(k->text, k->len, name, &why) < 0) {
			fb_report(L->r, k, "invalid domain %s: %s", quoted(k), why);
			name[0] = '\0';
		}
		n = strlen(name) + 1;
		if (patterns_reserve(p, len, &cap, n, allow->n - i) < 0) {
			p->ndomains--;
			out_of_memory(L);
			break;
		}
		memcpy(p->patterns + len, name, n);
		at[i] = len; /* p->patterns may move until the last one */
		len += n;
		if (rules->kind == FB_NODE_NULL)
			continue;
		if (rules->kind != FB_NODE_SEQ) {
			fb_report(L->r, rules, "expected a list of rules for %s, "
				  "found %s", quoted(k), found(rules));
			continue;
		}
		if (rules->n == 0)
			continue;
		d->rules = calloc(rules->n, sizeof(*d->rules));
		if (!d->rules) {
			out_of_memory(L);
			break;
		}
		for (size_t j = 0; j < rules->n; j++)
			load_rule(L, &d->rules[d->nrules++], rules->vals[j]);
		if (name[0])
			refuse_secrets(L, d, k, name);
	}
	/* room asked for as if every key were as long as one seen early:
	 * what the keys did not take goes back, or the next update's
	 * reserve (fb_policy_reserve_next) would make room for it too */
	fb_arena_shrink(p->arena, p->patterns, cap, len);
	for (size_t i = 0; i < p->ndomains; i++)
		p->domains[i].pattern = p->patterns + at[i];
	free(at);
	/* with a problem found already the policy is refused: no index */
	if (L->r->count == 0 &&
	    !(p->names = fb_name_index_build_in(p->arena, p->domains,
						p->ndomains, &same)))
		out_of_memory(L);
	if (L->r->count != 0 || same) {
		report_duplicate_domains(L, p, allow);
		return;
	}
	for (size_t i = 0; i < p->ndomains; i++) {
		struct fb_node *k = allow->keys[i];
		const char *name = p->domains[i].pattern;
		size_t n = strlen(name);

		if ((k->len != n || memcmp(k->text, name, n)) &&
		    fb_node_set_text(k, name, n) < 0) {
			out_of_memory(L);
			return;
		}
	}
}

static void load_subnets(struct loader *L, struct fb_policy *p,
			 const struct fb_node *n)
{
	static const char *const keys[] = { "allow", "deny", NULL };

	if (n->kind == FB_NODE_NULL)
		return;
	if (n->kind != FB_NODE_MAP) {
		fb_report(L->r, n, "expected subnets as a map {allow: [CIDR], "
			  "deny: [CIDR]}, found %s", found(n));
		return;
	}
	check_keys(L, n, keys, "subnets");
	for (int which = 0; which < 2; which++) {
		const struct fb_node *list = fb_node_get(n, keys[which]);

		if (!list || list->kind == FB_NODE_NULL)
			continue;
		if (list->kind != FB_NODE_SEQ) {
			fb_report(L->r, list, "expected a list of CIDRs in "
				  "subnets.%s, found %s", keys[which],
				  found(list));
			continue;
		}
		p->subnets[which] = calloc(list->n ? list->n : 1,
					   sizeof(struct fb_cidr));
		if (!p->subnets[which]) {
			out_of_memory(L);
			return;
		}
		for (size_t i = 0; i < list->n; i++) {
			const struct fb_node *c = list->vals[i];
			char err[256];

			if (!want_string(L, c, "a CIDR"))
				continue;
			if (memchr(c->text, '\0', c->len)) {
				fb_report(L->r, c, "NUL byte in a CIDR");
				continue;
			}
			if (fb_cidr_parse(c->text,
					  &p->subnets[which][p->nsubnets[which]],
					  err, sizeof(err)) < 0)
				fb_report(L->r, c, "%s", err);
			else
				p->nsubnets[which]++;
		}
	}
}

/* Step 2: the model, or NULL.  Takes `canon` and the `arena` it may be in. */
static struct fb_policy *build(struct loader *L, struct fb_node *canon,
			       struct fb_arena *arena,
			       const struct fb_cidr *publics, size_t npublics)
{
	struct fb_policy *p = calloc(1, sizeof(*p));
	const struct fb_node *subnets;
	struct fb_node *allow;

	if (!p) {
		fb_node_free(canon);
		fb_arena_free(arena);
		fb_report(L->r, NULL, "out of memory");
		return NULL;
	}
	p->refs = 1;
	p->source = canon;
	p->arena = arena;
	if (canon->kind == FB_NODE_SCALAR) {
		p->mode = fb_node_is(canon, "allow-all") ? FB_MODE_ALLOW_ALL :
							   FB_MODE_DENY_ALL;
	} else {
		p->mode = FB_MODE_CUSTOM;
		allow = fb_node_get(canon, "allow");
		subnets = fb_node_get(canon, "subnets");
		if (allow)
			load_domains(L, p, allow);
		if (subnets)
			load_subnets(L, p, subnets);
	}
	if (npublics) {
		p->publics = malloc(npublics * sizeof(*publics));
		if (p->publics) {
			memcpy(p->publics, publics, npublics * sizeof(*publics));
			p->npublics = npublics;
		}
	}
	if (npublics && !p->publics)
		fb_report(L->r, NULL, "out of memory");
	/* any problem since the load began, in the text or in its meaning */
	if (L->r->count != 0 ||
	    fb_policy_compile(p, L->r->diags, L->r->file) < 0) {
		fb_policy_destroy(p);
		return NULL;
	}
	return p;
}

/* ---- the public entry points -------------------------------------------- */

static int loader_init(struct loader *L, struct fb_report *r,
		       const struct fb_load_opts *opts)
{
	L->r = r;
	L->regex_max = opts && opts->regex_max_bytes ? opts->regex_max_bytes :
						       REGEX_MAX_DEFAULT;
	L->cctx = pcre2_compile_context_create(NULL);
	if (!L->cctx) {
		fb_report(r, NULL, "out of memory");
		return -1;
	}
	/* refuse giant patterns before compiling them */
	pcre2_set_max_pattern_length(L->cctx, L->regex_max);
	return 0;
}

/*
 * Steps 1 and 2.  Takes `doc` and the `arena` its nodes may be in, which
 * the policy keeps: the canonical tree is made of the document's nodes.
 */
static struct fb_policy *load_tree(struct fb_node *doc, struct fb_arena *arena,
				   struct fb_report *r,
				   const struct fb_load_opts *opts,
				   const struct fb_cidr *publics,
				   size_t npublics)
{
	struct fb_policy *p = NULL;
	struct fb_node *canon = NULL;
	struct loader L;

	if (loader_init(&L, r, opts) == 0)
		canon = canonical(&L, doc);
	fb_node_free(doc);
	if (canon)
		p = build(&L, canon, arena, publics, npublics);
	else
		fb_arena_free(arena);
	if (L.cctx)
		pcre2_compile_context_free(L.cctx);
	return p;
}

/*
 * An arena for a policy of about `estimate` bytes.  A policy of many
 * domains in JSON takes some 12 times its text: each domain is a parsed
 * key and an empty rule list (about 200 bytes), then its pattern, its
 * place in the domain array and in the name index (about 120 more).
 */
#define ARENA_PER_TEXT_BYTE 12
#define ARENA_PER_DOMAIN 128 /* a patch's base: the model, not the tree */

static struct fb_arena *arena_for(struct fb_report *r, size_t estimate)
{
	struct fb_arena *arena = fb_arena_new(estimate);

	if (!arena)
		fb_report(r, NULL, "out of memory");
	return arena;
}

struct fb_policy *fb_policy_load(const char *text, size_t len,
				 const struct fb_load_opts *opts,
				 struct fb_diags *diags)
{
	struct fb_report r = {
		.diags = diags,
		.file = opts && opts->filename ? opts->filename : "<input>",
		.base = diags->n,
	};
	struct fb_arena *arena = arena_for(&r, ARENA_PER_TEXT_BYTE * len);
	struct fb_node *doc = NULL;
	struct fb_policy *p = NULL;

	if (arena)
		doc = fb_doc_parse_in(arena, text, len, &r);
	if (doc)
		p = load_tree(doc, arena, &r, opts, opts ? opts->publics : NULL,
			      opts ? opts->npublics : 0);
	else
		fb_arena_free(arena);
	fb_report_finish(&r);
	return p;
}

struct fb_policy *fb_policy_load_file(const char *path,
				      const struct fb_load_opts *opts,
				      struct fb_diags *diags)
{
	struct fb_load_opts o = opts ? *opts : (struct fb_load_opts){ 0 };
	struct fb_policy *p = NULL;
	char *text = NULL;
	size_t len = 0, cap = 0;
	ssize_t got;
	int fd;

	if (!o.filename)
		o.filename = path;
	/*
	 * O_NONBLOCK: opening a FIFO nobody writes to would block until a
	 * writer came, and the proxy re-reads this file on its only thread
	 * (SIGHUP), so one left at the policy's path would stop every
	 * connection and the control socket with it.  Opened this way it
	 * reads as empty instead.  Reads then block again: a pipe with a
	 * writer (`--policy <(...)`, /dev/stdin) is read to its end.
	 */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fcntl(fd, F_SETFL, 0) < 0)
		goto fail;
	for (;;) {
		if (len == cap) {
			char *grown;

			cap = cap ? 2 * cap : 65536;
			grown = malloc(cap);
			if (!grown)
				goto fail;
			if (text) {
				memcpy(grown, text, len);
				OPENSSL_cleanse(text, len);
			}
			free(text);
			text = grown;
		}
		got = read(fd, text + len, cap - len);
		if (got < 0)
			goto fail;
		if (got == 0)
			break;
		len += (size_t)got;
		if (len > FB_DOC_MAX_BYTES)
			break; /* fb_policy_load() reports the size */
	}
	close(fd);
	p = fb_policy_load(text ? text : "", len, &o, diags);
	if (text)
		OPENSSL_cleanse(text, cap);
	free(text);
	return p;
fail:
	fb_diags_add(diags, o.filename, 0, 0, "cannot read policy: %s",
		     strerror(errno));
	if (fd >= 0)
		close(fd);
	if (text)
		OPENSSL_cleanse(text, cap);
	free(text);
	return NULL;
}

/* Patch keys under allow are normalised so that they meet the base's. */
static void normalize_patch_keys(struct fb_node *patch)
{
	struct fb_node *allow = fb_node_get(patch, "allow");

	for (size_t i = 0; allow && allow->kind == FB_NODE_MAP && i < allow->n; i++) {
		struct fb_node *k = allow->keys[i];
		char name[FB_NAME_MAX];
		const char *why;

		if (fb_pattern_normalize(k->text, k->len, name, &why) < 0)
			continue; /* reported when the result is loaded */
		fb_node_set_text(k, name, strlen(name)); /* ENOMEM: as written */
	}
}

/*
 * The base's nodes lose their positions (they belong to another text);
 * problems found in them print as "FILE: message".  A patch that is an
 * object applied to a mode string replaces it with a custom policy made of
 * the patch alone (RFC 7396 §2: a non-object target becomes {}).
 */
struct fb_policy *fb_policy_patch(const struct fb_policy *base,
				  const char *patch, size_t len,
				  const struct fb_load_opts *opts,
				  struct fb_diags *diags)
{
	struct fb_report r = {
		.diags = diags,
		.file = opts && opts->filename ? opts->filename : "<patch>",
		.base = diags->n,
	};
	struct fb_node *doc, *target = NULL, *merged = NULL;
	struct fb_policy *p = NULL;
	struct fb_arena *arena;

	doc = fb_doc_parse(patch, len, &r);
	if (!doc)
		goto out;
	if (doc->kind == FB_NODE_NULL) {
		fb_report(&r, doc, "empty patch: expected a JSON merge patch "
			  "object (or {} to change nothing)");
		goto out;
	}
	normalize_patch_keys(doc);
	target = fb_node_copy(base->source, false);
	merged = target ? fb_node_merge_patch(target, doc) : NULL;
	if (!merged) {
		fb_report(&r, NULL, "out of memory");
	} else if (r.count == 0 &&
		   (arena = arena_for(&r, ARENA_PER_DOMAIN * base->ndomains +
					ARENA_PER_TEXT_BYTE * len))) {
		/* the merged tree is malloc'd: the arena takes the model */
		p = load_tree(merged, arena, &r, opts,
			      opts ? opts->publics : base->publics,
			      opts ? opts->npublics : base->npublics);
		merged = NULL;
	}
out:
	fb_node_free(doc);
	fb_node_free(target);
	fb_node_free(merged);
	fb_report_finish(&r);
	return p;
}

struct fb_policy *fb_policy_ref(struct fb_policy *p)
{
	p->refs++;
	return p;
}

void fb_policy_unref(struct fb_policy *p)
{
	if (p && --p->refs == 0)
		fb_policy_destroy(p);
}

void fb_policy_reserve_next(const struct fb_policy *p)
{
	fb_arena_reserve(fb_arena_used(p->arena));
}

enum fb_mode fb_policy_mode(const struct fb_policy *p)
{
	return p->mode;
}

const struct fb_domain *fb_policy_domains(const struct fb_policy *p, size_t *n)
{
	*n = p->ndomains;
	return p->domains;
}

const struct fb_cidr *fb_policy_subnets(const struct fb_policy *p, int which,
					size_t *n)
{
	*n = p->nsubnets[which ? 1 : 0];
	return p->subnets[which ? 1 : 0];
}

void fb_policy_summarize(const struct fb_policy *p, struct fb_policy_summary *s)
{
	s->mode = p->mode;
	s->domains = p->ndomains;
	s->rules = 0;
	for (size_t i = 0; i < p->ndomains; i++)
		s->rules += p->domains[i].nrules;
	s->cidr_allow = p->nsubnets[0];
	s->cidr_deny = p->nsubnets[1];
}
