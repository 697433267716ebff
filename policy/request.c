/*
 * request.c — one HTTP request on a brokered connection against its key's
 * rules: in order, first match wins, and a request no rule matches goes out
 * unchanged.
 *
 * Paths and query strings are compared as bytes, in the normal form of
 * fb_uri_normalize() and without dot-segment removal: the rule then
 * judges exactly the bytes the origin will receive.  Where origins read
 * those bytes apart, the rule takes each reading (target.c): a rule that
 * answers meets a request any reading of which it matches, also as
 * routers that ignore case, a trailing '/' or a format suffix compare;
 * a rule that grants, only one every reading of which it matches, every
 * copy of a key or field it names included.  The broker refuses a path
 * with dot-segments ("/v1/../x", "/v1%2f..%2fx", "%2e%2e"), which an
 * origin would resolve to a path the rule never saw.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include "policy/internal.h"

/* ---- matching ------------------------------------------------------- */

/*
 * Bounds on one regex search, so that a pathological pattern or input
 * costs a bounded amount of work per request instead of stalling the
 * proxy.  A search that hits a limit counts as no match.
 */
#define MATCH_LIMIT 100000
#define DEPTH_LIMIT 10000

static pcre2_match_context *limits;
static pthread_once_t limits_once = PTHREAD_ONCE_INIT;

static void make_limits(void)
{
	limits = pcre2_match_context_create(NULL);
	if (limits) {
		pcre2_set_match_limit(limits, MATCH_LIMIT);
		pcre2_set_depth_limit(limits, DEPTH_LIMIT);
	}
}

static bool regex_search(const pcre2_code *re, const char *s, size_t len)
{
	pcre2_match_data *md;
	int rc;

	pthread_once(&limits_once, make_limits);
	if (!limits || !(md = pcre2_match_data_create_from_pattern(re, NULL)))
		return false;
	rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, md, limits);
	pcre2_match_data_free(md);
	return rc >= 0;
}

bool fb_matcher_match(const struct fb_matcher *m, const char *s, size_t len)
{
	switch (m->kind) {
	case FB_MATCH_EXACT:
		return len == m->len && !memcmp(s, m->text, len);
	case FB_MATCH_PREFIX:
		return len >= m->len && !memcmp(s, m->text, m->len);
	case FB_MATCH_REGEX:
		return m->re && regex_search(m->re, s, len);
	}
	return false;
}

/*
 * Does m match s[0..len) without case (ASCII)?  Header names compare so
 * (RFC 9110 §5.1), and their patterns are compiled caseless; a path's or
 * query key's pattern has a caseless twin for the rules that answer.
 */
static bool caseless_match(const struct fb_matcher *m, const char *s,
			   size_t len)
{
	switch (m->kind) {
	case FB_MATCH_EXACT:
		return len == m->len && !strncasecmp(s, m->text, len);
	case FB_MATCH_PREFIX:
		return len >= m->len && !strncasecmp(s, m->text, m->len);
	case FB_MATCH_REGEX:
		break;
	}
	return m->re && (regex_search(m->re, s, len) ||
			 (m->re_fold && regex_search(m->re_fold, s, len)));
}

typedef bool pair_fn(const void *arg, const char *k, size_t klen,
		     const char *v, size_t vlen);

/* Where the pair at p ends: its '&' (or ';', when semicolon), or end. */
static const char *pair_end(const char *p, const char *end, bool semicolon)
{
	while (p < end && *p != '&' && !(semicolon && *p == ';'))
		p++;
	return p;
}

/* Does fn hold for any "key=value" pair of the query (split on '&', and
 * on ';' when semicolon, then at the first '=')? */
static bool query_any(const char *q, size_t len, bool semicolon,
		      pair_fn *fn, const void *arg)
{
	const char *p = q, *end;

	if (!q)
		return false;
	for (end = q + len;; p++) {
		const char *stop = pair_end(p, end, semicolon);
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		const char *v = eq ? eq + 1 : stop;

		if (fn(arg, p, (size_t)((eq ? eq : stop) - p), v,
		       (size_t)(stop - v)))
			return true;
		if (stop == end)
			return false;
		p = stop;
	}
}

/* Is s[0..len) one of m's methods?  fold: in any case. */
static bool method_named(const struct fb_match *m, const char *s, size_t len,
			 bool fold)
{
	for (size_t i = 0; i < m->nmethods; i++)
		if (strlen(m->methods[i]) == len &&
		    !(fold ? strncasecmp(m->methods[i], s, len)
			   : memcmp(m->methods[i], s, len)))
			return true;
	return false;
}

