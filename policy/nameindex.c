/*
 * nameindex.c — which allow key decides a name, in time independent of
 * the number of keys.
 *
 * The keys form a trie over their labels read right to left ("com",
 * "example", "www"), with every node's children in one shared hash table
 * keyed by (parent, label).  A node records
 *   exact    the key that ends here ("www.example.com", "www.*.com"),
 *   leading  the key that ends here behind a leading "*." ("*.example.com"
 *            sits on the "example" node): it matches one or more further
 *            labels, never zero, so never the apex,
 *   star     the child for a "*" label elsewhere, which matches exactly one.
 * The catch-all "*" is the root's leading key: it matches every name.
 *
 * Precedence.  Two keys that match the same name are compared label by
 * label from the right (TLD first); at the first position where one has a
 * literal label and the other "*", the literal wins.  If that never
 * happens because one key runs out first (its leading "*." covers the
 * rest), the key with more literal labels wins, then the key with more
 * labels.  Distinct keys never tie.  Hence, for www.example.com:
 * "www.example.com" > "*.example.com" > "www.*.com" > "*.com" > "*", and
 * for a.b.example.com: "*.*.example.com" > "*.example.com".
 *
 * The lookup is a depth-first walk that tries, at each label, the literal
 * child, then the "*" child, then the node's leading key.  That order is
 * the precedence above, so the first complete match found is the winner.
 * A trie node is visited at most once per lookup, and only nodes on paths
 * that spell the name can be reached, so the cost depends on the name and
 * on how many "*" labels keys put at the same depth, not on the key count.
 */
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

#define MAX_LABELS 127 /* 253 octets allow at most 127 one-octet labels */

/*
 * A node of the trie, with the label that leads to it from its parent.
 * The nodes are an array filled in insertion order; the hash table over
 * (parent, label) holds only each edge's hash and child node, 8 bytes a
 * slot, so building the index of a large policy touches little memory at
 * random (the table) and the rest in order, and a lookup still reads one
 * slot and one node per label.
 */
struct node {
	const struct fb_domain *exact;
	const struct fb_domain *leading;
	const char *label; /* points into the key's pattern; the root: NULL */
	uint32_t len;
	uint32_t parent;
	uint32_t star;     /* child for "*"; 0: none (the root is nobody's child) */
};

struct slot {
	uint32_t hash;
	uint32_t child; /* 0: free (the root is nobody's child) */
};

struct fb_name_index {
	struct node *nodes;
	size_t nnodes, capnodes;
	struct slot *slots;
	size_t mask;   /* slot count - 1, a power of two */
	size_t nedges; /* kept at most half the table: short probe runs */
	struct fb_arena *arena; /* where all of it is, or NULL: malloc'd */
};

struct label {
	const char *s;
	uint32_t len;
};

uint32_t fb_name_hash(uint32_t seed, const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull ^ ((uint64_t)seed * 0x9e3779b97f4a7c15ull);

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	/* FNV's low bits depend only on the low bits of each step, and the
	 * table is indexed by the low bits. */
	return (uint32_t)fb_fmix64(h);
}

/* The slot of the edge (parent, s), or the free slot where it would go. */
static struct slot *find_slot(const struct fb_name_index *ix, uint32_t parent,
			      const char *s, size_t len, uint32_t h)
{
	for (size_t i = h & ix->mask;; i = (i + 1) & ix->mask) {
		struct slot *e = &ix->slots[i];
		const struct node *n = &ix->nodes[e->child];

		if (!e->child || (e->hash == h && n->parent == parent &&
				  n->len == len && !memcmp(n->label, s, len)))
			return e;
	}
}

/* `size` bytes where the index lives, zeroed when `zero`. */
static void *ix_alloc(const struct fb_name_index *ix, size_t size, bool zero)
{
	if (ix->arena)
		return zero ? fb_arena_calloc(ix->arena, 1, size)
			    : fb_arena_alloc(ix->arena, size);
	return zero ? calloc(1, size) : malloc(size);
}

