/*
 * diag.c — diagnostics: "FILE:LINE:COL: message" lines, collected rather
 * than printed so that a caller (the CLI, the control API) decides where
 * they go, and so that a load reports every problem, not just the first.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/doc.h"
#include "policy/policy.h"

static void diags_addv(struct fb_diags *d, const char *file, unsigned line,
		       unsigned col, const char *fmt, va_list ap)
{
	struct fb_diag *dg;
	char *msg;

	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 8;
		struct fb_diag *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return; /* out of memory: the load fails anyway */
		d->v = v;
		d->cap = cap;
	}
	if (vasprintf(&msg, fmt, ap) < 0)
		return;
	dg = &d->v[d->n];
	dg->file = strdup(file ? file : "<input>");
	if (!dg->file) {
		free(msg);
		return;
	}
	dg->line = line;
	dg->col = col;
	dg->msg = msg;
	d->n++;
}

void fb_diags_add(struct fb_diags *d, const char *file, unsigned line,
		  unsigned col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diags_addv(d, file, line, col, fmt, ap);
	va_end(ap);
}

/* A diagnostic not tied to a position (line 0) prints as "FILE: message". */
static int diag_format(const struct fb_diag *dg, char *buf, size_t size)
{
	if (dg->line)
		return snprintf(buf, size, "%s:%u:%u: %s\n", dg->file,
				dg->line, dg->col, dg->msg);
	return snprintf(buf, size, "%s: %s\n", dg->file, dg->msg);
}

void fb_diags_print(const struct fb_diags *d, FILE *out)
{
	char *s = fb_diags_to_string(d);

	if (s)
		fputs(s, out);
	free(s);
}

char *fb_diags_to_string(const struct fb_diags *d)
{
	size_t total = 1, off = 0;
	char *s;

	for (size_t i = 0; i < d->n; i++)
		total += (size_t)diag_format(&d->v[i], NULL, 0);
	s = malloc(total);
	if (!s)
		return NULL;
	s[0] = '\0';
	for (size_t i = 0; i < d->n; i++)
		off += (size_t)diag_format(&d->v[i], s + off, total - off);
	return s;
}

void fb_diags_free(struct fb_diags *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].msg);
	}
	free(d->v);
	d->v = NULL;
	d->n = d->cap = 0;
}

/* ---- the capped sink a load reports into ---------------------------- */

static void report_v(struct fb_report *r, unsigned line, unsigned col,
		     const char *fmt, va_list ap)
{
	if (r->count++ < FB_REPORT_MAX)
		diags_addv(r->diags, r->file, line, col, fmt, ap);
}

void fb_report(struct fb_report *r, const struct fb_node *at,
	       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report_v(r, at ? at->line : 0, at ? at->col : 0, fmt, ap);
	va_end(ap);
}

void fb_report_at(struct fb_report *r, unsigned line, unsigned col,
		  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report_v(r, line, col, fmt, ap);
	va_end(ap);
}

/* Source order; diagnostics on one position stay in the order found. */
static int diag_order(const void *a, const void *b)
{
	const struct fb_diag *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->col < y->col ? -1 : (x->col > y->col);
}

void fb_report_finish(struct fb_report *r)
{
	struct fb_diags *d = r->diags;

	/* insertion sort: stable, and a load keeps at most FB_REPORT_MAX */
	for (size_t i = r->base + 1; i < d->n; i++) {
		struct fb_diag cur = d->v[i];
		size_t j = i;

		while (j > r->base && diag_order(&d->v[j - 1], &cur) > 0) {
			d->v[j] = d->v[j - 1];
			j--;
		}
		d->v[j] = cur;
	}
	if (r->count > FB_REPORT_MAX)
		fb_diags_add(d, r->file, 0, 0, "... and %zu more errors",
			     r->count - FB_REPORT_MAX);
}