/* "_method" as PHP reads a query key: it makes '.', ' ' and '[' at the
 * start of a name '_', so ".method" and "+method" reach Laravel as it. */
static bool is_method_key(const char *k, size_t klen)
{
	if (klen == 9 && !memcmp(k, "%20", 3)) /* "+method", form-decoded */
		return !memcmp(k + 3, "method", 6);
	return klen == 7 && memchr("_. [", k[0], 4) &&
	       !memcmp(k + 1, "method", 6);
}

/*
 * Is s[0..len) one of m's methods, as a server runs it?  HEAD is GET
 * without the body (RFC 9110 §9.3.2): Flask, Express and Rails run a GET
 * handler for it, so a rule that names GET meets it; that reading only
 * widens, as HEAD reads nothing a GET would not.
 */
static bool method_served(const struct fb_match *m, const char *s,
			  size_t len, bool fold)
{
	return method_named(m, s, len, fold) ||
	       (len == 4 && !(fold ? strncasecmp(s, "HEAD", 4)
				   : memcmp(s, "HEAD", 4)) &&
		method_named(m, "GET", 3, false));
}

static bool override_named(const void *arg, const char *k, size_t klen,
			   const char *v, size_t vlen)
{
	return is_method_key(k, klen) && method_served(arg, v, vlen, true);
}

static bool override_unnamed(const void *arg, const char *k, size_t klen,
			     const char *v, size_t vlen)
{
	return is_method_key(k, klen) && !method_named(arg, v, vlen, true);
}

/* A field name as a server that folds case and '_' would see it. */
static char fold(char c)
{
	if (c >= 'A' && c <= 'Z')
		return (char)(c - 'A' + 'a');
	return c == '_' ? '-' : c;
}

/* a[0..n) and b[0..n) alike as fold() reads them */
static bool folded_equal(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fold(a[i]) != fold(b[i]))
			return false;
	return true;
}

bool fb_header_name_is(const char *name, size_t len, const char *lower)
{
	return strlen(lower) == len && folded_equal(name, lower, len);
}

/*
 * The methods a framework serves a POST as, when the request names
 * another: X-HTTP-Method-Override (Symfony and Laravel, Rack and Rails,
 * Express's method-override, ASP.NET Core's, Google's APIs) or its
 * X-HTTP-Method and X-Method-Override spellings, in any case, or a
 * "_method" query parameter (Laravel, Symfony with parameter override
 * on).  Does one name one of m's methods; all: does every one (true
 * when there is none)?
 */
static bool overrides_named(const struct fb_match *m,
			    const struct fb_request *r, bool all)
{
	static const char *const names[] = { "x-http-method-override",
					     "x-http-method",
					     "x-method-override" };
	pair_fn *odd = all ? override_unnamed : override_named;

	if (r->method_len != 4 || memcmp(r->method, "POST", 4))
		return all;
	for (size_t i = 0; i < r->nheaders; i++)
		for (size_t j = 0; j < sizeof(names) / sizeof(names[0]); j++)
			if (fb_header_name_is(r->headers[i].name,
					      r->headers[i].name_len, names[j]) &&
			    (all ? method_named : method_served)(
				    m, r->headers[i].value,
				    r->headers[i].value_len, true) != all)
				return !all;
	if (query_any(r->query, r->query_len, false, odd, m) ||
	    query_any(r->form_query, r->form_query_len, false, odd, m))
		return !all;
	return all;
}

/* The method, in any reading (all: in every reading): as sent, as
 * method_served() has it, and as an override names it. */
static bool method_match(const struct fb_match *m, const struct fb_request *r,
			 bool all)
{
	if (m->nmethods == 0)
		return true;
	if (!r->method)
		return false;
	if (all)
		return method_named(m, r->method, r->method_len, false) &&
		       overrides_named(m, r, true);
	return method_served(m, r->method, r->method_len, false) ||
	       overrides_named(m, r, false);
}

static bool pair_match(const void *arg, const char *k, size_t klen,
		       const char *v, size_t vlen)
{
	const struct fb_kv_matcher *kv = arg;

	return (!kv->key || fb_matcher_match(kv->key, k, klen)) &&
	       (!kv->value || fb_matcher_match(kv->value, v, vlen));
}

