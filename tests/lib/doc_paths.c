/*
 * doc_paths.c — see doc_paths.h.
 */
#include <string.h>

#include "tests/lib/doc_paths.h"

bool doc_same_tree(const struct fb_node *a, const struct fb_node *b)
{
	if (!a || !b)
		return a == b;
	if (a->kind != b->kind || a->line != b->line || a->col != b->col ||
	    a->quoted != b->quoted || a->len != b->len || a->n != b->n ||
	    (a->len && memcmp(a->text, b->text, a->len)))
		return false;
	for (size_t i = 0; i < a->n; i++)
		if ((a->keys && !doc_same_tree(a->keys[i], b->keys[i])) ||
		    !doc_same_tree(a->vals[i], b->vals[i]))
			return false;
	return true;
}

struct fb_node *doc_parse_path(const char *text, size_t len, bool yaml_only,
			       char **diags)
{
	struct fb_diags d = { 0 };
	struct fb_report r = { .diags = &d, .file = "t" };
	struct fb_node *n = yaml_only ? fb_doc_parse_yaml(text, len, &r)
				      : fb_doc_parse(text, len, &r);

	fb_report_finish(&r);
	*diags = fb_diags_to_string(&d);
	fb_diags_free(&d);
	return n;
}
