/*
 * helper_nftapply — drive the nft module from a shell test, in the
 * namespace it is started in (`ip netns exec NS helper_nftapply ...`).
 *
 *   apply --guest IF [--proxy-port N] [--dns-port N] [--resolver IP:PORT]
 *         [--deny RANGE]... [--allow RANGE]...
 *   cut [--tcp] [--allow RANGE]...  prints the number of flows cut and
 *                                   the wall-clock time the cut began
 *                                   (--tcp: TCP entries deleted too)
 *   counters                        prints "NAME PKTS BYTES" lines
 *   delete TABLE
 *   uplink TABLE IF NET4 [NET6]
 *
 * RANGE is CIDR (10.0.0.0/8, 2001:db8::/32), a bare address, or LO-HI.
 * Exit 0 on success; 1 with the module's message on stderr.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "nft/nft.h"

static int parse_addr(const char *s, uint8_t *family, uint8_t b[16])
{
	memset(b, 0, 16);
	if (inet_pton(AF_INET, s, b) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, b) == 1) {
		*family = AF_INET6;
		return 0;
	}
	return -1;
}

static int parse_cidr(const char *s, struct fb_cidr *c)
{
	char buf[64];
	char *slash;
	int len;

	snprintf(buf, sizeof(buf), "%s", s);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = 0;
	if (parse_addr(buf, &c->family, c->b) < 0)
		return -1;
	len = slash ? atoi(slash) : (c->family == AF_INET ? 32 : 128);
	if (len < 0 || len > (c->family == AF_INET ? 32 : 128))
		return -1;
	c->len = (uint8_t)len;
	return 0;
}

static int parse_range(const char *s, struct fb_range *r)
{
	const char *dash = strchr(s, '-');
	struct fb_cidr c;
	size_t alen;

	memset(r, 0, sizeof(*r));
	if (dash) {
		char lo[64];
		uint8_t f2;

		snprintf(lo, sizeof(lo), "%.*s", (int)(dash - s), s);
		return parse_addr(lo, &r->family, r->lo) < 0 ||
			       parse_addr(dash + 1, &f2, r->hi) < 0 ||
			       f2 != r->family ? -1 : 0;
	}
	if (parse_cidr(s, &c) < 0)
		return -1;
	r->family = c.family;
	alen = c.family == AF_INET ? 4 : 16;
	for (size_t i = 0; i < alen; i++) {
		int keep = (int)c.len - 8 * (int)i;
		uint8_t m = keep >= 8 ? 0xff : keep <= 0 ? 0 :
			    (uint8_t)(0xff << (8 - keep));

		r->lo[i] = c.b[i] & m;
		r->hi[i] = (uint8_t)(c.b[i] | ~m);
	}
	return 0;
}

static int add_range(struct fb_range **v, size_t *n, const char *s)
{
	struct fb_range *p = realloc(*v, (*n + 1) * sizeof(**v));

	if (!p)
		return -1;
	*v = p;
	if (parse_range(s, &p[*n]) < 0) {
		fprintf(stderr, "bad range \"%s\"\n", s);
		return -1;
	}
	(*n)++;
	return 0;
}

static int cmd_apply(int argc, char **argv, char *err, size_t errsize)
{
	struct fb_nft_config cfg = { .proxy_port = 15001, .dns_port = 15053 };
	struct fb_range *deny = NULL, *allow = NULL;
	int rc = -1;

	for (int i = 0; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (!strcmp(k, "--guest")) {
			cfg.guest_ifname = v;
		} else if (!strcmp(k, "--proxy-port")) {
			cfg.proxy_port = (uint16_t)atoi(v);
		} else if (!strcmp(k, "--dns-port")) {
			cfg.dns_port = (uint16_t)atoi(v);
		} else if (!strcmp(k, "--resolver")) {
			char a[64];
			const char *colon = strrchr(v, ':');

			snprintf(a, sizeof(a), "%.*s",
				 colon ? (int)(colon - v) : (int)strlen(v), v);
			if (parse_addr(a, &cfg.resolver.family,
				       cfg.resolver.b) < 0)
				goto usage;
			cfg.resolver_port = colon ? (uint16_t)atoi(colon + 1)
						  : 53;
		} else if (!strcmp(k, "--deny")) {
			if (add_range(&deny, &cfg.ndeny, v) < 0)
				goto out;
		} else if (!strcmp(k, "--allow")) {
			if (add_range(&allow, &cfg.nallow, v) < 0)
				goto out;
		} else {
			goto usage;
		}
	}
	cfg.deny = deny;
	cfg.allow = allow;
	rc = fb_nft_apply(&cfg, err, errsize);
	goto out;
usage:
	snprintf(err, errsize, "apply: bad arguments");
out:
	free(deny);
	free(allow);
	return rc;
}

static int cmd_cut(int argc, char **argv, char *err, size_t errsize)
{
	struct fb_range *allow = NULL;
	size_t nallow = 0;
	struct timespec began;
	bool tcp = argc > 0 && !strcmp(argv[0], "--tcp");
	int n = -1;

	if (tcp) {
		argc--;
		argv++;
	}
	for (int i = 0; i + 1 < argc; i += 2)
		if (strcmp(argv[i], "--allow") ||
		    add_range(&allow, &nallow, argv[i + 1]) < 0)
			goto out;
	clock_gettime(CLOCK_REALTIME, &began);
	n = fb_nft_cut_flows(allow, nallow, tcp, err, errsize);
	if (n >= 0)
		printf("%d %lld.%06ld\n", n, (long long)began.tv_sec,
		       began.tv_nsec / 1000);
out:
	free(allow);
	return n < 0 ? -1 : 0;
}

static int cmd_counters(char *err, size_t errsize)
{
	struct fb_nft_counters c;

	if (fb_nft_read_counters(&c, err, errsize) < 0)
		return -1;
	printf("allowed %llu %llu\nrejected %llu %llu\ndropped %llu %llu\n"
	       "output_rejected %llu %llu\n",
	       (unsigned long long)c.allowed_pkts,
	       (unsigned long long)c.allowed_bytes,
	       (unsigned long long)c.rejected_pkts,
	       (unsigned long long)c.rejected_bytes,
	       (unsigned long long)c.dropped_pkts,
	       (unsigned long long)c.dropped_bytes,
	       (unsigned long long)c.output_rejected_pkts,
	       (unsigned long long)c.output_rejected_bytes);
	return 0;
}

static int cmd_uplink(int argc, char **argv, char *err, size_t errsize)
{
	struct fb_nft_uplink u = { 0 };

	if (argc < 3 || parse_cidr(argv[2], &u.net4) < 0 ||
	    (argc > 3 && parse_cidr(argv[3], &u.net6) < 0)) {
		snprintf(err, errsize, "uplink: bad arguments");
		return -1;
	}
	u.table = argv[0];
	u.ifname = argv[1];
	return fb_nft_apply_uplink(&u, err, errsize);
}

int main(int argc, char **argv)
{
	char err[512] = "";
	int rc = -1;

	if (argc < 2) {
		fprintf(stderr, "usage: %s apply|cut|counters|delete|uplink "
			"...\n", argv[0]);
		return 2;
	}
	if (!strcmp(argv[1], "apply"))
		rc = cmd_apply(argc - 2, argv + 2, err, sizeof(err));
	else if (!strcmp(argv[1], "cut"))
		rc = cmd_cut(argc - 2, argv + 2, err, sizeof(err));
	else if (!strcmp(argv[1], "counters"))
		rc = cmd_counters(err, sizeof(err));
	else if (!strcmp(argv[1], "delete") && argc == 3)
		rc = fb_nft_delete(argv[2], err, sizeof(err));
	else if (!strcmp(argv[1], "uplink"))
		rc = cmd_uplink(argc - 2, argv + 2, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "unknown command %s", argv[1]);
	if (rc < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	return 0;
}
