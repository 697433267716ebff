/*
 * name_oracle.h — which allow key decides a name, by brute force: every
 * key compared with every other on each call, straight from design.md's
 * wording.  The reference the compiled name index is checked against, and
 * the linear-scan baseline of the benchmark.
 */
#ifndef FB_TEST_NAME_ORACLE_H
#define FB_TEST_NAME_ORACLE_H

#include <stddef.h>

#include "policy/policy.h"

const struct fb_domain *name_oracle_lookup(const struct fb_domain *d, size_t n,
					   const char *name);

#endif /* FB_TEST_NAME_ORACLE_H */