/* pair_match() with the key compared as ASP.NET Core binds it: without
 * case ("?DEBUG=1" sets its parameter "debug"). */
static bool pair_match_caseless(const void *arg, const char *k, size_t klen,
				const char *v, size_t vlen)
{
	const struct fb_kv_matcher *kv = arg;

	return (!kv->key || caseless_match(kv->key, k, klen)) &&
	       (!kv->value || fb_matcher_match(kv->value, v, vlen));
}

#define KEY_MAX 256 /* longer keys are named by every key matcher */

/*
 * The name a query key k[0..klen) binds in PHP or Rack 2, into out
 * (KEY_MAX bytes, klen at most): decoded ('+' a space, "%00" ends it),
 * leading spaces and one leading '[' dropped ("[model]" in Rack 2), cut
 * at the next '[' (PHP's and Rack's arrays, "model[]"), a trailing ']'
 * dropped, and ' ' and '.' as '_' (PHP).  Its length.
 */
static size_t key_base(const char *k, size_t klen, char *out)
{
	size_t o = 0;
	bool opened = false;

	for (size_t i = 0; i < klen; i++) {
		int c = (unsigned char)k[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%' && i + 2 < klen &&
			   fb_hex_digit((unsigned char)k[i + 1]) >= 0 &&
			   fb_hex_digit((unsigned char)k[i + 2]) >= 0) {
			c = fb_hex_digit((unsigned char)k[i + 1]) * 16 +
			    fb_hex_digit((unsigned char)k[i + 2]);
			i += 2;
		}
		if (c == '\0')
			break;
		if (o == 0 && c == ' ')
			continue;
		if (o == 0 && c == '[' && !opened) {
			opened = true;
			continue;
		}
		if (c == '[')
			break;
		out[o++] = c == ' ' || c == '.' ? '_' : (char)c;
	}
	if (o && out[o - 1] == ']')
		o--;
	return o;
}

/*
 * Does the key matcher name k[0..klen), as sent or as PHP and Rack 2
 * bind it (key_base), in any case?  For copies that would stop a grant:
 * a key too long to read so is named.
 */
static bool key_named(const struct fb_matcher *key, const char *k,
		      size_t klen)
{
	char base[KEY_MAX], text[KEY_MAX];
	size_t n, tn;

	if (caseless_match(key, k, klen))
		return true;
	if (klen > KEY_MAX)
		return true;
	n = key_base(k, klen, base);
	if (key->kind == FB_MATCH_REGEX || key->len > KEY_MAX)
		return caseless_match(key, base, n);
	tn = key_base(key->text, key->len, text);
	if (key->kind == FB_MATCH_EXACT)
		return n == tn && !strncasecmp(base, text, n);
	return n >= tn && !strncasecmp(base, text, tn);
}

/* A pair whose key kv names (key_named) with a value kv does not
 * match. */
static bool pair_conflicts(const void *arg, const char *k, size_t klen,
			   const char *v, size_t vlen)
{
	const struct fb_kv_matcher *kv = arg;

	return key_named(kv->key, k, klen) &&
	       !fb_matcher_match(kv->value, v, vlen);
}

/*
 * A pair of the query matches kv: as sent, or (any) as a form decoder
 * reads it, and with its key in any case.  A rule that grants takes the
 * query as sent only: its literal "a+b" means the bytes, which a form
 * decoder reads as "a b", so requiring both readings would leave it
 * matching nothing.  And it needs every copy of a key it names to match
 * its value, however the copies are split and spelt: of
 * "model=gpt-4&Model=o1;model=o3", Flask reads the first, PHP and
 * Tornado the last, ASP.NET Core the first in any case and Rack before
 * 3 the last after a ';'.
 */
static bool query_has(const struct fb_kv_matcher *kv,
		      const struct fb_request *r, bool any)
{
	if (any)
		return query_any(r->query, r->query_len, false,
				 pair_match_caseless, kv) ||
		       query_any(r->form_query, r->form_query_len, false,
				 pair_match_caseless, kv);
	return query_any(r->query, r->query_len, false, pair_match, kv) &&
	       !(kv->key && kv->value &&
		 query_any(r->query, r->query_len, true, pair_conflicts, kv));
}

/*
 * Does key name the field `name` as a server that folds case and '_'
 * reads it (CGI, PHP and WSGI see X-Tier and X_Tier both as
 * HTTP_X_TIER)?  A regex key is tried on the name with every '-' and
 * '_' as '-', then as '_'.  A name too long to fold here counts as
 * named: this only finds copies that would stop a grant.
 */
