/*
 * stats.h — the proxy's counters, read back as /stats (JSON) and
 * /metrics (Prometheus text).  Plain integers: the proxy is one thread.
 */
#ifndef FB_STATS_H
#define FB_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reasons are static strings ("domain", "not-allowed", "peek-timeout");
 * a fixed table is enough: there are a few dozen at most. */
#define FB_STATS_REASONS 48

struct fb_stats {
	uint64_t accepted;       /* connections accepted */
	uint64_t open;           /* connections open now */
	uint64_t peeking;        /* peeks in flight */
	uint64_t bytes_up;       /* guest -> upstream, spliced */
	uint64_t bytes_down;     /* upstream -> guest */
	uint64_t dns_queries;
	uint64_t dns_denied;
	/* the resolver's (filled in when read): queries sent upstream, for
	 * the guest's DNS and for connections, those that failed, and
	 * those not sent for the upstream rate cap */
	uint64_t upstream_queries, upstream_failed, upstream_rate_limited;
	uint64_t policy_updates;
	uint64_t brokered_requests; /* requests answered on brokered connections */
	uint64_t upstream_reused;   /* brokered connections that took a parked
				     * upstream connection */
	uint64_t generation;     /* the policy in force */
	uint64_t flow_cut_failures; /* attempts to cut forwarded flows that failed */
	bool flows_uncut;        /* forwarded flows the policy denies may still
				  * run: their cut failed and is owed */
	uint64_t audit_lines_lost;  /* audit lines the log did not take */
	bool audit_reopen_failed;   /* lines go to the file before the reopen */
	struct {
		const char *reason;
		uint64_t allowed, denied;
	} outcome[FB_STATS_REASONS];
};

/* Count one decision; `reason` must be a static string. */
void fb_stats_outcome(struct fb_stats *s, bool allowed, const char *reason);

/* malloc'd NUL-terminated documents, or NULL when out of memory. */
char *fb_stats_json(const struct fb_stats *s);
char *fb_stats_metrics(const struct fb_stats *s);

#endif /* FB_STATS_H */
