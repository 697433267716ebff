/*
 * doc.c — YAML/JSON text to a tree of nodes with line:col on each, built
 * from libyaml's event stream with an explicit stack (bounded by
 * FB_DOC_MAX_DEPTH) rather than recursion, so a hostile document cannot
 * exhaust the C stack.  Every other walk over a tree recurses at most that
 * deep.  Also the RFC 7396 merge patch on trees.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <yaml.h>

#include <openssl/crypto.h>

#include "policy/doc.h"
#include "policy/internal.h"

/* ---- nodes ------------------------------------------------------------ */

struct fb_node *fb_node_new_in(struct fb_arena *arena, enum fb_node_kind kind,
			       unsigned line, unsigned col)
{
	struct fb_node *n = arena ? fb_arena_alloc(arena, sizeof(*n))
				 : malloc(sizeof(*n));

	if (!n)
		return NULL;
	*n = (struct fb_node){
		.kind = kind, .line = line, .col = col, .arena = arena,
	};
	return n;
}

struct fb_node *fb_node_new(enum fb_node_kind kind, unsigned line,
			    unsigned col)
{
	return fb_node_new_in(NULL, kind, line, col);
}

/* A scalar's text is allocated with the node, right behind it: a policy
 * of many domains is many scalars, and one allocation each is half. */
static char *inline_text(struct fb_node *n)
{
	return (char *)(n + 1);
}

struct fb_node *fb_node_new_scalar_in(struct fb_arena *arena, const char *text,
				      size_t len, unsigned line, unsigned col)
{
	struct fb_node *n = arena ? fb_arena_alloc(arena, sizeof(*n) + len + 1)
				 : malloc(sizeof(*n) + len + 1);

	if (!n)
		return NULL;
	*n = (struct fb_node){
		.kind = FB_NODE_SCALAR, .line = line, .col = col,
		.text = inline_text(n), .len = len, .arena = arena,
	};
	memcpy(n->text, text, len);
	n->text[len] = '\0';
	return n;
}

struct fb_node *fb_node_new_scalar(const char *text, size_t len,
				   unsigned line, unsigned col)
{
	return fb_node_new_scalar_in(NULL, text, len, line, col);
}

int fb_node_set_text(struct fb_node *n, const char *text, size_t len)
{
	char *t = n->text;

	if (len > n->len) {
		if (!(t = malloc(len + 1)))
			return -1;
		OPENSSL_cleanse(n->text, n->len);
		if (n->text != inline_text(n))
			free(n->text);
	} else {
		OPENSSL_cleanse(t + len, n->len - len);
	}
	memmove(t, text, len);
	t[len] = '\0';
	n->text = t;
	n->len = len;
	return 0;
}

void fb_node_free(struct fb_node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++) {
		if (n->keys)
			fb_node_free(n->keys[i]);
		fb_node_free(n->vals[i]);
	}
	if (n->text) {
		OPENSSL_cleanse(n->text, n->len);
		if (n->text != inline_text(n))
			free(n->text);
	}
	if (n->arena)
		return; /* the arena's, freed with it */
	free(n->keys);
	free(n->vals);
	free(n);
}

/* An array of `cap` node pointers holding the `n` of `old`. */
static struct fb_node **array_grow(struct fb_node *n, struct fb_node **old,
				   size_t cap)
{
	struct fb_node **a;

	if (!n->arena)
		return realloc(old, cap * sizeof(*a));
	if (cap > SIZE_MAX / sizeof(*a) ||
	    !(a = fb_arena_alloc(n->arena, cap * sizeof(*a))))
		return NULL;
	if (n->n)
		memcpy(a, old, n->n * sizeof(*a));
	return a; /* the old one stays in the arena until it goes */
}

int fb_node_reserve(struct fb_node *n, size_t cap)
{
	struct fb_node **vals, **keys;

	if (cap <= n->cap)
		return 0;
	vals = array_grow(n, n->vals, cap);
	if (!vals)
		return -1;
	n->vals = vals;
	if (n->kind == FB_NODE_MAP) {
		keys = array_grow(n, n->keys, cap);
		if (!keys)
			return -1;
		n->keys = keys;
	}
	n->cap = cap;
	return 0;
}

