/*
 * fuzz_policy_load.c — any bytes as a policy: load, dump both shapes,
 * free.  A fixed environment variable lets ${env:...} references resolve.
 */
#include <stdint.h>
#include <stdlib.h>

#include "policy/policy.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("FUZZ_TOKEN", "fuzz-secret-value", 1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fb_diags diags = { 0 };
	struct fb_load_opts opts = { .filename = "fuzz" };
	struct fb_policy *p;

	p = fb_policy_load((const char *)data, size, &opts, &diags);
	if (p) {
		free(fb_policy_dump(p, false));
		free(fb_policy_dump(p, true));
		fb_policy_unref(p);
	}
	fb_diags_free(&diags);
	return 0;
}
