/*
 * test_nft.c — the nft module against the real kernel.  Every test that
 * touches nftables runs in a fresh network namespace of its own
 * (unshare(CLONE_NEWNET) in setup, back to the original in teardown; the
 * namespace dies with its last reference), and inspects the result with
 * the nft binary or the module's own read-back.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "nft/internal.h"
#include "nft/nft.h"

static int orig_netns = -1;

static int enter_fresh_netns(void **state)
{
	(void)state;
	if (orig_netns < 0)
		orig_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (orig_netns < 0 || unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "fresh network namespace: %s\n",
			strerror(errno));
		return -1;
	}
	return system("ip link set lo up") == 0 ? 0 : -1;
}

static int leave_netns(void **state)
{
	(void)state;
	return setns(orig_netns, CLONE_NEWNET);
}

/* The output of a shell command, run in the current namespace. */
static char *capture(const char *fmt, ...)
{
	char cmd[512], *out = NULL;
	size_t len = 0;
	va_list ap;
	FILE *f, *p;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	f = open_memstream(&out, &len);
	p = popen(cmd, "r");
	assert_non_null(f);
	assert_non_null(p);
	for (int c; (c = fgetc(p)) != EOF;)
		fputc(c, f);
	pclose(p);
	fclose(f);
	return out;
}

static bool contains(const char *cmd, const char *needle)
{
	char *out = capture("%s", cmd);
	bool found = strstr(out, needle) != NULL;

	free(out);
	return found;
}

static struct fb_range range(const char *lo, const char *hi)
{
	struct fb_range r = { .family = strchr(lo, ':') ? AF_INET6 : AF_INET };

	assert_int_equal(inet_pton(r.family, lo, r.lo), 1);
	assert_int_equal(inet_pton(r.family, hi, r.hi), 1);
	return r;
}

/* A config with the given sets; guest link "gst0" need not exist. */
static struct fb_nft_config config(const struct fb_range *deny, size_t ndeny,
				   const struct fb_range *allow, size_t nallow)
{
	struct fb_nft_config c = {
		.guest_ifname = "gst0",
		.proxy_port = 15001,
		.dns_port = 15053,
		.deny = deny,
		.ndeny = ndeny,
		.allow = allow,
		.nallow = nallow,
	};
	return c;
}

/*
 * A TCP dial from this namespace to ip:80, waited on for 200 ms:
 * ECONNREFUSED when reset, EINPROGRESS when still unanswered.
 */
static int dial(const char *ip)
{
	struct sockaddr_in to = { .sin_family = AF_INET,
				  .sin_port = htons(80) };
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), e = 0;
	struct pollfd p = { .fd = s, .events = POLLOUT };
	socklen_t len = sizeof(e);

	assert_true(s >= 0);
	assert_int_equal(inet_pton(AF_INET, ip, &to.sin_addr), 1);
	if (connect(s, (struct sockaddr *)&to, sizeof(to)) < 0)
		e = errno;
	if (e == EINPROGRESS && poll(&p, 1, 200) == 1)
		getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &len);
	close(s);
	return e;
}

/* A veth pair whose first end carries 10.255.0.1/24 and a route to 10/8. */
static void add_link(void)
{
	assert_int_equal(system("ip link add fbt0 type veth peer name fbt1 &&"
				" ip addr add 10.255.0.1/24 dev fbt0 &&"
				" ip link set fbt0 up && ip link set fbt1 up &&"
				" ip route add 10.0.0.0/8 dev fbt0"), 0);
}

#define LIST_SET(name) "nft list set inet firebreak " name " 2>&1"

/* ---- interval elements (no kernel) -------------------------------- */