static int node_grow(struct fb_node *n)
{
	return fb_node_reserve(n, n->cap ? 2 * n->cap : 4);
}

int fb_node_append(struct fb_node *seq, struct fb_node *val)
{
	if (seq->n == seq->cap && node_grow(seq) < 0)
		return -1;
	seq->vals[seq->n++] = val;
	return 0;
}

int fb_node_put(struct fb_node *map, struct fb_node *key, struct fb_node *val)
{
	if (map->n == map->cap && node_grow(map) < 0)
		return -1;
	map->keys[map->n] = key;
	map->vals[map->n++] = val;
	return 0;
}

struct fb_node *fb_node_copy(const struct fb_node *n, bool keep_marks)
{
	unsigned line = keep_marks ? n->line : 0, col = keep_marks ? n->col : 0;
	struct fb_node *c;

	if (n->kind == FB_NODE_SCALAR) {
		c = fb_node_new_scalar(n->text, n->len, line, col);
		if (c)
			c->quoted = n->quoted;
		return c;
	}
	c = fb_node_new(n->kind, line, col);
	if (!c)
		return NULL;
	for (size_t i = 0; i < n->n; i++) {
		struct fb_node *k = NULL, *v = fb_node_copy(n->vals[i], keep_marks);
		int rc;

		if (v && n->keys)
			k = fb_node_copy(n->keys[i], keep_marks);
		if (!v || (n->keys && !k))
			rc = -1;
		else if (n->keys)
			rc = fb_node_put(c, k, v);
		else
			rc = fb_node_append(c, v);
		if (rc < 0) {
			fb_node_free(k);
			fb_node_free(v);
			fb_node_free(c);
			return NULL;
		}
	}
	return c;
}

static ssize_t map_find(const struct fb_node *map, const char *text,
			size_t len)
{
	for (size_t i = 0; i < map->n; i++) {
		const struct fb_node *k = map->keys[i];

		if (k->kind == FB_NODE_SCALAR && k->len == len &&
		    memcmp(k->text, text, len) == 0)
			return (ssize_t)i;
	}
	return -1;
}

struct fb_node *fb_node_get(const struct fb_node *map, const char *key)
{
	ssize_t i;

	if (!map || map->kind != FB_NODE_MAP)
		return NULL;
	i = map_find(map, key, strlen(key));
	return i < 0 ? NULL : map->vals[i];
}

bool fb_node_is(const struct fb_node *n, const char *text)
{
	return n && n->kind == FB_NODE_SCALAR && n->len == strlen(text) &&
	       memcmp(n->text, text, n->len) == 0;
}

/* YAML 1.2 core schema, as far as messages need it. */
static bool plain_is_bool(const struct fb_node *n)
{
	static const char *const words[] = { "true", "True", "TRUE",
					     "false", "False", "FALSE" };

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (fb_node_is(n, words[i]))
			return true;
	return false;
}

static bool plain_is_number(const struct fb_node *n)
{
	char *end;

	if (n->len == 0 || strchr("+-.0123456789", n->text[0]) == NULL)
		return false;
	strtod(n->text, &end);
	return end == n->text + n->len;
}

const char *fb_node_what(const struct fb_node *n)
{
	switch (n->kind) {
	case FB_NODE_NULL:
		return "null";
	case FB_NODE_SEQ:
		return "a list";
	case FB_NODE_MAP:
		return "a map";
	case FB_NODE_SCALAR:
		break;
	}
	if (!n->quoted && plain_is_bool(n))
		return "a boolean";
	if (!n->quoted && plain_is_number(n))
		return "a number";
	return "a string";
}

/* ---- merge patch (RFC 7396 §2) ------------------------------------------ */

