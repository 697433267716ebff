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

#include "tests/lib/doc_paths.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	char *d1, *d2;
	struct fb_node *fast = doc_parse_path(text, size, false, &d1);
	struct fb_node *slow = doc_parse_path(text, size, true, &d2);

	if (!doc_same_tree(fast, slow) || !d1 || !d2 || strcmp(d1, d2)) {
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
