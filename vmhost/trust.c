/* trust.c — the guest's trust environment (the bundle: proxy/trust_bundle.c). */
#include "vmhost/trust.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Clients that take a CA bundle path from the environment. */
static const char *const bundle_vars[] = {
	"SSL_CERT_FILE",         /* OpenSSL, Python ssl, Ruby, Go on Linux */
	"CURL_CA_BUNDLE",        /* curl, and Python requests */
	"REQUESTS_CA_BUNDLE",    /* Python requests */
	"GIT_SSL_CAINFO",
	"PIP_CERT",
	"AWS_CA_BUNDLE",         /* AWS CLI and SDKs */
	"CARGO_HTTP_CAINFO",
	"NPM_CONFIG_CAFILE",
	"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
};

char **fb_trust_env(const char *bundle, const char *ca)
{
	size_t n = sizeof(bundle_vars) / sizeof(bundle_vars[0]), i;
	char **env = calloc(n + 3, sizeof(*env));

	if (!env)
		return NULL;
	for (i = 0; i < n; i++)
		if (asprintf(&env[i], "%s=%s", bundle_vars[i], bundle) < 0)
			goto oom;
	if (asprintf(&env[i], "NODE_EXTRA_CA_CERTS=%s", ca ? ca : bundle) < 0)
		goto oom;
	if (!(env[++i] = strdup("NODE_USE_SYSTEM_CA=1")))
		goto oom;
	return env;
oom:
	env[i] = NULL; /* asprintf leaves it undefined on failure */
	fb_trust_env_free(env);
	return NULL;
}

void fb_trust_env_free(char **env)
{
	if (!env)
		return;
	for (char **e = env; *e; e++)
		free(*e);
	free(env);
}