/* A new node, its fields zero; 0 when out of memory. */
static uint32_t new_node(struct fb_name_index *ix)
{
	if (ix->nnodes == ix->capnodes) {
		size_t cap = ix->capnodes * 2;
		struct node *n;

		if (!ix->arena) {
			n = realloc(ix->nodes, cap * sizeof *n);
		} else if ((n = fb_arena_alloc(ix->arena, cap * sizeof *n))) {
			/* the old array stays in the arena until it goes */
			memcpy(n, ix->nodes, ix->nnodes * sizeof *n);
		}
		if (!n)
			return 0;
		ix->nodes = n;
		ix->capnodes = cap;
	}
	memset(&ix->nodes[ix->nnodes], 0, sizeof ix->nodes[0]);
	return (uint32_t)ix->nnodes++;
}

/* Split a name into labels, rightmost first; -1 if too many. */
static int split(const char *name, struct label *out)
{
	const char *end = name + strlen(name);
	int n = 0;

	while (end > name) {
		const char *start = end;

		while (start > name && start[-1] != '.')
			start--;
		if (n == MAX_LABELS)
			return -1;
		out[n++] = (struct label){ start, (uint32_t)(end - start) };
		end = start > name ? start - 1 : start;
	}
	return n;
}

/* Double the table, re-placing every edge by its stored hash. */
static int grow(struct fb_name_index *ix)
{
	size_t size = 2 * (ix->mask + 1);
	struct slot *old = ix->slots, *e = ix_alloc(ix, size * sizeof *e, true);

	if (!e)
		return -1;
	ix->slots = e;
	ix->mask = size - 1;
	for (size_t i = 0; i < size / 2; i++) {
		size_t j = old[i].hash & ix->mask;

		if (!old[i].child)
			continue;
		while (e[j].child)
			j = (j + 1) & ix->mask;
		e[j] = old[i];
	}
	if (!ix->arena)
		free(old);
	return 0;
}

/*
 * The key added last and the node each of its labels led to.  Keys come
 * in the order a policy lists them, and neighbours mostly end in the same
 * labels ("h1.example.com" after "h0.example.com"): the walk for those
 * starts where the last one got to, found by reading the two keys from
 * the right, and only the labels in front are split off and hashed.
 */
struct path {
	const char *key, *end;
	uint32_t node[MAX_LABELS]; /* where its i-th label from the right led */
	int n;                     /* how many of those are known */
};

/* The child of `at` for the label [s, s + len), added if new; 0 when out
 * of memory. */
static uint32_t child_of(struct fb_name_index *ix, uint32_t at, const char *s,
			 size_t len)
{
	uint32_t child, h;
	struct slot *e;

	if (len == 1 && s[0] == '*') {
		if (!ix->nodes[at].star && (child = new_node(ix)))
			ix->nodes[at].star = child;
		return ix->nodes[at].star;
	}
	h = fb_name_hash(at, s, len);
	e = find_slot(ix, at, s, len, h);
	if (e->child)
		return e->child;
	if (2 * (ix->nedges + 1) > ix->mask + 1) {
		if (grow(ix) < 0)
			return 0;
		e = find_slot(ix, at, s, len, h);
	}
	if (!(child = new_node(ix)))
		return 0;
	ix->nodes[child].label = s;
	ix->nodes[child].len = (uint32_t)len;
	ix->nodes[child].parent = at;
	*e = (struct slot){ h, child };
	ix->nedges++;
	return child;
}

/* Add one key; 1 when an earlier key is the same pattern, 0, or -1. */
static int insert(struct fb_name_index *ix, const struct fb_domain *d,
		  struct path *last)
{
	const char *key = d->pattern, *end = key + strlen(key), *cut = end;
	bool leading = key[0] == '*' && (key[1] == '.' || !key[1]);
	const struct fb_domain **slot;
	uint32_t at = 0;
	int i = 0;

