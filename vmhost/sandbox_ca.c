/*
 * sandbox_ca.c — the brokering material of one sandbox (sandbox_ca.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/ca.h"
#include "proxy/ca_follow.h"
#include "proxy/jwt.h"
#include "proxy/pemfile.h"
#include "vmhost/sandbox_ca.h"
#include "vmhost/trust.h"

static int path(char *buf, size_t size, const char *dir, const char *name,
		char *err, size_t errsize)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= size) {
		snprintf(err, errsize, "%s/%s: path too long", dir, name);
		return -1;
	}
	return 0;
}

static int write_jwks(const struct fb_jwt_key *key, const char *out,
		      char *err, size_t errsize)
{
	char *jwks = fb_jwks_json(key);
	int r;

	if (!jwks) {
		snprintf(err, errsize, "JWKS: out of memory");
		return -1;
	}
	r = fb_pem_write_file(out, jwks, strlen(jwks), 0644, false, err, errsize);
	free(jwks);
	return r;
}

/* The thread: everything that takes time, from key generation to the
 * trust bundle's write. */
static void *make(void *arg)
{
	struct fb_sandbox_ca_job *job = arg;
	struct fb_sandbox_ca *c = job->out;
	char *err = job->err;
	size_t errsize = sizeof job->err;
	struct fb_ca *ca;
	struct fb_jwt_key *jwt = NULL;

	job->rc = -1;
	ca = fb_ca_create(job->id, job->names, job->nnames, 0, err, errsize);
	jwt = ca ? fb_jwt_key_create(err, errsize) : NULL;
	if (jwt &&
	    fb_ca_save(ca, c->cert, c->key, false, err, errsize) == 0 &&
	    fb_jwt_key_save(jwt, c->jwt_key, false, err, errsize) == 0 &&
	    write_jwks(jwt, c->jwks, err, errsize) == 0 &&
	    fb_trust_write_bundle(FB_TRUST_SYSTEM_ROOTS, fb_ca_cert(ca),
				  c->bundle, err, errsize) == 0)
		job->rc = 0;
	if (job->rc < 0)
		fb_sandbox_ca_remove(c);
	fb_jwt_key_free(jwt);
	fb_ca_free(ca);
	return NULL;
}

int fb_sandbox_ca_begin(struct fb_sandbox_ca_job *job,
			const struct fb_sandbox *sb,
			const struct fb_policy *policy,
			struct fb_sandbox_ca *c, char *err, size_t errsize)
{
	int e;

	memset(c, 0, sizeof(*c));
	memset(job, 0, sizeof(*job));
	if (path(c->cert, sizeof(c->cert), sb->dir, "ca.crt", err, errsize) < 0 ||
	    path(c->key, sizeof(c->key), sb->dir, "ca.key", err, errsize) < 0 ||
	    path(c->jwt_key, sizeof(c->jwt_key), sb->dir, "jwt.key", err, errsize) < 0 ||
	    path(c->jwks, sizeof(c->jwks), sb->dir, "jwks.json", err, errsize) < 0 ||
	    path(c->bundle, sizeof(c->bundle), sb->dir, "trust.crt", err, errsize) < 0)
		return -1;
	/* The names point into the policy, which the caller keeps alive and
	 * unchanged until fb_sandbox_ca_end; the thread touches nothing
	 * else of the caller's but *c. */
	job->names = fb_brokered_names(policy, &job->nnames);
	if (!job->names) {
		snprintf(err, errsize, "out of memory");
		return -1;
	}
	snprintf(job->id, sizeof(job->id), "%s", sb->id);
	job->out = c;
	e = pthread_create(&job->thread, NULL, make, job);
	if (e) {
		snprintf(err, errsize, "start a thread: %s", strerror(e));
		free(job->names);
		job->names = NULL;
		return -1;
	}
	return 0;
}

int fb_sandbox_ca_end(struct fb_sandbox_ca_job *job, char *err,
		      size_t errsize)
{
	pthread_join(job->thread, NULL);
	free(job->names);
	job->names = NULL;
	if (job->rc < 0)
		snprintf(err, errsize, "%s", job->err);
	return job->rc;
}

void fb_sandbox_ca_remove(const struct fb_sandbox_ca *c)
{
	const char *const files[] = { c->cert, c->key, c->jwt_key, c->jwks,
				      c->bundle };

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (files[i][0] && unlink(files[i]) < 0 && errno != ENOENT)
			fprintf(stderr, "firebreak: remove %s: %s\n", files[i],
				strerror(errno));
}

/* Unset every variable a header value as written (`source`) reads: a
 * reference may sit anywhere in it ("Bearer ${env:KEY}"), "$${" being a
 * literal "${" (policy/secret.h). */
static void unset_env_refs(const char *src)
{
	for (const char *p = src; (p = strchr(p, '$'));) {
		const char *name = p + 6, *end;
		char buf[256];

		if (!strncmp(p, "$${", 3)) {
			p += 3;
			continue;
		}
		if (strncmp(p, "${env:", 6) || !(end = strchr(name, '}'))) {
			p++;
			continue;
		}
		if (end > name && (size_t)(end - name) < sizeof(buf)) {
			snprintf(buf, sizeof(buf), "%.*s", (int)(end - name),
				 name);
			unsetenv(buf);
		}
		p = end + 1;
	}
}

void fb_sandbox_scrub_secrets(const struct fb_policy *policy)
{
	size_t nd;
	const struct fb_domain *d = fb_policy_domains(policy, &nd);

	for (size_t i = 0; i < nd; i++)
		for (size_t j = 0; j < d[i].nrules; j++)
			for (size_t k = 0; k < d[i].rules[j].nset; k++)
				if (d[i].rules[j].set[k].source)
					unset_env_refs(d[i].rules[j].set[k].source);
}
