/*
 * doc.h — the policy module's document tree: YAML or JSON text parsed by
 * libyaml into nodes that remember where they were written, so that every
 * diagnostic can name FILE:LINE:COL.  Also the RFC 7396 merge patch on
 * such trees, and a diagnostics sink that caps the number of messages.
 *
 * Internal to policy/; not for other modules.
 */
#ifndef FB_POLICY_DOC_H
#define FB_POLICY_DOC_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/policy.h"

struct fb_arena; /* internal.h */

/* Hostile-input limits: a document cannot exhaust memory or stack. */
#define FB_DOC_MAX_BYTES (16u << 20) /* 16 MiB of text */
#define FB_DOC_MAX_DEPTH 64          /* nested lists and maps */
#define FB_DOC_MAX_NODES (1u << 20)  /* scalars, lists and maps */
#define FB_REPORT_MAX 100            /* diagnostics kept per load */

enum fb_node_kind {
	FB_NODE_NULL,   /* a plain null, ~, empty value or JSON null */
	FB_NODE_SCALAR, /* any other scalar; `text` holds it */
	FB_NODE_SEQ,
	FB_NODE_MAP,
};

struct fb_node {
	enum fb_node_kind kind;
	unsigned line, col; /* 1-based; 0 for nodes with no source position */
	bool quoted;        /* written quoted: "200" is a string, 200 a number */
	char *text;         /* FB_NODE_SCALAR: NUL-terminated, may hold NULs;
	                       change it with fb_node_set_text */
	size_t len;
	/* FB_NODE_SEQ: items in vals; FB_NODE_MAP: keys[i] -> vals[i] */
	struct fb_node **keys;
	struct fb_node **vals;
	size_t n, cap;
	/* where the node and its keys and vals live (a policy's arena), or
	 * NULL: each malloc'd.  Nodes of either kind mix in one tree. */
	struct fb_arena *arena;
};

/*
 * Where diagnostics go while one policy is read: at most FB_REPORT_MAX
 * are kept; fb_report_finish() puts them in source order (diags from
 * `base` on) and adds "... and N more errors".
 */
struct fb_report {
	struct fb_diags *diags;
	const char *file;
	size_t base;  /* diags->n when the load began */
	size_t count; /* problems found, kept or not */
};

void fb_report(struct fb_report *r, const struct fb_node *at,
	       const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void fb_report_at(struct fb_report *r, unsigned line, unsigned col,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void fb_report_finish(struct fb_report *r);

/*
 * Parse one YAML (or JSON) document.  Aliases, tags, complex keys,
 * duplicate keys and a second document are errors.  An empty document
 * yields an FB_NODE_NULL node.  NULL on error, with every problem found
 * reported (libyaml stops at its first syntax error).  Plain JSON takes
 * the fast path, anything else libyaml; either gives the same tree and
 * the same reports.
 */
struct fb_node *fb_doc_parse(const char *text, size_t len,
			     struct fb_report *r);
/* The same, the fast path's nodes in `arena` (NULL: malloc'd).  The arena
 * must outlive the tree; libyaml's nodes are malloc'd. */
struct fb_node *fb_doc_parse_in(struct fb_arena *arena, const char *text,
				size_t len, struct fb_report *r);
/* The two paths alone (for tests that hold them to each other).  The fast
 * path (doc_json.c) reports nothing: NULL means it declined the text, and
 * it leaves duplicate keys in. */
struct fb_node *fb_doc_parse_json(const char *text, size_t len);
struct fb_node *fb_doc_parse_json_in(struct fb_arena *arena, const char *text,
				     size_t len);
struct fb_node *fb_doc_parse_yaml(const char *text, size_t len,
				  struct fb_report *r);

/* Freeing wipes every scalar: a document may hold literal secrets. */
void fb_node_free(struct fb_node *n);

struct fb_node *fb_node_new(enum fb_node_kind kind, unsigned line,
			    unsigned col);
struct fb_node *fb_node_new_scalar(const char *text, size_t len,
				   unsigned line, unsigned col);
/* The same in `arena` (NULL: malloc'd). */
struct fb_node *fb_node_new_in(struct fb_arena *arena, enum fb_node_kind kind,
			       unsigned line, unsigned col);
struct fb_node *fb_node_new_scalar_in(struct fb_arena *arena, const char *text,
				      size_t len, unsigned line, unsigned col);
/* Replace a scalar's text (the old one wiped).  -1 on ENOMEM. */
int fb_node_set_text(struct fb_node *n, const char *text, size_t len);
/* Append; the container owns the node(s) afterwards.  -1 on ENOMEM. */
int fb_node_append(struct fb_node *seq, struct fb_node *val);
int fb_node_put(struct fb_node *map, struct fb_node *key,
		struct fb_node *val);
/* Room for `cap` items in a list or map, made at once.  -1 on ENOMEM. */
int fb_node_reserve(struct fb_node *n, size_t cap);
/* A deep copy; with `keep_marks` false every position becomes 0:0. */
struct fb_node *fb_node_copy(const struct fb_node *n, bool keep_marks);
/* The value under `key` in a map, or NULL. */
struct fb_node *fb_node_get(const struct fb_node *map, const char *key);
bool fb_node_is(const struct fb_node *n, const char *text);
/* "a string", "a number", "a list", ... for messages. */
const char *fb_node_what(const struct fb_node *n);

/* RFC 7396: a new tree, `target` with `patch` applied; NULL on ENOMEM. */
struct fb_node *fb_node_merge_patch(const struct fb_node *target,
				    const struct fb_node *patch);

#endif /* FB_POLICY_DOC_H */