	if (end == key)
		return 0; /* the loader rejects these; nothing can match them */
	/* the whole labels both keys end in, of those the last one walked
	 * (not a leading "*": that marks the node before it) */
	if (last->key) {
		const char *a = end, *b = last->end, *stop = key;

		if (b - last->key < end - key)
			stop = end - (b - last->key);
		while (a > stop && a[-1] == b[-1]) {
			a--, b--;
			if (*a != '.')
				continue;
			if (i == last->n)
				break;
			cut = a, at = last->node[i++];
		}
		if (a == key && i < last->n && !leading &&
		    (b == last->key || b[-1] == '.'))
			cut = key, at = last->node[i++];
	}
	last->key = key;
	last->end = end;
	last->n = i; /* grows as the nodes below are found */
	/* the labels in front of those, right to left */
	for (const char *e = cut; e > key;) {
		const char *s = e;

		while (s > key && s[-1] != '.')
			s--;
		if (s == key && leading)
			break;
		if (i == MAX_LABELS)
			return 0; /* longer than any name: nothing can match it */
		if (!(at = child_of(ix, at, s, (size_t)(e - s))))
			return -1;
		last->node[i++] = at;
		last->n = i;
		e = s > key ? s - 1 : s;
	}
	/* a duplicate key keeps the first; the loader reports duplicates */
	slot = leading ? &ix->nodes[at].leading : &ix->nodes[at].exact;
	if (*slot)
		return 1;
	*slot = d;
	return 0;
}

struct fb_name_index *fb_name_index_build_in(struct fb_arena *arena,
					     const struct fb_domain *d, size_t n,
					     bool *same)
{
	struct fb_name_index *ix = arena ? fb_arena_calloc(arena, 1, sizeof *ix)
					: calloc(1, sizeof *ix);
	struct path last = { .key = NULL };
	bool dup = false;
	size_t size = 64;

	if (!ix)
		return NULL;
	ix->arena = arena;
	/*
	 * A key adds a label to the trie, most keys exactly one
	 * ("h1.example.com" after "h0.example.com"): sized for one per key
	 * at most half full, and doubled when keys add more.  Sized any
	 * larger, the table is memory a policy update must clear and fault
	 * in, and then misses in the cache, with the slots it never uses.
	 */
	while (size < 2 * n + 2 && size < ((size_t)1 << 30))
		size *= 2;
	ix->mask = size - 1;
	ix->slots = ix_alloc(ix, size * sizeof *ix->slots, true);
	/*
	 * Node 0 is the root, so new_node() can use 0 for failure.  A key
	 * adds one node, most often, and a few are shared suffixes.  In an
	 * arena, room asked for and not used is memory kept: ask for
	 * little more.
	 */
	ix->capnodes = n + n / 8 + 16;
	ix->nodes = ix_alloc(ix, ix->capnodes * sizeof *ix->nodes, false);
	if (!ix->slots || !ix->nodes)
		goto fail;
	memset(&ix->nodes[0], 0, sizeof ix->nodes[0]);
	ix->nnodes = 1;
	for (size_t i = 0; i < n; i++) {
		int rc = insert(ix, &d[i], &last);

		if (rc < 0)
			goto fail;
		dup |= rc > 0;
	}
	if (same)
		*same = dup;
	return ix;
fail:
	fb_name_index_free(ix);
	return NULL;
}

struct fb_name_index *fb_name_index_build(const struct fb_domain *d, size_t n,
					  bool *same)
{
	return fb_name_index_build_in(NULL, d, n, same);
}

static const struct fb_domain *walk(const struct fb_name_index *ix,
				    uint32_t at, const struct label *l,
				    int i, int n)
{
	const struct node *node = &ix->nodes[at];
	const struct fb_domain *found;

	if (i == n)
		return node->exact;
	uint32_t h = fb_name_hash(at, l[i].s, l[i].len);
	const struct slot *e = find_slot(ix, at, l[i].s, l[i].len, h);

	if (e->child && (found = walk(ix, e->child, l, i + 1, n)))
		return found;
	if (node->star && (found = walk(ix, node->star, l, i + 1, n)))
		return found;
	return node->leading;
}

const struct fb_domain *fb_name_index_lookup(const struct fb_name_index *ix,
					     const char *name)
{
	struct label l[MAX_LABELS];
	int n;

	if (!ix || !name || (n = split(name, l)) <= 0)
		return NULL;
	return walk(ix, 0, l, 0, n);
}

void fb_name_index_free(struct fb_name_index *ix)
{
	if (!ix || ix->arena)
		return;
	free(ix->nodes);
	free(ix->slots);
	free(ix);
}
