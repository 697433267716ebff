/*
 * internal.h — the nft module's private parts.
 *
 *   batch.c    a netfilter netlink socket; a transaction buffer whose
 *              messages each carry a description, so a refusal names
 *              the object the kernel refused
 *   build.c    a table under construction: what goes into the batch and
 *              what the read-back must then find
 *   rule.c     one rule, built from small matches and actions
 *   sets.c     inclusive address ranges as interval-set elements
 *   verify.c   the read-back after a commit
 *   table.c    the sandbox table `inet firebreak`
 *   uplink.c   the launcher's masquerading table
 *   delete.c, counters.c, conntrack.c   one public call each
 */
#ifndef FB_NFT_INTERNAL_H
#define FB_NFT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nft/nft.h"

struct mnl_socket;
struct nlmsghdr;
struct nftnl_rule;

/*
 * The conntrack mark of flows forwarded by subnets.allow: how
 * fb_nft_cut_flows tells the guest's forwarded flows from the proxy's own.
 */
#define FB_NFT_CT_MARK 0x66620001u

/* base chain priorities, as nft names them */
#define FBN_PRIO_RAW (-300)
#define FBN_PRIO_DSTNAT (-100)
#define FBN_PRIO_FILTER 0
#define FBN_PRIO_SRCNAT 100

/* ---- batch.c -------------------------------------------------------- */

struct fbn_nl {
	struct mnl_socket *sock;
	uint32_t portid;
	uint32_t seq;
};

/* A NETLINK_NETFILTER socket in the calling thread's namespace. */
int fbn_nl_open(struct fbn_nl *nl, char *err, size_t errsize);
void fbn_nl_close(struct fbn_nl *nl);

/*
 * Send one request and feed every reply message to cb until the dump
 * ends or the kernel acknowledges.  Returns 0, or a negative value with
 * err set: the kernel's -errno when it refused (so callers can tell
 * ENOENT apart), -1 for anything else.
 */
typedef int (*fbn_nl_cb)(const struct nlmsghdr *nlh, void *data);
int fbn_nl_request(struct fbn_nl *nl, struct nlmsghdr *req, fbn_nl_cb cb,
		   void *data, char *err, size_t errsize);

/*
 * A transaction: BATCH_BEGIN, the messages, BATCH_END, sent with one
 * sendmsg so the kernel applies all of it or none.  Errors are sticky:
 * the first failure (out of memory, a bad argument found while building)
 * is kept in `err` and later calls do nothing, so a builder checks once.
 */
struct fbn_batch {
	char *buf;
	size_t len, cap;
	uint32_t seq0;  /* sequence number of the first message */
	char **what;    /* what[i]: description of message seq0 + i */
	size_t nmsg, whatcap;
	bool failed;
	char err[256];
};

