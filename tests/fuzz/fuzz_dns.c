/*
 * fuzz_dns.c — a query from arbitrary bytes through the server's decisions
 * and answer building, with an arbitrary upstream result; no network.
 *
 * Input: [policy selector] [query length, 2 bytes] [query] [result...]
 * where the result bytes give the upstream's status, TTL, CNAME chain and
 * addresses.  Every reply we build must parse back as what we meant to
 * send, and the input itself goes through the response parser too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy/policy.h"
#include "proxy/dns.h"
#include "proxy/dns_server.h"

static const char *const policy_texts[] = {
	"allow-all",
	"deny-all",
	"allow:\n  - ok.test\n  - \"*.example.com\"\n  - \"www.*.org\"\n",
	"allow:\n  - \"*\"\nsubnets:\n  deny: [\"8.0.0.0/8\"]\n",
};
#define NPOLICIES (sizeof(policy_texts) / sizeof(policy_texts[0]))
static struct fb_policy *policies[NPOLICIES];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	for (size_t i = 0; i < NPOLICIES; i++) {
		struct fb_diags d = { 0 };

		policies[i] = fb_policy_load(policy_texts[i], strlen(policy_texts[i]),
					     NULL, &d);
		fb_diags_free(&d);
		if (!policies[i])
			abort();
	}
	return 0;
}

struct input {
	const uint8_t *p;
	size_t n;
};

static uint8_t take8(struct input *in)
{
	uint8_t v = in->n ? in->p[0] : 0;

	if (in->n) {
		in->p++;
		in->n--;
	}
	return v;
}

/* The upstream's result, made of the remaining bytes. */
struct result {
	struct fb_resolved res;
	struct fb_addr addrs[FB_RESOLVE_MAX_ADDRS];
	char chain[4 * FB_NAME_MAX];
};

static void make_result(struct input *in, struct result *r)
{
	size_t used = 0, nchain = take8(in) % 5, naddrs = take8(in) % (FB_RESOLVE_MAX_ADDRS + 1);

	memset(r, 0, sizeof(*r));
	r->res.status = (enum fb_resolve_status)(take8(in) % 3);
	r->res.why = "fuzzed failure";
	r->res.ttl = (uint32_t)take8(in) << 24 | (uint32_t)take8(in) << 8 | take8(in);
	r->res.addrs = r->addrs;
	r->res.chain = r->chain;
	/* The resolver hands over normalised chain names only. */
	for (size_t i = 0; i < nchain && i < 4; i++) {
		char raw[FB_NAME_MAX], norm[FB_NAME_MAX];
		size_t len = take8(in) % 64;
		const char *why;

		for (size_t j = 0; j < len; j++)
			raw[j] = (char)take8(in);
		if (fb_name_normalize(raw, len, norm, &why) < 0)
			continue;
		memcpy(r->chain + used, norm, strlen(norm) + 1);
		used += strlen(norm) + 1;
		r->res.nchain++;
	}
	for (size_t i = 0; i < naddrs; i++) {
		struct fb_addr *a = &r->addrs[r->res.naddrs++];

		a->family = take8(in) & 1 ? AF_INET6 : AF_INET;
		for (size_t j = 0; j < (a->family == AF_INET ? 4u : 16u); j++)
			a->b[j] = take8(in);
	}
}

/* Send what we built through our own response parser: it must agree. */
static void check_reply(const struct fb_dns_msg *q, int rcode,
			const struct fb_dns_rr *rr, size_t n, size_t limit)
{
	uint8_t buf[FB_DNS_TCP_MAX];
	struct fb_dns_msg m;
	struct fb_dns_rr an[FB_DNS_MAX_RR];
	size_t nan;
	const char *why;
	ssize_t len = fb_dns_build_reply(q, rcode, rr, n, buf, limit, &why);

	if (len < 0)
		return;
	if ((size_t)len > limit)
		abort();
	if (fb_dns_parse_response(buf, (size_t)len, &m, an, &nan, &why) < 0)
		abort();
	if (m.id != q->id || FB_DNS_RCODE(m.flags) != rcode ||
	    m.has_question != q->has_question)
		abort();
	if (m.flags & FB_DNS_TC ? nan != 0 : nan != n)
		abort();
	for (size_t i = 0; i < nan; i++)
		if (an[i].type != rr[i].type || an[i].ttl != rr[i].ttl ||
		    memcmp(an[i].addr.b, rr[i].addr.b, 16) != 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	const struct fb_policy *policy = policies[take8(&in) % NPOLICIES];
	size_t qlen = (size_t)take8(&in) << 8;
	struct fb_dns_msg q, m;
	struct fb_dns_plan plan;
	struct fb_dns_rr rr[FB_DNS_MAX_RR];
	struct result r;
	const char *why;
	size_t n = 0;

	qlen |= take8(&in);
	if (qlen > in.n)
		qlen = in.n;
	/* The same bytes as a response, for the compression-pointer reader. */
	fb_dns_parse_response(in.p, qlen, &m, rr, &n, &why);

	fb_dns_plan(policy, in.p, qlen, &q, &plan);
	in.p += qlen;
	in.n -= qlen;
	if (plan.action == FB_DNS_DROP)
		return 0;
	n = 0;
	if (plan.action == FB_DNS_LOOKUP) {
		make_result(&in, &r);
		n = fb_dns_answer(policy, &plan, &r.res, rr);
		if (n > FB_DNS_MAX_RR || (n && plan.rcode != FB_DNS_NOERROR))
			abort();
		/* Nothing the deny set holds is ever answered. */
		for (size_t i = 0; i < n; i++) {
			struct fb_decision d;

			if (fb_policy_check_addr(policy, &rr[i].addr, &d) == FB_VERDICT_DENY)
				abort();
		}
	}
	if (!plan.allowed && n)
		abort();
	check_reply(&q, plan.rcode, rr, n, fb_dns_udp_limit(&q));
	check_reply(&q, plan.rcode, rr, n, FB_DNS_TCP_MAX);
	return 0;
}