struct fb_node *fb_node_merge_patch(const struct fb_node *target,
				    const struct fb_node *patch)
{
	struct fb_node *out;

	if (patch->kind != FB_NODE_MAP)
		return fb_node_copy(patch, true);
	if (target && target->kind == FB_NODE_MAP)
		out = fb_node_copy(target, true);
	else
		out = fb_node_new(FB_NODE_MAP, patch->line, patch->col);
	if (!out)
		return NULL;
	for (size_t i = 0; i < patch->n; i++) {
		const struct fb_node *k = patch->keys[i], *v = patch->vals[i];
		ssize_t at = map_find(out, k->text, k->len);
		struct fb_node *merged, *key;

		if (v->kind == FB_NODE_NULL) {
			if (at >= 0) {
				fb_node_free(out->keys[at]);
				fb_node_free(out->vals[at]);
				memmove(&out->keys[at], &out->keys[at + 1],
					(out->n - at - 1) * sizeof(*out->keys));
				memmove(&out->vals[at], &out->vals[at + 1],
					(out->n - at - 1) * sizeof(*out->vals));
				out->n--;
			}
			continue;
		}
		merged = fb_node_merge_patch(at >= 0 ? out->vals[at] : NULL, v);
		if (!merged)
			goto fail;
		if (at >= 0) {
			fb_node_free(out->vals[at]);
			out->vals[at] = merged;
			continue;
		}
		key = fb_node_copy(k, true);
		if (!key || fb_node_put(out, key, merged) < 0) {
			fb_node_free(key);
			fb_node_free(merged);
			goto fail;
		}
	}
	return out;
fail:
	fb_node_free(out);
	return NULL;
}

/* ---- parsing ------------------------------------------------------------ */

struct builder {
	struct fb_report *r;
	/* open containers; for a map, the key waiting for its value */
	struct fb_node *open[FB_DOC_MAX_DEPTH];
	struct fb_node *key[FB_DOC_MAX_DEPTH];
	size_t depth;
	size_t nodes;
	struct fb_node *root;
};

static unsigned mark_line(const yaml_mark_t *m)
{
	return (unsigned)m->line + 1;
}

static unsigned mark_col(const yaml_mark_t *m)
{
	return (unsigned)m->column + 1;
}

struct key_at {
	const struct fb_node *key;
	size_t at;
};

static bool same_text(const struct fb_node *x, const struct fb_node *y)
{
	return x->len == y->len && memcmp(x->text, y->text, x->len) == 0;
}

static int key_at_cmp(const void *a, const void *b)
{
	const struct key_at *x = a, *y = b;
	int c;

	if (x->key->len != y->key->len)
		return x->key->len < y->key->len ? -1 : 1;
	c = memcmp(x->key->text, y->key->text, x->key->len);
	if (c)
		return c;
	/* equal keys stay in source order: the first one is kept */
	return x->at < y->at ? -1 : 1;
}

/*
 * A finished map: report each later copy of a key, naming the first, and
 * drop it so that the rest of the document can still be checked.  Sorting
 * keeps a map of many keys from costing n^2 comparisons.
 */
static int map_drop_duplicates(struct fb_report *r, struct fb_node *map)
{
	struct key_at *sorted;
	bool *drop;
	size_t first = 0, j = 0;

	if (map->n < 2)
		return 0;
	sorted = malloc(map->n * sizeof(*sorted));
	drop = calloc(map->n, sizeof(*drop));
	if (!sorted || !drop) {
		free(sorted);
		free(drop);
		return -1;
	}
	for (size_t i = 0; i < map->n; i++)
		sorted[i] = (struct key_at){ map->keys[i], i };
	qsort(sorted, map->n, sizeof(*sorted), key_at_cmp);
	for (size_t i = 1; i < map->n; i++) {
		const struct fb_node *k = sorted[i].key, *f = sorted[first].key;

		if (!same_text(k, f)) {
			first = i;
			continue;
		}
		fb_report(r, k, "duplicate key \"%s\" (first at %u:%u)",
			  k->text, f->line, f->col);
		drop[sorted[i].at] = true;
	}
	for (size_t i = 0; i < map->n; i++) {
		if (drop[i]) {
			fb_node_free(map->keys[i]);
			fb_node_free(map->vals[i]);
			continue;
		}
		map->keys[j] = map->keys[i];
		map->vals[j++] = map->vals[i];
	}
	map->n = j;
	free(sorted);
	free(drop);
	return 0;
}

