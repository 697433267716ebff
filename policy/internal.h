/*
 * internal.h — what the policy module's files share; not for other modules.
 *
 * Files:
 *   doc.c       a YAML/JSON document tree with line:col on every node,
 *               RFC 7396 merge patch
 *   doc_json.c  the fast path for plain JSON documents
 *   load.c      document -> validated model (every error, nothing half-built)
 *   secret.c    ${env:NAME} / ${file:PATH}
 *   dump.c      the redacted read-back (object and legacy shapes)
 *   arena.c     the memory a loaded policy lives in
 *   diag.c      diagnostics
 *   addr.c      addresses, prefixes, ranges
 *   classify.c  the built-in non-public set
 *   name.c      name normalisation
 *   suffix.c    whether a key's hosts have one owner (public suffixes)
 *   nameindex.c compiled name -> key lookup
 *   prefix.c    compiled address -> verdict lookup
 *   decide.c    the decision API
 *   target.c    a request's path and query as origins read them
 *   request.c   per-request rule matching
 */
#ifndef FB_POLICY_INTERNAL_H
#define FB_POLICY_INTERNAL_H

#include "policy/policy.h"

struct fb_node;        /* doc.c: the source document */
struct fb_arena;       /* arena.c */
struct fb_name_index;  /* nameindex.c */
struct fb_prefix_set;  /* prefix.c */

struct fb_policy {
	int refs;
	enum fb_mode mode;

	struct fb_domain *domains; /* in source order */
	size_t ndomains;
	char *patterns;            /* the domains' patterns, back to back */
	struct fb_cidr *subnets[2]; /* [0] allow, [1] deny, canonical */
	size_t nsubnets[2];
	struct fb_cidr *publics;    /* operator --public, copied */
	size_t npublics;

	/* compiled by fb_policy_compile() */
	struct fb_name_index *names;
	const struct fb_domain *catch_all; /* the "*" key, or NULL */
	struct fb_prefix_set *deny;    /* subnets.deny */
	struct fb_prefix_set *allow;   /* subnets.allow */
	struct fb_prefix_set *reopen;  /* subnets.allow entries inside a non-public block */
	struct fb_prefix_set *public_; /* --public */

	/* canonical object form with secret references as written (PATCH) */
	struct fb_node *source;
	/* where the domains, their patterns and name index live, and the
	 * source's nodes when the JSON fast path read the text */
	struct fb_arena *arena;
};

/* MurmurHash3's 64-bit finaliser: every input bit reaches every output
 * bit, as a hash's low bits indexing a table need. */
static inline uint64_t fb_fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 33);
}

/*
 * arena.c: bump allocation from large blocks, everything given back at
 * once by fb_arena_free, which keeps the blocks (faulted in) for the next
 * arena.  `estimate` sizes the first new block (later ones double).
 * NULL on ENOMEM.
 */
struct fb_arena *fb_arena_new(size_t estimate);
void *fb_arena_alloc(struct fb_arena *arena, size_t size);
void *fb_arena_calloc(struct fb_arena *arena, size_t n, size_t size);
/* `p`, of `size` bytes, needs only its first `keep`: the rest goes back
 * when p is the last allocation of its block (else it stays). */
void fb_arena_shrink(struct fb_arena *arena, void *p, size_t size,
		     size_t keep);
/* The bytes handed out, and the blocks' headers (NULL: 0). */
size_t fb_arena_used(const struct fb_arena *arena);
/* Give every block back, the arena still usable (NULL: nothing). */
void fb_arena_clear(struct fb_arena *arena);
void fb_arena_free(struct fb_arena *arena);
/* Have `bytes` of blocks kept, faulted in, for arenas to come. */
void fb_arena_reserve(size_t bytes);

/*
 * Build the compiled lookups from domains/subnets/publics, all but the
 * name index when the loader built it already.  Called by the loader once
 * the model is complete; 0, or -1 with diags appended.
 */
int fb_policy_compile(struct fb_policy *p, struct fb_diags *diags,
		      const char *file);
/* Frees what fb_policy_compile() built (safe on a partly compiled policy). */
void fb_policy_uncompile(struct fb_policy *p);
/* Frees everything a policy owns; calls fb_policy_uncompile(). */
void fb_policy_destroy(struct fb_policy *p);

