/*
 * policy.h — firebreak's policy model: load, validate, compile, decide, dump.
 *
 * A policy is loaded from YAML or JSON text into an immutable, compiled
 * `struct fb_policy`.  A load either returns a complete policy or NULL with
 * every problem found in `struct fb_diags` (FILE:LINE:COL: message); nothing
 * is ever half-loaded.  Compiled policies are reference counted so that a
 * proxy can swap the policy in force while live connections still hold the
 * one they were admitted under.
 *
 * Decision order (design.md "Decisions on a TCP connection"):
 *   1. destination in the deny set (subnets.deny + built-in non-public set,
 *      less operator --public ranges and explicit subnets.allow reopenings);
 *      an IPv6 form that embeds an IPv4 address is denied by what it embeds
 *   2. destination in subnets.allow
 *   3-5. name (SNI / Host) against the allow keys, most specific key wins
 *   6-7. a key with rules is brokered: each HTTP request is matched in order.
 */
#ifndef FB_POLICY_H
#define FB_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------ */
/* Addresses and prefixes                                              */
/* ------------------------------------------------------------------ */

/* An IPv4 address lives in b[0..3]; family is AF_INET or AF_INET6. */
struct fb_addr {
	uint8_t family;
	uint8_t b[16];
};

/* A canonical prefix: host bits are always zero. */
struct fb_cidr {
	uint8_t family;
	uint8_t len;
	uint8_t b[16];
};

/* An inclusive address range, for the kernel's interval sets. */
struct fb_range {
	uint8_t family;
	uint8_t lo[16];
	uint8_t hi[16];
};

#define FB_CIDR_STRLEN 50 /* "ffff:...:ffff/128" plus NUL, with room */

/* Parse a literal IPv4 or IPv6 address (no brackets, no zone). 0 or -1. */
int fb_addr_parse(const char *s, struct fb_addr *out);
void fb_addr_format(const struct fb_addr *a, char *buf, size_t size);
/*
 * "IP:PORT" or "[IPv6]:PORT"; also "IP", "[IPv6]" or a bare IPv6 address,
 * and then *port is -1.  PORT is 1 to 5 decimal digits, 0-65535: the caller judges
 * 0.  An address with more than one colon is IPv6 whole, never split.
 * 0 or -1.
 */
int fb_addr_port_parse(const char *s, struct fb_addr *a, int *port);
/* A port of len bytes at s: 1 to 5 decimal digits, 0-65535; -1 if not. */
int fb_port_parse(const char *s, size_t len);
/* The socket address of a:port; its length. */
socklen_t fb_addr_to_sockaddr(const struct fb_addr *a, uint16_t port,
			      struct sockaddr_storage *ss);
/* The same family and address (an IPv4 one is its first 4 bytes). */
bool fb_addr_equal(const struct fb_addr *a, const struct fb_addr *b);
/* The address and port of an AF_INET or AF_INET6 socket address; for
 * another family *a is zeroed (family 0) and the port is 0. */
uint16_t fb_addr_from_sockaddr(const struct sockaddr_storage *ss,
			       struct fb_addr *a);

/*
 * Parse "A/N" or a bare address (a /32 or /128).  On error returns -1 and
 * writes a message quoting the text ("host bits set in \"10.0.0.1/8\"
 * (did you mean 10.0.0.0/8?)", "prefix length 33 out of range 0-32 in ...").
 */
int fb_cidr_parse(const char *s, struct fb_cidr *out, char *err, size_t errsize);
void fb_cidr_format(const struct fb_cidr *c, char *buf, size_t size);
bool fb_cidr_contains(const struct fb_cidr *c, const struct fb_addr *a);

/* ------------------------------------------------------------------ */
/* The built-in non-public address classifier                          */
/* ------------------------------------------------------------------ */

/*
 * Returns the name of the IANA special-purpose block that makes `a`
 * non-public ("loopback", "private-use", "link-local", "shared-address-space",
 * "multicast", ... ) or NULL when `a` is globally reachable.  IPv6 forms that
 * embed an IPv4 address (mapped, compatible, NAT64 64:ff9b::/96 and
 * 64:ff9b:1::/48, 6to4, Teredo) are judged by the embedded address.
 * Operator overrides (--public) are applied by the caller or the policy.
 */