static void test_ranges_sorted_merged_open_at_top(void **state)
{
	struct fb_range r[] = {
		range("10.2.0.0", "10.2.255.255"),
		range("10.0.0.0", "10.0.255.255"),
		range("10.1.0.0", "10.1.0.255"),   /* adjacent to 10.0/16 */
		range("10.0.5.0", "10.0.6.0"),     /* inside it */
		range("255.255.255.0", "255.255.255.255"),
		range("::", "::ffff"),             /* other family: skipped */
	};
	struct fbn_elem *e;
	uint8_t a[4];
	size_t n;
	char err[200];

	(void)state;
	assert_int_equal(fbn_ranges_to_elems(r, 6, AF_INET, "deny", &e, &n,
					     err, sizeof(err)), 0);
	/* 10.0.0.0-10.1.0.255, 10.2/16, 255.255.255.0- (no end) */
	assert_int_equal(n, 5);
	assert_memory_equal(e[0].key, "\x0a\x00\x00\x00", 4);
	assert_false(e[0].end);
	assert_memory_equal(e[1].key, "\x0a\x01\x01\x00", 4);
	assert_true(e[1].end);
	assert_memory_equal(e[4].key, "\xff\xff\xff\x00", 4);
	assert_false(e[4].end);

	inet_pton(AF_INET, "10.1.0.255", a);
	assert_true(fbn_elems_contain(e, n, a, 4));
	inet_pton(AF_INET, "10.1.1.0", a);
	assert_false(fbn_elems_contain(e, n, a, 4));
	inet_pton(AF_INET, "255.255.255.255", a);
	assert_true(fbn_elems_contain(e, n, a, 4));
	inet_pton(AF_INET, "9.255.255.255", a);
	assert_false(fbn_elems_contain(e, n, a, 4));
	free(e);
}

/*
 * Random ranges (small numbers, so they overlap and touch often) against
 * a brute-force membership check: the elements must match exactly the
 * union of the ranges.  A fixed seed keeps failures reproducible.
 */
static void test_elems_match_ranges_randomized(void **state)
{
	enum { ROUNDS = 200, RANGES = 12, SPACE = 256 };
	unsigned seed = 4242;

	(void)state;
	for (int round = 0; round < ROUNDS; round++) {
		struct fb_range r[RANGES];
		bool in[SPACE] = { false };
		struct fbn_elem *e;
		size_t n;
		char err[200];

		for (int i = 0; i < RANGES; i++) {
			unsigned lo = (unsigned)rand_r(&seed) % SPACE;
			unsigned hi = lo + (unsigned)rand_r(&seed) % 16;

			hi = hi >= SPACE ? SPACE - 1 : hi;
			memset(&r[i], 0, sizeof(r[i]));
			r[i].family = AF_INET;
			/* 255.255.255.x: the top of the space is in play */
			memset(r[i].lo, 0xff, 3);
			memset(r[i].hi, 0xff, 3);
			r[i].lo[3] = (uint8_t)lo;
			r[i].hi[3] = (uint8_t)hi;
			for (unsigned a = lo; a <= hi; a++)
				in[a] = true;
		}
		assert_int_equal(fbn_ranges_to_elems(r, RANGES, AF_INET,
						     "deny", &e, &n, err,
						     sizeof(err)), 0);
		for (unsigned a = 0; a < SPACE; a++) {
			uint8_t addr[4] = { 0xff, 0xff, 0xff, (uint8_t)a };

			if (fbn_elems_contain(e, n, addr, 4) != in[a])
				fail_msg("round %d: 255.255.255.%u wrongly %s",
					 round, a, in[a] ? "out" : "in");
		}
		for (size_t i = 1; i < n; i++)
			assert_true(memcmp(e[i - 1].key, e[i].key, 4) < 0);
		free(e);
	}
}

static void test_range_backwards_is_named(void **state)
{
	struct fb_range r[] = { range("10.0.0.0", "10.0.0.9"),
				range("10.0.0.5", "10.0.0.1") };
	struct fbn_elem *e;
	size_t n;
	char err[200];

	(void)state;
	assert_int_equal(fbn_ranges_to_elems(r, 2, AF_INET, "deny", &e, &n,
					     err, sizeof(err)), -1);
	assert_string_equal(err, "deny range 1 (10.0.0.5-10.0.0.1) starts "
				 "after it ends");
}

/* ---- the sandbox table ------------------------------------------- */

