/* firebreak-proxy — the per-sandbox egress proxy (see proxy/proxy.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <link.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proxy/proxy.h"

static const char usage[] =
	"usage: firebreak-proxy --policy FILE --listen ADDR:PORT... --control SOCK\n"
	"                       [--dns-listen ADDR:PORT] [--audit-log FILE|-]\n"
	"                       [--sandbox-id ID] [--ca-cert F --ca-key F [--trust-bundle F]]\n"
	"                       [--jwt-key F] [--resolver IP[:PORT]] [--public CIDR]...\n"
	"                       [--upstream-ca FILE] [--peek-timeout MS]\n"
	"                       [--idle-timeout S] [--max-peeks N] [--max-conns N]\n"
	"                       [--generation N]\n"
	"                       [--nft --guest-if IFNAME [--gateway IP]... | --no-nft]\n"
	"\n"
	"The transparent egress proxy of one sandbox: it names each connection\n"
	"by its TLS SNI or HTTP Host, decides by the policy, and relays what is\n"
	"allowed.  The control socket serves GET/PUT/PATCH /policy, /stats,\n"
	"/metrics and /connections; SIGHUP re-reads --policy and reopens the\n"
	"audit log.  --nft (the default) programs the sandbox's nft table.  A\n"
	"change to the brokered names reissues the CA over --ca-cert and\n"
	"rewrites --trust-bundle (host roots + CA) in place.  --generation\n"
	"numbers the first policy (1 by default).\n";

enum {
	O_POLICY = 256, O_LISTEN, O_DNS_LISTEN, O_CONTROL, O_AUDIT, O_ID,
	O_CA_CERT, O_CA_KEY, O_TRUST_BUNDLE, O_JWT_KEY, O_RESOLVER, O_PUBLIC, O_UPSTREAM_CA, O_PEEK_TIMEOUT,
	O_IDLE_TIMEOUT, O_MAX_PEEKS, O_MAX_CONNS, O_GENERATION, O_NFT, O_NO_NFT, O_GUEST_IF, O_GATEWAY, O_HELP,
};

static const struct option options[] = {
	{ "policy", required_argument, NULL, O_POLICY },
	{ "listen", required_argument, NULL, O_LISTEN },
	{ "dns-listen", required_argument, NULL, O_DNS_LISTEN },
	{ "control", required_argument, NULL, O_CONTROL },
	{ "audit-log", required_argument, NULL, O_AUDIT },
	{ "sandbox-id", required_argument, NULL, O_ID },
	{ "ca-cert", required_argument, NULL, O_CA_CERT },
	{ "ca-key", required_argument, NULL, O_CA_KEY },
	{ "trust-bundle", required_argument, NULL, O_TRUST_BUNDLE },
	{ "jwt-key", required_argument, NULL, O_JWT_KEY },
	{ "resolver", required_argument, NULL, O_RESOLVER },
	{ "public", required_argument, NULL, O_PUBLIC },
	{ "upstream-ca", required_argument, NULL, O_UPSTREAM_CA },
	{ "peek-timeout", required_argument, NULL, O_PEEK_TIMEOUT },
	{ "idle-timeout", required_argument, NULL, O_IDLE_TIMEOUT },
	{ "max-peeks", required_argument, NULL, O_MAX_PEEKS },
	{ "max-conns", required_argument, NULL, O_MAX_CONNS },
	{ "generation", required_argument, NULL, O_GENERATION },
	{ "nft", no_argument, NULL, O_NFT },
	{ "no-nft", no_argument, NULL, O_NO_NFT },
	{ "guest-if", required_argument, NULL, O_GUEST_IF },
	{ "gateway", required_argument, NULL, O_GATEWAY },
	{ "help", no_argument, NULL, O_HELP },
	{ NULL, 0, NULL, 0 },
};

/* A whole number in [min, max], or -1 after saying what is wrong. */
static int parse_count(const char *opt, const char *s, unsigned long min,
		       unsigned long max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "firebreak-proxy: %s \"%s\": expected a whole number from %lu to %lu\n",
			opt, s, min, max);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/*
 * What start-up leaves behind.  Start-up runs code that serving never
 * runs again: the dynamic loader, the policy compiler, OpenSSL's set-up,
 * the first nft transaction.  The kernel maps a file's pages in windows
 * of 64 KiB around each page touched, so those calls leave some 3 MiB of
 * code and constants mapped in every sandbox's proxy, and the heap keeps
 * pages that start-up freed.  Both are given back once the proxy is
 * ready.  A dropped file page stays in the page cache: touching it again
 * costs a minor fault, not a read.
 */

