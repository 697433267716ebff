/*
 * doc_paths.h — the two paths of the document parser side by side: the
 * JSON fast path (fb_doc_parse) and libyaml alone, whose trees and
 * diagnostics must never differ.  For the unit suite and the fuzz target
 * that hold them to each other.
 */
#ifndef FB_TEST_DOC_PATHS_H
#define FB_TEST_DOC_PATHS_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/doc.h"

/* The same tree node for node: kind, text, quoting, LINE:COL. */
bool doc_same_tree(const struct fb_node *a, const struct fb_node *b);

/* fb_doc_parse's tree (fast path first), or with `yaml_only` libyaml's;
 * *diags gets its diagnostics as text (malloc'd; NULL out of memory). */
struct fb_node *doc_parse_path(const char *text, size_t len, bool yaml_only,
			       char **diags);

#endif /* FB_TEST_DOC_PATHS_H */
