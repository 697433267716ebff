/* ca_follow.c — the sandbox CA reissued when the brokered names change. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/ca_follow.h"
#include "proxy/pemfile.h"
#include "proxy/trust_bundle.h"

const char **fb_brokered_names(const struct fb_policy *pol, size_t *n)
{
	size_t nd;
	const struct fb_domain *d = fb_policy_domains(pol, &nd);
	const char **names = calloc(nd + 1, sizeof(*names));

	*n = 0;
	for (size_t i = 0; names && i < nd; i++)
		if (d[i].nrules)
			names[(*n)++] = d[i].pattern;
	return names;
}

#define ALL_STEPS 3 /* reissue, write the certificate, write the bundle */

/* Policy keys are unique, so equal counts and a ⊆ b mean equal sets. */
static bool same_names(const char **a, size_t na, const char **b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		size_t j = 0;

		while (j < nb && strcmp(a[i], b[j]))
			j++;
		if (j == nb)
			return false;
	}
	return true;
}

/*
 * The steps of a reissue, in order; *done counts those that succeeded,
 * so putting the old names back redoes only what was changed.
 */
static int issue_and_publish(struct fb_ca *ca, const char **names, size_t n,
			     const char *cert_path, const char *bundle_path,
			     const char *roots_path, int steps, int *done,
			     char *err, size_t errsize)
{
	*done = 0;
	if (fb_ca_reissue(ca, names, n, err, errsize) < 0)
		return -1;
	if (++*done == steps)
		return 0;
	if (fb_pem_save_cert(fb_ca_cert(ca), cert_path, true, err, errsize) < 0)
		return -1;
	if (++*done == steps || !bundle_path)
		return 0;
	if (fb_trust_write_bundle(roots_path, fb_ca_cert(ca), bundle_path, err,
				  errsize) < 0)
		return -1;
	++*done;
	return 0;
}

int fb_ca_follow(struct fb_ca *ca, const struct fb_policy *from,
		 const struct fb_policy *to, const char *cert_path,
		 const char *bundle_path, const char *roots_path, char *err,
		 size_t errsize)
{
	size_t nold, nnew;
	const char **old = fb_brokered_names(from, &nold);
	const char **new = fb_brokered_names(to, &nnew);
	char why[512];
	int rc = 0, done;

	if (!old || !new) {
		snprintf(err, errsize, "reissuing the sandbox CA: out of memory");
		rc = -1;
	} else if (!same_names(old, nold, new, nnew) &&
		   issue_and_publish(ca, new, nnew, cert_path, bundle_path,
				     roots_path, ALL_STEPS, &done, why,
				     sizeof(why)) < 0) {
		char back[512];
		int undone;

		snprintf(err, errsize, "reissuing the sandbox CA: %s", why);
		/* What was already changed, in memory or on disk, goes back
		 * to the old names, or it is said loudly.  A failed bundle
		 * write may have left part of the file (it is written in
		 * place), so the bundle is redone too. */
		if (done == 2)
			done = ALL_STEPS;
		if (done > 0 &&
		    issue_and_publish(ca, old, nold, cert_path, bundle_path,
				      roots_path, done, &undone, back,
				      sizeof(back)) < 0)
			fprintf(stderr, "firebreak-proxy: putting the sandbox CA back: %s\n",
				back);
		rc = -1;
	}
	free(old);
	free(new);
	return rc;
}
