/*
 * bench_nft — how long fb_nft_apply takes with 10, 10k and 100k CIDRs in
 * the deny set (one transaction, read-back included), and how long
 * replacing them with as many others takes; each size in a fresh network
 * namespace.  Baseline from the same run: the same elements loaded by the
 * nft binary from a generated file (`nft -f`), when nft is installed.
 * Target: 100k applied in under a second.
 */
#include <arpa/inet.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nft/nft.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* n disjoint, non-adjacent /24s, shifted by `shift` /24s */
static struct fb_range *make_ranges(size_t n, uint32_t shift)
{
	struct fb_range *r = calloc(n, sizeof(*r));

	for (size_t i = 0; r && i < n; i++) {
		uint32_t lo = (0x01000000u + (uint32_t)(2 * i + shift) * 256),
			 hi = lo + 255;

		r[i].family = AF_INET;
		lo = htonl(lo), hi = htonl(hi);
		memcpy(r[i].lo, &lo, 4);
		memcpy(r[i].hi, &hi, 4);
	}
	return r;
}

static double timed_apply(struct fb_nft_config *cfg, struct fb_range *r,
			  size_t n)
{
	char err[512];
	double t0 = now();

	cfg->deny = r;
	cfg->ndeny = n;
	if (fb_nft_apply(cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "apply of %zu CIDRs: %s\n", n, err);
		exit(1);
	}
	return now() - t0;
}

/* The same elements through `nft -f`; negative when nft is missing. */
static double nft_baseline(size_t n)
{
	char path[] = "/tmp/bench_nft_XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	char cmd[128];
	double t0;
	int rc;

	if (!f)
		return -1;
	fprintf(f, "table inet fbbase {\n set s {\n  type ipv4_addr\n"
		"  flags interval\n  elements = { ");
	for (size_t i = 0; i < n; i++) {
		uint32_t a = 0x01000000u + (uint32_t)(2 * i) * 256;

		fprintf(f, "%s%u.%u.%u.0/24", i ? ", " : "", a >> 24,
			(a >> 16) & 255, (a >> 8) & 255);
	}
	fprintf(f, " }\n }\n}\n");
	fclose(f);
	snprintf(cmd, sizeof(cmd), "nft -f %s 2>/dev/null", path);
	t0 = now();
	rc = system(cmd);
	t0 = now() - t0;
	unlink(path);
	return rc == 0 ? t0 : -1;
}

int main(void)
{
	static const size_t sizes[] = { 10, 10000, 100000 };
	struct fb_nft_config cfg = {
		.guest_ifname = "lo", /* the table needs a name, not a link */
		.proxy_port = 15001,
		.dns_port = 15053,
	};
	bool slow = false;

	printf("%-8s %12s %12s %12s\n", "CIDRs", "apply (ms)", "replace (ms)",
	       "nft -f (ms)");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
		size_t n = sizes[i];
		struct fb_range *a = make_ranges(n, 0), *b = make_ranges(n, 1);
		double apply, replace, base;

		if (!a || !b || unshare(CLONE_NEWNET) < 0) {
			perror("bench_nft setup");
			return 1;
		}
		apply = timed_apply(&cfg, a, n);
		replace = timed_apply(&cfg, b, n);
		if (unshare(CLONE_NEWNET) < 0) {
			perror("unshare");
			return 1;
		}
		base = nft_baseline(n);
		if (base < 0)
			printf("%-8zu %12.1f %12.1f %12s\n", n, apply * 1e3,
			       replace * 1e3, "n/a");
		else
			printf("%-8zu %12.1f %12.1f %12.1f\n", n, apply * 1e3,
			       replace * 1e3, base * 1e3);
		if (n == 100000 && (apply > 1.0 || replace > 1.0))
			slow = true;
		free(a);
		free(b);
	}
	if (slow)
		printf("100k CIDRs took more than the 1 s target\n");
	return 0;
}