#define PM_ENTRIES 512            /* /proc/self/pagemap entries per read */
#define PM_FILE (1ULL << 61)      /* the page is the file's own */
#define PM_SWAPPED (1ULL << 62)
#define PM_PRESENT (1ULL << 63)

/*
 * Unmap from [lo, hi), a private file mapping, every page that is still
 * the file's.  A page this process wrote (relocations, data, a debugger's
 * breakpoint) is its own copy: that one is kept, in memory or in swap, or
 * the write would be lost.
 */
static void drop_unwritten(int pagemap, uintptr_t lo, uintptr_t hi,
			   uintptr_t page)
{
	uint64_t e[PM_ENTRIES];
	uintptr_t a = lo, run = lo; /* [run, a): checked, none written */

	while (a < hi) {
		size_t n = (hi - a) / page < PM_ENTRIES ? (hi - a) / page
							 : PM_ENTRIES;
		ssize_t got = pread(pagemap, e, n * sizeof(*e),
				    (off_t)(a / page * sizeof(*e)));

		if (got != (ssize_t)(n * sizeof(*e)))
			break;
		for (size_t i = 0; i < n; i++, a += page) {
			if (!(e[i] & PM_SWAPPED) &&
			    (!(e[i] & PM_PRESENT) || (e[i] & PM_FILE)))
				continue;
			if (a > run)
				madvise((void *)run, a - run, MADV_DONTNEED);
			run = a + page;
		}
	}
	if (a > run)
		madvise((void *)run, a - run, MADV_DONTNEED);
}

/*
 * The read-only segments of every object loaded from a file (not the
 * vDSO).  Writable ones are left alone: what they hold is mostly written,
 * and a page could be written between the check and the drop.
 */
static int drop_object(struct dl_phdr_info *obj, size_t size, void *pagemap)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);

	(void)size;
	if (obj->dlpi_name[0] != '\0' && obj->dlpi_name[0] != '/')
		return 0;
	/* Backwards: the headers read here are in the first segment. */
	for (int i = obj->dlpi_phnum - 1; i >= 0; i--) {
		const ElfW(Phdr) *ph = &obj->dlpi_phdr[i];
		uintptr_t lo = obj->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && !(ph->p_flags & PF_W))
			drop_unwritten(*(int *)pagemap, lo & ~(page - 1),
				       (lo + ph->p_filesz + page - 1) & ~(page - 1),
				       page);
	}
	return 0;
}

static void release_startup_memory(void)
{
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	malloc_trim(0);
	if (pagemap < 0)
		return;
	dl_iterate_phdr(drop_object, &pagemap);
	close(pagemap);
}

