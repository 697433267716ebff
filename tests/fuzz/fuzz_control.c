/* fuzz_control.c — arbitrary bytes as a control-API request, against a
 * proxy with a real policy (no sockets, no nft).  Whatever arrives, the
 * answer is a complete response or a request for more, and a policy that
 * changes is always a whole one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/core.h"

static struct fb_proxy *proxy(void)
{
	static struct fb_proxy *p;
	static const char base[] = "allow:\n  - a.test\n  - \"*.b.test\"\n";
	struct fb_diags d = { 0 };

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	p->loop = fb_loop_new();
	p->policy = fb_policy_load(base, strlen(base), &p->load_opts, &d);
	fb_diags_free(&d);
	p->generation = 1;
	if (!p->loop || !p->policy)
		abort();
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fb_proxy *p = proxy();
	char *resp = NULL;
	size_t len = 0;
	int rc;

	rc = fb_control_handle(p, (const char *)data, size, "fuzz", &resp, &len);
	if (rc == 1 && (len < 12 || memcmp(resp, "HTTP/1.1 ", 9) != 0))
		abort();
	if (rc < 0 || rc > 1 || !p->policy)
		abort();
	free(resp);
	return 0;
}