/* Attach a finished node to the open container, or make it the root. */
static int builder_attach(struct builder *b, struct fb_node *n)
{
	struct fb_node *parent;
	size_t top;

	if (b->depth == 0) {
		b->root = n;
		return 0;
	}
	top = b->depth - 1;
	parent = b->open[top];
	if (parent->kind == FB_NODE_SEQ) {
		if (fb_node_append(parent, n) == 0)
			return 0;
	} else if (!b->key[top]) {
		if (n->kind != FB_NODE_SCALAR) {
			fb_report(b->r, n, "expected a string as a map key, "
				  "found %s", fb_node_what(n));
			fb_node_free(n);
			return -1;
		}
		b->key[top] = n;
		return 0;
	} else if (fb_node_put(parent, b->key[top], n) == 0) {
		b->key[top] = NULL;
		return 0;
	}
	fb_node_free(n);
	fb_report(b->r, NULL, "out of memory");
	return -1;
}

/* The plain scalars YAML 1.2's core schema reads as null (JSON's null too). */
static bool is_null_word(const char *v, size_t len)
{
	static const char *const words[] = { "", "~", "null", "Null", "NULL" };

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i]) == len && memcmp(v, words[i], len) == 0)
			return true;
	return false;
}

static int builder_scalar(struct builder *b, const yaml_event_t *ev)
{
	const char *v = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	unsigned line = mark_line(&ev->start_mark), col = mark_col(&ev->start_mark);
	struct fb_node *n;

	if (plain && is_null_word(v, len))
		n = fb_node_new(FB_NODE_NULL, line, col);
	else
		n = fb_node_new_scalar(v, len, line, col);
	if (!n) {
		fb_report(b->r, NULL, "out of memory");
		return -1;
	}
	n->quoted = !plain;
	return builder_attach(b, n);
}

static int builder_open(struct builder *b, const yaml_event_t *ev,
			enum fb_node_kind kind)
{
	unsigned line = mark_line(&ev->start_mark), col = mark_col(&ev->start_mark);
	struct fb_node *n;

	if (b->depth == FB_DOC_MAX_DEPTH) {
		fb_report_at(b->r, line, col, "nesting deeper than %d levels",
			     FB_DOC_MAX_DEPTH);
		return -1;
	}
	n = fb_node_new(kind, line, col);
	if (!n) {
		fb_report(b->r, NULL, "out of memory");
		return -1;
	}
	b->open[b->depth] = n;
	b->key[b->depth++] = NULL;
	return 0;
}

static int builder_close(struct builder *b)
{
	struct fb_node *n = b->open[--b->depth];

	if (n->kind == FB_NODE_MAP && map_drop_duplicates(b->r, n) < 0) {
		fb_node_free(n);
		fb_report(b->r, NULL, "out of memory");
		return -1;
	}
	return builder_attach(b, n);
}

static void builder_free(struct builder *b)
{
	while (b->depth > 0) {
		b->depth--;
		fb_node_free(b->key[b->depth]);
		fb_node_free(b->open[b->depth]);
	}
	fb_node_free(b->root);
	b->root = NULL;
}

static void report_syntax(struct fb_report *r, const yaml_parser_t *p)
{
	const char *problem = p->problem ? p->problem : "unknown error";

	if (p->error == YAML_READER_ERROR) {
		fb_report_at(r, 0, 0, "invalid YAML: %s at byte %zu", problem,
			     p->problem_offset);
		return;
	}
	if (p->context)
		fb_report_at(r, mark_line(&p->problem_mark),
			     mark_col(&p->problem_mark),
			     "invalid YAML: %s %s at %u:%u", problem, p->context,
			     mark_line(&p->context_mark),
			     mark_col(&p->context_mark));
	else
		fb_report_at(r, mark_line(&p->problem_mark),
			     mark_col(&p->problem_mark), "invalid YAML: %s",
			     problem);
}

/* Anchors, aliases and tags: none has a use in a policy, aliases can
 * multiply a document's size, and tags would change what a scalar is. */