const char *fb_nonpublic_block(const struct fb_addr *a);

/*
 * The whole non-public set as prefixes, IPv4 and IPv6, including every
 * embedded-IPv4 image of the IPv4 blocks: the single source of truth for
 * the kernel deny set.  The array is static; *n receives its length.
 */
const struct fb_cidr *fb_nonpublic_cidrs(size_t *n);

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

#define FB_NAME_MAX 254 /* 253 octets plus NUL */

/* A hash of len bytes for hash tables indexed by its low bits (which it
 * mixes well); `seed` varies it (the name index seeds with a label's
 * parent node). */
uint32_t fb_name_hash(uint32_t seed, const char *s, size_t len);

/*
 * Normalise a host name as seen on the wire or in a policy: lower-case,
 * one trailing dot dropped, U-labels converted to A-labels (IDNA 2008),
 * LDH only, labels 1-63 octets, name <= 253 octets.  IP literals are not
 * names.  Returns 0 and fills out[FB_NAME_MAX], or -1 with *why set to a
 * static message.
 */
int fb_name_normalize(const char *in, size_t len, char out[FB_NAME_MAX],
		      const char **why);
/*
 * Does the name (one trailing dot ignored) end in a label of digits, or
 * of "0x" and hex digits?  That is how a URL parser (WHATWG "ends in a
 * number") or inet_aton(3) tells an IPv4 address: 127.0.0.1, 127.1,
 * 2130706433, 0x7f.1.  No top-level domain is numeric (RFC 3696 §2), so
 * such a name is an address in disguise.
 */
bool fb_name_ends_in_number(const char *s, size_t len);

/* ------------------------------------------------------------------ */
/* Diagnostics                                                         */
/* ------------------------------------------------------------------ */

struct fb_diag {
	char *file;    /* as given by the caller; "<input>" when none */
	unsigned line; /* 1-based; 0 when not tied to a position */
	unsigned col;  /* 1-based */
	char *msg;     /* what was found and what was expected */
};

struct fb_diags {
	struct fb_diag *v;
	size_t n, cap;
};