static void test_apply_builds_table(void **state)
{
	struct fb_range deny[] = {
		range("10.0.0.0", "10.255.255.255"),
		range("fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
	};
	struct fb_range allow[] = { range("198.18.1.0", "198.18.1.255"),
				    range("2001:db8:1::", "2001:db8:1::ffff") };
	struct fb_nft_config c = config(deny, 2, allow, 2);
	char err[512] = "";
	char *json;

	(void)state;
	c.resolver = (struct fb_addr){ .family = AF_INET,
				       .b = { 10, 0, 0, 53 } };
	c.resolver_port = 53;
	assert_int_equal(fb_nft_apply(&c, err, sizeof(err)), 0);

	json = capture("nft -j list table inet firebreak");
	for (const char *const *s = (const char *const[]){
		     "\"name\": \"prerouting\"", "\"name\": \"forward\"",
		     "\"name\": \"input\"", "\"name\": \"output\"",
		     "\"name\": \"deny4\"", "\"name\": \"allow6\"",
		     "\"name\": \"rejected\"", "\"redirect\"", NULL };
	     *s; s++) {
		if (!strstr(json, *s))
			fail_msg("%s not in the table: %s", *s, json);
	}
	free(json);
	assert_true(contains(LIST_SET("deny4"), "10.0.0.0/8"));
	assert_true(contains(LIST_SET("deny6"), "fc00::/7"));
	assert_true(contains(LIST_SET("allow4"), "198.18.1.0/24"));
	assert_true(contains(LIST_SET("allow6"), "2001:db8:1::/112"));
	assert_true(contains("nft list chain inet firebreak output",
			     "ip daddr 10.0.0.53 udp dport 53 accept"));
	assert_true(contains("nft list chain inet firebreak prerouting",
			     "ip6 daddr @deny6 return"));
	/* ahead of conntrack: a source not routed back to the guest */
	assert_true(contains("nft list chain inet firebreak guard",
			     "type filter hook prerouting priority raw;"));
	assert_true(contains("nft list chain inet firebreak guard",
			     "\tiifname \"gst0\" fib saddr . iif oif 0 "
			     "counter name \"dropped\" drop"));
	/* neighbour discovery skips it only from unforwarded sources */
	assert_true(contains("nft list chain inet firebreak guard",
			     "ip6 hoplimit 255 ip6 saddr fe80::/10 accept"));
	assert_true(contains("nft list chain inet firebreak guard",
			     "ip6 hoplimit 255 ip6 saddr :: accept"));
	assert_false(contains("nft list chain inet firebreak guard",
			      "ip6 hoplimit 255 accept"));
	/* a cut flow's TCP from the guest, resets included: reset (a reset
	 * is dropped unanswered); the rest: dropped both ways */
	assert_true(contains("nft list chain inet firebreak forward",
			     "\tiifname \"gst0\" ct mark 0x66620001 ct original "
			     "ip daddr != @allow4 meta l4proto tcp counter name "
			     "\"rejected\" reject with tcp reset"));
	assert_false(contains("nft list chain inet firebreak forward",
			      "tcp flags ! rst"));
	assert_true(contains("nft list chain inet firebreak forward",
			     "\tct mark 0x66620001 ct original ip6 daddr != "
			     "@allow6 meta l4proto != tcp counter name "
			     "\"rejected\" drop"));
	/* replies only of flows the chain admitted, never the proxy's */
	assert_true(contains("nft list chain inet firebreak forward",
			     "\tct state established,related ct mark "
			     "0x66620001 accept"));
	assert_false(contains("nft list chain inet firebreak forward",
			      "\tct state established,related accept"));
}

static void test_replace_swaps_sets(void **state)
{
	struct fb_range a[] = { range("10.0.0.0", "10.255.255.255") };
	struct fb_range b[] = { range("172.16.0.0", "172.31.255.255") };
	struct fb_nft_config c = config(a, 1, NULL, 0);
	char err[512] = "", *out;
	int chains = 0;

	(void)state;
	assert_int_equal(fb_nft_apply(&c, err, sizeof(err)), 0);
	c.deny = b;
	assert_int_equal(fb_nft_apply(&c, err, sizeof(err)), 0);
	assert_true(contains(LIST_SET("deny4"), "172.16.0.0/12"));
	assert_false(contains(LIST_SET("deny4"), "10.0.0.0/8"));
	out = capture("nft list ruleset");
	for (char *p = out; (p = strstr(p, "\tchain ")); p++)
		chains++;
	free(out);
	assert_int_equal(chains, 5); /* replaced, not added to */
}

static void test_bad_input_keeps_previous_table(void **state)
{
	struct fb_range good[] = { range("10.0.0.0", "10.255.255.255") };
	struct fb_range bad[] = { range("192.168.0.0", "192.168.255.255"),
				  range("172.16.0.9", "172.16.0.1") };
	struct fb_nft_config c = config(good, 1, NULL, 0);
	char err[512] = "";

	(void)state;
	assert_int_equal(fb_nft_apply(&c, err, sizeof(err)), 0);

	c.deny = bad;
	c.ndeny = 2;
	assert_int_equal(fb_nft_apply(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "deny range 1 (172.16.0.9-172.16.0.1) "
				    "starts after it ends"));
	assert_non_null(strstr(err, "nothing applied"));

	c = config(bad, 1, NULL, 0);
	c.guest_ifname = "a-name-too-long-for-a-link";
	assert_int_equal(fb_nft_apply(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "guest interface name "
				    "\"a-name-too-long-for-a-link\""));

	assert_true(contains(LIST_SET("deny4"), "10.0.0.0/8"));
	assert_false(contains(LIST_SET("deny4"), "192.168.0.0/16"));
}

/*
 * A table owned by another netlink socket (NFT_TABLE_F_OWNER) cannot be
 * touched by anyone else: the kernel refuses our transaction, and the
 * error must say which message it refused.
 */
static void test_kernel_refusal_is_named(void **state)
{
	struct fb_range deny[] = { range("10.0.0.0", "10.255.255.255") };
	struct fb_nft_config c = config(deny, 1, NULL, 0);
	struct mnl_socket *owner = mnl_socket_open(NETLINK_NETFILTER);
	char buf[MNL_SOCKET_BUFFER_SIZE], err[512] = "";
	struct mnl_nlmsg_batch *batch;
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;
	ssize_t got;

	(void)state;
	assert_non_null(owner);
	assert_int_equal(mnl_socket_bind(owner, 0, MNL_SOCKET_AUTOPID), 0);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, FB_NFT_TABLE);
	nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, NFT_TABLE_F_OWNER);
	batch = mnl_nlmsg_batch_start(buf, sizeof(buf));
	nftnl_batch_begin(mnl_nlmsg_batch_current(batch), 1);
	mnl_nlmsg_batch_next(batch);
	nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(batch),
				    NFT_MSG_NEWTABLE, NFPROTO_INET,
				    NLM_F_CREATE | NLM_F_ACK, 2);
	nftnl_table_nlmsg_build_payload(nlh, t);
	mnl_nlmsg_batch_next(batch);
	nftnl_batch_end(mnl_nlmsg_batch_current(batch), 3);
	mnl_nlmsg_batch_next(batch);
	assert_true(mnl_socket_sendto(owner, mnl_nlmsg_batch_head(batch),
				      mnl_nlmsg_batch_size(batch)) > 0);
	got = mnl_socket_recvfrom(owner, buf, sizeof(buf));
	assert_true(got > 0);
	assert_int_equal(mnl_cb_run(buf, (size_t)got, 2,
				    mnl_socket_get_portid(owner), NULL, NULL),
			 MNL_CB_STOP);
	mnl_nlmsg_batch_stop(batch);
	nftnl_table_free(t);

	assert_int_equal(fb_nft_apply(&c, err, sizeof(err)), -1);
	if (!strstr(err, "kernel refused add table inet firebreak") ||
	    !strstr(err, strerror(EPERM)) || !strstr(err, "nothing applied"))
		fail_msg("unexpected error: %s", err);
	/* the owner's empty table is untouched: no set was added to it */
	assert_false(contains(LIST_SET("deny4"), "10.0.0.0/8"));
	mnl_socket_close(owner);
}