static int refuse_extras(struct builder *b, const yaml_event_t *ev)
{
	const yaml_char_t *anchor = NULL, *tag = NULL;

	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		fb_report_at(b->r, mark_line(&ev->start_mark),
			     mark_col(&ev->start_mark),
			     "YAML aliases are not supported: write the value out");
		return -1;
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
		break;
	default:
		return 0;
	}
	if (anchor) {
		fb_report_at(b->r, mark_line(&ev->start_mark),
			     mark_col(&ev->start_mark),
			     "YAML anchors are not supported (found &%s)", anchor);
		return -1;
	}
	if (tag) {
		fb_report_at(b->r, mark_line(&ev->start_mark),
			     mark_col(&ev->start_mark),
			     "YAML tags are not supported (found %s)", tag);
		return -1;
	}
	return 0;
}

static int builder_event(struct builder *b, const yaml_event_t *ev,
			 int *documents)
{
	if (refuse_extras(b, ev) < 0)
		return -1;
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++*documents > 1) {
			fb_report_at(b->r, mark_line(&ev->start_mark),
				     mark_col(&ev->start_mark),
				     "expected one YAML document, found a second");
			return -1;
		}
		return 0;
	case YAML_SCALAR_EVENT:
		break;
	case YAML_SEQUENCE_START_EVENT:
		return builder_open(b, ev, FB_NODE_SEQ);
	case YAML_MAPPING_START_EVENT:
		return builder_open(b, ev, FB_NODE_MAP);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		return builder_close(b);
	default:
		return 0;
	}
	return builder_scalar(b, ev);
}

struct fb_node *fb_doc_parse_yaml(const char *text, size_t len,
				  struct fb_report *r)
{
	struct builder b = { .r = r };
	yaml_parser_t parser;
	yaml_event_t ev;
	int documents = 0, rc = 0;
	bool done = false;

	if (len > FB_DOC_MAX_BYTES) {
		fb_report_at(r, 0, 0, "policy is %zu bytes, more than the "
			     "limit of %u", len, FB_DOC_MAX_BYTES);
		return NULL;
	}
	if (!yaml_parser_initialize(&parser)) {
		fb_report_at(r, 0, 0, "out of memory");
		return NULL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done && rc == 0) {
		if (!yaml_parser_parse(&parser, &ev)) {
			report_syntax(r, &parser);
			rc = -1;
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		if (++b.nodes > FB_DOC_MAX_NODES) {
			fb_report_at(r, mark_line(&ev.start_mark),
				     mark_col(&ev.start_mark),
				     "more than %u values in one policy",
				     FB_DOC_MAX_NODES);
			rc = -1;
		} else {
			rc = builder_event(&b, &ev, &documents);
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	if (rc < 0) {
		builder_free(&b);
		return NULL;
	}
	if (!b.root) { /* no document at all: empty, or only comments */
		b.root = fb_node_new(FB_NODE_NULL, 1, 1);
		if (!b.root)
			fb_report_at(r, 0, 0, "out of memory");
	}
	return b.root;
}

/* The fast path's tree gets what builder_close gives libyaml's: every map,
 * innermost first, without its duplicate keys, each one reported. */
static int drop_duplicates(struct fb_report *r, struct fb_node *n)
{
	/* only a collection with something in it can hold a map to check:
	 * the 10k scalars of a large allow list are passed over */
	for (size_t i = 0; i < n->n; i++)
		if (n->vals[i]->n && drop_duplicates(r, n->vals[i]) < 0)
			return -1;
	return n->kind == FB_NODE_MAP ? map_drop_duplicates(r, n) : 0;
}

struct fb_node *fb_doc_parse_in(struct fb_arena *arena, const char *text,
				size_t len, struct fb_report *r)
{
	struct fb_node *doc = NULL;

	if (len <= FB_DOC_MAX_BYTES)
		doc = fb_doc_parse_json_in(arena, text, len);
	if (!doc) {
		fb_arena_clear(arena); /* what the fast path left is garbage */
		return fb_doc_parse_yaml(text, len, r);
	}
	if (drop_duplicates(r, doc) < 0) {
		fb_node_free(doc);
		fb_report(r, NULL, "out of memory");
		return NULL;
	}
	return doc;
}

struct fb_node *fb_doc_parse(const char *text, size_t len, struct fb_report *r)
{
	return fb_doc_parse_in(NULL, text, len, r);
}