void fbn_batch_init(struct fbn_batch *b);
void fbn_batch_free(struct fbn_batch *b);
void fbn_batch_fail(struct fbn_batch *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Room for `need` more bytes, ahead of a burst of messages. */
bool fbn_batch_reserve(struct fbn_batch *b, size_t need);

/*
 * Start a message of at most `room` bytes (header included) described by
 * `what`; returns NULL if the batch has failed.  Finish it with
 * fbn_batch_close once its payload is written.
 */
struct nlmsghdr *fbn_batch_open(struct fbn_batch *b, uint16_t type,
				uint16_t family, uint16_t flags, size_t room,
				const char *what, ...)
	__attribute__((format(printf, 6, 7)));
void fbn_batch_close(struct fbn_batch *b, struct nlmsghdr *nlh);

/* Send the transaction and wait for the kernel's verdict on every message. */
int fbn_batch_commit(struct fbn_batch *b, char *err, size_t errsize);

/* ---- rule.c --------------------------------------------------------- */

/* One rule and its description; sticky out-of-memory like the batch. */
struct fbn_rule {
	struct nftnl_rule *r;
	const char *failed; /* why it cannot be built, or NULL */
	char what[160];
};

enum fbn_dir { FBN_SRC, FBN_DST };

int fbn_rule_init(struct fbn_rule *fr, const char *table, const char *chain,
		  const char *what, ...) __attribute__((format(printf, 4, 5)));
void fbn_rule_free(struct fbn_rule *fr);

void fbn_match_iifname(struct fbn_rule *fr, const char *ifname);
void fbn_match_oifname(struct fbn_rule *fr, const char *ifname, bool equal);
void fbn_match_nfproto(struct fbn_rule *fr, uint8_t nfproto);
void fbn_match_l4proto(struct fbn_rule *fr, uint8_t proto);
void fbn_match_dport(struct fbn_rule *fr, uint16_t port);
/* `ct state` bits, as nf_tables exposes them; matched if any is set */
#define FBN_CT_INVALID 1u
#define FBN_CT_ESTABLISHED 2u
#define FBN_CT_RELATED 4u
#define FBN_CT_NEW 8u
void fbn_match_ct_state(struct fbn_rule *fr, uint32_t states);
/* `ct status` bits (IPS_*, linux/netfilter/nf_conntrack_common.h);
 * matched if any is set */
void fbn_match_ct_status(struct fbn_rule *fr, uint32_t bits);
void fbn_match_ct_mark(struct fbn_rule *fr, uint32_t mark);
/* the flow's original destination (`ct original ip daddr`), either way */
void fbn_match_ct_daddr_not_in_set(struct fbn_rule *fr, int family,
				   const char *set, uint32_t set_id);
void fbn_match_not_l4proto(struct fbn_rule *fr, uint8_t proto);
/* `family` AF_INET or AF_INET6; each adds the meta nfproto guard. */
void fbn_match_addr_set(struct fbn_rule *fr, int family, enum fbn_dir dir,
			const char *set, uint32_t set_id);
void fbn_match_addr(struct fbn_rule *fr, const struct fb_addr *a);
void fbn_match_cidr(struct fbn_rule *fr, const struct fb_cidr *c,
		    enum fbn_dir dir);
/* icmpv6 neighbour discovery (RS, RA, NS, NA) with hop limit 255 */
void fbn_match_ndisc(struct fbn_rule *fr);
/* no route back to the source through the interface the packet came in
 * by (`fib saddr . iif oif 0`): a strict reverse-path check */
void fbn_match_saddr_not_via_iif(struct fbn_rule *fr);

void fbn_do_counter(struct fbn_rule *fr, const char *name);
void fbn_do_ct_mark(struct fbn_rule *fr, uint32_t mark);
void fbn_do_verdict(struct fbn_rule *fr, int verdict);
void fbn_do_reject_tcp(struct fbn_rule *fr);
void fbn_do_reject_admin(struct fbn_rule *fr);
void fbn_do_redirect(struct fbn_rule *fr, uint16_t port);
void fbn_do_masquerade(struct fbn_rule *fr);

/* ---- sets.c --------------------------------------------------------- */

/* One interval-set element: a start, or the first address past a range. */
struct fbn_elem {
	uint8_t key[16];
	bool end;
};

/*
 * Turn inclusive ranges of one family into interval elements: sorted,
 * overlapping and adjacent ranges merged, no end element after a range
 * that reaches the top of the address space.  `what` names the list for
 * errors ("deny").  Caller frees *out.  0, or -1 with err set.
 */
int fbn_ranges_to_elems(const struct fb_range *r, size_t n, int family,
			const char *what, struct fbn_elem **out, size_t *nout,
			char *err, size_t errsize);

/* Append e as one NFTA_LIST_ELEM to the open element list of nlh. */
void fbn_elem_put(struct nlmsghdr *nlh, const struct fbn_elem *e,
		  size_t klen);

/* Is address a (len bytes) inside the intervals e[0..n)? */
bool fbn_elems_contain(const struct fbn_elem *e, size_t n, const uint8_t *a,
		       size_t len);

/* ---- build.c -------------------------------------------------------- */

#define FBN_TBL_MAX 8 /* chains, sets or counters in one of our tables */
#define FBN_SAMPLES 64 /* elements of a large set looked up one by one */

struct fbn_tbl_item {
	char name[32];
	size_t count; /* rules of a chain, elements of a set */
	uint32_t id;  /* set id within the transaction */
	int family;   /* a set's address family */
	/* a set's first, last and evenly spaced elements in between */
	struct fbn_elem samples[FBN_SAMPLES];
	size_t nsamples;
};

/* A table being written into a batch, and what it must read back as. */
struct fbn_tbl {
	struct fbn_batch *b;
	const char *name;
	struct fbn_tbl_item chains[FBN_TBL_MAX], sets[FBN_TBL_MAX],
		counters[FBN_TBL_MAX];
	size_t nchains, nsets, ncounters;
};

/* add the table (so the delete cannot fail), then delete it */
void fbn_tbl_drop(struct fbn_tbl *t, struct fbn_batch *b, const char *name);
/* fbn_tbl_drop, then add it afresh: the rest of the batch fills it */
void fbn_tbl_replace(struct fbn_tbl *t, struct fbn_batch *b, const char *name);
/* type "filter" or "nat"; hook NF_INET_*; policy NF_ACCEPT or NF_DROP */
void fbn_tbl_chain(struct fbn_tbl *t, const char *name, const char *type,
		   int hook, int prio, int policy);
/* An interval set of addresses; returns its transaction id. */
uint32_t fbn_tbl_set(struct fbn_tbl *t, const char *name, int family);
void fbn_tbl_set_fill(struct fbn_tbl *t, const char *set,
		      const struct fb_range *r, size_t n, const char *what);
void fbn_tbl_counter(struct fbn_tbl *t, const char *name);
/* Appends the rule to its chain and frees it. */
void fbn_tbl_rule(struct fbn_tbl *t, struct fbn_rule *fr);

/* ---- verify.c ------------------------------------------------------- */

/*
 * Read the table back and compare chains, rule counts, sets, elements.
 * Sets of up to FBN_VERIFY_DUMP elements are counted from a dump; larger
 * ones have their samples looked up one by one, because the kernel
 * restarts a set dump's walk for every 32 KiB message, which makes
 * dumping 200k elements take seconds.
 */
#define FBN_VERIFY_DUMP 20000
int fbn_tbl_verify(const struct fbn_tbl *t, char *err, size_t errsize);

#endif /* FB_NFT_INTERNAL_H */
