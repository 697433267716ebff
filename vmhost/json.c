/*
 * json.c — the daemon's JSON: strings written escaped, and request bodies
 * and state files read with the policy module's document parser (YAML is
 * a superset of JSON, and that parser already bounds hostile input).
 */
#include <stdlib.h>
#include <string.h>

#include "policy/doc.h"
#include "policy/policy.h"
#include "vmhost/daemon.h"

void fb_json_put_str(FILE *f, const char *s)
{
	fb_json_write_string(f, s, strlen(s));
}

void fb_json_put_strv(FILE *f, char *const *v)
{
	fputc('[', f);
	for (size_t i = 0; v && v[i]; i++) {
		if (i)
			fputc(',', f);
		fb_json_put_str(f, v[i]);
	}
	fputc(']', f);
}

struct fb_node *fb_json_parse(const char *text, size_t len, char *err,
			      size_t errsize)
{
	struct fb_diags diags = { 0 };
	struct fb_report r = { .diags = &diags, .file = "body" };
	struct fb_node *doc = fb_doc_parse(text, len, &r);

	fb_report_finish(&r);
	/* A document the parser kept going past is still refused: a key
	 * given twice (dropped there, first wins) could mean one thing to the
	 * client that wrote it and another here. */
	if (doc && diags.n) {
		fb_json_free(doc);
		doc = NULL;
	}
	if (!doc) {
		const struct fb_diag *d = diags.n ? &diags.v[0] : NULL;

		if (d)
			snprintf(err, errsize, "%u:%u: %s", d->line, d->col,
				 d->msg);
		else
			snprintf(err, errsize, "cannot parse");
	}
	fb_diags_free(&diags);
	return doc;
}

void fb_json_free(struct fb_node *n)
{
	fb_node_free(n);
}