/*
 * A refusal late in the transaction, after the old table's delete and the
 * new table's add: the kernel refuses overlapping interval elements
 * (which fb_nft_apply never sends, so the batch is built by hand), and
 * the whole transaction must be undone.
 */
static void test_refused_midway_changes_nothing(void **state)
{
	struct fb_range old[] = { range("192.168.0.0", "192.168.255.255") };
	struct fb_range a = range("10.0.0.0", "10.0.0.255"),
			b = range("10.0.0.128", "10.0.1.255");
	struct fb_nft_config c = config(old, 1, NULL, 0);
	struct fbn_batch batch;
	struct fbn_tbl t;
	char err[512] = "";

	(void)state;
	assert_int_equal(fb_nft_apply(&c, err, sizeof(err)), 0);
	fbn_batch_init(&batch);
	fbn_tbl_replace(&t, &batch, FB_NFT_TABLE);
	fbn_tbl_set(&t, "deny4", AF_INET);
	fbn_tbl_set_fill(&t, "deny4", &a, 1, "deny");
	fbn_tbl_set_fill(&t, "deny4", &b, 1, "deny");
	assert_int_equal(fbn_batch_commit(&batch, err, sizeof(err)), -1);
	fbn_batch_free(&batch);
	assert_string_equal(err, "kernel refused elements 0-1 of set deny4 "
				 "(from 10.0.0.128): File exists; nothing "
				 "applied");
	assert_true(contains(LIST_SET("deny4"), "192.168.0.0/16"));
	assert_true(contains("nft list chain inet firebreak forward",
			     "policy drop"));
}