static bool field_named(const struct fb_matcher *key, const char *name,
			size_t len)
{
	char dashed[256];

	switch (key->kind) {
	case FB_MATCH_EXACT:
		return len == key->len && folded_equal(name, key->text, len);
	case FB_MATCH_PREFIX:
		return len >= key->len && folded_equal(name, key->text, key->len);
	case FB_MATCH_REGEX:
		break;
	}
	if (caseless_match(key, name, len))
		return true;
	if (!memchr(name, '_', len) && !memchr(name, '-', len))
		return false;
	if (len > sizeof(dashed))
		return true;
	for (size_t j = 0; j < 2; j++) {
		for (size_t i = 0; i < len; i++)
			dashed[i] = name[i] == '_' || name[i] == '-' ? "-_"[j]
								     : name[i];
		if (caseless_match(key, dashed, len))
			return true;
	}
	return false;
}

/* A field matches kv; all: and no field kv names, under any spelling,
 * has another value (an application may read any copy of a field sent
 * twice). */
static bool header_has(const struct fb_kv_matcher *kv,
		       const struct fb_request *r, bool all)
{
	bool found = false;

	for (size_t i = 0; i < r->nheaders; i++) {
		const struct fb_http_header *h = &r->headers[i];
		bool valued = !kv->value || fb_matcher_match(kv->value, h->value,
							     h->value_len);

		if (valued && (!kv->key ||
			       caseless_match(kv->key, h->name, h->name_len))) {
			if (!all)
				return true;
			found = true;
		} else if (all && kv->key && !valued &&
			   field_named(kv->key, h->name, h->name_len)) {
			return false;
		}
	}
	return found;
}

/* len without one trailing '/', unless that is all of s */
static size_t trim_slash(const char *s, size_t len)
{
	return len > 1 && s[len - 1] == '/' ? len - 1 : len;
}

/*
 * len without a format suffix: Rails routes "/admin.json" (and
 * ".xml", any ".word" after a segment's name) to "/admin", with the
 * format in a parameter, as Spring MVC's suffix patterns did before 5.3.
 */
static size_t trim_format(const char *s, size_t len)
{
	size_t i = len;

	while (i > 0 && s[i - 1] != '/' && s[i - 1] != '.')
		i--;
	if (i < 2 || i == len || s[i - 1] != '.' || s[i - 2] == '/')
		return len;
	return i - 1;
}

/*
 * Does m match s[0..len) as routers that ignore case, one trailing '/'
 * or a format suffix read both?  Express's and ASP.NET Core's serve
 * "/ADMIN" and "/admin/" from the route "/admin", Express's
 * app.use("/admin/") serves "/admin" too, and Rails' serves
 * "/admin.json".  Only for rules that answer: it widens a match.
 */
static bool fold_match(const struct fb_matcher *m, const char *s, size_t len)
{
	size_t t = trim_slash(s, len), mt = trim_slash(m->text, m->len);
	size_t f = trim_format(s, t);

	if (caseless_match(m, s, len))
		return true;
	switch (m->kind) {
	case FB_MATCH_EXACT:
		return (t == mt || f == mt) && !strncasecmp(s, m->text, mt);
	case FB_MATCH_PREFIX:
		return mt < m->len && (t == mt || f == mt) &&
		       !strncasecmp(s, m->text, mt);
	case FB_MATCH_REGEX:
		break;
	}
	return m->re_fold && ((t < len && regex_search(m->re_fold, s, t)) ||
			      (f < t && regex_search(m->re_fold, s, f)));
}

/* Does m match s, as sent, or (fold) as fold_match() reads it? */
static bool route_match(const struct fb_matcher *m, const char *s, size_t len,
			bool fold)
{
	return fold ? fold_match(m, s, len) : fb_matcher_match(m, s, len);
}

/* The path in any reading (all: in every one): as sent, as lenient
 * servers read it, as a URL parser reads a path after "//authority",
 * and before its first ';'; in any reading also as fold_match() has it. */
static bool path_match(const struct fb_matcher *m, const struct fb_request *r,
		       bool all)
{
	const char *s[] = { r->path ? r->path : "", r->lenient, r->url_path,
			    r->semi_len ? r->path : NULL };
	size_t len[] = { r->path ? r->path_len : 0, r->lenient_len,
			 r->url_path_len, r->semi_len };

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		if (s[i] && route_match(m, s[i], len[i], !all) != all)
			return !all;
	return all;
}

