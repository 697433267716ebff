/*
 * core.h — what the proxy's own files share; not for other modules.
 *
 *   proxy.c    the process: sockets, signals, privileges, the policy in
 *              force and its swap
 *   conn.c     one guest connection from accept to close
 *   control.c  the HTTP control API on the unix socket
 */
#ifndef FB_PROXY_CORE_H
#define FB_PROXY_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"
#include "proxy/accept_pause.h"
#include "proxy/audit.h"
#include "proxy/loop.h"
#include "proxy/proxy.h"
#include "proxy/resolver.h"
#include "proxy/stats.h"

#define FB_MAX_GATEWAYS 4

struct conn;
struct fb_broker_ctx;
struct fb_control;
struct fb_dns_server;

struct fb_proxy {
	struct fb_proxy_config cfg;
	struct fb_load_opts load_opts;
	struct fb_loop *loop;
	struct fb_policy *policy;   /* in force; the proxy holds one reference */
	uint64_t generation;        /* of `policy`; starts at 1 */
	/* fb_policy_digest of the policy last read from --policy: a SIGHUP
	 * that finds the same leaves a policy set since by the control
	 * socket in force (logrotate sends SIGHUP too). */
	uint64_t file_digest[2];
	struct fb_policy *retired;  /* the one it replaced, until the reply is out */
	int listen_fd[FB_MAX_LISTEN];
	size_t nlisten;
	struct fb_accept_pause accept_pause; /* out of descriptors: retry shortly */
	int signal_fd;
	struct fb_control *control;
	struct fb_resolver *resolver;
	struct fb_dns_server *dns;
	struct fb_broker_ctx *broker; /* NULL without --ca-cert: brokered names refused */
	struct fb_audit *audit;
	struct fb_stats stats;
	struct conn *conns;         /* live connections */
	uint64_t next_conn_id;
	/* what nft needs besides the policy's sets */
	struct fb_addr listen_addr[FB_MAX_LISTEN];
	struct fb_addr gateways[FB_MAX_GATEWAYS];
	size_t ngateways;
	uint16_t listen_port, dns_port;
	struct fb_addr resolver_addr;
	uint16_t resolver_port;
	/* an apply failed and so did putting the old table back: what the
	 * kernel holds is unknown until the next update writes it whole */
	bool nft_unknown;
	/* a cut of forwarded flows that failed: owed while
	 * stats.flows_uncut (proxy.c, "cutting forwarded flows") */
	struct {
		struct fb_timer *retry; /* the next attempt, or NULL */
		struct fb_timer *purge; /* the cut TCP flows' entries go */
		unsigned failed;        /* attempts failed since the update */
		char error[256];        /* why the last one failed */
	} cut;
};

/* conn.c */
void fb_conn_on_accept(struct fb_loop *l, int fd, uint32_t events, void *arg);
/* Re-decide every live connection under the policy now in force; close
 * those it refuses.  Returns how many were closed. */
size_t fb_conns_recheck(struct fb_proxy *p);
void fb_conns_close_all(struct fb_proxy *p);
/* Bytes relayed so far by live connections (closed ones are in stats). */
void fb_conns_bytes(const struct fb_proxy *p, uint64_t *up, uint64_t *down);
/* GET /connections: a malloc'd JSON array, or NULL. */
char *fb_conns_json(const struct fb_proxy *p);

/* proxy.c */
/*
 * Put `np` in force (it takes over the caller's reference): nft first,
 * then user space, then live connections are re-decided.  `who` names the
 * requester for the audit line.  On failure nothing changed, np was
 * released, and err says why.  *closed receives the connections cut.
 */
int fb_proxy_swap(struct fb_proxy *p, struct fb_policy *np, const char *who,
		  size_t *closed, char *err, size_t errsize);

/* The audit line of an update refused before it reached fb_proxy_swap:
 * `error` says why, and must not quote the submitted policy. */
void fb_proxy_audit_rejected(struct fb_proxy *p, const char *who,
			     const char *error);

/* control.c */
struct fb_control *fb_control_new(struct fb_proxy *p, const char *path,
				  char *err, size_t errsize);
void fb_control_free(struct fb_control *c);

/*
 * One control request, without sockets (the server's and the fuzzer's):
 * buf[0..len) is what the client sent so far.  Returns 0 when more is
 * needed, else 1 with a complete, malloc'd HTTP response in *resp.
 * `who` names the client for the audit log.
 */
int fb_control_handle(struct fb_proxy *p, const char *buf, size_t len,
		      const char *who, char **resp, size_t *resp_len);

#endif /* FB_PROXY_CORE_H */
