/*
 * proxy.c — the proxy process: its sockets, signals and privileges, and
 * the policy in force with the one place that changes it (fb_proxy_swap).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nft/nft.h"
#include "proxy/broker.h"
#include "proxy/ca_follow.h"
#include "proxy/conn.h"
#include "proxy/dns_server.h"
#include "proxy/trust_bundle.h"

void fb_proxy_config_init(struct fb_proxy_config *c)
{
	*c = (struct fb_proxy_config){
		.peek_timeout_ms = FB_PEEK_TIMEOUT_MS,
		.idle_timeout_s = FB_IDLE_TIMEOUT_S,
		.max_peeks = FB_MAX_PEEKS,
		.nft = true,
	};
}

const struct fb_stats *fb_proxy_stats(const struct fb_proxy *p)
{
	return &p->stats;
}

/* "IP:PORT" or "[IPv6]:PORT": a listening address needs a port, not 0. */
static int parse_hostport(const char *what, const char *s, struct fb_addr *a,
			  uint16_t *port, char *err, size_t errsize)
{
	int n;

	if (fb_addr_port_parse(s, a, &n) < 0 || n < 1) {
		snprintf(err, errsize, "%s \"%s\": expected ADDR:PORT or "
			 "[IPv6]:PORT", what, s);
		return -1;
	}
	*port = (uint16_t)n;
	return 0;
}