void fb_diags_add(struct fb_diags *d, const char *file, unsigned line,
		  unsigned col, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Prints "FILE:LINE:COL: message\n" per diagnostic. */
void fb_diags_print(const struct fb_diags *d, FILE *out);
/* Same, into a malloc'd string (for the control API's 400 body). */
char *fb_diags_to_string(const struct fb_diags *d);
void fb_diags_free(struct fb_diags *d);

/* ------------------------------------------------------------------ */
/* The model (read-only once compiled)                                 */
/* ------------------------------------------------------------------ */

enum fb_mode { FB_MODE_ALLOW_ALL, FB_MODE_DENY_ALL, FB_MODE_CUSTOM };

enum fb_match_kind { FB_MATCH_EXACT, FB_MATCH_PREFIX, FB_MATCH_REGEX };

struct fb_matcher {
	enum fb_match_kind kind;
	char *text; /* the literal, prefix or pattern */
	size_t len;
	void *re;   /* compiled pcre2_code for FB_MATCH_REGEX */
	void *re_fold; /* a path's or query key's, without case */
};

/* Key and value matchers; either may be absent (NULL), not both. */
struct fb_kv_matcher {
	struct fb_matcher *key;
	struct fb_matcher *value;
};

struct fb_match {
	struct fb_matcher *path;        /* NULL: any path */
	char **methods;                 /* OR; nmethods == 0: any method */
	size_t nmethods;
	struct fb_kv_matcher *query;    /* AND */
	size_t nquery;
	struct fb_kv_matcher *headers;  /* AND; key compared case-insensitively */
	size_t nheaders;
};

/* One header a transform sets.  `value` is the resolved secret. */
struct fb_header_set {
	char *name;        /* lower-case */
	char *value;
	char *source;      /* "${env:NAME}", "${file:PATH}" or NULL for a literal */
};

enum fb_action { FB_ACT_TRANSFORM, FB_ACT_FORWARD, FB_ACT_RESPOND };

struct fb_rule {
	struct fb_match *match; /* NULL: matches every request */
	enum fb_action action;
	/* FB_ACT_TRANSFORM: the transforms' headers, flattened in order */
	struct fb_header_set *set;
	size_t nset;
	/* FB_ACT_FORWARD: https URL without query or fragment */
	char *forward_url;
	/* FB_ACT_RESPOND */
	int status;
	char *content_type; /* NULL when no body */
	char *body;
	size_t body_len;
	unsigned line, col; /* where the rule starts in the source */
};

/* One allow key ("github.com", "*.npmjs.org", "*") and its ordered rules. */
struct fb_domain {
	char *pattern; /* normalised */
	struct fb_rule *rules;
	size_t nrules; /* 0: allowed, spliced; > 0: brokered */
};

struct fb_policy;

struct fb_load_opts {
	const char *filename;          /* for diagnostics; NULL: "<input>" */
	const struct fb_cidr *publics; /* operator --public overrides */
	size_t npublics;
	size_t regex_max_bytes;        /* compiled-size limit; 0: default */
};

/* ------------------------------------------------------------------ */
/* Load, reference, inspect                                            */
/* ------------------------------------------------------------------ */

/*
 * Parse YAML or JSON text (or the bare words allow-all / deny-all) and
 * compile it.  Returns a policy with one reference, or NULL with every
 * problem appended to `diags`.  Empty text is an error.
 */
struct fb_policy *fb_policy_load(const char *text, size_t len,
				 const struct fb_load_opts *opts,
				 struct fb_diags *diags);
/* Same, reading a file (opts->filename defaults to path). */
struct fb_policy *fb_policy_load_file(const char *path,
				      const struct fb_load_opts *opts,
				      struct fb_diags *diags);
/*
 * Apply an RFC 7396 JSON merge patch to the canonical object form of `base`
 * (secret references kept as written, list-form allow already a map) and
 * compile the result.  `base` is untouched.
 */
struct fb_policy *fb_policy_patch(const struct fb_policy *base,
				  const char *patch, size_t len,
				  const struct fb_load_opts *opts,
				  struct fb_diags *diags);

struct fb_policy *fb_policy_ref(struct fb_policy *p);
void fb_policy_unref(struct fb_policy *p);
/*
 * Make ready now the memory that loading another policy as large as `p`
 * takes, so that the next load does not spend its time faulting pages in
 * (a policy freed gives its memory to the next one; this covers the load
 * that comes while `p` still serves).  For a hot-swapping process, once
 * an update is answered.
 */
void fb_policy_reserve_next(const struct fb_policy *p);

enum fb_mode fb_policy_mode(const struct fb_policy *p);
const struct fb_domain *fb_policy_domains(const struct fb_policy *p, size_t *n);
/* which: 0 = subnets.allow, 1 = subnets.deny (canonical, as written). */
const struct fb_cidr *fb_policy_subnets(const struct fb_policy *p, int which,
					size_t *n);

/*
 * The effective kernel sets, as sorted, merged, non-overlapping ranges:
 * deny = subnets.deny + (non-public set - publics - reopened by
 * subnets.allow); allow = subnets.allow minus deny.  Caller frees *out.
 */
int fb_policy_deny_ranges(const struct fb_policy *p, struct fb_range **out,
			  size_t *n);
int fb_policy_allow_ranges(const struct fb_policy *p, struct fb_range **out,
			   size_t *n);

/* Counts for `policy check`'s summary line. */
struct fb_policy_summary {
	enum fb_mode mode;
	size_t domains, rules, cidr_allow, cidr_deny;
};
void fb_policy_summarize(const struct fb_policy *p, struct fb_policy_summary *s);

/*
 * JSON string escaping (json_escape.c): quotes, backslashes and control
 * characters escaped, so no value can end the string or add a member.
 * Valid UTF-8 passes through; each byte that is not part of a valid UTF-8
 * sequence becomes \ufffd (U+FFFD), so any bytes give valid JSON.
 *
 * fb_json_write_string writes the quoted literal of len bytes of s to f.
 * fb_json_escape writes the escaped text, without quotes, NUL-terminated,
 * into out (at most 6 * len + 1 bytes are needed); its length, or -1 if
 * out is too small (out then holds the empty string).
 */
void fb_json_write_string(FILE *f, const char *s, size_t len);
int fb_json_escape(const char *s, size_t len, char *out, size_t outsize);

/*
 * The redacted read-back as JSON (which is also YAML): every transform
 * value is "<redacted>".  legacy = false: the object form {allow, subnets};
 * legacy = true: {mode, allowedDomains, allowedCIDRs, deniedCIDRs,
 * injectionRules, forwardRules}.  Returns a malloc'd NUL-terminated string.
 */
char *fb_policy_dump(const struct fb_policy *p, bool legacy);
/*
 * The policy as loaded, in the canonical object form, with secret
 * references (${env:X}, ${file:P}) as written and no value resolved:
 * text that loads into the same policy, for a launcher that must start a
 * proxy again with the policy in force after PUTs and PATCHes.
 * malloc'd; NULL when out of memory.
 */
char *fb_policy_source(const struct fb_policy *p);
/*
 * A 128-bit fingerprint of what the policy enforces: its source, as
 * above, and every secret value resolved for it (a rotated secret file
 * changes the policy while its text stays).  It tells an operator's edit
 * from none; it is no cryptographic digest (a proxy that never brokers
 * keeps OpenSSL's digests, and their memory, unloaded), and makes no
 * text: the source tree is walked as it stands.  0, or -1 for a source
 * nested deeper than fb_policy_source writes.
 */
int fb_policy_digest(const struct fb_policy *p, uint64_t out[2]);

/* ------------------------------------------------------------------ */
/* Decisions                                                           */
/* ------------------------------------------------------------------ */

enum fb_verdict {
	FB_VERDICT_DENY,
	FB_VERDICT_ALLOW,   /* splice untouched (or: request passes unchanged) */
	FB_VERDICT_BROKER,  /* terminate TLS / request gets a transform */
	FB_VERDICT_FORWARD, /* request goes to the rule's forwardURL */
	FB_VERDICT_RESPOND, /* request is answered by the rule's response */
};

enum fb_reason {
	FB_REASON_DENIED_CIDR,     /* destination in subnets.deny */
	FB_REASON_NONPUBLIC,       /* destination in the built-in non-public set */
	FB_REASON_ALLOWED_CIDR,    /* destination in subnets.allow */
	FB_REASON_DENY_ALL,        /* mode deny-all (or an empty policy) */
	FB_REASON_ALLOW_ALL,       /* mode allow-all */
	FB_REASON_NO_NAME,         /* domain-less and no "*" key */
	FB_REASON_CATCH_ALL,       /* admitted by the "*" key */
	FB_REASON_DOMAIN,          /* name matched a key */
	FB_REASON_NOT_ALLOWED,     /* name matched no key */
	FB_REASON_RULE,            /* request matched a rule */
	FB_REASON_NO_RULE,         /* request matched no rule: sent unchanged */
};

const char *fb_verdict_str(enum fb_verdict v); /* "allow", "deny", ... */
const char *fb_reason_str(enum fb_reason r);   /* "denied-cidr", ... */

struct fb_decision {
	enum fb_verdict verdict;
	enum fb_reason reason;
	const struct fb_domain *domain; /* deciding key, or NULL */
	int rule;                       /* rule index in domain, or -1 */
	const char *block;              /* non-public block name, or NULL */
};

/*
 * Decisions 1-2 for an address alone: FB_VERDICT_DENY (denied-cidr or
 * nonpublic), FB_VERDICT_ALLOW (allowed-cidr), or -1 when the address
 * leaves the decision to the name.  Also used on every address the proxy
 * is about to dial.  An IPv6 address of a form fb_nonpublic_block()
 * unwraps is denied-cidr when it or an IPv4 address it embeds is in
 * subnets.deny; subnets.allow and --public match only the address as
 * given, so they never open an embedded form.
 */
int fb_policy_check_addr(const struct fb_policy *p, const struct fb_addr *a,
			 struct fb_decision *d);

/*
 * A connection: `name` is the normalised SNI/Host or NULL (domain-less);
 * `dst` is the guest's original destination or NULL (e.g. a DNS query).
 * Verdict: DENY, ALLOW (splice) or BROKER (the key has rules).
 * Takes time independent of the number of keys and prefixes.
 */
void fb_policy_decide(const struct fb_policy *p, const char *name,
		      const struct fb_addr *dst, struct fb_decision *d);

/* Find the deciding key for a normalised name alone (NULL: none). */
const struct fb_domain *fb_policy_lookup(const struct fb_policy *p,
					 const char *name);

struct fb_http_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* The value of hex digit c, in either case, or -1. */
int fb_hex_digit(unsigned char c);

/* The bytes of a path separator at p[0..n) as servers read one: '/',
 * '\\', "%2F" or "%5C" (either case); 0 if none is there. */
size_t fb_uri_separator(const char *p, size_t n);

/*
 * s[0..*len) in the normal form of RFC 3986 §6.2.2.1-2, in place, and
 * *len its new length; -1, and nothing changed, if a '%' is not followed
 * by two hex digits (RFC 3986 §2.1).  "%66" and "f" name the same
 * resource to any origin, and "%2f" and "%2F" the same octet, so a rule
 * compared byte for byte would let "/v1/%66iles" past a "/v1/files"
 * rule: every "%XY" of an unreserved octet (letters, digits, "-._~") is
 * decoded, and the others written in upper case.  The broker matches and
 * sends a request's path and query in this form, and refuses those with
 * a stray '%'; a rule's literal path and query values must be written in
 * it (the loader says so).
 */
int fb_uri_normalize(char *s, size_t *len);

/* Whether a field name equals a lower-case header name, ignoring case
 * and treating '_' as '-' on both sides (the variants servers fold
 * together). */
bool fb_header_name_is(const char *name, size_t len, const char *lower);

/* The path and query in fb_uri_normalize()'s form; fb_request_target()
 * sets them. */
struct fb_request {
	const char *method;
	size_t method_len;
	const char *path;  /* the target before the first '?' */
	size_t path_len;
	const char *lenient; /* the path as lenient servers read it, if it differs */
	size_t lenient_len;
	const char *url_path; /* after "//authority", read leniently; or NULL */
	size_t url_path_len;
	size_t semi_len; /* path[0..semi_len) is before its first ';'; 0: none */
	const char *query; /* after the first '?', without it; NULL: none */
	size_t query_len;
	const char *form_query; /* as form decoders split it, if it differs */
	size_t form_query_len;
	const struct fb_http_header *headers;
	size_t nheaders;
};

/*
 * r's path and query (NULL: none), and the other ways origins read them,
 * written in scratch (FB_TARGET_SCRATCH bytes) where they differ.
 *
 * The path as the lenient servers read it: nginx and Apache merge
 * slashes and serve "//blocked" as "/blocked", IIS takes '\\' for '/',
 * and Tomcat and Spring drop a segment's ";parameters" ("/blocked;x").
 * That reading takes '\\', "%2F" and "%5C" for '/', a run of '/' as one,
 * and drops each segment from its first ';'.  Fastify 4's router ends
 * the path at its first ';' ("/blocked;x/y" is "/blocked"), a reading
 * that needs no scratch.  A path that starts with two
 * separators is also read as a URL parser reads it ("//x/blocked": the
 * host "x", the path "/blocked", as Node's `new URL(req.url, base)` has
 * it), the path after the authority in the lenient reading.
 *
 * The query as form decoders read it: every one (PHP, Rack, Express,
 * Python's, Tornado's, Node's URLSearchParams) takes '+' for a space, and
 * Rack before 3 splits pairs at ';' as well as '&': '+' as "%20" and ';'
 * as '&'.
 */
#define FB_TARGET_SCRATCH(path_len, query_len) \
	(2 * (path_len) + 3 * (query_len) + 1)
void fb_request_target(struct fb_request *r, const char *path,
		       size_t path_len, const char *query, size_t query_len,
		       char *scratch);

/*
 * One HTTP request on a brokered connection to `domain`: rules in order,
 * first match wins.  Verdict: BROKER (transform), FORWARD, RESPOND, or
 * ALLOW with reason no-rule (sent unchanged).
 */
void fb_policy_decide_request(const struct fb_domain *domain,
			      const struct fb_request *req,
			      struct fb_decision *d);

/* Whether two keys (of two policies, say) decide every request alike and
 * do the same with it: the same rules in the same order, secrets' values
 * included. */
bool fb_domain_rules_equal(const struct fb_domain *a,
			   const struct fb_domain *b);

#endif /* FB_POLICY_H */