/*
 * A rule that answers (a block) matches a request that any reading of
 * it matches: the origin serves what it reads.  A rule that grants
 * (injects a secret, or forwards) matches only when every reading of the
 * method and path does: "//v1/admin" is "/v1/admin" to nginx but
 * "/admin" to Node's URL parser, and a "/v1/" rule's secret must not
 * reach "/admin"; a POST with "_method=GET" must not get a GET's.
 */
static bool rule_matches(const struct fb_match *m, const struct fb_request *r,
			 bool all)
{
	if (!m)
		return true;
	if (!method_match(m, r, all))
		return false;
	if (m->path && !path_match(m->path, r, all))
		return false;
	for (size_t i = 0; i < m->nquery; i++)
		if (!query_has(&m->query[i], r, !all))
			return false;
	for (size_t i = 0; i < m->nheaders; i++)
		if (!header_has(&m->headers[i], r, all))
			return false;
	return true;
}

void fb_policy_decide_request(const struct fb_domain *domain,
			      const struct fb_request *req,
			      struct fb_decision *d)
{
	static const enum fb_verdict by_action[] = {
		[FB_ACT_TRANSFORM] = FB_VERDICT_BROKER,
		[FB_ACT_FORWARD] = FB_VERDICT_FORWARD,
		[FB_ACT_RESPOND] = FB_VERDICT_RESPOND,
	};

	*d = (struct fb_decision){ .verdict = FB_VERDICT_ALLOW,
				   .reason = FB_REASON_NO_RULE,
				   .domain = domain, .rule = -1 };
	for (size_t i = 0; i < domain->nrules; i++) {
		if (rule_matches(domain->rules[i].match, req,
				 domain->rules[i].action != FB_ACT_RESPOND)) {
			d->verdict = by_action[domain->rules[i].action];
			d->reason = FB_REASON_RULE;
			d->rule = (int)i;
			return;
		}
	}
}

/* ---- the same rules? -------------------------------------------------- */

static bool str_equal(const char *a, const char *b)
{
	return a && b ? strcmp(a, b) == 0 : a == b;
}

static bool matcher_equal(const struct fb_matcher *a,
			  const struct fb_matcher *b)
{
	if (!a || !b)
		return a == b;
	return a->kind == b->kind && a->len == b->len &&
	       memcmp(a->text, b->text, a->len) == 0;
}

static bool kv_equal(const struct fb_kv_matcher *a,
		     const struct fb_kv_matcher *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!matcher_equal(a[i].key, b[i].key) ||
		    !matcher_equal(a[i].value, b[i].value))
			return false;
	return true;
}

static bool match_equal(const struct fb_match *a, const struct fb_match *b)
{
	if (!a || !b)
		return a == b;
	if (!matcher_equal(a->path, b->path) || a->nmethods != b->nmethods ||
	    a->nquery != b->nquery || a->nheaders != b->nheaders)
		return false;
	for (size_t i = 0; i < a->nmethods; i++)
		if (strcmp(a->methods[i], b->methods[i]) != 0)
			return false;
	return kv_equal(a->query, b->query, a->nquery) &&
	       kv_equal(a->headers, b->headers, a->nheaders);
}

static bool rule_equal(const struct fb_rule *a, const struct fb_rule *b)
{
	if (a->action != b->action || !match_equal(a->match, b->match) ||
	    a->nset != b->nset || !str_equal(a->forward_url, b->forward_url) ||
	    a->status != b->status ||
	    !str_equal(a->content_type, b->content_type) ||
	    a->body_len != b->body_len ||
	    (a->body_len && memcmp(a->body, b->body, a->body_len) != 0))
		return false;
	/* the resolved values: a secret that changed is a different rule */
	for (size_t i = 0; i < a->nset; i++)
		if (strcmp(a->set[i].name, b->set[i].name) != 0 ||
		    strcmp(a->set[i].value, b->set[i].value) != 0)
			return false;
	return true;
}

bool fb_domain_rules_equal(const struct fb_domain *a,
			   const struct fb_domain *b)
{
	if (a->nrules != b->nrules)
		return false;
	for (size_t i = 0; i < a->nrules; i++)
		if (!rule_equal(&a->rules[i], &b->rules[i]))
			return false;
	return true;
}