static int listen_tcp(const struct fb_addr *a, uint16_t port, char *err,
		      size_t errsize)
{
	struct sockaddr_storage ss;
	socklen_t len = fb_addr_to_sockaddr(a, port, &ss);
	int one = 1, fd;

	fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    listen(fd, 4096) < 0) {
		char ip[64];

		fb_addr_format(a, ip, sizeof(ip));
		snprintf(err, errsize, "listen on %s port %u: %s", ip, port,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Every --listen address, all on one port (nft redirects to one). */
static int listen_all(struct fb_proxy *p, char *err, size_t errsize)
{
	for (size_t i = 0; i < p->cfg.nlisten; i++) {
		uint16_t port;
		int fd;

		if (parse_hostport("--listen", p->cfg.listen[i], &p->listen_addr[i],
				   &port, err, errsize) < 0)
			return -1;
		if (i > 0 && port != p->listen_port) {
			snprintf(err, errsize, "--listen %s: every --listen must use port %u",
				 p->cfg.listen[i], p->listen_port);
			return -1;
		}
		p->listen_port = port;
		fd = listen_tcp(&p->listen_addr[i], port, err, errsize);
		if (fd < 0)
			return -1;
		p->listen_fd[p->nlisten++] = fd;
		if (fb_loop_add(p->loop, fd, EPOLLIN, fb_conn_on_accept, p) < 0) {
			snprintf(err, errsize, "--listen %s: %s", p->cfg.listen[i],
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* ---- the kernel side of the policy ------------------------------------ */

/* The part of the nft table a policy decides; the rest is fixed at start. */
struct kernel_sets {
	struct fb_range *deny, *allow;
	size_t ndeny, nallow;
};

static int kernel_sets(const struct fb_policy *pol, struct kernel_sets *k,
		       char *err, size_t errsize)
{
	*k = (struct kernel_sets){ 0 };
	if (fb_policy_deny_ranges(pol, &k->deny, &k->ndeny) < 0 ||
	    fb_policy_allow_ranges(pol, &k->allow, &k->nallow) < 0) {
		snprintf(err, errsize, "computing the kernel sets: out of memory");
		return -1;
	}
	return 0;
}

static void kernel_sets_free(struct kernel_sets *k)
{
	free(k->deny);
	free(k->allow);
}

/* The sets come sorted and merged, so equal sets are equal arrays. */
static bool kernel_sets_equal(const struct kernel_sets *a,
			      const struct kernel_sets *b)
{
	return a->ndeny == b->ndeny && a->nallow == b->nallow &&
	       !memcmp(a->deny, b->deny, a->ndeny * sizeof(*a->deny)) &&
	       !memcmp(a->allow, b->allow, a->nallow * sizeof(*a->allow));
}

static int apply_nft(struct fb_proxy *p, const struct kernel_sets *k,
		     char *err, size_t errsize)
{
	struct fb_nft_config cfg = {
		.guest_ifname = p->cfg.guest_if,
		.gateway = p->gateways,
		.ngateway = p->ngateways,
		.proxy_port = p->listen_port,
		.dns_port = p->dns_port,
		.resolver = p->resolver_addr,
		.resolver_port = p->resolver_port,
		.deny = k->deny,
		.ndeny = k->ndeny,
		.allow = k->allow,
		.nallow = k->nallow,
	};

	return fb_nft_apply(&cfg, err, errsize);
}

/* The whole table for `pol`, as at start. */
static int apply_table(struct fb_proxy *p, const struct fb_policy *pol,
		       char *err, size_t errsize)
{
	struct kernel_sets k;
	int rc = kernel_sets(pol, &k, err, errsize);

	if (rc == 0)
		rc = apply_nft(p, &k, err, errsize);
	kernel_sets_free(&k);
	return rc;
}

/* ---- cutting forwarded flows ----------------------------------------- */

/*
 * A cut that fails (a netlink error) leaves the UDP and ICMP flows it
 * should have deleted running to ranges the policy no longer allows; TCP
 * ones are stopped by the new table whatever happens here.  The update
 * stays in force: refusing it would put the old table back, reopening
 * those ranges to every new flow as well, and the connections already
 * re-decided could not be put back anyway.  Instead the cut is owed
 * (stats.flows_uncut) until one succeeds:
 *
 *   - it is tried again on the loop, FB_CUT_RETRIES times, FB_CUT_RETRY_MS
 *     apart and doubling, each time against the policy then in force;
 *   - a later update takes the debt over: it cuts at once, whether or not
 *     it narrows the ranges itself, and its own retries replace these;
 *   - the update's audit line says firebreak.flows_cut false with
 *     error.message, its PUT/PATCH reply "flows_cut":false with the error;
 *   - the retry that succeeds, and the last one when all fail, each write
 *     a "flow-cut" audit line (event.outcome success / failure), so the
 *     log shows when the gap closed, or that it is still open;
 *   - /stats and /metrics count the failed attempts and show the debt.
 *
 * After the last retry the debt stays, visible as firebreak_flows_uncut
 * 1, until an update (a PUT of the same policy will do) or SIGHUP cuts.
 */
#define FB_CUT_RETRIES 4
#define FB_CUT_RETRY_MS 100
/* A cut TCP flow's origin may still answer the guest for this long (its
 * packets in flight meet the guest's reset); then the flow's entry goes
 * and nothing of it passes either way (nft/conntrack.c). */
#define FB_CUT_TCP_GRACE_MS 1000

static bool range_within(const struct fb_range *r, const struct fb_range *in,
			 size_t nin)
{
	for (size_t i = 0; i < nin; i++)
		if (in[i].family == r->family &&
		    memcmp(in[i].lo, r->lo, sizeof(r->lo)) <= 0 &&
		    memcmp(r->hi, in[i].hi, sizeof(r->hi)) <= 0)
			return true;
	return false;
}

/* Some range `was` forwarded is no longer wholly allowed by `now`. */
static bool narrowed(const struct kernel_sets *was,
		     const struct kernel_sets *now)
{
	for (size_t i = 0; i < was->nallow; i++)
		if (!range_within(&was->allow[i], now->allow, now->nallow))
			return true;
	return false;
}

/* An attempt's outcome (flows cut, or -1 with p->cut.error set) recorded
 * as the debt and its counters; returned as it came. */
static int settle(struct fb_proxy *p, int cut)
{
	p->stats.flows_uncut = cut < 0;
	if (cut < 0) {
		p->stats.flow_cut_failures++;
		p->cut.failed++;
		fprintf(stderr, "firebreak-proxy: cutting forwarded flows: %s\n",
			p->cut.error);
	}
	return cut;
}

/* The forwarded flows `now` does not allow, cut. */
static int cut_now(struct fb_proxy *p, const struct kernel_sets *now)
{
	return settle(p, fb_nft_cut_flows(now->allow, now->nallow, false,
					  p->cut.error, sizeof(p->cut.error)));
}

/*
 * The grace after a cut is over: the conntrack entries of the TCP flows
 * the policy in force does not allow go too.  A failure leaves only the
 * origin's side of those flows passing toward a guest whose segments the
 * table resets; it is reported, and the next cut tries again.
 */
static void purge_tcp(struct fb_loop *l, void *arg)
{
	struct fb_proxy *p = arg;
	struct kernel_sets now;
	char err[256];

	(void)l;
	p->cut.purge = NULL;
	if (kernel_sets(p->policy, &now, err, sizeof(err)) < 0 ||
	    fb_nft_cut_flows(now.allow, now.nallow, true, err,
			     sizeof(err)) < 0) {
		p->stats.flow_cut_failures++;
		fprintf(stderr, "firebreak-proxy: deleting cut TCP flows: %s\n",
			err);
	}
	kernel_sets_free(&now);
}

static void schedule_purge(struct fb_proxy *p)
{
	fb_timer_cancel(p->loop, p->cut.purge);
	p->cut.purge = fb_timer_add(p->loop, FB_CUT_TCP_GRACE_MS, purge_tcp, p);
}

static void audit_cut(struct fb_proxy *p, int cut)
{
	struct fb_audit_line ln;

	fb_audit_begin(p->audit, &ln, "flow-cut",
		       cut < 0 ? "failure" : "success", p->generation);
	fb_audit_uint(&ln, "firebreak.attempts", p->cut.failed + (cut >= 0));
	if (cut < 0)
		fb_audit_str(&ln, "error.message", p->cut.error);
	else
		fb_audit_uint(&ln, "firebreak.flows_closed", (uint64_t)cut);
	fb_audit_emit(p->audit, &ln);
}

static void retry_cut(struct fb_loop *l, void *arg);

/* After p->cut.failed attempts: the next one, or the last one's line. */
static void schedule_retry(struct fb_proxy *p)
{
	if (p->cut.failed <= FB_CUT_RETRIES)
		p->cut.retry = fb_timer_add(p->loop, (uint64_t)FB_CUT_RETRY_MS
					    << (p->cut.failed - 1), retry_cut, p);
	if (!p->cut.retry)
		audit_cut(p, -1);
}

static void retry_cut(struct fb_loop *l, void *arg)
{
	struct fb_proxy *p = arg;
	struct kernel_sets now;
	int cut;

	(void)l;
	p->cut.retry = NULL;
	if (kernel_sets(p->policy, &now, p->cut.error,
			sizeof(p->cut.error)) < 0)
		cut = settle(p, -1);
	else
		cut = cut_now(p, &now);
	kernel_sets_free(&now);
	if (cut >= 0) {
		audit_cut(p, cut);
		schedule_purge(p);
	} else {
		schedule_retry(p);
	}
}

/*
 * The conntrack dump walks the kernel's whole table under its bucket
 * locks, which costs more than the rest of an update once many
 * connections are open, so it runs only when some range `was` forwarded
 * is no longer wholly allowed (a domain-only change never narrows the
 * ranges), or an earlier cut is still owed.  Returns 1 when it ran and
 * succeeded, 0 when none was needed, -1 when it failed.
 */
static int cut_flows(struct fb_proxy *p, const struct kernel_sets *was,
		     const struct kernel_sets *now)
{
	fb_timer_cancel(p->loop, p->cut.retry);
	p->cut.retry = NULL;
	p->cut.failed = 0;
	if (!p->stats.flows_uncut && !narrowed(was, now))
		return 0;
	if (cut_now(p, now) >= 0) {
		schedule_purge(p);
		return 1;
	}
	schedule_retry(p);
	return -1;
}

/* `cut` as cut_flows returns it. */
static void audit_policy(struct fb_proxy *p, bool ok, const char *who,
			 uint64_t old_gen, size_t closed, int cut,
			 const char *error)
{
	struct fb_audit_line ln;

	fb_audit_begin(p->audit, &ln, "policy", ok ? "allowed" : "denied",
		       p->generation);
	fb_audit_str(&ln, "event.reason", ok ? "updated" : "rejected");
	fb_audit_str(&ln, "user.name", who);
	if (old_gen)
		fb_audit_uint(&ln, "policy.previous_generation", old_gen);
	if (ok)
		fb_audit_uint(&ln, "firebreak.connections_closed", closed);
	if (cut)
		fb_audit_bool(&ln, "firebreak.flows_cut", cut > 0);
	if (error)
		fb_audit_str(&ln, "error.message", error);
	fb_audit_emit(p->audit, &ln);
}

void fb_proxy_audit_rejected(struct fb_proxy *p, const char *who,
			     const char *error)
{
	audit_policy(p, false, who, 0, 0, 0, error);
}

/* A CA issued for `from`'s brokered names, reissued for `to`'s. */
static int follow_ca(struct fb_proxy *p, const struct fb_policy *from,
		     const struct fb_policy *to, char *err, size_t errsize)
{
	return fb_ca_follow(p->broker->ca, from, to, p->cfg.ca_cert,
			    p->cfg.trust_bundle, FB_TRUST_SYSTEM_ROOTS, err,
			    errsize);
}

static void release_retired(struct fb_loop *l, void *arg)
{
	struct fb_proxy *p = arg;

	(void)l;
	fb_policy_unref(p->retired);
	p->retired = NULL;
	fb_policy_reserve_next(p->policy);
}

/*
 * The policy replaced is freed once the control reply is out, by a 0 ms
 * timer (it fires after this iteration's events): tearing down a large
 * policy costs about as much as building it, and the requester need not
 * wait for that.  One is parked at a time.  Then the memory the next
 * update builds in is made ready, off its path too: after the first
 * large policy, an update faults no page in.
 */
static void retire(struct fb_proxy *p, struct fb_policy *old)
{
	if (p->retired) { /* the timer is armed already */
		fb_policy_unref(p->retired);
		p->retired = old;
		return;
	}
	p->retired = old;
	if (!fb_timer_add(p->loop, 0, release_retired, p))
		release_retired(p->loop, p);
}

/*
 * The kernel's half of a swap: the new table, or nothing when the sets it
 * holds stay the same (a change of names alone, the usual update: the
 * table in force is already the one the new policy wants).  *was and *now
 * receive the old and new sets; freed by the caller either way.
 *
 * A failed apply may have landed all the same (the commit went through
 * and reading it back failed), so the old table is written again: the
 * update is refused, and the kernel must hold what user space keeps.  If
 * that fails too, nothing is known of the table, and the next update
 * writes it whole even when its sets are the old ones.
 */
static int swap_kernel(struct fb_proxy *p, const struct fb_policy *old,
		       const struct fb_policy *np, struct kernel_sets *was,
		       struct kernel_sets *now, char *err, size_t errsize)
{
	char back[256];
	size_t n;

	if (kernel_sets(old, was, err, errsize) < 0 ||
	    kernel_sets(np, now, err, errsize) < 0)
		return -1;
	if (kernel_sets_equal(was, now) && !p->nft_unknown)
		return 0;
	if (apply_nft(p, now, err, errsize) == 0) {
		p->nft_unknown = false;
		return 0;
	}
	p->nft_unknown = apply_nft(p, was, back, sizeof(back)) < 0;
	n = strlen(err);
	if (p->nft_unknown && n < errsize)
		snprintf(err + n, errsize - n,
			 "; putting the old table back failed too (%s): the "
			 "next update rewrites it", back);
	return -1;
}

int fb_proxy_swap(struct fb_proxy *p, struct fb_policy *np, const char *who,
		  size_t *closed, char *err, size_t errsize)
{
	struct fb_policy *old = p->policy;
	uint64_t old_gen = p->generation;
	struct kernel_sets was = { 0 }, now = { 0 };
	int cut = 0;

	/* The CA first, then the kernel: a failure puts back what went before,
	 * so the old policy stays whole everywhere. */
	if (p->broker && follow_ca(p, old, np, err, errsize) < 0)
		goto refused;
	if (p->cfg.nft &&
	    swap_kernel(p, old, np, &was, &now, err, errsize) < 0) {
		char back[512];

		if (p->broker && follow_ca(p, np, old, back, sizeof(back)) < 0)
			fprintf(stderr, "firebreak-proxy: %s\n", back);
		goto refused;
	}
	p->policy = np;
	p->generation++;
	p->stats.generation = p->generation;
	p->stats.policy_updates++;
	*closed = fb_conns_recheck(p) + fb_broker_recheck(p);
	if (p->cfg.nft)
		cut = cut_flows(p, &was, &now);
	kernel_sets_free(&was);
	kernel_sets_free(&now);
	audit_policy(p, true, who, old_gen, *closed, cut,
		     cut < 0 ? p->cut.error : NULL);
	retire(p, old);
	return 0;
refused:
	kernel_sets_free(&was);
	kernel_sets_free(&now);
	fb_policy_unref(np);
	audit_policy(p, false, who, 0, 0, 0, err);
	return -1;
}

/* ---- signals ----------------------------------------------------------- */

/*
 * SIGHUP: reopen the audit log, and apply the policy file if what it
 * holds changed since it was last read.  A file that holds the same
 * changes nothing: a policy set through the control socket since stays
 * in force, and the generation with it.
 */
static void reload(struct fb_proxy *p, const char *who)
{
	struct fb_diags diags = { 0 };
	struct fb_policy *np;
	uint64_t digest[2];
	char err[512];
	size_t closed;

	if (fb_audit_reopen(p->audit, err, sizeof(err)) < 0)
		fprintf(stderr, "firebreak-proxy: SIGHUP: %s\n", err);
	np = fb_policy_load_file(p->cfg.policy_path, &p->load_opts, &diags);
	if (!np) {
		char *msg = fb_diags_to_string(&diags);

		fprintf(stderr, "firebreak-proxy: SIGHUP: %s keeps generation %llu:\n%s",
			p->cfg.policy_path, (unsigned long long)p->generation,
			msg ? msg : "out of memory\n");
		audit_policy(p, false, who, 0, 0, 0, msg ? msg : "invalid policy");
		free(msg);
		fb_diags_free(&diags);
		return;
	}
	fb_diags_free(&diags);
	if (fb_policy_digest(np, digest) < 0) {
		fprintf(stderr, "firebreak-proxy: SIGHUP: %s nested too "
			"deep to fingerprint\n", p->cfg.policy_path);
		fb_policy_unref(np);
		return;
	}
	if (memcmp(digest, p->file_digest, sizeof(digest)) == 0) {
		fprintf(stderr, "firebreak-proxy: SIGHUP: %s unchanged since "
			"it was last read; generation %llu stays\n",
			p->cfg.policy_path, (unsigned long long)p->generation);
		fb_policy_unref(np);
		return;
	}
	if (fb_proxy_swap(p, np, who, &closed, err, sizeof(err)) < 0)
		fprintf(stderr, "firebreak-proxy: SIGHUP: %s\n", err);
	else
		memcpy(p->file_digest, digest, sizeof(digest));
}

static void on_signal(struct fb_loop *l, int fd, uint32_t events, void *arg)
{
	struct fb_proxy *p = arg;
	struct signalfd_siginfo si;

	(void)events;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		char who[48];

		snprintf(who, sizeof(who), "SIGHUP from pid %u", si.ssi_pid);
		if (si.ssi_signo == SIGHUP)
			reload(p, who);
		else
			fb_loop_stop(l);
	}
}

static int watch_signals(struct fb_proxy *p, char *err, size_t errsize)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	p->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (p->signal_fd < 0 ||
	    fb_loop_add(p->loop, p->signal_fd, EPOLLIN, on_signal, p) < 0) {
		snprintf(err, errsize, "signalfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * A relayed connection holds two descriptors, six while both directions
 * have a pipe: the usual soft limit of 1024 would cap a sandbox near 170
 * connections.  Take the whole hard limit, before capabilities go.
 * Unless told, the guest may hold as many connections as that leaves six
 * descriptors each for, FD_RESERVE apart: what the control socket, the
 * DNS server's connections and the pipes kept for reuse need, so that a
 * guest that opens all it can does not shut the operator out.
 */
#define FD_RESERVE 256

static void raise_fd_limit(struct fb_proxy_config *cfg)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (!cfg->max_conns)
		cfg->max_conns = rl.rlim_cur > 2 * FD_RESERVE ?
				 (unsigned)((rl.rlim_cur - FD_RESERVE) / 6) : FD_RESERVE / 6;
}

/* ---- privileges -------------------------------------------------------- */

/*
 * Keep CAP_NET_ADMIN (the proxy programs its own nft table) and nothing
 * else, for good: out of the bounding set too, and no_new_privs so no
 * exec can regain anything.
 */
static int drop_privileges(bool keep_net_admin, char *err, size_t errsize)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2] = { { 0 } };
	uint32_t keep = keep_net_admin ? 1u << CAP_NET_ADMIN : 0;

	for (int cap = 0; cap <= 63; cap++) {
		if (keep_net_admin && cap == CAP_NET_ADMIN)
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL &&
		    errno != EPERM)
			break;
	}
	data[0].effective = data[0].permitted = keep;
	if (syscall(SYS_capset, &hdr, data) < 0) {
		snprintf(err, errsize, "dropping capabilities: %s", strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errsize, "no_new_privs: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- the DNS side ------------------------------------------------------ */

static void on_dns_query(const struct fb_dns_event *ev, void *arg)
{
	struct fb_proxy *p = arg;
	struct fb_audit_line ln;
	const char *type = fb_dns_type_str(ev->qtype);

	p->stats.dns_queries++;
	if (!ev->allowed)
		p->stats.dns_denied++;
	if (ev->suppressed)
		return; /* in the interval's count (on_dns_suppressed) */
	fb_audit_begin(p->audit, &ln, "dns", ev->allowed ? "allowed" : "denied",
		       p->generation);
	fb_audit_str(&ln, "event.reason", ev->reason);
	fb_audit_sockaddr(&ln, "source", ev->source);
	fb_audit_guest(&ln, "dns.question.name", ev->name, strlen(ev->name));
	if (type)
		fb_audit_str(&ln, "dns.question.type", type);
	else
		fb_audit_uint(&ln, "dns.question.type", ev->qtype);
	if (ev->rcode != FB_DNS_NO_REPLY)
		fb_audit_str(&ln, "dns.response_code",
			     fb_dns_rcode_str(ev->rcode));
	fb_audit_str(&ln, "network.transport", ev->tcp ? "tcp" : "udp");
	if (ev->detail)
		fb_audit_str(&ln, "error.message", ev->detail);
	for (size_t i = 0; i < ev->naddrs; i++) {
		char ip[64], key[40];

		fb_addr_format(&ev->addrs[i], ip, sizeof(ip));
		snprintf(key, sizeof(key), "dns.resolved_ip.%zu", i);
		fb_audit_str(&ln, key, ip);
	}
	fb_audit_emit(p->audit, &ln);
}

/* The rate-limited queries of an interval left out above. */
static void on_dns_suppressed(uint64_t suppressed, void *arg)
{
	struct fb_proxy *p = arg;
	struct fb_audit_line ln;

	fb_audit_begin(p->audit, &ln, "dns", "denied", p->generation);
	fb_audit_str(&ln, "event.reason", "rate-limited");
	fb_audit_str(&ln, "dns.response_code", fb_dns_rcode_str(FB_DNS_REFUSED));
	fb_audit_uint(&ln, "firebreak.suppressed", suppressed);
	fb_audit_emit(p->audit, &ln);
}

/* ---- life -------------------------------------------------------------- */

static int load_initial(struct fb_proxy *p, char *err, size_t errsize)
{
	struct fb_diags diags = { 0 };
	char *msg;

	p->policy = fb_policy_load_file(p->cfg.policy_path, &p->load_opts, &diags);
	if (p->policy) {
		fb_diags_free(&diags);
		if (fb_policy_digest(p->policy, p->file_digest) == 0)
			return 0;
		snprintf(err, errsize, "policy: nested too deep to fingerprint");
		return -1;
	}
	msg = fb_diags_to_string(&diags);
	snprintf(err, errsize, "invalid policy:\n%s", msg ? msg : "out of memory");
	free(msg);
	fb_diags_free(&diags);
	return -1;
}

struct fb_proxy *fb_proxy_new(const struct fb_proxy_config *cfg, char *err,
			      size_t errsize)
{
	struct fb_proxy *p = calloc(1, sizeof(*p));
	struct fb_dns_config dcfg;
	struct fb_addr dns_addr;

	if (!p) {
		snprintf(err, errsize, "out of memory");
		return NULL;
	}
	p->cfg = *cfg;
	p->signal_fd = -1;
	p->load_opts = (struct fb_load_opts){
		.filename = cfg->policy_path,
		.publics = cfg->publics,
		.npublics = cfg->npublics,
	};
	p->generation = p->stats.generation =
		cfg->first_generation ? cfg->first_generation : 1;
	raise_fd_limit(&p->cfg);
	p->loop = fb_loop_new();
	if (!p->loop) {
		snprintf(err, errsize, "epoll: %s", strerror(errno));
		goto fail;
	}
	if (load_initial(p, err, errsize) < 0 ||
	    listen_all(p, err, errsize) < 0 ||
	    (cfg->dns_listen &&
	     parse_hostport("--dns-listen", cfg->dns_listen, &dns_addr,
			    &p->dns_port, err, errsize) < 0))
		goto fail;
	if (cfg->audit_path) {
		p->audit = fb_audit_open(cfg->audit_path, cfg->sandbox_id, err,
					 errsize);
		if (!p->audit)
			goto fail;
	}
	p->resolver = fb_resolver_new(p->loop, cfg->resolver, err, errsize);
	if (!p->resolver)
		goto fail;
	/* nft lets the proxy alone reach it, whatever the deny set says */
	fb_resolver_upstream(p->resolver, &p->resolver_addr, &p->resolver_port);
	/* Key files are read now, before privileges are dropped. */
	if (cfg->ca_cert) {
		p->broker = fb_broker_ctx_new(cfg, err, errsize);
		if (!p->broker)
			goto fail;
	}
	if (cfg->ngateways > FB_MAX_GATEWAYS) {
		snprintf(err, errsize, "more than %d --gateway addresses",
			 FB_MAX_GATEWAYS);
		goto fail;
	}
	p->ngateways = cfg->ngateways ? cfg->ngateways : p->nlisten;
	memcpy(p->gateways, cfg->ngateways ? cfg->gateways : p->listen_addr,
	       p->ngateways * sizeof(*p->gateways));
	if (cfg->dns_listen) {
		dcfg = (struct fb_dns_config){
			.listen = cfg->dns_listen,
			.policy = &p->policy,
			.resolver = p->resolver,
			.on_query = on_dns_query,
			.on_suppressed = on_dns_suppressed,
			.arg = p,
		};
		p->dns = fb_dns_server_new(p->loop, &dcfg, err, errsize);
		if (!p->dns)
			goto fail;
	}
	if (watch_signals(p, err, errsize) < 0)
		goto fail;
	if (cfg->nft) {
		if (!cfg->guest_if) {
			snprintf(err, errsize, "nft: --guest-if is required (or --no-nft)");
			goto fail;
		}
		if (apply_table(p, p->policy, err, errsize) < 0)
			goto fail;
	}
	if (geteuid() == 0 && drop_privileges(cfg->nft, err, errsize) < 0)
		goto fail;
	/* The process holds the policy's secrets: no core file of it. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		snprintf(err, errsize, "not dumpable: %s", strerror(errno));
		goto fail;
	}
	/* Last: a launcher takes the socket's appearance to mean "ready". */
	p->control = fb_control_new(p, cfg->control_path, err, errsize);
	if (!p->control)
		goto fail;
	audit_policy(p, true, "start", 0, 0, 0, NULL);
	return p;
fail:
	fb_proxy_free(p);
	return NULL;
}

int fb_proxy_run(struct fb_proxy *p, char *err, size_t errsize)
{
	if (fb_loop_run(p->loop) < 0) {
		snprintf(err, errsize, "epoll_wait: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void fb_proxy_free(struct fb_proxy *p)
{
	if (!p)
		return;
	fb_conns_close_all(p);
	fb_splice_pool_drain();
	fb_broker_ctx_free(p->broker);
	fb_control_free(p->control);
	fb_dns_server_free(p->dns);
	fb_resolver_free(p->resolver);
	for (size_t i = 0; i < p->nlisten; i++)
		close(p->listen_fd[i]);
	if (p->signal_fd >= 0)
		close(p->signal_fd);
	fb_audit_close(p->audit);
	if (p->policy)
		fb_policy_unref(p->policy);
	fb_policy_unref(p->retired);
	fb_loop_free(p->loop);
	free(p);
}