static void test_delete_leaves_other_tables(void **state)
{
	struct fb_nft_config c = config(NULL, 0, NULL, 0);
	char err[512] = "";

	(void)state;
	assert_int_equal(system("nft add table ip foreign && "
				"nft add chain ip foreign c"), 0);
	assert_int_equal(fb_nft_apply(&c, err, sizeof(err)), 0);
	assert_int_equal(fb_nft_delete(FB_NFT_TABLE, err, sizeof(err)), 0);
	assert_false(contains("nft list tables", "inet firebreak"));
	assert_true(contains("nft list table ip foreign", "chain c"));
	/* absent already is not an error */
	assert_int_equal(fb_nft_delete(FB_NFT_TABLE, err, sizeof(err)), 0);
	assert_true(contains("nft list tables", "ip foreign"));
}

/* The output chain: our own dial to a denied address is refused, counted. */
static void test_counters_see_real_traffic(void **state)
{
	struct fb_range deny[] = { range("10.0.0.0", "10.255.255.255"),
				   range("127.0.0.0", "127.255.255.255") };
	struct fb_nft_config c = config(deny, 2, NULL, 0);
	struct fb_nft_counters n;
	char err[512] = "";

	(void)state;
	assert_int_equal(fb_nft_read_counters(&n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "has no counter allowed"));
	add_link();
	assert_int_equal(fb_nft_apply(&c, err, sizeof(err)), 0);

	/* a reset, at once, not a timeout */
	assert_int_equal(dial("10.9.0.5"), ECONNREFUSED);
	/* loopback stays open though 127/8 is denied: refused by the stack */
	assert_int_equal(dial("127.0.0.1"), ECONNREFUSED);

	assert_int_equal(fb_nft_read_counters(&n, err, sizeof(err)), 0);
	/* only the dial to 10.9.0.5 met the deny rule */
	assert_int_equal(n.output_rejected_pkts, 1);
	assert_true(n.output_rejected_bytes >= 40);
	assert_int_equal(n.allowed_pkts, 0);
}

/* 100k /28s, one every 32 addresses from 10.0.0.0, in one deny set */
static void test_100k_prefixes_in_one_set(void **state)
{
	enum { N = 100000 };
	struct fb_range *r = calloc(N, sizeof(*r));
	struct fb_nft_config c;
	char err[512] = "";
	(void)state;
	assert_non_null(r);
	for (uint32_t i = 0; i < N; i++) {
		uint32_t lo = htonl(0x0a000000u + 32 * i);
		uint32_t hi = htonl(0x0a000000u + 32 * i + 15);

		r[i].family = AF_INET;
		memcpy(r[i].lo, &lo, 4);
		memcpy(r[i].hi, &hi, 4);
	}
	c = config(r, N, NULL, 0);
	/* How fast is bench_nft's question; this one is whether it works. */
	assert_int_equal(fb_nft_apply(&c, err, sizeof(err)), 0);
	free(r);

	/* the sets work: first and last prefix refused, a gap is not */
	add_link();
	assert_int_equal(dial("10.0.0.15"), ECONNREFUSED);
	assert_int_equal(dial("10.48.211.239"), ECONNREFUSED);
	assert_int_equal(dial("10.0.0.16"), EINPROGRESS);
	assert_int_equal(dial("10.48.211.240"), EINPROGRESS);
}

static void test_cut_flows_without_flows(void **state)
{
	struct fb_range allow[] = { range("198.18.1.0", "198.18.1.255") };
	struct fb_range bad[] = { range("198.18.1.9", "198.18.1.0") };
	char err[512] = "";

	(void)state;
	assert_int_equal(fb_nft_cut_flows(allow, 1, false, err, sizeof(err)), 0);
	assert_int_equal(fb_nft_cut_flows(bad, 1, false, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "allow range 0"));
}

