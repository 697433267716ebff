/*
 * fuzz_doc_json.c — the JSON fast path held to libyaml: for any bytes,
 * fb_doc_parse (fast path first) and libyaml alone must give the same
 * tree, node for node (kind, text, quoting, LINE:COL), and the same
 * diagnostics.  A difference aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/doc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_tree(const struct fb_node *a, const struct fb_node *b)
{
	if (!a || !b)
		return a == b;
	if (a->kind != b->kind || a->line != b->line || a->col != b->col ||
	    a->quoted != b->quoted || a->len != b->len || a->n != b->n ||
	    (a->len && memcmp(a->text, b->text, a->len)))
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if ((a->keys && !same_tree(a->keys[i], b->keys[i])) ||
		    !same_tree(a->vals[i], b->vals[i]))
			return 0;
	return 1;
}

/* One path's tree and its diagnostics as text. */
static struct fb_node *parse(const char *text, size_t len, int yaml_only,
			     char **diags)
{
	struct fb_diags d = { 0 };
	struct fb_report r = { .diags = &d, .file = "fuzz" };
	struct fb_node *n = yaml_only ? fb_doc_parse_yaml(text, len, &r)
				      : fb_doc_parse(text, len, &r);

	fb_report_finish(&r);
	*diags = fb_diags_to_string(&d);
	fb_diags_free(&d);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	char *d1, *d2;
	struct fb_node *fast = parse(text, size, 0, &d1);
	struct fb_node *slow = parse(text, size, 1, &d2);

	if (!same_tree(fast, slow) || !d1 || !d2 || strcmp(d1, d2)) {
		fprintf(stderr, "fast path and libyaml differ:\n%s---\n%s",
			d1 ? d1 : "(null)", d2 ? d2 : "(null)");
		abort();
	}
	fb_node_free(fast);
	fb_node_free(slow);
	free(d1);
	free(d2);
	return 0;
}
