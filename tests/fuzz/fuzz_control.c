/* fuzz_control.c — arbitrary bytes as a control-API request, against a
 * proxy with a real policy (no sockets, no nft).  Whatever arrives, the
 * answer is a complete response or a request for more, a policy that
 * changes is always a whole one, and only as an If-Match allowed. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/*
 * A change under an If-Match line was allowed by "*" or by the generation
 * it replaced as a strong tag: "N" after ':', ',' or a blank, never after
 * "W/".  Looked for in the head only; a false alarm cannot come of it.
 */
static bool if_match_allowed(const char *d, size_t n, uint64_t generation)
{
	const char *end = memmem(d, n, "\r\n\r\n", 4);
	char tag[32];
	size_t head = end ? (size_t)(end - d) : n, tlen;
	bool present = false;

	for (size_t i = 0; i + 10 <= head; i++)
		if (d[i] == '\n' && strncasecmp(d + i + 1, "if-match:", 9) == 0)
			present = true;
	if (!present || memchr(d, '*', head))
		return true;
	tlen = (size_t)snprintf(tag, sizeof(tag), "\"%llu\"",
				(unsigned long long)generation);
	for (size_t i = 1; i + tlen <= head; i++)
		if (memcmp(d + i, tag, tlen) == 0 &&
		    (d[i - 1] == ':' || d[i - 1] == ',' || d[i - 1] == ' ' ||
		     d[i - 1] == '\t'))
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fb_proxy *p = proxy();
	uint64_t generation = p->generation;
	char *resp = NULL;
	size_t len = 0;
	int rc;

	rc = fb_control_handle(p, (const char *)data, size, "fuzz", &resp, &len);
	if (rc == 1 && (len < 12 || memcmp(resp, "HTTP/1.1 ", 9) != 0))
		abort();
	if (rc < 0 || rc > 1 || !p->policy)
		abort();
	if (p->generation != generation &&
	    !if_match_allowed((const char *)data, size, generation))
		abort();
	free(resp);
	return 0;
}