/* ---- the uplink table --------------------------------------------- */

static void test_uplink_table_own_and_removable(void **state)
{
	struct fb_nft_config c = config(NULL, 0, NULL, 0);
	struct fb_nft_uplink u = {
		.table = "firebreak-t1",
		.ifname = "up-t1",
		.net4 = { .family = AF_INET, .len = 30,
			  .b = { 10, 250, 9, 0 } },
		.net6 = { .family = AF_INET6, .len = 64,
			  .b = { 0xfd, 0x00, 0, 9 } },
	};
	char err[512] = "";

	(void)state;
	assert_int_equal(fb_nft_apply(&c, err, sizeof(err)), 0);
	assert_int_equal(fb_nft_apply_uplink(&u, err, sizeof(err)), 0);
	assert_true(contains("nft list table inet firebreak-t1",
			     "ip saddr 10.250.9.0/30 oifname != \"up-t1\" "
			     "masquerade"));
	assert_true(contains("nft list table inet firebreak-t1",
			     "ip6 saddr fd00:9::/64 oifname != \"up-t1\" "
			     "masquerade"));
	assert_true(contains("nft list table inet firebreak-t1",
			     "iifname \"up-t1\" accept"));
	assert_true(contains("nft list table inet firebreak-t1",
			     "oifname \"up-t1\" ct state established,related "
			     "accept"));
	assert_true(contains("nft list table inet firebreak-t1",
			     "oifname \"up-t1\" drop"));
	/* the guest NAT table's shape: no input chain */
	assert_false(contains("nft list table inet firebreak-t1",
			      "hook input"));

	/* the launcher's: its own addresses closed but for the resolver */
	u.input = true;
	u.resolver.family = AF_INET;
	memcpy(u.resolver.b, (uint8_t[]){ 192, 0, 2, 53 }, 4);
	u.resolver_port = 5353;
	assert_int_equal(fb_nft_apply_uplink(&u, err, sizeof(err)), 0);
	assert_true(contains("nft list chain inet firebreak-t1 input",
			     "\tiifname \"up-t1\" ct state established,"
			     "related accept"));
	assert_true(contains("nft list chain inet firebreak-t1 input",
			     "\tiifname \"up-t1\" icmpv6 type 133-136 ip6 "
			     "hoplimit 255 accept"));
	assert_true(contains("nft list chain inet firebreak-t1 input",
			     "\tiifname \"up-t1\" ip daddr 192.0.2.53 udp "
			     "dport 5353 accept"));
	assert_true(contains("nft list chain inet firebreak-t1 input",
			     "\tiifname \"up-t1\" ip daddr 192.0.2.53 tcp "
			     "dport 5353 accept"));
	assert_true(contains("nft list chain inet firebreak-t1 input",
			     "\tiifname \"up-t1\" drop"));
	assert_int_equal(fb_nft_delete(u.table, err, sizeof(err)), 0);
	assert_false(contains("nft list tables", "firebreak-t1"));
	assert_true(contains("nft list tables", "inet firebreak"));

	u.ifname = "this-name-is-too-long";
	assert_int_equal(fb_nft_apply_uplink(&u, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "uplink interface name"));
}

#define NS_TEST(f) cmocka_unit_test_setup_teardown(f, enter_fresh_netns, \
						   leave_netns)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ranges_sorted_merged_open_at_top),
		cmocka_unit_test(test_elems_match_ranges_randomized),
		cmocka_unit_test(test_range_backwards_is_named),
		NS_TEST(test_apply_builds_table),
		NS_TEST(test_replace_swaps_sets),
		NS_TEST(test_bad_input_keeps_previous_table),
		NS_TEST(test_kernel_refusal_is_named),
		NS_TEST(test_refused_midway_changes_nothing),
		NS_TEST(test_delete_leaves_other_tables),
		NS_TEST(test_counters_see_real_traffic),
		NS_TEST(test_100k_prefixes_in_one_set),
		NS_TEST(test_cut_flows_without_flows),
		NS_TEST(test_uplink_table_own_and_removable),
	};

	return cmocka_run_group_tests_name("nft", tests, NULL, NULL);
}