int main(int argc, char **argv)
{
	struct fb_proxy_config cfg;
	struct fb_cidr *publics = NULL;
	struct fb_addr gateways[4];
	struct fb_proxy *p;
	char err[4096];
	int opt, rc;

	fb_proxy_config_init(&cfg);
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case O_POLICY: cfg.policy_path = optarg; break;
		case O_LISTEN:
			if (cfg.nlisten == FB_MAX_LISTEN) {
				fprintf(stderr, "firebreak-proxy: at most %d --listen addresses\n",
					FB_MAX_LISTEN);
				goto usage_error;
			}
			cfg.listen[cfg.nlisten++] = optarg;
			break;
		case O_DNS_LISTEN: cfg.dns_listen = optarg; break;
		case O_CONTROL: cfg.control_path = optarg; break;
		case O_AUDIT: cfg.audit_path = optarg; break;
		case O_ID: cfg.sandbox_id = optarg; break;
		case O_CA_CERT: cfg.ca_cert = optarg; break;
		case O_CA_KEY: cfg.ca_key = optarg; break;
		case O_TRUST_BUNDLE: cfg.trust_bundle = optarg; break;
		case O_JWT_KEY: cfg.jwt_key = optarg; break;
		case O_RESOLVER: cfg.resolver = optarg; break;
		case O_UPSTREAM_CA: cfg.upstream_ca = optarg; break;
		case O_GUEST_IF: cfg.guest_if = optarg; break;
		case O_GATEWAY:
			if (cfg.ngateways == 4 ||
			    fb_addr_parse(optarg, &gateways[cfg.ngateways]) < 0) {
				fprintf(stderr, "firebreak-proxy: --gateway \"%s\": expected an IP address (at most 4)\n",
					optarg);
				goto usage_error;
			}
			cfg.ngateways++;
			break;
		case O_NFT: cfg.nft = true; break;
		case O_NO_NFT: cfg.nft = false; break;
		case O_PUBLIC: {
			struct fb_cidr *grown = realloc(publics, (cfg.npublics + 1) *
							sizeof(*publics));

			if (!grown) {
				fprintf(stderr, "firebreak-proxy: out of memory\n");
				free(publics);
				return 1;
			}
			publics = grown;
			if (fb_cidr_parse(optarg, &publics[cfg.npublics], err,
					  sizeof(err)) < 0) {
				fprintf(stderr, "firebreak-proxy: --public: %s\n", err);
				free(publics);
				return 2;
			}
			cfg.npublics++;
			break;
		}
		case O_PEEK_TIMEOUT:
			if (parse_count("--peek-timeout", optarg, 1, 600000,
					&cfg.peek_timeout_ms) < 0)
				goto usage_error;
			break;
		case O_IDLE_TIMEOUT:
			if (parse_count("--idle-timeout", optarg, 1, 86400,
					&cfg.idle_timeout_s) < 0)
				goto usage_error;
			break;
		case O_MAX_PEEKS:
			if (parse_count("--max-peeks", optarg, 1, 1000000,
					&cfg.max_peeks) < 0)
				goto usage_error;
			break;
		case O_MAX_CONNS:
			if (parse_count("--max-conns", optarg, 1, 1000000,
					&cfg.max_conns) < 0)
				goto usage_error;
			break;
		case O_GENERATION:
			if (parse_count("--generation", optarg, 1, 4000000000ul,
					&cfg.first_generation) < 0)
				goto usage_error;
			break;
		case O_HELP:
		case 'h':
			fputs(usage, stdout);
			free(publics);
			return 0;
		default:
			goto usage_error;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "firebreak-proxy: unexpected argument \"%s\"\n",
			argv[optind]);
		goto usage_error;
	}
	if (!cfg.policy_path || !cfg.nlisten || !cfg.control_path) {
		fprintf(stderr, "firebreak-proxy: --policy, --listen and --control are required\n");
		goto usage_error;
	}
	if (!cfg.ca_cert != !cfg.ca_key) {
		fprintf(stderr, "firebreak-proxy: --ca-cert and --ca-key go together\n");
		goto usage_error;
	}
	if (cfg.trust_bundle && !cfg.ca_cert) {
		fprintf(stderr, "firebreak-proxy: --trust-bundle needs --ca-cert\n");
		goto usage_error;
	}
	cfg.publics = publics;
	cfg.gateways = gateways;

	p = fb_proxy_new(&cfg, err, sizeof(err));
	if (!p) {
		fprintf(stderr, "firebreak-proxy: %s\n", err);
		free(publics);
		return 1;
	}
	release_startup_memory();
	rc = fb_proxy_run(p, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "firebreak-proxy: %s\n", err);
	fb_proxy_free(p);
	free(publics);
	return rc < 0 ? 1 : 0;

usage_error:
	fputs(usage, stderr);
	free(publics);
	return 2;
}
