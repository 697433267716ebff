/*
 * sandbox_ca.h — what a sandbox needs for brokering, made by the launcher
 * on the host side before the proxy starts: the sandbox's CA (key 0600,
 * never inside the guest), the key that signs forward tokens and its
 * JWKS, and the guest's trust bundle.  Internal to vmhost/.
 */
#ifndef FB_VMHOST_SANDBOX_CA_H
#define FB_VMHOST_SANDBOX_CA_H

#include <pthread.h>
#include <stddef.h>

#include "policy/policy.h"
#include "vmhost/sandbox.h"

struct fb_sandbox_ca {
	char cert[320];   /* <dir>/ca.crt */
	char key[320];    /* <dir>/ca.key, 0600 */
	char jwt_key[320];/* <dir>/jwt.key, 0600 */
	char jwks[320];   /* <dir>/jwks.json: what a forward target trusts */
	char bundle[320]; /* <dir>/trust.crt: host roots + the CA, for the guest */
};

/*
 * Create all of it in sb->dir for the policy's brokered keys, on a thread
 * of its own: the key generation runs while the caller builds the
 * network.  begin starts it (-1 with err when it could not: nothing is
 * running then); end waits for it, and on failure nothing is left behind
 * and err names the step.  In between, *out is the thread's, and the
 * policy must stay alive and unchanged.
 */
struct fb_sandbox_ca_job {
	pthread_t thread;
	char id[FB_SANDBOX_ID_MAX + 1];
	const char **names;
	size_t nnames;
	struct fb_sandbox_ca *out;
	int rc;
	char err[512];
};

int fb_sandbox_ca_begin(struct fb_sandbox_ca_job *job,
			const struct fb_sandbox *sb,
			const struct fb_policy *policy,
			struct fb_sandbox_ca *out, char *err, size_t errsize);
int fb_sandbox_ca_end(struct fb_sandbox_ca_job *job, char *err,
		      size_t errsize);
/* Remove the files (also the ones a failed create may not have made). */
void fb_sandbox_ca_remove(const struct fb_sandbox_ca *c);

/* Unset the environment variables the policy's secrets come from, so a
 * guest started after this cannot inherit them. */
void fb_sandbox_scrub_secrets(const struct fb_policy *policy);

#endif /* FB_VMHOST_SANDBOX_CA_H */