/*
 * name.c: whether s[0..len) is a name (a pattern, when `wild`) in its
 * canonical form already, the form nearly every key and wire name comes
 * in: lower-case LDH labels of 1-63 octets, no "-" at a label's ends, at
 * most 253 octets, the last label not starting with a digit.  Such a name
 * normalises to itself; normalising takes this one-pass path for it, and
 * the full one, which also words an error, for anything else.
 */
bool fb_name_canonical(const char *s, size_t len, bool wild);

/*
 * name.c: normalise an allow key.  Like fb_name_normalize, but a label may
 * be exactly "*"; "*" alone is the catch-all; partial-label wildcards
 * ("api*.x") are errors.  0, or -1 with *why set to a static message.
 */
int fb_pattern_normalize(const char *in, size_t len, char out[FB_NAME_MAX],
			 const char **why);

/*
 * suffix.c: whether the hosts a normalised key matches can belong to more
 * than one owner: 1 when they can (a wildcard over a public suffix, or
 * over a name with public suffixes below it), 0 when one owner holds them
 * all, -1 when the public suffix list cannot be read; `why` says which.
 */
int fb_pattern_owners(const char *pattern, char *why, size_t size);

/* nameindex.c; *same (when not NULL) is set when two of the keys are the
 * same pattern (the index keeps the first), else cleared. */
struct fb_name_index *fb_name_index_build(const struct fb_domain *d, size_t n,
					  bool *same);
/* The same in `arena` (NULL: malloc'd); freeing it is then the arena's. */
struct fb_name_index *fb_name_index_build_in(struct fb_arena *arena,
					     const struct fb_domain *d, size_t n,
					     bool *same);
const struct fb_domain *fb_name_index_lookup(const struct fb_name_index *ix,
					     const char *name);
void fb_name_index_free(struct fb_name_index *ix);

/* prefix.c: longest-prefix membership over IPv4 and IPv6 prefixes */
struct fb_prefix_set *fb_prefix_set_build(const struct fb_cidr *c, size_t n);
bool fb_prefix_set_contains(const struct fb_prefix_set *s,
			    const struct fb_addr *a);
void fb_prefix_set_free(struct fb_prefix_set *s);

/* request.c */
bool fb_matcher_match(const struct fb_matcher *m, const char *s, size_t len);

/*
 * ranges.c: address intervals as 128-bit integers, for merging and
 * subtracting prefix sets.  An IPv4 address is its 32-bit value.
 */
typedef unsigned __int128 fb_u128;

struct fb_span {
	fb_u128 lo, hi; /* inclusive */
};

fb_u128 fb_addr_value(const struct fb_addr *a);
void fb_cidr_span(const struct fb_cidr *c, struct fb_span *s);
/* Sort and merge overlapping or adjacent spans in place; the new count. */
size_t fb_spans_merge(struct fb_span *s, size_t n);
/* The prefixes of one family as merged spans (malloc'd, NULL on ENOMEM). */
struct fb_span *fb_spans_from_cidrs(const struct fb_cidr *c, size_t n,
				    uint8_t family, size_t *nout);

/* classify.c: does a subnets.allow entry lie inside one non-public block? */
bool fb_cidr_reopens(const struct fb_cidr *c);

/*
 * classify.c: the IPv4 addresses an IPv6 address of one of the embedding
 * forms carries, into v4[] (a Teredo server's first, then its client's);
 * how many: 0 for an IPv4 address or an IPv6 one of no such form.
 */
#define FB_EMBEDDED_V4_MAX 2
size_t fb_addr_embedded_v4(const struct fb_addr *a,
			   struct fb_addr v4[FB_EMBEDDED_V4_MAX]);
/*
 * classify.c: the IPv6 prefixes that carry IPv4 prefix `v4` (mapped,
 * compatible, translated, NAT64, 6to4), into out[]; how many.  Teredo and local-use
 * NAT64 carry an address elsewhere than right after their prefix and
 * have no such image: the non-public set holds them whole.
 */
#define FB_EMBED_IMAGES_MAX 7
size_t fb_cidr_embedded_images(const struct fb_cidr *v4,
			       struct fb_cidr out[FB_EMBED_IMAGES_MAX]);
/* classify.c: fb_nonpublic_block() for `a`, given what it embeds. */
const char *fb_nonpublic_block_of(const struct fb_addr *a,
				  const struct fb_addr *v4, size_t nv4);

#endif /* FB_POLICY_INTERNAL_H */
